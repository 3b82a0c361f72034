//! Migration of a device's whole state from the formats before records (device state versions
//! 1 and 2, protocol version 1). What carries over: the identity, the prekeys (given a
//! last-resort ML-KEM prekey), the pairwise sessions that heard back, the read envelope ids
//! and the epoch. What does not: other accounts' device lists (protocol 1 lists lack the
//! primary's consent; fetch them again, which sends ask for by name), and group sender keys,
//! which every migrated sender replaces at its next group message.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use rand_core::CryptoRng;

use super::body_digest::BodyDigestKey;
use super::journal::{Journal, MAX_REMEMBERED_MESSAGE_IDS};
use super::lists::Followed;
use super::records::Dirty;
use super::sessions::{MAX_SESSIONS_PER_DEVICE, SessionSet};
use super::{Device, DeviceConfig, EnvelopeId};
use crate::devices::{DeviceAddress, ListLimits, SignedDeviceList};
use crate::error::{DecodeError, Error, FanoutError};
use crate::group::GroupConfig;
use crate::persist::{UnitChain, UnitTag};
use crate::primitives::IdentityKeyPair;
use crate::ratchet::{Session, SessionConfig};
use crate::time::Timestamp;
use crate::wire::{Reader, bounded_count, kind};
use crate::x3dh::{PreKeyStore, PreKeyStoreConfig};

fn blob<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], DecodeError> {
    let len = r.u32()? as usize;
    r.bytes(len)
}

impl Device {
    /// The identity key pair inside a device state of the formats before records: what the
    /// primary device passes to [`Primary::migrate`](crate::devices::Primary::migrate).
    pub fn legacy_identity(old_state: &[u8]) -> Result<IdentityKeyPair, DecodeError> {
        let (mut r, _) = Reader::versioned_header(old_state, kind::DEVICE_STATE, &[1, 2])?;
        // Session, group, policy and prekey configs, then the address.
        r.bytes(2 * 4 + 3 * 4 + 4 + 8 + 8 + 3 * 4 + 36)?;
        IdentityKeyPair::from_bytes(blob(&mut r)?)
    }

    /// Loads a device's state of the formats before records (versions 1 and 2), given its
    /// account's list as the primary re-signed it ([`Primary::migrate`]) — it must list this
    /// device with this identity, active at `now`. Draws 64 bytes from `rng` for a last-resort
    /// ML-KEM prekey. The result's next [`take_changes`](Self::take_changes) holds every
    /// record.
    ///
    /// Old state may be a stale backup, and nothing tells: it carries no epoch of the current
    /// kind. Migration needs no restore wait for it, though. The sessions it keeps are classical
    /// and only receive (a send replaces them by PQXDH first), so no sending chain of the old
    /// state is used again; no sender key carries over; and the own list is the one the primary
    /// signed at its migration, not the old state's.
    ///
    /// [`Primary::migrate`]: crate::devices::Primary::migrate
    pub fn migrate(
        rng: &mut impl CryptoRng,
        now: Timestamp,
        old_state: &[u8],
        own_list: SignedDeviceList,
    ) -> Result<Self, Error> {
        let (mut r, version) = Reader::versioned_header(old_state, kind::DEVICE_STATE, &[1, 2])?;
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
            lists: {
                let cap = r.u32()?;
                // The account's validities, now signed in its list, were kept here too.
                r.u64()?;
                r.u64()?;
                ListLimits::from_previous_cap(cap)
            },
            prekeys: PreKeyStoreConfig {
                max_signed_prekeys: r.u32()?,
                max_one_time_prekeys: r.u32()?,
                ..PreKeyStoreConfig::default()
            },
            ..DeviceConfig::default()
        };
        // Version 1's bound on remembered base keys: they are now kept per signed prekey.
        let _max_remembered_base_keys = r.u32()?;
        let address = DeviceAddress::read(&mut r)?;
        let identity = IdentityKeyPair::from_bytes(blob(&mut r)?)?;
        let prekeys = PreKeyStore::migrate(rng, &identity, now, blob(&mut r)?)?;
        let list = own_list.verify(&address.account, None, &config.lists)?;
        match list.check(address.device, now)? {
            e if e.identity == identity.public() => {}
            _ => return Err(FanoutError::IdentityMismatch(address).into()),
        }
        for _ in 0..r.u32()? {
            blob(&mut r)?;
        }
        let mut sessions = BTreeMap::new();
        for _ in 0..r.u32()? {
            let peer = DeviceAddress::read(&mut r)?;
            let n = bounded_count(&mut r, MAX_SESSIONS_PER_DEVICE as u32)?;
            let mut set = Vec::with_capacity(n);
            for _ in 0..n {
                let session = Session::from_bytes(blob(&mut r)?)?;
                // A session that never heard back would need a pre-key message, which now
                // carries an ML-KEM ciphertext it does not have: the next send starts anew.
                if !session.awaiting_reply() {
                    set.push(session);
                }
            }
            if let Some(set) = SessionSet::from_sessions(set) {
                sessions.insert(peer, set);
            }
        }
        blob(&mut r)?;
        for _ in 0..r.u32()? {
            blob(&mut r)?;
        }
        for _ in 0..r.u32()? {
            r.bytes(32)?;
            let m = r.u32()? as usize;
            r.bytes(m.checked_mul(36).ok_or(DecodeError::InvalidValue)?)?;
        }
        let w = r.u32()? as usize;
        r.bytes(w.checked_mul(68).ok_or(DecodeError::InvalidValue)?)?;
        let mut journal = Journal::default();
        let mut epoch = 0;
        if version == 2 {
            let n = bounded_count(&mut r, MAX_REMEMBERED_MESSAGE_IDS as u32)?;
            for _ in 0..n {
                journal.read(EnvelopeId(r.array()?));
            }
            epoch = r.u64()?;
        }
        r.finish()?;
        let mut lists = BTreeMap::new();
        lists.insert(address.account, Followed::new(list));
        let mut device = Self {
            config,
            address,
            body_key: BodyDigestKey::of(&identity),
            identity,
            prekeys,
            lists,
            forgotten: BTreeMap::new(),
            sessions,
            groups: BTreeMap::new(),
            inbound: BTreeMap::new(),
            withheld: BTreeMap::new(),
            journal,
            epoch,
            restored_at: None,
            groups_by_app: false,
            newest_offer: None,
            lists_generation: 0,
            // Its first unit replaces all, starting from the old state's epoch and the tag of
            // a state before tags: where nothing is stored, or a second copy's migration of
            // the same state is refused once the first wrote.
            chain: UnitChain::at(epoch, UnitTag::NONE),
            dirty: Dirty {
                all: true,
                keys: BTreeSet::new(),
            },
        };
        device.bump();
        Ok(device)
    }
}
