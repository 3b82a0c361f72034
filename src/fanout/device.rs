//! One device's whole protocol state: identity, prekeys, the device lists it trusts, one
//! pairwise session per remote device, inbound sender keys, its own outbound sender keys and
//! the ledger of which device holds which of them.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;
use core::fmt;
use rand_core::CryptoRng;

use super::Event;
use super::sessions::SessionSet;
use crate::devices::{
    AccountKey, DeviceAddress, DeviceId, DevicePolicy, SignedDeviceList, VerifiedDeviceList,
};
use crate::error::{Error, FanoutError};
use crate::group::{GroupConfig, GroupId, GroupReceiver, OutboundGroupSession};
use crate::labels;
use crate::primitives::{IdentityKeyPair, sha256};
use crate::ratchet::{Session, SessionConfig};
use crate::time::Timestamp;
use crate::x3dh::{
    OneTimePreKeyId, OneTimePreKeyPublic, PreKeyBundle, PreKeyStore, PreKeyStoreConfig,
};

/// Every policy a device applies, stored with it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Pairwise session limits.
    pub session: SessionConfig,
    /// Sender-key limits.
    pub group: GroupConfig,
    /// Companion cap and validity.
    pub policy: DevicePolicy,
    /// Prekey limits.
    pub prekeys: PreKeyStoreConfig,
}

/// A device of an account: the object an app holds, feeds bytes and `now`, and persists with
/// [`to_bytes`](Self::to_bytes) after every successful call.
#[derive(Clone)]
pub struct Device {
    pub(crate) config: DeviceConfig,
    pub(crate) address: DeviceAddress,
    pub(crate) identity: IdentityKeyPair,
    pub(crate) prekeys: PreKeyStore,
    pub(crate) lists: BTreeMap<AccountKey, VerifiedDeviceList>,
    pub(crate) sessions: BTreeMap<DeviceAddress, SessionSet>,
    pub(crate) groups: GroupReceiver,
    pub(crate) outbound: BTreeMap<GroupId, OutboundGroupSession>,
    /// Per group: the devices that hold this device's current sender key generation.
    pub(crate) ledger: BTreeMap<GroupId, BTreeSet<DeviceAddress>>,
    /// (group, device) pairs that told this device they withhold their key.
    pub(crate) withheld: BTreeSet<(GroupId, DeviceAddress)>,
    /// Ids of the envelopes read most recently, oldest first, so a redelivery is recognised.
    pub(crate) seen: VecDeque<MessageId>,
    /// Counts state changes; lets the app tell a stale snapshot from the latest state.
    pub(crate) epoch: u64,
}

/// Envelope ids remembered to recognise redeliveries.
pub const MAX_REMEMBERED_MESSAGE_IDS: usize = 2000;

/// A stable identity of one envelope: the same bytes always give the same id, on every device.
/// Use it to store what a message said and answer a redelivery idempotently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub [u8; 16]);

impl MessageId {
    /// The id of `envelope`: SHA-256("ratchetry v1 message id" ‖ envelope), first 16 bytes.
    pub fn of(envelope: &[u8]) -> Self {
        let full = sha256(&[labels::MESSAGE_ID, envelope]);
        let mut id = [0u8; 16];
        id.copy_from_slice(&full[..16]);
        Self(id)
    }
}

impl Device {
    /// Sets up a device of `own_list`'s account as device `id`, which the list must name with
    /// this identity. Makes a prekey store (draws 32 bytes for the signed prekey, then 32 per
    /// one-time prekey, `one_time_prekeys` of them).
    pub fn new(
        rng: &mut impl CryptoRng,
        now: Timestamp,
        identity: IdentityKeyPair,
        id: DeviceId,
        own_list: VerifiedDeviceList,
        one_time_prekeys: u32,
        config: DeviceConfig,
    ) -> Result<Self, Error> {
        let entry = own_list.check(id, now)?;
        if entry.identity != identity.public() {
            return Err(FanoutError::IdentityMismatch.into());
        }
        let mut prekeys = PreKeyStore::new(rng, &identity, now, config.prekeys);
        prekeys.generate_one_time_prekeys(rng, one_time_prekeys);
        let account = own_list.account();
        let mut lists = BTreeMap::new();
        lists.insert(account, own_list);
        Ok(Self {
            config,
            address: DeviceAddress {
                account,
                device: id,
            },
            identity,
            prekeys,
            lists,
            sessions: BTreeMap::new(),
            groups: GroupReceiver::new(config.group),
            outbound: BTreeMap::new(),
            ledger: BTreeMap::new(),
            withheld: BTreeSet::new(),
            seen: VecDeque::new(),
            epoch: 0,
        })
    }

    /// The state epoch: it grows with every change to the device (each successful send,
    /// receive, session start, list update, prekey change). Keep the epoch of the state last
    /// persisted somewhere a restore from backup does not roll back (a platform counter, the
    /// server), and pass it to [`restore`](Self::restore).
    pub fn state_epoch(&self) -> u64 {
        self.epoch
    }

    /// Restores persisted state and detects a stale snapshot: if its epoch is lower than
    /// `last_epoch` (the epoch of the state last persisted, kept elsewhere), the device is
    /// restored as from a backup ([`restore_from_backup`](Self::restore_from_backup)) and the
    /// second value is `true`.
    pub fn restore(
        rng: &mut impl CryptoRng,
        bytes: &[u8],
        last_epoch: u64,
    ) -> Result<(Self, bool), Error> {
        let device = Self::from_bytes(bytes)?;
        if device.epoch >= last_epoch {
            return Ok((device, false));
        }
        Self::restore_from_backup(rng, bytes).map(|d| (d, true))
    }

    pub(crate) fn bump(&mut self) {
        self.epoch = self.epoch.saturating_add(1);
    }

    /// Restores a device from a backup that may be older than the state it last had (an old
    /// snapshot, a copied phone). Everything it may already have sent under the snapshot's
    /// chain counters is made unreachable: every pairwise session starts a new sending chain
    /// from a fresh DH ratchet key on its next send, and every outbound sender key is rotated
    /// (so the ledger is cleared and the next group send redistributes). No message key or
    /// nonce is ever reused. Sessions whose peer moved on meanwhile may need a new session.
    pub fn restore_from_backup(rng: &mut impl CryptoRng, bytes: &[u8]) -> Result<Self, Error> {
        let mut device = Self::from_bytes(bytes)?;
        for set in device.sessions.values_mut() {
            set.renew_sending_chains();
        }
        for outbound in device.outbound.values_mut() {
            outbound.rotate(rng)?;
        }
        device.ledger.clear();
        device.bump();
        Ok(device)
    }

    /// This device's address.
    pub fn address(&self) -> DeviceAddress {
        self.address
    }

    /// This device's identity key pair's public half.
    pub fn identity_key(&self) -> crate::IdentityKey {
        self.identity.public()
    }

    /// A prekey bundle to publish, with the given one-time prekey if still held.
    pub fn bundle(&self, one_time: Option<OneTimePreKeyId>) -> PreKeyBundle {
        self.prekeys.bundle(&self.identity, one_time)
    }

    /// One-time prekeys not yet consumed: replenish with
    /// [`generate_one_time_prekeys`](Self::generate_one_time_prekeys) when low.
    pub fn one_time_prekeys_remaining(&self) -> usize {
        self.prekeys.one_time_prekeys_remaining()
    }

    /// New one-time prekeys to upload.
    pub fn generate_one_time_prekeys(
        &mut self,
        rng: &mut impl CryptoRng,
        count: u32,
    ) -> Vec<OneTimePreKeyPublic> {
        self.bump();
        self.prekeys.generate_one_time_prekeys(rng, count)
    }

    /// Rotates the signed prekey (do it regularly; earlier ones stay accepted for a while).
    pub fn rotate_signed_prekey(&mut self, rng: &mut impl CryptoRng, now: Timestamp) {
        self.bump();
        self.prekeys.rotate_signed_prekey(rng, &self.identity, now);
    }

    /// The verified device list held for `account`, if any.
    pub fn device_list(&self, account: &AccountKey) -> Option<&VerifiedDeviceList> {
        self.lists.get(account)
    }

    /// Whether a pairwise session with `device` exists.
    pub fn has_session(&self, device: &DeviceAddress) -> bool {
        self.sessions.contains_key(device)
    }

    /// Accepts a device list for `account` (a contact's, or this account's own, e.g. after
    /// the primary linked or unlinked a device). It must verify against `account` and must
    /// not roll back the list held. Sessions with devices that left or changed identity are
    /// dropped. Returns what changed.
    pub fn update_device_list(
        &mut self,
        now: Timestamp,
        account: &AccountKey,
        list: SignedDeviceList,
    ) -> Result<Vec<Event>, Error> {
        let held = self.lists.get(account);
        let verified = list.verify(account, held, &self.config.policy)?;
        let mut events = Vec::new();
        let old: BTreeMap<DeviceId, _> = held
            .map(|l| l.entries().iter().map(|e| (e.id, e.identity)).collect())
            .unwrap_or_default();
        let new: BTreeMap<DeviceId, _> = verified
            .entries()
            .iter()
            .map(|e| (e.id, e.identity))
            .collect();
        let addr = |device| DeviceAddress {
            account: *account,
            device,
        };
        for (id, identity) in &old {
            match new.get(id) {
                None => events.push(Event::DeviceRemoved(addr(*id))),
                Some(k) if k != identity => events.push(Event::IdentityChanged(addr(*id))),
                Some(_) => {}
            }
        }
        for id in new.keys().filter(|id| !old.contains_key(id)) {
            events.push(Event::DeviceAdded(addr(*id)));
        }
        if *account == self.address.account {
            let me = verified
                .entries()
                .iter()
                .find(|e| e.id == self.address.device);
            if me.is_none_or(|e| e.identity != self.identity.public() || !e.is_active(now)) {
                events.push(Event::ThisDeviceRemoved);
            }
        }
        for event in &events {
            if let Event::DeviceRemoved(a) | Event::IdentityChanged(a) = event {
                self.sessions.remove(a);
            }
        }
        self.lists.insert(*account, verified);
        self.bump();
        Ok(events)
    }

    /// Forgets an account: its list, sessions and sender keys (for example when the app
    /// learns that a contact's account key changed and starts over with the new one).
    pub fn forget_account(&mut self, account: &AccountKey) {
        self.bump();
        self.lists.remove(account);
        self.sessions.retain(|a, _| a.account != *account);
        for ledger in self.ledger.values_mut() {
            ledger.retain(|a| a.account != *account);
        }
    }

    /// Creates sessions from prekey bundles the app fetched for devices named in
    /// [`Outgoing::NeedBundles`](super::Outgoing::NeedBundles). Each bundle must verify and
    /// carry the identity key that device's signed list names. All or nothing.
    pub fn start_sessions(
        &mut self,
        rng: &mut impl CryptoRng,
        now: Timestamp,
        bundles: &[(DeviceAddress, PreKeyBundle)],
    ) -> Result<(), Error> {
        let mut made = Vec::with_capacity(bundles.len());
        for (address, bundle) in bundles {
            let entry = self.entry(address, now)?;
            if bundle.identity_key() != entry.identity {
                return Err(FanoutError::IdentityMismatch.into());
            }
            let verified = bundle.clone().verify()?;
            made.push((
                *address,
                Session::initiate(rng, &self.identity, &verified, self.config.session)?,
            ));
        }
        self.bump();
        for (address, session) in made {
            match self.sessions.get_mut(&address) {
                Some(set) => set.push_new(session),
                None => {
                    self.sessions.insert(address, SessionSet::new(session));
                }
            }
        }
        Ok(())
    }

    /// The active list entry of `address`.
    pub(crate) fn entry(
        &self,
        address: &DeviceAddress,
        now: Timestamp,
    ) -> Result<&crate::devices::DeviceEntry, Error> {
        let list = self
            .lists
            .get(&address.account)
            .ok_or(FanoutError::UnknownAccount)?;
        Ok(list.check(address.device, now)?)
    }

    /// This device's own list, which must still list it as active.
    pub(crate) fn own_list(&self, now: Timestamp) -> Result<&VerifiedDeviceList, Error> {
        let list = self
            .lists
            .get(&self.address.account)
            .ok_or(FanoutError::ThisDeviceInactive)?;
        match list.check(self.address.device, now) {
            Ok(e) if e.identity == self.identity.public() => Ok(list),
            _ => Err(FanoutError::ThisDeviceInactive.into()),
        }
    }

    /// The active devices of `account`, minus this device.
    pub(crate) fn targets(
        &self,
        account: &AccountKey,
        now: Timestamp,
    ) -> Result<Vec<DeviceAddress>, Error> {
        let list = self.lists.get(account).ok_or(FanoutError::UnknownAccount)?;
        Ok(list
            .active(now)
            .map(|e| DeviceAddress {
                account: *account,
                device: e.id,
            })
            .filter(|a| *a != self.address)
            .collect())
    }
}

/// The 8-byte digest of the two device lists an envelope was made under.
pub(crate) fn lists_digest(sender: &VerifiedDeviceList, recipient: &VerifiedDeviceList) -> [u8; 8] {
    let full = sha256(&[
        labels::DEVICE_LISTS_DIGEST,
        &sender.digest(),
        &recipient.digest(),
    ]);
    let mut out = [0u8; 8];
    out.copy_from_slice(&full[..8]);
    out
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("address", &self.address)
            .field("identity", &self.identity.public())
            .field("accounts", &self.lists.len())
            .field("sessions", &self.sessions.len())
            .field("outbound_groups", &self.outbound.len())
            .finish_non_exhaustive()
    }
}
