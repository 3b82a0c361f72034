//! The in-memory relay with the driver: accounts publish lists and prekeys, devices send and
//! receive through mailboxes, a stale batch is refused and repaired, an unlinked device's keys
//! and mailbox go.

mod support;

use ratchetry::devices::{DeviceAddress, DeviceId};
use ratchetry::driver::Directory;
use ratchetry::driver::{self, Inbound};
use ratchetry::fanout::{Outbox, Received};
use ratchetry::group::GroupId;
use ratchetry::relay::Relay;
use ratchetry::server::EXPIRY_TOLERANCE_MS;
use ratchetry::{DeviceError, Error, ServerError, Timestamp};
use support::{World, body};

const ROOM: GroupId = GroupId([0x66; 32]);

/// Publishes every account's list and every device's prekeys (3 one-time keys each).
fn relay_for(w: &mut World) -> Relay {
    let mut relay = Relay::new(w.limits());
    relay.set_time(w.now);
    for p in &w.primaries {
        relay
            .publish_list(p.device_list().signed().clone())
            .unwrap();
    }
    for a in w.addresses() {
        publish_device(w, &mut relay, a);
    }
    relay
}

fn publish_device(w: &mut World, relay: &mut Relay, a: DeviceAddress) {
    let World {
        rng, devices, now, ..
    } = w;
    let d = devices.get_mut(&a).unwrap();
    relay.publish_prekeys(a, d.bundle(None, None)).unwrap();
    let upload = d.generate_one_time_prekeys(rng, *now, 3);
    relay.upload_one_time(a, &upload).unwrap();
    w.persist(a);
}

/// Sends through the driver and submits the outbox.
fn send(
    w: &mut World,
    relay: &mut Relay,
    from: DeviceAddress,
    op: impl FnMut(
        &mut ratchetry::fanout::Device,
        &mut ratchetry::testing::SeededRng,
    ) -> ratchetry::Result<ratchetry::fanout::Outgoing>,
) -> (Outbox, Result<(), ServerError>) {
    let World {
        rng, devices, now, ..
    } = w;
    let d = devices.get_mut(&from).unwrap();
    let (outbox, _) = driver::send(d, rng, *now, relay, op).unwrap();
    w.persist(from);
    let submitted = relay.submit(from, &outbox);
    (outbox, submitted)
}

/// Reads `device`'s mailbox through the driver: what it read, in order.
fn read_all(w: &mut World, relay: &mut Relay, device: DeviceAddress) -> Vec<Received> {
    let mut read = Vec::new();
    let waiting: Vec<Vec<u8>> = relay.inbox(&device).map(<[u8]>::to_vec).collect();
    for envelope in waiting {
        let World {
            rng, devices, now, ..
        } = &mut *w;
        let d = devices.get_mut(&device).unwrap();
        let (inbound, _) = driver::receive(d, rng, *now, relay, &envelope, |_| false).unwrap();
        w.persist(device);
        match inbound {
            Inbound::Read(r) => {
                relay.ack(&device);
                read.push(r);
            }
            Inbound::Hold { .. } | Inbound::AwaitList { .. } => relay.hold(&device),
            other => {
                relay.ack(&device);
                panic!("{device:?}: {other:?}");
            }
        }
    }
    read
}

fn texts(read: &[Received]) -> Vec<&[u8]> {
    read.iter().filter_map(body).collect()
}

#[test]
fn devices_talk_through_the_relay_and_a_stale_batch_is_repaired() {
    let mut w = World::new("relay scenario");
    let alice = w.account(1);
    let bob = w.account(0);
    let mut relay = relay_for(&mut w);
    let (a1, a2, b1) = (
        World::addr(alice, 1),
        World::addr(alice, 2),
        World::addr(bob, 1),
    );

    let (_, ok) = send(&mut w, &mut relay, a1, |d, rng| {
        d.send(rng, w_now(), &bob, b"hi")
    });
    assert_eq!(ok, Ok(()));
    // Bob's phone drew one of each one-time key; the laptop's sessions use its own.
    assert_eq!(relay.prekeys_remaining(&b1), (2, 2));
    assert_eq!(texts(&read_all(&mut w, &mut relay, b1)), [b"hi"]);
    assert_eq!(texts(&read_all(&mut w, &mut relay, a2)), [b"hi"]);

    // Bob links a laptop and publishes; Alice's phone still holds the old list.
    let laptop = w.link(&bob);
    let list = w.primary(&bob).device_list().signed().clone();
    relay.publish_list(list).unwrap();
    publish_device(&mut w, &mut relay, laptop);
    let (stale, refused) = send(&mut w, &mut relay, a1, |d, rng| {
        d.send(rng, w_now(), &bob, b"laptop?")
    });
    assert!(matches!(refused, Err(ServerError::StaleList { .. })));
    assert_eq!(
        relay.inbox(&b1).count(),
        0,
        "a refused batch queues nothing"
    );
    // Repair: fetch the list, take the send back, send again.
    let now = w.now;
    let bobs = w.primary(&bob).device_list().signed().clone();
    w.device(a1)
        .update_device_list(now, &bob, bobs.clone())
        .unwrap();
    w.device(b1).update_device_list(now, &bob, bobs).unwrap();
    w.device(a1)
        .not_delivered(stale.send_id.unwrap(), &stale.recipients())
        .unwrap();
    let (_, ok) = send(&mut w, &mut relay, a1, |d, rng| {
        d.send(rng, w_now(), &bob, b"laptop!")
    });
    assert_eq!(ok, Ok(()));
    assert_eq!(texts(&read_all(&mut w, &mut relay, laptop)), [b"laptop!"]);
    assert_eq!(texts(&read_all(&mut w, &mut relay, b1)), [b"laptop!"]);

    // A group: the first message overtakes nothing (pairwise keys are queued first).
    for a in [a1, a2, b1, laptop] {
        w.device(a).set_group_members(ROOM, &[alice, bob]).unwrap();
    }
    let (_, ok) = send(&mut w, &mut relay, b1, |d, rng| {
        d.send_group(rng, w_now(), ROOM, b"all")
    });
    assert_eq!(ok, Ok(()));
    // Alice's laptop also reads her phone's own copy of the repaired message first (never
    // the refused one's).
    assert_eq!(
        texts(&read_all(&mut w, &mut relay, a2)),
        [&b"laptop!"[..], b"all"]
    );
    for a in [a1, laptop] {
        let read = read_all(&mut w, &mut relay, a);
        assert_eq!(texts(&read), [b"all"], "{a:?}");
    }

    // Bob unlinks the laptop: its keys and mailbox go with the list.
    let now = w.now;
    w.primary(&bob).unlink(now, laptop.device).unwrap();
    relay.deliver(laptop, b"queued".to_vec());
    let list = w.primary(&bob).device_list().signed().clone();
    relay.publish_list(list).unwrap();
    assert_eq!(relay.prekeys_remaining(&laptop), (0, 0));
    assert_eq!(relay.inbox(&laptop).count(), 0);
}

/// The relay checks what it is given: a list older than the one held, prekeys for an
/// account it has no list of or a device it has no base for.
#[test]
fn the_relay_refuses_what_does_not_verify() {
    let mut w = World::new("relay refusals");
    let alice = w.account(1);
    let mut relay = Relay::new(w.limits());
    relay.set_time(w.now);
    let a1 = World::addr(alice, 1);
    let old = w.primary(&alice).device_list().signed().clone();
    let base = w.device(a1).bundle(None, None);
    assert_eq!(
        relay.publish_prekeys(a1, base.clone()),
        Err(ServerError::UnknownAccount(alice).into())
    );
    relay.publish_list(old.clone()).unwrap();
    assert_eq!(
        relay.upload_one_time(a1, &Default::default()),
        Err(ServerError::NotListed(a1).into())
    );
    relay.publish_prekeys(a1, base).unwrap();
    let now = w.now;
    w.primary(&alice).unlink(now, DeviceId(2)).unwrap();
    relay
        .publish_list(w.primary(&alice).device_list().signed().clone())
        .unwrap();
    assert!(matches!(
        relay.publish_list(old),
        Err(Error::Device(DeviceError::Rollback { .. }))
    ));
}

fn w_now() -> ratchetry::Timestamp {
    support::T0
}

/// The relay judges a companion's expiry by its own clock: past it, the companion's prekeys
/// are refused as expired, and a batch that still includes it is refused.
#[test]
fn the_relay_judges_a_companions_expiry_by_its_own_clock() {
    let mut w = World::new("relay clock");
    let alice = w.account(0);
    let bob = w.account(1);
    let mut relay = relay_for(&mut w);
    let (a1, b2) = (World::addr(alice, 1), World::addr(bob, 2));
    let expiry = w
        .primary(&bob)
        .device_list()
        .entry(b2.device)
        .unwrap()
        .expires_at
        .unwrap();
    // Alice's clock still has the laptop active; the relay's is well past its expiry.
    let (outbox, _) = send(&mut w, &mut relay, a1, |d, rng| {
        d.send(rng, w_now(), &bob, b"hi")
    });
    assert!(outbox.recipients().contains(&b2));
    relay.set_time(Timestamp(expiry.0 + EXPIRY_TOLERANCE_MS));
    let base = w.device(b2).bundle(None, None);
    assert_eq!(
        relay.publish_prekeys(b2, base),
        Err(DeviceError::CompanionExpired(b2).into())
    );
    assert_eq!(relay.submit(a1, &outbox), Err(ServerError::NotListed(b2)));
}

/// A new list of an account drops only what it no longer lists: the prekeys of a device still
/// listed under the same identity key stay, and so do the mailboxes of its devices and of
/// every other account.
#[test]
fn publishing_a_list_keeps_the_keys_and_mail_of_devices_still_listed() {
    let mut w = World::new("relay keeps listed");
    let alice = w.account(2);
    let bob = w.account(0);
    let mut relay = relay_for(&mut w);
    let (a3, b1) = (World::addr(alice, 3), World::addr(bob, 1));
    relay.deliver(a3, b"for alice's tablet".to_vec());
    relay.deliver(b1, b"for bob's phone".to_vec());
    let kept = relay.prekeys_remaining(&b1);
    assert_ne!(kept, (0, 0));
    // Bob links a laptop: his phone is listed again, with its identity key.
    let laptop = w.link(&bob);
    relay
        .publish_list(w.primary(&bob).device_list().signed().clone())
        .unwrap();
    let bobs = w.primary(&bob).device_list().clone();
    assert!(bobs.entry(laptop.device).is_some() && bobs.entry(a3.device).is_none());
    assert_eq!(relay.prekeys_remaining(&b1), kept);
    assert_eq!(
        relay.inbox(&b1).collect::<Vec<_>>(),
        [&b"for bob's phone"[..]]
    );
    assert_eq!(
        relay.inbox(&a3).collect::<Vec<_>>(),
        [&b"for alice's tablet"[..]]
    );
}

/// A device that rotates its signed prekey publishes the new base: the relay serves it, and
/// the one-time keys already uploaded stay in the pools (they do not depend on it).
#[test]
fn a_rotated_base_keeps_the_one_time_pools() {
    let mut w = World::new("relay rotation");
    let bob = w.account(0);
    let mut relay = relay_for(&mut w);
    let b1 = World::addr(bob, 1);
    let pools = relay.prekeys_remaining(&b1);
    assert_ne!(pools, (0, 0));
    let now = w.now;
    let World { rng, devices, .. } = &mut w;
    devices.get_mut(&b1).unwrap().rotate_signed_prekey(rng, now);
    let rotated = w.device(b1).bundle(None, None);
    relay.publish_prekeys(b1, rotated.clone()).unwrap();
    assert_eq!(relay.prekeys_remaining(&b1), pools);
    let served = Directory::bundles(&mut relay, &[b1]).unwrap();
    let (_, bundle) = &served[0];
    assert_eq!(bundle.signed_prekey(), rotated.signed_prekey());
    assert!(bundle.one_time_prekey().is_some());
}

/// A base under another identity key than the keys held at an address is never taken as a
/// rotation: the relay judges it as a new device's first upload, in full against the list,
/// so a companion past its expiry is told it expired.
#[test]
fn a_base_with_another_identity_is_judged_as_a_new_devices_upload() {
    let mut w = World::new("relay foreign base");
    let bob = w.account(1);
    let mut relay = relay_for(&mut w);
    let (b1, b2) = (World::addr(bob, 1), World::addr(bob, 2));
    let expiry = w
        .primary(&bob)
        .device_list()
        .entry(b2.device)
        .unwrap()
        .expires_at
        .unwrap();
    relay.set_time(Timestamp(expiry.0 + EXPIRY_TOLERANCE_MS));
    let pools = relay.prekeys_remaining(&b2);
    let phones = w.device(b1).bundle(None, None);
    assert_eq!(
        relay.publish_prekeys(b2, phones),
        Err(DeviceError::CompanionExpired(b2).into())
    );
    assert_eq!(relay.prekeys_remaining(&b2), pools);
}

/// A held envelope (a group message waiting for its sender key) moves behind the rest of the
/// mailbox, so the envelopes after it are read first; holding an empty mailbox does nothing.
#[test]
fn a_held_envelope_waits_behind_the_rest_of_the_mailbox() {
    let mut w = World::new("relay hold");
    let bob = w.account(0);
    let mut relay = relay_for(&mut w);
    let b1 = World::addr(bob, 1);
    relay.hold(&b1);
    assert_eq!(relay.inbox(&b1).count(), 0);
    for e in [&b"group message"[..], b"its sender key", b"later"] {
        relay.deliver(b1, e.to_vec());
    }
    relay.hold(&b1);
    assert_eq!(
        relay.inbox(&b1).collect::<Vec<_>>(),
        [&b"its sender key"[..], b"later", b"group message"]
    );
    assert_eq!(relay.ack(&b1).as_deref(), Some(&b"its sender key"[..]));
}
