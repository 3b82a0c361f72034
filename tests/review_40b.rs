//! Review 40b: the unit chain by epoch and random tag (PROTOCOL.md 19, 15.4) at the library
//! level, against a record store that enforces it as PROTOCOL.md 19 states it: clones with
//! pending changes, empty units, whole-state bytes and records of a unit that replaced all,
//! tagless (legacy) meta records loaded twice, the primary's restore paths, an app RNG that
//! repeats, and an RNG that yields only zeros. Passing tests pin what holds; ignored tests
//! assert the correct behaviour of a finding.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

mod support;

use std::collections::BTreeMap;

use rand_core::Rng;
use ratchetry::devices::{PRIMARY_DEVICE, Primary, PrimaryPolicy};
use ratchetry::fanout::{Device, DeviceConfig};
use ratchetry::persist::{Changes, UnitTag};
use ratchetry::testing::SeededRng;
use ratchetry::{IdentityKeyPair, Timestamp};
use support::T0;

/// Why a [`ChainStore`] refused a unit (nothing written).
#[derive(Debug, PartialEq, Eq)]
enum Refused {
    NotStored,
    Gap,
    AnotherCopy,
}

/// One state's records and the epoch and tag of the last unit written: a unit with a base must
/// start from them (PROTOCOL.md 19), or replace all where nothing is stored; one without (a
/// new or restored state) is written whatever is stored.
#[derive(Default)]
struct ChainStore {
    head: Option<(u64, UnitTag)>,
    rows: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl ChainStore {
    fn write<S>(&mut self, unit: &Changes<S>) -> Result<(), Refused> {
        match (unit.base_epoch().zip(unit.base_tag()), self.head) {
            (None, _) => {}
            (Some(_), None) if !unit.replaces_all() => return Err(Refused::NotStored),
            (Some((epoch, _)), Some((stored, _))) if epoch != stored => return Err(Refused::Gap),
            (Some(base), Some(head)) if base != head => return Err(Refused::AnotherCopy),
            _ if unit.is_empty() => return Ok(()),
            _ => {}
        }
        if unit.replaces_all() {
            self.rows.clear();
        }
        for r in unit.records() {
            match r.value() {
                Some(v) => self.rows.insert(r.key().to_vec(), v.to_vec()),
                None => self.rows.remove(r.key()),
            };
        }
        self.head = Some((unit.epoch(), unit.tag()));
        Ok(())
    }

    fn pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.rows.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))
    }

    fn device(&self) -> Device {
        Device::from_records(self.pairs()).unwrap()
    }

    fn primary(&self) -> Primary {
        Primary::from_records(self.pairs()).unwrap()
    }
}

/// A new phone and its primary, each first unit written to its own store.
fn phone(label: &str) -> (SeededRng, Device, ChainStore, Primary, ChainStore) {
    let mut rng = SeededRng::from_label(label);
    let identity = IdentityKeyPair::generate(&mut rng);
    let mut primary = Primary::new(&mut rng, &identity, T0, PrimaryPolicy::default());
    let list = primary.device_list().clone();
    let (mut device, _) = Device::new(
        &mut rng,
        T0,
        identity,
        PRIMARY_DEVICE,
        list,
        3,
        DeviceConfig::default(),
    )
    .unwrap();
    let (mut ds, mut ps) = (ChainStore::default(), ChainStore::default());
    ds.write(&device.take_changes(&mut rng)).unwrap();
    ps.write(&primary.take_changes(&mut rng)).unwrap();
    (rng, device, ds, primary, ps)
}

/// The device meta record's key (PROTOCOL.md 19.1).
const DEVICE_META: &[u8] = &[0x02];
/// The primary meta record's key (PROTOCOL.md 15.4).
const PRIMARY_META: &[u8] = &[0x82];

// ---------------------------------------------------------------------------------------------
// Findings
// ---------------------------------------------------------------------------------------------

/// FINDING (low): two copies whose RNGs repeat (cloned with the device, or seeded alike in
/// two processes) draw the same tag for different units, so the tag tells them apart no
/// better than the epoch; the store then writes one copy's later unit on top of the other's
/// (see `stores/sqlite/tests/review_40b.rs`). Undocumented: `take_changes` asks only for a
/// `CryptoRng`. Fix: bind the tag to the unit, e.g. `H(16 drawn bytes ‖ base tag ‖ epoch ‖
/// the unit's records)[..16]`, and say at `take_changes` that copies must not share a stream.
#[test]
#[ignore = "KNOWN LIMIT (SECURITY.md): copies that draw from one repeating RNG stream draw one tag for different units (they would repeat keys elsewhere too)"]
fn different_units_of_two_copies_draw_different_tags_even_from_one_stream() {
    let (mut rng, mut device, _, _, _) = phone("review 40b: one stream");
    let mut copy = device.clone();
    device.rotate_signed_prekey(&mut rng, T0);
    let _ = copy.generate_one_time_prekeys(&mut rng, T0, 2);
    let stream = SeededRng::from_label("review 40b: the app's fixed seed");
    let a = device.take_changes(&mut stream.clone());
    let b = copy.take_changes(&mut stream.clone());
    assert_ne!(a.records(), b.records(), "two different units");
    assert_ne!(a.tag(), b.tag());
}

/// FIXED (stop 40; was FINDING, info): `UnitTag::draw` redrew while the 16 bytes were zero,
/// with no bound, so an RNG that yields only zeros (a stub, a failed hardware source behind a
/// wrapper that fills zeros) made `take_changes` spin forever. A zero draw now gets its last
/// bit set instead.
#[test]
fn take_changes_with_an_rng_of_zeros_ends() {
    struct Zeros;
    impl rand_core::TryRng for Zeros {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            Ok(0)
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            Ok(0)
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            dst.fill(0);
            Ok(())
        }
    }
    impl rand_core::TryCryptoRng for Zeros {}
    let (mut rng, mut device, _, _, _) = phone("review 40b: zeros");
    device.rotate_signed_prekey(&mut rng, T0);
    let (done, ended) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let taken = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            device.take_changes(&mut Zeros).epoch()
        }));
        let _ = done.send(taken.is_ok());
    });
    assert!(
        ended
            .recv_timeout(std::time::Duration::from_secs(10))
            .is_ok(),
        "take_changes spins"
    );
}

// ---------------------------------------------------------------------------------------------
// Properties that hold
// ---------------------------------------------------------------------------------------------

/// A clone taken with changes pending: both copies take a unit from the same base with the
/// same epoch, each with its own tag; the first written wins, the second is refused (a gap:
/// its base epoch is behind), and the loser's next unit, whose epoch lines up with the store,
/// is `AnotherCopy`. The same for the primary.
#[test]
fn a_clone_with_pending_changes_takes_its_own_tag_and_loses_to_the_first_write() {
    let (mut rng, mut device, mut ds, mut primary, mut ps) = phone("review 40b: clones");
    device.rotate_signed_prekey(&mut rng, T0);
    let mut copy = device.clone();
    let a = device.take_changes(&mut rng);
    let b = copy.take_changes(&mut rng);
    assert_eq!(a.base_epoch(), b.base_epoch());
    assert_eq!(a.base_tag(), b.base_tag());
    assert_eq!(a.epoch(), b.epoch());
    assert_eq!(a.records().len(), b.records().len());
    assert_ne!(a.tag(), b.tag());
    assert_eq!(ds.write(&a), Ok(()));
    assert_eq!(ds.write(&b), Err(Refused::Gap));
    let _ = copy.generate_one_time_prekeys(&mut rng, T0, 1);
    let lined_up = copy.take_changes(&mut rng);
    assert_eq!(lined_up.base_epoch(), Some(a.epoch()));
    assert_eq!(ds.write(&lined_up), Err(Refused::AnotherCopy));
    assert_eq!(*ds.device().to_bytes(), *device.to_bytes());

    primary.invite(&mut rng, T0).unwrap();
    let mut copy = primary.clone();
    let a = primary.take_changes(&mut rng);
    let b = copy.take_changes(&mut rng);
    assert_eq!(
        (a.base_epoch(), a.base_tag()),
        (b.base_epoch(), b.base_tag())
    );
    assert_ne!(a.tag(), b.tag());
    assert_eq!(ps.write(&b), Ok(()));
    assert_eq!(ps.write(&a), Err(Refused::Gap));
    primary.renew(T0).unwrap();
    let lined_up = primary.take_changes(&mut rng);
    assert_eq!(lined_up.base_epoch(), Some(b.epoch()));
    assert_eq!(ps.write(&lined_up), Err(Refused::AnotherCopy));
    assert_eq!(*ps.primary().to_bytes(), *copy.to_bytes());
}

/// An empty unit draws nothing from the RNG, starts and ends at the last unit's epoch and tag,
/// and is refused from a copy that fell behind (its base is not the store's).
#[test]
fn an_empty_unit_draws_nothing_and_starts_where_it_ends() {
    let (mut rng, mut device, mut ds, _, _) = phone("review 40b: empty");
    device.rotate_signed_prekey(&mut rng, T0);
    let stale = ds.device();
    let unit = device.take_changes(&mut rng);
    ds.write(&unit).unwrap();
    let before = rng.clone();
    let empty = device.take_changes(&mut rng);
    assert!(empty.is_empty() && !empty.replaces_all());
    assert_eq!(rng.next_u64(), before.clone().next_u64(), "nothing drawn");
    assert_eq!(
        (empty.base_epoch(), empty.base_tag()),
        (Some(unit.epoch()), Some(unit.tag()))
    );
    assert_eq!((empty.epoch(), empty.tag()), (unit.epoch(), unit.tag()));
    assert_eq!(ds.write(&empty), Ok(()));
    let mut stale = stale;
    assert_eq!(
        ds.write(&stale.take_changes(&mut rng)),
        Err(Refused::Gap),
        "an empty unit of a copy behind the store"
    );
}

/// The tag lives in the meta record: a unit that replaced all holds it, the whole-state bytes
/// hold it, and a device loaded from either (`from_records`, `from_bytes`) starts its chain
/// there, so an honest single copy is never refused after a restart.
#[test]
fn a_state_loaded_after_a_unit_that_replaced_all_chains_from_its_tag() {
    let (mut rng, device, _, _, _) = phone("review 40b: reload");
    let mut whole = Device::from_bytes(&device.to_bytes()).unwrap();
    let unit = whole.take_changes(&mut rng);
    assert!(unit.replaces_all());
    let meta = unit
        .records()
        .iter()
        .find(|r| r.key() == DEVICE_META)
        .unwrap();
    assert!(meta.value().unwrap().ends_with(&unit.tag().to_bytes()));
    let mut ds = ChainStore::default();
    ds.write(&unit).unwrap();

    let mut loaded = ds.device();
    assert!(!loaded.has_changes());
    assert_eq!(*loaded.to_bytes(), *whole.to_bytes());
    let mut from_bytes = Device::from_bytes(&whole.to_bytes()).unwrap();
    loaded.rotate_signed_prekey(&mut rng, T0);
    let next = loaded.take_changes(&mut rng);
    assert_eq!(next.base_tag(), Some(unit.tag()));
    assert_eq!(ds.write(&next), Ok(()));
    // Loaded again from the store after that unit: chains on.
    let mut again = ds.device();
    let _ = again.generate_one_time_prekeys(&mut rng, T0, 1);
    assert_eq!(ds.write(&again.take_changes(&mut rng)), Ok(()));
    // The whole-state bytes' own unit replaces all, with a fresh tag, and starts where the
    // bytes were taken: the store has moved on since, so it is refused.
    let copy = from_bytes.take_changes(&mut rng);
    assert!(copy.replaces_all());
    assert_ne!(copy.tag(), unit.tag());
    assert_eq!(copy.base_tag(), Some(unit.tag()));
    assert_eq!(ds.write(&copy), Err(Refused::Gap));
}

/// Records from before tags (a meta record ending after the flag) load at the tag `NONE` and
/// leave a unit rewriting the meta record. Two copies loaded from them each take such a unit
/// from `(epoch, NONE)` with their own tag; the first is written, the second is
/// `AnotherCopy`; loaded again, nothing is left to rewrite.
#[test]
fn two_copies_of_tagless_records_rewrite_from_none_and_the_second_is_refused() {
    let (mut rng, mut device, ds, _, _) = phone("review 40b: tagless");
    device.rotate_signed_prekey(&mut rng, T0);
    let mut ds = ds;
    ds.write(&device.take_changes(&mut rng)).unwrap();
    let epoch = device.state_epoch();
    // The store as the release before tags wrote it.
    let mut rows = ds.rows.clone();
    let meta = rows.get_mut(DEVICE_META).unwrap();
    meta.truncate(meta.len() - 16);
    let mut old = ChainStore {
        head: Some((epoch, UnitTag::NONE)),
        rows,
    };

    let mut a = old.device();
    let mut b = old.device();
    assert!(a.has_changes() && b.has_changes());
    let ua = a.take_changes(&mut rng);
    let ub = b.take_changes(&mut rng);
    for u in [&ua, &ub] {
        assert_eq!(
            (u.base_epoch(), u.base_tag(), u.epoch()),
            (Some(epoch), Some(UnitTag::NONE), epoch)
        );
        assert_eq!(u.records().len(), 1, "the meta record alone");
        assert_ne!(u.tag(), UnitTag::NONE);
    }
    assert_ne!(ua.tag(), ub.tag());
    assert_eq!(old.write(&ua), Ok(()));
    assert_eq!(old.write(&ub), Err(Refused::AnotherCopy));
    let reloaded = old.device();
    assert!(!reloaded.has_changes());
    assert_eq!(*reloaded.to_bytes(), *a.to_bytes());
}

/// The primary's `needs_resync` path: restored from its records (`into_restored`, or
/// `restore_from_records` below the kept epoch) its unit is the meta record alone, chained on
/// the tag it was loaded at, ending one above (or above the kept epoch). Written first, it
/// makes a live copy's unit a gap; a live copy written first makes it one.
#[test]
fn a_primary_restored_from_records_chains_its_meta_record_on_the_loaded_tag() {
    let (mut rng, _, _, mut primary, mut ps) = phone("review 40b: primary restore");
    primary.invite(&mut rng, T0).unwrap();
    let invited = primary.take_changes(&mut rng);
    ps.write(&invited).unwrap();
    let e = invited.epoch();

    let mut restored = ps.primary().into_restored();
    assert!(restored.needs_resync());
    let unit = restored.take_changes(&mut rng);
    assert_eq!(unit.records().len(), 1);
    assert_eq!(unit.records()[0].key(), PRIMARY_META);
    assert_eq!(
        (unit.base_epoch(), unit.base_tag(), unit.epoch()),
        (Some(e), Some(invited.tag()), e + 1)
    );
    let (mut stale, was_stale) = Primary::restore_from_records(ps.pairs(), e + 5).unwrap();
    assert!(was_stale);
    let stale_unit = stale.take_changes(&mut rng);
    assert_eq!(
        (stale_unit.base_epoch(), stale_unit.epoch()),
        (Some(e), e + 6)
    );
    assert_ne!(stale_unit.tag(), unit.tag());

    let mut live = ps.primary();
    live.renew(Timestamp(T0.0 + 1)).unwrap();
    let live_unit = live.take_changes(&mut rng);
    assert_eq!(ps.write(&unit), Ok(()));
    assert_eq!(ps.write(&live_unit), Err(Refused::Gap));
    assert_eq!(ps.write(&stale_unit), Err(Refused::Gap));
    assert!(ps.primary().needs_resync());
}
