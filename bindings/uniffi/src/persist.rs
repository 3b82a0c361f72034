//! State at rest (`ratchetry::persist`): any state bytes (`Device.to_bytes`, a record's value,
//! `Primary.to_bytes`, `Call.to_bytes`) sealed under the app's 32-byte storage key, bound to
//! the slot they are stored in and to a sequence (for example the state epoch), so a blob
//! moved to another slot does not open and an older one put back is refused as a rollback.

use ratchetry::persist::{self, StorageKey};
use zeroize::Zeroizing;

use crate::error::RatchetryError;
use crate::types::rng;

/// Opened state and the sequence it was sealed at. Printing it shows the sequence and the
/// state's length only.
#[derive(uniffi::Record)]
#[uniffi::export(Debug, Display)]
pub struct OpenedState {
    /// The state bytes (secret).
    pub state: Vec<u8>,
    /// The sequence they were sealed at.
    pub sequence: u64,
}

/// The state's length, never its bytes.
impl std::fmt::Debug for OpenedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedState")
            .field("state_len", &self.state.len())
            .field("sequence", &self.sequence)
            .finish()
    }
}

/// Seals `state` for storage in `slot` (the app's name for where it goes) at `sequence`,
/// under `key` (32 bytes, from the platform keystore).
#[uniffi::export]
pub fn seal_state(
    key: Vec<u8>,
    slot: Vec<u8>,
    sequence: u64,
    state: Vec<u8>,
) -> Result<Vec<u8>, RatchetryError> {
    let key = storage_key(&Zeroizing::new(key))?;
    let state = Zeroizing::new(state);
    let mut rng = rng()?;
    Ok(persist::seal_state(&mut rng, &key, &slot, sequence, &state))
}

/// Opens state sealed for `slot`. Wrong key, another slot or tampering:
/// `crypto.authentication_failed`; sealed below `min_sequence`: `state.rollback`.
#[uniffi::export]
pub fn open_state(
    key: Vec<u8>,
    sealed: Vec<u8>,
    slot: Vec<u8>,
    min_sequence: u64,
) -> Result<OpenedState, RatchetryError> {
    let key = storage_key(&Zeroizing::new(key))?;
    let opened = persist::open_state(&key, &sealed, &slot, min_sequence)?;
    Ok(OpenedState {
        state: opened.state.to_vec(),
        sequence: opened.sequence,
    })
}

/// The storage key from the app's bytes (which the caller wipes): the copy made here is wiped
/// too once the key holds it.
pub(crate) fn storage_key(bytes: &[u8]) -> Result<StorageKey, RatchetryError> {
    let array: Zeroizing<[u8; 32]> =
        Zeroizing::new(bytes.try_into().map_err(|_| {
            RatchetryError::binding("binding.bad_length", "a storage key is 32 bytes")
        })?);
    Ok(StorageKey::from_bytes(*array))
}

/// The same redacted text as `Debug`: Python's `str()` of a record or enum prints every field
/// unless `Display` is exported.
impl std::fmt::Display for OpenedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}
