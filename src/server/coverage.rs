//! The relay's coverage check: a batch reaches exactly the active devices of every account it
//! claims, under the very lists the relay serves.

use alloc::vec::Vec;

use crate::devices::{AccountKey, DeviceAddress, ListCoverage, VerifiedDeviceList};
use crate::error::ServerError;
use crate::time::Timestamp;

/// How far the sender's clock and the relay's may disagree about a companion's expiry: a
/// companion expiring within this much of `now` may be left out or included.
pub const EXPIRY_TOLERANCE_MS: u64 = 5 * 60 * 1000;

/// Checks a batch from `sender` to `recipients` (every device any of its envelopes goes to,
/// pairwise or group, in any order, repeats allowed) against the lists the relay serves:
/// every recipient's account is in `coverage` once; each covered account's list is the one
/// `lists` returns (same version and digest, else `StaleList`, and the sender fetches it and
/// sends again); and the recipients of each covered account are exactly its active devices at
/// `now`, the sender excepted, up to [`EXPIRY_TOLERANCE_MS`] around a companion's expiry.
///
/// An `Outbox` names its coverage. A send to chosen devices (call keys, history offers,
/// withheld notices, retry answers) covers no account: with `coverage` empty, each recipient
/// need only be an active device of a list the relay serves.
pub fn check_coverage<'a>(
    sender: &DeviceAddress,
    recipients: &[DeviceAddress],
    coverage: &[ListCoverage],
    lists: impl Fn(&AccountKey) -> Option<&'a VerifiedDeviceList>,
    now: Timestamp,
) -> Result<(), ServerError> {
    let mut recipients: Vec<DeviceAddress> = recipients.to_vec();
    recipients.sort_unstable();
    recipients.dedup();
    if recipients.contains(sender) {
        return Err(ServerError::NotListed(*sender));
    }
    let early = Timestamp(now.0.saturating_sub(EXPIRY_TOLERANCE_MS));
    let late = Timestamp(now.0.saturating_add(EXPIRY_TOLERANCE_MS));
    if coverage.is_empty() {
        for r in &recipients {
            let list = lists(&r.account).ok_or(ServerError::UnknownAccount(r.account))?;
            if !list.entry(r.device).is_some_and(|e| e.is_active(early)) {
                return Err(ServerError::NotListed(*r));
            }
        }
        return Ok(());
    }
    // In account order, so that each check below is a search, not a scan: a group of a
    // thousand accounts costs a relay thousands of comparisons per message, not millions.
    let mut order: Vec<&ListCoverage> = coverage.iter().collect();
    order.sort_unstable_by_key(|c| c.account);
    if let Some(twice) = order.windows(2).find(|w| w[0].account == w[1].account) {
        return Err(ServerError::CoveredTwice(twice[0].account));
    }
    let mut covered: Vec<(AccountKey, &VerifiedDeviceList)> = Vec::with_capacity(coverage.len());
    for c in order {
        let list = lists(&c.account).ok_or(ServerError::UnknownAccount(c.account))?;
        if list.version() != c.version || list.digest() != c.digest {
            return Err(ServerError::StaleList {
                account: c.account,
                used: c.version,
                current: list.version(),
            });
        }
        covered.push((c.account, list));
    }
    if let Some(r) = recipients.iter().find(|r| {
        covered
            .binary_search_by(|(a, _)| a.cmp(&r.account))
            .is_err()
    }) {
        return Err(ServerError::Uncovered(r.account));
    }
    for (account, list) in covered {
        let address = |e: &crate::devices::DeviceEntry| DeviceAddress {
            account,
            device: e.id,
        };
        // Recipients of this account, in address order (the account key sorts first).
        let start = recipients.partition_point(|r| r.account < account);
        let end = recipients.partition_point(|r| r.account <= account);
        for r in &recipients[start..end] {
            if !list.entry(r.device).is_some_and(|e| e.is_active(early)) {
                return Err(ServerError::NotListed(*r));
            }
        }
        for e in list.active(late) {
            let a = address(e);
            if a != *sender && recipients[start..end].binary_search(&a).is_err() {
                return Err(ServerError::DeviceLeftOut(a));
            }
        }
    }
    Ok(())
}
