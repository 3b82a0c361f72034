//! A relay's attacks on the header's extension field (PROTOCOL.md 8.4, 8.6, 25.4 to 25.6):
//! downgrades in both directions (ratchet and pre-key messages), every value of the field's
//! first byte on genuine messages, truncation at every length, replays and late deliveries in a
//! lossy conversation stored and loaded at every step, and a relay that drops by chunk kind.
//! A side restored from a stale copy: `stale_restore.rs`.

mod pairs;

use pairs::{FIELD, Prng, accept, chunk_kind, field_at, pair, recv, start};
use ratchetry::testing::SeededRng;
use ratchetry::{
    DecodeError, Error, IdentityKeyPair, IncomingMessage, PreKeyStore, RatchetError, Session,
};

/// Receives `wire`, asserting that a refusal changes nothing.
fn recv_checked(s: &mut Session, wire: &[u8]) -> Result<Vec<u8>, Error> {
    let before = s.to_bytes();
    let r = recv(s, wire);
    if r.is_err() {
        assert_eq!(*before, *s.to_bytes(), "a refusal changed the session");
    }
    r
}

/// The extension field's length in a genuine message.
fn field_len(wire: &[u8]) -> usize {
    if wire[field_at(wire)] & 0xc0 == 0xc0 {
        34
    } else {
        2
    }
}

/// `wire` with its extension field replaced by `field`.
fn with_field(wire: &[u8], field: &[u8]) -> Vec<u8> {
    let at = field_at(wire);
    let mut out = wire[..at].to_vec();
    out.extend_from_slice(field);
    out.extend_from_slice(&wire[at + field_len(wire)..]);
    out
}

/// Accepts `wire`, asserting that a refusal leaves the store as it was.
fn accept_checked(
    bob: &IdentityKeyPair,
    store: &mut PreKeyStore,
    wire: &[u8],
) -> Result<(Session, Vec<u8>), Error> {
    let before = store.to_bytes();
    let r = accept(bob, store, wire);
    if r.is_err() {
        assert_eq!(
            *before,
            *store.to_bytes(),
            "a refused accept changed the store"
        );
    }
    r
}

fn invalid() -> Error {
    DecodeError::InvalidValue.into()
}

#[test]
fn a_pq_session_refuses_a_stripped_extension_and_a_plain_one_refuses_an_added_one() {
    let rng = &mut SeededRng::from_label("wire: strip and add");
    let (mut a, mut b) = pair(rng, true);
    // Stripping, on messages with and without a chunk, both directions.
    let (mut chunked, mut bare) = (0, 0);
    for i in 0..300 {
        let (from, to) = if i % 2 == 0 {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        let w = from.encrypt(rng, b"m").unwrap();
        assert_eq!(
            w[field_at(&w)] & 0x80,
            0x80,
            "every message of a pq session runs it"
        );
        if chunk_kind(&w).is_some() {
            chunked += 1;
        } else {
            bare += 1;
        }
        if i % 7 == 0 || chunk_kind(&w).is_none() {
            let stripped = with_field(&w, &[0, 0]);
            assert_eq!(
                recv_checked(to, &stripped),
                Err(RatchetError::NotPostQuantum.into())
            );
        }
        assert_eq!(recv(to, &w).unwrap(), b"m");
    }
    assert!(chunked > 0, "no message with a chunk");
    println!("{chunked} messages with a chunk, {bare} without");

    // Adding, in a session without the ratchet: every form of extension.
    let (mut a, mut b) = pair(rng, false);
    let w = a.encrypt(rng, b"x").unwrap();
    recv(&mut b, &w).unwrap();
    let w = b.encrypt(rng, &[0x11; 40]).unwrap();
    assert_eq!(w[FIELD..FIELD + 2], [0, 0]);
    let mut chunk = vec![0xc0, 0x00];
    chunk.extend_from_slice(&[0x5a; 32]);
    for field in [&[0x80, 0x00][..], &[0xbc, 0x00], &[0xc0, 0x00], &chunk] {
        assert_eq!(recv_checked(&mut a, &with_field(&w, field)), Err(invalid()));
    }
    assert_eq!(recv(&mut a, &w).unwrap(), [0x11; 40]);
}

#[test]
fn the_responder_cannot_be_moved_off_the_initiators_choice_at_accept() {
    let rng = &mut SeededRng::from_label("wire: accept");
    // A current initiator: its first message's extension stripped or malformed.
    let (mut a, bob, mut store) = start(rng, true, false);
    let wire = a.encrypt(rng, b"first").unwrap();
    assert_eq!(
        chunk_kind(&wire),
        Some(0),
        "the first message carries a header chunk"
    );
    let mut forms: Vec<Vec<u8>> = vec![
        vec![0, 0],
        vec![0x80, 0],
        vec![0x81, 0],
        vec![0x80, 1],
        vec![0xc0, 0],
        vec![0x01, 0],
    ];
    let genuine = wire[field_at(&wire)..field_at(&wire) + 34].to_vec();
    let mut no_flag = genuine.clone();
    no_flag[0] &= !0x40;
    forms.push(no_flag);
    for d in 1..4u8 {
        let mut f = genuine.clone();
        f[0] = (f[0] & !3) | d;
        forms.push(f);
    }
    for nibble in 1..16u8 {
        let mut f = genuine.clone();
        f[0] = (f[0] & 0xc3) | nibble << 2;
        forms.push(f);
    }
    for field in forms.iter().filter(|f| **f != genuine) {
        let r = accept_checked(&bob, &mut store, &with_field(&wire, field));
        assert!(r.is_err(), "accepted field {field:02x?}");
    }
    // A flipped bit 31 of the KEM prekey id (offset 71 without a one-time prekey).
    let mut flipped = wire.clone();
    assert_eq!(flipped[70], 0);
    flipped[71] ^= 0x80;
    assert!(accept_checked(&bob, &mut store, &flipped).is_err());
    let (mut b, got) = accept(&bob, &mut store, &wire).unwrap();
    assert_eq!(got, b"first");
    assert_eq!(b.pq_ratchet_epoch(), Some(0));
    // The same pre-key message repeated, to the session now, stripped: refused, unchanged.
    let again = a.encrypt(rng, b"again").unwrap();
    assert!(matches!(
        IncomingMessage::decode(&again),
        Ok(IncomingMessage::PreKey(_))
    ));
    assert_eq!(
        recv_checked(&mut b, &with_field(&again, &[0, 0])),
        Err(RatchetError::NotPostQuantum.into())
    );
    assert_eq!(recv(&mut b, &again).unwrap(), b"again");

    // An initiator from before the ratchet, to a device that runs it: an extension added by the
    // relay must not make the responder run the ratchet (or accept at all).
    let (mut a, bob, mut store) = start(rng, true, true);
    let wire = a.encrypt(rng, b"old").unwrap();
    assert_eq!(wire[field_at(&wire)..field_at(&wire) + 2], [0, 0]);
    let mut chunk = vec![0xc0, 0x00];
    chunk.extend_from_slice(&[0x33; 32]);
    for field in [&[0x80, 0x00][..], &[0x84, 0x00], &chunk] {
        // Authentication fails, or (a chain nibble naming an epoch not reached) the form is
        // refused before any key: either way no session and no change.
        let r = accept_checked(&bob, &mut store, &with_field(&wire, field));
        let e = r.err();
        assert!(
            e == Some(RatchetError::AuthenticationFailed.into()) || e == Some(invalid()),
            "{e:?}"
        );
    }
    let (b, _) = accept(&bob, &mut store, &wire).unwrap();
    assert_eq!((a.pq_ratchet_epoch(), b.pq_ratchet_epoch()), (None, None));

    // A bundle without the bit: an extension added is refused as a form error.
    let (mut a, bob, mut store) = start(rng, false, false);
    let wire = a.encrypt(rng, b"plain").unwrap();
    for field in [&[0x80, 0x00][..], &chunk] {
        let r = accept_checked(&bob, &mut store, &with_field(&wire, field));
        assert_eq!(r.err(), Some(invalid()));
    }
    let mut flipped = wire.clone();
    flipped[71] ^= 0x80;
    assert!(accept_checked(&bob, &mut store, &flipped).is_err());
    let (b, _) = accept(&bob, &mut store, &wire).unwrap();
    assert_eq!(b.pq_ratchet_epoch(), None);
}

/// Every value of the field's first byte (flags, chain nibble, `d`), with several second bytes,
/// on genuine messages of each way they are read: a new chain's first, the current chain's
/// next, a skipped one of the current chain, and a late one of an older chain. Only the genuine
/// bytes open; everything else is a typed error and changes nothing.
#[test]
fn every_first_byte_and_second_byte_on_genuine_messages_fails_and_changes_nothing() {
    let rng = &mut SeededRng::from_label("wire: every first byte");
    let (mut a, mut b) = pair(rng, true);
    for _ in 0..40 {
        let w = a.encrypt(rng, b"p").unwrap();
        recv(&mut b, &w).unwrap();
        let w = b.encrypt(rng, b"q").unwrap();
        recv(&mut a, &w).unwrap();
    }
    // Alice's chain X: x0, x1, x2, x3. Bob reads x1 (new chain, x0 skipped), then y from Bob,
    // then Alice's chain Z: z0. Then x0 (older chain, skipped key), x2 (older chain, skipped).
    let xs: Vec<Vec<u8>> = (0..4)
        .map(|i| a.encrypt(rng, format!("x{i}").as_bytes()).unwrap())
        .collect();
    let sweep = |s: &mut Session, w: &[u8], what: &str| {
        let at = field_at(w);
        let genuine = (w[at], w[at + 1]);
        let mut tried = 0;
        for first in 0..=255u8 {
            for second in [0u8, 1, 0x3f, 0x40, 0x80, 0xc0, genuine.1, genuine.1 ^ 0x40] {
                if (first, second) == genuine {
                    continue;
                }
                let mut m = w.to_vec();
                m[at] = first;
                m[at + 1] = second;
                let r = recv_checked(s, &m);
                assert!(r.is_err(), "{what}: field {first:02x} {second:02x} opened");
                tried += 1;
            }
        }
        tried
    };
    // x1 starts chain X at Bob.
    let n = sweep(&mut b, &xs[1], "a new chain's first message");
    assert!(n > 2000);
    assert_eq!(recv(&mut b, &xs[1]).unwrap(), b"x1");
    sweep(&mut b, &xs[2], "the current chain's next message");
    sweep(&mut b, &xs[0], "a skipped message of the current chain");
    assert_eq!(recv(&mut b, &xs[0]).unwrap(), b"x0");
    // Bob answers; Alice starts chain Z; x3 is now a late message of an older chain.
    let y = b.encrypt(rng, b"y").unwrap();
    recv(&mut a, &y).unwrap();
    let z = a.encrypt(rng, b"z").unwrap();
    assert_eq!(recv(&mut b, &z).unwrap(), b"z");
    sweep(&mut b, &xs[3], "a late message of an older chain");
    sweep(&mut b, &xs[2], "a late message of an older chain");
    assert_eq!(recv(&mut b, &xs[3]).unwrap(), b"x3");
    assert_eq!(recv(&mut b, &xs[2]).unwrap(), b"x2");
    // The conversation goes on.
    let w = b.encrypt(rng, b"on").unwrap();
    assert_eq!(recv(&mut a, &w).unwrap(), b"on");
}

#[test]
fn truncation_at_every_length_is_a_typed_error_and_changes_nothing() {
    let rng = &mut SeededRng::from_label("wire: truncation");
    let (mut a, bob, mut store) = start(rng, true, false);
    let first = a.encrypt(rng, b"first").unwrap();
    let at = field_at(&first);
    // Every cut of the pre-key message from the ratchet message on (the prefix is PQXDH's).
    for len in at - 20..first.len() {
        assert!(
            accept_checked(&bob, &mut store, &first[..len]).is_err(),
            "cut at {len}"
        );
        if len < at + 34 + 16 {
            assert!(
                IncomingMessage::decode(&first[..len]).is_err(),
                "a cut inside the field, chunk or tag decoded: {len}"
            );
        }
    }
    let (mut b, _) = accept(&bob, &mut store, &first).unwrap();
    let mut seen_bare = false;
    for i in 0..200 {
        let w = b.encrypt(rng, &[i as u8; 3]).unwrap();
        for len in 0..w.len() {
            let r = recv_checked(&mut a, &w[..len]);
            assert!(r.is_err(), "cut at {len}");
            if len < field_len(&w) + FIELD + 16 {
                assert_eq!(
                    IncomingMessage::decode(&w[..len]).err(),
                    Some(DecodeError::Truncated),
                    "cut at {len}"
                );
            }
        }
        // One more byte is no message either.
        let mut longer = w.clone();
        longer.push(0);
        assert!(recv_checked(&mut a, &longer).is_err());
        seen_bare |= chunk_kind(&w).is_none();
        assert_eq!(recv(&mut a, &w).unwrap(), [i as u8; 3]);
        let w = a.encrypt(rng, b"r").unwrap();
        recv(&mut b, &w).unwrap();
        if seen_bare && i > 20 {
            break;
        }
    }
}

/// A lossy, reordering, replaying relay, both sides stored and loaded at random points: every
/// delivered message opens with its own plaintext, every replay or stale delivery is a typed
/// error that changes nothing (or, for a late one, opens with its own plaintext), and the epochs
/// keep rising.
#[test]
fn a_lossy_replaying_relay_with_stores_everywhere_keeps_both_sides_in_step() {
    for seed in 1..=3u64 {
        let rng = &mut SeededRng::new([seed as u8; 32]);
        let prng = &mut Prng(0x9e37_79b9_7f4a_7c15 ^ seed);
        let (a, b) = pair(rng, true);
        let mut s = [a, b];
        let mut delivered: Vec<(usize, Vec<u8>, Vec<u8>)> = Vec::new();
        let mut held: Vec<(usize, Vec<u8>, Vec<u8>)> = Vec::new();
        let mut epochs = [0u32; 2];
        let mut late_opened = 0;
        let (mut sent, mut lost) = (0, 0);
        for round in 0..500usize {
            let from = if prng.chance(75) {
                round % 2
            } else {
                (prng.next() % 2) as usize
            };
            let to = 1 - from;
            let burst = 1 + (prng.next() % 3) as usize;
            let mut out = Vec::new();
            for k in 0..burst {
                if prng.chance(40) {
                    let bytes = s[from].to_bytes();
                    s[from] = Session::from_bytes(&bytes).unwrap();
                    assert_eq!(*s[from].to_bytes(), *bytes);
                }
                let body = format!("{seed}/{round}/{k}").into_bytes();
                out.push((body.clone(), s[from].encrypt(rng, &body).unwrap()));
                sent += 1;
            }
            if out.len() >= 2 && prng.chance(25) {
                out.swap(0, 1);
            }
            for (body, w) in out {
                if prng.chance(20) {
                    lost += 1;
                    if prng.chance(30) {
                        held.push((to, body, w));
                    }
                    continue;
                }
                if prng.chance(40) {
                    let bytes = s[to].to_bytes();
                    s[to] = Session::from_bytes(&bytes).unwrap();
                }
                assert_eq!(
                    recv_checked(&mut s[to], &w).unwrap(),
                    body,
                    "seed {seed} round {round}"
                );
                // An immediate duplicate.
                if prng.chance(30) {
                    assert!(recv_checked(&mut s[to], &w).is_err());
                }
                delivered.push((to, body, w));
            }
            // A replay of anything delivered before.
            if !delivered.is_empty() && prng.chance(30) {
                let i = (prng.next() as usize) % delivered.len();
                let (to, _, w) = &delivered[i];
                assert!(recv_checked(&mut s[*to], w).is_err(), "a replay opened");
            }
            // A message held back, delivered late: its own plaintext or a typed error.
            if !held.is_empty() && prng.chance(15) {
                let (to, body, w) = held.remove((prng.next() as usize) % held.len());
                if let Ok(p) = recv_checked(&mut s[to], &w) {
                    assert_eq!(p, body);
                    late_opened += 1;
                    delivered.push((to, body, w));
                }
            }
            for side in 0..2 {
                let e = s[side].pq_ratchet_epoch().unwrap();
                assert!(e >= epochs[side], "an epoch went back");
                epochs[side] = e;
            }
        }
        println!(
            "seed {seed}: {sent} sent, {lost} lost, {late_opened} opened late, epochs {epochs:?}"
        );
        assert!(
            epochs[0].min(epochs[1]) >= 3,
            "seed {seed}: epochs {epochs:?}"
        );
        // Both sides still read each other's new chains (which mix their epochs' secrets).
        for (from, to) in [(0, 1), (1, 0), (0, 1)] {
            let w = s[from].encrypt(rng, b"end").unwrap();
            assert_eq!(recv(&mut s[to], &w).unwrap(), b"end");
        }
    }
}

/// A relay that reads the chunk kinds and drops every message carrying one kind. The epochs
/// stop (SECURITY.md says so), but only at the price of dropping most of one side's messages
/// once the epoch is waiting: the attack cannot stay small.
#[test]
fn a_relay_dropping_one_chunk_kind_stops_the_epochs_only_by_dropping_most_messages() {
    for kind in [0u8, 1, 3] {
        let rng = &mut SeededRng::from_label("wire: kind dropper");
        let (mut a, mut b) = pair(rng, true);
        let mut dropped = [0usize; 2];
        let mut sent = [0usize; 2];
        let mut late_dropped = [0usize; 2];
        let mut late_sent = [0usize; 2];
        for i in 0..600usize {
            let from = i % 2;
            let (sender, receiver) = if from == 0 {
                (&mut a, &mut b)
            } else {
                (&mut b, &mut a)
            };
            let w = sender.encrypt(rng, b"m").unwrap();
            sent[from] += 1;
            let drop = chunk_kind(&w) == Some(kind);
            if i >= 300 {
                late_sent[from] += 1;
                late_dropped[from] += usize::from(drop);
            }
            if drop {
                dropped[from] += 1;
                continue;
            }
            assert_eq!(recv(receiver, &w).unwrap(), b"m");
        }
        let epochs = (a.pq_ratchet_epoch().unwrap(), b.pq_ratchet_epoch().unwrap());
        println!(
            "kind {kind}: epochs {epochs:?}, dropped {dropped:?} of {sent:?}, in the last 300: {late_dropped:?} of {late_sent:?}"
        );
        // Without the relay, 600 messages give several epochs; with it, at most one.
        assert!(
            epochs.0.max(epochs.1) <= 2,
            "kind {kind}: epochs {epochs:?}"
        );
        // Once stopped, one side loses nearly everything it sends.
        let worst = (0..2)
            .map(|s| late_dropped[s] * 100 / late_sent[s])
            .max()
            .unwrap();
        assert!(
            worst >= 90,
            "kind {kind}: only {worst}% of one side dropped"
        );
    }
}

/// The relay drops the first 30 messages that carry a `ct1` chunk after some point, and nothing
/// else. The encapsulator sends its 30 `ct1` chunks once (at no loss seen, `sends(30) = 30`);
/// the publisher, its header unacknowledged, repeats its header on every message (25.4 rule c,
/// `c_recv >= e`) and never sends its vector, so the encapsulator never computed `c2` and, until
/// stop 33, never learned that `c1` was short: the relay then had nothing more to drop and the
/// ratchet stayed stalled for good. A repeated header now asks for `ct1` once the first ones
/// went out (25.4 Receive), so the epochs resume. A relay that keeps dropping every `ct1`
/// message still stops them, at the cost of those messages (SECURITY.md).
#[test]
fn dropping_one_encapsulations_ct1_messages_delays_the_epochs_only_while_it_drops() {
    for lossless_first in [300usize, 0] {
        let rng = &mut SeededRng::from_label("wire: ct1 dropper");
        let (mut a, mut b) = pair(rng, true);
        let mut dropped = Vec::new();
        let mut stalled_at = None;
        for i in 0..1600usize {
            let (sender, receiver) = if i % 2 == 0 {
                (&mut a, &mut b)
            } else {
                (&mut b, &mut a)
            };
            let w = sender.encrypt(rng, b"m").unwrap();
            if i >= lossless_first && dropped.len() < 30 && chunk_kind(&w) == Some(2) {
                dropped.push(i);
                continue;
            }
            assert_eq!(recv(receiver, &w).unwrap(), b"m");
            if i == lossless_first {
                stalled_at = Some((a.pq_ratchet_epoch(), b.pq_ratchet_epoch()));
            }
        }
        let epochs = (a.pq_ratchet_epoch().unwrap(), b.pq_ratchet_epoch().unwrap());
        let last = dropped.last().copied().unwrap_or(0);
        assert_eq!(dropped.len(), 30);
        let start = stalled_at.unwrap();
        assert!(
            epochs.0 >= start.0.unwrap() + 3 && epochs.1 >= start.1.unwrap() + 3,
            "the epochs stayed at {epochs:?} (from {start:?}) for {} messages after the relay's last drop",
            1600 - last,
        );
    }
}
