//! What a send was encrypted for: per recipient account, the version and digest of the device
//! list it used. A relay compares it with the list it serves (`server::check_coverage`) and
//! refuses a batch made under a stale list, so a newly linked device is never left out.

use super::{AccountKey, VerifiedDeviceList};

/// The device list one account's part of a send was encrypted for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListCoverage {
    /// The recipient account (or this device's own, for its copies).
    pub account: AccountKey,
    /// The list version the sender held.
    pub version: u64,
    /// The digest of that exact list ([`VerifiedDeviceList::digest`]).
    pub digest: [u8; 32],
}

impl ListCoverage {
    /// The coverage a send under `list` claims.
    pub fn of(list: &VerifiedDeviceList) -> Self {
        Self {
            account: list.account(),
            version: list.version(),
            digest: list.digest(),
        }
    }
}
