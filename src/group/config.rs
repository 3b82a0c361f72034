//! Receiver-side limits for sender keys, with documented defaults (SECURITY.md lists them).

/// Default for [`GroupConfig::max_forward_jump`]: larger than pairwise, since a busy group
/// interleaves many messages a device may miss.
pub const DEFAULT_GROUP_MAX_FORWARD_JUMP: u32 = 5000;
/// Default for [`GroupConfig::max_skipped_keys`].
pub const DEFAULT_GROUP_MAX_SKIPPED_KEYS: u32 = 2000;
/// Default for [`GroupConfig::max_generations`].
pub const DEFAULT_MAX_GENERATIONS: u32 = 4;

/// Receiver limits for [`InboundSenderKey`](super::InboundSenderKey), passed to its calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupConfig {
    /// The most message keys one group message may make a sender key derive and skip.
    pub max_forward_jump: u32,
    /// Skipped message keys stored per sender-key generation; the oldest are evicted.
    pub max_skipped_keys: u32,
    /// Sender-key generations kept per (group, sender), so messages in flight across a
    /// rotation still open; the one that arrived first is evicted first.
    pub max_generations: u32,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            max_forward_jump: DEFAULT_GROUP_MAX_FORWARD_JUMP,
            max_skipped_keys: DEFAULT_GROUP_MAX_SKIPPED_KEYS,
            max_generations: DEFAULT_MAX_GENERATIONS,
        }
    }
}
