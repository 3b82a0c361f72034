//! pq-ratchet.json: the post-quantum ratchet (PROTOCOL.md 25): its erasure code, and a whole
//! conversation of sessions that run it, with messages lost, through three epochs.

use ratchetry::testing::{SeededRng, vectors};
use ratchetry::{
    IdentityKeyPair, IncomingMessage, PreKeyStore, PreKeyStoreConfig, Session, SessionConfig,
};
use serde::{Deserialize, Serialize};

use super::{GENERATOR, T0, draw, generated_and_committed, h, seeded};

#[derive(Serialize, Deserialize)]
pub(super) struct PqFile {
    description: String,
    generator: String,
    rng_seed: String,
    erasure: Vec<ErasureVector>,
    /// The conversation: what each message was, whether it arrived, and both epochs after.
    conversation: Conversation,
}

#[derive(Serialize, Deserialize)]
struct ErasureVector {
    payload: String,
    chunks: Vec<IndexedChunk>,
}

#[derive(Serialize, Deserialize)]
struct IndexedChunk {
    index: u8,
    chunk: String,
}

#[derive(Serialize, Deserialize)]
struct Conversation {
    rng_seed: String,
    bundle: String,
    /// Which messages are lost.
    loss: String,
    messages: Vec<PqMessage>,
}

#[derive(Serialize, Deserialize)]
struct PqMessage {
    /// "a0", "b0", "a1", …: sent by Alice (the initiator) or Bob, alternately.
    label: String,
    plaintext: String,
    wire: String,
    /// The header extension (25.5).
    extension: String,
    delivered: bool,
    /// The post-quantum epoch each side knows after the message was sent and, if delivered,
    /// received.
    alice_epoch: u32,
    bob_epoch: u32,
    /// Both sessions' state (10.3, version 3) after every 40th message and the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alice_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bob_state: Option<String>,
}

const MESSAGES: usize = 600;

/// Message `i` (from 0) is lost when `i % 4 == 2` (every other one of Alice's, so that only
/// every other chunk of hers arrives and her vector's chunk indexes wrap past 64, 25.4) or
/// `i % 10 == 7` (every fifth of Bob's).
fn lost(i: usize) -> bool {
    i % 4 == 2 || i % 10 == 7
}

/// The extension of a pairwise message (9.1, 9.2).
fn extension_of(wire: &[u8]) -> &[u8] {
    let header = if wire[1] == 0x03 {
        // 9.2: the prefix, with or without a one-time prekey id.
        let opk = wire[2 + 32 + 32 + 4] == 1;
        2 + 32 + 32 + 4 + 1 + if opk { 4 } else { 0 } + 4 + 1568
    } else {
        0
    };
    // After the header's fixed 58 bytes: 34 bytes when the chunk bit is set, else 2.
    let len = if wire[header + 58] & 0x40 != 0 { 34 } else { 2 };
    &wire[header + 58..header + 58 + len]
}

pub(super) fn pq_file() -> PqFile {
    let (seed, mut rng) = seeded("ratchetry pq ratchet erasure code");
    let erasure = [2usize, 4, 30, 36]
        .iter()
        .map(|&k| {
            let mut payload = vec![0u8; k * 32];
            for chunk in payload.chunks_mut(32) {
                chunk.copy_from_slice(&draw::<32>(&mut rng));
            }
            let chunks = [0, k - 1, k, k + 1, 63]
                .iter()
                .map(|&i| IndexedChunk {
                    index: i as u8,
                    chunk: h(vectors::erasure_chunk(&payload, i as u8)),
                })
                .collect();
            ErasureVector {
                payload: h(&payload),
                chunks,
            }
        })
        .collect();
    let (conversation_seed, mut rng) = seeded("ratchetry pq ratchet conversation");
    PqFile {
        description: "The post-quantum ratchet (PROTOCOL.md 25). `erasure`: payloads of 2, 4, \
                      30 and 36 symbols (drawn from rng_seed) and their chunks at five indexes \
                      (25.1). `conversation`: Alice and Bob from one generator (conversation \
                      rng_seed), drawn in the order of section 11: Alice's identity, Bob's, \
                      Bob's store, one one-time ML-KEM prekey (its id \
                      has bit 31 set, so the session runs the ratchet), Alice's \
                      Session::initiate with the bundle of that key and no one-time prekey; \
                      then 600 messages in strict alternation from Alice, every other one of \
                      Alice's and every fifth of Bob's lost, \
                      every send drawing per 8.5 and 25.4. Schema: test-vectors/README.md."
            .into(),
        generator: GENERATOR.into(),
        rng_seed: h(seed),
        erasure,
        conversation: conversation(conversation_seed, &mut rng),
    }
}

fn conversation(seed: [u8; 32], rng: &mut SeededRng) -> Conversation {
    let alice = IdentityKeyPair::generate(rng);
    let bob = IdentityKeyPair::generate(rng);
    let mut store = PreKeyStore::new(rng, &bob, T0, PreKeyStoreConfig::default());
    let kem = store.generate_one_time_kem_prekeys(rng, &bob, T0, 1)[0].id;
    assert!(kem.pq_ratchet());
    let bundle = store.bundle(&bob, None, Some(kem));
    let mut a = Session::initiate(
        rng,
        &alice,
        &bundle.clone().verify().unwrap(),
        SessionConfig::default(),
    )
    .unwrap();
    let mut b: Option<Session> = None;
    let mut messages = Vec::new();
    for i in 0..MESSAGES {
        let from_alice = i % 2 == 0;
        let label = format!("{}{}", if from_alice { 'a' } else { 'b' }, i / 2);
        let plaintext = format!("message {label}").into_bytes();
        let wire = if from_alice {
            a.encrypt(rng, &plaintext).unwrap()
        } else {
            b.as_mut().unwrap().encrypt(rng, &plaintext).unwrap()
        };
        // The first message must arrive: Bob's session begins with it.
        let delivered = i == 0 || !lost(i);
        if delivered {
            let msg = IncomingMessage::decode(&wire).unwrap();
            let opened = match (&mut b, from_alice) {
                (None, _) => {
                    let IncomingMessage::PreKey(pk) = msg else {
                        panic!("a pre-key message")
                    };
                    let (s, pt) =
                        Session::accept(&bob, &mut store, &pk, SessionConfig::default()).unwrap();
                    b = Some(s);
                    pt
                }
                (Some(b), true) => b.decrypt(&msg).unwrap(),
                (Some(_), false) => a.decrypt(&msg).unwrap(),
            };
            assert_eq!(opened, plaintext);
        }
        let b_ref = b.as_ref().unwrap();
        let checkpoint = i % 40 == 39 || i == MESSAGES - 1;
        messages.push(PqMessage {
            label,
            plaintext: h(&plaintext),
            extension: h(extension_of(&wire)),
            wire: h(&wire),
            delivered,
            alice_epoch: a.pq_ratchet_epoch().unwrap(),
            bob_epoch: b_ref.pq_ratchet_epoch().unwrap(),
            alice_state: checkpoint.then(|| h(&*a.to_bytes())),
            bob_state: checkpoint.then(|| h(&*b_ref.to_bytes())),
        });
    }
    let last = messages.last().unwrap();
    assert!(
        last.alice_epoch.min(last.bob_epoch) >= 3,
        "the conversation completes three epochs under loss"
    );
    Conversation {
        rng_seed: h(seed),
        bundle: h(bundle.to_bytes()),
        loss: "message i (from 0) is lost when i % 4 == 2 or i % 10 == 7".into(),
        messages,
    }
}

#[test]
fn pq_ratchet_vectors() {
    let file = generated_and_committed("pq-ratchet.json", &pq_file());
    // The erasure code from its definition (25.1), independently of the crate's code.
    for v in &file.erasure {
        let payload = super::unhex(&v.payload);
        for c in &v.chunks {
            assert_eq!(h(spec_chunk(&payload, c.index)), c.chunk);
        }
    }
}

/// 25.1 by Lagrange interpolation over GF(2^8) with 0x11d, written out again.
fn spec_chunk(payload: &[u8], index: u8) -> [u8; 32] {
    fn mul(mut a: u8, mut b: u8) -> u8 {
        let mut p = 0u8;
        while b != 0 {
            if b & 1 != 0 {
                p ^= a;
            }
            let carry = a & 0x80 != 0;
            a <<= 1;
            if carry {
                a ^= 0x1d;
            }
            b >>= 1;
        }
        p
    }
    fn inv(a: u8) -> u8 {
        (1..=255u8).find(|&b| mul(a, b) == 1).unwrap()
    }
    let k = payload.len() / 32;
    let mut out = [0u8; 32];
    for j in 0..k {
        let mut w = 1u8;
        for m in 0..k {
            if m != j {
                w = mul(w, mul(index ^ m as u8, inv(j as u8 ^ m as u8)));
            }
        }
        for (b, o) in out.iter_mut().enumerate() {
            *o ^= mul(w, payload[j * 32 + b]);
        }
    }
    out
}
