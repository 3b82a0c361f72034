//! Internal values the protocol vectors need that the public API does not show (filled in as
//! the vectors need them).
