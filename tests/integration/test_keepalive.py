"""Keep-alive of the gateway's two broker connections (issue 13): with a
short keep-alive (2 s: Mosquitto drops a client silent for 3 s), a DM, an
idle period longer than 1.5 keep-alives, another DM. The second is
delivered at once; the gateway does not take the idle period for a stalled
publisher ("no PUBACK ... reconnecting"), the broker expires nobody."""
import os
import re
import time
import unittest

from harness import Env

KEEPALIVE = 2


class KeepAlive(unittest.TestCase):
    def idle_then_dm(self, stats_interval_s):
        conf = "keepalive_s %d\nstats_interval_s %d\n" % (KEEPALIVE, stats_interval_s)
        with Env(users=("alice", "bob"), gateway_conf=conf) as env:
            a, b = env.client("alice"), env.client("bob")
            a.dm("bob", {"id": "ka-1", "body": "before"})
            b.expect("in/msg", lambda p: p.get("id") == "ka-1")
            a.expect_sent(lambda p: p.get("id") == "ka-1")
            time.sleep(2.5 * KEEPALIVE)
            t = time.time()
            a.dm("bob", {"id": "ka-2", "body": "after the idle period"})
            b.expect("in/msg", lambda p: p.get("id") == "ka-2", timeout=5)
            self.assertLess(time.time() - t, 1.0, "delivered at once, not after a reconnect")
            a.expect_sent(lambda p: p.get("id") == "ka-2")
            time.sleep(0.5)
            gw_log = open(os.path.join(env.dir, "gateway.log"), errors="replace").read()
            broker_log = open(os.path.join(env.dir, "mosquitto", "mosquitto.log"), errors="replace").read()
            for bad in ("no PUBACK", "no PINGRESP", "reconnecting", "connection lost"):
                self.assertNotIn(bad, gw_log)
            for bad in ("exceeded timeout", "Expiring client"):
                self.assertNotIn(bad, broker_log)
            cid = re.search(r"^client_id (\S+)", open(env.conf).read(), re.M).group(1)
            # each connection of the gateway connected once and stayed
            self.assertEqual(len(re.findall(r"New client connected .* as %s \(" % re.escape(cid), broker_log)), 1)
            self.assertEqual(len(re.findall(r"New client connected .* as %s\.out \(" % re.escape(cid), broker_log)), 1)
            self.assertNotRegex(broker_log, r"Client %s(\.out)? (disconnected|closed its connection)" % re.escape(cid))

    def test_idle_publisher(self):
        # nothing at all on the outbox connection while idle: the PINGREQs
        # keep it alive
        self.idle_then_dm(0)

    def test_only_qos0_stats(self):
        # the QoS 0 stats every second: the connection is busy on the way
        # out but nothing comes back (the old stall clock counted from the
        # last packet received and gave up on the first DM after the idle)
        self.idle_then_dm(1)


if __name__ == "__main__":
    unittest.main()
