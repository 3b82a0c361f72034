//! Error-path vectors, `test-vectors/errors.json`: inputs every decoder and receive path must
//! refuse, and the exact error each gives (PROTOCOL.md section 13).
//!
//! Every vector is a valid input of another vector file (or one built here from that file's
//! keys) with a few bytes changed, so it breaks one rule of PROTOCOL.md. The file is generated
//! from the committed vector files (no randomness but `SeededRng`) by
//!
//! ```text
//! cargo test --test error_vectors -- --ignored regenerate
//! ```
//!
//! and `cargo test --test error_vectors` checks it: regenerating must reproduce the committed
//! file byte for byte, each `input` must be its `base` with its `edits` applied, and each input,
//! fed through the crate's public API to a receiver restored from the listed state, must be
//! refused with exactly the listed error, leaving the receiver's state unchanged. The expected
//! errors below are written from PROTOCOL.md, not recorded from the crate.

use std::collections::BTreeMap;

use rand_core::Rng;
use ratchetry::devices::{AccountKey, DeviceAddress, DeviceId, ListLimits, SignedDeviceList};
use ratchetry::fanout::Device;
use ratchetry::group::{GroupConfig, GroupMessage, InboundSenderKey};
use ratchetry::persist::{StorageKey, open_state};
use ratchetry::testing::{SeededRng, raw};
use ratchetry::{
    DeviceError, Error, FanoutError, IdentityKeyPair, IncomingMessage, PreKeyBundle, PreKeyStore,
    PreKeyStoreConfig, Session, SessionConfig, Timestamp,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

const GENERATOR: &str = "cargo test --test error_vectors -- --ignored regenerate";
const FILE: &str = "errors.json";

// =============================================================================================
// Helpers

fn h(bytes: impl AsRef<[u8]>) -> String {
    hex::encode(bytes)
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn unh<const N: usize>(s: &str) -> [u8; N] {
    unhex(s).try_into().unwrap()
}

fn path(name: &str) -> String {
    format!("{}/test-vectors/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap() + "\n"
}

/// The committed vector files the error vectors are built from.
struct Files(BTreeMap<&'static str, Value>);

impl Files {
    fn load() -> Self {
        let names = [
            "pqxdh.json",
            "ratchet-transcript.json",
            "sender-keys.json",
            "devices.json",
            "records.json",
        ];
        Self(
            names
                .into_iter()
                .map(|n| {
                    let text = std::fs::read_to_string(path(n)).unwrap();
                    (n, serde_json::from_str(&text).unwrap())
                })
                .collect(),
        )
    }

    /// A reference `file#/json/pointer` (RFC 6901) to a hex string of a committed file.
    fn get(&self, reference: &str) -> &str {
        let (file, pointer) = reference.split_once('#').unwrap();
        self.0[file]
            .pointer(pointer)
            .unwrap_or_else(|| panic!("{reference} not found"))
            .as_str()
            .unwrap()
    }

    fn bytes(&self, reference: &str) -> Vec<u8> {
        unhex(self.get(reference))
    }

    /// A byte string given either as a reference (it holds a `#`) or as hex.
    fn resolve(&self, value: &str) -> Vec<u8> {
        if value.contains('#') {
            self.bytes(value)
        } else {
            unhex(value)
        }
    }

    fn value(&self, file: &str, pointer: &str) -> &Value {
        self.0[file].pointer(pointer).unwrap()
    }

    /// The index of the first element of `file`'s array `pointer` whose `key` is `value`.
    fn index(&self, file: &str, pointer: &str, key: &str, value: &str) -> usize {
        self.value(file, pointer)
            .as_array()
            .unwrap()
            .iter()
            .position(|e| e[key].as_str() == Some(value))
            .unwrap_or_else(|| panic!("no {key} = {value} in {file}#{pointer}"))
    }
}

/// One change to the base: `len` bytes at `offset` replaced by `now` (a different length
/// truncates, inserts or appends).
#[derive(Serialize, Deserialize, Clone)]
struct Edit {
    offset: usize,
    len: usize,
    now: String,
}

fn apply(base: &[u8], edits: &[Edit]) -> Vec<u8> {
    // Edits apply in order, each to the result of the ones before.
    let mut out = base.to_vec();
    for e in edits {
        out.splice(e.offset..e.offset + e.len, unhex(&e.now));
    }
    out
}

/// Byte `at` XOR `mask`.
fn flip(base: &[u8], at: usize, mask: u8) -> Edit {
    Edit {
        offset: at,
        len: 1,
        now: h([base[at] ^ mask]),
    }
}

/// Bytes from `at` replaced by `bytes` (same length).
fn put(at: usize, bytes: impl AsRef<[u8]>) -> Edit {
    Edit {
        offset: at,
        len: bytes.as_ref().len(),
        now: h(bytes),
    }
}

/// Everything from `len` on removed.
fn cut(base: &[u8], len: usize) -> Edit {
    Edit {
        offset: len,
        len: base.len() - len,
        now: String::new(),
    }
}

/// `bytes` appended.
fn append(base: &[u8], bytes: impl AsRef<[u8]>) -> Edit {
    Edit {
        offset: base.len(),
        len: 0,
        now: h(bytes),
    }
}

/// `u = p + k` (k < 19): a non-canonical encoding of the X25519 (or Ed25519 y) value `k`.
fn p_plus(k: u8) -> [u8; 32] {
    let mut b = [0xff; 32];
    b[0] = 0xed + k;
    b[31] = 0x7f;
    b
}

/// The Ed25519 identity point's canonical encoding (y = 1): small order.
fn identity_point() -> [u8; 32] {
    let mut b = [0u8; 32];
    b[0] = 1;
    b
}

// =============================================================================================
// The file

#[derive(Serialize, Deserialize)]
struct ErrorsFile {
    description: String,
    generator: String,
    vectors: Vec<ErrorVector>,
}

#[derive(Serialize, Deserialize)]
struct ErrorVector {
    /// `path/what`.
    name: String,
    /// The decoder or receive path: `bundle`, `prekey_message`, `ratchet_message`,
    /// `group_message`, `device_list`, `envelope`, `sealed_state`.
    path: String,
    /// The PROTOCOL.md section and the rule the input breaks.
    rule: String,
    /// The valid input the vector starts from: a reference `file#/pointer` or hex.
    base: String,
    /// What changed, in words.
    mutation: String,
    edits: Vec<Edit>,
    input: String,
    /// The receiver's state, by role: references or hex.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    receiver: BTreeMap<String, String>,
    /// Path parameters (`now`, `message_context`, `expected_account`, `device_id`, `key`,
    /// `slot`, `min_sequence`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    params: BTreeMap<String, Value>,
    error: String,
}

struct Builder<'a> {
    files: &'a Files,
    vectors: Vec<ErrorVector>,
}

/// A vector under construction.
struct V {
    name: String,
    path: &'static str,
    rule: String,
    base: String,
    mutation: String,
    edits: Vec<Edit>,
    receiver: BTreeMap<String, String>,
    params: BTreeMap<String, Value>,
    error: String,
}

fn v(path: &'static str, what: &str, base: &str, rule: &str, error: &str) -> V {
    V {
        name: format!("{path}/{what}"),
        path,
        rule: rule.into(),
        base: base.into(),
        mutation: String::new(),
        edits: Vec::new(),
        receiver: BTreeMap::new(),
        params: BTreeMap::new(),
        error: error.into(),
    }
}

impl V {
    fn change(mut self, mutation: &str, edits: Vec<Edit>) -> Self {
        self.mutation = mutation.into();
        self.edits = edits;
        self
    }
    fn receiver(mut self, role: &str, value: impl Into<String>) -> Self {
        self.receiver.insert(role.into(), value.into());
        self
    }
    fn param(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.params.insert(name.into(), value.into());
        self
    }
}

impl Builder<'_> {
    fn add(&mut self, v: V) {
        let base = self.files.resolve(&v.base);
        let input = apply(&base, &v.edits);
        assert_ne!(input, base, "{}: no change", v.name);
        self.vectors.push(ErrorVector {
            name: v.name,
            path: v.path.into(),
            rule: v.rule,
            base: v.base,
            mutation: v.mutation,
            edits: v.edits,
            input: h(input),
            receiver: v.receiver,
            params: v.params,
            error: v.error,
        });
    }

    /// Adds a vector whose input is the base unchanged (the receiver's state makes it wrong).
    fn add_as_is(&mut self, v: V) {
        let input = self.files.resolve(&v.base);
        self.vectors.push(ErrorVector {
            name: v.name,
            path: v.path.into(),
            rule: v.rule,
            base: v.base,
            mutation: v.mutation,
            edits: v.edits,
            input: h(input),
            receiver: v.receiver,
            params: v.params,
            error: v.error,
        });
    }
}

// =============================================================================================
// Generator

/// `pqxdh.json`'s first vector (one-time prekeys): Bob's identity state, and his prekey store
/// state before he accepted Alice's pre-key message (the file lists it after), rebuilt from the
/// vector's seed with the draws PROTOCOL.md section 11 lists.
fn pqxdh_bob_before(files: &Files) -> (Vec<u8>, Vec<u8>) {
    let name = files
        .value("pqxdh.json", "/vectors/0/name")
        .as_str()
        .unwrap();
    let rng = &mut SeededRng::from_label(name);
    let _alice = IdentityKeyPair::generate(rng);
    let bob = IdentityKeyPair::generate(rng);
    let mut store = PreKeyStore::new(
        rng,
        &bob,
        Timestamp(1_790_000_000_000),
        PreKeyStoreConfig::default(),
    );
    // A store from before the post-quantum ratchet, as in pqxdh.json.
    ratchetry::testing::hooks::store_before_pq_ratchet(&mut store, &bob);
    let otks = store.generate_one_time_prekeys(rng, 1);
    let kems = store.generate_one_time_kem_prekeys(rng, &bob, Timestamp(1_790_000_000_000), 1);
    let bundle = store.bundle(&bob, Some(otks[0].id), Some(kems[0].id));
    assert_eq!(
        h(bundle.to_bytes()),
        files.get("pqxdh.json#/vectors/0/bundle"),
        "the rebuilt store gives the file's bundle"
    );
    (bob.to_bytes().to_vec(), store.to_bytes().to_vec())
}

/// Signs `body` as a device list of the account whose seed is `seed` (15.1).
fn list_signature(seed: &[u8; 32], body: &[u8]) -> [u8; 64] {
    let mut m = b"ratchetry v1 device list".to_vec();
    m.extend_from_slice(body);
    raw::ed25519_sign(seed, &m).1
}

fn errors_file() -> ErrorsFile {
    let files = Files::load();
    let mut b = Builder {
        files: &files,
        vectors: Vec::new(),
    };
    bundle_vectors(&mut b);
    prekey_message_vectors(&mut b);
    ratchet_message_vectors(&mut b);
    group_message_vectors(&mut b);
    device_list_vectors(&mut b);
    envelope_vectors(&mut b);
    sealed_state_vectors(&mut b);
    ErrorsFile {
        description: "Inputs that must be refused, each with the exact error of PROTOCOL.md \
                      section 13; see test-vectors/README.md (errors.json)"
            .into(),
        generator: GENERATOR.into(),
        vectors: b.vectors,
    }
}

// --- bundles (6) -----------------------------------------------------------------------------

fn bundle_vectors(b: &mut Builder) {
    const BASE: &str = "pqxdh.json#/vectors/0/bundle";
    let base = b.files.bytes(BASE);
    assert_eq!(base.len(), 1807);
    // Offsets: IK 2, spk_id 34, SPK 38, spk_signature 70 (S at 102), opt flag 134, opk_id 135,
    // OPK 139, kem_id 171, KEM_PK 175, kem_signature 1743 (S at 1775).
    let vectors = [
        v("bundle", "bad-signed-prekey-signature", BASE, "6: spk_signature must verify under IK", "X3dh(BadSignedPreKeySignature)")
            .change("spk_signature's S (byte 102) XOR 0x01", vec![flip(&base, 102, 0x01)]),
        v("bundle", "bad-kem-prekey-signature", BASE, "6: kem_signature must verify under IK (checked after spk_signature)", "X3dh(BadKemPreKeySignature)")
            .change("kem_signature's S (byte 1775) XOR 0x01", vec![flip(&base, 1775, 0x01)]),
        v("bundle", "signed-prekey-bit-255", BASE, "2: an X25519 key has one canonical encoding, bit 255 clear", "Decode(InvalidKey)")
            .change("SPK's last byte (69) with bit 255 set (OR 0x80)", vec![flip(&base, 69, 0x80)]),
        v("bundle", "signed-prekey-u-not-below-p", BASE, "2: an X25519 key has one canonical encoding, u < p", "Decode(InvalidKey)")
            .change("SPK (bytes 38..70) replaced by u = p + 9, the non-canonical encoding of 9", vec![put(38, p_plus(9))]),
        v("bundle", "one-time-prekey-bit-255", BASE, "2: an X25519 key has one canonical encoding, bit 255 clear", "Decode(InvalidKey)")
            .change("OPK's last byte (170) with bit 255 set (OR 0x80)", vec![flip(&base, 170, 0x80)]),
        v("bundle", "identity-key-small-order", BASE, "5.1: IK must not have small order", "Decode(InvalidKey)")
            .change("IK (bytes 2..34) replaced by 0x01 0x00^31, the identity point (y = 1)", vec![put(2, identity_point())]),
        v("bundle", "identity-key-y-not-below-p", BASE, "5.1: IK's y must be below p", "Decode(InvalidKey)")
            .change("IK (bytes 2..34) replaced by y = p + 2, the non-canonical encoding of y = 2", vec![put(2, p_plus(2))]),
        v("bundle", "kem-prekey-modulus", BASE, "2: an ML-KEM encapsulation key passes the FIPS 203 modulus check (every 12-bit coefficient below 3329)", "Decode(InvalidKey)")
            .change("KEM_PK's first coefficient set to 4095: byte 175 = 0xff, byte 176's low nibble = 0xf", vec![put(175, [0xff, base[176] | 0x0f])]),
        v("bundle", "truncated", BASE, "4: input ending early", "Decode(Truncated)")
            .change("the last byte removed", vec![cut(&base, base.len() - 1)]),
        v("bundle", "trailing-bytes", BASE, "4: a structure that ends before the input does", "Decode(TrailingBytes)")
            .change("0x00 appended", vec![append(&base, [0])]),
        v("bundle", "unknown-version", BASE, "4: the version byte is checked first", "Decode(UnknownVersion(3))")
            .change("byte 0 (version) 0x02 -> 0x03", vec![put(0, [3])]),
        v("bundle", "unknown-type", BASE, "4: the type byte is checked second", "Decode(UnknownType(3))")
            .change("byte 1 (type) 0x01 -> 0x03", vec![put(1, [3])]),
        v("bundle", "flag-not-0-or-1", BASE, "1: flag(b) is 0x00 or 0x01", "Decode(InvalidValue)")
            .change("the one-time prekey's opt flag (byte 134) 0x01 -> 0x02", vec![put(134, [2])]),
    ];
    for x in vectors {
        b.add(x);
    }
}

// --- pre-key messages (9.2, 7.2) -------------------------------------------------------------

fn prekey_message_vectors(b: &mut Builder) {
    const BASE: &str = "pqxdh.json#/vectors/0/prekey_message";
    let base = b.files.bytes(BASE);
    // Offsets: IK_A 2, EK_A 34, spk_id 66, opt flag 70, opk_id 71, kem_id 75, CT 79; the
    // ratchet message at 1647: its key 1649, PN 1681, N 1685, salt 1689, extension 1705,
    // ct 1707.
    assert_eq!(base.len(), 1707 + 19 + 16);
    let (identity, before) = b.files_bob_before();
    const AFTER: &str = "pqxdh.json#/vectors/0/bob_prekey_store_state";
    let id = identity.as_str();
    let before = before.as_str();
    let vectors = [
        v("prekey_message", "replayed", BASE, "7.2 step 1: EK_A is among the base keys remembered under spk_id", "X3dh(Replayed)")
            .change("none: the message Bob already accepted, given to his store after it", vec![])
            .receiver("identity_state", id).receiver("prekey_store_state", AFTER),
        v("prekey_message", "tampered-ciphertext", BASE, "8.6 step 5: the AEAD must open", "Ratchet(AuthenticationFailed)")
            .change("the last byte (the GCM tag's) XOR 0x01", vec![flip(&base, base.len() - 1, 0x01)])
            .receiver("identity_state", id).receiver("prekey_store_state", before),
        v("prekey_message", "tampered-kem-ciphertext", BASE, "8.6 step 5: a wrong CT decapsulates to an unrelated SS (implicit rejection), so the first message does not open", "Ratchet(AuthenticationFailed)")
            .change("CT's first byte (79) XOR 0x01", vec![flip(&base, 79, 0x01)])
            .receiver("identity_state", id).receiver("prekey_store_state", before),
        v("prekey_message", "unknown-signed-prekey", BASE, "7.2 step 1: spk_id must be held", "X3dh(UnknownSignedPreKey(2))")
            .change("spk_id (bytes 66..70) 1 -> 2", vec![put(66, 2u32.to_be_bytes())])
            .receiver("identity_state", id).receiver("prekey_store_state", before),
        v("prekey_message", "unknown-one-time-prekey", BASE, "7.2 step 2: opk_id must be an unconsumed one-time prekey", "X3dh(UnknownOneTimePreKey(2))")
            .change("opk_id (bytes 71..75) 1 -> 2", vec![put(71, 2u32.to_be_bytes())])
            .receiver("identity_state", id).receiver("prekey_store_state", before),
        v("prekey_message", "unknown-kem-prekey", BASE, "7.2 step 3: kem_id must be held", "X3dh(UnknownKemPreKey(3))")
            .change("kem_id (bytes 75..79) 2 -> 3", vec![put(75, 3u32.to_be_bytes())])
            .receiver("identity_state", id).receiver("prekey_store_state", before),
        v("prekey_message", "base-key-bit-255", BASE, "2: a base key has one canonical encoding, bit 255 clear", "Decode(InvalidKey)")
            .change("EK_A's last byte (65) with bit 255 set (OR 0x80)", vec![flip(&base, 65, 0x80)]),
        v("prekey_message", "base-key-u-not-below-p", BASE, "2: a base key has one canonical encoding, u < p", "Decode(InvalidKey)")
            .change("EK_A (bytes 34..66) replaced by u = p + 9", vec![put(34, p_plus(9))]),
        v("prekey_message", "ratchet-key-bit-255", BASE, "2: a ratchet key has one canonical encoding, bit 255 clear", "Decode(InvalidKey)")
            .change("the ratchet key's last byte (1680) with bit 255 set (OR 0x80)", vec![flip(&base, 1680, 0x80)]),
        v("prekey_message", "identity-key-small-order", BASE, "9.2 and 5.1: IK_A must be valid", "Decode(InvalidKey)")
            .change("IK_A (bytes 2..34) replaced by the identity point 0x01 0x00^31", vec![put(2, identity_point())]),
        v("prekey_message", "header-extension", BASE, "8.4: an extension field whose first byte is below 0x80 is 0x00 0x00", "Decode(InvalidValue)")
            .change("the extension field (bytes 1705..1707) 0x00 0x00 -> 0x00 0x23 (a u16 length 35 before the ratchet)", vec![put(1705, [0, 35])]),
        v("prekey_message", "truncated-kem-ciphertext", BASE, "4: input ending early (inside CT)", "Decode(Truncated)")
            .change("cut after 100 bytes (21 bytes into CT)", vec![cut(&base, 100)]),
        v("prekey_message", "truncated-ciphertext", BASE, "9.1: the ratchet message's ct is at least 16 bytes", "Decode(Truncated)")
            .change("cut to 15 bytes of ct (1722 bytes)", vec![cut(&base, 1707 + 15)]),
        v("prekey_message", "unknown-version", BASE, "4: the version byte is checked first", "Decode(UnknownVersion(3))")
            .change("byte 0 (version) 0x02 -> 0x03", vec![put(0, [3])]),
    ];
    for x in vectors {
        if x.edits.is_empty() {
            b.add_as_is(x);
        } else {
            b.add(x);
        }
    }
}

impl Builder<'_> {
    fn files_bob_before(&self) -> (String, String) {
        let (identity, store) = pqxdh_bob_before(self.files);
        (h(identity), h(store))
    }
}

// --- ratchet messages (9.1, 8.6) -------------------------------------------------------------

fn ratchet_message_vectors(b: &mut Builder) {
    const T: &str = "ratchet-transcript.json";
    let event = |label: &str, kind: &str| {
        let events = b.files.value(T, "/events").as_array().unwrap();
        events
            .iter()
            .position(|e| e["message"] == label && e["event"] == kind)
            .unwrap()
    };
    let send_b4 = event("b4", "send");
    let recv_b4 = event("b4", "receive");
    let base_ref = format!("{T}#/events/{send_b4}/wire");
    let base = b.files.bytes(&base_ref);
    // Alice's state as b4 reaches her (the send is Bob's: her state is as before it), and after
    // she read it.
    let before = format!("{T}#/events/{send_b4}/alice_state");
    let after = format!("{T}#/events/{recv_b4}/alice_state");
    let a0 = format!("{T}#/events/{}/wire", event("a0", "send"));
    // Offsets: ratchet key 2, PN 34, N 38, salt 42, extension 58, ct 60.
    let n = u32::from_be_bytes(base[38..42].try_into().unwrap());
    assert_eq!(n, 0, "b4 opens a new chain");
    let base_ref = base_ref.as_str();
    let vectors = [
        v("ratchet_message", "duplicate", base_ref, "8.6 step 3: N below the chain's next number", "Ratchet(Duplicate)")
            .change("none: b4, given to Alice after she read it", vec![])
            .receiver("session_state", &after),
        v("ratchet_message", "tampered-ciphertext", base_ref, "8.6 step 5: the AEAD must open", "Ratchet(AuthenticationFailed)")
            .change("the last byte (the GCM tag's) XOR 0x01", vec![flip(&base, base.len() - 1, 0x01)])
            .receiver("session_state", &before),
        v("ratchet_message", "tampered-salt", base_ref, "8.2 and 8.6 step 5: the salt enters key and nonce, and the header the AAD", "Ratchet(AuthenticationFailed)")
            .change("the salt's first byte (42) XOR 0x01", vec![flip(&base, 42, 0x01)])
            .receiver("session_state", &before),
        v("ratchet_message", "too-far-ahead", base_ref, "8.6 step 3: N − Nr above max_forward_jump (2000)", "Ratchet(TooFarAhead { requested: 2001, limit: 2000 })")
            .change("N (bytes 38..42) 0 -> 2002, on the chain Alice reads (Nr = 1)", vec![put(38, 2002u32.to_be_bytes())])
            .receiver("session_state", &after),
        v("ratchet_message", "chain-exhausted", base_ref, "8.6 step 2: N = 2^32 − 1", "Ratchet(ChainExhausted)")
            .change("N (bytes 38..42) 0 -> 0xffffffff", vec![put(38, u32::MAX.to_be_bytes())])
            .receiver("session_state", &after),
        v("ratchet_message", "ratchet-key-bit-255", base_ref, "2: a ratchet key has one canonical encoding, bit 255 clear", "Decode(InvalidKey)")
            .change("the ratchet key's last byte (33) with bit 255 set (OR 0x80)", vec![flip(&base, 33, 0x80)]),
        v("ratchet_message", "ratchet-key-u-not-below-p", base_ref, "2: a ratchet key has one canonical encoding, u < p", "Decode(InvalidKey)")
            .change("the ratchet key (bytes 2..34) replaced by u = p + 9", vec![put(2, p_plus(9))]),
        v("ratchet_message", "header-extension", base_ref, "8.4: an extension field whose first byte is below 0x80 is 0x00 0x00", "Decode(InvalidValue)")
            .change("the extension field (bytes 58..60) 0x00 0x00 -> 0x00 0x23 (a u16 length 35 before the ratchet)", vec![put(58, [0, 35])]),
        v("ratchet_message", "truncated-ciphertext", base_ref, "9.1: ct is at least 16 bytes", "Decode(Truncated)")
            .change("cut to the header and 15 bytes of ct (75 bytes)", vec![cut(&base, 75)]),
        v("ratchet_message", "truncated-header", base_ref, "4: input ending early (inside the header)", "Decode(Truncated)")
            .change("cut to 59 bytes", vec![cut(&base, 59)]),
        v("ratchet_message", "unknown-version", base_ref, "4: the version byte is checked first", "Decode(UnknownVersion(3))")
            .change("byte 0 (version) 0x02 -> 0x03", vec![put(0, [3])]),
        v("ratchet_message", "wrong-session", &a0, "8.6: a pre-key message is received by an existing session only if it is a responder whose origin it matches", "Ratchet(WrongSession)")
            .change("none: Alice's own first pre-key message a0, given to her (initiator) session", vec![])
            .receiver("session_state", &after),
    ];
    for x in vectors {
        if x.edits.is_empty() {
            b.add_as_is(x);
        } else {
            b.add(x);
        }
    }
}

// --- group messages (14.3, 14.4) -------------------------------------------------------------

fn group_message_vectors(b: &mut Builder) {
    const S: &str = "sender-keys.json";
    let events = b.files.value(S, "/events").as_array().unwrap().clone();
    let find = |kind: &str, label: Option<&str>, nth: usize| {
        events
            .iter()
            .enumerate()
            .filter(|(_, e)| e["event"] == kind && label.is_none_or(|l| e["message"] == l))
            .nth(nth)
            .unwrap()
            .0
    };
    let m5 = format!("{S}#/events/{}/wire", find("send", Some("m5"), 0));
    let m4 = format!("{S}#/events/{}/wire", find("send", Some("m4"), 0));
    let m3 = format!("{S}#/events/{}/wire", find("send", Some("m3"), 0));
    // The receiver after the second distribution (m4, m5 unread), and at the end (both read).
    let fresh = format!("{S}#/events/{}/inbound_state", find("distribute", None, 1));
    let end = format!(
        "{S}#/events/{}/inbound_state",
        find("receive", Some("m4"), 0)
    );
    let base = b.files.bytes(&m5);
    let len = base.len();
    let key_id = u32::from_be_bytes(base[34..38].try_into().unwrap());
    let m3_key_id = u32::from_be_bytes(b.files.bytes(&m3)[34..38].try_into().unwrap());
    let other_key_id = key_id.wrapping_add(1);
    let vectors = [
        v("group_message", "bad-signature", &m5, "14.4 step 3: the signature must verify", "Group(BadSignature)")
            .change(&format!("the signature's S (byte {}) XOR 0x01", len - 32), vec![flip(&base, len - 32, 0x01)])
            .receiver("inbound_sender_key_state", &fresh).param("message_context", ""),
        v("group_message", "tampered-ciphertext", &m5, "14.4 step 3: the signature covers ct and is checked before anything else", "Group(BadSignature)")
            .change("ct's first byte (58) XOR 0x01", vec![flip(&base, 58, 0x01)])
            .receiver("inbound_sender_key_state", &fresh).param("message_context", ""),
        v("group_message", "wrong-context", &m5, "14.3, 14.4 step 3: the message context is signed (length byte first); sealed with an empty context, opened with one byte", "Group(BadSignature)")
            .change("none: m5 (sealed with an empty message context) opened with message context 0x00", vec![])
            .receiver("inbound_sender_key_state", &fresh).param("message_context", "00"),
        v("group_message", "context-too-long", &m5, "14.4 step 0: a message context above 255 bytes", "Group(ContextTooLong)")
            .change("none: m5 opened with a 256-byte message context", vec![])
            .receiver("inbound_sender_key_state", &fresh).param("message_context", h([0u8; 256])),
        v("group_message", "unknown-key-id", &m5, "14.4 step 2: a key id the receiver holds (checked before the signature)", "Group(UnknownKeyId(KEY))")
            .change("key_id (bytes 34..38) + 1", vec![put(34, other_key_id.to_be_bytes())])
            .receiver("inbound_sender_key_state", &fresh).param("message_context", ""),
        v("group_message", "duplicate", &m4, "14.4 step 4: an iteration already read", "Group(Duplicate)")
            .change("none: m4, given to the receiver after it read m4", vec![])
            .receiver("inbound_sender_key_state", &end).param("message_context", ""),
        v("group_message", "predates-key", &m3, "14.4 step 4: an iteration below the distribution's", "Group(PredatesKey(KEY3))")
            .change("none: m3 (iteration 0), given to a receiver whose copy starts at iteration 1", vec![])
            .receiver("inbound_sender_key_state", &end).param("message_context", ""),
        v("group_message", "truncated", &m5, "14.3: a group message is at least 58 + 16 + 64 bytes", "Decode(Truncated)")
            .change("cut to 137 bytes", vec![cut(&base, 137)]),
        v("group_message", "unknown-version", &m5, "4: the version byte is checked first", "Decode(UnknownVersion(3))")
            .change("byte 0 (version) 0x02 -> 0x03", vec![put(0, [3])]),
    ];
    for mut x in vectors {
        x.error = x
            .error
            .replace("KEY3", &m3_key_id.to_string())
            .replace("KEY", &other_key_id.to_string());
        if x.edits.is_empty() {
            b.add_as_is(x);
        } else {
            b.add(x);
        }
    }
}

// --- device lists (15.1, 15.2) ---------------------------------------------------------------

fn device_list_vectors(b: &mut Builder) {
    const D: &str = "devices.json";
    let alice = b.files.index(D, "/accounts", "name", "alice");
    let bob = b.files.index(D, "/accounts", "name", "bob");
    let acc = |i: usize, f: &str| b.files.get(&format!("{D}#/accounts/{i}/{f}")).to_string();
    let alice_seed: [u8; 32] = unh(&acc(alice, "account_seed"));
    let bob_seed: [u8; 32] = unh(&acc(bob, "account_seed"));
    let alice_ak = acc(alice, "account_public");
    let bob_ak = acc(bob, "account_public");
    let list = |version: usize| format!("{D}#/accounts/{alice}/lists/{}/bytes", version - 1);
    let v3 = b.files.bytes(&list(3));
    let v2 = b.files.bytes(&list(2));
    let body_len = v3.len() - 64;
    // Body offsets: AK 2, version 34, issued_at 42, max_companions 50, companion_validity_ms
    // 54, n 62, entries from 66; an entry with an expiry is 4 + 32 + 8 + 9 + 64 = 117 bytes,
    // the primary's 109. The laptop's entry (id 2) starts at 66 + 109 = 175.
    assert_eq!(body_len, 66 + 109 + 117);
    let laptop = 175;
    let resign = |edits: Vec<Edit>| {
        let body = apply(&v3, &edits)[..].to_vec();
        let body_len = body.len() - 64;
        let sig = list_signature(&alice_seed, &body[..body_len]);
        let mut all = edits;
        all.push(put(body_len, sig));
        all
    };
    let laptop_expiry = u64::from_be_bytes(v2[laptop + 45..laptop + 53].try_into().unwrap());
    let laptop_address = format!("{alice_ak}{}", h(2u32.to_be_bytes()));

    // Four more companions (ids 3 to 6) with identities drawn from SeededRng("ratchetry errors:
    // companions"), each with its binding, after the laptop: five companions in all.
    let mut rng = SeededRng::from_label("ratchetry errors: companions");
    let mut extra = Vec::new();
    for id in 3u32..=6 {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let (ik, _) = raw::ed25519_sign(&seed, b"");
        let mut m = b"ratchetry v1 device binding".to_vec();
        m.extend_from_slice(&unhex(&alice_ak));
        let binding = raw::ed25519_sign(&seed, &m).1;
        extra.extend_from_slice(&id.to_be_bytes());
        extra.extend_from_slice(&ik);
        extra.extend_from_slice(&v3[laptop + 36..laptop + 44]); // linked_at, as the laptop's
        extra.extend_from_slice(&v3[laptop + 44..laptop + 53]); // opt(expires_at), likewise
        extra.extend_from_slice(&binding);
    }
    let primary_ik = v3[70..102].to_vec();
    let issued_at = u64::from_be_bytes(v3[42..50].try_into().unwrap());

    let l3 = list(3);
    let l2 = list(2);
    let vectors = [
        v("device_list", "rollback", &l2, "15.2 step 4: a version below the one accepted before", "Device(Rollback { known: 3, received: 2 })")
            .change("none: version 2, verified with version 3 accepted before", vec![])
            .receiver("known_list", l3.clone()).param("expected_account", alice_ak.clone()),
        v("device_list", "wrong-signer", &l3, "15.2 step 3: the account signature, under the list's AK", "Device(BadSignature)")
            .change("the signature (last 64 bytes) replaced by Bob's account key's signature of the same body", vec![put(body_len, list_signature(&bob_seed, &v3[..body_len]))])
            .param("expected_account", alice_ak.clone()),
        v("device_list", "bad-signature", &l3, "15.2 step 3: the account signature", "Device(BadSignature)")
            .change(&format!("the signature's S (byte {}) XOR 0x01", body_len + 32), vec![flip(&v3, body_len + 32, 0x01)])
            .param("expected_account", alice_ak.clone()),
        v("device_list", "wrong-account", &l3, "15.2 step 1: AK is the account expected", "Device(WrongAccount)")
            .change("none: Alice's list, verified for Bob's account key", vec![])
            .param("expected_account", bob_ak.clone()),
        v("device_list", "duplicate-device-id", &l3, "15.1: entries in strictly ascending device_id", "Decode(InvalidValue)")
            .change("the laptop's device_id (bytes 175..179) 2 -> 1, then re-signed by Alice's account key", resign(vec![put(laptop, 1u32.to_be_bytes())]))
            .param("expected_account", alice_ak.clone()),
        v("device_list", "duplicate-identity-key", &l3, "15.2 step 5: no IK appears twice", "Device(InvalidList)")
            .change("the laptop's IK (bytes 179..211) replaced by the primary's, then re-signed by Alice's account key", resign(vec![put(laptop + 4, &primary_ik)]))
            .param("expected_account", alice_ak.clone()),
        v("device_list", "primary-with-expiry", &l3, "15.2 step 5: the first entry (the primary) has no expires_at", "Device(InvalidList)")
            .change("the primary's opt(expires_at) (byte 110) given u64 issued_at + 1, then re-signed", resign(vec![Edit { offset: 110, len: 1, now: h([&[1u8][..], &(issued_at + 1).to_be_bytes()].concat()) }]))
            .param("expected_account", alice_ak.clone()),
        v("device_list", "too-many-companions", &l3, "15.2 step 6: at most the list's own signed max_companions (4) companions", "Device(TooManyCompanions)")
            .change("four companions (ids 3 to 6, identities from SeededRng(SHA-256(\"ratchetry errors: companions\")), 32 bytes each, with their bindings, linked_at and expiry as the laptop's) inserted after the laptop, n 2 -> 6, then re-signed", resign(vec![put(62, 6u32.to_be_bytes()), Edit { offset: body_len, len: 0, now: h(&extra) }]))
            .param("expected_account", alice_ak.clone()),
        v("device_list", "policy-above-ceiling", &l3, "15.2 step 6: the signed max_companions at most the verifier's ceiling (16)", "Device(PolicyAboveCeiling { allowed: 17, ceiling: 16 })")
            .change("max_companions (bytes 50..54) 4 -> 17, then re-signed", resign(vec![put(50, 17u32.to_be_bytes())]))
            .param("expected_account", alice_ak.clone()),
        v("device_list", "companion-outlives-policy", &l3, "15.2 step 5: every companion's expires_at at most issued_at + companion_validity_ms", "Device(InvalidList)")
            .change("companion_validity_ms (bytes 54..62) 14 days -> 14 days - 1 ms, then re-signed", resign(vec![put(54, (14u64 * 24 * 60 * 60 * 1000 - 1).to_be_bytes())]))
            .param("expected_account", alice_ak.clone()),
        v("device_list", "policy-downgrade", &l3, "15.2 step 4: no list of the old form (format 2) after one with a policy", "Device(PolicyDowngrade)")
            .change("made a list of the old form: format byte 3 -> 2, version 3 -> 4, the policy (bytes 50..62) removed, then re-signed; verified with version 3 accepted before", resign(vec![put(0, [2u8]), put(34, 4u64.to_be_bytes()), Edit { offset: 50, len: 12, now: String::new() }]))
            .receiver("known_list", l3.clone()).param("expected_account", alice_ak.clone()),
        v("device_list", "bad-binding", &l3, "15.2 step 7: every entry's binding verifies under its IK", "Device(BadBinding(2))")
            .change("the laptop's binding's S (byte 260) XOR 0x01, then re-signed", resign(vec![flip(&v3, laptop + 53 + 32, 0x01)]))
            .param("expected_account", alice_ak.clone()),
        v("device_list", "expired-entry", &l2, "15.2: an entry is active while now < expires_at; looking up an inactive one", "Device(CompanionExpired(ADDR))")
            .change("none: version 2 verifies; the laptop (id 2) looked up at its expires_at", vec![])
            .param("expected_account", alice_ak.clone()).param("device_id", 2).param("now", laptop_expiry),
        v("device_list", "truncated", &l3, "4: input ending early", "Decode(Truncated)")
            .change("the last byte removed", vec![cut(&v3, v3.len() - 1)])
            .param("expected_account", alice_ak.clone()),
        v("device_list", "unknown-version", &l3, "4: the version byte is checked first (device lists are format 3, format 2 is read; 1 is migrated, 23)", "Decode(UnknownVersion(4))")
            .change("byte 0 (version) 0x03 -> 0x04", vec![put(0, [4])])
            .param("expected_account", alice_ak.clone()),
    ];
    for mut x in vectors {
        x.error = x.error.replace("ADDR", &laptop_address);
        if x.edits.is_empty() {
            b.add_as_is(x);
        } else {
            b.add(x);
        }
    }
}

// --- envelopes and retry requests (18) -------------------------------------------------------

fn envelope_vectors(b: &mut Builder) {
    const D: &str = "devices.json";
    const STATE: &str = "records.json#/whole_state";
    let device = |name: &str| b.files.index(D, "/devices", "name", name);
    let dev = |name: &str, f: &str| {
        b.files
            .get(&format!("{D}#/devices/{}/{f}", device(name)))
            .to_string()
    };
    let alice = b.files.index(D, "/accounts", "name", "alice");
    let lists = b
        .files
        .value(D, &format!("/accounts/{alice}/lists"))
        .as_array()
        .unwrap();
    let renewed_at = lists.last().unwrap()["issued_at"].as_u64().unwrap();
    let events = b.files.value(D, "/events").as_array().unwrap();
    let labelled = |label: &str| {
        format!(
            "{D}#/events/{}/envelope",
            events.iter().position(|e| e["label"] == label).unwrap()
        )
    };
    let bob_address = dev("bob-phone", "address");
    assert_eq!(b.files.get("records.json#/address"), bob_address);
    let alice_ak = b
        .files
        .get(&format!("{D}#/accounts/{alice}/account_public"))
        .to_string();

    // A retry request (18.6) from Alice's laptop to Bob's phone, reference 0x5a^16, reason 2,
    // attempt 1, carrying the laptop's bundle Bob's phone used (event `session` bob-phone ->
    // alice-laptop), signed with the laptop's identity seed.
    let bundle = b.files.bytes(&format!(
        "{D}#/events/{}/bundle",
        events
            .iter()
            .position(|e| e["event"] == "session"
                && e["from"] == "bob-phone"
                && e["to"] == "alice-laptop")
            .unwrap()
    ));
    let mut body = vec![0x02, 0x0b, 0x03];
    body.extend_from_slice(&unhex(&dev("alice-laptop", "address")));
    body.extend_from_slice(&unhex(&bob_address));
    body.extend_from_slice(&[0x5a; 16]);
    body.extend_from_slice(&[2, 1]);
    body.extend_from_slice(&(bundle.len() as u32).to_be_bytes());
    body.extend_from_slice(&bundle);
    let mut signed = b"ratchetry v1 retry request".to_vec();
    signed.extend_from_slice(&body);
    let laptop_seed: [u8; 32] = unh(&dev("alice-laptop", "identity_seed"));
    let retry = [
        body.clone(),
        raw::ed25519_sign(&laptop_seed, &signed).1.to_vec(),
    ]
    .concat();
    let retry_hex = h(&retry);
    let rlen = retry.len();

    let never = labelled("never-1");
    let never_bytes = b.files.bytes(&never);
    let hello = labelled("hello-1");
    let lost = labelled("lost-1");
    let id_of = |envelope: &[u8]| {
        // 18.4: a pairwise envelope's id names its sender and its ratchet header's salt.
        let (_, rest) = envelope.split_at(99);
        let ratchet = match rest[1] {
            0x02 => rest,
            0x03 => {
                let opk = usize::from(rest[70] == 1) * 4;
                &rest[71 + opk + 4 + 1568..]
            }
            t => panic!("type {t}"),
        };
        let mut m = b"ratchetry v1 message id".to_vec();
        m.push(0x01);
        m.extend_from_slice(&envelope[3..39]);
        m.extend_from_slice(&ratchet[42..58]);
        h(&raw_sha256(&m)[..16])
    };
    let hello_id = id_of(&b.files.bytes(&hello));
    let lost_id = id_of(&b.files.bytes(&lost));

    let vectors = [
        v("envelope", "retry-request-bad-signature", &retry_hex, "18.6: the requester's listed IK verifies the signature", "Crypto(BadSignature)")
            .change(&format!("the signature's S (byte {}) XOR 0x01", rlen - 32), vec![flip(&retry, rlen - 32, 0x01)]),
        v("envelope", "not-for-this-device", &never, "18.5: the recipient is this device", "Fanout(NotForThisDevice)")
            .change("the recipient's device id (bytes 71..75) 1 -> 2", vec![put(71, 2u32.to_be_bytes())]),
        v("envelope", "sender-list-newer", &never, "18.5: a list version newer than the one held", "Fanout(DeviceListsDiverge { account: AK, used: 4, held: 3 })")
            .change("the sender list version (bytes 75..83) 2 -> 4 (Bob holds version 3)", vec![put(75, 4u64.to_be_bytes())]),
        v("envelope", "duplicate", &hello, "18.4: an envelope whose id is in the read ring", &format!("Fanout(Duplicate {{ envelope_id: {hello_id} }})"))
            .change("none: hello-1, which Bob's phone read", vec![]),
        v("envelope", "duplicate-of-resent", &lost, "18.4: a resend writes the id of the message it replaces to the read ring, so the genuine copy arriving later is a duplicate", &format!("Fanout(Duplicate {{ envelope_id: {lost_id} }})"))
            .change("none: lost-1, never delivered, answered by a direct resend that Bob's phone read", vec![]),
        v("envelope", "unknown-kind", &never, "18.1: the third byte is 0x01, 0x02 or 0x03", "Decode(InvalidValue)")
            .change("byte 2 (kind) 0x01 -> 0x04", vec![put(2, [4])]),
    ];
    for mut x in vectors {
        x.error = x.error.replace("AK", &alice_ak);
        let x = x.receiver("device_state", STATE).param("now", renewed_at);
        if x.edits.is_empty() {
            b.add_as_is(x);
        } else {
            b.add(x);
        }
    }
    let _ = never_bytes;
}

fn raw_sha256(m: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(m).into()
}

// --- sealed state (22) -----------------------------------------------------------------------

fn sealed_state_vectors(b: &mut Builder) {
    const BASE: &str = "records.json#/sealed/sealed";
    let base = b.files.bytes(BASE);
    let sequence = b
        .files
        .value("records.json", "/sealed/sequence")
        .as_u64()
        .unwrap();
    let key = b.files.get("records.json#/sealed/key").to_string();
    let slot = b.files.get("records.json#/sealed/slot").to_string();
    let vectors = [
        v(
            "sealed_state",
            "rollback",
            BASE,
            "22: a sequence below the lowest acceptable",
            &format!(
                "State(Rollback {{ sealed_at: {sequence}, expected_at_least: {} }})",
                sequence + 1
            ),
        )
        .change("none: opened with min_sequence = its sequence + 1", vec![])
        .param("min_sequence", sequence + 1)
        .param("slot", slot.clone()),
        v(
            "sealed_state",
            "another-slot",
            BASE,
            "22: the slot is in the associated data",
            "Crypto(AuthenticationFailed)",
        )
        .change(
            "none: opened for slot 0x02 (the meta record's key) instead of 0x01",
            vec![],
        )
        .param("min_sequence", sequence)
        .param("slot", "02"),
        v(
            "sealed_state",
            "tampered",
            BASE,
            "22: the AEAD must open",
            "Crypto(AuthenticationFailed)",
        )
        .change(
            "the last byte (the GCM tag's) XOR 0x01",
            vec![flip(&base, base.len() - 1, 0x01)],
        )
        .param("min_sequence", sequence)
        .param("slot", slot.clone()),
        v(
            "sealed_state",
            "sequence-changed",
            BASE,
            "22: the sequence is in the associated data, so a lowered one does not open",
            "Crypto(AuthenticationFailed)",
        )
        .change(
            "the sequence (bytes 2..10) lowered by one",
            vec![put(2, (sequence - 1).to_be_bytes())],
        )
        .param("min_sequence", 0)
        .param("slot", slot.clone()),
        v(
            "sealed_state",
            "truncated",
            BASE,
            "4: input ending early (inside the nonce)",
            "Decode(Truncated)",
        )
        .change("cut to 21 bytes", vec![cut(&base, 21)])
        .param("min_sequence", sequence)
        .param("slot", slot.clone()),
        v(
            "sealed_state",
            "unknown-version",
            BASE,
            "4: the version byte is checked first",
            "Decode(UnknownVersion(3))",
        )
        .change("byte 0 (version) 0x02 -> 0x03", vec![put(0, [3])])
        .param("min_sequence", sequence)
        .param("slot", slot.clone()),
    ];
    for x in vectors {
        let x = x.param("key", key.clone());
        if x.edits.is_empty() {
            b.add_as_is(x);
        } else {
            b.add(x);
        }
    }
}

// =============================================================================================
// Check: each input through the public API

/// Section 13's name of an error, with keys, addresses and ids as full lowercase hex.
fn show(e: &Error) -> String {
    let address =
        |a: &DeviceAddress| format!("{}{}", h(a.account.to_bytes()), h(a.device.0.to_be_bytes()));
    match e {
        Error::Device(DeviceError::NotInList(a)) => format!("Device(NotInList({}))", address(a)),
        Error::Device(DeviceError::CompanionExpired(a)) => {
            format!("Device(CompanionExpired({}))", address(a))
        }
        Error::Fanout(f) => match f {
            FanoutError::UnknownAccount(ak) => {
                format!("Fanout(UnknownAccount({}))", h(ak.to_bytes()))
            }
            FanoutError::DeviceListsDiverge {
                account,
                used,
                held,
            } => format!(
                "Fanout(DeviceListsDiverge {{ account: {}, used: {used}, held: {held} }})",
                h(account.to_bytes())
            ),
            FanoutError::NoSession(a) => format!("Fanout(NoSession({}))", address(a)),
            FanoutError::IdentityMismatch(a) => format!("Fanout(IdentityMismatch({}))", address(a)),
            FanoutError::SenderKeyMissing { from, key_id } => format!(
                "Fanout(SenderKeyMissing {{ from: {}, key_id: {key_id} }})",
                address(from)
            ),
            FanoutError::Duplicate { envelope_id } => {
                format!("Fanout(Duplicate {{ envelope_id: {} }})", h(envelope_id.0))
            }
            FanoutError::UnknownGroup(g) => format!("Fanout(UnknownGroup({}))", h(g.0)),
            FanoutError::NotAMember { group, account } => format!(
                "Fanout(NotAMember {{ group: {}, account: {} }})",
                h(group.0),
                h(account.to_bytes())
            ),
            other => format!("Fanout({other:?})"),
        },
        other => format!("{other:?}"),
    }
}

fn param<'a>(v: &'a ErrorVector, name: &str) -> &'a Value {
    v.params
        .get(name)
        .unwrap_or_else(|| panic!("{}: no {name}", v.name))
}

fn hex_param(v: &ErrorVector, name: &str) -> Vec<u8> {
    unhex(param(v, name).as_str().unwrap())
}

/// Feeds one vector's input through the public API; the state it ran on must be unchanged.
fn refused(files: &Files, v: &ErrorVector) -> Error {
    let input = unhex(&v.input);
    let state = |role: &str| files.resolve(&v.receiver[role]);
    match v.path.as_str() {
        "bundle" => match PreKeyBundle::from_bytes(&input) {
            Err(e) => e.into(),
            Ok(bundle) => bundle.verify().map(|_| ()).unwrap_err().into(),
        },
        "prekey_message" | "ratchet_message" => {
            let message = match IncomingMessage::decode(&input) {
                Err(e) => return e.into(),
                Ok(m) => m,
            };
            if let Some(store_bytes) = v.receiver.get("prekey_store_state") {
                let identity = IdentityKeyPair::from_bytes(&state("identity_state")).unwrap();
                let store_bytes = files.resolve(store_bytes);
                let mut store = PreKeyStore::from_bytes(&store_bytes).unwrap();
                let IncomingMessage::PreKey(pm) = &message else {
                    panic!("{}: not a pre-key message", v.name)
                };
                let e = Session::accept(&identity, &mut store, pm, SessionConfig::default())
                    .map(|_| ())
                    .unwrap_err();
                assert_eq!(*store.to_bytes(), store_bytes, "{}: store changed", v.name);
                e
            } else {
                let bytes = state("session_state");
                let mut session = Session::from_bytes(&bytes).unwrap();
                let e = session.decrypt(&message).map(|_| ()).unwrap_err();
                assert_eq!(*session.to_bytes(), bytes, "{}: session changed", v.name);
                e
            }
        }
        "group_message" => {
            let message = match GroupMessage::decode(&input) {
                Err(e) => return e.into(),
                Ok(m) => m,
            };
            let bytes = state("inbound_sender_key_state");
            let mut key = InboundSenderKey::from_bytes(&bytes).unwrap();
            let context = hex_param(v, "message_context");
            let e = key
                .decrypt_bound(&GroupConfig::default(), &message, &context)
                .map(|_| ())
                .unwrap_err();
            assert_eq!(*key.to_bytes(), bytes, "{}: inbound key changed", v.name);
            e.into()
        }
        "device_list" => {
            let list = match SignedDeviceList::from_bytes(&input) {
                Err(e) => return e.into(),
                Ok(l) => l,
            };
            let expected: [u8; 32] = hex_param(v, "expected_account").try_into().unwrap();
            let expected = AccountKey::from_bytes(&expected).unwrap();
            let policy = ListLimits::default();
            let known = v.receiver.get("known_list").map(|k| {
                SignedDeviceList::from_bytes(&files.resolve(k))
                    .unwrap()
                    .verify(&expected, None, &policy)
                    .unwrap()
            });
            let verified = match list.verify(&expected, known.as_ref(), &policy) {
                Err(e) => return e.into(),
                Ok(l) => l,
            };
            let id = DeviceId(param(v, "device_id").as_u64().unwrap() as u32);
            let now = Timestamp(param(v, "now").as_u64().unwrap());
            verified.check(id, now).map(|_| ()).unwrap_err().into()
        }
        "envelope" => {
            let bytes = state("device_state");
            let mut device = Device::from_bytes(&bytes).unwrap();
            let now = Timestamp(param(v, "now").as_u64().unwrap());
            let e = device.receive(now, &input).map(|_| ()).unwrap_err();
            assert_eq!(*device.to_bytes(), bytes, "{}: device changed", v.name);
            e
        }
        "sealed_state" => {
            let key = StorageKey::from_bytes(hex_param(v, "key").try_into().unwrap());
            let slot = hex_param(v, "slot");
            let min = param(v, "min_sequence").as_u64().unwrap();
            open_state(&key, &input, &slot, min)
                .map(|_| ())
                .unwrap_err()
        }
        other => panic!("unknown path {other}"),
    }
}

#[test]
fn error_vectors() {
    let generated = to_json(&errors_file());
    let committed = std::fs::read_to_string(path(FILE)).unwrap_or_default();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(committed.lines().count().min(generated.lines().count()));
        panic!(
            "{FILE} differs from what the code generates (first at line {}); run `{GENERATOR}`",
            line + 1
        );
    }
    let file: ErrorsFile = serde_json::from_str(&committed).unwrap();
    let files = Files::load();
    let mut per_path = BTreeMap::<String, usize>::new();
    let mut wrong = Vec::new();
    for v in &file.vectors {
        let base = files.resolve(&v.base);
        assert_eq!(
            h(apply(&base, &v.edits)),
            v.input,
            "{}: input is not base + edits",
            v.name
        );
        let got = show(&refused(&files, v));
        if got != v.error {
            wrong.push(format!("{}: expected {}, got {got}", v.name, v.error));
        }
        *per_path.entry(v.path.clone()).or_default() += 1;
    }
    eprintln!("errors.json: {per_path:?}");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(
        file.vectors.len() >= 60,
        "only {} vectors",
        file.vectors.len()
    );
}

#[test]
#[ignore = "writes test-vectors/errors.json; run after changing the vectors or the files they start from"]
fn regenerate() {
    std::fs::write(path(FILE), to_json(&errors_file())).unwrap();
}
