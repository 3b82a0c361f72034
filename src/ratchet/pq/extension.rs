//! The header extension of a message in a session with the post-quantum ratchet: which epoch
//! the message's chain mixed into its keys, and at most one chunk of the ratchet's traffic.
//!
//! ```text
//! ext = u8(c mod 16 ‖ 0000)                                         no chunk (1 byte)
//!     | u8(c mod 16 ‖ x mod 16) ‖ u8(kind ‖ index) ‖ chunk (32)     a chunk (34 bytes)
//! ```
//! `c` is the chain's epoch, `x` the chunk's epoch (high and low nibbles), `kind` the top two
//! bits of the second byte and `index` its low six. The receiver knows each epoch to within 16,
//! which the nibbles resolve (see `PqRatchet::receive`).

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

/// One chunk as carried: its epoch's low nibble, kind, index and bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WireChunk {
    pub(crate) epoch_nibble: u8,
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

/// Length of an extension without a chunk.
const BARE_LEN: usize = 1;
/// Length of an extension with a chunk.
pub(crate) const CHUNK_LEN: usize = 2 + SYMBOL;

impl Extension {
    /// Encodes into `buf` (no allocation: a send writes it straight into its header);
    /// returns the length used.
    pub(crate) fn encode(&self, buf: &mut [u8; CHUNK_LEN]) -> usize {
        match &self.chunk {
            None => {
                buf[0] = self.chain_nibble << 4;
                BARE_LEN
            }
            Some(c) => {
                buf[0] = self.chain_nibble << 4 | c.epoch_nibble;
                buf[1] = (c.kind as u8) << 6 | c.index;
                buf[2..].copy_from_slice(&c.data);
                CHUNK_LEN
            }
        }
    }

    /// Decodes a non-empty extension: 1 byte with a zero low nibble, or 34 bytes; anything
    /// else is `InvalidValue`.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        match bytes {
            [b] if b & 0x0f == 0 => Ok(Self {
                chain_nibble: b >> 4,
                chunk: None,
            }),
            [b, k, data @ ..] if data.len() == SYMBOL => {
                let mut chunk = [0u8; SYMBOL];
                chunk.copy_from_slice(data);
                Ok(Self {
                    chain_nibble: b >> 4,
                    chunk: Some(WireChunk {
                        epoch_nibble: b & 0x0f,
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
            assert_eq!(out.len(), BARE_LEN);
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
                        epoch_nibble: 15 - chain,
                        kind,
                        index,
                        data: [chain; SYMBOL],
                    }),
                };
                let out = encoded(&e);
                assert_eq!(out.len(), CHUNK_LEN);
                assert_eq!(Extension::decode(&out), Ok(e));
            }
        }
    }

    #[test]
    fn other_lengths_and_a_bare_byte_with_a_low_nibble_are_refused() {
        assert_eq!(Extension::decode(&[]), Err(DecodeError::InvalidValue));
        assert_eq!(Extension::decode(&[0x31]), Err(DecodeError::InvalidValue));
        assert_eq!(Extension::decode(&[0; 2]), Err(DecodeError::InvalidValue));
        assert_eq!(Extension::decode(&[0; 33]), Err(DecodeError::InvalidValue));
        assert_eq!(Extension::decode(&[0; 35]), Err(DecodeError::InvalidValue));
        assert!(Extension::decode(&[0x30]).is_ok());
    }
}
