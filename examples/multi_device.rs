//! The main demo: accounts with linked devices talking through an in-memory relay.
//!
//! Alice has a phone and a laptop; Bob a phone and two companions. Bob's phone goes offline
//! and his companions keep sending and receiving. Alice links a tablet, Bob unlinks one
//! companion, and a 50-member group (members with one to three devices each) exchanges
//! messages. Every step prints how many devices it touched. Devices persist through their
//! records, as an app writes them after every operation: the demo counts the bytes.
//!
//! Run with `cargo run --example multi_device`.

use std::collections::{BTreeMap, VecDeque};

use getrandom::{SysRng, rand_core::UnwrapErr};
use ratchetry::calls::{Call, CallConfig, CallKind};
use ratchetry::devices::{
    AccountKey, DeviceAddress, DeviceId, LinkRequest, ListLimits, Primary, PrimaryPolicy,
    SafetyNumber, complete_link,
};
use ratchetry::fanout::{Device, DeviceConfig, Event, Outbox, Outgoing, Received};
use ratchetry::group::GroupId;
use ratchetry::history::{HistoryOpener, HistorySealer};
use ratchetry::{IdentityKeyPair, PreKeyBundle, Timestamp};

type Rng = UnwrapErr<SysRng>;

/// The untrusted server: queues envelopes per device, serves device lists and prekey bundles.
#[derive(Default)]
struct Relay {
    queues: BTreeMap<DeviceAddress, VecDeque<Vec<u8>>>,
    bundles: BTreeMap<DeviceAddress, PreKeyBundle>,
    delivered: usize,
    /// Bytes and records the devices wrote (their apps' databases).
    persisted: (usize, usize),
}

impl Relay {
    /// Writes a device's changes, as its app would after each operation (here: counted).
    fn persist(&mut self, rng: &mut Rng, d: &mut Device) {
        let unit = d.take_changes(rng);
        self.persisted.0 += unit.byte_len();
        self.persisted.1 += unit.records().len();
    }
}

struct User {
    name: String,
    primary: Primary,
    devices: Vec<Device>,
    offline: Vec<DeviceId>,
}

impl User {
    fn key(&self) -> AccountKey {
        self.primary.account()
    }

    fn device(&mut self, id: u32) -> &mut Device {
        let Some(d) = self
            .devices
            .iter_mut()
            .find(|d| d.address().device == DeviceId(id))
        else {
            panic!("{} has no device {id}", self.name)
        };
        d
    }
}

struct World {
    rng: Rng,
    now: Timestamp,
    relay: Relay,
    users: Vec<User>,
}

impl World {
    fn new_user(&mut self, name: &str, companions: usize) -> usize {
        let rng = &mut self.rng;
        let phone = IdentityKeyPair::generate(rng);
        let primary = Primary::new(rng, &phone, self.now, PrimaryPolicy::default());
        let list = primary.device_list().clone();
        let (device, _upload) = Device::new(
            rng,
            self.now,
            phone,
            DeviceId(1),
            list,
            20,
            DeviceConfig::default(),
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        self.relay
            .bundles
            .insert(device.address(), device.bundle(None, None));
        self.users.push(User {
            name: name.into(),
            primary,
            devices: vec![device],
            offline: Vec::new(),
        });
        let u = self.users.len() - 1;
        for _ in 0..companions {
            self.link(u);
        }
        u
    }

    /// The primary links a new companion: invitation (QR), request, approval, confirmation.
    fn link(&mut self, u: usize) -> DeviceId {
        let rng = &mut self.rng;
        let user = &mut self.users[u];
        let identity = IdentityKeyPair::generate(rng);
        let invitation = user
            .primary
            .invite(rng, self.now)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let request = LinkRequest::new(&identity, &invitation);
        let approval = user
            .primary
            .approve(self.now, &request)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let limits = ListLimits::default();
        let (list, confirmation) = complete_link(&identity, &invitation, &approval, &limits)
            .unwrap_or_else(|e| panic!("{e:?}"));
        user.primary
            .confirm(&confirmation)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let (device, _upload) = Device::new(
            rng,
            self.now,
            identity,
            approval.device,
            list,
            20,
            DeviceConfig::default(),
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        self.relay
            .bundles
            .insert(device.address(), device.bundle(None, None));
        user.devices.push(device);
        self.publish_list(u);
        // The new companion learns the contacts' lists, as an app's contact sync would do.
        let contacts: Vec<usize> = (0..self.users.len())
            .filter(|&c| {
                c != u
                    && self.users[u].devices[0]
                        .device_list(&self.users[c].key())
                        .is_some()
            })
            .collect();
        for c in contacts {
            let (account, list) = (
                self.users[c].key(),
                self.users[c].primary.device_list().signed().clone(),
            );
            if let Some(d) = self.users[u].devices.last_mut() {
                d.update_device_list(self.now, &account, list)
                    .unwrap_or_else(|e| panic!("{e:?}"));
            }
        }
        approval.device
    }

    /// Pushes an account's current list to every device that follows it (its own devices and
    /// every other user's, as an app would after a server notification). Returns the events.
    fn publish_list(&mut self, u: usize) -> Vec<Event> {
        let account = self.users[u].key();
        let list = self.users[u].primary.device_list().signed().clone();
        let mut events = Vec::new();
        for user in &mut self.users {
            for d in &mut user.devices {
                let follows = d.address().account == account || d.device_list(&account).is_some();
                if follows {
                    let e = d.update_device_list(self.now, &account, list.clone());
                    events.extend(e.unwrap_or_default());
                }
            }
        }
        events
    }

    /// Makes every device of `a` know `b`'s list and vice versa.
    fn introduce(&mut self, a: usize, b: usize) {
        for (x, y) in [(a, b), (b, a)] {
            let account = self.users[y].key();
            let list = self.users[y].primary.device_list().signed().clone();
            for d in &mut self.users[x].devices {
                d.update_device_list(self.now, &account, list.clone())
                    .unwrap_or_else(|e| panic!("{e:?}"));
            }
        }
    }

    fn ship(&mut self, outbox: Outbox) -> (usize, usize) {
        let pairwise = outbox.envelopes.len();
        for (to, envelope) in outbox.envelopes {
            self.relay.queues.entry(to).or_default().push_back(envelope);
        }
        let mut fanout = 0;
        if let Some((envelope, recipients)) = outbox.group {
            fanout = recipients.len();
            for &to in recipients.iter() {
                self.relay
                    .queues
                    .entry(to)
                    .or_default()
                    .push_back(envelope.clone());
            }
        }
        (pairwise, fanout)
    }

    /// Sends, fetching prekey bundles from the relay when the device asks for them.
    fn send(&mut self, u: usize, device: u32, to: usize, text: &str) {
        let to_key = self.users[to].key();
        let outbox = self.with_bundles(u, device, |d, rng, now| {
            d.send(rng, now, &to_key, text.as_bytes())
        });
        let (n, _) = self.ship(outbox);
        println!(
            "  {}#{} -> {}: {:?} ({} envelopes: every device of {} and {}'s other devices)",
            self.users[u].name,
            device,
            self.users[to].name,
            text,
            n,
            self.users[to].name,
            self.users[u].name
        );
    }

    fn send_group(&mut self, u: usize, device: u32, group: GroupId, text: &str) {
        let outbox = self.with_bundles(u, device, |d, rng, now| {
            d.send_group(rng, now, group, text.as_bytes())
        });
        let (pairwise, fanout) = self.ship(outbox);
        println!(
            "  {}#{} -> group: {:?} (1 group message for {} devices, {} sender-key distributions)",
            self.users[u].name, device, text, fanout, pairwise
        );
    }

    fn with_bundles(
        &mut self,
        u: usize,
        device: u32,
        mut op: impl FnMut(&mut Device, &mut Rng, Timestamp) -> ratchetry::Result<Outgoing>,
    ) -> Outbox {
        let lists: BTreeMap<AccountKey, _> = self
            .users
            .iter()
            .map(|u| (u.key(), u.primary.device_list().signed().clone()))
            .collect();
        let (rng, now, relay) = (&mut self.rng, self.now, &mut self.relay);
        let d = self.users[u].device(device);
        let outbox = loop {
            match op(d, rng, now).unwrap_or_else(|e| panic!("send failed: {e}")) {
                Outgoing::Ready(outbox) => break outbox,
                Outgoing::NeedBundles(missing) => {
                    let bundles: Vec<_> = missing
                        .iter()
                        .map(|a| (*a, relay.bundles[a].clone()))
                        .collect();
                    d.start_sessions(rng, now, &bundles)
                        .unwrap_or_else(|e| panic!("{e:?}"));
                }
                Outgoing::NeedDeviceLists(accounts) => {
                    for a in accounts {
                        d.update_device_list(now, &a, lists[&a].clone())
                            .unwrap_or_else(|e| panic!("{e:?}"));
                    }
                }
            }
        };
        relay.persist(rng, d);
        outbox
    }

    /// Delivers queued envelopes to every online device; returns how many were read.
    fn pump(&mut self, verbose: bool) -> usize {
        let mut read = 0;
        let names: BTreeMap<AccountKey, String> = self
            .users
            .iter()
            .map(|u| (u.key(), u.name.clone()))
            .collect();
        for user in &mut self.users {
            for d in &mut user.devices {
                let addr = d.address();
                if user.offline.contains(&addr.device) {
                    continue;
                }
                let Some(queue) = self.relay.queues.get_mut(&addr) else {
                    continue;
                };
                let mut retry = VecDeque::new();
                while let Some(envelope) = queue.pop_front() {
                    match d.receive(self.now, &envelope) {
                        Ok(received) => {
                            let unit = d.take_changes(&mut self.rng);
                            self.relay.persisted.0 += unit.byte_len();
                            self.relay.persisted.1 += unit.records().len();
                            read += 1;
                            if verbose {
                                println!(
                                    "    {}#{} {}",
                                    user.name,
                                    addr.device.0,
                                    describe(&received, &names)
                                );
                            }
                        }
                        // A group message that overtook its sender key: try again later.
                        Err(ratchetry::Error::Fanout(
                            ratchetry::FanoutError::SenderKeyMissing { .. },
                        )) => retry.push_back(envelope),
                        Err(e) => println!(
                            "    {}#{} refused an envelope: {e}",
                            user.name, addr.device.0
                        ),
                    }
                }
                *queue = retry;
            }
        }
        self.relay.delivered += read;
        read
    }
}

fn describe(r: &Received, names: &BTreeMap<AccountKey, String>) -> String {
    let who = |a: &DeviceAddress| format!("{}#{}", names[&a.account], a.device.0);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match r {
        Received::Direct { from, body, .. } => {
            format!("reads {:?} from {}", text(body), who(from))
        }
        Received::OwnCopy {
            from,
            sent_to,
            body,
            ..
        } => {
            format!(
                "shows own copy {:?} (sent by {} to {})",
                text(body),
                who(from),
                names[sent_to]
            )
        }
        Received::Group { from, body, .. } => {
            format!("reads group {:?} from {}", text(body), who(from))
        }
        Received::SenderKey { from, key_id, .. } => {
            format!("got {}'s sender key #{}", who(from), key_id.0)
        }
        Received::Withheld { from, .. } => format!("{} withholds its key", who(from)),
        Received::CallKey { from, message } => {
            format!("got call key epoch {} from {}", message.epoch(), who(from))
        }
        Received::HistoryOffer {
            from,
            offer,
            groups,
        } => {
            format!(
                "got a history offer ({} bytes, {} groups joined) from {}",
                offer.total_len(),
                groups.len(),
                who(from)
            )
        }
        other => format!("{other:?}"),
    }
}

fn main() {
    let mut w = World {
        rng: UnwrapErr(SysRng),
        now: Timestamp(1_790_000_000_000),
        relay: Relay::default(),
        users: Vec::new(),
    };

    println!("1. Accounts");
    let alice = w.new_user("alice", 1);
    let bob = w.new_user("bob", 2);
    w.introduce(alice, bob);
    for u in [alice, bob] {
        println!(
            "  {}: {} devices in her/his signed list",
            w.users[u].name,
            w.users[u].primary.device_list().entries().len()
        );
    }
    let sn = SafetyNumber::new(&w.users[alice].key(), &w.users[bob].key());
    println!(
        "  safety number alice/bob:\n    {}",
        sn.to_string().replace('\n', "\n    ")
    );

    println!("\n2. 1:1 chat: every message goes to every device, own copies included");
    w.send(alice, 1, bob, "Hi Bob! Lunch?");
    let n = w.pump(true);
    println!("  -> {n} envelopes read");
    w.send(bob, 2, alice, "Sure, 12:30 (from my laptop)");
    let n = w.pump(true);
    println!("  -> {n} envelopes read");

    println!("\n3. Bob's phone goes offline; his companions keep working");
    w.users[bob].offline.push(DeviceId(1));
    w.send(alice, 2, bob, "Running 5 min late");
    w.send(bob, 3, alice, "No problem (from my tablet)");
    let n = w.pump(true);
    println!(
        "  -> {n} envelopes read; {} waiting for Bob's phone",
        w.relay.queues[&DeviceAddress {
            account: w.users[bob].key(),
            device: DeviceId(1)
        }]
            .len()
    );
    w.users[bob].offline.clear();
    let n = w.pump(true);
    println!("  Bob's phone back online: {n} envelopes caught up");

    println!("\n4. Alice links a tablet; Bob unlinks his laptop");
    let tablet = w.link(alice);
    println!(
        "  alice linked device #{}: her list is now version {} with {} devices",
        tablet.0,
        w.users[alice].primary.device_list().version(),
        w.users[alice].primary.device_list().entries().len()
    );
    let now = w.now;
    w.users[bob]
        .primary
        .unlink(now, DeviceId(2))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let events = w.publish_list(bob);
    let removed = events
        .iter()
        .filter(|e| matches!(e, Event::DeviceRemoved(_)))
        .count();
    println!(
        "  bob unlinked #2: {removed} devices saw DeviceRemoved(bob#2) and dropped their sessions"
    );
    w.users[bob]
        .devices
        .retain(|d| d.address().device != DeviceId(2));
    w.send(bob, 1, alice, "Laptop's gone, say hi to your tablet");
    let n = w.pump(true);
    println!("  -> {n} envelopes read (alice's tablet included, bob's old laptop excluded)");

    println!("\n5. A 50-member group");
    let room = GroupId([0x5a; 32]);
    let mut members = vec![bob];
    for i in 0..48 {
        members.push(w.new_user(&format!("m{i:02}"), i % 3));
    }
    let everyone: Vec<usize> = std::iter::once(alice)
        .chain(members.iter().copied())
        .collect();
    for (i, &a) in everyone.iter().enumerate() {
        for &b in &everyone[i + 1..] {
            if a != alice || b != bob {
                w.introduce(a, b);
            }
        }
    }
    let devices: usize = everyone.iter().map(|&u| w.users[u].devices.len()).sum();
    println!("  50 members, {devices} devices");
    let keys = |w: &World, except: usize| -> Vec<AccountKey> {
        everyone
            .iter()
            .filter(|&&u| u != except)
            .map(|&u| w.users[u].key())
            .collect()
    };
    // Every member's devices learn the group's members (the app's group state).
    for &u in &everyone {
        let view = keys(&w, u);
        for d in &mut w.users[u].devices {
            d.set_group_members(room, &view)
                .unwrap_or_else(|e| panic!("{e:?}"));
        }
    }
    w.send_group(alice, 1, room, "Welcome to the room!");
    let n = w.pump(false);
    println!("  -> {n} envelopes read");
    w.send_group(alice, 1, room, "Second message: no key distribution needed");
    let n = w.pump(false);
    println!("  -> {n} envelopes read");
    let m = members[7];
    w.send_group(m, 1, room, "Hello from a member");
    let n = w.pump(false);
    println!("  -> {n} envelopes read");
    w.send_group(bob, 3, room, "Bob's tablet says hi");
    let n = w.pump(false);
    println!("  -> {n} envelopes read");

    println!("\n6. History sync to a freshly linked companion");
    let desktop = w.link(alice);
    let history: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut sealer = HistorySealer::new(&mut w.rng);
    let mut chunks = sealer.push(&history);
    let (last, offer) = sealer.finish();
    chunks.extend(last);
    let to = DeviceAddress {
        account: w.users[alice].key(),
        device: desktop,
    };
    let outbox = w.with_bundles(alice, 1, |d, rng, now| {
        d.send_history_offer(rng, now, to, &offer)
    });
    w.ship(outbox);
    println!(
        "  alice#1 sealed {} bytes of history into {} chunks; the offer goes to alice#{} pairwise",
        history.len(),
        chunks.len(),
        desktop.0
    );
    let now = w.now;
    let new_device = w.users[alice].device(desktop.0);
    let envelope = w
        .relay
        .queues
        .get_mut(&to)
        .and_then(|q| q.pop_front())
        .unwrap_or_default();
    let Ok(Received::HistoryOffer { offer, .. }) = new_device.receive(now, &envelope) else {
        panic!("no history offer")
    };
    let mut opener = HistoryOpener::new(&offer);
    let mut restored = 0usize;
    for chunk in &chunks {
        restored += opener.push(chunk).unwrap_or_else(|e| panic!("{e:?}")).len();
    }
    opener.finish().unwrap_or_else(|e| panic!("{e:?}"));
    println!(
        "  alice#{} opened all {} chunks: {restored} bytes, length and digest verified",
        desktop.0,
        chunks.len()
    );

    println!("\n7. A group call");
    let config = CallConfig::default();
    let participants: Vec<DeviceAddress> = everyone
        .iter()
        .take(5)
        .map(|&u| w.users[u].devices[0].address())
        .collect();
    let manager = participants[0];
    let mut call = Call::start(&mut w.rng, CallKind::Group, manager, &participants, &config)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let message = call.key_message().clone();
    let outbox = w.with_bundles(alice, 1, |d, rng, now| {
        d.send_call_key(rng, now, &participants, &message)
    });
    let (n, _) = w.ship(outbox);
    println!(
        "  alice#1 starts a call with {} participants: epoch 0 key to {n} devices",
        participants.len()
    );
    w.pump(true);
    let joiner = w.users[members[10]].devices[0].address();
    let epoch1 = call
        .join(&mut w.rng, joiner, &config)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let in_call = call.participants().to_vec();
    let outbox = w.with_bundles(alice, 1, |d, rng, now| {
        d.send_call_key(rng, now, &in_call, &epoch1)
    });
    let (n, _) = w.ship(outbox);
    println!(
        "  {} joins: epoch 1, a secret mixed with fresh randomness (the joiner cannot derive epoch 0), to {n} devices",
        w.users[members[10]].name
    );
    w.pump(false);
    let leaver = participants[1];
    let epoch2 = call
        .remove(&mut w.rng, &leaver)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let remaining = call.participants().to_vec();
    let outbox = w.with_bundles(alice, 1, |d, rng, now| {
        d.send_call_key(rng, now, &remaining, &epoch2)
    });
    let (n, _) = w.ship(outbox);
    println!("  a participant leaves: epoch 2, a fresh secret, to the remaining {n} devices");
    w.pump(false);
    let keys = call
        .srtp_keys(&participants[0])
        .unwrap_or_else(|e| panic!("{e:?}"));
    println!(
        "  alice#1 sends media under a {}-byte SRTP master key and {}-byte salt (AEAD_AES_256_GCM)",
        keys.master_key().len(),
        keys.master_salt().len()
    );

    println!(
        "\nDone: {} envelopes delivered and read in total; the devices wrote {} records ({} bytes).",
        w.relay.delivered, w.relay.persisted.1, w.relay.persisted.0
    );
}
