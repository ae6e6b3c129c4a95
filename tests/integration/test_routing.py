"""Direct messages: delivery, echo, sent ack, from-spoofing, self, QoS 0."""
import time
import unittest

from harness import EnvTest


class Routing(EnvTest):
    def test_plain_text_delivery_echo_ack(self):
        a, b = self.env.client("alice"), self.env.client("bob")
        a.dm("bob", "hello bob")
        msg = b.expect("in/msg")[0]
        self.assertEqual(msg["body"], "hello bob")
        self.assertEqual(msg["from"], "alice")
        self.assertEqual(msg["to"], "bob")
        self.assertEqual(msg["type"], "text")
        self.assertEqual(msg["seq"], 1)
        self.assertEqual(len(msg["id"]), 26)  # gateway-made ULID
        self.assertGreater(msg["ts"], time.time() * 1000 - 60000)
        echo = a.expect("in/msg")[0]
        self.assertEqual(echo["id"], msg["id"])
        self.assertEqual(echo["seq"], 1)
        ack = a.expect("in/ack")[0]
        self.assertEqual(ack, {"status": "sent", "id": msg["id"], "to": "bob", "seq": 1, "ts": msg["ts"]})
        # seqs are per inbox: bob answers, both inboxes advance
        b.dm("alice", {"id": "reply-1", "body": "hi alice"})
        self.assertEqual(a.expect("in/msg", lambda p: p.get("id") == "reply-1")[0]["seq"], 2)
        self.assertEqual(b.expect("in/msg", lambda p: p.get("id") == "reply-1")[0]["seq"], 2)

    def test_from_is_taken_from_topic(self):
        a, b = self.env.client("alice"), self.env.client("bob")
        a.dm("bob", {"id": "spoof-1", "from": "mallory", "body": "who am i"})
        msg = b.expect("in/msg")[0]
        self.assertEqual(msg["from"], "alice")
        self.assertEqual(msg["id"], "spoof-1")

    def test_message_to_self(self):
        a = self.env.client("alice")
        a.dm("alice", {"id": "note-1", "body": "remember the milk"})
        ack = a.expect("in/ack")[0]
        self.assertEqual(ack["status"], "sent")
        msgs = a.expect("in/msg")
        time.sleep(0.3)
        self.assertEqual(len(a.matching("in/msg")), 1)  # one inbox entry, not two
        self.assertEqual(msgs[0]["seq"], 1)

    def test_qos0_is_ephemeral(self):
        a, b = self.env.client("alice"), self.env.client("bob")
        a.dm("bob", {"type": "typing", "body": "1"}, qos=0)
        msg = b.expect("in/msg")[0]
        self.assertEqual(msg["type"], "typing")
        self.assertNotIn("seq", msg)
        # never stored, never acked: a stored message after it gets seq 1
        a.dm("bob", "real message")
        real = b.expect("in/msg", lambda p: p.get("body") == "real message")[0]
        self.assertEqual(real["seq"], 1)
        acks = a.expect("in/ack")
        time.sleep(0.3)
        self.assertEqual(len(a.matching("in/ack")), 1)
        self.assertEqual(acks[0]["id"], real["id"])


if __name__ == "__main__":
    unittest.main()
