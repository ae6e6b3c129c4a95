#!/usr/bin/env python3
"""The bot round trip (issue 20): a message in, the command run, the reply
delivered. A private Mosquitto + mqim-gateway (tests/integration/harness.py,
as the integration tests set them up), `mqim bot --exec CMD` as user botty,
and alice (Paho) asking N times, one question at a time; each round trip is
from alice's publish to botty's reply arriving on alice's in/msg.

    python3 bench/bot_roundtrip.py --build build/bench [--n 100] [--exec cat]

Prints the median, p90 and max in ms (target: median under 100 ms), the CPU
time per round trip of the bot (with the commands it ran), the gateway and
the broker (from /proc: repeatable where wall time on a shared machine is
not), and the load average; exits 1 when the median is over --target-ms or
a reply is missing."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))


def cpu_ms(pid, children=False):
    """utime + stime (and the waited-for children's) of pid, in ms."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)
    return ticks * 1000.0 / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build", "bench"))
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--exec", dest="cmd", default="cat", help="the bot's command (cat: the text back)")
    ap.add_argument("--target-ms", type=float, default=100.0)
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    os.environ.setdefault("MQIM_GATEWAY", os.path.join(build, "gateway", "mqim-gateway"))
    os.environ.setdefault("MQIM_CLI", os.path.join(build, "boards", "posix", "mqim"))
    from harness import Env  # after MQIM_GATEWAY: the harness reads it at import

    with Env(users=("alice", "botty")) as env:
        bot = subprocess.Popen(env.mqim_cmd("botty", "bench", "bot", "--exec", *args.cmd.split()),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        alice = env.client("alice")
        got = threading.Event()
        box = {}

        def on_message(c, userdata, m):
            p = json.loads(m.payload)
            if m.topic.endswith("/in/msg") and p.get("from") == "botty":
                box["t"] = time.monotonic()
                box["body"] = p.get("body")
                got.set()
        alice.c.on_message = on_message
        time.sleep(1.5)  # the bot connected and synced
        times = []
        procs = {"bot": (bot.pid, True), "gateway": (env.gateway.pid, False), "broker": (env.broker.pid, False)}
        cpu0 = {}
        for i in range(args.n + 5):
            if i == 5:
                cpu0 = {k: cpu_ms(pid, ch) for k, (pid, ch) in procs.items()}
            got.clear()
            text = "ping %d" % i
            t0 = time.monotonic()
            alice.dm("botty", json.dumps({"id": "b%05d" % i, "body": text}))
            if not got.wait(10):
                print("no reply to message %d" % i, file=sys.stderr)
                bot.terminate()
                return 1
            if i >= 5:  # the first ones warm up
                times.append((box["t"] - t0) * 1000.0)
        cpu = {k: round((cpu_ms(pid, ch) - cpu0[k]) / args.n, 2) for k, (pid, ch) in procs.items()}
        bot.terminate()
        bot.wait(10)
    times.sort()
    med = statistics.median(times)
    p90 = times[int(len(times) * 0.9) - 1]
    print(json.dumps({"bot_roundtrip_ms": {"n": len(times), "median": round(med, 1), "p90": round(p90, 1),
                                           "max": round(times[-1], 1), "exec": args.cmd,
                                           "cpu_ms_per_round_trip": cpu,
                                           "load_average": os.getloadavg()[0]}}))
    return 0 if med <= args.target_ms else 1


if __name__ == "__main__":
    sys.exit(main())
