//! The post-quantum ratchet's model check: two ratchets over a simulated network (the
//! Double Ratchet's chain rules kept, its keys left out) under loss, reordering and
//! duplication. Each delivery checks that a new chain's epoch and secret are the ones its
//! sender mixed; after each run both sides hold the same secret for every epoch both know,
//! epochs only ever grow by one, and the ratchet kept completing epochs.
//!
//! Bounds: every burst of up to 8 consecutive lost messages starting at any of the first 160
//! messages of a ping-pong run (exhaustive); random loss of 10% and 30% with reordering
//! (within four messages) and duplicates over 40 seeds; one-sided runs of up to 150 messages.
//! The schedule's repairs: a header lost whole, and the last systematic `ct1` chunk lost in
//! every epoch, each cost a few messages rather than a stall; parity in proportion to the loss
//! keeps 30% random loss under 122 messages per epoch (6 seeds of 3,000 messages).

use ratchetry::testing::pq::{PqLink, PqMessage};

/// A small deterministic generator for the network's choices (not the ratchets' randomness).
struct Net(u64);

impl Net {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn seed(n: u64) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&n.to_be_bytes());
    s
}

/// Strict ping-pong: message `i` is sent by the initiator when `i` is even. `lost(i)` drops it.
/// Returns the link and the number of messages after which each epoch was known to both.
fn ping_pong(link: &mut PqLink, messages: usize, lost: impl Fn(usize) -> bool) -> Vec<usize> {
    ping_pong_dropping(link, messages, |i, _| lost(i))
}

/// The chunk a message carries, as `(kind, index)`: kinds 0 header, 1 vector, 2 `ct1`, 3 `ct2`.
fn chunk(m: &PqMessage) -> Option<(u8, u8)> {
    match m.ext_bytes() {
        [b, k, ..] if b & 0x40 != 0 => Some((k >> 6, k & 0x3f)),
        _ => None,
    }
}

/// [`ping_pong`], dropping the messages `lost(i, message)` picks.
fn ping_pong_dropping(
    link: &mut PqLink,
    messages: usize,
    lost: impl Fn(usize, &PqMessage) -> bool,
) -> Vec<usize> {
    let mut completed = Vec::new();
    for i in 0..messages {
        let before = link.epochs();
        let m = link.send(i % 2 == 0);
        if !lost(i, &m) {
            link.deliver(&m).unwrap();
        }
        let after = link.epochs();
        assert!(
            after.0 - before.0 <= 1 && after.1 - before.1 <= 1,
            "epochs step by one"
        );
        let both = after.0.min(after.1) as usize;
        while completed.len() < both {
            completed.push(i + 1);
        }
        assert!(link.secrets_agree(), "secrets agree after message {i}");
    }
    completed
}

#[test]
fn without_loss_an_epoch_completes_every_80_messages_at_most() {
    let mut link = PqLink::new(seed(1));
    let done = ping_pong(&mut link, 2000, |_| false);
    assert!(done.len() >= 24, "{} epochs in 2000 messages", done.len());
    for w in done.windows(2).skip(1) {
        assert!(w[1] - w[0] <= 80, "an epoch took {} messages", w[1] - w[0]);
    }
}

/// Epoch lengths (messages between completions), past the first.
fn lengths(done: &[usize]) -> Vec<usize> {
    done.windows(2).skip(1).map(|w| w[1] - w[0]).collect()
}

#[test]
fn a_header_lost_whole_is_sent_again_once_the_peer_waits_for_it() {
    // Every chunk of every header that goes out first is lost: the peer decapsulates, finds
    // no header to encapsulate to, and its chain says it knows the publisher's epoch.
    let mut link = PqLink::new(seed(5));
    let done = ping_pong_dropping(
        &mut link,
        1200,
        |_, m| matches!(chunk(m), Some((0, index)) if index < 4),
    );
    assert!(done.len() >= 12, "{} epochs in 1200 messages", done.len());
    for n in lengths(&done) {
        assert!(n <= 80 + 10, "an epoch took {n} messages");
    }
}

#[test]
fn a_publisher_short_of_ct1_asks_for_it_and_gets_it_within_a_few_messages() {
    // The last systematic chunk of every ct1 is lost and, without loss elsewhere, nothing
    // shows it: the publisher holds ct2 whole, repeats its header, and the encapsulator turns
    // from ct2 parity to ct1 parity.
    let mut link = PqLink::new(seed(6));
    let done = ping_pong_dropping(&mut link, 1200, |_, m| chunk(m) == Some((2, 29)));
    assert!(done.len() >= 12, "{} epochs in 1200 messages", done.len());
    for n in lengths(&done) {
        assert!(n <= 80 + 6, "an epoch took {n} messages");
    }
}

#[test]
fn every_burst_of_up_to_8_losses_in_the_first_160_messages_only_delays() {
    let reference = ping_pong(&mut PqLink::new(seed(2)), 600, |_| false);
    for start in 0..160 {
        for len in 1..=8 {
            let mut link = PqLink::new(seed(2));
            let done = ping_pong(&mut link, 600, |i| i >= start && i < start + len);
            assert!(
                done.len() + 1 >= reference.len(),
                "burst {start}+{len}: {} epochs, {} without loss",
                done.len(),
                reference.len()
            );
        }
    }
}

/// Random loss, reordering (up to three messages wait in the network, and arrive in any order)
/// and duplicates.
fn lossy(seed_n: u64, loss: u64, messages: usize) -> (PqLink, usize) {
    let mut link = PqLink::new(seed(seed_n));
    let mut net = Net(seed_n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut in_flight: Vec<PqMessage> = Vec::new();
    for i in 0..messages {
        let m = link.send(i % 2 == 0);
        if !net.chance(loss) {
            in_flight.push(m);
        }
        // Up to three messages wait in the network; a random one of them arrives, one in ten
        // of them twice.
        while in_flight.len() > 3 || (!in_flight.is_empty() && net.chance(50)) {
            let at = (net.next() % in_flight.len() as u64) as usize;
            let m = in_flight.swap_remove(at);
            link.deliver(&m).unwrap();
            if net.chance(10) {
                link.deliver(&m).unwrap();
            }
            assert!(link.secrets_agree());
        }
    }
    let (a, b) = link.epochs();
    (link, a.min(b) as usize)
}

#[test]
fn random_loss_reordering_and_duplicates_never_stall_or_disagree() {
    for s in 0..20 {
        let (_, epochs) = lossy(s, 10, 1500);
        assert!(epochs >= 8, "seed {s}, 10% loss: {epochs} epochs");
        let (_, epochs) = lossy(100 + s, 30, 1500);
        assert!(epochs >= 5, "seed {s}, 30% loss: {epochs} epochs");
    }
}

#[test]
fn parity_follows_the_loss_so_30_percent_loss_costs_under_122_messages_per_epoch() {
    // Without proactive parity (as many chunks as symbols, then repair) this is about 127.
    let (mut messages, mut epochs) = (0, 0);
    for s in 0..6 {
        let mut link = PqLink::new(seed(200 + s));
        let mut net = Net(s.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        for i in 0..3000 {
            let m = link.send(i % 2 == 0);
            if !net.chance(30) {
                link.deliver(&m).unwrap();
            }
        }
        let (a, b) = link.epochs();
        messages += 3000;
        epochs += a.min(b) as usize;
    }
    let per_epoch = messages as f64 / epochs as f64;
    eprintln!("{per_epoch:.1} messages per epoch");
    assert!(per_epoch < 122.0, "{per_epoch:.1} messages per epoch");
}

/// A loss that repeats with the messages' parity: the initiator sends two messages a turn and
/// the first is always lost, so only its odd-numbered chunks arrive. Each round of 64 indexes
/// is shifted by one (25.4), so the even indexes arrive in the next round and every epoch
/// completes; without the shift the vector never gets past 32 of its 36 symbols.
#[test]
fn a_loss_in_step_with_the_chunks_delays_epochs_but_never_stalls_them() {
    let mut link = PqLink::new(seed(4));
    let hello = link.send(true);
    link.deliver(&hello).unwrap();
    for _ in 0..400 {
        let answer = link.send(false);
        link.deliver(&answer).unwrap();
        let _lost = link.send(true);
        let kept = link.send(true);
        link.deliver(&kept).unwrap();
        assert!(link.secrets_agree());
    }
    let (a, b) = link.epochs();
    assert!(a.min(b) >= 5, "epochs {:?}", (a, b));
}

#[test]
fn one_sided_runs_complete_once_the_other_side_answers() {
    let mut link = PqLink::new(seed(3));
    for round in 0..6 {
        let initiator = round % 2 == 0;
        for _ in 0..150 {
            let m = link.send(initiator);
            link.deliver(&m).unwrap();
        }
    }
    let (a, b) = link.epochs();
    assert!(a.min(b) >= 2, "epochs {a} {b}");
    assert!(link.secrets_agree());
}

#[test]
fn both_sides_derive_the_same_secret() {
    let mut link = PqLink::new(seed(4));
    ping_pong(&mut link, 400, |_| false);
    let (x, _) = link.common_secret().unwrap();
    assert!(x >= 4);
}

#[test]
fn the_bench_floors_exchange_depends_on_its_key_and_randomness() {
    use ratchetry::testing::raw::mlkem768_exchange;
    let a = mlkem768_exchange(&[1; 64], &[2; 32]);
    assert_eq!(a, mlkem768_exchange(&[1; 64], &[2; 32]));
    assert_ne!(a, mlkem768_exchange(&[3; 64], &[2; 32]));
    assert_ne!(a, mlkem768_exchange(&[1; 64], &[4; 32]));
}
