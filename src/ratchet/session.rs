//! One Double Ratchet session between two devices.
//!
//! Every operation computes on locals and writes to the session only after the message
//! authenticated (receive) or was sealed (send), so a failure leaves the session exactly as it
//! was. The sending half of a DH ratchet step is deferred to the next send: receiving never
//! needs randomness, and the root chain is the same as in the specification.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use rand_core::CryptoRng;

use super::config::SessionConfig;
use super::keys::{ChainKey, MessageKey, RootKey, SALT_LEN};
use super::message::{
    Header, IncomingMessage, MAX_HEADER_LEN, PreKeyMessage, RatchetMessage, prekey_prefix_len,
    write_prekey_prefix,
};
use super::pq::{self, Extension, PqRatchet};
use super::skipped::{SkippedKey, SkippedKeys};
use crate::error::{DecodeError, Error, RatchetError};
use crate::primitives::KemCiphertext;
use crate::primitives::{DhKeyPair, DhPublicKey, IdentityKey, IdentityKeyPair, TAG_LEN};
use crate::x3dh::{self, AssociatedData, Origin, PreKeyStore, VerifiedBundle, X3dhHeader};

/// Which side of X3DH this session was on; fixes the order of identities in the AD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Initiator,
    Responder,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SendChain {
    pub(crate) key: ChainKey,
    pub(crate) next: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RecvChain {
    pub(crate) ratchet_key: DhPublicKey,
    pub(crate) key: ChainKey,
    pub(crate) next: u32,
}

#[derive(Clone)]
pub(crate) struct State {
    pub(crate) config: SessionConfig,
    pub(crate) role: Role,
    pub(crate) local: IdentityKey,
    pub(crate) remote: IdentityKey,
    /// The PQXDH values this session began with (sent in pre-key messages by the initiator;
    /// matched against repeated pre-key messages by the responder).
    pub(crate) origin: Origin,
    /// Initiator awaiting its first reply: the KEM ciphertext its pre-key messages repeat.
    pub(crate) pending_kem: Option<KemCiphertext>,
    /// Initiator only: no message from the responder yet, so sends are pre-key messages.
    pub(crate) awaiting_reply: bool,
    pub(crate) root: RootKey,
    pub(crate) self_ratchet: DhKeyPair,
    pub(crate) remote_ratchet: DhPublicKey,
    /// `None` after a receiving ratchet step, until the next send starts a new chain.
    pub(crate) send: Option<SendChain>,
    /// PN for the headers of the current (or next) sending chain.
    pub(crate) previous_send_length: u32,
    pub(crate) recv: Option<RecvChain>,
    pub(crate) skipped: SkippedKeys,
    /// The post-quantum ratchet, in a session whose KEM prekey said both sides run it.
    /// Held inline: it is on by default, so nearly every session holds one, and a box of its
    /// own would cost every session an allocation to load and a free to drop.
    pub(crate) pq: Option<PqRatchet>,
}

/// A pairwise Double Ratchet session. Persist [`to_bytes`](Self::to_bytes) after every
/// successful operation, before acting on its output.
#[derive(Clone)]
pub struct Session(pub(crate) Box<State>);

/// A message opened on a session (its plaintext returned), and what it changes there once
/// applied: see [`Session::open_message`].
pub(crate) struct Opened(Step);

impl Opened {
    /// Whether the message starts a new receiving chain (a DH step): the peer answered in
    /// this session. A message of a chain already read (the next one or a late one) does not.
    pub(crate) fn starts_chain(&self) -> bool {
        matches!(&self.0, Step::Chain(plan, _) if plan.root.is_some())
    }
}

enum Step {
    /// Read with the skipped key at `index`; a chunk of the current receiving chain's.
    Skipped {
        index: usize,
        extension: Option<Extension>,
    },
    Chain(Plan, Option<Extension>),
}

/// What a receive will change, computed before the message is authenticated.
struct Plan {
    key: MessageKey,
    root: Option<RootKey>,
    chain: RecvChain,
    skipped: Vec<SkippedKey>,
    /// The post-quantum epoch a new receiving chain mixed.
    pq_chain: Option<u32>,
    /// A new chain whose header says its sender sent fewer messages on its previous chain
    /// than arrived here from it: the sender was restored from a copy taken before it sent
    /// them (8.6 step 4).
    peer_restored: bool,
}

impl Session {
    /// Starts a session as the initiator, from a verified bundle. Draws 96 bytes from `rng`:
    /// the PQXDH ephemeral key, the ML-KEM encapsulation randomness, then the first ratchet
    /// key.
    pub fn initiate(
        rng: &mut impl CryptoRng,
        identity: &IdentityKeyPair,
        bundle: &VerifiedBundle,
        config: SessionConfig,
    ) -> Result<Self, Error> {
        let x3dh::Initiated {
            shared_secret,
            origin,
            kem_ciphertext,
        } = x3dh::initiate(rng, identity, bundle)?;
        let remote_ratchet = bundle.signed_prekey().key;
        let pq = (bundle.kem_prekey().id.pq_ratchet()).then(|| PqRatchet::new(true));
        let self_ratchet = DhKeyPair::generate(rng);
        let (root, key) = RootKey(shared_secret).ratchet(&self_ratchet.agree(&remote_ratchet)?);
        Ok(Self(Box::new(State {
            config,
            role: Role::Initiator,
            local: identity.public(),
            remote: bundle.identity_key(),
            origin,
            pending_kem: Some(kem_ciphertext),
            awaiting_reply: true,
            root,
            self_ratchet,
            remote_ratchet,
            send: Some(SendChain { key, next: 0 }),
            previous_send_length: 0,
            recv: None,
            skipped: SkippedKeys::default(),
            pq,
        })))
    }

    /// Accepts a pre-key message as the responder: runs X3DH against `store`, decrypts the
    /// message, and only then consumes the one-time prekey it names. On error neither the
    /// store nor anything else changed. Check [`PreKeyMessage::initiator_identity`] against the
    /// sender's published identity first.
    pub fn accept(
        identity: &IdentityKeyPair,
        store: &mut PreKeyStore,
        message: &PreKeyMessage<'_>,
        config: SessionConfig,
    ) -> Result<(Self, Vec<u8>), Error> {
        Self::accept_bound(identity, store, message, config, &[])
    }

    /// [`accept`](Self::accept) of a message sealed with a bound `context` (see
    /// [`encrypt_bound`](Self::encrypt_bound)).
    pub fn accept_bound(
        identity: &IdentityKeyPair,
        store: &mut PreKeyStore,
        message: &PreKeyMessage<'_>,
        config: SessionConfig,
        context: &[u8],
    ) -> Result<(Self, Vec<u8>), Error> {
        let (session, plaintext, consumption) =
            Self::accept_pending(identity, store, message, config, context)?;
        store.consume(consumption);
        Ok((session, plaintext))
    }

    /// [`accept_bound`](Self::accept_bound) without touching the store: the caller applies the
    /// returned consumption once everything else it does with the message has succeeded.
    pub(crate) fn accept_pending(
        identity: &IdentityKeyPair,
        store: &PreKeyStore,
        message: &PreKeyMessage<'_>,
        config: SessionConfig,
        context: &[u8],
    ) -> Result<(Self, Vec<u8>, x3dh::Consumption), Error> {
        let (shared_secret, signed_prekey, consumption) =
            x3dh::respond(identity, store, &message.x3dh)?;
        let mut session = Self(Box::new(State {
            config,
            role: Role::Responder,
            local: identity.public(),
            remote: message.x3dh.initiator,
            origin: message.x3dh.origin(),
            pending_kem: None,
            awaiting_reply: false,
            root: RootKey(shared_secret),
            self_ratchet: signed_prekey,
            remote_ratchet: message.message.header.ratchet_key,
            send: None,
            previous_send_length: 0,
            recv: None,
            skipped: SkippedKeys::default(),
            // The initiator runs the ratchet when the KEM prekey's id says this device does,
            // and then its first message carries an extension: one from before the ratchet
            // sends none, and the session runs without it. A server can neither add nor strip
            // an extension (the header is authenticated), nor set or clear the bit (signed).
            pq: (message.x3dh.kem_prekey.pq_ratchet() && !message.message.extension.is_empty())
                .then(|| PqRatchet::new(false)),
        }));
        let plaintext =
            session.decrypt_bound(&IncomingMessage::Ratchet(message.message), context)?;
        Ok((session, plaintext, consumption))
    }

    /// Encrypts `plaintext` into wire bytes for the peer. Draws 32 bytes from `rng` when this
    /// send starts a new sending chain (the first send after receiving a new ratchet key), then
    /// 16 bytes of header salt.
    pub fn encrypt(
        &mut self,
        rng: &mut impl CryptoRng,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, Error> {
        self.encrypt_bound(rng, plaintext, &[])
    }

    /// [`encrypt`](Self::encrypt), with `context` appended to the AEAD associated data: the
    /// message then opens only through [`decrypt_bound`](Self::decrypt_bound) with the same
    /// context. Layers above bind routing metadata this way.
    pub fn encrypt_bound(
        &mut self,
        rng: &mut impl CryptoRng,
        plaintext: &[u8],
        context: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.seal(rng, &[plaintext], context, &mut out, 0, None)?;
        Ok(out)
    }

    /// [`encrypt_bound`](Self::encrypt_bound) with `context` taken as the bytes already in
    /// `out` (an envelope header), the message appended after them; the plaintext is the
    /// concatenation of `parts`, so a caller need not copy them into a buffer first. Returns
    /// the message's header salt, which names it to its sender.
    pub(crate) fn encrypt_bound_into(
        &mut self,
        rng: &mut impl CryptoRng,
        parts: &[&[u8]],
        out: &mut Vec<u8>,
    ) -> Result<[u8; SALT_LEN], Error> {
        let context_len = out.len();
        self.seal(rng, parts, &[], out, context_len, None)
    }

    /// A message whose header carries `extension` instead of the post-quantum ratchet's own:
    /// what a peer that does not follow the ratchet could send (fuzzing).
    #[cfg(feature = "test-support")]
    pub(crate) fn encrypt_with_extension(
        &mut self,
        rng: &mut impl CryptoRng,
        plaintext: &[u8],
        extension: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.seal(rng, &[plaintext], &[], &mut out, 0, Some(extension))?;
        Ok(out)
    }

    /// What [`encrypt`](Self::encrypt) would refuse, checked without changing anything: a
    /// sending chain at its last message number, or a session that still sends its X3DH
    /// values without the ML-KEM ciphertext they need. The fanout layer checks every session
    /// of a send first and then encrypts on each in place.
    pub(crate) fn sealable(&self) -> Result<(), RatchetError> {
        let s = &*self.0;
        if s.send.as_ref().is_some_and(|c| c.next == u32::MAX) {
            return Err(RatchetError::ChainExhausted);
        }
        if s.awaiting_reply && (s.origin.kem.is_none() || s.pending_kem.is_none()) {
            return Err(RatchetError::NotPostQuantum);
        }
        Ok(())
    }

    /// Seals the concatenation of `plaintext` into `out` after its first `context_len` bytes,
    /// which (with `context`) are bound as AEAD context. On error `out` and the session are
    /// unchanged. Returns the header salt. `forced`: an extension to send instead of the
    /// ratchet's (test support only).
    fn seal(
        &mut self,
        rng: &mut impl CryptoRng,
        plaintext: &[&[u8]],
        context: &[u8],
        out: &mut Vec<u8>,
        context_len: usize,
        forced: Option<&[u8]>,
    ) -> Result<[u8; SALT_LEN], Error> {
        // The refusals first, before a new sending chain changes anything.
        self.sealable()?;
        let s = &mut *self.0;
        if s.send.is_none() {
            let self_ratchet = DhKeyPair::generate(rng);
            let dh = self_ratchet.agree(&s.remote_ratchet)?;
            let mixed = s.pq.as_mut().map(|pq| pq.begin_send_chain());
            let pq_secret = mixed.as_ref().and_then(|(_, secret)| secret.as_ref());
            let (root, key) = s.root.ratchet_pq(&dh, pq_secret);
            s.root = root;
            s.self_ratchet = self_ratchet;
            s.send = Some(SendChain { key, next: 0 });
        }
        let Some(send) = s.send.as_mut() else {
            return Err(RatchetError::ChainExhausted.into());
        };
        let following = send
            .next
            .checked_add(1)
            .ok_or(RatchetError::ChainExhausted)?;
        let (message_key, next_key) = send.key.step();
        let mut salt = [0u8; SALT_LEN];
        rng.fill_bytes(&mut salt);
        let header = Header {
            ratchet_key: s.self_ratchet.public(),
            previous_chain_length: s.previous_send_length,
            message_number: send.next,
            salt,
        };

        let x3dh = if s.awaiting_reply {
            let (Some((kem_prekey, _)), Some(ct)) = (s.origin.kem, &s.pending_kem) else {
                return Err(RatchetError::NotPostQuantum.into());
            };
            Some(X3dhHeader {
                initiator: s.origin.initiator,
                base_key: s.origin.base_key,
                signed_prekey: s.origin.signed_prekey,
                one_time_prekey: s.origin.one_time_prekey,
                kem_prekey,
                kem_ciphertext: ct.as_bytes(),
            })
        } else {
            None
        };
        // Nothing fails from here on: the post-quantum ratchet may draw randomness and move.
        let mut own = [0u8; pq::CHUNK_LEN];
        let own_len = s.pq.as_mut().map_or(0, |pq| pq.send(rng).encode(&mut own));
        let extension = forced.unwrap_or(&own[..own_len]);
        let mut header_bytes = [0u8; MAX_HEADER_LEN];
        let header_len = header.encode(extension, &mut header_bytes);
        let header = &header_bytes[..header_len];
        let prefix = x3dh.as_ref().map_or(0, prekey_prefix_len);
        let context = if context_len > 0 {
            &out[..context_len]
        } else {
            context
        };
        let aad = Aad::new(s.role, &s.local, &s.remote, header, context);
        // The message's exact length: one allocation, nothing spare (a test holds it to this).
        let plaintext_len: usize = plaintext.iter().map(|p| p.len()).sum();
        out.reserve_exact(prefix + header_len + plaintext_len + TAG_LEN);
        if let Some(x3dh) = &x3dh {
            write_prekey_prefix(out, x3dh);
        }
        out.extend_from_slice(header);
        let start = out.len();
        for part in plaintext {
            out.extend_from_slice(part);
        }
        message_key
            .pairwise(&salt)
            .seal_in_place(aad.as_slice(), out, start);

        send.key = next_key;
        send.next = following;
        Ok(salt)
    }

    /// Decrypts a message of this session. A pre-key message is accepted when it carries this
    /// session's own X3DH values (the initiator keeps sending them until it hears back).
    pub fn decrypt(&mut self, message: &IncomingMessage<'_>) -> Result<Vec<u8>, Error> {
        self.decrypt_bound(message, &[])
    }

    /// [`decrypt`](Self::decrypt) of a message sealed by
    /// [`encrypt_bound`](Self::encrypt_bound) with this `context`.
    pub fn decrypt_bound(
        &mut self,
        message: &IncomingMessage<'_>,
        context: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let (opened, plaintext) = self.open_message(message, context)?;
        self.apply(opened);
        Ok(plaintext)
    }

    /// Authenticates and decrypts `message` without changing the session: the returned
    /// [`Opened`] is what [`apply`](Self::apply) then changes. The fanout layer opens a held
    /// session in place this way, decides what the payload means, and applies only if it
    /// accepts it, instead of decrypting on a copy of the session.
    pub(crate) fn open_message(
        &self,
        message: &IncomingMessage<'_>,
        context: &[u8],
    ) -> Result<(Opened, Vec<u8>), Error> {
        let message = match message {
            IncomingMessage::Ratchet(m) => m,
            IncomingMessage::PreKey(p) => {
                if !self.continues(p) {
                    return Err(RatchetError::WrongSession.into());
                }
                &p.message
            }
        };
        let header = &message.header;
        let extension = self.extension(message)?;
        if let Some(index) = self
            .0
            .skipped
            .find(&header.ratchet_key, header.message_number)
        {
            let plaintext = match self.0.skipped.get(index) {
                Some(stored) => self.open(&stored.key, message, context)?,
                None => return Err(RatchetError::AuthenticationFailed.into()),
            };
            // A late message of the current receiving chain still carries a useful chunk; one
            // of an older chain is not read (its chain's epoch, which resolves the chunk's, is
            // not kept).
            let current = self.0.recv.as_ref().map(|c| c.ratchet_key) == Some(header.ratchet_key);
            let step = Step::Skipped {
                index,
                extension: extension.filter(|_| current),
            };
            return Ok((Opened(step), plaintext));
        }
        let plan = self.plan_receive(header, extension.as_ref())?;
        let plaintext = self.open(&plan.key, message, context)?;
        Ok((Opened(Step::Chain(plan, extension)), plaintext))
    }

    /// Applies what [`open_message`](Self::open_message) found, to the session it was opened
    /// on, unchanged since.
    pub(crate) fn apply(&mut self, opened: Opened) {
        match opened.0 {
            Step::Skipped { index, extension } => {
                let s = &mut *self.0;
                s.skipped.remove(index);
                s.awaiting_reply = false;
                s.pending_kem = None;
                if let (Some(pq), Some(extension)) = (s.pq.as_mut(), &extension) {
                    let c = pq.recv_chain;
                    pq.receive(c, extension);
                }
            }
            Step::Chain(plan, extension) => self.commit(plan, extension.as_ref()),
        }
    }

    /// The message's post-quantum ratchet extension: required (and decoded) in a session that
    /// runs the ratchet, where a message without one is `NotPostQuantum`; refused
    /// (`InvalidValue`) in one that does not. A message of the current receiving chain (the
    /// next one, a late one read with a skipped key, or a replay) must name that chain's
    /// epoch, else `InvalidValue`: checked here once for every way it is read.
    fn extension(&self, message: &RatchetMessage<'_>) -> Result<Option<Extension>, Error> {
        let pq = match (&self.0.pq, message.extension.is_empty()) {
            (None, true) => return Ok(None),
            (None, false) => return Err(DecodeError::InvalidValue.into()),
            (Some(_), true) => return Err(RatchetError::NotPostQuantum.into()),
            (Some(pq), false) => pq,
        };
        let extension = Extension::decode(message.extension)?;
        let current =
            self.0.recv.as_ref().map(|c| c.ratchet_key) == Some(message.header.ratchet_key);
        if current && !pq.is_recv_chain(extension.chain_nibble) {
            return Err(DecodeError::InvalidValue.into());
        }
        Ok(Some(extension))
    }

    fn plan_receive(&self, header: &Header, extension: Option<&Extension>) -> Result<Plan, Error> {
        let s = &*self.0;
        let limit = s.config.max_forward_jump;
        let n = header.message_number;
        let after = n.checked_add(1).ok_or(RatchetError::ChainExhausted)?;
        let mut skipped = Vec::new();
        match &s.recv {
            Some(chain) if chain.ratchet_key == header.ratchet_key => {
                if n < chain.next {
                    return Err(RatchetError::Duplicate.into());
                }
                check_jump(u64::from(n - chain.next), limit)?;
                let key = skip(&chain.key, chain.next, n, &chain.ratchet_key, &mut skipped);
                let (message_key, key) = key.step();
                Ok(Plan {
                    key: message_key,
                    root: None,
                    chain: RecvChain {
                        ratchet_key: chain.ratchet_key,
                        key,
                        next: after,
                    },
                    skipped,
                    pq_chain: None,
                    peer_restored: false,
                })
            }
            current => {
                let tail = current
                    .as_ref()
                    .map_or(0, |c| header.previous_chain_length.saturating_sub(c.next));
                // Only a sender that forgot some of what it sent can name a previous chain
                // shorter than what arrived of it: a new chain comes only after the peer read
                // a message of the previous one, so `current` is that chain.
                let peer_restored = current
                    .as_ref()
                    .is_some_and(|c| header.previous_chain_length < c.next);
                check_jump(u64::from(tail) + u64::from(n), limit)?;
                if let Some(c) = current {
                    skip(&c.key, c.next, c.next + tail, &c.ratchet_key, &mut skipped);
                }
                // A chain that mixes an epoch this side does not hold cannot open here, like
                // one under another root key: the peer's state and this one parted (a restore
                // beyond repair, SECURITY.md) or the header was changed. The same error, so that
                // an app asks again (a retry replaces the session) instead of dropping it.
                let (pq_chain, pq_secret) = match (&s.pq, extension) {
                    (Some(pq), Some(e)) => pq
                        .resolve_recv_chain(e.chain_nibble)
                        .ok_or(RatchetError::AuthenticationFailed)?,
                    _ => (0, None),
                };
                let dh = s.self_ratchet.agree(&header.ratchet_key)?;
                let (root, key) = s.root.ratchet_pq(&dh, pq_secret.as_ref());
                let key = skip(&key, 0, n, &header.ratchet_key, &mut skipped);
                let (message_key, key) = key.step();
                Ok(Plan {
                    key: message_key,
                    root: Some(root),
                    chain: RecvChain {
                        ratchet_key: header.ratchet_key,
                        key,
                        next: after,
                    },
                    skipped,
                    pq_chain: s.pq.as_ref().map(|_| pq_chain),
                    peer_restored,
                })
            }
        }
    }

    fn open(
        &self,
        key: &MessageKey,
        message: &RatchetMessage<'_>,
        context: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let aad = Aad::new(
            self.0.role,
            &self.0.local,
            &self.0.remote,
            message.header_bytes,
            context,
        );
        key.pairwise(&message.header.salt)
            .open(aad.as_slice(), message.ciphertext)
            .map_err(|_| RatchetError::AuthenticationFailed.into())
    }

    fn commit(&mut self, plan: Plan, extension: Option<&Extension>) {
        let s = &mut *self.0;
        if let Some(pq) = s.pq.as_mut() {
            if plan.peer_restored {
                pq.peer_restored();
            }
            if let Some(c) = plan.pq_chain {
                pq.enter_recv_chain(c);
            }
            if let Some(extension) = extension {
                let c = pq.recv_chain;
                pq.receive(c, extension);
            }
        }
        if let Some(root) = plan.root {
            s.root = root;
            s.remote_ratchet = plan.chain.ratchet_key;
            if let Some(send) = s.send.take() {
                s.previous_send_length = send.next;
            }
        }
        s.recv = Some(plan.chain);
        s.skipped.extend(plan.skipped, s.config.max_skipped_keys);
        s.awaiting_reply = false;
        s.pending_kem = None;
    }

    /// The peer's identity key.
    pub fn remote_identity(&self) -> IdentityKey {
        self.0.remote
    }

    /// This device's identity key.
    pub fn local_identity(&self) -> IdentityKey {
        self.0.local
    }

    /// Whether the session started with PQXDH (X25519 and ML-KEM). Only a session migrated
    /// from before PQXDH (state version 1) is not: its root key depends on X25519 alone.
    pub fn is_post_quantum(&self) -> bool {
        self.0.origin.kem.is_some()
    }

    /// The post-quantum ratchet's epoch (PROTOCOL.md section 25): the number of ML-KEM-768
    /// exchanges whose secret this side knows, or `None` if the session does not run the
    /// ratchet (its KEM prekey's id did not have bit 31 set, or it predates the ratchet).
    pub fn pq_ratchet_epoch(&self) -> Option<u32> {
        self.0.pq.as_ref().map(|pq| pq.epoch)
    }

    /// True while this (initiating) session has not yet heard from its peer, so its messages
    /// still carry the X3DH values.
    pub fn awaiting_reply(&self) -> bool {
        self.0.awaiting_reply
    }

    /// The session's limits.
    pub fn config(&self) -> SessionConfig {
        self.0.config
    }

    /// Abandons the current sending chain: the next send starts a new one from a fresh DH
    /// ratchet key. For state restored from a backup that may be older than what was already
    /// sent, so that no chain counter (and so no message key or nonce) is used twice. The peer
    /// reads the new chain as an ordinary DH ratchet step.
    pub fn renew_sending_chain(&mut self) {
        if let Some(send) = self.0.send.take() {
            self.0.previous_send_length = send.next;
        }
    }

    /// Whether the session holds a sending chain (8.5: it sent since its last DH step, or,
    /// as an initiator, awaits its first reply).
    pub(crate) fn has_sending_chain(&self) -> bool {
        self.0.send.is_some()
    }

    /// Whether `message` carries the X3DH values this (responder) session began with.
    pub(crate) fn continues(&self, message: &PreKeyMessage<'_>) -> bool {
        self.0.role == Role::Responder && message.x3dh.origin() == self.0.origin
    }

    /// Skipped message keys currently stored.
    pub fn skipped_keys(&self) -> usize {
        self.0.skipped.len()
    }
}

/// Derives and records message keys for numbers `from..to` of a chain; returns the chain key
/// at `to`.
fn skip(
    key: &ChainKey,
    from: u32,
    to: u32,
    ratchet_key: &DhPublicKey,
    out: &mut Vec<SkippedKey>,
) -> ChainKey {
    let mut key = key.clone();
    for message_number in from..to {
        let (message_key, next) = key.step();
        out.push(SkippedKey {
            ratchet_key: *ratchet_key,
            message_number,
            key: message_key,
        });
        key = next;
    }
    key
}

fn check_jump(requested: u64, limit: u32) -> Result<(), RatchetError> {
    if requested > u64::from(limit) {
        return Err(RatchetError::TooFarAhead {
            requested: u32::try_from(requested).unwrap_or(u32::MAX),
            limit,
        });
    }
    Ok(())
}

/// AAD = IK_initiator ‖ IK_responder ‖ the header bytes, extension included [‖ context]. On
/// the stack unless a context is bound.
enum Aad {
    Plain([u8; 64 + MAX_HEADER_LEN], usize),
    Bound(Vec<u8>),
}

impl Aad {
    fn new(
        role: Role,
        local: &IdentityKey,
        remote: &IdentityKey,
        header: &[u8],
        context: &[u8],
    ) -> Self {
        let ad = match role {
            Role::Initiator => AssociatedData::new(local, remote),
            Role::Responder => AssociatedData::new(remote, local),
        };
        let header = &header[..header.len().min(MAX_HEADER_LEN)];
        let len = 64 + header.len();
        let mut plain = [0u8; 64 + MAX_HEADER_LEN];
        plain[..64].copy_from_slice(&ad.0);
        plain[64..len].copy_from_slice(header);
        if context.is_empty() {
            Self::Plain(plain, len)
        } else {
            let mut bound = Vec::with_capacity(len + context.len());
            bound.extend_from_slice(&plain[..len]);
            bound.extend_from_slice(context);
            Self::Bound(bound)
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Self::Plain(a, len) => &a[..*len],
            Self::Bound(v) => v,
        }
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &*self.0;
        f.debug_struct("Session")
            .field("role", &s.role)
            .field("local", &s.local)
            .field("remote", &s.remote)
            .field("awaiting_reply", &s.awaiting_reply)
            .field("sent_in_chain", &s.send.as_ref().map(|c| c.next))
            .field("received_in_chain", &s.recv.as_ref().map(|c| c.next))
            .field("skipped_keys", &s.skipped.len())
            .finish_non_exhaustive()
    }
}
