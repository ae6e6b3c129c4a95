"""The flash outbox on the Cortex-M4 board under QEMU, with power cuts.

The firmware (boards/qemu-mps2-an386/main_flash.c) keeps its outbox in the
flash outbox over a host file (semihosting; each program unit and each
64 bytes of an erase is one write, so a kill lands between them). Every
boot queues a few messages ("flash bN mI") while it connects through the
real broker and gateway and delivers whatever the outbox holds; QEMU is
killed (SIGKILL: a power cut) at a random moment, again and again. Then a
last boot runs until the outbox is empty. A Linux client subscribed to the
peer's inbox counts what the gateway delivered, by message id and text:
every message the firmware printed as queued (mqim_client_send returned
MQIM_OK) arrives exactly once; a message whose send was cut may arrive, at
most once; nothing else arrives.

MQIM_FLASH_CUTS sets the number of power cuts: 50 in `make test` (about a
second per boot on a loaded machine), 300 in `make faults`; MQIM_FLASH_SEED
repeats a run."""
import os
import random
import re
import subprocess
import threading
import time
import unittest

from harness import LinkProxy, Env, wait_until

FIRMWARE = os.environ.get("MQIM_FLASH_FIRMWARE")
MATERIAL = os.environ.get("MQIM_FW_MATERIAL")
CUTS = int(os.environ.get("MQIM_FLASH_CUTS", "50"))
SEED = int(os.environ.get("MQIM_FLASH_SEED", str(random.randrange(1 << 30))))
QUEUE_PER_BOOT = 3
TEXT = re.compile(r"^flash b(\d+) m(\d+)$")


class FlashFirmware(unittest.TestCase):
    def setUp(self):
        self.assertTrue(FIRMWARE and MATERIAL, "MQIM_FLASH_FIRMWARE, MQIM_FW_MATERIAL not set")
        with open(os.path.join(MATERIAL, "mcu.password")) as f:
            pw = f.read().strip()
        self.env = Env(users=("mcu", "linux"), tls=True, pki_dir=MATERIAL, fixed_passwords={"mcu": pw})
        self.env.__enter__()
        self.proxy = LinkProxy(self.env.port)  # plain MQTT: the test is about the flash
        self.qemu = None

    def tearDown(self):
        if self.qemu is not None and self.qemu.poll() is None:
            self.qemu.kill()
            self.qemu.wait()
        self.proxy.close()
        self.env.__exit__(None, None, None)

    def boot(self, n, queue, out):
        """Start QEMU; its console goes into out (a list of lines). Returns
        the process, an event set once the firmware printed its boot line,
        one set once it connected, and the reader thread."""
        booted, connected = threading.Event(), threading.Event()
        self.qemu = subprocess.Popen(
            ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none",
             "-semihosting-config", "enable=on,target=native", "-kernel", FIRMWARE,
             "-append", "boot=%d queue=%d" % (n, queue), "-serial", "stdio",
             "-serial", "tcp:127.0.0.1:%d,nodelay=on,reconnect=1" % self.proxy.port],
            cwd=self.env.dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def read(pipe):
            for raw in iter(pipe.readline, b""):
                line = raw.decode("utf-8", "replace")
                out.append(line)
                if line.startswith("boot %d:" % n):
                    booted.set()
                elif line.startswith("connected"):
                    connected.set()
            pipe.close()
        t = threading.Thread(target=read, args=(self.qemu.stdout,), daemon=True)
        t.start()
        return self.qemu, booted, connected, t

    def test_power_cuts(self):
        rng = random.Random(SEED)
        print("flash firmware: %d power cuts, seed %d (MQIM_FLASH_SEED repeats it)" % (CUTS, SEED))
        inbox = self.env.client("linux")
        out = []
        told, cuts, boots, finished = set(), 0, 0, 0
        started = time.monotonic()
        while cuts < CUTS:
            boots += 1
            out.append("==== boot %d\n" % boots)
            q, booted, connected, reader = self.boot(boots, QUEUE_PER_BOOT, out)
            self.assertTrue(booted.wait(60), "boot %d did not start:\n%s" % (boots, "".join(out[-20:])))
            # The power cut, at a random moment: half of them counted from
            # the start, half from the connection (while the outbox is
            # replayed, acks remove entries and new messages are queued).
            if rng.random() < 0.5:
                connected.wait(20)
            try:
                rc = q.wait(rng.uniform(0.0, 0.6))
                finished += 1
                self.assertEqual(rc, 0, "boot %d exit %s:\n%s" % (boots, rc, "".join(out[-20:])))
            except subprocess.TimeoutExpired:
                q.kill()
                q.wait()
                cuts += 1
            reader.join(10)
        # the last boot: nothing new, deliver everything
        boots += 1
        out.append("==== final boot %d\n" % boots)
        q, booted, connected, reader = self.boot(boots, 0, out)
        rc = q.wait(120)
        reader.join(10)
        elapsed = time.monotonic() - started
        out = "".join(out)
        with open(os.path.join(self.env.dir, "qemu-flash.log"), "w") as f:
            f.write(out)
        self.assertEqual(rc, 0, "final boot exit %s:\n%s" % (rc, out[-3000:]))
        for m in re.finditer(r"queued (flash b\d+ m\d+) ok\r?\n", out):
            told.add(m.group(1))
        # every queued message reaches the peer; the gateway may still be routing the last ones
        bodies = lambda: [(p.get("id"), p.get("body")) for p in inbox.matching()
                          if isinstance(p, dict) and str(p.get("from", "")).split("/")[0] == "mcu" and isinstance(p.get("body"), str)]
        wait_until(lambda: told <= {b for _, b in bodies()}, 60,
                   "every queued message delivered; missing %s" % sorted(told - {b for _, b in bodies()})[:10])
        time.sleep(1.0)  # late duplicates would show up now
        got = bodies()
        by_text = {}
        for mid, body in got:
            by_text.setdefault(body, []).append(mid)
        dups = {b: ids for b, ids in by_text.items() if len(ids) > 1}
        strange = [b for b in by_text if not TEXT.match(b)]
        lost = told - set(by_text)
        extra = set(by_text) - told  # sends that were cut: allowed, once
        self.assertFalse(strange, "garbage delivered: %r" % strange[:5])
        self.assertFalse(dups, "delivered twice: %r" % dict(list(dups.items())[:5]))
        self.assertFalse(lost, "lost: %r" % sorted(lost)[:10])
        for b in extra:
            boot_no, i = map(int, TEXT.match(b).groups())
            self.assertTrue(1 <= boot_no <= boots and 1 <= i <= QUEUE_PER_BOOT, b)
        self.assertGreaterEqual(cuts, CUTS)
        backlog = [int(n) for n in re.findall(r"^boot \d+: outbox (\d+) entries", out, re.M)]
        connected = len(re.findall(r"^connected\r?$", out, re.M))
        acks = len(re.findall(r"^sent\r?$", out, re.M))
        started_pages = max([0] + [int(n) for n in re.findall(r"pages started (\d+)", out)])
        print("flash firmware: %d boots, %d power cuts, %d ran to the end, %d connected; outbox at boot: up to %d "
              "entries, %d pages (of 8) started; %d messages queued, %d entries removed on `sent` acks, %d delivered "
              "exactly once (%d of them cut mid-send), 0 lost, 0 duplicated; %.0f s"
              % (boots, cuts, finished, connected, max(backlog), started_pages, len(told), acks, len(by_text),
                 len(extra), elapsed))
        self.assertGreater(connected, CUTS // 4, "too few boots got to deliver: the cuts were not mid-stream")
        report = os.environ.get("MQIM_FAULTS_REPORT")
        if report:
            with open(report, "a") as f:
                f.write("FAULTS flash_outbox cuts=%d boots=%d queued=%d delivered=%d lost=0 duplicated=0 "
                        "seed=%d seconds=%.0f\n" % (cuts, boots, len(told), len(by_text), SEED, elapsed))


if __name__ == "__main__":
    unittest.main()
