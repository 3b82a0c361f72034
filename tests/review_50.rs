//! Review 50: a pairwise envelope naming an own list newer than held, to a device its own
//! list does not list as active (commit a528319: `DeviceListsDiverge` for the own account
//! instead of `ThisDeviceInactive`). Attacked: a relay raising `recipient_list_version` (bound
//! as AEAD context, but checked before decryption) on envelopes to an unlinked or an expired
//! companion; the driver's fetches and decisions; the order of checks; everything else an
//! inactive device does; the genuine case through stale replicas, restarts, a restore, and a
//! renewal followed by an unlink.
//!
//! Found:
//! - **Low: an unlinked companion keeps an envelope whose header the relay raised**
//!   (`an_unlinked_companion_drops_an_envelope_naming_an_own_list_above_its_unlink`, ignored):
//!   a companion holding the list that removed it (no entry for its id; ids are never listed
//!   again, so no newer own list can make it active) reads a raised `recipient_list_version`
//!   as a renewal to wait for: `DeviceListsDiverge` for the own account, and the driver
//!   decides `AwaitList` instead of `Dropped(ThisDeviceInactive)`. The relay makes a device
//!   that can never read again keep any envelope it likes until the app's bound, against
//!   PROTOCOL.md 18.5's reason ("the sender holds a renewal"). Low: nothing is read, asked,
//!   minted or changed, one fetch per try, and an active device keeps a raised envelope too
//!   by design
//!   (`a_raised_version_is_kept_by_an_active_device_too_and_an_old_list_does_not_reactivate`).
//!   Fix: map only where the held own list still has this device's entry, with its identity,
//!   expired. Fixed at stop 46 as suggested (`Device::own_list_named`).
//! - **Low: an expired companion still drops a group envelope sent under its renewal**
//!   (`an_expired_companion_keeps_a_group_envelope_sent_under_its_renewal`): the fix
//!   covers pairwise envelopes only; a group envelope names no own list version, so a
//!   companion served a stale own list decides `Dropped(ThisDeviceInactive)` on a group
//!   message it reads once the renewal arrives (the app acknowledges it), while the pairwise
//!   sender key sent with it is kept (`AwaitList`). Review 47's finding, for groups. A known
//!   limit at stop 46: nothing in a group envelope tells a renewal from a stale sender.
//!   Fixed at stop 47 by a rule that needs no header: a companion its held own list names
//!   with its identity, expired, refuses every envelope (and every send) as
//!   `ThisDeviceExpired`, which the driver keeps (`AwaitList`) once no newer own list comes.
//!
//! Held: every refusal leaves the device byte-identical with no unit; `NotForThisDevice` comes
//! first (another recipient, or this device the sender); an unknown account or a wrong lists
//! digest behind a raised own version is the own list's divergence first, then
//! `UnknownAccount` / the sender's divergence once the renewal is held (dropped, never asked
//! for again); a raised version on a genuine envelope mints no retry; the driver served one
//! newer genuine own list per fetch ends `Unresolved` after exactly `MAX_ROUNDS` fetches (no
//! loop); an older own list served does not reactivate an unlinked companion; a device with
//! no own list cannot be loaded (`MissingRecord`), and the own account cannot be forgotten;
//! sends, group sends, call keys, history offers, `request_retry` (also of a raised envelope)
//! and reading a retry request still refuse `ThisDeviceInactive`; the genuine case (stale
//! replica, the held list, none, through restarts from records, or through `Receiving` with
//! a restart between steps) keeps the envelope unchanged and reads it exactly once after the
//! renewal, then `Duplicate` (a raised copy too); call keys and history offers the same; a
//! renewal followed by an unlink served late ends `Dropped(ThisDeviceInactive)` after two
//! fetches; a restored expired companion keeps its phone's envelope (`AwaitList`) through a
//! stale list and a renewal issued before its restore, and reads it after a list since.

mod support;

use ratchetry::devices::{AccountKey, DeviceAddress, SignedDeviceList};
use ratchetry::driver::{self, DriveError, Inbound};
use ratchetry::fanout::{Device, Received, RetryReason};
use ratchetry::group::GroupId;
use ratchetry::{Error, FanoutError};
use support::served::{Served, drive, drive_unchanged, publish_to, signed};
use support::{Companion, DAY, World, body};

const G: GroupId = GroupId([0x50; 32]);

/// Offsets of the pairwise header's fields (PROTOCOL.md 18.1): 2 + 1 + 36 + 36, then the two
/// list versions (big-endian) and the 8-byte lists digest.
const RECIPIENT_VERSION: core::ops::Range<usize> = 83..91;
const LISTS_DIGEST: core::ops::Range<usize> = 91..99;

/// `envelope` with its header's recipient list version set to `version` (what the relay can
/// do: the header is read before the AEAD that binds it).
fn raised(envelope: &[u8], version: u64) -> Vec<u8> {
    let mut e = envelope.to_vec();
    e[RECIPIENT_VERSION].copy_from_slice(&version.to_be_bytes());
    e
}

fn header_version(envelope: &[u8]) -> u64 {
    u64::from_be_bytes(envelope[RECIPIENT_VERSION].try_into().unwrap())
}

fn own_version(w: &mut World, d: DeviceAddress) -> u64 {
    let account = d.account;
    w.device(d).device_list(&account).unwrap().version()
}

fn inactive() -> Error {
    FanoutError::ThisDeviceInactive.into()
}

/// Since stop 47, what a companion its held own list names, expired, refuses everything with.
fn lapsed() -> Error {
    FanoutError::ThisDeviceExpired.into()
}

fn diverge(account: AccountKey, used: u64, held: u64) -> Error {
    FanoutError::DeviceListsDiverge {
        account,
        used,
        held,
    }
    .into()
}

/// A device's bytes, to compare.
fn bytes(w: &mut World, d: DeviceAddress) -> Vec<u8> {
    w.device(d).to_bytes().to_vec()
}

// ---------------------------------------------------------------------------------------------
// The worlds
// ---------------------------------------------------------------------------------------------

/// Alice (phone A1, laptop C2) and Bob (phone B1), sessions both ways. C2 holds Alice's list
/// renewed on day 1 (expiring it on day 15); on day 13 the phone renews and A1 and B1 take it,
/// C2 does not (its replica is stale). The clock is at day 16: C2's held list expired it.
struct Expired {
    w: World,
    alice: AccountKey,
    bob: AccountKey,
    a1: DeviceAddress,
    c2: DeviceAddress,
    b1: DeviceAddress,
    /// Alice's list of day 0, older than C2's.
    stale: SignedDeviceList,
    /// Day 13's renewal, listing C2 until day 27.
    renewal: SignedDeviceList,
    /// An envelope Bob sent C2 on day 1, under the list C2 holds, held back by the relay.
    early: Vec<u8>,
}

fn expired(label: &str) -> Expired {
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
    let stale = signed(&mut w, &alice);
    w.now = w.now.plus_millis(DAY);
    let now = w.now;
    w.primary(&alice).renew(now).unwrap();
    w.publish(&alice);
    let o = w.send(b1, alice, b"early");
    let early = World::envelope_to(&o, c2);
    w.now = w.now.plus_millis(12 * DAY);
    let now = w.now;
    w.primary(&alice).renew(now).unwrap();
    let renewal = signed(&mut w, &alice);
    publish_to(&mut w, &alice, &[a1, b1]);
    w.now = w.now.plus_millis(3 * DAY);
    Expired {
        w,
        alice,
        bob,
        a1,
        c2,
        b1,
        stale,
        renewal,
        early,
    }
}

/// Alice (A1, C2) and Bob (B1), sessions both ways; Bob sends Alice a message whose envelope to
/// C2 the relay holds back; then Alice unlinks C2 and every device, C2 too, takes that list.
/// Returns `(world, alice, a1, c2, b1, the held-back envelope)`.
fn unlinked(
    label: &str,
) -> (
    World,
    AccountKey,
    DeviceAddress,
    DeviceAddress,
    DeviceAddress,
    Vec<u8>,
) {
    let (
        mut w,
        Companion {
            alice,
            bob: _,
            a1,
            c2,
            b1,
        },
    ) = support::companion(label, None);
    let o = w.send(b1, alice, b"held back");
    let held_back = World::envelope_to(&o, c2);
    w.now = w.now.plus_millis(DAY);
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
    (w, alice, a1, c2, b1, held_back)
}

// ---------------------------------------------------------------------------------------------
// 1. The relay raises the own list version to an unlinked companion
// ---------------------------------------------------------------------------------------------

/// C2 was unlinked and holds the list that says so. The relay raises the own list version in
/// the header of an envelope made before the unlink (by one, and to `u64::MAX`). What holds
/// whatever the decision: C2 is left byte-identical with no unit, reads nothing, asks for no
/// retry (and cannot: `request_retry` is `ThisDeviceInactive`), mints no prekey; the driver
/// fetches the own list once and decides without `Unresolved`. The unraised envelope is
/// dropped as `ThisDeviceInactive`.
#[test]
fn an_unlinked_companion_served_a_raised_version_reads_asks_and_changes_nothing() {
    let (mut w, alice, _a1, c2, _b1, held_back) = unlinked("review50 unlinked raised");
    let held = own_version(&mut w, c2);
    let newest = signed(&mut w, &alice);
    let prekeys = w.device(c2).one_time_prekeys_remaining();
    let kem = w.device(c2).one_time_kem_prekeys_remaining();
    w.refused(c2, &held_back, inactive());
    let mut relay = Served::new(vec![newest.clone()]);
    assert_eq!(
        drive_unchanged(&mut w, c2, &mut relay, &held_back),
        Ok(Inbound::Dropped(inactive()))
    );
    assert_eq!(relay.fetches, 1);
    for version in [held + 1, u64::MAX] {
        let forged = raised(&held_back, version);
        // Refused, whatever the error, leaving C2 as it was.
        let now = w.now;
        let d = w.device(c2);
        let before = d.to_bytes();
        assert!(d.receive(now, &forged).is_err());
        assert_eq!(*before, *d.to_bytes());
        assert!(!d.has_changes());
        let mut relay = Served::new(vec![newest.clone()]);
        let decided = drive_unchanged(&mut w, c2, &mut relay, &forged);
        assert!(
            matches!(
                decided,
                Ok(Inbound::AwaitList { .. }) | Ok(Inbound::Dropped(_))
            ),
            "{decided:?}"
        );
        assert_eq!(relay.fetches, 1, "one fetch, no loop");
        // Nor can the app ask for it.
        let mut rng = ratchetry::testing::SeededRng::from_label("review50 unlinked ask");
        let d = w.device(c2);
        let before = d.to_bytes();
        let got = d.request_retry(&mut rng, now, &forged, RetryReason::AuthenticationFailed);
        assert_eq!(got.err(), Some(inactive()));
        let d = w.device(c2);
        assert_eq!(*before, *d.to_bytes());
        assert!(!d.has_changes());
    }
    assert_eq!(w.device(c2).one_time_prekeys_remaining(), prekeys);
    assert_eq!(w.device(c2).one_time_kem_prekeys_remaining(), kem);
}

/// The unlinked C2 holds a list without its id; ids are never listed again (a new link, or a
/// companion after a primary's resync, gets a fresh id), so no newer own list can make it
/// active: a version above the held one, on an envelope to it, can only be the relay's. The
/// right answer is `ThisDeviceInactive`, and the driver's `Dropped`; at the reviewed commit it
/// was `DeviceListsDiverge` for the own account, and the driver kept the envelope
/// (`AwaitList`) until the app's bound, for any envelope the relay raised. Fixed at stop 46
/// (only a device its held list names, expired, waited); since stop 47 no header is read for
/// it at all (an expired device is `ThisDeviceExpired`, an unlinked one `ThisDeviceInactive`).
#[test]
fn an_unlinked_companion_drops_an_envelope_naming_an_own_list_above_its_unlink() {
    let (mut w, alice, _a1, c2, _b1, held_back) = unlinked("review50 unlinked dropped");
    let held = own_version(&mut w, c2);
    let newest = signed(&mut w, &alice);
    let forged = raised(&held_back, held + 1);
    w.refused(c2, &forged, inactive());
    let mut relay = Served::new(vec![newest]);
    assert_eq!(
        drive_unchanged(&mut w, c2, &mut relay, &forged),
        Ok(Inbound::Dropped(inactive()))
    );
}

/// Context for the finding above: to an active device, a raised version is kept too
/// (`AwaitList`, by design: a forged envelope can name any version, and the app drops it
/// after its bound), so the relay gains no power it lacked over active devices; and the
/// unlinked C2, served the list from before its unlink (older than held), is not made active
/// again: unchanged, not read.
#[test]
fn a_raised_version_is_kept_by_an_active_device_too_and_an_old_list_does_not_reactivate() {
    let (
        mut w,
        Companion {
            alice,
            bob: _,
            a1,
            c2,
            b1,
        },
    ) = support::companion("review50 active raised", None);
    let before_unlink = signed(&mut w, &alice);
    let o = w.send(b1, alice, b"held back");
    let (to_a1, to_c2) = (World::envelope_to(&o, a1), World::envelope_to(&o, c2));
    let now = w.now;
    w.primary(&alice).unlink(now, c2.device).unwrap();
    w.publish(&alice);
    let newest = signed(&mut w, &alice);
    let held = own_version(&mut w, a1);
    let mut relay = Served::new(vec![newest.clone()]);
    assert_eq!(
        drive_unchanged(&mut w, a1, &mut relay, &raised(&to_a1, held + 1)),
        Ok(Inbound::AwaitList { account: alice })
    );
    let mut replica = Served::new(vec![before_unlink]);
    let decided = drive_unchanged(&mut w, c2, &mut replica, &raised(&to_c2, held + 1));
    assert!(!matches!(decided, Ok(Inbound::Read(_))), "{decided:?}");
    let mut replica = Served::new(vec![signed(&mut w, &alice)]);
    let _ = drive_unchanged(&mut w, c2, &mut replica, &to_c2);
    assert!(
        w.device(c2)
            .device_list(&alice)
            .unwrap()
            .entry(c2.device)
            .is_none()
    );
    // The genuine envelope to A1 still reads.
    let mut relay = Served::new(vec![newest]);
    match drive(&mut w, a1, &mut relay, &to_a1) {
        Ok(Inbound::Read(r)) => assert_eq!(body(&r), Some(&b"held back"[..])),
        other => panic!("{other:?}"),
    }
}

/// A device holding no own list (which would be `ThisDeviceInactive`) cannot
/// be built: with its own list's record removed, the records do not load (`MissingRecord`),
/// and `forget_account` of the own account is a no-op.
#[test]
fn a_device_without_its_own_list_does_not_exist() {
    let Expired {
        mut w, alice, c2, ..
    } = expired("review50 no own list");
    let own = alice.to_bytes();
    let records: Vec<(Vec<u8>, Vec<u8>)> = w.stores[&c2]
        .0
        .iter()
        .filter(|(k, _)| !(k.len() == 33 && k[1..] == own[..]))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(
        records.len() + 1,
        w.stores[&c2].0.len(),
        "one record removed"
    );
    let loaded = Device::from_records(records.iter().map(|(k, v)| (k.as_slice(), v.as_slice())));
    assert!(
        matches!(loaded, Err(ratchetry::DecodeError::MissingRecord(_))),
        "{:?}",
        loaded.err()
    );
    let before = bytes(&mut w, c2);
    w.device(c2).forget_account(&alice);
    assert!(w.device(c2).device_list(&alice).is_some());
    assert_eq!(before, bytes(&mut w, c2));
}

// ---------------------------------------------------------------------------------------------
// 2. Bounded: the driver, served one newer own list per fetch
// ---------------------------------------------------------------------------------------------

/// The relay raises an envelope to the expired C2 to `u64::MAX` and serves, at each fetch, a
/// newer genuine own list (the phone unlinked C2, then renewed every day since): every step
/// sees a changed list and tries again. The driver stops at `MAX_ROUNDS` fetches
/// (`Unresolved`), as for any account; nothing is read.
#[test]
fn a_raised_version_and_a_newer_list_per_fetch_end_after_max_rounds() {
    let Expired {
        mut w,
        alice,
        c2,
        early,
        ..
    } = expired("review50 rolling");
    let now = w.now;
    w.primary(&alice).unlink(now, c2.device).unwrap();
    let mut lists = vec![signed(&mut w, &alice)];
    for _ in 0..6 {
        w.now = w.now.plus_millis(DAY);
        let now = w.now;
        w.primary(&alice).renew(now).unwrap();
        lists.push(signed(&mut w, &alice));
    }
    let forged = raised(&early, u64::MAX);
    let mut relay = Served::rolling(lists);
    let before = bytes(&mut w, c2);
    let decided = drive(&mut w, c2, &mut relay, &forged);
    assert_eq!(decided, Err(DriveError::Unresolved));
    assert_eq!(relay.fetches, driver::MAX_ROUNDS);
    assert_ne!(before, bytes(&mut w, c2), "the genuine lists were taken");
    assert!(relay.fetches <= driver::MAX_ROUNDS, "{}", relay.fetches);
    assert!(
        w.device(c2)
            .device_list(&alice)
            .unwrap()
            .entry(c2.device)
            .is_none()
    );
}

// ---------------------------------------------------------------------------------------------
// 3. The order of checks
// ---------------------------------------------------------------------------------------------

/// To the expired C2, with the own version raised above held: an envelope addressed to another
/// device, or sent by C2 itself, is `NotForThisDevice` (first); one from an account C2 does not
/// follow is `ThisDeviceExpired` (the own list first; the own list's divergence before stop 47),
/// and `UnknownAccount` once the renewal is held; one with a wrong lists digest is
/// `ThisDeviceExpired`, and the sender's divergence at the held version once the renewal is
/// held, which the driver drops (it is never asked for again). Every refusal leaves C2
/// byte-identical with no unit.
#[test]
fn order_of_checks_for_an_inactive_device_naming_a_newer_own_list() {
    let Expired {
        mut w,
        alice,
        bob,
        a1,
        c2,
        b1,
        renewal,
        ..
    } = expired("review50 order");
    let held = own_version(&mut w, c2);
    let rv = renewal.version();
    assert!(rv > held);
    // Under the renewal, to A1 (not C2) and to C2.
    let o = w.send(b1, alice, b"to alice");
    let to_a1 = World::envelope_to(&o, a1);
    let to_c2 = World::envelope_to(&o, c2);
    assert_eq!(header_version(&to_c2), rv);
    w.refused(
        c2,
        &raised(&to_a1, rv),
        FanoutError::NotForThisDevice.into(),
    );
    w.refused(
        c2,
        &raised(&to_a1, u64::MAX),
        FanoutError::NotForThisDevice.into(),
    );
    // The genuine envelope: expired (since stop 47, whatever own list the header names).
    w.refused(c2, &to_c2, lapsed());
    // From an account C2 does not follow (forgotten).
    let mut copy = Device::from_bytes(&w.device(c2).to_bytes()).unwrap();
    copy.forget_account(&bob);
    let _ = copy.take_changes(&mut w.rng);
    let now = w.now;
    let before = copy.to_bytes();
    assert_eq!(copy.receive(now, &to_c2).err(), Some(lapsed()));
    assert_eq!(*before, *copy.to_bytes());
    assert!(!copy.has_changes());
    copy.update_device_list(now, &alice, renewal.clone())
        .unwrap();
    let _ = copy.take_changes(&mut w.rng);
    let before = copy.to_bytes();
    assert!(matches!(
        copy.receive(now, &to_c2).err(),
        Some(Error::Fanout(FanoutError::UnknownAccount(a))) if a == bob
    ));
    assert_eq!(*before, *copy.to_bytes());
    // A wrong lists digest behind the raised version.
    let mut wrong = to_c2.clone();
    wrong[LISTS_DIGEST.start] ^= 1;
    w.refused(c2, &wrong, lapsed());
    let mut copy = Device::from_bytes(&w.device(c2).to_bytes()).unwrap();
    copy.update_device_list(now, &alice, renewal.clone())
        .unwrap();
    let _ = copy.take_changes(&mut w.rng);
    let before = copy.to_bytes();
    let bob_held = copy.device_list(&bob).unwrap().version();
    assert_eq!(
        copy.receive(now, &wrong).err(),
        Some(diverge(bob, bob_held, bob_held))
    );
    assert_eq!(*before, *copy.to_bytes());
    assert!(!copy.has_changes());
    // Through the driver, served the renewal: dropped, not asked for again.
    let prekeys = w.device(c2).one_time_prekeys_remaining();
    let mut relay = Served::new(vec![renewal.clone(), signed(&mut w, &bob)]);
    let decided = drive(&mut w, c2, &mut relay, &wrong);
    assert!(matches!(decided, Ok(Inbound::Dropped(_))), "{decided:?}");
    assert_eq!(w.device(c2).one_time_prekeys_remaining(), prekeys);
    // And the genuine envelope still reads.
    let mut relay = Served::new(vec![renewal]);
    match drive(&mut w, c2, &mut relay, &to_c2) {
        Ok(Inbound::Read(r)) => assert_eq!(body(&r), Some(&b"to alice"[..])),
        other => panic!("{other:?}"),
    }
}

/// An envelope C2 itself sent (sender = this device), delivered back to it with a raised own
/// version, is `NotForThisDevice`, as before.
#[test]
fn an_envelope_from_this_device_naming_a_newer_own_list_is_not_for_it() {
    let mut w = World::new("review50 own envelope");
    let alice = w.account(1);
    let bob = w.account(0);
    w.publish_all();
    let (c2, b1) = (World::addr(alice, 2), World::addr(bob, 1));
    let o = w.send(c2, bob, b"mine");
    let mine = World::envelope_to(&o, b1);
    w.now = w.now.plus_millis(20 * DAY);
    let held = own_version(&mut w, c2);
    for v in [held + 1, u64::MAX] {
        w.refused(c2, &raised(&mine, v), FanoutError::NotForThisDevice.into());
    }
}

/// The relay raises the own version of a genuine envelope made before C2 expired (under the
/// held list) to exactly the renewal's version, and serves the renewal: the lists digest no
/// longer matches, so C2 refuses before decrypting, the driver drops it, and no retry is asked
/// (no prekey minted). The relay could drop it anyway; unraised, it reads.
#[test]
fn a_raised_genuine_envelope_is_dropped_not_asked_for() {
    let Expired {
        mut w,
        c2,
        renewal,
        early,
        ..
    } = expired("review50 raised genuine");
    let forged = raised(&early, renewal.version());
    let mut relay = Served::new(vec![renewal.clone()]);
    let prekeys = w.device(c2).one_time_prekeys_remaining();
    let decided = drive(&mut w, c2, &mut relay, &forged);
    assert!(matches!(decided, Ok(Inbound::Dropped(_))), "{decided:?}");
    assert_eq!(w.device(c2).one_time_prekeys_remaining(), prekeys);
    let mut relay = Served::new(vec![renewal]);
    match drive(&mut w, c2, &mut relay, &early) {
        Ok(Inbound::Read(r)) => assert_eq!(body(&r), Some(&b"early"[..])),
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Nothing else changed for an inactive device
// ---------------------------------------------------------------------------------------------

/// The expired C2: sends, group sends, call keys and history offers refuse
/// (`ThisDeviceExpired` since stop 47, `ThisDeviceInactive` before); a retry request for a
/// message it sent is refused (its answer would be refused); `request_retry` of an envelope
/// naming a newer own list is refused, minting nothing. Each leaves C2 unchanged. The unlinked
/// C2: the next test.
#[test]
fn an_inactive_device_still_refuses_sends_retries_offers_and_call_keys() {
    use ratchetry::calls::{Call, CallConfig, CallKind};
    use ratchetry::history::HistorySealer;
    let Expired {
        mut w,
        alice,
        bob,
        a1,
        c2,
        b1,
        ..
    } = expired("review50 everything else");
    let o = w.send(b1, alice, b"to alice");
    let to_c2 = World::envelope_to(&o, c2);
    let check = |w: &mut World, what: &str, got: Result<(), Error>| {
        assert_eq!(got.err(), Some(lapsed()), "{what}");
        let d = w.device(c2);
        assert!(!d.has_changes(), "{what} left a unit");
    };
    let now = w.now;
    let before = bytes(&mut w, c2);
    let mut rng = ratchetry::testing::SeededRng::from_label("review50 other rng");
    let got = w.device(c2).send(&mut rng, now, &bob, b"x").map(|_| ());
    check(&mut w, "send", got);
    let got = w.device(c2).send_group(&mut rng, now, G, b"x").map(|_| ());
    check(&mut w, "send_group", got);
    let call = Call::start(
        &mut rng,
        CallKind::Group,
        c2,
        &[a1, b1],
        &CallConfig::default(),
    )
    .unwrap();
    let message = call.key_message().clone();
    let got = w
        .device(c2)
        .send_call_key(&mut rng, now, &[a1, b1], &message)
        .map(|_| ());
    check(&mut w, "send_call_key", got);
    let mut sealer = HistorySealer::new(&mut rng);
    let _ = sealer.push(b"history");
    let offer = sealer.finish().1;
    let got = w
        .device(c2)
        .send_history_offer(&mut rng, now, a1, &offer)
        .map(|_| ());
    check(&mut w, "send_history_offer", got);
    let got = w
        .device(c2)
        .request_retry(&mut rng, now, &to_c2, RetryReason::AuthenticationFailed)
        .map(|_| ());
    check(&mut w, "request_retry", got);
    let got = w
        .device(c2)
        .request_retry(
            &mut rng,
            now,
            &raised(&to_c2, u64::MAX),
            RetryReason::NoSession,
        )
        .map(|_| ());
    check(&mut w, "request_retry raised", got);
    assert_eq!(before, bytes(&mut w, c2));
    // A retry request from Bob for a message C2 sent while active, read once C2 expired
    // (in a world of its own): refused.
    let mut v = World::new("review50 retry request");
    let alice2 = v.account(1);
    let bob2 = v.account(0);
    v.publish_all();
    let (vc2, vb1) = (World::addr(alice2, 2), World::addr(bob2, 1));
    let o = v.send(vc2, bob2, b"from the laptop");
    let broken = support::tampered(&World::envelope_to(&o, vb1));
    assert!(v.receive(vb1, &broken).is_err());
    let (to, request) = v
        .request_retry(vb1, &broken, RetryReason::AuthenticationFailed)
        .unwrap();
    assert_eq!(to, vc2);
    v.now = v.now.plus_millis(20 * DAY);
    v.refused(vc2, &request, lapsed());
}

/// The unlinked C2 refuses sends and `request_retry` as `ThisDeviceInactive`, as before.
#[test]
fn an_unlinked_device_still_refuses_sends_and_retries() {
    let (mut w, alice, _a1, c2, b1, held_back) = unlinked("review50 unlinked sends");
    let bob = b1.account;
    let now = w.now;
    let before = bytes(&mut w, c2);
    let mut rng = ratchetry::testing::SeededRng::from_label("review50 unlinked rng");
    let got = w.device(c2).send(&mut rng, now, &bob, b"x").map(|_| ());
    assert_eq!(got.err(), Some(inactive()));
    let got = w.device(c2).send(&mut rng, now, &alice, b"x").map(|_| ());
    assert_eq!(got.err(), Some(inactive()));
    let held = own_version(&mut w, c2);
    let got = w
        .device(c2)
        .request_retry(
            &mut rng,
            now,
            &raised(&held_back, held + 1),
            RetryReason::NoSession,
        )
        .map(|_| ());
    assert_eq!(got.err(), Some(inactive()));
    assert_eq!(before, bytes(&mut w, c2));
    assert!(!w.device(c2).has_changes());
}

/// Bob sends the group G a message on day 16, under the renewal (C2 among its devices). The
/// expired C2, served a stale own list, kept the pairwise envelope (the sender key) but
/// decided `Dropped(ThisDeviceInactive)` on the group envelope, which it
/// reads once the renewal arrives: the app acknowledged it and it was lost. A group envelope
/// names no own list version, so the device cannot tell; the right decision for a device whose
/// held own list still has its entry, expired, is to keep it (`AwaitList` for the own account)
/// as the pairwise envelope is kept. Fixed at stop 47: such a device refuses every envelope as
/// `ThisDeviceExpired`, which the driver keeps.
#[test]
fn an_expired_companion_keeps_a_group_envelope_sent_under_its_renewal() {
    let Expired {
        mut w,
        alice,
        b1,
        c2,
        stale,
        renewal,
        ..
    } = expired("review50 group");
    let o = w.send_group(b1, G, b"to the group");
    let group = World::group_envelope_for(&o, c2);
    // Refused as expired, as every envelope to C2 is (stop 47).
    w.refused(c2, &group, lapsed());
    // What C2 reads once the renewal arrives, on a copy (the pairwise envelope first, if any).
    let mut copy = Device::from_bytes(&w.device(c2).to_bytes()).unwrap();
    let now = w.now;
    copy.update_device_list(now, &alice, renewal).unwrap();
    copy.receive(now, &World::envelope_to(&o, c2)).unwrap();
    let later = copy.receive(now, &group);
    assert_eq!(
        later.as_ref().ok().and_then(body),
        Some(&b"to the group"[..]),
        "{later:?}"
    );
    // The sender key's pairwise envelope is kept.
    let key = World::envelope_to(&o, c2);
    let mut replica = Served::new(vec![stale.clone()]);
    assert_eq!(
        drive_unchanged(&mut w, c2, &mut replica, &key),
        Ok(Inbound::AwaitList { account: alice })
    );
    let mut replica = Served::new(vec![stale]);
    assert_eq!(
        drive_unchanged(&mut w, c2, &mut replica, &group),
        Ok(Inbound::AwaitList { account: alice }),
        "C2 acknowledges a group message it reads once its renewal arrives"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. The genuine case
// ---------------------------------------------------------------------------------------------

/// Bob writes to Alice on day 16 under the renewal. C2 is served the stale list, restarts from
/// its records, is served the list it holds, restarts again, is served nothing: each time it
/// keeps the envelope (`AwaitList`) after one fetch, unchanged. Then the renewal: read, once;
/// after a restart the same envelope is a `Duplicate`, and so is a raised copy of it.
#[test]
fn an_expired_companion_reads_the_envelope_once_after_stale_fetches_and_restarts() {
    let Expired {
        mut w,
        alice,
        bob,
        c2,
        b1,
        stale,
        renewal,
        ..
    } = expired("review50 genuine");
    let o = w.send(b1, alice, b"under the renewal");
    let e = World::envelope_to(&o, c2);
    let held = w.device(c2).device_list(&alice).unwrap().signed().clone();
    for served in [vec![stale.clone()], vec![held], vec![], vec![stale]] {
        w.restart(c2);
        let mut relay = Served::new(served);
        assert_eq!(
            drive_unchanged(&mut w, c2, &mut relay, &e),
            Ok(Inbound::AwaitList { account: alice })
        );
        assert_eq!(relay.fetches, 1);
    }
    w.restart(c2);
    let mut relay = Served::new(vec![renewal.clone(), signed(&mut w, &bob)]);
    match drive(&mut w, c2, &mut relay, &e) {
        Ok(Inbound::Read(Received::Direct { body, .. })) => {
            assert_eq!(body, b"under the renewal".to_vec())
        }
        other => panic!("{other:?}"),
    }
    w.restart(c2);
    let mut relay = Served::new(vec![renewal]);
    assert!(matches!(
        drive(&mut w, c2, &mut relay, &e),
        Ok(Inbound::Duplicate(_))
    ));
    let now = w.now;
    let d = w.device(c2);
    assert!(matches!(
        d.receive(now, &raised(&e, u64::MAX)).err(),
        Some(Error::Fanout(FanoutError::Duplicate { .. }))
    ));
    // It sends again.
    let o = w.send(c2, bob, b"back");
    assert!(o.recipients().contains(&b1));
}

/// A call key (Bob's call with A1 and C2) and a history offer (from A1) made under the renewal
/// take the same path: kept (`AwaitList`) while a stale list is served, read once each after
/// the renewal, `Duplicate` after.
#[test]
fn call_keys_and_history_offers_under_the_renewal_are_kept_then_read_once() {
    use ratchetry::calls::{Call, CallConfig, CallKind};
    use ratchetry::history::HistorySealer;
    let Expired {
        mut w,
        alice,
        a1,
        c2,
        b1,
        stale,
        renewal,
        ..
    } = expired("review50 call key offer");
    let call = Call::start(
        &mut w.rng,
        CallKind::Group,
        b1,
        &[a1, c2],
        &CallConfig::default(),
    )
    .unwrap();
    let message = call.key_message().clone();
    let o = w
        .run(b1, |d, rng, now| {
            d.send_call_key(rng, now, &[a1, c2], &message)
        })
        .unwrap();
    let key = World::envelope_to(&o, c2);
    let mut sealer = HistorySealer::new(&mut w.rng);
    let _ = sealer.push(b"history");
    let offer = sealer.finish().1;
    let o = w
        .run(a1, |d, rng, now| d.send_history_offer(rng, now, c2, &offer))
        .unwrap();
    let offered = World::envelope_to(&o, c2);
    for e in [&key, &offered] {
        let mut replica = Served::new(vec![stale.clone()]);
        assert_eq!(
            drive_unchanged(&mut w, c2, &mut replica, e),
            Ok(Inbound::AwaitList { account: alice })
        );
    }
    w.restart(c2);
    let mut relay = Served::new(vec![renewal.clone()]);
    let got = drive(&mut w, c2, &mut relay, &key);
    assert!(
        matches!(got, Ok(Inbound::Read(Received::CallKey { .. }))),
        "{got:?}"
    );
    let mut relay = Served::new(vec![renewal.clone()]);
    let got = drive(&mut w, c2, &mut relay, &offered);
    assert!(
        matches!(got, Ok(Inbound::Read(Received::HistoryOffer { .. }))),
        "{got:?}"
    );
    for e in [&key, &offered] {
        let mut relay = Served::new(vec![renewal.clone()]);
        assert!(matches!(
            drive_unchanged(&mut w, c2, &mut relay, e),
            Ok(Inbound::Duplicate(_))
        ));
    }
}

/// The same, stepped with `Receiving` and a restart between the step that asks for the list
/// and the one after it (a new `Receiving`): the new receive fetches again and keeps it; the
/// renewal, when served, reads it.
#[test]
fn the_stepper_across_restarts_keeps_then_reads() {
    use ratchetry::driver::{ReceiveStep, Receiving};
    let Expired {
        mut w,
        alice,
        c2,
        b1,
        stale,
        renewal,
        ..
    } = expired("review50 stepper");
    let o = w.send(b1, alice, b"stepped");
    let e = World::envelope_to(&o, c2);
    let now = w.now;
    let mut rng = ratchetry::testing::SeededRng::from_label("review50 stepper rng");
    for _ in 0..2 {
        w.restart(c2);
        let mut device = w.devices.remove(&c2).unwrap();
        let mut r = Receiving::new();
        assert_eq!(
            r.step(&mut device, &mut rng, now, &e, |_| false),
            Ok(ReceiveStep::NeedDeviceList(alice))
        );
        // The stale list is refused as a rollback: nothing newer.
        assert!(
            device
                .update_device_list(now, &alice, stale.clone())
                .is_err()
        );
        assert_eq!(
            r.step(&mut device, &mut rng, now, &e, |_| false),
            Ok(ReceiveStep::Done(Inbound::AwaitList { account: alice }))
        );
        assert!(!device.has_changes());
        w.devices.insert(c2, device);
    }
    w.restart(c2);
    let mut device = w.devices.remove(&c2).unwrap();
    let mut r = Receiving::new();
    assert_eq!(
        r.step(&mut device, &mut rng, now, &e, |_| false),
        Ok(ReceiveStep::NeedDeviceList(alice))
    );
    device.update_device_list(now, &alice, renewal).unwrap();
    match r.step(&mut device, &mut rng, now, &e, |_| false) {
        Ok(ReceiveStep::Done(Inbound::Read(r))) => assert_eq!(body(&r), Some(&b"stepped"[..])),
        other => panic!("{other:?}"),
    }
    w.devices.insert(c2, device);
    w.persist(c2);
}

/// Bob writes under the renewal (listing C2), but by the time C2 fetches, Alice unlinked C2:
/// the relay serves the unlink (after a stale fetch, and through a restart). C2 takes it, sees
/// the envelope names an older own list than held, and the driver drops it
/// (`ThisDeviceInactive`): not kept forever.
#[test]
fn an_envelope_under_a_renewal_followed_by_an_unlink_ends_dropped() {
    let Expired {
        mut w,
        alice,
        c2,
        a1,
        b1,
        stale,
        renewal,
        ..
    } = expired("review50 renewal then unlink");
    let o = w.send(b1, alice, b"under the renewal");
    let e = World::envelope_to(&o, c2);
    let now = w.now;
    w.primary(&alice).unlink(now, c2.device).unwrap();
    let unlink = signed(&mut w, &alice);
    publish_to(&mut w, &alice, &[a1, b1]);
    let mut replica = Served::new(vec![stale]);
    assert_eq!(
        drive_unchanged(&mut w, c2, &mut replica, &e),
        Ok(Inbound::AwaitList { account: alice })
    );
    w.restart(c2);
    let mut relay = Served::new(vec![unlink.clone()]);
    assert_eq!(
        drive(&mut w, c2, &mut relay, &e),
        Ok(Inbound::Dropped(inactive()))
    );
    assert_eq!(relay.fetches, 2, "the unlink, then nothing newer");
    w.restart(c2);
    assert_eq!(own_version(&mut w, c2), unlink.version());
    // Again later, served the renewal and the unlink: dropped at once.
    let mut relay = Served::new(vec![renewal, unlink.clone()]);
    assert_eq!(
        drive_unchanged(&mut w, c2, &mut relay, &e),
        Ok(Inbound::Dropped(inactive()))
    );
}

/// C2 is restored from a backup on day 16 (its list expired it, and it awaits an own list,
/// 19.4). Its phone writes to Bob under the renewal, with an own copy to C2: kept
/// (`AwaitList`) served a stale list, and served the renewal too (issued before the restore,
/// it does not end the wait: `AwaitingOwnList`); read once the phone signs a list after the
/// restore.
#[test]
fn a_restored_expired_companion_keeps_an_own_copy_until_a_list_since_its_restore() {
    let Expired {
        mut w,
        alice,
        bob,
        a1,
        c2,
        stale,
        renewal,
        ..
    } = expired("review50 restored");
    let backup = w.device(c2).to_bytes();
    let now = w.now;
    *w.device(c2) = Device::restore_from_backup(&backup, now).unwrap();
    w.persist(c2);
    assert!(w.device(c2).awaiting_own_list());
    let o = w.send(a1, bob, b"own copy");
    let e = World::envelope_to(&o, c2);
    w.refused(c2, &e, lapsed());
    let mut replica = Served::new(vec![stale]);
    assert_eq!(
        drive_unchanged(&mut w, c2, &mut replica, &e),
        Ok(Inbound::AwaitList { account: alice })
    );
    let mut relay = Served::new(vec![renewal]);
    assert_eq!(
        drive(&mut w, c2, &mut relay, &e),
        Ok(Inbound::AwaitList { account: alice })
    );
    assert!(w.device(c2).awaiting_own_list());
    w.restart(c2);
    w.now = w.now.plus_millis(1000);
    let now = w.now;
    w.primary(&alice).renew(now).unwrap();
    let since = signed(&mut w, &alice);
    let mut relay = Served::new(vec![since]);
    match drive(&mut w, c2, &mut relay, &e) {
        Ok(Inbound::Read(r)) => assert_eq!(body(&r), Some(&b"own copy"[..])),
        other => panic!("{other:?}"),
    }
    assert!(!w.device(c2).awaiting_own_list());
}
