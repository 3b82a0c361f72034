//! PQXDH: every session is hybrid X25519 + ML-KEM-1024. Hostile inputs — malformed or
//! wrong-length KEM keys and ciphertexts, a KEM prekey signed by another identity, a replayed
//! pre-key message, a used one-time KEM prekey, an exhausted last-resort key — are typed
//! errors that change nothing.

mod support;

use ratchetry::testing::SeededRng;
use ratchetry::x3dh::{KemPreKeyId, OneTimePreKeyId, PreKeyStoreConfig};
use ratchetry::{
    DecodeError, Error, IdentityKeyPair, IncomingMessage, PreKeyBundle, PreKeyStore, RatchetError,
    Session, SessionConfig, Timestamp, X3dhError,
};

const NOW: Timestamp = Timestamp(1_790_000_000_000);
/// Bundle layout: header 2, IK 32, spk id 4, SPK 32, signature 64, one-time opt 37 (present),
/// then the KEM prekey: id 4, key 1568, signature 64.
const KEM_AT: usize = 2 + 32 + 4 + 32 + 64 + 37;

struct Bob {
    identity: IdentityKeyPair,
    store: PreKeyStore,
}

fn bob(rng: &mut SeededRng, config: PreKeyStoreConfig) -> Bob {
    let identity = IdentityKeyPair::generate(rng);
    let mut store = PreKeyStore::new(rng, &identity, NOW, config);
    store.generate_one_time_prekeys(rng, 3);
    store.generate_one_time_kem_prekeys(rng, &identity, NOW, 3);
    Bob { identity, store }
}

fn first_message(rng: &mut SeededRng, bundle: &PreKeyBundle) -> Vec<u8> {
    let alice = IdentityKeyPair::generate(rng);
    let verified = bundle.clone().verify().unwrap();
    let mut a = Session::initiate(rng, &alice, &verified, SessionConfig::default()).unwrap();
    a.encrypt(rng, b"hello").unwrap()
}

fn accept(b: &mut Bob, wire: &[u8]) -> Result<Vec<u8>, Error> {
    let IncomingMessage::PreKey(pk) = IncomingMessage::decode(wire)? else {
        panic!("not a pre-key message")
    };
    Session::accept(&b.identity, &mut b.store, &pk, SessionConfig::default()).map(|(_, pt)| pt)
}

fn refused(b: &mut Bob, wire: &[u8], expected: Error) {
    let before = b.store.to_bytes();
    assert_eq!(accept(b, wire).err(), Some(expected));
    assert_eq!(*before, *b.store.to_bytes(), "a refusal changed the store");
}

#[test]
fn every_session_is_hybrid_and_uses_each_one_time_kem_prekey_once() {
    let rng = &mut SeededRng::from_label("pqxdh basic");
    let mut b = bob(rng, PreKeyStoreConfig::default());
    let bundle = b.store.bundle(
        &b.identity,
        Some(OneTimePreKeyId(1)),
        Some(KemPreKeyId(0x8000_0003)),
    );
    let bytes = bundle.to_bytes();
    assert_eq!(bytes.len(), KEM_AT + 4 + 1568 + 64);
    let wire = first_message(rng, &PreKeyBundle::from_bytes(&bytes).unwrap());
    let IncomingMessage::PreKey(pk) = IncomingMessage::decode(&wire).unwrap() else {
        panic!()
    };
    assert_eq!(pk.kem_prekey(), KemPreKeyId(0x8000_0003));
    let (session, _) = Session::accept(
        &b.identity,
        &mut b.store.clone(),
        &pk,
        SessionConfig::default(),
    )
    .unwrap();
    assert!(session.is_post_quantum());
    assert_eq!(accept(&mut b, &wire).unwrap(), b"hello");
    assert_eq!(b.store.one_time_kem_prekeys_remaining(), 2);
    assert_eq!(b.store.last_resort_uses(), 0);
    // The same message again: a replay.
    refused(&mut b, &wire, X3dhError::Replayed.into());
    // Another session from the same (stale) bundle: the one-time KEM prekey is gone.
    let mut stale = bundle.clone();
    let again = first_message(rng, &stale);
    let e = accept(&mut b, &again).err().unwrap();
    assert!(
        matches!(
            e,
            Error::X3dh(X3dhError::UnknownOneTimePreKey(1) | X3dhError::UnknownKemPreKey(3))
        ),
        "{e:?}"
    );
    // Without one-time prekeys, the last-resort KEM prekey serves, and its uses are counted.
    stale = b.store.bundle(&b.identity, None, None);
    let wire = first_message(rng, &stale);
    accept(&mut b, &wire).unwrap();
    assert_eq!(b.store.last_resort_uses(), 1);
}

#[test]
fn malformed_kem_keys_are_refused_when_parsing_a_bundle() {
    let rng = &mut SeededRng::from_label("pqxdh malformed key");
    let b = bob(rng, PreKeyStoreConfig::default());
    let bytes = b
        .store
        .bundle(&b.identity, Some(OneTimePreKeyId(1)), None)
        .to_bytes();
    // Every KEM coefficient is 12 bits and must be below q = 3329: 0xfff is not.
    let mut unreduced = bytes.clone();
    unreduced[KEM_AT + 4] = 0xff;
    unreduced[KEM_AT + 5] |= 0x0f;
    assert_eq!(
        PreKeyBundle::from_bytes(&unreduced).err(),
        Some(DecodeError::InvalidKey)
    );
    // Short and long.
    let mut short = bytes[..KEM_AT + 4 + 1000].to_vec();
    short.extend_from_slice(&[0; 64]);
    assert!(PreKeyBundle::from_bytes(&short).is_err());
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(
        PreKeyBundle::from_bytes(&long).err(),
        Some(DecodeError::TrailingBytes)
    );
    for len in 0..bytes.len() {
        assert!(PreKeyBundle::from_bytes(&bytes[..len]).is_err());
    }
}

#[test]
fn a_kem_prekey_signed_by_another_identity_is_refused() {
    let rng = &mut SeededRng::from_label("pqxdh foreign kem");
    let b = bob(rng, PreKeyStoreConfig::default());
    let mallory = bob(rng, PreKeyStoreConfig::default());
    let mut bytes = b.store.bundle(&b.identity, None, None).to_bytes();
    let theirs = mallory
        .store
        .bundle(&mallory.identity, None, None)
        .to_bytes();
    // Bob's bundle with Mallory's (validly signed, by Mallory) KEM prekey spliced in.
    let at = KEM_AT - 37 + 1;
    bytes[at..].copy_from_slice(&theirs[at..]);
    let spliced = PreKeyBundle::from_bytes(&bytes).unwrap();
    assert_eq!(
        spliced.verify().err(),
        Some(X3dhError::BadKemPreKeySignature)
    );
}

#[test]
fn tampered_or_truncated_kem_ciphertexts_change_nothing() {
    let rng = &mut SeededRng::from_label("pqxdh ciphertext");
    let mut b = bob(rng, PreKeyStoreConfig::default());
    let bundle = b.store.bundle(
        &b.identity,
        Some(OneTimePreKeyId(2)),
        Some(KemPreKeyId(0x8000_0002)),
    );
    let wire = first_message(rng, &bundle);
    // Prefix: header 2, IK 32, EK 32, spk 4, opk opt 5, KEM id 4, then the ciphertext.
    let ct_at = 2 + 32 + 32 + 4 + 5 + 4;
    for i in [ct_at, ct_at + 700, ct_at + 1567] {
        let mut bad = wire.clone();
        bad[i] ^= 1;
        // Implicit rejection: another shared secret, so the first message fails to open.
        refused(&mut b, &bad, RatchetError::AuthenticationFailed.into());
    }
    let mut unknown = wire.clone();
    unknown[ct_at - 4..ct_at].copy_from_slice(&99u32.to_be_bytes());
    refused(&mut b, &unknown, X3dhError::UnknownKemPreKey(99).into());
    assert!(IncomingMessage::decode(&wire[..ct_at + 1000]).is_err());
    assert_eq!(accept(&mut b, &wire).unwrap(), b"hello");
}

#[test]
fn the_last_resort_kem_prekey_is_bounded_and_rotates() {
    let rng = &mut SeededRng::from_label("pqxdh last resort");
    let config = PreKeyStoreConfig {
        max_last_resort_uses: 2,
        ..PreKeyStoreConfig::default()
    };
    let mut b = bob(rng, config);
    let bundle = b.store.bundle(&b.identity, None, None);
    let last_resort = b.store.last_resort_kem_prekey().id;
    for _ in 0..2 {
        let wire = first_message(rng, &bundle);
        accept(&mut b, &wire).unwrap();
    }
    assert_eq!(b.store.last_resort_uses(), 2);
    let wire = first_message(rng, &bundle);
    refused(
        &mut b,
        &wire,
        X3dhError::LastResortExhausted(last_resort.0).into(),
    );
    b.store.rotate_signed_prekey(rng, &b.identity, NOW);
    assert_eq!(b.store.last_resort_uses(), 0);
    assert_ne!(b.store.last_resort_kem_prekey().id, last_resort);
    let fresh = b.store.bundle(&b.identity, None, None);
    accept(&mut b, &first_message(rng, &fresh)).unwrap();
    // The state round-trips with its counters.
    let bytes = b.store.to_bytes();
    assert_eq!(*PreKeyStore::from_bytes(&bytes).unwrap().to_bytes(), *bytes);
}

/// Group, history and call keys travel inside pairwise sessions, so they are as post-quantum
/// as those: a sender key's distribution rides in a PQXDH pre-key message, and with the KEM
/// ciphertext altered (so the KEM secret differs) it cannot be read.
#[test]
fn group_keys_ride_on_post_quantum_sessions() {
    use support::World;
    let mut w = World::new("pqxdh groups");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let room = ratchetry::group::GroupId([5; 32]);
    w.set_members(room, &[alice, bob]);
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let o = w.send_group(a1, room, b"post-quantum room");
    let distribution = World::envelope_to(&o, b1);
    // Envelope header (99 bytes), then a pre-key message (type 0x03) with its KEM ciphertext.
    assert_eq!(distribution[99..101], [2, 3]);
    let ct_at = 99 + 2 + 32 + 32 + 4 + 1 + 4;
    let mut altered = distribution.clone();
    altered[ct_at + 10] ^= 0x40;
    w.refused(b1, &altered, RatchetError::AuthenticationFailed.into());
    w.receive(b1, &distribution).unwrap();
    let got = w.receive(b1, &o.group.unwrap().0).unwrap();
    assert_eq!(support::body(&got), Some(&b"post-quantum room"[..]));
}

/// A server assembles a bundle from what a device publishes: the signed prekey and the
/// last-resort ML-KEM prekey of its bundle without one-time keys, and one uploaded one-time
/// key of each kind. The result is the bundle the device itself would give for those keys.
#[test]
fn a_server_assembles_the_devices_bundle_from_its_parts() {
    let rng = &mut SeededRng::from_label("pqxdh assemble");
    let mut b = bob(rng, PreKeyStoreConfig::default());
    let published =
        PreKeyBundle::from_bytes(&b.store.bundle(&b.identity, None, None).to_bytes()).unwrap();
    assert!(published.one_time_prekey().is_none());
    let otk = b.store.generate_one_time_prekeys(rng, 1)[0];
    let kem = b
        .store
        .generate_one_time_kem_prekeys(rng, &b.identity, Timestamp(0), 1)[0]
        .clone();
    let assembled = PreKeyBundle::new(
        published.identity_key(),
        published.signed_prekey(),
        Some(otk),
        kem.clone(),
    );
    let own = b.store.bundle(&b.identity, Some(otk.id), Some(kem.id));
    assert_eq!(assembled.to_bytes(), own.to_bytes());
    assert_eq!(assembled.one_time_prekey(), Some(otk));
    assert_eq!(assembled.kem_prekey(), &kem);
    // With no one-time ML-KEM key left, the last-resort one the device published.
    let fallback = PreKeyBundle::new(
        published.identity_key(),
        published.signed_prekey(),
        None,
        published.kem_prekey().clone(),
    );
    assert_eq!(fallback, published);
    assert!(fallback.verify().is_ok());
}
