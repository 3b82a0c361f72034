//! Sealed state at rest: round trip, and typed errors for a wrong key, wrong type, unknown
//! version, tampering and truncation.

use ratchetry::persist::{StateKind, StorageKey, open_state, seal_state};
use ratchetry::testing::SeededRng;
use ratchetry::{CryptoError, DecodeError, Error, IdentityKeyPair, PreKeyStore, Timestamp};

#[test]
fn sealed_state_round_trips_and_refuses_everything_else() {
    let rng = &mut SeededRng::from_label("persist seal");
    let key = StorageKey::from_bytes([7; 32]);
    let identity = IdentityKeyPair::generate(rng);
    let store = PreKeyStore::new(rng, &identity, Timestamp(0), Default::default());
    let state = store.to_bytes();
    let sealed = seal_state(rng, &key, &state).unwrap();
    assert!(
        !sealed
            .windows(32)
            .any(|w| state.windows(32).any(|s| s == w)),
        "plaintext leaked"
    );
    let opened = open_state(&key, &sealed, StateKind::PreKeyStore).unwrap();
    assert_eq!(*opened, *state);
    PreKeyStore::from_bytes(&opened).unwrap();

    let wrong_key = StorageKey::from_bytes([8; 32]);
    assert_eq!(
        open_state(&wrong_key, &sealed, StateKind::PreKeyStore).err(),
        Some(Error::Crypto(CryptoError::AuthenticationFailed))
    );
    assert_eq!(
        open_state(&key, &sealed, StateKind::Session).err(),
        Some(Error::Decode(DecodeError::UnknownType(0x82)))
    );
    // Relabelling the type in the sealed header breaks authentication.
    let mut relabelled = sealed.clone();
    relabelled[3] = 0x81;
    assert_eq!(
        open_state(&key, &relabelled, StateKind::Session).err(),
        Some(Error::Crypto(CryptoError::AuthenticationFailed))
    );
    for len in 0..sealed.len() {
        assert!(open_state(&key, &sealed[..len], StateKind::PreKeyStore).is_err());
    }
    for i in 0..sealed.len() {
        let mut bad = sealed.clone();
        bad[i] ^= 1;
        assert!(
            open_state(&key, &bad, StateKind::PreKeyStore).is_err(),
            "flip at {i}"
        );
    }
    // A state written by a newer format version is reported as such, after authentication.
    let mut future = state.to_vec();
    future[0] = 2;
    let sealed_future = seal_state(rng, &key, &future).unwrap();
    let opened = open_state(&key, &sealed_future, StateKind::PreKeyStore).unwrap();
    assert_eq!(
        PreKeyStore::from_bytes(&opened).err(),
        Some(DecodeError::UnknownVersion(2))
    );
    assert_eq!(
        seal_state(rng, &key, &[1]).err(),
        Some(DecodeError::Truncated)
    );
    assert_eq!(format!("{key:?}"), "StorageKey(redacted)");
}

/// The device state format moved from version 1 to 2 (read-envelope ids and the state epoch
/// were added). A version-1 state still loads, sealed or not, and saves as version 2.
#[test]
fn device_state_migrates_from_version_1() {
    use ratchetry::devices::{DevicePolicy, PRIMARY_DEVICE, Primary};
    use ratchetry::fanout::{Device, DeviceConfig};
    let rng = &mut SeededRng::from_label("persist migration");
    let identity = IdentityKeyPair::generate(rng);
    let primary = Primary::new(
        rng,
        &identity.public(),
        Timestamp(0),
        DevicePolicy::default(),
    );
    let device = Device::new(
        rng,
        Timestamp(0),
        identity,
        PRIMARY_DEVICE,
        primary.device_list().clone(),
        3,
        DeviceConfig::default(),
    )
    .unwrap();
    let v2 = device.to_bytes();
    assert_eq!(&v2[..2], &[2, 0x87]);
    // The version-1 layout: the same fields without the trailing ids (u32 count 0) and epoch.
    let mut v1 = v2[..v2.len() - 4 - 8].to_vec();
    v1[0] = 1;
    let migrated = Device::from_bytes(&v1).unwrap();
    assert_eq!(migrated.state_epoch(), 0);
    assert_eq!(*migrated.to_bytes(), *v2);
    // Through sealed storage too.
    let key = StorageKey::from_bytes([9; 32]);
    let sealed = seal_state(rng, &key, &v1).unwrap();
    let opened = open_state(&key, &sealed, StateKind::Device).unwrap();
    assert_eq!(*Device::from_bytes(&opened).unwrap().to_bytes(), *v2);
    // Version 3 is not known to this build.
    let mut v3 = v2.to_vec();
    v3[0] = 3;
    assert_eq!(
        Device::from_bytes(&v3).err(),
        Some(DecodeError::UnknownVersion(3))
    );
}
