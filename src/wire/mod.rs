//! The byte codec: a reader that refuses truncation and trailing bytes, a few writer helpers,
//! and the version and type bytes every encoding starts with. Layers above own their message
//! layouts; this module owns only the rules they share (big-endian integers, fixed-size fields,
//! flags that are exactly 0 or 1). PROTOCOL.md, section "Encoding", states the same rules.

mod reader;
mod writer;

pub(crate) use reader::{Reader, bounded_count};
pub(crate) use writer::{Counter, SecretBuf, Writer};

/// The wire format version this build reads and writes: the first byte of every wire message.
/// Persisted state types carry versions of their own, each next to its encoder.
pub(crate) const VERSION: u8 = 2;

/// Type bytes: wire messages below 0x80, persisted state from 0x80.
pub(crate) mod kind {
    pub(crate) const BUNDLE: u8 = 0x01;
    pub(crate) const RATCHET_MESSAGE: u8 = 0x02;
    pub(crate) const PREKEY_MESSAGE: u8 = 0x03;
    pub(crate) const GROUP_MESSAGE: u8 = 0x04;
    pub(crate) const SENDER_KEY_DISTRIBUTION: u8 = 0x05;
    pub(crate) const DEVICE_LIST: u8 = 0x06;
    pub(crate) const LINK_INVITATION: u8 = 0x07;
    pub(crate) const LINK_REQUEST: u8 = 0x08;
    pub(crate) const LINK_APPROVAL: u8 = 0x09;
    pub(crate) const LINK_CONFIRMATION: u8 = 0x0a;
    pub(crate) const ENVELOPE: u8 = 0x0b;
    pub(crate) const PAYLOAD: u8 = 0x0c;
    pub(crate) const HISTORY_CHUNK: u8 = 0x0d;
    pub(crate) const HISTORY_OFFER: u8 = 0x0e;
    pub(crate) const CALL_KEY: u8 = 0x0f;
    pub(crate) const ONE_TIME_PREKEYS: u8 = 0x10;
    pub(crate) const SESSION_STATE: u8 = 0x81;
    pub(crate) const PREKEY_STORE_STATE: u8 = 0x82;
    pub(crate) const IDENTITY_STATE: u8 = 0x83;
    pub(crate) const OUTBOUND_GROUP_STATE: u8 = 0x84;
    pub(crate) const INBOUND_SENDER_KEY_STATE: u8 = 0x88;
    pub(crate) const CALL_STATE: u8 = 0x89;
    pub(crate) const RETRY_REQUEST_STATE: u8 = 0x8a;
    pub(crate) const PRIMARY_STATE: u8 = 0x86;
    pub(crate) const DEVICE_STATE: u8 = 0x87;
    pub(crate) const SEALED_STATE: u8 = 0x90;
}
