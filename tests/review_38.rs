//! Review 38: a device's life as sequences of public-API operations, the server as the
//! adversary (dropping, holding back, replaying, redelivering across restarts), with a contact
//! or an unlinked companion on its side. Focus: crash consistency (units lost before they
//! were stored, redeliveries across restarts), retries replayed or answered across crashes,
//! call keys and history offers across an unlink, and encodings with two forms.
//!
//! Found and fixed: a restored device issued again the send ids its lost state issued after
//! the backup (two bodies under one id in the app's store); an app's own retry or withheld
//! reason with a named reason's number arrived as that reason (`ReservedReason` now). Pinned
//! as sound: a retry across a crash at every step, late messages across restarts, a rotation
//! stored but never shipped, an unlinked companion's retries and replays, and redirected
//! retry requests.

mod support;

use ratchetry::calls::{Call, CallConfig, CallKind};
use ratchetry::devices::{DeviceAddress, DeviceId};
use ratchetry::fanout::{
    Device, Outgoing, RESTORE_SEND_ID_SKIP, Received, RetryReason, RetryRequest,
};
use ratchetry::group::GroupId;
use ratchetry::history::HistorySealer;
use ratchetry::{Error, FanoutError, Timestamp};
use support::{World, body, tampered};

const G: GroupId = GroupId([0x38; 32]);

/// `to` refuses `envelope` (any error), byte-identical and with nothing to persist; returns
/// the error.
fn refused_any(w: &mut World, to: DeviceAddress, envelope: &[u8]) -> Error {
    let now = w.now;
    let d = w.device(to);
    let before = d.to_bytes();
    let e = d.receive(now, envelope).expect_err("refused");
    assert_eq!(*before, *d.to_bytes(), "a refusal changed {to:?}");
    assert!(!d.has_changes(), "a refusal left changes on {to:?}");
    e
}

/// Runs `op` on a copy of `a` and throws its changes away: the app crashed before the unit
/// was stored (so, by the contract, nothing it produced left the device). Returns the result.
fn crashed<T>(w: &mut World, a: DeviceAddress, op: impl FnOnce(&mut Device, &mut World) -> T) -> T {
    let mut d = w.devices[&a].clone();
    let r = op(&mut d, w);
    // The unit is lost; the device comes back from its records.
    w.restart(a);
    r
}

fn restart_checked(w: &mut World, a: DeviceAddress) {
    let loaded = w.stores[&a].load();
    assert_eq!(
        *loaded.to_bytes(),
        *w.devices[&a].to_bytes(),
        "records of {a:?} do not rebuild it"
    );
    w.restart(a);
}

/// A retry, end to end, with a crash at every step: Bob's copy of Alice's message is broken
/// by the relay; Bob asks again; Alice's app reads the request, answers, and crashes before
/// storing the answer's unit (so the answer never left); after the restart it answers again
/// from the request it kept (`RetryRequest::to_bytes`); Bob reads the answer and crashes
/// before storing; the relay redelivers it and Bob reads it once more (the first read was
/// never shown); then the genuine copy, the answer and the request are all `Duplicate` or
/// refused, a third answer to the same request is `Duplicate` at Alice, and both sides talk
/// on through restarts from records.
#[test]
fn a_retry_survives_a_crash_at_every_step_and_delivers_once() {
    let (mut w, alice, bob, a1, b1) = World::two_talking("review38 retry crashes");
    let o = w.send(a1, bob, b"the message");
    let genuine = World::envelope_to(&o, b1);
    let broken = tampered(&genuine);
    assert!(w.receive(b1, &broken).is_err());
    let (to, request) = w
        .request_retry(b1, &broken, RetryReason::AuthenticationFailed)
        .unwrap();
    assert_eq!(to, a1);
    let Ok(Received::RetryRequest(req)) = w.receive(a1, &request) else {
        panic!("Alice reads the request")
    };
    let kept = req.to_bytes();
    // Alice's answer is sealed, then the app dies before storing it.
    let lost = crashed(&mut w, a1, |d, w| {
        d.answer_retry(&mut w.rng, w.now, &req, b"the message")
    });
    assert!(matches!(lost, Ok(Outgoing::Ready(_))));
    // The request was read and stored: a redelivery is a duplicate, not a second request.
    assert!(matches!(
        refused_any(&mut w, a1, &request),
        Error::Fanout(FanoutError::Duplicate { .. })
    ));
    let req = RetryRequest::from_bytes(&kept).unwrap();
    let answer = w
        .run(a1, |d, rng, now| {
            d.answer_retry(rng, now, &req, b"the message")
        })
        .unwrap();
    let env = World::envelope_to(&answer, b1);
    // Bob reads it and dies before storing.
    let first = crashed(&mut w, b1, |d, w| d.receive(w.now, &env));
    assert_eq!(body(&first.unwrap()), Some(&b"the message"[..]));
    // Redelivered after the restart: read (the only read that counts).
    let read = w.receive(b1, &env).unwrap();
    assert_eq!(body(&read), Some(&b"the message"[..]));
    let Received::Direct { resent, .. } = read else {
        panic!("a direct message")
    };
    assert!(resent.is_some());
    restart_checked(&mut w, b1);
    for again in [&genuine, &env] {
        assert!(matches!(
            refused_any(&mut w, b1, again),
            Error::Fanout(FanoutError::Duplicate { .. })
        ));
    }
    // The same request answered a third time: refused, nothing changes.
    let before = w.device(a1).to_bytes();
    let now = w.now;
    let third = {
        let (d, rng) = (w.devices.get_mut(&a1).unwrap(), &mut w.rng);
        d.answer_retry(rng, now, &req, b"the message")
    };
    assert!(matches!(
        third,
        Err(Error::Fanout(FanoutError::Duplicate { .. }))
    ));
    assert_eq!(*before, *w.device(a1).to_bytes());
    restart_checked(&mut w, a1);
    // Both sides go on, across restarts.
    for (from, to, peer) in [(b1, alice, a1), (a1, bob, b1), (b1, alice, a1)] {
        let o = w.send(from, to, b"on");
        let got = w.receive(peer, &World::envelope_to(&o, peer)).unwrap();
        assert_eq!(body(&got), Some(&b"on"[..]));
        restart_checked(&mut w, from);
        restart_checked(&mut w, peer);
    }
}

/// Messages held back across restarts: Alice sends three; Bob reads the third (keeping
/// skipped keys for the first two), restarts, reads the first but crashes before storing,
/// restarts, and reads the first (again), the second, then every redelivery is `Duplicate`.
/// A skipped key is used once: its record goes with the read that used it.
#[test]
fn late_messages_read_once_across_crashes_and_restarts() {
    let (mut w, _alice, bob, a1, b1) = World::two_talking("review38 late");
    let sent: Vec<_> = (0..3u8)
        .map(|i| World::envelope_to(&w.send(a1, bob, &[i]), b1))
        .collect();
    assert_eq!(body(&w.receive(b1, &sent[2]).unwrap()), Some(&[2u8][..]));
    restart_checked(&mut w, b1);
    let lost = crashed(&mut w, b1, |d, w| d.receive(w.now, &sent[0]));
    assert_eq!(body(&lost.unwrap()), Some(&[0u8][..]));
    assert_eq!(body(&w.receive(b1, &sent[0]).unwrap()), Some(&[0u8][..]));
    restart_checked(&mut w, b1);
    assert_eq!(body(&w.receive(b1, &sent[1]).unwrap()), Some(&[1u8][..]));
    restart_checked(&mut w, b1);
    for e in &sent {
        assert!(matches!(
            refused_any(&mut w, b1, e),
            Error::Fanout(FanoutError::Duplicate { .. })
        ));
    }
}

/// A retry request bounced back to its requester, or re-routed to another device of the
/// sender's account, is refused with nothing changed; only the device it names reads it.
#[test]
fn a_bounced_or_rerouted_retry_request_is_refused() {
    let mut w = World::new("review38 bounced request");
    let alice = w.account(1);
    let bob = w.account(0);
    w.publish_all();
    let (a1, a2, b1) = (
        World::addr(alice, 1),
        World::addr(alice, 2),
        World::addr(bob, 1),
    );
    let o = w.send(b1, alice, b"m");
    let broken = tampered(&World::envelope_to(&o, a1));
    assert!(w.receive(a1, &broken).is_err());
    let (to, request) = w
        .request_retry(a1, &broken, RetryReason::AuthenticationFailed)
        .unwrap();
    assert_eq!(to, b1);
    for wrong in [a1, a2] {
        assert_eq!(
            refused_any(&mut w, wrong, &request),
            FanoutError::NotForThisDevice.into()
        );
    }
    assert!(matches!(
        w.receive(b1, &request),
        Ok(Received::RetryRequest(_))
    ));
}

/// A group send that rotated the sender key (a member was removed) is stored, then the app
/// dies before shipping it: its distributions never leave, yet the ledger counts them held,
/// so the next send carries no distribution and Bob cannot read it (`SenderKeyMissing`).
/// Asking again with `SenderKeyMissing` heals it: the answer carries the current key and the
/// body, and later messages read. Carol, removed, reads nothing of the new generation, and a
/// retry she asks for the new message is refused.
#[test]
fn a_rotation_stored_but_never_shipped_heals_by_retry_and_never_reaches_the_removed() {
    let (mut w, [alice, bob, carol], [a1, b1, c1]) = World::phones("review38 unshipped rotation");
    w.set_members(G, &[alice, bob, carol]);
    let first = w.send_group(a1, G, b"all three");
    w.deliver_ok(&first);
    w.set_members(G, &[alice, bob]);
    // Stored, never shipped.
    let unshipped = w.send_group(a1, G, b"lost in the crash");
    assert!(
        !unshipped.envelopes.is_empty(),
        "the rotation distributes a new key"
    );
    restart_checked(&mut w, a1);
    let next = w.send_group(a1, G, b"after the crash");
    assert!(next.envelopes.is_empty(), "the ledger counts the key held");
    let (group_env, recipients) = next.group.clone().unwrap();
    assert!(!recipients.contains(&c1));
    let e = refused_any(&mut w, b1, &group_env);
    assert!(matches!(
        e,
        Error::Fanout(FanoutError::SenderKeyMissing { .. })
    ));
    // Carol (the relay gives her the envelope) cannot read it either.
    let now = w.now;
    assert!(w.device(c1).receive(now, &group_env).is_err());
    // Bob asks again for the sender key.
    let (to, request) = w
        .request_retry(b1, &group_env, RetryReason::SenderKeyMissing)
        .unwrap();
    assert_eq!(to, a1);
    let Ok(Received::RetryRequest(req)) = w.receive(a1, &request) else {
        panic!("Alice reads Bob's request")
    };
    let answer = w
        .run(a1, |d, rng, now| {
            d.answer_retry(rng, now, &req, b"after the crash")
        })
        .unwrap();
    let got = w.deliver_ok(&answer);
    assert!(
        got.iter()
            .any(|(_, r)| body(r) == Some(&b"after the crash"[..]))
    );
    let later = w.send_group(a1, G, b"later");
    let got = w.receive(b1, &later.group.as_ref().unwrap().0).unwrap();
    assert_eq!(body(&got), Some(&b"later"[..]));
    // Carol asks for the new message: she never held its generation.
    let now = w.now;
    let carol_env = later.group.as_ref().unwrap().0.clone();
    let asked = {
        let (d, rng) = (w.devices.get_mut(&c1).unwrap(), &mut w.rng);
        d.request_retry(rng, now, &carol_env, RetryReason::SenderKeyMissing)
    };
    if let Ok((_, request)) = asked {
        let _ = refused_any(&mut w, a1, &request);
    }
}

/// The state an unlinked companion can still reach. Alice's phone manages a call with her
/// laptop and Bob, and sends the laptop a history offer; the relay breaks the laptop's copy of
/// the call key and holds back its retry request. The laptop is unlinked and the phone takes
/// the list, but the app does not remove the laptop from the call (a slow app). Then:
/// the held-back request is refused; a request read before the unlink and kept by the app is
/// not answered (neither with the call key nor as a message); a new history offer or call key
/// to the laptop is refused; an offer or own copy the laptop seals to the phone is refused.
#[test]
fn an_unlinked_companion_gets_no_call_key_or_history_by_retry_or_replay() {
    let mut w = World::new("review38 unlinked companion");
    let alice = w.account(1);
    let bob = w.account(0);
    w.publish_all();
    let (a1, a2, b1) = (
        World::addr(alice, 1),
        World::addr(alice, 2),
        World::addr(bob, 1),
    );
    let config = CallConfig::default();
    let call = Call::start(&mut w.rng, CallKind::Group, a1, &[a2, b1], &config).unwrap();
    let message = call.key_message().clone();
    let key = w
        .run(a1, |d, rng, now| {
            d.send_call_key(rng, now, &[a2, b1], &message)
        })
        .unwrap();
    let broken = tampered(&World::envelope_to(&key, a2));
    assert!(w.receive(a2, &broken).is_err());
    // Two requests: one the relay delivers now (the app keeps it), one it holds back.
    let (_, read_now) = w
        .request_retry(a2, &broken, RetryReason::AuthenticationFailed)
        .unwrap();
    let (_, held) = w
        .request_retry(a2, &broken, RetryReason::AuthenticationFailed)
        .unwrap();
    let Ok(Received::RetryRequest(kept)) = w.receive(a1, &read_now) else {
        panic!("the phone reads the laptop's request")
    };
    // The laptop, still the phone's, could offer history: the relay holds it back too.
    let mut sealer = HistorySealer::new(&mut w.rng);
    let _ = sealer.push(b"history");
    let offer = sealer.finish().1;
    let laptop_offer = w
        .run(a2, |d, rng, now| d.send_history_offer(rng, now, a1, &offer))
        .unwrap();
    let laptop_offer = World::envelope_to(&laptop_offer, a1);

    // Unlinked; the phone takes the list. The app has not removed the laptop from the call.
    let now = w.now;
    w.primary(&alice).unlink(now, DeviceId(2)).unwrap();
    let list = w.primary(&alice).device_list().signed().clone();
    w.device(a1).update_device_list(now, &alice, list).unwrap();
    w.persist(a1);
    restart_checked(&mut w, a1);
    assert!(call.participants().contains(&a2));

    let _ = refused_any(&mut w, a1, &held);
    let _ = refused_any(&mut w, a1, &laptop_offer);
    for answer in [
        {
            let (d, rng) = (w.devices.get_mut(&a1).unwrap(), &mut w.rng);
            d.answer_call_key_retry(rng, now, &kept, &call)
        },
        {
            let (d, rng) = (w.devices.get_mut(&a1).unwrap(), &mut w.rng);
            d.answer_retry(rng, now, &kept, b"")
        },
        {
            let (d, rng) = (w.devices.get_mut(&a1).unwrap(), &mut w.rng);
            d.send_history_offer(rng, now, a2, &offer)
        },
        {
            let (d, rng) = (w.devices.get_mut(&a1).unwrap(), &mut w.rng);
            d.send_call_key(rng, now, &[a2], call.key_message())
        },
    ] {
        assert!(answer.is_err(), "{answer:?}");
        assert!(!w.device(a1).has_changes());
    }
    // The laptop's own copies are refused too.
    let own = w.send(a2, bob, b"from the unlinked laptop");
    if let Some((_, e)) = own.envelopes.iter().find(|(to, _)| *to == a1) {
        let e = e.clone();
        let _ = refused_any(&mut w, a1, &e);
    }
}

/// Send ids after a restore from a backup. The app stores each sent body under its send id
/// (SECURITY.md 8) in its own message store, which the backup does not roll back. Alice's
/// phone sent message X after the backup, was restored, and sent Y: Y got X's send id, so an
/// app that kept the first body under an id answered Bob's retry for Y with X, which
/// `answer_retry` refused (`BodyMismatch`: nothing leaked), and Y could never be resent.
/// Found by this review and fixed: a restore moves the next send id `RESTORE_SEND_ID_SKIP` on
/// and to at least the restore's time (PROTOCOL.md 19.4), so Y has an id of its own and Bob's
/// retry is answered with Y; a second restore from the same backup, later, issues no id the
/// first restored device issued.
#[test]
fn a_restored_device_never_issues_a_send_id_again() {
    let (mut w, _alice, bob, a1, b1) = World::two_talking("review38 send ids");
    let backup = w.device(a1).to_bytes();
    let x = w.send(a1, bob, b"X, sent after the backup");
    w.deliver_ok(&x);
    let x_id = x.send_id.unwrap();
    let now = w.now;
    *w.device(a1) = Device::restore_from_backup(&backup, now).unwrap();
    w.persist(a1);
    let y = w.send(a1, bob, b"Y, sent after the restore");
    let y_id = y.send_id.unwrap();
    // The restore's time is far past the skip: the floor decides.
    assert!(now.as_millis() > x_id.0 + RESTORE_SEND_ID_SKIP);
    assert_eq!(y_id.0, now.as_millis());
    // The app's body store, outside the backup, keeps the first body stored under an id.
    let mut bodies = std::collections::BTreeMap::new();
    bodies.insert(x_id, b"X, sent after the backup".to_vec());
    bodies
        .entry(y_id)
        .or_insert(b"Y, sent after the restore".to_vec());
    let broken = tampered(&World::envelope_to(&y, b1));
    assert!(w.receive(b1, &broken).is_err());
    let (_, request) = w
        .request_retry(b1, &broken, RetryReason::AuthenticationFailed)
        .unwrap();
    let Ok(Received::RetryRequest(req)) = w.receive(a1, &request) else {
        panic!("Alice reads the request")
    };
    assert_eq!(req.send_id, y_id);
    let answer = w
        .run(a1, |d, rng, now| {
            d.answer_retry(rng, now, &req, &bodies[&req.send_id])
        })
        .unwrap();
    let got = w.deliver_ok(&answer);
    assert_eq!(body(&got[0].1), Some(&b"Y, sent after the restore"[..]));

    // Restored again from the same backup a millisecond later: past the first restored
    // device's one send. Restored at a clock behind the backup's ids, the skip decides.
    let mut rng = w.rng.clone();
    for (at, first) in [
        (now.plus_millis(1), now.as_millis() + 1),
        (Timestamp(0), x_id.0 + (1 << 32)),
    ] {
        let mut again = Device::restore_from_backup(&backup, at).unwrap();
        let Ok(Outgoing::Ready(z)) = again.send(&mut rng, now, &bob, b"Z") else {
            panic!("the restored device sends")
        };
        assert_eq!(z.send_id.unwrap().0, first);
    }
}

/// Retry reasons have one wire byte each, but the API's `Other(n)` took every byte: an app
/// reason `Other(3)` reached the sender as `SenderKeyMissing` (and `Other(1)` as
/// `NoSession`), and the sender kept the current session for its answer instead of starting
/// one from the request's bundle. Two values, one encoding. Found by this review and fixed:
/// `Other` with a named reason's number is `ReservedReason`, for a retry and for a withheld
/// key, with nothing changed; every other number arrives as itself.
#[test]
fn an_apps_own_retry_reason_arrives_as_itself() {
    use ratchetry::fanout::WithheldReason;
    let (mut w, alice, bob, a1, b1) = World::two_talking("review38 other reason");
    w.set_members(G, &[alice, bob]);
    let o = w.send(a1, bob, b"m");
    let broken = tampered(&World::envelope_to(&o, b1));
    assert!(w.receive(b1, &broken).is_err());
    for n in 1..=4 {
        let before = w.device(b1).to_bytes();
        let refused = w.request_retry(b1, &broken, RetryReason::Other(n));
        assert_eq!(refused.err(), Some(FanoutError::ReservedReason(n).into()));
        assert_eq!(*before, *w.device(b1).to_bytes());
        assert!(!w.device(b1).has_changes());
    }
    assert_eq!(
        FanoutError::ReservedReason(3).to_string(),
        "reason 3 is a named reason's, not the app's"
    );
    for n in [0, 5, 255] {
        let (_, request) = w.request_retry(b1, &broken, RetryReason::Other(n)).unwrap();
        let Ok(Received::RetryRequest(req)) = w.receive(a1, &request) else {
            panic!("Alice reads the request")
        };
        assert_eq!(req.reason, RetryReason::Other(n));
    }
    for (n, refused) in [(1, true), (2, true), (0, false), (3, false)] {
        let before = w.device(a1).to_bytes();
        let withheld = [(b1, Some(WithheldReason::Other(n)))];
        let r = w.run(a1, |d, rng, now| {
            d.send_group_withholding(rng, now, G, b"withheld", &withheld)
        });
        if refused {
            assert_eq!(r.err(), Some(FanoutError::ReservedReason(n).into()));
            assert_eq!(*before, *w.device(a1).to_bytes());
        } else {
            let got = w.receive(b1, &World::envelope_to(&r.unwrap(), b1));
            assert!(
                matches!(got, Ok(Received::Withheld { reason, .. }) if reason == WithheldReason::Other(n)),
                "{got:?}"
            );
        }
    }
}
