//! The primary device's account role: it holds the account key, issues link invitations,
//! approves companions, and signs every new device list (each one renews the companions'
//! validity window; companions already expired are dropped and must link again).
//!
//! Its state is kept as records, like a `Device`'s (`primary_records` and `primary_state`,
//! PROTOCOL.md 15.4), or as one blob for backups ([`Primary::to_bytes`]). It carries an epoch,
//! like a `Device`'s: a primary restored from a snapshot older than its last state must
//! [`resync`](Primary::resync) from the newest list it can fetch before it signs again, and
//! then skips far ahead in versions and device ids, so that it never signs a version twice or
//! gives an id it may already have given to another device.

use alloc::vec::Vec;
use core::fmt;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::limits::OWN_LIST_LIMITS;
use super::list::{MAX_LIST_ENTRIES, binding};
use super::primary_records::PrimaryKey;
use super::{
    AccountKey, AccountKeyPair, AccountPolicy, DeviceAddress, DeviceEntry, DeviceId, LinkApproval,
    LinkConfirmation, LinkInvitation, LinkRequest, PRIMARY_DEVICE, PrimaryPolicy, SignedDeviceList,
    VerifiedDeviceList,
};
use crate::error::{DecodeError, DeviceError};
use crate::labels;
use crate::persist::{Dirty, UnitChain, UnitTag};
use crate::primitives::IdentityKeyPair;
use crate::time::Timestamp;
use crate::wire::{Reader, SecretBuf, Writer, bounded_count, kind};

/// Unanswered invitations kept; a new one beyond this replaces the oldest.
pub(crate) const MAX_PENDING_INVITATIONS: usize = 4;
/// List versions skipped after a restore from backup: more than any number of lists the lost
/// state can have signed.
pub const RESTORE_VERSION_SKIP: u64 = 1 << 32;
/// Device ids skipped after a restore from backup: more than the devices the lost state can
/// have linked (linking takes a person and a QR code each time).
pub const RESTORE_DEVICE_ID_SKIP: u32 = 1 << 16;
/// A restore's device ids skip [`RESTORE_DEVICE_ID_SKIP`] plus a number below this, drawn
/// from the restore's time: two restores from one backup (the first restored primary lost
/// before a newer backup), at different times, give out ids at different places, and the
/// second gives one the first gave only if the two places lie fewer ids apart than the first
/// linked devices (for ten devices, about one chance in 100,000).
pub const RESTORE_DEVICE_ID_SPREAD: u32 = 1 << 20;
/// A restored primary's next list version is at least its restore's time in milliseconds
/// (at most [`RESTORE_VERSION_CLOCK_CAP_MS`]) times this: a later restore from the same
/// backup signs above every version an earlier one signed, unless that one signed this many
/// lists per millisecond between them.
pub const RESTORE_VERSION_PER_MS: u64 = 1 << 10;
/// The restore's time counts for the version floor up to this (2^42 ms: the year 2109), so
/// a clock far ahead neither saturates versions nor takes them past 2^53, which JavaScript
/// numbers hold exactly.
pub const RESTORE_VERSION_CLOCK_CAP_MS: u64 = 1 << 42;

/// The primary state format this build writes: format 2's fields, then the tag of the last
/// unit taken.
const PRIMARY_STATE_VERSION: u8 = 3;
/// The primary state format before unit tags, still read (its tag is `UnitTag::NONE`).
const PRIMARY_STATE_UNTAGGED: u8 = 2;

/// The account role of the primary device. After every change, write
/// [`take_changes`](Self::take_changes) (the records it changed, in one transaction) before
/// publishing the new list; [`from_records`](Self::from_records) loads it again.
/// [`to_bytes`](Self::to_bytes) is the whole state in one blob, for backups.
///
/// # Example: linking a companion
///
/// Every step's output crosses to the other device as bytes (the invitation as a QR code).
///
/// ```
/// use getrandom::{SysRng, rand_core::UnwrapErr};
/// use ratchetry::devices::{
///     LinkApproval, LinkConfirmation, LinkInvitation, LinkRequest, ListLimits, Primary,
///     PrimaryPolicy, complete_link,
/// };
/// use ratchetry::fanout::{Device, DeviceConfig};
/// use ratchetry::{IdentityKeyPair, Timestamp};
///
/// let mut rng = UnwrapErr(SysRng);
/// let now = Timestamp(1_790_000_000_000);
/// let phone = IdentityKeyPair::generate(&mut rng);
/// let mut primary = Primary::new(&mut rng, &phone, now, PrimaryPolicy::default());
///
/// // Phone: an invitation, shown as a QR code.
/// let qr = primary.invite(&mut rng, now)?.to_bytes();
/// // Laptop: scans it and answers with its own identity key.
/// let laptop = IdentityKeyPair::generate(&mut rng);
/// let invitation = LinkInvitation::from_bytes(&qr)?;
/// let request = LinkRequest::new(&laptop, &invitation).to_bytes();
/// // Phone: checks the request and signs a new list with the laptop in it.
/// let approval = primary.approve(now, &LinkRequest::from_bytes(&request)?)?;
/// let unit = primary.take_changes(&mut rng); // persist (one transaction), then publish the list
/// assert!(unit.replaces_all()); // the first unit holds every record
/// // Laptop: checks that the list names it, countersigns, and becomes a device of the account.
/// let approval = LinkApproval::from_bytes(&approval.to_bytes())?;
/// let (list, confirmation) =
///     complete_link(&laptop, &invitation, &approval, &ListLimits::default())?;
/// let (laptop, _upload) =
///     Device::new(&mut rng, now, laptop, approval.device, list, 10, DeviceConfig::default())?;
/// // Phone: records the countersignature.
/// let linked = primary.confirm(&LinkConfirmation::from_bytes(&confirmation.to_bytes())?)?;
/// assert!(primary.is_confirmed(linked));
/// // Each later unit holds only what changed: the confirmation deleted the approval's record
/// // and rewrote the confirmed set and the counters; the list was not touched.
/// assert_eq!(primary.take_changes(&mut rng).records().len(), 3);
/// assert_eq!(primary.device_list().entries().len(), 2);
///
/// // Later: renew well within the companions' validity, unlink when the user asks; publish each.
/// let later = now.plus_millis(24 * 60 * 60 * 1000);
/// primary.renew(later)?;
/// primary.unlink(later, laptop.address().device)?;
/// assert_eq!(primary.device_list().entries().len(), 1);
/// # Ok::<(), ratchetry::Error>(())
/// ```
#[derive(Clone)]
pub struct Primary {
    pub(super) account: AccountKeyPair,
    pub(super) policy: PrimaryPolicy,
    pub(super) next_device: u32,
    /// The lowest version the next list may carry.
    pub(super) next_version: u64,
    pub(super) list: VerifiedDeviceList,
    /// Pending invitations, oldest first, each with its number (its record's key).
    pub(super) invitations: Vec<(u64, LinkInvitation)>,
    /// The number the next invitation gets: numbers only grow, so a new invitation's record
    /// never lands on another's.
    pub(super) next_invitation: u64,
    /// Approved companions and the digest of the list that admitted each, until confirmed, in
    /// ascending device id (ids are given in ascending order, so also oldest first).
    pub(super) admitted: Vec<(DeviceId, [u8; 32])>,
    pub(super) confirmed: Vec<DeviceId>,
    pub(super) epoch: u64,
    /// Restored from a backup: nothing is signed until [`resync`](Self::resync).
    pub(super) needs_resync: bool,
    /// Where the next unit starts unless it replaces all: the epoch and tag of the last
    /// [`take_changes`](Self::take_changes), or those loaded from records.
    pub(super) chain: UnitChain,
    /// The records changed since the last [`take_changes`](Self::take_changes).
    pub(super) dirty: Dirty<PrimaryKey>,
}

impl Primary {
    /// A new account whose primary device is `identity`; the first list (version 1, issued
    /// `now`, carrying `policy.account`) lists only it, with its binding signature. Draws 32
    /// bytes from `rng` (the account key's seed).
    pub fn new(
        rng: &mut impl CryptoRng,
        identity: &IdentityKeyPair,
        now: Timestamp,
        policy: PrimaryPolicy,
    ) -> Self {
        let account = AccountKeyPair::generate(rng);
        let entry = DeviceEntry {
            id: PRIMARY_DEVICE,
            identity: identity.public(),
            linked_at: now,
            expires_at: None,
            binding: binding(identity, &account.public()),
        };
        let list = trusted(SignedDeviceList::sign(
            &account,
            1,
            now,
            policy.account,
            alloc::vec![entry],
        ));
        Self {
            account,
            policy,
            next_device: 2,
            next_version: 2,
            list,
            invitations: Vec::new(),
            next_invitation: 0,
            admitted: Vec::new(),
            confirmed: Vec::new(),
            epoch: 0,
            needs_resync: false,
            chain: UnitChain::WHOLE,
            dirty: Dirty::everything(),
        }
    }

    /// A primary migrated from an older state format (see `legacy`).
    pub(crate) fn from_migration(
        account: AccountKeyPair,
        policy: PrimaryPolicy,
        next_device: u32,
        list: VerifiedDeviceList,
        confirmed: Vec<DeviceId>,
    ) -> Self {
        Self {
            account,
            policy,
            next_device,
            next_version: list.version().saturating_add(1),
            list,
            invitations: Vec::new(),
            next_invitation: 0,
            admitted: Vec::new(),
            confirmed,
            epoch: 0,
            needs_resync: false,
            // Its first unit replaces all, starting from epoch 0 and the tag of a state before
            // tags: a second copy's migration of the same state is refused once one wrote.
            chain: UnitChain::at(0, UnitTag::NONE),
            dirty: Dirty::everything(),
        }
    }

    /// The account key.
    pub fn account(&self) -> AccountKey {
        self.account.public()
    }

    /// The policy this primary applies; its `account` part is signed into every list it signs.
    pub fn policy(&self) -> PrimaryPolicy {
        self.policy
    }

    /// The current signed device list.
    pub fn device_list(&self) -> &VerifiedDeviceList {
        &self.list
    }

    /// The state epoch: it grows with every change. Keep the epoch of the state last persisted
    /// where a restore from backup does not roll it back, and pass it to
    /// [`restore`](Self::restore).
    pub fn state_epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether this primary was restored from a backup and must [`resync`](Self::resync)
    /// before it signs a list again.
    pub fn needs_resync(&self) -> bool {
        self.needs_resync
    }

    /// An invitation for one companion, valid for the policy's window. Draws 16 bytes.
    pub fn invite(
        &mut self,
        rng: &mut impl CryptoRng,
        now: Timestamp,
    ) -> Result<LinkInvitation, DeviceError> {
        self.ready()?;
        let invitation = LinkInvitation::new(
            rng,
            self.account(),
            now.plus_millis(self.policy.link_invitation_validity_ms),
        );
        if self.invitations.len() == MAX_PENDING_INVITATIONS {
            let (oldest, _) = self.invitations.remove(0);
            self.dirty.mark(PrimaryKey::Invitation(oldest));
        }
        let number = self.next_invitation;
        self.next_invitation = number.saturating_add(1);
        self.invitations.push((number, invitation));
        self.dirty.mark(PrimaryKey::Invitation(number));
        self.bump();
        Ok(invitation)
    }

    /// Approves a companion's request: checks its signatures, the invitation (issued here,
    /// unexpired, unused), the account and the companion cap, then signs a new list with the
    /// companion added. On error nothing changes.
    pub fn approve(
        &mut self,
        now: Timestamp,
        request: &LinkRequest,
    ) -> Result<LinkApproval, DeviceError> {
        self.ready()?;
        if request.account != self.account() {
            return Err(DeviceError::WrongAccount);
        }
        let invitation = self
            .invitations
            .iter()
            .position(|(_, i)| request.answers(&i.nonce) && now < i.expires_at)
            .ok_or(DeviceError::UnknownInvitation)?;
        request.verify()?;
        // Checked against the list this approval signs: an expired companion, which it drops,
        // may link again with the same identity key (under a new id).
        let mut entries = self.renewed_entries(now);
        if entries.iter().any(|e| e.identity == request.identity) {
            return Err(DeviceError::AlreadyLinked);
        }
        if entries.len() > self.policy.account.max_companions as usize {
            return Err(DeviceError::TooManyCompanions);
        }
        let id = DeviceId(self.next_device);
        let next = self
            .next_device
            .checked_add(1)
            .ok_or(DeviceError::TooManyCompanions)?;
        entries.push(DeviceEntry {
            id,
            identity: request.identity,
            linked_at: now,
            expires_at: Some(now.plus_millis(self.policy.account.companion_validity_ms)),
            binding: request.binding,
        });
        self.sign(now, entries);
        self.next_device = next;
        let (used, _) = self.invitations.remove(invitation);
        self.dirty.mark(PrimaryKey::Invitation(used));
        self.admitted.retain(|(d, _)| *d != id);
        self.admitted.push((id, self.list.digest()));
        self.dirty.mark(PrimaryKey::Admitted(id));
        if self.admitted.len() > MAX_PENDING_INVITATIONS {
            let (oldest, _) = self.admitted.remove(0);
            self.dirty.mark(PrimaryKey::Admitted(oldest));
        }
        Ok(LinkApproval {
            device: id,
            list: self.list.signed().clone(),
        })
    }

    /// Records a companion's countersignature of the list that admitted it: the digest it
    /// signed must be that list's, and the signature the listed device's.
    pub fn confirm(&mut self, confirmation: &LinkConfirmation) -> Result<DeviceId, DeviceError> {
        if confirmation.account != self.account() {
            return Err(DeviceError::WrongAccount);
        }
        let device = confirmation.device;
        let address = DeviceAddress {
            account: self.account(),
            device,
        };
        let entry = self
            .list
            .entry(device)
            .ok_or(DeviceError::NotInList(address))?;
        let admitted = self
            .admitted
            .iter()
            .position(|(d, _)| *d == device)
            .ok_or(DeviceError::NotInList(address))?;
        if self.admitted[admitted].1 != confirmation.list_digest {
            return Err(DeviceError::WrongList);
        }
        entry
            .identity
            .verify(
                labels::LINK_CONFIRMATION,
                &confirmation.signed_message(),
                &confirmation.signature,
            )
            .map_err(|_| DeviceError::BadSignature)?;
        self.admitted.remove(admitted);
        self.confirmed.push(device);
        self.dirty.mark(PrimaryKey::Admitted(device));
        self.dirty.mark(PrimaryKey::Confirmed);
        self.bump();
        Ok(device)
    }

    /// Whether a companion countersigned its admission.
    pub fn is_confirmed(&self, device: DeviceId) -> bool {
        self.confirmed.contains(&device)
    }

    /// Removes a companion: a new list without it.
    pub fn unlink(
        &mut self,
        now: Timestamp,
        device: DeviceId,
    ) -> Result<&VerifiedDeviceList, DeviceError> {
        self.ready()?;
        if device == PRIMARY_DEVICE {
            return Err(DeviceError::NotPrimary);
        }
        let mut entries = self.renewed_entries(now);
        let before = entries.len();
        entries.retain(|e| e.id != device);
        if entries.len() == before {
            return Err(DeviceError::NotInList(DeviceAddress {
                account: self.account(),
                device,
            }));
        }
        self.sign(now, entries);
        if self.confirmed.contains(&device) {
            self.confirmed.retain(|d| *d != device);
            self.dirty.mark(PrimaryKey::Confirmed);
        }
        if self.admitted.iter().any(|(d, _)| *d == device) {
            self.admitted.retain(|(d, _)| *d != device);
            self.dirty.mark(PrimaryKey::Admitted(device));
        }
        Ok(&self.list)
    }

    /// Re-signs the list, extending every unexpired companion's validity from `now` and
    /// dropping the expired ones. Call it regularly (well within the validity window).
    pub fn renew(&mut self, now: Timestamp) -> Result<&VerifiedDeviceList, DeviceError> {
        self.ready()?;
        let entries = self.renewed_entries(now);
        self.sign(now, entries);
        Ok(&self.list)
    }

    /// After a restore from backup: adopts `newest`, the newest list of this account the app
    /// could fetch (it must carry this account's signature and be no older than the
    /// snapshot's), skips [`RESTORE_VERSION_SKIP`] versions and [`RESTORE_DEVICE_ID_SKIP`]
    /// device ids, since the lost state may have signed lists and linked devices the server no
    /// longer shows, and resumes past `now` (versions from `now` in milliseconds times
    /// [`RESTORE_VERSION_PER_MS`], ids after a spread below [`RESTORE_DEVICE_ID_SPREAD`]
    /// drawn from it), so a second restore from the same backup, later, numbers past the
    /// first. Then signs a list of this primary alone: publish it. Companions link again.
    ///
    /// They are not carried over because the server chose which list this primary saw: it
    /// could show one from before a companion was unlinked (a stolen laptop), which the
    /// restored primary would otherwise list and renew again. Their devices learn that they
    /// were removed (`ThisDeviceInactive`) and can be linked anew under fresh ids. Pending
    /// invitations and approvals are dropped. It does all this whenever it is called, also on
    /// a primary that does not [`need_resync`](Self::needs_resync): call it only then.
    pub fn resync(
        &mut self,
        now: Timestamp,
        newest: SignedDeviceList,
    ) -> Result<&VerifiedDeviceList, DeviceError> {
        let version = newest.version();
        if version < self.list.version() {
            return Err(DeviceError::Rollback {
                known: self.list.version(),
                received: version,
            });
        }
        let known = (version == self.list.version()).then_some(&self.list);
        let list = newest.verify(&self.account(), known, &OWN_LIST_LIMITS)?;
        // The phone itself, as this state knows it.
        let own = self.list.entry(PRIMARY_DEVICE).map(|e| e.identity);
        let primary = list
            .entry(PRIMARY_DEVICE)
            .filter(|e| Some(e.identity) == own)
            .copied()
            .ok_or(DeviceError::NotPrimary)?;
        let highest = list.entries().iter().map(|e| e.id.0).max().unwrap_or(1);
        // The constant skips put the restore past what the lost state issued; the time puts a
        // second restore from the same backup (shown the same list) past what the first did.
        let digest = crate::x3dh::restore_spread(now);
        let spread = u32::from_be_bytes([digest[4], digest[5], digest[6], digest[7]]);
        self.next_device = self
            .next_device
            .max(highest.saturating_add(1))
            .saturating_add(RESTORE_DEVICE_ID_SKIP)
            .saturating_add(spread % RESTORE_DEVICE_ID_SPREAD);
        self.next_version = self
            .next_version
            .max(version.saturating_add(1))
            .saturating_add(RESTORE_VERSION_SKIP)
            .max(now.as_millis().min(RESTORE_VERSION_CLOCK_CAP_MS) * RESTORE_VERSION_PER_MS);
        self.list = list;
        if !self.confirmed.is_empty() {
            self.confirmed.clear();
            self.dirty.mark(PrimaryKey::Confirmed);
        }
        for (number, _) in core::mem::take(&mut self.invitations) {
            self.dirty.mark(PrimaryKey::Invitation(number));
        }
        for (device, _) in core::mem::take(&mut self.admitted) {
            self.dirty.mark(PrimaryKey::Admitted(device));
        }
        self.needs_resync = false;
        self.sign(now, alloc::vec![primary]);
        Ok(&self.list)
    }

    fn ready(&self) -> Result<(), DeviceError> {
        if self.needs_resync {
            Err(DeviceError::ResyncRequired)
        } else {
            Ok(())
        }
    }

    /// One more change: the epoch grows, and the meta record (which holds it) is written.
    pub(super) fn bump(&mut self) {
        self.epoch = self.epoch.saturating_add(1);
        self.dirty.mark(PrimaryKey::Meta);
    }

    fn renewed_entries(&self, now: Timestamp) -> Vec<DeviceEntry> {
        let until = now.plus_millis(self.policy.account.companion_validity_ms);
        self.list
            .active(now)
            .map(|e| DeviceEntry {
                expires_at: e.expires_at.map(|_| until),
                ..*e
            })
            .collect()
    }

    fn sign(&mut self, now: Timestamp, entries: Vec<DeviceEntry>) {
        let version = self.next_version.max(self.list.version().saturating_add(1));
        self.list = trusted(SignedDeviceList::sign(
            &self.account,
            version,
            now,
            self.policy.account,
            entries,
        ));
        self.next_version = version.saturating_add(1);
        self.dirty.mark(PrimaryKey::List);
        self.bump();
    }

    /// Versioned state bytes (PROTOCOL.md, "Primary state"): they hold the account key.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let list = self.list.to_bytes();
        // Written rarely (backups): a start that holds a small account, grown (each old buffer
        // wiped) for a large one.
        let mut out = SecretBuf::with_capacity(1024);
        out.versioned_header(PRIMARY_STATE_VERSION, kind::PRIMARY_STATE);
        write_account(&mut out, &self.account, &self.policy);
        out.u32(self.next_device);
        out.u64(self.next_version);
        out.blob(&list);
        out.u32(self.invitations.len() as u32);
        for (_, i) in &self.invitations {
            out.put(&i.nonce);
            out.u64(i.expires_at.0);
        }
        out.u32(self.admitted.len() as u32);
        for (d, digest) in &self.admitted {
            out.u32(d.0);
            out.put(digest);
        }
        out.u32(self.confirmed.len() as u32);
        for d in &self.confirmed {
            out.u32(d.0);
        }
        out.u64(self.epoch);
        out.flag(self.needs_resync);
        out.put(&self.chain.tag().to_bytes());
        out.into_inner()
    }

    /// Restores from [`to_bytes`](Self::to_bytes), as it was. State of the previous release
    /// holds a list of the old form (no policy, PROTOCOL.md 23): it is kept as it is, and the
    /// next list this primary signs carries its policy (call [`renew`](Self::renew) once after
    /// upgrading, and publish it).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (mut r, version) = Reader::versioned_header(
            bytes,
            kind::PRIMARY_STATE,
            &[PRIMARY_STATE_UNTAGGED, PRIMARY_STATE_VERSION],
        )?;
        let (account, policy) = read_account(&mut r)?;
        let next_device = r.u32()?;
        let next_version = r.u64()?;
        let len = r.u32()? as usize;
        let list = read_list(r.bytes(len)?, &account, &policy)?;
        check_next_device(next_device, &list)?;
        let n = bounded_count(&mut r, MAX_PENDING_INVITATIONS as u32)?;
        let mut invitations = Vec::with_capacity(n);
        // Numbered in their order: the blob keeps the order, not the numbers.
        for number in 0..n as u64 {
            let invitation = LinkInvitation {
                account: account.public(),
                nonce: r.array()?,
                expires_at: Timestamp(r.u64()?),
            };
            invitations.push((number, invitation));
        }
        let n = bounded_count(&mut r, MAX_PENDING_INVITATIONS as u32)?;
        let mut admitted = Vec::with_capacity(n);
        for _ in 0..n {
            admitted.push((DeviceId(r.u32()?), r.array()?));
        }
        check_admitted(&admitted)?;
        let n = bounded_count(&mut r, MAX_LIST_ENTRIES)?;
        let mut confirmed = Vec::with_capacity(r.capacity(n, 4));
        for _ in 0..n {
            confirmed.push(DeviceId(r.u32()?));
        }
        let epoch = r.u64()?;
        let needs_resync = r.flag()?;
        let tag = match version {
            PRIMARY_STATE_UNTAGGED => UnitTag::NONE,
            _ => UnitTag::from_bytes(r.array()?),
        };
        r.finish()?;
        Ok(Self {
            account,
            policy,
            next_device,
            next_version,
            list,
            next_invitation: invitations.len() as u64,
            invitations,
            admitted,
            confirmed,
            epoch,
            needs_resync,
            // Loaded whole: the next unit holds every record, and starts where the bytes were
            // taken, at the tag of the last unit taken before them.
            chain: UnitChain::at(epoch, tag),
            dirty: Dirty::everything(),
        })
    }

    /// Restores persisted state and detects a stale snapshot: if its epoch is lower than
    /// `last_epoch` (the epoch of the state last persisted, kept elsewhere), it is restored as
    /// from a backup ([`restore_from_backup`](Self::restore_from_backup)) and the second value
    /// is `true`.
    pub fn restore(bytes: &[u8], last_epoch: u64) -> Result<(Self, bool), DecodeError> {
        Ok(Self::from_bytes(bytes)?.restore_stale(last_epoch))
    }

    /// Restores a primary from a backup that may be older than the state it last had: it signs
    /// nothing until [`resync`](Self::resync) gave it the newest list.
    pub fn restore_from_backup(bytes: &[u8]) -> Result<Self, DecodeError> {
        Ok(Self::from_bytes(bytes)?.into_restored())
    }

    /// The same after loading from records ([`from_records`](Self::from_records)): for an app
    /// whose record store itself was restored from a backup. Its next
    /// [`take_changes`](Self::take_changes) writes the meta record.
    pub fn into_restored(mut self) -> Self {
        self.needs_resync = true;
        // Restored: a unit that replaces all (loaded whole) replaces whatever the store holds,
        // a later state included.
        self.chain.restored();
        self.bump();
        self
    }

    /// A stale primary (its epoch below the last one persisted) restored: it must resync, and
    /// its epoch continues above `last_epoch`.
    pub(super) fn restore_stale(mut self, last_epoch: u64) -> (Self, bool) {
        if self.epoch >= last_epoch {
            return (self, false);
        }
        self.needs_resync = true;
        self.chain.restored();
        // The epoch stays monotonic across the restore.
        self.epoch = last_epoch.saturating_add(1);
        self.dirty.mark(PrimaryKey::Meta);
        (self, true)
    }
}

#[cfg(feature = "test-support")]
impl Primary {
    /// This primary's current list, signed again (same version, issue time and entries) in the
    /// old form, without a policy: what the previous release signed.
    pub(crate) fn legacy_list(&self) -> SignedDeviceList {
        SignedDeviceList::sign_legacy(
            &self.account,
            self.list.version(),
            self.list.issued_at(),
            self.list.entries().to_vec(),
        )
    }

    /// This primary's state as the previous release wrote it: the same, with its list in the
    /// old form.
    pub(crate) fn legacy_state(&self) -> Zeroizing<Vec<u8>> {
        let mut old = self.clone();
        old.list = trusted(self.legacy_list());
        old.to_bytes()
    }
}

/// The account seed and policy (the account record's value, and the start of the blob).
pub(super) fn read_account(
    r: &mut Reader<'_>,
) -> Result<(AccountKeyPair, PrimaryPolicy), DecodeError> {
    let account = AccountKeyPair::from_seed(&Zeroizing::new(r.array()?));
    let policy = PrimaryPolicy {
        account: AccountPolicy {
            max_companions: r.u32()?,
            companion_validity_ms: r.u64()?,
        },
        link_invitation_validity_ms: r.u64()?,
    };
    Ok((account, policy))
}

pub(super) fn write_account(out: &mut SecretBuf, account: &AccountKeyPair, policy: &PrimaryPolicy) {
    out.put(account.seed());
    out.u32(policy.account.max_companions);
    out.u64(policy.account.companion_validity_ms);
    out.u64(policy.link_invitation_validity_ms);
}

/// The primary's list, read back: it is this primary's own, signed under its policy, or of the
/// old form (state of the previous release, until the primary next signs).
pub(super) fn read_list(
    bytes: &[u8],
    account: &AccountKeyPair,
    policy: &PrimaryPolicy,
) -> Result<VerifiedDeviceList, DecodeError> {
    let list = VerifiedDeviceList::from_trusted_bytes(bytes)?;
    if list.account() != account.public() || list.policy().is_some_and(|p| p != policy.account) {
        return Err(DecodeError::InvalidValue);
    }
    Ok(list)
}

/// The next device id is above every listed one: ids are given from it on, and one at or below
/// a listed id would be given twice (and signed into a list out of order).
pub(super) fn check_next_device(
    next_device: u32,
    list: &VerifiedDeviceList,
) -> Result<(), DecodeError> {
    if list.entries().iter().any(|e| e.id.0 >= next_device) {
        return Err(DecodeError::InvalidValue);
    }
    Ok(())
}

/// Unconfirmed approvals are in strictly ascending device id (the order approvals give them),
/// so a state has one order, whatever form it was stored in.
fn check_admitted(admitted: &[(DeviceId, [u8; 32])]) -> Result<(), DecodeError> {
    if admitted.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(DecodeError::InvalidValue);
    }
    Ok(())
}

/// A list this primary just signed is verified by construction.
fn trusted(list: SignedDeviceList) -> VerifiedDeviceList {
    VerifiedDeviceList::from_own(list)
}

impl fmt::Debug for Primary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Primary")
            .field("account", &self.account())
            .field("list_version", &self.list.version())
            .field("devices", &self.list.entries().len())
            .field("needs_resync", &self.needs_resync)
            .finish_non_exhaustive()
    }
}
