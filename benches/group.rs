//! Sender-key group messages: encrypt and decrypt of 64 B and 1 KiB, each next to its floor —
//! the primitive calls a group message cannot avoid: KDF_CK (two HMAC-SHA256), the message-key
//! HKDF, AES-256-GCM over the body with the 42-byte header as AAD, and one Ed25519 signature
//! (sign or strict verify) over label ‖ header ‖ ciphertext. Read `op / floor` as the
//! overhead ratio.

// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ratchetry::IdentityKeyPair;
use ratchetry::group::{GroupConfig, GroupId, GroupMessage, GroupReceiver, OutboundGroupSession};
use ratchetry::primitives::raw::{
    Ed25519Signer, aes256gcm_open, aes256gcm_seal, hkdf_sha256, hmac_sha256,
};
use ratchetry::testing::SeededRng;

const SIZES: [(usize, &str); 2] = [(64, "64B"), (1024, "1KiB")];

/// The primitive work of one group message of `len` bytes, on the sending side.
fn floor_encrypt(signer: &Ed25519Signer, ck: &[u8; 32], body: &[u8]) -> Vec<u8> {
    let mk = hmac_sha256(ck, &[1]);
    black_box(hmac_sha256(ck, &[2]));
    let mut okm = [0u8; 44];
    hkdf_sha256(
        Some(&[0; 32]),
        &mk,
        b"ratchetry v1 group message keys",
        &mut okm,
    );
    let (key, nonce) = okm.split_at(32);
    let header = [7u8; 42];
    let ct = aes256gcm_seal(
        key.try_into().unwrap(),
        nonce.try_into().unwrap(),
        &header,
        body,
    );
    // The signature prefix is the label and the sender's 32-byte identity key.
    let mut signed = b"ratchetry v1 group message".to_vec();
    signed.extend_from_slice(&[0x11; 32]);
    signed.extend_from_slice(&header);
    signed.extend_from_slice(&ct);
    let sig = signer.sign(&signed);
    signed.extend_from_slice(&sig);
    signed
}

fn bench(c: &mut Criterion) {
    let rng = &mut SeededRng::from_label("bench group");
    let sender = IdentityKeyPair::generate(rng).public();
    let signer = Ed25519Signer::from_seed(&[5; 32]);
    let verifier = signer.verifier();
    for (len, name) in SIZES {
        let body = vec![0x42u8; len];
        let mut g = c.benchmark_group(format!("group_encrypt/{name}"));
        g.sample_size(50)
            .measurement_time(Duration::from_secs(2))
            .warm_up_time(Duration::from_millis(500));
        let mut out = OutboundGroupSession::new(rng, GroupId([1; 32]), &sender);
        g.bench_function("op", |b| {
            b.iter(|| black_box(out.encrypt(black_box(&body)).unwrap()))
        });
        g.bench_function("floor", |b| {
            b.iter(|| black_box(floor_encrypt(&signer, &[9; 32], black_box(&body))))
        });
        g.finish();

        let mut g = c.benchmark_group(format!("group_decrypt/{name}"));
        g.sample_size(50)
            .measurement_time(Duration::from_secs(2))
            .warm_up_time(Duration::from_millis(500));
        let mut out = OutboundGroupSession::new(rng, GroupId([2; 32]), &sender);
        let mut rx = GroupReceiver::new(GroupConfig::default());
        rx.process_distribution(&sender, &out.distribution())
            .unwrap();
        g.bench_function("op", |b| {
            b.iter_batched(
                || out.encrypt(&body).unwrap(),
                |wire| {
                    black_box(
                        rx.decrypt(&sender, &GroupMessage::decode(&wire).unwrap())
                            .unwrap(),
                    )
                },
                BatchSize::SmallInput,
            )
        });
        let message = floor_encrypt(&signer, &[9; 32], &body);
        g.bench_function("floor", |b| {
            b.iter(|| {
                let (signed, sig) = message.split_at(message.len() - 64);
                assert!(verifier.verify(signed, sig.try_into().unwrap()));
                let ck = [9u8; 32];
                let mk = hmac_sha256(&ck, &[1]);
                black_box(hmac_sha256(&ck, &[2]));
                let mut okm = [0u8; 44];
                hkdf_sha256(
                    Some(&[0; 32]),
                    &mk,
                    b"ratchetry v1 group message keys",
                    &mut okm,
                );
                let (key, nonce) = okm.split_at(32);
                // label (26) ‖ sender identity (32) ‖ header (42) ‖ ct
                let ct = &signed[58 + 42..];
                black_box(
                    aes256gcm_open(
                        key.try_into().unwrap(),
                        nonce.try_into().unwrap(),
                        &signed[58..100],
                        ct,
                    )
                    .unwrap(),
                )
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
