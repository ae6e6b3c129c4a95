"""The device library's MQTT session (its own codec and client, no Paho) and
its POSIX TCP port against the real Mosquitto and gateway."""
import os
import subprocess
import unittest

from harness import EnvTest

PROBE = os.environ.get("MQIM_SESSION_PROBE")


class DeviceSession(EnvTest):
    def test_probe_sends_and_gets_acks(self):
        self.assertTrue(PROBE, "MQIM_SESSION_PROBE not set")
        bob = self.env.client("bob")
        watch = self.env.client("carol", subs=["im/presence/alice"])
        r = subprocess.run([PROBE, "127.0.0.1", str(self.env.port), "alice", self.env.passwords["alice"], "bob"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("puback=1 sent=1 echo=1", r.stdout)
        msg = bob.expect("in/msg", lambda p: p.get("id") == "probe-1")[0]
        self.assertEqual(msg["from"], "alice")
        self.assertEqual(msg["body"], "hello from the device library")
        # its retained status went through the gateway into presence
        watch.expect("presence/alice", lambda p: p.get("devices", {}).get("probe", {}).get("state") == "online")


if __name__ == "__main__":
    unittest.main()
