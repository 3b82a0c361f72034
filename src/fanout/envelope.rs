//! Envelopes (PROTOCOL.md, "Envelope"): the routing header the server reads, in front of a
//! pairwise message, a group message, or a retry request. A pairwise envelope's header is bound
//! into the pairwise AEAD, and a group envelope's into the group message's signature, so
//! re-routing either or changing a list version makes it fail to open; a retry request is
//! signed whole by the requesting device.

use alloc::vec::Vec;

use crate::devices::DeviceAddress;
use crate::error::DecodeError;
use crate::group::GroupMessage;
use crate::primitives::Signature;
use crate::ratchet::IncomingMessage;
use crate::wire::{Reader, Writer, kind};
use crate::x3dh::PreKeyBundle;

/// What identifies one sealed message on the wire to its sender: the random salt of its header
/// (the pairwise ratchet header's, or the group message header's).
pub(crate) type MessageRef = [u8; 16];

pub(crate) const PAIRWISE: u8 = 1;
pub(crate) const GROUP: u8 = 2;
const RETRY: u8 = 3;

/// Length of a pairwise envelope's header (the part bound as AEAD context).
pub(crate) const PAIRWISE_HEADER_LEN: usize = 2 + 1 + 36 + 36 + 8 + 8 + 8;

/// The header of a per-device envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PairwiseHeader {
    pub(crate) sender: DeviceAddress,
    pub(crate) recipient: DeviceAddress,
    pub(crate) sender_list_version: u64,
    pub(crate) recipient_list_version: u64,
    pub(crate) lists_digest: [u8; 8],
}

impl PairwiseHeader {
    /// The header bytes, in a buffer with room for a message of `message_len` bytes after it.
    pub(crate) fn encode(&self, message_len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(PAIRWISE_HEADER_LEN + message_len);
        out.header(kind::ENVELOPE);
        out.u8(PAIRWISE);
        self.sender.write(&mut out);
        self.recipient.write(&mut out);
        out.u64(self.sender_list_version);
        out.u64(self.recipient_list_version);
        out.put(&self.lists_digest);
        out
    }
}

/// Length of a group envelope's header (the context bound into the group message's signature).
pub(crate) const GROUP_HEADER_LEN: usize = 2 + 1 + 36 + 8;

/// The header of a group envelope: one copy for every member device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GroupHeader {
    pub(crate) sender: DeviceAddress,
    pub(crate) sender_list_version: u64,
}

impl GroupHeader {
    /// The header bytes, in a buffer with room for a message of `message_len` bytes after it.
    pub(crate) fn encode(&self, message_len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(GROUP_HEADER_LEN + message_len);
        out.header(kind::ENVELOPE);
        out.u8(GROUP);
        self.sender.write(&mut out);
        out.u64(self.sender_list_version);
        out
    }
}

/// A retry request as it travels: everything but the signature is signed.
#[derive(Debug)]
pub(crate) struct RetryWire<'a> {
    pub(crate) requester: DeviceAddress,
    pub(crate) sender: DeviceAddress,
    pub(crate) reference: MessageRef,
    pub(crate) reason: u8,
    pub(crate) bundle: PreKeyBundle,
    pub(crate) signed: &'a [u8],
    pub(crate) signature: Signature,
}

/// The signed part of a retry request; the caller signs it and appends the signature.
pub(crate) fn retry_body(
    requester: &DeviceAddress,
    sender: &DeviceAddress,
    reference: &MessageRef,
    reason: u8,
    attempt: u8,
    bundle: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + 1 + 72 + 16 + 2 + 4 + bundle.len() + 64);
    out.header(kind::ENVELOPE);
    out.u8(RETRY);
    requester.write(&mut out);
    sender.write(&mut out);
    out.put(reference);
    out.u8(reason);
    out.u8(attempt);
    out.blob(bundle);
    out
}

/// A parsed envelope.
// Parsed on the stack for one call; boxing the larger variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Envelope<'a> {
    Pairwise {
        header: PairwiseHeader,
        header_bytes: &'a [u8],
        message: &'a [u8],
    },
    Group {
        header: GroupHeader,
        header_bytes: &'a [u8],
        message: &'a [u8],
    },
    Retry(RetryWire<'a>),
}

impl<'a> Envelope<'a> {
    /// Addresses are read unchecked: a receiver compares them with its own address and looks
    /// the sender up among the lists it follows, whose keys were checked on arrival (an
    /// Ed25519 decompression per address would be most of a receive's cost). An account not
    /// followed is checked before it is reported (`unknown_account`).
    pub(crate) fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, kind::ENVELOPE)?;
        match r.u8()? {
            PAIRWISE => {
                let header = PairwiseHeader {
                    sender: DeviceAddress::read_trusted(&mut r)?,
                    recipient: DeviceAddress::read_trusted(&mut r)?,
                    sender_list_version: r.u64()?,
                    recipient_list_version: r.u64()?,
                    lists_digest: r.array()?,
                };
                let message = r.rest();
                Ok(Self::Pairwise {
                    header,
                    header_bytes: &bytes[..PAIRWISE_HEADER_LEN],
                    message,
                })
            }
            GROUP => {
                let header = GroupHeader {
                    sender: DeviceAddress::read_trusted(&mut r)?,
                    sender_list_version: r.u64()?,
                };
                Ok(Self::Group {
                    header,
                    header_bytes: &bytes[..GROUP_HEADER_LEN],
                    message: r.rest(),
                })
            }
            RETRY => {
                let requester = DeviceAddress::read_trusted(&mut r)?;
                let sender = DeviceAddress::read_trusted(&mut r)?;
                let reference = r.array()?;
                let reason = r.u8()?;
                // The requester's attempt count is informational: the sender keeps its own.
                let _attempt = r.u8()?;
                let len = r.u32()? as usize;
                let bundle = PreKeyBundle::from_bytes(r.bytes(len)?)?;
                let signed = &bytes[..bytes.len() - r.rest_len()];
                let signature = Signature::from_bytes(r.array()?);
                r.finish()?;
                Ok(Self::Retry(RetryWire {
                    requester,
                    sender,
                    reference,
                    reason,
                    bundle,
                    signed,
                    signature,
                }))
            }
            _ => Err(DecodeError::InvalidValue),
        }
    }

    /// The sealed message inside, as its sender names it: the sender, the kind byte, and the
    /// salt of the message's header. A relay that changes the ciphertext but not the salt
    /// leaves the name as it was (and the sender refuses retries for salts it never used).
    /// `None` for a retry request, or a message that does not decode.
    pub(crate) fn sealed_name(&self) -> Option<(DeviceAddress, u8, MessageRef)> {
        match self {
            Self::Pairwise {
                header, message, ..
            } => IncomingMessage::decode(message)
                .ok()
                .map(|m| (header.sender, PAIRWISE, m.salt())),
            Self::Group {
                header, message, ..
            } => GroupMessage::decode(message)
                .ok()
                .map(|m| (header.sender, GROUP, m.salt)),
            Self::Retry(_) => None,
        }
    }
}

/// Whether `bytes` is a retry request envelope, read from its kind byte alone.
pub(crate) fn is_retry(bytes: &[u8]) -> bool {
    bytes.get(2) == Some(&RETRY)
}
