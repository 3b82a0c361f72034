//! Device policy: how many companions, how long they stay valid without the primary.

/// Default for [`DevicePolicy::max_companions`].
pub const DEFAULT_MAX_COMPANIONS: u32 = 4;
/// Default for [`DevicePolicy::companion_validity_ms`]: 14 days.
pub const DEFAULT_COMPANION_VALIDITY_MS: u64 = 14 * 24 * 60 * 60 * 1000;
/// Default for [`DevicePolicy::link_invitation_validity_ms`]: 10 minutes.
pub const DEFAULT_LINK_INVITATION_VALIDITY_MS: u64 = 10 * 60 * 1000;

/// Limits on an account's devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevicePolicy {
    /// Companions (devices other than the primary) an account may have; lists with more are
    /// refused.
    pub max_companions: u32,
    /// How long a companion stays valid after the primary last signed the list that renewed
    /// it. Past that, it is no longer fanned out to and its messages are refused.
    pub companion_validity_ms: u64,
    /// How long a link invitation can be answered.
    pub link_invitation_validity_ms: u64,
}

impl Default for DevicePolicy {
    fn default() -> Self {
        Self {
            max_companions: DEFAULT_MAX_COMPANIONS,
            companion_validity_ms: DEFAULT_COMPANION_VALIDITY_MS,
            link_invitation_validity_ms: DEFAULT_LINK_INVITATION_VALIDITY_MS,
        }
    }
}
