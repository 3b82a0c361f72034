//! The byte codec: a reader that refuses truncation and trailing bytes, a few writer helpers,
//! and the version and type bytes every encoding starts with. Layers above own their message
//! layouts; this module owns only the rules they share (big-endian integers, fixed-size fields,
//! flags that are exactly 0 or 1). PROTOCOL.md, section "Encoding", states the same rules.

use alloc::vec::Vec;

use crate::error::DecodeError;

/// The one wire and state format version this build reads and writes.
pub(crate) const VERSION: u8 = 1;

/// Type bytes: wire messages below 0x80, persisted state from 0x80.
pub(crate) mod kind {
    pub(crate) const BUNDLE: u8 = 0x01;
    pub(crate) const RATCHET_MESSAGE: u8 = 0x02;
    pub(crate) const PREKEY_MESSAGE: u8 = 0x03;
    pub(crate) const GROUP_MESSAGE: u8 = 0x04;
    pub(crate) const SENDER_KEY_DISTRIBUTION: u8 = 0x05;
    pub(crate) const DEVICE_LIST: u8 = 0x06;
    pub(crate) const LINK_INVITATION: u8 = 0x07;
    pub(crate) const LINK_REQUEST: u8 = 0x08;
    pub(crate) const LINK_APPROVAL: u8 = 0x09;
    pub(crate) const LINK_CONFIRMATION: u8 = 0x0a;
    pub(crate) const ENVELOPE: u8 = 0x0b;
    pub(crate) const PAYLOAD: u8 = 0x0c;
    pub(crate) const HISTORY_CHUNK: u8 = 0x0d;
    pub(crate) const HISTORY_OFFER: u8 = 0x0e;
    pub(crate) const CALL_KEY: u8 = 0x0f;
    pub(crate) const SESSION_STATE: u8 = 0x81;
    pub(crate) const PREKEY_STORE_STATE: u8 = 0x82;
    pub(crate) const IDENTITY_STATE: u8 = 0x83;
    pub(crate) const OUTBOUND_GROUP_STATE: u8 = 0x84;
    pub(crate) const GROUP_RECEIVER_STATE: u8 = 0x85;
    pub(crate) const PRIMARY_STATE: u8 = 0x86;
    pub(crate) const DEVICE_STATE: u8 = 0x87;
    pub(crate) const SEALED_STATE: u8 = 0x90;
}

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

/// Appends fields in the same layout [`Reader`] reads.
pub(crate) trait Writer {
    fn header(&mut self, kind: u8);
    fn versioned_header(&mut self, version: u8, kind: u8);
    fn u32(&mut self, v: u32);
    fn u64(&mut self, v: u64);
    fn flag(&mut self, present: bool);
    fn optional<T>(&mut self, v: Option<T>, f: impl FnOnce(&mut Self, T));
}

impl Writer for Vec<u8> {
    fn header(&mut self, kind: u8) {
        self.extend_from_slice(&[VERSION, kind]);
    }
    fn versioned_header(&mut self, version: u8, kind: u8) {
        self.extend_from_slice(&[version, kind]);
    }
    fn u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn flag(&mut self, present: bool) {
        self.push(u8::from(present));
    }
    fn optional<T>(&mut self, v: Option<T>, f: impl FnOnce(&mut Self, T)) {
        self.flag(v.is_some());
        if let Some(v) = v {
            f(self, v);
        }
    }
}
