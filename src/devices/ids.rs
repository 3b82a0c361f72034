//! Device ids and addresses, and the address codec every layer above uses.

use super::AccountKey;
use crate::error::DecodeError;
use crate::wire::{Reader, Writer};

/// A device's number within its account: the primary is 1, companions are numbered from 2 in
/// the order they were linked, and numbers are never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceId(pub u32);

/// The primary device's id.
pub const PRIMARY_DEVICE: DeviceId = DeviceId(1);

/// One device of one account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceAddress {
    /// The account.
    pub account: AccountKey,
    /// The device within it.
    pub device: DeviceId,
}

/// Encoded length of an address: account key, then device id.
pub const ADDRESS_LEN: usize = 36;

impl DeviceAddress {
    /// The address's bytes (PROTOCOL.md 1): `AK (32) ‖ u32(device)`.
    pub fn to_bytes(&self) -> [u8; ADDRESS_LEN] {
        self.to_array()
    }

    /// Parses [`to_bytes`](Self::to_bytes)' form; an account key that is not a valid Ed25519
    /// key is `InvalidKey`.
    pub fn from_bytes(bytes: &[u8; ADDRESS_LEN]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let address = Self::read(&mut r)?;
        r.finish()?;
        Ok(address)
    }

    /// `AK (32) ‖ u32(device)`.
    pub(crate) fn write(&self, out: &mut impl Writer) {
        out.put(self.account.as_bytes());
        out.u32(self.device.0);
    }

    pub(crate) fn to_array(self) -> [u8; ADDRESS_LEN] {
        let mut out = [0u8; ADDRESS_LEN];
        out[..32].copy_from_slice(self.account.as_bytes());
        out[32..].copy_from_slice(&self.device.0.to_be_bytes());
        out
    }

    /// Reads an address from the wire: the account key is checked.
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            account: AccountKey::read(r)?,
            device: DeviceId(r.u32()?),
        })
    }

    /// Reads an address whose account key is not checked here: from this crate's own state
    /// (checked when first received), or a routing field that is only compared with keys
    /// that were checked.
    pub(crate) fn read_trusted(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            account: AccountKey::from_trusted(r.array()?),
            device: DeviceId(r.u32()?),
        })
    }
}
