#!/usr/bin/env bash
# Installs the Debian packages Hamok needs to build and test, only the ones
# that are missing. Non-interactive; uses sudo when not run as root.
#
#   scripts/install-deps.sh            install what is missing
#   scripts/install-deps.sh --check    only report what is missing (exit 1 if any)
set -euo pipefail

packages=(
    # toolchain
    build-essential cmake pkg-config git clang-format
    # libFuzzer targets (tests/fuzz)
    clang-14 libclang-rt-14-dev libfuzzer-14-dev
    # library and unit tests
    libmsgpack-dev libcmocka-dev
    # transports (transports/zmq, transports/nats) and their integration tests
    libzmq3-dev libczmq-dev libnats-dev nats-server
    # certificates the NATS TLS tests make (tests/nats)
    openssl
    # remote map backend examples and tests
    libhiredis-dev redis-server
    # hamokctl: HTTP server, JSON, HTTP client; jq for the demo script
    libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev jq curl
    # validation of the compose files in docker/ (no Docker engine needed)
    docker-compose
)

check_only=0
case "${1:-}" in
--check) check_only=1 ;;
"") ;;
*)
    echo "usage: $0 [--check]" >&2
    exit 2
    ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "install-deps: dpkg-query not found; this script supports Debian/Ubuntu only." >&2
    echo "install-deps: needed packages: ${packages[*]}" >&2
    exit 1
fi

missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    if [ "$status" != "install ok installed" ]; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-deps: all ${#packages[@]} packages present"
    exit 0
fi
echo "install-deps: missing: ${missing[*]}"
if [ "$check_only" -eq 1 ]; then
    exit 1
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install-deps: not root and sudo is not installed; install as root: apt-get install ${missing[*]}" >&2
        exit 1
    fi
    sudo=(sudo)
fi

apt_opts=(-y -q -o DPkg::Lock::Timeout=600
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
# `env` carries DEBIAN_FRONTEND through sudo's environment reset.
run_apt() {
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" "$@" </dev/null
}

run_apt update
run_apt install --no-install-recommends "${missing[@]}"

# Verify: a package that apt-get could not configure must not pass silently.
still=()
for p in "${missing[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || still+=("$p")
done
if [ "${#still[@]}" -ne 0 ]; then
    echo "install-deps: still missing after apt-get install: ${still[*]}" >&2
    exit 1
fi
echo "install-deps: installed ${missing[*]}"
