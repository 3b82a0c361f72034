//! The signed device list (PROTOCOL.md, "Device list"): which devices speak for an account.
//! Bytes become a [`VerifiedDeviceList`] only through [`SignedDeviceList::verify`].

use alloc::vec::Vec;

use super::account::{read_account, write_account};
use super::{AccountKey, DeviceId, DevicePolicy, PRIMARY_DEVICE};
use crate::error::{DecodeError, DeviceError};
use crate::labels;
use crate::primitives::{IdentityKey, Signature, sha256};
use crate::time::Timestamp;
use crate::wire::{Reader, Writer, kind};

/// Entries a list may hold at all (policy caps companions far lower); bounds decoding.
pub(crate) const MAX_LIST_ENTRIES: u32 = 256;

/// One device of an account, as the account key vouches for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceEntry {
    /// The device's id.
    pub id: DeviceId,
    /// Its identity key.
    pub identity: IdentityKey,
    /// When it was linked.
    pub linked_at: Timestamp,
    /// When it stops being valid unless the primary re-signs; `None` for the primary.
    pub expires_at: Option<Timestamp>,
    /// The companion's signature consenting to be listed under this account (`None` for the
    /// primary, whose identity the account key holder controls).
    pub(crate) binding: Option<Signature>,
}

impl DeviceEntry {
    /// Whether this entry is usable at `now` (the primary always is).
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|t| now < t)
    }
}

/// A device list as received: parsed, signature not yet checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedDeviceList {
    account: AccountKey,
    version: u64,
    issued_at: Timestamp,
    entries: Vec<DeviceEntry>,
    /// The encoded body the signature covers.
    body: Vec<u8>,
    signature: Signature,
}

/// A device list whose account signature, structure and companions' bindings verified, and
/// that is not older than the list it replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedDeviceList(SignedDeviceList, [u8; 32]);

impl SignedDeviceList {
    /// Encodes and signs a list body (the primary's side).
    pub(crate) fn sign(
        account: &super::AccountKeyPair,
        version: u64,
        issued_at: Timestamp,
        entries: Vec<DeviceEntry>,
    ) -> Self {
        let mut body = Vec::with_capacity(2 + 32 + 8 + 8 + 4 + entries.len() * 120);
        body.header(kind::DEVICE_LIST);
        write_account(&mut body, &account.public());
        body.u64(version);
        body.u64(issued_at.0);
        body.u32(entries.len() as u32);
        for e in &entries {
            body.u32(e.id.0);
            body.extend_from_slice(&e.identity.to_bytes());
            body.u64(e.linked_at.0);
            body.optional(e.expires_at, |out, t| out.u64(t.0));
            body.optional(e.binding, |out, s| out.extend_from_slice(&s.to_bytes()));
        }
        let signature = account.sign(labels::DEVICE_LIST, &body);
        Self {
            account: account.public(),
            version,
            issued_at,
            entries,
            body,
            signature,
        }
    }

    /// The wire bytes: body ‖ signature.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 64);
        out.extend_from_slice(&self.body);
        out.extend_from_slice(&self.signature.to_bytes());
        out
    }

    /// Parses wire bytes. Entries must be in strictly ascending id order.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, kind::DEVICE_LIST)?;
        let account = read_account(&mut r)?;
        let version = r.u64()?;
        let issued_at = Timestamp(r.u64()?);
        let n = crate::x3dh::bounded_count(&mut r, MAX_LIST_ENTRIES)?;
        let mut entries: Vec<DeviceEntry> = Vec::with_capacity(n);
        for _ in 0..n {
            let entry = DeviceEntry {
                id: DeviceId(r.u32()?),
                identity: IdentityKey::from_bytes(&r.array()?)?,
                linked_at: Timestamp(r.u64()?),
                expires_at: r.optional(|r| r.u64().map(Timestamp))?,
                binding: r.optional(|r| r.array().map(Signature::from_bytes))?,
            };
            if entries.last().is_some_and(|last| last.id >= entry.id) {
                return Err(DecodeError::InvalidValue);
            }
            entries.push(entry);
        }
        let body_len = bytes.len() - r.rest_len();
        let signature = Signature::from_bytes(r.array()?);
        r.finish()?;
        Ok(Self {
            account,
            version,
            issued_at,
            entries,
            body: bytes[..body_len].to_vec(),
            signature,
        })
    }

    /// The account the list claims.
    pub fn account(&self) -> AccountKey {
        self.account
    }

    /// The list's version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Verifies the list for `expected` account: the account signature, the structure (a
    /// primary with id 1 and no expiry first; companions with an expiry and a valid binding;
    /// no identity key twice), the companion cap, and no rollback or equivocation against
    /// `known`, the list accepted before (if any). Returns `known` unchanged if this is the
    /// same list.
    pub fn verify(
        self,
        expected: &AccountKey,
        known: Option<&VerifiedDeviceList>,
        policy: &DevicePolicy,
    ) -> Result<VerifiedDeviceList, DeviceError> {
        if self.account != *expected {
            return Err(DeviceError::WrongAccount);
        }
        if let Some(known) = known {
            let k = &known.0;
            if self.version < k.version {
                return Err(DeviceError::Rollback {
                    known: k.version,
                    received: self.version,
                });
            }
            if self.version == k.version {
                return if self.body == k.body && self.signature == k.signature {
                    Ok(known.clone())
                } else {
                    Err(DeviceError::Equivocation)
                };
            }
        }
        self.account
            .verify(labels::DEVICE_LIST, &self.body, &self.signature)
            .map_err(|_| DeviceError::BadSignature)?;
        let Some((primary, companions)) = self.entries.split_first() else {
            return Err(DeviceError::InvalidList);
        };
        if primary.id != PRIMARY_DEVICE || primary.expires_at.is_some() || primary.binding.is_some()
        {
            return Err(DeviceError::InvalidList);
        }
        if companions.len() > policy.max_companions as usize {
            return Err(DeviceError::TooManyCompanions);
        }
        for (i, c) in companions.iter().enumerate() {
            let (Some(_), Some(binding)) = (c.expires_at, c.binding) else {
                return Err(DeviceError::InvalidList);
            };
            let duplicate = self.entries[..i + 1]
                .iter()
                .any(|e| e.identity == c.identity);
            if duplicate {
                return Err(DeviceError::InvalidList);
            }
            c.identity
                .verify(labels::DEVICE_BINDING, self.account.as_bytes(), &binding)
                .map_err(|_| DeviceError::BadBinding(c.id.0))?;
        }
        Ok(VerifiedDeviceList::new(self))
    }
}

impl VerifiedDeviceList {
    /// The account.
    pub fn account(&self) -> AccountKey {
        self.0.account
    }

    /// The version.
    pub fn version(&self) -> u64 {
        self.0.version
    }

    /// When the primary signed it.
    pub fn issued_at(&self) -> Timestamp {
        self.0.issued_at
    }

    /// Every entry, expired ones included, in id order.
    pub fn entries(&self) -> &[DeviceEntry] {
        &self.0.entries
    }

    /// The entries usable at `now`: the primary and unexpired companions.
    pub fn active(&self, now: Timestamp) -> impl Iterator<Item = &DeviceEntry> {
        self.0.entries.iter().filter(move |e| e.is_active(now))
    }

    /// The entry for `id` if it is usable at `now`.
    pub fn check(&self, id: DeviceId, now: Timestamp) -> Result<&DeviceEntry, DeviceError> {
        let entry = self
            .0
            .entries
            .iter()
            .find(|e| e.id == id)
            .ok_or(DeviceError::NotInList(id.0))?;
        if entry.is_active(now) {
            Ok(entry)
        } else {
            Err(DeviceError::CompanionExpired(id.0))
        }
    }

    /// SHA-256 of the signed bytes: names this exact list.
    pub fn digest(&self) -> [u8; 32] {
        self.1
    }

    fn new(list: SignedDeviceList) -> Self {
        let digest = sha256(&[&list.body, &list.signature.to_bytes()]);
        Self(list, digest)
    }

    /// The signed wire bytes, to pass on to others.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.to_bytes()
    }

    /// The list as signed, to hand to others.
    pub fn signed(&self) -> &SignedDeviceList {
        &self.0
    }

    /// A list this crate's primary just signed.
    pub(crate) fn from_own(list: SignedDeviceList) -> Self {
        Self::new(list)
    }

    /// Re-parses stored bytes of a list that was verified before (from this device's own
    /// state); the checks are repeated, so a tampered store is refused.
    pub(crate) fn restore(bytes: &[u8], policy: &DevicePolicy) -> Result<Self, DecodeError> {
        let list = SignedDeviceList::from_bytes(bytes)?;
        let account = list.account;
        list.verify(&account, None, policy)
            .map_err(|_| DecodeError::InvalidValue)
    }
}
