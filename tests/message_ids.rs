//! Message ids (PROTOCOL.md 18.4): one id per message, the same at the sender, on every
//! recipient device and on the sender's own other devices, for 1:1 and group messages and
//! their resends; and a relay that tampers with, reorders, replays or re-wraps envelopes
//! cannot give one message two ids or two messages one.

mod support;

use rand_core::Rng;
use ratchetry::devices::DeviceAddress;
use ratchetry::fanout::{EnvelopeId, MessageId, Outbox, Received};
use ratchetry::group::GroupId;
use ratchetry::testing::hooks::seal_raw_payload;
use support::{GROUP_SALT, World, body, tampered};

const ROOM: GroupId = GroupId([0x52; 32]);

/// The message id a device reports for a message it read.
fn id_of(r: &Received) -> MessageId {
    match r {
        Received::Direct { id, .. } | Received::OwnCopy { id, .. } | Received::Group { id, .. } => {
            *id
        }
        other => panic!("not a message: {other:?}"),
    }
}

fn sent_id(o: &Outbox) -> MessageId {
    o.message_id.expect("a message's outbox names its id")
}

#[test]
fn a_direct_message_has_one_id_at_the_sender_and_on_every_device() {
    let mut w = World::new("message ids direct");
    let alice = w.account(2);
    let bob = w.account(2);
    w.publish_all();
    let a1 = World::addr(alice, 1);
    let o = w.send(a1, bob, b"hi bob");
    // Bob's three devices and Alice's two others: five envelopes, five envelope ids.
    let envelope_ids: std::collections::BTreeSet<_> =
        o.envelopes.iter().map(|(_, e)| EnvelopeId::of(e)).collect();
    assert_eq!(envelope_ids.len(), 5);
    let got = w.deliver_ok(&o);
    assert_eq!(got.len(), 5);
    for (to, r) in &got {
        assert_eq!(id_of(r), sent_id(&o), "{to:?}");
        let own_copy = matches!(r, Received::OwnCopy { .. });
        assert_eq!(own_copy, to.account == alice);
    }
    // A message to this account's own devices alone has one id too.
    let note = w.send(a1, alice, b"note to self");
    for (_, r) in w.deliver_ok(&note) {
        assert_eq!(id_of(&r), sent_id(&note));
    }
    // The same body again is another message, with another id.
    let again = w.send(a1, bob, b"hi bob");
    assert_ne!(sent_id(&again), sent_id(&o));
    for (_, r) in w.deliver_ok(&again) {
        assert_eq!(id_of(&r), sent_id(&again));
    }
}

#[test]
fn a_group_message_has_one_id_at_the_sender_and_on_every_member_device() {
    let mut w = World::new("message ids group");
    let alice = w.account(1);
    let bob = w.account(2);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob]);
    let a1 = World::addr(alice, 1);
    let o = w.send_group(a1, ROOM, b"hello room");
    let got: Vec<_> = w
        .deliver_ok(&o)
        .into_iter()
        .filter(|(_, r)| matches!(r, Received::Group { .. }))
        .collect();
    // Bob's three devices and Alice's laptop, which reads the same group envelope.
    assert_eq!(got.len(), 4);
    assert!(got.iter().any(|(to, _)| *to == World::addr(alice, 2)));
    for (to, r) in &got {
        assert_eq!(id_of(r), sent_id(&o), "{to:?}");
    }
    // A 1:1 message and a group message never share an id, even with the same body.
    let direct = w.send(a1, bob, b"hello room");
    assert_ne!(sent_id(&direct), sent_id(&o));
}

#[test]
fn a_resend_keeps_the_message_id_for_recipients_own_devices_and_groups() {
    let mut w = World::new("message ids resend");
    let alice = w.account(1);
    let bob = w.account(0);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob]);
    let (a1, a2, b1) = (
        World::addr(alice, 1),
        World::addr(alice, 2),
        World::addr(bob, 1),
    );
    // A 1:1 message whose copies to Bob and to Alice's laptop the relay broke.
    let o = w.send(a1, bob, b"lunch?");
    for to in [b1, a2] {
        let broken = tampered(&World::envelope_to(&o, to));
        assert!(w.receive(to, &broken).is_err());
        let answer = w.ask_again(to, a1, &broken, b"lunch?");
        // The sender's answer names the message's id, as its send did.
        assert_eq!(answer.message_id, o.message_id);
        let r = w.receive(to, &World::envelope_to(&answer, to)).unwrap();
        assert_eq!(id_of(&r), sent_id(&o));
        assert_eq!(body(&r), Some(&b"lunch?"[..]));
    }
    // A group message whose envelope the relay broke for Bob alone.
    let g = w.send_group(a1, ROOM, b"room news");
    for (to, e) in &g.envelopes {
        w.receive(*to, e).unwrap();
    }
    let (envelope, _) = g.group.clone().unwrap();
    assert_eq!(id_of(&w.receive(a2, &envelope).unwrap()), sent_id(&g));
    let broken = tampered(&envelope);
    assert!(w.receive(b1, &broken).is_err());
    let answer = w.ask_again(b1, a1, &broken, b"room news");
    assert_eq!(answer.message_id, g.message_id);
    let resent = answer.envelopes.last().unwrap().1.clone();
    let r = w.receive(b1, &resent).unwrap();
    assert!(matches!(
        r,
        Received::Group {
            resent: Some(_),
            ..
        }
    ));
    assert_eq!(id_of(&r), sent_id(&g));
}

/// The relay holds two messages with the same body and delivers them to one of Bob's devices
/// in order, to the other reversed, and to each again: every device reports, for each
/// envelope, the id the sender gave that message, the two ids differ, and a redelivery is a
/// duplicate, not a third message.
#[test]
fn a_relay_reordering_or_replaying_cannot_merge_or_split_ids() {
    let mut w = World::new("message ids reorder");
    let alice = w.account(0);
    let bob = w.account(1);
    w.publish_all();
    let a1 = World::addr(alice, 1);
    let (b1, b2) = (World::addr(bob, 1), World::addr(bob, 2));
    let first = w.send(a1, bob, b"ok");
    let second = w.send(a1, bob, b"ok");
    assert_ne!(sent_id(&first), sent_id(&second));
    let on = |w: &mut World, to: DeviceAddress, o: &Outbox| {
        id_of(&w.receive(to, &World::envelope_to(o, to)).unwrap())
    };
    assert_eq!(on(&mut w, b1, &first), sent_id(&first));
    assert_eq!(on(&mut w, b1, &second), sent_id(&second));
    assert_eq!(on(&mut w, b2, &second), sent_id(&second));
    assert_eq!(on(&mut w, b2, &first), sent_id(&first));
    for (to, o) in [(b1, &first), (b2, &second)] {
        let again = World::envelope_to(o, to);
        assert!(matches!(
            w.receive(to, &again),
            Err(ratchetry::Error::Fanout(
                ratchetry::FanoutError::Duplicate { .. }
            ))
        ));
    }
}

/// Every single-bit change a relay can make to a 1:1 copy, to an own copy or to a group
/// envelope (its routing header, list versions and digest, the message header with its salt,
/// the ciphertext that holds the nonce and body, the tag, the signature) is refused, with
/// nothing changed: no changed envelope is read under another id, and the genuine one still
/// reads under the sender's.
#[test]
fn no_bit_a_relay_flips_yields_another_id() {
    let mut w = World::new("message ids bit flips");
    let alice = w.account(1);
    let bob = w.account(0);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob]);
    let (a1, a2, b1) = (
        World::addr(alice, 1),
        World::addr(alice, 2),
        World::addr(bob, 1),
    );
    // Sessions and sender keys first, so the envelopes below are plain ratchet and group
    // messages; then one of each kind.
    let warm = w.send_group(a1, ROOM, b"warm up");
    w.deliver_ok(&warm);
    let direct = w.send(a1, bob, b"flip me");
    let group = w.send_group(a1, ROOM, b"flip me too");
    let (group_envelope, _) = group.group.clone().unwrap();
    for (to, envelope, expected) in [
        (b1, World::envelope_to(&direct, b1), sent_id(&direct)),
        (a2, World::envelope_to(&direct, a2), sent_id(&direct)),
        (b1, group_envelope.clone(), sent_id(&group)),
        (a2, group_envelope, sent_id(&group)),
    ] {
        let now = w.now;
        for at in 0..envelope.len() {
            for bit in [0x01, 0x80] {
                let mut changed = envelope.clone();
                changed[at] ^= bit;
                let d = w.device(to);
                let before = d.to_bytes();
                let r = d.receive(now, &changed);
                assert!(r.is_err(), "byte {at} bit {bit:#x}: read as {r:?}");
                assert_eq!(*before, *d.to_bytes(), "byte {at} changed the device");
            }
        }
        assert_eq!(id_of(&w.receive(to, &envelope).unwrap()), expected);
    }
}

/// Mallory, a contact the server works with, learns the nonce and body of Alice's message (she
/// predicts Alice's draw here; a recipient could equally leak them) and sends Bob a message
/// with both. Bob reads Mallory's message under an id of its own: the id binds the sender's
/// address, which the envelope authenticates, so nobody can claim another sender's message id
/// (for an edit, a reaction or a receipt).
#[test]
fn a_contact_cannot_claim_another_senders_message_id() {
    let mut w = World::new("message ids squatting");
    let alice = w.account(0);
    let bob = w.account(0);
    let mallory = w.account(0);
    w.publish_all();
    let (a1, b1, m1) = (
        World::addr(alice, 1),
        World::addr(bob, 1),
        World::addr(mallory, 1),
    );
    // Sessions first, so Alice's next send draws the nonce first.
    let hello = w.send(a1, bob, b"hello");
    w.deliver_ok(&hello);
    let hello = w.send(m1, bob, b"hello");
    w.deliver_ok(&hello);
    let mut predicted = w.rng.clone();
    let mut nonce = [0u8; 16];
    predicted.fill_bytes(&mut nonce);
    let genuine = w.send(a1, bob, b"pay Mallory 5");
    let genuine_id = id_of(&w.deliver_ok(&genuine)[0].1);
    assert_eq!(genuine_id, sent_id(&genuine));
    // The same payload, byte for byte, sealed by Mallory.
    let payload = [&[2u8, 0x0c, 0x01][..], &nonce, &[0], b"pay Mallory 5"].concat();
    let now = w.now;
    let forged = {
        let md = w.devices.get_mut(&m1).unwrap();
        seal_raw_payload(md, &mut w.rng, now, b1, &payload).unwrap()
    };
    let r = w.receive(b1, &forged).unwrap();
    assert!(matches!(r, Received::Direct { from, .. } if from == m1));
    assert_ne!(id_of(&r), genuine_id);
}

/// `EnvelopeId::of_either_kind` names a sealed message as either kind, pairwise first, one of
/// them the envelope's own id: a pairwise envelope carrying a group message's salt (a relay's
/// re-wrap) names the group envelope's id too. Any other bytes have their own id alone.
#[test]
fn an_envelope_is_named_as_either_kind_of_its_senders_salt() {
    let mut w = World::new("message ids either kind");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob]);
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let g = World::group_envelope_for(&w.send_group(a1, ROOM, b"group"), b1);
    let p = World::envelope_to(&w.send(a1, bob, b"direct"), b1);
    let [gp, gg] = EnvelopeId::of_either_kind(&g)[..] else {
        panic!("two ids")
    };
    assert_eq!(gg, EnvelopeId::of(&g));
    assert_ne!(gp, gg);
    let [pp, pg] = EnvelopeId::of_either_kind(&p)[..] else {
        panic!("two ids")
    };
    assert_eq!(pp, EnvelopeId::of(&p));
    assert_ne!(pp, pg);
    // The pairwise envelope re-wrapped with the group message's salt.
    let forged = w.with_pairwise_salt(b1, &p, &g[GROUP_SALT]);
    assert_eq!(EnvelopeId::of_either_kind(&forged), vec![gp, gg]);
    assert_eq!(EnvelopeId::of(&forged), gp);
    let now = w.now;
    let (_, request) = w
        .device(b1)
        .clone()
        .request_retry(
            &mut w.rng,
            now,
            &p,
            ratchetry::fanout::RetryReason::NoSession,
        )
        .unwrap();
    for other in [&request[..], b"not an envelope"] {
        assert_eq!(
            EnvelopeId::of_either_kind(other),
            vec![EnvelopeId::of(other)]
        );
    }
}
