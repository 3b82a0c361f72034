#!/usr/bin/env bash
# CI for the bindings (bindings/README.md): installs what they need on a clean machine, builds
# the UniFFI bindings and runs the Python suite, compiles the Kotlin binding and runs its JUnit
# suite through Maven (which fetches the Kotlin compiler, JNA and JUnit itself), builds the wasm
# package and runs the browser test in headless Chromium. Every step fails the run. Set
# BINDINGS_CLIPPY=1 to also run clippy on the binding crates (a few more minutes from a cold cache).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
step() { printf '\n==== bindings: %s (t+%ss)\n' "$1" "$(( $(date +%s) - start ))"; }
die() { echo "bindings CI: $*" >&2; exit 1; }

step "install: chromium (apt, in the background), wasm32 target, pytest, npm packages"
# A JDK and Maven come with this kind of machine; elsewhere, Debian's (before chromium's apt).
if ! command -v mvn >/dev/null || ! command -v javac >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq maven default-jdk-headless
fi
apt_log=$(mktemp)
if ! command -v chromium >/dev/null; then
    ( apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium ) \
        >"$apt_log" 2>&1 &
    apt_pid=$!
else
    apt_pid=
fi
rustup target add wasm32-unknown-unknown
python3 -c 'import pytest' 2>/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check pytest
# playwright-core (drives the system Chromium; downloads no browser), binaryen (wasm-opt) and
# typescript (checks the npm package's declarations).
(cd bindings/wasm/test && npm ci --no-audit --no-fund)

step "wasm-bindgen: the CLI step's version equals the wasm-bindgen crate's in Cargo.lock"
lock_version() {
    awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print }' Cargo.lock
}
crate=$(lock_version wasm-bindgen)
cli=$(lock_version wasm-bindgen-cli-support)
[[ -n "$crate" && "$crate" == "$cli" ]] ||
    die "wasm-bindgen $crate but wasm-bindgen-cli-support $cli in Cargo.lock"
echo "wasm-bindgen $crate"

step "cargo fmt --check (binding crates)"
cargo fmt --check -p ratchetry-uniffi -p ratchetry-wasm -p ratchetry-wasm-bindgen

step "uniffi: build the cdylib, generate Python, Kotlin and Swift"
bash bindings/uniffi/generate.sh
for f in python/ratchetry_uniffi.py kotlin/uniffi/ratchetry_uniffi/ratchetry_uniffi.kt \
    kotlin-resources/linux-x86-64/libratchetry_uniffi.so swift/ratchetry_uniffi.swift; do
    [[ -s "bindings/uniffi/out/$f" ]] || die "bindings/uniffi/out/$f was not generated"
done

step "uniffi: pytest through the Python module"
python3 -m pytest -q bindings/uniffi/tests

step "uniffi: Kotlin on the JVM (Maven: kotlinc, JUnit through Surefire, the jar with the cdylib, install)"
kotlin=bindings/uniffi/kotlin
rm -rf "$kotlin/target"
mvn -B -q -f "$kotlin/pom.xml" install
jar tf "$kotlin"/target/ratchetry-*.jar | grep -x 'linux-x86-64/libratchetry_uniffi.so' >/dev/null ||
    die "the jar does not carry linux-x86-64/libratchetry_uniffi.so"
# Maven failed the run on a failed test; -q hides Surefire's counts, so they come from its reports.
tests=$(sed -n 's/.*<testsuite [^>]* tests="\([0-9]*\)".*/\1/p' "$kotlin"/target/surefire-reports/TEST-*.xml |
    awk '{ t += $1 } END { print t + 0 }')
(( tests > 0 )) || die "Kotlin: no JUnit test ran"
echo "Kotlin (JUnit): $tests tests passed; the jar is installed in the local Maven repository"

step "wasm: the binding's own unit tests (natively: its batched randomness)"
cargo test --locked -q -p ratchetry-wasm --lib

step "wasm: build the package (cargo, wasm-bindgen step, wasm-opt)"
bash bindings/wasm/build.sh
[[ -s bindings/wasm/pkg/ratchetry_wasm.d.ts ]] || die "no TypeScript declarations generated"

step "wasm: the npm package packs, installs and type-checks as an app imports it"
tarballs=$(mktemp -d)
(cd bindings/wasm/pkg && npm pack --silent --pack-destination "$tarballs" >/dev/null)
tarball=$(ls "$tarballs"/ratchetry-wasm-*.tgz)
# The listing first: `tar | grep -q` would end tar early with SIGPIPE, a failure under pipefail.
listing=$(tar tzf "$tarball")
for f in package.json ratchetry_wasm.js ratchetry_wasm.d.ts ratchetry_wasm_bg.wasm; do
    grep -qx "package/$f" <<<"$listing" || die "the npm package lacks $f"
done
# And every module the ES module imports (its snippets/).
for f in $(sed -n "s|^import .* from '\./\(.*\)';$|\1|p" bindings/wasm/pkg/ratchetry_wasm.js); do
    grep -qx "package/$f" <<<"$listing" || die "the npm package lacks $f, which the module imports"
done
(cd bindings/wasm/test && npm install --no-save --no-audit --no-fund "$tarball" >/dev/null &&
    node_modules/.bin/tsc -p tsconfig.json)
rm -rf "$tarballs"

step "wasm: the package in Node (the objects a message yields own their bytes)"
(cd bindings/wasm/test && node --test node.test.mjs)

step "wasm: browser tests in headless Chromium (the demo; the companion across a reload)"
if [[ -n "$apt_pid" ]]; then
    wait "$apt_pid" || { cat "$apt_log" >&2; die "apt-get install chromium failed"; }
fi
command -v chromium >/dev/null || die "chromium is not installed"
(cd bindings/wasm/test && node --test browser.test.mjs)
[[ -s bindings/wasm/test/screenshot.png ]] || die "no screenshot saved"

if [[ "${BINDINGS_CLIPPY:-}" == 1 ]]; then
    step "clippy (binding crates)"
    cargo clippy --locked -p ratchetry-uniffi -p ratchetry-wasm -p ratchetry-wasm-bindgen \
        --all-targets -- -D warnings
fi

step "done"
