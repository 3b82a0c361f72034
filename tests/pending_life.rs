//! Lives of a device whose relay floods it with envelopes forged under its contacts'
//! addresses while it asks for the messages the relay broke (review 45's known limit 2, fixed
//! at stop 49): sequences of sends, breaks, floods, deliveries in any order, answers late or
//! lost, clock jumps and restarts, with the app doing what the guide says (ship a request,
//! keep the envelope and ask again through `driver::ask_again` after a while, keep an
//! `AskLater` envelope until its time and receive it again, acknowledge the rest). After the
//! relay settles (delivers everything, stops forging), every honest message was shown exactly
//! once. Each seed is one life; `RATCHETRY_PENDING_SEEDS=N` runs more
//! (from `RATCHETRY_PENDING_FIRST`).

mod support;

use std::collections::{BTreeMap, BTreeSet};

use ratchetry::Timestamp;
use ratchetry::devices::{AccountKey, DeviceAddress};
use ratchetry::driver::{self, Inbound, ReceiveStep, Receiving};
use ratchetry::fanout::{EnvelopeId, Received, RetryReason, SendId};
use support::{World, Xorshift, body, tampered};

const MINUTE: u64 = 60_000;

/// Forgeries under one honest address in a life. The app keeps and asks for each (it cannot
/// tell them from the genuine broken ones), and each holds one of that account's
/// `MAX_WAITING_RETRIES_PER_ACCOUNT` places for about a day: a relay forging many more
/// defers the honest sender's asks by a day per 64, past its retry window (SECURITY.md), as
/// it could by holding the messages back.
const FORGED_PER_ADDRESS: usize = 192;

/// An envelope the app keeps: to ask again for (`reask`: the reason) or to receive again.
struct Kept {
    bytes: Vec<u8>,
    due: Timestamp,
    reask: Option<RetryReason>,
}

struct Life {
    w: World,
    c: Xorshift,
    alice: AccountKey,
    a1: DeviceAddress,
    /// The honest senders, and Mallory, the relay's contact, who never answers.
    honest: [DeviceAddress; 2],
    m1: DeviceAddress,
    /// What the relay has for Alice, and the genuine envelopes it holds back until it settles.
    inbox: Vec<Vec<u8>>,
    held: Vec<Vec<u8>>,
    /// Retry requests on their way to the senders.
    requests: Vec<(DeviceAddress, Vec<u8>)>,
    /// An envelope of each honest sender never delivered, and where its salt sits: the
    /// forgeries' template.
    carriers: BTreeMap<DeviceAddress, (Vec<u8>, usize)>,
    /// The senders' apps: bodies by send id.
    bodies: BTreeMap<(DeviceAddress, SendId), Vec<u8>>,
    /// Alice's app: times each body was shown, the ids its store holds, what it keeps.
    shown: BTreeMap<Vec<u8>, usize>,
    stored: BTreeSet<EnvelopeId>,
    kept: Vec<Kept>,
    /// Honest bodies sent to Alice.
    sent: Vec<Vec<u8>>,
    forged: u32,
    forged_as: BTreeMap<DeviceAddress, usize>,
    log: Vec<String>,
}

impl Life {
    fn new(seed: u64) -> Self {
        let (mut w, [alice, _, _, _], [a1, b1, c1, m1]) =
            World::phones::<4>(&format!("pending life {seed}"));
        let mut life = Self {
            c: Xorshift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
            alice,
            a1,
            honest: [b1, c1],
            m1,
            inbox: Vec::new(),
            held: Vec::new(),
            requests: Vec::new(),
            carriers: BTreeMap::new(),
            bodies: BTreeMap::new(),
            shown: BTreeMap::new(),
            stored: BTreeSet::new(),
            kept: Vec::new(),
            sent: Vec::new(),
            forged: 0,
            forged_as: BTreeMap::new(),
            log: Vec::new(),
            w: {
                for from in [b1, c1, m1] {
                    let warm = w.send(from, alice, b"warm");
                    w.deliver_ok(&warm);
                }
                w
            },
        };
        for from in [b1, c1] {
            let carrier = life.send(from, format!("carrier of {from:?}").into_bytes());
            let salt = life.w.pairwise_salt(a1, &carrier);
            let at = carrier.windows(16).position(|s| s == salt).unwrap();
            life.carriers.insert(from, (carrier, at));
        }
        life
    }

    /// `from` sends `text` to Alice; returns its envelope to her (not yet delivered).
    fn send(&mut self, from: DeviceAddress, text: Vec<u8>) -> Vec<u8> {
        let o = self.w.send(from, self.alice, &text);
        self.bodies.insert((from, o.send_id.unwrap()), text.clone());
        self.sent.push(text);
        World::envelope_to(&o, self.a1)
    }

    /// One step of the life, chosen at random.
    fn step(&mut self, n: usize) {
        match self.c.below(100) {
            0..=24 => {
                let from = self.honest[self.c.below(2)];
                let e = self.send(from, format!("{n} from {from:?}").into_bytes());
                match self.c.below(3) {
                    0 => self.inbox.push(e),
                    // Broken: the copy delivered, the genuine held back or lost.
                    1 => {
                        self.inbox.push(tampered(&e));
                        self.held.push(e);
                    }
                    _ => self.inbox.push(tampered(&e)),
                }
                self.log.push(format!("{n}: {from:?} sends"));
            }
            25..=39 => {
                let count = 1 + self.c.below(100);
                match self.c.below(3) {
                    // Forged under an honest sender's address: the carrier with fresh salts,
                    // at most `FORGED_PER_ADDRESS` in a life (see there).
                    0 | 1 => {
                        let from = self.honest[self.c.below(2)];
                        let (carrier, at) = self.carriers[&from].clone();
                        let made = self.forged_as.entry(from).or_default();
                        let count = count.min(FORGED_PER_ADDRESS - *made);
                        *made += count;
                        for _ in 0..count {
                            self.forged += 1;
                            let mut forged = carrier.clone();
                            forged[at..at + 4].copy_from_slice(&self.forged.to_be_bytes());
                            forged[at + 4..at + 16].copy_from_slice(&[0xee; 12]);
                            self.inbox.push(forged);
                        }
                        self.log.push(format!("{n}: {count} forged as {from:?}"));
                    }
                    // Mallory's own messages, broken: she never answers.
                    _ => {
                        for i in 0..count {
                            let o = self.w.send(self.m1, self.alice, format!("m{i}").as_bytes());
                            self.inbox.push(tampered(&World::envelope_to(&o, self.a1)));
                        }
                        self.log.push(format!("{n}: {count} of Mallory's, broken"));
                    }
                }
            }
            40..=69 => {
                let count = 1 + self.c.below(self.inbox.len().max(1));
                for _ in 0..count.min(self.inbox.len()) {
                    let i = self.c.below(self.inbox.len());
                    let e = self.inbox.swap_remove(i);
                    self.deliver(&e);
                }
            }
            70..=84 => self.answer(true),
            85..=94 => {
                let by = MINUTE * (1 + self.c.below(180)) as u64;
                self.w.now = self.w.now.plus_millis(by);
            }
            _ => {
                self.w.restart(self.a1);
                self.log.push(format!("{n}: Alice restarts"));
            }
        }
        self.due();
    }

    /// The honest senders answer the requests that reached them; an answer may be lost.
    fn answer(&mut self, lossy: bool) {
        for (to, request) in std::mem::take(&mut self.requests) {
            if to == self.m1 {
                continue;
            }
            let Ok(Received::RetryRequest(req)) = self.w.receive(to, &request) else {
                continue;
            };
            let body = self.bodies[&(to, req.send_id)].clone();
            let answer = World::envelope_to(&self.w.answer(to, &req, &body), self.a1);
            if !(lossy && self.c.chance(10)) {
                self.inbox.push(answer);
            }
        }
    }

    /// Alice's app receives `envelope` through the stepper, its store checked.
    fn deliver(&mut self, envelope: &[u8]) {
        let now = self.w.now;
        let mut device = self.w.devices.remove(&self.a1).unwrap();
        let stored = &self.stored;
        let got = Receiving::new().step(&mut device, &mut self.w.rng, now, envelope, |id| {
            stored.contains(id)
        });
        self.w.devices.insert(self.a1, device);
        self.w.persist(self.a1);
        let Ok(ReceiveStep::Done(inbound)) = got else {
            panic!("{got:?}\n{}", self.log.join("\n"))
        };
        self.act(envelope, inbound, RetryReason::AuthenticationFailed);
    }

    /// What the guide says to do with an outcome for `envelope`.
    fn act(&mut self, envelope: &[u8], inbound: Inbound, reason: RetryReason) {
        let now = self.w.now;
        match inbound {
            Inbound::Read(r) => {
                let shown = body(&r).unwrap().to_vec();
                *self.shown.entry(shown).or_default() += 1;
                self.stored.insert(EnvelopeId::of(envelope));
                if let Received::Direct {
                    resent: Some(id), ..
                } = r
                {
                    // A resend replaces the placeholder shown under the envelope it answers.
                    self.stored.insert(id);
                    self.kept.retain(|k| EnvelopeId::of(&k.bytes) != id);
                }
            }
            Inbound::Duplicate(_) | Inbound::Dropped(_) => {}
            Inbound::AskAgain { to, request } => {
                self.requests.push((to, request));
                self.kept.push(Kept {
                    bytes: envelope.to_vec(),
                    due: now.plus_millis(60 * MINUTE),
                    reask: Some(reason),
                });
            }
            Inbound::AskLater { at } => {
                assert!(at > now, "AskLater at {at:?}, now {now:?}");
                self.kept.push(Kept {
                    bytes: envelope.to_vec(),
                    due: at,
                    reask: None,
                });
            }
            other => panic!("{other:?}\n{}", self.log.join("\n")),
        }
    }

    /// The kept envelopes whose time came: asked again, or received again.
    fn due(&mut self) {
        let now = self.w.now;
        let (due, later): (Vec<Kept>, Vec<Kept>) = std::mem::take(&mut self.kept)
            .into_iter()
            .partition(|k| k.due <= now);
        self.kept = later;
        for k in due {
            let Some(reason) = k.reask else {
                self.deliver(&k.bytes);
                continue;
            };
            let mut device = self.w.devices.remove(&self.a1).unwrap();
            let stored = &self.stored;
            let got =
                driver::ask_again(&mut device, &mut self.w.rng, now, &k.bytes, reason, |id| {
                    stored.contains(id)
                });
            self.w.devices.insert(self.a1, device);
            self.w.persist(self.a1);
            self.act(&k.bytes, got, reason);
        }
    }

    /// The relay settles: it delivers what it held and everything after, forges no more and
    /// loses nothing; time moves on to each kept envelope's due time.
    fn settle(&mut self) {
        self.inbox.append(&mut self.held);
        for from in self.honest {
            let (carrier, _) = self.carriers[&from].clone();
            self.inbox.push(carrier);
        }
        for _ in 0..200 {
            while let Some(e) = self.inbox.pop() {
                self.deliver(&e);
            }
            self.answer(false);
            if self.inbox.is_empty() && self.requests.is_empty() {
                let Some(next) = self.kept.iter().map(|k| k.due).min() else {
                    return;
                };
                self.w.now = next.max(self.w.now);
                self.due();
            }
        }
        panic!(
            "not settled: {} kept\n{}",
            self.kept.len(),
            self.log.join("\n")
        );
    }

    fn check(&self) {
        for text in &self.sent {
            let times = self.shown.get(text).copied().unwrap_or(0);
            assert_eq!(
                times,
                1,
                "{:?} shown {times} times\n{}",
                String::from_utf8_lossy(text),
                self.log.join("\n")
            );
        }
    }
}

fn live(seed: u64) {
    let mut life = Life::new(seed);
    life.log.push(format!("seed {seed}"));
    for n in 0..150 {
        life.step(n);
    }
    life.settle();
    life.check();
}

#[test]
fn every_honest_message_is_shown_once_through_floods_of_forged_asks() {
    for seed in 0..4 {
        live(seed);
    }
}

#[test]
#[ignore = "long: RATCHETRY_PENDING_SEEDS=N runs N seeds"]
fn many_lives() {
    let var = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let first = var("RATCHETRY_PENDING_FIRST", 0);
    for seed in first..first + var("RATCHETRY_PENDING_SEEDS", 100) {
        live(seed);
    }
}
