//! A device with a real address book, for the scale bench and the memory check: sessions with
//! thousands of remote devices (accounts of 4), and groups of up to 20 member accounts.
//!
//! One peer account is real: its 4 devices and the subject have sessions both ways, so sends
//! and receives with it run end to end. The other accounts have signed device lists with real
//! bindings, and sessions that are clones of one real session under their addresses (a load or
//! a send cannot tell them apart; they cannot decrypt anything).
// A fixture that cannot be built is a broken test setup: it says which step failed and stops.
#![allow(clippy::expect_used)]

use alloc::vec::Vec;
use rand_core::CryptoRng;

use crate::devices::{
    AccountKey, AccountKeyPair, AccountPolicy, DeviceAddress, DeviceId, PRIMARY_DEVICE, Primary,
    PrimaryPolicy, VerifiedDeviceList,
};
use crate::fanout::lists::Followed;
use crate::fanout::sessions::SessionSet;
use crate::fanout::{Device, DeviceConfig, Outbox, Outgoing};
use crate::group::GroupId;
use crate::primitives::IdentityKeyPair;
use crate::time::Timestamp;

use super::hooks::{device_binding, sign_device_list_under};

/// Devices per account in the address book.
pub const DEVICES_PER_ACCOUNT: usize = 4;

/// The subject device and everything around it.
pub struct AddressBook {
    /// The subject: a primary device following every account below.
    pub device: Device,
    /// The real peer account's 4 devices, with sessions with the subject.
    pub peer: Vec<Device>,
    /// The real peer account (first of `accounts`).
    pub peer_account: AccountKey,
    /// Every account the subject follows besides its own, the peer first.
    pub accounts: Vec<AccountKey>,
    /// The groups made (their member accounts set; nothing sent yet).
    pub groups: Vec<GroupId>,
    /// The subject's records (key, value), as a store would hold them.
    pub records: Vec<(Vec<u8>, Vec<u8>)>,
}

fn ready(o: Outgoing) -> Outbox {
    match o {
        Outgoing::Ready(o) => o,
        other => panic!("expected envelopes, got {other:?}"),
    }
}

/// A signed list of `DEVICES_PER_ACCOUNT` devices, the primary first, companions valid for
/// long enough for any bench.
fn account(
    rng: &mut impl CryptoRng,
    now: Timestamp,
    config: &DeviceConfig,
) -> (AccountKey, Vec<IdentityKeyPair>, VerifiedDeviceList) {
    let key = AccountKeyPair::generate(rng);
    let ids: Vec<IdentityKeyPair> = (0..DEVICES_PER_ACCOUNT)
        .map(|_| IdentityKeyPair::generate(rng))
        .collect();
    let entries: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            (
                DeviceId(i as u32 + 1),
                id.public(),
                now,
                (i > 0).then_some(now.plus_millis(1 << 40)),
                device_binding(id, &key.public()),
            )
        })
        .collect();
    let policy = AccountPolicy {
        max_companions: DEVICES_PER_ACCOUNT as u32 - 1,
        companion_validity_ms: 1 << 40,
    };
    let list = sign_device_list_under(&key, 1, now, policy, &entries)
        .verify(&key.public(), None, &config.lists)
        .expect("a freshly signed list verifies");
    (key.public(), ids, list)
}

impl AddressBook {
    /// A subject with sessions with `sessions` remote devices (rounded down to whole accounts,
    /// at least the real peer's) and `groups` groups of 20 member accounts each.
    pub fn new(rng: &mut impl CryptoRng, now: Timestamp, sessions: usize, groups: usize) -> Self {
        let config = DeviceConfig::default();
        let me = IdentityKeyPair::generate(rng);
        let mine = Primary::new(rng, &me, now, PrimaryPolicy::default());
        let (mut device, _) = Device::new(
            rng,
            now,
            me,
            PRIMARY_DEVICE,
            mine.device_list().clone(),
            0,
            config,
        )
        .expect("a device");

        let (peer_account, ids, peer_list) = account(rng, now, &config);
        let mut peer: Vec<Device> = ids
            .into_iter()
            .enumerate()
            .map(|(i, id)| {
                let (mut d, _) = Device::new(
                    rng,
                    now,
                    id,
                    DeviceId(i as u32 + 1),
                    peer_list.clone(),
                    1,
                    config,
                )
                .expect("a peer device");
                d.update_device_list(now, &mine.account(), mine.device_list().signed().clone())
                    .expect("the subject's list");
                d
            })
            .collect();
        device
            .update_device_list(now, &peer_account, peer_list.signed().clone())
            .expect("the peer's list");
        let bundles: Vec<_> = peer
            .iter()
            .map(|d| (d.address(), d.bundle(None, None)))
            .collect();
        for d in &mut peer {
            let siblings: Vec<_> = bundles
                .iter()
                .filter(|(a, _)| *a != d.address())
                .cloned()
                .collect();
            d.start_sessions(rng, now, &siblings)
                .expect("sibling sessions");
        }
        device
            .start_sessions(rng, now, &bundles)
            .expect("sessions with the peer");
        // Both ways, then once more, so every session is past its pre-key messages.
        let o = ready(
            device
                .send(rng, now, &peer_account, b"hello")
                .expect("send"),
        );
        for (to, e) in &o.envelopes {
            let d = peer
                .iter_mut()
                .find(|d| d.address() == *to)
                .expect("a peer");
            d.receive(now, e).expect("the peer reads");
            let r = ready(d.send(rng, now, &mine.account(), b"hi").expect("reply"));
            let (_, to_subject) = r
                .envelopes
                .iter()
                .find(|(a, _)| *a == device.address())
                .expect("a copy for the subject");
            device.receive(now, to_subject).expect("the subject reads");
        }
        let o = ready(
            device
                .send(rng, now, &peer_account, b"steady")
                .expect("send"),
        );
        for (to, e) in &o.envelopes {
            let d = peer
                .iter_mut()
                .find(|d| d.address() == *to)
                .expect("a peer");
            d.receive(now, e).expect("the peer reads");
        }

        let template = device.sessions.values().next().expect("a session").clone();
        let mut accounts = alloc::vec![peer_account];
        for _ in 1..(sessions / DEVICES_PER_ACCOUNT).max(1) {
            let (key, _, list) = account(rng, now, &config);
            device.lists.insert(key, Followed::new(list));
            for i in 0..DEVICES_PER_ACCOUNT {
                let address = DeviceAddress {
                    account: key,
                    device: DeviceId(i as u32 + 1),
                };
                device
                    .sessions
                    .insert(address, SessionSet::clone(&template));
            }
            accounts.push(key);
        }
        let mut made = Vec::with_capacity(groups);
        for g in 0..groups {
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&(g as u64).to_be_bytes());
            let group = GroupId(id);
            let members: Vec<_> = accounts.iter().cycle().skip(g).take(20).copied().collect();
            device
                .set_group_members(group, &members)
                .expect("within MAX_GROUP_MEMBERS");
            made.push(group);
        }
        device.dirty.all = true;
        let records = device
            .take_changes(rng)
            .into_records()
            .into_iter()
            .map(|r| (r.key().to_vec(), r.value().unwrap_or_default().to_vec()))
            .collect();
        Self {
            device,
            peer,
            peer_account,
            accounts,
            groups: made,
            records,
        }
    }

    /// Loads the subject again from its records.
    pub fn load(&self) -> Device {
        Device::from_records(
            self.records
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_slice())),
        )
        .expect("the records load")
    }
}
