"""Times the same operations as bindings/uniffi/examples/rust_timing.rs through the Python
module: a 1:1 message (send to an account with one device, then its receive) and a group
message (3 accounts, key already distributed: send, then one member's receive).

    python3 bindings/uniffi/tests/timing.py [n]
"""

import json
import sys
import time

from conftest import NOW, r


def ready(out):
    assert out.is_READY(), out
    return out.outbox


def main(n):
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
    for _ in range(5):
        b.receive(NOW, ready(a.send(NOW, keys[1], body)).envelopes[0].bytes)
        a.receive(NOW, ready(b.send(NOW, keys[0], body)).envelopes[0].bytes)
    t = time.perf_counter()
    for _ in range(n):
        b.receive(NOW, ready(a.send(NOW, keys[1], body)).envelopes[0].bytes)
    direct = (time.perf_counter() - t) * 1e6 / n

    group = bytes([9]) * 32
    for d in (a, b, c):
        d.set_group_members(group, keys)
    first = ready(a.send_group(NOW, group, body))
    for e in first.envelopes:
        (b if e.to == b.address() else c).receive(NOW, e.bytes)
    b.receive(NOW, first.group.bytes)
    t = time.perf_counter()
    for _ in range(n):
        b.receive(NOW, ready(a.send_group(NOW, group, body)).group.bytes)
    group_us = (time.perf_counter() - t) * 1e6 / n
    print("python: " + json.dumps({"n": n, "direct_us": round(direct, 1), "group_us": round(group_us, 1)}))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
