//! The primary device's account role: it holds the account key, issues link invitations,
//! approves companions, and signs every new device list (each one renews the companions'
//! validity window; companions already expired are dropped and must link again).

use alloc::vec::Vec;
use core::fmt;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::{
    AccountKey, AccountKeyPair, DeviceEntry, DeviceId, DevicePolicy, LinkApproval,
    LinkConfirmation, LinkInvitation, LinkRequest, PRIMARY_DEVICE, SignedDeviceList,
    VerifiedDeviceList,
};
use crate::error::{DecodeError, DeviceError};
use crate::labels;
use crate::primitives::IdentityKey;
use crate::time::Timestamp;
use crate::wire::{Reader, Writer, kind};

/// Unanswered invitations kept; a new one beyond this replaces the oldest.
pub(crate) const MAX_PENDING_INVITATIONS: usize = 4;

/// The account role of the primary device. Persist [`to_bytes`](Self::to_bytes) after every
/// change, before publishing the new list.
#[derive(Clone)]
pub struct Primary {
    account: AccountKeyPair,
    policy: DevicePolicy,
    next_device: u32,
    list: VerifiedDeviceList,
    invitations: Vec<LinkInvitation>,
    confirmed: Vec<DeviceId>,
}

impl Primary {
    /// A new account whose primary device has identity `primary`; the first list (version 1)
    /// lists only it. Draws 32 bytes from `rng` (the account key's seed).
    pub fn new(
        rng: &mut impl CryptoRng,
        primary: &IdentityKey,
        now: Timestamp,
        policy: DevicePolicy,
    ) -> Self {
        let account = AccountKeyPair::generate(rng);
        let entry = DeviceEntry {
            id: PRIMARY_DEVICE,
            identity: *primary,
            linked_at: now,
            expires_at: None,
            binding: None,
        };
        let list = trusted(SignedDeviceList::sign(&account, 1, now, alloc::vec![entry]));
        Self {
            account,
            policy,
            next_device: 2,
            list,
            invitations: Vec::new(),
            confirmed: Vec::new(),
        }
    }

    /// The account key.
    pub fn account(&self) -> AccountKey {
        self.account.public()
    }

    /// The device policy this account enforces.
    pub fn policy(&self) -> DevicePolicy {
        self.policy
    }

    /// The current signed device list.
    pub fn device_list(&self) -> &VerifiedDeviceList {
        &self.list
    }

    /// An invitation for one companion, valid for the policy's window. Draws 16 bytes.
    pub fn invite(&mut self, rng: &mut impl CryptoRng, now: Timestamp) -> LinkInvitation {
        let invitation = LinkInvitation::new(
            rng,
            self.account(),
            now.plus_millis(self.policy.link_invitation_validity_ms),
        );
        if self.invitations.len() == MAX_PENDING_INVITATIONS {
            self.invitations.remove(0);
        }
        self.invitations.push(invitation);
        invitation
    }

    /// Approves a companion's request: checks its signatures, the invitation (issued here,
    /// unexpired, unused), the account and the companion cap, then signs a new list with the
    /// companion added. On error nothing changes.
    pub fn approve(
        &mut self,
        now: Timestamp,
        request: &LinkRequest,
    ) -> Result<LinkApproval, DeviceError> {
        if request.account != self.account() {
            return Err(DeviceError::WrongAccount);
        }
        let invitation = self
            .invitations
            .iter()
            .position(|i| i.nonce == request.nonce && now < i.expires_at)
            .ok_or(DeviceError::UnknownInvitation)?;
        request.verify()?;
        if self
            .list
            .entries()
            .iter()
            .any(|e| e.identity == request.identity)
        {
            return Err(DeviceError::AlreadyLinked);
        }
        let mut entries = self.renewed_entries(now);
        if entries.len() > self.policy.max_companions as usize {
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
            expires_at: Some(now.plus_millis(self.policy.companion_validity_ms)),
            binding: Some(request.binding),
        });
        self.list = self.sign(now, entries);
        self.next_device = next;
        self.invitations.remove(invitation);
        Ok(LinkApproval {
            device: id,
            list: self.list.signed().clone(),
        })
    }

    /// Records a companion's countersignature of the list that admitted it.
    pub fn confirm(&mut self, confirmation: &LinkConfirmation) -> Result<DeviceId, DeviceError> {
        if confirmation.account != self.account() {
            return Err(DeviceError::WrongAccount);
        }
        let entry = self
            .list
            .entries()
            .iter()
            .find(|e| e.id == confirmation.device)
            .ok_or(DeviceError::NotInList(confirmation.device.0))?;
        entry
            .identity
            .verify(
                labels::LINK_CONFIRMATION,
                &confirmation.signed_message(),
                &confirmation.signature,
            )
            .map_err(|_| DeviceError::BadSignature)?;
        if !self.confirmed.contains(&confirmation.device) {
            self.confirmed.push(confirmation.device);
        }
        Ok(confirmation.device)
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
        if device == PRIMARY_DEVICE {
            return Err(DeviceError::NotPrimary);
        }
        let mut entries = self.renewed_entries(now);
        let before = entries.len();
        entries.retain(|e| e.id != device);
        if entries.len() == before {
            return Err(DeviceError::NotInList(device.0));
        }
        self.list = self.sign(now, entries);
        self.confirmed.retain(|d| *d != device);
        Ok(&self.list)
    }

    /// Re-signs the list, extending every unexpired companion's validity from `now` and
    /// dropping the expired ones. Call it regularly (well within the validity window).
    pub fn renew(&mut self, now: Timestamp) -> &VerifiedDeviceList {
        let entries = self.renewed_entries(now);
        self.list = self.sign(now, entries);
        &self.list
    }

    fn renewed_entries(&self, now: Timestamp) -> Vec<DeviceEntry> {
        let until = now.plus_millis(self.policy.companion_validity_ms);
        self.list
            .active(now)
            .map(|e| DeviceEntry {
                expires_at: e.expires_at.map(|_| until),
                ..*e
            })
            .collect()
    }

    fn sign(&self, now: Timestamp, entries: Vec<DeviceEntry>) -> VerifiedDeviceList {
        trusted(SignedDeviceList::sign(
            &self.account,
            self.list.version().saturating_add(1),
            now,
            entries,
        ))
    }

    /// Versioned state bytes (PROTOCOL.md, "Primary state"): they hold the account key.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::new());
        out.header(kind::PRIMARY_STATE);
        out.extend_from_slice(self.account.seed());
        out.u32(self.policy.max_companions);
        out.u64(self.policy.companion_validity_ms);
        out.u64(self.policy.link_invitation_validity_ms);
        out.u32(self.next_device);
        let list = self.list.to_bytes();
        out.u32(list.len() as u32);
        out.extend_from_slice(&list);
        out.u32(self.invitations.len() as u32);
        for i in &self.invitations {
            out.extend_from_slice(&i.nonce);
            out.u64(i.expires_at.0);
        }
        out.u32(self.confirmed.len() as u32);
        for d in &self.confirmed {
            out.u32(d.0);
        }
        out
    }

    /// Restores from [`to_bytes`](Self::to_bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, kind::PRIMARY_STATE)?;
        let account = AccountKeyPair::from_seed(&Zeroizing::new(r.array()?));
        let policy = DevicePolicy {
            max_companions: r.u32()?,
            companion_validity_ms: r.u64()?,
            link_invitation_validity_ms: r.u64()?,
        };
        let next_device = r.u32()?;
        let len = r.u32()? as usize;
        let list = VerifiedDeviceList::restore(r.bytes(len)?, &policy)?;
        if list.account() != account.public() {
            return Err(DecodeError::InvalidValue);
        }
        let n = crate::x3dh::bounded_count(&mut r, MAX_PENDING_INVITATIONS as u32)?;
        let mut invitations = Vec::with_capacity(n);
        for _ in 0..n {
            invitations.push(LinkInvitation {
                account: account.public(),
                nonce: r.array()?,
                expires_at: Timestamp(r.u64()?),
            });
        }
        let n = crate::x3dh::bounded_count(&mut r, super::list::MAX_LIST_ENTRIES)?;
        let mut confirmed = Vec::with_capacity(n);
        for _ in 0..n {
            confirmed.push(DeviceId(r.u32()?));
        }
        r.finish()?;
        Ok(Self {
            account,
            policy,
            next_device,
            list,
            invitations,
            confirmed,
        })
    }
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
            .finish_non_exhaustive()
    }
}
