//! The UniFFI bindings generator, pinned to this crate's uniffi version.
//!
//! ```sh
//! cargo build -p ratchetry-uniffi --release
//! cargo run -p ratchetry-uniffi --features cli --bin uniffi-bindgen -- \
//!     generate --library target/release/libratchetry_uniffi.so --language python --out-dir out
//! ```

fn main() {
    uniffi::uniffi_bindgen_main()
}
