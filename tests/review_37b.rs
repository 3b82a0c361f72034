//! Review 37b: a device's and an account's life as sequences of public-API operations, the
//! server as the adversary (replaying, holding back, serving lists out of order), often with
//! an unlinked companion, a removed member or a removed call participant on its side.
//!
//! - **Unlink and link again** (same hardware, same identity key, new id): nothing sent to or
//!   by the old id reaches or comes from the new one (replays, re-addressed envelopes, retries
//!   of old group messages are `NotForThisDevice`, `AuthenticationFailed`, `NotEntitled`);
//!   lists served newest first then older are `Rollback`; call keys naming the old id fail.
//! - **Membership churn**: a removed member's held-back message is `NotAMember`, read after
//!   she is added back only through a retry (also one she sent while removed: membership is
//!   judged on reading); a member added back reads from her return only; a removal and re-add
//!   with no send between rotates nothing; sender keys refused for membership read when
//!   redelivered after the app caught up.
//! - **History sync** after the groups changed and the laptop was relinked; a held-back offer
//!   is not for the new id and `ThisDeviceInactive` at the old one.
//! - **Calls**: a participant removed and rejoined never holds the epoch it was out for.
//!   Found and fixed: a participant's call restored below its floor handed out the old
//!   epoch's media keys, which a participant removed since derives too (`StaleCallKey` now).
//! - **Primary restore** interleaved with links, unlinks and groups; pinned: `resync` on a
//!   primary that needs none unlinks every companion. Found and fixed: an expired companion's
//!   identity was `AlreadyLinked` until `renew`; it links again at once now.
//! - **Found, pinned, fixed at stop 38**: `forget_account` dropped rollback protection, so an
//!   old list put an unlinked companion back (sent to, and read from) until its entry expired.
//!   A forget now keeps the list's mark (version, digest, form) and refuses what it refused.
//! - **Found and fixed**: a restored device's group membership rolled back with its state, and
//!   its first group send gave the new sender key to a member removed after the backup. Its
//!   groups are now unconfirmed until the app sets them (`GroupUnconfirmed`, `AwaitMembers`).

mod support;

use ratchetry::calls::{Call, CallConfig, CallKind};
use ratchetry::devices::{
    AccountKey, DeviceAddress, DeviceId, LinkRequest, Primary, RESTORE_DEVICE_ID_SKIP,
    RESTORE_DEVICE_ID_SPREAD, RESTORE_VERSION_PER_MS, RESTORE_VERSION_SKIP, complete_link,
};
use ratchetry::fanout::{Device, DeviceConfig, Event, Outbox, Received, RetryReason};
use ratchetry::group::GroupId;
use ratchetry::history::{HistoryOffer, HistorySealer};
use ratchetry::{DeviceError, Error, FanoutError, IdentityKeyPair, SyncError};
use support::{World, body};

const G: GroupId = GroupId([0x37; 32]);
const G2: GroupId = GroupId([0x38; 32]);

/// Links a companion with the given identity (the same hardware linked again keeps its key):
/// the primary signs, the companion starts from that list; no other device has it yet.
fn link_with(w: &mut World, account: &AccountKey, identity: &IdentityKeyPair) -> DeviceAddress {
    let identity = IdentityKeyPair::from_bytes(&identity.to_bytes()).unwrap();
    let mut rng = std::mem::replace(&mut w.rng, ratchetry::testing::SeededRng::from_label("x"));
    let (now, limits) = (w.now, w.limits());
    let primary = w.primary(account);
    let invitation = primary.invite(&mut rng, now).unwrap();
    let approval = primary
        .approve(now, &LinkRequest::new(&identity, &invitation))
        .unwrap();
    let (_, confirmation) = complete_link(&identity, &invitation, &approval, &limits).unwrap();
    primary.confirm(&confirmation).unwrap();
    let list = primary.device_list().clone();
    let config = DeviceConfig::default();
    let (device, _) =
        Device::new(&mut rng, now, identity, approval.device, list, 5, config).unwrap();
    w.rng = rng;
    let address = device.address();
    w.devices.insert(address, device);
    w.persist(address);
    address
}

/// Every device but `except` follows `account`'s current list (the server withholds it from
/// those).
fn publish_except(w: &mut World, account: &AccountKey, except: &[DeviceAddress]) {
    let list = w.primary(account).device_list().signed().clone();
    let now = w.now;
    for a in w.addresses() {
        if !except.contains(&a) {
            let _ = w.device(a).update_device_list(now, account, list.clone());
            w.persist(a);
        }
    }
}

fn group_envelope(o: &Outbox) -> Vec<u8> {
    o.group.as_ref().unwrap().0.clone()
}

fn group_recipients(o: &Outbox) -> Vec<DeviceAddress> {
    o.group.as_ref().unwrap().1.to_vec()
}

fn targets(o: &Outbox) -> Vec<DeviceAddress> {
    o.envelopes.iter().map(|(a, _)| *a).collect()
}

/// `to` refuses `envelope` with an error `check` accepts, byte-identical and with nothing to
/// persist; returns the error.
fn refused_as(
    w: &mut World,
    to: DeviceAddress,
    envelope: &[u8],
    check: impl Fn(&Error) -> bool,
) -> Error {
    let now = w.now;
    let d = w.device(to);
    let before = d.to_bytes();
    let err = d.receive(now, envelope).expect_err("refused");
    assert!(check(&err), "{to:?}: unexpected {err:?}");
    assert_eq!(*before, *d.to_bytes(), "a refusal changed {to:?}");
    assert!(!d.has_changes());
    err
}

fn key_missing(from: DeviceAddress) -> impl Fn(&Error) -> bool {
    move |e| matches!(e, Error::Fanout(FanoutError::SenderKeyMissing { from: f, .. }) if *f == from)
}

fn offer(w: &mut World) -> HistoryOffer {
    let mut sealer = HistorySealer::new(&mut w.rng);
    let _ = sealer.push(b"the account's history");
    sealer.finish().1
}

/// Alice's companion (identity X) is unlinked and the same hardware is linked again under a
/// new id with the same identity key; the server withholds every list from the old device id
/// and serves Bob the newest list before the one that unlinked. Nothing sent to or by the old
/// id reaches or comes from the new one: Bob's old direct and group envelopes are not for the
/// new device, and it cannot ask for them (`NotEntitled`); Bob's and Alice's next messages,
/// own copies included, go to the new id only, Bob's next group message under a new sender
/// key; the old device reads none of it and nothing it sends, plain or re-addressed to the new
/// id, is read; its retries are refused; a call key naming it is refused whole.
#[test]
fn a_companion_relinked_with_the_same_identity_gets_nothing_of_its_old_id() {
    let mut w = World::new("review37b relinked");
    let alice = w.account(0);
    let bob = w.account(0);
    let x = IdentityKeyPair::generate(&mut w.rng);
    let a2 = link_with(&mut w, &alice, &x);
    w.publish_all();
    w.set_members(G, &[alice, bob]);
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let m1 = w.send_group(b1, G, b"m1 to the old laptop");
    w.deliver_ok(&m1);
    let d1 = w.send(b1, alice, b"d1 to the old laptop");
    w.deliver_ok(&d1);

    let now = w.now;
    w.primary(&alice).unlink(now, DeviceId(2)).unwrap();
    let unlink_list = w.primary(&alice).device_list().signed().clone();
    let a3 = link_with(&mut w, &alice, &x);
    assert_eq!(a3.device, DeviceId(3));
    publish_except(&mut w, &alice, &[a2]);
    w.publish(&bob);
    w.device(a3).set_group_members(G, &[alice, bob]).unwrap();
    w.persist(a3);
    // Bob got v4 (A2 gone, A3 added) before v3 (A2 gone): v3 is a rollback.
    let before = w.device(b1).to_bytes();
    assert_eq!(
        w.device(b1).update_device_list(now, &alice, unlink_list),
        Err(DeviceError::Rollback {
            known: 4,
            received: 3
        }
        .into())
    );
    assert_eq!(*before, *w.device(b1).to_bytes());

    // The old id's traffic replayed to the new device.
    let to_a2 = World::envelope_to(&d1, a2);
    w.refused(a3, &to_a2, FanoutError::NotForThisDevice.into());
    // Re-addressed to the new id (same identity key): the header is in the associated data,
    // and the message was made for the old device's prekeys.
    let mut readdressed = to_a2.clone();
    readdressed[3 + 36 + 32..3 + 72].copy_from_slice(&3u32.to_be_bytes());
    let auth_failed: Error = ratchetry::RatchetError::AuthenticationFailed.into();
    w.refused(a3, &readdressed, auth_failed);
    let old_group = group_envelope(&m1);
    refused_as(&mut w, a3, &old_group, key_missing(b1));
    let (asked, request) = w
        .request_retry(a3, &old_group, RetryReason::SenderKeyMissing)
        .unwrap();
    assert_eq!(asked, b1);
    w.refused(b1, &request, FanoutError::NotEntitled.into());

    // Bob's next group message: a new generation, for A1 and A3 only.
    let m2 = w.send_group(b1, G, b"m2 after the relink");
    assert_eq!(targets(&m2), vec![a1, a3]);
    assert_eq!(group_recipients(&m2), vec![a1, a3]);
    let read = w.deliver_ok(&m2);
    assert!(
        read.iter()
            .any(|(a, r)| *a == a3 && body(r) == Some(b"m2 after the relink"))
    );
    refused_as(&mut w, a2, &group_envelope(&m2), key_missing(b1));
    let (_, request) = w
        .request_retry(a2, &group_envelope(&m2), RetryReason::SenderKeyMissing)
        .unwrap();
    w.refused(b1, &request, DeviceError::NotInList(a2).into());
    // Direct messages and own copies.
    assert_eq!(targets(&w.send(b1, alice, b"d2")), vec![a1, a3]);
    assert_eq!(targets(&w.send(a1, bob, b"d3")), vec![b1, a3]);

    // The old device, which never took a list since, still sends; nobody reads it.
    let from_a2 = w.send(a2, bob, b"from the drawer");
    let to_b1 = World::envelope_to(&from_a2, b1);
    w.refused(b1, &to_b1, DeviceError::NotInList(a2).into());
    w.refused(
        a1,
        &World::envelope_to(&from_a2, a1),
        DeviceError::NotInList(a2).into(),
    );
    // Re-addressed as the new device (same identity key): the header is authenticated.
    let mut forged = to_b1.clone();
    forged[3 + 32..3 + 36].copy_from_slice(&3u32.to_be_bytes());
    w.refused(b1, &forged, auth_failed);
    let from_a2 = w.send_group(a2, G, b"group from the drawer");
    w.refused(
        b1,
        &group_envelope(&from_a2),
        DeviceError::NotInList(a2).into(),
    );

    // A call key naming the old id is refused whole, and changes nothing.
    let config = CallConfig::default();
    let call = Call::start(&mut w.rng, CallKind::Group, a1, &[a2, a3, b1], &config).unwrap();
    let (mut rng, now) = (w.rng.clone(), w.now);
    let d = w.device(a1);
    let before = d.to_bytes();
    let sent = d.send_call_key(&mut rng, now, call.participants(), call.key_message());
    assert_eq!(sent.err(), Some(DeviceError::NotInList(a2).into()));
    assert_eq!(*before, *d.to_bytes());
}

/// Carol's group message sent while she is a member, held back by the server until Alice's
/// app removed her, is `NotAMember` (PROTOCOL.md 18.5: membership is judged when a message is
/// read, not when it was sent), and changes nothing. Once Alice's app adds Carol back it is
/// `SenderKeyMissing` (her key went with the removal) and reads through a retry, as does a
/// message Carol sent while Alice's app had her removed: membership is not part of what a
/// group message authenticates.
#[test]
fn a_removed_members_held_back_message_is_refused_until_she_is_added_back() {
    let mut w = World::new("review37b removed member late");
    let alice = w.account(0);
    let bob = w.account(0);
    let carol = w.account(0);
    w.publish_all();
    w.set_members(G, &[alice, bob, carol]);
    let (a1, c1) = (World::addr(alice, 1), World::addr(carol, 1));
    let first = w.send_group(c1, G, b"c: first");
    w.deliver_ok(&first);
    let before_removal = group_envelope(&w.send_group(c1, G, b"c: before the removal"));
    w.device(a1).set_group_members(G, &[alice, bob]).unwrap();
    w.persist(a1);
    let not_a_member = FanoutError::NotAMember {
        group: G,
        account: carol,
    };
    w.refused(a1, &before_removal, not_a_member.into());
    let while_removed = group_envelope(&w.send_group(c1, G, b"c: while removed"));
    w.refused(a1, &while_removed, not_a_member.into());
    // A retry is asked (the envelope names its sender, Alice was entitled), and Carol's
    // answer (her key again, then the resend) is refused as from a non-member.
    let answer = |w: &mut World, failed: &[u8], body: &[u8]| {
        let (to, request) = w
            .request_retry(a1, failed, RetryReason::SenderKeyMissing)
            .unwrap();
        assert_eq!(to, c1);
        let Ok(Received::RetryRequest(req)) = w.receive(c1, &request) else {
            panic!("Alice held Carol's key when the message was sent")
        };
        w.run(c1, |d, rng, now| d.answer_retry(rng, now, &req, body))
            .unwrap()
    };
    let early = answer(&mut w, &before_removal, b"c: before the removal");
    for (_, envelope) in &early.envelopes {
        w.refused(a1, envelope, not_a_member.into());
    }

    // Added back: the key is gone, so both are missing keys, then read by retry.
    w.device(a1)
        .set_group_members(G, &[alice, bob, carol])
        .unwrap();
    w.persist(a1);
    refused_as(&mut w, a1, &before_removal, key_missing(c1));
    let got = w.deliver_ok(&early);
    assert_eq!(
        body(&got.last().unwrap().1),
        Some(&b"c: before the removal"[..])
    );
    refused_as(&mut w, a1, &while_removed, key_missing(c1));
    let late = answer(&mut w, &while_removed, b"c: while removed");
    let got = w.deliver_ok(&late);
    assert_eq!(body(&got.last().unwrap().1), Some(&b"c: while removed"[..]));
}

/// Membership churn at the sender. Alice's first message hands her key to Bob and Carol, and
/// the server holds it back; Alice's app removes Carol and she sends again: a new generation,
/// for Bob only. Delivered in reverse, Bob reads both; Carol reads the first (she was a member
/// when it was sent) and not the second, nor can she ask for it. Added back, Carol gets the
/// current generation from its next message on: the message she missed stays unreadable and
/// `NotEntitled`. Removed and added back with no send between, nothing rotates. Then one of
/// Carol's devices is unlinked and Carol removed: the next key reaches neither device.
#[test]
fn a_member_removed_and_added_back_reads_only_from_her_return() {
    let mut w = World::new("review37b readded");
    let alice = w.account(0);
    let bob = w.account(0);
    let carol = w.account(1);
    w.publish_all();
    w.set_members(G, &[alice, bob, carol]);
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let (c1, c2) = (World::addr(carol, 1), World::addr(carol, 2));
    let m1 = w.send_group(a1, G, b"m1");
    assert_eq!(targets(&m1), vec![b1, c1, c2]);
    w.device(a1).set_group_members(G, &[alice, bob]).unwrap();
    w.persist(a1);
    let m2 = w.send_group(a1, G, b"m2 without carol");
    assert_eq!(targets(&m2), vec![b1]);
    assert_eq!(group_recipients(&m2), vec![b1]);
    let got = w.deliver_ok(&m2);
    assert_eq!(body(&got[1].1), Some(&b"m2 without carol"[..]));
    let got = w.deliver_ok(&m1);
    let read: Vec<_> = got
        .iter()
        .filter_map(|(a, r)| body(r).map(|_| *a))
        .collect();
    assert_eq!(read, vec![b1, c1, c2]);
    for c in [c1, c2] {
        refused_as(&mut w, c, &group_envelope(&m2), key_missing(a1));
    }
    let (_, request) = w
        .request_retry(c1, &group_envelope(&m2), RetryReason::SenderKeyMissing)
        .unwrap();
    w.refused(a1, &request, FanoutError::NotEntitled.into());

    // Carol added back: only her devices get the current generation, from m3 on.
    w.device(a1)
        .set_group_members(G, &[alice, bob, carol])
        .unwrap();
    w.persist(a1);
    let m3 = w.send_group(a1, G, b"m3 carol is back");
    assert_eq!(targets(&m3), vec![c1, c2]);
    assert_eq!(w.deliver_ok(&m3).len(), 5);
    refused_as(&mut w, c1, &group_envelope(&m2), key_missing(a1));
    let (_, request) = w
        .request_retry(c1, &group_envelope(&m2), RetryReason::SenderKeyMissing)
        .unwrap();
    w.refused(a1, &request, FanoutError::NotEntitled.into());

    // Removed and added back before any send: no message was sent meanwhile, nothing rotates.
    w.device(a1).set_group_members(G, &[alice, bob]).unwrap();
    w.device(a1)
        .set_group_members(G, &[alice, bob, carol])
        .unwrap();
    w.persist(a1);
    let m4 = w.send_group(a1, G, b"m4");
    assert!(m4.envelopes.is_empty());
    assert_eq!(w.deliver_ok(&m4).len(), 3);

    // A device of Carol's unlinked (the server withholds the list from it), then Carol
    // removed: the next generation reaches Bob alone, and neither of Carol's devices reads.
    let now = w.now;
    w.primary(&carol).unlink(now, DeviceId(2)).unwrap();
    publish_except(&mut w, &carol, &[c2]);
    w.device(a1).set_group_members(G, &[alice, bob]).unwrap();
    w.persist(a1);
    let m5 = w.send_group(a1, G, b"m5");
    assert_eq!(targets(&m5), vec![b1]);
    assert_eq!(group_recipients(&m5), vec![b1]);
    for c in [c1, c2] {
        refused_as(&mut w, c, &group_envelope(&m5), key_missing(a1));
    }
}

/// History sync to a companion when the account's groups changed after an offer was sent. The
/// phone offers history to its laptop (the server holds it back), then leaves G2, removes
/// Carol from G, unlinks the laptop and links the same hardware again. The phone cannot offer
/// to the old id (`NotInList`); the held-back offer is not for the new id and, at the old
/// device once it has the list that removed it, `ThisDeviceInactive`. A new offer installs G
/// alone, without Carol: the new companion refuses Carol's G traffic and sends G to Bob only.
#[test]
fn history_follows_the_device_and_the_groups_as_they_are_now() {
    let mut w = World::new("review37b history relink");
    let alice = w.account(0);
    let bob = w.account(0);
    let carol = w.account(0);
    let x = IdentityKeyPair::generate(&mut w.rng);
    let a2 = link_with(&mut w, &alice, &x);
    w.publish_all();
    w.set_members(G, &[alice, bob, carol]);
    w.set_members(G2, &[alice, bob]);
    let (a1, b1, c1) = (
        World::addr(alice, 1),
        World::addr(bob, 1),
        World::addr(carol, 1),
    );
    let o = offer(&mut w);
    let held = w
        .run(a1, |d, rng, now| d.send_history_offer(rng, now, a2, &o))
        .unwrap();
    w.device(a1).forget_group(G2);
    w.device(a1).set_group_members(G, &[alice, bob]).unwrap();
    w.persist(a1);
    let now = w.now;
    w.primary(&alice).unlink(now, DeviceId(2)).unwrap();
    let a3 = link_with(&mut w, &alice, &x);
    publish_except(&mut w, &alice, &[a2]);
    w.publish(&bob);
    w.publish(&carol);

    let (mut rng, o2) = (w.rng.clone(), offer(&mut w));
    let d = w.device(a1);
    let before = d.to_bytes();
    let sent = d.send_history_offer(&mut rng, now, a2, &o2);
    assert_eq!(sent.err(), Some(DeviceError::NotInList(a2).into()));
    assert_eq!(*before, *d.to_bytes());
    let held = World::envelope_to(&held, a2);
    w.refused(a3, &held, FanoutError::NotForThisDevice.into());
    let list = w.primary(&alice).device_list().signed().clone();
    let events = w.device(a2).update_device_list(now, &alice, list);
    let events = events.unwrap();
    assert!(events.contains(&Event::ThisDeviceRemoved) && events.contains(&Event::DeviceAdded(a3)));
    w.persist(a2);
    w.refused(a2, &held, FanoutError::ThisDeviceInactive.into());

    let fresh = w
        .run(a1, |d, rng, now| d.send_history_offer(rng, now, a3, &o2))
        .unwrap();
    let got = w.receive(a3, &World::envelope_to(&fresh, a3)).unwrap();
    assert!(matches!(got, Received::HistoryOffer { ref groups, .. } if *groups == vec![G]));
    let members: Vec<_> = w.device(a3).group_members(G).unwrap().collect();
    assert_eq!(members, vec![bob]);
    // Carol still believes she is in G: the new companion takes nothing from her.
    let from_carol = w.send_group(c1, G, b"carol to G");
    let not_a_member: Error = FanoutError::NotAMember {
        group: G,
        account: carol,
    }
    .into();
    w.refused(a3, &World::envelope_to(&from_carol, a3), not_a_member);
    w.refused(a3, &group_envelope(&from_carol), not_a_member);
    let from_a3 = w.send_group(a3, G, b"laptop to G");
    assert_eq!(group_recipients(&from_a3), vec![a1, b1]);
    assert_eq!(w.deliver_ok(&from_a3).len(), 4);
}

/// `forget_account` dropped the list held, and with it the rollback check: Bob forgot Alice
/// (say, on a safety-number reset) and the server served her list from before she unlinked
/// her laptop; Bob took it, sent to the stolen laptop again and read what it sent as Alice's.
/// Fixed (stop 38): the forget keeps the list's mark (PROTOCOL.md 15.2, record `0x15`), so the
/// old list is `Rollback` after the forget as before it, with nothing changed, also across a
/// restart from records; the current list is taken again and Bob sends to Alice's phone only.
#[test]
fn a_forgotten_contact_is_refused_a_list_that_lists_her_unlinked_companion() {
    let mut w = World::new("review37b forgotten rollback");
    let alice = w.account(1);
    let bob = w.account(0);
    w.publish_all();
    let (a1, a2, b1) = (
        World::addr(alice, 1),
        World::addr(alice, 2),
        World::addr(bob, 1),
    );
    let hello = w.send(a2, bob, b"hello from the laptop");
    w.deliver_ok(&hello);
    let old = w.primary(&alice).device_list().signed().clone();
    let now = w.now;
    w.primary(&alice).unlink(now, DeviceId(2)).unwrap();
    publish_except(&mut w, &alice, &[a2]);
    let rollback = Error::Device(DeviceError::Rollback {
        known: old.version() + 1,
        received: old.version(),
    });
    let before = w.device(b1).to_bytes();
    let refused = w.device(b1).update_device_list(now, &alice, old.clone());
    assert_eq!(refused, Err(rollback));
    assert_eq!(*before, *w.device(b1).to_bytes());

    w.device(b1).forget_account(&alice);
    w.persist(b1);
    w.restart(b1);
    let before = w.device(b1).to_bytes();
    let refused = w.device(b1).update_device_list(now, &alice, old);
    assert_eq!(refused, Err(rollback));
    assert_eq!(*before, *w.device(b1).to_bytes());
    assert!(!w.device(b1).has_changes());

    let current = w.primary(&alice).device_list().signed().clone();
    let events = w.device(b1).update_device_list(now, &alice, current);
    assert_eq!(events, Ok(vec![Event::DeviceAdded(a1)]));
    w.persist(b1);
    let to_alice = w.send(b1, alice, b"to alice");
    assert_eq!(targets(&to_alice), vec![a1]);
    let injected = w.send(a2, bob, b"injected");
    w.refused(
        b1,
        &World::envelope_to(&injected, b1),
        DeviceError::NotInList(a2).into(),
    );
}

/// The call key from a received envelope.
fn call_key(w: &mut World, to: DeviceAddress, o: &Outbox) -> ratchetry::calls::CallKeyMessage {
    match w.receive(to, &World::envelope_to(o, to)) {
        Ok(Received::CallKey { message, .. }) => message,
        other => panic!("{to:?}: {other:?}"),
    }
}

/// Bob is removed from a call (epoch 1, sent to Carol only) and joins again (epoch 2). The
/// removal's envelope is not for him; he catches up from 0 to 2 and the epoch he was out for,
/// handed to him later, is `StaleCallKey` with nothing changed. Then Bob is removed again
/// (epoch 3) while Carol's state is restored from a snapshot at epoch 2 with the kept epoch 3:
/// she refuses nothing she should take (epoch 3 moves her), and until she does `srtp_keys` is
/// `StaleCallKey` (found by this review and fixed: it answered with epoch 2's keys, which Bob,
/// removed, derives too).
#[test]
fn a_participant_removed_and_rejoined_skips_the_epoch_it_was_out_for() {
    let (mut w, _, [a1, b1, c1]) = World::phones("review37b call rejoin");
    let config = CallConfig::default();
    let mut call = Call::start(&mut w.rng, CallKind::Group, a1, &[b1, c1], &config).unwrap();
    let send = |w: &mut World, to: &[DeviceAddress], m: &ratchetry::calls::CallKeyMessage| {
        w.run(a1, |d, rng, now| d.send_call_key(rng, now, to, m))
            .unwrap()
    };
    let start = send(&mut w, &[b1, c1], call.key_message());
    let m = call_key(&mut w, b1, &start);
    let mut bobs = Call::from_key_message(b1, &a1, m, &config).unwrap();
    let m = call_key(&mut w, c1, &start);
    let mut carols = Call::from_key_message(c1, &a1, m, &config).unwrap();

    let removal = call.remove(&mut w.rng, &b1).unwrap();
    let out = send(&mut w, &[c1], &removal);
    w.refused(
        b1,
        &out.envelopes[0].1,
        FanoutError::NotForThisDevice.into(),
    );
    carols
        .apply(&a1, call_key(&mut w, c1, &out), &config)
        .unwrap();
    let rejoin = call.join(&mut w.rng, b1, &config).unwrap();
    let out = send(&mut w, &[b1, c1], &rejoin);
    carols
        .apply(&a1, call_key(&mut w, c1, &out), &config)
        .unwrap();
    let m = call_key(&mut w, b1, &out);
    assert_eq!(
        bobs.apply(&a1, m.clone(), &config),
        Err(SyncError::CallKeyAhead {
            held: 0,
            offered: 2
        })
    );
    bobs.catch_up(&a1, m, &config).unwrap();
    assert_eq!(bobs.srtp_keys(&c1), carols.srtp_keys(&c1));
    let before = bobs.to_bytes();
    assert_eq!(
        bobs.apply(&a1, removal.clone(), &config),
        Err(SyncError::StaleCallKey)
    );
    assert_eq!(*before, *bobs.to_bytes());

    // Carol's snapshot at epoch 2; Bob removed again at 3; Carol restored with 3 kept.
    let snapshot = carols.to_bytes();
    let again = call.remove(&mut w.rng, &b1).unwrap();
    carols.apply(&a1, again.clone(), &config).unwrap();
    let (mut restored, stale) = Call::restore(&mut w.rng, &snapshot, carols.epoch()).unwrap();
    assert!(stale);
    assert_eq!(restored.epoch(), 2);
    assert_eq!(
        restored.apply(&a1, rejoin.clone(), &config),
        Err(SyncError::StaleCallKey)
    );
    // Below its floor the call hands out no media keys (found by this review: they were
    // epoch 2's, which Bob, removed at 3, derives as well), for any participant.
    for p in [&a1, &b1, &c1] {
        assert_eq!(restored.srtp_keys(p), Err(SyncError::StaleCallKey));
    }
    restored.apply(&a1, again, &config).unwrap();
    assert_eq!(restored.srtp_keys(&c1), carols.srtp_keys(&c1));
    assert_ne!(restored.srtp_keys(&c1), bobs.srtp_keys(&c1));
}

/// The phone's primary is restored from a backup taken while the laptop (identity X) was
/// linked and an invitation pending; since the backup a desktop was linked and the laptop
/// unlinked. Before `resync` it signs nothing (`ResyncRequired`, nothing changed); a list
/// older than its snapshot is `Rollback`; the server shows it the snapshot's own list (the
/// laptop still in it) and it signs the phone alone, far past every version and id. The old
/// invitation is gone (`UnknownInvitation`). Bob's next group key reaches the phone alone;
/// the hardware X links again under a fresh id, takes G from a history offer and reads Bob
/// from then on; the old laptop (lists withheld) and the desktop read nothing new.
#[test]
fn a_restored_primary_resyncs_and_the_account_is_rebuilt_from_the_phone() {
    let mut w = World::new("review37b primary restore");
    let alice = w.account(0);
    let bob = w.account(0);
    let v1 = w.primary(&alice).device_list().signed().clone();
    let x = IdentityKeyPair::generate(&mut w.rng);
    let a2 = link_with(&mut w, &alice, &x);
    w.publish_all();
    w.set_members(G, &[alice, bob]);
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let m1 = w.send_group(b1, G, b"m1");
    w.deliver_ok(&m1);
    let (mut rng, now) = (w.rng.clone(), w.now);
    let old_invitation = w.primary(&alice).invite(&mut rng, now).unwrap();
    let backup = w.primary(&alice).to_bytes();
    let snapshot_list = w.primary(&alice).device_list().signed().clone();
    let y = IdentityKeyPair::generate(&mut w.rng);
    let a3 = link_with(&mut w, &alice, &y);
    w.primary(&alice).unlink(now, DeviceId(2)).unwrap();
    publish_except(&mut w, &alice, &[a2]);

    let mut restored = Primary::restore_from_backup(&backup).unwrap();
    assert!(restored.needs_resync());
    let z = IdentityKeyPair::generate(&mut w.rng);
    let request = LinkRequest::new(&z, &old_invitation);
    let before = restored.to_bytes();
    let resync = Err(DeviceError::ResyncRequired);
    assert_eq!(restored.invite(&mut rng, now).map(|_| ()), resync);
    assert_eq!(restored.approve(now, &request).map(|_| ()), resync);
    assert_eq!(restored.renew(now).map(|_| ()), resync);
    assert_eq!(restored.unlink(now, DeviceId(2)).map(|_| ()), resync);
    assert_eq!(
        restored.resync(now, v1).map(|_| ()),
        Err(DeviceError::Rollback {
            known: 2,
            received: 1
        })
    );
    assert_eq!(*before, *restored.to_bytes());
    let list = restored.resync(now, snapshot_list).unwrap().clone();
    assert_eq!(
        list.version(),
        (3 + RESTORE_VERSION_SKIP).max(now.as_millis() * RESTORE_VERSION_PER_MS)
    );
    assert_eq!(list.entries().len(), 1);
    let before = restored.to_bytes();
    assert_eq!(
        restored.approve(now, &request).map(|_| ()),
        Err(DeviceError::UnknownInvitation)
    );
    assert_eq!(*before, *restored.to_bytes());
    *w.primary(&alice) = restored;
    publish_except(&mut w, &alice, &[a2]);

    let m2 = w.send_group(b1, G, b"m2 after the restore");
    assert_eq!(targets(&m2), vec![a1]);
    assert_eq!(group_recipients(&m2), vec![a1]);
    w.deliver_ok(&m2);
    let a4 = link_with(&mut w, &alice, &x);
    let fresh = 3 + RESTORE_DEVICE_ID_SKIP;
    assert!((fresh..fresh + RESTORE_DEVICE_ID_SPREAD).contains(&a4.device.0));
    publish_except(&mut w, &alice, &[a2]);
    w.publish(&bob);
    let o = offer(&mut w);
    let sent = w
        .run(a1, |d, rng, now| d.send_history_offer(rng, now, a4, &o))
        .unwrap();
    let got = w.deliver_ok(&sent);
    assert!(matches!(&got[0].1, Received::HistoryOffer { groups, .. } if *groups == vec![G]));
    let m3 = w.send_group(b1, G, b"m3 to the relinked laptop");
    assert_eq!(targets(&m3), vec![a4]);
    let got = w.deliver_ok(&m3);
    assert_eq!(body(&got[2].1), Some(&b"m3 to the relinked laptop"[..]));
    for m in [&m2, &m3] {
        refused_as(&mut w, a2, &group_envelope(m), key_missing(b1));
        w.refused(
            a3,
            &group_envelope(m),
            FanoutError::ThisDeviceInactive.into(),
        );
    }
}

/// Two primary behaviours an app may not expect. (1) Found by this review and fixed: a
/// companion that expired (the phone was offline past its validity) and links again with the
/// same identity key was `AlreadyLinked` until `renew`, the check running over the held list,
/// expired entries included, though the list approve signs drops them; now it links at once,
/// under a new id, and an identity still active is `AlreadyLinked`. (2) Pinned: `resync` is
/// not limited to a restored primary: called on one that needs none, it adopts its own list,
/// skips versions and ids again and signs the phone alone, unlinking every companion (its
/// doc says to call it only when needed).
#[test]
fn an_expired_identity_links_again_and_resync_always_drops_companions() {
    let mut w = World::new("review37b primary quirks");
    let alice = w.account(0);
    let x = IdentityKeyPair::generate(&mut w.rng);
    let a2 = link_with(&mut w, &alice, &x);
    w.now = ratchetry::Timestamp(w.now.0 + 15 * support::DAY);
    let (mut rng, now) = (w.rng.clone(), w.now);
    let primary = w.primary(&alice);
    let invitation = primary.invite(&mut rng, now).unwrap();
    let request = LinkRequest::new(&x, &invitation);
    assert_eq!(
        primary.approve(now, &request).map(|a| a.device),
        Ok(DeviceId(3))
    );
    assert!(primary.device_list().entry(a2.device).is_none());
    // Still listed and active under id 3: the same identity again is refused, unchanged.
    let again = primary.invite(&mut rng, now).unwrap();
    let request = LinkRequest::new(&x, &again);
    let before = primary.to_bytes();
    assert_eq!(
        primary.approve(now, &request).map(|a| a.device),
        Err(DeviceError::AlreadyLinked)
    );
    assert_eq!(*before, *primary.to_bytes());

    assert!(!primary.needs_resync());
    let own = primary.device_list().signed().clone();
    let version = own.version();
    let list = primary.resync(now, own).unwrap();
    assert_eq!(
        list.version(),
        (version + 1 + RESTORE_VERSION_SKIP).max(now.as_millis() * RESTORE_VERSION_PER_MS)
    );
    assert_eq!(list.entries().len(), 1, "every companion unlinked");
}

/// The app sets members while sender keys are in flight. Alice's key reaches Bob before his
/// app set the group (`UnknownGroup`), and Carol's while Bob's app had removed her
/// (`NotAMember`): both refusals change nothing, so the same envelopes, redelivered once Bob's
/// app set the group and added Carol back, read, and so do the group messages they key; later
/// pairwise messages on the same sessions read too, whichever order the relay picks.
#[test]
fn a_sender_key_refused_for_membership_reads_when_redelivered_after_the_app_catches_up() {
    let (mut w, [alice, bob, carol], [a1, b1, c1]) =
        World::phones("review37b membership in flight");
    for d in [a1, c1] {
        w.device(d)
            .set_group_members(G, &[alice, bob, carol])
            .unwrap();
        w.persist(d);
    }
    let from_alice = w.send_group(a1, G, b"alice to G");
    let from_carol = w.send_group(c1, G, b"carol to G");
    w.refused(
        b1,
        &World::envelope_to(&from_alice, b1),
        FanoutError::UnknownGroup(G).into(),
    );
    w.device(b1).set_group_members(G, &[alice, bob]).unwrap();
    w.persist(b1);
    let not_a_member = FanoutError::NotAMember {
        group: G,
        account: carol,
    };
    w.refused(
        b1,
        &World::envelope_to(&from_carol, b1),
        not_a_member.into(),
    );
    w.refused(b1, &group_envelope(&from_carol), not_a_member.into());
    // Later direct messages on the same sessions are read first.
    for (from, to) in [(a1, b1), (c1, b1)] {
        let o = w.send(from, bob, b"direct");
        let got = w.receive(to, &World::envelope_to(&o, to)).unwrap();
        assert_eq!(body(&got), Some(&b"direct"[..]));
    }
    w.device(b1)
        .set_group_members(G, &[alice, bob, carol])
        .unwrap();
    w.persist(b1);
    for o in [&from_alice, &from_carol] {
        assert!(matches!(
            w.receive(b1, &World::envelope_to(o, b1)),
            Ok(Received::SenderKey { .. })
        ));
        let got = w.receive(b1, &group_envelope(o)).unwrap();
        assert!(body(&got).is_some_and(|b| b.ends_with(b"to G")));
    }
}

/// Alice's phone is backed up while Carol is in G; her app then removes Carol (the next send
/// rotates past her) and Bob unlinks his laptop. The phone is restored from the backup.
fn restored_after_removal(label: &str) -> (World, [DeviceAddress; 4], Outbox) {
    let mut w = World::new(label);
    let alice = w.account(0);
    let bob = w.account(1);
    let carol = w.account(0);
    w.publish_all();
    w.set_members(G, &[alice, bob, carol]);
    let (a1, b1, b2) = (
        World::addr(alice, 1),
        World::addr(bob, 1),
        World::addr(bob, 2),
    );
    let c1 = World::addr(carol, 1);
    let m1 = w.send_group(a1, G, b"m1");
    w.deliver_ok(&m1);
    let backup = w.device(a1).to_bytes();
    w.device(a1).set_group_members(G, &[alice, bob]).unwrap();
    w.persist(a1);
    let m2 = w.send_group(a1, G, b"m2 without carol");
    w.deliver_ok(&m2);
    let now = w.now;
    w.primary(&bob).unlink(now, DeviceId(2)).unwrap();
    publish_except(&mut w, &bob, &[b2]);
    *w.device(a1) = Device::restore_from_backup(&backup, now).unwrap();
    w.persist(a1);
    (w, [a1, b1, b2, c1], m2)
}

/// Found by this review and fixed: a restore rolled the device's group membership back with
/// the rest of its state, and nothing made the app set it again, so the restored phone's
/// first group send handed its new key to Carol, removed after the backup. Now every group
/// held at the restore is unconfirmed, through a restart from records: a group send, a group
/// message from Carol (sent with the key she kept) and a history offer are `GroupUnconfirmed`
/// and change nothing, and the driver keeps the envelope (`AwaitMembers`). The app's set, even
/// of the same members, confirms the group (and only it); set without Carol, the send leaves
/// her out and her message is `NotAMember`.
#[test]
fn a_restored_device_sends_nothing_to_and_reads_nothing_from_its_groups_until_the_app_sets_them() {
    let (mut w, [a1, b1, _, c1], _) = restored_after_removal("review37b restore membership");
    let (alice, bob) = (a1.account, b1.account);
    let now = w.now;
    // A second group, which the app confirms with the members it already had.
    w.device(a1).set_group_members(G2, &[bob]).unwrap();
    let backup = w.device(a1).to_bytes();
    *w.device(a1) = Device::restore_from_backup(&backup, now).unwrap();
    w.persist(a1);
    w.restart(a1);
    assert_eq!(
        w.device(a1).unconfirmed_groups().collect::<Vec<_>>(),
        [G, G2]
    );
    let unconfirmed = |g: GroupId| Error::from(FanoutError::GroupUnconfirmed(g));
    assert!(
        unconfirmed(G)
            .to_string()
            .contains("not set since a restore")
    );
    let refuse_send = |w: &mut World, g: GroupId| {
        let d = w.devices.get_mut(&a1).unwrap();
        let before = d.to_bytes();
        let err = d.send_group(&mut w.rng, now, g, b"x").err();
        assert_eq!(err, Some(unconfirmed(g)));
        assert_eq!(*before, *w.device(a1).to_bytes());
    };
    refuse_send(&mut w, G);
    let before = w.device(a1).to_bytes();
    let history = offer(&mut w);
    assert_eq!(
        w.devices
            .get_mut(&a1)
            .unwrap()
            .send_history_offer(&mut w.rng, now, World::addr(alice, 2), &history)
            .err(),
        Some(unconfirmed(G))
    );
    assert_eq!(*before, *w.device(a1).to_bytes());
    // Carol, removed after the backup, sends with the sender key Alice's backup still holds.
    let from_carol = w.send_group(c1, G, b"carol after her removal");
    let held = group_envelope(&from_carol);
    refused_as(&mut w, a1, &held, |e| *e == unconfirmed(G));
    let mut step = ratchetry::driver::Receiving::new();
    let outcome = step
        .step(
            w.devices.get_mut(&a1).unwrap(),
            &mut w.rng,
            now,
            &held,
            |_| false,
        )
        .unwrap();
    assert_eq!(
        outcome,
        ratchetry::driver::ReceiveStep::Done(ratchetry::driver::Inbound::AwaitMembers { group: G })
    );
    // The same members confirm G2 alone; its record goes in that unit and stays gone.
    w.device(a1).set_group_members(G2, &[bob]).unwrap();
    w.persist(a1);
    w.restart(a1);
    assert_eq!(w.device(a1).unconfirmed_groups().collect::<Vec<_>>(), [G]);
    refuse_send(&mut w, G);
    // Set from the app's store without Carol: she gets nothing, and her message is refused.
    w.device(a1).set_group_members(G, &[alice, bob]).unwrap();
    let list = w.primary(&bob).device_list().signed().clone();
    w.device(a1).update_device_list(now, &bob, list).unwrap();
    w.persist(a1);
    assert_eq!(w.device(a1).unconfirmed_groups().count(), 0);
    let m3 = w.send_group(a1, G, b"m3 after the restore");
    assert_eq!(group_recipients(&m3), vec![b1]);
    assert!(!targets(&m3).contains(&c1));
    refused_as(
        &mut w,
        a1,
        &held,
        |e| matches!(e, Error::Fanout(FanoutError::NotAMember { account, .. }) if *account == c1.account),
    );
    w.deliver_ok(&m3);
    refused_as(&mut w, c1, &group_envelope(&m3), key_missing(a1));
}

/// A forgotten group leaves the unconfirmed ones with its records, and a load refuses an
/// unconfirmed record whose group it does not hold, or that carries a value.
#[test]
fn an_unconfirmed_record_names_a_held_group_and_nothing_else() {
    let (mut w, [a1, ..], _) = restored_after_removal("review37b unconfirmed records");
    w.restart(a1);
    assert_eq!(w.device(a1).unconfirmed_groups().collect::<Vec<_>>(), [G]);
    let mut records = w.stores[&a1].0.clone();
    let mut key = vec![0x14];
    key.extend_from_slice(&G.0);
    assert_eq!(records.get(&key), Some(&Vec::new()));
    let load = |r: &std::collections::BTreeMap<Vec<u8>, Vec<u8>>| {
        Device::from_records(r.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
    };
    records.insert(key.clone(), vec![0]);
    assert_eq!(
        load(&records).err(),
        Some(ratchetry::DecodeError::TrailingBytes)
    );
    records.insert(key.clone(), Vec::new());
    let mut other = vec![0x14];
    other.extend_from_slice(&G2.0);
    records.insert(other, Vec::new());
    assert_eq!(
        load(&records).err(),
        Some(ratchetry::DecodeError::InvalidValue)
    );
    w.device(a1).forget_group(G);
    w.persist(a1);
    assert!(!w.stores[&a1].0.contains_key(&key));
    w.restart(a1);
    assert_eq!(w.device(a1).unconfirmed_groups().count(), 0);
}
