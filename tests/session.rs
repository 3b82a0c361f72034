//! Pairwise sessions end to end: X3DH, in-order and out-of-order delivery, direction changes,
//! limits, replays, and the transactional guarantee (a failed receive leaves the serialized
//! state byte-identical).

use ratchetry::testing::SeededRng;
use ratchetry::x3dh::{OneTimePreKeyId, PreKeyStoreConfig};
use ratchetry::{
    DecodeError, Error, IdentityKeyPair, IncomingMessage, PreKeyBundle, PreKeyStore, RatchetError,
    Session, SessionConfig, Timestamp, X3dhError,
};

struct Device {
    identity: IdentityKeyPair,
    store: PreKeyStore,
}

fn device(rng: &mut SeededRng) -> Device {
    let identity = IdentityKeyPair::generate(rng);
    let mut store = PreKeyStore::new(rng, &identity, Timestamp(0), PreKeyStoreConfig::default());
    store.generate_one_time_prekeys(rng, 5);
    Device { identity, store }
}

fn bundle(d: &Device, otk: Option<u32>) -> PreKeyBundle {
    d.store.bundle(&d.identity, otk.map(OneTimePreKeyId), None)
}

/// Alice initiates to Bob with one-time prekey 1, sends "hello"; Bob accepts.
fn pair(rng: &mut SeededRng, config: SessionConfig) -> (Session, Session, Device) {
    let alice = device(rng);
    let mut bob = device(rng);
    let verified = PreKeyBundle::from_bytes(&bundle(&bob, Some(1)).to_bytes())
        .unwrap()
        .verify()
        .unwrap();
    let mut a = Session::initiate(rng, &alice.identity, &verified, config).unwrap();
    let wire = a.encrypt(rng, b"hello").unwrap();
    let IncomingMessage::PreKey(pk) = IncomingMessage::decode(&wire).unwrap() else {
        panic!("first message must be a pre-key message")
    };
    assert_eq!(pk.initiator_identity(), alice.identity.public());
    let (b, pt) = Session::accept(&bob.identity, &mut bob.store, &pk, config).unwrap();
    assert_eq!(pt, b"hello");
    (a, b, bob)
}

fn recv(s: &mut Session, wire: &[u8]) -> Result<Vec<u8>, Error> {
    s.decrypt(&IncomingMessage::decode(wire)?)
}

/// Asserts the receive fails with `expected` and leaves the session byte-identical.
fn refused(s: &mut Session, wire: &[u8], expected: Error) {
    let before = s.to_bytes();
    assert_eq!(recv(s, wire), Err(expected));
    assert_eq!(
        *before,
        *s.to_bytes(),
        "a failed receive changed the session"
    );
}

#[test]
fn conversation_with_direction_changes() {
    let rng = &mut SeededRng::from_label("conversation");
    let (mut a, mut b, _) = pair(rng, SessionConfig::default());
    for round in 0..5u8 {
        for i in 0..3u8 {
            let w = b.encrypt(rng, &[round, i, 1]).unwrap();
            assert_eq!(recv(&mut a, &w).unwrap(), [round, i, 1]);
        }
        let w = a.encrypt(rng, &[round, 9]).unwrap();
        assert!(matches!(
            IncomingMessage::decode(&w).unwrap(),
            IncomingMessage::Ratchet(_)
        ));
        assert_eq!(recv(&mut b, &w).unwrap(), [round, 9]);
    }
    assert!(!a.awaiting_reply());
}

#[test]
fn initiator_sends_several_before_reply() {
    let rng = &mut SeededRng::from_label("several");
    let (mut a, mut b, _) = pair(rng, SessionConfig::default());
    let w1 = a.encrypt(rng, b"two").unwrap();
    let w2 = a.encrypt(rng, b"three").unwrap();
    assert!(a.awaiting_reply());
    // Delivered out of order, both still pre-key messages for Bob's existing session.
    assert_eq!(recv(&mut b, &w2).unwrap(), b"three");
    assert_eq!(recv(&mut b, &w1).unwrap(), b"two");
    let reply = b.encrypt(rng, b"hi").unwrap();
    assert_eq!(recv(&mut a, &reply).unwrap(), b"hi");
    assert!(!a.awaiting_reply());
    let w = a.encrypt(rng, b"now plain").unwrap();
    assert!(matches!(
        IncomingMessage::decode(&w).unwrap(),
        IncomingMessage::Ratchet(_)
    ));
    assert_eq!(recv(&mut b, &w).unwrap(), b"now plain");
}

#[test]
fn out_of_order_across_ratchet_steps() {
    let rng = &mut SeededRng::from_label("ooo");
    let (mut a, mut b, _) = pair(rng, SessionConfig::default());
    let b1: Vec<_> = (0..4u8).map(|i| b.encrypt(rng, &[1, i]).unwrap()).collect();
    assert_eq!(recv(&mut a, &b1[3]).unwrap(), [1, 3]);
    assert_eq!(a.skipped_keys(), 3);
    let w = a.encrypt(rng, b"ack").unwrap();
    recv(&mut b, &w).unwrap();
    let b2 = b.encrypt(rng, b"second chain").unwrap();
    assert_eq!(recv(&mut a, &b2).unwrap(), b"second chain");
    // Late messages from the first chain still open, once each.
    assert_eq!(recv(&mut a, &b1[1]).unwrap(), [1, 1]);
    assert_eq!(recv(&mut a, &b1[0]).unwrap(), [1, 0]);
    assert_eq!(recv(&mut a, &b1[2]).unwrap(), [1, 2]);
    assert_eq!(a.skipped_keys(), 0);
    refused(&mut a, &b1[2], RatchetError::AuthenticationFailed.into());
}

#[test]
fn previous_chain_tail_is_skipped_via_pn() {
    let rng = &mut SeededRng::from_label("pn");
    let (mut a, mut b, _) = pair(rng, SessionConfig::default());
    let w = b.encrypt(rng, b"0").unwrap();
    recv(&mut a, &w).unwrap();
    let lost: Vec<_> = (0..3u8).map(|i| b.encrypt(rng, &[i]).unwrap()).collect();
    let w = a.encrypt(rng, b"x").unwrap();
    recv(&mut b, &w).unwrap();
    let w = b.encrypt(rng, b"new chain").unwrap();
    assert_eq!(recv(&mut a, &w).unwrap(), b"new chain");
    assert_eq!(a.skipped_keys(), 3);
    for (i, l) in lost.iter().enumerate().rev() {
        assert_eq!(recv(&mut a, l).unwrap(), [i as u8]);
    }
}

#[test]
fn duplicates_and_replays_are_refused_without_change() {
    let rng = &mut SeededRng::from_label("dup");
    let (mut a, mut b, _) = pair(rng, SessionConfig::default());
    let w = b.encrypt(rng, b"once").unwrap();
    recv(&mut a, &w).unwrap();
    refused(&mut a, &w, RatchetError::Duplicate.into());
    let w2 = b.encrypt(rng, b"twice").unwrap();
    recv(&mut a, &w2).unwrap();
    refused(&mut a, &w, RatchetError::Duplicate.into());
}

#[test]
fn corrupted_truncated_and_forged_messages_leave_state_identical() {
    let rng = &mut SeededRng::from_label("corrupt");
    let (mut a, mut b, _) = pair(rng, SessionConfig::default());
    let w = b.encrypt(rng, b"payload").unwrap();
    for i in 0..w.len() {
        let mut bad = w.clone();
        bad[i] ^= 0x01;
        let before = a.to_bytes();
        assert!(recv(&mut a, &bad).is_err(), "bit flip at {i} accepted");
        assert_eq!(*before, *a.to_bytes());
    }
    for len in 0..w.len() {
        let before = a.to_bytes();
        assert!(recv(&mut a, &w[..len]).is_err());
        assert_eq!(*before, *a.to_bytes());
    }
    // A forged message from a third party's session with a fresh ratchet key.
    let (_, mut mallory, _) = pair(rng, SessionConfig::default());
    let forged = mallory.encrypt(rng, b"forged").unwrap();
    refused(&mut a, &forged, RatchetError::AuthenticationFailed.into());
    // The genuine message still opens afterwards.
    assert_eq!(recv(&mut a, &w).unwrap(), b"payload");
}

#[test]
fn forward_jump_and_storage_limits() {
    let rng = &mut SeededRng::from_label("limits");
    let config = SessionConfig {
        max_forward_jump: 10,
        max_skipped_keys: 4,
    };
    let (mut a, mut b, _) = pair(rng, config);
    let msgs: Vec<_> = (0..12u8).map(|i| b.encrypt(rng, &[i]).unwrap()).collect();
    refused(
        &mut a,
        &msgs[11],
        RatchetError::TooFarAhead {
            requested: 11,
            limit: 10,
        }
        .into(),
    );
    assert_eq!(recv(&mut a, &msgs[10]).unwrap(), [10]);
    // Ten keys were skipped; only the newest four are kept.
    assert_eq!(a.skipped_keys(), 4);
    assert_eq!(recv(&mut a, &msgs[9]).unwrap(), [9]);
    assert_eq!(recv(&mut a, &msgs[6]).unwrap(), [6]);
    assert!(recv(&mut a, &msgs[5]).is_err());
    assert_eq!(recv(&mut a, &msgs[11]).unwrap(), [11]);
}

#[test]
fn one_time_prekey_is_consumed_exactly_once() {
    let rng = &mut SeededRng::from_label("otk");
    let alice = device(rng);
    let mut bob = device(rng);
    let verified = bundle(&bob, Some(2)).verify().unwrap();
    let mut a =
        Session::initiate(rng, &alice.identity, &verified, SessionConfig::default()).unwrap();
    let w = a.encrypt(rng, b"first").unwrap();
    let IncomingMessage::PreKey(pk) = IncomingMessage::decode(&w).unwrap() else {
        panic!()
    };
    // A corrupted pre-key message consumes nothing.
    let mut bad = w.clone();
    *bad.last_mut().unwrap() ^= 1;
    let IncomingMessage::PreKey(bad_pk) = IncomingMessage::decode(&bad).unwrap() else {
        panic!()
    };
    let store_before = bob.store.to_bytes();
    assert!(
        Session::accept(
            &bob.identity,
            &mut bob.store,
            &bad_pk,
            SessionConfig::default()
        )
        .is_err()
    );
    assert_eq!(*store_before, *bob.store.to_bytes());
    assert_eq!(bob.store.one_time_prekeys_remaining(), 5);

    Session::accept(&bob.identity, &mut bob.store, &pk, SessionConfig::default()).unwrap();
    assert_eq!(bob.store.one_time_prekeys_remaining(), 4);
    let store_before = bob.store.to_bytes();
    let again = Session::accept(&bob.identity, &mut bob.store, &pk, SessionConfig::default());
    assert_eq!(again.err(), Some(X3dhError::Replayed.into()));
    assert_eq!(*store_before, *bob.store.to_bytes());

    // Without a one-time prekey, the remembered base key still refuses a replay.
    let verified = bundle(&bob, None).verify().unwrap();
    let mut a2 =
        Session::initiate(rng, &alice.identity, &verified, SessionConfig::default()).unwrap();
    let w = a2.encrypt(rng, b"no otk").unwrap();
    let IncomingMessage::PreKey(pk) = IncomingMessage::decode(&w).unwrap() else {
        panic!()
    };
    Session::accept(&bob.identity, &mut bob.store, &pk, SessionConfig::default()).unwrap();
    let again = Session::accept(&bob.identity, &mut bob.store, &pk, SessionConfig::default());
    assert_eq!(again.err(), Some(X3dhError::Replayed.into()));
}

#[test]
fn unknown_prekeys_and_bad_bundles_are_typed_errors() {
    let rng = &mut SeededRng::from_label("unknown");
    let alice = device(rng);
    let mut bob = device(rng);
    let verified = bundle(&bob, Some(3)).verify().unwrap();
    let mut a =
        Session::initiate(rng, &alice.identity, &verified, SessionConfig::default()).unwrap();
    let w = a.encrypt(rng, b"x").unwrap();
    // Bob rotates twice past his limit of retained signed prekeys? Default keeps 3, so rotate 3.
    for _ in 0..3 {
        bob.store
            .rotate_signed_prekey(rng, &bob.identity, Timestamp(1));
    }
    let IncomingMessage::PreKey(pk) = IncomingMessage::decode(&w).unwrap() else {
        panic!()
    };
    let r = Session::accept(&bob.identity, &mut bob.store, &pk, SessionConfig::default());
    assert_eq!(r.err(), Some(X3dhError::UnknownSignedPreKey(1).into()));

    let mut bytes = bundle(&bob, None).to_bytes();
    bytes[40] ^= 1; // inside the signed prekey
    let parsed = PreKeyBundle::from_bytes(&bytes).unwrap();
    assert_eq!(
        parsed.verify().err(),
        Some(X3dhError::BadSignedPreKeySignature)
    );
    bytes.push(0);
    assert_eq!(
        PreKeyBundle::from_bytes(&bytes).err(),
        Some(DecodeError::TrailingBytes)
    );
    bytes[0] = 9;
    assert_eq!(
        PreKeyBundle::from_bytes(&bytes).err(),
        Some(DecodeError::UnknownVersion(9))
    );
}

#[test]
fn low_order_keys_are_refused() {
    let rng = &mut SeededRng::from_label("low order");
    let (mut a, mut b, _) = pair(rng, SessionConfig::default());
    let mut w = b.encrypt(rng, b"m").unwrap();
    w[2..34].copy_from_slice(&[0u8; 32]); // the ratchet key: the identity point
    refused(&mut a, &w, ratchetry::CryptoError::NonContributory.into());
    let bob = device(rng);
    let mut bytes = bundle(&bob, None).to_bytes();
    bytes[2..34].copy_from_slice(&[0u8; 32]);
    assert_eq!(
        PreKeyBundle::from_bytes(&bytes).err(),
        Some(DecodeError::InvalidKey)
    );
}

#[test]
fn state_round_trips_exactly_and_keeps_working() {
    let rng = &mut SeededRng::from_label("persist");
    let (mut a, mut b, mut bob) = pair(rng, SessionConfig::default());
    let m: Vec<_> = (0..3u8).map(|i| b.encrypt(rng, &[i]).unwrap()).collect();
    recv(&mut a, &m[2]).unwrap();
    let bytes = a.to_bytes();
    let mut restored = Session::from_bytes(&bytes).unwrap();
    assert_eq!(*restored.to_bytes(), *bytes);
    assert_eq!(recv(&mut restored, &m[0]).unwrap(), [0]);
    let w = restored.encrypt(rng, b"after restore").unwrap();
    assert_eq!(recv(&mut b, &w).unwrap(), b"after restore");

    let store = PreKeyStore::from_bytes(&bob.store.to_bytes()).unwrap();
    assert_eq!(*store.to_bytes(), *bob.store.to_bytes());
    bob.store = store;
    let id = IdentityKeyPair::from_bytes(&bob.identity.to_bytes()).unwrap();
    assert_eq!(id.public(), bob.identity.public());

    for len in 0..bytes.len() {
        assert!(Session::from_bytes(&bytes[..len]).is_err());
    }
    let mut v = bytes.to_vec();
    v[0] = 9;
    assert_eq!(
        Session::from_bytes(&v).err(),
        Some(DecodeError::UnknownVersion(9))
    );
}

/// Loading a session repeats no curve work: the ratchet key's public half is read as stored
/// (here deliberately not the secret's, which a recomputation would have replaced), and the
/// identity keys are not decompressed again.
#[test]
fn loading_a_session_does_no_curve_work() {
    let rng = &mut SeededRng::from_label("no curve work");
    let (a, _, _) = pair(rng, SessionConfig::default());
    let bytes = a.to_bytes();
    // Version 2 layout: header 2, config 8, role 1, IK_local 32, IK_remote 32, EK 32, spk 4,
    // opk opt 5, KEM id and digest opt 37, pending KEM ciphertext opt 1 (none: the session
    // heard back), awaiting 1, RK 32, DHs secret 32, then DHs public 32.
    let public_at = 2 + 8 + 1 + 32 + 32 + 32 + 4 + 5 + 37 + 1 + 1 + 32 + 32;
    let mut v = bytes.to_vec();
    v[public_at] ^= 0x55;
    let loaded = Session::from_bytes(&v).unwrap();
    assert_eq!(&**loaded.to_bytes(), &v[..]);
}

/// A session restored from a stale copy and used without `renew_sending_chain` repeats a
/// chain counter: the header salt still gives the two messages different keys and nonces, and
/// the receiver takes only the first.
#[test]
fn a_reused_counter_never_reuses_a_keystream() {
    let rng = &mut SeededRng::from_label("pairwise salt");
    let (mut a, mut b, _) = pair(rng, SessionConfig::default());
    let reply = b.encrypt(rng, b"reply").unwrap();
    recv(&mut a, &reply).unwrap();
    // A sending chain exists: the snapshot's next message has a known counter.
    let opener = a.encrypt(rng, b"opens the chain").unwrap();
    recv(&mut b, &opener).unwrap();
    let stale = a.to_bytes();
    let first = a.encrypt(rng, &[0u8; 64]).unwrap();
    let mut restored = Session::from_bytes(&stale).unwrap();
    let second = restored.encrypt(rng, &[0u8; 64]).unwrap();
    // Same ratchet key and counter (bytes 2..42 of the header), different salts.
    assert_eq!(first[2..42], second[2..42]);
    assert_ne!(first[42..58], second[42..58]);
    // Equal plaintexts under a repeated keystream would give equal ciphertexts.
    assert_ne!(first[60..124], second[60..124]);
    assert_eq!(recv(&mut b, &first).unwrap(), [0u8; 64]);
    refused(&mut b, &second, RatchetError::Duplicate.into());
}

/// A pre-key message that used no one-time prekey is refused as a replay for as long as its
/// signed prekey is kept, however many sessions came after it.
#[test]
fn a_prekey_message_without_one_time_prekey_is_never_accepted_twice() {
    let rng = &mut SeededRng::from_label("no otk replay");
    let mut bob = device(rng);
    let alice = device(rng);
    let verified = bundle(&bob, None).verify().unwrap();
    let mut a =
        Session::initiate(rng, &alice.identity, &verified, SessionConfig::default()).unwrap();
    let first = a.encrypt(rng, b"first").unwrap();
    let IncomingMessage::PreKey(pk) = IncomingMessage::decode(&first).unwrap() else {
        panic!()
    };
    Session::accept(&bob.identity, &mut bob.store, &pk, SessionConfig::default()).unwrap();
    for _ in 0..1001 {
        let other = device(rng);
        let mut s =
            Session::initiate(rng, &other.identity, &verified, SessionConfig::default()).unwrap();
        let w = s.encrypt(rng, b"hi").unwrap();
        let IncomingMessage::PreKey(p) = IncomingMessage::decode(&w).unwrap() else {
            panic!()
        };
        Session::accept(&bob.identity, &mut bob.store, &p, SessionConfig::default()).unwrap();
    }
    assert_eq!(bob.store.signed_prekey_sessions(), 1002);
    let before = bob.store.to_bytes();
    assert_eq!(
        Session::accept(&bob.identity, &mut bob.store, &pk, SessionConfig::default()).err(),
        Some(X3dhError::Replayed.into())
    );
    assert_eq!(*before, *bob.store.to_bytes());
    let restored = PreKeyStore::from_bytes(&before).unwrap();
    assert_eq!(*restored.to_bytes(), *before);
}

/// The server holds a pre-key message Bob accepted (from a bundle without a one-time prekey)
/// and re-delivers it with bit 255 of the base key flipped: X25519 ignores that bit, so the
/// copy would derive the same keys while its bytes differ from the remembered base key. It is
/// refused at decode, in either order, and Bob's store is unchanged.
#[test]
fn a_prekey_message_replayed_with_another_encoding_of_its_base_key_is_refused() {
    // Offset of the base key's last byte: version, type, initiator identity key (32).
    const BASE_KEY_TOP: usize = 2 + 32 + 31;
    let rng = &mut SeededRng::from_label("base key bit 255");
    let mut bob = device(rng);
    let alice = device(rng);
    let verified = bundle(&bob, None).verify().unwrap();
    let mut a =
        Session::initiate(rng, &alice.identity, &verified, SessionConfig::default()).unwrap();
    let genuine = a.encrypt(rng, b"transfer $100").unwrap();
    let mut flipped = genuine.clone();
    flipped[BASE_KEY_TOP] ^= 0x80;

    // Flipped first: refused before anything is looked up; the genuine copy still reads.
    let before = bob.store.to_bytes();
    assert_eq!(
        IncomingMessage::decode(&flipped).err(),
        Some(DecodeError::InvalidKey)
    );
    assert_eq!(*before, *bob.store.to_bytes());
    let IncomingMessage::PreKey(pk) = IncomingMessage::decode(&genuine).unwrap() else {
        panic!()
    };
    Session::accept(&bob.identity, &mut bob.store, &pk, SessionConfig::default()).unwrap();

    // Genuine first, flipped after: still refused, and the genuine replay is `Replayed`.
    let before = bob.store.to_bytes();
    assert_eq!(
        IncomingMessage::decode(&flipped).err(),
        Some(DecodeError::InvalidKey)
    );
    assert_eq!(
        Session::accept(&bob.identity, &mut bob.store, &pk, SessionConfig::default()).err(),
        Some(X3dhError::Replayed.into())
    );
    assert_eq!(*before, *bob.store.to_bytes());
}

#[test]
fn a_signed_prekey_accepts_a_bounded_number_of_sessions() {
    let rng = &mut SeededRng::from_label("spk exhausted");
    let identity = IdentityKeyPair::generate(rng);
    let config = PreKeyStoreConfig {
        max_sessions_per_signed_prekey: 2,
        ..PreKeyStoreConfig::default()
    };
    let mut store = PreKeyStore::new(rng, &identity, Timestamp(0), config);
    let verified = store.bundle(&identity, None, None).verify().unwrap();
    for i in 0..3 {
        let other = device(rng);
        let mut s =
            Session::initiate(rng, &other.identity, &verified, SessionConfig::default()).unwrap();
        let w = s.encrypt(rng, b"hi").unwrap();
        let IncomingMessage::PreKey(p) = IncomingMessage::decode(&w).unwrap() else {
            panic!()
        };
        let r = Session::accept(&identity, &mut store, &p, SessionConfig::default());
        if i < 2 {
            r.unwrap();
        } else {
            assert_eq!(r.err(), Some(X3dhError::SignedPreKeyExhausted(1).into()));
        }
    }
    store.rotate_signed_prekey(rng, &identity, Timestamp(1));
    assert_eq!(store.signed_prekey_sessions(), 0);
}

#[test]
fn debug_output_never_shows_secrets() {
    let rng = &mut SeededRng::from_label("debug");
    let (a, _, bob) = pair(rng, SessionConfig::default());
    let id = format!("{:?}", bob.identity);
    assert!(id.contains("redacted"));
    let seed_hex: String = bob.identity.to_bytes()[2..]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(!id.contains(&seed_hex[..16]));
    let s = format!("{a:?}");
    assert!(!s.contains("root"));
    let store = format!("{:?}", bob.store);
    assert!(store.contains("redacted"));
}

#[test]
fn bound_context_must_match() {
    let rng = &mut SeededRng::from_label("bound");
    let alice = device(rng);
    let mut bob = device(rng);
    let verified = bundle(&bob, Some(1)).verify().unwrap();
    let mut a =
        Session::initiate(rng, &alice.identity, &verified, SessionConfig::default()).unwrap();
    let w = a.encrypt_bound(rng, b"routed", b"to bob device 2").unwrap();
    let IncomingMessage::PreKey(pk) = IncomingMessage::decode(&w).unwrap() else {
        panic!()
    };
    let before = bob.store.to_bytes();
    let r = Session::accept_bound(
        &bob.identity,
        &mut bob.store,
        &pk,
        SessionConfig::default(),
        b"to bob device 3",
    );
    assert_eq!(r.err(), Some(RatchetError::AuthenticationFailed.into()));
    assert_eq!(*before, *bob.store.to_bytes());
    let (mut b, pt) = Session::accept_bound(
        &bob.identity,
        &mut bob.store,
        &pk,
        SessionConfig::default(),
        b"to bob device 2",
    )
    .unwrap();
    assert_eq!(pt, b"routed");
    let w = b.encrypt_bound(rng, b"back", b"ctx").unwrap();
    let before = a.to_bytes();
    assert!(a.decrypt(&IncomingMessage::decode(&w).unwrap()).is_err());
    assert_eq!(*before, *a.to_bytes());
    assert_eq!(
        a.decrypt_bound(&IncomingMessage::decode(&w).unwrap(), b"ctx")
            .unwrap(),
        b"back"
    );
}

/// The forward-jump limit counts the keys a message makes the session skip from the next
/// message it expects in the current receiving chain, not from the chain's start.
#[test]
fn the_forward_jump_limit_counts_from_the_next_expected_message() {
    let rng = &mut SeededRng::from_label("jump from next");
    let config = SessionConfig {
        max_forward_jump: 10,
        max_skipped_keys: 20,
    };
    let (mut a, mut b, _) = pair(rng, config);
    let msgs: Vec<_> = (0..14u8).map(|i| b.encrypt(rng, &[i]).unwrap()).collect();
    assert_eq!(recv(&mut a, &msgs[0]).unwrap(), [0]);
    assert_eq!(recv(&mut a, &msgs[1]).unwrap(), [1]);
    // Message 2 is next: message 13 would skip 11 keys.
    refused(
        &mut a,
        &msgs[13],
        RatchetError::TooFarAhead {
            requested: 11,
            limit: 10,
        }
        .into(),
    );
    assert_eq!(recv(&mut a, &msgs[12]).unwrap(), [12]);
    assert_eq!(a.skipped_keys(), 10);
}

/// A session keeps the limits it was made with, across a save and load.
#[test]
fn a_session_reports_the_limits_it_was_made_with() {
    let rng = &mut SeededRng::from_label("config");
    let config = SessionConfig {
        max_forward_jump: 7,
        max_skipped_keys: 3,
    };
    assert_ne!(config, SessionConfig::default());
    let (a, b, _) = pair(rng, config);
    assert_eq!(a.config(), config);
    assert_eq!(b.config(), config);
    assert_eq!(Session::from_bytes(&a.to_bytes()).unwrap().config(), config);
}

/// `renew_sending_chain` abandons the sending chain: the next message is the first of a new
/// chain under a fresh ratchet key (counter 0, PN the old chain's length), which a peer that
/// read the old chain takes as a DH ratchet step, the old chain's late messages still opening.
#[test]
fn renewing_the_sending_chain_starts_a_new_ratchet_key() {
    let rng = &mut SeededRng::from_label("renew");
    let (mut a, mut b, _) = pair(rng, SessionConfig::default());
    let reply = b.encrypt(rng, b"reply").unwrap();
    recv(&mut a, &reply).unwrap();
    let m0 = a.encrypt(rng, b"0").unwrap();
    let m1 = a.encrypt(rng, b"1").unwrap();
    assert_eq!(m0[2..34], m1[2..34]);
    a.renew_sending_chain();
    let m2 = a.encrypt(rng, b"2").unwrap();
    assert_ne!(
        m2[2..34],
        m1[2..34],
        "the renewed chain reused the ratchet key"
    );
    assert_eq!(m2[34..38], 2u32.to_be_bytes(), "PN");
    assert_eq!(m2[38..42], 0u32.to_be_bytes(), "N");
    assert_eq!(recv(&mut b, &m0).unwrap(), b"0");
    assert_eq!(recv(&mut b, &m2).unwrap(), b"2");
    assert_eq!(b.skipped_keys(), 1);
    assert_eq!(recv(&mut b, &m1).unwrap(), b"1");
}

/// The new chain `renew_sending_chain` starts is rooted in the abandoned chain's DH step, and
/// its header names only the new ratchet key: a peer that has read no message of the
/// abandoned chain cannot take the step, so the new chain's messages fail to open when they
/// overtake the old chain's (and for good if those are lost), where an ordinary ratchet step
/// would skip ahead through PN. After `Device::restore_from_backup` this breaks a session
/// whose last sending chain's messages had not reached the peer.
#[test]
#[ignore = "bug: a chain started by renew_sending_chain opens only after the peer read the abandoned chain"]
fn a_renewed_chain_opens_before_the_abandoned_chain_arrives() {
    let rng = &mut SeededRng::from_label("renew overtaken");
    let (mut a, mut b, _) = pair(rng, SessionConfig::default());
    let reply = b.encrypt(rng, b"reply").unwrap();
    recv(&mut a, &reply).unwrap();
    let m0 = a.encrypt(rng, b"0").unwrap();
    a.renew_sending_chain();
    let m1 = a.encrypt(rng, b"1").unwrap();
    assert_eq!(recv(&mut b, &m1).unwrap(), b"1");
    assert_eq!(recv(&mut b, &m0).unwrap(), b"0");
}

/// A session takes a pre-key message only as the responder, and only one carrying the X3DH
/// values it began with: another initiator's pre-key message, or the initiator's own reflected
/// back, is `WrongSession` and changes nothing.
#[test]
fn a_session_takes_only_prekey_messages_of_its_own_origin() {
    let rng = &mut SeededRng::from_label("own origin");
    let (mut a, mut b, bob) = pair(rng, SessionConfig::default());
    let carol = device(rng);
    let verified = bundle(&bob, Some(2)).verify().unwrap();
    let mut c =
        Session::initiate(rng, &carol.identity, &verified, SessionConfig::default()).unwrap();
    let from_carol = c.encrypt(rng, b"carol").unwrap();
    refused(&mut b, &from_carol, RatchetError::WrongSession.into());
    assert!(a.awaiting_reply());
    let own = a.encrypt(rng, b"echo").unwrap();
    refused(&mut a, &own, RatchetError::WrongSession.into());
    // Alice's own further pre-key messages still continue Bob's session.
    assert_eq!(recv(&mut b, &own).unwrap(), b"echo");
}

/// A session's Debug names its role and counters (and, `debug_output_never_shows_secrets`
/// checks, no key).
#[test]
fn a_sessions_debug_shows_its_role_and_counters() {
    let rng = &mut SeededRng::from_label("debug counters");
    let (a, b, _) = pair(rng, SessionConfig::default());
    let s = format!("{a:?}");
    assert!(s.starts_with("Session {"), "{s}");
    assert!(s.contains("role: Initiator"), "{s}");
    assert!(s.contains("awaiting_reply: true"), "{s}");
    assert!(s.contains("sent_in_chain: Some(1)"), "{s}");
    assert!(s.contains("skipped_keys: 0"), "{s}");
    assert!(format!("{b:?}").contains("role: Responder"));
}

/// Loaded state must be state the protocol could have built: a responder has received (its
/// session began by decrypting) and never awaits a reply.
#[test]
fn a_loaded_responder_never_awaits_a_reply() {
    let rng = &mut SeededRng::from_label("responder awaiting");
    let (_, b, _) = pair(rng, SessionConfig::default());
    let mut v = b.to_bytes().to_vec();
    // Header 2, config 8, role 1, identity keys 64, EK 32, spk 4, opk 5, KEM 37, no pending
    // KEM ciphertext 1, then the awaiting flag.
    let awaiting_at = 2 + 8 + 1 + 64 + 32 + 4 + 5 + 37 + 1;
    assert_eq!((v[10], v[awaiting_at - 1], v[awaiting_at]), (1, 0, 0));
    assert!(Session::from_bytes(&v).is_ok());
    v[awaiting_at] = 1;
    assert_eq!(
        Session::from_bytes(&v).err(),
        Some(DecodeError::InvalidValue)
    );
}

/// Loaded state keeps the ML-KEM ciphertext exactly while a post-quantum initiator awaits its
/// reply: an awaiting initiator without it (whose pre-key messages could not be sent) is
/// refused.
#[test]
fn a_loaded_initiator_awaiting_a_reply_keeps_its_kem_ciphertext() {
    let rng = &mut SeededRng::from_label("pending kem");
    let (a, _, _) = pair(rng, SessionConfig::default());
    assert!(a.awaiting_reply());
    let bytes = a.to_bytes();
    // Header 2, config 8, role 1, identity keys 64, EK 32, spk 4, opk 5, KEM 37, then the
    // pending KEM ciphertext (flag and 1568 bytes).
    let pending_at = 2 + 8 + 1 + 64 + 32 + 4 + 5 + 37;
    assert_eq!((bytes[10], bytes[pending_at]), (0, 1));
    let mut v = bytes[..pending_at].to_vec();
    v.push(0);
    v.extend_from_slice(&bytes[pending_at + 1 + 1568..]);
    assert_eq!(
        Session::from_bytes(&v).err(),
        Some(DecodeError::InvalidValue)
    );
}

/// A ratchet message carries at least a whole 16-byte tag after its header: an empty
/// plaintext (exactly a tag) is a message, anything shorter is refused at decode as
/// `Truncated`.
#[test]
fn a_ratchet_message_carries_at_least_a_whole_tag() {
    let rng = &mut SeededRng::from_label("whole tag");
    let (mut a, mut b, _) = pair(rng, SessionConfig::default());
    // The header: 58 fixed bytes and the extension (the post-quantum ratchet's: 34 bytes
    // when its first byte's chunk bit is set, else 2).
    let header = |w: &[u8]| 58 + if w[58] & 0x40 != 0 { 34 } else { 2 };
    let empty = b.encrypt(rng, b"").unwrap();
    assert_eq!(empty.len(), header(&empty) + 16);
    assert_eq!(recv(&mut a, &empty).unwrap(), b"");
    let w = b.encrypt(rng, b"x").unwrap();
    assert_eq!(
        IncomingMessage::decode(&w[..header(&w) + 15]).err(),
        Some(DecodeError::Truncated)
    );
}

/// The store tells when its current signed prekey was made (to decide when to rotate): at
/// creation, then at each rotation.
#[test]
fn the_store_reports_when_its_signed_prekey_was_made() {
    let rng = &mut SeededRng::from_label("spk created at");
    let identity = IdentityKeyPair::generate(rng);
    let mut store = PreKeyStore::new(
        rng,
        &identity,
        Timestamp(1_000),
        PreKeyStoreConfig::default(),
    );
    assert_eq!(store.signed_prekey_created_at(), Timestamp(1_000));
    store.rotate_signed_prekey(rng, &identity, Timestamp(5_000));
    assert_eq!(store.signed_prekey_created_at(), Timestamp(5_000));
    let restored = PreKeyStore::from_bytes(&store.to_bytes()).unwrap();
    assert_eq!(restored.signed_prekey_created_at(), Timestamp(5_000));
}

/// Loaded prekey state holds at most `max_signed_prekeys` signed prekeys (the current one and
/// `max_signed_prekeys - 1` retired ones), whatever the rest of the state holds.
#[test]
fn a_loaded_store_keeps_no_more_signed_prekeys_than_its_config() {
    const SPK_LEN: usize = 4 + 32 + 32 + 64 + 8;
    const KEM_LEN: usize = 4 + 64 + 64 + 8 + 4;
    let rng = &mut SeededRng::from_label("retired bound");
    let identity = IdentityKeyPair::generate(rng);
    let mut store = PreKeyStore::new(rng, &identity, Timestamp(0), PreKeyStoreConfig::default());
    store.rotate_signed_prekey(rng, &identity, Timestamp(1));
    store.rotate_signed_prekey(rng, &identity, Timestamp(2));
    let bytes = store.to_bytes();
    // Header 2, config 20 (max_signed_prekeys first), counters 8, the current signed prekey,
    // two retired ones, then the ML-KEM part: next id 4, last-resort key, two retired keys;
    // then five empty counts (one-time, one-time ML-KEM, base keys of three signed prekeys).
    let retired_at = 2 + 20 + 8 + SPK_LEN;
    let kem_retired_at = retired_at + 4 + 2 * SPK_LEN + 4 + KEM_LEN;
    assert_eq!(bytes.len(), kem_retired_at + 4 + 2 * KEM_LEN + 5 * 4);
    assert_eq!(bytes[2..6], 3u32.to_be_bytes());
    assert_eq!(bytes[retired_at..retired_at + 4], 2u32.to_be_bytes());
    assert_eq!(
        bytes[kem_retired_at..kem_retired_at + 4],
        2u32.to_be_bytes()
    );
    // Keep one retired ML-KEM prekey only: still a valid store.
    let mut v = bytes[..kem_retired_at].to_vec();
    v.extend_from_slice(&1u32.to_be_bytes());
    v.extend_from_slice(&bytes[kem_retired_at + 4 + KEM_LEN..]);
    assert!(PreKeyStore::from_bytes(&v).is_ok());
    // With a limit of two signed prekeys, its two retired ones are one too many.
    v[2..6].copy_from_slice(&2u32.to_be_bytes());
    assert!(PreKeyStore::from_bytes(&v).is_err());
}
