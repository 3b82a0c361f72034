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
    assert_eq!(
        open_state(&key, &sealed_future, StateKind::PreKeyStore).err(),
        Some(Error::Decode(DecodeError::UnknownVersion(2)))
    );
    assert_eq!(
        seal_state(rng, &key, &[1]).err(),
        Some(DecodeError::Truncated)
    );
    assert_eq!(format!("{key:?}"), "StorageKey(redacted)");
}
