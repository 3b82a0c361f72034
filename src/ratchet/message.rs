//! Wire forms of pairwise messages (PROTOCOL.md, "Ratchet message" and "Pre-key message").
//!
//! Incoming bytes are parsed once into borrowed views; the ciphertext is not copied.

use alloc::vec::Vec;

use super::keys::SALT_LEN;
use super::pq::Extension;
use crate::error::DecodeError;
use crate::primitives::KEM_CIPHERTEXT_LEN;
use crate::primitives::{DhPublicKey, IdentityKey, TAG_LEN};
use crate::wire::{Reader, Writer, kind};
use crate::x3dh::{KemPreKeyId, OneTimePreKeyId, SignedPreKeyId, X3dhHeader};

/// Where a ratchet message's header puts its extension field: after version, type, ratchet
/// key, PN, N and salt.
const EXTENSION_AT: usize = 2 + 32 + 4 + 4 + SALT_LEN;
/// Length of the header of a session without the post-quantum ratchet, whose extension field
/// is `0x00 0x00`.
pub(crate) const HEADER_LEN: usize = EXTENSION_AT + 2;
/// The longest extension: a post-quantum ratchet chunk (PROTOCOL.md 25.5).
pub(crate) const MAX_EXTENSION_LEN: usize = crate::ratchet::pq::CHUNK_LEN;
/// The longest header.
pub(crate) const MAX_HEADER_LEN: usize = EXTENSION_AT + MAX_EXTENSION_LEN;

/// The Double Ratchet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) ratchet_key: DhPublicKey,
    /// PN: messages in the sender's previous sending chain.
    pub(crate) previous_chain_length: u32,
    /// N: this message's number in its sending chain.
    pub(crate) message_number: u32,
    /// Per-message randomness folded into the message key derivation.
    pub(crate) salt: [u8; SALT_LEN],
}

impl Header {
    /// Appends the header bytes with `extension`.
    #[cfg(test)]
    pub(crate) fn write(&self, extension: &[u8], out: &mut Vec<u8>) {
        let mut buf = [0u8; MAX_HEADER_LEN];
        let len = self.encode(extension, &mut buf);
        out.extend_from_slice(&buf[..len]);
    }

    /// Encodes the header with `extension` (the post-quantum ratchet's, PROTOCOL.md 8.4 and
    /// 25.5, at most [`MAX_EXTENSION_LEN`] bytes; empty for the field `0x00 0x00` of a session
    /// without it) into `buf`; returns the length used.
    pub(crate) fn encode(&self, extension: &[u8], buf: &mut [u8; MAX_HEADER_LEN]) -> usize {
        let extension = match extension {
            [] => &[0, 0][..],
            e => &e[..e.len().min(MAX_EXTENSION_LEN)],
        };
        buf[0] = crate::wire::VERSION;
        buf[1] = kind::RATCHET_MESSAGE;
        buf[2..34].copy_from_slice(self.ratchet_key.as_bytes());
        buf[34..38].copy_from_slice(&self.previous_chain_length.to_be_bytes());
        buf[38..42].copy_from_slice(&self.message_number.to_be_bytes());
        buf[42..EXTENSION_AT].copy_from_slice(&self.salt);
        buf[EXTENSION_AT..EXTENSION_AT + extension.len()].copy_from_slice(extension);
        EXTENSION_AT + extension.len()
    }
}

/// A parsed ratchet message: a header and a ciphertext (with its tag).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RatchetMessage<'a> {
    pub(crate) header: Header,
    /// The header's extension field (empty unless the session runs the post-quantum ratchet).
    pub(crate) extension: &'a [u8],
    /// The whole header, extension included (authenticated as associated data).
    pub(crate) header_bytes: &'a [u8],
    pub(crate) ciphertext: &'a [u8],
}

/// A parsed pre-key message: the PQXDH values an initiator sends until it hears back (its
/// identity and base keys, the prekey ids, the ML-KEM ciphertext), and the ratchet message they
/// carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreKeyMessage<'a> {
    pub(crate) x3dh: X3dhHeader<'a>,
    pub(crate) message: RatchetMessage<'a>,
}

/// Any incoming pairwise message, parsed and checked for form (not yet authenticated).
// Parsed on the stack and dropped after one call: boxing the larger variant would cost an
// allocation per message for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncomingMessage<'a> {
    /// Starts (or continues, until answered) a session: give it to
    /// [`Session::accept`](crate::Session::accept), or to the session it belongs to.
    PreKey(PreKeyMessage<'a>),
    /// A message of an established session.
    Ratchet(RatchetMessage<'a>),
}

impl<'a> IncomingMessage<'a> {
    /// The random salt of the message's ratchet header, which names it to its sender.
    pub(crate) fn salt(&self) -> [u8; SALT_LEN] {
        match self {
            Self::PreKey(p) => p.message.header.salt,
            Self::Ratchet(m) => m.header.salt,
        }
    }

    /// Parses wire bytes. The version byte is checked first, then the type byte.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != crate::wire::VERSION {
            return Err(DecodeError::UnknownVersion(version));
        }
        match r.u8()? {
            kind::RATCHET_MESSAGE => RatchetMessage::decode(bytes).map(Self::Ratchet),
            kind::PREKEY_MESSAGE => PreKeyMessage::decode(bytes).map(Self::PreKey),
            other => Err(DecodeError::UnknownType(other)),
        }
    }
}

impl<'a> RatchetMessage<'a> {
    fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, kind::RATCHET_MESSAGE)?;
        let header = Header {
            ratchet_key: DhPublicKey::from_bytes(r.array()?)?,
            previous_chain_length: r.u32()?,
            message_number: r.u32()?,
            salt: r.array()?,
        };
        // The field's top bit says whether the post-quantum ratchet runs; without it the field
        // is `0x00 0x00` and the extension empty. The rest of its form is the session's to check
        // (it knows whether the ratchet is due).
        let [first, second] = r.array()?;
        let extension_len = if Extension::runs(first) {
            let chunk_len = Extension::chunk_len(first);
            r.bytes(chunk_len)?;
            2 + chunk_len
        } else if (first, second) == (0, 0) {
            0
        } else {
            return Err(DecodeError::InvalidValue);
        };
        let ciphertext = r.rest();
        if ciphertext.len() < TAG_LEN {
            return Err(DecodeError::Truncated);
        }
        Ok(Self {
            header,
            extension: &bytes[EXTENSION_AT..EXTENSION_AT + extension_len],
            header_bytes: &bytes[..(EXTENSION_AT + extension_len).max(HEADER_LEN)],
            ciphertext,
        })
    }
}

impl<'a> PreKeyMessage<'a> {
    fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, kind::PREKEY_MESSAGE)?;
        let x3dh = X3dhHeader {
            initiator: IdentityKey::from_bytes(&r.array()?)?,
            base_key: DhPublicKey::from_bytes(r.array()?)?,
            signed_prekey: SignedPreKeyId(r.u32()?),
            one_time_prekey: r.optional(|r| r.u32().map(OneTimePreKeyId))?,
            kem_prekey: KemPreKeyId(r.u32()?),
            kem_ciphertext: r
                .bytes(KEM_CIPHERTEXT_LEN)?
                .try_into()
                .map_err(|_| DecodeError::Truncated)?,
        };
        let message = RatchetMessage::decode(r.rest())?;
        Ok(Self { x3dh, message })
    }

    /// The initiator's identity key, which the app checks against the sender's published
    /// identity before accepting.
    pub fn initiator_identity(&self) -> IdentityKey {
        self.x3dh.initiator
    }

    /// The ML-KEM prekey the initiator encapsulated to.
    pub fn kem_prekey(&self) -> KemPreKeyId {
        self.x3dh.kem_prekey
    }
}

/// Writes a pre-key message's prefix; the ratchet message follows it.
pub(crate) fn write_prekey_prefix(out: &mut Vec<u8>, x3dh: &X3dhHeader<'_>) {
    out.header(kind::PREKEY_MESSAGE);
    out.put(x3dh.initiator.as_bytes());
    out.put(x3dh.base_key.as_bytes());
    out.u32(x3dh.signed_prekey.0);
    out.optional(x3dh.one_time_prekey, |out, id| out.u32(id.0));
    out.u32(x3dh.kem_prekey.0);
    out.put(x3dh.kem_ciphertext);
}

/// Length of a pre-key message's prefix.
pub(crate) fn prekey_prefix_len(x3dh: &X3dhHeader<'_>) -> usize {
    2 + 32
        + 32
        + 4
        + 1
        + if x3dh.one_time_prekey.is_some() { 4 } else { 0 }
        + 4
        + KEM_CIPHERTEXT_LEN
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::IdentityKeyPair;

    /// A ratchet message's bytes: `header` then a bare 16-byte tag (an empty plaintext).
    fn ratchet_bytes(header: &Header) -> Vec<u8> {
        let mut out = Vec::new();
        header.write(&[], &mut out);
        out.extend_from_slice(&[0xAA; TAG_LEN]);
        out
    }

    /// A header on the X25519 base point.
    fn header(previous_chain_length: u32, message_number: u32, salt: [u8; SALT_LEN]) -> Header {
        let mut base_point = [0u8; 32];
        base_point[0] = 9;
        Header {
            ratchet_key: DhPublicKey::from_bytes(base_point).unwrap(),
            previous_chain_length,
            message_number,
            salt,
        }
    }

    /// The header buffer holds exactly the longest header: one with the longest extension fills
    /// it, and a longer extension is cut to fit.
    #[test]
    fn the_longest_header_fills_the_buffer() {
        let header = header(0, 0, [7; SALT_LEN]);
        let mut buf = [0u8; MAX_HEADER_LEN];
        assert_eq!(
            header.encode(&[0x33; MAX_EXTENSION_LEN], &mut buf),
            buf.len()
        );
        assert_eq!(
            header.encode(&[0x33; MAX_EXTENSION_LEN + 1], &mut buf),
            buf.len()
        );
        assert_eq!(header.encode(&[], &mut buf), HEADER_LEN);
        assert_eq!(buf[EXTENSION_AT..HEADER_LEN], [0, 0]);
    }

    /// The extension field: `0x00 0x00` is no extension; a first byte below `0x80` with any
    /// other bytes is refused; from `0x80` on it is the ratchet's extension, 2 bytes, or 34
    /// when bit `0x40` is set, and the header (authenticated) ends after it.
    #[test]
    fn the_extension_field_gives_its_own_length() {
        use alloc::vec;
        let mut bytes = ratchet_bytes(&header(0, 0, [7; SALT_LEN]));
        let parse = |bytes: &[u8]| match IncomingMessage::decode(bytes) {
            Ok(IncomingMessage::Ratchet(m)) => Ok((m.extension.to_vec(), m.header_bytes.len())),
            Ok(_) => panic!("a ratchet message"),
            Err(e) => Err(e),
        };
        assert_eq!(parse(&bytes), Ok((vec![], HEADER_LEN)));
        for field in [[0x00, 0x01], [0x01, 0x00], [0x7f, 0xff]] {
            bytes[EXTENSION_AT..HEADER_LEN].copy_from_slice(&field);
            assert_eq!(parse(&bytes), Err(DecodeError::InvalidValue));
        }
        bytes[EXTENSION_AT..HEADER_LEN].copy_from_slice(&[0xbf, 0x05]);
        assert_eq!(parse(&bytes), Ok((vec![0xbf, 0x05], HEADER_LEN)));
        // With the chunk bit, 32 more bytes: more than the 16 of the tag that follow, until
        // 32 more are added.
        bytes[EXTENSION_AT] = 0xc0;
        assert_eq!(parse(&bytes), Err(DecodeError::Truncated));
        bytes.extend_from_slice(&[0xAA; 32]);
        let mut ext = vec![0xc0, 0x05];
        ext.extend_from_slice(&[0xAA; 32]);
        assert_eq!(parse(&bytes), Ok((ext, HEADER_LEN + 32)));
    }

    /// A message is named to its sender by its header's salt, whether it is a ratchet message
    /// or a pre-key message (retry requests and envelopes name messages this way).
    #[test]
    fn a_message_is_named_by_its_header_salt() {
        let mut salt = [0u8; SALT_LEN];
        for (i, b) in salt.iter_mut().enumerate() {
            *b = 0x30 + i as u8;
        }
        let header = header(3, 4, salt);
        let ratchet = ratchet_bytes(&header);
        let decoded = IncomingMessage::decode(&ratchet).unwrap();
        assert!(matches!(decoded, IncomingMessage::Ratchet(_)));
        assert_eq!(decoded.salt(), salt);

        let kem_ciphertext = [0x55; KEM_CIPHERTEXT_LEN];
        let x3dh = X3dhHeader {
            initiator: IdentityKeyPair::from_seed(&[5; 32]).public(),
            base_key: header.ratchet_key,
            signed_prekey: SignedPreKeyId(1),
            one_time_prekey: None,
            kem_prekey: KemPreKeyId(2),
            kem_ciphertext: &kem_ciphertext,
        };
        let mut prekey = Vec::new();
        write_prekey_prefix(&mut prekey, &x3dh);
        prekey.extend_from_slice(&ratchet);
        let decoded = IncomingMessage::decode(&prekey).unwrap();
        assert!(matches!(decoded, IncomingMessage::PreKey(_)));
        assert_eq!(decoded.salt(), salt);
    }
}
