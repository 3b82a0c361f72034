//! A group's member accounts: a set of account keys held as one sorted slice. A device loads
//! every group it is in at each start (500 groups of 20 members in the scale fixture), and a
//! `BTreeSet` there cost three nodes a group and three comparisons a member (the record's
//! ascending check, the set's sort, its deduplication): with it the groups took more of a
//! 1,000-session load than the sessions' own decoding above their floor. A sorted slice is one
//! allocation, read in one pass, and searched by bisection as often as the set was.
//!
//! It owns the order and uniqueness of the accounts and their record and history-offer forms;
//! it must not decide who may be a member (the groups do) or leave out the device's own account
//! (the caller does).

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::devices::AccountKey;
use crate::error::DecodeError;
use crate::wire::{Reader, Writer, bounded_count};

/// Member accounts a group may have, besides this device's own: the decoding bound of a
/// members record, so `Device::set_group_members` refuses more (`TooManyMembers`).
pub const MAX_GROUP_MEMBERS: usize = 4096;

/// Account keys in ascending order, each once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Members(Box<[AccountKey]>);

impl Members {
    /// The accounts of `accounts`, in any order and possibly repeated, each once.
    pub(crate) fn new(accounts: impl IntoIterator<Item = AccountKey>) -> Self {
        let mut v: Vec<AccountKey> = accounts.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        Self(v.into_boxed_slice())
    }

    pub(crate) fn contains(&self, account: &AccountKey) -> bool {
        self.0.binary_search(account).is_ok()
    }

    /// In ascending order.
    pub(crate) fn iter(&self) -> core::slice::Iter<'_, AccountKey> {
        self.0.iter()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The accounts of this set that `other` lacks, in ascending order.
    pub(crate) fn without<'a>(
        &'a self,
        other: &'a Members,
    ) -> impl Iterator<Item = &'a AccountKey> + 'a {
        self.0.iter().filter(|a| !other.contains(a))
    }

    /// `u32(n) ‖ n × AK`, ascending: a members record, and each group of a history offer's
    /// membership.
    pub(crate) fn write(&self, out: &mut impl Writer) {
        out.u32(self.0.len() as u32);
        for m in self.iter() {
            out.put(m.as_bytes());
        }
    }

    /// Reads a members record, which this device wrote: its keys are not checked again, so
    /// they are taken as one slice and their order checked apart (a load reads every group's
    /// record: with 500 groups of 20, a quarter fewer instructions than key by key).
    pub(crate) fn read_record(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = bounded_count(r, MAX_GROUP_MEMBERS as u32)?;
        let (keys, _) = r.bytes(n * 32)?.as_chunks::<32>();
        let members: Box<[AccountKey]> =
            keys.iter().map(|k| AccountKey::from_trusted(*k)).collect();
        if members.windows(2).any(|w| w[0] >= w[1]) {
            return Err(DecodeError::InvalidValue);
        }
        Ok(Self(members))
    }

    /// Reads the `n` account keys that follow a count, each by `account`, refusing any not
    /// strictly above the one before (out of order, or twice).
    pub(crate) fn read_accounts(
        r: &mut Reader<'_>,
        n: usize,
        account: impl Fn(&mut Reader<'_>) -> Result<AccountKey, DecodeError>,
    ) -> Result<Self, DecodeError> {
        let mut members: Vec<AccountKey> = Vec::with_capacity(n);
        for _ in 0..n {
            let m = account(r)?;
            if members.last().is_some_and(|l| *l >= m) {
                return Err(DecodeError::InvalidValue);
            }
            members.push(m);
        }
        Ok(Self(members.into_boxed_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(b: u8) -> AccountKey {
        AccountKey::from_trusted([b; 32])
    }

    fn decode(bytes: &[u8]) -> Result<Members, DecodeError> {
        let mut r = Reader::new(bytes);
        let m = Members::read_record(&mut r)?;
        r.finish()?;
        Ok(m)
    }

    #[test]
    fn accounts_are_kept_in_order_each_once() {
        let m = Members::new([account(3), account(1), account(3), account(2)]);
        let held: Vec<AccountKey> = m.iter().copied().collect();
        assert_eq!(held, [account(1), account(2), account(3)]);
        assert_eq!(m.len(), 3);
        for b in 1..=3 {
            assert!(m.contains(&account(b)));
        }
        for b in [0, 4] {
            assert!(!m.contains(&account(b)));
        }
        let other = Members::new([account(2), account(4)]);
        let gone: Vec<AccountKey> = m.without(&other).copied().collect();
        assert_eq!(gone, [account(1), account(3)]);
    }

    #[test]
    fn a_record_round_trips_and_only_ascending_accounts_decode() {
        let m = Members::new([account(2), account(1)]);
        let mut bytes = Vec::new();
        m.write(&mut bytes);
        assert_eq!(bytes.len(), 4 + 2 * 32);
        assert_eq!(&bytes[..4], &2u32.to_be_bytes());
        assert_eq!(decode(&bytes), Ok(m));
        for order in [[2, 1], [1, 1]] {
            let mut bytes = Vec::new();
            bytes.u32(2);
            for b in order {
                bytes.put(&[b; 32]);
            }
            assert_eq!(decode(&bytes), Err(DecodeError::InvalidValue));
        }
        let mut over = Vec::new();
        over.u32(MAX_GROUP_MEMBERS as u32 + 1);
        assert_eq!(decode(&over), Err(DecodeError::InvalidValue));
        let mut at_bound = Vec::new();
        at_bound.u32(MAX_GROUP_MEMBERS as u32);
        assert_eq!(decode(&at_bound), Err(DecodeError::Truncated));
    }
}
