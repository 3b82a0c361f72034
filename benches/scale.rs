//! A device at address-book scale: 1,000 and 20,000 remote sessions (accounts of 4 devices)
//! and 500 groups. Each group times the operation next to its floor:
//!
//! - `receive_1to1/{N}`: receiving a 1 KiB 1:1 message and taking the unit of records to write,
//!   next to `floor`, one pairwise decrypt of the same message size;
//! - `send_1to1_4dev/{N}`: sending 1 KiB to a 4-device account and taking the unit, next to
//!   `floor`, four pairwise encrypts on one session, and `floor_4sessions`, one encrypt on
//!   each of four distinct sessions decoded from their stored bytes (the N-session floor);
//! - `group_send/500groups`: a steady group message in one of the 500 groups (20 member
//!   accounts) and taking the unit, next to `floor`, one group message encrypt;
//! - `load/{N}`: rebuilding the device from all its records, and dropping it, next to `floor`,
//!   parsing the session states alone (`Session::from_bytes` of each session record, each
//!   dropped at once: 45% of the record bytes at 1,000 sessions, 70% at 20,000; the device
//!   lists and groups have no public decoder that trusts stored bytes, so their parse is in the
//!   op and not in the floor), and `floor_kept`, the same decodes with every session kept until
//!   all are decoded (what holding them costs, beside the floor), and `floor_all_bytes`, those
//!   kept decodes and a copy of every other record's bytes (the least any load reads).
//!
//! The bytes each unit writes are printed once per group (`bytes to persist`, by record kind),
//! so they read beside the times. The address book is `ratchetry::testing::scale`: most remote
//! sessions are clones of one real session under other addresses (loading does not tell them
//! apart); the ones the operations use are real. Memory per idle session is checked by
//! `checks/heap` (it needs its own global allocator).

// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ratchetry::fanout::{Device, Outbox, Outgoing, StateChanges};
use ratchetry::group::{GroupSender, OutboundGroupSession};
use ratchetry::testing::SeededRng;
use ratchetry::testing::scale::AddressBook;
use ratchetry::{IdentityKeyPair, IncomingMessage, Session, SessionConfig, Timestamp};

const NOW: Timestamp = Timestamp(1_790_000_000_000);
const GROUPS: usize = 500;

fn ready(o: Outgoing) -> Outbox {
    match o {
        Outgoing::Ready(o) => o,
        other => panic!("not ready: {other:?}"),
    }
}

/// A unit's size, by record kind (PROTOCOL.md 19.1): `total = kind × records: bytes, …`.
fn unit_bytes(changes: &StateChanges) -> String {
    const KINDS: [&str; 20] = [
        "?",
        "own",
        "meta",
        "prekeys",
        "one-time",
        "one-time kem",
        "seen base",
        "device list",
        "sessions",
        "group members",
        "outbound",
        "ledger",
        "inbound",
        "withheld",
        "seen",
        "sent",
        "pending",
        "restored",
        "replaced",
        "pending kem",
    ];
    let mut by_kind = std::collections::BTreeMap::<u8, (usize, usize)>::new();
    for r in changes.records() {
        let e = by_kind.entry(r.key()[0]).or_default();
        e.0 += 1;
        e.1 += r.key().len() + r.value().map_or(0, <[u8]>::len);
    }
    let parts: Vec<String> = by_kind
        .iter()
        .map(|(k, (n, b))| format!("{} × {n}: {b}", KINDS.get(*k as usize).unwrap_or(&"?")))
        .collect();
    format!("{} = {}", changes.byte_len(), parts.join(", "))
}

fn pairwise(rng: &mut SeededRng) -> (Session, Session) {
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
    let s = sa.encrypt(rng, b"z").unwrap();
    sb.decrypt(&IncomingMessage::decode(&s).unwrap()).unwrap();
    (sa, sb)
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

fn bench(c: &mut Criterion) {
    let rng = &mut SeededRng::from_label("bench scale ops");
    let body = vec![7u8; 1024];
    {
        // Sends over sessions that have not heard back yet: a peer device writing to the
        // subject (a session that replied) with own copies to its three siblings (sessions
        // that never did). Their ML-KEM ciphertexts were written once, when they started.
        let s = AddressBook::new(&mut SeededRng::from_label("bench scale"), NOW, 4, 0);
        let mut p = s.peer[0].clone();
        let _ = p.take_changes(rng); // the device as built: its whole state
        let to = s.device.address().account;
        for send in ["first", "second"] {
            let _ = ready(p.send(rng, NOW, &to, &body).unwrap());
            eprintln!(
                "scale/send_unreplied/{send}: 1 replied + 3 unreplied devices: bytes to persist {}",
                unit_bytes(&p.take_changes(rng))
            );
        }
    }
    for n in [1000usize, 20_000] {
        // A fresh pair per size: the send floor below encrypts without decrypting.
        let (mut pa, mut pb) = pairwise(rng);
        let mut s = AddressBook::new(&mut SeededRng::from_label("bench scale"), NOW, n, GROUPS);
        let alice_account = s.device.address().account;

        // Receive a 1:1 message and take its unit.
        let mut g = quick(c, format!("scale/receive_1to1/{n}"));
        let sample = ready(s.peer[0].send(rng, NOW, &alice_account, &body).unwrap());
        let mut probe = s.device.clone();
        probe.receive(NOW, &sample.envelopes[0].1).unwrap();
        eprintln!(
            "scale/receive_1to1/{n}: bytes to persist {}",
            unit_bytes(&probe.take_changes(rng))
        );
        let tags = &mut SeededRng::from_label("bench scale tags");
        g.bench_function("op", |b| {
            b.iter_batched(
                || ready(s.peer[0].send(rng, NOW, &alice_account, &body).unwrap()),
                |o| {
                    s.device.receive(NOW, &o.envelopes[0].1).unwrap();
                    black_box(s.device.take_changes(tags))
                },
                BatchSize::SmallInput,
            )
        });
        g.bench_function("floor", |b| {
            b.iter_batched(
                || pa.encrypt(rng, &body).unwrap(),
                |w| black_box(pb.decrypt(&IncomingMessage::decode(&w).unwrap()).unwrap()),
                BatchSize::SmallInput,
            )
        });
        g.finish();

        // Send to a 4-device account and take the unit.
        let mut g = quick(c, format!("scale/send_1to1_4dev/{n}"));
        let to = s.peer_account;
        let mut probe = s.device.clone();
        let _ = ready(probe.send(rng, NOW, &to, &body).unwrap());
        eprintln!(
            "scale/send_1to1_4dev/{n}: bytes to persist {}",
            unit_bytes(&probe.take_changes(rng))
        );
        g.bench_function("op", |b| {
            b.iter(|| {
                black_box(ready(s.device.send(rng, NOW, &to, &body).unwrap()));
                black_box(s.device.take_changes(rng))
            })
        });
        g.bench_function("floor", |b| {
            b.iter(|| {
                for _ in 0..4 {
                    black_box(pa.encrypt(rng, &body).unwrap());
                }
            })
        });
        // Four distinct sessions, each decoded from its stored bytes as a loaded device holds
        // them, the ciphertexts kept together as the op keeps its envelopes.
        let stored = pa.to_bytes();
        let mut four: Vec<Session> = (0..4)
            .map(|_| Session::from_bytes(&stored).unwrap())
            .collect();
        g.bench_function("floor_4sessions", |b| {
            b.iter(|| {
                four.iter_mut()
                    .map(|s| s.encrypt(rng, black_box(&body)).unwrap())
                    .collect::<Vec<_>>()
            })
        });
        g.finish();

        // Load everything from records.
        let mut g = quick(c, format!("scale/load/{n}"));
        g.sample_size(10);
        let records = &s.records;
        g.bench_function("op", |b| {
            b.iter(|| {
                black_box(
                    Device::from_records(records.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
                        .unwrap(),
                )
            })
        });
        let sessions: Vec<&[u8]> = records
            .iter()
            .filter(|(k, _)| k[0] == 0x08)
            .map(|(_, v)| &v[5..])
            .collect();
        g.bench_function("floor", |b| {
            b.iter(|| {
                for v in &sessions {
                    black_box(Session::from_bytes(v).unwrap());
                }
            })
        });
        // Not the floor: the same decodes with every session kept until the last is decoded,
        // then all dropped, as a loaded device holds them (each in memory of its own, out of
        // cache at 20,000). What holding them costs by itself, apart from the device's maps,
        // lists and groups.
        g.bench_function("floor_kept", |b| {
            b.iter(|| {
                sessions
                    .iter()
                    .map(|v| Session::from_bytes(v).unwrap())
                    .collect::<Vec<_>>()
            })
        });
        // Not the floor either: `floor_kept` plus a copy of every other record's bytes into
        // memory of its own, kept until the end. Any decoder reads every byte of every record
        // once and keeps what it holds, so nothing loads the device faster; at 1,000 sessions
        // the other records are 55% of the bytes, which `floor` never reads.
        let others: Vec<&[u8]> = records
            .iter()
            .filter(|(k, _)| k[0] != 0x08)
            .map(|(_, v)| v.as_slice())
            .collect();
        g.bench_function("floor_all_bytes", |b| {
            b.iter(|| {
                let kept: Vec<Session> = sessions
                    .iter()
                    .map(|v| Session::from_bytes(v).unwrap())
                    .collect();
                let copied: Vec<Box<[u8]>> = others.iter().map(|v| Box::from(*v)).collect();
                (kept, copied)
            })
        });
        g.finish();
    }

    // A steady group message in one of 500 groups.
    let mut s = AddressBook::new(&mut SeededRng::from_label("bench scale"), NOW, 1000, GROUPS);
    // The first group's members are the first 20 accounts, the real peer among them.
    let room = s.groups[0];
    let members: Vec<_> = s.device.group_members(room).unwrap().collect();
    let mut probe = s.device.clone();
    let lists: Vec<_> = members
        .iter()
        .filter(|a| probe.device_list(a).is_none())
        .copied()
        .collect();
    assert!(lists.is_empty(), "every member's list is held");
    // Give Alice's sender key to every member device (synthetic sessions cannot decrypt, but
    // sending to them is what a steady state costs): first send distributes.
    let _ = ready(probe.send_group(rng, NOW, room, &body).unwrap());
    let _ = probe.take_changes(rng);
    let _ = ready(probe.send_group(rng, NOW, room, &body).unwrap());
    eprintln!(
        "scale/group_send/500groups: bytes to persist {}",
        unit_bytes(&probe.take_changes(rng))
    );
    s.device = probe;
    let mut g = quick(c, "scale/group_send/500groups".into());
    g.bench_function("op", |b| {
        b.iter(|| {
            black_box(ready(s.device.send_group(rng, NOW, room, &body).unwrap()));
            black_box(s.device.take_changes(rng))
        })
    });
    let sender = GroupSender::new(s.device.identity_key(), &[0; 36]).unwrap();
    let mut out = OutboundGroupSession::new(rng, room, sender);
    g.bench_function("floor", |b| {
        b.iter(|| black_box(out.encrypt(rng, &body).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
