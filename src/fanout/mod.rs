//! Client fanout: every message is encrypted once per linked device identity, to all active
//! devices of the recipient and to this account's own other devices; group messages once per
//! sender key, with the key distributed pairwise only where the ledger says it is missing.
//!
//! It owns the [`Device`] (the app-facing state of one device), envelopes and payloads, groups
//! and the distribution ledger, the journals (read envelopes, sent messages, pending retries),
//! the device's records, and the typed outcomes the app acts on. It builds on devices,
//! ratchet, x3dh and group, and nothing below knows about it.
//!
//! The [crate page](crate) explains the model an app works with, and the [`guide`](crate::guide)
//! what an app stores, when, and what it retries.

mod body_digest;
mod call_key_retry;
mod delivery;
mod device;
mod envelope;
mod envelope_id;
mod groups;
mod journal;
mod ledger;
mod legacy;
pub(crate) mod lists;
mod members;
pub(crate) mod membership;
mod message_id;
mod outbox;
mod payload;
mod reach;
mod receive;
mod records;
mod retry;
mod retry_request;
mod send;
pub(crate) mod sessions;
mod state;
mod withholding;

pub use crate::persist::Record;
pub use device::{Device, DeviceConfig, OWN_LIST_CLOCK_ALLOWANCE_MS};
pub use envelope_id::EnvelopeId;
pub use journal::{
    DEFAULT_RETRY_WINDOW_MS, MAX_PENDING_RETRIES, MAX_REMEMBERED_MESSAGE_IDS,
    MAX_REPLACED_MESSAGE_IDS, MAX_RETRY_ATTEMPTS, MAX_SENT_MESSAGES,
    MAX_WAITING_RETRIES_PER_ACCOUNT, PENDING_RETRY_HOLD_MS, RESTORE_SEND_ID_FLOOR_CAP,
    RESTORE_SEND_ID_SKIP, SendId,
};
pub use members::MAX_GROUP_MEMBERS;
pub use membership::{MAX_MEMBERSHIP_ACCOUNTS, MAX_MEMBERSHIP_GROUPS};
pub use message_id::MessageId;
pub use outbox::{Event, Outbox, Outgoing, Received};
pub use payload::{MAX_WITHHELD_GENERATIONS, WithheldReason};
pub use records::StateChanges;
pub use retry_request::{RetryReason, RetryRequest};
