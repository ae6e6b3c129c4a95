"""bench/mqim_load, the benchmarks' load generator, counts right (issue 13):
a routed message is confirmed by its echo on the sender's in/msg or by its
`sent` ack, whichever comes first, so the bench works before and after the
echo becomes the confirmation (docs/protocol.md); a message lost, delivered
twice or confirmed twice on one path fails the run.

Against a scripted router on a real Mosquitto (the protocol variants, and
the faults a real gateway should never make), then against the real
gateway.
"""
import json
import os
import subprocess
import sys
import tempfile
import threading
import unittest

import paho.mqtt.client as mqtt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SRC, Env, free_port, wait_until  # noqa: E402

LOAD = os.environ.get("MQIM_LOAD", os.path.join(SRC, "build", "test", "bench", "mqim_load"))


def compact(obj):
    """JSON as the gateway writes it (no blanks): the generator finds ids
    with memmem."""
    return json.dumps(obj, separators=(",", ":"))


class ScriptedRouter:
    """Plays the gateway's routing on a plain broker: for each DM on
    im/u/S/out/dm/R, the delivery to R, the echo to S (id, from S), and
    `sent` unless told otherwise; fault switches for the failure cases."""

    def __init__(self, port, sent_ack=True, echo=True, echo_twice_id=None, drop_delivery_id=None):
        self.sent_ack, self.echo = sent_ack, echo
        self.echo_twice_id, self.drop_delivery_id = echo_twice_id, drop_delivery_id
        self.seq = 0
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.c = mqtt.Client(client_id="scripted-router", protocol=mqtt.MQTTv311)
        self.c.on_connect = lambda c, u, f, rc: c.subscribe("im/u/+/out/dm/+", qos=1)
        self.c.on_subscribe = lambda c, u, mid, q: self.ready.set()
        self.c.on_message = self._route
        self.c.max_inflight_messages_set(1000)
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()
        wait_until(self.ready.is_set, 10, "the scripted router to subscribe")

    def _route(self, c, userdata, m):
        _, _, sender, _, _, peer = m.topic.split("/")
        msg = json.loads(m.payload)
        mid = msg["id"]
        with self.lock:
            self.seq += 1
            env = {"id": mid, "seq": self.seq, "from": sender, "to": peer, "body": msg.get("body", "")}
        if not mid.endswith("k%s" % self.drop_delivery_id):
            c.publish("im/u/%s/in/msg" % peer, compact(env), qos=1)
        if self.echo:
            for _ in range(2 if mid.endswith("k%s" % self.echo_twice_id) else 1):
                c.publish("im/u/%s/in/msg" % sender, compact(env), qos=1)
        if self.sent_ack:
            c.publish("im/u/%s/in/ack" % sender,
                      compact({"status": "sent", "id": mid, "to": peer, "seq": self.seq}), qos=1)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def run_load(port, mode="routed", pairs=2, count=200, window=20, passwords=None, timeout=5):
    argv = [LOAD, "--mode", mode, "--port", str(port), "--pairs", str(pairs), "--count", str(count),
            "--window", str(window), "--timeout", str(timeout)]
    if passwords:
        argv += ["--passwords", passwords]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    return r.returncode, json.loads(r.stdout.strip().splitlines()[-1]), r.stderr


class PlainBroker:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="mqim-load-")
        self.port = free_port()
        conf = os.path.join(self.dir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n"
                    "max_queued_messages 100000\n" % self.port)
        self.p = subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import socket

        def up():
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return True
            except OSError:
                return False
        wait_until(up, 10, "mosquitto to listen")

    def close(self):
        self.p.terminate()
        self.p.wait(10)


class ScriptedTest(unittest.TestCase):
    def setUp(self):
        self.broker = PlainBroker()
        self.router = None

    def tearDown(self):
        if self.router:
            self.router.close()
        self.broker.close()

    def route(self, **kw):
        self.router = ScriptedRouter(self.broker.port, **kw)

    def test_echo_and_sent_ack_count_once(self):
        """Today's gateway: echo and `sent` both arrive; each message is
        confirmed once, by whichever came first."""
        self.route()
        rc, res, err = run_load(self.broker.port)
        self.assertEqual(rc, 0, err)
        self.assertEqual((res["delivered"], res["acked"], res["dup_deliveries"]), (400, 400, 0))
        self.assertEqual(res["confirmed_by_echo"] + res["confirmed_by_sent_ack"], 400)
        self.assertEqual((res["dup_echoes"], res["dup_sent_acks"]), (0, 0))

    def test_echo_alone_confirms(self):
        """After the protocol change: no `sent` ack by default, the echo is
        the confirmation."""
        self.route(sent_ack=False)
        rc, res, err = run_load(self.broker.port)
        self.assertEqual(rc, 0, err)
        self.assertEqual((res["acked"], res["confirmed_by_echo"], res["confirmed_by_sent_ack"]), (400, 400, 0))

    def test_sent_ack_alone_confirms(self):
        self.route(echo=False)
        rc, res, err = run_load(self.broker.port)
        self.assertEqual(rc, 0, err)
        self.assertEqual((res["acked"], res["confirmed_by_echo"], res["confirmed_by_sent_ack"]), (400, 0, 400))

    def test_a_second_echo_fails_the_run(self):
        self.route(echo_twice_id=7)
        rc, res, _ = run_load(self.broker.port)
        self.assertEqual(rc, 1)
        self.assertEqual(res["dup_echoes"], 2)  # message 7 of each pair

    def test_a_lost_delivery_fails_the_run(self):
        self.route(drop_delivery_id=13)
        rc, res, _ = run_load(self.broker.port)
        self.assertEqual(rc, 1)
        self.assertEqual(res["delivered"], 398)

    def test_raw_needs_no_router(self):
        rc, res, err = run_load(self.broker.port, mode="raw", pairs=3, count=500, window=50)
        self.assertEqual(rc, 0, err)
        self.assertEqual((res["delivered"], res["dup_deliveries"]), (1500, 0))


class GatewayTest(unittest.TestCase):
    def test_routed_through_the_real_gateway(self):
        """Routed through the real gateway and broker (users with the
        passwords of `user add`), counted by id, each confirmed once."""
        with Env(users=("bs0", "br0", "bs1", "br1")) as env:
            pw = os.path.join(env.dir, "bench-passwords")
            with open(pw, "w") as f:
                for u, p in env.passwords.items():
                    f.write("%s %s\n" % (u, p))
            rc, res, err = run_load(env.port, pairs=2, count=40, window=10, passwords=pw, timeout=20)
            self.assertEqual(rc, 0, err)
            self.assertEqual((res["delivered"], res["acked"], res["dup_deliveries"]), (80, 80, 0))
            self.assertEqual(res["confirmed_by_echo"] + res["confirmed_by_sent_ack"], 80)


if __name__ == "__main__":
    unittest.main()
