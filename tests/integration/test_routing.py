"""Direct messages: delivery, the echo as the sender's confirmation, the
`sent` ack on request ("ack":"sent", also from mosquitto_pub), a retry
confirmed again, three broker publishes per routed message, from-spoofing,
self, QoS 0."""
import os
import subprocess
import time
import unittest

from harness import Client, Env, EnvTest


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


class SharedSubscription(unittest.TestCase):
    def test_share_group(self):
        """share_group: the inbound connection subscribes as
        $share/GROUP/im/u/+/out/# (the broker's ACL allows it) and routes."""
        with Env(users=("alice", "bob"), gateway_conf="share_group pool") as env:
            a, b = env.client("alice"), env.client("bob")
            a.dm("bob", {"id": "shared-1", "body": "through a shared subscription"})
            got = b.expect("in/msg", lambda p: p.get("id") == "shared-1")
            self.assertEqual(got[0]["body"], "through a shared subscription")
            a.expect_sent(lambda p: p.get("id") == "shared-1")
            self.assertIn("subscribed to $share/pool/im/u/+/out/#", env.log_tail("gateway.log", 50))


class ReadmeTryIt(EnvTest):
    """README.md, "Try it": the three terminals' commands as written (on this
    test's port), and what alice's and bob's terminals show, line by line."""

    def test_readme_terminals(self):
        env = self.env
        common = ["-h", "127.0.0.1", "-p", str(env.port)]
        auth = {u: ["-u", u, "-P", env.passwords[u]] for u in ("alice", "bob")}
        subs = {
            "bob": subprocess.Popen(["mosquitto_sub"] + common + auth["bob"] + ["-t", "im/u/bob/in/#", "-v"],
                                    stdout=subprocess.PIPE, text=True),
            "alice": subprocess.Popen(["mosquitto_sub"] + common + auth["alice"]
                                      + ["-t", "im/u/alice/in/#", "-t", "im/presence/#", "-v"],
                                      stdout=subprocess.PIPE, text=True),
        }
        try:
            time.sleep(0.5)  # both subscribed
            pub = lambda u, *a: subprocess.run(["mosquitto_pub"] + common + auth[u] + list(a), check=True, timeout=30)
            pub("alice", "-q", "1", "-t", "im/u/alice/out/dm/bob", "-m", "hello bob")
            time.sleep(0.3)
            pub("bob", "-q", "1", "-t", "im/u/bob/out/receipt", "-m", '{"status":"read","chat":"alice","upto":1}')
            time.sleep(0.3)
            pub("bob", "-q", "1", "-r", "-t", "im/u/bob/out/status/sh", "-m", '{"state":"online"}')
            time.sleep(0.3)
            pub("alice", "-q", "1", "-t", "im/u/alice/out/dm/nobody", "-m", "hi?")
            time.sleep(0.3)
            rr = subprocess.run(["mosquitto_rr", "-V", "5"] + common + auth["alice"]
                                + ["-t", "im/u/alice/out/ctl", "-e", "im/u/alice/in/res/rr",
                                   "-m", '{"op":"history","with":"bob"}'],
                                capture_output=True, text=True, timeout=30, check=True)
            self.assertRegex(rr.stdout, r'^\{"op":"history","ok":true,"with":"bob","messages":\[\{"id":"[0-9A-Z]{26}",'
                                        r'"seq":1,"from":"alice","to":"bob","ts":\d+,"type":"text",'
                                        r'"body":"hello bob"\}\],"complete":true\}$')
            time.sleep(0.5)
        finally:
            out = {}
            for u, p in subs.items():
                p.terminate()
                out[u] = p.communicate(timeout=10)[0].splitlines()
        ulid, ts = r'[0-9A-Z]{26}', r'\d+'
        self.assertEqual(len(out["bob"]), 2, out["bob"])
        self.assertRegex(out["bob"][0], r'^im/u/bob/in/msg \{"id":"%s","seq":1,"from":"alice","to":"bob",'
                                        r'"ts":%s,"type":"text","body":"hello bob"\}$' % (ulid, ts))
        self.assertRegex(out["bob"][1], r'^im/u/bob/in/msg \{"from":"bob","to":"alice","ts":%s,"upto":1,'
                                        r'"type":"read"\}$' % ts)
        want = [
            r'^im/u/alice/in/msg \{"id":"%s","seq":1,"from":"alice","to":"bob","ts":%s,"type":"text",'
            r'"body":"hello bob"\}$' % (ulid, ts),
            r'^im/u/alice/in/ack \{"status":"read","id":"%s","seq":1,"by":"bob","ts":%s\}$' % (ulid, ts),
            r'^im/presence/bob \{"user":"bob","state":"online","since":%s,"last_seen":%s,"devices":\{"sh":'
            r'\{"state":"online","since":%s,"last_seen":%s\}\},"ts":%s\}$' % (ts, ts, ts, ts, ts),
            r'^im/u/alice/in/ack \{"status":"rejected","re":"dm","id":"%s","to":"nobody","code":"unknown_peer",'
            r'"code_num":60,"reason":"no such user: nobody","ts":%s\}$' % (ulid, ts),
            r'^im/u/alice/in/res/rr \{"op":"history","ok":true,"with":"bob","messages":\[.*\],"complete":true\}$',
        ]
        self.assertEqual(len(out["alice"]), len(want), out["alice"])
        for line, pattern in zip(out["alice"], want):
            self.assertRegex(line, pattern)


if __name__ == "__main__":
    unittest.main()
