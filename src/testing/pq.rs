//! Two post-quantum ratchets joined by a simulated network, without the Double Ratchet around
//! them: for the ratchet's model check (tests) and its bench (messages per epoch, bytes per
//! message, time per message).
//!
//! The link keeps what the Double Ratchet would decide: a side starts a new sending chain at
//! its first send after it has received a newer chain of the peer; a message of an older chain
//! than the receiver's current one is read with a skipped key, so its chunk is not looked at.
//! Every new receiving chain's epoch and secret are checked against what the sender mixed.

use alloc::vec::Vec;

use crate::ratchet::pq::{Extension, PqRatchet};
use crate::testing::SeededRng;

/// One message in flight.
#[derive(Clone, Debug)]
pub struct PqMessage {
    from_initiator: bool,
    chain: u32,
    chain_epoch: u32,
    chain_secret: Option<[u8; 32]>,
    ext: Vec<u8>,
}

impl PqMessage {
    /// Bytes the extension adds to the message: past its two bytes, which a message of a
    /// session without the ratchet carries too (as `0x00 0x00`).
    pub fn added_len(&self) -> usize {
        self.ext.len() - 2
    }

    /// The extension's bytes (for tests that look at which chunk a message carries).
    pub fn ext_bytes(&self) -> &[u8] {
        &self.ext
    }
}

#[derive(Clone)]
struct Side {
    pq: PqRatchet,
    send_chain: u32,
    new_chain_due: bool,
    recv_chain: u32,
    /// The current sending chain's epoch and secret, as it began.
    chain_secret: (u32, Option<[u8; 32]>),
}

/// Two ratchets and the chain bookkeeping around them.
#[derive(Clone)]
pub struct PqLink {
    sides: [Side; 2],
    rng: SeededRng,
}

/// What a delivery found wrong (a broken invariant).
#[derive(Debug, PartialEq, Eq)]
pub enum PqLinkError {
    /// The receiver could not resolve a new chain's epoch.
    Unresolved,
    /// The receiver resolved another epoch or secret than the sender mixed.
    Disagree,
    /// The extension did not decode.
    Malformed,
}

impl PqLink {
    /// A fresh pair at epoch 0, randomness from `seed`.
    pub fn new(seed: [u8; 32]) -> Self {
        let side = |initiator| Side {
            pq: PqRatchet::new(initiator),
            send_chain: 0,
            new_chain_due: initiator,
            recv_chain: 0,
            chain_secret: (0, None),
        };
        Self {
            sides: [side(true), side(false)],
            rng: SeededRng::new(seed),
        }
    }

    /// The responder's ratchet.
    pub(crate) fn responder(&self) -> &PqRatchet {
        &self.sides[1].pq
    }

    /// The epoch each side knows (initiator, responder).
    pub fn epochs(&self) -> (u32, u32) {
        (self.sides[0].pq.epoch, self.sides[1].pq.epoch)
    }

    /// Whether both sides hold the same secret for every epoch both still hold.
    pub fn secrets_agree(&self) -> bool {
        let (a, b) = (&self.sides[0].pq.secrets, &self.sides[1].pq.secrets);
        a.iter()
            .all(|(x, s)| b.iter().all(|(y, t)| x != y || s == t))
    }

    /// The newest secret both sides know, if any: `(epoch, secret)`.
    pub fn common_secret(&self) -> Option<(u32, [u8; 32])> {
        let (a, b) = (&self.sides[0].pq.secrets, &self.sides[1].pq.secrets);
        a.iter()
            .rev()
            .find(|(x, _)| b.iter().any(|(y, _)| x == y))
            .map(|(x, s)| (*x, *s.as_bytes()))
    }

    /// The initiator (`true`) or responder sends one message.
    pub fn send(&mut self, from_initiator: bool) -> PqMessage {
        let side = &mut self.sides[usize::from(!from_initiator)];
        if side.new_chain_due {
            side.new_chain_due = false;
            side.send_chain += 1;
            // What the chain mixes is fixed when it begins; the secret may be dropped later.
            let (c, secret) = side.pq.begin_send_chain();
            side.chain_secret = (c, secret.map(|s| *s.as_bytes()));
        }
        let (chain_epoch, chain_secret) = side.chain_secret;
        let mut buf = [0u8; crate::ratchet::pq::CHUNK_LEN];
        let len = side.pq.send(&mut self.rng).encode(&mut buf);
        let ext = buf[..len].to_vec();
        PqMessage {
            from_initiator,
            chain: side.send_chain,
            chain_epoch,
            chain_secret,
            ext,
        }
    }

    /// Delivers `message` to the other side.
    pub fn deliver(&mut self, message: &PqMessage) -> Result<(), PqLinkError> {
        let side = &mut self.sides[usize::from(message.from_initiator)];
        let ext = Extension::decode(&message.ext).map_err(|_| PqLinkError::Malformed)?;
        if message.chain > side.recv_chain {
            let (c, s) = side
                .pq
                .resolve_recv_chain(ext.chain_nibble)
                .ok_or(PqLinkError::Unresolved)?;
            if c != message.chain_epoch || s.map(|s| *s.as_bytes()) != message.chain_secret {
                return Err(PqLinkError::Disagree);
            }
            side.pq.enter_recv_chain(c);
            side.recv_chain = message.chain;
            side.new_chain_due = true;
        } else if message.chain < side.recv_chain {
            return Ok(());
        }
        let c = side.pq.recv_chain;
        side.pq.receive(c, &ext);
        Ok(())
    }
}

impl PqLink {
    /// A one-line summary of both sides (for debugging a failed run).
    pub fn summary(&self) -> alloc::string::String {
        use core::fmt::Write;
        let mut out = alloc::string::String::new();
        for s in &self.sides {
            let p = &s.pq;
            let _ = write!(
                out,
                "[e{} pk{} sc{} rc{} loss{:?} pub:{:?} enc:{:?} inc h{} v{}] ",
                p.epoch,
                p.peer_knows,
                p.send_chain,
                p.recv_chain,
                (p.loss.heard, p.loss.missed),
                p.publication.as_ref().map(|x| (
                    x.header.count,
                    x.header.acked,
                    x.vector.count,
                    x.vector.acked,
                    x.ct1.chunks().len(),
                    x.ct2.chunks().len()
                )),
                p.encapsulation.as_ref().map(|x| (
                    x.ct1.count,
                    x.ct2.count,
                    x.vector.chunks().len()
                )),
                p.incoming.as_ref().map_or(0, |i| i.header.chunks().len()),
                p.incoming.as_ref().map_or(0, |i| i.vector.chunks().len()),
            );
        }
        out
    }
}
