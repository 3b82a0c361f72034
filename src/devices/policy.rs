//! What a primary decides for its account: the [`AccountPolicy`] it signs into every device
//! list (so every verifier applies the account's own limits), and the [`PrimaryPolicy`] that
//! adds what stays on the primary (how long its link invitations can be answered).

/// Default for [`AccountPolicy::max_companions`].
pub const DEFAULT_MAX_COMPANIONS: u32 = 4;
/// Default for [`AccountPolicy::companion_validity_ms`]: 14 days.
pub const DEFAULT_COMPANION_VALIDITY_MS: u64 = 14 * 24 * 60 * 60 * 1000;
/// Default for [`PrimaryPolicy::link_invitation_validity_ms`]: 10 minutes.
pub const DEFAULT_LINK_INVITATION_VALIDITY_MS: u64 = 10 * 60 * 1000;

/// The account's limits on its own devices, signed into its device list (PROTOCOL.md 15.1):
/// a verifier refuses a list with more companions than its own policy allows, or a companion
/// that stays valid longer than it says, and needs no policy of its own beyond the ceiling of
/// its [`ListLimits`](super::ListLimits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountPolicy {
    /// Companions (devices other than the primary) the account may have.
    pub max_companions: u32,
    /// How long a companion stays valid after the primary last signed the list that renewed
    /// it. Past that, it is no longer fanned out to and its messages are refused.
    pub companion_validity_ms: u64,
}

impl Default for AccountPolicy {
    fn default() -> Self {
        Self {
            max_companions: DEFAULT_MAX_COMPANIONS,
            companion_validity_ms: DEFAULT_COMPANION_VALIDITY_MS,
        }
    }
}

/// Everything a [`Primary`](super::Primary) applies: the account's policy, which it signs into
/// every list, and what no other device needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrimaryPolicy {
    /// Signed into every list this primary signs.
    pub account: AccountPolicy,
    /// How long a link invitation can be answered (local to the primary: the invitation
    /// carries its own expiry).
    pub link_invitation_validity_ms: u64,
}

impl Default for PrimaryPolicy {
    fn default() -> Self {
        Self {
            account: AccountPolicy::default(),
            link_invitation_validity_ms: DEFAULT_LINK_INVITATION_VALIDITY_MS,
        }
    }
}
