"""Bulk provisioning while messages flow (issue 13): 96 `mqim-gateway user
add --random` back to back and 4 processes adding 6 users each at once,
every one reloading the broker (SIGHUP). The broker must never read a
half-written password file: it stays up, keeps both connections of the
gateway (a reload of a file without the gateway's user would drop them),
every message of the flow arrives, and every new user can log in."""
import os
import re
import subprocess
import threading
import time
import unittest

import paho.mqtt.client as mqtt

from harness import GATEWAY, Env, wait_until


def can_log_in(port, user, password):
    result = {}
    done = threading.Event()

    def on_connect(c, userdata, flags, rc, props=None):
        result["rc"] = rc
        done.set()
    c = mqtt.Client(client_id="%s.login" % user, protocol=mqtt.MQTTv311)
    c.username_pw_set(user, password)
    c.on_connect = on_connect
    try:
        c.connect("127.0.0.1", port, keepalive=30)
        c.loop_start()
        done.wait(10)
    finally:
        c.disconnect()
        c.loop_stop()
    return result.get("rc") == 0


class Provisioning(unittest.TestCase):
    def test_bulk_user_add_while_messages_flow(self):
        with Env(users=("alice", "bob")) as env:
            a, b = env.client("alice"), env.client("bob")
            stop = threading.Event()
            sent = []

            def flow():
                i = 0
                while not stop.is_set():
                    mid = "flow-%d" % i
                    a.dm("bob", {"id": mid, "body": "x"})
                    sent.append(mid)
                    i += 1
                    time.sleep(0.02)
            t = threading.Thread(target=flow)
            t.start()
            added = {}
            try:
                for i in range(96):
                    added["bulk%d" % i] = env.cli("user", "add", "bulk%d" % i, "--random").stdout.strip()
                # several at once: the lock serialises their edits, none is lost
                script = "for i in 0 1 2 3 4 5; do \"$0\" -c \"$1\" user add par$2x$i --random || exit 1; done"
                procs = [subprocess.Popen(["sh", "-c", script, GATEWAY, env.conf, str(k)],
                                          stdout=subprocess.PIPE, text=True) for k in range(4)]
                for k, p in enumerate(procs):
                    out, _ = p.communicate(timeout=120)
                    self.assertEqual(p.returncode, 0)
                    for i, pw in enumerate(out.split()):
                        added["par%dx%d" % (k, i)] = pw
            finally:
                stop.set()
                t.join()
            self.assertEqual(len(added), 120)
            self.assertIsNone(env.broker.poll(), "the broker is still running")
            ids = set(sent)
            wait_until(lambda: ids <= {p.get("id") for p in b.matching("in/msg", lambda p: isinstance(p, dict))},
                       20, "every message of the flow at bob")
            broker_log = open(os.path.join(env.dir, "mosquitto", "mosquitto.log"), errors="replace").read()
            gw_log = open(os.path.join(env.dir, "gateway.log"), errors="replace").read()
            # files mode: each user add sends SIGHUP; with the plugin nothing
            # reloads (the users are read from its database)
            if env.auth == "files":
                self.assertGreaterEqual(broker_log.count("Reloading config"), 1)
            else:
                self.assertEqual(broker_log.count("Reloading config"), 0)
            cid = re.search(r"^client_id (\S+)", open(env.conf).read(), re.M).group(1)
            self.assertNotRegex(broker_log, r"Client %s(\.out)? (disconnected|closed its connection|has exceeded)"
                                % re.escape(cid))
            self.assertEqual(len(re.findall(r"New client connected .* as %s(\.out)? \(" % re.escape(cid),
                                            broker_log)), 2)
            for bad in ("connection lost", "reconnecting", "unreachable"):
                self.assertNotIn(bad, gw_log)
            # every user can log in (the broker has the final file)
            if env.auth == "files":  # the plugin has no password file: the logins below say it
                with open(os.path.join(env.dir, "mosquitto", "passwd")) as f:
                    names = [line.split(":", 1)[0] for line in f if line.strip()]
                self.assertEqual(len(names), len(set(names)))
                for u in added:
                    self.assertIn(u, names)
            for u, pw in added.items():
                self.assertTrue(can_log_in(env.port, u, pw), "%s logs in" % u)


if __name__ == "__main__":
    unittest.main()
