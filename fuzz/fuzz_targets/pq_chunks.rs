#![no_main]
//! The post-quantum ratchet's state machine taking in arbitrary (authenticated) extensions.
//! Each input starts from the same pristine fixture (built once, cloned per input).
use ratchetry::testing::fuzz::{PqChunksFixture, pq_chunks};
use std::sync::OnceLock;

static PRISTINE: OnceLock<PqChunksFixture> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut fixture = PRISTINE.get_or_init(PqChunksFixture::new).clone();
    pq_chunks(&mut fixture, data);
});
