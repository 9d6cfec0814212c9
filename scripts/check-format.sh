#!/usr/bin/env bash
# Fails when a tracked C file differs from what .clang-format produces.
set -euo pipefail
cd "$(dirname "$0")/.."
fmt=${CLANG_FORMAT:-clang-format}
command -v "$fmt" >/dev/null || fmt=clang-format-14
files=$(git ls-files '*.c' '*.h' '*.h.in' | grep -v '^tests/fuzz/corpus/' || true)
bad=0
for f in $files; do
    if ! diff -q <("$fmt" --style=file "$f") "$f" >/dev/null; then
        echo "format: $f differs from clang-format output (run: $fmt -i $f)"
        bad=1
    fi
done
[ "$bad" -eq 0 ] && echo "format: $(echo "$files" | wc -w) files clean"
exit "$bad"
