//! Review of stop 34 (PROTOCOL.md 8.5 renewal, 8.6 step 4, 25.4 PeerRestored; SECURITY.md "A
//! session restored from a stale copy goes on by itself only within bounds"): a relay that
//! reorders, delays, drops and replays genuine messages, with and without a stale restore;
//! headers changed in transit; late messages of the forgotten state; an observer holding the
//! backup; and, under fanout, the session a retry replaced.

mod pairs;
mod support;

use pairs::{Observer, Prng, Recording, accept, next_send, pair, ratchet_start, recv, start};
use ratchetry::testing::SeededRng;
use ratchetry::testing::hooks::{pq_chain_epochs, session_keys};
use ratchetry::{Error, RatchetError, Session};
use support::{World, body};

/// What a relay reads in clear in a message's Double Ratchet header: `(K, PN, N)`.
fn header(wire: &[u8]) -> ([u8; 32], u32, u32) {
    let at = ratchet_start(wire);
    let mut k = [0u8; 32];
    k.copy_from_slice(&wire[at + 2..at + 34]);
    let pn = u32::from_be_bytes(wire[at + 34..at + 38].try_into().unwrap());
    let n = u32::from_be_bytes(wire[at + 38..at + 42].try_into().unwrap());
    (k, pn, n)
}

/// Whether `wire` names another chain than `s`'s receiving chain with a PN below what arrived
/// of that one: read as a new chain (not with a skipped key of an older one), it runs
/// PeerRestored (8.6 step 4).
fn names_a_shorter_chain(s: &Session, wire: &[u8]) -> bool {
    let (k, pn, _) = header(wire);
    session_keys(s)
        .receiving
        .is_some_and(|(key, _, next)| key != k && pn < next)
}

/// Whether `s`'s receiving chain is the one `wire` is of.
fn receiving_on(s: &Session, wire: &[u8]) -> bool {
    session_keys(s).receiving.map(|r| r.0) == Some(header(wire).0)
}

/// Receives `wire`, asserting that a refusal leaves the session byte-identical; returns the
/// outcome and whether the read ran PeerRestored.
fn read(s: &mut Session, wire: &[u8]) -> (Result<Vec<u8>, Error>, bool) {
    let before = s.to_bytes();
    let restored = names_a_shorter_chain(s, wire);
    let r = recv(s, wire);
    let after = s.to_bytes();
    if r.is_err() {
        assert_eq!(*before, *after, "a refusal changed the session");
    }
    // What a read leaves (PeerRestored's emptied collectors included) loads back as it was.
    let loaded = Session::from_bytes(&after).expect("the state loads");
    assert_eq!(*loaded.to_bytes(), *after);
    // Read as a new chain: it is now the receiving chain (a skipped key leaves it).
    let new_chain = r.is_ok() && restored && receiving_on(s, wire);
    (r, new_chain)
}

/// Where a message the relay holds is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// In the queue.
    Waiting,
    /// Held back out of the queue: only a replay delivers it (late).
    Held,
    /// Read by its receiver.
    Read,
}

/// Every message a side sent, to the other side: `(body, wire, fate)`.
type Pool = Vec<(Vec<u8>, Vec<u8>, Fate)>;

/// Two sessions and a hostile relay that keeps every message it was given.
struct Relay {
    s: [Session; 2],
    pool: [Pool; 2],
    prng: Prng,
    n: usize,
    /// Reads that ran PeerRestored.
    restores_seen: usize,
    /// Genuine first deliveries that failed (beyond the relay's reorder window, say).
    failed: usize,
    /// Whether a message read may be read again (a side went back to a copy that had not).
    rereads: bool,
}

impl Relay {
    fn new(s: [Session; 2], seed: u64) -> Self {
        Self {
            s,
            pool: [Vec::new(), Vec::new()],
            prng: Prng(seed),
            n: 0,
            restores_seen: 0,
            failed: 0,
            rereads: false,
        }
    }

    fn send(&mut self, rng: &mut SeededRng, from: usize) {
        self.n += 1;
        let body = format!("{}", self.n).into_bytes();
        let wire = self.s[from].encrypt(rng, &body).unwrap();
        self.pool[1 - from].push((body, wire, Fate::Waiting));
    }

    fn epochs(&self) -> [u32; 2] {
        [0, 1].map(|i| self.s[i].pq_ratchet_epoch().unwrap_or(0))
    }

    /// Delivers the message at `i` of `to`'s pool (again, if it was delivered).
    fn deliver_at(&mut self, to: usize, i: usize) {
        let (body, wire, fate) = self.pool[to][i].clone();
        let (r, restored) = read(&mut self.s[to], &wire);
        self.restores_seen += usize::from(restored);
        match r {
            Ok(p) => {
                assert!(
                    self.rereads || fate != Fate::Read,
                    "a replay was read again"
                );
                assert_eq!(p, body);
                self.pool[to][i].2 = Fate::Read;
            }
            Err(_) if fate == Fate::Waiting => {
                self.failed += 1;
                self.pool[to][i].2 = Fate::Held;
            }
            Err(_) => {}
        }
    }

    fn waiting(&self, to: usize) -> Vec<usize> {
        (0..self.pool[to].len())
            .filter(|&i| self.pool[to][i].2 == Fate::Waiting)
            .collect()
    }

    /// The relay's move towards `to`: deliver one of the `window` oldest messages waiting,
    /// replay any message it holds (10% of its moves: read ones are refused, held ones arrive
    /// late), or drop (hold back) one.
    fn relay(&mut self, to: usize, window: usize, drop_percent: u64) {
        let waiting = self.waiting(to);
        let roll = self.prng.next() % 100;
        if roll < 10 && !self.pool[to].is_empty() {
            let i = (self.prng.next() as usize) % self.pool[to].len();
            self.deliver_at(to, i);
            return;
        }
        if waiting.is_empty() {
            return;
        }
        let pick = waiting[(self.prng.next() as usize) % waiting.len().min(window)];
        if self.prng.chance(drop_percent) {
            self.pool[to][pick].2 = Fate::Held;
            return;
        }
        self.deliver_at(to, pick);
    }
}

/// The epochs at a restore and at the end of a trial, and how many times PeerRestored ran.
type Outcome = ([u32; 2], [u32; 2], usize);

/// One side's state copied, its lost state playing on the copy's sending chain, then restored
/// and renewed (`renew_sending_chain`, what `Device::restore_from_backup` does), all under a
/// relay that reorders within `window`, replays (the messages the lost state read among them:
/// the relay kept them) and drops `drop` percent. The restore is kept only within SECURITY.md's
/// bounds (checked as `stale_restore.rs` does); `None` otherwise. After it, every message
/// delivered for the first time must read; returns the epochs at the restore and at the end.
fn hostile_restore_trial(
    seed: u64,
    window: usize,
    drop: u64,
    lost_sends: u64,
) -> Result<Option<Outcome>, String> {
    let rng = &mut SeededRng::from_label(&format!("review 34 restore {seed}"));
    let (a, b) = pair(rng, true);
    let mut t = Relay::new(
        [a, b],
        0xbad_5eed ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15),
    );
    let step = |t: &mut Relay, rng: &mut SeededRng, window: usize, drop: u64| {
        let side = (t.prng.next() % 2) as usize;
        if t.prng.chance(50) {
            t.send(rng, side);
        } else {
            t.relay(side, window, drop);
        }
    };
    let warm = [2, 10, 40][(seed % 3) as usize] + t.prng.next() % 800;
    for _ in 0..warm {
        step(&mut t, rng, window, drop);
    }
    // The side copied: one with a sending chain (the copy's chain must go on, 8.5).
    let x = (t.prng.next() % 2) as usize;
    if session_keys(&t.s[x]).sending.is_none() {
        return Ok(None);
    }
    let peer = 1 - x;
    let copy = t.s[x].to_bytes();
    let at_copy = t.epochs();
    let fates_to_x: Vec<Fate> = t.pool[x].iter().map(|m| m.2).collect();
    let failed_before = t.failed;
    // The lost state: sends on the copy's chain, reads, while the peer reads and sends.
    let mut sent = 0;
    while sent < lost_sends {
        match t.prng.next() % 4 {
            0 => t.relay(x, window, drop),
            1 => t.relay(peer, window, drop),
            2 => t.send(rng, peer),
            _ => {
                t.send(rng, x);
                sent += 1;
            }
        }
        if session_keys(&t.s[x]).sending.is_none() {
            // A chain of its own: beyond the bound (its messages may already be out).
            return Ok(None);
        }
    }
    // What the lost state sent reaches the peer now, or is held back (a late copy).
    while !t.waiting(peer).is_empty() {
        t.relay(peer, window, drop);
    }
    let copied_chain = session_keys(&Session::from_bytes(&copy).unwrap()).ratchet_public;
    if session_keys(&t.s[peer]).receiving.map(|r| r.0) != Some(copied_chain) {
        return Ok(None);
    }
    let forgotten = t.epochs();
    let decapsulated =
        |side: usize, from: u32, to: u32| (from + 1..=to).any(|e| (e % 2 == 1) == (side == 0));
    // SECURITY.md's words: the peer decapsulating a ciphertext the lost state drew (of an
    // epoch the copy had not encapsulated), or the lost state decapsulating.
    if decapsulated(peer, at_copy[x].max(at_copy[peer]), forgotten[peer])
        || decapsulated(x, at_copy[x], forgotten[x])
    {
        return Ok(None);
    }
    if t.failed != failed_before {
        return Err(format!(
            "a message failed before the restore ({})",
            t.failed
        ));
    }
    // PeerRestored runs once if the peer read past what the copy sent on its chain, else
    // never (and never before).
    let copy_sent = session_keys(&Session::from_bytes(&copy).unwrap())
        .sending
        .unwrap()
        .1;
    let expected = usize::from(session_keys(&t.s[peer]).receiving.unwrap().2 > copy_sent);
    if t.restores_seen != 0 {
        return Err("PeerRestored before the restore".into());
    }
    t.s[x] = Session::from_bytes(&copy).unwrap();
    t.s[x].renew_sending_chain();
    // What the lost state read, the relay still holds: it may deliver it again, late.
    for (i, fate) in fates_to_x.iter().enumerate() {
        if *fate != Fate::Read && t.pool[x][i].2 == Fate::Read {
            t.pool[x][i].2 = Fate::Held;
        }
    }
    for m in t.pool[x][fates_to_x.len()..].iter_mut() {
        if m.2 == Fate::Read {
            m.2 = Fate::Held;
        }
    }
    let restored = t.epochs();
    // The restored side reads what waits before it writes; then its first message reaches
    // the peer before the peer writes (else the chains cross: beyond the bound).
    while !t.waiting(x).is_empty() {
        t.relay(x, window, 0);
    }
    if session_keys(&t.s[x]).receiving.map(|r| r.0) != Some(session_keys(&t.s[peer]).ratchet_public)
    {
        return Ok(None);
    }
    t.send(rng, x);
    let first = t.pool[peer].len() - 1;
    t.deliver_at(peer, first);
    for _ in 0..2000 {
        step(&mut t, rng, window, drop);
    }
    if t.failed != failed_before {
        return Err(format!(
            "{} genuine messages failed after the restore (epochs {:?} at the restore, {:?} now)",
            t.failed - failed_before,
            restored,
            t.epochs()
        ));
    }
    if t.restores_seen != expected {
        return Err(format!(
            "PeerRestored ran {} times, {expected} expected",
            t.restores_seen
        ));
    }
    Ok(Some((restored, t.epochs(), expected)))
}

/// 8.6 step 4 without any restore: a relay that delivers each side's messages in any order
/// within a window of 12, replays any message it was given (10% of its moves: a read one is
/// refused unchanged, a held-back one arrives late) and holds back 5%, over a conversation whose
/// turns come in bursts and that starts with the initiator's pre-key messages delivered out of
/// order, never makes a side read a new chain whose PN is below what arrived of its receiving
/// chain. PN is the length of the sender's previous chain, the one the receiver reads (it
/// cannot start a chain from any other), and every message of that chain is numbered below
/// it; a message of an older chain is read with a skipped key, which runs no step 4. The
/// epochs go on as with an orderly relay (about 2 to 4 in this many steps, either way).
#[test]
fn a_reordering_replaying_relay_never_runs_peer_restored() {
    for seed in 0..3u64 {
        let rng = &mut SeededRng::from_label(&format!("review 34 relay {seed}"));
        let (mut a, bob, mut store) = start(rng, true, false);
        // Five pre-key messages; Bob's session starts from a random one of them.
        let mut prekey: Pool = (0..5)
            .map(|i| {
                let body = format!("pre-key {i}").into_bytes();
                let wire = a.encrypt(rng, &body).unwrap();
                (body, wire, Fate::Waiting)
            })
            .collect();
        let first = (seed as usize * 3 + 1) % 5;
        let (b, p) = accept(&bob, &mut store, &prekey[first].1).unwrap();
        assert_eq!(p, prekey[first].0);
        prekey[first].2 = Fate::Read;
        let mut t = Relay::new([a, b], 0x51ed_0000 + seed);
        t.pool[1] = prekey;
        for _ in 0..1500 {
            let side = (t.prng.next() % 2) as usize;
            match t.prng.next() % 6 {
                0 | 1 => {
                    for _ in 0..1 + t.prng.next() % 4 {
                        t.send(rng, side);
                    }
                }
                _ => t.relay(side, 12, 5),
            }
        }
        let e = t.epochs();
        assert_eq!(
            t.restores_seen, 0,
            "seed {seed}: PeerRestored without a restore"
        );
        assert_eq!(t.failed, 0, "seed {seed}: a genuine message failed");
        assert!(e[0].min(e[1]) >= 1, "seed {seed}: epochs {e:?}");
    }
}

/// The relay cannot run PeerRestored by lowering a genuine new chain's PN, nor hide a restore
/// by raising a renewed chain's PN: the header is associated data, so either is
/// `AuthenticationFailed`, the session unchanged, and the genuine message still reads (and,
/// for the renewed chain, runs PeerRestored).
#[test]
fn a_pn_changed_in_transit_is_refused_and_changes_nothing() {
    let rng = &mut SeededRng::from_label("review 34 pn in transit");
    let (mut a, mut b) = pair(rng, true);
    for i in 0..20 {
        let w = b.encrypt(rng, b"b").unwrap();
        recv(&mut a, &w).unwrap();
        let w = a.encrypt(rng, format!("a{i}").as_bytes()).unwrap();
        recv(&mut b, &w).unwrap();
    }
    let with_pn = |w: &[u8], pn: u32| {
        let mut w = w.to_vec();
        let at = ratchet_start(&w) + 34;
        w[at..at + 4].copy_from_slice(&pn.to_be_bytes());
        w
    };
    // Bob reads three of Alice's chain; her next chain (after his answer) names PN 4.
    for _ in 0..3 {
        let w = a.encrypt(rng, b"more").unwrap();
        recv(&mut b, &w).unwrap();
    }
    let w = b.encrypt(rng, b"answer").unwrap();
    recv(&mut a, &w).unwrap();
    let w = a.encrypt(rng, b"new chain").unwrap();
    assert_eq!(header(&w).1, 4);
    for pn in [0, 1, 3] {
        let forged = with_pn(&w, pn);
        assert!(names_a_shorter_chain(&b, &forged));
        let (r, restored) = read(&mut b, &forged);
        assert_eq!(r, Err(RatchetError::AuthenticationFailed.into()));
        assert!(!restored);
    }
    assert_eq!(read(&mut b, &w), (Ok(b"new chain".to_vec()), false));
    // Alice restored from a copy two messages short of what Bob read: her renewed chain's
    // PN (2 below what arrived) raised in transit to hide it.
    let copy = a.to_bytes();
    for _ in 0..2 {
        let w = a.encrypt(rng, b"forgotten").unwrap();
        recv(&mut b, &w).unwrap();
    }
    let mut a = Session::from_bytes(&copy).unwrap();
    a.renew_sending_chain();
    let w = a.encrypt(rng, b"renewed").unwrap();
    let pn = header(&w).1;
    for raised in [pn + 2, pn + 3, u32::MAX] {
        let (r, restored) = read(&mut b, &with_pn(&w, raised));
        assert!(r.is_err(), "PN {raised}: {r:?}");
        assert!(!restored);
    }
    assert_eq!(read(&mut b, &w), (Ok(b"renewed".to_vec()), true));
}

/// Sends `n` messages from `from` to `to`, each read at once.
fn talk(rng: &mut SeededRng, from: &mut Session, to: &mut Session, n: usize) {
    for _ in 0..n {
        let w = from.encrypt(rng, b"talk").unwrap();
        assert_eq!(read(to, &w).0.unwrap(), b"talk");
    }
}

/// Alice and Bob, Bob sending two messages a turn and Alice reading the second after her
/// answer, until Alice holds a sending chain whose next message encapsulates (after `warm`
/// turns): the point where a copy forgets an `m` its lost state draws.
fn before_alice_encapsulates(rng: &mut SeededRng, warm: usize) -> (Session, Session) {
    let (mut a, mut b) = pair(rng, true);
    for turn in 0.. {
        let w1 = b.encrypt(rng, b"b1").unwrap();
        let w2 = b.encrypt(rng, b"b2").unwrap();
        recv(&mut a, &w1).unwrap();
        let w = a.encrypt(rng, b"a").unwrap();
        recv(&mut b, &w).unwrap();
        recv(&mut a, &w2).unwrap();
        if turn >= warm && next_send(&a, rng).0 {
            break;
        }
        assert!(turn < 2000, "no point found");
    }
    assert!(session_keys(&a).sending.is_some());
    (a, b)
}

/// The forgotten state's messages (ciphertext chunks of an `m` the restored side draws again) late
/// and out of order around the renewed chain's, themselves out of order: Bob reads the lost
/// state's last message first (its earlier ones become skipped keys), then the renewed chain's
/// third (PeerRestored; its first two become skipped keys), then the lost ones with their
/// skipped keys (they read, and their chunks, of a chain no longer current, are not taken),
/// then the renewed chain's first two (their chunks are taken). A lost message past the one
/// that made the keys is refused (a typed error), unchanged. Then every message reads and both sides complete
/// epochs again.
#[test]
fn late_lost_messages_and_a_reordered_renewed_chain_keep_the_epochs() {
    let rng = &mut SeededRng::from_label("review 34 late lost");
    let (mut a, mut b) = before_alice_encapsulates(rng, 20);
    let copy = a.to_bytes();
    let lost: Vec<Vec<u8>> = (0..5)
        .map(|i| a.encrypt(rng, format!("lost {i}").as_bytes()).unwrap())
        .collect();
    assert!(
        lost.iter().all(|w| pairs::chunk_kind(w) >= Some(2)),
        "the lost state sends ciphertext chunks"
    );
    assert_eq!(read(&mut b, &lost[3]).0.unwrap(), b"lost 3");
    let mut a = Session::from_bytes(&copy).unwrap();
    a.renew_sending_chain();
    let at_restore = [a.pq_ratchet_epoch().unwrap(), b.pq_ratchet_epoch().unwrap()];
    let renewed: Vec<Vec<u8>> = (0..3)
        .map(|i| a.encrypt(rng, format!("renewed {i}").as_bytes()).unwrap())
        .collect();
    assert_eq!(
        read(&mut b, &renewed[2]),
        (Ok(b"renewed 2".to_vec()), true),
        "PeerRestored"
    );
    for (i, w) in lost[..3].iter().enumerate() {
        assert_eq!(read(&mut b, w).0.unwrap(), format!("lost {i}").as_bytes());
    }
    // No key for it: its chain's epoch, resolved from the current one's, is past what Bob
    // knows (`InvalidValue`), or it would not authenticate. Either leaves Bob unchanged.
    let (r, _) = read(&mut b, &lost[4]);
    assert!(
        r == Err(RatchetError::AuthenticationFailed.into())
            || r == Err(ratchetry::DecodeError::InvalidValue.into()),
        "{r:?}"
    );
    for (i, w) in renewed[..2].iter().enumerate() {
        assert_eq!(
            read(&mut b, w).0.unwrap(),
            format!("renewed {i}").as_bytes()
        );
    }
    for _ in 0..300 {
        talk(rng, &mut b, &mut a, 1);
        talk(rng, &mut a, &mut b, 1);
    }
    let end = [a.pq_ratchet_epoch().unwrap(), b.pq_ratchet_epoch().unwrap()];
    assert!(
        end[0] >= at_restore[0] + 3 && end[1] >= at_restore[1] + 3,
        "epochs {at_restore:?} at the restore, {end:?} after"
    );
}

/// Random restores within SECURITY.md's bounds under a relay harsher than `stale_restore.rs`'s:
/// any order within a window of up to 32, replays of everything it was given (the messages the
/// forgotten state read among them, which the restored side then reads), late copies of the
/// forgotten state's messages (refused once the renewed chain arrived), and up to 20% held
/// back. Every message delivered for the first time reads, PeerRestored runs exactly when the
/// peer read past what the copy sent (never otherwise, before or after), and with loss no
/// higher than 5% both sides complete at least two more epochs in 2,000 steps.
#[test]
fn restores_within_the_bound_survive_a_hostile_relay() {
    let mut p = Prng(77);
    let (mut within, mut ran) = (0, 0);
    for seed in 0..40u64 {
        let window = [1usize, 4, 8, 16, 32][(p.next() % 5) as usize];
        let drop = [0u64, 5, 20][(p.next() % 3) as usize];
        let lost = 1 + p.next() % 40;
        let r = hostile_restore_trial(seed, window, drop, lost)
            .unwrap_or_else(|e| panic!("trial {seed} (window {window}, drop {drop}): {e}"));
        let Some((at, end, restored)) = r else {
            continue;
        };
        within += 1;
        ran += restored;
        if drop <= 5 {
            assert!(
                end[0] >= at[0] + 2 && end[1] >= at[1] + 2,
                "trial {seed}: epochs {at:?} at the restore, {end:?} at the end"
            );
        }
    }
    assert!(
        within >= 10 && ran >= 5,
        "{within} within the bound, {ran} ran PeerRestored"
    );
}

/// Restores anywhere, beyond the bound too: each side now and then keeps a copy of its state
/// and later goes back to it (renewing its sending chain), at any point (no sending chain,
/// a chain of its own since, the peer moved on, an epoch completed on what it forgot, both
/// sides restored, one copy restored twice), under the hostile relay. Sessions may die; what
/// must hold is that nothing panics, every refusal is a typed error that leaves the session
/// byte-identical, and every state a read leaves loads back as it was.
#[test]
fn restores_anywhere_fail_only_as_typed_refusals() {
    let (mut all_restores, mut ran) = (0, 0);
    for seed in 0..6u64 {
        let rng = &mut SeededRng::from_label(&format!("review 34 chaos {seed}"));
        let (a, b) = pair(rng, true);
        let mut t = Relay::new([a, b], 0xc4a0_5000 + seed);
        t.rereads = true;
        // A side's copy and the step it goes back to it at.
        let mut copies: [Option<(Vec<u8>, usize)>; 2] = [None, None];
        let mut restores = 0;
        for step in 0..1000 {
            for (side, kept) in copies.iter_mut().enumerate() {
                if let Some((copy, _)) = kept.take_if(|(_, at)| *at == step) {
                    restores += 1;
                    t.s[side] = Session::from_bytes(&copy).unwrap();
                    t.s[side].renew_sending_chain();
                    // It reads what waits for it first, as an app does (mostly).
                    if t.prng.chance(80) {
                        while !t.waiting(side).is_empty() {
                            t.relay(side, 8, 0);
                        }
                    }
                }
            }
            let side = (t.prng.next() % 2) as usize;
            match t.prng.next() % 100 {
                0 if copies[side].is_none() => {
                    let back = step + 2 + (t.prng.next() % 20) as usize;
                    copies[side] = Some((t.s[side].to_bytes().to_vec(), back));
                }
                0..=49 => t.send(rng, side),
                _ => t.relay(side, 8, 5),
            }
        }
        println!(
            "seed {seed}: {restores} restores, epochs {:?}, {} failed, PeerRestored {} times",
            t.epochs(),
            t.failed,
            t.restores_seen
        );
        all_restores += restores;
        ran += t.restores_seen;
    }
    assert!(
        all_restores >= 30 && ran >= 1,
        "{all_restores} restores, {ran} PeerRestored"
    );
}

/// Healing through a restore: an observer holds Alice's backup (epoch `e`, taken just before
/// a send that encapsulates) and every X25519 secret she draws after it. Alice's lost state
/// sends ct1 of an `m` the backup lacks, Bob reads it; Alice is restored from the backup and
/// Bob runs PeerRestored. The observer follows the restored Alice's sends and reads Bob's next
/// 400 messages: it reads some (the chains before `e + 2`), and none whose chain mixed `e + 2`
/// or later, which most of them did. PeerRestored only empties collectors and clears
/// acknowledgements: it gives no side key material, and the restored side's epoch `e + 1` is
/// drawn again with randomness the backup does not hold.
#[test]
fn an_observer_with_the_backup_reads_nothing_from_two_epochs_later() {
    let rng = &mut SeededRng::from_label("review 34 healing");
    let (mut a, mut b) = before_alice_encapsulates(rng, 30);
    let copy = a.to_bytes();
    let e = a.pq_ratchet_epoch().unwrap();
    for _ in 0..3 {
        let w = a.encrypt(rng, b"lost").unwrap();
        recv(&mut b, &w).unwrap();
    }
    let mut a = Session::from_bytes(&copy).unwrap();
    a.renew_sending_chain();
    let mut observer = Session::from_bytes(&copy).unwrap();
    observer.renew_sending_chain();
    let a_rng = &mut SeededRng::from_label("review 34 alice after the restore");
    let own = &mut SeededRng::from_label("review 34 the observer's guesses");
    let (mut read_any, mut late, mut late_read, mut restored) = (0, 0, 0, false);
    for i in 0..400 {
        let mut recording = Recording {
            inner: &mut *a_rng,
            draws: Vec::new(),
        };
        let w = a.encrypt(&mut recording, b"alice").unwrap();
        let draws = recording.draws;
        let _ = observer.encrypt(
            &mut Observer {
                alice: &draws,
                own: &mut *own,
                first: true,
            },
            b"alice",
        );
        let (r, ran) = read(&mut b, &w);
        r.unwrap();
        restored |= ran;
        let secret = format!("secret {i}");
        let w = b.encrypt(rng, secret.as_bytes()).unwrap();
        let mixed = pq_chain_epochs(&b).map_or(0, |(send, _)| send);
        recv(&mut a, &w).unwrap();
        let opened = recv(&mut observer, &w).ok() == Some(secret.into_bytes());
        read_any += usize::from(opened);
        if mixed >= e + 2 {
            late += 1;
            late_read += usize::from(opened);
        }
    }
    assert!(restored, "Bob ran PeerRestored");
    assert!(
        read_any > 0,
        "the observer read nothing: not a real observer"
    );
    assert!(
        late >= 200,
        "only {late} of Bob's messages mixed epoch {}",
        e + 2
    );
    assert_eq!(
        late_read, 0,
        "the observer read a message of epoch e + 2 or later"
    );
}

/// Under fanout, a restore beyond the bound (the peer's answer crosses the restored device's
/// renewed chain) kills the session at both ends, and a retry replaces it (SECURITY.md; as in
/// `stale_restore::chains_crossed_after_a_restore_are_replaced_by_a_retrys_sessions`). The dead
/// session stays held, archived behind the retry's. The relay held back one genuine message of
/// each side's chain from before the crossing (it still opens under the dead session: a
/// skipped key at Bob, the next number of the receiving chain at Alice). Until stop 34, a
/// message that opened under an archived session made it current again, so once released
/// these two put the dead session back at both ends and every later message failed both ways,
/// again with each further pair the relay held back (found by this review). Only a message
/// that starts a new receiving chain in a session (the peer answered in it) makes it current
/// now (PROTOCOL.md 18.5).
#[test]
fn a_message_held_back_across_a_retry_does_not_revive_the_dead_session() {
    let (mut w, alice, bob, a1, b1) = World::two_talking("review 34: a dead session revived");
    // The relay holds back one message of each side's current chain.
    let held_from_alice = w.send(a1, bob, b"held from alice");
    let o = w.send(b1, alice, b"warm up");
    w.deliver_ok(&o);
    let held_from_bob = w.send(b1, alice, b"held from bob");
    // Alice's phone is restored from a backup taken before a message Bob read; Bob's answer to
    // it crosses the restored phone's first message. Each asks the other again: the answers
    // start new sessions, and the pair settles on them.
    w.cross_chains_after_a_restore_and_retry(a1, b1);
    for i in 0..6 {
        let (from, to) = if i % 2 == 0 { (a1, bob) } else { (b1, alice) };
        let o = w.send(from, to, b"settled");
        assert_eq!(body(&w.deliver_ok(&o)[0].1), Some(&b"settled"[..]));
    }
    // The relay releases what it held back: genuine, so it reads (under the dead session).
    for (held, to, text) in [
        (&held_from_alice, b1, &b"held from alice"[..]),
        (&held_from_bob, a1, &b"held from bob"[..]),
    ] {
        let r = w.receive(to, &World::envelope_to(held, to)).unwrap();
        assert_eq!(body(&r), Some(text));
    }
    // What each side sends next must still reach the other.
    for i in 0..4 {
        let (from, to, device) = if i % 2 == 0 {
            (b1, alice, a1)
        } else {
            (a1, bob, b1)
        };
        let text = format!("after the release {i}");
        let o = w.send(from, to, text.as_bytes());
        let r = w.receive(device, &World::envelope_to(&o, device));
        let read = r.as_ref().ok().and_then(body).map(<[u8]>::to_vec);
        assert_eq!(
            read.as_deref(),
            Some(text.as_bytes()),
            "message {i} after the release: {:?}",
            r.err()
        );
    }
}
