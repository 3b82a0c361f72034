//! The header extension of a message in a session with the post-quantum ratchet: which epoch
//! the message's chain mixed into its keys, and at most one chunk of the ratchet's traffic.
//!
//! ```text
//! ext = u8(0x80 + 4 · (c mod 16)) ‖ 0x00                                  no chunk (2 bytes)
//!     | u8(0xc0 + 4 · (c mod 16) + d) ‖ u8(64 · kind + index) ‖ chunk (32)  a chunk (34 bytes)
//! ```
//! The two bytes are the header's extension field, which a session without the ratchet sends
//! as `0x00 0x00`: the top bit says the ratchet runs, the next whether a chunk follows. `c` is
//! the chain's epoch, which the receiver knows to within 16 (see `PqRatchet::receive`); the
//! chunk's epoch is `c + d`, `d` below 4.

use super::erasure::{Chunk, SYMBOL};
use crate::error::DecodeError;

/// What a chunk carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The publisher's encapsulation key header `ρ ‖ H(ek)`.
    Header = 0,
    /// The publisher's encapsulation key vector `t`.
    Vector = 1,
    /// The encapsulator's first ciphertext part.
    Ct1 = 2,
    /// The encapsulator's second ciphertext part.
    Ct2 = 3,
}

impl Kind {
    fn from_bits(bits: u8) -> Self {
        match bits & 3 {
            0 => Kind::Header,
            1 => Kind::Vector,
            2 => Kind::Ct1,
            _ => Kind::Ct2,
        }
    }
}

/// One chunk as carried: its epoch's offset from the chain's, kind, index and bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WireChunk {
    /// The chunk's epoch minus the chain's, below [`OFFSETS`].
    pub(crate) epoch_offset: u8,
    pub(crate) kind: Kind,
    pub(crate) index: u8,
    pub(crate) data: Chunk,
}

/// A decoded extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Extension {
    pub(crate) chain_nibble: u8,
    pub(crate) chunk: Option<WireChunk>,
}

/// How far past its chain's epoch a chunk's epoch may be: `d` has two bits.
pub(crate) const OFFSETS: u32 = 4;
/// Length of an extension without a chunk: the field every header has.
const BARE_LEN: usize = 2;
/// Length of an extension with a chunk.
pub(crate) const CHUNK_LEN: usize = 2 + SYMBOL;
/// The first byte's top bit: the session runs the ratchet.
const RUNS: u8 = 0x80;
/// The first byte's next bit: a chunk follows.
const CARRIES: u8 = 0x40;
/// Both: the first byte of an extension with a chunk.
const RUNS_AND_CARRIES: u8 = 0xc0;
/// What a bare extension's first byte must hold as [`RUNS`] alone: the two flags and `d`.
const BARE_FIXED: u8 = 0xc3;

impl Extension {
    /// Encodes into `buf` (no allocation: a send writes it straight into its header);
    /// returns the length used.
    pub(crate) fn encode(&self, buf: &mut [u8; CHUNK_LEN]) -> usize {
        match &self.chunk {
            None => {
                // The fields are disjoint bits, added as PROTOCOL.md 25.5 writes them.
                buf[0] = RUNS + (self.chain_nibble << 2);
                buf[1] = 0;
                BARE_LEN
            }
            Some(c) => {
                buf[0] = RUNS_AND_CARRIES + (self.chain_nibble << 2) + c.epoch_offset;
                buf[1] = ((c.kind as u8) << 6) + c.index;
                buf[2..].copy_from_slice(&c.data);
                CHUNK_LEN
            }
        }
    }

    /// Whether an extension field whose first byte is `first` is the ratchet's extension
    /// (else it must be `0x00 0x00`: no extension). The message decoder's first look at it.
    pub(crate) fn runs(first: u8) -> bool {
        first & RUNS != 0
    }

    /// How many bytes follow the two of an extension whose first byte is `first` (the message
    /// decoder's second look at it).
    pub(crate) fn chunk_len(first: u8) -> usize {
        if first & CARRIES != 0 { SYMBOL } else { 0 }
    }

    /// Decodes the extension of a session with the ratchet: 2 bytes with the top bit set, the
    /// chunk bit clear, `d` and the second byte 0; or 34 with both bits set. Anything else is
    /// `InvalidValue`.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        match bytes {
            [b, 0] if b & BARE_FIXED == RUNS => Ok(Self {
                chain_nibble: (b >> 2) & 0x0f,
                chunk: None,
            }),
            [b, k, data @ ..]
                if b & RUNS_AND_CARRIES == RUNS_AND_CARRIES && data.len() == SYMBOL =>
            {
                let mut chunk = [0u8; SYMBOL];
                chunk.copy_from_slice(data);
                Ok(Self {
                    chain_nibble: (b >> 2) & 0x0f,
                    chunk: Some(WireChunk {
                        epoch_offset: b & 3,
                        kind: Kind::from_bits(k >> 6),
                        index: k & 0x3f,
                        data: chunk,
                    }),
                })
            }
            _ => Err(DecodeError::InvalidValue),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_valid_extension_round_trips() {
        let mut buf = [0u8; CHUNK_LEN];
        let mut encoded = |e: &Extension| {
            let len = e.encode(&mut buf);
            buf[..len].to_vec()
        };
        for chain in 0..16u8 {
            let bare = Extension {
                chain_nibble: chain,
                chunk: None,
            };
            let out = encoded(&bare);
            assert_eq!(out, [0x80 | chain << 2, 0]);
            assert_eq!(Extension::chunk_len(out[0]), 0);
            assert_eq!(Extension::decode(&out), Ok(bare));
            for (kind, index) in [
                (Kind::Header, 0),
                (Kind::Vector, 63),
                (Kind::Ct1, 7),
                (Kind::Ct2, 1),
            ] {
                let e = Extension {
                    chain_nibble: chain,
                    chunk: Some(WireChunk {
                        epoch_offset: chain % 4,
                        kind,
                        index,
                        data: [chain; SYMBOL],
                    }),
                };
                let out = encoded(&e);
                assert_eq!(out.len(), CHUNK_LEN);
                assert_eq!(
                    out[..2],
                    [0xc0 | chain << 2 | (chain % 4), (kind as u8) << 6 | index]
                );
                assert_eq!(Extension::chunk_len(out[0]), SYMBOL);
                assert_eq!(Extension::decode(&out), Ok(e));
            }
        }
    }

    #[test]
    fn every_other_form_is_refused() {
        let refused =
            |bytes: &[u8]| assert_eq!(Extension::decode(bytes), Err(DecodeError::InvalidValue));
        // Lengths other than 2 and 34.
        refused(&[]);
        refused(&[0x80]);
        refused(&[0x80, 0, 0]);
        refused(&[0xc0; 33]);
        refused(&[0xc0; 35]);
        // The field of a session without the ratchet, or without its top bit.
        refused(&[0, 0]);
        refused(&[0x40; 34]);
        // No chunk: `d` and the second byte are 0.
        refused(&[0x81, 0]);
        refused(&[0x80, 1]);
        // A chunk's length without the chunk bit, and the bit without the chunk.
        refused(&[0x80; 34]);
        refused(&[0xc0, 0]);
        assert!(Extension::decode(&[0xbc, 0]).is_ok());
        let mut chunk = [0u8; CHUNK_LEN];
        chunk[0] = 0xff;
        assert!(Extension::decode(&chunk).is_ok());
    }
}
