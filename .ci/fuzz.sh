#!/usr/bin/env bash
# Short fuzz runs of every cargo-fuzz target, starting from its committed seed corpus
# (tests/fuzz-corpus/<target>, which the published crate carries).
# New inputs go to a temporary directory, so the committed corpus never changes in CI.
# FUZZ_SECONDS (default 20) per target, or FUZZ_RUNS executions per target (a campaign:
# `FUZZ_RUNS=10000000 .ci/fuzz.sh`); FUZZ_TARGETS="a b" runs only those targets. A crash or a
# broken invariant fails the script; each target's executions and time are printed.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
if cargo +nightly --version >/dev/null 2>&1; then
    fuzz() { cargo +nightly fuzz "$@"; }
    echo "fuzzing with $(cargo +nightly --version)"
else
    fuzz() { RUSTC_BOOTSTRAP=1 cargo fuzz "$@"; }
    echo "no nightly toolchain: fuzzing on stable with RUSTC_BOOTSTRAP=1"
fi

seconds="${FUZZ_SECONDS:-20}"
if [[ -n "${FUZZ_RUNS:-}" ]]; then
    limit=(-runs="$FUZZ_RUNS")
    budget="$FUZZ_RUNS runs"
else
    limit=(-max_total_time="$seconds")
    budget="${seconds}s"
fi
targets=${FUZZ_TARGETS:-$(cd fuzz/fuzz_targets && ls *.rs | sed 's/\.rs$//')}
fuzz build
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in $targets; do
    mkdir -p "$scratch/$t"
    log="$scratch/$t.log"
    began=$(date +%s)
    if ! fuzz run "$t" "$scratch/$t" "tests/fuzz-corpus/$t" -- "${limit[@]}" >"$log" 2>&1; then
        tail -n 200 "$log"
        echo "FUZZ FAILURE: target $t (artifacts under fuzz/artifacts/$t)"
        exit 1
    fi
    runs=$(grep -Eo 'Done [0-9]+ runs' "$log" | tail -n 1 || true)
    echo "fuzz $t: ${runs:-finished} ($budget) in $(( $(date +%s) - began ))s"
done
