//! A followed account's device list, with the digests of the few versions held before it, so
//! that an envelope made under a slightly older list (in flight across a renew or an unlink)
//! can still be checked against the list it names.

use alloc::vec::Vec;

use crate::devices::VerifiedDeviceList;
use crate::error::DecodeError;
use crate::wire::{Reader, Writer, bounded_count};

/// Earlier list versions whose digests are kept per account.
pub(crate) const LIST_HISTORY: usize = 8;

#[derive(Clone, Debug)]
pub(crate) struct Followed {
    pub(crate) list: VerifiedDeviceList,
    /// (version, digest) of earlier lists, oldest first.
    pub(crate) history: Vec<(u64, [u8; 32])>,
}

impl Followed {
    pub(crate) fn new(list: VerifiedDeviceList) -> Self {
        Self {
            list,
            history: Vec::new(),
        }
    }

    /// A newer list replaces the held one, whose digest goes to the history.
    pub(crate) fn replace(&mut self, list: VerifiedDeviceList) {
        let old = core::mem::replace(&mut self.list, list);
        self.history.push((old.version(), old.digest()));
        if self.history.len() > LIST_HISTORY {
            self.history.remove(0);
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

    /// `blob(list) ‖ u32(h) ‖ h × (u64(version) ‖ digest)`.
    pub(crate) fn write(&self, out: &mut impl Writer) {
        out.blob(&self.list.to_bytes());
        out.u32(self.history.len() as u32);
        for (v, d) in &self.history {
            out.u64(*v);
            out.put(d);
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let len = r.u32()? as usize;
        let list = VerifiedDeviceList::from_trusted_bytes(r.bytes(len)?)?;
        let n = bounded_count(r, LIST_HISTORY as u32)?;
        let mut history: Vec<(u64, [u8; 32])> = Vec::with_capacity(n);
        for _ in 0..n {
            let entry = (r.u64()?, r.array()?);
            if entry.0 >= list.version() || history.last().is_some_and(|l| l.0 >= entry.0) {
                return Err(DecodeError::InvalidValue);
            }
            history.push(entry);
        }
        Ok(Self { list, history })
    }
}
