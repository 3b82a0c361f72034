//! Review 45: stop 44's changes, attacked by the relay (drop, hold back, reorder, replay,
//! re-wrap, forge, serve stale bundles), often with one account it controls (Mallory).
//!
//! Attacked: the driver's new `AskAgain` for `X3dh(UnknownSignedPreKey | UnknownKemPreKey |
//! Replayed)` pre-key messages (double reads, unbounded asks and minted keys, honest pending
//! retries pushed out, what an honest sender answers); `Journal::replace`'s new count (which
//! honest replaced ids go, and when); the group entry's answered bound (reasoned, see the
//! report); `tests/restore_life.rs` as a test (reasoned, see the report).
//!
//! Pinned (passing):
//! - a pre-key message on a retired signed prekey, redelivered by the relay before any answer,
//!   is asked for at most `MAX_RETRY_ATTEMPTS` times by the driver (then `Dropped`), the
//!   sender answers every request, and exactly one answer is read; the genuine copy and every
//!   answer are not read again, across a restart
//!   (`a_stale_bundle_message_redelivered_before_its_answer_is_read_once`);
//! - Mallory's 600 pre-key messages on a stale bundle of Alice's (one ask each, each minting
//!   keys) neither push out honest Bob's pending retry (his answer is read) nor grow Alice's
//!   records between 300 and 600, and leave her uploaded one-time prekey counts unchanged
//!   (`a_contacts_stale_bundle_messages_neither_push_out_an_honest_retry_nor_grow_the_records`);
//! - a device restored from a backup reads, by one ask, a message sealed on the signed
//!   prekey its lost state rotated to (a bundle the relay still serves), once; both ways read
//!   afterwards (`a_message_on_the_lost_states_signed_prekey_is_read_by_one_ask_after_a_restore`);
//! - answers replayed after their sessions were pushed out are never read again; where the
//!   driver asks for one, the sender refuses unchanged (`a_replayed_answer_is_not_read_again`);
//! - three signed-prekey rotations between an ask and its answer make the answer
//!   `UnknownSignedPreKey`; the driver's ask for the answer is refused unchanged, and the app's
//!   re-ask of the kept envelope reads the message once
//!   (`rotations_between_an_ask_and_its_answer_cost_one_re_ask_of_the_kept_envelope`);
//! - an unlinked companion's state, kept by the attacker, asks for a message it received
//!   before the unlink: the sender refuses, unchanged
//!   (`an_unlinked_companions_ask_is_refused_by_the_sender_unchanged`);
//! - a companion linked after a group message, handed that old envelope, is refused the
//!   message by the sender, unchanged (`NotEntitled`), and reads the next one
//!   (`a_companion_linked_after_a_group_message_is_not_answered_it`).
//!
//! Findings (each failed on the reviewed commit). 1 is fixed at stop 44: a pre-key message
//! from one device naming keys minted for a retry asked of another is refused as a key not
//! held (PROTOCOL.md 18.6; `a_request_bundles_keys_open_a_session_only_from_the_device_asked`
//! pins each key apart). 3 and 4 are fixed at stop 48: the driver looks in the app's store
//! under either kind's id (`EnvelopeId::of_either_kind`), also when asking for a held
//! envelope (`driver::ask_again`, the guide's way from `Hold`). 2 is fixed at stop 49: a
//! retry waiting for its answer is never dropped for room, one account holds at most a
//! quarter of the places, and asks beyond are deferred (`AskLater`). 5 stays a known limit
//! (SECURITY.md), its test ignored:
//! 1. `keys_minted_for_a_retry_answer_serve_only_the_device_asked` (medium: loss with every
//!    envelope delivered): a retry request carries its minted one-time prekey and ML-KEM
//!    prekey in the clear; the relay serves them as Alice's bundle to its contact, whose
//!    pre-key message Alice accepts, consuming them; the honest sender's answer then fails
//!    (`UnknownOneTimePreKey`/`UnknownKemPreKey`, asked for in vain). Repeated at each re-ask,
//!    the message hits `RetryLimit` and is lost.
//! 2. `forged_copies_under_an_honest_senders_address_do_not_push_out_its_pending_retry`
//!    (medium, same outcome, no account needed): 256 forged copies of a held-back envelope of
//!    Bob's, each with a fresh salt, fail and are asked for as Bob's; `make_room` drops Bob's
//!    oldest pending retry (the genuine one: his account holds the most) and releases the keys
//!    his answer is sealed to. Three floods, one per re-ask, and Bob's answers are used up.
//! 3. `a_group_message_rewrapped_as_pairwise_after_the_ring_turned_is_not_read_again` (low:
//!    double read for an app keyed by envelope ids): the driver checks `stored` only under the
//!    failed envelope's own kind; a group message read long ago, its salt re-wrapped in a
//!    pairwise envelope, is asked for, answered, and read again (`resent` names the pairwise
//!    id, which the app never stored).
//! 4. `a_direct_message_rewrapped_as_a_held_group_message_is_not_read_again` (low, same root):
//!    a 1:1 message read long ago, its salt re-wrapped in a group envelope whose key the relay
//!    withholds: `Hold`, the guide's `SenderKeyMissing` ask (no store check advised there), and
//!    the answer is read again.
//! 5. `a_single_resend_from_a_new_account_does_not_evict_an_honest_accounts_only_replaced_id`
//!    (low; the bound is inherent, SECURITY.md over-claims): with the replaced ids full of one
//!    entry per account, the next resend from an account holding none (Mallory's first, or
//!    any honest one the relay breaks) evicts the *lowest* account's only entry; that
//!    account's held-back genuine envelope then opens and is read twice. SECURITY.md says the
//!    hole "needs more later resends from that message's own account than from any other": it
//!    needs none from it.

mod support;

use ratchetry::devices::{AccountKey, DeviceAddress};
use ratchetry::driver::{Inbound, ReceiveStep, Receiving};
use ratchetry::fanout::{
    Device, EnvelopeId, MAX_WAITING_RETRIES_PER_ACCOUNT, Received, RetryReason,
};
use ratchetry::{Error, FanoutError, X3dhError};
use support::{GROUP_SALT, World, body, tampered};

/// `to` receives `envelope` through the driver's stepper with an app store holding `stored`.
fn step_with(w: &mut World, to: DeviceAddress, envelope: &[u8], stored: &[EnvelopeId]) -> Inbound {
    let now = w.now;
    let mut device = w.devices.remove(&to).unwrap();
    let got = match Receiving::new().step(&mut device, &mut w.rng, now, envelope, |id| {
        stored.contains(id)
    }) {
        Ok(ReceiveStep::Done(inbound)) => inbound,
        other => panic!("{other:?}"),
    };
    w.devices.insert(to, device);
    w.persist(to);
    got
}

/// Alice's bundle is taken, then she rotates her signed prekey three times (the retired one
/// is gone); `sender` starts a session from the stale bundle (the relay served it).
fn stale_bundle(w: &mut World, a1: DeviceAddress, senders: &[DeviceAddress]) {
    let stale = w.device(a1).bundle(None, None);
    for _ in 0..3 {
        let (now, mut rng) = (w.now, w.rng.clone());
        w.device(a1).rotate_signed_prekey(&mut rng, now);
        w.rng = rng;
        w.persist(a1);
    }
    for s in senders {
        let (now, mut rng) = (w.now, w.rng.clone());
        w.device(*s)
            .start_sessions(&mut rng, now, &[(a1, stale.clone())])
            .unwrap();
        w.rng = rng;
        w.persist(*s);
    }
}

/// The relay delivers Bob's stale-bundle message four times before any answer. The driver
/// asks three times, then drops it (`RetryLimit`). Bob answers each request; Alice reads
/// exactly one answer. The genuine copy and every answer redelivered are not read again,
/// before or after a restart.
#[test]
fn a_stale_bundle_message_redelivered_before_its_answer_is_read_once() {
    let (mut w, [alice, _bob], [a1, b1]) = World::phones::<2>("r45 redelivered");
    stale_bundle(&mut w, a1, &[b1]);
    let m = World::envelope_to(&w.send(b1, alice, b"stale"), a1);
    let mut requests = Vec::new();
    for _ in 0..3 {
        match step_with(&mut w, a1, &m, &[]) {
            Inbound::AskAgain { to, request } => {
                assert_eq!(to, b1);
                requests.push(request);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        step_with(&mut w, a1, &m, &[]),
        Inbound::Dropped(FanoutError::RetryLimit.into())
    );
    let mut answers = Vec::new();
    for r in &requests {
        let Ok(Received::RetryRequest(req)) = w.receive(b1, r) else {
            panic!("Bob takes each request")
        };
        answers.push(World::envelope_to(&w.answer(b1, &req, b"stale"), a1));
    }
    let mut read = 0;
    // In reverse: the last request's answer first.
    for a in answers.iter().rev() {
        if let Inbound::Read(r) = step_with(&mut w, a1, a, &[]) {
            assert_eq!(body(&r), Some(&b"stale"[..]));
            read += 1;
        }
    }
    assert_eq!(read, 1, "one message, read once");
    for round in 0..2 {
        assert!(matches!(
            step_with(&mut w, a1, &m, &[]),
            Inbound::Duplicate(_)
        ));
        for a in &answers {
            assert!(
                !matches!(step_with(&mut w, a1, a, &[]), Inbound::Read(_)),
                "an answer read again (round {round})"
            );
        }
        w.restart(a1);
    }
    let later = w.send(b1, alice, b"later");
    assert!(w.reads(&later, b"later"));
}

/// Bob's message is broken by the relay and Alice asks for it (the answer held back). Mallory
/// (the relay's contact) writes 600 pre-key messages on a stale bundle of Alice's; the driver
/// asks for the first `MAX_WAITING_RETRIES_PER_ACCOUNT` (minting a one-time prekey and a
/// one-time ML-KEM prekey each time) and defers the rest (`AskLater`, since stop 49: they
/// would take more than Mallory's share of the places). Bob's pending retry survives: his
/// answer is read. Alice's records grow no further between 300 and 600 such messages, and
/// her counts of uploaded one-time prekeys do not move.
#[test]
fn a_contacts_stale_bundle_messages_neither_push_out_an_honest_retry_nor_grow_the_records() {
    let (mut w, [alice, _bob, _mallory], [a1, b1, m1]) = World::phones::<3>("r45 mallory asks");
    let (now, mut rng) = (w.now, w.rng.clone());
    w.device(a1).generate_one_time_prekeys(&mut rng, now, 20);
    w.rng = rng;
    w.persist(a1);
    let counts = |w: &mut World| {
        let d = w.device(a1);
        (
            d.one_time_prekeys_remaining(),
            d.one_time_kem_prekeys_remaining(),
        )
    };
    // The stale bundle first: rotations after Alice's ask would retire the signed prekey her
    // request's bundle names (see the report: the answer is then `UnknownSignedPreKey`).
    stale_bundle(&mut w, a1, &[m1]);
    let before = counts(&mut w);
    let o = w.send(b1, alice, b"honest");
    let broken = tampered(&World::envelope_to(&o, a1));
    let Inbound::AskAgain { to, request } = step_with(&mut w, a1, &broken, &[]) else {
        panic!("Alice asks for Bob's broken message")
    };
    assert_eq!(to, b1);
    let mut sizes = Vec::new();
    for i in 0..600 {
        let e = World::envelope_to(&w.send(m1, alice, format!("m {i}").as_bytes()), a1);
        match step_with(&mut w, a1, &e, &[]) {
            Inbound::AskAgain { to, .. } if i < MAX_WAITING_RETRIES_PER_ACCOUNT => {
                assert_eq!(to, m1)
            }
            Inbound::AskLater { at } if i >= MAX_WAITING_RETRIES_PER_ACCOUNT => {
                assert!(at > w.now, "{at:?}")
            }
            other => panic!("{i}: {other:?}"),
        }
        if i == 299 || i == 599 {
            sizes.push(w.stores[&a1].0.len());
        }
    }
    assert_eq!(
        sizes[0], sizes[1],
        "Alice's records grow with Mallory's asks"
    );
    assert_eq!(counts(&mut w), before, "the uploaded pools' counts moved");
    w.restart(a1);
    let Ok(Received::RetryRequest(req)) = w.receive(b1, &request) else {
        panic!("Bob takes the request")
    };
    let answer = World::envelope_to(&w.answer(b1, &req, b"honest"), a1);
    match step_with(&mut w, a1, &answer, &[]) {
        Inbound::Read(r) => assert_eq!(body(&r), Some(&b"honest"[..])),
        other => panic!("Bob's answer is not read: {other:?}"),
    }
    assert!(matches!(
        step_with(&mut w, a1, &World::envelope_to(&o, a1), &[]),
        Inbound::Duplicate(_)
    ));
}

/// Alice is backed up; her lost state rotates its signed prekey and the relay serves Bob a
/// bundle with it; Alice is restored from the backup (her list renewed). Bob's message on the
/// lost state's signed prekey is `UnknownSignedPreKey` at the restored device; the driver
/// asks (it dropped it before stop 44), Bob answers, Alice reads it once, and Bob's later
/// messages read.
#[test]
fn a_message_on_the_lost_states_signed_prekey_is_read_by_one_ask_after_a_restore() {
    let (mut w, [alice, _bob], [a1, b1]) = World::phones::<2>("r45 lost spk");
    let backup = w.device(a1).to_bytes().to_vec();
    let (now, mut rng) = (w.now, w.rng.clone());
    w.device(a1).rotate_signed_prekey(&mut rng, now);
    let lost_bundle = w.device(a1).bundle(None, None);
    w.device(b1)
        .start_sessions(&mut rng, now, &[(a1, lost_bundle)])
        .unwrap();
    w.rng = rng;
    w.persist(b1);
    w.now = ratchetry::Timestamp(w.now.0 + 1000);
    let now = w.now;
    *w.device(a1) = Device::restore_from_backup(&backup, now).unwrap();
    w.persist(a1);
    w.primary(&alice).renew(now).unwrap();
    w.publish(&alice);
    let m = World::envelope_to(&w.send(b1, alice, b"on the lost spk"), a1);
    assert!(matches!(
        w.device(a1).clone().receive(now, &m),
        Err(Error::X3dh(X3dhError::UnknownSignedPreKey(_)))
    ));
    let Inbound::AskAgain { to, request } = step_with(&mut w, a1, &m, &[]) else {
        panic!("the restored device does not ask")
    };
    assert_eq!(to, b1);
    let Ok(Received::RetryRequest(req)) = w.receive(b1, &request) else {
        panic!("Bob takes the request")
    };
    let answer = World::envelope_to(&w.answer(b1, &req, b"on the lost spk"), a1);
    let Inbound::Read(r) = step_with(&mut w, a1, &answer, &[]) else {
        panic!("the answer is not read")
    };
    assert_eq!(body(&r), Some(&b"on the lost spk"[..]));
    assert!(matches!(
        step_with(&mut w, a1, &m, &[]),
        Inbound::Duplicate(_)
    ));
    let later = w.send(b1, alice, b"later");
    assert!(w.reads(&later, b"later"));
    let back = w.send(a1, _bob, b"back");
    assert!(w.reads(&back, b"back"));
}

/// An answer (a pre-key message on the request's minted keys) replayed by the relay, after
/// three more answers pushed its session out of the three Alice keeps for Bob: never read
/// again; if the driver asks for it, Bob refuses the request (`UnknownMessage`: answers are
/// not journaled), so nothing is shown twice.
#[test]
fn a_replayed_answer_is_not_read_again() {
    let (mut w, [alice, _bob], [a1, b1]) = World::phones::<2>("r45 replayed answer");
    let o = w.send(b1, alice, b"first");
    w.deliver_ok(&o);
    let mut answers = Vec::new();
    for n in 0..4 {
        let body_n = format!("broken {n}");
        let o = w.send(b1, alice, body_n.as_bytes());
        let broken = tampered(&World::envelope_to(&o, a1));
        assert!(w.receive(a1, &broken).is_err());
        let a = w.ask_again(a1, b1, &broken, body_n.as_bytes());
        let e = World::envelope_to(&a, a1);
        assert_eq!(body(&w.receive(a1, &e).unwrap()), Some(body_n.as_bytes()));
        answers.push(e);
    }
    for e in &answers {
        match step_with(&mut w, a1, e, &[]) {
            Inbound::Read(r) => panic!("an answer read twice: {:?}", body(&r)),
            Inbound::AskAgain { to, request } => {
                assert_eq!(to, b1);
                w.refused(b1, &request, FanoutError::UnknownMessage.into());
            }
            _ => {}
        }
    }
    let later = w.send(b1, alice, b"later");
    assert!(w.reads(&later, b"later"));
}

/// The relay breaks one message from each of 2000 honest accounts (members of a large group,
/// say) and holds back the genuine envelope of the lowest account, Bob's; each is read
/// through a resend. Then Mallory, a new contact, gets one message read through a resend:
/// her account holds no other entry, so the room is made from the account "holding the
/// most", all tied at one, the lowest: Bob's only entry goes. The relay delivers Bob's
/// genuine envelope: it opens (its key was never used) and is read a second time. SECURITY.md
/// says this needs more later resends from Bob's account than from any other; it needs none.
#[test]
#[ignore = "KNOWN LIMIT (SECURITY.md): a fresh account's one resend evicts the lowest account's only replaced id when all hold one; its held-back genuine envelope is read twice"]
fn a_single_resend_from_a_new_account_does_not_evict_an_honest_accounts_only_replaced_id() {
    let mut w = World::new("r45 replaced tie");
    let alice = w.account(0);
    let a1 = World::addr(alice, 1);
    let n = ratchetry::fanout::MAX_REPLACED_MESSAGE_IDS;
    let mut honest: Vec<Device> = (0..n).map(|_| w.off_world_sender(a1)).collect();
    honest.sort_by_key(|s| s.address().account);
    let mut mallory = w.off_world_sender(a1);
    let bob_account: AccountKey = honest[0].address().account;
    let held = w.read_through_a_resend(a1, &mut honest[0]);
    for s in honest.iter_mut().skip(1) {
        w.read_through_a_resend(a1, s);
    }
    w.persist(a1);
    let now = w.now;
    assert!(
        matches!(
            w.device(a1).clone().receive(now, &held),
            Err(Error::Fanout(FanoutError::Duplicate { .. }))
        ),
        "Bob's genuine envelope is a duplicate while the ids are full"
    );
    w.read_through_a_resend(a1, &mut mallory);
    w.persist(a1);
    let got = w.device(a1).receive(now, &held);
    assert!(
        matches!(got, Err(Error::Fanout(FanoutError::Duplicate { .. }))),
        "Bob ({bob_account:?}) had one replaced id and no later resend; after Mallory's one \
         resend his genuine envelope is {:?}",
        got.map(|r| body(&r).map(<[u8]>::to_vec))
    );
}

/// Alice asks for Bob's broken message; before Bob's answer arrives her app rotates her signed
/// prekey three times (the relay held the request or the answer back), so the answer, sealed
/// on the request's bundle, is `UnknownSignedPreKey`. The driver asks for the answer's own
/// envelope, which Bob refuses unchanged (`UnknownMessage`: answers are not journaled); the
/// app's re-ask of the envelope it kept (the guide's "Asking again") reads the message, once.
#[test]
fn rotations_between_an_ask_and_its_answer_cost_one_re_ask_of_the_kept_envelope() {
    let (mut w, [alice, _bob], [a1, b1]) = World::phones::<2>("r45 rotations");
    let o = w.send(b1, alice, b"asked");
    let broken = tampered(&World::envelope_to(&o, a1));
    let Inbound::AskAgain { request, .. } = step_with(&mut w, a1, &broken, &[]) else {
        panic!("Alice asks")
    };
    for _ in 0..3 {
        let (now, mut rng) = (w.now, w.rng.clone());
        w.device(a1).rotate_signed_prekey(&mut rng, now);
        w.rng = rng;
        w.persist(a1);
    }
    let Ok(Received::RetryRequest(req)) = w.receive(b1, &request) else {
        panic!("Bob takes the request")
    };
    let answer = World::envelope_to(&w.answer(b1, &req, b"asked"), a1);
    let now = w.now;
    assert!(matches!(
        w.device(a1).clone().receive(now, &answer),
        Err(Error::X3dh(X3dhError::UnknownSignedPreKey(_)))
    ));
    match step_with(&mut w, a1, &answer, &[]) {
        Inbound::AskAgain { to, request } => {
            assert_eq!(to, b1);
            w.refused(b1, &request, FanoutError::UnknownMessage.into());
        }
        other => panic!("{other:?}"),
    }
    let (to, again) = w
        .request_retry(a1, &broken, RetryReason::NoSession)
        .unwrap();
    assert_eq!(to, b1);
    let Ok(Received::RetryRequest(req)) = w.receive(b1, &again) else {
        panic!("Bob takes the second request")
    };
    let answer2 = World::envelope_to(&w.answer(b1, &req, b"asked"), a1);
    let Inbound::Read(r) = step_with(&mut w, a1, &answer2, &[]) else {
        panic!("the second answer is not read")
    };
    assert_eq!(body(&r), Some(&b"asked"[..]));
    assert!(matches!(
        step_with(&mut w, a1, &World::envelope_to(&o, a1), &[]),
        Inbound::Duplicate(_)
    ));
    assert!(!matches!(
        step_with(&mut w, a1, &answer, &[]),
        Inbound::Read(_)
    ));
}

/// Alice's companion is unlinked; the relay kept its pre-unlink state's copy of Bob's earlier
/// message and a copy of the device (the attacker holds it). Whatever makes it ask (here a
/// broken copy), its request is refused by Bob with Bob unchanged: an unlinked device is not
/// entitled to a message it was a recipient of.
#[test]
fn an_unlinked_companions_ask_is_refused_by_the_sender_unchanged() {
    let mut w = World::new("r45 unlinked");
    let alice = w.account(1);
    let bob = w.account(0);
    w.publish_all();
    let (a1, a2, b1) = (
        World::addr(alice, 1),
        World::addr(alice, 2),
        World::addr(bob, 1),
    );
    let o = w.send(b1, alice, b"before the unlink");
    let to_a2 = World::envelope_to(&o, a2);
    let mut stolen = Device::from_bytes(&w.device(a2).to_bytes()).unwrap();
    let now = w.now;
    w.primary(&alice).unlink(now, a2.device).unwrap();
    w.devices.remove(&a2);
    w.publish(&alice);
    let _ = a1;
    let (to, request) = stolen
        .request_retry(&mut w.rng, now, &tampered(&to_a2), RetryReason::NoSession)
        .unwrap();
    assert_eq!(to, b1);
    let before = w.device(b1).to_bytes();
    assert!(w.device(b1).receive(now, &request).is_err());
    assert_eq!(*before, *w.device(b1).to_bytes());
    assert!(!w.device(b1).has_changes());
}

/// Alice reads Bob's group message; her app stores it under its envelope id, as the guide
/// says. Mallory turns Alice's read ring. The relay re-wraps the group message's salt into a
/// fresh pairwise envelope of Bob's (review 43b's re-wrap). Before stop 48 the driver checked
/// the app's store only under the forged envelope's own kind's id (pairwise), asked, Bob
/// found the group message by its salt and answered, and Alice read the group message a
/// second time. Now the driver looks under either kind's id and drops the re-wrap unasked.
#[test]
fn a_group_message_rewrapped_as_pairwise_after_the_ring_turned_is_not_read_again() {
    let (mut w, [alice, bob, mallory], [a1, b1, m1]) = World::phones::<3>("r45 rewrap ring");
    let group = ratchetry::group::GroupId([45; 32]);
    w.set_members(group, &[alice, bob, mallory]);
    let g = w.send_group(b1, group, b"group");
    w.deliver_ok(&g);
    let g = World::group_envelope_for(&g, a1);
    let stored = [EnvelopeId::of(&g)];
    for i in 0..ratchetry::fanout::MAX_REMEMBERED_MESSAGE_IDS {
        let o = w.send(m1, alice, format!("flood {i}").as_bytes());
        w.deliver_ok(&o);
    }
    let group_salt: [u8; 16] = g[GROUP_SALT].try_into().unwrap();
    let pairwise = World::envelope_to(&w.send(b1, alice, b"carrier"), a1);
    let salt = w.pairwise_salt(a1, &pairwise);
    let at = pairwise.windows(16).position(|s| s == salt).unwrap();
    let mut forged = pairwise.clone();
    forged[at..at + 16].copy_from_slice(&group_salt);
    let mut shown_again = Vec::new();
    let got = step_with(&mut w, a1, &forged, &stored);
    assert_eq!(got, Inbound::Duplicate(stored[0]), "not asked for");
    if let Inbound::AskAgain { to, request } = got {
        assert_eq!(to, b1);
        if let Ok(Received::RetryRequest(req)) = w.receive(b1, &request) {
            let a = w.answer(b1, &req, b"group");
            for (to, e) in a.envelopes.iter().filter(|(to, _)| *to == a1) {
                if let Inbound::Read(r) = step_with(&mut w, *to, e, &stored) {
                    shown_again.push(r);
                }
            }
        }
    }
    assert!(
        shown_again.iter().all(|r| body(r) != Some(&b"group"[..])),
        "the group message is shown again: {shown_again:?}"
    );
}

/// The same through the guide's `Hold` path: Bob's 1:1 message read long ago (the ring
/// turned: a busy account's own traffic does it within the retry window); the relay withholds
/// the key of a new group message of Bob's and re-wraps that group envelope with the 1:1
/// message's salt. Alice's driver says `Hold`; the key never comes, so the app asks
/// (`SenderKeyMissing`). Before stop 48 the guide said `request_retry`, with no store check:
/// Bob found the 1:1 message by its salt, Alice was its recipient, and his answer was read,
/// the 1:1 message shown twice. Now the guide says `driver::ask_again`, which finds the
/// message stored under the other kind's id: `Duplicate`, nothing asked.
#[test]
fn a_direct_message_rewrapped_as_a_held_group_message_is_not_read_again() {
    let (mut w, [alice, bob, mallory], [a1, b1, m1]) = World::phones::<3>("r45 rewrap hold");
    let sent = w.send(b1, alice, b"direct");
    let p = World::envelope_to(&sent, a1);
    let p_salt = w.pairwise_salt(a1, &p);
    w.deliver_ok(&sent);
    let stored = [EnvelopeId::of(&p)];
    for i in 0..ratchetry::fanout::MAX_REMEMBERED_MESSAGE_IDS {
        let o = w.send(m1, alice, format!("flood {i}").as_bytes());
        w.deliver_ok(&o);
    }
    let _ = mallory;
    let group = ratchetry::group::GroupId([46; 32]);
    w.set_members(group, &[alice, bob]);
    let g = w.send_group(b1, group, b"group");
    // The relay withholds the key (the pairwise envelopes) and re-wraps the group envelope.
    let mut forged = World::group_envelope_for(&g, a1);
    forged[GROUP_SALT].copy_from_slice(&p_salt);
    assert_eq!(
        step_with(&mut w, a1, &forged, &stored),
        Inbound::Hold { from: b1 }
    );
    let mut shown_again = Vec::new();
    let (now, mut device) = (w.now, w.devices.remove(&a1).unwrap());
    let asked = ratchetry::driver::ask_again(
        &mut device,
        &mut w.rng,
        now,
        &forged,
        RetryReason::SenderKeyMissing,
        |id| stored.contains(id),
    );
    w.devices.insert(a1, device);
    w.persist(a1);
    assert_eq!(asked, Inbound::Duplicate(stored[0]), "not asked for");
    if let Inbound::AskAgain { to, request } = asked {
        assert_eq!(to, b1);
        if let Ok(Received::RetryRequest(req)) = w.receive(b1, &request)
            && let Ok(a) = w.run(b1, |d, rng, now| d.answer_retry(rng, now, &req, b"direct"))
        {
            for (to, e) in a.envelopes.iter().filter(|(to, _)| *to == a1) {
                if let Inbound::Read(r) = step_with(&mut w, *to, e, &stored) {
                    shown_again.push(r);
                }
            }
        }
    }
    assert!(
        shown_again.iter().all(|r| body(r) != Some(&b"direct"[..])),
        "the 1:1 message is shown again: {shown_again:?}"
    );
}

/// The bundle a retry request carries (in the clear, for the sender): the relay reads it.
fn request_bundle(request: &[u8]) -> ratchetry::x3dh::PreKeyBundle {
    ratchetry::x3dh::PreKeyBundle::from_bytes(&request[3 + 72 + 16 + 2 + 4..request.len() - 64])
        .expect("the request's bundle")
}

/// The relay breaks Bob's message; Alice asks Bob. The request carries, in the clear, the
/// one-time prekey and one-time ML-KEM prekey Alice minted for Bob's answer; the relay serves
/// them to Mallory as Alice's bundle, and Mallory's first message (read by Alice) consumes
/// them. Bob's genuine answer then names keys Alice no longer holds: the driver asks Bob for
/// the answer's envelope (`UnknownMessage` at Bob); the app asks again for the envelope it
/// kept, the relay does the same with Mallory, and after three asks (Alice's and Bob's limit)
/// the message is lost, though the relay delivered every envelope. Nothing binds the minted
/// keys to the device asked.
#[test]
fn keys_minted_for_a_retry_answer_serve_only_the_device_asked() {
    let (mut w, [alice, _bob, _mallory], [a1, b1, m1]) = World::phones::<3>("r45 minted");
    let o = w.send(b1, alice, b"honest");
    let broken = tampered(&World::envelope_to(&o, a1));
    let Inbound::AskAgain { mut request, .. } = step_with(&mut w, a1, &broken, &[]) else {
        panic!("Alice asks")
    };
    let mut read = false;
    let mut log = Vec::new();
    for attempt in 0..3 {
        // The relay serves the request's bundle to Mallory; her message consumes its keys.
        let bundle = request_bundle(&request);
        let (now, mut rng) = (w.now, w.rng.clone());
        w.device(m1)
            .start_sessions(&mut rng, now, &[(a1, bundle)])
            .unwrap();
        w.rng = rng;
        w.persist(m1);
        let from_m = w.send(m1, alice, format!("mallory {attempt}").as_bytes());
        let got = step_with(&mut w, a1, &World::envelope_to(&from_m, a1), &[]);
        log.push(format!(
            "mallory's message: {}",
            matches!(got, Inbound::Read(_))
        ));
        // Bob answers the request; the relay delivers the answer.
        let Ok(Received::RetryRequest(req)) = w.receive(b1, &request) else {
            panic!("Bob takes the request")
        };
        let answer = World::envelope_to(&w.answer(b1, &req, b"honest"), a1);
        match step_with(&mut w, a1, &answer, &[]) {
            Inbound::Read(r) => {
                read = body(&r) == Some(&b"honest"[..]);
                break;
            }
            other => log.push(
                format!("answer {attempt}: {other:?}")
                    .chars()
                    .take(120)
                    .collect(),
            ),
        }
        // The app asks again for the envelope it kept.
        match w.request_retry(a1, &broken, RetryReason::NoSession) {
            Ok((_, again)) => request = again,
            Err(e) => {
                log.push(format!("re-ask: {e}"));
                break;
            }
        }
    }
    assert!(read, "Bob's message is never read: {log:#?}");
}

/// The relay breaks Bob's message; Alice asks. Before delivering Bob's answer, the relay
/// forges `MAX_PENDING_RETRIES` copies of one of Bob's envelopes, each with a fresh salt
/// (no account needed: they fail, and the driver asks for each, as from Bob). Before the
/// fix, Bob's account held the most pending retries, so Alice dropped the genuine one first,
/// releasing the keys Bob's answer is sealed to; the relay flooded again at each of the
/// app's asks, and after three rounds Bob's answers were used up and the message lost,
/// though every envelope was delivered. Fixed: a retry waiting for its answer is never
/// dropped for room, and Bob's account holds at most `MAX_WAITING_RETRIES_PER_ACCOUNT`
/// waiting retries: the forgeries beyond are deferred (`AskLater`), and the answer to the
/// first ask is read.
#[test]
fn forged_copies_under_an_honest_senders_address_do_not_push_out_its_pending_retry() {
    let (mut w, [alice, _bob], [a1, b1]) = World::phones::<2>("r45 forged pending");
    let warm = w.send(b1, alice, b"warm");
    w.deliver_ok(&warm);
    // A message of Bob's the relay holds back: its copies with other salts fail to open.
    let carrier = World::envelope_to(&w.send(b1, alice, b"carrier"), a1);
    let salt = w.pairwise_salt(a1, &carrier);
    let at = carrier.windows(16).position(|s| s == salt).unwrap();
    let o = w.send(b1, alice, b"honest");
    let broken = tampered(&World::envelope_to(&o, a1));
    let Inbound::AskAgain { mut request, .. } = step_with(&mut w, a1, &broken, &[]) else {
        panic!("Alice asks")
    };
    let mut read = false;
    let mut log = Vec::new();
    let mut forged_n = 0u32;
    for round in 0..3 {
        // The forgeries come after the ask (a second later).
        w.now = ratchetry::Timestamp(w.now.0 + 1000);
        for _ in 0..ratchetry::fanout::MAX_PENDING_RETRIES {
            forged_n += 1;
            let mut forged = carrier.clone();
            forged[at..at + 4].copy_from_slice(&forged_n.to_be_bytes());
            forged[at + 4..at + 16].copy_from_slice(&[0xee; 12]);
            let got = step_with(&mut w, a1, &forged, &[]);
            assert!(
                matches!(got, Inbound::AskAgain { .. } | Inbound::AskLater { .. }),
                "{got:?}"
            );
        }
        let Ok(Received::RetryRequest(req)) = w.receive(b1, &request) else {
            panic!("Bob takes the request")
        };
        let answer = World::envelope_to(&w.answer(b1, &req, b"honest"), a1);
        match step_with(&mut w, a1, &answer, &[]) {
            Inbound::Read(r) => {
                read = body(&r) == Some(&b"honest"[..]);
                break;
            }
            other => log.push(
                format!("answer {round}: {other:?}")
                    .chars()
                    .take(100)
                    .collect::<String>(),
            ),
        }
        match w.request_retry(a1, &broken, RetryReason::NoSession) {
            Ok((_, again)) => request = again,
            Err(e) => {
                log.push(format!("re-ask: {e}"));
                break;
            }
        }
    }
    if !read {
        // Bob's limit: a fourth ask is refused.
        if let Ok((_, again)) = w.request_retry(a1, &broken, RetryReason::NoSession) {
            log.push(format!(
                "fourth ask at Bob: {:?}",
                w.receive(b1, &again).err()
            ));
        }
    }
    assert!(read, "Bob's message is never read: {log:#?}");
    // The carrier, delivered at last, still reads.
    assert!(matches!(
        step_with(&mut w, a1, &carrier, &[]),
        Inbound::Read(_)
    ));
}

/// A companion linked after Bob's group message asks for it (the relay delivers the old
/// group envelope to it; whatever the driver says, the app may ask): Bob refuses the request
/// unchanged (`NotEntitled`: the companion's ledger entry starts after that iteration), and
/// the companion reads Bob's next group message.
#[test]
fn a_companion_linked_after_a_group_message_is_not_answered_it() {
    let group = ratchetry::group::GroupId([47; 32]);
    let (mut w, alice, bob, _first) = World::group_sent("r45 late companion", group, [0, 0]);
    let b1 = World::addr(bob, 1);
    let old = w.send_group(b1, group, b"before the link");
    w.deliver_ok(&old);
    let a3 = w.link(&alice);
    w.publish_all();
    w.set_members(group, &[alice, bob]);
    let new = w.send_group(b1, group, b"after the link");
    assert!(w.reads(&new, b"after the link"));
    let old_env = old.group.as_ref().unwrap().0.clone();
    let got = step_with(&mut w, a3, &old_env, &[]);
    assert!(!matches!(got, Inbound::Read(_)), "{got:?}");
    let (to, request) = w
        .request_retry(a3, &old_env, RetryReason::NoSession)
        .unwrap();
    assert_eq!(to, b1);
    w.refused(b1, &request, FanoutError::NotEntitled.into());
}

/// Finding 1's fix, each key apart: Mallory's pre-key message naming the one-time prekey Alice
/// minted for her retry of Bob's message (with her usual ML-KEM key), or the one-time ML-KEM
/// prekey minted for it (with no one-time prekey), is refused as a key not held, and Alice is
/// unchanged; a message on Alice's published keys reads, and Bob's answer on the minted keys
/// reads.
#[test]
fn a_request_bundles_keys_open_a_session_only_from_the_device_asked() {
    let (mut w, [alice, _bob, _mallory, _carol, _erin], [a1, b1, m1, c1, e1]) =
        World::phones::<5>("r45 minted apart");
    let o = w.send(b1, alice, b"honest");
    let broken = tampered(&World::envelope_to(&o, a1));
    let (_, request) = w
        .request_retry(a1, &broken, RetryReason::AuthenticationFailed)
        .unwrap();
    let minted = request_bundle(&request);
    let published = w.device(a1).bundle(None, None);
    let one_time = minted.one_time_prekey().expect("a minted one-time prekey");
    let only_one_time = ratchetry::x3dh::PreKeyBundle::new(
        minted.identity_key(),
        minted.signed_prekey(),
        Some(one_time),
        published.kem_prekey().clone(),
    );
    let only_kem = ratchetry::x3dh::PreKeyBundle::new(
        minted.identity_key(),
        minted.signed_prekey(),
        None,
        minted.kem_prekey().clone(),
    );
    for (sender, bundle, refusal) in [
        (
            m1,
            only_one_time,
            X3dhError::UnknownOneTimePreKey(one_time.id.0),
        ),
        (
            c1,
            only_kem,
            X3dhError::UnknownKemPreKey(minted.kem_prekey().id.0),
        ),
    ] {
        let (now, mut rng) = (w.now, w.rng.clone());
        w.device(sender)
            .start_sessions(&mut rng, now, &[(a1, bundle)])
            .unwrap();
        w.rng = rng;
        w.persist(sender);
        let sent = w.send(sender, alice, b"on minted keys");
        w.refused(a1, &World::envelope_to(&sent, a1), refusal.into());
    }
    // Alice's published keys still open a new session (Erin's first message).
    let sent = w.send(e1, alice, b"on published keys");
    assert!(w.reads(&sent, b"on published keys"));
    // Bob, the device asked, answers on the minted keys: read.
    let Ok(Received::RetryRequest(req)) = w.receive(b1, &request) else {
        panic!("Bob takes the request")
    };
    let answer = w.answer(b1, &req, b"honest");
    assert!(w.reads(&answer, b"honest"));
}
