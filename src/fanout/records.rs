//! The device's state as keyed records (PROTOCOL.md, "Device records"): one record per thing
//! that changes on its own — a remote device's sessions, a group's members, one sender's key,
//! one journal entry — so an operation persists only what it changed.
//!
//! A mutation marks the records it touched; [`Device::take_changes`](super::Device::take_changes)
//! encodes exactly those (or their deletion) as one [`StateChanges`] unit, which the app writes
//! in one transaction. [`Device::from_records`](super::Device::from_records) rebuilds a device
//! from every stored record.

use alloc::vec::Vec;
use core::fmt;
use zeroize::Zeroizing;

use crate::devices::{AccountKey, DeviceAddress};
use crate::error::DecodeError;
use crate::group::{GroupId, SenderKeyId};
use crate::persist::{Record, hex_key};
use crate::wire::{Reader, Writer};

use super::EnvelopeId;
use super::journal::{PendingKey, SendId};

/// The record key of one piece of device state. Ordered, so that a unit lists records in one
/// canonical order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Key {
    /// Config, address and identity.
    Own,
    /// The epoch and journal counters: written with every unit.
    Meta,
    /// Signed prekeys and prekey counters.
    PreKeys,
    /// One one-time prekey, by id.
    OneTime(u32),
    /// One one-time ML-KEM prekey, by id.
    OneTimeKem(u32),
    /// A base key remembered under a signed prekey: (signed prekey id, base key).
    SeenBase(u32, [u8; 32]),
    /// An account's verified device list and its recent digests.
    DeviceList(AccountKey),
    /// The sessions with one remote device.
    Sessions(DeviceAddress),
    /// A group's member accounts.
    GroupMembers(GroupId),
    /// This device's sender key for a group, and its generations' order.
    Outbound(GroupId),
    /// One device holding one of this device's sender key generations.
    Ledger(GroupId, SenderKeyId, DeviceAddress),
    /// One sender device's keys for a group.
    Inbound(DeviceAddress, GroupId),
    /// A device's notice that it withholds its key for a group.
    Withheld(DeviceAddress, GroupId),
    /// One slot of the read ring.
    Seen(u32),
    /// One sent message in the retry journal.
    Sent(SendId),
    /// One retry this device asked for.
    Pending(PendingKey),
    /// Present while a device restored from a backup awaits an own list issued since.
    Restored,
    /// A message a resend replaced.
    Replaced(EnvelopeId),
    /// The KEM ciphertext of a session awaiting its first reply: (the peer, the session's
    /// base key). Written once, not with every send.
    PendingKem(DeviceAddress, [u8; 32]),
    /// Present while a group held at a restore awaits its members from the app.
    Unconfirmed(GroupId),
    /// What is remembered of a forgotten account's newest list.
    Forgotten(AccountKey),
    /// Present while a group installed by a history offer has not been set by the app.
    Offered(GroupId),
    /// The retry requests of one device answered for one sent group message.
    Answered(SendId, DeviceAddress),
    /// When the newest history offer whose membership this device applied was made, while
    /// its app has not taken over its groups.
    NewestOffer,
}

// Kind bytes ascend in the order of `Key`'s variants, so the canonical order of records is the
// byte order of their keys.
pub(crate) const OWN: u8 = 0x01;
pub(crate) const META: u8 = 0x02;
pub(crate) const PREKEYS: u8 = 0x03;
pub(crate) const ONE_TIME_PREKEY: u8 = 0x04;
pub(crate) const ONE_TIME_KEM_PREKEY: u8 = 0x05;
pub(crate) const SEEN_BASE_KEY: u8 = 0x06;
pub(crate) const DEVICE_LIST: u8 = 0x07;
pub(crate) const SESSIONS: u8 = 0x08;
pub(crate) const GROUP_MEMBERS: u8 = 0x09;
pub(crate) const OUTBOUND: u8 = 0x0a;
pub(crate) const LEDGER: u8 = 0x0b;
pub(crate) const INBOUND: u8 = 0x0c;
pub(crate) const WITHHELD: u8 = 0x0d;
pub(crate) const SEEN: u8 = 0x0e;
pub(crate) const SENT: u8 = 0x0f;
pub(crate) const PENDING: u8 = 0x10;
pub(crate) const RESTORED: u8 = 0x11;
pub(crate) const REPLACED: u8 = 0x12;
pub(crate) const PENDING_KEM: u8 = 0x13;
pub(crate) const UNCONFIRMED: u8 = 0x14;
pub(crate) const FORGOTTEN: u8 = 0x15;
pub(crate) const OFFERED: u8 = 0x16;
pub(crate) const ANSWERED: u8 = 0x17;
pub(crate) const NEWEST_OFFER: u8 = 0x18;

impl Key {
    /// The key's kind byte, its first. Records sorted by key are grouped by kind, in this
    /// byte's order.
    pub(crate) fn kind(&self) -> u8 {
        match self {
            Key::Own => OWN,
            Key::Meta => META,
            Key::PreKeys => PREKEYS,
            Key::OneTime(_) => ONE_TIME_PREKEY,
            Key::OneTimeKem(_) => ONE_TIME_KEM_PREKEY,
            Key::SeenBase(..) => SEEN_BASE_KEY,
            Key::DeviceList(_) => DEVICE_LIST,
            Key::Sessions(_) => SESSIONS,
            Key::GroupMembers(_) => GROUP_MEMBERS,
            Key::Outbound(_) => OUTBOUND,
            Key::Ledger(..) => LEDGER,
            Key::Inbound(..) => INBOUND,
            Key::Withheld(..) => WITHHELD,
            Key::Seen(_) => SEEN,
            Key::Sent(_) => SENT,
            Key::Pending(_) => PENDING,
            Key::Restored => RESTORED,
            Key::Replaced(_) => REPLACED,
            Key::PendingKem(..) => PENDING_KEM,
            Key::Unconfirmed(_) => UNCONFIRMED,
            Key::Forgotten(_) => FORGOTTEN,
            Key::Offered(_) => OFFERED,
            Key::Answered(..) => ANSWERED,
            Key::NewestOffer => NEWEST_OFFER,
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(73);
        out.u8(self.kind());
        match self {
            Key::Own | Key::Meta | Key::PreKeys | Key::Restored | Key::NewestOffer => {}
            Key::OneTime(id) | Key::OneTimeKem(id) | Key::Seen(id) => out.u32(*id),
            Key::SeenBase(spk, key) => {
                out.u32(*spk);
                out.put(key);
            }
            Key::DeviceList(a) | Key::Forgotten(a) => out.put(a.as_bytes()),
            Key::Sessions(a) => a.write(&mut out),
            Key::GroupMembers(g) | Key::Outbound(g) | Key::Unconfirmed(g) | Key::Offered(g) => {
                out.put(&g.0)
            }
            Key::Ledger(g, k, a) => {
                out.put(&g.0);
                out.u32(k.0);
                a.write(&mut out);
            }
            Key::Inbound(a, g) | Key::Withheld(a, g) => {
                a.write(&mut out);
                out.put(&g.0);
            }
            Key::Sent(id) => out.u64(id.0),
            Key::Pending((a, r)) => {
                a.write(&mut out);
                out.put(r);
            }
            Key::Replaced(id) => out.put(&id.0),
            Key::PendingKem(a, base) => {
                a.write(&mut out);
                out.put(base);
            }
            Key::Answered(id, a) => {
                out.u64(id.0);
                a.write(&mut out);
            }
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let key = match r.u8()? {
            OWN => Key::Own,
            META => Key::Meta,
            PREKEYS => Key::PreKeys,
            ONE_TIME_PREKEY => Key::OneTime(r.u32()?),
            ONE_TIME_KEM_PREKEY => Key::OneTimeKem(r.u32()?),
            SEEN_BASE_KEY => Key::SeenBase(r.u32()?, r.array()?),
            DEVICE_LIST => Key::DeviceList(AccountKey::from_trusted(r.array()?)),
            SESSIONS => Key::Sessions(DeviceAddress::read_trusted(&mut r)?),
            GROUP_MEMBERS => Key::GroupMembers(GroupId(r.array()?)),
            OUTBOUND => Key::Outbound(GroupId(r.array()?)),
            LEDGER => Key::Ledger(
                GroupId(r.array()?),
                SenderKeyId(r.u32()?),
                DeviceAddress::read_trusted(&mut r)?,
            ),
            INBOUND => Key::Inbound(DeviceAddress::read_trusted(&mut r)?, GroupId(r.array()?)),
            WITHHELD => Key::Withheld(DeviceAddress::read_trusted(&mut r)?, GroupId(r.array()?)),
            SEEN => Key::Seen(r.u32()?),
            SENT => Key::Sent(SendId(r.u64()?)),
            PENDING => Key::Pending((DeviceAddress::read_trusted(&mut r)?, r.array()?)),
            RESTORED => Key::Restored,
            REPLACED => Key::Replaced(EnvelopeId(r.array()?)),
            PENDING_KEM => Key::PendingKem(DeviceAddress::read_trusted(&mut r)?, r.array()?),
            UNCONFIRMED => Key::Unconfirmed(GroupId(r.array()?)),
            FORGOTTEN => Key::Forgotten(AccountKey::from_trusted(r.array()?)),
            OFFERED => Key::Offered(GroupId(r.array()?)),
            ANSWERED => Key::Answered(SendId(r.u64()?), DeviceAddress::read_trusted(&mut r)?),
            NEWEST_OFFER => Key::NewestOffer,
            other => return Err(DecodeError::UnknownType(other)),
        };
        r.finish()?;
        Ok(key)
    }
}

/// What one operation on a [`Device`](super::Device) changed: write it in one transaction,
/// before acting on the operation's output (shipping envelopes, showing messages,
/// acknowledging to the server).
pub type StateChanges = crate::persist::Changes<crate::persist::DeviceState>;

/// The device records an operation touched, until they are taken.
pub(crate) type Dirty = crate::persist::Dirty<Key>;

impl Key {
    /// This key's record with `value` (`None`: its deletion).
    pub(crate) fn record(&self, value: Option<Zeroizing<Vec<u8>>>) -> Record {
        Record::new(self.encode(), value, name_key)
    }
}

/// A device record's key, named for `Debug` output.
fn name_key(key: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match Key::decode(key) {
        Ok(k) => fmt::Debug::fmt(&k, f),
        Err(_) => hex_key(key, f),
    }
}

/// `EnvelopeId`s are 16 bytes on the wire and in records.
pub(crate) fn read_envelope_id(r: &mut Reader<'_>) -> Result<EnvelopeId, DecodeError> {
    Ok(EnvelopeId(r.array()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::{AccountKey, DeviceId};

    #[test]
    fn a_key_is_named_by_its_kind_or_shown_as_bytes() {
        struct Named<'a>(&'a [u8]);
        impl fmt::Debug for Named<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                name_key(self.0, f)
            }
        }
        assert_eq!(
            alloc::format!("{:?}", Named(&Key::Seen(2).encode())),
            "Seen(2)"
        );
        assert_eq!(alloc::format!("{:?}", Named(&[0x81])), "81");
    }

    #[test]
    fn key_order_is_the_byte_order_of_encoded_keys() {
        let a = DeviceAddress {
            account: AccountKey::from_trusted([1; 32]),
            device: DeviceId(2),
        };
        let g = GroupId([3; 32]);
        let mut keys = alloc::vec![
            Key::Own,
            Key::Meta,
            Key::PreKeys,
            Key::OneTime(258),
            Key::OneTime(7),
            Key::OneTimeKem(1),
            Key::SeenBase(1, [9; 32]),
            Key::DeviceList(a.account),
            Key::Sessions(a),
            Key::GroupMembers(g),
            Key::Outbound(g),
            Key::Ledger(g, SenderKeyId(5), a),
            Key::Inbound(a, g),
            Key::Withheld(a, g),
            Key::Seen(3),
            Key::Sent(SendId(1 << 40)),
            Key::Sent(SendId(2)),
            Key::Pending((a, [4; 16])),
            Key::Restored,
            Key::Replaced(EnvelopeId([5; 16])),
            Key::PendingKem(a, [6; 32]),
            Key::Unconfirmed(g),
            Key::Forgotten(a.account),
            Key::Offered(g),
            Key::Answered(SendId(1 << 40), a),
            Key::Answered(SendId(2), a),
            Key::NewestOffer,
        ];
        keys.sort();
        let bytes: alloc::vec::Vec<_> = keys.iter().map(Key::encode).collect();
        let mut sorted = bytes.clone();
        sorted.sort();
        assert_eq!(bytes, sorted);
        for (k, b) in keys.iter().zip(&bytes) {
            assert_eq!(Key::decode(b), Ok(*k));
        }
    }
}
