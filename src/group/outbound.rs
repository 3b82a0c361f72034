//! The owner's side of a sender key: one chain and one signing key per (group, this device),
//! rotated to a new generation when membership shrinks.
//!
//! Key ids are random, not counted: a device restored from a backup cannot know which ids it
//! handed out after the snapshot, and a counted id could repeat one of them (receivers would
//! then refuse the new key as conflicting). Receivers keep generations by arrival, not by id.

use alloc::vec::Vec;
use core::fmt;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::message::{HEADER_LEN, SIGNATURE_LEN};
use super::sender::context_len as context_len_of;
use super::{GroupId, GroupSender, SenderKeyDistribution, SenderKeyId};
use crate::error::{DecodeError, GroupError};
use crate::labels;
use crate::primitives::{Secret, SigningKeyPair, TAG_LEN};
use crate::ratchet::keys::{ChainKey, SALT_LEN};
use crate::wire::{Reader, SecretBuf, Writer, kind};

/// The outbound group state format this build writes.
const OUTBOUND_STATE_VERSION: u8 = 2;

/// This device's sender key for one group. Persist [`to_bytes`](Self::to_bytes) after every
/// encrypt or rotation, before sending.
#[derive(Clone)]
pub struct OutboundGroupSession {
    group: GroupId,
    /// The owning device, bound into every signature so that nobody else can present these
    /// messages as theirs.
    owner: GroupSender,
    key_id: SenderKeyId,
    iteration: u32,
    chain: ChainKey,
    signing: SigningKeyPair,
}

impl OutboundGroupSession {
    /// A first-generation sender key at iteration 0. Draws 68 bytes from `rng`: the chain key,
    /// the signing key's seed, then the key id.
    pub fn new(rng: &mut impl CryptoRng, group: GroupId, owner: GroupSender) -> Self {
        Self::generation(rng, group, owner, None)
    }

    fn generation(
        rng: &mut impl CryptoRng,
        group: GroupId,
        owner: GroupSender,
        previous: Option<SenderKeyId>,
    ) -> Self {
        let mut chain = Secret::from_bytes([0u8; 32]);
        rng.fill_bytes(chain.as_mut_bytes());
        let signing = SigningKeyPair::generate(rng);
        let mut id = [0u8; 4];
        rng.fill_bytes(&mut id);
        let mut key_id = u32::from_be_bytes(id);
        // 0 is not a key id, and a rotation never keeps the id it leaves.
        while key_id == 0 || Some(SenderKeyId(key_id)) == previous {
            key_id = key_id.wrapping_add(1);
        }
        Self {
            group,
            owner,
            key_id: SenderKeyId(key_id),
            iteration: 0,
            chain: ChainKey(chain),
            signing,
        }
    }

    /// Starts the next generation: new random key id, fresh chain and signing key (68 bytes
    /// from `rng`, as in [`new`](Self::new)). Devices that receive only the new distribution
    /// cannot read anything sent under earlier generations, nor anything sent later under this
    /// one without it.
    pub fn rotate(&mut self, rng: &mut impl CryptoRng) -> SenderKeyDistribution {
        *self = Self::generation(rng, self.group, self.owner.clone(), Some(self.key_id));
        self.distribution()
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

    /// Encrypts once for the whole group: AES-256-GCM under the next message key and a fresh
    /// 16-byte header salt from `rng`, then an Ed25519 signature over the encoded message
    /// (with an empty context: [`encrypt_bound`](Self::encrypt_bound) with `&[]`).
    pub fn encrypt(
        &mut self,
        rng: &mut impl CryptoRng,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, GroupError> {
        self.encrypt_bound(rng, plaintext, &[])
    }

    /// [`encrypt`](Self::encrypt), with `context` (at most
    /// [`MAX_MESSAGE_CONTEXT`](super::MAX_MESSAGE_CONTEXT) bytes, else
    /// `ContextTooLong` and nothing changes) bound into the signature, length first: the
    /// message then verifies only through
    /// [`InboundSenderKey::decrypt_bound`](super::InboundSenderKey::decrypt_bound) with the
    /// same context. Layers above bind routing metadata this way. The context is not sent.
    pub fn encrypt_bound(
        &mut self,
        rng: &mut impl CryptoRng,
        plaintext: &[u8],
        context: &[u8],
    ) -> Result<Vec<u8>, GroupError> {
        // Sealed after the context, as `encrypt_bound_into` does, which is then cut off.
        let mut out = Vec::with_capacity(
            context.len() + HEADER_LEN + plaintext.len() + TAG_LEN + SIGNATURE_LEN,
        );
        out.extend_from_slice(context);
        self.seal(rng, plaintext, &mut out)?;
        out.drain(..context.len());
        Ok(out)
    }

    /// [`encrypt_bound`](Self::encrypt_bound) with `context` taken as the bytes already in
    /// `out` (an envelope header), the message appended after them. Returns the message's
    /// header salt, which names it to its sender.
    pub(crate) fn encrypt_bound_into(
        &mut self,
        rng: &mut impl CryptoRng,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<[u8; SALT_LEN], GroupError> {
        self.seal(rng, plaintext, out)
    }

    /// What [`encrypt_bound_into`](Self::encrypt_bound_into) would refuse, checked without
    /// changing anything: a chain at its last iteration.
    pub(crate) fn sealable(&self) -> Result<(), GroupError> {
        match self.iteration {
            u32::MAX => Err(GroupError::ChainExhausted),
            _ => Ok(()),
        }
    }

    /// Sets the chain at its last iteration (test support: a key used 2^32 − 1 times).
    #[cfg(feature = "test-support")]
    pub(crate) fn exhaust(&mut self) {
        self.iteration = u32::MAX;
    }

    /// Seals into `out` after the bytes already in it, which are the bound context. On error
    /// `out` and the session are unchanged.
    fn seal(
        &mut self,
        rng: &mut impl CryptoRng,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<[u8; SALT_LEN], GroupError> {
        let context_len = out.len();
        context_len_of(out)?;
        self.sealable()?;
        let following = self.iteration.wrapping_add(1);
        let (message_key, next) = self.chain.step();
        let mut salt = [0u8; SALT_LEN];
        rng.fill_bytes(&mut salt);
        out.reserve(HEADER_LEN + plaintext.len() + TAG_LEN + SIGNATURE_LEN);
        out.header(kind::GROUP_MESSAGE);
        out.put(&self.group.0);
        out.u32(self.key_id.0);
        out.u32(self.iteration);
        out.put(&salt);
        out.put(plaintext);
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&out[context_len..context_len + HEADER_LEN]);
        message_key
            .aead_key(&salt, labels::GROUP_MESSAGE_KEYS)
            .seal_in_place(&header, out, context_len + HEADER_LEN);
        let (context, message) = out.split_at(context_len);
        let signed = match self.owner.signed_bytes(context, message) {
            Ok(signed) => signed,
            // Checked above; leave `out` as it came all the same.
            Err(e) => {
                out.truncate(context_len);
                return Err(e);
            }
        };
        out.put(&self.signing.sign_raw(&signed).to_bytes());
        self.chain = next;
        self.iteration = following;
        Ok(salt)
    }

    /// The group.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// The owning device.
    pub fn owner(&self) -> &GroupSender {
        &self.owner
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
        let mut out = SecretBuf::with_capacity(2 + 32 + 97 + 4 + 4 + 32 + 32);
        out.versioned_header(OUTBOUND_STATE_VERSION, kind::OUTBOUND_GROUP_STATE);
        out.put(&self.group.0);
        self.owner.write(&mut out);
        out.u32(self.key_id.0);
        out.u32(self.iteration);
        out.put(self.chain.0.as_bytes());
        out.put(self.signing.seed());
        out.into_inner()
    }

    /// Restores from [`to_bytes`](Self::to_bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (mut r, _) =
            Reader::versioned_header(bytes, kind::OUTBOUND_GROUP_STATE, &[OUTBOUND_STATE_VERSION])?;
        let group = GroupId(r.array()?);
        let owner = GroupSender::read(&mut r)?;
        let key_id = SenderKeyId(r.u32()?);
        if key_id.0 == 0 {
            return Err(DecodeError::InvalidValue);
        }
        let s = Self {
            group,
            owner,
            key_id,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::IdentityKeyPair;
    use crate::testing::SeededRng;

    /// A key at its last iteration refuses to seal (`sealable`, which `seal` checks first) and
    /// changes nothing; the iteration before it still seals.
    #[test]
    fn a_chain_at_its_last_iteration_refuses_and_changes_nothing() {
        let rng = &mut SeededRng::from_label("outbound exhausted");
        let sender = GroupSender::new(IdentityKeyPair::generate(rng).public(), &[]).unwrap();
        let mut key = OutboundGroupSession::new(rng, GroupId([1; 32]), sender);
        key.iteration = u32::MAX - 1;
        assert!(key.encrypt(rng, b"last").is_ok());
        assert_eq!(key.sealable(), Err(GroupError::ChainExhausted));
        let before = key.to_bytes();
        assert_eq!(
            key.encrypt(rng, b"one more"),
            Err(GroupError::ChainExhausted)
        );
        assert_eq!(*key.to_bytes(), *before);
    }
}
