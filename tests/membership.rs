//! Group membership reaches a newly linked companion with its history offer (issue #20,
//! PROTOCOL.md 18.2): the companion installs the groups it does not hold, sends to them at
//! once and reads the members' replies; a membership from another account, a malformed one,
//! or one over the bounds is refused with a typed error and changes nothing; a group the
//! companion holds keeps its own (newer) members.

mod support;

use ratchetry::IdentityKeyPair;
use ratchetry::devices::{AccountKey, AccountKeyPair, DeviceAddress, LinkRequest, Primary};
use ratchetry::fanout::{
    Device, Event, MAX_GROUP_MEMBERS, MAX_MEMBERSHIP_GROUPS, OWN_LIST_CLOCK_ALLOWANCE_MS, Received,
};
use ratchetry::group::GroupId;
use ratchetry::history::HistoryOffer;
use ratchetry::{DecodeError, Error, FanoutError, SyncError};
use support::{World, body, offer_payload};

const FAMILY: GroupId = GroupId([0x01; 32]);
const WORK: GroupId = GroupId([0x02; 32]);
const OTHER: GroupId = GroupId([0x03; 32]);
/// The time a hand-built offer says it was made (PROTOCOL.md 18.2).
const OFFERED_AT: u64 = 1_700_000_000_000;

fn members(w: &mut World, device: DeviceAddress, group: GroupId) -> Option<Vec<AccountKey>> {
    w.device(device).group_members(group).map(|m| m.collect())
}

/// `from` sends its history offer to `to` (its own account's device); `to` reads it.
fn hand_over(w: &mut World, from: DeviceAddress, to: DeviceAddress) -> Received {
    let envelope = w.offer_envelope(from, to);
    w.receive(to, &envelope).unwrap()
}

/// A membership payload (PROTOCOL.md 18.2) built from its parts, as written, in any order.
fn payload(offer: &HistoryOffer, groups: &[(GroupId, Vec<AccountKey>)]) -> Vec<u8> {
    offer_payload(OFFERED_AT, offer, groups)
}

fn sorted(mut v: Vec<AccountKey>) -> Vec<AccountKey> {
    v.sort_unstable();
    v
}

fn invalid() -> Error {
    DecodeError::InvalidValue.into()
}

#[test]
fn a_companion_linked_after_two_groups_sends_to_both_and_reads_replies() {
    let mut w = World::new("membership two groups");
    let alice = w.account(0);
    let bob = w.account(0);
    let carol = w.account(1);
    w.publish_all();
    w.set_members(FAMILY, &[alice, bob]);
    w.set_members(WORK, &[alice, carol]);
    let (phone, b1, c1) = (
        World::addr(alice, 1),
        World::addr(bob, 1),
        World::addr(carol, 1),
    );
    // Both groups carry traffic before the link.
    for (from, group) in [(phone, FAMILY), (b1, FAMILY), (c1, WORK)] {
        let o = w.send_group(from, group, b"before the desktop");
        w.deliver_ok(&o);
    }

    // Alice links a desktop; everyone follows her new list.
    let desktop = w.link(&alice);
    w.publish(&alice);
    assert_eq!(w.device(desktop).groups().count(), 0);
    let got = hand_over(&mut w, phone, desktop);
    let Received::HistoryOffer { from, groups, .. } = got else {
        panic!("{got:?}")
    };
    assert_eq!((from, groups), (phone, vec![FAMILY, WORK]));
    assert_eq!(members(&mut w, desktop, FAMILY), Some(vec![bob]));
    assert_eq!(members(&mut w, desktop, WORK), Some(vec![carol]));
    // Installed groups are persisted: they survive a restart.
    w.restart(desktop);
    assert_eq!(
        w.device(desktop).groups().collect::<Vec<_>>(),
        [FAMILY, WORK]
    );

    // The desktop sends to both at once: its first send gives its sender key to every member
    // device, its own account's phone included.
    for (group, other) in [(FAMILY, bob), (WORK, carol)] {
        let o = w.send_group(desktop, group, b"hello from the desktop");
        let mut expected = w.devices_of(&other);
        expected.push(phone);
        let mut got_it: Vec<DeviceAddress> = w
            .deliver_ok(&o)
            .into_iter()
            .filter(|(_, r)| body(r) == Some(b"hello from the desktop".as_slice()))
            .map(|(to, _)| to)
            .collect();
        got_it.sort_unstable();
        expected.sort_unstable();
        assert_eq!(got_it, expected, "{group:?}");
    }

    // The members reply: their keys reach the desktop first, then the messages read.
    for (from, group) in [(b1, FAMILY), (c1, WORK), (World::addr(carol, 2), WORK)] {
        let o = w.send_group(from, group, b"welcome, desktop");
        let read = w
            .deliver_ok(&o)
            .into_iter()
            .any(|(to, r)| to == desktop && body(&r) == Some(b"welcome, desktop".as_slice()));
        assert!(read, "{from:?} in {group:?}");
    }
}

/// Groups an offer installed and the app has not set since are unconfirmed once an own
/// device leaves (PROTOCOL.md 18.2): the one that left may have been stolen, and the relay may
/// have delivered its offer before the list that unlinked it. Review 47: also after the app
/// set another group. An own device joining, or a contact's device leaving, changes nothing;
/// a group the app set (the same members again too) stays as it is; the mark survives a
/// restart, and the app's members lift it.
#[test]
fn an_own_device_leaving_unconfirms_only_groups_offers_installed() {
    let mut w = World::new("membership own device leaves");
    let alice = w.account(1);
    let bob = w.account(1);
    let carol = w.account(0);
    w.publish_all();
    w.set_members(FAMILY, &[alice, bob]);
    w.set_members(WORK, &[alice, carol]);
    let (phone, a2, b2) = (
        World::addr(alice, 1),
        World::addr(alice, 2),
        World::addr(bob, 2),
    );
    let desktop = w.link(&alice);
    w.publish(&alice);
    hand_over(&mut w, phone, desktop);
    let now = w.now;
    let unconfirmed = |w: &mut World, d| w.device(d).unconfirmed_groups().collect::<Vec<_>>();

    // A tablet joins Alice's account; a companion of Bob's leaves his: nothing changes.
    let tablet = w.link(&alice);
    w.publish(&alice);
    w.primary(&bob).unlink(now, b2.device).unwrap();
    w.publish(&bob);
    assert_eq!(unconfirmed(&mut w, desktop), []);
    // The desktop's app vouches for FAMILY's members (the same again) and sets another group;
    // the tablet's app sets its groups itself.
    w.device(desktop)
        .set_group_members(FAMILY, &[alice, bob])
        .unwrap();
    w.device(desktop)
        .set_group_members(OTHER, &[alice, carol])
        .unwrap();
    w.persist(desktop);
    w.device(tablet).set_group_members(FAMILY, &[bob]).unwrap();
    w.persist(tablet);

    // Alice's first companion is unlinked: the desktop's WORK, still as offered, awaits its
    // members; its FAMILY and OTHER, the tablet's and the phone's groups do not.
    w.primary(&alice).unlink(now, a2.device).unwrap();
    w.publish(&alice);
    assert_eq!(unconfirmed(&mut w, desktop), [WORK]);
    assert_eq!(unconfirmed(&mut w, tablet), []);
    assert_eq!(unconfirmed(&mut w, phone), []);
    w.restart(desktop);
    assert_eq!(unconfirmed(&mut w, desktop), [WORK]);
    let refused = w.run(desktop, |d, rng, now| d.send_group(rng, now, WORK, b"x"));
    assert_eq!(
        refused.err(),
        Some(FanoutError::GroupUnconfirmed(WORK).into())
    );
    let o = w.send_group(desktop, FAMILY, b"family goes on");
    assert!(w.reads(&o, b"family goes on"));
    w.device(desktop).set_group_members(WORK, &[carol]).unwrap();
    w.persist(desktop);
    assert_eq!(unconfirmed(&mut w, desktop), []);
    let o = w.send_group(desktop, WORK, b"members set");
    assert!(w.reads(&o, b"members set"));
}

/// Records from before the offered mark (the app having set no group) load with every group
/// offered, and the load writes the marks. An offered group the app forgets takes its mark
/// with it: the records still load.
#[test]
fn the_offered_mark_is_inferred_for_older_records_and_goes_with_its_group() {
    let mut w = World::new("membership offered records");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    w.set_members(FAMILY, &[alice, bob]);
    w.set_members(WORK, &[alice, bob]);
    let phone = World::addr(alice, 1);
    let desktop = w.link(&alice);
    w.publish(&alice);
    hand_over(&mut w, phone, desktop);

    // The records as the release before 0x16 wrote them: no 0x16 record, and no 0x18.
    let mut old = w.stores[&desktop].clone();
    let marks: Vec<Vec<u8>> = old.0.keys().filter(|k| k[0] == 0x16).cloned().collect();
    assert_eq!(marks.len(), 2);
    for k in &marks {
        old.0.remove(k);
    }
    assert!(old.0.remove(&[0x18u8][..]).is_some());
    let mut loaded = old.load();
    let unit = loaded.take_changes(&mut w.rng);
    let written: Vec<&[u8]> = unit
        .records()
        .iter()
        .filter(|r| r.key()[0] == 0x16)
        .map(|r| r.key())
        .collect();
    assert_eq!(written, marks);
    // And the newest offer's record, as made at time 0: the next offer applies.
    let newest = unit.records().iter().find(|r| r.key() == [0x18]);
    assert_eq!(newest.and_then(|r| r.value()), Some(&[0u8; 8][..]));
    w.stores.get_mut(&desktop).unwrap().apply(&unit);
    w.devices.insert(desktop, loaded);

    w.device(desktop).forget_group(FAMILY);
    w.persist(desktop);
    w.restart(desktop);
    assert_eq!(w.device(desktop).groups().collect::<Vec<_>>(), [WORK]);
    let now = w.now;
    let companion = w.link(&alice);
    w.publish(&alice);
    w.primary(&alice).unlink(now, companion.device).unwrap();
    w.publish(&alice);
    assert_eq!(
        w.device(desktop).unconfirmed_groups().collect::<Vec<_>>(),
        [WORK]
    );
}

/// The same when an own device's id comes back with another identity (a primary restored
/// without its resync giving an id out again): the device behind the old identity may have
/// offered the groups.
#[test]
fn an_own_device_changing_identity_unconfirms_groups_offers_installed() {
    let mut w = World::new("membership own identity changes");
    let alice = w.account(1);
    let bob = w.account(0);
    w.publish_all();
    w.set_members(FAMILY, &[alice, bob]);
    let phone = World::addr(alice, 1);
    let desktop = w.link(&alice);
    let tablet = w.link(&alice);
    w.publish(&alice);
    hand_over(&mut w, phone, desktop);
    // The tablet is unlinked, the primary's next device id set back to the tablet's in its
    // state, and a newcomer linked under it; the desktop sees only the newcomer's list.
    let now = w.now;
    w.primary(&alice).unlink(now, tablet.device).unwrap();
    let mut state = w.primary(&alice).to_bytes().to_vec();
    state[2 + 32 + 4 + 8 + 8..2 + 32 + 4 + 8 + 8 + 4]
        .copy_from_slice(&tablet.device.0.to_be_bytes());
    let mut reusing = Primary::from_bytes(&state).unwrap();
    let newcomer = IdentityKeyPair::generate(&mut w.rng);
    let inv = reusing.invite(&mut w.rng, now).unwrap();
    let approval = reusing
        .approve(now, &LinkRequest::new(&newcomer, &inv))
        .unwrap();
    assert_eq!(approval.device, tablet.device);
    let events = w
        .device(desktop)
        .update_device_list(now, &alice, approval.list)
        .unwrap();
    assert_eq!(events, [Event::IdentityChanged(tablet)]);
    assert_eq!(
        w.device(desktop).unconfirmed_groups().collect::<Vec<_>>(),
        [FAMILY]
    );
}

#[test]
fn a_membership_from_another_account_is_refused() {
    let mut w = World::new("membership another account");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let desktop = w.link(&alice);
    // The desktop follows every account (Bob's, Carol's) too.
    w.publish_all();
    let b1 = World::addr(bob, 1);
    // Bob has a session with the desktop (he wrote to Alice), and tries to make it join a
    // group of his choosing, with his history.
    let hi = w.send(b1, alice, b"hi alice");
    w.deliver_ok(&hi);
    let offer = w.history_offer();
    let forged = payload(&offer, &[(FAMILY, vec![bob])]);
    let envelope = w.seal_payload(b1, desktop, &forged);
    w.refused(desktop, &envelope, invalid());
    assert_eq!(w.device(desktop).groups().count(), 0);
    // His device cannot send one to another account at all.
    let now = w.now;
    let mut rng = w.rng.clone();
    assert_eq!(
        w.device(b1)
            .send_history_offer(&mut rng, now, desktop, &offer)
            .err(),
        Some(FanoutError::NotForThisDevice.into())
    );
}

#[test]
fn malformed_memberships_are_typed_errors_and_change_nothing() {
    let mut w = World::new("membership malformed");
    let alice = w.account(0);
    let bob = w.account(0);
    let carol = w.account(0);
    w.publish_all();
    let desktop = w.link(&alice);
    w.publish(&alice);
    let phone = World::addr(alice, 1);
    let hi = w.send(phone, alice, b"warm up the session");
    w.deliver_ok(&hi);
    let offer = w.history_offer();
    let (lo, hi) = if bob < carol {
        (bob, carol)
    } else {
        (carol, bob)
    };
    let cases: Vec<(&str, Vec<u8>, Error)> = vec![
        (
            "groups unsorted",
            payload(&offer, &[(WORK, vec![bob]), (FAMILY, vec![bob])]),
            invalid(),
        ),
        (
            "a group twice",
            payload(&offer, &[(FAMILY, vec![bob]), (FAMILY, vec![carol])]),
            invalid(),
        ),
        (
            "members unsorted",
            payload(&offer, &[(FAMILY, vec![hi, lo])]),
            invalid(),
        ),
        (
            "a member twice",
            payload(&offer, &[(FAMILY, vec![bob, bob])]),
            invalid(),
        ),
        (
            "the receiver's own account as a member",
            payload(&offer, &[(FAMILY, sorted(vec![alice, bob]))]),
            invalid(),
        ),
        (
            "trailing bytes",
            [payload(&offer, &[(FAMILY, vec![bob])]), vec![0]].concat(),
            DecodeError::TrailingBytes.into(),
        ),
        (
            "the retired offer without membership (kind 5)",
            [vec![0x02, 0x0c, 0x05], offer.to_bytes().to_vec()].concat(),
            invalid(),
        ),
        (
            "the retired offer without its time (kind 9)",
            {
                let p = payload(&offer, &[(FAMILY, vec![bob])]);
                [&[0x02, 0x0c, 0x09][..], &p[11..]].concat()
            },
            invalid(),
        ),
        (
            "too many groups",
            {
                let mut p = payload(&offer, &[]);
                let n = p.len() - 4;
                p[n..].copy_from_slice(&(MAX_MEMBERSHIP_GROUPS as u32 + 1).to_be_bytes());
                p
            },
            invalid(),
        ),
        (
            "a group over MAX_GROUP_MEMBERS",
            {
                let mut p = payload(&offer, &[(FAMILY, vec![])]);
                let n = p.len() - 4;
                p[n..].copy_from_slice(&(MAX_GROUP_MEMBERS as u32 + 1).to_be_bytes());
                p
            },
            invalid(),
        ),
        (
            "a member that is not a valid key",
            {
                let mut p = payload(&offer, &[(FAMILY, vec![bob])]);
                let n = p.len() - 32;
                p[n..].copy_from_slice(&[0; 32]);
                p[n] = 1; // the identity point: small order
                p
            },
            DecodeError::InvalidKey.into(),
        ),
    ];
    for (what, plaintext, expected) in cases {
        let envelope = w.seal_payload(phone, desktop, &plaintext);
        let now = w.now;
        let d = w.device(desktop);
        let before = d.to_bytes();
        assert_eq!(d.receive(now, &envelope).err(), Some(expected), "{what}");
        assert_eq!(*before, *d.to_bytes(), "{what} changed the desktop");
        assert!(!d.has_changes(), "{what} left changes");
    }
    assert_eq!(w.device(desktop).groups().count(), 0);
    // The same session then carries a well-formed one.
    let good = payload(
        &offer,
        &[(FAMILY, vec![bob]), (WORK, sorted(vec![bob, carol]))],
    );
    let envelope = w.seal_payload(phone, desktop, &good);
    let Ok(Received::HistoryOffer { groups, .. }) = w.receive(desktop, &envelope) else {
        panic!("the well-formed membership is read")
    };
    assert_eq!(groups, [FAMILY, WORK]);
    assert_eq!(
        members(&mut w, desktop, WORK),
        Some(sorted(vec![bob, carol]))
    );
}

#[test]
fn a_group_of_1024_members_fits() {
    let mut w = World::new("membership large group");
    let alice = w.account(0);
    w.publish_all();
    let desktop = w.link(&alice);
    w.publish(&alice);
    let phone = World::addr(alice, 1);
    let crowd: Vec<AccountKey> = (0..1024)
        .map(|_| AccountKeyPair::generate(&mut w.rng).public())
        .collect();
    w.device(phone).set_group_members(FAMILY, &crowd).unwrap();
    let Received::HistoryOffer { groups, .. } = hand_over(&mut w, phone, desktop) else {
        panic!()
    };
    assert_eq!(groups, [FAMILY]);
    assert_eq!(members(&mut w, desktop, FAMILY), Some(sorted(crowd)));
}

#[test]
fn a_device_in_too_many_groups_cannot_send_its_offer_and_changes_nothing() {
    let mut w = World::new("membership too many groups");
    let alice = w.account(0);
    w.publish_all();
    let desktop = w.link(&alice);
    w.publish(&alice);
    let phone = World::addr(alice, 1);
    let hi = w.send(phone, alice, b"warm up the session");
    w.deliver_ok(&hi);
    for i in 0..=MAX_MEMBERSHIP_GROUPS as u32 {
        let mut g = [0u8; 32];
        g[..4].copy_from_slice(&i.to_be_bytes());
        w.device(phone).set_group_members(GroupId(g), &[]).unwrap();
    }
    w.persist(phone);
    let offer = w.history_offer();
    let now = w.now;
    let mut rng = w.rng.clone();
    let d = w.device(phone);
    let before = d.to_bytes();
    assert_eq!(
        d.send_history_offer(&mut rng, now, desktop, &offer).err(),
        Some(
            SyncError::MembershipTooLarge {
                groups: MAX_MEMBERSHIP_GROUPS + 1,
                accounts: 0,
                largest: 0,
            }
            .into()
        )
    );
    assert_eq!(*before, *d.to_bytes());
    assert!(!d.has_changes());
    // One group fewer, and it goes.
    d.forget_group(GroupId([0; 32]));
    assert!(d.send_history_offer(&mut rng, now, desktop, &offer).is_ok());
}

#[test]
fn a_held_group_keeps_its_newer_members() {
    let mut w = World::new("membership held group");
    let alice = w.account(0);
    let bob = w.account(0);
    let carol = w.account(0);
    w.publish_all();
    w.set_members(FAMILY, &[alice, bob, carol]);
    w.set_members(WORK, &[alice, bob]);
    let phone = World::addr(alice, 1);
    let desktop = w.link(&alice);
    // The desktop follows every account (Bob's, Carol's) too.
    w.publish_all();
    // The desktop's app already has the family group, where Carol has left since (it
    // learned that after the link); the phone's snapshot, sent earlier and held back by the
    // relay, still lists her.
    let offer = w.history_offer();
    let outbox = w
        .run(phone, |d, rng, now| {
            d.send_history_offer(rng, now, desktop, &offer)
        })
        .unwrap();
    w.device(desktop)
        .set_group_members(FAMILY, &[alice, bob])
        .unwrap();
    w.persist(desktop);
    let sent = w.send_group(desktop, FAMILY, b"carol left");
    w.deliver_ok(&sent);
    let got = w
        .receive(desktop, &World::envelope_to(&outbox, desktop))
        .unwrap();
    let Received::HistoryOffer { groups, .. } = got else {
        panic!("{got:?}")
    };
    // The app set a group on the desktop before the offer arrived: it owns the desktop's
    // groups now, so the offer installs nothing, not even the group it lacked, and the held
    // one keeps its members and its key.
    assert!(groups.is_empty());
    assert_eq!(members(&mut w, desktop, WORK), None);
    assert_eq!(members(&mut w, desktop, FAMILY), Some(vec![bob]));
    let again = w.send_group(desktop, FAMILY, b"still without carol");
    assert!(
        again.envelopes.is_empty(),
        "no new key: the held one stands"
    );
    let recipients = &again.group.as_ref().unwrap().1;
    assert!(recipients.iter().all(|d| d.account != carol));
    // Carol's traffic for the family group is still refused there.
    let c1 = World::addr(carol, 1);
    let from_carol = w.send_group(c1, FAMILY, b"am I still in?");
    let to_desktop = World::envelope_to(&from_carol, desktop);
    w.refused(
        desktop,
        &to_desktop,
        FanoutError::NotAMember {
            group: FAMILY,
            account: carol,
        }
        .into(),
    );
}

/// A meta record of the layout before the groups flag (20 bytes: epoch, next read slot, next
/// send id) loads; the flag is taken as set when the device holds groups (only its app could
/// have set them then), as clear otherwise, and the record is rewritten with it.
#[test]
fn a_meta_record_of_the_previous_layout_loads_with_the_flag_its_groups_imply() {
    let mut w = World::new("membership previous meta");
    let alice = w.account(1);
    let bob = w.account(0);
    w.publish_all();
    let (phone, laptop) = (World::addr(alice, 1), World::addr(alice, 2));
    w.device(phone).set_group_members(FAMILY, &[bob]).unwrap();
    w.persist(phone);
    for (device, holds_groups) in [(phone, true), (laptop, false)] {
        let mut store = w.stores[&device].clone();
        let meta = store.0.get_mut(&[2u8][..]).expect("a meta record");
        assert_eq!((meta.len(), meta[20]), (37, u8::from(holds_groups)));
        meta.truncate(20);
        let mut loaded = store.load();
        let rewrite = loaded.take_changes(&mut w.rng);
        let meta = rewrite
            .records()
            .iter()
            .find(|r| r.key() == [2])
            .expect("the meta record is rewritten");
        assert_eq!(
            meta.value().map(|v| (v.len(), v[20])),
            Some((37, u8::from(holds_groups)))
        );
        // A flag byte other than 0 or 1 is refused.
        let mut bad = w.stores[&device].clone();
        bad.0.get_mut(&[2u8][..]).unwrap()[20] = 2;
        assert!(
            Device::from_records(bad.0.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))).is_err()
        );
    }
}

/// The groups `device` holds, each with its members.
fn held(w: &mut World, device: DeviceAddress) -> Vec<(GroupId, Vec<AccountKey>)> {
    let groups: Vec<GroupId> = w.device(device).groups().collect();
    groups
        .into_iter()
        .map(|g| (g, members(w, device, g).unwrap()))
        .collect()
}

/// The groups an offer reports.
fn offered_groups(got: Result<Received, Error>) -> Vec<GroupId> {
    match got {
        Ok(Received::HistoryOffer { groups, .. }) => groups,
        other => panic!("{other:?}"),
    }
}

/// Until the companion's app sets a group, each offer newer than the last one applied makes
/// the companion's offered groups the phone's (PROTOCOL.md 18.2): it installs new groups,
/// gives offered groups their new members (the companion's next send rotates its key away from
/// a member removed) and leaves offered groups the phone left, with everything held for them;
/// it reports exactly those. A group the app vouched for, and one unconfirmed since an own
/// device left, stay as they are. An offer made at the time of the last one applied, or before
/// it, changes no group, also after a restart (record `0x18` holds the time, 8 bytes). The
/// app's first set deletes that record, and offers change nothing from then on; a load refuses
/// the record beside the app's flag.
#[test]
fn offers_apply_in_the_order_they_were_made() {
    const NEW: GroupId = GroupId([0x04; 32]);
    let mut w = World::new("membership ordered offers");
    let alice = w.account(0);
    let bob = w.account(0);
    let carol = w.account(0);
    let dave = w.account(0);
    w.publish_all();
    w.set_members(FAMILY, &[alice, bob, carol]);
    w.set_members(WORK, &[alice, carol]);
    w.set_members(OTHER, &[alice, bob]);
    let (phone, c1) = (World::addr(alice, 1), World::addr(carol, 1));
    let desktop = w.link(&alice);
    w.publish_all();

    let first = w.offer_envelope(phone, desktop);
    assert_eq!(
        offered_groups(w.receive(desktop, &first)),
        [FAMILY, WORK, OTHER]
    );
    // The desktop holds traffic of the groups: its own key in FAMILY (Carol's devices hold
    // it), Carol's key in WORK.
    let o = w.send_group(desktop, FAMILY, b"from the desktop");
    assert!(w.reads(&o, b"from the desktop"));
    let o = w.send_group(c1, WORK, b"from carol");
    assert!(w.reads(&o, b"from carol"));
    // Its app vouches for OTHER's members.
    w.device(desktop).set_group_members(OTHER, &[bob]).unwrap();
    w.persist(desktop);

    // An offer of the same groups half a second later, which the relay holds back.
    w.now = w.now.plus_millis(500);
    let held_back = w.offer_envelope(phone, desktop);

    // The phone's app removes Carol from FAMILY, leaves WORK, adds Dave to OTHER and starts
    // NEW; its next offer is applied.
    w.device(phone).set_group_members(FAMILY, &[bob]).unwrap();
    w.device(phone).forget_group(WORK);
    w.device(phone)
        .set_group_members(OTHER, &[bob, dave])
        .unwrap();
    w.device(phone).set_group_members(NEW, &[dave]).unwrap();
    w.persist(phone);
    w.now = w.now.plus_millis(500);
    let second = w.offer_envelope(phone, desktop);
    assert_eq!(
        offered_groups(w.receive(desktop, &second)),
        [FAMILY, WORK, NEW]
    );
    let applied = [(FAMILY, vec![bob]), (OTHER, vec![bob]), (NEW, vec![dave])];
    assert_eq!(held(&mut w, desktop), applied);
    let store = &w.stores[&desktop].0;
    assert_eq!(
        store.get(&[0x18u8][..]),
        Some(&w.now.as_millis().to_be_bytes().to_vec())
    );
    assert!(
        store.keys().all(|k| !k.windows(32).any(|g| g == WORK.0)),
        "a record of the group left remains"
    );
    assert!(store.contains_key(&[&[0x16u8][..], &NEW.0].concat()));
    let sent = w.send_group(desktop, FAMILY, b"without carol");
    assert!(
        sent.group
            .as_ref()
            .unwrap()
            .1
            .iter()
            .all(|d| d.account != carol)
    );
    assert!(
        !sent.envelopes.is_empty() && sent.envelopes.iter().all(|(d, _)| d.account != carol),
        "the desktop's key rotates away from Carol"
    );

    // Dave joins FAMILY on the phone, which offers again in the same millisecond: not applied.
    w.device(phone)
        .set_group_members(FAMILY, &[bob, dave])
        .unwrap();
    w.persist(phone);
    let same_time = w.offer_envelope(phone, desktop);
    assert_eq!(offered_groups(w.receive(desktop, &same_time)), []);
    assert_eq!(held(&mut w, desktop), applied);

    // The held-back offer arrives after a restart: older, so nothing changes.
    w.restart(desktop);
    assert_eq!(offered_groups(w.receive(desktop, &held_back)), []);
    assert_eq!(held(&mut w, desktop), applied);

    // A device of Alice's leaves: FAMILY and NEW, offered, are unconfirmed; a newer offer
    // leaves them as they are (it reports no group).
    let now = w.now;
    let tablet = w.link(&alice);
    w.publish(&alice);
    w.primary(&alice).unlink(now, tablet.device).unwrap();
    w.publish(&alice);
    let unconfirmed: Vec<GroupId> = w.device(desktop).unconfirmed_groups().collect();
    assert_eq!(unconfirmed, [FAMILY, NEW]);
    w.device(phone).forget_group(NEW);
    w.persist(phone);
    w.now = w.now.plus_millis(1_000);
    let third = w.offer_envelope(phone, desktop);
    assert_eq!(offered_groups(w.receive(desktop, &third)), []);
    assert_eq!(held(&mut w, desktop), applied);
    assert!(w.stores[&desktop].0.contains_key(&[0x18u8][..]));

    // The record beside the app's flag does not load.
    let mut bad = w.stores[&desktop].clone();
    bad.0.get_mut(&[2u8][..]).unwrap()[20] = 1;
    assert_eq!(
        Device::from_records(bad.0.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))).err(),
        Some(DecodeError::InvalidValue)
    );

    // The app sets a group: the record goes, and a newer offer changes nothing.
    w.device(desktop)
        .set_group_members(FAMILY, &[bob, dave])
        .unwrap();
    w.persist(desktop);
    assert!(!w.stores[&desktop].0.contains_key(&[0x18u8][..]));
    w.device(phone).set_group_members(OTHER, &[bob]).unwrap();
    w.persist(phone);
    w.now = w.now.plus_millis(1_000);
    let fourth = w.offer_envelope(phone, desktop);
    assert_eq!(offered_groups(w.receive(desktop, &fourth)), []);
}

/// A stolen companion stamps its offer far in the future so that no later offer outranks it:
/// an offer stamped more than `OWN_LIST_CLOCK_ALLOWANCE_MS` after the receiver's clock is not
/// applied, and one at the allowance is (PROTOCOL.md 18.2). The phone's next offer is applied.
#[test]
fn an_offer_stamped_beyond_the_allowance_is_not_applied() {
    let mut w = World::new("membership offer from the future");
    let alice = w.account(1);
    let bob = w.account(0);
    w.publish_all();
    let (phone, laptop) = (World::addr(alice, 1), World::addr(alice, 2));
    let desktop = w.link(&alice);
    w.publish_all();
    let hi = w.send(laptop, alice, b"warm up the session");
    w.deliver_ok(&hi);
    let offer = w.history_offer();
    let now = w.now.as_millis();
    for stamp in [u64::MAX, now + OWN_LIST_CLOCK_ALLOWANCE_MS + 1] {
        let ahead = offer_payload(stamp, &offer, &[(FAMILY, vec![bob])]);
        let ahead = w.seal_payload(laptop, desktop, &ahead);
        assert_eq!(offered_groups(w.receive(desktop, &ahead)), []);
        assert!(!w.stores[&desktop].0.contains_key(&[0x18u8][..]));
    }
    let at_allowance = offer_payload(
        now + OWN_LIST_CLOCK_ALLOWANCE_MS,
        &offer,
        &[(FAMILY, vec![bob])],
    );
    let at_allowance = w.seal_payload(laptop, desktop, &at_allowance);
    assert_eq!(offered_groups(w.receive(desktop, &at_allowance)), [FAMILY]);
    assert_eq!(
        w.stores[&desktop].0.get(&[0x18u8][..]),
        Some(&(now + OWN_LIST_CLOCK_ALLOWANCE_MS).to_be_bytes().to_vec())
    );
    w.device(phone).set_group_members(WORK, &[bob]).unwrap();
    w.persist(phone);
    w.now = w.now.plus_millis(OWN_LIST_CLOCK_ALLOWANCE_MS + 1);
    let after = w.offer_envelope(phone, desktop);
    assert_eq!(offered_groups(w.receive(desktop, &after)), [FAMILY, WORK]);
    assert_eq!(w.device(desktop).groups().collect::<Vec<_>>(), [WORK]);
}
