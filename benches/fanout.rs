//! Client fanout with established sessions. Each group times the operation and a reference:
//! - `send/{N}dev/{size}`: a 1:1 message to an account with N devices, next to `pairwise`, one
//!   pairwise `Session::encrypt` of the same size; the per-device cost is `op / N`, and its
//!   ratio to `pairwise` is the fanout overhead (envelope header, AD binding, session copy).
//! - `group_first/50x5`: the first message to a 50-member room of 5 devices each (250 sender-key
//!   distributions plus one group message), `group_steady/50x5`: a later one (no
//!   distributions), each next to `floor`: the group message's own primitive floor (one
//!   Ed25519 signature, AEAD, KDFs) plus, for the first message, 250 pairwise encrypts.
//! - `session_setup`: starting a session to a new device from its bundle (X3DH initiator).

// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ratchetry::calls::{Call, CallConfig, CallKind};
use ratchetry::devices::{
    AccountKey, DeviceAddress, DeviceId, LinkRequest, ListLimits, Primary, PrimaryPolicy,
    complete_link,
};
use ratchetry::fanout::{Device, DeviceConfig, Outgoing};
use ratchetry::group::{GroupId, GroupSender, OutboundGroupSession};
use ratchetry::testing::SeededRng;
use ratchetry::{
    IdentityKeyPair, IncomingMessage, PreKeyBundle, Session, SessionConfig, Timestamp,
};

const NOW: Timestamp = Timestamp(1_790_000_000_000);

fn config(max_companions: u32) -> DeviceConfig {
    DeviceConfig {
        lists: ListLimits { max_companions },
        ..DeviceConfig::default()
    }
}

/// A primary allowing `max_companions`, signed into its lists.
fn primary_policy(max_companions: u32) -> PrimaryPolicy {
    let mut policy = PrimaryPolicy::default();
    policy.account.max_companions = max_companions;
    policy
}

/// An account with `n` devices (a primary and n - 1 companions).
fn account(rng: &mut SeededRng, n: usize, cfg: DeviceConfig) -> (Primary, Vec<Device>) {
    let phone = IdentityKeyPair::generate(rng);
    let mut primary = Primary::new(rng, &phone, NOW, primary_policy(cfg.lists.max_companions));
    let mut pending = vec![(phone, DeviceId(1))];
    for _ in 1..n {
        let id = IdentityKeyPair::generate(rng);
        let inv = primary.invite(rng, NOW).unwrap();
        let approval = primary.approve(NOW, &LinkRequest::new(&id, &inv)).unwrap();
        complete_link(&id, &inv, &approval, &cfg.lists).unwrap();
        pending.push((id, approval.device));
    }
    let list = primary.device_list().clone();
    let devices = pending
        .into_iter()
        .map(|(id, d)| {
            Device::new(rng, NOW, id, d, list.clone(), 1, cfg)
                .unwrap()
                .0
        })
        .collect();
    (primary, devices)
}

fn ready(o: Outgoing) -> ratchetry::fanout::Outbox {
    match o {
        Outgoing::Ready(o) => o,
        Outgoing::NeedBundles(m) => panic!("missing sessions: {}", m.len()),
        Outgoing::NeedDeviceLists(m) => panic!("missing lists: {}", m.len()),
    }
}

/// Gives `sender` sessions with every device of the accounts, answered once so they are
/// established (no pre-key messages).
fn connect(rng: &mut SeededRng, sender: &mut Device, accounts: &mut [(Primary, Vec<Device>)]) {
    let sender_list = sender
        .device_list(&sender.address().account)
        .unwrap()
        .signed()
        .clone();
    let mut bundles: Vec<(DeviceAddress, PreKeyBundle)> = Vec::new();
    for (primary, devices) in accounts.iter_mut() {
        sender
            .update_device_list(
                NOW,
                &primary.account(),
                primary.device_list().signed().clone(),
            )
            .unwrap();
        for d in devices.iter_mut() {
            d.update_device_list(NOW, &sender.address().account, sender_list.clone())
                .unwrap();
            bundles.push((d.address(), d.bundle(None, None)));
        }
    }
    sender.start_sessions(rng, NOW, &bundles).unwrap();
    for (primary, devices) in accounts.iter_mut() {
        let outbox = ready(sender.send(rng, NOW, &primary.account(), b"hello").unwrap());
        let siblings: Vec<_> = devices
            .iter()
            .map(|d| (d.address(), d.bundle(None, None)))
            .collect();
        for (to, env) in outbox.envelopes {
            let d = devices.iter_mut().find(|d| d.address() == to).unwrap();
            d.receive(NOW, &env).unwrap();
            let to_sender = sender.address().account;
            let reply = match d.send(rng, NOW, &to_sender, b"hi").unwrap() {
                Outgoing::Ready(o) => o,
                Outgoing::NeedBundles(missing) => {
                    let b: Vec<_> = siblings
                        .iter()
                        .filter(|(a, _)| missing.contains(a))
                        .cloned()
                        .collect();
                    d.start_sessions(rng, NOW, &b).unwrap();
                    ready(d.send(rng, NOW, &to_sender, b"hi").unwrap())
                }
                Outgoing::NeedDeviceLists(m) => panic!("missing lists: {}", m.len()),
            };
            for (to, env) in reply.envelopes {
                if to == sender.address() {
                    sender.receive(NOW, &env).unwrap();
                }
            }
        }
        // One more send so every session has a sending chain: the steady state.
        let again = ready(sender.send(rng, NOW, &primary.account(), b"again").unwrap());
        for (to, env) in again.envelopes {
            if let Some(d) = devices.iter_mut().find(|d| d.address() == to) {
                d.receive(NOW, &env).unwrap();
            }
        }
    }
}

fn pairwise_session(rng: &mut SeededRng) -> Session {
    let a = IdentityKeyPair::generate(rng);
    let b = IdentityKeyPair::generate(rng);
    let mut store = ratchetry::PreKeyStore::new(rng, &b, NOW, Default::default());
    let bundle = store.bundle(&b, None, None).verify().unwrap();
    let mut sa = Session::initiate(rng, &a, &bundle, SessionConfig::default()).unwrap();
    let w = sa.encrypt(rng, b"x").unwrap();
    let IncomingMessage::PreKey(pk) = IncomingMessage::decode(&w).unwrap() else {
        panic!()
    };
    let (mut sb, _) = Session::accept(&b, &mut store, &pk, SessionConfig::default()).unwrap();
    let r = sb.encrypt(rng, b"y").unwrap();
    sa.decrypt(&IncomingMessage::decode(&r).unwrap()).unwrap();
    sa
}

fn quick(
    c: &mut Criterion,
    name: String,
) -> criterion::BenchmarkGroup<'_, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(20)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(300));
    g
}

fn bench_send(c: &mut Criterion) {
    let rng = &mut SeededRng::from_label("bench fanout");
    let cfg = config(255);
    let mut pairwise = pairwise_session(rng);
    for n in [1usize, 5, 50, 250] {
        let (_, mut alice) = account(rng, 1, cfg);
        let mut bob = vec![account(rng, n, cfg)];
        connect(rng, &mut alice[0], &mut bob);
        let bob_key = bob[0].0.account();
        for (len, size) in [(64usize, "64B"), (1024, "1KiB")] {
            let body = vec![7u8; len];
            let mut g = quick(c, format!("send/{n}dev/{size}"));
            g.bench_function("op", |b| {
                b.iter(|| {
                    black_box(ready(
                        alice[0].send(rng, NOW, &bob_key, black_box(&body)).unwrap(),
                    ))
                })
            });
            g.bench_function("pairwise", |b| {
                b.iter(|| black_box(pairwise.encrypt(rng, black_box(&body)).unwrap()))
            });
            g.finish();
        }
    }
}

fn bench_group(c: &mut Criterion) {
    let rng = &mut SeededRng::from_label("bench fanout group");
    let cfg = config(4);
    let (_, mut alice) = account(rng, 1, cfg);
    let mut members: Vec<_> = (0..50).map(|_| account(rng, 5, cfg)).collect();
    connect(rng, &mut alice[0], &mut members);
    let keys: Vec<AccountKey> = members.iter().map(|m| m.0.account()).collect();
    for g in 0..4 {
        alice[0].set_group_members(GroupId([g; 32]), &keys);
    }
    let body = vec![7u8; 1024];
    let mut pairwise = pairwise_session(rng);
    let sender = GroupSender::new(alice[0].identity_key(), &[0; 36]).unwrap();
    let distribution = OutboundGroupSession::new(rng, GroupId([0; 32]), sender.clone())
        .distribution()
        .to_bytes();

    let mut g = quick(c, "group_first/50x5/1KiB".into());
    let pristine = alice[0].clone();
    g.bench_function("op", |b| {
        b.iter_batched(
            || pristine.clone(),
            |mut d| {
                black_box(ready(
                    d.send_group(rng, NOW, GroupId([1; 32]), &body).unwrap(),
                ))
            },
            BatchSize::LargeInput,
        )
    });
    let mut out = OutboundGroupSession::new(rng, GroupId([2; 32]), sender);
    g.bench_function("floor", |b| {
        b.iter(|| {
            for _ in 0..250 {
                black_box(pairwise.encrypt(rng, &distribution).unwrap());
            }
            black_box(out.encrypt(rng, &body).unwrap())
        })
    });
    g.finish();

    let mut g = quick(c, "group_steady/50x5/1KiB".into());
    ready(
        alice[0]
            .send_group(rng, NOW, GroupId([3; 32]), &body)
            .unwrap(),
    );
    g.bench_function("op", |b| {
        b.iter(|| {
            black_box(ready(
                alice[0]
                    .send_group(rng, NOW, GroupId([3; 32]), &body)
                    .unwrap(),
            ))
        })
    });
    g.bench_function("floor", |b| {
        b.iter(|| black_box(out.encrypt(rng, &body).unwrap()))
    });
    g.finish();

    // Call-key distribution to a 32-participant group call, 5 devices each (160 devices).
    let mut g = quick(c, "call_key/32x5".into());
    let participants: Vec<DeviceAddress> = members[..32]
        .iter()
        .flat_map(|(_, devices)| devices.iter().map(|d| d.address()))
        .chain(std::iter::once(alice[0].address()))
        .collect();
    let call = Call::start(
        rng,
        CallKind::Room,
        alice[0].address(),
        &participants[128..],
        &CallConfig::default(),
    )
    .unwrap();
    let message = call.key_message().clone();
    let message_bytes = message.to_bytes();
    g.bench_function("op", |b| {
        b.iter(|| {
            black_box(ready(
                alice[0]
                    .send_call_key(rng, NOW, &participants, &message)
                    .unwrap(),
            ))
        })
    });
    g.bench_function("floor", |b| {
        b.iter(|| {
            for _ in 0..160 {
                black_box(pairwise.encrypt(rng, &message_bytes).unwrap());
            }
        })
    });
    g.finish();

    let mut g = quick(c, "session_setup".into());
    let (_, newcomer) = account(rng, 1, cfg);
    let newcomer_list = newcomer[0]
        .device_list(&newcomer[0].address().account)
        .unwrap()
        .signed()
        .clone();
    let mut d = alice[0].clone();
    d.update_device_list(NOW, &newcomer[0].address().account, newcomer_list)
        .unwrap();
    let bundle = vec![(newcomer[0].address(), newcomer[0].bundle(None, None))];
    g.bench_function("op", |b| {
        b.iter_batched(
            || d.clone(),
            |mut d| d.start_sessions(rng, NOW, &bundle).unwrap(),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_send, bench_group);
criterion_main!(benches);
