package dev.ratchetry

import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import uniffi.ratchetry_uniffi.AccountPolicy
import uniffi.ratchetry_uniffi.Address
import uniffi.ratchetry_uniffi.Call
import uniffi.ratchetry_uniffi.CallConfig
import uniffi.ratchetry_uniffi.CallKind
import uniffi.ratchetry_uniffi.DeviceConfig
import uniffi.ratchetry_uniffi.KeptCall
import uniffi.ratchetry_uniffi.LinkingCompanion
import uniffi.ratchetry_uniffi.NewAccount
import uniffi.ratchetry_uniffi.Outgoing
import uniffi.ratchetry_uniffi.PoolCounts
import uniffi.ratchetry_uniffi.PreKeyConfig
import uniffi.ratchetry_uniffi.PrimaryPolicy
import uniffi.ratchetry_uniffi.PublishedPreKeys
import uniffi.ratchetry_uniffi.RatchetryException
import uniffi.ratchetry_uniffi.Received
import uniffi.ratchetry_uniffi.createAccount
import uniffi.ratchetry_uniffi.defaultCallConfig
import uniffi.ratchetry_uniffi.defaultDeviceConfig
import uniffi.ratchetry_uniffi.defaultPrimaryPolicy
import uniffi.ratchetry_uniffi.envelopeId
import uniffi.ratchetry_uniffi.openState
import uniffi.ratchetry_uniffi.restoreCall
import uniffi.ratchetry_uniffi.StateRole
import uniffi.ratchetry_uniffi.StoredRecord
import uniffi.ratchetry_uniffi.WithheldDevice
import uniffi.ratchetry_uniffi.restoreDevice
import uniffi.ratchetry_uniffi.restoreDeviceFromBackup
import uniffi.ratchetry_uniffi.restorePrimaryFromRecords
import uniffi.ratchetry_uniffi.sealState

/**
 * The rest of the app-facing API through the generated Kotlin, on the scenario's accounts and
 * relay (the same cases as `tests/test_api.py`): calls, policies, one-time prekeys, groups and
 * accounts, the relay's helpers, sealed state, value equality of addresses.
 */
class ApiTest {
    private val relay = Relay()

    private fun code(block: () -> Any?) = assertThrows<RatchetryException.Failed> { block() }.code

    private fun talking(n: Int): List<NewAccount> {
        val accounts = (1..n).map { account(relay) }
        relay.introduce(*accounts.map { it.device }.toTypedArray())
        return accounts
    }

    private fun String.bytes() = encodeToByteArray()

    @Test
    fun callKeyGivesEveryParticipantTheSameSrtpKeys() {
        val (alice, bob, carol) = talking(3)
        val a = alice.device.address()
        val b = bob.device.address()
        val c = carol.device.address()
        val call = Call.start(CallKind.ONE_TO_ONE, a, listOf(b))
        assertEquals(a, call.manager())
        assertEquals(listOf(a, b).sorted(), call.participants())
        val out = relay.send(alice.device) { alice.device.sendCallKey(relay.now, listOf(b), call) }
        assertTrue(out.coverage.isEmpty())
        val got = relay.deliver(bob.device).single() as Received.CallKey
        assertEquals(a, got.sender)
        assertArrayEquals(call.id(), got.message.callId())
        assertEquals(CallKind.ONE_TO_ONE, got.message.kind())
        val bobs = Call.fromKeyMessage(b, got.sender, got.message)
        for (who in listOf(a, b)) {
            assertArrayEquals(call.srtpKeys(who).masterKey(), bobs.srtpKeys(who).masterKey())
            assertArrayEquals(call.srtpKeys(who).masterSalt(), bobs.srtpKeys(who).masterSalt())
        }
        assertEquals(32, call.srtpKeys(a).masterKey().size)
        assertEquals(12, call.srtpKeys(a).masterSalt().size)
        assertFalse(call.srtpKeys(a).masterKey().contentEquals(call.srtpKeys(b).masterKey()))
        assertEquals("sync.not_in_call", code { call.srtpKeys(c) })

        assertEquals(1u, call.join(c).epoch())
        relay.send(alice.device) { alice.device.sendCallKey(relay.now, listOf(b, c), call) }
        val toBob = relay.deliver(bob.device).single() as Received.CallKey
        bobs.apply(toBob.sender, toBob.message)
        val toCarol = relay.deliver(carol.device).single() as Received.CallKey
        // Carol's app kept this call at epoch 2 (restored from an older backup): epoch 1 is a
        // replay; kept under another manager, the message is not the kept call's.
        assertEquals("sync.stale_call_key", code { Call.fromKeyMessage(c, toCarol.sender, toCarol.message, null, KeptCall(a, 2u)) })
        assertEquals("sync.not_call_manager", code { Call.fromKeyMessage(c, toCarol.sender, toCarol.message, null, KeptCall(b, 1u)) })
        val carols = Call.fromKeyMessage(c, toCarol.sender, toCarol.message, null, KeptCall(a, 1u))
        assertArrayEquals(call.srtpKeys(c).masterKey(), bobs.srtpKeys(c).masterKey())
        assertArrayEquals(call.srtpKeys(c).masterKey(), carols.srtpKeys(c).masterKey())
        assertEquals("sync.stale_call_key", code { bobs.apply(toBob.sender, toBob.message) })
        assertEquals("sync.not_call_manager", code { bobs.apply(c, toBob.message) })

        assertEquals(2u, call.remove(c).epoch())
        relay.send(alice.device) { alice.device.sendCallKey(relay.now, listOf(b), call) }
        val removal = relay.deliver(bob.device).single() as Received.CallKey
        bobs.apply(removal.sender, removal.message)
        assertEquals("sync.not_in_call", code { carols.apply(removal.sender, removal.message) })

        val snapshot = call.toBytes()
        assertFalse(restoreCall(snapshot, call.epoch()).stale)
        call.join(c)
        val stale = restoreCall(snapshot, call.epoch())
        assertTrue(stale.stale)
        assertEquals(call.epoch() + 1u, stale.call.epoch())
        assertEquals(listOf(a), stale.call.participants())
    }

    @Test
    fun missedCallKeyIsAnsweredWithTheCurrentEpoch() {
        val (alice, bob, carol, dave) = talking(4)
        val a = alice.device.address()
        val b = bob.device.address()
        val c = carol.device.address()
        val caps = CallConfig(maxGroupParticipants = 3u)
        val call = Call.start(CallKind.GROUP, a, listOf(b), caps)
        relay.send(alice.device) { alice.device.sendCallKey(relay.now, listOf(b), call) }
        val first = relay.deliver(bob.device).single() as Received.CallKey
        val bobs = Call.fromKeyMessage(b, first.sender, first.message, caps)
        call.join(c)
        assertEquals("sync.call_full", code { call.join(dave.device.address()) })

        val out = relay.send(alice.device) { alice.device.sendCallKey(relay.now, listOf(b, c), call) }
        val q = relay.queue(b)
        val damaged = q.removeAt(q.size - 1)
        damaged[damaged.size - 1] = (damaged[damaged.size - 1].toInt() xor 1).toByte()
        assertEquals("ratchet.authentication_failed", code { bob.device.receive(relay.now, damaged) })
        val request = bob.device.requestRetry(relay.now, damaged, 2u.toUByte())
        relay.queue(request.to).add(request.bytes)
        val asked = relay.deliver(alice.device).single() as Received.RetryRequest
        assertEquals(out.sendId, asked.request.sendId())
        assertEquals(2.toUByte(), asked.request.reason())
        call.remove(c) // meanwhile: the answer carries the call as it is now, two epochs ahead
        assertEquals("fanout.body_mismatch", code { alice.device.answerRetry(relay.now, asked.request, byteArrayOf(1)) })
        relay.send(alice.device) { alice.device.answerCallKeyRetry(relay.now, asked.request, call) }
        val again = relay.deliver(bob.device).single() as Received.CallKey
        assertEquals(2u, again.message.epoch())
        assertEquals("sync.call_key_ahead", code { bobs.apply(again.sender, again.message) })
        bobs.catchUp(again.sender, again.message)
        assertEquals(2u, bobs.epoch())
        assertArrayEquals(call.srtpKeys(a).masterKey(), bobs.srtpKeys(a).masterKey())
    }

    @Test
    fun recordsMadeWithNoArgumentsAreTheLibrarysDefaults() {
        assertEquals(defaultDeviceConfig(), DeviceConfig())
        assertEquals(defaultPrimaryPolicy(), PrimaryPolicy())
        assertEquals(defaultCallConfig(), CallConfig())
    }

    @Test
    fun nonDefaultConfigAndPolicyChangeWhatHappens() {
        val config = DeviceConfig(
            prekeys = PreKeyConfig(maxOneTimePrekeys = 5u, maxOneTimeKemPrekeys = 3u),
            retryWindowMs = 1000uL,
        )
        val alice = createAccount(NOW, config, PrimaryPolicy(account = AccountPolicy(maxCompanions = 1u)))
        relay.add(alice.device)
        relay.publish(alice.primary)
        val other = account(relay)
        assertEquals(5uL, alice.device.oneTimePrekeysRemaining())
        assertEquals(3uL, alice.device.oneTimeKemPrekeysRemaining())
        assertEquals(20uL, other.device.oneTimePrekeysRemaining())
        assertEquals(PrimaryPolicy(account = AccountPolicy(maxCompanions = 1u)), alice.primary.policy())
        assertTrue(link(relay, alice).let { alice.primary.isConfirmed(it.deviceId) })
        val linking = LinkingCompanion(alice.primary.invite(relay.now))
        assertEquals("device.too_many_companions", code { alice.primary.approve(relay.now, linking.request()) })

        val companion = LinkingCompanion(other.primary.invite(relay.now))
        val linked = companion.complete(
            relay.now,
            other.primary.approve(relay.now, companion.request()),
            DeviceConfig(prekeys = PreKeyConfig(maxOneTimePrekeys = 2u)),
        )
        assertEquals(2uL, linked.device.oneTimePrekeysRemaining())

        relay.introduce(alice.device, other.device)
        relay.send(alice.device) { alice.device.send(relay.now, other.primary.accountKey(), "m".bytes()) }
        val q = relay.queue(other.device.address())
        val damaged = q.removeAt(q.size - 1)
        damaged[damaged.size - 1] = (damaged[damaged.size - 1].toInt() xor 1).toByte()
        val request = other.device.requestRetry(relay.now, damaged, 2u.toUByte())
        relay.queue(request.to).add(request.bytes)
        relay.now += 5000uL // past Alice's retry window of one second
        assertEquals("fanout.unknown_message", code { relay.deliver(alice.device) })
    }

    @Test
    fun bundleWithOneTimePrekeysConsumesOne() {
        val (alice, bob) = talking(2)
        val pool = relay.upload(bob.device, bob.prekeyUpload)
        assertEquals(PoolCounts(20uL, 20uL), pool.remaining())
        relay.send(alice.device) { alice.device.send(relay.now, bob.primary.accountKey(), "hi".bytes()) }
        assertEquals(PoolCounts(19uL, 19uL), pool.remaining())
        assertEquals(listOf("direct" to "hi"), texts(relay.deliver(bob.device)))
        assertEquals(19uL, bob.device.oneTimePrekeysRemaining())
        assertEquals(19uL, bob.device.oneTimeKemPrekeysRemaining())
        assertEquals(0u, bob.device.lastResortUses())

        val upload = bob.device.generateOneTimePrekeys(relay.now, 5u)
        assertEquals(24uL, bob.device.oneTimePrekeysRemaining())
        pool.add(upload)
        assertEquals(PoolCounts(24uL, 24uL), pool.remaining())
        assertEquals("server.duplicate_prekey_id", code { pool.add(upload) })
        assertEquals(2, pool.accepted().size)
        val rebuilt = PublishedPreKeys.fromParts(
            relay.now, bob.device.address(), pool.base(), pool.pooled(), pool.accepted(), relay.served,
        )
        assertEquals("server.duplicate_prekey_id", code { rebuilt.add(upload) })
        assertEquals(pool.remaining(), rebuilt.remaining())
        assertEquals("server.not_a_base_bundle", code {
            PublishedPreKeys(relay.now, bob.device.address(), pool.takeBundle(), relay.served)
        })
        assertEquals("server.identity_mismatch", code {
            PublishedPreKeys(relay.now, bob.device.address(), alice.device.prekeyBundle(), relay.served)
        })
    }

    @Test
    fun withoutOneTimeKemPrekeysTheLastResortOneIsUsed() {
        val (alice, bob) = talking(2)
        relay.send(alice.device) { alice.device.send(relay.now, bob.primary.accountKey(), "hi".bytes()) }
        relay.deliver(bob.device)
        assertEquals(1u, bob.device.lastResortUses())
        assertEquals(20uL, bob.device.oneTimeKemPrekeysRemaining())
        // The signed prekey's budget is counted too; a rotation starts it afresh, dated then.
        assertEquals(1u, bob.device.signedPrekeySessions())
        bob.device.rotateSignedPrekey(relay.now + 1uL)
        assertEquals(0u, bob.device.signedPrekeySessions())
        assertEquals(relay.now + 1uL, bob.device.signedPrekeyCreatedAt())
    }

    @Test
    fun groupsAccountsAndSessions() {
        val (alice, bob, carol) = talking(3)
        val group = ByteArray(32) { 5 }
        val members = listOf(alice, bob, carol).map { it.primary.accountKey() }
        listOf(alice, bob, carol).forEach { it.device.setGroupMembers(group, members) }
        assertArrayEquals(group, alice.device.groups().single())
        assertEquals(members.drop(1).map { it.hex() }.toSet(), alice.device.groupMembers(group)!!.map { it.hex() }.toSet())
        assertNull(alice.device.groupMembers(ByteArray(32)))
        val out = relay.send(alice.device) { alice.device.sendGroup(relay.now, group, "hello".bytes()) }
        val msg = relay.deliver(bob.device).filterIsInstance<Received.Group>().single()
        assertArrayEquals(out.messageId, msg.id)
        assertNull(msg.resent)

        // Restored from a backup, Bob's groups wait for his app to set their members again.
        val restored = restoreDeviceFromBackup(bob.device.toBytes(), relay.now)
        assertArrayEquals(group, restored.unconfirmedGroups().single())
        assertTrue(bob.device.unconfirmedGroups().isEmpty())
        assertEquals("fanout.group_unconfirmed", code { restored.sendGroup(relay.now, group, "x".bytes()) })
        restored.setGroupMembers(group, members)
        assertTrue(restored.unconfirmedGroups().isEmpty())

        assertEquals(members.map { it.hex() }.toSet(), alice.device.accounts().map { it.hex() }.toSet())
        assertTrue(alice.device.hasSession(bob.device.address()))
        assertTrue(alice.device.classicalSessions().isEmpty())

        // Alice withholds her key from Carol's device, saying why: the group envelope still
        // reaches it, and Carol's device is told why it cannot read it.
        val withholding = listOf(WithheldDevice(carol.device.address(), 1u.toUByte()))
        relay.send(alice.device) { alice.device.sendGroupWithholding(relay.now, group, "not for carol".toByteArray(), withholding) }
        // The last two envelopes queued for Carol's device: the notice, then the group envelope.
        val (notice, message) = relay.queue(carol.device.address()).takeLast(2)
        relay.queue(carol.device.address()).clear()
        val withheld = carol.device.receive(relay.now, notice) as Received.Withheld
        assertEquals(1.toUByte(), withheld.reason)
        assertArrayEquals(group, withheld.group)
        assertTrue(withheld.toString().contains("key_id: ${withheld.keyId}"), withheld.toString())
        assertEquals("fanout.withheld", code { carol.device.receive(relay.now, message) })
        val itself = listOf(WithheldDevice(alice.device.address(), null))
        assertEquals("fanout.not_a_group_device", code { alice.device.sendGroupWithholding(relay.now, group, "x".toByteArray(), itself) })

        alice.device.forgetAccount(bob.primary.accountKey())
        assertFalse(alice.device.hasSession(bob.device.address()))
        assertTrue(alice.device.send(relay.now, bob.primary.accountKey(), "x".bytes()) is Outgoing.NeedDeviceLists)
        alice.device.forgetGroup(group)
        assertTrue(alice.device.groups().isEmpty())
        assertEquals("fanout.unknown_group", code { alice.device.sendGroup(relay.now, group, "x".bytes()) })
    }

    @Test
    fun relayRefusesAStaleBatchAndTheSenderRepairsIt() {
        val (alice, bob) = talking(2)
        relay.send(alice.device) { alice.device.send(relay.now, bob.primary.accountKey(), "one".bytes()) }
        relay.deliver(bob.device)
        val tablet = LinkingCompanion(bob.primary.invite(relay.now))
        val linked = tablet.complete(relay.now, bob.primary.approve(relay.now, tablet.request()))
        bob.primary.confirm(linked.confirmation)
        relay.add(linked.device)
        relay.served.publish(bob.primary.accountKey(), bob.primary.deviceList())

        val stale = (alice.device.send(relay.now, bob.primary.accountKey(), "two".bytes()) as Outgoing.Ready).outbox
        assertEquals("server.stale_list", code { relay.check(alice.device, stale) })
        val partial = stale.coverage.filterNot { it.account.contentEquals(bob.primary.accountKey()) }
        assertEquals("server.uncovered", code {
            relay.served.checkCoverage(relay.now, alice.device.address(), stale.recipients, partial)
        })
        alice.device.notDelivered(stale.sendId!!, stale.recipients)
        alice.device.updateDeviceList(relay.now, bob.primary.accountKey(), relay.served.list(bob.primary.accountKey())!!)
        val out = relay.send(alice.device) { alice.device.send(relay.now, bob.primary.accountKey(), "two".bytes()) }
        assertTrue(linked.device.address() in out.recipients)
        assertEquals("fanout.unknown_message", code { alice.device.notDelivered(1_000_000_000uL, emptyList()) })
    }

    @Test
    fun resentMessageNamesTheEnvelopeItReplaces() {
        val (alice, bob) = talking(2)
        val out = relay.send(alice.device) { alice.device.send(relay.now, bob.primary.accountKey(), "again".bytes()) }
        val q = relay.queue(bob.device.address())
        val damaged = q.removeAt(q.size - 1)
        damaged[damaged.size - 1] = (damaged[damaged.size - 1].toInt() xor 1).toByte()
        val request = bob.device.requestRetry(relay.now, damaged, 2u.toUByte())
        relay.queue(request.to).add(request.bytes)
        val asked = relay.deliver(alice.device).single() as Received.RetryRequest
        relay.send(alice.device) { alice.device.answerRetry(relay.now, asked.request, "again".bytes()) }
        val resent = relay.deliver(bob.device).single() as Received.Direct
        assertArrayEquals(envelopeId(damaged), resent.resent)
        assertArrayEquals(out.messageId, resent.id)
    }

    @Test
    fun sealedStateOpensOnlyInItsSlotAndIsNotRolledBack() {
        val alice = account(relay)
        val key = ByteArray(32) { it.toByte() }
        val epoch = alice.device.stateEpoch()
        val sealed = sealState(key, "device/alice".bytes(), epoch, alice.device.toBytes())
        val opened = openState(key, sealed, "device/alice".bytes(), epoch)
        assertEquals(epoch, opened.sequence)
        assertEquals(alice.device.address(), restoreDevice(opened.state, epoch, relay.now).device.address())
        assertEquals("crypto.authentication_failed", code { openState(key, sealed, "device/bob".bytes(), epoch) })
        assertEquals("state.rollback", code { openState(key, sealed, "device/alice".bytes(), epoch + 1uL) })
        assertEquals("binding.bad_length", code { sealState(ByteArray(31), "s".bytes(), 0uL, byteArrayOf(1)) })
    }

    @Test
    fun primaryRebuiltFromItsChangeRecords() {
        val alice = account(relay)
        val store = linkedMapOf<String, Pair<ByteArray, ByteArray>>()
        fun persist(): ULong {
            val changes = alice.primary.takeChanges()
            // Whose records: a primary's go to its own store, never a device's.
            assertEquals(StateRole.PRIMARY, changes.role)
            if (changes.replacesAll) store.clear()
            for (rec in changes.records) {
                val v = rec.value
                if (v == null) store.remove(rec.key.hex()) else store[rec.key.hex()] = rec.key to v
            }
            return changes.epoch
        }
        assertTrue(alice.primary.hasChanges()) // the new account's records
        persist()
        assertFalse(alice.primary.hasChanges())
        val snapshot = store.values.map { (k, v) -> StoredRecord(k, v) }
        val laptop = link(relay, alice)
        assertTrue(alice.primary.hasChanges())
        val epoch = persist()
        assertFalse(alice.primary.hasChanges())
        assertTrue(alice.primary.takeChanges().records.isEmpty())
        val rebuilt = restorePrimaryFromRecords(store.values.map { (k, v) -> StoredRecord(k, v) }, epoch)
        assertFalse(rebuilt.stale)
        assertArrayEquals(alice.primary.deviceList(), rebuilt.primary.deviceList())
        assertTrue(rebuilt.primary.isConfirmed(laptop.deviceId))
        val old = restorePrimaryFromRecords(snapshot, epoch)
        assertTrue(old.stale)
        assertTrue(old.primary.needsResync())
        assertTrue(code { restorePrimaryFromRecords(emptyList(), 0uL) }.startsWith("decode."))
    }

    @Test
    fun addressesCompareAndHashByValue() {
        val alice = account(relay)
        val a1 = alice.device.address()
        val a2 = alice.device.address()
        assertEquals(a1, a2)
        assertEquals(a1.hashCode(), a2.hashCode())
        assertEquals(1, mapOf(a1 to 1)[a2])
        assertEquals(1, setOf(a1, a2, Address(a1.account.copyOf(), 1u)).size)
        val other = Address(a1.account.copyOf(), 2u)
        assertNotEquals(a1, other)
        assertTrue(a1 < other)
        assertTrue(a1.account.hex() in a1.toString())
    }
}
