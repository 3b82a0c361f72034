//! A group send keeps what it reached (the member devices and their lists) for the next send,
//! and a steady send neither walks the members' lists again nor distributes anything. Each
//! change that alters what a send must reach is seen at the next send: a list updated (a
//! companion linked), a companion's validity running out, members changed, and a device
//! restored in place (its own account's devices left out).

mod support;

use ratchetry::devices::DeviceAddress;
use ratchetry::fanout::Outbox;
use ratchetry::group::GroupId;
use support::World;

const G: GroupId = GroupId([0x33; 32]);

/// The devices the group envelope reaches, and those given the key pairwise.
fn reached(o: &Outbox) -> (Vec<DeviceAddress>, Vec<DeviceAddress>) {
    let group = o.group.as_ref().expect("a group send").1.to_vec();
    let mut given: Vec<_> = o.envelopes.iter().map(|(d, _)| *d).collect();
    given.sort();
    (group, given)
}

fn sorted(mut v: Vec<DeviceAddress>) -> Vec<DeviceAddress> {
    v.sort();
    v
}

/// Alice (phone and laptop) and Bob (phone and laptop) in group G; Alice's phone has sent
/// twice, so its second send was steady.
fn steady_world(label: &str) -> (World, [DeviceAddress; 4]) {
    let mut w = World::new(label);
    let alice = w.account(1);
    let bob = w.account(1);
    w.publish_all();
    let d = [
        World::addr(alice, 1),
        World::addr(alice, 2),
        World::addr(bob, 1),
        World::addr(bob, 2),
    ];
    w.set_members(G, &[alice, bob]);
    let first = w.send_group(d[0], G, b"one");
    assert_eq!(
        reached(&first),
        (sorted(d[1..].to_vec()), sorted(d[1..].to_vec()))
    );
    w.deliver_ok(&first);
    let steady = w.send_group(d[0], G, b"two");
    assert_eq!(reached(&steady), (sorted(d[1..].to_vec()), vec![]));
    w.deliver_ok(&steady);
    (w, d)
}

#[test]
fn a_companion_linked_since_gets_the_key_at_the_next_send() {
    let (mut w, d) = steady_world("reach linked");
    let bob = d[2].account;
    let b3 = w.link(&bob);
    w.publish_all();
    w.set_members(G, &[d[0].account, bob]);
    let o = w.send_group(d[0], G, b"three");
    let mut all = d[1..].to_vec();
    all.push(b3);
    // No one left: the key is given to the new device alone, without rotating.
    assert_eq!(reached(&o), (sorted(all), vec![b3]));
    let read = w.deliver_ok(&o);
    assert!(
        read.iter()
            .any(|(to, r)| *to == b3 && support::body(r) == Some(b"three"))
    );
}

#[test]
fn a_companion_whose_validity_ran_out_is_left_out_and_the_key_rotates() {
    let (mut w, d) = steady_world("reach expiry");
    let bob = d[2].account;
    let expires = w
        .primary(&bob)
        .device_list()
        .entries()
        .iter()
        .find(|e| e.id == d[3].device)
        .and_then(|e| e.expires_at)
        .expect("a companion expires");
    w.now = expires;
    let o = w.send_group(d[0], G, b"three");
    // Both laptops were linked together and run out together; they may still hold the
    // current key, so the one device left gets a new one.
    assert_eq!(reached(&o), (vec![d[2]], vec![d[2]]));
}

#[test]
fn members_changed_are_seen_at_the_next_send() {
    let (mut w, d) = steady_world("reach members");
    let alice = d[0].account;
    w.set_members(G, &[alice]);
    let o = w.send_group(d[0], G, b"three");
    assert_eq!(reached(&o), (vec![d[1]], vec![d[1]]));
}

#[test]
fn a_device_restored_in_place_leaves_its_own_account_out() {
    let (mut w, d) = steady_world("reach restored");
    // Every other device writes to the phone (the laptop through its own copy): the phone's
    // sessions have heard back, so they survive the restore, and nothing but the reach
    // decides whom the phone sends to.
    for (from, to) in [(d[1], d[2]), (d[2], d[0]), (d[3], d[0])] {
        let o = w.send(from, to.account, b"hello");
        w.deliver_ok(&o);
    }
    let now = w.now;
    let mut phone = w.devices.remove(&d[0]).unwrap().into_restored(now);
    // The app sets the group's members again, as every restore asks (here the same ones).
    let members: Vec<_> = phone.group_members(G).unwrap().collect();
    phone.set_group_members(G, &members).unwrap();
    w.devices.insert(d[0], phone);
    let o = w.send_group(d[0], G, b"three");
    // Not its own laptop (until an own list issued since arrives), and a new key.
    let bobs = vec![d[2], d[3]];
    assert_eq!(reached(&o), (sorted(bobs.clone()), sorted(bobs)));
}

#[test]
fn a_member_account_forgotten_is_asked_for_again() {
    let (mut w, d) = steady_world("reach forgotten");
    let bob = d[2].account;
    let now = w.now;
    let phone = w.devices.get_mut(&d[0]).unwrap();
    phone.forget_account(&bob);
    // The member's list is gone: the send asks for it, not for its devices' bundles.
    match phone.send_group(&mut w.rng, now, G, b"three") {
        Ok(ratchetry::fanout::Outgoing::NeedDeviceLists(accounts)) => assert_eq!(accounts, [bob]),
        other => panic!("expected the list to be asked for, got {other:?}"),
    }
}
