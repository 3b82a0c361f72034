//! Accounts and their devices: the account identity key, device ids and addresses, the signed
//! device list (with its verification: signer, rollback, duplicates, the account's signed
//! policy under the verifier's ceiling, expiry),
//! the list coverage a send claims, linking a companion without I/O, the primary's list
//! management, and safety numbers.
//!
//! It builds on primitives (signatures) and x3dh identity keys; it must not know sessions,
//! groups or fanout.

pub(crate) mod account;
mod coverage;
mod ids;
mod legacy;
mod limits;
mod linking;
mod list;
mod policy;
mod primary;
mod primary_records;
mod primary_state;
mod safety;

pub use account::{AccountKey, AccountKeyPair};
pub use coverage::ListCoverage;
pub use ids::{ADDRESS_LEN, DeviceAddress, DeviceId, PRIMARY_DEVICE};
pub use limits::{DEFAULT_COMPANION_CEILING, ListLimits};
pub use linking::{LinkApproval, LinkConfirmation, LinkInvitation, LinkRequest, complete_link};
#[cfg(feature = "test-support")]
pub(crate) use list::binding;
pub use list::{DeviceEntry, SignedDeviceList, VerifiedDeviceList};
pub(crate) use list::{ListMark, MAX_LIST_ENTRIES};
pub use policy::{
    AccountPolicy, DEFAULT_COMPANION_VALIDITY_MS, DEFAULT_LINK_INVITATION_VALIDITY_MS,
    DEFAULT_MAX_COMPANIONS, PrimaryPolicy,
};
pub use primary::{
    Primary, RESTORE_DEVICE_ID_SKIP, RESTORE_DEVICE_ID_SPREAD, RESTORE_VERSION_CLOCK_CAP_MS,
    RESTORE_VERSION_PER_MS, RESTORE_VERSION_SKIP,
};
pub use primary_records::PrimaryChanges;
pub use safety::SafetyNumber;
