"""The web client (web/, docs/web.md) in a real browser: Debian's headless
Chromium (puppeteer-core) loads the page from Mosquitto's own http_dir on the
WebSocket listener of scripts/broker-conf, against the real gateway, and
talks with a `mqim` CLI device: messages both ways with sent, delivered and
read marks, typing and presence, a group, a file each way with SHA-256
checked on both sides, a wrong password, sync after logging in again, and
a broker restart that loses nothing and shows nothing twice. It also takes
the screenshots of docs/web.md (MQIM_WEB_SCREENSHOTS: where; default the
test's temp dir)."""
import hashlib
import json
import os
import re
import socket
import ssl
import tempfile
import time
import unittest
import urllib.request

import paho.mqtt.client as mqtt

from browser import Browser
from harness import Env, wait_until

DIST = os.environ.get("MQIM_WEB_DIST", "")
NODE_MODULES = os.environ.get("MQIM_WEB_NODE_MODULES", "")

# The messages of the open conversation, as the page shows them.
MESSAGES = """[...document.querySelectorAll('#messages li')].map(l => ({
  seq: l.dataset.seq ? Number(l.dataset.seq) : null, id: l.dataset.id, status: l.dataset.status || null,
  mine: l.classList.contains('mine'),
  text: (l.querySelector('.body') || l).textContent}))"""


def js(value):
    return json.dumps(value)


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class WebClientTest(unittest.TestCase):
    def setUp(self):
        self.assertTrue(os.path.isfile(os.path.join(DIST, "index.html")), "MQIM_WEB_DIST: no bundle in %r" % DIST)
        self.assertTrue(os.path.isdir(NODE_MODULES), "MQIM_WEB_NODE_MODULES: %r" % NODE_MODULES)
        self.shots = os.environ.get("MQIM_WEB_SCREENSHOTS") or tempfile.mkdtemp(prefix="mqim-web-shots-")
        os.makedirs(self.shots, exist_ok=True)

    def login(self, b, password):
        b.fill("#login-user", "alice")
        b.fill("#login-password", password)
        b.click("#login-submit")

    def messages(self, b):
        return b.eval(MESSAGES)

    def wait_text(self, b, text, timeout=10.0):
        return b.wait("(%s).find(m => m.text === %s)" % (MESSAGES, js(text)), timeout)

    def wait_status(self, b, text, status, timeout=10.0):
        return b.wait("(%s).find(m => m.text === %s && m.status === %s)" % (MESSAGES, js(text), js(status)),
                      timeout)

    def cli(self, env, *args, timeout_ms=10000):
        r = env.mqim("bob", "cli", *args, timeout_ms=timeout_ms)
        self.assertEqual(r.returncode, 0, "mqim %s: %s%s" % (" ".join(map(str, args)), r.stdout, r.stderr))
        return r.stdout

    def assert_once_in_order(self, b):
        shown = [m for m in self.messages(b) if m["seq"] is not None]
        seqs = [m["seq"] for m in shown]
        self.assertEqual(seqs, sorted(set(seqs)), "shown twice or out of seq order: %s" % shown)
        ids = [m["id"] for m in shown if m["id"]]
        self.assertEqual(len(ids), len(set(ids)), "an id shown twice: %s" % shown)

    def test_browser_with_cli_device(self):
        with Env(ws=True, http_dir=DIST) as env:
            url = "http://127.0.0.1:%d/" % env.ws_port
            # the page comes from Mosquitto's http_dir on the WebSocket port
            with urllib.request.urlopen(url, timeout=10) as r:
                self.assertIn(b"<title>mqim</title>", r.read())
            # a plain MQTT client over ws:// sees the same users and ACL
            self.check_ws_acl(env)

            # bob's CLI device writes first: alice's chat list shows it unread
            self.cli(env, "send", "alice", "hello from the cli")
            b = Browser(NODE_MODULES)
            self.addCleanup(b.close)
            b.goto(url)
            # a wrong password: an error, and the login form stays
            self.login(b, "not-the-password")
            b.wait("document.getElementById('login-error').textContent.includes('Wrong user name or password')")
            self.assertTrue(b.eval("document.getElementById('app-view').hidden"))
            self.login(b, env.passwords["alice"])
            b.wait("document.querySelector('#chat-list [data-chat=bob] .unread')?.textContent === '1'")
            b.click("#chat-list [data-chat=bob]")
            self.wait_text(b, "hello from the cli")
            # reading it clears the count (a read receipt went out)
            b.wait("document.querySelector('#chat-list [data-chat=bob] .unread')?.textContent === ''")
            # presence: bob's CLI device came and went
            b.wait("/online|last seen/.test(document.getElementById('conv-presence').textContent)")

            # browser -> device: sent, delivered (the device got it), read
            b.type("#composer-text", "hi bob, from the browser")
            b.press("Enter")
            self.wait_status(b, "hi bob, from the browser", "sent")
            out = self.cli(env, "listen", 1)
            m = re.search(r"(?m)^\[(\d+)\] alice/\S+ -> bob: hi bob, from the browser$", out)
            self.assertTrue(m, out)
            self.wait_status(b, "hi bob, from the browser", "delivered")
            self.cli(env, "read", "alice", m.group(1))
            self.wait_status(b, "hi bob, from the browser", "read")
            # typing: bob types (an ephemeral QoS 0 signal), the browser says so
            bob = env.client("bob")
            bob.pub("im/u/bob/out/dm/alice", {"type": "typing"}, qos=0)
            b.wait("document.getElementById('typing').textContent === 'bob is typing…'")
            bob.dm("alice", {"id": "t-1", "body": "typed"})
            self.wait_text(b, "typed")
            b.wait("document.getElementById('typing').textContent === ''")  # a message ends the typing
            self.e2e(env, b, bob)

            self.files_both_ways(env, b)
            self.screenshots(b)
            self.group(env, b)
            self.sync_after_login_again(env, b)
            self.broker_restart(env, b)
            self.assert_once_in_order(b)

    def e2e(self, env, b, bob):
        """bob's CLI device seals for alice's devices, this browser among
        them (its key went out on connect): the page opens it (WebCrypto
        X25519 and HKDF, ChaCha20-Poly1305) and receipts it delivered; a
        tampered one is refused with its reason."""
        keys = env.client("bob", subs=["im/keys/alice"])
        keys.expect("keys/alice", lambda p: any(k["device"].startswith("web") for k in p.get("keys", [])))
        out = self.cli(env, "--e2e", "send", "alice", "sealed for the browser")
        mid = re.search(r"(?m)^sent (\S+) seq=", out).group(1)
        b.wait("[...document.querySelectorAll('#messages li')].find(l => "
               "l.querySelector('.body')?.textContent === 'sealed for the browser' && "
               "/end-to-end encrypted, from bob\\/cli/.test(l.textContent))")
        bob.expect("in/ack", lambda p: p.get("status") == "delivered" and p.get("id") == mid)
        # the same enc under another id: the additional data no longer matches
        sealed = [p for p in bob.matching("in/msg") if isinstance(p, dict) and p.get("id") == mid][0]
        bob.dm("alice", json.dumps({"id": "e2e-moved", "enc": sealed["enc"]}))
        b.wait("document.querySelector('#messages li[data-id=\"e2e-moved\"]')?.textContent"
               ".includes('does not open here (e2e_auth_failed)')")
        refused = bob.expect("in/ack", lambda p: p.get("status") == "refused" and p.get("id") == "e2e-moved")[0]
        self.assertEqual(refused["code"], "e2e_auth_failed")

    def check_ws_acl(self, env):
        got = []
        c = mqtt.Client(client_id="carol.ws", transport="websockets", protocol=mqtt.MQTTv311)
        c.username_pw_set("carol", env.passwords["carol"])
        c.on_connect = lambda cl, u, f, rc: got.append(("connack", rc))
        c.on_subscribe = lambda cl, u, mid, qos: got.append(("suback", mid))
        c.on_message = lambda cl, u, m: got.append((m.topic, m.payload.decode()))
        c.connect("127.0.0.1", env.ws_port, 10)
        c.loop_start()
        try:
            wait_until(lambda: got, 10, "a CONNACK over ws://")
            self.assertEqual(got[0], ("connack", 0))
            c.subscribe([("im/u/carol/in/msg", 1), ("im/u/bob/in/msg", 1)])
            wait_until(lambda: len(got) > 1, 10, "a SUBACK over ws://")
            alice = env.client("alice")
            alice.dm("bob", {"id": "acl-1", "body": "for bob only"})
            alice.dm("carol", {"id": "acl-2", "body": "for carol"})
            wait_until(lambda: any("for carol" in str(g) for g in got), 10, "carol's message over ws://")
            alice.expect_sent(lambda p: p.get("id") == "acl-1")
            time.sleep(0.3)
            # the ACL of the other listeners: another user's inbox stays closed
            self.assertFalse([g for g in got if "for bob only" in str(g)], got)
            alice.close()
        finally:
            c.loop_stop()
            c.disconnect()
        # a wrong password is refused over ws:// too
        bad = mqtt.Client(client_id="carol.ws2", transport="websockets", protocol=mqtt.MQTTv311)
        bad.username_pw_set("carol", "wrong")
        rcs = []
        bad.on_connect = lambda cl, u, f, rc: rcs.append(rc)
        bad.connect("127.0.0.1", env.ws_port, 10)
        bad.loop_start()
        try:
            wait_until(lambda: rcs, 10, "a refusing CONNACK over ws://")
            self.assertIn(rcs[0], (4, 5))
        finally:
            bad.loop_stop()

    def files_both_ways(self, env, b):
        up = os.path.join(env.dir, "from-browser.bin")
        with open(up, "wb") as f:
            f.write(os.urandom(20000))  # four chunks
        b.upload("#attach", up)
        b.wait("(%s).find(m => m.mine && m.status === 'sent' && m.text.includes('from-browser.bin'))" % MESSAGES,
               20)
        out = self.cli(env, "listen", 1)
        m = re.search(r"(?m)file from-browser\.bin \(20000 bytes, [^)]*\) id=(\S+)", out)
        self.assertTrue(m, out)
        got = os.path.join(env.dir, "at-device.bin")
        self.cli(env, "get-file", m.group(1), got)
        self.assertEqual(sha256_file(got), sha256_file(up))
        back = os.path.join(env.dir, "from-device.bin")
        with open(back, "wb") as f:
            f.write(os.urandom(15000))
        self.cli(env, "send-file", "alice", back)
        sel = "[...document.querySelectorAll('#messages li:not(.mine) .file')].find(f => f.textContent.includes('from-device.bin'))"
        b.wait(sel)
        b.eval("(%s).querySelector('button').click()" % sel)
        verified = b.wait("(%s).dataset.verified" % sel, 20)
        self.assertEqual(verified, "true")
        self.assertEqual(b.eval("(%s).dataset.sha256" % sel), sha256_file(back))
        self.assertIn("SHA-256 verified", b.eval("(%s).textContent" % sel))

    def screenshots(self, b):
        b.viewport(1280, 800)
        b.screenshot(os.path.join(self.shots, "web-desktop.png"))
        b.viewport(390, 844)
        b.screenshot(os.path.join(self.shots, "web-phone-chat.png"))
        b.click("#back")
        b.wait("getComputedStyle(document.getElementById('chat-pane')).display !== 'none'")
        b.screenshot(os.path.join(self.shots, "web-phone-list.png"))
        b.viewport(1280, 800)
        for name in ("web-desktop.png", "web-phone-chat.png", "web-phone-list.png"):
            self.assertGreater(os.path.getsize(os.path.join(self.shots, name)), 5000)

    def group(self, env, b):
        b.click("#new-group summary")
        b.fill("#new-group-name", "crew")
        b.fill("#new-group-members", "bob")
        b.click("#new-group-form button[type=submit]")
        b.wait("document.getElementById('conv-title').textContent === '#crew'")
        b.wait("(%s).find(m => /created the group with bob/.test(m.text))" % MESSAGES)
        b.type("#composer-text", "hello crew")
        b.press("Enter")
        self.wait_status(b, "hello crew", "sent")
        out = self.cli(env, "listen", 2)
        self.assertRegex(out, r"(?m)-> #crew: hello crew$")
        self.wait_status(b, "hello crew", "delivered")
        # the group status of the message: bob has it
        b.eval("[...document.querySelectorAll('#messages li.mine')].pop().querySelector('.meta button').click()")
        b.wait("document.querySelector('#messages li.mine .gstatus')?.textContent.includes('bob: delivered')")
        b.fill("#group-add-user", "carol")
        b.click("#group-add-form button[type=submit]")
        b.wait("(%s).find(m => m.text === 'alice added carol')" % MESSAGES)
        b.click("#group-leave")
        b.wait("(%s).find(m => m.text === 'alice left: alice')" % MESSAGES)

    def sync_after_login_again(self, env, b):
        # log out; bob writes while no browser is there; log in again: sync
        b.click("#logout")
        b.wait("!document.getElementById('login-view').hidden && document.readyState === 'complete'")
        for i in range(3):
            self.cli(env, "send", "alice", "while you were away %d" % i)
        self.login(b, env.passwords["alice"])
        b.wait("document.querySelector('#chat-list [data-chat=bob] .unread')?.textContent === '3'")
        b.click("#chat-list [data-chat=bob]")
        for i in range(3):
            self.wait_text(b, "while you were away %d" % i)
        self.assert_once_in_order(b)

    def broker_restart(self, env, b):
        env.restart_broker()
        b.wait("document.getElementById('link').dataset.state !== 'online'", 10)
        env.wait_gateway_online()
        for i in range(3):
            self.cli(env, "send", "alice", "after the restart %d" % i)
        b.wait("document.getElementById('link').dataset.state === 'online'", 15)
        for i in range(3):
            self.wait_text(b, "after the restart %d" % i, 15)
        b.type("#composer-text", "still here")
        b.press("Enter")
        self.wait_status(b, "still here", "sent")
        out = self.cli(env, "listen", 1)
        self.assertIn("still here", out)
        texts = [m["text"] for m in self.messages(b)]
        for t in ["after the restart %d" % i for i in range(3)] + ["hello from the cli", "typed", "still here"]:
            self.assertEqual(texts.count(t), 1, "%r shown %d times: %s" % (t, texts.count(t), texts))


    def test_wss_listener(self):
        """wss:// for deployment: the TLS listeners' certificate, the same
        passwords, the page over HTTPS."""
        with Env(ws=True, tls=True, http_dir=DIST) as env:
            ca = os.path.join(env.dir, "pki", "ca.crt")
            ctx = ssl.create_default_context(cafile=ca)
            with urllib.request.urlopen("https://localhost:%d/" % env.wss_port, timeout=10, context=ctx) as r:
                self.assertIn(b"<title>mqim</title>", r.read())
            for password, want in ((env.passwords["bob"], (0,)), ("wrong", (4, 5))):
                c = mqtt.Client(client_id="bob.wss", transport="websockets", protocol=mqtt.MQTTv311)
                c.tls_set(ca_certs=ca)
                c.username_pw_set("bob", password)
                rcs = []
                c.on_connect = lambda cl, u, f, rc: rcs.append(rc)
                c.connect("localhost", env.wss_port, 10)
                c.loop_start()
                try:
                    wait_until(lambda: rcs, 10, "a CONNACK over wss://")
                    self.assertIn(rcs[0], want)
                finally:
                    c.loop_stop()
                    c.disconnect()


if __name__ == "__main__":
    unittest.main()
