//! Review 38c: stop 38's changes (the forgotten list's mark, the restored device's wait under
//! an honest relay's coverage check, app reasons that alias named ones) and the server helpers
//! (`check_coverage`, `PublishedPreKeys`) against a client that crafts what it submits.
//!
//! Found: nothing that breaks a guarantee. These tests pin what was checked.

mod support;

use std::collections::BTreeMap;

use ratchetry::devices::{
    AccountKey, DeviceAddress, DeviceId, ListCoverage, PRIMARY_DEVICE, VerifiedDeviceList,
};
use ratchetry::fanout::{Device, Event, Received, WithheldReason};
use ratchetry::group::GroupId;
use ratchetry::server::{PublishedPreKeys, check_coverage};
use ratchetry::testing::SeededRng;
use ratchetry::{Error, FanoutError, ServerError, Timestamp};
use support::{DAY, Store, World};

/// The lists an honest relay serves, from each account's primary.
fn served(w: &mut World, accounts: &[AccountKey]) -> BTreeMap<AccountKey, VerifiedDeviceList> {
    accounts
        .iter()
        .map(|a| (*a, w.primary(a).device_list().clone()))
        .collect()
}

fn check(
    lists: &BTreeMap<AccountKey, VerifiedDeviceList>,
    sender: &DeviceAddress,
    recipients: &[DeviceAddress],
    coverage: &[ListCoverage],
    now: Timestamp,
) -> Result<(), ServerError> {
    check_coverage(sender, recipients, coverage, |a| lists.get(a), now)
}

/// A restored companion and an honest relay. Alice's laptop is restored from a backup and
/// awaits an own list: its send to Bob leaves out Alice's phone and claims no coverage of
/// Alice's account, and the relay's check accepts it (the wait does not make the relay refuse
/// every batch). A client that claims Alice's list with the same recipients is refused
/// (`DeviceLeftOut` of the phone). Once the primary's renewed list ends the wait, the send
/// covers Alice's account and reaches the phone, and the check accepts that too; the batch
/// made during the wait is then still accepted only because it claims no own coverage.
#[test]
fn a_restored_companions_sends_pass_an_honest_relays_check_during_and_after_its_wait() {
    let mut w = World::new("review38c restored coverage");
    let alice = w.account(1);
    let bob = w.account(0);
    w.publish_all();
    let a1 = World::addr(alice, PRIMARY_DEVICE.0);
    let laptop = *w
        .devices_of(&alice)
        .iter()
        .find(|a| a.device != PRIMARY_DEVICE)
        .unwrap();
    let b1 = World::addr(bob, 1);
    let backup = w.device(laptop).to_bytes();
    w.now = w.now.plus_millis(DAY);
    let now = w.now;
    *w.device(laptop) = Device::restore_from_backup(&backup, now).unwrap();
    w.persist(laptop);
    assert!(w.device(laptop).awaiting_own_list());

    let during = w.send(laptop, bob, b"while waiting");
    assert_eq!(during.recipients(), vec![b1]);
    assert!(during.coverage.iter().all(|c| c.account != alice));
    let lists = served(&mut w, &[alice, bob]);
    assert_eq!(
        check(&lists, &laptop, &during.recipients(), &during.coverage, now),
        Ok(())
    );
    // Claiming the own account's list without its phone is refused.
    let mut claimed = during.coverage.to_vec();
    claimed.push(ListCoverage::of(&lists[&alice]));
    assert_eq!(
        check(&lists, &laptop, &during.recipients(), &claimed, now),
        Err(ServerError::DeviceLeftOut(a1))
    );
    w.deliver_ok(&during);

    // The primary's next list ends the wait.
    w.now = w.now.plus_millis(60_000);
    let now = w.now;
    let renewed = w.primary(&alice).renew(now).unwrap().signed().clone();
    w.device(laptop)
        .update_device_list(now, &alice, renewed.clone())
        .unwrap();
    w.persist(laptop);
    assert!(!w.device(laptop).awaiting_own_list());
    for d in [a1, World::addr(bob, 1)] {
        w.device(d)
            .update_device_list(now, &alice, renewed.clone())
            .unwrap();
        w.persist(d);
    }
    let lists = served(&mut w, &[alice, bob]);
    let after = w.send(laptop, bob, b"after the wait");
    assert_eq!(after.recipients(), vec![a1, b1]);
    assert!(after.coverage.iter().any(|c| c.account == alice));
    assert_eq!(
        check(&lists, &laptop, &after.recipients(), &after.coverage, now),
        Ok(())
    );
    let read = w.deliver_ok(&after);
    assert_eq!(read.len(), 2);
}

/// Crafted batches against the coverage check: the sender among the recipients, an account
/// covered twice, a stale or forged digest, a device id the list does not name, an account
/// the relay does not know, a covered account reached by no device, and a batch of chosen
/// devices (no coverage) naming an unlisted device. Each is refused with its error and none
/// panics; the honest batch passes.
#[test]
fn crafted_batches_are_refused_by_the_coverage_check() {
    let (mut w, alice, bob, a1, b1) = World::two_talking("review38c crafted coverage");
    let now = w.now;
    let o = w.send(a1, bob, b"honest");
    let lists = served(&mut w, &[alice, bob]);
    let recipients = o.recipients();
    let coverage = o.coverage.to_vec();
    assert_eq!(check(&lists, &a1, &recipients, &coverage, now), Ok(()));

    let with = |extra: DeviceAddress| {
        let mut r = recipients.clone();
        r.push(extra);
        r
    };
    assert_eq!(
        check(&lists, &a1, &with(a1), &coverage, now),
        Err(ServerError::NotListed(a1))
    );
    let mut twice = coverage.clone();
    twice.push(coverage[0]);
    assert!(matches!(
        check(&lists, &a1, &recipients, &twice, now),
        Err(ServerError::CoveredTwice(_))
    ));
    let mut forged = coverage.clone();
    let at = forged.iter().position(|c| c.account == bob).unwrap();
    forged[at].digest[0] ^= 1;
    let version = lists[&bob].version();
    assert_eq!(
        check(&lists, &a1, &recipients, &forged, now),
        Err(ServerError::StaleList {
            account: bob,
            used: version,
            current: version,
        })
    );
    let unlisted = DeviceAddress {
        account: bob,
        device: DeviceId(99),
    };
    assert_eq!(
        check(&lists, &a1, &with(unlisted), &coverage, now),
        Err(ServerError::NotListed(unlisted))
    );
    assert_eq!(
        check(&lists, &a1, &with(unlisted), &[], now),
        Err(ServerError::NotListed(unlisted))
    );
    let stranger = w.account(0);
    let s1 = World::addr(stranger, 1);
    assert_eq!(
        check(&lists, &a1, &with(s1), &coverage, now),
        Err(ServerError::Uncovered(stranger))
    );
    assert_eq!(
        check(&lists, &a1, &[s1], &[], now),
        Err(ServerError::UnknownAccount(stranger))
    );
    let mut claimed = coverage.clone();
    claimed.push(ListCoverage {
        account: stranger,
        version: 1,
        digest: [0; 32],
    });
    assert_eq!(
        check(&lists, &a1, &recipients, &claimed, now),
        Err(ServerError::UnknownAccount(stranger))
    );
    assert_eq!(
        check(&lists, &a1, &[], &coverage, now),
        Err(ServerError::DeviceLeftOut(b1))
    );
}

/// One device's published prekeys against another device's keys. Bob's base uploaded under
/// Alice's address, Alice's base checked against Bob's list, a base of Bob's replacing
/// Alice's, and Bob's one-time upload (its ML-KEM keys signed by Bob) added to Alice's pool:
/// each is refused and the pool is unchanged. Alice's own upload fills it once (the same
/// upload again is `DuplicatePreKeyId`, nothing added); every bundle it hands out is Alice's,
/// verifies, starts a session at Bob, and no one-time key is handed out twice; empty, it hands
/// out the base with the last-resort key.
#[test]
fn a_devices_published_prekeys_never_take_or_serve_another_devices_keys() {
    let (mut w, alice, bob, a1, b1) = World::two_talking("review38c pool");
    let now = w.now;
    let lists = served(&mut w, &[alice, bob]);
    let a_base = w.device(a1).bundle(None, None);
    let b_base = w.device(b1).bundle(None, None);
    assert_eq!(
        PublishedPreKeys::new(a1, b_base.clone(), &lists[&alice], now),
        Err(Error::Server(ServerError::IdentityMismatch(a1)))
    );
    assert_eq!(
        PublishedPreKeys::new(a1, a_base.clone(), &lists[&bob], now),
        Err(Error::Server(ServerError::UnknownAccount(alice)))
    );
    let mut pool = PublishedPreKeys::new(a1, a_base.clone(), &lists[&alice], now).unwrap();
    let before = pool.clone();
    assert_eq!(
        pool.replace_base(b_base, &lists[&alice], now),
        Err(Error::Server(ServerError::IdentityMismatch(a1)))
    );
    let mut rng = SeededRng::from_label("review38c pool uploads");
    let b_upload = w.device(b1).generate_one_time_prekeys(&mut rng, now, 3);
    assert!(!b_upload.kem_keys().is_empty());
    assert!(pool.add(&b_upload).is_err());
    assert_eq!(pool, before);

    let a_upload = w.device(a1).generate_one_time_prekeys(&mut rng, now, 3);
    w.persist(a1);
    w.persist(b1);
    pool.add(&a_upload).unwrap();
    assert_eq!(pool.remaining(), (3, 3));
    let full = pool.clone();
    assert_eq!(
        pool.add(&a_upload),
        Err(Error::Server(ServerError::DuplicatePreKeyId(
            a_upload.kem_keys()[0].id.0
        )))
    );
    assert_eq!(pool, full);

    let mut one_time_ids = Vec::new();
    for _ in 0..3 {
        let bundle = pool.take_bundle();
        assert_eq!(bundle.identity_key(), a_base.identity_key());
        assert!(bundle.clone().verify().is_ok());
        one_time_ids.push(bundle.one_time_prekey().unwrap().id.0);
        let mut bob_phone = w.devices[&b1].clone();
        bob_phone
            .start_sessions(&mut rng, now, &[(a1, bundle)])
            .unwrap();
    }
    one_time_ids.sort_unstable();
    one_time_ids.dedup();
    assert_eq!(one_time_ids.len(), 3);
    let last = pool.take_bundle();
    assert!(last.one_time_prekey().is_none());
    assert_eq!(last.kem_prekey(), a_base.kem_prekey());
    assert_eq!(pool.remaining(), (0, 0));
}

/// The forgotten list's mark in records (PROTOCOL.md 19.1, kind `0x15`). Bob's phone forgets
/// Carol: the unit deletes her `0x07` record and writes a `0x15` one holding the list's
/// version, digest and policy flag (41 bytes). The server serves the very list forgotten: it
/// is taken again (each of its devices reported added) and the unit deletes the mark. Forgotten
/// again, a store edited to hold her old `0x07` record beside the `0x15` one is refused.
#[test]
fn a_mark_is_written_deleted_and_checked_as_the_spec_says() {
    let mut w = World::new("review38c mark records");
    let carol = w.account(1);
    let bob = w.account(0);
    w.publish_all();
    let b1 = World::addr(bob, 1);
    let list = w.primary(&carol).device_list().clone();
    let mut key07 = vec![0x07];
    key07.extend_from_slice(&carol.to_bytes());
    let mut key15 = vec![0x15];
    key15.extend_from_slice(&carol.to_bytes());
    let held07 = w.stores[&b1].0[&key07].clone();

    w.device(b1).forget_account(&carol);
    let unit = w.take(b1);
    let value = |key: &[u8]| {
        unit.records()
            .iter()
            .find(|r| r.key() == key)
            .map(|r| r.value().map(<[u8]>::to_vec))
    };
    assert_eq!(value(&key07), Some(None));
    let mut mark = list.version().to_be_bytes().to_vec();
    mark.extend_from_slice(&list.digest());
    mark.push(1);
    assert_eq!(value(&key15), Some(Some(mark.clone())));
    w.stores.get_mut(&b1).unwrap().apply(&unit);

    // The forgotten list itself is taken again.
    let now = w.now;
    let events = w
        .device(b1)
        .update_device_list(now, &carol, list.signed().clone())
        .unwrap();
    assert_eq!(events.len(), list.entries().len());
    assert!(events.iter().all(|e| matches!(e, Event::DeviceAdded(_))));
    let unit = w.take(b1);
    assert!(
        unit.records()
            .iter()
            .any(|r| r.key() == key15.as_slice() && r.value().is_none())
    );
    w.stores.get_mut(&b1).unwrap().apply(&unit);
    assert!(!w.stores[&b1].0.contains_key(&key15));
    assert_eq!(w.stores[&b1].load().device_list(&carol), Some(&list));

    w.device(b1).forget_account(&carol);
    w.persist(b1);
    assert_eq!(w.stores[&b1].0[&key15], mark);
    let mut edited: Store = w.stores[&b1].clone();
    edited.0.insert(key07, held07);
    assert!(
        Device::from_records(edited.0.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))).is_err()
    );
}

/// An app's withheld reason that aliases a named one (`Other(1)`, `Other(2)`) is
/// `ReservedReason`, refused before anything changes; `Other(0)` and `Other(3)` arrive as
/// themselves at a member device.
#[test]
fn an_apps_withheld_reason_never_arrives_as_a_named_one() {
    let group = GroupId([38; 32]);
    let (mut w, alice, bob, _) = World::group_sent("review38c withheld", group, [0, 0]);
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let now = w.now;
    for n in [1u8, 2] {
        let mut rng = SeededRng::from_label("review38c withheld rng");
        let d = w.device(a1);
        let before = d.to_bytes();
        let withheld = [(b1, Some(WithheldReason::Other(n)))];
        assert_eq!(
            d.send_group_withholding(&mut rng, now, group, b"x", &withheld)
                .err(),
            Some(Error::Fanout(FanoutError::ReservedReason(n)))
        );
        assert_eq!(*before, *d.to_bytes());
        assert!(!d.has_changes());
    }
    // Each other reason is a new notice of the same generation, and goes as itself (a named
    // one too).
    for reason in [0u8, 3]
        .map(WithheldReason::Other)
        .into_iter()
        .chain([WithheldReason::Blocked])
    {
        let o = w.send_group_withholding(a1, group, b"x", &[(b1, Some(reason))]);
        assert_eq!(o.envelopes.len(), 1);
        let read = w.receive(b1, &World::envelope_to(&o, b1));
        assert!(
            matches!(read, Ok(Received::Withheld { reason: r, .. }) if r == reason),
            "{read:?}"
        );
    }
}
