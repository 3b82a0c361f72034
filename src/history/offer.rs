//! The history offer: everything the companion needs to open the stream. It carries the
//! stream's secret, so it travels only inside a pairwise session.

use alloc::vec::Vec;
use core::fmt;
use zeroize::Zeroizing;

use crate::error::DecodeError;
use crate::primitives::Secret;
use crate::wire::{Reader, Writer, kind};

/// The secret, chunk size, total length, chunk count and digest of a sealed history.
#[derive(Clone, PartialEq, Eq)]
pub struct HistoryOffer {
    pub(crate) secret: Secret<32>,
    pub(crate) chunk_size: u32,
    pub(crate) total_len: u64,
    pub(crate) chunks: u64,
    pub(crate) digest: [u8; 32],
}

impl HistoryOffer {
    /// Plaintext bytes in the history.
    pub fn total_len(&self) -> u64 {
        self.total_len
    }

    /// Chunks in the stream (at least 1).
    pub fn chunks(&self) -> u64 {
        self.chunks
    }

    /// Wire bytes (they hold the stream's secret).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(2 + 32 + 4 + 8 + 8 + 32));
        out.header(kind::HISTORY_OFFER);
        out.extend_from_slice(self.secret.as_bytes());
        out.u32(self.chunk_size);
        out.u64(self.total_len);
        out.u64(self.chunks);
        out.extend_from_slice(&self.digest);
        out
    }

    /// Parses wire bytes. The chunk size must be the one this version uses, and the chunk
    /// count must fit the length.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, kind::HISTORY_OFFER)?;
        let offer = Self {
            secret: Secret::from_bytes(r.array()?),
            chunk_size: r.u32()?,
            total_len: r.u64()?,
            chunks: r.u64()?,
            digest: r.array()?,
        };
        r.finish()?;
        if offer.chunk_size as usize != super::CHUNK_SIZE
            || offer.chunks != chunks_for(offer.total_len)
        {
            return Err(DecodeError::InvalidValue);
        }
        Ok(offer)
    }
}

/// Chunks a history of `len` bytes is cut into: full chunks, then one final chunk (empty when
/// `len` is a multiple of the chunk size).
pub(crate) fn chunks_for(len: u64) -> u64 {
    len / super::CHUNK_SIZE as u64 + 1
}

impl fmt::Debug for HistoryOffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HistoryOffer")
            .field("total_len", &self.total_len)
            .field("chunks", &self.chunks)
            .field("secret", &"redacted")
            .finish_non_exhaustive()
    }
}
