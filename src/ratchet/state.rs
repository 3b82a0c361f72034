//! Session state as versioned bytes (PROTOCOL.md, "Session state"). Decoding checks every
//! field, so restored state upholds the same invariants as state built by the protocol.

use alloc::boxed::Box;
use alloc::vec::Vec;
use zeroize::Zeroizing;

use super::config::SessionConfig;
use super::keys::{ChainKey, MessageKey, RootKey};
use super::session::{RecvChain, Role, SendChain, Session, State};
use super::skipped::{SkippedKey, SkippedKeys};
use crate::error::DecodeError;
use crate::primitives::{DhKeyPair, DhPublicKey, IdentityKey, Secret};
use crate::wire::{Reader, Writer, kind};
use crate::x3dh::{OneTimePreKeyId, SignedPreKeyId, X3dhHeader};

impl Session {
    /// Versioned state bytes. They hold secrets: store them as such.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let s = &*self.0;
        let mut out = Zeroizing::new(Vec::with_capacity(320 + s.skipped.len() * 68));
        out.header(kind::SESSION_STATE);
        out.u32(s.config.max_forward_jump);
        out.u32(s.config.max_skipped_keys);
        out.push(match s.role {
            Role::Initiator => 0,
            Role::Responder => 1,
        });
        out.extend_from_slice(&s.local.to_bytes());
        out.extend_from_slice(&s.remote.to_bytes());
        out.extend_from_slice(&s.x3dh.base_key.to_bytes());
        out.u32(s.x3dh.signed_prekey.0);
        out.optional(s.x3dh.one_time_prekey, |out, id| out.u32(id.0));
        out.flag(s.awaiting_reply);
        out.extend_from_slice(s.root.0.as_bytes());
        out.extend_from_slice(s.self_ratchet.secret_bytes());
        out.extend_from_slice(&s.remote_ratchet.to_bytes());
        out.optional(s.send.as_ref(), |out, c| {
            out.extend_from_slice(c.key.0.as_bytes());
            out.u32(c.next);
        });
        out.u32(s.previous_send_length);
        out.optional(s.recv.as_ref(), |out, c| {
            out.extend_from_slice(&c.ratchet_key.to_bytes());
            out.extend_from_slice(c.key.0.as_bytes());
            out.u32(c.next);
        });
        out.u32(s.skipped.len() as u32);
        for k in &s.skipped.0 {
            out.extend_from_slice(&k.ratchet_key.to_bytes());
            out.u32(k.message_number);
            out.extend_from_slice(k.key.0.as_bytes());
        }
        out
    }

    /// Restores a session from [`to_bytes`](Self::to_bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, kind::SESSION_STATE)?;
        let config = SessionConfig {
            max_forward_jump: r.u32()?,
            max_skipped_keys: r.u32()?,
        };
        let role = match r.u8()? {
            0 => Role::Initiator,
            1 => Role::Responder,
            _ => return Err(DecodeError::InvalidValue),
        };
        let local = IdentityKey::from_bytes(&r.array()?)?;
        let remote = IdentityKey::from_bytes(&r.array()?)?;
        let x3dh = X3dhHeader {
            initiator: match role {
                Role::Initiator => local,
                Role::Responder => remote,
            },
            base_key: DhPublicKey::from_bytes(r.array()?),
            signed_prekey: SignedPreKeyId(r.u32()?),
            one_time_prekey: r.optional(|r| r.u32().map(OneTimePreKeyId))?,
        };
        let awaiting_reply = r.flag()?;
        let root = RootKey(secret(&mut r)?);
        let self_ratchet = DhKeyPair::from_secret_bytes(*secret(&mut r)?.as_bytes());
        let remote_ratchet = DhPublicKey::from_bytes(r.array()?);
        let send = r.optional(|r| {
            Ok(SendChain {
                key: ChainKey(secret(r)?),
                next: r.u32()?,
            })
        })?;
        let previous_send_length = r.u32()?;
        let recv = r.optional(|r| {
            Ok(RecvChain {
                ratchet_key: DhPublicKey::from_bytes(r.array()?),
                key: ChainKey(secret(r)?),
                next: r.u32()?,
            })
        })?;
        let count = crate::x3dh::bounded_count(&mut r, config.max_skipped_keys)?;
        let mut skipped = SkippedKeys::default();
        for _ in 0..count {
            skipped.0.push_back(SkippedKey {
                ratchet_key: DhPublicKey::from_bytes(r.array()?),
                message_number: r.u32()?,
                key: MessageKey(secret(&mut r)?),
            });
        }
        r.finish()?;
        // A responder has always received (its session is created by decrypting); an
        // initiator awaiting its first reply has not.
        let consistent = match role {
            Role::Initiator => awaiting_reply == recv.is_none(),
            Role::Responder => !awaiting_reply && recv.is_some(),
        };
        if !consistent || (send.is_none() && recv.is_none()) {
            return Err(DecodeError::InvalidValue);
        }
        Ok(Self(Box::new(State {
            config,
            role,
            local,
            remote,
            x3dh,
            awaiting_reply,
            root,
            self_ratchet,
            remote_ratchet,
            send,
            previous_send_length,
            recv,
            skipped,
        })))
    }
}

fn secret(r: &mut Reader<'_>) -> Result<Secret<32>, DecodeError> {
    Ok(Secret::from_bytes(r.array()?))
}
