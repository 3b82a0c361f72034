//! The primary's record keys and its units (PROTOCOL.md 15.4), like a device's (19): one
//! record per thing that changes on its own — the account key and policy (written once), the
//! counters (with every unit), the current list, each pending invitation, each unconfirmed
//! approval, the confirmed set — so an operation persists only what it changed. The values and
//! the load are in `primary_state`.
//!
//! The kinds are `0x81` to `0x86`, above every device record kind (`0x01` to `0x13`), so one
//! store can keep a device's records and its primary's side by side, and neither decoder takes
//! the other's records.

use alloc::vec::Vec;
use core::fmt;

use super::DeviceId;
use crate::error::DecodeError;
use crate::persist::hex_key;
use crate::wire::{Reader, Writer};

/// The record key of one piece of the primary's state. Ordered, so that a unit lists records
/// in one canonical order (the byte order of their keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum PrimaryKey {
    /// The account key's seed and the policy: written once.
    Account,
    /// The epoch, the next device id, version and invitation number, and the resync flag:
    /// written with every unit.
    Meta,
    /// The current signed list.
    List,
    /// One pending invitation, by its number.
    Invitation(u64),
    /// One approved, unconfirmed companion, by its device id.
    Admitted(DeviceId),
    /// The confirmed companions, in the order they confirmed.
    Confirmed,
}

// Kind bytes ascend in the order of `PrimaryKey`'s variants, and all lie above the device
// record kinds (fanout/records.rs).
const ACCOUNT: u8 = 0x81;
const META: u8 = 0x82;
const LIST: u8 = 0x83;
const INVITATION: u8 = 0x84;
const ADMITTED: u8 = 0x85;
const CONFIRMED: u8 = 0x86;

impl PrimaryKey {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(9);
        match self {
            Self::Account => out.u8(ACCOUNT),
            Self::Meta => out.u8(META),
            Self::List => out.u8(LIST),
            Self::Invitation(n) => {
                out.u8(INVITATION);
                out.u64(*n);
            }
            Self::Admitted(d) => {
                out.u8(ADMITTED);
                out.u32(d.0);
            }
            Self::Confirmed => out.u8(CONFIRMED),
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let key = match r.u8()? {
            ACCOUNT => Self::Account,
            META => Self::Meta,
            LIST => Self::List,
            INVITATION => Self::Invitation(r.u64()?),
            ADMITTED => Self::Admitted(DeviceId(r.u32()?)),
            CONFIRMED => Self::Confirmed,
            other => return Err(DecodeError::UnknownType(other)),
        };
        r.finish()?;
        Ok(key)
    }

    /// The kind byte, which names a missing record.
    pub(crate) fn kind(&self) -> u8 {
        self.encode()[0]
    }
}

/// A primary record's key, named for `Debug` output.
pub(crate) fn name_key(key: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match PrimaryKey::decode(key) {
        Ok(k) => fmt::Debug::fmt(&k, f),
        Err(_) => hex_key(key, f),
    }
}

/// What one operation on a [`Primary`](super::Primary) changed: write it in one transaction,
/// before publishing the list it signed or sending what it returned. A type of its own, not
/// the device's `StateChanges`: a primary's unit written where a device's belongs (or the
/// reverse) would not load, and the two types keep them apart at compile time.
pub type PrimaryChanges = crate::persist::Changes<crate::persist::PrimaryState>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_is_the_byte_order_of_encoded_keys() {
        let mut keys = alloc::vec![
            PrimaryKey::Account,
            PrimaryKey::Meta,
            PrimaryKey::List,
            PrimaryKey::Invitation(1 << 40),
            PrimaryKey::Invitation(3),
            PrimaryKey::Admitted(DeviceId(258)),
            PrimaryKey::Admitted(DeviceId(2)),
            PrimaryKey::Confirmed,
        ];
        keys.sort();
        let bytes: Vec<_> = keys.iter().map(PrimaryKey::encode).collect();
        let mut sorted = bytes.clone();
        sorted.sort();
        assert_eq!(bytes, sorted);
        for (k, b) in keys.iter().zip(&bytes) {
            assert_eq!(PrimaryKey::decode(b), Ok(*k));
        }
        assert_eq!(PrimaryKey::Meta.kind(), 0x82);
    }

    #[test]
    fn keys_have_one_encoding_and_none_is_a_device_kind() {
        assert_eq!(
            PrimaryKey::decode(&[0x81, 0]),
            Err(DecodeError::TrailingBytes)
        );
        assert_eq!(
            PrimaryKey::decode(&[0x84, 0, 0]),
            Err(DecodeError::Truncated)
        );
        assert_eq!(PrimaryKey::decode(&[]), Err(DecodeError::Truncated));
        for kind in 0x01..=0x13 {
            assert_eq!(
                PrimaryKey::decode(&[kind]),
                Err(DecodeError::UnknownType(kind))
            );
        }
        for kind in [0x80, 0x87] {
            assert_eq!(
                PrimaryKey::decode(&[kind]),
                Err(DecodeError::UnknownType(kind))
            );
        }
    }
}
