//! The sender-key distribution message (PROTOCOL.md, "Sender-key distribution"): what a
//! receiver needs to read a sender's group messages from `iteration` on. It carries a chain key,
//! so it must only ever travel inside an end-to-end encrypted pairwise session.

use alloc::vec::Vec;
use core::fmt;
use zeroize::Zeroizing;

use super::{GroupId, SenderKeyId};
use crate::error::DecodeError;
use crate::primitives::{Secret, SigningPublicKey};
use crate::wire::{Reader, Writer, kind};

/// A sender key at one iteration: group, key id, iteration, chain key and signing public key.
#[derive(Clone, PartialEq, Eq)]
pub struct SenderKeyDistribution {
    pub(crate) group: GroupId,
    pub(crate) key_id: SenderKeyId,
    pub(crate) iteration: u32,
    pub(crate) chain_key: Secret<32>,
    pub(crate) signing_key: SigningPublicKey,
}

impl SenderKeyDistribution {
    /// The group it belongs to.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// The sender key's generation.
    pub fn key_id(&self) -> SenderKeyId {
        self.key_id
    }

    /// The first iteration it can decrypt.
    pub fn iteration(&self) -> u32 {
        self.iteration
    }

    /// Wire bytes (they hold a chain key: seal them in a pairwise session).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(2 + 32 + 4 + 4 + 32 + 32));
        out.header(kind::SENDER_KEY_DISTRIBUTION);
        out.extend_from_slice(&self.group.0);
        out.u32(self.key_id.0);
        out.u32(self.iteration);
        out.extend_from_slice(self.chain_key.as_bytes());
        out.extend_from_slice(&self.signing_key.to_bytes());
        out
    }

    /// Parses wire bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, kind::SENDER_KEY_DISTRIBUTION)?;
        let d = Self {
            group: GroupId(r.array()?),
            key_id: SenderKeyId(r.u32()?),
            iteration: r.u32()?,
            chain_key: Secret::from_bytes(r.array()?),
            signing_key: SigningPublicKey::from_bytes(&r.array()?)?,
        };
        r.finish()?;
        Ok(d)
    }
}

impl fmt::Debug for SenderKeyDistribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SenderKeyDistribution")
            .field("group", &self.group)
            .field("key_id", &self.key_id)
            .field("iteration", &self.iteration)
            .field("signing_key", &self.signing_key)
            .field("chain_key", &"redacted")
            .finish()
    }
}
