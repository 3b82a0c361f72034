package dev.ratchetry

import uniffi.ratchetry_uniffi.Address
import uniffi.ratchetry_uniffi.BundleFor
import uniffi.ratchetry_uniffi.Device
import uniffi.ratchetry_uniffi.DeviceEvent
import uniffi.ratchetry_uniffi.Outbox
import uniffi.ratchetry_uniffi.Outgoing
import uniffi.ratchetry_uniffi.Primary
import uniffi.ratchetry_uniffi.PublishedPreKeys
import uniffi.ratchetry_uniffi.RatchetryException
import uniffi.ratchetry_uniffi.Received
import uniffi.ratchetry_uniffi.ServedLists

/** The scenario's clock: Unix milliseconds, as the app passes them. */
const val NOW: ULong = 1_790_000_000_000uL

fun ByteArray.hex(): String = joinToString("") { "%02x".format(it) }

/**
 * A map key for an [Address]. The generated data classes hold `ByteArray`s, whose `equals` is
 * identity, so addresses are compared through this (or [same]).
 */
data class Key(val account: String, val device: UInt)

fun Address.key() = Key(account.hex(), device)

/** Whether two addresses name the same device. */
fun Address.same(other: Address) = key() == other.key()

/**
 * The untrusted server, as in `tests/conftest.py`: queues envelopes per device, serves device
 * lists and prekey bundles. Nothing in it is trusted by the devices. It runs the library's
 * relay helpers as a JVM server would: lists verified when published ([ServedLists]), every
 * batch [send] ships checked for coverage, and bundles with one-time prekeys from a device's
 * [PublishedPreKeys] once its upload is pooled.
 */
class Relay {
    var now = NOW
    val queues = mutableMapOf<Key, MutableList<ByteArray>>()
    private val bundles = mutableMapOf<Key, ByteArray>()
    private val published = mutableMapOf<Key, PublishedPreKeys>()
    val served = ServedLists()
    /** Account (hex) to its account key and its latest signed device list. */
    val lists = linkedMapOf<String, Pair<ByteArray, ByteArray>>()
    val devices = mutableListOf<Device>()
    /** Every byte string the server carried or served: public by definition. */
    val wire = mutableListOf<ByteArray>()

    fun queue(address: Address): MutableList<ByteArray> = queues.getOrPut(address.key()) { mutableListOf() }

    /** Publishes a device's prekey bundle and lets it follow its own account's list. */
    fun add(device: Device): Device {
        bundles[device.address().key()] = device.prekeyBundle().also { wire += it }
        published.remove(device.address().key())
        devices.add(device)
        return device
    }

    /** Pools a device's one-time prekeys (its account's list must be published). */
    fun upload(device: Device, upload: ByteArray): PublishedPreKeys {
        wire += upload
        val k = device.address().key()
        val pool = published.getOrPut(k) { PublishedPreKeys(now, device.address(), bundles.getValue(k), served) }
        pool.add(upload)
        return pool
    }

    /** What a bundle fetch returns: one with one-time prekeys once they are pooled. */
    fun bundle(address: Address): ByteArray =
        published[address.key()]?.takeBundle()?.also { wire += it } ?: bundles.getValue(address.key())

    /** The relay's coverage check of a batch from `device` (throws if refused). */
    fun check(device: Device, outbox: Outbox) =
        served.checkCoverage(now, device.address(), outbox.recipients, outbox.coverage)

    /** The app restarted `old` as `new`: the relay now pushes lists to `new`. */
    fun replace(old: Device, new: Device) {
        devices[devices.indexOf(old)] = new
    }

    /** Publishes an account's list and pushes it to every device that follows it. */
    fun publish(primary: Primary): List<DeviceEvent> {
        val account = primary.accountKey()
        val list = primary.deviceList().also { wire += it }
        served.publish(account, list)
        lists[account.hex()] = account to list
        val events = mutableListOf<DeviceEvent>()
        for (d in devices) {
            if (d.address().account.contentEquals(account) || d.deviceListVersion(account) != null) {
                events += d.updateDeviceList(now, account, list)
            }
        }
        return events
    }

    /** Every device learns every listed account (a contact sync). */
    fun introduce(vararg devices: Device) {
        for (d in devices) {
            for ((account, list) in lists.values) d.updateDeviceList(now, account, list)
        }
    }

    fun ship(outbox: Outbox): Outbox {
        for (env in outbox.envelopes) {
            wire += env.bytes
            queue(env.to).add(env.bytes)
        }
        outbox.group?.let { g ->
            wire += g.bytes
            g.recipients.forEach { queue(it).add(g.bytes) }
        }
        return outbox
    }

    /** Runs a send, fetching bundles and lists as asked; checks its coverage, ships it. */
    fun send(device: Device, op: () -> Outgoing): Outbox {
        repeat(4) {
            when (val out = op()) {
                is Outgoing.Ready -> {
                    check(device, out.outbox)
                    return ship(out.outbox)
                }
                is Outgoing.NeedBundles -> device.startSessions(
                    now,
                    out.devices.map { BundleFor(it, bundle(it)) },
                )
                is Outgoing.NeedDeviceLists -> out.accounts.forEach {
                    device.updateDeviceList(now, it, lists.getValue(it.hex()).second)
                }
            }
        }
        throw AssertionError("send did not become ready")
    }

    /**
     * Delivers the device's queue; returns what it read. Group messages that overtook their
     * sender key wait in the queue.
     */
    fun deliver(device: Device): List<Received> {
        val q = queue(device.address())
        val read = mutableListOf<Received>()
        val keep = mutableListOf<ByteArray>()
        for (env in q) {
            try {
                read += device.receive(now, env)
            } catch (e: RatchetryException.Failed) {
                if (e.code == "fanout.sender_key_missing") keep += env else throw e
            }
        }
        q.clear()
        q.addAll(keep)
        return read
    }
}

/** The bodies of the messages among `received`, as (kind, text). */
fun texts(received: List<Received>): List<Pair<String, String>> = received.mapNotNull {
    when (it) {
        is Received.Direct -> "direct" to it.body.decodeToString()
        is Received.OwnCopy -> "own" to it.body.decodeToString()
        is Received.Group -> "group" to it.body.decodeToString()
        else -> null
    }
}
