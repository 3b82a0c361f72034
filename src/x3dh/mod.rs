//! PQXDH key agreement (Signal's PQXDH specification: X3DH plus an ML-KEM-1024 encapsulation,
//! with ratchetry's labels and encodings).
//!
//! It owns: prekey ids, the device's prekey store (signed prekeys, one-time prekeys, and the
//! ML-KEM prekeys: a last-resort one and one-time ones; each one-time key consumed exactly
//! once), prekey bundles and their verification, and the initiator's and responder's
//! computation of the shared secret SK and the associated data.
//! It must not know ratchet chains, message encryption or devices and accounts.

mod agreement;
mod bundle;
mod ids;
mod kem_prekeys;
mod public;
mod store;
pub(crate) use store::restore_spread;
mod upload;

pub(crate) use bundle::verify_kem_prekey;
pub use bundle::{PreKeyBundle, VerifiedBundle};
pub use ids::{KemPreKeyId, OneTimePreKeyId, SignedPreKeyId};
pub use public::{KemPreKeyPublic, OneTimePreKeyPublic, SignedPreKeyPublic};
pub use store::{
    DEFAULT_MAX_LAST_RESORT_USES, DEFAULT_MAX_ONE_TIME_KEM_PREKEYS, DEFAULT_MAX_ONE_TIME_PREKEYS,
    DEFAULT_MAX_SESSIONS_PER_SIGNED_PREKEY, DEFAULT_MAX_SIGNED_PREKEYS, PreKeyStore,
    PreKeyStoreConfig, RESTORE_PREKEY_ID_SKIP, RESTORE_PREKEY_ID_SPREAD, restore_prekey_skip,
};

pub(crate) use agreement::{AssociatedData, Initiated, Origin, X3dhHeader, initiate, respond};
pub(crate) use kem_prekeys::KemUse;
pub(crate) use store::Consumption;
pub use upload::OneTimePreKeys;
