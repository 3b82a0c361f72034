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

/// One entry of a hand-made list: (id, identity key, linked at, expires at, binding).
pub type ListEntry = (
    crate::devices::DeviceId,
    crate::IdentityKey,
    crate::Timestamp,
    Option<crate::Timestamp>,
    crate::Signature,
);

/// Signs a device list with arbitrary entries, bindings included, under the default
/// [`AccountPolicy`](crate::devices::AccountPolicy): what a rogue account key holder can
/// produce.
pub fn sign_device_list(
    account: &crate::devices::AccountKeyPair,
    version: u64,
    issued_at: crate::Timestamp,
    entries: &[ListEntry],
) -> crate::devices::SignedDeviceList {
    sign_device_list_under(account, version, issued_at, Default::default(), entries)
}

/// Like [`sign_device_list`], under any signed `policy`.
pub fn sign_device_list_under(
    account: &crate::devices::AccountKeyPair,
    version: u64,
    issued_at: crate::Timestamp,
    policy: crate::devices::AccountPolicy,
    entries: &[ListEntry],
) -> crate::devices::SignedDeviceList {
    crate::devices::SignedDeviceList::sign(
        account,
        version,
        issued_at,
        policy,
        list_entries(entries),
    )
}

/// Signs a list of the old form (PROTOCOL.md 23: no policy), as a primary of the previous
/// release did.
pub fn sign_legacy_device_list(
    account: &crate::devices::AccountKeyPair,
    version: u64,
    issued_at: crate::Timestamp,
    entries: &[ListEntry],
) -> crate::devices::SignedDeviceList {
    crate::devices::SignedDeviceList::sign_legacy(
        account,
        version,
        issued_at,
        list_entries(entries),
    )
}

fn list_entries(entries: &[ListEntry]) -> alloc::vec::Vec<crate::devices::DeviceEntry> {
    entries
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
        .collect()
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

/// The primary's current list signed again in the old form (PROTOCOL.md 23: no policy; same
/// version, issue time and entries), as the previous release signed it.
pub fn legacy_device_list(primary: &crate::devices::Primary) -> crate::devices::SignedDeviceList {
    primary.legacy_list()
}

/// Every record of the primary's current state (PROTOCOL.md 15.4), as the unit that would
/// replace the stored ones; the primary's own pending changes are left as they are.
pub fn primary_records(primary: &crate::devices::Primary) -> crate::devices::PrimaryChanges {
    primary.all_records()
}

/// The primary's state bytes with its list in the old form: state the previous release wrote.
pub fn legacy_primary_state(
    primary: &crate::devices::Primary,
) -> zeroize::Zeroizing<alloc::vec::Vec<u8>> {
    primary.legacy_state()
}

/// The keys of `device`'s current session with `peer`, if it holds one: two devices use the
/// same session when, after a round trip, their current sessions' root keys agree.
pub fn current_session_keys(
    device: &crate::fanout::Device,
    peer: &crate::devices::DeviceAddress,
) -> Option<SessionKeys> {
    device
        .sessions
        .get(peer)
        .and_then(|set| set.current())
        .map(session_keys)
}

/// The post-quantum epochs a session's current sending and receiving chains mixed, for the
/// healing test (`tests/pq_session.rs`).
pub fn pq_chain_epochs(session: &crate::Session) -> Option<(u32, u32)> {
    session
        .0
        .pq
        .as_ref()
        .map(|pq| (pq.send_chain, pq.recv_chain))
}

/// Drops the post-quantum ratchet from a new initiating session: what an initiator from
/// before the ratchet holds after starting a session with a device that runs it.
pub fn without_pq_ratchet(session: &mut crate::Session) {
    session.0.pq = None;
}

/// Names `device`'s ML-KEM prekeys as a release from before the post-quantum ratchet did:
/// ids from 1 without bit 31 (each signed again), so its bundles start sessions that run
/// without the ratchet, and so do the keys it generates until its next rotation, as after an
/// upgrade. Draws nothing: a generator's stream, and so its vectors, stay what they were
/// before the ratchet. Returns `upload` (what [`Device::new`](crate::fanout::Device::new)
/// handed back) with its ML-KEM keys named so.
pub fn before_pq_ratchet(
    device: &mut crate::fanout::Device,
    upload: &crate::x3dh::OneTimePreKeys,
) -> crate::x3dh::OneTimePreKeys {
    crate::x3dh::OneTimePreKeys::new(upload.keys().to_vec(), device.before_pq_ratchet())
}

/// [`before_pq_ratchet`] for a bare prekey store (`identity` is its device's).
pub fn store_before_pq_ratchet(store: &mut crate::PreKeyStore, identity: &crate::IdentityKeyPair) {
    store.before_pq_ratchet(identity);
}

/// Puts `device`'s current session with `to` at the last message number of its sending chain
/// (as after 2^32 − 1 messages on it). Returns false if there is no such chain.
pub fn exhaust_sending_chain(
    device: &mut crate::fanout::Device,
    to: &crate::devices::DeviceAddress,
) -> bool {
    let send = device
        .sessions
        .get_mut(to)
        .and_then(|set| set.current_mut())
        .and_then(|s| s.0.send.as_mut());
    send.map(|c| c.next = u32::MAX).is_some()
}

/// Drops the ML-KEM ciphertext from `device`'s current session with `to`, which still awaits
/// a reply: what a store that lost the ciphertext's record would load. Returns false if the
/// session does not await a reply.
pub fn drop_pending_kem(
    device: &mut crate::fanout::Device,
    to: &crate::devices::DeviceAddress,
) -> bool {
    let session = device
        .sessions
        .get_mut(to)
        .and_then(|set| set.current_mut());
    match session {
        Some(s) if s.0.awaiting_reply => s.0.pending_kem.take().is_some(),
        _ => false,
    }
}

/// Puts `device`'s sender key for `group` at its last iteration. Returns false if it has none.
pub fn exhaust_sender_key(
    device: &mut crate::fanout::Device,
    group: crate::group::GroupId,
) -> bool {
    let outbound = device
        .groups
        .get_mut(&group)
        .and_then(|g| g.outbound.as_mut());
    outbound.map(|o| o.session.exhaust()).is_some()
}

/// Fills `device`'s read ring with envelope ids it never received, as a device in use holds
/// it (2,000 ids, the oldest dropped at each read): the instruction counts of a receive
/// search a full ring, as the wall-clock benches' receives do after their first thousands.
pub fn fill_read_ring(device: &mut crate::fanout::Device) {
    for i in 0..crate::fanout::MAX_REMEMBERED_MESSAGE_IDS as u32 {
        // The id of a byte string that is no envelope: a hash, as real ids are.
        device.remember_read(crate::fanout::EnvelopeId::of(&i.to_be_bytes()));
    }
}
