//! A relay's attacks on the header's extension field (PROTOCOL.md 8.4, 8.6, 25.4 to 25.6):
//! downgrades in both directions (ratchet and pre-key messages), every value of the field's
//! first byte on genuine messages, truncation at every length, replays and late deliveries in a
//! lossy conversation stored and loaded at every step, a relay that drops by chunk kind, and a
//! side restored from a stale copy.

use ratchetry::testing::SeededRng;
use ratchetry::testing::hooks::{session_keys, store_before_pq_ratchet, without_pq_ratchet};
use ratchetry::{
    DecodeError, Error, IdentityKeyPair, IncomingMessage, PreKeyBundle, PreKeyStore, RatchetError,
    Session, SessionConfig, Timestamp,
};

const NOW: Timestamp = Timestamp(1_790_000_000_000);
/// The extension field's offset in a ratchet message (8.4).
const FIELD: usize = 58;

struct Prng(u64);

impl Prng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn recv(s: &mut Session, wire: &[u8]) -> Result<Vec<u8>, Error> {
    s.decrypt(&IncomingMessage::decode(wire)?)
}

/// Receives `wire`, asserting that a refusal changes nothing.
fn recv_checked(s: &mut Session, wire: &[u8]) -> Result<Vec<u8>, Error> {
    let before = s.to_bytes();
    let r = recv(s, wire);
    if r.is_err() {
        assert_eq!(*before, *s.to_bytes(), "a refusal changed the session");
    }
    r
}

/// Where the ratchet message starts (after a pre-key message's prefix, 9.2).
fn ratchet_start(wire: &[u8]) -> usize {
    if wire[1] == 3 {
        2 + 32 + 32 + 4 + 1 + if wire[70] == 1 { 4 } else { 0 } + 4 + 1568
    } else {
        0
    }
}

fn field_at(wire: &[u8]) -> usize {
    ratchet_start(wire) + FIELD
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

/// The chunk's kind (0 header, 1 vector, 2 ct1, 3 ct2), if the message carries one: what a relay
/// reads in clear.
fn chunk_kind(wire: &[u8]) -> Option<u8> {
    let at = field_at(wire);
    (wire[at] & 0xc0 == 0xc0).then(|| wire[at + 1] >> 6)
}

/// Alice's session, initiated to Bob's bundle, Bob's identity and store. `pq`: the store runs
/// the ratchet (bit 31 on its KEM prekey); `old`: Alice is from before the ratchet.
fn start(rng: &mut SeededRng, pq: bool, old: bool) -> (Session, IdentityKeyPair, PreKeyStore) {
    let alice = IdentityKeyPair::generate(rng);
    let bob = IdentityKeyPair::generate(rng);
    let mut store = PreKeyStore::new(rng, &bob, NOW, Default::default());
    let kem = if pq {
        Some(store.generate_one_time_kem_prekeys(rng, &bob, NOW, 1)[0].id)
    } else {
        store_before_pq_ratchet(&mut store, &bob);
        None
    };
    let bundle = PreKeyBundle::from_bytes(&store.bundle(&bob, None, kem).to_bytes())
        .unwrap()
        .verify()
        .unwrap();
    let mut a = Session::initiate(rng, &alice, &bundle, SessionConfig::default()).unwrap();
    if old {
        without_pq_ratchet(&mut a);
    }
    (a, bob, store)
}

fn accept(
    bob: &IdentityKeyPair,
    store: &mut PreKeyStore,
    wire: &[u8],
) -> Result<(Session, Vec<u8>), Error> {
    let IncomingMessage::PreKey(pk) = IncomingMessage::decode(wire)? else {
        panic!("a pre-key message")
    };
    Session::accept(bob, store, &pk, SessionConfig::default())
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

fn pair(rng: &mut SeededRng, pq: bool) -> (Session, Session) {
    let (mut a, bob, mut store) = start(rng, pq, false);
    let wire = a.encrypt(rng, b"hello").unwrap();
    let (b, _) = accept(&bob, &mut store, &wire).unwrap();
    (a, b)
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

/// How a side restored from a stale copy of its state (a backup) goes on, with the recovery the
/// library offers (`renew_sending_chain`, what `Device::restore_from_backup` does). The copy is
/// taken mid-chain (a sending chain present, which 8.5's scheme needs to continue at all) just
/// before a send that would start an encapsulation; `lost` messages of the lost state reach the
/// peer. Returns the first failure of a lossless conversation afterwards, or the epochs reached.
fn after_a_stale_restore(pq: bool, lost: usize) -> Result<(u32, u32), String> {
    use std::collections::VecDeque;
    let rng = &mut SeededRng::from_label("wire: stale restore");
    let prng = &mut Prng(0x1234_5678_9abc_def1);
    let (a, b) = pair(rng, pq);
    let mut s = [a, b];
    // Messages in flight to each side, in order: both sides send at will.
    let mut queue: [VecDeque<(Vec<u8>, Vec<u8>)>; 2] = [VecDeque::new(), VecDeque::new()];
    let mut restored_at = None;
    let mut n = 0usize;
    for step in 0..4000usize {
        let action = prng.next() % 4;
        let side = (action % 2) as usize;
        if action >= 2 {
            // Deliver the next message to `side`.
            let Some((body, w)) = queue[side].pop_front() else {
                continue;
            };
            match recv(&mut s[side], &w) {
                Ok(p) if p == body => {}
                other => {
                    return Err(format!(
                        "step {step}: side {side} could not read: {other:?} (epochs {:?} {:?}, restored at {restored_at:?})",
                        s[0].pq_ratchet_epoch(),
                        s[1].pq_ratchet_epoch()
                    ));
                }
            }
            continue;
        }
        let (from, to) = (side, 1 - side);
        let due = restored_at.is_none()
            && step > 100
            && session_keys(&s[from]).sending.is_some()
            && if pq {
                let mut trial = s[from].clone();
                let e = trial.pq_ratchet_epoch();
                trial.encrypt(&mut rng.clone(), b"").unwrap();
                trial.pq_ratchet_epoch() > e
            } else {
                true
            };
        if due {
            let copy = s[from].to_bytes();
            for _ in 0..lost {
                let w = s[from].encrypt(rng, b"lost state").unwrap();
                queue[to].push_back((b"lost state".to_vec(), w));
            }
            while let Some((body, w)) = queue[to].pop_front() {
                let p = recv(&mut s[to], &w).map_err(|e| format!("before the restore: {e:?}"))?;
                assert_eq!(p, body);
            }
            s[from] = Session::from_bytes(&copy).unwrap();
            s[from].renew_sending_chain();
            restored_at = Some((step, from, s[0].pq_ratchet_epoch(), s[1].pq_ratchet_epoch()));
        }
        n += 1;
        let body = format!("{n}").into_bytes();
        let w = s[from].encrypt(rng, &body).unwrap();
        queue[to].push_back((body, w));
    }
    println!("restored at {restored_at:?}");
    assert!(restored_at.is_some(), "no restore point found");
    Ok((
        s[0].pq_ratchet_epoch().unwrap_or(0),
        s[1].pq_ratchet_epoch().unwrap_or(0),
    ))
}

#[test]
fn a_stale_restore_with_a_renewed_chain_keeps_a_plain_session() {
    assert!(after_a_stale_restore(false, 1).is_ok());
    assert!(after_a_stale_restore(false, 3).is_ok());
}

/// Restored from a copy taken just before a send that encapsulates, the side draws a new `m`
/// (and a new publication seed) at its next send; the peer's `ct1` collector already holds the
/// lost state's chunks (first `k` distinct indexes kept), so it decapsulates a mix of two
/// ciphertexts (implicit rejection) and derives another `S_e`. The first chain that mixes it
/// fails to authenticate, and every one after it: the session is dead, where a plain session
/// restored the same way goes on (the test above).
#[test]
#[ignore = "bug: a pq session restored from a stale copy with renew_sending_chain disagrees on the next epoch secret and dies"]
fn a_stale_restore_with_a_renewed_chain_keeps_a_pq_session_and_its_epochs() {
    for lost in [1, 3] {
        let r = after_a_stale_restore(true, lost);
        println!("lost {lost}: {r:?}");
        let (ea, eb) = r.unwrap();
        assert!(ea.min(eb) >= 4, "epochs {ea} {eb} after the restore");
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
