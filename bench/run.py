#!/usr/bin/env python3
"""bench/run.py [--quick] [--build DIR] [--reps N] [--out FILE]

Starts a private Mosquitto + mqim-gateway (scripts/broker-conf, `mqim-gateway
init`, `user add`, as tests/integration/harness.py does) on a free loopback
port in a temp dir; the raw baseline goes through the same broker (or, with
MQIM_BENCH_BASELINE=separate, a second anonymous one); then runs
bench/mqim_load:

  throughput  routed DMs vs raw pub/sub, same clients, QoS 1, 100-byte bodies,
              alternating, --reps times; ratio = routed msgs/s / raw msgs/s
  latency     fixed offered loads (1k/s, 5k/s): routed and raw; the disk's
              fdatasync latency next to them
  commits     messages per LMDB commit, commits/s (`mqim-gateway stats`)
  fan-out     one sender to a 100-member group
  memory      the gateway's RSS

Prints a JSON summary and markdown tables; exits 1 when a run lost messages
or the median throughput ratio is under 0.40.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

# In-flight windows: the broker's (max_inflight_messages, also its MQTT v5
# receive maximum), for both brokers alike, and the gateway's max_inflight.
BROKER_INFLIGHT = int(os.environ.get("MQIM_BENCH_BROKER_INFLIGHT", "1000"))
GW_INFLIGHT = int(os.environ.get("MQIM_BENCH_GW_INFLIGHT", "500"))
# The raw baseline runs through the gateway's own broker (password file, ACL,
# persistence: the same broker, as the issue asks), or with
# MQIM_BENCH_BASELINE=separate through a second, anonymous broker with the
# same limits and no persistence (the first runs of docs/benchmarks.md).
SAME_BROKER = os.environ.get("MQIM_BENCH_BASELINE", "same") != "separate"
# MQIM_BENCH_PIN=1: the gateway alone on one CPU, everything else on the other.
PIN = os.environ.get("MQIM_BENCH_PIN", "0") == "1"
SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on %d" % port)


class Bench:
    def __init__(self, build, keep):
        self.build = build
        self.gw_bin = os.path.join(build, "gateway", "mqim-gateway")
        self.load_bin = os.path.join(build, "bench", "mqim_load")
        self.dir = tempfile.mkdtemp(prefix="mqim-bench-")
        self.keep = keep
        self.port = free_port()
        self.raw_port = free_port()
        self.procs = []
        self.passwords = {}

    def cli(self, *args):
        r = subprocess.run([self.gw_bin, "-c", self.conf] + list(args), capture_output=True, text=True,
                           timeout=120)
        if r.returncode != 0:
            raise RuntimeError("mqim-gateway %s: %s" % (" ".join(args), r.stderr))
        return r.stdout

    def setup(self, users):
        env = dict(os.environ, MQIM_TLS_PORT="0", MQIM_CERT_PORT="0")
        subprocess.run([os.path.join(SRC, "scripts", "broker-conf"), self.dir, str(self.port)], check=True,
                       env=env, stdout=subprocess.DEVNULL)
        self.conf = os.path.join(self.dir, "gateway.conf")
        with open(self.conf, "a") as f:
            # no per-user limits in the way of a benchmark; room for the history
            f.write("\nrate_per_sec 0\ninbox_quota 0\nmap_size_mb 8192\nstats_interval_s 1\nmax_inflight %d\n" % GW_INFLIGHT)
        self.cli("init")
        t = time.time()
        for u in users:
            self.passwords[u] = self.cli("user", "add", u, "--random").strip()
        self.user_add_s = time.time() - t
        if SAME_BROKER:
            # The baseline's topics on the gateway's broker, for every user
            # (after `init`, which rewrites the ACL file).
            with open(os.path.join(self.dir, "mosquitto", "acl"), "a") as f:
                f.write("\n# bench/run.py: the raw baseline publishes straight to the recipients\n"
                        "pattern readwrite bench/x/#\n")
        self.pwfile = os.path.join(self.dir, "bench-passwords")
        with open(self.pwfile, "w") as f:
            for u, p in self.passwords.items():
                f.write("%s %s\n" % (u, p))
        raw = os.path.join(self.dir, "raw")
        os.makedirs(raw)
        with open(os.path.join(raw, "mosquitto.conf"), "w") as f:
            # The baseline: the limits scripts/broker-conf sets, anonymous.
            f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_inflight_messages %d\nmax_queued_messages 1000000\nmax_queued_bytes 0\n%s"
                    % (self.raw_port, BROKER_INFLIGHT, "set_tcp_nodelay true\n" if os.environ.get("MQIM_BENCH_NODELAY", "1") == "1" else ""))
        if os.environ.get("MQIM_BENCH_NODELAY", "1") != "1":
            # scripts/broker-conf turns Nagle off; the experiment turns it back on
            with open(os.path.join(self.dir, "mosquitto", "mosquitto.conf"), "a") as f:
                f.write("\nset_tcp_nodelay false\n")
        with open(os.path.join(self.dir, "mosquitto", "mosquitto.conf"), "a") as f:
            f.write("\nmax_inflight_messages %d\n" % BROKER_INFLIGHT)
        self.start("broker", ["mosquitto", "-c", os.path.join(self.dir, "mosquitto", "mosquitto.conf")])
        if SAME_BROKER:
            self.raw_port = self.port
        else:
            self.start("raw-broker", ["mosquitto", "-c", os.path.join(raw, "mosquitto.conf")])
            wait_port(self.raw_port)
        wait_port(self.port)
        self.gateway = self.start("gateway", [self.gw_bin, "-c", self.conf, "--log-level", os.environ.get("MQIM_BENCH_LOG", "warn")])
        time.sleep(1.0)  # connected and subscribed (its log says so; 1 s is plenty on loopback)
        if PIN and os.cpu_count() and os.cpu_count() >= 2:
            # the broker, this driver and its load generators on CPU 0, every
            # gateway thread on CPU 1 (docs/benchmarks.md, section 2)
            os.sched_setaffinity(0, {0})
            os.sched_setaffinity(self.procs[0].pid, {0})
            for tid in os.listdir("/proc/%d/task" % self.gateway.pid):
                os.sched_setaffinity(int(tid), {1})

    def start(self, name, argv):
        log = open(os.path.join(self.dir, name + ".log"), "a")
        p = subprocess.Popen(argv, stdout=log, stderr=log)
        self.procs.append(p)
        return p

    def load_cpu(self, mode, pairs, count, **kw):
        """load(), with the CPU microseconds per message of the broker, the
        gateway and the load generator during it."""
        b0, g0, l0 = cpu_s(self.procs[0].pid), cpu_s(self.gateway.pid), children_cpu_s()
        res = self.load(mode, pairs, count, **kw)
        n = max(1, pairs * count)
        res["cpu_us_per_msg"] = {"broker": round((cpu_s(self.procs[0].pid) - b0) * 1e6 / n),
                                 "gateway": round((cpu_s(self.gateway.pid) - g0) * 1e6 / n),
                                 "loadgen": round((children_cpu_s() - l0) * 1e6 / n)}
        return res

    def load(self, mode, pairs, count, rate=0, window=200, prefix="b", timeout=60):
        argv = [self.load_bin, "--mode", mode, "--pairs", str(pairs), "--count", str(count),
                "--rate", str(rate), "--window", str(window), "--prefix", prefix,
                "--timeout", str(timeout),
                "--port", str(self.raw_port if mode == "raw" else self.port)]
        if mode != "raw" or SAME_BROKER:
            argv += ["--passwords", self.pwfile]
        r = subprocess.run(argv, capture_output=True, text=True)
        try:
            res = json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise RuntimeError("mqim_load failed (%d): %s %s" % (r.returncode, r.stdout, r.stderr[-2000:]))
        res["ok"] = r.returncode == 0
        if not res["ok"]:
            sys.stderr.write("LOST MESSAGES: %s\n%s\n" % (json.dumps(res), r.stderr[-2000:]))
        return res

    def stats(self):
        out = {}
        for line in self.cli("stats").splitlines():
            k, _, v = line.partition("\t")
            out[k] = int(v) if v.isdigit() else v
        return out

    def rss_kib(self):
        """VmRSS, and RssAnon: the gateway's own memory (RssFile is LMDB's
        map: page cache shared with the kernel, counted while mapped)."""
        out = {}
        with open("/proc/%d/status" % self.gateway.pid) as f:
            for line in f:
                k = line.split(":")[0]
                if k in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                    out[k] = int(line.split()[1])
        return out

    def wait_outbox_empty(self, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            if self.stats().get("outbox", 1) == 0:
                return True
            time.sleep(0.2)
        return False

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def cpu_s(pid):
    """CPU seconds (user + system) a process has used so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_s():
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def disk_sync_us(directory, n=300):
    """The disk's synced-write latency where the gateway keeps LMDB: n times
    a 4 KiB pwrite + fdatasync (an LMDB commit makes two: data, then the
    meta page). Percentiles in microseconds."""
    path = os.path.join(directory, "sync-probe")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    lat = []
    try:
        block = os.urandom(4096)
        for i in range(n):
            t = time.perf_counter()
            os.pwrite(fd, block, (i % 64) * 4096)
            os.fdatasync(fd)
            lat.append((time.perf_counter() - t) * 1e6)
    finally:
        os.close(fd)
        os.unlink(path)
    lat.sort()
    return {"p50": int(lat[len(lat) // 2]), "p99": int(lat[int(len(lat) * 0.99)]), "max": int(lat[-1])}


def bulk_passwd(path, users, password):
    """Append Mosquitto 2.0 password entries in one go: the format
    mosquitto_passwd writes, $7$ = PBKDF2-HMAC-SHA512, 101 iterations, a
    12-byte salt, base64 (mosquitto_passwd per user rewrites the whole file
    each time: quadratic for 10,000 users)."""
    import base64
    import hashlib
    with open(path, "a") as f:
        for u in users:
            salt = os.urandom(12)
            h = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101, 64)
            f.write("%s:$7$101$%s$%s\n" % (u, base64.b64encode(salt).decode(), base64.b64encode(h).decode()))


def absorbed(b, base, n, timeout):
    """Seconds until the gateway has handled n more publishes and emptied its outbox."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        st = b.stats()
        if st["batched_total"] - base >= n and st.get("outbox", 1) == 0:
            return time.time() - t0, st
        time.sleep(0.2)
    return -1, b.stats()


def scale(b, n, procs, count):
    """n idle devices (presence online, subscribed to their inbox), in procs
    load-generator processes; the time for the gateway to absorb them, its
    memory, routed throughput meanwhile, and a reconnect storm."""
    res = {"devices": n, "processes": procs}
    pw = "bench-device-password"
    users = ["d%d" % i for i in range(n)]
    t = time.time()
    bulk_passwd(os.path.join(b.dir, "mosquitto", "passwd"), users, pw)
    res["passwd_write_s"] = round(time.time() - t, 2)
    b.procs[0].send_signal(signal.SIGHUP)  # the broker reloads its password file
    time.sleep(1.0)
    rss0 = b.rss_kib()

    def start_all():
        ps = []
        per = n // procs
        for k in range(procs):
            ps.append(subprocess.Popen([b.load_bin, "--devices", str(per), "--first", str(k * per), "--prefix", "d",
                                        "--password", pw, "--port", str(b.port), "--timeout", "120"],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        outs = [json.loads(p.stdout.readline()) for p in ps]
        return ps, outs

    base = b.stats()["batched_total"]
    t0 = time.time()
    ps, outs = start_all()
    res["first_connect"] = outs
    res["all_online_s"] = round(time.time() - t0, 2)
    ab, st = absorbed(b, base, n, 300)
    res["absorb_s"] = round(time.time() - t0, 2) if ab >= 0 else -1
    res["gateway_mem_kib"] = b.rss_kib()
    res["gateway_mem_kib_before"] = rss0
    res["bytes_per_device_anon"] = round((res["gateway_mem_kib"].get("RssAnon", 0) - rss0.get("RssAnon", 0)) * 1024 / n)
    with open("/proc/%d/status" % b.procs[0].pid) as f:
        res["broker_rss_kib"] = int([l for l in f if l.startswith("VmRSS")][0].split()[1])
    r = b.load("routed", 4, count)
    res["routed_while_connected"] = {k: r[k] for k in ("msgs_per_s", "max_gap_ms", "ok", "delivered", "acked",
                                                       "lat_delivery_us")}
    b.wait_outbox_empty()
    # reconnect storm: every device dies at once (wills: offline), then all reconnect
    base = b.stats()["batched_total"]
    for p in ps:
        p.kill()
        p.wait()
    ab, _ = absorbed(b, base, n, 300)
    res["wills_absorb_s"] = round(ab, 2)
    base = b.stats()["batched_total"]
    t0 = time.time()
    ps, outs = start_all()
    res["storm_connect"] = outs
    res["storm_all_online_s"] = round(time.time() - t0, 2)
    ab, _ = absorbed(b, base, n, 300)
    res["storm_absorb_s"] = round(time.time() - t0, 2) if ab >= 0 else -1
    res["gateway_mem_kib_after_storm"] = b.rss_kib()
    for p in ps:
        p.stdin.close()
        p.wait(30)
    res["ok"] = all(o["online"] == o["devices"] for o in res["first_connect"] + res["storm_connect"]) and \
        res["routed_while_connected"]["ok"]
    return res


def mqtt_ctl(b, user, payload):
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-u", user, "-P", b.passwords[user],
                    "-q", "1", "-t", "im/u/%s/out/ctl" % user, "-m", payload], check=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--build", default=os.path.join(SRC, "build", "bench"))
    ap.add_argument("--reps", type=int, default=0)
    ap.add_argument("--out", default="")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--scale-only", action="store_true", help="only the scale run")
    ap.add_argument("--scale", type=int, default=-1, help="idle devices (default 2000 quick, 10000 full; 0 = none)")
    a = ap.parse_args()
    q = a.quick
    if a.scale < 0:
        a.scale = 2000 if q else 10000
    pairs = 4
    count = 10000 if q else 75000        # per pair: 40k / 300k messages per run
    reps = a.reps or 3
    lat_secs = 4 if q else 10
    group_members = 100
    group_msgs = 200 if q else 1000

    users = ["bs%d" % i for i in range(pairs)] + ["br%d" % i for i in range(max(pairs, group_members))]
    b = Bench(a.build, a.keep)
    summary = {"quick": q, "pinned": PIN, "pairs": pairs, "count_per_pair": count, "host": os.uname().nodename,
               "nproc": os.cpu_count()}
    failed = False
    try:
        b.setup(users)
        summary["user_add_s_per_user"] = round(b.user_add_s / len(users), 4)
        # warm-up (page cache, LMDB map growth)
        b.load("routed", pairs, 2000)
        b.load("raw", pairs, 2000)
        b.wait_outbox_empty()

        if not a.scale_only:
            thr = []
            for rep in range(reps):
                s0 = b.stats()
                t0 = time.time()
                routed = b.load_cpu("routed", pairs, count)
                t1 = time.time()
                b.wait_outbox_empty()
                s1 = b.stats()
                raw = b.load_cpu("raw", pairs, count)
                commits = s1["commits_total"] - s0["commits_total"]
                batched = s1["batched_total"] - s0["batched_total"]
                thr.append({"routed": routed, "raw": raw,
                            "ratio": routed["msgs_per_s"] / raw["msgs_per_s"],
                            "commits": commits, "msgs_per_commit": batched / commits if commits else 0,
                            "commits_per_s": commits / (t1 - t0)})
                failed |= not (routed["ok"] and raw["ok"])
                print("throughput rep %d: routed %.0f/s raw %.0f/s ratio %.3f, %.1f msgs/commit, %.0f commits/s; "
                      "CPU us/msg routed %s raw %s"
                      % (rep, routed["msgs_per_s"], raw["msgs_per_s"], thr[-1]["ratio"],
                         thr[-1]["msgs_per_commit"], thr[-1]["commits_per_s"], routed["cpu_us_per_msg"],
                         raw["cpu_us_per_msg"]), flush=True)
            summary["throughput"] = thr
            ratios = [t["ratio"] for t in thr]
            summary["ratio_median"] = statistics.median(ratios)
            summary["rss_kib_after_throughput"] = b.rss_kib()

            lat = []
            for r in (1000, 5000):
                per_pair = int(r * lat_secs / pairs)
                routed = b.load("routed", pairs, per_pair, rate=r, window=10000)
                b.wait_outbox_empty()
                raw = b.load("raw", pairs, per_pair, rate=r, window=10000)
                failed |= not (routed["ok"] and raw["ok"])
                lat.append({"rate": r, "routed": routed, "raw": raw})
                print("latency %d/s: routed delivery p50/p99/p99.9 %d/%d/%d us, sent %d/%d/%d us; raw p50/p99 %d/%d us"
                      % (r, routed["lat_delivery_us"]["p50"], routed["lat_delivery_us"]["p99"],
                         routed["lat_delivery_us"]["p999"], routed["lat_sent_us"]["p50"],
                         routed["lat_sent_us"]["p99"], routed["lat_sent_us"]["p999"],
                         raw["lat_delivery_us"]["p50"], raw["lat_delivery_us"]["p99"]), flush=True)
            summary["latency"] = lat
            # what one synced commit costs on this disk, measured now
            summary["disk_fdatasync_us"] = disk_sync_us(os.path.join(b.dir, "gateway"))
            print("disk: 4 KiB write + fdatasync p50/p99/max %(p50)d/%(p99)d/%(max)d us" %
                  summary["disk_fdatasync_us"], flush=True)

            # group fan-out: bs0 makes a group of br0..br99 and sends to it
            members = ["br%d" % i for i in range(group_members)]
            mqtt_ctl(b, "bs0", json.dumps({"op": "group_create", "group": "benchg", "members": members}))
            time.sleep(1.0)
            s0 = b.stats()
            g = b.load("group", group_members, group_msgs, window=50)
            s1 = b.stats()
            failed |= not g["ok"]
            g["commits"] = s1["commits_total"] - s0["commits_total"]
            summary["group"] = g
            print("group fan-out to %d: %.0f messages/s, %.0f deliveries/s" %
                  (group_members, g["msgs_per_s"], g["deliveries_per_s"]), flush=True)
        b.wait_outbox_empty()
        summary["rss_kib_end"] = b.rss_kib()
        if a.scale:
            sc = scale(b, a.scale, 4, 10000 if q else 25000)
            summary["scale"] = sc
            failed |= not sc["ok"]
            print("scale: %s" % json.dumps(sc), flush=True)
        # everything the gateway owes (the devices' last offline presence too) goes out
        if not b.wait_outbox_empty():
            failed = True
            print("FAIL: the gateway's outbox did not empty within 60 s", file=sys.stderr)
        summary["stats_end"] = b.stats()
    finally:
        b.close()

    # device side: the outbox (synced LMDB, RAM ring)
    ob = subprocess.run([os.path.join(a.build, "bench", "outbox_bench"), "1000" if q else "5000"],
                        capture_output=True, text=True)
    if ob.returncode == 0:
        summary["device_outbox"] = json.loads(ob.stdout)
        print("device outbox: %s" % ob.stdout.strip())
    else:
        failed = True
        print("outbox_bench failed: %s" % ob.stderr, file=sys.stderr)
    summary["failed_lost_messages"] = failed
    out = a.out or os.path.join(a.build, "bench-%s.json" % ("quick" if q else "full"))
    with open(out, "w") as f:
        json.dump(summary, f, indent=1)
    print_tables(summary)
    print("results: %s" % out)
    if failed:
        print("FAIL: a run lost messages or acks", file=sys.stderr)
        return 1
    if "ratio_median" in summary and summary["ratio_median"] < 0.40:
        print("FAIL: routed/raw throughput ratio %.3f < 0.40" % summary["ratio_median"], file=sys.stderr)
        return 1
    return 0


def print_tables(s):
    if "throughput" not in s:
        s = dict(s, throughput=[], latency=[], group=None)
    print("\n| rep | routed msgs/s | raw msgs/s | ratio | msgs/commit | commits/s | longest gap routed (ms) "
          "| CPU us/msg routed: gateway / broker / loadgen | raw: broker / loadgen |")
    print("|---|---|---|---|---|---|---|---|---|")
    for i, t in enumerate(s["throughput"]):
        rc, wc = t["routed"].get("cpu_us_per_msg", {}), t["raw"].get("cpu_us_per_msg", {})
        print("| %d | %.0f | %.0f | %.3f | %.1f | %.0f | %.0f | %s / %s / %s | %s / %s |" % (
            i, t["routed"]["msgs_per_s"], t["raw"]["msgs_per_s"], t["ratio"], t["msgs_per_commit"],
            t["commits_per_s"], t["routed"]["max_gap_ms"], rc.get("gateway"), rc.get("broker"),
            rc.get("loadgen"), wc.get("broker"), wc.get("loadgen")))
    print("\n| offered | routed delivery p50/p99/p99.9 (ms) | routed `sent` p50/p99/p99.9 (ms) | raw p50/p99 (ms) | added p99 (ms) |")
    print("|---|---|---|---|---|")
    for l in s["latency"]:
        d, a, r = l["routed"]["lat_delivery_us"], l["routed"]["lat_sent_us"], l["raw"]["lat_delivery_us"]
        print("| %d/s | %.2f / %.2f / %.2f | %.2f / %.2f / %.2f | %.2f / %.2f | %.2f |" % (
            l["rate"], d["p50"] / 1e3, d["p99"] / 1e3, d["p999"] / 1e3, a["p50"] / 1e3, a["p99"] / 1e3,
            a["p999"] / 1e3, r["p50"] / 1e3, r["p99"] / 1e3, (d["p99"] - r["p99"]) / 1e3))
    if s.get("disk_fdatasync_us"):
        print("\ndisk (where LMDB lives): 4 KiB write + fdatasync p50 / p99 / max: %(p50)d / %(p99)d / %(max)d us "
              "(an LMDB commit makes two)" % s["disk_fdatasync_us"])
    g = s["group"]
    if g:
        print("\ngroup fan-out: %d members, %d messages: %.0f messages/s, %.0f deliveries/s, %d commits"
              % (g["pairs"], g["count"], g["msgs_per_s"], g["deliveries_per_s"], g["commits"]))
    d = s.get("device_outbox")
    if d:
        print("\n| device outbox | enqueue/s | remove (ack)/s |\n|---|---|---|")
        print("| LMDB, synced (%d) | %.0f | %.0f |" % (d["lmdb_n"], d["lmdb_put_per_s"], d["lmdb_remove_per_s"]))
        print("| RAM ring (%d) | %.0f | %.0f |" % (d["ram_n"], d["ram_put_per_s"], d["ram_remove_per_s"]))
    sc = s.get("scale")
    if sc:
        print("\n| scale | value |\n|---|---|")
        print("| devices (presence online, subscribed) | %d in %d processes |" % (sc["devices"], sc["processes"]))
        print("| all connected, subscribed, online (first connect) | %.1f s |" % sc["all_online_s"])
        print("| gateway absorbed them (statuses handled, outbox empty) | %.1f s |" % sc["absorb_s"])
        print("| gateway VmRSS / RssAnon with them | %d / %d KiB |" % (sc["gateway_mem_kib"].get("VmRSS", 0),
                                                               sc["gateway_mem_kib"].get("RssAnon", 0)))
        print("| gateway RssAnon per device | %d bytes |" % sc["bytes_per_device_anon"])
        print("| broker VmRSS | %d KiB |" % sc["broker_rss_kib"])
        print("| routed msgs/s while connected, longest delivery gap | %.0f, %.0f ms |" % (
            sc["routed_while_connected"]["msgs_per_s"], sc["routed_while_connected"]["max_gap_ms"]))
        print("| all die (wills): gateway absorbed the offlines | %.1f s |" % sc["wills_absorb_s"])
        print("| reconnect storm: all online again / absorbed | %.1f s / %.1f s |" % (sc["storm_all_online_s"],
                                                                            sc["storm_absorb_s"]))
    print("gateway memory (KiB): after throughput %s; at the end %s" % (s.get("rss_kib_after_throughput"),
                                                                      s.get("rss_kib_end")))


if __name__ == "__main__":
    sys.exit(main())
