"""The fault suite (docs/reliability.md). Streams of QoS 1 messages between
`mqim` CLI devices (the device library, LMDB outboxes) through the real
Mosquitto and gateway while faults are injected:

- the gateway killed with SIGKILL at random moments and started again;
- Mosquitto restarted with persistence (SIGTERM) and without (SIGKILL, its
  database removed: sessions, queues and retained messages gone);
- device links broken through LinkProxy: cut, stalled, delayed, half-open
  (long run), connections refused;
- a recipient that stops reading (SIGSTOP) while the others go on;
- (test_store_full) a gateway whose LMDB map fills up;
- (test_broker_restart_mid_download) Mosquitto restarted while the gateway
  publishes a multi-MB file, on a loaded machine (the Paho 1.3.12
  use-after-free of docs/reliability.md).

Checks: every message confirmed (`sent` in the CLI's output: its echo
arrived) is delivered and stored (lost = 0), no application sees a message twice (the CLI prints each once; dup =
0), per-sender order kept, nothing stored twice, the gateway's RSS bounded.

Short by default (ctest integration.faults, under a minute); `make faults`
sets MQIM_FAULTS_LONG=1 (tens of thousands of messages, more and longer
faults). MQIM_FAULTS_SEED repeats a run, MQIM_FAULTS_MESSAGES sets the
messages per sender, MQIM_FAULTS_REPORT names a JSON file for the numbers.
"""
import json
import os
import random
import re
import signal
import subprocess
import threading
import time
import unittest

from harness import Env, EnvTest, LinkProxy, wait_until

LONG = os.environ.get("MQIM_FAULTS_LONG") == "1"
PER_SENDER = int(os.environ.get("MQIM_FAULTS_MESSAGES", "10000" if LONG else "1000"))
RATE = float(os.environ.get("MQIM_FAULTS_RATE", "150" if LONG else "60"))  # per sender, msg/s
SEED = int(os.environ.get("MQIM_FAULTS_SEED", str(int(time.time()))))
DOWNLOAD_RUNS = int(os.environ.get("MQIM_FAULTS_DOWNLOADS", "10" if LONG else "1"))
REPORT = os.environ.get("MQIM_FAULTS_REPORT")
RSS_LIMIT_KB = int(os.environ.get("MQIM_FAULTS_RSS_LIMIT_KB", str(768 * 1024)))  # ASan build

# (sender user, sender device, recipient user): three streams, two recipients
STREAMS = (("alice", "phone", "bob"), ("carol", "pc", "dave"), ("dave", "phone", "bob"))
LISTENERS = (("bob", "tab"), ("dave", "pc"))
LINE = re.compile(r"^\[(\d+)\] (\w+)/(\w+) -> (\w+): (\S+)$")


def report(name, data):
    line = "FAULTS %s %s" % (name, json.dumps(data, sort_keys=True))
    print(line, flush=True)
    if REPORT:
        with open(REPORT, "a") as f:
            f.write(line + "\n")


class RssSampler(threading.Thread):
    def __init__(self, env):
        super().__init__(daemon=True)
        self.env, self.samples, self.anon, self.stop = env, [], [], threading.Event()

    def run(self):
        while not self.stop.is_set():
            g = self.env.gateway
            try:
                with open("/proc/%d/status" % g.pid) as f:
                    for ln in f:
                        if ln.startswith("VmRSS:"):
                            self.samples.append(int(ln.split()[1]))
                        elif ln.startswith("RssAnon:"):  # heap (with ASan's quarantine), not LMDB's map
                            self.anon.append(int(ln.split()[1]))
            except (OSError, AttributeError):
                pass
            self.stop.wait(0.5)


class Device:
    """An `mqim` CLI process on its own proxy; output to a file."""

    def __init__(self, env, user, device, args, stdin=None):
        self.env, self.user, self.device, self.args = env, user, device, args
        self.proxy = LinkProxy(env.port)
        self.out_path = os.path.join(env.dir, "%s-%s.out" % (user, device))
        self.stdin = stdin
        self.start()

    def start(self):
        self.out = open(self.out_path, "a")
        self.p = subprocess.Popen(self.env.mqim_cmd(self.user, self.device, *self.args, timeout_ms=600000,
                                                    port=self.proxy.port),
                                  stdin=subprocess.PIPE if self.stdin else subprocess.DEVNULL,
                                  stdout=self.out, stderr=subprocess.STDOUT, text=True, bufsize=1)

    def lines(self):
        with open(self.out_path, errors="replace") as f:
            return f.read().splitlines()

    def close(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGCONT)
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
        self.out.close()
        self.proxy.close()


class Faults(EnvTest):
    GATEWAY_ARGS = ("--rate-per-sec", "0")

    def setUp(self):
        self.env = Env(users=("alice", "bob", "carol", "dave"), gateway_args=self.GATEWAY_ARGS).__enter__()

    def test_stream_under_faults(self):
        env = self.env
        rng = random.Random(SEED)
        counts = {}
        listeners = {u: Device(env, u, d, ["listen"]) for u, d in LISTENERS}
        senders = [Device(env, u, d, ["chat", peer], stdin=True) for u, d, peer in STREAMS]
        devices = list(listeners.values()) + senders
        for d in devices:
            self.addCleanup(d.close)
        rss = RssSampler(env)
        rss.start()
        feeding = threading.Event()
        feeding.set()

        def feed(dev, tag):
            t0 = time.time()
            for i in range(PER_SENDER):
                dev.p.stdin.write("%s-%06d\n" % (tag, i))
                dev.p.stdin.flush()
                delay = t0 + (i + 1) / RATE - time.time()
                if delay > 0:
                    time.sleep(delay)
            dev.p.stdin.close()

        feeders = [threading.Thread(target=feed, args=(s, s.user)) for s in senders]
        for f in feeders:
            f.start()

        def delivered(user):
            return [m for m in (LINE.match(x) for x in listeners[user].lines()) if m and m.group(4) == user
                    and m.group(2) != user]

        def acked_for(user):
            """`sent` lines (confirmations) the streams to user have had: what the gateway
            stored for user, whatever happens on user's own link."""
            return sum(sum(1 for x in s.lines() if x.startswith("sent "))
                       for s, (_, _, peer) in zip(senders, STREAMS) if peer == user)

        def count(kind):
            counts[kind] = counts.get(kind, 0) + 1

        # The faults: each kind at least once (short run), then random ones,
        # until the streams are fed.
        kinds = ["gw_kill", "gw_kill", "broker_persist", "broker_fresh", "cut", "stall", "delay",
                 "slow_consumer", "refuse", "gw_kill"]
        if LONG:
            kinds += ["half_open"]
        rng.shuffle(kinds)
        kinds.remove("slow_consumer")
        kinds.insert(len(kinds) - 1, "slow_consumer")  # second: while every stream still runs
        only = os.environ.get("MQIM_FAULTS_ONLY", "").split()
        if only:  # e.g. "gw_kill": one kind of fault, to tell effects apart
            kinds = [k for k in kinds if k in only]
        slow_ok, fault_log, t_start = [], [], time.time()
        t_feed_end = time.time() + PER_SENDER / RATE
        while time.time() < t_feed_end - 1 or kinds:
            kind = kinds.pop() if kinds else rng.choice(
                [k for k in ["gw_kill"] * (6 if LONG else 3) + ["broker_persist", "broker_fresh", "cut", "cut",
                             "stall", "delay", "slow_consumer", "refuse"] + (["half_open"] if LONG else [])
                 if not only or k in only])
            dev = rng.choice(devices)
            count(kind)
            fault_log.append("%.1f %s %s" % (time.time() - t_start, kind, dev.user + "/" + dev.device))
            if kind == "gw_kill":
                env.gateway.send_signal(signal.SIGKILL)
                env.gateway.wait(10)
                time.sleep(rng.uniform(0.05, 1.0))
                env.start_gateway(wait_online=False)
            elif kind in ("broker_persist", "broker_fresh"):
                env.restart_broker(persistence=kind == "broker_persist")
            elif kind == "cut":
                dev.proxy.cut()
            elif kind == "stall":
                dev.proxy.stall(rng.uniform(1.0, 4.0))
            elif kind == "delay":
                dev.proxy.delay(rng.choice((50, 200)))
                time.sleep(rng.uniform(1.0, 3.0))
                dev.proxy.delay(0)
            elif kind == "refuse":
                dev.proxy.refuse(True)
                dev.proxy.cut()
                time.sleep(rng.uniform(0.5, 2.0))
                dev.proxy.refuse(False)
            elif kind == "half_open":
                # the device notices only by its keepalive (60 s + 5 s)
                dev.proxy.half_open()
            elif kind == "slow_consumer":
                slow, other = ("bob", "dave") if rng.random() < 0.5 else ("dave", "bob")
                before = len(delivered(other))
                acked_before = acked_for(other)
                listeners[slow].p.send_signal(signal.SIGSTOP)
                time.sleep(rng.uniform(3.0, 6.0) if not LONG else rng.uniform(5.0, 15.0))
                after = len(delivered(other))
                listeners[slow].p.send_signal(signal.SIGCONT)
                acked_after = acked_for(other)
                if time.time() < t_feed_end - 1:  # the other's streams were still running
                    slow_ok.append((slow, other, before, after, acked_after - acked_before))
            time.sleep(rng.uniform(0.3, 1.5) if not LONG else rng.uniform(0.5, 3.0))
        for f in feeders:
            f.join()
        t_faults_end = time.time()

        # Everything fed reaches its recipient, once, in order.
        expect = {u: {} for u, _ in LISTENERS}
        for u, d, peer in STREAMS:
            expect[peer][u] = ["%s-%06d" % (u, i) for i in range(PER_SENDER)]
        want = {u: sum(len(v) for v in expect[u].values()) for u in expect}

        def all_there():
            return all(len({m.group(5) for m in delivered(u)}) >= want[u] for u in want)
        try:
            wait_until(all_there, 300 if LONG else 120, "every message delivered")
        finally:
            for s in senders:  # the senders exit once their outboxes are empty
                try:
                    s.p.wait(120)
                except subprocess.TimeoutExpired:
                    pass
            rss.stop.set()
        recovery_s = time.time() - t_faults_end
        time.sleep(1.0)

        sent_ids, lost, dups, order_breaks, stored_twice, order_examples = {}, 0, 0, 0, 0, []
        for s in senders:
            sent_ids[s.user] = {m.group(1) for m in (re.match(r"^sent (\S+) seq=\d+", x) for x in s.lines()) if m}
        rc = env.stop_gateway(signal.SIGTERM)
        self.assertEqual(rc, 0, env.log_tail("gateway.log", 40))
        history = {}
        for u in want:
            out = env.cli("history", u, "--limit", str(PER_SENDER * 10)).stdout
            for row in out.splitlines()[1:]:
                seq, ts, chat, mid, body = row.split("\t", 4)
                history.setdefault(u, []).append((int(seq), mid, body))
        for u in want:
            got = [m.group(5) for m in delivered(u)]
            seen = set()
            for b in got:
                if b in seen:
                    dups += 1
                seen.add(b)
            for sender_user, bodies in expect[u].items():
                lost += len(set(bodies) - seen)
                mine = [b for b in got if b.startswith(sender_user + "-")]
                breaks = [(a, b) for a, b in zip(mine, mine[1:]) if b <= a]
                order_breaks += len(breaks)
                order_examples.extend(breaks[:3])
            ids = {}
            for seq, mid, body in history.get(u, []):
                ids.setdefault(mid, set()).add(seq)
            stored_twice += sum(1 for v in ids.values() if len(v) > 1)
        # every `sent` id is stored in its recipient's inbox
        stored_ids = {mid for u in history for _, mid, _ in history[u]}
        acked = set().union(*sent_ids.values())
        acked_lost = len(acked - stored_ids)
        proxies = {}
        for d in devices:
            for k, v in d.proxy.faults.items():
                proxies[k] = proxies.get(k, 0) + v
        result = {
            "seed": SEED, "long": LONG, "senders": len(senders), "sent_total": len(senders) * PER_SENDER,
            "acked_sent": len(acked), "delivered": sum(len({m.group(5) for m in delivered(u)}) for u in want),
            "lost": lost, "acked_lost": acked_lost, "duplicated": dups, "stored_twice": stored_twice,
            "order_breaks": order_breaks, "order_examples": order_examples[:6], "faults": counts,
            "fault_log": fault_log, "proxy_faults": proxies,
            "rss_kb_max": max(rss.samples) if rss.samples else 0,
            "rss_kb_last": rss.samples[-1] if rss.samples else 0,
            "rss_anon_kb_max": max(rss.anon) if rss.anon else 0,
            "recovery_s": round(recovery_s, 1), "slow_consumer": slow_ok,
        }
        report("stream", result)
        self.assertEqual(lost, 0)
        self.assertEqual(acked_lost, 0)
        self.assertEqual(dups, 0)
        self.assertEqual(stored_twice, 0)
        self.assertEqual(order_breaks, 0)
        self.assertEqual(len(acked), len(senders) * PER_SENDER, "every message acked sent")
        self.assertLess(result["rss_kb_max"], RSS_LIMIT_KB)
        # The other recipient kept receiving while one was stopped, unless
        # nothing new was stored for it meanwhile (its senders were held up
        # by an earlier fault: a reconnect backoff, the gateway coming back).
        for slow, other, before, after, stored in slow_ok:
            self.assertTrue(after > before or stored == 0,
                            "%s got nothing while %s was stopped, though %d messages for it were stored"
                            % (other, slow, stored))


class StoreFull(unittest.TestCase):
    """A small LMDB map: new messages are rejected with store_full and a
    reason, nothing stored is lost, and a larger map takes them again."""

    def test_store_full(self):
        with Env(users=("alice", "bob"), gateway_args=("--rate-per-sec", "0")) as env:
            env.stop_gateway()
            with open(env.conf, "a") as f:
                f.write("\nmap_size_mb 2\n")
            env.start_gateway()
            alice = env.client("alice", client_id="alice.full", clean=False)
            bob = env.client("bob", client_id="bob.full", clean=False)
            body = "x" * 900
            sent, rejected, i, after_full = set(), {}, 0, 0
            while after_full < 4 and i < 20000:
                after_full += 1 if rejected else 0
                mids = ["f-%05d" % (i + k) for k in range(50)]
                for mid in mids:
                    alice.pub("im/u/alice/out/dm/bob", {"id": mid, "body": body + mid})
                i += 50
                # each one confirmed (its echo) or rejected
                outcomes = lambda: alice.confirmations() + alice.matching("in/ack")
                wait_until(lambda: all(any(p.get("id") == m for p in outcomes()) for m in mids),
                           30, "outcomes for a batch")
                for p in alice.confirmations():
                    sent.add(p["id"])
                for p in alice.matching("in/ack"):
                    if p.get("status") == "rejected":
                        rejected[p.get("id")] = p
            self.assertTrue(rejected, "the 2 MB map never filled")
            codes = {(p.get("code"), bool(p.get("reason"))) for p in rejected.values()}
            self.assertEqual(codes, {("store_full", True)}, codes)
            # every accepted message reached bob, even with the store full
            wait_until(lambda: sent <= {p.get("id") for p in bob.matching("in/msg")}, 30,
                       "bob to get every accepted message")
            # the gateway still answers while full
            alice.pub("im/u/alice/out/ctl", {"op": "history", "with": "bob", "limit": 1, "req": "q"})
            alice.expect("in/res", lambda p: p.get("req") == "q", timeout=10)
            env.stop_gateway()
            stored = set(re.findall(r"\t(f-\d{5})\t", env.cli("history", "bob", "--limit", "100000").stdout))
            self.assertEqual(stored, sent, "what was confirmed is what is stored")
            # space returns: a larger map; the rejected ones are sent again
            with open(env.conf, "a") as f:
                f.write("\nmap_size_mb 64\n")
            env.start_gateway()
            alice.clear()
            for mid in sorted(rejected):
                alice.pub("im/u/alice/out/dm/bob", {"id": mid, "body": body + mid})
            alice.expect_sent(lambda p: p.get("id") in rejected, count=len(rejected), timeout=60)
            env.stop_gateway()
            stored = re.findall(r"\t(f-\d{5})\t", env.cli("history", "bob", "--limit", "100000").stdout)
            self.assertEqual(len(stored), len(set(stored)), "nothing stored twice")
            self.assertEqual(set(stored), sent | set(rejected))
            got = [p.get("id") for p in bob.matching("in/msg")]
            self.assertTrue(sent | set(rejected) <= set(got))
            report("store_full", {"accepted_before_full": len(sent), "rejected": len(rejected),
                                  "accepted_after_growth": len(rejected), "lost": 0})


class DownloadRestart(unittest.TestCase):
    """Mosquitto restarted while the gateway publishes file chunks, with two
    busy loops on the machine: the gateway must survive (ASan), and the
    download finish with the right SHA-256."""

    def test_broker_restart_mid_download(self):
        import hashlib
        with Env(users=("alice", "bob"), gateway_args=("--file-max-mb", "5")) as env:
            data = os.urandom((3 if LONG else 2) * 1024 * 1024)
            src = os.path.join(env.dir, "big.bin")
            with open(src, "wb") as f:
                f.write(data)
            r = env.mqim("alice", "cam", "send-file", "bob", src, timeout_ms=120000)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            r = env.mqim("bob", "tab", "listen", 1)
            file_id = re.search(r"id=(\S+)$", r.stdout.strip()).group(1)
            load = [subprocess.Popen(["sh", "-c", "exec yes > /dev/null"]) for _ in range(2)]
            crashes = restarts = 0
            try:
                for run in range(DOWNLOAD_RUNS):
                    out = os.path.join(env.dir, "got-%d.bin" % run)
                    p = subprocess.Popen(env.mqim_cmd("bob", "tab", "get-file", file_id, out, timeout_ms=60000),
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                    lines = []
                    at = random.Random(SEED + run).randint(256, len(data) * 3 // 4 >> 10) << 10
                    for line in p.stdout:
                        lines.append(line)
                        m = re.match(r"progress (\d+)/", line)
                        if m and int(m.group(1)) >= at:
                            break
                    env.restart_broker(persistence=run % 2 == 0)
                    restarts += 1
                    rest = p.communicate(timeout=120)[0]
                    if env.gateway.poll() is not None:
                        crashes += 1
                        break
                    self.assertEqual(p.returncode, 0, "".join(lines) + rest)
                    with open(out, "rb") as f:
                        self.assertEqual(hashlib.sha256(f.read()).hexdigest(), hashlib.sha256(data).hexdigest())
            finally:
                for q in load:
                    q.kill()
                    q.wait()
            log = open(os.path.join(env.dir, "gateway.log"), errors="replace").read()
            report("download_restart", {"broker_restarts": restarts, "gateway_crashes": crashes,
                                        "asan": "AddressSanitizer" in log})
            self.assertEqual(crashes, 0, env.log_tail("gateway.log", 80))
            self.assertNotIn("AddressSanitizer", log)


if __name__ == "__main__":
    unittest.main()
