//! Client fanout with established sessions. Each group times the operation beside its floors:
//! - `floor_nsession`: one pairwise `Session::encrypt` per recipient device over as many
//!   distinct sessions, each decoded from its stored bytes into its own allocation as a loaded
//!   device holds them, the ciphertexts kept together as the op keeps its envelopes (issue
//!   #22's honest floor: the same memory walk as the op);
//! - `floor_1session`: the same count of encrypts on one hot session (the floor before #22,
//!   which leaves out the cost of touching N sessions).
//!
//! The groups:
//! - `send/{N}dev/{size}`: a 1:1 message to N devices, 1 to 3,000. A device list holds at most
//!   256 devices, so 1,000 and 3,000 are 4 and 12 accounts of 250, one `send` to each;
//! - `group_first/{M}x{D}`: the first message to a room of M members of D devices (M × D
//!   sender-key distributions plus one group message) from a device just loaded (`op`) and
//!   from one that has sent since (`op_warm`), `group_steady/{M}x{D}`: a later one,
//!   next to `floor`, one group encrypt. Rooms of 50 × 5 and of 1,024 × 3 (3,072 devices);
//! - `call_key/32x5`: a call key to 160 devices;
//! - `session_setup`: starting a session to a new device from its bundle (PQXDH initiator).
//!
//! The sender in every fixture is loaded from its bytes (`Device::from_bytes`), as an app that
//! started up holds it. Fixtures of 1,000 devices and more are built when their bench first
//! runs (about 2 ms per device), so a filtered run pays only for what it selects.

// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ratchetry::calls::{Call, CallConfig, CallKind};
use ratchetry::devices::{
    AccountKey, DeviceAddress, DeviceId, LinkRequest, ListLimits, Primary, PrimaryPolicy,
};
use ratchetry::fanout::{Device, DeviceConfig, Outgoing};
use ratchetry::group::{GroupId, GroupSender, OutboundGroupSession};
use ratchetry::testing::SeededRng;
use ratchetry::{IdentityKeyPair, IncomingMessage, Session, SessionConfig, Timestamp};

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
        // The companion's own check of the approval (`complete_link`) verifies every entry
        // of the list, which is quadratic over an account of 250: the devices below take the
        // primary's final list instead.
        let approval = primary.approve(NOW, &LinkRequest::new(&id, &inv)).unwrap();
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

/// The state every session of a fixture is in: started with PQXDH, answered once, then sent on
/// again, so it has a sending chain and no pre-key header (the steady state). Serialized, so
/// a floor can load as many distinct copies as it needs.
fn pairwise_session_bytes(rng: &mut SeededRng) -> Vec<u8> {
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
    sa.encrypt(rng, b"again").unwrap();
    sa.to_bytes().to_vec()
}

/// `n` distinct sessions as a device loaded from its records holds them: each decoded from
/// its stored bytes into its own allocation, one after another. They are copies of one
/// session's state (the keys' values do not change the work), each advancing on its own.
fn loaded_sessions(bytes: &[u8], n: usize) -> Vec<Session> {
    (0..n)
        .map(|_| Session::from_bytes(bytes).unwrap())
        .collect()
}

/// One encrypt of `body` per session, the ciphertexts held together as the op's envelopes
/// are: the N-session floor.
fn encrypt_each(rng: &mut SeededRng, sessions: &mut [Session], body: &[u8]) -> Vec<Vec<u8>> {
    sessions
        .iter_mut()
        .map(|s| s.encrypt(rng, black_box(body)).unwrap())
        .collect()
}

/// `n` encrypts of `body` on one hot session: the floor before issue #22's N-session one.
fn encrypt_hot(rng: &mut SeededRng, session: &mut Session, n: usize, body: &[u8]) -> Vec<Vec<u8>> {
    (0..n)
        .map(|_| session.encrypt(rng, black_box(body)).unwrap())
        .collect()
}

/// A sender and `accounts` accounts of `per_account` devices each, with established
/// sessions from the sender to every device. The sender is returned as loaded from its
/// bytes, so its sessions are laid out as an app that started up would hold them; the
/// remote devices are dropped (only the sender is measured).
struct Fleet {
    sender: Device,
    accounts: Vec<AccountKey>,
    devices: Vec<DeviceAddress>,
}

impl Fleet {
    /// Each remote device answers the sender's first message with a call-key message to the
    /// sender alone, which establishes the session as a reply does, without the sessions
    /// with its own siblings that a 1:1 reply would need (n² PQXDH for an account of n).
    fn new(rng: &mut SeededRng, accounts: usize, per_account: usize) -> Self {
        let cfg = config(255);
        let (_, mut me) = account(rng, 1, cfg);
        let mut sender = me.pop().unwrap();
        let me_account = sender.address().account;
        let my_list = sender.device_list(&me_account).unwrap().signed().clone();
        let answer = Call::start(
            rng,
            CallKind::Room,
            sender.address(),
            &[],
            &CallConfig::default(),
        )
        .unwrap()
        .key_message()
        .clone();
        let mut keys = Vec::with_capacity(accounts);
        let mut devices = Vec::with_capacity(accounts * per_account);
        for _ in 0..accounts {
            let (primary, mut remote) = account(rng, per_account, cfg);
            let key = primary.account();
            sender
                .update_device_list(NOW, &key, primary.device_list().signed().clone())
                .unwrap();
            let bundles: Vec<_> = remote
                .iter_mut()
                .map(|d| {
                    d.update_device_list(NOW, &me_account, my_list.clone())
                        .unwrap();
                    (d.address(), d.bundle(None, None))
                })
                .collect();
            sender.start_sessions(rng, NOW, &bundles).unwrap();
            let hello = ready(sender.send(rng, NOW, &key, b"hello").unwrap());
            for (to, env) in hello.envelopes {
                let d = remote.iter_mut().find(|d| d.address() == to).unwrap();
                d.receive(NOW, &env).unwrap();
                let back = ready(
                    d.send_call_key(rng, NOW, &[sender.address()], &answer)
                        .unwrap(),
                );
                for (_, env) in back.envelopes {
                    sender.receive(NOW, &env).unwrap();
                }
            }
            // One more send so every session has a sending chain: the steady state.
            ready(sender.send(rng, NOW, &key, b"again").unwrap());
            keys.push(key);
            devices.extend(bundles.into_iter().map(|(a, _)| a));
        }
        let sender = Device::from_bytes(&sender.to_bytes()).unwrap();
        // Every session is past its pre-key messages: an envelope of a short body carries no
        // PQXDH header (its ML-KEM ciphertext alone is 1,568 bytes).
        let mut probe = sender.clone();
        for to in &keys {
            let o = ready(probe.send(rng, NOW, to, b"probe").unwrap());
            assert!(o.envelopes.iter().all(|(_, e)| e.len() < 1000));
        }
        Self {
            sender,
            accounts: keys,
            devices,
        }
    }
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

/// Devices, and how they are split into accounts (a device list holds at most 256 devices,
/// so past 250 the message goes to several accounts of 250, one `send` each).
const SEND_SIZES: [(usize, usize, usize); 6] = [
    (1, 1, 1),
    (5, 1, 5),
    (50, 1, 50),
    (250, 1, 250),
    (1000, 4, 250),
    (3000, 12, 250),
];

fn bench_send(c: &mut Criterion) {
    let rng = &mut SeededRng::from_label("bench fanout");
    let template = pairwise_session_bytes(rng);
    let mut hot = Session::from_bytes(&template).unwrap();
    for (n, accounts, per_account) in SEND_SIZES {
        // Built on first use: a filtered run does not pay for the sizes it skips.
        let mut fleet: Option<Fleet> = None;
        let mut sessions: Option<Vec<Session>> = None;
        for (len, size) in [(64usize, "64B"), (1024, "1KiB")] {
            let body = vec![7u8; len];
            let mut g = quick(c, format!("send/{n}dev/{size}"));
            if n >= 1000 {
                g.sample_size(10);
            }
            g.bench_function("op", |b| {
                let f = fleet.get_or_insert_with(|| Fleet::new(rng, accounts, per_account));
                b.iter(|| {
                    f.accounts
                        .iter()
                        .map(|to| ready(f.sender.send(rng, NOW, to, black_box(&body)).unwrap()))
                        .collect::<Vec<_>>()
                })
            });
            g.bench_function("floor_nsession", |b| {
                let s = sessions.get_or_insert_with(|| loaded_sessions(&template, n));
                b.iter(|| encrypt_each(rng, s, &body))
            });
            g.bench_function("floor_1session", |b| {
                b.iter(|| encrypt_hot(rng, &mut hot, n, &body))
            });
            g.finish();
        }
    }
}

const FIRST: GroupId = GroupId([1; 32]);
const STEADY: GroupId = GroupId([3; 32]);

/// A sender in a room of every fleet account: `pristine` has sent nothing to the room yet,
/// `steady` has sent once (every member device holds its sender key).
struct Room {
    pristine: Device,
    steady: Device,
}

impl Room {
    fn new(rng: &mut SeededRng, accounts: usize, per_account: usize) -> Self {
        let mut fleet = Fleet::new(rng, accounts, per_account);
        for g in [FIRST, STEADY] {
            fleet.sender.set_group_members(g, &fleet.accounts).unwrap();
        }
        let mut steady = fleet.sender.clone();
        ready(steady.send_group(rng, NOW, STEADY, b"first").unwrap());
        Self {
            pristine: fleet.sender,
            steady,
        }
    }
}

/// The first message to a room of `accounts` × `per_account` devices (a sender-key
/// distribution to each device, then the group message) and a later one, beside their
/// floors: the pairwise encrypts of the distribution over as many distinct loaded sessions
/// (and, for reference, over one hot session) plus one group encrypt; the group encrypt alone.
fn bench_room(c: &mut Criterion, rng: &mut SeededRng, accounts: usize, per_account: usize) {
    let n = accounts * per_account;
    let name = format!("{accounts}x{per_account}");
    let template = pairwise_session_bytes(rng);
    let mut hot = Session::from_bytes(&template).unwrap();
    let body = vec![7u8; 1024];
    let me = IdentityKeyPair::generate(rng).public();
    let sender = GroupSender::new(me, &[0; 36]).unwrap();
    let distribution = OutboundGroupSession::new(rng, GroupId([0; 32]), sender.clone())
        .distribution()
        .to_bytes();
    let mut out = OutboundGroupSession::new(rng, GroupId([2; 32]), sender);
    // Built on first use: a filtered run does not pay for what it skips.
    let mut room: Option<Room> = None;
    let mut sessions: Option<Vec<Session>> = None;

    let mut g = quick(c, format!("group_first/{name}/1KiB"));
    if n >= 1000 {
        g.sample_size(10);
    }
    g.bench_function("op", |b| {
        let r = room.get_or_insert_with(|| Room::new(rng, accounts, per_account));
        b.iter_batched(
            || r.pristine.clone(),
            // The device is handed back so its drop (zeroizing every session) is not timed.
            |mut d| {
                let o = ready(d.send_group(rng, NOW, FIRST, &body).unwrap());
                (d, o)
            },
            BatchSize::LargeInput,
        )
    });
    // The same first message from a device that has sent since it was loaded: its sessions
    // hold the ML-KEM values a publication or an encapsulation derives at first use (not
    // stored), which `op`, straight from its bytes, derives once per session.
    g.bench_function("op_warm", |b| {
        let r = room.get_or_insert_with(|| Room::new(rng, accounts, per_account));
        b.iter_batched(
            || r.steady.clone(),
            |mut d| {
                let o = ready(d.send_group(rng, NOW, FIRST, &body).unwrap());
                (d, o)
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("floor_nsession", |b| {
        let s = sessions.get_or_insert_with(|| loaded_sessions(&template, n));
        b.iter(|| {
            let pairwise = encrypt_each(rng, s, &distribution);
            (pairwise, out.encrypt(rng, &body).unwrap())
        })
    });
    g.bench_function("floor_1session", |b| {
        b.iter(|| {
            let pairwise = encrypt_hot(rng, &mut hot, n, &distribution);
            (pairwise, out.encrypt(rng, &body).unwrap())
        })
    });
    g.finish();

    let mut g = quick(c, format!("group_steady/{name}/1KiB"));
    g.bench_function("op", |b| {
        let r = room.get_or_insert_with(|| Room::new(rng, accounts, per_account));
        b.iter(|| ready(r.steady.send_group(rng, NOW, STEADY, &body).unwrap()))
    });
    g.bench_function("floor", |b| b.iter(|| out.encrypt(rng, &body).unwrap()));
    g.finish();
}

fn bench_group(c: &mut Criterion) {
    let rng = &mut SeededRng::from_label("bench fanout group");
    bench_room(c, rng, 50, 5);
    // A large room: 1,024 members of 3 devices, a sender-key distribution to 3,072 devices.
    bench_room(c, rng, 1024, 3);
}

fn bench_call_key(c: &mut Criterion) {
    let rng = &mut SeededRng::from_label("bench fanout call key");
    let template = pairwise_session_bytes(rng);
    let mut hot = Session::from_bytes(&template).unwrap();
    let mut fleet = Fleet::new(rng, 32, 5);

    // Call-key distribution to a 32-participant group call, 5 devices each (160 devices).
    let mut g = quick(c, "call_key/32x5".into());
    let participants: Vec<DeviceAddress> = fleet
        .devices
        .iter()
        .copied()
        .chain(std::iter::once(fleet.sender.address()))
        .collect();
    let call = Call::start(
        rng,
        CallKind::Room,
        fleet.sender.address(),
        &participants[128..],
        &CallConfig::default(),
    )
    .unwrap();
    let message = call.key_message().clone();
    let message_bytes = message.to_bytes();
    g.bench_function("op", |b| {
        b.iter(|| {
            ready(
                fleet
                    .sender
                    .send_call_key(rng, NOW, &participants, &message)
                    .unwrap(),
            )
        })
    });
    let mut sessions = loaded_sessions(&template, 160);
    g.bench_function("floor_nsession", |b| {
        b.iter(|| encrypt_each(rng, &mut sessions, &message_bytes))
    });
    g.bench_function("floor_1session", |b| {
        b.iter(|| encrypt_hot(rng, &mut hot, 160, &message_bytes))
    });
    g.finish();

    let mut g = quick(c, "session_setup".into());
    let cfg = config(4);
    let (_, newcomer) = account(rng, 1, cfg);
    let newcomer_list = newcomer[0]
        .device_list(&newcomer[0].address().account)
        .unwrap()
        .signed()
        .clone();
    let mut d = fleet.sender.clone();
    d.update_device_list(NOW, &newcomer[0].address().account, newcomer_list)
        .unwrap();
    let bundle = vec![(newcomer[0].address(), newcomer[0].bundle(None, None))];
    g.bench_function("op", |b| {
        b.iter_batched(
            || d.clone(),
            |mut d| {
                d.start_sessions(rng, NOW, &bundle).unwrap();
                d
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_send, bench_group, bench_call_key);
criterion_main!(benches);
