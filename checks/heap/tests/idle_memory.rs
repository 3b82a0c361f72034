//! Memory per idle session (issue 10's target: at most 1 KB): a device loaded from the records
//! of 2,000 remote sessions against one with 1,000, the difference per session. It counts
//! everything a session brings: its state, its place in the session map, and its share of its
//! account's device list (accounts of 4 devices). One test, so no other test's allocations
//! interleave.

use ratchetry::Timestamp;
use ratchetry::testing::SeededRng;
use ratchetry::testing::scale::AddressBook;
use ratchetry_heap_checks::{Scanning, live_bytes};

#[global_allocator]
static ALLOC: Scanning = Scanning;

const NOW: Timestamp = Timestamp(1_790_000_000_000);
const LIMIT: usize = 1024;

/// Heap bytes a device loaded from `book`'s records holds.
fn loaded_size(book: &AddressBook) -> usize {
    let before = live_bytes();
    let device = book.load();
    let held = live_bytes() - before;
    drop(device);
    held
}

#[test]
fn an_idle_session_holds_at_most_a_kilobyte() {
    let rng = &mut SeededRng::from_label("idle memory");
    let small = AddressBook::new(rng, NOW, 1000, 0);
    let large = AddressBook::new(rng, NOW, 2000, 0);
    let added = large.accounts.len() - small.accounts.len();
    let per_session = (loaded_size(&large) - loaded_size(&small)) / (4 * added);
    println!("memory per idle session: {per_session} bytes");
    assert!(
        per_session <= LIMIT,
        "an idle session holds {per_session} bytes (limit {LIMIT})"
    );
    // The measure sees sessions at all: a device with sessions holds more than one without.
    assert!(per_session > 100, "{per_session} bytes is not a session");
}
