//! X3DH key agreement (Signal's X3DH specification, with ratchetry's labels and encodings).
//!
//! It owns: prekey ids, the device's prekey store (signed prekeys and one-time prekeys, each
//! one-time prekey consumed exactly once), prekey bundles and their verification, and the
//! initiator's and responder's computation of the shared secret SK and the associated data.
//! It must not know ratchet chains, message encryption or devices and accounts.

mod agreement;
mod bundle;
mod ids;
mod store;
mod upload;

pub use bundle::{PreKeyBundle, VerifiedBundle};
pub use ids::{OneTimePreKeyId, SignedPreKeyId};
pub use store::{
    DEFAULT_MAX_ONE_TIME_PREKEYS, DEFAULT_MAX_SESSIONS_PER_SIGNED_PREKEY,
    DEFAULT_MAX_SIGNED_PREKEYS, OneTimePreKeyPublic, PreKeyStore, PreKeyStoreConfig,
    SignedPreKeyPublic,
};

pub(crate) use agreement::{AssociatedData, Initiated, X3dhHeader, initiate, respond};
pub(crate) use store::Consumption;
pub use upload::OneTimePreKeys;
