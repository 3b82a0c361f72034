//! Sending: a 1:1 message to every device of the recipient and to this account's other
//! devices; a group message as one sender-key message plus distributions where missing. Each
//! message is recorded in the sent journal with who received it. Everything is computed on
//! copies and committed only when the whole send succeeded.

use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use rand_core::CryptoRng;

use super::body_digest::BodyDigest;
use super::envelope::MessageRef;
use super::envelope::{GroupHeader, PairwiseHeader};
use super::journal::{Recipient, Sent, SentKind};
use super::ledger::{Holder, LEDGER_GENERATIONS, Ledger, Outbound, diff};
use super::message_id::MessageNonce;
use super::payload::{DirectPrefix, Payload, WithheldReason};
use super::records::Key;
use super::withholding::Withheld;
use super::{Device, MessageId, Outbox, Outgoing};
use crate::calls::CallKeyMessage;
use crate::devices::{AccountKey, DeviceAddress, ListCoverage};
use crate::error::{Error, FanoutError};
use crate::group::{GroupId, GroupSender, OutboundGroupSession};
use crate::history::HistoryOffer;
use crate::primitives::{IdentityKey, TAG_LEN};
use crate::ratchet::Session;
use crate::time::Timestamp;

/// One envelope sealed on its device's current session (advanced in place).
pub(crate) struct Sealed {
    pub(crate) to: DeviceAddress,
    pub(crate) identity: IdentityKey,
    pub(crate) envelope: Vec<u8>,
    pub(crate) reference: MessageRef,
}

/// A send's checks: this device's list version and, per target in order, the recipient's list
/// version and lists digest its header names; or the first refusal, which `seal_all` returns
/// before it seals anything. A caller may refuse for its own reasons in between (a group send,
/// its sender key's end), as it did before the pairwise sessions were checked.
pub(crate) struct Prepared {
    refused: Option<Error>,
    own_version: u64,
    views: Vec<(u64, [u8; 8])>,
}

impl Device {
    /// Sends `body` to `to`'s account: one envelope per active device of `to`, and one per
    /// other active device of this account (those carry `to` so they can show the message in
    /// that conversation). Sending to this device's own account reaches its other devices.
    /// The message is recorded in the sent journal under the outbox's `send_id`; the outbox's
    /// `message_id` is the id every device reading it reports.
    pub fn send(
        &mut self,
        rng: &mut impl CryptoRng,
        now: Timestamp,
        to: &AccountKey,
        body: &[u8],
    ) -> Result<Outgoing, Error> {
        self.own_list(now)?;
        self.own_account_open(to)?;
        let own = self.address.account;
        if !self.lists.contains_key(to) {
            return Ok(Outgoing::NeedDeviceLists(alloc::vec![*to]));
        }
        let mut targets = Vec::new();
        self.add_targets(to, now, &mut targets)?;
        if *to != own {
            self.add_targets(&own, now, &mut targets)?;
        }
        let prepared = match self.prepare_seal(now, &targets) {
            Ok(prepared) => prepared,
            Err(missing) => return Ok(Outgoing::NeedBundles(missing)),
        };
        // One nonce for every copy: with the sender and the conversation it makes
        // the message id (18.4), so every device reports the same one.
        let mut nonce: MessageNonce = [0; 16];
        rng.fill_bytes(&mut nonce);
        // Each copy seals its payload's head and then `body`, from where the app holds it.
        let to_them = DirectPrefix::new(&nonce, None);
        let own_copy = DirectPrefix::new(&nonce, Some(to));
        // Everything that can refuse comes before the sessions advance.
        let coverage = self.coverage(core::iter::once(to).chain(Some(&own)))?;
        let head = |t: &DeviceAddress| {
            if t.account == own {
                own_copy.as_bytes()
            } else {
                to_them.as_bytes()
            }
        };
        let sealed = self.seal_all(rng, prepared, &targets, head, body)?;
        let recipients = recipients_of(&sealed);
        let sent = Sent {
            sent_at: now,
            body_digest: self.body_key.digest(body),
            kind: SentKind::Direct {
                conversation: *to,
                nonce,
                recipients,
            },
        };
        let envelopes = envelopes_of(sealed);
        let send_id = self.record_sent(now, sent);
        self.bump();
        Ok(Outgoing::Ready(Outbox {
            send_id: Some(send_id),
            message_id: Some(MessageId::direct(&self.address, to, &nonce)),
            envelopes,
            group: None,
            coverage,
        }))
    }

    /// Sends `body` to `group`, whose members the app set with
    /// [`set_group_members`](Self::set_group_members). The message is encrypted once under this
    /// device's sender key; devices that lack the current key generation get it first,
    /// pairwise. If a device that holds the current key is no longer a member device (or holds
    /// it under another identity key, or was forgotten), the key is rotated and the new one
    /// goes to the present member devices only.
    ///
    /// # Example
    ///
    /// Alice writes to a group with Bob, who has a phone and a laptop.
    ///
    /// ```
    /// # include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/docs/doctest_setup.rs"));
    /// use ratchetry::group::GroupId;
    /// # fn main() -> Result<(), ratchetry::Error> {
    /// # let (mut rng, now, mut server) = (UnwrapErr(SysRng), Timestamp(1_790_000_000_000), Server::default());
    /// # let (alice_primary, mut alice) = server.account(&mut rng, now)?;
    /// # let (mut bob_primary, mut bob_phone) = server.account(&mut rng, now)?;
    /// # let mut bob_laptop = server.link(&mut rng, now, &mut bob_primary)?;
    /// let group = GroupId([7; 32]); // the app's id for the group
    /// let members = [alice_primary.account(), bob_primary.account()];
    /// for device in [&mut alice, &mut bob_phone, &mut bob_laptop] {
    ///     device.set_group_members(group, &members)?; // from the app's group state, on every device
    /// }
    /// // `ready` sends until the outbox is ready, fetching lists and bundles (see `Outgoing`).
    /// let outbox = server.ready(&mut alice, &mut rng, now, |d, rng| {
    ///     d.send_group(rng, now, group, b"hello, group")
    /// })?;
    /// // The first send gives the sender key to each device pairwise, then one group envelope
    /// // goes to all of them: deliver the pairwise envelopes first.
    /// let (envelope, recipients) = outbox.group.clone().unwrap();
    /// assert_eq!(*recipients, [bob_phone.address(), bob_laptop.address()]);
    /// for bob in [&mut bob_phone, &mut bob_laptop] {
    ///     let to = bob.address();
    ///     let key = server.receive(bob, now, &envelope_to(&outbox, to))?;
    ///     assert!(matches!(key, Received::SenderKey { .. }));
    ///     let Received::Group { body, .. } = server.receive(bob, now, &envelope)? else {
    ///         unreachable!()
    ///     };
    ///     assert_eq!(body, b"hello, group");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn send_group(
        &mut self,
        rng: &mut impl CryptoRng,
        now: Timestamp,
        group: GroupId,
        body: &[u8],
    ) -> Result<Outgoing, Error> {
        self.send_group_withholding(rng, now, group, body, &[])
    }

    /// Sends `body` to `group` as [`send_group`](Self::send_group) does, but withholds the
    /// sender key from the member devices named in `withheld` (a device the user has not
    /// verified, or one whose bundle never verifies), for this send: the group envelope still
    /// goes to every member device (a relay checks that a send covers every listed device),
    /// and a withheld device cannot read it. A device is never given a generation withheld
    /// from it: one that holds the current generation makes the key rotate first, and a later
    /// send that does not name it makes a new generation, for every member device. A withheld
    /// device's retry request for a message of this send is refused (`NotEntitled`).
    ///
    /// A device named with a reason is told, in the same outbox, which generation is withheld
    /// and why (so a session with it is needed, as for a distribution: `NeedBundles`); its
    /// messages of that generation are then `FanoutError::Withheld` there, not
    /// `SenderKeyMissing`. It is told once per generation, reason and identity key (kept with
    /// the sender key; [`not_delivered`](Self::not_delivered) of the send makes the next
    /// withholding send tell it again). A device named without a reason is not told (its
    /// bundle may never verify). A device named twice is withheld as named first.
    ///
    /// Errors besides `send_group`'s: `ReservedReason` for an app's reason with a named
    /// reason's number, `NotAGroupDevice` for a device that is not one of the group's member
    /// devices (this device's own account included, this device not).
    pub fn send_group_withholding(
        &mut self,
        rng: &mut impl CryptoRng,
        now: Timestamp,
        group: GroupId,
        body: &[u8],
        withheld: &[(DeviceAddress, Option<WithheldReason>)],
    ) -> Result<Outgoing, Error> {
        for reason in withheld.iter().filter_map(|(_, r)| *r) {
            reason.checked()?;
        }
        self.own_list(now)?;
        self.confirmed_group(group)?;
        let generation = self.lists_generation;
        // The reach kept from the last send, if it still holds; else computed again.
        let kept = self
            .groups
            .get_mut(&group)
            .ok_or(FanoutError::UnknownGroup(group))?
            .reach
            .take()
            .filter(|r| r.holds(generation, now));
        let g = &self.groups[&group];
        let reach = match kept {
            Some(reach) => reach,
            None => match self.reach_of(&g.members, now)? {
                Ok(reach) => reach,
                Err(unknown) => return Ok(Outgoing::NeedDeviceLists(unknown)),
            },
        };
        let devices = &reach.devices;
        let withheld = Withheld::new(withheld, devices)?;
        let (mut fresh, mut needs_key) = match &g.outbound {
            None => (true, devices.clone()),
            Some(o) if o.rotate_pending => (true, devices.clone()),
            // The last send gave the current key to exactly these devices.
            Some(_) if reach.settled => (false, Vec::new()),
            Some(o) => {
                let empty = Default::default();
                let holders = o.current().map_or(&empty, |l| &l.holders);
                let (departed, missing) = diff(holders, devices);
                if departed {
                    (true, devices.clone())
                } else {
                    (false, missing)
                }
            }
        };
        // Withholding may force a new generation, and the withheld devices get no key.
        let kept = g.outbound.as_deref().filter(|_| !fresh);
        if kept.is_some_and(|o| withheld.forces_new_generation(o, &needs_key)) {
            (fresh, needs_key) = (true, devices.clone());
        }
        needs_key.retain(|(a, _)| !withheld.contains(a));
        let (tell, withholding) = withheld.tell(g.outbound.as_deref().filter(|_| !fresh));
        // Sealed to: the devices given the key and those told it is withheld, in address order.
        let targets = match tell.is_empty() {
            true => Cow::Borrowed(&needs_key[..]),
            false => {
                let mut targets = needs_key.clone();
                targets.extend(tell.iter().map(|(a, identity, _)| (*a, *identity)));
                targets.sort_unstable_by_key(|(a, _)| *a);
                Cow::Owned(targets)
            }
        };
        let prepared = match self.prepare_seal(now, &targets) {
            Ok(prepared) => prepared,
            Err(missing) => return Ok(Outgoing::NeedBundles(missing)),
        };
        let g = &self.groups[&group];
        let mut session = match &g.outbound {
            Some(o) if !fresh => o.session.clone(),
            Some(o) => {
                let mut s = o.session.clone();
                // A new generation's id must differ from every generation still in the ledger.
                while {
                    s.rotate(rng);
                    o.generation(s.key_id()).is_some()
                } {}
                s
            }
            None => OutboundGroupSession::new(rng, group, self.group_sender()),
        };
        let since = session.iteration();
        // Everything that can refuse comes before the pairwise sessions advance: the sender
        // key's chain, and this device's list (the envelope header names its version).
        session.sealable()?;
        let sender_list_version = self.own_list(now)?.version();
        let sealed = if targets.is_empty() {
            Vec::new()
        } else {
            let distribution =
                Payload::Distribution(alloc::boxed::Box::new(session.distribution())).encode();
            let notices: Vec<(DeviceAddress, _)> = tell
                .iter()
                .map(|(a, _, reason)| {
                    let notice = Payload::Withheld {
                        group,
                        key_id: session.key_id(),
                        reason: *reason,
                    };
                    (*a, notice.encode())
                })
                .collect();
            let payload = |a: &DeviceAddress| match notices.binary_search_by_key(a, |(d, _)| *d) {
                Ok(i) => &notices[i].1[..],
                Err(_) => &distribution[..],
            };
            self.seal_all(rng, prepared, &targets, payload, &[])?
        };
        // The envelope header is the context the group message's signature binds (18.1).
        let mut envelope = GroupHeader {
            sender: self.address,
            sender_list_version,
        }
        .encode(GROUP_MESSAGE_OVERHEAD + body.len());
        let reference = session.encrypt_bound_into(rng, body, &mut envelope)?;
        let sent = Sent {
            sent_at: now,
            body_digest: self.body_key.digest(body),
            kind: SentKind::Group {
                group,
                key_id: session.key_id(),
                iteration: since,
                reference,
                answered: Default::default(),
            },
        };

        let envelopes = envelopes_of(sealed);
        self.commit_outbound(group, session, fresh, &needs_key, since);
        if let Some(o) = self
            .groups
            .get_mut(&group)
            .and_then(|g| g.outbound.as_mut())
        {
            o.withheld.extend(withholding);
        }
        let send_id = self.record_sent(now, sent);
        self.bump();
        let outbox = Outbox {
            send_id: Some(send_id),
            message_id: Some(MessageId::group(&self.address, &group, &reference)),
            envelopes,
            group: Some((envelope, reach.addresses.clone())),
            coverage: reach.coverage.clone(),
        };
        // Every device reached holds the current key now, and nothing else does; unless some
        // were withheld, whom the next send's ledger walk finds without it.
        if let Some(g) = self.groups.get_mut(&group) {
            g.reach = Some(reach.settled(withheld.is_empty()));
        }
        Ok(Outgoing::Ready(outbox))
    }

    /// Installs the group's advanced sender key and records who was given it from `since`.
    fn commit_outbound(
        &mut self,
        group: GroupId,
        session: OutboundGroupSession,
        fresh: bool,
        given: &[(DeviceAddress, IdentityKey)],
        since: u32,
    ) {
        let key_id = session.key_id();
        let mut touched = Vec::new();
        let Some(g) = self.groups.get_mut(&group) else {
            return;
        };
        // The session moves in whole: no copy of its secret keys is made here.
        let outbound = match &mut g.outbound {
            Some(o) => {
                o.session = session;
                o
            }
            slot @ None => slot.insert(Box::new(Outbound {
                session,
                rotate_pending: false,
                generations: Vec::new(),
                withheld: Default::default(),
            })),
        };
        outbound.rotate_pending = false;
        if fresh {
            // A new generation: withheld from no one yet.
            outbound.withheld.clear();
            outbound.generations.push(Ledger {
                key_id,
                holders: Default::default(),
            });
            while outbound.generations.len() > LEDGER_GENERATIONS {
                let old = outbound.generations.remove(0);
                touched.extend(
                    old.holders
                        .keys()
                        .map(|a| Key::Ledger(group, old.key_id, *a)),
                );
            }
        }
        if let Some(current) = outbound.generations.last_mut() {
            let holder = |(address, identity): &(DeviceAddress, IdentityKey)| {
                let holder = Holder {
                    identity: *identity,
                    since,
                };
                (*address, holder)
            };
            if current.holders.is_empty() {
                // A new generation's holders, built at once from `given` (in address order).
                current.holders = given.iter().map(holder).collect();
            } else {
                current.holders.extend(given.iter().map(holder));
            }
            touched.extend(given.iter().map(|(a, _)| Key::Ledger(group, key_id, *a)));
        }
        touched.push(Key::Outbound(group));
        self.touch_all(touched);
    }

    /// This device as the sender of its group messages: its identity key and address.
    pub(crate) fn group_sender(&self) -> GroupSender {
        sender_of(self.identity.public(), &self.address)
    }

    /// Sends a call key message to `devices` (for a 1:1 call: the callee's devices and this
    /// account's other devices; for a group call: the participants). It is journaled under the
    /// outbox's `send_id`: keep which call it was under that id, and answer a device that asks
    /// for it again ([`Received::RetryRequest`](super::Received::RetryRequest) with that send
    /// id) with [`answer_call_key_retry`](Self::answer_call_key_retry) and the call as it is
    /// then.
    pub fn send_call_key(
        &mut self,
        rng: &mut impl CryptoRng,
        now: Timestamp,
        devices: &[DeviceAddress],
        message: &CallKeyMessage,
    ) -> Result<Outgoing, Error> {
        let (call, epoch) = (message.call(), message.epoch());
        self.send_journaled(
            rng,
            now,
            devices,
            &Payload::CallKey(message.clone()),
            |recipients| {
                Some(Sent {
                    sent_at: now,
                    body_digest: BodyDigest::None,
                    kind: SentKind::CallKey {
                        call,
                        epoch,
                        recipients,
                    },
                })
            },
        )
    }

    /// Sends a history offer to another device of this account (a newly linked companion),
    /// with this device's groups and their member accounts, stamped with `now`: the companion
    /// installs them, so it can send to them and read their members at once, and a later
    /// offer brings the groups it installed up to date (PROTOCOL.md 18.2). More groups or
    /// members than a membership carries is `SyncError::MembershipTooLarge`.
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
        // A membership restored from a backup may name members removed since.
        if let Some(group) = self.unconfirmed_groups().next() {
            return Err(FanoutError::GroupUnconfirmed(group).into());
        }
        let payload = Payload::HistoryOffer {
            offered_at: now,
            offer: offer.clone(),
            membership: self.membership()?,
        };
        self.send_payload(rng, now, &[device], &payload)
    }

    /// Seals one payload to each of `devices` (this device skipped), unjournaled.
    pub(crate) fn send_payload(
        &mut self,
        rng: &mut impl CryptoRng,
        now: Timestamp,
        devices: &[DeviceAddress],
        payload: &Payload,
    ) -> Result<Outgoing, Error> {
        self.send_journaled(rng, now, devices, payload, |_| None)
    }

    /// Seals one payload to each of `devices` (this device skipped); `journal` makes, from
    /// the recipients, the sent journal's entry if the send is journaled.
    fn send_journaled(
        &mut self,
        rng: &mut impl CryptoRng,
        now: Timestamp,
        devices: &[DeviceAddress],
        payload: &Payload,
        journal: impl FnOnce(Vec<Recipient>) -> Option<Sent>,
    ) -> Result<Outgoing, Error> {
        self.own_list(now)?;
        let mut unknown: Vec<AccountKey> = devices
            .iter()
            .map(|d| d.account)
            .filter(|a| !self.lists.contains_key(a))
            .collect();
        if !unknown.is_empty() {
            unknown.sort_unstable();
            unknown.dedup();
            return Ok(Outgoing::NeedDeviceLists(unknown));
        }
        let mut targets = Vec::with_capacity(devices.len());
        for d in devices.iter().filter(|d| **d != self.address) {
            self.own_account_open(&d.account)?;
            targets.push((*d, self.entry(d, now)?.identity));
        }
        targets.sort_unstable_by_key(|(a, _)| *a);
        targets.dedup_by_key(|(a, _)| *a);
        if targets.is_empty() {
            // Nothing to seal: the state is unchanged.
            return Ok(Outgoing::Ready(Outbox {
                send_id: None,
                message_id: None,
                envelopes: Vec::new(),
                group: None,
                coverage: Arc::default(),
            }));
        }
        let prepared = match self.prepare_seal(now, &targets) {
            Ok(prepared) => prepared,
            Err(missing) => return Ok(Outgoing::NeedBundles(missing)),
        };
        let payload = payload.encode();
        let sealed = self.seal_all(rng, prepared, &targets, |_| &payload, &[])?;
        let sent = journal(recipients_of(&sealed));
        let envelopes = envelopes_of(sealed);
        let send_id = sent.map(|sent| self.record_sent(now, sent));
        self.bump();
        Ok(Outgoing::Ready(Outbox {
            send_id,
            message_id: None,
            envelopes,
            group: None,
            coverage: Arc::default(),
        }))
    }

    /// Seals arbitrary payload bytes to `to` (test support: what a malicious peer can send).
    #[cfg(feature = "test-support")]
    pub(crate) fn seal_raw(
        &mut self,
        rng: &mut impl CryptoRng,
        now: Timestamp,
        to: DeviceAddress,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let targets = [(to, self.entry(&to, now)?.identity)];
        // A malicious peer may seal over a classical session too.
        let prepared = self
            .prepare(now, &targets, false)
            .map_err(|_| FanoutError::NoSession(to))?;
        let sealed = self.seal_all(rng, prepared, &targets, |_| plaintext, &[])?;
        let mut envelopes = envelopes_of(sealed);
        self.bump();
        Ok(envelopes.pop().map(|(_, e)| e).unwrap_or_default())
    }

    /// Adds the active devices of `account` with their identity keys, minus this device, to
    /// `out` (in address order): a group send collects ~3,000 from ~1,000 accounts into one
    /// vector, without one of its own per account.
    pub(crate) fn add_targets(
        &self,
        account: &AccountKey,
        now: Timestamp,
        out: &mut Vec<(DeviceAddress, IdentityKey)>,
    ) -> Result<(), Error> {
        // A device restored from a backup leaves its own account's devices out until it holds
        // an own list issued since (`Device::restore_from_backup`).
        if self.own_account_open(account).is_err() {
            return Ok(());
        }
        let active = self.list(account)?.active(now).map(|e| {
            let address = DeviceAddress {
                account: *account,
                device: e.id,
            };
            (address, e.identity)
        });
        out.extend(active.filter(|(a, _)| *a != self.address));
        Ok(())
    }

    /// The lists a send to `accounts` in full is made under, each account once, in account
    /// order; this device's own account only while its own devices are sent to (not while a
    /// restored device awaits its own list).
    pub(crate) fn coverage<'a>(
        &self,
        accounts: impl Iterator<Item = &'a AccountKey>,
    ) -> Result<Arc<[ListCoverage]>, Error> {
        let mut out: Vec<ListCoverage> = Vec::with_capacity(accounts.size_hint().0);
        for account in accounts {
            if self.own_account_open(account).is_ok() {
                out.push(ListCoverage::of(self.list(account)?));
            }
        }
        // Sorted, then each account once (a group's members may include this account).
        out.sort_unstable_by_key(|c| c.account);
        out.dedup_by(|a, b| a.account == b.account);
        Ok(out.into())
    }

    /// Checks a send to `targets` before anything advances, looking each session up once:
    /// the targets without a post-quantum session, to fetch bundles for (`Err(missing)`: a
    /// classical session, migrated from before PQXDH, is replaced before anything is sent over
    /// it), else what [`seal_all`](Self::seal_all) needs: the list view each header names, or
    /// the first refusal (this device's list not held, a list not held, a sending chain at its
    /// end), in that order.
    pub(crate) fn prepare_seal(
        &mut self,
        now: Timestamp,
        targets: &[(DeviceAddress, IdentityKey)],
    ) -> Result<Prepared, Vec<DeviceAddress>> {
        self.prepare(now, targets, true)
    }

    /// [`prepare_seal`](Self::prepare_seal), where a classical session counts as missing only
    /// if `post_quantum_only`.
    fn prepare(
        &mut self,
        now: Timestamp,
        targets: &[(DeviceAddress, IdentityKey)],
        post_quantum_only: bool,
    ) -> Result<Prepared, Vec<DeviceAddress>> {
        let mut refused = None;
        let own_version = match self.own_list(now) {
            Ok(list) => list.version(),
            Err(e) => {
                refused = Some(e);
                0
            }
        };
        let mut missing = Vec::new();
        // The header's list view depends only on the recipient account: looked up again only
        // when the account changes (targets come in address order, an account's devices
        // together).
        let mut view: Option<(AccountKey, u64, [u8; 8])> = None;
        let mut views = Vec::with_capacity(targets.len());
        for (to, _) in targets {
            let (version, digest) = match view {
                Some((a, v, d)) if a == to.account => (v, d),
                _ => match self.lists_digests(&to.account) {
                    Ok((version, digests)) => {
                        view = Some((to.account, version, digests.sent));
                        (version, digests.sent)
                    }
                    Err(e) => {
                        refused.get_or_insert(e);
                        (0, [0; 8])
                    }
                },
            };
            let current = self.sessions.get(to).and_then(|s| s.current());
            match current.filter(|s| s.is_post_quantum() || !post_quantum_only) {
                None => missing.push(*to),
                Some(session) => {
                    if let Err(e) = session.sealable() {
                        refused.get_or_insert(e.into());
                    }
                }
            }
            views.push((version, digest));
        }
        if !missing.is_empty() {
            return Err(missing);
        }
        Ok(Prepared {
            refused,
            own_version,
            views,
        })
    }

    /// Encrypts `payload_for(target) ‖ tail` for each of `targets` on its current session,
    /// advanced in place; each envelope header (sender, recipient, list versions, lists
    /// digest) is bound into the AEAD. `prepared` is what [`prepare_seal`](Self::prepare_seal)
    /// made of the same targets, with nothing changed since: every refusal came there, before
    /// any session advances. (Sealing once it passed cannot fail: a session's peer ratchet key
    /// passed the contributory check when it was received.)
    pub(crate) fn seal_all<'p>(
        &mut self,
        rng: &mut impl CryptoRng,
        prepared: Prepared,
        targets: &[(DeviceAddress, IdentityKey)],
        payload_for: impl Fn(&DeviceAddress) -> &'p [u8],
        tail: &[u8],
    ) -> Result<Vec<Sealed>, Error> {
        if let Some(e) = prepared.refused {
            return Err(e);
        }
        let mut sealed = Vec::with_capacity(targets.len());
        let mut advanced = Vec::with_capacity(targets.len());
        let mut failed = None;
        for ((to, identity), (version, digest)) in targets.iter().zip(prepared.views) {
            let Some(session) = self.sessions.get_mut(to).and_then(|set| set.current_mut()) else {
                continue;
            };
            let header = PairwiseHeader {
                sender: self.address,
                recipient: *to,
                sender_list_version: prepared.own_version,
                recipient_list_version: version,
                lists_digest: digest,
            };
            let result = seal(rng, &header, session, payload_for(to), tail);
            // Advanced, so persisted, even in the failure that cannot happen.
            advanced.push(Key::Sessions(*to));
            match result {
                Ok((envelope, reference)) => sealed.push(Sealed {
                    to: *to,
                    identity: *identity,
                    envelope,
                    reference,
                }),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        self.touch_all(advanced);
        failed.map_or(Ok(sealed), Err)
    }

    /// Seals one payload to `to` on `session` (advancing it).
    pub(crate) fn seal_with(
        &mut self,
        rng: &mut impl CryptoRng,
        now: Timestamp,
        to: &DeviceAddress,
        session: &mut Session,
        payload: &[u8],
    ) -> Result<(Vec<u8>, MessageRef), Error> {
        let own_version = self.own_list(now)?.version();
        let (version, digests) = self.lists_digests(&to.account)?;
        let header = PairwiseHeader {
            sender: self.address,
            recipient: *to,
            sender_list_version: own_version,
            recipient_list_version: version,
            lists_digest: digests.sent,
        };
        seal(rng, &header, session, payload, &[])
    }

    /// Records a sent message in the journal (and forgets the ones it pushes out).
    pub(crate) fn record_sent(&mut self, now: Timestamp, sent: Sent) -> super::SendId {
        let (id, dropped) = self.journal.sent(now, self.config.retry_window_ms, sent);
        self.touch(Key::Sent(id));
        for (d, entry) in dropped {
            self.touch(Key::Sent(d));
            for device in entry.answered_devices() {
                self.touch(Key::Answered(d, *device));
            }
        }
        id
    }
}

/// The envelopes sealed, each with its device.
fn envelopes_of(sealed: Vec<Sealed>) -> Vec<(DeviceAddress, Vec<u8>)> {
    sealed.into_iter().map(|s| (s.to, s.envelope)).collect()
}

/// The sent journal's recipients of envelopes sealed for a send: each device, its identity
/// key, and its envelope's reference.
fn recipients_of(sealed: &[Sealed]) -> Vec<Recipient> {
    sealed
        .iter()
        .map(|s| Recipient {
            device: s.to,
            identity: s.identity,
            reference: s.reference,
            answered: Vec::new(),
        })
        .collect()
}

/// An envelope: `header` bound as context, then the pairwise message of `payload ‖ tail`.
fn seal(
    rng: &mut impl CryptoRng,
    header: &PairwiseHeader,
    session: &mut Session,
    payload: &[u8],
    tail: &[u8],
) -> Result<(Vec<u8>, MessageRef), Error> {
    let mut envelope = header.encode(MESSAGE_OVERHEAD + payload.len() + tail.len());
    let reference = session.encrypt_bound_into(rng, &[payload, tail], &mut envelope)?;
    Ok((envelope, reference))
}

/// A pairwise message's bytes beyond its payload, at most: a pre-key prefix, the ratchet
/// header and the tag.
const MESSAGE_OVERHEAD: usize = 80 + 60 + TAG_LEN;

/// A group message's bytes beyond its body: the header, the tag and the signature.
const GROUP_MESSAGE_OVERHEAD: usize = 58 + TAG_LEN + 64;

/// The group sender of a device: its identity key, with its address as context.
pub(crate) fn sender_of(identity: IdentityKey, address: &DeviceAddress) -> GroupSender {
    GroupSender::fixed(identity, &address.to_array())
}
