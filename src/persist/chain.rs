//! How a state's units chain (PROTOCOL.md 19): each non-empty unit carries a fresh random
//! [`UnitTag`], and names the epoch and tag of the unit before it (its base). A store that holds
//! another epoch or another tag than a unit's base lacks a unit or holds another copy's, and
//! refuses it. It must not know what the records mean: the states' own modules encode them and
//! put the tag in their meta record.

use core::fmt;
use rand_core::CryptoRng;

use crate::error::DecodeError;
use crate::wire::Reader;

/// A unit's random tag: 16 bytes drawn when a non-empty unit is taken. Two live copies of one
/// state (loaded twice, or cloned) draw different tags for their units even where their epochs
/// agree, so a store that keeps the tag of the last unit written tells one copy's unit from
/// the other's.
///
/// Not a secret: it says nothing of the state, only which unit wrote it. A state whose records
/// predate tags (and a store that predates them) has [`UnitTag::NONE`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UnitTag([u8; 16]);

impl UnitTag {
    /// The tag of a state whose records predate tags: 16 zero bytes. A drawn tag is never it.
    pub const NONE: Self = Self([0; 16]);

    /// The tag stored as `bytes` (every 16 bytes are a tag).
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The 16 bytes to store.
    pub const fn to_bytes(self) -> [u8; 16] {
        self.0
    }

    /// The tag ending a meta record (PROTOCOL.md 19.1, 15.4), or `None` if the record ends
    /// before it (the form before tags, which a load rewrites).
    pub(crate) fn read_ending(r: &mut Reader<'_>) -> Result<Option<Self>, DecodeError> {
        if r.rest_len() == 0 {
            return Ok(None);
        }
        Ok(Some(Self(r.array()?)))
    }

    /// A fresh tag, never [`NONE`](Self::NONE): 16 zero bytes drawn (a 2^-128 event for a
    /// sound RNG) get their last bit set, rather than a loop that an RNG of zeros never leaves.
    fn draw(rng: &mut impl CryptoRng) -> Self {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        if bytes == [0; 16] {
            bytes[15] = 1;
        }
        Self(bytes)
    }
}

impl fmt::Debug for UnitTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnitTag(")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))?;
        f.write_str(")")
    }
}

/// Where a state's units have got to: the epoch and tag of the last unit taken, or of the
/// state as loaded. The next unit starts from it, and names it as its base, unless it replaces
/// all of a state that was made new or restored (no store holds it yet, or the restore is
/// meant to replace what a store holds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UnitChain {
    epoch: u64,
    tag: UnitTag,
    /// Whether a store may already hold the state at `(epoch, tag)`: a unit that replaces all
    /// names it then, so that a second copy loaded from the same bytes cannot write its whole
    /// state over what the first copy wrote since.
    based: bool,
}

/// What one unit carries of the chain: its base (`None` only if it replaces all of a state
/// made new or restored), whether it replaces all, and its own tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Link {
    pub(crate) base: Option<(u64, UnitTag)>,
    pub(crate) replaces_all: bool,
    pub(crate) tag: UnitTag,
}

impl UnitChain {
    /// The chain of a state made new: its first unit replaces all and starts from no base (a
    /// restored state gets there by [`restored`](Self::restored)).
    pub(crate) const WHOLE: Self = Self {
        epoch: 0,
        tag: UnitTag::NONE,
        based: false,
    };

    /// A state loaded at `epoch` whose meta record holds `tag`: what a store holding it holds.
    /// Its next unit starts there, even one that replaces all (a load of whole-state bytes).
    pub(crate) const fn at(epoch: u64, tag: UnitTag) -> Self {
        Self {
            epoch,
            tag,
            based: true,
        }
    }

    /// The chain of a state just restored from a backup: a unit that replaces all replaces
    /// whatever a store holds, so it names no base (one that does not replace all still
    /// starts where the chain is).
    pub(crate) fn restored(&mut self) {
        self.based = false;
    }

    /// The tag the state's meta record holds: after [`next`](Self::next), the new unit's.
    pub(crate) fn tag(&self) -> UnitTag {
        self.tag
    }

    /// Moves the chain to the next unit, which ends at `epoch`. An empty unit (neither
    /// `replaces_all` nor `has_records`) starts and ends where the chain is and draws nothing;
    /// any other draws its tag. Call before encoding the unit's meta record.
    pub(crate) fn next(
        &mut self,
        rng: &mut impl CryptoRng,
        epoch: u64,
        replaces_all: bool,
        has_records: bool,
    ) -> Link {
        let base = (self.based || !replaces_all).then_some((self.epoch, self.tag));
        if replaces_all || has_records {
            self.tag = UnitTag::draw(rng);
        }
        self.epoch = epoch;
        // Whatever this unit was, a store that wrote it holds the state where it ends.
        self.based = true;
        Link {
            base,
            replaces_all,
            tag: self.tag,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::SeededRng;

    /// A unit with records draws a tag and starts from the chain; an empty one draws nothing
    /// and starts and ends at the same place; one that replaces all has no base.
    #[test]
    fn units_chain_by_epoch_and_tag() {
        let rng = &mut SeededRng::from_label("unit chain");
        let mut chain = UnitChain::at(7, UnitTag::NONE);
        let first = chain.next(rng, 8, false, true);
        assert_eq!(first.base, Some((7, UnitTag::NONE)));
        assert_ne!(first.tag, UnitTag::NONE);
        assert_eq!(chain.tag(), first.tag);
        let empty = chain.next(rng, 8, false, false);
        assert_eq!(empty.base, Some((8, first.tag)));
        assert_eq!(empty.tag, first.tag);
        let second = chain.next(rng, 9, false, true);
        assert_eq!(second.base, Some((8, first.tag)));
        assert_ne!(second.tag, first.tag);
        assert!(!first.replaces_all && !empty.replaces_all && !second.replaces_all);
        // A loaded state's unit that replaces all still starts where the chain is.
        let whole = chain.next(rng, 10, true, true);
        assert_eq!(whole.base, Some((9, second.tag)));
        assert!(whole.replaces_all);
        assert_ne!(whole.tag, second.tag);
        assert_eq!(chain, UnitChain::at(10, whole.tag));
        // A restored one names no base; the unit after it starts where it ended.
        chain.restored();
        let restored = chain.next(rng, 11, true, true);
        assert_eq!(restored.base, None);
        assert!(restored.replaces_all);
        assert_eq!(
            chain.next(rng, 12, false, true).base,
            Some((11, restored.tag))
        );
        // Restored but not replacing all (loaded from records, then restored): it starts
        // where it was loaded.
        let mut loaded = UnitChain::at(3, whole.tag);
        loaded.restored();
        assert_eq!(loaded.next(rng, 4, false, true).base, Some((3, whole.tag)));
        // A unit that replaces all draws its tag even with no records in it; a new state's
        // names no base.
        let mut new = UnitChain::WHOLE;
        let bare = new.next(rng, 0, true, false);
        assert_ne!(bare.tag, UnitTag::NONE);
        assert_eq!(bare.base, None);
        assert_eq!(new, UnitChain::at(0, bare.tag));
    }

    /// An RNG that first yields zeros: the zero tag is never taken, and the draw is not
    /// repeated.
    #[test]
    fn a_drawn_tag_is_never_none() {
        struct ZerosFirst(u32, SeededRng);
        impl rand_core::TryRng for ZerosFirst {
            type Error = core::convert::Infallible;
            fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
                self.1.try_next_u32()
            }
            fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
                self.1.try_next_u64()
            }
            fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
                if self.0 > 0 {
                    self.0 -= 1;
                    dst.fill(0);
                    return Ok(());
                }
                self.1.try_fill_bytes(dst)
            }
        }
        impl rand_core::TryCryptoRng for ZerosFirst {}
        let rng = &mut ZerosFirst(2, SeededRng::from_label("zeros first"));
        let tag = UnitTag::draw(rng);
        let mut one = [0; 16];
        one[15] = 1;
        assert_eq!(tag, UnitTag::from_bytes(one));
        assert_eq!(rng.0, 1, "one draw");
        // A draw that is not all zeros is taken as it is.
        let drawn = UnitTag::draw(&mut ZerosFirst(0, SeededRng::from_label("zeros first")));
        let mut again = [0u8; 16];
        rand_core::Rng::fill_bytes(&mut SeededRng::from_label("zeros first"), &mut again);
        assert_eq!(drawn, UnitTag::from_bytes(again));
    }

    #[test]
    fn a_tag_round_trips_and_shows_in_hex() {
        let tag = UnitTag::from_bytes([0xab; 16]);
        assert_eq!(UnitTag::from_bytes(tag.to_bytes()), tag);
        assert_eq!(
            alloc::format!("{tag:?}"),
            "UnitTag(abababababababababababababababab)"
        );
    }
}
