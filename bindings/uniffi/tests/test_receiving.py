"""A receive stepped by the app (`Receiving`, the library's driver::Receiving): each step
decides or names the device list to fetch; the app applies what its relay serves."""

from conftest import NOW, failed, key, r


def accounts(relay):
    alice, bob = r.create_account(NOW), r.create_account(NOW)
    for a in (alice, bob):
        relay.add(a.device)
        relay.publish(a.primary)
    return alice, bob


def first_envelope(relay, device):
    return relay.queues[key(device.address())].pop(0)


def test_a_stepped_receive_names_the_list_to_fetch_and_reads_once_it_is_applied(relay):
    alice, bob = accounts(relay)
    alice_key = alice.primary.account_key()
    relay.send(alice.device, lambda: alice.device.send(NOW, bob.primary.account_key(), b"hello"))
    env = first_envelope(relay, bob.device)
    # Bob does not follow Alice: the step names her account. Her relay has no list for her: the
    # next step, with nothing applied, decides without asking again.
    receiving = r.Receiving()
    step = receiving.step(bob.device, NOW, env, False)
    assert step.is_NEED_DEVICE_LIST() and step.account == alice_key
    step = receiving.step(bob.device, NOW, env, False)
    assert step.is_DONE() and step.inbound.is_DROPPED()
    assert step.inbound.code == "fanout.unknown_account"
    # What the refusal names, as a thrown error's fields.
    assert step.inbound.account == alice_key and step.inbound.device is None
    # Served this time: applied, the next step reads it.
    receiving = r.Receiving()
    step = receiving.step(bob.device, NOW, env, False)
    assert step.is_NEED_DEVICE_LIST()
    bob.device.update_device_list(NOW, step.account, relay.lists[step.account])
    step = receiving.step(bob.device, NOW, env, False)
    assert step.is_DONE() and step.inbound.is_READ()
    assert step.inbound.message.is_DIRECT() and step.inbound.message.body == b"hello"
    # Its string forms show no body.
    assert all("hello" not in f(x) for f in (str, repr) for x in (step, step.inbound))
    # A new receive of it is a duplicate at once.
    step = r.Receiving().step(bob.device, NOW, env, False)
    assert step.inbound.is_DUPLICATE() and step.inbound.envelope_id == r.envelope_id(env)


def test_an_unreadable_envelope_is_asked_for_again_unless_its_message_is_stored(relay):
    alice, bob = accounts(relay)
    relay.introduce(alice.device, bob.device)
    for text in (b"one", b"two"):
        relay.send(alice.device, lambda: alice.device.send(NOW, bob.primary.account_key(), text))
    one, two = first_envelope(relay, bob.device), first_envelope(relay, bob.device)
    assert r.Receiving().step(bob.device, NOW, one, False).inbound.is_READ()
    broken = two[:-1] + bytes([two[-1] ^ 1])
    # Its message stored: an old replay, a duplicate under the id found, not asked for.
    step = r.Receiving().step(bob.device, NOW, broken, True)
    assert step.inbound.is_DUPLICATE() and step.inbound.envelope_id == r.envelope_id(broken)
    step = r.Receiving().step(bob.device, NOW, broken, False)
    assert step.inbound.is_ASK_AGAIN()
    assert step.inbound.to == alice.device.address() and len(step.inbound.request) > 0
    # Garbage is dropped with its decode code.
    step = r.Receiving().step(bob.device, NOW, b"\x00" * 10, False)
    assert step.inbound.is_DROPPED() and step.inbound.code.startswith("decode.")
    # The intact envelope still reads.
    step = r.Receiving().step(bob.device, NOW, two, False)
    assert step.inbound.is_READ() and step.inbound.message.body == b"two"


def test_asks_beyond_an_accounts_share_are_deferred_until_a_place_frees(relay):
    """Bob waits on as many answers from Alice's account as he keeps: the next unreadable
    envelope of hers is `ASK_LATER` (nothing asked) until the first ask stops waiting."""
    alice, bob = accounts(relay)
    relay.introduce(alice.device, bob.device)
    share = 64  # ratchetry::fanout::MAX_WAITING_RETRIES_PER_ACCOUNT
    for i in range(share + 1):
        relay.send(alice.device, lambda: alice.device.send(NOW, bob.primary.account_key(), b"x"))
    envelopes = [first_envelope(relay, bob.device) for _ in range(share + 1)]
    broken = [e[:-1] + bytes([e[-1] ^ 1]) for e in envelopes]
    for e in broken[:share]:
        assert r.Receiving().step(bob.device, NOW, e, False).inbound.is_ASK_AGAIN()
    at = NOW + 24 * 60 * 60 * 1000  # the first ask's time + PENDING_RETRY_HOLD_MS
    step = r.Receiving().step(bob.device, NOW, broken[share], False)
    assert step.inbound.is_ASK_LATER() and step.inbound.at == at
    asked = r.ask_again(bob.device, NOW, broken[share], 2, False)
    assert asked.is_ASK_LATER() and asked.at == at
    step = r.Receiving().step(bob.device, at, broken[share], False)
    assert step.inbound.is_ASK_AGAIN() and step.inbound.to == alice.device.address()


def test_errors_name_what_the_app_acts_on(relay):
    """A thrown error carries what the guide's table acts on: the account whose list to fetch,
    the device, the group, the envelope id; every other field is None."""
    alice, bob = accounts(relay)
    alice_key, bob_key = alice.primary.account_key(), bob.primary.account_key()
    relay.send(alice.device, lambda: alice.device.send(NOW, bob_key, b"hello"))
    env = first_envelope(relay, bob.device)

    # Bob does not follow Alice: fetch her list.
    e = failed(lambda: bob.device.receive(NOW, env))
    assert e.code == "fanout.unknown_account" and e.account == alice_key
    assert (e.device, e.group, e.envelope_id, e.number) == (None, None, None, None)
    bob.device.update_device_list(NOW, alice_key, relay.lists[alice_key])
    bob.device.receive(NOW, env)
    # Read already: acknowledge it again, by its envelope id.
    e = failed(lambda: bob.device.receive(NOW, env))
    assert e.code == "fanout.duplicate" and e.envelope_id == r.envelope_id(env)
    assert (e.account, e.device, e.group, e.number) == (None, None, None, None)
    # A group the device does not have.
    group = bytes([7]) * 32
    e = failed(lambda: alice.device.send_group(NOW, group, b"x"))
    assert e.code == "fanout.unknown_group" and e.group == group and e.account is None
    # A group message whose sender key the relay held back: the sending device, and its key id.
    for d, other in ((alice, bob_key), (bob, alice_key)):
        d.device.set_group_members(group, [other])
    relay.send(alice.device, lambda: alice.device.send_group(NOW, group, b"to the group"))
    queue = relay.queues[key(bob.device.address())]
    queue.reverse()  # the group envelope before the distribution
    e = failed(lambda: bob.device.receive(NOW, queue[0]))
    assert e.code == "fanout.sender_key_missing"
    assert e.device == alice.device.address() and e.account == alice_key
    assert e.number is not None and e.group is None
    # A binding-level refusal names nothing.
    e = failed(lambda: alice.device.send(NOW, b"short", b"x"))
    assert e.code == "binding.bad_length"
    assert (e.account, e.device, e.group, e.envelope_id, e.number) == (None,) * 5


def test_a_held_envelope_is_asked_for_unless_its_message_is_stored(relay):
    """A group message whose sender key the relay withholds is `Hold`; `ask_again` (the
    guide's ask once the key never comes) looks at `stored` first: a message stored under any
    of `envelope_ids(envelope)` is a replay, `Duplicate`, nothing asked; otherwise it asks."""
    alice, bob = accounts(relay)
    relay.introduce(alice.device, bob.device)
    group = bytes([9]) * 32
    for d, other in ((alice, bob), (bob, alice)):
        d.device.set_group_members(group, [other.primary.account_key()])
    relay.send(alice.device, lambda: alice.device.send_group(NOW, group, b"held"))
    queue = relay.queues[key(bob.device.address())]
    held = queue[-1]  # the group envelope; its distribution is withheld
    step = r.Receiving().step(bob.device, NOW, held, False)
    assert step.inbound.is_HOLD() and step.inbound._from == alice.device.address()
    ids = r.envelope_ids(held)
    assert len(ids) == 2 and r.envelope_id(held) in ids
    assert r.envelope_ids(b"\x00" * 10) == [r.envelope_id(b"\x00" * 10)]
    before = bob.device.to_bytes()
    replay = r.ask_again(bob.device, NOW, held, 3, True)
    assert replay.is_DUPLICATE() and replay.envelope_id in ids
    assert bob.device.to_bytes() == before
    ask = r.ask_again(bob.device, NOW, held, 3, False)
    assert ask.is_ASK_AGAIN() and ask.to == alice.device.address() and len(ask.request) > 0
