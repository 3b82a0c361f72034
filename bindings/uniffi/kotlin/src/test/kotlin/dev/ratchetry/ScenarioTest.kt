package dev.ratchetry

import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import uniffi.ratchetry_uniffi.Device
import uniffi.ratchetry_uniffi.DeviceEvent
import uniffi.ratchetry_uniffi.HistoryOpener
import uniffi.ratchetry_uniffi.HistorySealer
import uniffi.ratchetry_uniffi.LinkingCompanion
import uniffi.ratchetry_uniffi.NewAccount
import uniffi.ratchetry_uniffi.RatchetryException
import uniffi.ratchetry_uniffi.Received
import uniffi.ratchetry_uniffi.RetryRequest
import uniffi.ratchetry_uniffi.StoredRecord
import uniffi.ratchetry_uniffi.createAccount
import uniffi.ratchetry_uniffi.restoreDevice
import uniffi.ratchetry_uniffi.restoreDeviceFromBackup
import uniffi.ratchetry_uniffi.restorePrimary
import uniffi.ratchetry_uniffi.safetyNumber

/** A new account whose primary device is on the relay and whose list is published. */
fun account(relay: Relay): NewAccount {
    val acct = createAccount(NOW)
    relay.add(acct.device)
    relay.publish(acct.primary)
    return acct
}

class Linked(val device: Device, val deviceId: UInt, val events: List<DeviceEvent>)

/** The primary links a companion: invitation, request, approval, confirmation. */
fun link(relay: Relay, acct: NewAccount): Linked {
    val invitation = acct.primary.invite(relay.now)
    val linking = LinkingCompanion(invitation)
    val approval = acct.primary.approve(relay.now, linking.request())
    val linked = linking.complete(relay.now, approval)
    val deviceId = acct.primary.confirm(linked.confirmation)
    relay.add(linked.device)
    val events = relay.publish(acct.primary)
    relay.introduce(linked.device)
    return Linked(linked.device, deviceId, events)
}

/** The device-level API through the generated Kotlin, the same scenario as test_bindings.py. */
class ScenarioTest {
    private val relay = Relay()

    @Test
    fun twoAccountsExchangeMessages() {
        val alice = account(relay)
        val bob = account(relay)
        relay.introduce(alice.device, bob.device)
        relay.send(alice.device) { alice.device.send(relay.now, bob.primary.accountKey(), "hi Bob".encodeToByteArray()) }
        assertEquals(listOf("direct" to "hi Bob"), texts(relay.deliver(bob.device)))
        relay.send(bob.device) { bob.device.send(relay.now, alice.primary.accountKey(), "hi Alice".encodeToByteArray()) }
        val got = relay.deliver(alice.device)
        assertEquals(listOf("direct" to "hi Alice"), texts(got))
        assertTrue((got[0] as Received.Direct).sender.same(bob.device.address()))
    }

    @Test
    fun linkedCompanionReadsAndSends() {
        val alice = account(relay)
        val bob = account(relay)
        relay.introduce(alice.device, bob.device)
        val laptop = link(relay, alice)
        assertEquals(2u, laptop.deviceId)
        assertEquals(2u, laptop.device.address().device)
        assertTrue(laptop.events.any { it is DeviceEvent.DeviceAdded && it.device.device == 2u })
        assertEquals(2uL, alice.primary.deviceListVersion())

        relay.send(bob.device) { bob.device.send(relay.now, alice.primary.accountKey(), "to both".encodeToByteArray()) }
        assertEquals(listOf("direct" to "to both"), texts(relay.deliver(alice.device)))
        assertEquals(listOf("direct" to "to both"), texts(relay.deliver(laptop.device)))

        val out = relay.send(laptop.device) {
            laptop.device.send(relay.now, bob.primary.accountKey(), "from the laptop".encodeToByteArray())
        }
        // bob#1, and alice#1 for the own copy.
        assertEquals(
            setOf(bob.device.address().key(), alice.device.address().key()),
            out.envelopes.map { it.to.key() }.toSet(),
        )
        assertEquals(2, out.envelopes.size)
        assertEquals(listOf("direct" to "from the laptop"), texts(relay.deliver(bob.device)))
        val own = relay.deliver(alice.device)
        assertEquals(listOf("own" to "from the laptop"), texts(own))
        val copy = own[0] as Received.OwnCopy
        assertArrayEquals(bob.primary.accountKey(), copy.sentTo)
        assertTrue(copy.sender.same(laptop.device.address()))
    }

    @Test
    fun groupOfThreeAccountsWithALinkedTablet() {
        val alice = account(relay)
        val bob = account(relay)
        val carol = account(relay)
        val tablet = link(relay, bob).device
        val everyone = listOf(alice.device, bob.device, carol.device, tablet)
        relay.introduce(*everyone.toTypedArray())
        val group = ByteArray(32) { 7 }
        val members = listOf(alice, bob, carol).map { it.primary.accountKey() }
        everyone.forEach { it.setGroupMembers(group, members) }

        var out = relay.send(alice.device) { alice.device.sendGroup(relay.now, group, "hello group".encodeToByteArray()) }
        assertEquals(3, out.group!!.recipients.size) // bob#1, bob#2, carol#1
        for (d in everyone.drop(1)) {
            val got = relay.deliver(d)
            assertEquals(listOf("group" to "hello group"), texts(got))
            assertTrue(got.any { it is Received.SenderKey && it.sender.same(alice.device.address()) })
            assertArrayEquals(group, got.filterIsInstance<Received.Group>().single().group)
        }
        out = relay.send(alice.device) { alice.device.sendGroup(relay.now, group, "second".encodeToByteArray()) }
        assertTrue(out.envelopes.isEmpty()) // no new sender-key distribution
        assertNotNull(out.group)
        relay.send(tablet) { tablet.sendGroup(relay.now, group, "from bob's tablet".encodeToByteArray()) }
        val fromTablet = "group" to "from bob's tablet"
        val second = "group" to "second"
        assertEquals(listOf(fromTablet), texts(relay.deliver(alice.device)))
        assertEquals(setOf(second, fromTablet), texts(relay.deliver(bob.device)).toSet())
        assertEquals(setOf(second, fromTablet), texts(relay.deliver(carol.device)).toSet())
        assertEquals(listOf(second), texts(relay.deliver(tablet)))
    }

    @Test
    fun historySyncToANewCompanion() {
        val alice = account(relay)
        val desktop = link(relay, alice)
        val history = ByteArray(256 * 1000) { it.toByte() }
        val sealer = HistorySealer()
        val chunks = sealer.push(history).toMutableList()
        val sealed = sealer.finish()
        chunks += sealed.chunks
        assertTrue(chunks.size > 1)
        relay.send(alice.device) { alice.device.sendHistoryOffer(relay.now, desktop.deviceId, sealed.offer) }
        val offer = relay.deliver(desktop.device).single() as Received.HistoryOffer
        assertTrue(offer.sender.same(alice.device.address()))
        val opener = HistoryOpener(offer.offer)
        val restored = chunks.map { opener.push(it) }.reduce { a, b -> a + b }
        opener.finish()
        assertArrayEquals(history, restored)

        // A chunk out of order is refused with a code; a finished sealer refuses to go on.
        val other = HistoryOpener(offer.offer)
        val e = assertThrows<RatchetryException.Failed> { other.push(chunks[1]) }
        assertTrue(e.code.startsWith("sync."), e.code)
        assertEquals("binding.finished", assertThrows<RatchetryException.Failed> { sealer.push(history) }.code)
        assertEquals("binding.finished", assertThrows<RatchetryException.Failed> { opener.finish() }.code)
    }

    @Test
    fun restartFromPersistedBytes() {
        val alice = account(relay)
        val bob = account(relay)
        relay.introduce(alice.device, bob.device)
        relay.send(alice.device) { alice.device.send(relay.now, bob.primary.accountKey(), "before".encodeToByteArray()) }
        relay.deliver(bob.device)

        // Bob's app persists bytes and the epoch, and restarts.
        val saved = bob.device.toBytes()
        val epoch = bob.device.stateEpoch()
        val restored = restoreDevice(saved, epoch, relay.now)
        assertFalse(restored.fromBackup)
        val bob2 = restored.device
        bob.device.close() // the old process is gone
        relay.replace(bob.device, bob2)
        relay.send(alice.device) { alice.device.send(relay.now, bob.primary.accountKey(), "after".encodeToByteArray()) }
        assertEquals(listOf("direct" to "after"), texts(relay.deliver(bob2)))
        relay.send(bob2) { bob2.send(relay.now, alice.primary.accountKey(), "back".encodeToByteArray()) }
        assertEquals(listOf("direct" to "back"), texts(relay.deliver(alice.device)))

        // The primary role persists too.
        val primary2 = restorePrimary(alice.primary.toBytes(), alice.primary.stateEpoch())
        assertArrayEquals(alice.primary.accountKey(), primary2.accountKey())
        assertFalse(primary2.needsResync())

        // A stale snapshot is detected: restored as from a backup.
        assertTrue(bob2.stateEpoch() > epoch)
        val stale = restoreDevice(saved, bob2.stateEpoch(), relay.now)
        assertTrue(stale.fromBackup)
        assertTrue(stale.device.awaitingOwnList())
        // Bytes the app knows are a backup: the same, without an epoch to compare.
        assertTrue(restoreDeviceFromBackup(saved, relay.now).awaitingOwnList())
        assertFalse(bob2.awaitingOwnList())
    }

    @Test
    fun changeRecordsRebuildTheDevice() {
        val alice = account(relay)
        val bob = account(relay)
        relay.introduce(alice.device, bob.device)
        val store = mutableMapOf<String, Pair<ByteArray, ByteArray>>()
        var lastEpoch = 0uL
        fun persist(d: Device) {
            val changes = d.takeChanges()
            if (changes.replacesAll) store.clear()
            for (rec in changes.records) {
                val v = rec.value
                if (v == null) store.remove(rec.key.hex()) else store[rec.key.hex()] = rec.key to v
            }
            lastEpoch = changes.epoch
        }

        persist(bob.device)
        assertTrue(store.isNotEmpty())
        relay.send(alice.device) { alice.device.send(relay.now, bob.primary.accountKey(), "one".encodeToByteArray()) }
        assertEquals(listOf("direct" to "one"), texts(relay.deliver(bob.device)))
        assertTrue(bob.device.hasChanges())
        persist(bob.device)
        assertFalse(bob.device.hasChanges())
        assertEquals(bob.device.stateEpoch(), lastEpoch)
        // Nothing changed since: an empty set of changes.
        assertTrue(bob.device.takeChanges().records.isEmpty())
        // A record store the app put back from a backup: the device waits for a newer own list.
        val fromBackup = Device.fromBackupRecords(store.values.map { (k, v) -> StoredRecord(k, v) }, relay.now)
        assertTrue(fromBackup.awaitingOwnList())

        val bob2 = Device.fromRecords(store.values.map { (k, v) -> StoredRecord(k, v) })
        assertTrue(bob2.address().same(bob.device.address()))
        assertEquals(lastEpoch, bob2.stateEpoch())
        bob.device.close()
        relay.replace(bob.device, bob2)
        relay.send(alice.device) { alice.device.send(relay.now, bob.primary.accountKey(), "two".encodeToByteArray()) }
        assertEquals(listOf("direct" to "two"), texts(relay.deliver(bob2)))
        relay.send(bob2) { bob2.send(relay.now, alice.primary.accountKey(), "three".encodeToByteArray()) }
        assertEquals(listOf("direct" to "three"), texts(relay.deliver(alice.device)))
    }

    @Test
    fun errorsCarryStableCodes() {
        val alice = account(relay)
        val bob = account(relay)
        relay.introduce(alice.device, bob.device)
        val out = relay.send(alice.device) { alice.device.send(relay.now, bob.primary.accountKey(), "once".encodeToByteArray()) }
        val envelope = out.envelopes[0].bytes
        relay.deliver(bob.device)

        fun code(block: () -> Unit) = assertThrows<RatchetryException.Failed> { block() }.code

        assertEquals("fanout.duplicate", code { bob.device.receive(relay.now, envelope) })
        assertTrue(code { bob.device.receive(relay.now, byteArrayOf(2) + "garbage".encodeToByteArray()) }.startsWith("decode."))
        assertEquals("binding.bad_length", code { alice.device.send(relay.now, "short".encodeToByteArray(), byteArrayOf(1)) })
        val unknown = assertThrows<RatchetryException.Failed> { alice.device.sendGroup(relay.now, ByteArray(32), byteArrayOf(1)) }
        assertEquals("fanout.unknown_group", unknown.code)
        assertTrue("members" in unknown.detail, unknown.detail)
        assertTrue(unknown.message!!.contains("fanout.unknown_group"))

        // A forged envelope changes nothing: the genuine one still reads afterwards.
        val genuine = relay.send(alice.device) {
            alice.device.send(relay.now, bob.primary.accountKey(), "genuine".encodeToByteArray())
        }.envelopes[0].bytes
        relay.queue(bob.device.address()).clear()
        val forged = genuine.copyOf().also { it[it.size - 1] = (it[it.size - 1].toInt() xor 1).toByte() }
        bob.device.takeChanges() // the app persisted everything so far
        val before = bob.device.toBytes()
        val epoch = bob.device.stateEpoch()
        assertEquals("ratchet.authentication_failed", code { bob.device.receive(relay.now, forged) })
        assertEquals(epoch, bob.device.stateEpoch())
        assertArrayEquals(before, bob.device.toBytes())
        assertTrue(bob.device.takeChanges().records.isEmpty())
        assertEquals(listOf("direct" to "genuine"), texts(listOf(bob.device.receive(relay.now, genuine))))
    }

    @Test
    fun unlinkedCompanionIsDropped() {
        val alice = account(relay)
        val bob = account(relay)
        relay.introduce(alice.device, bob.device)
        val laptop = link(relay, alice)
        alice.primary.unlink(relay.now, laptop.deviceId)
        val events = relay.publish(alice.primary)
        assertTrue(events.any { it is DeviceEvent.ThisDeviceRemoved })
        assertTrue(events.any { it is DeviceEvent.DeviceRemoved && it.device.device == laptop.deviceId })
        val out = relay.send(bob.device) { bob.device.send(relay.now, alice.primary.accountKey(), "x".encodeToByteArray()) }
        assertEquals(listOf(1u), out.envelopes.map { it.to.device })
        assertFalse(out.envelopes.any { it.to.same(laptop.device.address()) })
    }

    /** As test_bindings.py's: told expired (not removed), refused, sends once renewed. */
    @Test
    fun expiredCompanionWaitsForItsRenewal() {
        val day = 24uL * 60uL * 60uL * 1000uL
        val alice = account(relay)
        val bob = account(relay)
        relay.introduce(alice.device, bob.device)
        val laptop = link(relay, alice)
        val tablet = link(relay, alice)
        alice.primary.unlink(relay.now, tablet.deviceId)
        val unlinked = alice.primary.deviceList()
        relay.now = NOW + 13uL * day
        alice.primary.renew(relay.now) // signed before the laptop expires, not yet served to it
        relay.now = NOW + 16uL * day
        val events = laptop.device.updateDeviceList(relay.now, alice.primary.accountKey(), unlinked)
        assertTrue(events.any { it is DeviceEvent.ThisDeviceExpired })
        assertFalse(events.any { it is DeviceEvent.ThisDeviceRemoved })
        val refused = assertThrows<RatchetryException.Failed> {
            laptop.device.send(relay.now, bob.primary.accountKey(), "while expired".encodeToByteArray())
        }
        assertEquals("fanout.this_device_expired", refused.code)
        assertFalse(relay.publish(alice.primary).any { it is DeviceEvent.ThisDeviceExpired })
        relay.send(laptop.device) { laptop.device.send(relay.now, bob.primary.accountKey(), "renewed".encodeToByteArray()) }
        assertEquals(listOf("direct" to "renewed"), texts(relay.deliver(bob.device)))
    }

    @Test
    fun safetyNumberIsSymmetric() {
        val a = account(relay).primary.accountKey()
        val b = account(relay).primary.accountKey()
        assertEquals(safetyNumber(a, b), safetyNumber(b, a))
        assertEquals(60, safetyNumber(a, b).count { it.isDigit() })
        assertEquals(
            "binding.bad_length",
            assertThrows<RatchetryException.Failed> { safetyNumber(a, b.copyOf(31)) }.code,
        )
    }

    @Test
    fun corruptedEnvelopeIsAskedForAgain() {
        val alice = account(relay)
        val bob = account(relay)
        relay.introduce(alice.device, bob.device)
        val body = "worth asking for".encodeToByteArray()
        val out = relay.send(alice.device) { alice.device.send(relay.now, bob.primary.accountKey(), body) }
        val stored = mapOf(out.sendId!! to body) // the sender's app keeps bodies by send id
        val q = relay.queue(bob.device.address())
        val damaged = q.removeAt(q.size - 1)
        damaged[damaged.size - 1] = (damaged[damaged.size - 1].toInt() xor 1).toByte()
        val e = assertThrows<RatchetryException.Failed> { bob.device.receive(relay.now, damaged) }
        assertEquals("ratchet.authentication_failed", e.code)
        val request = bob.device.requestRetry(relay.now, damaged, 2u.toUByte())
        assertTrue(request.to.same(alice.device.address()))
        relay.queue(request.to).add(request.bytes)
        val asked = relay.deliver(alice.device).single() as Received.RetryRequest
        assertTrue(asked.request.sender().same(bob.device.address()))
        assertEquals(1.toUByte(), asked.request.attempt())
        val sendId = asked.request.sendId()
        assertEquals(out.sendId, sendId)
        // Alice's app keeps the unanswered request across a restart, with the device's state.
        val kept = RetryRequest.fromBytes(asked.request.toBytes())
        assertEquals(sendId, kept.sendId())
        assertEquals(asked.request.sender(), kept.sender())
        relay.send(alice.device) { alice.device.answerRetry(relay.now, kept, stored.getValue(sendId)) }
        assertEquals(listOf("direct" to "worth asking for"), texts(relay.deliver(bob.device)))
    }

    @Test
    fun stalePrimaryResyncsBeforeSigning() {
        val alice = account(relay)
        val snapshot = alice.primary.toBytes()
        link(relay, alice) // the primary moves on after the snapshot
        val stale = restorePrimary(snapshot, alice.primary.stateEpoch())
        assertTrue(stale.needsResync())
        val e = assertThrows<RatchetryException.Failed> { stale.invite(relay.now) }
        assertEquals("device.resync_required", e.code)
        stale.resync(relay.now, relay.lists.getValue(alice.primary.accountKey().hex()).second)
        assertFalse(stale.needsResync())
        // Far past every version used, listing the phone alone: companions link again.
        assertTrue(stale.deviceListVersion() > alice.primary.deviceListVersion())
        assertTrue(stale.invite(relay.now).isNotEmpty())
    }
}
