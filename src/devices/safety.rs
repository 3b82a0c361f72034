//! Safety numbers (PROTOCOL.md, "Safety numbers"): what two people compare to know they see
//! each other's real account keys. Computed from the two account identity keys only, so
//! linking or unlinking devices never changes them; a new account key does.

use core::fmt;
use subtle::ConstantTimeEq;

use super::AccountKey;
use crate::labels;
use crate::primitives::sha512;

/// SHA-512 iterations per fingerprint: makes finding a key with a chosen fingerprint costly.
pub(crate) const SAFETY_NUMBER_ITERATIONS: u32 = 5200;
/// Version byte of the scannable form.
const SCANNABLE_VERSION: u8 = 1;

/// The safety number of a conversation between two accounts. Both sides compute the same one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SafetyNumber {
    /// Fingerprints ordered by account key bytes, lower first, so both sides agree.
    first: [u8; 32],
    second: [u8; 32],
}

impl SafetyNumber {
    /// The safety number between `ours` and `theirs` (order does not matter).
    pub fn new(ours: &AccountKey, theirs: &AccountKey) -> Self {
        let (a, b) = if ours.as_bytes() <= theirs.as_bytes() {
            (ours, theirs)
        } else {
            (theirs, ours)
        };
        Self {
            first: fingerprint(a),
            second: fingerprint(b),
        }
    }

    /// The 60 digits people read aloud: 12 groups of 5.
    pub fn digits(&self) -> [u8; 60] {
        let mut out = [b'0'; 60];
        for (half, fp) in [&self.first, &self.second].into_iter().enumerate() {
            for group in 0..6 {
                let chunk = &fp[group * 5..group * 5 + 5];
                let mut v = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)) % 100_000;
                for d in (0..5).rev() {
                    out[half * 30 + group * 5 + d] = b'0' + (v % 10) as u8;
                    v /= 10;
                }
            }
        }
        out
    }

    /// The form put in a QR code: version ‖ first fingerprint ‖ second fingerprint.
    pub fn scannable(&self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out[0] = SCANNABLE_VERSION;
        out[1..33].copy_from_slice(&self.first);
        out[33..].copy_from_slice(&self.second);
        out
    }

    /// Whether a scanned code matches this safety number (constant time).
    pub fn matches_scanned(&self, scanned: &[u8]) -> bool {
        scanned.len() == 65 && bool::from(self.scannable().ct_eq(scanned))
    }
}

impl fmt::Display for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.digits();
        for (i, group) in digits.chunks(5).enumerate() {
            if i > 0 {
                f.write_str(if i % 4 == 0 { "\n" } else { " " })?;
            }
            for d in group {
                write!(f, "{}", char::from(*d))?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SafetyNumber({self})")
    }
}

/// h₀ = SHA-512(label ‖ key); hᵢ₊₁ = SHA-512(hᵢ ‖ key); the fingerprint is the first 32 bytes
/// of h after the last iteration.
fn fingerprint(key: &AccountKey) -> [u8; 32] {
    let mut h = sha512(&[labels::SAFETY_NUMBER, key.as_bytes()]);
    for _ in 1..SAFETY_NUMBER_ITERATIONS {
        h = sha512(&[&h, key.as_bytes()]);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&h[..32]);
    out
}
