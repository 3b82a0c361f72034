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
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KemPreKeyId(pub u32);
