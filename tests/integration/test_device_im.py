"""Two `mqim` CLI devices (the full device stack: IM layer, session, TCP,
LMDB outbox and state; no Paho) chat through the real Mosquitto and gateway:
sent and delivered acks, exactly-once delivery across runs, and a message
queued while the broker is down delivered once it is back."""
import os
import re
import subprocess
import time
import unittest

from harness import Env, EnvTest

MQIM = os.environ.get("MQIM_CLI")
MQIM_SMALL = os.environ.get("MQIM_CLI_DEFAULT_CONFIG")  # the library's MCU-sized buffers
MINIMAL_IM = os.environ.get("MQIM_MINIMAL_IM")  # device/examples/minimal_im.c


class DeviceIm(EnvTest):
    def mqim(self, user, device, *args, timeout_ms=10000, tls_ca=None, binary=None):
        state = os.path.join(self.env.dir, "dev-%s-%s" % (user, device))
        tls = ["--tls-ca", tls_ca, "--host", "localhost"] if tls_ca else []
        port = self.env.tls_port if tls_ca else self.env.port
        return subprocess.run([binary or MQIM, "--port", str(port)] + tls + ["--user", user,
                               "--password", self.env.passwords[user], "--device", device,
                               "--state-dir", state, "--timeout", str(timeout_ms)] + [str(a) for a in args],
                              capture_output=True, text=True, timeout=60)

    @staticmethod
    def messages(out):
        # "[seq] from/device -> to: body"; the device is checked where it matters
        return re.findall(r"^\[(\d+)\] ([^\s/]+)(?:/\S+)? -> (\S+): (.*)$", out, re.M)

    def test_chat_acks_and_exactly_once(self):
        self.assertTrue(MQIM, "MQIM_CLI not set")
        watch = self.env.client("alice")  # alice's shell sees the acks her devices get
        for i in range(3):
            r = self.mqim("alice", "phone", "send", "bob", "hello %d" % i)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertRegex(r.stdout, r"(?m)^sent [0-9a-f]{32} seq=\d+")
            self.assertNotIn("rejected", r.stdout)  # e.g. a receipt for its own echo
        r = self.mqim("bob", "tab", "listen", 3)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.messages(r.stdout), [("1", "alice", "bob", "hello 0"),
                                                   ("2", "alice", "bob", "hello 1"),
                                                   ("3", "alice", "bob", "hello 2")])
        # listen prints presence too: alice's phone came and went
        self.assertRegex(r.stdout, r"(?m)^presence alice (online|offline)$")
        delivered = watch.expect("in/ack", lambda p: p.get("status") == "delivered", count=3)
        self.assertEqual({p["by"] for p in delivered}, {"bob"})
        self.assertEqual({p["device"] for p in delivered}, {"tab"})
        # bob reads; alice's devices get `read` acks
        r = self.mqim("bob", "tab", "read", "alice", 3)
        self.assertEqual(r.returncode, 0, r.stderr)
        watch.expect("in/ack", lambda p: p.get("status") == "read", count=3)
        # bob's device remembers what it saw: the next run delivers only the new one
        r = self.mqim("alice", "phone", "send", "bob", "fourth")
        self.assertEqual(r.returncode, 0, r.stdout)
        r = self.mqim("bob", "tab", "listen", 1, timeout_ms=3000)
        self.assertEqual(self.messages(r.stdout), [("4", "alice", "bob", "fourth")])
        # read without a seq: everything this device has shown (up to 4)
        r = self.mqim("bob", "tab", "read", "alice")
        self.assertEqual(r.returncode, 0, r.stderr)
        reads = watch.expect("in/ack", lambda p: p.get("status") == "read", count=4)
        self.assertEqual(sorted(p["seq"] for p in reads), [1, 2, 3, 4])
        # rejected: unknown peer, exit code 4; a group that does not exist
        r = self.mqim("alice", "phone", "send", "nobody", "hi")
        self.assertEqual(r.returncode, 4, r.stdout)
        self.assertIn("unknown_peer", r.stdout)
        r = self.mqim("alice", "phone", "send", "--group", "team", "hi team")
        self.assertEqual(r.returncode, 4, r.stdout)
        self.assertIn("not_member", r.stdout)
        # history and presence through control requests
        r = self.mqim("alice", "phone", "history", "bob", 2)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual([m[3] for m in self.messages(r.stdout)], ["hello 2", "fourth"])
        r = self.mqim("carol", "pc", "presence", "bob", "zed")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # a local time, not the raw epoch (issue 20; was "last_seen=<ms>")
        self.assertRegex(r.stdout, r"(?m)^bob offline, last seen (\w{3} \d\d |\d{4}-\d\d-\d\d )?\d\d:\d\d$")
        self.assertIn("zed unknown", r.stdout)

    def test_message_larger_than_a_small_device(self):
        """A device built with the default (microcontroller) buffers gets a
        message larger than its receive buffer: it is told who sent which
        message and how large it was, its stream moves on (no reconnect
        loop, the next message arrives), and no `delivered` receipt is sent
        for what it could not show. It cannot send such a message either."""
        self.assertTrue(MQIM_SMALL, "MQIM_CLI_DEFAULT_CONFIG not set")
        watch = self.env.client("alice")
        big = "x" * 3000
        self.assertEqual(self.mqim("alice", "phone", "send", "bob", big).returncode, 0)
        self.assertEqual(self.mqim("alice", "phone", "send", "bob", "small after").returncode, 0)
        r = self.mqim("bob", "mcu", "listen", 2, binary=MQIM_SMALL)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        size = int(re.search(r"\(a (\d+)-byte", r.stdout).group(1))
        self.assertGreater(size, 3000)  # the envelope around the 3000-byte body
        self.assertEqual(self.messages(r.stdout),
                         [("1", "alice", "bob", "(a %d-byte message, too large for this device)" % size),
                          ("2", "alice", "bob", "small after")])
        is_delivered = lambda p: p.get("status") == "delivered"
        delivered = watch.expect("in/ack", is_delivered, count=1)
        self.assertEqual(delivered[0]["seq"], 2)
        time.sleep(1.0)
        self.assertEqual(len(watch.matching("in/ack", is_delivered)), 1)
        # the host build reads it whole, and the next small-device run starts after it
        r = self.mqim("bob", "laptop", "listen", 2)
        self.assertEqual([m[3] for m in self.messages(r.stdout)], [big, "small after"])
        r = self.mqim("bob", "mcu", "send", "alice", "y" * 3000, binary=MQIM_SMALL)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("payload is too large", r.stderr)

    def test_minimal_example(self):
        """The minimal IM device of docs/device.md works as documented."""
        self.assertTrue(MINIMAL_IM, "MQIM_MINIMAL_IM not set")
        r = subprocess.run([MINIMAL_IM, "127.0.0.1", str(self.env.port), "alice",
                            self.env.passwords["alice"], "bob", "from the minimal device"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"(?m)^sent seq=1$")
        r = self.mqim("bob", "tab", "listen", 1)
        self.assertEqual(self.messages(r.stdout), [("1", "alice", "bob", "from the minimal device")])
        r = subprocess.run([MINIMAL_IM, "127.0.0.1", str(self.env.port), "alice",
                            self.env.passwords["alice"], "nobody", "x"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("rejected: no such user", r.stdout)

    def test_chat(self):
        self.assertTrue(MQIM, "MQIM_CLI not set")
        state = os.path.join(self.env.dir, "dev-alice-chat")
        r = subprocess.run([MQIM, "--port", str(self.env.port), "--user", "alice",
                            "--password", self.env.passwords["alice"], "--device", "chat",
                            "--state-dir", state, "chat", "bob"],
                           input="hi bob\nhow are you?\n", capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(len(re.findall(r"(?m)^sent ", r.stdout)), 2, r.stdout)
        r = self.mqim("bob", "tab", "listen", 2)
        self.assertEqual([m[3] for m in self.messages(r.stdout)], ["hi bob", "how are you?"])

    def test_config_file(self):
        """Settings from a config file; flags still win."""
        self.assertTrue(MQIM, "MQIM_CLI not set")
        conf = os.path.join(self.env.dir, "alice.conf")
        with open(conf, "w") as f:
            f.write("# alice's device\nhost 127.0.0.1\nport %d\nuser alice\npassword %s\ndevice conf\n"
                    "state-dir %s\n" % (self.env.port, self.env.passwords["alice"],
                                         os.path.join(self.env.dir, "dev-alice-conf")))
        r = subprocess.run([MQIM, "--config", conf, "send", "bob", "configured"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = subprocess.run([MQIM, "--config", conf, "--port", "1", "--timeout", "800", "send", "bob", "x"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 11, r.stdout + r.stderr)  # the flag's port wins: nobody there
        r = self.mqim("bob", "tab", "listen", 1)
        self.assertEqual([m[3] for m in self.messages(r.stdout)], ["configured"])

    def test_queued_while_broker_down(self):
        self.assertTrue(MQIM, "MQIM_CLI not set")
        self.env.stop_gateway()
        self.env.stop_broker()
        r = self.mqim("alice", "phone", "send", "bob", "survives", timeout_ms=1500)
        self.assertEqual(r.returncode, 11, r.stdout + r.stderr)  # unreachable; only queued
        self.assertIn("1 message stays queued", r.stderr)
        self.env.start_broker()
        self.env.start_gateway()
        r = self.mqim("alice", "phone", "flush")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = self.mqim("bob", "tab", "listen", 1)
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertEqual(self.messages(r.stdout)[0][3], "survives")
        # flushing again sends nothing new: one message in bob's inbox
        self.mqim("alice", "phone", "flush", timeout_ms=3000)
        self.env.stop_gateway()
        out = self.env.cli("history", "bob").stdout
        self.assertEqual(out.count("survives"), 1, out)


class DeviceImCrash(EnvTest):
    mqim = DeviceIm.mqim
    messages = staticmethod(DeviceIm.messages)

    def test_kill9_sender_mid_stream(self):
        """20 messages queued while the broker is down, then sent by runs that
        are killed with SIGKILL mid-stream: bob gets each once, in order."""
        self.assertTrue(MQIM, "MQIM_CLI not set")
        self.env.stop_gateway()
        self.env.stop_broker()
        for i in range(20):
            r = self.mqim("alice", "phone", "send", "bob", "m%02d" % i, timeout_ms=200)
            self.assertEqual(r.returncode, 11, r.stdout + r.stderr)  # unreachable: queued
        self.env.start_broker()
        self.env.start_gateway()
        state = os.path.join(self.env.dir, "dev-alice-phone")
        for delay in (0.15, 0.25, 0.35):
            p = subprocess.Popen([MQIM, "--port", str(self.env.port), "--user", "alice",
                                  "--password", self.env.passwords["alice"], "--device", "phone",
                                  "--state-dir", state, "flush"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(delay)
            p.kill()
            p.wait()
        r = self.mqim("alice", "phone", "flush")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = self.mqim("bob", "tab", "listen", 20)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual([m[3] for m in self.messages(r.stdout)], ["m%02d" % i for i in range(20)])
        self.env.stop_gateway()
        out = self.env.cli("history", "bob", "--limit", "100").stdout
        self.assertEqual(sum(out.count("\tm%02d\n" % i) for i in range(20)), 20, out)


class DeviceImBrokerAmnesia(EnvTest):
    mqim = DeviceIm.mqim
    messages = staticmethod(DeviceIm.messages)

    def test_broker_restart_without_persistence(self):
        """The broker PUBACKs 3 messages while the gateway is down, then
        restarts without persistence and forgets them. The device keeps them
        until the gateway's `sent` ack, so a flush still delivers them, once."""
        self.assertTrue(MQIM, "MQIM_CLI not set")
        self.env.stop_gateway()
        for i in range(3):
            r = self.mqim("alice", "phone", "send", "bob", "a%d" % i, timeout_ms=1000)
            self.assertEqual(r.returncode, 3, r.stdout + r.stderr)  # PUBACKed, not `sent`
        conf = os.path.join(self.env.dir, "mosquitto", "mosquitto.conf")
        self.env.stop_broker()
        with open(conf) as f:
            text = f.read()
        with open(conf, "w") as f:
            f.write(text.replace("persistence true", "persistence false"))
        for name in os.listdir(os.path.join(self.env.dir, "mosquitto")):
            if name.endswith(".db"):
                os.remove(os.path.join(self.env.dir, "mosquitto", name))
        self.env.start_broker()
        self.env.start_gateway()
        r = self.mqim("alice", "phone", "flush")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(len(re.findall(r"(?m)^sent ", r.stdout)), 3, r.stdout)
        r = self.mqim("bob", "tab", "listen", 3)
        self.assertEqual([m[3] for m in self.messages(r.stdout)], ["a0", "a1", "a2"])


class DeviceImTls(EnvTest):

    def setUp(self):
        self.env = Env(tls=True).__enter__()

    mqim = DeviceIm.mqim
    messages = staticmethod(DeviceIm.messages)

    def test_chat_over_tls(self):
        self.assertTrue(MQIM, "MQIM_CLI not set")
        ca = os.path.join(self.env.dir, "pki", "ca.crt")
        r = self.mqim("alice", "phone", "send", "bob", "over tls", tls_ca=ca)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = self.mqim("bob", "tab", "listen", 1, tls_ca=ca)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.messages(r.stdout), [("1", "alice", "bob", "over tls")])
        # a client certificate instead of a password: the certificate's CN is the user
        pki = os.path.join(self.env.dir, "pki")
        r = subprocess.run([MQIM, "--host", "localhost", "--port", str(self.env.cert_port), "--tls-ca", ca,
                            "--tls-cert", os.path.join(pki, "client-carol.crt"),
                            "--tls-key", os.path.join(pki, "client-carol.key"),
                            "--user", "carol", "--device", "cert",
                            "--state-dir", os.path.join(self.env.dir, "dev-carol-cert"),
                            "send", "bob", "signed by my certificate"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = self.mqim("bob", "tab", "listen", 1, tls_ca=ca)
        self.assertEqual(self.messages(r.stdout), [("2", "carol", "bob", "signed by my certificate")])
        # a pre-shared key instead of certificates (identity = user)
        r = subprocess.run([MQIM, "--host", "127.0.0.1", "--port", str(self.env.psk_port),
                            "--tls-psk", self.env.psk["alice"], "--user", "alice", "--device", "psk",
                            "--state-dir", os.path.join(self.env.dir, "dev-alice-psk"),
                            "send", "bob", "keyed"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = self.mqim("bob", "tab", "listen", 1, tls_ca=ca)
        self.assertEqual(self.messages(r.stdout), [("3", "alice", "bob", "keyed")])
        # a wrong key: no connection, the message stays queued
        r = subprocess.run([MQIM, "--host", "127.0.0.1", "--port", str(self.env.psk_port), "--timeout", "1500",
                            "--tls-psk", "00" * 16, "--user", "alice", "--device", "psk2",
                            "--state-dir", os.path.join(self.env.dir, "dev-alice-psk2"),
                            "send", "bob", "wrong key"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 13, r.stdout + r.stderr)  # TLS handshake failed; stays queued
        self.assertIn("1 message stays queued", r.stderr)
        # a broker whose certificate does not chain to the CA we trust: no
        # connection at all, the message stays queued
        other = os.path.join(self.env.dir, "other-pki")
        subprocess.run([os.path.join(os.environ.get("MQIM_SOURCE_DIR", "."), "scripts", "pki"), other], check=True)
        r = self.mqim("alice", "laptop", "send", "bob", "must not leave", timeout_ms=2000,
                      tls_ca=os.path.join(other, "ca.crt"))
        self.assertEqual(r.returncode, 12, r.stdout + r.stderr)  # TLS verification failed; stays queued
        self.assertIn("1 message stays queued", r.stderr)
        r = self.mqim("bob", "tab", "listen", 1, timeout_ms=1500, tls_ca=ca)
        self.assertEqual(self.messages(r.stdout), [])


if __name__ == "__main__":
    unittest.main()
