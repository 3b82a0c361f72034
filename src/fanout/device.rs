//! One device's whole protocol state: identity, prekeys, the device lists it follows, one
//! pairwise session set per remote device, groups (members, its own sender key and the ledger
//! of who holds it), the sender keys of others, and the journals.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use core::fmt;
use rand_core::CryptoRng;

use super::Event;
use super::body_digest::BodyDigestKey;
use super::journal::{DEFAULT_RETRY_WINDOW_MS, Journal, PendingKey};
use super::ledger::Group;
use super::lists::{Followed, ListsDigests};
use super::records::{Dirty, Key};
use super::sessions::{SessionSet, pending_base};
use crate::devices::{
    AccountKey, DeviceAddress, DeviceEntry, DeviceId, ListLimits, ListMark, SignedDeviceList,
    VerifiedDeviceList,
};
use crate::error::{Error, FanoutError};
use crate::group::{GroupConfig, GroupId, InboundSenderKey, SenderKeyId};
use crate::persist::UnitChain;
use crate::primitives::{IdentityKey, IdentityKeyPair};
use crate::ratchet::session::Opened;
use crate::ratchet::{Session, SessionConfig};
use crate::time::Timestamp;
use crate::x3dh::{
    KemPreKeyId, OneTimePreKeyId, OneTimePreKeys, PreKeyBundle, PreKeyStore, PreKeyStoreConfig,
};

/// Every policy a device applies, stored with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Pairwise session limits.
    pub session: SessionConfig,
    /// Sender-key limits.
    pub group: GroupConfig,
    /// What this device accepts of any account's device list (the ceiling on the policy each
    /// account signs into its list).
    pub lists: ListLimits,
    /// Prekey limits.
    pub prekeys: PreKeyStoreConfig,
    /// How long a sent message can be asked for again (retry requests for older messages are
    /// refused as `UnknownMessage`).
    pub retry_window_ms: u64,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        Self {
            session: SessionConfig::default(),
            group: GroupConfig::default(),
            lists: ListLimits::default(),
            prekeys: PreKeyStoreConfig::default(),
            retry_window_ms: DEFAULT_RETRY_WINDOW_MS,
        }
    }
}

/// How far ahead of a restored device's clock its own account's list may be issued and still
/// end its wait ([`Device::awaiting_own_list`]): clocks a few minutes apart (PROTOCOL.md 19.4).
pub const OWN_LIST_CLOCK_ALLOWANCE_MS: u64 = 300_000;

/// A device of an account: the object an app holds, feeds bytes and `now`, and persists. After
/// every call that changed it, [`take_changes`](Self::take_changes) yields the records to write
/// (one transaction); [`from_records`](Self::from_records) loads it again.
///
/// # Example
///
/// Alice's phone writes to Bob's account, whose phone reads it. `server` stands in for the app's
/// server: it hands out signed device lists and prekey bundles.
///
/// ```
/// # include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/docs/doctest_setup.rs"));
/// use ratchetry::fanout::{Outgoing, Received};
/// # fn main() -> Result<(), ratchetry::Error> {
/// # let (mut rng, now, mut server) = (UnwrapErr(SysRng), Timestamp(1_790_000_000_000), Server::default());
/// # let (alice_primary, mut alice) = server.account(&mut rng, now)?;
/// # let (bob_primary, mut bob) = server.account(&mut rng, now)?;
/// let (alice_account, bob_account) = (alice_primary.account(), bob_primary.account());
/// let outbox = loop {
///     match alice.send(&mut rng, now, &bob_account, b"hi Bob")? {
///         Outgoing::Ready(outbox) => break outbox,
///         Outgoing::NeedDeviceLists(accounts) => {
///             for a in accounts {
///                 alice.update_device_list(now, &a, server.list(&a))?;
///             }
///         }
///         Outgoing::NeedBundles(devices) => {
///             let bundles: Vec<_> = devices.iter().map(|d| (*d, server.bundle(d))).collect();
///             alice.start_sessions(&mut rng, now, &bundles)?;
///         }
///     }
/// };
/// let unit = alice.take_changes(&mut rng); // write it in one transaction, then ship the outbox
/// assert!(!unit.is_empty());
///
/// let (to, envelope) = &outbox.envelopes[0]; // Bob has one device; Alice no other
/// assert_eq!(*to, bob.address());
/// bob.update_device_list(now, &alice_account, server.list(&alice_account))?;
/// let Received::Direct { from, body, .. } = bob.receive(now, envelope)? else { unreachable!() };
/// assert_eq!((from, body.as_slice()), (alice.address(), &b"hi Bob"[..]));
/// let _ = bob.take_changes(&mut rng); // write it, then acknowledge the envelope to the server
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Device {
    pub(crate) config: DeviceConfig,
    pub(crate) address: DeviceAddress,
    pub(crate) identity: IdentityKeyPair,
    /// Derived from the identity: what sent bodies are digested under.
    pub(crate) body_key: BodyDigestKey,
    pub(crate) prekeys: PreKeyStore,
    pub(crate) lists: BTreeMap<AccountKey, Followed>,
    /// What is remembered of each forgotten account's newest list, until a list of it is
    /// taken again: a list older than it is refused then as it was before the forget.
    pub(crate) forgotten: BTreeMap<AccountKey, ListMark>,
    pub(crate) sessions: BTreeMap<DeviceAddress, SessionSet>,
    pub(crate) groups: BTreeMap<GroupId, Group>,
    /// Other devices' sender keys, by (sender, group).
    pub(crate) inbound: BTreeMap<(DeviceAddress, GroupId), InboundSenderKey>,
    /// Withheld notices: the generations a device told this one it withholds its key for a
    /// group, by (device, group); at most `MAX_WITHHELD_GENERATIONS`, oldest first.
    pub(crate) withheld: BTreeMap<(DeviceAddress, GroupId), Vec<SenderKeyId>>,
    pub(crate) journal: Journal,
    /// Counts state changes; lets the app tell a stale snapshot from the latest state.
    pub(crate) epoch: u64,
    /// When this device was restored from a backup, until it holds an own list issued since
    /// (no allowance for clock skew: a list signed minutes before the restore may still name a
    /// companion unlinked just after it; a primary whose clock runs behind only delays the end
    /// of the wait, since its later lists carry later times; a list issued further ahead of
    /// this device's clock than `OWN_LIST_CLOCK_ALLOWANCE_MS` does not end it either, since a
    /// primary whose clock ran ahead may have signed it before an unlink):
    /// meanwhile it sends nothing to its own account and accepts nothing from it.
    pub(crate) restored_at: Option<Timestamp>,
    /// Whether the app has set or forgotten a group on this device: from then on it owns the
    /// device's groups, and a membership in a history offer installs nothing (20). Without it,
    /// an offer the relay held back would put back a group the app left since.
    pub(crate) groups_by_app: bool,
    /// When the newest history offer whose membership this device applied was made (the
    /// offering device's clock), while its app has not taken over its groups: an older offer
    /// (the relay held it back) changes nothing, a newer one brings the offered groups up to
    /// date (PROTOCOL.md 18.2).
    pub(crate) newest_offer: Option<Timestamp>,
    /// Counts changes to the lists held and to what the own account's devices are sent (not
    /// state): a group's kept reach holds only at the generation it was computed at.
    pub(crate) lists_generation: u64,
    /// Where the next unit starts unless it replaces all: the epoch and tag of the last
    /// [`take_changes`](Self::take_changes), or those loaded from records.
    pub(crate) chain: UnitChain,
    pub(crate) dirty: Dirty,
}

impl Device {
    /// Sets up a device of `own_list`'s account as device `id`, which the list must name with
    /// this identity. Makes a prekey store (draws 32 bytes for the signed prekey and 64 for the
    /// last-resort ML-KEM prekey), then `one_time_prekeys` one-time prekeys of each kind
    /// (within the configured caps; 32 bytes each, then 64 per ML-KEM one), and returns the
    /// one-time prekeys to upload.
    /// The device's first [`take_changes`](Self::take_changes) holds its whole state.
    pub fn new(
        rng: &mut impl CryptoRng,
        now: Timestamp,
        identity: IdentityKeyPair,
        id: DeviceId,
        own_list: VerifiedDeviceList,
        one_time_prekeys: u32,
        config: DeviceConfig,
    ) -> Result<(Self, OneTimePreKeys), Error> {
        let entry = own_list.check(id, now)?;
        let address = DeviceAddress {
            account: own_list.account(),
            device: id,
        };
        if entry.identity != identity.public() {
            return Err(FanoutError::IdentityMismatch(address).into());
        }
        let mut prekeys = PreKeyStore::new(rng, &identity, now, config.prekeys);
        let keys = prekeys.generate_one_time_prekeys(rng, one_time_prekeys);
        let kem = prekeys.generate_one_time_kem_prekeys(rng, &identity, now, one_time_prekeys);
        let mut lists = BTreeMap::new();
        lists.insert(own_list.account(), Followed::new(own_list));
        let device = Self {
            config,
            address,
            body_key: BodyDigestKey::of(&identity),
            identity,
            prekeys,
            lists,
            forgotten: BTreeMap::new(),
            sessions: BTreeMap::new(),
            groups: BTreeMap::new(),
            inbound: BTreeMap::new(),
            withheld: BTreeMap::new(),
            journal: Journal::default(),
            epoch: 0,
            restored_at: None,
            groups_by_app: false,
            newest_offer: None,
            lists_generation: 0,
            chain: UnitChain::WHOLE,
            dirty: Dirty {
                all: true,
                keys: BTreeSet::new(),
            },
        };
        Ok((device, OneTimePreKeys::new(keys, kem)))
    }

    /// The state epoch: it grows with every change to the device. Keep the epoch of the state
    /// last persisted (every [`StateChanges`](super::StateChanges) carries it) somewhere a
    /// restore from backup does not roll back, and pass it to [`restore`](Self::restore).
    pub fn state_epoch(&self) -> u64 {
        self.epoch
    }

    /// Marks a record changed.
    pub(crate) fn touch(&mut self, key: Key) {
        self.dirty.mark(key);
    }

    /// Marks each of `keys` changed: a send's thousands of records in one pass.
    pub(crate) fn touch_all(&mut self, keys: Vec<Key>) {
        self.dirty.mark_all(keys);
    }

    /// Ends a successful operation that changed something: one more epoch.
    pub(crate) fn bump(&mut self) {
        self.epoch = self.epoch.saturating_add(1);
        self.dirty.mark(Key::Meta);
    }

    /// Restores persisted state bytes (from [`to_bytes`](Self::to_bytes)) and detects a
    /// stale snapshot: if its epoch is lower than `last_epoch` (the epoch of the state last
    /// persisted, kept elsewhere), the device is restored as from a backup
    /// ([`restore_from_backup`](Self::restore_from_backup)) at `now`, its epoch continues
    /// from `last_epoch`, its next send id moves on by the epochs between the snapshot's and
    /// `last_epoch` as well (a restore from the same snapshot before, at the same clock
    /// reading, issued none of its ids), and the second value is `true`.
    pub fn restore(bytes: &[u8], last_epoch: u64, now: Timestamp) -> Result<(Self, bool), Error> {
        let device = Self::from_bytes(bytes)?;
        if device.epoch >= last_epoch {
            return Ok((device, false));
        }
        let lost = last_epoch - device.epoch;
        let mut device = device.restored(now, lost);
        device.epoch = device.epoch.max(last_epoch.saturating_add(1));
        Ok((device, true))
    }

    /// Restores a device from a backup that may be older than the state it last had (an old
    /// snapshot, a copied phone). Everything it may already have sent under the snapshot's
    /// chain counters is made unreachable: every pairwise session starts a new sending chain
    /// from a fresh DH ratchet key on its next send (a session that never heard back has none
    /// to start from and is dropped: the next send asks for a bundle), and every outbound
    /// sender key is rotated at its next group send. Its next [`take_changes`](Self::take_changes) replaces the whole
    /// stored state. Its prekey counters skip
    /// [`restore_prekey_skip`](crate::x3dh::restore_prekey_skip)`(now)` ids (at least
    /// [`RESTORE_PREKEY_ID_SKIP`](crate::x3dh::RESTORE_PREKEY_ID_SKIP), spread by the time, so
    /// two restores from one backup at different times start apart), so no signed,
    /// one-time or ML-KEM prekey id that the lost state issued names another key: its uploads
    /// join the server's pool, and a bundle the server hands out with a key only the lost
    /// state held fails as `UnknownOneTimePreKey` (a retry answers it). Drop from the pool
    /// what the lost state uploaded, if the server can tell: those keys are gone. Its next
    /// send id skips [`RESTORE_SEND_ID_SKIP`](super::RESTORE_SEND_ID_SKIP) and is at least
    /// `now` in milliseconds, so no send id names two bodies in the app's store, whose sends
    /// the backup does not roll back, nor after two restores from one backup if the later
    /// reads a later clock ([`restore`](Self::restore), given the epoch the app kept, needs no
    /// clock for that).
    ///
    /// Its groups' members are the backup's, which may name an account removed since: every
    /// group is [unconfirmed](Self::unconfirmed_groups) until the app sets its members again
    /// ([`set_group_members`](Self::set_group_members), from the newest membership the app can
    /// get) or forgets it. Until then nothing is sent to it or read from it, and no history
    /// offer is sent (`GroupUnconfirmed`). A history offer received after the restore installs
    /// no group: a restored device's groups are its app's to set.
    ///
    /// Read what waits for the device before sending: a new chain opens at the peer only if
    /// the peer has not moved on from the snapshot's chains. Where it has (it answered a
    /// message the snapshot does not know, and the restored device sent before reading the
    /// answer), messages of that session fail at both ends; a retry
    /// ([`request_retry`](Self::request_retry)) then replaces the session (PROTOCOL.md 8.5).
    ///
    /// The backup's own device list may still name a companion unlinked since (a stolen
    /// laptop), and the server may serve lists signed after the backup but before the unlink.
    /// So until the device holds an own list issued at or after `now` (and not more than
    /// [`OWN_LIST_CLOCK_ALLOWANCE_MS`] after the clock it is received at), it is
    /// [`awaiting_own_list`](Self::awaiting_own_list): its
    /// sends leave out this account's other devices, a send to its own account or one of
    /// its devices is `AwaitingOwnList`, and so is anything received from them. A restored
    /// primary signs such a list when it [`resync`](crate::devices::Primary::resync)s; a
    /// companion waits for the primary's next list.
    pub fn restore_from_backup(bytes: &[u8], now: Timestamp) -> Result<Self, Error> {
        Ok(Self::from_bytes(bytes)?.into_restored(now))
    }

    /// The same after loading from records: for an app whose record store itself was
    /// restored from a backup.
    pub fn into_restored(self, now: Timestamp) -> Self {
        self.restored(now, 0)
    }

    /// [`into_restored`](Self::into_restored), knowing that `epochs_lost` epochs passed after
    /// the snapshot (0 if the app kept none).
    fn restored(mut self, now: Timestamp, epochs_lost: u64) -> Self {
        self.restored_at = Some(self.restored_at.map_or(now, |at| at.max(now)));
        // Its own account's devices are left out of sends now.
        self.lists_generation += 1;
        // Prekey ids issued after the backup may still be in the server's pool, with keys
        // this state never held.
        self.prekeys.skip_ids_after_restore(now);
        // So are send ids, under which the app's own store (not rolled back) may hold bodies.
        self.journal.skip_send_ids_after_restore(now, epochs_lost);
        self.sessions = core::mem::take(&mut self.sessions)
            .into_iter()
            .filter_map(|(a, set)| Some((a, set.renew_sending_chains()?)))
            .collect();
        // The app owns a restored device's groups: a history offer read again (or held back
        // until now) must not install a group with members removed after the backup.
        self.groups_by_app = true;
        self.newest_offer = None;
        for group in self.groups.values_mut() {
            // Members removed after the backup are still listed: the app sets them again.
            group.unconfirmed = true;
            if let Some(outbound) = &mut group.outbound {
                outbound.rotate_pending = true;
            }
        }
        self.dirty.all = true;
        // Its whole state replaces whatever the store holds, a later state included.
        self.chain.restored();
        self.bump();
        self
    }

    /// Whether this device was restored from a backup and has not yet received an own device
    /// list issued since ([`restore_from_backup`](Self::restore_from_backup)): fetch the own
    /// account's list and pass it to [`update_device_list`](Self::update_device_list).
    pub fn awaiting_own_list(&self) -> bool {
        self.restored_at.is_some()
    }

    /// Refuses traffic with this account's other devices while
    /// [`awaiting_own_list`](Self::awaiting_own_list).
    pub(crate) fn own_account_open(&self, account: &AccountKey) -> Result<(), Error> {
        if *account == self.address.account && self.restored_at.is_some() {
            return Err(FanoutError::AwaitingOwnList.into());
        }
        Ok(())
    }

    /// This device's address.
    pub fn address(&self) -> DeviceAddress {
        self.address
    }

    /// This device's identity key pair's public half.
    pub fn identity_key(&self) -> IdentityKey {
        self.identity.public()
    }

    /// A prekey bundle, with the given one-time prekey and one-time ML-KEM prekey if still
    /// held (else no one-time prekey, and the last-resort ML-KEM prekey). Normally the server
    /// assembles bundles from the uploads.
    pub fn bundle(
        &self,
        one_time: Option<OneTimePreKeyId>,
        kem: Option<KemPreKeyId>,
    ) -> PreKeyBundle {
        self.prekeys.bundle(&self.identity, one_time, kem)
    }

    /// One-time ML-KEM prekeys made for upload and not yet consumed: replenish when low.
    /// (Those a pending retry request holds are not counted.)
    pub fn one_time_kem_prekeys_remaining(&self) -> usize {
        (self.prekeys.one_time_kem_prekeys_remaining()).saturating_sub(self.held_for_retries().1)
    }

    /// Sessions the current last-resort ML-KEM prekey started (rotate with
    /// [`rotate_signed_prekey`](Self::rotate_signed_prekey) well before the configured bound).
    pub fn last_resort_uses(&self) -> u32 {
        self.prekeys.last_resort_uses()
    }

    /// Sessions the current signed prekey accepted. Every account's new sessions (and every
    /// retry's answer) share its budget (`max_sessions_per_signed_prekey`): one contact that
    /// starts that many makes the others' `SignedPreKeyExhausted` until a rotation. Rotate
    /// with [`rotate_signed_prekey`](Self::rotate_signed_prekey) well before the bound (the
    /// guide says when).
    pub fn signed_prekey_sessions(&self) -> u32 {
        // At most the configured bound, a u32.
        self.prekeys.signed_prekey_sessions() as u32
    }

    /// When the current signed prekey was made: rotate it on the app's schedule (the guide
    /// gives one) counted from here, which a restore from a backup or a reinstall keeps.
    pub fn signed_prekey_created_at(&self) -> Timestamp {
        self.prekeys.signed_prekey_created_at()
    }

    /// One-time prekeys made for upload and not yet consumed: replenish with
    /// [`generate_one_time_prekeys`](Self::generate_one_time_prekeys) when low. (Those a
    /// pending retry request holds are not counted.)
    pub fn one_time_prekeys_remaining(&self) -> usize {
        (self.prekeys.one_time_prekeys_remaining()).saturating_sub(self.held_for_retries().0)
    }

    /// New one-time prekeys to upload: `count` of each kind, within the configured caps (keys
    /// that pending retry requests hold take no room).
    pub fn generate_one_time_prekeys(
        &mut self,
        rng: &mut impl CryptoRng,
        now: Timestamp,
        count: u32,
    ) -> OneTimePreKeys {
        let (held, held_kem) = self.held_for_retries();
        let keys = self
            .prekeys
            .generate_one_time_prekeys_beyond(rng, count, held as u32);
        let kem = self.prekeys.generate_one_time_kem_prekeys_beyond(
            rng,
            &self.identity,
            now,
            count,
            held_kem as u32,
        );
        if keys.is_empty() && kem.is_empty() {
            // None asked, or the caps reached: nothing changed.
            return OneTimePreKeys::new(keys, kem);
        }
        for k in &keys {
            self.touch(Key::OneTime(k.id.0));
        }
        for k in &kem {
            self.touch(Key::OneTimeKem(k.id.0));
        }
        self.touch(Key::PreKeys);
        self.bump();
        OneTimePreKeys::new(keys, kem)
    }

    /// Names the ML-KEM prekeys as a release from before the post-quantum ratchet did
    /// (`testing::hooks::before_pq_ratchet`); returns the one-time ones' public halves.
    #[cfg(feature = "test-support")]
    pub(crate) fn before_pq_ratchet(&mut self) -> Vec<crate::x3dh::KemPreKeyPublic> {
        let kem = self.prekeys.before_pq_ratchet(&self.identity);
        self.touch(Key::PreKeys);
        kem
    }

    /// Rotates the signed prekey and the last-resort ML-KEM prekey (do it regularly; earlier
    /// ones stay accepted for a while). One-time prekeys already uploaded stay valid. A device
    /// from a release before the post-quantum ratchet (PROTOCOL.md 25.6) marks its ML-KEM
    /// prekeys from its first rotation on: rotate once after upgrading from one.
    pub fn rotate_signed_prekey(&mut self, rng: &mut impl CryptoRng, now: Timestamp) {
        let before: BTreeSet<u32> = self.prekeys.signed_ids().map(|id| id.0).collect();
        let dropped: Vec<(u32, [u8; 32])> = self
            .prekeys
            .seen_base_keys()
            .map(|(spk, k)| (spk.0, *k))
            .collect();
        self.prekeys.rotate_signed_prekey(rng, &self.identity, now);
        let after: BTreeSet<u32> = self.prekeys.signed_ids().map(|id| id.0).collect();
        for (spk, key) in dropped {
            if before.contains(&spk) && !after.contains(&spk) {
                self.touch(Key::SeenBase(spk, key));
            }
        }
        self.touch(Key::PreKeys);
        self.bump();
    }

    /// The verified device list held for `account`, if any.
    pub fn device_list(&self, account: &AccountKey) -> Option<&VerifiedDeviceList> {
        self.lists.get(account).map(|f| &f.list)
    }

    /// The accounts whose device lists this device follows (its own included).
    pub fn accounts(&self) -> impl Iterator<Item = AccountKey> + '_ {
        self.lists.keys().copied()
    }

    /// The key of an account this device follows (its own included), found by its bytes. Unlike
    /// [`AccountKey::from_bytes`] it does no curve arithmetic: the key was checked when its list
    /// arrived. An app or binding that holds account keys as bytes turns a known one back at the
    /// cost of a lookup, and falls back to `from_bytes` on `None` (any other bytes).
    pub fn followed_account(&self, bytes: &[u8; 32]) -> Option<AccountKey> {
        let key = AccountKey::from_trusted(*bytes);
        self.lists.contains_key(&key).then_some(key)
    }

    /// Whether a pairwise session with `device` exists.
    pub fn has_session(&self, device: &DeviceAddress) -> bool {
        self.sessions.contains_key(device)
    }

    /// The post-quantum ratchet's epoch in the current session with `device` (PROTOCOL.md 25),
    /// or `None` without a session or if it does not run the ratchet.
    pub fn pq_ratchet_epoch(&self, device: &DeviceAddress) -> Option<u32> {
        self.sessions
            .get(device)
            .and_then(|set| set.current())
            .and_then(|s| s.pq_ratchet_epoch())
    }

    /// The devices whose current session is classical: migrated from before PQXDH, its keys
    /// depend on X25519 alone. Nothing is sent over such a session: the next send to one of
    /// these devices asks for its bundle (`Outgoing::NeedBundles`) and starts a PQXDH session,
    /// which a message on the classical one never displaces. Empty once every peer was
    /// written to since the migration.
    pub fn classical_sessions(&self) -> Vec<DeviceAddress> {
        self.sessions
            .iter()
            .filter(|(_, set)| set.current_post_quantum().is_none())
            .map(|(address, _)| *address)
            .collect()
    }

    /// The devices whose current session does not run the post-quantum ratchet (PROTOCOL.md
    /// 25): sessions started by or with a release from before it. Only a fresh bundle tells
    /// whether the device runs it now (its ML-KEM prekey's id, signed, has bit 31 set): after
    /// upgrading from such a release (and rotating), and now and then, fetch these devices'
    /// bundles and pass them to [`start_sessions`](Self::start_sessions). A bundle that says so
    /// starts a session that runs the ratchet, which becomes current and which no session
    /// without it displaces afterwards; a device still on the old release keeps a session
    /// without it, and starts one with it once it upgrades.
    pub fn sessions_without_pq_ratchet(&self) -> Vec<DeviceAddress> {
        self.sessions
            .iter()
            .filter(|(_, set)| set.current().is_none_or(|s| s.pq_ratchet_epoch().is_none()))
            .map(|(address, _)| *address)
            .collect()
    }

    /// Accepts a device list for `account` (a contact's, or this account's own, e.g. after
    /// the primary linked or unlinked a device). It must verify against `account` and must
    /// not roll back the list held. The very list already held changes nothing and reports
    /// nothing. Sessions and sender keys of devices that left or changed identity are dropped;
    /// groups whose sender key such a device held rotate at their next send. Returns what
    /// changed.
    pub fn update_device_list(
        &mut self,
        now: Timestamp,
        account: &AccountKey,
        list: SignedDeviceList,
    ) -> Result<Vec<Event>, Error> {
        let held = self.lists.get(account).map(|f| &f.list);
        let verified = match held {
            Some(_) => list.verify(account, held, &self.config.lists)?,
            // Followed again after a forget: no older list than the one forgotten.
            None => list.verify_after(account, self.forgotten.get(account), &self.config.lists)?,
        };
        if held.is_some_and(|h| h.digest() == verified.digest()) {
            return Ok(Vec::new());
        }
        let mut events = Vec::new();
        let old: BTreeMap<DeviceId, IdentityKey> = held
            .map(|l| l.entries().iter().map(|e| (e.id, e.identity)).collect())
            .unwrap_or_default();
        let addr = |device| DeviceAddress {
            account: *account,
            device,
        };
        for (id, identity) in &old {
            match verified.entry(*id) {
                None => events.push(Event::DeviceRemoved(addr(*id))),
                Some(e) if e.identity != *identity => {
                    events.push(Event::IdentityChanged(addr(*id)))
                }
                Some(_) => {}
            }
        }
        for e in verified
            .entries()
            .iter()
            .filter(|e| !old.contains_key(&e.id))
        {
            events.push(Event::DeviceAdded(addr(e.id)));
        }
        if *account == self.address.account {
            match verified.entry(self.address.device) {
                Some(e) if e.identity == self.identity.public() => {
                    if !e.is_active(now) {
                        events.push(Event::ThisDeviceExpired);
                    }
                }
                _ => events.push(Event::ThisDeviceRemoved),
            }
            // Issued at or after the restore, and not after this device's clock beyond the
            // allowance: a list a primary signed while its clock ran ahead (the restore's time
            // still to come) may predate an unlink the server holds back.
            let issued = verified.issued_at().as_millis();
            let latest = now.as_millis().saturating_add(OWN_LIST_CLOCK_ALLOWANCE_MS);
            if let Some(at) = self.restored_at
                && issued >= at.as_millis()
                && issued <= latest
            {
                self.restored_at = None;
                self.touch(Key::Restored);
            }
        }
        for event in &events {
            if let Event::DeviceRemoved(a) | Event::IdentityChanged(a) = event {
                self.drop_device(a);
            }
        }
        if *account == self.address.account {
            self.unconfirm_offered_groups(&events);
        }
        match self.lists.get_mut(account) {
            Some(f) => f.replace(verified),
            None => {
                self.lists.insert(*account, Followed::new(verified));
                if self.forgotten.remove(account).is_some() {
                    self.touch(Key::Forgotten(*account));
                }
            }
        }
        self.touch(Key::DeviceList(*account));
        self.lists_generation += 1;
        self.bump();
        Ok(events)
    }

    /// Groups a history offer installed came from this account's devices, and one that left
    /// or changed identity (a stolen laptop the server kept) may have offered them after the
    /// theft, before this list reached this device: with the members the server wanted. Such
    /// groups the app has not set since are unconfirmed until it does, as after a restore
    /// (PROTOCOL.md 18.2).
    fn unconfirm_offered_groups(&mut self, own_events: &[Event]) {
        let left = own_events
            .iter()
            .any(|e| matches!(e, Event::DeviceRemoved(_) | Event::IdentityChanged(_)));
        if !left {
            return;
        }
        let marked = self
            .groups
            .iter_mut()
            .filter(|(_, g)| g.offered && !g.unconfirmed)
            .map(|(id, g)| {
                g.unconfirmed = true;
                Key::Unconfirmed(*id)
            })
            .collect();
        self.touch_all(marked);
    }

    /// Forgets a device's sessions, sender keys, withheld notices and the retries asked of it
    /// (it left its account or changed identity).
    fn drop_device(&mut self, device: &DeviceAddress) {
        if let Some(set) = self.sessions.remove(device) {
            self.touch(Key::Sessions(*device));
            for base in set.pending_bases() {
                self.touch(Key::PendingKem(*device, base));
            }
        }
        let groups: Vec<GroupId> = self
            .inbound
            .range((*device, GroupId([0; 32]))..=(*device, GroupId([0xff; 32])))
            .map(|((_, g), _)| *g)
            .collect();
        for g in groups {
            self.inbound.remove(&(*device, g));
            self.touch(Key::Inbound(*device, g));
        }
        let withheld: Vec<GroupId> = self
            .withheld
            .range((*device, GroupId([0; 32]))..=(*device, GroupId([0xff; 32])))
            .map(|((_, g), _)| *g)
            .collect();
        for g in withheld {
            self.withheld.remove(&(*device, g));
            self.touch(Key::Withheld(*device, g));
        }
        // Its answer would now come from another identity key, or from no listed device.
        let pending: Vec<PendingKey> = self
            .journal
            .pending
            .range((*device, [0; 16])..=(*device, [0xff; 16]))
            .map(|(k, _)| *k)
            .collect();
        for k in pending {
            self.end_pending(k);
        }
    }

    /// Forgets an account: its list, its devices' sessions and sender keys, and the retries
    /// pending with them (for example when the app learns that a contact's account key changed
    /// and starts over with the new one). Every group whose current sender key one of its
    /// devices held rotates at its next send, even if the account comes back. What it keeps
    /// is the held list's mark (its version, digest and form, PROTOCOL.md 15.2; no device of
    /// the account): followed again, the account is refused a list older than the one
    /// forgotten (`Rollback`), another of its version (`Equivocation`) or one of the old form
    /// after it (`PolicyDowngrade`), as if it had never been forgotten.
    pub fn forget_account(&mut self, account: &AccountKey) {
        if *account == self.address.account {
            return;
        }
        let devices: Vec<DeviceAddress> = self
            .sessions
            .keys()
            .chain(self.inbound.keys().map(|(a, _)| a))
            .chain(self.withheld.keys().map(|(a, _)| a))
            .chain(self.journal.pending.keys().map(|(a, _)| a))
            .filter(|a| a.account == *account)
            .copied()
            .collect();
        for d in &devices {
            self.drop_device(d);
        }
        let list = self.lists.remove(account).map(|f| f.list.mark());
        if let Some(mark) = list {
            self.touch(Key::DeviceList(*account));
            self.forgotten.insert(*account, mark);
            self.touch(Key::Forgotten(*account));
            self.lists_generation += 1;
        }
        let touched = self.forget_holders(account);
        // An account of which nothing is held: nothing changed, no epoch, no unit.
        if devices.is_empty() && list.is_none() && touched.is_empty() {
            return;
        }
        for key in touched {
            self.touch(key);
        }
        self.bump();
    }

    /// Creates sessions from prekey bundles the app fetched for devices named in
    /// [`Outgoing::NeedBundles`](super::Outgoing::NeedBundles) (or in
    /// [`sessions_without_pq_ratchet`](Self::sessions_without_pq_ratchet)). Each bundle must
    /// verify and carry the identity key that device's signed list names. All or nothing.
    ///
    /// A new session becomes current, unless the current one is stronger: one that runs the
    /// post-quantum ratchet is never displaced by one that does not, nor a PQXDH one by a
    /// classical one, so a stale bundle cannot take the ratchet away from a pair that runs
    /// it. (A retry's answer, which the peer asked for, is the exception: its session is
    /// current at both ends.)
    pub fn start_sessions(
        &mut self,
        rng: &mut impl CryptoRng,
        now: Timestamp,
        bundles: &[(DeviceAddress, PreKeyBundle)],
    ) -> Result<(), Error> {
        if bundles.is_empty() {
            return Ok(());
        }
        let mut made = Vec::with_capacity(bundles.len());
        for (address, bundle) in bundles {
            let entry = self.entry(address, now)?;
            if bundle.identity_key() != entry.identity {
                return Err(FanoutError::IdentityMismatch(*address).into());
            }
            let verified = bundle.clone().verify()?;
            made.push((
                *address,
                Session::initiate(rng, &self.identity, &verified, self.config.session)?,
            ));
        }
        for (address, session) in made {
            self.install_session(address, session, Placement::New);
        }
        self.bump();
        Ok(())
    }

    /// Puts a session in `address`'s set, as `placement` says.
    pub(crate) fn install_session(
        &mut self,
        address: DeviceAddress,
        session: Session,
        placement: Placement,
    ) {
        // A pending KEM ciphertext has a record of its own, written when the session starts
        // and deleted when the peer replies or the session goes: not with every send.
        let mut changed: Vec<[u8; 32]> = Vec::new();
        let new = pending_base(&session);
        match (self.sessions.get_mut(&address), placement) {
            (Some(set), Placement::Advanced(i)) => {
                let old = set.all().get(i).and_then(pending_base);
                if old != new {
                    changed.extend(old.into_iter().chain(new));
                }
                set.promote(i, session);
            }
            (Some(set), Placement::New) => {
                changed.extend(new);
                // The dropped session's ciphertext record goes (or, when the new session
                // itself was dropped, is never written).
                if let Some(dropped) = set.push_new(session) {
                    changed.extend(pending_base(&dropped));
                }
            }
            (Some(set), Placement::Requested(index)) => {
                let old = index.and_then(|i| set.all().get(i)).and_then(pending_base);
                changed.extend(old.into_iter().chain(new));
                let dropped = set.push_requested(index, session);
                changed.extend(dropped.iter().filter_map(pending_base));
            }
            (None, _) => {
                changed.extend(new);
                self.sessions.insert(address, SessionSet::new(session));
            }
        }
        self.touch_sessions(address, changed);
    }

    /// Applies a message opened on `address`'s session `index`, in place: see
    /// [`SessionSet::advance`]. `requested`: the message answered this device's retry request
    /// ([`Placement::Requested`]), else [`Placement::Advanced`].
    pub(crate) fn advance_session(
        &mut self,
        address: DeviceAddress,
        index: usize,
        opened: Opened,
        requested: bool,
    ) {
        let Some(set) = self.sessions.get_mut(&address) else {
            return;
        };
        let gone = set.advance(index, opened, requested);
        self.touch_sessions(address, gone);
    }

    /// `address`'s sessions changed, and the pending KEM ciphertext records of these base keys.
    fn touch_sessions(&mut self, address: DeviceAddress, changed: Vec<[u8; 32]>) {
        self.touch(Key::Sessions(address));
        for base in changed {
            self.touch(Key::PendingKem(address, base));
        }
    }

    /// The list held for `account`.
    pub(crate) fn list(&self, account: &AccountKey) -> Result<&VerifiedDeviceList, Error> {
        self.lists
            .get(account)
            .map(|f| &f.list)
            .ok_or_else(|| unknown_account(*account))
    }

    /// `account`'s held list version and its lists digests with the own list held, computed
    /// once per pair of lists.
    pub(crate) fn lists_digests(
        &mut self,
        account: &AccountKey,
    ) -> Result<(u64, ListsDigests), Error> {
        let own = self
            .lists
            .get(&self.address.account)
            .ok_or(FanoutError::ThisDeviceInactive)?
            .list
            .digest();
        let followed = self
            .lists
            .get_mut(account)
            .ok_or_else(|| unknown_account(*account))?;
        Ok((followed.list.version(), followed.lists_digests(&own)))
    }

    /// The active list entry of `address`.
    pub(crate) fn entry(
        &self,
        address: &DeviceAddress,
        now: Timestamp,
    ) -> Result<&DeviceEntry, Error> {
        Ok(self.list(&address.account)?.check(address.device, now)?)
    }

    /// This device's own list, which must still list it as active: `ThisDeviceExpired` where
    /// it names this device with its identity, expired (a renewal may come: what it refuses is
    /// kept, review 50), else `ThisDeviceInactive` (unlinked: dropped).
    pub(crate) fn own_list(&self, now: Timestamp) -> Result<&VerifiedDeviceList, Error> {
        let list = self
            .lists
            .get(&self.address.account)
            .map(|f| &f.list)
            .ok_or(FanoutError::ThisDeviceInactive)?;
        match list.entry(self.address.device) {
            Some(e) if e.identity == self.identity.public() => match e.is_active(now) {
                true => Ok(list),
                false => Err(FanoutError::ThisDeviceExpired.into()),
            },
            _ => Err(FanoutError::ThisDeviceInactive.into()),
        }
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("address", &self.address)
            .field("identity", &self.identity.public())
            .field("accounts", &self.lists.len())
            .field("sessions", &self.sessions.len())
            .field("groups", &self.groups.len())
            .field("epoch", &self.epoch)
            .field("awaiting_own_list", &self.restored_at.is_some())
            .finish_non_exhaustive()
    }
}

/// The error for an account not followed. Envelopes carry addresses unchecked (an account a
/// device follows was checked when its list was verified, and lookups compare bytes), so the
/// key is checked here: a malformed key is `InvalidKey`, not an account to fetch a list for.
pub(crate) fn unknown_account(account: AccountKey) -> Error {
    match AccountKey::from_bytes(account.as_bytes()) {
        Ok(_) => FanoutError::UnknownAccount(account).into(),
        Err(e) => e.into(),
    }
}

/// Where [`Device::install_session`] puts a session in its device's set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Placement {
    /// An advanced copy of the session at this index: it replaces it and becomes current,
    /// unless a stronger session is held.
    Advanced(usize),
    /// A new session (started from a bundle, or by the peer): current unless a stronger one
    /// is held.
    New,
    /// The session of a retry's answer: the answerer's new one (`None`), or the one at this
    /// index that carried the answer to the requester. Current, and stronger ones are dropped
    /// (the peer cannot use them: it asked, or it dropped them when it answered).
    Requested(Option<usize>),
}
