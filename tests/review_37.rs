//! Review 37: a device's life as sequences of public-API operations, with the server as the
//! adversary. What it pins:
//!
//! - **Change records.** A receive's unit applied only in part (every prefix, in the key order
//!   the unit lists) is refused on load while the read ring is filling (the meta record's next
//!   read slot disagrees with the slots stored); a unit applied twice is idempotent; an older
//!   unit put back over a newer one, or a unit applied without the one before it, is refused.
//!   Once the ring is full that check no longer holds: a receive's unit written without its
//!   read slot loads, and the unacknowledged redelivery fails in its session (pinned, outside
//!   the contract: a unit is one transaction).
//! - **Backups.** Messages read before a backup stay `Duplicate` after `restore_from_backup`
//!   and a restart; one read after it reads once more (the documented rollback), then is
//!   `Duplicate`. Found and fixed: a restored device handed out one-time, ML-KEM and signed
//!   prekey ids it had already issued after the backup, with other keys; its counters now
//!   skip `restore_prekey_skip` of the restore's time.
//! - **Read ring bounds.** A message is `Duplicate` after exactly `MAX_REMEMBERED_MESSAGE_IDS - 1`
//!   later reads and a restart from records; one more read and its redelivery fails in its
//!   session instead, a typed error that changes nothing.
//! - **Retries.** Asking again for a resend (a retry of a retry) is `UnknownMessage` at the
//!   sender and changes nothing, and the genuine resend still reads; a retry answered after the
//!   session was replaced settles both ends on the answer's session, through a restart; a
//!   request answered again by a sender restored from before its answer changes nothing at the
//!   requester.
//! - **Signed-prekey rotation.** A held-back first message reads across two rotations and is
//!   `UnknownSignedPreKey` after the third; a session already accepted keeps reading the
//!   peer's pre-key-form messages after its signed prekey was deleted, and the remembered base
//!   keys' records go with it (records rebuild the device).

mod support;

use std::collections::BTreeMap;

use ratchetry::devices::{AccountKey, DeviceAddress};
use ratchetry::fanout::{
    Device, EnvelopeId, MAX_REMEMBERED_MESSAGE_IDS, Outbox, Outgoing, Received, RetryReason,
    StateChanges,
};
use ratchetry::group::GroupId;
use ratchetry::server::PublishedPreKeys;
use ratchetry::x3dh::{KemPreKeyId, OneTimePreKeyId, restore_prekey_skip};
use ratchetry::{DecodeError, Error, FanoutError, RatchetError, X3dhError};
use support::{World, body, tampered};

type Records = BTreeMap<Vec<u8>, Vec<u8>>;

fn load(records: &Records) -> Result<Device, DecodeError> {
    Device::from_records(records.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
}

/// Writes the records of `unit` that `take` selects (by position), as an app whose
/// transaction was torn would.
fn apply(records: &mut Records, unit: &StateChanges, take: impl Fn(usize) -> bool) {
    if unit.replaces_all() {
        records.clear();
    }
    for (_, r) in unit.records().iter().enumerate().filter(|(i, _)| take(*i)) {
        match r.value() {
            Some(v) => records.insert(r.key().to_vec(), v.to_vec()),
            None => records.remove(r.key()),
        };
    }
}

/// Bodies read from an outbox, in order (errors kept).
fn read_all(w: &mut World, o: &Outbox) -> Vec<Result<Vec<u8>, Error>> {
    w.deliver(o)
        .into_iter()
        .map(|(_, r)| r.map(|r| body(&r).unwrap_or_default().to_vec()))
        .collect()
}

/// Asserts `d` refuses `envelope` with `expected` and is byte-identical afterwards.
fn refused(d: &mut Device, now: ratchetry::Timestamp, envelope: &[u8], expected: Error) {
    let before = d.to_bytes();
    assert_eq!(d.receive(now, envelope).err(), Some(expected));
    assert_eq!(*before, *d.to_bytes(), "a refusal changed the device");
    assert!(!d.has_changes());
}

/// `from` sends `msg` to `to`, starting sessions from bundles that each name a fresh one-time
/// prekey of both kinds. Returns the outbox and, per device asked, the ids used.
fn send_with_one_time_keys(
    w: &mut World,
    from: DeviceAddress,
    to: AccountKey,
    msg: &[u8],
) -> (Outbox, Vec<(DeviceAddress, OneTimePreKeyId, KemPreKeyId)>) {
    let now = w.now;
    let mut used = Vec::new();
    loop {
        let mut d = w.devices.remove(&from).unwrap();
        let r = d.send(&mut w.rng, now, &to, msg).unwrap();
        w.devices.insert(from, d);
        match r {
            Outgoing::Ready(o) => {
                w.persist(from);
                return (o, used);
            }
            Outgoing::NeedBundles(missing) => {
                let mut bundles = Vec::new();
                for a in missing {
                    let dev = w.devices.get_mut(&a).unwrap();
                    let keys = dev.generate_one_time_prekeys(&mut w.rng, now, 1);
                    w.persist(a);
                    let (opk, kem) = (keys.keys()[0].id, keys.kem_keys()[0].id);
                    used.push((a, opk, kem));
                    bundles.push((a, w.devices[&a].bundle(Some(opk), Some(kem))));
                }
                let d = w.devices.get_mut(&from).unwrap();
                d.start_sessions(&mut w.rng, now, &bundles).unwrap();
            }
            Outgoing::NeedDeviceLists(_) => panic!("every list is published"),
        }
    }
}

fn fresh_pair(label: &str) -> (World, DeviceAddress, DeviceAddress) {
    let mut w = World::new(label);
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    (w, World::addr(alice, 1), World::addr(bob, 1))
}

/// Bob reads Alice's first message, which consumes a one-time prekey of each kind. Each
/// prefix of his unit, written over his stored records, is what a crash in the middle of a
/// non-atomic write leaves: every strict, non-empty prefix is refused on load (the meta record
/// comes first and names a read slot the store does not hold), the empty one reads the
/// redelivery again and the whole one refuses it as `Duplicate`, with both prekeys gone.
#[test]
fn every_torn_prefix_of_a_receive_unit_is_refused_while_the_ring_fills() {
    let (mut w, a1, b1) = fresh_pair("review 37 torn prefix");
    let (o, used) = send_with_one_time_keys(&mut w, a1, b1.account, b"first");
    let (_, opk, kem) = used[0];
    let env = World::envelope_to(&o, b1);
    let before = w.stores[&b1].0.clone();
    let now = w.now;
    let mut bob = w.devices[&b1].clone();
    assert_eq!(body(&bob.receive(now, &env).unwrap()), Some(&b"first"[..]));
    let unit = bob.take_changes(&mut w.rng);
    let n = unit.records().len();
    assert!(
        n >= 5,
        "meta, both prekeys, the base key, the session, the slot"
    );
    for k in 0..=n {
        let mut records = before.clone();
        apply(&mut records, &unit, |i| i < k);
        match (k, load(&records)) {
            (0, Ok(mut d)) => {
                assert!(d.bundle(Some(opk), None).one_time_prekey().is_some());
                assert_eq!(d.bundle(None, Some(kem)).kem_prekey().id, kem);
                assert_eq!(body(&d.receive(now, &env).unwrap()), Some(&b"first"[..]));
            }
            (k, Ok(mut d)) if k == n => {
                assert_eq!(*d.to_bytes(), *bob.to_bytes());
                assert!(d.bundle(Some(opk), None).one_time_prekey().is_none());
                assert_ne!(d.bundle(None, Some(kem)).kem_prekey().id, kem);
                let id = EnvelopeId::of(&env);
                refused(
                    &mut d,
                    now,
                    &env,
                    FanoutError::Duplicate { envelope_id: id }.into(),
                );
            }
            (k, loaded) => assert_eq!(loaded.err(), Some(DecodeError::InvalidValue), "prefix {k}"),
        }
    }
}

/// Units written twice change nothing more; an older unit put back over a newer one (a
/// delayed write), or a newer unit written without the one before it (a lost write), leaves
/// records that are refused on load while the read ring fills.
#[test]
fn units_written_twice_are_idempotent_and_out_of_order_units_are_refused() {
    let (mut w, _alice, bob, a1, b1) = World::two_talking("review 37 units");
    let (o1, o2) = (w.send(a1, bob, b"one"), w.send(a1, bob, b"two"));
    let (e1, e2) = (World::envelope_to(&o1, b1), World::envelope_to(&o2, b1));
    let now = w.now;
    let base = w.stores[&b1].0.clone();
    let mut d = w.devices[&b1].clone();
    d.receive(now, &e1).unwrap();
    let u1 = d.take_changes(&mut w.rng);
    d.receive(now, &e2).unwrap();
    let u2 = d.take_changes(&mut w.rng);
    let mut twice = base.clone();
    for u in [&u1, &u1, &u2, &u2] {
        apply(&mut twice, u, |_| true);
    }
    assert_eq!(*load(&twice).unwrap().to_bytes(), *d.to_bytes());
    let mut put_back = twice.clone();
    apply(&mut put_back, &u1, |_| true);
    assert_eq!(load(&put_back).err(), Some(DecodeError::InvalidValue));
    let mut lost = base;
    apply(&mut lost, &u2, |_| true);
    assert_eq!(load(&lost).err(), Some(DecodeError::InvalidValue));
}

/// Found by this review and fixed: a device restored from a backup went on counting its
/// prekey ids from the backup's counters, so its next upload named ids it had already
/// uploaded after the backup, with other keys; the crate's own `PublishedPreKeys` refused it
/// (`DuplicatePreKeyId`), and a bundle taken before the restore named a key the device held
/// with another secret. Now every counter skips `restore_prekey_skip` on a restore, by
/// either path (a backup's bytes, or records and `into_restored`): no one-time, ML-KEM or
/// signed prekey id is issued again, the upload joins the pool, and a bundle naming a key only
/// the lost state held fails as a key the device does not hold.
#[test]
fn a_restored_device_never_issues_a_prekey_id_again_with_another_key() {
    for from_records in [false, true] {
        let (mut w, a1, b1) = fresh_pair("review 37 prekey ids");
        let now = w.now;
        let list = w.primary(&b1.account).device_list().clone();
        let base = w.devices[&b1].bundle(None, None);
        let mut pool = PublishedPreKeys::new(b1, base, &list, now).unwrap();
        w.persist(b1);
        let backup = w.devices[&b1].to_bytes();
        let records = w.stores[&b1].0.clone();
        let bob = w.devices.get_mut(&b1).unwrap();
        let after_backup = bob.generate_one_time_prekeys(&mut w.rng, now, 3);
        bob.rotate_signed_prekey(&mut w.rng, now);
        let rotated = bob.bundle(None, None);
        pool.add(&after_backup).unwrap();
        let taken = pool.take_bundle();
        let mut bob = if from_records {
            load(&records).unwrap().into_restored(now)
        } else {
            Device::restore_from_backup(&backup, now).unwrap()
        };
        let upload = bob.generate_one_time_prekeys(&mut w.rng, now, 3);
        let old: Vec<u32> = after_backup.keys().iter().map(|k| k.id.0).collect();
        let old_kem: Vec<u32> = after_backup.kem_keys().iter().map(|k| k.id.0).collect();
        for k in upload.keys() {
            assert!(
                !old.contains(&k.id.0),
                "one-time prekey id {:?} reissued",
                k.id
            );
        }
        for k in upload.kem_keys() {
            assert!(
                !old_kem.contains(&k.id.0),
                "ML-KEM prekey id {:?} reissued",
                k.id
            );
            assert!(k.id.0 & KemPreKeyId::PQ_RATCHET != 0, "still marked");
        }
        assert_eq!(upload.keys().len(), 3);
        assert_eq!(
            upload.keys()[0].id,
            OneTimePreKeyId(after_backup.keys()[0].id.0 + restore_prekey_skip(now))
        );
        bob.rotate_signed_prekey(&mut w.rng, now);
        let again = bob.bundle(None, None);
        assert_ne!(
            again.signed_prekey().id,
            rotated.signed_prekey().id,
            "signed prekey id reissued"
        );
        assert_eq!(
            pool.add(&upload),
            Ok(()),
            "the restored device's upload is pooled"
        );
        let _ = bob.take_changes(&mut w.rng);
        // A bundle the relay handed out before the restore names a key the device lost: the
        // message fails as from a key it does not hold, and changes nothing.
        w.devices.insert(b1, bob);
        let alice = w.devices.get_mut(&a1).unwrap();
        alice
            .start_sessions(&mut w.rng, now, &[(b1, taken)])
            .unwrap();
        let Ok(Outgoing::Ready(o)) = alice.send(&mut w.rng, now, &b1.account, b"hi") else {
            panic!("sessions are started")
        };
        let env = World::envelope_to(&o, b1);
        let bob = w.devices.get_mut(&b1).unwrap();
        refused(
            bob,
            now,
            &env,
            X3dhError::UnknownOneTimePreKey(old[0]).into(),
        );
    }
}

/// Messages read before a backup stay duplicates after `restore_from_backup` and a restart
/// from its records; a pre-key message read after the backup (its one-time prekeys consumed
/// then) reads once more, as SECURITY.md says a restored device does, and then is `Duplicate`
/// again, also after a restart.
#[test]
fn a_restore_keeps_what_the_backup_read_and_rereads_only_what_it_forgot_once() {
    let (mut w, a1, b1) = fresh_pair("review 37 restore");
    let (o, _) = send_with_one_time_keys(&mut w, a1, b1.account, b"before");
    let before = World::envelope_to(&o, b1);
    w.deliver_ok(&o);
    let reply = w.send(b1, a1.account, b"reply");
    w.deliver_ok(&reply);
    let now = w.now;
    let (opk, kem) = {
        let keys = w
            .devices
            .get_mut(&b1)
            .unwrap()
            .generate_one_time_prekeys(&mut w.rng, now, 1);
        w.persist(b1);
        (keys.keys()[0].id, keys.kem_keys()[0].id)
    };
    let backup = w.devices[&b1].to_bytes();
    // Alice's phone restarts a session (a new pre-key message, on keys the backup holds).
    let bundle = w.devices[&b1].bundle(Some(opk), Some(kem));
    let alice = w.devices.get_mut(&a1).unwrap();
    alice
        .start_sessions(&mut w.rng, now, &[(b1, bundle)])
        .unwrap();
    w.persist(a1);
    let o = w.send(a1, b1.account, b"after");
    let after = World::envelope_to(&o, b1);
    assert_eq!(read_all(&mut w, &o), [Ok(b"after".to_vec())]);
    let bob = Device::restore_from_backup(&backup, now).unwrap();
    w.devices.insert(b1, bob);
    w.persist(b1);
    w.restart(b1);
    let dup = |e: &[u8]| -> Error {
        FanoutError::Duplicate {
            envelope_id: EnvelopeId::of(e),
        }
        .into()
    };
    refused(w.device(b1), now, &before, dup(&before));
    let got = w.receive(b1, &after).unwrap();
    assert_eq!(body(&got), Some(&b"after"[..]), "the documented rollback");
    w.restart(b1);
    refused(w.device(b1), now, &after, dup(&after));
    refused(w.device(b1), now, &before, dup(&before));
}

/// Bob reads Alice's message `m`, then exactly `MAX_REMEMBERED_MESSAGE_IDS - 1` group messages
/// and restarts from his records: `m` is still `Duplicate`. One more read turns it out of the
/// ring: its redelivery then fails in its session (its key was used), a typed error that
/// changes nothing, also after a restart.
#[test]
fn the_read_ring_remembers_exactly_its_capacity_across_restarts() {
    const ROOM: GroupId = GroupId([0x37; 32]);
    let (mut w, alice, bob, _) = World::group_sent("review 37 ring", ROOM, [0, 0]);
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let o = w.send(a1, bob, b"m");
    let m = World::envelope_to(&o, b1);
    w.deliver_ok(&o);
    let now = w.now;
    let fill = |w: &mut World, n: usize| {
        for i in 0..n {
            let a = w.devices.get_mut(&a1).unwrap();
            let Ok(Outgoing::Ready(o)) = a.send_group(&mut w.rng, now, ROOM, &i.to_be_bytes())
            else {
                panic!("the group's keys are distributed")
            };
            let _ = a.take_changes(&mut w.rng);
            let (env, _) = o.group.as_ref().unwrap();
            assert!(o.envelopes.is_empty());
            w.receive(b1, env).unwrap();
        }
    };
    fill(&mut w, MAX_REMEMBERED_MESSAGE_IDS - 1);
    w.restart(b1);
    let dup: Error = FanoutError::Duplicate {
        envelope_id: EnvelopeId::of(&m),
    }
    .into();
    refused(w.device(b1), now, &m, dup);
    fill(&mut w, 1);
    w.restart(b1);
    let used = Some(RatchetError::Duplicate.into());
    let bob = w.device(b1);
    let before = bob.to_bytes();
    assert_eq!(bob.receive(now, &m).err(), used);
    assert_eq!(*before, *bob.to_bytes());
}

/// The relay breaks Alice's answer to Bob's retry too, and Bob asks again for the broken
/// answer (a retry of a retry): Alice's journal holds no send of that salt, so she refuses it
/// as `UnknownMessage` and changes nothing; the genuine answer, delivered late, still reads,
/// and then the original is `Duplicate`.
#[test]
fn a_retry_of_a_resend_is_unknown_to_the_sender_and_the_resend_still_reads() {
    let (mut w, _alice, bob, a1, b1) = World::two_talking("review 37 retry of a retry");
    let o = w.send(a1, bob, b"m");
    let env = World::envelope_to(&o, b1);
    let copy = tampered(&env);
    assert!(w.receive(b1, &copy).is_err());
    let answer = w.ask_again(b1, a1, &copy, b"m");
    let resend = World::envelope_to(&answer, b1);
    let broken = tampered(&resend);
    let failed = Some(RatchetError::AuthenticationFailed.into());
    assert_eq!(w.receive(b1, &broken).err(), failed);
    let (to, request) = w
        .request_retry(b1, &broken, RetryReason::AuthenticationFailed)
        .unwrap();
    assert_eq!(to, a1);
    let now = w.now;
    refused(
        w.device(a1),
        now,
        &request,
        FanoutError::UnknownMessage.into(),
    );
    let got = w.receive(b1, &resend).unwrap();
    let Received::Direct { body, resent, .. } = &got else {
        panic!("a direct resend")
    };
    assert_eq!(
        (body.as_slice(), *resent),
        (&b"m"[..], Some(EnvelopeId::of(&env)))
    );
    w.restart(b1);
    let dup = FanoutError::Duplicate {
        envelope_id: EnvelopeId::of(&env),
    };
    refused(w.device(b1), now, &env, dup.into());
}

/// Bob asks again for a broken message; meanwhile Alice starts a new session with him from a
/// fresh bundle and they talk on it. Alice answers the old request only then: the answer's
/// session becomes current at both ends, and messages both ways read on it, before and after
/// a restart of both; late copies of what was read are `Duplicate`.
#[test]
fn a_retry_answered_after_the_session_was_replaced_settles_both_ends() {
    let (mut w, alice, bob, a1, b1) = World::two_talking("review 37 replaced session");
    let o = w.send(a1, bob, b"m");
    let env = World::envelope_to(&o, b1);
    let copy = tampered(&env);
    assert!(w.receive(b1, &copy).is_err());
    let (_, request) = w
        .request_retry(b1, &copy, RetryReason::AuthenticationFailed)
        .unwrap();
    let now = w.now;
    let bundle = w.devices[&b1].bundle(None, None);
    let a = w.devices.get_mut(&a1).unwrap();
    a.start_sessions(&mut w.rng, now, &[(b1, bundle)]).unwrap();
    w.persist(a1);
    let o = w.send(a1, bob, b"new session");
    let on_new = World::envelope_to(&o, b1);
    assert_eq!(read_all(&mut w, &o), [Ok(b"new session".to_vec())]);
    let o = w.send(b1, alice, b"reply");
    assert_eq!(read_all(&mut w, &o), [Ok(b"reply".to_vec())]);
    let Ok(Received::RetryRequest(q)) = w.receive(a1, &request) else {
        panic!("Bob was a recipient")
    };
    let answer = w
        .run(a1, |d, rng, now| d.answer_retry(rng, now, &q, b"m"))
        .unwrap();
    assert_eq!(read_all(&mut w, &answer), [Ok(b"m".to_vec())]);
    for round in 0..4 {
        if round == 2 {
            w.restart(a1);
            w.restart(b1);
        }
        let o = w.send(b1, alice, b"b");
        assert_eq!(read_all(&mut w, &o), [Ok(b"b".to_vec())], "round {round}");
        let o = w.send(a1, bob, b"a");
        assert_eq!(read_all(&mut w, &o), [Ok(b"a".to_vec())], "round {round}");
    }
    for late in [&env, &on_new] {
        let dup = FanoutError::Duplicate {
            envelope_id: EnvelopeId::of(late),
        };
        refused(w.device(b1), now, late, dup.into());
    }
}

/// Alice answers Bob's retry; then she is restored from a backup taken before she answered,
/// so her journal no longer holds the answer and the relay's replay of the request is
/// answered again. Bob, who read the first answer, refuses the second as a typed error that
/// changes nothing (the request's one-time prekey is spent).
#[test]
fn a_request_answered_again_by_a_restored_sender_changes_nothing_at_the_requester() {
    let (mut w, _alice, bob, a1, b1) = World::two_talking("review 37 restored sender");
    let o = w.send(a1, bob, b"m");
    let copy = tampered(&World::envelope_to(&o, b1));
    assert!(w.receive(b1, &copy).is_err());
    let backup = w.devices[&a1].to_bytes();
    let (_, request) = w
        .request_retry(b1, &copy, RetryReason::AuthenticationFailed)
        .unwrap();
    let Ok(Received::RetryRequest(q)) = w.receive(a1, &request) else {
        panic!("Bob was a recipient")
    };
    let answer = w
        .run(a1, |d, rng, now| d.answer_retry(rng, now, &q, b"m"))
        .unwrap();
    assert_eq!(read_all(&mut w, &answer), [Ok(b"m".to_vec())]);
    let now = w.now;
    let epoch = w.devices[&a1].state_epoch();
    let (restored, stale) = Device::restore(&backup, epoch, now).unwrap();
    assert!(stale);
    w.devices.insert(a1, restored);
    w.persist(a1);
    let Ok(Received::RetryRequest(q)) = w.receive(a1, &request) else {
        panic!("the restored journal forgot the answer")
    };
    let again = w
        .run(a1, |d, rng, now| d.answer_retry(rng, now, &q, b"m"))
        .unwrap();
    let second = World::envelope_to(&again, b1);
    let Err(e) = w
        .devices
        .get_mut(&b1)
        .unwrap()
        .clone()
        .receive(now, &second)
    else {
        panic!("a second answer is never read")
    };
    assert!(
        matches!(e, Error::X3dh(X3dhError::UnknownOneTimePreKey(_))),
        "{e:?}"
    );
    refused(w.device(b1), now, &second, e);
}

/// Alice's first two messages (pre-key form, under Bob's signed prekey 1) are held back while
/// Bob rotates: they read after one and two rotations and are `UnknownSignedPreKey(1)` after
/// the third, changing nothing. Had Bob read the first before rotating, the session goes on:
/// the second reads after the third rotation, the first is `Duplicate`, and the remembered base
/// key's record left the store with its signed prekey (the records rebuild the device).
#[test]
fn first_messages_across_signed_prekey_rotations() {
    let (mut w, a1, b1) = fresh_pair("review 37 rotations");
    let (o, _) = send_with_one_time_keys(&mut w, a1, b1.account, b"first");
    let first = World::envelope_to(&o, b1);
    let second = World::envelope_to(&w.send(a1, b1.account, b"second"), b1);
    let now = w.now;
    let mut held_back = w.devices[&b1].clone();
    let mut read_first = w.devices[&b1].clone();
    assert!(read_first.receive(now, &first).is_ok());
    w.devices.insert(b1, read_first);
    w.persist(b1);
    let seen_under_1 = |w: &World| {
        w.stores[&b1]
            .0
            .keys()
            .filter(|k| k[0] == 0x06 && k[1..5] == [0, 0, 0, 1])
            .count()
    };
    assert_eq!(seen_under_1(&w), 1);
    for rotation in 1..=3 {
        held_back.rotate_signed_prekey(&mut w.rng, now);
        w.devices
            .get_mut(&b1)
            .unwrap()
            .rotate_signed_prekey(&mut w.rng, now);
        w.persist(b1);
        assert_eq!(*w.stores[&b1].load().to_bytes(), *w.devices[&b1].to_bytes());
        if rotation < 3 {
            let mut d = held_back.clone();
            for (env, text) in [(&first, &b"first"[..]), (&second, &b"second"[..])] {
                assert_eq!(body(&d.receive(now, env).unwrap()), Some(text));
            }
        }
    }
    let _ = held_back.take_changes(&mut w.rng);
    let unknown: Error = X3dhError::UnknownSignedPreKey(1).into();
    refused(&mut held_back, now, &first, unknown);
    refused(&mut held_back, now, &second, unknown);
    assert_eq!(seen_under_1(&w), 0);
    w.restart(b1);
    let got = w.receive(b1, &second).unwrap();
    assert_eq!(body(&got), Some(&b"second"[..]));
    let dup = FanoutError::Duplicate {
        envelope_id: EnvelopeId::of(&first),
    };
    refused(w.device(b1), now, &first, dup.into());
}

/// The limit of the check above: once the read ring is full every next-slot value is
/// plausible, so a torn unit loads. Bob reads Alice's message with a full ring; an app that
/// wrote only his meta and sessions records (not the read slot) reloads a device whose session
/// used the message's key but whose ring does not name it: the redelivery, which the app never
/// acknowledged, fails in its session (`Ratchet(Duplicate)`, not `Fanout(Duplicate)`), so the
/// message is lost. Outside the contract (a unit is one transaction); pinned so that a future
/// check of unit integrity shows here.
#[test]
fn a_torn_unit_is_detected_only_while_the_ring_fills() {
    const ROOM: GroupId = GroupId([0x38; 32]);
    let (mut w, alice, bob, _) = World::group_sent("review 37 torn full", ROOM, [0, 0]);
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let now = w.now;
    for i in 0..MAX_REMEMBERED_MESSAGE_IDS {
        let a = w.devices.get_mut(&a1).unwrap();
        let Ok(Outgoing::Ready(o)) = a.send_group(&mut w.rng, now, ROOM, &i.to_be_bytes()) else {
            panic!("the group's keys are distributed")
        };
        let _ = a.take_changes(&mut w.rng);
        w.receive(b1, &o.group.as_ref().unwrap().0).unwrap();
    }
    let o = w.send(a1, bob, b"m");
    let m = World::envelope_to(&o, b1);
    let before = w.stores[&b1].0.clone();
    let mut d = w.devices[&b1].clone();
    d.receive(now, &m).unwrap();
    let unit = d.take_changes(&mut w.rng);
    let kinds: Vec<u8> = unit.records().iter().map(|r| r.key()[0]).collect();
    assert_eq!(kinds, [0x02, 0x08, 0x0e], "meta, sessions, read slot");
    let mut torn = before;
    apply(&mut torn, &unit, |i| i < 2);
    let mut reloaded = load(&torn).expect("a full ring accepts any next slot");
    let used = Some(RatchetError::Duplicate.into());
    assert_eq!(reloaded.receive(now, &m).err(), used);
}
