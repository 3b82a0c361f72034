#![no_main]
//! The post-quantum ratchet's state machine taking in arbitrary (authenticated) extensions.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ratchetry::testing::fuzz::pq_chunks(data);
});
