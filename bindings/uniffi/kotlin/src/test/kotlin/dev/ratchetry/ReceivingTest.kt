package dev.ratchetry

import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import uniffi.ratchetry_uniffi.Inbound
import uniffi.ratchetry_uniffi.RatchetryException
import uniffi.ratchetry_uniffi.ReceiveStep
import uniffi.ratchetry_uniffi.Received
import uniffi.ratchetry_uniffi.Receiving
import uniffi.ratchetry_uniffi.askAgain
import uniffi.ratchetry_uniffi.envelopeId
import uniffi.ratchetry_uniffi.envelopeIds

/**
 * A receive stepped by the app, as a coroutine-based app would run it: each step decides or
 * names the device list to fetch; the app applies what its relay serves and steps again.
 */
class ReceivingTest {
    private val relay = Relay()

    private fun done(step: ReceiveStep): Inbound = (step as ReceiveStep.Done).inbound

    @Test
    fun aSteppedReceiveNamesTheListToFetchAndReadsOnceItIsApplied() {
        val alice = account(relay)
        val bob = account(relay)
        val aliceKey = alice.primary.accountKey()
        relay.send(alice.device) { alice.device.send(relay.now, bob.primary.accountKey(), "hello".encodeToByteArray()) }
        val env = relay.queue(bob.device.address()).removeAt(0)

        // Bob does not follow Alice: the step names her account. Nothing applied: decided.
        var receiving = Receiving()
        val need = receiving.step(bob.device, relay.now, env, false) as ReceiveStep.NeedDeviceList
        assertArrayEquals(aliceKey, need.account)
        val dropped = done(receiving.step(bob.device, relay.now, env, false)) as Inbound.Dropped
        assertEquals("fanout.unknown_account", dropped.code)
        assertArrayEquals(aliceKey, dropped.account)

        // Served this time: applied, the next step reads it.
        receiving = Receiving()
        val again = receiving.step(bob.device, relay.now, env, false) as ReceiveStep.NeedDeviceList
        bob.device.updateDeviceList(relay.now, again.account, relay.lists[again.account.hex()]!!.second)
        val read = done(receiving.step(bob.device, relay.now, env, false)) as Inbound.Read
        assertArrayEquals("hello".encodeToByteArray(), (read.message as Received.Direct).body)

        // A new receive of it is a duplicate at once; a tampered one is asked for again unless
        // the app stores its message.
        val duplicate = done(Receiving().step(bob.device, relay.now, env, false)) as Inbound.Duplicate
        assertArrayEquals(envelopeId(env), duplicate.envelopeId)
        relay.send(alice.device) { alice.device.send(relay.now, bob.primary.accountKey(), "two".encodeToByteArray()) }
        val two = relay.queue(bob.device.address()).removeAt(0)
        val broken = two.copyOf().also { it[it.size - 1] = (it[it.size - 1].toInt() xor 1).toByte() }
        val stored = done(Receiving().step(bob.device, relay.now, broken, true)) as Inbound.Duplicate
        assertArrayEquals(envelopeId(broken), stored.envelopeId)
        val ask = done(Receiving().step(bob.device, relay.now, broken, false)) as Inbound.AskAgain
        assertTrue(ask.to.same(alice.device.address()) && ask.request.isNotEmpty())
        val intact = done(Receiving().step(bob.device, relay.now, two, false)) as Inbound.Read
        assertArrayEquals("two".encodeToByteArray(), (intact.message as Received.Direct).body)
    }

    /**
     * Bob waits on as many answers from Alice's account as he keeps: her next unreadable
     * envelope is `AskLater` (nothing asked) until the first ask stops waiting.
     */
    @Test
    fun asksBeyondAnAccountsShareAreDeferredUntilAPlaceFrees() {
        val alice = account(relay)
        val bob = account(relay)
        relay.introduce(alice.device, bob.device)
        val share = 64 // ratchetry::fanout::MAX_WAITING_RETRIES_PER_ACCOUNT
        repeat(share + 1) {
            relay.send(alice.device) { alice.device.send(relay.now, bob.primary.accountKey(), "x".encodeToByteArray()) }
        }
        val broken = List(share + 1) {
            relay.queue(bob.device.address()).removeAt(0).also { e -> e[e.size - 1] = (e[e.size - 1].toInt() xor 1).toByte() }
        }
        for (e in broken.take(share)) {
            assertTrue(done(Receiving().step(bob.device, relay.now, e, false)) is Inbound.AskAgain)
        }
        val at = relay.now + 24uL * 60uL * 60uL * 1000uL // the first ask's time + PENDING_RETRY_HOLD_MS
        val later = done(Receiving().step(bob.device, relay.now, broken[share], false)) as Inbound.AskLater
        assertEquals(at, later.at)
        val asked = askAgain(bob.device, relay.now, broken[share], 2u.toUByte(), false) as Inbound.AskLater
        assertEquals(at, asked.at)
        val ask = done(Receiving().step(bob.device, at, broken[share], false)) as Inbound.AskAgain
        assertTrue(ask.to.same(alice.device.address()))
    }

    /** A thrown error names what the app acts on: the account whose list to fetch, the envelope id. */
    @Test
    fun errorsNameWhatTheAppActsOn() {
        val alice = account(relay)
        val bob = account(relay)
        val aliceKey = alice.primary.accountKey()
        relay.send(alice.device) { alice.device.send(relay.now, bob.primary.accountKey(), "hello".encodeToByteArray()) }
        val env = relay.queue(bob.device.address()).removeAt(0)

        val unknown = assertThrows<RatchetryException.Failed> { bob.device.receive(relay.now, env) }
        assertEquals("fanout.unknown_account", unknown.code)
        assertArrayEquals(aliceKey, unknown.account)
        assertNull(unknown.device)
        assertNull(unknown.envelopeId)

        bob.device.updateDeviceList(relay.now, aliceKey, relay.lists[aliceKey.hex()]!!.second)
        bob.device.receive(relay.now, env)
        val duplicate = assertThrows<RatchetryException.Failed> { bob.device.receive(relay.now, env) }
        assertEquals("fanout.duplicate", duplicate.code)
        assertArrayEquals(envelopeId(env), duplicate.envelopeId)
        assertNull(duplicate.account)
        assertNull(duplicate.number)
    }

    /**
     * A group message whose sender key the relay withholds is `Hold`; `askAgain` (the guide's
     * ask once the key never comes) asks unless the store holds its message under any of
     * `envelopeIds(envelope)`: then it is a replay, `Duplicate`, and nothing changes.
     */
    @Test
    fun aHeldGroupMessageIsAskedForUnlessItsMessageIsStored() {
        val alice = account(relay)
        val bob = account(relay)
        relay.introduce(alice.device, bob.device)
        val group = ByteArray(32) { 9 }
        val members = listOf(alice.primary.accountKey(), bob.primary.accountKey())
        listOf(alice, bob).forEach { it.device.setGroupMembers(group, members) }
        relay.send(alice.device) { alice.device.sendGroup(relay.now, group, "held".encodeToByteArray()) }
        val held = relay.queue(bob.device.address()).last()
        val hold = done(Receiving().step(bob.device, relay.now, held, false)) as Inbound.Hold
        assertTrue(hold.from.same(alice.device.address()))
        val ids = envelopeIds(held)
        assertEquals(2, ids.size)
        assertTrue(ids.any { it.contentEquals(envelopeId(held)) })
        val before = bob.device.toBytes()
        val replay = askAgain(bob.device, relay.now, held, 3u.toUByte(), true) as Inbound.Duplicate
        assertTrue(ids.any { it.contentEquals(replay.envelopeId) })
        assertArrayEquals(before, bob.device.toBytes())
        val ask = askAgain(bob.device, relay.now, held, 3u.toUByte(), false) as Inbound.AskAgain
        assertTrue(ask.to.same(alice.device.address()))
        assertFalse(ask.request.isEmpty())
    }
}
