//! The device's journals, each bounded and persisted entry by entry:
//!
//! - the **read ring**: ids of the last [`MAX_REMEMBERED_MESSAGE_IDS`] envelopes read, so a
//!   redelivery is refused as a duplicate (one slot record per read, not the whole window);
//! - the **replaced ids**: up to [`MAX_REPLACED_MESSAGE_IDS`] messages a resend replaced, with
//!   their senders. A redelivery of a message read normally fails below this layer once the
//!   ring has turned (its key was used), but the genuine copy of a message read through a
//!   resend still opens: its key was never used. These ids are kept apart from the ring, and
//!   room is made at the expense of the sender account holding the most, so one account's
//!   resends (a contact the relay controls, however many devices it links) cannot push out
//!   another's;
//! - the **sent journal**: for each message sent within the retry window, who received it and
//!   with which identity key, so a retry is answered only to a device that was entitled to that
//!   exact message when it was sent, a bounded number of times, never twice for one request;
//! - the **pending retries**: the retries this device asked for, so only an answer to one of
//!   them is accepted as a resent message. One still waiting for its answer is dropped only
//!   to even out the accounts' shares: an ask with no place is deferred, and one sender
//!   account holds at most a quarter of the places.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;

use super::EnvelopeId;
use super::body_digest::BodyDigest;
use super::envelope::MessageRef;
use super::message_id::MessageNonce;
use crate::calls::CallId;
use crate::devices::{AccountKey, DeviceAddress};
use crate::error::{DecodeError, X3dhError};
use crate::group::{GroupId, SenderKeyId};
use crate::primitives::IdentityKey;
use crate::time::Timestamp;
use crate::wire::{Reader, Writer, bounded_count};
use crate::x3dh::{KemPreKeyId, OneTimePreKeyId};

/// Envelope ids remembered to recognise redeliveries.
pub const MAX_REMEMBERED_MESSAGE_IDS: usize = 2000;
/// Ids of messages read through a resend, remembered apart from the read ring; beyond it, the
/// oldest of the sender account holding the most is forgotten.
pub const MAX_REPLACED_MESSAGE_IDS: usize = 2000;
/// Sent messages remembered for retries, at most; the oldest is forgotten first.
pub const MAX_SENT_MESSAGES: usize = 1000;
/// How long a sent message can be asked for again, by default: 7 days.
pub const DEFAULT_RETRY_WINDOW_MS: u64 = 7 * 24 * 60 * 60 * 1000;
/// Retries a sender answers per (message, requesting device), and a requester asks per message.
pub const MAX_RETRY_ATTEMPTS: u8 = 3;
/// Retries this device keeps (waiting on their answers, or done with their prekeys), at most.
pub const MAX_PENDING_RETRIES: usize = 256;
/// One-time prekeys of each kind that pending retries may hold beyond the uploaded pools'
/// caps: one per request, [`MAX_RETRY_ATTEMPTS`] requests each.
pub(crate) const MAX_MINTED_PER_KIND: u32 = MAX_PENDING_RETRIES as u32 * MAX_RETRY_ATTEMPTS as u32;
/// How long a retry asked for and not answered is **waiting**: not dropped for room (only to
/// even out the accounts' shares), so no flood of asks (forged envelopes under its sender's
/// address) pushes it out before its answer can come: 1 day from its last ask.
pub const PENDING_RETRY_HOLD_MS: u64 = 24 * 60 * 60 * 1000;
/// Waiting retries one sender account's devices may hold; an ask beyond is deferred
/// (`AskLater`), so one contact (or forgeries under its addresses) cannot take every place.
pub const MAX_WAITING_RETRIES_PER_ACCOUNT: usize = MAX_PENDING_RETRIES / 4;
/// Recipients one sent message can list: the decoding bound of a journal entry.
const MAX_RECIPIENTS: u32 = 4096;
/// Devices a group message's retries can be answered for: every device of every member's
/// list and of the own account's (review 44: bounded by `MAX_RECIPIENTS`, a group of 4,096
/// devices that all asked left an entry its own device refused to load).
const MAX_GROUP_REQUESTERS: u32 =
    (crate::fanout::members::MAX_GROUP_MEMBERS as u32 + 1) * crate::devices::MAX_LIST_ENTRIES;

/// Names one sent message among this device's sends, for the app to store its body under and
/// find it again when a device asks for the message again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SendId(pub u64);

/// One recipient of a 1:1 send: the device, the identity key it had, its envelope's reference,
/// and the retries answered for it (the request ids, which also refuse a replayed request).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Recipient {
    pub(crate) device: DeviceAddress,
    pub(crate) identity: IdentityKey,
    pub(crate) reference: MessageRef,
    pub(crate) answered: Vec<EnvelopeId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SentKind {
    /// A 1:1 message in the conversation with `conversation`, with the nonce every copy
    /// carried (a resend carries it again, so the message keeps its id).
    Direct {
        conversation: AccountKey,
        nonce: MessageNonce,
        recipients: Vec<Recipient>,
    },
    /// A group message: who may have it is decided by the ledger of `key_id`, from `iteration`.
    Group {
        group: GroupId,
        key_id: SenderKeyId,
        iteration: u32,
        reference: MessageRef,
        /// Retries answered, by requesting device: each device's in a record of its own
        /// (`Key::Answered`), so that an answer writes one device's ids, not every device's.
        answered: BTreeMap<DeviceAddress, Vec<EnvelopeId>>,
    },
    /// A call key message of `call` at `epoch`. A retry is answered with the call's current
    /// key message, never one older than `epoch`, and only to a device still in the call.
    CallKey {
        call: CallId,
        epoch: u32,
        recipients: Vec<Recipient>,
    },
}

impl SentKind {
    /// The recipients of a pairwise send (a 1:1 message or a call key), each with its own
    /// envelope; `None` for a group message, whose recipients the ledger names.
    pub(crate) fn recipients_mut(&mut self) -> Option<&mut Vec<Recipient>> {
        match self {
            Self::Direct { recipients, .. } | Self::CallKey { recipients, .. } => Some(recipients),
            Self::Group { .. } => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sent {
    pub(crate) sent_at: Timestamp,
    /// The body's digest, in the form it was made: a retry is answered only with the body
    /// sent. None for a call key, whose answer is the call's current key message.
    pub(crate) body_digest: BodyDigest,
    pub(crate) kind: SentKind,
}

/// The key of a retry this device asked for: the device asked, and the failed message's
/// reference. A copy forged under another sender's address is a retry of its own, so it
/// cannot stand in for the genuine message's.
pub(crate) type PendingKey = (DeviceAddress, MessageRef);

/// A retry this device asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pending {
    /// The group of a group message; `None` for a 1:1 message.
    pub(crate) group: Option<GroupId>,
    /// The id of the envelope that could not be read.
    pub(crate) failed: EnvelopeId,
    pub(crate) attempts: u8,
    pub(crate) requested_at: Timestamp,
    /// The one-time prekeys minted for each request's bundle, one entry per attempt (never
    /// uploaded). Kept while the entry is: the sender's answer session, whichever request it
    /// answered, keeps naming them until the requester replies.
    pub(crate) minted: Vec<Minted>,
    /// Answered, or the genuine copy was read: a resend is no longer accepted, but the entry
    /// stays (and its keys with it) until it is dropped for room or with its sender.
    pub(crate) done: bool,
}

impl Pending {
    /// When it stops waiting for its answer, unless answered first: a hold from its last ask.
    fn waits_until(&self) -> Timestamp {
        Timestamp(self.requested_at.0.saturating_add(PENDING_RETRY_HOLD_MS))
    }

    /// Neither done nor asked more than a hold from `now` either way: a clock set back
    /// keeps it waiting, one run ahead when it was asked does not keep it for longer
    /// (review 53).
    fn waiting(&self, now: Timestamp) -> bool {
        !self.done
            && now < self.waits_until()
            && self.requested_at < Timestamp(now.0.saturating_add(PENDING_RETRY_HOLD_MS))
    }
}

/// The one-time prekey and one-time ML-KEM prekey a retry request's bundle names (either may
/// be absent: the store held no room, or its counter wrapped onto a held id).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Minted {
    pub(crate) one_time: Option<OneTimePreKeyId>,
    pub(crate) kem: Option<KemPreKeyId>,
}

/// Send ids a device restored from a backup skips past the backup's counter: more messages
/// than the lost state can have sent after the backup, whose bodies the app's own store (which
/// the backup does not roll back) may hold under those ids. A restore also moves the counter to
/// at least its time in milliseconds (up to [`RESTORE_SEND_ID_FLOOR_CAP`]), so that two
/// restores from one backup, the later at a later clock reading, issue no id twice either
/// (each sends fewer than one message per millisecond); and [`Device::restore`] adds the
/// epochs the app saw after the snapshot, so that one at the same reading does not either.
///
/// [`Device::restore`]: super::Device::restore
pub const RESTORE_SEND_ID_SKIP: u64 = 1 << 32;

/// The highest a restore's time moves the next send id to: `2^53`, so that send ids stay
/// exact as JavaScript numbers and a clock at its end (`u64::MAX`) leaves room to count.
pub const RESTORE_SEND_ID_FLOOR_CAP: u64 = 1 << 53;

#[derive(Clone, Debug, Default)]
pub(crate) struct Journal {
    /// Read ring: slot → id, and the ids for lookup.
    pub(crate) seen_slots: VecDeque<EnvelopeId>,
    pub(crate) seen: BTreeSet<EnvelopeId>,
    /// The slot the next read id goes to.
    pub(crate) seen_next: u32,
    /// Sent messages by send id. Not indexed by reference: a send to hundreds of devices would
    /// insert and evict hundreds of index entries, while a lookup by reference only serves a
    /// retry request, which is rare and verified first (`send_of` scans).
    pub(crate) sent: BTreeMap<SendId, Sent>,
    pub(crate) next_send: u64,
    pub(crate) pending: BTreeMap<PendingKey, Pending>,
    /// Messages a resend replaced: the sender, and when the resend was read.
    pub(crate) replaced: BTreeMap<EnvelopeId, (DeviceAddress, Timestamp)>,
}

impl Journal {
    /// After a restore from a backup at `now`: the next send id skips
    /// [`RESTORE_SEND_ID_SKIP`], is at least `now` in milliseconds (at most
    /// [`RESTORE_SEND_ID_FLOOR_CAP`]), and moves on by the `epochs_lost` after the snapshot
    /// (at most the skip): every send took an epoch, so an earlier restore from the same
    /// snapshot, at the same clock reading, issued no id this one issues.
    pub(crate) fn skip_send_ids_after_restore(&mut self, now: Timestamp, epochs_lost: u64) {
        self.next_send = self
            .next_send
            .saturating_add(RESTORE_SEND_ID_SKIP)
            .max(now.as_millis().min(RESTORE_SEND_ID_FLOOR_CAP))
            .saturating_add(epochs_lost.min(RESTORE_SEND_ID_SKIP));
    }

    /// Whether the message `id` names was read: in the read ring, or replaced by a resend read.
    pub(crate) fn has_read(&self, id: &EnvelopeId) -> bool {
        self.seen.contains(id) || self.replaced.contains_key(id)
    }

    /// The refusal of a pre-key message from `from` that names a one-time prekey or one-time
    /// ML-KEM prekey minted for a retry asked of another device (PROTOCOL.md 18.6): a
    /// request's bundle travels in the clear, and a relay serving it as this device's bundle
    /// to a device of its own would use up the keys the asked device's answer is sealed to.
    /// Refused as a key not held; `None` for any other message.
    pub(crate) fn minted_for_another(
        &self,
        from: &DeviceAddress,
        one_time: Option<OneTimePreKeyId>,
        kem: KemPreKeyId,
    ) -> Option<X3dhError> {
        self.pending
            .iter()
            .filter(|((asked, _), _)| asked != from)
            .flat_map(|(_, p)| &p.minted)
            .find_map(|m| match one_time {
                Some(id) if m.one_time == Some(id) => Some(X3dhError::UnknownOneTimePreKey(id.0)),
                _ => (m.kem == Some(kem)).then_some(X3dhError::UnknownKemPreKey(kem.0)),
            })
    }

    /// Makes room for a new pending retry `key` asked at `now`, before anything is minted for
    /// it; returns the retry dropped for it, if one was, so its prekeys can be released. A
    /// retry held needs none. Else the ask is deferred (`Err`: when a place frees, unless
    /// other asks take it first) while the account of `key` holds
    /// [`MAX_WAITING_RETRIES_PER_ACCOUNT`] waiting retries. When all places are taken: if
    /// any retry is done or past its hold, one of the account holding the most of those goes
    /// (`key` counted for its account if that account holds any; the lowest account among
    /// equals), its done ones first, then the one asked longest ago (the lowest key among
    /// equal times). If every one is waiting, the oldest (the lowest key among equal times)
    /// of the account holding the most waiting goes, if that account holds at least two more
    /// than `key`'s (review 53: a contact's accounts cannot fill the table and keep others
    /// out; review 54: the oldest, so that a sender with many retries loses each at most once
    /// before its others); else the ask is deferred.
    pub(crate) fn make_room(
        &mut self,
        key: &PendingKey,
        now: Timestamp,
    ) -> Result<Option<(PendingKey, Pending)>, Timestamp> {
        if self.pending.contains_key(key) {
            return Ok(None);
        }
        // Asks are rare and the table small: scans. A forged envelope under an honest
        // sender's address cannot be told from its genuine broken one, so forgeries under
        // one address count against that account's share, never against its waiting retries
        // (review 45).
        let account = key.0.account;
        let waiting_of = |a: AccountKey| {
            self.pending
                .iter()
                .filter(move |((s, _), p)| s.account == a && p.waiting(now))
                .map(|(_, p)| p)
        };
        if waiting_of(account).count() >= MAX_WAITING_RETRIES_PER_ACCOUNT {
            return Err(first_free(waiting_of(account)));
        }
        if self.pending.len() < MAX_PENDING_RETRIES {
            return Ok(None);
        }
        let dropped = self
            .past_waiting(key, now)
            .or_else(|| self.fairer(account, now));
        match dropped {
            Some(k) => Ok(self.pending.remove(&k).map(|p| (k, p))),
            None => Err(first_free(self.pending.values())),
        }
    }

    /// Of the account holding the most retries done or past their hold, its done ones
    /// first, then the one asked longest ago (see `make_room`). Done retries' messages were
    /// read: only their unused keys go.
    fn past_waiting(&self, key: &PendingKey, now: Timestamp) -> Option<PendingKey> {
        // By account, not oldest overall: a contact the relay controls, whose own messages the
        // relay breaks, would otherwise push out another sender's retry (done or not), whose
        // answer session names prekeys this device no longer holds.
        let candidates = || self.pending.iter().filter(|(_, p)| !p.waiting(now));
        let most = holding_the_most(candidates().map(|(k, _)| k.0.account), Some(key.0.account))?;
        candidates()
            .filter(|(k, _)| k.0.account == most)
            .min_by_key(|(k, p)| (!p.done, p.requested_at, **k))
            .map(|(k, _)| *k)
    }

    /// With every retry waiting: the oldest of the account holding the most, if it holds at
    /// least two more than `account` (see `make_room`). A re-ask of it renews its time, so
    /// it goes last among its account's next.
    fn fairer(&self, account: AccountKey, now: Timestamp) -> Option<PendingKey> {
        let waiting = || self.pending.iter().filter(|(_, p)| p.waiting(now));
        let most = holding_the_most(waiting().map(|(k, _)| k.0.account), None)?;
        let count = |a: AccountKey| waiting().filter(|(k, _)| k.0.account == a).count();
        if count(most) < count(account) + 2 {
            return None;
        }
        waiting()
            .filter(|(k, _)| k.0.account == most)
            .min_by_key(|(k, p)| (p.requested_at, **k))
            .map(|(k, _)| *k)
    }

    /// Remembers that a resend from `sender` read at `now` replaced `id`; returns the id
    /// forgotten to make room: the oldest (lowest id among equal times) of the sender holding
    /// the most (the lowest address among equals), never `id` itself.
    pub(crate) fn replace(
        &mut self,
        id: EnvelopeId,
        sender: DeviceAddress,
        now: Timestamp,
    ) -> Option<EnvelopeId> {
        self.replaced.insert(id, (sender, now));
        if self.replaced.len() <= MAX_REPLACED_MESSAGE_IDS {
            return None;
        }
        // Resends are rare (each answers a retry this device asked for): scans are fine.
        // Counted by account, not by device: an account that keeps linking new devices (the
        // relay's own contact) holds all its devices' entries, and pays for them itself.
        // The new id counts for its sender's account only where that account holds others
        // to drop (as `make_room` counts): counted as one of its own, a new account's id
        // could tie with every other account's one entry, win by the lower key, and leave
        // nothing to drop but itself (review 44).
        let others = self
            .replaced
            .iter()
            .filter(|(k, _)| **k != id)
            .map(|(_, (s, _))| s.account);
        let most = holding_the_most(others, Some(sender.account))?;
        let oldest = self
            .replaced
            .iter()
            .filter(|(k, (s, _))| **k != id && s.account == most)
            .min_by_key(|(k, (_, t))| (*t, **k))
            .map(|(k, _)| *k)?;
        self.replaced.remove(&oldest);
        Some(oldest)
    }

    /// Records a read envelope; returns the slot written.
    pub(crate) fn read(&mut self, id: EnvelopeId) -> u32 {
        let slot = self.seen_next;
        if self.seen_slots.len() == MAX_REMEMBERED_MESSAGE_IDS
            && let Some(old) = self.seen_slots.pop_front()
        {
            self.seen.remove(&old);
        }
        self.seen_slots.push_back(id);
        self.seen.insert(id);
        self.seen_next = (slot + 1) % MAX_REMEMBERED_MESSAGE_IDS as u32;
        slot
    }

    /// The id stored in read-ring `slot`.
    pub(crate) fn seen_slot(&self, slot: u32) -> Option<EnvelopeId> {
        // The ring's oldest entry sits at `seen_next` once it is full, at 0 before.
        let len = self.seen_slots.len() as u32;
        let oldest = if len as usize == MAX_REMEMBERED_MESSAGE_IDS {
            self.seen_next
        } else {
            0
        };
        let index =
            (slot + MAX_REMEMBERED_MESSAGE_IDS as u32 - oldest) % MAX_REMEMBERED_MESSAGE_IDS as u32;
        self.seen_slots.get(index as usize).copied()
    }

    /// Rebuilds the ring from its slot records (slot → id) and the next slot.
    pub(crate) fn restore_seen(
        &mut self,
        slots: BTreeMap<u32, EnvelopeId>,
        next: u32,
    ) -> Result<(), DecodeError> {
        let n = slots.len() as u32;
        let cap = MAX_REMEMBERED_MESSAGE_IDS as u32;
        if next >= cap || slots.keys().any(|s| *s >= cap) {
            return Err(DecodeError::InvalidValue);
        }
        // Slots fill 0, 1, 2, …; once all are used, the oldest is the one written next.
        let oldest = if n == cap { next } else { 0 };
        if n < cap && (n != next || slots.keys().any(|s| *s >= n)) {
            return Err(DecodeError::InvalidValue);
        }
        for i in 0..n {
            let id = slots[&((oldest + i) % cap)];
            self.seen_slots.push_back(id);
            self.seen.insert(id);
        }
        self.seen_next = next;
        Ok(())
    }

    /// Records a send; returns its id and the entries it pushed out of the journal (by count
    /// or age), whose records are to be deleted.
    pub(crate) fn sent(
        &mut self,
        now: Timestamp,
        window_ms: u64,
        sent: Sent,
    ) -> (SendId, Vec<(SendId, Sent)>) {
        let id = SendId(self.next_send);
        // Unreachable by counting (2^64 sends), and by restores (their floor is capped).
        self.next_send = self.next_send.saturating_add(1);
        self.sent.insert(id, sent);
        let mut dropped = Vec::new();
        while let Some((&oldest, entry)) = self.sent.first_key_value() {
            let expired = now.as_millis().saturating_sub(entry.sent_at.as_millis()) > window_ms;
            if self.sent.len() <= MAX_SENT_MESSAGES && !expired {
                break;
            }
            dropped.extend(self.sent.remove_entry(&oldest));
        }
        (id, dropped)
    }

    /// The send whose envelope (or group message) had salt `reference`, newest first.
    pub(crate) fn send_of(&self, reference: &MessageRef) -> Option<SendId> {
        self.sent
            .iter()
            .rev()
            .find(|(_, s)| references(&s.kind).any(|r| r == reference))
            .map(|(id, _)| *id)
    }

    /// Loaded entries name each reference once (a sender draws every salt afresh).
    pub(crate) fn check_references(&self) -> Result<(), DecodeError> {
        let mut all: Vec<&MessageRef> = self
            .sent
            .values()
            .flat_map(|s| references(&s.kind))
            .collect();
        all.sort_unstable();
        match all.windows(2).any(|w| w[0] == w[1]) {
            true => Err(DecodeError::InvalidValue),
            false => Ok(()),
        }
    }

    pub(crate) fn insert_sent(&mut self, id: SendId, sent: Sent) -> Result<(), DecodeError> {
        if id.0 >= self.next_send || self.sent.len() >= MAX_SENT_MESSAGES {
            return Err(DecodeError::InvalidValue);
        }
        self.sent.insert(id, sent);
        Ok(())
    }
}

fn references(kind: &SentKind) -> impl Iterator<Item = &MessageRef> {
    let (recipients, group): (&[Recipient], _) = match kind {
        SentKind::Direct { recipients, .. } | SentKind::CallKey { recipients, .. } => {
            (recipients, None)
        }
        SentKind::Group { reference, .. } => (&[], Some(reference)),
    };
    recipients.iter().map(|r| &r.reference).chain(group)
}

// Tags 1 to 3 and 8 are entries of earlier releases, whose digests are SHA-256: they load and
// keep their digest (tag 1 is written as tag 3). An entry sent now has a keyed digest.
/// A 1:1 message as journaled before messages carried a nonce: read, never written.
const DIRECT_WITHOUT_NONCE: u8 = 1;
/// Group entries as journaled before each requester's answers had a record of their own: the
/// answers inline. Read, and written as [`GROUP_SHA256`] and [`GROUP`].
const GROUP_INLINE_SHA256: u8 = 2;
const GROUP_INLINE: u8 = 5;
const DIRECT_SHA256: u8 = 3;
const CALL_KEY: u8 = 4;
const DIRECT: u8 = 6;
const GROUP: u8 = 7;
const GROUP_SHA256: u8 = 8;

fn write_recipients(out: &mut impl Writer, recipients: &[Recipient]) {
    out.u32(recipients.len() as u32);
    for r in recipients {
        r.device.write(out);
        out.put(r.identity.as_bytes());
        out.put(&r.reference);
        write_ids(out, &r.answered);
    }
}

fn read_recipients(r: &mut Reader<'_>) -> Result<Vec<Recipient>, DecodeError> {
    let n = bounded_count(r, MAX_RECIPIENTS)?;
    let mut recipients = Vec::with_capacity(r.capacity(n, 85));
    for _ in 0..n {
        recipients.push(Recipient {
            device: DeviceAddress::read_trusted(r)?,
            identity: IdentityKey::from_trusted(r.array()?),
            reference: r.array()?,
            answered: read_ids(r)?,
        });
    }
    Ok(recipients)
}

/// The nonce a 1:1 message journaled without one is given when it loads: its first
/// recipient's reference (all zero without recipients, when no retry can name it). It is
/// random, used once and stable across loads, so every resend of that message carries the
/// same nonce and reports the same id.
fn nonce_of_legacy(recipients: &[Recipient]) -> MessageNonce {
    recipients.first().map_or([0; 16], |r| r.reference)
}

impl Sent {
    pub(crate) fn write(&self, out: &mut impl Writer) {
        out.u64(self.sent_at.0);
        out.put(&self.body_digest.bytes());
        match &self.kind {
            SentKind::Direct {
                conversation,
                nonce,
                recipients,
            } => {
                out.u8(match self.body_digest {
                    BodyDigest::Sha256(_) => DIRECT_SHA256,
                    _ => DIRECT,
                });
                out.put(conversation.as_bytes());
                out.put(nonce);
                write_recipients(out, recipients);
            }
            SentKind::Group {
                group,
                key_id,
                iteration,
                reference,
                answered: _,
            } => {
                out.u8(match self.body_digest {
                    BodyDigest::Sha256(_) => GROUP_SHA256,
                    _ => GROUP,
                });
                out.put(&group.0);
                out.u32(key_id.0);
                out.u32(*iteration);
                out.put(reference);
            }
            SentKind::CallKey {
                call,
                epoch,
                recipients,
            } => {
                out.u8(CALL_KEY);
                out.put(&call.0);
                out.u32(*epoch);
                write_recipients(out, recipients);
            }
        }
    }

    /// Reads a record, saying whether it was in an older form (a 1:1 record without its nonce,
    /// tag 1; a group record with its answers inline, tags 2 and 5), which a load rewrites so
    /// that one state has one encoding.
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<(Self, bool), DecodeError> {
        let sent_at = Timestamp(r.u64()?);
        let digest = r.array()?;
        let tag = r.u8()?;
        let kind = match tag {
            DIRECT_WITHOUT_NONCE => {
                let conversation = AccountKey::from_trusted(r.array()?);
                let recipients = read_recipients(r)?;
                SentKind::Direct {
                    conversation,
                    nonce: nonce_of_legacy(&recipients),
                    recipients,
                }
            }
            DIRECT | DIRECT_SHA256 => SentKind::Direct {
                conversation: AccountKey::from_trusted(r.array()?),
                nonce: r.array()?,
                recipients: read_recipients(r)?,
            },
            GROUP | GROUP_SHA256 | GROUP_INLINE | GROUP_INLINE_SHA256 => {
                let group = GroupId(r.array()?);
                let key_id = SenderKeyId(r.u32()?);
                let iteration = r.u32()?;
                let reference = r.array()?;
                let mut answered = BTreeMap::new();
                if matches!(tag, GROUP_INLINE | GROUP_INLINE_SHA256) {
                    for _ in 0..bounded_count(r, MAX_GROUP_REQUESTERS)? {
                        let device = DeviceAddress::read_trusted(r)?;
                        // Each device once, as the answers wrote it.
                        if answered.insert(device, read_answers(r)?).is_some() {
                            return Err(DecodeError::InvalidValue);
                        }
                    }
                }
                SentKind::Group {
                    group,
                    key_id,
                    iteration,
                    reference,
                    answered,
                }
            }
            // A call key keeps no body: its digest is zero, in one form only.
            CALL_KEY if digest == [0; 16] => SentKind::CallKey {
                call: CallId(r.array()?),
                epoch: r.u32()?,
                recipients: read_recipients(r)?,
            },
            _ => return Err(DecodeError::InvalidValue),
        };
        let body_digest = match tag {
            DIRECT_WITHOUT_NONCE | DIRECT_SHA256 | GROUP_SHA256 | GROUP_INLINE_SHA256 => {
                BodyDigest::Sha256(digest)
            }
            CALL_KEY => BodyDigest::None,
            _ => BodyDigest::Keyed(digest),
        };
        let sent = Self {
            sent_at,
            body_digest,
            kind,
        };
        let older_form = matches!(
            tag,
            DIRECT_WITHOUT_NONCE | GROUP_INLINE | GROUP_INLINE_SHA256
        );
        Ok((sent, older_form))
    }

    /// The devices whose retry requests for this message were answered: each has an answers
    /// record of its own (`Key::Answered`, written by [`write_ids`]).
    pub(crate) fn answered_devices(&self) -> impl Iterator<Item = &DeviceAddress> {
        let answered = match &self.kind {
            SentKind::Group { answered, .. } => Some(answered.keys()),
            _ => None,
        };
        answered.into_iter().flatten()
    }
}

/// Reads one requester's answered retry requests: at least one (a device without an answer
/// has no record) and at most [`MAX_RETRY_ATTEMPTS`].
pub(crate) fn read_answers(r: &mut Reader<'_>) -> Result<Vec<EnvelopeId>, DecodeError> {
    let ids = read_ids(r)?;
    match ids.is_empty() {
        true => Err(DecodeError::InvalidValue),
        false => Ok(ids),
    }
}

/// Retry request ids answered: a 1:1 recipient's, or a group requester's own record.
pub(crate) fn write_ids(out: &mut impl Writer, ids: &[EnvelopeId]) {
    out.u8(ids.len() as u8);
    for id in ids {
        out.put(&id.0);
    }
}

/// The request ids answered, each once: a request is answered once (review 49: a list naming
/// one twice loaded, a state no answer makes).
fn read_ids(r: &mut Reader<'_>) -> Result<Vec<EnvelopeId>, DecodeError> {
    let n = r.u8()?;
    if n > MAX_RETRY_ATTEMPTS {
        return Err(DecodeError::InvalidValue);
    }
    let mut ids: Vec<EnvelopeId> = Vec::with_capacity(usize::from(n));
    for _ in 0..n {
        let id = EnvelopeId(r.array()?);
        if ids.contains(&id) {
            return Err(DecodeError::InvalidValue);
        }
        ids.push(id);
    }
    Ok(ids)
}

impl Pending {
    pub(crate) fn write(&self, out: &mut impl Writer) {
        out.optional(self.group, |out, g| out.put(&g.0));
        out.put(&self.failed.0);
        out.u8(self.attempts);
        out.u64(self.requested_at.0);
        out.flag(self.done);
        for m in &self.minted {
            out.optional(m.one_time, |out, id| out.u32(id.0));
            out.optional(m.kem, |out, id| out.u32(id.0));
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let group = r.optional(|r| r.array().map(GroupId))?;
        let failed = EnvelopeId(r.array()?);
        let attempts = r.u8()?;
        if attempts == 0 || attempts > MAX_RETRY_ATTEMPTS {
            return Err(DecodeError::InvalidValue);
        }
        let requested_at = Timestamp(r.u64()?);
        let done = r.flag()?;
        let mut minted = Vec::with_capacity(usize::from(attempts));
        for _ in 0..attempts {
            minted.push(Minted {
                one_time: r.optional(|r| r.u32().map(OneTimePreKeyId))?,
                kem: r.optional(|r| r.u32().map(KemPreKeyId))?,
            });
        }
        Ok(Self {
            group,
            failed,
            attempts,
            requested_at,
            minted,
            done,
        })
    }
}

/// When the first of `waiting` retries stops waiting.
fn first_free<'a>(waiting: impl Iterator<Item = &'a Pending>) -> Timestamp {
    waiting
        .map(Pending::waits_until)
        .min()
        .unwrap_or(Timestamp(u64::MAX))
}

/// The account holding the most of the entries `held` names (one account per entry), `also`
/// counted once more if it holds any; the lowest account among equals. What room is made at
/// the expense of: an account the relay controls pays for its own entries, however many devices
/// it links or messages it has broken.
fn holding_the_most(
    held: impl Iterator<Item = AccountKey>,
    also: Option<AccountKey>,
) -> Option<AccountKey> {
    let mut counts: BTreeMap<AccountKey, usize> = BTreeMap::new();
    for account in held {
        *counts.entry(account).or_default() += 1;
    }
    if let Some(n) = also.and_then(|a| counts.get_mut(&a)) {
        *n += 1;
    }
    counts
        .into_iter()
        .max_by_key(|(a, n)| (*n, core::cmp::Reverse(*a)))
        .map(|(a, _)| a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: u32) -> EnvelopeId {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&i.to_be_bytes());
        EnvelopeId(b)
    }

    fn reference(i: u32) -> MessageRef {
        id(i).0
    }

    fn group_sent(at: u64, r: u32) -> Sent {
        Sent {
            sent_at: Timestamp(at),
            body_digest: BodyDigest::Keyed([0; 16]),
            kind: SentKind::Group {
                group: GroupId([1; 32]),
                key_id: SenderKeyId(1),
                iteration: 0,
                reference: reference(r),
                answered: BTreeMap::new(),
            },
        }
    }

    fn recipient(i: u32) -> Recipient {
        Recipient {
            device: DeviceAddress {
                account: AccountKey::from_trusted([3; 32]),
                device: crate::devices::DeviceId(i),
            },
            identity: IdentityKey::from_trusted([4; 32]),
            reference: reference(100 + i),
            answered: alloc::vec![id(7)],
        }
    }

    fn round_trip(sent: &Sent) -> Result<Sent, DecodeError> {
        let mut bytes = Vec::new();
        sent.write(&mut bytes);
        let mut r = Reader::new(&bytes);
        let (back, older_form) = Sent::read(&mut r)?;
        r.finish()?;
        assert!(!older_form, "written in the current form");
        Ok(back)
    }

    fn direct_sent() -> Sent {
        Sent {
            sent_at: Timestamp(5),
            body_digest: BodyDigest::Keyed([9; 16]),
            kind: SentKind::Direct {
                conversation: AccountKey::from_trusted([2; 32]),
                nonce: [6; 16],
                recipients: alloc::vec![recipient(1), recipient(2)],
            },
        }
    }

    #[test]
    fn sent_records_of_every_kind_round_trip() {
        let direct = direct_sent();
        let call = Sent {
            sent_at: Timestamp(5),
            body_digest: BodyDigest::None,
            kind: SentKind::CallKey {
                call: CallId([8; 16]),
                epoch: 3,
                recipients: alloc::vec![recipient(1)],
            },
        };
        for sent in [direct, call, group_sent(1, 2)] {
            assert_eq!(round_trip(&sent), Ok(sent.clone()));
        }
    }

    /// A call key journals no body: its digest is zero, in one form only.
    #[test]
    fn a_call_key_record_has_a_zero_digest() {
        let call = Sent {
            sent_at: Timestamp(5),
            body_digest: BodyDigest::None,
            kind: SentKind::CallKey {
                call: CallId([8; 16]),
                epoch: 3,
                recipients: Vec::new(),
            },
        };
        let mut bytes = Vec::new();
        call.write(&mut bytes);
        bytes[8] = 1;
        assert_eq!(
            Sent::read(&mut Reader::new(&bytes)).map(|(sent, _)| sent),
            Err(DecodeError::InvalidValue)
        );
    }

    /// A 1:1 record written before messages carried a nonce (tag 1) loads with its first
    /// recipient's reference as its nonce, stable across loads, and is written back in the
    /// form with a nonce and its SHA-256 digest (tag 3) with it.
    #[test]
    fn a_direct_record_without_a_nonce_loads_with_its_first_reference() {
        let legacy = |recipients: &[Recipient]| {
            let mut bytes = Vec::new();
            bytes.u64(5);
            bytes.put(&[9; 16]);
            bytes.u8(DIRECT_WITHOUT_NONCE);
            bytes.put(&[2; 32]);
            write_recipients(&mut bytes, recipients);
            let (sent, older_form) = Sent::read(&mut Reader::new(&bytes)).unwrap();
            assert!(older_form, "a tag-1 record is reported for rewriting");
            sent
        };
        let loaded = legacy(&[recipient(1), recipient(2)]);
        let SentKind::Direct { nonce, .. } = &loaded.kind else {
            panic!("a direct message")
        };
        assert_eq!(*nonce, recipient(1).reference);
        assert_eq!(round_trip(&loaded), Ok(loaded.clone()));
        let mut bytes = Vec::new();
        loaded.write(&mut bytes);
        assert_eq!(bytes[24], DIRECT_SHA256);
        assert_eq!(loaded.body_digest, BodyDigest::Sha256([9; 16]));
        assert_eq!(
            Sent::read(&mut Reader::new(&bytes)).map(|(_, older)| older),
            Ok(false),
            "the current form is not rewritten"
        );
        let SentKind::Direct { nonce, .. } = legacy(&[]).kind else {
            panic!("a direct message")
        };
        assert_eq!(nonce, [0; 16]);
    }

    /// A group entry of the previous release, its answers inline (tags 5 and 2): the answered
    /// requesters are bounded by every device of the members' and the own account's lists,
    /// 4097 × 256 (PROTOCOL.md 19.3): a count above it is refused before any entry is read,
    /// one at it is read (here it runs out of bytes).
    #[test]
    fn an_inline_group_entrys_answered_count_is_bounded_by_every_member_device() {
        for tag in [GROUP_INLINE, GROUP_INLINE_SHA256] {
            let mut head = Vec::new();
            group_sent(5, 1).write(&mut head);
            head[24] = tag;
            for (count, refusal) in [
                (4097 * 256, DecodeError::Truncated),
                (4097 * 256 + 1, DecodeError::InvalidValue),
            ] {
                let mut bytes = head.clone();
                bytes.u32(count);
                assert_eq!(
                    Sent::read(&mut Reader::new(&bytes)).map(|(sent, _)| sent),
                    Err(refusal),
                    "{count} requesters"
                );
            }
        }
    }

    /// A group entry of the previous release loads with its inline answers, is reported for
    /// rewriting, and is written without them under the tag of its digest's form (its answers
    /// go to records of their own). Each requester once, each with an answer, as the previous
    /// release wrote them: anything else is refused.
    #[test]
    fn an_inline_group_entry_loads_with_its_answers_and_is_rewritten_apart() {
        let inline = |tag: u8, answers: &[(u32, &[u32])]| {
            let mut bytes = Vec::new();
            group_sent(5, 1).write(&mut bytes);
            bytes[24] = tag;
            bytes.u32(answers.len() as u32);
            for (device, ids) in answers {
                sender(3, *device).write(&mut bytes);
                write_ids(&mut bytes, &ids.iter().map(|i| id(*i)).collect::<Vec<_>>());
            }
            Sent::read(&mut Reader::new(&bytes))
        };
        for (tag, apart) in [(GROUP_INLINE, GROUP), (GROUP_INLINE_SHA256, GROUP_SHA256)] {
            let (sent, older_form) = inline(tag, &[(2, &[7, 8]), (1, &[9])]).unwrap();
            assert!(older_form, "tag {tag} is rewritten");
            let SentKind::Group { answered, .. } = &sent.kind else {
                panic!("a group message")
            };
            let expected: BTreeMap<_, _> = [
                (sender(3, 1), alloc::vec![id(9)]),
                (sender(3, 2), alloc::vec![id(7), id(8)]),
            ]
            .into();
            assert_eq!(*answered, expected);
            assert_eq!(
                sent.answered_devices().collect::<Vec<_>>(),
                [&sender(3, 1), &sender(3, 2)]
            );
            let mut bytes = Vec::new();
            sent.write(&mut bytes);
            assert_eq!(bytes[24], apart);
            let mut alone = group_sent(5, 1);
            alone.body_digest = sent.body_digest;
            assert_eq!(round_trip(&sent), Ok(alone), "answers are not inline");
            for refused in [&[(2, &[7][..]), (2, &[8][..])][..], &[(2, &[][..])]] {
                assert_eq!(
                    inline(tag, refused).map(|(s, _)| s),
                    Err(DecodeError::InvalidValue)
                );
            }
        }
    }

    /// One requester's answers, in a record of their own: one to three ids, each once.
    #[test]
    fn an_answers_record_holds_one_to_three_distinct_ids() {
        for n in 0..=4u8 {
            let ids: Vec<_> = (0..u32::from(n)).map(id).collect();
            let mut bytes = Vec::new();
            write_ids(&mut bytes, &ids);
            let expected = match n {
                1..=3 => Ok(ids),
                _ => Err(DecodeError::InvalidValue),
            };
            assert_eq!(read_answers(&mut Reader::new(&bytes)), expected, "{n} ids");
        }
        for twice in [[id(1), id(1), id(2)], [id(1), id(2), id(1)]] {
            let mut bytes = Vec::new();
            write_ids(&mut bytes, &twice);
            assert_eq!(
                read_answers(&mut Reader::new(&bytes)),
                Err(DecodeError::InvalidValue)
            );
            assert_eq!(
                read_ids(&mut Reader::new(&bytes)),
                Err(DecodeError::InvalidValue),
                "a 1:1 recipient's answers too"
            );
        }
    }

    /// An entry of an earlier release keeps its SHA-256 digest and the tag that says so; an
    /// entry sent now is written with the keyed tags. Each tag reads back as the form it names.
    #[test]
    fn each_tag_names_its_digest_form() {
        let (direct, group) = (direct_sent(), group_sent(5, 1));
        for (sent, keyed, sha) in [
            (direct, DIRECT, DIRECT_SHA256),
            (group, GROUP, GROUP_SHA256),
        ] {
            let digest = sent.body_digest.bytes();
            for (body_digest, tag) in [
                (BodyDigest::Keyed(digest), keyed),
                (BodyDigest::Sha256(digest), sha),
            ] {
                let sent = Sent {
                    body_digest,
                    ..sent.clone()
                };
                let mut bytes = Vec::new();
                sent.write(&mut bytes);
                assert_eq!(bytes[24], tag);
                assert_eq!(
                    Sent::read(&mut Reader::new(&bytes)),
                    Ok((sent, false)),
                    "tag {tag} reads back as written, not rewritten"
                );
            }
        }
    }

    #[test]
    fn the_read_ring_restores_only_slots_it_could_have_written() {
        let cap = MAX_REMEMBERED_MESSAGE_IDS as u32;
        let restore = |slots: &[u32], next: u32| {
            let slots = slots.iter().map(|s| (*s, id(*s))).collect();
            Journal::default().restore_seen(slots, next)
        };
        let full: Vec<u32> = (0..cap).collect();
        assert!(restore(&[0, 1, 2], 3).is_ok());
        assert!(restore(&full, 7).is_ok());
        for (slots, next) in [
            (&full[..], cap),      // next slot out of range
            (&[0, 1, cap][..], 3), // a slot out of range
            (&[0, 1, 2][..], 5),   // a partial ring's next slot is its length
            (&[0, 1, 5][..], 3),   // a partial ring fills from slot 0
        ] {
            assert_eq!(restore(slots, next), Err(DecodeError::InvalidValue));
        }
    }

    #[test]
    fn the_sent_journal_forgets_by_age_and_count_with_the_references() {
        let window = 1000;
        let mut j = Journal::default();
        let (first, dropped) = j.sent(Timestamp(0), window, group_sent(0, 0));
        assert!(dropped.is_empty());
        // At exactly the window's age a send is kept; a millisecond later it is forgotten.
        let (_, dropped) = j.sent(Timestamp(window), window, group_sent(window, 1));
        assert!(dropped.is_empty());
        let (_, dropped) = j.sent(Timestamp(window + 1), window, group_sent(window + 1, 2));
        assert_eq!(dropped, [(first, group_sent(0, 0))]);
        assert!(!j.sent.contains_key(&first));
        assert_eq!(j.send_of(&reference(0)), None);
        assert_eq!(j.send_of(&reference(1)), Some(SendId(1)));
        // By count: none expired, the oldest goes once there are more than the bound.
        let mut j = Journal::default();
        for i in 0..MAX_SENT_MESSAGES as u32 {
            assert!(j.sent(Timestamp(0), window, group_sent(0, i)).1.is_empty());
        }
        let (_, dropped) = j.sent(Timestamp(0), window, group_sent(0, u32::MAX));
        assert_eq!(dropped, [(SendId(0), group_sent(0, 0))]);
        assert_eq!(j.sent.len(), MAX_SENT_MESSAGES);
        assert_eq!(j.send_of(&reference(0)), None);
        assert_eq!(j.send_of(&reference(1)), Some(SendId(1)));
    }

    /// Device `i` of the account whose key is 32 bytes of `account`.
    fn sender(account: u8, i: u32) -> DeviceAddress {
        DeviceAddress {
            account: AccountKey::from_trusted([account; 32]),
            device: crate::devices::DeviceId(i),
        }
    }

    /// A pending retry asked once at `at`.
    fn asked_at(at: u64) -> Pending {
        Pending {
            group: None,
            failed: id(0),
            attempts: 1,
            requested_at: Timestamp(at),
            minted: alloc::vec![Minted::default()],
            done: false,
        }
    }

    /// A time past the hold of every retry `asked_at` from 1000 on below.
    const LATER: Timestamp = Timestamp(1_000_000 + PENDING_RETRY_HOLD_MS);

    /// Fills the table with retries of `accounts` (in turn, one each) asked at 1000, 1001, ...
    fn full(accounts: u8) -> Journal {
        let mut j = Journal::default();
        for i in 0..MAX_PENDING_RETRIES as u32 {
            let key = (sender(1 + (i % u32::from(accounts)) as u8, i), reference(i));
            j.pending.insert(key, asked_at(1000 + u64::from(i)));
        }
        j
    }

    fn dropped(j: &mut Journal, key: PendingKey, now: Timestamp) -> Option<PendingKey> {
        j.make_room(&key, now).unwrap().map(|(k, _)| k)
    }

    /// A retry waiting for its answer (not done, asked within the hold) is not dropped for
    /// room (review 45: forged envelopes under its sender's address would push it out) but to
    /// even out the accounts' shares: the oldest of the account holding the most waiting goes
    /// for an account holding at least two fewer (review 53), else the ask is deferred to when
    /// the first of them stops waiting, with nothing changed. A retry done or past its hold
    /// goes before any waiting one.
    #[test]
    fn a_waiting_retry_is_dropped_only_to_even_out_the_accounts_shares() {
        let j = full(4);
        let first_free = Timestamp(1000 + PENDING_RETRY_HOLD_MS);
        // An account at its share is deferred by it (its own first frees at 1003 + hold).
        let own = (sender(4, 999), reference(999));
        let own_free = Timestamp(1003 + PENDING_RETRY_HOLD_MS);
        assert_eq!(
            j.clone().make_room(&own, Timestamp(1000)).map(|_| ()),
            Err(own_free)
        );
        // One held is asked again: no room is needed.
        let held = (sender(2, 1), reference(1));
        assert_eq!(j.clone().make_room(&held, Timestamp(1000)), Ok(None));
        // An account holding none: the oldest of the lowest account holding the most.
        let new = (sender(9, 0), reference(999));
        assert_eq!(
            dropped(&mut j.clone(), new, Timestamp(1000)),
            Some((sender(1, 0), reference(0)))
        );
        // Holding one fewer than the most: nothing is fairer, deferred with nothing changed.
        let mut uneven = j.clone();
        uneven.pending.remove(&(sender(4, 255), reference(255)));
        uneven
            .pending
            .insert((sender(9, 0), reference(1000)), asked_at(5000));
        let one_fewer = (sender(4, 999), reference(999));
        for now in [Timestamp(1000), Timestamp(first_free.0 - 1), Timestamp(0)] {
            let before = uneven.pending.clone();
            assert_eq!(
                uneven.make_room(&one_fewer, now).map(|_| ()),
                Err(first_free)
            );
            assert_eq!(uneven.pending, before);
        }
        // Two fewer: the oldest of account 1 goes.
        let two_fewer = (sender(9, 7), reference(1001));
        assert_eq!(
            dropped(&mut uneven.clone(), two_fewer, Timestamp(1000)),
            Some((sender(1, 0), reference(0)))
        );
        // The oldest stops waiting at its hold's end: it goes, for any account.
        assert_eq!(
            dropped(&mut uneven.clone(), one_fewer, first_free),
            Some((sender(1, 0), reference(0)))
        );
        // A done one goes before any waiting one, however recent.
        let done = (sender(3, 202), reference(202));
        uneven.pending.get_mut(&done).unwrap().done = true;
        let (k, p) = uneven
            .make_room(&one_fewer, Timestamp(1000))
            .unwrap()
            .unwrap();
        assert_eq!((k, p.done), (done, true));
        assert_eq!(uneven.pending.len(), MAX_PENDING_RETRIES - 1);
    }

    /// Waiting counts a clock set back (a retry asked "later" than now still waits) but not
    /// one run ahead by more than a hold when the retry was asked (review 53: it would hold
    /// its account's share for as long).
    #[test]
    fn a_retry_asked_at_a_clock_run_ahead_stops_waiting_a_hold_back() {
        let now = Timestamp(10 * PENDING_RETRY_HOLD_MS);
        let at = asked_at;
        assert!(at(now.0).waiting(now));
        assert!(at(now.0 + PENDING_RETRY_HOLD_MS - 1).waiting(now));
        assert!(!at(now.0 + PENDING_RETRY_HOLD_MS).waiting(now));
        assert!(at(now.0 - PENDING_RETRY_HOLD_MS + 1).waiting(now));
        assert!(!at(now.0 - PENDING_RETRY_HOLD_MS).waiting(now));
        // Near the clock's end the hold saturates: waiting until then.
        let end = u64::MAX - PENDING_RETRY_HOLD_MS / 2;
        assert!(at(end).waiting(Timestamp(u64::MAX - 1)));
        assert!(!at(end).waiting(Timestamp(u64::MAX)));
        let done = Pending {
            done: true,
            ..at(now.0)
        };
        assert!(!done.waiting(now));
    }

    /// One sender account holds at most [`MAX_WAITING_RETRIES_PER_ACCOUNT`] waiting retries,
    /// however much room there is: a contact (or forgeries under its addresses) cannot take
    /// every place. Its done retries and those past the hold do not count.
    #[test]
    fn one_account_holds_at_most_its_share_of_waiting_retries() {
        let mut j = Journal::default();
        for i in 0..MAX_WAITING_RETRIES_PER_ACCOUNT as u32 {
            // Across its devices: counted by account.
            let key = (sender(1, i % 3), reference(i));
            assert_eq!(j.make_room(&key, Timestamp(5000)), Ok(None));
            j.pending.insert(key, asked_at(5000 - u64::from(i)));
        }
        let now = Timestamp(5000);
        let last = 5000 - (MAX_WAITING_RETRIES_PER_ACCOUNT as u64 - 1);
        let first_free = Timestamp(last + PENDING_RETRY_HOLD_MS);
        let more = (sender(1, 7), reference(999));
        assert_eq!(j.make_room(&more, now), Err(first_free));
        // Others' asks, and this account's asks again, go on.
        assert_eq!(j.make_room(&(sender(2, 0), reference(999)), now), Ok(None));
        assert_eq!(j.make_room(&(sender(1, 0), reference(0)), now), Ok(None));
        // Once one is past its hold, or done, there is a place again.
        assert_eq!(j.make_room(&more, first_free), Ok(None));
        j.pending
            .get_mut(&(sender(1, 0), reference(0)))
            .unwrap()
            .done = true;
        assert_eq!(j.make_room(&more, now), Ok(None));
    }

    /// Among the retries that may go (done or past their hold), room is made at the expense
    /// of the sender account holding the most of them (the new one counted for its account if
    /// that account holds any): its done ones first, then the one asked longest ago (the
    /// lowest key among equal times). One account's flood, once past its hold, pushes out its
    /// own.
    #[test]
    fn pending_retries_make_room_at_the_expense_of_the_account_holding_the_most() {
        let (address, pending) = (sender, asked_at);
        let fill = |a: u32| {
            let mut j = Journal::default();
            // Account 1's `a` retries were asked first; account 2's after.
            for i in 0..MAX_PENDING_RETRIES as u32 {
                let key = match i < a {
                    true => (address(1, i), reference(i)),
                    false => (address(2, i), reference(i)),
                };
                j.pending.insert(key, pending(1000 + u64::from(i)));
            }
            j
        };
        let dropped = |j: &mut Journal, key: PendingKey| dropped(j, key, LATER);
        // Account 1 holds one, asked longest ago; account 2 the rest: 2's oldest goes, for a
        // third account's retry and for another of account 1's alike.
        for new in [address(3, 0), address(1, 99)] {
            let mut j = fill(1);
            assert_eq!(
                dropped(&mut j, (new, reference(999))),
                Some((address(2, 1), reference(1)))
            );
            assert!(j.pending.contains_key(&(address(1, 0), reference(0))));
        }
        // Equal shares: the new retry's account is the one holding the most.
        let half = MAX_PENDING_RETRIES as u32 / 2;
        let mut j = fill(half);
        assert_eq!(
            dropped(&mut j, (address(2, 999), reference(999))),
            Some((address(2, half), reference(half)))
        );
        let mut j = fill(half);
        assert_eq!(
            dropped(&mut j, (address(1, 999), reference(999))),
            Some((address(1, 0), reference(0)))
        );
        // Of an account that holds none, it does not count: the lowest account among equals.
        let mut j = fill(half);
        assert_eq!(
            dropped(&mut j, (address(0, 0), reference(999))),
            Some((address(1, 0), reference(0)))
        );
        assert_eq!(j.pending.len(), MAX_PENDING_RETRIES - 1);
        // Among equal times, the lowest key.
        let mut j = fill(1);
        j.pending
            .insert((address(2, 0), reference(1)), pending(1001));
        j.pending.remove(&(address(2, 255), reference(255)));
        assert_eq!(
            dropped(&mut j, (address(3, 0), reference(999))),
            Some((address(2, 0), reference(1)))
        );
        // The account first, then its done ones (review 53: another account's done retry,
        // whose keys its answer session names, is not pushed out by a flood).
        let mut j = fill(1);
        j.pending
            .get_mut(&(address(1, 0), reference(0)))
            .unwrap()
            .done = true;
        assert_eq!(
            dropped(&mut j.clone(), (address(3, 0), reference(999))),
            Some((address(2, 1), reference(1)))
        );
        j.pending
            .get_mut(&(address(2, 100), reference(100)))
            .unwrap()
            .done = true;
        assert_eq!(
            dropped(&mut j, (address(3, 0), reference(999))),
            Some((address(2, 100), reference(100)))
        );
    }

    /// Two loaded entries naming one reference are refused: a sender draws every salt afresh,
    /// so they are not state this crate wrote.
    #[test]
    fn loaded_entries_name_each_reference_once() {
        let mut j = Journal {
            next_send: 3,
            ..Journal::default()
        };
        j.insert_sent(SendId(0), group_sent(0, 0)).unwrap();
        j.insert_sent(SendId(1), group_sent(0, 1)).unwrap();
        assert_eq!(j.check_references(), Ok(()));
        j.insert_sent(SendId(2), group_sent(0, 1)).unwrap();
        assert_eq!(j.check_references(), Err(DecodeError::InvalidValue));
    }

    #[test]
    fn sent_records_load_below_the_next_send_id_and_within_the_bound() {
        let mut j = Journal {
            next_send: MAX_SENT_MESSAGES as u64 + 2,
            ..Journal::default()
        };
        assert_eq!(
            j.insert_sent(SendId(j.next_send), group_sent(0, 0)),
            Err(DecodeError::InvalidValue)
        );
        for i in 0..MAX_SENT_MESSAGES as u32 {
            j.insert_sent(SendId(i.into()), group_sent(0, i)).unwrap();
        }
        let one_more = SendId(MAX_SENT_MESSAGES as u64);
        assert_eq!(
            j.insert_sent(one_more, group_sent(0, u32::MAX)),
            Err(DecodeError::InvalidValue)
        );
    }

    #[test]
    fn pending_records_carry_one_to_max_attempts() {
        let read = |attempts: u8| {
            let p = Pending {
                group: None,
                failed: id(0),
                attempts,
                requested_at: Timestamp(1),
                minted: alloc::vec![Minted::default(); usize::from(attempts)],
                done: false,
            };
            let mut bytes = Vec::new();
            p.write(&mut bytes);
            let mut r = Reader::new(&bytes);
            Pending::read(&mut r).map(|p| p.attempts)
        };
        for ok in 1..=MAX_RETRY_ATTEMPTS {
            assert_eq!(read(ok), Ok(ok));
        }
        for bad in [0, MAX_RETRY_ATTEMPTS + 1] {
            assert_eq!(read(bad), Err(DecodeError::InvalidValue));
        }
    }

    #[test]
    fn read_ring_forgets_the_oldest_and_restores_from_its_slots() {
        let mut j = Journal::default();
        let total = MAX_REMEMBERED_MESSAGE_IDS as u32 + 5;
        let mut slots = BTreeMap::new();
        for i in 0..total {
            let slot = j.read(id(i));
            slots.insert(slot, id(i));
            assert_eq!(j.seen_slot(slot), Some(id(i)));
        }
        assert!(!j.seen.contains(&id(4)));
        assert!(j.seen.contains(&id(5)));
        assert_eq!(j.seen.len(), MAX_REMEMBERED_MESSAGE_IDS);
        let mut back = Journal::default();
        back.restore_seen(slots, j.seen_next).unwrap();
        assert_eq!(back.seen_slots, j.seen_slots);
        assert_eq!(back.seen, j.seen);
        // A partly filled ring restores too; a gap in it does not.
        let mut small = Journal::default();
        let mut slots = BTreeMap::new();
        for i in 0..3 {
            slots.insert(small.read(id(i)), id(i));
        }
        let mut back = Journal::default();
        back.restore_seen(slots.clone(), 3).unwrap();
        assert_eq!(back.seen_slots, small.seen_slots);
        slots.remove(&1);
        assert!(Journal::default().restore_seen(slots, 3).is_err());
    }

    #[test]
    fn replaced_ids_make_room_at_the_expense_of_the_sender_holding_the_most() {
        let sender = |i: u8| DeviceAddress {
            account: AccountKey::from_trusted([i; 32]),
            device: crate::devices::DeviceId(1),
        };
        let (alice, rogue) = (sender(1), sender(2));
        let mut j = Journal::default();
        // Alice's message replaced first, long ago; then the rogue sender floods.
        assert_eq!(j.replace(id(0), alice, Timestamp(1)), None);
        for i in 1..MAX_REPLACED_MESSAGE_IDS as u32 {
            assert_eq!(
                j.replace(id(i), rogue, Timestamp(1000 + u64::from(i))),
                None
            );
        }
        // The flood's next one pushes out the flood's oldest, not Alice's older entry.
        let next = id(MAX_REPLACED_MESSAGE_IDS as u32);
        assert_eq!(j.replace(next, rogue, Timestamp(5000)), Some(id(1)));
        assert!(j.has_read(&id(0)) && j.has_read(&next) && !j.has_read(&id(1)));
        // Added with a clock that went back, it is still kept: another of that sender goes.
        let early = id(u32::MAX);
        assert_eq!(j.replace(early, rogue, Timestamp(0)), Some(id(2)));
        assert!(j.has_read(&early));
        assert_eq!(j.replaced.len(), MAX_REPLACED_MESSAGE_IDS);
        // Between two senders holding as many, the lower address gives way.
        let mut j = Journal::default();
        let half = MAX_REPLACED_MESSAGE_IDS as u32 / 2;
        for i in 0..half {
            j.replace(id(i), rogue, Timestamp(10));
            j.replace(id(half + i), alice, Timestamp(20));
        }
        let third = sender(3);
        assert_eq!(
            j.replace(id(u32::MAX), third, Timestamp(30)),
            Some(id(half))
        );
    }

    /// Review 44: the new id counts for its own account, but only where that account holds
    /// others to drop. Counted where it holds none, a new account's id tied every account
    /// holding one entry, won by the lower key, and left nothing to drop: 2001 ids, which the
    /// device's own records then refused.
    #[test]
    fn a_new_id_counts_for_its_account_only_where_it_holds_others() {
        let sender = |i: u8| DeviceAddress {
            account: AccountKey::from_trusted([i; 32]),
            device: crate::devices::DeviceId(1),
        };
        let half = MAX_REPLACED_MESSAGE_IDS as u32 / 2;
        // As many for each of two accounts: the new one tips its own account over.
        let mut j = Journal::default();
        for i in 0..half {
            j.replace(id(i), sender(1), Timestamp(10));
            j.replace(id(half + i), sender(2), Timestamp(20));
        }
        let new = id(u32::MAX);
        assert_eq!(j.replace(new, sender(2), Timestamp(30)), Some(id(half)));
        // One each for as many accounts as the bound, the lowest account's arriving last.
        let mut j = Journal::default();
        for i in 1..=MAX_REPLACED_MESSAGE_IDS as u32 {
            let account = AccountKey::from_trusted(
                [i.to_be_bytes().as_slice(), &[0xff; 28]]
                    .concat()
                    .try_into()
                    .unwrap(),
            );
            let device = crate::devices::DeviceId(1);
            j.replace(id(i), DeviceAddress { account, device }, Timestamp(40));
        }
        assert_eq!(j.replace(new, sender(0), Timestamp(50)), Some(id(1)));
        assert!(j.has_read(&new));
        assert_eq!(j.replaced.len(), MAX_REPLACED_MESSAGE_IDS);
    }

    /// Review 40: a contact that links device after device, each holding fewer entries than
    /// another sender's one device, still pays for all of them: entries are counted by account.
    #[test]
    fn a_sender_spreading_resends_over_many_devices_pushes_out_only_its_own() {
        let alice = DeviceAddress {
            account: AccountKey::from_trusted([1; 32]),
            device: crate::devices::DeviceId(1),
        };
        let churned = |d: u32| DeviceAddress {
            account: AccountKey::from_trusted([2; 32]),
            device: crate::devices::DeviceId(d),
        };
        let mut j = Journal::default();
        // Alice's phone: 20 entries, the first of them the oldest of all.
        for i in 0..20 {
            j.replace(id(i), alice, Timestamp(u64::from(i)));
        }
        // The contact: 19 entries per device id, over as many ids as fill the set.
        let mut n = 20;
        while (n as usize) < MAX_REPLACED_MESSAGE_IDS {
            j.replace(id(n), churned(n / 19), Timestamp(100 + u64::from(n)));
            n += 1;
        }
        // One more: the contact's oldest goes, never Alice's.
        assert_eq!(
            j.replace(id(n), churned(n / 19), Timestamp(5000)),
            Some(id(20))
        );
        assert!((0..20).all(|i| j.has_read(&id(i))));
    }
}
