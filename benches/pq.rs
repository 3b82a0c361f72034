//! The post-quantum ratchet alone (no Double Ratchet around it), over a simulated link in
//! strict ping-pong.
//!
//! - `pq/epoch_of_messages`: 76 messages, each sent and received (the number an epoch takes
//!   without loss), next to its floor `pq/kem_exchange`: one ML-KEM-768 key generation,
//!   encapsulation and decapsulation, the work an epoch cannot avoid. Divide the first by 76
//!   for the time per message.
//! - Printed once (not timed): messages per epoch at 0%, 10% and 30% random loss, and the
//!   bytes the extension adds per message (mean and maximum), over 50 runs of 4,000 messages.
//!   Messages per epoch counts each run's messages up to its last epoch both sides completed
//!   (start-up included): the messages after it belong to an epoch the run cut short, and
//!   counting them against the completed ones overstated the rate by about m² / 8,000 (1.6
//!   at 30% loss).

// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ratchetry::testing::pq::PqLink;
use ratchetry::testing::raw::mlkem768_exchange;

/// The network's choices (not the ratchets' randomness).
struct Net(u64);

impl Net {
    fn lost(&mut self, percent: u64) -> bool {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % 100 < percent
    }
}

fn report() {
    for loss in [0u64, 10, 30] {
        let (mut messages, mut epochs) = (0usize, 0u32);
        let (mut bytes, mut sent, mut max) = (0usize, 0usize, 0usize);
        for run in 0..50u64 {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&run.to_be_bytes());
            let mut link = PqLink::new(seed);
            let mut net = Net(run.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            // The last epoch both sides completed, and the messages sent until then.
            let (mut completed, mut until) = (0u32, 0usize);
            for i in 0..4000 {
                let m = link.send(i % 2 == 0);
                bytes += m.added_len();
                max = max.max(m.added_len());
                if !net.lost(loss) {
                    link.deliver(&m).unwrap();
                }
                let (a, b) = link.epochs();
                if a.min(b) > completed {
                    (completed, until) = (a.min(b), i + 1);
                }
            }
            sent += 4000;
            messages += until;
            epochs += completed;
        }
        eprintln!(
            "pq/loss {loss}%: {:.1} messages per epoch; {:.1} bytes per message (max {max})",
            messages as f64 / f64::from(epochs),
            bytes as f64 / sent as f64,
        );
    }
}

fn bench(c: &mut Criterion) {
    report();
    let mut g = c.benchmark_group("pq");
    // A link past its first epochs, so the run is a steady-state stretch.
    let mut warm = PqLink::new([7; 32]);
    for i in 0..400 {
        let m = warm.send(i % 2 == 0);
        warm.deliver(&m).unwrap();
    }
    g.bench_function("epoch_of_messages", |b| {
        b.iter_batched(
            || warm.clone(),
            |mut link| {
                for i in 0..76 {
                    let m = link.send(i % 2 == 0);
                    link.deliver(&m).unwrap();
                }
                black_box(link)
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("kem_exchange", |b| {
        b.iter(|| mlkem768_exchange(black_box(&[3; 64]), black_box(&[4; 32])))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
