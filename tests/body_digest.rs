//! A sent message keeps a digest of its body so that a retry is answered only with the body
//! sent (PROTOCOL.md 19.3). Entries journaled by an earlier release carry SHA-256 digests
//! (tags 2 and 3); they still load, and their retries are still answered with their bodies. A
//! group entry of the previous release holds its answers inline (tags 5 and 2): it loads with
//! them, and the load's unit writes them in records of their own.

mod support;

use ratchetry::FanoutError;
use ratchetry::devices::DeviceAddress;
use ratchetry::fanout::{EnvelopeId, Received, RetryReason, RetryRequest};
use ratchetry::group::GroupId;
use sha2::{Digest, Sha256};
use support::{World, body, sent_key, tampered};

/// A requester's answers to a group message: kind 0x17, the send id, the requester.
const ANSWERED: u8 = 0x17;
/// The tag's offset in a sent record: after `u64(sent_at) ‖ digest (16)`.
const TAG_AT: usize = 24;

/// Rewrites `device`'s stored record of `send_id`, written now under `now_tag`, as an earlier
/// release wrote it (SHA-256 digest of `body`, tag `tag`, then `inline`), and restarts the
/// device from its store.
fn journaled_by_earlier_release(
    w: &mut World,
    device: DeviceAddress,
    send_id: u64,
    body: &[u8],
    (now_tag, tag): (u8, u8),
    inline: &[u8],
) {
    let value = w
        .stores
        .get_mut(&device)
        .unwrap()
        .0
        .get_mut(&sent_key(send_id))
        .unwrap();
    assert_eq!(value[TAG_AT], now_tag, "written now with the keyed tag");
    value[8..24].copy_from_slice(&Sha256::digest(body)[..16]);
    value[TAG_AT] = tag;
    value.extend_from_slice(inline);
    w.restart(device);
}

/// `requester` could not read `envelope` and asks its sender, `sender`, for it again; the
/// sender's app answers with `answer`.
fn answer_with(
    w: &mut World,
    requester: DeviceAddress,
    sender: DeviceAddress,
    envelope: &[u8],
    answer: &[u8],
) -> Result<ratchetry::fanout::Outbox, ratchetry::Error> {
    let (_, req) = ask(w, requester, sender, &tampered(envelope));
    w.run(sender, |d, rng, now| d.answer_retry(rng, now, &req, answer))
}

/// `requester` fails to read `bad` and asks `sender` for it again, who accepts: the request's
/// envelope, and the request as `sender` received it.
fn ask(
    w: &mut World,
    requester: DeviceAddress,
    sender: DeviceAddress,
    bad: &[u8],
) -> (Vec<u8>, RetryRequest) {
    assert!(w.receive(requester, bad).is_err());
    let (to, request) = w
        .request_retry(requester, bad, RetryReason::AuthenticationFailed)
        .unwrap();
    assert_eq!(to, sender);
    let Ok(Received::RetryRequest(req)) = w.receive(sender, &request) else {
        panic!("the sender accepts the request")
    };
    (request, req)
}

#[test]
fn a_direct_entry_with_a_sha256_digest_answers_with_its_body_only() {
    let mut w = World::new("body digest direct");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let o = w.send(a1, bob, b"three");
    journaled_by_earlier_release(&mut w, a1, o.send_id.unwrap().0, b"three", (6, 3), &[]);
    let envelope = World::envelope_to(&o, b1);
    assert_eq!(
        answer_with(&mut w, b1, a1, &envelope, b"thr33").err(),
        Some(FanoutError::BodyMismatch.into())
    );
    let answer = answer_with(&mut w, b1, a1, &envelope, b"three").unwrap();
    assert_eq!(body(&w.deliver_ok(&answer)[0].1), Some(&b"three"[..]));
}

#[test]
fn a_group_entry_with_a_sha256_digest_answers_with_its_body_only() {
    let group = GroupId([7; 32]);
    let (mut w, alice, bob, _) = World::group_sent("body digest group", group, [0, 0]);
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let o = w.send_group(a1, group, b"four");
    // No answers yet: the inline count is zero.
    let inline = 0u32.to_be_bytes();
    journaled_by_earlier_release(&mut w, a1, o.send_id.unwrap().0, b"four", (7, 2), &inline);
    let envelope = o.group.as_ref().unwrap().0.clone();
    assert_eq!(
        answer_with(&mut w, b1, a1, &envelope, b"f0ur").err(),
        Some(FanoutError::BodyMismatch.into())
    );
    let answer = answer_with(&mut w, b1, a1, &envelope, b"four").unwrap();
    let read = w.deliver_ok(&answer);
    assert_eq!(
        read.iter().filter_map(|(_, r)| body(r)).collect::<Vec<_>>(),
        [&b"four"[..]]
    );
}

/// A group entry of the previous release with an answer inline (tag 5) loads with it: the
/// request answered is still refused as a duplicate, the requester's count still counts it,
/// and the load's unit writes the entry without it (tag 7) and the answer in its own record.
#[test]
fn a_group_entrys_inline_answers_load_and_move_to_records_of_their_own() {
    let group = GroupId([7; 32]);
    let (mut w, alice, bob, _) = World::group_sent("body digest inline answers", group, [0, 0]);
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let o = w.send_group(a1, group, b"five");
    let send_id = o.send_id.unwrap().0;
    let bad = tampered(&o.group.as_ref().unwrap().0);
    let (request, req) = ask(&mut w, b1, a1, &bad);
    w.run(a1, |d, rng, now| d.answer_retry(rng, now, &req, b"five"))
        .unwrap();
    // The answer is a record of its own; the entry is as it was written at the send.
    let answer_key = [&[ANSWERED][..], &send_id.to_be_bytes(), &b1.to_bytes()].concat();
    let records = &mut w.stores.get_mut(&a1).unwrap().0;
    let answers = records.remove(&answer_key).expect("the answer's record");
    assert_eq!(answers[0], 1, "one request answered");
    let written_now = records[&sent_key(send_id)].clone();
    assert_eq!(written_now[TAG_AT], 7);
    // As the previous release wrote it: tag 5, then one requester and its answers.
    let mut inline = 1u32.to_be_bytes().to_vec();
    inline.extend_from_slice(&b1.to_bytes());
    inline.extend_from_slice(&answers);
    let value = records.get_mut(&sent_key(send_id)).unwrap();
    value[TAG_AT] = 5;
    value.extend_from_slice(&inline);
    w.restart(a1);
    assert_eq!(
        w.run(a1, |d, rng, now| d.answer_retry(rng, now, &req, b"five"))
            .err(),
        Some(
            FanoutError::Duplicate {
                envelope_id: EnvelopeId::of(&request)
            }
            .into()
        ),
        "the answer inline is remembered"
    );
    w.persist(a1);
    let records = &w.stores[&a1].0;
    assert_eq!(records[&sent_key(send_id)], written_now, "rewritten apart");
    assert_eq!(
        records[&answer_key], answers,
        "the answer in its own record"
    );
    // Bob asks again: his second request, counted after the one answered inline.
    let (_, second) = ask(&mut w, b1, a1, &bad);
    assert_eq!(second.attempt, 2);
}
