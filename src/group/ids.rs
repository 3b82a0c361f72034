//! Typed group identifiers.

use core::fmt;

/// Names a group. Chosen by the app (for example 32 random bytes at creation, or a hash of its
/// own group id); bound into every group message's AEAD associated data and signature.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(pub [u8; 32]);

impl fmt::Debug for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupId(")?;
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// A sender key's generation within one (group, sender): random, and different from the
/// generations the sender keeps (PROTOCOL.md 11), so a restored sender never repeats one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SenderKeyId(pub u32);
