//! Setting a group's members and forgetting accounts: what the app changes in a group, and the
//! rotation it forces at the next send. The state itself (members, own sender key, ledger)
//! is [`ledger`](super::ledger)'s.

use alloc::vec::Vec;

use super::Device;
use super::ledger::Group;
use super::members::{MAX_GROUP_MEMBERS, Members};
use super::records::Key;
use crate::devices::{AccountKey, DeviceAddress, DeviceId};
use crate::group::GroupId;

impl Device {
    /// Sets the member accounts of `group` (this device's own account is always one): the
    /// accounts [`send_group`](Self::send_group) encrypts to, and the only ones whose group
    /// messages, sender keys and resends for `group` this device accepts. Sender keys of
    /// accounts no longer members are dropped; if a device that holds this device's sender
    /// key is no longer a member device, the next send rotates it. Setting the same members
    /// again changes nothing. Once the app has set or forgotten a group here, it owns this
    /// device's groups: a history offer's membership changes nothing any more.
    ///
    /// More than [`MAX_GROUP_MEMBERS`](crate::fanout::MAX_GROUP_MEMBERS) distinct accounts
    /// (this device's own not counted) are `TooManyMembers`, and nothing changes: a device
    /// holding more could not load its own records again.
    pub fn set_group_members(
        &mut self,
        group: GroupId,
        members: &[AccountKey],
    ) -> Result<(), crate::Error> {
        let own = self.address.account;
        let new = Members::new(members.iter().copied().filter(|a| *a != own));
        if new.len() > MAX_GROUP_MEMBERS {
            return Err(crate::FanoutError::TooManyMembers {
                group,
                members: new.len(),
            }
            .into());
        }
        // The same members again change nothing, but that the app now vouches for the
        // members of a group an offer installed.
        if let Some(g) = self.groups.get_mut(&group)
            && g.members == new
            && !g.unconfirmed
        {
            if core::mem::take(&mut g.offered) {
                self.touch(Key::Offered(group));
                self.bump();
            }
            return Ok(());
        }
        let g = self.put_members(group, new);
        let offered = core::mem::take(&mut g.offered);
        if core::mem::take(&mut g.unconfirmed) {
            self.touch(Key::Unconfirmed(group));
        }
        if offered {
            self.touch(Key::Offered(group));
        }
        self.app_owns_groups();
        self.bump();
        Ok(())
    }

    /// Makes `members` the members of `group`, installing it if this device does not hold
    /// it: the sender keys of accounts no longer members are dropped, and the next send
    /// rotates if a device of one held this device's. Returns the group, whose flags the
    /// caller sets.
    pub(super) fn put_members(&mut self, group: GroupId, members: Members) -> &mut Group {
        let old = match self.groups.get(&group) {
            Some(g) => g.members.clone(),
            None => Members::default(),
        };
        for gone in old.without(&members) {
            self.drop_group_keys_of(group, gone);
        }
        self.touch(Key::GroupMembers(group));
        let g = self.groups.entry(group).or_default();
        g.members = members;
        g.reach = None;
        g
    }

    /// The app has set or forgotten a group: it owns this device's groups from now on, and a
    /// history offer's membership changes nothing (PROTOCOL.md 18.2).
    fn app_owns_groups(&mut self) {
        self.groups_by_app = true;
        if self.newest_offer.take().is_some() {
            self.touch(Key::NewestOffer);
        }
    }

    /// The groups whose members the app set on this device, or that a history offer from
    /// another device of this account installed, in id order.
    pub fn groups(&self) -> impl Iterator<Item = GroupId> + '_ {
        self.groups.keys().copied()
    }

    /// The member accounts set for `group` (without this device's own account), if any.
    pub fn group_members(&self, group: GroupId) -> Option<impl Iterator<Item = AccountKey> + '_> {
        self.groups.get(&group).map(|g| g.members.iter().copied())
    }

    /// Leaves `group`: its members, this device's sender key and ledger, and every sender key
    /// received for it are deleted. A history offer's membership never puts it back, also if
    /// this device did not hold it yet (nor any other group: see
    /// [`set_group_members`](Self::set_group_members)).
    pub fn forget_group(&mut self, group: GroupId) {
        // A group not held yet is left too: its app owns the groups from now on, so an offer
        // the relay held back cannot install it (review 55).
        if self.remove_group(group) || !self.groups_by_app {
            self.app_owns_groups();
            self.bump();
        }
    }

    /// Deletes `group` and everything held for it (see [`forget_group`](Self::forget_group)),
    /// if held; whether it was.
    pub(super) fn remove_group(&mut self, group: GroupId) -> bool {
        let Some(g) = self.groups.remove(&group) else {
            return false;
        };
        self.touch(Key::GroupMembers(group));
        if g.unconfirmed {
            self.touch(Key::Unconfirmed(group));
        }
        if g.offered {
            self.touch(Key::Offered(group));
        }
        if let Some(outbound) = g.outbound {
            self.touch(Key::Outbound(group));
            for ledger in &outbound.generations {
                for a in ledger.holders.keys() {
                    self.touch(Key::Ledger(group, ledger.key_id, *a));
                }
            }
        }
        let inbound: Vec<DeviceAddress> = self
            .inbound
            .keys()
            .filter(|(_, g)| *g == group)
            .map(|(a, _)| *a)
            .collect();
        for a in inbound {
            self.inbound.remove(&(a, group));
            self.touch(Key::Inbound(a, group));
        }
        let withheld: Vec<DeviceAddress> = self
            .withheld
            .keys()
            .filter(|(_, g)| *g == group)
            .map(|(a, _)| *a)
            .collect();
        for a in withheld {
            self.withheld.remove(&(a, group));
            self.touch(Key::Withheld(a, group));
        }
        true
    }

    /// The groups whose members the app has not set since they were held at a restore from a
    /// backup ([`restore_from_backup`](Self::restore_from_backup)), or since a device of this
    /// account left while the groups came from history offers (it may have offered them after
    /// it was stolen; PROTOCOL.md 18.2): nothing is sent to them or read from them until it
    /// does, in id order. Check it after either, and set their members.
    pub fn unconfirmed_groups(&self) -> impl Iterator<Item = GroupId> + '_ {
        self.groups
            .iter()
            .filter(|(_, g)| g.unconfirmed)
            .map(|(id, _)| *id)
    }

    /// `group`, if held and its members confirmed since any restore.
    pub(crate) fn confirmed_group(
        &self,
        group: GroupId,
    ) -> Result<&super::ledger::Group, crate::Error> {
        match self.groups.get(&group) {
            None => Err(crate::FanoutError::UnknownGroup(group).into()),
            Some(g) if g.unconfirmed => Err(crate::FanoutError::GroupUnconfirmed(group).into()),
            Some(g) => Ok(g),
        }
    }

    /// Whether `account` may send into `group` (its members and this device's own account).
    pub(crate) fn is_member(
        &self,
        group: GroupId,
        account: &AccountKey,
    ) -> Result<(), crate::Error> {
        let g = self.confirmed_group(group)?;
        if *account == self.address.account || g.members.contains(account) {
            Ok(())
        } else {
            Err(crate::FanoutError::NotAMember {
                group,
                account: *account,
            }
            .into())
        }
    }

    /// Drops the sender keys and withheld notices of `account`'s devices for `group`.
    fn drop_group_keys_of(&mut self, group: GroupId, account: &AccountKey) {
        let lo = DeviceAddress {
            account: *account,
            device: DeviceId(0),
        };
        let hi = DeviceAddress {
            account: *account,
            device: DeviceId(u32::MAX),
        };
        let inbound: Vec<DeviceAddress> = self
            .inbound
            .range((lo, GroupId([0; 32]))..=(hi, GroupId([0xff; 32])))
            .filter(|((_, g), _)| *g == group)
            .map(|((a, _), _)| *a)
            .collect();
        for a in inbound {
            self.inbound.remove(&(a, group));
            self.touch(Key::Inbound(a, group));
        }
        let withheld: Vec<DeviceAddress> = self
            .withheld
            .range((lo, GroupId([0; 32]))..=(hi, GroupId([0xff; 32])))
            .filter(|((_, g), _)| *g == group)
            .map(|((a, _), _)| *a)
            .collect();
        for a in withheld {
            self.withheld.remove(&(a, group));
            self.touch(Key::Withheld(a, group));
        }
    }

    /// Removes `account`'s devices from every ledger; a group whose current generation one of
    /// them held rotates at its next send. Returns the records touched.
    pub(crate) fn forget_holders(&mut self, account: &AccountKey) -> Vec<Key> {
        let mut touched = Vec::new();
        for (group, g) in &mut self.groups {
            let Some(outbound) = &mut g.outbound else {
                continue;
            };
            let current = outbound.session.key_id();
            for ledger in &mut outbound.generations {
                let gone: Vec<DeviceAddress> = ledger
                    .holders
                    .keys()
                    .filter(|a| a.account == *account)
                    .copied()
                    .collect();
                for a in &gone {
                    ledger.holders.remove(a);
                    touched.push(Key::Ledger(*group, ledger.key_id, *a));
                }
                if ledger.key_id == current && !gone.is_empty() {
                    outbound.rotate_pending = true;
                    touched.push(Key::Outbound(*group));
                }
            }
        }
        touched
    }
}
