//! Every HKDF info string and signature domain prefix, in one place so that no label can be
//! used for two purposes. PROTOCOL.md lists the same strings.

/// PQXDH: info for deriving the shared secret SK from the four DHs and the KEM secret.
pub(crate) const PQXDH: &[u8] = b"ratchetry v1 pqxdh";
/// Double Ratchet KDF_RK: info for root key ‖ chain key.
pub(crate) const ROOT: &[u8] = b"ratchetry v1 root";
/// Pairwise message key → AES-256-GCM key ‖ nonce.
pub(crate) const MESSAGE_KEYS: &[u8] = b"ratchetry v1 message keys";
/// Signature prefix of a signed prekey.
pub(crate) const SIGNED_PREKEY: &[u8] = b"ratchetry v1 signed prekey";
/// Signature prefix of an ML-KEM prekey (one-time or last-resort).
pub(crate) const KEM_PREKEY: &[u8] = b"ratchetry v1 kem prekey";

/// Sender-key message key → AES-256-GCM key ‖ nonce.
pub(crate) const GROUP_MESSAGE_KEYS: &[u8] = b"ratchetry v1 group message keys";
/// Signature prefix of a group message.
pub(crate) const GROUP_MESSAGE: &[u8] = b"ratchetry v1 group message";
/// Signature prefix of a signed device list.
pub(crate) const DEVICE_LIST: &[u8] = b"ratchetry v1 device list";
/// Signature prefix of a companion's consent to be listed under an account.
pub(crate) const DEVICE_BINDING: &[u8] = b"ratchetry v1 device binding";
/// Signature prefix of a link request.
pub(crate) const LINK_REQUEST: &[u8] = b"ratchetry v1 link request";
/// Signature prefix of a link confirmation.
pub(crate) const LINK_CONFIRMATION: &[u8] = b"ratchetry v1 link confirmation";
/// Hash prefix of the device-lists digest carried in envelopes.
pub(crate) const DEVICE_LISTS_DIGEST: &[u8] = b"ratchetry v1 device lists digest";
/// Hash prefix of a safety number fingerprint.
pub(crate) const SAFETY_NUMBER: &[u8] = b"ratchetry v1 safety number";
/// History sync secret → stream key ‖ nonce prefix.
pub(crate) const HISTORY_SYNC: &[u8] = b"ratchetry v1 history sync";
/// Hash prefix of a history stream's digest.
pub(crate) const HISTORY_DIGEST: &[u8] = b"ratchetry v1 history digest";
/// A call epoch secret → the next epoch's secret when a participant joins.
pub(crate) const CALL_RATCHET: &[u8] = b"ratchetry v1 call ratchet";
/// A call epoch secret → one participant's SRTP master key ‖ salt.
pub(crate) const CALL_SRTP: &[u8] = b"ratchetry v1 call srtp";
/// Associated-data prefix of sealed state.
pub(crate) const SEALED_STATE: &[u8] = b"ratchetry v1 sealed state";
/// Hash prefix of an envelope's id. The string predates the app-facing message id and is
/// kept, so read rings stored before still recognise their envelopes.
pub(crate) const ENVELOPE_ID: &[u8] = b"ratchetry v1 message id";
/// Hash prefix of a message's id, the same on every device (not an envelope's).
pub(crate) const MESSAGE_ID: &[u8] = b"ratchetry v1 app message id";
/// Signature prefix of a retry request.
pub(crate) const RETRY_REQUEST: &[u8] = b"ratchetry v1 retry request";
/// HKDF info of the key a device digests its sent bodies under (19.3).
pub(crate) const BODY_DIGEST_KEY: &[u8] = b"ratchetry v1 body digest key";
/// HKDF info prefix of a post-quantum ratchet epoch's secret (followed by `u32(epoch)`).
pub(crate) const PQ_EPOCH: &[u8] = b"ratchetry v1 pq epoch";
/// Hash prefix of a restore's prekey id spread (followed by `u64(restored_at)`, 19.4).
pub(crate) const RESTORE_SPREAD: &[u8] = b"ratchetry v1 restore spread";

#[cfg(test)]
pub(crate) const ALL: &[&[u8]] = &[
    RETRY_REQUEST,
    BODY_DIGEST_KEY,
    PQ_EPOCH,
    RESTORE_SPREAD,
    ENVELOPE_ID,
    MESSAGE_ID,
    SEALED_STATE,
    HISTORY_SYNC,
    HISTORY_DIGEST,
    CALL_RATCHET,
    CALL_SRTP,
    DEVICE_LIST,
    DEVICE_BINDING,
    LINK_REQUEST,
    LINK_CONFIRMATION,
    DEVICE_LISTS_DIGEST,
    SAFETY_NUMBER,
    PQXDH,
    KEM_PREKEY,
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
