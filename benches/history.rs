//! History sync throughput: sealing and opening 1 MiB and 64 MiB, each next to its floor, one
//! raw AES-256-GCM pass over the same bytes. Read `op / floor` as the overhead ratio (the
//! chunk framing, per-chunk tags and the digest over the tags).

// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ratchetry::history::{HistoryOpener, HistorySealer};
use ratchetry::testing::SeededRng;
use ratchetry::testing::raw::{aes256gcm_open, aes256gcm_seal};

fn bench(c: &mut Criterion) {
    let rng = &mut SeededRng::from_label("bench history");
    for (len, name) in [(1usize << 20, "1MiB"), (64 << 20, "64MiB")] {
        let data = vec![0x5au8; len];
        let mut g = c.benchmark_group(format!("history_seal/{name}"));
        g.throughput(Throughput::Bytes(len as u64))
            .sample_size(10)
            .measurement_time(Duration::from_secs(if len > 1 << 20 { 8 } else { 2 }))
            .warm_up_time(Duration::from_millis(300));
        g.bench_function("op", |b| {
            b.iter(|| {
                let mut sealer = HistorySealer::new(rng);
                let chunks = sealer.push(black_box(&data));
                let (last, offer) = sealer.finish();
                black_box((chunks, last, offer))
            })
        });
        g.bench_function("floor", |b| {
            b.iter(|| black_box(aes256gcm_seal(&[1; 32], &[2; 12], &[], black_box(&data))))
        });
        g.finish();

        let mut sealer = HistorySealer::new(rng);
        let mut chunks = sealer.push(&data);
        let (last, offer) = sealer.finish();
        chunks.extend(last);
        let sealed = aes256gcm_seal(&[1; 32], &[2; 12], &[], &data);
        let mut g = c.benchmark_group(format!("history_open/{name}"));
        g.throughput(Throughput::Bytes(len as u64))
            .sample_size(10)
            .measurement_time(Duration::from_secs(if len > 1 << 20 { 8 } else { 2 }))
            .warm_up_time(Duration::from_millis(300));
        g.bench_function("op", |b| {
            b.iter(|| {
                let mut opener = HistoryOpener::new(&offer);
                for chunk in &chunks {
                    black_box(opener.push(chunk).unwrap());
                }
                opener.finish().unwrap()
            })
        });
        g.bench_function("floor", |b| {
            b.iter(|| {
                black_box(aes256gcm_open(&[1; 32], &[2; 12], &[], black_box(&sealed)).unwrap())
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
