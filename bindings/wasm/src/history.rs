//! History sync: the primary seals its history into chunks and offers it to a new companion
//! pairwise; the companion opens the chunks as they arrive. The offer holds the stream's key,
//! so it is a class (`HistoryOffer`) whose bytes come only from `toBytes()`: neither
//! `String(x)`, `JSON.stringify(x)` nor `console.log(x)` shows them.

use ratchetry::history;
use wasm_bindgen::prelude::*;

use crate::convert::{JsByteArrays, JsSealedHistory, byte_array_list, num, object, rng};
use crate::error;

/// A sealed history's offer: the key, the chunk count, the length and the digest the
/// companion opens the chunks with. Secret: send it only with `Device.sendHistoryOffer`
/// (inside a pairwise session); its bytes come only from `toBytes()`.
#[wasm_bindgen]
pub struct HistoryOffer {
    pub(crate) inner: history::HistoryOffer,
}

impl HistoryOffer {
    /// A library offer as the class, for `Received` and `SealedHistory`.
    pub(crate) fn wrap(inner: history::HistoryOffer) -> JsValue {
        Self { inner }.into()
    }
}

#[wasm_bindgen]
impl HistoryOffer {
    /// Parses an offer's bytes (as `toBytes()` wrote them).
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(bytes: &[u8]) -> Result<HistoryOffer, JsValue> {
        let inner = history::HistoryOffer::from_bytes(bytes).map_err(error::decode)?;
        Ok(Self { inner })
    }

    /// The bytes (secret: they hold the stream's key), to keep the offer until its chunks
    /// arrive.
    #[wasm_bindgen(js_name = toBytes)]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.inner.to_bytes().to_vec()
    }

    /// Chunks in the stream (at least 1), for a progress display.
    #[wasm_bindgen(getter)]
    pub fn chunks(&self) -> f64 {
        num(self.inner.chunks())
    }

    /// Plaintext bytes in the history.
    #[wasm_bindgen(getter, js_name = totalLength)]
    pub fn total_length(&self) -> f64 {
        num(self.inner.total_len())
    }

    /// This offer carrying `data` for the companion (what it needs at once beside the
    /// history; at most 64 KiB, else `sync.app_data_too_long`); this offer is unchanged.
    #[wasm_bindgen(js_name = withAppData)]
    pub fn with_app_data(&self, data: &[u8]) -> Result<HistoryOffer, JsValue> {
        let inner = self
            .inner
            .clone()
            .with_app_data(data)
            .map_err(error::sync)?;
        Ok(Self { inner })
    }

    /// The app's data the sealer attached (empty if none). A method, not a property: it
    /// stays out of the object's inspection.
    #[wasm_bindgen(js_name = appData)]
    pub fn app_data(&self) -> Vec<u8> {
        self.inner.app_data().to_vec()
    }
}

/// Seals history incrementally: `push` data, then `finish` for the last chunks and the offer.
#[wasm_bindgen]
pub struct HistorySealer {
    inner: history::HistorySealer,
}

#[wasm_bindgen]
impl HistorySealer {
    /// A sealer with a fresh key.
    #[wasm_bindgen(constructor)]
    pub fn new() -> Result<HistorySealer, JsValue> {
        let mut rng = rng()?;
        Ok(Self {
            inner: history::HistorySealer::new(&mut rng),
        })
    }

    /// Seals more data; returns the chunks completed.
    pub fn push(&mut self, data: &[u8]) -> JsByteArrays {
        byte_array_list(&self.inner.push(data)).unchecked_into()
    }

    /// Seals the rest: `{ chunks, offer }` (`offer` a `HistoryOffer`, secret: it holds the
    /// key). The sealer is consumed.
    pub fn finish(self) -> JsSealedHistory {
        let (chunks, offer) = self.inner.finish();
        JsValue::from(object(&[
            ("chunks", byte_array_list(&chunks)),
            ("offer", HistoryOffer::wrap(offer)),
        ]))
        .unchecked_into()
    }
}

/// Opens sealed history chunks in order.
#[wasm_bindgen]
pub struct HistoryOpener {
    inner: history::HistoryOpener,
}

#[wasm_bindgen]
impl HistoryOpener {
    /// An opener for the history an offer describes (a received one's `offer`, or one loaded
    /// with `HistoryOffer.fromBytes`).
    #[wasm_bindgen(constructor)]
    pub fn new(offer: &HistoryOffer) -> HistoryOpener {
        Self {
            inner: history::HistoryOpener::new(&offer.inner),
        }
    }

    /// Opens the next chunk; returns its plaintext.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<u8>, JsValue> {
        self.inner.push(chunk).map_err(error::sync)
    }

    /// Chunks opened so far: `finish` once it is the offer's `chunks` (a `finish` that fails
    /// consumes the opener).
    #[wasm_bindgen(getter, js_name = chunksOpened)]
    pub fn chunks_opened(&self) -> f64 {
        num(self.inner.chunks_opened())
    }

    /// Checks that every chunk arrived and the length and digest match. Consumes the opener.
    pub fn finish(self) -> Result<(), JsValue> {
        self.inner.finish().map_err(error::sync)
    }
}
