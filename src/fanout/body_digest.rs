//! What a sent message keeps of its body (PROTOCOL.md 19.3): a 16-byte digest, so that a retry
//! answer can check that the app resends the body it sent, and not another under the same
//! message id.
//!
//! The digest is a GMAC under a key only this device holds, derived from its identity seed: a
//! universal hash, a few instructions per byte where SHA-256 costs as much as the pairwise
//! encryptions of a send. Only the device compares digests, and nobody without its key can
//! make two bodies collide. Entries sent before this form carry SHA-256 digests and keep them.
//! It must not decide what a mismatch means: the retry layer does.

use alloc::boxed::Box;
use core::fmt;
use subtle::ConstantTimeEq;

use crate::labels;
use crate::primitives::{GmacKey, IdentityKeyPair, derive, sha256};

/// What a sent entry keeps of its body, in the form it was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyDigest {
    /// GMAC under the device's body digest key (this release).
    Keyed([u8; 16]),
    /// `SHA-256(body)[0..16]`, as entries journaled by earlier releases carry.
    Sha256([u8; 16]),
    /// A call key, which keeps no body: stored as 16 zero bytes, and matches none.
    None,
}

impl BodyDigest {
    /// The 16 bytes stored.
    pub(crate) fn bytes(&self) -> [u8; 16] {
        match self {
            Self::Keyed(d) | Self::Sha256(d) => *d,
            Self::None => [0; 16],
        }
    }
}

/// The key a device digests its sent bodies under: HKDF-SHA256 of its identity seed, so it
/// needs no record of its own and is the same after every load. Boxed: the key schedule and
/// hash key it keeps (some 600 bytes) stay in one place when the device is moved by value,
/// rather than leaving unwiped copies behind (SECURITY.md, stack copies).
#[derive(Clone)]
pub(crate) struct BodyDigestKey(Box<GmacKey>);

impl BodyDigestKey {
    pub(crate) fn of(identity: &IdentityKeyPair) -> Self {
        let key = derive(None, identity.seed(), labels::BODY_DIGEST_KEY);
        Self(Box::new(GmacKey::new(&key)))
    }

    /// The digest of `body` in this release's form.
    pub(crate) fn digest(&self, body: &[u8]) -> BodyDigest {
        BodyDigest::Keyed(self.0.tag(body))
    }

    /// Whether `body` has the digest `expected`, made in `expected`'s form; compared in
    /// constant time.
    pub(crate) fn matches(&self, body: &[u8], expected: &BodyDigest) -> bool {
        let (actual, stored) = match expected {
            BodyDigest::Keyed(d) => (self.0.tag(body), d),
            BodyDigest::Sha256(d) => {
                let mut actual = [0u8; 16];
                actual.copy_from_slice(&sha256(&[body])[..16]);
                (actual, d)
            }
            BodyDigest::None => return false,
        };
        actual.ct_eq(stored).into()
    }
}

impl fmt::Debug for BodyDigestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BodyDigestKey(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::SeededRng;

    fn key(label: &str) -> BodyDigestKey {
        BodyDigestKey::of(&IdentityKeyPair::generate(&mut SeededRng::from_label(
            label,
        )))
    }

    #[test]
    fn a_body_matches_its_own_digest_only() {
        let k = key("body digest");
        let d = k.digest(b"transfer $100");
        assert!(k.matches(b"transfer $100", &d));
        assert!(!k.matches(b"transfer $900", &d));
        assert!(!k.matches(b"transfer $100", &BodyDigest::Sha256(d.bytes())));
        assert!(!k.matches(b"", &BodyDigest::None));
    }

    #[test]
    fn its_debug_form_shows_no_key() {
        assert_eq!(
            alloc::format!("{:?}", key("debug")),
            "BodyDigestKey(redacted)"
        );
    }

    #[test]
    fn the_digest_depends_on_the_device_key() {
        assert_ne!(
            key("device a").digest(b"same body"),
            key("device b").digest(b"same body")
        );
    }

    #[test]
    fn an_earlier_entry_is_checked_against_sha256() {
        let k = key("body digest");
        let mut d = [0u8; 16];
        d.copy_from_slice(&sha256(&[b"old body".as_slice()])[..16]);
        assert!(k.matches(b"old body", &BodyDigest::Sha256(d)));
        assert!(!k.matches(b"new body", &BodyDigest::Sha256(d)));
        assert!(!k.matches(b"old body", &BodyDigest::Keyed(d)));
    }
}
