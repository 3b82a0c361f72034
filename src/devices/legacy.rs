//! Migration of a primary's state from the first format (protocol version 1), where the
//! primary's own list entry carried no consent signature. The account key re-signs its list,
//! one version later, with the primary device's binding added; companions' bindings (the same
//! message then and now) are kept.

use alloc::vec::Vec;

use super::list::binding;
use super::primary::MAX_PENDING_INVITATIONS;
use super::{
    AccountKeyPair, DeviceEntry, DeviceId, DevicePolicy, PRIMARY_DEVICE, Primary, SignedDeviceList,
};
use crate::error::{DecodeError, DeviceError, Error};
use crate::primitives::{IdentityKey, IdentityKeyPair, Signature};
use crate::time::Timestamp;
use crate::wire::{Reader, bounded_count, kind};

/// A version-1 device list's entries (its signature is not checked: it is this primary's own
/// state) and version.
fn read_list_v1(bytes: &[u8]) -> Result<(u64, Vec<EntryV1>), DecodeError> {
    let (mut r, _) = Reader::versioned_header(bytes, kind::DEVICE_LIST, &[1])?;
    let _account: [u8; 32] = r.array()?;
    let version = r.u64()?;
    let _issued_at = r.u64()?;
    let n = bounded_count(&mut r, super::list::MAX_LIST_ENTRIES)?;
    let mut entries = Vec::with_capacity(r.capacity(n, 45));
    for _ in 0..n {
        let entry = DeviceEntryV1 {
            id: DeviceId(r.u32()?),
            identity: IdentityKey::from_bytes(&r.array()?)?,
            linked_at: Timestamp(r.u64()?),
            expires_at: r.optional(|r| r.u64().map(Timestamp))?,
        };
        let binding = r.optional(|r| r.array().map(Signature::from_bytes))?;
        entries.push((entry, binding));
    }
    let _signature: [u8; 64] = r.array()?;
    r.finish()?;
    Ok((version, entries))
}

/// A version-1 entry and its binding (absent for the primary).
type EntryV1 = (DeviceEntryV1, Option<Signature>);

struct DeviceEntryV1 {
    id: DeviceId,
    identity: IdentityKey,
    linked_at: Timestamp,
    expires_at: Option<Timestamp>,
}

impl Primary {
    /// Loads a primary's state of the first format: `identity` is the primary device's own
    /// identity key pair (its state holds it), which now consents to its entry. The list is
    /// re-signed at the next version, issued `now`: publish it, and migrate every device of the
    /// account with it. Pending invitations and unconfirmed approvals are dropped.
    pub fn migrate(
        bytes: &[u8],
        identity: &IdentityKeyPair,
        now: Timestamp,
    ) -> Result<Self, Error> {
        let (mut r, _) = Reader::versioned_header(bytes, kind::PRIMARY_STATE, &[1])?;
        let account = AccountKeyPair::from_seed(&zeroize::Zeroizing::new(r.array()?));
        let policy = DevicePolicy {
            max_companions: r.u32()?,
            companion_validity_ms: r.u64()?,
            link_invitation_validity_ms: r.u64()?,
        };
        let next_device = r.u32()?;
        let len = r.u32()? as usize;
        let (version, old) = read_list_v1(r.bytes(len)?)?;
        let n = bounded_count(&mut r, MAX_PENDING_INVITATIONS as u32)?;
        r.bytes(n * 24)?;
        let n = bounded_count(&mut r, super::list::MAX_LIST_ENTRIES)?;
        let mut confirmed = Vec::with_capacity(r.capacity(n, 4));
        for _ in 0..n {
            confirmed.push(DeviceId(r.u32()?));
        }
        r.finish()?;
        let mut entries = Vec::with_capacity(old.len());
        for (e, b) in old {
            let binding = match (e.id == PRIMARY_DEVICE, b) {
                (true, _) if e.identity == identity.public() => {
                    binding(identity, &account.public())
                }
                (true, _) => return Err(DeviceError::WrongAccount.into()),
                (false, Some(b)) => b,
                (false, None) => return Err(DecodeError::InvalidValue.into()),
            };
            entries.push(DeviceEntry {
                id: e.id,
                identity: e.identity,
                linked_at: e.linked_at,
                expires_at: e.expires_at,
                binding,
            });
        }
        let list = SignedDeviceList::sign(&account, version.saturating_add(1), now, entries);
        let list = list.verify(&account.public(), None, &policy)?;
        Ok(Self::from_migration(
            account,
            policy,
            next_device,
            list,
            confirmed,
        ))
    }
}
