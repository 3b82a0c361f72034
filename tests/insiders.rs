//! Insiders: the server working with an account it controls, a removed member, a rogue account
//! or an unlinked companion. Each test is one attack: who the adversary is, what it holds, what
//! it tries, and what it must not get. (The call-key attacks are in `tests/calls.rs`, the
//! device-list ones in `tests/devices.rs`, stored-state swaps in `tests/persist.rs`.)

mod support;

use ratchetry::devices::{DeviceAddress, DeviceId};
use ratchetry::fanout::{Device, EnvelopeId, MAX_RETRY_ATTEMPTS, Received, RetryReason};
use ratchetry::group::{GroupId, GroupMessage};
use ratchetry::{DecodeError, Error, FanoutError, IdentityKeyPair, PreKeyStoreConfig};
use support::{ASK_SPACING, World, body, tampered};

const ROOM: GroupId = GroupId([0x42; 32]);

/// A retry request from `who` for the message `failed` carries; the attacker may first point
/// a pairwise envelope at itself (the routing header is not authenticated until decryption).
fn forged_retry(w: &mut World, who: DeviceAddress, failed: &[u8]) -> Vec<u8> {
    let mut failed = failed.to_vec();
    if failed[2] == 1 {
        failed[3 + 36..3 + 72].copy_from_slice(&address_bytes(&who));
    }
    w.request_retry(who, &failed, RetryReason::NoSession)
        .unwrap()
        .1
}

fn address_bytes(a: &DeviceAddress) -> [u8; 36] {
    let mut out = [0u8; 36];
    out[..32].copy_from_slice(&a.account.to_bytes());
    out[32..].copy_from_slice(&a.device.0.to_be_bytes());
    out
}

fn group_envelope(outbox: &ratchetry::fanout::Outbox) -> Vec<u8> {
    outbox.group.as_ref().unwrap().0.clone()
}

/// The sender-key generation an outbox's group message is under.
fn key_id_of(outbox: &ratchetry::fanout::Outbox) -> ratchetry::group::SenderKeyId {
    GroupMessage::decode(&group_envelope(outbox)[3 + 36 + 8..])
        .unwrap()
        .key_id()
}

/// The server knows a 1:1 envelope's header (it routes it) and controls Mallory's account.
/// Mallory asks Alice to "resend" Alice's message to Bob. Alice refuses: Mallory was not a
/// recipient of that message.
#[test]
fn a_contact_cannot_get_someone_elses_message_by_retry() {
    let mut w = World::new("insider retry contact");
    let alice = w.account(0);
    let bob = w.account(0);
    let mallory = w.account(0);
    w.publish_all();
    let (a1, b1, m1) = (
        World::addr(alice, 1),
        World::addr(bob, 1),
        World::addr(mallory, 1),
    );
    // Mallory and Alice talk, so Mallory has a session and is a listed contact.
    let o = w.send(m1, alice, b"hi alice");
    w.deliver_ok(&o);
    let secret = w.send(a1, bob, b"for bob only");
    let to_bob = World::envelope_to(&secret, b1);
    let request = forged_retry(&mut w, m1, &to_bob);
    w.refused(a1, &request, FanoutError::NotEntitled.into());
    // Bob himself is entitled.
    let request = forged_retry(&mut w, b1, &to_bob);
    assert!(matches!(
        w.receive(a1, &request),
        Ok(Received::RetryRequest(_))
    ));
}

/// Bob is removed from the room. He still receives the group envelopes (the server forwards
/// them) and asks for the new ones again. He gets nothing: he holds no generation made after
/// his removal.
#[test]
fn a_removed_member_cannot_get_new_messages_by_retry() {
    let mut w = World::new("insider retry removed");
    let alice = w.account(0);
    let bob = w.account(0);
    let carol = w.account(0);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob, carol]);
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let before = w.send_group(a1, ROOM, b"while bob is a member");
    // Bob's device reads nothing of it (a device asks only for messages it could not read).
    let bob_unread = w.device(b1).clone();
    w.deliver_ok(&before);
    *w.device(b1) = bob_unread;
    w.persist(b1);
    w.device(a1).set_group_members(ROOM, &[carol]).unwrap();
    w.persist(a1);
    let after = w.send_group(a1, ROOM, b"after bob left");
    assert!(after.envelopes.iter().all(|(to, _)| to.account != bob));
    let leaked = group_envelope(&after);
    let request = forged_retry(&mut w, b1, &leaked);
    w.refused(a1, &request, FanoutError::NotEntitled.into());
    // A message from while he was a member is his to ask for.
    let request = forged_retry(&mut w, b1, &group_envelope(&before));
    assert!(matches!(
        w.receive(a1, &request),
        Ok(Received::RetryRequest(_))
    ));
}

/// Dave joins the room late. He asks for a message sent before he joined: refused, he was not
/// entitled to it when it was sent (before the fix, `PredatesKey` turned into a resend).
#[test]
fn a_new_member_cannot_get_messages_from_before_it_joined() {
    let mut w = World::new("insider retry newcomer");
    let alice = w.account(0);
    let bob = w.account(0);
    let dave = w.account(0);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob]);
    let a1 = World::addr(alice, 1);
    let d1 = World::addr(dave, 1);
    let old = w.send_group(a1, ROOM, b"before dave");
    w.deliver_ok(&old);
    w.set_members(ROOM, &[alice, bob, dave]);
    let o = w.send_group(a1, ROOM, b"welcome dave");
    w.deliver_ok(&o);
    let err = w
        .devices
        .get_mut(&d1)
        .unwrap()
        .receive(support::T0, &group_envelope(&old))
        .err();
    assert!(matches!(
        err,
        Some(Error::Fanout(FanoutError::SenderKeyMissing { .. }))
    ));
    let request = forged_retry(&mut w, d1, &group_envelope(&old));
    w.refused(a1, &request, FanoutError::NotEntitled.into());
}

/// A retry request captured by the server is replayed later: the sender refuses it (it keeps
/// the ids of the requests it answered with the message, beyond the read ring), so it never
/// replaces its current session with one from the stale bundle. And the sender, not the
/// requester, counts the attempts: a fourth request claiming to be the first is refused.
#[test]
fn replayed_and_excess_retries_are_refused_by_the_sender() {
    let mut w = World::new("insider retry replay");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    // Bob never reads it (a device asks only for messages it could not read).
    let o = w.send(a1, bob, b"hello");
    let env = World::envelope_to(&o, b1);
    let pristine_bob = w.device(b1).clone();
    let mut requests = Vec::new();
    for attempt in 1..=3 {
        let request = forged_retry(&mut w, b1, &env);
        let Ok(Received::RetryRequest(req)) = w.receive(a1, &request) else {
            panic!()
        };
        assert_eq!(req.attempt, attempt);
        w.run(a1, |d, rng, now| d.answer_retry(rng, now, &req, b"hello"))
            .unwrap();
        requests.push((request, req));
    }
    // The replayed bytes are a duplicate read; answering the parsed request again is refused
    // from the journal, which persists with the message.
    let (first, req) = &requests[0];
    w.refused(
        a1,
        first,
        FanoutError::Duplicate {
            envelope_id: EnvelopeId::of(first),
        }
        .into(),
    );
    let reloaded = w.stores[&a1].load();
    w.devices.insert(a1, reloaded);
    let now = w.now;
    let ad = w.devices.get_mut(&a1).unwrap();
    let before = ad.to_bytes();
    assert_eq!(
        ad.answer_retry(&mut w.rng, now, req, b"hello").err(),
        Some(
            FanoutError::Duplicate {
                envelope_id: EnvelopeId::of(first)
            }
            .into()
        )
    );
    assert_eq!(*before, *ad.to_bytes());
    // Bob's device caps itself at three.
    let bd = w.devices.get_mut(&b1).unwrap();
    assert_eq!(
        bd.request_retry(&mut w.rng, now, &env, RetryReason::NoSession)
            .err(),
        Some(FanoutError::RetryLimit.into())
    );
    // A copy of Bob's state from before he asked claims attempt 1: Alice counts 3.
    let mut copy = pristine_bob;
    let (_, fourth) = copy
        .request_retry(&mut w.rng, now, &env, RetryReason::NoSession)
        .unwrap();
    w.refused(a1, &fourth, FanoutError::RetryLimit.into());
}

/// Mallory, a member with a pairwise session to Bob, sends him a "group resend" (a group
/// message re-sent pairwise) with no retry pending, then one naming the retry Bob really has
/// pending with Alice (the server saw its reference): Bob refuses both, so no member can show
/// different "group messages" to different members through the pairwise channel. Alice's
/// genuine answer reads, once.
#[test]
fn an_unsolicited_group_resend_is_refused() {
    use ratchetry::testing::hooks::{group_resend_payload, seal_raw_payload};
    let mut w = World::new("insider forged resend");
    let alice = w.account(0);
    let bob = w.account(0);
    let mallory = w.account(0);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob, mallory]);
    let (a1, b1, m1) = (
        World::addr(alice, 1),
        World::addr(bob, 1),
        World::addr(mallory, 1),
    );
    let o = w.send(m1, bob, b"a session");
    w.deliver_ok(&o);
    let o = w.send_group(a1, ROOM, b"genuine");
    let env = group_envelope(&o);
    let forge = |w: &mut World, reference: [u8; 16]| {
        let now = w.now;
        let md = w.devices.get_mut(&m1).unwrap();
        let plaintext = group_resend_payload(reference, ROOM, b"what alice said");
        seal_raw_payload(md, &mut w.rng, now, b1, &plaintext).unwrap()
    };
    let forged = forge(&mut w, [7; 16]);
    w.refused(b1, &forged, FanoutError::UnexpectedResend.into());
    // Bob asks Alice for the group message; its reference is the message's header salt.
    let request = forged_retry(&mut w, b1, &env);
    let reference: [u8; 16] = env[3 + 36 + 8 + 42..3 + 36 + 8 + 58].try_into().unwrap();
    let forged = forge(&mut w, reference);
    w.refused(b1, &forged, FanoutError::UnexpectedResend.into());
    let Ok(Received::RetryRequest(req)) = w.receive(a1, &request) else {
        panic!()
    };
    let answer = w
        .run(a1, |d, rng, now| d.answer_retry(rng, now, &req, b"genuine"))
        .unwrap();
    let resend = answer.envelopes.last().unwrap().1.clone();
    let got = w.receive(b1, &resend).unwrap();
    assert_eq!(body(&got), Some(&b"genuine"[..]));
    assert!(matches!(got, Received::Group { resent: Some(id), .. } if id == EnvelopeId::of(&env)));
    // Answered: nothing is pending, so even Alice's second answer would be refused.
    let forged = forge(&mut w, reference);
    w.refused(b1, &forged, FanoutError::UnexpectedResend.into());
}

/// A group message or sender key from an account the app has not made a member of the group
/// is refused, even from a device with a valid pairwise session.
#[test]
fn group_traffic_from_non_members_is_refused() {
    let mut w = World::new("insider non member");
    let alice = w.account(0);
    let bob = w.account(0);
    let mallory = w.account(0);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob]);
    // Mallory makes the room hers: she lists Bob, Bob does not list her.
    let m1 = World::addr(mallory, 1);
    w.device(m1)
        .set_group_members(ROOM, &[mallory, bob])
        .unwrap();
    w.persist(m1);
    let b1 = World::addr(bob, 1);
    let o = w.send_group(m1, ROOM, b"i am in your group now");
    let distribution = World::envelope_to(&o, b1);
    let refusal: Error = FanoutError::NotAMember {
        group: ROOM,
        account: mallory,
    }
    .into();
    w.refused(b1, &distribution, refusal);
    w.refused(b1, &group_envelope(&o), refusal);
    // A group the app never set is unknown.
    let other = GroupId([7; 32]);
    w.device(m1).set_group_members(other, &[bob]).unwrap();
    w.persist(m1);
    let o = w.send_group(m1, other, b"?");
    w.refused(
        b1,
        &World::envelope_to(&o, b1),
        FanoutError::UnknownGroup(other).into(),
    );
}

/// Alice forgets Bob's account (his account key changed) while Bob's devices hold her sender
/// key. Her next group message rotates, even if Bob's old account comes back with the same
/// devices: the old devices cannot read it. His sender keys are dropped too.
#[test]
fn forgetting_an_account_forces_rotation_and_drops_its_keys() {
    let mut w = World::new("insider forget");
    let alice = w.account(0);
    let bob = w.account(1);
    let carol = w.account(0);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob, carol]);
    let (a1, b1, c1) = (
        World::addr(alice, 1),
        World::addr(bob, 1),
        World::addr(carol, 1),
    );
    let o = w.send_group(a1, ROOM, b"everyone");
    w.deliver_ok(&o);
    let o = w.send_group(b1, ROOM, b"bob's key");
    w.deliver_ok(&o);
    let bobs_message = w.send_group(b1, ROOM, b"bob again");
    w.device(a1).forget_account(&bob);
    w.persist(a1);
    // Bob's sender key is gone from Alice's device.
    assert_eq!(
        w.devices
            .get_mut(&a1)
            .unwrap()
            .receive(support::T0, &group_envelope(&bobs_message))
            .err(),
        Some(FanoutError::UnknownAccount(bob).into())
    );
    // Bob's account comes back (same list): Alice's next message is a new generation.
    w.publish(&bob);
    let o = w.send_group(a1, ROOM, b"after forgetting bob");
    assert_eq!(
        o.envelopes.len(),
        3,
        "the key went to every member device again"
    );
    let first = w.send_group(c1, ROOM, b"carol");
    let _ = first;
    let next = w.send_group(a1, ROOM, b"steady");
    assert_eq!(key_id_of(&o), key_id_of(&next));
}

/// Bob's companion is replaced by another identity at the same device id (a primary that
/// reused the id): holding the address is not holding the key, so Alice rotates.
#[test]
fn a_new_identity_at_the_same_address_forces_rotation() {
    let (mut w, alice, bob, o) = World::group_sent("insider same address", ROOM, [0, 1]);
    let a1 = World::addr(alice, 1);
    // Bob's primary (restored without resync, say) lists a new identity as device 2.
    let now = w.now;
    w.primary(&bob).unlink(now, DeviceId(2)).unwrap();
    let mut state = w.primary(&bob).to_bytes().to_vec();
    state[2 + 32 + 4 + 8 + 8..2 + 32 + 4 + 8 + 8 + 4].copy_from_slice(&2u32.to_be_bytes());
    let mut reusing = ratchetry::devices::Primary::from_bytes(&state).unwrap();
    let intruder = IdentityKeyPair::generate(&mut w.rng);
    let inv = reusing.invite(&mut w.rng, w.now).unwrap();
    let approval = reusing
        .approve(
            w.now,
            &ratchetry::devices::LinkRequest::new(&intruder, &inv),
        )
        .unwrap();
    w.device(a1)
        .update_device_list(now, &bob, approval.list.clone())
        .unwrap();
    w.persist(a1);
    // The new device 2 needs a session; Alice's send asks for its bundle: give the intruder's.
    let b2 = World::addr(bob, 2);
    let list = approval.list.clone();
    let (intruder_device, _) = Device::new(
        &mut w.rng,
        w.now,
        intruder,
        DeviceId(2),
        list.verify(&bob, None, &Default::default()).unwrap(),
        1,
        Default::default(),
    )
    .unwrap();
    let bundle = intruder_device.bundle(None, None);
    let now = w.now;
    let ad = w.devices.get_mut(&a1).unwrap();
    let ratchetry::fanout::Outgoing::NeedBundles(missing) =
        ad.send_group(&mut w.rng, now, ROOM, b"second").unwrap()
    else {
        panic!("the new identity must need a session")
    };
    assert_eq!(missing, vec![b2]);
    ad.start_sessions(&mut w.rng, now, &[(b2, bundle)]).unwrap();
    let ratchetry::fanout::Outgoing::Ready(second) =
        ad.send_group(&mut w.rng, now, ROOM, b"second").unwrap()
    else {
        panic!()
    };
    // Rotation: the key went to Bob's phone again too, under a new generation.
    assert_eq!(second.envelopes.len(), 2);
    assert_ne!(key_id_of(&o), key_id_of(&second));
    // The replaced device itself learns that its own list names another key at its id, and
    // may no longer send.
    let old_b2 = w.devices.get_mut(&b2).unwrap();
    let events = old_b2
        .update_device_list(now, &bob, approval.list.clone())
        .unwrap();
    assert!(events.contains(&ratchetry::fanout::Event::ThisDeviceRemoved));
    assert_eq!(
        old_b2
            .send(&mut w.rng, now, &alice, b"from the old key")
            .err(),
        Some(FanoutError::ThisDeviceInactive.into())
    );
}

/// A rogue account re-wraps Alice's group message in a group envelope naming its own device
/// (whose list lists Alice's device key, with or without her consent). Bob does not show it as
/// the rogue's, and Alice's genuine copy still reads.
#[test]
fn a_group_message_is_never_attributed_to_another_device() {
    let mut w = World::new("insider misattribution");
    let alice = w.account(0);
    let bob = w.account(0);
    let rogue = w.account(0);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob, rogue]);
    let (a1, b1, r1) = (
        World::addr(alice, 1),
        World::addr(bob, 1),
        World::addr(rogue, 1),
    );
    let o = w.send_group(a1, ROOM, b"alice's words");
    let genuine = group_envelope(&o);
    for (to, e) in &o.envelopes {
        w.receive(*to, e).unwrap();
    }
    // The rogue re-distributes Alice's key as its own (it received it) and re-wraps.
    let mut rewrapped = genuine.clone();
    rewrapped[3..39].copy_from_slice(&address_bytes(&r1));
    let rogue_key = w.primary(&rogue).device_list().version();
    rewrapped[39..47].copy_from_slice(&rogue_key.to_be_bytes());
    let err = w
        .devices
        .get_mut(&b1)
        .unwrap()
        .receive(support::T0, &rewrapped)
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            Error::Fanout(FanoutError::SenderKeyMissing { .. }) | Error::Group(_)
        ),
        "{err:?}"
    );
    let got = w.receive(b1, &genuine).unwrap();
    assert!(matches!(got, Received::Group { from, .. } if from == a1));
}

/// A device restored from a backup taken before its last rotation rotates again at its next
/// group send, with a key id it never used: receivers accept it (a counted id could repeat the
/// lost generation's, and receivers would refuse every later message as conflicting).
#[test]
fn a_restored_device_never_repeats_a_sender_key_id() {
    let mut w = World::new("insider restore rotation");
    let alice = w.account(0);
    let bob = w.account(0);
    let carol = w.account(0);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob, carol]);
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let o = w.send_group(a1, ROOM, b"one");
    w.deliver_ok(&o);
    let backup = w.device(a1).to_bytes();
    // After the backup: Carol leaves, Alice rotates and Bob learns the new generation.
    w.device(a1).set_group_members(ROOM, &[bob]).unwrap();
    w.persist(a1);
    let o = w.send_group(a1, ROOM, b"without carol");
    w.deliver_ok(&o);
    // Alice's phone is restored from the backup.
    *w.device(a1) = Device::restore_from_backup(&backup, w.now).unwrap();
    w.persist(a1);
    w.device(a1).set_group_members(ROOM, &[bob]).unwrap();
    w.persist(a1);
    let o = w.send_group(a1, ROOM, b"after restore");
    let got = w.deliver_ok(&o);
    assert!(
        got.iter()
            .any(|(to, r)| *to == b1 && body(r) == Some(&b"after restore"[..]))
    );
}

/// `Received` shows message bodies to the app, never to a log.
#[test]
fn received_debug_does_not_print_bodies() {
    let r = Received::Direct {
        from: World::addr(
            ratchetry::devices::AccountKeyPair::generate(
                &mut ratchetry::testing::SeededRng::from_label("dbg"),
            )
            .public(),
            1,
        ),
        id: ratchetry::fanout::MessageId([0xab; 16]),
        body: b"the secret plan".to_vec(),
        resent: None,
    };
    let shown = format!("{r:?}");
    assert!(shown.contains("MessageId(abababababab…)"), "{shown}");
    assert!(!shown.contains("secret"), "{shown}");
    assert!(shown.contains("body_len: 15"));
}

/// The relay copies the salt of Alice's message to Bob into a forged envelope naming Alice's
/// laptop as sender; Bob's app asks the laptop about it. That must not block Bob from asking
/// Alice for her genuine message once he finds he cannot read it, however often the app asked
/// about the forgery: pending retries are kept per (sender, message), so the forgery's retry
/// uses up only its own attempts, and Alice's answer is read.
#[test]
fn a_forged_sender_cannot_block_the_retry_of_a_genuine_message() {
    let mut w = World::new("insider retry squatting");
    let alice = w.account(1);
    let bob = w.account(0);
    w.publish_all();
    let (a1, a2, b1) = (
        World::addr(alice, 1),
        World::addr(alice, 2),
        World::addr(bob, 1),
    );
    let o = w.send(a1, bob, b"genuine");
    let genuine = World::envelope_to(&o, b1);
    let mut forged = genuine.clone();
    forged[3..39].copy_from_slice(&address_bytes(&a2));
    assert!(w.receive(b1, &forged).is_err());
    for _ in 0..MAX_RETRY_ATTEMPTS {
        let (to, _) = w
            .request_retry(b1, &forged, RetryReason::AuthenticationFailed)
            .unwrap();
        assert_eq!(to, a2);
    }
    assert!(matches!(
        w.request_retry(b1, &forged, RetryReason::AuthenticationFailed),
        Err(Error::Fanout(FanoutError::RetryLimit))
    ));
    let tampered = tampered(&genuine);
    assert!(w.receive(b1, &tampered).is_err());
    let answer = w.ask_again(b1, a1, &tampered, b"genuine");
    assert_eq!(
        w.receive(b1, &World::envelope_to(&answer, b1)).unwrap(),
        Received::Direct {
            from: a1,
            id: o.message_id.unwrap(),
            body: b"genuine".to_vec(),
            resent: Some(EnvelopeId::of(&genuine)),
        }
    );
}

/// The routing header is not authenticated until decryption, so the server can hand a device
/// an envelope meant for another one. Neither end of a retry acts on it: Bob's app cannot be
/// made to ask about a 1:1 envelope addressed to his laptop, and Alice's laptop does not judge a
/// request Bob addressed to her phone (it is the phone's message, and the laptop's journal is
/// not the one that decides).
#[test]
fn a_retry_is_asked_and_judged_only_by_the_devices_it_names() {
    let mut w = World::new("insider retry routing");
    let alice = w.account(1);
    let bob = w.account(1);
    w.publish_all();
    let (a1, a2, b1, b2) = (
        World::addr(alice, 1),
        World::addr(alice, 2),
        World::addr(bob, 1),
        World::addr(bob, 2),
    );
    let o = w.send(a1, bob, b"for bob's phone and laptop");
    let to_laptop = World::envelope_to(&o, b2);
    assert!(matches!(
        w.request_retry(b1, &to_laptop, RetryReason::AuthenticationFailed),
        Err(Error::Fanout(FanoutError::NotForThisDevice))
    ));
    let to_phone = World::envelope_to(&o, b1);
    let (to, request) = w
        .request_retry(b1, &to_phone, RetryReason::AuthenticationFailed)
        .unwrap();
    assert_eq!(to, a1);
    w.refused(a2, &request, FanoutError::NotForThisDevice.into());
    assert!(matches!(
        w.receive(a1, &request),
        Ok(Received::RetryRequest(_))
    ));
}

/// A request captured and held back by the server is judged at the time it arrives: the sender
/// answers within its retry window (inclusive) and not a millisecond after, so a message is
/// not re-encrypted to a fresh session long after it was sent.
#[test]
fn a_retry_is_answered_only_within_the_retry_window() {
    const WINDOW: u64 = 60_000;
    let mut w = World::new("insider retry window");
    let config = ratchetry::fanout::DeviceConfig {
        retry_window_ms: WINDOW,
        ..Default::default()
    };
    let alice = w.account_with(0, config);
    let bob = w.account(0);
    w.publish_all();
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let sent_at = w.now;
    let o = w.send(a1, bob, b"soon stale");
    let env = World::envelope_to(&o, b1);
    let request = forged_retry(&mut w, b1, &env);
    w.now = ratchetry::Timestamp(sent_at.as_millis() + WINDOW + 1);
    w.refused(a1, &request, FanoutError::UnknownMessage.into());
    w.now = ratchetry::Timestamp(sent_at.as_millis() + WINDOW);
    assert!(matches!(
        w.receive(a1, &request),
        Ok(Received::RetryRequest(_))
    ));
}

/// Bob's phone and laptop each got their own envelope of Alice's message. Each may ask again
/// only for its own envelope: naming the other's (the server knows both references) is refused,
/// whichever of the two is listed first in Alice's journal.
#[test]
fn a_retry_names_the_requesters_own_envelope() {
    let mut w = World::new("insider retry own envelope");
    let alice = w.account(0);
    let bob = w.account(1);
    w.publish_all();
    let (a1, b1, b2) = (
        World::addr(alice, 1),
        World::addr(bob, 1),
        World::addr(bob, 2),
    );
    let o = w.send(a1, bob, b"one message, two envelopes");
    for (who, other) in [(b1, b2), (b2, b1)] {
        let request = forged_retry(&mut w, who, &World::envelope_to(&o, other));
        w.refused(a1, &request, FanoutError::NotEntitled.into());
    }
    let request = forged_retry(&mut w, b2, &World::envelope_to(&o, b2));
    assert!(matches!(
        w.receive(a1, &request),
        Ok(Received::RetryRequest(_))
    ));
}

/// The sender counts answers to a group message per requesting device: Bob's phone uses up
/// its attempts, Carol's are her own.
#[test]
fn group_retry_attempts_are_counted_per_device() {
    let mut w = World::new("insider group retry attempts");
    let alice = w.account(0);
    let bob = w.account(0);
    let carol = w.account(0);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob, carol]);
    let (a1, b1, c1) = (
        World::addr(alice, 1),
        World::addr(bob, 1),
        World::addr(carol, 1),
    );
    let o = w.send_group(a1, ROOM, b"to the room");
    let env = group_envelope(&o);
    let answer = |w: &mut World, who: DeviceAddress| {
        let request = forged_retry(w, who, &env);
        let Ok(Received::RetryRequest(req)) = w.receive(a1, &request) else {
            panic!("{who:?} is entitled")
        };
        w.run(a1, |d, rng, now| {
            d.answer_retry(rng, now, &req, b"to the room")
        })
        .map(|_| req.attempt)
    };
    let pristine_bob = w.device(b1).clone();
    for attempt in 1..=MAX_RETRY_ATTEMPTS {
        assert_eq!(answer(&mut w, b1).unwrap(), attempt);
    }
    // Bob's device caps itself; a copy from before it asked does not, and Alice counts.
    *w.device(b1) = pristine_bob;
    let request = forged_retry(&mut w, b1, &env);
    w.refused(a1, &request, FanoutError::RetryLimit.into());
    assert_eq!(answer(&mut w, c1).unwrap(), 1);
}

/// Forgetting Bob's account removes only Bob's devices from Alice's ledger: Carol, who could
/// not read a group message sent before, is still entitled to ask for it.
#[test]
fn forgetting_an_account_keeps_the_others_entitled_to_retries() {
    let mut w = World::new("insider forget keeps others");
    let alice = w.account(0);
    let bob = w.account(0);
    let carol = w.account(0);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob, carol]);
    let (a1, c1) = (World::addr(alice, 1), World::addr(carol, 1));
    let o = w.send_group(a1, ROOM, b"before bob is forgotten");
    // Carol gets the sender key but not the group message.
    for (to, envelope) in &o.envelopes {
        w.receive(*to, envelope).unwrap();
    }
    w.device(a1).forget_account(&bob);
    w.persist(a1);
    let request = forged_retry(&mut w, c1, &group_envelope(&o));
    assert!(matches!(
        w.receive(a1, &request),
        Ok(Received::RetryRequest(_))
    ));
}

/// Forgetting an account that never held this device's sender key (a contact outside the
/// group) rotates nothing: rotation is forced only where a forgotten device held the key.
#[test]
fn forgetting_an_account_that_held_no_key_rotates_nothing() {
    let mut w = World::new("insider forget outsider");
    let alice = w.account(0);
    let bob = w.account(0);
    let dave = w.account(0);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob]);
    let a1 = World::addr(alice, 1);
    let o = w.send(a1, dave, b"hi dave");
    w.deliver_ok(&o);
    let first = w.send_group(a1, ROOM, b"one");
    w.deliver_ok(&first);
    w.device(a1).forget_account(&dave);
    w.persist(a1);
    let next = w.send_group(a1, ROOM, b"two");
    assert!(next.envelopes.is_empty(), "no key to hand out again");
    assert_eq!(key_id_of(&first), key_id_of(&next));
}

/// Mallory, asked by Bob to resend a message, answers with something else. A 1:1 resend
/// dressed as a copy of Bob's own account's message is refused. A resend of another kind or
/// group than the envelope Bob asked from is read as what it is (a retry's kind is not
/// authenticated: the relay can put a group message's salt in a pairwise envelope, review
/// 43b), judged as any message of its kind, and it gives Mallory nothing she could not send
/// anyway: a group resend reads as her message in that group, which she is a member of, under
/// its own group message id. Once answered, the retry takes no second answer; her honest
/// answer to another retry reads as the message it replaces.
#[test]
fn a_resend_must_be_what_the_retry_asked_for() {
    use ratchetry::testing::hooks::{group_resend_payload, seal_raw_payload};
    const OTHER: GroupId = GroupId([0x43; 32]);
    let mut w = World::new("insider mismatched resend");
    let bob = w.account(0);
    let mallory = w.account(0);
    w.publish_all();
    w.set_members(ROOM, &[bob, mallory]);
    w.set_members(OTHER, &[bob, mallory]);
    let (b1, m1) = (World::addr(bob, 1), World::addr(mallory, 1));
    let answer_with = |w: &mut World, plaintext: &[u8]| {
        let now = w.now;
        let md = w.devices.get_mut(&m1).unwrap();
        let envelope = seal_raw_payload(md, &mut w.rng, now, b1, plaintext).unwrap();
        w.receive(b1, &envelope)
    };
    // A 1:1 message Bob could not read, asked again.
    let sent_direct = w.send(m1, bob, b"direct");
    let direct = tampered(&World::envelope_to(&sent_direct, b1));
    assert!(w.receive(b1, &direct).is_err());
    let (_, request) = w
        .request_retry(b1, &direct, RetryReason::AuthenticationFailed)
        .unwrap();
    let reference: [u8; 16] = request[3 + 72..3 + 88].try_into().unwrap();
    let as_group = group_resend_payload(reference, ROOM, b"forged");
    // A direct resend (kind 0x06) carrying `sent_to`: only the requester's own account's
    // devices send own copies.
    let mut as_own_copy = as_group[..3].to_vec();
    as_own_copy[2] = 0x06;
    as_own_copy.extend_from_slice(&reference);
    as_own_copy.extend_from_slice(&[0x5a; 16]); // the message nonce
    as_own_copy.push(1);
    as_own_copy.extend_from_slice(&bob.to_bytes());
    as_own_copy.extend_from_slice(b"forged");
    assert_eq!(
        answer_with(&mut w, &as_own_copy).err(),
        Some(DecodeError::InvalidValue.into())
    );
    // A group resend for it: Mallory's message in ROOM, under ROOM's message id.
    match answer_with(&mut w, &as_group) {
        Ok(Received::Group {
            from,
            group,
            body,
            resent,
            ..
        }) => {
            assert_eq!((from, group, body), (m1, ROOM, b"forged".to_vec()));
            assert_eq!(resent, Some(EnvelopeId::of(&direct)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        answer_with(&mut w, &as_group).err(),
        Some(FanoutError::UnexpectedResend.into()),
        "the retry is answered"
    );
    // A room message Bob could not read, answered as a message of the other group: read in
    // that group, whose member Mallory is.
    let o = w.send_group(m1, ROOM, b"to the room");
    for (to, envelope) in &o.envelopes {
        w.receive(*to, envelope).unwrap();
    }
    let in_room = tampered(&group_envelope(&o));
    assert!(w.receive(b1, &in_room).is_err());
    let (_, request) = w
        .request_retry(b1, &in_room, RetryReason::AuthenticationFailed)
        .unwrap();
    let reference: [u8; 16] = request[3 + 72..3 + 88].try_into().unwrap();
    assert!(matches!(
        answer_with(&mut w, &group_resend_payload(reference, OTHER, b"forged")),
        Ok(Received::Group { group: OTHER, .. })
    ));
    // Mallory's honest answer to another 1:1 retry reads, as the message it replaces.
    let sent_direct = w.send(m1, bob, b"direct again");
    let direct = tampered(&World::envelope_to(&sent_direct, b1));
    assert!(w.receive(b1, &direct).is_err());
    let answer = w.ask_again(b1, m1, &direct, b"direct again");
    let got = w.receive(b1, &World::envelope_to(&answer, b1)).unwrap();
    assert_eq!(
        got,
        Received::Direct {
            from: m1,
            id: sent_direct.message_id.unwrap(),
            body: b"direct again".to_vec(),
            resent: Some(EnvelopeId::of(&direct)),
        }
    );
}

/// The relay re-wraps the salt of a 1:1 message Bob has read as a group message of the same
/// sender. Bob's device does not ask for it: under either kind's name it is the message read.
#[test]
fn a_read_message_is_not_asked_for_under_the_other_kind() {
    let mut w = World::new("insider other kind");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob]);
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let o = w.send(a1, bob, b"read");
    let env = World::envelope_to(&o, b1);
    // The salt, as a copy of Bob's device that has not read it would ask for it.
    let mut unread = w.device(b1).clone();
    w.receive(b1, &env).unwrap();
    let (_, request) = unread
        .request_retry(&mut w.rng, w.now, &env, RetryReason::NoSession)
        .unwrap();
    let salt = &request[3 + 72..3 + 88];
    let g = w.send_group(a1, ROOM, b"the group");
    w.deliver_ok(&g);
    let mut forged = group_envelope(&g);
    forged[3 + 36 + 8 + 42..3 + 36 + 8 + 58].copy_from_slice(salt);
    assert!(w.receive(b1, &forged).is_err());
    assert_eq!(
        w.request_retry(b1, &forged, RetryReason::AuthenticationFailed)
            .err(),
        Some(
            FanoutError::Duplicate {
                envelope_id: EnvelopeId::of(&env)
            }
            .into()
        )
    );
}

/// Bob asked Alice's laptop for a message; then Alice unlinks the laptop. Bob's device drops
/// the retry with the device (its record is deleted in the same unit as the new list), so no
/// answer from that address, under any identity key, can be taken as the message.
#[test]
fn retries_asked_of_a_removed_device_are_dropped_with_it() {
    let mut w = World::new("insider retry removed device");
    let alice = w.account(1);
    let bob = w.account(0);
    w.publish_all();
    let (a2, b1) = (World::addr(alice, 2), World::addr(bob, 1));
    let o = w.send(a2, bob, b"from the laptop");
    let tampered = tampered(&World::envelope_to(&o, b1));
    assert!(w.receive(b1, &tampered).is_err());
    w.request_retry(b1, &tampered, RetryReason::AuthenticationFailed)
        .unwrap();
    let now = w.now;
    w.primary(&alice).unlink(now, DeviceId(2)).unwrap();
    let list = w.primary(&alice).device_list().signed().clone();
    let d = w.devices.get_mut(&b1).unwrap();
    let _ = d.take_changes(&mut w.rng);
    d.update_device_list(now, &alice, list).unwrap();
    let unit = d.take_changes(&mut w.rng);
    let deleted: Vec<&[u8]> = unit
        .records()
        .iter()
        .filter(|r| r.key()[0] == 0x10 && r.value().is_none())
        .map(|r| r.key())
        .collect();
    assert_eq!(deleted.len(), 1, "the pending retry's record is deleted");
    assert_eq!(&deleted[0][1..37], &address_bytes(&a2));
}

/// Forgetting Bob's account leaves Carol alone: Alice keeps her session with Carol and
/// Carol's sender key.
#[test]
fn forgetting_an_account_leaves_the_others_alone() {
    let mut w = World::new("insider forget others");
    let alice = w.account(0);
    let bob = w.account(0);
    let carol = w.account(0);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob, carol]);
    let (a1, c1) = (World::addr(alice, 1), World::addr(carol, 1));
    let o = w.send_group(c1, ROOM, b"carol's key");
    w.deliver_ok(&o);
    w.device(a1).forget_account(&bob);
    w.persist(a1);
    let o = w.send_group(c1, ROOM, b"still carol");
    let got = w.receive(a1, &group_envelope(&o)).unwrap();
    assert_eq!(body(&got), Some(&b"still carol"[..]));
    let (now, rng) = (w.now, &mut w.rng);
    let d = w.devices.get_mut(&a1).unwrap();
    assert!(matches!(
        d.send(rng, now, &carol, b"nothing to fetch"),
        Ok(ratchetry::fanout::Outgoing::Ready(_))
    ));
}

/// Alice's phone is backed up while her laptop is linked; the laptop is stolen and unlinked;
/// the phone is restored from the backup. The server, holding the stolen laptop, serves the
/// phone a list signed after the backup but before the unlink (it still names the laptop) and
/// delivers the laptop's messages. The restored phone sends nothing to the laptop and accepts
/// nothing from it until it holds an own list issued since the restore.
#[test]
fn a_restored_phone_sends_nothing_to_a_companion_unlinked_after_its_backup() {
    let mut w = World::new("insider restored phone");
    let alice = w.account(1);
    let bob = w.account(0);
    w.publish_all();
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let laptop = w.devices_of(&alice).into_iter().find(|d| *d != a1).unwrap();
    let o = w.send(a1, bob, b"before the backup");
    w.deliver_ok(&o);
    let backup = w.device(a1).to_bytes();

    // After the backup: a renewal (still naming the laptop), then the laptop is stolen and
    // unlinked. The stolen laptop never learns the unlink.
    w.now = w.now.plus_millis(support::DAY);
    let now = w.now;
    let before_unlink = w.primary(&alice).renew(now).unwrap().signed().clone();
    w.publish(&alice);
    let mut stolen = w.devices.remove(&laptop).unwrap();
    w.primary(&alice).unlink(now, laptop.device).unwrap();
    w.publish(&alice);

    // The phone is restored from the backup; the server shows it the pre-unlink list.
    w.now = w.now.plus_millis(support::DAY);
    let now = w.now;
    *w.device(a1) = Device::restore_from_backup(&backup, now).unwrap();
    w.persist(a1);
    assert!(w.device(a1).awaiting_own_list());
    w.device(a1)
        .update_device_list(now, &alice, before_unlink)
        .unwrap();
    w.persist(a1);
    assert!(
        w.device(a1).awaiting_own_list(),
        "a list from before the restore"
    );

    // A message to Bob reaches Bob, and no device of Alice's account.
    let o = w.send(a1, bob, b"after the restore");
    assert!(o.envelopes.iter().all(|(to, _)| to.account != alice));
    let got = w.deliver_ok(&o);
    assert_eq!(got.len(), 1);
    assert_eq!(body(&got[0].1), Some(&b"after the restore"[..]));
    // Nothing can be sent to the own account or one of its devices meanwhile.
    let rng = &mut w.rng.clone();
    assert_eq!(
        w.device(a1).send(rng, now, &alice, b"note to self").err(),
        Some(FanoutError::AwaitingOwnList.into())
    );

    // The stolen laptop's "own copy" of a message to Bob is refused, changing nothing.
    w.devices.insert(laptop, stolen.clone());
    let o = w.send(laptop, bob, b"injected");
    stolen = w.devices.remove(&laptop).unwrap();
    let injected = World::envelope_to(&o, a1);
    w.refused(a1, &injected, FanoutError::AwaitingOwnList.into());

    // Alice's primary signs a list now (after the restore): the phone talks to its account
    // again, and the laptop is not in it.
    let fresh = w.primary(&alice).renew(now).unwrap().signed().clone();
    w.device(a1).update_device_list(now, &alice, fresh).unwrap();
    w.persist(a1);
    assert!(!w.device(a1).awaiting_own_list());
    let err = w.device(a1).receive(now, &injected).unwrap_err();
    assert_ne!(err, FanoutError::AwaitingOwnList.into());
    let _ = (stolen, b1);
}

/// Records of `kind` in a device's whole state.
fn records_of_kind(device: &Device, kind: u8) -> usize {
    Device::from_bytes(&device.to_bytes())
        .unwrap()
        .take_changes(&mut ratchetry::testing::SeededRng::from_label(
            "records of kind",
        ))
        .records()
        .iter()
        .filter(|r| r.key()[0] == kind)
        .count()
}

/// One-time prekeys held in all (kind 0x04) and one-time ML-KEM prekeys (kind 0x05).
fn prekeys_held(device: &Device) -> (usize, usize) {
    (records_of_kind(device, 0x04), records_of_kind(device, 0x05))
}

/// The server makes Bob ask for retries that are never answered: it tampers with 150 of
/// Alice's messages and drops every answer. Each request mints a one-time prekey and a one-time
/// ML-KEM prekey that are never uploaded. The pools Bob's app uploads keep their count and
/// their room. A retry's keys (one pair per request) stay while the retry is kept, even once
/// the genuine copy arrived (the sender's answer session may name them), and are deleted when
/// the retry is dropped: here with its sender's account, forgotten.
#[test]
fn unanswered_retries_never_starve_the_uploaded_prekey_pools() {
    let (mut w, [alice, bob, carol], [a1, b1, c1]) = World::phones("insider retry prekeys");
    let uploaded = |w: &mut World| {
        let d = w.device(b1);
        (
            d.one_time_prekeys_remaining(),
            d.one_time_kem_prekeys_remaining(),
        )
    };
    let start = uploaded(&mut w);
    assert_eq!(prekeys_held(w.device(b1)), start);
    let mut genuine = Vec::new();
    for i in 0..150u32 {
        // Spaced: more asks of one account waiting at once are deferred (`AskLater`).
        w.now = w.now.plus_millis(ASK_SPACING);
        let o = w.send(a1, bob, &i.to_be_bytes());
        let envelope = World::envelope_to(&o, b1);
        let copy = tampered(&envelope);
        assert!(w.receive(b1, &copy).is_err());
        w.request_retry(b1, &copy, RetryReason::AuthenticationFailed)
            .unwrap();
        if i == 0 {
            // Asked again: the first request's keys are replaced, not added to.
            w.request_retry(b1, &copy, RetryReason::AuthenticationFailed)
                .unwrap();
        }
        genuine.push(envelope);
    }
    w.restart(b1);
    assert_eq!(
        uploaded(&mut w),
        start,
        "retry keys are not in the uploaded pools"
    );
    assert_eq!(prekeys_held(w.device(b1)), (start.0 + 151, start.1 + 151));

    // The app replenishes to the caps as if no retry were pending (1000 and 100 by default).
    let (rng, now) = (&mut w.rng.clone(), w.now);
    let fresh = w.device(b1).generate_one_time_prekeys(rng, now, 1000);
    assert_eq!(fresh.keys().len(), 1000 - start.0);
    assert_eq!(fresh.kem_keys().len(), 100 - start.1);
    w.persist(b1);
    assert_eq!(uploaded(&mut w), (1000, 100));
    // Stored records load only as written: beyond the caps, only keys a pending retry holds
    // (without one pending record, one key of each kind is too many).
    let mut records = w.stores[&b1].0.clone();
    let pending = records.keys().find(|k| k[0] == 0x10).unwrap().clone();
    records.remove(&pending);
    assert_eq!(
        Device::from_records(records.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))).err(),
        Some(DecodeError::InvalidValue)
    );
    w.restart(b1);

    // The genuine copies arrive: each retry is withdrawn and keeps its keys. (The test
    // server's bundles carry no one-time prekeys: Alice's session consumed none.)
    for envelope in &genuine {
        w.receive(b1, envelope).unwrap();
    }
    assert_eq!(uploaded(&mut w), (1000, 100));
    assert_eq!(prekeys_held(w.device(b1)), (1151, 251));

    // Carol's messages fail too; forgetting her account ends the retries asked of her.
    for i in 0..3u32 {
        let o = w.send(c1, bob, &i.to_be_bytes());
        let copy = tampered(&World::envelope_to(&o, b1));
        assert!(w.receive(b1, &copy).is_err());
        w.request_retry(b1, &copy, RetryReason::AuthenticationFailed)
            .unwrap();
    }
    assert_eq!(prekeys_held(w.device(b1)), (1154, 254));
    w.restart(b1);
    w.device(b1).forget_account(&carol);
    w.persist(b1);
    assert_eq!(prekeys_held(w.device(b1)), (1151, 251));
    // Alice forgotten too: every retry key is gone.
    w.device(b1).forget_account(&alice);
    w.persist(b1);
    assert_eq!(prekeys_held(w.device(b1)), (1000, 100));
}

/// The relay tampers with Alice's message, so Bob asks again and reads her resend. It then
/// holds the genuine copy back until Bob's read ring has turned (2,000 more reads) and
/// delivers it, well within the retry window. The genuine copy still opens (its key was never
/// used), but Bob refuses it as the message he read through the resend: shown once.
#[test]
fn a_message_read_through_a_resend_is_never_read_again_after_the_ring_turns() {
    let mut w = World::new("insider late genuine copy");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let o = w.send(a1, bob, b"hello");
    w.deliver_ok(&o);
    let o = w.send(a1, bob, b"transfer $100");
    let genuine = World::envelope_to(&o, b1);
    let copy = tampered(&genuine);
    assert!(w.receive(b1, &copy).is_err());
    let answer = w.ask_again(b1, a1, &copy, b"transfer $100");
    let got = w.deliver_ok(&answer);
    let Received::Direct { resent, .. } = &got[0].1 else {
        panic!()
    };
    let replaced = resent.unwrap();
    assert_eq!(replaced, EnvelopeId::of(&genuine));
    // 2,000 more reads turn the read ring over (an hour later, in the retry window).
    w.now = w.now.plus_millis(60 * 60 * 1000);
    for i in 0..ratchetry::fanout::MAX_REMEMBERED_MESSAGE_IDS as u32 {
        let o = w.send(a1, bob, &i.to_be_bytes());
        w.deliver_ok(&o);
    }
    w.restart(b1);
    let duplicate: ratchetry::Error = FanoutError::Duplicate {
        envelope_id: replaced,
    }
    .into();
    w.refused(b1, &genuine, duplicate);
    // Nor does Bob ask for it again, should another tampered copy come.
    let asked = w.request_retry(b1, &copy, RetryReason::AuthenticationFailed);
    assert_eq!(asked.err(), Some(duplicate));
}

/// The relay reorders the answers to two requests for one message: Alice answers Bob's second
/// request, then his first, so her current session starts from the first request's bundle.
/// Bob reads the second answer; the first is unexpected. Alice's later messages still read:
/// a retry keeps the keys of all its requests.
#[test]
fn answers_in_any_order_leave_the_sender_on_a_bundle_the_requester_holds() {
    let mut w = World::new("insider reordered answers");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let o = w.send(a1, bob, b"hello");
    w.deliver_ok(&o);
    let o = w.send(a1, bob, b"m1");
    let copy = tampered(&World::envelope_to(&o, b1));
    assert!(w.receive(b1, &copy).is_err());
    let (_, first) = w
        .request_retry(b1, &copy, RetryReason::AuthenticationFailed)
        .unwrap();
    let (_, second) = w
        .request_retry(b1, &copy, RetryReason::AuthenticationFailed)
        .unwrap();
    let Ok(Received::RetryRequest(q2)) = w.receive(a1, &second) else {
        panic!()
    };
    let Ok(Received::RetryRequest(q1)) = w.receive(a1, &first) else {
        panic!()
    };
    let answer2 = w
        .run(a1, |d, rng, now| d.answer_retry(rng, now, &q2, b"m1"))
        .unwrap();
    let answer1 = w
        .run(a1, |d, rng, now| d.answer_retry(rng, now, &q1, b"m1"))
        .unwrap();
    assert_eq!(body(&w.deliver_ok(&answer2)[0].1), Some(&b"m1"[..]));
    w.refused(
        b1,
        &World::envelope_to(&answer1, b1),
        FanoutError::UnexpectedResend.into(),
    );
    for i in 0..3u8 {
        let o = w.send(a1, bob, &[i]);
        assert_eq!(body(&w.deliver_ok(&o)[0].1), Some(&[i][..]));
    }
}

/// Bob's app keeps its uploaded pools full; 120 of his retries, each asked three times, hold
/// 360 minted keys of each kind beyond the caps (up to 256 × 3 are allowed): his records and
/// his state bytes load, with every key. (Loading refused more than 256 beyond the caps, so a
/// device that had re-asked enough could not restart: found by `pending_life`, stop 49.)
#[test]
fn a_device_whose_retries_were_asked_three_times_loads_with_full_pools() {
    let (mut w, [_, bob, _], [a1, b1, c1]) = World::phones("insider minted load");
    let (mut rng, now) = (w.rng.clone(), w.now);
    w.device(b1).generate_one_time_prekeys(&mut rng, now, 1000);
    w.rng = rng;
    w.persist(b1);
    let full = prekeys_held(w.device(b1));
    for from in [a1, c1] {
        for i in 0..60u32 {
            let o = w.send(from, bob, &i.to_be_bytes());
            let copy = tampered(&World::envelope_to(&o, b1));
            for _ in 0..3 {
                w.request_retry(b1, &copy, RetryReason::AuthenticationFailed)
                    .unwrap();
            }
        }
    }
    assert_eq!(prekeys_held(w.device(b1)), (full.0 + 360, full.1 + 360));
    let bytes = w.device(b1).to_bytes();
    assert!(Device::from_bytes(&bytes).is_ok());
    w.restart(b1);
    assert_eq!(prekeys_held(w.device(b1)), (full.0 + 360, full.1 + 360));
}

/// Bob's app keeps its uploaded pools full; the relay leaves 256 of his retries unanswered,
/// asked days apart (more waiting at once are deferred). The next retry drops the one asked
/// longest ago, past its hold, before it mints: its request still carries a one-time prekey
/// and a one-time ML-KEM prekey, and the answer uses no last-resort key.
#[test]
fn a_retry_beyond_the_pending_bound_still_gets_its_own_one_time_keys() {
    let mut w = World::new("insider retry room order");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let (mut rng, now) = (w.rng.clone(), w.now);
    w.device(b1).generate_one_time_prekeys(&mut rng, now, 1000);
    w.persist(b1);
    let bound = ratchetry::fanout::MAX_PENDING_RETRIES;
    let failed = |w: &mut World, i: u32| {
        w.now = w.now.plus_millis(ASK_SPACING);
        let o = w.send(a1, bob, &i.to_be_bytes());
        let copy = tampered(&World::envelope_to(&o, b1));
        assert!(w.receive(b1, &copy).is_err());
        copy
    };
    for i in 0..bound as u32 {
        let copy = failed(&mut w, i);
        w.request_retry(b1, &copy, RetryReason::AuthenticationFailed)
            .unwrap();
    }
    let copy = failed(&mut w, bound as u32);
    let uses = w.device(b1).last_resort_uses();
    let body_bytes = (bound as u32).to_be_bytes();
    let answer = w.ask_again(b1, a1, &copy, &body_bytes);
    let got = w.deliver_ok(&answer);
    assert_eq!(body(&got[0].1), Some(&body_bytes[..]));
    assert_eq!(w.device(b1).last_resort_uses(), uses);
}

/// The relay holds back the genuine copy of Alice's message that Bob read through a resend,
/// then has Carol, a contact it controls, make Bob read 2,000 resends of her own (tampering
/// each of her messages so that Bob asks again). Alice's genuine copy, delivered after, is
/// still a duplicate: Carol's resends push out only Carol's replaced ids.
#[test]
fn a_contact_cannot_flush_the_replaced_ids_with_resends_of_its_own() {
    let (mut w, [_, bob, _], [a1, b1, c1]) = World::phones("insider replaced flush");
    let o = w.send(a1, bob, b"hello");
    w.deliver_ok(&o);
    let o = w.send(a1, bob, b"transfer $100");
    let genuine = World::envelope_to(&o, b1);
    let copy = tampered(&genuine);
    assert!(w.receive(b1, &copy).is_err());
    let answer = w.ask_again(b1, a1, &copy, b"transfer $100");
    assert_eq!(
        body(&w.deliver_ok(&answer)[0].1),
        Some(&b"transfer $100"[..])
    );
    for i in 0..ratchetry::fanout::MAX_REPLACED_MESSAGE_IDS as u32 {
        w.now = w.now.plus_millis(1000);
        let b = i.to_be_bytes();
        let o = w.send(c1, bob, &b);
        let t = tampered(&World::envelope_to(&o, b1));
        assert!(w.receive(b1, &t).is_err());
        let answer = w.ask_again(b1, c1, &t, &b);
        w.deliver_ok(&answer);
    }
    w.restart(b1);
    w.refused(
        b1,
        &genuine,
        FanoutError::Duplicate {
            envelope_id: EnvelopeId::of(&genuine),
        }
        .into(),
    );
}

/// Mallory, a contact, starts two sessions with Bob's phone from one base key: the first under
/// Bob's signed prekey, the second under the one that replaced it (each signed prekey
/// remembers the base keys it has seen, so both are accepted). When Bob's rotations drop the
/// first signed prekey, its record of the base key must go with it, although the base key is
/// still remembered under the second: a record left behind names a signed prekey Bob no longer
/// has, and Bob's stored state would no longer load.
#[test]
fn a_base_key_reused_under_two_signed_prekeys_cannot_make_stored_state_unloadable() {
    let mut w = World::new("insider reused base key");
    let mallory = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (m1, b1) = (World::addr(mallory, 1), World::addr(bob, 1));
    let now = w.now;
    // A base key is the first thing a session start draws: the same RNG state twice gives the
    // same base key.
    let draws = w.rng.clone();
    for text in [&b"under the first signed prekey"[..], b"under the second"] {
        let bundle = w.device(b1).bundle(None, None);
        w.device(m1)
            .start_sessions(&mut draws.clone(), now, &[(b1, bundle)])
            .unwrap();
        let o = w.send(m1, bob, text);
        assert_eq!(body(&w.deliver_ok(&o)[0].1), Some(text));
        w.devices
            .get_mut(&b1)
            .unwrap()
            .rotate_signed_prekey(&mut w.rng, now);
        w.persist(b1);
    }
    let seen = |w: &World| -> Vec<Vec<u8>> {
        w.stores[&b1]
            .0
            .keys()
            .filter(|k| k[0] == 0x06)
            .cloned()
            .collect()
    };
    let both = seen(&w);
    assert_eq!(both.len(), 2);
    assert_eq!(both[0][5..], both[1][5..], "one base key");
    // Bob rotates on; after each rotation his stored state loads.
    for _ in 0..PreKeyStoreConfig::default().max_signed_prekeys {
        w.devices
            .get_mut(&b1)
            .unwrap()
            .rotate_signed_prekey(&mut w.rng, now);
        w.persist(b1);
        let records = w.stores[&b1].0.iter();
        Device::from_records(records.map(|(k, v)| (k.as_slice(), v.as_slice()))).unwrap();
    }
    assert!(seen(&w).is_empty(), "both signed prekeys are gone");
}

/// The server serves a forgotten account's lists out of order. Bob forgets Alice (version
/// `v`); what the forget keeps is her list's mark alone, one `0x15` record (PROTOCOL.md 19.1):
/// `u64(v) ‖ digest ‖ flag(policy)`, and no record of her list or devices. Followed again,
/// Alice's account is held to it, also after a restart: a list of the same version with other
/// content is `Equivocation`, a later list of the old form `PolicyDowngrade` (each with nothing
/// changed), and the very list forgotten is taken again, which deletes the mark. A load refuses
/// a mark beside a list of the same account, and any value but the one encoding.
#[test]
fn a_forgotten_account_is_held_to_the_mark_of_its_last_list() {
    use ratchetry::DeviceError;
    use ratchetry::devices::Primary;
    use ratchetry::fanout::Event;
    use ratchetry::testing::hooks::legacy_device_list;
    use std::collections::BTreeMap;

    let mut w = World::new("insider forgotten mark");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    // Alice's state is copied (not restored) before a renewal: the copy signs another list of
    // the renewal's version, as a primary run twice from one state would.
    let fork = w.primary(&alice).to_bytes();
    w.now = w.now.plus_millis(support::DAY);
    let now = w.now;
    w.primary(&alice).renew(now).unwrap();
    w.publish(&alice);
    let current = w.primary(&alice).device_list().clone();
    let mut forked = Primary::from_bytes(&fork).unwrap();
    let equivocation = forked.renew(now.plus_millis(1)).unwrap().signed().clone();
    assert_eq!(equivocation.version(), current.version());
    let mut later = Primary::from_bytes(&w.primary(&alice).to_bytes()).unwrap();
    later.renew(now.plus_millis(2)).unwrap();
    let downgrade = legacy_device_list(&later);
    let held = w.stores[&b1].0.clone();

    let epoch = w.take(b1).epoch();
    // Bob holds Alice's list and no session with her: the list alone is a change.
    w.device(b1).forget_account(&alice);
    let unit = w.take(b1);
    assert_eq!(unit.epoch(), epoch + 1);
    let mut key = vec![0x15];
    key.extend_from_slice(&alice.to_bytes());
    let mut mark = current.version().to_be_bytes().to_vec();
    mark.extend_from_slice(&current.digest());
    mark.push(1);
    let alices: Vec<(u8, Option<&[u8]>)> = unit
        .records()
        .iter()
        .filter(|r| r.key().windows(32).any(|k| k == alice.to_bytes()))
        .map(|r| (r.key()[0], r.value()))
        .collect();
    assert_eq!(alices, [(0x07, None), (0x15, Some(&mark[..]))]);
    w.stores.get_mut(&b1).unwrap().apply(&unit);
    w.restart(b1);

    for (list, error) in [
        (equivocation, DeviceError::Equivocation),
        (downgrade, DeviceError::PolicyDowngrade),
    ] {
        let before = w.device(b1).to_bytes();
        let refused = w.device(b1).update_device_list(now, &alice, list);
        assert_eq!(refused, Err(error.into()));
        assert_eq!(*before, *w.device(b1).to_bytes());
        assert!(!w.device(b1).has_changes());
    }

    let load = |r: &BTreeMap<Vec<u8>, Vec<u8>>| {
        Device::from_records(r.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))).err()
    };
    let mut records = w.stores[&b1].0.clone();
    assert_eq!(records.get(&key), Some(&mark));
    assert_eq!(load(&records), None);
    let mut list_key = vec![0x07];
    list_key.extend_from_slice(&alice.to_bytes());
    let mut both = records.clone();
    both.insert(list_key.clone(), held[&list_key].clone());
    assert_eq!(load(&both), Some(DecodeError::InvalidValue));
    for (value, error) in [
        (&mark[..40], DecodeError::Truncated),
        (&[&mark[..], &[0]].concat()[..], DecodeError::TrailingBytes),
        (&[&mark[..40], &[2]].concat()[..], DecodeError::InvalidValue),
    ] {
        records.insert(key.clone(), value.to_vec());
        assert_eq!(load(&records), Some(error));
    }

    let events = w
        .device(b1)
        .update_device_list(now, &alice, current.signed().clone());
    assert_eq!(events, Ok(vec![Event::DeviceAdded(a1)]));
    w.persist(b1);
    assert!(!w.stores[&b1].0.contains_key(&key));
    assert!(w.stores[&b1].0.contains_key(&list_key));
}
