//! The reader: fields front to back, every read past the end is a typed error.

use super::VERSION;
use crate::error::DecodeError;

/// Reads fields front to back; every read past the end is [`DecodeError::Truncated`].
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// Reads the version and type bytes and checks them. The version is checked first, so a
    /// future format is reported as such even if its type bytes changed.
    pub(crate) fn header(buf: &'a [u8], expected_kind: u8) -> Result<Self, DecodeError> {
        Self::versioned_header(buf, expected_kind, &[VERSION]).map(|(r, _)| r)
    }

    /// Like [`header`](Self::header) for a type whose decoder reads several format versions
    /// (the newest and the older ones it migrates); returns the version found.
    pub(crate) fn versioned_header(
        buf: &'a [u8],
        expected_kind: u8,
        versions: &[u8],
    ) -> Result<(Self, u8), DecodeError> {
        let mut r = Self::new(buf);
        let version = r.u8()?;
        if !versions.contains(&version) {
            return Err(DecodeError::UnknownVersion(version));
        }
        let kind = r.u8()?;
        if kind != expected_kind {
            return Err(DecodeError::UnknownType(kind));
        }
        Ok((r, version))
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    /// The next byte, not consumed: for a decoder that tells two forms apart by it.
    pub(crate) fn peek_u8(&self) -> Result<u8, DecodeError> {
        self.buf.first().copied().ok_or(DecodeError::Truncated)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A presence flag: 0 is absent, 1 is present, anything else is invalid.
    pub(crate) fn flag(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::InvalidValue),
        }
    }

    /// Reads `f` only when a presence flag says so.
    #[inline]
    pub(crate) fn optional<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        if self.flag()? {
            f(self).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A safe preallocation for `n` elements of at least `min_size` encoded bytes each: never
    /// more than the remaining input could hold, so a hostile count cannot force a huge
    /// allocation.
    pub(crate) fn capacity(&self, n: usize, min_size: usize) -> usize {
        n.min(self.buf.len() / min_size.max(1))
    }

    /// How many bytes are left.
    pub(crate) fn rest_len(&self) -> usize {
        self.buf.len()
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.buf)
    }

    /// Succeeds only if every byte was consumed.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }
}

/// A count field that may not exceed its limit, so hostile input cannot make a decoder
/// allocate or loop without bound.
pub(crate) fn bounded_count(r: &mut Reader<'_>, limit: u32) -> Result<usize, DecodeError> {
    let n = r.u32()?;
    if n > limit {
        return Err(DecodeError::InvalidValue);
    }
    Ok(n as usize)
}
