#!/usr/bin/env bash
# Fails when a C file differs from what .clang-format (clang-format 14)
# produces. Checks tracked files and untracked files that are not ignored.
#
#   scripts/check-format.sh          check
#   scripts/check-format.sh --fix    rewrite the files in place
#
# CMake templates (*.in) are not checked: clang-format turns @VAR@ into
# "@VAR @", which configure_file no longer substitutes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fix=0
case "${1:-}" in
--fix) fix=1 ;;
"") ;;
*)
    echo "usage: $0 [--fix]" >&2
    exit 2
    ;;
esac

# The style is pinned to clang-format 14 (Debian 12's); other versions format
# differently, so prefer the versioned binary.
fmt=${CLANG_FORMAT:-}
if [ -z "$fmt" ]; then
    for c in clang-format-14 clang-format; do
        if command -v "$c" >/dev/null 2>&1; then
            fmt=$c
            break
        fi
    done
fi
if [ -z "$fmt" ] || ! command -v "$fmt" >/dev/null 2>&1; then
    echo "format: clang-format not found (scripts/install-deps.sh installs it)" >&2
    exit 2
fi
if ! "$fmt" --version | grep -q 'version 14\.'; then
    echo "format: warning: $("$fmt" --version) is not clang-format 14; results may differ from CI" >&2
fi

mapfile -t files < <(git ls-files --cached --others --exclude-standard -- '*.c' '*.h' |
    grep -v -E '^tests/fuzz/corpus/|^build' | sort -u)

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
bad=0
n=0
for f in "${files[@]}"; do
    [ -f "$f" ] || continue # deleted in the work tree
    n=$((n + 1))
    if ! "$fmt" --style=file "$f" >"$tmp"; then
        echo "format: $fmt failed on $f"
        bad=1
        continue
    fi
    cmp -s "$f" "$tmp" && continue
    if [ "$fix" -eq 1 ]; then
        cat "$tmp" >"$f"
        echo "format: fixed $f"
    else
        echo "format: $f differs from clang-format output (run: $fmt -i $f)"
        diff -u "$f" "$tmp" | sed -n '3,30p' | sed 's/^/    /' || true
        bad=1
    fi
done
[ "$bad" -eq 0 ] && echo "format: $n files clean"
exit "$bad"
