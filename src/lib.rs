#![doc = include_str!("docs/crate.md")]
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// Library code reports every failure as a typed error; tests may unwrap and panic.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

extern crate alloc;

pub mod calls;
pub mod devices;
pub mod driver;
mod error;
pub mod fanout;
pub mod group;
#[doc = include_str!("docs/guide.md")]
pub mod guide {}
pub mod history;
mod labels;
pub mod persist;
pub mod primitives;
pub mod ratchet;
pub mod relay;
pub mod server;
#[cfg(feature = "test-support")]
pub mod testing;
mod time;
mod wire;
pub mod x3dh;

pub use error::{
    CryptoError, DecodeError, DeviceError, Error, FanoutError, GroupError, RatchetError, Result,
    ServerError, StateError, SyncError, X3dhError,
};
pub use primitives::{DhPublicKey, IdentityKey, IdentityKeyPair, Signature};
pub use ratchet::{IncomingMessage, Session, SessionConfig};
pub use time::Timestamp;

/// The operating system's RNG, ready to pass wherever the crate takes `rng` (feature
/// `os-rng`): getrandom's `SysRng` with its errors turned into panics, as other Rust CSPRNG
/// handles do, since nothing is safe to do without randomness. An RNG from `rand` 0.9 does not
/// fit: the crate takes `rand_core` 0.10's `CryptoRng`.
///
/// ```
/// let mut rng = ratchetry::os_rng();
/// let identity = ratchetry::IdentityKeyPair::generate(&mut rng);
/// # let _ = identity;
/// ```
#[cfg(feature = "os-rng")]
pub type OsRng = rand_core::UnwrapErr<getrandom::SysRng>;

/// A handle on the operating system's RNG (feature `os-rng`); see [`OsRng`].
#[cfg(feature = "os-rng")]
pub fn os_rng() -> OsRng {
    rand_core::UnwrapErr(getrandom::SysRng)
}
pub use x3dh::{PreKeyBundle, PreKeyStore, PreKeyStoreConfig, VerifiedBundle};

// README.md is GitHub's front page, not the crate docs; its example still runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
