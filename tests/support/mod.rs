//! A small world for the end-to-end tests: accounts (a primary and its companions), a "server"
//! that hands out prekey bundles and device lists, and helpers that run a send to completion
//! (fetching what it asks for) and deliver an outbox. Devices persist through their records:
//! every helper that changes a device also applies its `take_changes` to that device's store.

#![allow(dead_code, unreachable_pub)]

pub mod served;

use std::collections::BTreeMap;

use ratchetry::devices::{
    AccountKey, DeviceAddress, DeviceId, LinkRequest, ListLimits, PRIMARY_DEVICE, Primary,
    PrimaryPolicy, complete_link,
};
use ratchetry::driver::{Inbound, ReceiveStep, Receiving};
use ratchetry::fanout::{
    Device, DeviceConfig, Outbox, Outgoing, Received, RetryReason, RetryRequest, StateChanges,
};
use ratchetry::group::GroupId;
use ratchetry::testing::SeededRng;
use ratchetry::{Error, IdentityKeyPair, Timestamp};

/// Where a group envelope carries its message's salt (review 43b).
pub const GROUP_SALT: core::ops::Range<usize> = 3 + 36 + 8 + 42..3 + 36 + 8 + 58;

pub const DAY: u64 = 24 * 60 * 60 * 1000;

/// Asks of one sender account this many milliseconds apart never hold more than its share of
/// retries waiting for their answers: a flood spaced so goes through the table's room rule
/// (the oldest of the account holding the most), not its deferral (`AskLater`).
pub const ASK_SPACING: u64 = ratchetry::fanout::PENDING_RETRY_HOLD_MS
    / ratchetry::fanout::MAX_WAITING_RETRIES_PER_ACCOUNT as u64
    + 1;
pub const T0: Timestamp = Timestamp(1_790_000_000_000);

/// A device's persisted records, as an app's database would hold them.
#[derive(Clone, Default)]
pub struct Store(pub BTreeMap<Vec<u8>, Vec<u8>>);

impl Store {
    pub fn apply(&mut self, unit: &StateChanges) {
        if unit.replaces_all() {
            self.0.clear();
        }
        for r in unit.records() {
            match r.value() {
                Some(v) => {
                    self.0.insert(r.key().to_vec(), v.to_vec());
                }
                None => {
                    self.0.remove(r.key());
                }
            }
        }
    }

    pub fn load(&self) -> Device {
        self.try_load().expect("stored records load")
    }

    pub fn try_load(&self) -> Result<Device, ratchetry::DecodeError> {
        Device::from_records(self.0.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
    }
}

/// A sent message's record key (kind 0x0f, then the send id).
pub fn sent_key(send_id: u64) -> Vec<u8> {
    [&[0x0f][..], &send_id.to_be_bytes()].concat()
}

/// A requester's answers record key for a group message (kind 0x17, the send id, the
/// requester).
pub fn answered_key(send_id: u64, requester: DeviceAddress) -> Vec<u8> {
    [&[0x17][..], &send_id.to_be_bytes(), &requester.to_bytes()].concat()
}

pub struct World {
    pub rng: SeededRng,
    pub now: Timestamp,
    pub primaries: Vec<Primary>,
    pub devices: BTreeMap<DeviceAddress, Device>,
    pub stores: BTreeMap<DeviceAddress, Store>,
}

impl World {
    pub fn new(label: &str) -> Self {
        Self {
            rng: SeededRng::from_label(label),
            now: T0,
            primaries: Vec::new(),
            devices: BTreeMap::new(),
            stores: BTreeMap::new(),
        }
    }

    /// Two accounts of a phone each, published, whose phones have written to each other both
    /// ways (Alice, Bob, then Alice again): `(world, alice, bob, alice's phone, bob's phone)`.
    pub fn two_talking(
        label: &str,
    ) -> (Self, AccountKey, AccountKey, DeviceAddress, DeviceAddress) {
        let mut w = Self::new(label);
        let alice = w.account(0);
        let bob = w.account(0);
        w.publish_all();
        let (a1, b1) = (Self::addr(alice, 1), Self::addr(bob, 1));
        for (from, to) in [(a1, bob), (b1, alice), (a1, bob)] {
            let o = w.send(from, to, b"warm up");
            w.deliver_ok(&o);
        }
        (w, alice, bob, a1, b1)
    }

    /// `N` accounts of a phone each, every list published: `(world, accounts, phones)`.
    pub fn phones<const N: usize>(label: &str) -> (Self, [AccountKey; N], [DeviceAddress; N]) {
        let mut w = Self::new(label);
        let accounts = core::array::from_fn(|_| w.account(0));
        w.publish_all();
        (w, accounts, accounts.map(|a| Self::addr(a, 1)))
    }

    /// Alice and Bob in `group`, with `companions` besides each phone, published, and Alice's
    /// phone's first group message delivered: `(world, alice, bob, that message's outbox)`.
    pub fn group_sent(
        label: &str,
        group: GroupId,
        companions: [usize; 2],
    ) -> (Self, AccountKey, AccountKey, Outbox) {
        let mut w = Self::new(label);
        let alice = w.account(companions[0]);
        let bob = w.account(companions[1]);
        w.publish_all();
        w.set_members(group, &[alice, bob]);
        let first = w.send_group(Self::addr(alice, 1), group, b"first");
        w.deliver_ok(&first);
        (w, alice, bob, first)
    }

    /// Phone `a1` is restored from a backup taken before a message phone `b1` read, and `b1`'s
    /// answer to that message crosses the restored phone's first message (PROTOCOL.md 8.5):
    /// both fail to read, as `AuthenticationFailed`. Then each asks the other again and reads
    /// the answer, sealed in a new session.
    pub fn cross_chains_after_a_restore_and_retry(&mut self, a1: DeviceAddress, b1: DeviceAddress) {
        let backup = self.device(a1).to_bytes();
        let o = self.send(a1, b1.account, b"forgotten");
        self.deliver_ok(&o);
        let from_b1 = self.send(b1, a1.account, b"crosses");
        let now = self.now;
        *self.device(a1) = Device::restore_from_backup(&backup, now).unwrap();
        self.persist(a1);
        let from_a1 = self.send(a1, b1.account, b"after the restore");
        let (to_b1, to_a1) = (
            Self::envelope_to(&from_a1, b1),
            Self::envelope_to(&from_b1, a1),
        );
        let failed = Err(ratchetry::RatchetError::AuthenticationFailed.into());
        assert_eq!(
            self.receive(b1, &to_b1).map(|_| ()),
            failed,
            "the chains crossed"
        );
        assert_eq!(
            self.receive(a1, &to_a1).map(|_| ()),
            failed,
            "the chains crossed"
        );
        for (requester, sender, failed, sent) in [
            (b1, a1, &to_b1, &b"after the restore"[..]),
            (a1, b1, &to_a1, &b"crosses"[..]),
        ] {
            let answer = self.ask_again(requester, sender, failed, sent);
            assert_eq!(body(&self.deliver_ok(&answer)[0].1), Some(sent));
        }
    }

    /// A new account with a phone and `companions` linked companions; returns its key.
    pub fn account(&mut self, companions: usize) -> AccountKey {
        self.account_with(companions, DeviceConfig::default())
    }

    pub fn account_with(&mut self, companions: usize, config: DeviceConfig) -> AccountKey {
        let rng = &mut self.rng;
        let now = self.now;
        let phone = IdentityKeyPair::generate(rng);
        let mut primary = Primary::new(rng, &phone, now, PrimaryPolicy::default());
        let mut ids = vec![(phone, PRIMARY_DEVICE)];
        for _ in 0..companions {
            let id = IdentityKeyPair::generate(rng);
            let inv = primary.invite(rng, now).unwrap();
            let approval = primary.approve(now, &LinkRequest::new(&id, &inv)).unwrap();
            let (_, confirmation) = complete_link(&id, &inv, &approval, &config.lists).unwrap();
            primary.confirm(&confirmation).unwrap();
            ids.push((id, approval.device));
        }
        let list = primary.device_list().clone();
        for (id, device) in ids {
            let (d, _) = Device::new(rng, now, id, device, list.clone(), 5, config).unwrap();
            self.devices.insert(d.address(), d);
        }
        let key = primary.account();
        self.primaries.push(primary);
        for a in self.addresses() {
            self.persist(a);
        }
        key
    }

    /// Links a new companion to `account`: the primary signs the new list, the companion
    /// starts from it (persisted), and no other device has the list yet. Returns its address.
    pub fn link(&mut self, account: &AccountKey) -> DeviceAddress {
        let identity = IdentityKeyPair::generate(&mut self.rng);
        self.link_identity(account, identity)
    }

    /// Links a companion with `identity` to `account`.
    pub fn link_identity(
        &mut self,
        account: &AccountKey,
        identity: IdentityKeyPair,
    ) -> DeviceAddress {
        // The world's RNG, taken out while the primary is borrowed, and put back.
        let mut taken = std::mem::replace(&mut self.rng, SeededRng::from_label("taken"));
        let (rng, now) = (&mut taken, self.now);
        let limits = self.limits();
        let primary = self.primary(account);
        let invitation = primary.invite(rng, now).unwrap();
        let approval = primary
            .approve(now, &LinkRequest::new(&identity, &invitation))
            .unwrap();
        let (_, confirmation) = complete_link(&identity, &invitation, &approval, &limits).unwrap();
        primary.confirm(&confirmation).unwrap();
        let list = primary.device_list().clone();
        let (device, _) = Device::new(
            rng,
            now,
            identity,
            approval.device,
            list,
            5,
            DeviceConfig::default(),
        )
        .unwrap();
        self.rng = taken;
        let address = device.address();
        self.devices.insert(address, device);
        self.persist(address);
        address
    }

    pub fn primary(&mut self, account: &AccountKey) -> &mut Primary {
        self.primaries
            .iter_mut()
            .find(|p| p.account() == *account)
            .unwrap()
    }

    pub fn addresses(&self) -> Vec<DeviceAddress> {
        self.devices.keys().copied().collect()
    }

    pub fn devices_of(&self, account: &AccountKey) -> Vec<DeviceAddress> {
        self.devices
            .keys()
            .filter(|a| a.account == *account)
            .copied()
            .collect()
    }

    pub fn addr(account: AccountKey, device: u32) -> DeviceAddress {
        DeviceAddress {
            account,
            device: DeviceId(device),
        }
    }

    pub fn device(&mut self, a: DeviceAddress) -> &mut Device {
        self.devices.get_mut(&a).unwrap()
    }

    /// Takes a device's pending changes (its unit's tag drawn from the world's RNG).
    pub fn take(&mut self, a: DeviceAddress) -> StateChanges {
        let device = self.devices.get_mut(&a).unwrap();
        device.take_changes(&mut self.rng)
    }

    /// Writes a device's pending changes to its store.
    pub fn persist(&mut self, a: DeviceAddress) {
        let unit = self.take(a);
        self.stores.entry(a).or_default().apply(&unit);
    }

    /// Reloads a device from its store (a restart).
    pub fn restart(&mut self, a: DeviceAddress) {
        let d = self.stores[&a].load();
        self.devices.insert(a, d);
    }

    /// Every device follows `account`'s current list (the primary publishes it).
    pub fn publish(&mut self, account: &AccountKey) {
        let list = self.primary(account).device_list().signed().clone();
        let now = self.now;
        for a in self.addresses() {
            let _ = self
                .device(a)
                .update_device_list(now, account, list.clone());
            self.persist(a);
        }
    }

    pub fn publish_all(&mut self) {
        let accounts: Vec<_> = self.primaries.iter().map(|p| p.account()).collect();
        for a in accounts {
            self.publish(&a);
        }
    }

    /// Sets `group`'s members on every device of every member account.
    pub fn set_members(&mut self, group: GroupId, members: &[AccountKey]) {
        for a in self.addresses() {
            if members.contains(&a.account) {
                self.device(a).set_group_members(group, members).unwrap();
                self.persist(a);
            }
        }
    }

    /// Runs `op` on `from` until it is ready, fetching bundles and lists as it asks (the
    /// server's part); persists the device.
    pub fn run(
        &mut self,
        from: DeviceAddress,
        mut op: impl FnMut(&mut Device, &mut SeededRng, Timestamp) -> ratchetry::Result<Outgoing>,
    ) -> Result<Outbox, Error> {
        let now = self.now;
        let mut device = self.devices.remove(&from).unwrap();
        let result = loop {
            match op(&mut device, &mut self.rng, now) {
                Ok(Outgoing::Ready(o)) => break Ok(o),
                Ok(Outgoing::NeedBundles(missing)) => {
                    let bundles: Vec<_> = missing
                        .iter()
                        .map(|a| (*a, self.devices[a].bundle(None, None)))
                        .collect();
                    device.start_sessions(&mut self.rng, now, &bundles).unwrap();
                }
                Ok(Outgoing::NeedDeviceLists(accounts)) => {
                    for account in accounts {
                        let list = self.primary(&account).device_list().signed().clone();
                        device.update_device_list(now, &account, list).unwrap();
                    }
                }
                Err(e) => break Err(e),
            }
        };
        self.devices.insert(from, device);
        self.persist(from);
        result
    }

    /// `requester` asks the sender of `failed` for it again; persists the requester. Returns
    /// the device asked and the request.
    pub fn request_retry(
        &mut self,
        requester: DeviceAddress,
        failed: &[u8],
        reason: RetryReason,
    ) -> Result<(DeviceAddress, Vec<u8>), Error> {
        let now = self.now;
        let device = self.devices.get_mut(&requester).unwrap();
        let result = device.request_retry(&mut self.rng, now, failed, reason);
        self.persist(requester);
        result
    }

    /// `requester` asks again for `failed`, which `sender` sent; `sender` accepts the request
    /// and answers with `body`. Returns the answer.
    pub fn ask_again(
        &mut self,
        requester: DeviceAddress,
        sender: DeviceAddress,
        failed: &[u8],
        body: &[u8],
    ) -> Outbox {
        let (to, request) = self
            .request_retry(requester, failed, RetryReason::AuthenticationFailed)
            .unwrap();
        assert_eq!(to, sender);
        let Ok(Received::RetryRequest(req)) = self.receive(sender, &request) else {
            panic!("{requester:?} was a recipient of the message it asks for")
        };
        self.run(sender, |d, rng, now| d.answer_retry(rng, now, &req, body))
            .unwrap()
    }

    pub fn send(&mut self, from: DeviceAddress, to: AccountKey, body: &[u8]) -> Outbox {
        self.run(from, |d, rng, now| d.send(rng, now, &to, body))
            .unwrap()
    }

    pub fn send_group(&mut self, from: DeviceAddress, group: GroupId, body: &[u8]) -> Outbox {
        self.run(from, |d, rng, now| d.send_group(rng, now, group, body))
            .unwrap()
    }

    /// Sends a group message from `from` that withholds the key from `withheld`.
    pub fn send_group_withholding(
        &mut self,
        from: DeviceAddress,
        group: GroupId,
        body: &[u8],
        withheld: &[(DeviceAddress, Option<ratchetry::fanout::WithheldReason>)],
    ) -> Outbox {
        self.run(from, |d, rng, now| {
            d.send_group_withholding(rng, now, group, body, withheld)
        })
        .unwrap()
    }

    /// Receives one envelope on `to` and persists it.
    pub fn receive(&mut self, to: DeviceAddress, envelope: &[u8]) -> Result<Received, Error> {
        let now = self.now;
        let r = self.device(to).receive(now, envelope);
        self.persist(to);
        r
    }

    /// Delivers every envelope of an outbox (pairwise first, then the group envelope).
    pub fn deliver(&mut self, outbox: &Outbox) -> Vec<(DeviceAddress, Result<Received, Error>)> {
        let mut got = Vec::new();
        for (to, e) in &outbox.envelopes {
            if self.devices.contains_key(to) {
                got.push((*to, self.receive(*to, e)));
            }
        }
        if let Some((e, recipients)) = &outbox.group {
            for to in recipients.iter() {
                if self.devices.contains_key(to) {
                    got.push((*to, self.receive(*to, e)));
                }
            }
        }
        got
    }

    /// Delivers and expects every envelope to be read.
    pub fn deliver_ok(&mut self, outbox: &Outbox) -> Vec<(DeviceAddress, Received)> {
        self.deliver(outbox)
            .into_iter()
            .map(|(a, r)| (a, r.unwrap_or_else(|e| panic!("{a:?}: {e}"))))
            .collect()
    }

    /// The envelope of `outbox` addressed to `to`.
    pub fn envelope_to(outbox: &Outbox, to: DeviceAddress) -> Vec<u8> {
        outbox
            .envelopes
            .iter()
            .find(|(a, _)| *a == to)
            .unwrap_or_else(|| panic!("no envelope to {to:?}"))
            .1
            .clone()
    }

    /// The group envelope of `outbox`, which must name `to` among its recipients.
    pub fn group_envelope_for(outbox: &Outbox, to: DeviceAddress) -> Vec<u8> {
        let (e, ds) = outbox.group.as_ref().expect("a group envelope");
        assert!(ds.contains(&to));
        e.clone()
    }

    /// `sender` answers the retry request `req` with the body it stored.
    pub fn answer(&mut self, sender: DeviceAddress, req: &RetryRequest, body: &[u8]) -> Outbox {
        self.run(sender, |d, rng, now| d.answer_retry(rng, now, req, body))
            .unwrap()
    }

    /// Whether delivering `outbox` to its devices made one of them read `expected`.
    pub fn reads(&mut self, outbox: &Outbox, expected: &[u8]) -> bool {
        self.deliver(outbox)
            .iter()
            .any(|(_, r)| r.as_ref().ok().and_then(body) == Some(expected))
    }

    /// How `requester` would ask `sender` for `failed` now (`SenderKeyMissing` asked), as
    /// `sender` reads the request: on copies of both devices, so nothing changes in the world.
    pub fn asks_as(
        &mut self,
        requester: DeviceAddress,
        sender: DeviceAddress,
        failed: &[u8],
    ) -> RetryReason {
        let now = self.now;
        let mut asking = Device::from_bytes(&self.device(requester).to_bytes()).unwrap();
        let mut asked = Device::from_bytes(&self.device(sender).to_bytes()).unwrap();
        let (to, bytes) = asking
            .request_retry(&mut self.rng, now, failed, RetryReason::SenderKeyMissing)
            .unwrap();
        assert_eq!(to, sender);
        match asked.receive(now, &bytes) {
            Ok(Received::RetryRequest(r)) => r.reason,
            other => panic!("{other:?}"),
        }
    }

    /// `requester` asks `sender` for `failed` (`SenderKeyMissing`, as the guide says) until it
    /// reads `body`: the number of asks, or the error that stopped them.
    pub fn recover(
        &mut self,
        sender: DeviceAddress,
        requester: DeviceAddress,
        failed: &[u8],
        body: &[u8],
    ) -> Result<usize, Error> {
        for n in 1.. {
            let (to, bytes) =
                self.request_retry(requester, failed, RetryReason::SenderKeyMissing)?;
            assert_eq!(to, sender);
            let req = match self.receive(sender, &bytes) {
                Ok(Received::RetryRequest(r)) => r,
                Ok(other) => panic!("{other:?}"),
                Err(e) => return Err(e),
            };
            let a = self.answer(sender, &req, body);
            if self.reads(&a, body) {
                return Ok(n);
            }
        }
        unreachable!()
    }

    /// Both devices read each other afterwards, pairwise and in `group`, and every session
    /// between them runs the post-quantum ratchet.
    pub fn converged(&mut self, a1: DeviceAddress, b1: DeviceAddress, group: GroupId) {
        let o = self.send(a1, b1.account, b"a after");
        assert!(self.reads(&o, b"a after"), "{b1:?} reads {a1:?} afterwards");
        let o = self.send(b1, a1.account, b"b after");
        assert!(self.reads(&o, b"b after"), "{a1:?} reads {b1:?} afterwards");
        let o = self.send_group(a1, group, b"a group after");
        assert!(
            self.reads(&o, b"a group after"),
            "{b1:?} reads {a1:?}'s group"
        );
        let o = self.send_group(b1, group, b"b group after");
        assert!(
            self.reads(&o, b"b group after"),
            "{a1:?} reads {b1:?}'s group"
        );
        for (d, peer) in [(a1, b1), (b1, a1)] {
            assert!(
                !self.device(d).sessions_without_pq_ratchet().contains(&peer),
                "{d:?}'s session with {peer:?} lost the post-quantum ratchet"
            );
            assert!(self.device(d).pq_ratchet_epoch(&peer).is_some());
        }
    }

    /// The salt of `pairwise` (a pairwise envelope to `to`), as `to` would ask for it: read
    /// from the retry request a copy of `to` makes (review 43b).
    pub fn pairwise_salt(&mut self, to: DeviceAddress, pairwise: &[u8]) -> [u8; 16] {
        let now = self.now;
        let mut copy = Device::from_bytes(&self.device(to).to_bytes()).unwrap();
        let (_, request) = copy
            .request_retry(&mut self.rng, now, pairwise, RetryReason::NoSession)
            .unwrap();
        request[3 + 72..3 + 88].try_into().unwrap()
    }

    /// `pairwise` (to `to`) with its salt replaced by `salt`: the relay's re-wrap of another
    /// message's salt as a pairwise envelope of the same sender.
    pub fn with_pairwise_salt(
        &mut self,
        to: DeviceAddress,
        pairwise: &[u8],
        salt: &[u8],
    ) -> Vec<u8> {
        let own = self.pairwise_salt(to, pairwise);
        let at = pairwise.windows(16).position(|s| s == own).unwrap();
        let mut forged = pairwise.to_vec();
        forged[at..at + 16].copy_from_slice(salt);
        forged
    }

    /// `to` receives `envelope` through the driver's stepper (no list served): its decision.
    pub fn step(&mut self, to: DeviceAddress, envelope: &[u8]) -> Inbound {
        let now = self.now;
        let mut device = self.devices.remove(&to).unwrap();
        let got = match Receiving::new().step(&mut device, &mut self.rng, now, envelope, |_| false)
        {
            Ok(ReceiveStep::Done(inbound)) => inbound,
            other => panic!("{other:?}"),
        };
        self.devices.insert(to, device);
        self.persist(to);
        got
    }

    /// A phone of an account of its own, outside the world (the world's helpers are
    /// quadratic in devices: hundreds of senders are built this way), following `a1`'s list
    /// and followed by `a1`, with a session with it.
    pub fn off_world_sender(&mut self, a1: DeviceAddress) -> Device {
        let now = self.now;
        let phone = IdentityKeyPair::generate(&mut self.rng);
        let primary = Primary::new(&mut self.rng, &phone, now, PrimaryPolicy::default());
        let list = primary.device_list().clone();
        let (mut device, _) = Device::new(
            &mut self.rng,
            now,
            phone,
            PRIMARY_DEVICE,
            list.clone(),
            0,
            DeviceConfig::default(),
        )
        .unwrap();
        let a1_list = self
            .device(a1)
            .device_list(&a1.account)
            .unwrap()
            .signed()
            .clone();
        device
            .update_device_list(now, &a1.account, a1_list)
            .unwrap();
        self.device(a1)
            .update_device_list(now, &list.account(), list.signed().clone())
            .unwrap();
        let bundle = self.device(a1).bundle(None, None);
        device
            .start_sessions(&mut self.rng, now, &[(a1, bundle)])
            .unwrap();
        device
    }

    /// The relay breaks one message of `s` (an off-world sender) to `a1`; `a1` asks, `s`
    /// answers, `a1` reads the resend (a replaced id of `s`'s account). Returns the genuine
    /// envelope, which the relay holds back.
    pub fn read_through_a_resend(&mut self, a1: DeviceAddress, s: &mut Device) -> Vec<u8> {
        let now = self.now;
        let Ok(Outgoing::Ready(o)) = s.send(&mut self.rng, now, &a1.account, b"resent") else {
            panic!("a session is held")
        };
        let genuine = Self::envelope_to(&o, a1);
        let broken = tampered(&genuine);
        let alice = self.devices.get_mut(&a1).unwrap();
        assert!(alice.receive(now, &broken).is_err());
        let (to, request) = alice
            .request_retry(
                &mut self.rng,
                now,
                &broken,
                RetryReason::AuthenticationFailed,
            )
            .unwrap();
        assert_eq!(to, s.address());
        let Ok(Received::RetryRequest(req)) = s.receive(now, &request) else {
            panic!("the request is read")
        };
        let Ok(Outgoing::Ready(answer)) = s.answer_retry(&mut self.rng, now, &req, b"resent")
        else {
            panic!("answered")
        };
        let r = alice.receive(now, &Self::envelope_to(&answer, a1)).unwrap();
        assert_eq!(body(&r), Some(&b"resent"[..]));
        genuine
    }

    /// Asserts `to` refuses `envelope` with `expected`, leaving it byte-identical and with
    /// nothing to persist.
    pub fn refused(&mut self, to: DeviceAddress, envelope: &[u8], expected: Error) {
        let now = self.now;
        let d = self.device(to);
        let before = d.to_bytes();
        assert_eq!(d.receive(now, envelope).err(), Some(expected));
        assert_eq!(*before, *d.to_bytes(), "a refused envelope changed {to:?}");
        assert!(
            !d.has_changes(),
            "a refused envelope left changes on {to:?}"
        );
    }

    /// The policy every primary of the world signs into its lists.
    pub fn policy(&self) -> PrimaryPolicy {
        PrimaryPolicy::default()
    }

    /// What every device and the relay of the world accept of a list.
    pub fn limits(&self) -> ListLimits {
        ListLimits::default()
    }
}

/// A deterministic chooser for property tests and random lives (xorshift; the seed must not
/// be 0), so that a failing seed replays.
pub struct Xorshift(pub u64);

impl Xorshift {
    /// A number below `n`.
    pub fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    /// An index below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        self.next(n as u64) as usize
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// A copy of `envelope` with its last byte flipped: what a relay that changed the ciphertext
/// delivers (it fails authentication, and keeps the genuine message's id).
pub fn tampered(envelope: &[u8]) -> Vec<u8> {
    let mut t = envelope.to_vec();
    *t.last_mut().unwrap() ^= 1;
    t
}

/// The body of a message as the app shows it.
pub fn body(r: &Received) -> Option<&[u8]> {
    match r {
        Received::Direct { body, .. }
        | Received::OwnCopy { body, .. }
        | Received::Group { body, .. } => Some(body),
        _ => None,
    }
}

/// Alice (phone A1, laptop C2) and Bob (phone B1): the world of the companion-life reviews.
pub struct Companion {
    pub alice: AccountKey,
    pub bob: AccountKey,
    pub a1: DeviceAddress,
    pub c2: DeviceAddress,
    pub b1: DeviceAddress,
}

/// [`Companion`]'s world: both accounts published and followed, `group` (if any) set to both
/// on every device, and sessions both ways between Bob and each of Alice's devices (Bob
/// wrote, both of Alice's replied, Bob wrote again).
pub fn companion(label: &str, group: Option<GroupId>) -> (World, Companion) {
    let mut w = World::new(label);
    let alice = w.account(1);
    let bob = w.account(0);
    w.publish_all();
    let (a1, c2, b1) = (
        World::addr(alice, 1),
        World::addr(alice, 2),
        World::addr(bob, 1),
    );
    if let Some(group) = group {
        w.set_members(group, &[alice, bob]);
    }
    for (from, to) in [(b1, alice), (a1, bob), (c2, bob), (b1, alice)] {
        let o = w.send(from, to, b"warm up");
        w.deliver_ok(&o);
    }
    let c = Companion {
        alice,
        bob,
        a1,
        c2,
        b1,
    };
    (w, c)
}

/// A history offer payload (PROTOCOL.md 18.2, kind `0x0b`) from its parts, as written: made at
/// `offered_at`, with `groups` in the order given (a hand-built one may be out of order).
pub fn offer_payload(
    offered_at: u64,
    offer: &ratchetry::history::HistoryOffer,
    groups: &[(GroupId, Vec<AccountKey>)],
) -> Vec<u8> {
    let offer = offer.to_bytes();
    let mut out = vec![0x02, 0x0c, 0x0b];
    out.extend_from_slice(&offered_at.to_be_bytes());
    out.extend_from_slice(&(offer.len() as u32).to_be_bytes());
    out.extend_from_slice(&offer);
    out.extend_from_slice(&(groups.len() as u32).to_be_bytes());
    for (g, members) in groups {
        out.extend_from_slice(&g.0);
        out.extend_from_slice(&(members.len() as u32).to_be_bytes());
        for m in members {
            out.extend_from_slice(&m.to_bytes());
        }
    }
    out
}

impl World {
    /// A history offer sealing a short history, drawn from the world's RNG.
    pub fn history_offer(&mut self) -> ratchetry::history::HistoryOffer {
        let mut sealer = ratchetry::history::HistorySealer::new(&mut self.rng);
        let _ = sealer.push(b"history");
        sealer.finish().1
    }

    /// `from` seals `plaintext` to `to` as a pairwise payload (what a device of the account,
    /// or one with a session, can make), at the world's clock.
    pub fn seal_payload(
        &mut self,
        from: DeviceAddress,
        to: DeviceAddress,
        plaintext: &[u8],
    ) -> Vec<u8> {
        let now = self.now;
        let device = self.devices.get_mut(&from).unwrap();
        ratchetry::testing::hooks::seal_raw_payload(device, &mut self.rng, now, to, plaintext)
            .unwrap()
    }

    /// `from`'s history offer to `to` (its own account's device), made at the world's clock
    /// with its groups, not delivered.
    pub fn offer_envelope(&mut self, from: DeviceAddress, to: DeviceAddress) -> Vec<u8> {
        let offer = self.history_offer();
        let outbox = self
            .run(from, |d, rng, now| {
                d.send_history_offer(rng, now, to, &offer)
            })
            .unwrap();
        Self::envelope_to(&outbox, to)
    }
}
