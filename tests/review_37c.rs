//! Review 37c: this week's changes attacked as sequences of public-API operations, the server
//! as the adversary (replaying, holding back, serving old state), with a removed member or the
//! account's own companion on its side.
//!
//! - **Unconfirmed groups and history offers.** An offer from an own device never confirms a
//!   group held unconfirmed (it installs only groups not held). Found and fixed: a restore
//!   rolled back whether the app owns the device's groups, so a companion restored from
//!   before its app set any group installed, confirmed, the groups of an old offer the server
//!   replays (read again after a restore, as documented), with a member removed since, and its
//!   next group send gave her the new sender key. A restored device's groups are now its
//!   app's: an offer read after the restore installs none.
//! - **Records of the flag.** A restore's unit writes one `0x14` per group; the app's set
//!   (same members) writes its deletion with the members, once; every prefix of that unit
//!   loads either unconfirmed or confirmed with the new members; `from_bytes`, `from_records`
//!   and `restore` (stale or not) agree; a refused set (`TooManyMembers`) and `forget_group`
//!   behave; a device restored without groups holds no `0x14`.
//! - **Refusals while unconfirmed**: a member's sender key and withheld notice are
//!   `GroupUnconfirmed`, byte-identical, `AwaitMembers` in the driver, and read when delivered
//!   again after the app set the group; a retry asked for a group message is answered with a
//!   resend that is `GroupUnconfirmed` until then and reads after; a retry the restored device
//!   answers for an unconfirmed group gives the requester nothing newer than it held.
//! - **Prekey ids**: found, left as a known limit, fixed at stop 38: two restores from the
//!   same backup issued the same ids with other keys (the skip was a fixed offset from the
//!   backup's counter), so the second restored device's upload was `DuplicatePreKeyId` in the
//!   pool; the skip now spreads by the restore's time. Ids a retry mints after a restore are
//!   new.
//! - **Calls**: a participant's floor survives `to_bytes`/`from_bytes` and a second stale
//!   restore, `srtp_keys` is refused until `catch_up` reaches it exactly, and a restored
//!   manager's keys are not a removed participant's.

mod support;

use ratchetry::calls::{Call, CallConfig, CallKind};
use ratchetry::devices::{AccountKey, DeviceAddress};
use ratchetry::driver::{Inbound, ReceiveStep, Receiving};
use ratchetry::fanout::{Device, Outbox, Received, RetryReason, StateChanges, WithheldReason};
use ratchetry::group::GroupId;
use ratchetry::history::{HistoryOffer, HistorySealer};
use ratchetry::server::PublishedPreKeys;
use ratchetry::x3dh::restore_prekey_skip;
use ratchetry::{Error, FanoutError, SyncError};
use support::{DAY, World, body};

const G: GroupId = GroupId([0x3c; 32]);
const G2: GroupId = GroupId([0x3d; 32]);

type Records = std::collections::BTreeMap<Vec<u8>, Vec<u8>>;

fn load(records: &Records) -> Result<Device, ratchetry::DecodeError> {
    Device::from_records(records.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
}

fn unconfirmed(g: GroupId) -> Error {
    FanoutError::GroupUnconfirmed(g).into()
}

fn unconfirmed_key(g: GroupId) -> Vec<u8> {
    [&[0x14][..], &g.0].concat()
}

/// `to` refuses `envelope` with `expected`, byte-identical and with nothing to persist.
fn refused(w: &mut World, to: DeviceAddress, envelope: &[u8], expected: &Error) {
    let now = w.now;
    let d = w.device(to);
    let before = d.to_bytes();
    assert_eq!(d.receive(now, envelope).err().as_ref(), Some(expected));
    assert_eq!(*before, *d.to_bytes(), "a refusal changed {to:?}");
    assert!(!d.has_changes());
}

fn offer(w: &mut World) -> HistoryOffer {
    let mut sealer = HistorySealer::new(&mut w.rng);
    let _ = sealer.push(b"history");
    sealer.finish().1
}

/// Sets `group`'s members on the given devices only.
fn set_on(w: &mut World, devices: &[DeviceAddress], group: GroupId, members: &[AccountKey]) {
    for a in devices {
        w.device(*a).set_group_members(group, members).unwrap();
        w.persist(*a);
    }
}

/// Restores `a` from `backup` at the world's time and persists it.
fn restore(w: &mut World, a: DeviceAddress, backup: &[u8]) {
    let now = w.now;
    *w.device(a) = Device::restore_from_backup(backup, now).unwrap();
    w.persist(a);
}

/// The primary of `a`'s account renews its list now and every device takes it: a restored
/// device's wait for an own list ends.
fn renew_own_list(w: &mut World, a: DeviceAddress) {
    let now = w.now;
    w.primary(&a.account).renew(now).unwrap();
    w.publish(&a.account);
    assert!(!w.device(a).awaiting_own_list());
}

fn send_offer(w: &mut World, from: DeviceAddress, to: DeviceAddress) -> Vec<u8> {
    let history = offer(w);
    let o = w
        .run(from, |d, rng, now| {
            d.send_history_offer(rng, now, to, &history)
        })
        .unwrap();
    World::envelope_to(&o, to)
}

/// Everyone an outbox reaches, pairwise or by its group envelope.
fn reached(o: &Outbox) -> Vec<DeviceAddress> {
    let mut all: Vec<_> = o.envelopes.iter().map(|(a, _)| *a).collect();
    if let Some((_, r)) = &o.group {
        all.extend(r.iter());
    }
    all.sort();
    all.dedup();
    all
}

/// Alice (phone a1, laptop a2), Bob and Carol; G = {alice, bob, carol} set on a1, b1 and c1,
/// not on the laptop, whose app has set no group. Returns the world and [a1, a2, b1, c1].
fn laptop_without_groups(label: &str) -> (World, [DeviceAddress; 4]) {
    let mut w = World::new(label);
    let alice = w.account(1);
    let bob = w.account(0);
    let carol = w.account(0);
    w.publish_all();
    let (a1, a2) = (World::addr(alice, 1), World::addr(alice, 2));
    let (b1, c1) = (World::addr(bob, 1), World::addr(carol, 1));
    set_on(&mut w, &[a1, b1, c1], G, &[alice, bob, carol]);
    (w, [a1, a2, b1, c1])
}

/// Found by this review and fixed: the laptop is backed up before its app set any group. The
/// phone's history offer then installs G (Alice, Bob, Carol); Alice's app removes Carol on
/// both devices. The laptop is restored from the backup: it holds no group, so none is
/// unconfirmed, and its `groups_by_app` was the backup's, false. The server replays the old
/// offer once the laptop holds a fresh own list: a restored device reads again what it read
/// after its backup (documented), and the offer installed G with Carol, confirmed, so the
/// laptop's next group send gave Carol, removed after the backup, the new sender key. Now a
/// restore makes the app the owner of the device's groups: the replayed offer reads but
/// installs nothing, and a send to G is `UnknownGroup` until the app sets it.
#[test]
fn a_replayed_offer_cannot_give_a_restored_companion_a_removed_members_group() {
    let (mut w, [a1, a2, b1, c1]) = laptop_without_groups("review37c replayed offer");
    let (alice, bob) = (a1.account, b1.account);
    let backup = w.device(a2).to_bytes();
    let env = send_offer(&mut w, a1, a2);
    let Ok(Received::HistoryOffer { groups, .. }) = w.receive(a2, &env) else {
        panic!("the offer reads")
    };
    assert_eq!(groups, [G]);
    set_on(&mut w, &[a1, a2], G, &[alice, bob]);
    w.now = w.now.plus_millis(DAY);
    restore(&mut w, a2, &backup);
    assert_eq!(w.device(a2).groups().count(), 0);
    renew_own_list(&mut w, a2);
    // The server replays the offer the laptop read after its backup.
    let Ok(Received::HistoryOffer { groups, .. }) = w.receive(a2, &env) else {
        panic!("a restored device reads again what it read after its backup")
    };
    assert!(
        groups.is_empty(),
        "a restored device's groups are its app's"
    );
    assert_eq!(w.device(a2).groups().count(), 0);
    let sent = w.run(a2, |d, rng, now| {
        d.send_group(rng, now, G, b"after the restore")
    });
    assert_eq!(sent.err(), Some(FanoutError::UnknownGroup(G).into()));
    // Set by the app, without Carol: she reads nothing the laptop sends.
    set_on(&mut w, &[a2], G, &[alice, bob]);
    let o = w.send_group(a2, G, b"after the restore");
    let carol_reads = w
        .deliver(&o)
        .into_iter()
        .any(|(to, r)| to == c1 && r.is_ok_and(|r| body(&r).is_some()));
    assert!(
        !carol_reads,
        "Carol, removed after the backup, reads nothing"
    );
}

/// The laptop holds G from the phone's offer (its app set nothing) and is restored from a
/// backup taken then: G is unconfirmed. A fresh offer from the phone (G without Carol now,
/// and a new group G2) installs nothing (a restored device's groups are its app's): an offer
/// never confirms an unconfirmed group, and G stays `GroupUnconfirmed` for sends and
/// receives, through a restart, until the app sets it.
#[test]
fn an_offer_from_an_own_device_never_confirms_a_group() {
    let (mut w, [a1, a2, b1, c1]) = laptop_without_groups("review37c offer confirms");
    let (alice, bob) = (a1.account, b1.account);
    let env = send_offer(&mut w, a1, a2);
    w.receive(a2, &env).unwrap();
    let backup = w.device(a2).to_bytes();
    w.now = w.now.plus_millis(DAY);
    restore(&mut w, a2, &backup);
    renew_own_list(&mut w, a2);
    assert_eq!(w.device(a2).unconfirmed_groups().collect::<Vec<_>>(), [G]);
    set_on(&mut w, &[a1, b1], G, &[alice, bob]);
    set_on(&mut w, &[a1], G2, &[bob]);
    let fresh = send_offer(&mut w, a1, a2);
    let Ok(Received::HistoryOffer { groups, .. }) = w.receive(a2, &fresh) else {
        panic!("the fresh offer reads")
    };
    assert!(groups.is_empty());
    w.restart(a2);
    assert_eq!(w.device(a2).unconfirmed_groups().collect::<Vec<_>>(), [G]);
    assert_eq!(
        w.device(a2).group_members(G).unwrap().count(),
        2,
        "still the backup's members"
    );
    let now = w.now;
    let d = w.devices.get_mut(&a2).unwrap();
    let before = d.to_bytes();
    assert_eq!(
        d.send_group(&mut w.rng, now, G, b"x").err(),
        Some(unconfirmed(G))
    );
    assert_eq!(*before, *d.to_bytes());
    let from_bob = w.send_group(b1, G, b"bob");
    let (envelope, _) = from_bob.group.clone().unwrap();
    let distribution = from_bob
        .envelopes
        .iter()
        .find(|(a, _)| *a == a2)
        .map(|(_, e)| e.clone());
    if let Some(distribution) = distribution {
        refused(&mut w, a2, &distribution, &unconfirmed(G));
    }
    refused(&mut w, a2, &envelope, &unconfirmed(G));
    let d = w.devices.get_mut(&a2).unwrap();
    assert_eq!(
        d.send_group(&mut w.rng, now, G2, b"x").err(),
        Some(FanoutError::UnknownGroup(G2).into())
    );
    assert!(!reached(&from_bob).contains(&c1));
}

fn apply(records: &mut Records, unit: &StateChanges, take: usize) {
    if unit.replaces_all() {
        records.clear();
    }
    for r in unit.records().iter().take(take) {
        match r.value() {
            Some(v) => records.insert(r.key().to_vec(), v.to_vec()),
            None => records.remove(r.key()),
        };
    }
}

/// The `0x14` records follow the flag exactly. A restore's unit (it replaces all) holds one,
/// empty, per group; a restored device, its `from_records` load and its `from_bytes` load are
/// byte-identical, and `restore` of a stale snapshot sets the flag on every group while a
/// snapshot that is not stale loads as written, flag included. The app's set without Carol
/// writes the deletion once, with the members; every prefix of that unit that loads holds G
/// either unconfirmed or with the new members, never the backup's members confirmed. A set
/// again writes nothing. A refused set (`TooManyMembers`) on an unconfirmed group changes
/// nothing, and `forget_group` deletes the record. A device restored without groups holds no
/// `0x14`, and a send to an unknown group stays `UnknownGroup`.
#[test]
fn the_unconfirmed_record_follows_the_flag_exactly() {
    let mut w = World::new("review37c records");
    let alice = w.account(0);
    let bob = w.account(0);
    let carol = w.account(0);
    w.publish_all();
    let (a1, c1) = (World::addr(alice, 1), World::addr(carol, 1));
    // A device restored before it held any group.
    let empty = w.device(a1).to_bytes();
    let mut restored = Device::restore_from_backup(&empty, w.now).unwrap();
    assert_eq!(restored.unconfirmed_groups().count(), 0);
    let unit = restored.take_changes(&mut w.rng);
    assert!(unit.replaces_all() && unit.records().iter().all(|r| r.key()[0] != 0x14));
    w.set_members(G, &[alice, bob, carol]);
    w.set_members(G2, &[alice, bob]);
    let m = w.send_group(a1, G, b"m");
    w.deliver_ok(&m);
    let from_carol = w.send_group(c1, G, b"carol");
    w.deliver_ok(&from_carol);
    let backup = w.device(a1).to_bytes();
    let epoch = w.device(a1).state_epoch();
    // Not stale: loads as written.
    let (same, stale) = Device::restore(&backup, epoch, w.now).unwrap();
    assert!(!stale && same.unconfirmed_groups().count() == 0);
    let (mut d, stale) = Device::restore(&backup, epoch + 5, w.now).unwrap();
    assert!(stale);
    assert_eq!(d.unconfirmed_groups().collect::<Vec<_>>(), [G, G2]);
    let unit = d.take_changes(&mut w.rng);
    assert!(unit.replaces_all());
    for g in [G, G2] {
        let r = unit
            .records()
            .iter()
            .find(|r| r.key() == unconfirmed_key(g));
        assert_eq!(r.and_then(|r| r.value()), Some(&[][..]));
    }
    let mut store = Records::new();
    apply(&mut store, &unit, usize::MAX);
    let bytes = d.to_bytes();
    assert_eq!(*load(&store).unwrap().to_bytes(), *bytes);
    assert_eq!(*Device::from_bytes(&bytes).unwrap().to_bytes(), *bytes);
    let (again, stale) = Device::restore(&bytes, d.state_epoch(), w.now).unwrap();
    assert!(!stale);
    assert_eq!(
        *again.to_bytes(),
        *bytes,
        "the flag survives a non-stale load"
    );

    // A refused set leaves the group unconfirmed, byte-identical, nothing to write.
    let decoys: Vec<AccountKey> = (0..=ratchetry::fanout::MAX_GROUP_MEMBERS)
        .map(|_| ratchetry::devices::AccountKeyPair::generate(&mut w.rng).public())
        .collect();
    assert!(matches!(
        d.set_group_members(G, &decoys),
        Err(Error::Fanout(FanoutError::TooManyMembers { .. }))
    ));
    assert_eq!(*d.to_bytes(), *bytes);
    assert!(!d.has_changes());

    // The app sets G without Carol: one unit with the members and the record's deletion.
    d.set_group_members(G, &[alice, bob]).unwrap();
    let unit = d.take_changes(&mut w.rng);
    assert!(!unit.replaces_all());
    let keys: Vec<&[u8]> = unit.records().iter().map(|r| r.key()).collect();
    let at = keys.iter().position(|k| *k == unconfirmed_key(G)).unwrap();
    assert!(unit.records()[at].value().is_none());
    assert!(keys.iter().any(|k| k[0] == 0x09 && k[1..] == G.0));
    for n in 0..=unit.records().len() {
        let mut torn = store.clone();
        apply(&mut torn, &unit, n);
        if let Ok(t) = load(&torn) {
            let members: Vec<_> = t.group_members(G).unwrap().collect();
            assert!(
                t.unconfirmed_groups().any(|g| g == G) || !members.contains(&carol),
                "a prefix of {n} records confirms the backup's members"
            );
        }
    }
    apply(&mut store, &unit, usize::MAX);
    assert_eq!(*load(&store).unwrap().to_bytes(), *d.to_bytes());
    assert_eq!(d.unconfirmed_groups().collect::<Vec<_>>(), [G2]);
    d.set_group_members(G, &[alice, bob]).unwrap();
    assert!(
        !d.has_changes(),
        "a set of the same members, confirmed, writes nothing"
    );

    // Forgetting the other unconfirmed group deletes its record with it.
    d.forget_group(G2);
    let unit = d.take_changes(&mut w.rng);
    assert!(
        unit.records()
            .iter()
            .any(|r| r.key() == unconfirmed_key(G2) && r.value().is_none())
    );
    apply(&mut store, &unit, usize::MAX);
    let loaded = load(&store).unwrap();
    assert_eq!(loaded.unconfirmed_groups().count(), 0);
    assert_eq!(*loaded.to_bytes(), *d.to_bytes());
    // A second restore makes every group held unconfirmed again, and only those.
    let d = d.into_restored(w.now);
    assert_eq!(d.unconfirmed_groups().collect::<Vec<_>>(), [G]);
    let mut d = d;
    let before = d.to_bytes();
    let gone = GroupId([0x77; 32]);
    assert_eq!(
        d.send_group(&mut w.rng, w.now, gone, b"x").err(),
        Some(FanoutError::UnknownGroup(gone).into())
    );
    assert_eq!(*before, *d.to_bytes());
}

/// The driver's decision for one envelope on `to`, which must change nothing.
fn drive(w: &mut World, to: DeviceAddress, envelope: &[u8]) -> ReceiveStep {
    let now = w.now;
    let d = w.devices.get_mut(&to).unwrap();
    let before = d.to_bytes();
    let step = Receiving::new()
        .step(d, &mut w.rng, now, envelope, |_| false)
        .unwrap();
    assert_eq!(*before, *d.to_bytes());
    step
}

/// Alice's phone is restored from a backup taken before Bob, still a member, sent anything
/// to G. Bob's sender key, his group message, his withheld notice and the resend answering
/// the retry Alice asks for his message are each `GroupUnconfirmed`, byte-identical (the
/// driver keeps them: `AwaitMembers`), and so is a retry asked for the message (since review
/// 43: its answer would be refused and use up an attempt). Once the app sets G (the same
/// members), the kept envelopes read, delivered again: the key, the message, and the notice.
#[test]
fn a_members_traffic_waits_for_the_app_and_reads_once_it_set_the_group() {
    let mut w = World::new("review37c member waits");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    w.set_members(G, &[alice, bob]);
    let backup = w.device(a1).to_bytes();
    restore(&mut w, a1, &backup);
    let o = w.send_group(b1, G, b"from bob");
    let key = World::envelope_to(&o, a1);
    let (message, _) = o.group.clone().unwrap();
    let withheld = [(a1, Some(WithheldReason::Other(7)))];
    let withheld = w.send_group_withholding(b1, G, b"not for alice", &withheld);
    let withheld = World::envelope_to(&withheld, a1);
    for e in [&key, &message, &withheld] {
        refused(&mut w, a1, e, &unconfirmed(G));
        assert_eq!(
            drive(&mut w, a1, e),
            ReceiveStep::Done(Inbound::AwaitMembers { group: G })
        );
    }
    // Asking for the message now would spend an attempt on an answer refused here: the ask
    // is refused too, nothing changed (review 43).
    let now = w.now;
    let d = w.device(a1);
    let before = d.to_bytes();
    assert_eq!(
        d.request_retry(
            &mut ratchetry::testing::SeededRng::from_label("r37c ask"),
            now,
            &message,
            RetryReason::SenderKeyMissing
        )
        .err(),
        Some(unconfirmed(G))
    );
    assert_eq!(*before, *d.to_bytes());
    assert!(!d.has_changes());
    w.device(a1).set_group_members(G, &[bob]).unwrap();
    w.persist(a1);
    assert!(matches!(
        w.receive(a1, &key),
        Ok(Received::SenderKey { group: G, .. })
    ));
    assert!(matches!(
        w.receive(a1, &message),
        Ok(r) if body(&r) == Some(&b"from bob"[..])
    ));
    assert!(matches!(
        w.receive(a1, &withheld),
        Ok(Received::Withheld { group: G, .. })
    ));
}

/// Alice's phone is restored from a backup taken after m1 (to Alice, Bob, Carol) and before
/// the app removed Carol. Carol, who never got m1's group envelope, asks the restored phone
/// for it while G is unconfirmed: the phone answers (Carol was a recipient of m1, and a retry
/// is not a group send), with m1 and the sender key of m1's generation, which she already
/// held. Once the app sets G without Carol, the phone's next message is beyond her.
#[test]
fn a_retry_answered_for_an_unconfirmed_group_gives_nothing_newer() {
    let mut w = World::new("review37c answer while unconfirmed");
    let alice = w.account(0);
    let bob = w.account(0);
    let carol = w.account(0);
    w.publish_all();
    let (a1, c1) = (World::addr(alice, 1), World::addr(carol, 1));
    w.set_members(G, &[alice, bob, carol]);
    let m1 = w.send_group(a1, G, b"m1");
    let mut held_id = None;
    for (to, e) in &m1.envelopes {
        if let Ok(Received::SenderKey { key_id, .. }) = w.receive(*to, e)
            && *to == c1
        {
            held_id = Some(key_id);
        }
    }
    let (message, recipients) = m1.group.clone().unwrap();
    for to in recipients.iter().filter(|a| **a != c1) {
        w.receive(*to, &message).unwrap();
    }
    let backup = w.device(a1).to_bytes();
    w.device(a1).set_group_members(G, &[alice, bob]).unwrap();
    w.persist(a1);
    restore(&mut w, a1, &backup);
    let (to, request) = w
        .request_retry(c1, &message, RetryReason::SenderKeyMissing)
        .unwrap();
    assert_eq!(to, a1);
    let Ok(Received::RetryRequest(req)) = w.receive(a1, &request) else {
        panic!("the restored phone takes the request")
    };
    let answer = w
        .run(a1, |d, rng, now| d.answer_retry(rng, now, &req, b"m1"))
        .unwrap();
    assert_eq!(answer.envelopes.len(), 2, "a redistribution and the resend");
    for (to, e) in &answer.envelopes {
        assert_eq!(*to, c1);
        match w.receive(c1, e).unwrap() {
            Received::SenderKey { key_id, .. } => assert_eq!(Some(key_id), held_id),
            r => assert_eq!(body(&r), Some(&b"m1"[..])),
        }
    }
    assert_eq!(w.device(a1).unconfirmed_groups().collect::<Vec<_>>(), [G]);
    w.device(a1).set_group_members(G, &[alice, bob]).unwrap();
    w.persist(a1);
    let m2 = w.send_group(a1, G, b"m2");
    assert!(!reached(&m2).contains(&c1));
    let (m2, _) = m2.group.unwrap();
    assert!(matches!(
        w.receive(c1, &m2),
        Err(Error::Fanout(FanoutError::SenderKeyMissing { .. }))
    ));
}

/// Found by this review, left as a known limit, fixed at stop 38: the skip was a fixed offset
/// from the backup's counters, so a device restored twice from the same backup (the first
/// restored device was lost before a newer backup, or a restore was attempted twice) issued
/// again every id the first restore issued, with other keys: the server's pool refused the
/// second upload (`DuplicatePreKeyId`), and a bundle from the first upload named a key the
/// device held with another secret. The skip now adds a spread drawn from the restore's time
/// (`restore_prekey_skip`), so restores a day apart start their ids apart.
#[test]
fn two_restores_from_one_backup_never_issue_an_id_twice() {
    let mut w = World::new("review37c twice restored");
    let alice = w.account(0);
    w.publish_all();
    let a1 = World::addr(alice, 1);
    let now = w.now;
    let list = w.primary(&alice).device_list().clone();
    let base = w.devices[&a1].bundle(None, None);
    let mut pool = PublishedPreKeys::new(a1, base, &list, now).unwrap();
    let backup = w.device(a1).to_bytes();
    let mut first = Device::restore_from_backup(&backup, now).unwrap();
    let upload = first.generate_one_time_prekeys(&mut w.rng, now, 3);
    assert_eq!(pool.add(&upload), Ok(()));
    let later = now.plus_millis(DAY);
    let mut second = Device::restore_from_backup(&backup, later).unwrap();
    let again = second.generate_one_time_prekeys(&mut w.rng, later, 3);
    assert_eq!(
        pool.add(&again),
        Ok(()),
        "the second restored device's upload is pooled"
    );
    let first_ids: Vec<u32> = upload.keys().iter().map(|k| k.id.0).collect();
    let again_ids: Vec<u32> = again.keys().iter().map(|k| k.id.0).collect();
    assert!(
        again_ids.iter().all(|id| !first_ids.contains(id)),
        "ids {again_ids:?} issued again with other keys"
    );
}

/// A retry the lost state asked after the backup minted keys; the device is restored, and
/// its next upload and its own retry mint ids past them (the skip). The lost state's retry,
/// answered on the keys only it held, is refused by the restored device with nothing changed;
/// the restored device's own retry is answered and reads.
#[test]
fn a_retry_asked_before_and_after_a_restore_never_shares_a_key_id() {
    let (mut w, _, _, a1, b1) = World::two_talking("review37c restore then retry");
    let backup = w.device(b1).to_bytes();
    let o = w.send(a1, b1.account, b"lost");
    let failed = support::tampered(&World::envelope_to(&o, b1));
    // The lost state asks, and uploads keys after its request.
    let (_, lost_request) = w
        .request_retry(b1, &failed, RetryReason::AuthenticationFailed)
        .unwrap();
    let now = w.now;
    let lost_upload = w
        .devices
        .get_mut(&b1)
        .unwrap()
        .generate_one_time_prekeys(&mut w.rng, now, 1);
    let Ok(Received::RetryRequest(req)) = w.receive(a1, &lost_request) else {
        panic!("Alice takes the lost state's request")
    };
    let lost_answer = w
        .run(a1, |d, rng, now| d.answer_retry(rng, now, &req, b"lost"))
        .unwrap();
    restore(&mut w, b1, &backup);
    let upload = w
        .devices
        .get_mut(&b1)
        .unwrap()
        .generate_one_time_prekeys(&mut w.rng, now, 1);
    w.persist(b1);
    // The lost state's first id after the backup went to its retry, the next to its upload.
    assert_eq!(
        upload.keys()[0].id.0,
        lost_upload.keys()[0].id.0 - 1 + restore_prekey_skip(now)
    );
    assert_eq!(
        upload.kem_keys()[0].id.0,
        lost_upload.kem_keys()[0].id.0 - 1 + restore_prekey_skip(now)
    );
    // The lost state's answer: a resend the restored device never asked for.
    let e = World::envelope_to(&lost_answer, b1);
    let before = w.device(b1).to_bytes();
    assert!(w.device(b1).receive(now, &e).is_err());
    assert_eq!(*before, *w.device(b1).to_bytes());
    // The restored device asks again itself, is answered, and reads.
    let answer = w.ask_again(b1, a1, &failed, b"lost");
    assert_eq!(body(&w.deliver_ok(&answer)[0].1), Some(&b"lost"[..]));
}

/// A participant restored below its floor: the floor survives `to_bytes`/`from_bytes` and a
/// second stale restore (which raises it, never lowers it); below it `srtp_keys` is
/// `StaleCallKey` for everyone and a `catch_up` below it is `StaleCallKey`, byte-identical;
/// one to the floor exactly gives keys again, and the floor is gone from the bytes. A manager
/// restored from a stale snapshot hands out keys a participant removed since cannot derive.
#[test]
fn a_restored_participants_floor_holds_through_reloads_and_ends_at_catch_up() {
    let rng = &mut ratchetry::testing::SeededRng::from_label("review37c call floor");
    let mut w = World::new("review37c call floor addresses");
    let (alice, bob, carol) = (w.account(0), w.account(0), w.account(0));
    let (a1, b1, c1) = (
        World::addr(alice, 1),
        World::addr(bob, 1),
        World::addr(carol, 1),
    );
    let config = CallConfig::default();
    let mut call = Call::start(rng, CallKind::Group, a1, &[b1, c1], &config).unwrap();
    let mut carols = Call::from_key_message(c1, &a1, call.key_message().clone(), &config).unwrap();
    let manager_snapshot = call.to_bytes();
    let snapshot = carols.to_bytes();
    let mut messages = Vec::new();
    for i in 0..4 {
        let m = match i % 2 {
            0 => call.remove(rng, &b1).unwrap(),
            _ => call.join(rng, b1, &config).unwrap(),
        };
        carols.apply(&a1, m.clone(), &config).unwrap();
        messages.push(m);
    }
    // Kept epoch 2; then 4 on a second restore of the same snapshot.
    let (restored, stale) = Call::restore(rng, &snapshot, 2).unwrap();
    assert!(stale);
    let mut restored = Call::from_bytes(&restored.to_bytes()).unwrap();
    for p in [&a1, &b1, &c1] {
        assert_eq!(restored.srtp_keys(p), Err(SyncError::StaleCallKey));
    }
    let (mut raised, _) = Call::restore(rng, &restored.to_bytes(), 4).unwrap();
    let (kept, stale) = Call::restore(rng, &raised.to_bytes(), 3).unwrap();
    assert!(stale);
    assert_eq!(
        *kept.to_bytes(),
        *raised.to_bytes(),
        "a lower kept epoch keeps the floor"
    );
    let before = raised.to_bytes();
    for m in &messages[..3] {
        assert_eq!(
            raised.catch_up(&a1, m.clone(), &config),
            Err(SyncError::StaleCallKey)
        );
        assert_eq!(*before, *raised.to_bytes());
    }
    assert_eq!(raised.srtp_keys(&c1), Err(SyncError::StaleCallKey));
    raised.catch_up(&a1, messages[3].clone(), &config).unwrap();
    assert_eq!(raised.srtp_keys(&c1), carols.srtp_keys(&c1));
    assert_eq!(*raised.to_bytes(), *carols.to_bytes(), "the floor is gone");
    // Kept epoch 2 again: epoch 2 itself moves it (it held it), one step from the snapshot's 0
    // is refused by `apply` (below the floor), and `catch_up` to 2 ends the floor.
    assert_eq!(
        restored.apply(&a1, messages[0].clone(), &config),
        Err(SyncError::StaleCallKey)
    );
    restored
        .catch_up(&a1, messages[1].clone(), &config)
        .unwrap();
    assert!(restored.srtp_keys(&c1).is_ok());
    // The manager restored with epoch 4 kept: alone at 5; Bob (in the snapshot, removed at 3)
    // derives nothing of it, and Carol joins back at 6.
    let (mut manager, stale) = Call::restore(rng, &manager_snapshot, 4).unwrap();
    assert!(stale);
    assert_eq!((manager.epoch(), manager.participants()), (5, &[a1][..]));
    let back = manager.join(rng, c1, &config).unwrap();
    assert_eq!(
        carols.apply(&a1, back.clone(), &config),
        Err(SyncError::CallKeyAhead {
            held: 4,
            offered: 6
        })
    );
    carols.catch_up(&a1, back, &config).unwrap();
    assert_eq!(carols.srtp_keys(&c1), manager.srtp_keys(&c1));
    assert!(manager.srtp_keys(&b1).is_err(), "Bob is not in the call");
}
