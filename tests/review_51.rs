//! Review 51: commit 7700aec, "An expired companion refuses everything as
//! ThisDeviceExpired". `Device::own_list` now refuses with `ThisDeviceExpired` where the held
//! own list names this device with its identity key but its entry expired, and with
//! `ThisDeviceInactive` only where it does not name it (unlinked) or names its id with another
//! identity; every operation needing an active device refuses that way, and the driver
//! (`receive`, `Receiving::step`) keeps an envelope refused as expired (`AwaitList` for the
//! own account) once a fetch of the own list brings nothing newer.
//!
//! Attacked, with a malicious relay (withholding, reordering, replaying, serving stale or any
//! previously signed list) and an account key holder where noted:
//! - making an unlinked device (or one whose id carries another identity) pass for expired,
//!   so that it keeps envelopes or reads: lists from before the unlink served late (refused
//!   as rollbacks), a relink of the same identity under a new id, a rogue list giving the id
//!   another identity (active or expired) or the identity another id, a primary restored from
//!   a backup and resynced from a stale list the relay chose;
//! - an expired device doing anything: receiving every kind (pairwise, group, sender key,
//!   retry request, retry answer), sending, withholding, answering message and call key
//!   retries; each refusal byte-identical with no unit;
//! - reading once renewed: every kept kind, in the worst order (a group message before its
//!   key), across restarts from records, through the driver and the stepper, then
//!   `Duplicate`; a renewal followed by an unlink; an account not followed; a restored
//!   expired companion renewed by a primary whose clock is ahead (`AwaitingOwnList` and
//!   `OWN_LIST_CLOCK_ALLOWANCE_MS`, at and past the edge);
//! - the clock: an entry expiring exactly at `now` at sender and receiver, the clock moving
//!   back after a refusal;
//! - the driver's bounds: a newer own list that still expires the device, one newer genuine
//!   list per fetch (all expiring it), `NotForThisDevice` first.
//! - f44a464 (slice wipes, constant-time `Record` equality) was read, not attacked further:
//!   nothing found.
//!
//! Found:
//! - **Low: the send driver does not fetch the own list on `ThisDeviceExpired`**
//!   (`the_send_driver_fetches_the_own_list_of_an_expired_companion`, ignored). The receive
//!   driver fetches the own list on `ThisDeviceExpired` and reads once it renews the device;
//!   `driver::send` returns `DriveError::Device(ThisDeviceExpired)` after no fetch, though
//!   the module says it follows the guide's table, whose row for `ThisDeviceExpired` says to
//!   fetch the own list and `update_device_list`. A companion whose renewal the relay has (a
//!   stale replica earlier, or offline across its expiry) cannot send through the driver
//!   until some receive happens to fetch its list. Nothing is sealed under the expired list
//!   either way (`the_send_driver_never_sends_under_an_expired_own_list`). Fix: in
//!   `driver::send`, on `ThisDeviceExpired` from `op`, follow the own account once (as for
//!   `NeedDeviceLists`) and try `op` again within `MAX_ROUNDS`, returning the refusal if the
//!   own list did not change.
//! - **Info: `Event::ThisDeviceRemoved` still means "unlinked or expired"**
//!   (`a_newer_list_still_expiring_the_companion_is_taken_and_the_envelope_kept`). Served a
//!   list newer than held that still names it expired (day 10's on day 25, while day 20's
//!   renews it), the companion reports `ThisDeviceRemoved`, the event the guide describes as
//!   "this device was unlinked or expired", while the errors now tell the two apart and keep
//!   the envelopes of an expired device for a renewal. An app that treats the event as an
//!   unlink (link again, wipe) gives up a device the next list renews. Suggest reporting it
//!   only when the list does not name this device with its identity (or a separate event for
//!   an expired entry), and saying so in the guide.
//! - **Info (by design, noted)**: an expired device still takes lists, starts sessions from
//!   bundles and takes the app's own calls (`an_expired_companion_answers_no_retry_until_renewed`):
//!   none needs it active, nothing is sealed. A companion no list will renew (the primary's
//!   next list drops it; or the relay withholds the unlink) keeps every well-formed envelope
//!   addressed to it until the app's bound, where before this commit it dropped them: the
//!   guide's row says so, and an active device keeps a raised-version envelope the same way.
//!
//! Held: the relay cannot make an unlinked device expired: lists from before its unlink are
//! rollbacks and change nothing, every envelope kind and every send is `ThisDeviceInactive`,
//! the driver drops after one fetch, unchanged
//! (`an_unlinked_companion_served_the_lists_before_its_unlink_stays_inactive`); the same
//! identity relinked under a new id leaves the old device unlinked, and an envelope to the
//! new id is `NotForThisDevice` to it
//! (`a_relinked_identity_under_a_new_id_leaves_the_old_device_unlinked`); another identity at
//! this id, active or expired, or this identity at another id, is `ThisDeviceInactive` and
//! dropped after two fetches (`another_identity_at_this_id_is_unlinked_whether_or_not_it_expired`);
//! a resync from a stale list signs a version above every earlier one naming the phone alone,
//! so the expired companion ends dropped and stays so served the renewal or a fresh link's
//! list (`a_resynced_primary_ends_an_expired_companion_as_unlinked`). Expiry is `now <
//! expires_at` at both ends (a sender leaves the companion out at the very instant it refuses)
//! and the refusal leaves no trace (the clock set back, it reads), a read envelope is
//! `Duplicate` after expiry (`expiry_is_exclusive_at_the_entry_time_at_both_ends_and_leaves_no_trace`).
//! An expired device answers no message or call key retry and sends no withholding message,
//! unchanged, and answers both once renewed (`an_expired_companion_answers_no_retry_until_renewed`).
//! Kept group messages, their keys, Bob's retry request and the answer to C2's own request
//! read exactly once after the renewal, in the worst order and across restarts, then
//! `Duplicate` with no fetch (`kept_retries_answers_and_group_messages_are_read_once_after_the_renewal`);
//! a message from an account not followed is kept (own list first), then `UnknownAccount` or
//! read after two fetches (`an_expired_companion_written_to_by_an_account_it_does_not_follow`);
//! a restored expired companion renewed by a list from a clock ahead past the allowance reads
//! other accounts but keeps its own copy (`AwaitList`), and a list at the allowance ends the
//! wait (`a_restored_expired_companion_renewed_from_a_clock_too_far_ahead_keeps_its_own_copy`);
//! the stepper keeps, drops (renewal then unlink) or reads within two steps each
//! (`the_stepper_keeps_reads_or_drops_in_two_steps`); one newer list per fetch, each still
//! expiring the device, ends `Unresolved` after `MAX_ROUNDS` fetches, and its own group
//! message is `NotForThisDevice` first (`newer_lists_that_all_expire_the_companion_end_after_max_rounds`).

mod support;

use ratchetry::devices::{
    AccountKey, AccountKeyPair, DeviceAddress, DeviceId, ListLimits, Primary, SignedDeviceList,
};
use ratchetry::driver::{self, DriveError, Inbound, ReceiveStep, Receiving};
use ratchetry::fanout::{
    Device, DeviceConfig, Event, OWN_LIST_CLOCK_ALLOWANCE_MS, Outgoing, Received, RetryReason,
    WithheldReason,
};
use ratchetry::group::GroupId;
use ratchetry::testing::SeededRng;
use ratchetry::testing::hooks::{device_binding, sign_device_list};
use ratchetry::{Error, FanoutError, IdentityKeyPair, Timestamp};
use support::served::{Served, drive, drive_events, drive_unchanged, publish_to, signed};
use support::{Companion, DAY, T0, World, body, tampered};

const G: GroupId = GroupId([0x51; 32]);

fn expired() -> Error {
    FanoutError::ThisDeviceExpired.into()
}

fn inactive() -> Error {
    FanoutError::ThisDeviceInactive.into()
}

fn at(days: u64) -> Timestamp {
    T0.plus_millis(days * DAY)
}

/// A device's bytes, to compare.
fn bytes(w: &mut World, d: DeviceAddress) -> Vec<u8> {
    w.device(d).to_bytes().to_vec()
}

/// Asserts an operation on `d` was refused with `expected` and left it byte-identical with no
/// unit.
fn refused_op(
    w: &mut World,
    d: DeviceAddress,
    what: &str,
    expected: &Error,
    op: impl FnOnce(&mut Device, &mut SeededRng, Timestamp) -> Result<(), Error>,
) {
    let now = w.now;
    let mut rng = SeededRng::from_label(what);
    let before = bytes(w, d);
    let got = op(w.device(d), &mut rng, now);
    assert_eq!(got.err().as_ref(), Some(expected), "{what}");
    assert_eq!(before, bytes(w, d), "{what} changed {d:?}");
    assert!(!w.device(d).has_changes(), "{what} left a unit on {d:?}");
}

/// The expiry of `d`'s entry in the own list it holds.
fn expiry(w: &mut World, d: DeviceAddress) -> Timestamp {
    let account = d.account;
    w.device(d)
        .device_list(&account)
        .unwrap()
        .entry(d.device)
        .unwrap()
        .expires_at
        .unwrap()
}

/// Alice (phone A1, laptop C2) and Bob (phone B1), sessions every way, both in `G`. On day 1
/// Alice's phone renews and everyone takes it (C2 listed until day 15); on day 13 it renews
/// again (until day 27) and only A1 and B1 take it. The clock is at day 16: C2 expired in the
/// list it holds.
struct Lapsed {
    w: World,
    alice: AccountKey,
    bob: AccountKey,
    a1: DeviceAddress,
    c2: DeviceAddress,
    b1: DeviceAddress,
    /// Day 1's list, the one C2 holds.
    held: SignedDeviceList,
    /// Day 13's renewal.
    renewal: SignedDeviceList,
    /// Alice's primary, backed up on day 1 (before the renewal).
    primary_backup: Vec<u8>,
}

fn lapsed(label: &str) -> Lapsed {
    let (
        mut w,
        Companion {
            alice,
            bob,
            a1,
            c2,
            b1,
        },
    ) = support::companion(label, Some(G));
    w.now = at(1);
    let now = w.now;
    w.primary(&alice).renew(now).unwrap();
    w.publish(&alice);
    let held = signed(&mut w, &alice);
    let primary_backup = w.primary(&alice).to_bytes().to_vec();
    w.now = at(13);
    let now = w.now;
    w.primary(&alice).renew(now).unwrap();
    let renewal = signed(&mut w, &alice);
    publish_to(&mut w, &alice, &[a1, b1]);
    w.now = at(16);
    Lapsed {
        w,
        alice,
        bob,
        a1,
        c2,
        b1,
        held,
        renewal,
        primary_backup,
    }
}

// ---------------------------------------------------------------------------------------------
// 1. An unlinked device is never taken for an expired one
// ---------------------------------------------------------------------------------------------

/// C2 was unlinked on day 2 and holds the list that says so. On day 16 the relay serves it the
/// lists from before the unlink (day 0's, which names C2 expired by now, and day 1's renewal),
/// and delivers what it held back: a pairwise envelope, a group envelope with its sender key,
/// a retry request from Bob for a message C2 sent. The older lists are refused (`Rollback`),
/// so C2 never holds a list naming it again: every envelope and every send is
/// `ThisDeviceInactive` (not `ThisDeviceExpired`), and the driver drops each after one fetch,
/// C2 unchanged.
#[test]
fn an_unlinked_companion_served_the_lists_before_its_unlink_stays_inactive() {
    let (
        mut w,
        Companion {
            alice,
            bob,
            a1: _,
            c2,
            b1,
        },
    ) = support::companion("review51 unlinked old lists", Some(G));
    let day0 = signed(&mut w, &alice);
    // Held back from C2: a pairwise envelope, a group message and its sender key.
    let o = w.send(b1, alice, b"held back");
    let pairwise = World::envelope_to(&o, c2);
    let o = w.send_group(b1, G, b"group held back");
    let key = World::envelope_to(&o, c2);
    let group = World::group_envelope_for(&o, c2);
    // Bob asks C2 again for a message it sent (its copy to Bob was broken on the way).
    let o = w.send(c2, bob, b"from the laptop");
    let broken = tampered(&World::envelope_to(&o, b1));
    assert!(w.receive(b1, &broken).is_err());
    let (to, request) = w
        .request_retry(b1, &broken, RetryReason::AuthenticationFailed)
        .unwrap();
    assert_eq!(to, c2);
    w.now = at(1);
    let now = w.now;
    w.primary(&alice).renew(now).unwrap();
    w.publish(&alice);
    let day1 = signed(&mut w, &alice);
    w.now = at(2);
    let now = w.now;
    w.primary(&alice).unlink(now, c2.device).unwrap();
    w.publish(&alice);
    assert!(
        w.device(c2)
            .device_list(&alice)
            .unwrap()
            .entry(c2.device)
            .is_none()
    );
    w.now = at(16);
    let now = w.now;
    // The older lists are refused, and change nothing.
    for old in [&day0, &day1] {
        let before = bytes(&mut w, c2);
        let got = w.device(c2).update_device_list(now, &alice, old.clone());
        assert!(
            matches!(
                got,
                Err(Error::Device(ratchetry::DeviceError::Rollback { .. }))
            ),
            "{got:?}"
        );
        assert_eq!(before, bytes(&mut w, c2));
        assert!(!w.device(c2).has_changes());
    }
    for e in [&pairwise, &key, &group, &request] {
        w.refused(c2, e, inactive());
        for served in [vec![day0.clone()], vec![day1.clone()], vec![]] {
            let mut relay = Served::new(served);
            assert_eq!(
                drive_unchanged(&mut w, c2, &mut relay, e),
                Ok(Inbound::Dropped(inactive()))
            );
            assert_eq!(relay.fetches, 1);
        }
    }
    refused_op(&mut w, c2, "send", &inactive(), |d, rng, now| {
        d.send(rng, now, &bob, b"x").map(|_| ())
    });
    refused_op(&mut w, c2, "send_group", &inactive(), |d, rng, now| {
        d.send_group(rng, now, G, b"x").map(|_| ())
    });
    refused_op(&mut w, c2, "request_retry", &inactive(), |d, rng, now| {
        d.request_retry(rng, now, &pairwise, RetryReason::NoSession)
            .map(|_| ())
    });
}

/// C2's identity is linked again after its unlink, under a new id (C3): the list C2 then holds
/// names its identity key, at another id. C2 is still unlinked (`ThisDeviceInactive`, the
/// driver drops), never expired or active; C3 reads what is sent to it, and an envelope to C3
/// delivered to C2 is `NotForThisDevice`.
#[test]
fn a_relinked_identity_under_a_new_id_leaves_the_old_device_unlinked() {
    let mut w = World::new("review51 relinked");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let identity = IdentityKeyPair::generate(&mut w.rng);
    let c2 = w.link_identity(&alice, identity.clone());
    w.publish_all();
    for (from, to) in [(b1, alice), (a1, bob), (c2, bob), (b1, alice)] {
        let o = w.send(from, to, b"warm up");
        w.deliver_ok(&o);
    }
    let o = w.send(b1, alice, b"held back");
    let held_back = World::envelope_to(&o, c2);
    w.now = at(1);
    let now = w.now;
    w.primary(&alice).unlink(now, c2.device).unwrap();
    w.publish(&alice);
    let c3 = w.link_identity(&alice, identity);
    assert_ne!(c3, c2);
    w.publish_all();
    let own = w.device(c2).device_list(&alice).unwrap().clone();
    assert!(own.entry(c2.device).is_none());
    assert_eq!(
        own.entry(c3.device).unwrap().identity,
        w.device(c2).identity_key(),
        "the list names C2's identity at another id"
    );
    w.now = at(2);
    w.refused(c2, &held_back, inactive());
    let newest = signed(&mut w, &alice);
    let mut relay = Served::new(vec![newest]);
    assert_eq!(
        drive_unchanged(&mut w, c2, &mut relay, &held_back),
        Ok(Inbound::Dropped(inactive()))
    );
    refused_op(&mut w, c2, "send", &inactive(), |d, rng, now| {
        d.send(rng, now, &bob, b"x").map(|_| ())
    });
    // Bob now writes to A1 and C3, not to C2.
    let o = w.send(b1, alice, b"to the new link");
    assert!(!o.recipients().contains(&c2));
    let to_c3 = World::envelope_to(&o, c3);
    w.refused(c2, &to_c3, FanoutError::NotForThisDevice.into());
    let got = w.receive(c3, &to_c3).unwrap();
    assert_eq!(body(&got), Some(&b"to the new link"[..]));
}

/// An account key holder (not the relay: it cannot sign lists) lists C2's id with another
/// identity key, active or expired: C2 is unlinked (`ThisDeviceInactive`, the driver drops
/// what it kept), reports `ThisDeviceRemoved`, and is never taken for expired. Only its own
/// identity at its id, expired, is `ThisDeviceExpired`.
#[test]
fn another_identity_at_this_id_is_unlinked_whether_or_not_it_expired() {
    let mut rng = SeededRng::from_label("review51 rogue lists");
    let account = AccountKeyPair::generate(&mut rng);
    let ak = account.public();
    let phone = IdentityKeyPair::generate(&mut rng);
    let laptop = IdentityKeyPair::generate(&mut rng);
    let other = IdentityKeyPair::generate(&mut rng);
    let entry = |id: u32, ik: &IdentityKeyPair, expires: Option<Timestamp>| {
        (
            DeviceId(id),
            ik.public(),
            T0,
            expires,
            device_binding(ik, &ak),
        )
    };
    let limits = ListLimits::default();
    let v1 = sign_device_list(
        &account,
        1,
        T0,
        &[entry(1, &phone, None), entry(2, &laptop, Some(at(14)))],
    );
    let own = v1.verify(&ak, None, &limits).unwrap();
    let (mut a1, _) = Device::new(
        &mut rng,
        T0,
        phone.clone(),
        DeviceId(1),
        own.clone(),
        1,
        DeviceConfig::default(),
    )
    .unwrap();
    let (mut c2, _) = Device::new(
        &mut rng,
        T0,
        laptop.clone(),
        DeviceId(2),
        own,
        1,
        DeviceConfig::default(),
    )
    .unwrap();
    let c2_address = c2.address();
    let bundle = c2.bundle(None, None);
    a1.start_sessions(&mut rng, T0, &[(c2_address, bundle)])
        .unwrap();
    let Ok(Outgoing::Ready(o)) = a1.send(&mut rng, T0, &ak, b"own") else {
        panic!("a session is held")
    };
    let envelope = World::envelope_to(&o, c2_address);
    let _ = c2.take_changes(&mut rng);
    let now = at(16);
    // Its own identity at its id, expired.
    let before = c2.to_bytes();
    assert_eq!(c2.receive(now, &envelope).err(), Some(expired()));
    assert_eq!(*before, *c2.to_bytes());
    // Lists naming id 2 with another identity: active until day 30, or expired on day 15.
    let another = |expires: Timestamp, issued: Timestamp| {
        sign_device_list(
            &account,
            2,
            issued,
            &[entry(1, &phone, None), entry(2, &other, Some(expires))],
        )
    };
    // And one naming C2's identity at another id, expired.
    let moved = sign_device_list(
        &account,
        2,
        at(1),
        &[entry(1, &phone, None), entry(3, &laptop, Some(at(15)))],
    );
    for (label, list) in [
        ("another identity, active", another(at(30), at(16))),
        ("another identity, expired", another(at(15), at(1))),
        ("this identity at another id, expired", moved),
    ] {
        let mut copy = Device::from_bytes(&c2.to_bytes()).unwrap();
        let events = copy.update_device_list(now, &ak, list.clone()).unwrap();
        assert!(events.contains(&Event::ThisDeviceRemoved), "{label}");
        let _ = copy.take_changes(&mut rng);
        let before = copy.to_bytes();
        assert_eq!(
            copy.receive(now, &envelope).err(),
            Some(inactive()),
            "{label}"
        );
        assert_eq!(
            copy.send(&mut rng, now, &ak, b"x").err(),
            Some(inactive()),
            "{label}"
        );
        assert_eq!(*before, *copy.to_bytes(), "{label}");
        assert!(!copy.has_changes(), "{label}");
        // Through the driver from C2 as it was: the list taken, then dropped.
        let mut fresh = Device::from_bytes(&c2.to_bytes()).unwrap();
        let mut relay = Served::new(vec![list]);
        let got = driver::receive(&mut fresh, &mut rng, now, &mut relay, &envelope, |_| false);
        assert_eq!(
            got.map(|(i, _)| i),
            Ok(Inbound::Dropped(inactive())),
            "{label}"
        );
        assert_eq!(relay.fetches, 2, "{label}: the list, then nothing newer");
    }
}

// ---------------------------------------------------------------------------------------------
// 2. The clock: an entry expiring exactly now, the clock moving back and forth
// ---------------------------------------------------------------------------------------------

/// C2's entry expires at `E`. At `E - 1` Bob's phone sends to it and C2 could read and send;
/// at `E` and after, Bob's phone leaves it out and C2 refuses everything as
/// `ThisDeviceExpired` (the same boundary at both ends: `now < expires_at`), unchanged, and
/// the driver keeps the envelope. The refusal leaves no trace: with the clock set back to
/// `E - 1` C2 reads it. An envelope already read is `Duplicate` after the expiry (acknowledged,
/// not kept).
#[test]
fn expiry_is_exclusive_at_the_entry_time_at_both_ends_and_leaves_no_trace() {
    let (
        mut w,
        Companion {
            alice,
            bob,
            a1,
            c2,
            b1,
        },
    ) = support::companion("review51 boundary", None);
    let read_early = World::envelope_to(&w.send(b1, alice, b"read early"), c2);
    assert_eq!(
        body(&w.receive(c2, &read_early).unwrap()),
        Some(&b"read early"[..])
    );
    let e = expiry(&mut w, c2);
    w.now = Timestamp(e.0 - 1);
    let o = w.send(b1, alice, b"just before");
    assert!(o.recipients().contains(&c2));
    let just_before = World::envelope_to(&o, c2);
    let before_expiry = bytes(&mut w, c2);
    // C2 can still send at E - 1 (on a copy).
    let mut copy = Device::from_bytes(&w.device(c2).to_bytes()).unwrap();
    let now = w.now;
    assert!(matches!(
        copy.send(&mut w.rng, now, &bob, b"x"),
        Ok(Outgoing::Ready(_))
    ));
    for t in [e, Timestamp(e.0 + 1), e.plus_millis(DAY)] {
        w.now = t;
        w.refused(c2, &just_before, expired());
        refused_op(&mut w, c2, "send at expiry", &expired(), |d, rng, now| {
            d.send(rng, now, &bob, b"x").map(|_| ())
        });
        let held = w.device(c2).device_list(&alice).unwrap().signed().clone();
        let mut relay = Served::new(vec![held]);
        assert_eq!(
            drive_unchanged(&mut w, c2, &mut relay, &just_before),
            Ok(Inbound::AwaitList { account: alice })
        );
        // What was read before is a duplicate, not kept.
        let now = w.now;
        assert!(matches!(
            w.device(c2).receive(now, &read_early).err(),
            Some(Error::Fanout(FanoutError::Duplicate { .. }))
        ));
    }
    assert_eq!(before_expiry, bytes(&mut w, c2));
    // Bob's phone, at E, leaves C2 out.
    w.now = e;
    let o = w.send(b1, alice, b"at expiry");
    assert!(!o.recipients().contains(&c2));
    assert!(o.recipients().contains(&a1));
    // The clock back at E - 1: C2 reads the envelope it refused.
    w.now = Timestamp(e.0 - 1);
    let got = w.receive(c2, &just_before).unwrap();
    assert_eq!(body(&got), Some(&b"just before"[..]));
}

// ---------------------------------------------------------------------------------------------
// 3. Nothing while expired, then everything once
// ---------------------------------------------------------------------------------------------

/// On day 13 (still listed) C2 read Bob's requests for a message and a call key it sent; on
/// day 16, expired, it answers neither and sends no withholding group message: each is
/// `ThisDeviceExpired`, C2 unchanged with no unit. (It still starts a session from a bundle
/// and takes lists: those do not need it active.) Once it takes the renewal it answers both,
/// and Bob reads the answers.
#[test]
fn an_expired_companion_answers_no_retry_until_renewed() {
    use ratchetry::calls::{Call, CallConfig, CallKind};
    let (
        mut w,
        Companion {
            alice,
            bob,
            a1,
            c2,
            b1,
        },
    ) = support::companion("review51 answers", Some(G));
    w.now = at(13);
    let now = w.now;
    w.primary(&alice).renew(now).unwrap();
    let renewal = signed(&mut w, &alice);
    publish_to(&mut w, &alice, &[a1, b1]);
    // A message and a call key from C2, broken on the way to Bob, asked for again.
    let o = w.send(c2, bob, b"from c2");
    let broken = tampered(&World::envelope_to(&o, b1));
    assert!(w.receive(b1, &broken).is_err());
    let (_, request) = w
        .request_retry(b1, &broken, RetryReason::AuthenticationFailed)
        .unwrap();
    let Ok(Received::RetryRequest(message_req)) = w.receive(c2, &request) else {
        panic!("C2 reads the request while listed")
    };
    let call = Call::start(
        &mut w.rng,
        CallKind::Group,
        c2,
        &[b1],
        &CallConfig::default(),
    )
    .unwrap();
    let key_message = call.key_message().clone();
    let o = w
        .run(c2, |d, rng, now| {
            d.send_call_key(rng, now, &[b1], &key_message)
        })
        .unwrap();
    let broken = tampered(&World::envelope_to(&o, b1));
    assert!(w.receive(b1, &broken).is_err());
    let (_, request) = w
        .request_retry(b1, &broken, RetryReason::AuthenticationFailed)
        .unwrap();
    let Ok(Received::RetryRequest(call_req)) = w.receive(c2, &request) else {
        panic!("C2 reads the request while listed")
    };
    w.now = at(16);
    refused_op(&mut w, c2, "answer_retry", &expired(), |d, rng, now| {
        d.answer_retry(rng, now, &message_req, b"from c2")
            .map(|_| ())
    });
    refused_op(
        &mut w,
        c2,
        "answer_call_key_retry",
        &expired(),
        |d, rng, now| {
            d.answer_call_key_retry(rng, now, &call_req, &call)
                .map(|_| ())
        },
    );
    refused_op(
        &mut w,
        c2,
        "send_group_withholding",
        &expired(),
        |d, rng, now| {
            d.send_group_withholding(rng, now, G, b"x", &[(b1, Some(WithheldReason::Blocked))])
                .map(|_| ())
        },
    );
    // What does not need it active: a contact's new companion's list and a session with it.
    let b2 = w.link(&bob);
    publish_to(&mut w, &bob, &[c2, b1]);
    let bundle = w.device(b2).bundle(None, None);
    let now = w.now;
    let mut rng = SeededRng::from_label("review51 start");
    w.device(c2)
        .start_sessions(&mut rng, now, &[(b2, bundle)])
        .unwrap();
    assert!(w.device(c2).has_session(&b2));
    w.persist(c2);
    // Renewed: both answered, and read.
    w.device(c2)
        .update_device_list(now, &alice, renewal)
        .unwrap();
    w.persist(c2);
    let answer = w.answer(c2, &message_req, b"from c2");
    assert!(w.reads(&answer, b"from c2"));
    let answer = w
        .run(c2, |d, rng, now| {
            d.answer_call_key_retry(rng, now, &call_req, &call)
        })
        .unwrap();
    let got = w.deliver_ok(&answer);
    assert!(
        got.iter()
            .any(|(to, r)| *to == b1 && matches!(r, Received::CallKey { .. })),
        "{got:?}"
    );
}

/// Kept by the expired C2 through a stale list, then read once each after the renewal, in the
/// worst order and across restarts: Bob's group message sent under the renewal (before its
/// sender key: `Hold`, then read), the answer to a retry C2 asked of Bob before it expired
/// (read as the resend), Bob's retry request for a message C2 sent (read, answered, read by
/// Bob), and the sender key. Then each is `Duplicate`.
#[test]
fn kept_retries_answers_and_group_messages_are_read_once_after_the_renewal() {
    let (
        mut w,
        Companion {
            alice,
            bob,
            a1,
            c2,
            b1,
        },
    ) = support::companion("review51 kept kinds", Some(G));
    w.now = at(1);
    let now = w.now;
    w.primary(&alice).renew(now).unwrap();
    w.publish(&alice);
    let held = signed(&mut w, &alice);
    w.now = at(12);
    // Bob asks C2 again for a message C2 sent.
    let o = w.send(c2, bob, b"from c2");
    let broken = tampered(&World::envelope_to(&o, b1));
    assert!(w.receive(b1, &broken).is_err());
    let (to, bobs_request) = w
        .request_retry(b1, &broken, RetryReason::AuthenticationFailed)
        .unwrap();
    assert_eq!(to, c2);
    // C2 asks Bob again for a message Bob sent; Bob's answer is held back.
    let o = w.send(b1, alice, b"from b1");
    w.receive(a1, &World::envelope_to(&o, a1)).unwrap();
    let broken = tampered(&World::envelope_to(&o, c2));
    assert!(w.receive(c2, &broken).is_err());
    let (to, request) = w
        .request_retry(c2, &broken, RetryReason::AuthenticationFailed)
        .unwrap();
    assert_eq!(to, b1);
    let Ok(Received::RetryRequest(req)) = w.receive(b1, &request) else {
        panic!("Bob reads C2's request")
    };
    let answer = World::envelope_to(&w.answer(b1, &req, b"from b1"), c2);
    w.now = at(13);
    let now = w.now;
    w.primary(&alice).renew(now).unwrap();
    let renewal = signed(&mut w, &alice);
    publish_to(&mut w, &alice, &[a1, b1]);
    w.now = at(16);
    let o = w.send_group(b1, G, b"group under the renewal");
    let key = World::envelope_to(&o, c2);
    let group = World::group_envelope_for(&o, c2);
    let kept = [&group, &answer, &bobs_request, &key];
    for e in kept {
        w.refused(c2, e, expired());
        let mut replica = Served::new(vec![held.clone()]);
        assert_eq!(
            drive_unchanged(&mut w, c2, &mut replica, e),
            Ok(Inbound::AwaitList { account: alice })
        );
    }
    w.restart(c2);
    // The group message first: its key is not read yet.
    let mut relay = Served::new(vec![renewal.clone()]);
    assert_eq!(
        drive(&mut w, c2, &mut relay, &group),
        Ok(Inbound::Hold { from: b1 })
    );
    w.restart(c2);
    let mut relay = Served::new(vec![renewal.clone()]);
    match drive(&mut w, c2, &mut relay, &answer) {
        Ok(Inbound::Read(Received::Direct {
            body,
            resent: Some(_),
            ..
        })) => assert_eq!(body, b"from b1".to_vec()),
        other => panic!("{other:?}"),
    }
    let mut relay = Served::new(vec![renewal.clone()]);
    let req = match drive(&mut w, c2, &mut relay, &bobs_request) {
        Ok(Inbound::Read(Received::RetryRequest(r))) => r,
        other => panic!("{other:?}"),
    };
    let a = w.answer(c2, &req, b"from c2");
    assert!(w.reads(&a, b"from c2"));
    w.restart(c2);
    let mut relay = Served::new(vec![renewal.clone()]);
    assert!(matches!(
        drive(&mut w, c2, &mut relay, &key),
        Ok(Inbound::Read(Received::SenderKey { .. }))
    ));
    let mut relay = Served::new(vec![renewal.clone()]);
    match drive(&mut w, c2, &mut relay, &group) {
        Ok(Inbound::Read(r)) => assert_eq!(body(&r), Some(&b"group under the renewal"[..])),
        other => panic!("{other:?}"),
    }
    w.restart(c2);
    for e in kept {
        let mut relay = Served::new(vec![renewal.clone()]);
        assert!(matches!(
            drive_unchanged(&mut w, c2, &mut relay, e),
            Ok(Inbound::Duplicate(_))
        ));
        assert_eq!(relay.fetches, 0);
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Lists: one newer but still expiring, a resynced primary, an account not followed
// ---------------------------------------------------------------------------------------------

/// C2 holds day 1's list; the phone renewed on day 10 and day 20; on day 25 the relay serves
/// C2 day 10's (newer than held, C2 expired in it too). The driver takes it, tries again,
/// fetches once more and keeps the envelope (two fetches, no loop). Taking that list reported
/// `ThisDeviceRemoved` (this device "unlinked or expired"), although day 20's list renews it;
/// since stop 47 it reports `ThisDeviceExpired`, and no removal. Served day 20's list, C2
/// reads the envelope, and reports neither.
#[test]
fn a_newer_list_still_expiring_the_companion_is_taken_and_the_envelope_kept() {
    let (
        mut w,
        Companion {
            alice,
            bob: _,
            a1,
            c2,
            b1,
        },
    ) = support::companion("review51 newer still expired", None);
    w.now = at(1);
    let now = w.now;
    w.primary(&alice).renew(now).unwrap();
    w.publish(&alice);
    w.now = at(10);
    let now = w.now;
    w.primary(&alice).renew(now).unwrap();
    let day10 = signed(&mut w, &alice);
    publish_to(&mut w, &alice, &[a1, b1]);
    w.now = at(20);
    let now = w.now;
    w.primary(&alice).renew(now).unwrap();
    let day20 = signed(&mut w, &alice);
    publish_to(&mut w, &alice, &[a1, b1]);
    w.now = at(25);
    let e = World::envelope_to(&w.send(b1, alice, b"under day 20's list"), c2);
    w.refused(c2, &e, expired());
    let mut relay = Served::new(vec![day10.clone()]);
    let (inbound, events) = drive_events(&mut w, c2, &mut relay, &e).unwrap();
    assert_eq!(inbound, Inbound::AwaitList { account: alice });
    assert_eq!(relay.fetches, 2, "the newer list, then nothing newer");
    assert_eq!(
        w.device(c2).device_list(&alice).unwrap().version(),
        day10.version()
    );
    assert!(events.contains(&Event::ThisDeviceExpired), "{events:?}");
    assert!(!events.contains(&Event::ThisDeviceRemoved), "{events:?}");
    w.restart(c2);
    w.refused(c2, &e, expired());
    let mut relay = Served::new(vec![day20]);
    let (inbound, events) = drive_events(&mut w, c2, &mut relay, &e).unwrap();
    match inbound {
        Inbound::Read(r) => assert_eq!(body(&r), Some(&b"under day 20's list"[..])),
        other => panic!("{other:?}"),
    }
    assert!(!events.contains(&Event::ThisDeviceRemoved), "{events:?}");
    assert!(!events.contains(&Event::ThisDeviceExpired), "{events:?}");
}

/// Alice's phone is restored from its day 1 backup and resyncs on day 16, shown the stale day
/// 1 list by the relay: its list names the phone alone, at a version above every one signed
/// before. The expired C2 keeps Bob's envelope through a stale list, is dropped
/// (`ThisDeviceInactive`) once served the resync's list, and stays so served the renewal
/// (older: refused) or a list with the companion linked since, under a fresh id.
#[test]
fn a_resynced_primary_ends_an_expired_companion_as_unlinked() {
    let Lapsed {
        mut w,
        alice,
        c2,
        b1,
        held,
        renewal,
        primary_backup,
        ..
    } = lapsed("review51 resync");
    let o = w.send(b1, alice, b"under the renewal");
    let e = World::envelope_to(&o, c2);
    let mut replica = Served::new(vec![held.clone()]);
    assert_eq!(
        drive_unchanged(&mut w, c2, &mut replica, &e),
        Ok(Inbound::AwaitList { account: alice })
    );
    let mut primary = Primary::restore_from_backup(&primary_backup).unwrap();
    assert!(primary.needs_resync());
    let now = w.now;
    let resynced = primary.resync(now, held.clone()).unwrap().clone();
    assert!(resynced.version() > renewal.version());
    assert_eq!(resynced.entries().len(), 1);
    let resynced = resynced.signed().clone();
    *w.primary(&alice) = primary;
    w.restart(c2);
    let mut relay = Served::new(vec![resynced.clone()]);
    assert_eq!(
        drive(&mut w, c2, &mut relay, &e),
        Ok(Inbound::Dropped(inactive()))
    );
    assert_eq!(relay.fetches, 2);
    w.restart(c2);
    let mut relay = Served::new(vec![renewal]);
    assert_eq!(
        drive_unchanged(&mut w, c2, &mut relay, &e),
        Ok(Inbound::Dropped(inactive()))
    );
    let fresh = w.link(&alice);
    assert!(fresh.device.0 > c2.device.0 + 1000, "{fresh:?}");
    let newest = signed(&mut w, &alice);
    let mut relay = Served::new(vec![newest]);
    assert_eq!(
        drive(&mut w, c2, &mut relay, &e),
        Ok(Inbound::Dropped(inactive()))
    );
    refused_op(&mut w, c2, "send", &inactive(), |d, rng, now| {
        d.send(rng, now, &alice, b"x").map(|_| ())
    });
}

/// Carol, whom C2 does not follow, writes to Alice on day 16 under the renewal. The expired C2
/// keeps it (stale own list: one fetch, the own list first); served the renewal alone it takes
/// it and drops the envelope as `UnknownAccount` (the app does not follow Carol); served both
/// lists, it reads it after two fetches.
#[test]
fn an_expired_companion_written_to_by_an_account_it_does_not_follow() {
    let Lapsed {
        mut w,
        alice,
        c2,
        held,
        renewal,
        ..
    } = lapsed("review51 new contact");
    let carol = w.account(0);
    let d1 = World::addr(carol, 1);
    publish_to(&mut w, &alice, &[d1]);
    let o = w.send(d1, alice, b"hello from carol");
    let e = World::envelope_to(&o, c2);
    let carols = signed(&mut w, &carol);
    let mut replica = Served::new(vec![held, carols.clone()]);
    assert_eq!(
        drive_unchanged(&mut w, c2, &mut replica, &e),
        Ok(Inbound::AwaitList { account: alice })
    );
    assert_eq!(replica.fetches, 1);
    let now = w.now;
    let mut copy = Device::from_bytes(&w.device(c2).to_bytes()).unwrap();
    let mut relay = Served::new(vec![renewal.clone()]);
    let got = driver::receive(&mut copy, &mut w.rng, now, &mut relay, &e, |_| false);
    assert_eq!(
        got.map(|(i, _)| i),
        Ok(Inbound::Dropped(FanoutError::UnknownAccount(carol).into()))
    );
    let mut relay = Served::new(vec![renewal, carols]);
    match drive(&mut w, c2, &mut relay, &e) {
        Ok(Inbound::Read(r)) => assert_eq!(body(&r), Some(&b"hello from carol"[..])),
        other => panic!("{other:?}"),
    }
    assert_eq!(relay.fetches, 2);
}

// ---------------------------------------------------------------------------------------------
// 5. A restored expired companion, a renewal from a clock ahead
// ---------------------------------------------------------------------------------------------

/// C2 is restored from a backup on day 16, expired. Alice's phone, its clock ahead by more than
/// `OWN_LIST_CLOCK_ALLOWANCE_MS`, renews: C2 takes that list and is listed again, so Bob's
/// envelope reads, but the wait for an own list since the restore goes on, so its phone's own
/// copy is kept (`AwaitingOwnList`, the driver's `AwaitList`), never dropped. A list issued at
/// exactly the allowance ends the wait: the own copy reads.
#[test]
fn a_restored_expired_companion_renewed_from_a_clock_too_far_ahead_keeps_its_own_copy() {
    let Lapsed {
        mut w,
        alice,
        bob,
        a1,
        c2,
        b1,
        ..
    } = lapsed("review51 restored ahead");
    let backup = w.device(c2).to_bytes();
    let now = w.now;
    *w.device(c2) = Device::restore_from_backup(&backup, now).unwrap();
    w.persist(c2);
    let own_copy = World::envelope_to(&w.send(a1, bob, b"own copy"), c2);
    let from_bob = World::envelope_to(&w.send(b1, alice, b"from bob"), c2);
    w.refused(c2, &own_copy, expired());
    w.refused(c2, &from_bob, expired());
    let ahead = w.now.plus_millis(OWN_LIST_CLOCK_ALLOWANCE_MS + 1);
    w.primary(&alice).renew(ahead).unwrap();
    let too_far = signed(&mut w, &alice);
    let bobs = signed(&mut w, &bob);
    let mut relay = Served::new(vec![too_far.clone(), bobs]);
    match drive(&mut w, c2, &mut relay, &from_bob) {
        Ok(Inbound::Read(r)) => assert_eq!(body(&r), Some(&b"from bob"[..])),
        other => panic!("{other:?}"),
    }
    assert!(w.device(c2).awaiting_own_list());
    w.refused(c2, &own_copy, FanoutError::AwaitingOwnList.into());
    let mut relay = Served::new(vec![too_far]);
    assert_eq!(
        drive_unchanged(&mut w, c2, &mut relay, &own_copy),
        Ok(Inbound::AwaitList { account: alice })
    );
    let edge = w.now.plus_millis(OWN_LIST_CLOCK_ALLOWANCE_MS);
    w.primary(&alice).renew(edge).unwrap();
    let at_edge = signed(&mut w, &alice);
    let mut relay = Served::new(vec![at_edge]);
    match drive(&mut w, c2, &mut relay, &own_copy) {
        Ok(Inbound::Read(r)) => assert_eq!(body(&r), Some(&b"own copy"[..])),
        other => panic!("{other:?}"),
    }
    assert!(!w.device(c2).awaiting_own_list());
}

// ---------------------------------------------------------------------------------------------
// 6. The drivers
// ---------------------------------------------------------------------------------------------

/// The expired C2 sends through `driver::send`, the relay serving the renewal. Whatever the
/// driver does, nothing is sealed under the expired list: either refused as
/// `ThisDeviceExpired` with C2 unchanged, or an outbox made after it took the renewal.
#[test]
fn the_send_driver_never_sends_under_an_expired_own_list() {
    let Lapsed {
        mut w,
        alice,
        bob,
        c2,
        b1,
        renewal,
        ..
    } = lapsed("review51 send driver holds");
    let now = w.now;
    let bobs = signed(&mut w, &bob);
    let mut relay = Served::new(vec![renewal.clone(), bobs]);
    let mut device = w.devices.remove(&c2).unwrap();
    let before = device.to_bytes();
    let got = driver::send(&mut device, &mut w.rng, now, &mut relay, |d, rng| {
        d.send(rng, now, &bob, b"after the renewal")
    });
    match got {
        Err(DriveError::Device(e)) => {
            assert_eq!(e, expired());
            assert_eq!(*before, *device.to_bytes());
            assert!(!device.has_changes());
        }
        Ok((outbox, _)) => {
            assert!(outbox.recipients().contains(&b1));
            assert_eq!(
                device.device_list(&alice).unwrap().version(),
                renewal.version()
            );
        }
        Err(other) => panic!("{other:?}"),
    }
}

/// The receive driver fetches the own list on `ThisDeviceExpired` (and reads once it renews
/// the device); the send driver does not: `driver::send` on the expired C2, the relay serving
/// the renewal, is `Device(ThisDeviceExpired)` after no fetch, though the guide's table says
/// to fetch the own list. An app on the driver cannot send from a companion whose renewal it
/// has not fetched until a receive happens to fetch it.
#[test]
fn the_send_driver_fetches_the_own_list_of_an_expired_companion() {
    let Lapsed {
        mut w,
        bob,
        c2,
        b1,
        renewal,
        ..
    } = lapsed("review51 send driver");
    let now = w.now;
    let bobs = signed(&mut w, &bob);
    let mut relay = Served::new(vec![renewal, bobs]);
    let mut device = w.devices.remove(&c2).unwrap();
    let got = driver::send(&mut device, &mut w.rng, now, &mut relay, |d, rng| {
        d.send(rng, now, &bob, b"after the renewal")
    });
    match got {
        Ok((outbox, _)) => assert!(outbox.recipients().contains(&b1)),
        other => panic!("{other:?} after {} fetches", relay.fetches),
    }
}

/// The send driver fetches the own list once per refusal: served only the list C2 holds (a
/// stale replica), the refusal stands after one fetch, C2 unchanged. Renewed, then restored
/// from a backup, C2 sending to its own account (`AwaitingOwnList`) is refused after one
/// fetch served the renewal (issued before the restore), and sends once a list issued since
/// is served (stop 47, after review 51).
#[test]
fn the_send_driver_fetches_the_own_list_once_and_ends_a_restores_wait() {
    let Lapsed {
        mut w,
        alice,
        bob,
        a1,
        c2,
        held,
        renewal,
        ..
    } = lapsed("review51 send driver once");
    let now = w.now;
    let mut relay = Served::new(vec![held]);
    let mut device = w.devices.remove(&c2).unwrap();
    let before = device.to_bytes();
    let got = driver::send(&mut device, &mut w.rng, now, &mut relay, |d, rng| {
        d.send(rng, now, &bob, b"under the held list")
    });
    assert!(
        matches!(got, Err(DriveError::Device(ref e)) if *e == expired()),
        "{got:?}"
    );
    assert_eq!(relay.fetches, 1);
    assert_eq!(*before, *device.to_bytes());
    assert!(!device.has_changes());
    device
        .update_device_list(now, &alice, renewal.clone())
        .unwrap();
    let mut device = Device::restore_from_backup(&device.to_bytes(), now).unwrap();
    let _ = device.take_changes(&mut w.rng);
    let mut relay = Served::new(vec![renewal]);
    let got = driver::send(&mut device, &mut w.rng, now, &mut relay, |d, rng| {
        d.send(rng, now, &alice, b"to my phone")
    });
    assert!(
        matches!(got, Err(DriveError::Device(ref e)) if *e == FanoutError::AwaitingOwnList.into()),
        "{got:?}"
    );
    assert_eq!(relay.fetches, 1);
    w.now = w.now.plus_millis(1000);
    let now = w.now;
    w.primary(&alice).renew(now).unwrap();
    let since = signed(&mut w, &alice);
    let mut relay = Served::new(vec![since]);
    match driver::send(&mut device, &mut w.rng, now, &mut relay, |d, rng| {
        d.send(rng, now, &alice, b"to my phone")
    }) {
        Ok((outbox, _)) => assert!(outbox.recipients().contains(&a1)),
        other => panic!("{other:?}"),
    }
    assert!(!device.awaiting_own_list());
}

/// The stepper on the expired C2: the first step names the own account. Fed the list it holds
/// (a stale replica), the next step keeps the envelope (`AwaitList`), C2 unchanged. Fed an
/// unlink issued after the renewal, it asks once more and then drops it
/// (`ThisDeviceInactive`). Fed the renewal, the next step reads it. No receive takes more
/// than three steps.
#[test]
fn the_stepper_keeps_reads_or_drops_in_two_steps() {
    let Lapsed {
        mut w,
        alice,
        c2,
        b1,
        held,
        renewal,
        ..
    } = lapsed("review51 stepper");
    let e = World::envelope_to(&w.send(b1, alice, b"stepped"), c2);
    let now = w.now;
    let mut rng = SeededRng::from_label("review51 stepper rng");
    // Kept.
    let mut device = Device::from_bytes(&w.device(c2).to_bytes()).unwrap();
    let _ = device.take_changes(&mut rng);
    let mut r = Receiving::new();
    assert_eq!(
        r.step(&mut device, &mut rng, now, &e, |_| false),
        Ok(ReceiveStep::NeedDeviceList(alice))
    );
    assert_eq!(
        device.update_device_list(now, &alice, held).unwrap(),
        Vec::new()
    );
    assert_eq!(
        r.step(&mut device, &mut rng, now, &e, |_| false),
        Ok(ReceiveStep::Done(Inbound::AwaitList { account: alice }))
    );
    assert!(!device.has_changes());
    // Unlinked after the renewal: dropped.
    let mut unlinked = Device::from_bytes(&w.device(c2).to_bytes()).unwrap();
    w.primary(&alice).unlink(now, c2.device).unwrap();
    let unlink = signed(&mut w, &alice);
    let mut r = Receiving::new();
    assert_eq!(
        r.step(&mut unlinked, &mut rng, now, &e, |_| false),
        Ok(ReceiveStep::NeedDeviceList(alice))
    );
    unlinked.update_device_list(now, &alice, unlink).unwrap();
    assert_eq!(
        r.step(&mut unlinked, &mut rng, now, &e, |_| false),
        Ok(ReceiveStep::NeedDeviceList(alice))
    );
    assert_eq!(
        r.step(&mut unlinked, &mut rng, now, &e, |_| false),
        Ok(ReceiveStep::Done(Inbound::Dropped(inactive())))
    );
    // Renewed: read.
    let mut r = Receiving::new();
    assert_eq!(
        r.step(&mut device, &mut rng, now, &e, |_| false),
        Ok(ReceiveStep::NeedDeviceList(alice))
    );
    device.update_device_list(now, &alice, renewal).unwrap();
    match r.step(&mut device, &mut rng, now, &e, |_| false) {
        Ok(ReceiveStep::Done(Inbound::Read(got))) => {
            assert_eq!(body(&got), Some(&b"stepped"[..]))
        }
        other => panic!("{other:?}"),
    }
}

/// On day 30 the relay serves the expired C2, one per fetch, ever newer genuine lists of
/// Alice's that all expire it (the phone renewed on days 2 to 8, then stopped): each step
/// sees a changed own list and tries again, and the driver stops at `MAX_ROUNDS` fetches
/// (`Unresolved`), nothing read; served the newest of them again, it keeps the envelope after
/// one fetch. Its own group message delivered back to it is `NotForThisDevice` before
/// anything else.
#[test]
fn newer_lists_that_all_expire_the_companion_end_after_max_rounds() {
    let (
        mut w,
        Companion {
            alice,
            bob: _,
            a1: _,
            c2,
            b1,
        },
    ) = support::companion("review51 rolling expired", Some(G));
    let own_group = w.send_group(c2, G, b"from c2").group.unwrap().0;
    let e = World::envelope_to(&w.send(b1, alice, b"held back"), c2);
    let mut lists = Vec::new();
    for day in 2..=8 {
        w.now = at(day);
        let now = w.now;
        w.primary(&alice).renew(now).unwrap();
        lists.push(signed(&mut w, &alice));
    }
    w.now = at(30);
    w.refused(c2, &own_group, FanoutError::NotForThisDevice.into());
    w.refused(c2, &e, expired());
    let mut relay = Served::rolling(lists.clone());
    assert_eq!(
        drive(&mut w, c2, &mut relay, &e),
        Err(DriveError::Unresolved)
    );
    assert_eq!(relay.fetches, driver::MAX_ROUNDS);
    w.restart(c2);
    let taken = w.device(c2).device_list(&alice).unwrap().version();
    assert_eq!(taken, lists[driver::MAX_ROUNDS - 1].version());
    w.refused(c2, &e, expired());
    let mut relay = Served::new(vec![lists[driver::MAX_ROUNDS - 1].clone()]);
    assert_eq!(
        drive_unchanged(&mut w, c2, &mut relay, &e),
        Ok(Inbound::AwaitList { account: alice })
    );
    assert_eq!(relay.fetches, 1);
}
