//! The owner's side of a sender key: one chain and one signing key per (group, this device),
//! rotated to a new generation when membership shrinks.

use alloc::vec::Vec;
use core::fmt;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::message::{HEADER_LEN, SIGNATURE_LEN};
use super::{GroupId, SenderKeyDistribution, SenderKeyId};
use crate::error::{DecodeError, GroupError};
use crate::labels;
use crate::primitives::{IdentityKey, Secret, SigningKeyPair, TAG_LEN};
use crate::ratchet::keys::ChainKey;
use crate::wire::{Reader, Writer, kind};

/// This device's sender key for one group. Persist [`to_bytes`](Self::to_bytes) after every
/// encrypt or rotation, before sending.
#[derive(Clone)]
pub struct OutboundGroupSession {
    group: GroupId,
    /// The owning device's identity key, bound into every signature so that nobody else can
    /// present these messages as theirs.
    owner: IdentityKey,
    key_id: SenderKeyId,
    iteration: u32,
    chain: ChainKey,
    signing: SigningKeyPair,
}

impl OutboundGroupSession {
    /// A first-generation sender key (key id 1, iteration 0). Draws 64 bytes from `rng`: the
    /// chain key, then the signing key's seed.
    pub fn new(rng: &mut impl CryptoRng, group: GroupId, owner: &IdentityKey) -> Self {
        Self::generation(rng, group, *owner, SenderKeyId(1))
    }

    fn generation(
        rng: &mut impl CryptoRng,
        group: GroupId,
        owner: IdentityKey,
        key_id: SenderKeyId,
    ) -> Self {
        let mut chain = Secret::from_bytes([0u8; 32]);
        rng.fill_bytes(chain.as_mut_bytes());
        Self {
            group,
            owner,
            key_id,
            iteration: 0,
            chain: ChainKey(chain),
            signing: SigningKeyPair::generate(rng),
        }
    }

    /// Starts the next generation: new key id, fresh chain and signing key (64 bytes from
    /// `rng`, as in [`new`](Self::new)). Devices that receive only the new distribution cannot
    /// read anything sent under earlier generations, nor anything sent later under this one
    /// without it.
    pub fn rotate(
        &mut self,
        rng: &mut impl CryptoRng,
    ) -> Result<SenderKeyDistribution, GroupError> {
        let next = self
            .key_id
            .0
            .checked_add(1)
            .ok_or(GroupError::ChainExhausted)?;
        *self = Self::generation(rng, self.group, self.owner, SenderKeyId(next));
        Ok(self.distribution())
    }

    /// The distribution message for the current key at the current iteration: a receiver
    /// can read this sender's messages from the next one sent on.
    pub fn distribution(&self) -> SenderKeyDistribution {
        SenderKeyDistribution {
            group: self.group,
            key_id: self.key_id,
            iteration: self.iteration,
            chain_key: self.chain.0.clone(),
            signing_key: self.signing.public(),
        }
    }

    /// Encrypts once for the whole group: AES-256-GCM under the next message key, then an
    /// Ed25519 signature over the encoded message. Needs no randomness.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, GroupError> {
        let following = self
            .iteration
            .checked_add(1)
            .ok_or(GroupError::ChainExhausted)?;
        let (message_key, next) = self.chain.step();
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN + SIGNATURE_LEN);
        out.header(kind::GROUP_MESSAGE);
        out.extend_from_slice(&self.group.0);
        out.u32(self.key_id.0);
        out.u32(self.iteration);
        out.extend_from_slice(plaintext);
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&out[..HEADER_LEN]);
        message_key
            .aead_key(labels::GROUP_MESSAGE_KEYS)
            .seal_in_place(&header, &mut out, HEADER_LEN);
        let signature = self.signing.sign(&signature_prefix(&self.owner), &out);
        out.extend_from_slice(&signature.to_bytes());
        self.chain = next;
        self.iteration = following;
        Ok(out)
    }

    /// The group.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// The current generation.
    pub fn key_id(&self) -> SenderKeyId {
        self.key_id
    }

    /// The iteration the next message will carry.
    pub fn iteration(&self) -> u32 {
        self.iteration
    }

    /// Versioned state bytes (PROTOCOL.md, "Outbound group state"). They hold secrets.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(2 + 32 + 32 + 4 + 4 + 32 + 32));
        out.header(kind::OUTBOUND_GROUP_STATE);
        out.extend_from_slice(&self.group.0);
        out.extend_from_slice(&self.owner.to_bytes());
        out.u32(self.key_id.0);
        out.u32(self.iteration);
        out.extend_from_slice(self.chain.0.as_bytes());
        out.extend_from_slice(self.signing.seed());
        out
    }

    /// Restores from [`to_bytes`](Self::to_bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, kind::OUTBOUND_GROUP_STATE)?;
        let s = Self {
            group: GroupId(r.array()?),
            owner: IdentityKey::from_bytes(&r.array()?)?,
            key_id: SenderKeyId(r.u32()?),
            iteration: r.u32()?,
            chain: ChainKey(Secret::from_bytes(r.array()?)),
            signing: SigningKeyPair::from_seed(&Zeroizing::new(r.array()?)),
        };
        r.finish()?;
        Ok(s)
    }
}

impl fmt::Debug for OutboundGroupSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundGroupSession")
            .field("group", &self.group)
            .field("key_id", &self.key_id)
            .field("iteration", &self.iteration)
            .field("signing", &self.signing)
            .finish_non_exhaustive()
    }
}

const LABEL_LEN: usize = labels::GROUP_MESSAGE.len();

/// The signature prefix of a group message: the label, then the sender device's identity key.
pub(crate) fn signature_prefix(sender: &IdentityKey) -> [u8; LABEL_LEN + 32] {
    let mut prefix = [0u8; LABEL_LEN + 32];
    prefix[..LABEL_LEN].copy_from_slice(labels::GROUP_MESSAGE);
    prefix[LABEL_LEN..].copy_from_slice(sender.as_bytes());
    prefix
}
