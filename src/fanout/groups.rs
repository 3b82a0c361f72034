//! Groups as this device knows them: the member accounts the app set (the same list it sends
//! to, and the only accounts whose group traffic is accepted), this device's own sender key,
//! and its ledger: which device holds which generation of that key, with the identity key it
//! had and the iteration it could read from. The ledger decides both who still needs the key
//! and who is entitled to a group message asked for again.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use super::Device;
use super::records::Key;
use crate::devices::{AccountKey, DeviceAddress, DeviceId};
use crate::error::DecodeError;
use crate::group::{GroupId, OutboundGroupSession, SenderKeyId};
use crate::primitives::IdentityKey;
use crate::wire::{Reader, Writer, bounded_count};

/// Generations of this device's sender key whose ledger is kept per group (the current one
/// included), so retries of messages sent shortly before a rotation can still be judged.
pub(crate) const LEDGER_GENERATIONS: usize = 4;
/// Member accounts a group may have: the decoding bound of a members record.
pub const MAX_GROUP_MEMBERS: usize = 4096;

#[derive(Clone, Debug, Default)]
pub(crate) struct Group {
    /// Member accounts besides this device's own (which always is one).
    pub(crate) members: BTreeSet<AccountKey>,
    pub(crate) outbound: Option<Outbound>,
}

#[derive(Clone, Debug)]
pub(crate) struct Outbound {
    pub(crate) session: OutboundGroupSession,
    /// A holder left without the ledger showing it (its account was forgotten, or the device
    /// was restored from a backup): the next send rotates.
    pub(crate) rotate_pending: bool,
    /// Ledgers of recent generations, oldest first; the last is the session's current one.
    pub(crate) generations: Vec<Ledger>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ledger {
    pub(crate) key_id: SenderKeyId,
    pub(crate) holders: BTreeMap<DeviceAddress, Holder>,
}

/// A device given a generation: its identity key then, and the first iteration it can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Holder {
    pub(crate) identity: IdentityKey,
    pub(crate) since: u32,
}

impl Outbound {
    pub(crate) fn current(&self) -> Option<&Ledger> {
        self.generations.last()
    }

    pub(crate) fn generation(&self, key_id: SenderKeyId) -> Option<&Ledger> {
        self.generations.iter().find(|g| g.key_id == key_id)
    }
}

impl Device {
    /// Sets the member accounts of `group` (this device's own account is always one): the
    /// accounts [`send_group`](Self::send_group) encrypts to, and the only ones whose group
    /// messages, sender keys and resends for `group` this device accepts. Sender keys of
    /// accounts no longer members are dropped; if a device that holds this device's sender
    /// key is no longer a member device, the next send rotates it. Setting the same members
    /// again changes nothing.
    pub fn set_group_members(&mut self, group: GroupId, members: &[AccountKey]) {
        let own = self.address.account;
        let new: BTreeSet<AccountKey> = members.iter().copied().filter(|a| *a != own).collect();
        let old = match self.groups.get(&group) {
            Some(g) if g.members == new => return,
            Some(g) => g.members.clone(),
            None => BTreeSet::new(),
        };
        for gone in old.difference(&new) {
            self.drop_group_keys_of(group, gone);
        }
        self.groups.entry(group).or_default().members = new;
        self.touch(Key::GroupMembers(group));
        self.bump();
    }

    /// The member accounts set for `group` (without this device's own account), if any.
    pub fn group_members(&self, group: GroupId) -> Option<impl Iterator<Item = AccountKey> + '_> {
        self.groups.get(&group).map(|g| g.members.iter().copied())
    }

    /// Leaves `group`: its members, this device's sender key and ledger, and every sender key
    /// received for it are deleted.
    pub fn forget_group(&mut self, group: GroupId) {
        let Some(g) = self.groups.remove(&group) else {
            return;
        };
        self.touch(Key::GroupMembers(group));
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
            .iter()
            .filter(|(_, g)| *g == group)
            .map(|(a, _)| *a)
            .collect();
        for a in withheld {
            self.withheld.remove(&(a, group));
            self.touch(Key::Withheld(a, group));
        }
        self.bump();
    }

    /// Whether `account` may send into `group` (its members and this device's own account).
    pub(crate) fn is_member(
        &self,
        group: GroupId,
        account: &AccountKey,
    ) -> Result<(), crate::Error> {
        let g = self
            .groups
            .get(&group)
            .ok_or(crate::FanoutError::UnknownGroup(group))?;
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
            .filter(|(_, g)| *g == group)
            .map(|(a, _)| *a)
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

/// Walks the current holders and the (sorted, deduplicated) member devices together: whether
/// some holder is no longer a member device with the same identity key, and which member
/// devices lack the key.
pub(crate) fn diff(
    holders: &BTreeMap<DeviceAddress, Holder>,
    devices: &[(DeviceAddress, IdentityKey)],
) -> (bool, Vec<(DeviceAddress, IdentityKey)>) {
    let mut departed = false;
    let mut missing = Vec::new();
    let mut h = holders.iter().peekable();
    for (d, identity) in devices {
        while h.next_if(|(holder, _)| *holder < d).is_some() {
            departed = true;
        }
        match h.next_if(|(holder, _)| *holder == d) {
            Some((_, held)) if held.identity == *identity => {}
            Some(_) => {
                // The same address under another identity key: the old key holder left.
                departed = true;
                missing.push((*d, *identity));
            }
            None => missing.push((*d, *identity)),
        }
    }
    departed |= h.next().is_some();
    (departed, missing)
}

/// Members record: `u32(n) ‖ n × AK`, ascending.
pub(crate) fn write_members(out: &mut impl Writer, members: &BTreeSet<AccountKey>) {
    out.u32(members.len() as u32);
    for m in members {
        out.put(m.as_bytes());
    }
}

pub(crate) fn read_members(r: &mut Reader<'_>) -> Result<BTreeSet<AccountKey>, DecodeError> {
    let n = bounded_count(r, MAX_GROUP_MEMBERS as u32)?;
    let mut members: Vec<AccountKey> = Vec::with_capacity(n);
    for _ in 0..n {
        let m = AccountKey::from_trusted(r.array()?);
        if members.last().is_some_and(|l| *l >= m) {
            return Err(DecodeError::InvalidValue);
        }
        members.push(m);
    }
    // Ascending already, so the set is built in one pass.
    Ok(members.into_iter().collect())
}

/// Outbound record: `blob(outbound state) ‖ flag(rotate_pending) ‖ u8(n) ‖ n × u32(key id)`,
/// the generations' key ids oldest first.
pub(crate) fn write_outbound(out: &mut crate::wire::SecretBuf, o: &Outbound) {
    out.blob(&o.session.to_bytes());
    out.flag(o.rotate_pending);
    out.u8(o.generations.len() as u8);
    for g in &o.generations {
        out.u32(g.key_id.0);
    }
}

/// Reads an outbound record; the generations come back with no holders (their ledger records
/// fill them).
pub(crate) fn read_outbound(r: &mut Reader<'_>) -> Result<Outbound, DecodeError> {
    let len = r.u32()? as usize;
    let session = OutboundGroupSession::from_bytes(r.bytes(len)?)?;
    let rotate_pending = r.flag()?;
    let n = r.u8()? as usize;
    if n == 0 || n > LEDGER_GENERATIONS {
        return Err(DecodeError::InvalidValue);
    }
    let mut generations: Vec<Ledger> = Vec::with_capacity(n);
    for _ in 0..n {
        let key_id = SenderKeyId(r.u32()?);
        if generations.iter().any(|g| g.key_id == key_id) {
            return Err(DecodeError::InvalidValue);
        }
        generations.push(Ledger {
            key_id,
            holders: BTreeMap::new(),
        });
    }
    if generations.last().map(|g| g.key_id) != Some(session.key_id()) {
        return Err(DecodeError::InvalidValue);
    }
    Ok(Outbound {
        session,
        rotate_pending,
        generations,
    })
}

/// Ledger record: `IK (32) ‖ u32(since)`.
pub(crate) fn write_holder(out: &mut impl Writer, h: &Holder) {
    out.put(h.identity.as_bytes());
    out.u32(h.since);
}

pub(crate) fn read_holder(r: &mut Reader<'_>) -> Result<Holder, DecodeError> {
    Ok(Holder {
        identity: IdentityKey::from_trusted(r.array()?),
        since: r.u32()?,
    })
}
