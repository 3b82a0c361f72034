//! Review 43b: commit 323a3e8 attacked (stop 43's fix of review 43: sessions kept at a restore
//! are unconfirmed until the peer answers a chain the device began since, i.e. a DH step in a
//! session holding a sending chain; the post-quantum exception; `request_retry` of a message
//! of an unconfirmed group is `GroupUnconfirmed`). Adversary: the relay (drops, reorders,
//! holds back, replays, injects), and honest re-delivery to a device restored from a backup.
//!
//! A passing test pins what holds; a test marked `#[ignore = "KNOWN LIMIT: ..."]` asserts
//! what the library does not give (run with `--include-ignored`: it fails). How each finding
//! was resolved at stop 43 follows it.
//!
//! Pinned:
//! - a restored phone is confirmed by its peer's reply to a chain it began since the restore,
//!   and then reads a missing sender key by one `SenderKeyMissing` ask on the kept session
//!   (`a_confirmation_by_the_peers_reply_is_right_and_reads_by_the_first_ask`); before the
//!   reply it asks as `NoSession`; both states survive a restart through the records the
//!   units wrote, and whole-state bytes round-trip;
//! - a replay of the lost state's message after the restored phone began a chain does not
//!   open as a DH step and confirms nothing; one ask reads, the pair converges on the ratchet
//!   (`a_replay_after_the_restored_phone_began_a_chain_confirms_nothing`);
//! - with keys on the ratchet (bit 31), a phone restored twice from one backup reads by one
//!   ask each time and the pair keeps the ratchet
//!   (`a_rotated_device_restored_twice_from_one_backup_reads_and_keeps_the_ratchet`);
//! - a restored companion, once a list of its account issued since arrives, reads its
//!   phone's group message by one ask and both stay on the ratchet
//!   (`a_restored_companion_reads_its_phones_group_message_by_one_ask`);
//! - `request_retry` of a group envelope of an unconfirmed group is `GroupUnconfirmed` for
//!   every reason, byte-identical, nothing to persist, across restarts through records; once the
//!   members are set the driver goes `AwaitMembers` -> `Hold`, one ask reads (`Read` through
//!   the driver), then `Duplicate`, and the pair converges
//!   (`group_unconfirmed_asks_change_nothing_and_the_message_is_recovered_after_the_members`);
//! - without finding 1's re-wraps, a restored phone's missing sender key reads by one ask
//!   (`without_rewraps_the_restored_devices_group_message_reads_by_one_ask`);
//! - in finding 3's scene the message is still read within the limit and the pair converges
//!   (`after_an_undone_confirmation_the_message_is_read_within_the_limit_and_converges`).
//!
//! Findings (each named test fails on the reviewed commit):
//! 1. **Medium (availability, message loss by injection alone): pairwise re-wraps of a group
//!    message's salt use up its retry limit, bypassing `GroupUnconfirmed` too.** Attempts are
//!    keyed by (sender, salt) for either kind, and the pending retry takes the *kind and group*
//!    of the last envelope asked for (`Pending.group`), while `request_retry` reads the salt
//!    before anything authenticates and refuses `GroupUnconfirmed` only for a *group*
//!    envelope. The relay copies any pairwise envelope of the sender with the group message's
//!    salt in its header and delivers it before the genuine one (which still reads: nothing is
//!    dropped). The copy fails, the driver returns `AskAgain` (the app asks without choosing
//!    to), the sender finds the group message by its salt and answers with a distribution of
//!    its *current* sender key (past the message's iteration) and a group resend, which the
//!    requester refuses as `UnexpectedResend` (`receive::answered`: the pending retry is of the
//!    pairwise kind), and, for an unconfirmed group, the distribution as `GroupUnconfirmed`.
//!    Three copies and the genuine group message is `RetryLimit`: lost. Shown for a restored
//!    phone's unconfirmed group (stop 43's fix 4 reopened:
//!    `a_pairwise_rewrap_of_an_unconfirmed_groups_message_spends_no_answer`), for a restored
//!    phone whose group the app confirmed at once (every sender key it missed is then one
//!    injection away from loss, no envelope dropped:
//!    `a_pairwise_rewrap_does_not_lose_a_restored_devices_group_message`, control
//!    `without_rewraps_the_restored_devices_group_message_reads_by_one_ask`), and outside any
//!    restore for a message whose distribution the relay withheld
//!    (`a_pairwise_rewrap_of_a_held_group_message_does_not_lose_it`; likely predates stop 43).
//!    Fix direction: accept an answer's resend of either kind for a pending (sender, salt)
//!    (the salt names one message; 18.6 already says so for `Duplicate`), or carry the kind
//!    and group in the request and have the answerer refuse a mismatch, and apply the
//!    `GroupUnconfirmed` check to the journaled message's group rather than the envelope's.
//!    **Fixed**: a resend answers the pending retry of its (sender, reference) whatever kind
//!    of envelope it was asked from (PROTOCOL.md 18.5), and the message it reads is
//!    remembered under its own kind's id (18.4), so the genuine envelope is `Duplicate`
//!    afterwards; the answers to a re-wrap of an unconfirmed group's message are kept by the
//!    driver (`AwaitMembers`) and read once the app sets the members.
//! 2. **Medium (availability, no relay action; post-quantum exception): an unrotated
//!    pre-ratchet device restored twice from one backup loses the message.** Its kept session
//!    runs the ratchet and its bundle (ML-KEM id without bit 31) does not, so the exception
//!    keeps its first ask `SenderKeyMissing`, answered on the sender's current session, which
//!    a stale backup cannot read: one answer wasted, and the second ask (`NoSession`, since
//!    asked before) reads on a session from the unmarked bundle, taking the pair off the
//!    ratchet anyway (`an_unrotated_requester_restored_from_a_stale_backup_reads_by_one_ask_on_the_ratchet`).
//!    Restored again from the same backup (it died before acknowledging; the server
//!    re-delivers), the exception again keeps the first ask on the kept session, the sender's
//!    third answer is wasted and the next ask is `RetryLimit`: review 42b's double-restore loss,
//!    back for unrotated stores (`an_unrotated_requester_restored_twice_from_one_backup_reads_the_message`).
//!    The exception guards a ratchet it cannot keep when the kept copy is stale. Fix direction:
//!    let a device that runs the ratchet mark the one-time ML-KEM key it makes for a request
//!    with bit 31 whatever its uploaded store's age (then the mark never needs the exception),
//!    or rotate the store at `restore_from_backup`. **Known limit** (stop 43): a store from
//!    before the ratchet that was never rotated, as the guide says to do at once after
//!    upgrading; rotating it at a restore changes the restore's prekey counters (19.4, the
//!    records vector), left for a later stop. Two ignored tests.
//! 3. **Low (availability, one answer): a confirmation is a point in time; a held-back message
//!    of the lost state moves the peer's current session back.** The lost state read a retry's
//!    answer on a new session S3 and wrote `x` on it; the relay holds `x`. After the restore the
//!    restored phone is rightly confirmed on S1 (Alice answered its new chain); the relay then
//!    delivers `x`, the first reply in Alice's S3, a new receiving chain that makes the equally
//!    strong S3 her current again. The restored phone, confirmed, asks `SenderKeyMissing`, is
//!    answered on S3, which it never held: one answer wasted (read by the second ask)
//!    (`a_held_back_message_of_the_lost_state_does_not_waste_an_answer_after_confirmation`).
//!    Cause: `SessionSet::advance` makes a session current on any new receiving chain, and the
//!    answerer answers on its current session, which the restored side's confirmation does not
//!    pin. Fix direction: let a `SenderKeyMissing` request name the session it expects (e.g.
//!    the base key of the requester's current session), answered there if held and on a new
//!    session otherwise. **Known limit** (stop 43): it costs one answer and the message still
//!    reads within the limit; naming the session in the request is a wire change left for a
//!    later stop. One ignored test.

mod support;

use ratchetry::devices::DeviceAddress;
use ratchetry::driver::Inbound;
use ratchetry::fanout::{Device, Received, RetryReason};
use ratchetry::group::GroupId;
use ratchetry::{Error, FanoutError, Timestamp};
use support::{GROUP_SALT, World, body, tampered};

const G: GroupId = GroupId([0x4b; 32]);

fn later(w: &mut World) {
    w.now = Timestamp(w.now.0 + 60_000);
}

/// Restores `b1` from `backup` with its own list fetched; its groups stay unconfirmed.
fn restore_only(w: &mut World, b1: DeviceAddress, backup: &[u8]) {
    let now = w.now;
    *w.device(b1) = Device::restore_from_backup(backup, now).unwrap();
    w.persist(b1);
    w.publish(&b1.account);
}

fn confirm_groups(w: &mut World, b1: DeviceAddress) {
    let members: Vec<_> = w.primaries.iter().map(|p| p.account()).collect();
    w.device(b1).set_group_members(G, &members).unwrap();
    w.persist(b1);
}

/// Restores `b1` as an app does: own list fetched, the group's members set again.
fn restore(w: &mut World, b1: DeviceAddress, backup: &[u8]) {
    restore_only(w, b1, backup);
    confirm_groups(w, b1);
}

fn pq_both(w: &mut World, a1: DeviceAddress, b1: DeviceAddress) {
    for (d, peer) in [(a1, b1), (b1, a1)] {
        assert!(
            !w.device(d).sessions_without_pq_ratchet().contains(&peer),
            "{d:?}'s session with {peer:?} lost the post-quantum ratchet"
        );
        assert!(w.device(d).pq_ratchet_epoch(&peer).is_some());
    }
}

/// Alice and Bob (a phone each) in `G`, talked both ways; Bob wrote last before the backup.
/// Returns the world, the phones and the backup.
fn talked(label: &str) -> (World, DeviceAddress, DeviceAddress) {
    let (mut w, [alice, bob], [a1, b1]) = World::phones::<2>(label);
    for (from, to) in [(a1, bob), (b1, alice), (a1, bob)] {
        let o = w.send(from, to, b"warm up");
        w.deliver_ok(&o);
    }
    w.set_members(G, &[alice, bob]);
    (w, a1, b1)
}

// ---------------------------------------------------------------------------------------------
// 1. A confirmation the relay undoes with a held-back message of the lost state
// ---------------------------------------------------------------------------------------------

/// The scene of finding 3. After the backup (Bob's session S1 with Alice), the relay tampers
/// with Alice's message `m`; Bob's lost state asks for it and reads the answer on a new
/// session S3 (from its request's bundle, current at both ends); it then writes `x` on S3,
/// which the relay holds back from Alice. Alice's sender key for `G` reaches the lost state
/// only. Bob is restored (S1 kept, unconfirmed); the relay gives him the genuine `m` (a DH
/// step in S1 without a sending chain: no confirmation); Bob writes on S1 (a chain begun
/// since), Alice reads it (S1 current again at her end) and replies on S1, which Bob reads by
/// a DH step in a session holding a sending chain: confirmed, rightly so far. Then the relay
/// delivers `x`: the first reply in Alice's S3, a new receiving chain, makes S3 (equally
/// strong) her current session again, one the restored Bob never held. Returns the world,
/// the phones, and Alice's next group message to Bob (`SenderKeyMissing` at Bob).
fn undone_confirmation(label: &str) -> (World, DeviceAddress, DeviceAddress, Vec<u8>) {
    let (mut w, a1, b1) = talked(label);
    let (alice, bob) = (a1.account, b1.account);
    let o = w.send(b1, alice, b"before the backup");
    w.deliver_ok(&o);
    let backup = w.device(b1).to_bytes().to_vec();
    let o = w.send(a1, bob, b"m");
    let genuine = World::envelope_to(&o, b1);
    let forged = tampered(&genuine);
    assert!(w.receive(b1, &forged).is_err());
    let (to, bytes) = w
        .request_retry(b1, &forged, RetryReason::AuthenticationFailed)
        .unwrap();
    assert_eq!(to, a1);
    let Ok(Received::RetryRequest(req)) = w.receive(a1, &bytes) else {
        panic!("Alice reads the request")
    };
    let a = w.answer(a1, &req, b"m");
    assert!(w.reads(&a, b"m"), "the lost state reads the answer");
    let o = w.send(b1, alice, b"x");
    let held_x = World::envelope_to(&o, a1);
    let m1 = w.send_group(a1, G, b"after the backup");
    w.deliver_ok(&m1);
    later(&mut w);
    restore(&mut w, b1, &backup);
    let got = w.receive(b1, &genuine).expect("the backup opens m");
    assert_eq!(body(&got), Some(&b"m"[..]));
    let o = w.send(b1, alice, b"hello again");
    assert!(w.reads(&o, b"hello again"), "Alice reads S1's new chain");
    let o = w.send(a1, bob, b"reply");
    assert!(w.reads(&o, b"reply"), "Bob reads Alice's reply on S1");
    // The relay now delivers the held-back `x`.
    let got = w.receive(a1, &held_x).expect("Alice reads x");
    assert_eq!(body(&got), Some(&b"x"[..]));
    let m2 = w.send_group(a1, G, b"second");
    let msg = World::group_envelope_for(&m2, b1);
    let now = w.now;
    assert!(matches!(
        w.device(b1).receive(now, &msg),
        Err(Error::Fanout(FanoutError::SenderKeyMissing { .. }))
    ));
    (w, a1, b1, msg)
}

/// Without the held-back `x`, the confirmation is right: Bob's first `SenderKeyMissing` ask
/// goes as such, is answered on S1 (Alice's current) and reads.
#[test]
fn a_confirmation_by_the_peers_reply_is_right_and_reads_by_the_first_ask() {
    let (mut w, a1, b1) = talked("r43b confirmed");
    let (alice, bob) = (a1.account, b1.account);
    let o = w.send(b1, alice, b"before the backup");
    w.deliver_ok(&o);
    // Alice's chain the backup knows, which her sender key continues.
    let o = w.send(a1, bob, b"ack");
    w.deliver_ok(&o);
    let backup = w.device(b1).to_bytes().to_vec();
    let m1 = w.send_group(a1, G, b"after the backup");
    w.deliver_ok(&m1);
    later(&mut w);
    restore(&mut w, b1, &backup);
    let o = w.send(b1, alice, b"hello again");
    assert!(w.reads(&o, b"hello again"));
    let m2 = w.send_group(a1, G, b"second");
    let msg = World::group_envelope_for(&m2, b1);
    assert!(w.receive(b1, &msg).is_err());
    // Not confirmed yet: Alice has not answered the chain Bob began (also after a restart
    // through the records the units wrote).
    assert_eq!(w.asks_as(b1, a1, &msg), RetryReason::NoSession);
    w.restart(b1);
    assert_eq!(w.asks_as(b1, a1, &msg), RetryReason::NoSession);
    let o = w.send(a1, bob, b"reply");
    assert!(w.reads(&o, b"reply"));
    assert_eq!(w.asks_as(b1, a1, &msg), RetryReason::SenderKeyMissing);
    w.restart(b1);
    assert_eq!(
        Device::from_bytes(&w.device(b1).to_bytes())
            .unwrap()
            .to_bytes()
            .to_vec(),
        w.device(b1).to_bytes().to_vec(),
        "whole-state bytes round-trip"
    );
    assert_eq!(w.asks_as(b1, a1, &msg), RetryReason::SenderKeyMissing);
    assert_eq!(w.recover(a1, b1, &msg, b"second"), Ok(1));
    w.converged(a1, b1, G);
}

/// Finding 3: the confirmation is a point in time. Alice's current session moves back to S3
/// (which the restored Bob lacks) when the relay delivers the lost state's held-back `x`; Bob's
/// sessions stay confirmed, his first ask goes as `SenderKeyMissing`, and Alice answers it on
/// S3: an answer wasted (he reads by the second ask, `NoSession`).
#[test]
#[ignore = "KNOWN LIMIT: a held-back message of the lost state moves the peer's current session back to one the restored device lacks after the confirmation; its next SenderKeyMissing ask wastes an answer"]
fn a_held_back_message_of_the_lost_state_does_not_waste_an_answer_after_confirmation() {
    let (mut w, a1, b1, msg) = undone_confirmation("r43b undone");
    assert_eq!(w.recover(a1, b1, &msg, b"second"), Ok(1));
}

/// What holds in finding 3's scene: the message is read within the limit (by the second
/// ask), and the pair converges on the post-quantum ratchet.
#[test]
fn after_an_undone_confirmation_the_message_is_read_within_the_limit_and_converges() {
    let (mut w, a1, b1, msg) = undone_confirmation("r43b undone holds");
    assert_eq!(w.asks_as(b1, a1, &msg), RetryReason::SenderKeyMissing);
    let asks = w.recover(a1, b1, &msg, b"second");
    assert!(matches!(asks, Ok(1 | 2)), "{asks:?}");
    w.converged(a1, b1, G);
}

// ---------------------------------------------------------------------------------------------
// 2. GroupUnconfirmed on request_retry
// ---------------------------------------------------------------------------------------------

/// Bob's backup, then Alice's sender key for `G` (the lost state reads it); Bob restored with
/// his own list but `G` unconfirmed; Alice's next group message `msg`.
fn unconfirmed_group(label: &str) -> (World, DeviceAddress, DeviceAddress, Vec<u8>) {
    let (mut w, a1, b1) = talked(label);
    let o = w.send(b1, a1.account, b"before the backup");
    w.deliver_ok(&o);
    let backup = w.device(b1).to_bytes().to_vec();
    let m1 = w.send_group(a1, G, b"after the backup");
    w.deliver_ok(&m1);
    later(&mut w);
    restore_only(&mut w, b1, &backup);
    assert!(w.device(b1).unconfirmed_groups().any(|g| g == G));
    let m2 = w.send_group(a1, G, b"second");
    let msg = World::group_envelope_for(&m2, b1);
    (w, a1, b1, msg)
}

/// `request_retry` of a message of an unconfirmed group is `GroupUnconfirmed`, for every
/// reason, with the device byte-identical and nothing to persist (also after a restart
/// through records); once the app sets the members, the driver holds the message
/// (`AwaitMembers`, then `Hold`), one `SenderKeyMissing` ask reads it (the answer `Read` by the
/// driver), it is `Duplicate` afterwards, and the pair converges.
#[test]
fn group_unconfirmed_asks_change_nothing_and_the_message_is_recovered_after_the_members() {
    let (mut w, a1, b1, msg) = unconfirmed_group("r43b group unconfirmed");
    assert_eq!(w.step(b1, &msg), Inbound::AwaitMembers { group: G });
    for _ in 0..2 {
        for reason in [
            RetryReason::SenderKeyMissing,
            RetryReason::NoSession,
            RetryReason::AuthenticationFailed,
            RetryReason::RestoredFromBackup,
            RetryReason::Other(77),
        ] {
            let now = w.now;
            let d = w.devices.get_mut(&b1).unwrap();
            assert!(!d.has_changes());
            let before = d.to_bytes();
            assert_eq!(
                d.request_retry(&mut w.rng, now, &msg, reason).err(),
                Some(FanoutError::GroupUnconfirmed(G).into()),
                "{reason:?}"
            );
            assert_eq!(*before, *d.to_bytes(), "{reason:?} changed the device");
            assert!(!d.has_changes(), "{reason:?} left changes");
        }
        // The driver's ask (the guide's way from `Hold`) says to keep it for the members.
        let now = w.now;
        let d = w.devices.get_mut(&b1).unwrap();
        let asked = ratchetry::driver::ask_again(
            d,
            &mut w.rng,
            now,
            &msg,
            RetryReason::SenderKeyMissing,
            |_| false,
        );
        assert_eq!(asked, Inbound::AwaitMembers { group: G });
        assert!(!d.has_changes());
        w.restart(b1);
    }
    assert_eq!(w.step(b1, &msg), Inbound::AwaitMembers { group: G });
    confirm_groups(&mut w, b1);
    w.restart(b1);
    assert_eq!(w.step(b1, &msg), Inbound::Hold { from: a1 });
    let (to, bytes) = w
        .request_retry(b1, &msg, RetryReason::SenderKeyMissing)
        .unwrap();
    assert_eq!(to, a1);
    let Ok(Received::RetryRequest(req)) = w.receive(a1, &bytes) else {
        panic!("Alice reads the request")
    };
    assert_eq!(req.reason, RetryReason::NoSession, "unconfirmed sessions");
    let a = w.answer(a1, &req, b"second");
    let mut read = false;
    for (to, e) in &a.envelopes {
        if let Inbound::Read(r) = w.step(*to, e) {
            read |= body(&r) == Some(&b"second"[..]);
        }
    }
    if let Some((e, ds)) = &a.group {
        for to in ds.iter() {
            if let Inbound::Read(r) = w.step(*to, e) {
                read |= body(&r) == Some(&b"second"[..]);
            }
        }
    }
    assert!(read, "read by the first ask");
    assert!(matches!(w.step(b1, &msg), Inbound::Duplicate(_)));
    w.converged(a1, b1, G);
}

/// Finding 1: the relay re-wraps the salt of a message of the unconfirmed group as a pairwise
/// envelope of its sender (any of Alice's pairwise envelopes to Bob, its header's salt
/// replaced). It fails at Bob (the driver says `AskAgain`); `request_retry` sees no group and
/// asks; Alice finds the group message by its salt and answers with a group resend, which
/// Bob refuses as `GroupUnconfirmed` (the driver: `AwaitMembers`, keep it). Three times, and
/// once the app has set the members the genuine message was `RetryLimit`: lost. Fixed at stop
/// 43: a resend answers the pending retry of its reference whatever kind the retry was asked
/// from, so the answers kept while the group was unconfirmed read once it is set.
#[test]
fn a_pairwise_rewrap_of_an_unconfirmed_groups_message_spends_no_answer() {
    let (mut w, a1, b1, msg) = unconfirmed_group("r43b rewrap");
    assert_eq!(w.step(b1, &msg), Inbound::AwaitMembers { group: G });
    let group_salt: [u8; 16] = msg[GROUP_SALT].try_into().unwrap();
    let mut kept = Vec::new();
    for i in 0..3u8 {
        let o = w.send(a1, b1.account, &[b'q', i]);
        let pairwise = World::envelope_to(&o, b1);
        let salt = w.pairwise_salt(b1, &pairwise);
        let at = pairwise.windows(16).position(|s| s == salt).unwrap();
        let mut forged = pairwise.clone();
        forged[at..at + 16].copy_from_slice(&group_salt);
        let Inbound::AskAgain { request, .. } = w.step(b1, &forged) else {
            panic!("the forged copy is asked for again")
        };
        assert!(
            w.receive(b1, &pairwise).is_ok(),
            "the genuine envelope reads"
        );
        let Ok(Received::RetryRequest(req)) = w.receive(a1, &request) else {
            continue;
        };
        let a = w.answer(a1, &req, b"second");
        for (to, e) in a.envelopes.iter().filter(|(to, _)| *to == b1) {
            // Kept, as the driver says, until the app sets the members.
            match w.step(*to, e) {
                Inbound::AwaitMembers { group: G } => kept.push(e.clone()),
                other => panic!("{other:?}"),
            }
        }
    }
    assert!(!kept.is_empty());
    confirm_groups(&mut w, b1);
    let read = kept
        .iter()
        .filter_map(|e| w.receive(b1, e).ok())
        .any(|r| body(&r) == Some(&b"second"[..]));
    assert!(read, "a kept answer reads once the members are set");
    let now = w.now;
    let again = w.device(b1).receive(now, &msg);
    assert!(
        matches!(again, Err(Error::Fanout(FanoutError::Duplicate { .. }))),
        "{again:?}"
    );
}

/// The re-wrap of finding 1 outside any restore: a group message whose sender key Bob lacks
/// (the relay dropped the distribution) is `Hold`; the relay's pairwise re-wraps of its salt
/// are asked for and answered, and the genuine message must still be readable afterwards.
#[test]
fn a_pairwise_rewrap_of_a_held_group_message_does_not_lose_it() {
    let (mut w, a1, b1) = talked("r43b rewrap held");
    let m = w.send_group(a1, G, b"held");
    let msg = World::group_envelope_for(&m, b1);
    assert_eq!(w.step(b1, &msg), Inbound::Hold { from: a1 });
    let got = rewrap_asks(&mut w, a1, b1, &msg, b"held");
    let read_by_rewrap = got.iter().any(|r| r == &Ok(true));
    let now = w.now;
    let genuine = w.device(b1).receive(now, &msg).is_ok();
    let recovered = read_by_rewrap || genuine || w.recover(a1, b1, &msg, b"held").is_ok();
    assert!(recovered, "lost: {got:?}");
}

// ---------------------------------------------------------------------------------------------
// 3. The post-quantum exception
// ---------------------------------------------------------------------------------------------

/// Bob's keys predate the post-quantum ratchet (not rotated); his session with Alice runs it.
/// After the backup the pair talks on (the lost state writes, Alice answers it: her current
/// chain is beyond the backup's copy), and Alice's sender key reaches the lost state only.
/// Bob is restored; `msg` is Alice's next group message. Returns the backup too.
fn stale_unrotated(label: &str) -> (World, DeviceAddress, DeviceAddress, Vec<u8>, Vec<u8>) {
    use ratchetry::testing::hooks::before_pq_ratchet;
    use ratchetry::x3dh::OneTimePreKeys;
    let (mut w, [alice, bob], [a1, b1]) = World::phones::<2>(label);
    w.set_members(G, &[alice, bob]);
    before_pq_ratchet(w.devices.get_mut(&b1).unwrap(), &OneTimePreKeys::default());
    w.persist(b1);
    for (from, to) in [(b1, alice), (a1, bob), (b1, alice), (a1, bob)] {
        let o = w.send(from, to, b"talk");
        assert!(w.reads(&o, b"talk"));
    }
    assert!(w.device(a1).pq_ratchet_epoch(&b1).is_some());
    let backup = w.device(b1).to_bytes().to_vec();
    for (from, to) in [(b1, alice), (a1, bob)] {
        let o = w.send(from, to, b"lost talk");
        assert!(w.reads(&o, b"lost talk"));
    }
    let m1 = w.send_group(a1, G, b"after the backup");
    w.deliver_ok(&m1);
    later(&mut w);
    restore(&mut w, b1, &backup);
    let m2 = w.send_group(a1, G, b"second");
    let msg = World::group_envelope_for(&m2, b1);
    assert!(w.receive(b1, &msg).is_err());
    (w, a1, b1, backup, msg)
}

/// Finding 2 (single restore): the exception keeps the first ask `SenderKeyMissing` on a
/// held session that is stale (no relay action: an honest restore from an older backup), so
/// its answer is wasted; the second ask (`NoSession`) reads, on a session from the unmarked
/// bundle: the pair leaves the ratchet anyway.
#[test]
#[ignore = "KNOWN LIMIT: an unrotated pre-ratchet requester restored from a stale backup wastes its first answer on the kept session (the PQ exception) and the second ask takes the pair off the ratchet anyway"]
fn an_unrotated_requester_restored_from_a_stale_backup_reads_by_one_ask_on_the_ratchet() {
    let (mut w, a1, b1, _, msg) = stale_unrotated("r43b unrotated stale");
    let asks = w.recover(a1, b1, &msg, b"second");
    let epochs = (
        w.device(a1).pq_ratchet_epoch(&b1).is_some(),
        w.device(b1).pq_ratchet_epoch(&a1).is_some(),
    );
    assert_eq!((asks, epochs), (Ok(1), (true, true)));
}

/// Finding 2 (the loss): the same device restored a second time from the same backup (it died
/// before acknowledging `msg`, which the server re-delivers). The second restore's first ask
/// is again kept as `SenderKeyMissing` by the exception (its kept session runs the ratchet,
/// its bundle does not), Alice answers on her current session (the first restore's new
/// session), unreadable: her third answer, and the message is lost (`RetryLimit`). Review
/// 42b's double-restore loss, back for unrotated stores, with no relay action.
#[test]
#[ignore = "KNOWN LIMIT: an unrotated pre-ratchet device restored twice from one backup loses the message (RetryLimit): the PQ exception keeps the first ask of each restore on a stale session"]
fn an_unrotated_requester_restored_twice_from_one_backup_reads_the_message() {
    let (mut w, a1, b1, backup, msg) = stale_unrotated("r43b unrotated twice");
    let first = w.recover(a1, b1, &msg, b"second");
    assert!(first.is_ok(), "{first:?}");
    later(&mut w);
    restore(&mut w, b1, &backup);
    assert!(w.receive(b1, &msg).is_err(), "the key is lost again");
    let second = w.recover(a1, b1, &msg, b"second");
    assert!(
        second.is_ok(),
        "the message is lost at the second restore: {second:?}"
    );
}

/// What the exception is for, still holding: a restored requester of a confirmed-by-nothing
/// but current held session keeps the ratchet, and both restored sides do not end on
/// classical sessions when their stores are rotated (bit 31): a double restore reads.
#[test]
fn a_rotated_device_restored_twice_from_one_backup_reads_and_keeps_the_ratchet() {
    let (mut w, a1, b1) = talked("r43b rotated twice");
    for (from, to) in [(b1, a1.account), (a1, b1.account)] {
        let o = w.send(from, to, b"talk");
        assert!(w.reads(&o, b"talk"));
    }
    let backup = w.device(b1).to_bytes().to_vec();
    for (from, to) in [(b1, a1.account), (a1, b1.account)] {
        let o = w.send(from, to, b"lost talk");
        assert!(w.reads(&o, b"lost talk"));
    }
    let m1 = w.send_group(a1, G, b"after the backup");
    w.deliver_ok(&m1);
    later(&mut w);
    restore(&mut w, b1, &backup);
    let m2 = w.send_group(a1, G, b"second");
    let msg = World::group_envelope_for(&m2, b1);
    assert!(w.receive(b1, &msg).is_err());
    assert_eq!(w.recover(a1, b1, &msg, b"second"), Ok(1));
    later(&mut w);
    restore(&mut w, b1, &backup);
    assert!(w.receive(b1, &msg).is_err());
    assert_eq!(w.recover(a1, b1, &msg, b"second"), Ok(1));
    w.converged(a1, b1, G);
}

// ---------------------------------------------------------------------------------------------
// 4. What confirms
// ---------------------------------------------------------------------------------------------

/// Once the restored phone began a chain on its kept session (it holds a sending chain), the
/// relay replays a message of Alice's that the lost state read, on a chain new to the backup:
/// it does not open as a DH step there (the restored phone's ratchet key is new) and confirms
/// nothing; the next ask goes as `NoSession`, the message is read at once, and the replayed
/// one is recovered by one ask too; the pair converges on the ratchet.
#[test]
fn a_replay_after_the_restored_phone_began_a_chain_confirms_nothing() {
    let (mut w, a1, b1) = talked("r43b replay after chain");
    let (alice, bob) = (a1.account, b1.account);
    let o = w.send(b1, alice, b"before the backup");
    w.deliver_ok(&o);
    let backup = w.device(b1).to_bytes().to_vec();
    let o = w.send(a1, bob, b"kept by the relay");
    let kept = World::envelope_to(&o, b1);
    w.deliver_ok(&o);
    let o = w.send(b1, alice, b"moved on");
    w.deliver_ok(&o);
    let m1 = w.send_group(a1, G, b"after the backup");
    w.deliver_ok(&m1);
    later(&mut w);
    restore(&mut w, b1, &backup);
    let o = w.send(b1, alice, b"hello again");
    let _ = w.deliver(&o);
    let replay = w.receive(b1, &kept);
    let m2 = w.send_group(a1, G, b"second");
    let msg = World::group_envelope_for(&m2, b1);
    assert!(w.receive(b1, &msg).is_err());
    assert_eq!(
        w.asks_as(b1, a1, &msg),
        RetryReason::NoSession,
        "confirmed by a replay ({replay:?})"
    );
    assert_eq!(w.recover(a1, b1, &msg, b"second"), Ok(1));
    w.converged(a1, b1, G);
}

/// Companions of one account: the phone's companion restored from a backup while its phone
/// wrote on; the companion's own group message from the phone is recovered by one ask (the
/// sessions are unconfirmed: `NoSession`), and the two converge on the ratchet.
#[test]
fn a_restored_companion_reads_its_phones_group_message_by_one_ask() {
    let mut w = World::new("r43b companion");
    let alice = w.account(1);
    let bob = w.account(0);
    w.publish_all();
    w.set_members(G, &[alice, bob]);
    let (a1, a2) = (World::addr(alice, 1), World::addr(alice, 2));
    for (from, to) in [(a1, bob), (a2, bob), (a1, bob), (a2, bob)] {
        let o = w.send(from, to, b"talk");
        w.deliver_ok(&o);
    }
    let backup = w.device(a2).to_bytes().to_vec();
    let o = w.send(a2, bob, b"lost");
    w.deliver_ok(&o);
    let o = w.send(a1, bob, b"phone");
    w.deliver_ok(&o);
    let m1 = w.send_group(a1, G, b"after the backup");
    w.deliver_ok(&m1);
    later(&mut w);
    restore(&mut w, a2, &backup);
    // The restored companion awaits a list of its own account issued since: the primary
    // links another laptop and publishes.
    assert!(w.device(a2).awaiting_own_list());
    let _a3 = w.link(&alice);
    w.publish(&alice);
    assert!(!w.device(a2).awaiting_own_list());
    let m2 = w.send_group(a1, G, b"second");
    let msg = World::group_envelope_for(&m2, a2);
    assert!(w.receive(a2, &msg).is_err());
    assert_eq!(w.recover(a1, a2, &msg, b"second"), Ok(1));
    pq_both(&mut w, a1, a2);
}

/// The relay's three pairwise re-wraps of `msg`'s salt (each in the header of a fresh pairwise
/// envelope of `a1` to `b1`), each asked for through the driver and answered with `text`:
/// what `b1` made of each answer envelope (`Ok(true)` a body read).
fn rewrap_asks(
    w: &mut World,
    a1: DeviceAddress,
    b1: DeviceAddress,
    msg: &[u8],
    text: &[u8],
) -> Vec<Result<bool, Error>> {
    let group_salt: [u8; 16] = msg[GROUP_SALT].try_into().unwrap();
    let mut got = Vec::new();
    for i in 0..3u8 {
        let o = w.send(a1, b1.account, &[b'q', i]);
        let pairwise = World::envelope_to(&o, b1);
        let salt = w.pairwise_salt(b1, &pairwise);
        let at = pairwise.windows(16).position(|s| s == salt).unwrap();
        let mut forged = pairwise.clone();
        forged[at..at + 16].copy_from_slice(&group_salt);
        let asked = w.step(b1, &forged);
        // Nothing is dropped: the genuine envelope reads after its forged copy.
        let genuine = w
            .receive(b1, &pairwise)
            .expect("the genuine envelope reads");
        assert_eq!(body(&genuine), Some(&[b'q', i][..]));
        let Inbound::AskAgain { request, .. } = asked else {
            continue;
        };
        let Ok(Received::RetryRequest(req)) = w.receive(a1, &request) else {
            continue;
        };
        let a = w.answer(a1, &req, text);
        got.extend(
            w.deliver(&a)
                .into_iter()
                .map(|(_, r)| r.map(|r| body(&r).is_some())),
        );
    }
    got
}

/// The re-wrap of finding 1 on a restored phone whose group the app confirmed at once: no
/// envelope dropped, only three injected; the group message whose key the backup lacks is lost.
#[test]
fn a_pairwise_rewrap_does_not_lose_a_restored_devices_group_message() {
    let (mut w, a1, b1, msg) = unconfirmed_group("r43b rewrap restored");
    confirm_groups(&mut w, b1);
    assert_eq!(w.step(b1, &msg), Inbound::Hold { from: a1 });
    let got = rewrap_asks(&mut w, a1, b1, &msg, b"second");
    let read_by_rewrap = got.iter().any(|r| r == &Ok(true));
    let now = w.now;
    let genuine = w.device(b1).receive(now, &msg).is_ok();
    let recovered = read_by_rewrap || genuine || w.recover(a1, b1, &msg, b"second").is_ok();
    assert!(recovered, "lost: {got:?}");
}

/// Control for finding 1: without the re-wraps, that message is read by one ask.
#[test]
fn without_rewraps_the_restored_devices_group_message_reads_by_one_ask() {
    let (mut w, a1, b1, msg) = unconfirmed_group("r43b rewrap control");
    confirm_groups(&mut w, b1);
    assert_eq!(w.step(b1, &msg), Inbound::Hold { from: a1 });
    assert_eq!(w.recover(a1, b1, &msg, b"second"), Ok(1));
    w.converged(a1, b1, G);
}
