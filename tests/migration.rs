//! State persisted by the formats before post-quantum sessions and records still loads:
//! sessions continue, prekey stores gain an ML-KEM prekey, primaries re-sign their list with
//! their own consent, and devices keep their sessions. The fixtures in `tests/data/legacy`
//! were written by the previous release (see the README there).

mod support;

use ratchetry::devices::{Primary, SignedDeviceList};
use ratchetry::fanout::{Device, Outgoing};
use ratchetry::testing::{SeededRng, hooks};
use ratchetry::x3dh::OneTimePreKeyId;
use ratchetry::{
    DecodeError, IdentityKeyPair, IncomingMessage, PreKeyStore, Session, SessionConfig, Timestamp,
};
use sha2::Digest;
use support::body;

const NOW: Timestamp = Timestamp(1_790_000_100_000);

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/legacy")
            .join(name),
    )
    .unwrap()
}

#[test]
fn version_1_sessions_continue() {
    let rng = &mut SeededRng::from_label("migrate sessions");
    let mut alice = Session::from_bytes(&fixture("session-v1-alice.bin")).unwrap();
    let mut bob = Session::from_bytes(&fixture("session-v1-bob.bin")).unwrap();
    for round in 0..3u8 {
        let w = alice.encrypt(rng, &[round]).unwrap();
        assert_eq!(
            bob.decrypt(&IncomingMessage::decode(&w).unwrap()).unwrap(),
            [round]
        );
        let w = bob.encrypt(rng, &[round, round]).unwrap();
        assert_eq!(
            alice
                .decrypt(&IncomingMessage::decode(&w).unwrap())
                .unwrap(),
            [round, round]
        );
    }
    // And they save in the current format, still classical.
    let again = Session::from_bytes(&alice.to_bytes()).unwrap();
    assert_eq!(*again.to_bytes(), *alice.to_bytes());
    assert!(!again.is_post_quantum() && !bob.is_post_quantum());
}

#[test]
fn version_1_prekey_stores_migrate_with_an_ml_kem_prekey() {
    let rng = &mut SeededRng::from_label("migrate prekeys");
    let bytes = fixture("prekey-store-v1.bin");
    let bob = IdentityKeyPair::from_bytes(&fixture("identity-v1-bob.bin")).unwrap();
    assert_eq!(
        PreKeyStore::from_bytes(&bytes).err(),
        Some(DecodeError::UnknownVersion(1))
    );
    let mut store = PreKeyStore::migrate(rng, &bob, NOW, &bytes).unwrap();
    assert_eq!(store.one_time_prekeys_remaining(), 2);
    let bundle = store
        .bundle(&bob, Some(OneTimePreKeyId(2)), None)
        .verify()
        .unwrap();
    let alice = IdentityKeyPair::generate(rng);
    let mut a = Session::initiate(rng, &alice, &bundle, SessionConfig::default()).unwrap();
    let w = a.encrypt(rng, b"post-quantum now").unwrap();
    let IncomingMessage::PreKey(pk) = IncomingMessage::decode(&w).unwrap() else {
        panic!()
    };
    let (_, pt) = Session::accept(&bob, &mut store, &pk, SessionConfig::default()).unwrap();
    assert_eq!(pt, b"post-quantum now");
    // A migrated store is a current-format store.
    let saved = store.to_bytes();
    assert_eq!(*PreKeyStore::from_bytes(&saved).unwrap().to_bytes(), *saved);
}

/// Two accounts of the previous release, one device each, with sessions both ways and a
/// group. Each primary re-signs its list with its own consent; each device migrates with it,
/// follows the other's new list, and the pairwise sessions carry on without a new key
/// agreement; a group message goes out under a fresh sender key.
/// Byte 100 of a pairwise envelope: the inner message's type (2 ratchet, 3 pre-key).
const MESSAGE_TYPE: usize = 100;

/// A direct payload's plaintext (PROTOCOL.md 18.2): version, type, kind 1, a message nonce, no
/// `sent_to`, body.
fn direct(body: &[u8]) -> Vec<u8> {
    [&[2, 0x0c, 1][..], &[0x5a; 16], &[0], body].concat()
}

/// Devices migrated from the release before PQXDH keep their classical sessions only to read
/// what is still in flight: the app sees which they are, the next send to such a device asks
/// for its bundle and starts PQXDH, and a classical message delivered late (or by a server
/// that dropped the PQXDH messages to pin the pair) is read without making the classical
/// session current again. Groups and everything else then travel over PQXDH.
#[test]
fn previous_devices_and_primaries_migrate_and_upgrade_their_sessions() {
    let rng = &mut SeededRng::from_label("migrate devices");
    let mut devices = Vec::new();
    let mut lists = Vec::new();
    for who in ["alice", "bob"] {
        let old_device = fixture(&format!("device-v2-{who}.bin"));
        let identity = Device::legacy_identity(&old_device).unwrap();
        let primary =
            Primary::migrate(&fixture(&format!("primary-v1-{who}.bin")), &identity, NOW).unwrap();
        assert_eq!(primary.device_list().version(), 2);
        let list = SignedDeviceList::from_bytes(&primary.device_list().to_bytes()).unwrap();
        let device = Device::migrate(rng, NOW, &old_device, list.clone()).unwrap();
        assert!(device.state_epoch() > 0);
        lists.push((primary.account(), list));
        devices.push(device);
    }
    // A primary's old state with another device's identity is refused.
    let stranger = IdentityKeyPair::generate(rng);
    assert!(Primary::migrate(&fixture("primary-v1-alice.bin"), &stranger, NOW).is_err());
    // A next device id at a listed one (after the header, the seed and the policy): refused.
    let mut reused = fixture("primary-v1-alice.bin");
    reused[54..58].copy_from_slice(&1u32.to_be_bytes());
    let identity = Device::legacy_identity(&fixture("device-v2-alice.bin")).unwrap();
    assert_eq!(
        Primary::migrate(&reused, &identity, NOW).err(),
        Some(ratchetry::DecodeError::InvalidValue.into())
    );
    let (alice_key, bob_key) = (lists[0].0, lists[1].0);
    devices[0]
        .update_device_list(NOW, &bob_key, lists[1].1.clone())
        .unwrap();
    devices[1]
        .update_device_list(NOW, &alice_key, lists[0].1.clone())
        .unwrap();
    let (a, b) = devices.split_at_mut(1);
    let (alice, bob) = (&mut a[0], &mut b[0]);
    assert!(alice.has_session(&bob.address()));
    assert_eq!(alice.classical_sessions(), [bob.address()]);
    assert_eq!(bob.classical_sessions(), [alice.address()]);
    // A classical message of Bob's, still in flight when the devices upgrade.
    let late = hooks::seal_raw_payload(bob, rng, NOW, alice.address(), &direct(b"late")).unwrap();
    assert_eq!(late[MESSAGE_TYPE], 0x02);

    // Nothing is sent over the classical session: the send asks for Bob's bundle.
    assert!(
        alice.take_changes(rng).replaces_all(),
        "a migrated device writes all"
    );
    assert_eq!(
        alice.send(rng, NOW, &bob_key, b"first").unwrap(),
        Outgoing::NeedBundles(vec![bob.address()])
    );
    assert!(!alice.has_changes());
    alice
        .start_sessions(rng, NOW, &[(bob.address(), bob.bundle(None, None))])
        .unwrap();
    assert!(alice.classical_sessions().is_empty());
    let Outgoing::Ready(dropped) = alice.send(rng, NOW, &bob_key, b"first").unwrap() else {
        panic!()
    };
    assert_eq!(
        dropped.envelopes[0].1[MESSAGE_TYPE], 0x03,
        "a PQXDH pre-key message"
    );

    // The server drops it and delivers Bob's late classical message: Alice reads it, and her
    // PQXDH session stays current.
    assert_eq!(
        body(&alice.receive(NOW, &late).unwrap()),
        Some(&b"late"[..])
    );
    assert!(alice.classical_sessions().is_empty());
    let Outgoing::Ready(o) = alice.send(rng, NOW, &bob_key, b"second").unwrap() else {
        panic!()
    };
    assert_eq!(o.envelopes[0].1[MESSAGE_TYPE], 0x03, "still PQXDH");
    assert_eq!(
        body(&bob.receive(NOW, &o.envelopes[0].1).unwrap()),
        Some(&b"second"[..])
    );
    // Bob now answers over Alice's PQXDH session.
    assert!(bob.classical_sessions().is_empty());
    let Outgoing::Ready(o) = bob.send(rng, NOW, &alice_key, b"back").unwrap() else {
        panic!()
    };
    assert_eq!(o.envelopes[0].1[MESSAGE_TYPE], 0x02);
    assert_eq!(
        body(&alice.receive(NOW, &o.envelopes[0].1).unwrap()),
        Some(&b"back"[..])
    );
    let room = ratchetry::group::GroupId([3; 32]);
    alice.set_group_members(room, &[bob_key]).unwrap();
    bob.set_group_members(room, &[alice_key]).unwrap();
    let ratchetry::fanout::Outgoing::Ready(o) = alice.send_group(rng, NOW, room, b"g2").unwrap()
    else {
        panic!()
    };
    for (_, e) in &o.envelopes {
        bob.receive(NOW, e).unwrap();
    }
    assert_eq!(
        body(&bob.receive(NOW, &o.group.unwrap().0).unwrap()),
        Some(&b"g2"[..])
    );
}

/// Version 1 session state is loaded with its identity keys checked again (that format did
/// not promise they were): a weak (small-order) identity key is refused.
#[test]
fn a_version_1_session_with_a_weak_identity_key_is_refused() {
    let mut v = fixture("session-v1-alice.bin");
    assert!(Session::from_bytes(&v).is_ok());
    // Header 2, config 8, role 1, the local identity key 32, then the remote one.
    let mut identity_point = [0u8; 32];
    identity_point[0] = 1;
    v[43..75].copy_from_slice(&identity_point);
    assert_eq!(Session::from_bytes(&v).err(), Some(DecodeError::InvalidKey));
}

/// A version 1 prekey store, too, loads with at most `max_signed_prekeys` signed prekeys.
#[test]
fn a_version_1_store_keeps_no_more_signed_prekeys_than_its_config() {
    // Version 1: header 2, five u32 (max_signed_prekeys first), the current signed prekey
    // (id 4, secret 32, signature 64, created 8), then the count of retired ones (0 here).
    const SPK_V1_LEN: usize = 4 + 32 + 64 + 8;
    let rng = &mut SeededRng::from_label("v1 retired bound");
    let bob = IdentityKeyPair::from_bytes(&fixture("identity-v1-bob.bin")).unwrap();
    let bytes = fixture("prekey-store-v1.bin");
    let current_at = 2 + 5 * 4;
    let retired_at = current_at + SPK_V1_LEN;
    assert_eq!(bytes[2..6], 3u32.to_be_bytes());
    assert_eq!(bytes[retired_at..retired_at + 4], 0u32.to_be_bytes());
    // One retired signed prekey (a copy of the current one, renumbered).
    let mut v = bytes[..retired_at].to_vec();
    v.extend_from_slice(&1u32.to_be_bytes());
    v.extend_from_slice(&9u32.to_be_bytes());
    v.extend_from_slice(&bytes[current_at + 4..retired_at]);
    v.extend_from_slice(&bytes[retired_at + 4..]);
    assert!(PreKeyStore::migrate(rng, &bob, NOW, &v).is_ok());
    // A limit of one signed prekey leaves no room for a retired one.
    v[2..6].copy_from_slice(&1u32.to_be_bytes());
    assert!(PreKeyStore::migrate(rng, &bob, NOW, &v).is_err());
}

/// A device list record of the layout before it kept the list's digest (`blob(list) ‖ …`,
/// first byte 0) loads with the digest computed, works as before, and the load leaves a unit
/// that rewrites it with the digest (`0x01 ‖ H(list) ‖ blob(list) ‖ …`). A record beginning
/// with any other byte is refused.
#[test]
fn a_device_list_record_without_its_digest_loads_and_is_rewritten() {
    let mut w = support::World::new("migrate list digest");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let a1 = support::World::addr(alice, 1);
    let o = w.send(a1, bob, b"before");
    w.deliver_ok(&o);
    let mut key = vec![0x07];
    key.extend_from_slice(&bob.to_bytes());
    let current = w.stores[&a1].0[&key].clone();
    assert_eq!(current[0], 1);
    let list_len = u32::from_be_bytes(current[33..37].try_into().unwrap()) as usize;
    let list = &current[37..37 + list_len];
    assert_eq!(current[1..33], sha2::Sha256::digest(list)[..]);
    let previous = current[33..].to_vec();

    let mut store = w.stores[&a1].clone();
    store.0.insert(key.clone(), previous.clone());
    let mut loaded = store.load();
    let rewrite = loaded.take_changes(&mut w.rng);
    let record = rewrite
        .records()
        .iter()
        .find(|r| r.key() == key.as_slice())
        .expect("the list record is rewritten");
    assert_eq!(record.value(), Some(current.as_slice()));
    // The loaded device's envelopes carry the same lists digest: Bob reads them.
    *w.device(a1) = loaded;
    let o = w.send(a1, bob, b"after");
    assert_eq!(body(&w.deliver_ok(&o)[0].1), Some(&b"after"[..]));

    for first in [2u8, 0xff] {
        let mut bad = w.stores[&a1].clone();
        bad.0.get_mut(&key).unwrap()[0] = first;
        assert_eq!(
            Device::from_records(bad.0.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))).err(),
            Some(DecodeError::InvalidValue),
            "first byte {first}"
        );
    }
}

/// A device's records without one every device has (its own record, meta, prekeys, its own
/// account's list) do not load, and the error names the missing record's kind.
#[test]
fn a_missing_required_record_is_named_by_its_kind() {
    let mut w = support::World::new("persist missing record");
    let alice = w.account(0);
    w.publish_all();
    let a1 = support::World::addr(alice, 1);
    w.persist(a1);
    let mut own_list = vec![0x07];
    own_list.extend_from_slice(&alice.to_bytes());
    for key in [vec![0x01], vec![0x02], vec![0x03], own_list] {
        let mut store = w.stores[&a1].clone();
        assert!(
            store.0.remove(&key).is_some(),
            "kind {:#04x} is stored",
            key[0]
        );
        assert_eq!(
            ratchetry::fanout::Device::from_records(
                store.0.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))
            )
            .err(),
            Some(ratchetry::DecodeError::MissingRecord(key[0])),
        );
    }
}
