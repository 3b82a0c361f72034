//! Test support shared by the crate's tests, benches, examples and fuzz targets, behind the
//! `test-support` feature. **Not part of the supported API**: it may change in any release, and
//! [`SeededRng`] must never be used outside tests (it is deterministic by design).
//!
//! - [`SeededRng`]: the deterministic generator behind the protocol vectors;
//! - [`fuzz`]: the entry points of the cargo-fuzz targets, replayed by `cargo test`;
//! - [`hooks`]: internal values (KDF outputs, session keys) the vectors check;
//! - [`scale`]: a device with a large address book, for the scale bench and memory check;
//! - [`raw`]: the bare primitives, for published vectors and bench floors.
// The fuzz entry points report broken invariants by panicking: that is how fuzzers see them.
#![allow(clippy::panic)]

pub mod fuzz;
pub mod hooks;
pub mod pq;
pub mod scale;
pub mod vectors;

/// Bare primitives through the crate's own wrappers: for published test vectors and the
/// benches' floors.
pub mod raw {
    pub use crate::primitives::raw::*;
}

use core::convert::Infallible;
use rand_core::{TryCryptoRng, TryRng};
use sha2::{Digest, Sha256};

/// The deterministic generator behind the protocol test vectors: output block `i` (from 0) is
/// SHA-256(seed ‖ u64_be(i)), and the stream is the blocks concatenated. Specified in
/// test-vectors/README.md so other implementations can replay the vectors.
#[derive(Clone)]
pub struct SeededRng {
    seed: [u8; 32],
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl SeededRng {
    /// A generator for `seed`.
    pub fn new(seed: [u8; 32]) -> Self {
        Self {
            seed,
            counter: 0,
            block: [0; 32],
            used: 32,
        }
    }

    /// A generator whose seed is SHA-256 of `label` (handy for readable test seeds).
    pub fn from_label(label: &str) -> Self {
        Self::new(Sha256::digest(label.as_bytes()).into())
    }
}

impl TryRng for SeededRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for byte in dst {
            if self.used == 32 {
                let mut h = Sha256::new();
                h.update(self.seed);
                h.update(self.counter.to_be_bytes());
                self.block = h.finalize().into();
                self.counter += 1;
                self.used = 0;
            }
            *byte = self.block[self.used];
            self.used += 1;
        }
        Ok(())
    }
}

impl TryCryptoRng for SeededRng {}
