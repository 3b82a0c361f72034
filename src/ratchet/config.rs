//! Session limits, with documented defaults (SECURITY.md lists them).

/// Default for [`SessionConfig::max_forward_jump`].
pub const DEFAULT_MAX_FORWARD_JUMP: u32 = 2000;
/// Default for [`SessionConfig::max_skipped_keys`].
pub const DEFAULT_MAX_SKIPPED_KEYS: u32 = 2000;

/// Policy of one Double Ratchet session; stored with its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// The most message keys one incoming message may make the session derive and skip
    /// (across the end of the previous receiving chain and the start of the new one). A message
    /// asking for more is refused with `TooFarAhead`, which bounds the work a forged header
    /// can cause.
    pub max_forward_jump: u32,
    /// The most skipped message keys stored for late messages; past it the oldest is evicted,
    /// and the message it would have opened becomes undecryptable.
    pub max_skipped_keys: u32,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            max_forward_jump: DEFAULT_MAX_FORWARD_JUMP,
            max_skipped_keys: DEFAULT_MAX_SKIPPED_KEYS,
        }
    }
}
