//! A followed account's device list, with the digests of the few versions held before it, so
//! that an envelope made under a slightly older list (in flight across a renew or an unlink)
//! can still be checked against the list it names. It also keeps the lists digests (18.3) of
//! its held list with this device's own, which every envelope to or from the account carries.

use alloc::vec::Vec;

use crate::devices::VerifiedDeviceList;
use crate::error::DecodeError;
use crate::labels;
use crate::primitives::sha256;
use crate::wire::{Reader, Writer, bounded_count};

/// The first byte of a stored list with its digest (PROTOCOL.md 19.1, kind 0x07).
const WITH_DIGEST: u8 = 1;

/// Earlier list versions whose digests are kept per account.
pub(crate) const LIST_HISTORY: usize = 8;

#[derive(Clone, Debug)]
pub(crate) struct Followed {
    pub(crate) list: VerifiedDeviceList,
    /// (version, digest) of earlier lists, oldest first.
    pub(crate) history: Vec<(u64, [u8; 32])>,
    /// The lists digests of the held list with the own list of this digest, once computed:
    /// both lists change rarely, so a hash per envelope would be repeated work. Not state:
    /// never persisted, and dropped when the held list changes.
    digests: Option<ListsDigests>,
}

/// The two lists digests of a held list and an own list: as the sender's view (own list
/// first) and as the recipient's (held list first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ListsDigests {
    own: [u8; 32],
    /// `lists_digest(own, held)`: on envelopes this device sends to the account.
    pub(crate) sent: [u8; 8],
    /// `lists_digest(held, own)`: on envelopes the account's devices send to this one.
    pub(crate) received: [u8; 8],
}

impl Followed {
    pub(crate) fn new(list: VerifiedDeviceList) -> Self {
        Self {
            list,
            history: Vec::new(),
            digests: None,
        }
    }

    /// A newer list replaces the held one, whose digest goes to the history.
    pub(crate) fn replace(&mut self, list: VerifiedDeviceList) {
        let old = core::mem::replace(&mut self.list, list);
        self.digests = None;
        self.history.push((old.version(), old.digest()));
        if self.history.len() > LIST_HISTORY {
            self.history.remove(0);
        }
    }

    /// The lists digests of the held list with the own list whose digest is `own`, computed
    /// once per pair of lists.
    pub(crate) fn lists_digests(&mut self, own: &[u8; 32]) -> ListsDigests {
        match self.digests {
            Some(d) if d.own == *own => d,
            _ => {
                let held = self.list.digest();
                let d = ListsDigests {
                    own: *own,
                    sent: lists_digest(own, &held),
                    received: lists_digest(&held, own),
                };
                self.digests = Some(d);
                d
            }
        }
    }

    /// The digest of version `version`, if it is the held list's or a remembered one.
    pub(crate) fn digest_of(&self, version: u64) -> Option<[u8; 32]> {
        if version == self.list.version() {
            return Some(self.list.digest());
        }
        self.history
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, d)| *d)
    }

    /// `0x01 ‖ digest(list) ‖ blob(list) ‖ u32(h) ‖ h × (u64(version) ‖ digest)`.
    pub(crate) fn write(&self, out: &mut impl Writer) {
        out.u8(WITH_DIGEST);
        out.put(&self.list.digest());
        out.blob(&self.list.to_bytes());
        out.u32(self.history.len() as u32);
        for (v, d) in &self.history {
            out.u64(*v);
            out.put(d);
        }
    }

    /// Reads what [`write`](Self::write) wrote, saying whether it was the earlier form
    /// without the list's digest (which a load rewrites): that form begins with the list's
    /// `u32` length, whose first byte is 0 for any list (at most 256 entries).
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<(Self, bool), DecodeError> {
        let (list, older_form) = match r.peek_u8()? {
            WITH_DIGEST => {
                r.u8()?;
                let digest = r.array()?;
                let len = r.u32()? as usize;
                (
                    VerifiedDeviceList::from_trusted_parts(r.bytes(len)?, digest)?,
                    false,
                )
            }
            0 => {
                let len = r.u32()? as usize;
                (VerifiedDeviceList::from_trusted_bytes(r.bytes(len)?)?, true)
            }
            _ => return Err(DecodeError::InvalidValue),
        };
        let n = bounded_count(r, LIST_HISTORY as u32)?;
        let mut history: Vec<(u64, [u8; 32])> = Vec::with_capacity(n);
        for _ in 0..n {
            let entry = (r.u64()?, r.array()?);
            if entry.0 >= list.version() || history.last().is_some_and(|l| l.0 >= entry.0) {
                return Err(DecodeError::InvalidValue);
            }
            history.push(entry);
        }
        Ok((
            Self {
                list,
                history,
                digests: None,
            },
            older_form,
        ))
    }
}

/// The 8-byte digest of the two device lists an envelope was made under (18.3).
pub(crate) fn lists_digest(sender: &[u8; 32], recipient: &[u8; 32]) -> [u8; 8] {
    let full = sha256(&[labels::DEVICE_LISTS_DIGEST, sender, recipient]);
    let mut out = [0u8; 8];
    out.copy_from_slice(&full[..8]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::{AccountKeyPair, SignedDeviceList};
    use crate::testing::SeededRng;
    use crate::time::Timestamp;

    /// A newer list replaces the held one; the digests of the last `LIST_HISTORY` earlier
    /// versions are kept, oldest first, and no more.
    #[test]
    fn the_history_keeps_the_last_few_versions() {
        let account = AccountKeyPair::generate(&mut SeededRng::from_label("list history"));
        let list = |version: u64| {
            VerifiedDeviceList::from_own(SignedDeviceList::sign(
                &account,
                version,
                Timestamp(version),
                Default::default(),
                Vec::new(),
            ))
        };
        let mut followed = Followed::new(list(1));
        let extra = 3;
        for v in 2..=(LIST_HISTORY as u64 + 1 + extra) {
            followed.replace(list(v));
        }
        let kept: Vec<u64> = followed.history.iter().map(|(v, _)| *v).collect();
        let expected: Vec<u64> = (1 + extra..=LIST_HISTORY as u64 + extra).collect();
        assert_eq!(kept, expected);
        assert_eq!(
            followed.digest_of(1 + extra),
            Some(list(1 + extra).digest())
        );
        assert_eq!(followed.digest_of(extra), None);
    }

    /// A stored history holds versions below the list's, ascending: anything else is not a
    /// record this crate wrote.
    #[test]
    fn a_stored_history_is_below_the_list_and_ascending() {
        let account = AccountKeyPair::generate(&mut SeededRng::from_label("list history read"));
        let list = VerifiedDeviceList::from_own(SignedDeviceList::sign(
            &account,
            5,
            Timestamp(5),
            Default::default(),
            Vec::new(),
        ));
        let read = |history: &[u64]| {
            let followed = Followed {
                history: history.iter().map(|v| (*v, [*v as u8; 32])).collect(),
                ..Followed::new(list.clone())
            };
            let mut bytes = Vec::new();
            followed.write(&mut bytes);
            Followed::read(&mut Reader::new(&bytes)).map(|(f, _)| f.history.len())
        };
        assert_eq!(read(&[2, 4]), Ok(2));
        assert_eq!(
            read(&[2, 5]),
            Err(DecodeError::InvalidValue),
            "the list's own version"
        );
        assert_eq!(read(&[6]), Err(DecodeError::InvalidValue), "above the list");
        assert_eq!(read(&[4, 2]), Err(DecodeError::InvalidValue), "descending");
        assert_eq!(read(&[3, 3]), Err(DecodeError::InvalidValue), "twice");
    }
}
