//! Sender-key groups: each sender device encrypts a group message once, under its own hash
//! chain, and signs it; only the sender key itself travels pairwise (as a distribution
//! message inside Double Ratchet sessions, which the fanout layer arranges).
//!
//! It owns: group and key ids, the sending device's binding ([`GroupSender`]), the owner's
//! outbound sender key (chain, signing key, generations), the distribution message, signed
//! group messages, and one sender's inbound keys with bounded generations and skipped keys. It
//! reuses the ratchet's KDF_CK and must not know sessions, devices or fanout.

mod config;
mod distribution;
mod ids;
mod inbound;
mod message;
mod outbound;
mod sender;

pub use config::{
    DEFAULT_GROUP_MAX_FORWARD_JUMP, DEFAULT_GROUP_MAX_SKIPPED_KEYS, DEFAULT_MAX_GENERATIONS,
    GroupConfig,
};
pub use distribution::SenderKeyDistribution;
pub use ids::{GroupId, SenderKeyId};
pub use inbound::InboundSenderKey;
pub use message::GroupMessage;
pub use outbound::OutboundGroupSession;
pub use sender::{GroupSender, MAX_MESSAGE_CONTEXT, MAX_SENDER_CONTEXT};
