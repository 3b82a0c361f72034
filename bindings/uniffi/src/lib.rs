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
//!   change records;
//! - calls: a [`Call`] whose [`CallKeyMessage`] a device sends (`Device::send_call_key`) and
//!   every participant turns into the same [`SrtpKeys`];
//! - policies: [`DeviceConfig`], [`PrimaryPolicy`] and [`CallConfig`], records with the
//!   library's defaults;
//! - for a relay written in Kotlin or Python: [`ServedLists`] (the coverage check) and
//!   [`PublishedPreKeys`] (bundles with one-time prekeys); state at rest: [`seal_state`],
//!   [`open_state`].
//!
//! Like the library, nothing here does I/O: the app moves the bytes, stores the state and passes
//! `now` (Unix milliseconds). Randomness comes from the operating system. Every failure is a
//! [`RatchetryError`] carrying a stable code (see `bindings/codes.rs`), a readable message and
//! what the error names; nothing panics across the boundary.

// The error crosses the boundary as one flat record of what it names (an exception's fields
// in Kotlin, Swift and Python), so it is larger than clippy likes a `Result`'s error to be;
// it is built only on the failure path.
#![allow(clippy::result_large_err)]

uniffi::setup_scaffolding!();

mod calls;
#[path = "../../codes.rs"]
mod codes;
mod config;
mod device;
mod error;
mod history;
mod persist;
mod primary;
mod receiving;
mod server;
mod store;
mod types;

pub use calls::{Call, CallKeyMessage, CallKind, RestoredCall, SrtpKeys, restore_call};
pub use config::{
    AccountPolicy, CallConfig, DeviceConfig, GroupConfig, ListLimits, PreKeyConfig, PrimaryPolicy,
    SessionConfig, default_call_config, default_device_config, default_primary_policy,
};
pub use device::{Device, RestoredDevice, restore_device, restore_device_from_backup};
pub use error::RatchetryError;
pub use history::{HistoryOpener, HistorySealer, SealedHistory};
pub use persist::{OpenedState, open_state, seal_state};
pub use primary::{
    LinkedCompanion, LinkingCompanion, NewAccount, Primary, RestoredPrimary, create_account,
    restore_primary, restore_primary_from_records,
};
pub use receiving::{Inbound, ReceiveStep, Receiving};
pub use server::{PoolCounts, PublishedPreKeys, ServedLists};
pub use store::SqliteStore;
pub use types::{
    Address, BundleFor, Changes, DeviceEvent, GroupEnvelope, ListCoverage, Outbox, Outgoing,
    Received, RetryRequest, StateRole, StoredRecord,
};

/// The id of an envelope (16 bytes): what a resent message's `resent` names, so an app can
/// show a placeholder under it for an envelope it could not read and replace it later.
#[uniffi::export]
pub fn envelope_id(envelope: Vec<u8>) -> Vec<u8> {
    ratchetry::fanout::EnvelopeId::of(&envelope).0.to_vec()
}

/// The ids an app may have stored the message of `envelope` under (16 bytes each): for a 1:1
/// or group envelope, its id as either kind of message from its sender with its salt (one is
/// `envelope_id(envelope)`: a relay can put a read message's salt in an envelope of the other
/// kind); for other bytes, its id alone. `Receiving.step`'s and `ask_again`'s `stored` is
/// whether the store holds a message read under any of them.
#[uniffi::export]
pub fn envelope_ids(envelope: Vec<u8>) -> Vec<Vec<u8>> {
    ratchetry::fanout::EnvelopeId::of_either_kind(&envelope)
        .into_iter()
        .map(|id| id.0.to_vec())
        .collect()
}

/// The safety number of two accounts (60 digits in 12 groups), for people to compare.
#[uniffi::export]
pub fn safety_number(ours: Vec<u8>, theirs: Vec<u8>) -> Result<String, RatchetryError> {
    let ours = types::account(&ours)?;
    let theirs = types::account(&theirs)?;
    Ok(ratchetry::devices::SafetyNumber::new(&ours, &theirs).to_string())
}
