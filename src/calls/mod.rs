//! End-to-end call keys (PROTOCOL.md, "Call keys") for 1:1 calls, group calls and rooms: a
//! call secret per epoch, distributed to every participant device through pairwise sessions;
//! each participant derives its own SRTP master key and salt for sending, and everyone else's
//! for receiving. A join ratchets the secret forward (the joiner cannot derive earlier keys); a
//! leave or removal replaces it with a fresh one (the leaver cannot derive later keys).
//!
//! It owns call ids, the call state, the key message and the SRTP derivation. It must not know
//! sessions: the fanout layer carries the key message.

mod call;
mod key_message;

pub use call::{
    Call, CallConfig, DEFAULT_MAX_GROUP_PARTICIPANTS, DEFAULT_MAX_ROOM_PARTICIPANTS, KeptCall,
    SrtpKeys,
};
pub use key_message::{CallId, CallKeyMessage, CallKind};
