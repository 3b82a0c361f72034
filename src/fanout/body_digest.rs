//! What a sent message keeps of its body (PROTOCOL.md 19.3): a 16-byte digest, so that a retry
//! answer can check that the app resends the body it sent, and not another under the same
//! message id.
//!
//! The digest is a GMAC under a key only this device holds, derived from its identity seed: a
//! universal hash, a few instructions per byte where SHA-256 costs as much as the pairwise
//! encryptions of a send. Only the device compares digests, and nobody without its key can
//! make two bodies collide. Entries sent before this form carry SHA-256 digests and keep them.
//! It must not decide what a mismatch means: the retry layer does.

use core::fmt;
use subtle::ConstantTimeEq;

use crate::labels;
use crate::primitives::{IdentityKeyPair, Secret, derive, gmac, sha256};

/// How a sent entry's digest was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DigestForm {
    /// GMAC under the device's body digest key (this release).
    Keyed,
    /// `SHA-256(body)[0..16]`, as entries journaled by earlier releases carry.
    Sha256,
}

/// The key a device digests its sent bodies under: HKDF-SHA256 of its identity seed, so it
/// needs no record of its own and is the same after every load.
#[derive(Clone)]
pub(crate) struct BodyDigestKey(Secret<32>);

impl BodyDigestKey {
    pub(crate) fn of(identity: &IdentityKeyPair) -> Self {
        Self(derive(None, identity.seed(), labels::BODY_DIGEST_KEY))
    }

    /// The digest of `body` in this release's form.
    pub(crate) fn digest(&self, body: &[u8]) -> [u8; 16] {
        gmac(self.0.as_bytes(), body)
    }

    /// Whether `body` has the digest `expected` of the form `form`, compared in constant time.
    pub(crate) fn matches(&self, body: &[u8], form: DigestForm, expected: &[u8; 16]) -> bool {
        let actual = match form {
            DigestForm::Keyed => self.digest(body),
            DigestForm::Sha256 => {
                let mut d = [0u8; 16];
                d.copy_from_slice(&sha256(&[body])[..16]);
                d
            }
        };
        actual.ct_eq(expected).into()
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
        assert!(k.matches(b"transfer $100", DigestForm::Keyed, &d));
        assert!(!k.matches(b"transfer $900", DigestForm::Keyed, &d));
        assert!(!k.matches(b"transfer $100", DigestForm::Sha256, &d));
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
        assert!(k.matches(b"old body", DigestForm::Sha256, &d));
        assert!(!k.matches(b"new body", DigestForm::Sha256, &d));
    }
}
