//! Every HKDF info string and signature domain prefix, in one place so that no label can be
//! used for two purposes. PROTOCOL.md lists the same strings.

/// X3DH: info for deriving the shared secret SK.
pub(crate) const X3DH: &[u8] = b"ratchetry v1 x3dh";
/// Double Ratchet KDF_RK: info for root key ‖ chain key.
pub(crate) const ROOT: &[u8] = b"ratchetry v1 root";
/// Pairwise message key → AES-256-GCM key ‖ nonce.
pub(crate) const MESSAGE_KEYS: &[u8] = b"ratchetry v1 message keys";
/// Signature prefix of a signed prekey.
pub(crate) const SIGNED_PREKEY: &[u8] = b"ratchetry v1 signed prekey";

/// Sender-key message key → AES-256-GCM key ‖ nonce.
pub(crate) const GROUP_MESSAGE_KEYS: &[u8] = b"ratchetry v1 group message keys";
/// Signature prefix of a group message.
pub(crate) const GROUP_MESSAGE: &[u8] = b"ratchetry v1 group message";

#[cfg(test)]
pub(crate) const ALL: &[&[u8]] = &[
    X3DH,
    ROOT,
    MESSAGE_KEYS,
    SIGNED_PREKEY,
    GROUP_MESSAGE_KEYS,
    GROUP_MESSAGE,
];

#[cfg(test)]
mod tests {
    #[test]
    fn labels_are_distinct_and_prefixed() {
        for (i, a) in super::ALL.iter().enumerate() {
            assert!(a.starts_with(b"ratchetry v1 "));
            for b in &super::ALL[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
