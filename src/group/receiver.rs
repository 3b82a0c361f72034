//! The receiving side: every sender key this device holds, per (group, sender device), with
//! bounded generations and bounded skipped keys. Decryption verifies the signature before
//! anything else and changes state only after the message authenticated.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::fmt;
use zeroize::Zeroizing;

use super::{GroupConfig, GroupId, GroupMessage, SenderKeyDistribution, SenderKeyId};
use crate::error::{DecodeError, GroupError};
use crate::labels;
use crate::primitives::{IdentityKey, Secret, SigningPublicKey};
use crate::ratchet::keys::{ChainKey, MessageKey};
use crate::wire::{Reader, Writer, kind};

/// (group id, sender device identity key) — the key of one sender's record.
type SenderName = ([u8; 32], [u8; 32]);

#[derive(Clone, PartialEq, Eq)]
struct Generation {
    key_id: SenderKeyId,
    signing: SigningPublicKey,
    chain: ChainKey,
    /// The iteration the distribution started at: earlier messages were never readable here.
    first: u32,
    /// The next iteration the chain would produce.
    iteration: u32,
    /// Keys of iterations below `iteration` not yet used, ascending.
    skipped: VecDeque<(u32, MessageKey)>,
}

/// Every inbound sender key of this device. Persist [`to_bytes`](Self::to_bytes) after every
/// successful call.
#[derive(Clone, PartialEq, Eq)]
pub struct GroupReceiver {
    config: GroupConfig,
    /// Generations ascending by key id, never empty.
    senders: BTreeMap<SenderName, Vec<Generation>>,
}

impl GroupReceiver {
    /// An empty receiver with these limits.
    pub fn new(config: GroupConfig) -> Self {
        Self {
            config,
            senders: BTreeMap::new(),
        }
    }

    /// Records a sender key received (inside a pairwise session) from `sender`'s device.
    /// Processing a distribution for a key id already held changes nothing (an older
    /// iteration never rewinds the chain); one that names a held key id with a different
    /// signing key is refused.
    pub fn process_distribution(
        &mut self,
        sender: &IdentityKey,
        distribution: &SenderKeyDistribution,
    ) -> Result<(), GroupError> {
        let name = (distribution.group.0, sender.to_bytes());
        let generations = self.senders.entry(name).or_default();
        match generations.binary_search_by_key(&distribution.key_id, |g| g.key_id) {
            Ok(held) => {
                if generations[held].signing != distribution.signing_key {
                    return Err(GroupError::ConflictingDistribution);
                }
            }
            Err(at) => {
                generations.insert(
                    at,
                    Generation {
                        key_id: distribution.key_id,
                        signing: distribution.signing_key,
                        chain: ChainKey(distribution.chain_key.clone()),
                        first: distribution.iteration,
                        iteration: distribution.iteration,
                        skipped: VecDeque::new(),
                    },
                );
                let excess = generations
                    .len()
                    .saturating_sub(self.config.max_generations.max(1) as usize);
                generations.drain(..excess);
            }
        }
        Ok(())
    }

    /// Verifies and decrypts a group message from `sender`'s device.
    pub fn decrypt(
        &mut self,
        sender: &IdentityKey,
        message: &GroupMessage<'_>,
    ) -> Result<Vec<u8>, GroupError> {
        let limit = self.config.max_forward_jump;
        let max_skipped = self.config.max_skipped_keys as usize;
        let generations = self
            .senders
            .get_mut(&(message.group.0, sender.to_bytes()))
            .ok_or(GroupError::UnknownSender)?;
        let generation = generations
            .iter_mut()
            .find(|g| g.key_id == message.key_id)
            .ok_or(GroupError::UnknownKeyId(message.key_id.0))?;
        generation
            .signing
            .verify(
                &super::outbound::signature_prefix(sender),
                message.signed,
                &message.signature,
            )
            .map_err(|_| GroupError::BadSignature)?;

        if message.iteration < generation.first {
            return Err(GroupError::PredatesKey(message.key_id.0));
        }
        if message.iteration < generation.iteration {
            let index = generation
                .skipped
                .iter()
                .position(|(i, _)| *i == message.iteration)
                .ok_or(GroupError::Duplicate)?;
            let plaintext = open(&generation.skipped[index].1, message)?;
            generation.skipped.remove(index);
            return Ok(plaintext);
        }

        let after = message
            .iteration
            .checked_add(1)
            .ok_or(GroupError::ChainExhausted)?;
        let gap = message.iteration - generation.iteration;
        if gap > limit {
            return Err(GroupError::TooFarAhead {
                requested: gap,
                limit,
            });
        }
        let mut chain = generation.chain.clone();
        let mut skipped = Vec::new();
        for iteration in generation.iteration..message.iteration {
            let (key, next) = chain.step();
            skipped.push((iteration, key));
            chain = next;
        }
        let (key, next) = chain.step();
        let plaintext = open(&key, message)?;

        generation.chain = next;
        generation.iteration = after;
        generation.skipped.extend(skipped);
        let excess = generation.skipped.len().saturating_sub(max_skipped);
        generation.skipped.drain(..excess);
        Ok(plaintext)
    }

    /// Whether this device holds `sender`'s key `key_id` for `group`.
    pub fn has_sender_key(
        &self,
        group: GroupId,
        sender: &IdentityKey,
        key_id: SenderKeyId,
    ) -> bool {
        self.senders
            .get(&(group.0, sender.to_bytes()))
            .is_some_and(|g| g.iter().any(|g| g.key_id == key_id))
    }

    /// Drops every key of `sender` in `group` (the sender left or was removed).
    pub fn forget_sender(&mut self, group: GroupId, sender: &IdentityKey) {
        self.senders.remove(&(group.0, sender.to_bytes()));
    }

    /// Drops every key of `group`.
    pub fn forget_group(&mut self, group: GroupId) {
        self.senders.retain(|(g, _), _| *g != group.0);
    }

    /// Versioned state bytes (PROTOCOL.md, "Group receiver state"). They hold secrets.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::new());
        out.header(kind::GROUP_RECEIVER_STATE);
        out.u32(self.config.max_forward_jump);
        out.u32(self.config.max_skipped_keys);
        out.u32(self.config.max_generations);
        out.u32(self.senders.len() as u32);
        for ((group, sender), generations) in &self.senders {
            out.extend_from_slice(group);
            out.extend_from_slice(sender);
            out.u32(generations.len() as u32);
            for g in generations {
                out.u32(g.key_id.0);
                out.extend_from_slice(&g.signing.to_bytes());
                out.extend_from_slice(g.chain.0.as_bytes());
                out.u32(g.first);
                out.u32(g.iteration);
                out.u32(g.skipped.len() as u32);
                for (iteration, key) in &g.skipped {
                    out.u32(*iteration);
                    out.extend_from_slice(key.0.as_bytes());
                }
            }
        }
        out
    }

    /// Restores from [`to_bytes`](Self::to_bytes); refuses anything it would not have written.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, kind::GROUP_RECEIVER_STATE)?;
        let config = GroupConfig {
            max_forward_jump: r.u32()?,
            max_skipped_keys: r.u32()?,
            max_generations: r.u32()?,
        };
        let mut senders = BTreeMap::new();
        let count = r.u32()?;
        let mut previous: Option<SenderName> = None;
        for _ in 0..count {
            let name: SenderName = (r.array()?, r.array()?);
            if previous.is_some_and(|p| p >= name) {
                return Err(DecodeError::InvalidValue);
            }
            previous = Some(name);
            let n = crate::x3dh::bounded_count(&mut r, config.max_generations.max(1))?;
            if n == 0 {
                return Err(DecodeError::InvalidValue);
            }
            let mut generations: Vec<Generation> = Vec::with_capacity(r.capacity(n, 80));
            for _ in 0..n {
                let g = read_generation(&mut r, config)?;
                if generations
                    .last()
                    .is_some_and(|last| last.key_id >= g.key_id)
                {
                    return Err(DecodeError::InvalidValue);
                }
                generations.push(g);
            }
            senders.insert(name, generations);
        }
        r.finish()?;
        Ok(Self { config, senders })
    }
}

fn read_generation(r: &mut Reader<'_>, config: GroupConfig) -> Result<Generation, DecodeError> {
    let key_id = SenderKeyId(r.u32()?);
    let signing = SigningPublicKey::from_bytes(&r.array()?)?;
    let chain = ChainKey(Secret::from_bytes(r.array()?));
    let first = r.u32()?;
    let iteration = r.u32()?;
    if first > iteration {
        return Err(DecodeError::InvalidValue);
    }
    let n = crate::x3dh::bounded_count(r, config.max_skipped_keys)?;
    let mut skipped: VecDeque<(u32, MessageKey)> = VecDeque::with_capacity(r.capacity(n, 36));
    for _ in 0..n {
        let i = r.u32()?;
        let ascending = skipped.back().is_none_or(|(last, _)| *last < i);
        if !ascending || i >= iteration || i < first {
            return Err(DecodeError::InvalidValue);
        }
        skipped.push_back((i, MessageKey(Secret::from_bytes(r.array()?))));
    }
    Ok(Generation {
        key_id,
        signing,
        chain,
        first,
        iteration,
        skipped,
    })
}

fn open(key: &MessageKey, message: &GroupMessage<'_>) -> Result<Vec<u8>, GroupError> {
    key.aead_key(labels::GROUP_MESSAGE_KEYS)
        .open(message.header(), message.ciphertext)
        .map_err(|_| GroupError::AuthenticationFailed)
}

impl fmt::Debug for GroupReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupReceiver")
            .field("config", &self.config)
            .field("sender_keys", &self.senders.len())
            .finish_non_exhaustive()
    }
}
