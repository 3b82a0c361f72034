"""The rest of the app-facing API, on the scenario's accounts and relay (test_bindings.py):
calls, policies, one-time prekeys, groups and accounts, the relay's helpers and sealed
state; and that no string form shows a secret."""

import pytest

from conftest import NOW, RecordStore, key, r, texts
from test_bindings import account, link


def code(call):
    with pytest.raises(r.RatchetryError.Failed) as e:
        call()
    return e.value.code


def talking(relay, *names):
    accounts = [account(relay) for _ in names]
    relay.introduce(*[a.device for a in accounts])
    return accounts


# ---- calls ----------------------------------------------------------------------------------


def test_call_key_gives_every_participant_the_same_srtp_keys(relay):
    alice, bob, carol = talking(relay, "alice", "bob", "carol")
    a, b, c = (x.device.address() for x in (alice, bob, carol))
    call = r.Call.start(r.CallKind.ONE_TO_ONE, a, [b])
    assert call.manager() == a and call.participants() == sorted([a, b]) and call.epoch() == 0
    out = relay.send(alice.device, lambda: alice.device.send_call_key(relay.now, [b], call))
    assert out.send_id is not None and out.coverage == []  # a send to chosen devices
    (got,) = relay.deliver(bob.device)
    assert got.is_CALL_KEY() and got.sender == a
    assert got.message.call_id() == call.id() and got.message.epoch() == 0
    assert got.message.kind() == r.CallKind.ONE_TO_ONE and got.message.manager() == a
    bobs = r.Call.from_key_message(b, got.sender, got.message)
    for who in (a, b):
        mine, theirs = call.srtp_keys(who), bobs.srtp_keys(who)
        assert mine.master_key() == theirs.master_key() and len(mine.master_key()) == 32
        assert mine.master_salt() == theirs.master_salt() and len(mine.master_salt()) == 12
    assert call.srtp_keys(a).master_key() != call.srtp_keys(b).master_key()
    assert code(lambda: call.srtp_keys(c)) == "sync.not_in_call"

    # Carol joins: a new epoch for everyone; Bob applies it and agrees on Carol's keys.
    joined = call.join(c)
    assert joined.epoch() == 1 == call.epoch()
    relay.send(alice.device, lambda: alice.device.send_call_key(relay.now, [b, c], call))
    (to_bob,) = relay.deliver(bob.device)
    bobs.apply(to_bob.sender, to_bob.message)
    (to_carol,) = relay.deliver(carol.device)
    # Carol's app kept this call at epoch 2 (restored from an older backup): epoch 1 is a replay;
    # kept under another manager, the message is not the kept call's.
    kept = r.KeptCall(manager=a, epoch=2)
    assert code(lambda: r.Call.from_key_message(c, to_carol.sender, to_carol.message, None, kept)) == "sync.stale_call_key"
    other = r.KeptCall(manager=b, epoch=1)
    assert code(lambda: r.Call.from_key_message(c, to_carol.sender, to_carol.message, None, other)) == "sync.not_call_manager"
    carols = r.Call.from_key_message(c, to_carol.sender, to_carol.message, None, r.KeptCall(manager=a, epoch=1))
    assert bobs.srtp_keys(c).master_key() == carols.srtp_keys(c).master_key() == call.srtp_keys(c).master_key()
    # Replayed or not from the manager: refused, nothing changes.
    assert code(lambda: bobs.apply(to_bob.sender, to_bob.message)) == "sync.stale_call_key"
    assert code(lambda: bobs.apply(c, to_bob.message)) == "sync.not_call_manager"

    # Carol is removed: Bob moves on, Carol cannot.
    removed = call.remove(c)
    assert removed.epoch() == 2
    relay.send(alice.device, lambda: alice.device.send_call_key(relay.now, [b], call))
    (to_bob,) = relay.deliver(bob.device)
    bobs.apply(to_bob.sender, to_bob.message)
    assert code(lambda: carols.apply(to_bob.sender, to_bob.message)) == "sync.not_in_call"
    assert bobs.srtp_keys(b).master_key() == call.srtp_keys(b).master_key()

    # A manager's snapshot put back after it moved on: it never reissues an epoch.
    snapshot = call.to_bytes()
    same = r.restore_call(snapshot, call.epoch())
    assert not same.stale and same.call.epoch() == 2
    call.join(c)
    stale = r.restore_call(snapshot, call.epoch())
    assert stale.stale and stale.call.epoch() == call.epoch() + 1 and stale.call.participants() == [a]


def test_missed_call_key_is_asked_for_again_and_answered_with_the_current_epoch(relay):
    alice, bob, carol, dave = talking(relay, "alice", "bob", "carol", "dave")
    a, b, c = (x.device.address() for x in (alice, bob, carol))
    caps = r.CallConfig(max_group_participants=3)
    call = r.Call.start(r.CallKind.GROUP, a, [b], caps)
    relay.send(alice.device, lambda: alice.device.send_call_key(relay.now, [b], call))
    (first,) = relay.deliver(bob.device)
    bobs = r.Call.from_key_message(b, first.sender, first.message, caps)
    call.join(c)
    # The caps are the call's config: a fourth participant is refused.
    assert code(lambda: call.join(dave.device.address())) == "sync.call_full"

    out = relay.send(alice.device, lambda: alice.device.send_call_key(relay.now, [b, c], call))
    damaged = bytearray(relay.queues[key(b)].pop())
    damaged[-1] ^= 1
    assert code(lambda: bob.device.receive(relay.now, bytes(damaged))) == "ratchet.authentication_failed"
    request = bob.device.request_retry(relay.now, bytes(damaged), 2)
    relay.queues[key(request.to)].append(request.bytes)
    (asked,) = relay.deliver(alice.device)
    assert asked.request.send_id() == out.send_id
    # Meanwhile Carol left: the answer carries the call as it is now, two epochs ahead.
    call.remove(c)
    # A body instead of the call: refused; the call: answered.
    assert code(lambda: alice.device.answer_retry(relay.now, asked.request, b"x")) == "fanout.body_mismatch"
    relay.send(alice.device, lambda: alice.device.answer_call_key_retry(relay.now, asked.request, call))
    (again,) = relay.deliver(bob.device)
    assert again.is_CALL_KEY() and again.message.epoch() == call.epoch() == 2
    assert code(lambda: bobs.apply(again.sender, again.message)) == "sync.call_key_ahead"
    bobs.catch_up(again.sender, again.message)
    assert bobs.epoch() == 2
    assert bobs.srtp_keys(a).master_key() == call.srtp_keys(a).master_key()


# ---- policies -------------------------------------------------------------------------------


def test_records_made_with_no_arguments_are_the_librarys_defaults():
    assert r.DeviceConfig() == r.default_device_config()
    assert r.PrimaryPolicy() == r.default_primary_policy()
    assert r.CallConfig() == r.default_call_config()


def test_non_default_config_and_policy_change_what_happens(relay):
    config = r.DeviceConfig(prekeys=r.PreKeyConfig(max_one_time_prekeys=5, max_one_time_kem_prekeys=3),
                            retry_window_ms=1000)
    policy = r.PrimaryPolicy(account=r.AccountPolicy(max_companions=1))
    alice = r.create_account(NOW, config=config, policy=policy)
    relay.add(alice.device)
    relay.publish(alice.primary)
    default = account(relay)
    # 20 one-time prekeys asked of each kind; the caps keep 5 and 3.
    assert (alice.device.one_time_prekeys_remaining(), alice.device.one_time_kem_prekeys_remaining()) == (5, 3)
    assert (default.device.one_time_prekeys_remaining(), default.device.one_time_kem_prekeys_remaining()) == (20, 20)
    assert alice.primary.policy() == policy and default.primary.policy() == r.PrimaryPolicy()
    # The account allows one companion: a second is refused.
    laptop, laptop_id, _ = link(relay, alice)
    assert alice.primary.is_confirmed(laptop_id)
    linking = r.LinkingCompanion(alice.primary.invite(relay.now))
    assert code(lambda: alice.primary.approve(relay.now, linking.request())) == "device.too_many_companions"
    # Retry window of one second: asking later is refused.
    relay.introduce(alice.device, default.device)
    out = relay.send(alice.device, lambda: alice.device.send(relay.now, default.primary.account_key(), b"m"))
    damaged = bytearray(relay.queues[key(default.device.address())].pop())
    damaged[-1] ^= 1
    request = default.device.request_retry(relay.now, bytes(damaged), 2)
    relay.queues[key(request.to)].append(request.bytes)
    relay.now += 5000
    assert code(lambda: relay.deliver(alice.device)) == "fanout.unknown_message"
    assert out.send_id is not None


def test_companion_linked_with_a_config_uses_it(relay):
    alice = account(relay)
    linking = r.LinkingCompanion(alice.primary.invite(relay.now))
    approval = alice.primary.approve(relay.now, linking.request())
    config = r.DeviceConfig(prekeys=r.PreKeyConfig(max_one_time_prekeys=2))
    linked = linking.complete(relay.now, approval, config)
    assert linked.device.one_time_prekeys_remaining() == 2
    assert len(linked.prekey_upload) > 0


# ---- one-time prekeys and the relay's bundles -----------------------------------------------


def test_bundle_with_one_time_prekeys_consumes_one(relay):
    alice, bob = talking(relay, "alice", "bob")
    pool = relay.upload(bob.device, bob.prekey_upload)
    assert pool.remaining() == r.PoolCounts(one_time=20, kem=20)
    assert (bob.device.one_time_prekeys_remaining(), bob.device.one_time_kem_prekeys_remaining()) == (20, 20)
    relay.send(alice.device, lambda: alice.device.send(relay.now, bob.primary.account_key(), b"hi"))
    assert pool.remaining() == r.PoolCounts(one_time=19, kem=19)
    assert texts(relay.deliver(bob.device)) == [("direct", "hi")]
    assert (bob.device.one_time_prekeys_remaining(), bob.device.one_time_kem_prekeys_remaining()) == (19, 19)
    assert bob.device.last_resort_uses() == 0

    # Replenish: the device makes more, the relay pools them; stored and rebuilt.
    upload = bob.device.generate_one_time_prekeys(relay.now, 5)
    assert bob.device.one_time_prekeys_remaining() == 24
    pool.add(upload)
    assert pool.remaining() == r.PoolCounts(one_time=24, kem=24)
    assert code(lambda: pool.add(upload)) == "server.duplicate_prekey_id"
    # The pools remember the uploads they accepted (the first and this one), stored with them:
    # the same upload sent again (its answer lost) is refused by the rebuilt pools too.
    accepted = pool.accepted()
    assert len(accepted) == 2 and all(len(a) == 16 for a in accepted)
    assert code(lambda: r.PublishedPreKeys.from_parts(relay.now, bob.device.address(), pool.base(), pool.pooled(),
                                                      [bytes(16)], relay.served)) == "decode.invalid_value"
    rebuilt = r.PublishedPreKeys.from_parts(relay.now, bob.device.address(), pool.base(), pool.pooled(), accepted,
                                            relay.served)
    assert code(lambda: rebuilt.add(upload)) == "server.duplicate_prekey_id"
    assert rebuilt.remaining() == pool.remaining() and rebuilt.address() == bob.device.address()
    # A base with a one-time prekey in it, or another device's, is refused.
    assert code(lambda: r.PublishedPreKeys(relay.now, bob.device.address(), pool.take_bundle(), relay.served)) \
        == "server.not_a_base_bundle"
    assert code(lambda: r.PublishedPreKeys(relay.now, bob.device.address(), alice.device.prekey_bundle(),
                                           relay.served)) == "server.identity_mismatch"
    bob.device.rotate_signed_prekey(relay.now)
    pool.replace_base(relay.now, bob.device.prekey_bundle(), relay.served)
    assert pool.base() == bob.device.prekey_bundle()


def test_without_one_time_kem_prekeys_the_last_resort_one_is_used(relay):
    alice, bob = talking(relay, "alice", "bob")
    assert bob.device.last_resort_uses() == 0
    relay.send(alice.device, lambda: alice.device.send(relay.now, bob.primary.account_key(), b"hi"))
    relay.deliver(bob.device)
    assert bob.device.last_resort_uses() == 1
    assert bob.device.one_time_kem_prekeys_remaining() == 20
    # The signed prekey's budget is counted too; a rotation starts it afresh, dated now.
    assert bob.device.signed_prekey_sessions() == 1
    assert bob.device.signed_prekey_created_at() <= relay.now
    bob.device.rotate_signed_prekey(relay.now + 1)
    assert (bob.device.signed_prekey_sessions(), bob.device.signed_prekey_created_at()) == (0, relay.now + 1)


# ---- groups and accounts --------------------------------------------------------------------


def test_groups_accounts_and_sessions(relay):
    alice, bob, carol = talking(relay, "alice", "bob", "carol")
    group = bytes([5]) * 32
    members = [x.primary.account_key() for x in (alice, bob, carol)]
    for x in (alice, bob, carol):
        x.device.set_group_members(group, members)
    assert alice.device.groups() == [group]
    assert sorted(alice.device.group_members(group)) == sorted(members[1:])
    assert alice.device.group_members(bytes(32)) is None
    out = relay.send(alice.device, lambda: alice.device.send_group(relay.now, group, b"hello"))
    (_, msg) = relay.deliver(bob.device)
    assert msg.id == out.message_id and msg.group == group

    # Restored from a backup, Bob's groups wait for his app to set their members again.
    restored = r.restore_device_from_backup(bob.device.to_bytes(), relay.now)
    assert restored.unconfirmed_groups() == [group] and bob.device.unconfirmed_groups() == []
    assert code(lambda: restored.send_group(relay.now, group, b"x")) == "fanout.group_unconfirmed"
    restored.set_group_members(group, members)
    assert restored.unconfirmed_groups() == []

    assert sorted(alice.device.accounts()) == sorted(members)
    assert alice.device.has_session(bob.device.address())
    assert alice.device.classical_sessions() == []

    # Alice withholds her key from Carol's device, saying why: the group envelope still reaches
    # it (the relay's coverage check passes), and Carol's device is told why it cannot read it.
    withholding = [r.WithheldDevice(device=carol.device.address(), reason=1)]
    relay.send(alice.device, lambda: alice.device.send_group_withholding(relay.now, group, b"not for carol", withholding))
    # The last two envelopes queued for Carol's device: the notice, then the group envelope.
    notice, message = relay.queues[key(carol.device.address())][-2:]
    relay.queues[key(carol.device.address())] = []
    withheld = carol.device.receive(relay.now, notice)
    assert withheld.is_WITHHELD() and withheld.reason == 1 and withheld.group == group
    assert f"key_id: {withheld.key_id}" in repr(withheld)
    assert code(lambda: carol.device.receive(relay.now, message)) == "fanout.withheld"
    itself = [r.WithheldDevice(device=alice.device.address(), reason=None)]
    assert code(lambda: alice.device.send_group_withholding(relay.now, group, b"x", itself)) == "fanout.not_a_group_device"

    # Forgetting Bob's account: no session, no list; a send asks for the list again.
    alice.device.forget_account(bob.primary.account_key())
    assert not alice.device.has_session(bob.device.address())
    assert bob.primary.account_key() not in alice.device.accounts()
    assert alice.device.send(relay.now, bob.primary.account_key(), b"x").is_NEED_DEVICE_LISTS()
    alice.device.forget_account(alice.primary.account_key())  # its own: nothing happens
    assert alice.primary.account_key() in alice.device.accounts()

    # Leaving the group.
    alice.device.forget_group(group)
    assert alice.device.groups() == []
    assert code(lambda: alice.device.send_group(relay.now, group, b"x")) == "fanout.unknown_group"
    assert code(lambda: alice.device.forget_group(b"short")) == "binding.bad_length"


def test_relay_refuses_a_stale_batch_and_the_sender_repairs_it(relay):
    alice, bob = talking(relay, "alice", "bob")
    relay.send(alice.device, lambda: alice.device.send(relay.now, bob.primary.account_key(), b"one"))
    relay.deliver(bob.device)
    # Bob links a tablet; Alice has not fetched Bob's new list yet.
    tablet = r.LinkingCompanion(bob.primary.invite(relay.now))
    linked = tablet.complete(relay.now, bob.primary.approve(relay.now, tablet.request()))
    bob.primary.confirm(linked.confirmation)
    relay.add(linked.device)
    relay.served.publish(bob.primary.account_key(), bob.primary.device_list())
    relay.lists[bob.primary.account_key()] = bob.primary.device_list()

    stale = alice.device.send(relay.now, bob.primary.account_key(), b"two").outbox
    assert code(lambda: relay.check(alice.device, stale)) == "server.stale_list"
    # Coverage that leaves an account out is refused too.
    partial = [c for c in stale.coverage if c.account != bob.primary.account_key()]
    assert code(lambda: relay.served.check_coverage(relay.now, alice.device.address(), stale.recipients,
                                                    partial)) == "server.uncovered"
    alice.device.not_delivered(stale.send_id, stale.recipients)
    alice.device.update_device_list(relay.now, bob.primary.account_key(), relay.lists[bob.primary.account_key()])
    out = relay.send(alice.device, lambda: alice.device.send(relay.now, bob.primary.account_key(), b"two"))
    assert linked.device.address() in out.recipients
    assert code(lambda: alice.device.not_delivered(10**9, [])) == "fanout.unknown_message"


# ---- state at rest --------------------------------------------------------------------------


def test_sealed_state_opens_only_in_its_slot_and_not_rolled_back(relay):
    alice = account(relay)
    storage_key = bytes(range(32))
    epoch = alice.device.state_epoch()
    sealed = r.seal_state(storage_key, b"device/alice", epoch, alice.device.to_bytes())
    opened = r.open_state(storage_key, sealed, b"device/alice", epoch)
    assert opened.sequence == epoch
    restored = r.restore_device(opened.state, epoch, relay.now)
    assert restored.device.address() == alice.device.address()
    assert code(lambda: r.open_state(storage_key, sealed, b"device/bob", epoch)) == "crypto.authentication_failed"
    assert code(lambda: r.open_state(storage_key, sealed, b"device/alice", epoch + 1)) == "state.rollback"
    assert code(lambda: r.seal_state(b"short", b"s", 0, b"x")) == "binding.bad_length"
    assert opened.state.hex() not in repr(opened)


def test_primary_rebuilt_from_its_change_records(relay):
    alice = account(relay)
    store = RecordStore(r.StateRole.PRIMARY)
    # A device's unit is not a primary's: refused, nothing written.
    with pytest.raises(ValueError):
        store.write(alice.device.take_changes())
    assert store.records == {} and store.head is None

    def persist():
        return store.write(alice.primary.take_changes()).epoch

    assert alice.primary.has_changes()  # the new account's records
    persist()
    assert not alice.primary.has_changes()
    snapshot = store.load()
    snapshot_head = store.head
    laptop, laptop_id, _ = link(relay, alice)
    assert alice.primary.has_changes()
    epoch = persist()
    assert not alice.primary.has_changes()
    assert alice.primary.take_changes().records == []  # nothing changed since
    rebuilt = r.restore_primary_from_records(store.load(), epoch)
    assert not rebuilt.stale and rebuilt.primary.device_list() == alice.primary.device_list()
    assert rebuilt.primary.is_confirmed(laptop_id)
    # The store put back from before the link: detected, and it must resync before it signs.
    old = r.restore_primary_from_records(snapshot, epoch)
    assert old.stale and old.primary.needs_resync()
    # The same store, its last epoch unknown (the app's copy of it was restored too): restored
    # as from a backup, it waits for a resync as well, and goes on from the records.
    backup = r.Primary.from_backup_records(snapshot)
    assert backup.needs_resync()
    assert code(lambda: backup.invite(relay.now)) == "device.resync_required"
    first = backup.take_changes()
    assert not first.replaces_all and (first.base_epoch, bytes(first.base_tag)) == snapshot_head
    assert code(lambda: r.restore_primary_from_records([], 0)).startswith("decode.")
    assert code(lambda: r.Primary.from_backup_records([])).startswith("decode.")


# ---- addresses ------------------------------------------------------------------------------


def test_addresses_compare_and_hash_by_value(relay):
    alice = account(relay)
    a1, a2 = alice.device.address(), alice.device.address()
    assert a1 == a2 and hash(a1) == hash(a2) and {a1: 1}[a2] == 1
    other = r.Address(account=bytes(a1.account), device=2)
    assert other != a1 and a1 < other
    assert bytes(a1.account).hex() in repr(a1)


# ---- no secrets in string forms -------------------------------------------------------------


def windows(data, step=1):
    return [bytes(data[i:i + 8]) for i in range(0, max(1, len(data) - 7), step)]


def forms(secret, public):
    """The ways a secret's 8-byte windows found in no public bytes could show in a string."""
    out = []
    for w in windows(secret, 1 if len(secret) < 4096 else 61):
        if w in public:
            continue
        out += [w.hex(), w.hex().upper(), repr(w)[2:-1], ", ".join(str(b) for b in w)]
    return out


def test_no_string_form_shows_a_secret(relay):
    alice, bob = talking(relay, "alice", "bob")
    a, b = alice.device.address(), bob.device.address()
    call = r.Call.start(r.CallKind.ONE_TO_ONE, a, [b])
    relay.send(alice.device, lambda: alice.device.send_call_key(relay.now, [b], call))
    (got,) = relay.deliver(bob.device)
    bobs = r.Call.from_key_message(b, got.sender, got.message)
    keys = call.srtp_keys(a)
    body = b"a secret body, never printed"
    relay.send(alice.device, lambda: alice.device.send(relay.now, bob.primary.account_key(), body))
    received = relay.deliver(bob.device)
    sealed = r.seal_state(bytes(32), b"slot", 1, alice.device.to_bytes())
    opened = r.open_state(bytes(32), sealed, b"slot", 1)
    changes = bob.device.take_changes()
    history = r.HistorySealer()
    history.push(b"old messages" * 100)
    offer = history.finish()

    secrets = [keys.master_key(), keys.master_salt(), call.to_bytes(), bobs.to_bytes(),
               got.message.to_bytes(), body, alice.device.to_bytes(), offer.offer]
    secrets += [rec.value for rec in changes.records if rec.value]
    objects = [call, bobs, keys, got, got.message, opened, offer, alice.device, alice.primary,
               relay.served, *received, *changes.records[:50]]
    public = [x.primary.account_key() for x in (alice, bob)]
    public += [x.device.identity_key() for x in (alice, bob)]
    public += [call.id(), *(m.id for m in received if m.is_DIRECT()), *(rec.key for rec in changes.records)]
    public = {w for p in public for w in windows(p)}
    needles = {n for s in secrets for n in forms(s, public)}
    for obj in objects:
        text = repr(obj) + str(obj)
        leaked = [n for n in needles if n in text]
        assert not leaked, f"{type(obj).__name__} shows secret bytes: {text[:300]}"


# ---- bad input ------------------------------------------------------------------------------


def test_new_entry_points_refuse_bad_input_with_a_code(relay):
    alice, bob = talking(relay, "alice", "bob")
    a = alice.device.address()
    bad = r.Address(account=b"short", device=1)
    garbage = b"\x02garbage"
    call = r.Call.start(r.CallKind.ONE_TO_ONE, a, [bob.device.address()])
    alice.device.take_changes()
    before = alice.device.to_bytes()
    cases = [
        ("binding.bad_length", lambda: r.Call.start(r.CallKind.GROUP, bad, [])),
        ("binding.bad_length", lambda: r.Call.start(r.CallKind.GROUP, a, [bad])),
        ("decode.unknown_type", lambda: r.CallKeyMessage.from_bytes(garbage)),
        ("decode.unknown_version", lambda: r.restore_call(garbage, 0)),
        ("binding.bad_length", lambda: call.join(bad)),
        ("sync.not_call_manager", lambda: call.remove(a)),
        ("binding.bad_length", lambda: alice.device.send_call_key(relay.now, [bad], call)),
        ("binding.bad_length", lambda: alice.device.group_members(b"")),
        ("binding.bad_length", lambda: alice.device.send_group_withholding(relay.now, b"x", b"", [])),
        ("binding.bad_length", lambda: alice.device.send_group_withholding(
            relay.now, bytes(32), b"", [r.WithheldDevice(device=bad, reason=None)])),
        ("binding.bad_length", lambda: alice.device.not_delivered(1, [bad])),
        ("binding.bad_length", lambda: alice.device.has_session(bad)),
        ("binding.bad_length", lambda: alice.device.forget_account(b"")),
        ("decode.unknown_type", lambda: relay.served.publish(alice.primary.account_key(), garbage)),
        ("device.wrong_account", lambda: relay.served.publish(bob.primary.account_key(),
                                                              alice.primary.device_list())),
        ("binding.bad_length", lambda: relay.served.check_coverage(
            relay.now, a, [], [r.ListCoverage(account=bob.primary.account_key(), version=1, digest=b"")])),
        ("decode.unknown_type", lambda: r.PublishedPreKeys(relay.now, a, garbage, relay.served)),
        ("server.unknown_account", lambda: r.PublishedPreKeys(
            relay.now, r.Address(account=r.create_account(NOW).primary.account_key(), device=1),
            alice.device.prekey_bundle(), relay.served)),
        ("decode.unknown_type", lambda: relay.upload(alice.device, garbage)),
        ("decode.unknown_type", lambda: r.open_state(bytes(32), garbage, b"s", 0)),
        ("decode.missing_record", lambda: r.restore_primary_from_records([], 0)),
        ("decode.unknown_type", lambda: r.RetryRequest.from_bytes(garbage)),
        ("decode.unknown_version", lambda: r.restore_device_from_backup(garbage, relay.now)),
        ("decode.missing_record", lambda: r.Device.from_backup_records([], relay.now)),
    ]
    codes = [code(c) for _, c in cases]
    assert codes == [c for c, _ in cases]
    assert alice.device.to_bytes() == before and alice.device.take_changes().records == []
