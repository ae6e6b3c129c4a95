"""mqim-gateway's admin commands (issue 19) against a running gateway:
`status` and `online` tell the right values, `log-level` changes the
running gateway's level without a restart, and `check` catches unreadable
broker files, a missing or default client id, expired and soon-expiring
certificates and an unreachable broker. (A flood of rejections logging
one line per user: test_metrics.py.)"""
import datetime
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from harness import GATEWAY, Env, free_port, wait_until

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def read_log(env):
    with open(os.path.join(env.dir, "gateway.log"), errors="replace") as f:
        return f.read()


def fields(text):
    return dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)


def make_cert(path, cn, not_before, not_after):
    """A self-signed certificate with the given validity (cryptography
    sets any dates, which `openssl req` cannot: expired ones too)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    with open(path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def control_name(data_dir):
    """The gateway's abstract control socket for data_dir (metrics_server.c):
    "mqim-gateway." and FNV-1a 64 of the directory's real path."""
    h = 14695981039346656037
    for b in os.path.realpath(data_dir).encode():
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return "mqim-gateway.%016x" % h


def check_lines(stdout, tag):
    return [ln for ln in stdout.splitlines() if ln.startswith(tag)]


class Admin(unittest.TestCase):
    def test_status_online_and_log_level(self):
        with Env() as env:
            env.stop_gateway()
            env.start_gateway(debug=False)  # log_level info, from the config
            pid = env.gateway.pid
            r = env.cli("status", check=False)
            self.assertEqual(r.returncode, 0, r.stderr)
            st = fields(r.stdout)
            self.assertEqual(st["state"], "running")
            self.assertEqual(int(st["pid"]), pid)
            self.assertEqual(st["broker_connected"], "yes")
            self.assertEqual(st["journal_lag"], "0")
            self.assertEqual(st["log_level"], "info")
            stats = fields(env.cli("stats").stdout)
            self.assertEqual(st["store_id"], stats["store_id"])
            self.assertEqual(st["store_epoch"], stats["store_epoch"])

            # presence: alice's phone online, bob's laptop online then offline
            alice, bob = env.client("alice"), env.client("bob")
            before = time.time()
            alice.pub("im/u/alice/out/status/phone", {"state": "online", "epoch": 5})
            bob.pub("im/u/bob/out/status/laptop", {"state": "online"})
            bob.pub("im/u/bob/out/status/laptop", {"state": "offline"})
            time.sleep(0.5)

            def online_rows(*args):
                r = subprocess.run([GATEWAY, "-c", env.conf, "online"] + list(args), capture_output=True, text=True, timeout=30,
                                   env=dict(os.environ, TZ="UTC"))
                self.assertEqual(r.returncode, 0, r.stderr)
                return r.stdout.splitlines()
            rows = wait_until(lambda: (lambda o: o if "1 users, 1 devices online" in o[-1] else None)(
                online_rows()), 10, "online to list alice's phone")
            self.assertEqual(len(rows), 3, rows)  # header, alice/phone, summary
            self.assertRegex(rows[1], r"^alice\s+phone\s+online\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")
            seen = re.search(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", rows[1]).group(1)
            seen_t = datetime.datetime.strptime(seen, "%Y-%m-%d %H:%M:%S").replace(
                tzinfo=datetime.timezone.utc).timestamp()
            self.assertLessEqual(abs(seen_t - before), 5)
            rows = online_rows("--all")
            self.assertTrue(any(re.match(r"^bob\s+laptop\s+offline\s", r) for r in rows), rows)
            self.assertEqual(fields(env.cli("status").stdout)["devices_online"], "1")

            # log-level: the same process, other lines
            env.cli("log-level", "debug")
            alice.pub("im/u/alice/out/status/phone", {"state": "online", "epoch": 3})  # stale: DEBUG
            wait_until(lambda: "stale status of alice/phone ignored" in read_log(env), 10,
                       "the DEBUG line after log-level debug")
            env.cli("log-level", "error")
            self.assertEqual(fields(env.cli("status").stdout)["log_level"], "error")
            bob.dm("nobody", {"id": "b1", "body": "x"})
            bob.expect("in/ack", lambda p: isinstance(p, dict) and p.get("code") == "unknown_peer")
            time.sleep(0.3)
            self.assertNotIn("rejected dm from bob", read_log(env))
            env.cli("log-level", "info")
            # carol: bob's next rejection line is due 10 s after his last
            env.client("carol").dm("nobody", {"id": "c1", "body": "x"})
            wait_until(lambda: "rejected dm from carol" in read_log(env), 10, "the INFO line again")
            self.assertEqual(env.gateway.pid, pid)
            self.assertIsNone(env.gateway.poll())
            r = env.cli("log-level", "loud", check=False)
            self.assertEqual(r.returncode, 2)

            # not connected: the broker stops; not running: the gateway stops
            env.stop_broker()
            wait_until(lambda: env.cli("status", check=False).returncode == 1, 15, "status to say 1")
            r = env.cli("status", check=False)
            self.assertIn("broker_connected\tno", r.stdout)
            self.assertIn("not connected", r.stderr)
            env.start_broker()
            env.stop_gateway()
            r = env.cli("status", check=False)
            self.assertEqual(r.returncode, 1)
            self.assertIn("not running", r.stderr)
            r = env.cli("online", check=False)
            self.assertEqual(r.returncode, 1)

            # The control socket is abstract: nothing in the data directory
            # (a copy of it must not trip over a socket file), any path length.
            long_dir = os.path.join(env.dir, "d" * 60, "e" * 60, "gateway")
            os.makedirs(long_dir, mode=0o700)
            env.gateway_args = ["--data-dir", long_dir]
            env.start_gateway()
            r = env.cli("--data-dir", long_dir, "status", check=False)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(fields(r.stdout)["pid"], str(env.gateway.pid))
            self.assertEqual([n for n in os.listdir(long_dir) if n.endswith(".sock")], [])
            self.assertIn(control_name(long_dir), open("/proc/net/unix").read())
            if os.geteuid() == 0:
                # another user is turned away (SO_PEERCRED)
                mos = pwd.getpwnam("mosquitto")
                probe = ("import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect('\\0' + sys.argv[1]); "
                         "s.sendall(b'status\\n'); print(s.recv(4096).decode())")
                r = subprocess.run(["/usr/bin/python3", "-c", probe, control_name(long_dir)],
                                   capture_output=True, text=True, timeout=30,
                                   preexec_fn=lambda: (os.setgid(mos.pw_gid), os.setuid(mos.pw_uid)))
                self.assertIn("only the gateway's user and root", r.stdout, r.stderr)
            env.stop_gateway()
            self.assertNotIn(control_name(long_dir), open("/proc/net/unix").read())

    def test_check_plugin_mode(self):
        # the mqim_auth plugin (the default): the broker reads the auth
        # database, not password and ACL files
        with Env() as env:
            r = env.cli("check", check=False)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertTrue(any("broker_auth_db" in ln for ln in check_lines(r.stdout, "ok")), r.stdout)

    def test_check(self):
        # files mode: the broker's password and ACL files (other brokers)
        with Env(tls=True, auth="files") as env:
            r = env.cli("check", check=False)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertEqual(check_lines(r.stdout, "FAIL"), [])
            self.assertTrue(any("MQTT CONNECT" in ln for ln in check_lines(r.stdout, "ok")), r.stdout)

            # over TLS: the broker's server certificate and the CA file
            tls = ["--broker-host", "localhost", "--broker-port", str(env.tls_port), "--broker-tls", "true",
                   "--broker-cafile", os.path.join(env.dir, "pki", "ca.crt")]
            r = env.cli(*(tls + ["check"]), check=False)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            oks = check_lines(r.stdout, "ok")
            self.assertTrue(any("broker's server certificate" in ln and "more days" in ln for ln in oks), r.stdout)
            self.assertTrue(any("broker_cafile" in ln and "more days" in ln for ln in oks), r.stdout)
            self.assertTrue(any("(TLS, verified)" in ln for ln in oks), r.stdout)

            # a default, a missing (the default again) and a short client id
            for cid in ("mqim-gateway", "short"):
                r = env.cli("--client-id", cid, "check", check=False)
                self.assertEqual(r.returncode, 1, r.stdout)
                self.assertTrue(any("client_id" in ln for ln in check_lines(r.stdout, "FAIL")), r.stdout)

            # an unreachable broker
            r = env.cli("--broker-port", str(free_port()), "check", check=False)
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertTrue(any("unreachable" in ln for ln in check_lines(r.stdout, "FAIL")), r.stdout)

            # broker files: read as the broker's user (the process behind the
            # pid file: here a stand-in running as `mosquitto`; root makes it)
            if os.geteuid() == 0:
                self.check_broker_user(env)
            else:
                print("test_check: not root: the broker-user part is skipped")
            self.check_certificates(env)

    def check_broker_user(self, env):
        work = tempfile.mkdtemp(prefix="mqim-check-")
        os.chmod(work, 0o755)
        sleeper = None
        try:
            for name in ("passwd", "acl"):
                shutil.copy(os.path.join(env.dir, "mosquitto", name), os.path.join(work, name))
            for name in ("crl.pem", "ca.crt"):  # pki_dir: the broker reads the CRL
                shutil.copy(os.path.join(env.dir, "pki", name), os.path.join(work, name))
            mos = pwd.getpwnam("mosquitto")
            sleeper = subprocess.Popen(["sleep", "60"], preexec_fn=lambda: (os.setgid(mos.pw_gid),
                                                                           os.setuid(mos.pw_uid)))
            pidfile = os.path.join(work, "mosquitto.pid")
            with open(pidfile, "w") as f:
                f.write("%d\n" % sleeper.pid)
            args = ["--broker-pid-file", pidfile, "--broker-password-file", os.path.join(work, "passwd"),
                    "--broker-acl-file", os.path.join(work, "acl"), "--pki-dir", work, "check"]
            for name in ("passwd", "acl", "crl.pem"):
                os.chown(os.path.join(work, name), 0, mos.pw_gid)
                os.chmod(os.path.join(work, name), 0o640)
            r = env.cli(*args, check=False)
            self.assertEqual(r.returncode, 0, r.stdout)
            self.assertEqual(len([ln for ln in check_lines(r.stdout, "ok") if "readable by the broker" in ln
                                  and "pid %d" % sleeper.pid in ln]), 3, r.stdout)
            os.chmod(os.path.join(work, "acl"), 0o600)  # root's alone now
            r = env.cli(*args, check=False)
            self.assertEqual(r.returncode, 1, r.stdout)
            fails = check_lines(r.stdout, "FAIL")
            self.assertEqual(len(fails), 1, r.stdout)
            self.assertIn("broker_acl_file", fails[0])
            self.assertIn("cannot read it", fails[0])
            # the broker's own directory closed to it
            r = env.cli("--broker-pid-file", pidfile, "check", check=False)
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertTrue(any("cannot enter the directory" in ln for ln in check_lines(r.stdout, "FAIL")),
                            r.stdout)
        finally:
            if sleeper:
                sleeper.kill()
                sleeper.wait()
            shutil.rmtree(work, ignore_errors=True)

    def check_certificates(self, env):
        # certificates: expired (FAIL), soon expiring (warn), fine (ok)
        pki = tempfile.mkdtemp(prefix="mqim-check-pki-")
        try:
            open(os.path.join(pki, "crl.pem"), "w").close()
            now = datetime.datetime.now(datetime.timezone.utc)
            day = datetime.timedelta(days=1)
            ca = os.path.join(pki, "ca.crt")
            make_cert(ca, "old CA", now - 400 * day, now - 2 * day)
            r = env.cli("--pki-dir", pki, "check", check=False)
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertTrue(any("EXPIRED" in ln and "old CA" in ln for ln in check_lines(r.stdout, "FAIL")),
                            r.stdout)
            make_cert(ca, "soon CA", now - 300 * day, now + 10 * day)
            r = env.cli("--pki-dir", pki, "check", check=False)
            self.assertEqual(r.returncode, 0, r.stdout)  # a warning is not a failure
            self.assertTrue(any("expires in" in ln and "soon CA" in ln for ln in check_lines(r.stdout, "warn")),
                            r.stdout)
            make_cert(ca, "good CA", now - day, now + 400 * day)
            r = env.cli("--pki-dir", pki, "check", check=False)
            self.assertEqual(r.returncode, 0, r.stdout)
            self.assertTrue(any("good CA" in ln for ln in check_lines(r.stdout, "ok")), r.stdout)
        finally:
            shutil.rmtree(pki, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
