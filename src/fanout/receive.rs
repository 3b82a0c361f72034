//! Receiving an envelope: routing and device-list checks first, then the pairwise or group
//! decryption (an opening that changes nothing, applied later, or an operation that changes
//! nothing until it succeeds), then the payload's meaning — who may send it, into which group,
//! in answer to what — and only then one commit.

use alloc::vec::Vec;
use zeroize::Zeroizing;

use super::device::{Placement, unknown_account};
use super::envelope::MessageRef;
use super::envelope::{Envelope, GroupHeader, PairwiseHeader};
use super::lists::lists_digest;
use super::membership::MembershipChange;
use super::message_id::{DirectIdPrefix, MessageNonce};
use super::payload::{MAX_WITHHELD_GENERATIONS, Payload};
use super::records::Key;
use super::send::sender_of;
use super::{Device, EnvelopeId, MessageId, Received};
use crate::devices::{AccountKey, DeviceAddress};
use crate::error::{DecodeError, Error, FanoutError, GroupError};
use crate::group::{GroupId, GroupMessage, InboundSenderKey, SenderKeyId};
use crate::primitives::IdentityKey;
use crate::ratchet::session::Opened;
use crate::ratchet::{IncomingMessage, Session};
use crate::time::Timestamp;
use crate::x3dh::Consumption;

/// How a pairwise message opened: on the held session at this index (applied once the
/// payload is accepted), or by a new session the peer started, with the prekeys it consumes.
enum Opening {
    Held(usize, Opened),
    New(Session, Consumption),
}

/// A pairwise message opened: how, its plaintext, and the prefix of the sender's message ids
/// (`None` before its first message).
struct OpenedPairwise {
    opening: Opening,
    plaintext: Zeroizing<Vec<u8>>,
    prefix: Option<DirectIdPrefix>,
}

/// What a pairwise payload changes besides the session, decided before anything changes.
enum Effect {
    None,
    /// A sender key to store for (sender, group).
    Inbound(GroupId, InboundSenderKey),
    /// A withheld notice for (sender, group), naming the generation withheld.
    Withheld(GroupId, SenderKeyId),
    /// The retry for the message of this reference was answered: the message is read, under
    /// this id (its own kind's, 18.4: the envelope asked from may have been of the other kind).
    Answered(MessageRef, EnvelopeId),
    /// What a newer membership of an own device changes (18.2).
    Membership(MembershipChange),
}

impl Device {
    /// Reads one envelope. On any error nothing changed; the error says what the app can do
    /// (fetch a device list, ask for a retry, wait for a sender key, …).
    ///
    /// An envelope this device already read (among the last
    /// [`MAX_REMEMBERED_MESSAGE_IDS`](super::MAX_REMEMBERED_MESSAGE_IDS)) is refused with
    /// `FanoutError::Duplicate` carrying its [`EnvelopeId`], so the app can answer with what it
    /// stored the first time; nothing changes.
    pub fn receive(&mut self, now: Timestamp, envelope: &[u8]) -> Result<Received, Error> {
        let decoded = Envelope::decode(envelope)?;
        let name = decoded.sealed_name();
        let id = EnvelopeId::named(name, envelope);
        if self.journal.has_read(&id) {
            return Err(FanoutError::Duplicate { envelope_id: id }.into());
        }
        let (received, replaced) = match decoded {
            Envelope::Pairwise {
                header,
                header_bytes,
                message,
            } => self.receive_pairwise(now, &header, header_bytes, message),
            Envelope::Group {
                header,
                header_bytes,
                message,
            } => self
                .receive_group(now, &header, header_bytes, message)
                .map(|r| (r, None)),
            Envelope::Retry(wire) => self
                .verify_retry(now, id, wire)
                .map(|r| (Received::RetryRequest(r), None)),
        }?;
        self.remember_read(id);
        match (replaced, name) {
            // The message a resend replaces is read now: its genuine copy, should the relay
            // deliver it later, is a duplicate.
            (Some(replaced), name) => {
                self.remember_read(replaced);
                // A resend is a sealed message from the device that answered.
                if let Some((sender, _, _)) = name {
                    if let Some(forgotten) = self.journal.replace(replaced, sender, now) {
                        self.touch(Key::Replaced(forgotten));
                    }
                    self.touch(Key::Replaced(replaced));
                }
            }
            // The genuine copy of a message this device asked again for (a tampered copy
            // failed): the retry is no longer wanted, and its answer will be unexpected.
            (None, Some((sender, _, salt))) => self.withdraw_pending((sender, salt)),
            (None, None) => {}
        }
        self.bump();
        Ok(received)
    }

    /// Puts `id` in the read ring (a redelivery is then `Duplicate`) and marks the slot's
    /// record changed.
    pub(crate) fn remember_read(&mut self, id: EnvelopeId) {
        let slot = self.journal.read(id);
        self.touch(Key::Seen(slot));
    }

    /// The envelope's view of the two device lists against the lists held: a newer version
    /// than held must be fetched first; the held version (or a remembered older one) must come
    /// with the same lists digest; an older version not remembered is accepted, since both
    /// devices are checked active in the lists held. Returns the sender's identity key, from
    /// its active entry in the list held. Each list is looked up once.
    fn check_view(
        &mut self,
        header: &PairwiseHeader,
        now: Timestamp,
    ) -> Result<IdentityKey, Error> {
        let sender = header.sender.account;
        let own = self.address.account;
        let ours = self
            .lists
            .get(&own)
            .ok_or(FanoutError::ThisDeviceInactive)?;
        let own_held = (ours.list.version(), ours.list.digest());
        let own_used = ours.digest_of(header.recipient_list_version);
        let theirs = self
            .lists
            .get_mut(&sender)
            .ok_or_else(|| unknown_account(sender))?;
        let held = theirs.list.version();
        for (used, held, account) in [
            (header.sender_list_version, held, sender),
            (header.recipient_list_version, own_held.0, own),
        ] {
            if used > held {
                return Err(FanoutError::DeviceListsDiverge {
                    account,
                    used,
                    held,
                }
                .into());
            }
        }
        let expected =
            if (header.sender_list_version, header.recipient_list_version) == (held, own_held.0) {
                // The common case, both lists the held ones: their digest is computed once.
                Some(theirs.lists_digests(&own_held.1).received)
            } else {
                match (theirs.digest_of(header.sender_list_version), own_used) {
                    (Some(s), Some(r)) => Some(lists_digest(&s, &r)),
                    _ => None,
                }
            };
        if expected.is_some_and(|d| d != header.lists_digest) {
            return Err(FanoutError::DeviceListsDiverge {
                account: sender,
                used: header.sender_list_version,
                held,
            }
            .into());
        }
        Ok(theirs.list.check(header.sender.device, now)?.identity)
    }

    fn receive_pairwise(
        &mut self,
        now: Timestamp,
        header: &PairwiseHeader,
        header_bytes: &[u8],
        message: &[u8],
    ) -> Result<(Received, Option<EnvelopeId>), Error> {
        if header.recipient != self.address || header.sender == self.address {
            return Err(FanoutError::NotForThisDevice.into());
        }
        self.own_list(now)?;
        let from = header.sender;
        self.own_account_open(&from.account)?;
        // The list versions first: a device linked since the list held (its first message) is
        // a list to fetch, not a stranger.
        let identity = self.check_view(header, now)?;
        let OpenedPairwise {
            opening,
            plaintext,
            prefix,
        } = self.open_pairwise(&from, identity, header_bytes, message)?;
        let payload = Payload::decode(plaintext)?;
        let (received, effect) = self.judge(now, from, identity, prefix, payload)?;
        let requested = matches!(effect, Effect::Answered(..));
        match opening {
            Opening::Held(index, opened) => self.advance_session(from, index, opened, requested),
            Opening::New(session, c) => {
                if let Some(id) = c.one_time {
                    self.touch(Key::OneTime(id.0));
                }
                match c.kem {
                    crate::x3dh::KemUse::OneTime(id) => self.touch(Key::OneTimeKem(id.0)),
                    crate::x3dh::KemUse::LastResort(_) => self.touch(Key::PreKeys),
                }
                self.touch(Key::SeenBase(c.signed.0, c.base_key.to_bytes()));
                self.prekeys.consume(c);
                let placement = match requested {
                    true => Placement::Requested(None),
                    false => Placement::New,
                };
                self.install_session(from, session, placement);
            }
        }
        let mut replaced = None;
        match effect {
            Effect::None => {}
            Effect::Inbound(group, key) => {
                // A generation a notice withheld that the key now holds (an honest sender never
                // gives one): that notice is done. The others stay.
                if let Some(withheld) = self.withheld.get_mut(&(from, group)) {
                    let held = withheld.len();
                    withheld.retain(|g| !key.has_key(*g));
                    if withheld.len() != held {
                        if withheld.is_empty() {
                            self.withheld.remove(&(from, group));
                        }
                        self.touch(Key::Withheld(from, group));
                    }
                }
                self.inbound.insert((from, group), key);
                self.touch(Key::Inbound(from, group));
            }
            Effect::Withheld(group, key_id) => {
                // Kept with the other generations withheld, however notices are reordered.
                let withheld = self.withheld.entry((from, group)).or_default();
                if !withheld.contains(&key_id) {
                    withheld.push(key_id);
                    if withheld.len() > MAX_WITHHELD_GENERATIONS {
                        withheld.remove(0);
                    }
                    self.touch(Key::Withheld(from, group));
                }
            }
            Effect::Answered(reference, read) => {
                self.withdraw_pending((from, reference));
                replaced = Some(read);
            }
            Effect::Membership(change) => self.apply_membership(change),
        }
        Ok((received, replaced))
    }

    /// Decrypts a pairwise message from `from`, changing nothing: opened on the held session
    /// that reads it, or by a new session, for a pre-key message that starts one. Returns
    /// which, the plaintext, and the prefix of the sender's message ids.
    fn open_pairwise(
        &mut self,
        from: &DeviceAddress,
        identity: IdentityKey,
        header_bytes: &[u8],
        message: &[u8],
    ) -> Result<OpenedPairwise, Error> {
        // The sessions' set also keeps the prefix of the sender's message ids (computed at its
        // first message, not state): fetched with them, in the same lookup.
        let (sessions, prefix) = match self.sessions.get_mut(from) {
            Some(set) => {
                let prefix = set.direct_id_prefix(from);
                (set.all(), Some(prefix))
            }
            None => (&[][..], None),
        };
        let (opening, plaintext) = match IncomingMessage::decode(message)? {
            IncomingMessage::PreKey(ref m) => {
                let m = *m;
                if m.initiator_identity() != identity {
                    return Err(FanoutError::IdentityMismatch(*from).into());
                }
                match sessions.iter().position(|s| s.continues(&m)) {
                    Some(i) => {
                        let (opened, pt) =
                            sessions[i].open_message(&IncomingMessage::PreKey(m), header_bytes)?;
                        Ok((Opening::Held(i, opened), pt))
                    }
                    // A new session from the peer (it restarted, or raced ours): it becomes
                    // current once this message has decrypted; ours is kept as archived. Not
                    // on keys minted for a retry asked of another device.
                    None => {
                        let x = &m.x3dh;
                        if let Some(e) =
                            self.journal
                                .minted_for_another(from, x.one_time_prekey, x.kem_prekey)
                        {
                            return Err(e.into());
                        }
                        let (s, pt, c) = Session::accept_pending(
                            &self.identity,
                            &self.prekeys,
                            &m,
                            self.config.session,
                            header_bytes,
                        )?;
                        Ok((Opening::New(s, c), pt))
                    }
                }
            }
            incoming @ IncomingMessage::Ratchet(_) => {
                let mut first_error = None;
                let mut opened = None;
                for (i, s) in sessions.iter().enumerate() {
                    if s.remote_identity() != identity {
                        first_error.get_or_insert(FanoutError::IdentityMismatch(*from).into());
                        continue;
                    }
                    match s.open_message(&incoming, header_bytes) {
                        Ok((o, pt)) => {
                            opened = Some((Opening::Held(i, o), pt));
                            break;
                        }
                        Err(e) => {
                            first_error.get_or_insert(e);
                        }
                    }
                }
                opened.ok_or_else(|| first_error.unwrap_or(FanoutError::NoSession(*from).into()))
            }
        }?;
        Ok(OpenedPairwise {
            opening,
            plaintext: Zeroizing::new(plaintext),
            prefix,
        })
    }

    /// What a payload from `from` means, and what it will change; nothing changes here.
    fn judge(
        &self,
        now: Timestamp,
        from: DeviceAddress,
        identity: IdentityKey,
        prefix: Option<DirectIdPrefix>,
        payload: Payload,
    ) -> Result<(Received, Effect), Error> {
        let prefix = || prefix.unwrap_or_else(|| DirectIdPrefix::of(&from));
        let own = self.address.account;
        Ok(match payload {
            Payload::Direct {
                nonce,
                sent_to,
                body,
            } => (
                self.direct(from, prefix(), nonce, sent_to, body, None)?,
                Effect::None,
            ),
            Payload::Distribution(d) => {
                let group = d.group();
                self.is_member(group, &from.account)?;
                let key = match self.inbound.get(&(from, group)) {
                    Some(held) if held.sender().identity() == identity => {
                        let mut key = held.clone();
                        key.process_distribution(&self.config.group, &d)?;
                        key
                    }
                    _ => InboundSenderKey::new(sender_of(identity, &from), &d),
                };
                (
                    Received::SenderKey {
                        from,
                        group,
                        key_id: d.key_id(),
                    },
                    Effect::Inbound(group, key),
                )
            }
            Payload::Withheld {
                group,
                key_id,
                reason,
            } => {
                self.is_member(group, &from.account)?;
                (
                    Received::Withheld {
                        from,
                        group,
                        key_id,
                        reason,
                    },
                    Effect::Withheld(group, key_id),
                )
            }
            Payload::CallKey(message) => (Received::CallKey { from, message }, Effect::None),
            Payload::HistoryOffer {
                offered_at,
                offer,
                membership,
            } => {
                // Only this account's own devices hold its history and its groups.
                if from.account != own {
                    return Err(DecodeError::InvalidValue.into());
                }
                let change = self.judge_membership(now, offered_at, membership)?;
                let groups = change
                    .as_ref()
                    .map_or_else(Vec::new, MembershipChange::groups);
                (
                    Received::HistoryOffer {
                        from,
                        offer,
                        groups,
                    },
                    change.map_or(Effect::None, Effect::Membership),
                )
            }
            Payload::DirectResend {
                reference,
                nonce,
                sent_to,
                body,
            } => {
                let failed = self.answered(&reference, &from)?;
                (
                    self.direct(from, prefix(), nonce, sent_to, body, Some(failed))?,
                    Effect::Answered(reference, EnvelopeId::pairwise(from, reference)),
                )
            }
            Payload::GroupResend {
                reference,
                group,
                body,
            } => {
                let failed = self.answered(&reference, &from)?;
                self.is_member(group, &from.account)?;
                (
                    Received::Group {
                        from,
                        group,
                        // The reference is the group message's salt: the resend has the
                        // original's id.
                        id: MessageId::group(&from, &group, &reference),
                        body,
                        resent: Some(failed),
                    },
                    Effect::Answered(reference, EnvelopeId::group(from, reference)),
                )
            }
            Payload::CallKeyResend { reference, message } => {
                self.answered(&reference, &from)?;
                (
                    Received::CallKey { from, message },
                    Effect::Answered(reference, EnvelopeId::pairwise(from, reference)),
                )
            }
        })
    }

    /// A direct message from `from` (or its resend, replacing the envelope `resent`): to this
    /// account, or with `sent_to` a copy of a message this account's device `from` sent to
    /// `sent_to`. Its id names the conversation as the account it was sent to, so it is the
    /// one the sender and every other device compute, finished from `prefix`, the sender's.
    fn direct(
        &self,
        from: DeviceAddress,
        prefix: DirectIdPrefix,
        nonce: MessageNonce,
        sent_to: Option<AccountKey>,
        body: Vec<u8>,
        resent: Option<EnvelopeId>,
    ) -> Result<Received, Error> {
        let own = self.address.account;
        Ok(match sent_to {
            None => Received::Direct {
                from,
                id: prefix.id(&own, &nonce),
                body,
                resent,
            },
            Some(sent_to) if from.account == own => Received::OwnCopy {
                from,
                sent_to,
                id: prefix.id(&sent_to, &nonce),
                body,
                resent,
            },
            Some(_) => return Err(DecodeError::InvalidValue.into()),
        })
    }

    /// The failed envelope a resend answers: there must be a retry this device asked `from`
    /// for, not yet answered. Of either kind: the reference is a salt the sender drew for one
    /// message, and the relay can put it in an envelope of the other kind (a pairwise copy of a
    /// group message's salt fails, and is asked for as pairwise); the sender's own journal
    /// says which message it was, and its resend, which it seals, is that message.
    fn answered(&self, reference: &MessageRef, from: &DeviceAddress) -> Result<EnvelopeId, Error> {
        match self.journal.pending.get(&(*from, *reference)) {
            Some(p) if !p.done => Ok(p.failed),
            _ => Err(FanoutError::UnexpectedResend.into()),
        }
    }

    /// Reads a group envelope. Its header (`header_bytes`) is the context the group message's
    /// signature binds, so a relay that changed the sender list version (lowering it hides the
    /// "fetch the sender's newer list" signal) makes it `BadSignature`.
    fn receive_group(
        &mut self,
        now: Timestamp,
        header: &GroupHeader,
        header_bytes: &[u8],
        message: &[u8],
    ) -> Result<Received, Error> {
        let from = header.sender;
        if from == self.address {
            return Err(FanoutError::NotForThisDevice.into());
        }
        self.own_list(now)?;
        self.own_account_open(&from.account)?;
        let held = self.list(&from.account)?.version();
        if header.sender_list_version > held {
            return Err(FanoutError::DeviceListsDiverge {
                account: from.account,
                used: header.sender_list_version,
                held,
            }
            .into());
        }
        let identity = self.entry(&from, now)?.identity;
        let message = GroupMessage::decode(message)?;
        let group = message.group();
        self.is_member(group, &from.account)?;
        let missing = |device: &Self| -> Error {
            let withheld = device.withheld.get(&(from, group));
            if withheld.is_some_and(|w| w.contains(&message.key_id())) {
                FanoutError::Withheld.into()
            } else {
                FanoutError::SenderKeyMissing {
                    from,
                    key_id: message.key_id().0,
                }
                .into()
            }
        };
        let config = self.config.group;
        let key = match self.inbound.get_mut(&(from, group)) {
            Some(key) if key.sender().identity() == identity => key,
            _ => return Err(missing(self)),
        };
        // Decryption changes the key only once the message authenticated, and nothing after
        // it can fail.
        match key.decrypt_bound(&config, &message, header_bytes) {
            Ok(body) => {
                self.touch(Key::Inbound(from, group));
                let body = crate::primitives::take_bytes(body);
                Ok(Received::Group {
                    from,
                    group,
                    id: MessageId::group(&from, &group, &message.salt),
                    body,
                    resent: None,
                })
            }
            Err(
                GroupError::UnknownSender
                | GroupError::UnknownKeyId(_)
                | GroupError::PredatesKey(_),
            ) => Err(missing(self)),
            Err(e) => Err(e.into()),
        }
    }
}
