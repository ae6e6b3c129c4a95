"""The `mqim` CLI where devices spend their lives: offline or misconfigured
(issue 14). Each way a connection fails is said at once on stderr, with its
own exit code (the table in README.md and docs/device.md), and the message
that could not leave stays queued and says so. While the broker is away or
keeps refusing the login, the device sleeps between attempts instead of
spinning (CPU time from /proc). TLS verifies a broker addressed by name or
by IP address. Against a real Mosquitto (with TLS listeners from
scripts/broker-conf) and the real gateway."""
import os
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Env, free_port  # noqa: E402

MQIM = os.environ.get("MQIM_CLI")
REFUSED = "mqim: Connection Refused: not authorised.\n"


def queued_line(state, n=1, once="the login works"):
    return ("mqim: %d message%s stay%s queued in the outbox (%s); `mqim flush` sends %s once %s\n"
            % (n, "" if n == 1 else "s", "s" if n == 1 else "", state, "it" if n == 1 else "them", once))


def cpu_seconds(pid):
    """User + system CPU of a running process, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class DeviceLink(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env(tls=True).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.env.__exit__(None, None, None)

    def run_mqim(self, user, device, *args, password=None, port=None, extra=(), timeout_ms=10000):
        state = os.path.join(self.env.dir, "dev-%s-%s" % (user, device))
        argv = [MQIM, "--port", str(port or self.env.port), "--user", user, "--password",
                password if password is not None else self.env.passwords.get(user, "x"), "--device", device,
                "--state-dir", state, "--timeout", str(timeout_ms)] + list(extra) + [str(a) for a in args]
        t0 = time.monotonic()
        r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        return r, time.monotonic() - t0, state

    def tls(self, *more):
        return ["--tls-ca", os.path.join(self.env.dir, "pki", "ca.crt")] + list(more)

    def test_wrong_password_says_so_at_once_and_keeps_the_message(self):
        self.assertTrue(MQIM, "MQIM_CLI not set")
        r, took, state = self.run_mqim("alice", "pw", "send", "bob", "after the login works", password="wrong")
        self.assertEqual(r.returncode, 5, r.stdout + r.stderr)
        self.assertEqual(r.stderr, REFUSED + queued_line(state))
        # the CONNACK comes at once: no 10 s wait (the whole run, start-up included)
        self.assertLess(took, 4.0, "refusal took %.1f s" % took)
        # nothing lost: with the right password, flush sends it
        r, _, _ = self.run_mqim("alice", "pw", "flush")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"(?m)^sent [0-9a-f]{32} seq=\d+")

    def test_unknown_user_and_presence(self):
        self.assertTrue(MQIM, "MQIM_CLI not set")
        # Mosquitto answers an unknown user as a wrong password: CONNACK 5
        r, took, state = self.run_mqim("mallory", "x", "send", "bob", "hi", password="guess")
        self.assertEqual(r.returncode, 5, r.stdout + r.stderr)
        self.assertEqual(r.stderr, REFUSED + queued_line(state))
        self.assertLess(took, 4.0)
        # presence queues nothing: only the reason
        r, took, _ = self.run_mqim("alice", "presence", "presence", "bob", password="wrong")
        self.assertEqual(r.returncode, 5, r.stdout + r.stderr)
        self.assertEqual(r.stderr, REFUSED)
        self.assertEqual(r.stdout, "")
        self.assertLess(took, 4.0)
        # and with the right password it answers as before
        r, _, _ = self.run_mqim("alice", "presence", "presence", "bob")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"(?m)^bob (online|offline)")

    def test_broker_down(self):
        self.assertTrue(MQIM, "MQIM_CLI not set")
        port = free_port()  # nobody listens there
        r, took, state = self.run_mqim("alice", "down", "send", "bob", "later", port=port, timeout_ms=1500)
        self.assertEqual(r.returncode, 11, r.stdout + r.stderr)
        self.assertEqual(r.stderr, "mqim: cannot reach the broker at 127.0.0.1:%d: Connection refused\n" % port
                         + queued_line(state, once="the broker is reachable"))
        r, _, _ = self.run_mqim("alice", "down", "presence", "bob", port=port, timeout_ms=500)
        self.assertEqual(r.returncode, 11, r.stdout + r.stderr)
        r, _, _ = self.run_mqim("alice", "down", "flush")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("sent ", r.stdout)

    def test_tls_verification_failure(self):
        self.assertTrue(MQIM, "MQIM_CLI not set")
        other = os.path.join(self.env.dir, "other-pki")
        subprocess.run([os.path.join(os.environ.get("MQIM_SOURCE_DIR", "."), "scripts", "pki"), other],
                       check=True, capture_output=True)
        r, took, state = self.run_mqim("alice", "ca", "send", "bob", "not to an impostor", port=self.env.tls_port,
                                       extra=["--host", "localhost", "--tls-ca", os.path.join(other, "ca.crt")])
        self.assertEqual(r.returncode, 12, r.stdout + r.stderr)
        self.assertEqual(r.stderr, "mqim: TLS: the broker's certificate failed verification: "
                         "The certificate is not correctly signed by the trusted CA\n"
                         + queued_line(state, once="TLS works"))
        self.assertLess(took, 4.0)

    def test_tls_host_by_name_or_address(self):
        """The server certificate (scripts/pki) names DNS:localhost and
        IP:127.0.0.1; the CLI checks the name or address it was given."""
        self.assertTrue(MQIM, "MQIM_CLI not set")
        for i, extra in enumerate((["--host", "localhost"], ["--host", "127.0.0.1"])):
            r, _, _ = self.run_mqim("alice", "tls%d" % i, "send", "bob", "over TLS %d" % i, port=self.env.tls_port,
                                    extra=self.tls(*extra))
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("sent ", r.stdout)
        mismatch = ("mqim: TLS: the broker's certificate failed verification: "
                    "The certificate Common Name (CN) does not match with the expected CN\n")
        for i, name in enumerate(("wrong.example", "127.0.0.2", "::1")):
            r, _, state = self.run_mqim("alice", "bad%d" % i, "send", "bob", "x", port=self.env.tls_port,
                                        extra=self.tls("--host", "127.0.0.1", "--tls-server-name", name))
            self.assertEqual(r.returncode, 12, name + ": " + r.stdout + r.stderr)
            self.assertEqual(r.stderr, mismatch + queued_line(state, once="TLS works"), name)

    def test_sleeps_while_broker_down_or_refusing(self):
        """30 s of retrying, with the broker down and with a wrong password
        (--keep-trying), side by side: CPU time well under 1 % of a core."""
        self.assertTrue(MQIM, "MQIM_CLI not set")
        port = free_port()
        runs = {}
        for name, argv_port, pw in (("down", port, self.env.passwords["alice"]), ("refused", self.env.port, "wrong")):
            state = os.path.join(self.env.dir, "dev-alice-cpu-" + name)
            argv = [MQIM, "--port", str(argv_port), "--user", "alice", "--password", pw, "--device", "cpu-" + name,
                    "--state-dir", state, "--timeout", "34000", "--keep-trying", "send", "bob", "patience"]
            p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            runs[name] = [p, time.monotonic(), None, None]
        first = {}

        def first_line(name):
            first[name] = (runs[name][0].stderr.readline(), time.monotonic() - runs[name][1])

        readers = [threading.Thread(target=first_line, args=(n,)) for n in runs]
        for t in readers:
            t.start()
        time.sleep(3.0)  # past start-up (sanitizer runtime, LMDB, the E2E key)
        for name, run in runs.items():
            run[2] = cpu_seconds(run[0].pid)
        time.sleep(30.0)
        for name, run in runs.items():
            run[3] = cpu_seconds(run[0].pid) - run[2]
        for t in readers:
            t.join(10)
        rcs = {}
        for name, run in runs.items():
            run[0].wait(60)
            run[0].stderr.read()
            rcs[name] = run[0].returncode
        for name, run in runs.items():
            print("CPU over 30 s, %s: %.2f s (%.2f %% of a core)" % (name, run[3], run[3] / 30 * 100))
        self.assertEqual(first["down"][0], "mqim: cannot reach the broker at 127.0.0.1:%d: Connection refused\n" % port)
        self.assertEqual(first["refused"][0], REFUSED)
        for name in runs:
            self.assertLess(first[name][1], 3.0, name)  # said at once, not at the end
            self.assertLess(runs[name][3], 0.3, name)  # 1 % of one core over 30 s
        self.assertEqual(rcs, {"down": 11, "refused": 5})


if __name__ == "__main__":
    unittest.main()
