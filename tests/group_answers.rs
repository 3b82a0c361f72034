//! The retry requests a sender answered for one of its group messages (PROTOCOL.md 18.6, 19.1
//! kind 0x17): one record per requesting device, so that an answer writes that device's
//! answers and not the message's entry, and the cost of the thousandth answer is the cost of
//! the first. A group of 1,024 members with three devices each can ask for one message about
//! 3,000 times; with the answers inline in the entry, each answer rewrote all those before it.

mod support;

use ratchetry::DecodeError;
use ratchetry::devices::{AccountKey, DeviceAddress};
use ratchetry::fanout::{Outgoing, Received, RetryReason};
use ratchetry::group::GroupId;
use support::{DAY, Store, World, answered_key, body, sent_key, tampered};

const ANSWERED: u8 = 0x17;

/// Alice's phone and `members` accounts of `companions + 1` devices each in one group; Alice
/// has sent one message to it that every member device read.
struct Sent {
    w: World,
    a1: DeviceAddress,
    requesters: Vec<DeviceAddress>,
    group: GroupId,
    send_id: u64,
    /// The group message, damaged in transit as each requester got it.
    damaged: Vec<u8>,
}

fn sent_to_a_group(label: &str, members: usize, companions: usize) -> Sent {
    let mut w = World::new(label);
    let alice = w.account(0);
    let accounts: Vec<AccountKey> = (0..members).map(|_| w.account(companions)).collect();
    w.publish_all();
    let a1 = World::addr(alice, 1);
    let group = GroupId([4; 32]);
    let mut everyone = accounts.clone();
    everyone.push(alice);
    w.set_members(group, &everyone);
    let first = w.send_group(a1, group, b"hello");
    w.deliver_ok(&first);
    let o = w.send_group(a1, group, b"lost");
    w.persist(a1);
    let requesters = accounts.iter().flat_map(|a| w.devices_of(a)).collect();
    Sent {
        w,
        a1,
        requesters,
        group,
        send_id: o.send_id.unwrap().0,
        damaged: tampered(&o.group.as_ref().unwrap().0),
    }
}

impl Sent {
    /// `requester` asks again for the damaged message; Alice accepts and answers, and the
    /// answer is delivered if `delivered`. Returns the unit the answer left, written.
    fn ask_and_answer(
        &mut self,
        requester: DeviceAddress,
        delivered: bool,
    ) -> ratchetry::fanout::StateChanges {
        let w = &mut self.w;
        assert!(w.receive(requester, &self.damaged).is_err());
        let (_, request) = w
            .request_retry(requester, &self.damaged, RetryReason::AuthenticationFailed)
            .unwrap();
        let Ok(Received::RetryRequest(req)) = w.receive(self.a1, &request) else {
            panic!("Alice accepts {requester:?}'s request")
        };
        w.persist(self.a1);
        let (rng, now) = (&mut w.rng, w.now);
        let device = w.devices.get_mut(&self.a1).unwrap();
        let Ok(Outgoing::Ready(answer)) = device.answer_retry(rng, now, &req, b"lost") else {
            panic!("Alice answers from the request's bundle")
        };
        let unit = w.take(self.a1);
        w.stores.get_mut(&self.a1).unwrap().apply(&unit);
        if !delivered {
            return unit;
        }
        let read = w.deliver_ok(&answer);
        assert!(
            read.iter()
                .any(|(to, r)| *to == requester && body(r) == Some(&b"lost"[..])),
            "the requester reads it"
        );
        unit
    }

    fn store(&self) -> &Store {
        &self.w.stores[&self.a1]
    }
}

/// Each answer's unit writes the requester's own answers record and never the message's entry:
/// the unit's size is the same at the last requester as at the first. A requester answered
/// twice has both answers in its record. After a restart every answer still counts.
#[test]
fn an_answer_writes_its_requesters_record_and_not_the_entry() {
    let mut s = sent_to_a_group("group answers flat", 12, 1);
    assert_eq!(s.requesters.len(), 24);
    let entry = s.store().0[&sent_key(s.send_id)].clone();
    let mut sizes = Vec::new();
    // Two answers are lost on the way: those requesters ask again.
    let (first, third) = (s.requesters[0], s.requesters[2]);
    for requester in s.requesters.clone() {
        let unit = s.ask_and_answer(requester, requester != first && requester != third);
        let keys: Vec<&[u8]> = unit.records().iter().map(|r| r.key()).collect();
        assert!(!keys.contains(&&sent_key(s.send_id)[..]), "the entry stays");
        let answers = unit
            .records()
            .iter()
            .filter(|r| r.key()[0] == ANSWERED)
            .collect::<Vec<_>>();
        assert_eq!(answers.len(), 1, "one answers record");
        assert_eq!(answers[0].key(), answered_key(s.send_id, requester));
        // One request answered: its count, then its id.
        assert_eq!(answers[0].value().unwrap().len(), 1 + 16);
        sizes.push(
            unit.records()
                .iter()
                .map(|r| r.key().len() + r.value().map_or(0, <[u8]>::len))
                .sum::<usize>(),
        );
    }
    assert!(
        sizes.iter().all(|n| *n == sizes[0]),
        "every answer's unit is as large as the first's: {sizes:?}"
    );
    assert_eq!(s.store().0[&sent_key(s.send_id)], entry, "never rewritten");
    // The first requester asks again: its record now holds two answers.
    let unit = s.ask_and_answer(first, false);
    let record = unit
        .records()
        .iter()
        .find(|r| r.key() == answered_key(s.send_id, first))
        .unwrap();
    assert_eq!(record.value().unwrap()[0], 2);
    assert_eq!(record.value().unwrap().len(), 1 + 2 * 16);
    // Loaded from its records, Alice counts every answer: the first requester's third request
    // is its third, the third requester's second is its second.
    s.w.restart(s.a1);
    for (requester, attempt) in [(first, 3), (third, 2)] {
        let (_, request) =
            s.w.request_retry(requester, &s.damaged, RetryReason::AuthenticationFailed)
                .unwrap();
        let Ok(Received::RetryRequest(req)) = s.w.receive(s.a1, &request) else {
            panic!("Alice accepts the request")
        };
        assert_eq!(req.attempt, attempt);
    }
}

/// A group entry the journal forgets (here by age, at the next send) takes its answers records
/// with it: the unit deletes the entry and each answers record, and the store then loads.
#[test]
fn a_forgotten_group_entry_deletes_its_answers_records() {
    let mut s = sent_to_a_group("group answers forgotten", 2, 1);
    for requester in s.requesters.clone() {
        let _ = s.ask_and_answer(requester, true);
    }
    let answers: Vec<Vec<u8>> = s
        .requesters
        .iter()
        .map(|r| answered_key(s.send_id, *r))
        .collect();
    assert!(answers.iter().all(|k| s.store().0.contains_key(k)));
    s.w.now = ratchetry::Timestamp(s.w.now.as_millis() + 8 * DAY);
    let (rng, now, group) = (&mut s.w.rng, s.w.now, s.group);
    let device = s.w.devices.get_mut(&s.a1).unwrap();
    let Ok(Outgoing::Ready(_)) = device.send_group(rng, now, group, b"a week later") else {
        panic!("Alice sends on her sessions")
    };
    let unit = s.w.take(s.a1);
    for key in answers.iter().chain([&sent_key(s.send_id)]) {
        assert!(
            unit.records()
                .iter()
                .any(|r| r.key() == key.as_slice() && r.value().is_none()),
            "{key:02x?} is deleted"
        );
    }
    s.w.stores.get_mut(&s.a1).unwrap().apply(&unit);
    assert!(s.store().0.keys().all(|k| k[0] != ANSWERED));
    s.w.restart(s.a1);
}

/// An answers record loads only as an answer wrote it: beside its group entry, with one to
/// three ids, never beside the entry's answers inline (the previous release's form), never for
/// a 1:1 message or a send the journal does not hold.
#[test]
fn answers_records_load_only_as_written() {
    let mut s = sent_to_a_group("group answers refused", 1, 0);
    let requester = s.requesters[0];
    let _ = s.ask_and_answer(requester, true);
    let store = s.store().clone();
    let key = answered_key(s.send_id, requester);
    let value = store.0[&key].clone();
    store.try_load().expect("as written");
    let with = |edit: &dyn Fn(&mut Store)| {
        let mut copy = store.clone();
        edit(&mut copy);
        copy.try_load().err()
    };
    let refused = Some(DecodeError::InvalidValue);
    // No ids; four ids.
    assert_eq!(with(&|c| *c.0.get_mut(&key).unwrap() = vec![0]), refused);
    let four = [&[4][..], &[7; 64]].concat();
    assert_eq!(
        with(&|c| *c.0.get_mut(&key).unwrap() = four.clone()),
        refused
    );
    // Trailing bytes.
    let longer = [&value[..], &[0]].concat();
    assert_eq!(
        with(&|c| *c.0.get_mut(&key).unwrap() = longer.clone()),
        Some(DecodeError::TrailingBytes)
    );
    // For a send the journal does not hold.
    let unheld = answered_key(s.send_id + 1, requester);
    assert_eq!(
        with(&|c| c.0.insert(unheld.clone(), value.clone()).map_or((), drop)),
        refused
    );
    assert_eq!(
        with(&|c| {
            c.0.remove(&sent_key(s.send_id));
        }),
        refused
    );
    // Beside the entry in the previous release's form (tag 5), its answers inline.
    let inline = |answers: &[u8]| {
        let mut entry = store.0[&sent_key(s.send_id)].clone();
        entry[24] = 5;
        entry.extend_from_slice(answers);
        entry
    };
    let none_inline = inline(&0u32.to_be_bytes());
    assert_eq!(
        with(&|c| *c.0.get_mut(&sent_key(s.send_id)).unwrap() = none_inline.clone()),
        refused
    );
    // Inline alone, it loads and counts: the form that load rewrites.
    let one_inline = inline(&[&1u32.to_be_bytes()[..], &requester.to_bytes(), &value].concat());
    assert!(
        with(&|c| {
            *c.0.get_mut(&sent_key(s.send_id)).unwrap() = one_inline.clone();
            c.0.remove(&key);
        })
        .is_none()
    );
    // For a 1:1 message.
    let b1 = requester;
    let alice = s.a1.account;
    let o = s.w.send(b1, alice, b"direct");
    s.w.persist(b1);
    let direct = answered_key(o.send_id.unwrap().0, s.a1);
    let mut bob = s.w.stores[&b1].clone();
    bob.try_load().expect("as written");
    bob.0.insert(direct, value.clone());
    assert_eq!(bob.try_load().err(), refused);
}
