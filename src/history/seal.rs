//! The primary's side: push history bytes in, pull sealed chunks out.

use alloc::vec::Vec;
use rand_core::CryptoRng;
use sha2::Digest;

use super::offer::chunks_for;
use super::{CHUNK_HEADER, CHUNK_SIZE, HistoryOffer, nonce, stream_key};
use crate::labels;
use crate::primitives::{Secret, StreamKey, TAG_LEN};

/// Seals a history incrementally. Buffers less than one chunk.
pub struct HistorySealer {
    secret: Secret<32>,
    key: StreamKey,
    prefix: [u8; 3],
    counter: u64,
    total_len: u64,
    pending: Vec<u8>,
    digest: sha2::Sha256,
}

impl HistorySealer {
    /// A sealer under a fresh secret (32 bytes from `rng`).
    pub fn new(rng: &mut impl CryptoRng) -> Self {
        let mut secret = Secret::from_bytes([0u8; 32]);
        rng.fill_bytes(secret.as_mut_bytes());
        let (key, prefix) = stream_key(&secret);
        let mut digest = sha2::Sha256::new();
        digest.update(labels::HISTORY_DIGEST);
        Self {
            secret,
            key,
            prefix,
            counter: 0,
            total_len: 0,
            pending: new_chunk(),
            digest,
        }
    }

    /// Adds history bytes; returns the chunks that are complete (each `CHUNK_SIZE` bytes of
    /// plaintext), in order. Send them in that order.
    pub fn push(&mut self, mut data: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        self.total_len += data.len() as u64;
        while !data.is_empty() {
            let take = (CHUNK_SIZE - self.buffered()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            // A full chunk is sealed only once more data follows: the last chunk must carry
            // the last-chunk flag, and it is known to be last only at `finish`.
            if self.buffered() == CHUNK_SIZE && !data.is_empty() {
                out.push(self.seal_pending(false));
            }
        }
        out
    }

    /// Seals what remains and returns the final chunks (one, or two when the history ends on
    /// a chunk boundary: that full chunk, then an empty last one) with the offer for the
    /// companion.
    pub fn finish(mut self) -> (Vec<Vec<u8>>, HistoryOffer) {
        let mut chunks = Vec::new();
        if self.buffered() == CHUNK_SIZE {
            chunks.push(self.seal_pending(false));
        }
        chunks.push(self.seal_pending(true));
        self.digest.update(self.total_len.to_be_bytes());
        let offer = HistoryOffer {
            secret: self.secret.clone(),
            chunk_size: CHUNK_SIZE as u32,
            total_len: self.total_len,
            chunks: chunks_for(self.total_len),
            digest: self.digest.finalize().into(),
            app_data: Default::default(),
        };
        (chunks, offer)
    }

    fn buffered(&self) -> usize {
        self.pending.len() - CHUNK_HEADER.len()
    }

    /// Encrypts the buffered chunk in place (so no plaintext copy is left behind) and hands
    /// it out.
    fn seal_pending(&mut self, last: bool) -> Vec<u8> {
        let mut chunk = core::mem::replace(&mut self.pending, new_chunk());
        let n = nonce(&self.prefix, self.counter, last);
        let tag = self
            .key
            .seal_in_place(&n, &CHUNK_HEADER, &mut chunk, CHUNK_HEADER.len());
        self.digest.update(tag);
        self.counter += 1;
        chunk
    }
}

/// An empty chunk buffer: the header, room for a full chunk and its tag.
fn new_chunk() -> Vec<u8> {
    let mut chunk = Vec::with_capacity(CHUNK_HEADER.len() + CHUNK_SIZE + TAG_LEN);
    chunk.extend_from_slice(&CHUNK_HEADER);
    chunk
}
