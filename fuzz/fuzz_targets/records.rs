#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ratchetry::testing::fuzz::records(data));
