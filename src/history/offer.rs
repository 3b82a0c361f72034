//! The history offer: everything the companion needs to open the stream. It carries the
//! stream's secret, so it travels only inside a pairwise session.

use alloc::vec::Vec;
use core::fmt;
use zeroize::Zeroizing;

use crate::error::{DecodeError, SyncError};
use crate::primitives::Secret;
use crate::wire::{Reader, Writer, kind};

/// App data an offer carries at most: what the app wants the new companion to have at once
/// (its groups' names, settings, where the chunks are), not the history itself. The groups
/// and their members travel beside it (`Device::send_history_offer`).
pub const MAX_HISTORY_APP_DATA: usize = 64 * 1024;

/// The secret, chunk size, total length, chunk count and digest of a sealed history, and the
/// app's data for the companion.
#[derive(Clone, PartialEq, Eq)]
pub struct HistoryOffer {
    pub(crate) secret: Secret<32>,
    pub(crate) chunk_size: u32,
    pub(crate) total_len: u64,
    pub(crate) chunks: u64,
    pub(crate) digest: [u8; 32],
    pub(crate) app_data: Zeroizing<Vec<u8>>,
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

    /// Attaches the app's data for the companion (at most [`MAX_HISTORY_APP_DATA`] bytes,
    /// else `AppDataTooLong`): it travels with the offer, inside the pairwise session.
    pub fn with_app_data(mut self, data: &[u8]) -> Result<Self, SyncError> {
        if data.len() > MAX_HISTORY_APP_DATA {
            return Err(SyncError::AppDataTooLong);
        }
        self.app_data = Zeroizing::new(data.to_vec());
        Ok(self)
    }

    /// The app's data for the companion (empty if none was attached).
    pub fn app_data(&self) -> &[u8] {
        &self.app_data
    }

    /// Wire bytes (they hold the stream's secret).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(
            2 + 32 + 4 + 8 + 8 + 32 + 4 + self.app_data.len(),
        ));
        out.header(kind::HISTORY_OFFER);
        out.extend_from_slice(self.secret.as_bytes());
        out.u32(self.chunk_size);
        out.u64(self.total_len);
        out.u64(self.chunks);
        out.extend_from_slice(&self.digest);
        out.blob(&self.app_data);
        out
    }

    /// Parses wire bytes. The chunk size must be the one this version uses, the chunk count
    /// must fit the length, and the app data its bound.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, kind::HISTORY_OFFER)?;
        let offer = Self {
            secret: Secret::from_bytes(r.array()?),
            chunk_size: r.u32()?,
            total_len: r.u64()?,
            chunks: r.u64()?,
            digest: r.array()?,
            app_data: {
                let len = r.u32()? as usize;
                if len > MAX_HISTORY_APP_DATA {
                    return Err(DecodeError::InvalidValue);
                }
                Zeroizing::new(r.bytes(len)?.to_vec())
            },
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
            .field("app_data_len", &self.app_data.len())
            .field("secret", &"redacted")
            .finish_non_exhaustive()
    }
}
