//! A group send that withholds the sender key from named member devices (PROTOCOL.md 18.5,
//! "Group, withholding"), and the withheld notices that name the generation withheld: one test
//! per rule, each failing if its rule is removed.

mod support;

use ratchetry::devices::{AccountKey, DeviceAddress};
use ratchetry::fanout::{Device, Outgoing, Received, RetryReason, WithheldReason};
use ratchetry::group::{GroupId, SenderKeyId};
use ratchetry::server::check_coverage;
use ratchetry::testing::{SeededRng, hooks};
use ratchetry::{DecodeError, Error, FanoutError};
use support::{World, body};

const G: GroupId = GroupId([39; 32]);

/// The generation a withheld notice names.
fn notice_key_id(r: &Result<Received, Error>) -> SenderKeyId {
    match r {
        Ok(Received::Withheld { key_id, .. }) => *key_id,
        other => panic!("not a withheld notice: {other:?}"),
    }
}

/// The generation of a group message a device lacks the key of.
fn missing_key_id(r: &Result<Received, Error>) -> u32 {
    match r {
        Err(Error::Fanout(FanoutError::SenderKeyMissing { key_id, .. })) => *key_id,
        other => panic!("not a missing key: {other:?}"),
    }
}

/// Alice, Bob and Carol, a phone each, published, all in `G`: their accounts and phones.
fn three_in_group(label: &str) -> (World, [AccountKey; 3], [DeviceAddress; 3]) {
    let (mut w, accounts, phones) = World::phones::<3>(label);
    w.set_members(G, &accounts);
    (w, accounts, phones)
}

/// The devices an outbox's pairwise envelopes go to.
fn pairwise(outbox: &ratchetry::fanout::Outbox) -> Vec<DeviceAddress> {
    outbox.envelopes.iter().map(|(to, _)| *to).collect()
}

/// Bob's laptop is withheld from: it gets the notice, not the key, and the group envelope
/// all the same, which the relay's coverage check wants (a send covers every listed device);
/// the other member devices read the message; the laptop's retry request for it is refused.
#[test]
fn a_withheld_device_gets_the_envelope_but_not_the_key_and_the_relay_accepts_the_send() {
    let mut w = World::new("withholding basic");
    let (alice, bob, carol) = (w.account(0), w.account(1), w.account(0));
    w.publish_all();
    w.set_members(G, &[alice, bob, carol]);
    let (a1, b1, b2, c1) = (
        World::addr(alice, 1),
        World::addr(bob, 1),
        World::addr(bob, 2),
        World::addr(carol, 1),
    );
    let withheld = [(b2, Some(WithheldReason::Unverified))];
    let o = w.send_group_withholding(a1, G, b"not for the laptop", &withheld);
    let mut expected = vec![b1, b2, c1];
    expected.sort();
    assert_eq!(
        pairwise(&o),
        expected,
        "keys and the notice, in address order"
    );
    let (envelope, recipients) = o.group.clone().unwrap();
    assert_eq!(*recipients, expected[..]);
    let lists: Vec<_> = w
        .primaries
        .iter()
        .map(|p| p.device_list().clone())
        .collect();
    let served = |a: &_| lists.iter().find(|l| l.account() == *a);
    let coverage = check_coverage(&a1, &o.recipients(), &o.coverage, served, w.now);
    assert_eq!(coverage, Ok(()));
    let notice = w.receive(b2, &World::envelope_to(&o, b2));
    for to in [b1, c1] {
        assert!(matches!(
            w.receive(to, &World::envelope_to(&o, to)),
            Ok(Received::SenderKey { key_id, .. }) if key_id == notice_key_id(&notice)
        ));
        let read = w.receive(to, &envelope).unwrap();
        assert_eq!(body(&read), Some(&b"not for the laptop"[..]));
    }
    w.refused(b2, &envelope, FanoutError::Withheld.into());
    let (to, request) = w
        .request_retry(b2, &envelope, RetryReason::SenderKeyMissing)
        .unwrap();
    assert_eq!(to, a1);
    assert_eq!(
        w.receive(a1, &request).err(),
        Some(FanoutError::NotEntitled.into())
    );
}

/// A withheld device that holds the current generation makes the key rotate, and the new
/// one goes to the others only; named without a reason, it is not told. It is never given
/// that generation: the next send that does not name it makes a new one, for every member
/// device.
#[test]
fn withholding_a_holder_rotates_and_a_later_send_rotates_again() {
    let (mut w, alice, bob, _) = World::group_sent("withholding holder", G, [0, 1]);
    let (a1, b1, b2) = (
        World::addr(alice, 1),
        World::addr(bob, 1),
        World::addr(bob, 2),
    );
    let o = w.send_group_withholding(a1, G, b"rotated", &[(b1, None)]);
    assert_eq!(
        pairwise(&o),
        [b2],
        "the new key to the laptop, nothing to the phone"
    );
    let (envelope, _) = o.group.clone().unwrap();
    let key = w.receive(b2, &World::envelope_to(&o, b2)).unwrap();
    let Received::SenderKey { key_id, .. } = key else {
        panic!("{key:?}")
    };
    assert_eq!(
        body(&w.receive(b2, &envelope).unwrap()),
        Some(&b"rotated"[..])
    );
    let missing = w.receive(b1, &envelope);
    assert_eq!(missing_key_id(&missing), key_id.0, "a new generation");
    let again = w.send_group(a1, G, b"again");
    assert_eq!(pairwise(&again), [b1, b2]);
    let key = w.receive(b1, &World::envelope_to(&again, b1));
    assert!(matches!(key, Ok(Received::SenderKey { key_id: k, .. }) if k != key_id));
    let (again_envelope, _) = again.group.unwrap();
    assert_eq!(
        body(&w.receive(b1, &again_envelope).unwrap()),
        Some(&b"again"[..])
    );
    assert_eq!(missing_key_id(&w.receive(b1, &envelope)), key_id.0);
}

/// A device is told once per generation and reason: the same withholding again sends
/// nothing, also after a reload (the sender key's record keeps who was told what), another
/// reason tells it again, and so does a rotation.
#[test]
fn a_notice_goes_once_per_generation_and_reason() {
    let (mut w, [alice, bob, _], [a1, b1, c1]) = three_in_group("withholding once");
    let blocked = [(b1, Some(WithheldReason::Blocked))];
    let unverified = [(b1, Some(WithheldReason::Unverified))];
    let o = w.send_group_withholding(a1, G, b"1", &blocked);
    assert_eq!(pairwise(&o), sorted(&[b1, c1]));
    let generation = notice_key_id(&w.receive(b1, &World::envelope_to(&o, b1)));
    let o = w.send_group_withholding(a1, G, b"2", &blocked);
    assert!(o.envelopes.is_empty(), "told already");
    let o = w.send_group_withholding(a1, G, b"3", &unverified);
    assert_eq!(pairwise(&o), [b1], "another reason");
    assert!(matches!(
        w.receive(b1, &World::envelope_to(&o, b1)),
        Ok(Received::Withheld { reason: WithheldReason::Unverified, key_id, .. }) if key_id == generation
    ));
    w.restart(a1);
    let o = w.send_group_withholding(a1, G, b"4", &unverified);
    assert!(o.envelopes.is_empty(), "a load keeps who was told");
    w.set_members(G, &[alice, bob]);
    let o = w.send_group_withholding(a1, G, b"5", &unverified);
    assert_eq!(
        pairwise(&o),
        [b1],
        "a rotation: a new generation to tell of"
    );
    let rotated = notice_key_id(&w.receive(b1, &World::envelope_to(&o, b1)));
    assert_ne!(rotated, generation);
}

fn sorted(devices: &[DeviceAddress]) -> Vec<DeviceAddress> {
    let mut v = devices.to_vec();
    v.sort();
    v
}

/// A device named with a reason needs a session, for its notice, as a device given the key
/// does; one named without a reason needs nothing (its bundle may never verify), so it never
/// blocks the send.
#[test]
fn only_a_device_to_be_told_needs_a_session() {
    let mut w = World::new("withholding sessions");
    let (alice, bob) = (w.account(0), w.account(1));
    w.publish_all();
    w.set_members(G, &[alice, bob]);
    let (a1, b1, b2) = (
        World::addr(alice, 1),
        World::addr(bob, 1),
        World::addr(bob, 2),
    );
    let now = w.now;
    let mut rng = SeededRng::from_label("withholding sessions rng");
    let d = w.device(a1);
    for (reason, needs) in [
        (None, vec![b1]),
        (Some(WithheldReason::Blocked), vec![b1, b2]),
    ] {
        let sent = d.send_group_withholding(&mut rng, now, G, b"x", &[(b2, reason)]);
        assert!(
            matches!(&sent, Ok(Outgoing::NeedBundles(devices)) if *devices == needs),
            "{sent:?}"
        );
    }
    let o = w.send_group_withholding(a1, G, b"x", &[(b2, None)]);
    assert_eq!(pairwise(&o), [b1]);
    assert!(!w.device(a1).has_session(&b2));
}

/// A device that is not one of the group's member devices (this device, a device of an
/// account that is not a member, a device its account does not list) is refused with
/// nothing changed; a device named twice is withheld as named first.
#[test]
fn only_member_devices_are_withheld_and_the_first_naming_counts() {
    let mut w = World::new("withholding named");
    let (alice, bob, dave) = (w.account(0), w.account(0), w.account(0));
    w.publish_all();
    w.set_members(G, &[alice, bob]);
    let (a1, b1, d1) = (
        World::addr(alice, 1),
        World::addr(bob, 1),
        World::addr(dave, 1),
    );
    let b9 = World::addr(bob, 9);
    let now = w.now;
    let mut rng = SeededRng::from_label("withholding named rng");
    assert_eq!(
        FanoutError::NotAGroupDevice(b9).to_string(),
        format!("{b9:?} is not a device of the group's members")
    );
    for outsider in [a1, d1, b9] {
        let d = w.device(a1);
        let before = d.to_bytes();
        let sent =
            d.send_group_withholding(&mut rng, now, G, b"x", &[(b1, None), (outsider, None)]);
        assert_eq!(
            sent.err(),
            Some(FanoutError::NotAGroupDevice(outsider).into())
        );
        assert_eq!(*before, *d.to_bytes());
        assert!(!d.has_changes());
    }
    let twice = [
        (b1, Some(WithheldReason::Blocked)),
        (b1, Some(WithheldReason::Unverified)),
    ];
    let o = w.send_group_withholding(a1, G, b"x", &twice);
    assert!(matches!(
        w.receive(b1, &World::envelope_to(&o, b1)),
        Ok(Received::Withheld {
            reason: WithheldReason::Blocked,
            ..
        })
    ));
    let o = w.send_group_withholding(
        a1,
        G,
        b"x",
        &[(b1, None), (b1, Some(WithheldReason::Blocked))],
    );
    assert!(
        o.envelopes.is_empty(),
        "named first without a reason: not told"
    );
}

/// A notice stays while the key received is of another generation (that generation's
/// messages are still withheld), and goes once the generation it names arrives. A notice
/// record of the old form (empty: no generation) is dropped at a load and deleted from the
/// store with the next unit.
#[test]
fn a_notice_lasts_until_its_generation_arrives_and_the_old_record_form_is_dropped() {
    let (mut w, [alice, bob, _], [a1, b1, _]) = three_in_group("withholding notice life");
    let withheld = [(b1, Some(WithheldReason::Blocked))];
    let o = w.send_group_withholding(a1, G, b"withheld", &withheld);
    let (withheld_env, _) = o.group.clone().unwrap();
    assert!(w.receive(b1, &World::envelope_to(&o, b1)).is_ok());
    // Carol leaves: the next send makes a new generation, given to Bob's phone.
    w.set_members(G, &[alice, bob]);
    let o = w.send_group(a1, G, b"new generation");
    w.deliver_ok(&o);
    w.refused(b1, &withheld_env, FanoutError::Withheld.into());
    // The notice's record in the old form: read as no notice, and deleted.
    let notice_key = |w: &World| w.stores[&b1].0.keys().find(|k| k[0] == 0x0d).cloned();
    let key = notice_key(&w).expect("the notice is stored");
    assert_eq!(w.stores[&b1].0[&key].len(), 4, "u32(key_id)");
    w.stores
        .get_mut(&b1)
        .unwrap()
        .0
        .insert(key.clone(), Vec::new());
    w.restart(b1);
    let now = w.now;
    let missing = w.device(b1).receive(now, &withheld_env);
    assert!(matches!(
        missing,
        Err(Error::Fanout(FanoutError::SenderKeyMissing { .. }))
    ));
    w.persist(b1);
    assert_eq!(notice_key(&w), None);
}

/// The records of withholding have one form each. The sender key's record (0x0a) ends with
/// the devices withheld from, strictly ascending, and keeps who was told across a load; out
/// of order it is refused, and of the form before withholding (ending at the key ids) it
/// loads as withheld from none and is written in the current form with the next unit. A
/// receiver's notices (0x0d) are one to four distinct generations.
#[test]
fn the_withholding_records_have_one_form() {
    let (mut w, _, [a1, b1, c1]) = three_in_group("withholding records");
    let withheld = [(b1, Some(WithheldReason::Blocked)), (c1, None)];
    let o = w.send_group_withholding(a1, G, b"x", &withheld);
    assert!(w.receive(b1, &World::envelope_to(&o, b1)).is_ok());
    let mut key = vec![0x0a];
    key.extend_from_slice(&G.0);
    let value = w.stores[&a1].0[&key].clone();
    // u32(2), then per device: address (36), IK (32), opt(reason): b1 told, c1 not.
    let mut entries = [
        [&b1.account.to_bytes()[..], &1u32.to_be_bytes()].concat(),
        [&c1.account.to_bytes()[..], &1u32.to_be_bytes()].concat(),
    ];
    entries.sort();
    let tail = 4 + 2 * (36 + 32) + 2 + 1;
    let (head, withheld_part) = value.split_at(value.len() - tail);
    assert_eq!(withheld_part[..4], 2u32.to_be_bytes());
    assert_eq!(withheld_part[4..40], entries[0][..]);
    let load = |w: &World, value: Vec<u8>| {
        let mut s = w.stores[&a1].clone();
        s.0.insert(key.clone(), value);
        Device::from_records(s.0.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
    };
    // The two entries swapped: not ascending.
    // The first entry's length: a present reason is a flag and a byte.
    let first_len = 36 + 32 + 1 + usize::from(withheld_part[4 + 36 + 32]);
    let (one, two) = withheld_part[4..].split_at(first_len);
    let swapped = [head, &withheld_part[..4], two, one].concat();
    assert_eq!(load(&w, swapped).err(), Some(DecodeError::InvalidValue));
    // The old form: loads, withheld from none, and is rewritten.
    let mut old = load(&w, head.to_vec()).unwrap();
    let unit = old.take_changes(&mut w.rng);
    let rewritten = unit.records().iter().find(|r| r.key() == &key[..]).unwrap();
    assert_eq!(rewritten.value().unwrap(), [head, &[0; 4][..]].concat());
    // The current form, reloaded: who was told is kept.
    w.restart(a1);
    let again = w.send_group_withholding(a1, G, b"y", &withheld);
    assert!(again.envelopes.is_empty());

    // The receiver's notices: one to four distinct generations.
    let notice_key = w.stores[&b1]
        .0
        .keys()
        .find(|k| k[0] == 0x0d)
        .cloned()
        .unwrap();
    let ids = |n: u32| (1..=n).flat_map(u32::to_be_bytes).collect::<Vec<u8>>();
    for (value, loads) in [
        (ids(1), true),
        (ids(4), true),
        (ids(5), false),
        ([ids(1), ids(1)].concat(), false),
    ] {
        let mut s = w.stores[&b1].clone();
        s.0.insert(notice_key.clone(), value.clone());
        let loaded = Device::from_records(s.0.iter().map(|(k, v)| (k.as_slice(), v.as_slice())));
        assert_eq!(loaded.is_ok(), loads, "{value:?}");
    }
}

/// Withholding Bob's phone through five generations (Carol's phone, withheld every other
/// send, makes each send rotate): Bob's phone keeps the four newest notices, so the first
/// generation's message reads as its key missing and the others' as withheld. A notice reads
/// as itself (`Debug` shows the generation and the reason).
#[test]
fn a_device_keeps_the_four_newest_withheld_generations() {
    let (mut w, _, [a1, b1, c1]) = three_in_group("withholding four");
    let blocked = Some(WithheldReason::Blocked);
    let mut generations = Vec::new();
    let mut messages = Vec::new();
    for i in 0..5 {
        let withheld = match i % 2 {
            0 => vec![(b1, blocked)],
            _ => vec![(b1, blocked), (c1, None)],
        };
        let o = w.send_group_withholding(a1, G, b"x", &withheld);
        let notice = w.receive(b1, &World::envelope_to(&o, b1));
        if i == 0 {
            let shown = format!("{:?}", notice.as_ref().unwrap());
            let key_id = notice_key_id(&notice);
            assert!(shown.contains(&format!("key_id: {key_id:?}")), "{shown}");
            assert!(shown.contains("reason: Blocked"), "{shown}");
        }
        generations.push(notice_key_id(&notice));
        for (to, e) in o.envelopes.iter().filter(|(to, _)| *to != b1) {
            w.receive(*to, e).unwrap();
        }
        messages.push(o.group.unwrap().0);
    }
    generations.dedup();
    assert_eq!(generations.len(), 5, "five generations");
    assert_eq!(
        missing_key_id(&w.receive(b1, &messages[0])),
        generations[0].0
    );
    for m in &messages[1..] {
        w.refused(b1, m, FanoutError::Withheld.into());
    }
}

/// A distribution of a generation a notice named (an honest sender never sends one; here a
/// peer seals it raw) ends that notice and no other, in the store too.
#[test]
fn a_distribution_ends_the_notice_of_its_generation_only() {
    let (mut w, _, [a1, b1, c1]) = three_in_group("withholding distribution");
    let blocked = Some(WithheldReason::Blocked);
    let first = w.send_group_withholding(a1, G, b"1", &[(b1, blocked)]);
    let k1 = notice_key_id(&w.receive(b1, &World::envelope_to(&first, b1)));
    w.receive(c1, &World::envelope_to(&first, c1)).unwrap();
    let second = w.send_group_withholding(a1, G, b"2", &[(b1, blocked), (c1, None)]);
    let k2 = notice_key_id(&w.receive(b1, &World::envelope_to(&second, b1)));
    assert_ne!(k1, k2);
    // 14.2 inside 18.2: the group, K1, iteration 0, a chain key, a signing key.
    let signing = w.device(a1).identity_key().to_bytes();
    let payload = [
        &[2, 0x0c, 2, 2, 5][..],
        &G.0,
        &k1.0.to_be_bytes(),
        &0u32.to_be_bytes(),
        &[7; 32],
        &signing,
    ]
    .concat();
    let now = w.now;
    let mut rng = SeededRng::from_label("withholding distribution rng");
    let sealed = hooks::seal_raw_payload(w.device(a1), &mut rng, now, b1, &payload).unwrap();
    assert!(matches!(
        w.receive(b1, &sealed),
        Ok(Received::SenderKey { key_id, .. }) if key_id == k1
    ));
    // What the store holds says the same: K2 alone.
    let notices = w.stores[&b1].0.iter().find(|(k, _)| k[0] == 0x0d);
    assert_eq!(notices.map(|(_, v)| &v[..]), Some(&k2.0.to_be_bytes()[..]));
    w.restart(b1);
    w.refused(b1, &second.group.unwrap().0, FanoutError::Withheld.into());
    let first_message = w.receive(b1, &first.group.unwrap().0);
    assert_ne!(first_message, Err(FanoutError::Withheld.into()));
}
