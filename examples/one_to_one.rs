//! A 1:1 conversation between Alice and Bob through an in-memory "server" that stores Bob's
//! prekey bundle and relays bytes, with a message delivered late and both sides persisting and
//! restoring their state midway.
//!
//! Run with `cargo run --example one_to_one`.

use getrandom::{SysRng, rand_core::UnwrapErr};
use ratchetry::{
    IdentityKeyPair, IncomingMessage, PreKeyBundle, PreKeyStore, PreKeyStoreConfig, Session,
    SessionConfig, Timestamp,
};

fn main() -> Result<(), ratchetry::Error> {
    let mut rng = UnwrapErr(SysRng);
    let now = Timestamp(1_790_000_000_000);
    let config = SessionConfig::default();

    // Bob registers: identity, signed prekey, ten one-time prekeys. The server keeps the
    // public halves and hands out one bundle per session request.
    let bob = IdentityKeyPair::generate(&mut rng);
    let mut bob_prekeys = PreKeyStore::new(&mut rng, &bob, now, PreKeyStoreConfig::default());
    let uploaded = bob_prekeys.generate_one_time_prekeys(&mut rng, 10);
    let served_bundle = bob_prekeys
        .bundle(&bob, Some(uploaded[0].id), None)
        .to_bytes();
    println!(
        "bob published a bundle ({} bytes) and {} one-time prekeys",
        served_bundle.len(),
        uploaded.len()
    );

    // Alice fetches it while Bob is offline, verifies it, and writes twice.
    let alice = IdentityKeyPair::generate(&mut rng);
    let bundle = PreKeyBundle::from_bytes(&served_bundle)?.verify()?;
    let mut alice_session = Session::initiate(&mut rng, &alice, &bundle, config)?;
    let first = alice_session.encrypt(&mut rng, b"Hi Bob, it's Alice.")?;
    let second = alice_session.encrypt(&mut rng, b"Call me when you land.")?;
    println!(
        "alice -> bob: 2 pre-key messages ({} and {} bytes)",
        first.len(),
        second.len()
    );

    // Bob comes online; the server delivers the second message first.
    let IncomingMessage::PreKey(message) = IncomingMessage::decode(&second)? else {
        unreachable!("a new session starts with a pre-key message")
    };
    assert_eq!(
        message.initiator_identity(),
        alice.public(),
        "the app checks who this is"
    );
    let (mut bob_session, text) = Session::accept(&bob, &mut bob_prekeys, &message, config)?;
    println!(
        "bob   <- {:?} (session created, one-time prekey consumed: {} left)",
        utf8(&text),
        bob_prekeys.one_time_prekeys_remaining()
    );
    let text = bob_session.decrypt(&IncomingMessage::decode(&first)?)?;
    println!(
        "bob   <- {:?} (delivered late, still readable)",
        utf8(&text)
    );

    // A replay of the first message is refused without touching the session.
    let refused = bob_session.decrypt(&IncomingMessage::decode(&first)?);
    println!("bob   <- replayed message: {:?}", refused.err());

    // Bob answers; Alice's next messages no longer carry X3DH data.
    let reply = bob_session.encrypt(&mut rng, b"Landed! Calling in 5.")?;
    let text = alice_session.decrypt(&IncomingMessage::decode(&reply)?)?;
    println!("alice <- {:?}", utf8(&text));

    // Both persist and restore (as after an app restart), then keep talking.
    let alice_state = alice_session.to_bytes();
    let bob_state = bob_session.to_bytes();
    println!(
        "state: alice {} bytes, bob {} bytes",
        alice_state.len(),
        bob_state.len()
    );
    let mut alice_session = Session::from_bytes(&alice_state)?;
    let mut bob_session = Session::from_bytes(&bob_state)?;
    for (i, text) in ["ok", "see you", "bye"].iter().enumerate() {
        let (from, to, sender, receiver) = if i % 2 == 0 {
            ("alice", "bob  ", &mut alice_session, &mut bob_session)
        } else {
            ("bob  ", "alice", &mut bob_session, &mut alice_session)
        };
        let wire = sender.encrypt(&mut rng, text.as_bytes())?;
        let got = receiver.decrypt(&IncomingMessage::decode(&wire)?)?;
        println!(
            "{to} <- {:?} (from {from}, {} bytes on the wire)",
            utf8(&got),
            wire.len()
        );
    }
    Ok(())
}

fn utf8(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or("<binary>")
}
