"""Conversations list with unread counts, read state shared by a user's
devices, per-device delivered receipts, and typing signals, against the
real broker and gateway."""
import json
import os
import re
import subprocess
import time
import unittest

from harness import EnvTest


class ImFeatures(EnvTest):
    def setUp(self):
        super().setUp()
        self.req = 0

    def ctl(self, client, user, op, **fields):
        self.req += 1
        rid = "r%d" % self.req
        client.pub("im/u/%s/out/ctl" % user, json.dumps(dict(fields, op=op, req=rid)))
        return client.expect("in/res", lambda p: isinstance(p, dict) and p.get("req") == rid)[0]

    def mqim(self, user, device, *args, input=None):
        state = os.path.join(self.env.dir, "dev-%s-%s" % (user, device))
        return subprocess.run([os.environ["MQIM_CLI"], "--port", str(self.env.port), "--user", user,
                               "--password", self.env.passwords[user], "--device", device,
                               "--state-dir", state, "--timeout", "8000"] + list(args),
                              capture_output=True, text=True, timeout=60, input=input)

    def test_chats_and_unread(self):
        a, b, c = (self.env.client(u) for u in ("alice", "bob", "carol"))
        for i in range(2):
            a.dm("bob", json.dumps({"id": "a%d" % i, "body": "from alice %d" % i}))
            b.expect("in/msg", lambda p, i=i: isinstance(p, dict) and p.get("id") == "a%d" % i)
        c.dm("bob", "from carol")
        b.expect("in/msg", lambda p: isinstance(p, dict) and p.get("body") == "from carol")
        self.assertTrue(self.ctl(a, "alice", "group_create", group="team", members=["bob"])["ok"])
        b.expect("in/msg", lambda p: isinstance(p, dict) and p.get("type") == "group.create")
        b.pub("im/u/bob/out/status/phone", json.dumps({"state": "online"}), retain=True)
        a.pub("im/u/alice/out/status/laptop", json.dumps({"state": "online"}), retain=True)
        time.sleep(0.3)
        r = self.ctl(b, "bob", "chats")
        self.assertTrue(r["ok"], r)
        # most recent first: the group, carol, alice
        keys = [x.get("chat") or "#" + x["group"] for x in r["chats"]]
        self.assertEqual(keys, ["#team", "carol", "alice"])
        by = {x.get("chat") or "#" + x["group"]: x for x in r["chats"]}
        self.assertEqual((by["alice"]["unread"], by["carol"]["unread"], by["#team"]["unread"]), (2, 1, 1))
        self.assertEqual(by["alice"]["last"]["body"], "from alice 1")
        self.assertEqual(by["alice"]["presence"], "online")
        self.assertEqual(by["carol"]["presence"], "offline")
        # reading moves the cursor forward only, and the count follows
        upto = by["alice"]["last_seq"]
        b.pub("im/u/bob/out/receipt", json.dumps({"status": "read", "chat": "alice", "upto": upto}))
        b.expect("in/msg", lambda p: isinstance(p, dict) and p.get("type") == "read")
        r = self.ctl(b, "bob", "chats")
        by = {x.get("chat") or "#" + x["group"]: x for x in r["chats"]}
        self.assertEqual((by["alice"]["unread"], by["alice"]["read_upto"]), (0, upto))
        b.pub("im/u/bob/out/receipt", json.dumps({"status": "read", "chat": "alice", "upto": 1}))
        time.sleep(0.3)
        r = self.ctl(b, "bob", "chats")
        self.assertEqual([x["read_upto"] for x in r["chats"] if x.get("chat") == "alice"], [upto])
        # alice's side: her own messages are not unread
        r = self.ctl(a, "alice", "chats")
        self.assertEqual([(x.get("chat"), x["unread"]) for x in r["chats"] if x.get("chat")], [("bob", 0)])

    def test_three_devices_of_one_user(self):
        """Every device of bob gets every message and the echo of what another
        sent; delivered receipts are per device; reading on one device
        reaches all of them as a read event."""
        a = self.env.client("alice")
        devs = [self.env.client("bob", client_id="bob.%s" % d) for d in ("phone", "tab", "pc")]
        a.dm("bob", json.dumps({"id": "m1", "body": "to all of bob"}))
        seqs = {d.expect("in/msg", lambda p: isinstance(p, dict) and p.get("id") == "m1")[0]["seq"] for d in devs}
        self.assertEqual(len(seqs), 1)  # one inbox: the same seq everywhere
        seq = seqs.pop()
        devs[1].dm("alice", json.dumps({"id": "r1", "body": "reply from the tab"}))
        for d in devs:  # the echo of what the tab sent reaches the phone and the pc too
            d.expect("in/msg", lambda p: isinstance(p, dict) and p.get("id") == "r1" and p.get("from") == "bob")
        for name, d in (("phone", devs[0]), ("tab", devs[1])):
            d.pub("im/u/bob/out/receipt", json.dumps({"status": "delivered", "seqs": [seq], "device": name}))
        acks = a.expect("in/ack", lambda p: p.get("status") == "delivered", count=2)
        self.assertEqual(sorted(x["device"] for x in acks), ["phone", "tab"])
        devs[2].pub("im/u/bob/out/receipt", json.dumps({"status": "read", "chat": "alice", "upto": seq}))
        for d in devs:
            ev = d.expect("in/msg", lambda p: isinstance(p, dict) and p.get("type") == "read")[0]
            self.assertEqual((ev["to"], ev["upto"]), ("alice", seq))
            self.assertNotIn("seq", ev)
        # the CLI on another device of bob shows it: a new message, read on the phone
        state = os.path.join(self.env.dir, "dev-bob-cli")
        listener = subprocess.Popen([os.environ["MQIM_CLI"], "--port", str(self.env.port), "--user", "bob",
                                     "--password", self.env.passwords["bob"], "--device", "cli",
                                     "--state-dir", state, "--timeout", "6000", "listen"],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(1.0)
        a.dm("bob", json.dumps({"id": "m2", "body": "second"}))
        seq2 = devs[0].expect("in/msg", lambda p: isinstance(p, dict) and p.get("id") == "m2")[0]["seq"]
        devs[0].pub("im/u/bob/out/receipt", json.dumps({"status": "read", "chat": "alice", "upto": seq2}))
        lines = []
        deadline = time.time() + 20
        while time.time() < deadline:  # `listen` runs until stopped: read until the read event
            line = listener.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if line.startswith("read alice"):
                break
        listener.terminate()
        listener.wait(10)
        out = "\n".join(lines)
        self.assertIn("alice -> bob: second", out)
        self.assertRegex(out, r"(?m)^read alice upto=%d$" % seq2)

    def test_typing(self):
        """A typing signal: QoS 0, delivered to the peer without a seq, never
        stored, never acknowledged; `mqim chat` sends one as a line starts."""
        a, b = self.env.client("alice"), self.env.client("bob")
        a.pub("im/u/alice/out/dm/bob", json.dumps({"type": "typing"}), qos=0)
        sig = b.expect("in/msg", lambda p: isinstance(p, dict) and p.get("type") == "typing")[0]
        self.assertEqual(sig["from"], "alice")
        self.assertNotIn("seq", sig)
        time.sleep(0.3)
        self.assertEqual(a.matching("in/ack"), [])
        r = self.ctl(b, "bob", "history", **{"with": "alice"})
        self.assertEqual(r["messages"], [])
        # a stored message still needs a body
        a.pub("im/u/alice/out/dm/bob", json.dumps({"id": "e1", "type": "typing"}), qos=1)
        a.expect("in/ack", lambda p: p.get("status") == "rejected" and p.get("code") == "body_empty")
        b.clear()
        r = self.mqim("alice", "chat", "chat", "bob", input="hello\n")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        b.expect("in/msg", lambda p: isinstance(p, dict) and p.get("type") == "typing")
        b.expect("in/msg", lambda p: isinstance(p, dict) and p.get("body") == "hello")


if __name__ == "__main__":
    unittest.main()
