"""The OpenMetrics endpoint (issue 19) scraped by a real Prometheus
(Debian's `prometheus`, scripts/deps): DMs, a rejection and a rate-limit
flood go through the real broker and gateway, and the values are read back
through Prometheus's HTTP API (/api/v1/query). `promtool check metrics`
passes on a scrape, `promtool check rules` on config/mqim-alerts.yml (which
this Prometheus also loads). The endpoint refuses a non-loopback address
unless allowed, answers only GET /metrics, bounds requests, and a client
that connects and says nothing does not hold up routing. The flood's
rejections are logged as one line (one per user per 10 s)."""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

from harness import SRC, Env, free_port, wait_until

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
ALERTS = os.path.join(SRC, "config", "mqim-alerts.yml")

# Every family docs/operations.md lists (issue 19's list).
FAMILIES = [
    "mqim_routed_messages_total", "mqim_rejections_total", "mqim_rate_limit_hits_total",
    "mqim_broker_connected", "mqim_broker_connects_total", "mqim_publisher_connects_total",
    "mqim_outbox_sent_total", "mqim_commits_total", "mqim_committed_publishes_total",
    "mqim_commit_latency_seconds_bucket", "mqim_commit_latency_seconds_sum",
    "mqim_commit_latency_seconds_count", "mqim_journal_lag_records", "mqim_devices_online",
    "mqim_users_online", "mqim_devices_known", "mqim_outbox_depth", "mqim_outbox_oldest_age_seconds",
    "mqim_store_map_used_bytes", "mqim_store_map_size_bytes", "mqim_store_file_bytes",
    "mqim_store_users", "mqim_store_messages", "mqim_store_info", "process_cpu_seconds_total",
    "process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds",
]


def http_get(port, path="/metrics", accept=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path))
    if accept:
        req.add_header("Accept", accept)
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.headers["Content-Type"], r.read().decode()


def raw_request(port, data):
    with socket.create_connection(("127.0.0.1", port), 5) as s:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out.decode(errors="replace")
            out += chunk


class Prometheus:
    """A real Prometheus on a free port, scraping the gateway every second."""

    def __init__(self, target_port):
        self.dir = tempfile.mkdtemp(prefix="mqim-prom-")
        self.port = free_port()
        conf = os.path.join(self.dir, "prometheus.yml")
        with open(conf, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "rule_files:\n  - %s\n"
                    "scrape_configs:\n  - job_name: mqim-gateway\n    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n" % (ALERTS, target_port))
        self.log = open(os.path.join(self.dir, "prometheus.log"), "w")
        self.proc = subprocess.Popen(
            [PROMETHEUS, "--config.file=" + conf, "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=warn"],
            stdout=self.log, stderr=self.log)

    def query(self, expr):
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (self.port, urllib.parse.urlencode({"query": expr}))
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                doc = json.load(r)
        except OSError:
            return None
        return doc["data"]["result"] if doc.get("status") == "success" else None

    def value(self, expr):
        res = self.query(expr)
        return float(res[0]["value"][1]) if res else None

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Metrics(unittest.TestCase):
    def test_prometheus_scrapes_every_family(self):
        mport = free_port()
        conf = "metrics_listen 127.0.0.1:%d\nrate_per_sec 1\nrate_burst 10" % mport
        with Env(gateway_conf=conf) as env:
            prom = Prometheus(mport)
            try:
                self.run_flow(env, prom, mport)
            finally:
                prom.close()

    def run_flow(self, env, prom, mport):
        alice = env.client("alice")
        carol = env.client("carol")
        env.client("bob")
        # 5 DMs and one device status of alice (routed), one DM to a user
        # who does not exist (rejected: unknown_peer): 7 of her 10 burst.
        alice.pub("im/u/alice/out/status/phone", {"state": "online"})
        for i in range(5):
            alice.dm("bob", {"id": "m%d" % i, "body": "hello"})
        alice.dm("nobody", {"id": "x1", "body": "to no one"})
        alice.expect("in/ack", lambda p: isinstance(p, dict) and p.get("code") == "unknown_peer")
        alice.expect_sent(count=5)
        # carol floods past her burst of 10: rejected with rate_limited
        for i in range(16):
            carol.dm("bob", {"id": "c%d" % i, "body": "flood"})

        def carol_done():
            acks = carol.matching("in/ack", lambda p: isinstance(p, dict) and p.get("code") == "rate_limited")
            return (len(carol.confirmations()) + len(acks) == 16) and acks
        limited = len(wait_until(carol_done, 15, "carol's 16 DMs confirmed or refused"))
        carol_ok = 16 - limited
        self.assertGreaterEqual(limited, 5)
        # the flood is one log line (one per user per 10 s), not one per publish
        with open(os.path.join(env.dir, "gateway.log"), errors="replace") as f:
            lines = [ln for ln in f if "rejected rate from carol" in ln]
        self.assertEqual(len(lines), 1, lines)

        # Read back through Prometheus's API once a scrape saw everything.
        want_dm = 5 + carol_ok
        wait_until(lambda: prom.value('mqim_routed_messages_total{kind="dm"}') == want_dm, 20,
                   "Prometheus to show %d routed DMs" % want_dm)
        self.assertEqual(prom.value('mqim_routed_messages_total{kind="status"}'), 1)
        self.assertEqual(prom.value('mqim_rejections_total{code="unknown_peer"}'), 1)
        self.assertEqual(prom.value('mqim_rejections_total{code="rate_limited"}'), limited)
        self.assertEqual(prom.value("mqim_rate_limit_hits_total"), limited)
        self.assertEqual(prom.value("mqim_devices_online"), 1)
        self.assertEqual(prom.value("mqim_users_online"), 1)
        self.assertEqual(prom.value("mqim_broker_connected"), 1)
        self.assertEqual(prom.value("mqim_publisher_connects_total"), 1)
        self.assertEqual(prom.value("mqim_store_users"), 3)
        self.assertEqual(prom.value("up"), 1)
        # every routed or rejected publish went through a group commit
        self.assertGreaterEqual(prom.value("mqim_committed_publishes_total"), 1 + 6 + 16)
        self.assertEqual(prom.value("mqim_commit_latency_seconds_count"), prom.value("mqim_commits_total"))
        names = {r["metric"]["__name__"] for r in prom.query('{job="mqim-gateway"}') or []}
        missing = [f for f in FAMILIES if f not in names]
        self.assertEqual(missing, [], "families Prometheus did not get")
        # the alert rules loaded and evaluate (none fires on a healthy gateway)
        with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/rules" % prom.port, timeout=5) as r:
            groups = json.load(r)["data"]["groups"]
        self.assertEqual([g["name"] for g in groups], ["mqim-gateway"])
        firing = [a["name"] for g in groups for a in g["rules"] if a.get("state") == "firing"]
        self.assertEqual(firing, [])

        # The formats: OpenMetrics by default, Prometheus text when asked.
        ctype, om = http_get(mport)
        self.assertEqual(ctype, "application/openmetrics-text; version=1.0.0; charset=utf-8")
        self.assertTrue(om.endswith("# EOF\n"))
        self.assertIn("# TYPE mqim_routed_messages counter\n", om)
        ctype, text = http_get(mport, accept="text/plain;version=0.0.4")
        self.assertEqual(ctype, "text/plain; version=0.0.4; charset=utf-8")
        self.assertNotIn("# EOF", text)
        self.assertIn("# TYPE mqim_routed_messages_total counter\n", text)
        r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = subprocess.run([PROMTOOL, "check", "rules", ALERTS], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        # Requests: only GET /metrics, bounded in size.
        self.assertIn("404 Not Found", raw_request(mport, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        self.assertIn("405 Method Not Allowed", raw_request(mport, b"POST /metrics HTTP/1.1\r\n\r\n"))
        self.assertIn("400 Bad Request",
                      raw_request(mport, b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * 5000 + b"\r\n\r\n"))
        # A client that connects and says nothing holds the metrics thread
        # (2 s at most), never routing.
        idle = socket.create_connection(("127.0.0.1", mport), 5)
        try:
            t0 = time.monotonic()
            alice.clear()
            alice.dm("bob", {"id": "while-idle", "body": "still routed"})
            alice.expect_sent(lambda p: p.get("id") == "while-idle", timeout=10)
            self.assertLess(time.monotonic() - t0, 1.5)
        finally:
            idle.close()
        self.assertIn("mqim_routed_messages_total", http_get(mport)[1])

        # A non-loopback metrics_listen is refused unless allowed (the
        # config is validated before any command: `status` shows it).
        r = env.cli("--metrics-listen", "0.0.0.0:%d" % free_port(), "status", check=False)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("not a loopback address", r.stderr)
        self.assertIn("metrics_allow_remote", r.stderr)
        r = env.cli("--metrics-listen", "nonsense", "status", check=False)
        self.assertEqual(r.returncode, 2, r.stderr)
        r = env.cli("--metrics-listen", "0.0.0.0:%d" % free_port(), "--metrics-allow-remote", "true",
                    "status", check=False)
        self.assertEqual(r.returncode, 0, r.stderr)  # valid now: the status of the running gateway
        r = env.cli("--metrics-listen", "[::1]:%d" % free_port(), "status", check=False)
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
