//! A count read from stored state reserves memory only for the entries the bytes left could
//! hold, whatever it declares: a prekey store whose count of retired ML-KEM prekeys claims
//! billions reserves one entry's worth per stored entry's length of input, and nothing for input
//! too short to hold one. One test, so no other test's allocations interleave.

use ratchetry::testing::SeededRng;
use ratchetry::{IdentityKeyPair, PreKeyStore, Timestamp};
use ratchetry_heap_checks::{Scanning, allocated_bytes_here};

#[global_allocator]
static ALLOC: Scanning = Scanning;

const NOW: Timestamp = Timestamp(1_790_000_000_000);

/// Heap bytes requested (freed again or not) while `bytes` fail to load as a prekey store.
fn reserved_by(bytes: &[u8]) -> usize {
    let before = allocated_bytes_here();
    let loaded = PreKeyStore::from_bytes(bytes);
    let reserved = allocated_bytes_here() - before;
    assert!(loaded.is_err(), "crafted state loaded");
    reserved
}

#[test]
fn a_hostile_kem_prekey_count_reserves_no_more_than_the_input_can_hold() {
    let rng = &mut SeededRng::from_label("hostile counts");
    let identity = IdentityKeyPair::generate(rng);
    // A store with no one-time and no retired keys ends with four zero counts: retired ML-KEM
    // prekeys, one-time prekeys, one-time ML-KEM prekeys, base keys seen under the signed
    // prekey.
    let mut store = PreKeyStore::new(rng, &identity, NOW, Default::default());
    let bare = store.to_bytes();
    assert_eq!(bare[bare.len() - 16..], [0; 16]);
    // One stored ML-KEM prekey's length: what one more one-time key adds (retired and
    // one-time ones are stored alike).
    store.generate_one_time_kem_prekeys(rng, &identity, NOW, 1);
    let entry = store.to_bytes().len() - bare.len();

    // The state up to the retired count, allowing the most retired keys (the bound is the
    // signed-prekey count, first in the state after the header, read from the same bytes),
    // then `count` and `rest` bytes of entries that stop short.
    let state = |count: u32, rest: usize| {
        let mut bytes = bare[..bare.len() - 16].to_vec();
        bytes[2..6].copy_from_slice(&u32::MAX.to_be_bytes());
        bytes.extend_from_slice(&count.to_be_bytes());
        bytes.extend((0..rest).map(|i| i as u8));
        bytes
    };
    let hostile = u32::MAX - 1;
    let base = reserved_by(&state(hostile, 0));
    // Reading one entry: its own allocations and its room among the retired keys.
    let one = reserved_by(&state(hostile, entry)) - base;
    assert!(
        one > 0,
        "reading an entry reserved nothing: the measure sees nothing"
    );
    // Input holding `held` whole entries: exactly their worth, reserved once (room for more
    // would be reserved for the count's sake; room for fewer would be reserved again).
    for held in 2..=20 {
        let reserved = reserved_by(&state(hostile, held * entry)) - base;
        assert_eq!(
            reserved,
            held * one,
            "{held} entries after a count of {hostile} reserved {reserved} bytes, \
             not {held} entries' worth ({one} each)"
        );
    }
    // Input that stops within an entry: the same as for a count just beyond what it holds.
    for held in [0, 1, 17, 20] {
        let rest = held * entry + entry - 1;
        let just_beyond = u32::try_from(held).unwrap() + 1;
        assert_eq!(
            reserved_by(&state(hostile, rest)),
            reserved_by(&state(just_beyond, rest)),
            "{rest} bytes: a count of {hostile} reserved more than one of {just_beyond}"
        );
    }
}
