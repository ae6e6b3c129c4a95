"""Store identity (docs/deploy.md "Backup and restore", docs/protocol.md
"Store epochs"): a backup restored under devices that saw later seqs loses
nothing they are sent afterwards; one gateway per data directory; a copy of
the store started against the same broker does not route."""
import os
import re
import shutil
import subprocess
import time
import unittest

import json
import socket

from harness import Client, Env, EnvTest, wait_until

MQIM = os.environ.get("MQIM_CLI")


def messages(out):
    return re.findall(r"^\[(\d+)\] ([^\s/]+)(?:/\S+)? -> (\S+): (.*)$", out, re.M)


class StoreIdentity(EnvTest):
    def send(self, text):
        r = self.env.mqim("alice", "phone", "send", "bob", text)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_backup_restore_device_resyncs(self):
        """deploy.md's steps, literally: backup while running, more
        messages, stop, restore, start. Bob's device saw seqs 1-4; the
        restored store hands out 3 and 4 again: the device notices the new
        epoch and shows them instead of dropping them as seen."""
        self.assertTrue(MQIM, "MQIM_CLI not set")
        env = self.env
        for i in range(2):
            self.send("before backup %d" % i)
        r = env.mqim("bob", "tab", "listen", 2)
        self.assertEqual([m[0] for m in messages(r.stdout)], ["1", "2"], r.stdout + r.stderr)
        stats = env.cli("stats").stdout
        epoch = re.search(r"(?m)^store_epoch\t(\d+)$", stats).group(1)
        backup = os.path.join(env.dir, "backup-1")
        r = env.cli("backup", backup)  # the gateway keeps running
        self.assertIn("backup of store", r.stdout)
        self.assertTrue(os.path.exists(os.path.join(backup, "data.mdb")))
        # a backup never overwrites another
        self.assertNotEqual(env.cli("backup", backup, check=False).returncode, 0)
        for i in range(2):
            self.send("after backup %d" % i)
        r = env.mqim("bob", "tab", "listen", 2)
        self.assertEqual([m[0] for m in messages(r.stdout)], ["3", "4"], r.stdout + r.stderr)

        # restore needs the gateway stopped: the lock says who holds the store
        r = env.cli("restore", backup, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"another mqim-gateway \(pid %d\)" % env.gateway.pid)
        self.assertEqual(env.stop_gateway(), 0)
        r = env.cli("restore", backup)
        self.assertIn("new epoch", r.stdout)
        stats = env.cli("stats").stdout
        self.assertNotEqual(re.search(r"(?m)^store_epoch\t(\d+)$", stats).group(1), epoch)
        env.start_gateway()

        # The restored store gives seqs 3 and 4 again, to new messages.
        self.send("post-restore message")
        self.send("post-restore second")
        r = env.mqim("bob", "tab", "listen", 2)
        self.assertEqual(messages(r.stdout), [("3", "alice", "bob", "post-restore message"),
                                              ("4", "alice", "bob", "post-restore second")],
                         r.stdout + r.stderr)
        self.assertIn("new epoch", r.stderr)  # the CLI says so, once
        self.assertEqual(r.stderr.count("new epoch"), 1, r.stderr)
        # ... and the next run goes on as usual
        self.send("after that")
        r = env.mqim("bob", "tab", "listen", 1)
        self.assertEqual(messages(r.stdout), [("5", "alice", "bob", "after that")], r.stdout + r.stderr)
        self.assertNotIn("new epoch", r.stderr)

    def test_backup_carries_the_journal(self):
        """The journal is part of the backup: restore replays what it holds
        past the backup's applied point."""
        env = self.env
        backup = os.path.join(env.dir, "backup-j")
        env.cli("backup", backup)
        self.assertTrue(os.path.exists(os.path.join(backup, "inbound.journal")))

    def test_second_gateway_on_the_same_data_dir_exits(self):
        env = self.env
        t0 = time.monotonic()
        r = subprocess.run([os.environ["MQIM_GATEWAY"], "-c", env.conf], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertIn("another mqim-gateway (pid %d) is using the data directory" % env.gateway.pid,
                      r.stderr)
        # the first one still routes
        bob = env.client("bob", subs=["im/u/bob/in/#"])
        env.client("alice").dm("bob", '{"id":"still-1","body":"still routed"}')
        bob.expect("in/msg", lambda p: p.get("id") == "still-1")

    def test_copy_of_the_store_does_not_route(self):
        """A copy of the data directory started as a second gateway (same
        config: client id, broker) finds the first online and waits,
        saying why, instead of taking the client id over and handing out
        seqs twice."""
        env = self.env
        data = re.search(r"(?m)^data_dir\s+(\S+)$", open(env.conf).read()).group(1)
        copy = os.path.join(env.dir, "gateway-copy")
        shutil.copytree(data, copy, ignore=shutil.ignore_patterns("gateway.lock", "lock.mdb"))
        log_path = os.path.join(env.dir, "copy.log")
        with open(log_path, "w") as log:
            second = subprocess.Popen([os.environ["MQIM_GATEWAY"], "-c", env.conf, "--data-dir", copy],
                                      stdout=log, stderr=log)
        try:
            wait_until(lambda: "another mqim-gateway is online" in open(log_path).read(), 20,
                       "the copy to see the first gateway")
            text = open(log_path).read()
            self.assertIn("this store: a copy of its data directory", text)
            self.assertIn("pid %d" % env.gateway.pid, text)
            # the first one routes everything, once; no seq is given twice
            bob = env.client("bob", subs=["im/u/bob/in/#"])
            alice = env.client("alice", subs=["im/u/alice/in/#"])
            for i in range(20):
                alice.dm("bob", '{"id":"c-%d","body":"m%d"}' % (i, i))
            got = bob.expect("in/msg", count=20)
            alice.expect_sent(count=20)
            time.sleep(1.0)
            seqs = [p["seq"] for p in bob.matching("in/msg")]
            self.assertEqual(sorted(seqs), list(range(1, 21)), got)
            self.assertIsNone(second.poll())  # still waiting, not routing
            self.assertNotIn("connected to", open(log_path).read())
            # once the first stops, the copy takes over
            self.assertEqual(env.stop_gateway(), 0)
            wait_until(lambda: "connected to" in open(log_path).read(), 30, "the copy to connect")
        finally:
            second.terminate()
            second.wait(20)


    def test_online_status_of_an_earlier_boot_is_stale(self):
        """A power loss takes the broker and the gateway down together: the
        will never goes out and the broker's autosave keeps the retained
        "online". After the reboot the status names this host with another
        boot id: the gateway routes instead of waiting for an instance that
        cannot exist."""
        env = self.env
        self.assertEqual(env.stop_gateway(), 0)
        with open(os.path.join(env.dir, "gateway.password")) as f:
            gw_password = f.readline().strip()
        gw = Client(env, "mqim-gateway", gw_password, subs=[])
        env.clients.append(gw)
        stale = {"state": "online", "ts": 1, "store": "0" * 16, "store_epoch": 1, "instance": "before-the-power-loss",
                 "host": socket.gethostname(), "boot": "00000000-0000-0000-0000-000000000000", "pid": 1}
        gw.pub("im/gateway/status", json.dumps(stale), retain=True)
        time.sleep(0.5)
        env.start_gateway()
        bob = env.client("bob", subs=["im/u/bob/in/#"])
        alice = env.client("alice", subs=["im/u/alice/in/#"])
        alice.dm("bob", '{"id":"after-reboot","body":"routed"}')
        bob.expect("in/msg", lambda p: p.get("id") == "after-reboot", timeout=20)
        self.assertNotIn("another mqim-gateway is online", env.log_tail("gateway.log", 100000))


class BrokerState(unittest.TestCase):
    def test_abandoned_session_stops_growing(self):
        """A persistent session whose client never comes back holds at most
        max_queued_messages (MQIM_MAX_QUEUED_MESSAGES, here 50) instead of
        every message sent to it; the gateway's store keeps them all (a
        sync brings them). The generated config expires such sessions
        (persistent_client_expiration, MQIM_SESSION_EXPIRY)."""
        os.environ["MQIM_MAX_QUEUED_MESSAGES"] = "50"
        os.environ["MQIM_SESSION_EXPIRY"] = "2h"
        try:
            env = Env(users=("alice", "bob"))
            env.__enter__()
        finally:
            del os.environ["MQIM_MAX_QUEUED_MESSAGES"]
            del os.environ["MQIM_SESSION_EXPIRY"]
        try:
            conf = open(os.path.join(env.dir, "mosquitto", "mosquitto.conf")).read()
            self.assertIn("\npersistent_client_expiration 2h\n", conf)
            self.assertIn("\nmax_queued_messages 50\n", conf)
            gone = env.client("bob", client_id="bob.gone", clean=False, keep=False)
            gone.close()  # subscribed, then away for good
            alice = env.client("alice")
            for i in range(200):
                alice.dm("bob", '{"id":"q-%d","body":"queued %d"}' % (i, i))
            alice.expect_sent(count=200, timeout=60)
            time.sleep(0.5)
            back = env.client("bob", client_id="bob.gone", clean=False)
            time.sleep(2.0)
            held = len(back.matching("in/msg"))
            self.assertGreater(held, 0)
            self.assertLessEqual(held, 50 + 100)  # the queue, plus what max_inflight lets out at once
            self.assertLess(held, 200)
            # nothing is lost: the store has all 200, and sync pages them out
            back.clear()
            back.pub("im/u/bob/out/ctl", '{"op":"sync","after":0,"limit":100}')
            res = back.expect("in/res", lambda p: p.get("op") == "sync")
            self.assertEqual(res[0]["last"], 100)
            self.assertFalse(res[0]["complete"])
        finally:
            env.__exit__(None, None, None)


if __name__ == "__main__":
    unittest.main()
