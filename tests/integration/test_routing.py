"""Direct messages: delivery, the echo as the sender's confirmation, the
`sent` ack on request ("ack":"sent", also from mosquitto_pub), a retry
confirmed again, three broker publishes per routed message, from-spoofing,
self, QoS 0."""
import os
import subprocess
import time
import unittest

from harness import Client, EnvTest


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
        # the echo is alice's confirmation: what the `sent` ack said, and no ack
        echo = a.expect("in/msg")[0]
        self.assertEqual(echo, dict(msg, seq=1))
        self.assertEqual({k: echo[k] for k in ("id", "to", "seq", "ts")},
                         {"id": msg["id"], "to": "bob", "seq": 1, "ts": msg["ts"]})
        self.assertEqual(a.confirmations(), [echo])
        # seqs are per inbox: bob answers, both inboxes advance
        b.dm("alice", {"id": "reply-1", "body": "hi alice"})
        self.assertEqual(a.expect("in/msg", lambda p: p.get("id") == "reply-1")[0]["seq"], 2)
        self.assertEqual(b.expect("in/msg", lambda p: p.get("id") == "reply-1")[0]["seq"], 2)
        time.sleep(0.3)
        self.assertEqual(a.matching("in/ack") + b.matching("in/ack"), [])  # nobody asked for one

    def test_sent_ack_on_request_from_the_shell(self):
        """"ack":"sent" in the envelope asks for the `sent` ack besides the
        echo; the docs' mosquitto_pub line, as a shell user types it."""
        a, b = self.env.client("alice"), self.env.client("bob")
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.env.port), "-u", "alice",
                        "-P", self.env.passwords["alice"], "-q", "1", "-t", "im/u/alice/out/dm/bob",
                        "-m", '{"id":"sh-1","ack":"sent","body":"hello bob"}'], check=True, timeout=30)
        msg = b.expect("in/msg")[0]
        self.assertNotIn("ack", msg)  # a request to the gateway, not part of the message
        echo = a.expect("in/msg")[0]
        ack = a.expect("in/ack")[0]
        self.assertEqual(ack, {"status": "sent", "id": "sh-1", "to": "bob", "seq": 1, "ts": msg["ts"]})
        self.assertEqual((echo["id"], echo["seq"]), ("sh-1", 1))
        # anything but "sent" is refused, nothing stored
        a.dm("bob", {"id": "sh-2", "ack": "yes", "body": "x"})
        rej = a.expect("in/ack", lambda p: p.get("id") == "sh-2")[0]
        self.assertEqual((rej["status"], rej["code"]), ("rejected", "field_range"))

    def test_retry_is_confirmed_again(self):
        """A retried publish (same id) stores nothing new and gets its
        confirmation again: the same echo, or the `sent` ack when the retry
        asks for one."""
        a, b = self.env.client("alice"), self.env.client("bob")
        a.dm("bob", {"id": "again-1", "body": "once"})
        first = a.expect_sent(lambda p: p["id"] == "again-1")[0]
        a.dm("bob", {"id": "again-1", "body": "once"})
        both = a.expect_sent(lambda p: p["id"] == "again-1", count=2)
        self.assertEqual(both, [first, first])  # the echo again, byte for byte
        a.dm("bob", {"id": "again-1", "ack": "sent", "body": "once"})
        ack = a.expect("in/ack", lambda p: p.get("id") == "again-1")[0]
        self.assertEqual((ack["status"], ack["seq"], ack["to"]), ("sent", first["seq"], "bob"))
        time.sleep(0.3)
        self.assertEqual(len(b.matching("in/msg")), 1)  # delivered once

    def test_three_broker_publishes_per_routed_dm(self):
        """What the broker handles per routed DM, counted by a subscriber to
        every user topic (the gateway's account may read them all): alice's
        publish, bob's copy, alice's echo. With "ack":"sent" one more."""
        with open(os.path.join(self.env.dir, "gateway.password")) as f:
            gw_password = f.readline().strip()
        spy = Client(self.env, "mqim-gateway", gw_password, subs=["im/u/#"])
        self.env.clients.append(spy)
        a, b = self.env.client("alice"), self.env.client("bob")
        n = 10
        for i in range(n):
            a.dm("bob", {"id": "count-%d" % i, "body": "m%d" % i})
        b.expect("in/msg", count=n)
        a.expect_sent(count=n)
        time.sleep(0.5)  # anything late would show up here
        topics = [t for t, p, q, r, props in spy.msgs]
        self.assertEqual(len(topics), 3 * n, topics)
        self.assertEqual(sorted(set(topics)), ["im/u/alice/in/msg", "im/u/alice/out/dm/bob", "im/u/bob/in/msg"])
        spy.clear()
        for i in range(n):
            a.dm("bob", {"id": "asked-%d" % i, "ack": "sent", "body": "m%d" % i})
        a.expect("in/ack", count=n)
        time.sleep(0.5)
        self.assertEqual(len(spy.msgs), 4 * n)

    def test_from_is_taken_from_topic(self):
        a, b = self.env.client("alice"), self.env.client("bob")
        a.dm("bob", {"id": "spoof-1", "from": "mallory", "body": "who am i"})
        msg = b.expect("in/msg")[0]
        self.assertEqual(msg["from"], "alice")
        self.assertEqual(msg["id"], "spoof-1")

    def test_message_to_self(self):
        a = self.env.client("alice")
        a.dm("alice", {"id": "note-1", "body": "remember the milk"})
        msgs = a.expect_sent(lambda p: p["id"] == "note-1")  # the echo confirms it
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
        confirmed = a.expect_sent()
        time.sleep(0.3)
        self.assertEqual(len(a.confirmations()), 1)
        self.assertEqual(a.matching("in/ack"), [])
        self.assertEqual(confirmed[0]["id"], real["id"])


if __name__ == "__main__":
    unittest.main()
