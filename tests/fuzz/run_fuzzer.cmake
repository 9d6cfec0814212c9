# Runs one libFuzzer target over a fresh copy of a seed corpus (the source tree
# is never written). Fails when the fuzzer exits non-zero (crash, leak, UB,
# timeout, out-of-memory); reproducers land in ARTIFACTS.
#   cmake -DFUZZER=... -DCORPUS=... -DWORK_DIR=... -DARTIFACTS=... -DSECONDS=... [-DRSS_MB=512] -P run_fuzzer.cmake
foreach(v FUZZER CORPUS WORK_DIR ARTIFACTS SECONDS)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "run_fuzzer.cmake: ${v} not set")
  endif()
endforeach()

if(NOT DEFINED RSS_MB)
  set(RSS_MB 512)
endif()

file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR} ${ARTIFACTS})
file(COPY ${CORPUS}/ DESTINATION ${WORK_DIR})

execute_process(
  COMMAND ${FUZZER}
          -max_total_time=${SECONDS} -rss_limit_mb=${RSS_MB} -malloc_limit_mb=64 -timeout=10
          -print_final_stats=1 -artifact_prefix=${ARTIFACTS}/
          ${WORK_DIR}
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fuzzer ${FUZZER} failed (exit ${rc}); see ${ARTIFACTS}")
endif()
