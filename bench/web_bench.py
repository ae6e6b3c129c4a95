#!/usr/bin/python3
"""The web client's benchmark (docs/web.md, "Benchmark"; `make bench-web`):
headless Chromium against a real Mosquitto (page from http_dir, MQTT over
ws://) and the real gateway of a build tree (default build/run, what `make`
builds: no sanitizers).

  load      first page load: navigation start to the load event (a fresh
            browser profile each round: nothing cached)
  login     the login button to the chat list shown (connect, subscribe,
            chats, sync, chats)
  first     load + login: first page load to chat list, without the time a
            person takes to type (target under 1 s on loopback)
  delivered a message typed in the browser to its delivered mark, while a
            `mqim` CLI device listens (target within 200 ms)
  sent      the same message to its sent mark (the gateway's echo)

Wall-clock figures: on a loaded machine they grow; the report says the load
average."""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))


def summary(name, xs, unit="ms"):
    xs = sorted(xs)
    p90 = xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]
    return "%-10s median %7.1f %s  p90 %7.1f  min %7.1f  max %7.1f  (n=%d)" % (
        name, statistics.median(xs), unit, p90, xs[0], xs[-1], len(xs))


# In the page: type a message, send it, and time its sent and delivered marks.
ROUND_TRIP = """async (text) => {
  const t0 = performance.now();
  const box = document.getElementById('composer-text');
  box.value = text;
  document.getElementById('composer').requestSubmit();
  const find = () => [...document.querySelectorAll('#messages li.mine')]
    .find(l => (l.querySelector('.body') || l).textContent === text);
  let sent = null;
  for (;;) {
    const li = find();
    const s = li && li.dataset.status;
    if (sent === null && (s === 'sent' || s === 'delivered' || s === 'read')) sent = performance.now() - t0;
    if (s === 'delivered' || s === 'read') return [sent, performance.now() - t0];
    if (performance.now() - t0 > 10000) throw new Error('no delivered mark within 10 s: ' + s);
    await new Promise(r => requestAnimationFrame(r));
  }
}"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "run"))
    ap.add_argument("--rounds", type=int, default=10, help="page loads")
    ap.add_argument("--messages", type=int, default=30, help="messages timed to their delivered mark")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    os.environ.setdefault("MQIM_GATEWAY", os.path.join(build, "gateway", "mqim-gateway"))
    os.environ.setdefault("MQIM_CLI", os.path.join(build, "boards", "posix", "mqim"))
    dist = os.path.join(build, "web", "dist")
    node_modules = os.path.join(build, "web", "npm", "node_modules")
    from browser import Browser
    from harness import Env

    with Env(ws=True, http_dir=dist) as env:
        url = "http://127.0.0.1:%d/" % env.ws_port
        bob = env.client("bob")
        for i in range(5):
            bob.dm("alice", {"id": "seed-%d" % i, "body": "seed %d" % i})
        loads, logins, firsts = [], [], []
        for _ in range(a.rounds):
            b = Browser(node_modules)  # a fresh profile: nothing cached, no saved seq state
            try:
                b.goto(url)
                b.fill("#login-user", "alice")
                b.fill("#login-password", env.passwords["alice"])
                b.click("#login-submit")
                b.wait("document.body.dataset.chatsLoaded === 'true'")
                load = b.eval("(() => { const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd; })()")
                login = b.eval("performance.measure('m', 'mqim-login', 'mqim-chats').duration")
            finally:
                b.close()
            loads.append(load)
            logins.append(login)
            firsts.append(load + login)

        listener = subprocess.Popen(env.mqim_cmd("bob", "bench", "listen", timeout_ms=600000),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        b = Browser(node_modules)
        try:
            time.sleep(1.0)  # the device is connected and subscribed
            b.goto(url)
            b.fill("#login-user", "alice")
            b.fill("#login-password", env.passwords["alice"])
            b.click("#login-submit")
            b.wait("document.body.dataset.chatsLoaded === 'true'")
            b.click("#chat-list [data-chat=bob]")
            b.wait("document.getElementById('conv-title').textContent === 'bob'")
            sents, delivereds = [], []
            for i in range(a.messages + 3):
                sent, delivered = b.eval("(%s)(%s)" % (ROUND_TRIP, '"bench %d"' % i))
                if i >= 3:  # the first few warm the paths up
                    sents.append(sent)
                    delivereds.append(delivered)
                time.sleep(0.05)
        finally:
            b.close()
            listener.terminate()
            listener.wait(10)

    print("web client benchmark: %s, gateway %s, %s" % (b.version, os.environ["MQIM_GATEWAY"],
                                                        "load average %.2f %.2f %.2f" % os.getloadavg()))
    for name, xs in (("load", loads), ("login", logins), ("first", firsts), ("sent", sents),
                     ("delivered", delivereds)):
        print(summary(name, xs))


if __name__ == "__main__":
    main()
