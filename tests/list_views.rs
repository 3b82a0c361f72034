//! An envelope names the versions of the two device lists it was made under and binds their
//! digest (PROTOCOL.md 18.3). An envelope in flight across a list change names a version the
//! recipient has replaced since but still remembers: it is read if its digest matches the
//! remembered lists, and refused before any decryption if a relay changed it.

mod support;

use ratchetry::FanoutError;
use support::{DAY, World, body};

/// Where an envelope's lists digest sits (after the header's kind, addresses and versions).
const LISTS_DIGEST: core::ops::Range<usize> = 91..99;

#[test]
fn an_envelope_under_a_remembered_list_is_checked_against_it() {
    let mut w = World::new("list views remembered");
    let alice = w.account(0);
    let bob = w.account(0);
    w.publish_all();
    let (a1, b1) = (World::addr(alice, 1), World::addr(bob, 1));
    let o = w.send(a1, bob, b"made under version 1");
    let genuine = World::envelope_to(&o, b1);
    // Alice's phone renews her list before Bob reads the envelope; Bob fetches the new list.
    w.now = w.now.plus_millis(DAY);
    let now = w.now;
    w.primary(&alice).renew(now).unwrap();
    w.publish(&alice);

    let mut forged = genuine.clone();
    forged[LISTS_DIGEST.start] ^= 1;
    assert_eq!(
        w.receive(b1, &forged).err(),
        Some(
            FanoutError::DeviceListsDiverge {
                account: alice,
                used: 1,
                held: 2,
            }
            .into()
        )
    );
    let read = w.receive(b1, &genuine).unwrap();
    assert_eq!(body(&read), Some(&b"made under version 1"[..]));
}
