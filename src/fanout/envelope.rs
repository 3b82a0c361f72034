//! Envelopes (PROTOCOL.md, "Envelope"): the routing header the server reads, in front of a
//! pairwise message or a group message. A pairwise envelope's header is bound into the
//! pairwise AEAD, so re-routing it or changing the list versions makes it fail to open.

use alloc::vec::Vec;

use crate::devices::account::{read_account, write_account};
use crate::devices::{DeviceAddress, DeviceId};
use crate::error::DecodeError;
use crate::wire::{Reader, Writer, kind};

const PAIRWISE: u8 = 1;
const GROUP: u8 = 2;

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
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PAIRWISE_HEADER_LEN);
        out.header(kind::ENVELOPE);
        out.push(PAIRWISE);
        write_address(&mut out, &self.sender);
        write_address(&mut out, &self.recipient);
        out.u64(self.sender_list_version);
        out.u64(self.recipient_list_version);
        out.extend_from_slice(&self.lists_digest);
        out
    }
}

/// The header of a group envelope: one copy for every member device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GroupHeader {
    pub(crate) sender: DeviceAddress,
    pub(crate) sender_list_version: u64,
}

impl GroupHeader {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + 1 + 36 + 8);
        out.header(kind::ENVELOPE);
        out.push(GROUP);
        write_address(&mut out, &self.sender);
        out.u64(self.sender_list_version);
        out
    }
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
        message: &'a [u8],
    },
    Retry(super::retry::RetryWire<'a>),
}

impl<'a> Envelope<'a> {
    pub(crate) fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, kind::ENVELOPE)?;
        match r.u8()? {
            PAIRWISE => {
                let header = PairwiseHeader {
                    sender: read_address(&mut r)?,
                    recipient: read_address(&mut r)?,
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
                    sender: read_address(&mut r)?,
                    sender_list_version: r.u64()?,
                };
                Ok(Self::Group {
                    header,
                    message: r.rest(),
                })
            }
            super::retry::RETRY => super::retry::RetryWire::decode(bytes).map(Self::Retry),
            _ => Err(DecodeError::InvalidValue),
        }
    }
}

pub(crate) fn write_address(out: &mut Vec<u8>, a: &DeviceAddress) {
    write_account(out, &a.account);
    out.u32(a.device.0);
}

pub(crate) fn read_address(r: &mut Reader<'_>) -> Result<DeviceAddress, DecodeError> {
    Ok(DeviceAddress {
        account: read_account(r)?,
        device: DeviceId(r.u32()?),
    })
}
