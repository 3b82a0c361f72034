//! Internal values the protocol vectors check: KDF outputs and a session's current keys.

/// The crate's own KDFs, exposed for the protocol vectors (`kdf-chains.json`).
pub mod kdf {
    use crate::primitives::Secret;
    use crate::ratchet::keys::{ChainKey, MessageKey, RootKey};

    /// KDF_RK: (new root key, chain key).
    pub fn root(root_key: [u8; 32], dh_output: [u8; 32]) -> ([u8; 32], [u8; 32]) {
        let (rk, ck) =
            RootKey(Secret::from_bytes(root_key)).ratchet(&Secret::from_bytes(dh_output));
        (*rk.0.as_bytes(), *ck.0.as_bytes())
    }

    /// KDF_CK: (message key, next chain key).
    pub fn chain(chain_key: [u8; 32]) -> ([u8; 32], [u8; 32]) {
        let (mk, ck) = ChainKey(Secret::from_bytes(chain_key)).step();
        (*mk.0.as_bytes(), *ck.0.as_bytes())
    }

    /// A pairwise message key's AES-256-GCM key and nonce for a header salt.
    pub fn message_keys(message_key: [u8; 32], salt: [u8; 16]) -> ([u8; 32], [u8; 12]) {
        MessageKey(Secret::from_bytes(message_key))
            .pairwise(&salt)
            .key_and_nonce()
    }
}

/// A session's current keys, for the protocol vectors (`ratchet-transcript.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKeys {
    /// The root key.
    pub root_key: [u8; 32],
    /// The current sending ratchet public key.
    pub ratchet_public: [u8; 32],
    /// The sending chain key and next message number, if a sending chain exists.
    pub sending: Option<([u8; 32], u32)>,
    /// The receiving chain's ratchet key, chain key and next message number.
    pub receiving: Option<([u8; 32], [u8; 32], u32)>,
}

/// Reads a session's current keys.
pub fn session_keys(session: &crate::Session) -> SessionKeys {
    let s = &*session.0;
    SessionKeys {
        root_key: *s.root.0.as_bytes(),
        ratchet_public: s.self_ratchet.public().to_bytes(),
        sending: s.send.as_ref().map(|c| (*c.key.0.as_bytes(), c.next)),
        receiving: s
            .recv
            .as_ref()
            .map(|c| (c.ratchet_key.to_bytes(), *c.key.0.as_bytes(), c.next)),
    }
}

/// Signs a device list with arbitrary entries, bindings included: what a rogue account key
/// holder can produce. Each entry is (id, identity key, linked at, expires at, binding).
pub fn sign_device_list(
    account: &crate::devices::AccountKeyPair,
    version: u64,
    issued_at: crate::Timestamp,
    entries: &[(
        crate::devices::DeviceId,
        crate::IdentityKey,
        crate::Timestamp,
        Option<crate::Timestamp>,
        crate::Signature,
    )],
) -> crate::devices::SignedDeviceList {
    let entries = entries
        .iter()
        .map(
            |(id, identity, linked_at, expires_at, binding)| crate::devices::DeviceEntry {
                id: *id,
                identity: *identity,
                linked_at: *linked_at,
                expires_at: *expires_at,
                binding: *binding,
            },
        )
        .collect();
    crate::devices::SignedDeviceList::sign(account, version, issued_at, entries)
}

/// A device's consent to be listed under `account`, as a genuine device signs it.
pub fn device_binding(
    identity: &crate::IdentityKeyPair,
    account: &crate::devices::AccountKey,
) -> crate::Signature {
    crate::devices::binding(identity, account)
}

/// What a malicious peer with a pairwise session can do: seal any plaintext to `to` as a
/// payload of this device, in a genuine envelope.
pub fn seal_raw_payload(
    device: &mut crate::fanout::Device,
    rng: &mut impl rand_core::CryptoRng,
    now: crate::Timestamp,
    to: crate::devices::DeviceAddress,
    plaintext: &[u8],
) -> crate::Result<alloc::vec::Vec<u8>> {
    device.seal_raw(rng, now, to, plaintext)
}

/// A group-resend payload's plaintext: `0x02 0x0c 0x07 ‖ reference ‖ group ‖ body`.
pub fn group_resend_payload(
    reference: [u8; 16],
    group: crate::group::GroupId,
    body: &[u8],
) -> alloc::vec::Vec<u8> {
    let mut out = alloc::vec![crate::wire::VERSION, 0x0c, 0x07];
    out.extend_from_slice(&reference);
    out.extend_from_slice(&group.0);
    out.extend_from_slice(body);
    out
}
