//! Sender-key groups: distribution, in-order and out-of-order decryption, rotation, limits,
//! sender binding, per-message salts, and the transactional guarantee (a refused message
//! leaves the receiver byte-identical).

use ratchetry::group::{
    GroupConfig, GroupId, GroupMessage, GroupSender, InboundSenderKey, MAX_MESSAGE_CONTEXT,
    OutboundGroupSession, SenderKeyDistribution,
};
use ratchetry::testing::SeededRng;
use ratchetry::{DecodeError, GroupError, IdentityKeyPair};

const GROUP: GroupId = GroupId([7; 32]);

fn sender(rng: &mut SeededRng, context: &[u8]) -> GroupSender {
    GroupSender::new(IdentityKeyPair::generate(rng).public(), context).unwrap()
}

fn setup(rng: &mut SeededRng) -> (OutboundGroupSession, InboundSenderKey) {
    let alice = sender(rng, b"alice's address");
    let out = OutboundGroupSession::new(rng, GROUP, alice.clone());
    let d = SenderKeyDistribution::from_bytes(&out.distribution().to_bytes()).unwrap();
    (out, InboundSenderKey::new(alice, &d))
}

fn recv(
    rx: &mut InboundSenderKey,
    config: &GroupConfig,
    wire: &[u8],
) -> Result<Vec<u8>, ratchetry::Error> {
    Ok(rx.decrypt(config, &GroupMessage::decode(wire)?)?.to_vec())
}

fn refused(rx: &mut InboundSenderKey, config: &GroupConfig, wire: &[u8], expected: GroupError) {
    let before = rx.to_bytes();
    assert_eq!(recv(rx, config, wire), Err(expected.into()));
    assert_eq!(
        *before,
        *rx.to_bytes(),
        "a refused group message changed state"
    );
}

#[test]
fn messages_decrypt_in_and_out_of_order_once() {
    let rng = &mut SeededRng::from_label("group order");
    let c = GroupConfig::default();
    let (mut out, mut rx) = setup(rng);
    let m: Vec<_> = (0..5u8)
        .map(|i| out.encrypt(rng, &[i; 10]).unwrap())
        .collect();
    assert_eq!(recv(&mut rx, &c, &m[0]).unwrap(), [0; 10]);
    assert_eq!(recv(&mut rx, &c, &m[3]).unwrap(), [3; 10]);
    assert_eq!(recv(&mut rx, &c, &m[1]).unwrap(), [1; 10]);
    assert_eq!(recv(&mut rx, &c, &m[4]).unwrap(), [4; 10]);
    assert_eq!(recv(&mut rx, &c, &m[2]).unwrap(), [2; 10]);
    for w in &m {
        refused(&mut rx, &c, w, GroupError::Duplicate);
    }
}

#[test]
fn signature_is_checked_before_anything_else() {
    let rng = &mut SeededRng::from_label("group sig");
    let c = GroupConfig::default();
    let (mut out, mut rx) = setup(rng);
    let w = out.encrypt(rng, b"hello group").unwrap();
    for i in 2..w.len() {
        let mut bad = w.clone();
        bad[i] ^= 0x20;
        let before = rx.to_bytes();
        let r = recv(&mut rx, &c, &bad);
        assert!(r.is_err(), "flip at {i} accepted");
        assert_eq!(*before, *rx.to_bytes());
    }
    // A forged header (iteration far ahead) fails the signature, not the jump limit.
    let mut far = w.clone();
    far[38..42].copy_from_slice(&u32::MAX.to_be_bytes());
    refused(&mut rx, &c, &far, GroupError::BadSignature);
    for len in 0..w.len() {
        assert!(recv(&mut rx, &c, &w[..len]).is_err());
    }
    assert_eq!(recv(&mut rx, &c, &w).unwrap(), b"hello group");
}

/// A member that received Alice's key and re-distributes it as its own — or under another
/// device address of the same identity — cannot present Alice's messages as its own: the
/// signature binds Alice's identity key and her full sender context.
#[test]
fn a_sender_key_speaks_only_for_its_own_device() {
    let rng = &mut SeededRng::from_label("group binding");
    let c = GroupConfig::default();
    let (mut out, mut rx) = setup(rng);
    let alices = out.encrypt(rng, b"alice wrote this").unwrap();
    let mallory = sender(rng, b"mallory's address");
    let mut as_mallory = InboundSenderKey::new(mallory, &out.distribution());
    refused(&mut as_mallory, &c, &alices, GroupError::BadSignature);
    // Same identity key, other context: another device address.
    let identity = out.owner().identity();
    let elsewhere = GroupSender::new(identity, b"another address").unwrap();
    let mut as_elsewhere = InboundSenderKey::new(elsewhere, &out.distribution());
    refused(&mut as_elsewhere, &c, &alices, GroupError::BadSignature);
    assert_eq!(recv(&mut rx, &c, &alices).unwrap(), b"alice wrote this");
    assert!(GroupSender::new(identity, &[0; 65]).is_none());
}

/// The signature binds the caller's per-message context, length first: a message sealed with
/// one context opens only with that context — not with none, another, or one a byte shorter or
/// longer — and a plain message opens only with the empty one. A context longer than
/// `MAX_MESSAGE_CONTEXT` is `ContextTooLong` on either side, and nothing changes.
#[test]
fn a_group_message_opens_only_with_the_context_it_was_sealed_with() {
    let rng = &mut SeededRng::from_label("group context");
    let c = GroupConfig::default();
    let (mut out, mut rx) = setup(rng);
    let open = |rx: &mut InboundSenderKey, wire: &[u8], context: &[u8]| {
        let before = rx.to_bytes();
        let m = GroupMessage::decode(wire).unwrap();
        let got = rx.decrypt_bound(&c, &m, context).map(|p| p.to_vec());
        if got.is_err() {
            assert_eq!(
                *before,
                *rx.to_bytes(),
                "a refused group message changed state"
            );
        }
        got
    };
    let context = b"\x02\x0b\x02 sender, list version 2";
    let bound = out.encrypt_bound(rng, b"bound", context).unwrap();
    let plain = out.encrypt(rng, b"plain").unwrap();
    let shorter = &context[..context.len() - 1];
    let longer = [&context[..], &bound[..1]].concat();
    for wrong in [
        &b""[..],
        b"\x02\x0b\x02 sender, list version 1",
        shorter,
        &longer,
    ] {
        assert_eq!(open(&mut rx, &bound, wrong), Err(GroupError::BadSignature));
    }
    assert_eq!(
        open(&mut rx, &plain, context),
        Err(GroupError::BadSignature)
    );
    assert_eq!(open(&mut rx, &plain, b"\0"), Err(GroupError::BadSignature));

    let too_long = [0u8; MAX_MESSAGE_CONTEXT + 1];
    assert_eq!(
        open(&mut rx, &bound, &too_long),
        Err(GroupError::ContextTooLong)
    );
    let before = out.to_bytes();
    let mut draws = rng.clone();
    assert_eq!(
        out.encrypt_bound(&mut draws, b"x", &too_long).err(),
        Some(GroupError::ContextTooLong)
    );
    assert_eq!(*before, *out.to_bytes());
    let longest = [7u8; MAX_MESSAGE_CONTEXT];
    let at_limit = out.encrypt_bound(rng, b"at the limit", &longest).unwrap();

    assert_eq!(open(&mut rx, &bound, context).unwrap(), b"bound");
    assert_eq!(recv(&mut rx, &c, &plain).unwrap(), b"plain");
    assert_eq!(open(&mut rx, &at_limit, &longest).unwrap(), b"at the limit");
}

#[test]
fn unknown_group_and_key_id() {
    let rng = &mut SeededRng::from_label("group unknown");
    let c = GroupConfig::default();
    let (out, mut rx) = setup(rng);
    let mut other = OutboundGroupSession::new(rng, GroupId([8; 32]), out.owner().clone());
    refused(
        &mut rx,
        &c,
        &other.encrypt(rng, b"y").unwrap(),
        GroupError::UnknownSender,
    );
    let mut rotated = OutboundGroupSession::from_bytes(&out.to_bytes()).unwrap();
    rotated.rotate(rng);
    assert_ne!(rotated.key_id(), out.key_id());
    refused(
        &mut rx,
        &c,
        &rotated.encrypt(rng, b"z").unwrap(),
        GroupError::UnknownKeyId(rotated.key_id().0),
    );
}

#[test]
fn rotation_keeps_bounded_generations_by_arrival_and_excludes_late_joiners() {
    let rng = &mut SeededRng::from_label("group rotation");
    let c = GroupConfig {
        max_generations: 2,
        ..GroupConfig::default()
    };
    let (mut out, mut rx) = setup(rng);
    let first_key = out.key_id();
    let in_flight = out.encrypt(rng, b"gen 1").unwrap();
    let d2 = out.rotate(rng);
    rx.process_distribution(&c, &d2).unwrap();
    let g2 = out.encrypt(rng, b"gen 2").unwrap();
    assert_eq!(recv(&mut rx, &c, &g2).unwrap(), b"gen 2");
    assert_eq!(recv(&mut rx, &c, &in_flight).unwrap(), b"gen 1");

    // A device that joins now gets only generation 2 from the current iteration on.
    let mut late = InboundSenderKey::new(out.owner().clone(), &out.distribution());
    refused(&mut late, &c, &g2, GroupError::PredatesKey(out.key_id().0));
    refused(
        &mut late,
        &c,
        &in_flight,
        GroupError::UnknownKeyId(first_key.0),
    );
    let g2b = out.encrypt(rng, b"after join").unwrap();
    assert_eq!(recv(&mut late, &c, &g2b).unwrap(), b"after join");

    // A third generation evicts the one that arrived first (max 2 kept).
    let old = out.encrypt(rng, b"late gen 2").unwrap();
    let second_key = out.key_id();
    rx.process_distribution(&c, &out.rotate(rng)).unwrap();
    assert!(!rx.has_key(first_key));
    assert!(rx.has_key(second_key));
    assert_eq!(recv(&mut rx, &c, &old).unwrap(), b"late gen 2");
}

#[test]
fn distribution_is_idempotent_and_never_rewinds() {
    let rng = &mut SeededRng::from_label("group idempotent");
    let c = GroupConfig::default();
    let (mut out, mut rx) = setup(rng);
    let early = out.distribution();
    let w0 = out.encrypt(rng, b"0").unwrap();
    recv(&mut rx, &c, &w0).unwrap();
    let before = rx.to_bytes();
    rx.process_distribution(&c, &early).unwrap();
    rx.process_distribution(&c, &out.distribution()).unwrap();
    assert_eq!(*before, *rx.to_bytes());
    refused(&mut rx, &c, &w0, GroupError::Duplicate);

    // Same key id, different signing key: refused without change.
    let impostor = OutboundGroupSession::new(rng, GROUP, out.owner().clone());
    let mut bytes = impostor.distribution().to_bytes().to_vec();
    bytes[34..38].copy_from_slice(&out.key_id().0.to_be_bytes());
    let d = SenderKeyDistribution::from_bytes(&bytes).unwrap();
    assert_eq!(
        rx.process_distribution(&c, &d),
        Err(GroupError::ConflictingDistribution)
    );
    assert_eq!(*before, *rx.to_bytes());
    // A distribution of another group is not this sender's key for this group.
    let other = OutboundGroupSession::new(rng, GroupId([9; 32]), out.owner().clone());
    assert_eq!(
        rx.process_distribution(&c, &other.distribution()),
        Err(GroupError::UnknownSender)
    );
}

#[test]
fn forward_jump_and_skipped_limits() {
    let rng = &mut SeededRng::from_label("group limits");
    let c = GroupConfig {
        max_forward_jump: 10,
        max_skipped_keys: 3,
        max_generations: 4,
    };
    let (mut out, mut rx) = setup(rng);
    let m: Vec<_> = (0..12u8).map(|i| out.encrypt(rng, &[i]).unwrap()).collect();
    refused(
        &mut rx,
        &c,
        &m[11],
        GroupError::TooFarAhead {
            requested: 11,
            limit: 10,
        },
    );
    assert_eq!(recv(&mut rx, &c, &m[10]).unwrap(), [10]);
    assert_eq!(recv(&mut rx, &c, &m[9]).unwrap(), [9]);
    assert_eq!(recv(&mut rx, &c, &m[7]).unwrap(), [7]);
    refused(&mut rx, &c, &m[6], GroupError::Duplicate);
    // The jump is counted from where the receiver is, not from the start of the chain.
    let later: Vec<_> = (0..10u8).map(|i| out.encrypt(rng, &[i]).unwrap()).collect();
    assert_eq!(recv(&mut rx, &c, &later[9]).unwrap(), [9]);
}

/// A sender restored from a stale copy of its state (without `rotate`) reuses a chain
/// counter: the two messages still use different keys and nonces (the header salt enters the
/// key derivation), so their ciphertexts reveal nothing about each other, and a receiver
/// accepts only the first.
#[test]
fn a_reused_counter_never_reuses_a_keystream() {
    let rng = &mut SeededRng::from_label("group salt");
    let c = GroupConfig::default();
    let (mut out, mut rx) = setup(rng);
    let stale = out.to_bytes();
    let a = out.encrypt(rng, &[0u8; 64]).unwrap();
    let mut restored = OutboundGroupSession::from_bytes(&stale).unwrap();
    let b = restored.encrypt(rng, &[0u8; 64]).unwrap();
    let (ma, mb) = (
        GroupMessage::decode(&a).unwrap(),
        GroupMessage::decode(&b).unwrap(),
    );
    assert_eq!(ma.iteration(), mb.iteration());
    // Equal plaintexts under a repeated keystream would give equal ciphertexts.
    assert_ne!(a[58..122], b[58..122]);
    assert_eq!(recv(&mut rx, &c, &a).unwrap(), [0u8; 64]);
    refused(&mut rx, &c, &b, GroupError::Duplicate);
}

#[test]
fn state_round_trips() {
    let rng = &mut SeededRng::from_label("group persist");
    let c = GroupConfig::default();
    let (mut out, mut rx) = setup(rng);
    let m: Vec<_> = (0..3u8).map(|i| out.encrypt(rng, &[i]).unwrap()).collect();
    recv(&mut rx, &c, &m[2]).unwrap();
    let bytes = rx.to_bytes();
    let mut restored = InboundSenderKey::from_bytes(&bytes).unwrap();
    assert_eq!(*restored.to_bytes(), *bytes);
    assert_eq!(recv(&mut restored, &c, &m[0]).unwrap(), [0]);
    for len in 0..bytes.len() {
        assert!(InboundSenderKey::from_bytes(&bytes[..len]).is_err());
    }
    let ob = out.to_bytes();
    let mut out2 = OutboundGroupSession::from_bytes(&ob).unwrap();
    assert_eq!(*out2.to_bytes(), *ob);
    let mut r2 = rng.clone();
    assert_eq!(
        out2.encrypt(&mut r2, b"same").unwrap(),
        out.encrypt(rng, b"same").unwrap()
    );

    let d = out.distribution().to_bytes();
    let mut v = d.to_vec();
    v.push(0);
    assert_eq!(
        SenderKeyDistribution::from_bytes(&v).err(),
        Some(DecodeError::TrailingBytes)
    );
    assert!(!format!("{:?}", out.distribution()).contains(&hex::encode(&d[42..74])));
    assert!(!format!("{rx:?}").contains(&hex::encode(&d[42..74])));
}

/// Inbound state bytes are refused unless this crate could have written them: a generation
/// needs a nonzero key id, a first iteration not after its current one, skipped iterations
/// strictly ascending within [first, current), and key ids distinct across generations.
#[test]
fn inbound_state_decoding_refuses_what_it_would_not_write() {
    let rng = &mut SeededRng::from_label("group inbound state");
    let c = GroupConfig::default();
    let (mut out, mut rx) = setup(rng);
    let m: Vec<_> = (0..4u8).map(|i| out.encrypt(rng, &[i]).unwrap()).collect();
    recv(&mut rx, &c, &m[3]).unwrap();
    // One generation, first iteration 0, current 4, skipped 0, 1, 2: its fields sit at the end.
    let good = rx.to_bytes().to_vec();
    let g = good.len() - (80 + 3 * 36);
    let (key_id, first, skipped) = (g, g + 68, |k: usize| g + 80 + 36 * k);
    let patched = |at: usize, value: u32| {
        let mut b = good.clone();
        b[at..at + 4].copy_from_slice(&value.to_be_bytes());
        InboundSenderKey::from_bytes(&b).err()
    };
    assert!(InboundSenderKey::from_bytes(&good).is_ok());
    assert_eq!(patched(skipped(0), 0), None, "the fields found");
    for (at, value) in [
        (key_id, 0),     // key id 0
        (first, 5),      // first after current
        (first, 1),      // a skipped iteration before first
        (skipped(1), 0), // skipped iterations repeat
        (skipped(2), 4), // a skipped iteration at current
    ] {
        assert_eq!(
            patched(at, value),
            Some(DecodeError::InvalidValue),
            "{at} {value}"
        );
    }
    // Two generations decode; the same key id twice does not.
    let d = out.rotate(rng);
    rx.process_distribution(&c, &d).unwrap();
    let two = rx.to_bytes().to_vec();
    assert!(InboundSenderKey::from_bytes(&two).is_ok());
    let mut repeated = two.clone();
    let last = repeated.len() - 80;
    repeated[last..last + 4].copy_from_slice(&good[key_id..key_id + 4]);
    assert_eq!(
        InboundSenderKey::from_bytes(&repeated).err(),
        Some(DecodeError::InvalidValue)
    );
}

/// `Debug` names the group, the sender and the key ids held, never key bytes.
#[test]
fn inbound_debug_shows_ids_not_keys() {
    let rng = &mut SeededRng::from_label("group inbound debug");
    let (out, rx) = setup(rng);
    let shown = format!("{rx:?}");
    assert!(shown.starts_with("InboundSenderKey"), "{shown}");
    assert!(shown.contains(&format!("{:?}", out.key_id())), "{shown}");
    // The one generation's chain key: the 32 bytes after its key id and signing key.
    let state = rx.to_bytes();
    let chain = &state[state.len() - 44..state.len() - 12];
    let hex: String = chain.iter().map(|b| format!("{b:02x}")).collect();
    let decimal = format!("{:?}", &chain[..4]);
    assert!(!shown.contains(&hex), "{shown}");
    assert!(!shown.contains(decimal.trim_end_matches(']')), "{shown}");
}
