//! The wasm-bindgen step for `bindings/wasm`: turns the compiled `.wasm` into an ES module
//! (`--target web`), its TypeScript declarations and the processed `.wasm`.
//!
//! It links `wasm-bindgen-cli-support` at exactly the version of the `wasm-bindgen` crate in
//! the workspace's Cargo.lock (both pinned with `=`), so the schema always matches, and it
//! compiles in a fraction of the time `cargo install wasm-bindgen-cli` takes.
//!
//! Usage: `ratchetry-wasm-bindgen <input.wasm> <out-dir>`

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, out_dir] = args.as_slice() else {
        eprintln!("usage: ratchetry-wasm-bindgen <input.wasm> <out-dir>");
        return ExitCode::from(2);
    };
    let result = wasm_bindgen_cli_support::Bindgen::new()
        .input_path(input)
        .typescript(true)
        // As the CLI does: `init()` with no argument fetches the .wasm beside the module.
        .omit_default_module_path(false)
        .remove_name_section(true)
        .remove_producers_section(true)
        .web(true)
        .and_then(|b| b.generate(out_dir));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wasm-bindgen failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
