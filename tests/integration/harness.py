"""Integration test harness: a real Mosquitto on a free loopback port, the
real mqim-gateway, real LMDB files in a temp dir. Setup goes through the same
scripts as `make run` (scripts/broker-conf, `mqim-gateway init`, `user add`).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import paho.mqtt.client as mqtt

SRC = os.environ.get("MQIM_SOURCE_DIR",
                     os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
GATEWAY = os.environ.get("MQIM_GATEWAY", os.path.join(SRC, "build", "test", "gateway", "mqim-gateway"))
# The broker binary: the installed one (scripts/deps: 2.0.21 or newer), or
# another version's, e.g. `make test-broker-2.0.11` (docs/testing.md).
MOSQUITTO = os.environ.get("MQIM_MOSQUITTO") or "mosquitto"
# How the broker authenticates (scripts/broker-conf): "plugin" (the mqim_auth
# plugin, MQIM_AUTH_PLUGIN from ctest) or "files" (password_file + acl_file).
BROKER_AUTH = os.environ.get("MQIM_BROKER_AUTH") or "plugin"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout=10.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))


class LinkProxy:
    """A fault-injecting TCP proxy the test controls: a device (QEMU's UART,
    an `mqim` CLI) connects to it, it connects on to the broker (the broker
    and the gateway are untouched by what it does).

    cut()            drop the current connections (both ends see them close)
    stall(seconds)   the current connections forward nothing for a while,
                     then go on with what was held (a congested link)
    delay(ms)        every chunk waits ms before it is forwarded (0: off)
    half_open()      the current connections swallow everything in both
                     directions and never close (a peer that vanished: only
                     keepalives notice); new connections work
    refuse(on)       new connections are accepted and closed at once
    """

    def __init__(self, target_port):
        self.target_port = target_port
        self.port = free_port()
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", self.port))
        self.lsock.listen(16)
        self.pairs = []
        self.connections = 0
        self.lock = threading.Lock()
        self.closed = False
        self.delay_s = 0.0
        self.refusing = False
        self.faults = {"cut": 0, "stall": 0, "delay": 0, "half_open": 0, "refuse": 0}
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                a, _ = self.lsock.accept()
            except OSError:
                return
            if self.refusing:
                a.close()
                continue
            try:
                b = socket.create_connection(("127.0.0.1", self.target_port), 5)
            except OSError:
                a.close()
                continue
            for s in (a, b):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = {"socks": (a, b), "stall_until": 0.0, "blackhole": False}
            with self.lock:
                self.pairs.append(pair)
                self.connections += 1
            threading.Thread(target=self._forward, args=(pair, a, b), daemon=True).start()
            threading.Thread(target=self._forward, args=(pair, b, a), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        """Plain forwarding from src to dst until either closes (test_tls's proxy uses it)."""
        try:
            while True:
                data = src.recv(4096)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _forward(self, pair, src, dst):
        try:
            while True:
                data = src.recv(4096)
                if not data:
                    break
                while time.time() < pair["stall_until"]:
                    time.sleep(0.02)
                if pair["blackhole"]:
                    continue  # swallowed; the socket stays open
                if self.delay_s > 0:
                    time.sleep(self.delay_s)
                dst.sendall(data)
        except OSError:
            pass
        if pair["blackhole"]:
            return  # half-open: the other side is never told
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _take(self):
        with self.lock:
            pairs, self.pairs = self.pairs, []
        return pairs

    def cut(self):
        self.faults["cut"] += 1
        for p in self._take():
            p["blackhole"] = False
            for s in p["socks"]:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass

    def stall(self, seconds):
        self.faults["stall"] += 1
        with self.lock:
            for p in self.pairs:
                p["stall_until"] = time.time() + seconds

    def delay(self, ms):
        if ms:
            self.faults["delay"] += 1
        self.delay_s = ms / 1000.0

    def half_open(self):
        """The current connections go silent; they are closed for good only
        by close() (or when the device or broker gives up on them)."""
        self.faults["half_open"] += 1
        with self.lock:
            for p in self.pairs:
                p["blackhole"] = True
            self.half_opened = getattr(self, "half_opened", []) + self.pairs
            self.pairs = []

    def refuse(self, on=True):
        if on:
            self.faults["refuse"] += 1
        self.refusing = on

    def close(self):
        self.closed = True
        self.cut()
        for p in getattr(self, "half_opened", []):
            for s in p["socks"]:
                try:
                    s.close()
                except OSError:
                    pass
        self.lsock.close()


class Client:
    """A paho client that collects every message it receives."""

    def __init__(self, env, user, password, client_id=None, v5=False, subs=None,
                 will=None, clean=True, connect=True):
        self.env, self.user = env, user
        self.msgs = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.rc = None
        cid = client_id or "%s.t%d" % (user, id(self) % 100000)
        if v5:
            self.c = mqtt.Client(client_id=cid, protocol=mqtt.MQTTv5)
        else:
            self.c = mqtt.Client(client_id=cid, clean_session=clean, protocol=mqtt.MQTTv311)
        self.c.username_pw_set(user, password)
        if will:
            self.c.will_set(*will)
        self.c.on_message = self._on_message
        self.c.on_connect = self._on_connect
        self.subs = subs if subs is not None else ["im/u/%s/in/#" % user]
        self.v5 = v5
        if connect:
            self.c.connect("127.0.0.1", env.port, keepalive=30)
            self.c.loop_start()
            wait_until(self.connected.is_set, 10, "%s to connect" % user)
            if self.rc != 0:
                raise ConnectionRefusedError("connect refused: %s" % self.rc)

    def _on_connect(self, c, userdata, flags, rc, props=None):
        self.rc = rc if isinstance(rc, int) else rc.value
        if self.rc == 0:
            for s in self.subs:
                c.subscribe(s, qos=1)
        self.connected.set()

    def _on_message(self, c, userdata, m):
        try:
            payload = json.loads(m.payload.decode("utf-8")) if m.payload[:1] == b"{" else m.payload.decode("utf-8", "replace")
        except ValueError:
            payload = m.payload.decode("utf-8", "replace")
        props = {}
        if self.v5 and m.properties is not None:
            props["corr"] = getattr(m.properties, "CorrelationData", None)
        with self.lock:
            self.msgs.append((m.topic, payload, m.qos, m.retain, props))

    def pub(self, topic, payload, qos=1, retain=False, props=None):
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload)
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if qos > 0:
            info.wait_for_publish(10)
        return info

    def dm(self, peer, payload, qos=1):
        return self.pub("im/u/%s/out/dm/%s" % (self.user, peer), payload, qos)

    def matching(self, suffix=None, pred=None):
        with self.lock:
            out = list(self.msgs)
        res = []
        for t, p, q, r, props in out:
            if suffix is not None and not t.endswith(suffix):
                continue
            if pred is not None and not pred(p):
                continue
            res.append(p)
        return res

    def expect(self, suffix, pred=lambda p: True, count=1, timeout=10.0):
        return wait_until(lambda: (lambda r: r if len(r) >= count else None)(self.matching(suffix, pred)),
                          timeout, "%d message(s) on %s for %s" % (count, suffix, self.user))

    def confirmations(self, pred=None):
        """What confirms my stored messages (docs/protocol.md): my echoes on
        in/msg (from me, with id and seq), and `sent` acks on in/ack (only
        when the message asked for one with "ack":"sent")."""
        with self.lock:
            out = list(self.msgs)
        res = []
        for t, p, q, r, props in out:
            if not isinstance(p, dict):
                continue
            echo = t.endswith("/in/msg") and p.get("from") == self.user and "id" in p and "seq" in p
            ack = t.endswith("/in/ack") and p.get("status") == "sent"
            if (echo or ack) and (pred is None or pred(p)):
                res.append(p)
        return res

    def expect_sent(self, pred=lambda p: True, count=1, timeout=10.0):
        """Wait for `count` confirmations (echoes or `sent` acks) matching pred."""
        return wait_until(lambda: (lambda r: r if len(r) >= count else None)(self.confirmations(pred)),
                          timeout, "%d confirmation(s) for %s" % (count, self.user))

    def clear(self):
        with self.lock:
            self.msgs.clear()

    def close(self):
        try:
            self.c.disconnect()
            self.c.loop_stop()
        except Exception:
            pass


class Env:
    """One broker + gateway in a temp dir. Use as a context manager."""

    def __init__(self, users=("alice", "bob", "carol"), gateway_args=(), tls=False, pki_dir=None,
                 fixed_passwords=None, gateway_conf="", ws=False, http_dir=None, auth=None):
        self.users = users
        # ws: a WebSocket listener on ws_port (scripts/broker-conf), serving
        # http_dir (the web client's bundle) when given
        self.ws_port = free_port() if ws else None
        self.wss_port = free_port() if ws and tls else None  # with tls: wss:// as well
        self.http_dir = http_dir
        self.auth = auth or BROKER_AUTH  # "plugin" or "files"
        self.gateway_conf = gateway_conf  # lines appended to gateway.conf before `init`
        self.pki_dir = pki_dir  # a CA + server certificate made beforehand (firmware tests)
        self.fixed_passwords = dict(fixed_passwords or {})
        self.gateway_args = list(gateway_args)
        self.dir = tempfile.mkdtemp(prefix="mqim-it-")
        self.port = free_port()
        self.tls = tls
        self.tls_port = free_port() if tls else None
        self.cert_port = free_port() if tls else None
        self.psk_port = free_port() if tls else None
        self.psk = {}
        self.passwords = {}
        self.broker = None
        self.gateway = None
        self.clients = []
        self.failed = False

    def cli(self, *args, check=True, ok=(0,)):
        """ok: the exit statuses that count as success (3: a user change is
        saved but no broker was there to be told, as before start_broker)."""
        r = subprocess.run([GATEWAY, "-c", self.conf] + list(args), capture_output=True, text=True, timeout=60)
        if check and r.returncode not in ok:
            raise AssertionError("mqim-gateway %s failed: %s" % (" ".join(args), r.stderr))
        return r

    def __enter__(self):
        # The TLS listeners come from scripts/broker-conf, as in `make run`
        # (on free ports here; none for a plain Env).
        conf_env = dict(os.environ, MQIM_TLS_PORT=str(self.tls_port or 0),
                        MQIM_CERT_PORT=str(self.cert_port or 0), MQIM_WS_PORT=str(self.ws_port or 0),
                        MQIM_WSS_PORT=str(self.wss_port or 0),
                        MQIM_BROKER_AUTH=self.auth)
        if self.http_dir:
            conf_env["MQIM_HTTP_DIR"] = self.http_dir
        if self.tls:
            pki = os.path.join(self.dir, "pki")
            if self.pki_dir:
                # Material made beforehand (firmware tests): a copy, so the
                # gateway's CA database and CRL stay in this test's dir.
                os.makedirs(pki, mode=0o700)
                for name in ("ca.crt", "ca.key", "server.crt", "server.key"):
                    shutil.copy2(os.path.join(self.pki_dir, name), pki)
            # client-USER.crt/.key made by scripts/pki (outside the CA database)
            conf_env.update(MQIM_PKI_DIR=pki, PKI_CLIENTS=" ".join(self.users))
        subprocess.run([os.path.join(SRC, "scripts", "broker-conf"), self.dir, str(self.port)], check=True,
                       env=conf_env)
        if self.tls:
            with open(os.path.join(self.dir, "mosquitto", "mosquitto.conf"), "a") as f:
                # pre-shared keys instead of certificates: the identity is the user
                psk_file = os.path.join(self.dir, "mosquitto", "psk")
                with os.fdopen(os.open(psk_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as pf:
                    for u in self.users:
                        self.psk[u] = os.urandom(16).hex()
                        pf.write("%s:%s\n" % (u, self.psk[u]))
                os.chmod(psk_file, 0o600)
                f.write("\nlistener %d 127.0.0.1\npsk_hint mqim\npsk_file %s\nuse_identity_as_username true\n"
                        % (self.psk_port, psk_file))
        self.conf = os.path.join(self.dir, "gateway.conf")
        if self.gateway_conf:
            with open(self.conf, "a") as f:
                f.write("\n" + self.gateway_conf + "\n")
        self.cli("init")
        for u in self.users:
            # the broker is not started yet: 3, it reads the files when it starts
            if u in self.fixed_passwords:
                self.cli("user", "add", u, "--password", self.fixed_passwords[u], ok=(0, 3))
                self.passwords[u] = self.fixed_passwords[u]
            else:
                self.passwords[u] = self.cli("user", "add", u, "--random", ok=(0, 3)).stdout.strip()
        self.start_broker()
        self.start_gateway()
        return self

    def start_broker(self):
        with open(os.path.join(self.dir, "broker.stderr"), "a") as log:
            self.broker = subprocess.Popen([MOSQUITTO, "-c", os.path.join(self.dir, "mosquitto", "mosquitto.conf")],
                                           stdout=log, stderr=log)

        def listening():
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    return True
            except OSError:
                return False
        wait_until(listening, 10, "mosquitto to listen")

    def stop_broker(self, sig=signal.SIGTERM):
        if self.broker and self.broker.poll() is None:
            self.broker.send_signal(sig)
            self.broker.wait(10)

    def restart_broker(self, persistence=True):
        """With persistence: SIGTERM (Mosquitto saves its sessions, queues
        and retained messages) and start again. Without: SIGKILL and the
        database removed, so the broker comes back knowing nothing (no
        sessions, no queued messages, no retained ones)."""
        if persistence:
            self.stop_broker()
        else:
            self.stop_broker(signal.SIGKILL)
            try:
                os.unlink(os.path.join(self.dir, "mosquitto", "mosquitto.db"))
            except FileNotFoundError:
                pass
        self.start_broker()

    def start_gateway(self, wait_online=True, debug=True, extra_env=None):
        """debug False: the log level of gateway.conf (no --log-level flag,
        which would win over the file at a reload too); extra_env: more
        environment (NOTIFY_SOCKET, WATCHDOG_USEC)."""
        # Paho leaks what was in flight when it destroys a client after a
        # lost connection (lsan.supp); everything else is still reported.
        genv = dict(os.environ)
        genv.setdefault("LSAN_OPTIONS", "suppressions=" + os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                       "lsan.supp"))
        genv.update(extra_env or {})
        level = ["--log-level", "debug"] if debug else []
        with open(os.path.join(self.dir, "gateway.log"), "a") as log:
            self.gateway = subprocess.Popen([GATEWAY, "-c", self.conf] + level + self.gateway_args,
                                            stdout=log, stderr=log, env=genv)
        if wait_online:
            self.wait_gateway_online()

    def wait_gateway_online(self, timeout=15):
        watcher = self.client("alice" if "alice" in self.passwords else self.users[0],
                              subs=["im/gateway/status"], keep=False)
        try:
            watcher.expect("gateway/status", lambda p: isinstance(p, dict) and p.get("state") == "online",
                           timeout=timeout)
            # The subscription of the gateway is made right after it says online.
            time.sleep(0.2)
        finally:
            watcher.close()

    def stop_gateway(self, sig=signal.SIGTERM, timeout=20):
        if self.gateway and self.gateway.poll() is None:
            self.gateway.send_signal(sig)
            return self.gateway.wait(timeout)
        return self.gateway.returncode if self.gateway else None

    def mqim_cmd(self, user, device, *args, timeout_ms=10000, port=None):
        """The argv of an `mqim` CLI run as user's device, state in the env's dir."""
        state = os.path.join(self.dir, "dev-%s-%s" % (user, device))
        return [os.environ["MQIM_CLI"], "--port", str(port or self.port), "--user", user,
                "--password", self.passwords[user], "--device", device, "--state-dir", state,
                "--timeout", str(timeout_ms)] + [str(a) for a in args]

    def mqim(self, user, device, *args, timeout_ms=10000):
        return subprocess.run(self.mqim_cmd(user, device, *args, timeout_ms=timeout_ms),
                              capture_output=True, text=True, timeout=120)

    def client(self, user, keep=True, **kw):
        c = Client(self, user, self.passwords[user], **kw)
        if keep:
            self.clients.append(c)
        return c

    def log_tail(self, name, n=60):
        try:
            with open(os.path.join(self.dir, name), errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def __exit__(self, et, ev, tb):
        for c in self.clients:
            c.close()
        self.stop_gateway()
        self.stop_broker()
        if et is not None or self.failed:
            print("---- gateway.log (tail) ----\n" + self.log_tail("gateway.log"))
            print("---- mosquitto.log (tail) ----\n" + self.log_tail(os.path.join("mosquitto", "mosquitto.log")))
        shutil.rmtree(self.dir, ignore_errors=True)
        return False


class EnvTest(unittest.TestCase):
    """A test case with a fresh Env per test (gateway args from GATEWAY_ARGS;
    AUTH: the broker's auth mode, None = MQIM_BROKER_AUTH or plugin)."""
    GATEWAY_ARGS = ()
    AUTH = None

    def setUp(self):
        self.env = Env(gateway_args=self.GATEWAY_ARGS, auth=self.AUTH).__enter__()

    def tearDown(self):
        self.env.failed = not getattr(self._outcome, "success", True)
        self.env.__exit__(None, None, None)
