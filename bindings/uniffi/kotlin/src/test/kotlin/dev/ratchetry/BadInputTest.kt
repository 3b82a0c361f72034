package dev.ratchetry

import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import uniffi.ratchetry_uniffi.Address
import uniffi.ratchetry_uniffi.BundleFor
import uniffi.ratchetry_uniffi.Device
import uniffi.ratchetry_uniffi.HistoryOpener
import uniffi.ratchetry_uniffi.LinkingCompanion
import uniffi.ratchetry_uniffi.RatchetryException
import uniffi.ratchetry_uniffi.StoredRecord
import uniffi.ratchetry_uniffi.restoreDevice
import uniffi.ratchetry_uniffi.restorePrimary
import uniffi.ratchetry_uniffi.safetyNumber

/**
 * Bad input from Kotlin is a typed [RatchetryException.Failed] with a stable code, never a crash
 * of the JVM, and the objects it was given to are unchanged.
 */
class BadInputTest {
    private val relay = Relay()
    private val garbage = byteArrayOf(2) + "garbage".encodeToByteArray()

    @Test
    fun everyEntryPointRefusesBadBytesWithACode() {
        val alice = account(relay)
        val bob = account(relay)
        relay.introduce(alice.device, bob.device)
        alice.device.takeChanges()
        val deviceBefore = alice.device.toBytes()
        val primaryBefore = alice.primary.toBytes()
        val invitation = alice.primary.invite(relay.now)
        val primaryAfterInvite = alice.primary.toBytes()

        val cases: List<Pair<String, () -> Any?>> = listOf(
            "decode.unknown_type" to { LinkingCompanion(garbage) },
            "decode.truncated" to { LinkingCompanion(ByteArray(0)) },
            "decode.unknown_type" to { LinkingCompanion(invitation).complete(relay.now, garbage) },
            "decode.unknown_type" to { HistoryOpener(garbage) },
            "decode.unknown_version" to { restoreDevice(garbage, 0uL, relay.now) },
            "decode.truncated" to { restoreDevice(ByteArray(0), 0uL, relay.now) },
            "decode.unknown_type" to { restorePrimary(garbage, 0uL) },
            "decode.missing_record" to { Device.fromRecords(emptyList()) },
            "decode.trailing_bytes" to { Device.fromRecords(listOf(StoredRecord(garbage, garbage))) },
            "decode.unknown_type" to { alice.primary.approve(relay.now, garbage) },
            "decode.unknown_type" to { alice.primary.confirm(garbage) },
            "decode.unknown_type" to { alice.primary.resync(relay.now, garbage) },
            "device.not_in_list" to { alice.primary.unlink(relay.now, 99u) },
            "device.not_primary" to { alice.primary.unlink(relay.now, 1u) },
            "decode.unknown_type" to { alice.device.updateDeviceList(relay.now, bob.primary.accountKey(), garbage) },
            "device.wrong_account" to {
                alice.device.updateDeviceList(relay.now, bob.primary.accountKey(), alice.primary.deviceList())
            },
            "decode.unknown_type" to {
                alice.device.startSessions(relay.now, listOf(BundleFor(bob.device.address(), garbage)))
            },
            "binding.bad_length" to {
                alice.device.startSessions(relay.now, listOf(BundleFor(Address(ByteArray(3), 1u), bob.device.prekeyBundle())))
            },
            "device.not_in_list" to {
                alice.device.startSessions(
                    relay.now,
                    listOf(BundleFor(Address(bob.primary.accountKey(), 2u), bob.device.prekeyBundle())),
                )
            },
            "binding.bad_length" to { alice.device.setGroupMembers(ByteArray(31), emptyList()) },
            "binding.bad_length" to { alice.device.setGroupMembers(ByteArray(32), listOf(ByteArray(5))) },
            "binding.bad_length" to { alice.device.deviceListVersion(ByteArray(2)) },
            "binding.bad_length" to { alice.device.send(relay.now, ByteArray(0), garbage) },
            "decode.invalid_key" to { alice.device.send(relay.now, ByteArray(32), garbage) },
            "decode.unknown_type" to { alice.device.sendHistoryOffer(relay.now, 2u, garbage) },
            "decode.unknown_type" to { alice.device.requestRetry(relay.now, garbage, 2u.toUByte()) },
            "decode.truncated" to { alice.device.receive(relay.now, ByteArray(0)) },
            "decode.unknown_version" to { alice.device.receive(relay.now, ByteArray(200)) },
            "binding.bad_length" to { safetyNumber(ByteArray(0), ByteArray(0)) },
        )
        val codes = cases.map { (_, call) -> assertThrows<RatchetryException.Failed> { call() }.code }
        assertEquals(cases.map { it.first }, codes)

        // Nothing changed: same bytes, no change records, and the device still talks.
        assertArrayEquals(deviceBefore, alice.device.toBytes())
        assertEquals(emptyList<StoredRecord>(), alice.device.takeChanges().records)
        assertArrayEquals(primaryAfterInvite, alice.primary.toBytes())
        assertEquals(false, primaryBefore.contentEquals(primaryAfterInvite)) // the invite was recorded
        relay.send(alice.device) { alice.device.send(relay.now, bob.primary.accountKey(), "still here".encodeToByteArray()) }
        assertEquals(listOf("direct" to "still here"), texts(relay.deliver(bob.device)))
    }

    @Test
    fun aClosedObjectThrowsInsteadOfCrashing() {
        val alice = account(relay)
        val address = alice.device.address()
        alice.device.close()
        assertThrows<IllegalStateException> { alice.device.address() }
        alice.device.close() // twice is harmless
        // The address read before is plain data and outlives the object.
        assertEquals(1u, address.device)
    }
}
