#!/usr/bin/env python3
"""bench/stacks.py [--build DIR] [--reps N] [--count N] [--window W] [--out FILE]

The MQTT client stacks side by side (`make bench-stacks`; the results and the
recommendation are in docs/architecture.md, "MQTT client stack"). For each
candidate, the gateway's two directions through the same private Mosquitto:

  pub  publish --count QoS 1 messages (100-byte bodies), at most --window
       without PUBACK, read the PUBACKs (the outbox publisher's job)
  sub  receive --count QoS 1 publishes on a subscription and PUBACK each
       (the inbound connection's job); the feeder is mqim_load --mode pub

Candidates (bench/stack_*.c): Paho MQTT C 1.3.12 as Debian 12 ships it
(MQTTAsync, the API the gateway uses), Paho 1.3.14 built from Debian trixie's
source package by bench/paho-src (when built), libmosquitto (the installed
one, single-threaded loop_read/loop_write), the gateway's own v5 publisher
(pub only: it has no subscriber side).

Per run: CPU microseconds per message of the client process (all its threads,
getrusage over the run) and of the broker (/proc/PID/stat); --reps runs per
candidate and direction, the candidates' order rotating rep by rep; median
and min-max. Then one more run of each under `strace -f -c` for the system
calls per message (strace slows the run; only its counts are used).
The broker: anonymous, no persistence, the queue and in-flight limits and
set_tcp_nodelay of scripts/broker-conf.
"""
import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

STACKS = [("paho-1.3.12", "stack_paho"), ("paho-1.3.14", "stack_paho_1314"),
          ("libmosquitto", "stack_mosq"), ("gateway-v5", "stack_gwpub")]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def strace_calls(path):
    """The total number of system calls in a `strace -c` summary."""
    with open(path) as f:
        for line in f:
            if line.strip().endswith("total"):
                nums = line.split()
                # % time, seconds, usecs/call, calls, [errors], total
                return int(nums[3])
    return -1


class Runner:
    def __init__(self, build, count, window):
        self.bin = os.path.join(build, "bench")
        self.count, self.window = count, window
        self.dir = tempfile.mkdtemp(prefix="mqim-stacks-")
        self.port = free_port()
        conf = os.path.join(self.dir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_inflight_messages 100\nmax_queued_messages 1000000\nmax_queued_bytes 0\n"
                    "set_tcp_nodelay true\n" % self.port)
        self.broker = subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        end = time.time() + 10
        while time.time() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        self.n = 0

    def topic(self):
        self.n += 1
        return "bench/stack/%d" % self.n

    def argv(self, prog, direction, topic):
        return [os.path.join(self.bin, prog), direction, "--port", str(self.port), "--count", str(self.count),
                "--window", str(self.window), "--topic", topic]

    def feed(self, topic):
        return subprocess.run([os.path.join(self.bin, "mqim_load"), "--mode", "pub", "--port", str(self.port),
                               "--count", str(self.count), "--window", str(self.window), "--topic", topic,
                               "--timeout", "60"], capture_output=True, text=True)

    def run(self, prog, direction, strace=None):
        """One run; returns the client's report with cpu_us_per_msg, broker_us_per_msg."""
        topic = self.topic()
        argv = self.argv(prog, direction, topic)
        if strace:
            argv = ["strace", "-f", "-c", "-o", strace] + argv
        b0 = cpu_s(self.broker.pid)
        if direction == "pub":
            r = subprocess.run(argv, capture_output=True, text=True, timeout=300)
            out = r.stdout
        else:
            p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            line = p.stdout.readline()
            if line.strip() != "ready":
                p.kill()
                raise RuntimeError("%s sub: %s %s" % (prog, line, p.stderr.read()))
            b0 = cpu_s(self.broker.pid)
            fr = self.feed(topic)
            if fr.returncode != 0:
                sys.stderr.write("feeder failed: %s\n" % fr.stderr[-500:])
            out, _ = p.communicate(timeout=300)
            r = p
        b1 = cpu_s(self.broker.pid)
        try:
            res = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise RuntimeError("%s %s failed: %s" % (prog, direction, out))
        res["ok"] = r.returncode == 0 and res["done"] == self.count
        res["cpu_us_per_msg"] = round(res["cpu_s"] * 1e6 / self.count, 1)
        res["broker_us_per_msg"] = round((b1 - b0) * 1e6 / self.count, 1)
        res["msgs_per_s"] = round(self.count / res["seconds"]) if res["seconds"] > 0 else 0
        return res

    def close(self):
        self.broker.terminate()
        self.broker.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def spread(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)} if xs else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build",
                                                    "bench"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--out", default="")
    ap.add_argument("--no-strace", action="store_true")
    a = ap.parse_args()
    stacks = [(n, p) for n, p in STACKS if os.path.exists(os.path.join(a.build, "bench", p))]
    missing = [n for n, p in STACKS if (n, p) not in stacks]
    if missing:
        print("not built (skipped): %s" % ", ".join(missing), file=sys.stderr)
    jobs = [(n, p, d) for n, p in stacks for d in ("pub", "sub")]
    r = Runner(a.build, a.count, a.window)
    results = {"%s %s" % (n, d): [] for n, _, d in jobs}
    failed = []
    try:
        for rep in range(a.reps):
            k = rep % len(jobs)
            for n, p, d in jobs[k:] + jobs[:k]:  # the order rotates rep by rep
                res = r.run(p, d)
                results["%s %s" % (n, d)].append(res)
                if not res["ok"]:
                    failed.append("rep %d %s %s: %d of %d" % (rep, n, d, res["done"], a.count))
                print("rep %d %s %s: %.1f us/msg client, %.1f us/msg broker, %d msgs/s"
                      % (rep, n, d, res["cpu_us_per_msg"], res["broker_us_per_msg"], res["msgs_per_s"]), flush=True)
        syscalls = {}
        if not a.no_strace and shutil.which("strace"):
            for n, p, d in jobs:
                path = os.path.join(r.dir, "strace-%s-%s" % (p, d))
                r.run(p, d, strace=path)
                syscalls["%s %s" % (n, d)] = round(strace_calls(path) / a.count, 2)
                print("%s %s: %.2f syscalls/msg (strace -f -c)" % (n, d, syscalls["%s %s" % (n, d)]), flush=True)
    finally:
        r.close()
    summary = {"count": a.count, "window": a.window, "reps": a.reps, "nproc": os.cpu_count(),
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "failed": failed, "runs": results,
               "table": {}}
    print("\n| stack | direction | client CPU us/msg | broker CPU us/msg | syscalls/msg | msgs/s (wall, noisy) |")
    print("|---|---|---|---|---|---|")
    for key, runs in results.items():
        c = spread([x["cpu_us_per_msg"] for x in runs])
        b = spread([x["broker_us_per_msg"] for x in runs])
        t = spread([x["msgs_per_s"] for x in runs])
        sc = syscalls.get(key, -1) if not a.no_strace else -1
        summary["table"][key] = {"client_cpu_us_per_msg": c, "broker_cpu_us_per_msg": b, "msgs_per_s": t,
                                 "syscalls_per_msg": sc}
        n, d = key.rsplit(" ", 1)
        print("| %s | %s | %.1f (%.1f-%.1f) | %.1f (%.1f-%.1f) | %s | %d (%d-%d) |"
              % (n, d, c["median"], c["min"], c["max"], b["median"], b["min"], b["max"],
                 "%.2f" % sc if sc >= 0 else "-", t["median"], t["min"], t["max"]))
    out = a.out or os.path.join(a.build, "bench-stacks.json")
    with open(out, "w") as f:
        json.dump(summary, f, indent=1)
    print("results: %s" % out)
    for f in failed:
        print("FAIL: %s" % f, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
