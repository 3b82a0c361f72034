//! Call keys: epochs, joins and leaves, SRTP derivation, and who may change a call.

use ratchetry::calls::{Call, CallConfig, CallKeyMessage, CallKind};
use ratchetry::devices::{AccountKey, DeviceAddress, DeviceId};
use ratchetry::testing::SeededRng;
use ratchetry::{DecodeError, SyncError};

fn addr(rng: &mut SeededRng, device: u32) -> DeviceAddress {
    let account = ratchetry::devices::AccountKeyPair::generate(rng).public();
    DeviceAddress {
        account,
        device: DeviceId(device),
    }
}

fn wire(m: &CallKeyMessage) -> CallKeyMessage {
    CallKeyMessage::from_bytes(&m.to_bytes()).unwrap()
}

#[test]
fn joins_refresh_forward_and_leaves_refresh() {
    let rng = &mut SeededRng::from_label("calls epochs");
    let config = CallConfig::default();
    let (a, b, c) = (addr(rng, 1), addr(rng, 1), addr(rng, 2));
    let mut call = Call::start(rng, CallKind::Group, a, &[b], &config).unwrap();
    assert_eq!(call.participants().len(), 2);
    assert_eq!(call.manager(), a);
    let epoch0 = call.key_message().clone();
    let a0 = call.srtp_keys(&a).unwrap();
    assert_ne!(a0, call.srtp_keys(&b).unwrap());
    assert_eq!(a0.master_key().len(), 32);
    assert_eq!(a0.master_salt().len(), 12);
    assert_eq!(call.srtp_keys(&c).err(), Some(SyncError::NotInCall));

    // B learns the call from the manager's key message and derives the same keys.
    let mut bob = Call::from_key_message(b, &a, wire(&epoch0), &config).unwrap();
    assert_eq!(bob.srtp_keys(&a).unwrap(), a0);

    // C joins: epoch 1. C gets only epoch 1, whose keys differ from epoch 0's.
    let epoch1 = call.join(rng, c, &config).unwrap();
    let carol = Call::from_key_message(c, &a, epoch1.clone(), &config).unwrap();
    assert_eq!(carol.epoch(), 1);
    assert_ne!(carol.srtp_keys(&a).unwrap(), a0);
    bob.apply(&a, epoch1.clone(), &config).unwrap();
    assert_eq!(bob.srtp_keys(&c).unwrap(), carol.srtp_keys(&c).unwrap());
    // Replays and old epochs change nothing.
    let before = bob.clone();
    assert_eq!(
        bob.apply(&a, epoch1.clone(), &config),
        Err(SyncError::StaleCallKey)
    );
    assert_eq!(
        bob.apply(&a, epoch0.clone(), &config),
        Err(SyncError::StaleCallKey)
    );
    assert_eq!(bob, before);

    // C leaves: epoch 2 with a fresh secret, sent to A and B only.
    let epoch2 = call.remove(rng, &c).unwrap();
    bob.apply(&a, epoch2.clone(), &config).unwrap();
    assert_eq!(bob.srtp_keys(&a).unwrap(), call.srtp_keys(&a).unwrap());
    assert_eq!(call.srtp_keys(&c).err(), Some(SyncError::NotInCall));
    assert_eq!(call.remove(rng, &c).err(), Some(SyncError::NotInCall));
    // Had C been sent the removal, it would find itself no longer listed.
    let mut carol = carol;
    assert_eq!(carol.apply(&a, epoch2, &config), Err(SyncError::NotInCall));
    let restored = Call::from_bytes(&call.to_bytes()).unwrap();
    assert_eq!(restored, call);
    assert!(format!("{:?}", a0).contains("redacted"));
    assert!(!format!("{call:?}").contains(&hex::encode(&call.key_message().to_bytes()[23..55])));
}

/// The manager removes C while it also adds D. C held epoch 0's secret; epoch 1 (the join)
/// mixes fresh randomness, so C cannot compute it from what it held, and epoch 2 (the
/// removal) is fresh anyway.
#[test]
fn a_removed_participant_cannot_compute_keys_of_a_racing_join() {
    let rng = &mut SeededRng::from_label("calls race");
    let config = CallConfig::default();
    let (a, c, d) = (addr(rng, 1), addr(rng, 1), addr(rng, 1));
    let mut call = Call::start(rng, CallKind::Group, a, &[c], &config).unwrap();
    let carol = Call::from_key_message(c, &a, call.key_message().clone(), &config).unwrap();
    let join = call.join(rng, d, &config).unwrap();
    // Two joins from the same state give different secrets: nothing determines them but the
    // manager's randomness.
    let mut twin = Call::from_bytes(&call.to_bytes()).unwrap();
    let mut replay = Call::from_bytes(&call.to_bytes()).unwrap();
    let j1 = {
        let x = addr(rng, 5);
        twin.join(rng, x, &config)
    }
    .unwrap();
    let j2 = {
        let x = addr(rng, 5);
        replay.join(rng, x, &config)
    }
    .unwrap();
    assert_ne!(j1.to_bytes()[23..55], j2.to_bytes()[23..55]);
    // What Carol could compute from epoch 0's secret alone, had the join been deterministic:
    // HKDF(salt = call id ‖ u32(1), ikm = E0). The real epoch-1 secret is something else.
    let e0 = carol.key_message().to_bytes();
    let mut salt = e0[2..18].to_vec();
    salt.extend_from_slice(&1u32.to_be_bytes());
    let mut guess = [0u8; 32];
    ratchetry::testing::raw::hkdf_sha256(
        Some(&salt),
        &e0[23..55],
        b"ratchetry v1 call ratchet",
        &mut guess,
    )
    .unwrap();
    assert_ne!(join.to_bytes()[23..55], guess);
    let dave = Call::from_key_message(d, &a, join, &config).unwrap();
    assert_ne!(carol.srtp_keys(&a).unwrap(), dave.srtp_keys(&a).unwrap());
    // The removal that follows is fresh and does not list Carol.
    let removal = call.remove(rng, &c).unwrap();
    assert_eq!(
        call.participants(),
        &{
            let mut p = vec![a, d];
            p.sort();
            p
        }[..]
    );
    assert_ne!(removal.to_bytes()[23..55], guess);
}

/// Only the manager moves the call forward, one epoch at a time: another participant (or a
/// removed one) cannot push an epoch, jump to the last epoch, or re-key the call and list
/// itself again.
#[test]
fn only_the_manager_changes_the_call_one_epoch_at_a_time() {
    let rng = &mut SeededRng::from_label("calls manager");
    let config = CallConfig::default();
    let (a, b, c) = (addr(rng, 1), addr(rng, 1), addr(rng, 1));
    let mut call = Call::start(rng, CallKind::Room, a, &[b, c], &config).unwrap();
    let mut bob = Call::from_key_message(b, &a, call.key_message().clone(), &config).unwrap();
    let mut carol = Call::from_key_message(c, &a, call.key_message().clone(), &config).unwrap();
    // A call learned from someone who is not its manager is refused.
    assert_eq!(
        Call::from_key_message(b, &c, call.key_message().clone(), &config).err(),
        Some(SyncError::NotCallManager)
    );
    // Carol is not the manager: she cannot add or remove anyone.
    let before = carol.clone();
    assert_eq!(
        {
            let x = addr(rng, 9);
            carol.join(rng, x, &config)
        }
        .err(),
        Some(SyncError::NotCallManager)
    );
    assert_eq!(carol.remove(rng, &b).err(), Some(SyncError::NotCallManager));
    assert_eq!(carol, before);

    // The manager removes Carol. Her old state still thinks she is in the call; a key message
    // she makes herself (from a forged or replayed manager message) is refused by Bob.
    let removal = call.remove(rng, &c).unwrap();
    bob.apply(&a, removal.clone(), &config).unwrap();
    let mut forged = wire(&removal);
    // Carol relays the manager's message claiming it as hers: wrong sender.
    assert_eq!(
        bob.apply(&c, forged.clone(), &config),
        Err(SyncError::NotCallManager)
    );
    // A message for the epoch after next is not applied: one epoch at a time.
    let mut ahead = call.clone();
    let _ = {
        let x = addr(rng, 7);
        ahead.join(rng, x, &config)
    }
    .unwrap();
    let two_ahead = {
        let x = addr(rng, 8);
        ahead.join(rng, x, &config)
    }
    .unwrap();
    let before = bob.clone();
    assert_eq!(
        bob.apply(&a, two_ahead, &config),
        Err(SyncError::CallKeyAhead {
            held: 1,
            offered: 3
        })
    );
    assert_eq!(bob, before);
    // Epoch u32::MAX from the manager's own address, as a tampered message: not applied, so
    // the call can still be re-keyed afterwards.
    let mut bytes = call.key_message().to_bytes().to_vec();
    bytes[19..23].copy_from_slice(&u32::MAX.to_be_bytes());
    forged = CallKeyMessage::from_bytes(&bytes).unwrap();
    assert_eq!(
        bob.apply(&a, forged, &config),
        Err(SyncError::CallKeyAhead {
            held: 1,
            offered: u32::MAX
        })
    );
    let next = call.join(rng, c, &config).unwrap();
    bob.apply(&a, next, &config).unwrap();
    assert_eq!(bob.epoch(), 2);
    // The manager cannot remove itself (it ends the call instead).
    assert_eq!(call.remove(rng, &a).err(), Some(SyncError::NotCallManager));
}

#[test]
fn caps_apply_per_kind() {
    let rng = &mut SeededRng::from_label("calls caps");
    let config = CallConfig {
        max_group_participants: 3,
        max_room_participants: 4,
    };
    let people: Vec<DeviceAddress> = (0..5).map(|i| addr(rng, i + 1)).collect();
    let mut group = Call::start(rng, CallKind::Group, people[0], &people[..3], &config).unwrap();
    let before = group.clone();
    assert_eq!(
        group.join(rng, people[3], &config).err(),
        Some(SyncError::CallFull)
    );
    assert_eq!(group, before);
    assert_eq!(
        Call::start(rng, CallKind::Group, people[0], &people[..4], &config).err(),
        Some(SyncError::CallFull)
    );
    assert!(Call::start(rng, CallKind::Room, people[0], &people[..4], &config).is_ok());
    assert_eq!(CallConfig::default().max_group_participants, 32);
    assert_eq!(CallConfig::default().max_room_participants, 50);
    // Participants must be listed in order on the wire, and include the manager.
    let mut bytes = group.key_message().to_bytes().to_vec();
    let at = bytes.len() - 36;
    let (first, last) = bytes.split_at_mut(at);
    let n = first.len();
    first[n - 36..].swap_with_slice(last);
    assert_eq!(
        CallKeyMessage::from_bytes(&bytes).err(),
        Some(DecodeError::InvalidValue)
    );
    assert!(AccountKey::from_bytes(&[0; 32]).is_err());
}

/// The manager runs two calls with Bob. A key message of one call, or of the same call under
/// another kind, is never applied to the other, even at the right epoch from the right sender:
/// the server cannot move Bob into keys of a call he did not join.
#[test]
fn a_key_message_moves_only_its_own_call_and_kind() {
    let rng = &mut SeededRng::from_label("calls crossed");
    let config = CallConfig::default();
    let (a, b) = (addr(rng, 1), addr(rng, 1));
    let mut room = Call::start(rng, CallKind::Room, a, &[b], &config).unwrap();
    let mut other = Call::start(rng, CallKind::Room, a, &[b], &config).unwrap();
    let mut bob = Call::from_key_message(b, &a, room.key_message().clone(), &config).unwrap();
    let before = bob.clone();
    let x = addr(rng, 2);
    let other_next = other.join(rng, x, &config).unwrap();
    assert_eq!(other_next.epoch(), room.epoch() + 1);
    assert_eq!(
        bob.apply(&a, other_next, &config),
        Err(SyncError::StaleCallKey)
    );
    let next = room.join(rng, x, &config).unwrap();
    let mut bytes = next.to_bytes().to_vec();
    assert_eq!(bytes[18], 3, "the kind byte: Room");
    bytes[18] = 2;
    let as_group = CallKeyMessage::from_bytes(&bytes).unwrap();
    assert_eq!(as_group.kind(), CallKind::Group);
    assert_eq!(
        bob.apply(&a, as_group, &config),
        Err(SyncError::StaleCallKey)
    );
    assert_eq!(bob, before);
    bob.apply(&a, next, &config).unwrap();
    assert_eq!(bob.epoch(), 1);
}

/// `Debug` of a call shows who this device is, the call and its epoch, never the epoch secret.
#[test]
fn call_debug_shows_the_call_not_its_secret() {
    let rng = &mut SeededRng::from_label("calls debug");
    let config = CallConfig::default();
    let (a, b) = (addr(rng, 1), addr(rng, 1));
    let call = Call::start(rng, CallKind::Group, a, &[b], &config).unwrap();
    let shown = format!("{call:?}");
    assert!(shown.starts_with("Call {"), "{shown}");
    assert!(shown.contains("epoch: 0"), "{shown}");
    // The secret follows the header, the call id, the kind and the epoch (PROTOCOL 21).
    let bytes = call.key_message().to_bytes();
    let secret = &bytes[2 + 16 + 1 + 4..2 + 16 + 1 + 4 + 32];
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let decimal = format!("{:?}", &secret[..4]);
    assert!(!shown.contains(&hex), "{shown}");
    assert!(!shown.contains(decimal.trim_end_matches(']')), "{shown}");
}

/// A key message behind the held epoch (a replay, or one the server held back) is
/// `StaleCallKey`: drop it. One more than an epoch ahead (messages missed) is `CallKeyAhead`,
/// carrying the held and the offered epoch. Neither changes the call.
#[test]
fn a_key_message_behind_is_stale_and_one_ahead_reports_both_epochs() {
    let rng = &mut SeededRng::from_label("calls behind ahead");
    let config = CallConfig::default();
    let (a, b) = (addr(rng, 1), addr(rng, 1));
    let mut call = Call::start(rng, CallKind::Group, a, &[b], &config).unwrap();
    let mut bob = Call::from_key_message(b, &a, call.key_message().clone(), &config).unwrap();
    let mut epochs = vec![call.key_message().clone()];
    for device in 2..5 {
        let x = addr(rng, device);
        epochs.push(call.join(rng, x, &config).unwrap());
    }
    bob.apply(&a, wire(&epochs[1]), &config).unwrap();
    let before = bob.clone();
    // Behind or equal: an old message.
    for old in &epochs[..2] {
        assert_eq!(
            bob.apply(&a, wire(old), &config),
            Err(SyncError::StaleCallKey)
        );
    }
    // Two ahead: a missed epoch, said with numbers.
    let ahead = bob.apply(&a, wire(&epochs[3]), &config);
    assert_eq!(
        ahead,
        Err(SyncError::CallKeyAhead {
            held: 1,
            offered: 3
        })
    );
    assert_eq!(bob, before);
    let shown = ahead.unwrap_err().to_string();
    assert!(shown.contains('1') && shown.contains('3'), "{shown}");
    assert_eq!(
        ratchetry::Error::from(SyncError::CallKeyAhead {
            held: 1,
            offered: 3
        }),
        ratchetry::Error::Sync(SyncError::CallKeyAhead {
            held: 1,
            offered: 3
        })
    );
    // The next one still applies.
    bob.apply(&a, wire(&epochs[2]), &config).unwrap();
    assert_eq!(bob.epoch(), 2);
}

/// What the docs tell an app to do with a key message for a call it holds: apply it; if it is
/// ahead, catch up to it; anything else (an old message, a forgery) is dropped.
fn follow(
    call: &mut Call,
    from: &DeviceAddress,
    message: &CallKeyMessage,
    config: &CallConfig,
) -> Result<(), SyncError> {
    match call.apply(from, wire(message), config) {
        Err(SyncError::CallKeyAhead { .. }) => call.catch_up(from, wire(message), config),
        other => other,
    }
}

/// The manager adds Dave (epoch 1, sent to Carol too) and then removes Carol (epoch 2). The
/// server hands Bob the removal first and the join second. Bob catches up to epoch 2 and the
/// join is old news: he never goes back to epoch 1, whose secret Carol holds.
#[test]
fn a_server_reordering_join_and_remove_cannot_roll_a_participant_back() {
    let rng = &mut SeededRng::from_label("calls reorder");
    let config = CallConfig::default();
    let (a, b, c, d) = (addr(rng, 1), addr(rng, 1), addr(rng, 1), addr(rng, 1));
    let mut call = Call::start(rng, CallKind::Group, a, &[b, c], &config).unwrap();
    let epoch0 = call.key_message().clone();
    let mut bob = Call::from_key_message(b, &a, wire(&epoch0), &config).unwrap();
    let mut carol = Call::from_key_message(c, &a, wire(&epoch0), &config).unwrap();
    let join = call.join(rng, d, &config).unwrap();
    let removal = call.remove(rng, &c).unwrap();
    carol.apply(&a, wire(&join), &config).unwrap();

    // The server delivers the removal, then the join, then epoch 0 again.
    assert_eq!(
        bob.apply(&a, wire(&removal), &config),
        Err(SyncError::CallKeyAhead {
            held: 0,
            offered: 2
        })
    );
    follow(&mut bob, &a, &removal, &config).unwrap();
    for old in [&join, &epoch0] {
        let before = bob.clone();
        assert_eq!(
            follow(&mut bob, &a, old, &config),
            Err(SyncError::StaleCallKey)
        );
        assert_eq!(
            bob.catch_up(&a, wire(old), &config),
            Err(SyncError::StaleCallKey)
        );
        assert_eq!(bob, before);
    }
    assert_eq!(bob.epoch(), 2);
    assert_eq!(bob.key_message(), call.key_message());
    // Bob sends under the manager's current keys, which Carol cannot derive.
    let bobs = bob.srtp_keys(&b).unwrap();
    assert_eq!(bobs, call.srtp_keys(&b).unwrap());
    assert_ne!(bobs, carol.srtp_keys(&b).unwrap());
}

/// `catch_up` takes a held call to any newer epoch, and only that: from the call's manager,
/// naming that manager, of the same call and kind, strictly newer, still listing this device,
/// within the cap. Every refusal leaves the call as it was.
#[test]
fn catching_up_moves_only_forward_within_the_same_call_from_its_manager() {
    let rng = &mut SeededRng::from_label("calls catch up");
    let config = CallConfig::default();
    let (a, b, c) = (addr(rng, 1), addr(rng, 1), addr(rng, 1));
    let mut call = Call::start(rng, CallKind::Group, a, &[b, c], &config).unwrap();
    let mut other = Call::start(rng, CallKind::Group, a, &[b, c], &config).unwrap();
    let epoch0 = call.key_message().clone();
    let mut bob = Call::from_key_message(b, &a, wire(&epoch0), &config).unwrap();
    let mut epochs = vec![epoch0];
    for device in 2..6 {
        let x = addr(rng, device);
        epochs.push(call.join(rng, x, &config).unwrap());
    }
    bob.catch_up(&a, wire(&epochs[2]), &config).unwrap();
    assert_eq!(bob.epoch(), 2);
    let before = bob.clone();
    let refused = |bob: &mut Call, from: &DeviceAddress, m: CallKeyMessage, cfg: &CallConfig| {
        let e = bob.catch_up(from, m, cfg).unwrap_err();
        assert_eq!(*bob, before);
        e
    };
    // Not from the manager, or naming another manager.
    assert_eq!(
        refused(&mut bob, &c, wire(&epochs[4]), &config),
        SyncError::NotCallManager
    );
    // The manager's address follows the header, id, kind, epoch and secret (PROTOCOL 21).
    let mut renamed = epochs[4].to_bytes().to_vec();
    renamed[55..87].copy_from_slice(&c.account.to_bytes());
    renamed[87..91].copy_from_slice(&c.device.0.to_be_bytes());
    let renamed = CallKeyMessage::from_bytes(&renamed).unwrap();
    assert_eq!(renamed.manager(), c);
    assert_eq!(
        refused(&mut bob, &a, renamed.clone(), &config),
        SyncError::NotCallManager
    );
    assert_eq!(
        refused(&mut bob, &c, renamed, &config),
        SyncError::NotCallManager
    );
    // Another call, or this call under another kind.
    for _ in 0..3 {
        let x = addr(rng, 9);
        other.join(rng, x, &config).unwrap();
    }
    assert_eq!(
        refused(&mut bob, &a, other.key_message().clone(), &config),
        SyncError::StaleCallKey
    );
    let mut bytes = epochs[4].to_bytes().to_vec();
    bytes[18] = 3;
    assert_eq!(
        refused(
            &mut bob,
            &a,
            CallKeyMessage::from_bytes(&bytes).unwrap(),
            &config
        ),
        SyncError::StaleCallKey
    );
    // The held epoch or an older one: never back, never sideways.
    for old in &epochs[..3] {
        assert_eq!(
            refused(&mut bob, &a, wire(old), &config),
            SyncError::StaleCallKey
        );
    }
    // Over the cap of this device's configuration.
    let small = CallConfig {
        max_group_participants: 4,
        ..config
    };
    assert_eq!(
        refused(&mut bob, &a, wire(&epochs[4]), &small),
        SyncError::CallFull
    );
    // A newer epoch that no longer lists Bob: he was removed.
    let mut without_bob = call.clone();
    let removal = without_bob.remove(rng, &b).unwrap();
    assert_eq!(
        refused(&mut bob, &a, wire(&removal), &config),
        SyncError::NotInCall
    );
    // Two epochs ahead, then the next one.
    bob.catch_up(&a, wire(&epochs[4]), &config).unwrap();
    assert_eq!(bob.key_message(), call.key_message());
    let x = addr(rng, 7);
    let next = call.join(rng, x, &config).unwrap();
    bob.catch_up(&a, wire(&next), &config).unwrap();
    assert_eq!(bob.srtp_keys(&a).unwrap(), call.srtp_keys(&a).unwrap());
}

/// The manager persists the call at epoch 1, adds Eve (epoch 2, which Carol receives), then
/// is restored from the epoch-1 snapshot; the app kept the last persisted epoch, 2. Had the
/// restored manager issued epoch 2 again (adding Bob back without Carol, with a fresh secret),
/// Bob would drop it as old and keep sending under the first epoch 2, which Carol holds.
/// Restored, it skips past every epoch it may have issued and draws a fresh secret.
#[test]
fn a_call_manager_restored_from_a_stale_snapshot_never_reissues_an_epoch() {
    let rng = &mut SeededRng::from_label("calls stale manager");
    let config = CallConfig::default();
    let (a, b, c, d, e) = (
        addr(rng, 1),
        addr(rng, 1),
        addr(rng, 1),
        addr(rng, 1),
        addr(rng, 1),
    );
    let mut call = Call::start(rng, CallKind::Group, a, &[b, c], &config).unwrap();
    let mut bob = Call::from_key_message(b, &a, wire(call.key_message()), &config).unwrap();
    let mut carol = Call::from_key_message(c, &a, wire(call.key_message()), &config).unwrap();
    let epoch1 = call.join(rng, d, &config).unwrap();
    let snapshot = call.to_bytes();
    bob.apply(&a, wire(&epoch1), &config).unwrap();
    carol.apply(&a, wire(&epoch1), &config).unwrap();
    let lost = call.join(rng, e, &config).unwrap();
    let last_epoch = call.epoch();
    bob.apply(&a, wire(&lost), &config).unwrap();
    carol.apply(&a, wire(&lost), &config).unwrap();
    drop(call);

    // The manager comes back from the snapshot, alone, and adds Bob back (not Carol); Bob
    // follows the docs.
    let (mut manager, stale) = Call::restore(rng, &snapshot, last_epoch).unwrap();
    let readmit = manager.join(rng, b, &config).unwrap();
    match follow(&mut bob, &a, &readmit, &config) {
        Ok(()) | Err(SyncError::StaleCallKey) => {}
        Err(other) => panic!("{other:?}"),
    }
    assert_eq!(bob.key_message(), manager.key_message());
    assert_ne!(bob.srtp_keys(&b).unwrap(), carol.srtp_keys(&b).unwrap());
    // Every epoch issued after the restore is past every epoch issued before it.
    assert!(stale);
    assert!(readmit.epoch() > last_epoch, "epoch {}", readmit.epoch());
    assert_ne!(readmit.epoch(), lost.epoch());
}

/// `Call::restore` changes only a stale snapshot. A snapshot as new as the last persisted epoch
/// loads as written; a participant's stale snapshot loads with its key message as written and
/// is reported stale (it catches up from the manager); a manager's moves past the kept epoch,
/// alone; a manager with no epoch left and bad bytes are typed errors.
#[test]
fn restoring_a_call_rekeys_only_a_stale_managers_snapshot() {
    let rng = &mut SeededRng::from_label("calls restore");
    let config = CallConfig::default();
    let (a, b) = (addr(rng, 1), addr(rng, 1));
    let mut call = Call::start(rng, CallKind::Room, a, &[b], &config).unwrap();
    let mut bob = Call::from_key_message(b, &a, wire(call.key_message()), &config).unwrap();
    let old = call.to_bytes();
    let old_bob = bob.to_bytes();
    let x = addr(rng, 2);
    bob.apply(&a, call.join(rng, x, &config).unwrap(), &config)
        .unwrap();
    // Up to date: as written.
    for (bytes, held) in [(call.to_bytes(), &call), (bob.to_bytes(), &bob)] {
        let (restored, stale) = Call::restore(rng, &bytes, 1).unwrap();
        assert!(!stale);
        assert_eq!(&restored, held);
    }
    // A participant's stale snapshot: its key message as written, reported stale; it catches
    // up to the kept epoch (which it held) and is then the call it was.
    let (mut restored, stale) = Call::restore(rng, &old_bob, 1).unwrap();
    assert!(stale);
    assert_eq!(
        restored.key_message(),
        Call::from_bytes(&old_bob).unwrap().key_message()
    );
    restored
        .catch_up(&a, wire(call.key_message()), &config)
        .unwrap();
    assert_eq!(restored, bob);
    assert_eq!(restored.to_bytes(), bob.to_bytes());
    // A manager's stale snapshot: the epoch after the last persisted one, a fresh secret, the
    // manager alone; each restore draws anew.
    let (mut first, stale) = Call::restore(rng, &old, 1).unwrap();
    assert!(stale);
    assert_eq!(first.epoch(), 2);
    assert_eq!(first.participants(), &[a][..]);
    let (second, _) = Call::restore(rng, &old, 1).unwrap();
    assert_ne!(first.key_message(), second.key_message());
    assert_ne!(first.srtp_keys(&a).unwrap(), call.srtp_keys(&a).unwrap());
    let mut bob_too = bob.clone();
    assert_eq!(
        follow(&mut bob_too, &a, first.key_message(), &config),
        Err(SyncError::NotInCall)
    );
    let back = first.join(rng, b, &config).unwrap();
    follow(&mut bob_too, &a, &back, &config).unwrap();
    assert_eq!(bob_too.srtp_keys(&a).unwrap(), first.srtp_keys(&a).unwrap());
    // No epoch left after the last one persisted; bytes that are no call.
    assert_eq!(
        Call::restore(rng, &old, u32::MAX).err(),
        Some(ratchetry::Error::Sync(SyncError::StaleCallKey))
    );
    assert!(matches!(
        Call::restore(rng, &old[..old.len() - 1], 0),
        Err(ratchetry::Error::Decode(_))
    ));
}

/// Carol is removed after the manager's snapshot. The manager is restored from it: it may have
/// removed anyone since, and the snapshot cannot tell whom, so it comes back listing itself
/// alone at a fresh epoch and adds back, each with a join of its own, only the devices the app
/// names (Bob). Carol, listed in the snapshot but not added back, gets no key of the new epochs.
#[test]
fn a_restored_call_manager_readmits_only_the_participants_it_adds_back() {
    let rng = &mut SeededRng::from_label("review call restore readmits");
    let config = CallConfig::default();
    let (a, b, c) = (addr(rng, 1), addr(rng, 1), addr(rng, 1));
    let mut call = Call::start(rng, CallKind::Group, a, &[b, c], &config).unwrap();
    let mut bob = Call::from_key_message(b, &a, wire(call.key_message()), &config).unwrap();
    let mut carol = Call::from_key_message(c, &a, wire(call.key_message()), &config).unwrap();
    let snapshot = call.to_bytes();
    let removal = call.remove(rng, &c).unwrap();
    bob.apply(&a, wire(&removal), &config).unwrap();
    assert_eq!(
        carol.apply(&a, wire(&removal), &config),
        Err(SyncError::NotInCall)
    );
    let last_epoch = call.epoch();
    drop(call);

    let (mut manager, stale) = Call::restore(rng, &snapshot, last_epoch).unwrap();
    assert!(stale);
    let rekey = manager.key_message().clone();
    // The app adds Bob back; he catches up to the join.
    let readmit = manager.join(rng, b, &config).unwrap();
    follow(&mut bob, &a, &readmit, &config).unwrap();
    assert_eq!(bob.key_message(), manager.key_message());
    // Carol, even handed every new message, is listed in none and derives none of Bob's keys.
    let carol_before = carol.clone();
    for m in [&rekey, &readmit] {
        assert_eq!(
            carol.catch_up(&a, wire(m), &config),
            Err(SyncError::NotInCall)
        );
    }
    assert_eq!(carol, carol_before);
    assert_ne!(carol.srtp_keys(&b).unwrap(), bob.srtp_keys(&b).unwrap());
    // The restored epoch lists the manager alone, past the kept epoch; each readmission is an
    // epoch of its own.
    assert_eq!(rekey.epoch(), last_epoch + 1);
    assert_eq!(readmit.epoch(), last_epoch + 2);
    assert_eq!(
        Call::from_key_message(c, &a, wire(&rekey), &config).err(),
        Some(SyncError::NotInCall)
    );
    let mut both = [a, b];
    both.sort();
    assert_eq!(manager.participants(), &both[..]);
}

/// Bob's snapshot holds epoch 0. Carol joins (epoch 1) and is removed (epoch 2); Bob persists
/// epoch 2 and the app keeps it. Restored from the snapshot with that kept epoch, Bob's call
/// refuses the replayed join, which would take him back to an epoch Carol holds, by `apply` and
/// by `catch_up`, and keeps refusing it after being saved and loaded again; it still takes the
/// kept epoch itself from the manager, and gives media keys only from there.
#[test]
fn a_restored_participant_never_goes_back_below_its_kept_epoch() {
    let rng = &mut SeededRng::from_label("review call participant rollback");
    let config = CallConfig::default();
    let (a, b, c) = (addr(rng, 1), addr(rng, 1), addr(rng, 1));
    let mut call = Call::start(rng, CallKind::Group, a, &[b], &config).unwrap();
    let mut bob = Call::from_key_message(b, &a, wire(call.key_message()), &config).unwrap();
    let bob_snapshot = bob.to_bytes();
    let join = call.join(rng, c, &config).unwrap();
    bob.apply(&a, wire(&join), &config).unwrap();
    let carol = Call::from_key_message(c, &a, wire(&join), &config).unwrap();
    let leave = call.remove(rng, &c).unwrap();
    bob.apply(&a, wire(&leave), &config).unwrap();
    let bob_last = bob.epoch();

    let (mut restored, stale) = Call::restore(rng, &bob_snapshot, bob_last).unwrap();
    assert!(stale);
    let before = restored.clone();
    assert_eq!(
        restored.apply(&a, wire(&join), &config),
        Err(SyncError::StaleCallKey)
    );
    assert_eq!(
        restored.catch_up(&a, wire(&join), &config),
        Err(SyncError::StaleCallKey)
    );
    assert_eq!(restored, before);
    // Below its floor it gives no media keys (its epoch, 0, is older than Carol's removal).
    assert_eq!(restored.srtp_keys(&b), Err(SyncError::StaleCallKey));
    // Saved and loaded again (not through `restore`), it still refuses.
    let saved = restored.to_bytes();
    let mut reloaded = Call::from_bytes(&saved).unwrap();
    assert_eq!(reloaded, restored);
    assert_eq!(&*reloaded.to_bytes(), &*saved);
    assert_eq!(
        reloaded.catch_up(&a, wire(&join), &config),
        Err(SyncError::StaleCallKey)
    );
    // The kept epoch itself (Bob held it) is taken, and the floor is gone once reached.
    follow(&mut reloaded, &a, &leave, &config).unwrap();
    assert_eq!(reloaded, bob);
    assert_eq!(reloaded.to_bytes(), bob.to_bytes());
    assert_ne!(
        reloaded.srtp_keys(&b).unwrap(),
        carol.srtp_keys(&b).unwrap()
    );
    // The floor is the state's last four bytes: none on a call that reached it, never on the
    // manager's call, never at or below the epoch.
    let floor_at = saved.len() - 4;
    assert_eq!(saved[floor_at..], bob_last.to_be_bytes());
    assert_eq!(bob.to_bytes()[floor_at..], [0; 4]);
    for (state, floor) in [(&bob.to_bytes(), bob.epoch()), (&call.to_bytes(), 9)] {
        let mut bytes = state.to_vec();
        let at = bytes.len() - 4;
        bytes[at..].copy_from_slice(&floor.to_be_bytes());
        assert_eq!(
            Call::from_bytes(&bytes).err(),
            Some(DecodeError::InvalidValue)
        );
    }
}
