//! A sent message keeps a digest of its body so that a retry is answered only with the body
//! sent (PROTOCOL.md 19.3). Entries journaled by an earlier release carry SHA-256 digests
//! (tags 2 and 3); they still load, and their retries are still answered with their bodies.

mod support;

use ratchetry::FanoutError;
use ratchetry::fanout::{Received, RetryReason};
use ratchetry::group::GroupId;
use sha2::{Digest, Sha256};
use support::{World, body, tampered};

/// Sent-message records: kind 0x0f, then the send id.
const SENT: u8 = 0x0f;
/// The tag's offset in a sent record: after `u64(sent_at) ‖ digest (16)`.
const TAG_AT: usize = 24;

/// Rewrites `device`'s stored record of `send_id` as an earlier release wrote it (SHA-256
/// digest of `body`, tag `tag`), and restarts the device from its store.
fn journaled_by_earlier_release(
    w: &mut World,
    device: ratchetry::devices::DeviceAddress,
    send_id: u64,
    body: &[u8],
    tag: u8,
) {
    let mut key = vec![SENT];
    key.extend_from_slice(&send_id.to_be_bytes());
    let value = w.stores.get_mut(&device).unwrap().0.get_mut(&key).unwrap();
    assert_eq!(value[TAG_AT], tag + 3, "written now with the keyed tag");
    value[8..24].copy_from_slice(&Sha256::digest(body)[..16]);
    value[TAG_AT] = tag;
    w.restart(device);
}

/// `requester` could not read `envelope` and asks its sender, `sender`, for it again; the
/// sender's app answers with `answer`.
fn answer_with(
    w: &mut World,
    requester: ratchetry::devices::DeviceAddress,
    sender: ratchetry::devices::DeviceAddress,
    envelope: &[u8],
    answer: &[u8],
) -> Result<ratchetry::fanout::Outbox, ratchetry::Error> {
    let bad = tampered(envelope);
    assert!(w.receive(requester, &bad).is_err());
    let (to, request) = w
        .request_retry(requester, &bad, RetryReason::AuthenticationFailed)
        .unwrap();
    assert_eq!(to, sender);
    let Ok(Received::RetryRequest(req)) = w.receive(sender, &request) else {
        panic!("the sender accepts the request")
    };
    w.run(sender, |d, rng, now| d.answer_retry(rng, now, &req, answer))
}

#[test]
fn a_direct_entry_with_a_sha256_digest_answers_with_its_body_only() {
    let mut w = World::new("body digest direct");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let o = w.send(a1, bob, b"three");
    journaled_by_earlier_release(&mut w, a1, o.send_id.unwrap().0, b"three", 3);
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
    let mut w = World::new("body digest group");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let group = GroupId([7; 32]);
    w.set_members(group, &[alice, bob]);
    let first = w.send_group(a1, group, b"hello");
    w.deliver_ok(&first);
    let o = w.send_group(a1, group, b"four");
    journaled_by_earlier_release(&mut w, a1, o.send_id.unwrap().0, b"four", 2);
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
