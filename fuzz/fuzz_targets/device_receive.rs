#![no_main]
//! Each input starts from the same pristine fixture (built once, cloned per input).
use ratchetry::testing::fuzz::{FanoutFixture, device_receive};
use std::sync::OnceLock;

static PRISTINE: OnceLock<FanoutFixture> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut fixture = PRISTINE.get_or_init(FanoutFixture::new).clone();
    device_receive(&mut fixture, data);
});
