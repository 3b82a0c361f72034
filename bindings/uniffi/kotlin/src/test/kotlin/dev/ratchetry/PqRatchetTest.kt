package dev.ratchetry

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import uniffi.ratchetry_uniffi.Address
import uniffi.ratchetry_uniffi.BundleFor
import uniffi.ratchetry_uniffi.Device
import uniffi.ratchetry_uniffi.RatchetryException

/**
 * The post-quantum ratchet through the binding: a device that enables it later, the one bundle
 * refresh that moves a pair onto it, and its state through change records.
 */
class PqRatchetTest {
    private val relay = Relay()

    @Test
    fun aPeerThatEnablesItLaterRunsItAfterOneBundleRefresh() {
        val alice = account(relay)
        val bob = account(relay)
        relay.introduce(alice.device, bob.device)
        relay.send(alice.device) { alice.device.send(relay.now, bob.primary.accountKey(), "before".encodeToByteArray()) }
        assertEquals(listOf("direct" to "before"), texts(relay.deliver(bob.device)))
        assertNull(alice.device.pqRatchetEpoch(bob.device.address()))
        val stale = alice.device.sessionsWithoutPqRatchet()
        assertEquals(listOf(bob.device.address().key()), stale.map { it.key() })

        bob.device.enablePqRatchet(relay.now)
        relay.add(bob.device) // publishes the bundle again: it now says so
        alice.device.startSessions(relay.now, stale.map { BundleFor(it, relay.bundle(it)) })
        assertEquals(0u, alice.device.pqRatchetEpoch(bob.device.address()))
        assertTrue(alice.device.sessionsWithoutPqRatchet().isEmpty())
        for (i in 0 until 60) { // an epoch takes about 76 messages
            relay.send(alice.device) { alice.device.send(relay.now, bob.primary.accountKey(), "a$i".encodeToByteArray()) }
            assertEquals(listOf("direct" to "a$i"), texts(relay.deliver(bob.device)))
            relay.send(bob.device) { bob.device.send(relay.now, alice.primary.accountKey(), "b$i".encodeToByteArray()) }
            assertEquals(listOf("direct" to "b$i"), texts(relay.deliver(alice.device)))
        }
        assertTrue(alice.device.pqRatchetEpoch(bob.device.address())!! >= 1u)

        val changes = bob.device.takeChanges()
        assertTrue(changes.replacesAll)
        val rebuilt = Device.fromRecords(changes.records)
        assertNotNull(rebuilt.pqRatchetEpoch(alice.device.address()))
        assertTrue(rebuilt.sessionsWithoutPqRatchet().isEmpty())

        val e = assertThrows<RatchetryException.Failed> {
            alice.device.pqRatchetEpoch(Address(ByteArray(5), 1u))
        }
        assertEquals("binding.bad_length", e.code)
    }
}
