#![no_main]
//! A session with the post-quantum ratchet receiving arbitrary messages, and messages its peer
//! sealed with arbitrary extensions. Each input starts from the same pristine fixture.
use ratchetry::testing::fuzz::{PqFixture, pq_receive};
use std::sync::OnceLock;

static PRISTINE: OnceLock<PqFixture> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut fixture = PRISTINE.get_or_init(PqFixture::new).clone();
    pq_receive(&mut fixture, data);
});
