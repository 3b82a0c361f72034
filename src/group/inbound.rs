//! The receiving side of one sender's key in one group: its generations, kept by arrival and
//! bounded, each with bounded skipped keys. Decryption verifies the signature (over the
//! message and the context the caller binds) before anything else and changes state only after
//! the message authenticated.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt;
use zeroize::Zeroizing;

use super::sender::context_len;
use super::{GroupConfig, GroupId, GroupMessage, GroupSender, SenderKeyDistribution, SenderKeyId};
use crate::error::{DecodeError, GroupError};
use crate::labels;
use crate::primitives::{Secret, SigningPublicKey};
use crate::ratchet::keys::{ChainKey, MessageKey};
use crate::wire::{Reader, SecretBuf, Writer, bounded_count, kind};

/// The inbound sender key state format this build writes.
const INBOUND_STATE_VERSION: u8 = 1;
/// Generations and skipped keys an encoding may hold at all (configured limits are lower);
/// bounds decoding.
const MAX_ENCODED_GENERATIONS: u32 = 64;
const MAX_ENCODED_SKIPPED: u32 = 100_000;

#[derive(Clone, PartialEq, Eq)]
struct Generation {
    key_id: SenderKeyId,
    signing: SigningPublicKey,
    chain: ChainKey,
    /// The iteration the distribution started at: earlier messages were never readable here.
    first: u32,
    /// The next iteration the chain would produce.
    iteration: u32,
    /// Keys of iterations below `iteration` not yet used, ascending. Boxed, so that the deque
    /// growing or shrinking moves pointers and never leaves key bytes in freed memory.
    skipped: VecDeque<(u32, Box<MessageKey>)>,
}

/// One sender device's keys for one group, as this device holds them. Persist
/// [`to_bytes`](Self::to_bytes) after every successful call.
#[derive(Clone, PartialEq, Eq)]
pub struct InboundSenderKey {
    group: GroupId,
    sender: GroupSender,
    /// Generations in the order they arrived, oldest first; never empty.
    generations: Vec<Generation>,
}

impl InboundSenderKey {
    /// The first key of `sender` for the distribution's group, received inside a pairwise
    /// session from that device.
    pub fn new(sender: GroupSender, distribution: &SenderKeyDistribution) -> Self {
        Self {
            group: distribution.group,
            sender,
            generations: alloc::vec![Generation::from(distribution)],
        }
    }

    /// Records another distribution from the same sender. One for a key id already held
    /// changes nothing (an older or newer iteration never moves the chain); one that names a
    /// held key id with a different signing key is refused; a new one is added and the oldest
    /// beyond `config.max_generations` is dropped.
    pub fn process_distribution(
        &mut self,
        config: &GroupConfig,
        distribution: &SenderKeyDistribution,
    ) -> Result<(), GroupError> {
        if distribution.group != self.group {
            return Err(GroupError::UnknownSender);
        }
        match self.find(distribution.key_id) {
            Some(held) if held.signing != distribution.signing_key => {
                Err(GroupError::ConflictingDistribution)
            }
            Some(_) => Ok(()),
            None => {
                self.generations.push(Generation::from(distribution));
                let excess = self
                    .generations
                    .len()
                    .saturating_sub(config.max_generations.max(1) as usize);
                self.generations.drain(..excess);
                Ok(())
            }
        }
    }

    fn find(&self, key_id: SenderKeyId) -> Option<&Generation> {
        self.generations.iter().find(|g| g.key_id == key_id)
    }

    /// Verifies and decrypts a group message of this sender sealed with an empty context
    /// ([`decrypt_bound`](Self::decrypt_bound) with `&[]`).
    pub fn decrypt(
        &mut self,
        config: &GroupConfig,
        message: &GroupMessage<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, GroupError> {
        self.decrypt_bound(config, message, &[])
    }

    /// [`decrypt`](Self::decrypt) of a message sealed by
    /// [`OutboundGroupSession::encrypt_bound`](super::OutboundGroupSession::encrypt_bound) with
    /// this `context`: any other context is `BadSignature`, one longer than
    /// [`MAX_MESSAGE_CONTEXT`](super::MAX_MESSAGE_CONTEXT) is `ContextTooLong`; either way
    /// nothing changes.
    pub fn decrypt_bound(
        &mut self,
        config: &GroupConfig,
        message: &GroupMessage<'_>,
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, GroupError> {
        context_len(context)?;
        if message.group != self.group {
            return Err(GroupError::UnknownSender);
        }
        let generation = self
            .generations
            .iter_mut()
            .find(|g| g.key_id == message.key_id)
            .ok_or(GroupError::UnknownKeyId(message.key_id.0))?;
        let signed = self.sender.signed_bytes(context, message.signed)?;
        generation
            .signing
            .verify_raw(&signed, &message.signature)
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
        if gap > config.max_forward_jump {
            return Err(GroupError::TooFarAhead {
                requested: gap,
                limit: config.max_forward_jump,
            });
        }
        let mut chain = generation.chain.clone();
        let mut skipped = Vec::new();
        for iteration in generation.iteration..message.iteration {
            let (key, next) = chain.step();
            skipped.push((iteration, Box::new(key)));
            chain = next;
        }
        let (key, next) = chain.step();
        let plaintext = open(&key, message)?;

        generation.chain = next;
        generation.iteration = after;
        generation.skipped.extend(skipped);
        let excess = generation
            .skipped
            .len()
            .saturating_sub(config.max_skipped_keys as usize);
        generation.skipped.drain(..excess);
        Ok(plaintext)
    }

    /// The group.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// The sending device.
    pub fn sender(&self) -> &GroupSender {
        &self.sender
    }

    /// Whether generation `key_id` is held.
    pub fn has_key(&self, key_id: SenderKeyId) -> bool {
        self.find(key_id).is_some()
    }

    /// Versioned state bytes (PROTOCOL.md, "Inbound sender key state"). They hold secrets.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let skipped: usize = self.generations.iter().map(|g| g.skipped.len()).sum();
        let mut out =
            SecretBuf::with_capacity(2 + 32 + 97 + 4 + self.generations.len() * 84 + skipped * 36);
        out.versioned_header(INBOUND_STATE_VERSION, kind::INBOUND_SENDER_KEY_STATE);
        out.put(&self.group.0);
        self.sender.write(&mut out);
        out.u32(self.generations.len() as u32);
        for g in &self.generations {
            out.u32(g.key_id.0);
            out.put(&g.signing.to_bytes());
            out.put(g.chain.0.as_bytes());
            out.u32(g.first);
            out.u32(g.iteration);
            out.u32(g.skipped.len() as u32);
            for (iteration, key) in &g.skipped {
                out.u32(*iteration);
                out.put(key.0.as_bytes());
            }
        }
        out.into_inner()
    }

    /// Restores from [`to_bytes`](Self::to_bytes); refuses anything it would not have written.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (mut r, _) = Reader::versioned_header(
            bytes,
            kind::INBOUND_SENDER_KEY_STATE,
            &[INBOUND_STATE_VERSION],
        )?;
        let group = GroupId(r.array()?);
        let sender = GroupSender::read(&mut r)?;
        let n = bounded_count(&mut r, MAX_ENCODED_GENERATIONS)?;
        if n == 0 {
            return Err(DecodeError::InvalidValue);
        }
        let mut generations: Vec<Generation> = Vec::with_capacity(r.capacity(n, 84));
        for _ in 0..n {
            let g = read_generation(&mut r)?;
            if generations.iter().any(|h| h.key_id == g.key_id) {
                return Err(DecodeError::InvalidValue);
            }
            generations.push(g);
        }
        r.finish()?;
        Ok(Self {
            group,
            sender,
            generations,
        })
    }
}

impl From<&SenderKeyDistribution> for Generation {
    fn from(d: &SenderKeyDistribution) -> Self {
        Self {
            key_id: d.key_id,
            signing: d.signing_key,
            chain: ChainKey(d.chain_key.clone()),
            first: d.iteration,
            iteration: d.iteration,
            skipped: VecDeque::new(),
        }
    }
}

fn read_generation(r: &mut Reader<'_>) -> Result<Generation, DecodeError> {
    let key_id = SenderKeyId(r.u32()?);
    let signing = SigningPublicKey::from_bytes(&r.array()?)?;
    let chain = ChainKey(Secret::from_bytes(r.array()?));
    let first = r.u32()?;
    let iteration = r.u32()?;
    if first > iteration || key_id.0 == 0 {
        return Err(DecodeError::InvalidValue);
    }
    let n = bounded_count(r, MAX_ENCODED_SKIPPED)?;
    let mut skipped: VecDeque<(u32, Box<MessageKey>)> = VecDeque::with_capacity(r.capacity(n, 36));
    for _ in 0..n {
        let i = r.u32()?;
        let ascending = skipped.back().is_none_or(|(last, _)| *last < i);
        if !ascending || i >= iteration || i < first {
            return Err(DecodeError::InvalidValue);
        }
        skipped.push_back((i, Box::new(MessageKey(Secret::from_bytes(r.array()?)))));
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

fn open(key: &MessageKey, message: &GroupMessage<'_>) -> Result<Zeroizing<Vec<u8>>, GroupError> {
    key.aead_key(&message.salt, labels::GROUP_MESSAGE_KEYS)
        .open(message.header(), message.ciphertext)
        .map(Zeroizing::new)
        .map_err(|_| GroupError::AuthenticationFailed)
}

impl fmt::Debug for InboundSenderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundSenderKey")
            .field("group", &self.group)
            .field("sender", &self.sender.identity())
            .field(
                "key_ids",
                &self
                    .generations
                    .iter()
                    .map(|g| g.key_id)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}
