#!/usr/bin/env python3
"""bench/run.py [--quick] [--build DIR] [--reps N] [--out FILE]
bench/run.py --matrix [--reps N]      (make bench-matrix)
bench/run.py --idle-burst SECONDS     (make bench-idle)

Starts a private Mosquitto + mqim-gateway (scripts/broker-conf, `mqim-gateway
init`, `user add`, as tests/integration/harness.py does) on a free loopback
port in a temp dir; the raw baseline goes through the same broker (or, with
MQIM_BENCH_BASELINE=separate, a second anonymous one); then runs
bench/mqim_load:

  throughput  routed DMs vs raw pub/sub, same clients, QoS 1, 100-byte bodies,
              interleaved (the order alternates rep by rep), --reps times (5);
              ratio = routed msgs/s / raw msgs/s, median and min-max; CPU
              microseconds per message of the load generator, the broker and
              the gateway over each run (/proc/PID/stat)
  latency     fixed offered loads (1k/s, 5k/s): routed and raw; the disk's
              fdatasync latency next to them
  commits     messages per LMDB commit, commits/s (`mqim-gateway stats`)
  fan-out     one sender to a 100-member group
  memory      the gateway's RSS

Prints a JSON summary and markdown tables; exits 1 when a run lost or
duplicated a message or a confirmation, when a raw run's generator cost more
CPU per message than the broker (the baseline would measure its generator),
or when the median throughput ratio is under GATE (0.25).

--matrix runs the broker and the gateway at their shipped settings (the
broker config exactly as `make run` writes it): routed and raw, 1, 4 and 16
pairs x windows 20 and 200; every rep fails when the broker died or logged
"Expiring client". --idle-burst S connects the clients, stays idle S
seconds (keep-alives only), then sends a burst; it fails on a gateway
"no PUBACK" stall, an expired client, or a lost message.
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
# The broker binary (MQIM_BENCH_MOSQUITTO: another build, e.g. 2.0.11's, for
# the matrix at shipped settings).
MOSQUITTO = os.environ.get("MQIM_BENCH_MOSQUITTO", "mosquitto")
# The target of issue 13: routed/raw throughput against the efficient baseline.
GATE = float(os.environ.get("MQIM_BENCH_GATE", "0.25"))

# MQIM_BENCH_STORE=postgresql: the gateway on the PostgreSQL store engine, a
# server of its own (scripts/pg-temp, durable: fsync and synchronous commit
# on, as LMDB's commits are synced); its CPU (postmaster and backends) is
# read around each run as "store".
STORE = os.environ.get("MQIM_BENCH_STORE", "lmdb")


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
        self.stats_interval_s = 1
        self.extra_conf = ""  # more gateway.conf lines (sub_filter, ...)

    def cli(self, *args):
        r = subprocess.run([self.gw_bin, "-c", self.conf] + list(args), capture_output=True, text=True,
                           timeout=120)
        # 3: saved, but no broker to tell yet (it reads the files when it starts)
        if r.returncode not in (0, 3):
            raise RuntimeError("mqim-gateway %s: %s" % (" ".join(args), r.stderr))
        return r.stdout

    def setup(self, users, shipped=False):
        """shipped: the broker config exactly as scripts/broker-conf (`make
        run`) writes it and the gateway's transport defaults; only the per-user
        policy (rate limit, inbox quota) is off, so that one user may send
        thousands of messages, and the ACL lets users use bench/x/# (raw)."""
        self.shipped = shipped
        # Files mode: the benchmarks' own ACL lines (bench/x/#) go into the
        # ACL file, and the figures stay comparable with earlier runs.
        env = dict(os.environ, MQIM_TLS_PORT="0", MQIM_CERT_PORT="0", MQIM_BROKER_AUTH="files")
        subprocess.run([os.path.join(SRC, "scripts", "broker-conf"), self.dir, str(self.port)], check=True,
                       env=env, stdout=subprocess.DEVNULL)
        self.conf = os.path.join(self.dir, "gateway.conf")
        if STORE == "postgresql":
            # not under self.dir (0700): the server runs as the postgres user
            self.pg_dir = tempfile.mkdtemp(prefix="mqim-bench-pg-")
            self.pg_dsn = subprocess.run([os.path.join(SRC, "scripts", "pg-temp"), "start", self.pg_dir],
                                         check=True, capture_output=True, text=True,
                                         env=dict(os.environ, PG_TEMP_DURABLE="1")).stdout.strip()
        with open(self.conf, "a") as f:
            # no per-user limits in the way of a benchmark; room for the history
            f.write("\nrate_per_sec 0\ninbox_quota 0\nmap_size_mb 8192\nstats_interval_s %d\n"
                    % self.stats_interval_s)
            if STORE == "postgresql":
                f.write("store_engine postgresql\nstore_dsn %s\n" % self.pg_dsn)
            f.write(self.extra_conf)
            if not shipped:
                f.write("max_inflight %d\n" % GW_INFLIGHT)
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
        if os.environ.get("MQIM_BENCH_NODELAY", "1") != "1" and not shipped:
            # scripts/broker-conf turns Nagle off; the experiment turns it back on
            with open(os.path.join(self.dir, "mosquitto", "mosquitto.conf"), "a") as f:
                f.write("\nset_tcp_nodelay false\n")
        if not shipped:
            with open(os.path.join(self.dir, "mosquitto", "mosquitto.conf"), "a") as f:
                f.write("\nmax_inflight_messages %d\n" % BROKER_INFLIGHT)
        self.start("broker", [MOSQUITTO, "-c", os.path.join(self.dir, "mosquitto", "mosquitto.conf")])
        if SAME_BROKER:
            self.raw_port = self.port
        else:
            self.start("raw-broker", [MOSQUITTO, "-c", os.path.join(raw, "mosquitto.conf")])
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
        return self.load(mode, pairs, count, **kw)

    def load(self, mode, pairs, count, rate=0, window=200, prefix="b", timeout=60, idle=0):
        """One mqim_load run. res["cpu_us_per_msg"]: CPU microseconds per
        message of the load generator, the broker and the gateway, each read
        by mqim_load itself (getrusage, /proc/PID/stat) at the start and the
        end of its send phase: the same interval for all three."""
        broker = self.procs[0].pid if mode != "raw" or SAME_BROKER else self.procs[1].pid
        argv = [self.load_bin, "--mode", mode, "--pairs", str(pairs), "--count", str(count),
                "--rate", str(rate), "--window", str(window), "--prefix", prefix,
                "--timeout", str(timeout), "--idle", str(idle),
                "--pids", "broker:%d,gateway:%d" % (broker, self.gateway.pid),
                "--port", str(self.raw_port if mode == "raw" else self.port)]
        if mode != "raw" or SAME_BROKER:
            argv += ["--passwords", self.pwfile]
        store0 = self.store_cpu_s()
        r = subprocess.run(argv, capture_output=True, text=True)
        store1 = self.store_cpu_s()
        try:
            res = json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise RuntimeError("mqim_load failed (%d): %s %s" % (r.returncode, r.stdout, r.stderr[-2000:]))
        res["ok"] = r.returncode == 0
        n = max(1, pairs * count if mode != "group" else count)
        if store0 is not None and store1 is not None:
            # the whole run (connects included), not only the send phase
            res.setdefault("cpu_s", {})["store"] = store1 - store0
        res["cpu_us_per_msg"] = {k: round(v * 1e6 / n, 1) for k, v in res.get("cpu_s", {}).items()}
        if not res["ok"]:
            sys.stderr.write("LOST OR DUPLICATED MESSAGES: %s\n%s\n" % (json.dumps(res), r.stderr[-2000:]))
        return res

    def store_cpu_s(self):
        """CPU seconds of the PostgreSQL server: the postmaster, its children
        (the backends, the WAL writer...) and the children it reaped."""
        if STORE != "postgresql":
            return None
        try:
            with open(os.path.join(self.pg_dir, "data", "postmaster.pid")) as f:
                pm = int(f.readline())
        except (OSError, ValueError):
            return None
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % pid) as f:
                    st = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(pid) == pm:
                total += sum(int(x) for x in st[11:15])  # utime stime cutime cstime
            elif int(st[1]) == pm:
                total += int(st[11]) + int(st[12])
        return total / tick

    def broker_log_count(self, needle):
        """Lines of the broker's log that contain needle."""
        return log_count(os.path.join(self.dir, "mosquitto", "mosquitto.log"), needle)

    def gateway_log_count(self, needle):
        return log_count(os.path.join(self.dir, "gateway.log"), needle)

    def alive(self):
        """The broker and the gateway still run (returncode None)."""
        return {"broker": self.procs[0].poll(), "gateway": self.gateway.poll()}

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
        if STORE == "postgresql" and not self.keep:
            subprocess.run([os.path.join(SRC, "scripts", "pg-temp"), "stop", self.pg_dir])
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def log_count(path, needle):
    try:
        with open(path, errors="replace") as f:
            return sum(1 for line in f if needle in line)
    except FileNotFoundError:
        return 0


def spread(xs):
    """median, min, max of a list."""
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)} if xs else {}


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


def throughput(b, pairs, count, reps, window=200):
    """reps x (routed, raw), interleaved, the order alternating rep by rep
    (a slow phase of the shared machine then hits both modes alike). Returns
    the reps and a list of failures: a lost or duplicated message or
    confirmation, or a raw run whose generator cost more CPU per message than
    the broker (then the baseline measures the generator, and every ratio
    against it is inflated)."""
    thr, fails = [], []
    for rep in range(reps):
        order = ("routed", "raw") if rep % 2 == 0 else ("raw", "routed")
        res = {}
        for mode in order:
            if mode == "routed":
                s0 = b.stats()
                t0 = time.time()
                res[mode] = b.load(mode, pairs, count, window=window)
                t1 = time.time()
                if not b.wait_outbox_empty():
                    fails.append("rep %d: the gateway's outbox did not empty" % rep)
                s1 = b.stats()
            else:
                res[mode] = b.load(mode, pairs, count, window=window)
            if not res[mode]["ok"]:
                fails.append("rep %d %s: lost or duplicated messages or confirmations" % (rep, mode))
        routed, raw = res["routed"], res["raw"]
        gen, brk = raw["cpu_us_per_msg"]["loadgen"], raw["cpu_us_per_msg"]["broker"]
        if gen > brk:
            fails.append("rep %d raw: the load generator cost %.1f us/msg of CPU, the broker %.1f: "
                         "the baseline measures the generator" % (rep, gen, brk))
        commits = s1["commits_total"] - s0["commits_total"]
        batched = s1["batched_total"] - s0["batched_total"]
        thr.append({"order": list(order), "routed": routed, "raw": raw,
                    "ratio": routed["msgs_per_s"] / raw["msgs_per_s"],
                    "commits": commits, "msgs_per_commit": batched / commits if commits else 0,
                    "commits_per_s": commits / (t1 - t0)})
        print("throughput rep %d (%s first): routed %.0f/s raw %.0f/s ratio %.3f, %.1f msgs/commit, "
              "%.0f commits/s; CPU us/msg routed %s raw %s"
              % (rep, order[0], routed["msgs_per_s"], raw["msgs_per_s"], thr[-1]["ratio"],
                 thr[-1]["msgs_per_commit"], thr[-1]["commits_per_s"], routed["cpu_us_per_msg"],
                 raw["cpu_us_per_msg"]), flush=True)
    for f in fails:
        print("FAIL: %s" % f, file=sys.stderr)
    return thr, fails


def print_spread(sp):
    def f(d, fmt="%.0f"):
        return (fmt + " (" + fmt + "-" + fmt + ")") % (d["median"], d["min"], d["max"])
    print("\nmedian (min-max) over the reps: ratio %s; routed %s msgs/s; raw %s msgs/s"
          % (f(sp["ratio"], "%.3f"), f(sp["routed_msgs_per_s"]), f(sp["raw_msgs_per_s"])))
    for mode in ("routed", "raw"):
        c = sp["%s_cpu_us_per_msg" % mode]
        print("CPU us/msg %s: load generator %s, broker %s, gateway %s"
              % (mode, f(c["loadgen"], "%.1f"), f(c["broker"], "%.1f"), f(c["gateway"], "%.1f")))


def cpu_profile(b, pairs, reps, count, secs=10):
    """Issue 13's gateway targets, in CPU time (steady on a shared machine,
    unlike wall-clock rates): the gateway's CPU microseconds per routed
    message at saturation (window 200) and paced at 500 and 1,000 msgs/s,
    and the gateway-added p99 at 1,000 msgs/s (routed delivery p99 minus
    the raw delivery p99 of a run at the same rate right after). reps
    rounds, median (min-max). Returns the summary and a list of failures
    (a lost or duplicated message)."""
    rows, fails = [], []
    for rep in range(reps):
        row = {}
        sat = b.load("routed", pairs, count)
        b.wait_outbox_empty()
        row["saturation"] = {"msgs_per_s": sat["msgs_per_s"], "cpu_us_per_msg": sat["cpu_us_per_msg"]}
        ok = sat["ok"]
        for rate in (500, 1000):
            per_pair = int(rate * secs / pairs)
            routed = b.load("routed", pairs, per_pair, rate=rate, window=10000)
            b.wait_outbox_empty()
            raw = b.load("raw", pairs, per_pair, rate=rate, window=10000)
            ok = ok and routed["ok"] and raw["ok"]
            row[str(rate)] = {"cpu_us_per_msg": routed["cpu_us_per_msg"],
                              "routed_p99_us": routed["lat_delivery_us"]["p99"],
                              "raw_p99_us": raw["lat_delivery_us"]["p99"],
                              "added_p99_us": routed["lat_delivery_us"]["p99"] - raw["lat_delivery_us"]["p99"]}
        if not ok:
            fails.append("cpu rep %d: lost or duplicated messages or confirmations" % rep)
        rows.append(row)
        print("cpu rep %d: gateway us/msg saturation %.1f (%.0f msgs/s), 500/s %.1f, 1000/s %.1f; "
              "p99 added at 1000/s %d us (routed %d, raw %d); at 500/s %d us"
              % (rep, row["saturation"]["cpu_us_per_msg"]["gateway"], row["saturation"]["msgs_per_s"],
                 row["500"]["cpu_us_per_msg"]["gateway"], row["1000"]["cpu_us_per_msg"]["gateway"],
                 row["1000"]["added_p99_us"], row["1000"]["routed_p99_us"], row["1000"]["raw_p99_us"],
                 row["500"]["added_p99_us"]), flush=True)
    summary = {
        "reps": rows,
        "gateway_us_per_msg_saturation": spread([r["saturation"]["cpu_us_per_msg"]["gateway"] for r in rows]),
        "gateway_us_per_msg_500": spread([r["500"]["cpu_us_per_msg"]["gateway"] for r in rows]),
        "gateway_us_per_msg_1000": spread([r["1000"]["cpu_us_per_msg"]["gateway"] for r in rows]),
        "broker_us_per_msg_saturation": spread([r["saturation"]["cpu_us_per_msg"]["broker"] for r in rows]),
        "added_p99_us_1000": spread([r["1000"]["added_p99_us"] for r in rows]),
    }
    print("\nmedian (min-max) over %d reps: gateway CPU us per routed message: saturation %s, 500/s %s, "
          "1000/s %s; broker at saturation %s; gateway-added p99 at 1000/s %s us"
          % (reps, *("%(median).1f (%(min).1f-%(max).1f)" % summary[k] for k in (
              "gateway_us_per_msg_saturation", "gateway_us_per_msg_500", "gateway_us_per_msg_1000",
              "broker_us_per_msg_saturation")),
             "%(median)d (%(min)d-%(max)d)" % summary["added_p99_us_1000"]), flush=True)
    for f in fails:
        print("FAIL: %s" % f, file=sys.stderr)
    return summary, fails


def matrix(b, reps, total=32000):
    """At the shipped settings: routed then raw (alternating per rep), 1, 4
    and 16 pairs x windows 20 and 200, `total` messages per run. Every run
    fails when the broker or the gateway died, the broker logged "Expiring
    client" or the gateway "no PUBACK", or a message was lost or duplicated."""
    cells, fails = [], []
    for pairs in (1, 4, 16):
        for window in (20, 200):
            for rep in range(reps):
                order = ("routed", "raw") if rep % 2 == 0 else ("raw", "routed")
                cell = {"pairs": pairs, "window": window, "rep": rep}
                for mode in order:
                    exp0, stall0 = b.broker_log_count("Expiring client"), b.gateway_log_count("no PUBACK")
                    r = b.load(mode, pairs, total // pairs, window=window, timeout=60)
                    if mode == "routed" and not b.wait_outbox_empty():
                        fails.append("%d pairs, window %d, rep %d: the outbox did not empty" % (pairs, window, rep))
                    alive = b.alive()
                    expired = b.broker_log_count("Expiring client") - exp0
                    stalls = b.gateway_log_count("no PUBACK") - stall0
                    cell[mode] = {k: r[k] for k in ("msgs_per_s", "delivered", "acked", "ok", "cpu_us_per_msg",
                                                    "max_gap_ms")}
                    cell[mode].update(expired=expired, stalls=stalls)
                    what = "%d pairs, window %d, rep %d, %s" % (pairs, window, rep, mode)
                    if alive["broker"] is not None:
                        fails.append("%s: the broker died (exit %s)" % (what, alive["broker"]))
                    if alive["gateway"] is not None:
                        fails.append("%s: the gateway died (exit %s)" % (what, alive["gateway"]))
                    if expired:
                        fails.append("%s: the broker expired %d clients" % (what, expired))
                    if stalls:
                        fails.append("%s: the gateway logged %d publisher stalls" % (what, stalls))
                    if not r["ok"]:
                        fails.append("%s: lost or duplicated messages" % what)
                    if alive["broker"] is not None or alive["gateway"] is not None:
                        break
                cells.append(cell)
                print("matrix %s" % json.dumps(cell), flush=True)
                if any("died" in f for f in fails):
                    return cells, fails
    return cells, fails


def idle_burst(b, idle_s, pairs=4, count=2000):
    """A routed run, then the clients connect and stay idle idle_s seconds
    (keep-alives only; the gateway's publisher has nothing to send), then a
    burst. Fails on a gateway "no PUBACK" stall, a broker "Expiring client",
    a death, or a lost or duplicated message."""
    res, fails = {"idle_s": idle_s}, []
    first = b.load("routed", pairs, count)
    b.wait_outbox_empty()
    exp0, stall0 = b.broker_log_count("Expiring client"), b.gateway_log_count("no PUBACK")
    burst = b.load("routed", pairs, count, idle=idle_s, timeout=60)
    empty = b.wait_outbox_empty()
    res["first"] = {k: first[k] for k in ("msgs_per_s", "ok", "delivered", "acked")}
    res["burst"] = {k: burst[k] for k in ("msgs_per_s", "ok", "delivered", "acked", "lat_delivery_us",
                                          "lat_sent_us")}
    res["expired"] = b.broker_log_count("Expiring client") - exp0
    res["stalls"] = b.gateway_log_count("no PUBACK") - stall0
    res["alive"] = b.alive()
    if not (first["ok"] and burst["ok"] and empty):
        fails.append("lost or duplicated messages (or the outbox did not empty)")
    if res["expired"]:
        fails.append("the broker expired %d clients" % res["expired"])
    if res["stalls"]:
        fails.append("the gateway logged %d false publisher stalls (no PUBACK)" % res["stalls"])
    if any(v is not None for v in res["alive"].values()):
        fails.append("a process died: %s" % res["alive"])
    return res, fails


def mqtt_ctl(b, user, payload):
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-u", user, "-P", b.passwords[user],
                    "-q", "1", "-t", "im/u/%s/out/ctl" % user, "-m", payload], check=True)


def main_store_cpu(a):
    """The store engines side by side (docs/benchmarks.md, section 9): the
    routed throughput run of section 1 without the raw baseline, on the
    engine MQIM_BENCH_STORE names; CPU per routed message per process."""
    pairs, count, reps = 4, a.count or 10000, a.reps or 3
    users = ["bs%d" % i for i in range(pairs)] + ["br%d" % i for i in range(pairs)]
    b = Bench(a.build, a.keep)
    # The gateway's own stats publication counts entries, which PostgreSQL
    # does by scanning: not per second here, so the runs measure routing.
    b.stats_interval_s = 60
    rows, failed = [], False
    try:
        b.setup(users)
        b.load("routed", pairs, 2000)
        b.wait_outbox_empty()
        for rep in range(reps):
            s0 = b.stats()
            r = b.load("routed", pairs, count)
            s1 = b.stats()
            failed |= not r["ok"] or not b.wait_outbox_empty()
            commits = max(1, s1.get("commits_total", 0) - s0.get("commits_total", 0))
            r["msgs_per_commit"] = round((s1.get("batched_total", 0) - s0.get("batched_total", 0)) / commits, 1)
            rows.append(r)
            c = r["cpu_us_per_msg"]
            print("store %s rep %d: %d msgs/s, %.1f msgs/commit, CPU us/msg gateway %.1f broker %.1f "
                  "store %s loadgen %.1f%s" % (STORE, rep, r["msgs_per_s"], r["msgs_per_commit"],
                                               c["gateway"], c["broker"], c.get("store", "-"), c["loadgen"],
                                               "" if r["ok"] else "  LOST OR DUPLICATED"), flush=True)
        med = {k: statistics.median([r["cpu_us_per_msg"][k] for r in rows])
               for k in rows[0]["cpu_us_per_msg"]}
        print("store %s median CPU us/msg: %s" % (STORE, json.dumps(med)), flush=True)
        if a.out:
            with open(a.out, "w") as f:
                json.dump({"store": STORE, "runs": rows, "median_cpu_us_per_msg": med}, f, indent=1)
    finally:
        b.close()
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--build", default=os.path.join(SRC, "build", "bench"))
    ap.add_argument("--reps", type=int, default=0)
    ap.add_argument("--out", default="")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--count", type=int, default=0, help="messages per pair of a throughput run")
    ap.add_argument("--scale-only", action="store_true", help="only the scale run")
    ap.add_argument("--scale", type=int, default=-1, help="idle devices (default 2000 quick, 10000 full; 0 = none)")
    ap.add_argument("--matrix", action="store_true", help="shipped settings: 1/4/16 pairs x windows 20/200")
    ap.add_argument("--idle-burst", type=int, default=0, metavar="SECONDS",
                    help="shipped settings: idle SECONDS, then a burst")
    ap.add_argument("--cpu", action="store_true",
                    help="the gateway's CPU per routed message (saturation, 500/s, 1000/s) and p99 added at 1000/s")
    ap.add_argument("--store-cpu", action="store_true",
                    help="routed runs only: CPU per routed message of the gateway, the broker and "
                         "(MQIM_BENCH_STORE=postgresql) the store server")
    a = ap.parse_args()
    if a.matrix or a.idle_burst:
        return main_shipped(a)
    if a.cpu:
        return main_cpu(a)
    if a.store_cpu:
        return main_store_cpu(a)
    q = a.quick
    if a.scale < 0:
        a.scale = 2000 if q else 10000
    pairs = 4
    count = a.count or (10000 if q else 75000)  # per pair: 40k / 300k messages per run
    reps = a.reps or 5
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
            thr, fails = throughput(b, pairs, count, reps)
            failed |= bool(fails)
            summary["throughput"] = thr
            summary["throughput_failures"] = fails
            summary["ratio_median"] = statistics.median([t["ratio"] for t in thr])
            summary["spread"] = {
                "ratio": spread([t["ratio"] for t in thr]),
                "routed_msgs_per_s": spread([t["routed"]["msgs_per_s"] for t in thr]),
                "raw_msgs_per_s": spread([t["raw"]["msgs_per_s"] for t in thr]),
                "routed_cpu_us_per_msg": {k: spread([t["routed"]["cpu_us_per_msg"][k] for t in thr])
                                          for k in ("loadgen", "broker", "gateway", "store")
                                          if all(k in t["routed"]["cpu_us_per_msg"] for t in thr)},
                "raw_cpu_us_per_msg": {k: spread([t["raw"]["cpu_us_per_msg"][k] for t in thr])
                                       for k in ("loadgen", "broker", "gateway")}}
            print_spread(summary["spread"])
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
        print("FAIL: a run lost or duplicated messages or confirmations, or a raw run measured its generator "
              "(see FAIL lines above)", file=sys.stderr)
        return 1
    if "ratio_median" in summary and summary["ratio_median"] < GATE:
        print("FAIL: the median routed/raw throughput ratio %.3f (of %d reps, %.3f-%.3f) is under the target %.2f "
              "(issue 13)" % (summary["ratio_median"], len(summary["throughput"]), summary["spread"]["ratio"]["min"],
                              summary["spread"]["ratio"]["max"], GATE), file=sys.stderr)
        return 1
    return 0


def main_cpu(a):
    """--cpu: cpu_profile with the bench settings of --quick (4 pairs)."""
    pairs = 4
    users = ["bs%d" % i for i in range(pairs)] + ["br%d" % i for i in range(pairs)]
    b = Bench(a.build, a.keep)
    try:
        b.setup(users)
        b.load("routed", pairs, 2000)  # warm-up (page cache, LMDB map growth)
        b.load("raw", pairs, 2000)
        b.wait_outbox_empty()
        summary, fails = cpu_profile(b, pairs, a.reps or 5, a.count or 10000)
    finally:
        b.close()
    summary["failures"] = fails
    out = a.out or os.path.join(a.build, "bench-cpu.json")
    with open(out, "w") as f:
        json.dump(summary, f, indent=1)
    print("results: %s" % out)
    return 1 if fails else 0


def main_shipped(a):
    """--matrix / --idle-burst: the broker and the gateway at their shipped
    settings (Bench.setup(shipped=True))."""
    users = ["bs%d" % i for i in range(16)] + ["br%d" % i for i in range(16)]
    b = Bench(a.build, a.keep)
    summary = {"shipped_settings": True, "host": os.uname().nodename, "nproc": os.cpu_count()}
    fails = []
    try:
        b.setup(users, shipped=True)
        if a.matrix:
            summary["matrix"], f = matrix(b, a.reps or 1)
            fails += f
        if a.idle_burst:
            summary["idle_burst"], f = idle_burst(b, a.idle_burst)
            fails += f
            print("idle burst: %s" % json.dumps(summary["idle_burst"]), flush=True)
        summary["broker_expiring_total"] = b.broker_log_count("Expiring client")
        summary["gateway_stalls_total"] = b.gateway_log_count("no PUBACK")
    finally:
        b.close()
    summary["failures"] = fails
    out = a.out or os.path.join(a.build, "bench-%s.json" % ("matrix" if a.matrix else "idle"))
    with open(out, "w") as f:
        json.dump(summary, f, indent=1)
    if "matrix" in summary:
        print("\n| pairs | window | rep | routed msgs/s | raw msgs/s | ratio | CPU us/msg routed: gateway / broker / "
              "load gen. | raw: broker / load gen. | expired | stalls |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for c in summary["matrix"]:
            r, w = c.get("routed"), c.get("raw")
            if not r or not w:
                continue
            print("| %d | %d | %d | %.0f | %.0f | %.3f | %s / %s / %s | %s / %s | %d | %d |" % (
                c["pairs"], c["window"], c["rep"], r["msgs_per_s"], w["msgs_per_s"],
                r["msgs_per_s"] / w["msgs_per_s"], r["cpu_us_per_msg"]["gateway"], r["cpu_us_per_msg"]["broker"],
                r["cpu_us_per_msg"]["loadgen"], w["cpu_us_per_msg"]["broker"], w["cpu_us_per_msg"]["loadgen"],
                r["expired"] + w["expired"], r["stalls"] + w["stalls"]))
    print("results: %s" % out)
    for f in fails:
        print("FAIL: %s" % f, file=sys.stderr)
    return 1 if fails else 0


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
