//! Test support shared by the crate's tests, benches, examples and fuzz targets. Not part of
//! the supported API: never use [`SeededRng`] outside tests.
// The fuzz entry points report broken invariants by panicking: that is how fuzzers see them.
#![allow(clippy::panic)]

use core::convert::Infallible;
use rand_core::{TryCryptoRng, TryRng};
use sha2::{Digest, Sha256};

/// The deterministic generator behind the protocol test vectors: output block `i` (from 0) is
/// SHA-256(seed ‖ u64_be(i)), and the stream is the blocks concatenated. Specified in
/// test-vectors/README.md so other implementations can replay the vectors.
#[derive(Clone)]
pub struct SeededRng {
    seed: [u8; 32],
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl SeededRng {
    /// A generator for `seed`.
    pub fn new(seed: [u8; 32]) -> Self {
        Self {
            seed,
            counter: 0,
            block: [0; 32],
            used: 32,
        }
    }

    /// A generator whose seed is SHA-256 of `label` (handy for readable test seeds).
    pub fn from_label(label: &str) -> Self {
        Self::new(Sha256::digest(label.as_bytes()).into())
    }
}

impl TryRng for SeededRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for byte in dst {
            if self.used == 32 {
                let mut h = Sha256::new();
                h.update(self.seed);
                h.update(self.counter.to_be_bytes());
                self.block = h.finalize().into();
                self.counter += 1;
                self.used = 0;
            }
            *byte = self.block[self.used];
            self.used += 1;
        }
        Ok(())
    }
}

impl TryCryptoRng for SeededRng {}

/// Entry points for the cargo-fuzz targets under `fuzz/` and for the corpus replay in
/// `tests/fuzz_corpus.rs`. Each must not panic on any input, and checks invariants of its own
/// (canonical round trips, state untouched by a refused message).
pub mod fuzz {
    use alloc::vec::Vec;

    use super::SeededRng;
    use crate::calls::CallKeyMessage;
    use crate::devices::{
        LinkApproval, LinkConfirmation, LinkInvitation, LinkRequest, PRIMARY_DEVICE, Primary,
        SignedDeviceList,
    };
    use crate::fanout::{Device, DeviceConfig, Outgoing};
    use crate::group::{
        GroupConfig, GroupId, GroupMessage, GroupReceiver, OutboundGroupSession,
        SenderKeyDistribution,
    };
    use crate::history::{HistoryOffer, HistoryOpener, HistorySealer};
    use crate::x3dh::{OneTimePreKeyId, PreKeyStoreConfig};
    use crate::{
        IdentityKeyPair, IncomingMessage, PreKeyBundle, PreKeyStore, Session, SessionConfig,
        Timestamp,
    };

    /// Bundle decoding: whatever decodes re-encodes to the same bytes.
    pub fn bundle(data: &[u8]) {
        if let Ok(bundle) = PreKeyBundle::from_bytes(data) {
            assert_eq!(bundle.to_bytes(), data, "bundle encoding is not canonical");
            let _ = bundle.verify();
        }
    }

    /// Pairwise message decoding.
    pub fn message(data: &[u8]) {
        let _ = IncomingMessage::decode(data);
    }

    /// State decoding: whatever decodes re-encodes to the same bytes.
    pub fn state(data: &[u8]) {
        if let Ok(s) = Session::from_bytes(data) {
            assert_eq!(&**s.to_bytes(), data, "session state is not canonical");
        }
        if let Ok(s) = PreKeyStore::from_bytes(data) {
            assert_eq!(&**s.to_bytes(), data, "prekey store state is not canonical");
        }
        if let Ok(s) = IdentityKeyPair::from_bytes(data) {
            assert_eq!(&**s.to_bytes(), data, "identity state is not canonical");
        }
        if let Ok(s) = OutboundGroupSession::from_bytes(data) {
            assert_eq!(
                &**s.to_bytes(),
                data,
                "outbound group state is not canonical"
            );
        }
        if let Ok(s) = GroupReceiver::from_bytes(data) {
            assert_eq!(
                &**s.to_bytes(),
                data,
                "group receiver state is not canonical"
            );
        }
        if let Ok(s) = Primary::from_bytes(data) {
            assert_eq!(&**s.to_bytes(), data, "primary state is not canonical");
        }
        if let Ok(s) = Device::from_bytes(data) {
            let again = s.to_bytes();
            if data.first() == again.first() {
                assert_eq!(&**again, data, "device state is not canonical");
            } else {
                // An older version migrates: the result must read back to the same state.
                let migrated = Device::from_bytes(&again).map(|d| d.to_bytes());
                assert_eq!(migrated.as_deref().map(|v| &v[..]), Ok(&again[..]));
            }
        }
    }

    /// History offers and call key messages re-encode to the same bytes; arbitrary chunks
    /// pushed into an opener for a fixed offer are refused without advancing it.
    pub fn history_and_calls(data: &[u8]) {
        if let Ok(o) = HistoryOffer::from_bytes(data) {
            assert_eq!(
                &**o.to_bytes(),
                data,
                "history offer encoding is not canonical"
            );
        }
        if let Ok(m) = CallKeyMessage::from_bytes(data) {
            assert_eq!(&**m.to_bytes(), data, "call key encoding is not canonical");
        }
        let rng = &mut SeededRng::from_label("ratchetry history fuzz fixture");
        let mut sealer = HistorySealer::new(rng);
        let _ = sealer.push(&[0x42; 100]);
        let (_, offer) = sealer.finish();
        let mut opener = HistoryOpener::new(&offer);
        if opener.push(data).is_err() {
            assert_eq!(
                opener.chunks_opened(),
                0,
                "a refused chunk advanced the opener"
            );
        }
    }

    /// Sealed-state opening of arbitrary bytes never panics, and what opens is fed to the
    /// state decoders.
    pub fn sealed_state(data: &[u8]) {
        let key = crate::persist::StorageKey::from_bytes([0x5e; 32]);
        for kind in [
            crate::persist::StateKind::Device,
            crate::persist::StateKind::Session,
        ] {
            if let Ok(state) = crate::persist::open_state(&key, data, kind) {
                self::state(&state);
            }
        }
    }

    /// Device-layer decoders: lists and the linking messages re-encode to the same bytes.
    pub fn device_wire(data: &[u8]) {
        if let Ok(l) = SignedDeviceList::from_bytes(data) {
            assert_eq!(l.to_bytes(), data, "device list encoding is not canonical");
        }
        if let Ok(m) = LinkInvitation::from_bytes(data) {
            assert_eq!(m.to_bytes(), data, "invitation encoding is not canonical");
        }
        if let Ok(m) = LinkRequest::from_bytes(data) {
            assert_eq!(m.to_bytes(), data, "request encoding is not canonical");
        }
        if let Ok(m) = LinkApproval::from_bytes(data) {
            assert_eq!(m.to_bytes(), data, "approval encoding is not canonical");
        }
        if let Ok(m) = LinkConfirmation::from_bytes(data) {
            assert_eq!(m.to_bytes(), data, "confirmation encoding is not canonical");
        }
    }

    /// Two accounts' devices with sessions and a sender key, and envelopes in flight.
    #[derive(Clone)]
    pub struct FanoutFixture {
        /// Bob's phone, the receiver.
        pub receiver: Device,
        /// Genuine envelopes for it not yet received: 1:1, a sender-key distribution, a group
        /// message.
        pub in_flight: Vec<Vec<u8>>,
    }

    impl FanoutFixture {
        /// The fixture's clock.
        pub const NOW: Timestamp = Timestamp(1_790_000_000_000);

        /// Builds the fixture deterministically.
        pub fn new() -> Self {
            let rng = &mut SeededRng::from_label("ratchetry fanout fuzz fixture");
            let now = Self::NOW;
            let mut run = || -> crate::Result<Self> {
                let config = DeviceConfig::default();
                let a_id = IdentityKeyPair::generate(rng);
                let a_primary = Primary::new(rng, &a_id.public(), now, config.policy);
                let b_id = IdentityKeyPair::generate(rng);
                let b_primary = Primary::new(rng, &b_id.public(), now, config.policy);
                let (a_list, b_list) = (a_primary.device_list(), b_primary.device_list());
                let mut alice =
                    Device::new(rng, now, a_id, PRIMARY_DEVICE, a_list.clone(), 2, config)?;
                let mut bob =
                    Device::new(rng, now, b_id, PRIMARY_DEVICE, b_list.clone(), 2, config)?;
                alice.update_device_list(now, &b_list.account(), b_list.signed().clone())?;
                bob.update_device_list(now, &a_list.account(), a_list.signed().clone())?;
                alice.start_sessions(rng, now, &[(bob.address(), bob.bundle(None))])?;
                let to = b_list.account();
                let first = ready(alice.send(rng, now, &to, b"first")?)?;
                for (_, e) in &first.envelopes {
                    bob.receive(now, e)?;
                }
                let mut in_flight = Vec::new();
                let direct = ready(alice.send(rng, now, &to, b"direct")?)?;
                in_flight.extend(direct.envelopes.into_iter().map(|(_, e)| e));
                let group = ready(alice.send_group(rng, now, GroupId([0x11; 32]), &[to], b"g")?)?;
                in_flight.extend(group.envelopes.into_iter().map(|(_, e)| e));
                in_flight.extend(group.group.map(|(e, _)| e));
                Ok(Self {
                    receiver: bob,
                    in_flight,
                })
            };
            match run() {
                Ok(f) => f,
                Err(e) => panic!("fanout fixture construction failed: {e}"),
            }
        }
    }

    impl Default for FanoutFixture {
        fn default() -> Self {
            Self::new()
        }
    }

    fn ready(o: Outgoing) -> crate::Result<crate::fanout::Outbox> {
        match o {
            Outgoing::Ready(o) => Ok(o),
            Outgoing::NeedBundles(_) => Err(crate::FanoutError::NoSession.into()),
        }
    }

    /// `Device::receive` of arbitrary bytes: a refusal leaves the device byte-identical.
    pub fn device_receive(fixture: &mut FanoutFixture, data: &[u8]) {
        let before = fixture.receiver.to_bytes();
        if fixture.receiver.receive(FanoutFixture::NOW, data).is_err() {
            assert_eq!(*before, *fixture.receiver.to_bytes(), "state changed");
        }
    }

    /// Group message and distribution decoding: a distribution that decodes re-encodes to the
    /// same bytes.
    pub fn group_wire(data: &[u8]) {
        let _ = GroupMessage::decode(data);
        if let Ok(d) = SenderKeyDistribution::from_bytes(data) {
            assert_eq!(
                &**d.to_bytes(),
                data,
                "distribution encoding is not canonical"
            );
        }
    }

    /// A group receiver holding one sender's key, and that sender's messages not yet received.
    #[derive(Clone)]
    pub struct GroupFixture {
        /// The sender device's identity key.
        pub sender: crate::IdentityKey,
        /// The receiver, with the sender's first generation.
        pub receiver: GroupReceiver,
        /// Genuine group messages the receiver has not seen (iterations 1..=3; iteration 0 was
        /// received).
        pub in_flight: Vec<Vec<u8>>,
    }

    impl GroupFixture {
        /// Builds the fixture deterministically.
        pub fn new() -> Self {
            let rng = &mut SeededRng::from_label("ratchetry group fuzz fixture");
            let sender = IdentityKeyPair::generate(rng).public();
            let mut out = OutboundGroupSession::new(rng, GroupId([0x42; 32]), &sender);
            let mut receiver = GroupReceiver::new(GroupConfig::default());
            let mut run = || -> crate::Result<Self> {
                receiver.process_distribution(&sender, &out.distribution())?;
                let first = out.encrypt(b"first")?;
                receiver.decrypt(&sender, &GroupMessage::decode(&first)?)?;
                let mut in_flight = Vec::new();
                for i in 0..3u8 {
                    in_flight.push(out.encrypt(&[i; 40])?);
                }
                Ok(Self {
                    sender,
                    receiver: receiver.clone(),
                    in_flight,
                })
            };
            match run() {
                Ok(f) => f,
                Err(e) => panic!("group fixture construction failed: {e}"),
            }
        }
    }

    impl Default for GroupFixture {
        fn default() -> Self {
            Self::new()
        }
    }

    /// Group decrypt of arbitrary bytes, also tried as a distribution: a refusal leaves the
    /// receiver byte-identical.
    pub fn group_decrypt(fixture: &mut GroupFixture, data: &[u8]) {
        let before = fixture.receiver.to_bytes();
        if let Ok(message) = GroupMessage::decode(data) {
            match fixture.receiver.decrypt(&fixture.sender, &message) {
                Ok(_) => assert_ne!(*before, *fixture.receiver.to_bytes()),
                Err(_) => assert_eq!(*before, *fixture.receiver.to_bytes(), "state changed"),
            }
        } else if let Ok(d) = SenderKeyDistribution::from_bytes(data) {
            if fixture
                .receiver
                .process_distribution(&fixture.sender, &d)
                .is_err()
            {
                assert_eq!(*before, *fixture.receiver.to_bytes(), "state changed");
            }
        }
    }

    /// A fixed pair of established sessions plus Bob's prekeys, the same on every call.
    #[derive(Clone)]
    pub struct Fixture {
        /// Alice's identity.
        pub alice: IdentityKeyPair,
        /// Bob's identity.
        pub bob: IdentityKeyPair,
        /// Bob's prekey store after accepting Alice's session.
        pub bob_store: PreKeyStore,
        /// Alice's session with Bob.
        pub alice_session: Session,
        /// Bob's session with Alice.
        pub bob_session: Session,
        /// Messages Alice sent that Bob has not received yet (one pre-key message, then
        /// ratchet messages after Bob's reply).
        pub in_flight: Vec<Vec<u8>>,
    }

    impl Fixture {
        /// Builds the fixture deterministically.
        pub fn new() -> Self {
            let rng = &mut SeededRng::from_label("ratchetry fuzz fixture");
            let alice = IdentityKeyPair::generate(rng);
            let bob = IdentityKeyPair::generate(rng);
            let mut bob_store =
                PreKeyStore::new(rng, &bob, Timestamp(0), PreKeyStoreConfig::default());
            bob_store.generate_one_time_prekeys(rng, 2);
            let config = SessionConfig::default();
            let run = || -> crate::Result<Self> {
                let bundle = bob_store.bundle(&bob, Some(OneTimePreKeyId(1))).verify()?;
                let mut alice_session = Session::initiate(rng, &alice, &bundle, config)?;
                let first = alice_session.encrypt(rng, b"first")?;
                let unanswered = alice_session.encrypt(rng, b"unanswered pre-key")?;
                let IncomingMessage::PreKey(pk) = IncomingMessage::decode(&first)? else {
                    return Err(crate::RatchetError::WrongSession.into());
                };
                let mut bob_store = bob_store.clone();
                let (mut bob_session, _) = Session::accept(&bob, &mut bob_store, &pk, config)?;
                let reply = bob_session.encrypt(rng, b"reply")?;
                alice_session.decrypt(&IncomingMessage::decode(&reply)?)?;
                let mut in_flight = alloc::vec![unanswered];
                for i in 0..3u8 {
                    in_flight.push(alice_session.encrypt(rng, &[i; 40])?);
                }
                Ok(Self {
                    alice,
                    bob,
                    bob_store,
                    alice_session,
                    bob_session,
                    in_flight,
                })
            };
            match run() {
                Ok(f) => f,
                Err(e) => panic!("fixture construction failed: {e}"),
            }
        }
    }

    impl Default for Fixture {
        fn default() -> Self {
            Self::new()
        }
    }

    /// Session decrypt of arbitrary bytes: a refused message leaves the session byte-identical;
    /// an accepted one changes it.
    pub fn decrypt(fixture: &mut Fixture, data: &[u8]) {
        let Ok(message) = IncomingMessage::decode(data) else {
            return;
        };
        let before = fixture.bob_session.to_bytes();
        match fixture.bob_session.decrypt(&message) {
            Ok(_) => assert_ne!(*before, *fixture.bob_session.to_bytes()),
            Err(_) => assert_eq!(*before, *fixture.bob_session.to_bytes(), "state changed"),
        }
    }

    /// Accepting arbitrary pre-key messages: a refusal leaves the store byte-identical.
    pub fn accept(fixture: &mut Fixture, data: &[u8]) {
        let Ok(IncomingMessage::PreKey(message)) = IncomingMessage::decode(data) else {
            return;
        };
        let before = fixture.bob_store.to_bytes();
        let result = Session::accept(
            &fixture.bob,
            &mut fixture.bob_store,
            &message,
            SessionConfig::default(),
        );
        if result.is_err() {
            assert_eq!(*before, *fixture.bob_store.to_bytes(), "store changed");
        }
    }
}

/// The crate's own KDFs, exposed for the protocol vectors (`kdf-chains.json`).
pub mod kdf {
    use crate::primitives::Secret;
    use crate::ratchet::keys::{ChainKey, MessageKey, RootKey};

    /// KDF_RK: (new root key, chain key).
    pub fn root(root_key: [u8; 32], dh_output: [u8; 32]) -> ([u8; 32], [u8; 32]) {
        let (rk, ck) =
            RootKey(Secret::from_bytes(root_key)).ratchet(&Secret::from_bytes(dh_output));
        (*rk.0.as_bytes(), *ck.0.as_bytes())
    }

    /// KDF_CK: (message key, next chain key).
    pub fn chain(chain_key: [u8; 32]) -> ([u8; 32], [u8; 32]) {
        let (mk, ck) = ChainKey(Secret::from_bytes(chain_key)).step();
        (*mk.0.as_bytes(), *ck.0.as_bytes())
    }

    /// A pairwise message key's AES-256-GCM key and nonce.
    pub fn message_keys(message_key: [u8; 32]) -> ([u8; 32], [u8; 12]) {
        MessageKey(Secret::from_bytes(message_key))
            .pairwise()
            .key_and_nonce()
    }
}

/// A session's current keys, for the protocol vectors (`ratchet-transcript.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKeys {
    /// The root key.
    pub root_key: [u8; 32],
    /// The current sending ratchet public key.
    pub ratchet_public: [u8; 32],
    /// The sending chain key and next message number, if a sending chain exists.
    pub sending: Option<([u8; 32], u32)>,
    /// The receiving chain's ratchet key, chain key and next message number.
    pub receiving: Option<([u8; 32], [u8; 32], u32)>,
}

/// Reads a session's current keys.
pub fn session_keys(session: &crate::Session) -> SessionKeys {
    let s = &*session.0;
    SessionKeys {
        root_key: *s.root.0.as_bytes(),
        ratchet_public: s.self_ratchet.public().to_bytes(),
        sending: s.send.as_ref().map(|c| (*c.key.0.as_bytes(), c.next)),
        receiving: s
            .recv
            .as_ref()
            .map(|c| (c.ratchet_key.to_bytes(), *c.key.0.as_bytes(), c.next)),
    }
}
