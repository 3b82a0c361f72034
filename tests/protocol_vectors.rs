//! The crate's own protocol vectors: `test-vectors/x3dh.json`, `kdf-chains.json` and
//! `ratchet-transcript.json`.
//!
//! Each file is generated from `SeededRng` (test-vectors/README.md specifies it) by
//!
//! ```text
//! cargo test --test protocol_vectors -- --ignored regenerate
//! ```
//!
//! and checked two ways by `cargo test`: regenerating must reproduce the committed file byte for
//! byte, and every value in the file is recomputed from its inputs with the formulas of
//! PROTOCOL.md through the raw primitives, independently of the session code.

use rand_core::Rng;
use ratchetry::primitives::raw;
use ratchetry::testing::{SeededRng, kdf, session_keys};
use ratchetry::x3dh::OneTimePreKeyId;
use ratchetry::{
    IdentityKeyPair, IncomingMessage, PreKeyStore, PreKeyStoreConfig, Session, SessionConfig,
    Timestamp,
};
use serde::{Deserialize, Serialize};

const GENERATOR: &str = "cargo test --test protocol_vectors -- --ignored regenerate";

fn h(bytes: impl AsRef<[u8]>) -> String {
    hex::encode(bytes)
}

fn unh<const N: usize>(s: &str) -> [u8; N] {
    hex::decode(s).unwrap().try_into().unwrap()
}

fn draw32(rng: &mut SeededRng) -> [u8; 32] {
    let mut b = [0u8; 32];
    rng.fill_bytes(&mut b);
    b
}

fn path(name: &str) -> String {
    format!("{}/test-vectors/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap() + "\n"
}

fn check_committed(name: &str, generated: &str) {
    let committed = std::fs::read_to_string(path(name)).unwrap();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "{name} differs from what the code generates (first at line {}); if the protocol \
             changed on purpose, update PROTOCOL.md and run `{GENERATOR}`",
            line + 1
        );
    }
}

// ---------------------------------------------------------------------------------------------
// x3dh.json

#[derive(Serialize, Deserialize)]
struct X3dhFile {
    description: String,
    generator: String,
    vectors: Vec<X3dhVector>,
}

#[derive(Serialize, Deserialize)]
struct X3dhVector {
    name: String,
    rng_seed: String,
    alice_identity_seed: String,
    alice_identity_public: String,
    alice_identity_x25519_public: String,
    bob_identity_seed: String,
    bob_identity_public: String,
    bob_identity_x25519_public: String,
    bob_signed_prekey_id: u32,
    bob_signed_prekey_secret: String,
    bob_signed_prekey_public: String,
    bob_signed_prekey_signature: String,
    bob_one_time_prekey_id: Option<u32>,
    bob_one_time_prekey_secret: Option<String>,
    bob_one_time_prekey_public: Option<String>,
    bundle: String,
    alice_ephemeral_secret: String,
    alice_ephemeral_public: String,
    dh1: String,
    dh2: String,
    dh3: String,
    dh4: Option<String>,
    shared_secret: String,
    associated_data: String,
    alice_ratchet_secret: String,
    alice_ratchet_public: String,
    dh_ratchet: String,
    root_key: String,
    sending_chain_key: String,
    plaintext: String,
    prekey_message: String,
}

fn x3dh_vector(name: &str, with_one_time: bool) -> X3dhVector {
    let seed: [u8; 32] = raw_sha256(name.as_bytes());
    let rng = &mut SeededRng::new(seed);
    let alice = IdentityKeyPair::generate(rng);
    let bob = IdentityKeyPair::generate(rng);
    let mut probe = rng.clone();
    let mut store = PreKeyStore::new(rng, &bob, Timestamp(0), PreKeyStoreConfig::default());
    let spk_secret = draw32(&mut probe);
    let otks = store.generate_one_time_prekeys(rng, 1);
    let otk_secret = draw32(&mut probe);
    let otk = with_one_time.then(|| OneTimePreKeyId(otks[0].id.0));
    let bundle = store.bundle(&bob, otk);
    let spk = store.signed_prekey();

    let mut probe = rng.clone();
    let ephemeral = draw32(&mut probe);
    let ratchet = draw32(&mut probe);
    let verified = bundle.clone().verify().unwrap();
    let mut session = Session::initiate(rng, &alice, &verified, SessionConfig::default()).unwrap();
    let keys = session_keys(&session);
    let plaintext = b"X3DH first message";
    let prekey_message = session.encrypt(rng, plaintext).unwrap();

    // Bob must accept it.
    let IncomingMessage::PreKey(pk) = IncomingMessage::decode(&prekey_message).unwrap() else {
        panic!("not a pre-key message")
    };
    let (_, opened) = Session::accept(&bob, &mut store, &pk, SessionConfig::default()).unwrap();
    assert_eq!(opened, plaintext);

    let a_id = alice.public();
    let b_id = bob.public();
    let dh = |s: [u8; 32], p: [u8; 32]| raw::x25519(s, p).unwrap();
    let bob_seed = seed_of(&bob);
    let alice_seed = seed_of(&alice);
    X3dhVector {
        name: name.into(),
        rng_seed: h(seed),
        alice_identity_seed: h(alice_seed),
        alice_identity_public: h(a_id.to_bytes()),
        alice_identity_x25519_public: h(a_id.dh_public().to_bytes()),
        bob_identity_seed: h(bob_seed),
        bob_identity_public: h(b_id.to_bytes()),
        bob_identity_x25519_public: h(b_id.dh_public().to_bytes()),
        bob_signed_prekey_id: spk.id.0,
        bob_signed_prekey_secret: h(spk_secret),
        bob_signed_prekey_public: h(spk.key.to_bytes()),
        bob_signed_prekey_signature: h(spk.signature.to_bytes()),
        bob_one_time_prekey_id: otk.map(|id| id.0),
        bob_one_time_prekey_secret: with_one_time.then(|| h(otk_secret)),
        bob_one_time_prekey_public: with_one_time.then(|| h(otks[0].key.to_bytes())),
        bundle: h(bundle.to_bytes()),
        alice_ephemeral_secret: h(ephemeral),
        alice_ephemeral_public: h(raw::x25519_public(ephemeral)),
        dh1: h(dh(x25519_scalar(&alice_seed), spk.key.to_bytes())),
        dh2: h(dh(ephemeral, b_id.dh_public().to_bytes())),
        dh3: h(dh(ephemeral, spk.key.to_bytes())),
        dh4: with_one_time.then(|| h(dh(ephemeral, otks[0].key.to_bytes()))),
        shared_secret: String::new(),
        associated_data: h([a_id.to_bytes(), b_id.to_bytes()].concat()),
        alice_ratchet_secret: h(ratchet),
        alice_ratchet_public: h(raw::x25519_public(ratchet)),
        dh_ratchet: h(dh(ratchet, spk.key.to_bytes())),
        root_key: h(keys.root_key),
        sending_chain_key: h(keys.sending.unwrap().0),
        plaintext: h(plaintext),
        prekey_message: h(prekey_message),
    }
    .with_shared_secret()
}

impl X3dhVector {
    /// SK per PROTOCOL.md from the DH values.
    fn compute_shared_secret(&self) -> [u8; 32] {
        let mut ikm = vec![0xFF; 32];
        for d in [&self.dh1, &self.dh2, &self.dh3] {
            ikm.extend(hex::decode(d).unwrap());
        }
        if let Some(d4) = &self.dh4 {
            ikm.extend(hex::decode(d4).unwrap());
        }
        let mut sk = [0u8; 32];
        raw::hkdf_sha256(Some(&[0u8; 32]), &ikm, b"ratchetry v1 x3dh", &mut sk).unwrap();
        sk
    }

    fn with_shared_secret(mut self) -> Self {
        self.shared_secret = h(self.compute_shared_secret());
        self
    }
}

fn seed_of(identity: &IdentityKeyPair) -> [u8; 32] {
    identity.to_bytes()[2..].try_into().unwrap()
}

/// The X25519 scalar of an Ed25519 seed: the first half of SHA-512(seed).
fn x25519_scalar(seed: &[u8; 32]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha512::digest(seed)[..32].try_into().unwrap()
}

fn raw_sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

fn x3dh_file() -> X3dhFile {
    X3dhFile {
        description: "X3DH between Alice (initiator) and Bob (responder), with and without a \
                      one-time prekey, through the first pre-key message. Schema: \
                      test-vectors/README.md."
            .into(),
        generator: GENERATOR.into(),
        vectors: vec![
            x3dh_vector("ratchetry x3dh vector: with one-time prekey", true),
            x3dh_vector("ratchetry x3dh vector: without one-time prekey", false),
        ],
    }
}

#[test]
fn x3dh_vectors() {
    let generated = to_json(&x3dh_file());
    check_committed("x3dh.json", &generated);
    let file: X3dhFile = serde_json::from_str(&generated).unwrap();
    assert_eq!(file.vectors.len(), 2);
    for v in &file.vectors {
        // Keys from secrets.
        let (a_pub, _) = raw::ed25519_sign(&unh(&v.alice_identity_seed), b"");
        assert_eq!(h(a_pub), v.alice_identity_public);
        assert_eq!(
            h(raw::x25519_public(x25519_scalar(&unh(
                &v.alice_identity_seed
            )))),
            v.alice_identity_x25519_public
        );
        assert_eq!(
            h(raw::x25519_public(x25519_scalar(
                &unh(&v.bob_identity_seed)
            ))),
            v.bob_identity_x25519_public
        );
        assert_eq!(
            h(raw::x25519_public(unh(&v.bob_signed_prekey_secret))),
            v.bob_signed_prekey_public
        );
        // Signed prekey signature: label ‖ id ‖ key under Bob's identity.
        let mut signed = b"ratchetry v1 signed prekey".to_vec();
        signed.extend(v.bob_signed_prekey_id.to_be_bytes());
        signed.extend(hex::decode(&v.bob_signed_prekey_public).unwrap());
        assert!(raw::ed25519_verify(
            &unh(&v.bob_identity_public),
            &signed,
            &unh(&v.bob_signed_prekey_signature)
        ));
        // Bundle bytes per PROTOCOL.md.
        let mut bundle = vec![1u8, 1];
        bundle.extend(hex::decode(&v.bob_identity_public).unwrap());
        bundle.extend(v.bob_signed_prekey_id.to_be_bytes());
        bundle.extend(hex::decode(&v.bob_signed_prekey_public).unwrap());
        bundle.extend(hex::decode(&v.bob_signed_prekey_signature).unwrap());
        match (&v.bob_one_time_prekey_id, &v.bob_one_time_prekey_public) {
            (Some(id), Some(key)) => {
                bundle.push(1);
                bundle.extend(id.to_be_bytes());
                bundle.extend(hex::decode(key).unwrap());
            }
            _ => bundle.push(0),
        }
        assert_eq!(h(&bundle), v.bundle);
        // DH values from both sides.
        let dh = |s: &str, p: &str| h(raw::x25519(unh(s), unh(p)).unwrap());
        let bob_x = h(x25519_scalar(&unh(&v.bob_identity_seed)));
        assert_eq!(
            dh(&v.bob_signed_prekey_secret, &v.alice_identity_x25519_public),
            v.dh1
        );
        assert_eq!(dh(&bob_x, &v.alice_ephemeral_public), v.dh2);
        assert_eq!(
            dh(&v.bob_signed_prekey_secret, &v.alice_ephemeral_public),
            v.dh3
        );
        if let Some(secret) = &v.bob_one_time_prekey_secret {
            assert_eq!(Some(dh(secret, &v.alice_ephemeral_public)), v.dh4);
        }
        assert_eq!(h(v.compute_shared_secret()), v.shared_secret);
        // First ratchet step and first message key.
        let (rk, ck) = spec_kdf_rk(unh(&v.shared_secret), unh(&v.dh_ratchet));
        assert_eq!(h(rk), v.root_key);
        assert_eq!(h(ck), v.sending_chain_key);
        assert_eq!(
            dh(&v.bob_signed_prekey_secret, &v.alice_ratchet_public),
            v.dh_ratchet
        );
        // The pre-key message: prefix ‖ header ‖ AES-GCM(plaintext).
        let mut expected = vec![1u8, 3];
        expected.extend(hex::decode(&v.alice_identity_public).unwrap());
        expected.extend(hex::decode(&v.alice_ephemeral_public).unwrap());
        expected.extend(v.bob_signed_prekey_id.to_be_bytes());
        match v.bob_one_time_prekey_id {
            Some(id) => {
                expected.push(1);
                expected.extend(id.to_be_bytes());
            }
            None => expected.push(0),
        }
        let mut header = vec![1u8, 2];
        header.extend(hex::decode(&v.alice_ratchet_public).unwrap());
        header.extend(0u32.to_be_bytes());
        header.extend(0u32.to_be_bytes());
        let mut ad = hex::decode(&v.associated_data).unwrap();
        ad.extend(&header);
        let (mk, _) = spec_kdf_ck(ck);
        let (key, nonce) = spec_message_keys(mk);
        expected.extend(&header);
        expected.extend(raw::aes256gcm_seal(
            &key,
            &nonce,
            &ad,
            &hex::decode(&v.plaintext).unwrap(),
        ));
        assert_eq!(h(expected), v.prekey_message);
    }
}

// ---------------------------------------------------------------------------------------------
// The formulas of PROTOCOL.md, written against the raw primitives only.

fn spec_kdf_rk(rk: [u8; 32], dh: [u8; 32]) -> ([u8; 32], [u8; 32]) {
    let mut okm = [0u8; 64];
    raw::hkdf_sha256(Some(&rk), &dh, b"ratchetry v1 root", &mut okm).unwrap();
    (okm[..32].try_into().unwrap(), okm[32..].try_into().unwrap())
}

fn spec_kdf_ck(ck: [u8; 32]) -> ([u8; 32], [u8; 32]) {
    (raw::hmac_sha256(&ck, &[1]), raw::hmac_sha256(&ck, &[2]))
}

fn spec_message_keys(mk: [u8; 32]) -> ([u8; 32], [u8; 12]) {
    let mut okm = [0u8; 44];
    raw::hkdf_sha256(
        Some(&[0u8; 32]),
        &mk,
        b"ratchetry v1 message keys",
        &mut okm,
    )
    .unwrap();
    (okm[..32].try_into().unwrap(), okm[32..].try_into().unwrap())
}

// ---------------------------------------------------------------------------------------------
// kdf-chains.json

#[derive(Serialize, Deserialize)]
struct KdfFile {
    description: String,
    generator: String,
    root: Vec<RootVector>,
    chains: Vec<ChainVector>,
}

#[derive(Serialize, Deserialize)]
struct RootVector {
    root_key: String,
    dh_output: String,
    new_root_key: String,
    chain_key: String,
}

#[derive(Serialize, Deserialize)]
struct ChainVector {
    initial_chain_key: String,
    steps: Vec<ChainStep>,
}

#[derive(Serialize, Deserialize)]
struct ChainStep {
    index: u32,
    chain_key: String,
    message_key: String,
    aes_key: String,
    nonce: String,
    next_chain_key: String,
}

fn kdf_file() -> KdfFile {
    let rng = &mut SeededRng::new(raw_sha256(b"ratchetry kdf vectors"));
    let root = (0..3)
        .map(|_| {
            let (rk, dh) = (draw32(rng), draw32(rng));
            let (new_rk, ck) = kdf::root(rk, dh);
            RootVector {
                root_key: h(rk),
                dh_output: h(dh),
                new_root_key: h(new_rk),
                chain_key: h(ck),
            }
        })
        .collect();
    let chains = (0..2)
        .map(|_| {
            let initial = draw32(rng);
            let mut ck = initial;
            let steps = (0..5)
                .map(|index| {
                    let (mk, next) = kdf::chain(ck);
                    let (key, nonce) = kdf::message_keys(mk);
                    let step = ChainStep {
                        index,
                        chain_key: h(ck),
                        message_key: h(mk),
                        aes_key: h(key),
                        nonce: h(nonce),
                        next_chain_key: h(next),
                    };
                    ck = next;
                    step
                })
                .collect();
            ChainVector {
                initial_chain_key: h(initial),
                steps,
            }
        })
        .collect();
    KdfFile {
        description: "KDF_RK, KDF_CK and the message-key expansion of PROTOCOL.md on random \
                      inputs. Schema: test-vectors/README.md."
            .into(),
        generator: GENERATOR.into(),
        root,
        chains,
    }
}

#[test]
fn kdf_chain_vectors() {
    let generated = to_json(&kdf_file());
    check_committed("kdf-chains.json", &generated);
    let file: KdfFile = serde_json::from_str(&generated).unwrap();
    assert_eq!((file.root.len(), file.chains.len()), (3, 2));
    for v in &file.root {
        let (rk, ck) = spec_kdf_rk(unh(&v.root_key), unh(&v.dh_output));
        assert_eq!(
            (h(rk), h(ck)),
            (v.new_root_key.clone(), v.chain_key.clone())
        );
    }
    for c in &file.chains {
        let mut ck: [u8; 32] = unh(&c.initial_chain_key);
        assert_eq!(c.steps.len(), 5);
        for s in &c.steps {
            assert_eq!(h(ck), s.chain_key);
            let (mk, next) = spec_kdf_ck(ck);
            let (key, nonce) = spec_message_keys(mk);
            assert_eq!(h(mk), s.message_key);
            assert_eq!(h(key), s.aes_key);
            assert_eq!(h(nonce), s.nonce);
            assert_eq!(h(next), s.next_chain_key);
            ck = next;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ratchet-transcript.json

#[derive(Serialize, Deserialize)]
struct TranscriptFile {
    description: String,
    generator: String,
    rng_seed: String,
    alice_identity_seed: String,
    bob_identity_seed: String,
    bob_signed_prekey_secret: String,
    bob_one_time_prekey_secret: String,
    bundle: String,
    alice_ephemeral_secret: String,
    /// Alice's first ratchet secret, drawn right after the ephemeral one (PROTOCOL.md 8.3).
    alice_ratchet_secret: String,
    associated_data: String,
    events: Vec<Event>,
}

#[derive(Serialize, Deserialize)]
struct Event {
    /// "send" or "receive".
    event: String,
    /// "alice" or "bob".
    by: String,
    /// The message's label, e.g. "a0".
    message: String,
    plaintext: String,
    /// Send only: fresh ratchet secret drawn for a new sending chain.
    new_ratchet_secret: Option<String>,
    /// Send only: the sending chain key used (before the step).
    chain_key: Option<String>,
    message_key: Option<String>,
    aes_key: Option<String>,
    nonce: Option<String>,
    header: Option<String>,
    wire: Option<String>,
    /// The actor's keys after the event.
    root_key: String,
    sending_chain_key: Option<String>,
    sending_next: Option<u32>,
    receiving_ratchet_key: Option<String>,
    receiving_chain_key: Option<String>,
    receiving_next: Option<u32>,
    skipped_keys: usize,
    /// The actor's full session state after the event (PROTOCOL.md, "Session state").
    state: String,
}

/// Sends and deliveries, in order. Bob's b1 is delivered after b2.
const SCRIPT: &[(&str, &str)] = &[
    ("send", "a0"),
    ("recv", "a0"),
    ("send", "a1"),
    ("recv", "a1"),
    ("send", "b0"),
    ("send", "b1"),
    ("send", "b2"),
    ("recv", "b0"),
    ("recv", "b2"),
    ("recv", "b1"),
    ("send", "a2"),
    ("send", "a3"),
    ("recv", "a2"),
    ("recv", "a3"),
    ("send", "b3"),
    ("recv", "b3"),
    ("send", "a4"),
    ("recv", "a4"),
];

fn transcript_file() -> TranscriptFile {
    let seed = raw_sha256(b"ratchetry ratchet transcript");
    let rng = &mut SeededRng::new(seed);
    let alice = IdentityKeyPair::generate(rng);
    let bob = IdentityKeyPair::generate(rng);
    let mut probe = rng.clone();
    let mut store = PreKeyStore::new(rng, &bob, Timestamp(0), PreKeyStoreConfig::default());
    store.generate_one_time_prekeys(rng, 1);
    let spk_secret = draw32(&mut probe);
    let otk_secret = draw32(&mut probe);
    let bundle = store.bundle(&bob, Some(OneTimePreKeyId(1)));
    let mut probe = rng.clone();
    let ephemeral = draw32(&mut probe);
    let first_ratchet = draw32(&mut probe);
    let mut a = Session::initiate(
        rng,
        &alice,
        &bundle.clone().verify().unwrap(),
        SessionConfig::default(),
    )
    .unwrap();
    let mut b: Option<Session> = None;
    let mut wires = std::collections::HashMap::new();
    let mut events = Vec::new();
    for &(kind, label) in SCRIPT {
        let from_alice = label.starts_with('a');
        let plaintext = format!("message {label}").into_bytes();
        let mut event = Event {
            event: if kind == "send" { "send" } else { "receive" }.into(),
            by: if from_alice == (kind == "send") {
                "alice"
            } else {
                "bob"
            }
            .into(),
            message: label.into(),
            plaintext: h(&plaintext),
            new_ratchet_secret: None,
            chain_key: None,
            message_key: None,
            aes_key: None,
            nonce: None,
            header: None,
            wire: None,
            root_key: String::new(),
            sending_chain_key: None,
            sending_next: None,
            receiving_ratchet_key: None,
            receiving_chain_key: None,
            receiving_next: None,
            skipped_keys: 0,
            state: String::new(),
        };
        let actor: &mut Session = if kind == "send" {
            let s = if from_alice {
                &mut a
            } else {
                b.as_mut().unwrap()
            };
            let before = session_keys(s);
            let new_secret = draw32(&mut rng.clone());
            let wire = s.encrypt(rng, &plaintext).unwrap();
            let after = session_keys(s);
            let new_chain = before.ratchet_public != after.ratchet_public;
            let ck = if new_chain {
                // The chain key the new chain started with: recomputed from the root step.
                let remote = before.receiving.unwrap().0;
                spec_kdf_rk(before.root_key, raw::x25519(new_secret, remote).unwrap()).1
            } else {
                before.sending.unwrap().0
            };
            let (mk, _) = kdf::chain(ck);
            let (key, nonce) = kdf::message_keys(mk);
            let header_at = wire.len() - plaintext.len() - 16 - 42;
            event.new_ratchet_secret = new_chain.then(|| h(new_secret));
            event.chain_key = Some(h(ck));
            event.message_key = Some(h(mk));
            event.aes_key = Some(h(key));
            event.nonce = Some(h(nonce));
            event.header = Some(h(&wire[header_at..header_at + 42]));
            event.wire = Some(h(&wire));
            wires.insert(label, wire);
            s
        } else {
            let wire = &wires[label];
            let msg = IncomingMessage::decode(wire).unwrap();
            let opened = if from_alice && b.is_none() {
                let IncomingMessage::PreKey(pk) = msg else {
                    panic!()
                };
                let (s, pt) =
                    Session::accept(&bob, &mut store, &pk, SessionConfig::default()).unwrap();
                b = Some(s);
                pt
            } else if from_alice {
                b.as_mut().unwrap().decrypt(&msg).unwrap()
            } else {
                a.decrypt(&msg).unwrap()
            };
            assert_eq!(opened, plaintext);
            if from_alice {
                b.as_mut().unwrap()
            } else {
                &mut a
            }
        };
        let k = session_keys(actor);
        event.root_key = h(k.root_key);
        event.sending_chain_key = k.sending.map(|s| h(s.0));
        event.sending_next = k.sending.map(|s| s.1);
        event.receiving_ratchet_key = k.receiving.map(|r| h(r.0));
        event.receiving_chain_key = k.receiving.map(|r| h(r.1));
        event.receiving_next = k.receiving.map(|r| r.2);
        event.skipped_keys = actor.skipped_keys();
        event.state = h(&*actor.to_bytes());
        events.push(event);
    }
    TranscriptFile {
        description: "A Double Ratchet conversation: Alice initiates with a one-time prekey \
                      and sends twice before Bob replies; Bob's b1 is delivered after b2; three \
                      direction changes. Every key, header, wire message and state after each \
                      event. Schema: test-vectors/README.md."
            .into(),
        generator: GENERATOR.into(),
        rng_seed: h(seed),
        alice_identity_seed: h(seed_of(&alice)),
        bob_identity_seed: h(seed_of(&bob)),
        bob_signed_prekey_secret: h(spk_secret),
        bob_one_time_prekey_secret: h(otk_secret),
        bundle: h(bundle.to_bytes()),
        alice_ephemeral_secret: h(ephemeral),
        alice_ratchet_secret: h(first_ratchet),
        associated_data: h([alice.public().to_bytes(), bob.public().to_bytes()].concat()),
        events,
    }
}

#[test]
fn ratchet_transcript_vectors() {
    let generated = to_json(&transcript_file());
    check_committed("ratchet-transcript.json", &generated);
    let file: TranscriptFile = serde_json::from_str(&generated).unwrap();
    assert_eq!(file.events.len(), SCRIPT.len());
    let ad = hex::decode(&file.associated_data).unwrap();
    let mut sent = 0;
    for e in file.events.iter().filter(|e| e.event == "send") {
        sent += 1;
        let ck: [u8; 32] = unh(e.chain_key.as_ref().unwrap());
        let (mk, next) = spec_kdf_ck(ck);
        let (key, nonce) = spec_message_keys(mk);
        assert_eq!(Some(h(mk)), e.message_key);
        assert_eq!(Some(h(key)), e.aes_key);
        assert_eq!(Some(h(nonce)), e.nonce);
        assert_eq!(
            Some(h(next)),
            e.sending_chain_key,
            "{}: chain key after the send",
            e.message
        );
        let header = hex::decode(e.header.as_ref().unwrap()).unwrap();
        let wire = hex::decode(e.wire.as_ref().unwrap()).unwrap();
        let mut full_ad = ad.clone();
        full_ad.extend(&header);
        let ct = raw::aes256gcm_seal(&key, &nonce, &full_ad, &hex::decode(&e.plaintext).unwrap());
        assert!(
            wire.ends_with(&[header.clone(), ct].concat()),
            "{}: wire bytes",
            e.message
        );
        // Alice's messages before Bob's first reply are pre-key messages.
        let prekey = wire[1] == 3;
        assert_eq!(
            prekey,
            e.message == "a0" || e.message == "a1",
            "{}",
            e.message
        );
        if let Some(secret) = &e.new_ratchet_secret {
            assert_eq!(h(&header[2..34]), h(raw::x25519_public(unh(secret))));
        }
    }
    assert_eq!(sent, SCRIPT.len() / 2);
    // The out-of-order delivery left a skipped key that the late message consumed.
    let late = file
        .events
        .iter()
        .position(|e| e.event == "receive" && e.message == "b2")
        .unwrap();
    assert_eq!(file.events[late].skipped_keys, 1);
    assert_eq!(file.events[late + 1].skipped_keys, 0);
    // Every recorded state restores and re-encodes to the same bytes.
    for e in &file.events {
        let state = hex::decode(&e.state).unwrap();
        assert_eq!(*Session::from_bytes(&state).unwrap().to_bytes(), state);
    }
}

// ---------------------------------------------------------------------------------------------
// sender-keys.json

#[derive(Serialize, Deserialize)]
struct SenderKeysFile {
    description: String,
    generator: String,
    rng_seed: String,
    group_id: String,
    sender_identity_public: String,
    events: Vec<GroupEvent>,
    receiver_state: String,
}

#[derive(Serialize, Deserialize)]
struct GroupEvent {
    /// "create", "rotate", "distribute", "send" or "receive".
    event: String,
    key_id: u32,
    /// create/rotate: the fresh chain key and signing seed drawn from the RNG.
    chain_key: Option<String>,
    signing_seed: Option<String>,
    signing_public: Option<String>,
    /// distribute: the distribution message bytes.
    distribution: Option<String>,
    /// send/receive: the message label, e.g. "m0".
    message: Option<String>,
    iteration: Option<u32>,
    plaintext: Option<String>,
    message_key: Option<String>,
    aes_key: Option<String>,
    nonce: Option<String>,
    signature: Option<String>,
    wire: Option<String>,
}

impl GroupEvent {
    fn new(event: &str, key_id: u32) -> Self {
        Self {
            event: event.into(),
            key_id,
            chain_key: None,
            signing_seed: None,
            signing_public: None,
            distribution: None,
            message: None,
            iteration: None,
            plaintext: None,
            message_key: None,
            aes_key: None,
            nonce: None,
            signature: None,
            wire: None,
        }
    }
}

/// Generation 1: m0..m2, delivered m0, m2, m1. Rotation. Generation 2: m3, m4 in order.
fn sender_keys_file() -> SenderKeysFile {
    use ratchetry::group::{
        GroupConfig, GroupId, GroupMessage, GroupReceiver, OutboundGroupSession,
    };
    let seed = raw_sha256(b"ratchetry sender keys");
    let rng = &mut SeededRng::new(seed);
    let group = GroupId(draw32(rng));
    let sender = IdentityKeyPair::generate(rng).public();
    let mut events = Vec::new();
    let fresh = |rng: &mut SeededRng, event: &str, key_id: u32| {
        let mut probe = rng.clone();
        let chain = draw32(&mut probe);
        let signing = draw32(&mut probe);
        let mut e = GroupEvent::new(event, key_id);
        e.chain_key = Some(h(chain));
        e.signing_seed = Some(h(signing));
        e.signing_public = Some(h(raw::ed25519_sign(&signing, b"").0));
        e
    };
    events.push(fresh(rng, "create", 1));
    let mut out = OutboundGroupSession::new(rng, group, &sender);
    let mut rx = GroupReceiver::new(GroupConfig::default());
    let mut wires = std::collections::HashMap::new();
    let distribute =
        |out: &OutboundGroupSession, rx: &mut GroupReceiver, events: &mut Vec<GroupEvent>| {
            let d = out.distribution();
            rx.process_distribution(&sender, &d).unwrap();
            let mut e = GroupEvent::new("distribute", out.key_id().0);
            e.iteration = Some(d.iteration());
            e.distribution = Some(h(&*d.to_bytes()));
            events.push(e);
        };
    distribute(&out, &mut rx, &mut events);
    let script: &[(&str, &str)] = &[
        ("send", "m0"),
        ("send", "m1"),
        ("send", "m2"),
        ("recv", "m0"),
        ("recv", "m2"),
        ("recv", "m1"),
        ("rotate", ""),
        ("send", "m3"),
        ("send", "m4"),
        ("recv", "m3"),
        ("recv", "m4"),
    ];
    for &(kind, label) in script {
        match kind {
            "rotate" => {
                events.push(fresh(rng, "rotate", out.key_id().0 + 1));
                out.rotate(rng).unwrap();
                distribute(&out, &mut rx, &mut events);
            }
            "send" => {
                let plaintext = format!("group message {label}").into_bytes();
                let chain: [u8; 32] = out.distribution().to_bytes()[42..74].try_into().unwrap();
                let (mk, _) = kdf::chain(chain);
                let mut e = GroupEvent::new("send", out.key_id().0);
                e.iteration = Some(out.iteration());
                let wire = out.encrypt(&plaintext).unwrap();
                let (key, nonce) = spec_group_message_keys(mk);
                e.message = Some(label.into());
                e.plaintext = Some(h(&plaintext));
                e.chain_key = Some(h(chain));
                e.message_key = Some(h(mk));
                e.aes_key = Some(h(key));
                e.nonce = Some(h(nonce));
                e.signature = Some(h(&wire[wire.len() - 64..]));
                e.wire = Some(h(&wire));
                wires.insert(label, (wire, plaintext));
                events.push(e);
            }
            _ => {
                let (wire, plaintext) = &wires[label];
                let m = GroupMessage::decode(wire).unwrap();
                assert_eq!(&rx.decrypt(&sender, &m).unwrap(), plaintext);
                let mut e = GroupEvent::new("receive", m.key_id().0);
                e.message = Some(label.into());
                e.iteration = Some(m.iteration());
                e.plaintext = Some(h(plaintext));
                events.push(e);
            }
        }
    }
    SenderKeysFile {
        description: "Sender keys: creation, distribution, three messages with one delivered \
                      out of order, a rotation, two more messages, and the receiver's state at \
                      the end. Schema: test-vectors/README.md."
            .into(),
        generator: GENERATOR.into(),
        rng_seed: h(seed),
        group_id: h(group.0),
        sender_identity_public: h(sender.to_bytes()),
        events,
        receiver_state: h(&*rx.to_bytes()),
    }
}

fn spec_group_message_keys(mk: [u8; 32]) -> ([u8; 32], [u8; 12]) {
    let mut okm = [0u8; 44];
    raw::hkdf_sha256(
        Some(&[0u8; 32]),
        &mk,
        b"ratchetry v1 group message keys",
        &mut okm,
    )
    .unwrap();
    (okm[..32].try_into().unwrap(), okm[32..].try_into().unwrap())
}

#[test]
fn sender_key_vectors() {
    let generated = to_json(&sender_keys_file());
    check_committed("sender-keys.json", &generated);
    let file: SenderKeysFile = serde_json::from_str(&generated).unwrap();
    let group = hex::decode(&file.group_id).unwrap();
    // Recompute every send from the chain keys and signing seeds of PROTOCOL.md's formulas.
    let mut chain = [0u8; 32];
    let mut seed = [0u8; 32];
    let mut sends = 0;
    for e in &file.events {
        match e.event.as_str() {
            "create" | "rotate" => {
                chain = unh(e.chain_key.as_ref().unwrap());
                seed = unh(e.signing_seed.as_ref().unwrap());
            }
            "distribute" => {
                let mut d = vec![1u8, 5];
                d.extend(&group);
                d.extend(e.key_id.to_be_bytes());
                d.extend(e.iteration.unwrap().to_be_bytes());
                d.extend(chain);
                d.extend(raw::ed25519_sign(&seed, b"").0);
                assert_eq!(Some(h(d)), e.distribution);
            }
            "send" => {
                sends += 1;
                assert_eq!(Some(h(chain)), e.chain_key);
                let (mk, next) = spec_kdf_ck(chain);
                let (key, nonce) = spec_group_message_keys(mk);
                let mut header = vec![1u8, 4];
                header.extend(&group);
                header.extend(e.key_id.to_be_bytes());
                header.extend(e.iteration.unwrap().to_be_bytes());
                let pt = hex::decode(e.plaintext.as_ref().unwrap()).unwrap();
                let mut signed = header.clone();
                signed.extend(raw::aes256gcm_seal(&key, &nonce, &header, &pt));
                let mut to_sign = b"ratchetry v1 group message".to_vec();
                to_sign.extend(hex::decode(&file.sender_identity_public).unwrap());
                to_sign.extend(&signed);
                let (_, sig) = raw::ed25519_sign(&seed, &to_sign);
                assert_eq!(Some(h(sig)), e.signature);
                signed.extend(sig);
                assert_eq!(Some(h(&signed)), e.wire, "{:?}", e.message);
                assert_eq!(
                    (Some(h(mk)), Some(h(key)), Some(h(nonce))),
                    (e.message_key.clone(), e.aes_key.clone(), e.nonce.clone())
                );
                chain = next;
            }
            _ => {}
        }
    }
    assert_eq!(sends, 5);
    let order: Vec<_> = file
        .events
        .iter()
        .filter(|e| e.event == "receive")
        .map(|e| e.message.clone().unwrap())
        .collect();
    assert_eq!(order, ["m0", "m2", "m1", "m3", "m4"]);
    let state = hex::decode(&file.receiver_state).unwrap();
    assert_eq!(
        *ratchetry::group::GroupReceiver::from_bytes(&state)
            .unwrap()
            .to_bytes(),
        state
    );
}

// ---------------------------------------------------------------------------------------------
// devices.json: device lists, linking, safety numbers, fanout envelopes

#[derive(Serialize, Deserialize)]
struct DevicesFile {
    description: String,
    generator: String,
    rng_seed: String,
    now: u64,
    alice_account_seed: String,
    alice_account_public: String,
    alice_phone_identity_seed: String,
    alice_list_v1: String,
    invitation: String,
    laptop_identity_seed: String,
    link_request: String,
    link_approval: String,
    alice_list_v2: String,
    alice_list_v2_digest: String,
    link_confirmation: String,
    bob_account_public: String,
    bob_list_v1: String,
    safety_number_digits: String,
    safety_number_scannable: String,
    envelope_plaintext: String,
    envelope_lists_digest: String,
    envelope_header: String,
    envelope: String,
    group_envelope: String,
}

fn devices_file() -> DevicesFile {
    use ratchetry::devices::{
        DeviceId, DevicePolicy, LinkRequest, Primary, SafetyNumber, complete_link,
    };
    use ratchetry::fanout::{Device, DeviceConfig, Outgoing};
    use ratchetry::group::GroupId;
    let seed = raw_sha256(b"ratchetry devices");
    let rng = &mut SeededRng::new(seed);
    let now = Timestamp(1_790_000_000_000);
    let policy = DevicePolicy::default();
    let phone = IdentityKeyPair::generate(rng);
    let account_seed = draw32(&mut rng.clone());
    let mut primary = Primary::new(rng, &phone.public(), now, policy);
    let list_v1 = primary.device_list().to_bytes();
    let invitation = primary.invite(rng, now);
    let laptop = IdentityKeyPair::generate(rng);
    let request = LinkRequest::new(&laptop, &invitation);
    let approval = primary.approve(now, &request).unwrap();
    let (list_v2, confirmation) = complete_link(&laptop, &invitation, &approval, &policy).unwrap();
    primary.confirm(&confirmation).unwrap();

    let bob_phone = IdentityKeyPair::generate(rng);
    let bob_primary = Primary::new(rng, &bob_phone.public(), now, policy);
    let safety = SafetyNumber::new(&primary.account(), &bob_primary.account());

    let config = DeviceConfig::default();
    let mut alice_dev =
        Device::new(rng, now, phone, DeviceId(1), list_v2.clone(), 1, config).unwrap();
    let mut bob_dev = Device::new(
        rng,
        now,
        bob_phone,
        DeviceId(1),
        bob_primary.device_list().clone(),
        1,
        config,
    )
    .unwrap();
    alice_dev
        .update_device_list(
            now,
            &bob_primary.account(),
            bob_primary.device_list().signed().clone(),
        )
        .unwrap();
    bob_dev
        .update_device_list(now, &primary.account(), list_v2.signed().clone())
        .unwrap();
    let bob_addr = bob_dev.address();
    alice_dev
        .start_sessions(rng, now, &[(bob_addr, bob_dev.bundle(None))])
        .unwrap();
    // A send also reaches Alice's own laptop, so it needs a session too.
    let mut laptop_dev = Device::new(
        rng,
        now,
        laptop,
        approval.device,
        list_v2.clone(),
        1,
        config,
    )
    .unwrap();
    let laptop_addr = laptop_dev.address();
    alice_dev
        .start_sessions(rng, now, &[(laptop_addr, laptop_dev.bundle(None))])
        .unwrap();
    let body = b"envelope vector";
    let Outgoing::Ready(outbox) = alice_dev
        .send(rng, now, &bob_primary.account(), body)
        .unwrap()
    else {
        panic!("sessions exist")
    };
    let (_, envelope) = outbox
        .envelopes
        .iter()
        .find(|(a, _)| *a == bob_addr)
        .unwrap()
        .clone();
    assert!(matches!(
        bob_dev.receive(now, &envelope).unwrap(),
        ratchetry::fanout::Received::Direct { .. }
    ));
    let lists_digest = &envelope[3 + 36 + 36 + 16..3 + 36 + 36 + 24];
    let Outgoing::Ready(group) = alice_dev
        .send_group(
            rng,
            now,
            GroupId([3; 32]),
            &[bob_primary.account()],
            b"group vector",
        )
        .unwrap()
    else {
        panic!("sessions exist")
    };
    for (to, e) in &group.envelopes {
        if *to == bob_addr {
            bob_dev.receive(now, e).unwrap();
        } else {
            laptop_dev.receive(now, e).unwrap();
        }
    }
    let (group_envelope, _) = group.group.unwrap();
    assert!(matches!(
        bob_dev.receive(now, &group_envelope).unwrap(),
        ratchetry::fanout::Received::Group { .. }
    ));

    DevicesFile {
        description: "Signed device lists, the four linking messages, a safety number, and a \
                      pairwise and a group fanout envelope. Schema: test-vectors/README.md."
            .into(),
        generator: GENERATOR.into(),
        rng_seed: h(seed),
        now: now.0,
        alice_account_seed: h(account_seed),
        alice_account_public: h(primary.account().to_bytes()),
        alice_phone_identity_seed: h(device_identity_seed(&alice_dev)),
        alice_list_v1: h(list_v1),
        invitation: h(invitation.to_bytes()),
        laptop_identity_seed: h(device_identity_seed(&laptop_dev)),
        link_request: h(request.to_bytes()),
        link_approval: h(approval.to_bytes()),
        alice_list_v2: h(list_v2.to_bytes()),
        alice_list_v2_digest: h(list_v2.digest()),
        link_confirmation: h(confirmation.to_bytes()),
        bob_account_public: h(bob_primary.account().to_bytes()),
        bob_list_v1: h(bob_primary.device_list().to_bytes()),
        safety_number_digits: String::from_utf8(safety.digits().to_vec()).unwrap(),
        safety_number_scannable: h(safety.scannable()),
        envelope_plaintext: h(body),
        envelope_lists_digest: h(lists_digest),
        envelope_header: h(&envelope[..3 + 36 + 36 + 24]),
        envelope: h(&envelope),
        group_envelope: h(group_envelope),
    }
}

/// A device's identity seed, read from its documented state encoding (PROTOCOL.md 18.4).
fn device_identity_seed(d: &ratchetry::fanout::Device) -> Vec<u8> {
    let state = d.to_bytes();
    let at = 2 + 4 * 2 + 4 * 3 + 4 + 8 + 8 + 4 * 3 + 32 + 4;
    let len = u32::from_be_bytes(state[at..at + 4].try_into().unwrap()) as usize;
    assert_eq!(len, 34);
    state[at + 4 + 2..at + 4 + 34].to_vec()
}

fn spec_safety_fingerprint(account: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha512};
    let mut h = Sha512::new()
        .chain_update(b"ratchetry v1 safety number")
        .chain_update(account)
        .finalize();
    for _ in 1..5200 {
        h = Sha512::new()
            .chain_update(h)
            .chain_update(account)
            .finalize();
    }
    h[..32].to_vec()
}

#[test]
fn device_vectors() {
    let generated = to_json(&devices_file());
    check_committed("devices.json", &generated);
    let f: DevicesFile = serde_json::from_str(&generated).unwrap();
    let account_seed: [u8; 32] = unh(&f.alice_account_seed);
    let (ak, _) = raw::ed25519_sign(&account_seed, b"");
    assert_eq!(h(ak), f.alice_account_public);
    // Every list's signature is the account's over its body.
    for list in [&f.alice_list_v1, &f.alice_list_v2] {
        let bytes = hex::decode(list).unwrap();
        let (body, sig) = bytes.split_at(bytes.len() - 64);
        let mut signed = b"ratchetry v1 device list".to_vec();
        signed.extend(body);
        assert_eq!(raw::ed25519_sign(&account_seed, &signed).1.to_vec(), sig);
        assert_eq!(&body[..2], &[1, 6]);
        assert_eq!(&body[2..34], &ak);
    }
    let v2 = hex::decode(&f.alice_list_v2).unwrap();
    assert_eq!(h(raw_sha256(&v2)), f.alice_list_v2_digest);
    // The link request: binding and request signatures by the laptop.
    let laptop: [u8; 32] = unh(&f.laptop_identity_seed);
    let (laptop_ik, _) = raw::ed25519_sign(&laptop, b"");
    let req = hex::decode(&f.link_request).unwrap();
    let inv = hex::decode(&f.invitation).unwrap();
    let nonce = &inv[34..50];
    assert_eq!(&req[..2], &[1, 8]);
    assert_eq!(&req[2..34], &ak);
    assert_eq!(&req[34..50], nonce);
    assert_eq!(&req[50..82], &laptop_ik);
    let mut binding = b"ratchetry v1 device binding".to_vec();
    binding.extend(ak);
    assert_eq!(
        raw::ed25519_sign(&laptop, &binding).1.to_vec(),
        &req[82..146]
    );
    let mut signed = b"ratchetry v1 link request".to_vec();
    signed.extend(ak);
    signed.extend(nonce);
    signed.extend(laptop_ik);
    assert_eq!(
        raw::ed25519_sign(&laptop, &signed).1.to_vec(),
        &req[146..210]
    );
    // The list's second entry carries that binding.
    assert!(v2.windows(64).any(|w| w == &req[82..146]));
    // Approval = header ‖ device id 2 ‖ list v2; confirmation signs AK ‖ id ‖ digest.
    let approval = hex::decode(&f.link_approval).unwrap();
    assert_eq!(&approval[..6], &[1, 9, 0, 0, 0, 2]);
    assert_eq!(&approval[6..], &v2[..]);
    let conf = hex::decode(&f.link_confirmation).unwrap();
    let mut signed = b"ratchetry v1 link confirmation".to_vec();
    signed.extend(ak);
    signed.extend(2u32.to_be_bytes());
    signed.extend(hex::decode(&f.alice_list_v2_digest).unwrap());
    assert_eq!(
        raw::ed25519_sign(&laptop, &signed).1.to_vec(),
        &conf[conf.len() - 64..]
    );
    // Safety number from the two account keys.
    let bk = hex::decode(&f.bob_account_public).unwrap();
    let (first, second) = if ak.as_slice() <= bk.as_slice() {
        (ak.to_vec(), bk)
    } else {
        (bk, ak.to_vec())
    };
    let (f1, f2) = (
        spec_safety_fingerprint(&first),
        spec_safety_fingerprint(&second),
    );
    let mut digits = String::new();
    for fp in [&f1, &f2] {
        for g in 0..6 {
            let v = fp[g * 5..g * 5 + 5]
                .iter()
                .fold(0u64, |a, b| (a << 8) | u64::from(*b))
                % 100_000;
            digits.push_str(&format!("{v:05}"));
        }
    }
    assert_eq!(digits, f.safety_number_digits);
    assert_eq!(h([vec![1u8], f1, f2].concat()), f.safety_number_scannable);
    // Envelope header and lists digest.
    let bob_v1 = hex::decode(&f.bob_list_v1).unwrap();
    let mut d = b"ratchetry v1 device lists digest".to_vec();
    d.extend(raw_sha256(&v2));
    d.extend(raw_sha256(&bob_v1));
    assert_eq!(h(&raw_sha256(&d)[..8]), f.envelope_lists_digest);
    let mut header = vec![1u8, 0x0b, 1];
    header.extend(ak);
    header.extend(1u32.to_be_bytes());
    header.extend(&bk_of(&f));
    header.extend(1u32.to_be_bytes());
    header.extend(2u64.to_be_bytes());
    header.extend(1u64.to_be_bytes());
    header.extend(hex::decode(&f.envelope_lists_digest).unwrap());
    assert_eq!(h(&header), f.envelope_header);
    assert!(f.envelope.starts_with(&f.envelope_header));
    let mut g = vec![1u8, 0x0b, 2];
    g.extend(ak);
    g.extend(1u32.to_be_bytes());
    g.extend(2u64.to_be_bytes());
    assert!(f.group_envelope.starts_with(&h(g)));
}

fn bk_of(f: &DevicesFile) -> Vec<u8> {
    hex::decode(&f.bob_account_public).unwrap()
}

// ---------------------------------------------------------------------------------------------
// history-sync.json and call-keys.json

#[derive(Serialize, Deserialize)]
struct HistoryFile {
    description: String,
    generator: String,
    vectors: Vec<HistoryVector>,
}

#[derive(Serialize, Deserialize)]
struct HistoryVector {
    name: String,
    rng_seed: String,
    /// The plaintext is byte i = (i * 7 + 3) mod 256, for i from 0.
    length: u64,
    secret: String,
    stream_key: String,
    nonce_prefix: String,
    /// Per chunk: its length, tag, SHA-256, and the full bytes when under 1 KiB.
    chunks: Vec<HistoryChunk>,
    digest: String,
    offer: String,
}

#[derive(Serialize, Deserialize)]
struct HistoryChunk {
    len: usize,
    tag: String,
    sha256: String,
    bytes: Option<String>,
}

fn history_plaintext(len: u64) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(7).wrapping_add(3) % 256) as u8)
        .collect()
}

fn history_file() -> HistoryFile {
    use ratchetry::history::HistorySealer;
    let vectors = [
        ("ratchetry history: one short chunk", 100u64),
        ("ratchetry history: a boundary", 65_536 + 20),
        ("ratchetry history: empty", 0),
    ]
    .into_iter()
    .map(|(name, length)| {
        let seed = raw_sha256(name.as_bytes());
        let rng = &mut SeededRng::new(seed);
        let secret = draw32(&mut rng.clone());
        let mut sealer = HistorySealer::new(rng);
        let mut chunks = sealer.push(&history_plaintext(length));
        let (last, offer) = sealer.finish();
        chunks.extend(last);
        let offer_bytes = offer.to_bytes();
        let mut okm = [0u8; 35];
        raw::hkdf_sha256(
            Some(&[0; 32]),
            &secret,
            b"ratchetry v1 history sync",
            &mut okm,
        )
        .unwrap();
        HistoryVector {
            name: name.into(),
            rng_seed: h(seed),
            length,
            secret: h(secret),
            stream_key: h(&okm[..32]),
            nonce_prefix: h(&okm[32..]),
            chunks: chunks
                .iter()
                .map(|c| HistoryChunk {
                    len: c.len(),
                    tag: h(&c[c.len() - 16..]),
                    sha256: h(raw_sha256(c)),
                    bytes: (c.len() < 1024).then(|| h(c)),
                })
                .collect(),
            digest: h(&offer_bytes[offer_bytes.len() - 32..]),
            offer: h(&*offer_bytes),
        }
    })
    .collect();
    HistoryFile {
        description: "History sync streams (PROTOCOL.md 19): a short history, one crossing a \
                      chunk boundary, and an empty one. Schema: test-vectors/README.md."
            .into(),
        generator: GENERATOR.into(),
        vectors,
    }
}

#[test]
fn history_sync_vectors() {
    let generated = to_json(&history_file());
    check_committed("history-sync.json", &generated);
    let f: HistoryFile = serde_json::from_str(&generated).unwrap();
    assert_eq!(f.vectors.len(), 3);
    for v in &f.vectors {
        let mut okm = [0u8; 35];
        raw::hkdf_sha256(
            Some(&[0; 32]),
            &hex::decode(&v.secret).unwrap(),
            b"ratchetry v1 history sync",
            &mut okm,
        )
        .unwrap();
        assert_eq!(
            (h(&okm[..32]), h(&okm[32..])),
            (v.stream_key.clone(), v.nonce_prefix.clone())
        );
        let key: [u8; 32] = okm[..32].try_into().unwrap();
        let plaintext = history_plaintext(v.length);
        let pieces: Vec<&[u8]> = if plaintext.is_empty() {
            vec![&[]]
        } else {
            plaintext.chunks(65_536).collect()
        };
        let mut pieces = pieces;
        if plaintext.len() % 65_536 == 0 && !plaintext.is_empty() {
            pieces.push(&[]);
        }
        assert_eq!(pieces.len(), v.chunks.len());
        let mut digest_input = b"ratchetry v1 history digest".to_vec();
        for (i, (piece, c)) in pieces.iter().zip(&v.chunks).enumerate() {
            let mut nonce = [0u8; 12];
            nonce[..3].copy_from_slice(&okm[32..]);
            nonce[3..11].copy_from_slice(&(i as u64).to_be_bytes());
            nonce[11] = u8::from(i + 1 == pieces.len());
            let mut chunk = vec![1u8, 0x0d];
            chunk.extend(raw::aes256gcm_seal(&key, &nonce, &[1, 0x0d], piece));
            assert_eq!(chunk.len(), c.len);
            assert_eq!(h(raw_sha256(&chunk)), c.sha256);
            assert_eq!(h(&chunk[chunk.len() - 16..]), c.tag);
            if let Some(bytes) = &c.bytes {
                assert_eq!(&h(&chunk), bytes);
            }
            digest_input.extend(&chunk[chunk.len() - 16..]);
        }
        digest_input.extend(v.length.to_be_bytes());
        assert_eq!(h(raw_sha256(&digest_input)), v.digest);
        let mut offer = vec![1u8, 0x0e];
        offer.extend(hex::decode(&v.secret).unwrap());
        offer.extend(65_536u32.to_be_bytes());
        offer.extend(v.length.to_be_bytes());
        offer.extend((v.chunks.len() as u64).to_be_bytes());
        offer.extend(hex::decode(&v.digest).unwrap());
        assert_eq!(h(offer), v.offer);
    }
}

#[derive(Serialize, Deserialize)]
struct CallFile {
    description: String,
    generator: String,
    rng_seed: String,
    epochs: Vec<CallEpoch>,
}

#[derive(Serialize, Deserialize)]
struct CallEpoch {
    /// "start", "join" or "remove".
    change: String,
    epoch: u32,
    secret: String,
    key_message: String,
    /// Per participant: account key, device id, SRTP master key and salt.
    participants: Vec<CallParticipant>,
}

#[derive(Serialize, Deserialize)]
struct CallParticipant {
    account: String,
    device: u32,
    master_key: String,
    master_salt: String,
}

fn call_file() -> CallFile {
    use ratchetry::calls::{Call, CallConfig, CallKind};
    use ratchetry::devices::{AccountKeyPair, DeviceAddress, DeviceId};
    let seed = raw_sha256(b"ratchetry call keys");
    let rng = &mut SeededRng::new(seed);
    let config = CallConfig::default();
    let mut people: Vec<DeviceAddress> = (0..4)
        .map(|i| DeviceAddress {
            account: AccountKeyPair::generate(rng).public(),
            device: DeviceId(1 + i % 2),
        })
        .collect();
    let joiner = people.pop().unwrap();
    let mut call = Call::start(rng, CallKind::Group, &people, &config).unwrap();
    let mut epochs = Vec::new();
    let mut record = |change: &str, call: &Call| {
        let msg = call.key_message().to_bytes();
        epochs.push(CallEpoch {
            change: change.into(),
            epoch: call.epoch(),
            secret: h(&msg[23..55]),
            key_message: h(&*msg),
            participants: call
                .participants()
                .iter()
                .map(|p| {
                    let k = call.srtp_keys(p).unwrap();
                    CallParticipant {
                        account: h(p.account.to_bytes()),
                        device: p.device.0,
                        master_key: h(k.master_key()),
                        master_salt: h(k.master_salt()),
                    }
                })
                .collect(),
        });
    };
    record("start", &call);
    call.join(joiner, &config).unwrap();
    record("join", &call);
    let leaver = call.participants()[0];
    call.remove(rng, &leaver).unwrap();
    record("remove", &call);
    CallFile {
        description: "A group call's key epochs (PROTOCOL.md 20): start with three participants, \
                      a join (ratcheted secret), a removal (fresh secret), and every \
                      participant's SRTP keys. Schema: test-vectors/README.md."
            .into(),
        generator: GENERATOR.into(),
        rng_seed: h(seed),
        epochs,
    }
}

#[test]
fn call_key_vectors() {
    let generated = to_json(&call_file());
    check_committed("call-keys.json", &generated);
    let f: CallFile = serde_json::from_str(&generated).unwrap();
    assert_eq!(f.epochs.len(), 3);
    let call_id = hex::decode(&f.epochs[0].key_message).unwrap()[2..18].to_vec();
    for (i, e) in f.epochs.iter().enumerate() {
        let salt = [call_id.clone(), e.epoch.to_be_bytes().to_vec()].concat();
        if e.change == "join" {
            let mut next = [0u8; 32];
            raw::hkdf_sha256(
                Some(&salt),
                &hex::decode(&f.epochs[i - 1].secret).unwrap(),
                b"ratchetry v1 call ratchet",
                &mut next,
            )
            .unwrap();
            assert_eq!(h(next), e.secret);
        }
        let mut msg = vec![1u8, 0x0f];
        msg.extend(&call_id);
        msg.push(2);
        msg.extend(e.epoch.to_be_bytes());
        msg.extend(hex::decode(&e.secret).unwrap());
        msg.extend((e.participants.len() as u32).to_be_bytes());
        for p in &e.participants {
            msg.extend(hex::decode(&p.account).unwrap());
            msg.extend(p.device.to_be_bytes());
            let mut info = b"ratchetry v1 call srtp".to_vec();
            info.extend(hex::decode(&p.account).unwrap());
            info.extend(p.device.to_be_bytes());
            let mut okm = [0u8; 44];
            raw::hkdf_sha256(
                Some(&salt),
                &hex::decode(&e.secret).unwrap(),
                &info,
                &mut okm,
            )
            .unwrap();
            assert_eq!(
                (h(&okm[..32]), h(&okm[32..])),
                (p.master_key.clone(), p.master_salt.clone())
            );
        }
        assert_eq!(h(msg), e.key_message);
    }
    assert_eq!(f.epochs[1].participants.len(), 4);
    assert_eq!(f.epochs[2].participants.len(), 3);
}

#[test]
#[ignore = "writes test-vectors/; run to regenerate after a deliberate protocol change"]
fn regenerate() {
    std::fs::write(path("x3dh.json"), to_json(&x3dh_file())).unwrap();
    std::fs::write(path("kdf-chains.json"), to_json(&kdf_file())).unwrap();
    std::fs::write(path("ratchet-transcript.json"), to_json(&transcript_file())).unwrap();
    std::fs::write(path("sender-keys.json"), to_json(&sender_keys_file())).unwrap();
    std::fs::write(path("devices.json"), to_json(&devices_file())).unwrap();
    std::fs::write(path("history-sync.json"), to_json(&history_file())).unwrap();
    std::fs::write(path("call-keys.json"), to_json(&call_file())).unwrap();
}
