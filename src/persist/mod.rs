//! State at rest: every state type already serializes to versioned bytes (version ‖ type ‖
//! fields); this module seals those bytes under an app-supplied 32-byte storage key, binding
//! the state's version and type, and opens them again (PROTOCOL.md, "Sealed state").
//!
//! It must not interpret the state itself: each type's `from_bytes` does that after opening.

use alloc::vec::Vec;
use core::fmt;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::error::{CryptoError, DecodeError, Error};
use crate::labels;
use crate::primitives::{Secret, StreamKey};
use crate::wire::{Reader, Writer, kind};

/// The app's key for state at rest (for example from the platform keystore).
#[derive(Clone)]
pub struct StorageKey(Secret<32>);

impl StorageKey {
    /// Wraps 32 key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Secret::from_bytes(bytes))
    }
}

impl fmt::Debug for StorageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StorageKey(redacted)")
    }
}

/// Seals state bytes (as returned by any `to_bytes`). Draws 12 bytes (the nonce) from `rng`.
///
/// ```text
/// sealed = 0x01 ‖ 0x90 ‖ state version ‖ state type ‖ nonce (12)
///        ‖ AES-256-GCM(key, nonce, ad = "ratchetry v1 sealed state" ‖ 0x01 ‖ 0x90 ‖ version ‖ type, state)
/// ```
pub fn seal_state(
    rng: &mut impl CryptoRng,
    key: &StorageKey,
    state: &[u8],
) -> Result<Vec<u8>, DecodeError> {
    let (version, state_kind) = match state {
        [v, k, ..] => (*v, *k),
        _ => return Err(DecodeError::Truncated),
    };
    let mut nonce = [0u8; 12];
    rng.fill_bytes(&mut nonce);
    let mut out = Vec::with_capacity(16 + state.len() + 16);
    out.header(kind::SEALED_STATE);
    out.extend_from_slice(&[version, state_kind]);
    out.extend_from_slice(&nonce);
    let start = out.len();
    out.extend_from_slice(state);
    let ad = associated_data(version, state_kind);
    StreamKey::new(&key.0).seal_in_place(&nonce, &ad, &mut out, start);
    Ok(out)
}

/// Opens sealed state and checks it is of `expected_kind` (the type byte of the state, e.g.
/// the one `Session::to_bytes` writes). Wrong key or tampering: `Crypto(AuthenticationFailed)`;
/// another type: `Decode(UnknownType)`. Pass the result to the type's `from_bytes`, which
/// reads (and migrates) the versions it knows and reports others as `UnknownVersion`.
pub fn open_state(
    key: &StorageKey,
    sealed: &[u8],
    expected_kind: StateKind,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut r = Reader::header(sealed, kind::SEALED_STATE)?;
    let version = r.u8()?;
    let state_kind = r.u8()?;
    let nonce: [u8; 12] = r.array()?;
    if state_kind != expected_kind as u8 {
        return Err(DecodeError::UnknownType(state_kind).into());
    }
    let ad = associated_data(version, state_kind);
    let state = StreamKey::new(&key.0)
        .open(&nonce, &ad, r.rest())
        .map_err(|_| CryptoError::AuthenticationFailed)?;
    let state = Zeroizing::new(state);
    // The authenticated header must agree with the state's own first bytes. Which versions a
    // type can read (and migrate) is its decoder's business: `from_bytes` reports the rest as
    // `UnknownVersion`.
    if state.get(..2) != Some(&[version, state_kind][..]) {
        return Err(DecodeError::InvalidValue.into());
    }
    Ok(state)
}

/// The state types that can be sealed, by their type byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum StateKind {
    /// [`Session`](crate::Session).
    Session = kind::SESSION_STATE,
    /// [`PreKeyStore`](crate::PreKeyStore).
    PreKeyStore = kind::PREKEY_STORE_STATE,
    /// [`IdentityKeyPair`](crate::IdentityKeyPair).
    Identity = kind::IDENTITY_STATE,
    /// [`OutboundGroupSession`](crate::group::OutboundGroupSession).
    OutboundGroup = kind::OUTBOUND_GROUP_STATE,
    /// [`GroupReceiver`](crate::group::GroupReceiver).
    GroupReceiver = kind::GROUP_RECEIVER_STATE,
    /// [`Primary`](crate::devices::Primary).
    Primary = kind::PRIMARY_STATE,
    /// [`Device`](crate::fanout::Device).
    Device = kind::DEVICE_STATE,
    /// [`Call`](crate::calls::Call).
    Call = kind::CALL_KEY,
}

fn associated_data(version: u8, state_kind: u8) -> Vec<u8> {
    let mut ad = Vec::with_capacity(labels::SEALED_STATE.len() + 4);
    ad.extend_from_slice(labels::SEALED_STATE);
    ad.extend_from_slice(&[
        crate::wire::VERSION,
        kind::SEALED_STATE,
        version,
        state_kind,
    ]);
    ad
}
