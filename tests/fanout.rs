//! Client fanout across linked devices: 1:1 to every device and own copies, session setup on
//! demand, routing and device-list binding, lists changing while envelopes are in flight,
//! typed undecryptable causes, groups with a distribution ledger and rotation on removal,
//! retries, backups, and the app-facing edges.

mod support;

use ratchetry::devices::{DeviceAddress, DeviceId, LinkRequest, Primary, SignedDeviceList};
use ratchetry::fanout::{
    Device, DeviceConfig, EnvelopeId, Event, Outgoing, Received, RetryReason, WithheldReason,
};
use ratchetry::group::GroupId;
use ratchetry::testing::hooks;
use ratchetry::{
    DecodeError, DeviceError, Error, FanoutError, GroupError, IdentityKeyPair, RatchetError,
    Timestamp,
};
use support::{DAY, T0, World, body, tampered};

const ROOM: GroupId = GroupId([9; 32]);

fn at(days: u64) -> Timestamp {
    T0.plus_millis(days * DAY)
}

#[test]
fn direct_message_reaches_every_device_and_own_copies() {
    let mut w = World::new("fanout direct");
    let alice = w.account(1);
    let bob = w.account(2);
    w.publish_all();
    let a1 = World::addr(alice, 1);
    let outbox = w.send(a1, bob, b"hi bob");
    // Bob's 3 devices + Alice's laptop.
    assert_eq!(outbox.envelopes.len(), 4);
    assert!(outbox.send_id.is_some());
    for (to, r) in w.deliver_ok(&outbox) {
        let expected = if to.account == bob {
            Received::Direct {
                from: a1,
                id: outbox.message_id.unwrap(),
                body: b"hi bob".to_vec(),
                resent: None,
            }
        } else {
            Received::OwnCopy {
                from: a1,
                sent_to: bob,
                id: outbox.message_id.unwrap(),
                body: b"hi bob".to_vec(),
                resent: None,
            }
        };
        assert_eq!(r, expected);
    }
    // Bob's companion answers while his phone is offline; reaches Alice's two devices and
    // Bob's other two.
    let reply = w.send(World::addr(bob, 3), alice, b"from my tablet");
    assert_eq!(reply.envelopes.len(), 4);
    let got = w.deliver_ok(&reply);
    assert_eq!(
        got.iter()
            .filter(|(_, r)| matches!(r, Received::Direct { .. }))
            .count(),
        2
    );
    // The established sessions need no bundles any more.
    let now = w.now;
    let again = w
        .devices
        .get_mut(&a1)
        .unwrap()
        .send(&mut w.rng, now, &bob, b"again");
    assert!(matches!(again, Ok(Outgoing::Ready(_))));
}

#[test]
fn missing_sessions_and_lists_are_named_and_change_nothing() {
    let mut w = World::new("fanout bundles");
    let alice = w.account(0);
    let bob = w.account(1);
    let carol = w.account(0);
    w.publish(&alice);
    w.publish(&bob);
    let a1 = World::addr(alice, 1);
    let now = w.now;
    let mut rng = w.rng.clone();
    let dev = w.device(a1);
    let before = dev.to_bytes();
    // No list held for Carol: the send names her account.
    assert_eq!(
        dev.send(&mut rng, now, &carol, b"x").unwrap(),
        Outgoing::NeedDeviceLists(vec![carol])
    );
    let Outgoing::NeedBundles(missing) = dev.send(&mut rng, now, &bob, b"x").unwrap() else {
        panic!()
    };
    assert_eq!(missing.len(), 2);
    assert_eq!(*before, *dev.to_bytes());
    assert!(!dev.has_changes());
    // A bundle with another identity than the list names is refused.
    let wrong = vec![(
        missing[0],
        w.devices[&World::addr(carol, 1)].bundle(None, None),
    )];
    let dev = w.device(a1);
    assert_eq!(
        dev.start_sessions(&mut rng, now, &wrong).err(),
        Some(FanoutError::IdentityMismatch(missing[0]).into())
    );
    assert_eq!(*before, *dev.to_bytes());
    // The device follows the accounts whose lists it took.
    let mut followed: Vec<_> = w.device(a1).accounts().collect();
    followed.sort();
    let mut expected = vec![alice, bob];
    expected.sort();
    assert_eq!(followed, expected);
    // Followed accounts come back from their bytes; others, valid keys or not, do not.
    let dev = w.device(a1);
    assert_eq!(dev.followed_account(&bob.to_bytes()), Some(bob));
    assert_eq!(dev.followed_account(&alice.to_bytes()), Some(alice));
    assert_eq!(dev.followed_account(&carol.to_bytes()), None);
    assert_eq!(dev.followed_account(&[0xff; 32]), None);
}

#[test]
fn rerouted_replayed_and_unlisted_envelopes_fail_with_typed_causes() {
    let mut w = World::new("fanout reroute");
    let alice = w.account(1);
    let bob = w.account(2);
    w.publish_all();
    let outbox = w.send(World::addr(alice, 1), bob, b"secret");
    let to_bob2 = World::envelope_to(&outbox, World::addr(bob, 2));
    // Delivered to the wrong device as is.
    w.refused(
        World::addr(bob, 3),
        &to_bob2,
        FanoutError::NotForThisDevice.into(),
    );
    // Re-addressed to device 3: the header is bound into the AEAD.
    let mut rerouted = to_bob2.clone();
    rerouted[3 + 36 + 32..3 + 36 + 36].copy_from_slice(&3u32.to_be_bytes());
    let b3 = World::addr(bob, 3);
    let before = w.device(b3).to_bytes();
    assert!(w.receive(b3, &rerouted).is_err());
    assert_eq!(*before, *w.device(b3).to_bytes());
    // Genuine delivery works once; a replay is a duplicate.
    w.receive(World::addr(bob, 2), &to_bob2).unwrap();
    let id = EnvelopeId::of(&to_bob2);
    w.refused(
        World::addr(bob, 2),
        &to_bob2,
        FanoutError::Duplicate { envelope_id: id }.into(),
    );
    // An account this device does not follow is named.
    let carol = w.account(0);
    let from_carol = w.send(World::addr(carol, 1), alice, b"hello?");
    let to_a1 = World::envelope_to(&from_carol, World::addr(alice, 1));
    let fresh = World::addr(alice, 1);
    w.device(fresh).forget_account(&carol);
    w.persist(fresh);
    w.refused(fresh, &to_a1, FanoutError::UnknownAccount(carol).into());
    // A sender account key that is not a valid key is not an account to fetch: addresses are
    // compared unchecked, so the key is checked before it is named.
    let mut invalid = to_a1.clone();
    invalid[3..3 + 32].copy_from_slice(&[0xff; 32]);
    w.refused(fresh, &invalid, DecodeError::InvalidKey.into());
}

/// A routine renew, or unlinking another device, does not strand envelopes made under the
/// previous list: they are read while their sender and recipient are still active. A device
/// that really was removed is refused, an envelope made under a newer list than held names the
/// account to fetch, and one naming the held version with another digest (the server showed
/// the sender another list) is refused as diverging.
#[test]
fn list_changes_in_flight_strand_nothing_but_removed_devices() {
    let mut w = World::new("fanout in flight");
    let alice = w.account(2);
    let bob = w.account(0);
    w.publish_all();
    let (a1, a2, a3, b1) = (
        World::addr(alice, 1),
        World::addr(alice, 2),
        World::addr(alice, 3),
        World::addr(bob, 1),
    );
    // Sessions in both directions first.
    let o = w.send(b1, alice, b"hello");
    w.deliver_ok(&o);
    // Made under Alice's list v3, in flight while she renews (v4) and unlinks device 3 (v5).
    let from_a1 = w.send(a1, bob, b"made under v3");
    let from_a2 = w.send(a2, bob, b"also v3");
    let from_a3 = w.send(a3, bob, b"from the device about to go");
    let to_a2 = w.send(b1, alice, b"to the laptop, v3");
    w.now = at(1);
    let now = w.now;
    w.primary(&alice).renew(now).unwrap();
    w.primary(&alice).unlink(now, DeviceId(3)).unwrap();
    w.publish(&alice);
    let got = w.receive(b1, &World::envelope_to(&from_a1, b1)).unwrap();
    assert_eq!(body(&got), Some(&b"made under v3"[..]));
    w.receive(b1, &World::envelope_to(&from_a2, b1)).unwrap();
    w.receive(a2, &World::envelope_to(&to_a2, a2)).unwrap();
    w.refused(
        b1,
        &World::envelope_to(&from_a3, b1),
        DeviceError::NotInList(a3).into(),
    );
    // Bob has not yet seen Alice's next list: her envelope names v6.
    w.primary(&alice).renew(at(2)).unwrap();
    let v6 = w.primary(&alice).device_list().signed().clone();
    w.device(a1)
        .update_device_list(at(2), &alice, v6.clone())
        .unwrap();
    w.persist(a1);
    w.now = at(2);
    let newer = w.send(a1, bob, b"under v6");
    let env = World::envelope_to(&newer, b1);
    w.refused(
        b1,
        &env,
        FanoutError::DeviceListsDiverge {
            account: alice,
            used: 6,
            held: 5,
        }
        .into(),
    );
    w.device(b1).update_device_list(at(2), &alice, v6).unwrap();
    w.persist(b1);
    assert!(w.receive(b1, &env).is_ok());
    // The held version with a digest of other lists: the sender was shown another list.
    let o = w.send(a1, bob, b"digest");
    let mut forged = World::envelope_to(&o, b1);
    forged[3 + 36 + 36 + 16] ^= 1;
    let err = w.device(b1).receive(at(2), &forged).err();
    assert_eq!(
        err,
        Some(
            FanoutError::DeviceListsDiverge {
                account: alice,
                used: 6,
                held: 6
            }
            .into()
        )
    );
}

#[test]
fn expired_companions_are_neither_sent_to_nor_read() {
    let mut w = World::new("fanout expiry");
    let alice = w.account(1);
    let bob = w.account(0);
    w.publish_all();
    let (a2, b1) = (World::addr(alice, 2), World::addr(bob, 1));
    let laptop_msg = w.send(a2, bob, b"still here");
    // Fifteen days without renewal: the laptop expired. Bob refuses it and stops fanning out
    // to it; the laptop itself is told.
    w.now = at(16);
    w.refused(
        b1,
        &World::envelope_to(&laptop_msg, b1),
        DeviceError::CompanionExpired(a2).into(),
    );
    let o = w.send(b1, alice, b"only the phone");
    assert_eq!(o.envelopes.len(), 1);
    assert_eq!(o.envelopes[0].0.device, DeviceId(1));
    let now = w.now;
    let mut rng = w.rng.clone();
    assert_eq!(
        w.device(a2).send(&mut rng, now, &bob, b"x").err(),
        Some(FanoutError::ThisDeviceExpired.into())
    );
}

/// A companion its held own list names with its identity, expired, refuses every envelope as
/// `ThisDeviceExpired`, whatever own list the envelope names: one made under the held list
/// before it expired, one made under a renewal the sender holds and it has not taken, and a
/// group message sent under that renewal. Nothing changes the device; once it takes the
/// renewal it reads all three. An unlinked device's refusal is `ThisDeviceInactive`
/// (`group_keys_go_only_where_missing_and_rotate_on_removal`).
#[test]
fn an_expired_companion_refuses_every_envelope_until_renewed_then_reads_them() {
    let mut w = World::new("fanout inactive own list");
    let alice = w.account(1);
    let bob = w.account(0);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob]);
    let (a2, b1) = (World::addr(alice, 2), World::addr(bob, 1));
    let hello = w.send(b1, alice, b"hello");
    w.deliver_ok(&hello);
    let back = w.send(a2, bob, b"back");
    w.deliver_ok(&back);
    let key = w.send_group(b1, ROOM, b"the key");
    w.deliver_ok(&key);
    // Made under the list the laptop holds, read on day 16, when that list expired it.
    let old = World::envelope_to(&w.send(b1, alice, b"under the held list"), a2);
    // Day 13: a renewal Bob takes and the laptop does not.
    w.now = at(13);
    let now = w.now;
    w.primary(&alice).renew(now).unwrap();
    let renewal = w.primary(&alice).device_list().signed().clone();
    w.device(b1)
        .update_device_list(now, &alice, renewal.clone())
        .unwrap();
    w.persist(b1);
    w.now = at(16);
    let new = World::envelope_to(&w.send(b1, alice, b"under the renewal"), a2);
    let group = w.send_group(b1, ROOM, b"to the room").group.unwrap().0;
    w.persist(a2);
    let before = w.device(a2).to_bytes();
    let now = w.now;
    for e in [&old, &new, &group] {
        assert_eq!(
            w.device(a2).receive(now, e).err(),
            Some(FanoutError::ThisDeviceExpired.into())
        );
    }
    assert!(!w.device(a2).has_changes());
    assert_eq!(*w.device(a2).to_bytes(), *before);
    w.device(a2)
        .update_device_list(now, &alice, renewal)
        .unwrap();
    for (e, expected) in [
        (&new, &b"under the renewal"[..]),
        (&old, b"under the held list"),
        (&group, b"to the room"),
    ] {
        let got = w.device(a2).receive(now, e).unwrap();
        assert_eq!(body(&got), Some(expected));
    }
}

#[test]
fn group_keys_go_only_where_missing_and_rotate_on_removal() {
    let mut w = World::new("fanout group");
    let alice = w.account(1);
    let bob = w.account(2);
    let carol = w.account(0);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob, carol]);
    let a1 = World::addr(alice, 1);
    let first = w.send_group(a1, ROOM, b"hello room");
    // Laptop + Bob's 3 + Carol's 1 get the key; all five read the message.
    assert_eq!(first.envelopes.len(), 5);
    let read = w.deliver_ok(&first);
    assert_eq!(
        read.iter()
            .filter(|(_, r)| matches!(r, Received::Group { .. }))
            .count(),
        5
    );
    // Steady state: no distributions.
    let second = w.send_group(a1, ROOM, b"second");
    assert!(second.envelopes.is_empty());
    w.deliver_ok(&second);

    // Bob unlinks a companion: Alice's next send rotates and distributes to the remaining 4.
    let removed = World::addr(bob, 3);
    w.primary(&bob).unlink(T0, DeviceId(3)).unwrap();
    w.publish(&bob);
    let third = w.send_group(a1, ROOM, b"after removal");
    assert_eq!(third.envelopes.len(), 4);
    assert!(third.envelopes.iter().all(|(a, _)| *a != removed));
    let (group_envelope, recipients) = third.group.as_ref().unwrap();
    assert!(!recipients.contains(&removed));
    // The removed device cannot read it.
    let err = w.device(removed).receive(T0, group_envelope).err().unwrap();
    assert_eq!(err, FanoutError::ThisDeviceInactive.into());

    // Carol withholds her key from Bob's phone: he is told why he cannot read her messages,
    // and still gets the group envelope; every other member device reads it.
    let b1 = World::addr(bob, 1);
    let c1 = World::addr(carol, 1);
    let withheld = [(b1, Some(WithheldReason::Unverified))];
    let carol_says = w.send_group_withholding(c1, ROOM, b"hi", &withheld);
    let got = w.receive(b1, &World::envelope_to(&carol_says, b1)).unwrap();
    let Received::Withheld {
        from,
        group,
        key_id,
        reason: WithheldReason::Unverified,
    } = got
    else {
        panic!("{got:?}")
    };
    assert_eq!((from, group), (c1, ROOM));
    let (env, recipients) = carol_says.group.clone().unwrap();
    assert!(recipients.contains(&b1));
    w.refused(b1, &env, FanoutError::Withheld.into());
    let read = w.deliver(&carol_says);
    let readers: Vec<DeviceAddress> = read
        .iter()
        .filter(|(_, r)| r.as_ref().is_ok_and(|r| body(r) == Some(&b"hi"[..])))
        .map(|(to, _)| *to)
        .collect();
    let others: Vec<DeviceAddress> = recipients.iter().copied().filter(|a| *a != b1).collect();
    assert_eq!(readers, others);
    // Carol's next send names nobody: Bob's phone is never given the generation withheld from
    // it, so a new one goes to every member device, and it reads again.
    let again = w.send_group(c1, ROOM, b"hi again");
    assert_eq!(again.envelopes.len(), recipients.len());
    let got = w.receive(b1, &World::envelope_to(&again, b1)).unwrap();
    assert!(
        matches!(got, Received::SenderKey { key_id: k, .. } if k != key_id),
        "{got:?}"
    );
    assert_eq!(
        body(&w.receive(b1, &again.group.unwrap().0).unwrap()),
        Some(&b"hi again"[..])
    );
    // The withheld message stays withheld.
    w.refused(b1, &env, FanoutError::Withheld.into());
}

/// A send seals on each device's session in place, so whatever can refuse it is checked for
/// every device before the first session advances: a refusal at any device (first, middle or
/// last in the order sealed) leaves every session, and the whole state, as it was.
#[test]
fn a_send_refused_at_any_device_advances_no_session() {
    let mut w = World::new("fanout refused in place");
    let alice = w.account(0);
    let bob = w.account(2);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob]);
    let a1 = World::addr(alice, 1);
    // Sessions to Bob's three devices, each with a sending chain, none replied to yet.
    w.send(a1, bob, b"hello");
    w.send_group(a1, ROOM, b"hello room");
    type BreakSession = fn(&mut Device, &DeviceAddress) -> bool;
    let refusals: [(BreakSession, Error); 2] = [
        (
            hooks::exhaust_sending_chain,
            RatchetError::ChainExhausted.into(),
        ),
        (hooks::drop_pending_kem, RatchetError::NotPostQuantum.into()),
    ];
    for (break_session, refusal) in refusals {
        for device in 1..=3 {
            let to = World::addr(bob, device);
            assert!(break_session(w.device(a1), &to));
            let before = w.device(a1).to_bytes();
            let mut rng = w.rng.clone();
            let sent = w.device(a1).send(&mut rng, T0, &bob, b"refused");
            assert_eq!(sent.err(), Some(refusal), "at device {device}");
            assert_eq!(w.device(a1).to_bytes(), before, "at device {device}");
            assert!(!w.device(a1).has_changes());
            w.restart(a1);
        }
    }
    // The sends go on from the stored state: nothing of the refused ones was kept.
    let fine = w.send(a1, bob, b"after");
    assert_eq!(fine.envelopes.len(), 3);
    w.deliver_ok(&fine);

    // A group send whose sender key is at its end refuses before the key goes to a new
    // device of Bob's: that device's new session does not advance either.
    let b4 = w.link(&bob);
    w.publish(&bob);
    assert!(hooks::exhaust_sender_key(w.device(a1), ROOM));
    let started = w.run(a1, |d, rng, now| d.send_group(rng, now, ROOM, b"to four"));
    assert_eq!(started.err(), Some(GroupError::ChainExhausted.into()));
    let before = w.device(a1).to_bytes();
    let mut rng = w.rng.clone();
    let again = w.device(a1).send_group(&mut rng, T0, ROOM, b"to four");
    assert_eq!(again.err(), Some(GroupError::ChainExhausted.into()));
    assert_eq!(w.device(a1).to_bytes(), before);
    assert!(w.device(a1).has_session(&b4));
}

#[test]
fn group_message_before_its_key_is_sender_key_missing() {
    let mut w = World::new("fanout missing key");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob]);
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let outbox = w.send_group(a1, ROOM, b"early");
    let (env, _) = outbox.group.clone().unwrap();
    let key_id = ratchetry::group::GroupMessage::decode(&env[3 + 36 + 8..])
        .unwrap()
        .key_id()
        .0;
    w.refused(
        b1,
        &env,
        FanoutError::SenderKeyMissing { from: a1, key_id }.into(),
    );
    w.receive(b1, &outbox.envelopes[0].1).unwrap();
    assert!(matches!(
        w.receive(b1, &env).unwrap(),
        Received::Group { .. }
    ));
}

#[test]
fn corrupted_envelopes_change_nothing_and_state_round_trips() {
    let mut w = World::new("fanout state");
    let alice = w.account(1);
    let bob = w.account(1);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob]);
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let outbox = w.send(a1, bob, b"persist me");
    let group = w.send_group(a1, ROOM, b"g");
    let env = World::envelope_to(&outbox, b1);
    for i in 0..env.len() {
        let mut bad = env.clone();
        bad[i] ^= 0x04;
        let d = w.device(b1);
        let before = d.to_bytes();
        assert!(d.receive(T0, &bad).is_err(), "flip at {i}");
        assert_eq!(*before, *d.to_bytes());
        assert!(!d.has_changes());
    }
    w.receive(b1, &env).unwrap();
    w.receive(b1, &World::envelope_to(&group, b1)).unwrap();
    let bytes = w.device(b1).to_bytes();
    let restored = Device::from_bytes(&bytes).unwrap();
    assert_eq!(*restored.to_bytes(), *bytes);
    let a_bytes = w.device(a1).to_bytes();
    assert_eq!(*Device::from_bytes(&a_bytes).unwrap().to_bytes(), *a_bytes);
    for len in (0..bytes.len()).step_by(7) {
        assert!(Device::from_bytes(&bytes[..len]).is_err());
    }
}

#[test]
fn simultaneous_session_starts_converge() {
    let mut w = World::new("fanout race");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    // Both start a session before hearing from the other.
    let a = w.send(a1, bob, b"a1");
    let b = w.send(b1, alice, b"b1");
    w.deliver_ok(&a);
    w.deliver_ok(&b);
    // Messages still flow both ways, and after one round trip both use the same session: a
    // message that starts a new receiving chain in the archived one makes it current.
    for round in 0..3u8 {
        let a = w.send(a1, bob, &[round]);
        assert_eq!(body(&w.deliver_ok(&a)[0].1), Some(&[round][..]));
        let b = w.send(b1, alice, &[round, round]);
        assert_eq!(body(&w.deliver_ok(&b)[0].1), Some(&[round, round][..]));
        let root = |w: &mut World, d, peer| {
            hooks::current_session_keys(w.device(d), &peer)
                .unwrap()
                .root_key
        };
        assert_eq!(root(&mut w, a1, b1), root(&mut w, b1, a1), "round {round}");
    }
}

#[test]
fn fuzz_fixture_envelopes_are_genuine() {
    use ratchetry::testing::fuzz::{FanoutFixture, device_receive};
    let mut f = FanoutFixture::new();
    assert_eq!(f.in_flight.len(), 6);
    let genuine = f.in_flight.clone();
    for e in &genuine {
        let mut corrupted = e.clone();
        let last = corrupted.len() - 1;
        corrupted[last] ^= 1;
        device_receive(&mut f, &corrupted);
    }
    for e in &genuine {
        f.receiver.receive(FanoutFixture::NOW, e).unwrap();
    }
}

#[test]
fn list_updates_report_added_removed_and_changed_identities() {
    let mut w = World::new("fanout events");
    let alice = w.account(0);
    let bob = w.account(1);
    w.publish_all();
    let a1 = World::addr(alice, 1);
    // The same list again changes nothing and reports nothing.
    let list = w.primary(&bob).device_list().signed().clone();
    let epoch = w.device(a1).state_epoch();
    assert_eq!(
        w.device(a1).update_device_list(T0, &bob, list).unwrap(),
        vec![]
    );
    assert_eq!(w.device(a1).state_epoch(), epoch);
    assert!(!w.device(a1).has_changes());
    // A primary that (wrongly, e.g. restored from an old backup without resync) reuses device
    // id 2 for a new identity: Alice's device reports the identity change and drops the
    // session.
    w.primary(&bob).unlink(T0, DeviceId(2)).unwrap();
    let mut state = w.primary(&bob).to_bytes().to_vec();
    state[2 + 32 + 4 + 8 + 8..2 + 32 + 4 + 8 + 8 + 4].copy_from_slice(&2u32.to_be_bytes());
    let mut reusing = Primary::from_bytes(&state).unwrap();
    let newcomer = IdentityKeyPair::generate(&mut w.rng);
    let inv = reusing.invite(&mut w.rng, T0).unwrap();
    let approval = reusing
        .approve(T0, &LinkRequest::new(&newcomer, &inv))
        .unwrap();
    assert_eq!(approval.device, DeviceId(2));
    w.send(a1, bob, b"to both");
    let b2 = World::addr(bob, 2);
    assert!(w.device(a1).has_session(&b2));
    let events = w
        .device(a1)
        .update_device_list(T0, &bob, approval.list.clone())
        .unwrap();
    assert_eq!(events, vec![Event::IdentityChanged(b2)]);
    assert!(!w.device(a1).has_session(&b2));
    // A fresh device sees everyone as added.
    let carol = w.account(0);
    let events = w
        .device(World::addr(carol, 1))
        .update_device_list(T0, &bob, approval.list)
        .unwrap();
    assert_eq!(
        events,
        vec![
            Event::DeviceAdded(World::addr(bob, 1)),
            Event::DeviceAdded(b2)
        ]
    );
}

#[test]
fn call_keys_and_history_offers_travel_over_fanout() {
    use ratchetry::calls::{Call, CallConfig, CallKind};
    use ratchetry::history::{HistoryOpener, HistorySealer};
    let mut w = World::new("fanout calls");
    let alice = w.account(1);
    let bob = w.account(2);
    w.publish_all();
    let me = World::addr(alice, 1);
    // A 1:1 call: the key goes to every device of Bob and Alice's laptop.
    let mut ringing: Vec<DeviceAddress> = (1..=3).map(|d| World::addr(bob, d)).collect();
    ringing.push(World::addr(alice, 2));
    let config = CallConfig::default();
    let call = Call::start(&mut w.rng, CallKind::OneToOne, me, &ringing, &config).unwrap();
    let message = call.key_message().clone();
    let outbox = w
        .run(me, |d, rng, now| {
            d.send_call_key(rng, now, &ringing, &message)
        })
        .unwrap();
    assert_eq!(outbox.envelopes.len(), 4);
    for (to, r) in w.deliver_ok(&outbox) {
        let Received::CallKey { from, message } = r else {
            panic!("{r:?}")
        };
        assert_eq!(from, me);
        let theirs = Call::from_key_message(to, &from, message, &config).unwrap();
        assert_eq!(theirs.srtp_keys(&me).unwrap(), call.srtp_keys(&me).unwrap());
        assert_eq!(theirs.srtp_keys(&to).unwrap(), call.srtp_keys(&to).unwrap());
    }

    // History sync to the laptop: the offer over the pairwise session, the chunks by any
    // route.
    let history: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let mut sealer = HistorySealer::new(&mut w.rng);
    let mut chunks = sealer.push(&history);
    let (last, offer) = sealer.finish();
    let offer = offer.with_app_data(b"groups and settings").unwrap();
    chunks.extend(last);
    let laptop = World::addr(alice, 2);
    let o = w
        .run(me, |d, rng, now| {
            d.send_history_offer(rng, now, laptop, &offer)
        })
        .unwrap();
    let got = w.deliver_ok(&o);
    let Received::HistoryOffer {
        offer: received, ..
    } = &got[0].1
    else {
        panic!()
    };
    assert_eq!(received.app_data(), b"groups and settings");
    let mut opener = HistoryOpener::new(received);
    let mut restored = Vec::new();
    for c in &chunks {
        restored.extend(opener.push(c).unwrap());
    }
    opener.finish().unwrap();
    assert_eq!(restored, history);
    let bob_phone = World::addr(bob, 1);
    let now = w.now;
    let mut rng = w.rng.clone();
    assert_eq!(
        w.device(me)
            .send_history_offer(&mut rng, now, bob_phone, &offer)
            .err(),
        Some(FanoutError::NotForThisDevice.into())
    );
}

#[test]
fn restore_from_an_old_backup_never_reuses_a_message_key() {
    let (mut w, _, bob, a1, _) = World::two_talking("fanout stale backup");
    // Alice backs up, then sends two more messages Bob reads, then restores the backup.
    let backup = w.device(a1).to_bytes();
    let mut lost = Vec::new();
    for body in [b"lost one".as_slice(), b"lost two"] {
        let o = w.send(a1, bob, body);
        lost.push(o.envelopes[0].1.clone());
        w.deliver_ok(&o);
    }
    let restored = Device::restore_from_backup(&backup, w.now).unwrap();
    *w.device(a1) = restored;
    w.persist(a1);
    // The restored device's next message uses a new ratchet key: a fresh chain, never the
    // counters the lost messages used.
    let o = w.send(a1, bob, b"lost one");
    let again = &o.envelopes[0].1;
    // Envelope header (99 bytes), then the ratchet message: version, type, ratchet key.
    let ratchet_key = |env: &[u8]| {
        assert_eq!(env[99..101], [2, 2]);
        env[101..133].to_vec()
    };
    assert_ne!(ratchet_key(again), ratchet_key(&lost[0]));
    let got = w.deliver_ok(&o);
    assert_eq!(body(&got[0].1), Some(&b"lost one"[..]));
}

#[test]
fn retry_requests_heal_a_lost_session() {
    let mut w = World::new("fanout retry");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    // Bob's phone backs up before it ever talked to Alice, then they talk.
    let bob_backup = w.device(b1).to_bytes();
    let o = w.send(a1, bob, b"one");
    w.deliver_ok(&o);
    let o = w.send(b1, alice, b"two");
    w.deliver_ok(&o);
    // Bob's phone is restored from the backup: it has no session with Alice any more.
    *w.device(b1) = Device::restore_from_backup(&bob_backup, w.now).unwrap();
    w.persist(b1);
    let o = w.send(a1, bob, b"three");
    let send_id = o.send_id.unwrap(); // Alice's app stores the body under it
    let lost = o.envelopes[0].1.clone();
    w.refused(b1, &lost, FanoutError::NoSession(a1).into());

    // Bob asks again; Alice answers from her stored body with a fresh session.
    let now = w.now;
    let (to, request) = w
        .devices
        .get_mut(&b1)
        .unwrap()
        .request_retry(&mut w.rng, now, &lost, RetryReason::NoSession)
        .unwrap();
    w.persist(b1);
    assert_eq!(to, a1);
    // A tampered request is refused.
    let mut bad = request.clone();
    let at = bad.len() - 70;
    bad[at] ^= 1;
    assert!(w.device(a1).receive(now, &bad).is_err());
    let Received::RetryRequest(req) = w.receive(a1, &request).unwrap() else {
        panic!()
    };
    assert_eq!(
        (req.send_id, req.reason, req.attempt, req.from),
        (send_id, RetryReason::NoSession, 1, b1)
    );
    // Only the body that was sent answers it.
    let mut rng = w.rng.clone();
    assert_eq!(
        w.device(a1)
            .answer_retry(&mut rng, now, &req, b"thr33")
            .err(),
        Some(FanoutError::BodyMismatch.into())
    );
    let answer = w
        .run(a1, |d, rng, now| d.answer_retry(rng, now, &req, b"three"))
        .unwrap();
    let got = w.deliver_ok(&answer);
    assert_eq!(
        got[0].1,
        Received::Direct {
            from: a1,
            id: o.message_id.unwrap(),
            body: b"three".to_vec(),
            resent: Some(EnvelopeId::of(&lost)),
        }
    );
    // The conversation goes on both ways on the new session.
    let o = w.send(b1, alice, b"four");
    assert_eq!(body(&w.deliver_ok(&o)[0].1), Some(&b"four"[..]));
    let o = w.send(a1, bob, b"five");
    assert_eq!(body(&w.deliver_ok(&o)[0].1), Some(&b"five"[..]));
}

#[test]
fn state_epoch_detects_a_stale_snapshot() {
    let mut w = World::new("fanout epoch");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let a1 = World::addr(alice, 1);
    let snapshot = w.device(a1).to_bytes();
    let old_epoch = w.device(a1).state_epoch();
    w.send(a1, bob, b"after the snapshot");
    let latest = w.device(a1).state_epoch();
    assert!(latest > old_epoch);
    let current = w.device(a1).to_bytes();
    let (_, stale) = Device::restore(&current, latest, w.now).unwrap();
    assert!(!stale);
    let (restored, stale) = Device::restore(&snapshot, latest, w.now).unwrap();
    assert!(stale);
    assert!(restored.state_epoch() > latest);
}

/// A new device hands back the one-time prekeys it made, compactly encoded for upload, and a
/// signed prekey rotation leaves them valid: sessions started with them still open.
#[test]
fn new_devices_hand_out_their_one_time_prekeys_and_rotation_keeps_them() {
    use ratchetry::x3dh::OneTimePreKeys;
    let mut w = World::new("fanout prekeys");
    let alice = w.account(0);
    w.publish(&alice);
    let phone = IdentityKeyPair::generate(&mut w.rng);
    let primary = Primary::new(&mut w.rng, &phone, T0, Default::default());
    let (mut bob, upload) = Device::new(
        &mut w.rng,
        T0,
        phone,
        DeviceId(1),
        primary.device_list().clone(),
        3,
        DeviceConfig::default(),
    )
    .unwrap();
    let bytes = upload.to_bytes();
    // Three X25519 one-time prekeys (id, key) and three signed ML-KEM ones (id, key, signature).
    assert_eq!(bytes.len(), 2 + 4 + 3 * 36 + 4 + 3 * (4 + 1568 + 64));
    let upload = OneTimePreKeys::from_bytes(&bytes).unwrap();
    assert_eq!(upload.keys().len(), 3);
    assert_eq!(upload.kem_keys().len(), 3);
    let otk = upload.keys()[1].id;
    let kem = upload.kem_keys()[2].id;
    let bundle = bob.bundle(Some(otk), Some(kem));
    bob.rotate_signed_prekey(&mut w.rng, at(1));
    assert_eq!(bob.one_time_prekeys_remaining(), 3);
    let changes = bob.take_changes(&mut w.rng);
    assert!(changes.replaces_all());
    // Alice starts a session from the old bundle (old signed prekey, still kept) and the
    // uploaded one-time prekey.
    let a1 = World::addr(alice, 1);
    let bob_list = primary.device_list().signed().clone();
    let bob_key = primary.account();
    w.device(a1)
        .update_device_list(T0, &bob_key, bob_list)
        .unwrap();
    let b = bob.address();
    w.devices
        .get_mut(&a1)
        .unwrap()
        .start_sessions(&mut w.rng, T0, &[(b, bundle)])
        .unwrap();
    bob.update_device_list(T0, &alice, w.primary(&alice).device_list().signed().clone())
        .unwrap();
    let o = w.send(a1, bob_key, b"hi");
    let got = bob.receive(T0, &o.envelopes[0].1).unwrap();
    assert_eq!(body(&got), Some(&b"hi"[..]));
    assert_eq!(bob.one_time_prekeys_remaining(), 2);
    assert_eq!(bob.one_time_kem_prekeys_remaining(), 2);
    assert_eq!(bob.last_resort_uses(), 0);
    let _ = SignedDeviceList::from_bytes(&w.primary(&alice).device_list().to_bytes()).unwrap();
    let _: Option<Error> = None;
}

#[test]
fn message_ids_name_the_message_so_a_tampered_copy_is_never_read_twice() {
    let mut w = World::new("fanout message ids");
    let alice = w.account(0);
    let bob = w.account(1);
    w.publish_all();
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));

    // The id names sender and header salt: a changed ciphertext keeps it, the copies to two
    // devices and two sends differ, and a retry request is named by its bytes.
    let o = w.send(a1, bob, b"once");
    let genuine = World::envelope_to(&o, b1);
    let copy = tampered(&genuine);
    assert_eq!(EnvelopeId::of(&copy), EnvelopeId::of(&genuine));
    assert_ne!(
        EnvelopeId::of(&o.envelopes[0].1),
        EnvelopeId::of(&o.envelopes[1].1)
    );
    assert_ne!(
        EnvelopeId::of(b"not an envelope"),
        EnvelopeId::of(b"not an envelope!")
    );

    // Genuine first, then the copy: the copy is a duplicate, and there is nothing to ask for.
    w.receive(b1, &genuine).unwrap();
    w.refused(
        b1,
        &copy,
        FanoutError::Duplicate {
            envelope_id: EnvelopeId::of(&genuine),
        }
        .into(),
    );
    let now = w.now;
    let mut rng = w.rng.clone();
    assert_eq!(
        w.device(b1)
            .request_retry(&mut rng, now, &copy, RetryReason::AuthenticationFailed)
            .err(),
        Some(
            FanoutError::Duplicate {
                envelope_id: EnvelopeId::of(&genuine)
            }
            .into()
        )
    );

    // The copy first, Bob asks again, then the genuine envelope: reading it withdraws the
    // retry, so the answer is unexpected. Alice's next message, on the session her answer
    // started (from the request's bundle), still reads: the request's prekeys were kept.
    let o = w.send(a1, bob, b"once");
    let genuine = World::envelope_to(&o, b1);
    let copy = tampered(&genuine);
    assert!(w.receive(b1, &copy).is_err());
    let answer = w.ask_again(b1, a1, &copy, b"once");
    w.receive(b1, &genuine).unwrap();
    let resend = World::envelope_to(&answer, b1);
    w.refused(b1, &resend, FanoutError::UnexpectedResend.into());
    let o = w.send(a1, bob, b"after the answer");
    let got = w.deliver_ok(&o);
    assert_eq!(body(&got[0].1), Some(&b"after the answer"[..]));

    // The copy first, Bob asks again, the resend arrives before the genuine envelope: it is
    // shown under the genuine message's id, and the genuine envelope is then a duplicate.
    let o = w.send(a1, bob, b"once");
    let genuine = World::envelope_to(&o, b1);
    let copy = tampered(&genuine);
    assert!(w.receive(b1, &copy).is_err());
    let answer = w.ask_again(b1, a1, &copy, b"once");
    let resend = World::envelope_to(&answer, b1);
    assert_eq!(
        w.receive(b1, &resend).unwrap(),
        Received::Direct {
            from: a1,
            id: o.message_id.unwrap(),
            body: b"once".to_vec(),
            resent: Some(EnvelopeId::of(&genuine)),
        }
    );
    w.refused(
        b1,
        &genuine,
        FanoutError::Duplicate {
            envelope_id: EnvelopeId::of(&genuine),
        }
        .into(),
    );

    // The same for a group message: one envelope for every member, named by its salt.
    w.set_members(ROOM, &[alice, bob]);
    let o = w.send_group(a1, ROOM, b"once");
    w.receive(b1, &World::envelope_to(&o, b1)).unwrap();
    let genuine = o.group.unwrap().0;
    let tampered = tampered(&genuine);
    assert_eq!(EnvelopeId::of(&tampered), EnvelopeId::of(&genuine));
    assert!(w.receive(b1, &tampered).is_err());
    w.receive(b1, &genuine).unwrap();
    w.refused(
        b1,
        &tampered,
        FanoutError::Duplicate {
            envelope_id: EnvelopeId::of(&genuine),
        }
        .into(),
    );
}

/// The own-sender-key record lists the generations whose ledgers are kept (19.1 kind 0x0a):
/// one to four distinct key ids, the last the current key's. A device whose ledger held four
/// generations loads; a record naming none, five, or one twice is refused, so a corrupted store
/// cannot lose the ledger that judges retries.
#[test]
fn the_sender_key_record_keeps_one_to_four_distinct_generations() {
    let mut w = World::new("fanout ledger generations");
    let alice = w.account(0);
    let bob = w.account(0);
    let carol = w.account(0);
    w.publish_all();
    let a1 = World::addr(alice, 1);
    w.set_members(ROOM, &[alice, bob, carol]);
    w.send_group(a1, ROOM, b"first key");
    for _ in 0..3 {
        // Carol leaves (a rotation), then comes back (the key is handed to her).
        w.set_members(ROOM, &[alice, bob]);
        w.send_group(a1, ROOM, b"without carol");
        w.set_members(ROOM, &[alice, bob, carol]);
        w.send_group(a1, ROOM, b"with carol");
    }
    let store = w.stores[&a1].clone();
    let mut key = vec![0x0a];
    key.extend_from_slice(&ROOM.0);
    let value = store.0[&key].clone();
    // The record ends with the devices withheld from: u32(0), none.
    let (value, none_withheld) = value.split_at(value.len() - 4);
    assert_eq!(none_withheld, [0; 4]);
    let ids_at = value.len() - 1 - 4 * 4;
    assert_eq!(value[ids_at], 4, "four generations kept");
    store.load();
    let ids: Vec<[u8; 4]> = value[ids_at + 1..]
        .chunks(4)
        .map(|c| c.try_into().unwrap())
        .collect();
    let with_ids = |ids: &[[u8; 4]]| {
        let mut v = value[..ids_at].to_vec();
        v.push(ids.len() as u8);
        v.extend(ids.iter().flatten());
        v.extend(none_withheld);
        let mut s = store.clone();
        s.0.insert(key.clone(), v);
        Device::from_records(s.0.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))).err()
    };
    let five = [[0xee; 4], ids[0], ids[1], ids[2], ids[3]];
    let repeated = [ids[0], ids[0], ids[2], ids[3]];
    for bad in [&[][..], &five[..], &repeated[..]] {
        assert_eq!(with_ids(bad), Some(DecodeError::InvalidValue));
    }
    assert_eq!(with_ids(&ids), None);
}

/// Every send asks for what it lacks the same way: a call key or a history offer to a device of an account whose list is not held is `NeedDeviceLists`, as a
/// message is, not an error.
#[test]
fn payload_sends_ask_for_missing_device_lists() {
    use ratchetry::calls::{Call, CallConfig, CallKind};
    let mut w = World::new("fanout payload lists");
    let alice = w.account(0);
    let bob = w.account(1);
    let (me, bob_phone, bob_laptop) = (
        World::addr(alice, 1),
        World::addr(bob, 1),
        World::addr(bob, 2),
    );
    let devices = [bob_phone, bob_laptop];
    let call = Call::start(
        &mut w.rng,
        CallKind::OneToOne,
        me,
        &devices,
        &CallConfig::default(),
    )
    .unwrap();
    let (now, rng) = (w.now, &mut w.rng);
    let d = w.devices.get_mut(&me).unwrap();
    assert!(!d.accounts().any(|a| a == bob));
    let asked = d.send_call_key(rng, now, &devices, call.key_message());
    assert!(matches!(asked, Ok(Outgoing::NeedDeviceLists(a)) if a == [bob]));
    let outbox = w
        .run(me, |d, rng, now| {
            d.send_call_key(rng, now, &devices, call.key_message())
        })
        .unwrap();
    assert_eq!(outbox.envelopes.len(), 2);
}

/// Apps set a group's members whenever they load the group: setting the same members again
/// (in any order, with or without the device's own account) writes nothing and does not move
/// the state epoch, so it never looks like a change that must be persisted.
#[test]
fn setting_the_same_group_members_again_changes_nothing() {
    let mut w = World::new("fanout same members");
    let alice = w.account(0);
    let bob = w.account(0);
    let carol = w.account(0);
    let a1 = World::addr(alice, 1);
    let d = w.devices.get_mut(&a1).unwrap();
    d.set_group_members(ROOM, &[bob, carol]).unwrap();
    assert!(!d.take_changes(&mut w.rng).is_empty());
    let epoch = d.state_epoch();
    d.set_group_members(ROOM, &[carol, alice, bob]).unwrap();
    assert!(d.take_changes(&mut w.rng).is_empty());
    assert_eq!(d.state_epoch(), epoch);
    d.set_group_members(ROOM, &[carol]).unwrap();
    assert!(!d.take_changes(&mut w.rng).is_empty());
    assert_eq!(d.group_members(ROOM).unwrap().collect::<Vec<_>>(), [carol]);
    // The groups a device knows, in id order, across a restart; a forgotten one is gone.
    const EARLIER: GroupId = GroupId([1; 32]);
    d.set_group_members(EARLIER, &[bob]).unwrap();
    assert_eq!(d.groups().collect::<Vec<_>>(), [EARLIER, ROOM]);
    let mut d = Device::from_bytes(&d.to_bytes()).unwrap();
    assert_eq!(d.groups().collect::<Vec<_>>(), [EARLIER, ROOM]);
    d.forget_group(EARLIER);
    assert_eq!(d.groups().collect::<Vec<_>>(), [ROOM]);
}

/// Leaving a group deletes everything of it, and only of it: its members, this device's
/// sender key and ledger, the sender keys and withheld notices received for it. Another
/// group's keys and notices stay, the store loses the deleted records, and after joining again
/// the old keys and notices are gone (messages under them are `SenderKeyMissing`).
#[test]
fn forgetting_a_group_deletes_that_group_only() {
    const OTHER: GroupId = GroupId([8; 32]);
    let mut w = World::new("fanout forget group");
    let alice = w.account(0);
    let bob = w.account(0);
    let carol = w.account(0);
    let dave = w.account(0);
    w.publish_all();
    let [a1, b1, c1, d1] = [alice, bob, carol, dave].map(|a| World::addr(a, 1));
    let everyone = [alice, bob, carol, dave];
    w.set_members(ROOM, &everyone);
    w.set_members(OTHER, &everyone);
    // Alice holds: Bob's key and Carol's notice for the room, Dave's key and Bob's notice
    // for the other group, and her own key for the room.
    for (from, g) in [(b1, ROOM), (d1, OTHER), (a1, ROOM)] {
        let o = w.send_group(from, g, b"hello");
        w.deliver_ok(&o);
    }
    let mut withheld_messages = Vec::new();
    for (from, g) in [(c1, ROOM), (b1, OTHER)] {
        let withheld = [(a1, Some(WithheldReason::Blocked))];
        let o = w.send_group_withholding(from, g, b"not for alice", &withheld);
        let notice = w.receive(a1, &World::envelope_to(&o, a1));
        assert!(
            matches!(notice, Ok(Received::Withheld { .. })),
            "{notice:?}"
        );
        withheld_messages.push(o.group.unwrap().0);
    }
    w.device(a1).forget_group(ROOM);
    w.persist(a1);
    assert!(w.device(a1).group_members(ROOM).is_none());
    let reloaded = w.stores[&a1].load();
    assert_eq!(*reloaded.to_bytes(), *w.device(a1).to_bytes());
    let later = |w: &mut World, from: DeviceAddress, g: GroupId| {
        let o = w.send_group(from, g, b"later");
        let envelope = o.group.as_ref().unwrap().0.clone();
        w.receive(a1, &envelope)
    };
    assert_eq!(
        later(&mut w, b1, ROOM).err(),
        Some(FanoutError::UnknownGroup(ROOM).into())
    );
    assert_eq!(
        body(&later(&mut w, d1, OTHER).unwrap()),
        Some(&b"later"[..])
    );
    assert_eq!(
        w.receive(a1, &withheld_messages[1]).err(),
        Some(FanoutError::Withheld.into())
    );
    w.device(a1).set_group_members(ROOM, &everyone).unwrap();
    assert!(matches!(
        w.receive(a1, &withheld_messages[0]),
        Err(Error::Fanout(FanoutError::SenderKeyMissing { .. }))
    ));
    for from in [b1, c1] {
        assert!(matches!(
            later(&mut w, from, ROOM),
            Err(Error::Fanout(FanoutError::SenderKeyMissing { .. }))
        ));
    }
}

/// Taking an account out of a group drops its devices' sender keys and withheld notices for
/// that group: when it is added back, messages under its old key are `SenderKeyMissing` until
/// its sender key arrives again, and an old notice no longer hides that.
#[test]
fn removing_a_member_drops_its_keys_for_that_group() {
    let mut w = World::new("fanout member keys");
    let alice = w.account(0);
    let bob = w.account(0);
    let carol = w.account(0);
    w.publish_all();
    let [a1, b1, c1] = [alice, bob, carol].map(|a| World::addr(a, 1));
    w.set_members(ROOM, &[alice, bob, carol]);
    let o = w.send_group(b1, ROOM, b"bob's key");
    w.deliver_ok(&o);
    let withheld = [(a1, Some(WithheldReason::Blocked))];
    let o = w.send_group_withholding(c1, ROOM, b"not for alice", &withheld);
    let notice = w.receive(a1, &World::envelope_to(&o, a1));
    assert!(
        matches!(notice, Ok(Received::Withheld { .. })),
        "{notice:?}"
    );
    let withheld_message = o.group.unwrap().0;
    w.refused(a1, &withheld_message, FanoutError::Withheld.into());
    w.device(a1).set_group_members(ROOM, &[alice, bob]).unwrap();
    w.device(a1)
        .set_group_members(ROOM, &[alice, bob, carol])
        .unwrap();
    w.persist(a1);
    // Carol's notice went with her; Bob's key stayed.
    assert!(matches!(
        w.receive(a1, &withheld_message),
        Err(Error::Fanout(FanoutError::SenderKeyMissing { .. }))
    ));
    let o = w.send_group(b1, ROOM, b"bob's key still");
    assert_eq!(
        body(&w.receive(a1, &o.group.unwrap().0).unwrap()),
        Some(&b"bob's key still"[..])
    );
    w.device(a1).set_group_members(ROOM, &[alice]).unwrap();
    w.device(a1)
        .set_group_members(ROOM, &[alice, bob, carol])
        .unwrap();
    w.persist(a1);
    for from in [b1, c1] {
        let o = w.send_group(from, ROOM, b"old key");
        let envelope = o.group.as_ref().unwrap().0.clone();
        assert!(matches!(
            w.receive(a1, &envelope),
            Err(Error::Fanout(FanoutError::SenderKeyMissing { .. }))
        ));
    }
}

/// A group envelope names the sender's list version like a pairwise one: made under a list
/// newer than the one held, it waits for that list (`DeviceListsDiverge`); made under an
/// older one, it is read once the newer is held.
#[test]
fn a_group_message_under_a_newer_sender_list_waits_for_that_list() {
    let mut w = World::new("fanout group diverge");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob]);
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let o = w.send_group(a1, ROOM, b"first");
    w.deliver_ok(&o);
    let before_renewal = w.send_group(a1, ROOM, b"under the old list");
    let held = w.device(b1).device_list(&alice).unwrap().version();
    w.now = at(1);
    w.primary(&alice).renew(at(1)).unwrap();
    let newer = w.primary(&alice).device_list().signed().clone();
    w.device(a1)
        .update_device_list(at(1), &alice, newer.clone())
        .unwrap();
    w.persist(a1);
    let o = w.send_group(a1, ROOM, b"under the new list");
    let envelope = o.group.as_ref().unwrap().0.clone();
    w.refused(
        b1,
        &envelope,
        FanoutError::DeviceListsDiverge {
            account: alice,
            used: held + 1,
            held,
        }
        .into(),
    );
    w.device(b1)
        .update_device_list(at(1), &alice, newer)
        .unwrap();
    w.persist(b1);
    let got = w.receive(b1, &envelope).unwrap();
    assert_eq!(body(&got), Some(&b"under the new list"[..]));
    let old = before_renewal.group.as_ref().unwrap().0.clone();
    let got = w.receive(b1, &old).unwrap();
    assert_eq!(body(&got), Some(&b"under the old list"[..]));
}

/// A group envelope's header is bound into its group message's signature (18.1): a relay that
/// changes the sender list version — lowering it, down to 0, which no list ever had, to hide
/// that the sender's list is newer than the one held, or raising an older one — makes it
/// `BadSignature`, and nothing changes; the genuine envelopes still read, the one made under
/// the older list included.
#[test]
fn a_relay_cannot_lower_a_group_envelopes_list_version() {
    let mut w = World::new("fanout group version bound");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob]);
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let o = w.send_group(a1, ROOM, b"first");
    w.deliver_ok(&o);
    let old = w
        .send_group(a1, ROOM, b"under the old list")
        .group
        .unwrap()
        .0;
    w.now = at(1);
    w.primary(&alice).renew(at(1)).unwrap();
    w.publish(&alice);
    let new = w
        .send_group(a1, ROOM, b"under the new list")
        .group
        .unwrap()
        .0;
    let version_of = |e: &[u8]| u64::from_be_bytes(e[39..47].try_into().unwrap());
    let with_version = |e: &[u8], v: u64| {
        let mut t = e.to_vec();
        t[39..47].copy_from_slice(&v.to_be_bytes());
        t
    };
    let (held, before) = (version_of(&new), version_of(&old));
    assert_eq!(w.device(b1).device_list(&alice).unwrap().version(), held);
    assert!(before < held);
    // Every single-bit lowering, the version just below, and 0.
    let mut lowered: Vec<u64> = (0..64)
        .filter(|bit| held >> bit & 1 == 1)
        .map(|bit| held ^ 1 << bit)
        .collect();
    lowered.extend([held - 1, 0]);
    for version in lowered {
        w.refused(
            b1,
            &with_version(&new, version),
            GroupError::BadSignature.into(),
        );
    }
    // Raised to the version held, the older envelope no longer passes either.
    w.refused(
        b1,
        &with_version(&old, held),
        GroupError::BadSignature.into(),
    );
    let got = w.receive(b1, &new).unwrap();
    assert_eq!(body(&got), Some(&b"under the new list"[..]));
    let got = w.receive(b1, &old).unwrap();
    assert_eq!(body(&got), Some(&b"under the old list"[..]));
}

/// A companion that could not read its own account's copy of a message asks the device that
/// sent it, and the answer reads as that own copy (with the conversation it belongs to).
#[test]
fn an_own_copy_asked_again_reads_as_an_own_copy() {
    let mut w = World::new("fanout own copy retry");
    let alice = w.account(1);
    let bob = w.account(0);
    w.publish_all();
    let (a1, a2) = (World::addr(alice, 1), World::addr(alice, 2));
    let o = w.send(a1, bob, b"to bob");
    let tampered = tampered(&World::envelope_to(&o, a2));
    assert!(w.receive(a2, &tampered).is_err());
    let answer = w.ask_again(a2, a1, &tampered, b"to bob");
    let got = w.receive(a2, &World::envelope_to(&answer, a2)).unwrap();
    assert_eq!(
        got,
        Received::OwnCopy {
            from: a1,
            sent_to: bob,
            id: o.message_id.unwrap(),
            body: b"to bob".to_vec(),
            resent: Some(EnvelopeId::of(&tampered)),
        }
    );
}

/// Pending-retry records (19.1 kind 0x10) load only as this device could have written them:
/// never asked of the device itself, never more than it keeps.
#[test]
fn pending_retry_records_load_only_as_written() {
    let mut w = World::new("fanout pending records");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let o = w.send(a1, bob, b"lost");
    let tampered = tampered(&World::envelope_to(&o, b1));
    assert!(w.receive(b1, &tampered).is_err());
    w.request_retry(b1, &tampered, RetryReason::AuthenticationFailed)
        .unwrap();
    let store = w.stores[&b1].clone();
    store.load();
    let (key, value) = store
        .0
        .iter()
        .find(|(k, _)| k[0] == 0x10)
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    let load = |s: &support::Store| {
        Device::from_records(s.0.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))).err()
    };
    // Asked of itself.
    let mut own = store.clone();
    own.0.remove(&key);
    let mut k = key.clone();
    k[1..33].copy_from_slice(&bob.to_bytes());
    own.0.insert(k, value.clone());
    assert_eq!(load(&own), Some(DecodeError::InvalidValue));
    // A second retry naming the keys the first one's request minted: each minted key belongs
    // to one request (else the counts of held keys would count it twice).
    let mut twice = store.clone();
    let mut k = key.clone();
    k[37] ^= 0x80;
    twice.0.insert(k, value.clone());
    assert_eq!(load(&twice), Some(DecodeError::InvalidValue));
    // One more than the bound, each under another reference, naming no minted keys (the last
    // 10 bytes of the value: opt(u32) twice, present).
    let bare = [&value[..value.len() - 10], &[0, 0][..]].concat();
    loads_up_to_its_bound(
        &store,
        &key,
        &bare,
        ratchetry::fanout::MAX_PENDING_RETRIES,
        37,
    );
}

/// `bound` copies of a record under keys that differ at `at..at + 4`, with the original: one
/// more than the bound is refused; without the original, the bound loads.
fn loads_up_to_its_bound(
    store: &support::Store,
    key: &[u8],
    value: &[u8],
    bound: usize,
    at: usize,
) {
    let load = |s: &support::Store| {
        Device::from_records(s.0.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))).err()
    };
    let mut many = store.clone();
    for i in 0..bound as u32 {
        let mut k = key.to_vec();
        k[at..at + 4].copy_from_slice(&i.to_be_bytes());
        many.0.insert(k, value.to_vec());
    }
    assert_eq!(load(&many), Some(DecodeError::InvalidValue));
    many.0.remove(key);
    assert_eq!(load(&many), None);
}

/// A call key sent to no device but this one seals nothing and changes nothing.
#[test]
fn a_payload_to_no_other_device_changes_nothing() {
    use ratchetry::calls::{Call, CallConfig, CallKind};
    let mut w = World::new("fanout payload to self");
    let alice = w.account(1);
    let bob = w.account(0);
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let call = Call::start(
        &mut w.rng,
        CallKind::OneToOne,
        a1,
        &[b1],
        &CallConfig::default(),
    )
    .unwrap();
    let (now, rng) = (w.now, &mut w.rng);
    let d = w.devices.get_mut(&a1).unwrap();
    let _ = d.take_changes(rng);
    let epoch = d.state_epoch();
    let Ok(Outgoing::Ready(outbox)) = d.send_call_key(rng, now, &[a1], call.key_message()) else {
        panic!("nothing to fetch")
    };
    assert!(outbox.envelopes.is_empty());
    assert!(d.take_changes(rng).is_empty());
    assert_eq!(d.state_epoch(), epoch);
}

/// Prekey upkeep through the device: fresh one-time prekeys of both kinds are counted and
/// persisted, a session started from a bundle without one-time prekeys counts a use of the
/// last-resort ML-KEM prekey, and rotating the signed prekey deletes the remembered base keys
/// of a signed prekey only once it is retired (while it is kept, they still refuse replays).
#[test]
fn prekey_upkeep_through_the_device() {
    let mut w = World::new("fanout prekeys");
    let alice = w.account(0);
    let config = DeviceConfig {
        prekeys: ratchetry::PreKeyStoreConfig {
            max_signed_prekeys: 2,
            ..Default::default()
        },
        ..Default::default()
    };
    let bob = w.account_with(0, config);
    w.publish_all();
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let (now, rng) = (w.now, &mut w.rng);
    let d = w.devices.get_mut(&b1).unwrap();
    let _ = d.take_changes(rng);
    let (keys, kem) = (
        d.one_time_prekeys_remaining(),
        d.one_time_kem_prekeys_remaining(),
    );
    let upload = d.generate_one_time_prekeys(rng, now, 3);
    assert_eq!((upload.keys().len(), upload.kem_keys().len()), (3, 3));
    assert_eq!(d.one_time_prekeys_remaining(), keys + 3);
    assert_eq!(d.one_time_kem_prekeys_remaining(), kem + 3);
    assert_eq!(
        d.take_changes(rng).records().len(),
        3 + 3 + 2,
        "keys, prekeys, meta"
    );
    // The world hands out bundles without one-time prekeys.
    assert_eq!(w.device(b1).last_resort_uses(), 0);
    let o = w.send(a1, bob, b"first contact");
    w.deliver_ok(&o);
    assert_eq!(w.device(b1).last_resort_uses(), 1);
    // (written, deleted) remembered-base-key records in a unit.
    let base_key_records = |unit: &ratchetry::fanout::StateChanges| {
        let of_kind = || unit.records().iter().filter(|r| r.key()[0] == 0x06);
        (
            of_kind().filter(|r| r.value().is_some()).count(),
            of_kind().filter(|r| r.value().is_none()).count(),
        )
    };
    let (now, rng) = (w.now, &mut w.rng);
    let d = w.devices.get_mut(&b1).unwrap();
    let _ = d.take_changes(rng);
    let bundle = d.bundle(None, None).to_bytes();
    d.rotate_signed_prekey(rng, now);
    assert_ne!(d.bundle(None, None).to_bytes(), bundle);
    assert_eq!(base_key_records(&d.take_changes(rng)), (0, 0), "still kept");
    d.rotate_signed_prekey(rng, now);
    assert_eq!(base_key_records(&d.take_changes(rng)), (0, 1), "retired");
}

/// A companion follows its own account's list: a new list that still lists it, active, is no
/// news about itself; a new list in which its entry has expired tells it it was removed.
#[test]
fn this_device_learns_its_entry_expired() {
    let mut w = World::new("fanout own expiry");
    let alice = w.account(3);
    let [a2, a3, a4] = [2, 3, 4].map(|d| World::addr(alice, d));
    let now = w.now;
    w.primary(&alice).unlink(now, a4.device).unwrap();
    let list = w.primary(&alice).device_list().signed().clone();
    let events = w.device(a2).update_device_list(now, &alice, list).unwrap();
    assert_eq!(events, [Event::DeviceRemoved(a4)]);
    // The next list reaches a2 only after the companions' validity ran out: it still lists
    // a2, expired.
    let later = Timestamp(now.as_millis() + w.policy().account.companion_validity_ms + 1);
    w.primary(&alice).unlink(now, a3.device).unwrap();
    let list = w.primary(&alice).device_list().signed().clone();
    let events = w
        .device(a2)
        .update_device_list(later, &alice, list)
        .unwrap();
    assert!(events.contains(&Event::ThisDeviceExpired), "{events:?}");
    assert!(!events.contains(&Event::ThisDeviceRemoved), "{events:?}");
}

/// `Debug` of a device shows its address and counts, never key material.
#[test]
fn device_debug_shows_counts_not_keys() {
    let mut w = World::new("fanout device debug");
    let alice = w.account(0);
    let a1 = World::addr(alice, 1);
    let d = w.device(a1);
    let shown = format!("{d:?}");
    assert!(shown.starts_with("Device {"), "{shown}");
    assert!(
        shown.contains(&format!("epoch: {}", d.state_epoch())),
        "{shown}"
    );
    // Keys print as short prefixes; no byte array (a secret's only form) is printed.
    assert!(!shown.contains('['), "{shown}");
}

/// A device restored from a backup awaits an own list issued since the restore: the wait
/// survives a restart from records, a list issued a moment before the restore does not end it
/// (it may still name a companion unlinked just after), one issued at the restore's time does,
/// and its record is deleted then.
#[test]
fn awaiting_an_own_list_survives_a_restart_and_ends_only_with_a_list_issued_since() {
    let mut w = World::new("fanout awaiting own list");
    let alice = w.account(1);
    w.publish_all();
    let a1 = World::addr(alice, 1);
    let backup = w.device(a1).to_bytes();
    w.now = w.now.plus_millis(support::DAY);
    let at = w.now;
    *w.device(a1) = Device::restore_from_backup(&backup, at).unwrap();
    w.persist(a1);
    w.restart(a1);
    assert!(w.device(a1).awaiting_own_list());
    assert!(format!("{:?}", w.device(a1)).contains("awaiting_own_list: true"));

    let edge = at.as_millis();
    let early = w
        .primary(&alice)
        .renew(Timestamp(edge - 1))
        .unwrap()
        .signed()
        .clone();
    w.device(a1).update_device_list(at, &alice, early).unwrap();
    w.persist(a1);
    w.restart(a1);
    assert!(w.device(a1).awaiting_own_list());

    let on_edge = w
        .primary(&alice)
        .renew(Timestamp(edge))
        .unwrap()
        .signed()
        .clone();
    w.device(a1)
        .update_device_list(at, &alice, on_edge)
        .unwrap();
    let unit = w.take(a1);
    assert!(
        unit.records()
            .iter()
            .any(|r| r.key() == [0x11] && r.value().is_none()),
        "the restore record is deleted"
    );
    w.stores.get_mut(&a1).unwrap().apply(&unit);
    w.restart(a1);
    assert!(!w.device(a1).awaiting_own_list());
}

/// Replaced-id records (kind 0x12) load up to their bound and survive a restart; one more is
/// refused.
#[test]
fn replaced_id_records_load_only_as_written() {
    let mut w = World::new("fanout replaced records");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let o = w.send(a1, bob, b"lost");
    let genuine = World::envelope_to(&o, b1);
    let copy = tampered(&genuine);
    assert!(w.receive(b1, &copy).is_err());
    let answer = w.ask_again(b1, a1, &copy, b"lost");
    w.deliver_ok(&answer);
    let store = w.stores[&b1].clone();
    let (key, value) = store
        .0
        .iter()
        .find(|(k, _)| k[0] == 0x12)
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    assert_eq!(key[1..], EnvelopeId::of(&genuine).0);
    // The resend's sender, then when it was read.
    assert_eq!(value[..36], a1.to_bytes());
    assert_eq!(value[36..], w.now.as_millis().to_be_bytes());
    loads_up_to_its_bound(
        &store,
        &key,
        &value,
        ratchetry::fanout::MAX_REPLACED_MESSAGE_IDS,
        1,
    );
}

/// An operation that changes nothing leaves no unit to write and keeps the epoch: forgetting
/// an account of which nothing is held, making no one-time prekeys (none asked, or the caps
/// reached), starting no sessions. Forgetting an account that is held does change the state.
#[test]
fn operations_that_change_nothing_leave_no_unit_and_keep_the_epoch() {
    let mut w = World::new("fanout no-op operations");
    let alice = w.account(0);
    let bob = w.account(0);
    let stranger = w.account(0);
    w.publish(&alice);
    w.publish(&bob);
    let a1 = World::addr(alice, 1);
    let (rng, now) = (&mut w.rng.clone(), w.now);
    let d = w.device(a1);
    let _ = d.take_changes(rng);
    let epoch = d.state_epoch();
    d.forget_account(&stranger);
    assert!(d.generate_one_time_prekeys(rng, now, 0).keys().is_empty());
    d.start_sessions(rng, now, &[]).unwrap();
    assert_eq!((d.has_changes(), d.state_epoch()), (false, epoch));
    // At the caps: nothing more is made.
    d.generate_one_time_prekeys(rng, now, 2000);
    let _ = d.take_changes(rng);
    let epoch = d.state_epoch();
    let none = d.generate_one_time_prekeys(rng, now, 1);
    assert!(none.keys().is_empty() && none.kem_keys().is_empty());
    assert_eq!((d.has_changes(), d.state_epoch()), (false, epoch));
    // A held account forgotten is a change.
    d.forget_account(&bob);
    assert_eq!((d.has_changes(), d.state_epoch()), (true, epoch + 1));
}

/// Bob links a laptop; Alice still holds Bob's list from before. The laptop's first message to
/// Alice (one envelope, and one group message) names Bob's newer list: Alice is told to fetch
/// it (`DeviceListsDiverge`, both versions), not that the laptop is a stranger (`NotInList`),
/// and reads both once she has it.
#[test]
fn a_new_companions_first_message_asks_for_its_accounts_newer_list() {
    let mut w = World::new("fanout new companion first message");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob]);
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    // Bob links a laptop; only Bob's devices learn the new list.
    let (rng, now) = (&mut w.rng.clone(), w.now);
    let laptop_identity = IdentityKeyPair::generate(rng);
    let limits = w.limits();
    let primary = w.primary(&bob);
    let invitation = primary.invite(rng, now).unwrap();
    let approval = primary
        .approve(now, &LinkRequest::new(&laptop_identity, &invitation))
        .unwrap();
    let (_, confirmation) =
        ratchetry::devices::complete_link(&laptop_identity, &invitation, &approval, &limits)
            .unwrap();
    primary.confirm(&confirmation).unwrap();
    let list = primary.device_list().clone();
    let (laptop, _) = Device::new(
        rng,
        now,
        laptop_identity,
        approval.device,
        list.clone(),
        5,
        DeviceConfig::default(),
    )
    .unwrap();
    let b2 = laptop.address();
    w.devices.insert(b2, laptop);
    w.persist(b2);
    w.device(b1)
        .update_device_list(now, &bob, list.signed().clone())
        .unwrap();
    let alices_list = w.device(a1).device_list(&alice).unwrap().signed().clone();
    w.device(b2)
        .update_device_list(now, &alice, alices_list)
        .unwrap();
    w.device(b2).set_group_members(ROOM, &[alice, bob]).unwrap();
    w.persist(b2);
    let held = w.device(a1).device_list(&bob).unwrap().version();

    let direct = w.send(b2, alice, b"hi from the laptop");
    let group = w.send_group(b2, ROOM, b"hi, group");
    let diverge: Error = FanoutError::DeviceListsDiverge {
        account: bob,
        used: list.version(),
        held,
    }
    .into();
    let to_alice = World::envelope_to(&direct, a1);
    w.refused(a1, &to_alice, diverge);
    let (group_envelope, _) = group.group.clone().unwrap();
    w.refused(a1, &group_envelope, diverge);

    w.device(a1)
        .update_device_list(now, &bob, list.signed().clone())
        .unwrap();
    assert_eq!(
        body(&w.receive(a1, &to_alice).unwrap()),
        Some(&b"hi from the laptop"[..])
    );
    w.receive(a1, &World::envelope_to(&group, a1)).unwrap();
    assert_eq!(
        body(&w.receive(a1, &group_envelope).unwrap()),
        Some(&b"hi, group"[..])
    );
}

/// A stored one-time ML-KEM prekey was never used (a session that uses one deletes it): a
/// record saying it started a session is refused on load.
#[test]
fn one_time_kem_prekey_records_load_only_unused() {
    let mut w = World::new("fanout kem record uses");
    let alice = w.account(0);
    w.publish_all();
    let a1 = World::addr(alice, 1);
    let store = w.stores[&a1].clone();
    let (key, value) = store
        .0
        .iter()
        .find(|(k, _)| k[0] == 0x05)
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    let mut used = store.clone();
    let mut v = value.clone();
    let n = v.len();
    v[n - 4..].copy_from_slice(&1u32.to_be_bytes());
    used.0.insert(key, v);
    let load = |s: &support::Store| {
        Device::from_records(s.0.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))).err()
    };
    assert_eq!(load(&used), Some(DecodeError::InvalidValue));
    assert_eq!(load(&store), None);
}

/// A session awaiting its first reply sends its ML-KEM ciphertext (1,568 bytes) with every
/// message, but a device stores it once: in a record of its own (kind 0x13) written when the
/// session starts and deleted when the peer replies. Sends in between write a few hundred
/// bytes, and the device restarts from its records with the ciphertext attached.
#[test]
fn a_pending_sessions_kem_ciphertext_is_written_once() {
    const PENDING_KEM: u8 = 0x13;
    let mut w = World::new("fanout pending kem once");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    // The first send starts the session: its unit holds the ciphertext record.
    let now = w.now;
    let run_send = |w: &mut World, body: &[u8]| {
        let World { rng, devices, .. } = w;
        let d = devices.get_mut(&a1).unwrap();
        let outbox = match d.send(rng, now, &bob, body).unwrap() {
            Outgoing::Ready(o) => o,
            Outgoing::NeedBundles(missing) => {
                let bundles: Vec<_> = missing
                    .iter()
                    .map(|m| (*m, devices[m].bundle(None, None)))
                    .collect();
                let d = devices.get_mut(&a1).unwrap();
                d.start_sessions(rng, now, &bundles).unwrap();
                match d.send(rng, now, &bob, body).unwrap() {
                    Outgoing::Ready(o) => o,
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("{other:?}"),
        };
        let changes = devices.get_mut(&a1).unwrap().take_changes(&mut w.rng);
        w.stores.get_mut(&a1).unwrap().apply(&changes);
        (outbox, changes)
    };
    let (first, changes) = run_send(&mut w, b"one");
    let kem: Vec<_> = changes
        .records()
        .iter()
        .filter(|r| r.key()[0] == PENDING_KEM)
        .collect();
    assert_eq!(kem.len(), 1);
    assert_eq!(kem[0].value().map(<[u8]>::len), Some(1568));
    // Later sends, before Bob replies, leave it alone.
    let mut later = Vec::new();
    for body in [&b"two"[..], b"three"] {
        let (outbox, changes) = run_send(&mut w, body);
        assert!(changes.records().iter().all(|r| r.key()[0] != PENDING_KEM));
        assert!(
            changes.byte_len() < 1000,
            "{} bytes for a send",
            changes.byte_len()
        );
        later.push(outbox);
    }
    // Restarted from its records, Alice's phone still sends pre-key messages Bob can open.
    w.restart(a1);
    let (fourth, _) = run_send(&mut w, b"four");
    for outbox in [&fourth, &later[1], &first, &later[0]] {
        w.deliver_ok(outbox);
    }
    // Bob replies: reading it deletes the ciphertext record.
    let reply = w.send(b1, alice, b"hi");
    let now = w.now;
    let envelope = World::envelope_to(&reply, a1);
    w.device(a1).receive(now, &envelope).unwrap();
    let changes = w.take(a1);
    let deleted: Vec<_> = changes
        .records()
        .iter()
        .filter(|r| r.key()[0] == PENDING_KEM)
        .collect();
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].value(), None);
    w.stores.get_mut(&a1).unwrap().apply(&changes);
    w.restart(a1);
    assert!(w.stores[&a1].0.keys().all(|k| k[0] != PENDING_KEM));
}

/// Records written before the ciphertext had a record of its own (the session state holding it
/// inline, PROTOCOL.md 10.3) load, and the load asks for the rewrite to today's form; a
/// ciphertext held twice (inline and in a record), a ciphertext record without its pending
/// session, or one of the wrong length is refused.
#[test]
fn pending_kem_records_load_only_in_one_form() {
    const PENDING_KEM: u8 = 0x13;
    let mut w = World::new("fanout pending kem legacy");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    w.send(a1, bob, b"pending");
    let store = w.stores[&a1].clone();
    let sessions_key: Vec<u8> = [&[0x08][..], &b1.to_bytes()].concat();
    let (kem_key, ct) = store
        .0
        .iter()
        .find(|(k, _)| k[0] == PENDING_KEM)
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    // The detached state: u8(n) ‖ u32(len) ‖ state; in the state, the opt(pending CT) flag
    // follows the header, two u32, the role, three keys, the signed prekey id, opt(one-time
    // prekey id) and opt(KEM prekey id ‖ digest).
    let detached = store.0[&sessions_key].clone();
    assert_eq!(detached[0], 1);
    let state = &detached[5..];
    let mut at = 2 + 4 + 4 + 1 + 32 * 3 + 4;
    at += if state[at] == 1 { 5 } else { 1 };
    assert_eq!(state[at], 1, "the session has a KEM part");
    at += 1 + 4 + 32;
    assert_eq!(state[at], 0, "no ciphertext inline");
    let mut inline_state = state[..at].to_vec();
    inline_state.push(1);
    inline_state.extend_from_slice(&ct);
    inline_state.extend_from_slice(&state[at + 1..]);
    let mut legacy = vec![1];
    legacy.extend_from_slice(&(inline_state.len() as u32).to_be_bytes());
    legacy.extend_from_slice(&inline_state);

    let load = |edit: &dyn Fn(&mut support::Store)| {
        let mut s = store.clone();
        edit(&mut s);
        Device::from_records(s.0.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
    };
    // The older form loads, and asks for both records to be rewritten as they are today.
    let mut old = load(&|s| {
        s.0.insert(sessions_key.clone(), legacy.clone());
        s.0.remove(&kem_key);
    })
    .unwrap();
    assert!(old.has_changes());
    let rewrite = old.take_changes(&mut w.rng);
    let written: Vec<_> = rewrite
        .records()
        .iter()
        .filter(|r| r.key()[0] != 0x02)
        .map(|r| (r.key().to_vec(), r.value().map(<[u8]>::to_vec)))
        .collect();
    assert_eq!(
        written,
        [
            (sessions_key.clone(), Some(detached.clone())),
            (kem_key.clone(), Some(ct.clone()))
        ]
    );
    // Today's form loads as it is.
    assert!(!load(&|_| {}).unwrap().has_changes());
    // Refused: held twice; a record without its session; a record of the wrong length.
    assert!(
        load(&|s| {
            s.0.insert(sessions_key.clone(), legacy.clone());
        })
        .is_err()
    );
    assert!(
        load(&|s| {
            let mut orphan = kem_key.clone();
            orphan[40] ^= 1;
            s.0.insert(orphan, ct.clone());
        })
        .is_err()
    );
    assert!(
        load(&|s| {
            s.0.insert(kem_key.clone(), ct[..ct.len() - 1].to_vec());
        })
        .is_err()
    );
}

/// A reported retry request kept as bytes (the app fetches the body, restarts) reads back as
/// it was and is answered as usual; kept bytes with an attempt out of range, a bad bundle or
/// bytes after it are refused.
#[test]
fn a_kept_retry_request_reads_back_and_is_answered() {
    use ratchetry::fanout::RetryRequest;
    let mut w = World::new("fanout kept retry request");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let outbox = w.send(a1, bob, b"kept");
    let failed = tampered(&World::envelope_to(&outbox, b1));
    let (_, request) = w
        .request_retry(b1, &failed, RetryReason::AuthenticationFailed)
        .unwrap();
    let Ok(Received::RetryRequest(reported)) = w.receive(a1, &request) else {
        panic!("reported")
    };
    let kept = reported.to_bytes();
    assert_eq!(&kept[..2], [2, 0x8a]);
    w.restart(a1);
    let back = RetryRequest::from_bytes(&kept).unwrap();
    assert_eq!(back, reported);
    let answer = w
        .run(a1, |d, rng, now| d.answer_retry(rng, now, &back, b"kept"))
        .unwrap();
    let read = w.deliver_ok(&answer);
    assert_eq!(body(&read[0].1), Some(&b"kept"[..]));
    // The attempt is byte 2 + 36 + 8 + 1.
    for attempt in [0u8, 4] {
        let mut bad = kept.clone();
        bad[47] = attempt;
        assert_eq!(
            RetryRequest::from_bytes(&bad),
            Err(ratchetry::DecodeError::InvalidValue)
        );
    }
    assert!(RetryRequest::from_bytes(&[&kept[..], &[0]].concat()).is_err());
    assert!(RetryRequest::from_bytes(&kept[..kept.len() - 1]).is_err());
}

/// A backup taken while a session still awaits its first reply restores to state that loads
/// (found by review: the renewed session had no chain at all and its state was refused), and
/// the next send starts a new session the peer reads.
#[test]
fn a_device_restored_with_a_session_awaiting_its_reply_loads_and_sends_again() {
    let mut w = World::new("fanout restore pending session");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let unanswered = w.send(a1, bob, b"unanswered");
    let backup = w.device(a1).to_bytes();
    let restored = Device::restore_from_backup(&backup, w.now).unwrap();
    assert!(
        !restored.has_session(&b1),
        "the never-answered session is dropped"
    );
    let reloaded = Device::from_bytes(&restored.to_bytes()).unwrap();
    w.devices.insert(a1, reloaded);
    w.persist(a1);
    w.restart(a1);
    w.deliver_ok(&unanswered);
    let again = w.send(a1, bob, b"after the restore");
    let read = w.deliver_ok(&again);
    assert_eq!(body(&read[0].1), Some(&b"after the restore"[..]));
}

/// Every unit of changes carries the state epoch the device is at after it: the app keeps the
/// epoch of the last unit it wrote where a restore cannot roll it back, and a snapshot from
/// before that unit is then recognised as stale.
#[test]
fn each_unit_of_changes_carries_the_state_epoch_it_leaves() {
    let mut w = World::new("fanout unit epoch");
    let alice = w.account(0);
    let bob = w.account(0);
    let carol = w.account(0);
    w.publish_all();
    let a1 = World::addr(alice, 1);
    let now = w.now;
    let d = w.devices.get_mut(&a1).unwrap();
    let mut last = d.state_epoch();
    for members in [&[bob][..], &[bob, carol], &[carol]] {
        let snapshot = d.to_bytes();
        d.set_group_members(ROOM, members).unwrap();
        let unit = d.take_changes(&mut w.rng);
        assert_eq!(unit.epoch(), d.state_epoch());
        assert!(unit.epoch() > last, "epoch {} after {last}", unit.epoch());
        last = unit.epoch();
        let (_, stale) = Device::restore(&snapshot, unit.epoch(), now).unwrap();
        assert!(
            stale,
            "a snapshot from before the unit was not seen as stale"
        );
        let (_, stale) = Device::restore(&d.to_bytes(), unit.epoch(), now).unwrap();
        assert!(!stale);
    }
}

/// A unit's `byte_len` is what the app writes for it: every record's key, and its value unless
/// the record is deleted.
#[test]
fn a_unit_s_byte_len_counts_every_key_and_written_value() {
    let mut w = World::new("fanout unit size");
    let alice = w.account(0);
    let bob = w.account(1);
    w.publish_all();
    let a1 = World::addr(alice, 1);
    w.send(a1, bob, b"to both of bob's devices");
    // Bob unlinks his laptop: Alice drops its sessions, a deleted record.
    let now = w.now;
    let list = w
        .primary(&bob)
        .unlink(now, DeviceId(2))
        .unwrap()
        .signed()
        .clone();
    let d = w.devices.get_mut(&a1).unwrap();
    d.update_device_list(now, &bob, list).unwrap();
    let unit = d.take_changes(&mut w.rng);
    let records = unit.records();
    assert!(records.iter().any(|r| r.value().is_none()), "no deletion");
    assert!(records.iter().any(|r| r.value().is_some()), "no write");
    let written: usize = records
        .iter()
        .map(|r| r.key().len() + r.value().map_or(0, <[u8]>::len))
        .sum();
    assert_eq!(unit.byte_len(), written);
}

/// A record prints which record it is and how long its value is, never the value (records hold
/// the device's secrets).
#[test]
fn a_record_prints_its_key_and_value_length_but_not_its_value() {
    let mut w = World::new("fanout record debug");
    let alice = w.account(0);
    let a1 = World::addr(alice, 1);
    // Restored from whole-state bytes, the device writes every record again.
    let mut d = Device::from_bytes(&w.device(a1).to_bytes()).unwrap();
    let all = d.take_changes(&mut w.rng);
    assert!(all.replaces_all());
    for r in all.records() {
        let shown = format!("{r:?}");
        let len = r.value().map(<[u8]>::len);
        assert!(
            shown.contains(&format!("value_len: {len:?}")),
            "{shown} does not give the value's length"
        );
        if let Some(v) = r.value().filter(|v| v.len() >= 32) {
            let bytes = format!("{v:?}");
            assert!(!shown.contains(&bytes[1..bytes.len() - 1]), "{shown}");
        }
    }
    // The device's own record, which holds its identity key.
    let own = all.records().iter().find(|r| r.key() == [0x01]).unwrap();
    assert!(format!("{own:?}").contains("Own"));
}

/// A group message's body may have any length, shorter or far longer than what the envelope
/// adds to it (header, tag and signature).
#[test]
fn group_messages_of_any_length_are_sent_and_read() {
    let mut w = World::new("fanout group lengths");
    let alice = w.account(0);
    let bob = w.account(1);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob]);
    let a1 = World::addr(alice, 1);
    for len in [0, 1, 200, 4096, 1 << 16] {
        let text: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let outbox = w.send_group(a1, ROOM, &text);
        let read: Vec<_> = w
            .deliver_ok(&outbox)
            .into_iter()
            .filter(|(_, r)| matches!(r, Received::Group { .. }))
            .collect();
        assert_eq!(read.len(), 2, "both of bob's devices read it");
        for (_, r) in &read {
            assert_eq!(body(r), Some(&text[..]));
        }
    }
}

/// A device holds no more one-time prekeys than its config allows (beyond those pending
/// retries hold), in each pool on its own: stored records with one X25519 one-time prekey too
/// many, or one ML-KEM one-time prekey too many, are refused on load.
#[test]
fn stored_one_time_prekeys_beyond_either_cap_are_refused_on_load() {
    let mut w = World::new("fanout one-time caps");
    let mut config = DeviceConfig::default();
    // Devices in these tests are made with five of each.
    config.prekeys.max_one_time_prekeys = 5;
    config.prekeys.max_one_time_kem_prekeys = 5;
    let alice = w.account_with(0, config);
    let a1 = World::addr(alice, 1);
    let store = w.stores[&a1].clone();
    let load = |s: &support::Store| {
        Device::from_records(s.0.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))).err()
    };
    assert_eq!(load(&store), None);
    // One more key of a kind (0x04 X25519, 0x05 ML-KEM): a copy of one under a new id, which
    // its record's key and value both begin with.
    let one_more = |kind: u8| {
        let (key, value) = store.0.iter().find(|(k, _)| k[0] == kind).unwrap();
        let id = u32::MAX.to_be_bytes();
        let (mut key, mut value) = (key.clone(), value.clone());
        key[1..5].copy_from_slice(&id);
        value[..4].copy_from_slice(&id);
        let mut more = store.clone();
        assert!(more.0.insert(key, value).is_none());
        more
    };
    assert_eq!(load(&one_more(0x04)), Some(DecodeError::InvalidValue));
    assert_eq!(load(&one_more(0x05)), Some(DecodeError::InvalidValue));
}
