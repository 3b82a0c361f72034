//! Double Ratchet messages in an established session, each group next to its floor: the
//! primitive calls a message cannot avoid — KDF_CK (two HMAC-SHA256), the message-key HKDF
//! salted with the header's 16 random bytes (drawn from the RNG when sending), and AES-256-GCM
//! over the body with the 124-byte AAD. The round trip adds, per direction
//! change, one X25519 key generation, two X25519 (receiving and sending halves of the DH
//! ratchet) and two KDF_RK HKDFs. Read `op / floor` as the overhead ratio.

// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rand_core::Rng;
use ratchetry::testing::SeededRng;
use ratchetry::testing::hooks::store_before_pq_ratchet;
use ratchetry::testing::raw::{
    aes256gcm_open, aes256gcm_seal, hkdf_sha256, hmac_sha256, x25519, x25519_public,
};
use ratchetry::{IdentityKeyPair, IncomingMessage, PreKeyStore, Session, SessionConfig, Timestamp};

fn pair(rng: &mut SeededRng) -> (Session, Session) {
    pair_with(rng, false)
}

/// A pair whose sessions run the post-quantum ratchet when `pq`, 300 messages into a
/// conversation (mid-epoch, both chains mixing an epoch secret).
fn pair_with(rng: &mut SeededRng, pq: bool) -> (Session, Session) {
    let a = IdentityKeyPair::generate(rng);
    let b = IdentityKeyPair::generate(rng);
    let mut store = PreKeyStore::new(rng, &b, Timestamp(0), Default::default());
    // Without `pq`, the store is one from before the ratchet: its last-resort ML-KEM prekey
    // is unmarked.
    let kem = if pq {
        Some(store.generate_one_time_kem_prekeys(rng, &b, Timestamp(0), 1)[0].id)
    } else {
        store_before_pq_ratchet(&mut store, &b);
        None
    };
    let bundle = store.bundle(&b, None, kem).verify().unwrap();
    let mut sa = Session::initiate(rng, &a, &bundle, SessionConfig::default()).unwrap();
    let w = sa.encrypt(rng, b"hi").unwrap();
    let IncomingMessage::PreKey(m) = IncomingMessage::decode(&w).unwrap() else {
        panic!()
    };
    let (mut sb, _) = Session::accept(&b, &mut store, &m, SessionConfig::default()).unwrap();
    let r = sb.encrypt(rng, b"hi").unwrap();
    sa.decrypt(&IncomingMessage::decode(&r).unwrap()).unwrap();
    let w = sa.encrypt(rng, b"steady").unwrap();
    sb.decrypt(&IncomingMessage::decode(&w).unwrap()).unwrap();
    if pq {
        for _ in 0..150 {
            let w = sb.encrypt(rng, b"warm").unwrap();
            sa.decrypt(&IncomingMessage::decode(&w).unwrap()).unwrap();
            let w = sa.encrypt(rng, b"warm").unwrap();
            sb.decrypt(&IncomingMessage::decode(&w).unwrap()).unwrap();
        }
    }
    (sa, sb)
}

fn message_keys(ck: &[u8; 32], salt: &[u8; 16]) -> ([u8; 32], [u8; 12]) {
    let mk = hmac_sha256(ck, &[1]);
    black_box(hmac_sha256(ck, &[2]));
    let mut okm = [0u8; 44];
    hkdf_sha256(Some(salt), &mk, b"ratchetry v1 message keys", &mut okm).unwrap();
    (okm[..32].try_into().unwrap(), okm[32..].try_into().unwrap())
}

fn bench(c: &mut Criterion) {
    let rng = &mut SeededRng::from_label("bench ratchet");
    for (len, name) in [(64usize, "64B"), (1024, "1KiB")] {
        let body = vec![0x42u8; len];
        let aad = [3u8; 124];

        let mut g = c.benchmark_group(format!("encrypt/{name}"));
        g.sample_size(50)
            .measurement_time(Duration::from_secs(2))
            .warm_up_time(Duration::from_millis(500));
        let (mut a, _) = pair(rng);
        g.bench_function("op", |b| {
            b.iter(|| black_box(a.encrypt(rng, black_box(&body)).unwrap()))
        });
        // The same with the post-quantum ratchet, one chain of sends from a mid-epoch state
        // (after its first chunks, each carries a parity chunk of the key it publishes).
        let (mut a_steady, _) = pair_with(rng, true);
        g.bench_function("op_pq_steady", |b| {
            b.iter(|| black_box(a_steady.encrypt(rng, black_box(&body)).unwrap()))
        });
        // The same with the post-quantum ratchet, each send from the same mid-epoch state.
        let (a_pq, _) = pair_with(rng, true);
        g.bench_function("op_pq", |b| {
            b.iter_batched(
                || a_pq.clone(),
                |mut a| black_box(a.encrypt(rng, black_box(&body)).unwrap()),
                BatchSize::SmallInput,
            )
        });
        g.bench_function("op_clone", |b| {
            b.iter_batched(
                || a.clone(),
                |mut a| black_box(a.encrypt(rng, black_box(&body)).unwrap()),
                BatchSize::SmallInput,
            )
        });
        g.bench_function("floor", |b| {
            b.iter(|| {
                let mut salt = [0u8; 16];
                rng.fill_bytes(&mut salt);
                let (key, nonce) = message_keys(&[9; 32], &salt);
                black_box(aes256gcm_seal(&key, &nonce, &aad, black_box(&body)))
            })
        });
        g.finish();

        let mut g = c.benchmark_group(format!("decrypt/{name}"));
        g.sample_size(50)
            .measurement_time(Duration::from_secs(2))
            .warm_up_time(Duration::from_millis(500));
        let (mut a, mut bob) = pair(rng);
        g.bench_function("op", |b| {
            b.iter_batched(
                || a.encrypt(rng, &body).unwrap(),
                |wire| {
                    black_box(
                        bob.decrypt(&IncomingMessage::decode(&wire).unwrap())
                            .unwrap(),
                    )
                },
                BatchSize::SmallInput,
            )
        });
        // Both sides from the same state each time: the message is always the next one. The
        // session is returned, so its drop (a mid-epoch post-quantum state holds collected
        // chunks) falls outside the timing, as in `op`.
        let (a_pq, bob_pq) = pair_with(rng, true);
        g.bench_function("op_pq", |b| {
            b.iter_batched(
                || (bob_pq.clone(), a_pq.clone().encrypt(rng, &body).unwrap()),
                |(mut bob, wire)| {
                    let plaintext = bob
                        .decrypt(&IncomingMessage::decode(&wire).unwrap())
                        .unwrap();
                    black_box((bob, plaintext))
                },
                BatchSize::SmallInput,
            )
        });
        g.bench_function("op_clone", |b| {
            b.iter_batched(
                || (bob.clone(), a.clone().encrypt(rng, &body).unwrap()),
                |(mut bob, wire)| {
                    let plaintext = bob
                        .decrypt(&IncomingMessage::decode(&wire).unwrap())
                        .unwrap();
                    black_box((bob, plaintext))
                },
                BatchSize::SmallInput,
            )
        });
        let (key, nonce) = message_keys(&[9; 32], &[8; 16]);
        let sealed = aes256gcm_seal(&key, &nonce, &aad, &body);
        g.bench_function("floor", |b| {
            b.iter(|| {
                let (key, nonce) = message_keys(&[9; 32], &[8; 16]);
                black_box(aes256gcm_open(&key, &nonce, &aad, black_box(&sealed)).unwrap())
            })
        });
        g.finish();
    }

    let body = vec![0x42u8; 1024];
    let aad = [3u8; 124];
    let mut g = c.benchmark_group("round_trip_dh_ratchet/1KiB");
    g.sample_size(50)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    let (mut a, mut bob) = pair(rng);
    g.bench_function("op", |b| {
        b.iter(|| {
            let w = a.encrypt(rng, &body).unwrap();
            bob.decrypt(&IncomingMessage::decode(&w).unwrap()).unwrap();
            let r = bob.encrypt(rng, &body).unwrap();
            black_box(a.decrypt(&IncomingMessage::decode(&r).unwrap()).unwrap())
        })
    });
    let p = x25519_public([9; 32]);
    g.bench_function("floor", |b| {
        b.iter(|| {
            for _ in 0..2 {
                black_box(x25519_public([1; 32]));
                for _ in 0..2 {
                    black_box(x25519([2; 32], p).unwrap());
                    let mut rk = [0u8; 64];
                    hkdf_sha256(Some(&[4; 32]), &[5; 32], b"ratchetry v1 root", &mut rk).unwrap();
                }
                let mut salt = [0u8; 16];
                rng.fill_bytes(&mut salt);
                let (key, nonce) = message_keys(&[9; 32], &salt);
                let sealed = aes256gcm_seal(&key, &nonce, &aad, &body);
                let (key, nonce) = message_keys(&[9; 32], &salt);
                black_box(aes256gcm_open(&key, &nonce, &aad, &sealed).unwrap());
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
