//! An in-memory relay built from the [`server`](crate::server) pieces: what an app's tests,
//! demos and examples run against, and the reference for a real server's behaviour. It keeps
//! verified device lists, each device's [`PublishedPreKeys`], and a mailbox per device; it
//! refuses a batch made under a stale list (the coverage check) and serves the
//! [`driver`](crate::driver) as its [`Directory`].
//!
//! It owns nothing a device relies on: the relay is untrusted, and every device checks what it
//! serves. It must not reach below the device's, the server module's and the driver's public
//! API. A real server keeps the same state in its database and authenticates who submits.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;
use core::convert::Infallible;

use crate::devices::{AccountKey, DeviceAddress, ListLimits, SignedDeviceList, VerifiedDeviceList};
use crate::driver::Directory;
use crate::error::{Error, ServerError};
use crate::fanout::Outbox;
use crate::server::{PublishedPreKeys, check_coverage};
use crate::time::Timestamp;
use crate::x3dh::{OneTimePreKeys, PreKeyBundle};

/// The relay's state: lists, prekeys and mailboxes.
#[derive(Debug, Default)]
pub struct Relay {
    limits: ListLimits,
    lists: BTreeMap<AccountKey, VerifiedDeviceList>,
    prekeys: BTreeMap<DeviceAddress, PublishedPreKeys>,
    mailboxes: BTreeMap<DeviceAddress, VecDeque<Vec<u8>>>,
    now: Timestamp,
}

impl Relay {
    /// An empty relay verifying lists under `limits` (the network's ceiling).
    pub fn new(limits: ListLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Sets the relay's clock (lists' expiry, the coverage check).
    pub fn set_time(&mut self, now: Timestamp) {
        self.now = now;
    }

    /// Publishes an account's list: verified against the one held (no rollback, no
    /// equivocation). The keys and mailbox of a device no longer listed, or listed with
    /// another identity key, are dropped.
    pub fn publish_list(&mut self, list: SignedDeviceList) -> Result<(), Error> {
        let account = list.account();
        let verified = list.verify(&account, self.lists.get(&account), &self.limits)?;
        self.prekeys.retain(|a, keys| {
            a.account != account
                || verified
                    .entry(a.device)
                    .is_some_and(|e| e.identity == keys.base().identity_key())
        });
        let entries = verified.entries();
        self.mailboxes
            .retain(|a, _| a.account != account || entries.iter().any(|e| e.id == a.device));
        self.lists.insert(account, verified);
        Ok(())
    }

    /// Publishes a device's base prekeys (`Device::bundle(None, None)`), first or after a
    /// rotation, checked against its account's list.
    pub fn publish_prekeys(
        &mut self,
        device: DeviceAddress,
        base: PreKeyBundle,
    ) -> Result<(), Error> {
        let list = self
            .lists
            .get(&device.account)
            .ok_or(ServerError::UnknownAccount(device.account))?;
        match self.prekeys.get_mut(&device) {
            Some(keys) if keys.base().identity_key() == base.identity_key() => {
                keys.replace_base(base, list, self.now)
            }
            _ => {
                let keys = PublishedPreKeys::new(device, base, list, self.now)?;
                self.prekeys.insert(device, keys);
                Ok(())
            }
        }
    }

    /// Adds a device's one-time key upload (`Device::generate_one_time_prekeys`).
    pub fn upload_one_time(
        &mut self,
        device: DeviceAddress,
        upload: &OneTimePreKeys,
    ) -> Result<(), Error> {
        self.prekeys
            .get_mut(&device)
            .ok_or(ServerError::NotListed(device))?
            .add(upload)
    }

    /// One-time prekeys and one-time ML-KEM prekeys left for `device`.
    pub fn prekeys_remaining(&self, device: &DeviceAddress) -> (usize, usize) {
        self.prekeys.get(device).map_or((0, 0), |k| k.remaining())
    }

    /// Accepts an outbox from `sender`, all or nothing: its coverage must name the lists the
    /// relay serves and reach every active device of each covered account
    /// ([`check_coverage`]); then each envelope goes to its device's mailbox, pairwise ones
    /// first. A refusal queues nothing: the sender fetches the list named, takes the send
    /// back (`Device::not_delivered`) and sends again.
    pub fn submit(&mut self, sender: DeviceAddress, outbox: &Outbox) -> Result<(), ServerError> {
        let lists = &self.lists;
        check_coverage(
            &sender,
            &outbox.recipients(),
            &outbox.coverage,
            |a| lists.get(a),
            self.now,
        )?;
        for (to, envelope) in &outbox.envelopes {
            self.deliver(*to, envelope.clone());
        }
        if let Some((envelope, devices)) = &outbox.group {
            // Once per device, however often the batch names it: the coverage check allows
            // repeats, and a crafted batch naming one device a thousand times must not buy a
            // thousand copies of the envelope in its mailbox.
            let devices: BTreeSet<&DeviceAddress> = devices.iter().collect();
            for to in devices {
                self.deliver(*to, envelope.clone());
            }
        }
        Ok(())
    }

    /// Queues one envelope (a retry request, or any envelope a device addresses alone).
    pub fn deliver(&mut self, to: DeviceAddress, envelope: Vec<u8>) {
        self.mailboxes.entry(to).or_default().push_back(envelope);
    }

    /// The envelopes waiting for `device`, oldest first; they stay until acknowledged.
    pub fn inbox(&self, device: &DeviceAddress) -> impl Iterator<Item = &[u8]> {
        self.mailboxes
            .get(device)
            .into_iter()
            .flat_map(|m| m.iter().map(Vec::as_slice))
    }

    /// Acknowledges the oldest envelope waiting for `device` (read and persisted, or dropped).
    pub fn ack(&mut self, device: &DeviceAddress) -> Option<Vec<u8>> {
        self.mailboxes.get_mut(device)?.pop_front()
    }

    /// Moves the oldest waiting envelope of `device` to the back (held: a group message
    /// waiting for its sender key).
    pub fn hold(&mut self, device: &DeviceAddress) {
        if let Some(m) = self.mailboxes.get_mut(device)
            && let Some(e) = m.pop_front()
        {
            m.push_back(e);
        }
    }
}

impl Directory for Relay {
    type Error = Infallible;

    fn device_lists(
        &mut self,
        accounts: &[AccountKey],
    ) -> Result<Vec<SignedDeviceList>, Infallible> {
        Ok(accounts
            .iter()
            .filter_map(|a| self.lists.get(a).map(|l| l.signed().clone()))
            .collect())
    }

    fn bundles(
        &mut self,
        devices: &[DeviceAddress],
    ) -> Result<Vec<(DeviceAddress, PreKeyBundle)>, Infallible> {
        Ok(devices
            .iter()
            .filter_map(|d| Some((*d, self.prekeys.get_mut(d)?.take_bundle())))
            .collect())
    }
}
