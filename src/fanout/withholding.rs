//! What a group send withholds (PROTOCOL.md 18.5, "Group, withholding"): the member devices
//! the app named, whether they force a new sender key generation, which of them are told, and
//! what the sender key's record keeps of them.
//!
//! It decides only; the send seals and commits. It must not decide who is a member device
//! (the reach does) or who holds a generation (the ledger does).

use alloc::vec::Vec;

use super::ledger::{Outbound, Withholding};
use super::payload::WithheldReason;
use crate::devices::DeviceAddress;
use crate::error::FanoutError;
use crate::primitives::IdentityKey;

/// A withheld device to tell, with its identity key and the reason.
pub(crate) type Tell = (DeviceAddress, IdentityKey, WithheldReason);

/// The devices one send withholds the key from, in address order, each once, with its
/// identity key and the reason it is to be told (`None`: not told).
pub(crate) struct Withheld(Vec<(DeviceAddress, IdentityKey, Option<WithheldReason>)>);

impl Withheld {
    /// The app's list against the send's member devices (`devices`, in address order): a
    /// device named twice counts as named first; one that is not a member device is
    /// `NotAGroupDevice`.
    pub(crate) fn new(
        named: &[(DeviceAddress, Option<WithheldReason>)],
        devices: &[(DeviceAddress, IdentityKey)],
    ) -> Result<Self, FanoutError> {
        let mut withheld = Vec::with_capacity(named.len());
        for (a, reason) in named {
            let i = devices
                .binary_search_by_key(a, |(d, _)| *d)
                .map_err(|_| FanoutError::NotAGroupDevice(*a))?;
            withheld.push((*a, devices[i].1, *reason));
        }
        withheld.sort_by_key(|(a, ..)| *a);
        withheld.dedup_by_key(|(a, ..)| *a);
        Ok(Self(withheld))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn contains(&self, a: &DeviceAddress) -> bool {
        self.0.binary_search_by_key(a, |(d, ..)| *d).is_ok()
    }

    /// Whether the send must make a new generation although the ledger alone would not: a
    /// withheld device holds the current one (it could read on), or a device to be given the
    /// key (`needs_key`) was withheld from it (it must never be given it).
    pub(crate) fn forces_new_generation(
        &self,
        outbound: &Outbound,
        needs_key: &[(DeviceAddress, IdentityKey)],
    ) -> bool {
        let holds = |a| {
            outbound
                .current()
                .is_some_and(|l| l.holders.contains_key(a))
        };
        let was_withheld = |a| !self.contains(a) && outbound.withheld.contains_key(a);
        self.0.iter().any(|(a, ..)| holds(a))
            || (!outbound.withheld.is_empty() && needs_key.iter().any(|(a, _)| was_withheld(a)))
    }

    /// The devices to tell, and what the sender key's record keeps of every withheld device,
    /// given the current generation's record if the send keeps that generation (`None`: a new
    /// one, withheld from no one yet). A device is told when named with a reason its entry
    /// does not hold under its identity key; one named without keeps what its entry held.
    pub(crate) fn tell(
        &self,
        kept: Option<&Outbound>,
    ) -> (Vec<Tell>, Vec<(DeviceAddress, Withholding)>) {
        let told_before = |a: &DeviceAddress, identity: &IdentityKey| {
            kept?
                .withheld
                .get(a)
                .filter(|w| w.identity == *identity)?
                .told
        };
        let mut tell = Vec::new();
        let mut entries = Vec::with_capacity(self.0.len());
        for (a, identity, reason) in &self.0 {
            let before = told_before(a, identity);
            let told = match reason {
                Some(reason) if before != Some(*reason) => {
                    tell.push((*a, *identity, *reason));
                    Some(*reason)
                }
                _ => before,
            };
            let identity = *identity;
            entries.push((*a, Withholding { identity, told }));
        }
        (tell, entries)
    }
}
