"""Restarts: publishes made while the gateway is down are processed when it
is back (persistent session); history and dedupe survive; SIGTERM is clean."""
import signal
import unittest

from harness import EnvTest


class Restart(EnvTest):
    def test_messages_while_down_and_dedupe_after_restart(self):
        a, b = self.env.client("alice"), self.env.client("bob")
        a.dm("bob", {"id": "before", "body": "1"})
        b.expect("in/msg")
        self.assertEqual(self.env.stop_gateway(signal.SIGTERM), 0)
        for i in range(20):
            a.dm("bob", {"id": "down-%02d" % i, "body": "while down %d" % i})
        self.env.start_gateway()
        msgs = b.expect("in/msg", count=21, timeout=20)
        self.assertEqual([m["seq"] for m in msgs], list(range(1, 22)))
        self.assertEqual(msgs[-1]["id"], "down-19")
        # the dedupe record survived the restart: a retry is not a new message
        a.clear()
        a.dm("bob", {"id": "before", "body": "1"})
        echo = a.expect_sent()[0]  # confirmed again with the first echo
        self.assertEqual((echo["id"], echo["seq"]), ("before", 1))
        self.assertEqual(len(b.matching("in/msg")), 21)
        self.env.stop_gateway()
        out = self.env.cli("history", "bob", "--limit", "100").stdout
        self.assertEqual(out.count("\n"), 22, out)  # header + 21 messages
        stats = self.env.cli("stats").stdout
        self.assertIn("messages_total\t21", stats)
        self.assertIn("duplicates_total\t1", stats)

    def test_broker_restart(self):
        a, b = self.env.client("alice"), self.env.client("bob")
        self.env.restart_broker()
        # clients and the gateway reconnect; the gateway's session survived
        for c in (a, b):
            c.connected.clear()
        b.c.reconnect()
        a.c.reconnect()
        a.dm("bob", {"id": "after-broker-restart", "body": "still here"})
        b.expect("in/msg", lambda p: p.get("id") == "after-broker-restart", timeout=30)
        a.expect_sent(lambda p: p.get("id") == "after-broker-restart", timeout=30)


if __name__ == "__main__":
    unittest.main()
