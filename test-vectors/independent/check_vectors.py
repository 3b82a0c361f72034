#!/usr/bin/env python3
"""Independent check of ratchetry's test vectors (wire version 2).

Written from PROTOCOL.md and test-vectors/README.md alone (not from the crate's sources): every
derived value in every vector file is recomputed here from the inputs and seeds the file gives,
following PROTOCOL.md's formulas, and compared byte for byte.

    python3 test-vectors/independent/check_vectors.py test-vectors

Prints, per JSON file, the number of checks that passed; a `SKIPPED <file/case>: <reason>` line for
whatever the vectors or the spec do not let an independent implementation recompute; a
`MISMATCH` line for every difference. Exits non-zero on any mismatch, on any exception, and when a
vector file present yields no checks.

Dependencies: Python 3.11 stdlib and `cryptography` (X25519, Ed25519, AES-GCM, ML-KEM-1024 and
ML-KEM-768 key generation and decapsulation). `cryptography` has no deterministic ML-KEM
encapsulation, so FIPS 203's `ML-KEM.Encaps_internal` is implemented below in pure Python for both
parameter sets (section "2: KEM"), split into its c1 and c2 halves for the post-quantum ratchet
(25.2); every use of it is cross-checked by decapsulating with `cryptography` (for ML-KEM-768:
the encapsulator's S_x against the publisher's, who decapsulates with `cryptography`).

Rules this file keeps: an expected value is never an input to a computation. Where a vector
lists RNG output, the value used is drawn from the README's SeededRng in PROTOCOL.md section 11's
order and the listed value is compared with it.

Where PROTOCOL.md (or the README) is silent, this file assumes the following (the vectors
confirm each, except where said):
- 15.3: a new primary's epoch is 0, and after signing version v its next_version is v + 1.
- 19.3: the `a` entries of a group sent message are the devices whose retry requests for it were
  answered (none at send time).
- 18.4: "decodes" includes the decoders' key checks (9.2's IK validity); no vector exercises it.
- devices.json: the order of the draws before its first event (DevicesRun.setup).
- sender-keys.json: the "account key drawn" of the sender context is the Ed25519 public key of a
  drawn 32-byte seed.
- pq-ratchet.json: test-vectors/README.md has no section for this file (its description points
  there), so its layout is read from the file: `erasure` payloads are k x 32 bytes drawn in the
  file's order from `rng_seed`; a message's `alice_epoch`/`bob_epoch` are the sides' `e` (25.3)
  after it was sent and, if delivered, received; `alice_state`/`bob_state` appear after every
  40th message and the last.
"""

import copy
import hashlib
import hmac as _hmac
import json
import os
import re
import sys
import traceback

try:
    from cryptography.exceptions import InvalidSignature, InvalidTag
    from cryptography.hazmat.primitives.asymmetric import mlkem
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except ImportError as err:
    sys.exit(f"check_vectors.py needs the `cryptography` package with ML-KEM support (48 works): {err}")


# ----------------------------------------------------------------------------------------------
# Reporting
# ----------------------------------------------------------------------------------------------

class Report:
    def __init__(self):
        self.file = None
        self.passed = {}
        self.failures = 0
        self.skips = 0

    def begin(self, name):
        self.file = name
        self.passed.setdefault(name, 0)

    def ok(self):
        self.passed[self.file] += 1

    def fail(self, what, detail=""):
        self.failures += 1
        print(f"MISMATCH {self.file}: {what}{': ' + detail if detail else ''}")

    def check(self, what, got, expected):
        """Compare a recomputed value with the vector's. Hex strings are compared as bytes."""
        if isinstance(got, (bytes, bytearray)) and isinstance(expected, str):
            expected = bytes.fromhex(expected)
        if got == expected and type(got) is type(expected):
            self.ok()
        else:
            self.fail(what, f"recomputed {show(got)}, vector has {show(expected)}")

    def true(self, what, cond):
        if cond:
            self.ok()
        else:
            self.fail(what, "does not hold")

    def skip(self, case, reason):
        self.skips += 1
        print(f"SKIPPED {self.file}/{case}: {reason}")


def show(x):
    if isinstance(x, (bytes, bytearray)):
        h = bytes(x).hex()
        return h if len(h) <= 80 else f"{h[:72]}..({len(x)} bytes)"
    if isinstance(x, str) and len(x) > 80:
        return f"{x[:72]}..({len(x) // 2} bytes hex)"
    return repr(x)


R = Report()


# ----------------------------------------------------------------------------------------------
# 1. Conventions
# ----------------------------------------------------------------------------------------------

def u8(x): return x.to_bytes(1, "big")
def u16(x): return x.to_bytes(2, "big")
def u32(x): return x.to_bytes(4, "big")
def u64(x): return x.to_bytes(8, "big")
def flag(b): return b"\x01" if b else b"\x00"
def opt(x): return b"\x00" if x is None else b"\x01" + x
def blob(x): return u32(len(x)) + x
def H(x): return hashlib.sha256(x).digest()
def hx(s): return bytes.fromhex(s)


class DecodeError(Exception):
    """Section 13's Decode(..) errors: UnknownVersion, UnknownType, Truncated, TrailingBytes,
    InvalidValue, InvalidKey."""


class ProtocolError(Exception):
    """Any other error of section 13 (the name is the message)."""


class Reader:
    """Front-to-back decoding with section 4's checks."""

    def __init__(self, data):
        self.b, self.p = bytes(data), 0

    def take(self, n):
        if self.p + n > len(self.b):
            raise DecodeError("Truncated")
        out = self.b[self.p:self.p + n]
        self.p += n
        return out

    def u8(self): return self.take(1)[0]
    def u16(self): return int.from_bytes(self.take(2), "big")
    def u32(self): return int.from_bytes(self.take(4), "big")
    def u64(self): return int.from_bytes(self.take(8), "big")

    def flag(self):
        v = self.u8()
        if v > 1:
            raise DecodeError("InvalidValue")
        return v == 1

    def opt(self, n):
        return self.take(n) if self.flag() else None

    def head(self, version, typ):
        v = self.u8()
        if v != version:
            raise DecodeError(f"UnknownVersion({v})")
        t = self.u8()
        if t != typ:
            raise DecodeError(f"UnknownType({t})")

    def rest(self):
        out = self.b[self.p:]
        self.p = len(self.b)
        return out

    def end(self):
        if self.p != len(self.b):
            raise DecodeError("TrailingBytes")


# ----------------------------------------------------------------------------------------------
# 2. Primitives
# ----------------------------------------------------------------------------------------------

def x25519(k, u):
    """X25519 with the contributory check (an all-zero output fails)."""
    try:
        out = X25519PrivateKey.from_private_bytes(k).exchange(X25519PublicKey.from_public_bytes(u))
    except ValueError:  # OpenSSL refuses an all-zero shared secret itself
        raise ProtocolError("NonContributory")
    if out == bytes(32):
        raise ProtocolError("NonContributory")
    return out


def x25519_canonical(u):
    """2: an X25519 public key's one canonical encoding: bit 255 clear and u < p."""
    n = int.from_bytes(u, "little")
    return n >> 255 == 0 and n < 2 ** 255 - 19


def x25519_pub(k):
    return X25519PrivateKey.from_private_bytes(k).public_key().public_bytes_raw()


def ed25519_pub(seed):
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()


def sign(seed, m):
    return Ed25519PrivateKey.from_private_bytes(seed).sign(m)


def verify(pub, m, sig):
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, m)
        return True
    except (InvalidSignature, ValueError):
        return False


def hmac_sha256(k, m):
    return _hmac.new(k, m, hashlib.sha256).digest()


def hkdf(salt, ikm, info, length):
    """RFC 5869 HKDF-SHA256, extract then expand (an empty salt is HashLen zero bytes)."""
    prk = hmac_sha256(salt if salt else bytes(32), ikm)
    okm, t, i = b"", b"", 1
    while len(okm) < length:
        t = hmac_sha256(prk, t + info + bytes([i]))
        okm += t
        i += 1
    return okm[:length]


def aead_seal(k, n, ad, p):
    return AESGCM(k).encrypt(n, p, ad)


def aead_open(k, n, ad, c):
    try:
        return AESGCM(k).decrypt(n, c, ad)
    except InvalidTag:
        raise ProtocolError("AuthenticationFailed")


# --- 2: KEM (ML-KEM-1024, FIPS 203) and KEM768 (ML-KEM-768, for the post-quantum ratchet, 25) ---
# KeyGen and Decaps come from `cryptography`; Encaps_internal(ek, m) is implemented here, for
# either parameter set (FIPS 203 table 2), and split into its c1 and c2 halves (25.2).

KEM_Q = 3329
ML_KEM_1024 = {"k": 4, "eta1": 2, "eta2": 2, "du": 11, "dv": 5}
ML_KEM_768 = {"k": 3, "eta1": 2, "eta2": 2, "du": 10, "dv": 4}
KEM_K = ML_KEM_1024["k"]


def _bitrev7(i):
    return int(f"{i:07b}"[::-1], 2)


_ZETAS = [pow(17, _bitrev7(i), KEM_Q) for i in range(128)]
_GAMMAS = [pow(17, 2 * _bitrev7(i) + 1, KEM_Q) for i in range(128)]


def _ntt(f):  # FIPS 203 algorithm 9
    f, q, i, ln = list(f), KEM_Q, 1, 128
    while ln >= 2:
        for start in range(0, 256, 2 * ln):
            z = _ZETAS[i]
            i += 1
            for j in range(start, start + ln):
                t = z * f[j + ln] % q
                f[j + ln] = (f[j] - t) % q
                f[j] = (f[j] + t) % q
        ln //= 2
    return f


def _ntt_inv(f):  # FIPS 203 algorithm 10
    f, q, i, ln = list(f), KEM_Q, 127, 2
    while ln <= 128:
        for start in range(0, 256, 2 * ln):
            z = _ZETAS[i]
            i -= 1
            for j in range(start, start + ln):
                t = f[j]
                f[j] = (t + f[j + ln]) % q
                f[j + ln] = z * (f[j + ln] - t) % q
        ln *= 2
    return [x * 3303 % q for x in f]


def _mul_ntt(f, g):  # FIPS 203 algorithms 11, 12
    h, q = [0] * 256, KEM_Q
    for i in range(128):
        a0, a1, b0, b1 = f[2 * i], f[2 * i + 1], g[2 * i], g[2 * i + 1]
        h[2 * i] = (a0 * b0 + a1 * b1 % q * _GAMMAS[i]) % q
        h[2 * i + 1] = (a0 * b1 + a1 * b0) % q
    return h


def _add(f, g):
    return [(a + b) % KEM_Q for a, b in zip(f, g)]


def _sample_ntt(seed):  # FIPS 203 algorithm 7
    n = 840
    while True:
        buf, a, p = hashlib.shake_128(seed).digest(n), [], 0
        while len(a) < 256 and p + 3 <= n:
            c0, c1, c2 = buf[p], buf[p + 1], buf[p + 2]
            p += 3
            d1, d2 = c0 + 256 * (c1 & 15), (c1 >> 4) + 16 * c2
            if d1 < KEM_Q:
                a.append(d1)
            if d2 < KEM_Q and len(a) < 256:
                a.append(d2)
        if len(a) == 256:
            return a
        n *= 2


def _cbd(b, eta):  # FIPS 203 algorithm 8
    x, m = int.from_bytes(b, "little"), (1 << eta) - 1
    out = []
    for i in range(256):
        w = x >> (2 * eta * i)
        out.append((bin(w & m).count("1") - bin((w >> eta) & m).count("1")) % KEM_Q)
    return out


def _byte_encode(f, d):  # FIPS 203 algorithm 5
    x = 0
    for i, a in enumerate(f):
        x |= a << (d * i)
    return x.to_bytes(32 * d, "little")


def _byte_decode(b, d):  # FIPS 203 algorithm 6 (without the mod q of d = 12)
    x, m = int.from_bytes(b, "little"), (1 << d) - 1
    return [(x >> (d * i)) & m for i in range(256)]


def _compress(f, d):
    return [((a << (d + 1)) + KEM_Q) // (2 * KEM_Q) % (1 << d) for a in f]


def _decompress(f, d):
    return [(KEM_Q * y + (1 << (d - 1))) >> d for y in f]


def kem_ek_check(ek, params=ML_KEM_1024):
    """Section 2 / FIPS 203 section 7.2: 384 k + 32 bytes (1568 for ML-KEM-1024), every 12-bit
    coefficient below q."""
    k = params["k"]
    if len(ek) != 384 * k + 32:
        return False
    return all(max(_byte_decode(ek[384 * i:384 * (i + 1)], 12)) < KEM_Q for i in range(k))


def kem_keygen(seed):
    """KEM.KeyGen(d || z): the 1568-byte encapsulation key (cryptography)."""
    return mlkem.MLKEM1024PrivateKey.from_seed_bytes(seed).public_key().public_bytes_raw()


def kem_decaps(seed, ct):
    """KEM.Decaps(d || z, ct) (cryptography)."""
    return mlkem.MLKEM1024PrivateKey.from_seed_bytes(seed).decapsulate(ct)


def kem768_keygen(seed):
    """KEM768.KeyGen(d || z): the 1184-byte encapsulation key (cryptography)."""
    return mlkem.MLKEM768PrivateKey.from_seed_bytes(seed).public_key().public_bytes_raw()


def kem768_decaps(seed, ct):
    """KEM768.Decaps(d || z, ct) (cryptography)."""
    return mlkem.MLKEM768PrivateKey.from_seed_bytes(seed).decapsulate(ct)


def _encaps_noise(h_ek, m, params):
    """FIPS 203 algorithm 17 lines 1-2 and algorithm 14 lines 8-17: (K, NTT(y), e1, e2)."""
    g = hashlib.sha3_512(m + h_ek).digest()
    ss, r, k = g[:32], g[32:], params["k"]
    prf = lambda eta, n: hashlib.shake_256(r + bytes([n])).digest(64 * eta)
    y = [_cbd(prf(params["eta1"], i), params["eta1"]) for i in range(k)]
    e1 = [_cbd(prf(params["eta2"], k + i), params["eta2"]) for i in range(k)]
    e2 = _cbd(prf(params["eta2"], 2 * k), params["eta2"])
    return ss, [_ntt(p) for p in y], e1, e2


def kem_encaps_c1(rho, h_ek, m, params):
    """The first half of Encaps_internal(ek, m), which needs ek only through rho and H(ek):
    (c1 = ByteEncode_du(Compress_du(u)), shared secret K)."""
    ss, y_hat, e1, _ = _encaps_noise(h_ek, m, params)
    k, du = params["k"], params["du"]
    a = [[_sample_ntt(rho + bytes([j, i])) for j in range(k)] for i in range(k)]
    c1 = b""
    for i in range(k):
        acc = [0] * 256
        for j in range(k):
            acc = _add(acc, _mul_ntt(a[j][i], y_hat[j]))
        c1 += _byte_encode(_compress(_add(_ntt_inv(acc), e1[i]), du), du)
    return c1, ss


def kem_encaps_c2(t, h_ek, m, params):
    """The second half: c2 = ByteEncode_dv(Compress_dv(v)) from t = ek[0..384 k] (t-hat)."""
    _, y_hat, _, e2 = _encaps_noise(h_ek, m, params)
    k, dv = params["k"], params["dv"]
    t_hat = [_byte_decode(t[384 * i:384 * (i + 1)], 12) for i in range(k)]
    acc = [0] * 256
    for j in range(k):
        acc = _add(acc, _mul_ntt(t_hat[j], y_hat[j]))
    v = _add(_add(_ntt_inv(acc), e2), _decompress(_byte_decode(m, 1), 1))
    return _byte_encode(_compress(v, dv), dv)


def kem_encaps(ek, m, params=ML_KEM_1024):
    """KEM.Encaps(ek, m) = FIPS 203 ML-KEM.Encaps_internal (algorithms 14 and 17): (ct, ss)."""
    k, h_ek = params["k"], hashlib.sha3_256(ek).digest()
    c1, ss = kem_encaps_c1(ek[384 * k:], h_ek, m, params)
    return c1 + kem_encaps_c2(ek[:384 * k], h_ek, m, params), ss


# ----------------------------------------------------------------------------------------------
# The seeded RNG (test-vectors/README.md) and section 11's draws
# ----------------------------------------------------------------------------------------------

class SeededRng:
    """Blocks SHA-256(seed || u64_be(i)), i = 0, 1, ...; each request takes the next bytes."""

    def __init__(self, seed):
        self.seed, self.i, self.buf = seed, 0, b""

    def draw(self, n):
        while len(self.buf) < n:
            self.buf += H(self.seed + u64(self.i))
            self.i += 1
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def draw(rng, n, listed, what):
    """Draw n bytes (the value used from here on) and compare the vector's listed draw."""
    value = rng.draw(n)
    R.check(f"{what} (RNG draw)", value, listed)
    return value


class Draws:
    """Named draws for an operation whose draws depend on state (8.5: a ratchet secret only when
    a sending chain starts). Every listed value must be drawn, and nothing else."""

    def __init__(self, rng, where, **listed):
        self.rng, self.where, self.listed, self.used = rng, where, listed, set()

    def __call__(self, n, name):
        self.used.add(name)
        return draw(self.rng, n, self.listed.get(name), f"{self.where}: {name}")

    def done(self):
        for name, value in self.listed.items():
            if value is not None and name not in self.used:
                R.fail(f"{self.where}: {name}", "listed as drawn but the spec's operation draws no such value")


# ----------------------------------------------------------------------------------------------
# 3. Labels
# ----------------------------------------------------------------------------------------------

L_PQXDH = b"ratchetry v1 pqxdh"
L_ROOT = b"ratchetry v1 root"
L_MESSAGE_KEYS = b"ratchetry v1 message keys"
L_SIGNED_PREKEY = b"ratchetry v1 signed prekey"
L_KEM_PREKEY = b"ratchetry v1 kem prekey"
L_GROUP_KEYS = b"ratchetry v1 group message keys"
L_GROUP_MESSAGE = b"ratchetry v1 group message"
L_DEVICE_LIST = b"ratchetry v1 device list"
L_BINDING = b"ratchetry v1 device binding"
L_LINK_REQUEST = b"ratchetry v1 link request"
L_LINK_CONFIRMATION = b"ratchetry v1 link confirmation"
L_LISTS_DIGEST = b"ratchetry v1 device lists digest"
L_BODY_DIGEST_KEY = b"ratchetry v1 body digest key"
L_SAFETY = b"ratchetry v1 safety number"
L_HISTORY = b"ratchetry v1 history sync"
L_HISTORY_DIGEST = b"ratchetry v1 history digest"
L_CALL_RATCHET = b"ratchetry v1 call ratchet"
L_CALL_SRTP = b"ratchetry v1 call srtp"
L_SEALED = b"ratchetry v1 sealed state"
L_MESSAGE_ID = b"ratchetry v1 message id"   # an envelope's id (18.4)
L_APP_MESSAGE_ID = b"ratchetry v1 app message id"   # a message's id, the same on every device
L_RETRY = b"ratchetry v1 retry request"

# 12. Limits (defaults; every vector uses them)
MAX_FORWARD_JUMP, MAX_SKIPPED_KEYS = 2000, 2000
PREKEY_CONFIG = [3, 1000, 100000, 100, 10000]  # the five u32 of prekey_core, in its order
GROUP_MAX_FORWARD_JUMP, GROUP_MAX_SKIPPED, GROUP_MAX_GENERATIONS = 5000, 2000, 4
MAX_MESSAGE_CONTEXT = 255
MAX_COMPANIONS = 4          # the account's own, signed in its lists (15.1)
COMPANION_CEILING = 16      # the verifier's ceiling on any account's policy (15.2)
COMPANION_VALIDITY_MS = 14 * 24 * 3600 * 1000
LINK_INVITATION_VALIDITY_MS = 10 * 60 * 1000
RETRY_WINDOW_MS = 7 * 24 * 3600 * 1000
CHAIN_END = 2 ** 32 - 1


# ----------------------------------------------------------------------------------------------
# 5. Keys
# ----------------------------------------------------------------------------------------------

ED_P = 2 ** 255 - 19
ED_D = -121665 * pow(121666, ED_P - 2, ED_P) % ED_P


def _ed_add(a, b):
    (x1, y1), (x2, y2) = a, b
    t = ED_D * x1 * x2 * y1 * y2 % ED_P
    x3 = (x1 * y2 + y1 * x2) * pow(1 + t, ED_P - 2, ED_P) % ED_P
    y3 = (y1 * y2 + x1 * x2) * pow(1 - t, ED_P - 2, ED_P) % ED_P
    return x3, y3


def ed25519_key_valid(enc):
    """5.1: y below p, decompresses to a curve point (RFC 8032 5.1.3), not of small order."""
    if len(enc) != 32:
        return False
    n = int.from_bytes(enc, "little")
    sign_bit, y = n >> 255, n & ((1 << 255) - 1)
    if y >= ED_P:
        return False
    x2 = (y * y - 1) * pow(ED_D * y * y + 1, ED_P - 2, ED_P) % ED_P
    x = pow(x2, (ED_P + 3) // 8, ED_P)
    if (x * x - x2) % ED_P:
        x = x * pow(2, (ED_P - 1) // 4, ED_P) % ED_P
    if (x * x - x2) % ED_P:
        return False
    if x == 0 and sign_bit:
        return False
    if x & 1 != sign_bit:
        x = ED_P - x
    pt = (x, y)
    for _ in range(3):
        pt = _ed_add(pt, pt)
    return pt != (0, 1)


def edwards_to_montgomery(ik):
    """5.1: IKx = u = (1 + y) / (1 - y) mod p, little-endian."""
    y = int.from_bytes(ik, "little") & ((1 << 255) - 1)
    return ((1 + y) * pow(1 - y, ED_P - 2, ED_P) % ED_P).to_bytes(32, "little")


class Identity:
    """5.1: an Ed25519 key pair from a seed, and its X25519 form."""

    def __init__(self, seed):
        self.seed = seed
        self.public = ed25519_pub(seed)
        self.x_secret = hashlib.sha512(seed).digest()[:32]
        self.x_public = x25519_pub(self.x_secret)


def check_identity(what, ident, ik, ikx=None):
    """5.1: IK, and IKx both as X25519_PUB(SHA-512(seed)[0..32]) and as (1 + y)/(1 - y)."""
    R.check(f"{what}: identity key (5.1)", ident.public, ik)
    R.true(f"{what}: identity key is valid (5.1)", ed25519_key_valid(ident.public))
    R.check(f"{what}: IKx = (1 + y)/(1 - y) equals X25519_PUB(IKx_secret) (5.1)",
            edwards_to_montgomery(ident.public), ident.x_public)
    if ikx is not None:
        R.check(f"{what}: IKx (5.1)", ident.x_public, ikx)


def spk_signature(identity_seed, spk_id, spk):
    """5.2"""
    return sign(identity_seed, L_SIGNED_PREKEY + u32(spk_id) + spk)


def kem_signature(identity_seed, kem_id, kem_pk):
    """5.3"""
    return sign(identity_seed, L_KEM_PREKEY + u32(kem_id) + kem_pk)


# ----------------------------------------------------------------------------------------------
# 6. Prekey bundle, 6.1 upload, 10.2 prekey store
# ----------------------------------------------------------------------------------------------

class SignedPreKey:
    def __init__(self, identity, spk_id, secret, created_at):
        self.id, self.secret, self.created_at = spk_id, secret, created_at
        self.public = x25519_pub(secret)
        self.signature = spk_signature(identity.seed, spk_id, self.public)

    def to_bytes(self):  # 10.2 signed_prekey
        return u32(self.id) + self.secret + self.public + self.signature + u64(self.created_at)


class KemPreKey:
    def __init__(self, identity, kem_id, seed, created_at, uses=0):
        self.id, self.seed, self.created_at, self.uses = kem_id, seed, created_at, uses
        self.public = kem_keygen(seed)
        self.signature = kem_signature(identity.seed, kem_id, self.public)

    def to_bytes(self):  # 10.2 kem_prekey (an unknown created_at, None, is written as 0)
        return (u32(self.id) + self.seed + self.signature + u64(self.created_at or 0)
                + u32(self.uses))


def prekey_core(config, next_spk_id, next_opk_id, spk, retired_spks, next_kem_id, last_resort,
                retired_last_resort):
    """10.2 prekey_core (also the value of record 0x03, 19.1)."""
    out = b"".join(u32(x) for x in config) + u32(next_spk_id) + u32(next_opk_id)
    out += spk.to_bytes() + u32(len(retired_spks)) + b"".join(s.to_bytes() for s in retired_spks)
    out += u32(next_kem_id) + last_resort.to_bytes() + u32(len(retired_last_resort))
    return out + b"".join(k.to_bytes() for k in retired_last_resort)


class PreKeyStore:
    """10.2's prekey store: one signed prekey and one last-resort ML-KEM prekey (no rotation in
    the vectors), one-time prekeys and one-time ML-KEM prekeys, remembered base keys."""

    def __init__(self, identity, spk_secret, last_resort_seed, now, before_pq_ratchet=True):
        # 10.2: a new store has signed prekey 1 (next 2), ML-KEM prekey 0x8000_0001 as its
        # last-resort key (next 0x8000_0002), no one-time prekeys (next one-time id 1); a store
        # from before the post-quantum ratchet (5.3), as most vectors' stores are, numbered its
        # ML-KEM prekeys from 1 instead. 11: secret (32) then seed (64).
        first_kem = 1 if before_pq_ratchet else PQ_BIT + 1
        self.identity = identity
        self.config = list(PREKEY_CONFIG)
        self.spk = SignedPreKey(identity, 1, spk_secret, now)
        self.retired_spks = []
        self.last_resort = KemPreKey(identity, first_kem, last_resort_seed, now)
        self.retired_last_resort = []
        self.next_spk_id, self.next_opk_id, self.next_kem_id = 2, 1, first_kem + 1
        self.opks = {}       # id -> secret
        self.kems = {}       # id -> KemPreKey (one-time)
        self.base_keys = {1: set()}

    def add_one_time_prekey(self, secret):
        opk_id = self.next_opk_id
        self.opks[opk_id] = secret
        self.next_opk_id += 1
        return opk_id

    def add_one_time_kem_prekey(self, seed, now):
        kem_id = self.next_kem_id
        self.kems[kem_id] = KemPreKey(self.identity, kem_id, seed, now)
        self.next_kem_id += 1
        return kem_id

    def release(self, opk_id, kem_id):
        """18.6: a retry request's minted prekeys, deleted when the retry ends or is asked again
        (unless a session consumed them)."""
        self.opks.pop(opk_id, None)
        self.kems.pop(kem_id, None)

    def kem_prekey(self, kem_id):
        """A one-time ML-KEM prekey, else the (current) last-resort one."""
        if kem_id in self.kems:
            return self.kems[kem_id]
        if kem_id != self.last_resort.id:
            raise ProtocolError(f"UnknownKemPreKey({kem_id})")
        return self.last_resort

    def bundle(self, opk_id, kem_id):
        """6: the bundle carrying one-time prekey opk_id (or none) and ML-KEM prekey kem_id."""
        kem = self.kem_prekey(kem_id)
        opk = None if opk_id is None else u32(opk_id) + x25519_pub(self.opks[opk_id])
        return (b"\x02\x01" + self.identity.public
                + u32(self.spk.id) + self.spk.public + self.spk.signature
                + opt(opk) + u32(kem.id) + kem.public + kem.signature)

    def upload(self):
        """6.1"""
        out = b"\x02\x10" + u32(len(self.opks))
        out += b"".join(u32(i) + x25519_pub(self.opks[i]) for i in sorted(self.opks))
        out += u32(len(self.kems))
        out += b"".join(u32(i) + self.kems[i].public + self.kems[i].signature for i in sorted(self.kems))
        return out

    def core(self):
        return prekey_core(self.config, self.next_spk_id, self.next_opk_id, self.spk, self.retired_spks,
                           self.next_kem_id, self.last_resort, self.retired_last_resort)

    def to_bytes(self):
        """10.2 prekey store state."""
        out = b"\x02\x82" + self.core()
        out += u32(len(self.opks))
        out += b"".join(u32(i) + self.opks[i] + x25519_pub(self.opks[i]) for i in sorted(self.opks))
        out += u32(len(self.kems)) + b"".join(self.kems[i].to_bytes() for i in sorted(self.kems))
        for spk in [self.spk] + self.retired_spks:
            keys = sorted(self.base_keys.get(spk.id, ()))
            out += u32(len(keys)) + b"".join(keys)
        return out


def decode_bundle(data):
    """6, with its key checks (5.1 and the FIPS 203 check)."""
    r = Reader(data)
    r.head(2, 0x01)
    b = {"ik": r.take(32), "spk_id": r.u32(), "spk": r.take(32), "spk_sig": r.take(64)}
    opk = r.opt(36)
    b["opk_id"] = None if opk is None else int.from_bytes(opk[:4], "big")
    b["opk"] = None if opk is None else opk[4:]
    b["kem_id"], b["kem_pk"], b["kem_sig"] = r.u32(), r.take(1568), r.take(64)
    r.end()
    if not ed25519_key_valid(b["ik"]) or not kem_ek_check(b["kem_pk"]):
        raise DecodeError("InvalidKey")
    if not x25519_canonical(b["spk"]) or (b["opk"] is not None and not x25519_canonical(b["opk"])):
        raise DecodeError("InvalidKey")  # 2: non-canonical X25519 keys, wherever decoded
    return b


def verify_bundle(b):
    """6: both signatures under IK, the signed prekey's first."""
    if not verify(b["ik"], L_SIGNED_PREKEY + u32(b["spk_id"]) + b["spk"], b["spk_sig"]):
        raise ProtocolError("BadSignedPreKeySignature")
    if not verify(b["ik"], L_KEM_PREKEY + u32(b["kem_id"]) + b["kem_pk"], b["kem_sig"]):
        raise ProtocolError("BadKemPreKeySignature")


# ----------------------------------------------------------------------------------------------
# 7. PQXDH
# ----------------------------------------------------------------------------------------------

def pqxdh_shared_secret(dh1, dh2, dh3, dh4, ss):
    """7.3"""
    ikm = b"\xff" * 32 + dh1 + dh2 + dh3 + (dh4 or b"") + ss
    return hkdf(bytes(32), ikm, L_PQXDH, 32)


def pqxdh_initiate(identity_a, bundle, ek, m):
    """7.1 steps 2-5 (the bundle verified already), with the draws ek and m given."""
    x = {"ek": ek, "EK_A": x25519_pub(ek)}
    ikx_b = edwards_to_montgomery(bundle["ik"])
    x["dh1"] = x25519(identity_a.x_secret, bundle["spk"])
    x["dh2"] = x25519(ek, ikx_b)
    x["dh3"] = x25519(ek, bundle["spk"])
    x["dh4"] = None if bundle["opk"] is None else x25519(ek, bundle["opk"])
    x["CT"], x["SS"] = kem_encaps(bundle["kem_pk"], m)
    x["SK"] = pqxdh_shared_secret(x["dh1"], x["dh2"], x["dh3"], x["dh4"], x["SS"])
    x["AD"] = identity_a.public + bundle["ik"]
    return x


def pqxdh_respond(identity_b, spk_secret, opk_secret, kem_seed, pm):
    """7.2 steps 4-6 for a decoded pre-key message pm (the prekeys already found)."""
    ikx_a = edwards_to_montgomery(pm["ik_a"])
    dh1 = x25519(spk_secret, ikx_a)
    dh2 = x25519(identity_b.x_secret, pm["ek_a"])
    dh3 = x25519(spk_secret, pm["ek_a"])
    dh4 = None if opk_secret is None else x25519(opk_secret, pm["ek_a"])
    ss = kem_decaps(kem_seed, pm["ct"])
    return pqxdh_shared_secret(dh1, dh2, dh3, dh4, ss), ss


# ----------------------------------------------------------------------------------------------
# 8. Double Ratchet
# ----------------------------------------------------------------------------------------------

def kdf_rk(rk, dh, epoch_secret=None):
    """8.2 KDF_RK(RK, dh [, S]): (new RK, CK); S (the chain's post-quantum epoch secret, 25.4)
    is appended to the ikm only for an epoch of 1 or more (None otherwise)."""
    okm = hkdf(rk, dh + (epoch_secret or b""), L_ROOT, 64)
    return okm[:32], okm[32:]


def kdf_ck(ck):
    """8.2 KDF_CK: (MK, next CK)."""
    return hmac_sha256(ck, b"\x01"), hmac_sha256(ck, b"\x02")


def message_keys(mk, salt, info=L_MESSAGE_KEYS):
    """8.2 message key expansion (14.3 with the group label): (key, nonce)."""
    okm = hkdf(salt, mk, info, 44)
    return okm[:32], okm[32:]


def ratchet_header(dh_public, pn, n, salt, ext=b""):
    """8.4 (ext: 25.5's extension with pq; without it, empty, and the field is 0x00 0x00)"""
    return b"\x02\x02" + dh_public + u32(pn) + u32(n) + salt + (ext or b"\x00\x00")


def decode_ratchet_message(data):
    """9.1 (8.4: the extension field's top bit says whether 25.5's extension is there, its next
    bit whether a chunk follows; without the top bit the field is 0x00 0x00 and ext is empty;
    whether ext may be empty is the session's to judge)"""
    r = Reader(data)
    r.head(2, 0x02)
    m = {"key": r.take(32), "pn": r.u32(), "n": r.u32(), "salt": r.take(16)}
    if not x25519_canonical(m["key"]):
        raise DecodeError("InvalidKey")  # 2
    first, second = r.u8(), r.u8()
    if first & 0x80 == 0:
        if (first, second) != (0, 0):
            raise DecodeError("InvalidValue")
        m["ext"] = b""
    else:
        m["ext"] = u8(first) + u8(second) + r.take(32 if first & 0x40 else 0)
    m["header"], m["ct"] = bytes(data[:58 + max(2, len(m["ext"]))]), r.rest()
    if len(m["ct"]) < 16:
        raise DecodeError("Truncated")
    return m


def prekey_message(origin_ik, origin, ct, ratchet_message):
    """9.2"""
    ek_a, spk_id, opk_id, (kem_id, _) = origin
    return (b"\x02\x03" + origin_ik + ek_a + u32(spk_id)
            + opt(None if opk_id is None else u32(opk_id)) + u32(kem_id) + ct + ratchet_message)


def decode_prekey_message(data):
    """9.2"""
    r = Reader(data)
    r.head(2, 0x03)
    pm = {"ik_a": r.take(32), "ek_a": r.take(32), "spk_id": r.u32()}
    opk = r.opt(4)
    pm["opk_id"] = None if opk is None else int.from_bytes(opk, "big")
    pm["kem_id"], pm["ct"] = r.u32(), r.take(1568)
    if not ed25519_key_valid(pm["ik_a"]) or not x25519_canonical(pm["ek_a"]):
        raise DecodeError("InvalidKey")  # 9.2 (5.1), and 2 for EK_A
    pm["ratchet"] = decode_ratchet_message(r.rest())
    pm["origin"] = (pm["ek_a"], pm["spk_id"], pm["opk_id"], (pm["kem_id"], H(pm["ct"])))
    return pm


def decode_pairwise_message(data):
    """9.1 or 9.2: ("ratchet", message) or ("prekey", message)."""
    if len(data) >= 2 and data[0] == 2 and data[1] == 3:
        return "prekey", decode_prekey_message(data)
    return "ratchet", decode_ratchet_message(data)


class Session:
    """8.1's session state, 8.3-8.6's operations, 10.3's encoding."""

    pq = None  # 8.1: the post-quantum ratchet's state (25.3), when the origin's kem_id has bit 31

    @classmethod
    def initiate(cls, identity_a, bundle, ek, m, r):
        """7.1 then 8.3 (initiator), with the draws ek, m, r given in that order (11)."""
        x = pqxdh_initiate(identity_a, bundle, ek, m)
        s = cls()
        s.role, s.ik_local, s.ik_remote, s.ad = "initiator", identity_a.public, bundle["ik"], x["AD"]
        s.origin = (x["EK_A"], bundle["spk_id"], bundle["opk_id"], (bundle["kem_id"], H(x["CT"])))
        s.pending_ct, s.awaiting_reply = x["CT"], True
        s.dhs_secret, s.dhs_public, s.dhr = r, x25519_pub(r), bundle["spk"]
        x["dh_ratchet"] = x25519(r, bundle["spk"])
        s.rk, ck = kdf_rk(x["SK"], x["dh_ratchet"])
        s.send, s.pn, s.recv, s.skipped = [ck, 0], 0, None, []
        s.pq = PqRatchet(initiator=True) if pq_kem_id(bundle["kem_id"]) else None  # 8.1, 25.3
        return s, x

    @classmethod
    def respond(cls, identity_b, spk, sk, pm, context=b""):
        """8.3 (responder, after 7.2) then 8.6 on the pre-key message's ratchet message."""
        s = cls()
        s.role, s.ik_local, s.ik_remote = "responder", identity_b.public, pm["ik_a"]
        s.ad = pm["ik_a"] + identity_b.public
        s.origin, s.pending_ct, s.awaiting_reply = pm["origin"], None, False
        s.rk, s.dhs_secret, s.dhs_public, s.dhr = sk, spk.secret, spk.public, pm["ratchet"]["key"]
        s.send, s.pn, s.recv, s.skipped = None, 0, None, []
        # 8.3, 25.6: the bit, and an extension in the first message (none: an initiator from
        # before the ratchet, and the session runs without it).
        runs = pq_kem_id(pm["kem_id"]) and pm["ratchet"].get("ext", b"") != b""
        s.pq = PqRatchet(initiator=False) if runs else None  # 8.1, 25.3
        plaintext = s.decrypt(pm["ratchet"], context)
        return s, plaintext

    def continues(self, pm):
        """8.6, last paragraph: a pre-key message for this (responder) session."""
        return self.role == "responder" and pm["origin"] == self.origin

    def encrypt(self, plaintext, draws, context=b""):
        """8.5; draws(n, name) supplies the RNG output. Returns the details and the wire bytes."""
        out = {}
        if self.send is None:  # step 1
            r = draws(32, "ratchet_secret")
            self.dhs_secret, self.dhs_public = r, x25519_pub(r)
            epoch_secret = None
            if self.pq is not None:  # 25.4 BeginSendChain
                _, epoch_secret = self.pq.begin_send_chain()
            self.rk, ck = kdf_rk(self.rk, x25519(r, self.dhr), epoch_secret)
            self.send = [ck, 0]
        if self.send[1] == CHAIN_END:  # step 2
            raise ProtocolError("ChainExhausted")
        salt = draws(16, "salt")  # step 3
        out["ext"] = b"" if self.pq is None else self.pq.send(draws)  # 25.4 Send, after the salt
        out["chain_key"] = self.send[0]
        out["message_key"], next_ck = kdf_ck(self.send[0])
        out["aes_key"], out["nonce"] = message_keys(out["message_key"], salt)
        out["header"] = ratchet_header(self.dhs_public, self.pn, self.send[1], salt, out["ext"])
        ct = aead_seal(out["aes_key"], out["nonce"], self.ad + out["header"] + context, plaintext)
        wire = out["header"] + ct  # step 4
        if self.awaiting_reply:
            if self.pending_ct is None:
                raise ProtocolError("NotPostQuantum")
            wire = prekey_message(self.ik_local, self.origin, self.pending_ct, wire)
        out["wire"] = wire
        self.send = [next_ck, self.send[1] + 1]  # step 5
        return out

    def renew(self):
        """8.5 Renewal: a state restored from a stale copy gives up its sending chain."""
        if self.send is not None:
            self.pn, self.send = self.send[1], None

    def decrypt(self, msg, context=b""):
        """8.6 on a decoded ratchet message; state changes only if it opens."""
        s = copy.deepcopy(self)
        k, pn, n, salt = msg["key"], msg["pn"], msg["n"], msg["salt"]
        aad = s.ad + msg["header"] + context
        # 8.4: the extension against the session, then (25.5) decoded, before any key
        ext = msg.get("ext", b"")
        if s.pq is None and ext:
            raise DecodeError("InvalidValue")
        if s.pq is not None and not ext:
            raise ProtocolError("NotPostQuantum")
        chain_nibble, chunk = decode_pq_ext(ext) if s.pq is not None else (None, None)
        if (s.pq is not None and s.recv is not None and k == s.recv[0]
                and chain_nibble != s.pq.c_recv % 16):
            raise DecodeError("InvalidValue")  # 8.6: a message of the chain names its epoch
        for i, (sk_key, sk_n, sk_mk) in enumerate(s.skipped):  # step 1
            if sk_key == k and sk_n == n:
                key, nonce = message_keys(sk_mk, salt)
                plaintext = aead_open(key, nonce, aad, msg["ct"])
                del s.skipped[i]
                s.awaiting_reply, s.pending_ct = False, None
                if s.pq is not None and s.recv is not None and k == s.recv[0]:
                    s.pq.receive(s.pq.c_recv, chunk)
                self.__dict__ = s.__dict__
                return plaintext
        if n == CHAIN_END:  # step 2
            raise ProtocolError("ChainExhausted")
        recorded, new_rk = [], None
        if s.recv is not None and k == s.recv[0]:  # step 3
            kr, ck, nr = s.recv
            if n < nr:
                raise ProtocolError("Duplicate")
            if n - nr > s.max_forward_jump:
                raise ProtocolError(f"TooFarAhead {{ requested: {n - nr}, limit: {s.max_forward_jump} }}")
            for i in range(nr, n):
                mk_i, ck = kdf_ck(ck)
                recorded.append((kr, i, mk_i))
        else:  # step 4
            tail = max(0, pn - s.recv[2]) if s.recv is not None else 0
            restored = s.recv is not None and pn < s.recv[2]  # the sender forgot some of it
            if tail + n > s.max_forward_jump:
                raise ProtocolError(f"TooFarAhead {{ requested: {tail + n}, limit: {s.max_forward_jump} }}")
            if s.recv is not None:
                kr, ck, nr = s.recv
                for i in range(nr, nr + tail):
                    mk_i, ck = kdf_ck(ck)
                    recorded.append((kr, i, mk_i))
            epoch, epoch_secret = None, None
            if s.pq is not None:  # 25.4 ResolveRecvChain
                epoch, epoch_secret = s.pq.resolve_recv_chain(chain_nibble)
            new_rk, ck = kdf_rk(s.rk, x25519(s.dhs_secret, k), epoch_secret)
            for i in range(n):
                mk_i, ck = kdf_ck(ck)
                recorded.append((k, i, mk_i))
        mk, ck_after = kdf_ck(ck)
        key, nonce = message_keys(mk, salt)  # step 5
        plaintext = aead_open(key, nonce, aad, msg["ct"])
        if new_rk is not None:  # step 6
            s.rk, s.dhr = new_rk, k
            if s.send is not None:
                s.pn, s.send = s.send[1], None
        s.recv = (k, ck_after, n + 1)
        s.skipped += recorded
        while len(s.skipped) > s.max_skipped_keys:
            s.skipped.pop(0)
        s.awaiting_reply, s.pending_ct = False, None
        if s.pq is not None:
            if new_rk is not None:
                if restored:
                    s.pq.peer_restored()
                s.pq.enter_recv_chain(epoch)
            s.pq.receive(s.pq.c_recv, chunk)
        self.__dict__ = s.__dict__
        return plaintext

    max_forward_jump, max_skipped_keys = MAX_FORWARD_JUMP, MAX_SKIPPED_KEYS

    def to_bytes(self, detached=False):
        """10.3; `detached`: the form of a device's sessions record (19.1), the pending KEM
        ciphertext written as absent (it has a record of its own, kind 0x13)."""
        ek_a, spk_id, opk_id, kem = self.origin
        version = b"\x02" if self.pq is None else b"\x03"  # 10.3: version 3 with pq
        out = version + b"\x81" + u32(self.max_forward_jump) + u32(self.max_skipped_keys)
        out += u8(0 if self.role == "initiator" else 1) + self.ik_local + self.ik_remote
        out += ek_a + u32(spk_id) + opt(None if opk_id is None else u32(opk_id))
        out += opt(None if kem is None else u32(kem[0]) + kem[1])
        out += opt(None if detached else self.pending_ct) + flag(self.awaiting_reply)
        out += self.rk + self.dhs_secret + self.dhs_public + self.dhr
        out += opt(None if self.send is None else self.send[0] + u32(self.send[1]))
        out += u32(self.pn)
        out += opt(None if self.recv is None else self.recv[0] + self.recv[1] + u32(self.recv[2]))
        out += u32(len(self.skipped)) + b"".join(k + u32(n) + mk for k, n, mk in self.skipped)
        if self.pq is not None:  # version 3: followed by pq_state (25.3)
            out += self.pq.to_bytes()
        return out


def accept_prekey_message(identity, store, pm, context=b""):
    """7.2 steps 1-6 and 8.3/8.6 for a new session; the store changes only once the first
    message decrypted (7.2, last paragraph). Returns (session, plaintext)."""
    if pm["spk_id"] != store.spk.id:
        raise ProtocolError(f"UnknownSignedPreKey({pm['spk_id']})")
    if pm["ek_a"] in store.base_keys[store.spk.id]:
        raise ProtocolError("Replayed")
    opk = None
    if pm["opk_id"] is not None:
        if pm["opk_id"] not in store.opks:
            raise ProtocolError(f"UnknownOneTimePreKey({pm['opk_id']})")
        opk = store.opks[pm["opk_id"]]
    if pm["kem_id"] in store.kems:
        kem = store.kems[pm["kem_id"]]
    elif pm["kem_id"] == store.last_resort.id:
        kem = store.last_resort
        if kem.uses >= store.config[4]:
            raise ProtocolError(f"LastResortExhausted({kem.id})")
    else:
        raise ProtocolError(f"UnknownKemPreKey({pm['kem_id']})")
    sk, _ = pqxdh_respond(identity, store.spk.secret, opk, kem.seed, pm)
    session, plaintext = Session.respond(identity, store.spk, sk, pm, context)
    if pm["opk_id"] is not None:
        del store.opks[pm["opk_id"]]
    if kem is store.last_resort:
        kem.uses += 1
    else:
        del store.kems[kem.id]
    store.base_keys[store.spk.id].add(pm["ek_a"])
    return session, plaintext


# ----------------------------------------------------------------------------------------------
# 25. The post-quantum ratchet
# ----------------------------------------------------------------------------------------------

L_PQ_EPOCH = b"ratchetry v1 pq epoch"
PQ_BIT = 0x8000_0000  # 5.3: bit 31 of kem_id


def pq_kem_id(kem_id):
    """5.3 / 8.1: a session started with this KEM prekey id runs the post-quantum ratchet."""
    return kem_id is not None and kem_id >= PQ_BIT


# --- 25.1 Erasure code: GF(2^8) reduced by x^8 + x^4 + x^3 + x^2 + 1 (0x11d) ---

def gf_mul(a, b):
    """Multiplication in GF(2^8) mod 0x11d, shift and add."""
    p = 0
    while b:
        if b & 1:
            p ^= a
        a <<= 1
        if a & 0x100:
            a ^= 0x11d
        b >>= 1
    return p


def gf_inv(a):
    """a^254 = a^-1 (a != 0)."""
    out, base, e = 1, a, 254
    while e:
        if e & 1:
            out = gf_mul(out, base)
        base = gf_mul(base, base)
        e >>= 1
    return out


_GF_ROWS = {}


def _gf_scale(w, data):
    """w * each byte of data (a translation table per w)."""
    row = _GF_ROWS.get(w)
    if row is None:
        row = _GF_ROWS[w] = bytes(gf_mul(w, x) for x in range(256))
    return data.translate(row)


_LAGRANGE = {}


def lagrange_weights(points, at):
    """The weights w_j with p(at) = sum_j w_j p(points[j]) for every p of degree below
    len(points): w_j = prod_{m != j} (at - x_m) / (x_j - x_m), subtraction being XOR."""
    key = (tuple(points), at)
    if key not in _LAGRANGE:
        ws = []
        for j, xj in enumerate(points):
            w = 1
            for m, xm in enumerate(points):
                if m != j:
                    w = gf_mul(w, gf_mul(at ^ xm, gf_inv(xj ^ xm)))
            ws.append(w)
        _LAGRANGE[key] = ws
    return _LAGRANGE[key]


def _interpolate(points, symbols, at):
    """sum_j w_j * symbols[j], bytewise."""
    acc = 0
    for w, sym in zip(lagrange_weights(points, at), symbols):
        acc ^= int.from_bytes(_gf_scale(w, sym), "big")
    return acc.to_bytes(32, "big")


def erasure_chunk(payload, index):
    """25.1: chunk `index` (0..63) of a payload of k 32-byte symbols: p_b(index) for each byte
    position b, p_b of degree below k through (j, P_j[b]), j < k."""
    k = len(payload) // 32
    symbols = [payload[32 * j:32 * (j + 1)] for j in range(k)]
    if index < k:
        return symbols[index]
    return _interpolate(list(range(k)), symbols, index)


def erasure_decode(chunks, k):
    """25.1: the payload from any k distinct (index, chunk) pairs (Lagrange interpolation)."""
    chunks = sorted(chunks)[:k]
    points, symbols = [i for i, _ in chunks], [c for _, c in chunks]
    return b"".join(_interpolate(points, symbols, j) for j in range(k))


PQ_HEADER, PQ_VECTOR, PQ_CT1, PQ_CT2 = 0, 1, 2, 3  # 25.1's kind bits
PQ_K = {PQ_HEADER: 2, PQ_VECTOR: 36, PQ_CT1: 30, PQ_CT2: 4}
PQ_KIND_NAMES = {PQ_HEADER: "header", PQ_VECTOR: "vector", PQ_CT1: "ct1", PQ_CT2: "ct2"}
U32_MAX = 2 ** 32 - 1


class Collector:
    """25.1: the first k distinct indexes received for one payload, kept ascending."""

    def __init__(self, kind):
        self.k, self.chunks = PQ_K[kind], {}

    def add(self, index, chunk):
        if len(self.chunks) < self.k and index not in self.chunks:
            self.chunks[index] = chunk

    def complete(self):
        return len(self.chunks) == self.k

    def decode(self):
        return erasure_decode(self.chunks.items(), self.k)

    def to_bytes(self):  # 25.3 collector
        return u8(len(self.chunks)) + b"".join(u8(i) + self.chunks[i] for i in sorted(self.chunks))


def pq_header_payload(ek):
    """25.1 header: rho || H3(ek) = ek[1152..1184] || SHA3-256(ek)."""
    return ek[1152:1184] + hashlib.sha3_256(ek).digest()


def pq_epoch_secret(previous, ss, x):
    """25.2: S_x = HKDF(salt = S_{x-1} (all-zero for x = 1), ss_x, label || u32(x), 32)."""
    return hkdf(previous if previous is not None else bytes(32), ss, L_PQ_EPOCH + u32(x), 32)


def pq_resolve(base, nibble):
    """25.4 resolve(base, n): the v = n (mod 16) with base <= v < base + 16."""
    return base + ((nibble - base) % 16)


def pq_ext(chain, chunk=None):
    """25.5: chunk is None or (d, kind, index, 32 bytes), the chunk's epoch being chain + d."""
    if chunk is None:
        return u8(0x80 | (chain % 16) << 2) + u8(0)
    d, kind, index, data = chunk
    return u8(0xc0 | (chain % 16) << 2 | d) + u8(kind << 6 | index) + data


def decode_pq_ext(ext):
    """25.5: (chain nibble, None or (d, kind, index, chunk)); InvalidValue otherwise."""
    if len(ext) == 2 and ext[0] & 0xc3 == 0x80 and ext[1] == 0:
        return (ext[0] >> 2) & 15, None
    if len(ext) == 34 and ext[0] & 0xc0 == 0xc0:
        return (ext[0] >> 2) & 15, (ext[0] & 3, ext[1] >> 6, ext[1] & 0x3f, ext[2:])
    raise DecodeError("InvalidValue")


class Publication:
    """25.3: this side's publication of e + 1."""

    def __init__(self, seed):
        self.seed = seed
        self.ek = kem768_keygen(seed)  # 25.2: ek = KEM768.KeyGen(seed)
        self.sent = {PQ_HEADER: 0, PQ_VECTOR: 0}
        self.acked = {PQ_HEADER: False, PQ_VECTOR: False}
        self.ct = {PQ_CT1: Collector(PQ_CT1), PQ_CT2: Collector(PQ_CT2)}

    def payload(self, kind):
        return pq_header_payload(self.ek) if kind == PQ_HEADER else self.ek[:1152]

    def to_bytes(self):
        return (self.seed
                + u32(self.sent[PQ_HEADER]) + flag(self.acked[PQ_HEADER])
                + u32(self.sent[PQ_VECTOR]) + flag(self.acked[PQ_VECTOR])
                + self.ct[PQ_CT1].to_bytes() + self.ct[PQ_CT2].to_bytes())


class Encapsulation:
    """25.3: this side's encapsulation of e, until acknowledged. c1 and ss from the header alone
    (rho, H3(ek)); c2 once the vector is complete and checked (25.2)."""

    def __init__(self, m, header, vector):
        self.m, self.header, self.vector = m, header, vector
        self.sent = {PQ_CT1: 0, PQ_CT2: 0}
        self.c1, self.ss = kem_encaps_c1(header[:32], header[32:], m, ML_KEM_768)
        self.c2 = None
        self.vector_refused = False
        self.peer_wants_ct1 = False
        self.vector_changed()

    def vector_changed(self):
        if self.c2 is not None or self.vector_refused or not self.vector.complete():
            return
        t = self.vector.decode()
        # 25.2: t || rho must hash to the header's H3(ek) and pass FIPS 203's modulus check
        if (hashlib.sha3_256(t + self.header[:32]).digest() != self.header[32:]
                or not kem_ek_check(t + self.header[:32], ML_KEM_768)):
            self.vector_refused = True
            return
        self.c2 = kem_encaps_c2(t, self.header[32:], self.m, ML_KEM_768)

    def payload(self, kind):
        return self.c1 if kind == PQ_CT1 else self.c2

    def to_bytes(self):
        return (self.m + self.header + self.vector.to_bytes() + u32(self.sent[PQ_CT1])
                + u32(self.sent[PQ_CT2]) + flag(self.peer_wants_ct1))


class PqRatchet:
    """25.2-25.4: one side's post-quantum ratchet state and operations, 25.3's encoding."""

    def __init__(self, initiator):
        self.initiator = initiator
        self.e = self.peer_knows = self.c_send = self.c_recv = 0
        self.secrets = {}  # x -> S_x
        self.publication = None
        self.encapsulation = None
        self.incoming = {PQ_HEADER: Collector(PQ_HEADER), PQ_VECTOR: Collector(PQ_VECTOR)}
        self.heard = self.missed = 0

    def sends(self, k):
        """25.4 step 3: chunks of a k-symbol payload to send before waiting for word of it."""
        total = self.heard + self.missed
        if total == 0:
            return k
        if self.heard == 0:
            return 64
        return min(64, -(-k * total // self.heard))

    def note(self, collector, index):
        """25.4 Receive, Loss: count a chunk about to go to `collector`."""
        if collector.complete() or index in collector.chunks:
            return
        if not collector.chunks:
            self.missed += index
        elif index < max(collector.chunks):
            self.missed = max(0, self.missed - 1)
        else:
            self.missed += index - max(collector.chunks) - 1
        self.heard += 1
        if self.heard + self.missed >= 128:
            self.heard, self.missed = self.heard // 2, self.missed // 2

    def publishes(self, x):
        """25.2: the initiator publishes odd epochs, the responder even ones."""
        return (x % 2 == 1) == self.initiator

    def incoming_epoch(self):
        """25.3: p = e + 1 if the peer publishes e + 1, else e + 2."""
        return self.e + 1 if not self.publishes(self.e + 1) else self.e + 2

    def oldest(self):
        return max(1, min(self.c_recv, self.peer_knows), self.e - 15)

    def prune(self):
        """25.3: after every change, secrets drops the epochs below oldest."""
        for x in [x for x in self.secrets if x < self.oldest()]:
            del self.secrets[x]

    def advance(self, ss):
        """25.2: S_{e+1} derived and e grows by one."""
        x = self.e + 1
        self.secrets[x] = pq_epoch_secret(self.secrets.get(self.e) if self.e >= 1 else None, ss, x)
        self.e = x

    def begin_send_chain(self):
        """25.4 BeginSendChain."""
        self.c_send = self.peer_knows
        return self.c_send, self.secrets[self.c_send] if self.c_send >= 1 else None

    def resolve_recv_chain(self, nibble):
        """25.4 ResolveRecvChain (8.6: failure is AuthenticationFailed); changes nothing."""
        c = pq_resolve(self.c_recv, nibble)
        if c > self.e or (c >= 1 and c not in self.secrets):
            raise ProtocolError("AuthenticationFailed")
        return c, self.secrets.get(c)

    def enter_recv_chain(self, c):
        self.c_recv = c
        self.prune()

    def schedule(self):
        """25.4 Send step 3: the payload to send a chunk of (a kind), or None."""
        enc, pub = self.encapsulation, self.publication
        ready = enc is not None and enc.c2 is not None
        if ready and not enc.peer_wants_ct1 and enc.sent[PQ_CT2] < self.sends(4):  # a
            return PQ_CT2
        if enc is not None and enc.sent[PQ_CT1] < self.sends(30):  # b
            return PQ_CT1
        if pub is not None and not pub.acked[PQ_HEADER] and (  # c
                pub.sent[PQ_HEADER] < self.sends(2) or self.c_recv >= self.e):
            return PQ_HEADER
        if enc is not None and (ready or enc.peer_wants_ct1):  # d
            return PQ_CT1 if enc.peer_wants_ct1 else PQ_CT2
        if pub is not None and not pub.acked[PQ_VECTOR]:  # e
            return PQ_VECTOR
        if pub is not None and pub.ct[PQ_CT2].complete() and not pub.ct[PQ_CT1].complete():  # f
            return PQ_HEADER
        if enc is not None:  # g
            return PQ_CT1
        return None  # h

    def send(self, draws):
        """25.4 Send(): the extension (25.5) of the next message; draws m (32), then a seed (64)."""
        if not self.publishes(self.e + 1) and self.incoming[PQ_HEADER].complete():  # 1
            m = draws(32, "pq_m")
            self.encapsulation = Encapsulation(m, self.incoming[PQ_HEADER].decode(),
                                               self.incoming[PQ_VECTOR])
            self.incoming = {PQ_HEADER: Collector(PQ_HEADER), PQ_VECTOR: Collector(PQ_VECTOR)}
            self.advance(self.encapsulation.ss)
        if self.publication is None and self.publishes(self.e + 1):  # 2
            self.publication = Publication(draws(64, "pq_seed"))
        chunk, kind = None, self.schedule()  # 3
        if kind is not None:
            owner = self.encapsulation if kind in (PQ_CT1, PQ_CT2) else self.publication
            x = self.e if kind in (PQ_CT1, PQ_CT2) else self.e + 1
            if self.c_send <= x < self.c_send + 4:
                index = (owner.sent[kind] + owner.sent[kind] // 64) % 64
                chunk = (x - self.c_send, kind, index, erasure_chunk(owner.payload(kind), index))
                owner.sent[kind] = min(owner.sent[kind] + 1, U32_MAX)
        self.prune()
        return pq_ext(self.c_send, chunk)  # 4

    def peer_restored(self):
        """25.4 PeerRestored(): what was collected from the peer and not used starts again."""
        if self.publication is not None:
            self.publication.ct = {PQ_CT1: Collector(PQ_CT1), PQ_CT2: Collector(PQ_CT2)}
            self.publication.acked = {PQ_HEADER: False, PQ_VECTOR: False}
        self.incoming = {PQ_HEADER: Collector(PQ_HEADER), PQ_VECTOR: Collector(PQ_VECTOR)}

    def receive(self, c, chunk):
        """25.4 Receive(c, ext) for a decoded chunk (None: nothing)."""
        if chunk is None:
            if self.encapsulation is not None:
                self.encapsulation.peer_wants_ct1 = False
            return
        d, kind, index, data = chunk
        x = c + d
        if x - 1 <= self.e:
            self.peer_knows = max(self.peer_knows, x - 1)
        if kind in (PQ_HEADER, PQ_VECTOR):
            enc = self.encapsulation
            if kind == PQ_HEADER and x == self.e and enc is not None:
                enc.peer_wants_ct1 = enc.sent[PQ_CT2] >= 4 or enc.sent[PQ_CT1] >= self.sends(30)
            elif kind == PQ_VECTOR and x == self.e and enc is not None:
                enc.peer_wants_ct1 = False
                self.note(enc.vector, index)
                enc.vector.add(index, data)
                enc.vector_changed()
            elif x == self.incoming_epoch():
                self.note(self.incoming[kind], index)
                self.incoming[kind].add(index, data)
        elif x == self.e + 1:
            self.encapsulation = None  # acknowledged: the peer has decapsulated e
            pub = self.publication
            if pub is not None:
                pub.acked[PQ_HEADER if kind == PQ_CT1 else PQ_VECTOR] = True
                self.note(pub.ct[kind], index)
                pub.ct[kind].add(index, data)
                if pub.ct[PQ_CT1].complete() and pub.ct[PQ_CT2].complete():
                    ss = kem768_decaps(pub.seed, pub.ct[PQ_CT1].decode() + pub.ct[PQ_CT2].decode())
                    self.publication = None
                    self.peer_knows = self.e + 1
                    self.advance(ss)
        self.prune()

    def to_bytes(self):
        """25.3 pq_state."""
        out = u32(self.e) + u32(self.peer_knows) + u32(self.c_send) + u32(self.c_recv)
        out += u8(len(self.secrets)) + b"".join(u32(x) + self.secrets[x] for x in sorted(self.secrets))
        out += opt(None if self.publication is None else self.publication.to_bytes())
        out += opt(None if self.encapsulation is None else self.encapsulation.to_bytes())
        out += self.incoming[PQ_HEADER].to_bytes() + self.incoming[PQ_VECTOR].to_bytes()
        return out + u16(self.heard) + u16(self.missed)


def decode_collector(r, kind):
    """25.3 collector: c <= k entries, indexes strictly ascending and below 64."""
    col, n, last = Collector(kind), r.u8(), -1
    if n > col.k:
        raise DecodeError("InvalidValue")
    for _ in range(n):
        index, chunk = r.u8(), r.take(32)
        if index <= last or index >= 64:
            raise DecodeError("InvalidValue")
        col.chunks[index], last = chunk, index
    return col


def decode_pq_state(data, initiator):
    """25.3 pq_state with its refusals (InvalidValue); the role comes from the session (10.3)."""
    r = Reader(data)
    pq = PqRatchet(initiator)
    pq.e, pq.peer_knows, pq.c_send, pq.c_recv = r.u32(), r.u32(), r.u32(), r.u32()
    if (pq.e > 2 ** 32 - 65 or pq.peer_knows > pq.e or pq.c_send > pq.peer_knows
            or pq.c_recv > pq.e):
        raise DecodeError("InvalidValue")
    n = r.u8()
    xs = []
    for _ in range(n):
        x = r.u32()
        pq.secrets[x] = r.take(32)
        xs.append(x)
    if xs != (list(range(pq.oldest(), pq.e + 1)) if pq.e >= 1 else []):
        raise DecodeError("InvalidValue")
    if r.flag():
        if not pq.publishes(pq.e + 1):
            raise DecodeError("InvalidValue")
        pub = Publication(r.take(64))
        for kind in (PQ_HEADER, PQ_VECTOR):
            pub.sent[kind], pub.acked[kind] = r.u32(), r.flag()
        pub.ct = {PQ_CT1: decode_collector(r, PQ_CT1), PQ_CT2: decode_collector(r, PQ_CT2)}
        pq.publication = pub
    if r.flag():
        if pq.e == 0 or pq.publishes(pq.e):
            raise DecodeError("InvalidValue")
        m, header = r.take(32), r.take(64)
        enc = Encapsulation(m, header, decode_collector(r, PQ_VECTOR))
        enc.sent[PQ_CT1], enc.sent[PQ_CT2] = r.u32(), r.u32()
        enc.peer_wants_ct1 = r.flag()
        pq.encapsulation = enc
    pq.incoming = {PQ_HEADER: decode_collector(r, PQ_HEADER), PQ_VECTOR: decode_collector(r, PQ_VECTOR)}
    pq.heard, pq.missed = r.u16(), r.u16()
    if pq.heard + pq.missed >= 128:
        raise DecodeError("InvalidValue")
    r.end()
    return pq


# ----------------------------------------------------------------------------------------------
# 14. Sender keys
# ----------------------------------------------------------------------------------------------

def sender_bytes(ik, context):
    """14.5 sender"""
    return ik + u8(len(context)) + context


def sender_prefix(ik, context):
    """14.1"""
    return L_GROUP_MESSAGE + ik + u8(len(context)) + context


def group_signed(ik, context, message_context, header, ct):
    """14.3: what the signature covers; message_context is the bound per-message context (empty
    outside fanout, the group envelope's header in 18.1), at most 255 bytes, length first."""
    if len(message_context) > MAX_MESSAGE_CONTEXT:
        raise ProtocolError("ContextTooLong")
    return (sender_prefix(ik, context) + u8(len(message_context)) + message_context + header
            + ct)


def key_id_from_draw(draw4, leaving=None):
    """11 / 14.1: u32 big-endian of the 4 drawn bytes, +1 (wrapping) while 0 or the id left."""
    key_id = int.from_bytes(draw4, "big")
    while key_id == 0 or key_id == leaving:
        key_id = (key_id + 1) % 2 ** 32
    return key_id


class OutboundSenderKey:
    """14.1 owner state; new and rotate draw CK (32), the signing seed (32), the key id (4)."""

    def __init__(self, group_id, ik, context, draws, leaving=None):
        self.group_id, self.ik, self.context = group_id, ik, context
        self.ck = draws(32, "chain_key")
        self.seed = draws(32, "signing_seed")
        self.key_id_draw = draws(4, "key_id_draw")
        self.key_id = key_id_from_draw(self.key_id_draw, leaving)
        self.iteration = 0
        self.signing_public = ed25519_pub(self.seed)

    def rotate(self, draws):
        return OutboundSenderKey(self.group_id, self.ik, self.context, draws, leaving=self.key_id)

    def distribution(self):
        """14.2"""
        return (b"\x02\x05" + self.group_id + u32(self.key_id) + u32(self.iteration) + self.ck
                + self.signing_public)

    def encrypt(self, plaintext, salt, message_context=b""):
        """14.3, binding message_context; returns the details and the message."""
        if len(message_context) > MAX_MESSAGE_CONTEXT:
            raise ProtocolError("ContextTooLong")
        if self.iteration == CHAIN_END:
            raise ProtocolError("ChainExhausted")
        out = {"chain_key": self.ck, "iteration": self.iteration}
        out["message_key"], next_ck = kdf_ck(self.ck)
        out["header"] = (b"\x02\x04" + self.group_id + u32(self.key_id) + u32(self.iteration)
                         + salt)
        out["aes_key"], out["nonce"] = message_keys(out["message_key"], salt, L_GROUP_KEYS)
        ct = aead_seal(out["aes_key"], out["nonce"], out["header"], plaintext)
        out["signature"] = sign(self.seed, group_signed(self.ik, self.context, message_context,
                                                        out["header"], ct))
        out["wire"] = out["header"] + ct + out["signature"]
        self.ck, self.iteration = next_ck, self.iteration + 1
        return out

    def to_bytes(self):
        """14.5 outbound"""
        return (b"\x02\x84" + self.group_id + sender_bytes(self.ik, self.context) + u32(self.key_id)
                + u32(self.iteration) + self.ck + self.seed)


def decode_distribution(data):
    """14.2"""
    r = Reader(data)
    r.head(2, 0x05)
    d = {"group_id": r.take(32), "key_id": r.u32(), "iteration": r.u32(), "ck": r.take(32),
         "signing_public": r.take(32)}
    r.end()
    if not ed25519_key_valid(d["signing_public"]):
        raise DecodeError("InvalidKey")
    return d


def decode_group_message(data):
    """14.3"""
    if len(data) < 58 + 16 + 64:
        raise DecodeError("Truncated")
    r = Reader(data[:58])
    r.head(2, 0x04)
    m = {"group_id": r.take(32), "key_id": r.u32(), "iteration": r.u32(), "salt": r.take(16)}
    m["header"], m["ct"], m["signature"] = bytes(data[:58]), bytes(data[58:-64]), bytes(data[-64:])
    return m


class InboundSenderKey:
    """14.2 / 14.4 receiver state for one (sender, group); 14.5 inbound encoding."""

    def __init__(self, group_id, ik, context):
        self.group_id, self.ik, self.context = group_id, ik, context
        self.generations = []  # dicts: key_id, signing_public, ck, first, iteration, skipped

    def process(self, distribution):
        d = decode_distribution(distribution)
        if d["group_id"] != self.group_id:
            raise ProtocolError("UnknownSender")
        for g in self.generations:
            if g["key_id"] == d["key_id"]:
                if g["signing_public"] != d["signing_public"]:
                    raise ProtocolError("ConflictingDistribution")
                return
        self.generations.append({"key_id": d["key_id"], "signing_public": d["signing_public"],
                                 "ck": d["ck"], "first": d["iteration"],
                                 "iteration": d["iteration"], "skipped": {}})
        while len(self.generations) > GROUP_MAX_GENERATIONS:
            self.generations.pop(0)

    def receive(self, message, message_context=b""):
        """14.4, for a message sealed with message_context; the state changes only in step 7."""
        if len(message_context) > MAX_MESSAGE_CONTEXT:
            raise ProtocolError("ContextTooLong")
        m = decode_group_message(message)
        if m["group_id"] != self.group_id:  # 1
            raise ProtocolError("UnknownSender")
        gen = next((g for g in self.generations if g["key_id"] == m["key_id"]), None)
        if gen is None:  # 2
            raise ProtocolError(f"UnknownKeyId({m['key_id']})")
        signed = group_signed(self.ik, self.context, message_context, m["header"], m["ct"])
        if not verify(gen["signing_public"], signed, m["signature"]):  # 3
            raise ProtocolError("BadSignature")
        i = m["iteration"]
        if i < gen["first"]:  # 4
            raise ProtocolError(f"PredatesKey({m['key_id']})")
        if i < gen["iteration"]:
            if i not in gen["skipped"]:
                raise ProtocolError("Duplicate")
            key, nonce = message_keys(gen["skipped"][i], m["salt"], L_GROUP_KEYS)
            plaintext = aead_open(key, nonce, m["header"], m["ct"])
            del gen["skipped"][i]
            return plaintext
        if i == CHAIN_END:  # 5
            raise ProtocolError("ChainExhausted")
        if i - gen["iteration"] > GROUP_MAX_FORWARD_JUMP:
            raise ProtocolError("TooFarAhead")
        ck, recorded = gen["ck"], {}
        for j in range(gen["iteration"], i):
            recorded[j], ck = kdf_ck(ck)
        mk, ck = kdf_ck(ck)
        key, nonce = message_keys(mk, m["salt"], L_GROUP_KEYS)  # 6
        plaintext = aead_open(key, nonce, m["header"], m["ct"])
        gen["ck"], gen["iteration"] = ck, i + 1  # 7
        gen["skipped"].update(recorded)
        while len(gen["skipped"]) > GROUP_MAX_SKIPPED:
            del gen["skipped"][min(gen["skipped"])]
        return plaintext

    def to_bytes(self):
        """14.5 inbound"""
        out = (b"\x01\x88" + self.group_id + sender_bytes(self.ik, self.context)
               + u32(len(self.generations)))
        for g in self.generations:
            out += (u32(g["key_id"]) + g["signing_public"] + g["ck"] + u32(g["first"])
                    + u32(g["iteration"]) + u32(len(g["skipped"])))
            out += b"".join(u32(i) + g["skipped"][i] for i in sorted(g["skipped"]))
        return out


# ----------------------------------------------------------------------------------------------
# 15. Accounts and device lists, 16. Linking
# ----------------------------------------------------------------------------------------------

def binding(device_seed, ak):
    """15.1"""
    return sign(device_seed, L_BINDING + ak)


def list_entry(device_id, ik, linked_at, expires_at, bind):
    """15.1 entry"""
    return (u32(device_id) + ik + u64(linked_at)
            + opt(None if expires_at is None else u64(expires_at)) + bind)


def sign_list(account_seed, version, issued_at, entries,
              policy=(MAX_COMPANIONS, COMPANION_VALIDITY_MS)):
    """15.1: entries are (device_id, IK, linked_at, expires_at, binding), ascending ids; the
    policy is (max_companions, companion_validity_ms), None for the old form (format 2)."""
    ak = ed25519_pub(account_seed)
    if policy is None:
        body = b"\x02\x06" + ak + u64(version) + u64(issued_at)
    else:
        body = b"\x03\x06" + ak + u64(version) + u64(issued_at) + u32(policy[0]) + u64(policy[1])
    body += u32(len(entries))
    body += b"".join(list_entry(*e) for e in entries)
    return body + sign(account_seed, L_DEVICE_LIST + body)


def decode_list(data):
    """15.1"""
    r = Reader(data)
    fmt = r.u8()
    if fmt not in (2, 3):
        raise DecodeError(f"UnknownVersion({fmt})")
    t = r.u8()
    if t != 0x06:
        raise DecodeError(f"UnknownType({t})")
    d = {"ak": r.take(32), "version": r.u64(), "issued_at": r.u64(), "entries": [], "policy": None}
    if fmt == 3:
        d["policy"] = {"max_companions": r.u32(), "companion_validity_ms": r.u64()}
    n = r.u32()
    if n > 256:
        raise DecodeError("InvalidValue")
    for _ in range(n):
        e = {"device_id": r.u32(), "ik": r.take(32), "linked_at": r.u64()}
        exp = r.opt(8)
        e["expires_at"] = None if exp is None else int.from_bytes(exp, "big")
        e["binding"] = r.take(64)
        if d["entries"] and e["device_id"] <= d["entries"][-1]["device_id"]:
            raise DecodeError("InvalidValue")
        if not ed25519_key_valid(e["ik"]):
            raise DecodeError("InvalidKey")
        d["entries"].append(e)
    d["body"], d["signature"] = bytes(data[:r.p]), r.take(64)
    r.end()
    return d


def verify_list(data, expected_ak, previous=None, ceiling=COMPANION_CEILING):
    """15.2 steps 1-7 under the verifier's ceiling; returns the decoded list."""
    d = decode_list(data)
    if d["ak"] != expected_ak:
        raise ProtocolError("WrongAccount")
    if previous is not None and previous == data:
        return d
    if not verify(d["ak"], L_DEVICE_LIST + d["body"], d["signature"]):
        raise ProtocolError("BadSignature")
    if previous is not None:
        known = decode_list(previous)
        pv = known["version"]
        if d["version"] < pv:
            raise ProtocolError(f"Rollback {{ known: {pv}, received: {d['version']} }}")
        if d["version"] == pv:
            raise ProtocolError("Equivocation")
        if known["policy"] is not None and d["policy"] is None:
            raise ProtocolError("PolicyDowngrade")
    es, policy = d["entries"], d["policy"]
    latest = None if policy is None else min(d["issued_at"] + policy["companion_validity_ms"], 2 ** 64 - 1)
    if (not es or es[0]["device_id"] != 1 or es[0]["expires_at"] is not None
            or any(e["expires_at"] is None for e in es[1:])
            or (latest is not None and any(e["expires_at"] > latest for e in es[1:]))
            or len({e["ik"] for e in es}) != len(es)):
        raise ProtocolError("InvalidList")
    if policy is not None and policy["max_companions"] > ceiling:
        raise ProtocolError(f"PolicyAboveCeiling {{ allowed: {policy['max_companions']}, ceiling: {ceiling} }}")
    cap = ceiling if policy is None else policy["max_companions"]
    if len(es) - 1 > cap:
        raise ProtocolError("TooManyCompanions")
    for e in es:
        if not verify(e["ik"], L_BINDING + d["ak"], e["binding"]):
            raise ProtocolError(f"BadBinding({e['device_id']})")
    return d


class Primary:
    """15.3 and 16, the primary's side."""

    def __init__(self, account_seed, primary_identity, now):
        """Primary::new: version 1 issued at now, listing only the primary (id 1)."""
        self.seed, self.ak = account_seed, ed25519_pub(account_seed)
        self.next_device_id, self.next_version = 2, 1
        self.invitations, self.approvals, self.confirmed = [], [], []
        # PROTOCOL.md 15.3 does not give the epoch of a new primary; 0 is assumed (reported).
        self.epoch, self.needs_resync = 0, False
        self.entries = [(1, primary_identity.public, now, None,
                         binding(primary_identity.seed, self.ak))]
        self.list = None
        self.lists = []
        self._sign(now)

    def _sign(self, now):
        """15.3: next version, issued at now, entries active at now, companions renewed."""
        version = self.next_version
        if self.list is not None:
            version = max(self.next_version, decode_list(self.list)["version"] + 1)
        kept = []
        for (i, ik, linked, exp, bind) in self.entries:
            if exp is None:
                kept.append((i, ik, linked, None, bind))
            elif now < exp:
                kept.append((i, ik, linked, now + COMPANION_VALIDITY_MS, bind))
        self.entries = kept
        self.list = sign_list(self.seed, version, now, kept)
        self.lists.append(self.list)
        self.next_version = version + 1

    def invite(self, now, nonce):
        """16 step 1"""
        expires_at = now + LINK_INVITATION_VALIDITY_MS
        self.invitations = (self.invitations + [(nonce, expires_at)])[-4:]
        self.epoch += 1
        return b"\x02\x07" + self.ak + nonce + u64(expires_at)

    def approve(self, request, now):
        """16 step 3"""
        r = Reader(request)
        r.head(2, 0x08)
        ak, ik, bind, proof, sig = r.take(32), r.take(32), r.take(64), r.take(32), r.take(64)
        r.end()
        if ak != self.ak:
            raise ProtocolError("WrongAccount")
        inv = [x for x in self.invitations
               if _hmac.compare_digest(link_proof(x[0], ak, ik), proof) and now < x[1]]
        if not inv:
            raise ProtocolError("UnknownInvitation")
        nonce = inv[0][0]
        if (not verify(ik, L_LINK_REQUEST + ak + ik + proof, sig)
                or not verify(ik, L_BINDING + ak, bind)):
            raise ProtocolError("BadSignature")
        if any(e[1] == ik for e in self.entries):
            raise ProtocolError("AlreadyLinked")
        if len(self.entries) - 1 >= MAX_COMPANIONS:
            raise ProtocolError("TooManyCompanions")
        device_id = self.next_device_id
        self.next_device_id += 1
        self.entries.append((device_id, ik, now, now + COMPANION_VALIDITY_MS, bind))
        self._sign(now)
        self.invitations = [x for x in self.invitations if x[0] != nonce]
        self.approvals = (self.approvals + [(device_id, H(self.list))])[-4:]
        self.epoch += 1
        return b"\x02\x09" + u32(device_id) + self.list

    def confirm(self, confirmation):
        """16 step 4, the primary's side."""
        r = Reader(confirmation)
        r.head(2, 0x0a)
        ak, device_id, digest, sig = r.take(32), r.u32(), r.take(32), r.take(64)
        r.end()
        appr = [a for a in self.approvals if a[0] == device_id]
        if ak != self.ak or not appr:
            raise ProtocolError("NotInList")
        if appr[0][1] != digest:
            raise ProtocolError("WrongList")
        ik = next(e[1] for e in self.entries if e[0] == device_id)
        if not verify(ik, L_LINK_CONFIRMATION + ak + u32(device_id) + digest, sig):
            raise ProtocolError("BadSignature")
        self.approvals = [a for a in self.approvals if a[0] != device_id]
        self.confirmed.append(device_id)
        self.epoch += 1

    def renew(self, now):
        self._sign(now)
        self.epoch += 1

    def state(self):
        """15.3 primary_state; this run takes no unit of the primary, so its tag is 16 zero
        bytes"""
        out = (b"\x03\x86" + self.seed + u32(MAX_COMPANIONS) + u64(COMPANION_VALIDITY_MS)
               + u64(LINK_INVITATION_VALIDITY_MS) + u32(self.next_device_id)
               + u64(self.next_version) + blob(self.list))
        out += u32(len(self.invitations)) + b"".join(n + u64(e) for n, e in self.invitations)
        out += u32(len(self.approvals)) + b"".join(u32(i) + d for i, d in self.approvals)
        out += u32(len(self.confirmed)) + b"".join(u32(i) for i in self.confirmed)
        return out + u64(self.epoch) + flag(self.needs_resync) + bytes(16)


def link_proof(nonce, ak, ik):
    """16: the request's proof that its sender read the invitation."""
    return hmac_sha256(nonce, L_LINK_REQUEST + ak + ik)


def link_request(companion, ak, nonce):
    """16"""
    proof = link_proof(nonce, ak, companion.public)
    sig = sign(companion.seed, L_LINK_REQUEST + ak + companion.public + proof)
    return (b"\x02\x08" + ak + companion.public + binding(companion.seed, ak) + proof + sig)


def link_confirmation(companion, ak, device_id, digest):
    """16"""
    sig = sign(companion.seed, L_LINK_CONFIRMATION + ak + u32(device_id) + digest)
    return b"\x02\x0a" + ak + u32(device_id) + digest + sig


# ----------------------------------------------------------------------------------------------
# 17. Safety numbers
# ----------------------------------------------------------------------------------------------

def safety_fingerprint(ak):
    h = hashlib.sha512(L_SAFETY + ak).digest()
    for _ in range(5199):
        h = hashlib.sha512(h + ak).digest()
    return h[:32]


def safety_number(ak1, ak2):
    """17: (F1, F2, digits, scannable)."""
    lo, hi = sorted([ak1, ak2])
    f1, f2 = safety_fingerprint(lo), safety_fingerprint(hi)
    digits = "".join(f"{int.from_bytes(f[5 * g:5 * g + 5], 'big') % 100000:05d}"
                     for f in (f1, f2) for g in range(6))
    return f1, f2, digits, b"\x01" + f1 + f2


# ----------------------------------------------------------------------------------------------
# 18. Fanout: envelopes, payloads, message ids, retry requests
# ----------------------------------------------------------------------------------------------

def lists_digest(sender_list, recipient_list):
    """18.1"""
    return H(L_LISTS_DIGEST + H(sender_list) + H(recipient_list))[:8]


def pairwise_header(sender, recipient, sender_version, recipient_version, digest):
    """18.1"""
    return (b"\x02\x0b\x01" + sender + recipient + u64(sender_version) + u64(recipient_version)
            + digest)


def group_header(sender, sender_version):
    """18.1: the group envelope's header, which its group message's signature binds (14.3)."""
    return b"\x02\x0b\x02" + sender + u64(sender_version)


def group_envelope(sender, sender_version, group_message):
    """18.1"""
    return group_header(sender, sender_version) + group_message


def decode_envelope(data):
    """18.1 / 18.6"""
    r = Reader(data)
    r.head(2, 0x0b)
    kind = r.u8()
    env = {"kind": kind}
    if kind == 1:
        env["sender"], env["recipient"] = r.take(36), r.take(36)
        env["sender_version"], env["recipient_version"] = r.u64(), r.u64()
        env["lists_digest"] = r.take(8)
        env["header"] = bytes(data[:r.p])
        env["type"], env["message"] = decode_pairwise_message(r.rest())
    elif kind == 2:
        env["sender"], env["sender_version"] = r.take(36), r.u64()
        env["header"] = bytes(data[:r.p])
        env["message"] = decode_group_message(r.rest())
    elif kind == 3:
        env["requester"], env["target"], env["reference"] = r.take(36), r.take(36), r.take(16)
        env["reason"], env["attempt"] = r.u8(), r.u8()
        env["bundle"] = r.take(r.u32())
        env["signed"], env["signature"] = bytes(data[:r.p]), r.take(64)
        r.end()
    else:
        raise DecodeError("InvalidValue")
    return env


def envelope_id(envelope):
    """18.4 (the definition announced for the regenerated vectors): for a pairwise envelope
    whose pairwise message decodes, H(label || 0x01 || sender address || salt of its ratchet
    header)[0..16]; for a group envelope whose group message decodes, H(label || 0x02 || sender
    address || salt of the group message)[0..16]; any other bytes: H(label || envelope)[0..16]."""
    try:
        env = decode_envelope(envelope)
    except DecodeError:
        env = None
    if env is not None and env["kind"] == 1:
        m = env["message"]
        salt = m["ratchet"]["salt"] if env["type"] == "prekey" else m["salt"]
        return H(L_MESSAGE_ID + b"\x01" + env["sender"] + salt)[:16]
    if env is not None and env["kind"] == 2:
        return H(L_MESSAGE_ID + b"\x02" + env["sender"] + env["message"]["salt"])[:16]
    return H(L_MESSAGE_ID + b"\x00" + envelope)[:16]


def app_message_id(kind, sender, scope, nonce):
    """18.4, a message's id: kind 1 (direct: scope = the conversation's account, nonce = the
    payload's message nonce) or 2 (group: scope = the group id, nonce = the group message's
    salt): H(label || kind || sender address || scope || nonce)[0..16]. The body is not
    hashed."""
    return H(L_APP_MESSAGE_ID + u8(kind) + sender + scope + nonce)[:16]


def envelope_salt(envelope):
    """18.6: the reference of a failed envelope (its ratchet header's or group message's salt)."""
    env = decode_envelope(envelope)
    if env["kind"] == 1:
        m = env["message"]
        return m["ratchet"]["salt"] if env["type"] == "prekey" else m["salt"]
    return env["message"]["salt"]


def payload_bytes(kind, f):
    """18.2, from the payload's fields (bytes)."""
    if kind == "direct":
        return b"\x02\x0c\x01" + f["nonce"] + opt(f["sent_to"]) + f["body"]
    if kind == "distribution":
        return b"\x02\x0c\x02" + f["distribution"]
    if kind == "withheld":
        return b"\x02\x0c\x0a" + f["group"] + u32(f["key_id"]) + u8(f["reason"])
    if kind == "call_key":
        return b"\x02\x0c\x04" + f["call_key"]
    if kind == "history_offer":
        return b"\x02\x0c\x0b" + u64(f["offered_at"]) + blob(f["offer"]) + membership_bytes(f["groups"])
    if kind == "direct_resend":
        return b"\x02\x0c\x06" + f["reference"] + f["nonce"] + opt(f["sent_to"]) + f["body"]
    if kind == "group_resend":
        return b"\x02\x0c\x07" + f["reference"] + f["group"] + f["body"]
    if kind == "call_key_resend":
        return b"\x02\x0c\x08" + f["reference"] + f["call_key"]
    raise ValueError(kind)


def membership_bytes(groups):
    """18.2: groups ascending by id, each with its members ascending."""
    out = u32(len(groups))
    for g in sorted(groups):
        out += g + u32(len(groups[g])) + b"".join(sorted(groups[g]))
    return out


def decode_membership(r):
    """18.2: the decoder's checks, in order, reading to the end; returns {group: set of AK}."""
    n = r.u32()
    if n > 1024:
        raise DecodeError("InvalidValue")
    groups, last, total = {}, None, 0
    for _ in range(n):
        g = r.take(32)
        if last is not None and g <= last:
            raise DecodeError("InvalidValue")
        last, m = g, r.u32()
        total += m
        if m > 4096 or total > 32768:
            raise DecodeError("InvalidValue")
        members = []
        for _ in range(m):
            a = r.take(32)
            if not ed25519_key_valid(a):
                raise DecodeError("InvalidKey")
            if members and a <= members[-1]:
                raise DecodeError("InvalidValue")
            members.append(a)
        groups[g] = set(members)
    r.end()
    return groups


def retry_request(requester, target, reference, reason, attempt, bundle_bytes):
    """18.6"""
    body = (b"\x02\x0b\x03" + requester.address + target.address + reference + u8(reason)
            + u8(attempt) + blob(bundle_bytes))
    return body + sign(requester.identity.seed, L_RETRY + body)


# ----------------------------------------------------------------------------------------------
# 20. History sync
# ----------------------------------------------------------------------------------------------

def history_plaintext(length):
    """README: byte i is (7 i + 3) mod 256."""
    return bytes((7 * i + 3) % 256 for i in range(length))


def history_seal(secret, plaintext, app_data=b""):
    """20: (key, prefix, chunks as (nonce, bytes, tag), digest, offer)."""
    okm = hkdf(bytes(32), secret, L_HISTORY, 35)
    key, prefix = okm[:32], okm[32:]
    pieces = [plaintext[i:i + 65536] for i in range(0, len(plaintext) - len(plaintext) % 65536, 65536)]
    pieces.append(plaintext[len(pieces) * 65536:])
    chunks = []
    for i, piece in enumerate(pieces):
        nonce = prefix + u64(i) + u8(1 if i == len(pieces) - 1 else 0)
        sealed = aead_seal(key, nonce, b"\x02\x0d", piece)
        chunks.append((nonce, b"\x02\x0d" + sealed, sealed[-16:]))
    digest = H(L_HISTORY_DIGEST + b"".join(c[2] for c in chunks) + u64(len(plaintext)))
    offer = (b"\x02\x0e" + secret + u32(65536) + u64(len(plaintext)) + u64(len(chunks)) + digest
             + u32(len(app_data)) + app_data)
    return key, prefix, chunks, digest, offer


# ----------------------------------------------------------------------------------------------
# 21. Call keys
# ----------------------------------------------------------------------------------------------

def call_key_message(call_id, kind, epoch, secret, manager, participants):
    """21"""
    ps = sorted(participants)
    return (b"\x02\x0f" + call_id + u8(kind) + u32(epoch) + secret + manager + u32(len(ps))
            + b"".join(ps))


def call_join_secret(call_id, new_epoch, secret, r):
    """21: E' of a join."""
    return hkdf(call_id + u32(new_epoch), secret + r, L_CALL_RATCHET, 32)


def call_srtp(call_id, epoch, secret, address):
    """21: (master_key, master_salt) of participant address."""
    okm = hkdf(call_id + u32(epoch), secret, L_CALL_SRTP + address, 44)
    return okm[:32], okm[32:]


# ----------------------------------------------------------------------------------------------
# 22. Sealed state
# ----------------------------------------------------------------------------------------------

def sealed_state_ad(sequence, slot):
    return L_SEALED + b"\x02\x90" + u64(sequence) + blob(slot)


def seal_state(key, nonce, sequence, slot, state):
    return b"\x02\x90" + u64(sequence) + nonce + aead_seal(key, nonce, sealed_state_ad(sequence, slot), state)


# ----------------------------------------------------------------------------------------------
# Published vectors, run through the primitives of section 2
# ----------------------------------------------------------------------------------------------

def check_rfc7748(doc):
    for i, v in enumerate(doc["vectors"]):
        R.check(f"vector {i}: X25519(scalar, u)", x25519(hx(v["scalar"]), hx(v["u"])), v["output"])
    wanted = {it["iterations"]: it["output"] for it in doc["iterated"]}
    k = u = (9).to_bytes(32, "little")
    for n in range(1, max(wanted) + 1):
        k, u = x25519(k, u), k
        if n in wanted:
            R.check(f"iterated, after {n}", k, wanted[n])
    dh = doc["dh"]
    a, b = hx(dh["alice_private"]), hx(dh["bob_private"])
    R.check("dh: alice_public", x25519_pub(a), dh["alice_public"])
    R.check("dh: bob_public", x25519_pub(b), dh["bob_public"])
    R.check("dh: shared (Alice)", x25519(a, hx(dh["bob_public"])), dh["shared"])
    R.check("dh: shared (Bob)", x25519(b, hx(dh["alice_public"])), dh["shared"])


def check_rfc8032(doc):
    for v in doc["vectors"]:
        seed, msg, pub = hx(v["secret_key"]), hx(v["message"]), hx(v["public_key"])
        R.check(f"{v['name']}: public key", ed25519_pub(seed), v["public_key"])
        R.check(f"{v['name']}: signature", sign(seed, msg), v["signature"])
        sig = hx(v["signature"])
        R.true(f"{v['name']}: verifies", verify(pub, msg, sig))
        flipped = bytearray(sig)
        flipped[0] ^= 1
        R.true(f"{v['name']}: a flipped signature bit is refused", not verify(pub, msg, bytes(flipped)))
        R.true(f"{v['name']}: an extra message byte is refused", not verify(pub, msg + b"\x00", sig))


def check_rfc5869(doc):
    for v in doc["vectors"]:
        R.check(f"{v['name']}: HKDF", hkdf(hx(v["salt"]), hx(v["ikm"]), hx(v["info"]), v["length"]), v["okm"])


def check_rfc4231(doc):
    for v in doc["vectors"]:
        mac = hmac_sha256(hx(v["key"]), hx(v["data"]))
        if "truncated_bits" in v:
            mac = mac[:v["truncated_bits"] // 8]
        R.check(f"{v['name']}: HMAC-SHA256", mac, v["mac"])


def check_aes_gcm(doc):
    for v in doc["vectors"]:
        k, n, ad, p = hx(v["key"]), hx(v["iv"]), hx(v["aad"]), hx(v["plaintext"])
        sealed = aead_seal(k, n, ad, p)
        R.check(f"{v['name']}: ciphertext || tag", sealed, hx(v["ciphertext"]) + hx(v["tag"]))
        R.check(f"{v['name']}: opens", aead_open(k, n, ad, sealed), p)
        bad = bytearray(sealed)
        bad[-1] ^= 1
        for what, args in (("a flipped tag bit", (k, n, ad, bytes(bad))),
                           ("a changed AAD", (k, n, ad + b"\x00", sealed))):
            try:
                aead_open(*args)
                R.fail(f"{v['name']}: {what} is refused")
            except ProtocolError:
                R.ok()


# ----------------------------------------------------------------------------------------------
# kdf-chains.json: 8.2 and 14.3
# ----------------------------------------------------------------------------------------------

def check_kdf_chains(doc):
    rng = SeededRng(hx(doc["rng_seed"]))
    for i, c in enumerate(doc["root"]):
        rk = draw(rng, 32, c["root_key"], f"root {i}: root_key")
        dh = draw(rng, 32, c["dh_output"], f"root {i}: dh_output")
        new_rk, ck = kdf_rk(rk, dh)
        R.check(f"root {i}: KDF_RK new root key (8.2)", new_rk, c["new_root_key"])
        R.check(f"root {i}: KDF_RK chain key (8.2)", ck, c["chain_key"])
    for i, chain in enumerate(doc["chains"]):
        ck = draw(rng, 32, chain["initial_chain_key"], f"chain {i}: initial_chain_key")
        for j, st in enumerate(chain["steps"]):
            w = f"chain {i} step {j}"
            R.check(f"{w}: index", j, st["index"])
            R.check(f"{w}: chain_key", ck, st["chain_key"])
            mk, next_ck = kdf_ck(ck)
            R.check(f"{w}: KDF_CK message key (8.2)", mk, st["message_key"])
            R.check(f"{w}: KDF_CK next chain key (8.2)", next_ck, st["next_chain_key"])
            salt = draw(rng, 16, st["salt"], f"{w}: salt")
            key, nonce = message_keys(mk, salt)
            R.check(f"{w}: pairwise key (8.2)", key, st["aes_key"])
            R.check(f"{w}: pairwise nonce (8.2)", nonce, st["nonce"])
            key, nonce = message_keys(mk, salt, L_GROUP_KEYS)
            R.check(f"{w}: group key (14.3)", key, st["group_aes_key"])
            R.check(f"{w}: group nonce (14.3)", nonce, st["group_nonce"])
            ck = next_ck


# ----------------------------------------------------------------------------------------------
# pqxdh.json: 5, 6, 7, 8.3-8.6, 9.2, 10.1-10.3
# ----------------------------------------------------------------------------------------------

PQXDH_STORE_NOW = 1790000000000  # README: Bob's store and one-time keys made at this time


def check_kem_cross(what, seed, x):
    """Our pure-Python Encaps against cryptography's Decaps of the same key."""
    R.true(f"{what}: KEM.Decaps(seed, CT) = SS of KEM.Encaps (cryptography cross-check)",
           kem_decaps(seed, x["CT"]) == x["SS"])


def check_pqxdh(doc):
    for i, v in enumerate(doc["vectors"]):
        n = v["name"]
        R.check(f"{n}: rng_seed = SHA-256(name)", H(n.encode()), v["rng_seed"])
        rng = SeededRng(hx(v["rng_seed"]))
        d = lambda size, field: draw(rng, size, v[field], f"{n}: {field}")
        alice = Identity(d(32, "alice_identity_seed"))  # 11: IdentityKeyPair::generate
        bob = Identity(d(32, "bob_identity_seed"))
        check_identity(f"{n}: alice", alice, v["alice_identity_public"], v["alice_identity_x25519_public"])
        check_identity(f"{n}: bob", bob, v["bob_identity_public"], v["bob_identity_x25519_public"])
        # 11: PreKeyStore::new (signed prekey secret, last-resort seed), then one one-time
        # prekey and one one-time ML-KEM prekey.
        store = PreKeyStore(bob, d(32, "bob_signed_prekey_secret"), d(64, "bob_last_resort_kem_seed"),
                            PQXDH_STORE_NOW)
        opk_id = store.add_one_time_prekey(d(32, "bob_one_time_prekey_secret"))
        kem_id = store.add_one_time_kem_prekey(d(64, "bob_one_time_kem_seed"), PQXDH_STORE_NOW)
        R.check(f"{n}: signed prekey id (10.2)", store.spk.id, v["bob_signed_prekey_id"])
        R.check(f"{n}: signed prekey public", store.spk.public, v["bob_signed_prekey_public"])
        R.check(f"{n}: signed prekey signature (5.2)", store.spk.signature, v["bob_signed_prekey_signature"])
        R.check(f"{n}: one-time prekey public", x25519_pub(store.opks[opk_id]), v["bob_one_time_prekey_public"])
        with_opk = v["bob_one_time_prekey_id"] is not None
        if with_opk:
            R.check(f"{n}: one-time prekey id (10.2: first is 1)", opk_id, v["bob_one_time_prekey_id"])
        kem = store.kems[kem_id] if v["kem_prekey_kind"] == "one-time" else store.last_resort
        R.check(f"{n}: ML-KEM prekey id (5.3: one sequence from 1)", kem.id, v["bob_kem_prekey_id"])
        R.check(f"{n}: ML-KEM prekey public = KEM.KeyGen(seed)", kem.public, v["bob_kem_prekey_public"])
        R.check(f"{n}: ML-KEM prekey signature (5.3)", kem.signature, v["bob_kem_prekey_signature"])
        bundle = store.bundle(opk_id if with_opk else None, kem.id)
        R.check(f"{n}: bundle (6)", bundle, v["bundle"])
        b = decode_bundle(bundle)
        verify_bundle(b)
        R.ok()
        # 7.1 and 8.3: ek, m, then r
        ek, m, r = d(32, "alice_ephemeral_secret"), d(32, "kem_message"), d(32, "alice_ratchet_secret")
        alice_s, x = Session.initiate(alice, b, ek, m, r)
        R.check(f"{n}: EK_A (7.1)", x["EK_A"], v["alice_ephemeral_public"])
        for k in ("dh1", "dh2", "dh3", "dh4"):
            R.check(f"{n}: {k} (7.1)", x[k], None if v[k] is None else hx(v[k]))
        R.check(f"{n}: CT = KEM.Encaps(KEM_PK, m) (7.1)", x["CT"], v["kem_ciphertext"])
        R.check(f"{n}: SS (7.1)", x["SS"], v["kem_shared_secret"])
        check_kem_cross(n, kem.seed, x)
        R.check(f"{n}: SK (7.3)", x["SK"], v["shared_secret"])
        R.check(f"{n}: AD (7.3)", x["AD"], v["associated_data"])
        R.check(f"{n}: ratchet public (8.3)", alice_s.dhs_public, v["alice_ratchet_public"])
        R.check(f"{n}: X25519(r, SPK_B) (8.3)", x["dh_ratchet"], v["dh_ratchet"])
        R.check(f"{n}: root key (8.3)", alice_s.rk, v["root_key"])
        R.check(f"{n}: sending chain key (8.3)", alice_s.send[0], v["sending_chain_key"])
        draws = Draws(rng, n, salt=v["header_salt"])
        plaintext = hx(v["plaintext"])
        out = alice_s.encrypt(plaintext, draws)
        draws.done()
        R.check(f"{n}: message key (8.2)", out["message_key"], v["message_key"])
        R.check(f"{n}: AES key (8.2)", out["aes_key"], v["aes_key"])
        R.check(f"{n}: nonce (8.2)", out["nonce"], v["nonce"])
        R.check(f"{n}: pre-key message (9.2)", out["wire"], v["prekey_message"])
        # Bob: 7.2, 8.3, 8.6
        snapshot(None, (bob, store))  # Bob before accepting (errors.json)
        pm = decode_prekey_message(out["wire"])
        bob_s, got = accept_prekey_message(bob, store, pm)
        R.check(f"{n}: Bob decrypts the plaintext", got, plaintext)
        R.check(f"{n}: alice_state (10.3)", alice_s.to_bytes(), v["alice_state"])
        R.check(f"{n}: bob_state (10.3)", bob_s.to_bytes(), v["bob_state"])
        R.check(f"{n}: alice_identity_state (10.1)", b"\x01\x83" + alice.seed, v["alice_identity_state"])
        R.check(f"{n}: bob_prekey_store_state (10.2)", store.to_bytes(), v["bob_prekey_store_state"])
        snapshot(f"pqxdh.json#/vectors/{i}/bob_prekey_store_state", (bob, store))


# ----------------------------------------------------------------------------------------------
# ratchet-transcript.json: 8.4-8.6, 9, 10.3
# ----------------------------------------------------------------------------------------------

def check_ratchet_transcript(doc):
    rng = SeededRng(hx(doc["rng_seed"]))
    d = lambda size, field: draw(rng, size, doc[field], field)
    alice = Identity(d(32, "alice_identity_seed"))
    bob = Identity(d(32, "bob_identity_seed"))
    # created_at does not appear in this file: 0 is used and never compared.
    store = PreKeyStore(bob, d(32, "bob_signed_prekey_secret"), d(64, "bob_last_resort_kem_seed"), 0)
    opk_id = store.add_one_time_prekey(d(32, "bob_one_time_prekey_secret"))
    kem_id = store.add_one_time_kem_prekey(d(64, "bob_one_time_kem_seed"), 0)
    bundle = store.bundle(opk_id, kem_id)
    R.check("bundle (6)", bundle, doc["bundle"])
    b = decode_bundle(bundle)
    verify_bundle(b)
    ek, m, r = d(32, "alice_ephemeral_secret"), d(32, "kem_message"), d(32, "alice_ratchet_secret")
    alice_s, x = Session.initiate(alice, b, ek, m, r)
    check_kem_cross("initiation", store.kems[kem_id].seed, x)
    R.check("associated_data (7.3)", alice_s.ad, doc["associated_data"])
    sessions, wires = {"alice": alice_s, "bob": None}, {}
    for i, e in enumerate(doc["events"]):
        w = f"event {i} ({e['event']} {e['message']} by {e['by']})"
        if e["event"] == "send":
            draws = Draws(rng, w, ratchet_secret=e.get("new_ratchet_secret"), salt=e["salt"])
            out = sessions[e["by"]].encrypt(hx(e["plaintext"]), draws)
            draws.done()
            for k in ("chain_key", "message_key", "aes_key", "nonce", "header", "wire"):
                R.check(f"{w}: {k}", out[k], e[k])
            wires[e["message"]] = out["wire"]
        else:
            kind, msg = decode_pairwise_message(wires[e["message"]])
            s = sessions[e["by"]]
            if s is None:
                R.true(f"{w}: a new session starts from a pre-key message", kind == "prekey")
                s, got = accept_prekey_message(bob, store, msg)
                sessions[e["by"]] = s
            elif kind == "prekey":
                R.true(f"{w}: the pre-key message continues the session (8.6)", s.continues(msg))
                got = s.decrypt(msg["ratchet"])
            else:
                got = s.decrypt(msg)
            R.check(f"{w}: plaintext", got, hx(e["plaintext"]))
        s = sessions[e["by"]]
        R.check(f"{w}: root_key", s.rk, e["root_key"])
        R.check(f"{w}: sending_chain_key", None if s.send is None else s.send[0],
                None if e["sending_chain_key"] is None else hx(e["sending_chain_key"]))
        R.check(f"{w}: sending_next", None if s.send is None else s.send[1], e["sending_next"])
        for k, idx in (("receiving_ratchet_key", 0), ("receiving_chain_key", 1)):
            R.check(f"{w}: {k}", None if s.recv is None else s.recv[idx],
                    None if e[k] is None else hx(e[k]))
        R.check(f"{w}: receiving_next", None if s.recv is None else s.recv[2], e["receiving_next"])
        R.check(f"{w}: skipped_keys", len(s.skipped), e["skipped_keys"])
        for who in ("alice", "bob"):
            st = sessions[who]
            R.check(f"{w}: {who}_state (10.3)", None if st is None else st.to_bytes(),
                    None if e[f"{who}_state"] is None else hx(e[f"{who}_state"]))
            if st is not None:
                snapshot(f"ratchet-transcript.json#/events/{i}/{who}_state", st)


# ----------------------------------------------------------------------------------------------
# sender-keys.json: 14
# ----------------------------------------------------------------------------------------------

def check_sender_keys(doc):
    rng = SeededRng(hx(doc["rng_seed"]))
    group_id = draw(rng, 32, doc["group_id"], "group_id")
    owner_identity = Identity(draw(rng, 32, doc["sender_identity_seed"], "sender_identity_seed"))
    R.check("sender_identity_public", owner_identity.public, doc["sender_identity_public"])
    # README: "an account key drawn next": 32 bytes drawn as an account seed (15.1: AK is the
    # Ed25519 public key of that seed), then u32(2): a device address.
    context = ed25519_pub(rng.draw(32)) + u32(2)
    R.check("sender_context (14.1: a device address)", context, doc["sender_context"])
    owner, receiver, wires, received = None, None, {}, set()
    for i, e in enumerate(doc["events"]):
        w = f"event {i} ({e['event']} {e.get('message', '')})".replace(" )", ")")
        kind = e["event"]
        if kind in ("create", "rotate"):
            draws = Draws(rng, w, chain_key=e["chain_key"], signing_seed=e["signing_seed"],
                          key_id_draw=e["key_id_draw"])
            if kind == "create":
                owner = OutboundSenderKey(group_id, owner_identity.public, context, draws)
            else:
                owner = owner.rotate(draws)
            draws.done()
            R.check(f"{w}: signing_public", owner.signing_public, e["signing_public"])
            R.check(f"{w}: outbound_state (14.5)", owner.to_bytes(), e["outbound_state"])
        elif kind == "distribute":
            R.check(f"{w}: iteration", owner.iteration, e["iteration"])
            dist = owner.distribution()
            R.check(f"{w}: distribution (14.2)", dist, e["distribution"])
            if receiver is None:
                receiver = InboundSenderKey(group_id, owner_identity.public, context)
            receiver.process(dist)
            R.check(f"{w}: inbound_state (14.5)", receiver.to_bytes(), e["inbound_state"])
            snapshot(f"sender-keys.json#/events/{i}/inbound_state", receiver)
        elif kind == "send":
            R.check(f"{w}: iteration", owner.iteration, e["iteration"])
            salt = draw(rng, 16, e["salt"], f"{w}: salt")
            out = owner.encrypt(hx(e["plaintext"]), salt)
            for k in ("chain_key", "message_key", "aes_key", "nonce", "signature", "wire"):
                R.check(f"{w}: {k}", out[k], e[k])
            R.check(f"{w}: outbound_state (14.5)", owner.to_bytes(), e["outbound_state"])
            wires[e["message"]] = out["wire"]
        elif kind == "receive":
            wire = wires[e["message"]]
            R.check(f"{w}: iteration", decode_group_message(wire)["iteration"], e["iteration"])
            R.check(f"{w}: plaintext", receiver.receive(wire), hx(e["plaintext"]))
            R.check(f"{w}: inbound_state (14.5)", receiver.to_bytes(), e["inbound_state"])
            snapshot(f"sender-keys.json#/events/{i}/inbound_state", receiver)
            received.add(e["message"])
        else:
            raise ValueError(f"unknown event {kind}")
        key_id = decode_group_message(wires[e["message"]])["key_id"] if kind == "receive" else owner.key_id
        R.check(f"{w}: key_id", key_id, e["key_id"])
    # README: m3 (sent before the distribution at iteration 1) is never readable (14.4 step 4).
    for label in sorted(set(wires) - received):
        try:
            copy.deepcopy(receiver).receive(wires[label])
            R.fail(f"{label} is refused by the receiver", "it was accepted")
        except ProtocolError as err:
            R.true(f"{label} is refused with PredatesKey (14.4 step 4)", str(err).startswith("PredatesKey"))


# ----------------------------------------------------------------------------------------------
# history-sync.json: 20
# ----------------------------------------------------------------------------------------------

def check_history_sync(doc):
    for v in doc["vectors"]:
        n = v["name"]
        R.check(f"{n}: rng_seed = SHA-256(name)", H(n.encode()), v["rng_seed"])
        secret = draw(SeededRng(hx(v["rng_seed"])), 32, v["secret"], f"{n}: secret")
        plaintext = history_plaintext(v["length"])
        R.true(f"{n}: app data within 64 KiB (20)", len(hx(v["app_data"])) <= 65536)
        key, prefix, chunks, digest, offer = history_seal(secret, plaintext, hx(v["app_data"]))
        R.check(f"{n}: stream key", key, v["stream_key"])
        R.check(f"{n}: nonce prefix", prefix, v["nonce_prefix"])
        R.check(f"{n}: chunk count (20: floor(L / 65536) + 1)", len(chunks), len(v["chunks"]))
        opened = b""
        for i, ((nonce, chunk, tag), c) in enumerate(zip(chunks, v["chunks"])):
            R.check(f"{n}: chunk {i} length", len(chunk), c["len"])
            R.check(f"{n}: chunk {i} nonce", nonce, c["nonce"])
            R.check(f"{n}: chunk {i} tag", tag, c["tag"])
            R.check(f"{n}: chunk {i} SHA-256", H(chunk), c["sha256"])
            if "bytes" in c:
                R.check(f"{n}: chunk {i} bytes", chunk, c["bytes"])
            opened += aead_open(key, nonce, b"\x02\x0d", chunk[2:])
        R.check(f"{n}: the chunks open to the history", opened, plaintext)
        R.check(f"{n}: digest", digest, v["digest"])
        R.check(f"{n}: offer", offer, v["offer"])


# ----------------------------------------------------------------------------------------------
# call-keys.json: 21
# ----------------------------------------------------------------------------------------------

def check_call_keys(doc):
    rng = SeededRng(hx(doc["rng_seed"]))
    addresses = []
    for i, dv in enumerate(doc["devices"]):  # README: account keys are the first four draws
        seed = draw(rng, 32, dv["account_seed"], f"device {i}: account_seed")
        addresses.append(ed25519_pub(seed) + u32([1, 2, 1, 2][i]))
        R.check(f"device {i}: address (1: AK || u32(device id))", addresses[i], dv["address"])
    manager, observer = addresses[0], addresses[2]
    R.check("manager", manager, doc["manager"])
    R.check("observer", observer, doc["observer"])
    call_id = draw(rng, 16, doc["call_id"], "call_id")  # 11: Call::start: id, then E
    participants, epoch, secret = [addresses[0], addresses[1], addresses[2]], 0, None
    for ep in doc["epochs"]:
        w = f"epoch {ep['epoch']} ({ep['change']})"
        if ep["change"] == "start":
            secret = draw(rng, 32, ep["random"], f"{w}: epoch-0 secret")
        elif ep["change"] == "join":
            r = draw(rng, 32, ep["random"], f"{w}: R")
            epoch += 1
            secret = call_join_secret(call_id, epoch, secret, r)
            participants.append(addresses[3])
            R.check(f"{w}: participant", addresses[3], ep["participant"])
        elif ep["change"] == "remove":
            epoch += 1
            secret = draw(rng, 32, ep["random"], f"{w}: new secret")
            participants.remove(addresses[1])
            R.check(f"{w}: participant", addresses[1], ep["participant"])
        else:
            raise ValueError(ep["change"])
        R.check(f"{w}: epoch", epoch, ep["epoch"])
        R.check(f"{w}: secret", secret, ep["secret"])
        km = call_key_message(call_id, doc["kind"], epoch, secret, manager, participants)
        R.check(f"{w}: key message", km, ep["key_message"])
        # 21: call state = 0x01 || 0x89 || me || call_key[2..] || u32(floor), floor 0 here
        R.check(f"{w}: manager_state", b"\x01\x89" + manager + km[2:] + u32(0), ep["manager_state"])
        R.check(f"{w}: observer_state", b"\x01\x89" + observer + km[2:] + u32(0),
                ep["observer_state"])
        if ep["change"] == "start":
            km_start = km
        R.check(f"{w}: participant count", len(participants), len(ep["participants"]))
        for p, vp in zip(sorted(participants), ep["participants"]):
            R.check(f"{w}: participant address (ascending)", p, vp["address"])
            mk, ms = call_srtp(call_id, epoch, secret, p)
            R.check(f"{w}: SRTP master key", mk, vp["master_key"])
            R.check(f"{w}: SRTP master salt", ms, vp["master_salt"])
    # 21: the observer's epoch-0 state restored with the last epoch kept: floor = that epoch
    R.check("restored_kept_epoch (the last epoch)", epoch, doc["restored_kept_epoch"])
    R.check("restored_observer_state (floor = kept epoch)",
            b"\x01\x89" + observer + km_start[2:] + u32(epoch), doc["restored_observer_state"])


# ----------------------------------------------------------------------------------------------
# devices.json: 6.1, 15-18, and section 11's draw order over a whole run
# ----------------------------------------------------------------------------------------------

class Device:
    """What one device holds (18.3-18.5; the fields of its records, 19)."""

    def __init__(self, spec, ak):
        self.name, self.account, self.device_id = spec["name"], spec["account"], spec["device_id"]
        self.ak, self.address = ak, ak + u32(spec["device_id"])
        self.identity = self.store = None
        self.lists = {}          # account name -> list bytes held (18.3)
        self.list_history = {}   # account name -> [(version, digest)], oldest first, at most 8
        self.sessions = {}       # address -> [Session], current first, at most 3 (18.5)
        self.outbound = {}       # group -> OutboundSenderKey
        self.ledger = {}         # group -> [(key_id, {address: (IK, first iteration)})], oldest first
        self.rotation_pending = {}
        self.inbound = {}        # (address, group) -> InboundSenderKey
        self.withheld = {}       # (address, group) -> the generations notices withheld, oldest first (19.1 0x0d)
        self.told = {}           # group -> {address: (IK, reason)}: withheld from the current generation, told
        self.read_ring = []      # message ids by slot (18.4)
        self.sent = []           # sent journal by send id (18.4, 19.3)
        self.pending = {}        # address of S ‖ reference -> pending retry (18.4, 19.1 kind 0x10)
        self.replaced = {}       # message id -> (sender, time) of the resend replacing it (19.1 kind 0x12)
        self.members = {}        # group -> set of member AKs other than its own account (19.1 0x09)
        self.groups_by_app = False  # the app set or forgot a group (19.1 meta flag, 18.2)
        self.offered = set()     # groups an offer installed, not set by the app since (19.1 0x16)
        self.newest_offer = None # the time of the last offer applied (19.1 0x18)


LABEL_NUMBER = re.compile(r"^(.*)-(\d+)$")


def label_stem(label):
    """README: envelopes of one send share a label stem (`hello-1`, `hello-2`, ...)."""
    m = LABEL_NUMBER.match(label)
    return label if m is None else m.group(1)


class DevicesRun:
    """Replays devices.json's run from its seed (11) and recomputes every envelope (18)."""

    def __init__(self, doc):
        self.doc, self.rng = doc, SeededRng(hx(doc["rng_seed"]))
        self.accounts = {a["name"]: a for a in doc["accounts"]}
        self.devices, self.by_address, self.primaries = {}, {}, {}
        self.aks = {}             # account name -> AK
        self.envelopes = {}       # label -> envelope bytes
        self.stems = {}           # label stem -> {"expected": [names], "got": [names]}
        self.conversation = {}    # label stem -> conversation AK (direct sends)
        self.journal_of = {}      # (sender name, stem) -> sent journal entry
        self.calls, self.offers = {}, {}
        self.nonces = {}          # device name -> the message nonce its last 1:1 send drew
        self.answering = {}       # (S name, requester address) -> (reference, journal entry)

    # --- helpers ------------------------------------------------------------------------------

    def account_of(self, ak):
        return next(n for n, a in self.aks.items() if a == ak)

    def listed(self, dev, address):
        """The entry for address in the list dev holds for its account (15.1), or None."""
        lst = dev.lists.get(self.account_of(address[:32]))
        if lst is None:
            return None
        device_id = int.from_bytes(address[32:], "big")
        return next((e for e in decode_list(lst)["entries"] if e["device_id"] == device_id), None)

    def account_devices(self, dev, account):
        """Addresses of the devices listed in dev's held list of account, ascending id.
        (Activity, 15.2, needs `now`, which devices.json does not give per event.)"""
        d = decode_list(dev.lists[account])
        return [d["ak"] + u32(e["device_id"]) for e in d["entries"]]

    def member_devices(self, dev, group):
        """18.5: the member devices of group, minus dev, in ascending address order."""
        accounts = {dev.account} | {self.account_of(ak) for ak in dev.members[group]}
        out = [a for acct in accounts for a in self.account_devices(dev, acct) if a != dev.address]
        return sorted(out)

    def names(self, addresses):
        return [self.by_address[a].name for a in addresses]

    def version(self, lst):
        return decode_list(lst)["version"]

    def note_target(self, label, name, expected):
        """Envelopes of one send share a stem (README) and go to the targets in 18.5's order."""
        m = LABEL_NUMBER.match(label)
        if m is None:
            return
        st = self.stems.setdefault(m.group(1), {"expected": None, "got": []})
        if st["expected"] is None:
            st["expected"] = expected()
        st["got"].append(name)

    # --- setup: 15.3, 16, 6.1 -----------------------------------------------------------------

    def setup(self):
        doc, rng = self.doc, self.rng
        specs = {d["name"]: d for d in doc["devices"]}
        acc, link = self.accounts, doc["linking"]

        def identity(name):  # 11: IdentityKeyPair::generate
            return Identity(draw(rng, 32, specs[name]["identity_seed"], f"{name}: identity_seed"))

        def account_seed(name):  # 11: Primary::new
            return draw(rng, 32, acc[name]["account_seed"], f"{name}: account_seed")

        # The order of these app-level calls before the events is given neither by PROTOCOL.md 11
        # nor by the README; it is: alice-phone's identity, Alice's Primary::new, her invitation,
        # alice-laptop's identity, bob-phone's identity, Bob's Primary::new, then Device::new per
        # device in file order.
        ids = {"alice-phone": identity("alice-phone")}
        alice = Primary(account_seed("alice"), ids["alice-phone"], acc["alice"]["primary_new_now"])
        nonce = draw(rng, 16, link["invitation_nonce"], "linking: invitation_nonce")
        invitation = alice.invite(link["invite_now"], nonce)
        ids["alice-laptop"] = identity("alice-laptop")
        ids["bob-phone"] = identity("bob-phone")
        bob = Primary(account_seed("bob"), ids["bob-phone"], acc["bob"]["primary_new_now"])
        self.primaries = {"alice": alice, "bob": bob}
        self.aks = {"alice": alice.ak, "bob": bob.ak}
        for name, p in self.primaries.items():
            R.check(f"{name}: account_public (15.1)", p.ak, acc[name]["account_public"])
            R.true(f"{name}: account key is valid (5.1)", ed25519_key_valid(p.ak))

        # 16: alice-laptop is linked.
        R.check("linking: invitation (16)", invitation, link["invitation"])
        r = Reader(invitation)
        r.head(2, 0x07)
        inv_ak, inv_nonce = r.take(32), r.take(16)
        request = link_request(ids["alice-laptop"], inv_ak, inv_nonce)
        R.check("linking: link_request (16)", request, link["link_request"])
        approval = alice.approve(request, link["approve_now"])
        # The run's clock (test-vectors/README.md): every later operation up to the renewal.
        self.approve_now = link["approve_now"]
        R.check("linking: link_approval (16)", approval, link["link_approval"])
        r = Reader(approval)
        r.head(2, 0x09)
        laptop_id, approved_list = r.u32(), r.rest()
        d = verify_list(approved_list, inv_ak)
        R.true("linking: the companion finds its entry in the approved list (16 step 4)",
               any(e["device_id"] == laptop_id and e["ik"] == ids["alice-laptop"].public for e in d["entries"]))
        confirmation = link_confirmation(ids["alice-laptop"], inv_ak, laptop_id, H(approved_list))
        R.check("linking: link_confirmation (16)", confirmation, link["link_confirmation"])
        alice.confirm(confirmation)

        # Device::new per device (11): signed prekey secret, last-resort seed, one-time prekeys,
        # one-time ML-KEM prekeys.
        assigned = {"alice-phone": 1, "alice-laptop": laptop_id, "bob-phone": 1}
        for spec in doc["devices"]:
            name = spec["name"]
            dev = Device(spec, self.aks[spec["account"]])
            R.check(f"{name}: device id", assigned[name], spec["device_id"])
            R.check(f"{name}: address", dev.address, spec["address"])
            dev.identity = ids[name]
            check_identity(name, dev.identity, spec["identity_public"])
            now = spec["created_at"]
            dev.store = PreKeyStore(dev.identity,
                                    draw(rng, 32, spec["signed_prekey_secret"], f"{name}: signed_prekey_secret"),
                                    draw(rng, 64, spec["last_resort_kem_seed"], f"{name}: last_resort_kem_seed"), now)
            for o in spec["one_time_prekeys"]:
                got = dev.store.add_one_time_prekey(draw(rng, 32, o["secret"], f"{name}: one-time prekey"))
                R.check(f"{name}: one-time prekey id", got, o["id"])
            for k in spec["one_time_kem_prekeys"]:
                got = dev.store.add_one_time_kem_prekey(draw(rng, 64, k["secret"], f"{name}: one-time ML-KEM seed"), now)
                R.check(f"{name}: one-time ML-KEM prekey id", got, k["id"])
            R.check(f"{name}: upload (6.1)", dev.store.upload(), spec["upload"])
            self.devices[name], self.by_address[dev.address] = dev, dev

        # 17
        sn, (f1, f2, digits, scannable) = doc["safety_number"], safety_number(alice.ak, bob.ak)
        R.check("safety number: first fingerprint (17)", f1, sn["first_fingerprint"])
        R.check("safety number: second fingerprint (17)", f2, sn["second_fingerprint"])
        R.check("safety number: digits (17)", digits, sn["digits"])
        R.check("safety number: scannable (17)", scannable, sn["scannable"])

        R.skip("groups", "group ids are SHA-256 of labels the README does not give (app input; used as given)")
        # README: both accounts join both groups; each device keeps the other accounts (19.1 0x09).
        for dev in self.devices.values():
            for g in self.doc["groups"].values():
                dev.members[hx(g)] = {ak for n, ak in self.aks.items() if n != dev.account}
            dev.groups_by_app = True

    # --- events -------------------------------------------------------------------------------

    def ev_publish(self, e):
        account, version = e["account"], e["version"]
        primary = self.primaries[account]
        if account == "alice" and version == 3:
            # README: "Alice's primary renews her list (version 3, at primary_new_now + 86460000)"
            primary.renew(self.accounts["alice"]["primary_new_now"] + 86460000)
        lst = next((x for x in primary.lists if self.version(x) == version), None)
        R.true(f"publish {account} v{version}: the primary signed this version", lst is not None)
        for dev in self.devices.values():
            prev = dev.lists.get(account)
            verify_list(lst, self.aks[account], prev)
            if prev is not None and prev != lst:
                dev.list_history[account] = (dev.list_history.get(account, [])
                                             + [(self.version(prev), H(prev))])[-8:]
            dev.lists[account] = lst
        R.ok()  # every device verified and accepted it (15.2)

    def ev_session(self, e):
        frm, to = self.devices[e["from"]], self.devices[e["to"]]
        w = f"session {frm.name} -> {to.name}"
        bundle = to.store.bundle(e["one_time_prekey_id"], e["kem_prekey_id"])
        R.check(f"{w}: bundle (6)", bundle, e["bundle"])
        b = decode_bundle(bundle)
        verify_bundle(b)
        R.check(f"{w}: the bundle's IK is the listed one (18.5)", b["ik"], self.listed(frm, to.address)["ik"])
        ek = draw(self.rng, 32, e["ephemeral_secret"], f"{w}: ek")
        m = draw(self.rng, 32, e["kem_message"], f"{w}: m")
        r = draw(self.rng, 32, e["ratchet_secret"], f"{w}: r")
        s, x = Session.initiate(frm.identity, b, ek, m, r)
        check_kem_cross(w, to.store.kem_prekey(e["kem_prekey_id"]).seed, x)
        frm.sessions[to.address] = ([s] + frm.sessions.get(to.address, []))[:3]

    def ev_sender_key(self, e):
        dev, group = self.devices[e["device"]], hx(e["group"])
        w = f"sender key of {dev.name}"
        draws = Draws(self.rng, w, chain_key=e["chain_key"], signing_seed=e["signing_seed"],
                      key_id_draw=e["key_id_draw"])
        old = dev.outbound.get(group)
        # 18.5: a new generation only when none exists, a ledger device is no longer a member
        # device with the same identity key, or a rotation is pending.
        members = {a: self.listed(dev, a)["ik"] for a in self.member_devices(dev, group)}
        R.true(f"{w}: 18.5 calls for a new generation",
               old is None or dev.rotation_pending.get(group)
               or any(members.get(a) != ik for a, (ik, _) in dev.ledger[group][-1][1].items()))
        key = old.rotate(draws) if old else OutboundSenderKey(group, dev.identity.public, dev.address, draws)
        draws.done()
        R.check(f"{w}: key_id (14.1)", key.key_id, e["key_id"])
        dev.outbound[group] = key
        dev.ledger[group] = (dev.ledger.get(group, []) + [(key.key_id, {})])[-4:]
        dev.rotation_pending[group] = False
        dev.told[group] = {}  # 18.5: a new generation is withheld from no one yet

    def payload_fields(self, frm, to, e, w):
        """18.2 fields as the sender's state gives them; the vector's are compared."""
        f, kind = e["payload"], e["payload"]["kind"]
        stem = label_stem(e["label"])
        opt_hex = lambda x: None if x is None else hx(x)
        if kind == "direct":
            if to.account != frm.account:
                self.conversation[stem] = to.ak
            sent_to = self.conversation[stem] if to.account == frm.account else None
            R.check(f"{w}: payload sent_to (18.2)", sent_to, opt_hex(f["sent_to"]))
            R.check(f"{w}: payload nonce (18.2: the send's, in every copy)", self.nonces[frm.name], f["nonce"])
            return {"nonce": self.nonces[frm.name], "sent_to": sent_to, "body": hx(f["body"])}
        if kind == "distribution":
            group = hx(f["group"])
            key = frm.outbound[group]
            R.check(f"{w}: distribution key_id", key.key_id, f["key_id"])
            R.check(f"{w}: distribution iteration (18.5: the current one)", key.iteration, f["iteration"])
            R.check(f"{w}: distribution chain key", key.ck, f["chain_key"])
            R.check(f"{w}: distribution signing public", key.signing_public, f["signing_public"])
            frm.ledger[group][-1][1].setdefault(to.address, (self.listed(frm, to.address)["ik"], key.iteration))
            return {"distribution": key.distribution()}
        if kind == "withheld":
            # 18.2: the notice names the generation the send withholds, the sender's current.
            group = hx(f["group"])
            R.check(f"{w}: withheld key_id (the sender's current generation)", frm.outbound[group].key_id, f["key_id"])
            frm.told.setdefault(group, {})[to.address] = (self.listed(frm, to.address)["ik"], f["reason"])
            return {"group": group, "key_id": f["key_id"], "reason": f["reason"]}
        if kind == "call_key":
            R.check(f"{w}: call key message is the call's", self.calls[frm.name], f["call_key"])
            return {"call_key": self.calls[frm.name]}
        if kind == "history_offer":
            R.check(f"{w}: history offer is the sealer's", self.offers[frm.name], f["offer"])
            # 18.2: stamped with the sender's clock; the run has one (the README).
            R.check(f"{w}: offered_at (18.2)", self.approve_now, f["offered_at"])
            # 18.2: the sender's groups and their members, its own account left out.
            groups = {g: set(m) for g, m in frm.members.items()}
            R.check(f"{w}: membership (18.2)", membership_bytes(groups),
                    membership_bytes({hx(g["group"]): {hx(a) for a in g["members"]} for g in f["groups"]}))
            return {"offered_at": self.approve_now, "offer": self.offers[frm.name], "groups": groups}
        reference, entry, request_id = self.answering[(frm.name, to.address)]
        if entry["kind"] == 2:  # 19.1 kind 0x17: S records the request answered, by requester
            entry["answered"].setdefault(to.address, []).append(request_id)
        R.check(f"{w}: resend reference (18.6)", reference, f["reference"])
        R.check(f"{w}: resend body (the journaled message's)", entry["body"], f["body"])
        if kind == "direct_resend":
            sent_to = entry["conversation"] if to.account == frm.account else None
            R.check(f"{w}: resend sent_to (18.6)", sent_to, opt_hex(f["sent_to"]))
            R.check(f"{w}: resend nonce (18.6: the message's)", entry["nonce"], f["nonce"])
            return {"reference": reference, "nonce": entry["nonce"], "sent_to": sent_to, "body": entry["body"]}
        R.check(f"{w}: resend group", entry["group"], f["group"])
        return {"reference": reference, "group": entry["group"], "body": entry["body"]}

    def expected_targets(self, frm, to, e):
        kind = e["payload"]["kind"]
        if kind == "direct":  # 18.5: recipient account by id, then own account, minus sender
            out = self.account_devices(frm, to.account)
            if to.account != frm.account:
                out += self.account_devices(frm, frm.account)
            return [self.by_address[a].name for a in out if a != frm.address]
        if kind == "distribution":  # 18.5: member devices missing from the ledger, address order
            group = hx(e["payload"]["group"])
            have = frm.ledger[group][-1][1]
            return self.names([a for a in self.member_devices(frm, group) if a not in have])
        if kind == "call_key":  # 11: named devices, ascending address, without the sender
            r = Reader(self.calls[frm.name])
            r.take(2 + 16 + 1 + 4 + 32 + 36)
            return self.names(sorted(a for a in (r.take(36) for _ in range(r.u32())) if a != frm.address))
        return [to.name]

    def ev_pairwise(self, e):
        frm, to, label = self.devices[e["from"]], self.devices[e["to"]], e["label"]
        w = f"{label} ({frm.name} -> {to.name})"
        self.note_target(label, to.name, lambda: self.expected_targets(frm, to, e))
        fields = self.payload_fields(frm, to, e, w)
        payload = payload_bytes(e["payload"]["kind"], fields)
        R.check(f"{w}: payload (18.2)", payload, e["payload_bytes"])
        own_list, peer_list = frm.lists[frm.account], frm.lists[to.account]
        R.check(f"{w}: sender list version", self.version(own_list), e["sender_list_version"])
        R.check(f"{w}: recipient list version", self.version(peer_list), e["recipient_list_version"])
        digest = lists_digest(own_list, peer_list)
        R.check(f"{w}: lists digest (18.1)", digest, e["lists_digest"])
        header = pairwise_header(frm.address, to.address, self.version(own_list), self.version(peer_list), digest)
        R.check(f"{w}: envelope header (18.1)", header, e["header"])
        draws = Draws(self.rng, w, ratchet_secret=e["new_ratchet_secret"], salt=e["salt"])
        out = frm.sessions[to.address][0].encrypt(payload, draws, context=header)
        draws.done()
        envelope = header + out["wire"]
        R.check(f"{w}: envelope (18.1)", envelope, e["envelope"])
        R.check(f"{w}: message id (18.4)", envelope_id(envelope), e["envelope_id"])
        self.envelopes[label] = envelope
        kind = e["payload"]["kind"]
        # 18.4: the message id, from the payload and the authenticated sender address.
        expected_id = None
        if kind in ("direct", "direct_resend"):
            conversation = fields["sent_to"] if fields["sent_to"] is not None else to.ak
            expected_id = app_message_id(1, frm.address, conversation, fields["nonce"])
        elif kind == "group_resend":
            expected_id = app_message_id(2, frm.address, fields["group"], fields["reference"])
        R.check(f"{w}: the message's id (18.4)", expected_id,
                None if e.get("message_id") is None else hx(e["message_id"]))
        if kind in ("direct_resend", "group_resend"):
            R.check(f"{w}: a resend has the id of the message it resends", self.answering[(frm.name, to.address)][1]["message_id"], expected_id)
        if kind in ("direct", "call_key"):  # 18.4: the sent journal
            stem = label_stem(label)
            entry = self.journal_of.get((frm.name, stem))
            if entry is None and kind == "direct":
                entry = {"kind": 1, "body": fields["body"], "conversation": self.conversation[stem],
                         "nonce": fields["nonce"], "message_id": expected_id, "recipients": [], "sent_at": None}
            elif entry is None:  # 21: the call and epoch of the key message
                km = fields["call_key"]
                entry = {"kind": 4, "call": km[2:18], "epoch": int.from_bytes(km[19:23], "big"),
                         "recipients": [], "sent_at": None}
            if (frm.name, stem) not in self.journal_of:
                frm.sent.append(entry)
                self.journal_of[(frm.name, stem)] = entry
            R.check(f"{w}: every copy of a message has one id (18.4)", entry.get("message_id"), expected_id)
            salt = out["header"][42:58]  # 8.4: the salt follows DHs.public, PN and N
            entry["recipients"].append((to.address, self.listed(frm, to.address)["ik"], salt, []))
        if e["delivered"]:
            got = self.receive_pairwise(to, envelope, w)
            R.check(f"{w}: {to.name} decrypts the payload", got, payload)
            self.apply_payload(to, frm, got, envelope, w)

    def receive_pairwise(self, dev, envelope, w):
        """18.5, receiving a pairwise envelope."""
        R.true(f"{w}: its id is not in the read ring or replaced (18.4)",
               envelope_id(envelope) not in dev.read_ring and envelope_id(envelope) not in dev.replaced)
        env = decode_envelope(envelope)
        sender = self.by_address[env["sender"]]
        R.true(f"{w}: addressed to the receiver, from another device",
               env["recipient"] == dev.address and env["sender"] != dev.address)
        entry = self.listed(dev, env["sender"])
        R.true(f"{w}: the sender is listed in the list held", entry is not None)
        held_sender = self.version(dev.lists[sender.account])
        held_own = self.version(dev.lists[dev.account])
        R.true(f"{w}: no list version newer than held",
               env["sender_version"] <= held_sender and env["recipient_version"] <= held_own)
        known = lambda acct: dict(dev.list_history.get(acct, []) + [(self.version(dev.lists[acct]), H(dev.lists[acct]))])
        ks, ko = known(sender.account), known(dev.account)
        if env["sender_version"] in ks and env["recipient_version"] in ko:
            R.check(f"{w}: lists_digest matches the lists the receiver knows (18.5)", env["lists_digest"],
                    H(L_LISTS_DIGEST + ks[env["sender_version"]] + ko[env["recipient_version"]])[:8])
        held = dev.sessions.setdefault(sender.address, [])
        if env["type"] == "prekey":
            pm = env["message"]
            R.check(f"{w}: the pre-key message carries the listed IK", pm["ik_a"], entry["ik"])
            for s in held:
                if s.continues(pm):
                    got = s.decrypt(pm["ratchet"], env["header"])
                    held.remove(s)
                    held.insert(0, s)
                    return got
            s, got = accept_prekey_message(dev.identity, dev.store, pm, env["header"])
            dev.sessions[sender.address] = ([s] + held)[:3]
            return got
        error = None
        for s in list(held):
            try:
                got = s.decrypt(env["message"], env["header"])
                held.remove(s)
                held.insert(0, s)
                return got
            except ProtocolError as err:
                error = error or err
        raise error or ProtocolError("NoSession")

    def is_member(self, dev, group, ak):
        """18.5: the device's own account is always a member."""
        return ak == dev.ak or ak in dev.members[group]

    def read(self, dev, envelope, sender, reference, w):
        """18.4: after a successful receive its id goes to the next slot; a non-resend read
        deletes the pending retry keyed by (its sender, its salt)."""
        dev.read_ring.append(envelope_id(envelope))
        self.end_pending(dev, sender.address + reference)

    @staticmethod
    def end_pending(dev, key):
        """18.4: a pending retry is done (answered, or the genuine copy read); it stays, with
        the prekeys its requests minted, until dropped for room or with its sender."""
        p = dev.pending.get(key)
        if p is not None:
            p["done"] = True

    def apply_payload(self, dev, sender, payload, envelope, w):
        """18.5: judging the payload, then the journals (18.4)."""
        kind = payload[2]
        if kind in (2, 10, 7):
            group = payload[5:37] if kind == 2 else payload[3:35] if kind == 10 else payload[19:51]
            R.true(f"{w}: the sender's account is a member of the group", self.is_member(dev, group, sender.ak))
        if kind == 2:
            group, ik = payload[5:37], self.listed(dev, sender.address)["ik"]
            key = dev.inbound.get((sender.address, group))
            if key is None or key.ik != ik:
                key = dev.inbound[(sender.address, group)] = InboundSenderKey(group, ik, sender.address)
            key.process(payload[3:])
            # 18.5: notices of generations the key now holds are done.
            held = {g["key_id"] for g in key.generations}
            kept = [k for k in dev.withheld.get((sender.address, group), []) if k not in held]
            if kept:
                dev.withheld[(sender.address, group)] = kept
            else:
                dev.withheld.pop((sender.address, group), None)
        elif kind == 10:
            # 18.5: the generations withheld, oldest first, at most 4.
            notices = dev.withheld.setdefault((sender.address, payload[3:35]), [])
            key_id = int.from_bytes(payload[35:39], "big")
            if key_id not in notices:
                notices.append(key_id)
                del notices[:-4]
        elif kind == 11:
            # 18.2: from its own account only; applied while the receiver's app has set or
            # forgotten no group and it is newer than the last one applied (its time capped at
            # the receiver's clock plus 300,000 ms; the run has one clock). In the run every
            # device's app set its groups, so none is applied.
            R.true(f"{w}: a history offer comes from the receiver's own account", sender.ak == dev.ak)
            r = Reader(payload[3:])
            at = min(r.u64(), self.approve_now + 300_000)
            r.take(r.u32())
            groups = decode_membership(r)
            R.true(f"{w}: the membership does not name the receiver's account",
                   all(dev.ak not in m for m in groups.values()))
            if not dev.groups_by_app and (dev.newest_offer is None or at > dev.newest_offer):
                for g in [g for g in dev.offered if g not in groups]:
                    del dev.members[g]
                    dev.offered.discard(g)
                for g, m in groups.items():
                    if g not in dev.members or (g in dev.offered and dev.members[g] != m):
                        dev.members[g] = m
                        dev.offered.add(g)
                dev.newest_offer = at
        if kind in (6, 7):
            reference = payload[3:19]
            p = dev.pending.get(sender.address + reference)
            R.true(f"{w}: the resend answers the pending retry of that sender and reference, of its kind (18.5)",
                   p is not None and not p["done"]
                   and (p["group"] is None) == (kind == 6)
                   and (kind == 6 or p["group"] == payload[19:51]))
            self.end_pending(dev, sender.address + reference)
            # 18.4: the resend's id, then the id of the message it replaces, in the next slots.
            dev.read_ring.append(envelope_id(envelope))
            if p is not None:
                dev.read_ring.append(p["failed_id"])
                # 18.4: and it is remembered as replaced, with the time the resend was read.
                dev.replaced[p["failed_id"]] = (sender.address, self.approve_now)
        else:
            self.read(dev, envelope, sender, envelope_salt(envelope), w)

    def ev_group(self, e):
        frm, group, label = self.devices[e["from"]], hx(e["group"]), e["label"]
        w = f"{label} ({frm.name})"
        key = frm.outbound[group]
        R.check(f"{w}: key_id", key.key_id, e["key_id"])
        R.check(f"{w}: iteration", key.iteration, e["iteration"])
        recipients = self.member_devices(frm, group)
        R.check(f"{w}: recipients (18.5: member devices in address order)", self.names(recipients), e["recipients"])
        told = frm.told.get(group, {})
        R.true(f"{w}: every member device holds the generation, or was told it is withheld (18.5)",
               all(a in frm.ledger[group][-1][1] or a in told for a in recipients))
        salt = draw(self.rng, 16, e["salt"], f"{w}: salt")
        version = self.version(frm.lists[frm.account])
        R.check(f"{w}: sender list version", version, e["sender_list_version"])
        out = key.encrypt(hx(e["body"]), salt, group_header(frm.address, version))
        envelope = group_envelope(frm.address, version, out["wire"])
        R.check(f"{w}: envelope (18.1)", envelope, e["envelope"])
        R.check(f"{w}: message id (18.4)", envelope_id(envelope), e["envelope_id"])
        app_id = app_message_id(2, frm.address, group, salt)
        R.check(f"{w}: the message's id (18.4), the same on every member device", app_id, e["message_id"])
        self.envelopes[label] = envelope
        frm.sent.append({"kind": 2, "body": hx(e["body"]), "group": group, "key_id": key.key_id,
                         "iteration": out["iteration"], "reference": salt, "answered": {}, "sent_at": None,
                         "message_id": app_id})
        for name in e["delivered_to"]:
            dev = self.devices[name]
            env = decode_envelope(envelope)
            R.true(f"{w}: {name} holds a sender list no older than the envelope's",
                   env["sender_version"] <= self.version(dev.lists[frm.account]))
            m = env["message"]
            R.true(f"{w}: {name}: its id is not in the read ring or replaced (18.4)",
                   envelope_id(envelope) not in dev.read_ring and envelope_id(envelope) not in dev.replaced)
            R.true(f"{w}: {name}: the sender's account is a member", self.is_member(dev, m["group_id"], frm.ak))
            ib = dev.inbound[(frm.address, m["group_id"])]
            R.check(f"{w}: {name}'s key has the listed identity", ib.ik, self.listed(dev, frm.address)["ik"])
            R.check(f"{w}: {name} decrypts the body (14.4)", ib.receive(out["wire"], env["header"]), hx(e["body"]))
            lowered = group_envelope(frm.address, version - 1, out["wire"])
            try:
                copy.deepcopy(ib).receive(out["wire"], decode_envelope(lowered)["header"])
                R.fail(f"{w}: {name} refuses a copy whose list version was lowered (18.1)", "it was accepted")
            except ProtocolError as err:
                R.true(f"{w}: {name} refuses a copy whose list version was lowered (18.1, 14.4 step 3)",
                       str(err) == "BadSignature")
            self.read(dev, envelope, frm, salt, w)

    def ev_retry(self, e):
        req, target, label = self.devices[e["from"]], self.devices[e["to"]], e["label"]
        w = f"{label} ({req.name} -> {target.name})"
        failed = self.envelopes[e["failed"]]
        reference = envelope_salt(failed)
        R.check(f"{w}: reference = the failed message's salt (18.6)", reference, e["reference"])
        R.true(f"{w}: the failed message was not read (18.6: else Duplicate)",
               envelope_id(failed) not in req.read_ring and envelope_id(failed) not in req.replaced)
        # 18.6: asking again keeps the previous requests' minted prekeys.
        previous = req.pending.get(target.address + reference)
        # 11: Device::request_retry draws a one-time prekey (32) then a one-time ML-KEM prekey (64),
        # made, like the request, at the run's clock (test-vectors/README.md).
        opk_id = req.store.add_one_time_prekey(draw(self.rng, 32, e["one_time_prekey_secret"], f"{w}: one-time prekey"))
        kem_id = req.store.add_one_time_kem_prekey(draw(self.rng, 64, e["kem_seed"], f"{w}: ML-KEM seed"), self.approve_now)
        R.check(f"{w}: one-time prekey id", opk_id, e["one_time_prekey_id"])
        R.check(f"{w}: one-time ML-KEM prekey id", kem_id, e["kem_prekey_id"])
        bundle = req.store.bundle(opk_id, kem_id)
        R.check(f"{w}: bundle (6)", bundle, e["bundle"])
        attempt = 1 if previous is None else previous["attempts"] + 1
        R.check(f"{w}: attempt (18.6: the requester's count, from 1)", attempt, e["attempt"])
        envelope = retry_request(req, target, reference, e["reason"], attempt, bundle)
        R.check(f"{w}: signature (18.6)", envelope[-64:], e["signature"])
        R.check(f"{w}: envelope (18.6)", envelope, e["envelope"])
        R.check(f"{w}: message id (18.4)", envelope_id(envelope), e["envelope_id"])
        fenv = decode_envelope(failed)
        minted = ([] if previous is None else previous["minted"]) + [(opk_id, kem_id)]
        req.pending[target.address + reference] = {"attempts": attempt, "asked_at": self.approve_now,
                                  "group": fenv["message"]["group_id"] if fenv["kind"] == 2 else None,
                                  "failed_id": envelope_id(failed), "minted": minted, "done": False}
        if not e["delivered"]:
            return
        env = decode_envelope(envelope)  # 18.6: S judges the request from its journal
        entry = self.listed(target, req.address)
        R.true(f"{w}: S accepts the request (addressing, listed identity, signature)",
               env["target"] == target.address and env["requester"] != target.address
               and entry is not None and decode_bundle(env["bundle"])["ik"] == entry["ik"]
               and verify(entry["ik"], L_RETRY + env["signed"], env["signature"]))
        journal = None
        for j in target.sent:
            if j["kind"] in (1, 4) and any(a == req.address and ref == reference and ik == entry["ik"]
                                      for a, ik, ref, _ in j["recipients"]):
                journal = j
            if j["kind"] == 2 and j["reference"] == reference:
                gen = dict(target.ledger[j["group"]]).get(j["key_id"], {})
                if req.address in gen and gen[req.address][0] == entry["ik"] and gen[req.address][1] <= j["iteration"]:
                    journal = j
        R.true(f"{w}: S's journal has a message with that reference the requester was entitled to", journal is not None)
        self.answering[(target.name, req.address)] = (reference, journal, envelope_id(envelope))
        if "kept" in e:  # 18.6: the request as S's app keeps it; the send id is the journal index
            send_id = next(i for i, j in enumerate(target.sent) if j is journal)
            kept = (b"\x02\x8a" + req.address + u64(send_id) + u8(e["reason"]) + u8(attempt)
                    + reference + envelope_id(envelope) + bundle)
            R.check(f"{w}: the request as kept (18.6)", kept, e["kept"])

    def ev_call(self, e):
        dev = self.devices[e["device"]]
        w = f"call of {dev.name}"
        call_id = draw(self.rng, 16, e["call_id"], f"{w}: call id")
        secret = draw(self.rng, 32, e["secret"], f"{w}: epoch-0 secret")
        participants = sorted({hx(a) for a in e["participants"]} | {dev.address})
        km = call_key_message(call_id, e["kind"], 0, secret, dev.address, participants)
        R.check(f"{w}: call key message (21)", km, e["call_key"])
        self.calls[dev.name] = km

    def ev_nonce(self, e):
        """11: a 1:1 send draws its message nonce (16) before anything else."""
        dev = self.devices[e["device"]]
        self.nonces[dev.name] = draw(self.rng, 16, e["nonce"], f"message nonce of {dev.name}")

    def ev_history(self, e):
        dev = self.devices[e["device"]]
        secret = draw(self.rng, 32, e["secret"], f"history of {dev.name}: secret")
        offer = history_seal(secret, history_plaintext(e["length"]))[4]
        R.check(f"history of {dev.name}: offer (20)", offer, e["offer"])
        self.offers[dev.name] = offer

    def run(self):
        self.setup()
        handlers = {"publish": self.ev_publish, "session": self.ev_session,
                    "sender_key": self.ev_sender_key, "pairwise": self.ev_pairwise,
                    "group": self.ev_group, "retry": self.ev_retry, "call": self.ev_call,
                    "history": self.ev_history, "nonce": self.ev_nonce}
        for e in self.doc["events"]:
            handlers[e["event"]](e)
        for stem, st in self.stems.items():
            R.check(f"targets of '{stem}-N', in order (18.5 / 11)", st["got"], st["expected"])
        # 15.1-15.3: every list the primaries signed, and their states
        for name, a in self.accounts.items():
            p = self.primaries[name]
            R.check(f"{name}: number of lists signed", len(p.lists), len(a["lists"]))
            for lst, vl in zip(p.lists, a["lists"]):
                d, w = decode_list(lst), f"{name}: list v{vl['version']}"
                R.check(f"{w}: version", d["version"], vl["version"])
                R.check(f"{w}: issued_at", d["issued_at"], vl["issued_at"])
                R.check(f"{w}: policy (15.1, 15.3)", d["policy"],
                        {"max_companions": vl["max_companions"], "companion_validity_ms": vl["companion_validity_ms"]})
                R.check(f"{w}: entry count", len(d["entries"]), len(vl["entries"]))
                for de, ve in zip(d["entries"], vl["entries"]):
                    dev = self.devices[ve["device"]]
                    R.check(f"{w}: device_id", de["device_id"], ve["device_id"])
                    R.check(f"{w}: identity_public", de["ik"], ve["identity_public"])
                    R.check(f"{w}: linked_at", de["linked_at"], ve["linked_at"])
                    R.check(f"{w}: expires_at", de["expires_at"], ve["expires_at"])
                    R.check(f"{w}: binding", binding(dev.identity.seed, p.ak), ve["binding"])
                R.check(f"{w}: bytes (15.1)", lst, vl["bytes"])
                R.check(f"{w}: digest", H(lst), vl["digest"])
            R.check(f"{name}: epoch = number of operations (15.3)", p.epoch, len(a["primary_operations"]))
            R.check(f"{name}: primary_state (15.3)", p.state(), a["primary_state"])


def check_devices(doc, context):
    run = DevicesRun(doc)
    run.run()
    context["devices"] = run


# ----------------------------------------------------------------------------------------------
# records.json: 19, 22
# ----------------------------------------------------------------------------------------------

def own_value(address, identity_seed, session_config=(MAX_FORWARD_JUMP, MAX_SKIPPED_KEYS),
              group_config=(GROUP_MAX_FORWARD_JUMP, GROUP_MAX_SKIPPED, GROUP_MAX_GENERATIONS),
              lists_max_companions=COMPANION_CEILING, prekey_config=PREKEY_CONFIG,
              retry_window_ms=RETRY_WINDOW_MS):
    """19.2"""
    return (b"".join(u32(x) for x in session_config) + b"".join(u32(x) for x in group_config)
            + u32(lists_max_companions)
            + b"".join(u32(x) for x in prekey_config) + u64(retry_window_ms) + address + identity_seed)


def answered(ids):
    """19.3"""
    return u8(len(ids)) + b"".join(ids)


def body_digest(identity_seed, body):
    """19.3: a GMAC of the body under a key derived from the device's identity seed."""
    key = hkdf(None, identity_seed, L_BODY_DIGEST_KEY, 32)
    return aead_seal(key, bytes(12), body, b"")


def sent_value(entry, identity_seed):
    """19.3 (sent_at written as 0 when unknown; the caller masks it). The device sent it this
    release: its digest is keyed (tags 6, 5)."""
    recipients = lambda: (u32(len(entry["recipients"]))
                          + b"".join(a + ik + ref + answered(ans) for a, ik, ref, ans in entry["recipients"]))
    if entry["kind"] == 4:  # a call key: no body, its digest zero
        return u64(entry["sent_at"] or 0) + bytes(16) + u8(4) + entry["call"] + u32(entry["epoch"]) + recipients()
    out = u64(entry["sent_at"] or 0) + body_digest(identity_seed, entry["body"])
    if entry["kind"] == 1:  # written with tag 6: with the message nonce, a keyed digest
        out += u8(6) + entry["conversation"] + entry["nonce"] + recipients()
    else:  # its answers are records of their own (kind 0x17)
        out += u8(7) + entry["group"] + u32(entry["key_id"]) + u32(entry["iteration"]) + entry["reference"]
    return out


def answered_records(dev):
    """19.1 kind 0x17: for each group message dev sent, one record per device whose retry
    requests it answered: key u64(send id) || address, value the request ids answered."""
    return {b"\x17" + u64(sid) + a: answered(ids)
            for sid, entry in enumerate(dev.sent) if entry["kind"] == 2
            for a, ids in entry["answered"].items()}


def pending_value(p):
    """19.1 kind 0x10 (asked_at written as 0 when unknown; the caller masks it)."""
    out = opt(p["group"]) + p["failed_id"] + u8(p["attempts"]) + u64(p["asked_at"] or 0) + flag(p["done"])
    for opk_id, kem_id in p["minted"]:
        out += opt(None if opk_id is None else u32(opk_id)) + opt(None if kem_id is None else u32(kem_id))
    return out


UNKNOWN_TIME = "devices.json gives no time for this operation (its events carry no `now`)"


def groups_by_app(ops):
    """19.1's meta flag: 1 once the app set a group's members or forgot a group (18.2); every
    operation the meta inputs list changed the device."""
    return "set_group_members" in ops or "forget_group" in ops


def device_records(run, dev, epoch, ops, tag):
    """19.1: every record of dev, key -> (value, masks); a mask (start, end, reason) marks bytes
    the vectors give no input for. tag: the last unit's tag (random, given by the vector)."""
    recs = {b"\x01": (own_value(dev.address, dev.identity.seed), []),
            b"\x02": (u64(epoch) + u32(len(dev.read_ring) % 2000) + u64(len(dev.sent))
                      + flag(groups_by_app(ops)) + tag, []),
            b"\x03": (dev.store.core(), [])}
    for i, secret in dev.store.opks.items():
        recs[b"\x04" + u32(i)] = (u32(i) + secret + x25519_pub(secret), [])
    for i, k in dev.store.kems.items():
        masks = [] if k.created_at is not None else [(132, 140, f"created_at of ML-KEM prekey {i}: {UNKNOWN_TIME}")]
        recs[b"\x05" + u32(i)] = (k.to_bytes(), masks)
    for spk_id, keys in dev.store.base_keys.items():
        for k in keys:
            recs[b"\x06" + u32(spk_id) + k] = (b"", [])
    for acct, lst in dev.lists.items():
        hist = dev.list_history.get(acct, [])
        recs[b"\x07" + run.aks[acct]] = (b"\x01" + H(lst) + blob(lst) + u32(len(hist))
                                          + b"".join(u64(v) + d for v, d in hist), [])
    for addr, ss in dev.sessions.items():
        if ss:
            recs[b"\x08" + addr] = (u8(len(ss)) + b"".join(blob(s.to_bytes(detached=True)) for s in ss), [])
            for s in ss:
                if s.pending_ct is not None:  # 0x13: keyed by the session's base key EK_A
                    recs[b"\x13" + addr + s.origin[0]] = (s.pending_ct, [])
    for g, members in dev.members.items():
        recs[b"\x09" + g] = (u32(len(members)) + b"".join(sorted(members)), [])
    for g, key in dev.outbound.items():
        gens = dev.ledger[g]
        told = sorted(dev.told.get(g, {}).items())
        recs[b"\x0a" + g] = (blob(key.to_bytes()) + flag(dev.rotation_pending[g]) + u8(len(gens))
                             + b"".join(u32(kid) for kid, _ in gens) + u32(len(told))
                             + b"".join(a + ik + b"\x01" + u8(reason) for a, (ik, reason) in told), [])
        for kid, entries in gens:
            for addr, (ik, first) in entries.items():
                recs[b"\x0b" + g + u32(kid) + addr] = (ik + u32(first), [])
    for (addr, g), key in dev.inbound.items():
        recs[b"\x0c" + addr + g] = (key.to_bytes(), [])
    for (addr, g), kids in dev.withheld.items():
        recs[b"\x0d" + addr + g] = (b"".join(u32(k) for k in kids), [])
    for slot, mid in enumerate(dev.read_ring):
        recs[b"\x0e" + u32(slot)] = (mid, [])
    for sid, entry in enumerate(dev.sent):
        masks = [] if entry["sent_at"] is not None else [(0, 8, f"sent_at of send id {sid}: {UNKNOWN_TIME}")]
        recs[b"\x0f" + u64(sid)] = (sent_value(entry, dev.identity.seed), masks)
    for key, p in dev.pending.items():
        v = pending_value(p)
        at = (1 if p["group"] is None else 33) + 16 + 1  # opt(group), failed id, attempts
        masks = [] if p["asked_at"] is not None else [(at, at + 8, f"asked_at: {UNKNOWN_TIME}")]
        recs[b"\x10" + key] = (v, masks)
    for mid, (sender, t) in dev.replaced.items():
        recs[b"\x12" + mid] = (sender + u64(t), [])
    for key, value in answered_records(dev).items():
        recs[key] = (value, [])
    return dict(sorted(recs.items()))


def record_from_inputs(inp, identity_seed):
    """A record's key and value from its `inputs` (README table), by PROTOCOL.md 19."""
    rec = inp["record"]
    if rec == "own":
        return b"\x01", own_value(hx(inp["address"]), hx(inp["identity_seed"]), inp["session_config"],
                                  inp["group_config"], inp["lists_max_companions"], inp["prekey_config"],
                                  inp["retry_window_ms"])
    if rec == "meta":
        ops = inp["operations"]
        epoch = len(ops)  # 19: every operation that changes the device adds exactly 1
        sends = ops.count("send") + ops.count("send_group")
        # 18.4: a read fills one slot of the ring, a resend two (its own id, then the replaced one)
        slot = (ops.count("receive") + 2 * ops.count("receive resend")) % 2000
        R.check("meta: epoch = number of operations (19)", epoch, inp["epoch"])
        R.check("meta: next read slot = slots written (18.4)", slot, inp["next_read_slot"])
        R.check("meta: next send id = messages sent (18.4)", sends, inp["next_send_id"])
        tag = hx(inp["tag"])  # 19: the last unit's tag, drawn at random (given)
        R.true("meta: the tag is 16 bytes, not all zero (19)", len(tag) == 16 and any(tag))
        return b"\x02", u64(epoch) + u32(slot) + u64(sends) + flag(groups_by_app(ops)) + tag
    if rec == "prekeys":
        ident = Identity(hx(inp["identity_seed"]))
        spk = lambda s: SignedPreKey(ident, s["id"], hx(s["secret"]), s["created_at"])
        kem = lambda k: KemPreKey(ident, k["id"], hx(k["seed"]), k["created_at"], k["uses"])
        return b"\x03", prekey_core(inp["prekey_config"], inp["next_signed_prekey_id"],
                                    inp["next_one_time_prekey_id"], spk(inp["signed_prekey"]),
                                    [spk(s) for s in inp["retired_signed_prekeys"]], inp["next_kem_prekey_id"],
                                    kem(inp["last_resort_kem_prekey"]),
                                    [kem(k) for k in inp["retired_last_resort_kem_prekeys"]])
    if rec == "one_time_prekey":
        secret = hx(inp["secret"])
        return b"\x04" + u32(inp["id"]), u32(inp["id"]) + secret + x25519_pub(secret)
    if rec == "one_time_kem_prekey":
        k = KemPreKey(Identity(hx(inp["identity_seed"])), inp["id"], hx(inp["seed"]), inp["created_at"], 0)
        return b"\x05" + u32(inp["id"]), k.to_bytes()
    if rec == "remembered_base_key":
        return b"\x06" + u32(inp["signed_prekey_id"]) + x25519_pub(hx(inp["ephemeral_secret"])), b""
    if rec == "device_list":
        hist = b"".join(u64(h["version"]) + H(hx(h["list"])) for h in inp["history"])
        lst = hx(inp["list"])  # 19.1: stored with its digest, H(list) (18.3)
        return b"\x07" + hx(inp["account"]), b"\x01" + H(lst) + blob(lst) + u32(len(inp["history"])) + hist
    if rec == "sessions":
        ss = [hx(s) for s in inp["sessions"]]
        return b"\x08" + hx(inp["address"]), u8(len(ss)) + b"".join(blob(s) for s in ss)
    if rec == "group_members":
        ms = sorted(hx(m) for m in inp["members"])
        return b"\x09" + hx(inp["group"]), u32(len(ms)) + b"".join(ms)
    if rec == "own_sender_key":
        given = lambda n, name: hx(inp[name])
        key = OutboundSenderKey(hx(inp["group"]), ed25519_pub(hx(inp["identity_seed"])), hx(inp["context"]), given)
        for _ in range(inp["messages_sent"]):
            key.ck, key.iteration = kdf_ck(key.ck)[1], key.iteration + 1
        # Withheld from no device: u32(0).
        return (b"\x0a" + key.group_id,
                blob(key.to_bytes()) + flag(inp["rotation_pending"]) + u8(1) + u32(key.key_id) + u32(0))
    if rec == "ledger_entry":
        return (b"\x0b" + hx(inp["group"]) + u32(inp["key_id"]) + hx(inp["address"]),
                hx(inp["identity_public"]) + u32(inp["first_iteration"]))
    if rec == "inbound_sender_key":
        group, address = hx(inp["group"]), hx(inp["address"])
        seed, ck = hx(inp["signing_seed"]), hx(inp["chain_key"])
        key_id, spub = key_id_from_draw(hx(inp["key_id_draw"])), ed25519_pub(seed)
        key = InboundSenderKey(group, hx(inp["sender_identity_public"]), address)
        for it in inp["distributions"]:
            c = ck
            for _ in range(it):
                c = kdf_ck(c)[1]
            key.process(b"\x02\x05" + group + u32(key_id) + u32(it) + c + spub)
        for e in inp["envelopes"]:
            env = decode_envelope(hx(e))
            key.receive(hx(e)[len(env["header"]):], env["header"])
        return b"\x0c" + address + group, key.to_bytes()
    if rec == "withheld_notice":
        return b"\x0d" + hx(inp["address"]) + hx(inp["group"]), u32(inp["key_id"])
    if rec == "read_slot":
        return b"\x0e" + u32(inp["slot"]), envelope_id(hx(inp["envelope"]))
    if rec == "sent_group_message":
        entry = {"kind": 2, "sent_at": inp["sent_at"], "body": hx(inp["body"]), "group": hx(inp["group"]),
                 "key_id": inp["key_id"], "iteration": inp["iteration"], "reference": hx(inp["reference"]),
                 "answered": {}}
        return b"\x0f" + u64(inp["send_id"]), sent_value(entry, identity_seed)
    if rec == "sent_direct_message":
        entry = {"kind": 1, "sent_at": inp["sent_at"], "body": hx(inp["body"]),
                 "conversation": hx(inp["conversation"]), "nonce": hx(inp["nonce"]),
                 "recipients": [(hx(r["address"]), hx(r["identity_public"]), hx(r["reference"]), [])
                                for r in inp["recipients"]]}
        return b"\x0f" + u64(inp["send_id"]), sent_value(entry, identity_seed)
    if rec == "pending_retry":
        p = {"group": None if inp["group"] is None else hx(inp["group"]),
             "failed_id": envelope_id(hx(inp["failed_envelope"])), "attempts": inp["attempts"],
             "asked_at": inp["asked_at"], "done": inp["done"],
             "minted": [(m["one_time_prekey_id"], m["kem_prekey_id"]) for m in inp["minted"]]}
        return b"\x10" + hx(inp["sender"]) + hx(inp["reference"]), pending_value(p)
    if rec == "replaced_id":
        return b"\x12" + envelope_id(hx(inp["envelope"])), hx(inp["sender"]) + u64(inp["read_at"])
    raise ValueError(f"unknown record {rec}")


def check_masked(what, got, masks, expected):
    """Compare, leaving out (and reporting) the byte ranges the vectors give no input for."""
    expected, got = bytearray(hx(expected) if isinstance(expected, str) else expected), bytearray(got)
    if len(got) == len(expected):
        for start, end, reason in masks:
            got[start:end] = expected[start:end]
            R.skip(f"{what} bytes {start}..{end}", reason)
    R.check(what, bytes(got), bytes(expected))


def check_records(doc, context):
    # 1. Each record vector from its own inputs.
    meta_epoch, times_sent, times_asked, own = None, {}, {}, None
    # The device's identity seed (its own record's input) keys the digests of its sent bodies.
    seed = next(hx(rv["inputs"]["identity_seed"]) for rv in doc["records"] if rv["inputs"]["record"] == "own")
    for rv in doc["records"]:
        inp = rv["inputs"]
        w = f"record {inp['record']}"
        key, value = record_from_inputs(inp, seed)
        R.check(f"{w}: kind", key[0], rv["kind"])
        R.check(f"{w}: key (19.1)", key, rv["key"])
        R.check(f"{w}: value (19.1)", value, rv["value"])
        if inp["record"] == "meta":
            meta_epoch = len(inp["operations"])
        if inp["record"] in ("sent_group_message", "sent_direct_message"):
            times_sent[inp["send_id"]] = inp["sent_at"]
        if inp["record"] == "pending_retry":
            times_asked[hx(inp["sender"]) + hx(inp["reference"])] = inp["asked_at"]
        if inp["record"] == "own":
            own = (key, value)
    keys = [hx(rv["key"]) for rv in doc["records"]]
    R.true("record vectors are in key order (19.1)", keys == sorted(keys))

    # 2. The device at the end of devices.json's run: every record, and the whole-state bytes.
    run = context.get("devices")
    if run is None:
        R.skip("whole_state", "devices.json was not replayed, so the device's records cannot be rebuilt")
    else:
        dev = run.devices[doc["device"]]
        R.check("address", dev.address, doc["address"])
        for sid, t in times_sent.items():
            dev.sent[sid]["sent_at"] = t
        for key, t in times_asked.items():
            dev.pending[key]["asked_at"] = t
        ops = next(rv["inputs"]["operations"] for rv in doc["records"] if rv["inputs"]["record"] == "meta")
        meta_in = next(rv["inputs"] for rv in doc["records"] if rv["inputs"]["record"] == "meta")
        delivered = [e for e in run.doc["events"] if dev.name in ([e.get("to")] if e["event"] == "pairwise"
                                                                  else e.get("delivered_to", []))
                     and e.get("delivered", True)]
        resends = [e for e in delivered if e["event"] == "pairwise" and e["payload"]["kind"].endswith("resend")]
        R.check("meta operations: receives = envelopes delivered to the device", ops.count("receive"),
                len(delivered) - len(resends))
        R.check("meta operations: resends received", ops.count("receive resend"), len(resends))
        R.check("meta inputs: next_read_slot = slots the device wrote (18.4, mod 2000)",
                len(dev.read_ring) % 2000, meta_in["next_read_slot"])
        R.check("meta operations: sends = messages it journaled", ops.count("send") + ops.count("send_group"),
                len(dev.sent))
        R.check("meta operations: retries asked", ops.count("request_retry"),
                sum(1 for e in run.doc["events"] if e["event"] == "retry" and e["from"] == dev.name))
        sim = device_records(run, dev, meta_epoch, ops, hx(meta_in["tag"]))
        for rv in doc["records"]:
            k = hx(rv["key"])
            if k not in sim:
                R.fail(f"record {rv['inputs']['record']}: held by {dev.name} after the run", "absent")
                continue
            check_masked(f"record {rv['inputs']['record']} = {dev.name}'s after the run", sim[k][0], sim[k][1], rv["value"])
        R.check("record_count", len(sim), doc["record_count"])
        r = Reader(hx(doc["whole_state"]))  # 19.4 device_state
        r.head(3, 0x87)
        n = r.u32()
        R.check("whole_state: record count", len(sim), n)
        parsed = []
        for _ in range(n):
            k = r.take(r.u32())
            parsed.append((k, r.take(r.u32())))
        r.end()
        R.check("whole_state: keys, in order (19.4)", [k.hex() for k in sim], [k.hex() for k, _ in parsed])
        for k, v in parsed:
            if k in sim:
                check_masked(f"whole_state: record {k.hex()}", sim[k][0], sim[k][1], v)
        R.true("whole_state: keys strictly ascending", all(a < b for (a, _), (b, _) in zip(parsed, parsed[1:])))

    # 3. 22: the own record sealed.
    s = doc["sealed"]
    rng = SeededRng(hx(s["rng_seed"]))
    key = draw(rng, 32, s["key"], "sealed: key")
    nonce = draw(rng, 12, s["nonce"], "sealed: nonce (seal_state's draw)")
    R.check("sealed: slot = the own record's key", own[0], s["slot"])
    R.check("sealed: sequence = the device's epoch", meta_epoch, s["sequence"])
    R.check("sealed: state = the own record's value", own[1], s["state"])
    R.check("sealed: associated data (22)", sealed_state_ad(meta_epoch, own[0]), s["associated_data"])
    sealed = seal_state(key, nonce, meta_epoch, own[0], own[1])
    R.check("sealed: sealed (22)", sealed, s["sealed"])
    R.check("sealed: opens", aead_open(key, sealed[10:22], sealed_state_ad(meta_epoch, own[0]), sealed[22:]), own[1])

    # 4. 19.1 kind 0x11: a device restored from a backup holds the restore's time until an own
    # list issued since arrives.
    rs = doc["restored"]
    R.check("restored: key (19.1 kind 0x11)", b"\x11", rs["key"])
    R.check("restored: value = u64(restored_at)", u64(rs["restored_at"]), rs["value"])
    # 19.4: every prekey counter moves s on, s = 2^20 + a spread below 2^24 from the restore's
    # time; the next send id moves to max(next + 2^32, min(restored_at, 2^53)) (a restore from a
    # backup: no epochs lost); the epoch grows by one and
    # the groups-by-app flag is set.
    skip = (1 << 20) + int.from_bytes(H(b"ratchetry v1 restore spread" + u64(rs["restored_at"]))[:4], "big") % (1 << 24)
    R.check("restored: prekey skip (19.4)", skip, rs["prekey_skip"])
    by_kind = {v["inputs"]["record"]: v["inputs"] for v in doc["records"]}
    moved = lambda n: ((n + skip) % (1 << 32)) or 1
    kem = by_kind["prekeys"]["next_kem_prekey_id"]
    R.true("restored: the run's next ML-KEM id is unmarked (README)", kem < 0x8000_0001)
    inp = dict(by_kind["prekeys"],
               next_signed_prekey_id=moved(by_kind["prekeys"]["next_signed_prekey_id"]),
               next_one_time_prekey_id=moved(by_kind["prekeys"]["next_one_time_prekey_id"]),
               next_kem_prekey_id=kem + skip)
    R.check("restored: prekeys record, counters moved on (19.4)", record_from_inputs(inp, None)[1], rs["prekeys"])
    m = by_kind["meta"]
    R.check("restored: meta record (19.4: epoch + 1, send id, groups by app)",
            u64(m["epoch"] + 1) + u32(m["next_read_slot"]) + u64(max(m["next_send_id"] + (1 << 32), min(rs["restored_at"], 1 << 53))) + flag(True)
            + hx(rs["tag"]),
            rs["meta"])
    R.true("restored: its unit replaces all, so it draws a new tag (19)", rs["tag"] != m["tag"])
    # 19.4: every session kept renews its sending chain (8.5), one awaiting its first reply is
    # dropped (a device with no session left has no record), and the count of each sessions
    # record carries the unconfirmed bit (0x80, 19.1).
    if run is None:
        R.skip("restored: sessions", "devices.json was not replayed, so the device's sessions cannot be rebuilt")
    else:
        expect = []
        for addr, ss in sorted(dev.sessions.items()):
            kept = [copy.deepcopy(x) for x in ss if not x.awaiting_reply]
            for x in kept:
                x.renew()
            if kept:
                expect.append((b"\x08" + addr, u8(0x80 | len(kept))
                               + b"".join(blob(x.to_bytes(detached=True)) for x in kept)))
        R.check("restored: sessions records, keys (19.4)", [k.hex() for k, _ in expect],
                [kv["key"] for kv in rs["sessions"]])
        for (k, v), kv in zip(expect, rs["sessions"]):
            R.check(f"restored: sessions record {k.hex()} (19.4: renewed, unconfirmed)", v, kv["value"])

    # 4b. 19.1 kind 0x15: forgetting the account of the device list record keeps its list's mark
    # (15.2): u64(version) || H(list) || flag(policy); the version follows the header and AK.
    fg = doc["forgotten"]
    held = next(v["inputs"] for v in doc["records"] if v["inputs"]["record"] == "device_list")
    lst = hx(held["list"])
    R.check("forgotten: key (19.1 kind 0x15)", b"\x15" + hx(held["account"]), fg["key"])
    R.check("forgotten: value = the list's mark (15.2)",
            lst[34:42] + H(lst) + flag(lst[0] == 3), fg["value"])

    # 4c. 19.1 kinds 0x16 and 0x18: the same records with the meta record's `groups by app`
    # 0 (as the release before those kinds wrote them) load with every group offered: the load
    # writes an empty 0x16 record under each 0x09 record's group id, and the newest offer's
    # record (0x18) with time 0.
    of = doc["offered"]
    r = Reader(hx(doc["whole_state"]))
    r.head(3, 0x87)
    keys, meta = [], None
    for _ in range(r.u32()):
        k, v = r.take(r.u32()), r.take(r.u32())
        keys.append(k)
        if k == b"\x02":
            meta = v
    R.check("offered: the meta record, groups by app 0 (19.1)", meta[:20] + b"\x00" + meta[21:], of["meta"])
    R.check("offered: an empty 0x16 record per group, then the 0x18 record of time 0, in key order (19.1)",
            [{"key": (b"\x16" + k[1:]).hex(), "value": ""} for k in keys if k[:1] == b"\x09"]
            + [{"key": "18", "value": u64(0).hex()}],
            of["marks"])

    # 4d. 19.1 kind 0x17: the answers records of the device that answered a group message's
    # retry request in devices.json's run.
    an = doc["answered"]
    if run is None:
        R.skip("answered", "devices.json was not replayed")
    else:
        got = sorted(answered_records(run.devices[an["device"]]).items())
        R.true(f"answered: {an['device']} answered {an['retry']}", len(got) > 0)
        R.check("answered: records, in key order (19.1 kind 0x17)",
                [{"key": k.hex(), "value": v.hex()} for k, v in got], an["records"])

    # 5. 15.4: a primary's records, from its state bytes alone, and the unit of one invitation.
    check_primary_records(doc["primary"])


def decode_primary_state(data):
    """15.3 primary_state, field by field."""
    r = Reader(data)
    r.head(3, 0x86)
    st = {"account": r.take(32 + 4 + 8 + 8), "next_device": r.u32(), "next_version": r.u64()}
    st["list"] = r.take(r.u32())
    st["invitations"] = [r.take(16 + 8) for _ in range(r.u32())]
    st["admitted"] = [(r.u32(), r.take(32)) for _ in range(r.u32())]
    st["confirmed"] = [r.u32() for _ in range(r.u32())]
    st["epoch"], st["needs_resync"], st["tag"] = r.u64(), r.flag(), r.take(16)
    r.end()
    return st


def primary_meta(epoch, next_device, next_version, next_invitation, needs_resync, tag):
    """15.4 kind 0x82; tag: the unit's (random, given by the vector)"""
    return (u64(epoch) + u32(next_device) + u64(next_version) + u64(next_invitation)
            + flag(needs_resync) + tag)


def primary_records(st, tag):
    """15.4: the records of a primary loaded from primary_state, in key order, in the unit its
    load leaves (whose tag is given). Its invitations are numbered 0, 1, ... in their order, and
    next_invitation is their count."""
    n = len(st["invitations"])
    recs = [(b"\x81", st["account"]),
            (b"\x82", primary_meta(st["epoch"], st["next_device"], st["next_version"], n,
                                   st["needs_resync"], tag)),
            (b"\x83", st["list"])]
    recs += [(b"\x84" + u64(i), inv) for i, inv in enumerate(st["invitations"])]
    recs += [(b"\x85" + u32(d), digest) for d, digest in st["admitted"]]
    recs.append((b"\x86", u32(len(st["confirmed"])) + b"".join(u32(d) for d in st["confirmed"])))
    return recs


def check_primary_records(p):
    st = decode_primary_state(hx(p["state"]))
    # The state holds the tag of a unit taken before it; its load draws a new one (19).
    R.true("primary: the state's tag is a drawn one (15.3, 19)", st["tag"] != bytes(16))
    R.true("primary: the load's unit draws a new tag (19)", st["tag"] != hx(p["tag"]))
    recs = primary_records(st, hx(p["tag"]))
    R.check("primary: number of records (15.4)", len(p["records"]), len(recs))
    for (key, value), rv in zip(recs, p["records"]):
        R.check(f"primary: record key {key.hex()} (15.4)", key, rv["key"])
        R.check(f"primary: record {key.hex()} value (15.4)", value, rv["value"])
    R.true("primary: records in key order (15.4)", [k for k, _ in recs] == sorted(k for k, _ in recs))
    R.true("primary: no kind is a device record kind (15.4, 19.1)", all(k[0] > 0x13 for k, _ in recs))
    # The invitation (16 step 1): this account's, expiring after the policy's validity.
    inv = Reader(hx(p["invite"]["invitation"]))
    inv.head(2, 0x07)
    ak, nonce, expires_at = inv.take(32), inv.take(16), inv.u64()
    inv.end()
    seed, link_validity = st["account"][:32], int.from_bytes(st["account"][44:52], "big")
    R.check("primary invite: account key (16)", ak, ed25519_pub(seed))
    R.check("primary invite: expires_at (16 step 1)", expires_at, p["invite"]["now"] + link_validity)
    # Its unit: the meta record, the oldest invitation's deletion if 4 were pending, the new one.
    n = len(st["invitations"])
    unit = [(b"\x82", primary_meta(st["epoch"] + 1, st["next_device"], st["next_version"], n + 1,
                                   st["needs_resync"], hx(p["invite"]["tag"])))]
    R.true("primary invite: a new tag for the unit (15.4, 19)", p["invite"]["tag"] != p["tag"])
    if n == 4:
        unit.append((b"\x84" + u64(0), None))
    unit.append((b"\x84" + u64(n), nonce + u64(expires_at)))
    R.check("primary invite: unit size (15.4)", len(p["invite"]["unit"]), len(unit))
    for (key, value), rv in zip(unit, p["invite"]["unit"]):
        R.check(f"primary invite: key {key.hex()} (15.4)", key, rv["key"])
        if value is None:
            R.true(f"primary invite: {key.hex()} deleted (15.4)", rv["value"] is None)
        else:
            R.check(f"primary invite: {key.hex()} value (15.4)", value, rv["value"])
    # 15.3: the state restored from a backup and resynced with its own list at `now`: the
    # counters skip past what the lost state may have issued, and past the time's floor; the
    # list signed holds the primary's entry alone, at the next version, issued at `now`.
    held = decode_list(st["list"])
    seed = st["account"][:32]
    policy = (int.from_bytes(st["account"][32:36], "big"), int.from_bytes(st["account"][36:44], "big"))
    floors = []
    for rv in p["resync"]:
        t = rv["now"]
        w = f"primary resync at {t} (15.3)"
        spread = int.from_bytes(H(b"ratchetry v1 restore spread" + u64(t))[4:8], "big") % (1 << 20)
        highest = max(e["device_id"] for e in held["entries"])
        next_device = max(st["next_device"], highest + 1) + (1 << 16) + spread
        skipped = max(st["next_version"], held["version"] + 1) + (1 << 32)
        floor = min(t, 1 << 42) << 10
        floors.append(floor > skipped)
        version = max(skipped, floor)
        own = held["entries"][0]
        signed = sign_list(seed, version, t, [(own["device_id"], own["ik"], own["linked_at"], own["expires_at"],
                                               own["binding"])], policy)
        R.check(f"{w}: the list signed", signed, rv["signed"])
        after = decode_primary_state(hx(rv["state"]))
        R.check(f"{w}: next device id", after["next_device"], next_device)
        R.check(f"{w}: next version", after["next_version"], version + 1)
        R.check(f"{w}: the list held", after["list"], signed)
        R.true(f"{w}: no invitation, approval or confirmation kept",
               after["invitations"] == [] and after["admitted"] == [] and after["confirmed"] == [])
        R.true(f"{w}: resynced", not after["needs_resync"])
    R.check("primary resync: an early clock takes the constant skip, a real one the time", floors, [False, True])


# ----------------------------------------------------------------------------------------------
# errors.json: refused inputs (13), replayed on this file's own models
# ----------------------------------------------------------------------------------------------

SNAPSHOTS = {}  # the models the other checks reached: by "file#/pointer" and by state bytes
DIRECTORY = "."


def snapshot(reference, model):
    """Keeps a copy of a receiver model (a session, (identity, prekey store), an inbound sender
    key) as one of the other checks reached it, for errors.json's receivers."""
    model = copy.deepcopy(model)
    state = model[1].to_bytes() if isinstance(model, tuple) else model.to_bytes()
    if reference is not None:
        SNAPSHOTS[reference] = model
    SNAPSHOTS[state] = model


_FILES = {}


def referenced(value):
    """errors.json's byte strings: `file#/json/pointer` (RFC 6901) into a committed file, or hex."""
    if "#" not in value:
        return hx(value)
    name, pointer = value.split("#", 1)
    if name not in _FILES:
        with open(os.path.join(DIRECTORY, name)) as fh:
            _FILES[name] = json.load(fh)
    node = _FILES[name]
    for part in pointer.split("/")[1:]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return hx(node)


def receiver_model(value):
    """The model of a receiver state: the snapshot the other checks reached with those bytes."""
    model = SNAPSHOTS.get(value) if "#" in value else None
    if model is None:
        model = SNAPSHOTS.get(referenced(value))
    return copy.deepcopy(model)


def model_state(model):
    return model[1].to_bytes() if isinstance(model, tuple) else model.to_bytes()


X3DH_ERRORS = ("BadSignedPreKeySignature", "BadKemPreKeySignature", "UnknownSignedPreKey",
               "UnknownOneTimePreKey", "UnknownKemPreKey", "Replayed", "SignedPreKeyExhausted",
               "LastResortExhausted")
LAYER = {"bundle": "X3dh", "prekey_message": "Ratchet", "ratchet_message": "Ratchet",
         "group_message": "Group", "device_list": "Device"}


def error_name(path, err):
    """Section 13's name of an error raised by this file's models on `path`."""
    name = str(err)
    if isinstance(err, DecodeError):
        return f"Decode({name})"
    if name.split("(")[0].split(" ")[0] in X3DH_ERRORS:
        return f"X3dh({name})"
    return f"{LAYER[path]}({name})"


def refused(v, what):
    """Runs one vector's input through this file's model of its path; returns the error name
    (None when the input was accepted, or the model cannot judge it: it then fails the vector)."""
    path, data, rcv, prm = v["path"], hx(v["input"]), v.get("receiver", {}), v.get("params", {})
    try:
        if path == "bundle":
            verify_bundle(decode_bundle(data))
        elif path in ("prekey_message", "ratchet_message"):
            kind, msg = decode_pairwise_message(data)
            if "prekey_store_state" in rcv:
                identity = Identity(referenced(rcv["identity_state"])[2:])
                R.check(f"{what}: identity state (10.1)", b"\x01\x83" + identity.seed,
                        referenced(rcv["identity_state"]))
                model = receiver_model(rcv["prekey_store_state"])
                if model is None:
                    R.fail(f"{what}: the prekey store is not one the pqxdh.json replay reached")
                    return None
                _, store = model
                before = store.to_bytes()
                R.check(f"{what}: the receiver's prekey store", before, referenced(rcv["prekey_store_state"]))
                try:
                    accept_prekey_message(identity, store, msg)
                finally:
                    R.check(f"{what}: the store is unchanged (13)", store.to_bytes(), before)
            else:
                session = receiver_model(rcv["session_state"])
                if session is None:
                    R.fail(f"{what}: the session is not one the transcript replay reached")
                    return None
                before = session.to_bytes()
                R.check(f"{what}: the receiver's session", before, referenced(rcv["session_state"]))
                try:
                    if kind == "prekey":
                        if not session.continues(msg):
                            raise ProtocolError("WrongSession")  # 8.6, last paragraph
                        session.decrypt(msg["ratchet"])
                    else:
                        session.decrypt(msg)
                finally:
                    R.check(f"{what}: the session is unchanged (13)", session.to_bytes(), before)
        elif path == "group_message":
            context = hx(prm.get("message_context", ""))
            if len(context) <= MAX_MESSAGE_CONTEXT:
                decode_group_message(data)
            key = receiver_model(rcv["inbound_sender_key_state"])
            before = key.to_bytes()
            R.check(f"{what}: the receiver's inbound key", before, referenced(rcv["inbound_sender_key_state"]))
            try:
                key.receive(data, context)
            finally:
                R.check(f"{what}: the inbound key is unchanged (13)", key.to_bytes(), before)
        elif path == "device_list":
            expected = hx(prm["expected_account"])
            known = referenced(rcv["known_list"]) if "known_list" in rcv else None
            if known is not None:
                verify_list(known, expected)
            d = verify_list(data, expected, known)
            entry = next(e for e in d["entries"] if e["device_id"] == prm["device_id"])
            if entry["expires_at"] is not None and prm["now"] >= entry["expires_at"]:
                return f"Device(CompanionExpired({(d['ak'] + u32(prm['device_id'])).hex()}))"
        elif path == "sealed_state":
            r = Reader(data)
            r.head(2, 0x90)
            sequence, nonce = r.u64(), r.take(12)
            try:
                aead_open(hx(prm["key"]), nonce, sealed_state_ad(sequence, hx(prm["slot"])), r.rest())
            except ProtocolError:
                return "Crypto(AuthenticationFailed)"
            if sequence < prm["min_sequence"]:
                return f"State(Rollback {{ sealed_at: {sequence}, expected_at_least: {prm['min_sequence']} }})"
        elif path == "envelope":
            return refused_envelope(v, what, data)
        else:
            R.fail(f"{what}: unknown path {path}")
    except (DecodeError, ProtocolError) as err:
        return error_name(path, err)
    return None


def refused_envelope(v, what, data):
    """18.4-18.6's first checks on Bob's phone at the end of devices.json (records.json): this
    file does not rebuild a whole device, so it checks, in 18.5's order, the rule each vector
    names on the values devices.json and records.json give, and says which error follows."""
    me = hx(_rec("address"))
    env = decode_envelope(data)  # DecodeError: section 4 / 18.1
    read = read_ring()
    mid = envelope_id(data)
    if mid in read:
        return f"Fanout(Duplicate {{ envelope_id: {mid.hex()} }})"
    R.true(f"{what}: its id (18.4) is not in the read ring", mid not in read)
    devices = _devices_json()
    held = {bytes.fromhex(a["account_public"]): a["lists"][-1] for a in devices["accounts"]}
    now = v["params"]["now"]
    if env["kind"] == 1:
        if env["recipient"] != me:
            return "Fanout(NotForThisDevice)"
        lst = held[env["sender"][:32]]
        R.true(f"{what}: the sender is active in the list held (15.2)",
               _active(lst, env["sender"], now))
        if env["sender_version"] > lst["version"]:
            return (f"Fanout(DeviceListsDiverge {{ account: {env['sender'][:32].hex()}, "
                    f"used: {env['sender_version']}, held: {lst['version']} }})")
    elif env["kind"] == 3:
        R.true(f"{what}: addressed to this device", env["target"] == me)
        lst = held[env["requester"][:32]]
        R.true(f"{what}: the requester is active (15.2)", _active(lst, env["requester"], now))
        listed = _listed_ik(lst, env["requester"])
        R.check(f"{what}: the bundle's IK is the requester's listed IK", decode_bundle(env["bundle"])["ik"], listed)
        base = referenced(v["base"])
        R.true(f"{what}: the unchanged request's signature verifies (18.6)",
               verify(listed, L_RETRY + base[:-64], base[-64:]))
        if not verify(listed, L_RETRY + env["signed"], env["signature"]):
            return "Crypto(BadSignature)"
    return None


def _rec(field):
    with open(os.path.join(DIRECTORY, "records.json")) as fh:
        return json.load(fh)[field]


def _devices_json():
    with open(os.path.join(DIRECTORY, "devices.json")) as fh:
        return json.load(fh)


def read_ring():
    """The message ids in the read-slot records (0x0e) of records.json's whole-state bytes."""
    r = Reader(hx(_rec("whole_state")))
    r.head(3, 0x87)
    ids = set()
    for _ in range(r.u32()):
        k, val = r.take(r.u32()), r.take(r.u32())
        if k[:1] == b"\x0e":
            ids.add(val)
    return ids


def _entry(lst, address):
    return next((e for e in lst["entries"] if e["device_id"] == int.from_bytes(address[32:], "big")), None)


def _active(lst, address, now):
    e = _entry(lst, address)
    return e is not None and (e["expires_at"] is None or now < e["expires_at"])


def _listed_ik(lst, address):
    return hx(_entry(lst, address)["identity_public"])


def check_errors(doc):
    n = 0
    for v in doc["vectors"]:
        what = v["name"]
        base = referenced(v["base"])
        data = base
        for e in v["edits"]:
            data = data[:e["offset"]] + hx(e["now"]) + data[e["offset"] + e["len"]:]
        R.check(f"{what}: input = base with the edits applied", data, v["input"])
        R.true(f"{what}: the input differs from the base, or the receiver makes it wrong",
               data != base or "receiver" in v or v["path"] in ("group_message", "device_list", "sealed_state"))
        got = refused(v, what)
        R.check(f"{what}: refused with", got, v["error"])
        n += 1
        # The rule each kind of vector names, shown on its own where a model's error alone
        # would not show it.
        inp = hx(v["input"])
        if v["path"] == "device_list" and v["name"].endswith("wrong-signer"):
            bob = next(a for a in _devices_json()["accounts"] if a["name"] == "bob")
            R.true(f"{what}: the signature is Bob's account key's",
                   verify(hx(bob["account_public"]), L_DEVICE_LIST + inp[:-64], inp[-64:]))
        if v["path"] == "device_list" and v["name"].endswith("too-many-companions"):
            d = decode_list(inp)
            R.true(f"{what}: every binding verifies (only the count is wrong)",
                   all(verify(e["ik"], L_BINDING + d["ak"], e["binding"]) for e in d["entries"]))
            R.true(f"{what}: more than its own signed max_companions companions",
                   len(d["entries"]) - 1 > d["policy"]["max_companions"])
        if v["path"] == "device_list" and v["name"].endswith("policy-above-ceiling"):
            d = decode_list(inp)
            R.true(f"{what}: the signed policy exceeds the ceiling, the companions do not",
                   d["policy"]["max_companions"] > COMPANION_CEILING >= len(d["entries"]) - 1)
        if v["path"] == "device_list" and v["name"].endswith("policy-downgrade"):
            R.true(f"{what}: an old-form list (format 2) newer than the known list with a policy",
                   inp[0] == 2 and decode_list(inp)["version"]
                   > decode_list(referenced(v["receiver"]["known_list"]))["version"])
        if v["path"] == "device_list" and v["name"].endswith("rollback"):
            R.true(f"{what}: the list's version is below the known one",
                   decode_list(inp)["version"] < decode_list(referenced(v["receiver"]["known_list"]))["version"])
    R.true("errors.json: vectors present", n > 0)


# ----------------------------------------------------------------------------------------------
# ed25519-strict.json: section 2's strict Verify, by hand on top of `cryptography`
# ----------------------------------------------------------------------------------------------

ED_L = 2 ** 252 + 27742317777372353535851937790883648493


def _ed_mul(k, pt):
    out = (0, 1)
    while k:
        if k & 1:
            out = _ed_add(out, pt)
        pt, k = _ed_add(pt, pt), k >> 1
    return out


def _ed_decode(enc):
    """RFC 8032 5.1.3 leniently: y reduced mod p, x = 0 taken whatever the sign bit. Returns
    (point or None, y >= p, x = 0 with the sign bit set)."""
    n = int.from_bytes(enc, "little")
    sign, y = n >> 255, n & ((1 << 255) - 1)
    y_ge_p, y = y >= ED_P, y % ED_P
    x2 = (y * y - 1) * pow(ED_D * y * y + 1, ED_P - 2, ED_P) % ED_P
    x = pow(x2, (ED_P + 3) // 8, ED_P)
    if (x * x - x2) % ED_P:
        x = x * pow(2, (ED_P - 1) // 4, ED_P) % ED_P
    if (x * x - x2) % ED_P:
        return None, y_ge_p, False
    negative_zero = x == 0 and sign == 1
    if x & 1 != sign:
        x = (ED_P - x) % ED_P
    return (x, y), y_ge_p, negative_zero


def _ed_encode(pt):
    return (pt[1] | ((pt[0] & 1) << 255)).to_bytes(32, "little")


def _ed_base():
    y = 4 * pow(5, ED_P - 2, ED_P) % ED_P
    return _ed_decode(y.to_bytes(32, "little"))[0]


def strict_violations(a, m, sig):
    """PROTOCOL.md 2's Verify: A and R canonical (y < p, and RFC 8032's x = 0 with sign bit 1
    refused) and not of small order, S < L, then [S]B = R + [k]A (cofactorless). The equation
    is judged only when every other rule holds."""
    out = []
    r_enc, s = sig[:32], int.from_bytes(sig[32:], "little")
    points = {}
    for who, enc in (("A", a), ("R", r_enc)):
        pt, y_ge_p, negative_zero = _ed_decode(enc)
        points[who] = pt
        if y_ge_p:
            out.append(f"{who} y >= p")
        if pt is None:
            out.append(f"{who} not a point")
        elif negative_zero and not y_ge_p:
            out.append(f"{who} x = 0 with sign bit 1")
        if pt is not None and _ed_mul(8, pt) == (0, 1):
            out.append(f"{who} small order")
    if s >= ED_L:
        out.append("S >= L")
    out.sort(key=lambda x: x[0] != "A")
    if not out:
        k = int.from_bytes(hashlib.sha512(r_enc + a + m).digest(), "little") % ED_L
        if _ed_mul(s, _ed_base()) != _ed_add(points["R"], _ed_mul(k, points["A"])):
            out.append("cofactorless equation")
    return out


def lenient_accepts(a, m, sig):
    """A lenient verifier: points decoded as _ed_decode does, S not range-checked, the cofactored
    equation [8][S]B = [8](R + [k]A), k hashed over R and A as given or re-encoded."""
    (pa, _, _), (pr, _, _) = _ed_decode(a), _ed_decode(sig[:32])
    if pa is None or pr is None:
        return False
    s = int.from_bytes(sig[32:], "little")
    left = _ed_mul(8, _ed_mul(s, _ed_base()))
    for r_enc, a_enc in ((sig[:32], a), (_ed_encode(pr), _ed_encode(pa))):
        k = int.from_bytes(hashlib.sha512(r_enc + a_enc + m).digest(), "little") % ED_L
        if left == _ed_mul(8, _ed_add(pr, _ed_mul(k, pa))):
            return True
    return False


def check_ed25519_strict(doc):
    valid = invalid = 0
    for v in doc["vectors"]:
        what = v["name"]
        a, m, sig = hx(v["public_key"]), hx(v["message"]), hx(v["signature"])
        got = strict_violations(a, m, sig)
        R.check(f"{what}: rules broken (2)", got, v["violations"])
        R.check(f"{what}: valid", not got, v["valid"])
        R.check(f"{what}: a lenient verifier accepts it", lenient_accepts(a, m, sig), v["lenient_accepts"])
        # 5.1: the key check alone (IK, AK, signing keys) agrees with the A rules.
        R.check(f"{what}: 5.1 key validity", ed25519_key_valid(a), not any(x.startswith("A") for x in got))
        # `cryptography` (OpenSSL) must agree wherever it is strict: it accepts every valid
        # case, and refuses the ones the cofactorless equation or S >= L refuses.
        if not got:
            R.true(f"{what}: cryptography verifies it", verify(a, m, sig))
        elif got in (["cofactorless equation"], ["S >= L"]):
            R.true(f"{what}: cryptography refuses it", not verify(a, m, sig))
        valid += not got
        invalid += bool(got)
    R.true("ed25519-strict.json: a valid control and invalid cases", valid >= 1 and invalid >= 6)


# ----------------------------------------------------------------------------------------------
# pq-ratchet.json: 25 (erasure code, epochs, state, operations, extension), 5.3, 8, 10.3, 11
# ----------------------------------------------------------------------------------------------

PQ_STORE_NOW = 1790000000000  # created_at of Bob's prekeys (in no compared bytes here)
PQ_ERASURE_SIZES = (2, 4, 30, 36)  # the file's description: payloads of 2, 4, 30 and 36 symbols


def check_pq_erasure(doc):
    """25.1: the payloads drawn from rng_seed, their chunks at the listed indexes, and decoding
    from k chunks of several index sets."""
    rng = SeededRng(hx(doc["rng_seed"]))
    R.check("erasure vectors: one per size", len(doc["erasure"]), len(PQ_ERASURE_SIZES))
    for i, (k, v) in enumerate(zip(PQ_ERASURE_SIZES, doc["erasure"])):
        w = f"erasure {i} (k = {k})"
        payload = rng.draw(32 * k)  # k symbols of 32 bytes, drawn in order
        R.check(f"{w}: payload drawn from rng_seed", payload, v["payload"])
        for c in v["chunks"]:
            R.check(f"{w}: chunk {c['index']} (25.1)", erasure_chunk(payload, c["index"]), c["chunk"])
        chunks = {j: erasure_chunk(payload, j) for j in range(64)}
        listed = [c["index"] for c in v["chunks"]]
        index_sets = {
            "the last k": list(range(64 - k, 64)),
            "odd indexes, then even ones from the top": (list(range(1, 64, 2))
                                                         + list(range(62, -1, -2)))[:k],
            "the listed, then from the top": (listed + [j for j in range(63, -1, -1)
                                                        if j not in listed])[:k],
        }
        for name, indexes in index_sets.items():
            got = erasure_decode([(j, chunks[j]) for j in indexes], k)
            R.check(f"{w}: decoding {name} of 64 chunks (25.1)", got, payload)


def check_pq_ratchet(doc):
    """The conversation replayed from its seed: every message's extension and wire bytes, both
    epochs after it, both states at the checkpoints. What the conversation does not reach, so
    that the code for it here is a reading of PROTOCOL.md the vectors do not confirm: Receive on
    the skipped-key path (8.6 step 1: no lost message arrives later), a chunk epoch outside
    c_send..c_send + 16 (25.4 step 3), a count saturating, a vector
    failing the H3 or modulus check (25.2), chunks arriving out of index order (25.1's "first k"),
    the boundary of rule e's `sent_header - 2 < floor(sent_vector / 2)`, peer_knows raised by a
    header or vector chunk, the choice between c_recv and peer_knows in `oldest` (25.3), and
    PeerRestored's resets of acknowledgements and of the incoming collectors (`restore`'s peer
    holds only the forgotten encapsulation's chunks, and the restored side's first message
    acknowledges its header again before it sends)."""
    check_pq_erasure(doc)
    conv = doc["conversation"]
    rng = SeededRng(hx(conv["rng_seed"]))
    draws = lambda n, name: rng.draw(n)  # the file lists no draws: only their order is checked
    # 11: Alice's identity, Bob's, PreKeyStore::new (signed prekey secret 32, last-resort seed
    # 64; a current store, whose ML-KEM prekey ids have bit 31, 5.3), then one one-time ML-KEM
    # prekey (64).
    alice = Identity(rng.draw(32))
    bob = Identity(rng.draw(32))
    store = PreKeyStore(bob, rng.draw(32), rng.draw(64), PQ_STORE_NOW, before_pq_ratchet=False)
    kem_id = store.add_one_time_kem_prekey(rng.draw(64), PQ_STORE_NOW)
    R.check("a current store's first one-time ML-KEM prekey id (5.3)", kem_id, PQ_BIT + 2)
    bundle = store.bundle(None, kem_id)
    R.check("bundle (6)", bundle, conv["bundle"])
    b = decode_bundle(bundle)
    verify_bundle(b)
    R.ok()
    ek, m, r = rng.draw(32), rng.draw(32), rng.draw(32)  # 11: Session::initiate
    alice_s, x = Session.initiate(alice, b, ek, m, r)
    check_kem_cross("initiation", store.kems[kem_id].seed, x)
    R.true("the initiator's session runs the post-quantum ratchet (8.1)", alice_s.pq is not None)
    R.check("loss rule", conv["loss"], "message i (from 0) is lost when i % 4 == 2 or i % 10 == 7")
    sessions, checkpoints, agreed = {"a": alice_s, "b": None}, 0, set()
    for i, v in enumerate(conv["messages"]):
        frm, to = ("a", "b") if i % 2 == 0 else ("b", "a")
        label = f"{frm}{i // 2}"
        w = f"message {i} ({label})"
        R.check(f"{w}: label", label, v["label"])
        plaintext = hx(v["plaintext"])
        out = sessions[frm].encrypt(plaintext, draws)  # 8.5, 25.4; draws per 11
        R.check(f"{w}: extension (25.5)", out["ext"], v["extension"])
        R.check(f"{w}: wire (8.4, 9)", out["wire"], v["wire"])
        delivered = not (i % 4 == 2 or i % 10 == 7)  # the file's loss rule (checked above)
        R.check(f"{w}: delivered (the file's loss rule)", delivered, v["delivered"])
        if delivered:
            kind, msg = decode_pairwise_message(out["wire"])
            if sessions[to] is None:
                R.true(f"{w}: a new session starts from a pre-key message", kind == "prekey")
                sessions[to], got = accept_prekey_message(bob, store, msg)
                R.true(f"{w}: the responder's session runs the ratchet (8.1)", sessions[to].pq is not None)
            elif kind == "prekey":
                R.true(f"{w}: the pre-key message continues the session (8.6)", sessions[to].continues(msg))
                got = sessions[to].decrypt(msg["ratchet"])
            else:
                got = sessions[to].decrypt(msg)
            R.check(f"{w}: decrypted plaintext", got, plaintext)
        check_pq_epochs(w, sessions, v, agreed)
        for who, key in (("a", "alice_state"), ("b", "bob_state")):
            if key not in v:
                continue
            checkpoints += 1
            st = sessions[who]
            R.check(f"{w}: {key} (10.3 version 3, 25.3)", st.to_bytes(), v[key])
            # 25.3: the encoding holds the whole state: the conversation goes on from our own
            # bytes decoded (c1, ss, c2 and ek recomputed from m, header, vector and seed).
            tail = st.pq.to_bytes()
            decoded = decode_pq_state(tail, st.role == "initiator")
            R.check(f"{w}: {key}: pq_state decodes and encodes again (25.3)", decoded.to_bytes(), tail)
            st.pq = decoded
    n = len(conv["messages"])
    R.check("state checkpoints (both sides, every 40th message and the last)", checkpoints,
            2 * len({i for i in range(n) if i % 40 == 39} | {n - 1}))
    last = conv["messages"][-1]
    R.true("the conversation completes three epochs (the file's description)",
           min(last["alice_epoch"], last["bob_epoch"]) >= 3)
    R.true("S_x cross-checked for every epoch both sides reached", agreed >= set(range(1, 4)))
    check_pq_restore(doc["restore"], sessions, draws)


def check_pq_epochs(w, sessions, v, agreed):
    """Both epochs against the file's, and (25.2) both sides' S_x for each epoch both reached
    and not yet compared, `agreed` (our KEM768 Encaps against cryptography's Decaps)."""
    a_pq, b_pq = sessions["a"].pq, sessions["b"].pq
    R.check(f"{w}: alice_epoch", a_pq.e, v["alice_epoch"])
    R.check(f"{w}: bob_epoch", b_pq.e, v["bob_epoch"])
    for x in sorted((set(a_pq.secrets) & set(b_pq.secrets)) - agreed):
        R.check(f"{w}: S_{x} of both sides (KEM768 cross-check)", a_pq.secrets[x], b_pq.secrets[x])
        agreed.add(x)


def check_pq_restore(ep, sessions, draws):
    """pq-ratchet.json `restore`: its events replayed on the conversation's sessions with the same
    generator. A side restored from a copy and renewed (8.5) sends a chain whose PN is below
    what the peer read of the old one, so the peer runs PeerRestored (8.6 step 4, 25.4); without
    it the peer decapsulates a mix of two ciphertexts and the wire bytes part after the restore."""
    who = {"alice": "a", "bob": "b"}
    in_flight = {"a": [], "b": []}
    copied, agreed, restored = None, set(), False
    for k, v in enumerate(ep["events"]):
        side = who[v["side"]]
        peer = "b" if side == "a" else "a"
        w = f"restore event {k} ({v['event']} {v['side']} {v.get('label', '')})"
        if v["event"] == "send":
            plaintext = hx(v["plaintext"])
            R.check(f"{w}: plaintext", plaintext, b"message " + v["label"].encode())
            out = sessions[side].encrypt(plaintext, draws)  # 8.5, 25.4
            R.check(f"{w}: extension (25.5)", out["ext"], v["extension"])
            R.check(f"{w}: wire (8.4, 9)", out["wire"], v["wire"])
            in_flight[peer].append((v["label"], plaintext, out["wire"]))
        elif v["event"] == "read":
            label, plaintext, wire = in_flight[side].pop(0)
            R.check(f"{w}: the oldest message in flight", label, v["label"])
            kind, msg = decode_pairwise_message(wire)
            R.true(f"{w}: a ratchet message", kind == "ratchet")
            R.check(f"{w}: decrypted plaintext", sessions[side].decrypt(msg), plaintext)
            check_pq_epochs(w, sessions, v, agreed)
        elif v["event"] == "copy":
            copied = copy.deepcopy(sessions[side])
        elif v["event"] == "restore":
            R.true(f"{w}: a copy was taken", copied is not None)
            sessions[side], copied, restored = copied, None, True
            sessions[side].renew()  # 8.5 Renewal
        else:
            R.fail(f"{w}: unknown event")
    R.true("the episode restores a side", restored)
    R.check("restore: alice_epoch at the end", sessions["a"].pq.e, ep["alice_epoch"])
    R.check("restore: bob_epoch at the end", sessions["b"].pq.e, ep["bob_epoch"])
    R.check("restore: alice_state at the end (10.3, 25.3)", sessions["a"].to_bytes(), ep["alice_state"])
    R.check("restore: bob_state at the end (10.3, 25.3)", sessions["b"].to_bytes(), ep["bob_state"])


# ----------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------

CHECKS = {  # in run order: records.json uses devices.json's replay
    "rfc7748.json": check_rfc7748, "rfc8032.json": check_rfc8032, "rfc5869.json": check_rfc5869,
    "rfc4231.json": check_rfc4231, "aes-gcm.json": check_aes_gcm,
    "kdf-chains.json": check_kdf_chains, "pqxdh.json": check_pqxdh,
    "ratchet-transcript.json": check_ratchet_transcript, "sender-keys.json": check_sender_keys,
    "history-sync.json": check_history_sync, "call-keys.json": check_call_keys,
    "devices.json": check_devices, "records.json": check_records,
    "errors.json": check_errors, "ed25519-strict.json": check_ed25519_strict,
    "pq-ratchet.json": check_pq_ratchet,
}


USES_CONTEXT = (check_devices, check_records)


def main():
    global DIRECTORY
    directory = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    DIRECTORY = directory
    present = sorted(f for f in os.listdir(directory) if f.endswith(".json"))
    order = [f for f in CHECKS if f in present] + [f for f in present if f not in CHECKS]
    context = {}
    for name in order:
        R.begin(name)
        check = CHECKS.get(name)
        if check is None:
            R.fail("no check is written for this file")
        else:
            try:
                with open(os.path.join(directory, name)) as fh:
                    doc = json.load(fh)
                if check in USES_CONTEXT:  # records.json reuses devices.json's replay
                    check(doc, context)
                else:
                    check(doc)
            except Exception:
                R.fail("exception", traceback.format_exc().strip().replace("\n", "\n    "))
        if R.passed[name] == 0:
            R.fail("no check passed for this file")
        print(f"{name}: {R.passed[name]} checks passed")
    for name in CHECKS:
        if name not in present:
            print(f"(not present: {name})")
    total = sum(R.passed.values())
    print(f"{total} passed, {R.failures} failed, {R.skips} skipped")
    sys.exit(1 if R.failures else 0)


if __name__ == "__main__":
    main()
