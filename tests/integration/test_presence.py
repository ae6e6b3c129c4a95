"""Presence: retained aggregate per user, the stale-will race, shell
statuses, the presence ctl op, the gateway's own status."""
import json
import signal
import socket
import time
import unittest

import paho.mqtt.client as mqtt

from harness import EnvTest, wait_until


def state_is(state):
    return lambda p: isinstance(p, dict) and p.get("state") == state


class Presence(EnvTest):
    def test_stale_will_race(self):
        watch = self.env.client("carol", subs=["im/presence/alice"])
        status = "im/u/alice/out/status/phone"
        # connection 1, epoch 5, with its will
        old = self.env.client("alice", client_id="alice.phone-1", subs=[],
                              will=(status, json.dumps({"state": "offline", "epoch": 5}), 1, True))
        old.pub(status, {"state": "online", "epoch": 5}, retain=True)
        watch.expect("presence/alice", state_is("online"))
        # connection 2 (the device came back, epoch 6) says online...
        new = self.env.client("alice", client_id="alice.phone-2", subs=[],
                              will=(status, json.dumps({"state": "offline", "epoch": 6}), 1, True))
        new.pub(status, {"state": "online", "epoch": 6}, retain=True)
        wait_until(lambda: any(p.get("devices", {}).get("phone", {}).get("since") for p in watch.matching("presence/alice")))
        watch.clear()
        # ...then connection 1 dies without DISCONNECT: its will (epoch 5) fires late
        old.c._sock.shutdown(socket.SHUT_RDWR)
        old.c.loop_stop()
        time.sleep(1.5)
        self.assertEqual([p for p in watch.matching("presence/alice") if p.get("state") != "online"], [],
                         "a stale will must not mark alice offline")
        # the current connection's will does
        new.c._sock.shutdown(socket.SHUT_RDWR)
        new.c.loop_stop()
        off = watch.expect("presence/alice", state_is("offline"), timeout=10)[0]
        self.assertIn("last_seen", off)
        self.assertEqual(off["devices"]["phone"]["state"], "offline")

    def test_shell_status_and_aggregate(self):
        watch = self.env.client("carol", subs=["im/presence/bob"])
        b = self.env.client("bob")
        b.pub("im/u/bob/out/status/sh", "{\"state\":\"online\"}", retain=True)
        p = watch.expect("presence/bob", state_is("online"))[0]
        self.assertEqual(p["user"], "bob")
        self.assertEqual(p["devices"]["sh"]["state"], "online")
        b.pub("im/u/bob/out/status/laptop", {"state": "away"}, retain=True)
        p = watch.expect("presence/bob", lambda q: "laptop" in q.get("devices", {}))[0]
        self.assertEqual(p["state"], "online")  # the most present device wins
        # a late subscriber gets the retained aggregate
        late = self.env.client("alice", subs=["im/presence/bob", "im/u/alice/in/#"])
        self.assertEqual(late.expect("presence/bob")[0]["state"], "online")
        # presence op: aggregates, and "unknown" for unregistered names
        late.pub("im/u/alice/out/ctl", {"op": "presence", "users": ["bob", "zed"], "req": "p1"})
        res = late.expect("in/res", lambda q: q.get("req") == "p1")[0]
        self.assertTrue(res["ok"])
        self.assertEqual([u["state"] for u in res["users"]], ["online", "unknown"])

    def test_gateway_status(self):
        w = self.env.client("alice", subs=["im/gateway/status"])
        w.expect("gateway/status", state_is("online"))
        self.assertEqual(self.env.stop_gateway(signal.SIGTERM), 0)
        w.expect("gateway/status", state_is("offline"))


if __name__ == "__main__":
    unittest.main()
