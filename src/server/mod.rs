//! What a relay runs, without I/O: the coverage check that refuses a batch encrypted under a
//! stale device list, and each device's published prekeys (uploads verified against the
//! device's listed identity key, bundles assembled with each one-time key handed out once).
//!
//! The relay is the adversary this crate defends against; these helpers serve an honest one,
//! so that a stale sender is told to fetch a newer list instead of silently leaving a new
//! device out, and a bundle it serves never fails at the recipient. Nothing a device accepts
//! depends on them. It builds on devices (lists, coverage) and x3dh (bundles, uploads); it must
//! not know sessions, groups, fanout or any secret.

mod accepted;
mod coverage;
mod prekeys;

pub use accepted::AcceptedUpload;
pub use coverage::{EXPIRY_TOLERANCE_MS, check_coverage};
pub use prekeys::{MAX_POOLED_PREKEYS, PublishedPreKeys, REMEMBERED_UPLOADS};
