//! The account's policy, signed into its device list (PROTOCOL.md 15.1-15.2, 19.2, 23): every
//! verifier holds an account to the companion cap and validity its primary signed, under the
//! verifier's own ceiling; the policy cannot be tampered with or stripped; lists and state of
//! the previous release still load.

use ratchetry::devices::{
    AccountKeyPair, AccountPolicy, DEFAULT_COMPANION_CEILING, DeviceId, LinkRequest, ListLimits,
    PRIMARY_DEVICE, Primary, PrimaryPolicy, SignedDeviceList, VerifiedDeviceList, complete_link,
};
use ratchetry::fanout::{Device, DeviceConfig};
use ratchetry::relay::Relay;
use ratchetry::testing::SeededRng;
use ratchetry::testing::hooks::{
    ListEntry, device_binding, legacy_device_list, legacy_primary_state, sign_device_list_under,
    sign_legacy_device_list,
};
use ratchetry::{DecodeError, DeviceError, Error, IdentityKeyPair, Timestamp};

const DAY: u64 = 24 * 60 * 60 * 1000;
const T0: Timestamp = Timestamp(1_790_000_000_000);
/// Body offsets of a list of the current form: max_companions, then companion_validity_ms.
const MAX_COMPANIONS_AT: usize = 50;
const VALIDITY_AT: usize = 54;

fn policy_allowing(max_companions: u32) -> PrimaryPolicy {
    let mut policy = PrimaryPolicy::default();
    policy.account.max_companions = max_companions;
    policy
}

/// A primary under `policy` with `companions` linked companions, and their identities.
fn account(
    rng: &mut SeededRng,
    policy: PrimaryPolicy,
    companions: usize,
) -> (Primary, IdentityKeyPair, Vec<IdentityKeyPair>) {
    let phone = IdentityKeyPair::generate(rng);
    let mut primary = Primary::new(rng, &phone, T0, policy);
    let mut linked = Vec::new();
    for _ in 0..companions {
        let id = IdentityKeyPair::generate(rng);
        let invitation = primary.invite(rng, T0).unwrap();
        primary
            .approve(T0, &LinkRequest::new(&id, &invitation))
            .unwrap();
        linked.push(id);
    }
    (primary, phone, linked)
}

fn verify(list: &SignedDeviceList, limits: ListLimits) -> Result<VerifiedDeviceList, DeviceError> {
    list.clone().verify(&list.account(), None, &limits)
}

fn signed(primary: &Primary) -> SignedDeviceList {
    SignedDeviceList::from_bytes(&primary.device_list().to_bytes()).unwrap()
}

/// Entries for a hand-signed list: the phone, then one companion per identity, each expiring
/// at `expires_at`.
fn entries(
    account: &AccountKeyPair,
    phone: &IdentityKeyPair,
    companions: &[IdentityKeyPair],
    expires_at: Timestamp,
) -> Vec<ListEntry> {
    let mut out = vec![(
        PRIMARY_DEVICE,
        phone.public(),
        T0,
        None,
        device_binding(phone, &account.public()),
    )];
    for (i, c) in companions.iter().enumerate() {
        out.push((
            DeviceId(i as u32 + 2),
            c.public(),
            T0,
            Some(expires_at),
            device_binding(c, &account.public()),
        ));
    }
    out
}

fn identities(rng: &mut SeededRng, n: usize) -> Vec<IdentityKeyPair> {
    (0..n).map(|_| IdentityKeyPair::generate(rng)).collect()
}

/// An account whose primary allows 5 companions, with 5 linked, is accepted by a device, a
/// companion completing its link and a relay that all run the default settings: the cap is
/// the account's, read from its list, not the verifier's.
#[test]
fn a_five_companion_account_verifies_at_default_verifiers() {
    let rng = &mut SeededRng::from_label("policy: five companions");
    let (mut primary, _, _) = account(rng, policy_allowing(5), 4);
    // The fifth companion links with the default limits.
    let laptop = IdentityKeyPair::generate(rng);
    let invitation = primary.invite(rng, T0).unwrap();
    let approval = primary
        .approve(T0, &LinkRequest::new(&laptop, &invitation))
        .unwrap();
    let (list, _) = complete_link(&laptop, &invitation, &approval, &ListLimits::default()).unwrap();
    assert_eq!(list.entries().len(), 6);
    assert_eq!(
        list.policy(),
        Some(AccountPolicy {
            max_companions: 5,
            ..AccountPolicy::default()
        })
    );
    // A relay and another account's device with default settings accept it too.
    let mut relay = Relay::new(ListLimits::default());
    relay.publish_list(signed(&primary)).unwrap();
    let (other, other_phone, _) = account(rng, PrimaryPolicy::default(), 0);
    let (mut device, _) = Device::new(
        rng,
        T0,
        other_phone,
        PRIMARY_DEVICE,
        other.device_list().clone(),
        1,
        DeviceConfig::default(),
    )
    .unwrap();
    device
        .update_device_list(T0, &primary.account(), signed(&primary))
        .unwrap();
    assert_eq!(
        device
            .device_list(&primary.account())
            .unwrap()
            .entries()
            .len(),
        6
    );
}

/// A list naming more companions than its own signed policy allows is refused, even far below
/// the verifier's ceiling; exactly as many as it allows verifies.
#[test]
fn a_list_with_more_companions_than_its_own_policy_is_refused() {
    let rng = &mut SeededRng::from_label("policy: own cap");
    let account = AccountKeyPair::generate(rng);
    let phone = IdentityKeyPair::generate(rng);
    let companions = identities(rng, 3);
    let expiry = T0.plus_millis(DAY);
    let policy = |max_companions| AccountPolicy {
        max_companions,
        ..AccountPolicy::default()
    };
    let listed = entries(&account, &phone, &companions, expiry);
    let over = sign_device_list_under(&account, 1, T0, policy(2), &listed);
    assert_eq!(
        verify(&over, ListLimits::default()).err(),
        Some(DeviceError::TooManyCompanions)
    );
    let exact = sign_device_list_under(&account, 1, T0, policy(3), &listed);
    assert!(verify(&exact, ListLimits::default()).is_ok());
}

/// An account whose signed policy allows more companions than the verifier's ceiling is
/// refused, however few companions it lists; a policy exactly at the ceiling verifies.
#[test]
fn a_policy_above_the_verifiers_ceiling_is_refused() {
    let rng = &mut SeededRng::from_label("policy: ceiling");
    let (primary, _, _) = account(rng, policy_allowing(5), 1);
    let list = signed(&primary);
    assert_eq!(
        verify(&list, ListLimits { max_companions: 4 }).err(),
        Some(DeviceError::PolicyAboveCeiling {
            allowed: 5,
            ceiling: 4
        })
    );
    assert!(verify(&list, ListLimits { max_companions: 5 }).is_ok());
    // The default ceiling admits any policy up to it, and no further.
    let (at_ceiling, _, _) = account(rng, policy_allowing(DEFAULT_COMPANION_CEILING), 0);
    assert!(verify(&signed(&at_ceiling), ListLimits::default()).is_ok());
    let (above, _, _) = account(rng, policy_allowing(DEFAULT_COMPANION_CEILING + 1), 0);
    assert_eq!(
        verify(&signed(&above), ListLimits::default()).err(),
        Some(DeviceError::PolicyAboveCeiling {
            allowed: DEFAULT_COMPANION_CEILING + 1,
            ceiling: DEFAULT_COMPANION_CEILING
        })
    );
    // A device with the default config refuses it without changing.
    let (other, phone, _) = account(rng, PrimaryPolicy::default(), 0);
    let (mut device, _) = Device::new(
        rng,
        T0,
        phone,
        PRIMARY_DEVICE,
        other.device_list().clone(),
        1,
        DeviceConfig::default(),
    )
    .unwrap();
    assert!(!device.take_changes(rng).is_empty());
    let r = device.update_device_list(T0, &above.account(), signed(&above));
    assert!(matches!(
        r,
        Err(Error::Device(DeviceError::PolicyAboveCeiling { .. }))
    ));
    assert!(!device.has_changes());
}

/// The server changes the policy a list carries (raising the cap, lengthening the validity):
/// the account signature covers it, so the list is refused.
#[test]
fn a_tampered_policy_breaks_the_signature() {
    let rng = &mut SeededRng::from_label("policy: tampered");
    let (primary, _, _) = account(rng, PrimaryPolicy::default(), 1);
    let bytes = primary.device_list().to_bytes();
    assert_eq!(bytes[..2], [3, 6]);
    for at in [MAX_COMPANIONS_AT + 3, VALIDITY_AT + 2] {
        let mut tampered = bytes.clone();
        tampered[at] ^= 0x01;
        let list = SignedDeviceList::from_bytes(&tampered).unwrap();
        assert_eq!(
            verify(&list, ListLimits::default()).err(),
            Some(DeviceError::BadSignature),
            "byte {at}"
        );
    }
}

/// A companion whose expiry lies beyond the issue time plus the account's signed validity is
/// refused: the list contradicts its own policy. An expiry exactly at that bound verifies.
#[test]
fn a_companion_outliving_the_signed_validity_is_refused() {
    let rng = &mut SeededRng::from_label("policy: validity");
    let account = AccountKeyPair::generate(rng);
    let phone = IdentityKeyPair::generate(rng);
    let companions = identities(rng, 1);
    let policy = AccountPolicy::default();
    let bound = T0.plus_millis(policy.companion_validity_ms);
    let sign = |expires_at: Timestamp| {
        sign_device_list_under(
            &account,
            1,
            T0,
            policy,
            &entries(&account, &phone, &companions, expires_at),
        )
    };
    assert_eq!(
        verify(&sign(bound.plus_millis(1)), ListLimits::default()).err(),
        Some(DeviceError::InvalidList)
    );
    assert!(verify(&sign(bound), ListLimits::default()).is_ok());
}

/// A list of the old form (no policy) still verifies, under the verifier's ceiling alone.
#[test]
fn an_old_form_list_verifies_under_the_ceiling() {
    let rng = &mut SeededRng::from_label("policy: old form");
    let account = AccountKeyPair::generate(rng);
    let phone = IdentityKeyPair::generate(rng);
    let companions = identities(rng, 5);
    let expiry = T0.plus_millis(400 * DAY);
    let listed = entries(&account, &phone, &companions, expiry);
    let old = sign_legacy_device_list(&account, 1, T0, &listed);
    let bytes = old.to_bytes();
    assert_eq!(bytes[..2], [2, 6]);
    assert_eq!(SignedDeviceList::from_bytes(&bytes).unwrap(), old);
    let verified = verify(&old, ListLimits::default()).unwrap();
    assert_eq!(verified.policy(), None);
    assert_eq!(verified.to_bytes(), bytes);
    assert!(verify(&old, ListLimits { max_companions: 5 }).is_ok());
    assert_eq!(
        verify(&old, ListLimits { max_companions: 4 }).err(),
        Some(DeviceError::TooManyCompanions)
    );
}

/// The downgrade: the account has published a list with its policy; the server then serves an
/// old-form list the account signed later (a primary still running the previous release), to
/// lift the account's own cap to the verifier's ceiling. A device and a relay that hold the
/// policy-carrying list refuse it, and change nothing. An old-form list followed by newer
/// lists of either form is accepted (the upgrade path).
#[test]
fn an_old_form_list_after_one_with_a_policy_is_refused() {
    let rng = &mut SeededRng::from_label("policy: downgrade");
    let account = AccountKeyPair::generate(rng);
    let phone = IdentityKeyPair::generate(rng);
    let companions = identities(rng, 3);
    let expiry = T0.plus_millis(DAY);
    let listed = entries(&account, &phone, &companions, expiry);
    let own_cap = AccountPolicy {
        max_companions: 3,
        ..AccountPolicy::default()
    };
    let old_1 = sign_legacy_device_list(&account, 1, T0, &listed[..2]);
    let old_2 = sign_legacy_device_list(&account, 2, T0, &listed[..3]);
    let new_3 = sign_device_list_under(&account, 3, T0, own_cap, &listed);
    let old_4 = sign_legacy_device_list(&account, 4, T0, &listed);
    let ak = account.public();
    let limits = ListLimits::default();

    // The upgrade path: old, older-form newer, then the policy.
    let held = old_1.verify(&ak, None, &limits).unwrap();
    let held = old_2.verify(&ak, Some(&held), &limits).unwrap();
    let held = new_3.clone().verify(&ak, Some(&held), &limits).unwrap();
    // Then no old form, whatever its version.
    assert_eq!(
        old_4.clone().verify(&ak, Some(&held), &limits).err(),
        Some(DeviceError::PolicyDowngrade)
    );
    // Without a list held, the same bytes verify: the rule is the held list's policy.
    assert!(old_4.clone().verify(&ak, None, &limits).is_ok());

    // A relay holding the list with the policy refuses the old form.
    let mut relay = Relay::new(limits);
    relay.publish_list(new_3.clone()).unwrap();
    assert_eq!(
        relay.publish_list(old_4.clone()).err(),
        Some(Error::Device(DeviceError::PolicyDowngrade))
    );

    // So does a device, unchanged.
    let (other, other_phone, _) = account_of(rng);
    let (mut device, _) = Device::new(
        rng,
        T0,
        other_phone,
        PRIMARY_DEVICE,
        other.device_list().clone(),
        1,
        DeviceConfig::default(),
    )
    .unwrap();
    device.update_device_list(T0, &ak, new_3).unwrap();
    assert!(!device.take_changes(rng).is_empty());
    let before = device.to_bytes();
    assert_eq!(
        device.update_device_list(T0, &ak, old_4).err(),
        Some(Error::Device(DeviceError::PolicyDowngrade))
    );
    assert_eq!(*before, *device.to_bytes());
    assert!(!device.has_changes());
}

fn account_of(rng: &mut SeededRng) -> (Primary, IdentityKeyPair, Vec<IdentityKeyPair>) {
    account(rng, PrimaryPolicy::default(), 0)
}

/// A primary's state written by the previous release holds an old-form list: it loads, keeps
/// that list as it is, and signs its policy into its next list. State whose list carries
/// another policy than the primary's is refused.
#[test]
fn a_primary_of_the_previous_release_loads_and_signs_its_policy_next() {
    let rng = &mut SeededRng::from_label("policy: stored primary");
    let (primary, _, _) = account(rng, policy_allowing(5), 2);
    let old_state = legacy_primary_state(&primary);
    let mut loaded = Primary::from_bytes(&old_state).unwrap();
    assert_eq!(loaded.device_list().policy(), None);
    assert_eq!(*loaded.to_bytes(), *old_state);
    let old_list = loaded.device_list().clone();
    let renewed = loaded.renew(T0.plus_millis(DAY)).unwrap().clone();
    assert_eq!(renewed.policy(), Some(policy_allowing(5).account));
    // Verifiers move from the old list to the renewed one.
    let verified = renewed
        .signed()
        .clone()
        .verify(&loaded.account(), Some(&old_list), &ListLimits::default())
        .unwrap();
    assert_eq!(verified.version(), old_list.version() + 1);

    // The same state under another policy than the one its list carries.
    let mut other = Primary::from_bytes(&primary.to_bytes()).unwrap().to_bytes();
    other[2 + 32 + 3] ^= 0x01; // max_companions 5 -> 4
    assert_eq!(
        Primary::from_bytes(&other).err(),
        Some(DecodeError::InvalidValue)
    );
    // While an old-form list is allowed under any policy the state holds.
    let mut old_other = old_state.clone();
    old_other[2 + 32 + 3] ^= 0x01;
    assert!(Primary::from_bytes(&old_other).is_ok());
}

/// A device's records written by the previous release: its own record in the old layout and
/// its account's list in the old form. It loads; its old cap of 4 becomes the default ceiling
/// (so a 5-companion account verifies), the own record is rewritten in the new layout, and
/// once the account publishes a list with its policy, the old form is refused.
#[test]
fn a_device_of_the_previous_release_loads_and_then_refuses_the_old_form() {
    let rng = &mut SeededRng::from_label("policy: stored device");
    let (mut primary, phone, _) = account(rng, PrimaryPolicy::default(), 0);
    let (mut device, _) = Device::new(
        rng,
        T0,
        phone,
        PRIMARY_DEVICE,
        primary.device_list().clone(),
        1,
        DeviceConfig::default(),
    )
    .unwrap();
    let records: Vec<(Vec<u8>, Vec<u8>)> = device
        .take_changes(rng)
        .into_records()
        .into_iter()
        .map(|r| (r.key().to_vec(), r.value().unwrap().to_vec()))
        .collect();
    let ak = primary.account();
    let own_list_key = [&[0x07][..], &ak.to_bytes()].concat();
    let old_list = legacy_device_list(&primary).to_bytes();
    let old: Vec<(Vec<u8>, Vec<u8>)> = records
        .into_iter()
        .map(|(k, v)| match k.as_slice() {
            [0x01] => {
                // 19.2 before: u32(max_companions = 4) ‖ u64(validity) ‖ u64(invitations).
                assert_eq!(v.len(), 120);
                assert_eq!(v[20..24], DEFAULT_COMPANION_CEILING.to_be_bytes());
                let mut o = v[..20].to_vec();
                o.extend_from_slice(&4u32.to_be_bytes());
                o.extend_from_slice(&(14 * DAY).to_be_bytes());
                o.extend_from_slice(&(10 * 60 * 1000u64).to_be_bytes());
                o.extend_from_slice(&v[24..]);
                (k, o)
            }
            _ if k == own_list_key => {
                let mut o = (old_list.len() as u32).to_be_bytes().to_vec();
                o.extend_from_slice(&old_list);
                o.extend_from_slice(&0u32.to_be_bytes());
                (k, o)
            }
            _ => (k, v),
        })
        .collect();
    let mut loaded = Device::from_records(old.iter().map(|(k, v)| (&k[..], &v[..]))).unwrap();
    assert_eq!(loaded.device_list(&ak).unwrap().policy(), None);
    // The own record is rewritten in the new layout, with the default ceiling.
    let unit = loaded.take_changes(rng);
    let own = unit.records().iter().find(|r| r.key() == [0x01]).unwrap();
    assert_eq!(own.value().unwrap().len(), 120);
    assert_eq!(
        own.value().unwrap()[20..24],
        DEFAULT_COMPANION_CEILING.to_be_bytes()
    );
    // A 5-companion account verifies at the migrated device (an old cap of 4 would refuse it).
    let (five, _, _) = account(rng, policy_allowing(5), 5);
    loaded
        .update_device_list(T0, &five.account(), signed(&five))
        .unwrap();
    // The own account moves to the policy; then the old form is refused.
    primary.renew(T0.plus_millis(DAY)).unwrap();
    loaded
        .update_device_list(T0.plus_millis(DAY), &ak, signed(&primary))
        .unwrap();
    primary.renew(T0.plus_millis(2 * DAY)).unwrap();
    assert_eq!(
        loaded
            .update_device_list(T0.plus_millis(2 * DAY), &ak, legacy_device_list(&primary))
            .err(),
        Some(Error::Device(DeviceError::PolicyDowngrade))
    );
}

/// An own record of the previous layout keeps a cap above the default ceiling as its ceiling.
#[test]
fn a_previous_cap_above_the_default_ceiling_is_kept() {
    let rng = &mut SeededRng::from_label("policy: previous cap");
    let (primary, phone, _) = account(rng, PrimaryPolicy::default(), 0);
    let (mut device, _) = Device::new(
        rng,
        T0,
        phone,
        PRIMARY_DEVICE,
        primary.device_list().clone(),
        1,
        DeviceConfig::default(),
    )
    .unwrap();
    let old: Vec<(Vec<u8>, Vec<u8>)> = device
        .take_changes(rng)
        .into_records()
        .into_iter()
        .map(|r| {
            let (k, v) = (r.key().to_vec(), r.value().unwrap().to_vec());
            if k != [0x01] {
                return (k, v);
            }
            let mut o = v[..20].to_vec();
            o.extend_from_slice(&20u32.to_be_bytes());
            o.extend_from_slice(&[0; 16]);
            o.extend_from_slice(&v[24..]);
            (k, o)
        })
        .collect();
    let mut loaded = Device::from_records(old.iter().map(|(k, v)| (&k[..], &v[..]))).unwrap();
    let (twenty, _, _) = account(rng, policy_allowing(20), 0);
    loaded
        .update_device_list(T0, &twenty.account(), signed(&twenty))
        .unwrap();
    let unit = loaded.take_changes(rng);
    let own = unit.records().iter().find(|r| r.key() == [0x01]).unwrap();
    assert_eq!(own.value().unwrap()[20..24], 20u32.to_be_bytes());
}
