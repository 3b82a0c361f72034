//! What a group send reaches: the member devices and the lists they come from. A steady group
//! sends many messages to the same devices, so it is computed once and kept with the group,
//! and each later send checks in constant time that nothing it depends on changed: no list
//! held by the device (a generation counter), no entry's expiry passed, the clock not set back,
//! and, for "no one needs the key", no change to the ledger since the send that settled it.
//! Without it, a send to a 1,024-member group walked and sorted ~3,000 devices every time.
//!
//! It is not state: never persisted, empty after a load. It must not decide who is a member or
//! who holds the key: the groups and the ledger do.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::Device;
use super::members::Members;
use crate::devices::{AccountKey, DeviceAddress, ListCoverage};
use crate::error::Error;
use crate::primitives::IdentityKey;
use crate::time::Timestamp;

/// The devices and lists of one group send, and when they hold.
#[derive(Clone, Debug)]
pub(crate) struct Reach {
    /// The device's lists generation when computed.
    lists: u64,
    /// The time it was computed at: a send at an earlier time (a clock set back) may see an
    /// expired entry active again.
    from: Timestamp,
    /// The first expiry, after `from`, of any entry of the lists: from then on a device has
    /// left. `None`: no entry expires.
    until: Option<Timestamp>,
    /// Every member device but this one, in address order, each once.
    pub(crate) devices: Vec<(DeviceAddress, IdentityKey)>,
    /// The addresses of `devices`, shared with every outbox of a send it holds for: an outbox
    /// then costs no copy of ~3,000 addresses, which took more time than the group encryption's
    /// other overhead together (`group_steady/1024x3` at 1.42x its floor).
    pub(crate) addresses: Arc<[DeviceAddress]>,
    /// The lists of the member accounts and this device's own, in account order; shared with
    /// the outboxes, like `addresses`.
    pub(crate) coverage: Arc<[ListCoverage]>,
    /// The current sender key generation's holders are exactly `devices` (a send gave it to
    /// every one of them and nothing changed the ledger since): a send distributes nothing.
    pub(crate) settled: bool,
}

impl Reach {
    /// Whether it still holds for a send at `now` by a device at lists generation `lists`.
    pub(crate) fn holds(&self, lists: u64, now: Timestamp) -> bool {
        self.lists == lists && now >= self.from && self.until.is_none_or(|t| now < t)
    }

    /// The same reach after a send: `settled` if it gave the current key to every device of
    /// it, else (some were withheld from) to be walked again.
    pub(crate) fn settled(self, settled: bool) -> Self {
        Self { settled, ..self }
    }
}

impl Device {
    /// The reach of a send to `members` (and this device's own account) at `now`; the member
    /// accounts whose lists this device lacks instead, if any.
    pub(crate) fn reach_of(
        &self,
        members: &Members,
        now: Timestamp,
    ) -> Result<Result<Reach, Vec<AccountKey>>, Error> {
        let unknown: Vec<AccountKey> = members
            .iter()
            .filter(|a| !self.lists.contains_key(a))
            .copied()
            .collect();
        if !unknown.is_empty() {
            return Ok(Err(unknown));
        }
        let accounts = || {
            members
                .iter()
                .chain(core::iter::once(&self.address.account))
        };
        let mut devices = Vec::new();
        let mut until: Option<Timestamp> = None;
        for account in accounts() {
            self.add_targets(account, now, &mut devices)?;
            let expiries = self
                .list(account)?
                .entries()
                .iter()
                .filter_map(|e| e.expires_at);
            for t in expiries.filter(|t| *t > now) {
                until = Some(until.map_or(t, |u| u.min(t)));
            }
        }
        devices.sort_unstable_by_key(|(a, _)| *a);
        devices.dedup_by_key(|(a, _)| *a);
        Ok(Ok(Reach {
            lists: self.lists_generation,
            from: now,
            until,
            addresses: devices.iter().map(|(a, _)| *a).collect(),
            devices,
            coverage: self.coverage(accounts())?,
            settled: false,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reach(until: Option<u64>) -> Reach {
        Reach {
            lists: 3,
            from: Timestamp(100),
            until: until.map(Timestamp),
            devices: Vec::new(),
            addresses: Arc::default(),
            coverage: Arc::default(),
            settled: false,
        }
    }

    #[test]
    fn it_holds_for_its_generation_from_its_time_until_the_first_expiry() {
        let r = reach(Some(200));
        assert!(r.holds(3, Timestamp(100)));
        assert!(r.holds(3, Timestamp(199)));
        assert!(!r.holds(3, Timestamp(200)), "an entry expired");
        assert!(!r.holds(3, Timestamp(99)), "the clock was set back");
        assert!(!r.holds(4, Timestamp(150)), "a list changed");
        assert!(reach(None).holds(3, Timestamp(u64::MAX)));
    }
}
