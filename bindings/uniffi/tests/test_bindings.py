"""The device-level API through the generated Python module: two accounts, a linked
companion, a group, history sync, and a restart from persisted state."""

import pytest

from conftest import NOW, RecordStore, StaleCopy, key, r, texts


def account(relay):
    acct = r.create_account(NOW)
    relay.add(acct.device)
    relay.publish(acct.primary)
    return acct


def link(relay, acct):
    """The primary links a companion: invitation, request, approval, confirmation."""
    invitation = acct.primary.invite(relay.now)
    linking = r.LinkingCompanion(invitation)
    approval = acct.primary.approve(relay.now, linking.request())
    linked = linking.complete(relay.now, approval)
    device_id = acct.primary.confirm(linked.confirmation)
    relay.add(linked.device)
    events = relay.publish(acct.primary)
    relay.introduce(linked.device)
    return linked.device, device_id, events


def test_two_accounts_exchange_messages(relay):
    alice, bob = account(relay), account(relay)
    relay.introduce(alice.device, bob.device)
    relay.send(alice.device, lambda: alice.device.send(relay.now, bob.primary.account_key(), b"hi Bob"))
    assert texts(relay.deliver(bob.device)) == [("direct", "hi Bob")]
    relay.send(bob.device, lambda: bob.device.send(relay.now, alice.primary.account_key(), b"hi Alice"))
    got = relay.deliver(alice.device)
    assert texts(got) == [("direct", "hi Alice")]
    assert got[0].sender == bob.device.address()


def test_post_quantum_ratchet_by_default(relay):
    """Every session runs the post-quantum ratchet from its first message, at both ends; it
    completes epochs through the fanout layer, and its state survives a restart from records."""
    alice, bob = account(relay), account(relay)
    relay.introduce(alice.device, bob.device)
    relay.send(alice.device, lambda: alice.device.send(relay.now, bob.primary.account_key(), b"first"))
    assert texts(relay.deliver(bob.device)) == [("direct", "first")]
    assert alice.device.pq_ratchet_epoch(bob.device.address()) == 0
    assert bob.device.pq_ratchet_epoch(alice.device.address()) == 0
    assert alice.device.sessions_without_pq_ratchet() == []
    assert bob.device.sessions_without_pq_ratchet() == []
    for i in range(60):  # an epoch takes about 76 messages
        relay.send(alice.device, lambda: alice.device.send(relay.now, bob.primary.account_key(), b"a%d" % i))
        assert texts(relay.deliver(bob.device)) == [("direct", "a%d" % i)]
        relay.send(bob.device, lambda: bob.device.send(relay.now, alice.primary.account_key(), b"b%d" % i))
        assert texts(relay.deliver(alice.device)) == [("direct", "b%d" % i)]
    assert alice.device.pq_ratchet_epoch(bob.device.address()) >= 1
    changes = bob.device.take_changes()
    assert changes.replaces_all  # the first take: every record
    assert changes.base_epoch is None
    empty = bob.device.take_changes()  # the next starts where it ended
    assert (empty.base_epoch, empty.epoch, empty.records) == (changes.epoch, changes.epoch, [])
    assert changes.base_tag is None and len(changes.tag) == 16 and any(changes.tag)
    assert (empty.base_tag, empty.tag) == (changes.tag, changes.tag)
    rebuilt = r.Device.from_records(changes.records)
    assert rebuilt.pq_ratchet_epoch(alice.device.address()) is not None
    assert rebuilt.sessions_without_pq_ratchet() == []
    with pytest.raises(r.RatchetryError.Failed) as e:
        alice.device.pq_ratchet_epoch(r.Address(account=b"short", device=1))
    assert e.value.code == "binding.bad_length"


def test_linked_companion_reads_and_sends(relay):
    alice, bob = account(relay), account(relay)
    relay.introduce(alice.device, bob.device)
    laptop, device_id, events = link(relay, alice)
    assert device_id == 2
    assert laptop.address().device == 2
    assert any(e.is_DEVICE_ADDED() and e.device.device == 2 for e in events)
    assert alice.primary.device_list_version() == 2

    relay.send(bob.device, lambda: bob.device.send(relay.now, alice.primary.account_key(), b"to both"))
    assert texts(relay.deliver(alice.device)) == [("direct", "to both")]
    assert texts(relay.deliver(laptop)) == [("direct", "to both")]

    out = relay.send(laptop, lambda: laptop.send(relay.now, bob.primary.account_key(), b"from the laptop"))
    assert {e.to.device for e in out.envelopes} == {1}  # bob#1 and alice#1 (own copy)
    assert len(out.envelopes) == 2
    got = relay.deliver(bob.device)
    assert texts(got) == [("direct", "from the laptop")]
    own = relay.deliver(alice.device)
    assert texts(own) == [("own", "from the laptop")]
    # One message id, in the outbox and on every device that reads it; not a resend.
    assert len(out.message_id) == 16
    assert got[0].id == own[0].id == out.message_id
    assert got[0].resent is None and own[0].resent is None
    assert own[0].sent_to == bob.primary.account_key()
    # The outbox names what the relay checks: every device it reaches, and the list of each
    # account it reaches in full (Bob's, and Alice's for the own copy), at their versions.
    assert out.recipients == sorted([bob.device.address(), alice.device.address()])
    assert {(c.account, c.version) for c in out.coverage} == {
        (bob.primary.account_key(), 1),
        (alice.primary.account_key(), 2),
    }


def test_group_of_three_accounts(relay):
    alice, bob, carol = account(relay), account(relay), account(relay)
    tablet, _, _ = link(relay, bob)
    everyone = [alice.device, bob.device, carol.device, tablet]
    relay.introduce(*everyone)
    group = bytes([7]) * 32
    members = [a.primary.account_key() for a in (alice, bob, carol)]
    for d in everyone:
        d.set_group_members(group, members)

    out = relay.send(alice.device, lambda: alice.device.send_group(relay.now, group, b"hello group"))
    assert len(out.group.recipients) == 3  # bob#1, bob#2, carol#1
    for d in everyone[1:]:
        assert texts(relay.deliver(d)) == [("group", "hello group")]
    out = relay.send(alice.device, lambda: alice.device.send_group(relay.now, group, b"second"))
    assert out.envelopes == []  # no new sender-key distribution
    relay.send(tablet, lambda: tablet.send_group(relay.now, group, b"from bob's tablet"))
    for d in (alice.device, bob.device, carol.device):
        assert ("group", "from bob's tablet") in texts(relay.deliver(d))


def test_history_sync_to_new_companion(relay):
    alice, bob = account(relay), account(relay)
    desktop, device_id, _ = link(relay, alice)
    group = bytes([9]) * 32
    alice.device.set_group_members(group, [alice.primary.account_key(), bob.primary.account_key()])
    history = bytes(range(256)) * 1000
    sealer = r.HistorySealer()
    chunks = sealer.push(history)
    # App data over 64 KiB is refused and leaves the sealer to finish.
    with pytest.raises(r.RatchetryError.Failed) as e:
        sealer.finish(bytes(64 * 1024 + 1))
    assert e.value.code == "sync.app_data_too_long"
    sealed = sealer.finish(b"drafts and pins")
    chunks += sealed.chunks
    relay.send(alice.device, lambda: alice.device.send_history_offer(relay.now, device_id, sealed.offer))
    (offer,) = relay.deliver(desktop)
    assert offer.is_HISTORY_OFFER()
    assert offer.app_data == b"drafts and pins"
    # The offer installed Alice's group, with its members, on the new companion.
    assert offer.groups == [group]
    assert desktop.groups() == [group]
    assert desktop.group_members(group) == [bob.primary.account_key()]
    opener = r.HistoryOpener(offer.offer)
    restored = b"".join(opener.push(c) for c in chunks)
    assert opener.chunks_opened() == len(chunks)
    opener.finish()
    assert restored == history


def test_restart_from_persisted_state(relay):
    alice, bob = account(relay), account(relay)
    relay.introduce(alice.device, bob.device)
    relay.send(alice.device, lambda: alice.device.send(relay.now, bob.primary.account_key(), b"before"))
    relay.deliver(bob.device)

    # Bob's app persists bytes and the epoch, and restarts.
    saved, epoch = bob.device.to_bytes(), bob.device.state_epoch()
    restored = r.restore_device(saved, epoch, relay.now)
    assert not restored.from_backup
    bob2 = restored.device
    relay.devices[relay.devices.index(bob.device)] = bob2
    relay.send(alice.device, lambda: alice.device.send(relay.now, bob.primary.account_key(), b"after"))
    assert texts(relay.deliver(bob2)) == [("direct", "after")]
    relay.send(bob2, lambda: bob2.send(relay.now, alice.primary.account_key(), b"back"))
    assert texts(relay.deliver(alice.device)) == [("direct", "back")]

    # The primary role persists too.
    primary2 = r.restore_primary(alice.primary.to_bytes(), alice.primary.state_epoch())
    assert primary2.account_key() == alice.primary.account_key()

    # A stale snapshot is detected: restored as from a backup.
    stale = r.restore_device(saved, bob2.state_epoch(), relay.now)
    assert stale.from_backup
    # Loaded from bytes, the first changes replace all and start where the bytes were taken
    # (a store holding the device at another epoch or tag refuses them); restored from a stale
    # snapshot, they start from nothing and replace whatever is stored.
    loaded = r.restore_device(saved, epoch, relay.now).device.take_changes()
    assert loaded.replaces_all and loaded.base_epoch == epoch and len(loaded.base_tag) == 16
    fresh = stale.device.take_changes()
    assert fresh.replaces_all and fresh.base_epoch is None and fresh.base_tag is None
    # Bytes the app knows are a backup: the same, without an epoch to compare.
    backup = r.restore_device_from_backup(saved, relay.now)
    assert backup.awaiting_own_list() and not bob2.awaiting_own_list()


def test_change_records_rebuild_the_device(relay):
    alice, bob = account(relay), account(relay)
    relay.introduce(alice.device, bob.device)
    store = RecordStore()

    store.write(bob.device.take_changes())
    assert not bob.device.has_changes()
    relay.send(alice.device, lambda: alice.device.send(relay.now, bob.primary.account_key(), b"one"))
    relay.deliver(bob.device)
    assert bob.device.has_changes()
    store.write(bob.device.take_changes())
    assert not bob.device.has_changes()
    records = store.load()
    bob2 = r.Device.from_records(records)
    assert not bob2.awaiting_own_list()
    relay.send(alice.device, lambda: alice.device.send(relay.now, bob.primary.account_key(), b"two"))
    assert texts(relay.deliver(bob2)) == [("direct", "two")]
    store.write(bob2.take_changes())
    # The first device, a second copy now, goes on: its changes no longer start from the
    # store's head and are refused, nothing written.
    relay.send(alice.device, lambda: alice.device.send(relay.now, bob.primary.account_key(), b"three"))
    relay.deliver(bob.device)
    held = dict(store.records)
    with pytest.raises(StaleCopy):
        store.write(bob.device.take_changes())
    assert store.records == held
    # A record store the app put back from a backup: the device waits for a newer own list.
    restored = r.Device.from_backup_records(records, relay.now)
    assert restored.awaiting_own_list() and restored.has_changes()


def test_errors_carry_stable_codes(relay):
    alice, bob = account(relay), account(relay)
    relay.introduce(alice.device, bob.device)
    out = relay.send(alice.device, lambda: alice.device.send(relay.now, bob.primary.account_key(), b"once"))
    envelope = out.envelopes[0].bytes
    relay.deliver(bob.device)
    with pytest.raises(r.RatchetryError.Failed) as e:
        bob.device.receive(relay.now, envelope)
    assert e.value.code == "fanout.duplicate"
    with pytest.raises(r.RatchetryError.Failed) as e:
        bob.device.receive(relay.now, b"\x02garbage")
    assert e.value.code.startswith("decode.")
    with pytest.raises(r.RatchetryError.Failed) as e:
        alice.device.send(relay.now, b"short", b"x")
    assert e.value.code == "binding.bad_length"
    with pytest.raises(r.RatchetryError.Failed) as e:
        alice.device.send_group(relay.now, bytes(32), b"x")
    assert e.value.code == "fanout.unknown_group"
    assert "members" in e.value.detail
    # A forged envelope changes nothing: the genuine one still reads afterwards.
    out = relay.send(alice.device, lambda: alice.device.send(relay.now, bob.primary.account_key(), b"genuine"))
    genuine = out.envelopes[0].bytes
    forged = genuine[:-1] + bytes([genuine[-1] ^ 1])
    with pytest.raises(r.RatchetryError.Failed):
        bob.device.receive(relay.now, forged)
    assert texts([bob.device.receive(relay.now, genuine)]) == [("direct", "genuine")]


def test_unlinked_companion_is_dropped(relay):
    alice, bob = account(relay), account(relay)
    relay.introduce(alice.device, bob.device)
    laptop, device_id, _ = link(relay, alice)
    alice.primary.unlink(relay.now, device_id)
    events = relay.publish(alice.primary)
    assert any(e.is_THIS_DEVICE_REMOVED() for e in events)
    out = relay.send(bob.device, lambda: bob.device.send(relay.now, alice.primary.account_key(), b"x"))
    assert [e.to.device for e in out.envelopes] == [1]
    assert key(laptop.address()) not in [key(e.to) for e in out.envelopes]


def test_expired_companion_waits_for_its_renewal(relay):
    """A companion its own list names expired is told so (not removed), refuses with
    ``fanout.this_device_expired``, and sends again once it takes its primary's renewal
    (signed before it expired: a primary drops companions already expired)."""
    day = 24 * 60 * 60 * 1000
    alice, bob = account(relay), account(relay)
    relay.introduce(alice.device, bob.device)
    laptop, _, _ = link(relay, alice)
    _, tablet_id, _ = link(relay, alice)
    alice.primary.unlink(relay.now, tablet_id)
    unlinked = alice.primary.device_list()
    relay.now = NOW + 13 * day
    alice.primary.renew(relay.now)
    # Sixteen days on, past the laptop's validity (fifteen days): the relay served it the
    # unlink's list, not the renewal.
    relay.now = NOW + 16 * day
    events = laptop.update_device_list(relay.now, alice.primary.account_key(), unlinked)
    assert any(e.is_THIS_DEVICE_EXPIRED() for e in events)
    assert not any(e.is_THIS_DEVICE_REMOVED() for e in events)
    with pytest.raises(r.RatchetryError.Failed) as e:
        laptop.send(relay.now, bob.primary.account_key(), b"while expired")
    assert e.value.code == "fanout.this_device_expired"
    events = relay.publish(alice.primary)
    assert not any(e.is_THIS_DEVICE_EXPIRED() for e in events)
    relay.send(laptop, lambda: laptop.send(relay.now, bob.primary.account_key(), b"renewed"))
    assert texts(relay.deliver(bob.device)) == [("direct", "renewed")]


def test_safety_number_is_symmetric(relay):
    alice, bob = account(relay), account(relay)
    a, b = alice.primary.account_key(), bob.primary.account_key()
    assert r.safety_number(a, b) == r.safety_number(b, a)
    assert sum(c.isdigit() for c in r.safety_number(a, b)) == 60


def test_corrupted_envelope_is_asked_for_again(relay):
    alice, bob = account(relay), account(relay)
    relay.introduce(alice.device, bob.device)
    body = b"worth asking for"
    out = relay.send(alice.device, lambda: alice.device.send(relay.now, bob.primary.account_key(), body))
    stored = {out.send_id: body}  # the sender's app keeps bodies by send id
    damaged = bytearray(relay.queues[key(bob.device.address())].pop())
    damaged[-1] ^= 1
    with pytest.raises(r.RatchetryError.Failed) as e:
        bob.device.receive(relay.now, bytes(damaged))
    assert e.value.code == "ratchet.authentication_failed"
    request = bob.device.request_retry(relay.now, bytes(damaged), 2)
    assert request.to == alice.device.address()
    relay.queues[key(request.to)].append(request.bytes)
    (asked,) = relay.deliver(alice.device)
    assert asked.is_RETRY_REQUEST()
    assert asked.request.sender() == bob.device.address()
    assert asked.request.attempt() == 1
    assert asked.request.reason() == 2  # authentication failed, as Bob said
    assert "reason: 2" in repr(asked)
    send_id = asked.request.send_id()
    # Alice's app keeps the unanswered request across a restart, with the device's state.
    kept = r.RetryRequest.from_bytes(asked.request.to_bytes())
    assert (kept.sender(), kept.send_id(), kept.reason()) == (asked.request.sender(), send_id, 2)
    relay.send(alice.device, lambda: alice.device.answer_retry(relay.now, kept, stored[send_id]))
    (resent,) = relay.deliver(bob.device)
    assert texts([resent]) == [("direct", "worth asking for")]
    # A resend: it names the envelope it replaces, and carries the message's own id.
    assert resent.resent == r.envelope_id(bytes(damaged))
    assert resent.id == out.message_id


def test_stale_primary_resyncs_before_signing(relay):
    alice = account(relay)
    snapshot, _ = alice.primary.to_bytes(), alice.primary.state_epoch()
    link(relay, alice)  # the primary moves on after the snapshot
    stale = r.restore_primary(snapshot, alice.primary.state_epoch())
    assert stale.needs_resync()
    with pytest.raises(r.RatchetryError.Failed) as e:
        stale.invite(relay.now)
    assert e.value.code == "device.resync_required"
    stale.resync(relay.now, relay.lists[alice.primary.account_key()])
    assert not stale.needs_resync()
    # Far past every version used, listing the phone alone: companions link again.
    assert stale.device_list_version() > alice.primary.device_list_version()
    stale.invite(relay.now)
    # Bytes whose last epoch the app does not know (a backup): the same wait for a resync.
    backup = r.restore_primary_from_backup(snapshot)
    assert backup.needs_resync()
    with pytest.raises(r.RatchetryError.Failed) as e:
        backup.renew(relay.now)
    assert e.value.code == "device.resync_required"
    first = backup.take_changes()
    assert first.replaces_all and first.base_epoch is None
