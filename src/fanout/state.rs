//! Device state as versioned bytes (PROTOCOL.md, "Device state"). Nested states keep their own
//! encodings, each behind a length; maps are written in ascending key order and must be read
//! back in that order, so the encoding is canonical.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;
use zeroize::Zeroizing;

use super::envelope::read_address;
use super::sessions::{MAX_SESSIONS_PER_DEVICE, SessionSet};
use super::{Device, DeviceConfig, MAX_REMEMBERED_MESSAGE_IDS, MessageId};
use crate::devices::{DeviceAddress, DevicePolicy, VerifiedDeviceList};
use crate::error::DecodeError;
use crate::group::{GroupConfig, GroupId, GroupReceiver, OutboundGroupSession};
use crate::primitives::IdentityKeyPair;
use crate::ratchet::{Session, SessionConfig};
use crate::wire::{Reader, Writer, kind};
use crate::x3dh::{PreKeyStore, PreKeyStoreConfig};

/// The device state format written by this build. Version 1 (no read-envelope ids, no epoch)
/// is still read and migrates on the next save.
pub(crate) const DEVICE_STATE_VERSION: u8 = 2;

impl Device {
    /// Versioned state bytes: everything the device holds, secrets included.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::new());
        let c = &self.config;
        out.versioned_header(DEVICE_STATE_VERSION, kind::DEVICE_STATE);
        out.u32(c.session.max_forward_jump);
        out.u32(c.session.max_skipped_keys);
        out.u32(c.group.max_forward_jump);
        out.u32(c.group.max_skipped_keys);
        out.u32(c.group.max_generations);
        out.u32(c.policy.max_companions);
        out.u64(c.policy.companion_validity_ms);
        out.u64(c.policy.link_invitation_validity_ms);
        out.u32(c.prekeys.max_signed_prekeys);
        out.u32(c.prekeys.max_one_time_prekeys);
        out.u32(c.prekeys.max_remembered_base_keys);
        write_address(&mut out, &self.address);
        // The identity state is a nested encoding like the others.
        blob(&mut out, &self.identity.to_bytes());
        blob(&mut out, &self.prekeys.to_bytes());
        out.u32(self.lists.len() as u32);
        for list in self.lists.values() {
            blob(&mut out, &list.to_bytes());
        }
        out.u32(self.sessions.len() as u32);
        for (address, set) in &self.sessions {
            write_address(&mut out, address);
            out.u32(set.all().len() as u32);
            for session in set.all() {
                blob(&mut out, &session.to_bytes());
            }
        }
        blob(&mut out, &self.groups.to_bytes());
        out.u32(self.outbound.len() as u32);
        for outbound in self.outbound.values() {
            blob(&mut out, &outbound.to_bytes());
        }
        out.u32(self.ledger.len() as u32);
        for (group, holders) in &self.ledger {
            out.extend_from_slice(&group.0);
            out.u32(holders.len() as u32);
            for h in holders {
                write_address(&mut out, h);
            }
        }
        out.u32(self.withheld.len() as u32);
        for (group, device) in &self.withheld {
            out.extend_from_slice(&group.0);
            write_address(&mut out, device);
        }
        out.u32(self.seen.len() as u32);
        for id in &self.seen {
            out.extend_from_slice(&id.0);
        }
        out.u64(self.epoch);
        out
    }

    /// Restores from [`to_bytes`](Self::to_bytes). Device lists are verified again.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (mut r, version) =
            Reader::versioned_header(bytes, kind::DEVICE_STATE, &[1, DEVICE_STATE_VERSION])?;
        let config = DeviceConfig {
            session: SessionConfig {
                max_forward_jump: r.u32()?,
                max_skipped_keys: r.u32()?,
            },
            group: GroupConfig {
                max_forward_jump: r.u32()?,
                max_skipped_keys: r.u32()?,
                max_generations: r.u32()?,
            },
            policy: DevicePolicy {
                max_companions: r.u32()?,
                companion_validity_ms: r.u64()?,
                link_invitation_validity_ms: r.u64()?,
            },
            prekeys: PreKeyStoreConfig {
                max_signed_prekeys: r.u32()?,
                max_one_time_prekeys: r.u32()?,
                max_remembered_base_keys: r.u32()?,
            },
        };
        let address = read_address(&mut r)?;
        let identity = IdentityKeyPair::from_bytes(read_blob(&mut r)?)?;
        let prekeys = PreKeyStore::from_bytes(read_blob(&mut r)?)?;
        let mut lists = BTreeMap::new();
        for _ in 0..r.u32()? {
            let list = VerifiedDeviceList::restore(read_blob(&mut r)?, &config.policy)?;
            if lists
                .last_key_value()
                .is_some_and(|(k, _)| *k >= list.account())
            {
                return Err(DecodeError::InvalidValue);
            }
            lists.insert(list.account(), list);
        }
        if !lists.contains_key(&address.account) {
            return Err(DecodeError::InvalidValue);
        }
        let mut sessions = BTreeMap::new();
        for _ in 0..r.u32()? {
            let a = read_address(&mut r)?;
            ascending(sessions.last_key_value().map(|(k, _)| k), &a)?;
            let n = crate::x3dh::bounded_count(&mut r, MAX_SESSIONS_PER_DEVICE as u32)?;
            let mut set = Vec::with_capacity(n);
            for _ in 0..n {
                set.push(Session::from_bytes(read_blob(&mut r)?)?);
            }
            sessions.insert(
                a,
                SessionSet::from_sessions(set).ok_or(DecodeError::InvalidValue)?,
            );
        }
        let groups = GroupReceiver::from_bytes(read_blob(&mut r)?)?;
        let mut outbound = BTreeMap::new();
        for _ in 0..r.u32()? {
            let o = OutboundGroupSession::from_bytes(read_blob(&mut r)?)?;
            ascending(outbound.last_key_value().map(|(k, _)| k), &o.group())?;
            outbound.insert(o.group(), o);
        }
        let mut ledger = BTreeMap::new();
        for _ in 0..r.u32()? {
            let group = GroupId(r.array()?);
            ascending(ledger.last_key_value().map(|(k, _)| k), &group)?;
            let mut holders = BTreeSet::new();
            for _ in 0..r.u32()? {
                let a = read_address(&mut r)?;
                ascending(holders.last(), &a)?;
                holders.insert(a);
            }
            ledger.insert(group, holders);
        }
        let mut withheld = BTreeSet::new();
        for _ in 0..r.u32()? {
            let entry = (GroupId(r.array()?), read_address(&mut r)?);
            ascending(withheld.last(), &entry)?;
            withheld.insert(entry);
        }
        // Version 1 ended here; version 2 adds the read-envelope ids and the state epoch.
        // A version-1 state migrates with none remembered and epoch 0.
        let mut seen = VecDeque::new();
        let mut epoch = 0;
        if version >= 2 {
            let n = crate::x3dh::bounded_count(&mut r, MAX_REMEMBERED_MESSAGE_IDS as u32)?;
            seen.reserve(r.capacity(n, 16));
            for _ in 0..n {
                seen.push_back(MessageId(r.array()?));
            }
            epoch = r.u64()?;
        }
        r.finish()?;
        Ok(Self {
            config,
            address,
            identity,
            prekeys,
            lists,
            sessions,
            groups,
            outbound,
            ledger,
            withheld,
            seen,
            epoch,
        })
    }
}

fn ascending<T: Ord>(last: Option<&T>, next: &T) -> Result<(), DecodeError> {
    if last.is_some_and(|l| l >= next) {
        Err(DecodeError::InvalidValue)
    } else {
        Ok(())
    }
}

fn write_address(out: &mut Vec<u8>, a: &DeviceAddress) {
    out.extend_from_slice(&a.account.to_bytes());
    out.u32(a.device.0);
}

fn blob(out: &mut Vec<u8>, bytes: &[u8]) {
    out.u32(bytes.len() as u32);
    out.extend_from_slice(bytes);
}

fn read_blob<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], DecodeError> {
    let len = r.u32()? as usize;
    r.bytes(len)
}
