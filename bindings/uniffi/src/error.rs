//! The one error type the bindings raise: a stable code and a readable message.

use crate::codes;

/// A failed call. `code` is stable (`layer.variant`, e.g. `fanout.sender_key_missing`, or
/// `binding.*` for input the bindings refuse before calling the library); `detail` is for
/// people. Nothing changed when a call fails.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum RatchetryError {
    /// The library or the binding refused the call.
    #[error("{code}: {detail}")]
    Failed {
        /// The stable code.
        code: String,
        /// A readable message.
        detail: String,
    },
}

impl RatchetryError {
    /// A binding-level failure (`binding.<what>`).
    pub(crate) fn binding(code: &'static str, detail: &str) -> Self {
        Self::Failed {
            code: code.into(),
            detail: detail.into(),
        }
    }
}

impl From<ratchetry::Error> for RatchetryError {
    fn from(e: ratchetry::Error) -> Self {
        Self::Failed {
            code: codes::code(&e).into(),
            detail: e.to_string(),
        }
    }
}

impl From<ratchetry::DecodeError> for RatchetryError {
    fn from(e: ratchetry::DecodeError) -> Self {
        Self::Failed {
            code: codes::decode(&e).into(),
            detail: e.to_string(),
        }
    }
}

impl From<ratchetry::DeviceError> for RatchetryError {
    fn from(e: ratchetry::DeviceError) -> Self {
        Self::Failed {
            code: codes::device(&e).into(),
            detail: e.to_string(),
        }
    }
}

impl From<ratchetry::SyncError> for RatchetryError {
    fn from(e: ratchetry::SyncError) -> Self {
        Self::Failed {
            code: codes::sync(&e).into(),
            detail: e.to_string(),
        }
    }
}

/// A poisoned lock (a panic on another thread while it was held) becomes an error, not a panic.
impl<T> From<std::sync::PoisonError<T>> for RatchetryError {
    fn from(_: std::sync::PoisonError<T>) -> Self {
        Self::binding("binding.poisoned", "an earlier call on this object failed")
    }
}
