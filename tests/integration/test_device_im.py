"""Two devices on the full device stack (IM layer, session, TCP, LMDB outbox
and state) chat through the real Mosquitto and gateway: sent and delivered
acks, exactly-once delivery across restarts, and a message queued while the
broker is down delivered once it is back."""
import os
import subprocess
import time
import unittest

from harness import EnvTest

PROBE = os.environ.get("MQIM_IM_PROBE")


class DeviceIm(EnvTest):
    def probe(self, user, device, *args, timeout=30):
        state = os.path.join(self.env.dir, "dev-%s-%s" % (user, device))
        return subprocess.run([PROBE, "127.0.0.1", str(self.env.port), user, self.env.passwords[user],
                               device, state] + [str(a) for a in args],
                              capture_output=True, text=True, timeout=timeout)

    def test_chat_acks_and_exactly_once(self):
        self.assertTrue(PROBE, "MQIM_IM_PROBE not set")
        watch = self.env.client("alice")  # alice's shell sees the acks her device gets
        for i in range(3):
            r = self.probe("alice", "phone", "send", "bob", "hello %d" % i)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("ack sent", r.stdout)
            self.assertNotIn("ack rejected", r.stdout)  # e.g. a receipt for its own echo
        r = self.probe("bob", "tab", "listen", 3)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        msgs = [l for l in r.stdout.splitlines() if l.startswith("msg ")]
        self.assertEqual([l.split("body=")[1] for l in msgs], ["hello 0", "hello 1", "hello 2"])
        self.assertTrue(all("from=alice " in l for l in msgs), msgs)
        self.assertEqual([l.split()[1] for l in msgs], ["seq=1", "seq=2", "seq=3"])
        delivered = watch.expect("in/ack", lambda p: p.get("status") == "delivered", count=3)
        self.assertEqual({p["by"] for p in delivered}, {"bob"})
        self.assertEqual({p["device"] for p in delivered}, {"tab"})
        # bob's device remembers what it saw: the next run delivers only the new one
        r = self.probe("alice", "phone", "send", "bob", "fourth")
        self.assertEqual(r.returncode, 0, r.stdout)
        r = self.probe("bob", "tab", "listen", 1, 3000)
        msgs = [l for l in r.stdout.splitlines() if l.startswith("msg ")]
        self.assertEqual(len(msgs), 1, r.stdout)
        self.assertIn("body=fourth", msgs[0])

    def test_queued_while_broker_down(self):
        self.assertTrue(PROBE, "MQIM_IM_PROBE not set")
        self.env.stop_gateway()
        self.env.stop_broker()
        r = self.probe("alice", "phone", "send", "bob", "survives", 1500)
        self.assertEqual(r.returncode, 10, r.stdout)  # only queued
        self.assertIn("outbox=1", r.stdout)
        self.env.start_broker()
        self.env.start_gateway()
        r = self.probe("alice", "phone", "flush")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("outbox=0", r.stdout)
        r = self.probe("bob", "tab", "listen", 1)
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn("body=survives", r.stdout)
        # flushing again sends nothing new: still one message in bob's inbox
        self.probe("alice", "phone", "flush", 3000)
        self.env.stop_gateway()
        out = self.env.cli("history", "bob").stdout
        self.assertEqual(out.count("survives"), 1, out)


if __name__ == "__main__":
    unittest.main()
