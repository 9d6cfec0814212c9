#!/usr/bin/env bash
# The demo command: install what is missing, build hamokctl, and run a live
# brokerless cluster of three processes on loopback (the ZeroMQ mesh; no
# server of any kind):
#
#   1. three `hamokctl peer` processes start; the first founds the cluster,
#      the others are each given one seed and find the rest by gossip;
#   2. a leader is elected; every peer takes writes (`hamokctl put`), and
#      each write is read back from another peer after a read barrier;
#   3. the leader is killed with SIGKILL; the survivors elect a new leader
#      (the time it took is printed) and keep taking writes;
#   4. every acknowledged write is read from every survivor (no write lost);
#   5. the killed peer is started again: a new identity in memory mode, it
#      catches up and holds every write too.
# It prints each step with its timing and exits 0 when all of that held.
#
#   scripts/demo.sh [--writes N] [--election-ms MS] [--keep]
#
# --keep leaves the cluster running at the end (Ctrl-C stops it). Logs and
# info files go to a temporary directory, removed at exit unless --keep.
# Environment: HAMOK_SKIP_DEPS=1 skips the package check; HAMOK_BUILD_DIR
# (default build-demo/); HAMOK_JOBS (default nproc); HAMOK_HAMOKCTL=<path>
# uses that hamokctl instead of building one. The single-process demo on the
# in-process transport is `build-demo/examples/hamok-demo`.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
writes=30
election_ms=500
keep=0
while [ $# -gt 0 ]; do
    case "$1" in
    --writes)
        writes=$2
        shift
        ;;
    --election-ms)
        election_ms=$2
        shift
        ;;
    --keep) keep=1 ;;
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
case "$writes" in '' | *[!0-9]*) echo "demo.sh: --writes needs a number" >&2 && exit 2 ;; esac
case "$election_ms" in '' | *[!0-9]*) echo "demo.sh: --election-ms needs a number" >&2 && exit 2 ;; esac

if [ "${HAMOK_SKIP_DEPS:-0}" != 1 ]; then
    "$root/scripts/install-deps.sh"
fi
if [ -n "${HAMOK_HAMOKCTL:-}" ]; then
    hamokctl=$HAMOK_HAMOKCTL # already built (the test suite runs the demo this way)
else
    build=${HAMOK_BUILD_DIR:-$root/build-demo}
    jobs=${HAMOK_JOBS:-$(nproc 2>/dev/null || echo 2)}
    echo "demo: building hamokctl in $build ..."
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHAMOK_BUILD_TESTS=OFF >/dev/null
    cmake --build "$build" -j "$jobs" --target hamokctl hamok-demo >/dev/null
    hamokctl=$build/tools/hamokctl/hamokctl
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/hamok-demo.XXXXXX")
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill -9 "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [ "$keep" -eq 0 ]; then
        rm -rf "$dir"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t_start=$(date +%s%3N)
now_ms() { date +%s%3N; }
say() { awk -v ms="$(($(now_ms) - t_start))" -v text="$*" 'BEGIN { printf "[%6.2f s] %s\n", ms / 1000, text }'; }
fail() {
    echo "demo: FAILED: $*" >&2
    local f
    for f in "$dir"/peer*.log; do
        echo "---- $f (last 15 lines) ----" >&2
        tail -n 15 "$f" >&2 || true
    done
    exit 1
}

# wait_until TIMEOUT_MS COMMAND...: poll every 50 ms.
wait_until() {
    local end=$(($(now_ms) + $1))
    shift
    until "$@"; do
        [ "$(now_ms)" -lt "$end" ] || return 1
        sleep 0.05
    done
}

http=() endpoint=() alive=()
# start_peer I [SEED]
start_peer() {
    local i=$1 seed=${2:-} args
    args=(peer --cluster demo --transport zmq --bind tcp://127.0.0.1:0 --http 127.0.0.1:0
        --election-timeout "$election_ms" --heartbeat $((election_ms / 10))
        --peer-timeout $((election_ms * 6)) --info-file "$dir/peer$i.json")
    [ -n "$seed" ] && args+=(--seed "$seed")
    rm -f "$dir/peer$i.json"
    HAMOK_LOG=warn "$hamokctl" "${args[@]}" >>"$dir/peer$i.log" 2>&1 &
    pids[i]=$!
    disown "${pids[i]}" # no "Killed" notices from the shell
    wait_until 10000 test -s "$dir/peer$i.json" || fail "peer $i did not start"
    http[i]=$(jq -r .http "$dir/peer$i.json")
    endpoint[i]=$(jq -r .endpoint "$dir/peer$i.json")
    alive[i]=1
    say "peer $i up: pid ${pids[i]}, id $(jq -r .id "$dir/peer$i.json" | cut -c1-8), zmq ${endpoint[i]}${seed:+, seed $seed}"
}

healthy() { curl -fs -o /dev/null --max-time 1 "${http[$1]}/healthz"; }
all_healthy() {
    local i
    for i in 0 1 2; do
        [ "${alive[i]}" = 1 ] || continue
        healthy "$i" || return 1
    done
}
live_endpoints() {
    local i out=()
    for i in 0 1 2; do
        [ "${alive[i]}" = 1 ] && out+=("${http[i]}")
    done
    (
        IFS=,
        echo "${out[*]}"
    )
}
# The leader's index if every live peer agrees on one, else nothing.
agreed_leader() {
    local i id leader="" json
    json=$("$hamokctl" status --endpoints "$(live_endpoints)" -o json 2>/dev/null) || return 1
    id=$(jq -r '[.[] | .leader] | unique | if length == 1 then .[0] else "" end' <<<"$json")
    [ -n "$id" ] && [ "$id" != null ] || return 1
    for i in 0 1 2; do
        [ "${alive[i]}" = 1 ] || continue
        [ "$(jq -r .id "$dir/peer$i.json")" = "$id" ] && leader=$i
    done
    [ -n "$leader" ] && echo "$leader"
}
has_leader() { agreed_leader >/dev/null; }

declare -A acked=()
n_acked=0
# write I KEY VALUE: through peer I; remembered when acknowledged.
write() {
    if "$hamokctl" put demo "$2" "$3" --endpoints "${http[$1]}" >/dev/null 2>>"$dir/client.log"; then
        acked[$2]=$3
        n_acked=$((n_acked + 1))
    else
        echo "demo: write of $2 through peer $1 not acknowledged (see $dir/client.log)" >&2
    fi
}
# check_all I: every acknowledged write is on peer I, after a read barrier.
check_all() {
    local k v got n=0
    for k in "${!acked[@]}"; do
        v=${acked[$k]}
        got=$("$hamokctl" get demo "$k" --sync --endpoints "${http[$1]}" 2>/dev/null) ||
            fail "peer $1 cannot read $k"
        [ "$got" = "$v" ] || fail "peer $1: $k = '$got', but '$v' was acknowledged"
        n=$((n + 1))
    done
    say "peer $1 holds all $n acknowledged writes"
}

echo
echo "Hamok demo: a brokerless cluster of three processes on loopback (ZeroMQ mesh)"
echo "election timeout ${election_ms} ms; logs in $dir"
echo
say "1. starting three peers"
start_peer 0
start_peer 1 "${endpoint[0]}"
start_peer 2 "${endpoint[1]}"
t0=$(now_ms)
wait_until 20000 all_healthy || fail "the cluster did not form"
wait_until 5000 has_leader || fail "no leader"
leader=$(agreed_leader)
say "cluster formed in $(($(now_ms) - t0)) ms: leader is peer $leader"
"$hamokctl" status --endpoints "$(live_endpoints)"
echo

say "2. $writes writes, through every peer in turn"
t0=$(now_ms)
for ((k = 0; k < writes; k++)); do
    write $((k % 3)) "key-$k" "value-$k"
done
ms=$(($(now_ms) - t0))
say "$n_acked writes acknowledged in $ms ms (each one a hamokctl process and an HTTP request)"
v=$("$hamokctl" get demo key-0 --sync --endpoints "${http[2]}") || fail "read through peer 2"
say "key-0, written through peer 0, read through peer 2 after a read barrier: $v"
echo

say "3. killing the leader (peer $leader) with SIGKILL"
kill -9 "${pids[leader]}"
wait "${pids[leader]}" 2>/dev/null || true
alive[leader]=0
t0=$(now_ms)
wait_until 10000 has_leader || fail "no new leader"
new_leader=$(agreed_leader)
failover=$(($(now_ms) - t0))
say "peer $new_leader leads after ${failover} ms (election timeout ${election_ms} ms; seen by polling hamokctl status)"
"$hamokctl" status --endpoints "$(live_endpoints)"
for ((k = writes; k < writes + 10; k++)); do
    survivor=$(((new_leader + k) % 3))
    [ "${alive[survivor]}" = 1 ] || survivor=$new_leader
    write "$survivor" "key-$k" "value-$k"
done
say "10 more writes through the survivors: $n_acked acknowledged in all"
echo

say "4. no acknowledged write lost"
for i in 0 1 2; do
    [ "${alive[i]}" = 1 ] && check_all "$i"
done
echo

say "5. restarting the killed peer (a new identity: memory mode)"
start_peer "$leader" "${endpoint[new_leader]}"
t0=$(now_ms)
wait_until 30000 healthy "$leader" || fail "the restarted peer did not catch up"
say "peer $leader joined and caught up in $(($(now_ms) - t0)) ms"
check_all "$leader"
wait_until 10000 has_leader || fail "no leader at the end"
"$hamokctl" status --endpoints "$(live_endpoints)"
echo
say "demo passed: leader elected, writes replicated, leader killed, failover in ${failover} ms, $n_acked writes, none lost"
if [ "$keep" -eq 1 ]; then
    echo "the cluster keeps running (--keep): HAMOK_ENDPOINTS=$(live_endpoints) $hamokctl status; Ctrl-C stops it"
    while :; do sleep 3600; done
fi
