//! Typed prekey ids, so a signed prekey id is never passed where a one-time prekey id belongs.

/// Names a signed prekey of one device. Assigned by [`PreKeyStore`](super::PreKeyStore) in
/// increasing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SignedPreKeyId(pub u32);

/// Names a one-time prekey of one device. Assigned by [`PreKeyStore`](super::PreKeyStore) in
/// increasing order and never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OneTimePreKeyId(pub u32);

/// Names an ML-KEM prekey of one device, one-time or last-resort (they share one sequence).
/// Assigned by [`PreKeyStore`](super::PreKeyStore) in increasing order and never reused.
///
/// Bit 31 says the device runs the post-quantum ratchet: every id a store assigns has it (from
/// `0x8000_0001`; a store from a release before the ratchet, whose keys lack it, moves there at
/// its next rotation), and the key's signature covers the id, so a server cannot clear it. A
/// session started with such a key runs the ratchet on both sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KemPreKeyId(pub u32);

impl KemPreKeyId {
    /// The bit that marks a key of a device running the post-quantum ratchet.
    pub const PQ_RATCHET: u32 = 0x8000_0000;

    /// Whether the key's device runs the post-quantum ratchet (bit 31).
    pub fn pq_ratchet(self) -> bool {
        self.0 & Self::PQ_RATCHET != 0
    }
}
