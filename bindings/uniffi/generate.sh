#!/usr/bin/env bash
# Builds the cdylib and generates the Python, Kotlin and Swift sources from it:
#   bindings/uniffi/out/{python,kotlin,swift}; the Python module gets the cdylib beside it, and
#   the Kotlin module (bindings/uniffi/kotlin) gets it in out/kotlin-resources under JNA's
#   platform folder, so its jar carries the library its sources were generated from.
# The generator (uniffi-bindgen, this crate's bin) is built unoptimized: it runs for a second,
# and its dependencies (clap, askama, goblin, ...) take minutes to optimize.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
target="${CARGO_TARGET_DIR:-$root/target}"
out="$root/bindings/uniffi/out"
cargo build --locked -p ratchetry-uniffi --release --lib
cargo build --locked -p ratchetry-uniffi --features cli --bin uniffi-bindgen \
    --config 'profile.dev.package."*".opt-level=0' --config 'profile.dev.debug=0'
lib="$target/release/libratchetry_uniffi.so"
for language in python kotlin swift; do
    rm -rf "${out:?}/$language"
    "$target/debug/uniffi-bindgen" generate --library "$lib" --language "$language" \
        --out-dir "$out/$language" --no-format
done
cp "$lib" "$out/python/"
case "$(uname -m)" in
    x86_64 | amd64) jna_platform=linux-x86-64 ;;
    *) jna_platform="linux-$(uname -m)" ;;
esac
rm -rf "${out:?}/kotlin-resources"
mkdir -p "$out/kotlin-resources/$jna_platform"
cp "$lib" "$out/kotlin-resources/$jna_platform/"
