"""End-to-end encryption through the real broker and gateway (docs/e2e.md):
`mqim --e2e` devices talk without the gateway ever holding the text; the C
library (mbedTLS) and the independent Python implementation (e2e_reference,
OpenSSL) open each other's messages; tampered and misdirected ciphertexts
are refused and never shown as messages; a changed device key is warned
about, or refused with --refuse-changed-keys until the user trusts it."""
import base64
import glob
import json
import os
import re
import shutil
import unittest

import e2e_reference as ref
from harness import EnvTest, wait_until

SECRET = "the eagle lands at 0400"


class E2E(EnvTest):
    def run_ok(self, user, device, *args, rc=0):
        r = self.env.mqim(user, device, *args)
        self.assertEqual(r.returncode, rc, "mqim %s: %s %s" % (" ".join(map(str, args)), r.stdout, r.stderr))
        return r

    def keys_of(self, watcher, user):
        """The retained im/keys/{user} as watcher reads it."""
        c = self.env.client(watcher, subs=["im/keys/%s" % user])
        msgs = c.expect("keys/%s" % user, lambda p: isinstance(p, dict) and p.get("keys"))
        return {k["device"]: base64.b64decode(k["x25519"]) for k in msgs[-1]["keys"]}

    def gateway_store_bytes(self):
        data = b""
        for f in glob.glob(os.path.join(self.env.dir, "gateway", "**", "*.mdb"), recursive=True):
            with open(f, "rb") as fh:
                data += fh.read()
        self.assertTrue(data, "no gateway LMDB files found")
        return data

    def test_cli_to_cli_gateway_sees_only_ciphertext(self):
        # bob's watch and alice's laptop connect once: their keys are published
        self.run_ok("bob", "watch", "flush")
        self.run_ok("alice", "laptop", "flush")
        wait_until(lambda: set(self.keys_of("carol", "bob")) == {"watch"}, 10, "bob's key")
        raw = self.env.client("bob")  # what the broker delivers to bob's inbox
        r = self.run_ok("alice", "phone", "--e2e", "send", "bob", SECRET)
        self.assertIn("sent", r.stdout)
        msg = raw.expect("in/msg", lambda p: isinstance(p, dict) and "enc" in p)[-1]
        self.assertNotIn("body", msg)
        self.assertEqual(msg["from"], "alice")
        self.assertEqual({(x["u"], x["d"]) for x in msg["enc"]["r"]},
                         {("alice", "phone"), ("alice", "laptop"), ("bob", "watch")})
        self.assertNotIn(SECRET.encode(), self.gateway_store_bytes())
        # bob's device opens it; so does alice's other device (the echo)
        r = self.run_ok("bob", "watch", "listen", "1")
        self.assertIn("(e2e) ", r.stdout)
        self.assertIn("alice/phone -> bob: " + SECRET, r.stdout)
        r = self.run_ok("alice", "laptop", "listen", "1")
        self.assertIn("alice/phone -> bob: " + SECRET, r.stdout)
        # history opens it too (no replay check there)
        r = self.run_ok("bob", "watch", "history", "alice")
        self.assertIn("(e2e) " + SECRET, r.stdout)
        # a device without E2E state for this message (not a recipient) cannot
        self.run_ok("bob", "tablet", "flush")
        r = self.run_ok("bob", "tablet", "history", "alice")
        self.assertIn("cannot open: e2e_not_for_device", r.stdout)
        self.assertNotIn(SECRET, r.stdout)

    def test_interop_with_the_reference_implementation(self):
        self.run_ok("bob", "watch", "flush")
        bob_watch = self.keys_of("carol", "bob")["watch"]
        # 1. Python seals as alice/py for bob's watch; the C device opens it
        alice_py = os.urandom(32)
        a = self.env.client("alice")
        a.pub("im/u/alice/out/key", {"device": "py", "x25519": base64.b64encode(ref.public_key(alice_py)).decode()},
              retain=True)
        enc = ref.seal("alice", "py", alice_py, "bob", None, "py-1", "text",
                       [("bob", "watch", bob_watch), ("alice", "py", ref.public_key(alice_py))],
                       "from python \u2713", os.urandom(32), os.urandom(32))
        a.dm("bob", json.dumps({"id": "py-1", "to": "bob", "device": "py", "type": "text", "enc": json.loads(enc)}))
        a.expect_sent(lambda p: p.get("id") == "py-1")
        # 2. tampered: one ciphertext byte changed, under a new id
        bad = json.loads(enc)
        ct = bytearray(base64.b64decode(bad["ct"]))
        ct[0] ^= 1
        bad["ct"] = base64.b64encode(bytes(ct)).decode()
        a.dm("bob", json.dumps({"id": "py-1", "to": "bob", "device": "py", "type": "text", "enc": bad}))
        a.dm("bob", json.dumps({"id": "py-2", "to": "bob", "device": "py", "type": "text", "enc": bad}))
        # 3. moved: the same ciphertext under another id fails its additional data
        a.dm("bob", json.dumps({"id": "py-3", "to": "bob", "device": "py", "type": "text", "enc": json.loads(enc)}))
        a.expect_sent(lambda p: p.get("id") == "py-3")
        r = self.run_ok("bob", "watch", "listen", "3")
        lines = r.stdout.splitlines()
        self.assertIn("(e2e) [", r.stdout)
        self.assertTrue(any(l.endswith("alice/py -> bob: from python \u2713") for l in lines), r.stdout)
        refused = [l for l in lines if "e2e refused from alice/py: e2e_auth_failed" in l]
        self.assertEqual(len(refused), 2, r.stdout)  # py-2 and py-3; py-1 again was a duplicate id
        self.assertEqual(r.stdout.count("from python"), 1, r.stdout)
        # no `delivered` for what bob never saw: alice gets a `refused` ack
        # with the reason for each, `delivered` only for py-1 (issue 14)
        refusals = a.expect("in/ack", lambda p: isinstance(p, dict) and p.get("status") == "refused", count=2)
        self.assertEqual(sorted((p["id"], p["code"], p["by"], p.get("device")) for p in refusals),
                         [("py-2", "e2e_auth_failed", "bob", "watch"), ("py-3", "e2e_auth_failed", "bob", "watch")])
        a.expect("in/ack", lambda p: isinstance(p, dict) and p.get("status") == "delivered")
        delivered = a.matching("in/ack", lambda p: isinstance(p, dict) and p.get("status") == "delivered")
        self.assertEqual([p["id"] for p in delivered], ["py-1"])

        # 4. the C library seals for a Python device: carol/py opens it
        carol_py = os.urandom(32)
        c = self.env.client("carol")
        c.pub("im/u/carol/out/key", {"device": "py", "x25519": base64.b64encode(ref.public_key(carol_py)).decode()},
              retain=True)
        wait_until(lambda: "py" in self.keys_of("alice", "carol"), 10, "carol's key")
        self.run_ok("alice", "phone", "--e2e", "send", "carol", "to python")
        msg = c.expect("in/msg", lambda p: isinstance(p, dict) and "enc" in p)[-1]
        text, sd, spk = ref.open_message(msg, "carol", "py", carol_py)
        self.assertEqual((text, sd), ("to python", "phone"))
        # misdirected: carol's ciphertext copied to bob (no "to": the gateway sets it)
        c.dm("bob", json.dumps({"id": "moved-1", "type": "text", "enc": msg["enc"]}))
        r = self.run_ok("bob", "watch", "listen", "1")
        self.assertIn("e2e refused from carol: e2e_not_for_device", r.stdout)
        with self.assertRaises(ref.E2EError):
            ref.open_message(dict(msg, id="other"), "carol", "py", carol_py)

    def test_changed_key_warned_or_refused(self):
        self.run_ok("bob", "watch", "flush")
        self.run_ok("alice", "phone", "--e2e", "send", "bob", "first")
        r = self.run_ok("alice", "phone", "keys", "bob")
        self.assertRegex(r.stdout, r"bob/watch ([0-9a-f]{4} ){7}[0-9a-f]{4} trusted")
        mine = self.run_ok("bob", "watch", "keys").stdout
        self.assertRegex(mine, r"this device bob/watch ([0-9a-f]{4} ){7}[0-9a-f]{4}")
        # bob reinstalls his watch: new state, new key
        shutil.rmtree(os.path.join(self.env.dir, "dev-bob-watch"))
        self.run_ok("bob", "watch", "flush")
        wait_until(lambda: self.keys_of("carol", "bob")["watch"] != b"", 10, "bob's new key")
        r = self.run_ok("alice", "phone", "keys", "bob")
        self.assertIn(" CHANGED", r.stdout)
        # refused: nothing is sent
        r = self.run_ok("alice", "phone", "--e2e", "--refuse-changed-keys", "send", "bob", "refused?", rc=4)
        self.assertIn("THE KEY OF bob/watch HAS CHANGED", r.stderr)
        self.assertIn("e2e_key_changed", r.stderr)
        # the user compares fingerprints and trusts it
        new_fp = [l for l in self.run_ok("bob", "watch", "keys").stdout.splitlines() if l.startswith("this device")][0]
        r = self.run_ok("alice", "phone", "keys", "trust", "bob", "watch")
        self.assertIn(new_fp.split()[-8:][0], r.stdout)
        r = self.run_ok("alice", "phone", "--e2e", "--refuse-changed-keys", "send", "bob", "after trust")
        self.assertNotIn("CHANGED", r.stderr)
        # without --refuse-changed-keys a change is warned about and trusted
        shutil.rmtree(os.path.join(self.env.dir, "dev-bob-watch"))
        self.run_ok("bob", "watch", "flush")
        r = self.run_ok("alice", "phone", "--e2e", "send", "bob", "warned")
        self.assertIn("THE KEY OF bob/watch HAS CHANGED", r.stderr)
        r = self.run_ok("bob", "watch", "listen", "1")
        self.assertIn("alice/phone -> bob: warned", r.stdout)
        # a peer without any key: a clear error, nothing queued
        r = self.run_ok("alice", "phone", "--e2e", "send", "carol", "no keys", rc=4)
        self.assertIn("e2e_no_keys", r.stderr)

    def test_group_e2e(self):
        for u, d in (("bob", "watch"), ("carol", "phone")):
            self.run_ok(u, d, "flush")
        self.run_ok("alice", "phone", "group", "create", "ops", "bob", "carol")
        self.run_ok("alice", "phone", "--e2e", "send", "--group", "ops", "group secret")
        self.assertNotIn(b"group secret", self.gateway_store_bytes())
        for u, d in (("bob", "watch"), ("carol", "phone")):
            r = self.run_ok(u, d, "listen", "2")  # the group.created event, then the message
            self.assertIn("alice/phone -> #ops: group secret", r.stdout)


class Vector(unittest.TestCase):
    """docs/e2e.md's vector: the Python implementation, written from the
    document, yields exactly the bytes the C library is tested against."""

    def test_reference_matches_the_c_vector(self):
        src = os.environ["MQIM_SOURCE_DIR"]
        with open(os.path.join(src, "tests", "unit", "e2e_vector.inc")) as f:
            c_text = "".join(re.findall(r'^"((?:[^"\\]|\\.)*)"$', f.read(), re.M))
        c_text = c_text.replace('\\"', '"').replace("\\\\", "\\")
        self.assertEqual(ref.vector_enc(), c_text)
        with open(os.path.join(src, "docs", "e2e.md")) as f:
            doc = f.read()
        v = ref.VECTOR
        h = ref.additional_data("alice", "phone", ref.public_key(v["alice_phone_sk"]), ref.public_key(v["esk"]),
                                "bob", None, v["id"], "text", [("alice", "laptop"), ("alice", "phone"), ("bob", "watch")])
        self.assertIn("| H | `%s` |" % h.hex(), doc)
        self.assertIn(json.dumps(json.loads(c_text), indent=2, ensure_ascii=False), doc)
        # and it opens for bob/watch with the documented text
        env = {"id": v["id"], "from": "alice", "to": "bob", "type": "text", "enc": json.loads(c_text)}
        self.assertEqual(ref.open_message(env, "bob", "watch", v["bob_watch_sk"])[0], v["text"])


if __name__ == "__main__":
    unittest.main()
