"""The crash test: kill -9 the gateway repeatedly during a stream of QoS 1
messages. Every message confirmed (its echo) is in history after restart, every
message is eventually delivered, none is stored twice (no id with two seqs).
"""
import os
import random
import re
import signal
import threading
import time
import unittest

from harness import EnvTest, wait_until

N = int(os.environ.get("MQIM_CRASH_MESSAGES", "3000"))
KILLS = int(os.environ.get("MQIM_CRASH_KILLS", "5"))


class Crash(EnvTest):
    GATEWAY_ARGS = ("--rate-per-sec", "0")

    def test_kill9_during_stream(self):
        env = self.env
        bob = env.client("bob", client_id="bob.crash", clean=False)
        alice = env.client("alice", client_id="alice.crash", clean=False)
        ids = ["m-%05d" % i for i in range(N)]
        rng = random.Random(int(os.environ.get("MQIM_CRASH_SEED", time.time())))
        pace = 1.0 / 500  # ~6 s of stream for 3000 messages
        done = threading.Event()

        def killer():
            start = time.time()
            moments = sorted(rng.uniform(0.3, N * pace) for _ in range(KILLS))
            for m in moments:
                time.sleep(max(0.0, start + m - time.time()))
                env.gateway.send_signal(signal.SIGKILL)
                env.gateway.wait(10)
                time.sleep(rng.uniform(0.05, 0.4))
                env.start_gateway(wait_online=False)
            done.set()

        k = threading.Thread(target=killer)
        k.start()
        t0 = time.time()
        for i, mid in enumerate(ids):
            alice.c.publish("im/u/alice/out/dm/bob", '{"id":"%s","body":"crash %d"}' % (mid, i), qos=1)
            delay = t0 + (i + 1) * pace - time.time()
            if delay > 0:
                time.sleep(delay)
        k.join()
        self.assertTrue(done.is_set())

        def delivered():
            return {p["id"] for p in bob.matching("in/msg")}
        wait_until(lambda: len(delivered()) == N, 120, "all %d messages delivered to bob" % N)
        sent = lambda: {p["id"] for p in alice.confirmations()}
        wait_until(lambda: len(sent()) == N, 60, "a confirmation (the echo) for every message")

        # No message was stored twice: one seq per id (a redelivery after a
        # crash may repeat a seq, never make a new one).
        seqs = {}
        for p in bob.matching("in/msg"):
            seqs.setdefault(p["id"], set()).add(p["seq"])
        twice = {i: s for i, s in seqs.items() if len(s) > 1}
        self.assertEqual(twice, {}, "ids stored with two seqs")
        self.assertEqual(sorted(s.pop() for s in seqs.values()), list(range(1, N + 1)))
        acked_seq = {}
        for p in alice.confirmations():
            acked_seq.setdefault(p["id"], set()).add(p["seq"])
        self.assertEqual({i: s for i, s in acked_seq.items() if len(s) > 1}, {})

        # Every acked message is in the stored history.
        self.assertEqual(env.stop_gateway(signal.SIGTERM), 0)
        out = env.cli("history", "bob", "--limit", str(N * 2)).stdout
        stored = re.findall(r"\t(m-\d{5})\t", out)
        self.assertEqual(len(stored), N, "each message stored exactly once")
        self.assertEqual(set(stored), set(ids))
        self.assertTrue(sent() <= set(stored))


if __name__ == "__main__":
    unittest.main()
