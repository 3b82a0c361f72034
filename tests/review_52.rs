//! Review 52: stop 48's either-kind store check (`EnvelopeId::of_either_kind`, the driver's
//! `stored` lookup before `AskAgain`, the new `driver::ask_again` for held envelopes),
//! attacked by the relay (drop, hold back, reorder, replay, re-wrap a salt as the other kind,
//! forge), with Mallory's account turning the read ring (2000 messages). The app is modelled
//! as the guide says: it stores each message read under the envelope's id and under
//! `resent`, and answers `stored` for messages read only.
//!
//! Attacked: message loss of genuine, never-read messages through the new check (re-wraps
//! of held messages in both directions, both asks at once, own copies of a companion, a store
//! that wrongly counts placeholders); replays the fix still misses (re-wraps read through an
//! answer and their genuine copies, before and after the ring turned; late answers; re-asks
//! of kept envelopes); `ask_again`'s contract (nothing changed on a stored hit, the retry
//! limit, reserved reasons); bad input to `of_either_kind` and `ask_again`.
//!
//! Pinned (passing):
//! - a 1:1 message read through the answer to its salt re-wrapped as a held group envelope,
//!   and a group message read through the answer to its pairwise re-wrap, are read once: their
//!   genuine copies and the re-wraps are not read again, before or after the ring turned, and
//!   the carrier envelope still reads
//!   (`a_direct_message_read_through_a_group_rewrap_is_not_read_again_from_its_genuine_copy`,
//!   `a_group_message_read_through_a_pairwise_rewrap_is_not_read_again_from_its_genuine_copy`,
//!   `..._stays_read_after_the_ring_turned`);
//! - a held group message asked for both ways (`ask_again` and the driver's ask of its
//!   pairwise re-wrap), both answered, is read once (`a_held_group_message_asked_both_ways_is_read_once`);
//! - after the genuine copy was read and the ring turned, a late answer to the first ask is
//!   not read, the tampered copy redelivered is dropped unasked, and a re-ask through
//!   `driver::ask_again` is `Duplicate` with nothing changed
//!   (`a_late_answer_or_a_driver_re_ask_after_the_genuine_copy_was_read_reads_nothing`);
//! - `ask_again` on a stored hit under either kind's id, for any reason, is `Duplicate(id)`
//!   with the device byte-identical and no changes pending; `Other(3)` is `ReservedReason`
//!   unchanged (`a_stored_hit_under_either_kind_changes_nothing`); after three asks it is
//!   `Dropped(RetryLimit)` unchanged, also for the other kind's re-wrap
//!   (`ask_again_stops_at_the_retry_limit_unchanged`);
//! - garbage, retry requests, envelopes of the device's own or to another device, and every
//!   truncation and many byte flips of both kinds: `of_either_kind` always names
//!   `EnvelopeId::of` the bytes (alone for non-sealed bytes), nothing panics, and `ask_again`
//!   changes nothing unless it asks
//!   (`bad_input_is_named_and_refused_without_a_panic_or_a_change`);
//! - a companion's own copy re-wrapped as its held group message after the ring turned is
//!   `Duplicate` from `ask_again` (`an_own_copy_rewrapped_as_a_held_group_message_is_not_asked_for`);
//! - an app whose `stored` wrongly counts placeholders has a held, never-read group message
//!   called `Duplicate` by `ask_again` (its pairwise re-wrap's placeholder names it), but the
//!   re-ask of the envelope kept for the placeholder still reads it once
//!   (`a_store_counting_placeholders_still_recovers_the_message_by_its_kept_envelope`).
//!
//! Findings (each failed on the reviewed commit; 1 is fixed at stop 48: `request_retry` refuses
//! a pending retry that is done as `Duplicate`, and the re-ask docs point at `driver::ask_again`):
//! 1. `a_re_ask_of_a_kept_envelope_after_its_genuine_copy_was_read_is_not_read_again` (low:
//!    double read, the root of review 45's 3 and 4 on a path the fix left out): a tampered copy
//!    is asked for (`AskAgain`, the relay drops the request), then the genuine copy is read.
//!    No answer with `resent` was read, so the app keeps the envelope and, as
//!    `Inbound::AskAgain`'s doc says, re-asks it with `Device::request_retry`, which checks
//!    no store. Within the ring the device refuses (`Duplicate`); after Mallory's flood it
//!    asks, the pending retry marked done by the genuine read is reset, the sender answers
//!    and the message is read a second time.
//!    `a_re_ask_of_a_held_group_message_read_since_is_not_read_again` is the same through the
//!    guide's `Hold` row (`ask_again`, then the key came and the message read). Fix: have
//!    `request_retry` refuse (`Duplicate { envelope_id: failed }`) a pending retry that is
//!    `done` (answered or genuine copy read: the message was read), and point
//!    `Inbound::AskAgain`'s doc and the guide's "Asking again" at `driver::ask_again` (with
//!    the store check) for re-asks. Related to SECURITY.md's read-ring limit ("an app that
//!    then asked again for it would be shown it twice... check their own store by
//!    `EnvelopeId` before asking again"), but the re-ask's own docs name the unchecked call,
//!    and here the device itself knows the message was read (its pending retry is done).
//!
//! Info (no test fails): the stepper answered a stored hit with `Dropped(error)` while
//! `ask_again` answers `Duplicate(id)` (both acknowledged, nothing shown): since stop 49 the
//! stepper answers `Duplicate(id)` too (`driver::a_receive_holds_asks_again_or_drops_as_the_guide_says`);
//! the bindings' `ask_again(.., stored: bool)` reports the first (pairwise) id whichever kind
//! the store held.

mod support;

use ratchetry::devices::DeviceAddress;
use ratchetry::driver::{self, Inbound, ReceiveStep, Receiving};
use ratchetry::fanout::{Device, EnvelopeId, Received, RetryReason};
use ratchetry::group::GroupId;
use ratchetry::{Error, FanoutError};
use support::{GROUP_SALT, World, body, tampered};

const GROUP: GroupId = GroupId([52; 32]);

/// An app's message store, as the guide says: every message read is stored under the id of
/// the envelope it was read from, and a resend under `resent` (the placeholder it replaces)
/// too. `shown` is what the user saw, in order.
#[derive(Default)]
struct App {
    stored: Vec<EnvelopeId>,
    shown: Vec<Vec<u8>>,
}

impl App {
    fn holds(&self, id: &EnvelopeId) -> bool {
        self.stored.contains(id)
    }

    /// What the app does with a driver outcome for `envelope`.
    fn keep(&mut self, envelope: &[u8], inbound: &Inbound) {
        if let Inbound::Read(r) = inbound {
            self.stored.push(EnvelopeId::of(envelope));
            if let Received::Direct {
                resent: Some(id), ..
            }
            | Received::OwnCopy {
                resent: Some(id), ..
            }
            | Received::Group {
                resent: Some(id), ..
            } = r
            {
                self.stored.push(*id);
            }
            if let Some(b) = body(r) {
                self.shown.push(b.to_vec());
            }
        }
    }

    fn times_shown(&self, text: &[u8]) -> usize {
        self.shown.iter().filter(|b| b.as_slice() == text).count()
    }
}

/// `to` receives `envelope` through the driver's stepper, its app's store consulted and
/// updated.
fn step(w: &mut World, app: &mut App, to: DeviceAddress, envelope: &[u8]) -> Inbound {
    let now = w.now;
    let mut device = w.devices.remove(&to).unwrap();
    let got =
        match Receiving::new().step(&mut device, &mut w.rng, now, envelope, |id| app.holds(id)) {
            Ok(ReceiveStep::Done(inbound)) => inbound,
            other => panic!("{other:?}"),
        };
    w.devices.insert(to, device);
    w.persist(to);
    app.keep(envelope, &got);
    got
}

/// `to` asks for the held `envelope` the guide's way (`driver::ask_again`).
fn ask_again(
    w: &mut World,
    app: &App,
    to: DeviceAddress,
    envelope: &[u8],
    reason: RetryReason,
) -> Inbound {
    let now = w.now;
    let mut device = w.devices.remove(&to).unwrap();
    let got = driver::ask_again(&mut device, &mut w.rng, now, envelope, reason, |id| {
        app.holds(id)
    });
    w.devices.insert(to, device);
    w.persist(to);
    got
}

/// `sender` takes `request` and answers it with `text`; `to` steps every envelope of the
/// answer addressed to it.
fn answered(
    w: &mut World,
    app: &mut App,
    sender: DeviceAddress,
    to: DeviceAddress,
    request: &[u8],
    text: &[u8],
) -> Vec<Inbound> {
    let Ok(Received::RetryRequest(req)) = w.receive(sender, request) else {
        panic!("the sender takes the request")
    };
    let answer = w.answer(sender, &req, text);
    let mine: Vec<Vec<u8>> = answer
        .envelopes
        .iter()
        .filter(|(d, _)| *d == to)
        .map(|(_, e)| e.clone())
        .chain(
            answer
                .group
                .iter()
                .filter(|(_, ds)| ds.contains(&to))
                .map(|(e, _)| e.clone()),
        )
        .collect();
    mine.iter().map(|e| step(w, app, to, e)).collect()
}

/// Mallory's flood: `MAX_REMEMBERED_MESSAGE_IDS` messages read by `to`, turning its ring.
fn turn_the_ring(w: &mut World, app: &mut App, m1: DeviceAddress, to: DeviceAddress) {
    for i in 0..ratchetry::fanout::MAX_REMEMBERED_MESSAGE_IDS {
        let o = w.send(m1, to.account, format!("flood {i}").as_bytes());
        let e = World::envelope_to(&o, to);
        assert!(matches!(step(w, app, to, &e), Inbound::Read(_)));
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Availability and exactly-once of genuine, never-read messages re-wrapped as the other kind
// ---------------------------------------------------------------------------------------------

/// Alice's 1:1 message `direct` is held back by the relay. The relay puts its salt in a group
/// envelope of Alice's whose key it withholds: `Hold`; the key never comes, so the app asks
/// the guide's way (`driver::ask_again`, nothing stored: an honest ask). Alice finds the 1:1
/// message by its salt and answers; Bob reads it (`resent` names the group envelope). Then
/// the relay delivers the genuine 1:1 envelope: it must not be read a second time.
#[test]
fn a_direct_message_read_through_a_group_rewrap_is_not_read_again_from_its_genuine_copy() {
    let (mut w, [alice, bob], [a1, b1]) = World::phones::<2>("r52 direct via group");
    let mut app = App::default();
    let warm = w.send(a1, bob, b"warm");
    step(&mut w, &mut app, b1, &World::envelope_to(&warm, b1));
    let held = World::envelope_to(&w.send(a1, bob, b"direct"), b1);
    let salt = w.pairwise_salt(b1, &held);
    w.set_members(GROUP, &[alice, bob]);
    let g = w.send_group(a1, GROUP, b"group");
    let mut forged = World::group_envelope_for(&g, b1);
    forged[GROUP_SALT].copy_from_slice(&salt);
    assert_eq!(
        step(&mut w, &mut app, b1, &forged),
        Inbound::Hold { from: a1 }
    );
    let Inbound::AskAgain { to, request } =
        ask_again(&mut w, &app, b1, &forged, RetryReason::SenderKeyMissing)
    else {
        panic!("an honest ask")
    };
    assert_eq!(to, a1);
    answered(&mut w, &mut app, a1, b1, &request, b"direct");
    assert_eq!(app.times_shown(b"direct"), 1, "read through the answer");
    let genuine = step(&mut w, &mut app, b1, &held);
    assert!(!matches!(genuine, Inbound::Read(_)), "{genuine:?}");
    assert_eq!(app.times_shown(b"direct"), 1, "read twice");
}

/// The mirror (review 43b's re-wrap): Alice's group message is held (its key withheld); the
/// relay puts its salt in a pairwise envelope of Alice's; the driver asks (nothing stored)
/// and Alice answers with the group message. The genuine group envelope, once its key comes,
/// is not read again, and the carrier pairwise envelope still reads.
#[test]
fn a_group_message_read_through_a_pairwise_rewrap_is_not_read_again_from_its_genuine_copy() {
    let (mut w, [alice, bob], [a1, b1]) = World::phones::<2>("r52 group via pairwise");
    let mut app = App::default();
    w.set_members(GROUP, &[alice, bob]);
    let g = w.send_group(a1, GROUP, b"held");
    let genuine = World::group_envelope_for(&g, b1);
    assert_eq!(
        step(&mut w, &mut app, b1, &genuine),
        Inbound::Hold { from: a1 }
    );
    let carrier = World::envelope_to(&w.send(a1, bob, b"carrier"), b1);
    let forged = w.with_pairwise_salt(b1, &carrier, &genuine[GROUP_SALT]);
    let Inbound::AskAgain { to, request } = step(&mut w, &mut app, b1, &forged) else {
        panic!("the driver asks for the re-wrap")
    };
    assert_eq!(to, a1);
    answered(&mut w, &mut app, a1, b1, &request, b"held");
    assert_eq!(app.times_shown(b"held"), 1, "read through the answer");
    // The key, then the genuine envelope.
    for (d, e) in &g.envelopes {
        if *d == b1 {
            step(&mut w, &mut app, b1, e);
        }
    }
    let again = step(&mut w, &mut app, b1, &genuine);
    assert!(!matches!(again, Inbound::Read(_)), "{again:?}");
    assert_eq!(app.times_shown(b"held"), 1);
    assert!(matches!(
        step(&mut w, &mut app, b1, &carrier),
        Inbound::Read(_)
    ));
    assert_eq!(app.times_shown(b"carrier"), 1);
}

/// Both asks at once: the held group message asked for with `ask_again` and its pairwise
/// re-wrap asked for by the driver; Alice answers both, in reverse order. One read.
#[test]
fn a_held_group_message_asked_both_ways_is_read_once() {
    let (mut w, [alice, bob], [a1, b1]) = World::phones::<2>("r52 asked both ways");
    let mut app = App::default();
    w.set_members(GROUP, &[alice, bob]);
    let g = w.send_group(a1, GROUP, b"held");
    let genuine = World::group_envelope_for(&g, b1);
    assert_eq!(
        step(&mut w, &mut app, b1, &genuine),
        Inbound::Hold { from: a1 }
    );
    let Inbound::AskAgain { request: first, .. } =
        ask_again(&mut w, &app, b1, &genuine, RetryReason::SenderKeyMissing)
    else {
        panic!("asked")
    };
    let carrier = World::envelope_to(&w.send(a1, bob, b"carrier"), b1);
    let forged = w.with_pairwise_salt(b1, &carrier, &genuine[GROUP_SALT]);
    let second = match step(&mut w, &mut app, b1, &forged) {
        Inbound::AskAgain { request, .. } => Some(request),
        _ => None,
    };
    if let Some(second) = second {
        answered(&mut w, &mut app, a1, b1, &second, b"held");
    }
    answered(&mut w, &mut app, a1, b1, &first, b"held");
    for (d, e) in &g.envelopes {
        if *d == b1 {
            step(&mut w, &mut app, b1, e);
        }
    }
    step(&mut w, &mut app, b1, &genuine);
    assert_eq!(app.times_shown(b"held"), 1);
    // The held envelope, asked for again now, is the message read.
    assert!(matches!(
        ask_again(&mut w, &app, b1, &genuine, RetryReason::SenderKeyMissing),
        Inbound::Duplicate(_)
    ));
}

/// Test 1 with the ring turned before the genuine copy comes: Alice's 1:1 message, read
/// through the answer to its salt re-wrapped as a held group envelope; Mallory's flood; then
/// the genuine 1:1 envelope and the forged group one again (its key delivered at last). None
/// is read a second time.
#[test]
fn a_direct_message_read_through_a_group_rewrap_stays_read_after_the_ring_turned() {
    let (mut w, [alice, bob, _mallory], [a1, b1, m1]) = World::phones::<3>("r52 via group ring");
    let mut app = App::default();
    let warm = w.send(a1, bob, b"warm");
    step(&mut w, &mut app, b1, &World::envelope_to(&warm, b1));
    let held = World::envelope_to(&w.send(a1, bob, b"direct"), b1);
    let salt = w.pairwise_salt(b1, &held);
    w.set_members(GROUP, &[alice, bob]);
    let g = w.send_group(a1, GROUP, b"group");
    let mut forged = World::group_envelope_for(&g, b1);
    forged[GROUP_SALT].copy_from_slice(&salt);
    assert_eq!(
        step(&mut w, &mut app, b1, &forged),
        Inbound::Hold { from: a1 }
    );
    let Inbound::AskAgain { request, .. } =
        ask_again(&mut w, &app, b1, &forged, RetryReason::SenderKeyMissing)
    else {
        panic!("an honest ask")
    };
    answered(&mut w, &mut app, a1, b1, &request, b"direct");
    assert_eq!(app.times_shown(b"direct"), 1);
    turn_the_ring(&mut w, &mut app, m1, b1);
    let genuine = step(&mut w, &mut app, b1, &held);
    assert!(!matches!(genuine, Inbound::Read(_)), "{genuine:?}");
    for (d, e) in &g.envelopes {
        if *d == b1 {
            step(&mut w, &mut app, b1, e);
        }
    }
    let again = step(&mut w, &mut app, b1, &forged);
    assert!(!matches!(again, Inbound::Read(_)), "{again:?}");
    if matches!(again, Inbound::Hold { .. }) {
        assert!(matches!(
            ask_again(&mut w, &app, b1, &forged, RetryReason::SenderKeyMissing),
            Inbound::Duplicate(_)
        ));
    }
    assert_eq!(app.times_shown(b"direct"), 1, "read twice");
}

/// Test 2 with the ring turned: the group message read through the answer to its pairwise
/// re-wrap; Mallory's flood; then its key and the genuine group envelope, and the re-wrap
/// again. None is read a second time.
#[test]
fn a_group_message_read_through_a_pairwise_rewrap_stays_read_after_the_ring_turned() {
    let (mut w, [alice, bob, mallory], [a1, b1, m1]) = World::phones::<3>("r52 via pw ring");
    let _ = mallory;
    let mut app = App::default();
    w.set_members(GROUP, &[alice, bob]);
    let g = w.send_group(a1, GROUP, b"held");
    let genuine = World::group_envelope_for(&g, b1);
    assert_eq!(
        step(&mut w, &mut app, b1, &genuine),
        Inbound::Hold { from: a1 }
    );
    let carrier = World::envelope_to(&w.send(a1, bob, b"carrier"), b1);
    let forged = w.with_pairwise_salt(b1, &carrier, &genuine[GROUP_SALT]);
    let Inbound::AskAgain { request, .. } = step(&mut w, &mut app, b1, &forged) else {
        panic!("the driver asks for the re-wrap")
    };
    answered(&mut w, &mut app, a1, b1, &request, b"held");
    assert_eq!(app.times_shown(b"held"), 1);
    turn_the_ring(&mut w, &mut app, m1, b1);
    for (d, e) in &g.envelopes {
        if *d == b1 {
            step(&mut w, &mut app, b1, e);
        }
    }
    for e in [&genuine, &forged] {
        let again = step(&mut w, &mut app, b1, e);
        assert!(!matches!(again, Inbound::Read(_)), "{again:?}");
    }
    assert_eq!(app.times_shown(b"held"), 1, "read twice");
    assert!(matches!(
        step(&mut w, &mut app, b1, &carrier),
        Inbound::Read(_)
    ));
}

// ---------------------------------------------------------------------------------------------
// 2. Replays of a message read long ago
// ---------------------------------------------------------------------------------------------

/// Alice's 1:1 message reaches Bob first as a tampered copy: the driver asks (the relay drops
/// the request). The genuine copy is read. Mallory's flood turns Bob's ring. The app's timer
/// fires: no answer was read for the envelope it kept, so it asks again as
/// `Inbound::AskAgain`'s doc said before stop 48's fix, with `Device::request_retry`. Fixed:
/// the pending retry the genuine read marked done makes the re-ask `Duplicate`.
#[test]
fn a_re_ask_of_a_kept_envelope_after_its_genuine_copy_was_read_is_not_read_again() {
    let (mut w, [alice, bob, _mallory], [a1, b1, m1]) = World::phones::<3>("r52 re-ask");
    let _ = alice;
    let mut app = App::default();
    let genuine = World::envelope_to(&w.send(a1, bob, b"once"), b1);
    let broken = tampered(&genuine);
    let Inbound::AskAgain { to, .. } = step(&mut w, &mut app, b1, &broken) else {
        panic!("asked")
    };
    assert_eq!(to, a1);
    assert!(matches!(
        step(&mut w, &mut app, b1, &genuine),
        Inbound::Read(_)
    ));
    // Within the ring, the device itself refuses the re-ask.
    let now = w.now;
    assert!(matches!(
        w.device(b1).clone().request_retry(
            &mut w.rng.clone(),
            now,
            &broken,
            RetryReason::NoSession
        ),
        Err(Error::Fanout(FanoutError::Duplicate { .. }))
    ));
    turn_the_ring(&mut w, &mut app, m1, b1);
    let again = w.request_retry(b1, &broken, RetryReason::NoSession);
    if let Ok((to, request)) = again {
        assert_eq!(to, a1);
        answered(&mut w, &mut app, a1, b1, &request, b"once");
    }
    assert_eq!(app.times_shown(b"once"), 1, "read twice");
}

/// The finding through the guide's `Hold` row: Alice's group message is held (its key late);
/// the app asks with `driver::ask_again` (the relay drops the request); the key comes and the
/// message is read. Mallory's flood turns the ring; the app's timer re-asks the kept envelope
/// as `Inbound::AskAgain`'s doc said (`Device::request_retry`, no store check). Fixed as the
/// finding above: the done pending retry makes the re-ask `Duplicate`.
#[test]
fn a_re_ask_of_a_held_group_message_read_since_is_not_read_again() {
    let (mut w, [alice, bob, _mallory], [a1, b1, m1]) = World::phones::<3>("r52 re-ask held");
    let mut app = App::default();
    w.set_members(GROUP, &[alice, bob]);
    let g = w.send_group(a1, GROUP, b"held");
    let genuine = World::group_envelope_for(&g, b1);
    assert_eq!(
        step(&mut w, &mut app, b1, &genuine),
        Inbound::Hold { from: a1 }
    );
    let Inbound::AskAgain { .. } =
        ask_again(&mut w, &app, b1, &genuine, RetryReason::SenderKeyMissing)
    else {
        panic!("asked")
    };
    for (d, e) in &g.envelopes {
        if *d == b1 {
            step(&mut w, &mut app, b1, e);
        }
    }
    assert!(matches!(
        step(&mut w, &mut app, b1, &genuine),
        Inbound::Read(_)
    ));
    turn_the_ring(&mut w, &mut app, m1, b1);
    if let Ok((to, request)) = w.request_retry(b1, &genuine, RetryReason::NoSession) {
        assert_eq!(to, a1);
        answered(&mut w, &mut app, a1, b1, &request, b"held");
    }
    assert_eq!(app.times_shown(b"held"), 1, "read twice");
}

/// The same re-ask through `driver::ask_again`: the store holds the message under the kept
/// envelope's id, `Duplicate`, nothing asked and nothing changed. And the first request, if
/// the relay delivers it late, is answered in vain: its answer is not read.
#[test]
fn a_late_answer_or_a_driver_re_ask_after_the_genuine_copy_was_read_reads_nothing() {
    let (mut w, [_alice, bob, _mallory], [a1, b1, m1]) = World::phones::<3>("r52 late answer");
    let mut app = App::default();
    let genuine = World::envelope_to(&w.send(a1, bob, b"once"), b1);
    let broken = tampered(&genuine);
    let Inbound::AskAgain { request, .. } = step(&mut w, &mut app, b1, &broken) else {
        panic!("asked")
    };
    assert!(matches!(
        step(&mut w, &mut app, b1, &genuine),
        Inbound::Read(_)
    ));
    turn_the_ring(&mut w, &mut app, m1, b1);
    let before = w.device(b1).to_bytes();
    assert_eq!(
        ask_again(&mut w, &app, b1, &broken, RetryReason::NoSession),
        Inbound::Duplicate(EnvelopeId::of(&genuine))
    );
    assert_eq!(*before, *w.device(b1).to_bytes());
    let late = answered(&mut w, &mut app, a1, b1, &request, b"once");
    assert!(
        late.iter().all(|r| !matches!(r, Inbound::Read(_))),
        "{late:?}"
    );
    assert_eq!(app.times_shown(b"once"), 1);
    // The broken copy redelivered: dropped unasked.
    assert!(matches!(
        step(&mut w, &mut app, b1, &broken),
        Inbound::Dropped(_)
    ));
}

// ---------------------------------------------------------------------------------------------
// 3. `ask_again`'s contract
// ---------------------------------------------------------------------------------------------

/// A held group message and a pairwise one, each asked for with its message stored under
/// either kind's id: `Duplicate` with the id found, the device byte-identical and nothing
/// pending; not stored, it is asked for.
#[test]
fn a_stored_hit_under_either_kind_changes_nothing() {
    let (mut w, [alice, bob], [a1, b1]) = World::phones::<2>("r52 stored hit");
    w.set_members(GROUP, &[alice, bob]);
    let g = World::group_envelope_for(&w.send_group(a1, GROUP, b"held"), b1);
    let p = tampered(&World::envelope_to(&w.send(a1, bob, b"direct"), b1));
    w.persist(b1);
    for env in [&g, &p] {
        let ids = EnvelopeId::of_either_kind(env);
        assert_eq!(ids.len(), 2);
        assert!(ids.contains(&EnvelopeId::of(env)));
        for id in &ids {
            let before = w.device(b1).to_bytes();
            let now = w.now;
            let d = w.devices.get_mut(&b1).unwrap();
            for reason in [
                RetryReason::SenderKeyMissing,
                RetryReason::NoSession,
                RetryReason::AuthenticationFailed,
            ] {
                let got = driver::ask_again(d, &mut w.rng, now, env, reason, |s| s == id);
                assert_eq!(got, Inbound::Duplicate(*id));
                assert!(!d.has_changes());
            }
            assert_eq!(*before, *w.device(b1).to_bytes());
        }
    }
    // An app's reason numbered as a named one: refused before anything, stored or not.
    let before = w.device(b1).to_bytes();
    for hit in [false, true] {
        let now = w.now;
        let d = w.devices.get_mut(&b1).unwrap();
        let got = driver::ask_again(d, &mut w.rng, now, &g, RetryReason::Other(3), |_| hit);
        if hit {
            assert!(matches!(got, Inbound::Duplicate(_)), "{got:?}");
        } else {
            assert_eq!(got, Inbound::Dropped(FanoutError::ReservedReason(3).into()));
        }
        assert!(!d.has_changes());
    }
    assert_eq!(*before, *w.device(b1).to_bytes());
    let app = App::default();
    assert!(matches!(
        ask_again(&mut w, &app, b1, &g, RetryReason::SenderKeyMissing),
        Inbound::AskAgain { to, .. } if to == a1
    ));
}

/// A held envelope asked for `MAX_RETRY_ATTEMPTS` times is then `Dropped(RetryLimit)`, with
/// nothing changed; the pairwise re-wrap of its salt shares the count (no fourth ask).
#[test]
fn ask_again_stops_at_the_retry_limit_unchanged() {
    let (mut w, [alice, bob], [a1, b1]) = World::phones::<2>("r52 limit");
    let app = App::default();
    w.set_members(GROUP, &[alice, bob]);
    let g = World::group_envelope_for(&w.send_group(a1, GROUP, b"held"), b1);
    for _ in 0..ratchetry::fanout::MAX_RETRY_ATTEMPTS {
        assert!(matches!(
            ask_again(&mut w, &app, b1, &g, RetryReason::SenderKeyMissing),
            Inbound::AskAgain { .. }
        ));
    }
    let carrier = World::envelope_to(&w.send(a1, bob, b"carrier"), b1);
    let forged = w.with_pairwise_salt(b1, &carrier, &g[GROUP_SALT]);
    w.persist(b1);
    let before = w.device(b1).to_bytes();
    for (env, reason) in [
        (&g, RetryReason::SenderKeyMissing),
        (&g, RetryReason::NoSession),
        (&forged, RetryReason::AuthenticationFailed),
    ] {
        let now = w.now;
        let d = w.devices.get_mut(&b1).unwrap();
        let got = driver::ask_again(d, &mut w.rng, now, env, reason, |_| false);
        assert_eq!(got, Inbound::Dropped(FanoutError::RetryLimit.into()));
        assert!(!d.has_changes());
    }
    assert_eq!(*before, *w.device(b1).to_bytes());
}

// ---------------------------------------------------------------------------------------------
// 4. Bad input
// ---------------------------------------------------------------------------------------------

/// Garbage, a retry request, an envelope of the device's own, one addressed to another device,
/// and every truncation and many single-byte changes of a pairwise and a group envelope:
/// `of_either_kind` never panics, names one id or two, one of them always `EnvelopeId::of`
/// the bytes (one alone for bytes that are no sealed message); `ask_again` never panics, and
/// whenever it asks nothing (`Dropped`, `Duplicate`) the device is byte-identical with
/// nothing pending.
#[test]
fn bad_input_is_named_and_refused_without_a_panic_or_a_change() {
    let mut w = World::new("r52 bad input");
    let alice = w.account(1);
    let bob = w.account(0);
    w.publish_all();
    w.set_members(GROUP, &[alice, bob]);
    let (a1, a2, b1) = (
        World::addr(alice, 1),
        World::addr(alice, 2),
        World::addr(bob, 1),
    );
    let o = w.send(a1, bob, b"direct");
    let p = World::envelope_to(&o, b1);
    let own = World::envelope_to(&w.send(b1, alice, b"own"), a1);
    let to_a2 = World::envelope_to(&w.send(b1, alice, b"to a2"), a2);
    let g = World::group_envelope_for(&w.send_group(a1, GROUP, b"held"), b1);
    let (_, request) = w
        .device(b1)
        .clone()
        .request_retry(&mut w.rng, w.now, &tampered(&p), RetryReason::NoSession)
        .unwrap();
    w.persist(b1);
    let mut inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"not an envelope".to_vec(),
        vec![0xff; 5000],
        request.clone(),
        request[..request.len() - 1].to_vec(),
    ];
    for env in [&p, &g] {
        for n in (0..env.len()).filter(|n| *n < 160 || n % 23 == 0) {
            inputs.push(env[..n].to_vec());
        }
        for i in (0..env.len()).filter(|i| *i < 120 || i % 41 == 0) {
            let mut c = env.to_vec();
            c[i] ^= 0x80;
            inputs.push(c);
        }
    }
    let before = w.device(b1).to_bytes();
    let now = w.now;
    let mut asked = 0;
    for x in &inputs {
        let ids = EnvelopeId::of_either_kind(x);
        assert!(ids.contains(&EnvelopeId::of(x)), "{x:02x?}");
        assert!(matches!(ids.len(), 1 | 2));
        let mut d = Device::from_bytes(&before).unwrap();
        let _ = d.take_changes(&mut w.rng);
        let loaded = d.to_bytes();
        let got = driver::ask_again(
            &mut d,
            &mut w.rng,
            now,
            x,
            RetryReason::SenderKeyMissing,
            |_| false,
        );
        match got {
            Inbound::AskAgain { .. } => asked += 1,
            Inbound::Dropped(_) | Inbound::Duplicate(_) => {
                assert!(!d.has_changes(), "{got:?}");
                assert!(*loaded == *d.to_bytes(), "{got:?} changed the device");
            }
            other => panic!("{other:?}"),
        }
    }
    // Only bytes that still name a message of Alice's to this device are asked for.
    assert!(asked < inputs.len() / 2, "{asked}");
    for x in [&request, &b"not an envelope".to_vec()] {
        assert_eq!(EnvelopeId::of_either_kind(x), vec![EnvelopeId::of(x)]);
    }
    let d = w.devices.get_mut(&b1).unwrap();
    for (x, refusal) in [
        (&own[..], FanoutError::NotForThisDevice),
        (&to_a2[..], FanoutError::NotForThisDevice),
        (&request[..], FanoutError::NotForThisDevice),
    ] {
        let got = driver::ask_again(d, &mut w.rng, now, x, RetryReason::NoSession, |_| false);
        let Inbound::Dropped(e) = got else {
            panic!("{got:?}")
        };
        assert!(
            matches!(&e, Error::Fanout(f) if *f == refusal) || matches!(e, Error::Decode(_)),
            "{e:?}"
        );
    }
    assert!(!d.has_changes());
    assert_eq!(*before, *w.device(b1).to_bytes());
}

// ---------------------------------------------------------------------------------------------
// 5. Companions, and a store that counts placeholders
// ---------------------------------------------------------------------------------------------

/// Bob's laptop writes to Alice; his phone reads the own copy. Mallory's flood turns the
/// phone's ring; the relay puts the own copy's salt in a group envelope of the laptop's whose
/// key it withholds. `Hold`, and the guide's ask (`ask_again`) finds it stored: `Duplicate`,
/// nothing asked, nothing changed.
#[test]
fn an_own_copy_rewrapped_as_a_held_group_message_is_not_asked_for() {
    let mut w = World::new("r52 own copy");
    let alice = w.account(0);
    let bob = w.account(1);
    let mallory = w.account(0);
    w.publish_all();
    let (b1, b2, m1) = (
        World::addr(bob, 1),
        World::addr(bob, 2),
        World::addr(mallory, 1),
    );
    let mut app = App::default();
    let own = World::envelope_to(&w.send(b2, alice, b"own"), b1);
    let salt = w.pairwise_salt(b1, &own);
    assert!(matches!(
        step(&mut w, &mut app, b1, &own),
        Inbound::Read(Received::OwnCopy { .. })
    ));
    turn_the_ring(&mut w, &mut app, m1, b1);
    w.set_members(GROUP, &[alice, bob]);
    let mut forged = World::group_envelope_for(&w.send_group(b2, GROUP, b"group"), b1);
    forged[GROUP_SALT].copy_from_slice(&salt);
    assert_eq!(
        step(&mut w, &mut app, b1, &forged),
        Inbound::Hold { from: b2 }
    );
    let before = w.device(b1).to_bytes();
    assert_eq!(
        ask_again(&mut w, &app, b1, &forged, RetryReason::SenderKeyMissing),
        Inbound::Duplicate(EnvelopeId::of(&own))
    );
    assert_eq!(*before, *w.device(b1).to_bytes());
    // Without the store's answer the device would ask, and the laptop would answer it.
    assert!(matches!(
        driver::ask_again(
            &mut w.device(b1).clone(),
            &mut w.rng.clone(),
            w.now,
            &forged,
            RetryReason::SenderKeyMissing,
            |_| false,
        ),
        Inbound::AskAgain { to, .. } if to == b2
    ));
    assert_eq!(app.times_shown(b"own"), 1);
}

/// Misuse the docs warn of: an app whose `stored` also answers for placeholders. The relay
/// re-wraps a held (never read) group message's salt as pairwise; the driver asks, a
/// placeholder is stored under the re-wrap's id, and the relay drops the answer. The held
/// envelope's `ask_again` then says `Duplicate` (the placeholder names it as the other kind),
/// so the app lets it go; the message is still not lost: the re-ask of the envelope it kept
/// for the placeholder is answered, and read once.
#[test]
fn a_store_counting_placeholders_still_recovers_the_message_by_its_kept_envelope() {
    let (mut w, [alice, bob], [a1, b1]) = World::phones::<2>("r52 placeholder");
    let mut app = App::default();
    w.set_members(GROUP, &[alice, bob]);
    let g = w.send_group(a1, GROUP, b"held");
    let genuine = World::group_envelope_for(&g, b1);
    assert_eq!(
        step(&mut w, &mut app, b1, &genuine),
        Inbound::Hold { from: a1 }
    );
    let carrier = World::envelope_to(&w.send(a1, bob, b"carrier"), b1);
    let forged = w.with_pairwise_salt(b1, &carrier, &genuine[GROUP_SALT]);
    let Inbound::AskAgain { .. } = step(&mut w, &mut app, b1, &forged) else {
        panic!("asked")
    };
    app.stored.push(EnvelopeId::of(&forged)); // the placeholder, counted as stored
    assert!(matches!(
        ask_again(&mut w, &app, b1, &genuine, RetryReason::SenderKeyMissing),
        Inbound::Duplicate(id) if id == EnvelopeId::of(&forged)
    ));
    let (to, request) = w
        .request_retry(b1, &forged, RetryReason::NoSession)
        .unwrap();
    assert_eq!(to, a1);
    answered(&mut w, &mut app, a1, b1, &request, b"held");
    assert_eq!(app.times_shown(b"held"), 1);
}
