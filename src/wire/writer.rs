//! Writers: every encoder appends through [`Writer::put`], so the field helpers are shared by
//! plain buffers and by [`SecretBuf`], the buffer for encodings that hold secrets.

use alloc::vec::Vec;
use zeroize::Zeroizing;

use super::VERSION;

/// Appends fields in the same layout [`Reader`](super::Reader) reads.
pub(crate) trait Writer {
    /// Appends raw bytes; every other method goes through it.
    fn put(&mut self, bytes: &[u8]);

    fn header(&mut self, kind: u8) {
        self.put(&[VERSION, kind]);
    }
    fn versioned_header(&mut self, version: u8, kind: u8) {
        self.put(&[version, kind]);
    }
    fn u8(&mut self, v: u8) {
        self.put(&[v]);
    }
    fn u32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.put(&v.to_be_bytes());
    }
    fn flag(&mut self, present: bool) {
        self.put(&[u8::from(present)]);
    }
    fn optional<T>(&mut self, v: Option<T>, f: impl FnOnce(&mut Self, T)) {
        self.flag(v.is_some());
        if let Some(v) = v {
            f(self, v);
        }
    }
    /// `u32(len) ‖ bytes`.
    fn blob(&mut self, bytes: &[u8]) {
        self.u32(bytes.len() as u32);
        self.put(bytes);
    }
}

impl Writer for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Counts the bytes an encoding would take, writing none: an encoder run over it first sizes
/// the buffer its real run writes into, so that buffer never grows (for a [`SecretBuf`], each
/// growth is an allocation, a copy and a wipe).
#[derive(Default)]
pub(crate) struct Counter(pub(crate) usize);

impl Writer for Counter {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

/// A buffer for encodings that hold secrets. A growing `Vec` frees its old allocation without
/// wiping it, and `Zeroizing` wipes only the last one; this buffer grows by copying into a new
/// allocation and wiping the old one itself, so no freed block ever keeps secret bytes. It is
/// wiped on drop, unless it never allocated (`primitives::wipe`: many are dropped unused).
pub(crate) struct SecretBuf(Vec<u8>);

impl Drop for SecretBuf {
    fn drop(&mut self) {
        crate::primitives::wipe(&mut self.0);
    }
}

impl SecretBuf {
    /// A buffer with room for `capacity` bytes before its first growth.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self(Vec::with_capacity(capacity))
    }

    /// The encoding.
    pub(crate) fn into_inner(mut self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(core::mem::take(&mut self.0))
    }

    /// Makes room for `additional` more bytes, growing at most once.
    #[inline]
    pub(crate) fn reserve(&mut self, additional: usize) {
        let needed = self.0.len() + additional;
        if needed > self.0.capacity() {
            self.grow(needed);
        }
    }

    /// Moves the bytes to an allocation of at least `needed` bytes. Apart from `reserve`, so
    /// that each field's write inlines a comparison and a copy.
    #[cold]
    fn grow(&mut self, needed: usize) {
        let capacity = needed.max(2 * self.0.capacity()).max(FIRST_ALLOCATION);
        let mut bigger = Vec::with_capacity(capacity);
        bigger.extend_from_slice(&self.0);
        // The old allocation is wiped; a buffer's first growth (most start empty) has none.
        crate::primitives::wipe(&mut core::mem::replace(&mut self.0, bigger));
    }
}

/// A buffer's first allocation, at least: a small record (most are) is then written without
/// growing, and one that reserves more than this first gets its exact length.
const FIRST_ALLOCATION: usize = 128;

impl Writer for SecretBuf {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.reserve(bytes.len());
        self.0.extend_from_slice(bytes);
    }
}

impl core::ops::Deref for SecretBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_buf_grows_and_keeps_every_byte() {
        let mut buf = SecretBuf::with_capacity(1);
        for i in 0..100u8 {
            buf.put(&[i, i]);
            buf.u32(u32::from(i));
        }
        let bytes = buf.into_inner();
        assert_eq!(bytes.len(), 600);
        assert_eq!(&bytes[6..12], &[1, 1, 0, 0, 0, 1]);
    }

    #[test]
    fn a_reserved_buffer_does_not_grow_and_the_counter_counts_what_is_written() {
        fn fields(w: &mut impl Writer) {
            w.u8(1);
            w.u32(7);
            w.put(&[2; 8]);
        }
        let mut count = Counter::default();
        fields(&mut count);
        assert_eq!(count.0, 13);
        let mut buf = SecretBuf::with_capacity(0);
        buf.reserve(count.0);
        let capacity = buf.0.capacity();
        fields(&mut buf);
        assert_eq!(buf.0.capacity(), capacity);
        assert_eq!(buf.len(), 13);
        assert_eq!(
            capacity, FIRST_ALLOCATION,
            "a small record's first allocation"
        );
        let mut exact = SecretBuf::with_capacity(0);
        exact.reserve(FIRST_ALLOCATION + 1);
        assert_eq!(exact.0.capacity(), FIRST_ALLOCATION + 1);
    }
}
