//! Review 39: `send_group_withholding` and generation-named withheld notices (commit 3aa54ad),
//! attacked as sequences of public-API operations. The adversary is the relay, with an account
//! it controls, or a member device the sender withholds its key from.
//!
//! Bugs found (each test below failed on the reviewed code; fixed in the next commit, where the
//! sender never gives a device a generation it withheld from it, keeps who was withheld and
//! told in the sender key's record, and a receiver keeps up to four withheld generations):
//! - a notice named a generation, but withholding was per send: a withholding send that did
//!   not rotate, then a plain send, gave the device the same generation from a later iteration.
//!   So a message of that generation the device could read was reported `Withheld` if its group
//!   envelope overtook the distribution (the driver drops it), and a withheld message of it read
//!   after the distribution was `SenderKeyMissing`, whose retry was always refused;
//! - one notice slot per (sender, group): a relay that reordered two notices left the older
//!   generation's, and the withheld generation's messages read as `SenderKeyMissing`;
//! - `not_delivered` of a send that only told a device left the told-cache set: the send
//!   made again never told it;
//! - the told-cache was keyed by address only: a new identity key at a told address was never
//!   told.
//!
//! Pinned as sound: the rest (retries, plain sends, `not_delivered`, restarts, restores, own
//! companions with a history offer, the reach cache, refusals, record decoding, forged and
//! replayed notices, the relay's coverage check, the plain send's cost).

mod support;

use ratchetry::devices::{AccountKey, DeviceAddress};
use ratchetry::fanout::{Device, Outbox, Outgoing, Received, RetryReason, WithheldReason};
use ratchetry::group::{GroupId, SenderKeyId};
use ratchetry::history::HistorySealer;
use ratchetry::server::check_coverage;
use ratchetry::testing::SeededRng;
use ratchetry::{Error, FanoutError, ServerError};
use support::{World, body, tampered};

const G: GroupId = GroupId([0x39; 32]);

/// Alice (a phone), Bob (a phone and a laptop) and Carol (a phone), all members of `G`, no
/// group message sent yet: `(world, a1, b1, b2, c1)`.
fn trio(
    label: &str,
) -> (
    World,
    DeviceAddress,
    DeviceAddress,
    DeviceAddress,
    DeviceAddress,
) {
    let mut w = World::new(label);
    let (alice, bob, carol) = (w.account(0), w.account(1), w.account(0));
    w.publish_all();
    w.set_members(G, &[alice, bob, carol]);
    (
        w,
        World::addr(alice, 1),
        World::addr(bob, 1),
        World::addr(bob, 2),
        World::addr(carol, 1),
    )
}

/// The devices an outbox's pairwise envelopes go to.
fn pairwise(outbox: &Outbox) -> Vec<DeviceAddress> {
    outbox.envelopes.iter().map(|(to, _)| *to).collect()
}

fn sorted(devices: &[DeviceAddress]) -> Vec<DeviceAddress> {
    let mut v = devices.to_vec();
    v.sort();
    v
}

/// The group envelope of an outbox.
fn group_envelope(outbox: &Outbox) -> Vec<u8> {
    outbox.group.clone().expect("a group send").0
}

/// Delivers an outbox's pairwise envelopes, and its group envelope to `readers` only.
fn deliver_to(w: &mut World, outbox: &Outbox, readers: &[DeviceAddress]) {
    for (to, e) in &outbox.envelopes {
        w.receive(*to, e).unwrap();
    }
    let envelope = group_envelope(outbox);
    for to in readers {
        w.receive(*to, &envelope).unwrap();
    }
}

fn key_id(r: &Result<Received, Error>) -> SenderKeyId {
    match r {
        Ok(Received::SenderKey { key_id, .. } | Received::Withheld { key_id, .. }) => *key_id,
        other => panic!("neither a key nor a notice: {other:?}"),
    }
}

fn is_key_missing(r: &Result<Received, Error>) -> bool {
    matches!(r, Err(Error::Fanout(FanoutError::SenderKeyMissing { .. })))
}

fn is_withheld(r: &Result<Received, Error>) -> bool {
    *r == Err(FanoutError::Withheld.into())
}

/// `requester` asks again for `failed` (sent by `sender`): the sender's verdict on the request.
fn ask(
    w: &mut World,
    requester: DeviceAddress,
    sender: DeviceAddress,
    failed: &[u8],
) -> Result<Received, Error> {
    let (to, request) = w
        .request_retry(requester, failed, RetryReason::SenderKeyMissing)
        .unwrap();
    assert_eq!(to, sender);
    w.receive(sender, &request)
}

fn restart_checked(w: &mut World, a: DeviceAddress) {
    let loaded = w.stores[&a].load();
    assert_eq!(*loaded.to_bytes(), *w.devices[&a].to_bytes());
    w.restart(a);
}

/// A send `op` on `a` that must refuse with `expected` and leave `a` byte-identical with
/// nothing to persist.
fn refuses_unchanged(
    w: &mut World,
    a: DeviceAddress,
    expected: Error,
    op: impl FnOnce(&mut Device, &mut SeededRng, ratchetry::Timestamp) -> ratchetry::Result<Outgoing>,
) {
    w.persist(a);
    let now = w.now;
    let mut rng = SeededRng::from_label("review39 refusal");
    let d = w.device(a);
    let before = d.to_bytes();
    assert_eq!(op(d, &mut rng, now).err(), Some(expected));
    assert_eq!(*before, *d.to_bytes(), "a refusal changed the device");
    assert!(!d.has_changes(), "a refusal left changes");
}

// ---------------------------------------------------------------------------------------------
// Bugs found, fixed
// ---------------------------------------------------------------------------------------------

/// FIXED (was medium-low: a readable group message was dropped; relay-triggered, and also a
/// plain race, since pairwise and group envelopes travel apart).
///
/// Sequence: Alice's first group send withholds Bob's phone with a reason (it held no key: no
/// rotation), so b1 holds a notice naming generation K. Alice's next plain send gives b1 the
/// same K from that send's iteration (a distribution) and sends message m under K. The relay
/// delivers m's group envelope to b1 before the distribution.
///
/// Impact: b1 reports m `Withheld` (the notice names m's generation), which the driver drops
/// and the guide says not to ask for again, though m is readable as soon as the distribution
/// arrives (b1 reads it then) and Alice would answer a retry (b1 holds K since m's iteration).
/// Without the notice it is `SenderKeyMissing`, held until the key comes. Stop 38's stale
/// notice limit survives inside a generation: a notice names a generation, but withholding is
/// per send, and the same generation can be given later.
///
/// Fix: never give a device a generation it was withheld from: a send that gives the key to a
/// device missing from the current ledger that a withholding send of this generation named
/// rotates first (the sender key's record keeping who was withheld from the current
/// generation). Then a notice's generation is never readable by its device, and `Withheld` is
/// exact: the later message, of a new generation, is `SenderKeyMissing` until its key arrives.
#[test]
fn a_later_message_that_overtakes_its_key_is_held_not_dropped() {
    let (mut w, a1, b1, b2, c1) = trio("review39 overtakes");
    let o1 = w.send_group_withholding(a1, G, b"withheld", &[(b1, Some(WithheldReason::Blocked))]);
    deliver_to(&mut w, &o1, &[b2, c1]);
    let o2 = w.send_group(a1, G, b"readable");
    assert_eq!(
        pairwise(&o2),
        sorted(&[b1, b2, c1]),
        "a new generation, for every member device"
    );
    let m = group_envelope(&o2);
    let early = w.receive(b1, &m);
    let key = w.receive(b1, &World::envelope_to(&o2, b1));
    assert!(matches!(key, Ok(Received::SenderKey { .. })));
    let late = w.receive(b1, &m).unwrap();
    assert_eq!(
        body(&late),
        Some(&b"readable"[..]),
        "m was readable all along"
    );
    assert!(
        is_key_missing(&early),
        "a message b1 reads once its key arrives was reported {early:?}"
    );
}

/// FIXED (was low: a withheld message was misreported, and its retry looped to a refusal).
///
/// Sequence: as above, b1 is withheld from generation K with a reason and told; the relay
/// holds back the withheld message m1's group envelope to b1. A plain send gives b1 K from a
/// later iteration: the distribution deletes the notice (the key held now "holds" K). The
/// relay then delivers m1.
///
/// Impact: m1 (iteration before the key b1 holds, `PredatesKey`) is `SenderKeyMissing`, not
/// `Withheld`: the driver holds it and asks for it again, and Alice refuses (`NotEntitled`)
/// every time: the app never learns it was withheld.
///
/// Fix: the same as above (a generation withheld from a device is never given to it): the
/// plain send makes a new generation, the notice stays, and m1 is `Withheld`.
#[test]
fn a_withheld_message_read_after_a_later_generation_arrived_stays_withheld() {
    let (mut w, a1, b1, b2, c1) = trio("review39 predates");
    let o1 = w.send_group_withholding(a1, G, b"withheld", &[(b1, Some(WithheldReason::Blocked))]);
    deliver_to(&mut w, &o1, &[b2, c1]);
    let m1 = group_envelope(&o1);
    let o2 = w.send_group(a1, G, b"given");
    w.deliver_ok(&o2);
    let late = w.receive(b1, &m1);
    assert_eq!(
        ask(&mut w, b1, a1, &m1).err(),
        Some(FanoutError::NotEntitled.into()),
        "m1 was withheld: its retry is refused"
    );
    assert!(is_withheld(&late), "a withheld message reported {late:?}");
}

/// FIXED (was low: the withheld generation's messages read as `SenderKeyMissing` for good).
///
/// Sequence: Alice withholds b1 with a reason (generation K1, notice N1) and then again while
/// rotating (Carol's phone is withheld too and held K1), so K2 and notice N2. The relay
/// delivers N2 to b1, then N1 (a pairwise session reads out of order by its skipped keys).
///
/// Impact: the last notice read replaces the one held (one slot per sender and group), so b1
/// holds K1's; K2's messages are `SenderKeyMissing` and their retries refused, and Alice's
/// told-cache never sends N2 again while K2 lasts. The relay picks which generation a device
/// believes withheld.
///
/// Fix: a receiver keeps up to `MAX_WITHHELD_GENERATIONS` (4) withheld generations per
/// (sender, group), whatever order their notices come in; the same withholding again (both
/// devices named as before) tells nothing new.
#[test]
fn reordered_notices_keep_every_withheld_generation() {
    let (mut w, a1, b1, b2, c1) = trio("review39 reordered");
    let blocked = Some(WithheldReason::Blocked);
    let o1 = w.send_group_withholding(a1, G, b"one", &[(b1, blocked)]);
    let n1 = World::envelope_to(&o1, b1);
    for to in [b2, c1] {
        w.receive(to, &World::envelope_to(&o1, to)).unwrap();
    }
    let o2 = w.send_group_withholding(a1, G, b"two", &[(b1, blocked), (c1, None)]);
    assert_eq!(
        pairwise(&o2),
        sorted(&[b1, b2]),
        "a rotation: b2 gets K2, b1 a notice"
    );
    let n2 = World::envelope_to(&o2, b1);
    let k2 = key_id(&w.receive(b1, &n2));
    let k1 = key_id(&w.receive(b1, &n1));
    assert_ne!(k1, k2);
    let m2 = group_envelope(&o2);
    let read = w.receive(b1, &m2);
    let o3 = w.send_group_withholding(a1, G, b"three", &[(b1, blocked), (c1, None)]);
    assert!(
        !pairwise(&o3).contains(&b1),
        "told already: never told again"
    );
    assert!(is_withheld(&read), "K2's message reported {read:?}");
}

/// FIXED (was low: a device was never told).
///
/// Sequence: Bob joins a group whose current generation the others hold. Alice withholds
/// Bob's phone with a reason: nobody needs the key, so the outbox is only b1's notice (and
/// the group envelope). The relay refuses the batch (a stale list, say): the app calls
/// `not_delivered(send_id, &outbox.recipients())` and sends again, withholding the same way.
///
/// Impact: no ledger entry was taken back, so nothing rotates, and the in-memory told-cache
/// still says b1 was told of this generation with this reason: the send made again has no
/// notice, and b1 reads that generation as `SenderKeyMissing` (retries refused) until a
/// restart or rotation. The relay can do this at will.
///
/// Fix: `not_delivered` of a send of the current generation marks the withheld devices named
/// as not told (they stay withheld from it): the next withholding send tells them again.
#[test]
fn not_delivered_of_a_notice_makes_the_resend_tell_again() {
    let mut w = World::new("review39 not delivered notice");
    let (alice, bob, carol) = (w.account(0), w.account(0), w.account(0));
    w.publish_all();
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    w.set_members(G, &[alice, carol]);
    let first = w.send_group(a1, G, b"before bob");
    w.deliver_ok(&first);
    w.set_members(G, &[alice, bob, carol]);
    let withheld = [(b1, Some(WithheldReason::Unverified))];
    let refused = w.send_group_withholding(a1, G, b"x", &withheld);
    assert_eq!(pairwise(&refused), [b1], "only the notice");
    let send_id = refused.send_id.unwrap();
    let recipients = refused.recipients();
    w.device(a1).not_delivered(send_id, &recipients).unwrap();
    w.persist(a1);
    let again = w.send_group_withholding(a1, G, b"x", &withheld);
    assert_eq!(pairwise(&again), [b1], "the notice never reached b1");
}

// ---------------------------------------------------------------------------------------------
// Sound
// ---------------------------------------------------------------------------------------------

/// Retries never give a withheld device its generation: a withheld laptop's request for a
/// message of the generation it held is answered with that message alone (no distribution of
/// the current generation, which it does not hold), while a holder's is answered with the
/// key again; its request for the withheld message is refused; once a later plain send gives
/// it a new generation, the withheld message stays unreadable and its retry is still
/// refused.
#[test]
fn retries_never_give_a_withheld_device_its_generation() {
    let (mut w, a1, b1, b2, c1) = trio("review39 retries");
    let first = w.send_group(a1, G, b"first");
    deliver_to(&mut w, &first, &[b1, c1]);
    let first_envelope = group_envelope(&first);
    let o2 = w.send_group_withholding(a1, G, b"second", &[(b2, Some(WithheldReason::Unverified))]);
    assert_eq!(
        pairwise(&o2),
        sorted(&[b1, b2, c1]),
        "a rotation, and b2's notice"
    );
    deliver_to(&mut w, &o2, &[b1]);
    let m2 = group_envelope(&o2);
    w.refused(b2, &m2, FanoutError::Withheld.into());

    // b2 asks for "first" (it held that generation): the message only.
    let bad = tampered(&first_envelope);
    assert!(w.receive(b2, &bad).is_err());
    let Ok(Received::RetryRequest(request)) = ask(&mut w, b2, a1, &bad) else {
        panic!("b2 held the first generation")
    };
    let answer = w
        .run(a1, |d, rng, now| {
            d.answer_retry(rng, now, &request, b"first")
        })
        .unwrap();
    assert_eq!(
        pairwise(&answer),
        [b2],
        "no redistribution of the current generation"
    );
    let resent = w.receive(b2, &answer.envelopes[0].1).unwrap();
    assert_eq!(body(&resent), Some(&b"first"[..]));
    w.refused(b2, &m2, FanoutError::Withheld.into());

    // Carol's phone, a holder of the current generation, gets it again with its answer.
    let bad = tampered(&m2);
    assert!(w.receive(c1, &bad).is_err());
    let Ok(Received::RetryRequest(request)) = ask(&mut w, c1, a1, &bad) else {
        panic!("c1 holds the current generation")
    };
    let answer = w
        .run(a1, |d, rng, now| {
            d.answer_retry(rng, now, &request, b"second")
        })
        .unwrap();
    assert_eq!(pairwise(&answer), sorted(&[c1, c1]));

    // b2's request for the withheld message is refused, before and after a plain send.
    assert_eq!(
        ask(&mut w, b2, a1, &m2).err(),
        Some(FanoutError::NotEntitled.into())
    );
    let o3 = w.send_group(a1, G, b"third");
    assert_eq!(pairwise(&o3), sorted(&[b1, b2, c1]), "a new generation");
    let got = w.deliver(&o3);
    assert!(got.iter().all(|(_, r)| r.is_ok()), "{got:?}");
    let again = w.receive(b2, &m2);
    assert!(
        again.is_err(),
        "the withheld message stays unreadable: {again:?}"
    );
    assert_eq!(
        ask(&mut w, b2, a1, &m2).err(),
        Some(FanoutError::NotEntitled.into())
    );
}

/// `not_delivered` of a withholding send takes back only what that send gave (the withheld
/// device was given nothing: naming it alone changes nothing, byte for byte), and taking back
/// the others makes the next send rotate; withheld again, the device gets nothing of the new
/// generation either, and a plain send then makes another, for every member device.
#[test]
fn not_delivered_never_hands_a_withheld_device_the_key() {
    let (mut w, a1, b1, b2, c1) = trio("review39 not delivered");
    let first = w.send_group(a1, G, b"first");
    w.deliver_ok(&first);
    let o2 = w.send_group_withholding(a1, G, b"second", &[(b2, None)]);
    assert_eq!(pairwise(&o2), sorted(&[b1, c1]), "a rotation, b2 left out");
    let send_id = o2.send_id.unwrap();
    let d = w.device(a1);
    let before = d.to_bytes();
    d.not_delivered(send_id, &[b2]).unwrap();
    assert_eq!(*before, *d.to_bytes(), "b2 was given nothing to take back");
    assert!(!d.has_changes());
    let recipients = o2.recipients();
    w.device(a1).not_delivered(send_id, &recipients).unwrap();
    w.persist(a1);
    let o3 = w.send_group_withholding(a1, G, b"third", &[(b2, None)]);
    assert_eq!(
        pairwise(&o3),
        sorted(&[b1, c1]),
        "rotated again, b2 still left out"
    );
    let k3 = key_id(&w.receive(b1, &World::envelope_to(&o3, b1)));
    let k2 = key_id(&w.receive(c1, &World::envelope_to(&o2, c1)));
    assert_ne!(k2, k3);
    assert!(is_key_missing(&w.receive(b2, &group_envelope(&o3))));
    let o4 = w.send_group(a1, G, b"fourth");
    assert_eq!(pairwise(&o4), sorted(&[b1, b2, c1]));
}

/// The ledger, not the in-memory state, decides: after a restart from records, a round trip
/// through whole-state bytes, and a restore from a backup, a device withheld from stays out
/// of the generation it was withheld from (the restore rotates, and the new generation is
/// withheld too); who was told is kept with the sender key, so a load tells nothing again.
#[test]
fn restarts_and_restores_never_give_a_withheld_device_the_key() {
    let (mut w, a1, b1, b2, c1) = trio("review39 restarts");
    let (alice, bob, carol) = (a1.account, b1.account, c1.account);
    let first = w.send_group(a1, G, b"first");
    w.deliver_ok(&first);
    let unverified = [(b2, Some(WithheldReason::Unverified))];
    let o2 = w.send_group_withholding(a1, G, b"second", &unverified);
    let k2 = key_id(&w.receive(b2, &World::envelope_to(&o2, b2)));
    for to in [b1, c1] {
        w.receive(to, &World::envelope_to(&o2, to)).unwrap();
        w.receive(to, &group_envelope(&o2)).unwrap();
    }
    let backup = w.device(a1).to_bytes();

    restart_checked(&mut w, a1);
    let copy = Device::from_bytes(&w.device(a1).to_bytes()).unwrap();
    assert_eq!(*copy.to_bytes(), *w.device(a1).to_bytes());
    let o3 = w.send_group_withholding(a1, G, b"third", &unverified);
    assert!(
        pairwise(&o3).is_empty(),
        "told before the load, nothing given"
    );
    w.refused(b2, &group_envelope(&o3), FanoutError::Withheld.into());
    let _ = k2;

    let now = w.now;
    *w.device(a1) = Device::restore_from_backup(&backup, now).unwrap();
    w.persist(a1);
    w.device(a1)
        .set_group_members(G, &[alice, bob, carol])
        .unwrap();
    w.persist(a1);
    let o4 = w.send_group_withholding(a1, G, b"fourth", &unverified);
    assert_eq!(pairwise(&o4), sorted(&[b1, b2, c1]), "a restore rotates");
    let k4 = key_id(&w.receive(b1, &World::envelope_to(&o4, b1)));
    let notice = w.receive(b2, &World::envelope_to(&o4, b2));
    assert!(
        matches!(notice, Ok(Received::Withheld { .. })),
        "{notice:?}"
    );
    assert_eq!(key_id(&notice), k4);
    assert_ne!(k4, k2);
    w.refused(b2, &group_envelope(&o4), FanoutError::Withheld.into());
}

/// An own-account companion withheld from reads nothing of the generation, and a history
/// offer (which carries the group membership) gives it no key: its retry is still refused.
#[test]
fn a_withheld_own_companion_reads_nothing_even_after_a_history_offer() {
    let mut w = World::new("review39 own companion");
    let (alice, bob) = (w.account(1), w.account(0));
    w.publish_all();
    w.set_members(G, &[alice, bob]);
    let (a1, a2) = (World::addr(alice, 1), World::addr(alice, 2));
    let first = w.send_group(a1, G, b"first");
    w.deliver_ok(&first);
    let o2 = w.send_group_withholding(a1, G, b"second", &[(a2, Some(WithheldReason::Unverified))]);
    deliver_to(&mut w, &o2, &[World::addr(bob, 1)]);
    let m2 = group_envelope(&o2);
    w.refused(a2, &m2, FanoutError::Withheld.into());
    let mut sealer = HistorySealer::new(&mut w.rng);
    let _ = sealer.push(b"the history the app chose");
    let (_, offer) = sealer.finish();
    let o3 = w
        .run(a1, |d, rng, now| d.send_history_offer(rng, now, a2, &offer))
        .unwrap();
    let got = w.deliver_ok(&o3);
    assert!(matches!(got[0].1, Received::HistoryOffer { .. }));
    w.refused(a2, &m2, FanoutError::Withheld.into());
    assert_eq!(
        ask(&mut w, a2, a1, &m2).err(),
        Some(FanoutError::NotEntitled.into())
    );
}

/// The reach cache never gives a withheld device the key, and a plain send's cost is
/// unchanged: a steady plain send seals nothing pairwise; a withholding send of a holder
/// rotates (even from a settled reach) and the next one seals nothing; the plain send after
/// makes a new generation for every member device, and the group is steady again. A
/// companion linked since (a list change) and withheld is told, not given the key.
#[test]
fn the_reach_cache_never_gives_a_withheld_device_the_key_and_steady_sends_stay_free() {
    let (mut w, a1, b1, b2, c1) = trio("review39 reach");
    let s1 = w.send_group(a1, G, b"1");
    assert_eq!(pairwise(&s1), sorted(&[b1, b2, c1]));
    w.deliver_ok(&s1);
    let s2 = w.send_group(a1, G, b"2");
    assert!(s2.envelopes.is_empty(), "steady: nothing per device");
    w.deliver_ok(&s2);
    let s3 = w.send_group_withholding(a1, G, b"3", &[(b1, None)]);
    assert_eq!(
        pairwise(&s3),
        sorted(&[b2, c1]),
        "rotated from a settled reach"
    );
    deliver_to(&mut w, &s3, &[b2, c1]);
    assert!(is_key_missing(&w.receive(b1, &group_envelope(&s3))));
    let s4 = w.send_group_withholding(a1, G, b"4", &[(b1, None)]);
    assert!(s4.envelopes.is_empty());
    deliver_to(&mut w, &s4, &[b2, c1]);
    assert!(is_key_missing(&w.receive(b1, &group_envelope(&s4))));
    let s5 = w.send_group(a1, G, b"5");
    assert_eq!(pairwise(&s5), sorted(&[b1, b2, c1]));
    w.deliver_ok(&s5);
    assert!(
        w.receive(b1, &group_envelope(&s4)).is_err(),
        "from s5 on only"
    );
    let s6 = w.send_group(a1, G, b"6");
    assert!(s6.envelopes.is_empty(), "steady again");
    w.deliver_ok(&s6);

    let bob = b1.account;
    let b3 = w.link(&bob);
    w.publish_all();
    let members = [a1.account, bob, c1.account];
    w.set_members(G, &members);
    let s7 = w.send_group_withholding(a1, G, b"7", &[(b3, Some(WithheldReason::Blocked))]);
    assert_eq!(pairwise(&s7), [b3], "told, not given");
    let notice = w.receive(b3, &World::envelope_to(&s7, b3));
    assert!(matches!(notice, Ok(Received::Withheld { .. })));
    w.refused(b3, &group_envelope(&s7), FanoutError::Withheld.into());
    let s8 = w.send_group(a1, G, b"8");
    assert_eq!(pairwise(&s8), sorted(&[b1, b2, b3, c1]), "a new generation");
    let got = w.deliver_ok(&s8);
    assert!(
        got.iter()
            .any(|(a, r)| *a == b3 && body(r) == Some(&b"8"[..]))
    );
}

/// Every refusal leaves the sender byte-identical with nothing to persist: an app reason with
/// a named reason's number anywhere in the list, a device that is not a member device (an
/// unlinked companion, a device of an account no longer a member), and a device to tell with
/// no session (`NeedBundles`, a "refusal" with nothing done). The same sequence in two worlds
/// from one seed makes byte-identical outboxes.
#[test]
fn refusals_change_nothing_and_sends_are_deterministic() {
    let run = |label: &str| {
        let (mut w, a1, b1, b2, c1) = trio(label);
        let first = w.send_group(a1, G, b"first");
        w.deliver_ok(&first);
        for n in [1, 2] {
            let list = [(b1, None), (b2, Some(WithheldReason::Other(n)))];
            refuses_unchanged(
                &mut w,
                a1,
                FanoutError::ReservedReason(n).into(),
                |d, r, t| d.send_group_withholding(r, t, G, b"x", &list),
            );
        }
        // A device of Bob's account its list no longer names.
        let now = w.now;
        let bob = b1.account;
        w.primary(&bob)
            .unlink(now, ratchetry::devices::DeviceId(2))
            .unwrap();
        w.publish(&bob);
        let list = [(b2, None)];
        refuses_unchanged(
            &mut w,
            a1,
            FanoutError::NotAGroupDevice(b2).into(),
            |d, r, t| d.send_group_withholding(r, t, G, b"x", &list),
        );
        // Carol's account, no longer a member.
        w.set_members(G, &[a1.account, bob]);
        let list = [(c1, Some(WithheldReason::Blocked))];
        refuses_unchanged(
            &mut w,
            a1,
            FanoutError::NotAGroupDevice(c1).into(),
            |d, r, t| d.send_group_withholding(r, t, G, b"x", &list),
        );
        // A companion linked since, to be told, without a session.
        let b3 = w.link(&bob);
        w.publish_all();
        w.set_members(G, &[a1.account, bob]);
        let now = w.now;
        let mut rng = SeededRng::from_label("review39 bundles");
        let d = w.device(a1);
        let before = d.to_bytes();
        let list = [(b3, Some(WithheldReason::Blocked))];
        let sent = d.send_group_withholding(&mut rng, now, G, b"x", &list);
        assert!(
            matches!(&sent, Ok(Outgoing::NeedBundles(m)) if *m == [b3]),
            "{sent:?}"
        );
        assert_eq!(*before, *d.to_bytes());
        assert!(!d.has_changes());
        let o = w.send_group_withholding(a1, G, b"y", &list);
        let o2 = w.send_group_withholding(a1, G, b"z", &[(b1, None), (b3, None)]);
        let (g, g2) = (group_envelope(&o), group_envelope(&o2));
        (o.envelopes, g, o2.envelopes, g2)
    };
    assert!(run("review39 determinism") == run("review39 determinism"));
}

/// A notice record of the wrong length (not the empty old form, not `u32(key_id)`) is refused
/// at load, not a panic; one of the right length loads.
#[test]
fn malformed_notice_records_are_refused_at_load() {
    let (mut w, a1, b1, b2, c1) = trio("review39 records");
    let o = w.send_group_withholding(a1, G, b"x", &[(b1, Some(WithheldReason::Blocked))]);
    deliver_to(&mut w, &o, &[b2, c1]);
    let store = w.stores[&b1].clone();
    let key = store
        .0
        .keys()
        .find(|k| k[0] == 0x0d)
        .cloned()
        .expect("the notice is stored");
    for value in [vec![1], vec![1, 2, 3], vec![0; 5], vec![0xff; 36]] {
        let mut s = store.clone();
        s.0.insert(key.clone(), value.clone());
        let loaded = Device::from_records(s.0.iter().map(|(k, v)| (k.as_slice(), v.as_slice())));
        assert!(loaded.is_err(), "{} bytes loaded", value.len());
    }
    let mut s = store.clone();
    s.0.insert(key, vec![0xff; 4]);
    assert!(Device::from_records(s.0.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))).is_ok());
}

/// A notice is bound to the device that sent it: Carol's notice about her own key changes
/// nothing about Alice's messages; the relay's replay of a notice is a `Duplicate` that
/// changes nothing, and a notice re-routed to another device is refused unchanged.
#[test]
fn notices_bind_to_their_sender_and_replays_mark_nothing() {
    let (mut w, a1, b1, b2, c1) = trio("review39 forged");
    let first = w.send_group(a1, G, b"first");
    w.deliver_ok(&first);
    let from_carol =
        w.send_group_withholding(c1, G, b"carol's", &[(b1, Some(WithheldReason::Blocked))]);
    let notice = World::envelope_to(&from_carol, b1);
    assert!(matches!(
        w.receive(b1, &notice),
        Ok(Received::Withheld { from, .. }) if from == c1
    ));
    w.refused(
        b1,
        &group_envelope(&from_carol),
        FanoutError::Withheld.into(),
    );
    let o = w.send_group(a1, G, b"alice's");
    let got = w.deliver_ok(&o);
    assert!(
        got.iter()
            .any(|(a, r)| *a == b1 && body(r) == Some(&b"alice's"[..]))
    );
    let now = w.now;
    let d = w.device(b1);
    let before = d.to_bytes();
    assert!(matches!(
        d.receive(now, &notice),
        Err(Error::Fanout(FanoutError::Duplicate { .. }))
    ));
    assert_eq!(*before, *d.to_bytes());
    assert!(!d.has_changes());
    let d = w.device(b2);
    let before = d.to_bytes();
    assert!(d.receive(now, &notice).is_err());
    assert_eq!(*before, *d.to_bytes());
    assert!(!d.has_changes());
}

/// The relay's coverage check accepts every honest withholding send (first send, rotation,
/// no reason, told already, a plain send after), and refuses a batch whose group envelope
/// leaves out a withheld device that has no pairwise envelope in it. A device told in that
/// batch counts as reached by its notice (as a device given a distribution does): the check
/// sees addresses, not envelope kinds, so it cannot insist on the group envelope there.
#[test]
fn the_relay_accepts_honest_withholding_sends_and_refuses_leaving_out_a_withheld_device() {
    let (mut w, a1, b1, b2, c1) = trio("review39 coverage");
    let lists: Vec<_> = w
        .primaries
        .iter()
        .map(|p| p.device_list().clone())
        .collect();
    let check = |w: &World, o: &Outbox, recipients: &[DeviceAddress]| {
        let served = |a: &AccountKey| lists.iter().find(|l| l.account() == *a);
        check_coverage(&a1, recipients, &o.coverage, served, w.now)
    };
    let without = |o: &Outbox, left_out: DeviceAddress| {
        let mut r: Vec<_> = pairwise(o);
        r.extend(
            o.group
                .as_ref()
                .unwrap()
                .1
                .iter()
                .filter(|a| **a != left_out),
        );
        sorted(&r)
    };
    let blocked = Some(WithheldReason::Blocked);
    let sends: [&[(DeviceAddress, Option<WithheldReason>)]; 5] = [
        &[(b1, blocked)],
        &[(b1, blocked), (c1, None)],
        &[(b1, blocked)],
        &[(b2, None)],
        &[],
    ];
    for withheld in sends {
        let o = w.send_group_withholding(a1, G, b"x", withheld);
        assert_eq!(check(&w, &o, &o.recipients()), Ok(()), "{withheld:?}");
        for (device, _) in withheld {
            let cut = without(&o, *device);
            let told = pairwise(&o).contains(device);
            let expected = match told {
                true => Ok(()),
                false => Err(ServerError::DeviceLeftOut(*device)),
            };
            assert_eq!(check(&w, &o, &cut), expected, "{device:?} left out");
        }
        let _ = w.deliver(&o);
    }
}

/// Bob's primary (restored without a resync, or the adversary's) lists a new identity as
/// device 2, the address of Bob's laptop; Alice's phone follows that list. The new device's
/// bundle is not served (a send that must tell it asks for it).
fn new_identity_at_b2(w: &mut World, bob: AccountKey, a1: DeviceAddress) {
    let now = w.now;
    w.primary(&bob)
        .unlink(now, ratchetry::devices::DeviceId(2))
        .unwrap();
    let mut state = w.primary(&bob).to_bytes().to_vec();
    state[2 + 32 + 4 + 8 + 8..2 + 32 + 4 + 8 + 8 + 4].copy_from_slice(&2u32.to_be_bytes());
    let mut reusing = ratchetry::devices::Primary::from_bytes(&state).unwrap();
    let intruder = ratchetry::IdentityKeyPair::generate(&mut w.rng);
    let invitation = reusing.invite(&mut w.rng, now).unwrap();
    let approval = reusing
        .approve(
            now,
            &ratchetry::devices::LinkRequest::new(&intruder, &invitation),
        )
        .unwrap();
    assert_eq!(approval.device, ratchetry::devices::DeviceId(2));
    w.device(a1)
        .update_device_list(now, &bob, approval.list.clone())
        .unwrap();
    w.persist(a1);
}

/// A withheld device that holds the current generation and comes back under a new identity
/// key at the same address still forces a rotation when withheld (the ledger is matched by
/// address, under any identity key): the new generation goes to the others only, and the new
/// identity, withheld without a reason, needs no session.
#[test]
fn a_new_identity_at_a_withheld_address_gets_no_key() {
    let (mut w, a1, b1, b2, c1) = trio("review39 new identity");
    let first = w.send_group(a1, G, b"first");
    let k1 = key_id(&w.receive(c1, &World::envelope_to(&first, c1)));
    new_identity_at_b2(&mut w, b1.account, a1);
    let o = w.send_group_withholding(a1, G, b"second", &[(b2, None)]);
    assert_eq!(pairwise(&o), sorted(&[b1, c1]), "a rotation, nothing to b2");
    let k2 = key_id(&w.receive(c1, &World::envelope_to(&o, c1)));
    assert_ne!(k1, k2);
    assert!(
        !w.device(a1).has_session(&b2),
        "no session with the new identity"
    );
}

/// FIXED (was low: a device was never told, the sibling of the `not_delivered` one).
///
/// Sequence: Alice withholds Bob's laptop with a reason (it is told of generation K). Bob's
/// primary (restored without a resync, or the adversary's) lists a new identity at the
/// laptop's address. Alice withholds that address with the same reason again.
///
/// Impact: the laptop held no key, so nothing rotates, and the told-cache is keyed by address
/// only: the new identity is never told (the notice went to the old identity), and reads K as
/// `SenderKeyMissing`, its retries refused. Setting members, a removal and a re-add of the
/// account, leave the cache alike.
///
/// Fix: the record of who was told keeps the identity key told; another one is told again.
#[test]
fn a_new_identity_at_a_told_address_is_told_again() {
    let (mut w, a1, b1, b2, _c1) = trio("review39 told identity");
    let first = w.send_group(a1, G, b"first");
    w.deliver_ok(&first);
    let unverified = [(b2, Some(WithheldReason::Unverified))];
    let o = w.send_group_withholding(a1, G, b"second", &unverified);
    assert!(pairwise(&o).contains(&b2), "told");
    new_identity_at_b2(&mut w, b1.account, a1);
    let now = w.now;
    let mut rng = SeededRng::from_label("review39 told identity rng");
    let sent = w
        .device(a1)
        .send_group_withholding(&mut rng, now, G, b"third", &unverified);
    let tells = match &sent {
        Ok(Outgoing::NeedBundles(m)) => m.contains(&b2),
        Ok(Outgoing::Ready(o)) => pairwise(o).contains(&b2),
        _ => false,
    };
    assert!(tells, "the new identity at b2 is not told: {sent:?}");
}
