//! Accounts, signed device lists, linking and safety numbers.

use ratchetry::devices::{
    AccountKeyPair, AccountPolicy, DeviceAddress, DeviceId, LinkApproval, LinkConfirmation,
    LinkInvitation, LinkRequest, ListLimits, PRIMARY_DEVICE, Primary, PrimaryPolicy,
    RESTORE_DEVICE_ID_SKIP, RESTORE_DEVICE_ID_SPREAD, RESTORE_VERSION_CLOCK_CAP_MS,
    RESTORE_VERSION_PER_MS, RESTORE_VERSION_SKIP, SafetyNumber, SignedDeviceList, complete_link,
};
use ratchetry::testing::SeededRng;
use ratchetry::testing::hooks::{device_binding, sign_device_list};
use ratchetry::{DecodeError, DeviceError, IdentityKeyPair, Signature, Timestamp};

const DAY: u64 = 24 * 60 * 60 * 1000;
const T0: Timestamp = Timestamp(1_790_000_000_000);

fn at(days: u64) -> Timestamp {
    T0.plus_millis(days * DAY)
}

fn new_account(rng: &mut SeededRng) -> Primary {
    let phone = IdentityKeyPair::generate(rng);
    Primary::new(rng, &phone, T0, PrimaryPolicy::default())
}

fn link(rng: &mut SeededRng, primary: &mut Primary, now: Timestamp) -> (IdentityKeyPair, DeviceId) {
    let companion = IdentityKeyPair::generate(rng);
    let invitation =
        LinkInvitation::from_bytes(&primary.invite(rng, now).unwrap().to_bytes()).unwrap();
    let request =
        LinkRequest::from_bytes(&LinkRequest::new(&companion, &invitation).to_bytes()).unwrap();
    let approval = primary.approve(now, &request).unwrap();
    let approval = LinkApproval::from_bytes(&approval.to_bytes()).unwrap();
    let (list, confirmation) =
        complete_link(&companion, &invitation, &approval, &ListLimits::default()).unwrap();
    assert_eq!(list.version(), primary.device_list().version());
    let confirmation = LinkConfirmation::from_bytes(&confirmation.to_bytes()).unwrap();
    assert_eq!(primary.confirm(&confirmation).unwrap(), approval.device);
    assert!(primary.is_confirmed(approval.device));
    (companion, approval.device)
}

#[test]
fn linking_a_companion_end_to_end() {
    let rng = &mut SeededRng::from_label("link");
    let phone = IdentityKeyPair::generate(rng);
    let mut primary = Primary::new(rng, &phone, T0, PrimaryPolicy::default());
    assert_eq!(primary.device_list().version(), 1);
    let (laptop, id) = link(rng, &mut primary, T0);
    assert_eq!(id, DeviceId(2));
    let list = primary.device_list();
    assert_eq!(list.version(), 2);
    let entry = list.check(id, at(1)).unwrap();
    assert_eq!(entry.identity, laptop.public());
    assert_eq!(entry.expires_at, Some(at(14)));
    // A receiver verifies the published list against the account key it trusts.
    let published = SignedDeviceList::from_bytes(&list.to_bytes()).unwrap();
    let verified = published
        .verify(&primary.account(), None, &ListLimits::default())
        .unwrap();
    assert_eq!(verified.active(at(1)).count(), 2);
}

#[test]
fn replayed_tampered_and_misdirected_requests_fail() {
    let rng = &mut SeededRng::from_label("link attacks");
    let phone = IdentityKeyPair::generate(rng);
    let mut primary = Primary::new(rng, &phone, T0, PrimaryPolicy::default());
    let other = new_account(rng);
    let companion = IdentityKeyPair::generate(rng);
    let invitation = primary.invite(rng, T0).unwrap();
    let request = LinkRequest::new(&companion, &invitation);

    // Aimed at another account.
    let mut redirected = invitation.to_bytes();
    redirected[2..34].copy_from_slice(&other.account().to_bytes());
    let foreign = LinkRequest::new(
        &companion,
        &LinkInvitation::from_bytes(&redirected).unwrap(),
    );
    assert_eq!(
        primary.approve(T0, &foreign).err(),
        Some(DeviceError::WrongAccount)
    );
    // Tampered: another identity key spliced in (the proof binds the key), or the signature.
    let mut bytes = request.to_bytes();
    let intruder = IdentityKeyPair::generate(rng).public().to_bytes();
    bytes[34..66].copy_from_slice(&intruder);
    let tampered = LinkRequest::from_bytes(&bytes).unwrap();
    assert_eq!(
        primary.approve(T0, &tampered).err(),
        Some(DeviceError::UnknownInvitation)
    );
    let mut bytes = request.to_bytes();
    *bytes.last_mut().unwrap() ^= 1;
    let tampered = LinkRequest::from_bytes(&bytes).unwrap();
    assert_eq!(
        primary.approve(T0, &tampered).err(),
        Some(DeviceError::BadSignature)
    );
    // Expired invitation.
    assert_eq!(
        primary.approve(at(1), &request).err(),
        Some(DeviceError::UnknownInvitation)
    );
    let before = primary.to_bytes();
    // Genuine, then replayed.
    primary.approve(T0, &request).unwrap();
    assert_ne!(*before, *primary.to_bytes());
    let after = primary.to_bytes();
    assert_eq!(
        primary.approve(T0, &request).err(),
        Some(DeviceError::UnknownInvitation)
    );
    assert_eq!(*after, *primary.to_bytes());
}

#[test]
fn companion_cap_is_policy() {
    let rng = &mut SeededRng::from_label("cap");
    let phone = IdentityKeyPair::generate(rng);
    let policy = PrimaryPolicy {
        account: AccountPolicy {
            max_companions: 2,
            ..AccountPolicy::default()
        },
        ..PrimaryPolicy::default()
    };
    let mut primary = Primary::new(rng, &phone, T0, policy);
    for _ in 0..2 {
        let c = IdentityKeyPair::generate(rng);
        let inv = primary.invite(rng, T0).unwrap();
        primary.approve(T0, &LinkRequest::new(&c, &inv)).unwrap();
    }
    let c = IdentityKeyPair::generate(rng);
    let inv = primary.invite(rng, T0).unwrap();
    assert_eq!(
        primary.approve(T0, &LinkRequest::new(&c, &inv)).err(),
        Some(DeviceError::TooManyCompanions)
    );
    // A receiver whose ceiling is below the account's signed policy refuses the list itself.
    let strict = ListLimits { max_companions: 1 };
    let list = SignedDeviceList::from_bytes(&primary.device_list().to_bytes()).unwrap();
    assert_eq!(
        list.clone().verify(&primary.account(), None, &strict).err(),
        Some(DeviceError::PolicyAboveCeiling {
            allowed: 2,
            ceiling: 1
        })
    );
    // Exactly at the cap is allowed.
    let exact = ListLimits { max_companions: 2 };
    assert!(list.verify(&primary.account(), None, &exact).is_ok());
}

#[test]
fn list_verification_refuses_rollback_equivocation_and_wrong_signer() {
    let rng = &mut SeededRng::from_label("rollback");
    let phone = IdentityKeyPair::generate(rng);
    let policy = ListLimits::default();
    let mut primary = Primary::new(rng, &phone, T0, PrimaryPolicy::default());
    let v1 = SignedDeviceList::from_bytes(&primary.device_list().to_bytes()).unwrap();
    let (_, _) = link(rng, &mut primary, T0);
    let v2 = SignedDeviceList::from_bytes(&primary.device_list().to_bytes()).unwrap();
    let known = v2
        .clone()
        .verify(&primary.account(), None, &policy)
        .unwrap();
    assert_eq!(
        v1.clone()
            .verify(&primary.account(), Some(&known), &policy)
            .err(),
        Some(DeviceError::Rollback {
            known: 2,
            received: 1
        })
    );
    assert_eq!(
        v2.clone().verify(&primary.account(), Some(&known), &policy),
        Ok(known.clone())
    );
    let impostor = Primary::new(rng, &phone, T0, PrimaryPolicy::default());
    let forged = SignedDeviceList::from_bytes(&impostor.device_list().to_bytes()).unwrap();
    assert_eq!(
        forged.verify(&primary.account(), None, &policy).err(),
        Some(DeviceError::WrongAccount)
    );
    // A flipped bit in the body breaks the signature.
    let mut bytes = primary.device_list().to_bytes();
    bytes[45] ^= 1; // issued_at
    let bad = SignedDeviceList::from_bytes(&bytes).unwrap();
    assert_eq!(
        bad.verify(&primary.account(), None, &policy).err(),
        Some(DeviceError::BadSignature)
    );
    // Same version, other content: equivocation (signed by the real account key, e.g. by a
    // restored stale primary).
    let mut fork = Primary::from_bytes(&primary.to_bytes()).unwrap();
    fork.renew(at(1)).unwrap();
    let mut ahead = Primary::from_bytes(&primary.to_bytes()).unwrap();
    ahead.renew(at(2)).unwrap();
    let known3 = SignedDeviceList::from_bytes(&fork.device_list().to_bytes())
        .unwrap()
        .verify(&primary.account(), Some(&known), &policy)
        .unwrap();
    let other3 = SignedDeviceList::from_bytes(&ahead.device_list().to_bytes()).unwrap();
    assert_eq!(
        other3
            .verify(&primary.account(), Some(&known3), &policy)
            .err(),
        Some(DeviceError::Equivocation)
    );
    // Duplicate ids cannot even be encoded in order.
    let mut dup = primary.device_list().to_bytes();
    let entries_at = 2 + 32 + 8 + 8 + 12 + 4;
    dup[entries_at..entries_at + 4].copy_from_slice(&2u32.to_be_bytes());
    assert!(SignedDeviceList::from_bytes(&dup).is_err());
}

#[test]
fn companions_expire_unless_renewed_and_can_be_unlinked() {
    let rng = &mut SeededRng::from_label("expiry");
    let phone = IdentityKeyPair::generate(rng);
    let mut primary = Primary::new(rng, &phone, T0, PrimaryPolicy::default());
    let (_, laptop) = link(rng, &mut primary, T0);
    let (_, tablet) = link(rng, &mut primary, T0);
    let list = primary.device_list().clone();
    assert!(list.check(laptop, at(13)).is_ok());
    let account = primary.account();
    let address = |device| DeviceAddress { account, device };
    assert_eq!(
        list.check(laptop, at(14)).err(),
        Some(DeviceError::CompanionExpired(address(laptop)))
    );
    assert!(list.check(DeviceId(1), at(400)).is_ok());
    // Renewed on day 10: valid until day 24.
    primary.renew(at(10)).unwrap();
    assert!(primary.device_list().check(laptop, at(20)).is_ok());
    // Unlinked: gone from the next list.
    primary.unlink(at(11), tablet).unwrap();
    assert_eq!(
        primary.device_list().check(tablet, at(11)).err(),
        Some(DeviceError::NotInList(address(tablet)))
    );
    assert_eq!(
        primary.unlink(at(11), DeviceId(1)).err(),
        Some(DeviceError::NotPrimary)
    );
    // The primary away for a month: renewing drops the expired laptop.
    primary.renew(at(40)).unwrap();
    assert_eq!(primary.device_list().entries().len(), 1);
}

#[test]
fn safety_numbers_are_symmetric_and_stable_under_device_changes() {
    let rng = &mut SeededRng::from_label("safety");
    let mut alice = new_account(rng);
    let bob = new_account(rng);
    let ab = SafetyNumber::new(&alice.account(), &bob.account());
    let ba = SafetyNumber::new(&bob.account(), &alice.account());
    assert_eq!(ab, ba);
    assert_eq!(ab.digits().len(), 60);
    assert!(ab.digits().iter().all(u8::is_ascii_digit));
    assert!(ba.matches_scanned(&ab.scannable()));
    let (_, _) = link(rng, &mut alice, T0);
    assert_eq!(SafetyNumber::new(&alice.account(), &bob.account()), ab);
    let mallory = new_account(rng);
    let am = SafetyNumber::new(&alice.account(), &mallory.account());
    assert_ne!(am, ab);
    assert!(!am.matches_scanned(&ab.scannable()));
    assert_eq!(format!("{ab}").lines().count(), 3);
}

#[test]
fn primary_state_round_trips() {
    let rng = &mut SeededRng::from_label("primary state");
    let phone = IdentityKeyPair::generate(rng);
    let mut primary = Primary::new(rng, &phone, T0, PrimaryPolicy::default());
    link(rng, &mut primary, T0);
    primary.invite(rng, T0).unwrap();
    let bytes = primary.to_bytes();
    let restored = Primary::from_bytes(&bytes).unwrap();
    assert_eq!(*restored.to_bytes(), *bytes);
    for len in 0..bytes.len() {
        assert!(Primary::from_bytes(&bytes[..len]).is_err());
    }
    assert!(!format!("{primary:?}").contains(&hex::encode(&bytes[2..34])));
}

#[test]
fn rogue_account_cannot_list_another_persons_device_as_its_primary() {
    let rng = &mut SeededRng::from_label("rogue primary");
    let policy = ListLimits::default();
    let victim = IdentityKeyPair::generate(rng);
    let victim_account = Primary::new(rng, &victim, T0, PrimaryPolicy::default());
    let rogue = AccountKeyPair::generate(rng);
    // The rogue copies the victim's genuine binding (it is public, in the victim's list), but
    // that binding consents to the victim's account, not the rogue's.
    let victim_binding = victim_account.device_list().entries()[0];
    for binding in [
        Signature::from_bytes([0; 64]),
        device_binding(&victim, &victim_account.account()),
    ] {
        let list = sign_device_list(
            &rogue,
            1,
            T0,
            &[(PRIMARY_DEVICE, victim.public(), T0, None, binding)],
        );
        assert_eq!(
            list.verify(&rogue.public(), None, &policy).err(),
            Some(DeviceError::BadBinding(1))
        );
    }
    assert_eq!(victim_binding.identity, victim.public());
    // With the device's own consent the same list verifies: the check is the binding.
    let consenting = sign_device_list(
        &rogue,
        1,
        T0,
        &[(
            PRIMARY_DEVICE,
            victim.public(),
            T0,
            None,
            device_binding(&victim, &rogue.public()),
        )],
    );
    assert!(consenting.verify(&rogue.public(), None, &policy).is_ok());
}

/// The first entry is the account's primary: device 1, which never expires. A list whose
/// first entry is a companion (another id, or an expiry) is malformed even when the account
/// key signed it and every device consented, so no companion can be presented as the primary.
#[test]
fn the_first_entry_is_a_primary_that_never_expires() {
    let rng = &mut SeededRng::from_label("primary entry");
    let policy = ListLimits::default();
    let account = AccountKeyPair::generate(rng);
    let phone = IdentityKeyPair::generate(rng);
    let binding = device_binding(&phone, &account.public());
    let list = |id: DeviceId, expires_at: Option<Timestamp>| {
        sign_device_list(
            &account,
            1,
            T0,
            &[(id, phone.public(), T0, expires_at, binding)],
        )
    };
    for (id, expires_at) in [(DeviceId(2), None), (PRIMARY_DEVICE, Some(at(30)))] {
        assert_eq!(
            list(id, expires_at)
                .verify(&account.public(), None, &policy)
                .err(),
            Some(DeviceError::InvalidList)
        );
    }
    assert!(
        list(PRIMARY_DEVICE, None)
            .verify(&account.public(), None, &policy)
            .is_ok()
    );
}

#[test]
fn unsigned_lists_raise_no_rollback_or_equivocation_alarm() {
    let rng = &mut SeededRng::from_label("unsigned alarms");
    let policy = ListLimits::default();
    let mut primary = new_account(rng);
    link(rng, &mut primary, T0);
    let known = primary.device_list().clone();
    let account = primary.account();
    let mut forks = Vec::new();
    for version in [1u64, 2] {
        // A list the account never signed, at a lower and at the held version.
        let mut bytes = known.to_bytes();
        bytes[34..42].copy_from_slice(&version.to_be_bytes());
        bytes[45] ^= 1;
        forks.push(SignedDeviceList::from_bytes(&bytes).unwrap());
    }
    for fork in forks {
        assert_eq!(
            fork.verify(&account, Some(&known), &policy).err(),
            Some(DeviceError::BadSignature)
        );
    }
}

#[test]
fn confirmation_must_countersign_the_list_that_admitted_the_device() {
    let rng = &mut SeededRng::from_label("confirm digest");
    let mut primary = new_account(rng);
    let companion = IdentityKeyPair::generate(rng);
    let invitation = primary.invite(rng, T0).unwrap();
    let approval = primary
        .approve(T0, &LinkRequest::new(&companion, &invitation))
        .unwrap();
    let (_, confirmation) =
        complete_link(&companion, &invitation, &approval, &ListLimits::default()).unwrap();
    let mut bytes = confirmation.to_bytes();
    bytes[2 + 32 + 4] ^= 1; // the digest
    let wrong = LinkConfirmation::from_bytes(&bytes).unwrap();
    assert_eq!(primary.confirm(&wrong).err(), Some(DeviceError::WrongList));
    assert!(!primary.is_confirmed(approval.device));
    assert_eq!(primary.confirm(&confirmation), Ok(approval.device));
}

#[test]
fn link_invitation_debug_does_not_print_its_nonce() {
    let rng = &mut SeededRng::from_label("invitation debug");
    let mut primary = new_account(rng);
    let invitation = primary.invite(rng, T0).unwrap();
    let nonce = hex::encode(&invitation.to_bytes()[34..50]);
    let shown = format!("{invitation:?}");
    assert!(!shown.contains(&nonce), "{shown}");
    assert!(shown.contains("redacted"));
}

/// A primary restored from a snapshot taken before it linked a laptop and renewed the list:
/// it must resync from the newest published list, then never signs a used version or gives a
/// used device id to another identity. Its first list lists the phone alone (the server chose
/// which list it saw), and the laptop links again under a fresh id.
#[test]
fn restored_primary_resyncs_and_never_reuses_a_version_or_device_id() {
    let rng = &mut SeededRng::from_label("primary restore");
    let policy = ListLimits::default();
    let phone = IdentityKeyPair::generate(rng);
    let mut primary = Primary::new(rng, &phone, T0, PrimaryPolicy::default());
    let snapshot = primary.to_bytes();
    let (laptop, laptop_id) = link(rng, &mut primary, T0);
    primary.renew(at(1)).unwrap();
    let published = primary.device_list().clone();
    let last_epoch = primary.state_epoch();
    // A contact follows the published list.
    let account = primary.account();

    // Without the epoch check the stale snapshot would re-sign version 2 for another device.
    let (mut restored, stale) = Primary::restore(&snapshot, last_epoch).unwrap();
    assert!(stale);
    assert!(restored.needs_resync());
    assert!(restored.state_epoch() > last_epoch);
    assert_eq!(
        restored.invite(rng, at(2)).err(),
        Some(DeviceError::ResyncRequired)
    );
    assert_eq!(
        restored.renew(at(2)).err(),
        Some(DeviceError::ResyncRequired)
    );
    assert_eq!(
        restored.unlink(at(2), laptop_id).err(),
        Some(DeviceError::ResyncRequired)
    );
    // An older list than the snapshot's, or another account's, is refused.
    let other = new_account(rng);
    assert_eq!(
        restored
            .resync(
                at(2),
                SignedDeviceList::from_bytes(&other.device_list().to_bytes()).unwrap()
            )
            .err(),
        Some(DeviceError::WrongAccount)
    );
    let epoch = restored.state_epoch();
    let after = restored
        .resync(
            at(2),
            SignedDeviceList::from_bytes(&published.to_bytes()).unwrap(),
        )
        .unwrap()
        .clone();
    assert!(!restored.needs_resync());
    assert!(restored.state_epoch() > epoch);
    // A version far past anything used, listing the phone alone; contacts take it as a plain
    // update (no equivocation) in which the laptop was removed.
    assert!(after.version() > published.version() + RESTORE_VERSION_SKIP - 1);
    assert_eq!(after.entries().len(), 1);
    assert_eq!(after.entries()[0].identity, phone.public());
    let newer = SignedDeviceList::from_bytes(&after.to_bytes())
        .unwrap()
        .verify(&account, Some(&published), &policy)
        .unwrap();
    assert!(newer.check(laptop_id, at(2)).is_err());

    // The laptop links again, under an id never used before.
    let invitation = restored.invite(rng, at(2)).unwrap();
    let approval = restored
        .approve(at(2), &LinkRequest::new(&laptop, &invitation))
        .unwrap();
    assert!(approval.device.0 >= laptop_id.0 + RESTORE_DEVICE_ID_SKIP);
    restored.renew(at(3)).unwrap();
    assert_eq!(
        restored
            .device_list()
            .check(approval.device, at(3))
            .unwrap()
            .identity,
        laptop.public()
    );

    // A snapshot that is not stale restores as it was.
    let current = restored.to_bytes();
    let (again, stale) = Primary::restore(&current, restored.state_epoch()).unwrap();
    assert!(!stale);
    assert!(!again.needs_resync());
}

/// Where a resync's numbering resumes (PROTOCOL.md 15.3): the next version is the larger of
/// the list's plus `1 + 2^32` and the restore's time in milliseconds (at most 2^42) times
/// 2^10, so below 2^53 whatever the clock; the next
/// device id skips `2^16` past the highest listed plus a spread drawn from the restore's
/// time. So two restores from one backup, shown the same list at different times, number
/// apart (review 46).
#[test]
fn a_resync_resumes_past_the_constant_skips_and_the_restore_time() {
    use sha2::{Digest, Sha256};
    let rng = &mut SeededRng::from_label("primary resync numbering");
    let phone = IdentityKeyPair::generate(rng);
    let early = Timestamp(5_000);
    let mut primary = Primary::new(rng, &phone, early, PrimaryPolicy::default());
    let (_, laptop_id) = link(rng, &mut primary, early);
    let backup = primary.to_bytes();
    let list = primary.device_list().signed().clone();
    let spread = |now: Timestamp| {
        let digest = Sha256::new()
            .chain_update(b"ratchetry v1 restore spread")
            .chain_update(now.as_millis().to_be_bytes())
            .finalize();
        u32::from_be_bytes(digest[4..8].try_into().unwrap()) % RESTORE_DEVICE_ID_SPREAD
    };
    for now in [
        Timestamp(6_000),
        Timestamp(7_000),
        T0,
        at(1),
        Timestamp(1 << 50),
    ] {
        let mut restored = Primary::restore_from_backup(&backup).unwrap();
        let version = restored.resync(now, list.clone()).unwrap().version();
        let floor = now.as_millis().min(RESTORE_VERSION_CLOCK_CAP_MS) * RESTORE_VERSION_PER_MS;
        assert_eq!(
            version,
            (list.version() + 1 + RESTORE_VERSION_SKIP).max(floor),
            "{now:?}"
        );
        assert!(version < 1 << 53);
        let (_, id) = link(rng, &mut restored, now);
        assert_eq!(
            id.0,
            laptop_id.0 + 1 + RESTORE_DEVICE_ID_SKIP + spread(now),
            "{now:?}"
        );
    }
    // Early clocks take the constant skip, real ones the time.
    const { assert!(7_000 * RESTORE_VERSION_PER_MS < RESTORE_VERSION_SKIP) };
    const { assert!(T0.0 * RESTORE_VERSION_PER_MS > RESTORE_VERSION_SKIP) };
    assert_ne!(spread(Timestamp(6_000)), spread(Timestamp(7_000)));
}

/// A laptop is stolen and unlinked; later the phone is restored from a backup that still
/// lists it, and the server (with the thief) serves the backup's own list to the resync and
/// withholds the unlink. The restored primary never lists the laptop again.
#[test]
fn a_restored_primary_never_relists_an_unlinked_companion() {
    let rng = &mut SeededRng::from_label("primary restore after unlink");
    let policy = PrimaryPolicy::default();
    let phone = IdentityKeyPair::generate(rng);
    let mut primary = Primary::new(rng, &phone, T0, policy);
    let (stolen, stolen_id) = link(rng, &mut primary, T0);
    let snapshot = primary.to_bytes();
    let old_list = primary.device_list().signed().clone();
    primary.unlink(at(1), stolen_id).unwrap();
    let last_epoch = primary.state_epoch();

    let (mut restored, _) = Primary::restore(&snapshot, last_epoch).unwrap();
    let list = restored.resync(at(2), old_list).unwrap().clone();
    assert!(list.entries().iter().all(|e| e.identity != stolen.public()));
    restored.renew(at(3)).unwrap();
    assert!(
        restored
            .device_list()
            .entries()
            .iter()
            .all(|e| e.identity != stolen.public())
    );
}

/// The server carries the companion's request (the invitation itself is only shown as a QR
/// code). The request holds no secret: the server learns nothing that lets it answer the
/// invitation with its own key, whether it copies the request's proof under its own key or
/// guesses an invitation from the request's bytes. The genuine request still links.
#[test]
fn the_server_carrying_a_link_request_cannot_link_its_own_device() {
    let rng = &mut SeededRng::from_label("link relay");
    let phone = IdentityKeyPair::generate(rng);
    let mut primary = Primary::new(rng, &phone, T0, PrimaryPolicy::default());
    let qr = primary.invite(rng, T0).unwrap().to_bytes();
    let laptop = IdentityKeyPair::generate(rng);
    let genuine = LinkRequest::new(&laptop, &LinkInvitation::from_bytes(&qr).unwrap()).to_bytes();
    let nonce = &qr[34..50];
    assert!(
        !genuine.windows(nonce.len()).any(|w| w == nonce),
        "the request carries the invitation's nonce"
    );
    let attacker = IdentityKeyPair::generate(rng);
    // An invitation rebuilt from what the request shows (the account; any nonce).
    let mut rebuilt = qr[..34].to_vec();
    rebuilt.extend_from_slice(&genuine[2 + 32 + 32 + 64..2 + 32 + 32 + 64 + 16]);
    rebuilt.extend_from_slice(&u64::MAX.to_be_bytes());
    let forged = LinkRequest::new(&attacker, &LinkInvitation::from_bytes(&rebuilt).unwrap());
    let before = primary.to_bytes();
    assert_eq!(
        primary.approve(T0, &forged).err(),
        Some(DeviceError::UnknownInvitation)
    );
    // The genuine proof under the attacker's key and signature: the proof binds the key.
    let mut spliced = forged.to_bytes();
    spliced[2 + 32 + 32 + 64..2 + 32 + 32 + 64 + 32]
        .copy_from_slice(&genuine[2 + 32 + 32 + 64..2 + 32 + 32 + 64 + 32]);
    assert_eq!(
        primary
            .approve(T0, &LinkRequest::from_bytes(&spliced).unwrap())
            .err(),
        Some(DeviceError::UnknownInvitation)
    );
    assert_eq!(*before, *primary.to_bytes());
    let approval = primary
        .approve(T0, &LinkRequest::from_bytes(&genuine).unwrap())
        .unwrap();
    assert!(
        approval
            .list
            .clone()
            .verify(&primary.account(), None, &ListLimits::default())
            .unwrap()
            .entries()
            .iter()
            .any(|e| e.identity == laptop.public())
    );
}

/// The server hands the companion an approval whose device id is not the one its key is
/// listed under (the phone's id, here): the companion refuses it rather than take another
/// device's place. Found by `cargo mutants` (the check survived weakening to "either").
#[test]
fn a_companion_refuses_an_approval_naming_another_device_id() {
    let rng = &mut SeededRng::from_label("link wrong id");
    let phone = IdentityKeyPair::generate(rng);
    let mut primary = Primary::new(rng, &phone, T0, PrimaryPolicy::default());
    let companion = IdentityKeyPair::generate(rng);
    let invitation = primary.invite(rng, T0).unwrap();
    let approval = primary
        .approve(T0, &LinkRequest::new(&companion, &invitation))
        .unwrap();
    let mut bytes = approval.to_bytes();
    bytes[2..6].copy_from_slice(&PRIMARY_DEVICE.0.to_be_bytes());
    let misnamed = LinkApproval::from_bytes(&bytes).unwrap();
    assert_eq!(
        complete_link(&companion, &invitation, &misnamed, &ListLimits::default()).err(),
        Some(DeviceError::NotInList(DeviceAddress {
            account: primary.account(),
            device: PRIMARY_DEVICE,
        }))
    );
    assert!(complete_link(&companion, &invitation, &approval, &ListLimits::default()).is_ok());
}

/// A device address has one byte form (PROTOCOL.md 1): it round-trips, and an account key
/// that is not a valid Ed25519 key is refused.
#[test]
fn device_addresses_round_trip_through_their_bytes() {
    let rng = &mut SeededRng::from_label("address bytes");
    let address = DeviceAddress {
        account: AccountKeyPair::generate(rng).public(),
        device: DeviceId(7),
    };
    let bytes = address.to_bytes();
    assert_eq!(bytes[32..], [0, 0, 0, 7]);
    assert_eq!(DeviceAddress::from_bytes(&bytes), Ok(address));
    let mut bad = bytes;
    bad[..32].copy_from_slice(&[0xff; 32]);
    assert_eq!(
        DeviceAddress::from_bytes(&bad),
        Err(DecodeError::InvalidKey)
    );
}

/// A primary restored from a backup, shown by the server an older list than its lost state
/// signed (the newer ones withheld), still never signs a version its lost state signed: two
/// lists of one version would be an equivocation to every contact that saw the other.
#[test]
fn a_restored_primary_never_signs_a_version_its_lost_state_signed() {
    let rng = &mut SeededRng::from_label("primary restore versions");
    let mut primary = new_account(rng);
    let snapshot = primary.to_bytes();
    primary.renew(at(1)).unwrap();
    let shown = primary.device_list().signed().clone();
    for day in 2..=5 {
        primary.renew(at(day)).unwrap();
    }
    let lost = primary.device_list().version();
    let (mut restored, stale) = Primary::restore(&snapshot, primary.state_epoch()).unwrap();
    assert!(stale);
    let after = restored.resync(at(6), shown).unwrap().version();
    assert!(
        after > lost,
        "version {after} again, the lost state signed up to {lost}"
    );
}

/// A primary restored from a backup, shown by the server a list from before its lost state
/// linked more devices, never gives another identity an id its lost state gave: contacts
/// would take the new device for the old one.
#[test]
fn a_restored_primary_never_gives_an_id_its_lost_state_gave() {
    let rng = &mut SeededRng::from_label("primary restore ids");
    let mut primary = new_account(rng);
    let snapshot = primary.to_bytes();
    link(rng, &mut primary, T0);
    let shown = primary.device_list().signed().clone();
    let given: Vec<DeviceId> = (0..2).map(|_| link(rng, &mut primary, T0).1).collect();
    let (mut restored, _) = Primary::restore(&snapshot, primary.state_epoch()).unwrap();
    restored.resync(at(1), shown).unwrap();
    let (_, id) = link(rng, &mut restored, at(1));
    assert!(
        given.iter().all(|g| id.0 > g.0),
        "id {id:?} after the lost state gave {given:?}"
    );
}

/// An invitation can be answered until just before it expires, not at its expiry.
#[test]
fn a_link_invitation_is_refused_from_its_expiry_on() {
    let rng = &mut SeededRng::from_label("invitation expiry");
    let mut primary = new_account(rng);
    let invitation = primary.invite(rng, T0).unwrap();
    let request = LinkRequest::new(&IdentityKeyPair::generate(rng), &invitation);
    assert_eq!(
        primary.approve(invitation.expires_at, &request).err(),
        Some(DeviceError::UnknownInvitation)
    );
    let just_before = Timestamp(invitation.expires_at.0 - 1);
    assert!(primary.approve(just_before, &request).is_ok());
}

/// Approved companions confirm in any order: approving one does not drop another's pending
/// approval.
#[test]
fn an_approval_does_not_drop_another_companion_s_pending_one() {
    let rng = &mut SeededRng::from_label("approvals pending");
    let mut primary = new_account(rng);
    let approved: Vec<_> = (0..2).map(|_| approve(rng, &mut primary)).collect();
    for (device, confirmation) in approved {
        assert_eq!(primary.confirm(&confirmation), Ok(device));
    }
}

/// Unconfirmed approvals kept (PROTOCOL.md, limits): 4, the oldest replaced.
const UNCONFIRMED_APPROVALS_KEPT: usize = 4;

/// The primary keeps the latest unconfirmed approvals up to its bound, each of which can still
/// be confirmed; one more pushes out the oldest, whose confirmation is then refused.
#[test]
fn a_primary_keeps_its_latest_unconfirmed_approvals_and_drops_the_oldest() {
    let rng = &mut SeededRng::from_label("approvals kept");
    let mut policy = PrimaryPolicy::default();
    policy.account.max_companions = 8;
    let phone = IdentityKeyPair::generate(rng);
    let mut primary = Primary::new(rng, &phone, T0, policy);
    let mut approved: Vec<_> = (0..=UNCONFIRMED_APPROVALS_KEPT)
        .map(|_| approve_under(rng, &mut primary, &ListLimits::default()))
        .collect();
    let (oldest, confirmation) = approved.remove(0);
    assert_eq!(
        primary.confirm(&confirmation).err(),
        Some(DeviceError::NotInList(DeviceAddress {
            account: primary.account(),
            device: oldest,
        }))
    );
    for (device, confirmation) in approved {
        assert_eq!(primary.confirm(&confirmation), Ok(device));
    }
}

/// Unlinking one companion changes nothing for the others: a confirmed one stays confirmed,
/// and an approved one can still confirm.
#[test]
fn unlinking_a_companion_leaves_the_others_as_they_were() {
    let rng = &mut SeededRng::from_label("unlink one");
    let mut primary = new_account(rng);
    let (_, confirmed) = link(rng, &mut primary, T0);
    let (gone, gone_confirmation) = approve(rng, &mut primary);
    let (pending, confirmation) = approve(rng, &mut primary);
    primary.unlink(at(1), gone).unwrap();
    assert!(primary.is_confirmed(confirmed));
    assert!(primary.confirm(&gone_confirmation).is_err());
    assert_eq!(primary.confirm(&confirmation), Ok(pending));
    let (_, linked) = link(rng, &mut primary, at(1));
    primary.unlink(at(1), linked).unwrap();
    assert!(!primary.is_confirmed(linked));
    assert!(primary.is_confirmed(confirmed));
    assert!(primary.is_confirmed(pending));
}

/// A companion approved and countersigned under the default policy, not yet confirmed.
fn approve(rng: &mut SeededRng, primary: &mut Primary) -> (DeviceId, LinkConfirmation) {
    approve_under(rng, primary, &ListLimits::default())
}

fn approve_under(
    rng: &mut SeededRng,
    primary: &mut Primary,
    policy: &ListLimits,
) -> (DeviceId, LinkConfirmation) {
    let companion = IdentityKeyPair::generate(rng);
    let invitation = primary.invite(rng, T0).unwrap();
    let approval = primary
        .approve(T0, &LinkRequest::new(&companion, &invitation))
        .unwrap();
    let (_, confirmation) = complete_link(&companion, &invitation, &approval, policy).unwrap();
    (approval.device, confirmation)
}

/// Two copies of one primary state (say, the phone and a copy loaded from its backup without
/// the epoch check) each signed a different list under one version. Restored from one copy,
/// the primary refuses the other's list as the newest: it equivocates on the version it holds.
#[test]
fn a_restored_primary_refuses_a_list_that_equivocates_on_its_version() {
    let rng = &mut SeededRng::from_label("resync equivocation");
    let mut primary = new_account(rng);
    let mut copy = Primary::from_bytes(&primary.to_bytes()).unwrap();
    link(rng, &mut primary, T0);
    copy.renew(at(1)).unwrap();
    let theirs = primary.device_list().signed().clone();
    let ours = copy.device_list().signed().clone();
    assert_eq!(theirs.version(), ours.version());
    let mut restored = Primary::restore_from_backup(&copy.to_bytes()).unwrap();
    assert_eq!(
        restored.resync(at(2), theirs).err(),
        Some(DeviceError::Equivocation)
    );
    assert!(restored.resync(at(2), ours).is_ok());
}

/// A primary enforces the policy it was made with, and keeps it across a restore.
#[test]
fn a_primary_keeps_its_policy_across_a_restore() {
    let rng = &mut SeededRng::from_label("primary policy");
    let policy = PrimaryPolicy {
        account: AccountPolicy {
            max_companions: 2,
            companion_validity_ms: 3 * DAY,
        },
        link_invitation_validity_ms: 60_000,
    };
    assert_ne!(policy, PrimaryPolicy::default());
    let phone = IdentityKeyPair::generate(rng);
    let primary = Primary::new(rng, &phone, T0, policy);
    assert_eq!(primary.policy(), policy);
    let restored = Primary::from_bytes(&primary.to_bytes()).unwrap();
    assert_eq!(restored.policy(), policy);
}

/// A primary prints its account's public key and its list's version, never the account key's
/// secret.
#[test]
fn a_primary_prints_its_account_but_not_its_secret() {
    let rng = &mut SeededRng::from_label("primary debug");
    let primary = new_account(rng);
    let state = primary.to_bytes();
    let seed = &state[2..34];
    let shown = format!("{primary:?}");
    assert!(
        shown.contains(&format!("{:?}", primary.account())),
        "{shown}"
    );
    assert!(shown.contains("list_version: 1"), "{shown}");
    assert!(!shown.contains(&hex::encode(seed)), "{shown}");
    assert!(!shown.contains(&format!("{seed:?}")[1..40]), "{shown}");
}
