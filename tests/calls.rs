//! Call keys: epochs, joins and leaves, SRTP derivation, and distribution over fanout.

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

#[test]
fn joins_ratchet_forward_and_leaves_refresh() {
    let rng = &mut SeededRng::from_label("calls epochs");
    let config = CallConfig::default();
    let (a, b, c) = (addr(rng, 1), addr(rng, 1), addr(rng, 2));
    let mut call = Call::start(rng, CallKind::Group, &[a, b], &config).unwrap();
    let epoch0 = call.key_message().clone();
    let a0 = call.srtp_keys(&a).unwrap();
    assert_ne!(a0, call.srtp_keys(&b).unwrap());
    assert_eq!(a0.master_key().len(), 32);
    assert_eq!(a0.master_salt().len(), 12);
    assert_eq!(call.srtp_keys(&c).err(), Some(SyncError::NotInCall));

    // B learns the call from the key message and derives the same keys.
    let mut bob = Call::from_key_message(
        CallKeyMessage::from_bytes(&epoch0.to_bytes()).unwrap(),
        &config,
    )
    .unwrap();
    assert_eq!(bob.srtp_keys(&a).unwrap(), a0);

    // C joins: epoch 1. C gets only epoch 1, whose keys differ from epoch 0's.
    let epoch1 = call.join(c, &config).unwrap();
    let carol = Call::from_key_message(epoch1.clone(), &config).unwrap();
    assert_eq!(carol.epoch(), 1);
    assert_ne!(carol.srtp_keys(&a).unwrap(), a0);
    bob.apply(epoch1.clone(), &config).unwrap();
    assert_eq!(bob.srtp_keys(&c).unwrap(), carol.srtp_keys(&c).unwrap());
    // Replays and old epochs change nothing.
    assert_eq!(
        bob.apply(epoch1.clone(), &config),
        Err(SyncError::StaleCallKey)
    );
    assert_eq!(
        bob.apply(epoch0.clone(), &config),
        Err(SyncError::StaleCallKey)
    );

    // C leaves: epoch 2 with a fresh secret, sent to A and B only.
    let epoch2 = call.remove(rng, &c).unwrap();
    assert!(
        !epoch2
            .to_bytes()
            .windows(32)
            .any(|w| w == &epoch1.to_bytes()[23..55])
    );
    bob.apply(epoch2, &config).unwrap();
    assert_eq!(bob.srtp_keys(&a).unwrap(), call.srtp_keys(&a).unwrap());
    assert_eq!(call.srtp_keys(&c).err(), Some(SyncError::NotInCall));
    assert_eq!(call.remove(rng, &c).err(), Some(SyncError::NotInCall));
    let restored = Call::from_bytes(&call.to_bytes()).unwrap();
    assert_eq!(restored, call);
    assert!(format!("{:?}", a0).contains("redacted"));
}

#[test]
fn caps_apply_per_kind() {
    let rng = &mut SeededRng::from_label("calls caps");
    let config = CallConfig {
        max_group_participants: 3,
        max_room_participants: 4,
    };
    let people: Vec<DeviceAddress> = (0..5).map(|i| addr(rng, i + 1)).collect();
    let mut group = Call::start(rng, CallKind::Group, &people[..3], &config).unwrap();
    let before = group.clone();
    assert_eq!(
        group.join(people[3], &config).err(),
        Some(SyncError::CallFull)
    );
    assert_eq!(group, before);
    assert_eq!(
        Call::start(rng, CallKind::Group, &people[..4], &config).err(),
        Some(SyncError::CallFull)
    );
    assert!(Call::start(rng, CallKind::Room, &people[..4], &config).is_ok());
    assert_eq!(CallConfig::default().max_group_participants, 32);
    assert_eq!(CallConfig::default().max_room_participants, 50);
    // Participants must be listed in order on the wire.
    let mut bytes = group.to_bytes().to_vec();
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
