//! The primary's state as keyed records (PROTOCOL.md 15.4): every operation's unit, applied to
//! a store and loaded back, gives a primary that behaves as the live one; a unit holds only what
//! the operation changed; records that do not make a state are typed errors.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

use std::collections::BTreeMap;

use ratchetry::devices::{
    DeviceId, LinkInvitation, LinkRequest, ListLimits, PRIMARY_DEVICE, Primary, PrimaryChanges,
    PrimaryPolicy, complete_link,
};
use ratchetry::fanout::{Device, DeviceConfig};
use ratchetry::testing::SeededRng;
use ratchetry::testing::hooks::{legacy_primary_state, primary_records};
use ratchetry::{DecodeError, DeviceError, IdentityKeyPair, Timestamp};

const DAY: u64 = 24 * 60 * 60 * 1000;
const T0: Timestamp = Timestamp(1_790_000_000_000);

const ACCOUNT: u8 = 0x81;
const META: u8 = 0x82;
const LIST: u8 = 0x83;
const INVITATION: u8 = 0x84;
const ADMITTED: u8 = 0x85;
const CONFIRMED: u8 = 0x86;

fn new_primary(rng: &mut SeededRng) -> Primary {
    let phone = IdentityKeyPair::generate(rng);
    Primary::new(rng, &phone, T0, PrimaryPolicy::default())
}

fn at(days: u64) -> Timestamp {
    T0.plus_millis(days * DAY)
}

/// A key-value store as an app keeps one: units applied in order.
#[derive(Clone, Default)]
struct Store(BTreeMap<Vec<u8>, Vec<u8>>);

impl Store {
    fn apply(&mut self, unit: &PrimaryChanges) {
        if unit.replaces_all() {
            self.0.clear();
        }
        for r in unit.records() {
            match r.value() {
                Some(v) => self.0.insert(r.key().to_vec(), v.to_vec()),
                None => self.0.remove(r.key()),
            };
        }
    }

    fn load(&self) -> Result<Primary, DecodeError> {
        Primary::from_records(self.pairs())
    }

    fn pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.0.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))
    }

    fn without(&self, key: &[u8]) -> Self {
        let mut s = self.clone();
        assert!(s.0.remove(key).is_some());
        s
    }

    fn with(&self, key: &[u8], value: &[u8]) -> Self {
        let mut s = self.clone();
        s.0.insert(key.to_vec(), value.to_vec());
        s
    }

    fn value(&self, key: &[u8]) -> Vec<u8> {
        self.0[key].clone()
    }
}

/// The keys of a unit's records, and whether each is written (`true`) or deleted.
fn keys(unit: &PrimaryChanges) -> Vec<(Vec<u8>, bool)> {
    unit.records()
        .iter()
        .map(|r| (r.key().to_vec(), r.value().is_some()))
        .collect()
}

fn invitation_key(n: u64) -> Vec<u8> {
    [&[INVITATION][..], &n.to_be_bytes()].concat()
}

fn admitted_key(d: DeviceId) -> Vec<u8> {
    [&[ADMITTED][..], &d.0.to_be_bytes()].concat()
}

/// A primary and the store its units are written to.
struct Account {
    primary: Primary,
    store: Store,
    /// Draws the units' tags.
    tags: SeededRng,
}

impl Account {
    fn new(rng: &mut SeededRng) -> Self {
        let phone = IdentityKeyPair::generate(rng);
        let mut primary = Primary::new(rng, &phone, T0, PrimaryPolicy::default());
        let mut store = Store::default();
        let unit = primary.take_changes(rng);
        assert!(unit.replaces_all());
        store.apply(&unit);
        Self {
            primary,
            store,
            tags: SeededRng::from_label("primary records: tags"),
        }
    }

    /// Writes the pending unit and checks that the store loads to a primary that behaves as
    /// the live one.
    fn persist(&mut self) {
        let _ = self.write();
    }

    /// The same, returning the unit.
    fn write(&mut self) -> PrimaryChanges {
        let unit = self.primary.take_changes(&mut self.tags);
        assert!(!self.primary.has_changes());
        assert_eq!(unit.epoch(), self.primary.state_epoch());
        self.store.apply(&unit);
        let loaded = self.store.load().unwrap();
        assert!(!loaded.has_changes());
        same_behaviour(&self.primary, &loaded);
        unit
    }

    /// An invitation answered by a new companion, approved; the companion's confirmation.
    fn approve(
        &mut self,
        rng: &mut SeededRng,
        now: Timestamp,
    ) -> (DeviceId, ratchetry::devices::LinkConfirmation) {
        let companion = IdentityKeyPair::generate(rng);
        let invitation = self.primary.invite(rng, now).unwrap();
        self.persist();
        let approval = self
            .primary
            .approve(now, &LinkRequest::new(&companion, &invitation))
            .unwrap();
        let (_, confirmation) =
            complete_link(&companion, &invitation, &approval, &ListLimits::default()).unwrap();
        (approval.device, confirmation)
    }
}

/// Two primaries behave the same: the same state, the same next list, and the same next
/// invitation written under the same record.
fn same_behaviour(live: &Primary, loaded: &Primary) {
    assert_eq!(*live.to_bytes(), *loaded.to_bytes());
    assert_eq!(live.state_epoch(), loaded.state_epoch());
    assert_eq!(live.needs_resync(), loaded.needs_resync());
    assert_eq!(live.device_list().digest(), loaded.device_list().digest());
    let all = primary_records(live);
    assert!(all.replaces_all() && all.base_epoch().is_none() && all.records().len() >= 4);
    assert_eq!(all, primary_records(loaded));
    let (mut a, mut b) = (live.clone(), loaded.clone());
    let rng = SeededRng::from_label("primary records: next invitation");
    let _ = a.take_changes(&mut rng.clone());
    let (ia, ib) = (
        a.invite(&mut rng.clone(), at(1)),
        b.invite(&mut rng.clone(), at(1)),
    );
    match (ia, ib) {
        (Ok(ia), Ok(ib)) => {
            assert_eq!(ia.to_bytes(), ib.to_bytes());
            // The same base, and the same tag drawn from the same randomness.
            assert_eq!(
                a.take_changes(&mut rng.clone()),
                b.take_changes(&mut rng.clone())
            );
        }
        (Err(ea), Err(eb)) => assert_eq!(ea, eb),
        other => panic!("{other:?}"),
    }
    if !live.needs_resync() {
        let (mut a, mut b) = (live.clone(), loaded.clone());
        assert_eq!(
            a.renew(at(2)).unwrap().to_bytes(),
            b.renew(at(2)).unwrap().to_bytes()
        );
    }
}

#[test]
fn every_operation_reloads_to_a_primary_that_behaves_the_same() {
    let rng = &mut SeededRng::from_label("primary records: operations");
    let mut acct = Account::new(rng);
    same_behaviour(&acct.primary, &acct.store.load().unwrap());
    // Invite, approve, confirm.
    let (laptop, confirmation) = acct.approve(rng, T0);
    acct.persist();
    acct.primary.confirm(&confirmation).unwrap();
    acct.persist();
    assert!(acct.store.load().unwrap().is_confirmed(laptop));
    // Approved, not confirmed: the admitting digest is kept, and the confirmation loads.
    let (tablet, tablet_confirmation) = acct.approve(rng, T0);
    acct.persist();
    let mut loaded = acct.store.load().unwrap();
    assert_eq!(loaded.confirm(&tablet_confirmation).unwrap(), tablet);
    // Pending invitations beyond the cap: the oldest goes, on both sides.
    for _ in 0..5 {
        acct.primary.invite(rng, T0).unwrap();
        acct.persist();
    }
    // Renew, unlink a confirmed and an unconfirmed companion.
    acct.primary.renew(at(1)).unwrap();
    acct.persist();
    acct.primary.unlink(at(1), laptop).unwrap();
    acct.persist();
    acct.primary.unlink(at(1), tablet).unwrap();
    acct.persist();
    // Restore: stale records must resync, and resync loads back too.
    let kept = acct.primary.state_epoch() + 3;
    let (restored, stale) = Primary::restore_from_records(acct.store.pairs(), kept).unwrap();
    assert!(stale);
    acct.primary = restored;
    acct.persist();
    let newest = acct.primary.device_list().signed().clone();
    acct.primary.resync(at(2), newest).unwrap();
    acct.persist();
    acct.primary.invite(rng, at(2)).unwrap();
    acct.persist();
}

#[test]
fn a_unit_holds_only_what_the_operation_changed() {
    let rng = &mut SeededRng::from_label("primary records: units");
    let mut acct = Account::new(rng);
    // The first unit holds every record.
    let mut fresh = new_primary(rng);
    let first = fresh.take_changes(rng);
    assert!(first.replaces_all());
    assert_eq!(
        keys(&first),
        vec![
            (vec![ACCOUNT], true),
            (vec![META], true),
            (vec![LIST], true),
            (vec![CONFIRMED], true)
        ]
    );
    assert!(fresh.take_changes(rng).is_empty());
    assert!(!fresh.has_changes());

    acct.primary.invite(rng, T0).unwrap();
    assert!(acct.primary.has_changes());
    let unit = acct.write();
    assert!(!unit.replaces_all());
    assert_eq!(
        keys(&unit),
        vec![(vec![META], true), (invitation_key(0), true)]
    );
    assert_eq!(unit.byte_len(), 1 + 45 + 9 + 24);
    let records = unit.records().to_vec();
    assert_eq!(unit.into_records(), records);

    // A refused operation writes nothing.
    let stranger = IdentityKeyPair::generate(rng);
    let other = LinkInvitation::from_bytes(
        &Primary::new(rng, &stranger, T0, PrimaryPolicy::default())
            .invite(rng, T0)
            .unwrap()
            .to_bytes(),
    )
    .unwrap();
    assert_eq!(
        acct.primary
            .approve(T0, &LinkRequest::new(&stranger, &other))
            .unwrap_err(),
        DeviceError::WrongAccount
    );
    assert!(!acct.primary.has_changes());

    let (laptop, confirmation) = acct.approve(rng, T0);
    assert_eq!(
        keys(&acct.write()),
        vec![
            (vec![META], true),
            (vec![LIST], true),
            (invitation_key(1), false),
            (admitted_key(laptop), true)
        ]
    );
    acct.primary.confirm(&confirmation).unwrap();
    assert_eq!(
        keys(&acct.write()),
        vec![
            (vec![META], true),
            (admitted_key(laptop), false),
            (vec![CONFIRMED], true)
        ]
    );
    acct.primary.renew(at(1)).unwrap();
    assert_eq!(
        keys(&acct.write()),
        vec![(vec![META], true), (vec![LIST], true)]
    );
    // Four invitations kept: the fifth deletes the oldest (number 0 is still pending).
    for _ in 0..3 {
        acct.primary.invite(rng, at(1)).unwrap();
        acct.persist();
    }
    acct.primary.invite(rng, at(1)).unwrap();
    assert_eq!(
        keys(&acct.write()),
        vec![
            (vec![META], true),
            (invitation_key(0), false),
            (invitation_key(5), true)
        ]
    );
    // Unlinking a confirmed companion rewrites the confirmed set; an unconfirmed one deletes
    // its approval.
    acct.primary.unlink(at(1), laptop).unwrap();
    assert_eq!(
        keys(&acct.write()),
        vec![
            (vec![META], true),
            (vec![LIST], true),
            (vec![CONFIRMED], true)
        ]
    );
    let (tablet, _) = acct.approve(rng, at(1));
    acct.persist();
    acct.primary.unlink(at(1), tablet).unwrap();
    assert_eq!(
        keys(&acct.write()),
        vec![
            (vec![META], true),
            (vec![LIST], true),
            (admitted_key(tablet), false)
        ]
    );
    // More for the resync to drop: a confirmed companion and one awaiting confirmation.
    let (_, confirmation) = acct.approve(rng, at(1));
    acct.primary.confirm(&confirmation).unwrap();
    acct.persist();
    let _ = acct.approve(rng, at(1));
    acct.persist();
    // Restored: only the counters change.
    let last = acct.primary.state_epoch();
    let (mut restored, stale) = Primary::restore_from_records(acct.store.pairs(), last).unwrap();
    assert!(!stale);
    assert!(!restored.has_changes());
    restored = restored.into_restored();
    assert!(restored.needs_resync());
    assert_eq!(restored.state_epoch(), last + 1);
    assert_eq!(keys(&restored.take_changes(rng)), vec![(vec![META], true)]);
    // Resync drops every invitation and approval and the confirmed set.
    let pending: Vec<Vec<u8>> = acct
        .store
        .0
        .keys()
        .filter(|k| k[0] == INVITATION || k[0] == ADMITTED)
        .cloned()
        .collect();
    assert!(pending.len() >= 3);
    let newest = restored.device_list().signed().clone();
    restored.resync(at(2), newest).unwrap();
    let unit = restored.take_changes(rng);
    let mut expected = vec![(vec![META], true), (vec![LIST], true)];
    expected.extend(pending.into_iter().map(|k| (k, false)));
    expected.push((vec![CONFIRMED], true));
    assert_eq!(keys(&unit), expected);
}

#[test]
fn a_resync_that_fails_changes_nothing() {
    let rng = &mut SeededRng::from_label("primary records: failed resync");
    let acct = Account::new(rng);
    let other = new_primary(rng);
    let before = acct.primary.to_bytes();
    let mut restored = acct.primary.clone().into_restored();
    let _ = restored.take_changes(rng);
    let before_restored = restored.to_bytes();
    // Another account's list: refused before anything moves.
    assert!(
        restored
            .resync(at(1), other.device_list().signed().clone())
            .is_err()
    );
    assert_eq!(*restored.to_bytes(), *before_restored);
    assert!(!restored.has_changes());
    assert_eq!(*acct.primary.to_bytes(), *before);
}

#[test]
fn a_primary_from_a_blob_writes_all_its_records_first() {
    let rng = &mut SeededRng::from_label("primary records: from a blob");
    let mut acct = Account::new(rng);
    let (_, confirmation) = acct.approve(rng, T0);
    acct.primary.confirm(&confirmation).unwrap();
    acct.approve(rng, T0);
    acct.primary.invite(rng, T0).unwrap();
    acct.persist();
    for mut loaded in [
        Primary::from_bytes(&acct.primary.to_bytes()).unwrap(),
        Primary::restore(&acct.primary.to_bytes(), 0).unwrap().0,
        Primary::restore_from_backup(&acct.primary.to_bytes()).unwrap(),
        // State the previous release wrote.
        Primary::from_bytes(&legacy_primary_state(&acct.primary)).unwrap(),
    ] {
        assert!(loaded.has_changes());
        let unit = loaded.take_changes(rng);
        assert!(unit.replaces_all());
        assert_eq!(unit.records().len(), acct.store.0.len());
        assert_eq!(unit.epoch(), loaded.state_epoch());
        let mut store = acct.store.clone();
        store.apply(&unit);
        same_behaviour(&loaded, &store.load().unwrap());
    }
    // The blob keeps the order of invitations, not their numbers: they are numbered again,
    // from 0, and the next continues above them.
    let mut loaded = Primary::from_bytes(&acct.primary.to_bytes()).unwrap();
    let all = loaded.take_changes(rng);
    assert!(all.records().iter().any(|r| r.key() == invitation_key(0)));
    loaded.invite(rng, T0).unwrap();
    assert!(
        keys(&loaded.take_changes(rng)).contains(&(invitation_key(1), true)),
        "the next invitation is numbered after the loaded one"
    );
}

#[test]
fn stale_records_restore_as_from_a_backup() {
    let rng = &mut SeededRng::from_label("primary records: stale");
    let mut acct = Account::new(rng);
    acct.primary.invite(rng, T0).unwrap();
    acct.persist();
    let snapshot = acct.store.clone();
    acct.primary.renew(at(1)).unwrap();
    acct.persist();
    let last = acct.primary.state_epoch();
    // Not stale: as it was.
    let (current, stale) = Primary::restore_from_records(acct.store.pairs(), last).unwrap();
    assert!(!stale);
    assert!(!current.needs_resync());
    assert_eq!(current.state_epoch(), last);
    // Stale: must resync before it signs, and its epoch continues above the kept one.
    let (mut old, stale) = Primary::restore_from_records(snapshot.pairs(), last).unwrap();
    assert!(stale);
    assert!(old.needs_resync());
    assert_eq!(old.state_epoch(), last + 1);
    assert_eq!(
        old.invite(rng, at(1)).unwrap_err(),
        DeviceError::ResyncRequired
    );
    assert_eq!(old.renew(at(1)).unwrap_err(), DeviceError::ResyncRequired);
    let unit = old.take_changes(rng);
    assert_eq!(keys(&unit), vec![(vec![META], true)]);
    assert_eq!(unit.epoch(), last + 1);
    let mut store = snapshot.clone();
    store.apply(&unit);
    assert!(store.load().unwrap().needs_resync());
    // It skips past what the lost state may have signed.
    let newest = acct.primary.device_list().signed().clone();
    let list = old.resync(at(2), newest).unwrap();
    assert!(list.version() > acct.primary.device_list().version() + (1 << 32));
}

#[test]
fn records_missing_or_inconsistent_are_typed_errors() {
    let rng = &mut SeededRng::from_label("primary records: refused");
    let mut acct = Account::new(rng);
    let (laptop, _) = acct.approve(rng, T0);
    acct.primary.invite(rng, T0).unwrap();
    acct.persist();
    let store = acct.store.clone();
    // Each record the state cannot be without, named by its kind.
    for kind in [ACCOUNT, META, LIST, CONFIRMED] {
        assert_eq!(
            store.without(&[kind]).load().err(),
            Some(DecodeError::MissingRecord(kind))
        );
    }
    // A key given twice.
    let pairs: Vec<_> = store.pairs().chain(store.pairs().take(1)).collect();
    assert_eq!(
        Primary::from_records(pairs).err(),
        Some(DecodeError::InvalidValue)
    );
    // A device's record, or an unknown kind, among them.
    assert_eq!(
        store.with(&[0x02], &[0; 21]).load().err(),
        Some(DecodeError::UnknownType(0x02))
    );
    assert_eq!(
        store.with(&[0x87], &[]).load().err(),
        Some(DecodeError::UnknownType(0x87))
    );
    // A key with bytes after its fields, or too few.
    assert_eq!(
        store.with(&[META, 0], &[]).load().err(),
        Some(DecodeError::TrailingBytes)
    );
    assert_eq!(
        store.with(&[INVITATION, 0, 0], &[]).load().err(),
        Some(DecodeError::Truncated)
    );
    // An invitation numbered at or above the next number would be overwritten by the next.
    let invitation = store.value(&invitation_key(1));
    assert_eq!(
        store.with(&invitation_key(2), &invitation).load().err(),
        Some(DecodeError::InvalidValue)
    );
    assert!(store.with(&invitation_key(0), &invitation).load().is_ok());
    // At most four invitations and four approvals.
    let mut five = store.clone();
    let mut meta = store.value(&[META]);
    meta[20..28].copy_from_slice(&10u64.to_be_bytes());
    five = five.with(&[META], &meta);
    for n in 2..6 {
        five = five.with(&invitation_key(n), &invitation);
    }
    assert_eq!(five.load().err(), Some(DecodeError::InvalidValue));
    assert!(five.without(&invitation_key(5)).load().is_ok());
    let digest = store.value(&admitted_key(laptop));
    let mut approvals = store.clone();
    for d in 10..14 {
        approvals = approvals.with(&admitted_key(DeviceId(d)), &digest);
    }
    assert_eq!(approvals.load().err(), Some(DecodeError::InvalidValue));
    assert!(
        approvals
            .without(&admitted_key(DeviceId(13)))
            .load()
            .is_ok()
    );
    // The last invitation number: the next invitation would land on its record.
    let mut last = store.value(&[META]);
    last[20..28].copy_from_slice(&u64::MAX.to_be_bytes());
    assert_eq!(
        store.with(&[META], &last).load().err(),
        Some(DecodeError::InvalidValue)
    );
    last[20..28].copy_from_slice(&(u64::MAX - 1).to_be_bytes());
    assert!(store.with(&[META], &last).load().is_ok());
    // A next device id at or below a listed one: that id would be given twice.
    let mut next = store.value(&[META]);
    for id in [laptop.0, laptop.0 - 1] {
        next[8..12].copy_from_slice(&id.to_be_bytes());
        assert_eq!(
            store.with(&[META], &next).load().err(),
            Some(DecodeError::InvalidValue),
            "{id}"
        );
    }
    next[8..12].copy_from_slice(&(laptop.0 + 1).to_be_bytes());
    assert!(store.with(&[META], &next).load().is_ok());
    // A flag other than 0 or 1 (before the 16-byte tag).
    let mut flag = store.value(&[META]);
    flag[28] = 2;
    assert_eq!(
        store.with(&[META], &flag).load().err(),
        Some(DecodeError::InvalidValue)
    );
    // Another account's list, or a list under another policy.
    let other = new_primary(rng);
    assert_eq!(
        store
            .with(&[LIST], &other.device_list().to_bytes())
            .load()
            .err(),
        Some(DecodeError::InvalidValue)
    );
    let mut policy = store.value(&[ACCOUNT]);
    policy[32..36].copy_from_slice(&7u32.to_be_bytes());
    assert_eq!(
        store.with(&[ACCOUNT], &policy).load().err(),
        Some(DecodeError::InvalidValue)
    );
    // Every value with a byte more, or cut anywhere: an error, never a panic.
    for (key, value) in &store.0 {
        let mut longer = value.clone();
        longer.push(0);
        assert_eq!(
            store.with(key, &longer).load().err(),
            Some(DecodeError::TrailingBytes),
            "{key:02x?}"
        );
        for len in 0..value.len() {
            // The meta record cut before its tag is the form before tags: it loads, and its
            // load leaves the meta record to rewrite.
            if key == &[META] && len == 29 {
                let old = store.with(key, &value[..len]).load().unwrap();
                assert!(old.has_changes());
                continue;
            }
            assert!(store.with(key, &value[..len]).load().is_err(), "{key:02x?}");
        }
    }
    // The confirmed set holds at most as many ids as a list has entries.
    let mut many = 257u32.to_be_bytes().to_vec();
    many.extend(std::iter::repeat_n(0u8, 257 * 4));
    assert!(store.with(&[CONFIRMED], &many).load().is_err());
    let mut most = 256u32.to_be_bytes().to_vec();
    most.extend(std::iter::repeat_n(0u8, 256 * 4));
    assert!(store.with(&[CONFIRMED], &most).load().is_ok());
}

#[test]
fn the_blob_refuses_approvals_out_of_order() {
    let rng = &mut SeededRng::from_label("primary records: blob order");
    let mut acct = Account::new(rng);
    let (a, _) = acct.approve(rng, T0);
    let (b, _) = acct.approve(rng, T0);
    acct.persist();
    let blob = acct.primary.to_bytes().to_vec();
    // The approvals follow the invitations (none pending): u32(2) ‖ (id ‖ digest) × 2.
    let ea = [&a.0.to_be_bytes()[..], &acct.store.value(&admitted_key(a))].concat();
    let eb = [&b.0.to_be_bytes()[..], &acct.store.value(&admitted_key(b))].concat();
    let ordered = [&2u32.to_be_bytes()[..], &ea, &eb].concat();
    let at = blob
        .windows(ordered.len())
        .position(|w| w == ordered)
        .unwrap();
    let mut swapped = blob.clone();
    swapped[at + 4..at + 4 + 72].copy_from_slice(&[&eb[..], &ea].concat());
    assert_eq!(
        Primary::from_bytes(&swapped).err(),
        Some(DecodeError::InvalidValue)
    );
    let mut twice = blob.clone();
    twice[at + 4 + 36..at + 4 + 72].copy_from_slice(&ea);
    assert_eq!(
        Primary::from_bytes(&twice).err(),
        Some(DecodeError::InvalidValue)
    );
    assert!(Primary::from_bytes(&blob).is_ok());
    // The next device id (after the header, the account seed and the policy) at a listed id.
    let mut next = blob.clone();
    next[54..58].copy_from_slice(&b.0.to_be_bytes());
    assert_eq!(
        Primary::from_bytes(&next).err(),
        Some(DecodeError::InvalidValue)
    );
    next[54..58].copy_from_slice(&(b.0 + 1).to_be_bytes());
    assert!(Primary::from_bytes(&next).is_ok());
}

#[test]
fn device_and_primary_records_are_kept_apart() {
    let rng = &mut SeededRng::from_label("primary records: apart");
    let phone = IdentityKeyPair::generate(rng);
    let mut primary = Primary::new(rng, &phone, T0, PrimaryPolicy::default());
    let (mut device, _) = Device::new(
        rng,
        T0,
        phone,
        PRIMARY_DEVICE,
        primary.device_list().clone(),
        2,
        DeviceConfig::default(),
    )
    .unwrap();
    let p = primary.take_changes(rng);
    let d = device.take_changes(rng);
    let primary_keys: Vec<&[u8]> = p.records().iter().map(|r| r.key()).collect();
    assert!(d.records().iter().all(|r| !primary_keys.contains(&r.key())));
    let pairs = |u: &[ratchetry::fanout::Record]| -> Vec<(Vec<u8>, Vec<u8>)> {
        u.iter()
            .map(|r| (r.key().to_vec(), r.value().unwrap().to_vec()))
            .collect()
    };
    let (p, d) = (pairs(p.records()), pairs(d.records()));
    fn as_refs(v: &[(Vec<u8>, Vec<u8>)]) -> Vec<(&[u8], &[u8])> {
        v.iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect()
    }
    assert_eq!(
        Device::from_records(as_refs(&p)).err(),
        Some(DecodeError::UnknownType(ACCOUNT))
    );
    assert_eq!(
        Primary::from_records(as_refs(&d)).err(),
        Some(DecodeError::UnknownType(0x01))
    );
    let mut both = as_refs(&p);
    both.extend(as_refs(&d));
    assert!(Primary::from_records(both).is_err());
}

#[test]
fn a_primary_migrated_from_the_first_format_writes_all_its_records_first() {
    let legacy = |name: &str| {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data/legacy")
                .join(name),
        )
        .unwrap()
    };
    let identity = Device::legacy_identity(&legacy("device-v2-alice.bin")).unwrap();
    let mut migrated = Primary::migrate(&legacy("primary-v1-alice.bin"), &identity, T0).unwrap();
    assert!(migrated.has_changes());
    let unit = migrated.take_changes(&mut SeededRng::from_label("migrated tags"));
    assert!(unit.replaces_all());
    let mut store = Store::default();
    store.apply(&unit);
    same_behaviour(&migrated, &store.load().unwrap());
}
