#![no_main]
//! Each input starts from the same pristine fixture (built once, cloned per input).
use ratchetry::testing::fuzz::{GroupFixture, group_decrypt};
use std::sync::OnceLock;

static PRISTINE: OnceLock<GroupFixture> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut fixture = PRISTINE.get_or_init(GroupFixture::new).clone();
    group_decrypt(&mut fixture, data);
});
