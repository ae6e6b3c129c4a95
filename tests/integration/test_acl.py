"""The broker enforces isolation with the ACL the gateway writes: no
reading another inbox, no publishing as another user, no bad passwords."""
import time
import unittest

from harness import Client, EnvTest


class Acl(EnvTest):
    def test_cannot_read_another_inbox(self):
        spy = self.env.client("alice", subs=["im/u/bob/in/#", "im/u/+/in/#"])
        b = self.env.client("bob")
        self.env.client("carol").dm("bob", "secret for bob")
        b.expect("in/msg")
        time.sleep(0.5)
        self.assertEqual([t for t, *_ in spy.msgs if t.startswith("im/u/bob/")], [])

    def test_cannot_publish_as_another_user(self):
        a, b, c = (self.env.client(u) for u in ("alice", "bob", "carol"))
        a.pub("im/u/bob/out/dm/carol", "forged as bob")
        a.pub("im/u/bob/out/status/x", {"state": "online"}, retain=True)
        a.pub("im/u/bob/in/msg", {"body": "fake delivery"})
        a.pub("im/presence/bob", {"state": "online"}, retain=True)
        # a real message afterwards arrives: the forged ones before it did not
        a.dm("carol", {"id": "real", "body": "from alice"})
        c.expect("in/msg", lambda p: p.get("id") == "real")
        self.assertEqual([p for p in c.matching("in/msg") if p.get("id") != "real"], [])
        self.assertEqual(b.matching("in/msg"), [])
        self.assertEqual(b.matching("in/ack"), [])
        watch = self.env.client("carol", subs=["im/presence/bob"])
        time.sleep(0.5)
        self.assertEqual(watch.matching("presence/bob"), [], "bob has no presence at all")

    def test_wrong_password_refused(self):
        with self.assertRaises(ConnectionRefusedError):
            Client(self.env, "alice", "wrong-password")


if __name__ == "__main__":
    unittest.main()
