//! Sending: a 1:1 message to every device of the recipient and to this account's other
//! devices; a group message as one sender-key message plus distributions where missing.
//! Everything is computed on copies and committed only when the whole send succeeded.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use rand_core::CryptoRng;

use super::device::lists_digest;
use super::envelope::{GroupHeader, PairwiseHeader};
use super::payload::{Payload, WithheldReason};
use super::{Device, Outbox, Outgoing};
use crate::calls::CallKeyMessage;
use crate::devices::{AccountKey, DeviceAddress};
use crate::error::{Error, FanoutError};
use crate::group::{GroupId, OutboundGroupSession};
use crate::history::HistoryOffer;
use crate::ratchet::Session;
use crate::time::Timestamp;

impl Device {
    /// Sends `body` to `to`'s account: one envelope per active device of `to`, and one per
    /// other active device of this account (those carry `to` so they can show the message in
    /// that conversation). Sending to this device's own account reaches its other devices.
    pub fn send(
        &mut self,
        rng: &mut impl CryptoRng,
        now: Timestamp,
        to: &AccountKey,
        body: &[u8],
    ) -> Result<Outgoing, Error> {
        self.own_list(now)?;
        let own = self.address.account;
        let mut targets = self.targets(to, now)?;
        if *to != own {
            targets.extend(self.targets(&own, now)?);
        }
        if let Some(missing) = self.missing_sessions(&targets) {
            return Ok(Outgoing::NeedBundles(missing));
        }
        let to_them = Payload::Direct {
            sent_to: None,
            body: body.to_vec(),
        }
        .encode();
        let own_copy = Payload::Direct {
            sent_to: Some(*to),
            body: body.to_vec(),
        }
        .encode();
        let sealed = self.seal_all(
            rng,
            now,
            &targets,
            |t| usize::from(t.account == own),
            &[&to_them, &own_copy],
        )?;
        Ok(Outgoing::Ready(self.commit_sealed(sealed, None)))
    }

    /// Sends `body` to a group whose member accounts are `members` (this account is always
    /// included). The message is encrypted once under this device's sender key; devices that
    /// lack the current key generation get it first, pairwise. If a device that holds the
    /// current key is no longer among the members' active devices, the key is rotated and the
    /// new one goes to the remaining devices only.
    pub fn send_group(
        &mut self,
        rng: &mut impl CryptoRng,
        now: Timestamp,
        group: GroupId,
        members: &[AccountKey],
        body: &[u8],
    ) -> Result<Outgoing, Error> {
        self.own_list(now)?;
        let mut devices = Vec::new();
        for account in members
            .iter()
            .chain(core::iter::once(&self.address.account))
        {
            devices.extend(self.targets(account, now)?);
        }
        devices.sort_unstable();
        devices.dedup();
        let existing = self.outbound.get(&group);
        let empty = BTreeSet::new();
        let holders = self.ledger.get(&group).unwrap_or(&empty);
        let (rotate, missing_key) = diff(holders, &devices);
        let fresh = existing.is_none() || rotate;
        let needs_key: Vec<DeviceAddress> = if fresh { devices.clone() } else { missing_key };
        if let Some(missing) = self.missing_sessions(&needs_key) {
            return Ok(Outgoing::NeedBundles(missing));
        }

        let mut outbound = match existing {
            Some(o) if !rotate => o.clone(),
            Some(o) => {
                let mut o = o.clone();
                o.rotate(rng)?;
                o
            }
            None => OutboundGroupSession::new(rng, group, &self.identity.public()),
        };
        let sealed = if needs_key.is_empty() {
            Vec::new()
        } else {
            let distribution =
                Payload::Distribution(alloc::boxed::Box::new(outbound.distribution())).encode();
            self.seal_all(rng, now, &needs_key, |_| 0, &[&distribution])?
        };
        let mut envelope = GroupHeader {
            sender: self.address,
            sender_list_version: self.own_list(now)?.version(),
        }
        .encode();
        envelope.extend_from_slice(&outbound.encrypt(body)?);

        let ledger = self.ledger.entry(group).or_default();
        if fresh {
            ledger.clear();
        }
        ledger.extend(needs_key);
        self.outbound.insert(group, outbound);
        let recipients = devices;
        Ok(Outgoing::Ready(
            self.commit_sealed(sealed, Some((envelope, recipients))),
        ))
    }

    /// Tells `device` that this device withholds its sender key for `group` from it, so its
    /// app can show why group messages from here are unreadable.
    pub fn withhold_group_key(
        &mut self,
        rng: &mut impl CryptoRng,
        now: Timestamp,
        device: DeviceAddress,
        group: GroupId,
        reason: WithheldReason,
    ) -> Result<Outgoing, Error> {
        self.send_payload(rng, now, &[device], &Payload::Withheld { group, reason })
    }

    /// Sends a call key message to `devices` (for a 1:1 call: the callee's devices and this
    /// account's other devices; for a group call: the participants).
    pub fn send_call_key(
        &mut self,
        rng: &mut impl CryptoRng,
        now: Timestamp,
        devices: &[DeviceAddress],
        message: &CallKeyMessage,
    ) -> Result<Outgoing, Error> {
        self.send_payload(rng, now, devices, &Payload::CallKey(message.clone()))
    }

    /// Sends a history offer to another device of this account (a newly linked companion).
    pub fn send_history_offer(
        &mut self,
        rng: &mut impl CryptoRng,
        now: Timestamp,
        device: DeviceAddress,
        offer: &HistoryOffer,
    ) -> Result<Outgoing, Error> {
        if device.account != self.address.account {
            return Err(FanoutError::NotForThisDevice.into());
        }
        self.send_payload(rng, now, &[device], &Payload::HistoryOffer(offer.clone()))
    }

    pub(crate) fn send_payload(
        &mut self,
        rng: &mut impl CryptoRng,
        now: Timestamp,
        devices: &[DeviceAddress],
        payload: &Payload,
    ) -> Result<Outgoing, Error> {
        self.own_list(now)?;
        let mut targets: Vec<DeviceAddress> = devices
            .iter()
            .filter(|d| **d != self.address)
            .copied()
            .collect();
        targets.sort_unstable();
        targets.dedup();
        for t in &targets {
            self.entry(t, now)?;
        }
        if let Some(missing) = self.missing_sessions(&targets) {
            return Ok(Outgoing::NeedBundles(missing));
        }
        let payload = payload.encode();
        let sealed = self.seal_all(rng, now, &targets, |_| 0, &[&payload])?;
        Ok(Outgoing::Ready(self.commit_sealed(sealed, None)))
    }

    fn missing_sessions(&self, devices: &[DeviceAddress]) -> Option<Vec<DeviceAddress>> {
        let missing: Vec<_> = devices
            .iter()
            .filter(|d| !self.sessions.contains_key(d))
            .copied()
            .collect();
        (!missing.is_empty()).then_some(missing)
    }

    /// Encrypts `payload` for each of `targets` on copies of their sessions; each envelope
    /// header (sender, recipient, list versions, lists digest) is bound into the AEAD.
    fn seal_all(
        &self,
        rng: &mut impl CryptoRng,
        now: Timestamp,
        targets: &[DeviceAddress],
        payload_for: impl Fn(&DeviceAddress) -> usize,
        payloads: &[&[u8]],
    ) -> Result<Vec<(DeviceAddress, Session, Vec<u8>)>, Error> {
        let own = self.own_list(now)?;
        // The lists digest depends only on the recipient account: compute it once per account.
        let mut digests: Vec<(AccountKey, u64, [u8; 8])> = Vec::new();
        let mut sealed = Vec::with_capacity(targets.len());
        for to in targets {
            let (version, digest) = match digests.iter().find(|(a, _, _)| *a == to.account) {
                Some((_, v, d)) => (*v, *d),
                None => {
                    let theirs = self
                        .lists
                        .get(&to.account)
                        .ok_or(FanoutError::UnknownAccount)?;
                    let d = lists_digest(own, theirs);
                    digests.push((to.account, theirs.version(), d));
                    (theirs.version(), d)
                }
            };
            let mut envelope = PairwiseHeader {
                sender: self.address,
                recipient: *to,
                sender_list_version: own.version(),
                recipient_list_version: version,
                lists_digest: digest,
            }
            .encode();
            let mut session = self
                .sessions
                .get(to)
                .and_then(|set| set.current())
                .ok_or(FanoutError::NoSession)?
                .clone();
            let payload = payloads.get(payload_for(to)).copied().unwrap_or_default();
            session.encrypt_bound_into(rng, payload, &mut envelope)?;
            sealed.push((*to, session, envelope));
        }
        Ok(sealed)
    }

    fn commit_sealed(
        &mut self,
        sealed: Vec<(DeviceAddress, Session, Vec<u8>)>,
        group: Option<(Vec<u8>, Vec<DeviceAddress>)>,
    ) -> Outbox {
        self.bump();
        let mut envelopes = Vec::with_capacity(sealed.len());
        for (to, session, envelope) in sealed {
            if let Some(set) = self.sessions.get_mut(&to) {
                set.promote(0, session);
            }
            envelopes.push((to, envelope));
        }
        Outbox { envelopes, group }
    }
}

/// Walks the ledger's holders and the (sorted, deduplicated) member devices together: whether
/// some holder is no longer a member device, and which member devices lack the key.
fn diff(
    holders: &BTreeSet<DeviceAddress>,
    devices: &[DeviceAddress],
) -> (bool, Vec<DeviceAddress>) {
    let mut departed = false;
    let mut missing = Vec::new();
    let mut h = holders.iter().peekable();
    for d in devices {
        while h.next_if(|holder| *holder < d).is_some() {
            departed = true;
        }
        if h.next_if(|holder| *holder == d).is_none() {
            missing.push(*d);
        }
    }
    departed |= h.next().is_some();
    (departed, missing)
}
