package dev.ratchetry

import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Tag
import org.junit.jupiter.api.Test
import uniffi.ratchetry_uniffi.BundleFor
import uniffi.ratchetry_uniffi.Device
import uniffi.ratchetry_uniffi.Outbox
import uniffi.ratchetry_uniffi.Outgoing
import uniffi.ratchetry_uniffi.Received
import uniffi.ratchetry_uniffi.createAccount

/**
 * Times the operations of `examples/rust_timing.rs` and `tests/timing.py` through the JVM binding:
 * a 1:1 message (a send to an account with one device, then its receive) and a group message (3
 * accounts, key already distributed: a send, then one member's receive), with their 39-byte body;
 * and 1 KiB messages, their sends and their receives timed apart. Prints the figures; asserts
 * only that every message arrived. Excluded from the default run (tag `timing`):
 *
 *     mvn -f bindings/uniffi/kotlin/pom.xml test -Dgroups=timing -DexcludedGroups= -Dtiming.n=1000
 */
@Tag("timing")
class TimingTest {
    private fun ready(out: Outgoing): Outbox = (out as Outgoing.Ready).outbox

    private fun body(r: Received): ByteArray = when (r) {
        is Received.Direct -> r.body
        is Received.Group -> r.body
        else -> throw AssertionError("not a message: $r")
    }

    /** Microseconds per iteration of `op`, over `n` iterations. */
    private fun time(n: Int, op: () -> Unit): Double {
        val t = System.nanoTime()
        repeat(n) { op() }
        return (System.nanoTime() - t) / 1e3 / n
    }

    @Test
    fun timing() {
        val n = System.getProperty("timing.n")?.toInt() ?: 1000
        val repeats = 5
        val accounts = List(3) { createAccount(NOW) }
        val keys = accounts.map { it.primary.accountKey() }
        for (a in accounts) for (b in accounts) {
            a.device.updateDeviceList(NOW, b.primary.accountKey(), b.primary.deviceList())
        }
        for (a in accounts) {
            a.device.startSessions(NOW, accounts.filter { it !== a }.map { BundleFor(it.device.address(), it.device.prekeyBundle()) })
        }
        val (a, b, c) = accounts.map { it.device }
        val small = "a message of about forty bytes, typical".encodeToByteArray()
        val kib = ByteArray(1024) { it.toByte() }
        fun direct(body: ByteArray) {
            assertArrayEquals(body, body(b.receive(NOW, ready(a.send(NOW, keys[1], body)).envelopes[0].bytes)))
        }
        repeat(5) { // both ways, as the other tools do: the sessions are established
            direct(small)
            a.receive(NOW, ready(b.send(NOW, keys[0], small)).envelopes[0].bytes)
        }
        // Each call marshals JNA Structures (RustCallStatus, RustBuffer) and the JIT needs
        // thousands of calls before that path is compiled, so everything warms up first, and
        // each figure is the best of rounds that alternate the operations.
        repeat(5000) { direct(small) }
        repeat(2000) { direct(kib) }
        var directUs = Double.MAX_VALUE
        var direct1kUs = Double.MAX_VALUE
        var encrypt1kUs = Double.MAX_VALUE
        var decrypt1kUs = Double.MAX_VALUE
        repeat(repeats) {
            directUs = minOf(directUs, time(n) { direct(small) })
            direct1kUs = minOf(direct1kUs, time(n) { direct(kib) })
            // 1 KiB, sends and receives apart: n sends in a row, then their n receives in order.
            val envelopes = ArrayList<ByteArray>(n)
            encrypt1kUs = minOf(encrypt1kUs, time(n) { envelopes += ready(a.send(NOW, keys[1], kib)).envelopes[0].bytes })
            val bodies = ArrayList<ByteArray>(n)
            decrypt1kUs = minOf(decrypt1kUs, time(n) { bodies += body(b.receive(NOW, envelopes[bodies.size])) })
            bodies.forEach { assertArrayEquals(kib, it) }
        }

        val group = ByteArray(32) { 9 }
        for (d in listOf(a, b, c)) d.setGroupMembers(group, keys)
        val first = ready(a.sendGroup(NOW, group, small))
        for (e in first.envelopes) (if (e.to.same(b.address())) b else c).receive(NOW, e.bytes)
        assertArrayEquals(small, body(b.receive(NOW, first.group!!.bytes)))
        fun groupMessage() {
            assertArrayEquals(small, body(b.receive(NOW, ready(a.sendGroup(NOW, group, small)).group!!.bytes)))
        }
        repeat(3000) { groupMessage() }
        val groupUs = (1..repeats).minOf { time(n) { groupMessage() } }
        assertEquals(0, ready(a.sendGroup(NOW, group, small)).envelopes.size)

        println(
            "jvm: {\"n\":$n,\"direct_us\":%.1f,\"group_us\":%.1f,\"direct_1k_us\":%.1f,\"encrypt_1k_us\":%.1f,\"decrypt_1k_us\":%.1f}"
                .format(directUs, groupUs, direct1kUs, encrypt1kUs, decrypt1kUs),
        )
    }
}
