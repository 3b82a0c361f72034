//! Randomness for one call into the library: the browser's `crypto.getRandomValues`, fetched in
//! one batch per call rather than once per draw. A crossing to JavaScript costs far more than the
//! bytes it brings (a 1:1 send crossed three times, a tenth of its time), and a call draws tens
//! of bytes. The batch lives only as long as the call's generator: bytes are wiped as they are
//! served and the rest when it is dropped, so no randomness outlives the call that fetched it.
//!
//! It owns the batch; it must not keep anything across calls.

use rand_core::{TryCryptoRng, TryRng, UnwrapErr};
use zeroize::Zeroize;

/// Bytes fetched per crossing: a send draws 32 to 64, key generation 32 per key.
const BATCH: usize = 128;

/// A call's generator: batches of the browser's randomness, each byte served once.
pub(crate) struct BatchRng {
    batch: [u8; BATCH],
    served: usize,
}

impl BatchRng {
    /// Fetches the first batch, so that a browser without `crypto.getRandomValues` fails here,
    /// with a typed error, not inside the library.
    pub(crate) fn new() -> Result<UnwrapErr<Self>, getrandom::Error> {
        let mut batch = [0u8; BATCH];
        getrandom::fill(&mut batch)?;
        Ok(UnwrapErr(Self { batch, served: 0 }))
    }
}

impl TryRng for BatchRng {
    type Error = getrandom::Error;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut bytes = [0u8; 4];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut bytes = [0u8; 8];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, mut dst: &mut [u8]) -> Result<(), Self::Error> {
        while !dst.is_empty() {
            if self.served == BATCH {
                getrandom::fill(&mut self.batch)?;
                self.served = 0;
            }
            let n = dst.len().min(BATCH - self.served);
            let (head, rest) = dst.split_at_mut(n);
            let fresh = &mut self.batch[self.served..self.served + n];
            head.copy_from_slice(fresh);
            fresh.zeroize();
            self.served += n;
            dst = rest;
        }
        Ok(())
    }
}

impl TryCryptoRng for BatchRng {}

impl Drop for BatchRng {
    fn drop(&mut self) {
        self.batch.zeroize();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn draws_cross_batches_and_wipe_what_they_served() {
        let UnwrapErr(mut rng) = BatchRng::new().unwrap();
        let mut first = [0u8; 100];
        rng.try_fill_bytes(&mut first).unwrap();
        assert!(rng.batch[..100].iter().all(|&b| b == 0));
        assert_eq!(rng.served, 100);
        // 300 bytes more: the rest of this batch, two refills and part of a third batch.
        let mut long = [0u8; 300];
        rng.try_fill_bytes(&mut long).unwrap();
        assert_eq!(rng.served, (100 + 300) % BATCH);
        assert!(rng.batch[..rng.served].iter().all(|&b| b == 0));
        // Fresh bytes everywhere: no 16-byte window of the output is all zeros or repeats the
        // first draw (each would have chance 2^-128 from a working source).
        let mut all = first.to_vec();
        all.extend_from_slice(&long);
        for window in all.chunks(16) {
            assert!(window.iter().any(|&b| b != 0));
        }
        assert_ne!(all[..16], all[BATCH..BATCH + 16]);
        assert_ne!(rng.try_next_u64().unwrap(), rng.try_next_u64().unwrap());
        assert_ne!(rng.try_next_u32().unwrap(), rng.try_next_u32().unwrap());
    }
}
