//! The Double Ratchet (Signal's specification, with ratchetry's KDF labels and encodings).
//!
//! It owns: pairwise sessions (root, sending and receiving chains, the DH ratchet), bounded
//! skipped message keys, the message header, pairwise message encryption and the session's
//! persisted form. It builds sessions from X3DH results and must not know devices, groups or
//! fanout.

mod config;
pub(crate) mod keys;
mod message;
pub(crate) mod pq;
pub(crate) mod session;
mod skipped;
mod state;

pub use config::{DEFAULT_MAX_FORWARD_JUMP, DEFAULT_MAX_SKIPPED_KEYS, SessionConfig};
pub use message::{IncomingMessage, PreKeyMessage, RatchetMessage};
pub use session::Session;
