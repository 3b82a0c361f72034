//! Review 36, by a helper briefed as a cryptographer, of the change that holds a group's
//! members as a sorted slice (`fanout/members.rs`), boxes a group's outbound sender key and
//! builds the groups map from a sorted vector at load. What it pins: membership decided by
//! bisection gives the set's answer whatever order and repeats the app gives, before and after
//! a restart, among many accounts on both sides of the one asked for; removing a member drops
//! its sender key; a members record out of order, repeated, over its bound, truncated or with
//! trailing bytes is a typed error; outbound and ledger records that name a group with no
//! members record, or another group, are refused; a history offer's membership still checks
//! every key and its order at every position. One finding (pre-existing, not of this change,
//! fixed): a group set above `MAX_GROUP_MEMBERS` was held and written, and then the device's
//! records and backups no longer loaded.

mod support;

use std::collections::BTreeMap;

use rand_core::Rng;
use ratchetry::devices::{AccountKey, AccountKeyPair, DeviceAddress};
use ratchetry::fanout::{Device, MAX_GROUP_MEMBERS, Received};
use ratchetry::group::GroupId;
use ratchetry::history::{HistoryOffer, HistorySealer};
use ratchetry::testing::SeededRng;
use ratchetry::testing::hooks::seal_raw_payload;
use ratchetry::{DecodeError, Error, FanoutError};
use support::{World, body};

const ROOM: GroupId = GroupId([0x36; 32]);
/// The time a hand-built offer says it was made (PROTOCOL.md 18.2).
const OFFERED_AT: u64 = 1_700_000_000_000;
const GROUP_MEMBERS: u8 = 0x09;
const OUTBOUND: u8 = 0x0a;
const LEDGER: u8 = 0x0b;

fn decoys(rng: &mut SeededRng, n: usize) -> Vec<AccountKey> {
    (0..n)
        .map(|_| AccountKeyPair::generate(rng).public())
        .collect()
}

fn shuffle<T>(rng: &mut SeededRng, v: &mut [T]) {
    for i in (1..v.len()).rev() {
        let j = rng.next_u32() as usize % (i + 1);
        v.swap(i, j);
    }
}

fn sorted_unique(v: &[AccountKey]) -> Vec<AccountKey> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

fn members_of(d: &Device, group: GroupId) -> Option<Vec<AccountKey>> {
    d.group_members(group).map(|m| m.collect())
}

/// A device's records, by key.
type Records = BTreeMap<Vec<u8>, Vec<u8>>;

fn load(records: &Records) -> Result<Device, DecodeError> {
    Device::from_records(records.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
}

fn members_key(group: GroupId) -> Vec<u8> {
    [&[GROUP_MEMBERS][..], &group.0].concat()
}

fn not_a_member(group: GroupId, account: AccountKey) -> Error {
    FanoutError::NotAMember { group, account }.into()
}

/// The members the app sets, in any order, repeated, with the device's own account among
/// them, are held ascending and once each, without the own account; they come back the same
/// from the records and from whole-state bytes; and the same set given again in another order
/// changes nothing.
#[test]
fn members_given_in_any_order_with_repeats_are_held_ascending_once_and_reload_the_same() {
    let mut w = World::new("review 36 any order");
    let alice = w.account(0);
    w.publish_all();
    let a1 = World::addr(alice, 1);
    let pool = decoys(&mut w.rng, 48);
    for round in 0..24u8 {
        let group = GroupId([round; 32]);
        let take = 1 + w.rng.next_u32() as usize % pool.len();
        let mut given: Vec<AccountKey> = pool[..take].to_vec();
        // Repeats, and the own account, anywhere.
        for _ in 0..(w.rng.next_u32() % 6) {
            let i = w.rng.next_u32() as usize % given.len();
            given.push(given[i]);
        }
        given.push(alice);
        shuffle(&mut w.rng, &mut given);
        w.device(a1).set_group_members(group, &given).unwrap();
        w.persist(a1);
        let expected = sorted_unique(&pool[..take]);
        assert_eq!(members_of(w.device(a1), group), Some(expected.clone()));
        // The same set, reordered and repeated differently: nothing changes.
        let mut again = given.clone();
        again.extend_from_slice(&pool[..take.min(3)]);
        shuffle(&mut w.rng, &mut again);
        w.device(a1).set_group_members(group, &again).unwrap();
        assert!(!w.device(a1).has_changes(), "round {round}");
    }
    let bytes = w.device(a1).to_bytes();
    let restored = Device::from_bytes(&bytes).unwrap();
    w.restart(a1);
    for round in 0..24u8 {
        let group = GroupId([round; 32]);
        let held = members_of(w.device(a1), group).unwrap();
        assert!(held.windows(2).all(|p| p[0] < p[1]));
        assert!(!held.contains(&alice));
        assert_eq!(members_of(&restored, group), Some(held));
    }
    assert_eq!(*w.device(a1).to_bytes(), *bytes);
}

/// Alice's group holds Bob and many other accounts (so that the bisection runs among accounts
/// on both sides of Carol's), never Carol: Carol's sender key and group message are refused as
/// `NotAMember`, also after a restart. Once Alice adds her (in another order, repeated) the same
/// envelopes read; once Alice removes her again, Carol's key is dropped (what `without` finds)
/// and her messages are refused; added once more, her old key is not back.
#[test]
fn membership_is_decided_exactly_among_many_accounts_before_and_after_a_restart() {
    let mut w = World::new("review 36 bisection");
    let alice = w.account(1);
    let bob = w.account(0);
    let carol = w.account(0);
    w.publish_all();
    let (a1, a2, b1, c1) = (
        World::addr(alice, 1),
        World::addr(alice, 2),
        World::addr(bob, 1),
        World::addr(carol, 1),
    );
    let others = decoys(&mut w.rng, 200);
    let below = others.iter().filter(|k| **k < carol).count();
    assert!(
        below > 20 && others.len() - below > 20,
        "accounts on both sides"
    );
    let mut without_carol: Vec<AccountKey> = others.clone();
    without_carol.extend([bob, alice, bob]);
    shuffle(&mut w.rng, &mut without_carol);
    for d in [a1, a2] {
        w.device(d).set_group_members(ROOM, &without_carol).unwrap();
        w.persist(d);
    }
    w.device(b1)
        .set_group_members(ROOM, &[alice, bob, carol])
        .unwrap();
    w.persist(b1);
    w.device(c1)
        .set_group_members(ROOM, &[alice, bob, carol])
        .unwrap();
    w.persist(c1);
    let o = w.send_group(c1, ROOM, b"let me in");
    let group_envelope = o.group.as_ref().unwrap().0.clone();
    for d in [a1, a2] {
        let key = World::envelope_to(&o, d);
        w.refused(d, &key, not_a_member(ROOM, carol));
        w.refused(d, &group_envelope, not_a_member(ROOM, carol));
    }
    // Bob (who lists her) reads her.
    let key = World::envelope_to(&o, b1);
    w.receive(b1, &key).unwrap();
    assert_eq!(
        body(&w.receive(b1, &group_envelope).unwrap()),
        Some(&b"let me in"[..])
    );
    // From the records, the same answers.
    w.restart(a1);
    let key = World::envelope_to(&o, a1);
    w.refused(a1, &key, not_a_member(ROOM, carol));
    w.refused(a1, &group_envelope, not_a_member(ROOM, carol));
    // Alice adds her; the envelopes held back now read (after a restart too).
    let mut with_carol = without_carol.clone();
    with_carol.extend([carol, carol]);
    shuffle(&mut w.rng, &mut with_carol);
    w.device(a1).set_group_members(ROOM, &with_carol).unwrap();
    w.persist(a1);
    w.restart(a1);
    assert!(matches!(
        w.receive(a1, &key).unwrap(),
        Received::SenderKey { from, group: ROOM, .. } if from == c1
    ));
    assert_eq!(
        body(&w.receive(a1, &group_envelope).unwrap()),
        Some(&b"let me in"[..])
    );
    // Alice removes her: her key goes, and her next message is refused.
    w.device(a1)
        .set_group_members(ROOM, &without_carol)
        .unwrap();
    w.persist(a1);
    let o2 = w.send_group(c1, ROOM, b"still here?");
    let second = o2.group.as_ref().unwrap().0.clone();
    assert!(o2.envelopes.iter().all(|(to, _)| *to != a1), "no new key");
    w.refused(a1, &second, not_a_member(ROOM, carol));
    // Added back, her old key was dropped: the message waits for a key.
    w.device(a1).set_group_members(ROOM, &with_carol).unwrap();
    w.persist(a1);
    let now = w.now;
    let err = w.device(a1).receive(now, &second).unwrap_err();
    assert!(
        matches!(err, Error::Fanout(FanoutError::SenderKeyMissing { from, .. }) if from == c1),
        "{err:?}"
    );
}

/// Alice's phone, in ROOM with Bob and 30 other accounts, having sent to it (so an outbound
/// record and ledger records exist), and in two more groups around ROOM's id (one sent to).
fn sent_groups(label: &str) -> (World, DeviceAddress, Vec<AccountKey>) {
    let mut w = World::new(label);
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let a1 = World::addr(alice, 1);
    let mut members = decoys(&mut w.rng, 30);
    members.push(bob);
    for g in [GroupId([0x35; 32]), ROOM, GroupId([0x37; 32])] {
        w.set_members(g, &[alice, bob]);
    }
    // ROOM's other accounts have no lists: Alice sends to ROOM with Bob alone, then sets
    // them all.
    let o = w.send_group(a1, ROOM, b"room");
    w.deliver_ok(&o);
    w.device(a1).set_group_members(ROOM, &members).unwrap();
    w.persist(a1);
    let o = w.send_group(a1, GroupId([0x37; 32]), b"after");
    w.deliver_ok(&o);
    (w, a1, sorted_unique(&members))
}

/// A members record is refused with a typed error, never a panic, when its keys are out of
/// order or repeated at any position, its count is over the bound or beyond its bytes, or
/// bytes trail it; an empty one, and one of exactly the bound (keys not checked: the
/// device's own record), load.
#[test]
fn malformed_members_records_are_typed_errors() {
    let (w, a1, members) = sent_groups("review 36 records");
    let store = &w.stores[&a1];
    let key = members_key(ROOM);
    let good = store.0[&key].clone();
    assert_eq!(good.len(), 4 + 32 * members.len());
    assert!(load(&store.0).is_ok());
    let with = |value: Vec<u8>| {
        let mut records = store.0.clone();
        records.insert(key.clone(), value);
        load(&records).map(|_| ())
    };
    let n = members.len();
    let at = |i: usize| 4 + 32 * i;
    for i in 0..n - 1 {
        // Two neighbours swapped.
        let mut v = good.clone();
        let (a, b) = (
            v[at(i)..at(i + 1)].to_vec(),
            v[at(i + 1)..at(i + 2)].to_vec(),
        );
        v[at(i)..at(i + 1)].copy_from_slice(&b);
        v[at(i + 1)..at(i + 2)].copy_from_slice(&a);
        assert_eq!(with(v), Err(DecodeError::InvalidValue), "swap at {i}");
        // One repeated.
        let mut v = good.clone();
        v.copy_within(at(i)..at(i + 1), at(i + 1));
        assert_eq!(with(v), Err(DecodeError::InvalidValue), "repeat at {i}");
    }
    let count = |c: u32| [&c.to_be_bytes()[..], &good[4..]].concat();
    assert_eq!(
        with(count(MAX_GROUP_MEMBERS as u32 + 1)),
        Err(DecodeError::InvalidValue)
    );
    assert_eq!(with(count(u32::MAX)), Err(DecodeError::InvalidValue));
    assert_eq!(with(count(n as u32 + 1)), Err(DecodeError::Truncated));
    assert_eq!(
        with(count(MAX_GROUP_MEMBERS as u32)),
        Err(DecodeError::Truncated)
    );
    assert_eq!(with(count(n as u32 - 1)), Err(DecodeError::TrailingBytes));
    assert_eq!(
        with(good[..good.len() - 1].to_vec()),
        Err(DecodeError::Truncated)
    );
    assert_eq!(
        with([&good[..], &[0]].concat()),
        Err(DecodeError::TrailingBytes)
    );
    assert_eq!(with(Vec::new()), Err(DecodeError::Truncated));
    assert_eq!(with(vec![0, 0]), Err(DecodeError::Truncated));
    // Empty: a group without other members.
    let empty = {
        let mut records = store.0.clone();
        records.insert(
            members_key(GroupId([0x35; 32])),
            0u32.to_be_bytes().to_vec(),
        );
        load(&records).unwrap()
    };
    assert_eq!(members_of(&empty, GroupId([0x35; 32])), Some(vec![]));
    // Exactly the bound, ascending: loads, and reads back as written.
    let full: Vec<[u8; 32]> = (0..MAX_GROUP_MEMBERS as u32)
        .map(|i| {
            let mut k = [0x11u8; 32];
            k[..4].copy_from_slice(&i.to_be_bytes());
            k
        })
        .collect();
    let mut value = (MAX_GROUP_MEMBERS as u32).to_be_bytes().to_vec();
    full.iter().for_each(|k| value.extend_from_slice(k));
    let mut records = store.0.clone();
    records.insert(members_key(GroupId([0x35; 32])), value);
    let d = load(&records).unwrap();
    let held: Vec<[u8; 32]> = d
        .group_members(GroupId([0x35; 32]))
        .unwrap()
        .map(|k| k.to_bytes())
        .collect();
    assert_eq!(held, full);
}

/// A members record whose keys are out of order and whose count runs past its bytes: refused,
/// now as `Truncated` (the slice is taken before the order is checked). At 8f55b34 the keys
/// were read one by one and the same record was `InvalidValue`: a change of the error a
/// corrupt record of the device's own store reports, not of what loads (informational).
#[test]
fn a_members_record_out_of_order_and_truncated_is_refused_as_truncated() {
    let (w, a1, members) = sent_groups("review 36 error order");
    let store = &w.stores[&a1];
    let key = members_key(ROOM);
    let mut v = store.0[&key].clone();
    v.copy_within(4..36, 36); // the first two keys alike
    v[..4].copy_from_slice(&(members.len() as u32 + 1).to_be_bytes());
    let mut records = store.0.clone();
    records.insert(key, v);
    assert_eq!(load(&records).map(|_| ()), Err(DecodeError::Truncated));
}

/// Outbound and ledger records naming a group without a members record, or another group, are
/// refused, with the groups on both sides of the one asked for; records handed over in any
/// order load to the same state.
#[test]
fn outbound_and_ledger_records_must_name_a_held_group() {
    let (w, a1, _) = sent_groups("review 36 load");
    let store = &w.stores[&a1].0;
    let reference = load(store).unwrap().to_bytes();
    let kind =
        |k: u8| -> Vec<Vec<u8>> { store.keys().filter(|key| key[0] == k).cloned().collect() };
    let outbound = kind(OUTBOUND);
    let ledgers = kind(LEDGER);
    assert_eq!(outbound.len(), 2);
    assert!(ledgers.iter().any(|k| k[1..33] == ROOM.0));
    let moved = |key: &[u8], group: GroupId| [&key[..1], &group.0, &key[33..]].concat();
    let refused = |edit: &dyn Fn(&mut Records)| {
        let mut records = store.clone();
        edit(&mut records);
        load(&records).map(|_| ())
    };
    let invalid = Err(DecodeError::InvalidValue);
    // ROOM's members record gone: its outbound record names no group.
    assert_eq!(refused(&|r| drop(r.remove(&members_key(ROOM)))), invalid);
    // ROOM's members record moved to a group between ROOM and its neighbour.
    let between = GroupId({
        let mut g = ROOM.0;
        g[31] = 0x37;
        g
    });
    assert_eq!(
        refused(&|r| {
            let v = r.remove(&members_key(ROOM)).unwrap();
            r.insert(members_key(between), v);
        }),
        invalid
    );
    // ROOM's outbound record gone: its ledger records name no sender key.
    let room_outbound = [&[OUTBOUND][..], &ROOM.0].concat();
    assert_eq!(refused(&|r| drop(r.remove(&room_outbound))), invalid);
    // ROOM's outbound record under its neighbour below (members, no outbound): another group.
    assert_eq!(
        refused(&|r| {
            let v = r.remove(&room_outbound).unwrap();
            r.insert(moved(&room_outbound, GroupId([0x35; 32])), v);
        }),
        invalid
    );
    // ROOM's ledger records under the neighbour below (no outbound there).
    assert_eq!(
        refused(&|r| {
            for k in ledgers.iter().filter(|k| k[1..33] == ROOM.0) {
                let v = r.remove(k).unwrap();
                r.insert(moved(k, GroupId([0x35; 32])), v);
            }
        }),
        invalid
    );
    // A ledger record of a generation the outbound record does not name.
    assert_eq!(
        refused(&|r| {
            let k = ledgers.iter().find(|k| k[1..33] == ROOM.0).unwrap();
            let v = r.remove(k).unwrap();
            let mut k = k.clone();
            k[33] ^= 0x80;
            r.insert(k, v);
        }),
        invalid
    );
    // A group with a members record alone, and none at all, load.
    assert!(
        refused(&|r| {
            r.insert(
                members_key(GroupId([0xff; 32])),
                0u32.to_be_bytes().to_vec(),
            );
        })
        .is_ok()
    );
    // In reverse order, the same state.
    let reversed: Vec<(&[u8], &[u8])> = store
        .iter()
        .rev()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    let d = Device::from_records(reversed).unwrap();
    assert_eq!(*d.to_bytes(), *reference);
    // A key given twice (out of order) is refused.
    let mut twice: Vec<(&[u8], &[u8])> = store
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    let mk = members_key(ROOM);
    twice.insert(0, (mk.as_slice(), store[&mk].as_slice()));
    assert_eq!(Device::from_records(twice).map(|_| ()), invalid);
}

fn offer(w: &mut World) -> HistoryOffer {
    let mut sealer = HistorySealer::new(&mut w.rng);
    let _ = sealer.push(b"history");
    sealer.finish().1
}

/// A membership payload (PROTOCOL.md 18.2) from raw member bytes.
fn payload(offer: &HistoryOffer, groups: &[(GroupId, u32, Vec<[u8; 32]>)]) -> Vec<u8> {
    let offer = offer.to_bytes();
    let mut out = vec![0x02, 0x0c, 0x0b];
    out.extend_from_slice(&OFFERED_AT.to_be_bytes());
    out.extend_from_slice(&(offer.len() as u32).to_be_bytes());
    out.extend_from_slice(&offer);
    out.extend_from_slice(&(groups.len() as u32).to_be_bytes());
    for (g, count, members) in groups {
        out.extend_from_slice(&g.0);
        out.extend_from_slice(&count.to_be_bytes());
        for m in members {
            out.extend_from_slice(m);
        }
    }
    out
}

/// A history offer's membership is read key by key and checked at every position: a key out
/// of order or repeated after valid ones, an invalid key after valid ones, a count beyond the
/// bytes, are refused with typed errors and change nothing. A well-formed one installs its
/// members, and the companion then decides membership by them: a member's traffic reads, that
/// of an account between two members is refused.
#[test]
fn a_history_offers_membership_is_checked_at_every_position() {
    let mut w = World::new("review 36 offer");
    let alice = w.account(0);
    let bob = w.account(0);
    let carol = w.account(0);
    w.publish_all();
    let desktop = w.link(&alice);
    w.publish_all();
    let phone = World::addr(alice, 1);
    let hi = w.send(phone, alice, b"warm up");
    w.deliver_ok(&hi);
    let offer = offer(&mut w);
    // Bob and accounts on both sides of Carol, never Carol.
    let mut keys = decoys(&mut w.rng, 40);
    keys.push(bob);
    let keys = sorted_unique(&keys);
    assert!(keys[0] < carol && carol < keys[keys.len() - 1]);
    let raw: Vec<[u8; 32]> = keys.iter().map(|k| k.to_bytes()).collect();
    let n = raw.len() as u32;
    let mut invalid_key = [0u8; 32];
    invalid_key[0] = 1; // the identity point: small order
    let mut cases: Vec<(String, Vec<u8>, Error)> = Vec::new();
    for i in [1, raw.len() / 2, raw.len() - 1] {
        let mut v = raw.clone();
        v.swap(i - 1, i);
        cases.push((
            format!("swap at {i}"),
            payload(&offer, &[(ROOM, n, v)]),
            DecodeError::InvalidValue.into(),
        ));
        let mut v = raw.clone();
        v[i] = v[i - 1];
        cases.push((
            format!("repeat at {i}"),
            payload(&offer, &[(ROOM, n, v)]),
            DecodeError::InvalidValue.into(),
        ));
        let mut v = raw.clone();
        v[i] = invalid_key;
        cases.push((
            format!("invalid key at {i}"),
            payload(&offer, &[(ROOM, n, v)]),
            DecodeError::InvalidKey.into(),
        ));
    }
    cases.push((
        "count beyond the bytes".into(),
        payload(&offer, &[(ROOM, n + 1, raw.clone())]),
        DecodeError::Truncated.into(),
    ));
    cases.push((
        "count over the bound".into(),
        payload(&offer, &[(ROOM, MAX_GROUP_MEMBERS as u32 + 1, raw.clone())]),
        DecodeError::InvalidValue.into(),
    ));
    cases.push((
        "the receiver's account among many".into(),
        payload(
            &offer,
            &[(ROOM, n + 1, {
                let mut v = raw.clone();
                v.push(alice.to_bytes());
                v.sort_unstable();
                v
            })],
        ),
        DecodeError::InvalidValue.into(),
    ));
    for (what, plaintext, expected) in cases {
        let now = w.now;
        let envelope = seal_raw_payload(
            w.devices.get_mut(&phone).unwrap(),
            &mut w.rng,
            now,
            desktop,
            &plaintext,
        )
        .unwrap();
        w.persist(phone);
        let d = w.device(desktop);
        let before = d.to_bytes();
        assert_eq!(d.receive(now, &envelope).err(), Some(expected), "{what}");
        assert_eq!(*before, *d.to_bytes(), "{what} changed the desktop");
        assert!(!d.has_changes(), "{what} left changes");
    }
    // Well formed: installed.
    let now = w.now;
    let good = payload(&offer, &[(ROOM, n, raw.clone())]);
    let envelope = seal_raw_payload(
        w.devices.get_mut(&phone).unwrap(),
        &mut w.rng,
        now,
        desktop,
        &good,
    )
    .unwrap();
    w.persist(phone);
    let got = w.receive(desktop, &envelope).unwrap();
    assert!(matches!(&got, Received::HistoryOffer { groups, .. } if groups == &[ROOM]));
    assert_eq!(members_of(w.device(desktop), ROOM), Some(keys.clone()));
    // Carol (between two installed members) is refused; Bob is read.
    let (b1, c1) = (World::addr(bob, 1), World::addr(carol, 1));
    for d in [b1, c1] {
        w.device(d)
            .set_group_members(ROOM, &[alice, bob, carol])
            .unwrap();
        w.persist(d);
    }
    let from_carol = w.send_group(c1, ROOM, b"carol");
    w.refused(
        desktop,
        &World::envelope_to(&from_carol, desktop),
        not_a_member(ROOM, carol),
    );
    w.restart(desktop);
    w.refused(
        desktop,
        &World::envelope_to(&from_carol, desktop),
        not_a_member(ROOM, carol),
    );
    let from_bob = w.send_group(b1, ROOM, b"bob");
    w.receive(desktop, &World::envelope_to(&from_bob, desktop))
        .unwrap();
    let group_envelope = &from_bob.group.as_ref().unwrap().0;
    assert_eq!(
        body(&w.receive(desktop, group_envelope).unwrap()),
        Some(&b"bob"[..])
    );
}

/// Found by this review (pre-existing, the same at 8f55b34): `set_group_members` took any
/// number of accounts, but a members record decodes only up to `MAX_GROUP_MEMBERS`, so one
/// account more was held and written, and from then on neither the device's records nor its
/// backup loaded: a restart or a restore lost the device. Now the set is `TooManyMembers` and
/// nothing changes; at the bound (the device's own account and repeats not counted) it is held,
/// written, and loads again from records and from a backup.
#[test]
fn a_group_set_above_the_bound_is_refused_and_one_at_the_bound_loads() {
    let mut w = World::new("review 36 over the bound");
    let alice = w.account(0);
    w.publish_all();
    let a1 = World::addr(alice, 1);
    let mut accounts = decoys(&mut w.rng, MAX_GROUP_MEMBERS + 1);
    // A group already set, which the refused call must leave as it was.
    w.device(a1)
        .set_group_members(ROOM, &accounts[..3])
        .unwrap();
    w.persist(a1);
    let before = w.device(a1).to_bytes();
    assert_eq!(
        w.device(a1).set_group_members(ROOM, &accounts),
        Err(Error::Fanout(FanoutError::TooManyMembers {
            group: ROOM,
            members: MAX_GROUP_MEMBERS + 1,
        }))
    );
    assert_eq!(
        *w.device(a1).to_bytes(),
        *before,
        "a refused set changes nothing"
    );
    let unit = w.devices.get_mut(&a1).unwrap().take_changes(&mut w.rng);
    assert!(unit.is_empty(), "and marks nothing");
    // At the bound, with this device's own account and a repeat among them.
    accounts.pop();
    accounts.push(alice);
    accounts.push(accounts[0]);
    w.device(a1).set_group_members(ROOM, &accounts).unwrap();
    w.persist(a1);
    let held = sorted_unique(&accounts[..MAX_GROUP_MEMBERS]);
    assert_eq!(members_of(w.device(a1), ROOM), Some(held.clone()));
    let from_records = load(&w.stores[&a1].0).unwrap();
    assert_eq!(members_of(&from_records, ROOM), Some(held.clone()));
    let from_backup = Device::from_bytes(&w.device(a1).to_bytes()).unwrap();
    assert_eq!(members_of(&from_backup, ROOM), Some(held));
}
