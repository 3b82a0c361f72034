//! Self-healing (PROTOCOL.md 18.5): a device that cannot read an envelope (no session, a
//! session lost or restored from an old backup, a failed authentication, a missing sender key)
//! asks the sending device for it again with a signed retry request carrying a fresh prekey
//! bundle; the sender starts a new session from that bundle and re-encrypts the body its app
//! stored, for that device only.
//!
//! The sender decides everything from its own sent journal, never from the request: the
//! requester must have been a recipient of that exact message, with the identity key it has
//! now, when it was sent (for a group message: it held that sender key generation from before
//! the message's iteration); the message must be within the retry window; each request is
//! answered once and each (message, device) at most [`MAX_RETRY_ATTEMPTS`] times.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use rand_core::CryptoRng;

use super::device::Placement;
use super::envelope::MessageRef;
use super::envelope::{Envelope, RetryWire, retry_body};
use super::journal::{
    MAX_MINTED_PER_KIND, MAX_RETRY_ATTEMPTS, Minted, Pending, PendingKey, SendId, SentKind,
};
use super::payload::Payload;
use super::records::Key;
use super::retry_request::{RetryReason, RetryRequest};
use super::{Device, EnvelopeId, MessageId, Outbox, Outgoing};
use crate::devices::DeviceAddress;
use crate::error::{CryptoError, Error, FanoutError};
use crate::group::GroupMessage;
use crate::labels;
use crate::primitives::IdentityKey;
use crate::ratchet::{IncomingMessage, Session};
use crate::time::Timestamp;
use crate::x3dh::PreKeyBundle;

impl Device {
    /// Asks the device that sent `failed` (an envelope this device could not read) to send it
    /// again. Makes one fresh one-time prekey and one fresh one-time ML-KEM prekey (32, then 64
    /// bytes from `rng`) for the request's bundle. They are never uploaded and take no room
    /// from the uploaded pools; the retry keeps them, with its other requests' (the sender may
    /// answer any request, and its answer session names that request's keys until this device
    /// replies), until it is dropped for room or with its sender.
    /// At most [`MAX_RETRY_ATTEMPTS`] requests per message; a message already read (a copy of
    /// it failed, the genuine envelope arrived; or a retry of it was answered) is
    /// `Duplicate`, and one of a group awaiting its members since a restore
    /// `GroupUnconfirmed`. A new ask is `AskLater` while the sender's account holds
    /// [`MAX_WAITING_RETRIES_PER_ACCOUNT`](super::MAX_WAITING_RETRIES_PER_ACCOUNT) retries
    /// still waiting for their answers (asked within
    /// [`PENDING_RETRY_HOLD_MS`](super::PENDING_RETRY_HOLD_MS) of their last ask), or all
    /// [`MAX_PENDING_RETRIES`](super::MAX_PENDING_RETRIES) places are taken by such retries
    /// and none gives way (to even out the accounts' shares, PROTOCOL.md 18.4): keep the
    /// envelope and ask at the time it names, or sooner once a resend is read.
    /// `SenderKeyMissing` is sent as `NoSession` when this device holds no session with the
    /// sender, only sessions unconfirmed since a restore (PROTOCOL.md 19.4), or asked for the
    /// message before, so the answer starts a session it can read. Returns the device to ship
    /// the request to, and the bytes.
    pub fn request_retry(
        &mut self,
        rng: &mut impl CryptoRng,
        now: Timestamp,
        failed: &[u8],
        reason: RetryReason,
    ) -> Result<(DeviceAddress, Vec<u8>), Error> {
        let reason = reason.checked()?;
        self.own_list(now)?;
        let decoded = Envelope::decode(failed)?;
        let failed = EnvelopeId::named(decoded.sealed_name(), failed);
        let (sender, reference, group) = match decoded {
            Envelope::Pairwise {
                header, message, ..
            } if header.recipient == self.address => (
                header.sender,
                IncomingMessage::decode(message)?.salt(),
                None,
            ),
            Envelope::Group {
                header, message, ..
            } => {
                let m = GroupMessage::decode(message)?;
                (header.sender, m.salt, Some(m.group()))
            }
            _ => return Err(FanoutError::NotForThisDevice.into()),
        };
        if sender == self.address {
            return Err(FanoutError::NotForThisDevice.into());
        }
        self.own_account_open(&sender.account)?;
        // A copy of a message already read (the genuine one arrived), named as either kind
        // (the relay can re-wrap a read message's salt as the other kind): nothing to ask for.
        if let Some(read) = EnvelopeId::either_kind(sender, reference)
            .into_iter()
            .find(|id| self.journal.has_read(id))
        {
            return Err(FanoutError::Duplicate { envelope_id: read }.into());
        }
        self.entry(&sender, now)?;
        // A message of a group awaiting its members since a restore: its answer would be
        // refused here (19.4) and use up an attempt. Ask once the app has set them.
        if let Some(g) = group
            && self.groups.get(&g).is_some_and(|g| g.unconfirmed)
        {
            return Err(FanoutError::GroupUnconfirmed(g).into());
        }
        let key = (sender, reference);
        // A retry answered, or whose genuine copy was read since (review 52): the message was
        // read, though the read ring may have turned since.
        let pending = self.journal.pending.get(&key);
        if let Some(p) = pending.filter(|p| p.done) {
            return Err(FanoutError::Duplicate {
                envelope_id: p.failed,
            }
            .into());
        }
        let previous = pending.map(|p| p.attempts);
        let last_asked = pending.map(|p| p.requested_at);
        let attempts = previous.unwrap_or(0);
        if attempts >= MAX_RETRY_ATTEMPTS {
            return Err(FanoutError::RetryLimit.into());
        }
        let attempt = attempts + 1;
        // Room first, so the keys of the retry dropped for it are released before any are
        // minted: the pools never run short of room for a request. Deferred, nothing changed.
        let made = self.journal.make_room(&key, now);
        if let Some((dropped, p)) = made.map_err(|at| FanoutError::AskLater { at })? {
            self.touch(Key::Pending(dropped));
            self.release_minted(&p.minted);
        }
        // Room beyond the caps, one key of each kind per request a pending retry made: the
        // pools the app uploads stay as large as it asked.
        let room = MAX_MINTED_PER_KIND;
        let one_time = self.prekeys.generate_one_time_prekeys_beyond(rng, 1, room);
        let kem =
            self.prekeys
                .generate_one_time_kem_prekeys_beyond(rng, &self.identity, now, 1, room);
        for k in &one_time {
            self.touch(Key::OneTime(k.id.0));
        }
        for k in &kem {
            self.touch(Key::OneTimeKem(k.id.0));
        }
        self.touch(Key::PreKeys);
        // A sender key asked for is answered on the sender's held session (18.6). Where that
        // session cannot be open here, ask as "no session", whose answer starts a new one from
        // this request's bundle: this device holds none with the sender (a restore dropped the
        // one the sender answered on), or it asked for this message before (the answer came
        // on a session it could not read, or never came), or its sessions with the sender are
        // to be replaced (unconfirmed since a restore, and the ratchet kept: see
        // `replaced_for_sender_key`). The bundle's KEM key is from the keys just made (their public halves were computed
        // with them): asking the store again would expand the ML-KEM key from its seed a
        // second time.
        let kem_public = match kem.first() {
            Some(k) => k.clone(),
            None => self.prekeys.last_resort_kem_prekey(),
        };
        let offers_ratchet = kem_public.id.pq_ratchet();
        let reason = if reason == RetryReason::SenderKeyMissing
            && (previous.is_some()
                || self
                    .sessions
                    .get(&sender)
                    .is_none_or(|s| s.replaced_for_sender_key(offers_ratchet)))
        {
            RetryReason::NoSession
        } else {
            reason
        };
        let bundle = PreKeyBundle::new(
            self.identity.public(),
            self.prekeys.signed_prekey(),
            one_time.first().cloned(),
            kem_public,
        )
        .to_bytes();
        let mut out = retry_body(
            &self.address,
            &sender,
            &reference,
            reason.code(),
            attempt,
            &bundle,
        );
        let signature = self.identity.sign(labels::RETRY_REQUEST, &out);
        out.extend_from_slice(&signature.to_bytes());
        // Every request's keys stay while the retry is kept: the sender may answer any of the
        // requests, in any order, and its answer session names that request's keys until this
        // device replies.
        let mut minted = self
            .journal
            .pending
            .remove(&key)
            .map(|p| p.minted)
            .unwrap_or_default();
        minted.push(Minted {
            one_time: one_time.first().map(|k| k.id),
            kem: kem.first().map(|k| k.id),
        });
        let pending = Pending {
            group,
            failed,
            attempts: attempt,
            // A re-ask renews the hold (its request is in flight, review 54), never moving it
            // back (a clock set back would shorten it, review 53).
            requested_at: last_asked.map_or(now, |t| t.max(now)),
            minted,
            done: false,
        };
        self.journal.pending.insert(key, pending);
        self.touch(Key::Pending(key));
        self.bump();
        Ok((sender, out))
    }

    /// Marks a pending retry done (answered, or the genuine copy read): a resend for it is no
    /// longer accepted. The entry and its keys stay: the sender's answer session may name them
    /// until this device replies.
    pub(crate) fn withdraw_pending(&mut self, key: PendingKey) {
        if let Some(p) = self.journal.pending.get_mut(&key)
            && !p.done
        {
            p.done = true;
            self.touch(Key::Pending(key));
        }
    }

    /// Ends a pending retry asked of a device that left its list (or changed identity): no
    /// answer can come from it, so the prekeys its requests minted are deleted.
    pub(crate) fn end_pending(&mut self, key: PendingKey) {
        if let Some(p) = self.journal.pending.remove(&key) {
            self.touch(Key::Pending(key));
            self.release_minted(&p.minted);
        }
    }

    /// Deletes a retry's prekeys that no session consumed.
    fn release_minted(&mut self, minted: &[Minted]) {
        for m in minted {
            let (one_time, kem) = self.prekeys.release(m.one_time, m.kem);
            if let (true, Some(id)) = (one_time, m.one_time) {
                self.touch(Key::OneTime(id.0));
            }
            if let (true, Some(id)) = (kem, m.kem) {
                self.touch(Key::OneTimeKem(id.0));
            }
        }
    }

    /// How many one-time prekeys and one-time ML-KEM prekeys pending retries hold: they are
    /// not part of the pools the app uploads.
    pub(crate) fn held_for_retries(&self) -> (usize, usize) {
        let held = |m: &Minted| {
            (
                m.one_time
                    .is_some_and(|id| self.prekeys.one_time_prekey(id).is_some()),
                m.kem
                    .is_some_and(|id| self.prekeys.one_time_kem_prekey(id).is_some()),
            )
        };
        self.journal
            .pending
            .values()
            .flat_map(|p| &p.minted)
            .map(held)
            .fold((0, 0), |(o, k), (a, b)| {
                (o + usize::from(a), k + usize::from(b))
            })
    }

    /// Checks a received retry request: addressed here, from an active device whose listed
    /// identity signed it and issued the bundle, for a message it was entitled to.
    pub(crate) fn verify_retry(
        &self,
        now: Timestamp,
        id: EnvelopeId,
        wire: RetryWire<'_>,
    ) -> Result<RetryRequest, Error> {
        if wire.sender != self.address || wire.requester == self.address {
            return Err(FanoutError::NotForThisDevice.into());
        }
        self.own_list(now)?;
        self.own_account_open(&wire.requester.account)?;
        let identity = self.entry(&wire.requester, now)?.identity;
        if wire.bundle.identity_key() != identity {
            return Err(FanoutError::IdentityMismatch(wire.requester).into());
        }
        identity
            .verify(labels::RETRY_REQUEST, wire.signed, &wire.signature)
            .map_err(|_| CryptoError::BadSignature)?;
        let (send_id, answered) =
            self.entitlement(now, &wire.requester, &identity, &wire.reference, &id)?;
        Ok(RetryRequest {
            from: wire.requester,
            send_id,
            reason: RetryReason::from_code(wire.reason),
            attempt: answered + 1,
            reference: wire.reference,
            request: id,
            bundle: Box::new(wire.bundle),
        })
    }

    /// The send a retry request may have answered: this device's list is current, the
    /// requester's account is open to it, the request's bundle carries the requester's listed
    /// identity (returned with it), and [`entitlement`](Self::entitlement) grants it. Both
    /// kinds of answer
    /// (a message, a call key) start here.
    pub(crate) fn entitled_send(
        &self,
        now: Timestamp,
        request: &RetryRequest,
    ) -> Result<(SendId, IdentityKey), Error> {
        self.own_list(now)?;
        let from = request.from;
        self.own_account_open(&from.account)?;
        let identity = self.entry(&from, now)?.identity;
        if request.bundle.identity_key() != identity {
            return Err(FanoutError::IdentityMismatch(from).into());
        }
        let (send_id, _) =
            self.entitlement(now, &from, &identity, &request.reference, &request.request)?;
        Ok((send_id, identity))
    }

    /// Whether `requester`, with `identity`, may have the message `reference` names again, by
    /// this device's sent journal; returns its send id and the answers already given.
    pub(crate) fn entitlement(
        &self,
        now: Timestamp,
        requester: &DeviceAddress,
        identity: &IdentityKey,
        reference: &MessageRef,
        request: &EnvelopeId,
    ) -> Result<(SendId, u8), Error> {
        let send_id = self
            .journal
            .send_of(reference)
            .ok_or(FanoutError::UnknownMessage)?;
        let sent = self
            .journal
            .sent
            .get(&send_id)
            .ok_or(FanoutError::UnknownMessage)?;
        let age = now.as_millis().saturating_sub(sent.sent_at.as_millis());
        if age > self.config.retry_window_ms {
            return Err(FanoutError::UnknownMessage.into());
        }
        let answered: &[EnvelopeId] = match &sent.kind {
            SentKind::Direct { recipients, .. } | SentKind::CallKey { recipients, .. } => {
                let r = recipients
                    .iter()
                    .find(|r| r.device == *requester && r.reference == *reference)
                    .ok_or(FanoutError::NotEntitled)?;
                if r.identity != *identity {
                    return Err(FanoutError::NotEntitled.into());
                }
                &r.answered
            }
            SentKind::Group {
                group,
                key_id,
                iteration,
                answered,
                ..
            } => {
                let holder = self
                    .groups
                    .get(group)
                    .and_then(|g| g.outbound.as_ref())
                    .and_then(|o| o.generation(*key_id))
                    .and_then(|l| l.holders.get(requester))
                    .ok_or(FanoutError::NotEntitled)?;
                if holder.identity != *identity || holder.since > *iteration {
                    return Err(FanoutError::NotEntitled.into());
                }
                answered.get(requester).map_or(&[], Vec::as_slice)
            }
        };
        if answered.contains(request) {
            return Err(FanoutError::Duplicate {
                envelope_id: *request,
            }
            .into());
        }
        if answered.len() >= MAX_RETRY_ATTEMPTS as usize {
            return Err(FanoutError::RetryLimit.into());
        }
        Ok((send_id, answered.len() as u8))
    }

    /// Answers a retry request with `body`, the body the app stored under
    /// `request.send_id` (it must be the one sent: `BodyMismatch` otherwise, and for a call
    /// key, which is answered with
    /// [`answer_call_key_retry`](Self::answer_call_key_retry)). The requester's
    /// entitlement is checked again; the answer is sealed for it alone, on a new session from
    /// the request's bundle (for `SenderKeyMissing` an existing session is kept). For a group
    /// message, a requester that still holds the current generation also gets the sender key
    /// again, so later messages read too.
    pub fn answer_retry(
        &mut self,
        rng: &mut impl CryptoRng,
        now: Timestamp,
        request: &RetryRequest,
        body: &[u8],
    ) -> Result<Outgoing, Error> {
        let from = request.from;
        let (send_id, identity) = self.entitled_send(now, request)?;
        let sent = &self.journal.sent[&send_id];
        let own = self.address.account;
        let (payload, redistribute, id) = match &sent.kind {
            SentKind::Direct {
                conversation,
                nonce,
                ..
            } => (
                Payload::DirectResend {
                    reference: request.reference,
                    nonce: *nonce,
                    sent_to: (from.account == own).then_some(*conversation),
                    body: body.to_vec(),
                },
                None,
                MessageId::direct(&self.address, conversation, nonce),
            ),
            SentKind::Group { group, .. } => {
                let current = self
                    .groups
                    .get(group)
                    .and_then(|g| g.outbound.as_ref())
                    .filter(|o| {
                        o.current()
                            .and_then(|l| l.holders.get(&from))
                            .is_some_and(|h| h.identity == identity)
                    })
                    .map(|o| o.session.distribution());
                (
                    Payload::GroupResend {
                        reference: request.reference,
                        group: *group,
                        body: body.to_vec(),
                    },
                    current,
                    MessageId::group(&self.address, group, &request.reference),
                )
            }
            // No body was sent: the answer is the call's current key message.
            SentKind::CallKey { .. } => return Err(FanoutError::BodyMismatch.into()),
        };
        if !self.body_key.matches(body, &sent.body_digest) {
            return Err(FanoutError::BodyMismatch.into());
        }
        self.seal_answer(rng, now, request, send_id, redistribute, &payload, Some(id))
    }

    /// Seals an answer to `request` (the journal's `send_id`), checked by the caller: to the
    /// requester alone, on a new session from the request's bundle unless the reason is
    /// "sender key missing" and a session exists that is not unconfirmed since a restore
    /// (PROTOCOL.md 19.4; or is, but runs the post-quantum ratchet where a session from the
    /// request's bundle would not), a redistribution of the current sender key
    /// first if there is one; and records the request answered. The outbox names the
    /// message's id, `message_id`, the one the original send reported.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn seal_answer(
        &mut self,
        rng: &mut impl CryptoRng,
        now: Timestamp,
        request: &RetryRequest,
        send_id: SendId,
        redistribute: Option<crate::group::SenderKeyDistribution>,
        payload: &Payload,
        message_id: Option<MessageId>,
    ) -> Result<Outgoing, Error> {
        let from = request.from;
        // A sender key went missing, not the session: keep it. (It is the strongest held: the
        // key went out over it, and a weaker session never displaces a stronger one.) A call
        // key rides on no sender key: whatever the reason, its answer starts a new session.
        let keep = request.reason == RetryReason::SenderKeyMissing
            && !matches!(payload, Payload::CallKeyResend { .. });
        // Sessions kept at this device's restore and unconfirmed since may be older than the
        // requester's (19.4): the answer starts a new session instead, as the requester's ask
        // does (`replaced_for_sender_key`).
        let offers_ratchet = request.bundle.kem_prekey().id.pq_ratchet();
        let held = self
            .sessions
            .get(&from)
            .filter(|s| !s.replaced_for_sender_key(offers_ratchet))
            .and_then(|s| s.current());
        let (mut session, index) = match held {
            Some(current) if keep => (current.clone(), Some(0)),
            _ => {
                let verified = (*request.bundle).clone().verify()?;
                let session =
                    Session::initiate(rng, &self.identity, &verified, self.config.session)?;
                (session, None)
            }
        };
        let mut envelopes = Vec::with_capacity(2);
        if let Some(distribution) = redistribute {
            let payload = Payload::Distribution(Box::new(distribution)).encode();
            let (envelope, _) = self.seal_with(rng, now, &from, &mut session, &payload)?;
            envelopes.push((from, envelope));
        }
        let (envelope, _) = self.seal_with(rng, now, &from, &mut session, &payload.encode())?;
        envelopes.push((from, envelope));

        let placement = index.map_or(Placement::Requested(None), Placement::Advanced);
        self.install_session(from, session, placement);
        self.note_answer(send_id, &from, request.request);
        self.bump();
        Ok(Outgoing::Ready(Outbox {
            send_id: None,
            message_id,
            envelopes,
            group: None,
            coverage: Arc::default(),
        }))
    }

    /// Records that `request` from `from` was answered.
    fn note_answer(&mut self, send_id: SendId, from: &DeviceAddress, request: EnvelopeId) {
        let Some(sent) = self.journal.sent.get_mut(&send_id) else {
            return;
        };
        let key = match &mut sent.kind {
            SentKind::Direct { recipients, .. } | SentKind::CallKey { recipients, .. } => {
                if let Some(r) = recipients.iter_mut().find(|r| r.device == *from) {
                    r.answered.push(request);
                }
                Key::Sent(send_id)
            }
            // The requester's own record: the entry, and every other requester's answers,
            // stay as written (thousands of member devices may ask for one message).
            SentKind::Group { answered, .. } => {
                answered.entry(*from).or_default().push(request);
                Key::Answered(send_id, *from)
            }
        };
        self.touch(key);
    }
}
