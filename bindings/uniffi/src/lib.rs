//! UniFFI bindings for ratchetry's device-level API: Kotlin, Swift and Python.
//!
//! A thin wrapper (conversion and error mapping only; no protocol logic lives here):
//!
//! - [`create_account`] makes a primary device ([`Primary`], the account role, plus its
//!   [`Device`]);
//! - a companion links through [`LinkingCompanion`]: invitation → request → approval →
//!   confirmation;
//! - a [`Device`] follows device lists, sends and receives 1:1 and group messages, sends and
//!   receives history offers ([`HistorySealer`], [`HistoryOpener`]), and persists as bytes or as
//!   change records.
//!
//! Like the library, nothing here does I/O: the app moves the bytes, stores the state and passes
//! `now` (Unix milliseconds). Randomness comes from the operating system. Every failure is a
//! [`RatchetryError`] carrying a stable code (see `bindings/codes.rs`) and a readable message;
//! nothing panics across the boundary.

uniffi::setup_scaffolding!();

#[path = "../../codes.rs"]
mod codes;
mod device;
mod error;
mod history;
mod primary;
mod types;

pub use device::{Device, RestoredDevice, restore_device};
pub use error::RatchetryError;
pub use history::{HistoryOpener, HistorySealer, SealedHistory};
pub use primary::{
    LinkedCompanion, LinkingCompanion, NewAccount, Primary, create_account, restore_primary,
};
pub use types::{
    Address, BundleFor, Changes, DeviceEvent, GroupEnvelope, Outbox, Outgoing, Received,
    RetryRequest, StoredRecord,
};

/// The safety number of two accounts (60 digits in 12 groups), for people to compare.
#[uniffi::export]
pub fn safety_number(ours: Vec<u8>, theirs: Vec<u8>) -> Result<String, RatchetryError> {
    let ours = types::account(&ours)?;
    let theirs = types::account(&theirs)?;
    Ok(ratchetry::devices::SafetyNumber::new(&ours, &theirs).to_string())
}
