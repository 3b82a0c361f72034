//! The Rust baseline for the bindings' timings: the same operations as
//! `bindings/wasm/demo/bench.js` and `tests/timing.py`, on the library directly. A 1:1 message is
//! a send to an account with one device plus that device's receive; a 1 KiB send and its
//! receive are timed apart; a group message (3 accounts of one device, key already distributed)
//! is a send plus one member's receive. After 500 warm-up messages, each op runs in `batches`
//! batches of 100 and the fastest batch counts: on a shared machine the minimum is the figure
//! that other processes disturb least.
//!
//! `cargo run --release -p ratchetry-uniffi --example rust_timing [batches]`

// A timing tool, not part of the FFI surface: a failed setup stops it with the error.
#![allow(clippy::panic)]

use std::time::Instant;

use getrandom::{SysRng, rand_core::UnwrapErr};
use ratchetry::devices::{AccountKey, PRIMARY_DEVICE, Primary, PrimaryPolicy};
use ratchetry::fanout::{Device, DeviceConfig, Outbox, Outgoing};
use ratchetry::group::GroupId;
use ratchetry::{IdentityKeyPair, Timestamp};

fn ready(out: Result<Outgoing, ratchetry::Error>) -> Outbox {
    match out {
        Ok(Outgoing::Ready(outbox)) => outbox,
        other => panic!("not ready: {other:?}"),
    }
}

fn main() {
    let batches: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let mut rng = UnwrapErr(SysRng);
    let now = Timestamp(1_790_000_000_000);
    let mut accounts: Vec<(Primary, Device)> = (0..3)
        .map(|_| {
            let identity = IdentityKeyPair::generate(&mut rng);
            let primary = Primary::new(&mut rng, &identity, now, PrimaryPolicy::default());
            let list = primary.device_list().clone();
            let (device, _) = Device::new(
                &mut rng,
                now,
                identity,
                PRIMARY_DEVICE,
                list,
                20,
                DeviceConfig::default(),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            (primary, device)
        })
        .collect();
    let keys: Vec<AccountKey> = accounts.iter().map(|(p, _)| p.account()).collect();
    let lists: Vec<_> = accounts
        .iter()
        .map(|(p, _)| p.device_list().signed().clone())
        .collect();
    let bundles: Vec<_> = accounts
        .iter()
        .map(|(_, d)| (d.address(), d.bundle(None, None)))
        .collect();
    for (i, (_, d)) in accounts.iter_mut().enumerate() {
        for (k, l) in keys.iter().zip(&lists) {
            d.update_device_list(now, k, l.clone())
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let others: Vec<_> = (0..3)
            .filter(|&j| j != i)
            .map(|j| bundles[j].clone())
            .collect();
        d.start_sessions(&mut rng, now, &others)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let body = b"a message of about forty bytes, typical";
    let (a, rest) = accounts.split_at_mut(1);
    let (b, c) = rest.split_at_mut(1);
    let (a, b, c) = (&mut a[0].1, &mut b[0].1, &mut c[0].1);
    for _ in 0..500 {
        let out = ready(a.send(&mut rng, now, &keys[1], body));
        b.receive(now, &out.envelopes[0].1)
            .unwrap_or_else(|e| panic!("{e}"));
        let out = ready(b.send(&mut rng, now, &keys[0], body));
        a.receive(now, &out.envelopes[0].1)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let direct = best(batches, || {
        let out = ready(a.send(&mut rng, now, &keys[1], body));
        b.receive(now, &out.envelopes[0].1)
            .unwrap_or_else(|e| panic!("{e}"));
    });
    let kib = [0x41; 1024];
    let (mut send_1k, mut receive_1k) = (f64::MAX, f64::MAX);
    for _ in 0..batches {
        let t = Instant::now();
        let outs: Vec<Outbox> = (0..BATCH)
            .map(|_| ready(a.send(&mut rng, now, &keys[1], &kib)))
            .collect();
        send_1k = send_1k.min(per_message(t));
        let t = Instant::now();
        for out in &outs {
            b.receive(now, &out.envelopes[0].1)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        receive_1k = receive_1k.min(per_message(t));
    }

    let group = GroupId([9; 32]);
    for d in [&mut *a, &mut *b, &mut *c] {
        d.set_group_members(group, &keys)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let first = ready(a.send_group(&mut rng, now, group, body));
    for (to, env) in &first.envelopes {
        let d = if *to == b.address() { &mut *b } else { &mut *c };
        d.receive(now, env).unwrap_or_else(|e| panic!("{e}"));
    }
    let Some((group_env, _)) = &first.group else {
        panic!("no group envelope")
    };
    b.receive(now, group_env).unwrap_or_else(|e| panic!("{e}"));
    let group_us = best(batches, || {
        let out = ready(a.send_group(&mut rng, now, group, body));
        let Some((env, _)) = &out.group else {
            panic!("no group envelope")
        };
        b.receive(now, env).unwrap_or_else(|e| panic!("{e}"));
    });
    println!(
        "rust: {{\"batches\":{batches},\"direct_us\":{direct:.1},\"send_1k_us\":{send_1k:.1},\"receive_1k_us\":{receive_1k:.1},\"group_us\":{group_us:.1}}}"
    );
}

/// Messages per timed batch.
const BATCH: u32 = 100;

/// Microseconds per message of a batch that started at `t`.
fn per_message(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e6 / f64::from(BATCH)
}

/// The fastest of `batches` batches of `op`, in microseconds per run.
fn best(batches: u32, mut op: impl FnMut()) -> f64 {
    (0..batches)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..BATCH {
                op();
            }
            per_message(t)
        })
        .fold(f64::MAX, f64::min)
}
