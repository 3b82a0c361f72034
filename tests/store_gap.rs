//! Units chain (PROTOCOL.md 19, 15.4): each unit a state yields starts from the epoch the unit
//! before it ended at (`base_epoch`), or from the epoch the state was loaded at from records,
//! so a store can tell a unit that was never written (a gap) from the next one. A unit that
//! replaces all starts from nothing (`None`). An empty unit starts and ends at the same epoch,
//! so leaving it unwritten breaks no chain.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

mod support;

use std::collections::BTreeMap;

use ratchetry::devices::{DeviceAddress, Primary, PrimaryChanges, PrimaryPolicy};
use ratchetry::fanout::{Device, Outgoing, StateChanges};
use ratchetry::group::GroupId;
use ratchetry::{IdentityKeyPair, Timestamp};
use support::{T0, World};

/// Takes `a`'s unit and writes it to its store.
fn take(w: &mut World, a: DeviceAddress) -> StateChanges {
    let unit = w.take(a);
    w.stores.get_mut(&a).unwrap().apply(&unit);
    unit
}

/// `unit` starts at `base` and is the next link of the chain: it does not replace all, and
/// ends at the epoch its state holds now.
fn follows(unit: &StateChanges, base: u64, state_epoch: u64) {
    assert!(!unit.replaces_all());
    assert_eq!(unit.base_epoch(), Some(base));
    assert_eq!(unit.epoch(), state_epoch);
}

#[test]
fn each_device_unit_starts_where_the_one_before_it_ended() {
    let (mut w, alice, bob, a1, b1) = World::two_talking("store gap: device chain");
    // Every unit so far was taken (and written) by the world's helpers.
    let mut last = w.device(b1).state_epoch();
    let group = GroupId([7; 32]);
    let now = w.now;
    for step in 0..7 {
        match step {
            0 => {
                let o = w.send(a1, bob, b"read by Bob");
                let e = World::envelope_to(&o, b1);
                w.device(b1).receive(now, &e).unwrap();
            }
            1 => {
                let World { rng, devices, .. } = &mut w;
                let d = devices.get_mut(&b1).unwrap();
                let Outgoing::Ready(_) = d.send(rng, now, &alice, b"sent by Bob").unwrap() else {
                    panic!("Bob holds Alice's list and session")
                };
            }
            2 => w
                .device(b1)
                .set_group_members(group, &[alice, bob])
                .unwrap(),
            // The same members: nothing changes, and the unit is empty.
            3 => w
                .device(b1)
                .set_group_members(group, &[alice, bob])
                .unwrap(),
            4 => {
                let World { rng, devices, .. } = &mut w;
                let _ = devices
                    .get_mut(&b1)
                    .unwrap()
                    .generate_one_time_prekeys(rng, now, 2);
            }
            5 => {
                let World { rng, devices, .. } = &mut w;
                devices.get_mut(&b1).unwrap().rotate_signed_prekey(rng, now);
            }
            _ => w.device(b1).forget_group(group),
        }
        let unit = take(&mut w, b1);
        let epoch = w.device(b1).state_epoch();
        follows(&unit, last, epoch);
        assert_eq!(unit.is_empty(), step == 3, "step {step}");
        assert_eq!(unit.epoch() > last, step != 3, "step {step}");
        last = unit.epoch();
    }
}

#[test]
fn an_empty_device_unit_starts_and_ends_at_the_epoch_before_it() {
    let (mut w, _, bob, a1, b1) = World::two_talking("store gap: empty unit");
    let last = w.device(b1).state_epoch();
    let empty = w.take(b1);
    assert!(empty.is_empty());
    follows(&empty, last, last);
    // Left unwritten, it leaves no gap: the next unit starts where the store is.
    let o = w.send(a1, bob, b"after an empty unit");
    let now = w.now;
    w.device(b1)
        .receive(now, &World::envelope_to(&o, b1))
        .unwrap();
    let unit = take(&mut w, b1);
    follows(&unit, last, last + 1);
    // Taken twice in a row, the second is empty and starts at the first's end.
    let again = w.take(b1);
    follows(&again, unit.epoch(), unit.epoch());
    assert!(again.is_empty());
}

#[test]
fn a_new_device_and_whole_state_loads_replace_all_and_the_next_unit_starts_there() {
    let mut w = World::new("store gap: device replaces all");
    let rng = &mut w.rng;
    let phone = IdentityKeyPair::generate(rng);
    let primary = Primary::new(rng, &phone, T0, PrimaryPolicy::default());
    let list = primary.device_list().clone();
    let (mut device, _) = Device::new(
        rng,
        T0,
        phone,
        ratchetry::devices::PRIMARY_DEVICE,
        list,
        2,
        Default::default(),
    )
    .unwrap();
    let first = device.take_changes(rng);
    assert!(first.replaces_all());
    assert_eq!(first.base_epoch(), None);
    let _ = device.generate_one_time_prekeys(rng, T0, 1);
    let last = device.take_changes(rng);
    follows(&last, 0, 1);

    let bytes = device.to_bytes();
    let restored_at = Timestamp(T0.0 + 1);
    let whole: [(&str, Device); 5] = [
        ("from_bytes", Device::from_bytes(&bytes).unwrap()),
        (
            "restore, current",
            Device::restore(&bytes, 1, T0).unwrap().0,
        ),
        ("restore, stale", Device::restore(&bytes, 9, T0).unwrap().0),
        (
            "restore_from_backup",
            Device::restore_from_backup(&bytes, restored_at).unwrap(),
        ),
        (
            "into_restored",
            Device::from_records(
                first
                    .records()
                    .iter()
                    .map(|r| (r.key(), r.value().unwrap())),
            )
            .unwrap()
            .into_restored(restored_at),
        ),
    ];
    for (how, mut d) in whole {
        let unit = d.take_changes(rng);
        // Loaded as it was, it starts where the bytes were taken; restored, from nothing.
        let base = matches!(how, "from_bytes" | "restore, current").then_some((1, last.tag()));
        assert_eq!(unit.base_epoch().zip(unit.base_tag()), base, "{how}");
        assert!(unit.replaces_all(), "{how}");
        assert_eq!(unit.epoch(), d.state_epoch(), "{how}");
        let _ = d.generate_one_time_prekeys(rng, restored_at, 1);
        follows(&d.take_changes(rng), unit.epoch(), d.state_epoch());
    }
}

#[test]
fn a_device_loaded_from_records_starts_its_next_unit_at_the_stored_epoch() {
    let (mut w, _, bob, a1, b1) = World::two_talking("store gap: loaded");
    let stored = w.device(b1).state_epoch();
    assert!(stored > 0);
    w.restart(b1);
    let empty = w.take(b1);
    follows(&empty, stored, stored);
    let o = w.send(a1, bob, b"after the restart");
    w.restart(b1);
    let now = w.now;
    w.device(b1)
        .receive(now, &World::envelope_to(&o, b1))
        .unwrap();
    follows(&take(&mut w, b1), stored, stored + 1);
}

#[test]
fn each_primary_unit_starts_where_the_one_before_it_ended() {
    let mut w = World::new("store gap: primary chain");
    let rng = &mut w.rng;
    let phone = IdentityKeyPair::generate(rng);
    let mut primary = Primary::new(rng, &phone, T0, PrimaryPolicy::default());
    let first = primary.take_changes(rng);
    assert_eq!(first.base_epoch(), None);
    assert!(first.replaces_all());
    let (mut last, mut last_tag) = (first.epoch(), first.tag());
    // The records as a store holds them.
    let mut stored = BTreeMap::new();
    let mut write = |unit: &PrimaryChanges| {
        for r in unit.records() {
            match r.value() {
                Some(v) => stored.insert(r.key().to_vec(), v.to_vec()),
                None => stored.remove(r.key()),
            };
        }
    };
    write(&first);
    let primary_follows = |unit: &PrimaryChanges, base: u64, epoch: u64| {
        assert!(!unit.replaces_all());
        assert_eq!((unit.base_epoch(), unit.epoch()), (Some(base), epoch));
    };
    for step in 0..4 {
        match step {
            0 | 2 => drop(primary.invite(rng, T0).unwrap()),
            1 => drop(primary.renew(T0).unwrap()),
            // Nothing: an empty unit, at the epoch before it.
            _ => {}
        }
        let unit = primary.take_changes(rng);
        write(&unit);
        primary_follows(&unit, last, primary.state_epoch());
        assert_eq!(unit.is_empty(), step == 3);
        last = unit.epoch();
        last_tag = unit.tag();
    }

    // Loaded from records: the next unit starts at the epoch loaded, stale restores and
    // restores of the store included (their epoch moves on; the store still holds the one
    // loaded).
    let records = || stored.iter().map(|(k, v)| (k.as_slice(), v.as_slice()));
    let mut loaded = Primary::from_records(records()).unwrap();
    primary_follows(&loaded.take_changes(rng), last, last);
    let (mut stale, was_stale) = Primary::restore_from_records(records(), last + 5).unwrap();
    assert!(was_stale);
    primary_follows(&stale.take_changes(rng), last, last + 6);
    let (mut current, was_stale) = Primary::restore_from_records(records(), last).unwrap();
    assert!(!was_stale);
    primary_follows(&current.take_changes(rng), last, last);
    let mut restored = Primary::from_records(records()).unwrap().into_restored();
    primary_follows(&restored.take_changes(rng), last, last + 1);

    // Loaded whole: the unit replaces all, and the next starts where it ended. Loaded as it
    // was, it starts from the bytes' epoch and tag; restored, from nothing.
    let bytes = primary.to_bytes();
    for (how, mut p, base) in [
        (
            "from_bytes",
            Primary::from_bytes(&bytes).unwrap(),
            Some((last, last_tag)),
        ),
        (
            "restore, current",
            Primary::restore(&bytes, last).unwrap().0,
            Some((last, last_tag)),
        ),
        (
            "restore",
            Primary::restore(&bytes, last + 3).unwrap().0,
            None,
        ),
        (
            "restore_from_backup",
            Primary::restore_from_backup(&bytes).unwrap(),
            None,
        ),
    ] {
        let unit = p.take_changes(rng);
        assert!(unit.replaces_all(), "{how}");
        assert_eq!(unit.base_epoch().zip(unit.base_tag()), base, "{how}");
        let epoch = unit.epoch();
        let empty = p.take_changes(rng);
        primary_follows(&empty, epoch, epoch);
    }
}
