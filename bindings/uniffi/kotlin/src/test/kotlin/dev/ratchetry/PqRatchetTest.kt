package dev.ratchetry

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import uniffi.ratchetry_uniffi.Address
import uniffi.ratchetry_uniffi.Device
import uniffi.ratchetry_uniffi.RatchetryException

/**
 * The post-quantum ratchet through the binding: every session runs it from its first message,
 * it completes epochs, and its state survives a restart from change records.
 */
class PqRatchetTest {
    private val relay = Relay()

    @Test
    fun everySessionRunsItByDefault() {
        val alice = account(relay)
        val bob = account(relay)
        relay.introduce(alice.device, bob.device)
        relay.send(alice.device) { alice.device.send(relay.now, bob.primary.accountKey(), "first".encodeToByteArray()) }
        assertEquals(listOf("direct" to "first"), texts(relay.deliver(bob.device)))
        assertEquals(0u, alice.device.pqRatchetEpoch(bob.device.address()))
        assertEquals(0u, bob.device.pqRatchetEpoch(alice.device.address()))
        assertTrue(alice.device.sessionsWithoutPqRatchet().isEmpty())
        assertTrue(bob.device.sessionsWithoutPqRatchet().isEmpty())
        for (i in 0 until 60) { // an epoch takes about 76 messages
            relay.send(alice.device) { alice.device.send(relay.now, bob.primary.accountKey(), "a$i".encodeToByteArray()) }
            assertEquals(listOf("direct" to "a$i"), texts(relay.deliver(bob.device)))
            relay.send(bob.device) { bob.device.send(relay.now, alice.primary.accountKey(), "b$i".encodeToByteArray()) }
            assertEquals(listOf("direct" to "b$i"), texts(relay.deliver(alice.device)))
        }
        assertTrue(alice.device.pqRatchetEpoch(bob.device.address())!! >= 1u)

        val changes = bob.device.takeChanges()
        assertTrue(changes.replacesAll)
        assertNull(changes.baseEpoch)
        val empty = bob.device.takeChanges() // the next starts where it ended
        assertEquals(changes.epoch, empty.baseEpoch)
        assertEquals(changes.epoch, empty.epoch)
        assertTrue(empty.records.isEmpty())
        assertNull(changes.baseTag)
        assertEquals(16, changes.tag.size)
        assertTrue(changes.tag.contentEquals(empty.baseTag!!))
        assertTrue(changes.tag.contentEquals(empty.tag))
        val rebuilt = Device.fromRecords(changes.records)
        assertNotNull(rebuilt.pqRatchetEpoch(alice.device.address()))
        assertTrue(rebuilt.sessionsWithoutPqRatchet().isEmpty())

        val e = assertThrows<RatchetryException.Failed> {
            alice.device.pqRatchetEpoch(Address(ByteArray(5), 1u))
        }
        assertEquals("binding.bad_length", e.code)
    }
}
