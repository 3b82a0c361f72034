//! PQXDH, initiator and responder, each next to its floor: the primitive calls the operation
//! cannot avoid. Read `op / floor` as the overhead ratio.
//!
//! - initiator = parse the bundle (decompress the identity key; check the ML-KEM key), verify
//!   the signed prekey's and the ML-KEM prekey's signatures, two X25519 key generations
//!   (ephemeral, first ratchet key), five X25519 (DH1-DH4 and the first ratchet step), one
//!   ML-KEM-1024 encapsulation (its key check included), HKDF for SK and for KDF_RK;
//! - responder = parse the pre-key message (the initiator's identity key), five X25519, one
//!   ML-KEM-1024 decapsulation (with the key expanded from its stored 64-byte seed, as FIPS 203
//!   keeps private keys), HKDF for SK, KDF_RK and the message keys, two HMAC (KDF_CK) and one
//!   AES-256-GCM open.
//!
//! The floor's `ed25519_verify` parses the public key itself (decompression included), so the
//! initiator floor adds only the X25519 mapping (`IdentityKey::from_bytes`) on top of it:
//! decompression is counted once in the op (the bundle parse) and once in the floor.

// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ratchetry::testing::SeededRng;
use ratchetry::testing::raw::{
    aes256gcm_open, aes256gcm_seal, ed25519_sign, ed25519_verify, hkdf_sha256, hmac_sha256,
    mlkem1024_decapsulate, mlkem1024_encapsulate, mlkem1024_keygen, x25519, x25519_public,
};
use ratchetry::x3dh::OneTimePreKeyId;
use ratchetry::{
    IdentityKey, IdentityKeyPair, IncomingMessage, PreKeyBundle, PreKeyStore, Session,
    SessionConfig, Timestamp,
};

fn bench(c: &mut Criterion) {
    let rng = &mut SeededRng::from_label("bench x3dh");
    let alice = IdentityKeyPair::generate(rng);
    let bob = IdentityKeyPair::generate(rng);
    let mut store = PreKeyStore::new(rng, &bob, Timestamp(0), Default::default());
    store.generate_one_time_prekeys(rng, 1);
    let bundle_bytes = store
        .bundle(&bob, Some(OneTimePreKeyId(1)), None)
        .to_bytes();
    let config = SessionConfig::default();

    let mut g = c.benchmark_group("pqxdh");
    g.sample_size(50)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));

    g.bench_function("initiator", |b| {
        b.iter(|| {
            let bundle = PreKeyBundle::from_bytes(black_box(&bundle_bytes))
                .unwrap()
                .verify()
                .unwrap();
            black_box(Session::initiate(rng, &alice, &bundle, config).unwrap())
        })
    });

    let id_bytes = bob.public().to_bytes();
    let (sig_pub, sig) = ed25519_sign(&[3; 32], &[7u8; 62]);
    let kem_message = vec![8u8; 1572];
    let (_, kem_sig) = ed25519_sign(&[3; 32], &kem_message);
    let (kem_pk, _) = mlkem1024_keygen(&[4; 64]);
    let (s1, s2, p) = ([1u8; 32], [2u8; 32], x25519_public([9; 32]));
    g.bench_function("initiator_floor", |b| {
        b.iter(|| {
            black_box(IdentityKey::from_bytes(black_box(&id_bytes)).unwrap());
            assert!(ed25519_verify(&sig_pub, &[7u8; 62], &sig));
            assert!(ed25519_verify(&sig_pub, &kem_message, &kem_sig));
            black_box(x25519_public(s1));
            black_box(x25519_public(s2));
            for _ in 0..5 {
                black_box(x25519(s1, p).unwrap());
            }
            black_box(mlkem1024_encapsulate(&kem_pk, &[6; 32]).unwrap());
            let mut sk = [0u8; 32];
            hkdf_sha256(Some(&[0; 32]), &[5u8; 192], b"ratchetry v1 pqxdh", &mut sk).unwrap();
            let mut rk = [0u8; 64];
            hkdf_sha256(Some(&sk), &[6u8; 32], b"ratchetry v1 root", &mut rk).unwrap();
            black_box(rk)
        })
    });

    let bundle = PreKeyBundle::from_bytes(&bundle_bytes)
        .unwrap()
        .verify()
        .unwrap();
    g.bench_function("responder", |b| {
        b.iter_batched(
            || {
                let mut s = Session::initiate(rng, &alice, &bundle, config).unwrap();
                (s.encrypt(rng, &[0x42; 64]).unwrap(), store.clone())
            },
            |(wire, mut store)| {
                let IncomingMessage::PreKey(m) = IncomingMessage::decode(&wire).unwrap() else {
                    panic!()
                };
                black_box(Session::accept(&bob, &mut store, &m, config).unwrap())
            },
            BatchSize::SmallInput,
        )
    });

    let sealed = aes256gcm_seal(&[1; 32], &[2; 12], &[3; 124], &[0x42; 64]);
    let alice_id = alice.public().to_bytes();
    let (ct, _) = mlkem1024_encapsulate(&kem_pk, &[6; 32]).unwrap();
    g.bench_function("responder_floor", |b| {
        b.iter(|| {
            black_box(IdentityKey::from_bytes(black_box(&alice_id)).unwrap());
            for _ in 0..5 {
                black_box(x25519(s1, p).unwrap());
            }
            black_box(mlkem1024_decapsulate(&[4; 64], &ct).unwrap());
            let mut sk = [0u8; 32];
            hkdf_sha256(Some(&[0; 32]), &[5u8; 192], b"ratchetry v1 pqxdh", &mut sk).unwrap();
            let mut rk = [0u8; 64];
            hkdf_sha256(Some(&sk), &[6u8; 32], b"ratchetry v1 root", &mut rk).unwrap();
            let mk = hmac_sha256(&rk[32..], &[1]);
            black_box(hmac_sha256(&rk[32..], &[2]));
            let mut okm = [0u8; 44];
            hkdf_sha256(Some(&[7; 16]), &mk, b"ratchetry v1 message keys", &mut okm).unwrap();
            black_box(aes256gcm_open(&[1; 32], &[2; 12], &[3; 124], &sealed).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
