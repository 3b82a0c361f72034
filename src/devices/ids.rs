//! Device ids and addresses.

use super::AccountKey;

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
