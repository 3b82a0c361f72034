//! Review 40: identity and linking changes over time (companions unlinked and relinked, contact
//! devices replaced or removed, lists replayed or forgotten, members removed), attacked as
//! sequences of public-API operations with restarts through records. The adversary is the
//! relay, with one account it controls.

mod support;

use ratchetry::devices::{
    AccountKey, AccountKeyPair, DeviceAddress, DeviceId, LinkRequest, ListLimits, SignedDeviceList,
    complete_link,
};
use ratchetry::fanout::{
    Device, DeviceConfig, EnvelopeId, Event, MAX_REPLACED_MESSAGE_IDS, Received, RetryReason,
    StateChanges,
};
use ratchetry::group::GroupId;
use ratchetry::history::HistorySealer;
use ratchetry::testing::SeededRng;
use ratchetry::testing::hooks::{ListEntry, device_binding, sign_device_list};
use ratchetry::{DeviceError, Error, FanoutError, IdentityKeyPair, X3dhError};
use support::{DAY, T0, World, body, tampered};

const G: GroupId = GroupId([0x40; 32]);

/// The one call of `take_changes` in this file: the units' tags from a fixed seed.
fn changes(d: &mut Device) -> StateChanges {
    d.take_changes(&mut SeededRng::from_label("review 40: tags"))
}

/// Writes `a`'s pending changes to its store, through [`changes`].
fn persist(w: &mut World, a: DeviceAddress) {
    let unit = changes(w.device(a));
    w.stores.entry(a).or_default().apply(&unit);
}

/// Reloads `a` from its store, checking the store holds exactly its state.
fn restart_checked(w: &mut World, a: DeviceAddress) {
    persist(w, a);
    let loaded: Device = w.stores[&a].load();
    assert_eq!(*loaded.to_bytes(), *w.devices[&a].to_bytes());
    w.devices.insert(a, loaded);
}

/// `from` sends `text` to `to`'s account; the relay tampers the copy for `reader`, which
/// fails, asks again and reads the resend.
fn resent_direct(
    w: &mut World,
    from: DeviceAddress,
    to: AccountKey,
    reader: DeviceAddress,
    text: &[u8],
) {
    let o = w.send(from, to, text);
    let bad = tampered(&World::envelope_to(&o, reader));
    assert!(w.receive(reader, &bad).is_err());
    let answer = w.ask_again(reader, from, &bad, text);
    let got = w.deliver_ok(&answer);
    assert_eq!(body(&got[0].1), Some(text));
}

// ---------------------------------------------------------------------------------------------
// Findings
// ---------------------------------------------------------------------------------------------

/// FIXED (stop 40; was FINDING, low-medium: a message shown twice; the documented protection
/// of the replaced ids held only against a contact that sends from one device address). The
/// replaced ids are now counted per sender account.
///
/// Sequence: Alice's phone sends group message m; the relay tampers Bob's copy, Bob asks
/// again and reads Alice's resend; the relay keeps m's genuine group envelope. Alice's phone
/// has a few more of its messages resent to Bob over time (19 more: a flaky link). Mallory, a
/// contact the relay works with, links and unlinks companions one after the other (new
/// device ids, each allowed by her own primary) and has Bob read 19 resends from each
/// address (the relay tampers her messages so Bob asks again), about 2,000 in all. The
/// replaced ids make room "at the expense of the sender holding the most", counted per
/// device address: Alice's phone (20) holds the most, so m's genuine id is dropped; the read
/// ring turned long ago (each resend read writes two ids). The relay delivers m's genuine
/// envelope: Bob's sender key for Alice never moved past it, and Bob reads m a second time
/// (after a restart too).
///
/// Fix: count the replaced ids per sender *account* (or per account and the addresses it
/// ever listed), not per device address, so a contact flushes only its own entries however
/// many device ids it links; or drop a departed device's entries first.
#[test]
fn a_contact_churning_device_ids_cannot_flush_another_senders_replaced_ids() {
    const ALICE_RESENDS: usize = 20;
    let mut w = World::new("review40 replaced churn");
    let alice = w.account(0);
    let bob = w.account(0);
    let mallory = w.account(0);
    w.publish_all();
    let (a1, b1, m1) = (
        World::addr(alice, 1),
        World::addr(bob, 1),
        World::addr(mallory, 1),
    );
    w.set_members(G, &[alice, bob]);
    let first = w.send_group(a1, G, b"first");
    w.deliver_ok(&first);

    // m: read by Bob through a resend; its genuine envelope held back by the relay.
    let o = w.send_group(a1, G, b"transfer $100");
    let genuine = o.group.clone().unwrap().0;
    let bad = tampered(&genuine);
    assert!(w.receive(b1, &bad).is_err());
    let answer = w.ask_again(b1, a1, &bad, b"transfer $100");
    let got = w.deliver_ok(&answer);
    assert!(matches!(
        got.last().unwrap().1,
        Received::Group {
            resent: Some(_),
            ..
        }
    ));

    for i in 1..ALICE_RESENDS {
        w.now = w.now.plus_millis(1000);
        resent_direct(&mut w, a1, bob, b1, format!("alice {i}").as_bytes());
    }
    // Mallory: fewer resends per address than Alice's phone, from as many addresses as it
    // takes to make the set overflow by one.
    let per = ALICE_RESENDS - 1;
    let mut left = MAX_REPLACED_MESSAGE_IDS + 1 - ALICE_RESENDS;
    let mut sender = m1;
    loop {
        for _ in 0..per.min(left) {
            w.now = w.now.plus_millis(1000);
            resent_direct(&mut w, sender, bob, b1, b"mallory");
            left -= 1;
        }
        if sender != m1 {
            let now = w.now;
            w.primary(&mallory).unlink(now, sender.device).unwrap();
            w.devices.remove(&sender);
            w.publish(&mallory);
        }
        if left == 0 {
            break;
        }
        sender = w.link(&mallory);
        w.publish(&mallory);
    }

    restart_checked(&mut w, b1);
    let again = w.receive(b1, &genuine);
    assert_eq!(
        again.as_ref().err(),
        Some(&Error::from(FanoutError::Duplicate {
            envelope_id: EnvelopeId::of(&genuine)
        })),
        "m read through a resend came back: {:?}",
        again.as_ref().map(body)
    );
}

// ---------------------------------------------------------------------------------------------
// Sound
// ---------------------------------------------------------------------------------------------

/// Links a companion with `identity` (kept by the caller: a companion linking again with its
/// old key) to `account`; nobody but the companion has the new list yet.
fn link_with(w: &mut World, account: &AccountKey, identity: &IdentityKeyPair) -> DeviceAddress {
    let mut rng = SeededRng::from_label("review40 link");
    let now = w.now;
    let primary = w.primary(account);
    let invitation = primary.invite(&mut rng, now).unwrap();
    let approval = primary
        .approve(now, &LinkRequest::new(identity, &invitation))
        .unwrap();
    let (list, confirmation) =
        complete_link(identity, &invitation, &approval, &ListLimits::default()).unwrap();
    primary.confirm(&confirmation).unwrap();
    let (device, _) = Device::new(
        &mut rng,
        now,
        identity.clone(),
        approval.device,
        list,
        5,
        DeviceConfig::default(),
    )
    .unwrap();
    let address = device.address();
    w.devices.insert(address, device);
    persist(w, address);
    address
}

fn not_in_list(a: DeviceAddress) -> Error {
    DeviceError::NotInList(a).into()
}

/// A companion unlinked while its envelopes are in flight: its own copy to the phone, its
/// message and retry request to a contact, and its history offer to the phone were all made
/// while it was listed and are delivered after the unlink, across restarts of both readers:
/// each is `NotInList` and changes nothing. A retry request it made before the unlink, read
/// by the contact then, is refused when the contact's app answers it after. The contact's
/// next group send rotates and reaches the phone alone.
#[test]
fn an_unlinked_companions_envelopes_in_flight_are_refused_after_the_unlink() {
    let mut w = World::new("review40 unlinked in flight");
    let (alice, bob) = (w.account(1), w.account(0));
    w.publish_all();
    let (a1, a2, b1) = (
        World::addr(alice, 1),
        World::addr(alice, 2),
        World::addr(bob, 1),
    );
    w.set_members(G, &[alice, bob]);
    let first = w.send_group(b1, G, b"first");
    w.deliver_ok(&first);
    let o = w.send(b1, alice, b"hello");
    w.deliver_ok(&o);

    // In flight from a2, made while listed.
    let from_a2 = w.send(a2, bob, b"from the laptop");
    let own_copy = World::envelope_to(&from_a2, a1);
    let to_bob = World::envelope_to(&from_a2, b1);
    let o = w.send(b1, alice, b"asked again");
    let bad = tampered(&World::envelope_to(&o, a2));
    assert!(w.receive(a2, &bad).is_err());
    let (to, early_request) = w
        .request_retry(a2, &bad, RetryReason::AuthenticationFailed)
        .unwrap();
    assert_eq!(to, b1);
    let Ok(Received::RetryRequest(read_before)) = w.receive(b1, &early_request) else {
        panic!("a2 was a recipient")
    };
    let bad2 = tampered(&World::envelope_to(&o, a2));
    let (_, late_request) = w
        .request_retry(a2, &bad2, RetryReason::AuthenticationFailed)
        .unwrap();
    let mut sealer = HistorySealer::new(&mut w.rng);
    let _ = sealer.push(b"laptop history");
    let (_, offer) = sealer.finish();
    let offer = w
        .run(a2, |d, rng, now| d.send_history_offer(rng, now, a1, &offer))
        .unwrap();
    let offer = World::envelope_to(&offer, a1);

    let now = w.now;
    w.primary(&alice).unlink(now, a2.device).unwrap();
    w.publish(&alice);
    restart_checked(&mut w, a1);
    restart_checked(&mut w, b1);
    w.refused(a1, &own_copy, not_in_list(a2));
    w.refused(a1, &offer, not_in_list(a2));
    w.refused(b1, &to_bob, not_in_list(a2));
    w.refused(b1, &late_request, not_in_list(a2));
    let answer = w.run(b1, |d, rng, now| {
        d.answer_retry(rng, now, &read_before, b"asked again")
    });
    assert_eq!(answer.err(), Some(not_in_list(a2)));

    let next = w.send_group(b1, G, b"after the unlink");
    assert_eq!(
        next.envelopes.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
        [a1],
        "a new generation, for the phone alone"
    );
    assert_eq!(*next.group.as_ref().unwrap().1, [a1]);
}

/// A companion unlinked and linked again with the same identity key, under a new id: it is
/// another device. It cannot ask for what was sent to its old address (the envelope names
/// another recipient), nor for a group message of a generation its old address held
/// (`NotEntitled`), nor read it; the sender's next group send rotates (the old address left)
/// and the new device reads that.
#[test]
fn a_companion_relinked_with_its_old_identity_gets_nothing_of_its_old_address() {
    let mut w = World::new("review40 relinked");
    let (alice, bob) = (w.account(0), w.account(0));
    w.publish_all();
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let laptop = IdentityKeyPair::generate(&mut w.rng);
    let a2 = link_with(&mut w, &alice, &laptop);
    w.publish_all();
    w.set_members(G, &[alice, bob]);
    let m = w.send_group(b1, G, b"while the laptop was linked");
    w.deliver_ok(&m);
    let direct = w.send(b1, alice, b"direct");
    w.deliver_ok(&direct);
    let to_old = World::envelope_to(&direct, a2);
    let m_group = m.group.clone().unwrap().0;

    let now = w.now;
    w.primary(&alice).unlink(now, a2.device).unwrap();
    w.publish(&alice);
    w.devices.remove(&a2);
    w.now = w.now.plus_millis(1000);
    let a3 = link_with(&mut w, &alice, &laptop);
    assert_ne!(a3, a2);
    w.publish_all();
    w.set_members(G, &[alice, bob]);
    restart_checked(&mut w, b1);

    let now = w.now;
    let mut rng = SeededRng::from_label("review40 relinked asks");
    let d = w.device(a3);
    assert_eq!(
        d.request_retry(&mut rng, now, &to_old, RetryReason::NoSession)
            .err(),
        Some(FanoutError::NotForThisDevice.into())
    );
    assert!(matches!(
        d.receive(now, &m_group),
        Err(Error::Fanout(FanoutError::SenderKeyMissing { .. }))
    ));
    let (to, request) = w
        .request_retry(a3, &m_group, RetryReason::SenderKeyMissing)
        .unwrap();
    assert_eq!(to, b1);
    w.refused(b1, &request, FanoutError::NotEntitled.into());

    let next = w.send_group(b1, G, b"after the relink");
    let mut given: Vec<_> = next.envelopes.iter().map(|(a, _)| *a).collect();
    given.sort();
    let mut expected = vec![a1, a3];
    expected.sort();
    assert_eq!(given, expected, "a new generation");
    let got = w.deliver_ok(&next);
    let read = got.iter().find(|(a, r)| *a == a3 && body(r).is_some());
    assert_eq!(
        read.and_then(|(_, r)| body(r)),
        Some(&b"after the relink"[..])
    );
}

/// Gives every device of the world `account`'s `list` (a list the relay carries), persisted.
fn follow(w: &mut World, account: &AccountKey, list: &SignedDeviceList) {
    let now = w.now;
    for a in w.addresses() {
        let _ = w.device(a).update_device_list(now, account, list.clone());
        persist(w, a);
    }
}

/// Mallory, an account the relay controls whose key signs what it likes: a phone and a
/// companion `m2` with `companion`'s identity, at list version `version`.
fn mallory_list(
    w: &World,
    key: &AccountKeyPair,
    version: u64,
    phone: &IdentityKeyPair,
    companion: &IdentityKeyPair,
) -> SignedDeviceList {
    let account = key.public();
    let now = w.now;
    let entries: [ListEntry; 2] = [
        (
            DeviceId(1),
            phone.public(),
            T0,
            None,
            device_binding(phone, &account),
        ),
        (
            DeviceId(2),
            companion.public(),
            now,
            Some(now.plus_millis(DAY)),
            device_binding(companion, &account),
        ),
    ];
    sign_device_list(key, version, now, &entries)
}

fn new_device(w: &mut World, identity: &IdentityKeyPair, id: u32, list: &SignedDeviceList) {
    let account = list.account();
    let verified = list
        .clone()
        .verify(&account, None, &ListLimits::default())
        .unwrap();
    let (d, _) = Device::new(
        &mut w.rng,
        w.now,
        identity.clone(),
        DeviceId(id),
        verified,
        5,
        DeviceConfig::default(),
    )
    .unwrap();
    let a = d.address();
    w.devices.insert(a, d);
    persist(w, a);
}

/// A contact's companion replaced by another identity key at the same address (Mallory's
/// account signs it), while the old identity's envelopes are in flight: its late message and
/// its late sender key are `NoSession` (the old sessions went with the identity change), its
/// late group message `SenderKeyMissing` (its key went too), across a restart. The new
/// identity asking for a message sent to the old one at that address is `NotEntitled`, and
/// the next group send rotates, giving the new identity a new generation only.
#[test]
fn a_replaced_contact_devices_late_envelopes_and_retries_are_refused() {
    let mut w = World::new("review40 replaced");
    let bob = w.account(0);
    w.publish_all();
    let b1 = World::addr(bob, 1);
    let key = AccountKeyPair::generate(&mut w.rng);
    let mallory = key.public();
    let (phone, old) = (
        IdentityKeyPair::generate(&mut w.rng),
        IdentityKeyPair::generate(&mut w.rng),
    );
    let v1 = mallory_list(&w, &key, 1, &phone, &old);
    new_device(&mut w, &phone, 1, &v1);
    new_device(&mut w, &old, 2, &v1);
    let (m1, m2) = (World::addr(mallory, 1), World::addr(mallory, 2));
    follow(&mut w, &mallory, &v1);
    w.publish(&bob);
    w.set_members(G, &[bob, mallory]);
    let first = w.send_group(b1, G, b"first");
    w.deliver_ok(&first);
    let hello = w.send(m2, bob, b"hello");
    w.deliver_ok(&hello);
    let late = World::envelope_to(&w.send(m2, bob, b"late"), b1);
    let from_m2 = w.send_group(m2, G, b"from the old m2");
    let late_key = World::envelope_to(&from_m2, b1);
    let late_group = from_m2.group.clone().unwrap().0;
    let to_old = w.send(b1, mallory, b"to the old m2");
    w.deliver_ok(&to_old);
    let to_old = World::envelope_to(&to_old, m2);

    let new = IdentityKeyPair::generate(&mut w.rng);
    w.now = w.now.plus_millis(1000);
    let v2 = mallory_list(&w, &key, 2, &phone, &new);
    w.devices.remove(&m2);
    new_device(&mut w, &new, 2, &v2);
    let now = w.now;
    let events = w
        .device(b1)
        .update_device_list(now, &mallory, v2.clone())
        .unwrap();
    assert_eq!(events, [Event::IdentityChanged(m2)]);
    follow(&mut w, &mallory, &v2);
    w.publish(&bob);
    w.set_members(G, &[bob, mallory]);
    restart_checked(&mut w, b1);

    w.refused(b1, &late, FanoutError::NoSession(m2).into());
    w.refused(b1, &late_key, FanoutError::NoSession(m2).into());
    let key_id = match w.device(b1).receive(now, &late_group) {
        Err(Error::Fanout(FanoutError::SenderKeyMissing { from, key_id })) if from == m2 => key_id,
        other => panic!("the old identity's group message: {other:?}"),
    };
    w.refused(
        b1,
        &late_group,
        FanoutError::SenderKeyMissing { from: m2, key_id }.into(),
    );
    let (to, request) = w
        .request_retry(m2, &to_old, RetryReason::NoSession)
        .unwrap();
    assert_eq!(to, b1);
    w.refused(b1, &request, FanoutError::NotEntitled.into());

    let next = w.send_group(b1, G, b"after the change");
    let mut given: Vec<_> = next.envelopes.iter().map(|(a, _)| *a).collect();
    given.sort();
    assert_eq!(
        given,
        [m1, m2],
        "a new generation for both, the new m2 included"
    );
    let got = w.deliver_ok(&next);
    let read: Vec<_> = got
        .iter()
        .filter_map(|(a, r)| body(r).map(|b| (*a, b)))
        .collect();
    assert_eq!(
        read,
        [
            (m1, &b"after the change"[..]),
            (m2, &b"after the change"[..])
        ]
    );
}

/// An account forgotten and followed again while the relay holds its envelopes: its older
/// list is refused (`Rollback`, as before the forget), a pre-key message read before the
/// forget is `Duplicate`, and the answer to a retry asked before the forget (its prekeys
/// were deleted with the retry) reads nothing; after a restart too.
#[test]
fn a_forgotten_account_followed_again_gets_no_rollback_replay_or_stale_answer() {
    let (mut w, [alice, bob], [a1, b1]) = World::phones::<2>("review40 forgotten");
    let v1 = w.primary(&alice).device_list().signed().clone();
    let first = w.send(a1, bob, b"first");
    w.deliver_ok(&first);
    let first = World::envelope_to(&first, b1);
    let reply = w.send(b1, alice, b"reply");
    w.deliver_ok(&reply);
    let now = w.now.plus_millis(1000);
    w.now = now;
    w.primary(&alice).renew(now).unwrap();
    w.publish(&alice);
    let asked = w.send(a1, bob, b"asked");
    let bad = tampered(&World::envelope_to(&asked, b1));
    assert!(w.receive(b1, &bad).is_err());
    let (_, request) = w
        .request_retry(b1, &bad, RetryReason::AuthenticationFailed)
        .unwrap();
    let Ok(Received::RetryRequest(req)) = w.receive(a1, &request) else {
        panic!("b1 was a recipient")
    };
    let answer = w
        .run(a1, |d, rng, now| d.answer_retry(rng, now, &req, b"asked"))
        .unwrap();
    let answer = World::envelope_to(&answer, b1);

    w.device(b1).forget_account(&alice);
    restart_checked(&mut w, b1);
    let d = w.device(b1);
    let before = d.to_bytes();
    assert_eq!(
        d.update_device_list(now, &alice, v1).err(),
        Some(
            DeviceError::Rollback {
                known: 2,
                received: 1
            }
            .into()
        )
    );
    assert_eq!(*before, *d.to_bytes());
    let v2 = w.primary(&alice).device_list().signed().clone();
    let events = w.device(b1).update_device_list(now, &alice, v2).unwrap();
    assert_eq!(
        events,
        [Event::DeviceAdded(a1)],
        "followed again: first seen"
    );
    restart_checked(&mut w, b1);
    w.refused(
        b1,
        &first,
        FanoutError::Duplicate {
            envelope_id: EnvelopeId::of(&first),
        }
        .into(),
    );
    let d = w.device(b1);
    let before = d.to_bytes();
    let stale = d.receive(now, &answer);
    assert!(
        matches!(stale, Err(Error::X3dh(X3dhError::UnknownOneTimePreKey(_)))),
        "an answer to a retry dropped with the forget: {stale:?}"
    );
    assert_eq!(*before, *d.to_bytes());
}

/// A member removed from a group, her device restarting the sender in between: the relay
/// shows her the next group message, whose retry is `NotEntitled` (a new generation, not
/// given to her); her retry for a message from while she was a member is answered with that
/// message alone, no sender key; an old list of the sender's account replayed to her is
/// `Rollback`.
#[test]
fn a_removed_member_gets_no_later_key_by_retry_or_replayed_list() {
    let (mut w, [alice, bob, carol], [a1, b1, c1]) = World::phones::<3>("review40 removed");
    let v1 = w.primary(&alice).device_list().signed().clone();
    w.set_members(G, &[alice, bob, carol]);
    let before = w.send_group(a1, G, b"while a member");
    for (to, e) in &before.envelopes {
        w.receive(*to, e).unwrap();
    }
    let before = before.group.clone().unwrap().0;
    w.receive(b1, &before).unwrap();
    let bad = tampered(&before);
    assert!(w.receive(c1, &bad).is_err(), "the relay broke her copy");
    w.set_members(G, &[alice, bob]);
    let now = w.now.plus_millis(1000);
    w.now = now;
    w.primary(&alice).renew(now).unwrap();
    w.publish(&alice);
    restart_checked(&mut w, a1);
    let after = w.send_group(a1, G, b"after the removal");
    assert_eq!(
        after.envelopes.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
        [b1]
    );
    w.deliver_ok(&after);
    let after = after.group.clone().unwrap().0;
    let key_id = match w.device(c1).receive(now, &after) {
        Err(Error::Fanout(FanoutError::SenderKeyMissing { from, key_id })) if from == a1 => key_id,
        other => panic!("the message after her removal: {other:?}"),
    };
    let (_, request) = w
        .request_retry(c1, &after, RetryReason::SenderKeyMissing)
        .unwrap();
    w.refused(a1, &request, FanoutError::NotEntitled.into());
    let (_, request) = w
        .request_retry(c1, &bad, RetryReason::AuthenticationFailed)
        .unwrap();
    let Ok(Received::RetryRequest(req)) = w.receive(a1, &request) else {
        panic!("c1 held that generation")
    };
    let answer = w
        .run(a1, |d, rng, now| {
            d.answer_retry(rng, now, &req, b"while a member")
        })
        .unwrap();
    assert_eq!(answer.envelopes.len(), 1, "the message alone, no key");
    let got = w.deliver_ok(&answer);
    assert!(matches!(
        got[0].1,
        Received::Group {
            resent: Some(_),
            ..
        }
    ));
    w.refused(
        c1,
        &after,
        FanoutError::SenderKeyMissing { from: a1, key_id }.into(),
    );
    let d = w.device(c1);
    assert_eq!(
        d.update_device_list(now, &alice, v1).err(),
        Some(
            DeviceError::Rollback {
                known: 2,
                received: 1
            }
            .into()
        )
    );
}
