//! No encoder (and no receive path that carries key material) leaves a secret in freed heap
//! memory: every block freed while the operation runs is scanned for the secrets the test
//! knows. One test, so no other test's frees interleave.

use ratchetry::calls::{Call, CallConfig, CallKind};
use ratchetry::devices::{PRIMARY_DEVICE, Primary, PrimaryPolicy};
use ratchetry::fanout::{Device, DeviceConfig, Outgoing};
use ratchetry::group::{GroupId, GroupSender, InboundSenderKey, OutboundGroupSession};
use ratchetry::testing::SeededRng;
use ratchetry::testing::hooks::session_keys;
use ratchetry::{IdentityKeyPair, IncomingMessage, PreKeyStore, Session, SessionConfig, Timestamp};
use ratchetry_heap_checks::{Scanning, reset, start, stop, watch};
use zeroize_check::grow_unwiped;

#[global_allocator]
static ALLOC: Scanning = Scanning;

const NOW: Timestamp = Timestamp(1_790_000_000_000);

fn arr(b: &[u8]) -> [u8; 32] {
    b[..32].try_into().unwrap()
}

/// Runs `op` with scanning on and asserts no freed block held a needle.
fn clean(what: &str, op: impl FnOnce()) {
    start();
    op();
    let (hits, which) = stop();
    assert_eq!(
        hits, 0,
        "{what}: {hits} freed blocks held secrets {which:?}"
    );
}

mod zeroize_check {
    /// What the encoders did before: a wiped-on-drop Vec that grows, leaving the smaller
    /// buffer it outgrew unwiped.
    pub fn grow_unwiped(secret: &[u8; 32]) {
        let mut v = zeroize_vec();
        v.extend_from_slice(secret);
        for _ in 0..64 {
            v.extend_from_slice(&[0; 32]);
        }
        wipe(&mut v);
    }
    fn zeroize_vec() -> Vec<u8> {
        Vec::with_capacity(40)
    }
    fn wipe(v: &mut [u8]) {
        v.iter_mut().for_each(|b| *b = 0);
    }
}

#[test]
fn encoders_and_key_carrying_receives_leave_no_secret_in_freed_memory() {
    let rng = &mut SeededRng::from_label("freed secrets");

    // The harness sees what it is meant to: an outgrown buffer keeps the secret.
    let canary = [0xc5u8; 32];
    reset();
    watch(&canary);
    start();
    grow_unwiped(&canary);
    let (hits, _) = stop();
    assert!(hits > 0, "the scanner missed an unwiped buffer");

    // Pairwise sessions, with skipped keys so the encoding outgrows any first guess.
    reset();
    let alice = IdentityKeyPair::generate(rng);
    let bob = IdentityKeyPair::generate(rng);
    let mut store = PreKeyStore::new(rng, &bob, NOW, Default::default());
    store.generate_one_time_prekeys(rng, 300);
    let bundle = store.bundle(&bob, None, None).verify().unwrap();
    let mut a = Session::initiate(rng, &alice, &bundle, SessionConfig::default()).unwrap();
    let first = a.encrypt(rng, b"hi").unwrap();
    let IncomingMessage::PreKey(pk) = IncomingMessage::decode(&first).unwrap() else {
        panic!()
    };
    let (mut b, _) = Session::accept(&bob, &mut store, &pk, SessionConfig::default()).unwrap();
    let reply = b.encrypt(rng, b"reply").unwrap();
    a.decrypt(&IncomingMessage::decode(&reply).unwrap())
        .unwrap();
    let mut later = Vec::new();
    for i in 0..40u8 {
        later.push(a.encrypt(rng, &[i]).unwrap());
    }
    b.decrypt(&IncomingMessage::decode(&later[39]).unwrap())
        .unwrap();
    let keys = session_keys(&b);
    watch(&keys.root_key);
    if let Some((ck, _)) = keys.sending {
        watch(&ck);
    }
    if let Some((_, ck, _)) = keys.receiving {
        watch(&ck);
    }
    watch(&arr(&alice.to_bytes()[2..]));
    watch(&arr(&bob.to_bytes()[2..]));
    clean("Session::to_bytes", || drop(b.to_bytes()));
    clean("Session::decrypt (skipped key)", || {
        b.decrypt(&IncomingMessage::decode(&later[3]).unwrap())
            .unwrap();
    });
    clean("PreKeyStore::to_bytes", || drop(store.to_bytes()));
    clean("IdentityKeyPair::to_bytes", || drop(bob.to_bytes()));

    // Groups.
    let owner = GroupSender::new(alice.public(), &[7; 36]).unwrap();
    let mut out = OutboundGroupSession::new(rng, GroupId([1; 32]), owner.clone());
    let d = out.distribution();
    watch(&arr(&d.to_bytes()[42..]));
    let mut inbound = InboundSenderKey::new(owner, &d);
    let mut msgs = Vec::new();
    for i in 0..50u8 {
        msgs.push(out.encrypt(rng, &[i; 10]).unwrap());
    }
    let config = Default::default();
    inbound
        .decrypt(
            &config,
            &ratchetry::group::GroupMessage::decode(&msgs[49]).unwrap(),
        )
        .unwrap();
    clean("OutboundGroupSession::to_bytes", || drop(out.to_bytes()));
    clean("InboundSenderKey::to_bytes", || drop(inbound.to_bytes()));
    clean("SenderKeyDistribution::to_bytes", || drop(d.to_bytes()));

    // Accounts, calls, devices.
    let phone = IdentityKeyPair::generate(rng);
    let primary = Primary::new(rng, &phone, NOW, PrimaryPolicy::default());
    watch(&arr(&primary.to_bytes()[2..]));
    watch(&arr(&phone.to_bytes()[2..]));
    clean("Primary::to_bytes", || drop(primary.to_bytes()));
    let me = ratchetry::devices::DeviceAddress {
        account: primary.account(),
        device: PRIMARY_DEVICE,
    };
    let call = Call::start(rng, CallKind::Group, me, &[], &CallConfig::default()).unwrap();
    watch(&arr(&call.key_message().to_bytes()[23..]));
    clean("Call::to_bytes", || drop(call.to_bytes()));

    let other_phone = IdentityKeyPair::generate(rng);
    let other = Primary::new(rng, &other_phone, NOW, PrimaryPolicy::default());
    let (mut mine, _) = Device::new(
        rng,
        NOW,
        phone,
        PRIMARY_DEVICE,
        primary.device_list().clone(),
        50,
        DeviceConfig::default(),
    )
    .unwrap();
    let (mut theirs, _) = Device::new(
        rng,
        NOW,
        other_phone,
        PRIMARY_DEVICE,
        other.device_list().clone(),
        50,
        DeviceConfig::default(),
    )
    .unwrap();
    mine.update_device_list(NOW, &other.account(), other.device_list().signed().clone())
        .unwrap();
    theirs
        .update_device_list(
            NOW,
            &primary.account(),
            primary.device_list().signed().clone(),
        )
        .unwrap();
    let room = GroupId([2; 32]);
    mine.set_group_members(room, &[other.account()]).unwrap();
    theirs
        .set_group_members(room, &[primary.account()])
        .unwrap();
    mine.start_sessions(rng, NOW, &[(theirs.address(), theirs.bundle(None, None))])
        .unwrap();
    let Outgoing::Ready(o) = mine.send_group(rng, NOW, room, b"hello room").unwrap() else {
        panic!()
    };
    clean("Device::take_changes (everything)", || {
        drop(mine.take_changes(rng))
    });
    clean("Device::to_bytes", || drop(mine.to_bytes()));
    clean("Device::receive (sender key distribution)", || {
        theirs.receive(NOW, &o.envelopes[0].1).unwrap();
    });
    clean("Device::take_changes (a receive)", || {
        drop(theirs.take_changes(rng))
    });
    let Outgoing::Ready(o) = mine.send_group(rng, NOW, room, b"again").unwrap() else {
        panic!()
    };
    clean("Device::receive (group message)", || {
        theirs.receive(NOW, &o.group.as_ref().unwrap().0).unwrap();
    });
    clean("Device::from_bytes", || {
        drop(Device::from_bytes(&mine.to_bytes()).unwrap())
    });
}
