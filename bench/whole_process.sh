#!/bin/sh
# Issue 16's whole-process table: each command on FILE (--no-cache), ROUNDS rounds
# interleaved across the ftfast executables given, wall seconds and peak RSS from
# /usr/bin/time, beside wc -l and grep in the same rounds.  Prints one line a run:
#   label<TAB>command<TAB>wall_s<TAB>user_s<TAB>sys_s<TAB>max_rss_kB
#   sh bench/whole_process.sh FILE ROUNDS before=/path/to/old/ftfast after=/path/to/ftfast
set -eu
# an installed package runs from its bytecode: with writing it off, each run compiles again
unset PYTHONDONTWRITEBYTECODE
file=$1 rounds=$2
shift 2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run() {  # label, command words...
    label=$1
    shift
    /usr/bin/time -f "%e %U %S %M" -o "$out/t" "$@" > /dev/null 2> "$out/err" || {
        echo "$label: $* failed: $(tail -1 "$out/err")" >&2; exit 1; }
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$*" $(cat "$out/t")
}
pattern='KVM|qemu|vhost'
i=0
while [ $i -lt "$rounds" ]; do
    run floor wc -l "$file"
    run floor sh -c "grep -E '$pattern' '$file' | wc -l"
    run floor sh -c "grep -E '$pattern' '$file' > '$out/grep.txt'"
    rm -f "$out/grep.txt"
    for spec in "$@"; do
        label=${spec%%=*} exe=${spec#*=}
        run "$label" "$exe" info "$file" --no-cache
        run "$label" "$exe" stats "$file" --no-cache
        run "$label" "$exe" diagnose "$file" --no-cache
        run "$label" "$exe" stats "$file" --switch-stats --no-cache
        run "$label" "$exe" filter "$file" --comm "$pattern" -o "$out/f.txt" --no-cache
        rm -f "$out/f.txt"
    done
    i=$((i + 1))
done
