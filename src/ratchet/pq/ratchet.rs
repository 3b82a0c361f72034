//! The post-quantum ratchet's state machine: whose turn it is to publish a key, what is in
//! flight, which epoch's secret each side knows, and which chunk the next message carries.
//!
//! Epoch `x ≥ 1` is one ML-KEM-768 exchange. Its **publisher** (the session's initiator for odd
//! `x`, the responder for even) draws a key pair and sends the key's header and vector; the
//! **encapsulator** answers the header with `ct1` at once (it then knows the epoch's secret)
//! and the vector with `ct2`; the publisher knows the secret when both parts have arrived. The
//! encapsulator of `x` publishes `x + 1` as soon as it has encapsulated, so each direction
//! always has something to send. `S_x = HKDF(salt = S_{x−1}, ikm = ss_x,
//! info = "ratchetry v1 pq epoch" ‖ u32(x))` (no salt for `x = 1`).
//!
//! A side's **epoch** is the newest `x` whose `S_x` it knows. The rule that bounds what a
//! stolen state reveals: a side at epoch `e` holds key material of epoch `e + 1` at most (its
//! own publication's seed, or nothing): the publisher of `e + 1` never encapsulates for `e + 2`
//! before it has decapsulated `e + 1`. So a copy of one side's state at epoch `e` gives an
//! observer `S_e` and perhaps `ss_{e+1}`, never `ss_{e+2}`, which comes from randomness drawn
//! after the copy: `S_{e+2}` and every later secret are out of its reach.
//!
//! A sending chain mixes the newest epoch its side knows the peer knows (`peer_knows`); the
//! receiver resolves that epoch from four bits. Chunks are taken only from messages of the
//! current or a new receiving chain. Randomness is drawn only when sending; receiving may
//! decapsulate. Nothing here can fail: the session runs a receive only for a message that
//! authenticated and is being applied, and a send only once nothing else can refuse it.

use alloc::boxed::Box;
use alloc::vec::Vec;
use rand_core::CryptoRng;

use super::erasure::{self, Chunk, Collector, INDEXES, SYMBOL};
use super::extension::{Extension, Kind, OFFSETS, WireChunk};
use crate::labels;
use crate::primitives::kem768::{
    self, CT1_LEN, CT2_LEN, EK_HEADER_LEN, EK_VECTOR_LEN, EpochKeyPair, EpochPublicKey,
};
use crate::primitives::{Secret, derive};

/// Symbols of each payload.
pub(crate) const fn symbols(kind: Kind) -> u8 {
    (match kind {
        Kind::Header => EK_HEADER_LEN,
        Kind::Vector => EK_VECTOR_LEN,
        Kind::Ct1 => CT1_LEN,
        Kind::Ct2 => CT2_LEN,
    } / SYMBOL) as u8
}

/// How far apart (in epochs) two values a receiver resolves from a nibble may be.
pub(crate) const WINDOW: u32 = 16;

/// An outgoing payload: how many of its chunks have been sent, and whether the peer is known
/// to have it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) struct Sent {
    pub(crate) count: u32,
    pub(crate) acked: bool,
}

/// This side's publication of epoch `epoch + 1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Publication {
    pub(crate) pair: EpochKeyPair,
    pub(crate) header: Sent,
    pub(crate) vector: Sent,
    pub(crate) ct1: Collector,
    pub(crate) ct2: Collector,
    /// The public key, computed from the seed at first use (not stored).
    public: Option<Box<EpochPublicKey>>,
}

/// This side's encapsulation of epoch `epoch`, until the peer shows it has decapsulated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Encapsulation {
    pub(crate) m: Secret<32>,
    pub(crate) header: [u8; EK_HEADER_LEN],
    pub(crate) vector: Collector,
    pub(crate) ct1: Sent,
    pub(crate) ct2: Sent,
    /// `ct1`, computed at first use (not stored).
    ct1_bytes: Option<Box<[u8; CT1_LEN]>>,
    /// `ct2`, computed by the first send after the vector is complete (not stored).
    ct2_bytes: Option<Box<[u8; CT2_LEN]>>,
    /// The complete vector failed 25.2's check: `ct2` is never computed, and the check is not
    /// run again at every send (it is again after a load, which does not store the outcome).
    ct2_refused: bool,
    /// Whether the peer's latest message asked for `ct1`: the publisher repeats its header
    /// while it lacks `ct1`, whether it holds `ct2` whole or has no `ct1` chunk at all.
    pub(crate) peer_wants_ct1: bool,
}

/// The sparse post-quantum ratchet of one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PqRatchet {
    pub(crate) initiator: bool,
    pub(crate) epoch: u32,
    /// `(x, S_x)` for the epochs a chain may still mix, ascending, ending at `epoch` (empty at
    /// epoch 0).
    pub(crate) secrets: Vec<(u32, Secret<32>)>,
    pub(crate) peer_knows: u32,
    pub(crate) send_chain: u32,
    pub(crate) recv_chain: u32,
    /// Held inline: a side holds one from its first send on, except between completing an
    /// epoch it published and encapsulating the peer's next, so a box of its own would cost
    /// nearly every session an allocation to load and a free to drop.
    pub(crate) publication: Option<Publication>,
    pub(crate) encapsulation: Option<Box<Encapsulation>>,
    /// The peer's next publication (epoch `incoming_epoch()`), once a chunk of it arrived:
    /// held apart so that a session waiting for none keeps no room for it.
    pub(crate) incoming: Option<Box<Incoming>>,
    /// What the peer's chunks say about loss, for how much parity to send.
    pub(crate) loss: Loss,
}

/// The collectors of the peer's next publication: its header and its vector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Incoming {
    pub(crate) header: Collector,
    pub(crate) vector: Collector,
}

impl Incoming {
    pub(crate) fn new() -> Self {
        Self {
            header: Collector::new(symbols(Kind::Header)),
            vector: Collector::new(symbols(Kind::Vector)),
        }
    }
}

/// The index of a payload's chunk number `count` (from 0): the indexes in order, each round of
/// [`INDEXES`] shifted by one more. Without the shift, a loss that repeats with the messages'
/// parity (a relay that drops every other message of one side, say) delivers the same 32
/// indexes every round, fewer than the vector's 36 symbols, and the epoch never completes; with
/// it, such a pattern (or any whose period divides 64) reaches the other indexes in the
/// following rounds.
pub(crate) fn chunk_index(count: u32) -> u8 {
    let indexes = INDEXES as u32;
    (count.wrapping_add(count / indexes) % indexes) as u8
}

/// Chunks of the peer's that arrived (`heard`) and that the gaps in their indexes say were lost
/// (`missed`): a sender numbers each payload's chunks from 0 upwards, so an index past the
/// highest one collected counts the ones between as lost, and one below it (reordered) takes
/// one back. Both are halved when their sum reaches [`LOSS_WINDOW`], so the estimate follows
/// the last few epochs. It measures the peer-to-here direction and is used for the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Loss {
    pub(crate) heard: u16,
    pub(crate) missed: u16,
}

/// When `heard + missed` reaches this, both are halved.
pub(crate) const LOSS_WINDOW: u16 = 128;

/// What a message's chain mixes into its root step: the epoch and, from epoch 1 on, its secret.
pub(crate) type ChainSecret = (u32, Option<Secret<32>>);

impl PqRatchet {
    /// A session's ratchet at epoch 0, before any exchange.
    pub(crate) fn new(initiator: bool) -> Self {
        Self {
            initiator,
            epoch: 0,
            secrets: Vec::new(),
            peer_knows: 0,
            send_chain: 0,
            recv_chain: 0,
            publication: None,
            encapsulation: None,
            incoming: None,
            loss: Loss::default(),
        }
    }

    /// Whether this side publishes epoch `x`.
    pub(crate) fn publishes(&self, x: u32) -> bool {
        (x % 2 == 1) == self.initiator
    }

    /// The epoch of the peer's next publication.
    pub(crate) fn incoming_epoch(&self) -> u32 {
        if self.publishes(self.epoch + 1) {
            self.epoch + 2
        } else {
            self.epoch + 1
        }
    }

    fn secret(&self, x: u32) -> Option<Secret<32>> {
        self.secrets
            .iter()
            .find(|(e, _)| *e == x)
            .map(|(_, s)| s.clone())
    }

    /// Starts a new sending chain: it mixes the newest epoch the peer is known to know.
    pub(crate) fn begin_send_chain(&mut self) -> ChainSecret {
        self.send_chain = self.peer_knows;
        self.prune();
        (self.send_chain, self.secret(self.send_chain))
    }

    /// The epoch and secret a new receiving chain mixes, from its messages' nibble: the one
    /// epoch at or after the current receiving chain's, within [`WINDOW`], that matches and whose
    /// secret this side knows; `None` for any other. Changes nothing: the session calls
    /// [`Self::enter_recv_chain`] when the message authenticates.
    pub(crate) fn resolve_recv_chain(&self, nibble: u8) -> Option<ChainSecret> {
        let c = resolve(self.recv_chain, nibble);
        if c > self.epoch {
            return None;
        }
        if c == 0 {
            return Some((0, None));
        }
        self.secret(c).map(|s| (c, Some(s)))
    }

    /// Whether `nibble` names the current receiving chain's epoch.
    pub(crate) fn is_recv_chain(&self, nibble: u8) -> bool {
        u32::from(nibble) == self.recv_chain % WINDOW
    }

    /// Records that the receiving chain now mixes `c`.
    pub(crate) fn enter_recv_chain(&mut self, c: u32) {
        self.recv_chain = c;
        self.prune();
    }

    /// The oldest epoch whose secret a chain may still mix: a new sending chain mixes
    /// `peer_knows` or later, a new receiving chain `recv_chain` or later, within [`WINDOW`]
    /// of this side's epoch.
    pub(crate) fn oldest_kept(&self) -> u32 {
        self.recv_chain
            .min(self.peer_knows)
            .max(1)
            .max(self.epoch.saturating_sub(WINDOW - 1))
    }

    /// Drops the secrets no chain can mix any more (forward secrecy across epochs).
    fn prune(&mut self) {
        let floor = self.oldest_kept();
        self.secrets.retain(|(x, _)| *x >= floor);
    }

    fn advance(&mut self, ss: &Secret<32>) {
        let x = self.epoch + 1;
        let mut info = Vec::with_capacity(labels::PQ_EPOCH.len() + 4);
        info.extend_from_slice(labels::PQ_EPOCH);
        info.extend_from_slice(&x.to_be_bytes());
        let salt = self.secrets.last().map(|(_, s)| &s.as_bytes()[..]);
        let next: Secret<32> = derive(salt, ss.as_bytes(), &info);
        self.secrets.push((x, next));
        self.epoch = x;
        self.prune();
    }

    /// The extension of the next message of the current sending chain, drawing randomness for
    /// a new encapsulation or key pair when one is due.
    pub(crate) fn send(&mut self, rng: &mut impl CryptoRng) -> Extension {
        self.encapsulate_if_due(rng);
        // `ct2` waits for a send, the one step whose schedule depends on it: a load or a
        // receive that completes the vector does not pay an encapsulation for it.
        if let Some(enc) = self.encapsulation.as_deref_mut() {
            enc.finish_if_complete();
        }
        if self.publication.is_none() && self.publishes(self.epoch + 1) {
            let mut seed = Secret::from_bytes([0u8; 64]);
            rng.fill_bytes(seed.as_mut_bytes());
            self.publication = Some(Publication::new(EpochKeyPair::from_seed(seed)));
        }
        let chain_nibble = (self.send_chain % WINDOW) as u8;
        let chunk = self.next_chunk();
        Extension {
            chain_nibble,
            chunk,
        }
    }

    /// Encapsulates to the peer's publication of `epoch + 1` once its header is here.
    fn encapsulate_if_due(&mut self, rng: &mut impl CryptoRng) {
        if self.publishes(self.epoch + 1) {
            return;
        }
        let Some(bytes) = self.incoming.as_ref().and_then(|i| i.header.decode()) else {
            return;
        };
        let mut header = [0u8; EK_HEADER_LEN];
        header.copy_from_slice(&bytes);
        let mut m = Secret::from_bytes([0u8; 32]);
        rng.fill_bytes(m.as_mut_bytes());
        let (ct1, ss) = kem768::encapsulate1(&header, &m);
        let vector = self.incoming.take().map_or_else(
            || Collector::new(symbols(Kind::Vector)),
            |incoming| incoming.vector,
        );
        let mut enc =
            Encapsulation::restore(m, header, vector, Sent::default(), Sent::default(), false);
        enc.ct1_bytes = Some(ct1);
        self.encapsulation = Some(Box::new(enc));
        self.advance(&ss);
    }

    /// The next chunk, of the payload [`Self::pick`] chooses. No chunk when nothing is due, or
    /// the chunk's epoch is below the chain's or [`OFFSETS`] or more past it (it waits for a
    /// new chain: the extension names the epoch by its offset, in two bits).
    fn next_chunk(&mut self) -> Option<WireChunk> {
        let (kind, count) = self.pick()?;
        let epoch = match kind {
            Kind::Ct1 | Kind::Ct2 => self.epoch,
            Kind::Header | Kind::Vector => self.epoch + 1,
        };
        // A chain mixes an epoch this side knows the peer knows, so no chunk's is below it.
        let offset = epoch
            .checked_sub(self.send_chain)
            .filter(|d| *d < OFFSETS)?;
        let index = chunk_index(count);
        let data = match kind {
            Kind::Ct1 | Kind::Ct2 => {
                let enc = self.encapsulation.as_mut()?;
                let sent = if kind == Kind::Ct1 {
                    &mut enc.ct1
                } else {
                    &mut enc.ct2
                };
                sent.count = count.saturating_add(1);
                enc.chunk(kind, index)
            }
            Kind::Header | Kind::Vector => {
                let p = self.publication.as_mut()?;
                let sent = if kind == Kind::Header {
                    &mut p.header
                } else {
                    &mut p.vector
                };
                sent.count = count.saturating_add(1);
                p.chunk(kind, index)
            }
        };
        Some(WireChunk {
            epoch_offset: offset as u8,
            kind,
            index,
            data,
        })
    }

    /// Which payload the next chunk is of, and how many of its chunks went before.
    ///
    /// An epoch is a chain of waits: the encapsulator's `ct1` and the publisher's vector travel
    /// side by side, `ct2` only once the vector is whole, and the publisher then waits for
    /// both ciphertext parts with nothing to send. So a lost chunk costs the most when it is
    /// noticed late; each rule below sends what the peer is most likely still waiting for.
    ///
    /// 1. The encapsulation first: `ct2` as soon as it can be computed, `ct1` from the start,
    ///    each up to [`Loss::sends`] chunks (enough to arrive whole at the loss the peer's own
    ///    chunks show) rather than exactly `k`, since its repair would come a round trip later.
    /// 2. The own key's header, up to [`Loss::sends`]; and again on every message once the
    ///    peer's chain shows it knows this side's epoch: the peer then waits for nothing but the
    ///    header to encapsulate (its `ct1` acknowledges it), so a lost header chunk is repaired
    ///    at the next message instead of stalling the epoch.
    /// 3. Once `ct2` has gone out, ciphertext parity until the peer shows it has decapsulated
    ///    (a chunk of its ciphertext of the next epoch): `ct2` until the peer shows it holds
    ///    `ct2` whole, then `ct1` (see 5). The own vector waits: the epoch does not.
    /// 4. The own key's vector until a `ct2` chunk acknowledges it, parity after the first 36
    ///    (the publisher cannot know which were lost, and has nothing better to send).
    /// 5. A publisher that holds `ct2` whole but not `ct1` repeats its header (already used by
    ///    the peer, so harmless): the one way the encapsulator learns which part is short,
    ///    which the bare message of a publisher still missing `ct2` cannot tell it.
    /// 6. Otherwise `ct1` parity while the vector is incomplete, or no chunk.
    fn pick(&self) -> Option<(Kind, u32)> {
        let short = |kind: Kind, sent: &Sent| sent.count < self.loss.sends(symbols(kind));
        let enc = self.encapsulation.as_ref();
        let ready = enc.is_some_and(|e| e.ct2_bytes.is_some());
        if let Some(enc) = enc {
            if ready && !enc.peer_wants_ct1 && short(Kind::Ct2, &enc.ct2) {
                return Some((Kind::Ct2, enc.ct2.count));
            }
            if short(Kind::Ct1, &enc.ct1) {
                return Some((Kind::Ct1, enc.ct1.count));
            }
        }
        if let Some(p) = self.publication.as_ref().filter(|p| !p.header.acked)
            && (short(Kind::Header, &p.header) || self.recv_chain >= self.epoch)
        {
            return Some((Kind::Header, p.header.count));
        }
        if let Some(enc) = enc
            && (ready || enc.peer_wants_ct1)
        {
            return Some(if enc.peer_wants_ct1 {
                (Kind::Ct1, enc.ct1.count)
            } else {
                (Kind::Ct2, enc.ct2.count)
            });
        }
        if let Some(p) = &self.publication {
            if !p.vector.acked {
                return Some((Kind::Vector, p.vector.count));
            }
            if p.ct2.is_complete() && !p.ct1.is_complete() {
                return Some((Kind::Header, p.header.count));
            }
        }
        let enc = enc?;
        Some((Kind::Ct1, enc.ct1.count))
    }

    /// Takes in the extension of an authenticated message of the receiving chain that mixes
    /// `c`. A chunk of an epoch or kind this side does not expect is ignored.
    ///
    /// While encapsulating, the peer's latest message also says which ciphertext part it still
    /// lacks (see [`Self::pick`]): its header again means it waits for `ct1`; a chunk of its
    /// vector or no chunk means `ct2` is short.
    pub(crate) fn receive(&mut self, c: u32, ext: &Extension) {
        let Some(chunk) = &ext.chunk else {
            if let Some(enc) = &mut self.encapsulation {
                enc.peer_wants_ct1 = false;
            }
            return;
        };
        let x = c.saturating_add(u32::from(chunk.epoch_offset));
        match chunk.kind {
            Kind::Header | Kind::Vector => {
                // The peer publishes `x`, so it knows `S_{x−1}`.
                self.learn_peer_knows(x.saturating_sub(1));
                if let Some(enc) = &mut self.encapsulation
                    && x == self.epoch
                    && chunk.kind == Kind::Header
                {
                    // A header asks for `ct1` once `ct2` could have arrived whole, or once this
                    // side's first `ct1` chunks went out: a relay that dropped every one of them
                    // leaves the publisher repeating its header, and, were it not answered, the
                    // epoch stalled for good. Before either, it is a late copy of the first ones.
                    enc.peer_wants_ct1 = enc.ct2.count >= u32::from(symbols(Kind::Ct2))
                        || enc.ct1.count >= self.loss.sends(symbols(Kind::Ct1));
                    return;
                }
                if let Some(enc) = &mut self.encapsulation
                    && x == self.epoch
                    && chunk.kind == Kind::Vector
                {
                    enc.peer_wants_ct1 = false;
                    self.loss.note(&enc.vector, chunk.index);
                    enc.vector.add(chunk.index, &chunk.data);
                    return;
                }
                if x != self.incoming_epoch() {
                    return;
                }
                let incoming = self
                    .incoming
                    .get_or_insert_with(|| Box::new(Incoming::new()));
                let collector = if chunk.kind == Kind::Header {
                    &mut incoming.header
                } else {
                    &mut incoming.vector
                };
                self.loss.note(collector, chunk.index);
                collector.add(chunk.index, &chunk.data);
            }
            Kind::Ct1 | Kind::Ct2 => {
                // The peer encapsulates `x`, so it has decapsulated `x − 1`.
                self.learn_peer_knows(x.saturating_sub(1));
                if self.encapsulation.is_some() && x == self.epoch + 1 {
                    self.encapsulation = None;
                }
                if x != self.epoch + 1 {
                    return;
                }
                let Some(p) = &mut self.publication else {
                    return;
                };
                if chunk.kind == Kind::Ct1 {
                    p.header.acked = true;
                    self.loss.note(&p.ct1, chunk.index);
                    p.ct1.add(chunk.index, &chunk.data);
                } else {
                    p.vector.acked = true;
                    self.loss.note(&p.ct2, chunk.index);
                    p.ct2.add(chunk.index, &chunk.data);
                }
                self.decapsulate_if_complete();
            }
        }
    }

    /// The peer was restored from a copy of its state older than some of the messages that
    /// arrived from it (a new chain of its names a shorter previous chain than arrived here).
    /// What those messages carried may come from randomness the restored peer no longer holds
    /// (an `m` or a seed it draws again), and what they acknowledged it may no longer have (the
    /// chunks its lost state read). So what was collected from the peer and not yet used starts
    /// again (the ciphertext answering this side's publication, and the peer's next
    /// publication), and this side's header and vector count as unacknowledged, so that they
    /// go out again. What was used stays: an epoch completed on such messages is beyond repair
    /// (SECURITY.md).
    pub(crate) fn peer_restored(&mut self) {
        if let Some(p) = &mut self.publication {
            p.ct1 = Collector::new(symbols(Kind::Ct1));
            p.ct2 = Collector::new(symbols(Kind::Ct2));
            p.header.acked = false;
            p.vector.acked = false;
        }
        self.incoming = None;
    }

    fn learn_peer_knows(&mut self, x: u32) {
        if x <= self.epoch && x > self.peer_knows {
            self.peer_knows = x;
            self.prune();
        }
    }

    fn decapsulate_if_complete(&mut self) {
        let Some(p) = &self.publication else {
            return;
        };
        let (Some(ct1), Some(ct2)) = (p.ct1.decode(), p.ct2.decode()) else {
            return;
        };
        let mut a = [0u8; CT1_LEN];
        a.copy_from_slice(&ct1);
        let mut b = [0u8; CT2_LEN];
        b.copy_from_slice(&ct2);
        let ss = p.pair.decapsulate(&a, &b);
        self.publication = None;
        self.peer_knows = self.epoch + 1;
        self.advance(&ss);
    }
}

impl Loss {
    /// Counts chunk `index` of the payload `collector` gathers, before it is added.
    fn note(&mut self, collector: &Collector, index: u8) {
        if collector.is_complete() {
            return;
        }
        let chunks = collector.chunks();
        if chunks.iter().any(|(i, _)| *i == index) {
            return;
        }
        match chunks.last() {
            Some((top, _)) if index < *top => self.missed = self.missed.saturating_sub(1),
            Some((top, _)) => self.missed += u16::from(index - top - 1),
            None => self.missed += u16::from(index),
        }
        self.heard += 1;
        if self.heard + self.missed >= LOSS_WINDOW {
            self.heard /= 2;
            self.missed /= 2;
        }
    }

    /// How many chunks to send of a `k`-symbol payload before waiting for word of it: the
    /// `k / (1 − loss)` that arrive as `k` on average (rounded up; `k` before anything is heard,
    /// at most [`INDEXES`]).
    fn sends(&self, k: u8) -> u32 {
        let (heard, total) = (
            u32::from(self.heard),
            u32::from(self.heard) + u32::from(self.missed),
        );
        if total == 0 {
            return u32::from(k);
        }
        if heard == 0 {
            return INDEXES as u32;
        }
        (u32::from(k) * total).div_ceil(heard).min(INDEXES as u32)
    }
}

/// The one value `v ≡ nibble (mod 16)` with `base ≤ v < base + 16`.
fn resolve(base: u32, nibble: u8) -> u32 {
    let delta = (u32::from(nibble) + WINDOW - base % WINDOW) % WINDOW;
    base.saturating_add(delta)
}

impl Publication {
    pub(crate) fn new(pair: EpochKeyPair) -> Self {
        Self::restore(
            pair,
            Sent::default(),
            Sent::default(),
            Collector::new(symbols(Kind::Ct1)),
            Collector::new(symbols(Kind::Ct2)),
        )
    }

    /// A publication as stored: the public key is computed again at first use.
    pub(crate) fn restore(
        pair: EpochKeyPair,
        header: Sent,
        vector: Sent,
        ct1: Collector,
        ct2: Collector,
    ) -> Self {
        Self {
            pair,
            header,
            vector,
            ct1,
            ct2,
            public: None,
        }
    }

    fn chunk(&mut self, kind: Kind, index: u8) -> Chunk {
        let public = self
            .public
            .get_or_insert_with(|| Box::new(self.pair.public()));
        match kind {
            Kind::Header => erasure::encode(&public.header, index),
            _ => erasure::encode(&public.vector[..], index),
        }
    }
}

impl Encapsulation {
    /// An encapsulation as stored: `ct1` is recomputed when first sent, `ct2` by the first send
    /// once the vector is complete.
    pub(crate) fn restore(
        m: Secret<32>,
        header: [u8; EK_HEADER_LEN],
        vector: Collector,
        ct1: Sent,
        ct2: Sent,
        peer_wants_ct1: bool,
    ) -> Self {
        Self {
            m,
            header,
            vector,
            ct1,
            ct2,
            ct1_bytes: None,
            ct2_bytes: None,
            ct2_refused: false,
            peer_wants_ct1,
        }
    }

    /// Computes `ct2` once the vector is complete (a vector that does not match the header
    /// leaves it absent: that peer's epoch never completes).
    fn finish_if_complete(&mut self) {
        if self.ct2_bytes.is_some() || self.ct2_refused {
            return;
        }
        let Some(bytes) = self.vector.decode() else {
            return;
        };
        let mut vector = [0u8; EK_VECTOR_LEN];
        vector.copy_from_slice(&bytes);
        match kem768::encapsulate2(&self.header, &self.m, &vector) {
            Ok(ct2) => self.ct2_bytes = Some(ct2),
            Err(_) => self.ct2_refused = true,
        }
    }

    fn chunk(&mut self, kind: Kind, index: u8) -> Chunk {
        if kind == Kind::Ct1 {
            let (header, m) = (&self.header, &self.m);
            let ct1 = self
                .ct1_bytes
                .get_or_insert_with(|| kem768::encapsulate1(header, m).0);
            erasure::encode(&ct1[..], index)
        } else {
            match &self.ct2_bytes {
                Some(ct2) => erasure::encode(&ct2[..], index),
                None => [0u8; SYMBOL],
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `indexes` of a `k`-symbol payload to `loss` as they would arrive.
    fn hear(loss: &mut Loss, k: u8, indexes: impl IntoIterator<Item = u8>) {
        let mut collector = Collector::new(k);
        for i in indexes {
            loss.note(&collector, i);
            collector.add(i, &[i; SYMBOL]);
        }
    }

    /// A responder at epoch 3 that encapsulated to the initiator's key of epoch 3 (seed
    /// `[3; 64]`), its collector holding a whole vector of `vector`, as a load leaves it.
    fn encapsulating(vector: &[u8]) -> PqRatchet {
        let mut pq = PqRatchet::new(false);
        (pq.epoch, pq.peer_knows, pq.send_chain, pq.recv_chain) = (3, 2, 2, 3);
        pq.secrets = (2..=3)
            .map(|x| (x, Secret::from_bytes([x as u8; 32])))
            .collect();
        let public = EpochKeyPair::from_seed(Secret::from_bytes([3; 64])).public();
        let mut collector = Collector::new(symbols(Kind::Vector));
        for i in 0..symbols(Kind::Vector) {
            collector.add(i, &erasure::encode(vector, i));
        }
        let enc = Encapsulation::restore(
            Secret::from_bytes([1; 32]),
            public.header,
            collector,
            Sent::default(),
            Sent::default(),
            false,
        );
        pq.encapsulation = Some(Box::new(enc));
        pq
    }

    /// `ct2` costs an encapsulation: a load leaves it to the first send, which computes it and
    /// sends its first chunk.
    #[test]
    fn ct2_waits_for_the_first_send_after_a_load() {
        let public = EpochKeyPair::from_seed(Secret::from_bytes([3; 64])).public();
        let mut pq = encapsulating(&public.vector[..]);
        assert_eq!(pq.encapsulation.as_ref().unwrap().ct2_bytes, None);
        let ext = pq.send(&mut crate::testing::SeededRng::new([5; 32]));
        let expected =
            kem768::encapsulate2(&public.header, &Secret::from_bytes([1; 32]), &public.vector)
                .unwrap();
        let enc = pq.encapsulation.as_ref().unwrap();
        assert_eq!(enc.ct2_bytes.as_ref(), Some(&expected));
        let chunk = ext.chunk.unwrap();
        assert_eq!((chunk.kind, chunk.index), (Kind::Ct2, 0));
        assert_eq!(chunk.data, erasure::encode(&expected[..], 0));
    }

    /// A whole vector that fails the check is checked once: later sends carry `ct1` parity
    /// without decoding and checking it again.
    #[test]
    fn a_vector_failing_the_check_is_checked_once() {
        let mut pq = encapsulating(&[7; EK_VECTOR_LEN]);
        let mut rng = crate::testing::SeededRng::new([5; 32]);
        let ext = pq.send(&mut rng);
        let enc = pq.encapsulation.as_mut().unwrap();
        assert!(enc.ct2_refused && enc.ct2_bytes.is_none());
        assert_eq!(ext.chunk.unwrap().kind, Kind::Ct1);
        // Were the refusal not kept, this next send would check the vector again (swapped
        // here for the key's own, which a collector never does once whole) and send `ct2`.
        let public = EpochKeyPair::from_seed(Secret::from_bytes([3; 64])).public();
        enc.vector = encapsulating(&public.vector[..])
            .encapsulation
            .unwrap()
            .vector;
        assert_eq!(pq.send(&mut rng).chunk.unwrap().kind, Kind::Ct1);
        assert_eq!(pq.encapsulation.as_ref().unwrap().ct2_bytes, None);
    }

    /// A header chunk of the epoch this side encapsulated asks for `ct1` once this side's
    /// first `ct1` chunks went out (`sends(30)`, 30 with no loss heard), not before.
    #[test]
    fn a_repeated_header_asks_for_ct1_once_the_first_ones_went_out() {
        // An encapsulation whose vector is not whole: `ct2` cannot be computed.
        let mut pq = encapsulating(&[7; EK_VECTOR_LEN]);
        pq.encapsulation.as_mut().unwrap().vector = Collector::new(symbols(Kind::Vector));
        let header = Extension {
            chain_nibble: 3,
            chunk: Some(WireChunk {
                epoch_offset: 0,
                kind: Kind::Header,
                index: 2,
                data: [0; SYMBOL],
            }),
        };
        for (sent, asks) in [(0, false), (29, false), (30, true), (31, true)] {
            let enc = pq.encapsulation.as_mut().unwrap();
            enc.ct1.count = sent;
            pq.receive(3, &header);
            assert_eq!(pq.encapsulation.as_ref().unwrap().peer_wants_ct1, asks);
        }
        // Asked, it sends `ct1` though `ct2` is not computed, after its own new key's first
        // header chunks (its receiving chain, at epoch 2, shows no wait for more of them).
        pq.recv_chain = 2;
        let rng = &mut crate::testing::SeededRng::new([1; 32]);
        let kinds: Vec<Option<Kind>> = (0..3).map(|_| pq.send(rng).chunk.map(|c| c.kind)).collect();
        assert_eq!(
            kinds,
            [Some(Kind::Header), Some(Kind::Header), Some(Kind::Ct1)]
        );
    }

    /// A chunk's epoch goes out as its offset from the sending chain's, in two bits: a chunk 4
    /// or more past it waits for a new chain (here the chain began at epoch 0 and this side
    /// since reached 3, publishing 4), which then carries it.
    #[test]
    fn a_chunk_four_epochs_past_its_chain_waits_for_a_new_chain() {
        // The responder publishes the even epochs.
        let mut pq = PqRatchet::new(false);
        (pq.epoch, pq.peer_knows, pq.send_chain, pq.recv_chain) = (3, 3, 0, 3);
        pq.secrets = (1..=3)
            .map(|x| (x, Secret::from_bytes([x as u8; 32])))
            .collect();
        let mut rng = crate::testing::SeededRng::new([6; 32]);
        let ext = pq.send(&mut rng);
        assert_eq!((ext.chain_nibble, ext.chunk), (0, None));
        assert_eq!(pq.publication.as_ref().unwrap().header.count, 0);
        // One epoch nearer: the header of 4 is 3 past a chain of epoch 1.
        pq.send_chain = 1;
        let chunk = pq.send(&mut rng).chunk.unwrap();
        assert_eq!(
            (chunk.epoch_offset, chunk.kind, chunk.index),
            (3, Kind::Header, 0)
        );
        let (c, _) = pq.begin_send_chain();
        let chunk = pq.send(&mut rng).chunk.unwrap();
        assert_eq!((c, chunk.epoch_offset, chunk.index), (3, 1, 1));
    }

    #[test]
    fn each_round_of_indexes_is_shifted_by_one_more() {
        let first: Vec<u8> = (0..64).map(chunk_index).collect();
        assert_eq!(first, (0..64).collect::<Vec<u8>>());
        assert_eq!(
            [chunk_index(64), chunk_index(126), chunk_index(127)],
            [1, 63, 0]
        );
        assert_eq!([chunk_index(128), chunk_index(192)], [2, 3]);
        // The odd counts of one round and of the next together reach every index.
        let odd: alloc::collections::BTreeSet<u8> =
            (0..128).filter(|c| c % 2 == 1).map(chunk_index).collect();
        assert_eq!(odd.len(), 64);
        assert_eq!(
            chunk_index(u32::MAX),
            ((u32::MAX % 64 + (u32::MAX / 64) % 64) % 64) as u8
        );
    }

    #[test]
    fn gaps_in_the_indexes_heard_set_how_many_chunks_go_out() {
        let mut loss = Loss::default();
        assert_eq!(loss.sends(30), 30);
        // Every other chunk lost: twice as many go out.
        hear(&mut loss, 36, (0..30).map(|i| 2 * i));
        assert_eq!((loss.heard, loss.missed), (30, 29));
        assert_eq!(loss.sends(30), 59);
        assert_eq!(loss.sends(4), 8);
        // A late chunk takes its loss back; a repeat and a chunk after completion count nothing.
        hear(&mut loss, 4, [0, 2, 1, 1, 3, 5]);
        assert_eq!((loss.heard, loss.missed), (34, 29));
        // Only misses: as many as the indexes allow.
        let mut deaf = Loss {
            heard: 0,
            missed: 9,
        };
        assert_eq!(deaf.sends(2), INDEXES as u32);
        hear(&mut deaf, 2, [3]);
        assert_eq!((deaf.heard, deaf.missed), (1, 12));
    }

    #[test]
    fn the_estimate_halves_to_follow_the_recent_loss() {
        let mut loss = Loss::default();
        hear(&mut loss, 64, (0..32).map(|i| 2 * i));
        assert_eq!(loss.sends(30), 60);
        for _ in 0..4 {
            hear(&mut loss, 64, 0..64);
        }
        // Halved on the way, the early loss fades. Kept whole, (288, 31) would still ask for 34.
        assert_eq!((loss.heard, loss.missed), (121, 3));
        assert_eq!(loss.sends(30), 31);
    }
}
