//! Client fanout across linked devices: 1:1 to every device and own copies, session setup on
//! demand, routing and device-list binding, typed undecryptable causes, groups with a
//! distribution ledger and rotation on removal, and transactional receive.

use ratchetry::devices::{
    AccountKey, DeviceAddress, DeviceId, DevicePolicy, LinkRequest, Primary, SignedDeviceList,
    complete_link,
};
use ratchetry::fanout::{Device, DeviceConfig, Event, Outbox, Outgoing, Received, WithheldReason};
use ratchetry::group::GroupId;
use ratchetry::testing::SeededRng;
use ratchetry::{DeviceError, Error, FanoutError, IdentityKeyPair, Timestamp};

const DAY: u64 = 24 * 60 * 60 * 1000;
const T0: Timestamp = Timestamp(1_790_000_000_000);

struct Account {
    primary: Primary,
    devices: Vec<Device>,
}

impl Account {
    fn key(&self) -> AccountKey {
        self.primary.account()
    }
}

fn account(rng: &mut SeededRng, companions: usize) -> Account {
    let phone = IdentityKeyPair::generate(rng);
    let mut primary = Primary::new(rng, &phone.public(), T0, DevicePolicy::default());
    let mut devices = vec![
        Device::new(
            rng,
            T0,
            phone,
            DeviceId(1),
            primary.device_list().clone(),
            5,
            DeviceConfig::default(),
        )
        .unwrap(),
    ];
    for _ in 0..companions {
        let identity = IdentityKeyPair::generate(rng);
        let invitation = primary.invite(rng, T0);
        let approval = primary
            .approve(T0, &LinkRequest::new(&identity, &invitation))
            .unwrap();
        let (list, confirmation) =
            complete_link(&identity, &invitation, &approval, &DevicePolicy::default()).unwrap();
        primary.confirm(&confirmation).unwrap();
        devices.push(
            Device::new(
                rng,
                T0,
                identity,
                approval.device,
                list,
                5,
                DeviceConfig::default(),
            )
            .unwrap(),
        );
    }
    let list = primary.device_list().signed().clone();
    for d in &mut devices {
        d.update_device_list(T0, &primary.account(), list.clone())
            .unwrap();
    }
    Account { primary, devices }
}

/// Every device of `a` learns `b`'s current list and vice versa.
fn introduce(now: Timestamp, a: &mut Account, b: &mut Account) {
    let (la, lb) = (
        a.primary.device_list().signed().clone(),
        b.primary.device_list().signed().clone(),
    );
    let (ka, kb) = (a.key(), b.key());
    for d in &mut a.devices {
        d.update_device_list(now, &kb, lb.clone()).unwrap();
    }
    for d in &mut b.devices {
        d.update_device_list(now, &ka, la.clone()).unwrap();
    }
}

/// The "server": hands out a bundle of the addressed device (first one-time prekey if any).
fn bundle_of(accounts: &[&Account], address: &DeviceAddress) -> ratchetry::PreKeyBundle {
    let acc = accounts
        .iter()
        .find(|a| a.key() == address.account)
        .unwrap();
    let dev = acc
        .devices
        .iter()
        .find(|d| d.address() == *address)
        .unwrap();
    dev.bundle(None)
}

/// Runs a send, supplying bundles from `world` (the "server") when the device asks for them.
fn with_bundles(
    rng: &mut SeededRng,
    now: Timestamp,
    sender: &mut Device,
    world: &[&Account],
    mut op: impl FnMut(&mut Device, &mut SeededRng) -> ratchetry::Result<Outgoing>,
) -> Outbox {
    match op(sender, rng).unwrap() {
        Outgoing::Ready(outbox) => outbox,
        Outgoing::NeedBundles(missing) => {
            let bundles: Vec<_> = missing.iter().map(|a| (*a, bundle_of(world, a))).collect();
            sender.start_sessions(rng, now, &bundles).unwrap();
            match op(sender, rng).unwrap() {
                Outgoing::Ready(outbox) => outbox,
                Outgoing::NeedBundles(m) => panic!("still missing {m:?}"),
            }
        }
    }
}

fn send_ready(
    rng: &mut SeededRng,
    now: Timestamp,
    sender: &mut Device,
    to: &AccountKey,
    body: &[u8],
    world: &[&Account],
) -> Outbox {
    with_bundles(rng, now, sender, world, |d, rng| d.send(rng, now, to, body))
}

fn deliver(
    now: Timestamp,
    outbox: &Outbox,
    accounts: &mut [&mut Account],
) -> Vec<(DeviceAddress, Received)> {
    let mut got = Vec::new();
    for (to, envelope) in &outbox.envelopes {
        let acc = accounts.iter_mut().find(|a| a.key() == to.account).unwrap();
        let dev = acc.devices.iter_mut().find(|d| d.address() == *to).unwrap();
        got.push((*to, dev.receive(now, envelope).unwrap()));
    }
    got
}

fn device(acc: &mut Account, id: u32) -> &mut Device {
    acc.devices
        .iter_mut()
        .find(|d| d.address().device == DeviceId(id))
        .unwrap()
}

fn refused(dev: &mut Device, now: Timestamp, envelope: &[u8], expected: Error) {
    let before = dev.to_bytes();
    assert_eq!(dev.receive(now, envelope).err(), Some(expected));
    assert_eq!(
        *before,
        *dev.to_bytes(),
        "a refused envelope changed the device"
    );
}

#[test]
fn direct_message_reaches_every_device_and_own_copies() {
    let rng = &mut SeededRng::from_label("fanout direct");
    let mut alice = account(rng, 1);
    let mut bob = account(rng, 2);
    introduce(T0, &mut alice, &mut bob);
    let world_keys = (alice.key(), bob.key());
    let snapshot = [&account_clone(&alice), &account_clone(&bob)];
    let outbox = send_ready(
        rng,
        T0,
        device(&mut alice, 1),
        &world_keys.1,
        b"hi bob",
        &snapshot,
    );
    // Bob's 3 devices + Alice's laptop.
    assert_eq!(outbox.envelopes.len(), 4);
    let got = deliver(T0, &outbox, &mut [&mut alice, &mut bob]);
    for (to, r) in &got {
        if to.account == world_keys.1 {
            assert_eq!(
                *r,
                Received::Direct {
                    from: DeviceAddress {
                        account: world_keys.0,
                        device: DeviceId(1)
                    },
                    body: b"hi bob".to_vec()
                }
            );
        } else {
            assert_eq!(
                *r,
                Received::OwnCopy {
                    from: DeviceAddress {
                        account: world_keys.0,
                        device: DeviceId(1)
                    },
                    sent_to: world_keys.1,
                    body: b"hi bob".to_vec()
                }
            );
        }
    }
    // Bob's companion answers while his phone is offline; reaches Alice's two devices and Bob's
    // other two.
    let snapshot = [&account_clone(&alice), &account_clone(&bob)];
    let reply = send_ready(
        rng,
        T0,
        device(&mut bob, 3),
        &world_keys.0,
        b"from my tablet",
        &snapshot,
    );
    assert_eq!(reply.envelopes.len(), 4);
    let got = deliver(T0, &reply, &mut [&mut alice, &mut bob]);
    assert_eq!(
        got.iter()
            .filter(|(_, r)| matches!(r, Received::Direct { .. }))
            .count(),
        2
    );
    // The established sessions need no bundles any more.
    let again = device(&mut alice, 1)
        .send(rng, T0, &world_keys.1, b"again")
        .unwrap();
    assert!(matches!(again, Outgoing::Ready(_)));
}

/// Clones an account for use as the bundle "server" while devices are borrowed mutably.
fn account_clone(a: &Account) -> Account {
    Account {
        primary: a.primary.clone(),
        devices: a.devices.clone(),
    }
}

#[test]
fn need_bundles_changes_nothing_and_bundles_must_match_the_list() {
    let rng = &mut SeededRng::from_label("fanout bundles");
    let mut alice = account(rng, 0);
    let mut bob = account(rng, 1);
    introduce(T0, &mut alice, &mut bob);
    let bob_key = bob.key();
    let dev = device(&mut alice, 1);
    let before = dev.to_bytes();
    let Outgoing::NeedBundles(missing) = dev.send(rng, T0, &bob_key, b"x").unwrap() else {
        panic!()
    };
    assert_eq!(missing.len(), 2);
    assert_eq!(*before, *dev.to_bytes());
    // A bundle with another identity than the list names is refused.
    let mallory = account(rng, 0);
    let wrong = vec![(missing[0], mallory.devices[0].bundle(None))];
    assert_eq!(
        dev.start_sessions(rng, T0, &wrong).err(),
        Some(FanoutError::IdentityMismatch.into())
    );
    assert_eq!(*before, *dev.to_bytes());
}

#[test]
fn rerouted_replayed_and_unlisted_envelopes_fail_with_typed_causes() {
    let rng = &mut SeededRng::from_label("fanout reroute");
    let mut alice = account(rng, 1);
    let mut bob = account(rng, 2);
    introduce(T0, &mut alice, &mut bob);
    let bob_key = bob.key();
    let snapshot = [&account_clone(&alice), &account_clone(&bob)];
    let outbox = send_ready(
        rng,
        T0,
        device(&mut alice, 1),
        &bob_key,
        b"secret",
        &snapshot,
    );
    let to_bob2 = outbox
        .envelopes
        .iter()
        .find(|(a, _)| a.account == bob_key && a.device == DeviceId(2))
        .unwrap()
        .1
        .clone();
    // Delivered to the wrong device as is.
    refused(
        device(&mut bob, 3),
        T0,
        &to_bob2,
        FanoutError::NotForThisDevice.into(),
    );
    // Re-addressed to device 3: the header is bound into the AEAD.
    let mut rerouted = to_bob2.clone();
    rerouted[3 + 36 + 32..3 + 36 + 36].copy_from_slice(&3u32.to_be_bytes());
    let dev3 = device(&mut bob, 3);
    let before = dev3.to_bytes();
    assert!(dev3.receive(T0, &rerouted).is_err());
    assert_eq!(*before, *dev3.to_bytes());
    // Genuine delivery works once; a replay is a duplicate.
    device(&mut bob, 2).receive(T0, &to_bob2).unwrap();
    let id = ratchetry::fanout::MessageId::of(&to_bob2);
    refused(
        device(&mut bob, 2),
        T0,
        &to_bob2,
        FanoutError::Duplicate { message_id: id.0 }.into(),
    );

    // Alice unlinks her laptop; Bob learns the new list; an envelope the laptop made under the
    // old list is refused as diverging, and after that the laptop is not in the list at all.
    let snapshot = [&account_clone(&alice), &account_clone(&bob)];
    let from_laptop = send_ready(
        rng,
        T0,
        device(&mut alice, 2),
        &bob_key,
        b"laptop",
        &snapshot,
    );
    let laptop_to_bob1 = from_laptop
        .envelopes
        .iter()
        .find(|(a, _)| {
            *a == DeviceAddress {
                account: bob_key,
                device: DeviceId(1),
            }
        })
        .unwrap()
        .1
        .clone();
    let new_list = alice
        .primary
        .unlink(T0, DeviceId(2))
        .unwrap()
        .signed()
        .clone();
    let alice_key = alice.key();
    let events = device(&mut bob, 1)
        .update_device_list(T0, &alice_key, new_list)
        .unwrap();
    assert_eq!(
        events,
        vec![Event::DeviceRemoved(DeviceAddress {
            account: alice_key,
            device: DeviceId(2)
        })]
    );
    refused(
        device(&mut bob, 1),
        T0,
        &laptop_to_bob1,
        DeviceError::NotInList(2).into(),
    );
}

#[test]
fn diverging_lists_and_expired_companions() {
    let rng = &mut SeededRng::from_label("fanout diverge");
    let mut alice = account(rng, 1);
    let mut bob = account(rng, 0);
    introduce(T0, &mut alice, &mut bob);
    let (alice_key, bob_key) = (alice.key(), bob.key());
    // Alice renews her list but only her laptop learns it: Bob holds version 2.
    let renewed = alice.primary.renew(T0.plus_millis(DAY)).signed().clone();
    device(&mut alice, 2)
        .update_device_list(T0, &alice_key, renewed.clone())
        .unwrap();
    device(&mut alice, 1)
        .update_device_list(T0, &alice_key, renewed.clone())
        .unwrap();
    let snapshot = [&account_clone(&alice), &account_clone(&bob)];
    let outbox = send_ready(rng, T0, device(&mut alice, 2), &bob_key, b"v3", &snapshot);
    let to_bob = &outbox
        .envelopes
        .iter()
        .find(|(a, _)| a.account == bob_key)
        .unwrap()
        .1;
    refused(
        device(&mut bob, 1),
        T0,
        to_bob,
        FanoutError::DeviceListsDiverge {
            sender_list_used: 3,
            sender_list_held: 2,
            recipient_list_used: 1,
            recipient_list_held: 1,
        }
        .into(),
    );
    device(&mut bob, 1)
        .update_device_list(T0, &alice_key, renewed)
        .unwrap();
    assert!(matches!(
        device(&mut bob, 1).receive(T0, to_bob).unwrap(),
        Received::Direct { .. }
    ));

    // Fifteen days without renewal: the laptop expired. Bob refuses it and stops fanning
    // out to it; the laptop itself is told.
    let later = T0.plus_millis(16 * DAY);
    let laptop_msg = {
        let l = device(&mut alice, 2);
        match l
            .send(rng, T0.plus_millis(DAY), &bob_key, b"still here")
            .unwrap()
        {
            Outgoing::Ready(o) => o,
            Outgoing::NeedBundles(_) => panic!(),
        }
    };
    let to_bob = &laptop_msg
        .envelopes
        .iter()
        .find(|(a, _)| a.account == bob_key)
        .unwrap()
        .1;
    refused(
        device(&mut bob, 1),
        later,
        to_bob,
        DeviceError::CompanionExpired(2).into(),
    );
    let world = [&account_clone(&alice), &account_clone(&bob)];
    let o = send_ready(
        rng,
        later,
        device(&mut bob, 1),
        &alice_key,
        b"only the phone",
        &world,
    );
    assert_eq!(o.envelopes.len(), 1);
    assert_eq!(o.envelopes[0].0.device, DeviceId(1));
    assert_eq!(
        device(&mut alice, 2).send(rng, later, &bob_key, b"x").err(),
        Some(FanoutError::ThisDeviceInactive.into())
    );
}

const ROOM: GroupId = GroupId([9; 32]);

fn send_group_ready(
    rng: &mut SeededRng,
    now: Timestamp,
    sender: &mut Device,
    members: &[AccountKey],
    body: &[u8],
    world: &[&Account],
) -> Outbox {
    with_bundles(rng, now, sender, world, |d, rng| {
        d.send_group(rng, now, ROOM, members, body)
    })
}

fn deliver_group(now: Timestamp, outbox: &Outbox, accounts: &mut [&mut Account]) -> usize {
    deliver(now, outbox, accounts);
    let (envelope, recipients) = outbox.group.as_ref().unwrap();
    let mut read = 0;
    for to in recipients {
        let acc = accounts.iter_mut().find(|a| a.key() == to.account).unwrap();
        let dev = acc.devices.iter_mut().find(|d| d.address() == *to).unwrap();
        if let Received::Group { body, .. } = dev.receive(now, envelope).unwrap() {
            assert!(!body.is_empty());
            read += 1;
        }
    }
    read
}

#[test]
fn group_keys_go_only_where_missing_and_rotate_on_removal() {
    let rng = &mut SeededRng::from_label("fanout group");
    let mut alice = account(rng, 1);
    let mut bob = account(rng, 2);
    let mut carol = account(rng, 0);
    introduce(T0, &mut alice, &mut bob);
    introduce(T0, &mut alice, &mut carol);
    introduce(T0, &mut bob, &mut carol);
    let members = [bob.key(), carol.key()];
    let world = [
        &account_clone(&alice),
        &account_clone(&bob),
        &account_clone(&carol),
    ];
    let first = send_group_ready(
        rng,
        T0,
        device(&mut alice, 1),
        &members,
        b"hello room",
        &world,
    );
    // Laptop + Bob's 3 + Carol's 1 get the key; all five read the message.
    assert_eq!(first.envelopes.len(), 5);
    assert_eq!(
        deliver_group(T0, &first, &mut [&mut alice, &mut bob, &mut carol]),
        5
    );
    // Steady state: no distributions.
    let second = send_group_ready(rng, T0, device(&mut alice, 1), &members, b"second", &world);
    assert!(second.envelopes.is_empty());
    assert_eq!(
        deliver_group(T0, &second, &mut [&mut alice, &mut bob, &mut carol]),
        5
    );

    // Bob unlinks a companion: Alice's next send rotates and distributes to the remaining 4.
    let removed = DeviceAddress {
        account: bob.key(),
        device: DeviceId(3),
    };
    let new_list = bob
        .primary
        .unlink(T0, DeviceId(3))
        .unwrap()
        .signed()
        .clone();
    let bob_key = bob.key();
    for d in &mut alice.devices {
        d.update_device_list(T0, &bob_key, new_list.clone())
            .unwrap();
    }
    for d in &mut carol.devices {
        d.update_device_list(T0, &bob_key, new_list.clone())
            .unwrap();
    }
    for d in &mut bob.devices {
        let _ = d.update_device_list(T0, &bob_key, new_list.clone());
    }
    let world = [
        &account_clone(&alice),
        &account_clone(&bob),
        &account_clone(&carol),
    ];
    let third = send_group_ready(
        rng,
        T0,
        device(&mut alice, 1),
        &members,
        b"after removal",
        &world,
    );
    assert_eq!(third.envelopes.len(), 4);
    assert!(third.envelopes.iter().all(|(a, _)| *a != removed));
    let (group_envelope, recipients) = third.group.as_ref().unwrap();
    assert!(!recipients.contains(&removed));
    // The removed device cannot read it: it lacks the new generation.
    let gone = bob
        .devices
        .iter_mut()
        .find(|d| d.address() == removed)
        .unwrap();
    let err = gone.receive(T0, group_envelope).err().unwrap();
    assert!(
        matches!(err, Error::Fanout(FanoutError::ThisDeviceInactive)),
        "{err:?}"
    );

    // Carol withholds her key from Bob's phone: he is told why he cannot read her messages.
    let world = [
        &account_clone(&alice),
        &account_clone(&bob),
        &account_clone(&carol),
    ];
    let bob_phone = DeviceAddress {
        account: bob_key,
        device: DeviceId(1),
    };
    let carol_dev = device(&mut carol, 1);
    let notice = with_bundles(rng, T0, carol_dev, &world, |d, rng| {
        d.withhold_group_key(rng, T0, bob_phone, ROOM, WithheldReason::Unverified)
    });
    let got = deliver(T0, &notice, &mut [&mut bob]);
    assert!(matches!(
        got[0].1,
        Received::Withheld {
            reason: WithheldReason::Unverified,
            ..
        }
    ));
    let world = [
        &account_clone(&alice),
        &account_clone(&bob),
        &account_clone(&carol),
    ];
    let carol_says = send_group_ready(
        rng,
        T0,
        device(&mut carol, 1),
        &[alice.key()],
        b"hi",
        &world,
    );
    let (env, _) = carol_says.group.unwrap();
    refused(device(&mut bob, 1), T0, &env, FanoutError::Withheld.into());
}

#[test]
fn group_message_before_its_key_is_sender_key_missing() {
    let rng = &mut SeededRng::from_label("fanout missing key");
    let mut alice = account(rng, 0);
    let mut bob = account(rng, 0);
    introduce(T0, &mut alice, &mut bob);
    let world = [&account_clone(&alice), &account_clone(&bob)];
    let bob_key = bob.key();
    let outbox = send_group_ready(rng, T0, device(&mut alice, 1), &[bob_key], b"early", &world);
    let (env, _) = outbox.group.as_ref().unwrap();
    refused(
        device(&mut bob, 1),
        T0,
        env,
        FanoutError::SenderKeyMissing { key_id: 1 }.into(),
    );
    deliver(T0, &outbox, &mut [&mut bob]);
    assert!(matches!(
        device(&mut bob, 1).receive(T0, env).unwrap(),
        Received::Group { .. }
    ));
}

#[test]
fn device_state_round_trips_and_corrupted_envelopes_change_nothing() {
    let rng = &mut SeededRng::from_label("fanout state");
    let mut alice = account(rng, 1);
    let mut bob = account(rng, 1);
    introduce(T0, &mut alice, &mut bob);
    let bob_key = bob.key();
    let world = [&account_clone(&alice), &account_clone(&bob)];
    let outbox = send_ready(
        rng,
        T0,
        device(&mut alice, 1),
        &bob_key,
        b"persist me",
        &world,
    );
    let group = send_group_ready(rng, T0, device(&mut alice, 1), &[bob_key], b"g", &world);
    let env = outbox
        .envelopes
        .iter()
        .find(|(a, _)| a.account == bob_key)
        .unwrap()
        .1
        .clone();
    let dev = device(&mut bob, 1);
    for i in 0..env.len() {
        let mut bad = env.clone();
        bad[i] ^= 0x04;
        let before = dev.to_bytes();
        assert!(dev.receive(T0, &bad).is_err(), "flip at {i}");
        assert_eq!(*before, *dev.to_bytes());
    }
    dev.receive(T0, &env).unwrap();
    for (to, e) in &group.envelopes {
        if to.account == bob_key && to.device == DeviceId(1) {
            dev.receive(T0, e).unwrap();
        }
    }
    let bytes = dev.to_bytes();
    let restored = Device::from_bytes(&bytes).unwrap();
    assert_eq!(*restored.to_bytes(), *bytes);
    let a_bytes = device(&mut alice, 1).to_bytes();
    assert_eq!(*Device::from_bytes(&a_bytes).unwrap().to_bytes(), *a_bytes);
    for len in (0..bytes.len()).step_by(7) {
        assert!(Device::from_bytes(&bytes[..len]).is_err());
    }
    let _ = SignedDeviceList::from_bytes(&alice.primary.device_list().to_bytes()).unwrap();
}

#[test]
fn simultaneous_session_starts_converge() {
    let rng = &mut SeededRng::from_label("fanout race");
    let mut alice = account(rng, 0);
    let mut bob = account(rng, 0);
    introduce(T0, &mut alice, &mut bob);
    let (alice_key, bob_key) = (alice.key(), bob.key());
    let world = [&account_clone(&alice), &account_clone(&bob)];
    // Both start a session before hearing from the other.
    let a1 = send_ready(rng, T0, device(&mut alice, 1), &bob_key, b"a1", &world);
    let b1 = send_ready(rng, T0, device(&mut bob, 1), &alice_key, b"b1", &world);
    deliver(T0, &a1, &mut [&mut bob]);
    deliver(T0, &b1, &mut [&mut alice]);
    // Each side's current session is now the one the other started; messages still flow both
    // ways, and after one round trip both use the same session.
    for round in 0..3u8 {
        let a = send_ready(rng, T0, device(&mut alice, 1), &bob_key, &[round], &world);
        let got = deliver(T0, &a, &mut [&mut bob]);
        assert_eq!(
            got[0].1,
            Received::Direct {
                from: DeviceAddress {
                    account: alice_key,
                    device: DeviceId(1)
                },
                body: vec![round]
            }
        );
        let b = send_ready(
            rng,
            T0,
            device(&mut bob, 1),
            &alice_key,
            &[round, round],
            &world,
        );
        let got = deliver(T0, &b, &mut [&mut alice]);
        assert_eq!(
            got[0].1,
            Received::Direct {
                from: DeviceAddress {
                    account: bob_key,
                    device: DeviceId(1)
                },
                body: vec![round, round]
            }
        );
    }
}

#[test]
fn fuzz_fixture_envelopes_are_genuine() {
    use ratchetry::testing::fuzz::{FanoutFixture, device_receive};
    let mut f = FanoutFixture::new();
    assert_eq!(f.in_flight.len(), 3);
    let genuine = f.in_flight.clone();
    for e in &genuine {
        let mut corrupted = e.clone();
        let last = corrupted.len() - 1;
        corrupted[last] ^= 1;
        device_receive(&mut f, &corrupted);
    }
    for e in &genuine {
        f.receiver.receive(FanoutFixture::NOW, e).unwrap();
    }
}

#[test]
fn list_updates_report_added_removed_and_changed_identities() {
    let rng = &mut SeededRng::from_label("fanout events");
    let mut alice = account(rng, 0);
    let mut bob = account(rng, 1);
    introduce(T0, &mut alice, &mut bob);
    let bob_key = bob.key();
    let addr = |id| DeviceAddress {
        account: bob_key,
        device: DeviceId(id),
    };
    // A primary that (wrongly, e.g. restored from an old backup) reuses device id 2 for a new
    // identity: Alice's device reports the identity change and drops the session.
    bob.primary.unlink(T0, DeviceId(2)).unwrap();
    let mut state = bob.primary.to_bytes().to_vec();
    state[2 + 32 + 4 + 8 + 8..2 + 32 + 4 + 8 + 8 + 4].copy_from_slice(&2u32.to_be_bytes());
    let mut reusing = Primary::from_bytes(&state).unwrap();
    let newcomer = IdentityKeyPair::generate(rng);
    let inv = reusing.invite(rng, T0);
    let approval = reusing
        .approve(T0, &LinkRequest::new(&newcomer, &inv))
        .unwrap();
    assert_eq!(approval.device, DeviceId(2));
    let world = [&account_clone(&alice), &account_clone(&bob)];
    send_ready(rng, T0, device(&mut alice, 1), &bob_key, b"to both", &world);
    assert!(device(&mut alice, 1).has_session(&addr(2)));
    let events = device(&mut alice, 1)
        .update_device_list(T0, &bob_key, approval.list.clone())
        .unwrap();
    assert_eq!(events, vec![Event::IdentityChanged(addr(2))]);
    assert!(!device(&mut alice, 1).has_session(&addr(2)));
    // A fresh device sees everyone as added.
    let mut carol = account(rng, 0);
    let events = device(&mut carol, 1)
        .update_device_list(T0, &bob_key, approval.list)
        .unwrap();
    assert_eq!(
        events,
        vec![Event::DeviceAdded(addr(1)), Event::DeviceAdded(addr(2))]
    );
}

#[test]
fn call_keys_and_history_offers_travel_over_fanout() {
    use ratchetry::calls::{Call, CallConfig, CallKind};
    use ratchetry::history::{HistoryOpener, HistorySealer};
    let rng = &mut SeededRng::from_label("fanout calls");
    let mut alice = account(rng, 1);
    let mut bob = account(rng, 2);
    introduce(T0, &mut alice, &mut bob);
    let world = [&account_clone(&alice), &account_clone(&bob)];
    let bob_key = bob.key();
    let me = device(&mut alice, 1).address();
    // A 1:1 call: the key goes to every device of Bob and Alice's laptop.
    let mut ringing: Vec<DeviceAddress> = (1..=3)
        .map(|d| DeviceAddress {
            account: bob_key,
            device: DeviceId(d),
        })
        .collect();
    ringing.push(DeviceAddress {
        account: me.account,
        device: DeviceId(2),
    });
    let mut everyone = ringing.clone();
    everyone.push(me);
    let config = CallConfig::default();
    let call = Call::start(rng, CallKind::OneToOne, &everyone, &config).unwrap();
    let dev = device(&mut alice, 1);
    let outbox = with_bundles(rng, T0, dev, &world, |d, rng| {
        d.send_call_key(rng, T0, &ringing, call.key_message())
    });
    assert_eq!(outbox.envelopes.len(), 4);
    for (to, r) in deliver(T0, &outbox, &mut [&mut alice, &mut bob]) {
        let Received::CallKey { from, message } = r else {
            panic!("{r:?}")
        };
        assert_eq!(from, me);
        let theirs = Call::from_key_message(message, &config).unwrap();
        assert_eq!(theirs.srtp_keys(&me).unwrap(), call.srtp_keys(&me).unwrap());
        assert_eq!(theirs.srtp_keys(&to).unwrap(), call.srtp_keys(&to).unwrap());
    }

    // History sync to the laptop: the offer over the pairwise session, the chunks by any route.
    let history: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let mut sealer = HistorySealer::new(rng);
    let mut chunks = sealer.push(&history);
    let (last, offer) = sealer.finish();
    chunks.extend(last);
    let laptop = DeviceAddress {
        account: me.account,
        device: DeviceId(2),
    };
    let Outgoing::Ready(o) = device(&mut alice, 1)
        .send_history_offer(rng, T0, laptop, &offer)
        .unwrap()
    else {
        panic!()
    };
    let got = deliver(T0, &o, &mut [&mut alice]);
    let Received::HistoryOffer {
        offer: received, ..
    } = &got[0].1
    else {
        panic!()
    };
    let mut opener = HistoryOpener::new(received);
    let mut restored = Vec::new();
    for c in &chunks {
        restored.extend(opener.push(c).unwrap());
    }
    opener.finish().unwrap();
    assert_eq!(restored, history);
    let bob_phone = DeviceAddress {
        account: bob_key,
        device: DeviceId(1),
    };
    assert_eq!(
        device(&mut alice, 1)
            .send_history_offer(rng, T0, bob_phone, &offer)
            .err(),
        Some(FanoutError::NotForThisDevice.into())
    );
}

#[test]
fn restore_from_an_old_backup_never_reuses_a_message_key() {
    let rng = &mut SeededRng::from_label("fanout stale backup");
    let mut alice = account(rng, 0);
    let mut bob = account(rng, 0);
    introduce(T0, &mut alice, &mut bob);
    let bob_key = bob.key();
    let world = [&account_clone(&alice), &account_clone(&bob)];
    // Establish both directions.
    let o = send_ready(rng, T0, device(&mut alice, 1), &bob_key, b"hello", &world);
    deliver(T0, &o, &mut [&mut bob]);
    let alice_key = alice.key();
    let o = send_ready(rng, T0, device(&mut bob, 1), &alice_key, b"hi", &world);
    deliver(T0, &o, &mut [&mut alice]);
    let o = send_ready(rng, T0, device(&mut alice, 1), &bob_key, b"steady", &world);
    deliver(T0, &o, &mut [&mut bob]);
    // Alice backs up, then sends two more messages Bob reads, then restores the backup.
    let backup = device(&mut alice, 1).to_bytes();
    let mut lost = Vec::new();
    for body in [b"lost one".as_slice(), b"lost two"] {
        let o = send_ready(rng, T0, device(&mut alice, 1), &bob_key, body, &world);
        lost.push(o.envelopes[0].1.clone());
        deliver(T0, &o, &mut [&mut bob]);
    }
    let restored = Device::restore_from_backup(rng, &backup).unwrap();
    *device(&mut alice, 1) = restored;
    // The restored device's next message uses a new ratchet key: a fresh chain, never the
    // counters the lost messages used.
    let o = send_ready(
        rng,
        T0,
        device(&mut alice, 1),
        &bob_key,
        b"lost one",
        &world,
    );
    let again = &o.envelopes[0].1;
    // Envelope header (99 bytes), then the ratchet message: version, type, ratchet key.
    let ratchet_key = |env: &[u8]| {
        assert_eq!(env[99..101], [1, 2]);
        env[101..133].to_vec()
    };
    assert_ne!(ratchet_key(again), ratchet_key(&lost[0]));
    assert_ne!(again[again.len() - 24..], lost[0][lost[0].len() - 24..]);
    // Bob reads it as an ordinary ratchet step: the session survives.
    let got = deliver(T0, &o, &mut [&mut bob]);
    assert!(matches!(&got[0].1, Received::Direct { body, .. } if body == b"lost one"));
}

#[test]
fn retry_requests_heal_a_lost_session() {
    use ratchetry::fanout::{MessageId, Resend, RetryReason};
    let rng = &mut SeededRng::from_label("fanout retry");
    let mut alice = account(rng, 0);
    let mut bob = account(rng, 0);
    introduce(T0, &mut alice, &mut bob);
    let (alice_key, bob_key) = (alice.key(), bob.key());
    let world = [&account_clone(&alice), &account_clone(&bob)];
    // Bob's phone backs up before it ever talked to Alice, then they talk.
    let bob_backup = device(&mut bob, 1).to_bytes();
    let o = send_ready(rng, T0, device(&mut alice, 1), &bob_key, b"one", &world);
    deliver(T0, &o, &mut [&mut bob]);
    let o = send_ready(rng, T0, device(&mut bob, 1), &alice_key, b"two", &world);
    deliver(T0, &o, &mut [&mut alice]);
    // Bob's phone is restored from the backup: it has no session with Alice any more.
    *device(&mut bob, 1) = Device::restore_from_backup(rng, &bob_backup).unwrap();
    let o = send_ready(rng, T0, device(&mut alice, 1), &bob_key, b"three", &world);
    let (_, lost) = o.envelopes[0].clone();
    let stored = (MessageId::of(&lost), b"three".to_vec()); // what Alice's app keeps
    refused(
        device(&mut bob, 1),
        T0,
        &lost,
        FanoutError::NoSession.into(),
    );

    // Bob asks again; Alice answers from her stored plaintext with a fresh session.
    let (to, request) = device(&mut bob, 1)
        .request_retry(rng, T0, &lost, RetryReason::NoSession, 1)
        .unwrap();
    assert_eq!(to, device(&mut alice, 1).address());
    // A tampered request is refused.
    let mut bad = request.clone();
    let at = bad.len() - 70;
    bad[at] ^= 1;
    assert!(device(&mut alice, 1).receive(T0, &bad).is_err());
    let Received::RetryRequest(req) = device(&mut alice, 1).receive(T0, &request).unwrap() else {
        panic!()
    };
    assert_eq!(
        (req.message_id, req.reason, req.attempt),
        (stored.0, RetryReason::NoSession, 1)
    );
    let Outgoing::Ready(answer) = device(&mut alice, 1)
        .answer_retry(rng, T0, &req, Resend::Direct { to: bob_key }, &stored.1)
        .unwrap()
    else {
        panic!()
    };
    let got = deliver(T0, &answer, &mut [&mut bob]);
    assert!(matches!(&got[0].1, Received::Direct { body, .. } if body == b"three"));
    // The conversation goes on both ways on the new session.
    let o = send_ready(rng, T0, device(&mut bob, 1), &alice_key, b"four", &world);
    assert!(
        matches!(&deliver(T0, &o, &mut [&mut alice])[0].1, Received::Direct { body, .. } if body == b"four")
    );
    let o = send_ready(rng, T0, device(&mut alice, 1), &bob_key, b"five", &world);
    assert!(
        matches!(&deliver(T0, &o, &mut [&mut bob])[0].1, Received::Direct { body, .. } if body == b"five")
    );
    // Attempts are capped.
    assert_eq!(
        device(&mut bob, 1)
            .request_retry(rng, T0, &lost, RetryReason::NoSession, 4)
            .err(),
        Some(FanoutError::RetryLimit.into())
    );
}

#[test]
fn state_epoch_detects_a_stale_snapshot() {
    let rng = &mut SeededRng::from_label("fanout epoch");
    let mut alice = account(rng, 0);
    let mut bob = account(rng, 0);
    introduce(T0, &mut alice, &mut bob);
    let bob_key = bob.key();
    let world = [&account_clone(&alice), &account_clone(&bob)];
    let snapshot = device(&mut alice, 1).to_bytes();
    let old_epoch = device(&mut alice, 1).state_epoch();
    send_ready(
        rng,
        T0,
        device(&mut alice, 1),
        &bob_key,
        b"after the snapshot",
        &world,
    );
    let latest = device(&mut alice, 1).state_epoch();
    assert!(latest > old_epoch);
    let current = device(&mut alice, 1).to_bytes();
    let (_, stale) = Device::restore(rng, &current, latest).unwrap();
    assert!(!stale);
    let (restored, stale) = Device::restore(rng, &snapshot, latest).unwrap();
    assert!(stale);
    assert!(restored.state_epoch() > old_epoch);
}
