//! The primary's state in records (PROTOCOL.md 15.4): every record value encoded here, next
//! to its decoder. A mutation marks the records it touched; [`Primary::take_changes`] encodes
//! exactly those (or their deletion) as one [`PrimaryChanges`] unit, which the app writes in one
//! transaction before publishing what the primary signed. [`Primary::from_records`] rebuilds a
//! primary from every stored record, checking each against the ones it depends on.

use alloc::vec::Vec;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::list::MAX_LIST_ENTRIES;
use super::primary::{
    MAX_PENDING_INVITATIONS, check_next_device, read_account, read_list, write_account,
};
use super::primary_records::{PrimaryChanges, PrimaryKey, name_key};
use super::{DeviceId, LinkInvitation, Primary};
use crate::error::DecodeError;
use crate::persist::{Dirty, Record, UnitChain, UnitTag};
use crate::time::Timestamp;
use crate::wire::{Reader, SecretBuf, Writer, bounded_count};

impl Primary {
    /// The records changed since the last call, as one unit to write in one transaction.
    /// Empty if nothing changed. After [`new`](Self::new) or a load from whole-state bytes
    /// ([`from_bytes`](Self::from_bytes), [`restore`](Self::restore),
    /// [`restore_from_backup`](Self::restore_from_backup)), the unit holds every record and
    /// [`replaces_all`](PrimaryChanges::replaces_all) says to delete the stored ones first.
    /// The unit starts where the previous one taken ended, or where the primary was loaded
    /// ([`base_epoch`](PrimaryChanges::base_epoch), [`base_tag`](PrimaryChanges::base_tag)):
    /// a store holding another epoch missed a unit, and one holding another tag holds another
    /// copy's. A load from whole-state bytes starts from the epoch and tag they hold (the tag
    /// of the last unit taken before [`to_bytes`](Self::to_bytes); bytes of the previous
    /// format hold [`UnitTag::NONE`](crate::persist::UnitTag::NONE), as does a store that kept
    /// them as one blob). Only the first unit of a new or restored primary starts from
    /// nothing: it replaces whatever the store holds. A unit that holds records draws its
    /// [tag](PrimaryChanges::tag) from `rng` (16 bytes), and always holds the meta record,
    /// which keeps the tag. Two live copies must not draw from one repeating stream.
    pub fn take_changes(&mut self, rng: &mut impl CryptoRng) -> PrimaryChanges {
        let dirty = core::mem::take(&mut self.dirty);
        let (all, keys) = dirty.into_unit_keys(PrimaryKey::Meta, || self.all_keys());
        let link = self.chain.next(rng, self.epoch, all, !keys.is_empty());
        let records = keys
            .into_iter()
            .map(|k| Record::new(k.encode(), self.value_of(&k), name_key))
            .collect();
        PrimaryChanges::new(link, self.epoch, records)
    }

    /// Whether changes are waiting for [`take_changes`](Self::take_changes).
    pub fn has_changes(&self) -> bool {
        !self.dirty.is_clean()
    }

    /// Every record key of the current state, in key order.
    fn all_keys(&self) -> Vec<PrimaryKey> {
        let mut keys = alloc::vec![PrimaryKey::Account, PrimaryKey::Meta, PrimaryKey::List];
        keys.extend(
            self.invitations
                .iter()
                .map(|(n, _)| PrimaryKey::Invitation(*n)),
        );
        keys.extend(self.admitted.iter().map(|(d, _)| PrimaryKey::Admitted(*d)));
        keys.push(PrimaryKey::Confirmed);
        keys
    }

    /// The current value of a record, or `None` if it no longer exists.
    fn value_of(&self, key: &PrimaryKey) -> Option<Zeroizing<Vec<u8>>> {
        let mut out = SecretBuf::with_capacity(64);
        match key {
            PrimaryKey::Account => write_account(&mut out, &self.account, &self.policy),
            PrimaryKey::Meta => {
                out.u64(self.epoch);
                out.u32(self.next_device);
                out.u64(self.next_version);
                out.u64(self.next_invitation);
                out.flag(self.needs_resync);
                out.put(&self.chain.tag().to_bytes());
            }
            PrimaryKey::List => out.put(&self.list.to_bytes()),
            PrimaryKey::Invitation(n) => {
                let (_, i) = self.invitations.iter().find(|(m, _)| m == n)?;
                out.put(&i.nonce);
                out.u64(i.expires_at.0);
            }
            PrimaryKey::Admitted(d) => {
                let (_, digest) = self.admitted.iter().find(|(e, _)| e == d)?;
                out.put(digest);
            }
            PrimaryKey::Confirmed => {
                out.u32(self.confirmed.len() as u32);
                for d in &self.confirmed {
                    out.u32(d.0);
                }
            }
        }
        Some(out.into_inner())
    }

    /// Rebuilds a primary from every stored record (`(key, value)` pairs, in any order). The
    /// records are this crate's own: the list is not checked again (no curve work), but every
    /// record must be well formed and consistent with the others. A record the state cannot
    /// be without (account, meta, list, confirmed) missing is
    /// [`MissingRecord`](DecodeError::MissingRecord) with its kind; a key given twice, or
    /// anything inconsistent, is [`InvalidValue`](DecodeError::InvalidValue). Nothing needs
    /// writing after the load: the next unit holds only what changes next.
    pub fn from_records<'a>(
        records: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Result<Self, DecodeError> {
        let mut sorted = records
            .into_iter()
            .map(|(k, v)| Ok((PrimaryKey::decode(k)?, v)))
            .collect::<Result<Vec<_>, DecodeError>>()?;
        sorted.sort_unstable_by_key(|r| r.0);
        if sorted.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(DecodeError::InvalidValue);
        }
        from_sorted(&sorted)
    }

    /// [`from_records`](Self::from_records), detecting a stale snapshot as
    /// [`restore`](Self::restore) does: if the records' epoch is lower than `last_epoch` (the
    /// epoch of the last unit written, kept where a restore of the store does not reach), the
    /// primary must [`resync`](Self::resync) before it signs again, its epoch continues above
    /// `last_epoch`, its next unit writes the meta record, and the second value is `true`.
    pub fn restore_from_records<'a>(
        records: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
        last_epoch: u64,
    ) -> Result<(Self, bool), DecodeError> {
        Ok(Self::from_records(records)?.restore_stale(last_epoch))
    }
}

#[cfg(feature = "test-support")]
impl Primary {
    /// Every record of the current state as it is (its meta record with the current tag), as
    /// a unit that replaces all.
    pub(crate) fn all_records(&self) -> PrimaryChanges {
        let records = self
            .all_keys()
            .into_iter()
            .map(|k| Record::new(k.encode(), self.value_of(&k), name_key))
            .collect();
        let link = crate::persist::Link {
            base: None,
            replaces_all: true,
            tag: self.chain.tag(),
        };
        PrimaryChanges::new(link, self.epoch, records)
    }
}

/// Builds the primary from records in strictly ascending key order: the account first (the
/// list and invitations are checked against it), then the counters (every numbered record
/// lies below them).
fn from_sorted(records: &[(PrimaryKey, &[u8])]) -> Result<Primary, DecodeError> {
    let value = |k: PrimaryKey| {
        records
            .binary_search_by(|(key, _)| key.cmp(&k))
            .map(|i| records[i].1)
            .map_err(|_| DecodeError::MissingRecord(k.kind()))
    };
    let mut r = Reader::new(value(PrimaryKey::Account)?);
    let (account, policy) = read_account(&mut r)?;
    r.finish()?;
    let mut r = Reader::new(value(PrimaryKey::Meta)?);
    let epoch = r.u64()?;
    let next_device = r.u32()?;
    let next_version = r.u64()?;
    let next_invitation = r.u64()?;
    let needs_resync = r.flag()?;
    // Before unit tags: the tag of a state that predates them, and the record is rewritten.
    let tag = UnitTag::read_ending(&mut r)?;
    r.finish()?;
    // At the last number, the next invitation would land on its record.
    if next_invitation == u64::MAX {
        return Err(DecodeError::InvalidValue);
    }
    let list = read_list(value(PrimaryKey::List)?, &account, &policy)?;
    check_next_device(next_device, &list)?;
    let mut r = Reader::new(value(PrimaryKey::Confirmed)?);
    let n = bounded_count(&mut r, MAX_LIST_ENTRIES)?;
    let mut confirmed = Vec::with_capacity(r.capacity(n, 4));
    for _ in 0..n {
        confirmed.push(DeviceId(r.u32()?));
    }
    r.finish()?;
    let mut invitations = Vec::new();
    let mut admitted = Vec::new();
    for (key, bytes) in records {
        let mut r = Reader::new(bytes);
        match *key {
            PrimaryKey::Account | PrimaryKey::Meta | PrimaryKey::List | PrimaryKey::Confirmed => {
                continue;
            }
            PrimaryKey::Invitation(number) => {
                if number >= next_invitation || invitations.len() == MAX_PENDING_INVITATIONS {
                    return Err(DecodeError::InvalidValue);
                }
                let invitation = LinkInvitation {
                    account: account.public(),
                    nonce: r.array()?,
                    expires_at: Timestamp(r.u64()?),
                };
                invitations.push((number, invitation));
            }
            PrimaryKey::Admitted(device) => {
                if admitted.len() == MAX_PENDING_INVITATIONS {
                    return Err(DecodeError::InvalidValue);
                }
                admitted.push((device, r.array()?));
            }
        }
        r.finish()?;
    }
    let mut dirty = Dirty::default();
    if tag.is_none() {
        dirty.mark(PrimaryKey::Meta);
    }
    // Approvals come in ascending id, each once: their keys were sorted and are distinct.
    Ok(Primary {
        account,
        policy,
        next_device,
        next_version,
        list,
        invitations,
        next_invitation,
        admitted,
        confirmed,
        epoch,
        needs_resync,
        // The store holds the records at this epoch and tag: the next unit starts there.
        chain: UnitChain::at(epoch, tag.unwrap_or(UnitTag::NONE)),
        dirty,
    })
}

#[cfg(test)]
mod tests {
    use core::fmt;

    use super::*;
    use crate::devices::{DeviceEntry, PrimaryPolicy, SignedDeviceList};
    use crate::primitives::IdentityKeyPair;
    use crate::testing::SeededRng;

    #[test]
    fn a_refused_resync_changes_nothing() {
        let rng = &mut SeededRng::from_label("primary records: refused resync");
        let phone = IdentityKeyPair::generate(rng);
        let mut primary =
            Primary::new(rng, &phone, Timestamp(1), PrimaryPolicy::default()).into_restored();
        let _ = primary.take_changes(rng);
        let before = primary.to_bytes();
        let other = IdentityKeyPair::generate(rng);
        let substitute = SignedDeviceList::sign(
            &primary.account,
            primary.list.version() + 1,
            Timestamp(2),
            primary.policy.account,
            alloc::vec![DeviceEntry {
                identity: other.public(),
                binding: crate::devices::list::binding(&other, &primary.account()),
                ..primary.list.entries()[0]
            }],
        );
        assert_eq!(
            primary.resync(Timestamp(3), substitute).err(),
            Some(crate::DeviceError::NotPrimary)
        );
        assert_eq!(*primary.to_bytes(), *before);
        assert!(!primary.has_changes());
    }

    #[test]
    fn a_record_names_its_key_and_hides_its_value() {
        struct Named<'a>(&'a [u8]);
        impl fmt::Debug for Named<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                name_key(self.0, f)
            }
        }
        let key = PrimaryKey::Invitation(3).encode();
        assert_eq!(alloc::format!("{:?}", Named(&key)), "Invitation(3)");
        // Bytes that are not a primary record key are shown as they are.
        assert_eq!(alloc::format!("{:?}", Named(&[0x01, 0xab])), "01ab");
        let mut primary = Primary::new(
            &mut SeededRng::from_label("primary records: debug"),
            &IdentityKeyPair::generate(&mut SeededRng::from_label("phone")),
            Timestamp(1),
            PrimaryPolicy::default(),
        );
        let unit = primary.take_changes(&mut SeededRng::from_label("debug tag"));
        let shown = alloc::format!("{unit:?}");
        assert!(
            shown.contains("key: Account, value_len: Some(52)"),
            "{shown}"
        );
        let seed = alloc::format!("{:?}", &primary.account.seed()[..]);
        assert!(!shown.contains(&seed[1..seed.len() - 1]));
    }
}
