//! Review 35, by a helper briefed as a cryptographer, of this stop's performance changes
//! (meant to change no byte on the wire or in records; the protocol vectors hold that): which
//! refusal a send reports and that a refused send changes nothing, that the recipients an
//! outbox shares cannot change the group's kept reach, and that account keys order as their
//! bytes.

mod support;

use ratchetry::calls::{Call, CallConfig, CallKind};
use ratchetry::devices::{AccountKey, AccountKeyPair, DeviceAddress};
use ratchetry::group::GroupId;
use ratchetry::testing::{SeededRng, hooks};
use ratchetry::{Error, GroupError, RatchetError};
use support::World;

const ROOM: GroupId = GroupId([0x35; 32]);

/// A group send that both a pairwise refusal (a new device's session at its chain's end) and
/// the sender key's end refuse reports the sender key, as before the sessions were checked in
/// one pass (the review found the pairwise refusal reported first), and changes nothing.
#[test]
fn a_group_send_refused_both_ways_names_the_sender_key() {
    let (mut w, b4, a1) = group_with_new_device("review 35 both refusals");
    assert!(hooks::exhaust_sending_chain(w.device(a1), &b4));
    assert!(hooks::exhaust_sender_key(w.device(a1), ROOM));
    let before = w.device(a1).to_bytes();
    let now = w.now;
    let mut rng = w.rng.clone();
    let sent = w.device(a1).send_group(&mut rng, now, ROOM, b"refused");
    assert_eq!(*before, *w.device(a1).to_bytes());
    assert!(!w.device(a1).has_changes());
    assert_eq!(
        sent.err(),
        Some(Error::from(GroupError::ChainExhausted)),
        "the sender key's refusal first"
    );
}

/// Alice and Bob (two devices) in ROOM, a group message sent; then Bob links a third device,
/// Alice starts a session with it and sends it a 1:1 message (so its session has a sending
/// chain), and the group's next send must give it the key. Returns `(world, b3, a1)`.
fn group_with_new_device(label: &str) -> (World, DeviceAddress, DeviceAddress) {
    let (mut w, alice, bob, _) = World::group_sent(label, ROOM, [0, 1]);
    let a1 = World::addr(alice, 1);
    let b3 = w.link(&bob);
    w.publish_all();
    w.set_members(ROOM, &[alice, bob]);
    let o = w.send(a1, bob, b"hello, new device");
    w.deliver_ok(&o);
    (w, b3, a1)
}

/// A group send refused at a new device's session (its chain at its end) leaves the state
/// byte-identical with nothing marked: `prepare_seal` refuses before the sender key rotates or
/// any session advances. The send then goes on once the session is replaced.
#[test]
fn a_group_send_refused_at_a_new_device_changes_nothing() {
    let (mut w, b3, a1) = group_with_new_device("review 35 group refusal");
    assert!(hooks::exhaust_sending_chain(w.device(a1), &b3));
    let before = w.device(a1).to_bytes();
    let now = w.now;
    let mut rng = w.rng.clone();
    let sent = w.device(a1).send_group(&mut rng, now, ROOM, b"refused");
    assert_eq!(sent.err(), Some(Error::from(RatchetError::ChainExhausted)));
    assert_eq!(*before, *w.device(a1).to_bytes());
    assert!(!w.device(a1).has_changes());
    // A payload send (send_journaled's path) refused the same way changes nothing either.
    let call = Call::start(
        &mut rng,
        CallKind::OneToOne,
        a1,
        &[b3],
        &CallConfig::default(),
    )
    .unwrap();
    let sent = w
        .device(a1)
        .send_call_key(&mut rng, now, &[b3], call.key_message());
    assert_eq!(sent.err(), Some(Error::from(RatchetError::ChainExhausted)));
    assert_eq!(*before, *w.device(a1).to_bytes());
    assert!(!w.device(a1).has_changes());
}

/// A refused 1:1 send where the refused device comes after devices that would seal (Bob's
/// last device, then Alice's own companion after it): nothing advanced, nothing marked.
#[test]
fn a_direct_send_refused_after_sealable_devices_changes_nothing() {
    let mut w = World::new("review 35 direct refusal");
    let alice = w.account(1);
    let bob = w.account(2);
    w.publish_all();
    let a1 = World::addr(alice, 1);
    let o = w.send(a1, bob, b"warm");
    w.deliver_ok(&o);
    for victim in [World::addr(bob, 3), World::addr(alice, 2)] {
        assert!(hooks::exhaust_sending_chain(w.device(a1), &victim));
        let before = w.device(a1).to_bytes();
        let now = w.now;
        let mut rng = w.rng.clone();
        let sent = w.device(a1).send(&mut rng, now, &bob, b"refused");
        assert_eq!(sent.err(), Some(Error::from(RatchetError::ChainExhausted)));
        assert_eq!(*before, *w.device(a1).to_bytes());
        assert!(!w.device(a1).has_changes());
        w.restart(a1);
    }
}

/// A steady group send hands out the reach's own `Arc`s. An app cannot change the kept reach
/// through them (`Arc::get_mut` is refused while shared; `make_mut` copies): the next send's
/// recipients and coverage are what they were.
#[test]
fn shared_recipients_cannot_change_the_kept_reach() {
    let (mut w, alice, _, first) = World::group_sent("review 35 shared reach", ROOM, [1, 2]);
    let a1 = World::addr(alice, 1);
    let mut steady = w.send_group(a1, ROOM, b"steady");
    let (_, mut recipients) = steady.group.clone().unwrap();
    let original: Vec<DeviceAddress> = recipients.to_vec();
    assert_eq!(original, first.group.as_ref().unwrap().1.to_vec());
    assert!(std::sync::Arc::get_mut(&mut recipients).is_none(), "shared");
    std::sync::Arc::make_mut(&mut recipients).reverse();
    std::sync::Arc::make_mut(&mut steady.coverage).reverse();
    if let Some((_, r)) = steady.group.as_mut() {
        std::sync::Arc::make_mut(r)[0] = World::addr(alice, 1);
    }
    let again = w.send_group(a1, ROOM, b"again");
    assert_eq!(again.group.as_ref().unwrap().1.to_vec(), original);
    assert_eq!(again.coverage.to_vec(), first.coverage.to_vec());
    w.deliver_ok(&again);
}

/// `AccountKey`'s hand-written order is the bytes' order, for real keys; and what a send sorts
/// by it (coverage, group recipients) is in the bytes' order.
#[test]
fn account_keys_order_as_their_bytes() {
    let mut rng = SeededRng::from_label("review 35 account order");
    let mut keys: Vec<AccountKey> = (0..300)
        .map(|_| AccountKeyPair::generate(&mut rng).public())
        .collect();
    // Keys sharing a long prefix: the words past the first decide.
    let base = keys[0].to_bytes();
    let mut near = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let mut b = k.to_bytes();
        b[..8 * (1 + i % 3)].copy_from_slice(&base[..8 * (1 + i % 3)]);
        if let Ok(k) = AccountKey::from_bytes(&b) {
            near.push(k);
        }
    }
    assert!(near.len() > 50, "{} keys sharing a prefix", near.len());
    keys.extend(near);
    keys.dedup();
    let mut by_bytes = keys.clone();
    by_bytes.sort_by_key(|k| k.to_bytes());
    keys.sort();
    assert_eq!(keys, by_bytes);
    for (a, b) in keys.iter().zip(&keys[1..]) {
        assert_eq!(a.cmp(b), a.to_bytes().cmp(&b.to_bytes()));
        assert_eq!(b.cmp(a), b.to_bytes().cmp(&a.to_bytes()));
    }

    let mut w = World::new("review 35 sorted outbox");
    let accounts: Vec<AccountKey> = (0..5).map(|_| w.account(1)).collect();
    w.publish_all();
    w.set_members(ROOM, &accounts);
    let a1 = World::addr(accounts[0], 1);
    let o = w.send_group(a1, ROOM, b"sorted");
    let encoded = |a: &DeviceAddress| {
        let mut v = a.account.to_bytes().to_vec();
        v.extend_from_slice(&a.device.0.to_be_bytes());
        v
    };
    let recipients = &o.group.as_ref().unwrap().1;
    assert!(
        recipients
            .windows(2)
            .all(|p| encoded(&p[0]) < encoded(&p[1]))
    );
    let cov: Vec<[u8; 32]> = o.coverage.iter().map(|c| c.account.to_bytes()).collect();
    assert_eq!(cov.len(), 5);
    assert!(cov.windows(2).all(|p| p[0] < p[1]));
}
