//! Migration of a primary's state from the first format (protocol version 1), where the
//! primary's own list entry carried no consent signature. The account key re-signs its list,
//! one version later, with the primary device's binding added and the account's policy signed
//! in; companions' bindings (the same message then and now) are kept.

use alloc::vec::Vec;

use super::limits::OWN_LIST_LIMITS;
use super::list::binding;
use super::primary::MAX_PENDING_INVITATIONS;
use super::{
    AccountKeyPair, AccountPolicy, DeviceEntry, DeviceId, PRIMARY_DEVICE, Primary, PrimaryPolicy,
    SignedDeviceList,
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
        let policy = PrimaryPolicy {
            account: AccountPolicy {
                max_companions: r.u32()?,
                companion_validity_ms: r.u64()?,
            },
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
            // A companion keeps its expiry, but never beyond what the signed policy allows
            // from `now` (a clock set back since the old list was signed).
            let latest = now.plus_millis(policy.account.companion_validity_ms);
            entries.push(DeviceEntry {
                id: e.id,
                identity: e.identity,
                linked_at: e.linked_at,
                expires_at: e.expires_at.map(|t| t.min(latest)),
                binding,
            });
        }
        let list = SignedDeviceList::sign(
            &account,
            version.saturating_add(1),
            now,
            policy.account,
            entries,
        );
        let list = list.verify(&account.public(), None, &OWN_LIST_LIMITS)?;
        super::primary::check_next_device(next_device, &list)?;
        Ok(Self::from_migration(
            account,
            policy,
            next_device,
            list,
            confirmed,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::SeededRng;
    use crate::wire::Writer;

    const DAY: u64 = 24 * 60 * 60 * 1000;

    /// A primary state of the first format (PROTOCOL.md 23) with one companion, its list
    /// issued at `issued_at` and the companion valid for the policy's window from then.
    fn state_v1(
        rng: &mut SeededRng,
        phone: &IdentityKeyPair,
        issued_at: Timestamp,
    ) -> (Vec<u8>, Timestamp) {
        let account = AccountKeyPair::generate(rng);
        let laptop = IdentityKeyPair::generate(rng);
        let expires_at = issued_at.plus_millis(14 * DAY);
        let mut list = Vec::new();
        list.put(&[1, kind::DEVICE_LIST]);
        list.put(account.public().as_bytes());
        list.u64(2);
        list.u64(issued_at.0);
        list.u32(2);
        for (id, ik, expiry, bound) in [
            (1, phone.public(), None, None),
            (2, laptop.public(), Some(expires_at), Some(&laptop)),
        ] {
            list.u32(id);
            list.put(ik.as_bytes());
            list.u64(issued_at.0);
            list.optional(expiry, |o, t: Timestamp| o.u64(t.0));
            list.optional(bound, |o, k| {
                o.put(&binding(k, &account.public()).to_bytes())
            });
        }
        list.put(&[0; 64]);
        let mut state = Vec::new();
        state.put(&[1, kind::PRIMARY_STATE]);
        state.put(account.seed());
        state.u32(4);
        state.u64(14 * DAY);
        state.u64(10 * 60 * 1000);
        state.u32(3);
        state.blob(&list);
        state.u32(0);
        state.u32(1);
        state.u32(2);
        (state, expires_at)
    }

    /// A migration run with a clock set back (before the old list's issue time) lowers the
    /// companion's expiry to what the signed policy allows from `now`, so the list it signs
    /// verifies; at the old list's own time, the expiry is kept.
    #[test]
    fn a_migration_with_a_clock_set_back_keeps_companions_within_the_policy() {
        let rng = &mut SeededRng::from_label("legacy migration clock");
        let phone = IdentityKeyPair::generate(rng);
        let issued_at = Timestamp(1_790_000_000_000);
        let (state, expires_at) = state_v1(rng, &phone, issued_at);
        let earlier = Timestamp(issued_at.0 - DAY);
        let migrated = Primary::migrate(&state, &phone, earlier).unwrap();
        let laptop = migrated.device_list().entry(DeviceId(2)).unwrap();
        assert_eq!(laptop.expires_at, Some(earlier.plus_millis(14 * DAY)));
        assert_eq!(
            migrated.device_list().policy(),
            Some(AccountPolicy::default())
        );
        let kept = Primary::migrate(&state, &phone, issued_at).unwrap();
        let laptop = kept.device_list().entry(DeviceId(2)).unwrap();
        assert_eq!(laptop.expires_at, Some(expires_at));
    }
}
