#!/usr/bin/env bash
# Instruction counts of the hot paths (checks/instructions) under callgrind, against the
# committed baseline checks/instructions/baseline.txt: an op more than 5% above its baseline
# fails. Counts depend on the compiler, so the baseline names its toolchain and the script
# builds with that one (installing it if missing). Valgrind runs the portable SHA-256 (it does
# not execute the SHA extensions), so these counts are not a wall-clock model: read them as
# regressions of our own code.
#   bash .ci/instructions.sh           check
#   bash .ci/instructions.sh --bless   write the baseline from this run
set -euo pipefail
cd "$(dirname "$0")/.."
baseline=checks/instructions/baseline.txt
tolerance_percent=5
toolchain=$(sed -n 's/^# toolchain \(.*\)$/\1/p' "$baseline")
: "${toolchain:?the baseline names no toolchain}"

if ! command -v valgrind >/dev/null 2>&1; then
    echo "installing valgrind"
    sudo apt-get install -y valgrind >/dev/null 2>&1 || apt-get install -y valgrind >/dev/null
fi
rustup toolchain install "$toolchain" --profile minimal >/dev/null 2>&1
# Its own target directory: another toolchain's artifacts would rebuild the main ones.
export CARGO_TARGET_DIR="$PWD/target/instructions"
# One codegen unit: with the default sixteen, which functions share a unit (and so what LLVM
# inlines) moved with unrelated changes elsewhere in the crate, and the session decoder's
# count with it (+42% on the load floor after a change to the session set alone). One unit
# makes each count depend on the code it measures; it is also how size-minded mobile and web
# release builds compile.
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
cargo +"$toolchain" build --locked --release -p ratchetry-instructions
bin="$CARGO_TARGET_DIR/release/ratchetry-instructions"

count() { # op -> instructions collected in `counted`
    valgrind --tool=callgrind --callgrind-out-file=/dev/null '--toggle-collect=*counted*' \
        "$bin" "$1" 2>&1 | sed -n 's/^==[0-9]*== Collected : \([0-9]*\)$/\1/p'
}

fresh=$(mktemp)
trap 'rm -f "$fresh"' EXIT
echo "# toolchain $toolchain" >"$fresh"
echo "# op instructions-per-run (callgrind Ir, collected inside counted, divided by the runs)" >>"$fresh"
failed=0
while read -r op iterations; do
    total=$(count "$op")
    [[ -n "$total" ]] || { echo "no count for $op"; exit 1; }
    per=$(( total / iterations ))
    echo "$op $per" >>"$fresh"
    old=$(awk -v op="$op" '$1 == op { print $2 }' "$baseline")
    if [[ -z "$old" ]]; then
        printf '%-28s %12d  (new: not in the baseline)\n' "$op" "$per"
        [[ "${1:-}" == --bless ]] || failed=1
        continue
    fi
    change=$(awk -v n="$per" -v o="$old" 'BEGIN { printf "%+.2f", (n - o) * 100 / o }')
    printf '%-28s %12d  baseline %12d  %s%%\n' "$op" "$per" "$old" "$change"
    if awk -v c="$change" -v t="$tolerance_percent" 'BEGIN { exit !(c > t) }'; then
        echo "REGRESSION: $op is $change% above its baseline (tolerance $tolerance_percent%)"
        failed=1
    fi
done < <("$bin" --list)

if [[ "${1:-}" == --bless ]]; then
    cp "$fresh" "$baseline"
    echo "baseline written: $baseline"
elif [[ $failed -ne 0 ]]; then
    echo "instruction counts regressed (or an op has no baseline): see above; if intended, say why in the commit and re-run with --bless"
    exit 1
fi
