//! The one error type the bindings raise: a stable code, a readable message, and what the
//! error names (an account, a device, a group, an envelope id, a number) for the app to act on.

use crate::codes::{self, Subject};
use crate::types::{Address, address_out};

/// A failed call. `code` is stable (`layer.variant`, e.g. `fanout.sender_key_missing`, or
/// `binding.*` for input the bindings refuse before calling the library); `detail` is for
/// people. Nothing changed when a call fails, but for `SqliteStore.persist` and
/// `persist_primary`: the changes they took are not durable (see `SqliteStore`). The other
/// fields are what the error names, set only by the codes that carry them (the guide's table
/// of what to do): `account` whose list to fetch (`fanout.unknown_account`,
/// `fanout.device_lists_diverge`, `server.stale_list`, and the account of `device`); `device`
/// to ask again or warn about (`fanout.no_session`, `fanout.sender_key_missing`,
/// `fanout.identity_mismatch`, `device.not_in_list`, …); `group` whose members to set
/// (`fanout.group_unconfirmed`, `fanout.unknown_group`); `envelope_id` to acknowledge again
/// (`fanout.duplicate`); `number`, a variant's one number (the prekey id of
/// `x3dh.unknown_one_time_prekey`, the reason of `fanout.reserved_reason`, the key id of
/// `fanout.sender_key_missing`, a history chunk's index).
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum RatchetryError {
    /// The library or the binding refused the call.
    #[error("{code}: {detail}")]
    Failed {
        /// The stable code.
        code: String,
        /// A readable message.
        detail: String,
        /// The account the error names (32 bytes).
        account: Option<Vec<u8>>,
        /// The device the error names.
        device: Option<Address>,
        /// The group the error names (32 bytes).
        group: Option<Vec<u8>>,
        /// The envelope id the error names (16 bytes).
        envelope_id: Option<Vec<u8>>,
        /// The one number the error names.
        number: Option<u64>,
    },
}

impl RatchetryError {
    /// A failure with `code`, `detail` and what it names.
    fn with(code: &str, detail: String, subject: Subject) -> Self {
        Self::Failed {
            code: code.into(),
            detail,
            account: subject.account.map(|a| a.to_bytes().to_vec()),
            device: subject.device.map(address_out),
            group: subject.group.map(|g| g.0.to_vec()),
            envelope_id: subject.envelope_id.map(|e| e.0.to_vec()),
            number: subject.number,
        }
    }

    /// A store's refusal (`store.<what>`), naming the stored epoch where it has one.
    pub(crate) fn store(code: &'static str, detail: String, stored_epoch: Option<u64>) -> Self {
        let subject = Subject {
            number: stored_epoch,
            ..Subject::default()
        };
        Self::with(code, detail, subject)
    }

    /// A binding-level failure (`binding.<what>`).
    pub(crate) fn binding(code: &'static str, detail: &str) -> Self {
        Self::with(code, detail.into(), Subject::default())
    }
}

impl From<ratchetry::Error> for RatchetryError {
    fn from(e: ratchetry::Error) -> Self {
        Self::with(codes::code(&e), e.to_string(), codes::subject(&e))
    }
}

impl From<ratchetry::DecodeError> for RatchetryError {
    fn from(e: ratchetry::DecodeError) -> Self {
        Self::with(codes::decode(&e), e.to_string(), codes::decode_subject(&e))
    }
}

impl From<ratchetry::DeviceError> for RatchetryError {
    fn from(e: ratchetry::DeviceError) -> Self {
        Self::with(codes::device(&e), e.to_string(), codes::device_subject(&e))
    }
}

impl From<ratchetry::SyncError> for RatchetryError {
    fn from(e: ratchetry::SyncError) -> Self {
        Self::with(codes::sync(&e), e.to_string(), codes::sync_subject(&e))
    }
}

/// A poisoned lock (a panic on another thread while it was held) becomes an error, not a panic.
impl<T> From<std::sync::PoisonError<T>> for RatchetryError {
    fn from(_: std::sync::PoisonError<T>) -> Self {
        Self::binding("binding.poisoned", "an earlier call on this object failed")
    }
}
