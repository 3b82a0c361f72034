//! Session state as versioned bytes (PROTOCOL.md, "Session state"). Decoding checks every
//! field's form, so restored state upholds the same invariants as state built by the protocol,
//! but repeats no curve work: the identity keys were checked when they were first received, and
//! the ratchet key's public half is stored beside its secret.
//!
//! Version 1 (before PQXDH: no KEM part; identity keys checked again and the ratchet public
//! key recomputed on load) is still read: such a session keeps working, except an initiator
//! that never heard back (`NotPostQuantum`).

use alloc::boxed::Box;
use alloc::vec::Vec;
use zeroize::Zeroizing;

use super::config::SessionConfig;
use super::keys::{ChainKey, MessageKey, RootKey};
use super::pq::PqRatchet;
use super::session::{RecvChain, Role, SendChain, Session, State};
use super::skipped::{SkippedKey, SkippedKeys};
use crate::error::DecodeError;
use crate::primitives::{DhKeyPair, DhPublicKey, IdentityKey, Secret};
use crate::primitives::{KEM_CIPHERTEXT_LEN, KemCiphertext};
use crate::wire::{Counter, Reader, SecretBuf, Writer, bounded_count, kind};
use crate::x3dh::{KemPreKeyId, OneTimePreKeyId, Origin, SignedPreKeyId};

/// The session state format this build writes for a session without the post-quantum ratchet;
/// one with it is version 3, the same fields followed by the ratchet's (its own module's
/// `state.rs`).
const SESSION_STATE_VERSION: u8 = 2;
const PQ_SESSION_STATE_VERSION: u8 = 3;

/// Finds a session's pending KEM ciphertext, stored apart, by the session's base key.
pub(crate) type PendingLookup<'a> = &'a dyn Fn(&[u8; 32]) -> Option<KemCiphertext>;

impl Session {
    /// Versioned state bytes. They hold secrets: store them as such.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        self.encode(true)
    }

    /// The state bytes without the pending KEM ciphertext (written as absent): the form a
    /// device's sessions record holds, the ciphertext being written once in a record of its
    /// own (PROTOCOL.md 19.1).
    pub(crate) fn to_bytes_detached(&self) -> Zeroizing<Vec<u8>> {
        self.encode(false)
    }

    /// The pending KEM ciphertext (sent in every message until the peer replies), and the
    /// session's base key, which names it in a device's records.
    pub(crate) fn pending_kem(&self) -> Option<(&KemCiphertext, [u8; 32])> {
        let s = &*self.0;
        s.pending_kem
            .as_ref()
            .map(|ct| (ct, s.origin.base_key.to_bytes()))
    }

    /// The length of [`to_bytes_detached`](Self::to_bytes_detached), counted without writing.
    pub(crate) fn detached_len(&self) -> usize {
        let mut len = Counter::default();
        self.write(false, &mut len);
        len.0
    }

    /// Writes [`to_bytes_detached`](Self::to_bytes_detached)'s bytes straight into a record
    /// being encoded, with no buffer of their own.
    pub(crate) fn write_detached(&self, out: &mut impl Writer) {
        self.write(false, out);
    }

    fn encode(&self, with_pending: bool) -> Zeroizing<Vec<u8>> {
        // Sized first, so the buffer never grows: each growth of a secret buffer is an
        // allocation, a copy and a wipe.
        let mut len = Counter::default();
        self.write(with_pending, &mut len);
        let mut out = SecretBuf::with_capacity(len.0);
        self.write(with_pending, &mut out);
        out.into_inner()
    }

    fn write(&self, with_pending: bool, out: &mut impl Writer) {
        let s = &*self.0;
        let inline = s.pending_kem.as_ref().filter(|_| with_pending);
        let version = if s.pq.is_some() {
            PQ_SESSION_STATE_VERSION
        } else {
            SESSION_STATE_VERSION
        };
        out.versioned_header(version, kind::SESSION_STATE);
        out.u32(s.config.max_forward_jump);
        out.u32(s.config.max_skipped_keys);
        out.u8(match s.role {
            Role::Initiator => 0,
            Role::Responder => 1,
        });
        out.put(&s.local.to_bytes());
        out.put(&s.remote.to_bytes());
        out.put(&s.origin.base_key.to_bytes());
        out.u32(s.origin.signed_prekey.0);
        out.optional(s.origin.one_time_prekey, |out, id| out.u32(id.0));
        out.optional(s.origin.kem, |out, (id, digest)| {
            out.u32(id.0);
            out.put(&digest);
        });
        out.optional(inline, |out, ct| out.put(ct.as_bytes()));
        out.flag(s.awaiting_reply);
        out.put(s.root.0.as_bytes());
        out.put(s.self_ratchet.secret_bytes());
        out.put(s.self_ratchet.public().as_bytes());
        out.put(&s.remote_ratchet.to_bytes());
        out.optional(s.send.as_ref(), |out, c| {
            out.put(c.key.0.as_bytes());
            out.u32(c.next);
        });
        out.u32(s.previous_send_length);
        out.optional(s.recv.as_ref(), |out, c| {
            out.put(&c.ratchet_key.to_bytes());
            out.put(c.key.0.as_bytes());
            out.u32(c.next);
        });
        out.u32(s.skipped.len() as u32);
        for k in &s.skipped.0 {
            out.put(&k.ratchet_key.to_bytes());
            out.u32(k.message_number);
            out.put(k.key.0.as_bytes());
        }
        if let Some(pq) = &s.pq {
            pq.write(out);
        }
    }

    /// Restores a session from [`to_bytes`](Self::to_bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::decode(bytes, None)
    }

    /// Restores a session from [`to_bytes_detached`](Self::to_bytes_detached): `pending`
    /// gives the ciphertext stored apart under the session's base key, if any. Bytes that hold
    /// it inline (records written before it was stored apart) load too; the caller rewrites
    /// them.
    pub(crate) fn from_bytes_detached(
        bytes: &[u8],
        pending: PendingLookup<'_>,
    ) -> Result<Self, DecodeError> {
        Self::decode(bytes, Some(pending))
    }

    /// `detached`: `None` for the whole form; for the detached form, where the ciphertext is.
    fn decode(bytes: &[u8], detached: Option<PendingLookup<'_>>) -> Result<Self, DecodeError> {
        let (mut r, version) = Reader::versioned_header(
            bytes,
            kind::SESSION_STATE,
            &[1, SESSION_STATE_VERSION, PQ_SESSION_STATE_VERSION],
        )?;
        let identity = |r: &mut Reader<'_>| -> Result<IdentityKey, DecodeError> {
            let bytes = r.array()?;
            if version == 1 {
                IdentityKey::from_bytes(&bytes)
            } else {
                Ok(IdentityKey::from_trusted(bytes))
            }
        };
        let config = SessionConfig {
            max_forward_jump: r.u32()?,
            max_skipped_keys: r.u32()?,
        };
        let role = match r.u8()? {
            0 => Role::Initiator,
            1 => Role::Responder,
            _ => return Err(DecodeError::InvalidValue),
        };
        let local = identity(&mut r)?;
        let remote = identity(&mut r)?;
        let mut origin = Origin {
            initiator: match role {
                Role::Initiator => local,
                Role::Responder => remote,
            },
            base_key: DhPublicKey::from_bytes(r.array()?)?,
            signed_prekey: SignedPreKeyId(r.u32()?),
            one_time_prekey: r.optional(|r| r.u32().map(OneTimePreKeyId))?,
            kem: None,
        };
        let mut pending_kem = None;
        if version >= 2 {
            origin.kem = r.optional(|r| Ok((KemPreKeyId(r.u32()?), r.array()?)))?;
            pending_kem =
                r.optional(|r| KemCiphertext::from_bytes(r.bytes(KEM_CIPHERTEXT_LEN)?))?;
        }
        if let Some(external) = detached
            && pending_kem.is_none()
        {
            pending_kem = external(&origin.base_key.to_bytes());
        }
        let awaiting_reply = r.flag()?;
        let root = RootKey(secret(&mut r)?);
        let self_ratchet = if version == 1 {
            DhKeyPair::from_secret(&secret(&mut r)?)
        } else {
            let secret = secret(&mut r)?;
            DhKeyPair::from_trusted_parts(*secret.as_bytes(), DhPublicKey::from_bytes(r.array()?)?)
        };
        let remote_ratchet = DhPublicKey::from_bytes(r.array()?)?;
        let Chains {
            send,
            previous_send_length,
            recv,
            skipped,
        } = Chains::read(&mut r, config.max_skipped_keys)?;
        let pq = if version == PQ_SESSION_STATE_VERSION {
            Some(PqRatchet::read(&mut r, role == Role::Initiator)?)
        } else {
            None
        };
        r.finish()?;
        // A responder has always received (its session is created by decrypting); an
        // initiator awaiting its first reply has not.
        let consistent = match role {
            Role::Initiator => awaiting_reply == recv.is_none(),
            Role::Responder => !awaiting_reply && recv.is_some(),
        };
        // The KEM ciphertext is kept exactly while a post-quantum initiator awaits its reply.
        let pending_ok = pending_kem.is_some()
            == (role == Role::Initiator && awaiting_reply && origin.kem.is_some() && version >= 2);
        if !consistent || !pending_ok || (send.is_none() && recv.is_none()) {
            return Err(DecodeError::InvalidValue);
        }
        Ok(Self(Box::new(State {
            config,
            role,
            local,
            remote,
            origin,
            pending_kem,
            awaiting_reply,
            root,
            self_ratchet,
            remote_ratchet,
            send,
            previous_send_length,
            recv,
            skipped,
            pq,
        })))
    }
}

/// The sending and receiving chains and the skipped keys, as the state stores them.
struct Chains {
    send: Option<SendChain>,
    previous_send_length: u32,
    recv: Option<RecvChain>,
    skipped: SkippedKeys,
}

impl Chains {
    // Not inlined: inside `decode`, LLVM split these keys into single bytes and moved them one
    // at a time (a 16% larger cold load in instruction counts); apart, they move as words.
    #[inline(never)]
    fn read(r: &mut Reader<'_>, max_skipped_keys: u32) -> Result<Self, DecodeError> {
        // The presence flags are read here rather than through `Reader::optional`, whose
        // closures LLVM may outline (it did after an unrelated change elsewhere), moving the
        // keys a byte at a time again.
        let send = match r.flag()? {
            true => Some(SendChain {
                key: ChainKey(secret(r)?),
                next: r.u32()?,
            }),
            false => None,
        };
        let previous_send_length = r.u32()?;
        let recv = match r.flag()? {
            true => Some(RecvChain {
                ratchet_key: DhPublicKey::from_bytes(r.array()?)?,
                key: ChainKey(secret(r)?),
                next: r.u32()?,
            }),
            false => None,
        };
        let count = bounded_count(r, max_skipped_keys)?;
        let mut skipped = SkippedKeys::default();
        for _ in 0..count {
            skipped.0.push_back(SkippedKey {
                ratchet_key: DhPublicKey::from_bytes(r.array()?)?,
                message_number: r.u32()?,
                key: MessageKey(secret(r)?),
            });
        }
        Ok(Self {
            send,
            previous_send_length,
            recv,
            skipped,
        })
    }
}

fn secret(r: &mut Reader<'_>) -> Result<Secret<32>, DecodeError> {
    Ok(Secret::from_bytes(r.array()?))
}
