package dev.ratchetry

import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import uniffi.ratchetry_uniffi.Address
import uniffi.ratchetry_uniffi.Call
import uniffi.ratchetry_uniffi.CallKeyMessage
import uniffi.ratchetry_uniffi.CallKind
import uniffi.ratchetry_uniffi.ListCoverage
import uniffi.ratchetry_uniffi.PublishedPreKeys
import uniffi.ratchetry_uniffi.RetryRequest
import uniffi.ratchetry_uniffi.createAccount
import uniffi.ratchetry_uniffi.openState
import uniffi.ratchetry_uniffi.restoreCall
import uniffi.ratchetry_uniffi.restoreDeviceFromBackup
import uniffi.ratchetry_uniffi.restorePrimaryFromRecords
import uniffi.ratchetry_uniffi.BundleFor
import uniffi.ratchetry_uniffi.Device
import uniffi.ratchetry_uniffi.HistoryOpener
import uniffi.ratchetry_uniffi.LinkingCompanion
import uniffi.ratchetry_uniffi.RatchetryException
import uniffi.ratchetry_uniffi.StoredRecord
import uniffi.ratchetry_uniffi.WithheldDevice
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
    fun newEntryPointsRefuseBadInputWithACode() {
        val alice = account(relay)
        val bob = account(relay)
        relay.introduce(alice.device, bob.device)
        val a = alice.device.address()
        val bad = Address(ByteArray(5), 1u)
        val call = Call.start(CallKind.ONE_TO_ONE, a, listOf(bob.device.address()))
        alice.device.takeChanges()
        val before = alice.device.toBytes()
        val cases: List<Pair<String, () -> Any?>> = listOf(
            "binding.bad_length" to { Call.start(CallKind.GROUP, bad, emptyList()) },
            "binding.bad_length" to { Call.start(CallKind.GROUP, a, listOf(bad)) },
            "decode.unknown_type" to { CallKeyMessage.fromBytes(garbage) },
            "decode.unknown_version" to { restoreCall(garbage, 0u) },
            "binding.bad_length" to { call.join(bad) },
            "sync.not_call_manager" to { call.remove(a) },
            "binding.bad_length" to { alice.device.sendCallKey(relay.now, listOf(bad), call) },
            "binding.bad_length" to { alice.device.groupMembers(ByteArray(0)) },
            "binding.bad_length" to { alice.device.sendGroupWithholding(relay.now, ByteArray(1), ByteArray(0), listOf()) },
            "binding.bad_length" to {
                alice.device.sendGroupWithholding(relay.now, ByteArray(32), ByteArray(0), listOf(WithheldDevice(bad, null)))
            },
            "binding.bad_length" to { alice.device.notDelivered(1uL, listOf(bad)) },
            "binding.bad_length" to { alice.device.hasSession(bad) },
            "binding.bad_length" to { alice.device.forgetAccount(ByteArray(0)) },
            "decode.unknown_type" to { relay.served.publish(alice.primary.accountKey(), garbage) },
            "device.wrong_account" to { relay.served.publish(bob.primary.accountKey(), alice.primary.deviceList()) },
            "binding.bad_length" to {
                relay.served.checkCoverage(relay.now, a, emptyList(), listOf(ListCoverage(bob.primary.accountKey(), 1uL, ByteArray(0))))
            },
            "decode.unknown_type" to { PublishedPreKeys(relay.now, a, garbage, relay.served) },
            "server.unknown_account" to {
                PublishedPreKeys(relay.now, Address(createAccount(NOW).primary.accountKey(), 1u), alice.device.prekeyBundle(), relay.served)
            },
            "decode.unknown_type" to { relay.upload(alice.device, garbage) },
            "decode.unknown_type" to { openState(ByteArray(32), garbage, byteArrayOf(1), 0uL) },
            "decode.missing_record" to { restorePrimaryFromRecords(emptyList(), 0uL) },
            "decode.unknown_type" to { RetryRequest.fromBytes(garbage) },
            "decode.unknown_version" to { restoreDeviceFromBackup(garbage, relay.now) },
            "decode.missing_record" to { Device.fromBackupRecords(emptyList(), relay.now) },
        )
        val codes = cases.map { (_, call) -> assertThrows<RatchetryException.Failed> { call() }.code }
        assertEquals(cases.map { it.first }, codes)
        assertArrayEquals(before, alice.device.toBytes())
        assertEquals(emptyList<StoredRecord>(), alice.device.takeChanges().records)
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
