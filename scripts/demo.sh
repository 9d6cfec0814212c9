#!/usr/bin/env bash
# The demo command: install what is missing, build, and run a live cluster.
#
#   scripts/demo.sh [-- demo options]
#
# Today the demo is a three-peer cluster in one process on the in-process
# transport (no server, no network): discovery and election, replicated
# writes from every peer, the leader crashing and a new one taking over, a
# new peer joining and catching up. `scripts/demo.sh -- --peers 5 --writes 100`
# passes options to the program (hamok-demo --help).
#
# Environment: HAMOK_SKIP_DEPS=1 skips the package check; HAMOK_BUILD_DIR
# (default build-demo/); HAMOK_JOBS (default nproc).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
args=()
while [ $# -gt 0 ]; do
    case "$1" in
    --)
        shift
        args=("$@")
        break
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "demo.sh: unknown argument: $1 (see --help)" >&2
        exit 2
        ;;
    esac
    shift
done

if [ "${HAMOK_SKIP_DEPS:-0}" != 1 ]; then
    "$root/scripts/install-deps.sh"
fi
build=${HAMOK_BUILD_DIR:-$root/build-demo}
jobs=${HAMOK_JOBS:-$(nproc 2>/dev/null || echo 2)}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHAMOK_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j "$jobs" --target hamok-demo >/dev/null
exec "$build/examples/hamok-demo" "${args[@]}"
