#!/usr/bin/env bash
# The one test command: install what is missing, build with warnings as
# errors, run the whole ctest suite (labels unit, sim, fuzz).
#
#   scripts/test.sh                   RelWithDebInfo build in build/
#   scripts/test.sh --sanitize        ASan+UBSan build in build-asan/ (or HAMOK_SANITIZE=1)
#   scripts/test.sh -- -L unit        anything after -- goes to ctest
#
# Environment:
#   HAMOK_SIM_SEEDS=<n>      how many simulator seeds the sim tests run
#   HAMOK_SIM_SEED=<n>       replay one simulator seed
#   HAMOK_FUZZ_SECONDS=<s>   seconds per fuzz target (CMake cache variable;
#                            unset = the project's default)
#   HAMOK_BUILD_DIR=<dir>    build directory (default build/ or build-asan/)
#   HAMOK_JOBS=<n>           parallel build and test jobs (default: nproc)
#   HAMOK_SKIP_DEPS=1        do not run scripts/install-deps.sh
#   HAMOK_REQUIRE_LABELS     labels that must have at least one test
#                            (default "unit sim fuzz"; "unit sim" with --sanitize)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

sanitize=0
case "${HAMOK_SANITIZE:-0}" in
1 | ON | on | true | yes) sanitize=1 ;;
esac
skip_deps=${HAMOK_SKIP_DEPS:-0}
ctest_extra=()
while [ $# -gt 0 ]; do
    case "$1" in
    --sanitize) sanitize=1 ;;
    --no-deps) skip_deps=1 ;;
    --)
        shift
        ctest_extra=("$@")
        break
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "test.sh: unknown argument: $1 (see --help)" >&2
        exit 2
        ;;
    esac
    shift
done

jobs=${HAMOK_JOBS:-$(nproc 2>/dev/null || echo 2)}

if [ "$skip_deps" != 1 ]; then
    "$root/scripts/install-deps.sh"
fi

cmake_args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DHAMOK_WERROR=ON)
if [ "$sanitize" -eq 1 ]; then
    build=${HAMOK_BUILD_DIR:-$root/build-asan}
    cmake_args+=(-DHAMOK_SANITIZE=ON)
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    required=${HAMOK_REQUIRE_LABELS-unit sim redis}
else
    build=${HAMOK_BUILD_DIR:-$root/build}
    cmake_args+=(-DHAMOK_SANITIZE=OFF)
    required=${HAMOK_REQUIRE_LABELS-unit sim fuzz redis}
fi
case "$build" in
/*) ;;
*) build=$root/$build ;;
esac
if [ -n "${HAMOK_FUZZ_SECONDS:-}" ]; then
    cmake_args+=("-DHAMOK_FUZZ_SECONDS=$HAMOK_FUZZ_SECONDS")
else
    # Forget a value cached by an earlier run: unset means the default.
    cmake_args+=(-UHAMOK_FUZZ_SECONDS)
fi

echo "test.sh: build=$build sanitize=$sanitize jobs=$jobs" \
    "sim_seeds=${HAMOK_SIM_SEEDS:-default} fuzz_seconds=${HAMOK_FUZZ_SECONDS:-default}"

cmake -S "$root" -B "$build" "${cmake_args[@]}"
cmake --build "$build" --parallel "$jobs"

# A label whose tests silently vanished (e.g. a target skipped at configure
# time) must not pass as green.
for label in $required; do
    n=$(cd "$build" && ctest -N -L "^${label}\$" | sed -n 's/^Total Tests: *\([0-9]*\).*/\1/p')
    if [ "${n:-0}" -eq 0 ]; then
        echo "test.sh: no test labelled '$label' in $build" >&2
        exit 1
    fi
done

cd "$build"
ctest --output-on-failure --no-tests=error --parallel "$jobs" "${ctest_extra[@]}"
