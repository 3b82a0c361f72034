package dev.ratchetry

import org.junit.jupiter.api.Assertions.assertArrayEquals
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
import uniffi.ratchetry_uniffi.envelopeId

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
        val stored = done(Receiving().step(bob.device, relay.now, broken, true)) as Inbound.Dropped
        assertEquals("ratchet.authentication_failed", stored.code)
        val ask = done(Receiving().step(bob.device, relay.now, broken, false)) as Inbound.AskAgain
        assertTrue(ask.to.same(alice.device.address()) && ask.request.isNotEmpty())
        val intact = done(Receiving().step(bob.device, relay.now, two, false)) as Inbound.Read
        assertArrayEquals("two".encodeToByteArray(), (intact.message as Received.Direct).body)
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
}
