//! The Rust baseline for the bindings' timings: the same operations as
//! `bindings/wasm/demo/bench.js` and `tests/timing.py`, on the library directly. A 1:1 message is
//! a send to an account with one device plus that device's receive; a group message (3
//! accounts of one device, key already distributed) is a send plus one member's receive.
//!
//! `cargo run --release -p ratchetry-uniffi --example rust_timing [n]`

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
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300);
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
    for _ in 0..5 {
        let out = ready(a.send(&mut rng, now, &keys[1], body));
        b.receive(now, &out.envelopes[0].1)
            .unwrap_or_else(|e| panic!("{e}"));
        let out = ready(b.send(&mut rng, now, &keys[0], body));
        a.receive(now, &out.envelopes[0].1)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let t = Instant::now();
    for _ in 0..n {
        let out = ready(a.send(&mut rng, now, &keys[1], body));
        b.receive(now, &out.envelopes[0].1)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let direct = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);

    let group = GroupId([9; 32]);
    for d in [&mut *a, &mut *b, &mut *c] {
        d.set_group_members(group, &keys);
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
    let t = Instant::now();
    for _ in 0..n {
        let out = ready(a.send_group(&mut rng, now, group, body));
        let Some((env, _)) = &out.group else {
            panic!("no group envelope")
        };
        b.receive(now, env).unwrap_or_else(|e| panic!("{e}"));
    }
    let group_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    println!("rust: {{\"n\":{n},\"direct_us\":{direct:.1},\"group_us\":{group_us:.1}}}");
}
