"""Test support: the generated module on the path, and an in-memory relay.

The generated module and the cdylib are put in ``bindings/uniffi/out/python`` by
``bindings/uniffi/generate.sh`` (or set RATCHETRY_PY_DIR).
"""

import os
import sys
from collections import defaultdict

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(
    0, os.environ.get("RATCHETRY_PY_DIR", os.path.join(HERE, "..", "out", "python"))
)

import ratchetry_uniffi as r  # noqa: E402

NOW = 1_790_000_000_000


def key(address):
    """A hashable key for an Address record."""
    return (bytes(address.account), address.device)


class StaleCopy(Exception):
    """Changes that do not start from what the store holds: refused, nothing written."""


class RecordStore:
    """A device's or a primary's records, as an app keeps them (PROTOCOL.md 19): each
    ``Changes`` is written whole, with its epoch and tag as the head the next changes must
    start from. Changes with a base that does not match the head are refused (a second copy
    of the state, or changes lost before they were written); changes that replace all may
    also go where nothing is stored; changes without a base (a new or restored state) go
    anywhere."""

    def __init__(self, role=r.StateRole.DEVICE):
        self.role = role
        self.records = {}
        self.head = None

    def write(self, changes):
        # A device's unit and a primary's go to their own stores: the other's would replace it.
        if changes.role != self.role:
            raise ValueError(f"a {changes.role} unit in a {self.role} store")
        if changes.base_epoch is not None:
            base = (changes.base_epoch, bytes(changes.base_tag))
            if (base != self.head) if self.head is not None else not changes.replaces_all:
                raise StaleCopy(base, self.head)
        if changes.replaces_all:
            self.records.clear()
        for rec in changes.records:
            if rec.value is None:
                self.records.pop(bytes(rec.key), None)
            else:
                self.records[bytes(rec.key)] = bytes(rec.value)
        self.head = (changes.epoch, bytes(changes.tag))
        return changes

    def load(self):
        """Every record, as ``from_records`` takes them."""
        return [r.StoredRecord(key=k, value=v) for k, v in self.records.items()]


class Relay:
    """The untrusted server: queues envelopes per device, serves lists and bundles. It runs
    the library's relay helpers as a server would: every list it serves is verified when
    published (``ServedLists``), every batch a ``send`` ships passes the coverage check, and
    a device whose one-time prekeys were uploaded gets bundles from its ``PublishedPreKeys``."""

    def __init__(self):
        self.now = NOW
        self.queues = defaultdict(list)
        self.bundles = {}
        self.published = {}
        self.lists = {}
        self.devices = []
        self.served = r.ServedLists()

    def add(self, device):
        """Publishes a device's prekey bundle and lets it follow its own account's list."""
        self.bundles[key(device.address())] = device.prekey_bundle()
        self.published.pop(key(device.address()), None)
        self.devices.append(device)
        return device

    def upload(self, device, upload):
        """Pools a device's one-time prekeys (its account's list must be published)."""
        k = key(device.address())
        if k not in self.published:
            self.published[k] = r.PublishedPreKeys(
                self.now, device.address(), self.bundles[k], self.served
            )
        self.published[k].add(upload)
        return self.published[k]

    def bundle(self, address):
        """What a bundle fetch returns: one with one-time prekeys once they are pooled."""
        k = key(address)
        if k in self.published:
            return self.published[k].take_bundle()
        return self.bundles[k]

    def publish(self, primary):
        """Publishes an account's list and pushes it to every device that follows it."""
        account = primary.account_key()
        self.served.publish(account, primary.device_list())
        self.lists[account] = primary.device_list()
        events = []
        for d in self.devices:
            if d.address().account == account or d.device_list_version(account) is not None:
                events += d.update_device_list(self.now, account, self.lists[account])
        return events

    def introduce(self, *devices):
        """Every device learns every listed account (a contact sync)."""
        for d in devices:
            for account, list_bytes in self.lists.items():
                d.update_device_list(self.now, account, list_bytes)

    def ship(self, outbox):
        for env in outbox.envelopes:
            self.queues[key(env.to)].append(env.bytes)
        if outbox.group is not None:
            for to in outbox.group.recipients:
                self.queues[key(to)].append(outbox.group.bytes)
        return outbox

    def check(self, device, outbox):
        """The relay's coverage check of a batch from `device` (raises if refused)."""
        self.served.check_coverage(self.now, device.address(), outbox.recipients, outbox.coverage)

    def send(self, device, op):
        """Runs a send, fetching bundles and lists as asked; checks the batch's coverage,
        ships it and returns the outbox."""
        for _ in range(4):
            out = op()
            if out.is_READY():
                self.check(device, out.outbox)
                return self.ship(out.outbox)
            if out.is_NEED_BUNDLES():
                device.start_sessions(
                    self.now,
                    [r.BundleFor(device=a, bundle=self.bundle(a)) for a in out.devices],
                )
            elif out.is_NEED_DEVICE_LISTS():
                for a in out.accounts:
                    device.update_device_list(self.now, a, self.lists[a])
        raise AssertionError("send did not become ready")

    def deliver(self, device):
        """Delivers the device's queue; returns what it read. Group messages that overtook
        their sender key wait in the queue."""
        q = self.queues[key(device.address())]
        read, keep = [], []
        for env in q:
            try:
                read.append(device.receive(self.now, env))
            except r.RatchetryError.Failed as e:
                if e.code == "fanout.sender_key_missing":
                    keep.append(env)
                else:
                    raise
        self.queues[key(device.address())] = keep
        return read


def failed(call):
    """The binding error `call` raises (it must fail)."""
    try:
        call()
    except r.RatchetryError.Failed as e:
        return e
    raise AssertionError("the call did not fail")


def texts(received):
    """The bodies of the messages among `received`, as (kind, text)."""
    out = []
    for m in received:
        if m.is_DIRECT():
            out.append(("direct", m.body.decode()))
        elif m.is_OWN_COPY():
            out.append(("own", m.body.decode()))
        elif m.is_GROUP():
            out.append(("group", m.body.decode()))
    return out


@pytest.fixture
def relay():
    return Relay()
