//! State at rest: seals any state bytes (whole-state encodings, or one record's value) under an
//! app-supplied 32-byte storage key, bound to the slot they are stored in and to a sequence
//! number the app chooses (for example the device's epoch), and opens them again
//! (PROTOCOL.md, "Sealed state"). A blob moved to another slot does not open; a blob older than
//! the sequence the app expects is refused as a rollback.
//!
//! It must not interpret the state itself: each type's decoder does that after opening.
//!
//! # Example
//!
//! A backup of a device's whole state, sealed under the app's storage key at the device's epoch.
//!
//! ```
//! use getrandom::{SysRng, rand_core::UnwrapErr};
//! use ratchetry::devices::{ListLimits, PrimaryPolicy, PRIMARY_DEVICE, Primary};
//! use ratchetry::fanout::{Device, DeviceConfig};
//! use ratchetry::persist::{StorageKey, open_state, seal_state};
//! use ratchetry::{Error, IdentityKeyPair, StateError, Timestamp};
//!
//! let mut rng = UnwrapErr(SysRng);
//! # let now = Timestamp(1_790_000_000_000);
//! # let identity = IdentityKeyPair::generate(&mut rng);
//! # let primary = Primary::new(&mut rng, &identity, now, PrimaryPolicy::default());
//! # let list = primary.device_list().clone();
//! # let (device, _) = Device::new(&mut rng, now, identity, PRIMARY_DEVICE, list, 5, DeviceConfig::default())?;
//! let key = StorageKey::from_bytes([7; 32]); // from the platform keystore
//! let epoch = device.state_epoch();
//! let sealed = seal_state(&mut rng, &key, b"backup/phone", epoch, &device.to_bytes());
//!
//! let opened = open_state(&key, &sealed, b"backup/phone", epoch)?;
//! let (restored, stale) = Device::restore(&opened.state, epoch, now)?;
//! assert!(!stale);
//! assert_eq!(restored.address(), device.address());
//!
//! // Sealed for another slot: does not open. Older than the app expects: a rollback.
//! assert!(open_state(&key, &sealed, b"backup/laptop", epoch).is_err());
//! assert_eq!(
//!     open_state(&key, &sealed, b"backup/phone", epoch + 1).unwrap_err(),
//!     Error::State(StateError::Rollback { sealed_at: epoch, expected_at_least: epoch + 1 }),
//! );
//! # Ok::<(), Error>(())
//! ```

use alloc::vec::Vec;
use core::fmt;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::error::{CryptoError, Error, StateError};
use crate::labels;
use crate::primitives::{Secret, StreamKey};
use crate::wire::{Reader, Writer, kind};

mod chain;
mod record;

#[cfg(feature = "test-support")]
pub(crate) use chain::Link;
pub(crate) use chain::UnitChain;
pub use chain::UnitTag;
pub use record::{Changes, DeviceState, PrimaryState, Record};
pub(crate) use record::{Dirty, hex_key};

/// The sealed state format this build writes.
const SEALED_STATE_VERSION: u8 = 2;

/// The app's key for state at rest (for example from the platform keystore).
#[derive(Clone)]
pub struct StorageKey(Secret<32>);

impl StorageKey {
    /// Wraps 32 key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Secret::from_bytes(bytes))
    }

    /// A fresh key: 32 bytes from `rng`. Keep it where the platform keeps keys (Android
    /// Keystore, the iOS Keychain, a non-extractable WebCrypto key wrapping it).
    pub fn generate(rng: &mut impl rand_core::CryptoRng) -> Self {
        let mut key = Secret::from_bytes([0u8; 32]);
        rng.fill_bytes(key.as_mut_bytes());
        Self(key)
    }
}

impl fmt::Debug for StorageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StorageKey(redacted)")
    }
}

/// Seals `state` for storage in `slot` (the app's name for where it goes: a record key, a
/// file name) at `sequence`. Draws 12 bytes (the nonce) from `rng`.
///
/// ```text
/// sealed = 0x02 ‖ 0x90 ‖ u64(sequence) ‖ nonce (12)
///        ‖ AES-256-GCM(key, nonce, ad = "ratchetry v1 sealed state" ‖ 0x02 ‖ 0x90 ‖ u64(sequence)
///                                        ‖ u32(len(slot)) ‖ slot, state)
/// ```
pub fn seal_state(
    rng: &mut impl CryptoRng,
    key: &StorageKey,
    slot: &[u8],
    sequence: u64,
    state: &[u8],
) -> Vec<u8> {
    let mut nonce = [0u8; 12];
    rng.fill_bytes(&mut nonce);
    let mut out = Vec::with_capacity(2 + 8 + 12 + state.len() + 16);
    out.versioned_header(SEALED_STATE_VERSION, kind::SEALED_STATE);
    out.u64(sequence);
    out.put(&nonce);
    let start = out.len();
    out.put(state);
    let ad = associated_data(sequence, slot);
    StreamKey::new(&key.0).seal_in_place(&nonce, &ad, &mut out, start);
    out
}

/// Opened state and the sequence it was sealed at.
#[derive(Debug)]
pub struct Opened {
    /// The state bytes (they hold secrets).
    pub state: Zeroizing<Vec<u8>>,
    /// The sequence they were sealed at.
    pub sequence: u64,
}

/// Opens state sealed for `slot`. Wrong key, another slot or tampering:
/// `Crypto(AuthenticationFailed)`; sealed at a sequence below `min_sequence` (an older copy put
/// back): `State(Rollback)`. Pass the state to its type's decoder.
pub fn open_state(
    key: &StorageKey,
    sealed: &[u8],
    slot: &[u8],
    min_sequence: u64,
) -> Result<Opened, Error> {
    let (mut r, _) = Reader::versioned_header(sealed, kind::SEALED_STATE, &[SEALED_STATE_VERSION])?;
    let sequence = r.u64()?;
    let nonce: [u8; 12] = r.array()?;
    let ad = associated_data(sequence, slot);
    let state = StreamKey::new(&key.0)
        .open(&nonce, &ad, r.rest())
        .map_err(|_| CryptoError::AuthenticationFailed)?;
    let state = Zeroizing::new(state);
    if sequence < min_sequence {
        return Err(StateError::Rollback {
            sealed_at: sequence,
            expected_at_least: min_sequence,
        }
        .into());
    }
    Ok(Opened { state, sequence })
}

fn associated_data(sequence: u64, slot: &[u8]) -> Vec<u8> {
    let mut ad = Vec::with_capacity(labels::SEALED_STATE.len() + 14 + slot.len());
    ad.put(labels::SEALED_STATE);
    ad.versioned_header(SEALED_STATE_VERSION, kind::SEALED_STATE);
    ad.u64(sequence);
    ad.blob(slot);
    ad
}
