//! pq-ratchet.json: the post-quantum ratchet (PROTOCOL.md 25): its erasure code, and a whole
//! conversation of sessions that run it, with messages lost, through three epochs, then one
//! side restored from a stale copy (8.5 renewal, 25.4 PeerRestored).

use ratchetry::testing::hooks::session_keys;
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
    /// After it, Alice restored from a stale copy of her state (8.5 renewal, 25.4 PeerRestored).
    restore: Restore,
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

/// The restore episode: its events, in order, and both states at its end.
#[derive(Serialize, Deserialize)]
struct Restore {
    events: Vec<RestoreEvent>,
    alice_epoch: u32,
    bob_epoch: u32,
    alice_state: String,
    bob_state: String,
}

/// One step of the episode: `send` (by `side`, of `label`: `plaintext`, `wire`, `extension`),
/// `read` (by `side`, of `label`; both epochs after), `copy` (`side`'s state is copied) or
/// `restore` (`side` takes the copy and renews its sending chain, 8.5).
#[derive(Serialize, Deserialize, Default)]
struct RestoreEvent {
    event: String,
    side: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    plaintext: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wire: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    extension: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alice_epoch: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bob_epoch: Option<u32>,
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
    let (conversation, sessions) = conversation(conversation_seed, &mut rng);
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
                      every send drawing per 8.5 and 25.4. `restore`: from there, with the \
                      same generator and no loss, both sides send and read in the order the \
                      events list until one is just before a send that encapsulates; its state \
                      is copied, it sends three messages the peer reads, is restored from the \
                      copy and renews its sending chain (8.5); the peer reads its next message \
                      (PeerRestored, 25.4) and both go on until each has completed two more \
                      epochs. Schema: test-vectors/README.md."
            .into(),
        generator: GENERATOR.into(),
        rng_seed: h(seed),
        erasure,
        conversation,
        restore: restore(sessions, &mut rng),
    }
}

fn conversation(seed: [u8; 32], rng: &mut SeededRng) -> (Conversation, [Session; 2]) {
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
    let conversation = Conversation {
        rng_seed: h(seed),
        bundle: h(bundle.to_bytes()),
        loss: "message i (from 0) is lost when i % 4 == 2 or i % 10 == 7".into(),
        messages,
    };
    (conversation, [a, b.unwrap()])
}

/// The restore episode, from the conversation's end (PqFile's description).
fn restore(sessions: [Session; 2], rng: &mut SeededRng) -> Restore {
    let mut ep = Episode {
        s: sessions,
        events: Vec::new(),
        in_flight: Default::default(),
        n: 0,
    };
    // Each side sends or reads the oldest message in flight to it, in an order of the
    // generator's own (xorshift, not drawn from `rng`: the events record it), until one side
    // `x` stands just before a send that encapsulates, with a sending chain of which the peer
    // read a message (so that a renewed chain opens at the peer, 8.5).
    let mut order = 0x9e37_79b9_7f4a_7c15u64;
    let x = loop {
        assert!(ep.n < 2000, "no side came before an encapsulation");
        order ^= order << 13;
        order ^= order >> 7;
        order ^= order << 17;
        let side = (order % 2) as usize;
        if order % 8 < 3 || ep.in_flight[side].is_empty() {
            ep.send(rng, side);
        } else {
            ep.read(side);
        }
        let due = |x: usize| {
            let s = &ep.s[x];
            let keys = session_keys(s);
            let peer_read_it =
                session_keys(&ep.s[1 - x]).receiving.map(|r| r.0) == Some(keys.ratchet_public);
            let mut trial = s.clone();
            let e = trial.pq_ratchet_epoch();
            keys.sending.is_some()
                && peer_read_it
                && trial.encrypt(&mut rng.clone(), b"").is_ok()
                && trial.pq_ratchet_epoch() > e
        };
        if let Some(x) = [0, 1].into_iter().find(|x| due(*x)) {
            break x;
        }
    };
    let peer = 1 - x;
    // The copy, then three messages the restore forgets, read by the peer with all else in
    // flight to it; the restored side reads all in flight to it, renews, and writes first.
    let copy = ep.s[x].to_bytes();
    ep.event("copy", x);
    for _ in 0..3 {
        ep.send(rng, x);
    }
    while !ep.in_flight[peer].is_empty() {
        ep.read(peer);
    }
    ep.s[x] = Session::from_bytes(&copy).unwrap();
    ep.s[x].renew_sending_chain();
    ep.event("restore", x);
    while !ep.in_flight[x].is_empty() {
        ep.read(x);
    }
    let start = ep.epochs();
    let mut from = x;
    while ep.epochs()[0] < start[0] + 2 || ep.epochs()[1] < start[1] + 2 {
        assert!(ep.n < 4000, "the epochs stalled after the restore");
        ep.send(rng, from);
        ep.read(1 - from);
        from = 1 - from;
    }
    let [alice_epoch, bob_epoch] = ep.epochs();
    Restore {
        events: ep.events,
        alice_epoch,
        bob_epoch,
        alice_state: h(&*ep.s[0].to_bytes()),
        bob_state: h(&*ep.s[1].to_bytes()),
    }
}

/// The restore episode's sessions, messages in flight to each side (oldest first) and events.
struct Episode {
    s: [Session; 2],
    events: Vec<RestoreEvent>,
    in_flight: [std::collections::VecDeque<InFlight>; 2],
    n: usize,
}

/// A message in flight: its label, plaintext and wire bytes.
type InFlight = (String, Vec<u8>, Vec<u8>);

const SIDES: [&str; 2] = ["alice", "bob"];

impl Episode {
    fn epochs(&self) -> [u32; 2] {
        [0, 1].map(|i| self.s[i].pq_ratchet_epoch().unwrap())
    }

    fn event(&mut self, event: &str, side: usize) {
        self.events.push(RestoreEvent {
            event: event.into(),
            side: SIDES[side].into(),
            ..Default::default()
        });
    }

    fn send(&mut self, rng: &mut SeededRng, side: usize) {
        let label = format!("r{}", self.n);
        self.n += 1;
        let plaintext = format!("message {label}").into_bytes();
        let wire = self.s[side].encrypt(rng, &plaintext).unwrap();
        self.events.push(RestoreEvent {
            event: "send".into(),
            side: SIDES[side].into(),
            label: Some(label.clone()),
            plaintext: Some(h(&plaintext)),
            extension: Some(h(extension_of(&wire))),
            wire: Some(h(&wire)),
            ..Default::default()
        });
        self.in_flight[1 - side].push_back((label, plaintext, wire));
    }

    /// `side` reads the oldest message in flight to it.
    fn read(&mut self, side: usize) {
        let (label, plaintext, wire) = self.in_flight[side].pop_front().unwrap();
        let opened = self.s[side]
            .decrypt(&IncomingMessage::decode(&wire).unwrap())
            .unwrap();
        assert_eq!(opened, plaintext);
        let [a, b] = self.epochs();
        self.events.push(RestoreEvent {
            event: "read".into(),
            side: SIDES[side].into(),
            label: Some(label),
            alice_epoch: Some(a),
            bob_epoch: Some(b),
            ..Default::default()
        });
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
