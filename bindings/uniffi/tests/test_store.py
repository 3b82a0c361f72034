"""The ready SQLite store through the binding (`SqliteStore`, ratchetry-sqlite): a phone's
device and primary persisted after every operation and loaded after a restart, and the store's
refusals as `store.*` codes, the database left as it was."""

import os
import subprocess
import sys

from conftest import NOW, failed, key, r, texts


def accounts(relay):
    alice, bob = r.create_account(NOW), r.create_account(NOW)
    for a in (alice, bob):
        relay.add(a.device)
        relay.publish(a.primary)
    relay.introduce(alice.device, bob.device)
    return alice, bob


def test_a_phone_persists_each_operation_and_loads_after_a_restart(relay, tmp_path):
    alice, bob = accounts(relay)
    storage_key = os.urandom(32)
    path = str(tmp_path / "bob.db")
    store = r.SqliteStore.open(path, storage_key)
    assert store.load(0) is None and store.load_primary(0) is None
    epoch = store.persist(bob.device)
    primary_epoch = store.persist_primary(bob.primary)
    # Each operation, then its unit, before acting on it.
    for text in (b"one", b"two"):
        relay.send(alice.device, lambda: alice.device.send(NOW, bob.primary.account_key(), text))
        relay.deliver(bob.device)
        epoch = store.persist(bob.device)
    # Nothing changed since: the same epoch, nothing written.
    assert store.persist(bob.device) == epoch
    # A restart: a new connection, the device and the primary as they were.
    store = r.SqliteStore.open(path, storage_key)
    loaded = store.load(epoch)
    assert loaded.to_bytes() == bob.device.to_bytes()
    assert store.load_primary(primary_epoch).to_bytes() == bob.primary.to_bytes()
    relay.send(alice.device, lambda: alice.device.send(NOW, bob.primary.account_key(), b"three"))
    assert texts(relay.deliver(loaded)) == [("direct", "three")]
    assert store.persist(loaded) == epoch + 1


# Holds the database at argv[1] for writing until a line arrives on stdin.
HOLD = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("held", flush=True)
sys.stdin.readline()
db.execute("ROLLBACK")
"""


def test_a_write_sqlite_refuses_is_written_by_the_next_persist(relay, tmp_path):
    """Another connection holds the database (a notification extension, say): the write
    fails as `store.sqlite` (SQLITE_BUSY as `number`, after SQLite's wait), the changes are
    kept on the device object, no other device's persist writes them, and the device's next
    persist writes them and the new ones in order."""
    alice, bob = accounts(relay)
    storage_key = os.urandom(32)
    path = str(tmp_path / "bob.db")
    store = r.SqliteStore.open(path, storage_key)
    epoch = store.persist(bob.device)
    relay.send(alice.device, lambda: alice.device.send(NOW, bob.primary.account_key(), b"one"))
    relay.deliver(bob.device)
    # Another process (SQLite's locks are per process) holds the database for writing.
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout.readline() == b"held\n"
        e = failed(lambda: store.persist(bob.device))
        assert e.code == "store.sqlite" and e.number & 0xFF == 5  # SQLITE_BUSY
        assert "SQLite" in e.detail and path not in e.detail  # the code, not the path
        assert bob.device.has_changes()  # taken, kept on the device, not durable
    finally:
        holder.communicate(b"done\n", timeout=30)
    # Another copy of the stored device (loaded, say, for a second screen): its persist
    # writes its own changes (none), not the units kept on bob's.
    copy = store.load(epoch)
    assert store.persist(copy) == epoch and not copy.has_changes()
    assert store.load(epoch).to_bytes() == copy.to_bytes()
    # Nothing new on the device: the kept unit is written.
    assert bob.device.has_changes()
    assert store.persist(bob.device) == epoch + 1
    assert not bob.device.has_changes()
    relay.send(alice.device, lambda: alice.device.send(NOW, bob.primary.account_key(), b"two"))
    relay.deliver(bob.device)
    assert store.persist(bob.device) == epoch + 2
    assert store.load(epoch + 2).to_bytes() == bob.device.to_bytes()
    # A path that would not persist where the app expects is refused.
    for bad in ("", ":memory:", "relative.db", "file:bob.db"):
        assert failed(lambda: r.SqliteStore.open(bad, storage_key)).code == "binding.bad_input"


def test_the_stores_refusals_have_codes_and_write_nothing(relay, tmp_path):
    alice, bob = accounts(relay)
    storage_key = os.urandom(32)
    path = str(tmp_path / "bob.db")
    store = r.SqliteStore.open(path, storage_key)
    first = store.persist(bob.device)
    # Another key does not open the database.
    e = failed(lambda: r.SqliteStore.open(path, os.urandom(32)))
    assert e.code == "store.wrong_storage_key"
    assert failed(lambda: r.SqliteStore.open(path, b"short")).code == "binding.bad_length"
    # Two live copies: the one that writes second does not start from what is stored (the
    # other wrote since): refused, nothing written.
    copy = store.load(first)
    relay.send(alice.device, lambda: alice.device.send(NOW, bob.primary.account_key(), b"one"))
    env = relay.queues[key(bob.device.address())][0]
    bob.device.receive(NOW, env)
    latest = store.persist(bob.device)
    copy.receive(NOW, env)
    e = failed(lambda: store.persist(copy))
    assert e.code == "store.unit_gap" and e.number == latest
    assert store.load(latest).to_bytes() == bob.device.to_bytes()
    # The database rolled back as a whole (its file restored from a backup): detected against
    # the epoch kept outside it, then loaded as restored, and persisted at once.
    e = failed(lambda: store.load(latest + 5))
    assert e.code == "store.stale_snapshot" and e.number == latest
    restored = store.load_restored(latest + 5, NOW)
    assert restored.awaiting_own_list()
    assert store.persist(restored) > latest + 5
    # No primary is stored: nothing to load as restored.
    assert failed(lambda: store.load_primary_restored(0)).code == "store.not_stored"


def test_a_reset_under_a_new_key_starts_the_store_anew(relay, tmp_path):
    """Bob's phone links again as a new device: the store is reset under a new key. Nothing of
    the old device loads, the new one is persisted and loads after a restart, the app's own
    table stays, and neither the old key nor the file put back to a copy from before the reset
    opens under the new key. The old key is refused, nothing deleted."""
    import shutil
    import sqlite3

    alice, bob = accounts(relay)
    old_key = os.urandom(32)
    path = str(tmp_path / "bob.db")
    store = r.SqliteStore.open(path, old_key)
    epoch = store.persist(bob.device)
    store.persist_primary(bob.primary)
    app = sqlite3.connect(path)
    app.execute("CREATE TABLE app (x)")
    app.execute("INSERT INTO app VALUES (1)")
    app.commit()
    app.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(path, str(tmp_path / "before.db"))
    assert failed(lambda: store.reset(old_key)).code == "store.same_storage_key"
    assert store.load(epoch).to_bytes() == bob.device.to_bytes()

    new_key = os.urandom(32)
    store.reset(new_key)
    assert store.load(0) is None and store.load_primary(0) is None
    assert app.execute("SELECT count(*) FROM app").fetchone() == (1,)
    assert failed(lambda: r.SqliteStore.open(path, old_key)).code == "store.wrong_storage_key"
    again = r.create_account(NOW)
    first = store.persist(again.device)
    store = r.SqliteStore.open(path, new_key)
    assert store.load(first).to_bytes() == again.device.to_bytes()

    # The file put back to its copy from before the reset.
    del store
    app.close()
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    shutil.copy(str(tmp_path / "before.db"), path)
    assert failed(lambda: r.SqliteStore.open(path, new_key)).code == "store.wrong_storage_key"


def test_a_deleted_row_is_named_by_its_kind_alone(relay, tmp_path):
    """A row deleted behind the store's back is `store.record_missing`; the detail names the
    record's kind, not its key (a sessions record's key is a contact's address)."""
    import sqlite3

    alice, bob = accounts(relay)
    storage_key = os.urandom(32)
    path = str(tmp_path / "bob.db")
    store = r.SqliteStore.open(path, storage_key)
    relay.send(alice.device, lambda: alice.device.send(NOW, bob.primary.account_key(), b"one"))
    relay.deliver(bob.device)
    epoch = store.persist(bob.device)
    db = sqlite3.connect(path)
    (row_key,) = db.execute(
        "SELECT key FROM ratchetry_rows WHERE slot = 'device' AND hex(key) LIKE '08%'"
    ).fetchone()
    db.execute("DELETE FROM ratchetry_rows WHERE slot = 'device' AND key = ?", (row_key,))
    db.commit()
    db.close()
    e = failed(lambda: r.SqliteStore.open(path, storage_key).load(epoch))
    assert e.code == "store.record_missing"
    assert "kind 0x08" in e.detail and row_key.hex() not in e.detail
