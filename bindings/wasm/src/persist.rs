//! State at rest (`ratchetry::persist`): any state bytes (`Device.toBytes`, a record's value,
//! `Primary.toBytes`, `Call.toBytes`) sealed under the app's 32-byte storage key, bound to the
//! slot they are stored in (an IndexedDB key, say) and to a sequence (for example the state
//! epoch), so that a blob moved to another slot does not open and an older one put back is
//! refused as a rollback.
//!
//! It owns the two calls and the opened state's class; it must not keep a key.

use ratchetry::persist::{self, StorageKey};
use wasm_bindgen::prelude::*;

use crate::convert::{num, rng, whole_number};
use crate::error::{self, binding};

/// Opened state and the sequence it was sealed at. Its inspection shows nothing of the
/// state: read it with `state()`.
#[wasm_bindgen]
pub struct OpenedState {
    state: Vec<u8>,
    sequence: u64,
}

#[wasm_bindgen]
impl OpenedState {
    /// The state's bytes (secret: persist or load them, never log them).
    pub fn state(&self) -> Vec<u8> {
        self.state.clone()
    }

    /// The sequence they were sealed at.
    #[wasm_bindgen(getter)]
    pub fn sequence(&self) -> f64 {
        num(self.sequence)
    }
}

/// Seals `state` for storage in `slot` (the app's name for where it goes) at `sequence`, under
/// `key` (32 bytes, kept by the platform: a non-extractable key's wrapped bytes, say).
#[wasm_bindgen(js_name = sealState)]
pub fn seal_state(
    key: &[u8],
    slot: &[u8],
    sequence: f64,
    state: &[u8],
) -> Result<Vec<u8>, JsValue> {
    let key = storage_key(key)?;
    let sequence = counter(sequence, "sequence")?;
    let mut rng = rng()?;
    Ok(persist::seal_state(&mut rng, &key, slot, sequence, state))
}

/// Opens state sealed for `slot`. Wrong key, another slot or tampering:
/// `crypto.authentication_failed`; sealed below `minSequence`: `state.rollback`.
#[wasm_bindgen(js_name = openState)]
pub fn open_state(
    key: &[u8],
    sealed: &[u8],
    slot: &[u8],
    min_sequence: f64,
) -> Result<OpenedState, JsValue> {
    let key = storage_key(key)?;
    let min_sequence = counter(min_sequence, "minSequence")?;
    let opened = persist::open_state(&key, sealed, slot, min_sequence).map_err(error::lib)?;
    Ok(OpenedState {
        state: opened.state.to_vec(),
        sequence: opened.sequence,
    })
}

fn storage_key(bytes: &[u8]) -> Result<StorageKey, JsValue> {
    let array: [u8; 32] = bytes
        .try_into()
        .map_err(|_| binding("binding.bad_length", "a storage key is 32 bytes"))?;
    Ok(StorageKey::from_bytes(array))
}

/// A sequence from a JavaScript number: a whole number it holds exactly.
fn counter(value: f64, name: &str) -> Result<u64, JsValue> {
    whole_number(value).ok_or_else(|| {
        binding(
            "binding.bad_input",
            &format!("{name} must be a non-negative integer"),
        )
    })
}
