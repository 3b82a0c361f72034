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
        let code = match &e {
            ratchetry::Error::Server(s) => server(s),
            e => codes::code(e),
        };
        Self::Failed {
            code: code.into(),
            detail: e.to_string(),
        }
    }
}

/// The stable code of a relay check's refusal (`server.*`). Here rather than in the shared
/// `bindings/codes.rs`, which maps them all to `other`, until the wasm binding needs them too.
fn server(e: &ratchetry::ServerError) -> &'static str {
    use ratchetry::ServerError as S;
    match e {
        S::Uncovered(_) => "server.uncovered",
        S::CoveredTwice(_) => "server.covered_twice",
        S::UnknownAccount(_) => "server.unknown_account",
        S::StaleList { .. } => "server.stale_list",
        S::DeviceLeftOut(_) => "server.device_left_out",
        S::NotListed(_) => "server.not_listed",
        S::IdentityMismatch(_) => "server.identity_mismatch",
        S::NotABaseBundle => "server.not_a_base_bundle",
        S::DuplicatePreKeyId(_) => "server.duplicate_prekey_id",
        S::PoolFull => "server.pool_full",
        _ => "server.other",
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
