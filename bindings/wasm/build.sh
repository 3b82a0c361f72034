#!/usr/bin/env bash
# Builds the web package into bindings/wasm/pkg: the wasm (release, wasm32-unknown-unknown),
# the ES module and TypeScript declarations from the wasm-bindgen step (bindgen/, the exact
# wasm-bindgen version of Cargo.lock), then wasm-opt (npm `binaryen`, installed by
# `npm ci` in test/) with debug info and producers stripped, and the npm manifest (package.json).
# Prints the sizes.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
target="${CARGO_TARGET_DIR:-$root/target}"
pkg="$root/bindings/wasm/pkg"
# One codegen unit with fat LTO: 12% less wasm and a few percent faster than the workspace's
# release profile (whose parallel codegen suits the native builds).
cargo build --locked -p ratchetry-wasm --release --lib --target wasm32-unknown-unknown \
    --config 'profile.release.lto="fat"' --config 'profile.release.codegen-units=1'
# The bindgen tool runs for a second; its dependencies are not worth optimizing.
cargo build --locked -p ratchetry-wasm-bindgen \
    --config 'profile.dev.package."*".opt-level=0' --config 'profile.dev.debug=0'
raw="$target/wasm32-unknown-unknown/release/ratchetry_wasm.wasm"
rm -rf "$pkg"
"$target/debug/ratchetry-wasm-bindgen" "$raw" "$pkg"
wasm="$pkg/ratchetry_wasm_bg.wasm"
bindgen_size=$(stat -c %s "$wasm")
opt="$root/bindings/wasm/test/node_modules/.bin/wasm-opt"
if [[ -x "$opt" ]]; then
    "$opt" -O3 --strip-debug --strip-producers \
        --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
        --enable-mutable-globals --enable-reference-types --enable-multivalue \
        "$wasm" -o "$wasm.opt"
    mv "$wasm.opt" "$wasm"
else
    echo "wasm-opt not found (run npm ci in bindings/wasm/test): the wasm is not optimised" >&2
fi
# The npm package's manifest: an ES module with its TypeScript declarations, for bundlers and
# for browsers that import it directly (the app calls the default export, `init`, once). The
# module imports snippets/ (the JavaScript that builds the per-message objects, convert.rs).
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/bindings/wasm/Cargo.toml" | head -1)
cat >"$pkg/package.json" <<JSON
{
  "name": "ratchetry-wasm",
  "version": "$version",
  "description": "End-to-end encrypted messaging across linked devices, for web companions: ratchetry compiled to WebAssembly.",
  "license": "MIT OR Apache-2.0",
  "type": "module",
  "main": "./ratchetry_wasm.js",
  "types": "./ratchetry_wasm.d.ts",
  "exports": {
    ".": { "types": "./ratchetry_wasm.d.ts", "default": "./ratchetry_wasm.js" },
    "./ratchetry_wasm_bg.wasm": "./ratchetry_wasm_bg.wasm"
  },
  "files": ["ratchetry_wasm.js", "ratchetry_wasm.d.ts", "ratchetry_wasm_bg.wasm", "ratchetry_wasm_bg.wasm.d.ts", "snippets/"],
  "sideEffects": false
}
JSON
printf 'wasm sizes: cargo %s bytes, after wasm-bindgen %s, after wasm-opt -O3 and strip %s (gzip -9: %s)\n' \
    "$(stat -c %s "$raw")" "$bindgen_size" "$(stat -c %s "$wasm")" "$(gzip -9c "$wasm" | wc -c)"
