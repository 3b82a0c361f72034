#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ratchetry_sqlite::fuzzing::meta(data));
