"""E2E on the gateway (docs/e2e.md): device keys published on out/key and
republished retained on im/keys/{user}, the keys control request, and an
encrypted envelope routed with its "enc" verbatim."""
import base64
import json
import subprocess
import unittest

from harness import Client, EnvTest, wait_until

PHONE = base64.b64encode(bytes(range(1, 33))).decode()
LAPTOP = base64.b64encode(bytes(range(101, 133))).decode()
WATCH = base64.b64encode(b"\x07" * 32).decode()

# Spacing and escapes on purpose: the gateway must not re-serialise it.
ENC = ('{"v":1, "sd":"phone","spk":"%s","epk":"%s",'
       '"r":[{"u":"alice","d":"phone","k":"AAAA"},{"u":"bob","d":"watch","k":"BBBB"}],'
       '"ct":"Y3Q\\/dGV4dA=="}' % (PHONE, WATCH))


class RawClient(Client):
    """A client that also keeps each payload's bytes as the broker delivered them."""

    def __init__(self, *args, **kw):
        self.raw = []
        super().__init__(*args, **kw)

    def _on_message(self, c, userdata, m):
        with self.lock:
            self.raw.append((m.topic, m.payload))
        super()._on_message(c, userdata, m)

    def raw_on(self, suffix):
        with self.lock:
            return [p for t, p in self.raw if t.endswith(suffix)]


class Keys(EnvTest):
    def mosquitto_pub(self, user, topic, payload, retain=False):
        argv = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.env.port), "-u", user,
                "-P", self.env.passwords[user], "-q", "1", "-t", topic, "-m", payload]
        if retain:
            argv.append("-r")
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)

    def publish_alice_keys(self):
        a = self.env.client("alice")
        # one device from the shell, one through paho; both retained, QoS 1
        self.mosquitto_pub("alice", "im/u/alice/out/key",
                           json.dumps({"device": "phone", "x25519": PHONE}), retain=True)
        a.pub("im/u/alice/out/key", {"device": "laptop", "x25519": LAPTOP}, retain=True)
        return a

    def test_retained_set_and_ctl_keys(self):
        self.publish_alice_keys()
        b = self.env.client("bob")
        b.pub("im/u/bob/out/key", {"device": "watch", "x25519": WATCH}, retain=True)
        # a reader that subscribes later gets the whole set, retained
        want = [("laptop", LAPTOP), ("phone", PHONE)]

        def full_set():
            got = [p for p in watcher.matching("im/keys/alice")
                   if isinstance(p, dict) and len(p.get("keys", [])) == 2]
            return got[-1] if got else None

        watcher = self.env.client("bob", subs=["im/keys/alice"])
        doc = wait_until(full_set, 10, "alice's two keys on im/keys/alice")
        self.assertEqual(doc["user"], "alice")
        self.assertEqual([(k["device"], k["x25519"]) for k in doc["keys"]], want)
        for k in doc["keys"]:
            self.assertIsInstance(k["ts"], int)
        # bob asks for alice's keys: alice's devices, then his own
        b.pub("im/u/bob/out/ctl", {"op": "keys", "req": "k1", "user": "alice"})
        res = b.expect("in/res", lambda p: isinstance(p, dict) and p.get("req") == "k1")[0]
        self.assertEqual(res, {"op": "keys", "req": "k1", "ok": True, "keys": [
            {"user": "alice", "device": "laptop", "x25519": LAPTOP},
            {"user": "alice", "device": "phone", "x25519": PHONE},
            {"user": "bob", "device": "watch", "x25519": WATCH}]})
        b.pub("im/u/bob/out/ctl", {"op": "keys", "req": "k2", "user": "nobody"})
        res = b.expect("in/res", lambda p: isinstance(p, dict) and p.get("req") == "k2")[0]
        self.assertEqual(res["code"], "unknown_peer")
        # a bad key is refused on in/ack, with a reason
        b.pub("im/u/bob/out/key", {"device": "watch", "x25519": "AAAA"})
        ack = b.expect("in/ack", lambda p: isinstance(p, dict) and p.get("re") == "key")[0]
        self.assertEqual(ack["status"], "rejected")
        self.assertEqual(ack["code"], "field_range")
        self.assertIn("32 bytes", ack["reason"])

    def test_encrypted_message_routed_verbatim(self):
        a = self.publish_alice_keys()
        b = RawClient(self.env, "bob", self.env.passwords["bob"])
        self.env.clients.append(b)
        envelope = '{"id":"e2e-1","device":"phone","type":"text","enc":%s}' % ENC
        self.mosquitto_pub("alice", "im/u/alice/out/dm/bob", envelope)
        msg = b.expect("in/msg", lambda p: isinstance(p, dict) and p.get("id") == "e2e-1")[0]
        self.assertEqual(msg["from"], "alice")
        self.assertEqual(msg["to"], "bob")
        self.assertNotIn("body", msg)
        self.assertEqual(msg["enc"], json.loads(ENC))
        # verbatim: the text of the enc object, byte for byte
        raw = b.raw_on("in/msg")
        self.assertEqual(len(raw), 1)
        self.assertIn(b'"enc":' + ENC.encode(), raw[0])
        self.assertNotIn(b'"body"', raw[0])
        echo = a.expect("in/msg", lambda p: isinstance(p, dict) and p.get("id") == "e2e-1")[0]
        self.assertEqual(echo["enc"], json.loads(ENC))
        self.assertNotIn("body", echo)
        self.assertEqual(a.confirmations(lambda p: p.get("id") == "e2e-1"), [echo])  # the echo confirms it


if __name__ == "__main__":
    unittest.main()
