//! The signed device list (PROTOCOL.md, "Device list"): which devices speak for an account,
//! under which [`AccountPolicy`]. Bytes become a [`VerifiedDeviceList`] only through
//! [`SignedDeviceList::verify`] (or, for a list this crate stored after verifying it, by being
//! read back from its own state).
//!
//! Two forms are read: the current one (format 3), which carries the account's policy, and the
//! old one (format 2), signed before it did. The old form is never signed again; it verifies
//! under the verifier's ceiling alone, and never after a list of the current form of the same
//! account (a server cannot strip the policy by serving an old list).

use alloc::vec::Vec;

use super::{AccountKey, AccountPolicy, DeviceAddress, DeviceId, ListLimits, PRIMARY_DEVICE};
use crate::error::{DecodeError, DeviceError};
use crate::labels;
use crate::primitives::{IdentityKey, IdentityKeyPair, Signature, sha256};
use crate::time::Timestamp;
use crate::wire::{Reader, Writer, bounded_count, kind};

/// Entries a list may hold at all (policy caps companions far lower); bounds decoding.
pub(crate) const MAX_LIST_ENTRIES: u32 = 256;
/// The list format this build signs: the account's policy follows the issue time.
const LIST_FORMAT: u8 = 3;
/// The list format before the policy was signed into it: read (stored lists, accounts whose
/// primary has not signed since), never signed.
const LEGACY_LIST_FORMAT: u8 = 2;
/// A body's length before its entries, at most (header, account, version, issue time, policy,
/// count), and an entry's (id, identity, link time, expiry, binding).
const BODY_LEN: usize = 2 + 32 + 8 + 8 + 12 + 4;
const ENTRY_LEN: usize = 4 + 32 + 8 + 9 + 64;

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
    /// The device's own signature consenting to be listed under this account: no account,
    /// not even its own primary, can list a device key it does not hold.
    pub(crate) binding: Signature,
}

impl DeviceEntry {
    /// Whether this entry is usable at `now` (the primary always is).
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|t| now < t)
    }
}

/// A device's consent to be listed under `account`:
/// Sign(IK, "ratchetry v1 device binding" ‖ AK).
pub(crate) fn binding(identity: &IdentityKeyPair, account: &AccountKey) -> Signature {
    identity.sign(labels::DEVICE_BINDING, account.as_bytes())
}

/// A device list as received: parsed, signature not yet checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedDeviceList {
    account: AccountKey,
    version: u64,
    issued_at: Timestamp,
    /// The account's signed policy; `None` for a list of the old form.
    policy: Option<AccountPolicy>,
    entries: Vec<DeviceEntry>,
    /// Over the body, [`body`](Self::body): the fields' encoding, which is canonical (a
    /// decoder reads each field at a fixed place and accepts one encoding of each value), so
    /// the bytes are not kept beside the fields: they are encoded again when signed, verified
    /// or sent, and a device holding thousands of lists holds each once.
    signature: Signature,
}

/// A device list whose account signature, structure and devices' bindings verified, and that
/// is not older than the list it replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedDeviceList(SignedDeviceList, [u8; 32]);

/// What a verifier remembers of an account's newest list once it holds the list no longer
/// (PROTOCOL.md 15.2, 19.1): enough to refuse an older list, another list of the same
/// version, or a list of the old form after one with a policy, and nothing of the account's
/// devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ListMark {
    pub(crate) version: u64,
    /// The list's digest ([`VerifiedDeviceList::digest`]).
    pub(crate) digest: [u8; 32],
    /// Whether the list carried a policy (the current form).
    pub(crate) policy: bool,
}

impl SignedDeviceList {
    /// Encodes and signs a list body under the account's `policy` (the primary's side).
    pub(crate) fn sign(
        account: &super::AccountKeyPair,
        version: u64,
        issued_at: Timestamp,
        policy: AccountPolicy,
        entries: Vec<DeviceEntry>,
    ) -> Self {
        Self::sign_form(account, version, issued_at, Some(policy), entries)
    }

    /// Signs a list of the old form, without a policy: what a primary of the previous release
    /// signed (tests of stored lists and of the downgrade rule).
    #[cfg(feature = "test-support")]
    pub(crate) fn sign_legacy(
        account: &super::AccountKeyPair,
        version: u64,
        issued_at: Timestamp,
        entries: Vec<DeviceEntry>,
    ) -> Self {
        Self::sign_form(account, version, issued_at, None, entries)
    }

    fn sign_form(
        account: &super::AccountKeyPair,
        version: u64,
        issued_at: Timestamp,
        policy: Option<AccountPolicy>,
        entries: Vec<DeviceEntry>,
    ) -> Self {
        let mut list = Self {
            account: account.public(),
            version,
            issued_at,
            policy,
            entries,
            signature: Signature::from_bytes([0; 64]),
        };
        list.signature = account.sign(labels::DEVICE_LIST, &list.body());
        list
    }

    /// The encoded body the signature covers: the form (the current one if the list carries a
    /// policy), then every field in order.
    fn body(&self) -> Vec<u8> {
        // Room for the signature, which `to_bytes` appends.
        let mut body = Vec::with_capacity(BODY_LEN + self.entries.len() * ENTRY_LEN + 64);
        let format = if self.policy.is_some() {
            LIST_FORMAT
        } else {
            LEGACY_LIST_FORMAT
        };
        body.versioned_header(format, kind::DEVICE_LIST);
        body.put(self.account.as_bytes());
        body.u64(self.version);
        body.u64(self.issued_at.0);
        if let Some(p) = self.policy {
            body.u32(p.max_companions);
            body.u64(p.companion_validity_ms);
        }
        body.u32(self.entries.len() as u32);
        for e in &self.entries {
            body.u32(e.id.0);
            body.put(e.identity.as_bytes());
            body.u64(e.linked_at.0);
            body.optional(e.expires_at, |out, t| out.u64(t.0));
            body.put(&e.binding.to_bytes());
        }
        body
    }

    /// The wire bytes: body ‖ signature.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.body();
        out.put(&self.signature.to_bytes());
        out
    }

    /// Parses wire bytes, of either form. Entries must be in strictly ascending id order.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::parse(bytes, IdentityKey::from_bytes, AccountKey::from_bytes)
    }

    /// Parses a list this crate stored after verifying it: no key is checked again.
    fn from_trusted_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::parse(
            bytes,
            |k| Ok(IdentityKey::from_trusted(*k)),
            |k| Ok(AccountKey::from_trusted(*k)),
        )
    }

    fn parse(
        bytes: &[u8],
        identity: impl Fn(&[u8; 32]) -> Result<IdentityKey, DecodeError>,
        account: impl Fn(&[u8; 32]) -> Result<AccountKey, DecodeError>,
    ) -> Result<Self, DecodeError> {
        let (mut r, format) =
            Reader::versioned_header(bytes, kind::DEVICE_LIST, &[LIST_FORMAT, LEGACY_LIST_FORMAT])?;
        let account = account(&r.array()?)?;
        let version = r.u64()?;
        let issued_at = Timestamp(r.u64()?);
        let policy = if format == LIST_FORMAT {
            Some(AccountPolicy {
                max_companions: r.u32()?,
                companion_validity_ms: r.u64()?,
            })
        } else {
            None
        };
        let n = bounded_count(&mut r, MAX_LIST_ENTRIES)?;
        let mut entries: Vec<DeviceEntry> = Vec::with_capacity(r.capacity(n, 109));
        for _ in 0..n {
            let entry = DeviceEntry {
                id: DeviceId(r.u32()?),
                identity: identity(&r.array()?)?,
                linked_at: Timestamp(r.u64()?),
                expires_at: r.optional(|r| r.u64().map(Timestamp))?,
                binding: Signature::from_bytes(r.array()?),
            };
            if entries.last().is_some_and(|last| last.id >= entry.id) {
                return Err(DecodeError::InvalidValue);
            }
            entries.push(entry);
        }
        let signature = Signature::from_bytes(r.array()?);
        r.finish()?;
        Ok(Self {
            account,
            version,
            issued_at,
            policy,
            entries,
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

    /// Verifies the list for `expected` account, given `known`, the list accepted before (if
    /// any), and the verifier's `limits` (PROTOCOL.md 15.2), in this order: the account; the
    /// very same list as `known` (returned unchanged, with no work); the account signature; no
    /// rollback or equivocation against `known`; no list of the old form after one carrying a
    /// policy (`PolicyDowngrade`); the structure (a primary with id 1 and no expiry first;
    /// companions with an expiry, within the signed companion validity of the issue time; no
    /// identity key twice); the signed policy within the ceiling (`PolicyAboveCeiling`); the
    /// companions within the signed policy (or, for the old form, the ceiling); every device's
    /// binding. The signature comes before the rollback, equivocation and downgrade verdicts,
    /// so bytes the account never signed cannot raise those alarms.
    pub fn verify(
        self,
        expected: &AccountKey,
        known: Option<&VerifiedDeviceList>,
        limits: &ListLimits,
    ) -> Result<VerifiedDeviceList, DeviceError> {
        if let Some(known) = known
            && self.account == *expected
            // Equal fields are equal bytes (the encoding is canonical).
            && self == known.0
        {
            return Ok(known.clone());
        }
        self.verify_after(
            expected,
            known.map(VerifiedDeviceList::mark).as_ref(),
            limits,
        )
    }

    /// [`verify`](Self::verify) against what is remembered of the newest list accepted
    /// before: its `mark` (for a forgotten account, whose list is no longer held). The list
    /// the mark names is taken again (the same version with the same digest).
    pub(crate) fn verify_after(
        self,
        expected: &AccountKey,
        mark: Option<&ListMark>,
        limits: &ListLimits,
    ) -> Result<VerifiedDeviceList, DeviceError> {
        if self.account != *expected {
            return Err(DeviceError::WrongAccount);
        }
        self.account
            .verify(labels::DEVICE_LIST, &self.body(), &self.signature)
            .map_err(|_| DeviceError::BadSignature)?;
        if let Some(mark) = mark {
            if self.version < mark.version {
                return Err(DeviceError::Rollback {
                    known: mark.version,
                    received: self.version,
                });
            }
            if self.version == mark.version && VerifiedDeviceList::digest_of(&self) != mark.digest {
                return Err(DeviceError::Equivocation);
            }
            // Once an account has shown its policy, a list without one is refused: else a
            // server holding an old-form list the account signed later (a primary running the
            // previous release) would lift the account's own cap to the verifier's ceiling.
            if mark.policy && self.policy.is_none() {
                return Err(DeviceError::PolicyDowngrade);
            }
        }
        let Some((primary, companions)) = self.entries.split_first() else {
            return Err(DeviceError::InvalidList);
        };
        if primary.id != PRIMARY_DEVICE || primary.expires_at.is_some() {
            return Err(DeviceError::InvalidList);
        }
        // The longest a companion may stay valid: what the account signed, counted from this
        // list's issue time (the primary renews every companion when it signs).
        let latest_expiry = self
            .policy
            .map(|p| self.issued_at.plus_millis(p.companion_validity_ms));
        for (i, c) in companions.iter().enumerate() {
            let Some(expires_at) = c.expires_at else {
                return Err(DeviceError::InvalidList);
            };
            if latest_expiry.is_some_and(|latest| expires_at > latest) {
                return Err(DeviceError::InvalidList);
            }
            let duplicate = self.entries[..=i].iter().any(|e| e.identity == c.identity);
            if duplicate {
                return Err(DeviceError::InvalidList);
            }
        }
        let cap = match self.policy {
            Some(p) if p.max_companions > limits.max_companions => {
                return Err(DeviceError::PolicyAboveCeiling {
                    allowed: p.max_companions,
                    ceiling: limits.max_companions,
                });
            }
            Some(p) => p.max_companions,
            None => limits.max_companions,
        };
        if companions.len() > cap as usize {
            return Err(DeviceError::TooManyCompanions);
        }
        for e in &self.entries {
            e.identity
                .verify(labels::DEVICE_BINDING, self.account.as_bytes(), &e.binding)
                .map_err(|_| DeviceError::BadBinding(e.id.0))?;
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

    /// The account's policy, as its primary signed it; `None` for a list of the old form
    /// (signed before lists carried one).
    pub fn policy(&self) -> Option<AccountPolicy> {
        self.0.policy
    }

    /// Every entry, expired ones included, in id order.
    pub fn entries(&self) -> &[DeviceEntry] {
        &self.0.entries
    }

    /// The entries usable at `now`: the primary and unexpired companions.
    pub fn active(&self, now: Timestamp) -> impl Iterator<Item = &DeviceEntry> {
        self.0.entries.iter().filter(move |e| e.is_active(now))
    }

    /// The entry for `id`, whether or not it is active.
    pub fn entry(&self, id: DeviceId) -> Option<&DeviceEntry> {
        self.0
            .entries
            .binary_search_by_key(&id, |e| e.id)
            .ok()
            .map(|i| &self.0.entries[i])
    }

    /// The entry for `id` if it is usable at `now`.
    pub fn check(&self, id: DeviceId, now: Timestamp) -> Result<&DeviceEntry, DeviceError> {
        let address = DeviceAddress {
            account: self.0.account,
            device: id,
        };
        let entry = self.entry(id).ok_or(DeviceError::NotInList(address))?;
        if entry.is_active(now) {
            Ok(entry)
        } else {
            Err(DeviceError::CompanionExpired(address))
        }
    }

    /// SHA-256 of the signed bytes: names this exact list.
    pub fn digest(&self) -> [u8; 32] {
        self.1
    }

    fn new(list: SignedDeviceList) -> Self {
        let digest = Self::digest_of(&list);
        Self(list, digest)
    }

    fn digest_of(list: &SignedDeviceList) -> [u8; 32] {
        sha256(&[&list.to_bytes()])
    }

    /// What must be remembered of this list to refuse the lists it supersedes once it is
    /// no longer held.
    pub(crate) fn mark(&self) -> ListMark {
        ListMark {
            version: self.0.version,
            digest: self.1,
            policy: self.0.policy.is_some(),
        }
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

    /// Reads back a list this crate verified before and stored in its own state: parsed, with
    /// no signature or key checked again (restoring state does no curve work).
    pub(crate) fn from_trusted_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        SignedDeviceList::from_trusted_bytes(bytes).map(Self::new)
    }

    /// As [`from_trusted_bytes`](Self::from_trusted_bytes), with the digest stored beside the
    /// list: a load hashes no list (it would be most of the work of loading a device).
    pub(crate) fn from_trusted_parts(bytes: &[u8], digest: [u8; 32]) -> Result<Self, DecodeError> {
        SignedDeviceList::from_trusted_bytes(bytes).map(|list| Self(list, digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::AccountKeyPair;
    use crate::testing::SeededRng;

    /// A list holds its fields, not its bytes: what it signs, verifies, hashes and sends is
    /// their encoding. That is the received bytes only if the encoding is canonical (one
    /// encoding per list, all else refused), in either form: encoded again, a parsed list is
    /// the bytes it was parsed from, its signature verifies over them, and a byte the decoder
    /// could read another way (an expiry flag of 2) is refused.
    #[test]
    fn a_list_is_its_fields_encoded_one_way() {
        let rng = &mut SeededRng::from_label("list encoding");
        let account = AccountKeyPair::generate(rng);
        let phone = IdentityKeyPair::generate(rng);
        let laptop = IdentityKeyPair::generate(rng);
        let entry =
            |id: u32, identity: &IdentityKeyPair, expires_at: Option<Timestamp>| DeviceEntry {
                id: DeviceId(id),
                identity: identity.public(),
                linked_at: Timestamp(5),
                expires_at,
                binding: binding(identity, &account.public()),
            };
        let entries = alloc::vec![
            entry(1, &phone, None),
            entry(2, &laptop, Some(Timestamp(1 << 30))),
        ];
        let current = SignedDeviceList::sign(
            &account,
            7,
            Timestamp(6),
            AccountPolicy::default(),
            entries.clone(),
        );
        let legacy = SignedDeviceList::sign_legacy(&account, 7, Timestamp(6), entries);
        for list in [current, legacy] {
            let bytes = list.to_bytes();
            let parsed = SignedDeviceList::from_bytes(&bytes).unwrap();
            assert_eq!(parsed.to_bytes(), bytes);
            assert_eq!(parsed, list);
            let verified = parsed
                .verify(&account.public(), None, &ListLimits::default())
                .unwrap();
            assert_eq!(verified.digest(), sha256(&[&bytes]));
            // The companion's expiry flag, 9 bytes before its binding and the signature.
            let mut other = bytes.clone();
            let flag = other.len() - 64 - 64 - 9;
            assert_eq!(other[flag], 1);
            other[flag] = 2;
            assert_eq!(
                SignedDeviceList::from_bytes(&other),
                Err(DecodeError::InvalidValue)
            );
        }
    }

    /// A mark refuses what the list it names would refuse as the list held (an older version,
    /// another list of its version, the old form after the current one), and takes the list
    /// itself again; a mark of an old-form list lets a list of the old form follow it.
    #[test]
    fn a_mark_refuses_what_its_list_refuses() {
        let rng = &mut SeededRng::from_label("list mark");
        let account = AccountKeyPair::generate(rng);
        let phone = IdentityKeyPair::generate(rng);
        let entries = alloc::vec![DeviceEntry {
            id: PRIMARY_DEVICE,
            identity: phone.public(),
            linked_at: Timestamp(5),
            expires_at: None,
            binding: binding(&phone, &account.public()),
        }];
        let limits = ListLimits::default();
        let current = |version, at| {
            SignedDeviceList::sign(
                &account,
                version,
                Timestamp(at),
                AccountPolicy::default(),
                entries.clone(),
            )
        };
        let legacy = |version, at| {
            SignedDeviceList::sign_legacy(&account, version, Timestamp(at), entries.clone())
        };
        let a = &account.public();
        let held = current(5, 10).verify(a, None, &limits).unwrap();
        let mark = held.mark();
        assert_eq!(
            mark,
            ListMark {
                version: 5,
                digest: held.digest(),
                policy: true
            }
        );
        let verdicts = [
            (
                current(4, 20),
                Err(DeviceError::Rollback {
                    known: 5,
                    received: 4,
                }),
            ),
            (current(5, 11), Err(DeviceError::Equivocation)),
            (legacy(6, 20), Err(DeviceError::PolicyDowngrade)),
            (current(6, 20), Ok(())),
        ];
        for (list, verdict) in verdicts {
            let by_mark = list.clone().verify_after(a, Some(&mark), &limits);
            let by_list = list.verify(a, Some(&held), &limits);
            assert_eq!(by_mark.as_ref().map(|_| ()).map_err(|e| *e), verdict);
            assert_eq!(by_mark, by_list);
        }
        assert_eq!(
            current(5, 10).verify_after(a, Some(&mark), &limits),
            Ok(held.clone())
        );
        // Another account's list is refused, even given as the list known.
        let other = AccountKeyPair::generate(rng).public();
        assert_eq!(
            current(5, 10).verify(&other, Some(&held), &limits),
            Err(DeviceError::WrongAccount)
        );
        let old = legacy(5, 10).verify(a, None, &limits).unwrap().mark();
        assert!(!old.policy);
        assert!(legacy(6, 20).verify_after(a, Some(&old), &limits).is_ok());
    }
}
