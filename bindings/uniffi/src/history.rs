//! History sync: the primary seals its history into chunks and offers it to a new companion
//! pairwise; the companion opens the chunks as they arrive.

use std::sync::{Arc, Mutex};

use ratchetry::history::{self, HistoryOffer};

use crate::error::RatchetryError;
use crate::types::rng;

/// Seals history incrementally. Push data, then finish for the last chunks and the offer.
#[derive(uniffi::Object)]
pub struct HistorySealer {
    inner: Mutex<Option<history::HistorySealer>>,
}

/// Prints nothing of the key.
impl std::fmt::Debug for HistorySealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HistorySealer")
    }
}

/// The end of sealing: the last chunks and the offer to send with `Device.send_history_offer`.
/// Its `Debug` (exported: Kotlin's `toString()`, Python's `repr`) prints counts, not the offer.
#[derive(uniffi::Record)]
#[uniffi::export(Debug, Display)]
pub struct SealedHistory {
    /// The remaining sealed chunks.
    pub chunks: Vec<Vec<u8>>,
    /// The offer (secret: it holds the key).
    pub offer: Vec<u8>,
}

/// Prints the number of chunks and the offer's length: the offer holds the key.
impl std::fmt::Debug for SealedHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedHistory")
            .field("chunks", &self.chunks.len())
            .field("offer_len", &self.offer.len())
            .finish()
    }
}

fn finished() -> RatchetryError {
    RatchetryError::binding("binding.finished", "this object was already finished")
}

#[uniffi::export]
impl HistorySealer {
    /// A sealer with a fresh key.
    #[uniffi::constructor]
    pub fn new() -> Result<Arc<Self>, RatchetryError> {
        let mut rng = rng()?;
        Ok(Arc::new(Self {
            inner: Mutex::new(Some(history::HistorySealer::new(&mut rng))),
        }))
    }

    /// Seals more data; returns the chunks completed.
    pub fn push(&self, data: Vec<u8>) -> Result<Vec<Vec<u8>>, RatchetryError> {
        let mut guard = self.inner.lock()?;
        let sealer = guard.as_mut().ok_or_else(finished)?;
        Ok(sealer.push(&data))
    }

    /// Seals the rest; returns the last chunks and the offer, carrying `app_data` for the
    /// companion (what it needs at once beside the history, at most 64 KiB, else
    /// `sync.app_data_too_long` with the sealer left as it was; the companion reads it as the
    /// received offer's `app_data`).
    #[uniffi::method(default(app_data = None))]
    pub fn finish(&self, app_data: Option<Vec<u8>>) -> Result<SealedHistory, RatchetryError> {
        let app_data = app_data.unwrap_or_default();
        // Checked before the sealer is consumed, so a refusal leaves it to finish again.
        if app_data.len() > history::MAX_HISTORY_APP_DATA {
            return Err(ratchetry::Error::from(ratchetry::SyncError::AppDataTooLong).into());
        }
        let sealer = self.inner.lock()?.take().ok_or_else(finished)?;
        let (chunks, offer) = sealer.finish();
        let offer = offer
            .with_app_data(&app_data)
            .map_err(ratchetry::Error::from)?;
        Ok(SealedHistory {
            chunks,
            offer: offer.to_bytes().to_vec(),
        })
    }
}

/// Opens sealed history chunks in order.
#[derive(uniffi::Object)]
pub struct HistoryOpener {
    inner: Mutex<Option<history::HistoryOpener>>,
}

/// Prints nothing of the key.
impl std::fmt::Debug for HistoryOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HistoryOpener")
    }
}

#[uniffi::export]
impl HistoryOpener {
    /// An opener for the history an offer describes.
    #[uniffi::constructor]
    pub fn new(offer: Vec<u8>) -> Result<Arc<Self>, RatchetryError> {
        let offer = HistoryOffer::from_bytes(&offer)?;
        Ok(Arc::new(Self {
            inner: Mutex::new(Some(history::HistoryOpener::new(&offer))),
        }))
    }

    /// Opens the next chunk; returns its plaintext.
    pub fn push(&self, chunk: Vec<u8>) -> Result<Vec<u8>, RatchetryError> {
        let mut guard = self.inner.lock()?;
        let opener = guard.as_mut().ok_or_else(finished)?;
        Ok(opener.push(&chunk)?)
    }

    /// Chunks opened so far: `finish` once it is the offer's count (a `finish` that fails
    /// consumes the opener).
    pub fn chunks_opened(&self) -> Result<u64, RatchetryError> {
        let guard = self.inner.lock()?;
        Ok(guard.as_ref().ok_or_else(finished)?.chunks_opened())
    }

    /// Checks that every chunk arrived and the length and digest match.
    pub fn finish(&self) -> Result<(), RatchetryError> {
        let opener = self.inner.lock()?.take().ok_or_else(finished)?;
        Ok(opener.finish()?)
    }
}

/// The same redacted text as `Debug`: Python's `str()` of a record or enum prints every field
/// unless `Display` is exported.
impl std::fmt::Display for SealedHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}
