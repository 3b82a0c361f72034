//! The post-quantum ratchet's persisted form, inside a session's state (PROTOCOL.md 10.3):
//!
//! ```text
//! pq_state = u32(epoch) ‖ u32(peer_knows) ‖ u32(send_chain) ‖ u32(recv_chain)
//!          ‖ u8(n) ‖ n × ( u32(x) ‖ S_x (32) )
//!          ‖ opt( seed (64) ‖ sent ‖ sent ‖ collector ‖ collector )     publication
//!          ‖ opt( m (32) ‖ header (64) ‖ collector ‖ u32 ‖ u32 ‖ flag )  encapsulation
//!          ‖ collector ‖ collector                                      incoming header, vector
//!          ‖ u16(heard) ‖ u16(missed)                                   loss estimate
//! sent      = u32(count) ‖ flag(acknowledged)
//! collector = u8(c) ‖ c × ( u8(index) ‖ chunk (32) )
//! ```
//!
//! Decoding refuses what the state machine never holds: the secrets are exactly epochs
//! `oldest_kept()..=epoch`; `peer_knows ≤ epoch`, `send_chain ≤ peer_knows`,
//! `recv_chain ≤ epoch`; a publication exactly when this side publishes `epoch + 1` (or before
//! its first send); collectors with strictly ascending indexes below 64, at most `k` of them;
//! a loss estimate whose counts add up to 128 or more (they are halved there).
//! Public keys and ciphertexts are recomputed from the seed and `m`, not stored.

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::erasure::{Chunk, Collector, SYMBOL};
use super::extension::Kind;
use super::ratchet::{
    Encapsulation, Incoming, LOSS_WINDOW, Loss, PqRatchet, Publication, Sent, symbols,
};
use crate::error::DecodeError;
use crate::primitives::Secret;
use crate::primitives::kem768::{EK_HEADER_LEN, EpochKeyPair};
use crate::wire::{Reader, Writer};

/// The highest epoch a stored state may be at: far beyond any session's life (an epoch takes
/// dozens of messages), and low enough that `epoch + 2` and a window of 16 never overflow.
const MAX_EPOCH: u32 = u32::MAX - 64;

impl PqRatchet {
    pub(crate) fn write(&self, out: &mut impl Writer) {
        out.u32(self.epoch);
        out.u32(self.peer_knows);
        out.u32(self.send_chain);
        out.u32(self.recv_chain);
        out.u8(self.secrets.len() as u8);
        for (x, secret) in &self.secrets {
            out.u32(*x);
            out.put(secret.as_bytes());
        }
        out.optional(self.publication.as_ref(), |out, p| {
            out.put(p.pair.seed().as_bytes());
            write_sent(out, &p.header);
            write_sent(out, &p.vector);
            write_collector(out, &p.ct1);
            write_collector(out, &p.ct2);
        });
        out.optional(self.encapsulation.as_ref(), |out, e| {
            out.put(e.m.as_bytes());
            out.put(&e.header);
            write_collector(out, &e.vector);
            out.u32(e.ct1.count);
            out.u32(e.ct2.count);
            out.flag(e.peer_wants_ct1);
        });
        let empty = Incoming::new();
        let incoming = self.incoming.as_deref().unwrap_or(&empty);
        write_collector(out, &incoming.header);
        write_collector(out, &incoming.vector);
        out.put(&self.loss.heard.to_be_bytes());
        out.put(&self.loss.missed.to_be_bytes());
    }

    /// Reads the state (not inlined: inside the session's decoder its fields were moved
    /// through more stack copies, 2% more instructions to decode a session).
    #[inline(never)]
    pub(crate) fn read(r: &mut Reader<'_>, initiator: bool) -> Result<Self, DecodeError> {
        let mut pq = Self::new(initiator);
        pq.epoch = r.u32()?;
        pq.peer_knows = r.u32()?;
        pq.send_chain = r.u32()?;
        pq.recv_chain = r.u32()?;
        if pq.epoch > MAX_EPOCH
            || pq.peer_knows > pq.epoch
            || pq.send_chain > pq.peer_knows
            || pq.recv_chain > pq.epoch
        {
            return Err(DecodeError::InvalidValue);
        }
        let n = r.u8()?;
        let expected = if pq.epoch == 0 {
            0..0
        } else {
            pq.oldest_kept()..pq.epoch + 1
        };
        if usize::from(n) != expected.len() {
            return Err(DecodeError::InvalidValue);
        }
        for x in expected {
            if r.u32()? != x {
                return Err(DecodeError::InvalidValue);
            }
            pq.secrets.push((x, Secret::from_bytes(r.array()?)));
        }
        pq.publication = r.optional(|r| {
            // Every field read first, then the publication built once.
            let seed = Secret::from_bytes(r.array()?);
            let header = read_sent(r)?;
            let vector = read_sent(r)?;
            let ct1 = read_collector(r, Kind::Ct1)?;
            let ct2 = read_collector(r, Kind::Ct2)?;
            Ok(Publication::restore(
                EpochKeyPair::from_seed(seed),
                header,
                vector,
                ct1,
                ct2,
            ))
        })?;
        // A side publishes `epoch + 1` from its first send on; never the peer's epochs.
        if pq.publication.is_some() && !pq.publishes(pq.epoch + 1) {
            return Err(DecodeError::InvalidValue);
        }
        pq.encapsulation = r.optional(|r| {
            let m = Secret::from_bytes(r.array()?);
            let header: [u8; EK_HEADER_LEN] = r.array()?;
            let vector = read_collector(r, Kind::Vector)?;
            let ct1 = Sent {
                count: r.u32()?,
                acked: false,
            };
            let ct2 = Sent {
                count: r.u32()?,
                acked: false,
            };
            let peer_wants_ct1 = r.flag()?;
            Ok(Box::new(Encapsulation::restore(
                m,
                header,
                vector,
                ct1,
                ct2,
                peer_wants_ct1,
            )))
        })?;
        // This side encapsulated its epoch exactly when the peer published it.
        if pq.encapsulation.is_some() && (pq.epoch == 0 || pq.publishes(pq.epoch)) {
            return Err(DecodeError::InvalidValue);
        }
        let incoming = Incoming {
            header: read_collector(r, Kind::Header)?,
            vector: read_collector(r, Kind::Vector)?,
        };
        // Held only once a chunk arrived, as while running.
        if !incoming.header.chunks().is_empty() || !incoming.vector.chunks().is_empty() {
            pq.incoming = Some(Box::new(incoming));
        }
        pq.loss = Loss {
            heard: u16::from_be_bytes(r.array()?),
            missed: u16::from_be_bytes(r.array()?),
        };
        // Both are halved whenever their sum reaches the window.
        if u32::from(pq.loss.heard) + u32::from(pq.loss.missed) >= u32::from(LOSS_WINDOW) {
            return Err(DecodeError::InvalidValue);
        }
        Ok(pq)
    }
}

fn write_sent(out: &mut impl Writer, sent: &Sent) {
    out.u32(sent.count);
    out.flag(sent.acked);
}

fn read_sent(r: &mut Reader<'_>) -> Result<Sent, DecodeError> {
    Ok(Sent {
        count: r.u32()?,
        acked: r.flag()?,
    })
}

fn write_collector(out: &mut impl Writer, c: &Collector) {
    out.u8(c.chunks().len() as u8);
    for (index, chunk) in c.chunks() {
        out.u8(*index);
        out.put(chunk);
    }
}

/// Inlined, so that an empty collector (most of them) costs its count byte; the chunks are
/// read apart.
#[inline]
fn read_collector(r: &mut Reader<'_>, kind: Kind) -> Result<Collector, DecodeError> {
    let k = symbols(kind);
    match r.u8()? {
        0 => Ok(Collector::new(k)),
        n => read_chunks(r, k, n),
    }
}

#[inline(never)]
fn read_chunks(r: &mut Reader<'_>, k: u8, n: u8) -> Result<Collector, DecodeError> {
    if n > k {
        return Err(DecodeError::InvalidValue);
    }
    let mut chunks = Vec::with_capacity(usize::from(n));
    for _ in 0..n {
        let index = r.u8()?;
        let chunk: Chunk = r.array::<SYMBOL>()?;
        chunks.push((index, chunk));
    }
    Collector::from_chunks(k, chunks).ok_or(DecodeError::InvalidValue)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::SecretBuf;

    fn encode(pq: &PqRatchet) -> alloc::vec::Vec<u8> {
        let mut out = SecretBuf::with_capacity(0);
        pq.write(&mut out);
        out.into_inner().to_vec()
    }

    fn decode(bytes: &[u8], initiator: bool) -> Result<PqRatchet, DecodeError> {
        let mut r = Reader::new(bytes);
        let pq = PqRatchet::read(&mut r, initiator)?;
        r.finish()?;
        Ok(pq)
    }

    /// A responder at epoch 3 whose chains mix epochs 2 and 3, with the secrets it keeps.
    fn at_epoch_3() -> PqRatchet {
        let mut pq = PqRatchet::new(false);
        pq.epoch = 3;
        pq.peer_knows = 2;
        pq.send_chain = 2;
        pq.recv_chain = 3;
        for x in 2..=3 {
            pq.secrets.push((x, Secret::from_bytes([x as u8; 32])));
        }
        pq
    }

    /// The peer's next publication is held only once a chunk of it arrived, and whichever of
    /// its two collectors holds chunks, they load back.
    #[test]
    fn incoming_chunks_load_back_whichever_collector_holds_them() {
        assert_eq!(
            decode(&encode(&at_epoch_3()), false).unwrap().incoming,
            None
        );
        for (header, vector) in [(true, false), (false, true), (true, true)] {
            let mut incoming = Incoming::new();
            if header {
                incoming.header.add(1, &[1; SYMBOL]);
            }
            if vector {
                incoming.vector.add(5, &[5; SYMBOL]);
            }
            let mut pq = at_epoch_3();
            pq.incoming = Some(Box::new(incoming));
            assert_eq!(decode(&encode(&pq), false).unwrap(), pq);
        }
    }

    #[test]
    fn a_consistent_state_round_trips() {
        let pq = at_epoch_3();
        let bytes = encode(&pq);
        assert_eq!(encode(&decode(&bytes, false).unwrap()), bytes);
        // The variants below break one rule each; without it they load.
        let mut other = at_epoch_3();
        other.recv_chain = 2;
        assert!(decode(&encode(&other), false).is_ok());
        let mut last = at_epoch_3();
        last.epoch = MAX_EPOCH;
        last.secrets = (MAX_EPOCH - 15..=MAX_EPOCH)
            .map(|x| (x, Secret::from_bytes([7; 32])))
            .collect();
        assert!(decode(&encode(&last), false).is_ok());
    }

    #[test]
    fn each_broken_invariant_is_refused() {
        let refused = |change: &dyn Fn(&mut PqRatchet)| {
            let mut pq = at_epoch_3();
            change(&mut pq);
            assert_eq!(
                decode(&encode(&pq), false).err(),
                Some(DecodeError::InvalidValue)
            );
        };
        // The peer cannot be known to know more than this side does (the receiving chain at 2
        // keeps the secrets' range as it was, so only this rule is broken).
        refused(&|pq| {
            pq.recv_chain = 2;
            pq.peer_knows = 4;
        });
        // A sending chain mixes what the peer was known to know.
        refused(&|pq| pq.send_chain = 3);
        // A receiving chain mixes an epoch this side knows.
        refused(&|pq| {
            pq.recv_chain = 4;
        });
        // The kept secrets are exactly oldest..=epoch.
        refused(&|pq| {
            pq.secrets.remove(0);
        });
        refused(&|pq| pq.secrets.insert(0, (1, Secret::from_bytes([1; 32]))));
        // A publication of an epoch the peer publishes (the responder publishes even ones; at
        // epoch 4 the next is odd).
        refused(&|pq| {
            pq.epoch = 4;
            pq.recv_chain = 3;
            pq.secrets.push((4, Secret::from_bytes([4; 32])));
            pq.publication = Some(Publication::new(EpochKeyPair::from_seed(
                Secret::from_bytes([9; 64]),
            )));
        });
        // An encapsulation of an epoch this side publishes (4, even, is the responder's).
        refused(&|pq| {
            pq.encapsulation = Some(Box::new(Encapsulation::restore(
                Secret::from_bytes([1; 32]),
                [2; EK_HEADER_LEN],
                Collector::new(symbols(Kind::Vector)),
                Sent::default(),
                Sent::default(),
                false,
            )));
            pq.epoch = 4;
            pq.secrets.push((4, Secret::from_bytes([4; 32])));
        });
        // An epoch no session reaches, whose successors would overflow.
        refused(&|pq| {
            pq.epoch = MAX_EPOCH + 1;
            pq.secrets = (pq.epoch - 15..=pq.epoch)
                .map(|x| (x, Secret::from_bytes([7; 32])))
                .collect();
        });
        // A loss estimate at or past its halving point.
        refused(&|pq| {
            pq.loss = Loss {
                heard: 100,
                missed: 28,
            }
        });
    }

    #[test]
    fn an_encapsulation_before_the_first_epoch_is_refused() {
        // The initiator does not publish epoch 0 (so only the epoch rule refuses this).
        let mut pq = PqRatchet::new(true);
        assert!(!pq.publishes(0));
        pq.encapsulation = Some(Box::new(Encapsulation::restore(
            Secret::from_bytes([1; 32]),
            [2; EK_HEADER_LEN],
            Collector::new(symbols(Kind::Vector)),
            Sent::default(),
            Sent::default(),
            false,
        )));
        assert_eq!(
            decode(&encode(&pq), true).err(),
            Some(DecodeError::InvalidValue)
        );
    }

    #[test]
    fn the_loss_estimate_just_below_its_halving_point_loads() {
        let mut pq = at_epoch_3();
        pq.loss = Loss {
            heard: 100,
            missed: 27,
        };
        assert!(decode(&encode(&pq), false).is_ok());
    }
}
