//! The relay's side: the coverage check that refuses a batch made under a stale device list
//! (and the device's rollback of what a refused send gave), and each device's published
//! prekeys, verified on upload and handed out once.

mod support;

use ratchetry::devices::{DeviceAddress, DeviceId, ListCoverage, VerifiedDeviceList};
use ratchetry::fanout::{Device, Outbox, Received};
use ratchetry::group::GroupId;
use ratchetry::server::{
    AcceptedUpload, EXPIRY_TOLERANCE_MS, MAX_POOLED_PREKEYS, PublishedPreKeys, REMEMBERED_UPLOADS,
    check_coverage,
};
use ratchetry::x3dh::{OneTimePreKeys, SignedPreKeyPublic};
use ratchetry::{Error, FanoutError, PreKeyBundle, ServerError, Timestamp, X3dhError};
use support::{DAY, World, body};

const ROOM: GroupId = GroupId([0x44; 32]);

/// The relay's view: the list each account's primary last signed.
fn served(w: &mut World) -> Vec<VerifiedDeviceList> {
    w.primaries
        .iter()
        .map(|p| p.device_list().clone())
        .collect()
}

fn check(w: &mut World, from: DeviceAddress, outbox: &Outbox) -> Result<(), ServerError> {
    let lists = served(w);
    check_coverage(
        &from,
        &outbox.recipients(),
        &outbox.coverage,
        |a| lists.iter().find(|l| l.account() == *a),
        w.now,
    )
}

/// Problem 1 of the issue: Alice holds Bob's old list when he links a laptop. The relay
/// refuses her batch (`StaleList`, both versions); she fetches the list, takes the send back,
/// sends again, and the laptop reads it.
#[test]
fn a_relay_refuses_a_batch_made_under_a_stale_list_so_a_new_companion_is_not_left_out() {
    let mut w = World::new("server stale list");
    let alice = w.account(1);
    let bob = w.account(0);
    w.publish_all();
    let (a1, a2, b1) = (
        World::addr(alice, 1),
        World::addr(alice, 2),
        World::addr(bob, 1),
    );
    let first = w.send(a1, bob, b"before");
    assert_eq!(check(&mut w, a1, &first), Ok(()));
    let coverage: Vec<_> = first.coverage.iter().map(|c| c.account).collect();
    let mut expected = [bob, alice];
    expected.sort();
    assert_eq!(
        coverage, expected,
        "the recipient's list and her own, in account order"
    );
    w.deliver_ok(&first);

    let laptop = w.link(&bob);
    let bobs_list = w.primary(&bob).device_list().signed().clone();
    let now = w.now;
    w.device(b1)
        .update_device_list(now, &bob, bobs_list)
        .unwrap();
    let stale = w.send(a1, bob, b"hello laptop?");
    assert_eq!(
        check(&mut w, a1, &stale),
        Err(ServerError::StaleList {
            account: bob,
            used: 1,
            current: 2
        })
    );
    // Refused: Alice fetches Bob's list, takes the send back and sends again.
    let list = w.primary(&bob).device_list().signed().clone();
    w.device(a1).update_device_list(now, &bob, list).unwrap();
    let send_id = stale.send_id.unwrap();
    w.device(a1)
        .not_delivered(send_id, &stale.recipients())
        .unwrap();
    w.persist(a1);
    let again = w.send(a1, bob, b"hello laptop");
    assert_eq!(check(&mut w, a1, &again), Ok(()));
    assert_eq!(again.recipients(), [a2, b1, laptop]);
    let alices_list = w.primary(&alice).device_list().signed().clone();
    w.device(laptop)
        .update_device_list(now, &alice, alices_list)
        .unwrap();
    let read = w.deliver_ok(&again);
    let on_laptop = read.iter().find(|(a, _)| *a == laptop).unwrap();
    assert_eq!(body(&on_laptop.1), Some(&b"hello laptop"[..]));
}

/// Each rule of the check, one refusal each, on a genuine 1:1 batch.
#[test]
fn coverage_refuses_each_way_a_batch_can_miss() {
    let mut w = World::new("server coverage rules");
    let alice = w.account(1);
    let bob = w.account(1);
    w.publish_all();
    let (a1, a2, b1, b2) = (
        World::addr(alice, 1),
        World::addr(alice, 2),
        World::addr(bob, 1),
        World::addr(bob, 2),
    );
    let outbox = w.send(a1, bob, b"hi");
    let lists = served(&mut w);
    let find = |a: &ratchetry::devices::AccountKey| lists.iter().find(|l| l.account() == *a);
    let now = w.now;
    let all = [a2, b1, b2];
    // Bob's coverage first (the relay takes them in any order).
    let mut cover = outbox.coverage.to_vec();
    cover.sort_by_key(|c| c.account != bob);
    assert_eq!(cover[0].account, bob);
    assert_eq!(check_coverage(&a1, &all, &cover, find, now), Ok(()));
    // Order and repeats of recipients do not matter (a group batch names a device twice).
    assert_eq!(
        check_coverage(&a1, &[b2, a2, b1, b2], &cover, find, now),
        Ok(())
    );
    // A device left out.
    assert_eq!(
        check_coverage(&a1, &[a2, b1], &cover, find, now),
        Err(ServerError::DeviceLeftOut(b2))
    );
    // Her own other device left out.
    assert_eq!(
        check_coverage(&a1, &[b1, b2], &cover, find, now),
        Err(ServerError::DeviceLeftOut(a2))
    );
    // A device the list does not name, and the sender itself.
    let b9 = World::addr(bob, 9);
    assert_eq!(
        check_coverage(&a1, &[a2, b1, b2, b9], &cover, find, now),
        Err(ServerError::NotListed(b9))
    );
    assert_eq!(
        check_coverage(&a1, &[a1, a2, b1, b2], &cover, find, now),
        Err(ServerError::NotListed(a1))
    );
    // A recipient account with no coverage; an account covered twice; one the relay lacks.
    assert_eq!(
        check_coverage(&a1, &all, &cover[..1], find, now),
        Err(ServerError::Uncovered(alice))
    );
    let twice = [cover[0], cover[1], cover[0]];
    assert_eq!(
        check_coverage(&a1, &all, &twice, find, now),
        Err(ServerError::CoveredTwice(bob))
    );
    let only_alice = |a: &ratchetry::devices::AccountKey| find(a).filter(|l| l.account() == alice);
    assert_eq!(
        check_coverage(&a1, &all, &cover, only_alice, now),
        Err(ServerError::UnknownAccount(bob))
    );
    // The same version with another digest: the relay showed her a different list.
    let mut forked = cover.clone();
    forked[0].digest[0] ^= 1;
    assert_eq!(
        check_coverage(&a1, &all, &forked, find, now),
        Err(ServerError::StaleList {
            account: bob,
            used: cover[0].version,
            current: cover[0].version
        })
    );
    let mut older = cover.clone();
    older[0].version -= 1;
    assert_eq!(
        check_coverage(&a1, &all, &older, find, now),
        Err(ServerError::StaleList {
            account: bob,
            used: cover[0].version - 1,
            current: cover[0].version
        })
    );
    // What a send covers is exactly the list held.
    assert_eq!(
        cover[0],
        ListCoverage::of(w.device(a1).device_list(&bob).unwrap())
    );
}

/// Companions expire: within the tolerance of their expiry the sender may include or leave
/// them out (clocks differ), beyond it the relay insists either way.
#[test]
fn coverage_tolerates_clock_skew_at_a_companions_expiry_only() {
    let mut w = World::new("server coverage expiry");
    let alice = w.account(0);
    let bob = w.account(1);
    w.publish_all();
    let (a1, b1, b2) = (
        World::addr(alice, 1),
        World::addr(bob, 1),
        World::addr(bob, 2),
    );
    let outbox = w.send(a1, bob, b"hi");
    let lists = served(&mut w);
    let find = |a: &ratchetry::devices::AccountKey| lists.iter().find(|l| l.account() == *a);
    let expiry = lists[1].entry(DeviceId(2)).unwrap().expires_at.unwrap().0;
    let cover = outbox.coverage.clone();
    let with = [b1, b2];
    let without = [b1];
    let at = |ms: u64| Timestamp(ms);
    // Well before expiry: must be included.
    let before = at(expiry - EXPIRY_TOLERANCE_MS - 1);
    assert_eq!(check_coverage(&a1, &with, &cover, find, before), Ok(()));
    assert_eq!(
        check_coverage(&a1, &without, &cover, find, before),
        Err(ServerError::DeviceLeftOut(b2))
    );
    // Within the tolerance on either side: either way.
    for ms in [
        expiry - EXPIRY_TOLERANCE_MS,
        expiry - 1,
        expiry,
        expiry + EXPIRY_TOLERANCE_MS - 1,
    ] {
        assert_eq!(check_coverage(&a1, &with, &cover, find, at(ms)), Ok(()));
        assert_eq!(check_coverage(&a1, &without, &cover, find, at(ms)), Ok(()));
    }
    // Well after: must be left out.
    let after = at(expiry + EXPIRY_TOLERANCE_MS);
    assert_eq!(check_coverage(&a1, &without, &cover, find, after), Ok(()));
    assert_eq!(
        check_coverage(&a1, &with, &cover, find, after),
        Err(ServerError::NotListed(b2))
    );
}

/// A group send covers every member account and the sender's own; sends to chosen devices
/// cover no account.
#[test]
fn a_group_send_covers_every_member_account_and_targeted_sends_cover_none() {
    let mut w = World::new("server group coverage");
    let alice = w.account(1);
    let bob = w.account(1);
    let carol = w.account(0);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob, carol]);
    let a1 = World::addr(alice, 1);
    let outbox = w.send_group(a1, ROOM, b"hi all");
    let mut covered: Vec<_> = outbox.coverage.iter().map(|c| c.account).collect();
    covered.sort();
    let mut expected = vec![alice, bob, carol];
    expected.sort();
    assert_eq!(covered, expected);
    assert_eq!(check(&mut w, a1, &outbox), Ok(()));
    let b2 = World::addr(bob, 2);
    use ratchetry::calls::{Call, CallConfig, CallKind};
    let call = Call::start(
        &mut w.rng,
        CallKind::OneToOne,
        a1,
        &[b2],
        &CallConfig::default(),
    )
    .unwrap();
    let call_key = w
        .run(a1, |d, rng, now| {
            d.send_call_key(rng, now, &[b2], call.key_message())
        })
        .unwrap();
    assert!(call_key.coverage.is_empty());
    assert_eq!(call_key.recipients(), [b2]);
    // With no coverage, each recipient need only be an active listed device.
    assert_eq!(check(&mut w, a1, &call_key), Ok(()));
    let lists = served(&mut w);
    let find = |a: &ratchetry::devices::AccountKey| lists.iter().find(|l| l.account() == *a);
    let now = w.now;
    let b9 = World::addr(bob, 9);
    assert_eq!(
        check_coverage(&a1, &[b2, b9], &[], find, now),
        Err(ServerError::NotListed(b9))
    );
    assert_eq!(
        check_coverage(&a1, &[a1], &[], find, now),
        Err(ServerError::NotListed(a1))
    );
    let stranger = World::addr(
        ratchetry::devices::AccountKeyPair::generate(&mut w.rng).public(),
        1,
    );
    assert_eq!(
        check_coverage(&a1, &[stranger], &[], find, now),
        Err(ServerError::UnknownAccount(stranger.account))
    );
    let expired = Timestamp(now.0 + 60 * DAY);
    assert_eq!(
        check_coverage(&a1, &[b2], &[], find, expired),
        Err(ServerError::NotListed(b2))
    );
}

/// Problem 2 of the issue: a group send the relay refused leaves the ledger believing the
/// key arrived, so every device that was to get it hits `SenderKeyMissing` and asks again.
/// Taking the send back makes the next send give the key again, and everyone reads.
#[test]
fn a_refused_group_send_taken_back_is_redistributed_by_the_next_send() {
    for take_back in [false, true] {
        let mut w = World::new("server refused group send");
        let alice = w.account(0);
        let bob = w.account(2);
        w.publish_all();
        w.set_members(ROOM, &[alice, bob]);
        let a1 = World::addr(alice, 1);
        let refused = w.send_group(a1, ROOM, b"lost");
        assert_eq!(refused.recipients().len(), 3);
        if take_back {
            let epoch = w.device(a1).state_epoch();
            w.device(a1)
                .not_delivered(refused.send_id.unwrap(), &refused.recipients())
                .unwrap();
            assert!(w.device(a1).state_epoch() > epoch);
            w.persist(a1);
            // The rollback survives a restart.
            w.restart(a1);
        }
        let next = w.send_group(a1, ROOM, b"next");
        let read: Vec<_> = w
            .deliver(&next)
            .into_iter()
            .filter(|(_, r)| !matches!(r, Ok(Received::SenderKey { .. })))
            .collect();
        assert_eq!(read.len(), 3);
        for (to, r) in read {
            if take_back {
                assert_eq!(body(&r.unwrap()), Some(&b"next"[..]), "{to:?}");
            } else {
                assert!(
                    matches!(r, Err(Error::Fanout(FanoutError::SenderKeyMissing { .. }))),
                    "{to:?}: {r:?}"
                );
            }
        }
    }
}

/// Taking back part of a group send removes only the devices given the key by that send; a
/// device that held it before keeps it (nothing to resend), and the taken back devices are
/// no longer entitled to ask for that message.
#[test]
fn taking_back_a_send_touches_only_what_that_send_gave() {
    let mut w = World::new("server partial take back");
    let alice = w.account(0);
    let bob = w.account(1);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob]);
    let (a1, b2) = (World::addr(alice, 1), World::addr(bob, 2));
    let first = w.send_group(a1, ROOM, b"first");
    w.deliver_ok(&first);
    // Bob's laptop is new to this generation only if the key rotates: here it held it, so
    // taking back the second send from it changes nothing.
    let second = w.send_group(a1, ROOM, b"second");
    let epoch = w.device(a1).state_epoch();
    w.device(a1)
        .not_delivered(second.send_id.unwrap(), &[b2])
        .unwrap();
    assert_eq!(w.device(a1).state_epoch(), epoch, "nothing to take back");
    assert!(!w.device(a1).has_changes());
    let read = w.deliver_ok(&second);
    assert!(read.iter().all(|(_, r)| body(r) == Some(&b"second"[..])));
}

/// A 1:1 send taken back from a device: that device can no longer ask for it; taken back from
/// all, the journal forgets it. Unknown sends change nothing.
#[test]
fn a_direct_send_taken_back_is_no_longer_asked_for() {
    let mut w = World::new("server direct take back");
    let alice = w.account(0);
    let bob = w.account(1);
    w.publish_all();
    let (a1, b1, b2) = (
        World::addr(alice, 1),
        World::addr(bob, 1),
        World::addr(bob, 2),
    );
    let outbox = w.send(a1, bob, b"hi");
    let send_id = outbox.send_id.unwrap();
    // Devices the send did not go to: nothing to take back.
    let epoch = w.device(a1).state_epoch();
    w.device(a1)
        .not_delivered(send_id, &[World::addr(bob, 9)])
        .unwrap();
    assert_eq!(w.device(a1).state_epoch(), epoch);
    assert!(!w.device(a1).has_changes());
    w.device(a1).not_delivered(send_id, &[b2]).unwrap();
    w.persist(a1);
    w.restart(a1);
    // Bob's laptop got it after all (a relay that lied), could not open it and asks: the
    // message is no longer known as sent to it.
    let to_b2 = World::envelope_to(&outbox, b2);
    let (_, request) = w
        .request_retry(
            b2,
            &support::tampered(&to_b2),
            ratchetry::fanout::RetryReason::AuthenticationFailed,
        )
        .unwrap();
    w.refused(a1, &request, FanoutError::UnknownMessage.into());
    // The phone still can.
    let to_b1 = World::envelope_to(&outbox, b1);
    let answer = w.ask_again(b1, a1, &support::tampered(&to_b1), b"hi");
    assert_eq!(answer.envelopes.len(), 1);
    // Taken back from everyone: forgotten.
    w.device(a1).not_delivered(send_id, &[b1]).unwrap();
    w.persist(a1);
    let before = w.device(a1).to_bytes();
    assert_eq!(
        w.device(a1).not_delivered(send_id, &[b1]),
        Err(FanoutError::UnknownMessage.into())
    );
    assert_eq!(*before, *w.device(a1).to_bytes());
    assert!(!w.device(a1).has_changes());
}

fn base_of(device: &Device) -> PreKeyBundle {
    device.bundle(None, None)
}

/// `count` new one-time keys of each kind from `device`, persisted.
fn generate(w: &mut World, device: DeviceAddress, count: u32) -> OneTimePreKeys {
    let World {
        rng, devices, now, ..
    } = w;
    let upload = devices
        .get_mut(&device)
        .unwrap()
        .generate_one_time_prekeys(rng, *now, count);
    w.persist(device);
    upload
}

/// A relay keeps a device's uploads and serves bundles that open at the device, each one-time
/// key in one bundle only, then the last-resort ML-KEM prekey with no one-time prekey.
#[test]
fn published_prekeys_hand_out_each_one_time_key_once() {
    let mut w = World::new("server published prekeys");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let now = w.now;
    let list = w.primary(&bob).device_list().clone();
    let mut keys = PublishedPreKeys::new(b1, base_of(w.device(b1)), &list, now).unwrap();
    let upload = generate(&mut w, b1, 3);
    keys.add(&upload).unwrap();
    assert_eq!(keys.remaining(), (3, 3));
    let mut seen = Vec::new();
    for _ in 0..4 {
        let bundle = keys.take_bundle();
        let one_time = bundle.one_time_prekey().map(|k| k.id);
        assert!(
            one_time.is_none() || !seen.contains(&one_time),
            "served twice"
        );
        seen.push(one_time);
        if one_time.is_none() {
            assert_eq!(bundle.kem_prekey(), base_of(w.device(b1)).kem_prekey());
        }
        // Each bundle starts a session Bob accepts (a one-time key served twice would be
        // `UnknownOneTimePreKey` at Bob).
        let World { rng, devices, .. } = &mut w;
        let alice_phone = devices.get_mut(&a1).unwrap();
        alice_phone
            .start_sessions(rng, now, &[(b1, bundle)])
            .unwrap();
        let outbox = w.send(a1, bob, b"via relay bundle");
        assert_eq!(
            body(&w.deliver_ok(&outbox)[0].1),
            Some(&b"via relay bundle"[..])
        );
    }
    assert_eq!(seen.iter().filter(|s| s.is_some()).count(), 3);
    assert_eq!(keys.remaining(), (0, 0));
    // Stored and rebuilt, the pools are what they were.
    let more = generate(&mut w, b1, 2);
    keys.add(&more).unwrap();
    let stored = (keys.base().to_bytes(), keys.pooled().to_bytes());
    let accepted = keys.accepted().to_vec();
    assert_eq!(accepted.len(), 2, "the first upload and this one");
    let rebuilt = PublishedPreKeys::from_parts(
        b1,
        PreKeyBundle::from_bytes(&stored.0).unwrap(),
        &OneTimePreKeys::from_bytes(&stored.1).unwrap(),
        &accepted,
        &list,
        now,
    )
    .unwrap();
    assert_eq!(rebuilt, keys);
    assert_eq!(rebuilt.address(), b1);
    // An upload sent again (its answer lost) is refused, before and after its keys were
    // handed out, and after a restart from the stored parts: no key goes into a second bundle.
    // The pools are unchanged by each refusal.
    let duplicate = Err(ServerError::DuplicatePreKeyId(more.kem_keys()[0].id.0).into());
    let mut again = rebuilt.clone();
    assert_eq!(again.add(&more), duplicate);
    let served = [again.take_bundle(), again.take_bundle()];
    assert_eq!(again.remaining(), (0, 0));
    let before = again.clone();
    assert_eq!(again.add(&more), duplicate);
    assert_eq!(again, before);
    let mut restarted = PublishedPreKeys::from_parts(
        b1,
        again.base().clone(),
        &again.pooled(),
        again.accepted(),
        &list,
        now,
    )
    .unwrap();
    assert_eq!(restarted.add(&more), duplicate);
    assert_eq!(restarted, again);
    let next = restarted.take_bundle();
    assert!(next.one_time_prekey().is_none());
    assert!(served.iter().all(|b| b.one_time_prekey().is_some()));
    // A new upload goes in; the oldest digests are forgotten past REMEMBERED_UPLOADS (the
    // first upload, long handed out, is accepted again once 16 newer ones were).
    let mut pool = PublishedPreKeys::new(b1, keys.base().clone(), &list, now).unwrap();
    let first = generate(&mut w, b1, 1);
    pool.add(&first).unwrap();
    pool.take_bundle();
    assert_eq!(
        pool.remaining(),
        (0, 0),
        "the first upload's keys are handed out"
    );
    for _ in 0..REMEMBERED_UPLOADS - 1 {
        pool.add(&generate(&mut w, b1, 1)).unwrap();
        assert!(pool.add(&first).is_err());
    }
    assert_eq!(pool.accepted().len(), REMEMBERED_UPLOADS);
    pool.add(&generate(&mut w, b1, 1)).unwrap();
    assert_eq!(pool.accepted().len(), REMEMBERED_UPLOADS);
    pool.add(&first).unwrap();
    // Rebuilt from more digests than it remembers: the newest are kept.
    let old =
        AcceptedUpload::from_bytes(&[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap();
    let mut many = vec![old; 3];
    many.extend_from_slice(pool.accepted());
    let kept =
        PublishedPreKeys::from_parts(b1, pool.base().clone(), &pool.pooled(), &many, &list, now)
            .unwrap();
    assert_eq!(kept.accepted(), pool.accepted());
    // An empty upload changes nothing and is not remembered.
    let empty = OneTimePreKeys::from_bytes(&generate(&mut w, b1, 0).to_bytes()).unwrap();
    let before = pool.clone();
    pool.add(&empty).unwrap();
    pool.add(&empty).unwrap();
    assert_eq!(pool, before);
}

/// Uploads are verified all or nothing: a forged ML-KEM signature, an id already pooled, a
/// full pool, a base with a one-time key, another device's identity, a device not active in
/// the list: each refused, the pools unchanged.
#[test]
fn published_prekeys_refuse_bad_uploads_and_stay_unchanged() {
    let mut w = World::new("server bad uploads");
    let bob = w.account(1);
    w.publish_all();
    let (b1, b2) = (World::addr(bob, 1), World::addr(bob, 2));
    let now = w.now;
    let list = w.primary(&bob).device_list().clone();
    let base = base_of(w.device(b1));
    let mut keys = PublishedPreKeys::new(b1, base.clone(), &list, now).unwrap();
    let upload = generate(&mut w, b1, 2);
    keys.add(&upload).unwrap();
    let before = keys.clone();

    // The same upload again: ids already pooled.
    let first_kem = upload.kem_keys()[0].id.0;
    assert_eq!(
        keys.add(&upload),
        Err(ServerError::DuplicatePreKeyId(first_kem).into())
    );
    // X25519 ids pooled, no ML-KEM key.
    let x_only = OneTimePreKeys::from_bytes(&{
        let mut b = upload.to_bytes();
        b.truncate(2 + 4 + 36 * upload.keys().len());
        b.extend_from_slice(&0u32.to_be_bytes());
        b
    })
    .unwrap();
    assert_eq!(
        keys.add(&x_only),
        Err(ServerError::DuplicatePreKeyId(upload.keys()[0].id.0).into())
    );
    // A new ML-KEM key whose signature was altered.
    let fresh = generate(&mut w, b1, 1);
    let mut bytes = fresh.to_bytes();
    *bytes.last_mut().unwrap() ^= 0x01;
    let forged = OneTimePreKeys::from_bytes(&bytes).unwrap();
    assert_eq!(
        keys.add(&forged),
        Err(X3dhError::BadKemPreKeySignature.into())
    );
    assert_eq!(keys, before);

    // A base carrying a one-time prekey; another device's base; a device the list lacks; an
    // expired companion.
    let with_one_time = w.device(b1).bundle(Some(upload.keys()[0].id), None);
    assert_eq!(
        PublishedPreKeys::new(b1, with_one_time, &list, now),
        Err(ServerError::NotABaseBundle.into())
    );
    let laptop_base = base_of(w.device(b2));
    assert_eq!(
        PublishedPreKeys::new(b1, laptop_base.clone(), &list, now),
        Err(ServerError::IdentityMismatch(b1).into())
    );
    let b7 = World::addr(bob, 7);
    assert!(matches!(
        PublishedPreKeys::new(b7, laptop_base.clone(), &list, now),
        Err(Error::Device(_))
    ));
    let expired = Timestamp(now.0 + 60 * DAY);
    assert!(matches!(
        PublishedPreKeys::new(b2, laptop_base.clone(), &list, expired),
        Err(Error::Device(_))
    ));
    let alice_list = {
        let alice = w.account(0);
        w.primary(&alice).device_list().clone()
    };
    assert_eq!(
        PublishedPreKeys::new(b1, base.clone(), &alice_list, now),
        Err(ServerError::UnknownAccount(bob).into())
    );
    // A base whose signed prekey signature is not the identity key's.
    let s = base.signed_prekey();
    let bad = PreKeyBundle::new(
        base.identity_key(),
        SignedPreKeyPublic {
            signature: laptop_base.signed_prekey().signature,
            ..s
        },
        None,
        base.kem_prekey().clone(),
    );
    assert_eq!(
        PublishedPreKeys::new(b1, bad.clone(), &list, now),
        Err(X3dhError::BadSignedPreKeySignature.into())
    );
    assert_eq!(
        keys.replace_base(bad, &list, now),
        Err(X3dhError::BadSignedPreKeySignature.into())
    );
    // Replacing the base with another identity's is refused; a rotated one is taken, pools
    // kept.
    assert_eq!(
        keys.replace_base(laptop_base, &list, now),
        Err(ServerError::IdentityMismatch(b1).into())
    );
    assert_eq!(keys, before);
    let World { rng, devices, .. } = &mut w;
    devices.get_mut(&b1).unwrap().rotate_signed_prekey(rng, now);
    let rotated = base_of(w.device(b1));
    assert_ne!(rotated.signed_prekey(), base.signed_prekey());
    keys.replace_base(rotated.clone(), &list, now).unwrap();
    assert_eq!(keys.base(), &rotated);
    assert_eq!(keys.remaining(), before.remaining());
}

/// The pools are bounded: an upload that would pass the bound is refused whole.
#[test]
fn published_prekey_pools_are_bounded() {
    let mut w = World::new("server pool bound");
    let bob = w.account(0);
    w.publish_all();
    let b1 = World::addr(bob, 1);
    let now = w.now;
    let list = w.primary(&bob).device_list().clone();
    let mut keys = PublishedPreKeys::new(b1, base_of(w.device(b1)), &list, now).unwrap();
    // X25519 one-time keys are unsigned: an upload of MAX + 1 distinct ones is cheap to build.
    let key = generate(&mut w, b1, 1).keys()[0].key;
    let upload = |from: u32, n: u32| {
        let mut b = vec![2, 0x10];
        b.extend_from_slice(&n.to_be_bytes());
        for id in from..from + n {
            b.extend_from_slice(&id.to_be_bytes());
            b.extend_from_slice(&key.to_bytes());
        }
        b.extend_from_slice(&0u32.to_be_bytes());
        OneTimePreKeys::from_bytes(&b).unwrap()
    };
    let max = MAX_POOLED_PREKEYS as u32;
    keys.add(&upload(1, max - 1)).unwrap();
    let before = keys.clone();
    assert_eq!(keys.add(&upload(max, 2)), Err(ServerError::PoolFull.into()));
    assert_eq!(keys, before);
    keys.add(&upload(max, 1)).unwrap();
    assert_eq!(keys.remaining().0, MAX_POOLED_PREKEYS);
}

/// Found by review: a relay that delivers a group send and then says it refused it must not
/// let a device removed meanwhile keep reading. Taking the send back makes the next send
/// rotate, to the members then, so the unlinked laptop reads nothing more.
#[test]
fn a_send_taken_back_rotates_so_a_device_removed_meanwhile_reads_nothing_more() {
    let mut w = World::new("server take back rotates");
    let alice = w.account(0);
    let bob = w.account(1);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob]);
    let (a1, b1, b2) = (
        World::addr(alice, 1),
        World::addr(bob, 1),
        World::addr(bob, 2),
    );
    let now = w.now;
    // Bob unlinks his laptop; Alice does not know yet.
    w.primary(&bob).unlink(now, DeviceId(2)).unwrap();
    let new_list = w.primary(&bob).device_list().signed().clone();
    let first = w.send_group(a1, ROOM, b"first");
    // The relay delivers everything, the laptop included, then says it refused (StaleList).
    let read = w.deliver_ok(&first);
    assert!(
        read.iter()
            .any(|(a, r)| *a == b2 && body(r) == Some(&b"first"[..]))
    );
    assert!(matches!(
        check(&mut w, a1, &first),
        Err(ServerError::StaleList { .. })
    ));
    w.device(a1)
        .update_device_list(now, &bob, new_list.clone())
        .unwrap();
    w.device(a1)
        .not_delivered(first.send_id.unwrap(), &first.recipients())
        .unwrap();
    w.persist(a1);
    w.device(b1)
        .update_device_list(now, &bob, new_list)
        .unwrap();
    let again = w.send_group(a1, ROOM, b"after the unlink");
    assert!(!again.recipients().contains(&b2));
    let (envelope, _) = again.group.clone().unwrap();
    assert!(
        matches!(
            w.receive(b2, &envelope),
            Err(Error::Fanout(FanoutError::SenderKeyMissing { .. }))
        ),
        "the unlinked laptop must not read on"
    );
    let read = w.deliver_ok(&again);
    assert!(
        read.iter()
            .any(|(a, r)| *a == b1 && body(r) == Some(&b"after the unlink"[..]))
    );
}

/// The bound counts what a pool holds plus what is uploaded: a pool holding one key refuses
/// an upload of as many keys as a pool may hold.
#[test]
fn a_pool_refuses_an_upload_that_fills_it_past_what_it_holds() {
    let mut w = World::new("server pool bound held");
    let bob = w.account(0);
    w.publish_all();
    let b1 = World::addr(bob, 1);
    let now = w.now;
    let list = w.primary(&bob).device_list().clone();
    let mut keys = PublishedPreKeys::new(b1, base_of(w.device(b1)), &list, now).unwrap();
    let key = generate(&mut w, b1, 1).keys()[0].key;
    let upload = |from: u32, n: u32| {
        let mut b = vec![2, 0x10];
        b.extend_from_slice(&n.to_be_bytes());
        for id in from..from + n {
            b.extend_from_slice(&id.to_be_bytes());
            b.extend_from_slice(&key.to_bytes());
        }
        b.extend_from_slice(&0u32.to_be_bytes());
        OneTimePreKeys::from_bytes(&b).unwrap()
    };
    keys.add(&upload(1, 1)).unwrap();
    let before = keys.clone();
    let max = MAX_POOLED_PREKEYS as u32;
    assert_eq!(keys.add(&upload(2, max)), Err(ServerError::PoolFull.into()));
    assert_eq!(keys, before);
}

/// Phones' clocks drift by minutes: a sender whose clock is four minutes off the relay's, on
/// either side of a companion's expiry, is not refused for including or leaving out that
/// companion; an hour off, the relay goes by its own clock.
#[test]
fn coverage_tolerates_minutes_of_clock_drift_not_hours() {
    const MINUTE: u64 = 60 * 1000;
    let mut w = World::new("server coverage drift");
    let alice = w.account(0);
    let bob = w.account(1);
    w.publish_all();
    let (a1, b2) = (World::addr(alice, 1), World::addr(bob, 2));
    let lists = served(&mut w);
    let find = |a: &ratchetry::devices::AccountKey| lists.iter().find(|l| l.account() == *a);
    let expiry = lists[1].entry(b2.device).unwrap().expires_at.unwrap().0;
    // By her clock, a minute before the laptop expires she includes it; a minute after, not.
    w.now = Timestamp(expiry - MINUTE);
    let with = w.send(a1, bob, b"before");
    assert!(with.recipients().contains(&b2));
    w.now = Timestamp(expiry + MINUTE);
    let without = w.send(a1, bob, b"after");
    assert!(!without.recipients().contains(&b2));
    let at_relay = |outbox: &Outbox, ms: u64| {
        check_coverage(
            &a1,
            &outbox.recipients(),
            &outbox.coverage,
            find,
            Timestamp(ms),
        )
    };
    // The relay's clock four minutes ahead of hers, or four behind: accepted.
    assert_eq!(at_relay(&with, expiry + 3 * MINUTE), Ok(()));
    assert_eq!(at_relay(&without, expiry - 3 * MINUTE), Ok(()));
    // An hour apart: refused.
    assert_eq!(
        at_relay(&with, expiry + 60 * MINUTE),
        Err(ServerError::NotListed(b2))
    );
    assert_eq!(
        at_relay(&without, expiry - 60 * MINUTE),
        Err(ServerError::DeviceLeftOut(b2))
    );
}
