"""Receipts: delivered/read forwarded to the sender; read cursors are
forward-only; only messages in one's own inbox can be receipted."""
import time
import unittest

from harness import EnvTest


class Receipts(EnvTest):
    def setUp(self):
        super().setUp()
        self.a, self.b, self.c = (self.env.client(u) for u in ("alice", "bob", "carol"))
        self.a.dm("bob", {"id": "r1", "body": "one"})    # bob 1, alice 1
        self.a.dm("bob", {"id": "r2", "body": "two"})    # bob 2, alice 2
        self.b.dm("alice", {"id": "r3", "body": "back"})  # bob 3 (echo), alice 3
        self.a.dm("bob", {"id": "r4", "body": "four"})   # bob 4, alice 4
        self.b.expect("in/msg", count=4)
        self.a.expect_sent(count=3)  # r1, r2, r4: their echoes
        self.a.clear()

    def test_delivered_and_read_by_seq(self):
        self.b.pub("im/u/bob/out/receipt", {"status": "delivered", "seqs": [1, 2], "device": "phone"})
        acks = self.a.expect("in/ack", lambda p: p["status"] == "delivered", count=2)
        self.assertEqual([p["id"] for p in acks], ["r1", "r2"])
        self.assertEqual([p["seq"] for p in acks], [1, 2])  # alice's seqs
        for p in acks:
            self.assertEqual(p["by"], "bob")
            self.assertEqual(p["device"], "phone")
            self.assertIsInstance(p["ts"], int)
        self.b.pub("im/u/bob/out/receipt", {"status": "read", "seqs": [4]})
        ack = self.a.expect("in/ack", lambda p: p["status"] == "read")[0]
        self.assertEqual((ack["id"], ack["seq"]), ("r4", 4))

    def test_read_upto_is_forward_only(self):
        self.b.pub("im/u/bob/out/receipt", {"status": "read", "chat": "alice", "upto": 2})
        acks = self.a.expect("in/ack", lambda p: p["status"] == "read", count=2)
        self.assertEqual([p["id"] for p in acks], ["r1", "r2"])
        self.b.pub("im/u/bob/out/receipt", {"status": "read", "chat": "alice", "upto": 1})
        self.b.pub("im/u/bob/out/receipt", {"status": "read", "chat": "alice", "upto": 4})
        acks = self.a.expect("in/ack", lambda p: p["status"] == "read", count=3)
        time.sleep(0.3)
        acks = self.a.matching("in/ack")
        # r1, r2 once each, then only r4 (3 is bob's own message)
        self.assertEqual([p["id"] for p in acks], ["r1", "r2", "r4"])

    def test_only_own_inbox(self):
        # 3 is bob's echo, 99 does not exist: rejected; 4 is forwarded
        self.b.pub("im/u/bob/out/receipt", {"status": "read", "seqs": [3, 4, 99]})
        self.a.expect("in/ack", lambda p: p["status"] == "read" and p["id"] == "r4")
        rej = self.b.expect("in/ack", lambda p: p.get("code") == "not_your_message")[0]
        self.assertEqual(rej["seqs"], [3, 99])
        self.assertEqual(rej["re"], "receipt")
        # carol names seqs that exist in bob's inbox, not hers
        self.c.pub("im/u/carol/out/receipt", {"status": "delivered", "seqs": [1, 2]})
        self.c.expect("in/ack", lambda p: p.get("code") == "not_your_message")
        time.sleep(0.3)
        self.assertEqual([p["id"] for p in self.a.matching("in/ack")], ["r4"])


if __name__ == "__main__":
    unittest.main()
