//! Review 43: commit 6d68780 attacked ("sessions kept at a restore are unconfirmed until the
//! peer answers in them", PROTOCOL.md 18.6, 19.1, 19.4). The adversary is the relay (drops,
//! holds back, replays, re-delivers), with at-least-once delivery in mind: a phone that dies
//! after reading an envelope and before acknowledging it gets that envelope again once
//! restored, so "replayed" below also covers an honest server.
//!
//! A passing test pins what holds; a test marked `#[ignore = "KNOWN LIMIT: ..."]` asserts
//! what the library does not give (run with `--ignored`: it fails). The findings below failed
//! on the reviewed commit; how each was resolved at stop 43 follows it.
//!
//! Pinned:
//! - a phone restored from a backup older than its peer's current chains asks for a sender key
//!   as `NoSession`, reads the answer by the first ask, spends no uploaded prekey, and the pair
//!   converges (direct and group both ways, every session on the post-quantum ratchet)
//!   (`a_restored_phone_asks_as_no_session_and_reads_by_the_first_ask`);
//! - what does not confirm (since stop 43's fix): a direct message on the peer's *current*
//!   chain that the backup opens by a DH step, and a retry answer read; the next ask goes as
//!   `NoSession` and still reads at once
//!   (`a_chain_the_backup_can_open_confirms_nothing_and_the_first_ask_reads`,
//!   `a_read_answer_alone_does_not_confirm_and_the_next_ask_reads_at_once`,
//!   `a_direct_message_after_a_restore_reads_by_one_ask`: `RestoredFromBackup` for an
//!   `AuthenticationFailed` direct message);
//! - the mark persists exactly: through `take_changes` units and `from_records`, whole-state
//!   bytes, a backup of the restored (still unconfirmed) phone restored again, `Device::restore`
//!   of a stale snapshot, and `into_restored` of records; `restore` of a snapshot that is not
//!   stale marks nothing (`the_mark_survives_restarts_bytes_and_second_restores`,
//!   `a_snapshot_that_is_not_stale_keeps_its_sessions_confirmed`);
//! - the `0x08` count byte: written `0x80 | n` while unconfirmed; `n` loads confirmed and
//!   `0x80 | n` unconfirmed, from records and from whole-state bytes alike; `0x80`, `0x84`,
//!   `0xff`, `0x04`, `0x00`, and a count one above the sessions held (with and without the bit)
//!   are refused with the same typed `DecodeError` both ways, no panic
//!   (`the_sessions_count_byte_loads_or_is_refused_as_protocol_19_1_says`);
//! - a restored *sender* whose rotated key rides its stale session: the peer's
//!   `SenderKeyMissing` ask is answered on a new session and reads by the first ask
//!   (`a_restored_sender_answers_a_sender_key_ask_on_a_new_session`); both sides restored
//!   (`both_sides_restored_recover_by_one_ask_each_and_converge`); a restored companion of
//!   its own account is `AwaitingOwnList` until a list issued since arrives, then recovers its
//!   phone's group message by one `NoSession` ask and converges with it
//!   (`a_restored_companion_recovers_its_own_phones_group_message_by_one_ask`); a call key
//!   after a restore reads by one ask (`a_call_key_after_a_restore_reads_by_one_ask`);
//! - after the replay of finding 1, a single restore still reads the message within the limit
//!   (by its second ask) and converges
//!   (`after_a_replay_one_restore_still_reads_within_the_limit_and_converges`).
//!
//! Findings (each test named fails on the reviewed code):
//! 1. **Medium (availability; defeats the commit's purpose): any old message the backup can
//!    still open confirms the restored sessions.** `SessionSet::advance` clears the mark on
//!    any DH step (`Opened::starts_chain`), `push_new` on any responder session, and
//!    `push_requested` on any retry answer; none checks that the peer's chain was begun
//!    *since the restore*, as 19.4 says. A message of the peer that the lost state read after
//!    the backup, in a chain answering the backup's own sending chain, still opens at the
//!    restored copy by a DH step (its read ring rolled back); replayed (or honestly
//!    re-delivered because the dead phone never acknowledged it), it clears the mark although
//!    the peer's current session moved on. The next `SenderKeyMissing` ask goes as such and is
//!    answered on the peer's current session, which cannot open: one of the three answers is
//!    wasted. Done before each of two restores from one backup, the message is lost
//!    (`RetryLimit` at the sender after 2 + 1 answers) -- exactly review 42b's limit the
//!    commit meant to close. The same holds for a replayed pre-key message of a session begun
//!    after the backup (the backup held none with the peer; the replay installs a stale
//!    responder session, confirmed) and for a replayed retry answer whose request's keys the
//!    backup still holds. Fix direction: confirm only on evidence bound to post-restore
//!    material -- a DH step answering a sending ratchet key generated after the restore, a
//!    retry answer to a request made after it, a pre-key message naming a one-time key minted
//!    after it. (`a_replayed_old_chain_message_does_not_confirm_a_restored_session`,
//!    `a_replay_before_each_restore_does_not_lose_the_message`,
//!    `a_replayed_old_prekey_message_does_not_confirm_a_restored_device`,
//!    `a_replayed_retry_answer_does_not_confirm_a_restored_device`)
//!    **Fixed**, but for the pre-key case: only a DH step in a session that holds a sending
//!    chain confirms (the restore dropped every sending chain, so the peer's new chain answers
//!    one begun since); no new session or answer confirms. The pre-key case stays a **known
//!    limit** where the restored device held no session with the sender (a set made after the
//!    restore is not marked): the backup forgot the base keys it saw after it, so it cannot
//!    tell the replay from a new session; it costs one answer (ignored test).
//! 2. **Low (availability): the answerer's own answer confirms its sessions.**
//!    `push_requested` clears the mark on "either side" (19.4 says so), also at a restored
//!    device that merely *sent* an answer on a new session: the peer has not read it (the
//!    relay dropped or holds it) and its current session is still the old one. The restored
//!    device's next `SenderKeyMissing` ask then goes as such and is answered on a session it
//!    cannot read: one answer wasted by a single dropped envelope (that of another message).
//!    Keep the set unconfirmed until the peer replies in the answer's session.
//!    (`a_lost_answer_of_the_restored_side_does_not_confirm_its_sessions`) **Fixed** (as 1).
//! 3. **Low (post-quantum downgrade, no drop needed): a restore alone moves an unrotated
//!    pre-ratchet requester's pairs off the ratchet.** Its kept session runs the ratchet and
//!    is still the peer's current one, but the mark sends the first sender-key ask as
//!    `NoSession`, whose answer starts a session from the request's unmarked bundle and
//!    displaces the ratchet session at both ends (`push_requested` drops stronger sessions).
//!    SECURITY.md's known limit (a retry's answer follows the requester's bundle) needed a
//!    tampered or dropped envelope before; now an honest restore plus one late key suffices.
//!    The sender side too: a restored sender answers a pre-ratchet peer's first
//!    `SenderKeyMissing` ask on a new session from the peer's unmarked bundle, though its
//!    held session (running the ratchet) would open there: one dropped distribution now takes
//!    the pair off the ratchet, where the known limit needed two drops.
//!    (`a_restore_does_not_move_an_unrotated_requesters_pair_off_the_ratchet`,
//!    `a_restored_sender_does_not_move_an_unrotated_peers_pair_off_the_ratchet`) **Fixed**:
//!    the mark does not escalate an ask, nor skip the held session in an answer, where the
//!    held session runs the ratchet and a session from the request's bundle would not.
//! 4. **Low (availability, pre-existing, restore lifecycle): asking for a group message of an
//!    unconfirmed group spends answers it cannot read.** `request_retry` does not check group
//!    confirmation (receive does: `GroupUnconfirmed`). An app that held a `Hold` envelope from
//!    before the restore and asks on its timer before setting the members gets three answers
//!    refused as `GroupUnconfirmed`, and once it sets them the message is `RetryLimit`: lost.
//!    `request_retry` should refuse it as `GroupUnconfirmed` with nothing spent.
//!    (`asking_for_a_message_of_an_unconfirmed_group_spends_no_answer`) **Fixed**: refused as
//!    `GroupUnconfirmed`, nothing changed.

mod support;

use ratchetry::calls::{Call, CallConfig, CallKind};
use ratchetry::devices::DeviceAddress;
use ratchetry::fanout::{Device, Outgoing, Received, RetryReason};
use ratchetry::group::GroupId;
use ratchetry::{DecodeError, Error, FanoutError, Timestamp};
use support::{Store, World, body};

const G: GroupId = GroupId([0x43; 32]);

/// Restores `b1` from `backup` at the world's clock, as an app does: its own list fetched,
/// the group's members set again.
fn restore(w: &mut World, b1: DeviceAddress, backup: &[u8]) {
    let now = w.now;
    *w.device(b1) = Device::restore_from_backup(backup, now).unwrap();
    w.persist(b1);
    w.publish(&b1.account);
    let members: Vec<_> = w.primaries.iter().map(|p| p.account()).collect();
    w.device(b1).set_group_members(G, &members).unwrap();
    w.persist(b1);
}

/// The app sets the restored device's groups' members again (19.4).
fn confirm_groups(w: &mut World, b1: DeviceAddress) {
    let members: Vec<_> = w.primaries.iter().map(|p| p.account()).collect();
    w.device(b1).set_group_members(G, &members).unwrap();
    w.persist(b1);
}

fn later(w: &mut World) {
    w.now = Timestamp(w.now.0 + 60_000);
}

/// The scene: Alice and Bob (a phone each) in `G`, talked both ways. Bob writes, and the
/// backup is taken before Alice answers; Alice's answer (a chain the backup can open, by a
/// DH step) is read by Bob's lost state and kept by the relay (`held`). The pair moves on
/// (Bob writes again, Alice sends her sender key for `G`), then Bob's phone is restored from
/// the backup, and Alice's next group message (`msg`, "second") is `SenderKeyMissing` there.
struct Scene {
    w: World,
    a1: DeviceAddress,
    b1: DeviceAddress,
    backup: Vec<u8>,
    held: Vec<u8>,
    msg: Vec<u8>,
}

fn scene(label: &str) -> Scene {
    let (mut w, [alice, bob], [a1, b1]) = World::phones::<2>(label);
    for (from, to) in [(a1, bob), (b1, alice), (a1, bob)] {
        let o = w.send(from, to, b"warm up");
        w.deliver_ok(&o);
    }
    w.set_members(G, &[alice, bob]);
    let o = w.send(b1, alice, b"before the backup");
    w.deliver_ok(&o);
    let backup = w.device(b1).to_bytes().to_vec();
    let o = w.send(a1, bob, b"kept by the relay");
    let held = World::envelope_to(&o, b1);
    w.deliver_ok(&o);
    let o = w.send(b1, alice, b"moved on");
    w.deliver_ok(&o);
    let m1 = w.send_group(a1, G, b"after the backup");
    w.deliver_ok(&m1);
    later(&mut w);
    restore(&mut w, b1, &backup);
    let m2 = w.send_group(a1, G, b"second");
    let msg = World::group_envelope_for(&m2, b1);
    let now = w.now;
    assert!(matches!(
        w.device(b1).receive(now, &msg),
        Err(Error::Fanout(FanoutError::SenderKeyMissing { .. }))
    ));
    Scene {
        w,
        a1,
        b1,
        backup,
        held,
        msg,
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Clearing the mark
// ---------------------------------------------------------------------------------------------

/// Without the relay's replay, the restored phone's first ask goes as `NoSession` and reads.
#[test]
fn a_restored_phone_asks_as_no_session_and_reads_by_the_first_ask() {
    let Scene {
        mut w, a1, b1, msg, ..
    } = scene("r43 honest");
    let pools = (
        w.device(b1).one_time_prekeys_remaining(),
        w.device(b1).one_time_kem_prekeys_remaining(),
    );
    assert_eq!(w.asks_as(b1, a1, &msg), RetryReason::NoSession);
    assert_eq!(w.recover(a1, b1, &msg, b"second"), Ok(1));
    assert_eq!(
        pools,
        (
            w.device(b1).one_time_prekeys_remaining(),
            w.device(b1).one_time_kem_prekeys_remaining(),
        ),
        "the ask spent no uploaded prekey"
    );
    w.converged(a1, b1, G);
}

/// The relay replays `held` to the restored phone: it opens by a DH step (the backup's
/// sending chain was the one Alice answered), which is not Alice's current chain.
#[test]
fn a_replayed_old_chain_message_does_not_confirm_a_restored_session() {
    let Scene {
        mut w,
        a1,
        b1,
        held,
        msg,
        ..
    } = scene("r43 replay confirms");
    let got = w
        .receive(b1, &held)
        .expect("the backup opens the held chain");
    assert_eq!(body(&got), Some(&b"kept by the relay"[..]));
    assert_eq!(
        w.asks_as(b1, a1, &msg),
        RetryReason::NoSession,
        "Alice's current session is not the one the replay opened"
    );
    assert_eq!(w.recover(a1, b1, &msg, b"second"), Ok(1));
}

/// The same replay before each of two restores from one backup: the message is lost
/// (`RetryLimit` at Alice) where, without the replay, each restore reads it by one ask.
#[test]
fn a_replay_before_each_restore_does_not_lose_the_message() {
    let Scene {
        mut w,
        a1,
        b1,
        backup,
        held,
        msg,
    } = scene("r43 replay twice");
    assert!(w.receive(b1, &held).is_ok());
    let first = w.recover(a1, b1, &msg, b"second");
    assert!(first.is_ok(), "{first:?}");
    later(&mut w);
    restore(&mut w, b1, &backup);
    assert!(w.receive(b1, &held).is_ok());
    let second = w.recover(a1, b1, &msg, b"second");
    assert_eq!((first, second), (Ok(1), Ok(1)));
}

/// What holds despite that replay: one restore still reads the message within the limit (by
/// the second ask today: the first is answered on Alice's current session), and the pair
/// converges on the ratchet.
#[test]
fn after_a_replay_one_restore_still_reads_within_the_limit_and_converges() {
    let Scene {
        mut w,
        a1,
        b1,
        held,
        msg,
        ..
    } = scene("r43 replay cost");
    assert!(w.receive(b1, &held).is_ok());
    let asks = w.recover(a1, b1, &msg, b"second");
    assert!(matches!(asks, Ok(1 | 2)), "{asks:?}");
    w.converged(a1, b1, G);
}

/// Bob's backup holds no session with Alice; her first message to Bob (a pre-key message)
/// reached his lost state after the backup and is kept by the relay; the pair moved on and
/// Alice sent her sender key. The restored phone holds no session with Alice until the relay
/// replays that pre-key message: a responder session, "a session the peer began", which the
/// restored phone takes as current and confirmed, though Alice's current is far ahead of it.
/// A known limit since stop 43: the backup forgot the base keys it saw after it, so the
/// replayed message is a new session to it, on a device that holds none with Alice to mark.
#[test]
#[ignore = "KNOWN LIMIT (PROTOCOL.md 19.4): a pre-key message the lost state read, replayed to a restored device that holds no session with its sender, starts a session taken as confirmed; its next sender-key ask wastes one answer"]
fn a_replayed_old_prekey_message_does_not_confirm_a_restored_device() {
    let (mut w, [alice, bob], [a1, b1]) = World::phones::<2>("r43 replayed prekey");
    w.set_members(G, &[alice, bob]);
    let backup = w.device(b1).to_bytes().to_vec();
    let o = w.send(a1, bob, b"first contact");
    let held = World::envelope_to(&o, b1);
    w.deliver_ok(&o);
    for (from, to) in [(b1, alice), (a1, bob), (b1, alice)] {
        let o = w.send(from, to, b"moved on");
        w.deliver_ok(&o);
    }
    let m1 = w.send_group(a1, G, b"after the backup");
    w.deliver_ok(&m1);
    later(&mut w);
    restore(&mut w, b1, &backup);
    assert!(!w.device(b1).has_session(&a1));
    let m2 = w.send_group(a1, G, b"second");
    let msg = World::group_envelope_for(&m2, b1);
    assert!(w.receive(b1, &msg).is_err());
    let got = w
        .receive(b1, &held)
        .expect("the backup opens the old pre-key message");
    assert_eq!(body(&got), Some(&b"first contact"[..]));
    assert_eq!(
        w.asks_as(b1, a1, &msg),
        RetryReason::NoSession,
        "the replayed session is not Alice's current"
    );
    assert_eq!(w.recover(a1, b1, &msg, b"second"), Ok(1));
}

/// The restored phone sends to the group: its key rotates and the distribution rides its
/// stale (unconfirmed) session, which Alice cannot open. Alice asks for the group message
/// (`SenderKeyMissing`, her session is confirmed); the restored phone answers on a new
/// session (unconfirmed: 18.6) and that clears its own mark ("either side"), but the relay
/// drops the answer. Alice's current session is still the old one: the restored phone's next
/// sender-key ask should not go on a session Alice does not hold.
#[test]
fn a_lost_answer_of_the_restored_side_does_not_confirm_its_sessions() {
    let Scene {
        mut w, a1, b1, msg, ..
    } = scene("r43 lost answer");
    let mine = w.send_group(b1, G, b"from the restored phone");
    let to_alice = World::group_envelope_for(&mine, a1);
    let got = w.deliver(&mine);
    assert!(
        got.iter()
            .all(|(_, r)| r.as_ref().ok().and_then(body).is_none()),
        "the stale session's distribution does not open at Alice: {got:?}"
    );
    let (to, bytes) = w
        .request_retry(a1, &to_alice, RetryReason::SenderKeyMissing)
        .unwrap();
    assert_eq!(to, b1);
    let Ok(Received::RetryRequest(req)) = w.receive(b1, &bytes) else {
        panic!("the restored phone reads Alice's request")
    };
    assert_eq!(req.reason, RetryReason::SenderKeyMissing);
    let _dropped = w.answer(b1, &req, b"from the restored phone");
    assert_eq!(
        w.asks_as(b1, a1, &msg),
        RetryReason::NoSession,
        "Alice never read the session the restored phone answered on"
    );
    assert_eq!(w.recover(a1, b1, &msg, b"second"), Ok(1));
}

// ---------------------------------------------------------------------------------------------
// 1b. Honest confirmation
// ---------------------------------------------------------------------------------------------

/// Alice's current chain is the one the backup can open (she answered the backup's chain and
/// nothing moved since): her next direct message opens at the restored phone by a DH step,
/// but that confirms nothing (a replayed message of the lost state opens the same way: the
/// findings below), so the sender-key ask still goes as `NoSession`, reads at once, and the
/// pair keeps the post-quantum ratchet. (Review 43 pinned the mark cleared here; stop 43's
/// fix confirms only a chain answering one the restored phone began since.)
#[test]
fn a_chain_the_backup_can_open_confirms_nothing_and_the_first_ask_reads() {
    let (mut w, [alice, bob], [a1, b1]) = World::phones::<2>("r43 honest confirm");
    for (from, to) in [(a1, bob), (b1, alice), (a1, bob)] {
        let o = w.send(from, to, b"warm up");
        w.deliver_ok(&o);
    }
    w.set_members(G, &[alice, bob]);
    let o = w.send(b1, alice, b"before the backup");
    w.deliver_ok(&o);
    let backup = w.device(b1).to_bytes().to_vec();
    let m1 = w.send_group(a1, G, b"after the backup");
    w.deliver_ok(&m1);
    later(&mut w);
    restore(&mut w, b1, &backup);
    let m2 = w.send_group(a1, G, b"second");
    let msg = World::group_envelope_for(&m2, b1);
    assert!(w.receive(b1, &msg).is_err());
    assert_eq!(w.asks_as(b1, a1, &msg), RetryReason::NoSession);
    let o = w.send(a1, bob, b"on her current chain");
    assert!(w.reads(&o, b"on her current chain"));
    w.restart(b1);
    assert_eq!(w.asks_as(b1, a1, &msg), RetryReason::NoSession);
    assert_eq!(w.recover(a1, b1, &msg, b"second"), Ok(1));
    w.converged(a1, b1, G);
}

/// A retry's answer read by the restored phone does not confirm by itself (a replayed answer
/// opens the same way): after the first (`NoSession`) ask reads, a second group whose key the
/// relay dropped is asked for as `NoSession` again, and its answer reads at once.
#[test]
fn a_read_answer_alone_does_not_confirm_and_the_next_ask_reads_at_once() {
    let Scene {
        mut w, a1, b1, msg, ..
    } = scene("r43 answer confirms");
    assert_eq!(w.recover(a1, b1, &msg, b"second"), Ok(1));
    const G2: GroupId = GroupId([0x44; 32]);
    let accounts = [a1.account, b1.account];
    for d in [a1, b1] {
        w.device(d).set_group_members(G2, &accounts).unwrap();
        w.persist(d);
    }
    let o = w.send_group(a1, G2, b"other group");
    assert!(!o.envelopes.is_empty(), "the key goes pairwise (dropped)");
    let m = World::group_envelope_for(&o, b1);
    assert!(w.receive(b1, &m).is_err());
    w.restart(b1);
    assert_eq!(w.asks_as(b1, a1, &m), RetryReason::NoSession);
    assert_eq!(w.recover(a1, b1, &m, b"other group"), Ok(1));
    w.converged(a1, b1, G);
}

// ---------------------------------------------------------------------------------------------
// 2. Persistence of the mark
// ---------------------------------------------------------------------------------------------

/// The mark survives a restart from the units written, whole-state bytes, a backup of the
/// restored phone restored again, `Device::restore` of a stale snapshot and `into_restored`
/// of records; `restore` of a snapshot that is not stale marks nothing.
#[test]
fn the_mark_survives_restarts_bytes_and_second_restores() {
    let Scene {
        mut w,
        a1,
        b1,
        backup,
        msg,
        ..
    } = scene("r43 persistence");
    w.restart(b1);
    assert_eq!(w.asks_as(b1, a1, &msg), RetryReason::NoSession);
    let restored = w.device(b1).to_bytes().to_vec();
    let again = Device::restore_from_backup(&restored, w.now).unwrap();
    *w.device(b1) = again;
    w.persist(b1);
    // A restore leaves the group unconfirmed, and a message of it is not asked for until the
    // app sets its members (finding 4).
    confirm_groups(&mut w, b1);
    assert_eq!(w.asks_as(b1, a1, &msg), RetryReason::NoSession);
    let old = Device::from_bytes(&backup).unwrap();
    let (stale, was) = Device::restore(&backup, old.state_epoch() + 5, w.now).unwrap();
    assert!(was);
    *w.device(b1) = stale;
    w.persist(b1);
    w.restart(b1);
    confirm_groups(&mut w, b1);
    assert_eq!(w.asks_as(b1, a1, &msg), RetryReason::NoSession);
    // Records restored by the app's own store, then `into_restored`.
    let mut store = Store::default();
    let mut d = Device::from_bytes(&backup).unwrap();
    store.apply(&d.take_changes(&mut w.rng));
    *w.device(b1) = store.load().into_restored(w.now);
    w.persist(b1);
    confirm_groups(&mut w, b1);
    assert_eq!(w.asks_as(b1, a1, &msg), RetryReason::NoSession);
    assert_eq!(w.recover(a1, b1, &msg, b"second"), Ok(1));
    w.converged(a1, b1, G);
}

/// `restore` given an epoch no later than the snapshot's is not a restore: the sessions stay
/// confirmed and a sender key is asked for as `SenderKeyMissing`.
#[test]
fn a_snapshot_that_is_not_stale_keeps_its_sessions_confirmed() {
    let (mut w, [alice, bob], [a1, b1]) = World::phones::<2>("r43 not stale");
    for (from, to) in [(a1, bob), (b1, alice)] {
        let o = w.send(from, to, b"talk");
        w.deliver_ok(&o);
    }
    w.set_members(G, &[alice, bob]);
    let o = w.send_group(a1, G, b"key dropped");
    let msg = World::group_envelope_for(&o, b1);
    assert!(w.receive(b1, &msg).is_err());
    let bytes = w.device(b1).to_bytes().to_vec();
    let epoch = w.device(b1).state_epoch();
    let (d, stale) = Device::restore(&bytes, epoch, w.now).unwrap();
    assert!(!stale);
    *w.device(b1) = d;
    w.persist(b1);
    assert_eq!(w.asks_as(b1, a1, &msg), RetryReason::SenderKeyMissing);
    assert_eq!(w.recover(a1, b1, &msg, b"key dropped"), Ok(1));
}

/// Whole-state bytes built from records (`0x03 0x87 ‖ u32(n) ‖ n × (blob key ‖ blob value)`).
fn state_bytes(records: &std::collections::BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<u8> {
    let mut out = vec![0x03, 0x87];
    out.extend((records.len() as u32).to_be_bytes());
    for (k, v) in records {
        out.extend((k.len() as u32).to_be_bytes());
        out.extend(k);
        out.extend((v.len() as u32).to_be_bytes());
        out.extend(v);
    }
    out
}

/// The sessions record's count byte (19.1): bit 7 set loads the sessions unconfirmed, clear
/// loads them confirmed; a count of 0 or above 3 with or without the bit (`0x80`, `0x84`,
/// `0xff`, `0x04`) and a count naming more sessions than the value holds are refused with a
/// typed error, from records and from whole-state bytes, never a panic.
#[test]
fn the_sessions_count_byte_loads_or_is_refused_as_protocol_19_1_says() {
    let Scene {
        mut w, a1, b1, msg, ..
    } = scene("r43 count byte");
    w.persist(b1);
    let records = w.stores[&b1].0.clone();
    assert_eq!(
        state_bytes(&records),
        *w.device(b1).to_bytes(),
        "the whole-state layout"
    );
    let key = records
        .keys()
        .find(|k| k[0] == 0x08)
        .expect("a sessions record")
        .clone();
    let count = records[&key][0];
    assert_eq!(count & 0x80, 0x80, "written unconfirmed: {count:#04x}");
    let n = count & 0x7f;
    assert!((1..=3).contains(&n));
    let with = |byte: u8| {
        let mut r = records.clone();
        r.get_mut(&key).unwrap()[0] = byte;
        r
    };
    let load_records = |r: &std::collections::BTreeMap<Vec<u8>, Vec<u8>>| {
        Device::from_records(r.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
    };
    for byte in [0x80, 0x84, 0xff, 0x04, 0x00, 0x80 | (n + 1), n + 1] {
        let r = with(byte);
        let from_records = load_records(&r).err();
        let from_bytes = Device::from_bytes(&state_bytes(&r)).err();
        assert!(
            matches!(
                from_records,
                Some(DecodeError::InvalidValue | DecodeError::Truncated)
            ),
            "{byte:#04x}: {from_records:?}"
        );
        assert_eq!(from_records, from_bytes, "{byte:#04x}");
    }
    // The bit cleared: a confirmed set (a sender key is asked for as such).
    let confirmed = load_records(&with(n)).unwrap();
    *w.device(b1) = confirmed;
    assert_eq!(w.asks_as(b1, a1, &msg), RetryReason::SenderKeyMissing);
    let marked = Device::from_bytes(&state_bytes(&with(n | 0x80))).unwrap();
    *w.device(b1) = marked;
    assert_eq!(w.asks_as(b1, a1, &msg), RetryReason::NoSession);
}

// ---------------------------------------------------------------------------------------------
// 3. Restored senders, companions, calls
// ---------------------------------------------------------------------------------------------

/// The restored phone sends to the group over its stale session; Alice asks for the message
/// (`SenderKeyMissing`), the restored phone answers on a new session (its held one is
/// unconfirmed) and Alice reads it by the first ask; the pair converges on the ratchet.
#[test]
fn a_restored_sender_answers_a_sender_key_ask_on_a_new_session() {
    let Scene {
        mut w, a1, b1, msg, ..
    } = scene("r43 restored sender");
    let mine = w.send_group(b1, G, b"from the restored phone");
    let to_alice = World::group_envelope_for(&mine, a1);
    let _ = w.deliver(&mine);
    assert_eq!(
        w.recover(b1, a1, &to_alice, b"from the restored phone"),
        Ok(1)
    );
    assert_eq!(w.recover(a1, b1, &msg, b"second"), Ok(1));
    w.converged(a1, b1, G);
}

// ---------------------------------------------------------------------------------------------
// 4. The rest of the restore lifecycle
// ---------------------------------------------------------------------------------------------

/// The app held Alice's group message (`Hold`) from before the restore and asks for it on its
/// timer before it set the restored group's members. Each answer is refused at the restored
/// phone (`GroupUnconfirmed`), yet each counts against the three: once the app sets the
/// members, the message can no longer be asked for. `request_retry` should refuse a group
/// envelope of an unconfirmed group, as `receive` does, before spending an answer.
#[test]
fn asking_for_a_message_of_an_unconfirmed_group_spends_no_answer() {
    let Scene {
        mut w,
        a1,
        b1,
        backup,
        msg,
        ..
    } = scene("r43 unconfirmed group ask");
    later(&mut w);
    *w.device(b1) = Device::restore_from_backup(&backup, w.now).unwrap();
    w.persist(b1);
    assert!(w.device(b1).unconfirmed_groups().any(|g| g == G));
    let now = w.now;
    assert_eq!(
        w.device(b1).receive(now, &msg).err(),
        Some(FanoutError::GroupUnconfirmed(G).into())
    );
    let mut refused = Vec::new();
    for _ in 0..3 {
        let Ok((_, bytes)) = w.request_retry(b1, &msg, RetryReason::SenderKeyMissing) else {
            break;
        };
        let Ok(Received::RetryRequest(req)) = w.receive(a1, &bytes) else {
            break;
        };
        let a = w.answer(a1, &req, b"second");
        refused.extend(w.deliver(&a).into_iter().filter_map(|(_, r)| r.err()));
    }
    confirm_groups(&mut w, b1);
    assert_eq!(
        w.recover(a1, b1, &msg, b"second"),
        Ok(1),
        "answers refused while the group was unconfirmed: {refused:?}"
    );
}

/// Alice's direct message on her current chain does not open at the restored phone
/// (`AuthenticationFailed`: her chain is newer than the backup); asked for as
/// `RestoredFromBackup`, it is answered on a new session and read by the first ask, and the
/// pair converges.
#[test]
fn a_direct_message_after_a_restore_reads_by_one_ask() {
    let Scene {
        mut w, a1, b1, msg, ..
    } = scene("r43 direct");
    let o = w.send(a1, b1.account, b"direct");
    let e = World::envelope_to(&o, b1);
    assert_eq!(
        w.receive(b1, &e).err(),
        Some(ratchetry::RatchetError::AuthenticationFailed.into())
    );
    let (to, bytes) = w
        .request_retry(b1, &e, RetryReason::RestoredFromBackup)
        .unwrap();
    assert_eq!(to, a1);
    let Ok(Received::RetryRequest(req)) = w.receive(a1, &bytes) else {
        panic!("Alice reads the request")
    };
    let a = w.answer(a1, &req, b"direct");
    assert!(w.reads(&a, b"direct"));
    // The answer alone confirms nothing (a replayed one would open the same way): the group
    // key is asked for as `NoSession`, and reads by that one ask.
    assert_eq!(w.asks_as(b1, a1, &msg), RetryReason::NoSession);
    assert_eq!(w.recover(a1, b1, &msg, b"second"), Ok(1));
    w.converged(a1, b1, G);
}

/// A call key sent by Alice after the restore rides her current session, which the restored
/// phone cannot open; asked again, `answer_call_key_retry` starts a new session and the key
/// reads by the first ask; the pair converges on the ratchet.
#[test]
fn a_call_key_after_a_restore_reads_by_one_ask() {
    let Scene {
        mut w, a1, b1, msg, ..
    } = scene("r43 call key");
    let call = Call::start(
        &mut w.rng,
        CallKind::Group,
        a1,
        &[b1],
        &CallConfig::default(),
    )
    .unwrap();
    let message = call.key_message().clone();
    let o = w
        .run(a1, |d, rng, now| d.send_call_key(rng, now, &[b1], &message))
        .unwrap();
    let e = World::envelope_to(&o, b1);
    assert!(w.receive(b1, &e).is_err(), "Alice's chain is newer");
    let (_, bytes) = w
        .request_retry(b1, &e, RetryReason::AuthenticationFailed)
        .unwrap();
    let Ok(Received::RetryRequest(req)) = w.receive(a1, &bytes) else {
        panic!("Alice reads the request")
    };
    let a = w
        .run(a1, |d, rng, now| {
            d.answer_call_key_retry(rng, now, &req, &call)
        })
        .unwrap();
    let got = w.deliver_ok(&a);
    assert!(
        got.iter()
            .any(|(_, r)| matches!(r, Received::CallKey { .. })),
        "{got:?}"
    );
    assert_eq!(w.recover(a1, b1, &msg, b"second"), Ok(1));
    w.converged(a1, b1, G);
}

/// A restored companion: Bob's laptop is restored from a backup older than its session with
/// Bob's phone (both chains stepped since). Until a list issued since the restore arrives it
/// talks to no own device (`AwaitingOwnList`); then the phone's group message, whose key
/// reached the lost laptop, is asked for as `NoSession` (its sessions with the phone are
/// unconfirmed), reads by the first ask, and the own-account pair converges.
#[test]
fn a_restored_companion_recovers_its_own_phones_group_message_by_one_ask() {
    let mut w = World::new("r43 companion");
    let alice = w.account(0);
    let bob = w.account(1);
    w.publish_all();
    w.set_members(G, &[alice, bob]);
    let (b1, b2) = (World::addr(bob, 1), World::addr(bob, 2));
    for from in [b1, b2, b1] {
        let o = w.send(from, alice, b"warm up");
        w.deliver_ok(&o);
    }
    let backup = w.device(b2).to_bytes().to_vec();
    for from in [b2, b1] {
        let o = w.send(from, alice, b"moved on");
        w.deliver_ok(&o);
    }
    let m1 = w.send_group(b1, G, b"after the backup");
    w.deliver_ok(&m1);
    later(&mut w);
    *w.device(b2) = Device::restore_from_backup(&backup, w.now).unwrap();
    w.persist(b2);
    confirm_groups(&mut w, b2);
    assert!(w.device(b2).awaiting_own_list());
    let m2 = w.send_group(b1, G, b"second");
    let msg = World::group_envelope_for(&m2, b2);
    let now = w.now;
    assert_eq!(
        w.device(b2).receive(now, &msg).err(),
        Some(FanoutError::AwaitingOwnList.into())
    );
    // The primary signs a list now (it links another laptop), and every device takes it.
    let _b3 = w.link(&bob);
    w.publish(&bob);
    assert!(!w.device(b2).awaiting_own_list());
    let _ = w.deliver(&m2);
    let now = w.now;
    assert!(matches!(
        w.device(b2).receive(now, &msg),
        Err(Error::Fanout(FanoutError::SenderKeyMissing { .. }))
    ));
    assert_eq!(w.asks_as(b2, b1, &msg), RetryReason::NoSession);
    assert_eq!(w.recover(b1, b2, &msg, b"second"), Ok(1));
    for (from, to) in [(b1, b2), (b2, b1)] {
        let o = w.send(from, alice, b"after");
        let got = w.deliver(&o);
        assert!(
            got.iter()
                .any(|(d, r)| *d == to && r.as_ref().ok().and_then(body) == Some(&b"after"[..])),
            "{to:?} reads {from:?}'s own copy: {got:?}"
        );
    }
    let o = w.send_group(b2, G, b"laptop group");
    assert!(w.reads(&o, b"laptop group"));
    for (d, peer) in [(b1, b2), (b2, b1)] {
        assert!(w.device(d).pq_ratchet_epoch(&peer).is_some(), "{d:?}");
    }
}

/// Bob's backup holds a pending retry (he asked for a direct message the relay broke) with
/// the request's one-time keys. Alice's answer (a new session from those keys) reached his
/// lost state after the backup and is kept by the relay; the pair moved on in that session.
/// Replayed to the restored phone, the answer still opens (the backup holds the keys and the
/// retry is not done), and "a retry's answer placed in them" confirms the sessions, though
/// Alice's current chain is far ahead.
#[test]
fn a_replayed_retry_answer_does_not_confirm_a_restored_device() {
    let (mut w, [alice, bob], [a1, b1]) = World::phones::<2>("r43 replayed answer");
    for (from, to) in [(a1, bob), (b1, alice)] {
        let o = w.send(from, to, b"warm up");
        w.deliver_ok(&o);
    }
    w.set_members(G, &[alice, bob]);
    let o = w.send(a1, bob, b"broken");
    let e = World::envelope_to(&o, b1);
    assert!(w.receive(b1, &support::tampered(&e)).is_err());
    let (_, bytes) = w
        .request_retry(b1, &e, RetryReason::AuthenticationFailed)
        .unwrap();
    let backup = w.device(b1).to_bytes().to_vec();
    let Ok(Received::RetryRequest(req)) = w.receive(a1, &bytes) else {
        panic!("Alice reads the request")
    };
    let a = w.answer(a1, &req, b"broken");
    let held = World::envelope_to(&a, b1);
    assert!(w.reads(&a, b"broken"));
    for (from, to) in [(b1, alice), (a1, bob), (b1, alice)] {
        let o = w.send(from, to, b"moved on");
        w.deliver_ok(&o);
    }
    let m1 = w.send_group(a1, G, b"after the backup");
    w.deliver_ok(&m1);
    later(&mut w);
    restore(&mut w, b1, &backup);
    let m2 = w.send_group(a1, G, b"second");
    let msg = World::group_envelope_for(&m2, b1);
    assert!(w.receive(b1, &msg).is_err());
    assert_eq!(w.asks_as(b1, a1, &msg), RetryReason::NoSession);
    let got = w
        .receive(b1, &held)
        .expect("the backup opens the old answer");
    assert_eq!(body(&got), Some(&b"broken"[..]));
    assert_eq!(
        w.asks_as(b1, a1, &msg),
        RetryReason::NoSession,
        "the replayed answer's session is not Alice's current"
    );
    assert_eq!(w.recover(a1, b1, &msg, b"second"), Ok(1));
}

/// Both phones restored from backups older than their session's current chains: the restored
/// Alice's rotated key rides her stale session and does not open at the restored Bob; Bob asks
/// (`NoSession`, unconfirmed), the restored Alice answers on a new session (hers are
/// unconfirmed too) and Bob reads by the first ask; then the other way round; the pair
/// converges on the ratchet.
#[test]
fn both_sides_restored_recover_by_one_ask_each_and_converge() {
    let (mut w, [alice, bob], [a1, b1]) = World::phones::<2>("r43 both restored");
    for (from, to) in [(a1, bob), (b1, alice), (a1, bob)] {
        let o = w.send(from, to, b"warm up");
        w.deliver_ok(&o);
    }
    w.set_members(G, &[alice, bob]);
    let backups = [a1, b1].map(|d| w.device(d).to_bytes().to_vec());
    for (from, to) in [(b1, alice), (a1, bob), (b1, alice), (a1, bob)] {
        let o = w.send(from, to, b"moved on");
        w.deliver_ok(&o);
    }
    for d in [a1, b1] {
        let o = w.send_group(d, G, b"keys after the backups");
        w.deliver_ok(&o);
    }
    later(&mut w);
    restore(&mut w, a1, &backups[0]);
    restore(&mut w, b1, &backups[1]);
    for (from, to) in [(a1, b1), (b1, a1)] {
        let o = w.send_group(from, G, b"after both restores");
        let msg = World::group_envelope_for(&o, to);
        let got = w.deliver(&o);
        if got
            .iter()
            .any(|(_, r)| r.as_ref().ok().and_then(body) == Some(&b"after both restores"[..]))
        {
            continue;
        }
        assert_eq!(w.asks_as(to, from, &msg), RetryReason::NoSession);
        assert_eq!(
            w.recover(from, to, &msg, b"after both restores"),
            Ok(1),
            "{to:?} asks {from:?}"
        );
    }
    w.converged(a1, b1, G);
}

/// Bob's keys come from a release before the post-quantum ratchet (not rotated yet), yet his
/// session with Alice runs it (he began it from her bundle). He is restored from a backup
/// whose copy of that session is still Alice's current (nothing stepped since); Alice's key
/// reached the lost state only. Before this change his sender-key ask was answered on that
/// session, which reads; now the mark sends it as `NoSession`, and the answer starts a session
/// from his request's unmarked bundle: the pair leaves the ratchet without any message lost,
/// dropped or tampered with (SECURITY.md's known limit needed one).
#[test]
fn a_restore_does_not_move_an_unrotated_requesters_pair_off_the_ratchet() {
    use ratchetry::testing::hooks::before_pq_ratchet;
    use ratchetry::x3dh::OneTimePreKeys;
    let (mut w, [alice, bob], [a1, b1]) = World::phones::<2>("r43 pq restore");
    w.set_members(G, &[alice, bob]);
    before_pq_ratchet(w.devices.get_mut(&b1).unwrap(), &OneTimePreKeys::default());
    w.persist(b1);
    for (from, to) in [(b1, alice), (a1, bob), (b1, alice), (a1, bob)] {
        let o = w.send(from, to, b"talk");
        assert!(w.reads(&o, b"talk"));
    }
    assert!(w.device(a1).pq_ratchet_epoch(&b1).is_some());
    let backup = w.device(b1).to_bytes().to_vec();
    let m1 = w.send_group(a1, G, b"after the backup");
    w.deliver_ok(&m1);
    later(&mut w);
    restore(&mut w, b1, &backup);
    assert!(w.device(b1).pq_ratchet_epoch(&a1).is_some());
    // The held session is Alice's current: her next direct message opens there (on copies).
    let now = w.now;
    let mut alice_copy = Device::from_bytes(&w.device(a1).to_bytes()).unwrap();
    let mut bob_copy = Device::from_bytes(&w.device(b1).to_bytes()).unwrap();
    let Ok(Outgoing::Ready(o)) = alice_copy.send(&mut w.rng, now, &bob, b"probe") else {
        panic!("Alice holds a session")
    };
    assert!(bob_copy.receive(now, &World::envelope_to(&o, b1)).is_ok());
    let m2 = w.send_group(a1, G, b"second");
    let msg = World::group_envelope_for(&m2, b1);
    assert!(w.receive(b1, &msg).is_err());
    assert_eq!(w.recover(a1, b1, &msg, b"second"), Ok(1));
    for (d, peer) in [(a1, b1), (b1, a1)] {
        assert!(
            w.device(d).pq_ratchet_epoch(&peer).is_some(),
            "{d:?}'s session with {peer:?} left the post-quantum ratchet"
        );
    }
}

/// The sender side of that downgrade: Alice's keys predate the ratchet (not rotated), her
/// session with Bob runs it (she began it from his bundle). Bob is restored from a backup
/// whose copy is still her current session; the relay drops the distribution of his rotated
/// key, and Alice's first ask (`SenderKeyMissing`, her session is confirmed) is answered by the
/// restored Bob on a new session from her unmarked bundle, since his held set is unconfirmed:
/// one dropped envelope takes the pair off the ratchet, where the known limit took two.
#[test]
fn a_restored_sender_does_not_move_an_unrotated_peers_pair_off_the_ratchet() {
    use ratchetry::testing::hooks::before_pq_ratchet;
    use ratchetry::x3dh::OneTimePreKeys;
    let (mut w, [alice, bob], [a1, b1]) = World::phones::<2>("r43 pq restored sender");
    w.set_members(G, &[alice, bob]);
    before_pq_ratchet(w.devices.get_mut(&a1).unwrap(), &OneTimePreKeys::default());
    w.persist(a1);
    for (from, to) in [(a1, bob), (b1, alice), (a1, bob), (b1, alice)] {
        let o = w.send(from, to, b"talk");
        assert!(w.reads(&o, b"talk"));
    }
    assert!(w.device(b1).pq_ratchet_epoch(&a1).is_some());
    let backup = w.device(b1).to_bytes().to_vec();
    later(&mut w);
    restore(&mut w, b1, &backup);
    let mine = w.send_group(b1, G, b"from the restored phone");
    assert!(!mine.envelopes.is_empty(), "the rotated key goes pairwise");
    let msg = World::group_envelope_for(&mine, a1);
    // The held session is good: the dropped distribution would open at Alice (on a copy).
    let now = w.now;
    let mut alice_copy = Device::from_bytes(&w.device(a1).to_bytes()).unwrap();
    assert!(
        alice_copy
            .receive(now, &World::envelope_to(&mine, a1))
            .is_ok()
    );
    assert!(w.receive(a1, &msg).is_err(), "its distribution was dropped");
    assert_eq!(w.recover(b1, a1, &msg, b"from the restored phone"), Ok(1));
    for (d, peer) in [(a1, b1), (b1, a1)] {
        assert!(
            w.device(d).pq_ratchet_epoch(&peer).is_some(),
            "{d:?}'s session with {peer:?} left the post-quantum ratchet"
        );
    }
}
