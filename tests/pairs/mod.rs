//! Two sessions for the session-level tests: Alice initiates to a bundle of Bob's store, Bob
//! accepts her first message. Also a small deterministic generator for a test's own choices
//! (which side acts, what the relay drops), apart from the sessions' randomness.

#![allow(dead_code, unreachable_pub)]

use core::convert::Infallible;

use rand_core::{TryCryptoRng, TryRng};
use ratchetry::testing::SeededRng;
use ratchetry::testing::hooks::{store_before_pq_ratchet, without_pq_ratchet};
use ratchetry::{
    Error, IdentityKeyPair, IncomingMessage, PreKeyBundle, PreKeyStore, Session, SessionConfig,
    Timestamp,
};

pub const NOW: Timestamp = Timestamp(1_790_000_000_000);

/// A test's own choices (xorshift): which side acts, which message the relay drops.
pub struct Prng(pub u64);

impl Prng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    /// A number below `n` (not 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Alice's session, initiated to Bob's bundle, Bob's identity and store. `pq`: the store runs
/// the post-quantum ratchet (a current store marks every ML-KEM prekey with bit 31; one from
/// before the ratchet publishes an unmarked last-resort key); `old`: Alice is from before the
/// ratchet.
pub fn start(rng: &mut SeededRng, pq: bool, old: bool) -> (Session, IdentityKeyPair, PreKeyStore) {
    let alice = IdentityKeyPair::generate(rng);
    let bob = IdentityKeyPair::generate(rng);
    let mut store = PreKeyStore::new(rng, &bob, NOW, Default::default());
    let kem = if pq {
        Some(store.generate_one_time_kem_prekeys(rng, &bob, NOW, 1)[0].id)
    } else {
        store_before_pq_ratchet(&mut store, &bob);
        None
    };
    let bundle = PreKeyBundle::from_bytes(&store.bundle(&bob, None, kem).to_bytes()).unwrap();
    assert_eq!(bundle.kem_prekey().id.pq_ratchet(), pq);
    let bundle = bundle.verify().unwrap();
    let mut a = Session::initiate(rng, &alice, &bundle, SessionConfig::default()).unwrap();
    if old {
        without_pq_ratchet(&mut a);
    }
    (a, bob, store)
}

/// Bob's session from Alice's first message.
pub fn accept(
    bob: &IdentityKeyPair,
    store: &mut PreKeyStore,
    wire: &[u8],
) -> Result<(Session, Vec<u8>), Error> {
    let IncomingMessage::PreKey(pk) = IncomingMessage::decode(wire)? else {
        panic!("a pre-key message")
    };
    Session::accept(bob, store, &pk, SessionConfig::default())
}

/// Alice's and Bob's sessions after Alice's first message; both run the post-quantum ratchet
/// when `pq`.
pub fn pair(rng: &mut SeededRng, pq: bool) -> (Session, Session) {
    let (mut a, bob, mut store) = start(rng, pq, false);
    let wire = a.encrypt(rng, b"hello").unwrap();
    let (b, _) = accept(&bob, &mut store, &wire).unwrap();
    (a, b)
}

pub fn recv(s: &mut Session, wire: &[u8]) -> Result<Vec<u8>, Error> {
    s.decrypt(&IncomingMessage::decode(wire)?)
}

/// What `s`'s next send would do, tried on a copy with a copy of `rng`: whether it
/// encapsulates (its post-quantum epoch grows), and the chunk it carries.
pub fn next_send(s: &Session, rng: &SeededRng) -> (bool, Option<(u8, u8)>) {
    let mut trial = s.clone();
    let e = trial.pq_ratchet_epoch();
    let wire = trial.encrypt(&mut rng.clone(), b"").unwrap();
    (trial.pq_ratchet_epoch() > e, chunk(&wire))
}

/// The extension field's offset in a ratchet message (8.4).
pub const FIELD: usize = 58;

/// Where the ratchet message starts (after a pre-key message's prefix, 9.2).
pub fn ratchet_start(wire: &[u8]) -> usize {
    if wire[1] == 3 {
        2 + 32 + 32 + 4 + 1 + if wire[70] == 1 { 4 } else { 0 } + 4 + 1568
    } else {
        0
    }
}

pub fn field_at(wire: &[u8]) -> usize {
    ratchet_start(wire) + FIELD
}

/// The chunk a message carries, `(kind, index)` (kind 0 header, 1 vector, 2 ct1, 3 ct2), if
/// any: what a relay reads in clear (25.5).
pub fn chunk(wire: &[u8]) -> Option<(u8, u8)> {
    let at = field_at(wire);
    (wire[at] & 0xc0 == 0xc0).then(|| (wire[at + 1] >> 6, wire[at + 1] & 0x3f))
}

/// The kind of the chunk a message carries, if any.
pub fn chunk_kind(wire: &[u8]) -> Option<u8> {
    chunk(wire).map(|(kind, _)| kind)
}

/// Alice's generator, recording the draws of her current send.
pub struct Recording<'a> {
    pub inner: &'a mut SeededRng,
    pub draws: Vec<Vec<u8>>,
}

impl TryRng for Recording<'_> {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        self.inner.try_next_u32()
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        self.inner.try_next_u64()
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.inner.try_fill_bytes(dst)?;
        self.draws.push(dst.to_vec());
        Ok(())
    }
}

impl TryCryptoRng for Recording<'_> {}

/// The observer's generator for one send: Alice's X25519 ratchet key and header salt of the
/// same send (a session draws, per send, 32 bytes of ratchet key when a chain starts, then 16
/// of salt, then ML-KEM randomness: 32 bytes `m` when it encapsulates, 64 of seed when it
/// publishes), and its own bytes for everything else. So it knows every X25519 secret of
/// Alice's and none of her ML-KEM randomness.
pub struct Observer<'a> {
    pub alice: &'a [Vec<u8>],
    pub own: &'a mut SeededRng,
    pub first: bool,
}

impl TryRng for Observer<'_> {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        self.own.try_next_u32()
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        self.own.try_next_u64()
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        let first = core::mem::replace(&mut self.first, false);
        let alices_key = self.alice.first().filter(|d| first && d.len() == 32);
        let alices_salt = self.alice.iter().find(|d| d.len() == 16);
        match (dst.len(), alices_key, alices_salt) {
            (32, Some(key), _) => dst.copy_from_slice(key),
            (16, _, Some(salt)) => dst.copy_from_slice(salt),
            _ => self.own.try_fill_bytes(dst)?,
        }
        Ok(())
    }
}

impl TryCryptoRng for Observer<'_> {}
