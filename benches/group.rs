//! Sender-key group messages: encrypt and decrypt of 64 B and 1 KiB, each next to its floor —
//! the primitive calls a group message cannot avoid: KDF_CK (two HMAC-SHA256), the message-key
//! HKDF salted with the header's 16 random bytes (drawn from the RNG on the sending side),
//! AES-256-GCM over the body with the 58-byte header as AAD, and one Ed25519 signature (sign or
//! strict verify) over the sender prefix (label, identity key, 36-byte address context),
//! header and ciphertext. Read `op / floor` as the overhead ratio.

// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rand_core::Rng;
use ratchetry::IdentityKeyPair;
use ratchetry::group::{
    GroupConfig, GroupId, GroupMessage, GroupSender, InboundSenderKey, OutboundGroupSession,
};
use ratchetry::testing::SeededRng;
use ratchetry::testing::raw::{
    Ed25519Signer, aes256gcm_open, aes256gcm_seal, hkdf_sha256, hmac_sha256,
};

const SIZES: [(usize, &str); 2] = [(64, "64B"), (1024, "1KiB")];

/// The primitive work of one group message of `len` bytes, on the sending side.
fn floor_encrypt(
    rng: &mut SeededRng,
    signer: &Ed25519Signer,
    ck: &[u8; 32],
    body: &[u8],
) -> Vec<u8> {
    let mk = hmac_sha256(ck, &[1]);
    black_box(hmac_sha256(ck, &[2]));
    let mut salt = [0u8; 16];
    rng.fill_bytes(&mut salt);
    let mut okm = [0u8; 44];
    hkdf_sha256(
        Some(&salt),
        &mk,
        b"ratchetry v1 group message keys",
        &mut okm,
    );
    let (key, nonce) = okm.split_at(32);
    // The header ends with the salt, as in a real group message (the decrypt floor reads it).
    let mut header = [7u8; 58];
    header[42..].copy_from_slice(&salt);
    let ct = aes256gcm_seal(
        key.try_into().unwrap(),
        nonce.try_into().unwrap(),
        &header,
        body,
    );
    // The signature prefix: the label, the sender's identity key and its address context.
    let mut signed = b"ratchetry v1 group message".to_vec();
    signed.extend_from_slice(&[0x11; 32]);
    signed.push(36);
    signed.extend_from_slice(&[0x22; 36]);
    signed.extend_from_slice(&header);
    signed.extend_from_slice(&ct);
    let sig = signer.sign(&signed);
    signed.extend_from_slice(&sig);
    signed
}

fn bench(c: &mut Criterion) {
    let rng = &mut SeededRng::from_label("bench group");
    let sender = GroupSender::new(IdentityKeyPair::generate(rng).public(), &[0x22; 36]).unwrap();
    let config = GroupConfig::default();
    let signer = Ed25519Signer::from_seed(&[5; 32]);
    let verifier = signer.verifier();
    for (len, name) in SIZES {
        let body = vec![0x42u8; len];
        let mut g = c.benchmark_group(format!("group_encrypt/{name}"));
        g.sample_size(50)
            .measurement_time(Duration::from_secs(2))
            .warm_up_time(Duration::from_millis(500));
        let mut out = OutboundGroupSession::new(rng, GroupId([1; 32]), sender.clone());
        g.bench_function("op", |b| {
            b.iter(|| black_box(out.encrypt(rng, black_box(&body)).unwrap()))
        });
        g.bench_function("floor", |b| {
            b.iter(|| black_box(floor_encrypt(rng, &signer, &[9; 32], black_box(&body))))
        });
        g.finish();

        let mut g = c.benchmark_group(format!("group_decrypt/{name}"));
        g.sample_size(50)
            .measurement_time(Duration::from_secs(2))
            .warm_up_time(Duration::from_millis(500));
        let mut out = OutboundGroupSession::new(rng, GroupId([2; 32]), sender.clone());
        let mut rx = InboundSenderKey::new(sender.clone(), &out.distribution());
        g.bench_function("op", |b| {
            b.iter_batched(
                || out.encrypt(rng, &body).unwrap(),
                |wire| {
                    black_box(
                        rx.decrypt(&config, &GroupMessage::decode(&wire).unwrap())
                            .unwrap(),
                    )
                },
                BatchSize::SmallInput,
            )
        });
        let message = floor_encrypt(rng, &signer, &[9; 32], &body);
        g.bench_function("floor", |b| {
            b.iter(|| {
                let (signed, sig) = message.split_at(message.len() - 64);
                assert!(verifier.verify(signed, sig.try_into().unwrap()));
                let ck = [9u8; 32];
                let mk = hmac_sha256(&ck, &[1]);
                black_box(hmac_sha256(&ck, &[2]));
                // prefix (26 + 32 + 1 + 36) ‖ header (58) ‖ ct; the salt ends the header.
                let (prefix, header) = (95, 58);
                let salt = &signed[prefix + header - 16..prefix + header];
                let mut okm = [0u8; 44];
                hkdf_sha256(
                    Some(salt),
                    &mk,
                    b"ratchetry v1 group message keys",
                    &mut okm,
                );
                let (key, nonce) = okm.split_at(32);
                let ct = &signed[prefix + header..];
                black_box(
                    aes256gcm_open(
                        key.try_into().unwrap(),
                        nonce.try_into().unwrap(),
                        &signed[prefix..prefix + header],
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
