//! Review 46: a device's and an account's life across backups and restores, at the seams the
//! randomized life test (`restore_life`) does not reach: linking and unlinking around a
//! backup, group membership changed around a backup, and the relay serving stale material
//! (device lists, sender keys, retry requests) to a restored device.
//!
//! Found (both fixed at stop 45):
//! - **A primary restored twice from one backup** signed, at its second resync, the very
//!   versions and device ids its first restore used, when the relay served it the backup's
//!   list again: `RESTORE_VERSION_SKIP` and `RESTORE_DEVICE_ID_SKIP` were constants added to
//!   what the list shown holds, so the second lineage repeated the first. Contacts saw the
//!   honest account roll back, equivocate, and one of its devices change identity. Now the
//!   numbering also resumes past the restore's time (PROTOCOL.md 15.3)
//!   (`a_primary_restored_twice_from_one_backup_never_signs_a_version_or_gives_an_id_twice`).
//! - **An unlinked companion's history offer outlived the unlink** (fixed, PROTOCOL.md 18.2):
//!   a laptop linked while a stolen one is still listed took, from the stolen one, a group's
//!   membership with the relay's account in it, if the relay delivered that offer before the
//!   list that unlinked it; the membership stayed after the unlink, and the new laptop's
//!   group messages went to the relay's account. Now the unlink leaves the offered groups
//!   unconfirmed until the app sets them
//!   (`an_unlinked_companions_offer_does_not_outlive_the_unlink`).
//!
//! Held (regression tests): a phone and its primary restored together from backups that
//! predate a link and an unlink readmit neither companion; a restored primary refuses an
//! invitation its lost state used; a member removed after the backup gets nothing new from the
//! restored sender by retry; a member added after it reads the restored sender's next message
//! and nothing before he joined; a restored receiver reads nothing of a member removed after
//! its backup; a restored phone answers no stale retry from its own account, before or after
//! its wait; a restored phone hands a new companion only the members the app set; a restored
//! phone drops a contact's unlinked companion once it is shown the unlink.

mod support;

use ratchetry::IdentityKeyPair;
use ratchetry::devices::{DeviceAddress, LinkRequest, Primary, complete_link};
use ratchetry::fanout::{Device, Event, Outbox, Received, RetryReason};
use ratchetry::group::GroupId;
use ratchetry::history::HistorySealer;
use ratchetry::{DeviceError, Error, FanoutError};
use support::{DAY, World, body};

const G: GroupId = GroupId([0x46; 32]);

// ---------------------------------------------------------------------------------------------
// Primaries restored twice
// ---------------------------------------------------------------------------------------------

/// Alice's phone is lost and her primary restored from a backup; the relay serves the resync
/// the backup's own list (the newest it chooses to show), she links a laptop X, and her
/// contacts follow. The phone is lost again before she took a new backup (or the app restores
/// the same cloud backup on a second device): restored from the same backup, the relay shows
/// the resync the backup's list again, withholding everything the first restore signed.
///
/// Found: `resync` skipped a constant `RESTORE_VERSION_SKIP` past the list it is shown and a
/// constant `RESTORE_DEVICE_ID_SKIP` past its ids, so the second restore signed exactly the
/// versions the first signed and gave the first companion it linked the id X holds. Bob, who
/// follows the first lineage, saw an honest account roll back (`Rollback`), then equivocate
/// (`Equivocation`: two different lists at one version), and once the second lineage's
/// version passed the first's, X's device id change identity (`IdentityChanged`, a safety
/// number warning for a device the user never changed). The kept epoch did not help either
/// (`Primary::restore` with it is the same).
///
/// Fixed (PROTOCOL.md 15.3): the next version is at least the restore's time in milliseconds
/// times 2^10, and the device ids skip a spread drawn from that time, so the second restore,
/// a day later, numbers past the first.
#[test]
fn a_primary_restored_twice_from_one_backup_never_signs_a_version_or_gives_an_id_twice() {
    let mut w = World::new("review46 primary restored twice");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let b1 = World::addr(bob, 1);
    let backup = w.primary(&alice).to_bytes().to_vec();
    let at_backup = w.primary(&alice).device_list().signed().clone();

    // First restore: resync from the list the relay shows (the backup's), link X, publish.
    w.now = w.now.plus_millis(DAY);
    let now = w.now;
    let mut first = Primary::restore_from_backup(&backup).unwrap();
    let first_resync = first.resync(now, at_backup.clone()).unwrap().version();
    let kept_epoch = first.state_epoch();
    *w.primary(&alice) = first;
    w.publish(&alice);
    let x = w.link(&alice);
    w.publish(&alice);
    let first_newest = w.primary(&alice).device_list().version();
    assert_eq!(
        w.device(b1).device_list(&alice).unwrap().version(),
        first_newest
    );
    assert!(
        w.device(b1)
            .device_list(&alice)
            .unwrap()
            .entry(x.device)
            .is_some()
    );

    // Second restore from the same backup, the relay showing the backup's list again.
    w.now = w.now.plus_millis(DAY);
    let now = w.now;
    let (mut second, stale) = Primary::restore(&backup, kept_epoch).unwrap();
    assert!(stale);
    let second_resync = second.resync(now, at_backup).unwrap().clone();
    let mut wrong = Vec::new();
    if second_resync.version() <= first_newest {
        wrong.push(format!(
            "the second restore signed version {} (the first signed {first_resync}..={first_newest})",
            second_resync.version()
        ));
    }
    let bob_sees = w
        .device(b1)
        .update_device_list(now, &alice, second_resync.signed().clone());
    w.persist(b1);
    if let Err(e) = bob_sees {
        wrong.push(format!("Bob refuses the second restore's list: {e:?}"));
    }
    // Its first companion, linked and published.
    *w.primary(&alice) = second;
    let y = w.link(&alice);
    if y.device == x.device {
        wrong.push(format!(
            "the second restore gave X's id {:?} to Y",
            x.device
        ));
    }
    let list = w.primary(&alice).device_list().signed().clone();
    if let Err(e) = w.device(b1).update_device_list(now, &alice, list) {
        wrong.push(format!("Bob refuses the list that links Y: {e:?}"));
    }
    // The second lineage renews until its version passes the first's: Bob takes it.
    let renewed = w.primary(&alice).renew(now).unwrap().signed().clone();
    match w.device(b1).update_device_list(now, &alice, renewed) {
        Ok(events) if events.contains(&Event::IdentityChanged(x)) => {
            wrong.push(format!("Bob is told X's device {x:?} changed identity"))
        }
        Ok(_) => {}
        Err(e) => wrong.push(format!("Bob refuses the renewal: {e:?}")),
    }
    w.persist(b1);
    assert!(wrong.is_empty(), "{wrong:#?}");
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// `to` refuses `envelope`, byte-identical and with nothing to persist; returns the error.
fn refused_any(w: &mut World, to: DeviceAddress, envelope: &[u8]) -> Error {
    let now = w.now;
    let d = w.device(to);
    let before = d.to_bytes();
    let err = d.receive(now, envelope).expect_err("refused");
    assert_eq!(*before, *d.to_bytes(), "a refusal changed {to:?}");
    assert!(!d.has_changes(), "a refusal left changes on {to:?}");
    err
}

/// The devices an outbox reaches, pairwise or in its group envelope.
fn reached(o: &Outbox) -> Vec<DeviceAddress> {
    let mut all = o.recipients();
    all.sort();
    all.dedup();
    all
}

/// `a1`'s app sets G's `members`: its next group message reaches `b1` alone and reads there;
/// `excluded` cannot read it, and its request for the sender key is refused at `a1` with
/// `refusal`.
fn next_group_message_reaches_bob_alone(
    w: &mut World,
    (a1, b1, excluded): (DeviceAddress, DeviceAddress, DeviceAddress),
    members: &[ratchetry::devices::AccountKey],
    refusal: Error,
) {
    w.device(a1).set_group_members(G, members).unwrap();
    w.persist(a1);
    let next = w.send_group(a1, G, b"after the restore");
    assert_eq!(reached(&next), vec![b1]);
    assert!(w.reads(&next, b"after the restore"));
    let (e, _) = next.group.as_ref().unwrap();
    let err = refused_any(w, excluded, e);
    assert!(
        matches!(err, Error::Fanout(FanoutError::SenderKeyMissing { .. })),
        "{err:?}"
    );
    let (_, request) = w
        .request_retry(excluded, e, RetryReason::SenderKeyMissing)
        .unwrap();
    assert_eq!(refused_any(w, a1, &request), refusal);
}

fn sorted(mut devices: Vec<DeviceAddress>) -> Vec<DeviceAddress> {
    devices.sort();
    devices
}

/// Delivers every envelope of an outbox but those to `skip`, which the relay holds back.
fn deliver_skipping(w: &mut World, o: &Outbox, skip: DeviceAddress) {
    for (to, e) in o.envelopes.iter().filter(|(to, _)| *to != skip) {
        w.receive(*to, e).unwrap();
    }
    if let Some((e, recipients)) = &o.group {
        for to in recipients.iter().filter(|d| **d != skip) {
            w.receive(*to, e).unwrap();
        }
    }
}

/// Delivers an outbox's pairwise envelopes to every device and its group envelope to every
/// recipient but `skip` (the relay holds it back from that one).
fn deliver_but_group_to(w: &mut World, o: &Outbox, skip: DeviceAddress) {
    for (to, e) in &o.envelopes {
        w.receive(*to, e).unwrap();
    }
    let (e, recipients) = o.group.as_ref().unwrap();
    for to in recipients.iter().filter(|d| **d != skip) {
        w.receive(*to, e).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Linking and unlinking across restores
// ---------------------------------------------------------------------------------------------

/// Alice's phone (its device state and its primary) is lost. After the backups, laptop C2 was
/// linked and laptop C1 stolen and unlinked (the relay keeps C1, which never learnt it). Both
/// are restored; the relay shows the primary's resync the backup's list, which names C1, and
/// serves the phone that list too. The resync lists the phone alone, so neither laptop comes
/// back; the phone's wait ends only with that new list; afterwards its direct and group
/// sends reach Bob alone, and C1 gets nothing by asking again for messages it was a recipient
/// of before the backup (it is no longer listed), nor C2 for one sent before it was linked.
#[test]
fn a_phone_and_primary_restored_together_readmit_no_companion() {
    let mut w = World::new("review46 phone and primary restored");
    let alice = w.account(1);
    let bob = w.account(0);
    w.publish_all();
    w.set_members(G, &[alice, bob]);
    let (a1, b1, c1) = (
        World::addr(alice, 1),
        World::addr(bob, 1),
        World::addr(alice, 2),
    );
    // The relay holds both back from C1 (it is about to steal it).
    let pre_group = w.send_group(a1, G, b"group before the backup");
    deliver_skipping(&mut w, &pre_group, c1);
    let pre_direct = w.send(a1, bob, b"direct before the backup");
    deliver_skipping(&mut w, &pre_direct, c1);
    let primary_backup = w.primary(&alice).to_bytes().to_vec();
    let phone_backup = w.device(a1).to_bytes().to_vec();
    let at_backup = w.primary(&alice).device_list().signed().clone();

    // After the backups: C2 linked, C1 stolen and unlinked.
    w.now = w.now.plus_millis(DAY);
    let c2 = w.link(&alice);
    w.publish(&alice);
    w.device(c2).set_group_members(G, &[alice, bob]).unwrap();
    w.persist(c2);
    let stolen = w.devices.remove(&c1).unwrap();
    let now = w.now;
    w.primary(&alice).unlink(now, c1.device).unwrap();
    w.publish(&alice);

    // Both restored; the relay shows the backup's list.
    w.now = w.now.plus_millis(DAY);
    let now = w.now;
    let mut primary = Primary::restore_from_backup(&primary_backup).unwrap();
    assert_eq!(primary.renew(now).err(), Some(DeviceError::ResyncRequired));
    let resynced = primary.resync(now, at_backup.clone()).unwrap().clone();
    assert_eq!(resynced.entries().len(), 1, "the phone alone");
    *w.primary(&alice) = primary;
    *w.device(a1) = Device::restore_from_backup(&phone_backup, now).unwrap();
    w.persist(a1);
    assert!(w.device(a1).awaiting_own_list());
    // The backup's list (held) and an old list changes nothing and ends no wait.
    let _ = w.device(a1).update_device_list(now, &alice, at_backup);
    w.persist(a1);
    assert!(w.device(a1).awaiting_own_list());
    w.publish(&alice);
    assert!(!w.device(a1).awaiting_own_list());
    assert!(
        w.device(a1)
            .device_list(&alice)
            .unwrap()
            .entry(c1.device)
            .is_none()
    );
    assert!(
        w.device(a1)
            .device_list(&alice)
            .unwrap()
            .entry(c2.device)
            .is_none()
    );

    // The phone's sends reach Bob alone.
    w.device(a1).set_group_members(G, &[alice, bob]).unwrap();
    w.persist(a1);
    let group = w.send_group(a1, G, b"group after the restores");
    assert_eq!(reached(&group), vec![b1]);
    assert!(w.reads(&group, b"group after the restores"));
    let direct = w.send(a1, bob, b"direct after the restores");
    assert_eq!(reached(&direct), vec![b1]);

    // The stolen laptop asks again for what it was sent before the backup: refused.
    w.devices.insert(c1, stolen);
    for failed in [
        World::group_envelope_for(&pre_group, c1),
        World::envelope_to(&pre_direct, c1),
    ] {
        let (asked, request) = w
            .request_retry(c1, &failed, RetryReason::NoSession)
            .unwrap();
        assert_eq!(asked, a1);
        let err = refused_any(&mut w, a1, &request);
        assert_eq!(err, DeviceError::NotInList(c1).into());
    }
    // Its own copy of a message to Bob, and its group message, are refused by the phone.
    let injected = w.send(c1, bob, b"injected own copy");
    let err = refused_any(&mut w, a1, &World::envelope_to(&injected, a1));
    assert_eq!(err, DeviceError::NotInList(c1).into());
    let _ = b1;
}

/// Alice's primary issues an invitation and is backed up; the invitation is then used (laptop
/// C2 linked and confirmed). Restored from the backup, which holds the invitation unused, the
/// primary signs nothing before its resync (`ResyncRequired`), and the resync drops the
/// backup's invitations: the relay replaying C2's request (or a new one from its own key on
/// the same invitation, which it cannot make: the request carries a MAC under the nonce)
/// gets `UnknownInvitation`, C2's confirmation `NotInList`. The lists the lost state signed,
/// replayed to Alice's phone and to Bob after they took the resync's list, are `Rollback`.
#[test]
fn a_restored_primary_does_not_take_an_invitation_the_lost_state_used() {
    let mut w = World::new("review46 used invitation");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let (now, limits) = (w.now, w.limits());
    let mut rng = w.rng.clone();
    let invitation = w.primary(&alice).invite(&mut rng, now).unwrap();
    let backup = w.primary(&alice).to_bytes().to_vec();
    let at_backup = w.primary(&alice).device_list().signed().clone();

    // After the backup: C2 answers the invitation and is linked.
    let c2 = IdentityKeyPair::generate(&mut rng);
    let request = LinkRequest::new(&c2, &invitation);
    let approval = w.primary(&alice).approve(now, &request).unwrap();
    let (_, confirmation) = complete_link(&c2, &invitation, &approval, &limits).unwrap();
    w.primary(&alice).confirm(&confirmation).unwrap();
    w.publish(&alice);
    let lost_list = approval.list.clone();

    w.now = w.now.plus_millis(60_000);
    let now = w.now;
    let mut primary = Primary::restore_from_backup(&backup).unwrap();
    assert_eq!(
        primary.approve(now, &request).err(),
        Some(DeviceError::ResyncRequired)
    );
    primary.resync(now, at_backup).unwrap();
    assert_eq!(
        primary.approve(now, &request).err(),
        Some(DeviceError::UnknownInvitation)
    );
    assert_eq!(
        primary.confirm(&confirmation).err(),
        Some(DeviceError::NotInList(DeviceAddress {
            account: alice,
            device: approval.device
        }))
    );
    assert!(!primary.is_confirmed(approval.device));
    *w.primary(&alice) = primary;
    w.publish(&alice);
    for d in [a1, b1] {
        let held = w.device(d).device_list(&alice).unwrap().version();
        let before = w.device(d).to_bytes();
        assert_eq!(
            w.device(d)
                .update_device_list(now, &alice, lost_list.clone())
                .err(),
            Some(
                DeviceError::Rollback {
                    known: held,
                    received: lost_list.version()
                }
                .into()
            )
        );
        assert_eq!(*before, *w.device(d).to_bytes());
    }
    w.rng = rng;
}

// ---------------------------------------------------------------------------------------------
// Group membership across restores
// ---------------------------------------------------------------------------------------------

/// Mallory (the relay's account) is a member of G when Alice's phone is backed up; the relay
/// held Alice's first group message back from her (she holds the sender key it came with).
/// After the backup Alice's app removes her and Alice sends again (a new generation). Alice's
/// phone is restored: its state holds Mallory in G and in the ledger of the generation she was
/// given. Mallory asks for the held-back message: the restored phone, its group unconfirmed,
/// answers (she was a recipient of it) and gives her back only the generation she held. Once
/// the app sets the members again, the phone's next message goes out under a new generation
/// that Mallory neither receives nor can ask for, and her old requests, replayed, are spent.
#[test]
fn a_member_removed_after_the_backup_gets_nothing_new_from_the_restored_sender() {
    let mut w = World::new("review46 removed member restored sender");
    let alice = w.account(0);
    let bob = w.account(0);
    let mallory = w.account(0);
    w.publish_all();
    w.set_members(G, &[alice, bob, mallory]);
    let (a1, b1, m1) = (
        World::addr(alice, 1),
        World::addr(bob, 1),
        World::addr(mallory, 1),
    );
    let held = w.send_group(a1, G, b"held back from mallory");
    deliver_but_group_to(&mut w, &held, m1);
    let backup = w.device(a1).to_bytes().to_vec();

    // After the backup: Mallory removed, Alice sends under a new generation.
    w.set_members(G, &[alice, bob]);
    let lost = w.send_group(a1, G, b"sent by the lost state");
    assert_eq!(reached(&lost), vec![b1]);
    w.deliver_ok(&lost);

    w.now = w.now.plus_millis(DAY);
    let now = w.now;
    *w.device(a1) = Device::restore_from_backup(&backup, now).unwrap();
    w.persist(a1);
    assert_eq!(
        w.device(a1).unconfirmed_groups().collect::<Vec<_>>(),
        vec![G]
    );

    // Mallory asks for the held-back message (she was a recipient of it).
    let failed = World::group_envelope_for(&held, m1);
    let (asked, first_request) = w
        .request_retry(m1, &failed, RetryReason::SenderKeyMissing)
        .unwrap();
    assert_eq!(asked, a1);
    let Ok(Received::RetryRequest(req)) = w.receive(a1, &first_request) else {
        panic!("a recipient of the message asks for it")
    };
    let answer = w.answer(a1, &req, b"held back from mallory");
    assert!(w.reads(&answer, b"held back from mallory"));

    // The app sets the members; the next message is a new generation, for Bob alone.
    next_group_message_reaches_bob_alone(
        &mut w,
        (a1, b1, m1),
        &[alice, bob],
        FanoutError::NotEntitled.into(),
    );
    // Her earlier request, replayed, is the one answered already.
    let err = refused_any(&mut w, a1, &first_request);
    assert!(
        matches!(err, Error::Fanout(FanoutError::Duplicate { .. })),
        "{err:?}"
    );
}

/// Nick joins G after Alice's phone was backed up; the lost state gave him its generation with
/// a message. Restored, the phone holds G without him, unconfirmed. The app sets the members
/// (Nick in); the phone's first message is a new generation that reaches Bob and Nick, both
/// read it, and Nick can ask neither for a message sent before he joined (not a holder of
/// that generation) nor for the lost state's message (the restored journal does not hold it).
#[test]
fn a_member_added_after_the_backup_reads_the_restored_senders_next_message_only() {
    let mut w = World::new("review46 member added after backup");
    let alice = w.account(0);
    let bob = w.account(0);
    let nick = w.account(0);
    w.publish_all();
    w.set_members(G, &[alice, bob]);
    let (a1, b1, n1) = (
        World::addr(alice, 1),
        World::addr(bob, 1),
        World::addr(nick, 1),
    );
    let before_join = w.send_group(a1, G, b"before nick joined");
    w.deliver_ok(&before_join);
    let backup = w.device(a1).to_bytes().to_vec();

    w.set_members(G, &[alice, bob, nick]);
    let lost = w.send_group(a1, G, b"lost state, nick in");
    assert_eq!(reached(&lost), sorted(vec![b1, n1]));
    w.deliver_ok(&lost);

    w.now = w.now.plus_millis(DAY);
    let now = w.now;
    *w.device(a1) = Device::restore_from_backup(&backup, now).unwrap();
    w.persist(a1);
    let rng = &mut w.rng.clone();
    assert_eq!(
        w.device(a1).send_group(rng, now, G, b"too early").err(),
        Some(FanoutError::GroupUnconfirmed(G).into())
    );
    w.device(a1)
        .set_group_members(G, &[alice, bob, nick])
        .unwrap();
    w.persist(a1);
    let next = w.send_group(a1, G, b"after the restore, nick in");
    assert_eq!(reached(&next), sorted(vec![b1, n1]));
    let read: Vec<DeviceAddress> = w
        .deliver_ok(&next)
        .into_iter()
        .filter(|(_, r)| body(r) == Some(&b"after the restore, nick in"[..]))
        .map(|(a, _)| a)
        .collect();
    assert_eq!(sorted(read), sorted(vec![b1, n1]));

    // Nick asks for the message from before he joined (the relay hands it to him): refused.
    let old = World::group_envelope_for(&before_join, b1);
    let err = refused_any(&mut w, n1, &old);
    assert!(
        matches!(err, Error::Fanout(FanoutError::SenderKeyMissing { .. })),
        "{err:?}"
    );
    let (asked, request) = w
        .request_retry(n1, &old, RetryReason::SenderKeyMissing)
        .unwrap();
    assert_eq!(asked, a1);
    assert_eq!(
        refused_any(&mut w, a1, &request),
        FanoutError::NotEntitled.into()
    );
}

/// Bob's phone is backed up while Mallory is in G, holding her sender key; after the backup
/// Bob's app removes her. Restored, Bob's phone holds her key and her membership again. The
/// relay replays her sender key (a duplicate) and hands Bob a message she sent while a member and one she
/// sent after her removal (under her old key, and under a new generation she distributes):
/// while G is unconfirmed each is `GroupUnconfirmed`; once the app sets the members without
/// her, each is `NotAMember`, and nothing changes.
#[test]
fn a_restored_receiver_reads_nothing_of_a_member_removed_after_its_backup() {
    let mut w = World::new("review46 restored receiver");
    let alice = w.account(0);
    let bob = w.account(0);
    let mallory = w.account(0);
    w.publish_all();
    w.set_members(G, &[alice, bob, mallory]);
    let (b1, m1) = (World::addr(bob, 1), World::addr(mallory, 1));
    let first = w.send_group(m1, G, b"mallory while a member");
    w.deliver_ok(&first);
    let held = w.send_group(m1, G, b"held back while a member");
    let distribution = World::envelope_to(&first, b1);
    let backup = w.device(b1).to_bytes().to_vec();

    // After the backup, Bob's and Alice's apps remove Mallory.
    w.set_members(G, &[alice, bob]);
    // Mallory, still holding G as it was, sends under her key and then a new generation.
    let after_old_key = w.send_group(m1, G, b"after removal, old key");
    w.device(m1).forget_account(&alice);
    w.persist(m1);
    w.now = w.now.plus_millis(DAY);
    let now = w.now;
    *w.device(b1) = Device::restore_from_backup(&backup, now).unwrap();
    w.persist(b1);
    let new_generation = w.send_group(m1, G, b"after removal, new key");
    // Her first sender key, which the backup read, replayed: a duplicate, nothing more.
    let err = refused_any(&mut w, b1, &distribution);
    assert!(
        matches!(err, Error::Fanout(FanoutError::Duplicate { .. })),
        "{err:?}"
    );
    let envelopes = [
        World::group_envelope_for(&held, b1),
        World::group_envelope_for(&after_old_key, b1),
        World::envelope_to(&new_generation, b1),
        World::group_envelope_for(&new_generation, b1),
    ];
    for e in &envelopes {
        let err = refused_any(&mut w, b1, e);
        assert!(
            matches!(err, Error::Fanout(FanoutError::GroupUnconfirmed(g)) if g == G),
            "{err:?}"
        );
    }
    w.device(b1).set_group_members(G, &[alice, bob]).unwrap();
    w.persist(b1);
    for e in &envelopes {
        let err = refused_any(&mut w, b1, e);
        assert!(
            matches!(err, Error::Fanout(FanoutError::NotAMember { group, account }) if group == G && account == mallory),
            "{err:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Stale material served to a restored device
// ---------------------------------------------------------------------------------------------

/// Alice's phone is restored from a backup taken while laptop C1 was linked; since, C1 was
/// stolen and unlinked and laptop C2 linked. The relay serves the phone its own lists out of
/// order (the one from before the backup, one from between the backup and the unlink) and
/// retry requests: from C1 for a group and a direct message it was sent before the backup,
/// from C2 for the same (it was not linked then) and for messages the phone sent during its
/// wait (which left its own devices out). While the phone waits every request from its own
/// account is `AwaitingOwnList`; once a list issued since the restore ends the wait, C1's are
/// `NotInList` and C2's `NotEntitled`, and only the phone's next group message reaches C2,
/// under the generation made since the restore.
#[test]
fn a_restored_phone_answers_no_stale_retry_from_its_own_account() {
    let mut w = World::new("review46 stale retries to a restored phone");
    let alice = w.account(1);
    let bob = w.account(0);
    w.publish_all();
    w.set_members(G, &[alice, bob]);
    let (a1, b1, c1) = (
        World::addr(alice, 1),
        World::addr(bob, 1),
        World::addr(alice, 2),
    );
    let old_list = w.primary(&alice).device_list().signed().clone();
    let now = w.now;
    w.primary(&alice).renew(now).unwrap();
    w.publish(&alice);
    let pre_group = w.send_group(a1, G, b"group before the backup");
    deliver_skipping(&mut w, &pre_group, c1);
    let pre_direct = w.send(a1, bob, b"direct before the backup");
    deliver_skipping(&mut w, &pre_direct, c1);
    let backup = w.device(a1).to_bytes().to_vec();

    w.now = w.now.plus_millis(DAY);
    let now = w.now;
    let between = w.primary(&alice).renew(now).unwrap().signed().clone();
    w.publish(&alice);
    let stolen = w.devices.remove(&c1).unwrap();
    w.primary(&alice).unlink(now, c1.device).unwrap();
    let c2 = w.link(&alice);
    w.publish(&alice);
    w.device(c2).set_group_members(G, &[alice, bob]).unwrap();
    w.persist(c2);
    w.devices.insert(c1, stolen);

    w.now = w.now.plus_millis(DAY);
    let now = w.now;
    *w.device(a1) = Device::restore_from_backup(&backup, now).unwrap();
    w.persist(a1);
    let held = w.device(a1).device_list(&alice).unwrap().version();
    let before = w.device(a1).to_bytes();
    let received = old_list.version();
    assert_eq!(
        w.device(a1).update_device_list(now, &alice, old_list).err(),
        Some(
            DeviceError::Rollback {
                known: held,
                received
            }
            .into()
        )
    );
    assert_eq!(*before, *w.device(a1).to_bytes());
    w.device(a1)
        .update_device_list(now, &alice, between)
        .unwrap();
    w.persist(a1);
    assert!(w.device(a1).awaiting_own_list());
    w.device(a1).set_group_members(G, &[alice, bob]).unwrap();
    w.persist(a1);
    let during_group = w.send_group(a1, G, b"group during the wait");
    assert_eq!(reached(&during_group), vec![b1]);
    w.deliver_ok(&during_group);

    // The requests, made while the phone waits (C2 is handed the envelopes by the relay).
    let pre = [
        World::group_envelope_for(&pre_group, b1),
        World::envelope_to(&pre_direct, c1),
        World::group_envelope_for(&during_group, b1),
    ];
    let mut requests = Vec::new();
    for (asker, failed) in [(c1, &pre[0]), (c1, &pre[1]), (c2, &pre[0]), (c2, &pre[2])] {
        let (asked, request) = w
            .request_retry(asker, failed, RetryReason::NoSession)
            .unwrap();
        assert_eq!(asked, a1);
        requests.push((asker, request));
    }
    for (_, request) in &requests {
        assert_eq!(
            refused_any(&mut w, a1, request),
            FanoutError::AwaitingOwnList.into()
        );
    }

    // A list issued since the restore ends the wait.
    let now = w.now;
    w.primary(&alice).renew(now).unwrap();
    w.publish(&alice);
    assert!(!w.device(a1).awaiting_own_list());
    for (asker, request) in &requests {
        let expected: Error = if *asker == c1 {
            DeviceError::NotInList(c1).into()
        } else {
            FanoutError::NotEntitled.into()
        };
        assert_eq!(refused_any(&mut w, a1, request), expected, "{asker:?}");
    }
    let next = w.send_group(a1, G, b"group after the wait");
    assert_eq!(reached(&next), sorted(vec![b1, c2]));
    let read: Vec<DeviceAddress> = w
        .deliver_ok(&next)
        .into_iter()
        .filter(|(_, r)| body(r) == Some(&b"group after the wait"[..]))
        .map(|(a, _)| a)
        .collect();
    assert_eq!(sorted(read), sorted(vec![b1, c2]));
}

/// Mallory leaves G after Alice's phone was backed up. Restored, the phone links laptop C3
/// (the link's list ends its wait) while G is still unconfirmed: a history offer is
/// `GroupUnconfirmed`, so the backup's members (Mallory in) never reach C3. Once the app sets
/// G's members, the offer installs G without her at C3, whose first group message reaches
/// Bob and the phone, not Mallory.
#[test]
fn a_restored_phone_hands_a_new_companion_only_the_members_the_app_set() {
    let mut w = World::new("review46 offer after restore");
    let alice = w.account(0);
    let bob = w.account(0);
    let mallory = w.account(0);
    w.publish_all();
    w.set_members(G, &[alice, bob, mallory]);
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let first = w.send_group(a1, G, b"mallory in");
    w.deliver_ok(&first);
    let backup = w.device(a1).to_bytes().to_vec();
    w.set_members(G, &[alice, bob]);

    w.now = w.now.plus_millis(DAY);
    let now = w.now;
    *w.device(a1) = Device::restore_from_backup(&backup, now).unwrap();
    w.persist(a1);
    let c3 = w.link(&alice);
    w.publish(&alice);
    assert!(!w.device(a1).awaiting_own_list());
    let mut sealer = HistorySealer::new(&mut w.rng);
    let _ = sealer.push(b"history");
    let offer = sealer.finish().1;
    let rng = &mut w.rng.clone();
    assert_eq!(
        w.device(a1).send_history_offer(rng, now, c3, &offer).err(),
        Some(FanoutError::GroupUnconfirmed(G).into())
    );
    w.device(a1).set_group_members(G, &[alice, bob]).unwrap();
    w.persist(a1);
    let sent = w
        .run(a1, |d, rng, now| d.send_history_offer(rng, now, c3, &offer))
        .unwrap();
    let got = w.deliver_ok(&sent);
    assert!(matches!(
        &got[0].1,
        Received::HistoryOffer { groups, .. } if *groups == vec![G]
    ));
    let members: Vec<_> = w.device(c3).group_members(G).unwrap().collect();
    assert_eq!(members, vec![bob]);
    let from_c3 = w.send_group(c3, G, b"from the new laptop");
    assert_eq!(reached(&from_c3), sorted(vec![a1, b1]));
    assert!(w.reads(&from_c3, b"from the new laptop"));
}

/// Bob's laptop B2 is stolen and unlinked after Alice's phone was backed up; the restored
/// phone holds Bob's list from the backup, naming B2 (sending to it until the relay serves
/// the newer list is the known limit on withheld list updates). The relay serves first a
/// list from before the unlink (still B2: taken, nothing removed), then the newest: B2 is
/// removed, and the phone's next group message, which rotates anyway after a restore, is a
/// generation B2 neither receives nor can ask for; a direct message leaves it out too.
#[test]
fn a_restored_phone_drops_a_contacts_companion_once_it_is_shown_the_unlink() {
    let mut w = World::new("review46 contact unlink after restore");
    let alice = w.account(0);
    let bob = w.account(1);
    w.publish_all();
    w.set_members(G, &[alice, bob]);
    let (a1, b1, b2) = (
        World::addr(alice, 1),
        World::addr(bob, 1),
        World::addr(bob, 2),
    );
    let first = w.send_group(a1, G, b"b2 still linked");
    w.deliver_ok(&first);
    let backup = w.device(a1).to_bytes().to_vec();

    w.now = w.now.plus_millis(DAY);
    let now = w.now;
    let before_unlink = w.primary(&bob).renew(now).unwrap().signed().clone();
    w.publish(&bob);
    let stolen = w.devices.remove(&b2).unwrap();
    w.primary(&bob).unlink(now, b2.device).unwrap();
    w.publish(&bob);
    w.devices.insert(b2, stolen);

    w.now = w.now.plus_millis(DAY);
    let now = w.now;
    *w.device(a1) = Device::restore_from_backup(&backup, now).unwrap();
    w.persist(a1);
    let events = w
        .device(a1)
        .update_device_list(now, &bob, before_unlink)
        .unwrap();
    assert!(events.is_empty(), "{events:?}");
    let newest = w.primary(&bob).device_list().signed().clone();
    let events = w.device(a1).update_device_list(now, &bob, newest).unwrap();
    assert_eq!(events, vec![Event::DeviceRemoved(b2)]);
    w.persist(a1);

    next_group_message_reaches_bob_alone(
        &mut w,
        (a1, b1, b2),
        &[alice, bob],
        DeviceError::NotInList(b2).into(),
    );
    let direct = w.send(a1, bob, b"direct after the restore");
    assert_eq!(reached(&direct), vec![b1]);
}

/// Alice links laptop C2 and then unlinks laptop C1, which was stolen (the relay holds it,
/// with its state). C2 starts from the list that admitted it, which still names C1. Before
/// the relay hands C2 the list that unlinked C1, it delivers a history offer the stolen C1
/// sealed to C2, after its own app-level call set group G's members to Bob and Mallory (the
/// relay's account; Alice's real G is Alice and Bob). C2, whose app has set no group yet,
/// installs G with Mallory in it: C1 is still listed in C2's view, and nothing tells the
/// offer apart. Found: once C2 took the newest list, the membership stayed, the phone's
/// genuine offer installed nothing over it (G was held), and C2's next group message went to
/// Mallory, who read it.
///
/// Fixed (PROTOCOL.md 18.2): while C2's app has set no group, a list of its own account that
/// drops a device marks every group it holds unconfirmed, as a restore does. C2 then sends
/// nothing to G and reads nothing from it until its app sets G's members; no later offer
/// installs a group; and with the members the app sets, Mallory reads nothing of C2's.
#[test]
fn an_unlinked_companions_offer_does_not_outlive_the_unlink() {
    let mut w = World::new("review46 stolen laptop offer");
    let alice = w.account(1);
    let bob = w.account(0);
    let mallory = w.account(0);
    w.publish_all();
    let (a1, b1, c1) = (
        World::addr(alice, 1),
        World::addr(bob, 1),
        World::addr(alice, 2),
    );
    let m1 = World::addr(mallory, 1);
    // Alice's real G: Alice and Bob.
    for d in [a1, b1, c1] {
        w.device(d).set_group_members(G, &[alice, bob]).unwrap();
        w.persist(d);
    }
    w.device(m1)
        .set_group_members(G, &[alice, bob, mallory])
        .unwrap();
    w.persist(m1);

    // C2 linked (its list names C1); then C1 is stolen and unlinked. The relay gives the
    // stolen C1 the list that admitted C2, and withholds the unlink from C2.
    let c2 = w.link(&alice);
    let admitted_c2 = w.primary(&alice).device_list().signed().clone();
    let now = w.now;
    w.device(c1)
        .update_device_list(now, &alice, admitted_c2)
        .unwrap();
    w.persist(c1);
    let stolen = w.devices.remove(&c1).unwrap();
    w.primary(&alice).unlink(now, c1.device).unwrap();
    let unlink = w.primary(&alice).device_list().signed().clone();
    for d in w.addresses() {
        if d != c2 {
            let _ = w.device(d).update_device_list(now, &alice, unlink.clone());
            w.persist(d);
        }
    }
    w.devices.insert(c1, stolen);

    // The stolen laptop's offer to C2, with G's members as the relay wants them.
    w.device(c1)
        .set_group_members(G, &[alice, bob, mallory])
        .unwrap();
    w.persist(c1);
    let mut sealer = HistorySealer::new(&mut w.rng);
    let _ = sealer.push(b"nothing");
    let offer = sealer.finish().1;
    let forged = w
        .run(c1, |d, rng, now| d.send_history_offer(rng, now, c2, &offer))
        .unwrap();
    let got = w.receive(c2, &World::envelope_to(&forged, c2));
    assert!(
        matches!(&got, Ok(Received::HistoryOffer { groups, .. }) if groups.contains(&G)),
        "{got:?}"
    );

    // C2 takes the unlink: G is unconfirmed, and the phone's genuine offer installs nothing.
    let events = w
        .device(c2)
        .update_device_list(now, &alice, unlink)
        .unwrap();
    w.persist(c2);
    assert!(events.contains(&Event::DeviceRemoved(c1)));
    assert_eq!(w.device(c2).unconfirmed_groups().collect::<Vec<_>>(), [G]);
    let refused = w.run(c2, |d, rng, now| d.send_group(rng, now, G, b"too early"));
    assert_eq!(refused.err(), Some(FanoutError::GroupUnconfirmed(G).into()));
    let genuine = w
        .run(a1, |d, rng, now| d.send_history_offer(rng, now, c2, &offer))
        .unwrap();
    let read = w.deliver_ok(&genuine);
    assert!(
        matches!(&read[..], [(_, Received::HistoryOffer { groups, .. })] if groups.is_empty()),
        "{read:?}"
    );
    // Mallory's own group message is not read while G awaits its members.
    let hers = w.send_group(m1, G, b"from mallory");
    let (e, _) = hers.group.as_ref().unwrap();
    assert!(w.device(c2).clone().receive(now, e).is_err());

    // The app sets G's members: C2's group message reaches Alice's phone and Bob alone.
    w.device(c2).set_group_members(G, &[alice, bob]).unwrap();
    w.persist(c2);
    let from_c2 = w.send_group(c2, G, b"from the new laptop");
    assert!(!from_c2.recipients().contains(&m1));
    assert_eq!(sorted(from_c2.recipients()), sorted(vec![a1, b1]));
    assert!(w.reads(&from_c2, b"from the new laptop"));
}
