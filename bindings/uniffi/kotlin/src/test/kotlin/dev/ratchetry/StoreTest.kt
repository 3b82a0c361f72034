package dev.ratchetry

import java.nio.file.Files
import java.security.SecureRandom
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import uniffi.ratchetry_uniffi.RatchetryException
import uniffi.ratchetry_uniffi.SqliteStore

/**
 * The ready SQLite store as an Android app runs it: persist the device after every operation
 * (and the primary after it signs), keep the epoch outside the database, load after a restart;
 * a database rolled back as a whole is detected against that epoch.
 */
class StoreTest {
    private val relay = Relay()

    @Test
    fun aPhonePersistsEachOperationAndLoadsAfterARestart() {
        val alice = account(relay)
        val bob = account(relay)
        relay.introduce(alice.device, bob.device)
        val storageKey = ByteArray(32).also { SecureRandom().nextBytes(it) }
        val path = Files.createTempDirectory("ratchetry").resolve("bob.db").toString()
        var store = SqliteStore.open(path, storageKey)
        assertNull(store.load(0uL))
        var epoch = store.persist(bob.device)
        val primaryEpoch = store.persistPrimary(bob.primary)
        relay.send(alice.device) { alice.device.send(relay.now, bob.primary.accountKey(), "hello".encodeToByteArray()) }
        assertEquals(listOf("direct" to "hello"), texts(relay.deliver(bob.device)))
        epoch = store.persist(bob.device)

        // A restart: the device and the primary as they were.
        store = SqliteStore.open(path, storageKey)
        val loaded = store.load(epoch)!!
        assertArrayEquals(bob.device.toBytes(), loaded.toBytes())
        assertArrayEquals(bob.primary.toBytes(), store.loadPrimary(primaryEpoch)!!.toBytes())

        // Another key does not open it; a database older than the epoch kept is detected.
        val wrong = assertThrows<RatchetryException.Failed> { SqliteStore.open(path, ByteArray(32)) }
        assertEquals("store.wrong_storage_key", wrong.code)
        val stale = assertThrows<RatchetryException.Failed> { store.load(epoch + 3uL) }
        assertEquals("store.stale_snapshot", stale.code)
        assertEquals(epoch, stale.number)
        val restored = store.loadRestored(epoch + 3uL, relay.now)
        assertTrue(restored.awaitingOwnList())
        assertTrue(store.persist(restored) > epoch + 3uL)
    }

    /** The phone links again as a new device: the store is reset under a new storage key. */
    @Test
    fun aResetUnderANewKeyStartsTheStoreAnew() {
        val bob = account(relay)
        val oldKey = ByteArray(32).also { SecureRandom().nextBytes(it) }
        val path = Files.createTempDirectory("ratchetry").resolve("bob.db").toString()
        val store = SqliteStore.open(path, oldKey)
        val epoch = store.persist(bob.device)
        val same = assertThrows<RatchetryException.Failed> { store.reset(oldKey) }
        assertEquals("store.same_storage_key", same.code)
        assertArrayEquals(bob.device.toBytes(), store.load(epoch)!!.toBytes())

        val newKey = ByteArray(32).also { SecureRandom().nextBytes(it) }
        store.reset(newKey)
        assertNull(store.load(0uL))
        val old = assertThrows<RatchetryException.Failed> { SqliteStore.open(path, oldKey) }
        assertEquals("store.wrong_storage_key", old.code)
        val again = account(relay)
        val first = store.persist(again.device)
        assertArrayEquals(again.device.toBytes(), SqliteStore.open(path, newKey).load(first)!!.toBytes())
    }
}
