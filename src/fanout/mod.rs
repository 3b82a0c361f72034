//! Client fanout: every message is encrypted once per linked device identity, to all active
//! devices of the recipient and to this account's own other devices; group messages once per
//! sender key, with the key distributed pairwise only where the ledger says it is missing.
//!
//! It owns the [`Device`] (the app-facing state of one device), envelopes and payloads, the
//! distribution ledger, and the typed outcomes the app acts on. It builds on devices, ratchet,
//! x3dh and group, and nothing below knows about it.

mod device;
pub(crate) mod envelope;
mod outbox;
mod payload;
mod receive;
mod retry;
mod send;
mod sessions;
mod state;

pub use device::{Device, DeviceConfig, MAX_REMEMBERED_MESSAGE_IDS, MessageId};
pub use outbox::{Event, Outbox, Outgoing, Received};
pub use payload::WithheldReason;
pub use retry::{MAX_RETRY_ATTEMPTS, Resend, RetryReason, RetryRequest};
