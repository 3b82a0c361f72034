//! The account's group membership, handed to a newly linked companion with the history offer
//! (PROTOCOL.md 18.2): each group's id and its member accounts besides the account's own. That
//! is all the companion needs to take part as the account's new device: it sends to the member
//! devices (its first send distributes its own sender key to each) and accepts the members'
//! keys, messages and resends. Other devices' sender keys are not in it: every device has its
//! own, and receivers get them from their senders by distribution or retry.
//!
//! It rides only the own-account pairwise channel, stamped with the offering device's clock.
//! Until the receiver's app sets or forgets a group itself, the newest membership it read is
//! its groups: a newer one installs, updates and leaves the groups offers installed, and an
//! older one (the relay held it back) changes nothing (review 42's two known limits, fixed at
//! stop 50). Once the app has, the groups are its own, and no membership touches them: a group
//! its app set is at least as new as any offer (PROTOCOL.md 18.2).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::Device;
use super::device::OWN_LIST_CLOCK_ALLOWANCE_MS;
use super::ledger::Group;
use super::members::{MAX_GROUP_MEMBERS, Members};
use super::records::Key;
use crate::devices::AccountKey;
use crate::error::{DecodeError, Error, SyncError};
use crate::group::GroupId;
use crate::time::Timestamp;
use crate::wire::{Reader, Writer, bounded_count};

/// Groups a membership may name: a device in more groups cannot send a history offer
/// (`SyncError::MembershipTooLarge`).
pub const MAX_MEMBERSHIP_GROUPS: usize = 1024;
/// Member accounts a membership may name, counted once per group it is in (32 bytes each, so
/// a membership stays under 1.1 MiB). Eight groups of [`MAX_GROUP_MEMBERS`] fit.
pub const MAX_MEMBERSHIP_ACCOUNTS: usize = 32 * 1024;

/// Each group of the sending device with its member accounts (the account's own left out).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Membership(pub(crate) BTreeMap<GroupId, Members>);

impl Membership {
    /// A snapshot of `groups`, or `MembershipTooLarge` if it exceeds a bound.
    pub(crate) fn of(groups: &BTreeMap<GroupId, Group>) -> Result<Self, SyncError> {
        let accounts: usize = groups.values().map(|g| g.members.len()).sum();
        let largest = groups.values().map(|g| g.members.len()).max().unwrap_or(0);
        if groups.len() > MAX_MEMBERSHIP_GROUPS
            || accounts > MAX_MEMBERSHIP_ACCOUNTS
            || largest > MAX_GROUP_MEMBERS
        {
            return Err(SyncError::MembershipTooLarge {
                groups: groups.len(),
                accounts,
                largest,
            });
        }
        Ok(Self(
            groups
                .iter()
                .map(|(id, g)| (*id, g.members.clone()))
                .collect(),
        ))
    }

    /// `u32(n) ‖ n × (group_id (32) ‖ u32(m) ‖ m × AK (32))`, groups and members ascending.
    pub(crate) fn write(&self, out: &mut impl Writer) {
        out.u32(self.0.len() as u32);
        for (group, members) in &self.0 {
            out.put(&group.0);
            members.write(out);
        }
    }

    /// Reads what [`write`](Self::write) writes, and only that: groups and members strictly
    /// ascending (so unique), counts within the bounds, every account key valid.
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = bounded_count(r, MAX_MEMBERSHIP_GROUPS as u32)?;
        let mut groups = BTreeMap::new();
        let mut last_group: Option<GroupId> = None;
        let mut accounts = 0usize;
        for _ in 0..n {
            let group = GroupId(r.array()?);
            if last_group.is_some_and(|l| l >= group) {
                return Err(DecodeError::InvalidValue);
            }
            last_group = Some(group);
            let m = bounded_count(r, MAX_GROUP_MEMBERS as u32)?;
            accounts += m;
            if accounts > MAX_MEMBERSHIP_ACCOUNTS {
                return Err(DecodeError::InvalidValue);
            }
            groups.insert(group, Members::read_accounts(r, m, AccountKey::read)?);
        }
        Ok(Self(groups))
    }
}

impl Device {
    /// This device's groups, to send with a history offer.
    pub(crate) fn membership(&self) -> Result<Membership, SyncError> {
        Membership::of(&self.groups)
    }

    /// What applying `membership`, offered at `offered_at` by a device of this account,
    /// changes (PROTOCOL.md 18.2), or `None` if it changes nothing: its app has set or
    /// forgotten a group (it owns the groups then), or this device applied an offer made no
    /// earlier (this one is older: the relay held it back, or sent it again), or this one is
    /// stamped more than [`OWN_LIST_CLOCK_ALLOWANCE_MS`] after `now`. Otherwise the
    /// offer is the newest: the groups it names that this device does not hold are installed,
    /// and the groups an offer installed (and the app has neither set nor confirmed) take its
    /// members, or are left if it does not name them. Nothing changes here. A membership
    /// naming this account among a group's members is `InvalidValue` (the sender's own
    /// account is never listed, 18.5).
    pub(crate) fn judge_membership(
        &self,
        now: Timestamp,
        offered_at: Timestamp,
        membership: Membership,
    ) -> Result<Option<MembershipChange>, Error> {
        let own = self.address.account;
        if membership.0.values().any(|m| m.contains(&own)) {
            return Err(DecodeError::InvalidValue.into());
        }
        // An offer stamped beyond the allowance after this device's clock is not applied: a
        // stolen device's, made to outrank every later offer, would hold the phone's back.
        // (Capping its time instead let two offers of a phone whose clock runs ahead apply in
        // the order the relay delivered them: review 55.)
        let latest = now.as_millis().saturating_add(OWN_LIST_CLOCK_ALLOWANCE_MS);
        if self.groups_by_app
            || offered_at.as_millis() > latest
            || self.newest_offer.is_some_and(|t| t >= offered_at)
        {
            return Ok(None);
        }
        // Held groups the app set, confirmed, or must confirm are the app's: left as they are.
        let offered = |g: &Group| g.offered && !g.unconfirmed;
        let leave = self
            .groups
            .iter()
            .filter(|(id, g)| offered(g) && !membership.0.contains_key(id))
            .map(|(id, _)| *id)
            .collect();
        let set = membership
            .0
            .into_iter()
            .filter(|(id, members)| {
                self.groups
                    .get(id)
                    .is_none_or(|g| offered(g) && g.members != *members)
            })
            .collect();
        Ok(Some(MembershipChange {
            offered_at,
            set,
            leave,
        }))
    }

    /// Applies what [`judge_membership`](Self::judge_membership) found.
    pub(crate) fn apply_membership(&mut self, change: MembershipChange) {
        for group in change.leave {
            self.remove_group(group);
        }
        for (group, members) in change.set {
            let g = self.put_members(group, members);
            if !core::mem::replace(&mut g.offered, true) {
                self.touch(Key::Offered(group));
            }
        }
        self.newest_offer = Some(change.offered_at);
        self.touch(Key::NewestOffer);
    }
}

/// What a newer history offer's membership changes on a device whose app has not taken over
/// its groups.
pub(crate) struct MembershipChange {
    offered_at: Timestamp,
    /// Groups installed, or offered groups whose members change, with their new members.
    set: Vec<(GroupId, Members)>,
    /// Offered groups the offer no longer names.
    leave: Vec<GroupId>,
}

impl MembershipChange {
    /// The groups changed, ascending: installed, given new members, or left.
    pub(crate) fn groups(&self) -> Vec<GroupId> {
        let mut groups: Vec<GroupId> = self.set.iter().map(|(g, _)| *g).collect();
        groups.extend(&self.leave);
        groups.sort_unstable();
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::SigningKeyPair;
    use crate::testing::SeededRng;

    fn keys(n: usize) -> Vec<AccountKey> {
        let rng = &mut SeededRng::from_label("membership keys");
        let mut out: Vec<AccountKey> = (0..n)
            .map(|_| AccountKey::from_trusted(SigningKeyPair::generate(rng).public().to_bytes()))
            .collect();
        out.sort_unstable();
        out
    }

    fn encode(groups: &[([u8; 32], &[AccountKey])]) -> Vec<u8> {
        let mut out = Vec::new();
        out.u32(groups.len() as u32);
        for (g, members) in groups {
            out.put(g);
            out.u32(members.len() as u32);
            for m in *members {
                out.put(m.as_bytes());
            }
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Membership, DecodeError> {
        let mut r = Reader::new(bytes);
        let m = Membership::read(&mut r)?;
        r.finish()?;
        Ok(m)
    }

    fn groups(list: &[([u8; 32], &[AccountKey])]) -> BTreeMap<GroupId, Group> {
        list.iter()
            .map(|(g, m)| {
                let group = Group {
                    members: Members::new(m.iter().copied()),
                    ..Group::default()
                };
                (GroupId(*g), group)
            })
            .collect()
    }

    #[test]
    fn membership_round_trips_in_ascending_order() {
        let k = keys(3);
        let bytes = encode(&[([1; 32], &k[..2]), ([2; 32], &[]), ([3; 32], &k)]);
        let m = decode(&bytes).unwrap();
        assert_eq!(m.0.len(), 3);
        let mut again = Vec::new();
        m.write(&mut again);
        assert_eq!(again, bytes);
        assert_eq!(
            m,
            Membership::of(&groups(&[
                ([1; 32], &k[..2]),
                ([2; 32], &[]),
                ([3; 32], &k)
            ]))
            .unwrap()
        );
    }

    #[test]
    fn groups_out_of_order_or_twice_are_refused() {
        let k = keys(1);
        for order in [[[2; 32], [1; 32]], [[1; 32], [1; 32]]] {
            let bytes = encode(&[(order[0], &k), (order[1], &k)]);
            assert_eq!(decode(&bytes), Err(DecodeError::InvalidValue));
        }
    }

    #[test]
    fn members_out_of_order_or_twice_are_refused() {
        let k = keys(2);
        for members in [[k[1], k[0]], [k[0], k[0]]] {
            let bytes = encode(&[([1; 32], &members)]);
            assert_eq!(decode(&bytes), Err(DecodeError::InvalidValue));
        }
    }

    #[test]
    fn an_invalid_account_key_is_refused() {
        // The identity point has small order: not an account key (5.1).
        let mut small = [0u8; 32];
        small[0] = 1;
        let bytes = encode(&[([1; 32], &[AccountKey::from_trusted(small)])]);
        assert_eq!(decode(&bytes), Err(DecodeError::InvalidKey));
    }

    #[test]
    fn group_count_is_bounded_at_decode() {
        let mut at_bound = Vec::new();
        at_bound.u32(MAX_MEMBERSHIP_GROUPS as u32);
        for i in 0..MAX_MEMBERSHIP_GROUPS as u32 {
            let mut g = [0u8; 32];
            g[..4].copy_from_slice(&i.to_be_bytes());
            at_bound.put(&g);
            at_bound.u32(0);
        }
        assert_eq!(decode(&at_bound).unwrap().0.len(), MAX_MEMBERSHIP_GROUPS);
        let mut over = Vec::new();
        over.u32(MAX_MEMBERSHIP_GROUPS as u32 + 1);
        assert_eq!(decode(&over), Err(DecodeError::InvalidValue));
    }

    #[test]
    fn members_per_group_are_bounded_at_decode() {
        let mut over = Vec::new();
        over.u32(1);
        over.put(&[1; 32]);
        over.u32(MAX_GROUP_MEMBERS as u32 + 1);
        assert_eq!(decode(&over), Err(DecodeError::InvalidValue));
        // At the bound, the count is read and the members follow (here, none: truncated).
        let mut at_bound = Vec::new();
        at_bound.u32(1);
        at_bound.put(&[1; 32]);
        at_bound.u32(MAX_GROUP_MEMBERS as u32);
        assert_eq!(decode(&at_bound), Err(DecodeError::Truncated));
    }

    #[test]
    fn members_over_all_groups_are_bounded_at_decode() {
        let k = keys(MAX_GROUP_MEMBERS);
        let full = MAX_MEMBERSHIP_ACCOUNTS / MAX_GROUP_MEMBERS;
        let full_groups: Vec<([u8; 32], &[AccountKey])> =
            (0..full as u8).map(|i| ([i; 32], &k[..])).collect();
        // Full groups up to the bound decode (an account may be in every group)...
        let at_bound = encode(&full_groups);
        assert_eq!(decode(&at_bound).unwrap().0.len(), full);
        // ...and one member more, in a group of its own, is refused at its count.
        let mut over = encode(&full_groups);
        over[..4].copy_from_slice(&(full as u32 + 1).to_be_bytes());
        over.put(&[0xff; 32]);
        over.u32(1);
        assert_eq!(decode(&over), Err(DecodeError::InvalidValue));
    }

    #[test]
    fn a_snapshot_over_a_bound_is_too_large() {
        let k = keys(MAX_GROUP_MEMBERS + 1);
        let id = |i: u32| {
            let mut g = [0u8; 32];
            g[..4].copy_from_slice(&i.to_be_bytes());
            g
        };
        // One group too large.
        let one = groups(&[([1; 32], &k)]);
        assert_eq!(
            Membership::of(&one),
            Err(SyncError::MembershipTooLarge {
                groups: 1,
                accounts: MAX_GROUP_MEMBERS + 1,
                largest: MAX_GROUP_MEMBERS + 1,
            })
        );
        // Too many members over all groups, each within its bound.
        let full = MAX_MEMBERSHIP_ACCOUNTS / MAX_GROUP_MEMBERS;
        let mut list: Vec<([u8; 32], &[AccountKey])> = (0..full as u32)
            .map(|i| (id(i), &k[..MAX_GROUP_MEMBERS]))
            .collect();
        assert!(Membership::of(&groups(&list)).is_ok());
        list.push((id(full as u32), &k[..1]));
        assert_eq!(
            Membership::of(&groups(&list)),
            Err(SyncError::MembershipTooLarge {
                groups: full + 1,
                accounts: MAX_MEMBERSHIP_ACCOUNTS + 1,
                largest: MAX_GROUP_MEMBERS,
            })
        );
        // Too many groups, each empty.
        let empty: Vec<([u8; 32], &[AccountKey])> = (0..=MAX_MEMBERSHIP_GROUPS as u32)
            .map(|i| (id(i), &k[..0]))
            .collect();
        assert!(Membership::of(&groups(&empty[..MAX_MEMBERSHIP_GROUPS])).is_ok());
        assert_eq!(
            Membership::of(&groups(&empty)),
            Err(SyncError::MembershipTooLarge {
                groups: MAX_MEMBERSHIP_GROUPS + 1,
                accounts: 0,
                largest: 0,
            })
        );
    }
}
