//! A randomized insider suite, beside the network simulator (`tests/simulator.rs`): the relay is
//! the adversary, and it works together with insiders, all driven through the public API.
//!
//! Actors, per seed (seven accounts):
//! - honest accounts alice (2 companions), bob (1), carol (2; her primary later stops renewing,
//!   so her companions expire) and dave (joins the private group late): they send 1:1 and group
//!   messages, link and unlink companions, renew and publish their lists, change group
//!   membership, run a group call, and answer every retry request they accept (the app looks
//!   the body up by `send_id` and calls `answer_retry`);
//! - the relay: sees every envelope, withholds (until the settle phase), reorders, replays,
//!   tampers, re-routes (fixing up the list versions and digest so the envelope reaches the
//!   AEAD), destroys sender-key distributions, serves rolled-back lists and wrong bundles;
//! - mallory, an account the relay controls (a contact and member of the room): re-routed
//!   retries (the recipient rewritten to her device before `request_retry`), retries of group
//!   messages of a group she is not in, forged resends and own copies, re-distributing another
//!   member's sender key as her own and re-wrapping that member's group messages, forged call
//!   keys;
//! - eve, a room member the honest accounts remove with `set_group_members`: she keeps her state
//!   and receives everything the relay forwards, asks for retries, keeps sending;
//! - a rogue account: signs device lists listing honest device keys (random, wrong-signer and
//!   copied bindings) and equivocating lists, and re-wraps honest envelopes (pairwise, group and
//!   retry requests) under its own address;
//! - unlinked and expired companions: keep their old state and clock, read, retry, send;
//! - a participant removed from the call: reads and asks for later epochs' keys.
//!
//! Invariants (checked on every operation, then after a settle phase):
//! 1. no device reads a body (1:1, group, resent) or a call epoch key it was not entitled to
//!    when it was sent (recipients: the active devices of the recipient account and the
//!    sender's other active devices; the active devices of the member accounts; the epoch's
//!    participants) — whatever the relay and the insiders do, retries included;
//! 2. every `Received` names as `from` the device that sealed the envelope, and every body is
//!    shown as sent by the device that sent it;
//! 3. after the settle phase (everything withheld is delivered, failures are retried, call keys
//!    re-sent), every honest device entitled to a message of an honest device has shown it
//!    exactly once with its exact body (the app keys messages by `EnvelopeId`, a resend under
//!    the id it replaces), and every honest call participant holds the current epoch;
//! 4. every refusal is a typed error and leaves the device (and the call state) byte-identical,
//!    with nothing to persist.
//!
//! The model's limits, each for a reason:
//! - lists are published to every active device at once, so a sender's view is the account's
//!   current list and "entitled at send time" is exact (a relay that withholds list updates
//!   can keep a stale view alive until the companions' expiry: the documented bound);
//! - at most three events per seed make senders rotate their group keys (a removal, an unlink,
//!   an expiry), so no withheld group message outlives the four generations kept (a message
//!   delayed past that is as lost as a dropped one);
//! - honest apps ask again for every envelope they could not read, genuine or a copy the relay
//!   tampered with (they cannot tell them apart); that a message is still shown once is
//!   `a_tampered_copy_and_its_retry_deliver_a_message_once`, in every order.
//!
//! `cargo test --test insider_suite` runs the fixed seeds; for long runs:
//! `RATCHETRY_INSIDER_SEEDS=200 cargo test --release --test insider_suite -- --ignored
//! many_insider_seeds --nocapture` (seeds 1000..1000+N; `RATCHETRY_INSIDER_FIRST` moves the
//! start).

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use rand_core::Rng;
use ratchetry::calls::{Call, CallConfig, CallId, CallKeyMessage, CallKind};
use ratchetry::devices::{
    AccountKey, AccountKeyPair, AccountPolicy, DeviceAddress, DeviceId, LinkRequest, ListLimits,
    PRIMARY_DEVICE, Primary, PrimaryPolicy, SignedDeviceList, VerifiedDeviceList, complete_link,
};
use ratchetry::fanout::{
    Device, DeviceConfig, EnvelopeId, Outbox, Outgoing, Received, RetryReason, RetryRequest, SendId,
};
use ratchetry::group::{GroupId, GroupMessage};
use ratchetry::testing::{SeededRng, hooks};
use ratchetry::{Error, IdentityKey, IdentityKeyPair, Signature, SyncError, Timestamp};
use support::{Store, T0};

const SEEDS: &[u64] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
const STEPS: usize = 280;
const ROOM: GroupId = GroupId([0x51; 32]);
const PRIVATE: GroupId = GroupId([0x52; 32]);
const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;
/// Companions stay valid this long without renewal (short, so that expiry happens in a run).
const VALIDITY: u64 = 4 * HOUR;
const RENEW_EVERY: u64 = HOUR;
const OBSERVED: usize = 400;

const ALICE: usize = 0;
const BOB: usize = 1;
const CAROL: usize = 2;
const DAVE: usize = 3;
const MALLORY: usize = 4;
const EVE: usize = 5;
const ROGUE: usize = 6;
const HONEST_ACCOUNTS: [usize; 4] = [ALICE, BOB, CAROL, DAVE];

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    Honest,
    /// A device of the account the relay controls.
    Colluding,
    /// A device of the member the others remove from the room.
    Removed,
    /// The rogue account's device.
    Rogue,
    /// A companion its primary unlinked; it keeps its state.
    Unlinked,
    /// A companion that expired because its primary stopped renewing; it keeps its state.
    Expired,
}

impl Role {
    fn label(self) -> &'static str {
        match self {
            Role::Honest => "honest",
            Role::Colluding => "mallory (colluding)",
            Role::Removed => "eve (removed member)",
            Role::Rogue => "rogue account",
            Role::Unlinked => "unlinked companion",
            Role::Expired => "expired companion",
        }
    }
}

const RELAY: &str = "relay";
const CALL_REMOVED: &str = "removed call participant";
const NEWCOMER: &str = "newcomer (dave)";

struct Account {
    name: &'static str,
    key: AccountKey,
    primary: Option<Primary>,
    /// The rogue's account key (it signs its lists itself) and its primary's entry.
    rogue: Option<(AccountKeyPair, IdentityKeyPair)>,
    next_version: u64,
    current: VerifiedDeviceList,
    history: Vec<SignedDeviceList>,
    renewing: bool,
    last_renew: Timestamp,
}

struct Dev {
    device: Device,
    store: Store,
    role: Role,
    /// A stale device's frozen clock (it may lie about the time).
    clock: Option<Timestamp>,
    identity: IdentityKey,
    name: String,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum MsgKind {
    Direct(AccountKey),
    Group(GroupId),
    /// A body an adversary forged into a resend or own copy: nobody may accept it.
    Forged,
}

struct Msg {
    sender: DeviceAddress,
    kind: MsgKind,
    body: Vec<u8>,
    entitled: BTreeSet<(DeviceAddress, IdentityKey)>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Message,
    Distribution,
    Resend,
    Retry,
    CallKey,
}

#[derive(Clone)]
struct Env {
    to: DeviceAddress,
    bytes: Vec<u8>,
    origin: DeviceAddress,
    msg: Option<usize>,
    kind: Kind,
    epoch: Option<(CallId, u32)>,
}

#[derive(Clone)]
struct Failure {
    original: Option<Env>,
    error: String,
    retries: u8,
}

struct CallRec {
    manager: DeviceAddress,
    call: Call,
}

#[derive(Default)]
struct Tally {
    attempts: usize,
    granted: usize,
    refused: BTreeMap<String, usize>,
}

#[derive(Default)]
struct Stats {
    attacks: BTreeMap<(&'static str, &'static str), Tally>,
    counts: BTreeMap<&'static str, usize>,
    honest_errors: BTreeMap<String, usize>,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        for (k, t) in other.attacks {
            let mine = self.attacks.entry(k).or_default();
            mine.attempts += t.attempts;
            mine.granted += t.granted;
            for (e, n) in t.refused {
                *mine.refused.entry(e).or_default() += n;
            }
        }
        for (k, n) in other.counts {
            *self.counts.entry(k).or_default() += n;
        }
        for (k, n) in other.honest_errors {
            *self.honest_errors.entry(k).or_default() += n;
        }
    }
}

struct Schedule {
    call_start: usize,
    eve_removal: usize,
    unlink: usize,
    carol_expiry: usize,
    dave_joins: usize,
    eve_back: Option<usize>,
}

struct Sim {
    seed: u64,
    rng: SeededRng,
    now: Timestamp,
    policy: PrimaryPolicy,
    config: DeviceConfig,
    accounts: Vec<Account>,
    devs: BTreeMap<DeviceAddress, Dev>,
    /// The room and private group as the honest devices set them.
    room: Vec<AccountKey>,
    private: Vec<AccountKey>,
    msgs: Vec<Msg>,
    bodies: HashMap<Vec<u8>, usize>,
    /// The apps' body stores: (device, send id) → message.
    sent_store: HashMap<(DeviceAddress, SendId), usize>,
    /// Who sealed each envelope (re-routed or re-wrapped copies keep their sealer).
    origins: HashMap<EnvelopeId, DeviceAddress>,
    env_msg: HashMap<EnvelopeId, usize>,
    queue: Vec<Env>,
    withheld: Vec<Env>,
    observed: Vec<Env>,
    delivered: Vec<Env>,
    failures: BTreeMap<(DeviceAddress, usize), Failure>,
    /// Bodies shown by honest apps, counted per (device, message).
    reads: HashMap<(DeviceAddress, usize), u32>,
    shown: HashSet<(DeviceAddress, EnvelopeId)>,
    calls: Vec<CallRec>,
    epochs: HashMap<(CallId, u32), (BTreeSet<DeviceAddress>, Vec<u8>)>,
    held_calls: BTreeMap<(DeviceAddress, CallId), Call>,
    /// Call key messages adversary devices obtained (what a forger can build on).
    adv_calls: HashMap<CallId, CallKeyMessage>,
    call_removed: BTreeMap<DeviceAddress, (CallId, u32)>,
    /// Messages with an id below this were sent before dave joined the private group.
    dave_joined_at: Option<usize>,
    eve_removed: bool,
    schedule: Schedule,
    /// Whether the last successful operation changed nothing.
    last_unit_empty: bool,
    /// Whether honest apps also ask again for copies the relay tampered with (they cannot tell
    /// them from copies they lack the state for): on in every run since message ids name the
    /// message, not its bytes (`a_tampered_copy_and_its_retry_deliver_a_message_once`).
    apps_retry_tampered: bool,
    stats: Stats,
}

// ---------------------------------------------------------------------------------------------
// Byte-level helpers (what the relay knows from PROTOCOL.md)
// ---------------------------------------------------------------------------------------------

fn addr_bytes(a: &DeviceAddress) -> [u8; 36] {
    let mut out = [0u8; 36];
    out[..32].copy_from_slice(&a.account.to_bytes());
    out[32..].copy_from_slice(&a.device.0.to_be_bytes());
    out
}

fn read_addr(b: &[u8]) -> DeviceAddress {
    DeviceAddress {
        account: AccountKey::from_bytes(b[..32].try_into().unwrap()).unwrap(),
        device: DeviceId(u32::from_be_bytes(b[32..36].try_into().unwrap())),
    }
}

fn lists_digest(sender: &[u8; 32], recipient: &[u8; 32]) -> [u8; 8] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"ratchetry v1 device lists digest");
    h.update(sender);
    h.update(recipient);
    let full = h.finalize();
    full[..8].try_into().unwrap()
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().unwrap())
}

fn is_pairwise(bytes: &[u8]) -> bool {
    bytes.get(2) == Some(&1)
}

fn is_group(bytes: &[u8]) -> bool {
    bytes.get(2) == Some(&2)
}

/// The group message inside a group envelope.
fn group_message(bytes: &[u8]) -> Option<GroupMessage<'_>> {
    GroupMessage::decode(bytes.get(47..)?).ok()
}

/// The records of whole device state bytes.
fn state_records(state: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut i = 2;
    let n = be32(&state[i..]) as usize;
    i += 4;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let kl = be32(&state[i..]) as usize;
        let key = state[i + 4..i + 4 + kl].to_vec();
        i += 4 + kl;
        let vl = be32(&state[i..]) as usize;
        let value = state[i + 4..i + 4 + vl].to_vec();
        i += 4 + vl;
        out.push((key, value));
    }
    out
}

/// The newest generation of `sender`'s key for `group` in a device's state, as a sender-key
/// distribution payload (what a member holding it can hand on as if it were its own).
fn stolen_distribution(state: &[u8], sender: &DeviceAddress, group: GroupId) -> Option<Vec<u8>> {
    // The inbound record's key: its type byte, the sender's address, the group; its value
    // starts with the inbound sender key state's version and type.
    let mut tail = addr_bytes(sender).to_vec();
    tail.extend_from_slice(&group.0);
    let (_, v) = state_records(state)
        .into_iter()
        .find(|(k, v)| k.len() == 69 && k[1..] == tail[..] && v.starts_with(&[1, 0x88]))?;
    // Inbound sender key state: version, kind, group, IK, u8 context length, context, u32 n,
    // then per generation: key id, signing key, chain key, first, iteration, skipped keys.
    let mut i = 2 + 32 + 32;
    let ctx = v[i] as usize;
    i += 1 + ctx;
    let n = be32(&v[i..]) as usize;
    i += 4;
    let mut last = None;
    for _ in 0..n {
        let key_id = &v[i..i + 4];
        let signing = &v[i + 4..i + 36];
        let chain = &v[i + 36..i + 68];
        let iteration = &v[i + 72..i + 76];
        let skipped = be32(&v[i + 76..]) as usize;
        last = Some((key_id, signing, chain, iteration));
        i += 80 + skipped * 36;
    }
    let (key_id, signing, chain, iteration) = last?;
    let mut payload = vec![2, 0x0c, 0x02, 2, 0x05];
    payload.extend_from_slice(&group.0);
    payload.extend_from_slice(key_id);
    payload.extend_from_slice(iteration);
    payload.extend_from_slice(chain);
    payload.extend_from_slice(signing);
    Some(payload)
}

/// The binding signature of device `id` in a signed list (the entry layout of PROTOCOL.md).
fn binding_in_list(list: &[u8], id: DeviceId) -> Option<Signature> {
    // AK, version, issued_at, then the policy (12 bytes) in format 3.
    let mut i = 2 + 32 + 8 + 8 + if list[0] == 3 { 12 } else { 0 };
    let n = be32(&list[i..]) as usize;
    i += 4;
    for _ in 0..n {
        let entry_id = be32(&list[i..]);
        i += 4 + 32 + 8;
        if list[i] == 1 {
            i += 8;
        }
        i += 1;
        let binding: [u8; 64] = list[i..i + 64].try_into().unwrap();
        i += 64;
        if entry_id == id.0 {
            return Some(Signature::from_bytes(binding));
        }
    }
    None
}

fn err_name(e: &Error) -> String {
    let s = format!("{e:?}");
    let brace = s.find('{').unwrap_or(s.len());
    let second_paren = s
        .char_indices()
        .filter(|(_, c)| *c == '(')
        .nth(1)
        .map_or(s.len(), |(i, _)| i);
    let cut = brace.min(second_paren);
    let mut out = s[..cut].trim_end().to_string();
    let open = out.matches('(').count();
    let close = out.matches(')').count();
    for _ in close..open {
        out.push(')');
    }
    out
}

fn retry_reason(error: &str) -> RetryReason {
    if error.contains("SenderKeyMissing") {
        RetryReason::SenderKeyMissing
    } else if error.contains("NoSession") {
        RetryReason::NoSession
    } else {
        RetryReason::AuthenticationFailed
    }
}

// ---------------------------------------------------------------------------------------------
// Setup and the machinery every operation goes through
// ---------------------------------------------------------------------------------------------

impl Sim {
    fn new(seed: u64) -> Self {
        let mut rng = SeededRng::new(seed_bytes(seed));
        let policy = PrimaryPolicy {
            account: AccountPolicy {
                max_companions: 4,
                companion_validity_ms: VALIDITY,
            },
            link_invitation_validity_ms: 10 * MINUTE,
        };
        let config = DeviceConfig {
            lists: ListLimits::default(),
            ..DeviceConfig::default()
        };
        let mut at = |lo: usize, hi: usize| lo + (rng.next_u32() as usize) % (hi - lo);
        let schedule = Schedule {
            call_start: at(3, 25),
            eve_removal: at(25, 70),
            unlink: at(40, 110),
            carol_expiry: at(80, 130),
            dave_joins: at(90, 150),
            eve_back: None,
        };
        let eve_back = rng
            .next_u32()
            .is_multiple_of(2)
            .then(|| 160 + (rng.next_u32() as usize) % 50);
        let mut sim = Sim {
            seed,
            rng,
            now: T0,
            policy,
            config,
            accounts: Vec::new(),
            devs: BTreeMap::new(),
            room: Vec::new(),
            private: Vec::new(),
            msgs: Vec::new(),
            bodies: HashMap::new(),
            sent_store: HashMap::new(),
            origins: HashMap::new(),
            env_msg: HashMap::new(),
            queue: Vec::new(),
            withheld: Vec::new(),
            observed: Vec::new(),
            delivered: Vec::new(),
            failures: BTreeMap::new(),
            reads: HashMap::new(),
            shown: HashSet::new(),
            calls: Vec::new(),
            epochs: HashMap::new(),
            held_calls: BTreeMap::new(),
            adv_calls: HashMap::new(),
            call_removed: BTreeMap::new(),
            dave_joined_at: None,
            eve_removed: false,
            schedule: Schedule {
                eve_back,
                ..schedule
            },
            last_unit_empty: true,
            apps_retry_tampered: false,
            stats: Stats::default(),
        };
        for (name, role, companions) in [
            ("alice", Role::Honest, 2),
            ("bob", Role::Honest, 1),
            ("carol", Role::Honest, 2),
            ("dave", Role::Honest, 0),
            ("mallory", Role::Colluding, 1),
            ("eve", Role::Removed, 1),
            ("rogue", Role::Rogue, 0),
        ] {
            sim.create_account(name, role, companions);
        }
        for i in 0..sim.accounts.len() {
            sim.publish(i);
        }
        sim.room = sim.accounts.iter().map(|a| a.key).collect();
        sim.private = [ALICE, BOB, CAROL]
            .iter()
            .map(|&i| sim.accounts[i].key)
            .collect();
        for a in sim.addresses() {
            sim.sync_groups(a);
        }
        sim
    }

    fn create_account(&mut self, name: &'static str, role: Role, companions: usize) {
        let now = self.now;
        let phone = IdentityKeyPair::generate(&mut self.rng);
        if role == Role::Rogue {
            let account = AccountKeyPair::generate(&mut self.rng);
            let entry = (
                PRIMARY_DEVICE,
                phone.public(),
                now,
                None,
                hooks::device_binding(&phone, &account.public()),
            );
            let list = hooks::sign_device_list(&account, 1, now, &[entry]);
            let verified = list
                .verify(&account.public(), None, &self.config.lists)
                .unwrap();
            self.accounts.push(Account {
                name,
                key: account.public(),
                primary: None,
                rogue: Some((account, phone.clone())),
                next_version: 2,
                current: verified.clone(),
                history: Vec::new(),
                renewing: false,
                last_renew: now,
            });
            self.add_device(phone, PRIMARY_DEVICE, verified, role);
            return;
        }
        let mut primary = Primary::new(&mut self.rng, &phone, now, self.policy);
        let mut ids = vec![(phone, PRIMARY_DEVICE)];
        for _ in 0..companions {
            let id = IdentityKeyPair::generate(&mut self.rng);
            let inv = primary.invite(&mut self.rng, now).unwrap();
            let approval = primary.approve(now, &LinkRequest::new(&id, &inv)).unwrap();
            let (_, confirmation) =
                complete_link(&id, &inv, &approval, &self.config.lists).unwrap();
            primary.confirm(&confirmation).unwrap();
            ids.push((id, approval.device));
        }
        let list = primary.device_list().clone();
        self.accounts.push(Account {
            name,
            key: primary.account(),
            primary: Some(primary),
            rogue: None,
            next_version: 0,
            current: list.clone(),
            history: Vec::new(),
            renewing: true,
            last_renew: now,
        });
        for (id, device) in ids {
            self.add_device(id, device, list.clone(), role);
        }
    }

    fn add_device(
        &mut self,
        identity: IdentityKeyPair,
        id: DeviceId,
        list: VerifiedDeviceList,
        role: Role,
    ) -> DeviceAddress {
        let public = identity.public();
        let (mut device, _) =
            Device::new(&mut self.rng, self.now, identity, id, list, 2, self.config).unwrap();
        let mut store = Store::default();
        store.apply(&device.take_changes(&mut self.rng));
        let a = device.address();
        let account = self.account_of(&a.account);
        let name = format!("{}/{}", self.accounts[account].name, id.0);
        self.devs.insert(
            a,
            Dev {
                device,
                store,
                role,
                clock: None,
                identity: public,
                name,
            },
        );
        a
    }

    fn account_of(&self, key: &AccountKey) -> usize {
        self.accounts.iter().position(|a| a.key == *key).unwrap()
    }

    fn addresses(&self) -> Vec<DeviceAddress> {
        self.devs.keys().copied().collect()
    }

    fn with_role(&self, pred: impl Fn(Role) -> bool) -> Vec<DeviceAddress> {
        self.devs
            .iter()
            .filter(|(_, d)| pred(d.role))
            .map(|(a, _)| *a)
            .collect()
    }

    fn honest(&self) -> Vec<DeviceAddress> {
        self.with_role(|r| r == Role::Honest)
    }

    fn adversaries(&self) -> Vec<DeviceAddress> {
        self.with_role(|r| r != Role::Honest)
    }

    fn role(&self, a: &DeviceAddress) -> Role {
        self.devs[a].role
    }

    fn name(&self, a: &DeviceAddress) -> String {
        self.devs
            .get(a)
            .map_or_else(|| format!("{a:?}"), |d| d.name.clone())
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> Option<T> {
        if items.is_empty() {
            return None;
        }
        Some(items[(self.rng.next_u32() as usize) % items.len()].clone())
    }

    fn chance(&mut self, percent: u32) -> bool {
        self.rng.next_u32() % 100 < percent
    }

    fn count(&mut self, what: &'static str) {
        *self.stats.counts.entry(what).or_default() += 1;
    }

    /// The time a device acts at: a stale device may use its frozen clock.
    fn clock_of(&mut self, a: DeviceAddress) -> Timestamp {
        match self.devs[&a].clock {
            Some(frozen) if !self.rng.next_u32().is_multiple_of(3) => frozen,
            _ => self.now,
        }
    }

    /// Runs one operation on a device. Success: its changes are persisted. Refusal: the device
    /// must be byte-identical, with nothing to persist (invariant 4).
    fn guard<T>(
        &mut self,
        a: DeviceAddress,
        op: impl FnOnce(&mut Device, &mut SeededRng) -> ratchetry::Result<T>,
    ) -> ratchetry::Result<T> {
        let dev = self.devs.get_mut(&a).unwrap();
        assert!(
            !dev.device.has_changes(),
            "{} had unpersisted changes",
            dev.name
        );
        let before = dev.device.to_bytes();
        let result = op(&mut dev.device, &mut self.rng);
        match &result {
            Ok(_) => {
                let unit = dev.device.take_changes(&mut self.rng);
                self.last_unit_empty = unit.is_empty();
                dev.store.apply(&unit);
            }
            Err(e) => {
                assert!(
                    !dev.device.has_changes(),
                    "seed {}: refusal {e:?} left changes on {}",
                    self.seed,
                    dev.name
                );
                assert!(
                    *before == *dev.device.to_bytes(),
                    "seed {}: refusal {e:?} changed {}",
                    self.seed,
                    dev.name
                );
            }
        }
        result
    }

    /// Runs a send-like operation until it is ready, as the app does: fetching bundles and
    /// lists it asks for (the relay sometimes serves a wrong bundle first).
    fn run_op(
        &mut self,
        a: DeviceAddress,
        now: Timestamp,
        mut op: impl FnMut(&mut Device, &mut SeededRng, Timestamp) -> ratchetry::Result<Outgoing>,
    ) -> ratchetry::Result<Outbox> {
        for _ in 0..6 {
            match self.guard(a, |d, rng| op(d, rng, now))? {
                Outgoing::Ready(outbox) => return Ok(outbox),
                Outgoing::NeedBundles(missing) => {
                    assert!(
                        self.last_unit_empty,
                        "NeedBundles changed {}",
                        self.name(&a)
                    );
                    if self.chance(25) {
                        self.wrong_bundle(a, now, missing[0]);
                    }
                    let bundles: Vec<_> = missing
                        .iter()
                        .map(|m| (*m, self.devs[m].device.bundle(None, None)))
                        .collect();
                    self.guard(a, |d, rng| d.start_sessions(rng, now, &bundles))?;
                }
                Outgoing::NeedDeviceLists(accounts) => {
                    assert!(
                        self.last_unit_empty,
                        "NeedDeviceLists changed {}",
                        self.name(&a)
                    );
                    for account in accounts {
                        let i = self.account_of(&account);
                        let list = self.accounts[i].current.signed().clone();
                        self.guard(a, |d, _| d.update_device_list(now, &account, list))?;
                    }
                }
            }
        }
        panic!(
            "seed {}: an operation on {} never became ready",
            self.seed,
            self.name(&a)
        );
    }

    /// The relay serves another device's bundle for `target`.
    fn wrong_bundle(&mut self, a: DeviceAddress, now: Timestamp, target: DeviceAddress) {
        let others: Vec<_> = self
            .addresses()
            .into_iter()
            .filter(|o| *o != target && *o != a)
            .collect();
        let Some(other) = self.pick(&others) else {
            return;
        };
        let bundle = self.devs[&other].device.bundle(None, None);
        let r = self.guard(a, |d, rng| d.start_sessions(rng, now, &[(target, bundle)]));
        self.tally(RELAY, "serve a wrong prekey bundle", &r, true);
    }

    fn tally<T>(
        &mut self,
        actor: &'static str,
        attack: &'static str,
        result: &ratchetry::Result<T>,
        must_refuse: bool,
    ) {
        let t = self.stats.attacks.entry((actor, attack)).or_default();
        t.attempts += 1;
        match result {
            Ok(_) => {
                assert!(
                    !must_refuse,
                    "seed {}: {actor}: \"{attack}\" was not refused",
                    self.seed
                );
                t.granted += 1;
            }
            Err(e) => *t.refused.entry(err_name(e)).or_default() += 1,
        }
    }

    fn tally_name(&mut self, actor: &'static str, attack: &'static str, refusal: Option<String>) {
        let t = self.stats.attacks.entry((actor, attack)).or_default();
        t.attempts += 1;
        match refusal {
            None => t.granted += 1,
            Some(e) => *t.refused.entry(e).or_default() += 1,
        }
    }

    fn register(&mut self, bytes: &[u8], origin: DeviceAddress, msg: Option<usize>) {
        let id = EnvelopeId::of(bytes);
        self.origins.insert(id, origin);
        if let Some(m) = msg {
            self.env_msg.insert(id, m);
        }
    }

    fn ship_env(&mut self, env: Env) {
        self.register(&env.bytes, env.origin, env.msg);
        self.observed.push(env.clone());
        if self.observed.len() > OBSERVED {
            self.observed.remove(0);
        }
        self.queue.push(env);
    }

    /// Queues an outbox: pairwise envelopes of kind `pairwise`, the group envelope (if any) as
    /// the message.
    fn ship(
        &mut self,
        origin: DeviceAddress,
        outbox: Outbox,
        msg: Option<usize>,
        pairwise: Kind,
        epoch: Option<(CallId, u32)>,
    ) {
        let carries = matches!(pairwise, Kind::Message | Kind::Resend);
        let n = outbox.envelopes.len();
        for (i, (to, bytes)) in outbox.envelopes.into_iter().enumerate() {
            // A retry answer: a sender key first, the resend last.
            let kind = if pairwise == Kind::Resend && i + 1 < n {
                Kind::Distribution
            } else {
                pairwise
            };
            let m = if carries && kind != Kind::Distribution {
                msg
            } else {
                None
            };
            self.ship_env(Env {
                to,
                bytes,
                origin,
                msg: m,
                kind,
                epoch,
            });
        }
        if let Some((bytes, recipients)) = outbox.group {
            for &to in recipients.iter() {
                self.ship_env(Env {
                    to,
                    bytes: bytes.clone(),
                    origin,
                    msg,
                    kind: Kind::Message,
                    epoch: None,
                });
            }
        }
    }

    fn new_msg(&mut self, sender: DeviceAddress, kind: MsgKind, tag: &str) -> (usize, Vec<u8>) {
        let id = self.msgs.len();
        let mut nonce = [0u8; 6];
        self.rng.fill_bytes(&mut nonce);
        let body = format!(
            "{tag} #{id} from {} [{}]",
            self.name(&sender),
            nonce.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
        .into_bytes();
        self.msgs.push(Msg {
            sender,
            kind,
            body: body.clone(),
            entitled: BTreeSet::new(),
        });
        self.bodies.insert(body.clone(), id);
        (id, body)
    }

    /// The devices entitled to a message `from` sends now, from its own view (which for an
    /// honest sender is every account's current list).
    fn entitled(
        &self,
        from: DeviceAddress,
        kind: MsgKind,
        now: Timestamp,
    ) -> BTreeSet<(DeviceAddress, IdentityKey)> {
        let d = &self.devs[&from].device;
        let accounts: Vec<AccountKey> = match kind {
            MsgKind::Direct(to) => vec![to, from.account],
            MsgKind::Group(g) => {
                let mut v: Vec<_> = d.group_members(g).map(|m| m.collect()).unwrap_or_default();
                v.push(from.account);
                v
            }
            MsgKind::Forged => Vec::new(),
        };
        let mut out = BTreeSet::new();
        for account in accounts {
            if let Some(list) = d.device_list(&account) {
                for e in list.active(now) {
                    let a = DeviceAddress {
                        account,
                        device: e.id,
                    };
                    if a != from {
                        out.insert((a, e.identity));
                    }
                }
            }
        }
        out
    }

    /// Writes every account's current list to the devices that follow it, as the apps do.
    fn publish(&mut self, i: usize) {
        let account = self.accounts[i].key;
        let signed = self.accounts[i].current.signed().clone();
        self.accounts[i].history.push(signed.clone());
        for a in self.addresses() {
            if matches!(self.role(&a), Role::Unlinked | Role::Expired) {
                continue;
            }
            let now = self.now;
            let list = signed.clone();
            if let Err(e) = self.guard(a, |d, _| d.update_device_list(now, &account, list)) {
                panic!(
                    "seed {}: {} refused {}'s new list: {e}",
                    self.seed,
                    self.name(&a),
                    self.accounts[i].name
                );
            }
        }
        self.count("lists published");
    }

    /// Sets the groups a device's account is in, as its app does.
    fn sync_groups(&mut self, a: DeviceAddress) {
        let role = self.role(&a);
        let room = self.room.clone();
        let private = self.private.clone();
        let dev = &mut self.devs.get_mut(&a).unwrap().device;
        if room.contains(&a.account) || role == Role::Removed {
            let members = if role == Role::Honest {
                room
            } else {
                // Insiders keep their own idea of the room: everyone.
                self.accounts.iter().map(|x| x.key).collect()
            };
            dev.set_group_members(ROOM, &members).unwrap();
        }
        if role == Role::Honest && private.contains(&a.account) {
            dev.set_group_members(PRIVATE, &private).unwrap();
        }
        if role == Role::Colluding {
            // Mallory makes herself a member of the private group, from her side only.
            let mut members = private.clone();
            members.push(a.account);
            dev.set_group_members(PRIVATE, &members).unwrap();
        }
        let unit = dev.take_changes(&mut self.rng);
        self.devs.get_mut(&a).unwrap().store.apply(&unit);
    }
}

// ---------------------------------------------------------------------------------------------
// Receiving, and the checks of invariants 1 and 2 on everything any device accepts
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Shape {
    Direct,
    OwnCopy(AccountKey),
    Group(GroupId),
}

impl Sim {
    /// One device receives bytes; everything it accepts is checked and acted on by its app.
    fn receive(&mut self, to: DeviceAddress, bytes: &[u8]) -> ratchetry::Result<()> {
        let now = self.clock_of(to);
        let received = self.guard(to, |d, _| d.receive(now, bytes))?;
        let id = EnvelopeId::of(bytes);
        let origin = *self.origins.get(&id).unwrap_or_else(|| {
            panic!(
                "seed {}: {} accepted bytes no device sealed: {received:?}",
                self.seed,
                self.name(&to)
            )
        });
        let from = match &received {
            Received::Direct { from, .. }
            | Received::OwnCopy { from, .. }
            | Received::Group { from, .. }
            | Received::SenderKey { from, .. }
            | Received::CallKey { from, .. }
            | Received::HistoryOffer { from, .. }
            | Received::Withheld { from, .. } => *from,
            Received::RetryRequest(r) => r.from,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(
            from,
            origin,
            "seed {}: invariant 2: {} was shown {received:?} as from {}, but {} sealed it",
            self.seed,
            self.name(&to),
            self.name(&from),
            self.name(&origin)
        );
        match received {
            Received::Direct { body, resent, .. } => {
                self.check_body(to, id, from, &body, resent, Shape::Direct)
            }
            Received::OwnCopy {
                sent_to,
                body,
                resent,
                ..
            } => self.check_body(to, id, from, &body, resent, Shape::OwnCopy(sent_to)),
            Received::Group {
                group,
                body,
                resent,
                ..
            } => self.check_body(to, id, from, &body, resent, Shape::Group(group)),
            Received::CallKey { message, .. } => self.on_call_key(to, from, message),
            Received::RetryRequest(request) => {
                if self.role(&to) == Role::Honest {
                    self.answer(to, request);
                } else {
                    self.count("retry requests ignored by insiders");
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn check_body(
        &mut self,
        to: DeviceAddress,
        envelope: EnvelopeId,
        from: DeviceAddress,
        body: &[u8],
        resent: Option<EnvelopeId>,
        shape: Shape,
    ) {
        let seed = self.seed;
        let who = self.name(&to);
        let m = *self
            .bodies
            .get(body)
            .unwrap_or_else(|| panic!("seed {seed}: {who} read a body nobody sent"));
        let msg = &self.msgs[m];
        let sender = self.name(&msg.sender);
        assert_eq!(
            msg.sender,
            from,
            "seed {seed}: invariant 2: {who} was shown message #{m} of {sender} as from {}",
            self.name(&from)
        );
        let identity = self.devs[&to].identity;
        assert!(
            msg.entitled.contains(&(to, identity)),
            "seed {seed}: invariant 1: {who} ({}) read message #{m} ({:?}) of {sender}, to which \
             it was not entitled (resent: {resent:?})",
            self.role(&to).label(),
            msg.kind
        );
        match (shape, msg.kind) {
            (Shape::Direct, MsgKind::Direct(account)) => {
                assert!(account == to.account && from.account != to.account)
            }
            (Shape::OwnCopy(sent_to), MsgKind::Direct(account)) => {
                assert!(sent_to == account && from.account == to.account)
            }
            (Shape::Group(g), MsgKind::Group(sent)) => assert_eq!(g, sent),
            (_, kind) => panic!("seed {seed}: {who} read message #{m} ({kind:?}) in another shape"),
        }
        if let Some(replaced) = resent {
            assert_eq!(
                self.env_msg.get(&replaced),
                Some(&m),
                "seed {seed}: a resend to {who} names an envelope of another message"
            );
        }
        if self.role(&to) != Role::Honest {
            self.count("bodies read by insiders (entitled)");
            return;
        }
        if let Shape::Group(g) = shape {
            let members = if g == ROOM { &self.room } else { &self.private };
            assert!(
                members.contains(&from.account) || from.account == to.account,
                "seed {seed}: {who} accepted a group message from a non-member"
            );
        }
        // The app stores a message under its envelope's id, a resend under the id it replaces.
        let key = resent.unwrap_or(envelope);
        if !self.shown.insert((to, key)) {
            // The library delivered the body again, but under an id the app already showed:
            // the original after its resend, or a resend after the original finally read.
            self.count(if resent.is_some() {
                "app: resend of an envelope it showed (deduped by id)"
            } else {
                "app: envelope it showed as a resend (deduped by id)"
            });
            return;
        }
        *self.reads.entry((to, m)).or_default() += 1;
        self.failures.remove(&(to, m));
        self.count(if resent.is_some() {
            "honest reads (resent)"
        } else {
            "honest reads"
        });
    }

    /// An honest app answers a retry request it accepted with the body it stored.
    fn answer(&mut self, at: DeviceAddress, request: RetryRequest) {
        let m = *self
            .sent_store
            .get(&(at, request.send_id))
            .unwrap_or_else(|| panic!("the app of {} stored no such send", self.name(&at)));
        let body = self.msgs[m].body.clone();
        let now = self.now;
        match self.run_op(at, now, |d, rng, now| {
            d.answer_retry(rng, now, &request, &body)
        }) {
            Ok(outbox) => {
                self.count("retries answered");
                self.ship(at, outbox, Some(m), Kind::Resend, None);
            }
            Err(e) => {
                *self
                    .stats
                    .honest_errors
                    .entry(format!("answer_retry: {}", err_name(&e)))
                    .or_default() += 1;
            }
        }
    }

    /// A call key message arrived from `from` (fanout authenticated it).
    fn on_call_key(&mut self, at: DeviceAddress, from: DeviceAddress, message: CallKeyMessage) {
        let config = CallConfig::default();
        let key = (message.call(), message.epoch());
        let genuine = self
            .epochs
            .get(&key)
            .is_some_and(|(_, bytes)| *bytes == *message.to_bytes());
        let seed = self.seed;
        let who = self.name(&at);
        if self.role(&at) != Role::Honest {
            if genuine && self.role(&from) == Role::Honest {
                let participants = &self.epochs[&key].0;
                assert!(
                    participants.contains(&at),
                    "seed {seed}: invariant 1: {who} obtained the key of call epoch {} it is \
                     not a participant of",
                    key.1
                );
                // It may use it: the SRTP keys of the epoch it is in.
                let call = Call::from_key_message(at, &from, message.clone(), &config).unwrap();
                call.srtp_keys(&call.manager()).unwrap();
                self.count("call epoch keys obtained by insiders (entitled)");
                self.adv_calls.insert(message.call(), message);
            }
            return;
        }
        let from_role = self.role(&from);
        let held = self.held_calls.get(&(at, key.0)).cloned();
        let result = match held {
            Some(mut call) => {
                let before = call.to_bytes();
                match call.apply(&from, message.clone(), &config) {
                    Ok(()) => Ok(call),
                    Err(SyncError::CallKeyAhead { .. }) => {
                        assert!(*before == *call.to_bytes());
                        call.catch_up(&from, message.clone(), &config)
                            .map(|()| call)
                    }
                    Err(e) => {
                        assert!(
                            *before == *call.to_bytes(),
                            "a refused call key changed a call"
                        );
                        Err(e)
                    }
                }
            }
            None => Call::from_key_message(at, &from, message.clone(), &config),
        };
        match result {
            Ok(call) => {
                assert!(
                    genuine,
                    "seed {seed}: {who} took a call key that its manager never made (from {})",
                    self.name(&from)
                );
                assert!(self.epochs[&key].0.contains(&at));
                self.held_calls.insert((at, key.0), call);
                self.count("call keys applied");
            }
            Err(e) => {
                if from_role != Role::Honest {
                    self.tally_name(
                        Role::label(from_role),
                        "forged call key",
                        Some(format!("Sync({e:?})")),
                    );
                } else {
                    // A late key of an epoch already passed, or the removal of a device that
                    // learns it is out.
                    *self
                        .stats
                        .honest_errors
                        .entry(format!("call key: Sync({e:?})"))
                        .or_default() += 1;
                    if e == SyncError::NotInCall {
                        self.held_calls.remove(&(at, key.0));
                    }
                }
            }
        }
    }

    /// Delivers one queued envelope to the device it is addressed to.
    fn deliver_one(&mut self, env: Env) {
        let to_role = self.role(&env.to);
        let origin_role = self.role(&env.origin);
        let result = self.receive(env.to, &env.bytes);
        if origin_role != Role::Honest && to_role == Role::Honest {
            let attack = match env.kind {
                Kind::Message if is_group(&env.bytes) => "send a group message",
                Kind::Message => "send a 1:1 message",
                Kind::Distribution => "send its sender key",
                _ => "send other payloads",
            };
            self.tally(origin_role.label(), attack, &result, false);
        }
        match result {
            Ok(()) => {
                self.count("deliveries read");
                self.delivered.push(env);
                if self.delivered.len() > OBSERVED {
                    self.delivered.remove(0);
                }
            }
            Err(e) => {
                if to_role != Role::Honest || origin_role != Role::Honest {
                    return;
                }
                let name = err_name(&e);
                *self.stats.honest_errors.entry(name.clone()).or_default() += 1;
                let Some(m) = env.msg else { return };
                if self.reads.contains_key(&(env.to, m)) {
                    return;
                }
                let f = self.failures.entry((env.to, m)).or_insert(Failure {
                    original: None,
                    error: name.clone(),
                    retries: 0,
                });
                f.error = name;
                // The app asks again about the copy that failed last, with a fresh budget when
                // it is another copy: a tampered copy that failed first may name another
                // sender (a flipped device id in a group header), whose retries cannot heal
                // the genuine copy that fails after it.
                if env.kind == Kind::Message
                    && f.original.as_ref().is_none_or(|o| o.bytes != env.bytes)
                {
                    if f.original.is_some() {
                        f.retries = 0;
                    }
                    f.original = Some(env);
                }
            }
        }
    }

    /// An honest app deals with a message it could not read: it tries the envelope again (a
    /// sender key may have arrived), or asks its sender for it again.
    fn heal(&mut self, key: (DeviceAddress, usize), max_retries: u8, try_again: bool) -> bool {
        let (d, m) = key;
        let sender = self.msgs[m].sender;
        if self.reads.contains_key(&key)
            || self.role(&d) != Role::Honest
            || self.role(&sender) != Role::Honest
        {
            self.failures.remove(&key);
            return false;
        }
        let Some(f) = self.failures.get(&key).cloned() else {
            return false;
        };
        let Some(original) = f.original else {
            return false;
        };
        if try_again {
            match self.receive(d, &original.bytes) {
                Ok(()) => return false,
                Err(e) => {
                    if let Some(f) = self.failures.get_mut(&key) {
                        f.error = err_name(&e);
                    }
                }
            }
        }
        if f.retries >= max_retries {
            return false;
        }
        let reason = retry_reason(&self.failures[&key].error);
        let now = self.now;
        match self.guard(d, |dev, rng| {
            dev.request_retry(rng, now, &original.bytes, reason)
        }) {
            Ok((to, request)) => {
                self.failures.get_mut(&key).unwrap().retries += 1;
                self.count("retries requested");
                self.ship_env(Env {
                    to,
                    bytes: request,
                    origin: d,
                    msg: Some(m),
                    kind: Kind::Retry,
                    epoch: None,
                });
                true
            }
            Err(e) => {
                *self
                    .stats
                    .honest_errors
                    .entry(format!("request_retry: {}", err_name(&e)))
                    .or_default() += 1;
                false
            }
        }
    }

    /// Delivers, at once, what is queued for `to` (the answers an attack may have drawn).
    fn flush_to(&mut self, to: DeviceAddress) {
        let (mine, rest): (Vec<Env>, Vec<Env>) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition(|e| e.to == to);
        self.queue = rest;
        for env in mine {
            self.deliver_one(env);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Honest activity
// ---------------------------------------------------------------------------------------------

impl Sim {
    fn honest_send(&mut self, group: bool) {
        let Some(from) = self.pick(&self.honest()) else {
            return;
        };
        let kind = if group {
            let groups: Vec<GroupId> = [ROOM, PRIVATE]
                .into_iter()
                .filter(|g| {
                    let members = if *g == ROOM {
                        &self.room
                    } else {
                        &self.private
                    };
                    members.contains(&from.account)
                })
                .collect();
            let Some(g) = self.pick(&groups) else { return };
            MsgKind::Group(g)
        } else {
            let roll = self.rng.next_u32() % 100;
            let to = match roll {
                0..=59 => self.accounts[HONEST_ACCOUNTS[(roll % 4) as usize]].key,
                60..=74 => self.accounts[MALLORY].key,
                75..=84 => self.accounts[EVE].key,
                85..=94 => self.accounts[ROGUE].key,
                _ => from.account,
            };
            MsgKind::Direct(to)
        };
        self.send_as(from, kind, "msg");
    }

    /// `from` sends a message through the public API; returns whether it went out.
    fn send_as(&mut self, from: DeviceAddress, kind: MsgKind, tag: &str) -> bool {
        let (m, body) = self.new_msg(from, kind, tag);
        let now = self.clock_of(from);
        let result = match kind {
            MsgKind::Direct(to) => {
                self.run_op(from, now, |d, rng, now| d.send(rng, now, &to, &body))
            }
            MsgKind::Group(g) => {
                self.run_op(from, now, |d, rng, now| d.send_group(rng, now, g, &body))
            }
            MsgKind::Forged => unreachable!(),
        };
        let outbox = match result {
            Ok(o) => o,
            Err(e) => {
                assert!(
                    self.role(&from) != Role::Honest,
                    "seed {}: honest {} could not send: {e}",
                    self.seed,
                    self.name(&from)
                );
                self.tally(
                    self.role(&from).label(),
                    "send (refused by its own device)",
                    &Err::<(), _>(e),
                    false,
                );
                return false;
            }
        };
        let entitled = self.entitled(from, kind, now);
        let shipped: BTreeSet<DeviceAddress> = match &outbox.group {
            Some((_, recipients)) => recipients.iter().copied().collect(),
            None => outbox.envelopes.iter().map(|(a, _)| *a).collect(),
        };
        assert_eq!(
            shipped,
            entitled.iter().map(|(a, _)| *a).collect::<BTreeSet<_>>(),
            "seed {}: the model's recipients differ from the outbox's",
            self.seed
        );
        if self.role(&from) == Role::Honest {
            // The sender's view is every account's current list (model sanity).
            for acc in &self.accounts {
                let held = self.devs[&from].device.device_list(&acc.key).unwrap();
                assert_eq!(
                    held.digest(),
                    acc.current.digest(),
                    "stale view of {}",
                    acc.name
                );
            }
        }
        self.msgs[m].entitled = entitled;
        self.sent_store.insert((from, outbox.send_id.unwrap()), m);
        let pairwise = if outbox.group.is_some() {
            Kind::Distribution
        } else {
            Kind::Message
        };
        self.ship(from, outbox, Some(m), pairwise, None);
        self.count(if matches!(kind, MsgKind::Group(_)) {
            "group sends"
        } else {
            "1:1 sends"
        });
        true
    }

    fn deliver_random(&mut self) {
        if self.queue.is_empty() {
            return;
        }
        let i = (self.rng.next_u32() as usize) % self.queue.len();
        let env = self.queue.swap_remove(i);
        self.deliver_one(env);
    }

    fn withhold(&mut self) {
        if self.queue.is_empty() {
            return;
        }
        let i = (self.rng.next_u32() as usize) % self.queue.len();
        let env = self.queue.swap_remove(i);
        self.withheld.push(env);
        self.tally_name(RELAY, "withhold an envelope until the settle phase", None);
    }

    /// A sender key distribution is lost for good: the group message fails and heals by retry.
    fn destroy_distribution(&mut self) {
        let candidates: Vec<usize> = (0..self.queue.len())
            .filter(|&i| self.queue[i].kind == Kind::Distribution)
            .collect();
        let Some(i) = self.pick(&candidates) else {
            return;
        };
        self.queue.swap_remove(i);
        self.tally_name(RELAY, "destroy a sender-key distribution", None);
    }

    fn heal_random(&mut self) {
        let keys: Vec<_> = self.failures.keys().copied().collect();
        if let Some(key) = self.pick(&keys) {
            let missing_key = self.failures[&key].error.contains("SenderKeyMissing");
            let wait = missing_key && self.chance(50);
            self.heal(key, 1, wait);
        }
    }

    fn restart(&mut self) {
        let Some(a) = self.pick(&self.honest()) else {
            return;
        };
        let dev = self.devs.get_mut(&a).unwrap();
        let reloaded = dev.store.load();
        assert!(
            *reloaded.to_bytes() == *dev.device.to_bytes(),
            "records of {} do not rebuild it",
            dev.name
        );
        dev.device = reloaded;
        self.count("restarts from records");
    }

    /// Time passes; primaries renew when due; companions not renewed expire.
    fn advance(&mut self, ms: u64) {
        let mut left = ms;
        while left > 0 {
            let step = left.min(20 * MINUTE);
            left -= step;
            self.now = self.now.plus_millis(step);
            for i in 0..self.accounts.len() {
                let a = &self.accounts[i];
                if a.primary.is_some()
                    && a.renewing
                    && self.now.as_millis() - a.last_renew.as_millis() >= RENEW_EVERY
                {
                    let now = self.now;
                    let a = &mut self.accounts[i];
                    a.current = a.primary.as_mut().unwrap().renew(now).unwrap().clone();
                    a.last_renew = now;
                    self.publish(i);
                    self.count("renewals");
                }
            }
            self.mark_expired();
        }
    }

    fn mark_expired(&mut self) {
        for a in self.honest() {
            let i = self.account_of(&a.account);
            let entry = self.accounts[i].current.entry(a.device).copied();
            match entry {
                Some(e) if e.is_active(self.now) => {}
                Some(e) => {
                    let dev = self.devs.get_mut(&a).unwrap();
                    dev.role = Role::Expired;
                    dev.clock = Some(Timestamp(e.expires_at.unwrap().as_millis() - 1));
                    self.count("companions expired");
                }
                None => panic!("an honest device left its list unnoticed"),
            }
        }
    }

    fn link(&mut self) {
        let candidates: Vec<usize> = HONEST_ACCOUNTS
            .into_iter()
            .filter(|&i| {
                let a = &self.accounts[i];
                a.renewing && a.current.active(self.now).count() <= 4
            })
            .collect();
        let Some(i) = self.pick(&candidates) else {
            return;
        };
        let now = self.now;
        let id = IdentityKeyPair::generate(&mut self.rng);
        let primary = self.accounts[i].primary.as_mut().unwrap();
        let inv = primary.invite(&mut self.rng, now).unwrap();
        let approval = primary.approve(now, &LinkRequest::new(&id, &inv)).unwrap();
        let (list, confirmation) = complete_link(&id, &inv, &approval, &self.config.lists).unwrap();
        primary.confirm(&confirmation).unwrap();
        self.accounts[i].current = list.clone();
        self.accounts[i].last_renew = now;
        let a = self.add_device(id, approval.device, list, Role::Honest);
        // The new device follows every account, and the groups its account is in.
        for j in 0..self.accounts.len() {
            if j != i {
                let key = self.accounts[j].key;
                let signed = self.accounts[j].current.signed().clone();
                self.guard(a, |d, _| d.update_device_list(now, &key, signed))
                    .unwrap();
            }
        }
        self.publish(i);
        self.sync_groups(a);
        self.count("companions linked");
    }

    fn unlink(&mut self) {
        let candidates: Vec<DeviceAddress> = self
            .honest()
            .into_iter()
            .filter(|a| {
                a.device != PRIMARY_DEVICE && [ALICE, BOB].contains(&self.account_of(&a.account))
            })
            .collect();
        let Some(a) = self.pick(&candidates) else {
            return;
        };
        let i = self.account_of(&a.account);
        let now = self.now;
        let list = self.accounts[i]
            .primary
            .as_mut()
            .unwrap()
            .unlink(now, a.device)
            .unwrap()
            .clone();
        self.accounts[i].current = list;
        self.accounts[i].last_renew = now;
        let dev = self.devs.get_mut(&a).unwrap();
        dev.role = Role::Unlinked;
        dev.clock = Some(now);
        self.publish(i);
        self.count("companions unlinked");
    }

    fn carol_expires(&mut self) {
        self.accounts[CAROL].renewing = false;
        let last = self.accounts[CAROL].last_renew.as_millis();
        let until = last + VALIDITY + 5 * MINUTE;
        let ms = until.saturating_sub(self.now.as_millis());
        self.advance(ms);
        self.accounts[CAROL].renewing = true;
        self.advance(MINUTE);
    }

    fn set_room(&mut self, with_eve: bool) {
        let eve = self.accounts[EVE].key;
        self.room.retain(|a| *a != eve);
        if with_eve {
            self.room.push(eve);
        }
        self.eve_removed = !with_eve;
        for a in self.honest() {
            self.sync_groups(a);
        }
        self.count(if with_eve {
            "eve added back to the room"
        } else {
            "eve removed from the room"
        });
    }

    fn dave_joins(&mut self) {
        self.private.push(self.accounts[DAVE].key);
        self.dave_joined_at = Some(self.msgs.len());
        for a in self.honest() {
            self.sync_groups(a);
        }
        self.count("dave joined the private group");
    }
}

// ---------------------------------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------------------------------

impl Sim {
    fn register_epoch(&mut self, c: usize) {
        let call = &self.calls[c].call;
        let message = call.key_message();
        self.epochs.insert(
            (call.id(), call.epoch()),
            (
                call.participants().iter().copied().collect(),
                message.to_bytes().to_vec(),
            ),
        );
    }

    /// The manager sends the current key to `to` (those active in its view).
    fn send_call_key(&mut self, c: usize, to: &[DeviceAddress]) {
        let manager = self.calls[c].manager;
        let message = self.calls[c].call.key_message().clone();
        let epoch = (message.call(), message.epoch());
        let now = self.now;
        let targets: Vec<DeviceAddress> = to
            .iter()
            .copied()
            .filter(|p| {
                *p != manager
                    && self.devs[&manager]
                        .device
                        .device_list(&p.account)
                        .is_some_and(|l| l.check(p.device, now).is_ok())
            })
            .collect();
        if targets.is_empty() {
            return;
        }
        let outbox = self
            .run_op(manager, now, |d, rng, now| {
                d.send_call_key(rng, now, &targets, &message)
            })
            .unwrap();
        self.ship(manager, outbox, None, Kind::CallKey, Some(epoch));
    }

    fn call_action(&mut self) {
        if self.calls.is_empty() {
            return;
        }
        let c = 0;
        let manager = self.calls[c].manager;
        let participants: Vec<DeviceAddress> = self.calls[c].call.participants().to_vec();
        let config = CallConfig::default();
        if self.chance(50) {
            // Remove someone, an insider if any is left.
            let insiders: Vec<_> = participants
                .iter()
                .copied()
                .filter(|p| *p != manager && self.role(p) != Role::Honest)
                .collect();
            let others: Vec<_> = participants
                .iter()
                .copied()
                .filter(|p| *p != manager)
                .collect();
            let Some(p) = self.pick(if insiders.is_empty() {
                &others
            } else {
                &insiders
            }) else {
                return;
            };
            self.calls[c].call.remove(&mut self.rng, &p).unwrap();
            self.register_epoch(c);
            let epoch = (self.calls[c].call.id(), self.calls[c].call.epoch());
            if self.role(&p) != Role::Honest {
                self.call_removed.insert(p, epoch);
            } else {
                self.held_calls.remove(&(p, epoch.0));
            }
            let rest = self.calls[c].call.participants().to_vec();
            self.send_call_key(c, &rest);
            self.count("call participants removed");
        } else {
            let candidates: Vec<_> = self
                .addresses()
                .into_iter()
                .filter(|a| {
                    !participants.contains(a)
                        && matches!(self.role(a), Role::Honest | Role::Colluding | Role::Removed)
                })
                .collect();
            let Some(p) = self.pick(&candidates) else {
                return;
            };
            self.calls[c].call.join(&mut self.rng, p, &config).unwrap();
            self.register_epoch(c);
            self.call_removed.remove(&p);
            let all = self.calls[c].call.participants().to_vec();
            self.send_call_key(c, &all);
            self.count("call participants joined");
        }
    }

    fn start_call(&mut self) {
        let primaries: Vec<DeviceAddress> = HONEST_ACCOUNTS
            .iter()
            .map(|&i| DeviceAddress {
                account: self.accounts[i].key,
                device: PRIMARY_DEVICE,
            })
            .collect();
        let manager = self.pick(&primaries).unwrap();
        let mut participants = vec![
            DeviceAddress {
                account: self.accounts[MALLORY].key,
                device: PRIMARY_DEVICE,
            },
            DeviceAddress {
                account: self.accounts[EVE].key,
                device: PRIMARY_DEVICE,
            },
        ];
        for _ in 0..3 {
            let honest = self.honest();
            if let Some(p) = self.pick(&honest) {
                participants.push(p);
            }
        }
        let call = Call::start(
            &mut self.rng,
            CallKind::Group,
            manager,
            &participants,
            &CallConfig::default(),
        )
        .unwrap();
        let all = call.participants().to_vec();
        self.held_calls.insert((manager, call.id()), call.clone());
        self.calls.push(CallRec { manager, call });
        self.register_epoch(0);
        self.send_call_key(0, &all);
        self.count("calls started");
    }
}

// ---------------------------------------------------------------------------------------------
// Attacks
// ---------------------------------------------------------------------------------------------

type Attack = fn(&mut Sim);

const ATTACKS: &[Attack] = &[
    Sim::atk_reroute_to_insider,
    Sim::atk_reroute_to_sibling,
    Sim::atk_read_group,
    Sim::atk_retry_rerouted,
    Sim::atk_retry_group,
    Sim::atk_retry_own,
    Sim::atk_replay_retry,
    Sim::atk_replay,
    Sim::atk_tamper,
    Sim::atk_forged_resend,
    Sim::atk_forged_own_copy,
    Sim::atk_redistribute,
    Sim::atk_rewrap_group,
    Sim::atk_rewrap_pairwise,
    Sim::atk_rewrap_retry,
    Sim::atk_rogue_list,
    Sim::atk_equivocation,
    Sim::atk_list_rollback,
    Sim::atk_insider_send,
    Sim::atk_forged_call_key,
    Sim::atk_call_removed,
    Sim::atk_newcomer,
    Sim::atk_sweep,
    Sim::atk_sweep,
];

impl Sim {
    /// An insider device, its role chosen first (so every role acts about as often).
    fn insider(&mut self) -> Option<DeviceAddress> {
        let roles: BTreeSet<&'static str> = self
            .adversaries()
            .iter()
            .map(|a| self.role(a).label())
            .collect();
        let roles: Vec<_> = roles.into_iter().collect();
        let role = self.pick(&roles)?;
        let devices: Vec<_> = self
            .adversaries()
            .into_iter()
            .filter(|a| self.role(a).label() == role)
            .collect();
        self.pick(&devices)
    }

    fn observed_where(&mut self, pred: impl Fn(&Sim, &Env) -> bool) -> Option<Env> {
        let candidates: Vec<Env> = self
            .observed
            .iter()
            .filter(|e| pred(self, e))
            .cloned()
            .collect();
        self.pick(&candidates)
    }

    /// A pairwise envelope with its header rewritten, list versions and digest fixed up as
    /// `via` holds them, so that it reaches the AEAD there.
    fn rewrite_pairwise(
        &self,
        bytes: &[u8],
        sender: Option<DeviceAddress>,
        recipient: Option<DeviceAddress>,
        via: DeviceAddress,
    ) -> Vec<u8> {
        let mut b = bytes.to_vec();
        if let Some(s) = sender {
            b[3..39].copy_from_slice(&addr_bytes(&s));
        }
        if let Some(r) = recipient {
            b[39..75].copy_from_slice(&addr_bytes(&r));
        }
        let s = read_addr(&b[3..39]);
        let r = read_addr(&b[39..75]);
        let d = &self.devs[&via].device;
        if let (Some(sl), Some(rl)) = (d.device_list(&s.account), d.device_list(&r.account)) {
            b[75..83].copy_from_slice(&sl.version().to_be_bytes());
            b[83..91].copy_from_slice(&rl.version().to_be_bytes());
            b[91..99].copy_from_slice(&lists_digest(&sl.digest(), &rl.digest()));
        }
        b
    }

    fn honest_origin(&self, e: &Env) -> bool {
        self.role(&e.origin) == Role::Honest
    }

    /// A pairwise envelope meant for an honest device, re-routed to an insider's device.
    fn atk_reroute_to_insider(&mut self) {
        if let Some(x) = self.insider() {
            self.reroute_to_insider_as(x);
        }
    }

    fn reroute_to_insider_as(&mut self, x: DeviceAddress) {
        let Some(env) = self.observed_where(|s, e| {
            is_pairwise(&e.bytes) && s.role(&e.to) == Role::Honest && e.origin != x
        }) else {
            return;
        };
        let b = self.rewrite_pairwise(&env.bytes, None, Some(x), x);
        self.register(&b, env.origin, env.msg);
        let r = self.receive(x, &b);
        let attack = if env.kind == Kind::CallKey {
            "read a re-routed call key envelope"
        } else {
            "read a re-routed pairwise envelope"
        };
        self.tally(self.role(&x).label(), attack, &r, true);
    }

    /// An envelope for one honest device re-routed to another device of the same account.
    fn atk_reroute_to_sibling(&mut self) {
        let Some(env) = self.observed_where(|s, e| {
            is_pairwise(&e.bytes)
                && s.role(&e.to) == Role::Honest
                && s.honest()
                    .iter()
                    .any(|a| a.account == e.to.account && *a != e.to && *a != e.origin)
        }) else {
            return;
        };
        let siblings: Vec<_> = self
            .honest()
            .into_iter()
            .filter(|a| a.account == env.to.account && *a != env.to && *a != env.origin)
            .collect();
        let z = self.pick(&siblings).unwrap();
        let b = self.rewrite_pairwise(&env.bytes, None, Some(z), z);
        self.register(&b, env.origin, env.msg);
        let r = self.receive(z, &b);
        self.tally(RELAY, "re-route an envelope to a sibling device", &r, true);
    }

    /// The relay forwards a group envelope to an insider device (a removed member keeps
    /// receiving everything).
    fn atk_read_group(&mut self) {
        if let Some(x) = self.insider() {
            self.read_group_as(x);
        }
    }

    fn read_group_as(&mut self, x: DeviceAddress) {
        let Some(env) = self.group_envelope_for(x) else {
            return;
        };
        let m = env.msg.unwrap();
        let entitled = self.msgs[m].entitled.contains(&(x, self.devs[&x].identity));
        let r = self.receive(x, &env.bytes);
        let attack = if entitled {
            "read a group message it was sent"
        } else {
            "read a group message it was not sent"
        };
        self.tally(self.role(&x).label(), attack, &r, !entitled);
    }

    /// An honest group envelope the relay saw, one `x` was entitled to or (as often as there
    /// is one) one it was not.
    fn group_envelope_for(&mut self, x: DeviceAddress) -> Option<Env> {
        let want = self.chance(50);
        let ik = self.devs[&x].identity;
        let usable = |s: &Sim, e: &Env| {
            is_group(&e.bytes) && e.msg.is_some() && s.honest_origin(e) && e.origin != x
        };
        self.observed_where(|s, e| {
            usable(s, e) && s.msgs[e.msg.unwrap()].entitled.contains(&(x, ik)) == want
        })
        .or_else(|| self.observed_where(usable))
    }

    /// The insider points someone else's pairwise envelope at itself and asks its sender to
    /// send it again.
    fn atk_retry_rerouted(&mut self) {
        if let Some(x) = self.insider() {
            self.retry_rerouted_as(x);
        }
    }

    fn retry_rerouted_as(&mut self, x: DeviceAddress) {
        let Some(env) = self.observed_where(|s, e| {
            is_pairwise(&e.bytes)
                && matches!(e.kind, Kind::Message | Kind::Resend | Kind::CallKey)
                && s.honest_origin(e)
                && e.to != x
                && e.origin != x
        }) else {
            return;
        };
        let b = self.rewrite_pairwise(&env.bytes, None, Some(x), x);
        self.register(&b, env.origin, env.msg);
        let label = self.role(&x).label();
        let attack = if env.kind == Kind::CallKey {
            "retry a re-routed call key envelope"
        } else {
            "retry a re-routed 1:1 envelope"
        };
        self.retry_attack(x, &b, label, attack, false);
    }

    /// The insider asks for a group message again.
    fn atk_retry_group(&mut self) {
        if let Some(x) = self.insider() {
            self.retry_group_as(x);
        }
    }

    fn retry_group_as(&mut self, x: DeviceAddress) {
        let Some(env) = self.group_envelope_for(x) else {
            return;
        };
        let m = env.msg.unwrap();
        let entitled = self.msgs[m].entitled.contains(&(x, self.devs[&x].identity));
        let label = self.role(&x).label();
        let attack = if entitled {
            "retry a group message it was sent"
        } else {
            "retry a group message it was not sent"
        };
        self.retry_attack(x, &env.bytes.clone(), label, attack, entitled);
    }

    /// The insider asks for a message it was sent: granted (entitled retries still work).
    fn atk_retry_own(&mut self) {
        let Some(x) = self.insider() else { return };
        let Some(env) = self.observed_where(|s, e| {
            e.to == x && e.kind == Kind::Message && is_pairwise(&e.bytes) && s.honest_origin(e)
        }) else {
            return;
        };
        let label = self.role(&x).label();
        self.retry_attack(
            x,
            &env.bytes,
            label,
            "retry a 1:1 message it was sent",
            true,
        );
    }

    /// `x` asks for `failed` again; the request goes to the sender named in it, whose app
    /// answers if it accepts; answers reach `x` at once.
    fn retry_attack(
        &mut self,
        x: DeviceAddress,
        failed: &[u8],
        label: &'static str,
        attack: &'static str,
        entitled: bool,
    ) {
        // A stale device asks with the clock under which it was still listed.
        let now = self.devs[&x].clock.unwrap_or(self.now);
        let reasons = [
            RetryReason::NoSession,
            RetryReason::AuthenticationFailed,
            RetryReason::SenderKeyMissing,
            RetryReason::Other(9),
        ];
        let reason = self.pick(&reasons).unwrap();
        let request = self.guard(x, |d, rng| d.request_retry(rng, now, failed, reason));
        let (to, request) = match request {
            Ok(r) => r,
            Err(e) => {
                self.tally_name(
                    label,
                    "retry (its own device would not ask)",
                    Some(err_name(&e)),
                );
                return;
            }
        };
        self.register(&request, x, None);
        self.observed.push(Env {
            to,
            bytes: request.clone(),
            origin: x,
            msg: None,
            kind: Kind::Retry,
            epoch: None,
        });
        if !self.devs.contains_key(&to) {
            return;
        }
        let r = self.receive(to, &request);
        // A sender must refuse unless the insider really was a recipient of that message.
        self.tally(
            label,
            attack,
            &r,
            !entitled && self.role(&to) == Role::Honest,
        );
        if r.is_ok() {
            self.delivered.push(Env {
                to,
                bytes: request,
                origin: x,
                msg: None,
                kind: Kind::Retry,
                epoch: None,
            });
            self.flush_to(x);
        }
    }

    /// The relay replays a retry request it delivered, or re-routes it to another device.
    fn atk_replay_retry(&mut self) {
        let delivered: Vec<Env> = self
            .delivered
            .iter()
            .filter(|e| e.kind == Kind::Retry)
            .cloned()
            .collect();
        let Some(env) = self.pick(&delivered) else {
            return;
        };
        if self.chance(50) {
            let r = self.receive(env.to, &env.bytes);
            self.tally(RELAY, "replay a retry request", &r, true);
        } else {
            let others: Vec<_> = self
                .honest()
                .into_iter()
                .filter(|a| *a != env.to && *a != env.origin)
                .collect();
            let Some(z) = self.pick(&others) else { return };
            let mut b = env.bytes.clone();
            b[39..75].copy_from_slice(&addr_bytes(&z));
            self.register(&b, env.origin, None);
            let r = self.receive(z, &b);
            self.tally(
                RELAY,
                "re-route a retry request to another device",
                &r,
                true,
            );
        }
    }

    fn atk_replay(&mut self) {
        let delivered: Vec<Env> = self
            .delivered
            .iter()
            .filter(|e| e.kind != Kind::Retry)
            .cloned()
            .collect();
        let Some(env) = self.pick(&delivered) else {
            return;
        };
        let r = self.receive(env.to, &env.bytes);
        self.tally(RELAY, "replay a delivered envelope", &r, true);
    }

    fn atk_tamper(&mut self) {
        let candidates: Vec<Env> = self
            .queue
            .iter()
            .filter(|e| self.role(&e.to) == Role::Honest)
            .cloned()
            .collect();
        let Some(env) = self.pick(&candidates) else {
            return;
        };
        let mut b = env.bytes.clone();
        match self.rng.next_u32() % 4 {
            3 => {
                // The tag (or signature): everything that names the message stays intact.
                let last = b.len() - 1;
                b[last] ^= 1;
            }
            0 => {
                let at = (self.rng.next_u32() as usize) % b.len();
                b[at] ^= 1 << (self.rng.next_u32() % 8);
            }
            1 => {
                let len = (self.rng.next_u32() as usize) % b.len();
                b.truncate(len);
            }
            _ => {
                // A header field the relay could wish to change: the list versions.
                if is_pairwise(&b) {
                    b[90] ^= 1;
                } else {
                    let last = b.len() - 1;
                    b[last] ^= 0x80;
                }
            }
        }
        let r = self.receive(env.to, &b);
        self.tally(RELAY, "tamper with an envelope", &r, true);
        if let (Err(e), true, Some(m)) = (&r, self.apps_retry_tampered, env.msg) {
            // The app will ask the sender for what it could not read.
            if env.kind == Kind::Message
                && self.honest_origin(&env)
                && !self.reads.contains_key(&(env.to, m))
            {
                self.register(&b, env.origin, Some(m));
                self.failures.entry((env.to, m)).or_insert(Failure {
                    original: Some(Env { bytes: b, ..env }),
                    error: err_name(e),
                    retries: 0,
                });
            }
        }
    }

    fn colluding(&mut self) -> Option<DeviceAddress> {
        let m = self.with_role(|r| r == Role::Colluding);
        self.pick(&m)
    }

    fn ensure_session(&mut self, a: DeviceAddress, b: DeviceAddress) -> bool {
        if self.devs[&a].device.has_session(&b) {
            return true;
        }
        let now = self.now;
        let bundle = self.devs[&b].device.bundle(None, None);
        self.guard(a, |d, rng| d.start_sessions(rng, now, &[(b, bundle)]))
            .is_ok()
    }

    /// Mallory seals a payload of her choosing to an honest device.
    fn mallory_seal(
        &mut self,
        y: DeviceAddress,
        payload: &[u8],
    ) -> Option<(DeviceAddress, Vec<u8>)> {
        let m = self.colluding()?;
        if !self.ensure_session(m, y) {
            return None;
        }
        let now = self.now;
        let sealed = self
            .guard(m, |d, rng| hooks::seal_raw_payload(d, rng, now, y, payload))
            .ok()?;
        self.register(&sealed, m, None);
        Some((m, sealed))
    }

    /// Mallory sends a "resend" no retry asked her for: naming a retry the honest device has
    /// pending with someone else (the relay saw the request), or a made-up one.
    fn atk_forged_resend(&mut self) {
        let Some(y) = self.pick(&self.honest()) else {
            return;
        };
        let pending = self
            .observed_where(|_, e| e.kind == Kind::Retry && e.origin == y)
            .map(|e| e.bytes[75..91].to_vec());
        let reference: [u8; 16] = match pending {
            Some(r) => r.try_into().unwrap(),
            None => {
                let mut r = [0u8; 16];
                self.rng.fill_bytes(&mut r);
                r
            }
        };
        let m_addr = self.with_role(|r| r == Role::Colluding)[0];
        let (id, body) = self.new_msg(m_addr, MsgKind::Forged, "forged resend");
        let _ = id;
        let group = self.chance(50);
        let payload = if group {
            hooks::group_resend_payload(reference, ROOM, &body)
        } else {
            let mut p = vec![2, 0x0c, 0x06];
            p.extend_from_slice(&reference);
            p.extend_from_slice(&[0x5a; 16]); // the message nonce
            p.push(0);
            p.extend_from_slice(&body);
            p
        };
        let Some((_, sealed)) = self.mallory_seal(y, &payload) else {
            return;
        };
        let r = self.receive(y, &sealed);
        let attack = if group {
            "forge a group resend"
        } else {
            "forge a 1:1 resend"
        };
        self.tally(Role::Colluding.label(), attack, &r, true);
    }

    /// Mallory sends a "copy of a message this account sent" to a device of another account.
    fn atk_forged_own_copy(&mut self) {
        let Some(y) = self.pick(&self.honest()) else {
            return;
        };
        let m_addr = self.with_role(|r| r == Role::Colluding)[0];
        let (_, body) = self.new_msg(m_addr, MsgKind::Forged, "forged own copy");
        let mut payload = vec![2, 0x0c, 0x01];
        payload.extend_from_slice(&[0x5a; 16]); // the message nonce
        payload.push(1);
        payload.extend_from_slice(&self.accounts[ALICE].key.to_bytes());
        payload.extend_from_slice(&body);
        let Some((_, sealed)) = self.mallory_seal(y, &payload) else {
            return;
        };
        let r = self.receive(y, &sealed);
        self.tally(Role::Colluding.label(), "forge an own copy", &r, true);
    }

    /// Mallory hands an honest member's sender key (which she holds as a member) to another
    /// member as her own, then re-wraps that member's group messages under her address.
    fn atk_redistribute(&mut self) {
        let Some(m) = self.colluding() else { return };
        let state = self.devs[&m].device.to_bytes();
        let Some(env) = self.observed_where(|s, e| {
            is_group(&e.bytes)
                && s.honest_origin(e)
                && group_message(&e.bytes).is_some_and(|g| g.group() == ROOM)
                && stolen_distribution(&state, &e.origin, ROOM).is_some()
        }) else {
            return;
        };
        let payload = stolen_distribution(&state, &env.origin, ROOM).unwrap();
        let targets: Vec<_> = self
            .honest()
            .into_iter()
            .filter(|a| *a != env.origin && self.room.contains(&a.account))
            .collect();
        let Some(y) = self.pick(&targets) else { return };
        let Some((_, sealed)) = self.mallory_seal(y, &payload) else {
            return;
        };
        let r = self.receive(y, &sealed);
        self.tally(
            Role::Colluding.label(),
            "hand on another member's sender key as hers",
            &r,
            false,
        );
        let mut b = env.bytes.clone();
        b[3..39].copy_from_slice(&addr_bytes(&m));
        let version = self.devs[&y]
            .device
            .device_list(&m.account)
            .unwrap()
            .version();
        b[39..47].copy_from_slice(&version.to_be_bytes());
        self.register(&b, env.origin, env.msg);
        let r = self.receive(y, &b);
        self.tally(
            Role::Colluding.label(),
            "re-wrap that member's group message as hers",
            &r,
            true,
        );
    }

    fn rogue(&self) -> DeviceAddress {
        DeviceAddress {
            account: self.accounts[ROGUE].key,
            device: PRIMARY_DEVICE,
        }
    }

    /// The rogue re-wraps an honest group envelope under its own address.
    fn atk_rewrap_group(&mut self) {
        let Some(env) = self.observed_where(|s, e| {
            is_group(&e.bytes) && s.honest_origin(e) && s.role(&e.to) == Role::Honest
        }) else {
            return;
        };
        let r_addr = self.rogue();
        let mut b = env.bytes.clone();
        b[3..39].copy_from_slice(&addr_bytes(&r_addr));
        let version = self.devs[&env.to]
            .device
            .device_list(&r_addr.account)
            .unwrap()
            .version();
        b[39..47].copy_from_slice(&version.to_be_bytes());
        self.register(&b, env.origin, env.msg);
        let r = self.receive(env.to, &b);
        self.tally(
            Role::Rogue.label(),
            "re-wrap a group message as its own",
            &r,
            true,
        );
    }

    /// The rogue (or mallory) re-wraps an honest pairwise envelope as sent by its device.
    fn atk_rewrap_pairwise(&mut self) {
        let Some(env) = self.observed_where(|s, e| {
            is_pairwise(&e.bytes) && s.honest_origin(e) && s.role(&e.to) == Role::Honest
        }) else {
            return;
        };
        let r_addr = self.rogue();
        let b = self.rewrite_pairwise(&env.bytes, Some(r_addr), None, env.to);
        self.register(&b, env.origin, env.msg);
        let r = self.receive(env.to, &b);
        self.tally(
            Role::Rogue.label(),
            "re-wrap a pairwise envelope as its own",
            &r,
            true,
        );
    }

    /// The rogue re-wraps an honest retry request as its own.
    fn atk_rewrap_retry(&mut self) {
        let Some(env) = self.observed_where(|s, e| {
            e.kind == Kind::Retry && s.honest_origin(e) && s.role(&e.to) == Role::Honest
        }) else {
            return;
        };
        let mut b = env.bytes.clone();
        b[3..39].copy_from_slice(&addr_bytes(&self.rogue()));
        self.register(&b, env.origin, None);
        let r = self.receive(env.to, &b);
        self.tally(
            Role::Rogue.label(),
            "re-wrap a retry request as its own",
            &r,
            true,
        );
    }

    /// The rogue lists an honest device's key in its own signed list.
    fn atk_rogue_list(&mut self) {
        let Some(victim) = self.pick(&self.honest()) else {
            return;
        };
        let Some(y) = self.pick(&self.honest()) else {
            return;
        };
        let now = self.now;
        let victim_ik = self.devs[&victim].identity;
        let (account, phone) = self.accounts[ROGUE].rogue.clone().unwrap();
        let variant = self.rng.next_u32() % 3;
        let binding = match variant {
            0 => {
                let mut b = [0u8; 64];
                self.rng.fill_bytes(&mut b);
                Signature::from_bytes(b)
            }
            1 => hooks::device_binding(&phone, &account.public()),
            _ => {
                let i = self.account_of(&victim.account);
                binding_in_list(&self.accounts[i].current.to_bytes(), victim.device).unwrap()
            }
        };
        let version = self.accounts[ROGUE].next_version;
        self.accounts[ROGUE].next_version += 1;
        let entries = [
            (
                PRIMARY_DEVICE,
                phone.public(),
                now,
                None,
                hooks::device_binding(&phone, &account.public()),
            ),
            (
                DeviceId(7),
                victim_ik,
                now,
                Some(now.plus_millis(HOUR)),
                binding,
            ),
        ];
        let list = hooks::sign_device_list(&account, version, now, &entries);
        let rogue_key = self.accounts[ROGUE].key;
        let r = self.guard(y, |d, _| d.update_device_list(now, &rogue_key, list));
        let attack = match variant {
            0 => "list an honest device key (random binding)",
            1 => "list an honest device key (binding by another key)",
            _ => "list an honest device key (its binding to its own account)",
        };
        self.tally(Role::Rogue.label(), attack, &r, true);
    }

    /// The rogue signs a second list at the version everyone holds.
    fn atk_equivocation(&mut self) {
        let Some(y) = self.pick(&self.honest()) else {
            return;
        };
        let (account, phone) = self.accounts[ROGUE].rogue.clone().unwrap();
        let held = self.accounts[ROGUE].current.version();
        let issued = self
            .now
            .plus_millis(1 + u64::from(self.rng.next_u32() % 1000));
        let entry = (
            PRIMARY_DEVICE,
            phone.public(),
            T0,
            None,
            hooks::device_binding(&phone, &account.public()),
        );
        let list = hooks::sign_device_list(&account, held, issued, &[entry]);
        let rogue_key = self.accounts[ROGUE].key;
        let now = self.now;
        let r = self.guard(y, |d, _| d.update_device_list(now, &rogue_key, list));
        self.tally(
            Role::Rogue.label(),
            "equivocate: another list at the same version",
            &r,
            true,
        );
    }

    /// The relay serves an older list (e.g. one that still lists an unlinked companion).
    fn atk_list_rollback(&mut self) {
        let Some(y) = self.pick(&self.honest()) else {
            return;
        };
        let accounts: Vec<usize> = (0..self.accounts.len())
            .filter(|&i| self.accounts[i].history.len() >= 2)
            .collect();
        let Some(i) = self.pick(&accounts) else {
            return;
        };
        let key = self.accounts[i].key;
        let held = self.devs[&y].device.device_list(&key).unwrap().version();
        let older: Vec<SignedDeviceList> = self.accounts[i]
            .history
            .iter()
            .filter(|l| l.version() < held)
            .cloned()
            .collect();
        let Some(list) = self.pick(&older) else {
            return;
        };
        let now = self.now;
        let r = self.guard(y, |d, _| d.update_device_list(now, &key, list));
        self.tally(RELAY, "serve a rolled-back device list", &r, true);
    }

    /// A stale companion, or the member removed from the room, tries every way to read.
    fn atk_sweep(&mut self) {
        let mut stale = self.with_role(|r| matches!(r, Role::Unlinked | Role::Expired));
        if self.eve_removed {
            stale.extend(self.with_role(|r| r == Role::Removed));
        }
        let Some(x) = self.pick(&stale) else { return };
        self.read_group_as(x);
        self.reroute_to_insider_as(x);
        self.retry_rerouted_as(x);
        self.retry_group_as(x);
    }

    /// An insider sends through the API (a removed member into the room, a stale companion
    /// with its old clock, mallory into a group she set up herself).
    fn atk_insider_send(&mut self) {
        let Some(x) = self.insider() else { return };
        let kind = match self.rng.next_u32() % 3 {
            0 => MsgKind::Group(ROOM),
            1 if self.role(&x) == Role::Colluding => MsgKind::Group(PRIVATE),
            _ => {
                let i = HONEST_ACCOUNTS[(self.rng.next_u32() % 4) as usize];
                MsgKind::Direct(self.accounts[i].key)
            }
        };
        self.send_as(x, kind, "insider");
    }

    /// Mallory, who held a call's key, sends a next epoch of her own making, as its manager.
    fn atk_forged_call_key(&mut self) {
        let Some(m) = self.colluding() else { return };
        let known: Vec<CallKeyMessage> = self.adv_calls.values().cloned().collect();
        let Some(known) = self.pick(&known) else {
            return;
        };
        let mut bytes = known.to_bytes().to_vec();
        let epoch = known.epoch() + 1 + self.rng.next_u32() % 2;
        bytes[19..23].copy_from_slice(&epoch.to_be_bytes());
        self.rng.fill_bytes(&mut bytes[23..55]);
        let forged = CallKeyMessage::from_bytes(&bytes).unwrap();
        let now = self.now;
        let targets: Vec<DeviceAddress> = self
            .honest()
            .into_iter()
            .filter(|a| {
                self.devs[&m]
                    .device
                    .device_list(&a.account)
                    .is_some_and(|l| l.check(a.device, now).is_ok())
            })
            .take(3)
            .collect();
        let Ok(outbox) = self.run_op(m, now, |d, rng, now| {
            d.send_call_key(rng, now, &targets, &forged)
        }) else {
            return;
        };
        for (to, bytes) in outbox.envelopes {
            self.register(&bytes, m, None);
            // Refusals are counted where the app applies the key.
            let _ = self.receive(to, &bytes);
        }
    }

    /// A device removed from the call reads and asks for later epochs' keys.
    fn atk_call_removed(&mut self) {
        let removed: Vec<DeviceAddress> = self.call_removed.keys().copied().collect();
        let Some(x) = self.pick(&removed) else { return };
        let Some(env) = self.observed_where(|s, e| {
            e.kind == Kind::CallKey
                && e.epoch.is_some_and(|k| !s.epochs[&k].0.contains(&x))
                && e.to != x
        }) else {
            return;
        };
        let b = self.rewrite_pairwise(&env.bytes, None, Some(x), x);
        self.register(&b, env.origin, None);
        let r = self.receive(x, &b);
        self.tally(CALL_REMOVED, "read a later epoch's key", &r, true);
        self.retry_attack(x, &b, CALL_REMOVED, "retry a later epoch's key", false);
    }

    /// Dave, after joining the private group, asks for a message sent before he joined.
    fn atk_newcomer(&mut self) {
        let Some(joined) = self.dave_joined_at else {
            return;
        };
        let dave = self.accounts[DAVE].key;
        let Some(d) = self.pick(
            &self
                .honest()
                .into_iter()
                .filter(|a| a.account == dave)
                .collect::<Vec<_>>(),
        ) else {
            return;
        };
        let Some(env) = self.observed_where(|s, e| {
            is_group(&e.bytes)
                && e.msg.is_some_and(|m| m < joined)
                && s.honest_origin(e)
                && group_message(&e.bytes).is_some_and(|g| g.group() == PRIVATE)
        }) else {
            return;
        };
        let r = self.receive(d, &env.bytes);
        self.tally(
            NEWCOMER,
            "read a group message from before it joined",
            &r,
            true,
        );
        self.retry_attack(
            d,
            &env.bytes,
            NEWCOMER,
            "retry a group message from before it joined",
            false,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

impl Sim {
    fn step(&mut self, i: usize) {
        if i == self.schedule.call_start {
            self.start_call();
        }
        if i == self.schedule.eve_removal {
            self.set_room(false);
        }
        if i == self.schedule.unlink {
            self.unlink();
        }
        if i == self.schedule.carol_expiry {
            self.carol_expires();
        }
        if i == self.schedule.dave_joins {
            self.dave_joins();
        }
        if Some(i) == self.schedule.eve_back {
            self.set_room(true);
        }
        match self.rng.next_u32() % 100 {
            0..=12 => self.honest_send(false),
            13..=19 => self.honest_send(true),
            20..=41 => self.deliver_random(),
            42..=44 => self.withhold(),
            45 => self.destroy_distribution(),
            46..=49 => self.heal_random(),
            50..=83 => {
                let attack = ATTACKS[(self.rng.next_u32() as usize) % ATTACKS.len()];
                attack(self);
            }
            84..=87 => {
                let minutes = 5 + u64::from(self.rng.next_u32() % 35);
                self.advance(minutes * MINUTE);
            }
            88..=89 => self.link(),
            90..=92 => self.call_action(),
            93 => self.restart(),
            _ => self.deliver_random(),
        }
        let secs = 1 + u64::from(self.rng.next_u32() % 30);
        self.advance(secs * 1000);
    }

    /// The adversary stops: everything withheld is delivered, every failure is tried again and
    /// asked for again, call keys are re-sent to participants that lack them.
    fn settle(&mut self) {
        for _round in 0..12 {
            self.queue.append(&mut self.withheld);
            let mut guard = 0;
            while !self.queue.is_empty() {
                guard += 1;
                assert!(guard < 100, "the settle phase does not converge");
                let all = std::mem::take(&mut self.queue);
                let (group, pairwise): (Vec<Env>, Vec<Env>) =
                    all.into_iter().partition(|e| is_group(&e.bytes));
                for env in pairwise.into_iter().chain(group) {
                    self.deliver_one(env);
                }
            }
            let keys: Vec<_> = self.failures.keys().copied().collect();
            let mut asked = false;
            for key in keys {
                asked |= self.heal(key, 3, true);
            }
            let lagging = self.lagging_call_participants();
            for &p in &lagging {
                self.send_call_key(0, &[p]);
            }
            if !asked && lagging.is_empty() && self.queue.is_empty() {
                break;
            }
        }
    }

    fn lagging_call_participants(&self) -> Vec<DeviceAddress> {
        let Some(rec) = self.calls.first() else {
            return Vec::new();
        };
        let manager_keys = rec.call.srtp_keys(&rec.manager).unwrap();
        rec.call
            .participants()
            .iter()
            .copied()
            .filter(|p| *p != rec.manager && self.role(p) == Role::Honest)
            .filter(|p| {
                self.held_calls.get(&(*p, rec.call.id())).is_none_or(|c| {
                    c.epoch() != rec.call.epoch()
                        || c.srtp_keys(&rec.manager).ok() != Some(manager_keys.clone())
                })
            })
            .collect()
    }

    /// Invariant 3, after the settle phase.
    fn check_nothing_lost(&self) {
        let mut lost = Vec::new();
        for (m, msg) in self.msgs.iter().enumerate() {
            if matches!(msg.kind, MsgKind::Forged) || self.role(&msg.sender) != Role::Honest {
                continue;
            }
            for (d, identity) in &msg.entitled {
                let dev = &self.devs[d];
                if dev.role != Role::Honest || dev.identity != *identity {
                    continue;
                }
                let n = self.reads.get(&(*d, m)).copied().unwrap_or(0);
                if n != 1 {
                    let f = self.failures.get(&(*d, m));
                    lost.push(format!(
                        "message #{m} ({:?}) of {} shown {n} times on {} (last error: {:?}, \
                         retries: {:?})",
                        msg.kind,
                        self.name(&msg.sender),
                        dev.name,
                        f.map(|f| f.error.clone()),
                        f.map(|f| f.retries)
                    ));
                }
            }
        }
        assert!(
            lost.is_empty(),
            "seed {}: invariant 3: {} honest deliveries lost or doubled:\n{}",
            self.seed,
            lost.len(),
            lost.join("\n")
        );
        let lagging = self.lagging_call_participants();
        assert!(
            lagging.is_empty(),
            "seed {}: call participants without the current epoch: {:?}",
            self.seed,
            lagging.iter().map(|a| self.name(a)).collect::<Vec<_>>()
        );
    }
}

fn seed_bytes(seed: u64) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(format!("ratchetry insider suite seed {seed}").as_bytes()).into()
}

fn run(seed: u64) -> Stats {
    run_with(seed, true)
}

fn run_with(seed: u64, apps_retry_tampered: bool) -> Stats {
    let mut sim = Sim::new(seed);
    sim.apps_retry_tampered = apps_retry_tampered;
    for i in 0..STEPS {
        sim.step(i);
    }
    sim.settle();
    sim.check_nothing_lost();
    sim.stats
}

/// Every (actor, attack) the suite must exercise.
const REQUIRED: &[(&str, &str)] = &[
    (RELAY, "withhold an envelope until the settle phase"),
    (RELAY, "destroy a sender-key distribution"),
    (RELAY, "re-route an envelope to a sibling device"),
    (RELAY, "replay a retry request"),
    (RELAY, "re-route a retry request to another device"),
    (RELAY, "replay a delivered envelope"),
    (RELAY, "tamper with an envelope"),
    (RELAY, "serve a rolled-back device list"),
    (RELAY, "serve a wrong prekey bundle"),
    ("mallory (colluding)", "read a re-routed pairwise envelope"),
    ("mallory (colluding)", "retry a re-routed 1:1 envelope"),
    (
        "mallory (colluding)",
        "retry a group message it was not sent",
    ),
    ("mallory (colluding)", "retry a group message it was sent"),
    ("mallory (colluding)", "retry a 1:1 message it was sent"),
    ("mallory (colluding)", "forge a group resend"),
    ("mallory (colluding)", "forge a 1:1 resend"),
    ("mallory (colluding)", "forge an own copy"),
    (
        "mallory (colluding)",
        "hand on another member's sender key as hers",
    ),
    (
        "mallory (colluding)",
        "re-wrap that member's group message as hers",
    ),
    ("mallory (colluding)", "forged call key"),
    ("mallory (colluding)", "send a group message"),
    (
        "eve (removed member)",
        "read a group message it was not sent",
    ),
    (
        "eve (removed member)",
        "retry a group message it was not sent",
    ),
    ("eve (removed member)", "read a re-routed pairwise envelope"),
    ("eve (removed member)", "send a group message"),
    (
        "rogue account",
        "list an honest device key (random binding)",
    ),
    (
        "rogue account",
        "list an honest device key (binding by another key)",
    ),
    (
        "rogue account",
        "list an honest device key (its binding to its own account)",
    ),
    (
        "rogue account",
        "equivocate: another list at the same version",
    ),
    ("rogue account", "re-wrap a group message as its own"),
    ("rogue account", "re-wrap a pairwise envelope as its own"),
    ("rogue account", "re-wrap a retry request as its own"),
    ("unlinked companion", "read a group message it was not sent"),
    ("unlinked companion", "read a re-routed pairwise envelope"),
    ("unlinked companion", "retry a re-routed 1:1 envelope"),
    ("expired companion", "read a group message it was not sent"),
    ("expired companion", "read a re-routed pairwise envelope"),
    ("expired companion", "retry a re-routed 1:1 envelope"),
    (CALL_REMOVED, "read a later epoch's key"),
    (CALL_REMOVED, "retry a later epoch's key"),
    (NEWCOMER, "read a group message from before it joined"),
    (NEWCOMER, "retry a group message from before it joined"),
];

fn report(stats: &Stats, seeds: usize) {
    println!("insider suite: {seeds} seeds");
    println!("honest activity:");
    for (k, n) in &stats.counts {
        println!("  {k:<48} {n}");
    }
    println!("honest devices' own failures (healed by retries and the settle phase):");
    for (k, n) in &stats.honest_errors {
        println!("  {k:<48} {n}");
    }
    println!("attacks (actor / attack: attempts, granted to an entitled insider, refusals):");
    for ((actor, attack), t) in &stats.attacks {
        let refused: Vec<String> = t.refused.iter().map(|(e, n)| format!("{e} {n}")).collect();
        println!(
            "  {actor:<22} {attack:<58} {:>5} tried, {:>4} granted; {}",
            t.attempts,
            t.granted,
            refused.join(", ")
        );
    }
}

fn check_coverage(stats: &Stats) {
    for (actor, attack) in REQUIRED {
        let t = stats.attacks.get(&(*actor, *attack));
        assert!(
            t.is_some_and(|t| t.attempts > 0),
            "never exercised: {actor} / {attack}"
        );
    }
    for (actor, attack) in REQUIRED.iter().filter(|(_, a)| {
        a.contains("not sent") || a.contains("re-routed") || a.contains("later epoch")
    }) {
        let t = &stats.attacks[&(*actor, *attack)];
        assert!(
            t.refused.values().sum::<usize>() > 0,
            "{actor} / {attack}: never refused"
        );
    }
    for what in [
        "honest reads",
        "retries answered",
        "honest reads (resent)",
        "companions linked",
        "companions unlinked",
        "companions expired",
        "renewals",
        "call keys applied",
    ] {
        assert!(
            stats.counts.get(what).copied().unwrap_or(0) > 0,
            "never happened: {what}"
        );
    }
}

#[test]
fn insiders_fixed_seeds() {
    let mut total = Stats::default();
    for &seed in SEEDS {
        total.merge(run(seed));
    }
    report(&total, SEEDS.len());
    check_coverage(&total);
}

#[test]
#[ignore = "long: RATCHETRY_INSIDER_SEEDS=N runs N seeds"]
fn many_insider_seeds() {
    let n: u64 = std::env::var("RATCHETRY_INSIDER_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let first: u64 = std::env::var("RATCHETRY_INSIDER_FIRST")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let mut total = Stats::default();
    for seed in first..first + n {
        total.merge(run(seed));
    }
    report(&total, n as usize);
    check_coverage(&total);
}

// ---------------------------------------------------------------------------------------------
// Findings
// ---------------------------------------------------------------------------------------------

/// The relay tampers with one copy of a message (its ciphertext, so the header salt that names
/// the message stays intact). The recipient's app cannot read it and, as the contract says,
/// asks the sender for it again; the sender is right to answer (the requester is entitled).
/// Then the genuine envelope arrives too. Returns what the recipient's app shows: the bodies of
/// the genuine envelope and of the resend, each with the id the app stores it under (the
/// envelope's id, or for a resend the id of the envelope it replaces).
fn tampered_copy_then_retry(group: bool, resend_first: bool) -> Vec<(EnvelopeId, Vec<u8>)> {
    use support::World;
    let mut w = World::new("insider tampered copy then retry");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let body = b"say it once";
    let genuine = if group {
        w.set_members(ROOM, &[alice, bob]);
        let o = w.send_group(a1, ROOM, body);
        // The sender key arrives; the group envelope is the one the relay tampers with.
        w.receive(b1, &World::envelope_to(&o, b1)).unwrap();
        o.group.unwrap().0
    } else {
        World::envelope_to(&w.send(a1, bob, body), b1)
    };
    let tampered = support::tampered(&genuine);
    assert!(w.receive(b1, &tampered).is_err());
    let answer = w.ask_again(b1, a1, &tampered, body);
    let mut arrivals: Vec<Vec<u8>> = answer.envelopes.iter().map(|(_, e)| e.clone()).collect();
    if resend_first {
        arrivals.push(genuine);
    } else {
        arrivals.insert(0, genuine);
    }
    let mut shown = Vec::new();
    for envelope in arrivals {
        let id = EnvelopeId::of(&envelope);
        match w.receive(b1, &envelope) {
            Ok(Received::Direct { body, resent, .. })
            | Ok(Received::Group { body, resent, .. }) => shown.push((resent.unwrap_or(id), body)),
            _ => {}
        }
    }
    shown
}

/// Invariant 3 (exactly once) against the relay: a tampered copy and the app's retry must not
/// make an honest device read one message twice, whichever of the genuine envelope and the
/// resend arrives first. Message ids name the message (sender and header salt), so the resend
/// reports the genuine message's id, and whichever copy comes second is a duplicate.
#[test]
fn a_tampered_copy_and_its_retry_deliver_a_message_once() {
    for group in [false, true] {
        for resend_first in [false, true] {
            let shown = tampered_copy_then_retry(group, resend_first);
            assert_eq!(
                shown.len(),
                1,
                "group: {group}, resend first: {resend_first}: the message was delivered {} \
                 times, under ids {:?}",
                shown.len(),
                shown.iter().map(|(id, _)| *id).collect::<Vec<_>>()
            );
        }
    }
}
