//! Call key sends are journaled (PROTOCOL.md 18.4, sent kind 4): their outbox has a send id,
//! and a device that cannot read one asks again like for any message. The answer is the
//! call's key message as the manager holds it then (payload 0x08, 18.6): never an epoch older
//! than the one asked for, and nothing for a device no longer in the call.

mod support;

use ratchetry::calls::{Call, CallConfig, CallKind};
use ratchetry::devices::DeviceAddress;
use ratchetry::fanout::{Outbox, Received, RetryReason, RetryRequest};
use ratchetry::testing::hooks::seal_raw_payload;
use ratchetry::{Error, FanoutError, SyncError};
use support::{World, tampered};

struct Setup {
    w: World,
    /// Alice's phone manages the call.
    a1: DeviceAddress,
    b1: DeviceAddress,
    c1: DeviceAddress,
    call: Call,
    /// The epoch-0 key message's outbox, its copy to Bob broken by the relay.
    first: Outbox,
    broken: Vec<u8>,
}

/// Alice calls Bob and Carol and sends them the epoch-0 key; the relay breaks Bob's copy.
fn setup(label: &str) -> Setup {
    let mut w = World::new(label);
    let alice = w.account(0);
    let bob = w.account(0);
    let carol = w.account(0);
    w.publish_all();
    let (a1, b1, c1) = (
        World::addr(alice, 1),
        World::addr(bob, 1),
        World::addr(carol, 1),
    );
    let config = CallConfig::default();
    let call = Call::start(&mut w.rng, CallKind::Group, a1, &[b1, c1], &config).unwrap();
    let first = send_key(&mut w, a1, &[b1, c1], &call);
    let broken = tampered(&World::envelope_to(&first, b1));
    assert!(w.receive(b1, &broken).is_err());
    Setup {
        w,
        a1,
        b1,
        c1,
        call,
        first,
        broken,
    }
}

fn send_key(w: &mut World, from: DeviceAddress, to: &[DeviceAddress], call: &Call) -> Outbox {
    let message = call.key_message().clone();
    w.run(from, |d, rng, now| d.send_call_key(rng, now, to, &message))
        .unwrap()
}

/// `requester` asks the manager again for `failed`; returns the request as the manager's app
/// sees it.
fn ask(s: &mut Setup, requester: DeviceAddress, failed: &[u8]) -> RetryRequest {
    let (to, request) =
        s.w.request_retry(requester, failed, RetryReason::AuthenticationFailed)
            .unwrap();
    assert_eq!(to, s.a1);
    let Ok(Received::RetryRequest(req)) = s.w.receive(s.a1, &request) else {
        panic!("the manager reads the request")
    };
    req
}

/// The manager answers `req` with `call`, or the error, with nothing changed on failure.
fn answer(s: &mut Setup, req: &RetryRequest, call: &Call) -> Result<Outbox, Error> {
    let a1 = s.a1;
    let before = s.w.device(a1).to_bytes();
    let r = s.w.run(a1, |d, rng, now| {
        d.answer_call_key_retry(rng, now, req, call)
    });
    if r.is_err() {
        assert_eq!(
            *before,
            *s.w.device(a1).to_bytes(),
            "a refusal changed the manager"
        );
    }
    r
}

#[test]
fn a_call_key_retry_is_answered_with_the_current_epoch() {
    let mut s = setup("call key retry current epoch");
    let send_id = s.first.send_id.expect("a call key send has a send id");
    // Dave joins: epoch 1 goes to everyone, Bob's copy lost too.
    let dave = s.w.account(0);
    s.w.publish_all();
    let d1 = World::addr(dave, 1);
    let config = CallConfig::default();
    s.call.join(&mut s.w.rng, d1, &config).unwrap();
    let (b1, c1, a1) = (s.b1, s.c1, s.a1);
    let second = send_key(&mut s.w, a1, &[b1, c1, d1], &s.call);
    assert_ne!(second.send_id, Some(send_id));
    // Bob asks for the epoch-0 message he could not read.
    let broken = s.broken.clone();
    let req = ask(&mut s, b1, &broken);
    assert_eq!((req.send_id, req.from, req.attempt), (send_id, b1, 1));
    let call = s.call.clone();
    let resend = answer(&mut s, &req, &call).unwrap();
    assert_eq!(resend.envelopes.len(), 1);
    let Received::CallKey { from, message } = s.w.receive(b1, &resend.envelopes[0].1).unwrap()
    else {
        panic!("a call key")
    };
    assert_eq!((from, message.epoch()), (a1, 1));
    let bobs = Call::from_key_message(b1, &from, message, &config).unwrap();
    assert_eq!(bobs.srtp_keys(&a1).unwrap(), s.call.srtp_keys(&a1).unwrap());
    // The genuine epoch-0 copy, arriving now, is a duplicate: the resend replaced it.
    let genuine = World::envelope_to(&s.first, b1);
    assert!(matches!(
        s.w.receive(b1, &genuine),
        Err(Error::Fanout(FanoutError::Duplicate { .. }))
    ));
    // The request is answered once.
    assert!(matches!(
        answer(&mut s, &req, &call),
        Err(Error::Fanout(FanoutError::Duplicate { .. }))
    ));
}

/// A participant holding epoch 1 asks for the epoch-1 message again (its copy was broken);
/// the manager's app hands in a stale snapshot of the call, at epoch 0: refused, so the
/// participant is never sent back to an epoch a removed participant may hold.
#[test]
fn a_stale_call_never_answers_a_retry() {
    let mut s = setup("call key retry stale");
    let stale = s.call.clone();
    let (a1, b1, c1) = (s.a1, s.b1, s.c1);
    let config = CallConfig::default();
    s.call.join(&mut s.w.rng, c1, &config).unwrap();
    let second = send_key(&mut s.w, a1, &[b1, c1], &s.call);
    let broken = tampered(&World::envelope_to(&second, c1));
    assert!(s.w.receive(c1, &broken).is_err());
    let req = ask(&mut s, c1, &broken);
    assert_eq!(
        answer(&mut s, &req, &stale).err(),
        Some(SyncError::StaleCallKey.into())
    );
    let call = s.call.clone();
    assert!(answer(&mut s, &req, &call).is_ok());
}

/// Bob's epoch-0 copy was broken, and Alice removed Bob since: his retry for the epoch-0
/// message gets nothing, since the only key Alice would send is one he must not have.
#[test]
fn a_participant_removed_since_gets_no_key_by_retry() {
    let mut s = setup("call key retry removed");
    let (a1, b1, c1) = (s.a1, s.b1, s.c1);
    s.call.remove(&mut s.w.rng, &b1).unwrap();
    send_key(&mut s.w, a1, &[c1], &s.call);
    let broken = s.broken.clone();
    let req = ask(&mut s, b1, &broken);
    let call = s.call.clone();
    assert_eq!(
        answer(&mut s, &req, &call).err(),
        Some(SyncError::NotInCall.into())
    );
}

/// A call key request is answered only with the call it was for, and a message request only
/// with its body: the two answers cannot stand in for each other.
#[test]
fn call_key_and_message_retries_take_only_their_own_answer() {
    let mut s = setup("call key retry kinds");
    let (a1, b1) = (s.a1, s.b1);
    let broken = s.broken.clone();
    let req = ask(&mut s, b1, &broken);
    let a1_body =
        s.w.run(a1, |d, rng, now| d.answer_retry(rng, now, &req, b""));
    assert_eq!(a1_body.err(), Some(FanoutError::BodyMismatch.into()));
    let config = CallConfig::default();
    let other = Call::start(&mut s.w.rng, CallKind::Group, a1, &[b1], &config).unwrap();
    assert_eq!(
        answer(&mut s, &req, &other).err(),
        Some(FanoutError::BodyMismatch.into())
    );
    // A 1:1 message Bob could not read is not answered with a call.
    let bob = b1.account;
    let o = s.w.send(a1, bob, b"text");
    let broken = tampered(&World::envelope_to(&o, b1));
    assert!(s.w.receive(b1, &broken).is_err());
    let text_req = ask(&mut s, b1, &broken);
    let call = s.call.clone();
    assert_eq!(
        answer(&mut s, &text_req, &call).err(),
        Some(FanoutError::BodyMismatch.into())
    );
}

/// Carol forwards the key message of a call Bob manages; asked again, she cannot answer with
/// her copy of the call: only the manager's key messages move a call.
#[test]
fn only_the_calls_manager_answers_with_its_key() {
    let mut s = setup("call key retry manager");
    let (a1, b1, c1) = (s.a1, s.b1, s.c1);
    let config = CallConfig::default();
    let bobs = Call::start(&mut s.w.rng, CallKind::Group, b1, &[a1, c1], &config).unwrap();
    let o = send_key(&mut s.w, b1, &[a1], &bobs);
    let Received::CallKey { from, message } = s.w.receive(a1, &o.envelopes[0].1).unwrap() else {
        panic!("a call key")
    };
    let alices = Call::from_key_message(a1, &from, message, &config).unwrap();
    let forwarded = send_key(&mut s.w, a1, &[c1], &alices);
    let broken = tampered(&forwarded.envelopes[0].1);
    assert!(s.w.receive(c1, &broken).is_err());
    let req = ask(&mut s, c1, &broken);
    assert_eq!(
        answer(&mut s, &req, &alices).err(),
        Some(SyncError::NotCallManager.into())
    );
}

/// A call key resend (payload 0x08) that answers no retry of the receiver's is refused, with
/// nothing changed: a device cannot push a call key as an "answer".
#[test]
fn an_unasked_call_key_resend_is_refused() {
    let mut s = setup("call key retry unasked");
    let (a1, c1) = (s.a1, s.c1);
    let key = s.call.key_message().to_bytes();
    let payload = [&[2u8, 0x0c, 0x08][..], &[0x33; 16], &key].concat();
    let now = s.w.now;
    let envelope = {
        let d = s.w.devices.get_mut(&a1).unwrap();
        seal_raw_payload(d, &mut s.w.rng, now, c1, &payload).unwrap()
    };
    s.w.refused(c1, &envelope, FanoutError::UnexpectedResend.into());
}
