//! A fixed-size secret: zeroized on drop, compared in constant time, never printed. And the
//! two moves of a secret buffer's bytes that must skip wiping an empty `Vec`.
//!
//! Why skip it: `zeroize` wipes an empty `Vec` through its dangling pointer. glibc's AVX-512
//! `memset` stores zero bytes there with a masked store, and the store's fault suppression on
//! that unmapped address costs a microcode assist: about 65 ns for the two such calls a drop
//! makes, where wiping 16 real bytes takes 2 ns. A receive dropped four such wrappers (5% of
//! its time, perf); instruction counts never show it.

use alloc::vec::Vec;
use core::fmt;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Moves the bytes out of `secret`. The wrapper is left without an allocation, nothing to wipe,
/// so it is forgotten instead of dropped (see the module's doc).
pub(crate) fn take_bytes(mut secret: Zeroizing<Vec<u8>>) -> Vec<u8> {
    let bytes = core::mem::take(&mut *secret);
    core::mem::forget(secret);
    bytes
}

/// Wipes `bytes` (their whole capacity) and empties them, keeping the allocation for the
/// caller to free. Without an allocation there is nothing to wipe, and the wipe is skipped
/// (see the module's doc).
///
/// Not `Vec::zeroize`: it wipes the elements one volatile byte store at a time (0.3 ns a byte
/// here, 160 ns for a 533-byte session record), where a slice's `zeroize`, used here for the
/// bytes and the spare capacity alike, is one `memset` that an optimization barrier keeps
/// (10 ns for 1 KiB). The guarantee is `zeroize`'s own either way.
pub(crate) fn wipe(bytes: &mut Vec<u8>) {
    if bytes.capacity() != 0 {
        bytes.as_mut_slice().zeroize();
        bytes.spare_capacity_mut().zeroize();
        bytes.clear();
    }
}

/// Wipes the bytes `secret` holds through [`wipe`] and frees them: what dropping a
/// `Zeroizing<Vec<u8>>` does, at a `memset`'s cost rather than a byte at a time.
pub(crate) fn wipe_secret(secret: Zeroizing<Vec<u8>>) {
    wipe(&mut take_bytes(secret));
}

/// `N` secret bytes.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct Secret<const N: usize>([u8; N]);

impl<const N: usize> Secret<N> {
    pub(crate) fn from_bytes(bytes: [u8; N]) -> Self {
        Self(bytes)
    }

    pub(crate) fn as_bytes(&self) -> &[u8; N] {
        &self.0
    }

    pub(crate) fn as_mut_bytes(&mut self) -> &mut [u8; N] {
        &mut self.0
    }
}

impl<const N: usize> PartialEq for Secret<N> {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl<const N: usize> Eq for Secret<N> {}

impl<const N: usize> fmt::Debug for Secret<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret<{N}>(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wiping_empties_and_taking_moves_every_byte() {
        let mut bytes = alloc::vec![7u8; 40];
        wipe(&mut bytes);
        assert!(bytes.is_empty());
        assert_eq!(
            bytes.capacity(),
            40,
            "the allocation is the caller's to free"
        );
        let mut empty = Vec::new();
        wipe(&mut empty);
        assert_eq!(empty.capacity(), 0);
        let secret = Zeroizing::new(alloc::vec![1u8, 2, 3]);
        assert_eq!(take_bytes(secret), [1, 2, 3]);
    }
}
