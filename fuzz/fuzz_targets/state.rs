#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ratchetry::testing::fuzz::state(data);
    ratchetry::testing::fuzz::sealed_state(data);
});
