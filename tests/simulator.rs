//! A deterministic network simulation: five accounts (twelve devices, primaries and
//! companions) exchange 1:1 and group traffic through an adversarial relay that drops,
//! reorders, duplicates, delays, truncates, flips bits, replays and forges envelopes, and takes
//! devices offline. Devices persist only through their records (one unit per operation, as an
//! app writes them in one transaction), crash between units, and restart from their records.
//!
//! Invariants, checked after every step:
//! - a genuine envelope that is read, is read once, on the device it was meant for, with the
//!   plaintext that was sent;
//! - every corrupted, truncated, forged or replayed envelope is refused with a typed error and
//!   leaves the device byte-identical, with nothing to persist;
//! - a device that crashed before writing an operation's unit reloads exactly its last written
//!   state and reads the redelivered envelope as if nothing happened; one that crashed after
//!   writing it but before acknowledging refuses the redelivery as a duplicate;
//! - a device reloaded from its records equals the device in memory;
//! - after losses, later genuine 1:1 messages still read.
//!
//! CI runs the seeds in `SEEDS`; `RATCHETRY_SIM_SEEDS=1000 cargo test --release --test
//! simulator -- --ignored many_seeds` runs more.

use std::collections::{BTreeMap, BTreeSet};

use rand_core::Rng;
use ratchetry::devices::{
    AccountKey, DeviceAddress, LinkRequest, ListLimits, Primary, PrimaryPolicy, complete_link,
};
use ratchetry::fanout::{Device, DeviceConfig, Outgoing, Received, RetryReason, StateChanges};
use ratchetry::group::GroupId;
use ratchetry::testing::SeededRng;
use ratchetry::{DeviceError, Error, FanoutError, IdentityKeyPair, Timestamp};

const SEEDS: &[u64] = &[1, 2, 3, 4, 5, 6, 7, 8];
const STEPS: usize = 400;
const ROOM: GroupId = GroupId([0x77; 32]);

struct Queued {
    to: DeviceAddress,
    bytes: Vec<u8>,
    /// The message id it carries, if it is a genuine message body (not a key distribution).
    id: Option<u64>,
}

struct Sim {
    rng: SeededRng,
    now: Timestamp,
    accounts: Vec<(Primary, Vec<AccountKey>)>,
    devices: BTreeMap<DeviceAddress, Device>,
    /// Each device's stored records (the contract: write every operation's unit before acting
    /// on its output).
    stores: BTreeMap<DeviceAddress, BTreeMap<Vec<u8>, Vec<u8>>>,
    offline: BTreeSet<DeviceAddress>,
    queue: Vec<Queued>,
    delivered_log: Vec<(DeviceAddress, Vec<u8>)>,
    read: BTreeSet<(DeviceAddress, u64)>,
    sent: BTreeMap<u64, Vec<u8>>,
    next_id: u64,
    stats: BTreeMap<&'static str, usize>,
}

impl Sim {
    fn new(seed: u64) -> Self {
        let mut rng = SeededRng::new(ratchetry_seed(seed));
        let now = Timestamp(1_790_000_000_000);
        let config = DeviceConfig::default();
        let mut accounts = Vec::new();
        let mut devices = BTreeMap::new();
        for companions in [1usize, 2, 0, 3, 1] {
            let phone = IdentityKeyPair::generate(&mut rng);
            let mut primary = Primary::new(&mut rng, &phone, now, PrimaryPolicy::default());
            let mut ids = vec![(phone, ratchetry::devices::PRIMARY_DEVICE)];
            for _ in 0..companions {
                let id = IdentityKeyPair::generate(&mut rng);
                let inv = primary.invite(&mut rng, now).unwrap();
                let approval = primary.approve(now, &LinkRequest::new(&id, &inv)).unwrap();
                complete_link(&id, &inv, &approval, &ListLimits::default()).unwrap();
                ids.push((id, approval.device));
            }
            let list = primary.device_list().clone();
            for (id, device) in ids {
                let (d, _) =
                    Device::new(&mut rng, now, id, device, list.clone(), 50, config).unwrap();
                devices.insert(d.address(), d);
            }
            accounts.push((primary, Vec::new()));
        }
        let lists: Vec<_> = accounts
            .iter()
            .map(|(p, _)| (p.account(), p.device_list().signed().clone()))
            .collect();
        let members: Vec<AccountKey> = lists.iter().map(|(a, _)| *a).collect();
        let mut stores = BTreeMap::new();
        for d in devices.values_mut() {
            for (account, list) in &lists {
                d.update_device_list(now, account, list.clone()).unwrap();
            }
            d.set_group_members(ROOM, &members).unwrap();
            let mut store = BTreeMap::new();
            apply(&mut store, &d.take_changes(&mut rng));
            stores.insert(d.address(), store);
        }
        Sim {
            rng,
            now,
            accounts,
            devices,
            stores,
            offline: BTreeSet::new(),
            queue: Vec::new(),
            delivered_log: Vec::new(),
            read: BTreeSet::new(),
            sent: BTreeMap::new(),
            next_id: 0,
            stats: BTreeMap::new(),
        }
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.rng.next_u32() as usize) % items.len()]
    }

    fn chance(&mut self, percent: u32) -> bool {
        self.rng.next_u32() % 100 < percent
    }

    fn count(&mut self, what: &'static str) {
        *self.stats.entry(what).or_default() += 1;
    }

    fn addresses(&self) -> Vec<DeviceAddress> {
        self.devices.keys().copied().collect()
    }

    /// Writes a device's unit of changes to its store.
    fn persist(&mut self, a: DeviceAddress) {
        let unit = self
            .devices
            .get_mut(&a)
            .unwrap()
            .take_changes(&mut self.rng);
        apply(self.stores.get_mut(&a).unwrap(), &unit);
    }

    /// The device as its stored records rebuild it.
    fn reload(&self, a: DeviceAddress) -> Device {
        Device::from_records(
            self.stores[&a]
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_slice())),
        )
        .unwrap()
    }

    fn bundles_for(
        &self,
        missing: &[DeviceAddress],
    ) -> Vec<(DeviceAddress, ratchetry::PreKeyBundle)> {
        missing
            .iter()
            .map(|a| (*a, self.devices[a].bundle(None, None)))
            .collect()
    }

    fn send(&mut self, group: bool) {
        let online: Vec<_> = self
            .addresses()
            .into_iter()
            .filter(|a| !self.offline.contains(a))
            .collect();
        if online.is_empty() {
            return;
        }
        let from = self.pick(&online);
        let accounts: Vec<AccountKey> = self.accounts.iter().map(|(p, _)| p.account()).collect();
        let to = self.pick(&accounts);
        let id = self.next_id;
        self.next_id += 1;
        let body = format!("message {id}").into_bytes();
        let now = self.now;
        let attempt = |d: &mut Device, rng: &mut SeededRng| {
            if group {
                d.send_group(rng, now, ROOM, &body)
            } else {
                d.send(rng, now, &to, &body)
            }
        };
        let mut device = self.devices.remove(&from).unwrap();
        let outbox = loop {
            match attempt(&mut device, &mut self.rng).unwrap() {
                Outgoing::Ready(o) => break o,
                Outgoing::NeedBundles(missing) => {
                    let bundles = self.bundles_for(&missing);
                    device.start_sessions(&mut self.rng, now, &bundles).unwrap();
                }
                Outgoing::NeedDeviceLists(m) => panic!("every list is held: {m:?}"),
            }
        };
        self.devices.insert(from, device);
        self.persist(from);
        self.sent.insert(id, body);
        for (to, bytes) in outbox.envelopes {
            self.queue.push(Queued {
                to,
                bytes,
                id: (!group).then_some(id),
            });
        }
        if let Some((bytes, recipients)) = outbox.group {
            for &to in recipients.iter() {
                self.queue.push(Queued {
                    to,
                    bytes: bytes.clone(),
                    id: Some(id),
                });
            }
        }
        self.count(if group { "group sends" } else { "direct sends" });
    }

    /// Delivers one queued envelope, possibly tampered with; checks the invariants.
    fn deliver(&mut self) {
        let ready: Vec<usize> = (0..self.queue.len())
            .filter(|&i| !self.offline.contains(&self.queue[i].to))
            .collect();
        if ready.is_empty() {
            return;
        }
        let i = self.pick(&ready);
        let roll = self.rng.next_u32() % 100;
        match roll {
            0..=7 => {
                self.queue.swap_remove(i);
                self.count("dropped");
            }
            8..=15 => self.adversarial(i),
            16..=18 => {
                // Crash after decrypting but before writing the unit: the device reloads its
                // last written state and the envelope (not acknowledged) stays queued.
                let to = self.queue[i].to;
                let before = self.devices[&to].to_bytes();
                let device = self.devices.get_mut(&to).unwrap();
                let _ = device.receive(self.now, &self.queue[i].bytes);
                drop(device.take_changes(&mut self.rng));
                let restored = self.reload(to);
                assert_eq!(*restored.to_bytes(), *before, "records lost a unit");
                self.devices.insert(to, restored);
                self.count("crashes before persist");
            }
            19 => {
                // Crash after writing the unit but before acknowledging: the redelivery is
                // refused as a duplicate, and nothing changes.
                let q = self.queue[i].to;
                let bytes = self.queue[i].bytes.clone();
                let device = self.devices.get_mut(&q).unwrap();
                if device.receive(self.now, &bytes).is_ok() {
                    self.persist(q);
                    let restored = self.reload(q);
                    let device = self.devices.get_mut(&q).unwrap();
                    assert_eq!(*restored.to_bytes(), *device.to_bytes());
                    let again = restored.clone().receive(self.now, &bytes).err();
                    assert!(
                        matches!(again, Some(Error::Fanout(FanoutError::Duplicate { .. }))),
                        "{again:?}"
                    );
                    let queued = self.queue.swap_remove(i);
                    if let Some(id) = queued.id {
                        self.read.insert((q, id));
                    }
                    self.delivered_log.push((q, bytes));
                    self.count("crashes after persist");
                }
            }
            _ => {
                let q = self.queue.swap_remove(i);
                self.genuine(q);
            }
        }
    }

    fn genuine(&mut self, q: Queued) {
        let device = self.devices.get_mut(&q.to).unwrap();
        let result = device.receive(self.now, &q.bytes);
        if result.is_ok() {
            self.persist(q.to);
        } else {
            assert!(!device.has_changes(), "a refusal left changes");
        }
        match result {
            Ok(received) => {
                let body = match &received {
                    Received::Direct { body, .. }
                    | Received::OwnCopy { body, .. }
                    | Received::Group { body, .. } => Some(body.clone()),
                    _ => None,
                };
                if let (Some(body), Some(id)) = (body, q.id) {
                    assert_eq!(body, self.sent[&id], "wrong plaintext");
                    assert!(
                        self.read.insert((q.to, id)),
                        "message {id} read twice on {:?}",
                        q.to
                    );
                    self.count("read");
                } else {
                    self.count("keys received");
                }
                self.delivered_log.push((q.to, q.bytes));
            }
            Err(Error::Fanout(FanoutError::SenderKeyMissing { .. })) => {
                // Overtook its key, or the key's envelope was dropped: typed, state unchanged.
                // Half the time the device waits for the key; otherwise it asks for a retry.
                self.count("sender key missing");
                if self.chance(50) {
                    self.queue.push(q);
                } else {
                    self.retry(q);
                }
            }
            Err(e) => panic!("genuine envelope refused on {:?}: {e}", q.to),
        }
    }

    /// The receiving device asks the sender to resend; the sender answers from the plaintext
    /// its app stored, on a fresh session; the resend must read as that group message.
    fn retry(&mut self, q: Queued) {
        let Some(id) = q.id else { return };
        let now = self.now;
        let mut asker = self.devices.remove(&q.to).unwrap();
        let (sender_addr, request) = asker
            .request_retry(&mut self.rng, now, &q.bytes, RetryReason::SenderKeyMissing)
            .unwrap();
        self.devices.insert(q.to, asker);
        self.persist(q.to);
        let mut sender = self.devices.remove(&sender_addr).unwrap();
        let Received::RetryRequest(req) = sender.receive(now, &request).unwrap() else {
            panic!("not a retry request")
        };
        let outgoing = sender
            .answer_retry(&mut self.rng, now, &req, &self.sent[&id])
            .unwrap();
        self.devices.insert(sender_addr, sender);
        self.persist(sender_addr);
        let Outgoing::Ready(outbox) = outgoing else {
            panic!("a retry answer needs no bundles")
        };
        for (to, bytes) in outbox.envelopes {
            self.genuine(Queued {
                to,
                bytes,
                id: Some(id),
            });
        }
        self.count("retries answered");
    }

    /// Delivers a tampered, replayed or forged envelope: it must be refused, state untouched.
    fn adversarial(&mut self, i: usize) {
        let to = self.queue[i].to;
        let mut bytes = self.queue[i].bytes.clone();
        let kind = self.rng.next_u32() % 5;
        match kind {
            0 => {
                let at = (self.rng.next_u32() as usize) % bytes.len();
                bytes[at] ^= 1 << (self.rng.next_u32() % 8);
            }
            1 => {
                let len = (self.rng.next_u32() as usize) % bytes.len();
                bytes.truncate(len);
            }
            2 => {
                // Replay of something this device already read.
                let old: Vec<Vec<u8>> = self
                    .delivered_log
                    .iter()
                    .filter(|(a, _)| *a == to)
                    .map(|(_, b)| b.clone())
                    .collect();
                if old.is_empty() {
                    return;
                }
                bytes = old[(self.rng.next_u32() as usize) % old.len()].clone();
            }
            3 => {
                let len = 2 + (self.rng.next_u32() as usize) % 300;
                bytes = vec![0; len];
                self.rng.fill_bytes(&mut bytes);
                bytes[0] = 2;
                bytes[1] = 0x0b;
            }
            _ => {
                // Another device's pairwise envelope re-routed here (a group envelope is the same
                // bytes for every member device, so re-routing one is a genuine delivery).
                let others: Vec<Vec<u8>> = self
                    .queue
                    .iter()
                    .filter(|q| q.to != to && q.bytes.get(2) == Some(&1))
                    .map(|q| q.bytes.clone())
                    .collect();
                if others.is_empty() {
                    return;
                }
                bytes = others[(self.rng.next_u32() as usize) % others.len()].clone();
            }
        }
        let device = self.devices.get_mut(&to).unwrap();
        let before = device.to_bytes();
        let result = device.receive(self.now, &bytes);
        assert!(
            result.is_err(),
            "tampered envelope (kind {kind}) accepted on {to:?}: {result:?}"
        );
        assert_eq!(
            *before,
            *device.to_bytes(),
            "refused envelope changed state"
        );
        assert!(!device.has_changes(), "refused envelope left changes");
        let err = result.err().unwrap();
        let typed = matches!(
            err,
            Error::Decode(_)
                | Error::Crypto(_)
                | Error::Ratchet(_)
                | Error::Group(_)
                | Error::Fanout(_)
                | Error::Device(DeviceError::NotInList(_))
                | Error::X3dh(_)
        );
        assert!(typed, "{err:?}");
        self.count("tampered refused");
    }

    fn step(&mut self) {
        match self.rng.next_u32() % 100 {
            0..=24 => self.send(false),
            25..=32 => self.send(true),
            33..=36 => {
                let a = self.pick(&self.addresses());
                if !self.offline.remove(&a) {
                    self.offline.insert(a);
                }
                self.count("online toggles");
            }
            37..=39 => {
                // Restart from the stored records.
                let a = self.pick(&self.addresses());
                let restored = self.reload(a);
                assert_eq!(*restored.to_bytes(), *self.devices[&a].to_bytes());
                self.devices.insert(a, restored);
                self.count("restarts");
            }
            _ => self.deliver(),
        }
        self.now = self.now.plus_millis(1000);
    }

    /// After the storm: everyone online, a clean round of 1:1 messages must read everywhere.
    fn settle(&mut self) {
        self.offline.clear();
        self.queue.clear();
        let accounts: Vec<AccountKey> = self.accounts.iter().map(|(p, _)| p.account()).collect();
        for from in self.addresses() {
            for &to in &accounts {
                let id = self.next_id;
                self.next_id += 1;
                let body = format!("message {id}").into_bytes();
                let mut device = self.devices.remove(&from).unwrap();
                let outbox = loop {
                    match device.send(&mut self.rng, self.now, &to, &body).unwrap() {
                        Outgoing::Ready(o) => break o,
                        Outgoing::NeedBundles(m) => {
                            let b = self.bundles_for(&m);
                            device.start_sessions(&mut self.rng, self.now, &b).unwrap();
                        }
                        Outgoing::NeedDeviceLists(m) => panic!("{m:?}"),
                    }
                };
                self.devices.insert(from, device);
                self.persist(from);
                self.sent.insert(id, body);
                for (to, bytes) in outbox.envelopes {
                    self.genuine(Queued {
                        to,
                        bytes,
                        id: Some(id),
                    });
                }
            }
        }
    }
}

fn apply(store: &mut BTreeMap<Vec<u8>, Vec<u8>>, unit: &StateChanges) {
    if unit.replaces_all() {
        store.clear();
    }
    for r in unit.records() {
        match r.value() {
            Some(v) => {
                store.insert(r.key().to_vec(), v.to_vec());
            }
            None => {
                store.remove(r.key());
            }
        }
    }
}

fn ratchetry_seed(seed: u64) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(format!("ratchetry simulator seed {seed}").as_bytes()).into()
}

fn run(seed: u64) -> BTreeMap<&'static str, usize> {
    let mut sim = Sim::new(seed);
    for _ in 0..STEPS {
        sim.step();
    }
    sim.settle();
    sim.stats
}

#[test]
fn adversarial_network_fixed_seeds() {
    let mut totals: BTreeMap<&str, usize> = BTreeMap::new();
    for &seed in SEEDS {
        for (k, v) in run(seed) {
            *totals.entry(k).or_default() += v;
        }
    }
    println!("{totals:#?}");
    for what in [
        "read",
        "tampered refused",
        "dropped",
        "crashes before persist",
        "crashes after persist",
        "restarts",
        "group sends",
    ] {
        assert!(
            totals.get(what).copied().unwrap_or(0) > 0,
            "the simulation never exercised {what}"
        );
    }
}

#[test]
#[ignore = "long: RATCHETRY_SIM_SEEDS=N runs N seeds"]
fn many_seeds() {
    let n: u64 = std::env::var("RATCHETRY_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    for seed in 100..100 + n {
        run(seed);
    }
}
