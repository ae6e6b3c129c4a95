"""An independent implementation of mqim's end-to-end format, written from
docs/e2e.md alone on python3-cryptography (OpenSSL), to check the C library
(device/src/e2e.c on mbedTLS) against: test_e2e.py seals here and opens
there, and the other way round, and checks the vector of docs/e2e.md.

    python3 e2e_reference.py vector    print the docs/e2e.md vector's enc
"""
import base64
import hashlib
import json
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ZERO_NONCE = bytes(12)
AD_LABEL = b"mqim-e2e-v1\x00"
WRAP_LABEL = b"mqim-e2e-v1 wrap"


class E2EError(Exception):
    """Why a message does not open: the status name of docs/e2e.md."""


def public_key(sk):
    return X25519PrivateKey.from_private_bytes(sk).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def x25519(sk, pk):
    # OpenSSL clamps the scalar and refuses an all-zero result itself
    return X25519PrivateKey.from_private_bytes(sk).exchange(X25519PublicKey.from_public_bytes(pk))


def lp(s):
    b = s.encode() if isinstance(s, str) else s
    assert len(b) < 256
    return bytes([len(b)]) + b


def additional_data(frm, sd, spk, epk, to, group, msg_id, mtype, recipients):
    h = AD_LABEL + lp(frm) + lp(sd) + spk + epk + lp(to or "") + lp(group or "") + lp(msg_id) + lp(mtype)
    h += bytes([len(recipients)])
    for user, device in recipients:
        h += lp(user) + lp(device)
    return hashlib.sha256(h).digest()


def kek(es, ss, h, recipient_pk):
    return HKDF(hashes.SHA256(), 32, h, WRAP_LABEL + recipient_pk).derive(es + ss)


def b64(b):
    return base64.b64encode(b).decode()


def seal(frm, sd, ssk, to, group, msg_id, mtype, recipients, text, esk, ck):
    """recipients: [(user, device, pk)]; returns the enc object's JSON text
    in the member order the C library writes (compact)."""
    spk = public_key(ssk)
    epk = public_key(esk)
    h = additional_data(frm, sd, spk, epk, to, group, msg_id, mtype, [(u, d) for u, d, _ in recipients])
    ct = ChaCha20Poly1305(ck).encrypt(ZERO_NONCE, text.encode(), h)
    r = []
    for user, device, pk in recipients:
        key = kek(x25519(esk, pk), x25519(ssk, pk), h, pk)
        r.append({"u": user, "d": device, "k": b64(ChaCha20Poly1305(key).encrypt(ZERO_NONCE, ck, h))})
    enc = {"v": 1, "sd": sd, "spk": b64(spk), "epk": b64(epk), "r": r, "ct": b64(ct)}
    return json.dumps(enc, separators=(",", ":"), ensure_ascii=False)


def _b64_exact(v, n):
    if not isinstance(v, str):
        raise E2EError("e2e_malformed")
    try:
        b = base64.b64decode(v, validate=True)
    except ValueError:
        raise E2EError("e2e_malformed")
    if len(b) != n or len(v) != 4 * ((n + 2) // 3):
        raise E2EError("e2e_malformed")
    return b


def open_message(envelope, me, my_device, rsk):
    """envelope: the decoded JSON object as the gateway delivered it.
    Returns (text, sender device, sender public key); raises E2EError."""
    enc = envelope.get("enc")
    if not isinstance(enc, dict) or set(enc) != {"v", "sd", "spk", "epk", "r", "ct"} or enc["v"] != 1:
        raise E2EError("e2e_malformed")
    spk = _b64_exact(enc["spk"], 32)
    epk = _b64_exact(enc["epk"], 32)
    if not isinstance(enc["r"], list) or not 1 <= len(enc["r"]) <= 64:
        raise E2EError("e2e_malformed")
    mine = None
    pairs = []
    for e in enc["r"]:
        if not isinstance(e, dict) or set(e) != {"u", "d", "k"}:
            raise E2EError("e2e_malformed")
        k = _b64_exact(e["k"], 48)
        pairs.append((e["u"], e["d"]))
        if e["u"] == me and e["d"] == my_device:
            if mine is not None:
                raise E2EError("e2e_malformed")
            mine = k
    if mine is None:
        raise E2EError("e2e_not_for_device")
    h = additional_data(envelope["from"], enc["sd"], spk, epk, envelope.get("to"), envelope.get("group"),
                        envelope["id"], envelope.get("type", "text"), pairs)
    rpk = public_key(rsk)
    try:
        key = kek(x25519(rsk, epk), x25519(rsk, spk), h, rpk)
        ck = ChaCha20Poly1305(key).decrypt(ZERO_NONCE, mine, h)
        ct = base64.b64decode(enc["ct"], validate=True)
        text = ChaCha20Poly1305(ck).decrypt(ZERO_NONCE, ct, h)
    except Exception:
        raise E2EError("e2e_auth_failed")
    return text.decode("utf-8"), enc["sd"], spk


def fingerprint(pk):
    d = hashlib.sha256(pk).hexdigest()[:32]
    return " ".join(d[i:i + 4] for i in range(0, 32, 4))


def seq(first):
    return bytes((first + i) & 0xFF for i in range(32))


# The vector of docs/e2e.md (the same inputs as tests/unit/test_e2e.c).
VECTOR = {
    "alice_phone_sk": seq(0x01), "alice_laptop_sk": seq(0x41), "bob_watch_sk": seq(0x21),
    "esk": seq(0x61), "ck": seq(0x81), "id": "01JE2EVECTOR000000000000001",
    "text": "Hello, Bob! \u00e9\u2713",
}


def vector_enc():
    v = VECTOR
    r = [("alice", "laptop", public_key(v["alice_laptop_sk"])), ("alice", "phone", public_key(v["alice_phone_sk"])),
         ("bob", "watch", public_key(v["bob_watch_sk"]))]
    return seal("alice", "phone", v["alice_phone_sk"], "bob", None, v["id"], "text", r, v["text"], v["esk"], v["ck"])


if __name__ == "__main__":
    if sys.argv[1:] == ["vector"]:
        print(vector_enc())
    else:
        print(__doc__)
        sys.exit(2)
