//! The post-quantum ratchet under the fanout layer: devices run it by default with every peer
//! that starts a session with them; a device whose keys come from a release before it
//! (`testing::hooks::before_pq_ratchet`) does not until its first rotation; and once a pair
//! runs it, nothing is sent between them over a session that does not: not after a stale
//! bundle, not after sessions started at once, and a retry's answer settles both ends on one
//! session.

mod support;
use ratchetry::devices::DeviceAddress;
use ratchetry::fanout::{Received, RetryReason};
use ratchetry::group::GroupId;
use ratchetry::testing::hooks::before_pq_ratchet;
use support::{World, body, tampered};

/// `d` holds the ML-KEM prekeys of a release from before the ratchet: its bundles, and the
/// keys it generates until it rotates, are unmarked.
fn from_before(w: &mut World, d: DeviceAddress) {
    let none = ratchetry::x3dh::OneTimePreKeys::default();
    before_pq_ratchet(w.devices.get_mut(&d).unwrap(), &none);
    w.persist(d);
}

/// `d`, upgraded, rotates: its bundles carry a marked ML-KEM prekey from then on.
fn upgrade(w: &mut World, d: DeviceAddress) {
    let (rng, now) = (&mut w.rng, w.now);
    w.devices
        .get_mut(&d)
        .unwrap()
        .rotate_signed_prekey(rng, now);
    w.persist(d);
}

/// `from` starts sessions from `bundles`, as after a refresh of its peers' bundles.
fn start(w: &mut World, from: DeviceAddress, bundles: &[(DeviceAddress, ratchetry::PreKeyBundle)]) {
    let (rng, now) = (&mut w.rng, w.now);
    w.devices
        .get_mut(&from)
        .unwrap()
        .start_sessions(rng, now, bundles)
        .unwrap();
    w.persist(from);
}

/// Messages both ways, each read.
fn converse(w: &mut World, a: DeviceAddress, b: DeviceAddress, rounds: usize) {
    for i in 0..rounds {
        let text = format!("a{i}");
        let out = w.send(a, b.account, text.as_bytes());
        assert_eq!(body(&w.deliver_ok(&out)[0].1), Some(text.as_bytes()));
        let text = format!("b{i}");
        let out = w.send(b, a.account, text.as_bytes());
        assert_eq!(body(&w.deliver_ok(&out)[0].1), Some(text.as_bytes()));
    }
}

#[test]
fn devices_run_it_by_default_through_fanout_and_restarts() {
    let mut w = World::new("pq devices");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a, b) = (World::addr(alice, 1), World::addr(bob, 1));
    for i in 0..150 {
        let out = w.send(a, bob, format!("a{i}").as_bytes());
        w.deliver_ok(&out);
        let out = w.send(b, alice, format!("b{i}").as_bytes());
        w.deliver_ok(&out);
        if i == 75 {
            w.restart(a);
            w.restart(b);
        }
    }
    let (ea, eb) = (
        w.device(a).pq_ratchet_epoch(&b).unwrap(),
        w.device(b).pq_ratchet_epoch(&a).unwrap(),
    );
    assert!(ea.min(eb) >= 3, "epochs {ea} {eb}");
}

#[test]
fn a_device_with_keys_from_before_it_does_not_run_it() {
    let mut w = World::new("no pq devices");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a, b) = (World::addr(alice, 1), World::addr(bob, 1));
    from_before(&mut w, b);
    let out = w.send(a, bob, b"hi");
    w.deliver_ok(&out);
    assert!(w.device(a).has_session(&b));
    assert_eq!(w.device(a).pq_ratchet_epoch(&b), None);
}

/// Sessions from before a peer upgraded are listed; after its rotation, one bundle refresh
/// moves the pair onto a session that runs the ratchet, at both ends, and a stale bundle a
/// server kept from before cannot move it back.
#[test]
fn a_peer_that_upgrades_runs_it_after_one_refresh_and_a_stale_bundle_changes_nothing() {
    let mut w = World::new("pq migration");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a, b) = (World::addr(alice, 1), World::addr(bob, 1));
    from_before(&mut w, a);
    from_before(&mut w, b);
    converse(&mut w, a, b, 2);
    assert_eq!(w.device(a).sessions_without_pq_ratchet(), [b]);
    assert_eq!(w.device(b).sessions_without_pq_ratchet(), [a]);
    let stale = w.device(b).bundle(None, None);
    assert!(!stale.kem_prekey().id.pq_ratchet());

    upgrade(&mut w, b);
    let fresh = w.device(b).bundle(None, None);
    assert!(fresh.kem_prekey().id.pq_ratchet());
    start(&mut w, a, &[(b, fresh)]);
    assert_eq!(w.device(a).pq_ratchet_epoch(&b), Some(0));
    assert!(w.device(a).sessions_without_pq_ratchet().is_empty());
    converse(&mut w, a, b, 80);
    let epoch = w.device(a).pq_ratchet_epoch(&b).unwrap();
    assert!(epoch >= 1, "epoch {epoch}");
    assert!(w.device(b).pq_ratchet_epoch(&a).is_some());
    assert!(w.device(b).sessions_without_pq_ratchet().is_empty());

    // The stale bundle starts a session without the ratchet: kept behind, never sent over.
    start(&mut w, a, &[(b, stale)]);
    assert_eq!(w.device(a).pq_ratchet_epoch(&b), Some(epoch));
    converse(&mut w, a, b, 2);
    w.restart(a);
    w.restart(b);
    assert!(w.device(a).pq_ratchet_epoch(&b).unwrap() >= epoch);
    assert!(w.device(b).pq_ratchet_epoch(&a).is_some());
    converse(&mut w, a, b, 2);
}

/// Two devices start sessions with each other at once, one from a bundle that runs the
/// ratchet and one from a bundle that does not. The weaker arrives last at the device whose
/// own session runs it: both still settle on the one that runs it.
#[test]
fn sessions_started_at_once_settle_on_the_one_that_runs_it() {
    let mut w = World::new("pq race");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a, b) = (World::addr(alice, 1), World::addr(bob, 1));
    from_before(&mut w, b);
    let to_bob = w.send(a, bob, b"from alice");
    let to_alice = w.send(b, alice, b"from bob");
    assert_eq!(w.device(a).pq_ratchet_epoch(&b), None);
    assert_eq!(w.device(b).pq_ratchet_epoch(&a), Some(0));
    assert_eq!(body(&w.deliver_ok(&to_alice)[0].1), Some(&b"from bob"[..]));
    assert_eq!(body(&w.deliver_ok(&to_bob)[0].1), Some(&b"from alice"[..]));
    assert!(w.device(a).pq_ratchet_epoch(&b).is_some());
    assert!(w.device(b).pq_ratchet_epoch(&a).is_some());
    converse(&mut w, a, b, 80);
    assert!(w.device(a).pq_ratchet_epoch(&b).unwrap() >= 1);
    assert!(w.device(a).sessions_without_pq_ratchet().is_empty());
    assert!(w.device(b).sessions_without_pq_ratchet().is_empty());
}

/// A retry's answer comes in a new session from the requester's bundle. When that bundle
/// does not run the ratchet, the answer's session is weaker than the pair's: it still becomes
/// current at both ends (the answerer drops the stronger one, and so does the requester when
/// the answer arrives), so neither end sends where the other no longer reads.
#[test]
fn a_retry_answered_in_a_weaker_session_settles_both_ends_on_it() {
    let mut w = World::new("pq retry");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a, b) = (World::addr(alice, 1), World::addr(bob, 1));
    from_before(&mut w, b);
    converse(&mut w, b, a, 3);
    assert!(w.device(a).pq_ratchet_epoch(&b).is_some());
    let out = w.send(a, bob, b"lost");
    let failed = tampered(&World::envelope_to(&out, b));
    assert!(w.receive(b, &failed).is_err());
    let answer = w.ask_again(b, a, &failed, b"lost");
    assert_eq!(w.device(a).pq_ratchet_epoch(&b), None);
    assert_eq!(body(&w.deliver_ok(&answer)[0].1), Some(&b"lost"[..]));
    assert_eq!(w.device(b).pq_ratchet_epoch(&a), None);
    converse(&mut w, a, b, 3);
    converse(&mut w, b, a, 3);
}

/// A retry for a missing sender key keeps the session: the key went out over it, and the
/// answer (the key again, then the message) goes out over it too, so a pair that runs the
/// ratchet keeps running it even when the requester's own bundle does not.
#[test]
fn a_sender_key_retry_is_answered_on_the_session_that_runs_it() {
    const ROOM: GroupId = GroupId([7; 32]);
    let mut w = World::new("pq sender key retry");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob]);
    let (a, b) = (World::addr(alice, 1), World::addr(bob, 1));
    from_before(&mut w, b);
    converse(&mut w, b, a, 2);
    let epoch = w.device(a).pq_ratchet_epoch(&b).unwrap();
    // The group message arrives; its sender key's distribution is lost.
    let out = w.send_group(a, ROOM, b"early");
    let (group, _) = out.group.clone().unwrap();
    assert!(w.receive(b, &group).is_err());
    let (to, request) = w
        .request_retry(b, &group, RetryReason::SenderKeyMissing)
        .unwrap();
    assert_eq!(to, a);
    let Ok(Received::RetryRequest(req)) = w.receive(a, &request) else {
        panic!("a retry request")
    };
    let answer = w
        .run(a, |d, rng, now| d.answer_retry(rng, now, &req, b"early"))
        .unwrap();
    let got = w.deliver_ok(&answer);
    assert!(got.iter().any(|(_, r)| body(r) == Some(&b"early"[..])));
    assert_eq!(w.device(a).pq_ratchet_epoch(&b), Some(epoch));
    assert!(w.device(b).pq_ratchet_epoch(&a).is_some());
    converse(&mut w, a, b, 2);
}
