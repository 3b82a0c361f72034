//! Sessions that run the post-quantum ratchet (PROTOCOL.md section 25): its negotiation by
//! the KEM prekey id's bit 31, its epochs through real messages and stored state, the refusal
//! of a downgrade, and healing against an observer that knows every X25519 secret.

mod pairs;

use pairs::{NOW, Observer, Recording, pair, recv};
use ratchetry::testing::SeededRng;
use ratchetry::testing::hooks::{pq_chain_epochs, without_pq_ratchet};
use ratchetry::x3dh::KemPreKeyId;
use ratchetry::{
    IdentityKeyPair, IncomingMessage, PreKeyBundle, PreKeyStore, RatchetError, Session,
    SessionConfig,
};

/// One message each way, through stored state each time.
fn exchange(rng: &mut SeededRng, a: &mut Session, b: &mut Session, i: usize) {
    let w = a.encrypt(rng, format!("a{i}").as_bytes()).unwrap();
    *b = Session::from_bytes(&b.to_bytes()).unwrap();
    assert_eq!(recv(b, &w).unwrap(), format!("a{i}").as_bytes());
    let w = b.encrypt(rng, format!("b{i}").as_bytes()).unwrap();
    *a = Session::from_bytes(&a.to_bytes()).unwrap();
    assert_eq!(recv(a, &w).unwrap(), format!("b{i}").as_bytes());
}

#[test]
fn the_kem_prekey_ids_bit_31_decides_both_sides() {
    let rng = &mut SeededRng::from_label("pq negotiation");
    let (a, b) = pair(rng, true);
    assert_eq!(
        (a.pq_ratchet_epoch(), b.pq_ratchet_epoch()),
        (Some(0), Some(0))
    );
    let (a, b) = pair(rng, false);
    assert_eq!((a.pq_ratchet_epoch(), b.pq_ratchet_epoch()), (None, None));
    assert!(!KemPreKeyId(1).pq_ratchet() && KemPreKeyId(0x8000_0001).pq_ratchet());
}

/// An initiator from before the ratchet starts a session with a device that runs it: its
/// first message carries no extension, and the responder runs the session without the ratchet
/// (refusing it would shut such initiators out). A current initiator's first message carries
/// one, which a server cannot strip: the message then fails to authenticate and changes
/// nothing, and the real one starts a session that runs the ratchet.
#[test]
fn the_responder_runs_it_when_the_initiators_first_message_does() {
    let rng = &mut SeededRng::from_label("pq old initiator");
    let alice = IdentityKeyPair::generate(rng);
    let bob = IdentityKeyPair::generate(rng);
    let mut store = PreKeyStore::new(rng, &bob, NOW, Default::default());
    let kems = store.generate_one_time_kem_prekeys(rng, &bob, NOW, 2);
    let bundle = |kem| {
        PreKeyBundle::from_bytes(&store.bundle(&bob, None, Some(kem)).to_bytes())
            .unwrap()
            .verify()
            .unwrap()
    };
    let (old, new) = (bundle(kems[0].id), bundle(kems[1].id));
    let accept = |store: &mut PreKeyStore, wire: &[u8]| {
        let IncomingMessage::PreKey(pk) = IncomingMessage::decode(wire).unwrap() else {
            panic!("a pre-key message")
        };
        Session::accept(&bob, store, &pk, SessionConfig::default()).map(|(s, m)| (s, m.to_vec()))
    };

    let mut a = Session::initiate(rng, &alice, &old, SessionConfig::default()).unwrap();
    without_pq_ratchet(&mut a);
    let wire = a.encrypt(rng, b"from before the ratchet").unwrap();
    let (mut b, got) = accept(&mut store, &wire).unwrap();
    assert_eq!(got, b"from before the ratchet");
    assert_eq!((a.pq_ratchet_epoch(), b.pq_ratchet_epoch()), (None, None));
    for i in 0..3 {
        exchange(rng, &mut a, &mut b, i);
    }

    let mut a = Session::initiate(rng, &alice, &new, SessionConfig::default()).unwrap();
    let wire = a.encrypt(rng, b"hello").unwrap();
    // The ratchet message starts after the pre-key prefix (PROTOCOL.md 9.2: header, IK, base
    // key, signed prekey id, no one-time prekey, KEM id, ML-KEM-1024 ciphertext); its
    // extension follows the header's fixed 58 bytes, as in the downgrade test below.
    let prefix = 2 + 32 + 32 + 4 + 1 + 4 + 1568;
    assert_eq!(
        wire[prefix + 58] & 0xc0,
        0xc0,
        "a first message carries the first chunk of epoch 1"
    );
    let mut stripped = wire[..prefix + 58].to_vec();
    stripped.extend_from_slice(&[0, 0]);
    stripped.extend_from_slice(&wire[prefix + 58 + 34..]);
    let before = store.to_bytes();
    assert_eq!(
        accept(&mut store, &stripped).err(),
        Some(RatchetError::AuthenticationFailed.into())
    );
    assert_eq!(*before, *store.to_bytes());
    let (b, _) = accept(&mut store, &wire).unwrap();
    assert_eq!(b.pq_ratchet_epoch(), Some(0));
}

#[test]
fn epochs_complete_through_messages_and_stored_state() {
    let rng = &mut SeededRng::from_label("pq epochs");
    let (mut a, mut b) = pair(rng, true);
    for i in 0..200 {
        exchange(rng, &mut a, &mut b, i);
    }
    // 400 messages in strict ping-pong: an epoch takes about 76.
    let (ea, eb) = (a.pq_ratchet_epoch().unwrap(), b.pq_ratchet_epoch().unwrap());
    assert!(ea.min(eb) >= 4, "epochs {ea} {eb}");
    // Both chains now mix a post-quantum secret.
    let (send, recv_chain) = pq_chain_epochs(&a).unwrap();
    assert!(
        send >= 3 && recv_chain >= 3,
        "chains mix {send} and {recv_chain}"
    );
}

#[test]
fn a_message_without_its_extension_is_refused_and_changes_nothing() {
    let rng = &mut SeededRng::from_label("pq downgrade");
    let (mut a, mut b) = pair(rng, true);
    exchange(rng, &mut a, &mut b, 0);
    let w = a.encrypt(rng, b"m").unwrap();
    // Replace the extension with the field of a session without the ratchet, `0x00 0x00`: a
    // server stripping the ratchet. The extension is 34 bytes with a chunk, else 2.
    assert_eq!(w[58] & 0x80, 0x80);
    let len = if w[58] & 0x40 != 0 { 34 } else { 2 };
    let mut stripped = w[..58].to_vec();
    stripped.extend_from_slice(&[0, 0]);
    stripped.extend_from_slice(&w[58 + len..]);
    let before = b.to_bytes();
    assert_eq!(
        recv(&mut b, &stripped),
        Err(RatchetError::NotPostQuantum.into())
    );
    assert_eq!(*before, *b.to_bytes());
    assert_eq!(recv(&mut b, &w).unwrap(), b"m");
}

#[test]
fn a_session_without_the_ratchet_refuses_an_extension() {
    let rng = &mut SeededRng::from_label("no pq extension");
    let (mut a, mut b) = pair(rng, false);
    exchange(rng, &mut a, &mut b, 0);
    let w = a.encrypt(rng, b"m").unwrap();
    assert_eq!(w[58..60], [0, 0]);
    // The ratchet's bare extension in place of `0x00 0x00`, and a field that is neither (the
    // u16 length of an extension before the ratchet's, which no release sent).
    for field in [[0x80, 0x00], [0x00, 0x01]] {
        let mut extended = w.to_vec();
        extended[58..60].copy_from_slice(&field);
        let before = b.to_bytes();
        assert_eq!(
            recv(&mut b, &extended),
            Err(ratchetry::DecodeError::InvalidValue.into())
        );
        assert_eq!(*before, *b.to_bytes());
    }
    assert_eq!(recv(&mut b, &w).unwrap(), b"m");
}

#[test]
fn stored_state_round_trips_at_every_step() {
    let rng = &mut SeededRng::from_label("pq state");
    let (mut a, mut b) = pair(rng, true);
    for i in 0..120 {
        exchange(rng, &mut a, &mut b, i);
        for s in [&a, &b] {
            let bytes = s.to_bytes();
            assert_eq!(bytes[0], 3, "a session with the ratchet is state version 3");
            assert_eq!(*Session::from_bytes(&bytes).unwrap().to_bytes(), *bytes);
        }
    }
}

/// Copies Alice's whole state after `copy_after` round trips and has an observer follow her
/// sends with her X25519 secrets. Returns, of Bob's next 400 messages: how many the observer
/// read, how many of them mixed an epoch at least two past the copy's, how many of those it
/// read, and the copy's epoch.
fn observe(pq: bool, copy_after: usize) -> (usize, usize, usize, u32) {
    let rng = &mut SeededRng::from_label("healing");
    let (mut a, mut b) = pair(rng, pq);
    let a_rng = &mut SeededRng::from_label("alice's randomness");
    let b_rng = &mut SeededRng::from_label("bob's randomness");
    for i in 0..copy_after {
        let w = b.encrypt(b_rng, format!("b{i}").as_bytes()).unwrap();
        recv(&mut a, &w).unwrap();
        let w = a.encrypt(a_rng, b"before").unwrap();
        recv(&mut b, &w).unwrap();
    }
    let copied_at = a.pq_ratchet_epoch().unwrap_or(0);
    let mut observer = Session::from_bytes(&a.to_bytes()).unwrap();
    let own = &mut SeededRng::from_label("the observer's own guesses");
    let (mut read, mut late, mut late_read) = (0, 0, 0);
    for i in 0..400 {
        let secret = format!("secret {i}");
        let w = b.encrypt(b_rng, secret.as_bytes()).unwrap();
        let mixed = pq_chain_epochs(&b).map_or(0, |(send, _)| send);
        recv(&mut a, &w).unwrap();
        let opened = recv(&mut observer, &w).ok() == Some(secret.into_bytes());
        read += usize::from(opened);
        if pq && mixed >= copied_at + 2 {
            late += 1;
            late_read += usize::from(opened);
        }
        let mut recording = Recording {
            inner: &mut *a_rng,
            draws: Vec::new(),
        };
        let w = a.encrypt(&mut recording, b"after").unwrap();
        let draws = recording.draws;
        let _ = observer.encrypt(
            &mut Observer {
                alice: &draws,
                own: &mut *own,
                first: true,
            },
            b"after",
        );
        recv(&mut b, &w).unwrap();
    }
    (read, late, late_read, copied_at)
}

#[test]
fn a_copied_state_stops_reading_two_epochs_later_but_a_classical_session_stays_open() {
    // Without the ratchet, the observer reads every one of Bob's next 400 messages.
    let (read, _, _, _) = observe(false, 100);
    assert_eq!(
        read, 400,
        "without the ratchet the observer reads everything"
    );
    // With it, copied at epoch e (after 100 round trips): it reads what was mixed before
    // e + 2, and nothing mixed with e + 2 or later, which most of the 400 are.
    let (read, late, late_read, e) = observe(true, 100);
    println!(
        "copied at epoch {e}: read {read} of 400, {late} mixed epoch e + 2 or later, {late_read} of them read"
    );
    assert!(e >= 2, "copied at epoch {e}");
    assert!(
        read > 0,
        "the observer read nothing at all: it is not a real observer"
    );
    assert!(
        late >= 200,
        "only {late} of Bob's messages mixed epoch {} or later",
        e + 2
    );
    assert_eq!(
        late_read, 0,
        "the observer read a message of epoch e + 2 or later"
    );
}

#[test]
fn every_message_of_a_chain_names_its_chains_epoch() {
    let rng = &mut SeededRng::from_label("pq chain nibble");
    let (mut a, mut b) = pair(rng, true);
    exchange(rng, &mut a, &mut b, 0);
    let (m1, m2, m3) = (
        a.encrypt(rng, b"1").unwrap(),
        a.encrypt(rng, b"2").unwrap(),
        a.encrypt(rng, b"3").unwrap(),
    );
    // Another epoch in the chain nibble (bits 5 to 2 of the extension's first byte, after the
    // header's fixed 58 bytes).
    let renamed = |w: &[u8]| {
        let mut w = w.to_vec();
        w[58] ^= 0x04;
        w
    };
    // m2 starts the chain; m1 (a skipped key of that chain) and m3 (the chain's next) must
    // name its epoch: another is a form error, before any key is tried.
    assert_eq!(recv(&mut b, &m2).unwrap(), b"2");
    for w in [&m1, &m3] {
        let before = b.to_bytes();
        assert_eq!(
            recv(&mut b, &renamed(w)),
            Err(ratchetry::DecodeError::InvalidValue.into())
        );
        assert_eq!(*before, *b.to_bytes());
    }
    assert_eq!(recv(&mut b, &m1).unwrap(), b"1");
    assert_eq!(recv(&mut b, &m3).unwrap(), b"3");
}

#[test]
fn a_message_is_written_in_one_allocation_of_its_length() {
    let rng = &mut SeededRng::from_label("pq message capacity");
    for pq in [true, false] {
        let (mut a, mut b) = pair(rng, pq);
        // A pre-key message (a has not heard back yet), then ratchet messages both ways.
        let first = a.encrypt(rng, &[1; 100]).unwrap();
        assert!(matches!(
            IncomingMessage::decode(&first),
            Ok(IncomingMessage::PreKey(_))
        ));
        assert_eq!(first.capacity(), first.len());
        exchange(rng, &mut a, &mut b, 0);
        for body in [&[][..], &[2; 1024][..]] {
            let w = b.encrypt(rng, body).unwrap();
            assert_eq!(w.capacity(), w.len());
        }
    }
}

#[test]
fn a_late_message_of_the_current_chain_still_delivers_its_chunk() {
    let rng = &mut SeededRng::from_label("pq late chunk");
    let (mut a, mut b) = pair(rng, true);
    exchange(rng, &mut a, &mut b, 0);
    let chain: Vec<Vec<u8>> = (0..4)
        .map(|i| a.encrypt(rng, format!("m{i}").as_bytes()).unwrap())
        .collect();
    // Every message of the chain carries a chunk (the extension's 34 bytes).
    assert!(chain.iter().all(|w| w.len() == 58 + 34 + 2 + 16));
    // In order, and with m1 read late (a skipped key of the chain that is still current): the
    // state afterwards is the same, so m1's chunk was taken either way.
    let mut in_order = Session::from_bytes(&b.to_bytes()).unwrap();
    for w in &chain {
        recv(&mut in_order, w).unwrap();
    }
    for w in [&chain[0], &chain[2], &chain[3], &chain[1]] {
        recv(&mut b, w).unwrap();
    }
    assert_eq!(*b.to_bytes(), *in_order.to_bytes());
}
