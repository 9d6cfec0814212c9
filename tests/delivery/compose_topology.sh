#!/usr/bin/env bash
# The compose topologies of docker/ as plain processes on loopback.
#
#   compose_topology.sh zmq|nats
#
# No Docker engine runs here, so this test reads what `docker-compose config`
# makes of docker/compose.<topology>.yml and runs each service the way its
# container would run, with the same command and the same environment. The
# only rewrites are what containers provide and loopback cannot:
#   - a container host name (peer1, nats2, ...) with a port becomes
#     127.0.0.1 and a free port of its own, one per (service, container
#     port); a 0.0.0.0 bind (or 127.0.0.1 inside the service, as in its
#     healthcheck) becomes 127.0.0.1 and the service's own port;
#   - a named volume's mount point (/keys) becomes a directory of the run;
#   - the image supplies the program: hamok:* runs the Dockerfile's
#     ENTRYPOINT (hamokctl, the one just built) unless the service overrides
#     it; nats:* runs nats-server (the image's entrypoint does when the
#     command starts with a flag), bound to 127.0.0.1 (-a: a container binds
#     every interface), its -p/-m port values mapped like the rest;
#   - the environment is only the service's (env -i), plus Docker's default
#     PATH (after the directory of the hamokctl under test) and the
#     sanitizers' options and HAMOK_LOG when set.
# A drift in the compose files (a new service, an address that cannot be
# mapped, an image this test does not know, a port published on another
# address than 127.0.0.1) makes it fail.
#
# Then it does what docker/README.md tells users to do: services start in
# depends_on order (the keys one-shot completes, the NATS servers are
# healthy); every service's healthcheck passes (polled for as long as compose
# would retry it); every process listens on 127.0.0.1 only; HAMOK_ENDPOINTS
# comes from the README's line, its host ports mapped through the compose
# `ports`; `hamokctl status`; writes through each peer read back through
# every other after a read barrier (`hamokctl put`, `hamokctl get --sync`);
# the leader is killed with SIGKILL (`docker-compose kill`) and the survivors
# must agree on another within 2.5 election timeouts; nothing acknowledged is
# lost; the killed service starts again (`docker-compose start`) as a new
# identity (memory mode), becomes healthy and holds every acknowledged write,
# and the dead identity leaves the configuration after the peer timeout.
# nats: the servers are routed to each other and each peer is attached to
# one of the servers of its list (the first one with HAMOK_NATS_NO_RANDOMIZE). zmq: a fourth peer with a fresh key not in
# allowed_keys never becomes a member, and every member logs the refusal
# with its count. At the end every process is stopped by pid (SIGTERM, like
# `docker-compose stop`: peers leave and exit 0); on failure they are killed
# and their logs shown. No fixed sleeps: every wait polls up to a deadline.
#
# Environment: HAMOKCTL (the hamokctl binary, required), DOCKER_COMPOSE,
# NATS_SERVER (or HAMOK_NATS_SERVER), PYTHON3 (with the yaml module, as
# docker-compose has), HAMOK_KEEP_LOGS=1 keeps the run's directory.
set -euo pipefail

topology=${1:-}
case "$topology" in
zmq | nats) ;;
*)
    echo "usage: $0 zmq|nats" >&2
    exit 2
    ;;
esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
compose_file=$root/docker/compose.$topology.yml
dockerfile=$root/docker/Dockerfile
readme=$root/docker/README.md
hamokctl=${HAMOKCTL:?HAMOKCTL must name the hamokctl binary}
docker_compose=${DOCKER_COMPOSE:-docker-compose}
nats_server=${HAMOK_NATS_SERVER:-${NATS_SERVER:-nats-server}}
python3=${PYTHON3:-python3}

work=$(mktemp -d "${TMPDIR:-/tmp}/hamok-compose-$topology.XXXXXX")
logs=$work/logs
mkdir -p "$logs" "$work/volumes"
t_start=${EPOCHREALTIME/./}

# --- processes ----------------------------------------------------------------

declare -A pid_of=() # service -> pid of its running process
passed=0

now_ms() {
    local t=${EPOCHREALTIME/./}
    echo $((t / 1000))
}

say() {
    local t=${EPOCHREALTIME/./}
    printf '# [%6.1fs] %s\n' "$(((t - t_start) / 100000))e-1" "$*"
}

fail() {
    echo "FAIL ($topology): $*" >&2
    exit 1
}

alive() {
    [ -n "${pid_of[$1]:-}" ] && kill -0 "${pid_of[$1]}" 2>/dev/null
}

show_logs() {
    local f
    for f in "$logs"/*.log; do
        [ -f "$f" ] || continue
        echo "---- $(basename "$f") (last 40 lines) ----" >&2
        tail -n 40 "$f" >&2
    done
}

cleanup() {
    local rc=$? s
    trap - EXIT
    for s in "${!pid_of[@]}"; do
        if [ -n "${pid_of[$s]}" ]; then
            kill -KILL "${pid_of[$s]}" 2>/dev/null || true
            wait "${pid_of[$s]}" 2>/dev/null || true
        fi
    done
    if [ "$passed" != 1 ]; then
        show_logs
        [ "$rc" -ne 0 ] || rc=1
    fi
    if [ -n "${HAMOK_KEEP_LOGS:-}" ]; then
        echo "# logs kept in $work" >&2
    else
        rm -rf "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Start a service's process: argv and environment from the plan, output to
# its log (appended across restarts). setpriv: the process dies with this
# script, whatever ends it.
start_service() {
    local s=$1 argv env
    mapfile -t argv < <(jq -r --arg s "$s" '.[$s].argv[]' "$work/plan.json")
    mapfile -t env < <(jq -r --arg s "$s" '.[$s].env | to_entries[] | "\(.key)=\(.value)"' \
        "$work/plan.json")
    printf '==== %s: %s\n' "$(date -u +%T.%N)" "${argv[*]}" >>"$logs/$s.log"
    setpriv --pdeathsig KILL -- env -i "PATH=$path" "${passthrough[@]}" "${env[@]}" \
        "${argv[@]}" >>"$logs/$s.log" 2>&1 </dev/null &
    pid_of[$s]=$!
}

# Stop a service by pid with `sig`; wait up to timeout_s for it (SIGKILL
# after that); its exit status is returned.
stop_service() {
    local s=$1 sig=$2 timeout_s=${3:-10} pid end rc=0
    pid=${pid_of[$s]:-}
    [ -n "$pid" ] || return 0
    kill "-$sig" "$pid" 2>/dev/null || true
    end=$(($(now_ms) + timeout_s * 1000))
    while kill -0 "$pid" 2>/dev/null && [ "$(now_ms)" -lt "$end" ]; do
        sleep 0.02
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" || rc=$?
    pid_of[$s]=
    return "$rc"
}

# wait_until TIMEOUT_MS WHAT COMMAND...: poll COMMAND until it succeeds.
wait_until() {
    local timeout=$1 what=$2 end
    shift 2
    end=$(($(now_ms) + timeout))
    until "$@"; do
        if [ "$(now_ms)" -ge "$end" ]; then
            fail "$what: not within $timeout ms"
        fi
        sleep 0.05
    done
}

# --- the compose file, as docker-compose normalizes it ------------------------

for tool in "$docker_compose" "$python3" "$nats_server" jq curl setpriv; do
    command -v "$tool" >/dev/null || fail "$tool not found"
done
nats_server=$(command -v "$nats_server")
"$docker_compose" -f "$compose_file" config >"$work/compose.yml"
"$python3" -c 'import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)' \
    <"$work/compose.yml" >"$work/compose.json"

# The image's ENTRYPOINT and CMD (exec form) from the Dockerfile's last stage.
image_entrypoint=$(sed -n 's/^ENTRYPOINT[[:space:]]\{1,\}//p' "$dockerfile" | tail -n 1)
image_cmd=$(sed -n 's/^CMD[[:space:]]\{1,\}//p' "$dockerfile" | tail -n 1)
jq -e 'type == "array"' <<<"$image_entrypoint" >/dev/null ||
    fail "Dockerfile: ENTRYPOINT is not in exec form: $image_entrypoint"
jq -e 'type == "array"' <<<"${image_cmd:-[]}" >/dev/null ||
    fail "Dockerfile: CMD is not in exec form: $image_cmd"

# Shared jq definitions: which services run, which strings hold addresses,
# how a string is rewritten.
# shellcheck disable=SC2016 # jq variables, not shell ones
jq_defs='
def active: .services | to_entries | map(select((.value.profiles // []) | length == 0));
def kind: (.image // "") as $i
  | if ($i | startswith("hamok:")) then "hamok"
    elif ($i | startswith("nats:")) then "nats"
    else error("image \($i) has no plain-process equivalent in this test") end;
def local_host: . == "0.0.0.0" or . == "127.0.0.1" or . == "localhost";
def hosts: [.services | to_entries[] | {key: .key, value: .key},
            (select(.value.hostname) | {key: .value.hostname, value: .key})] | from_entries;
def port_flag: . == "-p" or . == "--port" or . == "-m" or . == "--http_port";
def addr_re: "(?<h>[A-Za-z0-9_.-]+):(?<p>[0-9]{1,5})(?![0-9])";
def addr_strings: [(.command // [])[], (.entrypoint // [])[],
                   ((.environment // {})[] | tostring), (.healthcheck.test // [])[]];
def svc_of($self; $hosts): if local_host then $self
  else ($hosts[.] // error("\(.): not a service of this file, no loopback equivalent")) end;
def published: (.ports // []) | map(
  if type == "object" then
    {ip: (.host_ip // "0.0.0.0"), host: (.published | tostring), target: (.target | tostring)}
  else capture("^(?<ip>[0-9.]+):(?<host>[0-9]+):(?<target>[0-9]+)(/tcp)?$")
    // error("ports: \(.) does not name the address it is published on") end);
def mounts: (.volumes // []) | map(
  if type == "object" then {source, target} else split(":") | {source: .[0], target: .[1]} end);
def re_quote: gsub("(?<c>[.*+?()\\[\\]{}|^$\\\\])"; "\\\(.c)");
def rewrite($self; $hosts; $ports; $vols):
  gsub("\\$\\$"; "$")
  | reduce ($vols | to_entries[]) as $v (.;
      gsub("(?<![A-Za-z0-9_./-])" + ($v.key | re_quote) + "(?![A-Za-z0-9_.-])"; $v.value))
  | gsub(addr_re; (.h | svc_of($self; $hosts)) as $s
      | "127.0.0.1:\($ports["\($s):\(.p)"] // error("no port for \($s):\(.p)"))");
'

# Every (service, container port) the running services need.
jq -r "$jq_defs"'
  hosts as $hosts | active[] | .key as $self | .value as $svc
  | ( ($svc | addr_strings[] | tostring | [scan(addr_re)][]
        | "\(.[0] | svc_of($self; $hosts)):\(.[1])"),
      ($svc | published[] | "\($self):\(.target)"),
      (if ($svc | kind) == "nats" then
         $svc.command as $c | range(1; $c | length)
         | select($c[. - 1] | port_flag) | "\($self):\($c[.])"
       else empty end) )' "$work/compose.json" | sort -u >"$work/needs.txt"
# The zmq intruder (a fourth peer) needs its own pair of ports.
if [ "$topology" = zmq ]; then
    printf '%s\n' intruder:5555 intruder:8080 >>"$work/needs.txt"
fi

# Free loopback ports, one per line of needs.txt, picked below the kernel's
# ephemeral range (no outgoing connection takes one while a killed peer is
# down) and held together while picking (no two alike).
"$python3" - "$work/needs.txt" >"$work/ports.json" <<'PY'
import json, random, socket, sys
needs = [l.strip() for l in open(sys.argv[1]) if l.strip()]
lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
held, ports = [], {}
for need in needs:
    for _ in range(1000):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", random.randrange(10000, lo)))
        except OSError:
            s.close()
            continue
        held.append(s)
        ports[need] = s.getsockname()[1]
        break
    else:
        sys.exit("no free port for " + need)
for s in held:
    s.close()
json.dump(ports, sys.stdout)
PY

# The plan: per running service, its argv, environment, healthcheck URL and
# dependencies, every string rewritten.
jq --argjson ports "$(cat "$work/ports.json")" --arg vol "$work/volumes" \
    --arg hamokctl "$hamokctl" --arg nats_server "$nats_server" \
    --argjson entrypoint "$image_entrypoint" --argjson cmd "${image_cmd:-[]}" "$jq_defs"'
  hosts as $hosts | [active[] | .key as $self | .value as $svc
  | ($svc | mounts | map({key: .target, value:
       (if (.source | startswith("/")) then .source else "\($vol)/\(.source)" end)})
     | from_entries) as $vols
  | def rw: rewrite($self; $hosts; $ports; $vols);
    def dur: if . == null then null else capture("^(?<n>[0-9.]+)(?<u>ms|s|m)$")
      | (.n | tonumber) * ({"ms": 1, "s": 1000, "m": 60000}[.u]) end;
    ($svc | kind) as $kind
  | (if $kind == "hamok" then
       ($svc.entrypoint // $entrypoint) + ($svc.command // (if $svc.entrypoint then [] else $cmd end))
     else
       (if (($svc.command // []) | length) == 0 or ($svc.command[0] | startswith("-"))
        then ["nats-server"] + ($svc.command // []) else $svc.command end)
       + (if ($svc.command // []) | any(. == "-a" or . == "--addr" or . == "--net")
          then [] else ["-a", "127.0.0.1"] end)
     end) as $argv
  | {key: $self, value: {
      kind: $kind,
      argv: [$argv | to_entries[]
             | if .key > 0 and ($argv[.key - 1] | port_flag) and $kind == "nats"
               then "\($ports["\($self):\(.value)"])" else (.value | rw) end]
            | (if .[0] == "hamokctl" then .[0] = $hamokctl
               elif .[0] == "nats-server" then .[0] = $nats_server else . end),
      env: (($svc.environment // {}) | map_values(tostring | rw)),
      health: (if $svc.healthcheck.test then
        {url: ([$svc.healthcheck.test[] | select(test("^https?://"))][0]
               // error("\($self): healthcheck is not an HTTP GET") | rw),
         program: (if $svc.healthcheck.test[0] == "CMD" then $svc.healthcheck.test[1]
                   else error("\($self): healthcheck is not in CMD form") end),
         timeout_ms: ($svc.healthcheck.timeout | dur // 30000),
         budget_ms: (($svc.healthcheck.start_period | dur // 0)
                     + ($svc.healthcheck.interval | dur // 30000)
                       * ($svc.healthcheck.retries // 3))}
        else null end),
      depends_on: (($svc.depends_on // {})
        | if type == "array" then map({key: ., value: "service_started"}) | from_entries
          else map_values(.condition // "service_started") end),
      published: [$svc | published[] | {ip: .ip, host: .host,
                  url: "http://127.0.0.1:\($ports["\($self):\(.target)"])"}],
      mounts: $vols}}] | from_entries' "$work/compose.json" >"$work/plan.json"

jq -e '[.[].health | select(.) | .program] | all(. == "curl" or . == "wget")' \
    "$work/plan.json" >/dev/null || fail "a healthcheck runs something else than curl or wget"
not_loopback=$(jq -r '[.[].published[] | select(.ip != "127.0.0.1") | "\(.ip):\(.host)"]
    | join(" ")' "$work/plan.json")
[ -z "$not_loopback" ] || fail "ports published on other addresses than 127.0.0.1: $not_loopback"
mapfile -t volume_dirs < <(jq -r '.[].mounts[]' "$work/plan.json" | sort -u)
for d in "${volume_dirs[@]}"; do
    mkdir -p "$d"
done

# Docker's default PATH, after the directory of the hamokctl under test.
path="$(dirname "$hamokctl"):/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
passthrough=()
for v in ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS HAMOK_LOG; do
    if [ -n "${!v:-}" ]; then
        passthrough+=("$v=${!v}")
    fi
done

say "$(basename "$compose_file"): services $(jq -r 'keys | join(" ")' "$work/plan.json")"
jq -r 'to_entries[] | "#   \(.key): \((.value.env | to_entries | map("\(.key)=\(.value)")) + .value.argv | join(" "))"' \
    "$work/plan.json"

# --- up: services in depends_on order -----------------------------------------

# The service's healthcheck (an HTTP GET that must succeed within its
# timeout), polled until it passes, for as long as compose would retry it.
wait_healthy() {
    local s=$1 url budget timeout
    url=$(jq -r --arg s "$s" '.[$s].health.url' "$work/plan.json")
    budget=$(jq -r --arg s "$s" '.[$s].health.budget_ms' "$work/plan.json")
    timeout=$(jq -r --arg s "$s" '.[$s].health.timeout_ms / 1000' "$work/plan.json")
    wait_until "$budget" "$s healthy ($url)" healthcheck "$s" "$url" "$timeout"
}

healthcheck() { # service url timeout_s
    alive "$1" || fail "$1 exited (see its log)"
    curl -fsS -o /dev/null --max-time "$3" "$2" 2>/dev/null
}

# The order `docker-compose up` follows: each service after its dependencies.
mapfile -t services < <(jq -r 'keys[]' "$work/plan.json")
deps_of() {
    jq -r --arg s "$1" '.[$s].depends_on | to_entries[] | "\(.key) \(.value)"' "$work/plan.json"
}
declare -A placed=()
order=()
while [ "${#order[@]}" -lt "${#services[@]}" ]; do
    progress=0
    for s in "${services[@]}"; do
        [ -z "${placed[$s]:-}" ] || continue
        ready=1
        while read -r d _; do
            jq -e --arg d "$d" 'has($d)' "$work/plan.json" >/dev/null ||
                fail "$s depends on $d, which does not run"
            [ -n "${placed[$d]:-}" ] || ready=0
        done < <(deps_of "$s")
        if [ "$ready" = 1 ]; then
            order+=("$s")
            placed[$s]=1
            progress=1
        fi
    done
    [ "$progress" = 1 ] || fail "depends_on has a cycle"
done
mapfile -t oneshots < <(jq -r '[.[].depends_on | to_entries[]
    | select(.value == "service_completed_successfully") | .key] | unique[]' "$work/plan.json")
is_oneshot() {
    local o
    for o in "${oneshots[@]}"; do
        [ "$o" != "$1" ] || return 0
    done
    return 1
}
mapfile -t peers < <(jq -r 'to_entries[] | select(.value.kind == "hamok") | .key' \
    "$work/plan.json" | while read -r s; do is_oneshot "$s" || echo "$s"; done)
mapfile -t brokers < <(jq -r 'to_entries[] | select(.value.kind == "nats") | .key' "$work/plan.json")
[ "${#peers[@]}" -ge 3 ] || fail "expected at least three peers, found ${#peers[@]}"

exited() {
    ! alive "$1"
}

declare -A done_ok=()
for s in "${order[@]}"; do
    while read -r d cond; do
        case "$cond" in
        service_completed_successfully) [ -n "${done_ok[$d]:-}" ] || fail "$d did not complete" ;;
        service_healthy) wait_healthy "$d" ;;
        service_started) alive "$d" || fail "$d is not running" ;;
        *) fail "$s: depends_on condition $cond not handled" ;;
        esac
    done < <(deps_of "$s")
    start_service "$s"
    if is_oneshot "$s"; then
        wait_until 60000 "$s completes" exited "$s"
        rc=0
        wait "${pid_of[$s]}" || rc=$?
        pid_of[$s]=
        [ "$rc" -eq 0 ] || fail "$s exited with $rc"
        done_ok[$s]=1
        say "$s completed"
    else
        say "$s started (pid ${pid_of[$s]})"
    fi
done
for s in "${order[@]}"; do
    if ! is_oneshot "$s" && jq -e --arg s "$s" '.[$s].health' "$work/plan.json" >/dev/null; then
        wait_healthy "$s"
    fi
done
say "every service is healthy"

# sockets_of PID STATE: "local-address local-port remote-port" of the TCP
# sockets of a process in a state of /proc/net/tcp (0A listening, 01
# established); tcp6 ones are printed with the address "ipv6".
sockets_of() {
    local fd link inode loc rem st f
    local -A mine=()
    for fd in "/proc/$1/fd/"*; do
        link=$(readlink "$fd" 2>/dev/null) || continue
        if [[ $link =~ ^socket:\[([0-9]+)\]$ ]]; then
            mine[${BASH_REMATCH[1]}]=1
        fi
    done
    for f in /proc/net/tcp /proc/net/tcp6; do
        while read -r _ loc rem st _ _ _ _ _ inode _; do
            if [ "$st" = "$2" ] && [ -n "${mine[$inode]:-}" ]; then
                if [ "$f" = /proc/net/tcp6 ]; then
                    echo "ipv6 $((16#${loc#*:})) $((16#${rem#*:}))"
                else
                    echo "${loc%:*} $((16#${loc#*:})) $((16#${rem#*:}))"
                fi
            fi
        done < <(tail -n +2 "$f")
    done
}
# Only loopback: every listening socket of every process is on 127.0.0.1.
for s in "${!pid_of[@]}"; do
    [ -n "${pid_of[$s]}" ] || continue
    wide=$(sockets_of "${pid_of[$s]}" 0A | awk '$1 != "0100007F" { print $1 ":" $2 }' |
        paste -sd' ' -)
    [ -z "$wide" ] || fail "$s listens on other addresses than 127.0.0.1: $wide"
done
say "every process listens on 127.0.0.1 only"

# --- watch it: what docker/README.md shows ------------------------------------

declare -A ep_of=() id_of=()
for s in "${peers[@]}"; do
    ep_of[$s]=http://$(jq -r --arg s "$s" '.[$s].env.HAMOK_HTTP' "$work/plan.json")
done
peer_status() { # service -> its /v1/status
    curl -fsS --max-time 5 "${ep_of[$1]}/v1/status"
}
for s in "${peers[@]}"; do
    id_of[$s]=$(peer_status "$s" | jq -r .id)
done

# The README's HAMOK_ENDPOINTS, its host ports mapped through `ports`.
readme_eps=$(sed -n 's/^export HAMOK_ENDPOINTS=//p' "$readme" | head -n 1)
[ -n "$readme_eps" ] || fail "docker/README.md has no 'export HAMOK_ENDPOINTS=' line"
endpoints=()
IFS=, read -r -a readme_list <<<"$readme_eps"
for e in "${readme_list[@]}"; do
    hp=${e##*:}
    [ "${e%:*}" = http://127.0.0.1 ] || fail "README endpoint $e is not on 127.0.0.1"
    url=$(jq -r --arg hp "$hp" '[.[].published[] | select(.host == $hp) | .url][0] // empty' \
        "$work/plan.json")
    [ -n "$url" ] || fail "README endpoint $e: no service of $(basename "$compose_file") publishes $hp"
    endpoints+=("$url")
done
[ "$(printf '%s\n' "${endpoints[@]}" | sort)" = "$(printf '%s\n' "${ep_of[@]}" | sort)" ] ||
    fail "README's HAMOK_ENDPOINTS ($readme_eps) are not the peers' HTTP ports"
HAMOK_ENDPOINTS=$(
    IFS=,
    echo "${endpoints[*]}"
)
export HAMOK_ENDPOINTS
say "HAMOK_ENDPOINTS=$HAMOK_ENDPOINTS (README: $readme_eps)"

ctl() {
    "$hamokctl" "$@"
}

# Do the given peers agree on a leader among them, each a voter of a
# configuration of `members`? Sets `leader` (the service).
leader=
agreed_leader() {
    local members=$1 eps json lid s
    shift
    eps=$(for s in "$@"; do echo "${ep_of[$s]}"; done | paste -sd, -)
    json=$(ctl status -o json --endpoints "$eps") || return 1
    lid=$(jq -r --argjson m "$members" 'if all(.[]; .error == null
        and (.role == "leader" or .role == "follower") and .leader != null
        and ($m == 0 or .members == $m)) and ([.[].leader] | unique | length) == 1
        then .[0].leader else empty end' <<<"$json")
    [ -n "$lid" ] || return 1
    for s in "$@"; do
        if [ "${id_of[$s]}" = "$lid" ]; then
            leader=$s
            return 0
        fi
    done
    return 1
}

wait_until 10000 "the peers agree on a leader" agreed_leader "${#peers[@]}" "${peers[@]}"
say "hamokctl status (leader: $leader)"
ctl status | sed 's/^/#   /'

env_of() { # service variable [default]
    jq -r --arg s "$1" --arg v "$2" --arg d "${3:-}" '.[$s].env[$v] // $d' "$work/plan.json"
}

if [ "$topology" = nats ]; then
    # The servers are routed to each other (their monitoring port's /routez),
    # and each peer is attached to one of the servers of its HAMOK_NATS_URL.
    routed() { # monitoring port, routes wanted
        [ "$(curl -fsS --max-time 2 "http://127.0.0.1:$1/routez" | jq .num_routes)" = "$2" ]
    }
    for b in "${brokers[@]}"; do
        mon=$(jq -r --arg s "$b" '.[$s].argv as $a | [range(1; $a | length)
            | select($a[. - 1] == "-m" or $a[. - 1] == "--http_port") | $a[.]][0]' \
            "$work/plan.json")
        wait_until 10000 "$b routed to the other $((${#brokers[@]} - 1)) servers" \
            routed "$mon" $((${#brokers[@]} - 1))
    done
    attachments=()
    for s in "${peers[@]}"; do
        url=$(env_of "$s" HAMOK_NATS_URL)
        at=
        for port in $(sockets_of "${pid_of[$s]}" 01 | awk '{ print $3 }'); do
            case ",$url," in
            *",nats://127.0.0.1:$port,"*)
                at=$(jq -r --arg p "$port" '[to_entries[] | select(.value.kind == "nats")
                    | select(.value.argv | index($p)) | .key][0]' "$work/plan.json")
                ;;
            esac
        done
        [ -n "$at" ] || fail "$s is attached to none of the servers of its list ($url)"
        # With HAMOK_NATS_NO_RANDOMIZE the list's first server is the one.
        if [ "$(env_of "$s" HAMOK_NATS_NO_RANDOMIZE 0)" != 0 ]; then
            first=${url%%,*}
            [ "$first" = "nats://127.0.0.1:$(jq -r --arg b "$at" '.[$b].argv as $a
                | [range(1; $a | length) | select($a[. - 1] == "-p") | $a[.]][0]' \
                "$work/plan.json")" ] ||
                fail "$s is attached to $at, not to the first server of its list ($url)"
        fi
        attachments+=("$s->$at")
    done
    say "routed servers; peers attached to ${attachments[*]}"
fi

# Writes: the README's, then one through each peer read back through every
# other after a read barrier. `acked` holds every acknowledged write.
declare -A acked=()
ctl put orders o-1 pending >/dev/null || fail "hamokctl put orders o-1 pending"
acked[o-1]=pending
got=$(ctl get orders o-1 --sync) || fail "hamokctl get orders o-1 --sync"
[ "$got" = pending ] || fail "hamokctl get orders o-1 --sync: '$got', not 'pending'"
n=1
for a in "${peers[@]}"; do
    for b in "${peers[@]}"; do
        [ "$a" != "$b" ] || continue
        n=$((n + 1))
        HAMOK_ENDPOINTS=${ep_of[$a]} ctl put orders "o-$n" "via-$a" >/dev/null ||
            fail "put o-$n through $a"
        acked[o-$n]=via-$a
        got=$(HAMOK_ENDPOINTS=${ep_of[$b]} ctl get orders "o-$n" --sync) ||
            fail "get o-$n --sync through $b"
        [ "$got" = "via-$a" ] || fail "o-$n written through $a reads '$got' through $b"
    done
done
say "$((n)) writes acknowledged, each read back through the other peers"

# Every acknowledged write is on the peer (after a read barrier).
holds_acked() {
    local s=$1 want have
    want=$(for k in "${!acked[@]}"; do printf '%s\t%s\n' "$k" "${acked[$k]}"; done |
        jq -R -n '[inputs | split("\t") | {key: .[0], value: .[1]}] | from_entries')
    have=$(curl -fsS --max-time 10 "${ep_of[$s]}/v1/maps/orders?sync=1") ||
        fail "$s: GET /v1/maps/orders?sync=1"
    jq -e --argjson want "$want" '(.entries | map({key, value}) | from_entries) as $have
        | [$want | to_entries[] | select($have[.key] != .value)]
        | if length == 0 then true else ("lost: \(.)" | halt_error(1)) end' <<<"$have" \
        >/dev/null || fail "$s lost acknowledged writes"
}

# --- kill the leader and see the re-election ----------------------------------

election_ms=$(env_of "${peers[0]}" HAMOK_ELECTION_TIMEOUT_MS 1000)
peer_timeout_ms=$(env_of "${peers[0]}" HAMOK_PEER_TIMEOUT_MS \
    "$((2 * election_ms > 5000 ? 2 * election_ms : 5000))")
killed=$leader
old_id=${id_of[$killed]}
survivors=()
for s in "${peers[@]}"; do
    [ "$s" = "$killed" ] || survivors+=("$s")
done
t0=$(now_ms)
kill -KILL "${pid_of[$killed]}"
wait "${pid_of[$killed]}" 2>/dev/null || true
pid_of[$killed]=
say "killed the leader $killed (SIGKILL, like docker-compose kill)"
leader=
wait_until $((10 * election_ms)) "a new leader among ${survivors[*]}" \
    agreed_leader 0 "${survivors[@]}"
took=$(($(now_ms) - t0))
bound=$((2 * election_ms + election_ms / 2))
say "$leader leads ${took} ms after the kill (election timeout ${election_ms} ms; bound ${bound} ms)"
[ "$took" -le "$bound" ] || fail "re-election took $took ms (more than $bound ms)"
ctl status | sed 's/^/#   /'
got=$(ctl get orders o-1 --sync) || fail "hamokctl get orders o-1 --sync after the kill"
[ "$got" = pending ] || fail "after the kill, o-1 reads '$got'"
for a in "${survivors[@]}"; do
    n=$((n + 1))
    HAMOK_ENDPOINTS=${ep_of[$a]} ctl put orders "o-$n" "after-$a" >/dev/null ||
        fail "put o-$n through $a after the kill"
    acked[o-$n]=after-$a
done
for s in "${survivors[@]}"; do
    holds_acked "$s"
done
say "the survivors hold all ${#acked[@]} acknowledged writes"

# docker-compose start: the same command and environment again.
start_service "$killed"
wait_healthy "$killed"
id_of[$killed]=$(peer_status "$killed" | jq -r .id)
[ "${id_of[$killed]}" != "$old_id" ] || fail "$killed came back with its old identity"
holds_acked "$killed"
say "$killed restarted: healthy, a new identity (${id_of[$killed]}), holds every acknowledged write"

# The leader removes the dead identity after the peer timeout.
configuration_is_current() {
    local s ids want
    want=$(for s in "${peers[@]}"; do echo "${id_of[$s]}"; done | sort | paste -sd' ' -)
    for s in "${peers[@]}"; do
        ids=$(curl -fsS --max-time 5 "${ep_of[$s]}/v1/peers" |
            jq -r '[.members[].id] | sort | join(" ")') || return 1
        [ "$ids" = "$want" ] || return 1
    done
}
wait_until $((peer_timeout_ms + 4 * election_ms + 5000)) \
    "the configuration to be the ${#peers[@]} running peers" configuration_is_current
say "the dead identity left the configuration (peer timeout ${peer_timeout_ms} ms)"
ctl status | sed 's/^/#   /'

# --- zmq: a key not in allowed_keys cannot talk to the mesh -------------------

if [ "$topology" = zmq ]; then
    for s in "${peers[@]}"; do
        ! grep -q 'refused a connection' "$logs/$s.log" ||
            fail "$s refused a connection of the cluster's own peers"
    done
    intruder_pub=$(ctl keygen --dir "$work/intruder" --name intruder)
    # A fourth peer: the first peer's service with its own ports and key.
    jq --arg base "${peers[0]}" --arg key "$work/intruder/intruder.key" \
        --argjson ports "$(cat "$work/ports.json")" \
        '.intruder = (.[$base] | .env += {
            HAMOK_ZMQ_BIND: "tcp://127.0.0.1:\($ports["intruder:5555"])",
            HAMOK_ZMQ_ADVERTISE: "tcp://127.0.0.1:\($ports["intruder:5555"])",
            HAMOK_HTTP: "127.0.0.1:\($ports["intruder:8080"])",
            HAMOK_ZMQ_CURVE_SECRET: $key})' "$work/plan.json" >"$work/plan2.json"
    mv "$work/plan2.json" "$work/plan.json"
    ep_of[intruder]=http://$(env_of intruder HAMOK_HTTP)
    start_service intruder
    refused_everywhere() {
        local s
        alive intruder || fail "the intruder exited"
        # Each member refuses the key and counts it ("N refusals so far").
        for s in "${peers[@]}"; do
            grep -qF "refused a connection with key $intruder_pub: key not admitted (" \
                "$logs/$s.log" || return 1
        done
    }
    wait_until 20000 "every member refusing the intruder's key" refused_everywhere
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "${ep_of[intruder]}/healthz")
    [ "$code" = 503 ] || fail "the intruder's /healthz answers $code"
    intruder_id=$(peer_status intruder | jq -r .id)
    for s in "${peers[@]}"; do
        ! curl -fsS --max-time 5 "${ep_of[$s]}/v1/peers" | grep -q "$intruder_id" ||
            fail "$s lists the intruder as a member"
    done
    configuration_is_current || fail "the configuration changed while the intruder knocked"
    say "a fresh key not in allowed_keys: every member refused it, e.g. $(grep -ho 'refused a connection with key .* refusals so far)' \
        "$logs/${peers[0]}.log" | tail -n 1)"
    stop_service intruder TERM 10 || fail "the intruder did not stop cleanly"
fi

# --- down: every process stopped by pid ---------------------------------------

for s in "${peers[@]}"; do
    kill -TERM "${pid_of[$s]}"
done
for s in "${peers[@]}"; do
    stop_service "$s" TERM 10 || fail "$s: exit status $? after SIGTERM"
done
for s in "${brokers[@]}"; do
    stop_service "$s" TERM 10 || true # nats-server exits 1 on SIGTERM
done
passed=1
say "passed"
