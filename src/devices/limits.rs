//! The verifier's side: the ceiling a device (or a server) puts on every account's list,
//! whatever the account's own signed [`AccountPolicy`](super::AccountPolicy) says.

/// Default for [`ListLimits::max_companions`]: four times the default account policy's 4, so
/// an account may raise its own cap well beyond the default, while the work a sender does per
/// account (one encryption per device) stays bounded network-wide.
pub const DEFAULT_COMPANION_CEILING: u32 = 16;

/// What a verifier accepts of any account's device list (PROTOCOL.md 15.2): the network-wide
/// ceiling, configured on the verifying side. The account's own limits travel signed in its
/// list; these only cap them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListLimits {
    /// The most companions any account may allow itself: a list whose signed policy allows
    /// more is refused (`PolicyAboveCeiling`), however many companions it lists. A list in the
    /// old form (no signed policy, PROTOCOL.md 23) may list at most this many.
    pub max_companions: u32,
}

/// What a primary accepts of its own account's lists (a resync, a migration): its account
/// signed their policy, so no ceiling but the decoding bound applies.
pub(crate) const OWN_LIST_LIMITS: ListLimits = ListLimits {
    max_companions: super::list::MAX_LIST_ENTRIES,
};

impl ListLimits {
    /// The limits of a device stored by the previous release, whose one `max_companions`
    /// capped every account's list: that cap stood in for the accounts' own policies, which
    /// now travel signed in their lists, so the ceiling becomes the default unless the old cap
    /// was higher (a list that verified before still does).
    pub(crate) fn from_previous_cap(max_companions: u32) -> Self {
        Self {
            max_companions: max_companions.max(DEFAULT_COMPANION_CEILING),
        }
    }
}

impl Default for ListLimits {
    fn default() -> Self {
        Self {
            max_companions: DEFAULT_COMPANION_CEILING,
        }
    }
}
