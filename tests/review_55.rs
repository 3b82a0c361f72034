//! Review 55: commit fa7e4a5, "History offers carry the time they were made" (PROTOCOL.md 18.2
//! "Membership.", 19.1 records `0x16` and `0x18`).
//!
//! Attacked, as the relay (holding back, reordering and dropping envelopes) with a stolen
//! companion of the victim's own account (listed until the unlink reaches the victim, clock
//! of its choosing): the order offers apply in (held-back, same-millisecond and far-ahead
//! stamps, chains of far-ahead offers, honest clocks that disagree by more than the
//! allowance), leaving groups by an offer (an offer naming no group), member removal by an
//! offer (sender keys dropped, rotation, refusal of the removed member), the own-device
//! departure that unconfirms offered groups, the app's vouch / set / forget, restore from a
//! backup, refusals, and persistence (every step reloaded from its records and from
//! `to_bytes`).
//!
//! Held:
//! - A stolen companion's offers are bounded: stamped beyond the allowance, not applied;
//!   stamped as far ahead as the desktop takes (one naming no group, which leaves the offered
//!   group; one installing a group with the relay's account), applied, but after the unlink
//!   the relay's group is unconfirmed, the stolen companion's next offer is refused unchanged,
//!   the phone's offer made at the last stolen stamp changes nothing, and the phone's next one
//!   puts the group it left back with the genuine members
//!   (`a_stolen_companions_offers_ahead_hold_the_phone_back_for_the_allowance_only`).
//! - A member removed by a newer offer loses her sender key on the companion (record gone),
//!   her group message is refused unchanged, and the companion's next send rotates away
//!   from her: she reads none of it
//!   (`a_member_removed_by_an_offer_is_rotated_away_and_refused`).
//! - A group left by an offer keeps no record keyed by it, and an answer to a retry asked for
//!   it before is refused unchanged
//!   (`an_answer_for_a_group_left_by_an_offer_is_refused_unchanged`).
//! - Offers naming the receiving account, of the retired kind `0x09`, with a truncated time or
//!   trailing bytes are typed errors and leave the device byte-identical with nothing to
//!   persist (`malformed_offers_change_nothing`).
//! - A device restored from a stale snapshot (`Device::restore`) takes no offer, the held-back
//!   one nor a newer one, and keeps no `0x18` record
//!   (`a_device_restored_from_a_stale_snapshot_takes_no_offer`).
//! - Model check: three lives of 120 random steps (offers with random stamps and memberships,
//!   some beyond the allowance, some older or of the same millisecond; vouch, set, forget; an
//!   own device unlinked; restarts) give exactly the groups, members, offered and unconfirmed
//!   marks, reported groups and `0x18` time the rules of 18.2 say, and after every step the
//!   records and `to_bytes` load to the same state
//!   (`a_random_life_of_offers_follows_the_rules_and_always_reloads`).
//!
//! Findings (on fa7e4a5; 1 and 2 fixed in stop 50, their tests pass; 3 is a known limit):
//! 1. MEDIUM: the allowance cap turned delivery order into offer order when a phone's clock
//!    ran more than `OWN_LIST_CLOCK_ALLOWANCE_MS` ahead of the companion's: both of two such
//!    offers were capped at the companion's clock at receipt, so the relay that delivered the
//!    newer first and the older one later (after the companion's clock moved on) got the
//!    older applied, putting back a member the phone removed; she then got the companion's
//!    sender key (`an_older_offer_capped_later_does_not_roll_back_a_removal`). Fixed: offers
//!    compare by their own stamps, and one stamped beyond the allowance is not applied. What
//!    stays with such a clock (SECURITY.md): an offer delivered at once is not applied, so the
//!    relay chooses which of that phone's offers applies by delaying it
//!    (`with_a_phone_clock_beyond_the_allowance_the_relay_chooses_which_offer_applies`).
//! 2. LOW: `forget_group` of a group the companion did not hold (yet) did not take the groups
//!    over (`groups_by_app` stayed clear): the relay then delivered the offer it held back and
//!    the companion joined the group its app had just left
//!    (`forgetting_a_group_not_yet_held_keeps_a_held_back_offer_from_installing_it`). Fixed:
//!    `forget_group` takes the groups over whether the group is held or not.
//! 3. INFO (design; known limit, PROTOCOL.md 18.2, the guide): offers are ordered by when they
//!    were made, not by how current their membership is, and any own device may send one: a
//!    device whose groups are behind (the relay held back what would update it) that offers
//!    after the phone did puts back a member the phone removed
//!    (`a_stale_own_devices_later_offer_does_not_put_back_a_removed_member`, ignored). The
//!    guide has apps send offers from one device.

mod support;

use ratchetry::devices::{AccountKey, DeviceAddress};
use ratchetry::fanout::{Device, OWN_LIST_CLOCK_ALLOWANCE_MS, Received};
use ratchetry::group::GroupId;
use ratchetry::{DecodeError, Error, FanoutError};
use std::collections::BTreeMap;
use support::{World, Xorshift, offer_payload};

const FAMILY: GroupId = GroupId([0x51; 32]);
const EVIL: GroupId = GroupId([0x52; 32]);

/// The groups an offer reports.
fn reported(got: Result<Received, Error>) -> Vec<GroupId> {
    match got {
        Ok(Received::HistoryOffer { groups, .. }) => groups,
        other => panic!("{other:?}"),
    }
}

fn members(w: &mut World, device: DeviceAddress, group: GroupId) -> Option<Vec<AccountKey>> {
    w.device(device).group_members(group).map(|m| {
        let mut v: Vec<AccountKey> = m.collect();
        v.sort_unstable();
        v
    })
}

fn sorted(mut v: Vec<AccountKey>) -> Vec<AccountKey> {
    v.sort_unstable();
    v
}

fn newest_record(w: &World, device: DeviceAddress) -> Option<u64> {
    w.stores[&device]
        .0
        .get(&[0x18u8][..])
        .map(|v| u64::from_be_bytes(v[..].try_into().unwrap()))
}

/// The device reloaded from its records and from its whole-state bytes is the same device.
fn reloads_the_same(w: &mut World, device: DeviceAddress) {
    let live = w.device(device).to_bytes();
    let from_records = w.stores[&device].load();
    assert_eq!(
        *from_records.to_bytes(),
        *live,
        "{device:?}'s records load to another state"
    );
    let from_bytes = Device::from_bytes(&live).unwrap();
    assert_eq!(*from_bytes.to_bytes(), *live);
}

// ---------------------------------------------------------------------------------------------
// Finding 1: clocks more than the allowance apart
// ---------------------------------------------------------------------------------------------

/// Alice's phone's clock runs ten minutes ahead of her new desktop's (either may be wrong).
/// The phone offers FAMILY with Bob and Carol, removes Carol, and offers again ten seconds
/// later, its clock ten minutes ahead of the desktop's. Found on fa7e4a5: the relay delivered
/// the newer offer first, at the desktop's clock `t` (its time capped at `t + 300 s`), then
/// the older one at `t + 301 s` (capped at `t + 601 s`, above the stored time), and Carol was
/// back in FAMILY on the desktop, which then handed her its sender key.
///
/// Fixed in stop 50: offers compare by their own stamps, and one stamped more than the
/// allowance after the receiver's clock is not applied. Delivered once the desktop's clock is
/// within the allowance of the newer stamp, the newer offer applies and the older one, after
/// it, never does: Carol stays out and gets nothing.
#[test]
fn an_older_offer_capped_later_does_not_roll_back_a_removal() {
    let mut w = World::new("review55 capped reorder");
    let alice = w.account(0);
    let bob = w.account(0);
    let carol = w.account(0);
    w.publish_all();
    w.set_members(FAMILY, &[alice, bob, carol]);
    let (phone, c1) = (World::addr(alice, 1), World::addr(carol, 1));
    let desktop = w.link(&alice);
    w.publish_all();
    let t = w.now;

    // The phone's clock: ten minutes ahead.
    w.now = t.plus_millis(600_000);
    let older = w.offer_envelope(phone, desktop);
    w.device(phone).set_group_members(FAMILY, &[bob]).unwrap();
    w.persist(phone);
    w.now = t.plus_millis(610_000);
    let newer = w.offer_envelope(phone, desktop);

    // The desktop's clock, within the allowance of the newer stamp.
    w.now = t.plus_millis(610_000 - OWN_LIST_CLOCK_ALLOWANCE_MS);
    assert_eq!(reported(w.receive(desktop, &newer)), [FAMILY]);
    assert_eq!(members(&mut w, desktop, FAMILY), Some(vec![bob]));
    w.now = t.plus_millis(OWN_LIST_CLOCK_ALLOWANCE_MS + 1_000);
    let got = reported(w.receive(desktop, &older));
    let mut wrong = Vec::new();
    if !got.is_empty() {
        wrong.push(format!("the older offer was applied: {got:?}"));
    }
    if members(&mut w, desktop, FAMILY) != Some(vec![bob]) {
        wrong.push("Carol, removed by the newer offer, is a member again".to_string());
    }
    let o = w.send_group(desktop, FAMILY, b"after the reorder");
    if o.recipients().contains(&c1) {
        wrong.push("the desktop's group message goes to Carol".to_string());
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// The bound that stays (SECURITY.md): with the phone's clock more than the allowance ahead,
/// an offer the relay delivers at once is not applied (it is read, so never applied later),
/// and an older one it delivers once the desktop's clock has caught up is: the relay chooses
/// which of such a phone's offers applies. Pinned here.
#[test]
fn with_a_phone_clock_beyond_the_allowance_the_relay_chooses_which_offer_applies() {
    let mut w = World::new("review55 clock beyond allowance");
    let alice = w.account(0);
    let bob = w.account(0);
    let carol = w.account(0);
    w.publish_all();
    w.set_members(FAMILY, &[alice, bob, carol]);
    let phone = World::addr(alice, 1);
    let desktop = w.link(&alice);
    w.publish_all();
    let t = w.now;
    w.now = t.plus_millis(600_000);
    let older = w.offer_envelope(phone, desktop);
    w.device(phone).set_group_members(FAMILY, &[bob]).unwrap();
    w.persist(phone);
    w.now = t.plus_millis(610_000);
    let newer = w.offer_envelope(phone, desktop);
    w.now = t;
    assert_eq!(reported(w.receive(desktop, &newer)), []);
    assert_eq!(newest_record(&w, desktop), None);
    w.now = t.plus_millis(OWN_LIST_CLOCK_ALLOWANCE_MS + 1_000);
    assert_eq!(reported(w.receive(desktop, &older)), [FAMILY]);
    assert_eq!(
        members(&mut w, desktop, FAMILY),
        Some(sorted(vec![bob, carol]))
    );
}

// ---------------------------------------------------------------------------------------------
// Finding 2: forgetting a group not yet held
// ---------------------------------------------------------------------------------------------

/// The phone offers FAMILY to Alice's new desktop; the relay holds the offer back. The user
/// leaves FAMILY, and the app forgets it on every device, the desktop included, which does not
/// hold it yet. The relay drops the phone's later offers and delivers the held one. On
/// fa7e4a5 `forget_group` did nothing there, the groups stayed the offers', and the desktop
/// joined FAMILY and read its members' traffic; fixed in stop 50.
///
/// Wanted: once the app forgot a group on the device, no offer installs it (18.2: the app
/// "forgotten a group on this device"). Suggested fix: `forget_group` takes the groups over
/// (`groups_by_app`, record `0x18` deleted) whether or not the group is held.
#[test]
fn forgetting_a_group_not_yet_held_keeps_a_held_back_offer_from_installing_it() {
    let mut w = World::new("review55 forget unheld");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    w.set_members(FAMILY, &[alice, bob]);
    let phone = World::addr(alice, 1);
    let desktop = w.link(&alice);
    w.publish_all();
    let held_back = w.offer_envelope(phone, desktop);
    w.device(phone).forget_group(FAMILY);
    w.persist(phone);
    w.device(desktop).forget_group(FAMILY);
    w.persist(desktop);
    let got = reported(w.receive(desktop, &held_back));
    assert!(got.is_empty(), "the held-back offer installed {got:?}");
    assert_eq!(w.device(desktop).groups().count(), 0);
}

// ---------------------------------------------------------------------------------------------
// Finding 3: a stale own device's later offer
// ---------------------------------------------------------------------------------------------

/// Alice's phone and laptop hold FAMILY with Bob and Carol. The phone removes Carol and offers
/// the new desktop FAMILY with Bob; the laptop, whose groups are behind (its app has not
/// synced the removal yet: the relay can hold back whatever would tell it), offers the
/// desktop a second later, with Carol. Offers are ordered by when they were made, not by how
/// current their membership is: the laptop's is newer, and Carol is back in FAMILY on the
/// desktop, with its sender key at its next send.
///
/// Wanted: a membership the phone made current is not rolled back by another own device's
/// stale one. Suggested fix: apply a membership only from the primary (the device that links
/// companions and whose groups the offers copy), or document that only one device may send
/// offers; limiting it to the primary also takes the stolen-companion offers of reviews 46 and
/// 47 out of reach.
#[test]
#[ignore = "KNOWN LIMIT (PROTOCOL.md 18.2): an own device's stale but later offer puts back a member the phone removed; apps send offers from one device"]
fn a_stale_own_devices_later_offer_does_not_put_back_a_removed_member() {
    let mut w = World::new("review55 stale laptop");
    let alice = w.account(1);
    let bob = w.account(0);
    let carol = w.account(0);
    w.publish_all();
    w.set_members(FAMILY, &[alice, bob, carol]);
    let (phone, laptop) = (World::addr(alice, 1), World::addr(alice, 2));
    let desktop = w.link(&alice);
    w.publish_all();
    w.device(phone).set_group_members(FAMILY, &[bob]).unwrap();
    w.persist(phone);
    let current = w.offer_envelope(phone, desktop);
    assert_eq!(reported(w.receive(desktop, &current)), [FAMILY]);
    w.now = w.now.plus_millis(1_000);
    let stale = w.offer_envelope(laptop, desktop);
    let got = reported(w.receive(desktop, &stale));
    assert_eq!(
        members(&mut w, desktop, FAMILY),
        Some(vec![bob]),
        "the laptop's stale offer changed {got:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Held: a stolen companion's offers stamped ahead
// ---------------------------------------------------------------------------------------------

/// Alice's laptop is stolen while still listed on her new desktop, which holds FAMILY from the
/// phone's offer. Its offer stamped with the latest time there is is not applied (stop 50,
/// after this review's finding 1; on fa7e4a5 it was capped and applied). Stamped as far ahead
/// as the desktop takes: one that names no group (the desktop leaves FAMILY), then, 200 s
/// later, one that installs EVIL with Mallory. Then the unlink reaches the desktop: EVIL is
/// unconfirmed (nothing sent to it), and the laptop's next offer is refused unchanged. The
/// phone's offer made at the last stolen stamp (200 s + the allowance) is not newer; the next
/// millisecond's puts FAMILY back with Bob alone, offered and usable, and leaves EVIL as it is.
#[test]
fn a_stolen_companions_offers_ahead_hold_the_phone_back_for_the_allowance_only() {
    let mut w = World::new("review55 stolen far ahead");
    let alice = w.account(1);
    let bob = w.account(0);
    let mallory = w.account(0);
    w.publish_all();
    w.set_members(FAMILY, &[alice, bob]);
    let (phone, laptop) = (World::addr(alice, 1), World::addr(alice, 2));
    let (b1, m1) = (World::addr(bob, 1), World::addr(mallory, 1));
    let desktop = w.link(&alice);
    w.publish_all();
    let t = w.now;
    let genuine = w.offer_envelope(phone, desktop);
    assert_eq!(reported(w.receive(desktop, &genuine)), [FAMILY]);
    let hi = w.send(laptop, alice, b"warm up");
    w.deliver_ok(&hi);

    let offer = w.history_offer();
    let far = w.seal_payload(laptop, desktop, &offer_payload(u64::MAX, &offer, &[]));
    assert_eq!(reported(w.receive(desktop, &far)), []);
    assert_eq!(w.device(desktop).groups().collect::<Vec<_>>(), [FAMILY]);
    let ahead = t.as_millis() + OWN_LIST_CLOCK_ALLOWANCE_MS;
    let none = w.seal_payload(laptop, desktop, &offer_payload(ahead, &offer, &[]));
    assert_eq!(reported(w.receive(desktop, &none)), [FAMILY]);
    assert_eq!(w.device(desktop).groups().count(), 0);
    w.now = t.plus_millis(200_000);
    let last = t.plus_millis(200_000 + OWN_LIST_CLOCK_ALLOWANCE_MS);
    let evil = offer_payload(last.as_millis(), &offer, &[(EVIL, vec![mallory])]);
    let evil = w.seal_payload(laptop, desktop, &evil);
    assert_eq!(reported(w.receive(desktop, &evil)), [EVIL]);
    assert_eq!(newest_record(&w, desktop), Some(last.as_millis()));
    let after_unlink = offer_payload(u64::MAX, &offer, &[(FAMILY, vec![mallory])]);
    let after_unlink = w.seal_payload(laptop, desktop, &after_unlink);

    // The unlink.
    let now = w.now;
    w.devices.remove(&laptop);
    w.primary(&alice).unlink(now, laptop.device).unwrap();
    w.publish(&alice);
    assert_eq!(
        w.device(desktop).unconfirmed_groups().collect::<Vec<_>>(),
        [EVIL]
    );
    let d = w.device(desktop);
    let before = d.to_bytes();
    assert!(d.receive(now, &after_unlink).is_err());
    assert_eq!(*before, *d.to_bytes());
    assert!(!d.has_changes());

    // The phone's offers: at the stored time, not newer; the next millisecond's, applied.
    w.now = last;
    let at = w.offer_envelope(phone, desktop);
    assert_eq!(reported(w.receive(desktop, &at)), []);
    w.now = last.plus_millis(1);
    let next = w.offer_envelope(phone, desktop);
    assert_eq!(reported(w.receive(desktop, &next)), [FAMILY]);
    assert_eq!(members(&mut w, desktop, FAMILY), Some(vec![bob]));
    assert_eq!(
        w.device(desktop).unconfirmed_groups().collect::<Vec<_>>(),
        [EVIL]
    );
    let refused = w.run(desktop, |d, rng, now| d.send_group(rng, now, EVIL, b"x"));
    assert_eq!(
        refused.err(),
        Some(FanoutError::GroupUnconfirmed(EVIL).into())
    );
    let o = w.send_group(desktop, FAMILY, b"family again");
    assert!(!o.recipients().contains(&m1));
    assert!(o.recipients().contains(&b1));
    assert!(w.reads(&o, b"family again"));
    w.restart(desktop);
    reloads_the_same(&mut w, desktop);
}

// ---------------------------------------------------------------------------------------------
// Held: a member removed by an offer
// ---------------------------------------------------------------------------------------------

/// The desktop holds FAMILY (Bob, Carol) from an offer, has Carol's sender key and gave her
/// its own. The phone removes Carol; its newer offer gives the desktop FAMILY with Bob alone:
/// Carol's sender key is gone (no record names her and FAMILY), her next group message is
/// refused unchanged (`NotAMember`), and the desktop's next message rotates its key: Carol is
/// sent nothing and cannot read the group envelope the relay hands her.
#[test]
fn a_member_removed_by_an_offer_is_rotated_away_and_refused() {
    let mut w = World::new("review55 removal rotates");
    let alice = w.account(0);
    let bob = w.account(0);
    let carol = w.account(0);
    w.publish_all();
    w.set_members(FAMILY, &[alice, bob, carol]);
    let (phone, c1) = (World::addr(alice, 1), World::addr(carol, 1));
    let desktop = w.link(&alice);
    w.publish_all();
    let first = w.offer_envelope(phone, desktop);
    assert_eq!(reported(w.receive(desktop, &first)), [FAMILY]);
    let o = w.send_group(c1, FAMILY, b"from carol");
    assert!(w.reads(&o, b"from carol"));
    let o = w.send_group(desktop, FAMILY, b"to carol");
    assert!(w.reads(&o, b"to carol"));
    let carol_key = |w: &World| {
        w.stores[&desktop]
            .0
            .keys()
            .any(|k| k[0] == 0x0c && k.windows(32).any(|x| x == carol.to_bytes()))
    };
    assert!(
        carol_key(&w),
        "an inbound record of Carol's key (kind 0x0c)"
    );

    w.device(phone).set_group_members(FAMILY, &[bob]).unwrap();
    w.persist(phone);
    w.now = w.now.plus_millis(1);
    let second = w.offer_envelope(phone, desktop);
    assert_eq!(reported(w.receive(desktop, &second)), [FAMILY]);
    assert_eq!(members(&mut w, desktop, FAMILY), Some(vec![bob]));
    assert!(!carol_key(&w), "Carol's sender key is kept");
    reloads_the_same(&mut w, desktop);

    let hers = w.send_group(c1, FAMILY, b"still here?");
    let e = World::group_envelope_for(&hers, desktop);
    w.refused(
        desktop,
        &e,
        FanoutError::NotAMember {
            group: FAMILY,
            account: carol,
        }
        .into(),
    );
    let o = w.send_group(desktop, FAMILY, b"without carol");
    assert!(o.recipients().iter().all(|d| d.account != carol));
    assert!(!o.envelopes.is_empty(), "a new generation is distributed");
    let (e, _) = o.group.clone().unwrap();
    let now = w.now;
    assert!(w.device(c1).clone().receive(now, &e).is_err());
    assert!(w.reads(&o, b"without carol"));
}

/// The desktop fails to read Carol's FAMILY message (the relay broke it) and asks her again;
/// before her answer arrives, the phone's newer offer no longer names FAMILY, and the desktop
/// leaves it. No record of the group's members, marks, keys or ledgers is left; the retry
/// asked (a record that names no group in its key) stays until it ages out, and Carol's
/// answer, read for a group no longer held, is refused unchanged (`UnknownGroup`).
#[test]
fn an_answer_for_a_group_left_by_an_offer_is_refused_unchanged() {
    let mut w = World::new("review55 pending after leave");
    let alice = w.account(0);
    let bob = w.account(0);
    let carol = w.account(0);
    w.publish_all();
    w.set_members(FAMILY, &[alice, bob, carol]);
    let (phone, c1) = (World::addr(alice, 1), World::addr(carol, 1));
    let desktop = w.link(&alice);
    w.publish_all();
    let first = w.offer_envelope(phone, desktop);
    assert_eq!(reported(w.receive(desktop, &first)), [FAMILY]);
    let o = w.send_group(desktop, FAMILY, b"hello");
    assert!(w.reads(&o, b"hello"));
    let hers = w.send_group(c1, FAMILY, b"broken");
    for (to, e) in &hers.envelopes {
        if w.devices.contains_key(to) {
            let _ = w.receive(*to, e);
        }
    }
    let broken = support::tampered(&World::group_envelope_for(&hers, desktop));
    assert!(w.receive(desktop, &broken).is_err());
    let (to, request) = w
        .request_retry(
            desktop,
            &broken,
            ratchetry::fanout::RetryReason::AuthenticationFailed,
        )
        .unwrap();
    assert_eq!(to, c1);
    let Ok(Received::RetryRequest(req)) = w.receive(c1, &request) else {
        panic!("Carol reads the request")
    };
    let answer = w.answer(c1, &req, b"broken");

    w.device(phone).forget_group(FAMILY);
    w.persist(phone);
    w.now = w.now.plus_millis(1);
    let second = w.offer_envelope(phone, desktop);
    assert_eq!(reported(w.receive(desktop, &second)), [FAMILY]);
    assert!(
        w.stores[&desktop]
            .0
            .keys()
            .all(|k| !k.windows(32).any(|g| g == FAMILY.0)),
        "a record keyed by the group left remains"
    );
    reloads_the_same(&mut w, desktop);
    let mut answered = 0;
    for (to, e) in answer.envelopes.iter().filter(|(to, _)| *to == desktop) {
        w.refused(*to, e, FanoutError::UnknownGroup(FAMILY).into());
        answered += 1;
    }
    assert!(answered > 0, "Carol answered the desktop");
    w.restart(desktop);
    reloads_the_same(&mut w, desktop);
}

// ---------------------------------------------------------------------------------------------
// Held: refusals
// ---------------------------------------------------------------------------------------------

/// On a desktop that applied an offer: an offer naming Alice's own account, one of the retired
/// kind 0x09 (no time), one whose time is cut short, and one with a byte after its membership
/// are refused with typed errors, byte-identical and with nothing to persist; a genuine newer
/// offer then still applies.
#[test]
fn malformed_offers_change_nothing() {
    let mut w = World::new("review55 malformed");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    w.set_members(FAMILY, &[alice, bob]);
    let phone = World::addr(alice, 1);
    let desktop = w.link(&alice);
    w.publish_all();
    let first = w.offer_envelope(phone, desktop);
    assert_eq!(reported(w.receive(desktop, &first)), [FAMILY]);
    let offer = w.history_offer();
    let later = w.now.as_millis() + 10;
    let own = offer_payload(later, &offer, &[(EVIL, vec![alice])]);
    let mut retired = offer_payload(later, &offer, &[(EVIL, vec![bob])]);
    retired[2] = 0x09;
    retired.drain(3..11);
    let truncated = offer_payload(later, &offer, &[])[..7].to_vec();
    let mut trailing = offer_payload(later, &offer, &[(EVIL, vec![bob])]);
    trailing.push(0);
    for (plaintext, expected) in [
        (own, DecodeError::InvalidValue),
        (retired, DecodeError::InvalidValue),
        (truncated, DecodeError::Truncated),
        (trailing, DecodeError::TrailingBytes),
    ] {
        let e = w.seal_payload(phone, desktop, &plaintext);
        w.refused(desktop, &e, expected.into());
    }
    assert_eq!(w.device(desktop).groups().collect::<Vec<_>>(), [FAMILY]);
    w.now = w.now.plus_millis(20);
    w.device(phone).set_group_members(EVIL, &[bob]).unwrap();
    w.persist(phone);
    let next = w.offer_envelope(phone, desktop);
    assert_eq!(reported(w.receive(desktop, &next)), [EVIL]);
}

// ---------------------------------------------------------------------------------------------
// Held: restore
// ---------------------------------------------------------------------------------------------

/// The desktop holds FAMILY from an offer; its state is snapshot, it applies a newer offer
/// (Bob removed, EVIL started), and is then restored from the stale snapshot
/// (`Device::restore` with the epoch the app kept). Once it holds an own list issued since,
/// neither the newer offer read again (a duplicate) nor a still newer one changes a group:
/// every group is unconfirmed, no `0x18` record is kept, and the records load.
#[test]
fn a_device_restored_from_a_stale_snapshot_takes_no_offer() {
    let mut w = World::new("review55 restore");
    let alice = w.account(0);
    let bob = w.account(0);
    let carol = w.account(0);
    w.publish_all();
    w.set_members(FAMILY, &[alice, bob, carol]);
    let phone = World::addr(alice, 1);
    let desktop = w.link(&alice);
    w.publish_all();
    let first = w.offer_envelope(phone, desktop);
    assert_eq!(reported(w.receive(desktop, &first)), [FAMILY]);
    let snapshot = w.device(desktop).to_bytes();
    w.device(phone).set_group_members(FAMILY, &[carol]).unwrap();
    w.device(phone).set_group_members(EVIL, &[bob]).unwrap();
    w.persist(phone);
    w.now = w.now.plus_millis(1_000);
    let second = w.offer_envelope(phone, desktop);
    assert_eq!(reported(w.receive(desktop, &second)), [FAMILY, EVIL]);
    let kept_epoch = w.device(desktop).state_epoch();

    w.now = w.now.plus_millis(1_000);
    let now = w.now;
    let (restored, was_stale) = Device::restore(&snapshot, kept_epoch, now).unwrap();
    assert!(was_stale);
    w.devices.insert(desktop, restored);
    w.persist(desktop);
    assert!(newest_record(&w, desktop).is_none());
    let list = w.primary(&alice).renew(now).unwrap().signed().clone();
    w.device(desktop)
        .update_device_list(now, &alice, list)
        .unwrap();
    w.persist(desktop);
    w.publish(&alice);
    assert!(!w.device(desktop).awaiting_own_list());
    // The newer offer again: whatever the session makes of it, it changes no group.
    let _ = w.receive(desktop, &second);
    w.now = w.now.plus_millis(1_000);
    let third = w.offer_envelope(phone, desktop);
    assert_eq!(reported(w.receive(desktop, &third)), []);
    assert_eq!(w.device(desktop).groups().collect::<Vec<_>>(), [FAMILY]);
    assert_eq!(
        members(&mut w, desktop, FAMILY),
        Some(sorted(vec![bob, carol]))
    );
    assert_eq!(
        w.device(desktop).unconfirmed_groups().collect::<Vec<_>>(),
        [FAMILY]
    );
    assert!(newest_record(&w, desktop).is_none());
    w.restart(desktop);
    reloads_the_same(&mut w, desktop);
}

// ---------------------------------------------------------------------------------------------
// Held: a random life against a model of 18.2
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
struct ModelGroup {
    members: Vec<AccountKey>,
    offered: bool,
    unconfirmed: bool,
}

#[derive(Default, Debug)]
struct Model {
    groups: BTreeMap<GroupId, ModelGroup>,
    by_app: bool,
    newest: Option<u64>,
}

impl Model {
    /// 18.2's rules for an offer at `offered_at` received at `now`: the groups reported.
    fn offer(
        &mut self,
        now: u64,
        offered_at: u64,
        membership: &BTreeMap<GroupId, Vec<AccountKey>>,
    ) -> Vec<GroupId> {
        if self.by_app
            || offered_at > now.saturating_add(OWN_LIST_CLOCK_ALLOWANCE_MS)
            || self.newest.is_some_and(|n| n >= offered_at)
        {
            return Vec::new();
        }
        let mut changed = Vec::new();
        let offered = |g: &ModelGroup| g.offered && !g.unconfirmed;
        let leave: Vec<GroupId> = self
            .groups
            .iter()
            .filter(|(id, g)| offered(g) && !membership.contains_key(id))
            .map(|(id, _)| *id)
            .collect();
        for id in leave {
            self.groups.remove(&id);
            changed.push(id);
        }
        for (id, members) in membership {
            match self.groups.get_mut(id) {
                None => {
                    self.groups.insert(
                        *id,
                        ModelGroup {
                            members: members.clone(),
                            offered: true,
                            unconfirmed: false,
                        },
                    );
                    changed.push(*id);
                }
                Some(g) if offered(g) && g.members != *members => {
                    g.members = members.clone();
                    changed.push(*id);
                }
                Some(_) => {}
            }
        }
        self.newest = Some(offered_at);
        changed.sort_unstable();
        changed
    }

    fn set(&mut self, id: GroupId, members: Vec<AccountKey>) {
        if let Some(g) = self.groups.get_mut(&id)
            && g.members == members
            && !g.unconfirmed
        {
            g.offered = false;
            return;
        }
        self.groups.insert(
            id,
            ModelGroup {
                members,
                offered: false,
                unconfirmed: false,
            },
        );
        self.by_app = true;
        self.newest = None;
    }

    /// Held or not (stop 50, after this review's finding 2).
    fn forget(&mut self, id: GroupId) {
        self.groups.remove(&id);
        self.by_app = true;
        self.newest = None;
    }

    fn device_left(&mut self) {
        for g in self.groups.values_mut() {
            if g.offered {
                g.unconfirmed = true;
            }
        }
    }
}

/// The desktop's groups as the model sees them, read from the device and its records.
fn observed(w: &mut World, desktop: DeviceAddress) -> BTreeMap<GroupId, ModelGroup> {
    let groups: Vec<GroupId> = w.device(desktop).groups().collect();
    let unconfirmed: Vec<GroupId> = w.device(desktop).unconfirmed_groups().collect();
    groups
        .into_iter()
        .map(|id| {
            let offered = w.stores[&desktop]
                .0
                .contains_key(&[&[0x16u8][..], &id.0].concat());
            let g = ModelGroup {
                members: members(w, desktop, id).unwrap(),
                offered,
                unconfirmed: unconfirmed.contains(&id),
            };
            (id, g)
        })
        .collect()
}

/// 120 random steps on a new desktop whose groups come from the phone's offers, with random
/// times (some more than the allowance ahead of the desktop's clock, many older than the
/// last applied, some the same) and random memberships (none, some, all of four groups),
/// the app now and then vouching for a group (and, in the last 30 steps, setting or forgetting
/// one, after which no offer applies), an own tablet linked and
/// unlinked, and restarts. After every step the device matches the model of 18.2 (groups,
/// members, offered and unconfirmed marks, the groups reported, the `0x18` time) and reloads
/// from its records and its bytes to the same state.
#[test]
fn a_random_life_of_offers_follows_the_rules_and_always_reloads() {
    let groups: Vec<GroupId> = (0..4u8).map(|i| GroupId([0x60 + i; 32])).collect();
    // What the lives reached: offers applied, not applied, stamped beyond the allowance,
    // groups left, unlinks.
    let (mut applied, mut ignored, mut beyond, mut left, mut unlinked) = (0, 0, 0, 0, 0);
    for seed in [0x5555_1234_u64, 0x0bad_cafe, 0x1357_9bdf] {
        let mut w = World::new(&format!("review55 life {seed}"));
        let alice = w.account(0);
        let others: Vec<AccountKey> = (0..3).map(|_| w.account(0)).collect();
        w.publish_all();
        let phone = World::addr(alice, 1);
        let desktop = w.link(&alice);
        w.publish_all();
        let hi = w.send(phone, alice, b"warm up");
        w.deliver_ok(&hi);
        let offer = w.history_offer();
        let mut rng = Xorshift(seed);
        let mut model = Model::default();
        let mut unlinks = 0;
        for step in 0..120 {
            w.now = w.now.plus_millis(rng.next(60_000));
            let now = w.now.as_millis();
            match rng.below(100) {
                0..60 => {
                    // An offer made up to a minute before or after the desktop's clock, now and
                    // then up to 20 minutes ahead of it, or at the time of the last applied.
                    let offered_at = match (rng.chance(15), model.newest) {
                        (true, Some(n)) => n,
                        _ if rng.chance(4) => now + rng.next(1_200_000),
                        _ => now - 60_000 + rng.next(120_000),
                    };
                    let mut membership = BTreeMap::new();
                    for g in &groups {
                        if rng.chance(50) {
                            let m: Vec<AccountKey> =
                                others.iter().filter(|_| rng.chance(50)).copied().collect();
                            membership.insert(*g, sorted(m));
                        }
                    }
                    let list: Vec<(GroupId, Vec<AccountKey>)> =
                        membership.iter().map(|(g, m)| (*g, m.clone())).collect();
                    let e =
                        w.seal_payload(phone, desktop, &offer_payload(offered_at, &offer, &list));
                    let before: Vec<GroupId> = model.groups.keys().copied().collect();
                    let newest = model.newest;
                    let want = model.offer(now, offered_at, &membership);
                    if model.newest == newest {
                        ignored += 1;
                        beyond += usize::from(offered_at > now + OWN_LIST_CLOCK_ALLOWANCE_MS);
                    } else {
                        applied += 1;
                        left += before
                            .iter()
                            .filter(|g| !model.groups.contains_key(g))
                            .count();
                    }
                    assert_eq!(
                        reported(w.receive(desktop, &e)),
                        want,
                        "seed {seed} step {step}: offer at {offered_at}"
                    );
                }
                60..72 => {
                    // The app vouches for a held group (its members again).
                    // Before the last 30 steps, only a confirmed one (an unconfirmed one set
                    // again is a set: the app takes the groups over).
                    let unconfirmed: Vec<GroupId> =
                        w.device(desktop).unconfirmed_groups().collect();
                    let held: Vec<GroupId> = w
                        .device(desktop)
                        .groups()
                        .filter(|g| step >= 90 || !unconfirmed.contains(g))
                        .collect();
                    if !held.is_empty() {
                        let g = held[rng.below(held.len())];
                        let m = members(&mut w, desktop, g).unwrap();
                        w.device(desktop).set_group_members(g, &m).unwrap();
                        w.persist(desktop);
                        model.set(g, m);
                    }
                }
                72..75 if step >= 90 => {
                    let g = groups[rng.below(groups.len())];
                    let m = vec![others[rng.below(others.len())]];
                    w.device(desktop).set_group_members(g, &m).unwrap();
                    w.persist(desktop);
                    model.set(g, m);
                }
                75..78 if step >= 90 => {
                    let g = groups[rng.below(groups.len())];
                    w.device(desktop).forget_group(g);
                    w.persist(desktop);
                    model.forget(g);
                }
                78..82 if unlinks < 2 => {
                    unlinks += 1;
                    unlinked += 1;
                    let tablet = w.link(&alice);
                    w.publish(&alice);
                    w.devices.remove(&tablet);
                    let now = w.now;
                    w.primary(&alice).unlink(now, tablet.device).unwrap();
                    w.publish(&alice);
                    model.device_left();
                }
                _ => w.restart(desktop),
            }
            assert_eq!(
                observed(&mut w, desktop),
                model.groups,
                "seed {seed} step {step}"
            );
            assert_eq!(
                newest_record(&w, desktop),
                model.newest,
                "seed {seed} step {step}"
            );
            reloads_the_same(&mut w, desktop);
        }
    }
    assert!(
        applied >= 60 && ignored >= 40 && beyond >= 2 && left >= 5 && unlinked >= 2,
        "the lives reached too little: {applied} applied, {ignored} not, {beyond} beyond, \
         {left} left, {unlinked} unlinks"
    );
}
