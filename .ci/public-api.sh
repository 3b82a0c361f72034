#!/usr/bin/env bash
# The public API of ratchetry, as cargo-public-api lists it from rustdoc's JSON (nightly), must
# match the committed `public-api.txt`: an API change shows up in review as a diff of that
# file. After an intended change: `.ci/public-api.sh --bless`.
set -euo pipefail
cd "$(dirname "$0")/.."

version=0.52.0
if ! cargo public-api --version 2>/dev/null | grep -q "$version"; then
    echo "installing cargo-public-api $version"
    cargo install cargo-public-api --locked --version "$version"
fi
# rustdoc's JSON format changes between nightlies: use the machine's nightly, else the one this
# cargo-public-api version was checked with.
nightly=nightly
if ! cargo +nightly --version >/dev/null 2>&1; then
    nightly=nightly-2026-05-19
    rustup toolchain install "$nightly" --profile minimal
fi

current=$(mktemp)
trap 'rm -f "$current"' EXIT
# The documented API: default features plus `os-rng`; `test-support` is not part of it.
cargo +"$nightly" public-api --package ratchetry --features os-rng -sss >"$current"

if [ "${1:-}" = "--bless" ]; then
    cp "$current" public-api.txt
    echo "public-api.txt updated ($(wc -l <public-api.txt) lines)"
    exit 0
fi
if ! diff -u public-api.txt "$current"; then
    echo "PUBLIC API CHANGED: review the diff above; if intended, run .ci/public-api.sh --bless"
    exit 1
fi
echo "public API unchanged ($(wc -l <public-api.txt) items)"
