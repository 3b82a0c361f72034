//! The crate's own protocol vectors for wire version 2, one `#[test]` per file of
//! `test-vectors/`: `pqxdh.json`, `kdf-chains.json`, `ratchet-transcript.json`,
//! `sender-keys.json`, `devices.json`, `history-sync.json`, `call-keys.json`, `records.json`.
//!
//! Each file is generated from `SeededRng` (test-vectors/README.md specifies it) by
//!
//! ```text
//! cargo test --test protocol_vectors -- --ignored regenerate
//! ```
//!
//! and checked two ways by `cargo test`: regenerating must reproduce the committed file byte for
//! byte, and every derived value in a file is recomputed from its inputs with the formulas of
//! PROTOCOL.md through the raw primitive wrappers (`ratchetry::testing::raw`, and SHA-2),
//! independently of the session code. That recomputation is the "spec model" below: byte
//! builders, the KDFs, PQXDH, a Double Ratchet session, a sender key, history streams and call
//! keys, written from PROTOCOL.md alone. Where PROTOCOL.md is silent or differs from the code,
//! the model follows the code and a `SPEC NOTE` says so.
//!
//! Layout: helpers, the spec model, then one section per file (its schema, its generator, its
//! check), and `regenerate` at the end.

use std::collections::BTreeMap;

use rand_core::Rng;
use ratchetry::testing::{SeededRng, hooks, raw, vectors};
use ratchetry::{
    IdentityKeyPair, IncomingMessage, PreKeyStore, PreKeyStoreConfig, Session, SessionConfig,
    Timestamp,
};
use serde::{Deserialize, Serialize};

#[path = "protocol_vectors/pq.rs"]
mod pq;

const GENERATOR: &str = "cargo test --test protocol_vectors -- --ignored regenerate";

// =============================================================================================
// Helpers

fn h(bytes: impl AsRef<[u8]>) -> String {
    hex::encode(bytes)
}

/// The records of whole-state bytes (19.4: `0x03 ‖ 0x87 ‖ u32(n) ‖ n × (blob(key) ‖
/// blob(value))`), as (key, value).
fn whole_state_records(bytes: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    assert_eq!(&bytes[..2], &[0x03, 0x87]);
    let u32_at = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let mut at = 6;
    let mut records = Vec::new();
    for _ in 0..u32_at(2) {
        let len = u32_at(at);
        let key = bytes[at + 4..at + 4 + len].to_vec();
        at += 4 + len;
        let len = u32_at(at);
        records.push((key, bytes[at + 4..at + 4 + len].to_vec()));
        at += 4 + len;
    }
    assert_eq!(at, bytes.len());
    records
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn unh<const N: usize>(s: &str) -> [u8; N] {
    unhex(s).try_into().unwrap()
}

fn draw<const N: usize>(rng: &mut SeededRng) -> [u8; N] {
    let mut b = [0u8; N];
    rng.fill_bytes(&mut b);
    b
}

/// A vector's generator: seed = SHA-256 of its label.
fn seeded(label: &str) -> ([u8; 32], SeededRng) {
    let seed = sha256(&[label.as_bytes()]);
    (seed, SeededRng::new(seed))
}

/// Asserts that an operation drew exactly what `probe` drew before it (PROTOCOL.md 11): both
/// generators continue with the same bytes.
#[track_caller]
fn same_stream(rng: &SeededRng, probe: &SeededRng) {
    assert_eq!(
        draw::<16>(&mut rng.clone()),
        draw::<16>(&mut probe.clone()),
        "the operation drew other bytes than PROTOCOL.md section 11 says"
    );
}

fn path(name: &str) -> String {
    format!("{}/test-vectors/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap() + "\n"
}

/// Regenerates a file, requires the committed copy to match, and returns the parsed file.
fn generated_and_committed<T: Serialize + for<'de> Deserialize<'de>>(name: &str, file: &T) -> T {
    let generated = to_json(file);
    let committed = std::fs::read_to_string(path(name)).unwrap_or_default();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(committed.lines().count().min(generated.lines().count()));
        panic!(
            "{name} differs from what the code generates (first at line {}); if the protocol \
             changed on purpose, update PROTOCOL.md and run `{GENERATOR}`",
            line + 1
        );
    }
    serde_json::from_str(&generated).unwrap()
}

/// Bytes built field by field, in PROTOCOL.md's notation (section 1).
#[derive(Clone, Default)]
struct Enc(Vec<u8>);

impl Enc {
    /// `version ‖ type`.
    fn tag(version: u8, kind: u8) -> Self {
        Self(vec![version, kind])
    }
    fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    fn u16(self, v: u16) -> Self {
        self.put(v.to_be_bytes())
    }
    fn u32(self, v: u32) -> Self {
        self.put(v.to_be_bytes())
    }
    fn u64(self, v: u64) -> Self {
        self.put(v.to_be_bytes())
    }
    fn put(mut self, b: impl AsRef<[u8]>) -> Self {
        self.0.extend_from_slice(b.as_ref());
        self
    }
    fn flag(self, b: bool) -> Self {
        self.u8(u8::from(b))
    }
    /// `opt(x)`.
    fn opt<T>(self, v: Option<T>, f: impl FnOnce(Self, T) -> Self) -> Self {
        match v {
            Some(v) => f(self.u8(1), v),
            None => self.u8(0),
        }
    }
    /// `blob(x)`.
    fn blob(self, b: impl AsRef<[u8]>) -> Self {
        let b = b.as_ref();
        self.u32(b.len() as u32).put(b)
    }
    fn done(self) -> Vec<u8> {
        self.0
    }
}

/// Reads bytes field by field (the spec model's parser for messages it receives).
struct Rd<'a>(&'a [u8]);

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    fn arr<const N: usize>(&mut self) -> [u8; N] {
        self.take(N).try_into().unwrap()
    }
    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.arr())
    }
    fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.arr())
    }
    fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> Option<T> {
        match self.u8() {
            0 => None,
            1 => Some(f(self)),
            other => panic!("flag {other}"),
        }
    }
    fn blob(&mut self) -> &'a [u8] {
        let n = self.u32() as usize;
        self.take(n)
    }
    fn rest(&mut self) -> &'a [u8] {
        self.take(self.0.len())
    }
}

// =============================================================================================
// The spec model: PROTOCOL.md's formulas on the raw primitives.

// Section 3: labels.
const L_PQXDH: &[u8] = b"ratchetry v1 pqxdh";
const L_ROOT: &[u8] = b"ratchetry v1 root";
const L_MESSAGE_KEYS: &[u8] = b"ratchetry v1 message keys";
const L_SIGNED_PREKEY: &[u8] = b"ratchetry v1 signed prekey";
const L_KEM_PREKEY: &[u8] = b"ratchetry v1 kem prekey";
const L_BODY_DIGEST_KEY: &[u8] = b"ratchetry v1 body digest key";
const L_GROUP_MESSAGE_KEYS: &[u8] = b"ratchetry v1 group message keys";
const L_GROUP_MESSAGE: &[u8] = b"ratchetry v1 group message";
const L_DEVICE_LIST: &[u8] = b"ratchetry v1 device list";
const L_DEVICE_BINDING: &[u8] = b"ratchetry v1 device binding";
const L_LINK_REQUEST: &[u8] = b"ratchetry v1 link request";
const L_LINK_CONFIRMATION: &[u8] = b"ratchetry v1 link confirmation";
const L_LISTS_DIGEST: &[u8] = b"ratchetry v1 device lists digest";
const L_SAFETY_NUMBER: &[u8] = b"ratchetry v1 safety number";
const L_HISTORY_SYNC: &[u8] = b"ratchetry v1 history sync";
const L_HISTORY_DIGEST: &[u8] = b"ratchetry v1 history digest";
const L_CALL_RATCHET: &[u8] = b"ratchetry v1 call ratchet";
const L_CALL_SRTP: &[u8] = b"ratchetry v1 call srtp";
const L_SEALED_STATE: &[u8] = b"ratchetry v1 sealed state";
const L_MESSAGE_ID: &[u8] = b"ratchetry v1 message id";
const L_RETRY_REQUEST: &[u8] = b"ratchetry v1 retry request";

// Section 2: primitives.

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::Digest;
    let mut d = sha2::Sha256::new();
    for p in parts {
        d.update(p);
    }
    d.finalize().into()
}

fn sha512(parts: &[&[u8]]) -> [u8; 64] {
    use sha2::Digest;
    let mut d = sha2::Sha512::new();
    for p in parts {
        d.update(p);
    }
    d.finalize().into()
}

fn hkdf<const N: usize>(salt: &[u8], ikm: &[u8], info: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    raw::hkdf_sha256(Some(salt), ikm, info, &mut out).unwrap();
    out
}

fn x25519(k: [u8; 32], u: [u8; 32]) -> [u8; 32] {
    raw::x25519(k, u).expect("contributory")
}

fn x25519_pub(k: [u8; 32]) -> [u8; 32] {
    raw::x25519_public(k)
}

/// The Ed25519 public key of a seed.
fn ed_pub(seed: &[u8; 32]) -> [u8; 32] {
    raw::ed25519_sign(seed, b"").0
}

/// `Sign(seed, parts concatenated)`.
fn sign(seed: &[u8; 32], parts: &[&[u8]]) -> [u8; 64] {
    raw::ed25519_sign(seed, &parts.concat()).1
}

/// 5.1: the X25519 secret of an identity seed, SHA-512(seed)[0..32].
fn ikx_secret(seed: &[u8; 32]) -> [u8; 32] {
    sha512(&[seed])[..32].try_into().unwrap()
}

/// 5.1: the X25519 form of an identity key, IKx = u = (1 + y) / (1 − y) mod p.
fn ikx_of(ik: &[u8; 32]) -> [u8; 32] {
    montgomery_u(ik)
}

fn kem_public(seed: &[u8; 64]) -> Vec<u8> {
    raw::mlkem1024_keygen(seed).0
}

fn seal(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], pt: &[u8]) -> Vec<u8> {
    raw::aes256gcm_seal(key, nonce, aad, pt)
}

fn split<const A: usize, const B: usize>(okm: &[u8]) -> ([u8; A], [u8; B]) {
    (
        okm[..A].try_into().unwrap(),
        okm[A..A + B].try_into().unwrap(),
    )
}

// 8.2: the ratchet's KDFs.

fn kdf_rk(rk: [u8; 32], dh: [u8; 32]) -> ([u8; 32], [u8; 32]) {
    split(&hkdf::<64>(&rk, &dh, L_ROOT))
}

fn kdf_ck(ck: [u8; 32]) -> ([u8; 32], [u8; 32]) {
    (raw::hmac_sha256(&ck, &[1]), raw::hmac_sha256(&ck, &[2]))
}

/// 8.2 and 14.3: a message key's AEAD key and nonce under a header salt.
fn message_keys(label: &[u8], mk: [u8; 32], salt: [u8; 16]) -> ([u8; 32], [u8; 12]) {
    split(&hkdf::<44>(&salt, &mk, label))
}

/// 5.1's birational map, in integers modulo p = 2^255 − 19 (little-endian 64-bit limbs).
fn montgomery_u(ik: &[u8; 32]) -> [u8; 32] {
    type F = [u64; 4];
    const P: F = [
        0xffff_ffff_ffff_ffed,
        0xffff_ffff_ffff_ffff,
        0xffff_ffff_ffff_ffff,
        0x7fff_ffff_ffff_ffff,
    ];
    fn geq(a: &F, b: &F) -> bool {
        for i in (0..4).rev() {
            if a[i] != b[i] {
                return a[i] > b[i];
            }
        }
        true
    }
    fn sub(a: &F, b: &F) -> F {
        let mut out = [0u64; 4];
        let mut borrow = false;
        for i in 0..4 {
            let (d, b1) = a[i].overflowing_sub(b[i]);
            let (d, b2) = d.overflowing_sub(u64::from(borrow));
            out[i] = d;
            borrow = b1 || b2;
        }
        out
    }
    fn add(a: &F, b: &F) -> F {
        let mut out = [0u64; 4];
        let mut carry = 0u128;
        for i in 0..4 {
            let s = a[i] as u128 + b[i] as u128 + carry;
            out[i] = s as u64;
            carry = s >> 64;
        }
        // a, b < p < 2^255: no carry out of 256 bits.
        if geq(&out, &P) { sub(&out, &P) } else { out }
    }
    fn mul(a: &F, b: &F) -> F {
        let mut wide = [0u128; 8];
        for i in 0..4 {
            for j in 0..4 {
                let p = a[i] as u128 * b[j] as u128;
                wide[i + j] += p & 0xffff_ffff_ffff_ffff;
                wide[i + j + 1] += p >> 64;
            }
        }
        let mut limbs = [0u64; 8];
        let mut carry = 0u128;
        for i in 0..8 {
            let s = wide[i] + carry;
            limbs[i] = s as u64;
            carry = s >> 64;
        }
        // 2^256 ≡ 38 (mod p): fold the high half in, twice, then reduce.
        let mut acc = [0u128; 4];
        for i in 0..4 {
            acc[i] = limbs[i] as u128 + limbs[i + 4] as u128 * 38;
        }
        let mut out = [0u64; 4];
        let mut carry = 0u128;
        for i in 0..4 {
            let s = acc[i] + carry;
            out[i] = s as u64;
            carry = s >> 64;
        }
        while carry != 0 {
            let mut c = carry * 38;
            for limb in &mut out {
                let s = *limb as u128 + c;
                *limb = s as u64;
                c = s >> 64;
            }
            carry = c;
        }
        while geq(&out, &P) {
            out = sub(&out, &P);
        }
        out
    }
    let mut y_bytes = *ik;
    y_bytes[31] &= 0x7f;
    let y: F =
        std::array::from_fn(|i| u64::from_le_bytes(y_bytes[8 * i..8 * i + 8].try_into().unwrap()));
    let one: F = [1, 0, 0, 0];
    let num = add(&one, &y);
    let den = add(&sub(&P, &y), &one); // 1 − y = (p − y) + 1, for y < p
    // den^(p − 2).
    let mut e = P;
    e[0] -= 2;
    let mut inv = one;
    for i in (0..255).rev() {
        inv = mul(&inv, &inv);
        if (e[i / 64] >> (i % 64)) & 1 == 1 {
            inv = mul(&inv, &den);
        }
    }
    let u = mul(&num, &inv);
    let mut out = [0u8; 32];
    for (i, limb) in u.iter().enumerate() {
        out[8 * i..8 * i + 8].copy_from_slice(&limb.to_le_bytes());
    }
    out
}

/// A device's prekey secrets as the spec model holds them: enough to publish bundles (6) and
/// answer PQXDH (7.2).
#[derive(Clone, Debug, Default)]
struct SpecPrekeys {
    identity_seed: [u8; 32],
    signed: BTreeMap<u32, [u8; 32]>,
    one_time: BTreeMap<u32, [u8; 32]>,
    kem: BTreeMap<u32, [u8; 64]>,
}

impl SpecPrekeys {
    fn identity(&self) -> [u8; 32] {
        ed_pub(&self.identity_seed)
    }

    /// 5.2.
    fn spk_signature(&self, id: u32) -> [u8; 64] {
        let spk = x25519_pub(self.signed[&id]);
        sign(
            &self.identity_seed,
            &[L_SIGNED_PREKEY, &id.to_be_bytes(), &spk],
        )
    }

    /// 5.3.
    fn kem_signature(&self, id: u32) -> [u8; 64] {
        let pk = kem_public(&self.kem[&id]);
        sign(&self.identity_seed, &[L_KEM_PREKEY, &id.to_be_bytes(), &pk])
    }

    /// Section 6.
    fn bundle(&self, spk: u32, opk: Option<u32>, kem: u32) -> Vec<u8> {
        Enc::tag(2, 0x01)
            .put(self.identity())
            .u32(spk)
            .put(x25519_pub(self.signed[&spk]))
            .put(self.spk_signature(spk))
            .opt(opk, |e, id| e.u32(id).put(x25519_pub(self.one_time[&id])))
            .u32(kem)
            .put(kem_public(&self.kem[&kem]))
            .put(self.kem_signature(kem))
            .done()
    }
}

/// A bundle as the initiator reads it (section 6).
struct Bundle {
    ik: [u8; 32],
    spk_id: u32,
    spk: [u8; 32],
    opk: Option<(u32, [u8; 32])>,
    kem_id: u32,
    kem_pk: Vec<u8>,
}

impl Bundle {
    fn parse(bytes: &[u8]) -> Self {
        let mut r = Rd(bytes);
        assert_eq!(r.take(2), [2, 1]);
        let ik = r.arr();
        let spk_id = r.u32();
        let spk = r.arr();
        let sig: [u8; 64] = r.arr();
        let opk = r.opt(|r| (r.u32(), r.arr()));
        let kem_id = r.u32();
        let kem_pk = r.take(1568).to_vec();
        let kem_sig: [u8; 64] = r.arr();
        assert!(r.0.is_empty());
        let signed = [L_SIGNED_PREKEY, &spk_id.to_be_bytes()[..], &spk].concat();
        assert!(raw::ed25519_verify(&ik, &signed, &sig));
        let signed = [L_KEM_PREKEY, &kem_id.to_be_bytes()[..], &kem_pk].concat();
        assert!(raw::ed25519_verify(&ik, &signed, &kem_sig));
        Self {
            ik,
            spk_id,
            spk,
            opk,
            kem_id,
            kem_pk,
        }
    }
}

/// 7.3: SK from the DH outputs and the KEM secret.
fn pqxdh_sk(dhs: &[[u8; 32]], ss: &[u8; 32]) -> [u8; 32] {
    let mut ikm = vec![0xFF; 32];
    for d in dhs {
        ikm.extend(d);
    }
    ikm.extend(ss);
    hkdf(&[0; 32], &ikm, L_PQXDH)
}

/// One Double Ratchet session, as 8.1 lists its state.
#[derive(Clone, Debug)]
struct Spec {
    initiator: bool,
    local: [u8; 32],
    remote: [u8; 32],
    base_key: [u8; 32],
    spk_id: u32,
    opk_id: Option<u32>,
    kem: Option<(u32, [u8; 32])>,
    pending_ct: Option<Vec<u8>>,
    awaiting_reply: bool,
    rk: [u8; 32],
    dhs: [u8; 32],
    dhr: [u8; 32],
    send: Option<([u8; 32], u32)>,
    pn: u32,
    recv: Option<([u8; 32], [u8; 32], u32)>,
    skipped: Vec<([u8; 32], u32, [u8; 32])>,
}

/// Section 12's session limits (the defaults every vector uses).
const MAX_FORWARD_JUMP: u32 = 2000;
const MAX_SKIPPED_KEYS: usize = 2000;

impl Spec {
    /// 7.1 and 8.3: Alice's session from a bundle and her draws `ek`, `m`, `r`.
    fn initiate(
        alice_seed: &[u8; 32],
        bundle: &[u8],
        ek: [u8; 32],
        m: [u8; 32],
        r: [u8; 32],
    ) -> Self {
        let b = Bundle::parse(bundle);
        let mut dhs = vec![
            x25519(ikx_secret(alice_seed), b.spk),
            x25519(ek, ikx_of(&b.ik)),
            x25519(ek, b.spk),
        ];
        if let Some((_, opk)) = b.opk {
            dhs.push(x25519(ek, opk));
        }
        let (ct, ss) = raw::mlkem1024_encapsulate(&b.kem_pk, &m).unwrap();
        let sk = pqxdh_sk(&dhs, &ss);
        let (rk, ck) = kdf_rk(sk, x25519(r, b.spk));
        Self {
            initiator: true,
            local: ed_pub(alice_seed),
            remote: b.ik,
            base_key: x25519_pub(ek),
            spk_id: b.spk_id,
            opk_id: b.opk.map(|(id, _)| id),
            kem: Some((b.kem_id, sha256(&[&ct]))),
            pending_ct: Some(ct),
            awaiting_reply: true,
            rk,
            dhs: r,
            dhr: b.spk,
            send: Some((ck, 0)),
            pn: 0,
            recv: None,
            skipped: Vec::new(),
        }
    }

    /// 7.2 and 8.3: Bob's session from a pre-key message (9.2); then 8.6 receives it. Returns
    /// the session and the plaintext.
    fn respond(bob: &SpecPrekeys, message: &[u8], context: &[u8]) -> (Self, Vec<u8>) {
        let mut r = Rd(message);
        assert_eq!(r.take(2), [2, 3]);
        let ik_a: [u8; 32] = r.arr();
        let ek: [u8; 32] = r.arr();
        let spk_id = r.u32();
        let opk_id = r.opt(|r| r.u32());
        let kem_id = r.u32();
        let ct = r.take(1568).to_vec();
        let ratchet = r.rest();
        let spk = bob.signed[&spk_id];
        let mut dhs = vec![
            x25519(spk, ikx_of(&ik_a)),
            x25519(ikx_secret(&bob.identity_seed), ek),
            x25519(spk, ek),
        ];
        if let Some(id) = opk_id {
            dhs.push(x25519(bob.one_time[&id], ek));
        }
        let ss = raw::mlkem1024_decapsulate(&bob.kem[&kem_id], &ct).unwrap();
        let mut session = Self {
            initiator: false,
            local: bob.identity(),
            remote: ik_a,
            base_key: ek,
            spk_id,
            opk_id,
            kem: Some((kem_id, sha256(&[&ct]))),
            pending_ct: None,
            awaiting_reply: false,
            rk: pqxdh_sk(&dhs, &ss),
            dhs: spk,
            dhr: ratchet[2..34].try_into().unwrap(),
            send: None,
            pn: 0,
            recv: None,
            skipped: Vec::new(),
        };
        let plaintext = session.receive(ratchet, context).expect("opens");
        (session, plaintext)
    }

    /// 7.3's AD: initiator's identity key, then the responder's.
    fn ad(&self) -> Vec<u8> {
        if self.initiator {
            [self.local, self.remote].concat()
        } else {
            [self.remote, self.local].concat()
        }
    }

    /// 9.2's prefix, from the origin and the pending ciphertext.
    fn prekey_prefix(&self) -> Vec<u8> {
        Enc::tag(2, 0x03)
            .put(self.local)
            .put(self.base_key)
            .u32(self.spk_id)
            .opt(self.opk_id, |e, id| e.u32(id))
            .u32(self.kem.unwrap().0)
            .put(self.pending_ct.as_ref().unwrap())
            .done()
    }

    /// 8.5: `new_ratchet_secret` is the 32 bytes drawn when the send starts a chain (and must
    /// be given exactly then), `salt` the header's 16.
    fn send(
        &mut self,
        new_ratchet_secret: Option<[u8; 32]>,
        salt: [u8; 16],
        plaintext: &[u8],
        context: &[u8],
    ) -> Vec<u8> {
        match (self.send, new_ratchet_secret) {
            (None, Some(r)) => {
                let (rk, ck) = kdf_rk(self.rk, x25519(r, self.dhr));
                self.rk = rk;
                self.dhs = r;
                self.send = Some((ck, 0));
            }
            (Some(_), None) => {}
            (chain, secret) => panic!(
                "a new ratchet secret is drawn exactly when no sending chain exists: {} / {}",
                chain.is_some(),
                secret.is_some()
            ),
        }
        let (ck, n) = self.send.unwrap();
        let (mk, next) = kdf_ck(ck);
        let (key, nonce) = message_keys(L_MESSAGE_KEYS, mk, salt);
        let header = self.header(n, salt);
        let aad = [self.ad(), header.clone(), context.to_vec()].concat();
        let mut out = if self.awaiting_reply {
            self.prekey_prefix()
        } else {
            Vec::new()
        };
        out.extend(&header);
        out.extend(seal(&key, &nonce, &aad, plaintext));
        self.send = Some((next, n + 1));
        out
    }

    /// 8.4.
    fn header(&self, n: u32, salt: [u8; 16]) -> Vec<u8> {
        Enc::tag(2, 0x02)
            .put(x25519_pub(self.dhs))
            .u32(self.pn)
            .u32(n)
            .put(salt)
            .u16(0)
            .done()
    }

    /// A message as it arrives: a pre-key message continues this session (8.6, last
    /// paragraph) only if it is a responder and the message carries its origin.
    fn receive_any(&mut self, message: &[u8], context: &[u8]) -> Option<Vec<u8>> {
        match message[1] {
            0x02 => self.receive(message, context),
            0x03 => {
                let ratchet = self.continues(message)?;
                self.receive(ratchet, context)
            }
            other => panic!("type {other}"),
        }
    }

    /// The ratchet message inside a pre-key message that continues this session.
    fn continues<'m>(&self, message: &'m [u8]) -> Option<&'m [u8]> {
        let mut r = Rd(message);
        r.take(2);
        let ik: [u8; 32] = r.arr();
        let ek: [u8; 32] = r.arr();
        let spk = r.u32();
        let opk = r.opt(|r| r.u32());
        let kem = r.u32();
        let ct = r.take(1568);
        let origin = (ik, ek, spk, opk, Some((kem, sha256(&[ct]))));
        let mine = (
            self.remote,
            self.base_key,
            self.spk_id,
            self.opk_id,
            self.kem,
        );
        (!self.initiator && origin == mine).then(|| r.rest())
    }

    /// 8.6, on copies; the session changes only if the message opens.
    fn receive(&mut self, message: &[u8], context: &[u8]) -> Option<Vec<u8>> {
        let mut r = Rd(message);
        assert_eq!(r.take(2), [2, 2]);
        let k: [u8; 32] = r.arr();
        let pn = r.u32();
        let n = r.u32();
        let salt: [u8; 16] = r.arr();
        assert_eq!(r.take(2), [0, 0]);
        let ct = r.rest();
        let aad = [self.ad(), message[..60].to_vec(), context.to_vec()].concat();
        let open = |mk: [u8; 32]| {
            let (key, nonce) = message_keys(L_MESSAGE_KEYS, mk, salt);
            raw::aes256gcm_open(&key, &nonce, &aad, ct).ok()
        };
        // Step 1.
        if let Some(i) = self.skipped.iter().position(|s| s.0 == k && s.1 == n) {
            let pt = open(self.skipped[i].2)?;
            self.skipped.remove(i);
            self.awaiting_reply = false;
            self.pending_ct = None;
            return Some(pt);
        }
        // Step 2.
        if n == u32::MAX {
            return None;
        }
        let mut recorded = Vec::new();
        let chain = |mut ck: [u8; 32], from: u32, to: u32, key: [u8; 32], out: &mut Vec<_>| {
            for i in from..to {
                let (mk, next) = kdf_ck(ck);
                out.push((key, i, mk));
                ck = next;
            }
            ck
        };
        let (new_root, ck) = match self.recv {
            // Step 3.
            Some((kr, ckr, nr)) if kr == k => {
                if n < nr || n - nr > MAX_FORWARD_JUMP {
                    return None;
                }
                (None, chain(ckr, nr, n, kr, &mut recorded))
            }
            // Step 4.
            recv => {
                let tail = recv.map_or(0, |(_, _, nr)| pn.saturating_sub(nr));
                if u64::from(tail) + u64::from(n) > u64::from(MAX_FORWARD_JUMP) {
                    return None;
                }
                if let Some((kr, ckr, nr)) = recv {
                    chain(ckr, nr, nr + tail, kr, &mut recorded);
                }
                let (rk, ck) = kdf_rk(self.rk, x25519(self.dhs, k));
                (Some(rk), chain(ck, 0, n, k, &mut recorded))
            }
        };
        let (mk, next) = kdf_ck(ck);
        // Step 5.
        let pt = open(mk)?;
        // Step 6.
        if let Some(rk) = new_root {
            self.rk = rk;
            self.dhr = k;
            if let Some((_, ns)) = self.send.take() {
                self.pn = ns;
            }
        }
        self.recv = Some((k, next, n + 1));
        self.skipped.extend(recorded);
        let excess = self.skipped.len().saturating_sub(MAX_SKIPPED_KEYS);
        self.skipped.drain(..excess);
        self.awaiting_reply = false;
        self.pending_ct = None;
        Some(pt)
    }

    /// 10.3.
    fn state(&self) -> Vec<u8> {
        let mut e = Enc::tag(2, 0x81)
            .u32(MAX_FORWARD_JUMP)
            .u32(MAX_SKIPPED_KEYS as u32)
            .u8(u8::from(!self.initiator))
            .put(self.local)
            .put(self.remote)
            .put(self.base_key)
            .u32(self.spk_id)
            .opt(self.opk_id, |e, id| e.u32(id))
            .opt(self.kem, |e, (id, d)| e.u32(id).put(d))
            .opt(self.pending_ct.as_ref(), |e, ct| e.put(ct))
            .flag(self.awaiting_reply)
            .put(self.rk)
            .put(self.dhs)
            .put(x25519_pub(self.dhs))
            .put(self.dhr)
            .opt(self.send, |e, (ck, n)| e.put(ck).u32(n))
            .u32(self.pn)
            .opt(self.recv, |e, (k, ck, n)| e.put(k).put(ck).u32(n))
            .u32(self.skipped.len() as u32);
        for (k, n, mk) in &self.skipped {
            e = e.put(k).u32(*n).put(mk);
        }
        e.done()
    }
}

/// A sender key's owner (14.1, 14.3) as the spec model holds it.
#[derive(Clone, Debug)]
struct SpecOwner {
    group: [u8; 32],
    identity: [u8; 32],
    context: Vec<u8>,
    key_id: u32,
    iteration: u32,
    ck: [u8; 32],
    seed: [u8; 32],
}

/// 11 and 14.1: the key id a generation takes from its 4 drawn bytes: 0, or the id being left,
/// moves on by one (wrapping) until neither.
fn key_id_of(draw: [u8; 4], previous: Option<u32>) -> u32 {
    let mut id = u32::from_be_bytes(draw);
    while id == 0 || Some(id) == previous {
        id = id.wrapping_add(1);
    }
    id
}

impl SpecOwner {
    /// A new generation from its draws: CK, signing seed, key id bytes.
    fn generation(
        &mut self,
        ck: [u8; 32],
        seed: [u8; 32],
        key_id_draw: [u8; 4],
        previous: Option<u32>,
    ) {
        self.ck = ck;
        self.seed = seed;
        self.key_id = key_id_of(key_id_draw, previous);
        self.iteration = 0;
    }

    fn sender_prefix(&self) -> Vec<u8> {
        Enc::default()
            .put(L_GROUP_MESSAGE)
            .put(self.identity)
            .u8(self.context.len() as u8)
            .put(&self.context)
            .done()
    }

    /// 14.2.
    fn distribution(&self) -> Vec<u8> {
        Enc::tag(2, 0x05)
            .put(self.group)
            .u32(self.key_id)
            .u32(self.iteration)
            .put(self.ck)
            .put(ed_pub(&self.seed))
            .done()
    }

    /// 14.3, with the per-message `context` the signature binds (empty outside fanout; a group
    /// envelope's header in 18.1).
    fn encrypt(&mut self, salt: [u8; 16], plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let (mk, next) = kdf_ck(self.ck);
        let header = Enc::tag(2, 0x04)
            .put(self.group)
            .u32(self.key_id)
            .u32(self.iteration)
            .put(salt)
            .done();
        let (key, nonce) = message_keys(L_GROUP_MESSAGE_KEYS, mk, salt);
        let signed = [header.clone(), seal(&key, &nonce, &header, plaintext)].concat();
        let signature = sign(
            &self.seed,
            &[
                &self.sender_prefix(),
                &[context.len() as u8],
                context,
                &signed,
            ],
        );
        self.ck = next;
        self.iteration += 1;
        [signed, signature.to_vec()].concat()
    }

    /// 14.5's outbound state.
    fn state(&self) -> Vec<u8> {
        Enc::tag(2, 0x84)
            .put(self.group)
            .put(self.identity)
            .u8(self.context.len() as u8)
            .put(&self.context)
            .u32(self.key_id)
            .u32(self.iteration)
            .put(self.ck)
            .put(self.seed)
            .done()
    }
}

/// One generation of a received sender key (14.2).
#[derive(Clone, Debug)]
struct SpecGeneration {
    key_id: u32,
    signing: [u8; 32],
    ck: [u8; 32],
    first: u32,
    iteration: u32,
    skipped: Vec<(u32, [u8; 32])>,
}

/// A receiver's key for one (sender, group) (14.2, 14.4).
#[derive(Clone, Debug)]
struct SpecInbound {
    group: [u8; 32],
    identity: [u8; 32],
    context: Vec<u8>,
    generations: Vec<SpecGeneration>,
}

/// Section 12's group limits.
const GROUP_MAX_FORWARD_JUMP: u32 = 5000;
const GROUP_MAX_SKIPPED_KEYS: usize = 2000;
const GROUP_MAX_GENERATIONS: usize = 4;

impl SpecInbound {
    /// 14.2: processing a distribution.
    fn process(&mut self, distribution: &[u8]) {
        let mut r = Rd(distribution);
        assert_eq!(r.take(2), [2, 5]);
        assert_eq!(r.arr::<32>(), self.group);
        let key_id = r.u32();
        let iteration = r.u32();
        let ck = r.arr();
        let signing = r.arr();
        match self.generations.iter().find(|g| g.key_id == key_id) {
            Some(g) => assert_eq!(g.signing, signing, "ConflictingDistribution"),
            None => {
                self.generations.push(SpecGeneration {
                    key_id,
                    signing,
                    ck,
                    first: iteration,
                    iteration,
                    skipped: Vec::new(),
                });
                let excess = self.generations.len().saturating_sub(GROUP_MAX_GENERATIONS);
                self.generations.drain(..excess);
            }
        }
    }

    /// 14.4: the plaintext of a group message sealed with `context`, if it verifies and opens.
    fn decrypt(&mut self, message: &[u8], context: &[u8]) -> Option<Vec<u8>> {
        let (header, rest) = message.split_at(58);
        let (ct, signature) = rest.split_at(rest.len() - 64);
        let mut r = Rd(header);
        assert_eq!(r.take(2), [2, 4]);
        if r.arr::<32>() != self.group {
            return None;
        }
        let key_id = r.u32();
        let i = r.u32();
        let salt: [u8; 16] = r.arr();
        let prefix = Enc::default()
            .put(L_GROUP_MESSAGE)
            .put(self.identity)
            .u8(self.context.len() as u8)
            .put(&self.context)
            .done();
        let g = self.generations.iter_mut().find(|g| g.key_id == key_id)?;
        let signed = [&prefix[..], &[context.len() as u8], context, header, ct].concat();
        if !raw::ed25519_verify(&g.signing, &signed, &signature.try_into().unwrap()) {
            return None;
        }
        let open = |mk| {
            let (key, nonce) = message_keys(L_GROUP_MESSAGE_KEYS, mk, salt);
            raw::aes256gcm_open(&key, &nonce, header, ct).ok()
        };
        if i < g.first {
            return None;
        }
        if i < g.iteration {
            let at = g.skipped.iter().position(|s| s.0 == i)?;
            let pt = open(g.skipped[at].1)?;
            g.skipped.remove(at);
            return Some(pt);
        }
        if i == u32::MAX || i - g.iteration > GROUP_MAX_FORWARD_JUMP {
            return None;
        }
        let mut ck = g.ck;
        let mut recorded = Vec::new();
        for j in g.iteration..i {
            let (mk, next) = kdf_ck(ck);
            recorded.push((j, mk));
            ck = next;
        }
        let (mk, next) = kdf_ck(ck);
        let pt = open(mk)?;
        g.ck = next;
        g.iteration = i + 1;
        g.skipped.extend(recorded);
        let excess = g.skipped.len().saturating_sub(GROUP_MAX_SKIPPED_KEYS);
        g.skipped.drain(..excess);
        Some(pt)
    }

    /// 14.5's inbound state.
    fn state(&self) -> Vec<u8> {
        let mut e = Enc::tag(1, 0x88)
            .put(self.group)
            .put(self.identity)
            .u8(self.context.len() as u8)
            .put(&self.context)
            .u32(self.generations.len() as u32);
        for g in &self.generations {
            e = e
                .u32(g.key_id)
                .put(g.signing)
                .put(g.ck)
                .u32(g.first)
                .u32(g.iteration)
                .u32(g.skipped.len() as u32);
            for (i, mk) in &g.skipped {
                e = e.u32(*i).put(mk);
            }
        }
        e.done()
    }
}

/// 15.1: a signed device list from its fields and the account's policy (max_companions,
/// companion_validity_ms). Entries: (id, identity seed, linked_at, expires_at); each binding
/// is signed with the entry's identity seed.
fn spec_device_list(
    account_seed: &[u8; 32],
    version: u64,
    issued_at: u64,
    policy: (u32, u64),
    entries: &[(u32, [u8; 32], u64, Option<u64>)],
) -> Vec<u8> {
    let ak = ed_pub(account_seed);
    let mut body = Enc::tag(3, 0x06)
        .put(ak)
        .u64(version)
        .u64(issued_at)
        .u32(policy.0)
        .u64(policy.1)
        .u32(entries.len() as u32);
    for (id, seed, linked_at, expires_at) in entries {
        body = body
            .u32(*id)
            .put(ed_pub(seed))
            .u64(*linked_at)
            .opt(*expires_at, |e, t| e.u64(t))
            .put(sign(seed, &[L_DEVICE_BINDING, &ak]));
    }
    let body = body.done();
    let signature = sign(account_seed, &[L_DEVICE_LIST, &body]);
    [body, signature.to_vec()].concat()
}

/// 17: one account's safety-number fingerprint.
fn safety_fingerprint(ak: &[u8]) -> [u8; 32] {
    let mut d = sha512(&[L_SAFETY_NUMBER, ak]);
    for _ in 1..5200 {
        d = sha512(&[&d, ak]);
    }
    d[..32].try_into().unwrap()
}

/// 20: a history's chunks and offer from its secret, plaintext and app data.
fn spec_history(secret: [u8; 32], plaintext: &[u8], app_data: &[u8]) -> (Vec<Vec<u8>>, Vec<u8>) {
    let okm = hkdf::<35>(&[0; 32], &secret, L_HISTORY_SYNC);
    let (key, prefix): ([u8; 32], [u8; 3]) = split(&okm);
    let mut pieces: Vec<&[u8]> = plaintext.chunks(65_536).collect();
    if plaintext.len().is_multiple_of(65_536) {
        pieces.push(&[]);
    }
    let mut chunks = Vec::new();
    let mut digest = L_HISTORY_DIGEST.to_vec();
    for (i, piece) in pieces.iter().enumerate() {
        let nonce: [u8; 12] = Enc::default()
            .put(prefix)
            .u64(i as u64)
            .flag(i + 1 == pieces.len())
            .done()
            .try_into()
            .unwrap();
        let chunk = Enc::tag(2, 0x0d)
            .put(seal(&key, &nonce, &[2, 0x0d], piece))
            .done();
        digest.extend(&chunk[chunk.len() - 16..]);
        chunks.push(chunk);
    }
    digest.extend((plaintext.len() as u64).to_be_bytes());
    let offer = Enc::tag(2, 0x0e)
        .put(secret)
        .u32(65_536)
        .u64(plaintext.len() as u64)
        .u64(chunks.len() as u64)
        .put(sha256(&[&digest]))
        .u32(app_data.len() as u32)
        .put(app_data)
        .done();
    (chunks, offer)
}

/// 21: the call key message.
fn spec_call_key(
    call_id: &[u8; 16],
    kind: u8,
    epoch: u32,
    secret: &[u8; 32],
    manager: &[u8],
    participants: &[Vec<u8>],
) -> Vec<u8> {
    let mut e = Enc::tag(2, 0x0f)
        .put(call_id)
        .u8(kind)
        .u32(epoch)
        .put(secret)
        .put(manager)
        .u32(participants.len() as u32);
    for p in participants {
        e = e.put(p);
    }
    e.done()
}

/// 21: a participant's SRTP master key and salt.
fn spec_srtp(
    call_id: &[u8; 16],
    epoch: u32,
    secret: &[u8; 32],
    address: &[u8],
) -> ([u8; 32], [u8; 12]) {
    let salt = [&call_id[..], &epoch.to_be_bytes()].concat();
    split(&hkdf::<44>(&salt, secret, &[L_CALL_SRTP, address].concat()))
}

/// 18.4: read-ring slots written by `operations`: one per receive, two per resend received.
fn read_slots(operations: &[String]) -> u32 {
    operations
        .iter()
        .map(|o| match o.as_str() {
            "receive" => 1,
            "receive resend" => 2,
            _ => 0,
        })
        .sum()
}

/// 18.4: an envelope's message id: a pairwise or group envelope is named by its kind, sender
/// and the salt of its message header (the vectors hold only envelopes that decode); anything
/// else by its bytes.
fn envelope_id(envelope: &[u8]) -> [u8; 16] {
    let salt = match envelope[2] {
        1 => {
            let message = &envelope[99..];
            let ratchet = if message[1] == 3 {
                let opk = if message[70] == 1 { 5 } else { 1 };
                &message[70 + opk + 4 + 1568..]
            } else {
                message
            };
            Some(&ratchet[42..58])
        }
        2 => Some(&envelope[47 + 42..47 + 58]),
        _ => None,
    };
    let full = match salt {
        Some(salt) => sha256(&[L_MESSAGE_ID, &envelope[2..3], &envelope[3..39], salt]),
        None => sha256(&[L_MESSAGE_ID, &[0], envelope]),
    };
    full[..16].try_into().unwrap()
}

/// 1: an address, `AK ‖ u32(device id)`.
fn address(account: &[u8; 32], device: u32) -> Vec<u8> {
    Enc::default().put(account).u32(device).done()
}

// =============================================================================================
// pqxdh.json: PQXDH (sections 5-7, 9.2) through the first pre-key message

/// The time every prekey in these vectors is created at.
const T0: Timestamp = Timestamp(1_790_000_000_000);

#[derive(Serialize, Deserialize)]
struct PqxdhFile {
    description: String,
    generator: String,
    vectors: Vec<PqxdhVector>,
}

#[derive(Serialize, Deserialize)]
struct PqxdhVector {
    name: String,
    rng_seed: String,
    /// "one-time" or "last-resort": which of Bob's ML-KEM prekeys the bundle carries.
    kem_prekey_kind: String,
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
    bob_last_resort_kem_seed: String,
    bob_one_time_prekey_id: Option<u32>,
    bob_one_time_prekey_secret: String,
    bob_one_time_prekey_public: String,
    bob_one_time_kem_seed: String,
    bob_kem_prekey_id: u32,
    bob_kem_prekey_public: String,
    bob_kem_prekey_signature: String,
    bundle: String,
    alice_ephemeral_secret: String,
    alice_ephemeral_public: String,
    dh1: String,
    dh2: String,
    dh3: String,
    dh4: Option<String>,
    kem_message: String,
    kem_ciphertext: String,
    kem_shared_secret: String,
    shared_secret: String,
    associated_data: String,
    alice_ratchet_secret: String,
    alice_ratchet_public: String,
    dh_ratchet: String,
    root_key: String,
    sending_chain_key: String,
    header_salt: String,
    message_key: String,
    aes_key: String,
    nonce: String,
    plaintext: String,
    prekey_message: String,
    alice_state: String,
    bob_state: String,
    /// 10.1: Alice's identity state; 10.2: Bob's prekey store state after accepting (what the
    /// session consumed is gone or counted, and Alice's base key is remembered).
    alice_identity_state: String,
    bob_prekey_store_state: String,
}

/// Bob's store holds a signed prekey (id 1), a last-resort ML-KEM prekey (id 1), one one-time
/// prekey (id 1) and one one-time ML-KEM prekey (id 2); the bundle carries the one-time prekey
/// if `with_one_time`, and the one-time ML-KEM prekey if `one_time_kem` (else the last-resort).
fn pqxdh_vector(name: &str, with_one_time: bool, one_time_kem: bool) -> PqxdhVector {
    let (seed, mut rng) = seeded(name);
    let rng = &mut rng;
    let mut probe = rng.clone();
    let alice = IdentityKeyPair::generate(rng);
    let bob = IdentityKeyPair::generate(rng);
    let (alice_seed, bob_seed) = (draw::<32>(&mut probe), draw::<32>(&mut probe));
    let mut store = PreKeyStore::new(rng, &bob, T0, PreKeyStoreConfig::default());
    // A store from before the post-quantum ratchet: the session runs PQXDH and the Double
    // Ratchet alone (pq-ratchet.json covers the ratchet).
    hooks::store_before_pq_ratchet(&mut store, &bob);
    let (spk_secret, last_resort_seed) = (draw::<32>(&mut probe), draw::<64>(&mut probe));
    let otks = store.generate_one_time_prekeys(rng, 1);
    let opk_secret = draw::<32>(&mut probe);
    let kems = store.generate_one_time_kem_prekeys(rng, &bob, T0, 1);
    let one_time_kem_seed = draw::<64>(&mut probe);
    same_stream(rng, &probe);
    let bundle = store.bundle(
        &bob,
        with_one_time.then_some(otks[0].id),
        one_time_kem.then_some(kems[0].id),
    );
    let kem = if one_time_kem {
        kems[0].clone()
    } else {
        store.last_resort_kem_prekey()
    };
    let spk = store.signed_prekey();

    let verified = bundle.clone().verify().unwrap();
    let (shared_secret, kem_ciphertext) =
        vectors::pqxdh_initiate(&mut rng.clone(), &alice, &verified).unwrap();
    let mut session = Session::initiate(rng, &alice, &verified, SessionConfig::default()).unwrap();
    let (ek, m, r) = (draw(&mut probe), draw(&mut probe), draw(&mut probe));
    let keys = hooks::session_keys(&session);
    let plaintext = b"PQXDH first message";
    let prekey_message = session.encrypt(rng, plaintext).unwrap();
    let salt = draw::<16>(&mut probe);
    same_stream(rng, &probe);
    let (message_key, _) = hooks::kdf::chain(keys.sending.unwrap().0);
    let (aes_key, nonce) = hooks::kdf::message_keys(message_key, salt);

    // Bob accepts it.
    let IncomingMessage::PreKey(pk) = IncomingMessage::decode(&prekey_message).unwrap() else {
        panic!("not a pre-key message")
    };
    let (bob_session, opened) =
        Session::accept(&bob, &mut store, &pk, SessionConfig::default()).unwrap();
    assert_eq!(opened, plaintext);

    let (a_id, b_id) = (alice.public(), bob.public());
    let spk_pub = spk.key.to_bytes();
    let dh = |s: [u8; 32], p: [u8; 32]| h(x25519(s, p));
    PqxdhVector {
        name: name.into(),
        rng_seed: h(seed),
        kem_prekey_kind: if one_time_kem {
            "one-time"
        } else {
            "last-resort"
        }
        .into(),
        alice_identity_seed: h(alice_seed),
        alice_identity_public: h(a_id.to_bytes()),
        alice_identity_x25519_public: h(a_id.dh_public().to_bytes()),
        bob_identity_seed: h(bob_seed),
        bob_identity_public: h(b_id.to_bytes()),
        bob_identity_x25519_public: h(b_id.dh_public().to_bytes()),
        bob_signed_prekey_id: spk.id.0,
        bob_signed_prekey_secret: h(spk_secret),
        bob_signed_prekey_public: h(spk_pub),
        bob_signed_prekey_signature: h(spk.signature.to_bytes()),
        bob_last_resort_kem_seed: h(last_resort_seed),
        bob_one_time_prekey_id: with_one_time.then_some(otks[0].id.0),
        bob_one_time_prekey_secret: h(opk_secret),
        bob_one_time_prekey_public: h(otks[0].key.to_bytes()),
        bob_one_time_kem_seed: h(one_time_kem_seed),
        bob_kem_prekey_id: kem.id.0,
        bob_kem_prekey_public: h(kem.key.as_bytes()),
        bob_kem_prekey_signature: h(kem.signature.to_bytes()),
        bundle: h(bundle.to_bytes()),
        alice_ephemeral_secret: h(ek),
        alice_ephemeral_public: h(x25519_pub(ek)),
        dh1: dh(ikx_secret(&alice_seed), spk_pub),
        dh2: dh(ek, b_id.dh_public().to_bytes()),
        dh3: dh(ek, spk_pub),
        dh4: with_one_time.then(|| dh(ek, otks[0].key.to_bytes())),
        kem_message: h(m),
        kem_ciphertext: h(&kem_ciphertext),
        kem_shared_secret: h(raw::mlkem1024_encapsulate(kem.key.as_bytes(), &m)
            .unwrap()
            .1),
        shared_secret: h(shared_secret),
        associated_data: h([a_id.to_bytes(), b_id.to_bytes()].concat()),
        alice_ratchet_secret: h(r),
        alice_ratchet_public: h(keys.ratchet_public),
        dh_ratchet: dh(r, spk_pub),
        root_key: h(keys.root_key),
        sending_chain_key: h(keys.sending.unwrap().0),
        header_salt: h(salt),
        message_key: h(message_key),
        aes_key: h(aes_key),
        nonce: h(nonce),
        plaintext: h(plaintext),
        prekey_message: h(&prekey_message),
        alice_state: h(&*session.to_bytes()),
        bob_state: h(&*bob_session.to_bytes()),
        alice_identity_state: h(&*alice.to_bytes()),
        bob_prekey_store_state: h(&*store.to_bytes()),
    }
}

fn pqxdh_file() -> PqxdhFile {
    PqxdhFile {
        description: "PQXDH between Alice (initiator) and Bob (responder) through Alice's first \
                      pre-key message and Bob's acceptance: with a one-time prekey and a \
                      one-time ML-KEM prekey, without a one-time prekey, and with the \
                      last-resort ML-KEM prekey. Schema: test-vectors/README.md."
            .into(),
        generator: GENERATOR.into(),
        vectors: vec![
            pqxdh_vector("ratchetry pqxdh vector: one-time prekeys", true, true),
            pqxdh_vector("ratchetry pqxdh vector: no one-time prekey", false, true),
            pqxdh_vector(
                "ratchetry pqxdh vector: last-resort kem prekey",
                false,
                false,
            ),
        ],
    }
}

#[test]
fn pqxdh_vectors() {
    let file = generated_and_committed("pqxdh.json", &pqxdh_file());
    assert_eq!(file.vectors.len(), 3);
    for v in &file.vectors {
        let alice_seed: [u8; 32] = unh(&v.alice_identity_seed);
        let bob_seed: [u8; 32] = unh(&v.bob_identity_seed);
        // 5.1: identity keys and their X25519 forms, by the secret and by the birational map.
        for (seed, public, x) in [
            (
                &alice_seed,
                &v.alice_identity_public,
                &v.alice_identity_x25519_public,
            ),
            (
                &bob_seed,
                &v.bob_identity_public,
                &v.bob_identity_x25519_public,
            ),
        ] {
            assert_eq!(&h(ed_pub(seed)), public);
            assert_eq!(&h(x25519_pub(ikx_secret(seed))), x);
            assert_eq!(&h(ikx_of(&unh(public))), x);
        }
        // 5.2, 5.3, 6: Bob's prekeys and bundle.
        let spk_id = v.bob_signed_prekey_id;
        let spk_secret: [u8; 32] = unh(&v.bob_signed_prekey_secret);
        let mut bob = SpecPrekeys {
            identity_seed: bob_seed,
            ..Default::default()
        };
        bob.signed.insert(spk_id, spk_secret);
        bob.one_time.insert(1, unh(&v.bob_one_time_prekey_secret));
        bob.kem.insert(1, unh(&v.bob_last_resort_kem_seed));
        bob.kem.insert(2, unh(&v.bob_one_time_kem_seed));
        assert_eq!(h(x25519_pub(spk_secret)), v.bob_signed_prekey_public);
        assert_eq!(h(bob.spk_signature(spk_id)), v.bob_signed_prekey_signature);
        assert_eq!(
            h(x25519_pub(bob.one_time[&1])),
            v.bob_one_time_prekey_public
        );
        let kem_id = v.bob_kem_prekey_id;
        assert_eq!(
            kem_id,
            if v.kem_prekey_kind == "one-time" {
                2
            } else {
                1
            }
        );
        assert_eq!(h(kem_public(&bob.kem[&kem_id])), v.bob_kem_prekey_public);
        assert_eq!(h(bob.kem_signature(kem_id)), v.bob_kem_prekey_signature);
        assert_eq!(
            h(bob.bundle(spk_id, v.bob_one_time_prekey_id, kem_id)),
            v.bundle
        );
        // 7.1 and 7.2: the DH values from both sides.
        let ek: [u8; 32] = unh(&v.alice_ephemeral_secret);
        let ek_pub = x25519_pub(ek);
        assert_eq!(h(ek_pub), v.alice_ephemeral_public);
        let (ik_a, ik_b) = (unh(&v.alice_identity_public), unh(&v.bob_identity_public));
        let spk = x25519_pub(spk_secret);
        let alice_side = [
            x25519(ikx_secret(&alice_seed), spk),
            x25519(ek, ikx_of(&ik_b)),
            x25519(ek, spk),
        ];
        let bob_side = [
            x25519(spk_secret, ikx_of(&ik_a)),
            x25519(ikx_secret(&bob_seed), ek_pub),
            x25519(spk_secret, ek_pub),
        ];
        assert_eq!(alice_side, bob_side);
        assert_eq!([&v.dh1, &v.dh2, &v.dh3], alice_side.map(h).each_ref());
        let mut dhs = alice_side.to_vec();
        match v.bob_one_time_prekey_id {
            Some(id) => {
                let dh4 = x25519(ek, x25519_pub(bob.one_time[&id]));
                assert_eq!(dh4, x25519(bob.one_time[&id], ek_pub));
                assert_eq!(v.dh4, Some(h(dh4)));
                dhs.push(dh4);
            }
            None => assert_eq!(v.dh4, None),
        }
        // 7.1 step 4, 7.2 step 5: the encapsulation and decapsulation.
        let m: [u8; 32] = unh(&v.kem_message);
        let (ct, ss) = raw::mlkem1024_encapsulate(&kem_public(&bob.kem[&kem_id]), &m).unwrap();
        assert_eq!(
            (h(&ct), h(ss)),
            (v.kem_ciphertext.clone(), v.kem_shared_secret.clone())
        );
        assert_eq!(
            raw::mlkem1024_decapsulate(&bob.kem[&kem_id], &ct).unwrap(),
            ss
        );
        // 7.3.
        let sk = pqxdh_sk(&dhs, &ss);
        assert_eq!(h(sk), v.shared_secret);
        assert_eq!(h([ik_a, ik_b].concat()), v.associated_data);
        // 8.3: the first ratchet step, 8.2 and 8.5: the first message key.
        let r: [u8; 32] = unh(&v.alice_ratchet_secret);
        assert_eq!(h(x25519_pub(r)), v.alice_ratchet_public);
        assert_eq!(x25519(r, spk), x25519(spk_secret, x25519_pub(r)));
        assert_eq!(h(x25519(r, spk)), v.dh_ratchet);
        let (rk, ck) = kdf_rk(sk, x25519(r, spk));
        assert_eq!(
            (h(rk), h(ck)),
            (v.root_key.clone(), v.sending_chain_key.clone())
        );
        let (mk, _) = kdf_ck(ck);
        let salt: [u8; 16] = unh(&v.header_salt);
        let (key, nonce) = message_keys(L_MESSAGE_KEYS, mk, salt);
        assert_eq!(
            (h(mk), h(key), h(nonce)),
            (v.message_key.clone(), v.aes_key.clone(), v.nonce.clone())
        );
        // 9.2: the pre-key message, and both sessions' state (10.3).
        let plaintext = unhex(&v.plaintext);
        let mut alice = Spec::initiate(&alice_seed, &unhex(&v.bundle), ek, m, r);
        let wire = alice.send(None, salt, &plaintext, &[]);
        assert_eq!(h(&wire), v.prekey_message);
        let header = Enc::tag(2, 2)
            .put(x25519_pub(r))
            .u32(0)
            .u32(0)
            .put(salt)
            .u16(0)
            .done();
        let aad = [unhex(&v.associated_data), header.clone()].concat();
        assert!(wire.ends_with(&[header, seal(&key, &nonce, &aad, &plaintext)].concat()));
        assert_eq!(h(alice.state()), v.alice_state);
        let (bob_session, opened) = Spec::respond(&bob, &wire, &[]);
        assert_eq!(opened, plaintext);
        assert_eq!(h(bob_session.state()), v.bob_state);
        // 10.1 and 10.2 (7.2's consumption: the one-time prekeys used are gone, a last-resort
        // ML-KEM prekey counts one use, the base key is remembered under its signed prekey).
        assert_eq!(
            h(Enc::tag(1, 0x83).put(alice_seed).done()),
            v.alice_identity_state
        );
        let created_at = T0.0;
        let signed = SignedPreKeyInputs {
            id: 1,
            secret: v.bob_signed_prekey_secret.clone(),
            created_at,
        };
        let kem = |id: u32, uses: u32| KemPreKeyInputs {
            id,
            seed: h(bob.kem[&id]),
            created_at,
            uses,
        };
        let last_resort_uses = u32::from(kem_id == 1);
        let mut store = Enc::tag(2, 0x82);
        for c in [3, 1000, 100_000, 100, 10_000] {
            store = store.u32(c);
        }
        store = store
            .u32(2)
            .u32(2)
            .put(spec_signed_prekey(&bob_seed, &signed))
            .u32(0)
            .u32(3)
            .put(spec_kem_prekey(&bob_seed, &kem(1, last_resort_uses)))
            .u32(0);
        store = match v.bob_one_time_prekey_id {
            Some(_) => store.u32(0),
            None => store
                .u32(1)
                .u32(1)
                .put(bob.one_time[&1])
                .put(x25519_pub(bob.one_time[&1])),
        };
        store = match kem_id {
            2 => store.u32(0),
            _ => store.u32(1).put(spec_kem_prekey(&bob_seed, &kem(2, 0))),
        };
        store = store.u32(1).put(ek_pub);
        assert_eq!(h(store.done()), v.bob_prekey_store_state);
    }
}

// =============================================================================================
// kdf-chains.json: KDF_RK, KDF_CK and the salted message-key expansions (8.2, 14.3)

#[derive(Serialize, Deserialize)]
struct KdfFile {
    description: String,
    generator: String,
    rng_seed: String,
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
    next_chain_key: String,
    /// The header salt (16 random bytes) the message keys are expanded with.
    salt: String,
    aes_key: String,
    nonce: String,
    group_aes_key: String,
    group_nonce: String,
}

fn kdf_file() -> KdfFile {
    let (seed, mut rng) = seeded("ratchetry kdf vectors");
    let rng = &mut rng;
    let root = (0..3)
        .map(|_| {
            let (rk, dh) = (draw(rng), draw(rng));
            let (new_rk, ck) = hooks::kdf::root(rk, dh);
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
            let initial = draw(rng);
            let mut ck = initial;
            let steps = (0..5)
                .map(|index| {
                    let salt = draw(rng);
                    let (mk, next) = hooks::kdf::chain(ck);
                    let (key, nonce) = hooks::kdf::message_keys(mk, salt);
                    let (group_key, group_nonce) = vectors::group_message_keys(mk, salt);
                    let step = ChainStep {
                        index,
                        chain_key: h(ck),
                        message_key: h(mk),
                        next_chain_key: h(next),
                        salt: h(salt),
                        aes_key: h(key),
                        nonce: h(nonce),
                        group_aes_key: h(group_key),
                        group_nonce: h(group_nonce),
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
        description: "KDF_RK, KDF_CK and the message-key expansions (pairwise and group, each \
                      salted by the header's 16 random bytes) of PROTOCOL.md 8.2 and 14.3, on \
                      random inputs. Schema: test-vectors/README.md."
            .into(),
        generator: GENERATOR.into(),
        rng_seed: h(seed),
        root,
        chains,
    }
}

#[test]
fn kdf_chain_vectors() {
    let file = generated_and_committed("kdf-chains.json", &kdf_file());
    assert_eq!((file.root.len(), file.chains.len()), (3, 2));
    for v in &file.root {
        let (rk, ck) = kdf_rk(unh(&v.root_key), unh(&v.dh_output));
        assert_eq!(
            (h(rk), h(ck)),
            (v.new_root_key.clone(), v.chain_key.clone())
        );
    }
    for c in &file.chains {
        let mut ck: [u8; 32] = unh(&c.initial_chain_key);
        assert_eq!(c.steps.len(), 5);
        for (i, s) in c.steps.iter().enumerate() {
            assert_eq!((s.index as usize, h(ck)), (i, s.chain_key.clone()));
            let (mk, next) = kdf_ck(ck);
            let salt = unh(&s.salt);
            let (key, nonce) = message_keys(L_MESSAGE_KEYS, mk, salt);
            let (group_key, group_nonce) = message_keys(L_GROUP_MESSAGE_KEYS, mk, salt);
            assert_eq!(h(mk), s.message_key);
            assert_eq!(h(next), s.next_chain_key);
            assert_eq!((h(key), h(nonce)), (s.aes_key.clone(), s.nonce.clone()));
            assert_eq!(
                (h(group_key), h(group_nonce)),
                (s.group_aes_key.clone(), s.group_nonce.clone())
            );
            ck = next;
        }
    }
}

// =============================================================================================
// ratchet-transcript.json: a whole conversation, both parties' state after every event (8, 10.3)

#[derive(Serialize, Deserialize)]
struct TranscriptFile {
    description: String,
    generator: String,
    rng_seed: String,
    alice_identity_seed: String,
    bob_identity_seed: String,
    bob_signed_prekey_secret: String,
    bob_last_resort_kem_seed: String,
    bob_one_time_prekey_secret: String,
    bob_one_time_kem_seed: String,
    bundle: String,
    alice_ephemeral_secret: String,
    kem_message: String,
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
    /// Sends only (absent on receives), in the order drawn: the ratchet secret of a new
    /// sending chain (absent if the send continues a chain), then the header salt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    new_ratchet_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    salt: Option<String>,
    /// Sends only: the sending chain key the message key comes from, and what it gives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chain_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aes_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wire: Option<String>,
    /// The actor's keys after the event (null when absent).
    root_key: String,
    sending_chain_key: Option<String>,
    sending_next: Option<u32>,
    receiving_ratchet_key: Option<String>,
    receiving_chain_key: Option<String>,
    receiving_next: Option<u32>,
    skipped_keys: usize,
    /// Both parties' session state after the event (10.3); Bob's is null until he accepts.
    alice_state: String,
    bob_state: Option<String>,
}

/// Sends and deliveries, in order: b1 after b2 in one chain; a3 after a new chain that skipped
/// it (8.6 step 4's tail).
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
    ("send", "b3"),
    ("recv", "b3"),
    ("send", "a4"),
    ("recv", "a4"),
    ("recv", "a3"),
    ("send", "b4"),
    ("recv", "b4"),
];

fn transcript_file() -> TranscriptFile {
    let (seed, mut rng) = seeded("ratchetry ratchet transcript");
    let rng = &mut rng;
    let mut probe = rng.clone();
    let alice = IdentityKeyPair::generate(rng);
    let bob = IdentityKeyPair::generate(rng);
    let (alice_seed, bob_seed) = (draw::<32>(&mut probe), draw::<32>(&mut probe));
    let mut store = PreKeyStore::new(rng, &bob, T0, PreKeyStoreConfig::default());
    // A store from before the post-quantum ratchet, as in pqxdh.json.
    hooks::store_before_pq_ratchet(&mut store, &bob);
    let (spk_secret, last_resort) = (draw::<32>(&mut probe), draw::<64>(&mut probe));
    let otks = store.generate_one_time_prekeys(rng, 1);
    let kems = store.generate_one_time_kem_prekeys(rng, &bob, T0, 1);
    let (otk_secret, kem_seed) = (draw::<32>(&mut probe), draw::<64>(&mut probe));
    let bundle = store.bundle(&bob, Some(otks[0].id), Some(kems[0].id));
    let (ek, m, r) = (
        draw::<32>(&mut probe),
        draw::<32>(&mut probe),
        draw::<32>(&mut probe),
    );
    let mut a = Session::initiate(
        rng,
        &alice,
        &bundle.clone().verify().unwrap(),
        SessionConfig::default(),
    )
    .unwrap();
    same_stream(rng, &probe);
    let mut b: Option<Session> = None;
    let mut wires = BTreeMap::new();
    let mut events = Vec::new();
    for &(kind, label) in SCRIPT {
        let from_alice = label.starts_with('a');
        let plaintext = format!("message {label}").into_bytes();
        let by_alice = from_alice == (kind == "send");
        let mut event = Event {
            event: if kind == "send" { "send" } else { "receive" }.into(),
            by: if by_alice { "alice" } else { "bob" }.into(),
            message: label.into(),
            plaintext: h(&plaintext),
            new_ratchet_secret: None,
            salt: None,
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
            alice_state: String::new(),
            bob_state: None,
        };
        if kind == "send" {
            let s = if from_alice {
                &mut a
            } else {
                b.as_mut().unwrap()
            };
            let before = hooks::session_keys(s);
            let mut probe = rng.clone();
            let wire = s.encrypt(rng, &plaintext).unwrap();
            let after = hooks::session_keys(s);
            // 8.5 step 1: a new chain draws its ratchet secret before the salt.
            let new_chain = before.sending.is_none();
            let new_secret = new_chain.then(|| draw::<32>(&mut probe));
            let salt = draw::<16>(&mut probe);
            same_stream(rng, &probe);
            let ck = if new_chain {
                let remote = before.receiving.unwrap().0;
                hooks::kdf::root(before.root_key, x25519(new_secret.unwrap(), remote)).1
            } else {
                before.sending.unwrap().0
            };
            assert_eq!(after.sending.unwrap().0, hooks::kdf::chain(ck).1);
            let (mk, _) = hooks::kdf::chain(ck);
            let (key, nonce) = hooks::kdf::message_keys(mk, salt);
            let header_at = wire.len() - plaintext.len() - 16 - 60;
            event.new_ratchet_secret = new_secret.map(h);
            event.salt = Some(h(salt));
            event.chain_key = Some(h(ck));
            event.message_key = Some(h(mk));
            event.aes_key = Some(h(key));
            event.nonce = Some(h(nonce));
            event.header = Some(h(&wire[header_at..header_at + 60]));
            event.wire = Some(h(&wire));
            wires.insert(label, wire);
        } else {
            let msg = IncomingMessage::decode(&wires[label]).unwrap();
            let opened = match (&mut b, from_alice) {
                (None, true) => {
                    let IncomingMessage::PreKey(pk) = msg else {
                        panic!("a pre-key message")
                    };
                    let (s, pt) =
                        Session::accept(&bob, &mut store, &pk, SessionConfig::default()).unwrap();
                    b = Some(s);
                    pt
                }
                (Some(b), true) => b.decrypt(&msg).unwrap(),
                (_, false) => a.decrypt(&msg).unwrap(),
            };
            assert_eq!(opened, plaintext);
        }
        let actor = if by_alice { &a } else { b.as_ref().unwrap() };
        let k = hooks::session_keys(actor);
        event.root_key = h(k.root_key);
        event.sending_chain_key = k.sending.map(|s| h(s.0));
        event.sending_next = k.sending.map(|s| s.1);
        event.receiving_ratchet_key = k.receiving.map(|r| h(r.0));
        event.receiving_chain_key = k.receiving.map(|r| h(r.1));
        event.receiving_next = k.receiving.map(|r| r.2);
        event.skipped_keys = actor.skipped_keys();
        event.alice_state = h(&*a.to_bytes());
        event.bob_state = b.as_ref().map(|b| h(&*b.to_bytes()));
        events.push(event);
    }
    TranscriptFile {
        description: "A Double Ratchet conversation after PQXDH: Alice sends a0, a1 (pre-key \
                      messages) before Bob replies; Bob's b1 is delivered after b2; Alice's a3 \
                      after her next chain began (a skipped key from the previous chain); four \
                      direction changes. Every draw, key, header and wire message, and both \
                      parties' session state after each event. Schema: test-vectors/README.md."
            .into(),
        generator: GENERATOR.into(),
        rng_seed: h(seed),
        alice_identity_seed: h(alice_seed),
        bob_identity_seed: h(bob_seed),
        bob_signed_prekey_secret: h(spk_secret),
        bob_last_resort_kem_seed: h(last_resort),
        bob_one_time_prekey_secret: h(otk_secret),
        bob_one_time_kem_seed: h(kem_seed),
        bundle: h(bundle.to_bytes()),
        alice_ephemeral_secret: h(ek),
        kem_message: h(m),
        alice_ratchet_secret: h(r),
        associated_data: h([alice.public().to_bytes(), bob.public().to_bytes()].concat()),
        events,
    }
}

#[test]
fn ratchet_transcript_vectors() {
    let file = generated_and_committed("ratchet-transcript.json", &transcript_file());
    assert_eq!(file.events.len(), SCRIPT.len());
    let alice_seed: [u8; 32] = unh(&file.alice_identity_seed);
    let mut bob_keys = SpecPrekeys {
        identity_seed: unh(&file.bob_identity_seed),
        ..Default::default()
    };
    bob_keys
        .signed
        .insert(1, unh(&file.bob_signed_prekey_secret));
    bob_keys
        .one_time
        .insert(1, unh(&file.bob_one_time_prekey_secret));
    bob_keys.kem.insert(1, unh(&file.bob_last_resort_kem_seed));
    bob_keys.kem.insert(2, unh(&file.bob_one_time_kem_seed));
    assert_eq!(h(bob_keys.bundle(1, Some(1), 2)), file.bundle);
    let mut alice = Spec::initiate(
        &alice_seed,
        &unhex(&file.bundle),
        unh(&file.alice_ephemeral_secret),
        unh(&file.kem_message),
        unh(&file.alice_ratchet_secret),
    );
    assert_eq!(h(alice.ad()), file.associated_data);
    let mut bob: Option<Spec> = None;
    let mut wires = BTreeMap::new();
    for (e, &(kind, label)) in file.events.iter().zip(SCRIPT) {
        let event = if kind == "send" { "send" } else { "receive" };
        assert_eq!((e.message.as_str(), e.event.as_str()), (label, event));
        let plaintext = unhex(&e.plaintext);
        let by_alice = e.by == "alice";
        if kind == "send" {
            let s = if by_alice {
                &mut alice
            } else {
                bob.as_mut().unwrap()
            };
            // 8.5, step by step.
            let ck = match (&e.new_ratchet_secret, s.send) {
                (Some(r), None) => kdf_rk(s.rk, x25519(unh(r), s.dhr)).1,
                (None, Some((ck, _))) => ck,
                _ => panic!("{label}: a new ratchet secret exactly when a chain starts"),
            };
            let salt = unh(e.salt.as_ref().unwrap());
            let (mk, next) = kdf_ck(ck);
            let (key, nonce) = message_keys(L_MESSAGE_KEYS, mk, salt);
            assert_eq!(e.chain_key, Some(h(ck)));
            assert_eq!(e.message_key, Some(h(mk)));
            assert_eq!(
                (e.aes_key.clone(), e.nonce.clone()),
                (Some(h(key)), Some(h(nonce)))
            );
            let wire = s.send(
                e.new_ratchet_secret.as_deref().map(unh),
                salt,
                &plaintext,
                &[],
            );
            assert_eq!(e.sending_chain_key, Some(h(next)), "{label}");
            assert_eq!(e.wire, Some(h(&wire)), "{label}");
            let header = s.header(s.send.unwrap().1 - 1, salt);
            assert_eq!(e.header, Some(h(&header)));
            // Alice's messages are pre-key messages until she hears from Bob.
            assert_eq!(wire[1] == 3, ["a0", "a1"].contains(&label), "{label}");
            wires.insert(label, wire);
        } else {
            let wire = &wires[label];
            let opened = match (&mut bob, by_alice) {
                (None, false) => {
                    let (s, pt) = Spec::respond(&bob_keys, wire, &[]);
                    bob = Some(s);
                    pt
                }
                (Some(b), false) => b.receive_any(wire, &[]).unwrap(),
                (_, true) => alice.receive_any(wire, &[]).unwrap(),
            };
            assert_eq!(opened, plaintext, "{label}");
        }
        let actor = if by_alice {
            &alice
        } else {
            bob.as_ref().unwrap()
        };
        assert_eq!(e.root_key, h(actor.rk));
        assert_eq!(e.sending_chain_key, actor.send.map(|s| h(s.0)));
        assert_eq!(e.sending_next, actor.send.map(|s| s.1));
        assert_eq!(e.receiving_ratchet_key, actor.recv.map(|r| h(r.0)));
        assert_eq!(e.receiving_chain_key, actor.recv.map(|r| h(r.1)));
        assert_eq!(e.receiving_next, actor.recv.map(|r| r.2));
        assert_eq!(e.skipped_keys, actor.skipped.len(), "{label}");
        assert_eq!(e.alice_state, h(alice.state()), "{label}: Alice's state");
        assert_eq!(
            e.bob_state,
            bob.as_ref().map(|b| h(b.state())),
            "{label}: Bob's state"
        );
    }
    // The late deliveries used skipped keys: b1 from the same chain, a3 from an earlier one.
    let skipped = |label: &str, kind: &str| {
        file.events
            .iter()
            .find(|e| e.message == label && e.event == kind)
            .unwrap()
            .skipped_keys
    };
    assert_eq!((skipped("b2", "receive"), skipped("b1", "receive")), (1, 0));
    assert_eq!((skipped("a4", "receive"), skipped("a3", "receive")), (1, 0));
}

// =============================================================================================
// sender-keys.json: a sender key's owner and one receiver (14)

#[derive(Serialize, Deserialize)]
struct SenderKeysFile {
    description: String,
    generator: String,
    rng_seed: String,
    group_id: String,
    sender_identity_seed: String,
    sender_identity_public: String,
    /// The sender's context (14.1): here a device address, `AK ‖ u32(device id)`.
    sender_context: String,
    events: Vec<GroupEvent>,
}

/// One event; fields a kind does not have are absent.
#[derive(Default, Serialize, Deserialize)]
struct GroupEvent {
    /// "create", "rotate", "distribute", "send" or "receive".
    event: String,
    key_id: u32,
    /// create/rotate: the draws, in order (chain key, signing seed, the 4 key id bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chain_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signing_seed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_id_draw: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signing_public: Option<String>,
    /// distribute: its iteration and bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iteration: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    distribution: Option<String>,
    /// send/receive: the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    plaintext: Option<String>,
    /// send: the salt drawn, the chain key used and what it gives, the signature and bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    salt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aes_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wire: Option<String>,
    /// The owner's state after create/rotate/send, the receiver's after distribute/receive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    outbound_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    inbound_state: Option<String>,
}

/// Generation 1: m0, m1, m2, received m0, m2, m1. Rotation; m3 goes out before the new key is
/// distributed (at iteration 1), so the receiver never reads it; m4, m5, received m5, m4.
const GROUP_SCRIPT: &[(&str, &str)] = &[
    ("create", ""),
    ("distribute", ""),
    ("send", "m0"),
    ("send", "m1"),
    ("send", "m2"),
    ("recv", "m0"),
    ("recv", "m2"),
    ("recv", "m1"),
    ("rotate", ""),
    ("send", "m3"),
    ("distribute", ""),
    ("send", "m4"),
    ("send", "m5"),
    ("recv", "m5"),
    ("recv", "m4"),
];

fn sender_keys_file() -> SenderKeysFile {
    use ratchetry::devices::AccountKeyPair;
    use ratchetry::group::{
        GroupConfig, GroupId, GroupMessage, GroupSender, InboundSenderKey, OutboundGroupSession,
    };
    let (seed, mut rng) = seeded("ratchetry sender keys");
    let rng = &mut rng;
    let group = GroupId(draw(rng));
    let mut probe = rng.clone();
    let identity = IdentityKeyPair::generate(rng);
    let identity_seed = draw::<32>(&mut probe);
    let context = [
        &AccountKeyPair::generate(rng).public().to_bytes()[..],
        &2u32.to_be_bytes(),
    ]
    .concat();
    let sender = GroupSender::new(identity.public(), &context).unwrap();
    let config = GroupConfig::default();
    let mut out: Option<OutboundGroupSession> = None;
    let mut rx: Option<InboundSenderKey> = None;
    let mut wires = BTreeMap::new();
    let mut events = Vec::new();
    for &(kind, label) in GROUP_SCRIPT {
        let mut e = GroupEvent {
            event: if kind == "recv" { "receive" } else { kind }.into(),
            ..Default::default()
        };
        match kind {
            "create" | "rotate" => {
                let mut probe = rng.clone();
                let (chain, signing, id) = (
                    draw::<32>(&mut probe),
                    draw::<32>(&mut probe),
                    draw::<4>(&mut probe),
                );
                match &mut out {
                    None => out = Some(OutboundGroupSession::new(rng, group, sender.clone())),
                    Some(o) => drop(o.rotate(rng)),
                }
                same_stream(rng, &probe);
                let o = out.as_ref().unwrap();
                e.chain_key = Some(h(chain));
                e.signing_seed = Some(h(signing));
                e.key_id_draw = Some(h(id));
                e.signing_public = Some(h(ed_pub(&signing)));
                e.outbound_state = Some(h(&*o.to_bytes()));
            }
            "distribute" => {
                let d = out.as_ref().unwrap().distribution();
                match &mut rx {
                    None => rx = Some(InboundSenderKey::new(sender.clone(), &d)),
                    Some(rx) => rx.process_distribution(&config, &d).unwrap(),
                }
                e.iteration = Some(d.iteration());
                e.distribution = Some(h(&*d.to_bytes()));
                e.inbound_state = Some(h(&*rx.as_ref().unwrap().to_bytes()));
            }
            "send" => {
                let o = out.as_mut().unwrap();
                let plaintext = format!("group message {label}").into_bytes();
                let chain: [u8; 32] = o.distribution().to_bytes()[42..74].try_into().unwrap();
                let (mk, _) = hooks::kdf::chain(chain);
                e.iteration = Some(o.iteration());
                let salt = draw::<16>(&mut rng.clone());
                let wire = o.encrypt(rng, &plaintext).unwrap();
                let (key, nonce) = vectors::group_message_keys(mk, salt);
                e.message = Some(label.into());
                e.plaintext = Some(h(&plaintext));
                e.salt = Some(h(salt));
                e.chain_key = Some(h(chain));
                e.message_key = Some(h(mk));
                e.aes_key = Some(h(key));
                e.nonce = Some(h(nonce));
                e.signature = Some(h(&wire[wire.len() - 64..]));
                e.wire = Some(h(&wire));
                e.outbound_state = Some(h(&*o.to_bytes()));
                wires.insert(label, (wire, plaintext));
            }
            _ => {
                let (wire, plaintext) = &wires[label];
                let m = GroupMessage::decode(wire).unwrap();
                let rx = rx.as_mut().unwrap();
                assert_eq!(&*rx.decrypt(&config, &m).unwrap(), plaintext);
                e.message = Some(label.into());
                e.iteration = Some(m.iteration());
                e.plaintext = Some(h(plaintext));
                e.inbound_state = Some(h(&*rx.to_bytes()));
            }
        }
        e.key_id = match kind {
            "recv" => GroupMessage::decode(&wires[label].0).unwrap().key_id().0,
            _ => out.as_ref().unwrap().key_id().0,
        };
        events.push(e);
    }
    SenderKeysFile {
        description: "Sender keys: an owner with a sender context creates a key (random key \
                      id), distributes it, sends three messages with salted headers (one \
                      delivered out of order), rotates, sends a message before distributing the \
                      new key at iteration 1, and two more; the owner's state after each of its \
                      steps and the receiver's after each of its. Schema: \
                      test-vectors/README.md."
            .into(),
        generator: GENERATOR.into(),
        rng_seed: h(seed),
        group_id: h(group.0),
        sender_identity_seed: h(identity_seed),
        sender_identity_public: h(identity.public().to_bytes()),
        sender_context: h(&context),
        events,
    }
}

#[test]
fn sender_key_vectors() {
    let file = generated_and_committed("sender-keys.json", &sender_keys_file());
    assert_eq!(file.events.len(), GROUP_SCRIPT.len());
    let identity_seed: [u8; 32] = unh(&file.sender_identity_seed);
    assert_eq!(h(ed_pub(&identity_seed)), file.sender_identity_public);
    let mut owner = SpecOwner {
        group: unh(&file.group_id),
        identity: ed_pub(&identity_seed),
        context: unhex(&file.sender_context),
        key_id: 0,
        iteration: 0,
        ck: [0; 32],
        seed: [0; 32],
    };
    let mut receiver = SpecInbound {
        group: owner.group,
        identity: owner.identity,
        context: owner.context.clone(),
        generations: Vec::new(),
    };
    let mut wires = BTreeMap::new();
    for (e, &(kind, label)) in file.events.iter().zip(GROUP_SCRIPT) {
        let event = if kind == "recv" { "receive" } else { kind };
        assert_eq!(
            (e.event.as_str(), e.message.as_deref()),
            (event, (!label.is_empty()).then_some(label))
        );
        match kind {
            "create" | "rotate" => {
                let previous = (kind == "rotate").then_some(owner.key_id);
                let seed = unh(e.signing_seed.as_ref().unwrap());
                let id_draw = unh(e.key_id_draw.as_ref().unwrap());
                owner.generation(unh(e.chain_key.as_ref().unwrap()), seed, id_draw, previous);
                assert_eq!(e.signing_public, Some(h(ed_pub(&seed))));
                assert_ne!(Some(owner.key_id), previous);
            }
            "distribute" => {
                let d = owner.distribution();
                assert_eq!(e.distribution, Some(h(&d)));
                assert_eq!(e.iteration, Some(owner.iteration));
                receiver.process(&d);
            }
            "send" => {
                assert_eq!(e.chain_key, Some(h(owner.ck)));
                assert_eq!(e.iteration, Some(owner.iteration));
                let (mk, _) = kdf_ck(owner.ck);
                let salt = unh(e.salt.as_ref().unwrap());
                let (key, nonce) = message_keys(L_GROUP_MESSAGE_KEYS, mk, salt);
                assert_eq!(
                    (e.message_key.clone(), e.aes_key.clone(), e.nonce.clone()),
                    (Some(h(mk)), Some(h(key)), Some(h(nonce)))
                );
                let wire = owner.encrypt(salt, &unhex(e.plaintext.as_ref().unwrap()), &[]);
                assert_eq!(e.wire, Some(h(&wire)), "{label}");
                assert_eq!(e.signature, Some(h(&wire[wire.len() - 64..])));
                wires.insert(label, wire);
            }
            _ => {
                let pt = receiver.decrypt(&wires[label], &[]).expect("opens");
                assert_eq!(e.plaintext, Some(h(pt)), "{label}");
            }
        }
        assert_eq!(
            e.key_id,
            if kind == "recv" {
                u32::from_be_bytes(wires[label][34..38].try_into().unwrap())
            } else {
                owner.key_id
            }
        );
        match kind {
            "create" | "rotate" | "send" => assert_eq!(e.outbound_state, Some(h(owner.state()))),
            _ => assert_eq!(e.inbound_state, Some(h(receiver.state())), "{label}"),
        }
    }
    // m3 predates the distribution of its generation: the receiver cannot read it (14.4 step 4).
    assert_eq!(receiver.decrypt(&wires["m3"], &[]), None);
    assert_eq!(receiver.generations.len(), 2);
    assert_eq!(receiver.generations[1].first, 1);
}

// =============================================================================================
// history-sync.json: sealed history streams and their offers (20)

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
    /// The plaintext is not stored: byte i is (7·i + 3) mod 256, for i from 0.
    length: u64,
    /// S: the sealer's draw.
    secret: String,
    stream_key: String,
    nonce_prefix: String,
    /// Per chunk: its length, nonce, tag, SHA-256, and the whole bytes when under 1 KiB.
    chunks: Vec<HistoryChunk>,
    digest: String,
    /// The app data the offer carries (20).
    app_data: String,
    offer: String,
}

#[derive(Serialize, Deserialize)]
struct HistoryChunk {
    len: usize,
    nonce: String,
    tag: String,
    sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bytes: Option<String>,
}

/// The app data of the short history's offer.
const HISTORY_APP_DATA: &[u8] = b"groups: 7 (alice, bob, carol)";
/// Where an offer's digest starts: after the header, S, the chunk size, L and the count.
const OFFER_DIGEST_AT: usize = 2 + 32 + 4 + 8 + 8;

fn history_plaintext(len: u64) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(7).wrapping_add(3) % 256) as u8)
        .collect()
}

fn history_file() -> HistoryFile {
    use ratchetry::history::HistorySealer;
    let vectors = [
        ("ratchetry history: one short chunk", 100u64),
        ("ratchetry history: across a boundary", 65_536 + 20),
        ("ratchetry history: exactly one chunk", 65_536),
        ("ratchetry history: empty", 0),
    ]
    .into_iter()
    .map(|(name, length)| {
        let (seed, mut rng) = seeded(name);
        let secret = draw::<32>(&mut rng.clone());
        let mut sealer = HistorySealer::new(&mut rng);
        let mut chunks = sealer.push(&history_plaintext(length));
        let (last, offer) = sealer.finish();
        chunks.extend(last);
        // The short history's offer carries app data for the companion.
        let app_data: &[u8] = if length == 100 { HISTORY_APP_DATA } else { b"" };
        let offer = offer.with_app_data(app_data).unwrap();
        let offer_bytes = offer.to_bytes();
        let okm = hkdf::<35>(&[0; 32], &secret, L_HISTORY_SYNC);
        let count = chunks.len();
        HistoryVector {
            name: name.into(),
            rng_seed: h(seed),
            length,
            secret: h(secret),
            stream_key: h(&okm[..32]),
            nonce_prefix: h(&okm[32..]),
            chunks: chunks
                .iter()
                .enumerate()
                .map(|(i, c)| HistoryChunk {
                    len: c.len(),
                    nonce: h(Enc::default()
                        .put(&okm[32..])
                        .u64(i as u64)
                        .flag(i + 1 == count)
                        .done()),
                    tag: h(&c[c.len() - 16..]),
                    sha256: h(sha256(&[c])),
                    bytes: (c.len() < 1024).then(|| h(c)),
                })
                .collect(),
            digest: h(&offer_bytes[OFFER_DIGEST_AT..OFFER_DIGEST_AT + 32]),
            app_data: h(app_data),
            offer: h(&*offer_bytes),
        }
    })
    .collect();
    HistoryFile {
        description: "History sync streams (PROTOCOL.md 20): a short history (its offer with \
                      app data), one crossing a chunk boundary, one of exactly one full chunk \
                      (then an empty last one), and an empty one. Schema: \
                      test-vectors/README.md."
            .into(),
        generator: GENERATOR.into(),
        vectors,
    }
}

#[test]
fn history_sync_vectors() {
    let file = generated_and_committed("history-sync.json", &history_file());
    assert_eq!(file.vectors.len(), 4);
    for v in &file.vectors {
        let secret: [u8; 32] = unh(&v.secret);
        let okm = hkdf::<35>(&[0; 32], &secret, L_HISTORY_SYNC);
        assert_eq!(
            (h(&okm[..32]), h(&okm[32..])),
            (v.stream_key.clone(), v.nonce_prefix.clone())
        );
        let (chunks, offer) =
            spec_history(secret, &history_plaintext(v.length), &unhex(&v.app_data));
        assert_eq!(chunks.len() as u64, v.length / 65_536 + 1);
        assert_eq!(chunks.len(), v.chunks.len());
        for (i, (chunk, c)) in chunks.iter().zip(&v.chunks).enumerate() {
            let nonce = Enc::default()
                .put(&okm[32..])
                .u64(i as u64)
                .flag(i + 1 == chunks.len());
            assert_eq!(h(nonce.done()), c.nonce);
            assert_eq!(chunk.len(), c.len);
            assert_eq!(&chunk[..2], [2, 0x0d]);
            assert_eq!(h(sha256(&[chunk])), c.sha256);
            assert_eq!(h(&chunk[chunk.len() - 16..]), c.tag);
            assert_eq!(c.bytes, (chunk.len() < 1024).then(|| h(chunk)));
        }
        assert_eq!(h(&offer), v.offer);
        assert_eq!(h(&offer[OFFER_DIGEST_AT..OFFER_DIGEST_AT + 32]), v.digest);
    }
    assert!(file.vectors.iter().any(|v| !v.app_data.is_empty()));
}

// =============================================================================================
// call-keys.json: a group call's epochs under its manager, and SRTP keys (21)

#[derive(Serialize, Deserialize)]
struct CallFile {
    description: String,
    generator: String,
    rng_seed: String,
    /// The four devices' account key seeds (drawn first) and device ids.
    devices: Vec<CallDevice>,
    call_id: String,
    /// 1 one-to-one, 2 group, 3 room.
    kind: u8,
    /// The manager's address (36 bytes): the device that started the call.
    manager: String,
    /// The participant whose state is shown beside the manager's.
    observer: String,
    epochs: Vec<CallEpoch>,
    /// The epoch kept outside the backup (the last one) with which the observer's epoch-0
    /// state is restored.
    restored_kept_epoch: u32,
    /// That restored state: the epoch-0 key message and the kept epoch as its floor.
    restored_observer_state: String,
}

#[derive(Serialize, Deserialize)]
struct CallDevice {
    account_seed: String,
    address: String,
}

#[derive(Serialize, Deserialize)]
struct CallEpoch {
    /// "start", "join" or "remove".
    change: String,
    /// The device that joined or was removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    participant: Option<String>,
    epoch: u32,
    /// The bytes drawn for this epoch: the epoch-0 secret (start), R (join), the fresh secret
    /// (remove).
    random: String,
    secret: String,
    key_message: String,
    manager_state: String,
    observer_state: String,
    /// Every participant's SRTP keys, in participant order.
    participants: Vec<CallParticipant>,
}

#[derive(Serialize, Deserialize)]
struct CallParticipant {
    address: String,
    master_key: String,
    master_salt: String,
}

fn call_file() -> CallFile {
    use ratchetry::calls::{Call, CallConfig, CallKind};
    use ratchetry::devices::{AccountKeyPair, DeviceAddress, DeviceId};
    let (seed, mut rng) = seeded("ratchetry call keys");
    let rng = &mut rng;
    let config = CallConfig::default();
    let mut devices = Vec::new();
    let people: Vec<DeviceAddress> = (0..4u32)
        .map(|i| {
            let account_seed = draw::<32>(&mut rng.clone());
            let a = DeviceAddress {
                account: AccountKeyPair::generate(rng).public(),
                device: DeviceId(1 + i % 2),
            };
            devices.push(CallDevice {
                account_seed: h(account_seed),
                address: h(address(&a.account.to_bytes(), a.device.0)),
            });
            a
        })
        .collect();
    let addr = |a: &DeviceAddress| h(address(&a.account.to_bytes(), a.device.0));
    let (manager, observer) = (people[0], people[2]);
    let mut epochs = Vec::new();
    let mut record = |change: &str, who: Option<&DeviceAddress>, random: [u8; 32], call: &Call| {
        let msg = call.key_message().clone();
        let bytes = msg.to_bytes();
        let watcher = Call::from_key_message(observer, &manager, msg, &config).unwrap();
        epochs.push(CallEpoch {
            change: change.into(),
            participant: who.map(addr),
            epoch: call.epoch(),
            random: h(random),
            secret: h(&bytes[23..55]),
            key_message: h(&*bytes),
            manager_state: h(&*call.to_bytes()),
            observer_state: h(&*watcher.to_bytes()),
            participants: call
                .participants()
                .iter()
                .map(|p| {
                    let k = call.srtp_keys(p).unwrap();
                    CallParticipant {
                        address: addr(p),
                        master_key: h(k.master_key()),
                        master_salt: h(k.master_salt()),
                    }
                })
                .collect(),
        });
    };
    let mut probe = rng.clone();
    let mut call = Call::start(rng, CallKind::Group, manager, &people[1..3], &config).unwrap();
    let (call_id, secret) = (draw::<16>(&mut probe), draw::<32>(&mut probe));
    same_stream(rng, &probe);
    record("start", None, secret, &call);
    let observer_at_start =
        Call::from_key_message(observer, &manager, call.key_message().clone(), &config)
            .unwrap()
            .to_bytes();
    let random = draw::<32>(&mut rng.clone());
    call.join(rng, people[3], &config).unwrap();
    record("join", Some(&people[3]), random, &call);
    let random = draw::<32>(&mut rng.clone());
    call.remove(rng, &people[1]).unwrap();
    record("remove", Some(&people[1]), random, &call);
    // A participant's restore draws nothing.
    let kept = call.epoch();
    let (restored, stale) = Call::restore(&mut rng.clone(), &observer_at_start, kept).unwrap();
    assert!(stale);
    CallFile {
        description: "A group call's key epochs (PROTOCOL.md 21) under its manager: start with \
                      three participants, a join (the secret ratcheted with fresh random bytes), \
                      a removal (a fresh secret); the manager's and a participant's call state, \
                      and every participant's SRTP keys; the participant's epoch-0 state \
                      restored with the last epoch kept (its floor). Schema: test-vectors/README.md."
            .into(),
        generator: GENERATOR.into(),
        rng_seed: h(seed),
        devices,
        call_id: h(call_id),
        kind: 2,
        manager: addr(&manager),
        observer: addr(&observer),
        epochs,
        restored_kept_epoch: kept,
        restored_observer_state: h(&*restored.to_bytes()),
    }
}

#[test]
fn call_key_vectors() {
    let file = generated_and_committed("call-keys.json", &call_file());
    assert_eq!(file.epochs.len(), 3);
    // 21: a participant's stale state restored with kept epoch L: as written, floor L.
    assert_eq!(file.restored_kept_epoch, 2);
    let start = unhex(&file.epochs[0].key_message);
    assert_eq!(
        h(Enc::tag(1, 0x89)
            .put(unhex(&file.observer))
            .put(&start[2..])
            .u32(file.restored_kept_epoch)
            .done()),
        file.restored_observer_state
    );
    let addresses: Vec<Vec<u8>> = file
        .devices
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let a = address(&ed_pub(&unh(&d.account_seed)), 1 + i as u32 % 2);
            assert_eq!(h(&a), d.address);
            a
        })
        .collect();
    let call_id: [u8; 16] = unh(&file.call_id);
    let (manager, observer) = (unhex(&file.manager), unhex(&file.observer));
    assert_eq!((&manager, &observer), (&addresses[0], &addresses[2]));
    let mut participants = vec![
        addresses[0].clone(),
        addresses[1].clone(),
        addresses[2].clone(),
    ];
    let mut secret = [0u8; 32];
    for (i, e) in file.epochs.iter().enumerate() {
        let random: [u8; 32] = unh(&e.random);
        match e.change.as_str() {
            "start" => secret = random,
            "join" => {
                participants.push(unhex(e.participant.as_ref().unwrap()));
                let salt = [&call_id[..], &e.epoch.to_be_bytes()].concat();
                secret = hkdf(&salt, &[secret, random].concat(), L_CALL_RATCHET);
            }
            _ => {
                let gone = unhex(e.participant.as_ref().unwrap());
                participants.retain(|p| *p != gone);
                secret = random;
            }
        }
        participants.sort();
        assert_eq!(e.epoch, i as u32);
        assert_eq!(h(secret), e.secret);
        let msg = spec_call_key(
            &call_id,
            file.kind,
            e.epoch,
            &secret,
            &manager,
            &participants,
        );
        assert_eq!(h(&msg), e.key_message);
        // 21: call state = 0x01 ‖ 0x89 ‖ me ‖ call_key[2..] ‖ u32(floor), floor 0 here.
        for (me, state) in [(&manager, &e.manager_state), (&observer, &e.observer_state)] {
            assert_eq!(
                h(Enc::tag(1, 0x89).put(me).put(&msg[2..]).u32(0).done()),
                *state
            );
        }
        assert_eq!(e.participants.len(), participants.len());
        for (p, a) in e.participants.iter().zip(&participants) {
            let (key, salt) = spec_srtp(&call_id, e.epoch, &secret, a);
            assert_eq!(
                (
                    p.address.clone(),
                    p.master_key.clone(),
                    p.master_salt.clone()
                ),
                (h(a), h(key), h(salt))
            );
        }
    }
}

// =============================================================================================
// devices.json: accounts, device lists, linking, safety numbers, and a fanout run (15-18)

/// Primary::new for both accounts (issued_at of each list version 1), and the invitation.
const T_ACCOUNTS: u64 = 1_790_000_000_000;
/// The approval, the devices' creation and all the traffic.
const T_LINK: u64 = T_ACCOUNTS + 60_000;
/// Alice's primary renews her list (version 3); one message follows under it.
const T_RENEW: u64 = T_LINK + 24 * 60 * 60 * 1000;

#[derive(Serialize, Deserialize)]
struct DevicesFile {
    description: String,
    generator: String,
    rng_seed: String,
    accounts: Vec<AccountVector>,
    devices: Vec<DeviceVector>,
    linking: LinkingVector,
    safety_number: SafetyVector,
    /// Groups used below, by name.
    groups: BTreeMap<String, String>,
    events: Vec<DeviceEvent>,
}

#[derive(Serialize, Deserialize)]
struct AccountVector {
    name: String,
    account_seed: String,
    account_public: String,
    /// The `now` given to Primary::new: list version 1's issued_at and the primary's linked_at.
    primary_new_now: u64,
    lists: Vec<ListVector>,
    /// 15.3: what the primary did after Primary::new (each grows its epoch), and its state at
    /// the end of the run.
    primary_operations: Vec<String>,
    primary_state: String,
}

#[derive(Serialize, Deserialize)]
struct ListVector {
    version: u64,
    issued_at: u64,
    /// The account's signed policy (15.1).
    max_companions: u32,
    companion_validity_ms: u64,
    entries: Vec<EntryVector>,
    bytes: String,
    /// H(list), 15.1.
    digest: String,
}

#[derive(Serialize, Deserialize)]
struct EntryVector {
    /// The device (by name in `devices`) whose identity key the entry lists.
    device: String,
    device_id: u32,
    identity_public: String,
    linked_at: u64,
    expires_at: Option<u64>,
    binding: String,
}

#[derive(Serialize, Deserialize)]
struct DeviceVector {
    name: String,
    account: String,
    device_id: u32,
    address: String,
    identity_seed: String,
    identity_public: String,
    /// Device::new's `now` (the prekeys' created_at) and its draws, in order.
    created_at: u64,
    signed_prekey_secret: String,
    last_resort_kem_seed: String,
    one_time_prekeys: Vec<OneTimePreKeyVector>,
    one_time_kem_prekeys: Vec<OneTimePreKeyVector>,
    /// 6.1: the one-time prekey upload Device::new hands back.
    upload: String,
}

#[derive(Serialize, Deserialize)]
struct OneTimePreKeyVector {
    id: u32,
    /// The 32-byte X25519 secret, or the 64-byte ML-KEM seed.
    secret: String,
}

#[derive(Serialize, Deserialize)]
struct LinkingVector {
    invite_now: u64,
    invitation_nonce: String,
    invitation: String,
    link_request: String,
    approve_now: u64,
    link_approval: String,
    link_confirmation: String,
}

#[derive(Serialize, Deserialize)]
struct SafetyVector {
    first_fingerprint: String,
    second_fingerprint: String,
    digits: String,
    scannable: String,
}

/// What travels inside a pairwise envelope (18.2), by its fields.
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum PayloadFields {
    Direct {
        /// The send's message nonce (18.2), the same in every copy.
        nonce: String,
        sent_to: Option<String>,
        body: String,
    },
    Distribution {
        group: String,
        key_id: u32,
        iteration: u32,
        chain_key: String,
        signing_public: String,
    },
    Withheld {
        group: String,
        key_id: u32,
        reason: u8,
    },
    CallKey {
        call_key: String,
    },
    /// 18.2: when the sender made the offer (its `now`), the offer and its group membership.
    HistoryOffer {
        offered_at: u64,
        offer: String,
        groups: Vec<MembershipGroup>,
    },
    DirectResend {
        reference: String,
        nonce: String,
        sent_to: Option<String>,
        body: String,
    },
    GroupResend {
        reference: String,
        group: String,
        body: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum DeviceEvent {
    /// Every device now holds this list of the account (and builds envelopes with it).
    Publish {
        account: String,
        version: u64,
    },
    /// `from` starts a session with `to` from a bundle (7.1, 8.3): its draws, in order.
    Session(SessionEvent),
    /// A device makes a sender key generation for a group (14.1): its draws, in order.
    SenderKey(SenderKeyEvent),
    /// A device starts a call (21): the draws and the key message it makes.
    Call(CallEvent),
    /// A device seals a history (20) of `length` bytes, byte i = (7·i + 3) mod 256.
    History(HistoryEvent),
    /// A device's 1:1 send draws its message nonce (18.2) before anything else (11).
    Nonce {
        device: String,
        nonce: String,
    },
    Pairwise(PairwiseEvent),
    Group(GroupEnvelopeEvent),
    Retry(RetryEvent),
}

#[derive(Serialize, Deserialize)]
struct SessionEvent {
    from: String,
    to: String,
    one_time_prekey_id: Option<u32>,
    kem_prekey_id: u32,
    bundle: String,
    ephemeral_secret: String,
    kem_message: String,
    ratchet_secret: String,
}

#[derive(Serialize, Deserialize)]
struct SenderKeyEvent {
    device: String,
    group: String,
    chain_key: String,
    signing_seed: String,
    key_id_draw: String,
    key_id: u32,
}

#[derive(Serialize, Deserialize)]
struct CallEvent {
    device: String,
    kind: u8,
    call_id: String,
    secret: String,
    participants: Vec<String>,
    call_key: String,
}

#[derive(Serialize, Deserialize)]
struct HistoryEvent {
    device: String,
    secret: String,
    length: u64,
    offer: String,
}

#[derive(Serialize, Deserialize)]
struct PairwiseEvent {
    label: String,
    from: String,
    to: String,
    payload: PayloadFields,
    payload_bytes: String,
    /// The draws, in order: a ratchet secret if the message starts a sending chain, the salt.
    new_ratchet_secret: Option<String>,
    salt: String,
    sender_list_version: u64,
    recipient_list_version: u64,
    lists_digest: String,
    header: String,
    envelope: String,
    envelope_id: String,
    /// For a direct message, an own copy or a resend: the message's id (18.4), the same on
    /// every device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message_id: Option<String>,
    delivered: bool,
}

#[derive(Serialize, Deserialize)]
struct GroupEnvelopeEvent {
    label: String,
    from: String,
    group: String,
    key_id: u32,
    iteration: u32,
    salt: String,
    body: String,
    sender_list_version: u64,
    envelope: String,
    envelope_id: String,
    /// The message's id (18.4), the same on every device.
    message_id: String,
    /// The member devices it is for (18.5), and those it was delivered to.
    recipients: Vec<String>,
    delivered_to: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct RetryEvent {
    label: String,
    from: String,
    to: String,
    /// The envelope that could not be read, by label, and its salt.
    failed: String,
    reference: String,
    reason: u8,
    attempt: u8,
    /// The one-time prekeys made for the request's bundle (its draws, in order).
    one_time_prekey_id: u32,
    one_time_prekey_secret: String,
    kem_prekey_id: u32,
    kem_seed: String,
    bundle: String,
    signature: String,
    envelope: String,
    envelope_id: String,
    delivered: bool,
    /// The request as the sender's app keeps it (18.6), when it was delivered and read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kept: Option<String>,
}

/// A group of a membership (18.2): its id and its member accounts, the sender's own left out.
#[derive(Clone, Serialize, Deserialize)]
struct MembershipGroup {
    group: String,
    members: Vec<String>,
}

/// 18.2: a payload's bytes from its fields.
fn payload_bytes(p: &PayloadFields) -> Vec<u8> {
    let e = Enc::tag(2, 0x0c);
    let opt_ak = |e: Enc, ak: &Option<String>| e.opt(ak.as_deref(), |e, a| e.put(unhex(a)));
    match p {
        PayloadFields::Direct {
            nonce,
            sent_to,
            body,
        } => opt_ak(e.u8(1).put(unhex(nonce)), sent_to).put(unhex(body)),
        PayloadFields::Distribution {
            group,
            key_id,
            iteration,
            chain_key,
            signing_public,
        } => e
            .u8(2)
            .put(
                Enc::tag(2, 0x05)
                    .put(unhex(group))
                    .u32(*key_id)
                    .u32(*iteration)
                    .done(),
            )
            .put(unhex(chain_key))
            .put(unhex(signing_public)),
        PayloadFields::Withheld {
            group,
            key_id,
            reason,
        } => e.u8(10).put(unhex(group)).u32(*key_id).u8(*reason),
        PayloadFields::CallKey { call_key } => e.u8(4).put(unhex(call_key)),
        PayloadFields::HistoryOffer {
            offered_at,
            offer,
            groups,
        } => {
            let mut e = e
                .u8(0x0b)
                .u64(*offered_at)
                .blob(unhex(offer))
                .u32(groups.len() as u32);
            for g in groups {
                e = e.put(unhex(&g.group)).u32(g.members.len() as u32);
                for m in &g.members {
                    e = e.put(unhex(m));
                }
            }
            e
        }
        PayloadFields::DirectResend {
            reference,
            nonce,
            sent_to,
            body,
        } => opt_ak(e.u8(6).put(unhex(reference)).put(unhex(nonce)), sent_to).put(unhex(body)),
        PayloadFields::GroupResend {
            reference,
            group,
            body,
        } => e
            .u8(7)
            .put(unhex(reference))
            .put(unhex(group))
            .put(unhex(body)),
    }
    .done()
}

/// 18.4: a message's id, the same on every device: kind 1 (direct: the conversation's account
/// and the nonce) or 2 (group: the group id and the group message's salt).
fn spec_message_id(kind: u8, sender: &[u8], scope: &[u8], nonce: &[u8]) -> [u8; 16] {
    sha256(&[
        b"ratchetry v1 app message id",
        &[kind],
        sender,
        scope,
        nonce,
    ])[..16]
        .try_into()
        .unwrap()
}

/// The message id of a pairwise payload that carries a message, from `sender` to `recipient`
/// (addresses, 36 bytes each).
fn pairwise_message_id(p: &PayloadFields, sender: &[u8], recipient: &[u8]) -> Option<String> {
    let direct = |nonce: &str, sent_to: &Option<String>| {
        let conversation = sent_to.as_deref().map_or(recipient[..32].to_vec(), unhex);
        h(spec_message_id(1, sender, &conversation, &unhex(nonce)))
    };
    match p {
        PayloadFields::Direct { nonce, sent_to, .. }
        | PayloadFields::DirectResend { nonce, sent_to, .. } => Some(direct(nonce, sent_to)),
        PayloadFields::GroupResend {
            reference, group, ..
        } => Some(h(spec_message_id(
            2,
            sender,
            &unhex(group),
            &unhex(reference),
        ))),
        _ => None,
    }
}

/// The fanout run behind devices.json and records.json: the devices, the events, and what the
/// generator learned about Bob's phone on the way (for records.json).
struct DevicesRun {
    rng: SeededRng,
    now: Timestamp,
    devices: BTreeMap<&'static str, ratchetry::fanout::Device>,
    events: Vec<DeviceEvent>,
    /// Envelopes by label.
    sent: BTreeMap<String, Vec<u8>>,
    /// Every envelope delivered to Bob's phone, in order (its read ring), and every operation
    /// that changed it (its epoch counts them).
    bob_reads: Vec<Vec<u8>>,
    bob_operations: Vec<String>,
}

/// The ratchet message inside a pairwise message (9.1, 9.2).
fn ratchet_part(message: &[u8]) -> &[u8] {
    match message[1] {
        0x02 => message,
        _ => {
            let opk = if message[70] == 1 { 4 } else { 0 };
            &message[70 + 1 + opk + 4 + 1568..]
        }
    }
}

impl DevicesRun {
    fn name_of(&self, a: &ratchetry::devices::DeviceAddress) -> &'static str {
        self.devices
            .iter()
            .find(|(_, d)| d.address() == *a)
            .unwrap()
            .0
    }

    fn address_of(&self, name: &str) -> ratchetry::devices::DeviceAddress {
        self.devices[name].address()
    }

    fn device(&mut self, name: &str) -> &mut ratchetry::fanout::Device {
        self.devices.get_mut(name).unwrap()
    }

    /// Runs one operation of device `name` with the run's generator and clock (logged as `what`
    /// if it changes Bob's phone); returns its result and a probe where it began drawing.
    fn op<T>(
        &mut self,
        name: &str,
        what: &str,
        f: impl FnOnce(
            &mut ratchetry::fanout::Device,
            &mut SeededRng,
            Timestamp,
        ) -> ratchetry::Result<T>,
    ) -> (T, SeededRng) {
        let probe = self.rng.clone();
        let device = self.devices.get_mut(name).unwrap();
        let out = f(device, &mut self.rng, self.now).unwrap();
        if name == "bob-phone" {
            self.bob_operations.push(what.into());
        }
        (out, probe)
    }

    /// [`op`](Self::op) for a send, which must be ready: its outbox.
    fn send_op(
        &mut self,
        name: &str,
        what: &str,
        f: impl FnOnce(
            &mut ratchetry::fanout::Device,
            &mut SeededRng,
            Timestamp,
        ) -> ratchetry::Result<ratchetry::fanout::Outgoing>,
    ) -> (ratchetry::fanout::Outbox, SeededRng) {
        match self.op(name, what, f) {
            (ratchetry::fanout::Outgoing::Ready(out), probe) => (out, probe),
            (other, _) => panic!("not ready: {other:?}"),
        }
    }

    fn deliver(&mut self, to: &str, envelope: &[u8]) -> ratchetry::fanout::Received {
        let now = self.now;
        let received = self.device(to).receive(now, envelope).unwrap();
        if to == "bob-phone" {
            use ratchetry::fanout::Received;
            self.bob_reads.push(envelope.to_vec());
            // 18.4: a resend also writes the id of the message it replaces.
            let resent = matches!(
                received,
                Received::Direct {
                    resent: Some(_),
                    ..
                } | Received::OwnCopy {
                    resent: Some(_),
                    ..
                } | Received::Group {
                    resent: Some(_),
                    ..
                }
            );
            self.bob_operations
                .push(if resent { "receive resend" } else { "receive" }.into());
        }
        received
    }

    /// Records one pairwise envelope of an outbox: its draws are the next ones of `probe`
    /// (8.5: a ratchet secret if the message starts a chain, then the salt).
    fn pairwise(
        &mut self,
        probe: &mut SeededRng,
        label: &str,
        from: &str,
        envelope: &[u8],
        payload: PayloadFields,
        deliver: bool,
    ) -> Option<ratchetry::fanout::Received> {
        let to = self.name_of(&ratchetry::devices::DeviceAddress {
            account: ratchetry::devices::AccountKey::from_bytes(
                &envelope[39..71].try_into().unwrap(),
            )
            .unwrap(),
            device: ratchetry::devices::DeviceId(u32::from_be_bytes(
                envelope[71..75].try_into().unwrap(),
            )),
        });
        let ratchet = ratchet_part(&envelope[99..]);
        let mut peek = probe.clone();
        let candidate = draw::<32>(&mut peek);
        let new_ratchet_secret =
            (x25519_pub(candidate) == ratchet[2..34]).then(|| draw::<32>(probe));
        let salt = draw::<16>(probe);
        assert_eq!(salt, ratchet[42..58], "{label}: salt drawn");
        self.sent.insert(label.into(), envelope.to_vec());
        let message_id = pairwise_message_id(&payload, &envelope[3..39], &envelope[39..75]);
        self.events.push(DeviceEvent::Pairwise(PairwiseEvent {
            label: label.into(),
            from: from.into(),
            to: to.into(),
            payload_bytes: h(payload_bytes(&payload)),
            payload,
            new_ratchet_secret: new_ratchet_secret.map(h),
            salt: h(salt),
            sender_list_version: u64::from_be_bytes(envelope[75..83].try_into().unwrap()),
            recipient_list_version: u64::from_be_bytes(envelope[83..91].try_into().unwrap()),
            lists_digest: h(&envelope[91..99]),
            header: h(&envelope[..99]),
            envelope: h(envelope),
            envelope_id: h(ratchetry::fanout::EnvelopeId::of(envelope).0),
            message_id: message_id.clone(),
            delivered: deliver,
        }));
        let received = deliver.then(|| self.deliver(to, envelope));
        // The id the receiver reports is the specified one.
        use ratchetry::fanout::Received;
        if let Some(
            Received::Direct { id, .. } | Received::OwnCopy { id, .. } | Received::Group { id, .. },
        ) = &received
        {
            assert_eq!(Some(h(id.0)), message_id, "{label}: message id");
        }
        received
    }

    /// A 1:1 send's first draw (11): its message nonce, the next 16 bytes of `probe`.
    fn nonce(&mut self, probe: &mut SeededRng, device: &str) -> String {
        let nonce = h(draw::<16>(probe));
        self.events.push(DeviceEvent::Nonce {
            device: device.into(),
            nonce: nonce.clone(),
        });
        nonce
    }

    /// Records a group envelope; its salt is the next 16 bytes of `probe`.
    fn group(
        &mut self,
        probe: &mut SeededRng,
        label: &str,
        from: &str,
        (envelope, recipients): &(Vec<u8>, std::sync::Arc<[ratchetry::devices::DeviceAddress]>),
        body: &[u8],
        deliver_to: &[&str],
    ) {
        let salt = draw::<16>(probe);
        let message = &envelope[47..];
        assert_eq!(salt, message[42..58], "{label}: salt drawn");
        self.sent.insert(label.into(), envelope.clone());
        let recipients: Vec<String> = recipients.iter().map(|a| self.name_of(a).into()).collect();
        let message_id = h(spec_message_id(2, &envelope[3..39], &message[2..34], &salt));
        self.events.push(DeviceEvent::Group(GroupEnvelopeEvent {
            label: label.into(),
            from: from.into(),
            group: h(&message[2..34]),
            key_id: u32::from_be_bytes(message[34..38].try_into().unwrap()),
            iteration: u32::from_be_bytes(message[38..42].try_into().unwrap()),
            salt: h(salt),
            body: h(body),
            sender_list_version: u64::from_be_bytes(envelope[39..47].try_into().unwrap()),
            envelope: h(envelope),
            envelope_id: h(ratchetry::fanout::EnvelopeId::of(envelope).0),
            message_id: message_id.clone(),
            recipients,
            delivered_to: deliver_to.iter().map(|s| s.to_string()).collect(),
        }));
        for to in deliver_to {
            let got = self.deliver(to, envelope);
            assert!(
                matches!(got, ratchetry::fanout::Received::Group { body: ref b, id, .. }
                    if b == body && h(id.0) == message_id)
            );
        }
    }

    /// `from` starts sessions with `to` from bundles with the given one-time prekey ids; the
    /// draws are the next ones of `probe`.
    fn session_event(
        &mut self,
        probe: &mut SeededRng,
        from: &str,
        to: &str,
        bundle: &[u8],
        opk: Option<u32>,
        kem: u32,
    ) {
        let (ek, m, r) = (draw::<32>(probe), draw::<32>(probe), draw::<32>(probe));
        self.events.push(DeviceEvent::Session(SessionEvent {
            from: from.into(),
            to: to.into(),
            one_time_prekey_id: opk,
            kem_prekey_id: kem,
            bundle: h(bundle),
            ephemeral_secret: h(ek),
            kem_message: h(m),
            ratchet_secret: h(r),
        }));
    }

    /// A sender key generation's draws (14.1), the next ones of `probe`.
    fn sender_key_event(
        &mut self,
        probe: &mut SeededRng,
        device: &str,
        group: [u8; 32],
    ) -> ([u8; 32], [u8; 32], u32) {
        let (ck, seed, id) = (draw::<32>(probe), draw::<32>(probe), draw::<4>(probe));
        let key_id = key_id_of(id, None);
        self.events.push(DeviceEvent::SenderKey(SenderKeyEvent {
            device: device.into(),
            group: h(group),
            chain_key: h(ck),
            signing_seed: h(seed),
            key_id_draw: h(id),
            key_id,
        }));
        (ck, seed, key_id)
    }

    /// `from` asks `to` again for the envelope labelled `failed`; the request's draws are the
    /// next ones of the generator.
    fn retry(
        &mut self,
        label: &str,
        from: &str,
        failed: &str,
        reason: ratchetry::fanout::RetryReason,
        code: u8,
        deliver: bool,
    ) -> Option<ratchetry::fanout::Received> {
        let failed_envelope = self.sent[failed].clone();
        let ((to, envelope), mut probe) = self.op(from, "request_retry", |d, rng, now| {
            d.request_retry(rng, now, &failed_envelope, reason)
        });
        let (otk, kem) = (draw::<32>(&mut probe), draw::<64>(&mut probe));
        same_stream(&self.rng, &probe);
        let to = self.name_of(&to);
        let bundle_len = u32::from_be_bytes(envelope[93..97].try_into().unwrap()) as usize;
        let bundle = &envelope[97..97 + bundle_len];
        let b = Bundle::parse(bundle);
        self.sent.insert(label.into(), envelope.clone());
        self.events.push(DeviceEvent::Retry(RetryEvent {
            label: label.into(),
            from: from.into(),
            to: to.into(),
            failed: failed.into(),
            reference: h(&envelope[75..91]),
            reason: code,
            attempt: envelope[92],
            one_time_prekey_id: b.opk.unwrap().0,
            one_time_prekey_secret: h(otk),
            kem_prekey_id: b.kem_id,
            kem_seed: h(kem),
            bundle: h(bundle),
            signature: h(&envelope[envelope.len() - 64..]),
            envelope: h(&envelope),
            envelope_id: h(ratchetry::fanout::EnvelopeId::of(&envelope).0),
            delivered: deliver,
            kept: None,
        }));
        let read = deliver.then(|| self.deliver(to, &envelope))?;
        if let (ratchetry::fanout::Received::RetryRequest(request), Some(DeviceEvent::Retry(r))) = (
            &read,
            self.events
                .iter_mut()
                .rev()
                .find(|e| matches!(e, DeviceEvent::Retry(_))),
        ) {
            let kept = request.to_bytes();
            assert_eq!(
                ratchetry::fanout::RetryRequest::from_bytes(&kept).as_ref(),
                Ok(request)
            );
            r.kept = Some(h(&kept));
        }
        Some(read)
    }
}

/// What devices.json's generator hands to records.json's: Bob's phone at the end of the run,
/// and what the run knows about it.
struct BobPhone {
    device: ratchetry::fanout::Device,
    /// Alice's phone's answers records (19.1 kind 0x17) at the end of the run.
    alice_answers: Vec<(Vec<u8>, Vec<u8>)>,
    file: DevicesFile,
    reads: Vec<Vec<u8>>,
    operations: Vec<String>,
    sent: BTreeMap<String, Vec<u8>>,
}

fn devices_run() -> BobPhone {
    use ratchetry::calls::{Call, CallConfig, CallKind};
    use ratchetry::devices::{
        DeviceId, LinkRequest, ListLimits, Primary, PrimaryPolicy, SafetyNumber, complete_link,
    };
    use ratchetry::fanout::{Device, DeviceConfig, Received, RetryReason, WithheldReason};
    use ratchetry::group::GroupId;
    use ratchetry::history::HistorySealer;
    use ratchetry::x3dh::{KemPreKeyId, OneTimePreKeyId};

    let (rng_seed, mut rng) = seeded("ratchetry devices");
    let (policy, limits) = (PrimaryPolicy::default(), ListLimits::default());
    let (t0, t1) = (Timestamp(T_ACCOUNTS), Timestamp(T_LINK));
    let mut probe = rng.clone();
    let mut seeds: BTreeMap<&str, [u8; 32]> = BTreeMap::new();

    // Alice's account: her phone, the primary, then her laptop linked.
    let phone = IdentityKeyPair::generate(&mut rng);
    seeds.insert("alice-phone", draw(&mut probe));
    let mut alice = Primary::new(&mut rng, &phone, t0, policy);
    let alice_seed = draw::<32>(&mut probe);
    let list_v1 = alice.device_list().clone();
    let invitation = alice.invite(&mut rng, t0).unwrap();
    let invitation_nonce = draw::<16>(&mut probe);
    let laptop = IdentityKeyPair::generate(&mut rng);
    seeds.insert("alice-laptop", draw(&mut probe));
    let link_request = LinkRequest::new(&laptop, &invitation);
    let approval = alice.approve(t1, &link_request).unwrap();
    let (list_v2, confirmation) = complete_link(&laptop, &invitation, &approval, &limits).unwrap();
    alice.confirm(&confirmation).unwrap();
    // Bob's account: his phone.
    let bob_phone = IdentityKeyPair::generate(&mut rng);
    seeds.insert("bob-phone", draw(&mut probe));
    let bob = Primary::new(&mut rng, &bob_phone, t0, policy);
    let bob_seed = draw::<32>(&mut probe);
    same_stream(&rng, &probe);
    let safety = SafetyNumber::new(&alice.account(), &bob.account());
    let (ak, bk) = (alice.account(), bob.account());

    // The three devices, each with two one-time prekeys of each kind.
    let mut run = DevicesRun {
        rng,
        now: t1,
        devices: BTreeMap::new(),
        events: Vec::new(),
        sent: BTreeMap::new(),
        bob_reads: Vec::new(),
        bob_operations: Vec::new(),
    };
    let mut device_vectors = Vec::new();
    for (name, identity, id, list) in [
        ("alice-phone", phone, 1, list_v2.clone()),
        ("alice-laptop", laptop, approval.device.0, list_v2.clone()),
        ("bob-phone", bob_phone, 1, bob.device_list().clone()),
    ] {
        let mut probe = run.rng.clone();
        let (spk, last_resort) = (draw::<32>(&mut probe), draw::<64>(&mut probe));
        let otks = [draw::<32>(&mut probe), draw::<32>(&mut probe)];
        let kems = [draw::<64>(&mut probe), draw::<64>(&mut probe)];
        let public = identity.public();
        let (mut device, upload) = Device::new(
            &mut run.rng,
            t1,
            identity,
            DeviceId(id),
            list,
            2,
            DeviceConfig::default(),
        )
        .unwrap();
        same_stream(&run.rng, &probe);
        // Devices from before the post-quantum ratchet: their sessions run PQXDH and the
        // Double Ratchet alone (pq-ratchet.json covers the ratchet).
        let upload = hooks::before_pq_ratchet(&mut device, &upload);
        let account = device.address().account.to_bytes();
        device_vectors.push(DeviceVector {
            name: name.into(),
            account: if name.starts_with("alice") {
                "alice"
            } else {
                "bob"
            }
            .into(),
            device_id: id,
            address: h(address(&account, id)),
            identity_seed: h(seeds[name]),
            identity_public: h(public.to_bytes()),
            created_at: t1.0,
            signed_prekey_secret: h(spk),
            last_resort_kem_seed: h(last_resort),
            one_time_prekeys: otks
                .iter()
                .enumerate()
                .map(|(i, s)| OneTimePreKeyVector {
                    id: i as u32 + 1,
                    secret: h(s),
                })
                .collect(),
            one_time_kem_prekeys: kems
                .iter()
                .enumerate()
                .map(|(i, s)| OneTimePreKeyVector {
                    id: i as u32 + 2,
                    secret: h(s),
                })
                .collect(),
            upload: h(upload.to_bytes()),
        });
        run.devices.insert(name, device);
    }
    for (name, account, list) in [
        ("alice-phone", bk, bob.device_list()),
        ("alice-laptop", bk, bob.device_list()),
        ("bob-phone", ak, &list_v2),
    ] {
        run.op(name, "update_device_list", |d, _, now| {
            d.update_device_list(now, &account, list.signed().clone())
        });
    }
    run.events.push(DeviceEvent::Publish {
        account: "alice".into(),
        version: 2,
    });
    run.events.push(DeviceEvent::Publish {
        account: "bob".into(),
        version: 1,
    });
    let (group, other_group) = (
        GroupId(sha256(&[b"ratchetry devices: the group"])),
        GroupId(sha256(&[b"ratchetry devices: another group"])),
    );
    let (b1, a1, a2) = (
        run.address_of("bob-phone"),
        run.address_of("alice-phone"),
        run.address_of("alice-laptop"),
    );

    // Alice's phone starts sessions with Bob's phone and her laptop (one-time prekey 1,
    // one-time ML-KEM prekey 2 each).
    let bundles: Vec<_> = [b1, a2]
        .iter()
        .map(|a| {
            (
                *a,
                run.devices[run.name_of(a)].bundle(Some(OneTimePreKeyId(1)), Some(KemPreKeyId(2))),
            )
        })
        .collect();
    let ((), mut probe) = run.op("alice-phone", "start_sessions", |d, rng, now| {
        d.start_sessions(rng, now, &bundles)
    });
    for (a, bundle) in &bundles {
        let to = run.name_of(a);
        run.session_event(
            &mut probe,
            "alice-phone",
            to,
            &bundle.to_bytes(),
            Some(1),
            2,
        );
    }
    same_stream(&run.rng, &probe);

    // 1. A direct message to Bob: Bob's phone, and Alice's laptop as her own copy.
    let body = b"Hello Bob".to_vec();
    let direct = |nonce: &str, sent_to: Option<[u8; 32]>, body: &[u8]| PayloadFields::Direct {
        nonce: nonce.into(),
        sent_to: sent_to.map(h),
        body: h(body),
    };
    let (out, mut probe) = run.send_op("alice-phone", "send", |d, rng, now| {
        d.send(rng, now, &bk, &body)
    });
    let nonce = run.nonce(&mut probe, "alice-phone");
    for (i, (to, env)) in out.envelopes.iter().enumerate() {
        let sent_to = (to.account == ak).then_some(bk.to_bytes());
        let got = run.pairwise(
            &mut probe,
            &format!("hello-{}", i + 1),
            "alice-phone",
            env,
            direct(&nonce, sent_to, &body),
            true,
        );
        assert!(matches!(
            got,
            Some(Received::Direct { .. } | Received::OwnCopy { .. })
        ));
    }
    same_stream(&run.rng, &probe);

    // 2. Groups: both accounts are members of two groups.
    for (name, other) in [("alice-phone", bk), ("alice-laptop", bk), ("bob-phone", ak)] {
        for g in [group, other_group] {
            run.op(name, "set_group_members", |d, _, _| {
                d.set_group_members(g, &[other]).unwrap();
                Ok(())
            });
        }
    }

    // A first group message from Alice's phone: a new sender key, distributed pairwise to the
    // member devices (in address order), then the group envelope.
    let group_message = |run: &mut DevicesRun, from: &'static str, body: &[u8], fresh: bool| {
        let (out, mut probe) = run.send_op(from, "send_group", |d, rng, now| {
            d.send_group(rng, now, group, body)
        });
        if fresh {
            run.sender_key_event(&mut probe, from, group.0);
        }
        (out, probe)
    };
    let body = b"Hello group".to_vec();
    let (out, mut probe) = group_message(&mut run, "alice-phone", &body, true);
    let (ck, seed, key_id) = match run.events.last() {
        Some(DeviceEvent::SenderKey(e)) => (
            unh::<32>(&e.chain_key),
            unh::<32>(&e.signing_seed),
            e.key_id,
        ),
        _ => unreachable!(),
    };
    let distribution =
        |iteration: u32, ck: [u8; 32], seed: &[u8; 32], key_id: u32| PayloadFields::Distribution {
            group: h(group.0),
            key_id,
            iteration,
            chain_key: h(ck),
            signing_public: h(ed_pub(seed)),
        };
    for (i, (_, env)) in out.envelopes.iter().enumerate() {
        run.pairwise(
            &mut probe,
            &format!("alice-key-{}", i + 1),
            "alice-phone",
            env,
            distribution(0, ck, &seed, key_id),
            true,
        );
    }
    run.group(
        &mut probe,
        "group-1",
        "alice-phone",
        out.group.as_ref().unwrap(),
        &body,
        &["alice-laptop", "bob-phone"],
    );
    same_stream(&run.rng, &probe);

    // 3. Bob's phone starts a session with Alice's laptop, then sends to the group: its key goes
    // to Alice's phone (a ratchet message on the session Alice started) and laptop.
    let bundle = run.devices["alice-laptop"].bundle(Some(OneTimePreKeyId(2)), Some(KemPreKeyId(3)));
    let ((), mut probe) = run.op("bob-phone", "start_sessions", |d, rng, now| {
        d.start_sessions(rng, now, &[(a2, bundle.clone())])
    });
    run.session_event(
        &mut probe,
        "bob-phone",
        "alice-laptop",
        &bundle.to_bytes(),
        Some(2),
        3,
    );
    same_stream(&run.rng, &probe);
    let body = b"Bob to the group".to_vec();
    let (out, mut probe) = group_message(&mut run, "bob-phone", &body, true);
    let (bck, bseed, bkey_id) = match run.events.last() {
        Some(DeviceEvent::SenderKey(e)) => (
            unh::<32>(&e.chain_key),
            unh::<32>(&e.signing_seed),
            e.key_id,
        ),
        _ => unreachable!(),
    };
    for (i, (_, env)) in out.envelopes.iter().enumerate() {
        run.pairwise(
            &mut probe,
            &format!("bob-key-{}", i + 1),
            "bob-phone",
            env,
            distribution(0, bck, &bseed, bkey_id),
            true,
        );
    }
    run.group(
        &mut probe,
        "group-2",
        "bob-phone",
        out.group.as_ref().unwrap(),
        &body,
        &["alice-phone", "alice-laptop"],
    );
    same_stream(&run.rng, &probe);

    // 4. Bob writes to Alice: both her devices.
    let body = b"Hi Alice".to_vec();
    let (out, mut probe) = run.send_op("bob-phone", "send", |d, rng, now| {
        d.send(rng, now, &ak, &body)
    });
    let nonce = run.nonce(&mut probe, "bob-phone");
    for (i, (_, env)) in out.envelopes.iter().enumerate() {
        run.pairwise(
            &mut probe,
            &format!("hi-{}", i + 1),
            "bob-phone",
            env,
            direct(&nonce, None, &body),
            true,
        );
    }
    same_stream(&run.rng, &probe);

    // 5. Alice's phone writes to the other group and withholds its key from Bob's phone: a new
    // sender key, distributed to her laptop, a withheld notice naming its generation to Bob's
    // phone (both in address order), then the group envelope, to both.
    let body = b"Not for Bob's phone".to_vec();
    let withheld = [(b1, Some(WithheldReason::Blocked))];
    let (out, mut probe) = run.send_op("alice-phone", "send_group_withholding", |d, rng, now| {
        d.send_group_withholding(rng, now, other_group, &body, &withheld)
    });
    let (ock, oseed, okey_id) = run.sender_key_event(&mut probe, "alice-phone", other_group.0);
    for (i, (to, env)) in out.envelopes.iter().enumerate() {
        let payload = match run.name_of(to) {
            "bob-phone" => PayloadFields::Withheld {
                group: h(other_group.0),
                key_id: okey_id,
                reason: 1,
            },
            _ => PayloadFields::Distribution {
                group: h(other_group.0),
                key_id: okey_id,
                iteration: 0,
                chain_key: h(ock),
                signing_public: h(ed_pub(&oseed)),
            },
        };
        let label = format!("withheld-{}", i + 1);
        let got = run.pairwise(&mut probe, &label, "alice-phone", env, payload, true);
        assert!(matches!(
            got,
            Some(Received::Withheld { .. } | Received::SenderKey { .. })
        ));
    }
    run.group(
        &mut probe,
        "withheld-group",
        "alice-phone",
        out.group.as_ref().unwrap(),
        &body,
        &["alice-laptop"],
    );
    same_stream(&run.rng, &probe);

    // 6. Alice's phone calls Bob's phone: the call key.
    let mut probe = run.rng.clone();
    let call = Call::start(
        &mut run.rng,
        CallKind::OneToOne,
        a1,
        &[b1, a2],
        &CallConfig::default(),
    )
    .unwrap();
    let (call_id, call_secret) = (draw::<16>(&mut probe), draw::<32>(&mut probe));
    let call_key = call.key_message().to_bytes();
    run.events.push(DeviceEvent::Call(CallEvent {
        device: "alice-phone".into(),
        kind: 1,
        call_id: h(call_id),
        secret: h(call_secret),
        participants: ["alice-phone", "bob-phone", "alice-laptop"]
            .iter()
            .map(|n| {
                h(address(
                    &run.address_of(n).account.to_bytes(),
                    run.address_of(n).device.0,
                ))
            })
            .collect(),
        call_key: h(&*call_key),
    }));
    // The devices are given in descending address order; the envelopes come out ascending.
    let ringing = if b1 > a2 { [b1, a2] } else { [a2, b1] };
    let (out, _) = run.send_op("alice-phone", "send_call_key", |d, rng, now| {
        d.send_call_key(rng, now, &ringing, call.key_message())
    });
    for (i, (_, env)) in out.envelopes.iter().enumerate() {
        let got = run.pairwise(
            &mut probe,
            &format!("call-key-{}", i + 1),
            "alice-phone",
            env,
            PayloadFields::CallKey {
                call_key: h(&*call_key),
            },
            true,
        );
        assert!(matches!(got, Some(Received::CallKey { .. })));
    }
    same_stream(&run.rng, &probe);

    // 7. Alice's phone offers its history to her laptop.
    let mut probe = run.rng.clone();
    let history_secret = draw::<32>(&mut probe);
    let mut sealer = HistorySealer::new(&mut run.rng);
    let _ = sealer.push(&history_plaintext(300));
    let (_, offer) = sealer.finish();
    run.events.push(DeviceEvent::History(HistoryEvent {
        device: "alice-phone".into(),
        secret: h(history_secret),
        length: 300,
        offer: h(&*offer.to_bytes()),
    }));
    let (out, _) = run.send_op("alice-phone", "send_history_offer", |d, rng, now| {
        d.send_history_offer(rng, now, a2, &offer)
    });
    let got = run.pairwise(
        &mut probe,
        "history-offer",
        "alice-phone",
        &out.envelopes[0].1,
        PayloadFields::HistoryOffer {
            offered_at: run.now.0,
            offer: h(&*offer.to_bytes()),
            // Both groups, ascending, with Bob: the laptop holds them already and keeps them.
            groups: {
                let mut ids = [group.0, other_group.0];
                ids.sort();
                ids.iter()
                    .map(|g| MembershipGroup {
                        group: h(g),
                        members: vec![h(bk.to_bytes())],
                    })
                    .collect()
            },
        },
        true,
    );
    assert!(matches!(
        got,
        Some(Received::HistoryOffer { ref groups, .. }) if groups.is_empty()
    ));
    same_stream(&run.rng, &probe);

    // 8. A message to Bob that his phone never gets: it asks again (no session), Alice's phone
    // answers on a new session from the request's bundle with a direct resend.
    let lost = b"Lost on the way".to_vec();
    let (out, mut probe) = run.send_op("alice-phone", "send", |d, rng, now| {
        d.send(rng, now, &bk, &lost)
    });
    let lost_nonce = run.nonce(&mut probe, "alice-phone");
    for (i, (to, env)) in out.envelopes.iter().enumerate() {
        let sent_to = (to.account == ak).then_some(bk.to_bytes());
        run.pairwise(
            &mut probe,
            &format!("lost-{}", i + 1),
            "alice-phone",
            env,
            direct(&lost_nonce, sent_to, &lost),
            to.account == ak,
        );
    }
    same_stream(&run.rng, &probe);
    let Some(Received::RetryRequest(request)) = run.retry(
        "retry-1",
        "bob-phone",
        "lost-1",
        RetryReason::NoSession,
        1,
        true,
    ) else {
        panic!("a retry request")
    };
    let retry_bundle = match run.events.last() {
        Some(DeviceEvent::Retry(r)) => unhex(&r.bundle),
        _ => unreachable!(),
    };
    let (out, mut probe) = run.send_op("alice-phone", "answer_retry", |d, rng, now| {
        d.answer_retry(rng, now, &request, &lost)
    });
    run.session_event(
        &mut probe,
        "alice-phone",
        "bob-phone",
        &retry_bundle,
        Some(3),
        4,
    );
    let lost_salt = h(&ratchet_part(&run.sent["lost-1"][99..])[42..58]);
    let got = run.pairwise(
        &mut probe,
        "direct-resend",
        "alice-phone",
        &out.envelopes[0].1,
        PayloadFields::DirectResend {
            reference: lost_salt,
            nonce: lost_nonce,
            sent_to: None,
            body: h(&lost),
        },
        true,
    );
    assert!(matches!(
        got,
        Some(Received::Direct {
            resent: Some(_),
            ..
        })
    ));
    same_stream(&run.rng, &probe);

    // 9. A group message Bob's phone never gets: it asks again (sender key missing); Alice's
    // phone keeps the session, sends its current key again, then a group resend.
    let lost_group = b"Lost group message".to_vec();
    let (out, mut probe) = group_message(&mut run, "alice-phone", &lost_group, false);
    run.group(
        &mut probe,
        "group-3",
        "alice-phone",
        out.group.as_ref().unwrap(),
        &lost_group,
        &["alice-laptop"],
    );
    same_stream(&run.rng, &probe);
    let Some(Received::RetryRequest(request)) = run.retry(
        "retry-2",
        "bob-phone",
        "group-3",
        RetryReason::SenderKeyMissing,
        3,
        true,
    ) else {
        panic!("a retry request")
    };
    let (out, mut probe) = run.send_op("alice-phone", "answer_retry", |d, rng, now| {
        d.answer_retry(rng, now, &request, &lost_group)
    });
    let ck2 = hooks::kdf::chain(hooks::kdf::chain(ck).1).1;
    run.pairwise(
        &mut probe,
        "alice-key-again",
        "alice-phone",
        &out.envelopes[0].1,
        distribution(2, ck2, &seed, key_id),
        true,
    );
    let group_salt = h(&run.sent["group-3"][47 + 42..47 + 58]);
    let got = run.pairwise(
        &mut probe,
        "group-resend",
        "alice-phone",
        &out.envelopes[1].1,
        PayloadFields::GroupResend {
            reference: group_salt,
            group: h(group.0),
            body: h(&lost_group),
        },
        true,
    );
    assert!(matches!(
        got,
        Some(Received::Group {
            resent: Some(_),
            ..
        })
    ));
    same_stream(&run.rng, &probe);

    // 10. One more lost message: Bob's phone asks again, and the request is still pending.
    let never = b"Never arrives".to_vec();
    let (out, mut probe) = run.send_op("alice-phone", "send", |d, rng, now| {
        d.send(rng, now, &bk, &never)
    });
    let nonce = run.nonce(&mut probe, "alice-phone");
    for (i, (to, env)) in out.envelopes.iter().enumerate() {
        let sent_to = (to.account == ak).then_some(bk.to_bytes());
        run.pairwise(
            &mut probe,
            &format!("never-{}", i + 1),
            "alice-phone",
            env,
            direct(&nonce, sent_to, &never),
            to.account == ak,
        );
    }
    same_stream(&run.rng, &probe);
    run.retry(
        "retry-3",
        "bob-phone",
        "never-1",
        RetryReason::AuthenticationFailed,
        2,
        false,
    );

    // 11. Alice's primary renews her list (version 3); Bob writes once more under it.
    run.now = Timestamp(T_RENEW);
    let list_v3 = alice.renew(run.now).unwrap().clone();
    for name in ["alice-phone", "alice-laptop", "bob-phone"] {
        run.op(name, "update_device_list", |d, _, now| {
            d.update_device_list(now, &ak, list_v3.signed().clone())
        });
    }
    run.events.push(DeviceEvent::Publish {
        account: "alice".into(),
        version: 3,
    });
    let body = b"After the renewal".to_vec();
    let (out, mut probe) = run.send_op("bob-phone", "send", |d, rng, now| {
        d.send(rng, now, &ak, &body)
    });
    let nonce = run.nonce(&mut probe, "bob-phone");
    for (i, (_, env)) in out.envelopes.iter().enumerate() {
        run.pairwise(
            &mut probe,
            &format!("renewed-{}", i + 1),
            "bob-phone",
            env,
            direct(&nonce, None, &body),
            true,
        );
    }
    same_stream(&run.rng, &probe);

    // The file.
    let list_vector = |list: &ratchetry::devices::VerifiedDeviceList, names: &[&str]| {
        let bytes = list.to_bytes();
        let mut r = Rd(&bytes[66..]);
        let entries = names
            .iter()
            .map(|name| {
                let (device_id, identity, linked_at) = (r.u32(), r.arr::<32>(), r.u64());
                let expires_at = r.opt(|r| r.u64());
                EntryVector {
                    device: name.to_string(),
                    device_id,
                    identity_public: h(identity),
                    linked_at,
                    expires_at,
                    binding: h(r.take(64)),
                }
            })
            .collect();
        let policy = list.policy().expect("this build signs its lists' policy");
        ListVector {
            version: list.version(),
            issued_at: list.issued_at().0,
            max_companions: policy.max_companions,
            companion_validity_ms: policy.companion_validity_ms,
            entries,
            bytes: h(&bytes),
            digest: h(list.digest()),
        }
    };
    let alice_names = ["alice-phone", "alice-laptop"];
    let file = DevicesFile {
        description: "Two accounts: Alice (phone, the primary, and a laptop linked with the four \
                      linking messages) and Bob (phone); their signed device lists (every entry \
                      with its binding), the safety number, and a fanout run between the three \
                      devices with every payload kind (direct, own copy, sender key, withheld, \
                      call key, history offer, direct resend, group resend), group envelopes, \
                      three retry requests, and a list renewal. Every secret and every draw is \
                      listed. Schema: test-vectors/README.md."
            .into(),
        generator: GENERATOR.into(),
        rng_seed: h(rng_seed),
        accounts: vec![
            AccountVector {
                name: "alice".into(),
                account_seed: h(alice_seed),
                account_public: h(ak.to_bytes()),
                primary_new_now: t0.0,
                lists: vec![
                    list_vector(&list_v1, &alice_names[..1]),
                    list_vector(&list_v2, &alice_names),
                    list_vector(&list_v3, &alice_names),
                ],
                primary_operations: ["invite", "approve", "confirm", "renew"]
                    .map(String::from)
                    .to_vec(),
                primary_state: h(&*alice.to_bytes()),
            },
            AccountVector {
                name: "bob".into(),
                account_seed: h(bob_seed),
                account_public: h(bk.to_bytes()),
                primary_new_now: t0.0,
                lists: vec![list_vector(bob.device_list(), &["bob-phone"])],
                primary_operations: Vec::new(),
                primary_state: h(&*bob.to_bytes()),
            },
        ],
        devices: device_vectors,
        linking: LinkingVector {
            invite_now: t0.0,
            invitation_nonce: h(invitation_nonce),
            invitation: h(invitation.to_bytes()),
            link_request: h(link_request.to_bytes()),
            approve_now: t1.0,
            link_approval: h(approval.to_bytes()),
            link_confirmation: h(confirmation.to_bytes()),
        },
        safety_number: SafetyVector {
            first_fingerprint: h(&safety.scannable()[1..33]),
            second_fingerprint: h(&safety.scannable()[33..]),
            digits: String::from_utf8(safety.digits().to_vec()).unwrap(),
            scannable: h(safety.scannable()),
        },
        groups: [("group", group.0), ("other group", other_group.0)]
            .into_iter()
            .map(|(n, g)| (n.to_string(), h(g)))
            .collect(),
        events: run.events,
    };
    let alice_phone = run.devices["alice-phone"].to_bytes();
    BobPhone {
        device: run.devices.remove("bob-phone").unwrap(),
        alice_answers: whole_state_records(&alice_phone)
            .into_iter()
            .filter(|(k, _)| k[0] == 0x17)
            .collect(),
        file,
        reads: run.bob_reads,
        operations: run.bob_operations,
        sent: run.sent,
    }
}

fn devices_file() -> DevicesFile {
    devices_run().file
}

/// 15.3 and 16's windows (section 12 defaults).
const COMPANION_VALIDITY_MS: u64 = 14 * 24 * 60 * 60 * 1000;
const INVITATION_VALIDITY_MS: u64 = 10 * 60 * 1000;

/// The spec model of the whole fanout run: every device's prekeys and sessions (18.3: up to 3
/// per remote device, current first), sender keys, and the lists held.
#[derive(Default)]
struct FanoutModel {
    prekeys: BTreeMap<String, SpecPrekeys>,
    account_of: BTreeMap<String, String>,
    addresses: BTreeMap<String, Vec<u8>>,
    sessions: BTreeMap<(String, String), Vec<Spec>>,
    owners: BTreeMap<(String, Vec<u8>), SpecOwner>,
    inbound: BTreeMap<(String, String, Vec<u8>), SpecInbound>,
    lists: BTreeMap<(String, u64), Vec<u8>>,
    held: BTreeMap<String, u64>,
    envelopes: BTreeMap<String, Vec<u8>>,
}

impl FanoutModel {
    fn identity_seed(&self, device: &str) -> [u8; 32] {
        self.prekeys[device].identity_seed
    }

    fn list_digest(&self, account: &str, version: u64) -> [u8; 32] {
        sha256(&[&self.lists[&(account.to_string(), version)]])
    }

    /// 18.5: a pairwise message received by `to` from `from`: a pre-key message continues a
    /// held session or starts one; a ratchet message is tried with each held session, current
    /// first. The session used becomes current.
    fn receive(&mut self, to: &str, from: &str, message: &[u8], context: &[u8]) -> Vec<u8> {
        let keys = self.prekeys[to].clone();
        let set = self.sessions.entry((to.into(), from.into())).or_default();
        let held = if message[1] == 0x03 {
            set.iter().position(|s| s.continues(message).is_some())
        } else {
            (0..set.len()).find(|&i| set[i].clone().receive(message, context).is_some())
        };
        match held {
            Some(i) => {
                let mut s = set.remove(i);
                let pt = s.receive_any(message, context).unwrap();
                set.insert(0, s);
                pt
            }
            None => {
                assert_eq!(message[1], 0x03, "no session opens it");
                let (s, pt) = Spec::respond(&keys, message, context);
                set.insert(0, s);
                set.truncate(3);
                pt
            }
        }
    }

    /// The owner's sender key of `device` for `group`, and the receivers' keys it gave.
    fn sender_of(&self, device: &str, group: &[u8]) -> &SpecOwner {
        &self.owners[&(device.to_string(), group.to_vec())]
    }
}

/// The salt that names an envelope to its sender (18.4, 18.6): its ratchet header's salt, or
/// its group message's.
fn envelope_salt(envelope: &[u8]) -> Vec<u8> {
    match envelope[2] {
        0x01 => ratchet_part(&envelope[99..])[42..58].to_vec(),
        0x02 => envelope[47 + 42..47 + 58].to_vec(),
        other => panic!("envelope {other}"),
    }
}

#[test]
fn device_vectors() {
    let f = generated_and_committed("devices.json", &devices_file());
    let mut m = FanoutModel::default();
    let aks: BTreeMap<String, [u8; 32]> = f
        .accounts
        .iter()
        .map(|a| {
            let ak = ed_pub(&unh(&a.account_seed));
            assert_eq!(h(ak), a.account_public);
            (a.name.clone(), ak)
        })
        .collect();
    for d in &f.devices {
        let seed: [u8; 32] = unh(&d.identity_seed);
        assert_eq!(h(ed_pub(&seed)), d.identity_public);
        let addr = address(&aks[&d.account], d.device_id);
        assert_eq!(h(&addr), d.address);
        let mut keys = SpecPrekeys {
            identity_seed: seed,
            ..Default::default()
        };
        keys.signed.insert(1, unh(&d.signed_prekey_secret));
        keys.kem.insert(1, unh(&d.last_resort_kem_seed));
        for k in &d.one_time_prekeys {
            keys.one_time.insert(k.id, unh(&k.secret));
        }
        for k in &d.one_time_kem_prekeys {
            keys.kem.insert(k.id, unh(&k.secret));
        }
        // 6.1: the upload of the one-time prekeys Device::new made.
        let mut upload = Enc::tag(2, 0x10).u32(d.one_time_prekeys.len() as u32);
        for k in &d.one_time_prekeys {
            upload = upload.u32(k.id).put(x25519_pub(keys.one_time[&k.id]));
        }
        upload = upload.u32(d.one_time_kem_prekeys.len() as u32);
        for k in &d.one_time_kem_prekeys {
            upload = upload
                .u32(k.id)
                .put(kem_public(&keys.kem[&k.id]))
                .put(keys.kem_signature(k.id));
        }
        assert_eq!(h(upload.done()), d.upload);
        m.prekeys.insert(d.name.clone(), keys);
        m.account_of.insert(d.name.clone(), d.account.clone());
        m.addresses.insert(d.name.clone(), addr);
    }

    // 15.1, 15.3: every list from its entries, signed by the account; version 1 is issued at
    // Primary::new's `now` and lists the primary alone; every later one renews the companions.
    for a in &f.accounts {
        let account_seed: [u8; 32] = unh(&a.account_seed);
        for (i, l) in a.lists.iter().enumerate() {
            assert_eq!(l.version, i as u64 + 1);
            let entries: Vec<_> = l
                .entries
                .iter()
                .map(|e| {
                    let seed = m.identity_seed(&e.device);
                    assert_eq!(h(ed_pub(&seed)), e.identity_public);
                    assert_eq!(
                        h(sign(&seed, &[L_DEVICE_BINDING, &aks[&a.name]])),
                        e.binding
                    );
                    (e.device_id, seed, e.linked_at, e.expires_at)
                })
                .collect();
            // 15.3: every list carries the policy the primary was made with (the defaults).
            assert_eq!(
                (l.max_companions, l.companion_validity_ms),
                (4, COMPANION_VALIDITY_MS)
            );
            let policy = (l.max_companions, l.companion_validity_ms);
            let bytes = spec_device_list(&account_seed, l.version, l.issued_at, policy, &entries);
            assert_eq!(h(&bytes), l.bytes);
            assert_eq!(h(sha256(&[&bytes])), l.digest);
            let (primary, companions) = l.entries.split_first().unwrap();
            assert_eq!((primary.device_id, primary.expires_at), (1, None));
            assert_eq!(primary.linked_at, a.primary_new_now);
            if l.version == 1 {
                assert_eq!((l.issued_at, l.entries.len()), (a.primary_new_now, 1));
            }
            for c in companions {
                assert_eq!(c.expires_at, Some(l.issued_at + COMPANION_VALIDITY_MS));
            }
            m.lists.insert((a.name.clone(), l.version), bytes);
        }
        // 15.3: the primary's state at the end: next id and version after the newest list, no
        // pending invitation or approval, the confirmed companions, the epoch, and the tag of
        // the last unit taken (none in this run: 16 zero bytes).
        let newest = a.lists.last().unwrap();
        let companions: Vec<u32> = newest.entries[1..].iter().map(|e| e.device_id).collect();
        let next_device = newest.entries.iter().map(|e| e.device_id).max().unwrap() + 1;
        let mut state = Enc::tag(3, 0x86)
            .put(account_seed)
            .u32(4)
            .u64(COMPANION_VALIDITY_MS)
            .u64(INVITATION_VALIDITY_MS)
            .u32(next_device)
            .u64(newest.version + 1)
            .blob(unhex(&newest.bytes))
            .u32(0)
            .u32(0)
            .u32(companions.len() as u32);
        for c in companions {
            state = state.u32(c);
        }
        // SPEC NOTE: 15.3 says the epoch "grows with every change"; the code adds one per
        // operation that changed the primary.
        let state = state
            .u64(a.primary_operations.len() as u64)
            .flag(false)
            .put([0; 16]);
        assert_eq!(
            h(state.done()),
            a.primary_state,
            "{}'s primary state",
            a.name
        );
    }

    // 16: the linking messages of Alice's laptop.
    let ak = aks["alice"];
    let laptop = m.identity_seed("alice-laptop");
    let link = &f.linking;
    let nonce = unhex(&link.invitation_nonce);
    let invitation = Enc::tag(2, 0x07)
        .put(ak)
        .put(&nonce)
        .u64(link.invite_now + INVITATION_VALIDITY_MS)
        .done();
    assert_eq!(h(&invitation), link.invitation);
    let laptop_ik = ed_pub(&laptop);
    let proof = raw::hmac_sha256(&nonce, &[L_LINK_REQUEST, &ak[..], &laptop_ik[..]].concat());
    let request = Enc::tag(2, 0x08)
        .put(ak)
        .put(laptop_ik)
        .put(sign(&laptop, &[L_DEVICE_BINDING, &ak]))
        .put(proof)
        .put(sign(&laptop, &[L_LINK_REQUEST, &ak, &laptop_ik, &proof]))
        .done();
    assert_eq!(h(&request), link.link_request);
    let v2 = &m.lists[&("alice".to_string(), 2)];
    assert_eq!(
        h(Enc::tag(2, 0x09).u32(2).put(v2).done()),
        link.link_approval
    );
    let alice_v2 = &f.accounts[0].lists[1];
    assert_eq!(
        (alice_v2.issued_at, alice_v2.entries[1].linked_at),
        (link.approve_now, link.approve_now)
    );
    let digest = sha256(&[v2]);
    let confirmation = Enc::tag(2, 0x0a)
        .put(ak)
        .u32(2)
        .put(digest)
        .put(sign(
            &laptop,
            &[L_LINK_CONFIRMATION, &ak, &2u32.to_be_bytes(), &digest],
        ))
        .done();
    assert_eq!(h(&confirmation), link.link_confirmation);

    // 17: the safety number of Alice and Bob.
    let (mut first, mut second) = (aks["alice"], aks["bob"]);
    if second < first {
        std::mem::swap(&mut first, &mut second);
    }
    let (f1, f2) = (safety_fingerprint(&first), safety_fingerprint(&second));
    let s = &f.safety_number;
    assert_eq!(
        (h(f1), h(f2)),
        (s.first_fingerprint.clone(), s.second_fingerprint.clone())
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
    assert_eq!(digits, s.digits);
    assert_eq!(h([&[1u8][..], &f1, &f2].concat()), s.scannable);

    // 18: the run, event by event.
    let mut calls = Vec::new();
    let mut offers = Vec::new();
    let mut retries: Vec<&RetryEvent> = Vec::new();
    let mut kinds = std::collections::BTreeSet::new();
    let mut nonces: Vec<(String, String)> = Vec::new();
    for event in &f.events {
        match event {
            DeviceEvent::Publish { account, version } => {
                m.held.insert(account.clone(), *version);
            }
            DeviceEvent::Session(e) => {
                let bundle = m.prekeys[&e.to].bundle(1, e.one_time_prekey_id, e.kem_prekey_id);
                assert_eq!(h(&bundle), e.bundle);
                let s = Spec::initiate(
                    &m.identity_seed(&e.from),
                    &bundle,
                    unh(&e.ephemeral_secret),
                    unh(&e.kem_message),
                    unh(&e.ratchet_secret),
                );
                let set = m
                    .sessions
                    .entry((e.from.clone(), e.to.clone()))
                    .or_default();
                set.insert(0, s);
                set.truncate(3);
            }
            DeviceEvent::SenderKey(e) => {
                let key = (e.device.clone(), unhex(&e.group));
                let previous = m.owners.get(&key).map(|o| o.key_id);
                let mut owner = SpecOwner {
                    group: unh(&e.group),
                    identity: ed_pub(&m.identity_seed(&e.device)),
                    context: m.addresses[&e.device].clone(),
                    key_id: 0,
                    iteration: 0,
                    ck: [0; 32],
                    seed: [0; 32],
                };
                owner.generation(
                    unh(&e.chain_key),
                    unh(&e.signing_seed),
                    unh(&e.key_id_draw),
                    previous,
                );
                assert_eq!(owner.key_id, e.key_id);
                m.owners.insert(key, owner);
            }
            DeviceEvent::Call(e) => {
                let mut participants: Vec<Vec<u8>> =
                    e.participants.iter().map(|p| unhex(p)).collect();
                participants.sort();
                assert!(participants.contains(&m.addresses[&e.device]));
                let call_id: [u8; 16] = unh(&e.call_id);
                let msg = spec_call_key(
                    &call_id,
                    e.kind,
                    0,
                    &unh(&e.secret),
                    &m.addresses[&e.device],
                    &participants,
                );
                assert_eq!(h(&msg), e.call_key);
                calls.push(e.call_key.clone());
            }
            DeviceEvent::Nonce { device, nonce } => nonces.push((device.clone(), nonce.clone())),
            DeviceEvent::History(e) => {
                let (_, offer) = spec_history(unh(&e.secret), &history_plaintext(e.length), b"");
                assert_eq!(h(offer), e.offer);
                offers.push(e.offer.clone());
            }
            DeviceEvent::Pairwise(e) => {
                let (from_account, to_account) = (&m.account_of[&e.from], &m.account_of[&e.to]);
                // 18.2: what the payload's fields must be, by what came before.
                match &e.payload {
                    PayloadFields::Direct { sent_to, nonce, .. } => {
                        // The sender's own account's copies carry the conversation's account.
                        assert_eq!(sent_to.is_some(), from_account == to_account, "{}", e.label);
                        // Every copy carries the nonce its send drew last.
                        let drawn = nonces.iter().rev().find(|(d, _)| *d == e.from);
                        assert_eq!(drawn.map(|(_, n)| n), Some(nonce), "{}", e.label);
                    }
                    PayloadFields::Distribution { group, .. } => {
                        let owner = m.sender_of(&e.from, &unhex(group));
                        assert_eq!(
                            unhex(&e.payload_bytes),
                            [&[2u8, 0x0c, 2][..], &owner.distribution()].concat(),
                            "{}: the owner's current key",
                            e.label
                        );
                    }
                    PayloadFields::Withheld { .. } => {}
                    PayloadFields::CallKey { call_key } => assert!(calls.contains(call_key)),
                    PayloadFields::HistoryOffer {
                        offered_at,
                        offer,
                        groups,
                    } => {
                        assert_eq!(from_account, to_account);
                        // The README: the run has one clock.
                        assert_eq!(*offered_at, f.linking.approve_now);
                        assert!(offers.contains(offer));
                        // The README: both accounts are members of both groups, so the
                        // sender's membership is every group, ascending, with the other
                        // account.
                        let other = aks
                            .iter()
                            .find(|(name, _)| *name != from_account)
                            .map(|(_, ak)| h(ak))
                            .unwrap();
                        let mut ids: Vec<&String> = f.groups.values().collect();
                        ids.sort();
                        let expected: Vec<(String, Vec<String>)> = ids
                            .into_iter()
                            .map(|g| (g.clone(), vec![other.clone()]))
                            .collect();
                        let got: Vec<(String, Vec<String>)> = groups
                            .iter()
                            .map(|g| (g.group.clone(), g.members.clone()))
                            .collect();
                        assert_eq!(got, expected, "{}: the membership", e.label);
                    }
                    PayloadFields::DirectResend { reference, .. }
                    | PayloadFields::GroupResend { reference, .. } => {
                        let asked = retries
                            .iter()
                            .any(|r| r.from == e.to && r.to == e.from && r.reference == *reference);
                        assert!(asked, "{}: answers a retry request", e.label);
                    }
                }
                kinds.insert(unhex(&e.payload_bytes)[2]);
                let payload = payload_bytes(&e.payload);
                assert_eq!(h(&payload), e.payload_bytes);
                // 18.1: the header, bound as context.
                assert_eq!(
                    (e.sender_list_version, e.recipient_list_version),
                    (m.held[from_account], m.held[to_account]),
                    "{}: the lists held",
                    e.label
                );
                let lists_digest = &sha256(&[
                    L_LISTS_DIGEST,
                    &m.list_digest(from_account, e.sender_list_version),
                    &m.list_digest(to_account, e.recipient_list_version),
                ])[..8];
                assert_eq!(h(lists_digest), e.lists_digest);
                let header = Enc::tag(2, 0x0b)
                    .u8(1)
                    .put(&m.addresses[&e.from])
                    .put(&m.addresses[&e.to])
                    .u64(e.sender_list_version)
                    .u64(e.recipient_list_version)
                    .put(lists_digest)
                    .done();
                assert_eq!(h(&header), e.header);
                let session = &mut m.sessions.get_mut(&(e.from.clone(), e.to.clone())).unwrap()[0];
                let new_secret = e.new_ratchet_secret.as_deref().map(unh);
                let message = session.send(new_secret, unh(&e.salt), &payload, &header);
                let envelope = [header.clone(), message.clone()].concat();
                assert_eq!(h(&envelope), e.envelope, "{}", e.label);
                assert_eq!(h(envelope_id(&envelope)), e.envelope_id);
                assert_eq!(
                    pairwise_message_id(&e.payload, &m.addresses[&e.from], &m.addresses[&e.to]),
                    e.message_id,
                    "{}: message id",
                    e.label
                );
                m.envelopes.insert(e.label.clone(), envelope);
                if e.delivered {
                    let opened = m.receive(&e.to, &e.from, &message, &header);
                    assert_eq!(opened, payload, "{}", e.label);
                    if let PayloadFields::Distribution { group, .. } = &e.payload {
                        let key = (e.to.clone(), e.from.clone(), unhex(group));
                        let sender = (
                            ed_pub(&m.identity_seed(&e.from)),
                            m.addresses[&e.from].clone(),
                        );
                        m.inbound
                            .entry(key)
                            .or_insert_with(|| SpecInbound {
                                group: unh(group),
                                identity: sender.0,
                                context: sender.1,
                                generations: Vec::new(),
                            })
                            .process(&payload[3..]);
                    }
                }
            }
            DeviceEvent::Group(e) => {
                let group = unhex(&e.group);
                let owner = m.owners.get_mut(&(e.from.clone(), group.clone())).unwrap();
                assert_eq!((owner.key_id, owner.iteration), (e.key_id, e.iteration));
                let from_account = &m.account_of[&e.from];
                assert_eq!(e.sender_list_version, m.held[from_account]);
                // 18.1: the envelope header is the context the group message's signature binds.
                let header = Enc::tag(2, 0x0b)
                    .u8(2)
                    .put(&m.addresses[&e.from])
                    .u64(e.sender_list_version)
                    .done();
                let message = owner.encrypt(unh(&e.salt), &unhex(&e.body), &header);
                let envelope = [&header[..], &message].concat();
                assert_eq!(h(&envelope), e.envelope, "{}", e.label);
                assert_eq!(h(envelope_id(&envelope)), e.envelope_id);
                let id = spec_message_id(2, &m.addresses[&e.from], &group, &unh::<16>(&e.salt));
                assert_eq!(h(id), e.message_id, "{}: message id", e.label);
                // 18.5: every member device but the sender, in address order (both accounts are
                // members of the group).
                let mut members: Vec<&String> =
                    m.addresses.keys().filter(|d| **d != e.from).collect();
                members.sort_by_key(|d| m.addresses[*d].clone());
                assert_eq!(e.recipients.iter().collect::<Vec<_>>(), members);
                for to in &e.delivered_to {
                    let key = (to.clone(), e.from.clone(), group.clone());
                    let opened = m.inbound.get_mut(&key).unwrap().decrypt(&message, &header);
                    assert_eq!(opened.map(h), Some(e.body.clone()), "{}", e.label);
                }
                m.envelopes.insert(e.label.clone(), envelope);
            }
            DeviceEvent::Retry(e) => {
                let keys = m.prekeys.get_mut(&e.from).unwrap();
                keys.one_time
                    .insert(e.one_time_prekey_id, unh(&e.one_time_prekey_secret));
                keys.kem.insert(e.kem_prekey_id, unh(&e.kem_seed));
                let bundle = keys.bundle(1, Some(e.one_time_prekey_id), e.kem_prekey_id);
                assert_eq!(h(&bundle), e.bundle);
                let failed = &m.envelopes[&e.failed];
                assert_eq!(
                    h(envelope_salt(failed)),
                    e.reference,
                    "{}: names what failed",
                    e.label
                );
                let body = Enc::tag(2, 0x0b)
                    .u8(3)
                    .put(&m.addresses[&e.from])
                    .put(&m.addresses[&e.to])
                    .put(unhex(&e.reference))
                    .u8(e.reason)
                    .u8(e.attempt)
                    .blob(&bundle)
                    .done();
                let signature = sign(&m.identity_seed(&e.from), &[L_RETRY_REQUEST, &body]);
                assert_eq!(h(signature), e.signature);
                let envelope = [body, signature.to_vec()].concat();
                assert_eq!(h(&envelope), e.envelope, "{}", e.label);
                assert_eq!(h(envelope_id(&envelope)), e.envelope_id);
                m.envelopes.insert(e.label.clone(), envelope);
                retries.push(e);
            }
        }
    }
    // 18.5's target orders: a direct message goes to the recipient account's devices by id,
    // then the sender's own; sender keys go out in address order. SPEC NOTE: the code also
    // seals call keys, withheld notices and history offers in address order (11 refers to 18.5,
    // which gives no order for them).
    let mut sends: BTreeMap<&str, Vec<&PairwiseEvent>> = BTreeMap::new();
    for e in &f.events {
        if let DeviceEvent::Pairwise(p) = e {
            match p.label.rsplit_once('-') {
                Some((stem, n)) if n.parse::<u32>().is_ok() => {
                    sends.entry(stem).or_default().push(p)
                }
                _ => {}
            }
        }
    }
    for (stem, events) in &sends {
        let order: Vec<Vec<u8>> = match &events[0].payload {
            PayloadFields::Direct { sent_to, .. } if sent_to.is_none() => {
                let conversation = &m.account_of[&events[0].to];
                events
                    .iter()
                    .map(|e| {
                        let a = &m.addresses[&e.to];
                        [
                            vec![u8::from(&m.account_of[&e.to] != conversation)],
                            a[32..].to_vec(),
                        ]
                        .concat()
                    })
                    .collect()
            }
            _ => events.iter().map(|e| m.addresses[&e.to].clone()).collect(),
        };
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "{stem}: target order"
        );
    }
    // Every payload kind of 18.2 appeared, and both resend kinds answered a request.
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        [1, 2, 4, 6, 7, 10, 11]
    );
    assert_eq!(retries.len(), 3);
}

// =============================================================================================
// records.json: one device's records, its whole-state bytes (19), and sealed state (22)

#[derive(Serialize, Deserialize)]
struct RecordsFile {
    description: String,
    generator: String,
    /// The device: Bob's phone at the end of devices.json's run.
    device: String,
    address: String,
    /// One vector per record kind (0x01 to 0x10 and 0x12; two sent messages, 1:1 and group), in
    /// key order. (Kind 0x11 is in `restored`.)
    records: Vec<RecordVector>,
    /// 19.4: every record of the device, in key order.
    record_count: usize,
    whole_state: String,
    sealed: SealedVector,
    /// 19.1 kind 0x11: the records of the same device restored from `whole_state` as from a
    /// backup at `restored_at` hold this one more record.
    restored: RestoredVector,
    /// 19.1 kind 0x15: the record the same device writes when it forgets the account of the
    /// `device_list` record (its list's mark, 15.2).
    forgotten: ForgottenVector,
    /// 19.1 kinds 0x16 and 0x18: the same device's records as written before those kinds with
    /// the meta record's `groups by app` 0 load with every group offered, and the load writes
    /// the marks and the newest offer's time, 0.
    offered: OfferedVector,
    /// 19.1 kind 0x17: the answers records of Alice's phone at the end of devices.json's run.
    answered: AnsweredVector,
    /// 15.4: a primary's records.
    primary: PrimaryRecordsVector,
}

/// 15.4: a primary's state bytes (15.3), its records as loaded from them, and the unit one
/// invitation then writes.
#[derive(Serialize, Deserialize)]
struct PrimaryRecordsVector {
    /// `primary_state`: a confirmed companion, one awaiting confirmation, four invitations.
    state: String,
    /// Every record, in key order: the unit that loading the state leaves (it replaces all).
    records: Vec<KeyValue>,
    /// That unit's tag (random), which its meta record holds.
    tag: String,
    invite: PrimaryInviteVector,
    /// 15.3: the same state restored from a backup and resynced with its own list at each
    /// `now`: early clocks take the constant skips, a real one the time's floor.
    resync: Vec<PrimaryResyncVector>,
}

/// `Primary::restore_from_backup(state)` then `resync(now, the state's list)`: the list it
/// signs, and its state bytes after (their tag is the state's: no unit was taken).
#[derive(Serialize, Deserialize)]
struct PrimaryResyncVector {
    now: u64,
    signed: String,
    state: String,
}

/// One record of a unit: its value, or `None` for a deletion.
#[derive(Serialize, Deserialize, PartialEq, Eq, Debug)]
struct KeyValue {
    key: String,
    value: Option<String>,
}

/// Invitation issued at `now` with `nonce` (the invitation's bytes, 16), and the unit it writes.
#[derive(Serialize, Deserialize)]
struct PrimaryInviteVector {
    now: u64,
    invitation: String,
    unit: Vec<KeyValue>,
    /// The unit's tag, which its meta record holds.
    tag: String,
}

#[derive(Serialize, Deserialize)]
struct MintedIds {
    one_time_prekey_id: Option<u32>,
    kem_prekey_id: Option<u32>,
}

#[derive(Serialize, Deserialize)]
struct ForgottenVector {
    account: String,
    key: String,
    value: String,
}

#[derive(Serialize, Deserialize)]
struct AnsweredVector {
    /// The device: it answered `retry` (a group message's retry request) in the run.
    device: String,
    retry: String,
    /// Every `0x17` record of the device, in key order.
    records: Vec<KeyValue>,
}

#[derive(Serialize, Deserialize)]
struct OfferedVector {
    /// The meta record's value with `groups by app` 0 (its byte 20), in place of the one in
    /// `whole_state`, and no `0x16` record.
    meta: String,
    /// The `0x16` records and the `0x18` record the load's unit writes, in key order.
    marks: Vec<KeyValue>,
}

#[derive(Serialize, Deserialize)]
struct RestoredVector {
    restored_at: u64,
    key: String,
    value: String,
    /// 19.4: the ids each prekey counter skips, and the records the restore rewrites with them:
    /// the prekeys record (its counters moved on) and the meta record (the epoch, the send id).
    prekey_skip: u32,
    prekeys: String,
    meta: String,
    /// The tag the restore's unit drew (it replaces all), which its meta record holds.
    tag: String,
    /// Every sessions record (0x08) the restore left, in key order: each session's sending
    /// chain renewed, those awaiting a first reply dropped, the count marked unconfirmed.
    sessions: Vec<KeyValue>,
}

#[derive(Serialize, Deserialize)]
struct RecordVector {
    kind: u8,
    /// What produced the record, by field.
    inputs: RecordInputs,
    key: String,
    value: String,
}

#[derive(Serialize, Deserialize)]
struct SignedPreKeyInputs {
    id: u32,
    secret: String,
    created_at: u64,
}

#[derive(Serialize, Deserialize)]
struct KemPreKeyInputs {
    id: u32,
    seed: String,
    created_at: u64,
    uses: u32,
}

#[derive(Serialize, Deserialize)]
struct HistoryEntryInputs {
    version: u64,
    /// The earlier list itself: its digest is what the record keeps.
    list: String,
}

#[derive(Serialize, Deserialize)]
struct RecipientInputs {
    address: String,
    identity_public: String,
    reference: String,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
enum RecordInputs {
    Own {
        session_config: [u32; 2],
        group_config: [u32; 3],
        /// `DeviceConfig::lists.max_companions`: the ceiling on any account's list (15.2).
        lists_max_companions: u32,
        prekey_config: [u32; 5],
        retry_window_ms: u64,
        address: String,
        identity_seed: String,
    },
    Meta {
        /// The epoch counts the operations that changed the device since Device::new.
        operations: Vec<String>,
        epoch: u64,
        next_read_slot: u32,
        next_send_id: u64,
        /// The tag of the last unit taken (19): random, so given.
        tag: String,
    },
    Prekeys {
        identity_seed: String,
        prekey_config: [u32; 5],
        next_signed_prekey_id: u32,
        next_one_time_prekey_id: u32,
        signed_prekey: SignedPreKeyInputs,
        retired_signed_prekeys: Vec<SignedPreKeyInputs>,
        next_kem_prekey_id: u32,
        last_resort_kem_prekey: KemPreKeyInputs,
        retired_last_resort_kem_prekeys: Vec<KemPreKeyInputs>,
    },
    OneTimePrekey {
        id: u32,
        secret: String,
    },
    OneTimeKemPrekey {
        identity_seed: String,
        id: u32,
        seed: String,
        created_at: u64,
    },
    RememberedBaseKey {
        signed_prekey_id: u32,
        /// The initiator's `ek`: the base key is X25519_PUB(ek).
        ephemeral_secret: String,
    },
    DeviceList {
        account: String,
        list: String,
        history: Vec<HistoryEntryInputs>,
    },
    Sessions {
        address: String,
        /// Session states (10.3), current first.
        sessions: Vec<String>,
    },
    GroupMembers {
        group: String,
        members: Vec<String>,
    },
    OwnSenderKey {
        group: String,
        identity_seed: String,
        /// The sender context: this device's address.
        context: String,
        chain_key: String,
        signing_seed: String,
        key_id_draw: String,
        messages_sent: u32,
        rotation_pending: bool,
    },
    LedgerEntry {
        group: String,
        key_id: u32,
        address: String,
        identity_public: String,
        first_iteration: u32,
    },
    InboundSenderKey {
        address: String,
        group: String,
        sender_identity_public: String,
        /// The sender's draws for the generation (14.1), the iterations its distributions
        /// carried, in arrival order, and the group envelopes read (18.1).
        chain_key: String,
        signing_seed: String,
        key_id_draw: String,
        distributions: Vec<u32>,
        envelopes: Vec<String>,
    },
    WithheldNotice {
        address: String,
        group: String,
        key_id: u32,
    },
    ReadSlot {
        slot: u32,
        envelope: String,
    },
    SentGroupMessage {
        send_id: u64,
        sent_at: u64,
        body: String,
        group: String,
        key_id: u32,
        iteration: u32,
        reference: String,
    },
    SentDirectMessage {
        send_id: u64,
        sent_at: u64,
        body: String,
        conversation: String,
        /// The message nonce its copies carried (18.2).
        nonce: String,
        recipients: Vec<RecipientInputs>,
    },
    PendingRetry {
        reference: String,
        sender: String,
        group: Option<String>,
        failed_envelope: String,
        attempts: u8,
        asked_at: u64,
        /// Answered, or the genuine copy read.
        done: bool,
        /// The one-time prekey and one-time ML-KEM prekey each request minted, in order.
        minted: Vec<MintedIds>,
    },
    ReplacedId {
        /// The genuine envelope whose message a resend replaced (the key is its id).
        envelope: String,
        /// The device whose resend replaced it.
        sender: String,
        read_at: u64,
    },
}

#[derive(Serialize, Deserialize)]
struct SealedVector {
    rng_seed: String,
    /// The app's storage key (the generator's first draw) and the nonce (its next).
    key: String,
    slot: String,
    sequence: u64,
    nonce: String,
    /// The state sealed: the own record's value.
    state: String,
    associated_data: String,
    sealed: String,
}

fn records_file() -> RecordsFile {
    use ratchetry::persist::{StorageKey, seal_state};
    let BobPhone {
        mut device,
        alice_answers,
        file,
        reads,
        operations,
        sent,
    } = devices_run();
    // Its app wrote the run's last unit: the meta record holds that unit's tag.
    let tag = device
        .take_changes(&mut SeededRng::from_label("records.json: unit tags"))
        .tag();
    let bob = file.devices.iter().find(|d| d.name == "bob-phone").unwrap();
    let alice = &file.accounts[0];
    let addr_of = |name: &str| {
        file.devices
            .iter()
            .find(|d| d.name == name)
            .unwrap()
            .address
            .clone()
    };
    let (a1, a2) = (addr_of("alice-phone"), addr_of("alice-laptop"));
    let group = file.groups["group"].clone();
    let events = &file.events;
    let sender_key = |device: &str| {
        events
            .iter()
            .find_map(|e| match e {
                DeviceEvent::SenderKey(k) if k.device == device => Some(k),
                _ => None,
            })
            .unwrap()
    };
    let pairwise = |label: &str| {
        events
            .iter()
            .find_map(|e| match e {
                DeviceEvent::Pairwise(p) if p.label == label => Some(p),
                _ => None,
            })
            .unwrap()
    };
    let group_event = |label: &str| {
        events
            .iter()
            .find_map(|e| match e {
                DeviceEvent::Group(g) if g.label == label => Some(g),
                _ => None,
            })
            .unwrap()
    };
    let retry = events
        .iter()
        .find_map(|e| match e {
            DeviceEvent::Retry(r) if r.label == "retry-3" => Some(r),
            _ => None,
        })
        .unwrap();
    let alice_sessions: Vec<&SessionEvent> = events
        .iter()
        .filter_map(|e| match e {
            DeviceEvent::Session(s) if s.from == "alice-phone" && s.to == "bob-phone" => Some(s),
            _ => None,
        })
        .collect();
    let bob_key = sender_key("bob-phone");
    let alice_key = sender_key("alice-phone");
    let identity_of = |name: &str| {
        file.devices
            .iter()
            .find(|d| d.name == name)
            .unwrap()
            .identity_public
            .clone()
    };
    let prekey_config = [3, 1000, 100_000, 100, 10_000];

    let whole = device.to_bytes();
    // The records, as the whole state holds them (19.4).
    let mut r = Rd(&whole[2..]);
    let records: Vec<(Vec<u8>, Vec<u8>)> = (0..r.u32())
        .map(|_| (r.blob().to_vec(), r.blob().to_vec()))
        .collect();
    let find = |key: &[u8]| records.iter().find(|(k, _)| k == key).unwrap();
    let record_key = |kind: u8, rest: &[&[u8]]| [&[kind][..], &rest.concat()].concat();
    let mut vectors = Vec::new();
    let mut push = |kind: u8, key: Vec<u8>, inputs: RecordInputs| {
        let (key, value) = find(&key);
        vectors.push(RecordVector {
            kind,
            inputs,
            key: h(key),
            value: h(value),
        });
    };
    push(
        1,
        vec![1],
        RecordInputs::Own {
            session_config: [2000, 2000],
            group_config: [5000, 2000, 4],
            lists_max_companions: 16,
            prekey_config,
            retry_window_ms: 7 * 24 * 60 * 60 * 1000,
            address: bob.address.clone(),
            identity_seed: bob.identity_seed.clone(),
        },
    );
    assert_eq!(device.state_epoch(), operations.len() as u64);
    push(
        2,
        vec![2],
        RecordInputs::Meta {
            next_read_slot: read_slots(&operations),
            operations,
            epoch: device.state_epoch(),
            next_send_id: 3,
            tag: h(tag.to_bytes()),
        },
    );
    push(
        3,
        vec![3],
        RecordInputs::Prekeys {
            identity_seed: bob.identity_seed.clone(),
            prekey_config,
            next_signed_prekey_id: 2,
            next_one_time_prekey_id: 6,
            signed_prekey: SignedPreKeyInputs {
                id: 1,
                secret: bob.signed_prekey_secret.clone(),
                created_at: bob.created_at,
            },
            retired_signed_prekeys: Vec::new(),
            next_kem_prekey_id: 7,
            last_resort_kem_prekey: KemPreKeyInputs {
                id: 1,
                seed: bob.last_resort_kem_seed.clone(),
                created_at: bob.created_at,
                uses: 0,
            },
            retired_last_resort_kem_prekeys: Vec::new(),
        },
    );
    // One-time prekey 1 and ML-KEM prekey 2 started Alice's first session; 2 and 3 are left.
    push(
        4,
        record_key(4, &[&2u32.to_be_bytes()]),
        RecordInputs::OneTimePrekey {
            id: 2,
            secret: bob.one_time_prekeys[1].secret.clone(),
        },
    );
    push(
        5,
        record_key(5, &[&3u32.to_be_bytes()]),
        RecordInputs::OneTimeKemPrekey {
            identity_seed: bob.identity_seed.clone(),
            id: 3,
            seed: bob.one_time_kem_prekeys[1].secret.clone(),
            created_at: bob.created_at,
        },
    );
    let ek = &alice_sessions[0].ephemeral_secret;
    push(
        6,
        record_key(6, &[&1u32.to_be_bytes(), &x25519_pub(unh(ek))]),
        RecordInputs::RememberedBaseKey {
            signed_prekey_id: 1,
            ephemeral_secret: ek.clone(),
        },
    );
    push(
        7,
        record_key(7, &[&unhex(&alice.account_public)]),
        RecordInputs::DeviceList {
            account: alice.account_public.clone(),
            list: alice.lists[2].bytes.clone(),
            history: vec![HistoryEntryInputs {
                version: 2,
                list: alice.lists[1].bytes.clone(),
            }],
        },
    );
    let (_, sessions) = find(&record_key(8, &[&unhex(&a1)]));
    let mut r = Rd(sessions);
    let states = (0..r.u8()).map(|_| h(r.blob())).collect();
    push(
        8,
        record_key(8, &[&unhex(&a1)]),
        RecordInputs::Sessions {
            address: a1.clone(),
            sessions: states,
        },
    );
    push(
        9,
        record_key(9, &[&unhex(&group)]),
        RecordInputs::GroupMembers {
            group: group.clone(),
            members: vec![alice.account_public.clone()],
        },
    );
    push(
        0x0a,
        record_key(0x0a, &[&unhex(&group)]),
        RecordInputs::OwnSenderKey {
            group: group.clone(),
            identity_seed: bob.identity_seed.clone(),
            context: bob.address.clone(),
            chain_key: bob_key.chain_key.clone(),
            signing_seed: bob_key.signing_seed.clone(),
            key_id_draw: bob_key.key_id_draw.clone(),
            messages_sent: 1,
            rotation_pending: false,
        },
    );
    push(
        0x0b,
        record_key(
            0x0b,
            &[&unhex(&group), &bob_key.key_id.to_be_bytes(), &unhex(&a1)],
        ),
        RecordInputs::LedgerEntry {
            group: group.clone(),
            key_id: bob_key.key_id,
            address: a1.clone(),
            identity_public: identity_of("alice-phone"),
            first_iteration: 0,
        },
    );
    let group_1 = group_event("group-1");
    push(
        0x0c,
        record_key(0x0c, &[&unhex(&a1), &unhex(&group)]),
        RecordInputs::InboundSenderKey {
            address: a1.clone(),
            group: group.clone(),
            sender_identity_public: identity_of("alice-phone"),
            chain_key: alice_key.chain_key.clone(),
            signing_seed: alice_key.signing_seed.clone(),
            key_id_draw: alice_key.key_id_draw.clone(),
            distributions: vec![0, 2],
            envelopes: vec![group_1.envelope.clone()],
        },
    );
    let other = file.groups["other group"].clone();
    push(
        0x0d,
        record_key(0x0d, &[&unhex(&a1), &unhex(&other)]),
        RecordInputs::WithheldNotice {
            address: a1.clone(),
            group: other,
            // The generation the notice named.
            key_id: events
                .iter()
                .find_map(|e| match e {
                    DeviceEvent::Pairwise(PairwiseEvent {
                        payload: PayloadFields::Withheld { key_id, .. },
                        ..
                    }) => Some(*key_id),
                    _ => None,
                })
                .unwrap(),
        },
    );
    push(
        0x0e,
        record_key(0x0e, &[&0u32.to_be_bytes()]),
        RecordInputs::ReadSlot {
            slot: 0,
            envelope: h(&reads[0]),
        },
    );
    let group_2 = group_event("group-2");
    push(
        0x0f,
        record_key(0x0f, &[&0u64.to_be_bytes()]),
        RecordInputs::SentGroupMessage {
            send_id: 0,
            sent_at: T_LINK,
            body: group_2.body.clone(),
            group: group.clone(),
            key_id: bob_key.key_id,
            iteration: 0,
            reference: group_2.salt.clone(),
        },
    );
    let (hi_1, hi_2) = (pairwise("hi-1"), pairwise("hi-2"));
    let PayloadFields::Direct { body, nonce, .. } = &hi_1.payload else {
        unreachable!()
    };
    push(
        0x0f,
        record_key(0x0f, &[&1u64.to_be_bytes()]),
        RecordInputs::SentDirectMessage {
            send_id: 1,
            sent_at: T_LINK,
            body: body.clone(),
            conversation: alice.account_public.clone(),
            nonce: nonce.clone(),
            recipients: [(hi_1, &a1, "alice-phone"), (hi_2, &a2, "alice-laptop")]
                .into_iter()
                .map(|(p, a, name)| RecipientInputs {
                    address: a.clone(),
                    identity_public: identity_of(name),
                    reference: p.salt.clone(),
                })
                .collect(),
        },
    );
    push(
        0x10,
        record_key(0x10, &[&unhex(&a1), &unhex(&retry.reference)]),
        RecordInputs::PendingRetry {
            reference: retry.reference.clone(),
            sender: a1.clone(),
            group: None,
            failed_envelope: h(&sent["never-1"]),
            attempts: 1,
            asked_at: T_LINK,
            done: false,
            minted: vec![MintedIds {
                one_time_prekey_id: Some(retry.one_time_prekey_id),
                kem_prekey_id: Some(retry.kem_prekey_id),
            }],
        },
    );
    // 18.4: the message retry-1's direct resend replaced.
    let lost = sent["lost-1"].clone();
    push(
        0x12,
        record_key(0x12, &[&envelope_id(&lost)]),
        RecordInputs::ReplacedId {
            envelope: h(&lost),
            sender: a1.clone(),
            read_at: T_LINK,
        },
    );

    // 22: the own record's value sealed under its record key, at the device's epoch.
    let (rng_seed, mut rng) = seeded("ratchetry sealed state");
    let key = draw::<32>(&mut rng);
    let nonce = draw::<12>(&mut rng.clone());
    let (slot, state) = find(&[1]);
    let sequence = device.state_epoch();
    let sealed = seal_state(
        &mut rng,
        &StorageKey::from_bytes(key),
        slot,
        sequence,
        state,
    );
    RecordsFile {
        description: "Bob's phone at the end of devices.json's run, as records (PROTOCOL.md \
                      19): one record of every kind with the inputs that produced it, the \
                      device's whole-state bytes, and its own record sealed for storage \
                      (section 22). Schema: test-vectors/README.md."
            .into(),
        generator: GENERATOR.into(),
        device: "bob-phone".into(),
        address: bob.address.clone(),
        records: vectors,
        record_count: records.len(),
        whole_state: h(&*whole),
        sealed: SealedVector {
            rng_seed: h(rng_seed),
            key: h(key),
            slot: h(slot),
            sequence,
            nonce: h(nonce),
            state: h(state),
            associated_data: h(Enc::default()
                .put(L_SEALED_STATE)
                .u8(2)
                .u8(0x90)
                .u64(sequence)
                .blob(slot)
                .done()),
            sealed: h(&sealed),
        },
        primary: primary_records_vector(),
        restored: {
            let restored_at = 1_790_100_000_000;
            let unit = ratchetry::fanout::Device::from_bytes(&whole)
                .unwrap()
                .into_restored(Timestamp(restored_at))
                .take_changes(&mut SeededRng::from_label("records.json: restored tag"));
            let of = |kind: u8| {
                let r = unit.records().iter().find(|r| r.key()[0] == kind).unwrap();
                h(r.value().unwrap())
            };
            let r = unit.records().iter().find(|r| r.key()[0] == 0x11).unwrap();
            RestoredVector {
                restored_at,
                key: h(r.key()),
                value: h(r.value().unwrap()),
                prekey_skip: ratchetry::x3dh::restore_prekey_skip(Timestamp(restored_at)),
                prekeys: of(0x03),
                meta: of(0x02),
                tag: h(unit.tag().to_bytes()),
                sessions: unit
                    .records()
                    .iter()
                    .filter(|r| r.key()[0] == 0x08)
                    .map(|r| KeyValue {
                        key: h(r.key()),
                        value: r.value().map(h),
                    })
                    .collect(),
            }
        },
        forgotten: {
            let account = ratchetry::devices::AccountKey::from_bytes(
                &unhex(&alice.account_public).try_into().unwrap(),
            )
            .unwrap();
            let mut device = ratchetry::fanout::Device::from_bytes(&whole).unwrap();
            let tags = &mut SeededRng::from_label("records.json: forgotten tags");
            let _ = device.take_changes(tags);
            device.forget_account(&account);
            let unit = device.take_changes(tags);
            let r = unit.records().iter().find(|r| r.key()[0] == 0x15).unwrap();
            ForgottenVector {
                account: alice.account_public.clone(),
                key: h(r.key()),
                value: h(r.value().unwrap()),
            }
        },
        offered: {
            let tags = &mut SeededRng::from_label("records.json: offered tags");
            let mut records = whole_state_records(&whole);
            let meta = records.iter_mut().find(|(k, _)| k[..] == [0x02]).unwrap();
            meta.1[20] = 0;
            let meta = meta.1.clone();
            let mut old = ratchetry::fanout::Device::from_records(
                records.iter().map(|(k, v)| (k.as_slice(), v.as_slice())),
            )
            .unwrap();
            let unit = old.take_changes(tags);
            OfferedVector {
                meta: h(&meta),
                marks: unit
                    .records()
                    .iter()
                    .filter(|r| [0x16, 0x18].contains(&r.key()[0]))
                    .map(|r| KeyValue {
                        key: h(r.key()),
                        value: r.value().map(h),
                    })
                    .collect(),
            }
        },
        answered: AnsweredVector {
            device: "alice-phone".into(),
            retry: "retry-2".into(),
            records: alice_answers
                .iter()
                .map(|(k, v)| KeyValue {
                    key: h(k),
                    value: Some(h(v)),
                })
                .collect(),
        },
    }
}

fn key_values(unit: &ratchetry::devices::PrimaryChanges) -> Vec<KeyValue> {
    unit.records()
        .iter()
        .map(|r| KeyValue {
            key: h(r.key()),
            value: r.value().map(h),
        })
        .collect()
}

/// 15.4's vector: a primary linked twice (the second companion not confirmed) with four
/// invitations pending, loaded from its state bytes; then one more invitation.
fn primary_records_vector() -> PrimaryRecordsVector {
    use ratchetry::devices::{LinkRequest, ListLimits, Primary, PrimaryPolicy, complete_link};
    let rng = &mut SeededRng::from_label("records.json: primary");
    let now = Timestamp(1_790_000_000_000);
    let phone = IdentityKeyPair::generate(rng);
    let mut primary = Primary::new(rng, &phone, now, PrimaryPolicy::default());
    for confirm in [true, false] {
        let companion = IdentityKeyPair::generate(rng);
        let invitation = primary.invite(rng, now).unwrap();
        let approval = primary
            .approve(now, &LinkRequest::new(&companion, &invitation))
            .unwrap();
        let (_, confirmation) =
            complete_link(&companion, &invitation, &approval, &ListLimits::default()).unwrap();
        if confirm {
            primary.confirm(&confirmation).unwrap();
        }
    }
    for _ in 0..4 {
        primary.invite(rng, now).unwrap();
    }
    // A unit taken before the bytes: they hold its tag.
    let _ = primary.take_changes(&mut SeededRng::from_label(
        "records.json: primary state tag",
    ));
    let state = primary.to_bytes();
    let mut loaded = Primary::from_bytes(&state).unwrap();
    let tags = &mut SeededRng::from_label("records.json: primary tags");
    let whole = loaded.take_changes(tags);
    let later = now.plus_millis(60_000);
    let invitation = loaded.invite(rng, later).unwrap();
    let unit = loaded.take_changes(tags);
    let resync = [Timestamp(6_000), Timestamp(1_790_000_300_000)]
        .into_iter()
        .map(|now| {
            let mut restored = Primary::restore_from_backup(&state).unwrap();
            let list = restored.device_list().signed().clone();
            let signed = restored.resync(now, list).unwrap().to_bytes();
            PrimaryResyncVector {
                now: now.0,
                signed: h(signed),
                state: h(&*restored.to_bytes()),
            }
        })
        .collect();
    PrimaryRecordsVector {
        resync,
        state: h(&*state),
        records: key_values(&whole),
        tag: h(whole.tag().to_bytes()),
        invite: PrimaryInviteVector {
            now: later.0,
            invitation: h(invitation.to_bytes()),
            unit: key_values(&unit),
            tag: h(unit.tag().to_bytes()),
        },
    }
}

/// 10.2's signed_prekey and kem_prekey, from their inputs.
fn spec_signed_prekey(identity_seed: &[u8; 32], k: &SignedPreKeyInputs) -> Vec<u8> {
    let secret: [u8; 32] = unh(&k.secret);
    let public = x25519_pub(secret);
    Enc::default()
        .u32(k.id)
        .put(secret)
        .put(public)
        .put(sign(
            identity_seed,
            &[L_SIGNED_PREKEY, &k.id.to_be_bytes(), &public],
        ))
        .u64(k.created_at)
        .done()
}

fn spec_kem_prekey(identity_seed: &[u8; 32], k: &KemPreKeyInputs) -> Vec<u8> {
    let seed: [u8; 64] = unh(&k.seed);
    let public = kem_public(&seed);
    Enc::default()
        .u32(k.id)
        .put(seed)
        .put(sign(
            identity_seed,
            &[L_KEM_PREKEY, &k.id.to_be_bytes(), &public],
        ))
        .u64(k.created_at)
        .u32(k.uses)
        .done()
}

/// 19.1-19.3: a record's key and value from its inputs.
/// 19.3: a sent body's digest, the AES-256-GCM tag of an empty plaintext with the body as
/// associated data, under a key derived from the device's identity seed and a zero nonce.
fn body_digest(identity_seed: &[u8], body: &[u8]) -> Vec<u8> {
    let key: [u8; 32] = hkdf(&[0; 32], identity_seed, L_BODY_DIGEST_KEY);
    seal(&key, &[0; 12], body, b"")
}

/// A record's key and value from its inputs; `identity_seed` is the device's (its own
/// record's input), which keys its sent bodies' digests.
fn spec_record(inputs: &RecordInputs, identity_seed: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let key = |kind: u8, fields: &[&[u8]]| [&[kind][..], &fields.concat()].concat();
    let address_of = |a: &String| unhex(a);
    match inputs {
        RecordInputs::Own {
            session_config,
            group_config,
            lists_max_companions,
            prekey_config,
            retry_window_ms,
            address,
            identity_seed,
        } => {
            let mut e = Enc::default();
            for v in session_config.iter().chain(group_config) {
                e = e.u32(*v);
            }
            e = e.u32(*lists_max_companions);
            for v in prekey_config {
                e = e.u32(*v);
            }
            let value = e
                .u64(*retry_window_ms)
                .put(unhex(address))
                .put(unhex(identity_seed));
            (vec![1], value.done())
        }
        RecordInputs::Meta {
            operations,
            epoch,
            next_read_slot,
            next_send_id,
            tag,
        } => {
            // SPEC NOTE: 19 does not say how the epoch grows; the code adds one per operation
            // that changed the device.
            assert_eq!(*epoch, operations.len() as u64);
            assert_eq!(*next_read_slot, read_slots(operations) % 2000);
            let sends = operations.iter().filter(|o| o.starts_with("send")).count() as u64;
            assert_eq!(*next_send_id, sends);
            (
                vec![2],
                Enc::default()
                    .u64(*epoch)
                    .u32(*next_read_slot)
                    .u64(*next_send_id)
                    // 19.1's groups-by-app flag: set once the app set or forgot a group.
                    .u8(u8::from(
                        operations
                            .iter()
                            .any(|o| o == "set_group_members" || o == "forget_group"),
                    ))
                    .put(unhex(tag))
                    .done(),
            )
        }
        RecordInputs::Prekeys {
            identity_seed,
            prekey_config,
            next_signed_prekey_id,
            next_one_time_prekey_id,
            signed_prekey,
            retired_signed_prekeys,
            next_kem_prekey_id,
            last_resort_kem_prekey,
            retired_last_resort_kem_prekeys,
        } => {
            let seed: [u8; 32] = unh(identity_seed);
            let mut e = Enc::default();
            for v in prekey_config {
                e = e.u32(*v);
            }
            e = e
                .u32(*next_signed_prekey_id)
                .u32(*next_one_time_prekey_id)
                .put(spec_signed_prekey(&seed, signed_prekey))
                .u32(retired_signed_prekeys.len() as u32);
            for k in retired_signed_prekeys {
                e = e.put(spec_signed_prekey(&seed, k));
            }
            e = e
                .u32(*next_kem_prekey_id)
                .put(spec_kem_prekey(&seed, last_resort_kem_prekey))
                .u32(retired_last_resort_kem_prekeys.len() as u32);
            for k in retired_last_resort_kem_prekeys {
                e = e.put(spec_kem_prekey(&seed, k));
            }
            (vec![3], e.done())
        }
        RecordInputs::OneTimePrekey { id, secret } => {
            let secret: [u8; 32] = unh(secret);
            let value = Enc::default().u32(*id).put(secret).put(x25519_pub(secret));
            (key(4, &[&id.to_be_bytes()]), value.done())
        }
        RecordInputs::OneTimeKemPrekey {
            identity_seed,
            id,
            seed,
            created_at,
        } => {
            let k = KemPreKeyInputs {
                id: *id,
                seed: seed.clone(),
                created_at: *created_at,
                uses: 0,
            };
            (
                key(5, &[&id.to_be_bytes()]),
                spec_kem_prekey(&unh(identity_seed), &k),
            )
        }
        RecordInputs::RememberedBaseKey {
            signed_prekey_id,
            ephemeral_secret,
        } => {
            let base = x25519_pub(unh(ephemeral_secret));
            (
                key(6, &[&signed_prekey_id.to_be_bytes(), &base]),
                Vec::new(),
            )
        }
        RecordInputs::DeviceList {
            account,
            list,
            history,
        } => {
            // 19.1: the list's digest, H(list) (18.3), then the list.
            let mut e = Enc::default()
                .u8(1)
                .put(sha256(&[&unhex(list)]))
                .blob(unhex(list))
                .u32(history.len() as u32);
            for h in history {
                e = e.u64(h.version).put(sha256(&[&unhex(&h.list)]));
            }
            (key(7, &[&unhex(account)]), e.done())
        }
        RecordInputs::Sessions { address, sessions } => {
            let mut e = Enc::default().u8(sessions.len() as u8);
            for s in sessions {
                e = e.blob(unhex(s));
            }
            (key(8, &[&address_of(address)]), e.done())
        }
        RecordInputs::GroupMembers { group, members } => {
            let mut members: Vec<Vec<u8>> = members.iter().map(|m| unhex(m)).collect();
            members.sort();
            let mut e = Enc::default().u32(members.len() as u32);
            for m in members {
                e = e.put(m);
            }
            (key(9, &[&unhex(group)]), e.done())
        }
        RecordInputs::OwnSenderKey {
            group,
            identity_seed,
            context,
            chain_key,
            signing_seed,
            key_id_draw,
            messages_sent,
            rotation_pending,
        } => {
            let mut owner = SpecOwner {
                group: unh(group),
                identity: ed_pub(&unh(identity_seed)),
                context: unhex(context),
                key_id: 0,
                iteration: 0,
                ck: [0; 32],
                seed: [0; 32],
            };
            owner.generation(unh(chain_key), unh(signing_seed), unh(key_id_draw), None);
            for _ in 0..*messages_sent {
                owner.ck = kdf_ck(owner.ck).1;
                owner.iteration += 1;
            }
            let value = Enc::default()
                .blob(owner.state())
                .flag(*rotation_pending)
                .u8(1)
                .u32(owner.key_id)
                // Withheld from no device.
                .u32(0);
            (key(0x0a, &[&unhex(group)]), value.done())
        }
        RecordInputs::LedgerEntry {
            group,
            key_id,
            address,
            identity_public,
            first_iteration,
        } => (
            key(
                0x0b,
                &[&unhex(group), &key_id.to_be_bytes(), &address_of(address)],
            ),
            Enc::default()
                .put(unhex(identity_public))
                .u32(*first_iteration)
                .done(),
        ),
        RecordInputs::InboundSenderKey {
            address,
            group,
            sender_identity_public,
            chain_key,
            signing_seed,
            key_id_draw,
            distributions,
            envelopes,
        } => {
            let mut owner = SpecOwner {
                group: unh(group),
                identity: unh(sender_identity_public),
                context: address_of(address),
                key_id: 0,
                iteration: 0,
                ck: [0; 32],
                seed: [0; 32],
            };
            owner.generation(unh(chain_key), unh(signing_seed), unh(key_id_draw), None);
            let mut inbound = SpecInbound {
                group: owner.group,
                identity: owner.identity,
                context: owner.context.clone(),
                generations: Vec::new(),
            };
            for i in distributions {
                let mut at = owner.clone();
                for _ in 0..*i {
                    at.ck = kdf_ck(at.ck).1;
                    at.iteration += 1;
                }
                inbound.process(&at.distribution());
            }
            for e in envelopes {
                // A group envelope (18.1): its header is the context its message binds.
                let envelope = unhex(e);
                let (header, message) = envelope.split_at(47);
                inbound.decrypt(message, header).expect("opens");
            }
            (
                key(0x0c, &[&address_of(address), &unhex(group)]),
                inbound.state(),
            )
        }
        RecordInputs::WithheldNotice {
            address,
            group,
            key_id,
        } => (
            key(0x0d, &[&address_of(address), &unhex(group)]),
            key_id.to_be_bytes().to_vec(),
        ),
        RecordInputs::ReadSlot { slot, envelope } => (
            key(0x0e, &[&slot.to_be_bytes()]),
            envelope_id(&unhex(envelope)).to_vec(),
        ),
        RecordInputs::SentGroupMessage {
            send_id,
            sent_at,
            body,
            group,
            key_id,
            iteration,
            reference,
        } => {
            let value = Enc::default()
                .u64(*sent_at)
                .put(body_digest(identity_seed, &unhex(body)))
                .u8(7)
                .put(unhex(group))
                .u32(*key_id)
                .u32(*iteration)
                .put(unhex(reference));
            (key(0x0f, &[&send_id.to_be_bytes()]), value.done())
        }
        RecordInputs::SentDirectMessage {
            send_id,
            sent_at,
            body,
            conversation,
            nonce,
            recipients,
        } => {
            let mut e = Enc::default()
                .u64(*sent_at)
                .put(body_digest(identity_seed, &unhex(body)))
                .u8(6)
                .put(unhex(conversation))
                .put(unhex(nonce))
                .u32(recipients.len() as u32);
            for r in recipients {
                e = e
                    .put(address_of(&r.address))
                    .put(unhex(&r.identity_public))
                    .put(unhex(&r.reference))
                    .u8(0);
            }
            (key(0x0f, &[&send_id.to_be_bytes()]), e.done())
        }
        RecordInputs::PendingRetry {
            reference,
            sender,
            group,
            failed_envelope,
            attempts,
            asked_at,
            done,
            minted,
        } => {
            assert_eq!(minted.len(), usize::from(*attempts), "one pair per request");
            let mut value = Enc::default()
                .opt(group.as_deref(), |e, g| e.put(unhex(g)))
                .put(envelope_id(&unhex(failed_envelope)))
                .u8(*attempts)
                .u64(*asked_at)
                .u8(u8::from(*done));
            for m in minted {
                value = value
                    .opt(m.one_time_prekey_id, |e, id| e.u32(id))
                    .opt(m.kem_prekey_id, |e, id| e.u32(id));
            }
            (
                key(0x10, &[&address_of(sender), &unhex(reference)]),
                value.done(),
            )
        }
        RecordInputs::ReplacedId {
            envelope,
            sender,
            read_at,
        } => (
            key(0x12, &[&envelope_id(&unhex(envelope))]),
            Enc::default().put(address_of(sender)).u64(*read_at).done(),
        ),
    }
}

#[test]
fn record_vectors() {
    let f = generated_and_committed("records.json", &records_file());
    // One vector per record kind (two sent messages), each rebuilt from its inputs.
    let kinds: Vec<u8> = f.records.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 15, 16, 18
        ]
    );
    let seed = f
        .records
        .iter()
        .find_map(|r| match &r.inputs {
            RecordInputs::Own { identity_seed, .. } => Some(unhex(identity_seed)),
            _ => None,
        })
        .expect("an own record");
    for r in &f.records {
        let (key, value) = spec_record(&r.inputs, &seed);
        assert_eq!((key[0], h(&key)), (r.kind, r.key.clone()));
        assert_eq!(h(&value), r.value, "record kind {}", r.kind);
    }
    // 19.4: the restore leaves sessions records only for devices whose sessions heard back,
    // each marked unconfirmed (bit 7 of its count, 19.1).
    assert!(!f.restored.sessions.is_empty());
    for r in &f.restored.sessions {
        assert!(r.key.starts_with("08"));
        let count = unhex(r.value.as_ref().unwrap())[0];
        assert!(
            count & 0x80 != 0 && (1..=3).contains(&(count & 0x7f)),
            "{count:#04x}"
        );
    }
    // 19.1 kind 0x11: no key fields, the restore's time as its value.
    assert_eq!(f.restored.key, "11");
    assert_eq!(
        f.restored.value,
        h(Enc::default().u64(f.restored.restored_at).done())
    );
    // 19.4: the skip from the restore's time, and the prekeys and meta records it rewrites.
    let spread = u32::from_be_bytes(
        sha256(&[
            b"ratchetry v1 restore spread",
            &f.restored.restored_at.to_be_bytes(),
        ])[..4]
            .try_into()
            .unwrap(),
    );
    let skip = (1 << 20) + spread % (1 << 24);
    assert_eq!(f.restored.prekey_skip, skip);
    for r in &f.records {
        let mut v = serde_json::to_value(&r.inputs).unwrap();
        match &r.inputs {
            RecordInputs::Prekeys {
                next_signed_prekey_id,
                next_one_time_prekey_id,
                next_kem_prekey_id,
                ..
            } => {
                let moved = |n: u32| n.wrapping_add(skip).max(1);
                v["next_signed_prekey_id"] = moved(*next_signed_prekey_id).into();
                v["next_one_time_prekey_id"] = moved(*next_one_time_prekey_id).into();
                // The run's ML-KEM ids are unmarked (README): the counter moves without wrapping.
                assert!(*next_kem_prekey_id < 0x8000_0001);
                v["next_kem_prekey_id"] = (next_kem_prekey_id + skip).into();
                let moved: RecordInputs = serde_json::from_value(v).unwrap();
                assert_eq!(h(&spec_record(&moved, &seed).1), f.restored.prekeys);
            }
            RecordInputs::Meta {
                epoch,
                next_read_slot,
                next_send_id,
                ..
            } => {
                let send = (next_send_id + (1 << 32)).max(f.restored.restored_at.min(1 << 53));
                let meta = Enc::default()
                    .u64(epoch + 1)
                    .u32(*next_read_slot)
                    .u64(send)
                    .u8(1)
                    .put(unhex(&f.restored.tag))
                    .done();
                assert_eq!(h(&meta), f.restored.meta);
            }
            _ => {}
        }
    }
    // 19.1 kind 0x15: the mark of the device list record's list, under its account.
    let (account, list) = f
        .records
        .iter()
        .find_map(|r| match &r.inputs {
            RecordInputs::DeviceList { account, list, .. } => Some((account, unhex(list))),
            _ => None,
        })
        .expect("a device list record");
    assert_eq!(f.forgotten.account, *account);
    assert_eq!(f.forgotten.key, format!("15{account}"));
    // 15.1: the version follows the header (2) and the account (32); format 3 has a policy.
    assert_eq!(list[0], 3);
    assert_eq!(
        f.forgotten.value,
        h(Enc::default()
            .put(&list[34..42])
            .put(sha256(&[&list]))
            .u8(1)
            .done())
    );
    // 19.1 kinds 0x16 and 0x18: with `groups by app` 0 and no 0x18 record, every group (each
    // `0x09` record of the whole state) is offered, its mark empty, and the newest offer's
    // time is 0.
    let whole = whole_state_records(&unhex(&f.whole_state));
    let groups: Vec<String> = whole
        .iter()
        .map(|(k, _)| k)
        .filter(|k| k[0] == 0x09)
        .map(|k| format!("16{}", h(&k[1..])))
        .collect();
    assert!(!groups.is_empty());
    assert!(whole.iter().all(|(k, _)| k[0] != 0x18));
    assert_eq!(
        f.offered.marks,
        groups
            .into_iter()
            .map(|key| KeyValue {
                key,
                value: Some(String::new()),
            })
            .chain([KeyValue {
                key: "18".into(),
                value: Some(h(0u64.to_be_bytes())),
            }])
            .collect::<Vec<_>>()
    );
    let mut meta = whole
        .iter()
        .find(|(k, _)| k[..] == [0x02])
        .unwrap()
        .1
        .clone();
    meta[20] = 0;
    assert_eq!(f.offered.meta, h(&meta));
    // 19.1 kind 0x17: Alice's phone answered one retry request, retry-2, Bob's phone's for a
    // group message: one record, keyed by the send id and Bob's phone, holding the request's
    // id.
    let devices: DevicesFile =
        serde_json::from_str(&std::fs::read_to_string(path("devices.json")).unwrap()).unwrap();
    let retry = devices
        .events
        .iter()
        .find_map(|e| match e {
            DeviceEvent::Retry(r) if r.label == f.answered.retry => Some(r),
            _ => None,
        })
        .unwrap();
    let [answered] = &f.answered.records[..] else {
        panic!("one answers record")
    };
    let bob_phone = &devices
        .devices
        .iter()
        .find(|d| d.name == "bob-phone")
        .unwrap();
    assert_eq!(
        (retry.from.as_str(), retry.to.as_str()),
        ("bob-phone", "alice-phone")
    );
    assert_eq!(&answered.key[..2], "17");
    assert_eq!(answered.key[18..], bob_phone.address);
    assert_eq!(answered.value, Some(format!("01{}", retry.envelope_id)));
    // Cross-checks between records: the own record's identity and address are the ones every
    // other record speaks of.
    let RecordInputs::Own {
        address,
        identity_seed,
        ..
    } = &f.records[0].inputs
    else {
        panic!("the own record first")
    };
    assert_eq!(address, &f.address);
    for r in &f.records {
        match &r.inputs {
            RecordInputs::Sessions { sessions, .. } => {
                for s in sessions {
                    // 10.3: this device's identity is each session's local one.
                    let s = unhex(s);
                    assert_eq!((s[0], s[1]), (2, 0x81));
                    assert_eq!(s[11..43], ed_pub(&unh(identity_seed)));
                }
            }
            RecordInputs::OwnSenderKey { context, .. } => assert_eq!(context, address),
            RecordInputs::PendingRetry {
                reference,
                failed_envelope,
                ..
            } => assert_eq!(h(envelope_salt(&unhex(failed_envelope))), *reference),
            _ => {}
        }
    }
    // 19.4: the whole state is every record, keys strictly ascending; it holds every kind but
    // the restore record (0x11, in `restored`), a pending KEM ciphertext (0x13) among them,
    // and each record above.
    let whole = unhex(&f.whole_state);
    let mut r = Rd(&whole);
    assert_eq!(r.take(2), [3, 0x87]);
    let n = r.u32() as usize;
    assert_eq!(n, f.record_count);
    let records: Vec<(Vec<u8>, Vec<u8>)> = (0..n)
        .map(|_| (r.blob().to_vec(), r.blob().to_vec()))
        .collect();
    assert!(r.rest().is_empty());
    assert!(records.windows(2).all(|w| w[0].0 < w[1].0));
    let present: std::collections::BTreeSet<u8> = records.iter().map(|(k, _)| k[0]).collect();
    assert_eq!(
        present.into_iter().collect::<Vec<_>>(),
        (1..=16).chain([18, 19]).collect::<Vec<u8>>()
    );
    for v in &f.records {
        assert!(records.contains(&(unhex(&v.key), unhex(&v.value))));
    }
    // 22: the own record's value sealed under its key.
    let s = &f.sealed;
    assert_eq!(
        (s.slot.clone(), s.state.clone()),
        (f.records[0].key.clone(), f.records[0].value.clone())
    );
    let slot = unhex(&s.slot);
    let ad = Enc::default()
        .put(L_SEALED_STATE)
        .u8(2)
        .u8(0x90)
        .u64(s.sequence)
        .blob(&slot)
        .done();
    assert_eq!(h(&ad), s.associated_data);
    let (key, nonce): ([u8; 32], [u8; 12]) = (unh(&s.key), unh(&s.nonce));
    let (_, mut rng) = seeded("ratchetry sealed state");
    assert_eq!((draw::<32>(&mut rng), draw::<12>(&mut rng)), (key, nonce));
    let sealed = Enc::tag(2, 0x90)
        .u64(s.sequence)
        .put(nonce)
        .put(seal(&key, &nonce, &ad, &unhex(&s.state)))
        .done();
    assert_eq!(h(&sealed), s.sealed);
    let RecordInputs::Meta { epoch, .. } = &f.records[1].inputs else {
        panic!("the meta record second")
    };
    assert_eq!(s.sequence, *epoch);
    check_primary_records(&f.primary);
}

/// 15.4 against its vector: the records load back to the state bytes, every kind appears, and
/// the invitation's unit is the meta record, the oldest invitation's deletion and the new one.
fn check_primary_records(p: &PrimaryRecordsVector) {
    use ratchetry::devices::Primary;
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = p
        .records
        .iter()
        .map(|r| (unhex(&r.key), unhex(r.value.as_ref().unwrap())))
        .collect();
    let kinds: Vec<u8> = pairs.iter().map(|(k, _)| k[0]).collect();
    assert_eq!(
        kinds,
        [0x81, 0x82, 0x83, 0x84, 0x84, 0x84, 0x84, 0x85, 0x86]
    );
    let loaded =
        Primary::from_records(pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))).unwrap();
    // The same state, but at the tag of the unit the load left (`p.tag`), which the meta
    // record holds: the state's own tag was that of the unit before it.
    let bytes = loaded.to_bytes();
    let state_len = bytes.len() - 16;
    assert_eq!(h(&bytes[..state_len]), p.state[..2 * state_len]);
    assert_eq!(h(&bytes[state_len..]), p.tag);
    assert_ne!(p.state[2 * state_len..], p.tag);
    let state = unhex(&p.state);
    // The account record is the state's seed and policy; the list record the state's list.
    assert_eq!(pairs[0].1, state[2..2 + 52]);
    let list_len = u32::from_be_bytes(state[66..70].try_into().unwrap()) as usize;
    assert_eq!(pairs[2].1, state[70..70 + list_len]);
    // Each unit's meta record ends with the unit's tag (15.4).
    assert_eq!(pairs[1].1[29..], unhex(&p.tag));
    let invite_meta = unhex(p.invite.unit[0].value.as_ref().unwrap());
    assert_eq!(invite_meta[29..], unhex(&p.invite.tag));
    assert_ne!(p.tag, p.invite.tag);
    let invitation = unhex(&p.invite.invitation);
    let keys: Vec<(u8, bool)> = p
        .invite
        .unit
        .iter()
        .map(|r| (unhex(&r.key)[0], r.value.is_some()))
        .collect();
    assert_eq!(keys, [(0x82, true), (0x84, false), (0x84, true)]);
    assert_eq!(unhex(&p.invite.unit[1].key), unhex(&p.records[3].key));
    let new = unhex(p.invite.unit[2].value.as_ref().unwrap());
    assert_eq!(new[..16], invitation[34..50]);
    // 15.3: a resync's numbering, from the state's counters, its list and the resync's time.
    let u32_at = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
    let u64_at = |b: &[u8], at: usize| u64::from_be_bytes(b[at..at + 8].try_into().unwrap());
    let (next_device, next_version) = (u32_at(&state, 54), u64_at(&state, 58));
    let list = &state[70..70 + list_len];
    // Format 3: header, account, version, issued at, policy (12), then the entries, each
    // `u32(id) ‖ IK ‖ u64(linked_at) ‖ opt(u64(expires_at)) ‖ binding`, ids ascending.
    let (listed_version, entries) = (u64_at(list, 34), u32_at(list, 62));
    let mut at = 66;
    let mut highest = 0;
    for _ in 0..entries {
        highest = u32_at(list, at);
        at += 4 + 32 + 8 + if list[at + 44] == 1 { 9 } else { 1 } + 64;
    }
    assert_eq!(at + 64, list.len(), "the entries, then the signature");
    assert_eq!(p.resync.len(), 2);
    let mut floors_used = Vec::new();
    for r in &p.resync {
        let spread = u32::from_be_bytes(
            sha256(&[b"ratchetry v1 restore spread", &r.now.to_be_bytes()])[4..8]
                .try_into()
                .unwrap(),
        ) % (1 << 20);
        let expected_device = next_device.max(highest + 1) + (1 << 16) + spread;
        let skipped = next_version.max(listed_version + 1) + (1 << 32);
        let floor = r.now.min(1 << 42) << 10;
        let expected_version = skipped.max(floor);
        floors_used.push(floor > skipped);
        let signed = unhex(&r.signed);
        assert_eq!(u64_at(&signed, 34), expected_version, "the signed version");
        assert_eq!(u64_at(&signed, 42), r.now, "issued at the resync");
        assert_eq!(u32_at(&signed, 62), 1, "the primary's entry alone");
        let primary_entry = 4 + 32 + 8 + 1 + 64;
        assert_eq!(signed[66..66 + primary_entry], list[66..66 + primary_entry]);
        let after = unhex(&r.state);
        assert_eq!(u32_at(&after, 54), expected_device, "the next device id");
        assert_eq!(u64_at(&after, 58), expected_version + 1, "the next version");
        assert_eq!(after[70..70 + signed.len()], signed[..]);
    }
    assert_eq!(floors_used, [false, true], "one of each");
}

// =============================================================================================

#[test]
#[ignore = "writes test-vectors/; run to regenerate after a deliberate protocol change"]
fn regenerate() {
    let write = |name: &str, json: String| std::fs::write(path(name), json).unwrap();
    write("pqxdh.json", to_json(&pqxdh_file()));
    write("kdf-chains.json", to_json(&kdf_file()));
    write("ratchet-transcript.json", to_json(&transcript_file()));
    write("sender-keys.json", to_json(&sender_keys_file()));
    write("history-sync.json", to_json(&history_file()));
    write("call-keys.json", to_json(&call_file()));
    write("devices.json", to_json(&devices_file()));
    write("records.json", to_json(&records_file()));
    write("pq-ratchet.json", to_json(&pq::pq_file()));
}
