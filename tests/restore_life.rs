//! Devices' lives with backups restored, as random sequences of public-API operations: four
//! accounts (Alice with a companion, Bob, Carol, and Mallory, the server's own account) write
//! 1:1 and in one group while the relay delivers out of order, replays and damages, devices
//! crash before writing a receive's unit, and any device is backed up at any point and
//! restored from any of its backups (once or several times from one), as an app does it
//! (`restore_from_backup`, every list fetched again, the group's members set again). A phone
//! restored may come back with its primary (`Primary::restore_from_backup` and `resync`):
//! its companions are then off the list, and their apps link them again as new devices.
//!
//! At random steps the others remove Mallory from the group, Alice's phone unlinks her first
//! companion (a stolen laptop: the server keeps it, serves it the old list, and it writes and
//! asks as if linked) and links a new one. Throughout, the relay hands Mallory and the stolen
//! laptop copies of envelopes sent to others, which they read and ask for (through the
//! guide's loop, and with every retry reason), so the senders see their requests. Every
//! device runs the guide's receive loop (`driver::receive`): it shows what it reads, keeps
//! what it must hold or wait for, ships the retry requests it is told to, answers the ones it
//! gets from its own store of sent bodies, and keeps each envelope it asked for until the
//! answer is read, asking again after a while (the guide's "Asking again"). The app's store
//! (what it showed, acknowledged, sent and asked for) is backed up and restored with the
//! device.
//!
//! Invariants:
//! - every message read shows the body sent, from its sender, to a device it was sent to (so
//!   Mallory and the stolen laptop read nothing sent to others, Mallory no group message sent
//!   after her removal), never one the stolen laptop wrote after its unlink, and never twice
//!   in one line of an app's store (a restore forgets what its backup forgot, so the restored
//!   app may show again a message its lost state showed);
//! - after a settle phase (the relay delivers everything and stops replaying; held envelopes
//!   are asked for after a few rounds, unanswered asks asked again), every device has shown
//!   every message sent to it, except those its lost state read or asked for (gone from the
//!   relay, unknown to the restored app: a message dropped is not excused), those it had to
//!   ask for whose sender cannot answer (its restore forgot sending them, or its sender key
//!   moved four generations on: review 44's known limit), group messages to or from Mallory
//!   once she is removed (a sender may refuse her asks then, and a member drops a group
//!   message of hers it reads after her removal), and what was in flight to or from a device
//!   off its account's list;
//! - afterwards every device reads every other, 1:1 and in the group (Mallory 1:1 only, once
//!   removed); no message sent after the removal or the unlink lists a device of Mallory's or
//!   the stolen laptop.
//!
//! What it found when written (stop 44): an app that asked only as the driver says lost
//! messages. A message a device's lost state had sent, still in flight at its restore and
//! delivered after it, moved the peer's current session back to the lost state's (review
//! 43b's known limit); the restored device's sender-key request was answered on that session,
//! which it cannot read; the driver then asked for the answer's envelope, which its sender
//! does not journal (`UnknownMessage`), and nothing asked for the message again. The guide
//! and `Inbound::AskAgain` now say to keep the envelope and ask again for it.
//!
//! `RATCHETRY_LIFE_SEEDS=N cargo test --release --test restore_life -- --ignored many_lives`
//! runs N more seeds (from 100, or `RATCHETRY_LIFE_FIRST`); with `LIFE_DEBUG=1`, the log
//! printed on a failure also has each failed receive's error and each change of a pair's
//! confirmation since a restore (PROTOCOL.md 19.4); with `LIFE_DUMP=1` (and `--nocapture`)
//! every seed's log is printed, to see what a run covered.

mod pairs;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;

use pairs::Prng;
use ratchetry::Timestamp;
use ratchetry::devices::{AccountKey, DeviceAddress, PRIMARY_DEVICE, Primary, SignedDeviceList};
use ratchetry::driver::{self, Directory, Inbound};
use ratchetry::fanout::{Device, EnvelopeId, Outbox, Received, RetryReason, SendId};
use ratchetry::group::GroupId;
use ratchetry::x3dh::PreKeyBundle;
use support::World;

const G: GroupId = GroupId([0x6c; 32]);
const SEEDS: &[u64] = &[1, 2, 3, 4, 5, 6];
const STEPS: usize = 160;
/// Settle rounds a held group message waits for its sender key before it is asked for.
const HOLD_ROUNDS: usize = 2;
/// Settle rounds an ask waits for its answer before it is asked again (a request is read the
/// round after it is asked, and its answer the round after that).
const ASK_AGAIN_ROUNDS: usize = 3;
const SETTLE_ROUNDS: usize = 30;

/// What an app keeps beside its device: backed up and restored with it.
#[derive(Clone, Default)]
struct App {
    /// Messages shown, by number.
    shown: BTreeSet<u64>,
    /// Messages an envelope of which it acknowledged (the relay drops those).
    acked: BTreeSet<u64>,
    /// The ids messages were stored under (a resend under the id it replaces).
    ids: BTreeSet<EnvelopeId>,
    /// Bodies sent, by send id, to answer retries.
    sent: BTreeMap<SendId, Vec<u8>>,
    /// Envelopes asked for again and not yet answered, by their id: asked again after a
    /// while, as the guide says, until the device's retry limit.
    asks: BTreeMap<EnvelopeId, Ask>,
    /// Envelopes whose ask was deferred (`AskLater`): kept and received again, not held for
    /// a sender key.
    later: BTreeSet<EnvelopeId>,
}

#[derive(Clone)]
struct Backup {
    device: Vec<u8>,
    app: App,
    /// A phone's backup holds its account's primary too.
    primary: Option<Vec<u8>>,
    /// The device's sender-key generations so far (the test's count).
    generations: u64,
}

#[derive(Clone)]
struct Ask {
    bytes: Vec<u8>,
    reason: RetryReason,
    msg: Option<u64>,
    /// Settle rounds since it was last asked.
    age: usize,
}

struct Message {
    from: DeviceAddress,
    to: BTreeSet<DeviceAddress>,
    group: bool,
    /// The sender's sender-key generation it went under (counted by the test), for a group
    /// message.
    generation: u64,
}

/// An envelope the relay holds for a device until it is acknowledged.
#[derive(Clone)]
struct Queued {
    to: DeviceAddress,
    bytes: Vec<u8>,
    /// Settle rounds it was held for its sender key.
    held: usize,
    /// The message it is of (its number), if any: for the log.
    msg: Option<u64>,
    /// Whether it carries the message's body (not a sender key, not a retry request).
    carries: bool,
}

/// The relay's directory: every account's current list.
struct Lists(Vec<SignedDeviceList>);

impl Directory for Lists {
    type Error = Infallible;

    fn device_lists(&mut self, _: &[AccountKey]) -> Result<Vec<SignedDeviceList>, Infallible> {
        Ok(self.0.clone())
    }

    fn bundles(
        &mut self,
        _: &[DeviceAddress],
    ) -> Result<Vec<(DeviceAddress, PreKeyBundle)>, Infallible> {
        Ok(Vec::new())
    }
}

struct Life {
    w: World,
    /// The relay's and the apps' choices (the crypto RNG is the world's).
    c: Prng,
    accounts: Vec<AccountKey>,
    /// The group's members, as the members' apps set them.
    members: Vec<AccountKey>,
    /// The server's own account: a member until `removal`, then removed.
    mallory: AccountKey,
    /// The step at which the others remove Mallory from the group.
    removal: usize,
    /// The step at which Alice's phone unlinks her first companion, which then is the
    /// server's too; and the step at which it links a new one.
    unlink_at: usize,
    link_at: usize,
    unlinked: Option<DeviceAddress>,
    /// Messages the companion unlinked sent after its unlinking: no device may show them.
    forged: BTreeSet<u64>,
    /// Alice's list from before the unlink, which the relay serves the companion unlinked.
    stale_list: Option<SignedDeviceList>,
    steps: usize,
    apps: BTreeMap<DeviceAddress, App>,
    /// Each device's backups with its app's store, and a phone's with its primary's state.
    backups: BTreeMap<DeviceAddress, Vec<Backup>>,
    /// Companions whose primary was restored: off its list, their apps linked them again as
    /// new devices. Gone from the world (and the relay drops what it held for them).
    retired: BTreeSet<DeviceAddress>,
    /// Each device's sender-key generations in the group so far: a group send that gives its
    /// key to every recipient starts one. A sender keeps four (LEDGER_GENERATIONS), so a
    /// group message four generations back is answered no more (review 44's known limit).
    generations: BTreeMap<DeviceAddress, u64>,
    messages: BTreeMap<u64, Message>,
    /// (device, message) its lost state acknowledged: the relay no longer has it.
    lost: BTreeSet<(DeviceAddress, u64)>,
    /// Messages whose sender was restored to before it sent them: no answer can come for
    /// them, so a recipient that had to ask for one may lose it.
    orphaned: BTreeSet<u64>,
    /// (device, message) some state of the device asked for.
    asked: BTreeSet<(DeviceAddress, u64)>,
    queue: Vec<Queued>,
    /// Every envelope delivered, for replays.
    delivered: Vec<(DeviceAddress, Vec<u8>, Option<u64>, bool)>,
    next: u64,
    log: Vec<String>,
}

fn outcome(inbound: &Inbound) -> String {
    match inbound {
        Inbound::Read(r) => match r {
            Received::Group { resent, .. }
            | Received::Direct { resent, .. }
            | Received::OwnCopy { resent, .. } => {
                format!("read{}", if resent.is_some() { " (resent)" } else { "" })
            }
            Received::SenderKey { .. } => "sender key".into(),
            Received::RetryRequest(_) => "retry request".into(),
            other => format!("{other:?}"),
        },
        Inbound::Duplicate(_) => "duplicate".into(),
        Inbound::Hold { .. } => "hold".into(),
        Inbound::AskAgain { .. } => "ask again".into(),
        Inbound::AwaitList { .. } => "await list".into(),
        Inbound::AwaitMembers { .. } => "await members".into(),
        Inbound::Dropped(e) => format!("dropped: {e}"),
        other => format!("{other:?}"),
    }
}

fn number(body: &[u8]) -> u64 {
    std::str::from_utf8(body)
        .ok()
        .and_then(|s| s.strip_prefix('m'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a message body: {body:?}"))
}

impl Life {
    fn new(seed: u64) -> Self {
        let mut w = World::new(&format!("restore life {seed}"));
        let alice = w.account(1);
        let bob = w.account(0);
        let carol = w.account(0);
        let mallory = w.account(0);
        w.publish_all();
        let accounts = vec![alice, bob, carol, mallory];
        w.set_members(G, &accounts);
        let mut c = Prng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let removal = STEPS / 4 + c.below(STEPS / 2);
        let unlink_at = STEPS / 4 + c.below(STEPS / 2);
        let link_at = STEPS / 4 + c.below(STEPS / 2);
        let apps = w
            .addresses()
            .into_iter()
            .map(|a| (a, App::default()))
            .collect();
        Self {
            w,
            c,
            members: accounts.clone(),
            accounts,
            mallory,
            removal,
            unlink_at,
            link_at,
            unlinked: None,
            forged: BTreeSet::new(),
            stale_list: None,
            steps: 0,
            apps,
            backups: BTreeMap::new(),
            retired: BTreeSet::new(),
            generations: BTreeMap::new(),
            messages: BTreeMap::new(),
            lost: BTreeSet::new(),
            orphaned: BTreeSet::new(),
            asked: BTreeSet::new(),
            queue: Vec::new(),
            delivered: Vec::new(),
            next: 0,
            log: Vec::new(),
        }
    }

    fn account_name(&self, account: AccountKey) -> &'static str {
        let i = self.accounts.iter().position(|a| *a == account).unwrap();
        ["alice", "bob", "carol", "mallory"][i]
    }

    fn name(&self, d: DeviceAddress) -> String {
        format!("{}{}", &self.account_name(d.account)[..1], d.device.0)
    }

    /// A device of the app's (not the companion unlinked: that one is the server's).
    fn pick_device(&mut self) -> DeviceAddress {
        let mut all = self.w.addresses();
        all.retain(|d| Some(*d) != self.unlinked);
        all[self.c.below(all.len())]
    }

    /// Whether `d` is a device the server holds: Mallory's, or the companion unlinked.
    fn servers(&self, d: DeviceAddress) -> bool {
        d.account == self.mallory || Some(d) == self.unlinked
    }

    /// The relay takes an envelope that carries no message body (a retry request, a copy
    /// handed to the server's device) for `to`.
    fn enqueue(&mut self, to: DeviceAddress, bytes: Vec<u8>, msg: Option<u64>) {
        self.queue.push(Queued {
            to,
            bytes,
            held: 0,
            msg,
            carries: false,
        });
    }

    fn ship(&mut self, outbox: &Outbox, msg: Option<u64>) {
        // A pairwise envelope carries the body unless the body goes in the group envelope;
        // an answer's sender key comes before the resend that carries it.
        let envelopes = &outbox.envelopes;
        for (i, (to, bytes)) in envelopes.iter().enumerate() {
            let last = !envelopes[i + 1..].iter().any(|(t, _)| t == to);
            self.queue.push(Queued {
                to: *to,
                bytes: bytes.clone(),
                held: 0,
                msg,
                carries: outbox.group.is_none() && last,
            });
        }
        if let Some((bytes, recipients)) = &outbox.group {
            for to in recipients.iter() {
                self.queue.push(Queued {
                    to: *to,
                    bytes: bytes.clone(),
                    held: 0,
                    msg,
                    carries: true,
                });
            }
        }
    }

    /// `from` sends a new message, 1:1 to `to` or to the group.
    fn send(&mut self, from: DeviceAddress, to: Option<AccountKey>) {
        self.next += 1;
        let n = self.next;
        let body = format!("m{n}").into_bytes();
        let outbox = match to {
            Some(account) => self.w.send(from, account, &body),
            None => self.w.send_group(from, G, &body),
        };
        let line = match to {
            Some(a) => format!("{n}: {} -> {}", self.name(from), self.account_name(a)),
            None => format!("{n}: {} -> group", self.name(from)),
        };
        self.log.push(line);
        let send_id = outbox.send_id.expect("a message has a send id");
        self.apps.get_mut(&from).unwrap().sent.insert(send_id, body);
        let recipients: BTreeSet<_> = outbox.recipients().into_iter().collect();
        let given: BTreeSet<_> = outbox.envelopes.iter().map(|(to, _)| *to).collect();
        let generation = self.generations.entry(from).or_default();
        if to.is_none() && given == recipients {
            *generation += 1;
        }
        let generation = *generation;
        assert!(
            self.unlinked.is_none_or(|u| !recipients.contains(&u)),
            "message {n} goes to the companion unlinked\n{}",
            self.log.join("\n")
        );
        if to.is_none() && !self.members.contains(&self.mallory) {
            assert!(
                recipients.iter().all(|r| r.account != self.mallory),
                "message {n} goes to Mallory after her removal\n{}",
                self.log.join("\n")
            );
        }
        self.messages.insert(
            n,
            Message {
                from,
                to: recipients,
                group: to.is_none(),
                generation,
            },
        );
        self.ship(&outbox, Some(n));
    }

    /// The lists the relay serves `to`: every account's current one, but to the companion
    /// unlinked its account's list from before the unlink.
    fn lists(&mut self, to: DeviceAddress) -> Lists {
        let accounts = self.accounts.clone();
        Lists(
            accounts
                .iter()
                .map(|a| match &self.stale_list {
                    Some(list) if Some(to) == self.unlinked && *a == to.account => list.clone(),
                    _ => self.w.primary(a).device_list().signed().clone(),
                })
                .collect(),
        )
    }

    /// `to` receives `bytes` through the guide's loop; returns whether the relay may drop it
    /// (acknowledged) or must keep it.
    fn receive(
        &mut self,
        to: DeviceAddress,
        bytes: &[u8],
        msg: Option<u64>,
        carries: bool,
    ) -> bool {
        let now = self.w.now;
        let mut lists = self.lists(to);
        let app = self.apps[&to].clone();
        let mut device = self.w.devices.remove(&to).unwrap();
        if std::env::var("LIFE_DEBUG").is_ok() {
            let mut copy = Device::from_bytes(&device.to_bytes()).unwrap();
            if let Err(e) = copy.receive(now, bytes) {
                self.log.push(format!("    ({e:?})"));
            }
        }
        let got = driver::receive(&mut device, &mut self.w.rng, now, &mut lists, bytes, |id| {
            app.ids.contains(id)
        });
        self.w.devices.insert(to, device);
        self.w.persist(to);
        let (inbound, _) =
            got.unwrap_or_else(|e| panic!("{to:?}: driver failed: {e}\n{}", self.log.join("\n")));
        // Acknowledged having read it or asked for it: what a restore may forget. (A message
        // dropped is acknowledged too, but not counted: a genuine one dropped is a loss.)
        let handled = matches!(
            inbound,
            Inbound::Read(_) | Inbound::Duplicate(_) | Inbound::AskAgain { .. }
        );
        if let (true, true, Some(n)) = (handled, carries, msg) {
            self.apps.get_mut(&to).unwrap().acked.insert(n);
        }
        if let (Inbound::AskAgain { .. }, Some(n)) = (&inbound, msg) {
            self.asked.insert((to, n));
        }
        let later = &mut self.apps.get_mut(&to).unwrap().later;
        match inbound {
            Inbound::AskLater { .. } => later.insert(EnvelopeId::of(bytes)),
            _ => later.remove(&EnvelopeId::of(bytes)),
        };
        if let Some(n) = msg {
            let line = format!("  {} gets {n}: {}", self.name(to), outcome(&inbound));
            self.log.push(line);
        }
        match inbound {
            Inbound::Read(received) => {
                self.read(to, bytes, received);
                true
            }
            Inbound::Duplicate(_) | Inbound::Dropped(_) => true,
            Inbound::AskAgain {
                to: sender,
                request,
            } => {
                self.enqueue(sender, request, msg);
                let ask = Ask {
                    bytes: bytes.to_vec(),
                    reason: RetryReason::AuthenticationFailed,
                    msg,
                    age: 0,
                };
                let app = self.apps.get_mut(&to).unwrap();
                app.asks.insert(EnvelopeId::of(bytes), ask);
                true
            }
            Inbound::Hold { .. }
            | Inbound::AwaitList { .. }
            | Inbound::AwaitMembers { .. }
            | Inbound::AskLater { .. } => false,
            other => panic!("{other:?}"),
        }
    }

    fn read(&mut self, to: DeviceAddress, envelope: &[u8], received: Received) {
        let (from, body, resent) = match received {
            Received::Direct {
                from, body, resent, ..
            }
            | Received::OwnCopy {
                from, body, resent, ..
            }
            | Received::Group {
                from, body, resent, ..
            } => (from, body, resent),
            Received::RetryRequest(request) => {
                let Some(body) = self.apps[&to].sent.get(&request.send_id).cloned() else {
                    return; // its sends after the backup are forgotten: nothing to answer with
                };
                let answer = self
                    .w
                    .run(to, |d, rng, now| d.answer_retry(rng, now, &request, &body));
                let n = number(&body);
                let line = format!(
                    "{} answers {n} to {} ({:?} #{}): {:?}",
                    self.name(to),
                    self.name(request.from),
                    request.reason,
                    request.attempt,
                    answer.as_ref().err()
                );
                self.log.push(line);
                if let Ok(outbox) = answer {
                    self.ship(&outbox, Some(n));
                }
                return;
            }
            _ => return,
        };
        let n = number(&body);
        let m = &self.messages[&n];
        assert_eq!(from, m.from, "message {n} shown from another device");
        assert!(
            !self.forged.contains(&n),
            "{to:?} read message {n}, sent by the companion unlinked\n{}",
            self.log.join("\n")
        );
        assert!(
            m.to.contains(&to),
            "{to:?} read message {n}, not sent to it"
        );
        let app = self.apps.get_mut(&to).unwrap();
        assert!(
            app.shown.insert(n),
            "{to:?} showed message {n} twice\n{}",
            self.log.join("\n")
        );
        let id = resent.unwrap_or_else(|| EnvelopeId::of(envelope));
        app.ids.insert(id);
        app.asks.remove(&id);
        app.asks.remove(&EnvelopeId::of(envelope));
    }

    /// The relay delivers one envelope it holds (mostly the oldest few).
    fn deliver_one(&mut self) {
        if self.queue.is_empty() {
            return;
        }
        let at = if self.c.chance(70) {
            self.c.below(self.queue.len().min(3))
        } else {
            self.c.below(self.queue.len())
        };
        let q = self.queue.remove(at);
        self.delivered
            .push((q.to, q.bytes.clone(), q.msg, q.carries));
        if self.c.chance(5) {
            self.crash(&q);
            self.queue.push(q);
        } else if self.c.chance(5) {
            // A damaged copy first: the device asks for it, and may read the answer before
            // the genuine envelope, which the relay still holds.
            self.log.push("  (damaged)".into());
            let damaged = support::tampered(&q.bytes);
            self.receive(q.to, &damaged, q.msg, false);
            self.queue.push(q);
        } else if !self.receive(q.to, &q.bytes, q.msg, q.carries) {
            self.queue.push(q);
        }
    }

    /// The device reads `q`, and the app dies before it writes the unit: nothing was acted
    /// on, the envelope stays with the relay, and the device restarts from its records.
    fn crash(&mut self, q: &Queued) {
        let now = self.w.now;
        let mut lists = self.lists(q.to);
        let app = self.apps[&q.to].clone();
        let mut device = self.w.devices.remove(&q.to).unwrap();
        let _ = driver::receive(
            &mut device,
            &mut self.w.rng,
            now,
            &mut lists,
            &q.bytes,
            |id| app.ids.contains(id),
        );
        drop(device);
        self.log
            .push(format!("  {} crashes on {:?}", self.name(q.to), q.msg));
        self.w.restart(q.to);
    }

    fn replay(&mut self) {
        if self.delivered.is_empty() {
            return;
        }
        let (to, bytes, msg, carries) = self.delivered[self.c.below(self.delivered.len())].clone();
        self.log.push("  (replay)".into());
        self.receive(to, &bytes, msg, carries);
    }

    fn backup(&mut self, d: DeviceAddress) {
        let line = format!(
            "backup {} #{}",
            self.name(d),
            self.backups.get(&d).map_or(0, Vec::len)
        );
        self.log.push(line);
        let device = self.w.device(d).to_bytes().to_vec();
        let app = self.apps[&d].clone();
        let primary =
            (d.device == PRIMARY_DEVICE).then(|| self.w.primary(&d.account).to_bytes().to_vec());
        let generations = self.generations.get(&d).copied().unwrap_or(0);
        self.backups.entry(d).or_default().push(Backup {
            device,
            app,
            primary,
            generations,
        });
    }

    /// Restores `d` from one of its backups as an app does.
    fn restore(&mut self, d: DeviceAddress) {
        let Some(backups) = self.backups.get(&d) else {
            return;
        };
        let which = self.c.below(backups.len());
        let Backup {
            device: bytes,
            app,
            primary,
            generations,
        } = backups[which].clone();
        self.generations.insert(d, generations);
        let now = self.w.now;
        let line = format!(
            "restore {} from backup {which} of {}",
            self.name(d),
            backups.len()
        );
        self.log.push(line);
        // What the lost state acknowledged is gone from the relay, and the restored app does
        // not know of it.
        let current = &self.apps[&d];
        for n in current.shown.union(&current.acked) {
            if !app.shown.contains(n) && !app.acked.contains(n) {
                self.lost.insert((d, *n));
            }
        }
        for (n, m) in &self.messages {
            if m.from == d && !app.sent.values().any(|b| number(b) == *n) {
                self.orphaned.insert(*n);
            }
        }
        *self.w.device(d) = Device::restore_from_backup(&bytes, now).unwrap();
        self.apps.insert(d, app);
        self.w.persist(d);
        match primary {
            // The phone lost with its primary: both come back from the backup.
            Some(primary) if self.c.chance(50) => self.restore_primary(d.account, &primary),
            _ => {
                self.w.primary(&d.account).renew(now).unwrap();
            }
        }
        // The app fetches every list again: the backup's lists of its contacts may be older
        // than the ones it had (one from before an unlink among them).
        for account in self.accounts.clone() {
            self.w.publish(&account);
        }
        if self.members.contains(&d.account) {
            let members = self.members.clone();
            self.w.device(d).set_group_members(G, &members).unwrap();
            self.w.persist(d);
        }
    }

    /// `account`'s primary restored from a backup: it resyncs from the newest list the relay
    /// serves and signs a list of the phone alone. Its companions learn they are off the list;
    /// their apps link them again, as new devices.
    fn restore_primary(&mut self, account: AccountKey, backup: &[u8]) {
        let now = self.w.now;
        let newest = self.w.primary(&account).device_list().signed().clone();
        let mut primary = Primary::restore_from_backup(backup).unwrap();
        primary.resync(now, newest).unwrap();
        *self.w.primary(&account) = primary;
        self.log
            .push(format!("{}'s primary restored", self.account_name(account)));
        let companions: Vec<_> = self
            .w
            .devices_of(&account)
            .into_iter()
            .filter(|c| c.device != PRIMARY_DEVICE && Some(*c) != self.unlinked)
            .collect();
        for &c in &companions {
            self.log
                .push(format!("  {} off the list: linked again", self.name(c)));
            self.w.devices.remove(&c);
            self.w.stores.remove(&c);
            self.backups.remove(&c);
            self.apps.get_mut(&c).unwrap().asks.clear();
            self.queue.retain(|q| q.to != c);
            self.delivered.retain(|(to, ..)| *to != c);
            self.retired.insert(c);
        }
        self.w.publish(&account);
        for _ in companions {
            self.link(account);
        }
    }

    /// The other members' apps remove Mallory from the group. (Her own device is left as
    /// the server would keep it: with every sender key it got.)
    fn remove_mallory(&mut self) {
        self.log.push("mallory removed from the group".into());
        let mallory = self.mallory;
        self.members.retain(|a| *a != mallory);
        let members = self.members.clone();
        for d in self.w.addresses() {
            if d.account != mallory {
                self.w.device(d).set_group_members(G, &members).unwrap();
                self.w.persist(d);
            }
        }
    }

    /// Alice's phone unlinks her first companion (a stolen laptop) and publishes the list;
    /// every other device follows it. The companion is the server's now, which never shows
    /// it the new list: it goes on as it was.
    fn unlink(&mut self) {
        let alice = self.accounts[0];
        let Some(&a2) = self.w.devices_of(&alice).get(1) else {
            return;
        };
        self.log.push(format!("{} unlinked", self.name(a2)));
        let now = self.w.now;
        let before = self.w.stores[&a2].clone();
        self.stale_list = Some(self.w.primary(&alice).device_list().signed().clone());
        self.w.primary(&alice).unlink(now, a2.device).unwrap();
        self.w.publish(&alice);
        self.w.stores.insert(a2, before);
        self.w.restart(a2);
        self.unlinked = Some(a2);
    }

    /// The companion unlinked writes to another account or to the group, as if still linked.
    fn rogue_send(&mut self, from: DeviceAddress) {
        self.next += 1;
        let n = self.next;
        let body = format!("m{n}").into_bytes();
        let to = self.accounts[1 + self.c.below(self.accounts.len() - 1)];
        let group = self.c.chance(50);
        let sent = self.w.run(from, |d, rng, now| match group {
            true => d.send_group(rng, now, G, &body),
            false => d.send(rng, now, &to, &body),
        });
        let line = format!(
            "{n}: {} (unlinked) -> {}",
            self.name(from),
            match group {
                true => "group",
                false => self.account_name(to),
            }
        );
        self.log.push(format!("{line}: {:?}", sent.as_ref().err()));
        let Ok(outbox) = sent else {
            return;
        };
        let recipients = outbox.recipients().into_iter().collect();
        self.messages.insert(
            n,
            Message {
                from,
                to: recipients,
                group,
                generation: 0,
            },
        );
        self.forged.insert(n);
        self.ship(&outbox, Some(n));
    }

    /// `account`'s phone links a new companion, which follows every list and sets the group's
    /// members, as its app does after linking.
    fn link(&mut self, account: AccountKey) {
        let d = self.w.link(&account);
        self.log.push(format!("{} linked", self.name(d)));
        self.w.publish_all();
        self.apps.insert(d, App::default());
        let members = self.members.clone();
        self.w.device(d).set_group_members(G, &members).unwrap();
        self.w.persist(d);
    }

    /// The relay hands Mallory a copy of an envelope sent to someone else: her device reads
    /// it through the guide's loop (asking its sender for it, as the loop says), or asks its
    /// sender for it outright with any retry reason. Whatever she gets in answer she reads.
    fn eavesdrop(&mut self) {
        let mallory = self.mallory;
        let m = match self.unlinked {
            Some(u) if self.c.chance(50) => u,
            _ => self.w.devices_of(&mallory)[0],
        };
        if Some(m) == self.unlinked && self.c.chance(30) {
            return self.rogue_send(m);
        }
        // Mostly what is in flight now: the messages sent since her removal among them.
        let recent = if self.c.chance(80) { 12 } else { usize::MAX };
        let others: Vec<_> = self
            .delivered
            .iter()
            .rev()
            .filter(|(to, ..)| !self.servers(*to))
            .take(recent)
            .cloned()
            .collect();
        if others.is_empty() {
            return;
        }
        let (_, bytes, msg, _) = others[self.c.below(others.len())].clone();
        self.log
            .push(format!("  ({} gets a copy of {msg:?})", self.name(m)));
        if self.c.chance(50) {
            if !self.receive(m, &bytes, msg, false) {
                self.enqueue(m, bytes, msg);
            }
            return;
        }
        let reasons = [
            RetryReason::NoSession,
            RetryReason::AuthenticationFailed,
            RetryReason::SenderKeyMissing,
            RetryReason::RestoredFromBackup,
            RetryReason::Other(9),
        ];
        let reason = reasons[self.c.below(reasons.len())];
        if let Ok((sender, request)) = self.w.request_retry(m, &bytes, reason) {
            let line = format!("  {} asks {} ({reason:?})", self.name(m), self.name(sender));
            self.log.push(line);
            self.enqueue(sender, request, msg);
        }
    }

    /// Logs each pair whose sessions' confirmation changed (bit 7 of the sessions record's
    /// count, PROTOCOL.md 19.1), for reading a failure.
    fn trace_confirmation(
        &mut self,
        seen: &mut BTreeMap<(DeviceAddress, DeviceAddress), Option<bool>>,
    ) {
        for d in self.w.addresses() {
            for peer in self.w.addresses() {
                let mut key = vec![0x08];
                key.extend_from_slice(&peer.account.to_bytes());
                key.extend_from_slice(&peer.device.0.to_be_bytes());
                let state = self.w.stores[&d].0.get(&key).map(|v| v[0] & 0x80 != 0);
                if d == peer || seen.insert((d, peer), state) == Some(state) {
                    continue;
                }
                let line = format!(
                    "    [{}/{} {}]",
                    self.name(d),
                    self.name(peer),
                    match state {
                        None => "none",
                        Some(true) => "unconfirmed",
                        Some(false) => "confirmed",
                    }
                );
                self.log.push(line);
            }
        }
    }

    fn step(&mut self) {
        self.w.now = Timestamp(self.w.now.0 + 1_000);
        self.steps += 1;
        if self.steps == self.removal {
            self.remove_mallory();
        }
        if self.steps == self.unlink_at {
            self.unlink();
        }
        if self.steps == self.link_at {
            self.link(self.accounts[0]);
        }
        match self.c.below(100) {
            0..=24 => {
                let from = self.pick_device();
                let others: Vec<_> = self
                    .accounts
                    .iter()
                    .filter(|a| **a != from.account)
                    .copied()
                    .collect();
                let to = others[self.c.below(others.len())];
                self.send(from, Some(to));
            }
            25..=39 => {
                let from = self.pick_device();
                if self.members.contains(&from.account) {
                    self.send(from, None);
                }
            }
            40..=79 => self.deliver_one(),
            80..=84 => self.eavesdrop(),
            85..=89 => self.replay(),
            90..=95 => {
                let d = self.pick_device();
                self.backup(d);
            }
            _ => {
                let d = self.pick_device();
                self.restore(d);
            }
        }
    }

    /// The relay delivers everything, in order, round after round; a group message held for
    /// its sender key for `HOLD_ROUNDS` rounds is asked for again.
    fn settle(&mut self) {
        for _ in 0..SETTLE_ROUNDS {
            if self.queue.is_empty() && self.apps.values().all(|a| a.asks.is_empty()) {
                return;
            }
            self.w.now = Timestamp(self.w.now.0 + 1_000);
            let round = std::mem::take(&mut self.queue);
            for mut q in round {
                if self.receive(q.to, &q.bytes, q.msg, q.carries) {
                    continue;
                }
                if self.apps[&q.to].later.contains(&EnvelopeId::of(&q.bytes)) {
                    self.queue.push(q);
                    continue;
                }
                q.held += 1;
                if q.held < HOLD_ROUNDS {
                    self.queue.push(q);
                    continue;
                }
                self.ask_held(q);
            }
            self.ask_again();
        }
        panic!(
            "still in flight after settling: {} envelopes, asks {:?}\n{}",
            self.queue.len(),
            self.apps
                .iter()
                .map(|(d, a)| (
                    self.name(*d),
                    a.asks.values().map(|a| a.msg).collect::<Vec<_>>()
                ))
                .collect::<Vec<_>>(),
            self.log.join("\n")
        );
    }

    /// A group message held for its sender key for `HOLD_ROUNDS` rounds: the app asks as the
    /// guide says, with `driver::ask_again` (its store checked under either kind's id), and
    /// keeps it to ask again; a message it stores is a replay, acknowledged.
    fn ask_held(&mut self, q: Queued) {
        let (d, now) = (q.to, self.w.now);
        let app = &self.apps[&d];
        let mut device = self.w.devices.remove(&d).unwrap();
        let inbound = driver::ask_again(
            &mut device,
            &mut self.w.rng,
            now,
            &q.bytes,
            RetryReason::SenderKeyMissing,
            |id| app.ids.contains(id),
        );
        self.w.devices.insert(d, device);
        self.w.persist(d);
        let line = format!(
            "{} asks for held {:?}: {}",
            self.name(d),
            q.msg,
            outcome(&inbound)
        );
        self.log.push(line);
        match inbound {
            Inbound::AskAgain { to, request } => {
                if let Some(n) = q.msg {
                    self.asked.insert((d, n));
                }
                self.enqueue(to, request, q.msg);
                let ask = Ask {
                    bytes: q.bytes,
                    reason: RetryReason::SenderKeyMissing,
                    msg: q.msg,
                    age: 0,
                };
                let app = self.apps.get_mut(&d).unwrap();
                app.asks.insert(EnvelopeId::of(&ask.bytes), ask);
            }
            // A group still unconfirmed after the app's bound on kept envelopes: given up.
            Inbound::Duplicate(_) | Inbound::Dropped(_) | Inbound::AwaitMembers { .. } => {}
            // Kept, and asked for again at the next round.
            Inbound::AskLater { .. } => self.queue.push(q),
            other => panic!("{other:?}"),
        }
    }

    /// Each device asks again for what it asked for `ASK_AGAIN_ROUNDS` rounds ago and did
    /// not get (the same reason: the device turns a repeated `SenderKeyMissing` into
    /// `NoSession` itself).
    fn ask_again(&mut self) {
        for d in self.w.addresses() {
            let due: Vec<(EnvelopeId, Ask)> = self.apps[&d]
                .asks
                .iter()
                .filter(|(_, a)| a.age >= ASK_AGAIN_ROUNDS)
                .map(|(id, a)| (*id, a.clone()))
                .collect();
            for a in self.apps.get_mut(&d).unwrap().asks.values_mut() {
                a.age += 1;
            }
            for (id, ask) in due {
                // As the guide says: through `driver::ask_again`, the store checked.
                let (now, app) = (self.w.now, &self.apps[&d]);
                let mut device = self.w.devices.remove(&d).unwrap();
                let asked = driver::ask_again(
                    &mut device,
                    &mut self.w.rng,
                    now,
                    &ask.bytes,
                    ask.reason,
                    |id| app.ids.contains(id),
                );
                self.w.devices.insert(d, device);
                self.w.persist(d);
                match asked {
                    Inbound::AskAgain {
                        to: sender,
                        request,
                    } => {
                        if let Some(n) = ask.msg {
                            self.asked.insert((d, n));
                        }
                        let line = format!(
                            "{} asks {:?} for {:?} ({:?})",
                            self.name(d),
                            self.name(sender),
                            ask.msg,
                            ask.reason
                        );
                        self.log.push(line);
                        self.enqueue(sender, request, ask.msg);
                        self.apps
                            .get_mut(&d)
                            .unwrap()
                            .asks
                            .get_mut(&id)
                            .unwrap()
                            .age = 0;
                    }
                    // Kept as it is: asked again at the next round.
                    Inbound::AskLater { .. } => {}
                    other => {
                        let line = format!(
                            "{} asks no more for {:?}: {}",
                            self.name(d),
                            ask.msg,
                            outcome(&other)
                        );
                        self.log.push(line);
                        self.apps.get_mut(&d).unwrap().asks.remove(&id);
                    }
                }
            }
        }
    }

    /// Every device showed every message sent to it, but for those it lost with a restore
    /// and those its sender forgot sending.
    fn check_delivered(&self) {
        let mut missing = Vec::new();
        for (n, m) in &self.messages {
            for to in &m.to {
                // Asked for, and its sender cannot answer: it forgot sending it, or its key's
                // generation is four behind the sender's.
                let outrun = m.group
                    && self.generations.get(&m.from).copied().unwrap_or(0) >= m.generation + 4;
                let unanswerable =
                    (self.orphaned.contains(n) || outrun) && self.asked.contains(&(*to, *n));
                // Once Mallory is removed, she may be refused what she asks for, and her
                // group messages still in flight are dropped (she is no member).
                let removed = m.group
                    && !self.members.contains(&self.mallory)
                    && (to.account == self.mallory || m.from.account == self.mallory);
                // Likewise whatever was in flight to or from the companion unlinked, or a
                // companion off its restored primary's list.
                let unlinked = self.unlinked.is_some_and(|u| *to == u || m.from == u)
                    || self.retired.contains(to)
                    || self.retired.contains(&m.from);
                if !self.apps[to].shown.contains(n)
                    && !self.lost.contains(&(*to, *n))
                    && !unanswerable
                    && !removed
                    && !unlinked
                {
                    missing.push((*to, *n));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "never shown: {missing:?}, lost {:?}\n{}",
            self.lost,
            self.log.join("\n")
        );
    }

    /// Every device writes to every other account and to the group, and all of it is read.
    fn converge(&mut self) {
        let start = self.next;
        for from in self.w.addresses() {
            if Some(from) == self.unlinked {
                continue;
            }
            for to in self.accounts.clone() {
                if to == from.account {
                    continue;
                }
                self.send(from, Some(to));
            }
            if self.members.contains(&from.account) {
                self.send(from, None);
            }
        }
        self.settle();
        for (n, m) in self.messages.range(start + 1..) {
            for to in &m.to {
                assert!(
                    self.apps[to].shown.contains(n),
                    "{to:?} does not read message {n} from {:?} after settling\n{}",
                    m.from,
                    self.log.join("\n")
                );
            }
        }
    }
}

fn live(seed: u64) {
    let mut life = Life::new(seed);
    life.log.push(format!("seed {seed}"));
    let mut seen = BTreeMap::new();
    for _ in 0..STEPS {
        life.step();
        if std::env::var("LIFE_DEBUG").is_ok() {
            life.trace_confirmation(&mut seen);
        }
    }
    life.settle();
    life.check_delivered();
    life.converge();
    if std::env::var("LIFE_DUMP").is_ok() {
        eprintln!("{}", life.log.join("\n"));
    }
}

#[test]
fn devices_restored_from_backups_go_on_reading_and_lose_only_what_their_backup_forgot() {
    for &seed in SEEDS {
        live(seed);
    }
}

#[test]
#[ignore = "long: RATCHETRY_LIFE_SEEDS=N runs N seeds"]
fn many_lives() {
    let n: u64 = std::env::var("RATCHETRY_LIFE_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let first: u64 = std::env::var("RATCHETRY_LIFE_FIRST")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    for seed in first..first + n {
        live(seed);
    }
}

/// What seed 116 of `many_lives` found, as one sequence: a device keeps three sessions per
/// peer, and answering the peer's retries can push out one in which the peer still writes
/// (its pre-key messages, until it hears back). Such a message is refused as
/// `X3dh(Replayed)` (its base key is remembered, its session gone); the driver asks for it
/// again, as for a one-time prekey no longer held, and the answer is read.
#[test]
fn a_prekey_message_of_a_session_pushed_out_by_answers_is_asked_for_again() {
    let (mut w, [alice, bob], [a1, b1]) = World::phones::<2>("life pushed out");
    let first = w.send(a1, bob, b"first");
    w.deliver_ok(&first);
    // Alice has not heard back: her next message is a pre-key message of the same session.
    let second = w.send(a1, bob, b"second");
    let held = World::envelope_to(&second, b1);
    // Three of Bob's messages reach Alice damaged; each is asked for and answered on a new
    // session from the request's bundle, which pushes the first session out of Bob's three.
    for n in 0..3 {
        let o = w.send(b1, alice, format!("bob {n}").as_bytes());
        let damaged = support::tampered(&World::envelope_to(&o, a1));
        let answer = w.ask_again(a1, b1, &damaged, format!("bob {n}").as_bytes());
        w.deliver_ok(&answer);
    }
    let now = w.now;
    assert_eq!(
        w.device(b1).clone().receive(now, &held).err(),
        Some(ratchetry::Error::X3dh(ratchetry::X3dhError::Replayed))
    );
    let Inbound::AskAgain { to, request } = w.step(b1, &held) else {
        panic!("the driver dropped a message it can ask for");
    };
    assert_eq!(to, a1);
    let Ok(Received::RetryRequest(req)) = w.receive(a1, &request) else {
        panic!("alice does not take the request");
    };
    let answer = w.answer(a1, &req, b"second");
    let read = w.deliver_ok(&answer);
    assert!(
        read.iter()
            .any(|(_, r)| support::body(r) == Some(&b"second"[..]))
    );
}
