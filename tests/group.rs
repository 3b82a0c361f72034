//! Sender-key groups: distribution, in-order and out-of-order decryption, rotation, limits,
//! and the transactional guarantee (a refused message leaves the receiver byte-identical).

use ratchetry::group::{
    GroupConfig, GroupId, GroupMessage, GroupReceiver, OutboundGroupSession, SenderKeyDistribution,
    SenderKeyId,
};
use ratchetry::testing::SeededRng;
use ratchetry::{DecodeError, GroupError, IdentityKey, IdentityKeyPair};

const GROUP: GroupId = GroupId([7; 32]);

fn setup(
    rng: &mut SeededRng,
    config: GroupConfig,
) -> (OutboundGroupSession, IdentityKey, GroupReceiver) {
    let alice = IdentityKeyPair::generate(rng).public();
    let out = OutboundGroupSession::new(rng, GROUP, &alice);
    let mut rx = GroupReceiver::new(config);
    let d = SenderKeyDistribution::from_bytes(&out.distribution().to_bytes()).unwrap();
    rx.process_distribution(&alice, &d).unwrap();
    (out, alice, rx)
}

fn recv(
    rx: &mut GroupReceiver,
    sender: &IdentityKey,
    wire: &[u8],
) -> Result<Vec<u8>, ratchetry::Error> {
    Ok(rx.decrypt(sender, &GroupMessage::decode(wire)?)?)
}

fn refused(rx: &mut GroupReceiver, sender: &IdentityKey, wire: &[u8], expected: ratchetry::Error) {
    let before = rx.to_bytes();
    assert_eq!(recv(rx, sender, wire), Err(expected));
    assert_eq!(
        *before,
        *rx.to_bytes(),
        "a refused group message changed state"
    );
}

#[test]
fn messages_decrypt_in_and_out_of_order_once() {
    let rng = &mut SeededRng::from_label("group order");
    let (mut out, alice, mut rx) = setup(rng, GroupConfig::default());
    let m: Vec<_> = (0..5u8).map(|i| out.encrypt(&[i; 10]).unwrap()).collect();
    assert_eq!(recv(&mut rx, &alice, &m[0]).unwrap(), [0; 10]);
    assert_eq!(recv(&mut rx, &alice, &m[3]).unwrap(), [3; 10]);
    assert_eq!(recv(&mut rx, &alice, &m[1]).unwrap(), [1; 10]);
    assert_eq!(recv(&mut rx, &alice, &m[4]).unwrap(), [4; 10]);
    assert_eq!(recv(&mut rx, &alice, &m[2]).unwrap(), [2; 10]);
    for w in &m {
        refused(&mut rx, &alice, w, GroupError::Duplicate.into());
    }
}

#[test]
fn signature_is_checked_before_anything_else() {
    let rng = &mut SeededRng::from_label("group sig");
    let (mut out, alice, mut rx) = setup(rng, GroupConfig::default());
    let w = out.encrypt(b"hello group").unwrap();
    for i in 2..w.len() {
        let mut bad = w.clone();
        bad[i] ^= 0x20;
        let before = rx.to_bytes();
        let r = recv(&mut rx, &alice, &bad);
        assert!(r.is_err(), "flip at {i} accepted");
        assert_eq!(*before, *rx.to_bytes());
    }
    // A forged header (iteration far ahead) fails the signature, not the jump limit.
    let mut far = w.clone();
    far[38..42].copy_from_slice(&u32::MAX.to_be_bytes());
    refused(&mut rx, &alice, &far, GroupError::BadSignature.into());
    // Another member's key cannot sign as Alice.
    let mallory = IdentityKeyPair::generate(rng).public();
    let mut mallory_out = OutboundGroupSession::new(rng, GROUP, &mallory);
    let forged = mallory_out.encrypt(b"i am alice").unwrap();
    refused(&mut rx, &alice, &forged, GroupError::BadSignature.into());
    // A member who got Alice's key and re-distributed it as its own cannot present Alice's
    // messages as its own: the signature binds Alice's identity.
    rx.process_distribution(&mallory, &out.distribution())
        .unwrap();
    let alices = out.encrypt(b"alice wrote this").unwrap();
    refused(&mut rx, &mallory, &alices, GroupError::BadSignature.into());
    assert_eq!(recv(&mut rx, &alice, &alices).unwrap(), b"alice wrote this");
    for len in 0..w.len() {
        assert!(recv(&mut rx, &alice, &w[..len]).is_err());
    }
    assert_eq!(recv(&mut rx, &alice, &w).unwrap(), b"hello group");
}

#[test]
fn unknown_sender_group_and_key_id() {
    let rng = &mut SeededRng::from_label("group unknown");
    let (mut out, alice, mut rx) = setup(rng, GroupConfig::default());
    let bob = IdentityKeyPair::generate(rng).public();
    let w = out.encrypt(b"x").unwrap();
    refused(&mut rx, &bob, &w, GroupError::UnknownSender.into());
    let mut other = OutboundGroupSession::new(rng, GroupId([8; 32]), &alice);
    refused(
        &mut rx,
        &alice,
        &other.encrypt(b"y").unwrap(),
        GroupError::UnknownSender.into(),
    );
    let mut rotated = OutboundGroupSession::from_bytes(&out.to_bytes()).unwrap();
    rotated.rotate(rng).unwrap();
    refused(
        &mut rx,
        &alice,
        &rotated.encrypt(b"z").unwrap(),
        GroupError::UnknownKeyId(2).into(),
    );
}

#[test]
fn rotation_keeps_bounded_generations_and_excludes_late_joiners() {
    let rng = &mut SeededRng::from_label("group rotation");
    let config = GroupConfig {
        max_generations: 2,
        ..GroupConfig::default()
    };
    let (mut out, alice, mut rx) = setup(rng, config);
    let in_flight = out.encrypt(b"gen 1").unwrap();
    let d2 = out.rotate(rng).unwrap();
    assert_eq!(d2.key_id(), SenderKeyId(2));
    rx.process_distribution(&alice, &d2).unwrap();
    let g2 = out.encrypt(b"gen 2").unwrap();
    assert_eq!(recv(&mut rx, &alice, &g2).unwrap(), b"gen 2");
    assert_eq!(recv(&mut rx, &alice, &in_flight).unwrap(), b"gen 1");

    // A device that joins now gets only generation 2 from the current iteration on.
    let mut late = GroupReceiver::new(config);
    late.process_distribution(&alice, &out.distribution())
        .unwrap();
    refused(&mut late, &alice, &g2, GroupError::PredatesKey(2).into());
    refused(
        &mut late,
        &alice,
        &in_flight,
        GroupError::UnknownKeyId(1).into(),
    );
    let g2b = out.encrypt(b"after join").unwrap();
    assert_eq!(recv(&mut late, &alice, &g2b).unwrap(), b"after join");

    // A third generation evicts the first (max 2 kept).
    let old = out.encrypt(b"late gen 2").unwrap();
    rx.process_distribution(&alice, &out.rotate(rng).unwrap())
        .unwrap();
    assert!(!rx.has_sender_key(GROUP, &alice, SenderKeyId(1)));
    assert!(rx.has_sender_key(GROUP, &alice, SenderKeyId(2)));
    assert_eq!(recv(&mut rx, &alice, &old).unwrap(), b"late gen 2");
}

#[test]
fn distribution_is_idempotent_and_never_rewinds() {
    let rng = &mut SeededRng::from_label("group idempotent");
    let (mut out, alice, mut rx) = setup(rng, GroupConfig::default());
    let early = out.distribution();
    let w0 = out.encrypt(b"0").unwrap();
    recv(&mut rx, &alice, &w0).unwrap();
    let before = rx.to_bytes();
    rx.process_distribution(&alice, &early).unwrap();
    rx.process_distribution(&alice, &out.distribution())
        .unwrap();
    assert_eq!(*before, *rx.to_bytes());
    refused(&mut rx, &alice, &w0, GroupError::Duplicate.into());

    // Same key id, different signing key: refused without change.
    let mut impostor = OutboundGroupSession::new(rng, GROUP, &alice);
    let d = impostor.distribution();
    assert_eq!(
        rx.process_distribution(&alice, &d),
        Err(GroupError::ConflictingDistribution)
    );
    assert_eq!(*before, *rx.to_bytes());
    let _ = impostor.encrypt(b"").unwrap();
}

#[test]
fn forward_jump_and_skipped_limits() {
    let rng = &mut SeededRng::from_label("group limits");
    let config = GroupConfig {
        max_forward_jump: 10,
        max_skipped_keys: 3,
        max_generations: 4,
    };
    let (mut out, alice, mut rx) = setup(rng, config);
    let m: Vec<_> = (0..12u8).map(|i| out.encrypt(&[i]).unwrap()).collect();
    refused(
        &mut rx,
        &alice,
        &m[11],
        GroupError::TooFarAhead {
            requested: 11,
            limit: 10,
        }
        .into(),
    );
    assert_eq!(recv(&mut rx, &alice, &m[10]).unwrap(), [10]);
    assert_eq!(recv(&mut rx, &alice, &m[9]).unwrap(), [9]);
    assert_eq!(recv(&mut rx, &alice, &m[7]).unwrap(), [7]);
    refused(&mut rx, &alice, &m[6], GroupError::Duplicate.into());
}

#[test]
fn state_round_trips_and_forgetting_a_sender() {
    let rng = &mut SeededRng::from_label("group persist");
    let (mut out, alice, mut rx) = setup(rng, GroupConfig::default());
    let m: Vec<_> = (0..3u8).map(|i| out.encrypt(&[i]).unwrap()).collect();
    recv(&mut rx, &alice, &m[2]).unwrap();
    let bytes = rx.to_bytes();
    let mut restored = GroupReceiver::from_bytes(&bytes).unwrap();
    assert_eq!(*restored.to_bytes(), *bytes);
    assert_eq!(recv(&mut restored, &alice, &m[0]).unwrap(), [0]);
    for len in 0..bytes.len() {
        assert!(GroupReceiver::from_bytes(&bytes[..len]).is_err());
    }
    let ob = out.to_bytes();
    let mut out2 = OutboundGroupSession::from_bytes(&ob).unwrap();
    assert_eq!(*out2.to_bytes(), *ob);
    assert_eq!(
        out2.encrypt(b"same").unwrap(),
        out.encrypt(b"same").unwrap()
    );
    restored.forget_sender(GROUP, &alice);
    refused(
        &mut restored,
        &alice,
        &m[1],
        GroupError::UnknownSender.into(),
    );

    let d = out.distribution().to_bytes();
    let mut v = d.to_vec();
    v.push(0);
    assert_eq!(
        SenderKeyDistribution::from_bytes(&v).err(),
        Some(DecodeError::TrailingBytes)
    );
    assert!(!format!("{:?}", out.distribution()).contains(&hex::encode(&d[42..74])));
}
