//! Device state in records (PROTOCOL.md, "Device records") and as whole-state bytes for
//! backups, which are the same records in one blob. Every record value is encoded here, next
//! to its decoder; the device is rebuilt from records in key order (own state, counters,
//! prekeys, lists, sessions, groups, keys, journals), so each record can be checked against
//! the ones it depends on.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::body_digest::BodyDigestKey;
use super::journal::{
    Journal, MAX_MINTED_PER_KIND, MAX_PENDING_RETRIES, MAX_REMEMBERED_MESSAGE_IDS,
    MAX_REPLACED_MESSAGE_IDS, Pending, Sent, SentKind, read_answers, write_ids,
};
use super::ledger::{Group, read_holder, read_outbound, write_holder, write_outbound};
use super::lists::Followed;
use super::members::Members;
use super::payload::MAX_WITHHELD_GENERATIONS;
use super::records::{
    DEVICE_LIST, Dirty, GROUP_MEMBERS, Key, PENDING_KEM, SESSIONS, StateChanges, read_envelope_id,
};
use super::sessions::SessionSet;
use super::{Device, DeviceConfig};
use crate::devices::{DeviceAddress, ListLimits, ListMark};
use crate::error::DecodeError;
use crate::group::{GroupConfig, GroupId, InboundSenderKey, SenderKeyId};
use crate::persist::{UnitChain, UnitTag};
use crate::primitives::IdentityKeyPair;
use crate::primitives::KemCiphertext;
use crate::ratchet::SessionConfig;
use crate::time::Timestamp;
use crate::wire::{Reader, SecretBuf, Writer, kind};
use crate::x3dh::{PreKeyStore, PreKeyStoreConfig, SignedPreKeyId};

/// The whole-state format this build writes: the records, in key order.
pub(crate) const DEVICE_STATE_VERSION: u8 = 3;
/// Records whole-state bytes may hold at all; bounds decoding.
const MAX_RECORDS: u32 = 1 << 24;

impl Device {
    /// The records changed since the last call, as one unit to write in one transaction.
    /// Empty if nothing changed. After [`new`](Self::new), a restore from backup, or
    /// [`from_bytes`](Self::from_bytes), the unit holds every record and
    /// [`replaces_all`](StateChanges::replaces_all) says to empty the store first. The unit
    /// starts where the previous one taken ended, or where the device was loaded (from records
    /// or from bytes) ([`base_epoch`](StateChanges::base_epoch),
    /// [`base_tag`](StateChanges::base_tag)): a store holding another epoch missed a unit, and
    /// one holding another tag holds another copy's. Only the first unit of a new or restored
    /// device starts from nothing: it replaces whatever the store holds. A unit that holds records draws its [tag](StateChanges::tag) from `rng` (16
    /// bytes), and always holds the meta record, which keeps the tag. Two live copies must not
    /// draw from one repeating stream (a seeded RNG cloned with the device): their tags would
    /// repeat, as would their keys.
    pub fn take_changes(&mut self, rng: &mut impl CryptoRng) -> StateChanges {
        let dirty = core::mem::take(&mut self.dirty);
        let (all, keys) = dirty.into_unit_keys(Key::Meta, || self.all_keys());
        let link = self.chain.next(rng, self.epoch, all, !keys.is_empty());
        let records = keys.iter().map(|k| k.record(self.value_of(k))).collect();
        StateChanges::new(link, self.epoch, records)
    }

    /// Whether changes are waiting for [`take_changes`](Self::take_changes).
    pub fn has_changes(&self) -> bool {
        !self.dirty.is_clean()
    }

    /// Every record key of the current state, in key order.
    fn all_keys(&self) -> Vec<Key> {
        let mut keys = alloc::vec![Key::Own, Key::Meta, Key::PreKeys];
        keys.extend(self.prekeys.one_time_ids().map(|id| Key::OneTime(id.0)));
        keys.extend(
            self.prekeys
                .one_time_kem_ids()
                .map(|id| Key::OneTimeKem(id.0)),
        );
        keys.extend(
            self.prekeys
                .seen_base_keys()
                .map(|(spk, k)| Key::SeenBase(spk.0, *k)),
        );
        keys.extend(self.lists.keys().map(|a| Key::DeviceList(*a)));
        keys.extend(self.sessions.keys().map(|a| Key::Sessions(*a)));
        for (a, set) in &self.sessions {
            keys.extend(set.pending_bases().map(|b| Key::PendingKem(*a, b)));
        }
        for (id, g) in &self.groups {
            keys.push(Key::GroupMembers(*id));
            if g.unconfirmed {
                keys.push(Key::Unconfirmed(*id));
            }
            if g.offered {
                keys.push(Key::Offered(*id));
            }
            if let Some(o) = &g.outbound {
                keys.push(Key::Outbound(*id));
                for l in &o.generations {
                    keys.extend(l.holders.keys().map(|a| Key::Ledger(*id, l.key_id, *a)));
                }
            }
        }
        keys.extend(self.inbound.keys().map(|(a, g)| Key::Inbound(*a, *g)));
        keys.extend(self.withheld.keys().map(|(a, g)| Key::Withheld(*a, *g)));
        keys.extend((0..self.journal.seen_slots.len() as u32).map(Key::Seen));
        for (id, sent) in &self.journal.sent {
            keys.push(Key::Sent(*id));
            keys.extend(sent.answered_devices().map(|a| Key::Answered(*id, *a)));
        }
        keys.extend(self.journal.pending.keys().copied().map(Key::Pending));
        keys.extend(self.restored_at.map(|_| Key::Restored));
        keys.extend(self.journal.replaced.keys().map(|id| Key::Replaced(*id)));
        keys.extend(self.forgotten.keys().map(|a| Key::Forgotten(*a)));
        keys.extend(self.newest_offer.map(|_| Key::NewestOffer));
        keys.sort_unstable();
        keys
    }

    /// The current value of a record, or `None` if it no longer exists.
    fn value_of(&self, key: &Key) -> Option<Zeroizing<Vec<u8>>> {
        // Allocated at the first write: a sessions record (written with every message) sizes
        // itself to its exact length, the others start at the buffer's first allocation.
        let mut out = SecretBuf::with_capacity(0);
        match key {
            Key::Own => self.write_own(&mut out),
            Key::Meta => {
                out.u64(self.epoch);
                out.u32(self.journal.seen_next);
                out.u64(self.journal.next_send);
                out.flag(self.groups_by_app);
                out.put(&self.chain.tag().to_bytes());
            }
            Key::PreKeys => self.prekeys.write_core(&mut out),
            Key::OneTime(id) => {
                let id = crate::x3dh::OneTimePreKeyId(*id);
                self.prekeys.one_time_prekey(id)?;
                self.prekeys.write_one_time(&mut out, id);
            }
            Key::OneTimeKem(id) => {
                let id = crate::x3dh::KemPreKeyId(*id);
                self.prekeys.one_time_kem_prekey(id)?;
                self.prekeys.write_one_time_kem(&mut out, id);
            }
            Key::SeenBase(spk, k) => {
                self.prekeys
                    .seen_base_keys()
                    .find(|(s, b)| s.0 == *spk && *b == k)?;
            }
            Key::DeviceList(a) => self.lists.get(a)?.write(&mut out),
            Key::Sessions(a) => self.sessions.get(a)?.write(&mut out),
            Key::PendingKem(a, base) => out.put(self.sessions.get(a)?.pending_of(base)?.as_bytes()),
            Key::GroupMembers(g) => self.groups.get(g)?.members.write(&mut out),
            Key::Outbound(g) => write_outbound(&mut out, self.groups.get(g)?.outbound.as_ref()?),
            Key::Ledger(g, k, a) => {
                let holder = self
                    .groups
                    .get(g)?
                    .outbound
                    .as_ref()?
                    .generation(*k)?
                    .holders
                    .get(a)?;
                write_holder(&mut out, holder);
            }
            Key::Inbound(a, g) => out.put(&self.inbound.get(&(*a, *g))?.to_bytes()),
            Key::Withheld(a, g) => {
                for key_id in self.withheld.get(&(*a, *g))? {
                    out.u32(key_id.0);
                }
            }
            Key::Unconfirmed(g) => {
                self.groups.get(g).filter(|g| g.unconfirmed)?;
            }
            Key::Offered(g) => {
                self.groups.get(g).filter(|g| g.offered)?;
            }
            Key::Seen(slot) => out.put(&self.journal.seen_slot(*slot)?.0),
            Key::Sent(id) => self.journal.sent.get(id)?.write(&mut out),
            Key::Answered(id, a) => match &self.journal.sent.get(id)?.kind {
                SentKind::Group { answered, .. } => write_ids(&mut out, answered.get(a)?),
                _ => return None,
            },
            Key::Pending(k) => self.journal.pending.get(k)?.write(&mut out),
            Key::Restored => out.u64(self.restored_at?.as_millis()),
            Key::NewestOffer => out.u64(self.newest_offer?.as_millis()),
            Key::Replaced(id) => {
                let (sender, at) = self.journal.replaced.get(id)?;
                sender.write(&mut out);
                out.u64(at.as_millis());
            }
            Key::Forgotten(a) => {
                let mark = self.forgotten.get(a)?;
                out.u64(mark.version);
                out.put(&mark.digest);
                out.flag(mark.policy);
            }
        }
        Some(out.into_inner())
    }

    fn write_own(&self, out: &mut SecretBuf) {
        let c = &self.config;
        out.u32(c.session.max_forward_jump);
        out.u32(c.session.max_skipped_keys);
        out.u32(c.group.max_forward_jump);
        out.u32(c.group.max_skipped_keys);
        out.u32(c.group.max_generations);
        out.u32(c.lists.max_companions);
        out.u32(c.prekeys.max_signed_prekeys);
        out.u32(c.prekeys.max_one_time_prekeys);
        out.u32(c.prekeys.max_sessions_per_signed_prekey);
        out.u32(c.prekeys.max_one_time_kem_prekeys);
        out.u32(c.prekeys.max_last_resort_uses);
        out.u64(c.retry_window_ms);
        self.address.write(out);
        out.put(self.identity.seed());
    }

    /// Rebuilds a device from every stored record (`(key, value)` pairs, in any order). The
    /// records are this crate's own: keys and lists are not checked again (no curve work), but
    /// every record must be well formed and consistent with the others.
    pub fn from_records<'a>(
        records: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Result<Self, DecodeError> {
        // Sized up front: collecting `Result`s would grow the vector by doubling.
        let records = records.into_iter();
        let mut sorted: Vec<(Key, &[u8])> = Vec::with_capacity(records.size_hint().0);
        // A store hands its records back in key order, as it wrote them: each key is checked
        // against the one before it as it is read (strictly ascending, so no key twice), and
        // then nothing is sorted.
        let mut ascending = true;
        for (k, v) in records {
            let key = Key::decode(k)?;
            ascending &= sorted.last().is_none_or(|(last, _)| *last < key);
            sorted.push((key, v));
        }
        if !ascending {
            sorted.sort_unstable_by_key(|r| r.0);
            if sorted.windows(2).any(|w| w[0].0 == w[1].0) {
                return Err(DecodeError::InvalidValue);
            }
        }
        Self::from_sorted(&sorted)
    }

    /// Builds the device from records in strictly ascending key order. The maps are built
    /// from sorted runs (kinds are contiguous in key order), not key by key: a load is linear
    /// in the records.
    fn from_sorted(records: &[(Key, &[u8])]) -> Result<Self, DecodeError> {
        // A record every device has, named by its kind when it is missing.
        let value = |k: &Key| {
            records
                .binary_search_by(|(key, _)| key.cmp(k))
                .map(|i| records[i].1)
                .map_err(|_| DecodeError::MissingRecord(k.encode()[0]))
        };
        let (config, address, identity, own_migrated) = read_own(value(&Key::Own)?)?;
        let mut r = Reader::new(value(&Key::Meta)?);
        let epoch = r.u64()?;
        let seen_next = r.u32()?;
        let next_send = r.u64()?;
        // The meta record before the groups flag (20 bytes): rewritten, the flag set if the
        // device holds groups (which only its app could have set then).
        let groups_by_app = if r.rest_len() == 0 {
            None
        } else {
            Some(r.flag()?)
        };
        // Before unit tags (21 bytes, or 20): the tag of a state that predates them, and the
        // record is rewritten.
        let tag = UnitTag::read_ending(&mut r)?;
        r.finish()?;
        let mut r = Reader::new(value(&Key::PreKeys)?);
        let prekeys = PreKeyStore::read_core(&mut r)?;
        r.finish()?;
        let mut device = Self {
            config,
            address,
            body_key: BodyDigestKey::of(&identity),
            identity,
            prekeys,
            lists: BTreeMap::new(),
            forgotten: BTreeMap::new(),
            sessions: BTreeMap::new(),
            groups: BTreeMap::new(),
            inbound: BTreeMap::new(),
            withheld: BTreeMap::new(),
            journal: Journal {
                next_send,
                ..Journal::default()
            },
            epoch,
            restored_at: None,
            groups_by_app: false,
            newest_offer: None,
            lists_generation: 0,
            // The store holds the records at this epoch and tag: the next unit starts there.
            chain: UnitChain::at(epoch, tag.unwrap_or(UnitTag::NONE)),
            dirty: Dirty::default(),
        };
        // The records of one kind: a run, in key order.
        let of_kind = |kind: u8| {
            let from = records.partition_point(|(k, _)| k.kind() < kind);
            let to = records.partition_point(|(k, _)| k.kind() <= kind);
            &records[from..to]
        };
        // The pending KEM ciphertext records: each session set looks for its own among them
        // alone (usually none), not among all the records.
        let kems = of_kind(PENDING_KEM);
        let mut seen = BTreeMap::new();
        // Sized from the records' kinds, so that pushing never reallocates.
        let mut lists = Vec::with_capacity(of_kind(DEVICE_LIST).len());
        let mut sessions = Vec::with_capacity(of_kind(SESSIONS).len());
        let (mut attached, mut pending_records) = (0usize, 0usize);
        let mut migrated = Vec::new();
        // Group entries read with their answers inline (the older form): no answer record may
        // name them too.
        let mut inline_answers = BTreeSet::new();
        if own_migrated {
            migrated.push(Key::Own);
        }
        // Groups in id order, as their members records come; a group's outbound and ledger
        // records follow all of those, and find it by bisection.
        let mut groups: Vec<(GroupId, Group)> = Vec::with_capacity(of_kind(GROUP_MEMBERS).len());
        let mut inbound = Vec::new();
        let mut withheld = Vec::new();
        for (key, bytes) in records {
            let mut r = Reader::new(bytes);
            match *key {
                Key::Own | Key::Meta | Key::PreKeys => continue,
                Key::OneTime(id) => {
                    let mut check = Reader::new(bytes);
                    if check.u32()? != id {
                        return Err(DecodeError::InvalidValue);
                    }
                    device
                        .prekeys
                        .insert_one_time(&mut r, MAX_MINTED_PER_KIND)?;
                }
                Key::OneTimeKem(id) => {
                    if device
                        .prekeys
                        .insert_one_time_kem(&mut r, MAX_MINTED_PER_KIND)?
                        .0
                        != id
                    {
                        return Err(DecodeError::InvalidValue);
                    }
                }
                Key::SeenBase(spk, base) => {
                    device.prekeys.insert_seen(SignedPreKeyId(spk), base)?
                }
                Key::DeviceList(account) => {
                    let (followed, older_form) = Followed::read(&mut r)?;
                    if followed.list.account() != account {
                        return Err(DecodeError::InvalidValue);
                    }
                    if older_form {
                        // Stored before lists kept their digest: rewritten with it.
                        migrated.push(*key);
                    }
                    lists.push((account, followed));
                }
                Key::Sessions(a) => {
                    // This device's pending KEM ciphertexts for `a`, each in its own record
                    // (none at all once every peer has replied).
                    let pending = match kems {
                        [] => kems,
                        _ => {
                            let from =
                                kems.partition_point(|(k, _)| *k < Key::PendingKem(a, [0; 32]));
                            let to =
                                kems.partition_point(|(k, _)| *k <= Key::PendingKem(a, [0xff; 32]));
                            &kems[from..to]
                        }
                    };
                    let find = |base: &[u8; 32]| {
                        let i = pending
                            .binary_search_by(|(k, _)| k.cmp(&Key::PendingKem(a, *base)))
                            .ok()?;
                        KemCiphertext::from_bytes(pending[i].1).ok()
                    };
                    let (set, inline) = SessionSet::read(&mut r, &find)?;
                    // Every ciphertext record belongs to a pending session of this set.
                    let stored_apart = || set.pending_bases().filter(|b| find(b).is_some());
                    if !pending.is_empty() && stored_apart().count() != pending.len() {
                        return Err(DecodeError::InvalidValue);
                    }
                    if inline {
                        // Written before ciphertexts had records of their own: rewritten.
                        migrated.push(Key::Sessions(a));
                        migrated.extend(set.pending_bases().map(|b| Key::PendingKem(a, b)));
                    }
                    attached += pending.len();
                    sessions.push((a, set));
                }
                Key::PendingKem(..) => {
                    // Read with its sessions record; counted below.
                    pending_records += 1;
                    continue;
                }
                Key::GroupMembers(g) => {
                    let members = Members::read_record(&mut r)?;
                    groups.push((
                        g,
                        Group {
                            members,
                            ..Group::default()
                        },
                    ));
                }
                Key::Outbound(g) => {
                    let (outbound, old_form) = read_outbound(&mut r)?;
                    if old_form {
                        migrated.push(*key);
                    }
                    let group = group_of(&mut groups, g).ok_or(DecodeError::InvalidValue)?;
                    if outbound.session.group() != g {
                        return Err(DecodeError::InvalidValue);
                    }
                    group.outbound = Some(Box::new(outbound));
                }
                Key::Ledger(g, k, a) => {
                    let holder = read_holder(&mut r)?;
                    let ledger = group_of(&mut groups, g)
                        .and_then(|g| g.outbound.as_mut())
                        .and_then(|o| o.generations.iter_mut().find(|l| l.key_id == k))
                        .ok_or(DecodeError::InvalidValue)?;
                    ledger.holders.insert(a, holder);
                }
                Key::Unconfirmed(g) => {
                    group_of(&mut groups, g)
                        .ok_or(DecodeError::InvalidValue)?
                        .unconfirmed = true;
                }
                Key::Offered(g) => {
                    group_of(&mut groups, g)
                        .ok_or(DecodeError::InvalidValue)?
                        .offered = true;
                }
                Key::Inbound(a, g) => {
                    let key = InboundSenderKey::from_bytes(r.rest())?;
                    if key.group() != g {
                        return Err(DecodeError::InvalidValue);
                    }
                    inbound.push(((a, g), key));
                }
                // The old form, empty, named no generation: the notice is dropped (a message it
                // would have marked withheld reads as its key missing) and deleted.
                Key::Withheld(..) if bytes.is_empty() => migrated.push(*key),
                Key::Withheld(a, g) => {
                    let mut key_ids = Vec::new();
                    while r.rest_len() > 0 && key_ids.len() < MAX_WITHHELD_GENERATIONS {
                        let key_id = SenderKeyId(r.u32()?);
                        if key_ids.contains(&key_id) {
                            return Err(DecodeError::InvalidValue);
                        }
                        key_ids.push(key_id);
                    }
                    withheld.push(((a, g), key_ids));
                }
                Key::Seen(slot) => {
                    seen.insert(slot, read_envelope_id(&mut r)?);
                }
                Key::Sent(id) => {
                    let (sent, older_form) = Sent::read(&mut r)?;
                    if older_form {
                        // A 1:1 record written before messages carried a nonce, or a group
                        // record with its answers inline: rewritten, and the answers with it.
                        migrated.push(*key);
                        migrated.extend(sent.answered_devices().map(|a| Key::Answered(id, *a)));
                        inline_answers.insert(id);
                    }
                    device.journal.insert_sent(id, sent)?;
                }
                Key::Answered(id, requester) => {
                    // Only beside its group entry, in one form: never an inline entry's too.
                    let answered = match device.journal.sent.get_mut(&id).map(|s| &mut s.kind) {
                        Some(SentKind::Group { answered, .. }) if !inline_answers.contains(&id) => {
                            answered
                        }
                        _ => return Err(DecodeError::InvalidValue),
                    };
                    answered.insert(requester, read_answers(&mut r)?);
                }
                Key::Pending(key) => {
                    // Never asked of itself, and never more than it keeps.
                    if key.0 == device.address
                        || device.journal.pending.len() == MAX_PENDING_RETRIES
                    {
                        return Err(DecodeError::InvalidValue);
                    }
                    device.journal.pending.insert(key, Pending::read(&mut r)?);
                }
                Key::Restored => device.restored_at = Some(Timestamp(r.u64()?)),
                Key::NewestOffer => device.newest_offer = Some(Timestamp(r.u64()?)),
                Key::Replaced(id) => {
                    if device.journal.replaced.len() == MAX_REPLACED_MESSAGE_IDS {
                        return Err(DecodeError::InvalidValue);
                    }
                    let sender = DeviceAddress::read_trusted(&mut r)?;
                    device
                        .journal
                        .replaced
                        .insert(id, (sender, Timestamp(r.u64()?)));
                }
                Key::Forgotten(account) => {
                    // Remembered only while no list of the account is held.
                    if lists.binary_search_by(|(a, _)| a.cmp(&account)).is_ok() {
                        return Err(DecodeError::InvalidValue);
                    }
                    let mark = ListMark {
                        version: r.u64()?,
                        digest: r.array()?,
                        policy: r.flag()?,
                    };
                    device.forgotten.insert(account, mark);
                }
            }
            r.finish()?;
        }
        // No ciphertext record without its pending session.
        if attached != pending_records {
            return Err(DecodeError::InvalidValue);
        }
        device.groups = groups.into_iter().collect();
        // Both older forms of the meta record (before the flag, before the tag) are rewritten.
        if tag.is_none() {
            migrated.push(Key::Meta);
        }
        device.groups_by_app = groups_by_app.unwrap_or(!device.groups.is_empty());
        // Offers are ordered only while the app has not taken over the groups.
        if device.groups_by_app && device.newest_offer.is_some() {
            return Err(DecodeError::InvalidValue);
        }
        // Records written before `0x18` (a device whose app set no group has had one since
        // the first offer it applied): while the app had set no group, every group came from
        // an offer, so each is marked offered (one the app vouched for too, as before `0x16`
        // every group was). The marks, and the newest offer's record at time 0 (any offer is
        // newer), are written by the load's unit, so this is inferred once: a later load does
        // not mark offered again a group the app vouched for since.
        if !device.groups_by_app && device.newest_offer.is_none() && !device.groups.is_empty() {
            for (id, group) in device.groups.iter_mut().filter(|(_, g)| !g.offered) {
                group.offered = true;
                migrated.push(Key::Offered(*id));
            }
            device.newest_offer = Some(Timestamp(0));
            migrated.push(Key::NewestOffer);
        }
        for key in migrated {
            device.dirty.mark(key);
        }
        device.lists = lists.into_iter().collect();
        device.sessions = sessions.into_iter().collect();
        device.inbound = inbound.into_iter().collect();
        device.withheld = withheld.into_iter().collect();
        if seen.len() > MAX_REMEMBERED_MESSAGE_IDS {
            return Err(DecodeError::InvalidValue);
        }
        device.journal.restore_seen(seen, seen_next)?;
        device.journal.check_references()?;
        if !device.lists.contains_key(&address.account) {
            return Err(DecodeError::MissingRecord(
                Key::DeviceList(address.account).encode()[0],
            ));
        }
        // Each minted key belongs to one request of one pending retry, and beyond the caps only
        // the keys pending retry requests hold are kept (fanout/retry.rs).
        let mut minted = BTreeSet::new();
        let mut minted_kem = BTreeSet::new();
        for m in device.journal.pending.values().flat_map(|p| &p.minted) {
            if m.one_time.is_some_and(|id| !minted.insert(id))
                || m.kem.is_some_and(|id| !minted_kem.insert(id))
            {
                return Err(DecodeError::InvalidValue);
            }
        }
        let (held, held_kem) = device.held_for_retries();
        let caps = device.config.prekeys;
        if device.prekeys.one_time_prekeys_remaining() > caps.max_one_time_prekeys as usize + held
            || device.prekeys.one_time_kem_prekeys_remaining()
                > caps.max_one_time_kem_prekeys as usize + held_kem
        {
            return Err(DecodeError::InvalidValue);
        }
        Ok(device)
    }

    /// Whole-state bytes, for backups: every record, in key order. They hold secrets.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = SecretBuf::with_capacity(4096);
        out.versioned_header(DEVICE_STATE_VERSION, kind::DEVICE_STATE);
        let keys = self.all_keys();
        out.u32(keys.len() as u32);
        for k in keys {
            out.blob(&k.encode());
            out.blob(&self.value_of(&k).unwrap_or_default());
        }
        out.into_inner()
    }

    /// Restores from [`to_bytes`](Self::to_bytes), as it was (use
    /// [`restore`](Self::restore) or [`restore_from_backup`](Self::restore_from_backup) for a
    /// backup that may be stale). Its next [`take_changes`](Self::take_changes) holds every
    /// record, and starts from the epoch and tag the bytes hold: a store that holds the device
    /// at another epoch or tag (another copy loaded from the same bytes wrote since) refuses
    /// it, and one that holds no device takes it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (mut r, _) =
            Reader::versioned_header(bytes, kind::DEVICE_STATE, &[DEVICE_STATE_VERSION])?;
        let n = crate::wire::bounded_count(&mut r, MAX_RECORDS)?;
        let mut records: Vec<(Key, &[u8])> = Vec::new();
        for _ in 0..n {
            let len = r.u32()? as usize;
            let key = Key::decode(r.bytes(len)?)?;
            if records.last().is_some_and(|(l, _)| *l >= key) {
                return Err(DecodeError::InvalidValue);
            }
            let len = r.u32()? as usize;
            records.push((key, r.bytes(len)?));
        }
        r.finish()?;
        let mut device = Self::from_sorted(&records)?;
        device.dirty.all = true;
        Ok(device)
    }
}

/// The own record's length (PROTOCOL.md 19.2) as the previous release wrote it, with the
/// device policy (`u32 ‖ u64 ‖ u64`) where the list limits (`u32`) now are; both layouts are
/// fixed-length, so the length tells them apart.
const PREVIOUS_OWN_LEN: usize = OWN_LEN + 16;
/// The own record's length (PROTOCOL.md 19.2).
const OWN_LEN: usize = 8 + 12 + 4 + 20 + 8 + 36 + 32;

/// The group `g` of `groups`, which are in id order.
fn group_of(groups: &mut [(GroupId, Group)], g: GroupId) -> Option<&mut Group> {
    let i = groups.binary_search_by(|(id, _)| id.cmp(&g)).ok()?;
    Some(&mut groups[i].1)
}

/// The own record: the config, address and identity, and whether it was of the previous
/// layout (then it is rewritten).
fn read_own(
    bytes: &[u8],
) -> Result<(DeviceConfig, DeviceAddress, IdentityKeyPair, bool), DecodeError> {
    let previous = bytes.len() == PREVIOUS_OWN_LEN;
    let mut r = Reader::new(bytes);
    let config = DeviceConfig {
        session: SessionConfig {
            max_forward_jump: r.u32()?,
            max_skipped_keys: r.u32()?,
        },
        group: GroupConfig {
            max_forward_jump: r.u32()?,
            max_skipped_keys: r.u32()?,
            max_generations: r.u32()?,
        },
        lists: if previous {
            let cap = r.u32()?;
            // The account's validities, now signed in its list, were kept here too.
            r.u64()?;
            r.u64()?;
            ListLimits::from_previous_cap(cap)
        } else {
            ListLimits {
                max_companions: r.u32()?,
            }
        },
        prekeys: PreKeyStoreConfig {
            max_signed_prekeys: r.u32()?,
            max_one_time_prekeys: r.u32()?,
            max_sessions_per_signed_prekey: r.u32()?,
            max_one_time_kem_prekeys: r.u32()?,
            max_last_resort_uses: r.u32()?,
        },
        retry_window_ms: r.u64()?,
    };
    let address = DeviceAddress::read_trusted(&mut r)?;
    let seed = Zeroizing::new(r.array::<32>()?);
    r.finish()?;
    Ok((config, address, IdentityKeyPair::from_seed(&seed), previous))
}
