#!/usr/bin/env python3
"""Recomputes ratchetry's protocol vectors from PROTOCOL.md alone, in Python.

Written against the specification text, not the Rust code: a second implementation of the
formulas (X3DH, the Double Ratchet with its state encoding, sender keys, history sync, call
keys). Needs the `cryptography` package for X25519, Ed25519 and AES-GCM; HKDF and HMAC come
from the standard library.

    python3 test-vectors/independent/check_vectors.py [test-vectors-dir]
"""
import hashlib
import hmac
import json
import os
import struct
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives import serialization

RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw
FAILURES = []


def check(group, cond, what):
    if not cond:
        FAILURES.append(f"{group}: {what}")


def u32(n):
    return struct.pack(">I", n)


def u64(n):
    return struct.pack(">Q", n)


def hkdf(salt, ikm, info, length):
    prk = hmac.new(salt if salt else b"\0" * 32, ikm, hashlib.sha256).digest()
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]


def x25519(k, u):
    out = X25519PrivateKey.from_private_bytes(k).exchange(X25519PublicKey.from_public_bytes(u))
    assert out != b"\0" * 32, "non-contributory"
    return out


def x25519_pub(k):
    return X25519PrivateKey.from_private_bytes(k).public_key().public_bytes(*RAW)


def ed_pub(seed):
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(*RAW)


def ed_sign(seed, msg):
    return Ed25519PrivateKey.from_private_bytes(seed).sign(msg)


def ed_x25519_secret(seed):
    return hashlib.sha512(seed).digest()[:32]


def kdf_rk(rk, dh):
    okm = hkdf(rk, dh, b"ratchetry v1 root", 64)
    return okm[:32], okm[32:]


def kdf_ck(ck):
    return hmac.new(ck, b"\x01", hashlib.sha256).digest(), hmac.new(ck, b"\x02", hashlib.sha256).digest()


def message_keys(mk, label=b"ratchetry v1 message keys"):
    okm = hkdf(b"\0" * 32, mk, label, 44)
    return okm[:32], okm[32:]


def seal(key, nonce, ad, pt):
    return AESGCM(key).encrypt(nonce, pt, ad)


def opened(key, nonce, ad, ct):
    return AESGCM(key).decrypt(nonce, ct, ad)


def h(b):
    return b.hex()


def unh(s):
    return bytes.fromhex(s)


# --------------------------------------------------------------------------------------------
# x3dh.json and kdf-chains.json


def check_x3dh(d):
    f = json.load(open(os.path.join(d, "x3dh.json")))
    for v in f["vectors"]:
        g = "x3dh/" + v["name"]
        a_seed, b_seed = unh(v["alice_identity_seed"]), unh(v["bob_identity_seed"])
        check(g, h(ed_pub(a_seed)) == v["alice_identity_public"], "alice identity")
        check(g, h(x25519_pub(ed_x25519_secret(a_seed))) == v["alice_identity_x25519_public"], "alice x25519 form")
        check(g, h(x25519_pub(ed_x25519_secret(b_seed))) == v["bob_identity_x25519_public"], "bob x25519 form")
        spk = unh(v["bob_signed_prekey_secret"])
        spk_pub = x25519_pub(spk)
        sig = ed_sign(b_seed, b"ratchetry v1 signed prekey" + u32(v["bob_signed_prekey_id"]) + spk_pub)
        check(g, h(sig) == v["bob_signed_prekey_signature"], "signed prekey signature")
        bundle = b"\x01\x01" + ed_pub(b_seed) + u32(v["bob_signed_prekey_id"]) + spk_pub + sig
        opk = v["bob_one_time_prekey_secret"]
        bundle += (b"\x01" + u32(v["bob_one_time_prekey_id"]) + x25519_pub(unh(opk))) if opk else b"\x00"
        check(g, h(bundle) == v["bundle"], "bundle bytes")
        ek = unh(v["alice_ephemeral_secret"])
        ik_b_x = x25519_pub(ed_x25519_secret(b_seed))
        dhs = [x25519(ed_x25519_secret(a_seed), spk_pub), x25519(ek, ik_b_x), x25519(ek, spk_pub)]
        if opk:
            dhs.append(x25519(ek, x25519_pub(unh(opk))))
        sk = hkdf(b"\0" * 32, b"\xff" * 32 + b"".join(dhs), b"ratchetry v1 x3dh", 32)
        check(g, h(sk) == v["shared_secret"], "shared secret")
        r = unh(v["alice_ratchet_secret"])
        rk, ck = kdf_rk(sk, x25519(r, spk_pub))
        check(g, (h(rk), h(ck)) == (v["root_key"], v["sending_chain_key"]), "first root step")
        ad = ed_pub(a_seed) + ed_pub(b_seed)
        header = b"\x01\x02" + x25519_pub(r) + u32(0) + u32(0)
        mk, _ = kdf_ck(ck)
        key, nonce = message_keys(mk)
        msg = b"\x01\x03" + ed_pub(a_seed) + x25519_pub(ek) + u32(v["bob_signed_prekey_id"])
        msg += (b"\x01" + u32(v["bob_one_time_prekey_id"])) if opk else b"\x00"
        msg += header + seal(key, nonce, ad + header, unh(v["plaintext"]))
        check(g, h(msg) == v["prekey_message"], "pre-key message bytes")


def check_kdf(d):
    f = json.load(open(os.path.join(d, "kdf-chains.json")))
    for v in f["root"]:
        rk, ck = kdf_rk(unh(v["root_key"]), unh(v["dh_output"]))
        check("kdf/root", (h(rk), h(ck)) == (v["new_root_key"], v["chain_key"]), "KDF_RK")
    for c in f["chains"]:
        ck = unh(c["initial_chain_key"])
        for s in c["steps"]:
            mk, nxt = kdf_ck(ck)
            key, nonce = message_keys(mk)
            ok = (h(ck), h(mk), h(key), h(nonce), h(nxt)) == (
                s["chain_key"], s["message_key"], s["aes_key"], s["nonce"], s["next_chain_key"])
            check("kdf/chain", ok, f"step {s['index']}")
            ck = nxt


# --------------------------------------------------------------------------------------------
# ratchet-transcript.json: both parties, PROTOCOL.md section 8, state encoding 10.3


class Session:
    def __init__(self, role, local, remote, x3dh, root, dhs, dhr, send, recv, awaiting):
        self.max_jump, self.max_skipped = 2000, 2000
        self.role, self.local, self.remote, self.x3dh = role, local, remote, x3dh
        self.rk, self.dhs, self.dhr = root, dhs, dhr
        self.send, self.pn, self.recv = send, 0, recv  # send: [ck, n]; recv: [key, ck, n]
        self.skipped = []  # [key, n, mk]
        self.awaiting = awaiting

    def ad(self):
        a, b = (self.local, self.remote) if self.role == 0 else (self.remote, self.local)
        return a + b

    def encrypt(self, new_secret, pt):
        if self.send is None:
            self.dhs = new_secret
            self.rk, ck = kdf_rk(self.rk, x25519(self.dhs, self.dhr))
            self.send = [ck, 0]
        ck, n = self.send
        mk, nxt = kdf_ck(ck)
        header = b"\x01\x02" + x25519_pub(self.dhs) + u32(self.pn) + u32(n)
        key, nonce = message_keys(mk)
        out = b""
        if self.awaiting:
            base, spk_id, opk_id = self.x3dh
            out = b"\x01\x03" + self.local + base + u32(spk_id) + ((b"\x01" + u32(opk_id)) if opk_id is not None else b"\x00")
        out += header + seal(key, nonce, self.ad() + header, pt)
        self.send = [nxt, n + 1]
        return out, ck

    def decrypt(self, wire):
        if wire[1] == 3:
            skip = 2 + 32 + 32 + 4
            skip += 5 if wire[skip] == 1 else 1
            wire = wire[skip:]
        header, ct = wire[:42], wire[42:]
        k, pn, n = header[2:34], struct.unpack(">I", header[34:38])[0], struct.unpack(">I", header[38:42])[0]
        for i, (sk_k, sk_n, sk_mk) in enumerate(self.skipped):
            if (sk_k, sk_n) == (k, n):
                key, nonce = message_keys(sk_mk)
                pt = opened(key, nonce, self.ad() + header, ct)
                del self.skipped[i]
                self.awaiting = False
                return pt
        new_skipped = []
        if self.recv is not None and self.recv[0] == k:
            ck, nr = self.recv[1], self.recv[2]
            assert n >= nr
            for i in range(nr, n):
                mk, ck = kdf_ck(ck)
                new_skipped.append([k, i, mk])
            mk, ck = kdf_ck(ck)
            root = None
        else:
            if self.recv is not None:
                ck, nr = self.recv[1], self.recv[2]
                for i in range(nr, max(nr, pn)):
                    mk, ck = kdf_ck(ck)
                    new_skipped.append([self.recv[0], i, mk])
            root, ck = kdf_rk(self.rk, x25519(self.dhs, k))
            for i in range(0, n):
                mk, ck = kdf_ck(ck)
                new_skipped.append([k, i, mk])
            mk, ck = kdf_ck(ck)
        key, nonce = message_keys(mk)
        pt = opened(key, nonce, self.ad() + header, ct)
        if root is not None:
            self.rk, self.dhr = root, k
            if self.send is not None:
                self.pn = self.send[1]
                self.send = None
        self.recv = [k, ck, n + 1]
        self.skipped.extend(new_skipped)
        self.skipped = self.skipped[max(0, len(self.skipped) - self.max_skipped):]
        self.awaiting = False
        return pt

    def state(self):
        base, spk_id, opk_id = self.x3dh
        out = b"\x01\x81" + u32(self.max_jump) + u32(self.max_skipped) + bytes([self.role])
        out += self.local + self.remote + base + u32(spk_id)
        out += (b"\x01" + u32(opk_id)) if opk_id is not None else b"\x00"
        out += bytes([1 if self.awaiting else 0]) + self.rk + self.dhs + self.dhr
        out += (b"\x01" + self.send[0] + u32(self.send[1])) if self.send else b"\x00"
        out += u32(self.pn)
        out += (b"\x01" + self.recv[0] + self.recv[1] + u32(self.recv[2])) if self.recv else b"\x00"
        out += u32(len(self.skipped)) + b"".join(k + u32(n) + mk for k, n, mk in self.skipped)
        return out


def check_transcript(d):
    f = json.load(open(os.path.join(d, "ratchet-transcript.json")))
    a_seed, b_seed = unh(f["alice_identity_seed"]), unh(f["bob_identity_seed"])
    ik_a, ik_b = ed_pub(a_seed), ed_pub(b_seed)
    spk, opk, ek = unh(f["bob_signed_prekey_secret"]), unh(f["bob_one_time_prekey_secret"]), unh(f["alice_ephemeral_secret"])
    bundle = unh(f["bundle"])
    spk_id = struct.unpack(">I", bundle[34:38])[0]
    opk_id = struct.unpack(">I", bundle[2 + 32 + 4 + 32 + 64 + 1:][:4])[0]
    spk_pub = x25519_pub(spk)
    dhs = [x25519(ed_x25519_secret(a_seed), spk_pub), x25519(ek, x25519_pub(ed_x25519_secret(b_seed))),
           x25519(ek, spk_pub), x25519(ek, x25519_pub(opk))]
    sk = hkdf(b"\0" * 32, b"\xff" * 32 + b"".join(dhs), b"ratchetry v1 x3dh", 32)
    check("transcript", h(ik_a + ik_b) == f["associated_data"], "associated data")
    x3dh = (x25519_pub(ek), spk_id, opk_id)
    alice = bob = None
    wires = {}
    # Alice's first ratchet key is drawn at initiation (8.3), not by a send.
    first_ratchet = unh(f["alice_ratchet_secret"])
    for e in f["events"]:
        g = f"transcript/{e['event']} {e['message']} by {e['by']}"
        pt = unh(e["plaintext"])
        if e["event"] == "send":
            if e["by"] == "alice":
                if alice is None:
                    r = first_ratchet
                    rk, ck = kdf_rk(sk, x25519(r, spk_pub))
                    alice = Session(0, ik_a, ik_b, x3dh, rk, r, spk_pub, [ck, 0], None, True)
                s = alice
            else:
                s = bob
            new = unh(e["new_ratchet_secret"]) if e["new_ratchet_secret"] else None
            wire, ck = s.encrypt(new, pt)
            check(g, h(ck) == e["chain_key"], "chain key used")
            check(g, h(wire) == e["wire"], "wire bytes")
            wires[e["message"]] = wire
        else:
            wire = wires[e["message"]]
            if e["by"] == "bob" and bob is None:
                first_key = wire[2 + 32 + 32 + 4 + 5 + 2:][:32]
                bob = Session(1, ik_b, ik_a, x3dh, sk, spk, first_key, None, None, False)
            s = alice if e["by"] == "alice" else bob
            got = s.decrypt(wire)
            check(g, got == pt, "plaintext")
        check(g, h(s.rk) == e["root_key"], "root key")
        check(g, (h(s.send[0]) if s.send else None) == e["sending_chain_key"], "sending chain key")
        check(g, (h(s.recv[1]) if s.recv else None) == e["receiving_chain_key"], "receiving chain key")
        check(g, len(s.skipped) == e["skipped_keys"], "skipped keys")
        check(g, h(s.state()) == e["state"], "state bytes")


# --------------------------------------------------------------------------------------------
# sender-keys.json, history-sync.json, call-keys.json


def check_sender_keys(d):
    f = json.load(open(os.path.join(d, "sender-keys.json")))
    group = unh(f["group_id"])
    sender = unh(f["sender_identity_public"])
    ck = seed = None
    sends = 0
    for e in f["events"]:
        g = f"sender-keys/{e['event']} {e.get('message') or e['key_id']}"
        if e["event"] in ("create", "rotate"):
            ck, seed = unh(e["chain_key"]), unh(e["signing_seed"])
            check(g, h(ed_pub(seed)) == e["signing_public"], "signing key")
        elif e["event"] == "distribute":
            dist = b"\x01\x05" + group + u32(e["key_id"]) + u32(e["iteration"]) + ck + ed_pub(seed)
            check(g, h(dist) == e["distribution"], "distribution bytes")
        elif e["event"] == "send":
            sends += 1
            mk, nxt = kdf_ck(ck)
            key, nonce = message_keys(mk, b"ratchetry v1 group message keys")
            header = b"\x01\x04" + group + u32(e["key_id"]) + u32(e["iteration"])
            signed = header + seal(key, nonce, header, unh(e["plaintext"]))
            sig = ed_sign(seed, b"ratchetry v1 group message" + sender + signed)
            check(g, h(signed + sig) == e["wire"], "wire bytes")
            ck = nxt
    check("sender-keys", sends == 5, "five sends")


def check_history(d):
    f = json.load(open(os.path.join(d, "history-sync.json")))
    for v in f["vectors"]:
        g = "history/" + v["name"]
        secret = unh(v["secret"])
        okm = hkdf(b"\0" * 32, secret, b"ratchetry v1 history sync", 35)
        key, prefix = okm[:32], okm[32:]
        length = v["length"]
        data = bytes((i * 7 + 3) % 256 for i in range(length))
        pieces = [data[i:i + 65536] for i in range(0, length - length % 65536, 65536)]
        pieces.append(data[len(pieces) * 65536:])
        check(g, len(pieces) == len(v["chunks"]), "chunk count")
        tags = b""
        for i, (piece, c) in enumerate(zip(pieces, v["chunks"])):
            nonce = prefix + u64(i) + bytes([1 if i + 1 == len(pieces) else 0])
            chunk = b"\x01\x0d" + seal(key, nonce, b"\x01\x0d", piece)
            check(g, h(hashlib.sha256(chunk).digest()) == c["sha256"], f"chunk {i}")
            tags += chunk[-16:]
        digest = hashlib.sha256(b"ratchetry v1 history digest" + tags + u64(length)).digest()
        offer = b"\x01\x0e" + secret + u32(65536) + u64(length) + u64(len(pieces)) + digest
        check(g, h(offer) == v["offer"], "offer bytes")


def check_calls(d):
    f = json.load(open(os.path.join(d, "call-keys.json")))
    call_id = unh(f["epochs"][0]["key_message"])[2:18]
    prev = None
    for e in f["epochs"]:
        g = f"calls/{e['change']}"
        salt = call_id + u32(e["epoch"])
        secret = unh(e["secret"])
        if e["change"] == "join":
            check(g, hkdf(salt, prev, b"ratchetry v1 call ratchet", 32) == secret, "ratcheted secret")
        msg = b"\x01\x0f" + call_id + b"\x02" + u32(e["epoch"]) + secret + u32(len(e["participants"]))
        for p in e["participants"]:
            ak = unh(p["account"])
            msg += ak + u32(p["device"])
            okm = hkdf(salt, secret, b"ratchetry v1 call srtp" + ak + u32(p["device"]), 44)
            check(g, (h(okm[:32]), h(okm[32:])) == (p["master_key"], p["master_salt"]), "SRTP keys")
        check(g, h(msg) == e["key_message"], "key message bytes")
        prev = secret


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    groups = [("x3dh", check_x3dh), ("kdf-chains", check_kdf), ("ratchet-transcript", check_transcript),
              ("sender-keys", check_sender_keys), ("history-sync", check_history), ("call-keys", check_calls)]
    for name, fn in groups:
        before = len(FAILURES)
        try:
            fn(d)
        except Exception as exc:  # a crash in one group is a failure of that group
            FAILURES.append(f"{name}: {type(exc).__name__}: {exc}")
        print(("PASS " if len(FAILURES) == before else "FAIL ") + name)
    for f in FAILURES:
        print("  " + f)
    if FAILURES:
        sys.exit(1)
    print("independent check: 6 passed, 0 failed")


if __name__ == "__main__":
    main()
