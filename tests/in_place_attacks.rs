//! Attacks on receiving and sending in place (a session opened without a copy and applied
//! only once the payload is accepted; every envelope of a send sealed on its session in place
//! once everything that can refuse was checked).
//!
//! The rule: a refused input returns a typed error and leaves the device byte for byte as it
//! was (and nothing to persist), which makes it indistinguishable from an envelope the relay
//! never delivered; the genuine messages after it (skipped keys, DH ratchet steps, chunks of
//! the post-quantum ratchet, other sessions of the same device) still read, each once.

mod support;

use ratchetry::devices::{AccountKey, DeviceAddress};
use ratchetry::group::GroupId;
use ratchetry::testing::hooks::{group_resend_payload, seal_raw_payload};
use ratchetry::{DecodeError, Error, FanoutError};
use support::{World, body};

const ROOM: GroupId = GroupId([0x41; 32]);
/// A group Bob's devices do not know.
const UNKNOWN: GroupId = GroupId([0x42; 32]);

/// Alice and Bob, one device each, after Alice's "hello" has started their session.
fn alice_and_bob(label: &str) -> (World, DeviceAddress, DeviceAddress) {
    let mut w = World::new(label);
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a, b) = (World::addr(alice, 1), World::addr(bob, 1));
    let hello = direct(&mut w, a, b, b"hello");
    reads(&mut w, b, &hello, b"hello");
    (w, a, b)
}

/// Seals raw payload bytes from `from` to `to` on `from`'s current session (a malicious or
/// compromised peer's payload in a genuine envelope); persists `from`.
fn raw(w: &mut World, from: DeviceAddress, to: DeviceAddress, plaintext: &[u8]) -> Vec<u8> {
    let now = w.now;
    let device = w.devices.get_mut(&from).unwrap();
    let envelope = seal_raw_payload(device, &mut w.rng, now, to, plaintext).unwrap();
    w.persist(from);
    envelope
}

/// A direct payload's plaintext with `sent_to` set (an own copy's form) and `body`.
fn direct_sent_to(sent_to: &AccountKey, body: &[u8]) -> Vec<u8> {
    let mut out = vec![2, 0x0c, 1];
    out.extend_from_slice(&[0x5a; 16]);
    out.push(1);
    out.extend_from_slice(&sent_to.to_bytes());
    out.extend_from_slice(body);
    out
}

/// `to` refuses `envelope`: returns the error, after checking that nothing changed.
fn refused_any(w: &mut World, to: DeviceAddress, envelope: &[u8]) -> Error {
    let now = w.now;
    let d = w.device(to);
    assert!(!d.has_changes());
    let before = d.to_bytes();
    let err = d.receive(now, envelope).expect_err("refused");
    assert_eq!(*before, *d.to_bytes(), "a refused envelope changed {to:?}");
    assert!(
        !d.has_changes(),
        "a refused envelope left changes on {to:?}"
    );
    err
}

/// A direct message from `from` to `to`'s account, the envelope to `to`.
fn direct(w: &mut World, from: DeviceAddress, to: DeviceAddress, text: &[u8]) -> Vec<u8> {
    World::envelope_to(&w.send(from, to.account, text), to)
}

/// `to` reads `envelope` as a direct message with this body, exactly once: a second delivery
/// is a duplicate that changes nothing.
fn reads(w: &mut World, to: DeviceAddress, envelope: &[u8], text: &[u8]) {
    let got = w
        .receive(to, envelope)
        .unwrap_or_else(|e| panic!("{to:?} did not read {:?}: {e}", text));
    assert_eq!(body(&got), Some(text), "{to:?}");
    duplicate(w, to, envelope);
}

/// `to` has read `envelope` already: delivered again, it is a duplicate that changes nothing.
fn duplicate(w: &mut World, to: DeviceAddress, envelope: &[u8]) {
    let again = refused_any(w, to, envelope);
    assert!(
        matches!(again, Error::Fanout(FanoutError::Duplicate { .. })),
        "{again:?}"
    );
}

/// A malformed payload and a resend nobody asked for, each in a genuine envelope, are refused
/// with their own errors, each changing nothing.
fn refused_malformed_and_unasked(w: &mut World, to: DeviceAddress, bad: &[u8], unasked: &[u8]) {
    assert_eq!(refused_any(w, to, bad), DecodeError::InvalidValue.into());
    assert_eq!(
        refused_any(w, to, unasked),
        FanoutError::UnexpectedResend.into()
    );
}

/// Before a retry's answer is read: a resend nobody asked for and a tampered copy of the
/// answer are refused, each changing nothing.
fn refused_before_the_answer(w: &mut World, to: DeviceAddress, answer: &[u8], unasked: &[u8]) {
    assert_eq!(
        refused_any(w, to, unasked),
        FanoutError::UnexpectedResend.into()
    );
    refused_any(w, to, &support::tampered(answer));
}

/// After a retry's answer was read: the answer and the `original` it replaced are duplicates
/// and a resend nobody asked for is still refused, each changing nothing, before and after a
/// restart.
fn answered_once(w: &mut World, to: DeviceAddress, answer: &[u8], original: &[u8], unasked: &[u8]) {
    duplicate(w, to, answer);
    duplicate(w, to, original);
    assert_eq!(
        refused_any(w, to, unasked),
        FanoutError::UnexpectedResend.into()
    );
    restart_same(w, to);
    duplicate(w, to, answer);
}

/// The refused kinds of payload a peer `from` (of another account than `to`'s) can put in a
/// genuine envelope, each with the exact error `to` returns; `k` picks one.
fn refused_payload(
    w: &mut World,
    from: DeviceAddress,
    to: DeviceAddress,
    k: usize,
) -> (Vec<u8>, Error) {
    match k % 6 {
        // Malformed: an unknown payload tag.
        0 => (
            raw(w, from, to, &[2, 0x0c, 0x7f, 1, 2, 3]),
            DecodeError::InvalidValue.into(),
        ),
        // A copy "sent to" someone, from a device of another account.
        1 => {
            let pt = direct_sent_to(&to.account, b"forged own copy");
            (raw(w, from, to, &pt), DecodeError::InvalidValue.into())
        }
        // A resend nobody asked for.
        2 => {
            let pt = group_resend_payload([7; 16], ROOM, b"unasked");
            (raw(w, from, to, &pt), FanoutError::UnexpectedResend.into())
        }
        // A withheld notice for a group `to` does not know.
        3 => {
            // 18.2: kind 0x0a, the group, the generation, the reason.
            let pt = [&[2, 0x0c, 0x0a][..], &UNKNOWN.0, &7u32.to_be_bytes(), &[1]].concat();
            (
                raw(w, from, to, &pt),
                FanoutError::UnknownGroup(UNKNOWN).into(),
            )
        }
        // A sender key for a group `to` does not know (the sender's app put `to` in it).
        4 => {
            w.device(from)
                .set_group_members(UNKNOWN, &[from.account, to.account])
                .unwrap();
            w.persist(from);
            let out = w.send_group(from, UNKNOWN, b"group");
            w.device(from).forget_group(UNKNOWN);
            w.persist(from);
            (
                World::envelope_to(&out, to),
                FanoutError::UnknownGroup(UNKNOWN).into(),
            )
        }
        // Truncated: a direct payload cut in its nonce.
        _ => (
            raw(w, from, to, &[2, 0x0c, 1, 0, 0]),
            DecodeError::Truncated.into(),
        ),
    }
}

/// One conversation between Alice's and Bob's phones in which Alice's peer also seals a
/// refused payload before each genuine message; `deliver_refused` says whether the relay
/// delivers those (before the genuine message, on the chain's next key; after it, on its
/// skipped key; twice) or drops them. Returns both devices' state after every step.
#[allow(clippy::type_complexity)]
fn conversation(deliver_refused: bool) -> (Vec<(Vec<u8>, Vec<u8>)>, (Option<u32>, Option<u32>)) {
    let (mut w, a, b) = alice_and_bob("in place: a refused payload is a lost message");
    let mut states = Vec::new();
    for i in 0..100 {
        let (bad, error) = refused_payload(&mut w, a, b, i);
        let text = format!("a{i}").into_bytes();
        let good = direct(&mut w, a, b, &text);
        if deliver_refused && i % 3 == 0 {
            assert_eq!(refused_any(&mut w, b, &bad), error, "step {i}");
        }
        reads(&mut w, b, &good, &text);
        if deliver_refused && i % 3 != 0 {
            assert_eq!(refused_any(&mut w, b, &bad), error, "step {i}");
            assert_eq!(refused_any(&mut w, b, &bad), error, "step {i}");
        }
        // Bob answers (twice every other step): Alice's next chain starts with a DH ratchet
        // step, whose first message is the refused one.
        for _ in 0..1 + i % 2 {
            let text = format!("b{i}").into_bytes();
            let reply = direct(&mut w, b, a, &text);
            reads(&mut w, a, &reply, &text);
        }
        if i % 7 == 6 {
            w.restart(b);
            w.restart(a);
        }
        states.push((
            w.device(a).to_bytes().to_vec(),
            w.device(b).to_bytes().to_vec(),
        ));
    }
    let epochs = (
        w.device(a).pq_ratchet_epoch(&b),
        w.device(b).pq_ratchet_epoch(&a),
    );
    (states, epochs)
}

/// Every kind of refused payload in a genuine envelope, read on the chain's next key, on a
/// skipped key, as the first message of a DH ratchet step, and twice: Bob's state after each
/// step is byte for byte the state of a Bob whose relay dropped those envelopes, the genuine
/// messages all read once, and the post-quantum ratchet moves on as it does without them.
#[test]
fn a_refused_payload_changes_what_a_dropped_envelope_changes() {
    let (delivered, epoch) = conversation(true);
    let (dropped, epoch_dropped) = conversation(false);
    assert_eq!(delivered.len(), dropped.len());
    for (i, (x, y)) in delivered.iter().zip(&dropped).enumerate() {
        assert!(x.0 == y.0, "Alice differs at step {i}");
        assert!(x.1 == y.1, "Bob differs at step {i}");
    }
    assert_eq!(epoch, epoch_dropped);
    assert!(epoch.1.is_some_and(|e| e >= 1), "{epoch:?}");
}

/// Alice's first message of every sending chain is dropped by the relay (or refused by Bob, as
/// above: the same thing), her second is delivered; Bob answers every turn. Every message that
/// is delivered reads, and the post-quantum ratchet goes on completing epochs. Before chunk
/// indexes shifted with each round of 64 (PROTOCOL.md 25.4), Bob only ever received the odd
/// indexes of Alice's vector, 32 of the 36 it needs, and 400 turns left the epochs at Alice 0 /
/// Bob 1 (a lossless run reaches 10 / 11).
#[test]
fn the_pq_ratchet_advances_when_the_relay_drops_each_chains_first_message() {
    let (mut w, a, b) = alice_and_bob("in place: pq stall");
    for _ in 0..400 {
        let reply = direct(&mut w, b, a, b"b");
        reads(&mut w, a, &reply, b"b");
        // The relay drops Alice's first message of her new chain.
        let _dropped = direct(&mut w, a, b, b"dropped");
        let good = direct(&mut w, a, b, b"a");
        reads(&mut w, b, &good, b"a");
    }
    let epochs = (
        w.device(a).pq_ratchet_epoch(&b),
        w.device(b).pq_ratchet_epoch(&a),
    );
    assert!(
        epochs.0.is_some_and(|e| e >= 4) && epochs.1.is_some_and(|e| e >= 4),
        "the ML-KEM ratchet stalled: epochs {epochs:?}"
    );
}

/// A pre-key message that would start Bob's session but carries a refused payload consumes no
/// prekey and starts nothing; the genuine pre-key message after it starts the session, and the
/// refused one, delivered again, is refused on the held session's skipped key, unchanged.
#[test]
fn a_refused_first_message_consumes_no_prekey_and_the_session_still_starts() {
    let mut w = World::new("in place: refused pre-key message");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a, b) = (World::addr(alice, 1), World::addr(bob, 1));
    let now = w.now;
    let bundle = w.devices[&b].bundle(None, None);
    let device = w.devices.get_mut(&a).unwrap();
    device
        .start_sessions(&mut w.rng, now, &[(b, bundle)])
        .unwrap();
    w.persist(a);
    let prekeys = |w: &mut World| {
        let d = w.device(b);
        (
            d.one_time_prekeys_remaining(),
            d.one_time_kem_prekeys_remaining(),
        )
    };
    let before = prekeys(&mut w);
    let bad = raw(&mut w, a, b, &[2, 0x0c, 0x7f]);
    assert_eq!(
        refused_any(&mut w, b, &bad),
        DecodeError::InvalidValue.into()
    );
    assert_eq!(prekeys(&mut w), before);
    assert!(!w.device(b).has_session(&a));
    let first = direct(&mut w, a, b, b"first");
    reads(&mut w, b, &first, b"first");
    assert!(w.device(b).has_session(&a));
    assert_eq!(
        refused_any(&mut w, b, &bad),
        DecodeError::InvalidValue.into()
    );
    let reply = direct(&mut w, b, a, b"reply");
    reads(&mut w, a, &reply, b"reply");
    assert_eq!(
        refused_any(&mut w, b, &bad),
        DecodeError::InvalidValue.into()
    );
    let next = direct(&mut w, a, b, b"next");
    reads(&mut w, b, &next, b"next");
}

/// A malformed payload (an unknown payload tag), refused with `DecodeError::InvalidValue`.
const MALFORMED: &[u8] = &[2, 0x0c, 0x7f, 1, 2, 3];

/// What Alice sealed on the session she started (SA) before she read Bob's first message:
/// pre-key messages the relay holds back until SA is archived at Bob.
struct Late {
    refused: Vec<u8>,
    genuine: Vec<u8>,
}

/// Alice and Bob start sessions with each other at once, each before hearing from the other,
/// and each reads the other's first message. Alice's current session is then the one Bob
/// started (SB) and Bob's the one Alice started (SA), both of the same strength (both run the
/// post-quantum ratchet); each holds the other's current one archived, and Bob's SB still
/// awaits its first reply. Also returns two pre-key messages Alice sealed on SA before the
/// race resolved.
fn raced(label: &str) -> (World, DeviceAddress, DeviceAddress, Late) {
    let mut w = World::new(label);
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a, b) = (World::addr(alice, 1), World::addr(bob, 1));
    let to_bob = direct(&mut w, a, b, b"a0");
    let refused = raw(&mut w, a, b, MALFORMED);
    let genuine = direct(&mut w, a, b, b"late");
    let to_alice = direct(&mut w, b, a, b"b0");
    reads(&mut w, b, &to_bob, b"a0");
    reads(&mut w, a, &to_alice, b"b0");
    assert!(w.device(a).pq_ratchet_epoch(&b).is_some());
    assert!(w.device(b).pq_ratchet_epoch(&a).is_some());
    (w, a, b, Late { refused, genuine })
}

/// Both devices' state bytes.
fn snapshot(w: &mut World, a: DeviceAddress, b: DeviceAddress) -> (Vec<u8>, Vec<u8>) {
    (
        w.device(a).to_bytes().to_vec(),
        w.device(b).to_bytes().to_vec(),
    )
}

/// The post-quantum ratchet epochs of the pair's current sessions, at `a` and at `b`.
fn epochs(w: &mut World, a: DeviceAddress, b: DeviceAddress) -> (u32, u32) {
    let x = w
        .device(a)
        .pq_ratchet_epoch(&b)
        .expect("a runs the ratchet");
    let y = w
        .device(b)
        .pq_ratchet_epoch(&a)
        .expect("b runs the ratchet");
    (x, y)
}

/// A restart of `d` loads what it held in memory, byte for byte (everything an in-place
/// change touched was persisted).
fn restart_same(w: &mut World, d: DeviceAddress) {
    let before = w.device(d).to_bytes().to_vec();
    w.restart(d);
    assert!(
        before == *w.device(d).to_bytes(),
        "{d:?} reloaded differs from what it held"
    );
}

/// `rounds` turns of conversation, one to three messages each way a turn, each read exactly
/// once (a second delivery is a duplicate that changes nothing), both devices restarting every
/// few turns; the post-quantum ratchet completes epochs at both ends.
fn talk(w: &mut World, a: DeviceAddress, b: DeviceAddress, rounds: usize) {
    let start = epochs(w, a, b);
    for i in 0..rounds {
        for k in 0..1 + i % 3 {
            let text = format!("a{i}.{k}").into_bytes();
            let m = direct(w, a, b, &text);
            reads(w, b, &m, &text);
        }
        for k in 0..1 + (i + 1) % 2 {
            let text = format!("b{i}.{k}").into_bytes();
            let m = direct(w, b, a, &text);
            reads(w, a, &m, &text);
        }
        if i % 9 == 4 {
            restart_same(w, a);
            restart_same(w, b);
        }
    }
    let end = epochs(w, a, b);
    assert!(
        end.0 > start.0 && end.1 > start.1,
        "the ML-KEM ratchet did not advance: {start:?} -> {end:?}"
    );
}

/// After a race: refused payloads on the session archived at Bob (SB, which Alice sends on,
/// while it awaits its first reply at Bob), then on SA once the genuine message on SB made SB
/// current and SA archived (pre-key messages Alice sealed before the race resolved, held back
/// by the relay). Returns both devices' state after every step.
fn archived_refusals(deliver_refused: bool) -> Vec<(Vec<u8>, Vec<u8>)> {
    let (mut w, a, b, late) = raced("in place: refusals on an archived session");
    let mut states = Vec::new();
    // Sealed on Alice's current session, SB: archived at Bob.
    let bad = raw(&mut w, a, b, MALFORMED);
    let unasked = raw(&mut w, a, b, &group_resend_payload([7; 16], ROOM, b"x"));
    let good = direct(&mut w, a, b, b"on SB");
    if deliver_refused {
        let before = snapshot(&mut w, a, b);
        for _ in 0..2 {
            refused_malformed_and_unasked(&mut w, b, &bad, &unasked);
            // A relay that tampers with the genuine message: it opens under no session.
            refused_any(&mut w, b, &support::tampered(&good));
        }
        assert!(before == snapshot(&mut w, a, b));
        // Nothing to persist: a restart loads the same Bob (SA still current).
        restart_same(&mut w, b);
    }
    states.push(snapshot(&mut w, a, b));
    reads(&mut w, b, &good, b"on SB");
    if deliver_refused {
        // Now on SB's skipped keys, SB current.
        refused_malformed_and_unasked(&mut w, b, &bad, &unasked);
    }
    states.push(snapshot(&mut w, a, b));
    // SA is archived at Bob now: Alice's held-back pre-key messages on it.
    if deliver_refused {
        assert_eq!(
            refused_any(&mut w, b, &late.refused),
            DecodeError::InvalidValue.into()
        );
    }
    states.push(snapshot(&mut w, a, b));
    reads(&mut w, b, &late.genuine, b"late");
    if deliver_refused {
        assert_eq!(
            refused_any(&mut w, b, &late.refused),
            DecodeError::InvalidValue.into()
        );
    }
    states.push(snapshot(&mut w, a, b));
    talk(&mut w, a, b, 40);
    states.push(snapshot(&mut w, a, b));
    states
}

/// Two sessions between a pair after a race; a refused payload (malformed, an unasked resend,
/// a tampered copy), each delivered twice on the session archived at the receiver, leaves the
/// receiver byte for byte as it was, with nothing to persist, and the archived session
/// archived: the state after every step equals the state of a run whose relay dropped those
/// envelopes. The genuine message on the archived session then reads (and makes it current,
/// as in the run without refusals); so do the pre-key messages held back on the other session,
/// now archived; and the pair talks on (restarts included), every message read once, the
/// post-quantum ratchet completing epochs.
#[test]
fn a_refused_payload_on_an_archived_session_leaves_it_archived() {
    let delivered = archived_refusals(true);
    let dropped = archived_refusals(false);
    assert_eq!(delivered.len(), dropped.len());
    for (i, (x, y)) in delivered.iter().zip(&dropped).enumerate() {
        assert!(x.0 == y.0, "Alice differs at step {i}");
        assert!(x.1 == y.1, "Bob differs at step {i}");
    }
    // Each genuine message changed Bob.
    for i in 0..3 {
        if i != 1 {
            assert!(dropped[i].1 != dropped[i + 1].1, "step {i}");
        }
    }
}

/// After a race, Alice's group message reaches Bob without its sender key (the relay dropped
/// the distribution, the only message on SB, so SB stays archived at Bob, awaiting its reply).
/// Bob asks again; Alice answers on her current session, SB. An unasked resend on SB is
/// refused and changes nothing; the answer, delivered before the redistribution that precedes
/// it, opens on the archived SB, reads, and settles Bob on SB; delivered again (also after a
/// restart), it is a duplicate that changes nothing, and so is the original group message it
/// replaced; the unasked resend stays refused. Then the pair talks on.
#[test]
fn a_retry_answer_on_an_archived_session_reads_once() {
    use ratchetry::fanout::{Received, RetryReason};
    let (mut w, a, b, _) = raced("in place: a retry's answer on an archived session");
    w.set_members(ROOM, &[a.account, b.account]);
    let out = w.send_group(a, ROOM, b"early");
    let (group, _) = out.group.clone().unwrap();
    // The relay drops the distribution (sealed on SB).
    let err = refused_any(&mut w, b, &group);
    assert!(
        matches!(err, Error::Fanout(FanoutError::SenderKeyMissing { .. })),
        "{err:?}"
    );
    let (to, request) = w
        .request_retry(b, &group, RetryReason::SenderKeyMissing)
        .unwrap();
    assert_eq!(to, a);
    let Ok(Received::RetryRequest(req)) = w.receive(a, &request) else {
        panic!("a retry request")
    };
    let unasked = raw(
        &mut w,
        a,
        b,
        &group_resend_payload([7; 16], ROOM, b"unasked"),
    );
    let answer = w
        .run(a, |d, rng, now| d.answer_retry(rng, now, &req, b"early"))
        .unwrap();
    assert_eq!(
        answer.envelopes.len(),
        2,
        "the sender key again, then the resend"
    );
    let (dist, resend) = (answer.envelopes[0].1.clone(), answer.envelopes[1].1.clone());
    refused_before_the_answer(&mut w, b, &resend, &unasked);
    // The answer, on SB, archived at Bob.
    match w.receive(b, &resend) {
        Ok(Received::Group {
            group: g,
            body,
            resent: Some(_),
            ..
        }) => {
            assert_eq!(g, ROOM);
            assert_eq!(body, b"early");
        }
        other => panic!("{other:?}"),
    }
    answered_once(&mut w, b, &resend, &group, &unasked);
    // The redistribution, late, on SB's skipped key.
    assert!(matches!(
        w.receive(b, &dist),
        Ok(Received::SenderKey { group: ROOM, .. })
    ));
    let later = w.send_group(a, ROOM, b"later");
    let (later, _) = later.group.clone().unwrap();
    match w.receive(b, &later) {
        Ok(Received::Group { body, .. }) => assert_eq!(body, b"later"),
        other => panic!("{other:?}"),
    }
    talk(&mut w, a, b, 40);
}

/// An answer sealed in a new session (a failed authentication), arriving after that session
/// was archived at the requester: Bob reads Alice's next message on the new session first
/// (it becomes current), then a message Alice had sent on their old session before (it
/// becomes current again), and only then the answer, a pre-key message on the archived
/// session. It reads, settles Bob on the answer's session, and delivered again it is a
/// duplicate that changes nothing; so is the genuine copy of the failed message. A resend for
/// a retry never asked, on the same archived session, is refused and changes nothing.
#[test]
fn a_new_session_answer_on_an_archived_session_reads_once() {
    use ratchetry::fanout::Received;
    let (mut w, a, b, _) = raced("in place: a new session's answer, archived");
    // Settle on SB first.
    let m = direct(&mut w, a, b, b"on SB");
    reads(&mut w, b, &m, b"on SB");
    let lost = direct(&mut w, a, b, b"lost");
    let old = direct(&mut w, a, b, b"old session");
    let failed = support::tampered(&lost);
    refused_any(&mut w, b, &failed);
    let answer = w.ask_again(b, a, &failed, b"lost");
    let answer = World::envelope_to(&answer, b);
    // Alice is on the answer's session now: her next message is a pre-key message on it.
    let unasked = raw(&mut w, a, b, &group_resend_payload([9; 16], ROOM, b"x"));
    let next = direct(&mut w, a, b, b"next");
    reads(&mut w, b, &next, b"next");
    reads(&mut w, b, &old, b"old session");
    // The answer's session is archived at Bob now.
    refused_before_the_answer(&mut w, b, &answer, &unasked);
    match w.receive(b, &answer) {
        Ok(Received::Direct {
            body,
            resent: Some(_),
            ..
        }) => assert_eq!(body, b"lost"),
        other => panic!("{other:?}"),
    }
    answered_once(&mut w, b, &answer, &lost, &unasked);
    talk(&mut w, a, b, 40);
}
