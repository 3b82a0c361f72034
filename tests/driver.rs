//! The driver's loops against a directory over the test world: each row of the guide's table
//! of what to retry, as the driver resolves it.

mod support;

use std::collections::BTreeSet;

use ratchetry::devices::{AccountKey, DeviceAddress, SignedDeviceList};
use ratchetry::driver::{self, Directory, DriveError, Inbound, ReceiveStep, Receiving};
use ratchetry::fanout::{
    Device, EnvelopeId, Event, MAX_WAITING_RETRIES_PER_ACCOUNT, PENDING_RETRY_HOLD_MS, Received,
    RetryReason,
};
use ratchetry::group::GroupId;
use ratchetry::testing::SeededRng;
use ratchetry::{Error, FanoutError, PreKeyBundle, Timestamp};
use support::{World, body, tampered};

const ROOM: GroupId = GroupId([0x55; 32]);

/// A directory over the world: every primary's current list, every device's base bundle;
/// accounts in `hidden` are not served; `down` fails every call; `forged` serves the second
/// device's bundle under the first's address; `noisy` serves every bundle twice, and one of
/// a device not asked for; `stale` is served in place of its account's current list.
struct Relay<'w> {
    world: &'w World,
    hidden: BTreeSet<AccountKey>,
    stale: Option<SignedDeviceList>,
    down: bool,
    forged: Option<(DeviceAddress, DeviceAddress)>,
    noisy: bool,
    calls: usize,
}

impl<'w> Relay<'w> {
    fn new(world: &'w World) -> Self {
        Self {
            world,
            hidden: BTreeSet::new(),
            stale: None,
            down: false,
            forged: None,
            noisy: false,
            calls: 0,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Down;

impl Directory for Relay<'_> {
    type Error = Down;

    fn device_lists(&mut self, accounts: &[AccountKey]) -> Result<Vec<SignedDeviceList>, Down> {
        self.calls += 1;
        if self.down {
            return Err(Down);
        }
        Ok(self
            .world
            .primaries
            .iter()
            .filter(|p| accounts.contains(&p.account()) && !self.hidden.contains(&p.account()))
            .map(|p| match &self.stale {
                Some(list) if list.account() == p.account() => list.clone(),
                _ => p.device_list().signed().clone(),
            })
            .collect())
    }

    fn bundles(
        &mut self,
        devices: &[DeviceAddress],
    ) -> Result<Vec<(DeviceAddress, PreKeyBundle)>, Down> {
        self.calls += 1;
        if self.down {
            return Err(Down);
        }
        let bundle = |d: &DeviceAddress| {
            let source = match self.forged {
                Some((to, from)) if to == *d => from,
                _ => *d,
            };
            Some((*d, self.world.devices.get(&source)?.bundle(None, None)))
        };
        let mut served: Vec<_> = devices
            .iter()
            .filter(|d| !self.hidden.contains(&d.account))
            .filter_map(bundle)
            .collect();
        if self.noisy {
            served.extend(served.clone());
            let unasked = self.world.devices.keys().find(|d| !devices.contains(d));
            served.extend(unasked.and_then(bundle));
        }
        Ok(served)
    }
}

/// Takes `a` out of the world to drive it against a relay over the rest.
fn drive<T>(
    w: &mut World,
    a: DeviceAddress,
    f: impl FnOnce(&mut Device, &mut SeededRng, &mut Relay<'_>) -> T,
) -> T {
    let mut device = w.devices.remove(&a).unwrap();
    let mut rng = w.rng.clone();
    let out = {
        let mut relay = Relay::new(w);
        f(&mut device, &mut rng, &mut relay)
    };
    w.rng = rng;
    w.devices.insert(a, device);
    w.persist(a);
    out
}

fn nothing_stored(_: &EnvelopeId) -> bool {
    false
}

/// A first send to an account never seen: the driver fetches its list and its devices'
/// bundles, and reports the devices it learned.
#[test]
fn a_send_fetches_lists_and_bundles_until_ready() {
    let mut w = World::new("driver send");
    let alice = w.account(0);
    let bob = w.account(1);
    let a1 = World::addr(alice, 1);
    let now = w.now;
    let (outbox, events) = drive(&mut w, a1, |d, rng, relay| {
        driver::send(d, rng, now, relay, |d, rng| d.send(rng, now, &bob, b"hi"))
    })
    .unwrap();
    assert_eq!(outbox.recipients().len(), 2);
    assert_eq!(
        events,
        [
            Event::DeviceAdded(World::addr(bob, 1)),
            Event::DeviceAdded(World::addr(bob, 2))
        ]
    );
    // Bob's phone receives: it fetches Alice's list itself.
    let b1 = World::addr(bob, 1);
    let envelope = World::envelope_to(&outbox, b1);
    let (inbound, events) = drive(&mut w, b1, |d, rng, relay| {
        driver::receive(d, rng, now, relay, &envelope, nothing_stored)
    })
    .unwrap();
    let Inbound::Read(received) = inbound else {
        panic!("{inbound:?}")
    };
    assert_eq!(body(&received), Some(&b"hi"[..]));
    assert_eq!(events, [Event::DeviceAdded(a1)]);
}

/// A directory that is down, or never serves what the device needs, ends the loop with a
/// typed error, and the device is unchanged.
#[test]
fn a_directory_that_fails_or_serves_nothing_ends_the_loop() {
    let mut w = World::new("driver unresolved");
    let alice = w.account(0);
    let bob = w.account(0);
    let a1 = World::addr(alice, 1);
    let now = w.now;
    let before = w.device(a1).to_bytes();
    let down = drive(&mut w, a1, |d, rng, relay| {
        relay.down = true;
        driver::send(d, rng, now, relay, |d, rng| d.send(rng, now, &bob, b"hi"))
    });
    assert_eq!(down, Err(DriveError::Directory(Down)));
    let (unresolved, calls) = drive(&mut w, a1, |d, rng, relay| {
        relay.hidden.insert(bob);
        let r = driver::send(d, rng, now, relay, |d, rng| d.send(rng, now, &bob, b"hi"));
        (r, relay.calls)
    });
    assert_eq!(unresolved, Err(DriveError::Unresolved));
    assert_eq!(calls, driver::MAX_ROUNDS);
    assert_eq!(*before, *w.device(a1).to_bytes());
}

/// An account the app does not follow (the directory leaves it out) is dropped as unknown,
/// after one fetch; once served, its message reads, and reads again as a duplicate.
#[test]
fn a_receive_fetches_the_newer_list_and_drops_strangers() {
    let (mut w, alice, a2, b1) = alice_and_bob("driver receive lists", false);
    let bob = b1.account;
    let now = w.now;
    // Alice's laptop writes; Bob follows nobody from Alice yet: unknown until fetched.
    let outbox = w.send(a2, bob, b"from the laptop");
    let envelope = World::envelope_to(&outbox, b1);
    let before = w.device(b1).to_bytes();
    let (dropped, calls) = drive(&mut w, b1, |d, rng, relay| {
        relay.hidden.insert(alice);
        let r = driver::receive(d, rng, now, relay, &envelope, nothing_stored);
        (r, relay.calls)
    });
    assert_eq!(
        dropped,
        Ok((
            Inbound::Dropped(FanoutError::UnknownAccount(alice).into()),
            vec![]
        ))
    );
    assert_eq!(calls, 1, "one fetch, no loop");
    assert_eq!(*before, *w.device(b1).to_bytes());
    let (read, _) = drive(&mut w, b1, |d, rng, relay| {
        driver::receive(d, rng, now, relay, &envelope, nothing_stored)
    })
    .unwrap();
    assert!(matches!(read, Inbound::Read(Received::Direct { .. })));
    // Read again: a duplicate, acknowledged.
    let (again, _) = drive(&mut w, b1, |d, rng, relay| {
        driver::receive(d, rng, now, relay, &envelope, nothing_stored)
    })
    .unwrap();
    assert_eq!(again, Inbound::Duplicate(EnvelopeId::of(&envelope)));
}

/// Alice (a phone and a laptop, device 2) and Bob (a phone, device 1); Bob's phone follows
/// Alice's account only if `bob_follows_alice`.
fn alice_and_bob(
    label: &str,
    bob_follows_alice: bool,
) -> (World, AccountKey, DeviceAddress, DeviceAddress) {
    let mut w = World::new(label);
    let alice = w.account(1);
    let bob = w.account(0);
    if bob_follows_alice {
        w.publish_all();
    } else {
        w.publish(&bob);
    }
    (w, alice, World::addr(alice, 2), World::addr(bob, 1))
}

/// The same receive, stepped by the app (as an async app or a binding does): each step names
/// the list to fetch; the app applies what its relay serves, or nothing, and steps again.
#[test]
fn a_stepped_receive_names_each_list_and_decides_as_the_loop_does() {
    let (mut w, alice, a2, b1) = alice_and_bob("driver stepped receive", false);
    let bob = b1.account;
    let now = w.now;
    let outbox = w.send(a2, bob, b"from the laptop");
    let envelope = World::envelope_to(&outbox, b1);
    let alices_list = w
        .primaries
        .iter()
        .find(|p| p.account() == alice)
        .unwrap()
        .device_list()
        .signed()
        .clone();
    let before = w.device(b1).to_bytes();
    drive(&mut w, b1, |d, rng, _| {
        // The relay has no list for Alice: the next step decides, without another fetch.
        let mut r = Receiving::new();
        let step = r.step(d, rng, now, &envelope, nothing_stored);
        assert_eq!(step, Ok(ReceiveStep::NeedDeviceList(alice)));
        let step = r.step(d, rng, now, &envelope, nothing_stored);
        assert_eq!(
            step,
            Ok(ReceiveStep::Done(Inbound::Dropped(
                FanoutError::UnknownAccount(alice).into()
            )))
        );
        // It serves it this time: applied by the app, the next step reads the message.
        let mut r = Receiving::new();
        assert_eq!(
            r.step(d, rng, now, &envelope, nothing_stored),
            Ok(ReceiveStep::NeedDeviceList(alice))
        );
        let events = d.update_device_list(now, &alice, alices_list).unwrap();
        assert!(!events.is_empty());
        let Ok(ReceiveStep::Done(Inbound::Read(Received::Direct { body, .. }))) =
            r.step(d, rng, now, &envelope, nothing_stored)
        else {
            panic!("not read")
        };
        assert_eq!(body, b"from the laptop");
        // Once decided, a new receive of it is a duplicate at once.
        assert_eq!(
            Receiving::new().step(d, rng, now, &envelope, nothing_stored),
            Ok(ReceiveStep::Done(Inbound::Duplicate(EnvelopeId::of(
                &envelope
            ))))
        );
    });
    assert_ne!(*before, *w.device(b1).to_bytes());
}

/// A group message ahead of its sender key is held; an envelope that fails is asked for again
/// (or dropped when the app already stores its message), and the answer reads as resent.
#[test]
fn a_receive_holds_asks_again_or_drops_as_the_guide_says() {
    let mut w = World::new("driver receive outcomes");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob]);
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let now = w.now;
    let outbox = w.send_group(a1, ROOM, b"group hello");
    let (group_envelope, _) = outbox.group.clone().unwrap();
    let (held, _) = drive(&mut w, b1, |d, rng, relay| {
        driver::receive(d, rng, now, relay, &group_envelope, nothing_stored)
    })
    .unwrap();
    assert_eq!(held, Inbound::Hold { from: a1 });
    w.deliver_ok(&outbox);

    let direct = w.send(a1, bob, b"direct");
    let failed = tampered(&World::envelope_to(&direct, b1));
    let (stored, _) = drive(&mut w, b1, |d, rng, relay| {
        driver::receive(d, rng, now, relay, &failed, |_| true)
    })
    .unwrap();
    // Its message stored: a replay, a duplicate under the id found.
    assert_eq!(stored, Inbound::Duplicate(EnvelopeId::of(&failed)));
    let (ask, _) = drive(&mut w, b1, |d, rng, relay| {
        driver::receive(d, rng, now, relay, &failed, nothing_stored)
    })
    .unwrap();
    let Inbound::AskAgain { to, request } = ask else {
        panic!("{ask:?}")
    };
    assert_eq!(to, a1);
    let Ok(Received::RetryRequest(req)) = w.receive(a1, &request) else {
        panic!("the request reads")
    };
    let answer = w
        .run(a1, |d, rng, now| d.answer_retry(rng, now, &req, b"direct"))
        .unwrap();
    let envelope = World::envelope_to(&answer, b1);
    let (read, _) = drive(&mut w, b1, |d, rng, relay| {
        driver::receive(d, rng, now, relay, &envelope, nothing_stored)
    })
    .unwrap();
    let Inbound::Read(Received::Direct { body, resent, .. }) = read else {
        panic!("{read:?}")
    };
    assert_eq!(
        (body.as_slice(), resent),
        (&b"direct"[..], Some(EnvelopeId::of(&failed)))
    );
}

/// A group message whose sender key never came (the relay withheld it) is asked for with
/// `driver::ask_again`, which looks in the app's store first: a message stored under the
/// envelope's id is a replay, `Duplicate`, nothing asked and nothing changed; not stored, it
/// is asked for, and the answer reads.
#[test]
fn a_held_envelope_is_asked_for_unless_its_message_is_stored() {
    let mut w = World::new("driver ask again");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob]);
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let outbox = w.send_group(a1, ROOM, b"held");
    let held = World::group_envelope_for(&outbox, b1);
    assert_eq!(w.step(b1, &held), Inbound::Hold { from: a1 });
    let id = EnvelopeId::of(&held);
    let before = w.device(b1).to_bytes();
    let now = w.now;
    let replay = drive(&mut w, b1, |d, rng, _| {
        driver::ask_again(d, rng, now, &held, RetryReason::SenderKeyMissing, |s| {
            *s == id
        })
    });
    assert_eq!(replay, Inbound::Duplicate(id));
    assert_eq!(*before, *w.device(b1).to_bytes());
    let ask = drive(&mut w, b1, |d, rng, _| {
        driver::ask_again(
            d,
            rng,
            now,
            &held,
            RetryReason::SenderKeyMissing,
            nothing_stored,
        )
    });
    let Inbound::AskAgain { to, request } = ask else {
        panic!("{ask:?}")
    };
    assert_eq!(to, a1);
    let Ok(Received::RetryRequest(req)) = w.receive(a1, &request) else {
        panic!("the request reads")
    };
    let answer = w.answer(a1, &req, b"held");
    let read = answer
        .envelopes
        .iter()
        .filter(|(to, _)| *to == b1)
        .map(|(_, e)| w.step(b1, e))
        .collect::<Vec<_>>();
    assert!(
        read.iter()
            .any(|r| matches!(r, Inbound::Read(r) if body(r) == Some(&b"held"[..]))),
        "{read:?}"
    );
}

/// A group message read long ago (Mallory's messages turned the read ring), replayed by the
/// relay: while Bob keeps its sender-key generation (`DEFAULT_MAX_GENERATIONS`) it is
/// `Dropped` as a duplicate iteration; once Alice has rotated past that, it is `Hold` (its key
/// is gone), and the guide's ask finds it in the store (`Duplicate`); asked anyway, Alice
/// refuses (her ledger of that generation is gone too). Never read twice.
#[test]
fn a_group_message_replayed_after_the_ring_turned_is_not_read_again() {
    let (mut w, [alice, bob, mallory], [a1, b1, m1]) = World::phones::<3>("driver old replay");
    w.set_members(ROOM, &[alice, bob, mallory]);
    let sent = w.send_group(a1, ROOM, b"once");
    w.deliver_ok(&sent);
    let old = World::group_envelope_for(&sent, b1);
    let id = EnvelopeId::of(&old);
    for i in 0..ratchetry::fanout::MAX_REMEMBERED_MESSAGE_IDS {
        let o = w.send(m1, bob, format!("flood {i}").as_bytes());
        w.deliver_ok(&o);
    }
    // Alice rotates her key by removing Mallory (who holds it) and adding her back (she gets
    // the new one), a generation at a time.
    let mut rotations = 0;
    let held = loop {
        match w.step(b1, &old) {
            Inbound::Dropped(Error::Group(ratchetry::GroupError::Duplicate)) => {}
            Inbound::Hold { from } => break from,
            other => panic!("after {rotations} rotations: {other:?}"),
        }
        assert!(rotations < 8, "the generation is never forgotten");
        w.set_members(ROOM, &[alice, bob]);
        let o = w.send_group(a1, ROOM, b"rotated");
        w.deliver_ok(&o);
        w.set_members(ROOM, &[alice, bob, mallory]);
        let o = w.send_group(a1, ROOM, b"mallory back");
        w.deliver_ok(&o);
        rotations += 1;
    };
    assert_eq!(held, a1);
    assert!(rotations >= ratchetry::group::DEFAULT_MAX_GENERATIONS as usize - 1);
    let now = w.now;
    let asked = drive(&mut w, b1, |d, rng, _| {
        driver::ask_again(d, rng, now, &old, RetryReason::SenderKeyMissing, |s| {
            *s == id
        })
    });
    assert_eq!(asked, Inbound::Duplicate(id));
    let (to, request) = w
        .request_retry(b1, &old, RetryReason::SenderKeyMissing)
        .unwrap();
    assert_eq!(to, a1);
    let now = w.now;
    let refused = w.device(a1).receive(now, &request);
    assert!(
        matches!(refused, Err(Error::Fanout(FanoutError::NotEntitled))),
        "{refused:?}"
    );
}

/// Carol, a contact the relay works with, has her messages to Alice broken until Alice waits
/// on `MAX_WAITING_RETRIES_PER_ACCOUNT` answers from her account: the next is `AskLater`,
/// when the first of them stops waiting, with nothing changed (through the stepper and
/// `ask_again` alike), while Bob's broken message is still asked for. Once one of Carol's
/// answers is read (or at that time) Carol's kept envelope is asked for.
#[test]
fn asks_beyond_an_accounts_share_wait_and_take_no_others_place() {
    let (mut w, [alice, _bob, _carol], [a1, b1, c1]) = World::phones::<3>("driver ask later");
    let first = w.now;
    let broken = |w: &mut World, from: DeviceAddress| {
        tampered(&World::envelope_to(&w.send(from, alice, b"kept"), a1))
    };
    let mut requests = Vec::new();
    for _ in 0..MAX_WAITING_RETRIES_PER_ACCOUNT {
        let e = broken(&mut w, c1);
        let Inbound::AskAgain { to, request } = w.step(a1, &e) else {
            panic!("Alice asks")
        };
        assert_eq!(to, c1);
        requests.push(request);
        w.now = w.now.plus_millis(1);
    }
    let later = broken(&mut w, c1);
    let before = w.device(a1).to_bytes();
    // One day and 64 (PROTOCOL.md 18.4), the constants' values.
    assert_eq!(
        (PENDING_RETRY_HOLD_MS, MAX_WAITING_RETRIES_PER_ACCOUNT),
        (86_400_000, 64)
    );
    let at = Timestamp(first.0 + 86_400_000);
    assert_eq!(w.step(a1, &later), Inbound::AskLater { at });
    let now = w.now;
    let again = drive(&mut w, a1, |d, rng, _| {
        let reason = RetryReason::AuthenticationFailed;
        driver::ask_again(d, rng, now, &later, reason, |_| false)
    });
    assert_eq!(again, Inbound::AskLater { at });
    assert_eq!(
        w.device(a1).to_bytes(),
        before,
        "a deferred ask changed the device"
    );
    // Another account's ask takes no place of Carol's and is not deferred.
    let bobs = broken(&mut w, b1);
    assert!(matches!(w.step(a1, &bobs), Inbound::AskAgain { to, .. } if to == b1));
    // At `at` the first of Carol's stops waiting; before it, an answer read frees a place.
    w.now = Timestamp(at.0 - 1);
    assert_eq!(w.step(a1, &later), Inbound::AskLater { at });
    let Ok(Received::RetryRequest(req)) = w.receive(c1, &requests[5]) else {
        panic!("Carol takes the request")
    };
    let answer = World::envelope_to(&w.answer(c1, &req, b"kept"), a1);
    assert!(matches!(w.step(a1, &answer), Inbound::Read(r) if body(&r) == Some(&b"kept"[..])));
    assert!(matches!(w.step(a1, &later), Inbound::AskAgain { to, .. } if to == c1));
    let one_more = broken(&mut w, c1);
    assert_eq!(w.step(a1, &one_more), Inbound::AskLater { at });
    w.now = at;
    assert!(matches!(w.step(a1, &one_more), Inbound::AskAgain { to, .. } if to == c1));
}

/// A new companion's first message names a newer list of its account than the receiver holds
/// (`DeviceListsDiverge`): the driver fetches it, reports the new device, and reads.
#[test]
fn a_new_companions_first_message_is_read_after_fetching_its_list() {
    let mut w = World::new("driver new companion");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let b1 = World::addr(bob, 1);
    let laptop = w.link(&alice);
    let list = w.primary(&alice).device_list().signed().clone();
    let now = w.now;
    w.device(World::addr(alice, 1))
        .update_device_list(now, &alice, list)
        .unwrap();
    let bobs = w.primary(&bob).device_list().signed().clone();
    w.device(laptop)
        .update_device_list(now, &bob, bobs)
        .unwrap();
    let outbox = w.send(laptop, bob, b"new laptop");
    let envelope = World::envelope_to(&outbox, b1);
    w.refused(
        b1,
        &envelope,
        FanoutError::DeviceListsDiverge {
            account: alice,
            used: 2,
            held: 1,
        }
        .into(),
    );
    let (read, events) = drive(&mut w, b1, |d, rng, relay| {
        driver::receive(d, rng, now, relay, &envelope, nothing_stored)
    })
    .unwrap();
    assert_eq!(events, [Event::DeviceAdded(laptop)]);
    let Inbound::Read(received) = read else {
        panic!("{read:?}")
    };
    assert_eq!(body(&received), Some(&b"new laptop"[..]));
}

/// Found by review: while a restored companion awaits an own list issued since its restore,
/// an own-account envelope is kept for that list (`AwaitList`), not dropped; once the primary
/// signs one, it reads.
#[test]
fn a_restored_device_keeps_own_envelopes_until_its_new_list() {
    let mut w = World::new("driver awaiting own list");
    let alice = w.account(1);
    let bob = w.account(0);
    w.publish_all();
    let (a1, a2) = (World::addr(alice, 1), World::addr(alice, 2));
    let now = w.now;
    let backup = w.device(a2).to_bytes();
    w.devices
        .insert(a2, Device::restore_from_backup(&backup, now).unwrap());
    let outbox = w.send(a1, bob, b"own copy for the laptop");
    let envelope = World::envelope_to(&outbox, a2);
    let (kept, _) = drive(&mut w, a2, |d, rng, relay| {
        driver::receive(d, rng, now, relay, &envelope, nothing_stored)
    })
    .unwrap();
    assert_eq!(kept, Inbound::AwaitList { account: alice });
    // The primary signs a list after the restore; the driver fetches it and reads.
    let later = ratchetry::Timestamp(now.0 + 1000);
    w.primary(&alice).renew(later).unwrap();
    let (read, _) = drive(&mut w, a2, |d, rng, relay| {
        driver::receive(d, rng, later, relay, &envelope, nothing_stored)
    })
    .unwrap();
    assert!(
        matches!(read, Inbound::Read(Received::OwnCopy { .. })),
        "{read:?}"
    );
}

/// An envelope naming a newer list of its sender than the relay serves yet is kept for that
/// list, not dropped.
#[test]
fn a_newer_list_not_yet_served_is_awaited() {
    let mut w = World::new("driver newer list not served");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let b1 = World::addr(bob, 1);
    let now = w.now;
    let envelope = from_a_new_laptop(&mut w, alice, bob);
    // The relay serves no newer list of Alice's yet (it lags).
    let (kept, _) = drive(&mut w, b1, |d, rng, relay| {
        relay.hidden.insert(alice);
        driver::receive(d, rng, now, relay, &envelope, nothing_stored)
    })
    .unwrap();
    assert_eq!(kept, Inbound::AwaitList { account: alice });
}

/// A relay (or a stale replica of it) that serves a list older than the one held has served
/// nothing newer: the envelope waits for the newer list, as when the relay serves none, and
/// is read once it is served. (The driver used to stop with the device's `Rollback`, so the
/// envelope was refused at every try and never acknowledged; found by `restore_life`.)
#[test]
fn a_list_older_than_the_one_held_is_nothing_newer() {
    let mut w = World::new("driver older list");
    let alice = w.account(0);
    let bob = w.account(0);
    let old = w.primary(&alice).device_list().signed().clone();
    let now = w.now;
    w.primary(&alice).renew(now).unwrap();
    w.publish_all();
    let b1 = World::addr(bob, 1);
    let envelope = from_a_new_laptop(&mut w, alice, bob);
    let held = w.device(b1).device_list(&alice).unwrap().digest();
    let (kept, events) = drive(&mut w, b1, |d, rng, relay| {
        relay.stale = Some(old.clone());
        driver::receive(d, rng, now, relay, &envelope, nothing_stored)
    })
    .unwrap();
    assert_eq!(kept, Inbound::AwaitList { account: alice });
    assert!(events.is_empty());
    assert_eq!(w.device(b1).device_list(&alice).unwrap().digest(), held);
    let (read, _) = drive(&mut w, b1, |d, rng, relay| {
        driver::receive(d, rng, now, relay, &envelope, nothing_stored)
    })
    .unwrap();
    assert!(matches!(read, Inbound::Read(Received::Direct { .. })));
}

/// A list that does not verify still stops the loop: the relay forged it, and the app should
/// know.
#[test]
fn a_forged_list_stops_the_receive() {
    let mut w = World::new("driver forged list");
    let alice = w.account(0);
    let bob = w.account(0);
    let mallory = w.account(0);
    w.publish_all();
    let b1 = World::addr(bob, 1);
    let now = w.now;
    let envelope = from_a_new_laptop(&mut w, alice, bob);
    // Mallory's list under Alice's account: served for Alice, it names the wrong account.
    let forged = w.primary(&mallory).device_list().signed().clone();
    let mut forged_bytes = forged.to_bytes();
    forged_bytes[2..34].copy_from_slice(&alice.to_bytes());
    let forged = SignedDeviceList::from_bytes(&forged_bytes).unwrap();
    let stopped = drive(&mut w, b1, |d, rng, relay| {
        relay.stale = Some(forged.clone());
        driver::receive(d, rng, now, relay, &envelope, nothing_stored)
    });
    assert!(
        matches!(stopped, Err(DriveError::Device(Error::Device(_)))),
        "{stopped:?}"
    );
}

/// Alice links a laptop, which follows Bob and writes to him; Bob's phone holds Alice's list
/// from before the link. Returns the envelope to Bob's phone.
fn from_a_new_laptop(w: &mut World, alice: AccountKey, bob: AccountKey) -> Vec<u8> {
    let laptop = w.link(&alice);
    let now = w.now;
    let bobs = w.primary(&bob).device_list().signed().clone();
    w.device(laptop)
        .update_device_list(now, &bob, bobs)
        .unwrap();
    let outbox = w.send(laptop, bob, b"from the new laptop");
    World::envelope_to(&outbox, World::addr(bob, 1))
}

/// An envelope that fails authentication is asked for again as such
/// (`RetryReason::AuthenticationFailed`), so its sender knows the session it used is broken
/// rather than missing.
#[test]
fn a_receive_asks_again_for_the_reason_the_envelope_failed() {
    let mut w = World::new("driver retry reason");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let now = w.now;
    let direct = w.send(a1, bob, b"direct");
    let failed = tampered(&World::envelope_to(&direct, b1));
    let (ask, _) = drive(&mut w, b1, |d, rng, relay| {
        driver::receive(d, rng, now, relay, &failed, nothing_stored)
    })
    .unwrap();
    let Inbound::AskAgain { request, .. } = ask else {
        panic!("{ask:?}")
    };
    let Ok(Received::RetryRequest(req)) = w.receive(a1, &request) else {
        panic!("the request reads")
    };
    assert_eq!(req.reason, RetryReason::AuthenticationFailed);
}

/// A directory that serves a bundle the device refuses (another device's, under this one's
/// address), every bundle twice, and one not asked for: the driver starts the sessions it can
/// and names the refused device, with why, in `NoBundles`, after one round; a send withholding
/// from it is then ready without another fetch, and reaches the others.
#[test]
fn a_bundle_refused_names_its_device_and_the_others_sessions_start() {
    let mut w = World::new("driver refused bundle");
    let alice = w.account(0);
    let bob = w.account(0);
    let carol = w.account(1);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob, carol]);
    let (a1, b1, c1, c2) = (
        World::addr(alice, 1),
        World::addr(bob, 1),
        World::addr(carol, 1),
        World::addr(carol, 2),
    );
    let now = w.now;
    let (result, calls) = drive(&mut w, a1, |d, rng, relay| {
        relay.forged = Some((c2, b1));
        relay.noisy = true;
        let r = driver::send(d, rng, now, relay, |d, rng| {
            d.send_group(rng, now, ROOM, b"hello room")
        });
        (r, relay.calls)
    });
    let refused = Error::from(FanoutError::IdentityMismatch(c2));
    assert_eq!(
        result.err(),
        Some(DriveError::NoBundles(vec![(c2, Some(refused))]))
    );
    let (result, more) = drive(&mut w, a1, |d, rng, relay| {
        let r = driver::send(d, rng, now, relay, |d, rng| {
            d.send_group_withholding(rng, now, ROOM, b"hello room", &[(c2, None)])
        });
        (r, relay.calls)
    });
    assert_eq!(
        more, 0,
        "every other session was started: {calls} calls before"
    );
    let (outbox, _) = result.unwrap();
    let got = w.deliver(&outbox);
    for reader in [b1, c1] {
        assert!(
            got.iter()
                .any(|(to, r)| *to == reader && matches!(r, Ok(Received::Group { .. }))),
            "{reader:?}"
        );
    }
    assert!(!got.iter().any(|(to, r)| *to == c2 && r.is_ok()));
}

/// A driven error says what failed: the directory's error, the device's refusal as the
/// device words it, that the directory never served what was needed, or for how many devices
/// it has no bundle.
#[test]
fn a_drive_error_says_what_failed() {
    let directory: DriveError<&str> = DriveError::Directory("connection reset");
    assert!(directory.to_string().contains("connection reset"));
    let refusal = Error::from(FanoutError::UnknownMessage);
    assert_eq!(
        DriveError::<&str>::Device(refusal).to_string(),
        refusal.to_string()
    );
    assert!(!DriveError::<&str>::Unresolved.to_string().is_empty());
    let device = World::addr(World::new("driver error text").account(0), 2);
    let none = DriveError::<&str>::NoBundles(vec![(device, None), (device, None)]);
    assert!(
        none.to_string()
            .contains("no usable prekey bundle for 2 device")
    );
}

/// Lists that each change something but never resolve the envelope end a stepped receive after
/// `MAX_ROUNDS` rounds: a relay cannot keep a device fetching forever.
#[test]
fn a_stepped_receive_stops_after_max_rounds_of_lists_that_do_not_resolve_it() {
    let (mut w, alice, a2, b1) = alice_and_bob("driver stepped rounds", true);
    let bob = b1.account;
    let now = w.now;
    // Alice renews her list five times; Bob holds the first, her laptop the newest.
    let mut versions = Vec::new();
    for _ in 0..5 {
        w.primary(&alice).renew(now).unwrap();
        versions.push(w.primary(&alice).device_list().signed().clone());
    }
    w.device(a2)
        .update_device_list(now, &alice, versions[4].clone())
        .unwrap();
    let outbox = w.send(a2, bob, b"under the newest list");
    let envelope = World::envelope_to(&outbox, b1);
    drive(&mut w, b1, |d, rng, _| {
        let mut r = Receiving::new();
        for list in &versions[..driver::MAX_ROUNDS] {
            assert_eq!(
                r.step(d, rng, now, &envelope, nothing_stored),
                Ok(ReceiveStep::NeedDeviceList(alice))
            );
            d.update_device_list(now, &alice, list.clone()).unwrap();
        }
        assert_eq!(
            r.step(d, rng, now, &envelope, nothing_stored),
            Err(DriveError::Unresolved)
        );
    });
}

/// An envelope made under the held version of the sender's list but with another digest (the
/// sender was shown another list) is dropped after the fetch changes nothing: only a newer
/// version is worth waiting for.
#[test]
fn an_envelope_under_the_held_version_with_another_digest_is_dropped() {
    let (mut w, _, a2, b1) = alice_and_bob("driver digest diverges", true);
    let bob = b1.account;
    let now = w.now;
    let outbox = w.send(a2, bob, b"digest");
    let mut forged = World::envelope_to(&outbox, b1);
    forged[3 + 36 + 36 + 16] ^= 1;
    let (outcome, _) = drive(&mut w, b1, |d, rng, relay| {
        driver::receive(d, rng, now, relay, &forged, nothing_stored)
    })
    .unwrap();
    let Inbound::Dropped(Error::Fanout(FanoutError::DeviceListsDiverge { used, held, .. })) =
        outcome
    else {
        panic!("not dropped: {outcome:?}")
    };
    assert_eq!(used, held);
}
