"""Times the same operations as bindings/uniffi/examples/rust_timing.rs through the Python
module: a 1:1 message (send to an account with one device, then its receive), a 1 KiB send and
its receive apart, and a group message (3 accounts, key already distributed: send, then one
member's receive). After 500 warm-up messages each op runs in batches of 100 and the fastest
batch counts (the figure other processes disturb least).

    python3 bindings/uniffi/tests/timing.py [batches]
"""

import json
import sys
import time

from conftest import NOW, r

BATCH = 100


def ready(out):
    assert out.is_READY(), out
    return out.outbox


def best(batches, op):
    """The fastest of `batches` batches of `op`, in microseconds per run."""
    fastest = float("inf")
    for _ in range(batches):
        t = time.perf_counter()
        for _ in range(BATCH):
            op()
        fastest = min(fastest, (time.perf_counter() - t) * 1e6 / BATCH)
    return fastest


def main(batches):
    accounts = [r.create_account(NOW) for _ in range(3)]
    keys = [a.primary.account_key() for a in accounts]
    for a in accounts:
        for b in accounts:
            a.device.update_device_list(NOW, b.primary.account_key(), b.primary.device_list())
    for a in accounts:
        others = [
            r.BundleFor(device=b.device.address(), bundle=b.device.prekey_bundle())
            for b in accounts
            if b is not a
        ]
        a.device.start_sessions(NOW, others)
    a, b, c = (x.device for x in accounts)
    body = b"a message of about forty bytes, typical"
    for _ in range(500):
        b.receive(NOW, ready(a.send(NOW, keys[1], body)).envelopes[0].bytes)
        a.receive(NOW, ready(b.send(NOW, keys[0], body)).envelopes[0].bytes)
    direct = best(batches, lambda: b.receive(NOW, ready(a.send(NOW, keys[1], body)).envelopes[0].bytes))

    kib = b"A" * 1024
    send_1k = receive_1k = float("inf")
    for _ in range(batches):
        t = time.perf_counter()
        outs = [ready(a.send(NOW, keys[1], kib)).envelopes[0].bytes for _ in range(BATCH)]
        send_1k = min(send_1k, (time.perf_counter() - t) * 1e6 / BATCH)
        t = time.perf_counter()
        for env in outs:
            b.receive(NOW, env)
        receive_1k = min(receive_1k, (time.perf_counter() - t) * 1e6 / BATCH)

    group = bytes([9]) * 32
    for d in (a, b, c):
        d.set_group_members(group, keys)
    first = ready(a.send_group(NOW, group, body))
    for e in first.envelopes:
        (b if e.to == b.address() else c).receive(NOW, e.bytes)
    b.receive(NOW, first.group.bytes)
    group_us = best(batches, lambda: b.receive(NOW, ready(a.send_group(NOW, group, body)).group.bytes))
    figures = {"batches": batches, "direct_us": direct, "send_1k_us": send_1k,
               "receive_1k_us": receive_1k, "group_us": group_us}
    print("python: " + json.dumps({k: round(v, 1) for k, v in figures.items()}))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
