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
//! decapsulate. Everything here runs on a copy: the session commits it with the message.

use alloc::boxed::Box;
use alloc::vec::Vec;
use rand_core::CryptoRng;

use super::erasure::{self, Chunk, Collector, INDEXES, SYMBOL};
use super::extension::{Extension, Kind, WireChunk};
use crate::error::DecodeError;
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
    public: Option<EpochPublicKey>,
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
    /// `ct2`, once the vector is complete and checked (not stored).
    ct2_bytes: Option<Box<[u8; CT2_LEN]>>,
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
    pub(crate) publication: Option<Publication>,
    pub(crate) encapsulation: Option<Encapsulation>,
    /// The peer's next publication (epoch `incoming_epoch()`): header and vector.
    pub(crate) incoming_header: Collector,
    pub(crate) incoming_vector: Collector,
}

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
            incoming_header: Collector::new(symbols(Kind::Header)),
            incoming_vector: Collector::new(symbols(Kind::Vector)),
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
    /// secret this side knows. Anything else is `InvalidValue`. Changes nothing: the session
    /// calls [`Self::enter_recv_chain`] when the message authenticates.
    pub(crate) fn resolve_recv_chain(&self, nibble: u8) -> Result<ChainSecret, DecodeError> {
        let c = resolve(self.recv_chain, nibble);
        if c > self.epoch {
            return Err(DecodeError::InvalidValue);
        }
        if c == 0 {
            return Ok((0, None));
        }
        match self.secret(c) {
            Some(s) => Ok((c, Some(s))),
            None => Err(DecodeError::InvalidValue),
        }
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
        let salt = self.secrets.last().map(|(_, s)| s.clone());
        let next: Secret<32> = derive(
            salt.as_ref().map(|s| &s.as_bytes()[..]),
            ss.as_bytes(),
            &info,
        );
        self.secrets.push((x, next));
        self.epoch = x;
        self.prune();
    }

    /// The extension of the next message of the current sending chain, drawing randomness for
    /// a new encapsulation or key pair when one is due.
    pub(crate) fn send(&mut self, rng: &mut impl CryptoRng) -> Extension {
        self.encapsulate_if_due(rng);
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
        if self.publishes(self.epoch + 1) || !self.incoming_header.is_complete() {
            return;
        }
        let Some(bytes) = self.incoming_header.decode() else {
            return;
        };
        let mut header = [0u8; EK_HEADER_LEN];
        header.copy_from_slice(&bytes);
        let mut m = Secret::from_bytes([0u8; 32]);
        rng.fill_bytes(m.as_mut_bytes());
        let (ct1, ss) = kem768::encapsulate1(&header, &m);
        let vector = core::mem::replace(
            &mut self.incoming_vector,
            Collector::new(symbols(Kind::Vector)),
        );
        self.incoming_header = Collector::new(symbols(Kind::Header));
        let mut enc = Encapsulation {
            m,
            header,
            vector,
            ct1: Sent::default(),
            ct2: Sent::default(),
            ct1_bytes: Some(ct1),
            ct2_bytes: None,
        };
        enc.finish_if_complete();
        self.encapsulation = Some(enc);
        self.advance(&ss);
    }

    /// The next chunk. The encapsulation comes first: `ct1`, and `ct2` as soon as it can be
    /// computed; once both and the next key's header have been sent whole, their parity (whichever has had less) until
    /// the peer shows it has decapsulated, since the epoch waits on them. Then the own key:
    /// the header, then the vector, with a parity chunk of an unacknowledged header every
    /// other vector chunk (the peer cannot encapsulate without it); then parity of whatever
    /// is unacknowledged. No chunk when nothing is, or the epoch is out of the chain's window.
    fn next_chunk(&mut self) -> Option<WireChunk> {
        let pick = self.pick()?;
        let (kind, count) = pick;
        let epoch = match kind {
            Kind::Ct1 | Kind::Ct2 => self.epoch,
            Kind::Header | Kind::Vector => self.epoch + 1,
        };
        let pick = (kind, epoch, Some(count));
        let (kind, epoch, Some(count)) = pick else {
            return None;
        };
        if epoch < self.send_chain || epoch - self.send_chain >= WINDOW {
            return None;
        }
        let index = (count % INDEXES as u32) as u8;
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
            epoch_nibble: (epoch % WINDOW) as u8,
            kind,
            index,
            data,
        })
    }

    /// Which payload the next chunk is of, and how many of its chunks went before.
    fn pick(&self) -> Option<(Kind, u32)> {
        let first = |kind: Kind, sent: &Sent| sent.count < u32::from(symbols(kind));
        let parity = |kind: Kind, sent: &Sent| sent.count - u32::from(symbols(kind));
        if let Some(enc) = &self.encapsulation {
            let ct2_ready = enc.ct2_bytes.is_some();
            if ct2_ready && first(Kind::Ct2, &enc.ct2) {
                return Some((Kind::Ct2, enc.ct2.count));
            }
            if first(Kind::Ct1, &enc.ct1) {
                return Some((Kind::Ct1, enc.ct1.count));
            }
            // The peer needs the next key's header to show it has decapsulated.
            if let Some(p) = &self.publication
                && first(Kind::Header, &p.header)
            {
                return Some((Kind::Header, p.header.count));
            }
            if ct2_ready {
                // Parity of the ciphertext and of an unacknowledged header, in turn.
                let header = self
                    .publication
                    .as_ref()
                    .filter(|p| !p.header.acked)
                    .map(|p| (Kind::Header, &p.header));
                return [(Kind::Ct1, &enc.ct1), (Kind::Ct2, &enc.ct2)]
                    .into_iter()
                    .chain(header)
                    .min_by_key(|(kind, sent)| parity(*kind, sent))
                    .map(|(kind, sent)| (kind, sent.count));
            }
        }
        let p = self.publication.as_ref();
        if let Some(p) = p.filter(|p| !p.header.acked)
            && (first(Kind::Header, &p.header)
                || p.vector.acked
                || parity(Kind::Header, &p.header) < p.vector.count / 2)
        {
            return Some((Kind::Header, p.header.count));
        }
        if let Some(p) = p.filter(|p| !p.vector.acked) {
            return Some((Kind::Vector, p.vector.count));
        }
        // Nothing of the own key is unacknowledged: parity of the encapsulation, if any.
        let enc = self.encapsulation.as_ref()?;
        Some((Kind::Ct1, enc.ct1.count))
    }

    /// Takes in the extension of an authenticated message of the receiving chain that mixes
    /// `c`. A chunk of an epoch or kind this side does not expect is ignored.
    pub(crate) fn receive(&mut self, c: u32, ext: &Extension) {
        let Some(chunk) = &ext.chunk else {
            return;
        };
        let x = resolve(c, chunk.epoch_nibble);
        match chunk.kind {
            Kind::Header | Kind::Vector => {
                // The peer publishes `x`, so it knows `S_{x−1}`.
                self.learn_peer_knows(x.saturating_sub(1));
                if let Some(enc) = &mut self.encapsulation
                    && x == self.epoch
                    && chunk.kind == Kind::Vector
                {
                    enc.vector.add(chunk.index, &chunk.data);
                    enc.finish_if_complete();
                    return;
                }
                if x != self.incoming_epoch() {
                    return;
                }
                let collector = if chunk.kind == Kind::Header {
                    &mut self.incoming_header
                } else {
                    &mut self.incoming_vector
                };
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
                    p.ct1.add(chunk.index, &chunk.data);
                } else {
                    p.vector.acked = true;
                    p.ct2.add(chunk.index, &chunk.data);
                }
                self.decapsulate_if_complete();
            }
        }
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

/// The one value `v ≡ nibble (mod 16)` with `base ≤ v < base + 16`.
fn resolve(base: u32, nibble: u8) -> u32 {
    let delta = (u32::from(nibble) + WINDOW - base % WINDOW) % WINDOW;
    base.saturating_add(delta)
}

impl Publication {
    pub(crate) fn new(pair: EpochKeyPair) -> Self {
        Self {
            pair,
            header: Sent::default(),
            vector: Sent::default(),
            ct1: Collector::new(symbols(Kind::Ct1)),
            ct2: Collector::new(symbols(Kind::Ct2)),
            public: None,
        }
    }

    fn chunk(&mut self, kind: Kind, index: u8) -> Chunk {
        let public = self.public.get_or_insert_with(|| self.pair.public());
        match kind {
            Kind::Header => erasure::encode(&public.header, index),
            _ => erasure::encode(&public.vector[..], index),
        }
    }
}

impl Encapsulation {
    /// An encapsulation as stored: `ct1` is recomputed when first sent, `ct2` now if the
    /// vector is complete.
    pub(crate) fn restore(
        m: Secret<32>,
        header: [u8; EK_HEADER_LEN],
        vector: Collector,
        ct1: Sent,
        ct2: Sent,
    ) -> Self {
        let mut enc = Self {
            m,
            header,
            vector,
            ct1,
            ct2,
            ct1_bytes: None,
            ct2_bytes: None,
        };
        enc.finish_if_complete();
        enc
    }

    /// Computes `ct2` once the vector is complete (a vector that does not match the header
    /// leaves it absent: that peer's epoch never completes).
    fn finish_if_complete(&mut self) {
        if self.ct2_bytes.is_some() {
            return;
        }
        let Some(bytes) = self.vector.decode() else {
            return;
        };
        let mut vector = [0u8; EK_VECTOR_LEN];
        vector.copy_from_slice(&bytes);
        self.ct2_bytes = kem768::encapsulate2(&self.header, &self.m, &vector).ok();
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
