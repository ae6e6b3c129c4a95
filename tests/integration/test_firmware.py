"""The firmware under QEMU, against the real Mosquitto (TLS listener) and
gateway, talking to a Linux `mqim` device: the Cortex-M4 board
(boards/qemu-mps2-an386, MQIM_FW_BOARD=mps2-an386, the default) or the
RV32 board (boards/qemu-virt-rv32, MQIM_FW_BOARD=virt-rv32); both run
boards/common/firmware_main.c. The firmware's broker UART is a TCP client
of a proxy in front of the broker's TLS port, so a test can cut the link
like a radio losing signal.

Run 1: the firmware connects over TLS, announces presence, sends five
messages to the Linux device, gets its reply, sends receipts and exits 0
through semihosting; the Linux side sees the messages once each, the
delivered ack for its reply, and the firmware's presence go online and
then offline. Run 2: the link is cut after the second message; the
firmware notices, reconnects, and its RAM outbox resends what was not
acknowledged: all five arrive, exactly once."""
import os
import re
import signal
import socket
import subprocess
import threading
import time
import unittest

from harness import LinkProxy, Env, free_port, wait_until

FIRMWARE = os.environ.get("MQIM_FIRMWARE")
MATERIAL = os.environ.get("MQIM_FW_MATERIAL")
MQIM = os.environ.get("MQIM_CLI")
BOARD = os.environ.get("MQIM_FW_BOARD", "mps2-an386")


def qemu_argv(firmware, link_port):
    """QEMU for the board: the broker link is a TCP client (nodelay: no
    40 ms per packet; reconnect: the link comes back after a drop)."""
    link = "tcp:127.0.0.1:%d,nodelay=on,reconnect=1" % link_port
    if BOARD == "virt-rv32":
        # one UART (the link); the console is semihosting; zkr: the seed CSR
        return ["qemu-system-riscv32", "-M", "virt", "-cpu", "rv32,zkr=true", "-bios", "none",
                "-nographic", "-monitor", "none", "-semihosting-config", "enable=on,target=native",
                "-kernel", firmware, "-serial", link]
    return ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none",
            "-semihosting-config", "enable=on,target=native", "-kernel", firmware,
            "-serial", "stdio", "-serial", link]


class Firmware(unittest.TestCase):
    def setUp(self):
        self.assertTrue(FIRMWARE and MATERIAL and MQIM, "MQIM_FIRMWARE, MQIM_FW_MATERIAL, MQIM_CLI not set")
        with open(os.path.join(MATERIAL, "mcu.password")) as f:
            pw = f.read().strip()
        self.env = Env(users=("mcu", "linux"), tls=True, pki_dir=MATERIAL, fixed_passwords={"mcu": pw})
        self.env.__enter__()
        self.proxy = LinkProxy(self.env.tls_port)
        self.qemu = None

    def tearDown(self):
        if self.qemu is not None and self.qemu.poll() is None:
            # the whole group: killing only `timeout` would leave QEMU
            # running (and reconnecting) after a failed test
            os.killpg(self.qemu.pid, signal.SIGKILL)
            self.qemu.wait()
        self.proxy.close()
        self.env.__exit__(None, None, None)

    def linux(self, device, *args, **kw):
        state = os.path.join(self.env.dir, "dev-linux-%s" % device)
        return subprocess.Popen([MQIM, "--port", str(self.env.port), "--user", "linux",
                                 "--password", self.env.passwords["linux"], "--device", device,
                                 "--state-dir", state, "--timeout", "120000"] + [str(a) for a in args],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)

    def start_qemu(self):
        log = open(os.path.join(self.env.dir, "qemu.log"), "w")
        self.qemu = subprocess.Popen(["timeout", "150"] + qemu_argv(FIRMWARE, self.proxy.port),
                                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        return os.path.join(self.env.dir, "qemu.log")

    def run_scenario(self, cut_after=None):
        presence = self.env.client("linux", subs=["im/presence/mcu"])
        watch = self.env.client("linux")
        listener = self.linux("laptop", "listen", 6)  # five from the firmware, the echo of the reply
        lines = []
        seen = threading.Event()

        def read():
            for line in listener.stdout:
                lines.append(line.rstrip("\n"))
                m = re.match(r"^\[\d+\] mcu(?:/\S+)? -> linux: hello from qemu #(\d)$", line)
                if m and m.group(1) == "1":
                    seen.set()
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        time.sleep(0.5)  # the listener subscribes first
        log = self.start_qemu()
        self.assertTrue(seen.wait(90), "no message from the firmware; qemu log:\n" + self.tail(log))
        reply = self.linux("phone", "send", "mcu", "pong from linux")
        self.assertEqual(reply.wait(60), 0, reply.stdout.read())
        if cut_after is not None:
            wait_until(lambda: sum(1 for l in lines if re.match(r"^\[\d+\] mcu(?:/\S+)? -> linux", l)) >= cut_after, 60,
                       "%d messages before the cut" % cut_after)
            self.proxy.cut()
        try:
            rc = self.qemu.wait(120)
        except subprocess.TimeoutExpired:
            rc = None
        self.assertEqual(rc, 0, "firmware exit %s; qemu log:\n%s" % (rc, self.tail(log)))
        self.assertEqual(listener.wait(60), 0, "\n".join(lines))
        reader.join(5)
        got = [l for l in lines if re.match(r"^\[\d+\] mcu(?:/\S+)? -> linux: ", l)]
        self.assertEqual([l.split(": ", 1)[1] for l in got], ["hello from qemu #%d" % i for i in range(1, 6)],
                         "\n".join(lines))
        # the firmware's delivered receipt for the reply reached the Linux side
        watch.expect("in/ack", lambda p: isinstance(p, dict) and p.get("status") == "delivered"
                     and p.get("by") == "mcu", timeout=20)
        # presence: online while it ran, offline after its clean stop
        states = lambda: [p.get("state") for p in presence.matching("im/presence/mcu")
                          if isinstance(p, dict)]
        wait_until(lambda: "online" in states() and states()[-1] == "offline", 20,
                   "mcu online then offline, got %s" % states())
        with open(log) as f:
            out = f.read()
        self.assertIn("mqim firmware on %s:" % BOARD, out)
        if BOARD == "mps2-an386":
            self.assertIn("WARNING: entropy is NOT random", out)  # no TRNG on QEMU's mps2
        else:
            self.assertNotIn("NOT random", out)  # the Zkr seed CSR: the host's randomness
        m = re.search(r"stack high-water: (\d+) bytes", out)
        self.assertTrue(m, out)
        print("firmware stack high-water: %s bytes; %s" % (m.group(1), out.splitlines()[0]))
        pool = re.search(r"TLS pool high-water: (\d+) bytes", out)
        self.assertTrue(pool, out)
        # the main loop sleeps (WFI) between events instead of spinning
        asleep = re.search(r"asleep: (\d+) of (\d+) ms", out)
        self.assertTrue(asleep, out)
        print("firmware asleep (WFI): %s of %s ms" % asleep.groups())
        self.assertGreater(int(asleep.group(1)), int(asleep.group(2)) // 2, out)
        # for `make size`: the highest marks of the runs, next to the firmware
        for name, value in (("stack-high-water.txt", m.group(1)), ("tls-pool-high-water.txt", pool.group(1))):
            mark = os.path.join(os.path.dirname(FIRMWARE), name)
            try:
                with open(mark) as f:
                    old = int(f.read().strip() or 0)
            except (OSError, ValueError):
                old = 0
            with open(mark, "w") as f:
                f.write("%d\n" % max(old, int(value)))
        return out

    @staticmethod
    def tail(path, n=40):
        try:
            with open(path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def test_chat_over_tls(self):
        out = self.run_scenario()
        self.assertIn("done: ", out)
        self.assertEqual(self.proxy.connections, 1, out)  # one TLS session, no reconnects

    def test_link_lost_mid_stream(self):
        out = self.run_scenario(cut_after=2)
        self.assertIn("link lost", out)
        self.assertGreaterEqual(self.proxy.connections, 2, out)


if __name__ == "__main__":
    unittest.main()
