#!/usr/bin/env bash
# Enforces the layering of DESIGN.md §2 on the library's own code (src/,
# include/, transports/, tools/). Tests, examples and benchmarks are consumers
# and may use msgpack/zmq/nats directly (e.g. to craft hostile frames).
#
#  1. msgpack only in src/codec.
#  2. zmq/czmq only in transports/zmq (and include/hamok/zmq.h).
#  3. nats.c only in transports/nats (and include/hamok/nats.h).
#  4. The sans-I/O core (src/raft, src/grid, src/collections, src/codec) calls
#     no clock, randomness, socket, file or thread API: time and randomness are
#     inputs.
#  5. src/ layers include only downwards:
#     collections -> grid -> raft -> codec -> util (node and storage: anything).
#  6. transports/ include nothing from src/, only include/hamok/... and their
#     own files; their CMake files do not put src/ on the include path.
#  7. Public headers (include/hamok) include only hamok/... and system headers.
#  8. src/ allocates only through src/util/alloc (hamok_set_allocator).
#
# Comments are ignored; string literals are ignored for the call checks.
# Prints every violation as file:line: reason; exits 1 if there is any.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scan_dirs=(src include transports tools)

# Tracked and untracked-but-not-ignored files (a fresh clone: tracked ones).
list_files() {
    local d existing=()
    for d in "${scan_dirs[@]}"; do
        [ -d "$d" ] && existing+=("$d")
    done
    [ "${#existing[@]}" -eq 0 ] && return 0
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git ls-files --cached --others --exclude-standard -- "${existing[@]}"
    else
        find "${existing[@]}" -type f
    fi | grep -E '\.(c|h|h\.in|inc)$' | sort -u | while read -r f; do
        [ -f "$f" ] && printf '%s\n' "$f"
    done
}

# strip FILE MODE: the file with comments blanked (newlines kept, so line
# numbers hold); MODE=code also blanks the contents of string and char
# literals.
strip() {
    perl -0777 -ne '
        s{(/\*.*?\*/)|(//(?:\\\n|[^\n])*)|("(?:\\.|[^"\\\n])*")|(\x27(?:\\.|[^\x27\\\n])*\x27)}{
            if (defined $1 || defined $2) { my $c = $+; $c =~ s/[^\n]/ /g; $c }
            elsif ($ENV{STRIP_STRINGS}) { my $s = $+; my $q = substr($s, 0, 1);
                                         $q . (" " x (length($s) - 2)) . $q }
            else { $+ }
        }gse;
        print;
    ' "$1"
}

bad=0
fail() {
    echo "layering: $*"
    bad=1
}

# report_matches FILE REGEX REASON: each line of FILE (comments and strings
# blanked) matching REGEX is a violation.
report_matches() {
    local out line text
    out=$(STRIP_STRINGS=1 strip "$1" | grep -n -E "$2" || true)
    [ -n "$out" ] || return 0
    while IFS=: read -r line text; do
        text=$(printf '%s' "$text" | sed -E 's/^[[:space:]]+//; s/[[:space:]]+/ /g')
        fail "$1:$line: $3: $text"
    done <<<"$out"
}
# Calls at word start that are not members (x.time(), x->rand()).
call='(^|[^A-Za-z0-9_.>])'
sansio_re="${call}(s?rand|random|time|clock_gettime|gettimeofday|socket|fopen)[[:space:]]*\\(|(^|[^A-Za-z0-9_])pthread_|#[[:space:]]*include[[:space:]]*<(pthread|threads|time|sys/time|sys/socket)\\.h>"
alloc_re="${call}(malloc|calloc|realloc|free|strdup|strndup|aligned_alloc|posix_memalign)[[:space:]]*\\("

mapfile -t files < <(list_files)

# Layer rank for the downward-only rule; unranked layers (node, storage) may
# include anything.
rank() {
    case "$1" in
    util) echo 1 ;;
    codec) echo 2 ;;
    raft) echo 3 ;;
    grid) echo 4 ;;
    collections) echo 5 ;;
    *) echo 0 ;;
    esac
}
src_layers='util|codec|raft|grid|collections|storage|node'
czmq_classes='zactor|zarmour|zargs|zauth|zbeacon|zcert|zcertstore|zchunk|zclock|zconfig|zdigest|zdir|zdir_patch|zfile|zframe|zgossip|zhash|zhashx|ziflist|zlist|zlistx|zloop|zmonitor|zmsg|zpoller|zproc|zproxy|zrex|zsock|zstr|zsys|ztimerset|ztrie|zuuid'

for f in "${files[@]}"; do
    dir=${f%/*}
    # --- includes (comments stripped, strings kept) ---
    while IFS=: read -r line target; do
        [ -n "$target" ] || continue
        # msgpack
        if [[ "$target" =~ ^msgpack(\.h$|/) ]] && [[ "$f" != src/codec/* ]]; then
            fail "$f:$line: includes <$target>: msgpack belongs in src/codec only"
        fi
        # zmq / czmq
        if [[ "$target" =~ ^(zmq|zmq_utils|czmq|czmq_library|czmq_prelude|zyre)\.h$ ||
            "$target" =~ ^($czmq_classes)\.h$ ]] &&
            [[ "$f" != transports/zmq/* && "$f" != include/hamok/zmq.h ]]; then
            fail "$f:$line: includes <$target>: zmq/czmq belongs in transports/zmq only"
        fi
        # nats.c
        if [[ "$target" =~ ^nats(\.h$|/) ]] &&
            [[ "$f" != transports/nats/* && "$f" != include/hamok/nats.h ]]; then
            fail "$f:$line: includes <$target>: nats.c belongs in transports/nats only"
        fi
        # transports/ -> include/hamok only
        if [[ "$f" == transports/* ]]; then
            if [[ "$target" == *..* || "$target" == src/* || "$target" =~ ^($src_layers)/ ]] ||
                { [[ "$target" != hamok/* ]] && [ -e "src/$target" ] && [ ! -e "$dir/$target" ]; }; then
                fail "$f:$line: includes \"$target\" from src/: transports may include only hamok/... (include/hamok)"
            fi
        fi
        # public headers -> hamok/... or system headers
        if [[ "$f" == include/* ]]; then
            if [[ "$target" == *..* || "$target" == src/* || "$target" =~ ^($src_layers)/ ]]; then
                fail "$f:$line: public header includes \"$target\" from src/"
            fi
        fi
        # src/ layers include downwards only
        if [[ "$f" =~ ^src/([a-z_]+)/ ]]; then
            from=${BASH_REMATCH[1]}
            if [[ "$target" =~ ^($src_layers)/ ]]; then
                to=${BASH_REMATCH[1]}
                rf=$(rank "$from")
                rt=$(rank "$to")
                if [ "$rf" -gt 0 ] && { [ "$rt" -eq 0 ] || [ "$rt" -gt "$rf" ]; }; then
                    fail "$f:$line: src/$from includes \"$target\": layers go collections -> grid -> raft -> codec -> util"
                fi
            fi
        fi
    done < <(STRIP_STRINGS='' strip "$f" |
        sed -n -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]([^>"]+)[>"].*/\1/p; t; s/.*//p' |
        awk '{ if ($0 != "") print NR ":" $0 }')

    # --- calls (comments and strings stripped) ---
    case "$f" in
    src/raft/* | src/grid/* | src/collections/* | src/codec/*)
        report_matches "$f" "$sansio_re" \
            "I/O, clock, randomness or threads in the sans-I/O core"
        ;;
    esac
    case "$f" in
    src/util/alloc.c) ;;
    src/*) report_matches "$f" "$alloc_re" "raw libc allocation (use src/util/alloc.h)" ;;
    esac
done

# transports/*/CMakeLists.txt must not reach into src/.
if [ -d transports ]; then
    while IFS= read -r cm; do
        hits=$(grep -n -E '(PROJECT_SOURCE_DIR|CMAKE_SOURCE_DIR|hamok_SOURCE_DIR)[^ )]*/src\b|\.\./src\b' "$cm" || true)
        [ -n "$hits" ] || continue
        while IFS=: read -r line text; do
            fail "$cm:$line: puts src/ on a transport's include path (transports may use include/hamok only): $text"
        done <<<"$hits"
    done < <(find transports -name CMakeLists.txt -o -name '*.cmake' | sort)
fi

if [ "$bad" -eq 0 ]; then
    echo "layering: ${#files[@]} files clean"
fi
exit "$bad"
