# Warning flags for Hamok's own targets (never for dependencies).
function(hamok_target_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
    -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wundef
    -Werror=implicit-function-declaration -Werror=return-type -Werror=vla)
  if(HAMOK_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
