"""Control requests: sync pages, history paging, errors, MQTT v5 response
topic + correlation data, and a real mosquitto_rr round trip."""
import subprocess
import unittest

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from harness import EnvTest


class Ctl(EnvTest):
    def setUp(self):
        super().setUp()
        self.a, self.b = self.env.client("alice"), self.env.client("bob")
        for i in range(5):
            sender = self.b if i % 2 else self.a
            sender.dm("alice" if i % 2 else "bob", {"id": "h%d" % i, "body": "m%d" % i})
        self.env.client("carol").dm("bob", {"id": "c0", "body": "from carol"})  # bob seq 6
        self.b.expect("in/msg", count=6)
        self.b.clear()

    def test_sync_pages(self):
        self.b.pub("im/u/bob/out/ctl", {"op": "sync", "after": 1, "limit": 2, "req": "s1"})
        res = self.b.expect("in/res", lambda p: p.get("req") == "s1")[0]
        self.assertEqual((res["ok"], res["count"], res["last"], res["complete"]), (True, 2, 3, False))
        replay = self.b.matching("in/msg")
        self.assertEqual([m["seq"] for m in replay], [2, 3])  # delivered before the response
        self.assertEqual([m["id"] for m in replay], ["h1", "h2"])
        self.b.pub("im/u/bob/out/ctl", {"op": "sync", "after": res["last"], "req": 2})
        res = self.b.expect("in/res", lambda p: p.get("req") == 2)[0]
        self.assertEqual((res["count"], res["last"], res["complete"]), (3, 6, True))
        self.assertEqual([m["seq"] for m in self.b.matching("in/msg")], [2, 3, 4, 5, 6])

    def test_history_paging(self):
        self.b.pub("im/u/bob/out/ctl", {"op": "history", "with": "alice", "limit": 2, "req": "h1"})
        res = self.b.expect("in/res", lambda p: p.get("req") == "h1")[0]
        self.assertEqual([m["id"] for m in res["messages"]], ["h3", "h4"])
        self.assertFalse(res["complete"])
        first = res["messages"][0]["seq"]
        self.b.pub("im/u/bob/out/ctl", {"op": "history", "with": "alice", "before": first, "limit": 10, "req": "h2"})
        res = self.b.expect("in/res", lambda p: p.get("req") == "h2")[0]
        self.assertEqual([m["id"] for m in res["messages"]], ["h0", "h1", "h2"])
        self.assertTrue(res["complete"])
        self.b.pub("im/u/bob/out/ctl", {"op": "history", "with": "alice", "after": 2, "limit": 2, "req": "h3"})
        res = self.b.expect("in/res", lambda p: p.get("req") == "h3")[0]
        self.assertEqual([m["id"] for m in res["messages"]], ["h2", "h3"])
        self.assertFalse(res["complete"])

    def test_errors(self):
        for req, code in [({"op": "dance", "req": "e1"}, "unknown_op"),
                          ({"req": "e2"}, "field_missing"),
                          ({"op": "history", "with": "a/b", "req": "e3"}, "field_type"),
                          ({"op": "sync", "after": -1, "req": "e4"}, "field_type"),
                          ({"op": "presence", "users": [], "req": "e5"}, "field_type")]:
            self.b.pub("im/u/bob/out/ctl", req)
            res = self.b.expect("in/res", lambda p, r=req["req"]: p.get("req") == r)[0]
            self.assertFalse(res["ok"])
            self.assertEqual(res["code"], code, res)
            self.assertTrue(res["reason"])
        self.b.pub("im/u/bob/out/ctl", "not json")
        self.b.expect("in/res", lambda p: p.get("code") == "json_malformed")

    def test_v5_response_topic(self):
        v5 = self.env.client("alice", v5=True)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = "im/u/alice/in/res/mine"
        props.CorrelationData = b"corr-42"
        v5.pub("im/u/alice/out/ctl", {"op": "history", "with": "bob", "limit": 1}, props=props)
        v5.expect("in/res/mine", lambda p: p.get("ok") is True)
        with v5.lock:
            corr = [pr.get("corr") for t, p, q, r, pr in v5.msgs if t == "im/u/alice/in/res/mine"]
        self.assertEqual(corr, [b"corr-42"])
        # a response topic outside alice's own in/ is refused, answered on in/res
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = "im/u/bob/in/msg"
        v5.pub("im/u/alice/out/ctl", {"op": "history", "with": "bob", "req": "evil"}, props=props)
        res = v5.expect("in/res", lambda p: p.get("req") == "evil")[0]
        self.assertEqual(res["code"], "response_topic")

    def test_mosquitto_rr(self):
        r = subprocess.run(["mosquitto_rr", "-V", "5", "-h", "127.0.0.1", "-p", str(self.env.port),
                            "-u", "alice", "-P", self.env.passwords["alice"],
                            "-t", "im/u/alice/out/ctl", "-e", "im/u/alice/in/res/rr",
                            "-m", '{"op":"history","with":"bob","limit":3}', "-W", "10"],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('"op":"history","ok":true', r.stdout)
        self.assertIn('"id":"h4"', r.stdout)


if __name__ == "__main__":
    unittest.main()
