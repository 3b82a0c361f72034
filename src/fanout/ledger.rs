//! Groups as this device knows them: the member accounts the app set (the same list it sends
//! to, and the only accounts whose group traffic is accepted), this device's own sender key,
//! and its ledger: which device holds which generation of that key, with the identity key it
//! had and the iteration it could read from. The ledger decides both who still needs the key
//! and who is entitled to a group message asked for again.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::members::Members;
use super::payload::WithheldReason;
use super::reach::Reach;
use crate::devices::DeviceAddress;
use crate::error::DecodeError;
use crate::group::{OutboundGroupSession, SenderKeyId};
use crate::primitives::IdentityKey;
use crate::wire::{Reader, Writer};

/// Generations of this device's sender key whose ledger is kept per group (the current one
/// included), so retries of messages sent shortly before a rotation can still be judged.
pub(crate) const LEDGER_GENERATIONS: usize = 4;

#[derive(Clone, Debug, Default)]
pub(crate) struct Group {
    /// Member accounts besides this device's own (which always is one).
    pub(crate) members: Members,
    /// Boxed: a group's value moves as the groups map is built and grows, and inline this
    /// was 576 of its 688 bytes, in every group, whether this device sends to it or not.
    pub(crate) outbound: Option<Box<Outbound>>,
    /// What the last send reached, kept for the next (not state; see `reach`).
    pub(crate) reach: Option<Reach>,
    /// Held at a restore from a backup and not set by the app since: the members may still
    /// name an account removed after the backup, so nothing is sent to the group or read from
    /// it until the app sets them.
    pub(crate) unconfirmed: bool,
    /// Installed by a history offer from another device of this account, and not set by the
    /// app since: if a device of the account leaves, it may have been stolen and offered the
    /// group after, so the group becomes unconfirmed (PROTOCOL.md 18.2).
    pub(crate) offered: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct Outbound {
    pub(crate) session: OutboundGroupSession,
    /// A holder left without the ledger showing it (its account was forgotten, or the device
    /// was restored from a backup): the next send rotates.
    pub(crate) rotate_pending: bool,
    /// Ledgers of recent generations, oldest first; the last is the session's current one.
    pub(crate) generations: Vec<Ledger>,
    /// The devices a send withheld the current generation from. None is ever given it: a
    /// send that would give one the key makes a new generation first, so a withheld notice
    /// names a generation its device never reads, and `Withheld` is exact.
    pub(crate) withheld: BTreeMap<DeviceAddress, Withholding>,
}

/// A device withheld from the current generation: its identity key then, and the reason it
/// was told (`None`: not told, or its notice was not delivered).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Withholding {
    pub(crate) identity: IdentityKey,
    pub(crate) told: Option<WithheldReason>,
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

/// Outbound record: `blob(outbound state) ‖ flag(rotate_pending) ‖ u8(n) ‖ n × u32(key id) ‖
/// u32(w) ‖ w × ( address ‖ IK (32) ‖ opt( u8(reason) ) )`, the generations' key ids oldest
/// first, then the devices withheld from the current one in address order.
pub(crate) fn write_outbound(out: &mut crate::wire::SecretBuf, o: &Outbound) {
    out.blob(&o.session.to_bytes());
    out.flag(o.rotate_pending);
    out.u8(o.generations.len() as u8);
    for g in &o.generations {
        out.u32(g.key_id.0);
    }
    out.u32(o.withheld.len() as u32);
    for (a, w) in &o.withheld {
        a.write(out);
        out.put(w.identity.as_bytes());
        out.optional(w.told, |out, reason| out.u8(reason.code()));
    }
}

/// Reads an outbound record; the generations come back with no holders (their ledger records
/// fill them). Also whether it was of the form before withholding (ending at the key ids:
/// nothing withheld), which is written again in the current form.
pub(crate) fn read_outbound(r: &mut Reader<'_>) -> Result<(Outbound, bool), DecodeError> {
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
    let old_form = r.rest_len() == 0;
    let mut withheld = BTreeMap::new();
    let w = if old_form { 0 } else { r.u32()? };
    let mut last = None;
    for _ in 0..w {
        let a = DeviceAddress::read_trusted(r)?;
        // Strictly ascending: one encoding per set.
        if last.is_some_and(|l| l >= a) {
            return Err(DecodeError::InvalidValue);
        }
        last = Some(a);
        let identity = IdentityKey::from_trusted(r.array()?);
        let told = r.optional(|r| r.u8())?.map(WithheldReason::from_code);
        withheld.insert(a, Withholding { identity, told });
    }
    let outbound = Outbound {
        session,
        rotate_pending,
        generations,
        withheld,
    };
    Ok((outbound, old_form))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::{AccountKey, DeviceId};

    fn device(account: u8, id: u32) -> DeviceAddress {
        DeviceAddress {
            account: AccountKey::from_trusted([account; 32]),
            device: DeviceId(id),
        }
    }

    fn key(b: u8) -> IdentityKey {
        IdentityKey::from_trusted([b; 32])
    }

    #[test]
    fn diff_finds_departed_holders_wherever_they_sort_and_missing_devices() {
        let holders = |list: &[(DeviceAddress, u8)]| {
            list.iter()
                .map(|(d, k)| {
                    let h = Holder {
                        identity: key(*k),
                        since: 0,
                    };
                    (*d, h)
                })
                .collect::<BTreeMap<_, _>>()
        };
        let (a, b, c) = (device(1, 1), device(2, 1), device(3, 1));
        let members = [(b, key(2))];
        // A departed holder sorting before, after, or at a member device under another key.
        for gone in [a, c] {
            let h = holders(&[(gone, 9), (b, 2)]);
            assert_eq!(diff(&h, &members), (true, Vec::new()));
        }
        let h = holders(&[(b, 7)]);
        assert_eq!(diff(&h, &members), (true, alloc::vec![(b, key(2))]));
        // Nobody left: only the devices without the key are missing, on either side.
        let h = holders(&[(b, 2)]);
        let all = [(a, key(1)), (b, key(2)), (c, key(3))];
        assert_eq!(
            diff(&h, &all),
            (false, alloc::vec![(a, key(1)), (c, key(3))])
        );
    }
}
