#![no_main]
//! Each input starts from the same pristine fixture (built once, cloned per input).
use ratchetry::testing::fuzz::{Fixture, decrypt};
use std::sync::OnceLock;

static PRISTINE: OnceLock<Fixture> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut fixture = PRISTINE.get_or_init(Fixture::new).clone();
    decrypt(&mut fixture, data);
});
