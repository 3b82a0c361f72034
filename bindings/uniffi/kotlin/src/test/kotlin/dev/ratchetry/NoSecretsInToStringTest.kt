package dev.ratchetry

import java.util.Base64
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import uniffi.ratchetry_uniffi.Call
import uniffi.ratchetry_uniffi.CallKind
import uniffi.ratchetry_uniffi.Changes
import uniffi.ratchetry_uniffi.HistoryOpener
import uniffi.ratchetry_uniffi.HistorySealer
import uniffi.ratchetry_uniffi.LinkingCompanion
import uniffi.ratchetry_uniffi.RatchetryException
import uniffi.ratchetry_uniffi.Outbox
import uniffi.ratchetry_uniffi.Outgoing
import uniffi.ratchetry_uniffi.Received
import uniffi.ratchetry_uniffi.openState
import uniffi.ratchetry_uniffi.restoreCall
import uniffi.ratchetry_uniffi.sealState
import uniffi.ratchetry_uniffi.restoreDevice
import uniffi.ratchetry_uniffi.restorePrimary

/**
 * No object the binding returns shows secret bytes in `toString()` (what a log line or a crash
 * report prints): not the state of a device or a primary, a change record's value, a history
 * offer, or a message body; in hex, base64 or as a list of numbers. Public bytes (envelopes,
 * bundles, lists, keys, linking messages) may show.
 */
class NoSecretsInToStringTest {
    private val relay = Relay()
    private val seen = mutableListOf<Any>()
    private val secrets = mutableListOf<ByteArray>()
    private val public = mutableListOf<ByteArray>()

    private fun <T : Any> keep(value: T): T = value.also { seen.add(it) }

    private fun keepAll(values: List<Any>) = seen.addAll(values)

    @Test
    fun toStringShowsNoSecretBytes() {
        val alice = keep(account(relay))
        val bob = keep(account(relay))
        keep(alice.device)
        keep(alice.primary)
        relay.introduce(alice.device, bob.device)
        val invitation = alice.primary.invite(relay.now)
        val linking = keep(LinkingCompanion(invitation))
        val request = linking.request()
        val approval = alice.primary.approve(relay.now, request)
        val linked = keep(linking.complete(relay.now, approval))
        alice.primary.confirm(linked.confirmation)
        public += listOf(invitation, request, approval, linked.confirmation)
        relay.add(linked.device)
        keepAll(relay.publish(alice.primary))
        relay.introduce(linked.device)

        val body = "a secret body to bob, never printed".encodeToByteArray()
        secrets += body
        keep(alice.device.send(relay.now, bob.primary.accountKey(), body)) // NeedBundles
        val out = keep(relay.send(alice.device) { keep(alice.device.send(relay.now, bob.primary.accountKey(), body)) })
        keepAll(out.envelopes)
        keepAll(relay.deliver(bob.device))
        keepAll(relay.deliver(linked.device))

        val group = ByteArray(32) { 3 }
        val members = listOf(alice.primary.accountKey(), bob.primary.accountKey())
        listOf(alice.device, bob.device, linked.device).forEach { it.setGroupMembers(group, members) }
        val groupBody = "a secret group body, never printed".encodeToByteArray()
        secrets += groupBody
        keep(relay.send(alice.device) { keep(alice.device.sendGroup(relay.now, group, groupBody)) }).group?.let { keep(it) }
        keepAll(relay.deliver(bob.device))

        val sealer = keep(HistorySealer())
        val history = ByteArray(100_000) { (it * 7).toByte() }
        secrets += history
        val chunks = sealer.push(history)
        val sealed = keep(sealer.finish())
        secrets += sealed.offer
        public.addAll(chunks + sealed.chunks) // sealed: they may travel through any server
        relay.send(alice.device) { alice.device.sendHistoryOffer(relay.now, 2u, sealed.offer) }
        val atLaptop = relay.deliver(linked.device) // the group message, then the offer
        keepAll(atLaptop)
        val offer = atLaptop.filterIsInstance<Received.HistoryOffer>().single()
        keep(HistoryOpener(offer.offer))

        val changes = keep(bob.device.takeChanges())
        keepAll(changes.records)
        changes.records.forEach { r -> r.value?.let { secrets += it } }
        public.addAll(changes.records.map { it.key })
        secrets += bob.device.toBytes()
        secrets += alice.device.toBytes()
        secrets += linked.device.toBytes()
        secrets += alice.primary.toBytes()
        keep(restoreDevice(bob.device.toBytes(), 0uL, relay.now))
        keep(restorePrimary(alice.primary.toBytes(), 0uL))
        keep(assertThrows<RatchetryException.Failed> { bob.device.receive(relay.now, out.envelopes[0].bytes) })

        val damaged = relay.send(alice.device) { alice.device.send(relay.now, bob.primary.accountKey(), body) }
            .envelopes.first { it.to.same(bob.device.address()) }.bytes.copyOf()
        relay.queue(bob.device.address()).clear()
        damaged[damaged.size - 1] = (damaged[damaged.size - 1].toInt() xor 1).toByte()
        val retry = keep(bob.device.requestRetry(relay.now, damaged, 2u.toUByte()))
        relay.queue(retry.to).add(retry.bytes)
        relay.wire += retry.bytes // it travels through the server too: public
        keepAll(relay.deliver(alice.device))
        // A call: its key message travels sealed; the call state, the key message's bytes
        // and the SRTP keys are secret.
        val a = alice.device.address()
        val b = bob.device.address()
        val call = keep(Call.start(CallKind.ONE_TO_ONE, a, listOf(b)))
        keep(relay.send(alice.device) { keep(alice.device.sendCallKey(relay.now, listOf(b), call)) })
        val callKey = relay.deliver(bob.device).filterIsInstance<Received.CallKey>().single()
        keep(callKey)
        keep(callKey.message)
        val bobsCall = keep(Call.fromKeyMessage(b, callKey.sender, callKey.message))
        for (who in listOf(a, b)) {
            val keys = keep(bobsCall.srtpKeys(who))
            secrets += keys.masterKey()
            secrets += keys.masterSalt()
        }
        secrets += call.toBytes()
        secrets += bobsCall.toBytes()
        secrets += callKey.message.toBytes()
        keep(call.join(linked.device.address()))
        keep(restoreCall(call.toBytes(), 0u))
        public += call.id()

        // Sealed state (the sealed bytes are safe to store anywhere) and the relay's helpers.
        val storageKey = ByteArray(32) { (it * 3).toByte() }
        secrets += storageKey
        val sealedState = sealState(storageKey, "slot".encodeToByteArray(), 1uL, alice.device.toBytes())
        public += sealedState
        keep(openState(storageKey, sealedState, "slot".encodeToByteArray(), 1uL))
        val db = java.nio.file.Files.createTempDirectory("ratchetry").resolve("state.db").toString()
        keep(uniffi.ratchetry_uniffi.SqliteStore.open(db, storageKey).also { it.persist(alice.device) })
        keep(relay.served)
        keep(relay.upload(bob.device, bob.prekeyUpload))

        public += relay.wire
        public += listOf(alice, bob).flatMap { listOf(it.primary.accountKey(), it.device.identityKey()) }
        public += linked.device.identityKey()
        // One-time prekey uploads are public keys (the device state holds them beside their
        // secret halves).
        public += listOf(alice.prekeyUpload, bob.prekeyUpload, linked.prekeyUpload)

        // What was looked at: every kind of object and record the scenario met.
        val kinds = seen.map { it::class.simpleName }.toSet()
        for (k in listOf("NewAccount", "Device", "Primary", "LinkingCompanion", "LinkedCompanion",
            "DeviceAdded", "Ready", "NeedBundles", "Outbox", "Envelope", "GroupEnvelope", "Direct",
            "OwnCopy", "Group", "SenderKey", "HistoryOffer", "RetryRequest", "SealedHistory",
            "HistorySealer", "HistoryOpener", "Changes", "StoredRecord", "RestoredDevice", "Failed",
            "Call", "CallKey", "CallKeyMessage", "SrtpKeys", "RestoredCall", "OpenedState", "ServedLists",
            "PublishedPreKeys", "SqliteStore")) {
            assertTrue(k in kinds, "no $k among $kinds")
        }
        assertTrue(changes.records.any { it.value != null })

        // Message ids and list digests are public metadata (receipts and the relay carry them),
        // and so are unit tags (random, said by the store beside the epoch); the device state
        // keeps copies, so their bytes are not a leak.
        for (obj in seen) {
            val outbox = (obj as? Outgoing.Ready)?.outbox ?: obj as? Outbox
            outbox?.messageId?.let { public += it }
            outbox?.coverage?.forEach { public += it.digest }
            when (obj) {
                is Received.Direct -> public += obj.id
                is Received.OwnCopy -> public += obj.id
                is Received.Group -> public += obj.id
                is Changes -> {
                    public += obj.tag
                    obj.baseTag?.let { public += it }
                }
                else -> {}
            }
        }
        val publicWindows = public.flatMap { windows(it, 1) }.toHashSet()
        val needles = secrets.flatMap { needles(it, publicWindows) }.toHashSet()
        val lists = secrets.flatMap { numberLists(it, publicWindows) }.toHashSet()
        assertTrue(needles.size > 1000 && lists.size > 200, "${needles.size} needles, ${lists.size} lists")
        for (obj in seen) {
            val text = obj.toString()
            assertFalse(needles.any { it in text }, "${obj::class.simpleName}.toString() shows secret bytes: $text")
            assertFalse(
                listWindows(text).any { it in lists },
                "${obj::class.simpleName}.toString() shows secret bytes as numbers: $text",
            )
        }
    }

    /**
     * Every run of 8 whole numbers inside one bracketed list of `text`, as `contentToString`
     * writes them. Compared whole, not as substrings: "5, …, 1" is inside "-35, …, 12" as a
     * substring, so a secret that shares 7 bytes with a public envelope (a KEM ciphertext held
     * in the state until the reply) matched by chance about one run in ten. And within one
     * list: a run across two fields ("sendId=0, …account=[-70, …") is no bytes of anything.
     */
    private fun listWindows(text: String): List<String> =
        Regex("""\[([-0-9, ]*)]""").findAll(text).flatMap { list ->
            val numbers = Regex("-?[0-9]+").findAll(list.groupValues[1]).map { it.value }.toList()
            (0..numbers.size - 8).map { numbers.subList(it, it + 8).joinToString(", ") }
        }.toList()

    /** The 8-byte windows of `secret` found in no public bytes, as `contentToString` lists. */
    private fun numberLists(secret: ByteArray, publicWindows: Set<String>): List<String> {
        val step = if (secret.size > 4096) 61 else 1
        return (0..secret.size - 8 step step)
            .map { secret.copyOfRange(it, it + 8) }
            .filter { it.hex() !in publicWindows }
            .map { it.contentToString().removeSuffix("]").removePrefix("[") }
    }

    /** The 8-byte windows of `bytes`, as hex, every `step` bytes. */
    private fun windows(bytes: ByteArray, step: Int) =
        (0..bytes.size - 8 step step).map { bytes.copyOfRange(it, it + 8).hex() }

    /**
     * The forms a secret's bytes could take in a string, for its 8-byte windows found in no
     * public bytes: hex (both cases) and base64
     * (standard and URL-safe) of the 9 bytes from there (whole base64 groups then appear
     * whatever the alignment). Large secrets are sampled.
     */
    private fun needles(secret: ByteArray, publicWindows: Set<String>): List<String> {
        val out = mutableListOf<String>()
        val step = if (secret.size > 4096) 61 else 1
        for (i in 0..secret.size - 9 step step) {
            val w = secret.copyOfRange(i, i + 9)
            val hex = w.copyOf(8).hex()
            if (hex in publicWindows || w.copyOfRange(1, 9).hex() in publicWindows) continue
            out += hex
            out += hex.uppercase()
            out += Base64.getEncoder().encodeToString(w)
            out += Base64.getUrlEncoder().encodeToString(w)
        }
        return out
    }
}
