//! The companion's side: push sealed chunks in (in order), get plaintext out, then `finish`
//! to check that nothing is missing.

use alloc::vec::Vec;
use sha2::Digest;

use super::{CHUNK_HEADER, CHUNK_SIZE, HistoryOffer, nonce, stream_key};
use crate::error::SyncError;
use crate::labels;
use crate::primitives::{StreamKey, TAG_LEN};

/// Opens a sealed history chunk by chunk. A refused chunk leaves the opener unchanged, so the
/// app can fetch that chunk again.
pub struct HistoryOpener {
    key: StreamKey,
    prefix: [u8; 3],
    chunks: u64,
    total_len: u64,
    digest: [u8; 32],
    next: u64,
    received_len: u64,
    hasher: sha2::Sha256,
}

impl HistoryOpener {
    /// An opener for the stream `offer` describes.
    pub fn new(offer: &HistoryOffer) -> Self {
        let (key, prefix) = stream_key(&offer.secret);
        let mut hasher = sha2::Sha256::new();
        hasher.update(labels::HISTORY_DIGEST);
        Self {
            key,
            prefix,
            chunks: offer.chunks,
            total_len: offer.total_len,
            digest: offer.digest,
            next: 0,
            received_len: 0,
            hasher,
        }
    }

    /// Opens the next chunk. Its position is implied by the order: a chunk out of place,
    /// corrupted, duplicated, or from another stream is refused.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<u8>, SyncError> {
        if self.next >= self.chunks {
            return Err(SyncError::TooManyChunks);
        }
        let rejected = SyncError::ChunkRejected(self.next);
        let body = chunk
            .strip_prefix(&CHUNK_HEADER)
            .filter(|b| b.len() >= TAG_LEN && b.len() <= CHUNK_SIZE + TAG_LEN)
            .ok_or(rejected)?;
        let last = self.next + 1 == self.chunks;
        let n = nonce(&self.prefix, self.next, last);
        let plaintext = self
            .key
            .open(&n, &CHUNK_HEADER, body)
            .map_err(|_| rejected)?;
        // Every chunk but the last is full; a short one elsewhere cannot authenticate anyway
        // (its tag was made for a full chunk), but the length check keeps the accounting exact.
        if !last && plaintext.len() != CHUNK_SIZE {
            return Err(rejected);
        }
        self.hasher.update(&body[body.len() - TAG_LEN..]);
        self.received_len += plaintext.len() as u64;
        self.next += 1;
        Ok(plaintext)
    }

    /// Chunks opened so far.
    pub fn chunks_opened(&self) -> u64 {
        self.next
    }

    /// Succeeds only if every chunk arrived and the length and digest match the offer.
    pub fn finish(self) -> Result<(), SyncError> {
        let mut hasher = self.hasher;
        hasher.update(self.total_len.to_be_bytes());
        let digest: [u8; 32] = hasher.finalize().into();
        let complete = self.next == self.chunks && self.received_len == self.total_len;
        if complete && bool::from(subtle::ConstantTimeEq::ct_eq(&digest[..], &self.digest[..])) {
            Ok(())
        } else {
            Err(SyncError::Incomplete)
        }
    }
}
