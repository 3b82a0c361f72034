//! What a relay's prekey pools remember of an upload they accepted: the range of ids of each
//! kind it held, so that its keys uploaded again (an app retrying an upload whose answer it
//! lost, alone or beside newer keys) are refused once they were handed out. It owns that
//! record and its 16-byte form; the pools (`prekeys.rs`) decide what to remember and check.

use crate::error::DecodeError;
use crate::wire::Reader;
use crate::x3dh::OneTimePreKeys;

/// The ids of each kind one accepted upload held, as inclusive ranges (`None`: none of that
/// kind). A device issues each kind's ids in increasing order and never twice, so another
/// upload's keys (newer ones, or a restored device's, whose ids skip far ahead) lie outside
/// these ranges, and an id inside them was in this upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AcceptedUpload {
    one_time: Option<(u32, u32)>,
    kem: Option<(u32, u32)>,
}

impl AcceptedUpload {
    /// Bytes of [`to_bytes`](Self::to_bytes).
    pub const LEN: usize = 16;

    /// The ranges of `upload`, or `None` for an upload without keys.
    pub(crate) fn of(upload: &OneTimePreKeys) -> Option<Self> {
        fn range(ids: impl Iterator<Item = u32> + Clone) -> Option<(u32, u32)> {
            Some((ids.clone().min()?, ids.max()?))
        }
        let one_time = range(upload.keys().iter().map(|k| k.id.0));
        let kem = range(upload.kem_keys().iter().map(|k| k.id.0));
        (one_time.is_some() || kem.is_some()).then_some(Self { one_time, kem })
    }

    /// Whether the upload held one-time prekey id `id` (by its range).
    pub(crate) fn held_one_time(&self, id: u32) -> bool {
        self.one_time
            .is_some_and(|(lo, hi)| (lo..=hi).contains(&id))
    }

    /// Whether the upload held one-time ML-KEM prekey id `id` (by its range).
    pub(crate) fn held_kem(&self, id: u32) -> bool {
        self.kem.is_some_and(|(lo, hi)| (lo..=hi).contains(&id))
    }

    /// `BE32(lo) ‖ BE32(hi)` for the one-time prekeys, then the same for the ML-KEM ones; a
    /// kind the upload did not hold is `0 ‖ 0` (ids start at 1).
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        for (at, range) in [(0, self.one_time), (8, self.kem)] {
            let (lo, hi) = range.unwrap_or((0, 0));
            out[at..at + 4].copy_from_slice(&lo.to_be_bytes());
            out[at + 4..at + 8].copy_from_slice(&hi.to_be_bytes());
        }
        out
    }

    /// Parses [`to_bytes`](Self::to_bytes)'s form: exactly 16 bytes (`Truncated`,
    /// `TrailingBytes`), each range `0 ‖ 0` or `1 <= lo <= hi` (else `InvalidValue`: one
    /// encoding each), not both empty.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let mut range = || match (r.u32()?, r.u32()?) {
            (0, 0) => Ok(None),
            (lo, hi) if lo >= 1 && lo <= hi => Ok(Some((lo, hi))),
            _ => Err(DecodeError::InvalidValue),
        };
        let (one_time, kem) = (range()?, range()?);
        r.finish()?;
        if one_time.is_none() && kem.is_none() {
            return Err(DecodeError::InvalidValue);
        }
        Ok(Self { one_time, kem })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_encoding_each() {
        let a = AcceptedUpload {
            one_time: Some((5, 9)),
            kem: None,
        };
        assert_eq!(AcceptedUpload::from_bytes(&a.to_bytes()), Ok(a));
        let both = AcceptedUpload {
            one_time: Some((1, 1)),
            kem: Some((0x8000_0001, u32::MAX)),
        };
        assert_eq!(AcceptedUpload::from_bytes(&both.to_bytes()), Ok(both));
        let mut bad = a.to_bytes();
        bad[3] = 10; // lo 10 > hi 9
        assert_eq!(
            AcceptedUpload::from_bytes(&bad),
            Err(DecodeError::InvalidValue)
        );
        let mut zero_lo = a.to_bytes();
        zero_lo[3] = 0; // lo 0, hi 9
        assert_eq!(
            AcceptedUpload::from_bytes(&zero_lo),
            Err(DecodeError::InvalidValue)
        );
        assert_eq!(
            AcceptedUpload::from_bytes(&[0; 16]),
            Err(DecodeError::InvalidValue)
        );
        assert_eq!(
            AcceptedUpload::from_bytes(&[0; 15]),
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            AcceptedUpload::from_bytes(&[0; 17]),
            Err(DecodeError::TrailingBytes)
        );
        assert!(a.held_one_time(5) && a.held_one_time(9) && !a.held_one_time(4));
        assert!(!a.held_one_time(10) && !a.held_kem(5));
        assert!(both.held_kem(u32::MAX) && !both.held_kem(0x8000_0000));
    }
}
