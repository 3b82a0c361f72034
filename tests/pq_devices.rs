//! The post-quantum ratchet under the fanout layer: devices of an account that enabled it
//! (`Device::enable_pq_ratchet`) run it with every peer that starts a session with them.

mod support;
use support::World;

#[test]
fn devices_that_enable_it_run_it_through_fanout_and_restarts() {
    let mut w = World::new("pq devices");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a, b) = (World::addr(alice, 1), World::addr(bob, 1));
    for d in [a, b] {
        let (rng, now) = (&mut w.rng, w.now);
        let device = w.devices.get_mut(&d).unwrap();
        device.enable_pq_ratchet();
        device.rotate_signed_prekey(rng, now);
        w.persist(d);
    }
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
fn devices_that_did_not_enable_it_do_not_run_it() {
    let mut w = World::new("no pq devices");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a, b) = (World::addr(alice, 1), World::addr(bob, 1));
    let out = w.send(a, bob, b"hi");
    w.deliver_ok(&out);
    assert!(w.device(a).has_session(&b));
    assert_eq!(w.device(a).pq_ratchet_epoch(&b), None);
}
