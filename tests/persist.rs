//! Sealed state at rest: round trip, and typed errors for a wrong key, another slot, a rolled
//! back copy, tampering and truncation.

use ratchetry::persist::{StorageKey, open_state, seal_state};
use ratchetry::testing::SeededRng;
use ratchetry::{
    CryptoError, DecodeError, Error, IdentityKeyPair, PreKeyStore, StateError, Timestamp,
};

#[test]
fn sealed_state_round_trips_and_refuses_everything_else() {
    let rng = &mut SeededRng::from_label("persist seal");
    let key = StorageKey::from_bytes([7; 32]);
    let identity = IdentityKeyPair::generate(rng);
    let store = PreKeyStore::new(rng, &identity, Timestamp(0), Default::default());
    let state = store.to_bytes();
    let sealed = seal_state(rng, &key, b"prekeys", 5, &state);
    assert!(
        !sealed
            .windows(32)
            .any(|w| state.windows(32).any(|s| s == w)),
        "plaintext leaked"
    );
    let opened = open_state(&key, &sealed, b"prekeys", 5).unwrap();
    assert_eq!(*opened.state, *state);
    assert_eq!(opened.sequence, 5);
    PreKeyStore::from_bytes(&opened.state).unwrap();

    let wrong_key = StorageKey::from_bytes([8; 32]);
    assert_eq!(
        open_state(&wrong_key, &sealed, b"prekeys", 0).err(),
        Some(Error::Crypto(CryptoError::AuthenticationFailed))
    );
    for len in 0..sealed.len() {
        assert!(open_state(&key, &sealed[..len], b"prekeys", 0).is_err());
    }
    for i in 0..sealed.len() {
        let mut bad = sealed.clone();
        bad[i] ^= 1;
        assert!(
            open_state(&key, &bad, b"prekeys", 0).is_err(),
            "flip at {i}"
        );
    }
    let mut future = sealed.clone();
    future[0] = 9;
    assert_eq!(
        open_state(&key, &future, b"prekeys", 0).err(),
        Some(Error::Decode(DecodeError::UnknownVersion(9)))
    );
    assert_eq!(format!("{key:?}"), "StorageKey(redacted)");
}

/// A blob sealed for one slot does not open in another (a server or a local attacker swapping
/// two stored blobs), and an older blob put back in its own slot is refused as a rollback.
#[test]
fn swapped_or_rolled_back_blobs_are_refused() {
    let rng = &mut SeededRng::from_label("persist slots");
    let key = StorageKey::from_bytes([7; 32]);
    let alice = seal_state(rng, &key, b"session/alice", 3, b"alice's session state");
    let bob = seal_state(rng, &key, b"session/bob", 3, b"bob's session state");
    assert_eq!(
        open_state(&key, &alice, b"session/bob", 0).err(),
        Some(Error::Crypto(CryptoError::AuthenticationFailed))
    );
    assert!(open_state(&key, &bob, b"session/bob", 0).is_ok());
    let newer = seal_state(rng, &key, b"session/alice", 4, b"alice's newer state");
    assert_eq!(
        open_state(&key, &newer, b"session/alice", 4)
            .unwrap()
            .sequence,
        4
    );
    assert_eq!(
        open_state(&key, &alice, b"session/alice", 4).err(),
        Some(Error::State(StateError::Rollback {
            sealed_at: 3,
            expected_at_least: 4
        }))
    );
    // The sequence in the header is authenticated: raising it breaks the seal.
    let mut raised = alice.clone();
    raised[9] = 4;
    assert_eq!(
        open_state(&key, &raised, b"session/alice", 4).err(),
        Some(Error::Crypto(CryptoError::AuthenticationFailed))
    );
}

/// A generated storage key seals and opens, and two generated keys differ.
#[test]
fn generated_storage_keys_seal_and_differ() {
    let rng = &mut SeededRng::from_label("storage key");
    let key = StorageKey::generate(rng);
    let sealed = seal_state(rng, &key, b"slot", 1, b"state");
    assert_eq!(
        open_state(&key, &sealed, b"slot", 1)
            .unwrap()
            .state
            .as_slice(),
        b"state"
    );
    let other = StorageKey::generate(rng);
    assert!(open_state(&other, &sealed, b"slot", 1).is_err());
    assert_eq!(format!("{key:?}"), "StorageKey(redacted)");
}
