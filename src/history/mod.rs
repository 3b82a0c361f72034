//! History sync to a newly linked companion (PROTOCOL.md, "History sync"): the primary seals
//! an arbitrary-size history once, under a fresh key, as a stream of chunks (STREAM-style: each
//! chunk's nonce carries its counter and a last-chunk flag, so truncation, reordering,
//! duplication and splicing fail); the key, length and digest travel to the companion in a
//! [`HistoryOffer`] through its pairwise session. Both sides hold at most one chunk in memory.
//!
//! It owns the chunk format, the offer, the incremental sealer and opener. It must not know
//! sessions or devices: the fanout layer carries the offer.
//!
//! # Example
//!
//! ```
//! # include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/docs/doctest_setup.rs"));
//! use ratchetry::history::{HistoryOpener, HistorySealer};
//! # fn main() -> Result<(), ratchetry::Error> {
//! # let (mut rng, now, mut server) = (UnwrapErr(SysRng), Timestamp(1_790_000_000_000), Server::default());
//! # let (mut primary, mut phone) = server.account(&mut rng, now)?;
//! let mut desktop = server.link(&mut rng, now, &mut primary)?; // a newly linked companion
//! // The phone's own device follows the list that now names the desktop.
//! phone.update_device_list(now, &primary.account(), server.list(&primary.account()))?;
//! // The phone seals its history once, chunk by chunk, under a fresh key...
//! let history = vec![42u8; 150_000]; // the app's export of its messages
//! let mut sealer = HistorySealer::new(&mut rng);
//! let mut chunks = sealer.push(&history);
//! let (last, offer) = sealer.finish();
//! chunks.extend(last); // encrypted: upload them anywhere
//! // ...and sends the key to the companion through their pairwise session.
//! let to = desktop.address();
//! let outbox = server.ready(&mut phone, &mut rng, now, |d, rng| {
//!     d.send_history_offer(rng, now, to, &offer)
//! })?;
//! let received = server.receive(&mut desktop, now, &envelope_to(&outbox, to))?;
//! let Received::HistoryOffer { offer, .. } = received else { unreachable!() };
//! let mut opener = HistoryOpener::new(&offer);
//! let mut restored = Vec::new();
//! for chunk in &chunks {
//!     restored.extend(opener.push(chunk)?);
//! }
//! opener.finish()?; // every chunk arrived; length and digest match the offer
//! assert_eq!(restored, history);
//! # Ok(())
//! # }
//! ```

mod offer;
mod open;
mod seal;

pub use offer::{HistoryOffer, MAX_HISTORY_APP_DATA};
pub use open::HistoryOpener;
pub use seal::HistorySealer;

/// Plaintext bytes per chunk (the last chunk may be shorter, even empty).
pub const CHUNK_SIZE: usize = 64 * 1024;

use crate::labels;
use crate::primitives::{Secret, StreamKey, derive};

/// The stream key and nonce prefix of a history secret.
pub(crate) fn stream_key(secret: &Secret<32>) -> (StreamKey, [u8; 3]) {
    let okm: Secret<35> = derive(Some(&[0u8; 32]), secret.as_bytes(), labels::HISTORY_SYNC);
    let mut key = Secret::from_bytes([0u8; 32]);
    key.as_mut_bytes().copy_from_slice(&okm.as_bytes()[..32]);
    let mut prefix = [0u8; 3];
    prefix.copy_from_slice(&okm.as_bytes()[32..]);
    (StreamKey::new(&key), prefix)
}

/// prefix (3) ‖ u64(counter) ‖ flag.
pub(crate) fn nonce(prefix: &[u8; 3], counter: u64, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..3].copy_from_slice(prefix);
    n[3..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    n
}

/// The two header bytes of a chunk, also its AEAD associated data.
pub(crate) const CHUNK_HEADER: [u8; 2] = [crate::wire::VERSION, crate::wire::kind::HISTORY_CHUNK];
