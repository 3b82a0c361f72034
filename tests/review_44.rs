//! Review 44: the device's bounded memories, attacked by the relay with an account it controls
//! (a contact, a group member that links and unlinks companions) and with the honest traffic
//! it can provoke (breaking or withholding envelopes so that honest devices ask again and
//! honest senders answer). For each memory: can it make a message read twice, lose one,
//! exhaust a retry, grow a cost, or push out an honest account's entry; and does every bound
//! hold when the device loads the records it wrote itself.
//!
//! A passing test pins what holds; a test marked `#[ignore = "KNOWN LIMIT: ..."]` asserts what
//! the library does not give (run with `--include-ignored`: it fails). Findings 1, 2 and 5
//! below failed on the reviewed commit and are fixed (stop 44); 3 and 4 stay known limits.
//!
//! Pinned:
//! - the read ring turned by a contact's 2000 messages: Bob's direct and group messages
//!   replayed afterwards are refused in their session or sender key with the device
//!   byte-identical, before and after a restart, and a message read through a resend stays
//!   `Duplicate` (`a_contact_turning_the_read_ring_gets_no_honest_message_read_twice`);
//! - skipped message keys: a message whose key 2000 later skipped ones evicted is refused
//!   unchanged (`Ratchet(Duplicate)`), the session at the bound loads, and its ask is refused by
//!   a sender unchanged (`UnknownMessage`: evicting the key took 2000 later sends, past the
//!   sender's 1000-send journal), so the driver's `Dropped` loses nothing a retry could bring
//!   back (`a_message_whose_skipped_key_was_evicted_is_refused_unchanged_and_its_ask_too`);
//! - sender-key generations: a group message held back while a member forces three rotations
//!   of its sender's key still reads as it arrives
//!   (`a_group_message_held_back_through_three_rotations_reads_without_an_ask`);
//! - withheld notices: a record at the bound (four generations) loads and keeps marking each
//!   generation withheld; five, a repeated id or a torn id are typed `DecodeError`s
//!   (`withheld_notice_records_load_at_the_bound_and_are_refused_past_it`);
//! - remembered base keys: at the signed prekey's session bound a pre-key message is refused
//!   unchanged, the records at the bound load and one base key more is refused typed, and a
//!   rotation then one ask reads the message
//!   (`a_used_up_signed_prekey_refuses_unchanged_loads_at_its_bound_and_a_rotation_and_ask_read`);
//! - replaced ids: resends from 2001 accounts arriving in ascending account order keep 2000
//!   entries and load (`resends_from_more_accounts_than_the_bound_evict_another_accounts_entry`);
//! - the sent journal: a group message asked for by 4096 devices loads
//!   (`a_group_message_asked_for_by_4096_devices_keeps_the_records_loadable`);
//! - remembered base keys past the ring and the sessions: Bob's first (pre-key) message,
//!   replayed after three retries replaced his session and a contact turned the ring, is
//!   refused by its remembered base key (`X3dh(Replayed)`), unchanged, across a restart
//!   (`a_pre_key_message_replayed_past_the_ring_and_its_session_is_refused_by_its_base_key`);
//! - a pre-key message on a retired signed prekey (a stale bundle the relay served) is refused
//!   unchanged, and one `NoSession` ask reads it
//!   (`a_message_on_a_retired_signed_prekey_is_refused_unchanged_and_read_by_one_ask`), and
//!   likewise one on a one-time ML-KEM prekey the relay served twice
//!   (`a_message_on_a_kem_prekey_served_twice_is_refused_unchanged_and_read_by_one_ask`).
//!
//! Findings (each ignored test fails on the reviewed commit):
//! 1. `resends_from_as_many_accounts_as_the_bound_keep_the_records_loadable` (high:
//!    availability): `Journal::replace` evicts from the account holding the most, never the
//!    new id; when every account holds one entry and the new one's account is the lowest, it
//!    finds nothing to evict and the ids reach 2001, which `from_records` and `from_bytes`
//!    refuse: the device cannot load its own records or backups. **Fixed**: the new id counts
//!    for its account only where that account holds others to drop (as `make_room` counts).
//! 2. `a_group_message_asked_for_by_every_member_device_keeps_the_records_loadable` (high:
//!    availability): `SentKind::Group::answered` has no bound in memory (every entitled
//!    requester adds one), `Sent::read` refuses more than 4096; one group message asked for by
//!    4097 member devices (the relay withholds one sender key in a big group) leaves the
//!    sender unable to load its records or bytes. **Fixed**: the decoding bound is every
//!    device of the members' and the own account's lists, 4097 × 256 (PROTOCOL.md 19.3).
//! 3. `a_group_message_held_back_through_four_rotations_is_read_by_one_ask` (medium: loss): a
//!    member that links and unlinks companions forces a rotation at each of the sender's
//!    sends; after four, the receiver's generation and the sender's ledger are both gone, and
//!    a message the relay held back is refused by retry (`NotEntitled`) within the window.
//! 4. `sessions_of_one_account_do_not_use_up_the_signed_prekey_for_another` (low/medium:
//!    availability): the signed prekey's session budget is shared by every account; one
//!    contact's sessions (on one-time ML-KEM prekeys the relay hands out and the app restocks,
//!    so `last_resort_uses` never moves, and `Device` exposes no count of the sessions a signed
//!    prekey accepted) use it up, and every new session and retry answer is refused until a
//!    rotation.
//! 5. `the_driver_asks_again_for_a_message_on_a_retired_signed_prekey` and
//!    `the_driver_asks_again_for_a_message_on_a_kem_prekey_served_twice` (low/medium: loss):
//!    `driver::Receiving::step` asks again only for `NoSession`, `AuthenticationFailed` and
//!    `UnknownOneTimePreKey`; a pre-key message on a signed prekey no longer held (the relay
//!    serves a stale bundle, or holds the message past three rotations) or on a one-time
//!    ML-KEM prekey already used (served twice) is `Dropped`, though one ask reads it, and so
//!    is every later message of that session until the receiver writes back. **Fixed**: the
//!    driver asks again for these (and for `Replayed`: a session pushed out by answers,
//!    `tests/restore_life.rs`) unless the app's store holds the message; the guide's table
//!    says so. The replayed pre-key message test now steps the driver with a store that
//!    holds the message, which drops it.

mod support;

use ratchetry::devices::{AccountKey, DeviceAddress};
use ratchetry::driver::Inbound;
use ratchetry::fanout::RetryReason;
use ratchetry::fanout::{Device, Received};
use ratchetry::group::GroupId;
use ratchetry::{Error, FanoutError, GroupError, RatchetError};
use support::{World, body};

const GROUP: GroupId = GroupId([44; 32]);

/// Mallory links a companion, Bob's next group send gives it his key, Mallory unlinks it, and
/// Bob's next group send rotates his key: one new generation per round, delivered to Alice.
fn force_rotations(w: &mut World, mallory: AccountKey, b1: DeviceAddress, rounds: usize) {
    for i in 0..rounds {
        let m2 = w.link(&mallory);
        w.publish(&mallory);
        let o = w.send_group(b1, GROUP, format!("to the new companion {i}").as_bytes());
        deliver_to_others(w, &o, m2);
        let now = w.now;
        w.primary(&mallory).unlink(now, m2.device).unwrap();
        w.devices.remove(&m2);
        w.publish(&mallory);
        let o = w.send_group(b1, GROUP, format!("after the unlink {i}").as_bytes());
        let got = w.deliver_ok(&o);
        assert!(
            got.iter()
                .any(|(_, r)| matches!(r, Received::SenderKey { .. })),
            "rotated"
        );
    }
}

/// Delivers an outbox to every device but `skip` (which holds no group), each read.
fn deliver_to_others(w: &mut World, o: &ratchetry::fanout::Outbox, skip: DeviceAddress) {
    for (to, r) in w.deliver(o) {
        if to != skip {
            r.unwrap_or_else(|e| panic!("{to:?}: {e}"));
        }
    }
}

/// Bob's group message held back from Alice while Mallory, a member, forces `rounds`
/// rotations of Bob's key; then delivered: how Alice's asks end.
fn held_back_through_rotations(label: &str, rounds: usize) -> Result<usize, Error> {
    let (mut w, [alice, bob, mallory], [a1, b1, _m1]) = World::phones::<3>(label);
    w.set_members(GROUP, &[alice, bob, mallory]);
    let first = w.send_group(b1, GROUP, b"first");
    w.deliver_ok(&first);
    let held = w.send_group(b1, GROUP, b"held back");
    let envelope = World::group_envelope_for(&held, a1);
    // The relay holds the group envelope back from Alice (the key was given before: no
    // pairwise envelope goes with it).
    assert!(held.envelopes.is_empty());
    force_rotations(&mut w, mallory, b1, rounds);
    let before = w.device(a1).to_bytes();
    match w.receive(a1, &envelope) {
        Ok(r) => {
            assert_eq!(body(&r), Some(&b"held back"[..]));
            return Ok(0);
        }
        Err(e) => assert!(
            matches!(e, Error::Fanout(FanoutError::SenderKeyMissing { .. })),
            "{e}"
        ),
    }
    assert_eq!(
        *before,
        *w.device(a1).to_bytes(),
        "a refusal changes nothing"
    );
    w.recover(b1, a1, &envelope, b"held back")
}

/// Below the bound (three rotations), Alice still holds the generation and reads the
/// held-back message as it arrives (no ask).
#[test]
fn a_group_message_held_back_through_three_rotations_reads_without_an_ask() {
    assert_eq!(held_back_through_rotations("r44 three rotations", 3), Ok(0));
}

/// At four rotations Alice has dropped the generation (four kept, by arrival) and Bob the
/// generation's ledger (`LEDGER_GENERATIONS`): her ask is `NotEntitled`, though she was given
/// that generation and the message is within the retry window. It should read by one ask.
#[test]
#[ignore = "KNOWN LIMIT (SECURITY.md): a member forcing 4 rotations of a sender's key makes a held-back group message unrecoverable within the retry window (ledger and inbound generations both bounded at 4)"]
fn a_group_message_held_back_through_four_rotations_is_read_by_one_ask() {
    assert_eq!(held_back_through_rotations("r44 four rotations", 4), Ok(1));
}

/// Bob writes 2003 messages to Alice; the relay delivers the second and the last at once,
/// so Alice stores 2001 skipped keys and evicts the first's (`max_skipped_keys` 2000). The
/// 2000 held in between are then delivered and read. Returns the world and the first envelope.
fn first_key_evicted(label: &str) -> (World, DeviceAddress, DeviceAddress, Vec<u8>) {
    let (mut w, alice, _bob, a1, b1) = World::two_talking(label);
    let first = World::envelope_to(&w.send(b1, alice, b"first"), a1);
    let second = w.send(b1, alice, b"second");
    w.deliver_ok(&second);
    let held: Vec<Vec<u8>> = (0..2000)
        .map(|i| World::envelope_to(&w.send(b1, alice, format!("held {i}").as_bytes()), a1))
        .collect();
    let last = w.send(b1, alice, b"last");
    w.deliver_ok(&last);
    for (i, e) in held.iter().enumerate() {
        let r = w.receive(a1, e).unwrap();
        assert_eq!(body(&r), Some(format!("held {i}").as_bytes()));
    }
    (w, a1, b1, first)
}

/// A message whose skipped key was evicted by 2000 later skipped ones is refused with state
/// byte-identical and nothing to persist (it fails in its session as `Ratchet(Duplicate)`,
/// like a replay past the read ring). Evicting it took 2000 later sends of the same device,
/// so the sender's journal (1000 sends) no longer holds it: the ask is refused as
/// `UnknownMessage` with the sender unchanged, which is why the driver's `Dropped` for
/// `Ratchet(Duplicate)` loses nothing a retry could bring back. Every other held message
/// read, once; the genuine first copy stays refused after the ask.
#[test]
fn a_message_whose_skipped_key_was_evicted_is_refused_unchanged_and_its_ask_too() {
    let (mut w, a1, b1, first) = first_key_evicted("r44 skipped evicted");
    // A session at the skipped-key bound loads from the records its device wrote.
    w.restart(a1);
    w.refused(a1, &first, RatchetError::Duplicate.into());
    let (to, request) = w
        .request_retry(a1, &first, RetryReason::AuthenticationFailed)
        .unwrap();
    assert_eq!(to, b1);
    w.refused(b1, &request, FanoutError::UnknownMessage.into());
    assert!(matches!(w.step(a1, &first), Inbound::Dropped(_)));
    w.refused(a1, &first, RatchetError::Duplicate.into());
}

/// Mallory, a contact and group member, turns Alice's read ring with 2000 messages of her
/// own. Bob's direct and group messages, read before, replayed by the relay afterwards: each
/// is refused in its session or sender key (`Ratchet(Duplicate)`, `Group(Duplicate)`) with
/// Alice byte-identical and nothing to persist, before and after a restart from records; the
/// driver shows nothing (`Dropped`). Bob's message read through a resend before the flood
/// stays `Duplicate` (the replaced ids are not the ring's). Then Bob still writes to Alice.
#[test]
fn a_contact_turning_the_read_ring_gets_no_honest_message_read_twice() {
    let (mut w, [alice, bob, mallory], [a1, b1, m1]) = World::phones::<3>("r44 ring");
    w.set_members(GROUP, &[alice, bob, mallory]);
    let direct = w.send(b1, alice, b"direct");
    w.deliver_ok(&direct);
    let direct = World::envelope_to(&direct, a1);
    let group = w.send_group(b1, GROUP, b"group");
    w.deliver_ok(&group);
    let group = World::group_envelope_for(&group, a1);
    // A message read through a resend (the relay broke its first copy).
    let resent = w.send(b1, alice, b"resent");
    let genuine = World::envelope_to(&resent, a1);
    assert!(w.receive(a1, &support::tampered(&genuine)).is_err());
    let answer = w.ask_again(a1, b1, &support::tampered(&genuine), b"resent");
    w.deliver_ok(&answer);
    let later = w.send_group(b1, GROUP, b"later");
    w.deliver_ok(&later);
    for i in 0..ratchetry::fanout::MAX_REMEMBERED_MESSAGE_IDS {
        let o = w.send(m1, alice, format!("flood {i}").as_bytes());
        w.deliver_ok(&o);
    }
    let replaced = ratchetry::fanout::EnvelopeId::of(&genuine);
    for round in 0..2 {
        w.refused(a1, &direct, RatchetError::Duplicate.into());
        w.refused(a1, &group, GroupError::Duplicate.into());
        w.refused(
            a1,
            &genuine,
            FanoutError::Duplicate {
                envelope_id: replaced,
            }
            .into(),
        );
        assert!(matches!(w.step(a1, &direct), Inbound::Dropped(_)));
        assert!(matches!(w.step(a1, &group), Inbound::Dropped(_)));
        if round == 0 {
            w.restart(a1);
        }
    }
    let o = w.send(b1, alice, b"after");
    assert!(w.reads(&o, b"after"));
    let _ = bob;
}

/// Loads `store` with the records of kind `kind` given `value` instead: `Ok` or the error.
fn load_with(
    store: &support::Store,
    kind: u8,
    value: &[u8],
) -> Result<Device, ratchetry::DecodeError> {
    let mut s = store.clone();
    let key =
        s.0.keys()
            .find(|k| k[0] == kind)
            .expect("a record of the kind")
            .clone();
    s.0.insert(key, value.to_vec());
    Device::from_records(s.0.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
}

/// The withheld-notice record (`0x0d`, `n × u32(key_id)`, `1 ≤ n ≤ 4`, distinct): a record a
/// device wrote at the bound (four generations) loads, and a message of each generation it
/// names is `Withheld` after the load; five, a repeated id, or a torn id are refused as a
/// typed `DecodeError`, never a panic.
#[test]
fn withheld_notice_records_load_at_the_bound_and_are_refused_past_it() {
    use ratchetry::fanout::WithheldReason;
    let (mut w, [alice, bob], [a1, b1]) = World::phones::<2>("r44 withheld records");
    w.set_members(GROUP, &[alice, bob]);
    let o = w.send_group_withholding(
        b1,
        GROUP,
        b"not for a1",
        &[(a1, Some(WithheldReason::Blocked))],
    );
    let got = w.deliver(&o);
    assert!(
        got.iter()
            .any(|(_, r)| matches!(r, Ok(Received::Withheld { .. }))),
        "{got:?}"
    );
    let message = World::group_envelope_for(&o, a1);
    w.refused(a1, &message, FanoutError::Withheld.into());
    let store = w.stores[&a1].clone();
    let value = store
        .0
        .iter()
        .find(|(k, _)| k[0] == 0x0d)
        .unwrap()
        .1
        .clone();
    assert_eq!(value.len(), 4, "one generation");
    let ids = |n: u32| -> Vec<u8> {
        let mut v = value.clone();
        for i in 1..n {
            v.extend_from_slice(
                &(u32::from_be_bytes(value[..4].try_into().unwrap()) ^ (i << 8)).to_be_bytes(),
            );
        }
        v
    };
    let mut four = load_with(&store, 0x0d, &ids(4)).expect("four generations load");
    assert_eq!(
        four.receive(w.now, &message).err(),
        Some(FanoutError::Withheld.into())
    );
    use ratchetry::DecodeError;
    for (bad, expected) in [
        (ids(5), DecodeError::TrailingBytes),
        (
            [value.clone(), value.clone()].concat(),
            DecodeError::InvalidValue,
        ),
        ([ids(2), vec![0, 0]].concat(), DecodeError::Truncated),
    ] {
        assert_eq!(load_with(&store, 0x0d, &bad).err(), Some(expected));
    }
}

/// Alice's signed prekey accepts three sessions (`max_sessions_per_signed_prekey`, set low to
/// show the mechanism; the default is 100,000, and sessions started on one-time ML-KEM
/// prekeys, which the relay hands out and the app keeps stocked, never move
/// `last_resort_uses`; `Device` exposes no count of the sessions a signed prekey accepted).
/// Mallory's three devices each start
/// a session with Alice. Returns the world, Alice's phone, Bob's phone, and Bob's first
/// message to Alice, a pre-key message under the same signed prekey.
fn signed_prekey_used_up(label: &str) -> (World, DeviceAddress, DeviceAddress, Vec<u8>) {
    let mut config = ratchetry::fanout::DeviceConfig::default();
    config.prekeys.max_sessions_per_signed_prekey = 3;
    let mut w = World::new(label);
    let alice = w.account_with(0, config);
    let bob = w.account(0);
    let mallory = w.account(2);
    w.publish_all();
    let a1 = World::addr(alice, 1);
    for m in w.devices_of(&mallory) {
        let o = w.send(m, alice, b"hello from mallory");
        let got = w.deliver(&o);
        assert!(
            got.iter()
                .filter(|(to, _)| *to == a1)
                .all(|(_, r)| r.is_ok())
        );
    }
    let b1 = World::addr(bob, 1);
    let first = World::envelope_to(&w.send(b1, alice, b"hello from bob"), a1);
    (w, a1, b1, first)
}

/// At the bound, Bob's pre-key message is refused (`SignedPreKeyExhausted`) with Alice
/// byte-identical; the records of a device at the bound load, and one remembered base key
/// more is refused as a typed error. An ask before a rotation is answered on the same signed
/// prekey and refused likewise; after Alice rotates, the next ask (its bundle names the new
/// one) reads Bob's message.
#[test]
fn a_used_up_signed_prekey_refuses_unchanged_loads_at_its_bound_and_a_rotation_and_ask_read() {
    let (mut w, a1, b1, first) = signed_prekey_used_up("r44 spk used up");
    w.refused(
        a1,
        &first,
        ratchetry::X3dhError::SignedPreKeyExhausted(1).into(),
    );
    let store = w.stores[&a1].clone();
    let seen: Vec<_> = store.0.keys().filter(|k| k[0] == 0x06).cloned().collect();
    assert_eq!(seen.len(), 3);
    store.load();
    let mut past = store.clone();
    let mut k = seen[0].clone();
    *k.last_mut().unwrap() ^= 1;
    past.0.insert(k, store.0[&seen[0]].clone());
    assert_eq!(
        Device::from_records(past.0.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))).err(),
        Some(ratchetry::DecodeError::InvalidValue)
    );
    // Before a rotation, the answer to an ask rides the same signed prekey (the request's
    // bundle names the current one) and is refused too: an attempt spent.
    let answer = w.ask_again(a1, b1, &first, b"hello from bob");
    let resend = World::envelope_to(&answer, a1);
    w.refused(
        a1,
        &resend,
        ratchetry::X3dhError::SignedPreKeyExhausted(1).into(),
    );
    // The device counts what its signed prekey took: the app's signal to rotate.
    assert_eq!(w.device(a1).signed_prekey_sessions(), 3);
    let made = w.device(a1).signed_prekey_created_at();
    w.now = w.now.plus_millis(1);
    let now = w.now;
    let mut rng = w.rng.clone();
    w.device(a1).rotate_signed_prekey(&mut rng, now);
    w.persist(a1);
    assert_eq!(w.device(a1).signed_prekey_sessions(), 0);
    assert_eq!(w.device(a1).signed_prekey_created_at(), now);
    assert!(made < now);
    let answer = w.ask_again(a1, b1, &first, b"hello from bob");
    assert!(w.reads(&answer, b"hello from bob"));
    assert_eq!(w.device(a1).signed_prekey_sessions(), 1);
}

/// The shared budget of a signed prekey is used up by one account's sessions: Bob's first
/// message (and every retry answer, which rides the same signed prekey) is refused until the
/// app rotates, which nothing tells it to do.
#[test]
#[ignore = "KNOWN LIMIT (SECURITY.md): one contact's sessions use up the signed prekey's session budget for every account; honest first messages and retry answers are refused until a rotation nothing signals"]
fn sessions_of_one_account_do_not_use_up_the_signed_prekey_for_another() {
    let (mut w, a1, _b1, first) = signed_prekey_used_up("r44 spk shared");
    let r = w.receive(a1, &first);
    assert_eq!(
        r.as_ref().ok().and_then(body),
        Some(&b"hello from bob"[..]),
        "{r:?}"
    );
}

/// Alice reads one resend from each of 2001 accounts (honest contacts, or members of a large
/// group), the relay breaking one message of each and ordering the resends: `lowest_last`
/// delivers the lowest account's last. Returns the replaced-id records Alice wrote and how
/// her records and her state bytes load.
fn resends_from_many_accounts(
    label: &str,
    lowest_last: bool,
) -> (
    usize,
    Option<ratchetry::DecodeError>,
    Option<ratchetry::DecodeError>,
) {
    let mut w = World::new(label);
    let alice = w.account(0);
    let a1 = World::addr(alice, 1);
    let n = ratchetry::fanout::MAX_REPLACED_MESSAGE_IDS + 1;
    let mut senders: Vec<Device> = (0..n).map(|_| w.off_world_sender(a1)).collect();
    senders.sort_by_key(|s| s.address().account);
    if lowest_last {
        senders.reverse();
    }
    for s in &mut senders {
        w.read_through_a_resend(a1, s);
    }
    w.persist(a1);
    let replaced = w.stores[&a1].0.keys().filter(|k| k[0] == 0x12).count();
    let loaded = Device::from_records(
        w.stores[&a1]
            .0
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice())),
    )
    .err();
    let from_bytes = Device::from_bytes(&w.device(a1).to_bytes()).err();
    (replaced, loaded, from_bytes)
}

/// In arrival order by account, the 2001st resend pushes out the lowest account's entry: the
/// replaced ids stay at their bound and the records and bytes load.
#[test]
fn resends_from_more_accounts_than_the_bound_evict_another_accounts_entry() {
    let bound = ratchetry::fanout::MAX_REPLACED_MESSAGE_IDS;
    assert_eq!(
        resends_from_many_accounts("r44 replaced ascending", false),
        (bound, None, None)
    );
}

/// The same with the lowest account's resend last: `Journal::replace` picks the account
/// holding the most (all hold one; the lowest among equals), which is the new entry's own,
/// finds nothing of it but the new id, and evicts nothing.
#[test]
fn resends_from_as_many_accounts_as_the_bound_keep_the_records_loadable() {
    let bound = ratchetry::fanout::MAX_REPLACED_MESSAGE_IDS;
    assert_eq!(
        resends_from_many_accounts("r44 replaced accounts", true),
        (bound, None, None)
    );
}

/// A phone of an account of its own that follows `account`'s list (and `account` its).
fn member_phone(w: &mut World, follows: &mut Device) -> Device {
    use ratchetry::devices::{PRIMARY_DEVICE, Primary, PrimaryPolicy};
    let now = w.now;
    let phone = ratchetry::IdentityKeyPair::generate(&mut w.rng);
    let primary = Primary::new(&mut w.rng, &phone, now, PrimaryPolicy::default());
    let list = primary.device_list().clone();
    let (mut device, _) = Device::new(
        &mut w.rng,
        now,
        phone,
        PRIMARY_DEVICE,
        list.clone(),
        0,
        ratchetry::fanout::DeviceConfig::default(),
    )
    .unwrap();
    let account = follows.address().account;
    let their = follows.device_list(&account).unwrap().signed().clone();
    device.update_device_list(now, &account, their).unwrap();
    follows
        .update_device_list(now, &list.account(), list.signed().clone())
        .unwrap();
    device
}

/// Bob's group has the most member accounts a device holds (4096 besides his own) and Bob a
/// companion: his one group message goes to 4097 devices. The relay withholds the sender key
/// from all of them, and each member phone (and, if `companion_asks`, Bob's companion) asks Bob
/// once for the message (the driver's `Hold`, then `SenderKeyMissing`, as the guide says). Bob
/// answers each (entitled, within every limit). Returns how Bob's records and bytes load.
fn asked_by_every_member(
    label: &str,
    companion_asks: bool,
) -> (
    Option<ratchetry::DecodeError>,
    Option<ratchetry::DecodeError>,
) {
    use ratchetry::fanout::Outgoing;
    let mut w = World::new(label);
    let bob = w.account(1);
    let (b1, b2) = (World::addr(bob, 1), World::addr(bob, 2));
    let mut phone = w.devices.remove(&b1).unwrap();
    let mut members: Vec<Device> = (0..ratchetry::fanout::MAX_GROUP_MEMBERS)
        .map(|_| member_phone(&mut w, &mut phone))
        .collect();
    let accounts: Vec<AccountKey> = members.iter().map(|d| d.address().account).collect();
    phone.set_group_members(GROUP, &accounts).unwrap();
    let now = w.now;
    let outbox = loop {
        match phone.send_group(&mut w.rng, now, GROUP, b"to everyone") {
            Ok(Outgoing::Ready(o)) => break o,
            Ok(Outgoing::NeedBundles(missing)) => {
                let bundles: Vec<_> = missing
                    .iter()
                    .map(|a| {
                        let d = members
                            .iter()
                            .find(|d| d.address() == *a)
                            .unwrap_or_else(|| &w.devices[a]);
                        (*a, d.bundle(None, None))
                    })
                    .collect();
                phone.start_sessions(&mut w.rng, now, &bundles).unwrap();
            }
            other => panic!("{other:?}"),
        }
    };
    let (group, recipients) = outbox.group.clone().unwrap();
    assert_eq!(recipients.len(), ratchetry::fanout::MAX_GROUP_MEMBERS + 1);
    let ask = |asking: &mut Device, phone: &mut Device, rng: &mut ratchetry::testing::SeededRng| {
        let (to, request) = asking
            .request_retry(rng, now, &group, RetryReason::SenderKeyMissing)
            .unwrap();
        assert_eq!(to, b1);
        let Ok(Received::RetryRequest(req)) = phone.receive(now, &request) else {
            panic!("a member's request is read")
        };
        assert!(matches!(
            phone.answer_retry(rng, now, &req, b"to everyone"),
            Ok(Outgoing::Ready(_))
        ));
    };
    for m in &mut members {
        ask(m, &mut phone, &mut w.rng);
    }
    if companion_asks {
        let mut companion = w.devices.remove(&b2).unwrap();
        ask(&mut companion, &mut phone, &mut w.rng);
        w.devices.insert(b2, companion);
    }
    w.devices.insert(b1, phone);
    w.persist(b1);
    let loaded = Device::from_records(
        w.stores[&b1]
            .0
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice())),
    )
    .err();
    let from_bytes = Device::from_bytes(&w.device(b1).to_bytes()).err();
    (loaded, from_bytes)
}

/// 4096 requesters of one group message (and 4097 sessions, ledger holders and recipients):
/// Bob's records and bytes load.
#[test]
fn a_group_message_asked_for_by_4096_devices_keeps_the_records_loadable() {
    assert_eq!(
        asked_by_every_member("r44 answered 4096", false),
        (None, None)
    );
}

/// One requester more, Bob's own companion: `SentKind::Group::answered` grows with every
/// entitled device in memory, while `Sent::read` bounds it by `MAX_RECIPIENTS` (4096).
#[test]
fn a_group_message_asked_for_by_every_member_device_keeps_the_records_loadable() {
    assert_eq!(
        asked_by_every_member("r44 answered 4097", true),
        (None, None)
    );
}

/// The relay serves Bob a bundle of Alice's that is three rotations old (signed, valid: the
/// server may serve any bundle it holds); Bob starts his session on it. Returns the world,
/// Alice's and Bob's phones and Bob's first message to Alice.
fn on_a_retired_signed_prekey(label: &str) -> (World, DeviceAddress, DeviceAddress, Vec<u8>) {
    let (mut w, [alice, _bob], [a1, b1]) = World::phones::<2>(label);
    let stale = w.device(a1).bundle(None, None);
    for _ in 0..3 {
        let (now, mut rng) = (w.now, w.rng.clone());
        w.device(a1).rotate_signed_prekey(&mut rng, now);
        w.rng = rng;
        w.persist(a1);
    }
    let now = w.now;
    let mut rng = w.rng.clone();
    w.device(b1)
        .start_sessions(&mut rng, now, &[(a1, stale)])
        .unwrap();
    w.rng = rng;
    w.persist(b1);
    let first = World::envelope_to(&w.send(b1, alice, b"on a stale bundle"), a1);
    (w, a1, b1, first)
}

/// Alice refuses it (`UnknownSignedPreKey`) unchanged, and Bob's next message on that session
/// too; one ask of Bob (`NoSession`, whose answer starts a session from Alice's current
/// bundle) reads the first, and Bob's later messages read.
#[test]
fn a_message_on_a_retired_signed_prekey_is_refused_unchanged_and_read_by_one_ask() {
    let (mut w, a1, b1, first) = on_a_retired_signed_prekey("r44 retired spk");
    let before = w.device(a1).to_bytes();
    let now = w.now;
    assert!(matches!(
        w.device(a1).receive(now, &first),
        Err(Error::X3dh(ratchetry::X3dhError::UnknownSignedPreKey(_)))
    ));
    assert_eq!(*before, *w.device(a1).to_bytes());
    assert!(!w.device(a1).has_changes());
    let second = World::envelope_to(&w.send(b1, a1.account, b"second"), a1);
    w.refused(
        a1,
        &second,
        ratchetry::X3dhError::UnknownSignedPreKey(1).into(),
    );
    let (to, request) = w.request_retry(a1, &first, RetryReason::NoSession).unwrap();
    assert_eq!(to, b1);
    let Ok(Received::RetryRequest(req)) = w.receive(b1, &request) else {
        panic!("the request is read")
    };
    let answer = w.answer(b1, &req, b"on a stale bundle");
    assert!(w.reads(&answer, b"on a stale bundle"));
    let later = w.send(b1, a1.account, b"later");
    assert!(w.reads(&later, b"later"));
}

/// The driver's decision for it, with nothing of it in the app's store: the sender answers
/// a retry (the test above), so the device should ask; it drops the envelope instead, and
/// every later message of Bob's session (pre-key messages on the same retired signed prekey
/// until Alice writes back) is dropped too.
#[test]
fn the_driver_asks_again_for_a_message_on_a_retired_signed_prekey() {
    let (mut w, a1, b1, first) = on_a_retired_signed_prekey("r44 retired spk driver");
    match w.step(a1, &first) {
        Inbound::AskAgain { to, .. } => assert_eq!(to, b1),
        other => panic!("{other:?}"),
    }
}

/// Bob's first message to Alice starts his session (a pre-key message). Three of his later
/// messages are broken by the relay and asked for again, so Alice holds three newer sessions
/// with Bob and has dropped the first (three per remote device); then Mallory turns Alice's
/// read ring. The relay replays the pre-key message: no held session continues it, and its
/// base key, remembered under the signed prekey, refuses it (`X3dh(Replayed)`) with Alice
/// byte-identical, across a restart from records; the driver shows nothing, and Bob's next
/// message still reads.
#[test]
fn a_pre_key_message_replayed_past_the_ring_and_its_session_is_refused_by_its_base_key() {
    let (mut w, [alice, _bob, _mallory], [a1, b1, m1]) = World::phones::<3>("r44 base keys");
    let first = w.send(b1, alice, b"first");
    w.deliver_ok(&first);
    let first = World::envelope_to(&first, a1);
    for i in 0..3 {
        let body = format!("broken {i}");
        let o = w.send(b1, alice, body.as_bytes());
        let broken = support::tampered(&World::envelope_to(&o, a1));
        assert!(w.receive(a1, &broken).is_err());
        let answer = w.ask_again(a1, b1, &broken, body.as_bytes());
        assert!(w.reads(&answer, body.as_bytes()));
    }
    for i in 0..ratchetry::fanout::MAX_REMEMBERED_MESSAGE_IDS {
        let o = w.send(m1, alice, format!("flood {i}").as_bytes());
        w.deliver_ok(&o);
    }
    for round in 0..2 {
        w.refused(a1, &first, ratchetry::X3dhError::Replayed.into());
        // The app's store holds the message read from it: the replay is a duplicate. (A
        // store without it asks again, as for a session pushed out by answers:
        // `restore_life::a_prekey_message_of_a_session_pushed_out_by_answers_is_asked_for_again`.)
        let now = w.now;
        let read = ratchetry::fanout::EnvelopeId::of(&first);
        let mut device = w.devices.remove(&a1).unwrap();
        let step =
            ratchetry::driver::Receiving::new()
                .step(&mut device, &mut w.rng, now, &first, |id| *id == read);
        assert!(!device.has_changes());
        w.devices.insert(a1, device);
        assert!(matches!(
            step,
            Ok(ratchetry::driver::ReceiveStep::Done(Inbound::Duplicate(id))) if id == read
        ));
        if round == 0 {
            w.restart(a1);
        }
    }
    let o = w.send(b1, alice, b"after");
    assert!(w.reads(&o, b"after"));
}

/// The relay hands one of Alice's one-time ML-KEM prekeys to Bob and, again, to Carol (it
/// serves any bundle it holds). Bob's first message consumes it; Carol's names a KEM prekey
/// Alice no longer holds. Returns the world, Alice's and Carol's phones and Carol's message.
fn kem_prekey_served_twice(label: &str) -> (World, DeviceAddress, DeviceAddress, Vec<u8>) {
    let (mut w, [alice, _bob, _carol], [a1, b1, c1]) = World::phones::<3>(label);
    let (now, mut rng) = (w.now, w.rng.clone());
    let upload = w.device(a1).generate_one_time_prekeys(&mut rng, now, 1);
    w.persist(a1);
    let kem = upload.kem_keys()[0].id;
    let bundle = w.device(a1).bundle(None, Some(kem));
    for d in [b1, c1] {
        w.device(d)
            .start_sessions(&mut rng, now, &[(a1, bundle.clone())])
            .unwrap();
        w.persist(d);
    }
    w.rng = rng;
    let o = w.send(b1, alice, b"from bob");
    assert!(w.reads(&o, b"from bob"));
    let carol = World::envelope_to(&w.send(c1, alice, b"from carol"), a1);
    (w, a1, c1, carol)
}

/// Carol's message is refused (`UnknownKemPreKey`) with Alice unchanged; one `NoSession` ask
/// reads it.
#[test]
fn a_message_on_a_kem_prekey_served_twice_is_refused_unchanged_and_read_by_one_ask() {
    let (mut w, a1, c1, carol) = kem_prekey_served_twice("r44 kem twice");
    let before = w.device(a1).to_bytes();
    let now = w.now;
    assert!(matches!(
        w.device(a1).receive(now, &carol),
        Err(Error::X3dh(ratchetry::X3dhError::UnknownKemPreKey(_)))
    ));
    assert_eq!(*before, *w.device(a1).to_bytes());
    assert!(!w.device(a1).has_changes());
    let (to, request) = w.request_retry(a1, &carol, RetryReason::NoSession).unwrap();
    assert_eq!(to, c1);
    let Ok(Received::RetryRequest(req)) = w.receive(c1, &request) else {
        panic!("the request is read")
    };
    let answer = w.answer(c1, &req, b"from carol");
    assert!(w.reads(&answer, b"from carol"));
}

/// The driver asks again for a one-time X25519 prekey no longer held, but drops the same
/// case for the one-time ML-KEM prekey.
#[test]
fn the_driver_asks_again_for_a_message_on_a_kem_prekey_served_twice() {
    let (mut w, a1, c1, carol) = kem_prekey_served_twice("r44 kem twice driver");
    match w.step(a1, &carol) {
        Inbound::AskAgain { to, .. } => assert_eq!(to, c1),
        other => panic!("{other:?}"),
    }
}
