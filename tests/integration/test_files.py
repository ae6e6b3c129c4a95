"""Files through the real Mosquitto and gateway with the `mqim` CLI (the
device library's file_transfer.h): a file of several MB uploaded in 1 KiB
chunks, the sender killed with SIGKILL mid-upload and resumed; the recipient
fetches it chunk by chunk, is killed mid-download and resumes from its
partial file, then loses its link mid-download (a proxy the test controls
cuts it); the bytes arrive intact
(SHA-256 end to end). Others cannot fetch it; the size limit rejects with a
reason."""
import hashlib
import os
import re
import signal
import subprocess
import time
import unittest

from harness import EnvTest, LinkProxy

SIZE = 3 * 1024 * 1024 + 123  # not a multiple of the chunk size


class Files(EnvTest):
    GATEWAY_ARGS = ["--file-max-mb", "5"]

    def kill_at(self, cmd, at):
        """Run cmd, SIGKILL it once it reports `at` bytes moved (its progress
        lines); returns the bytes it had reported."""
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        moved, seen = 0, []
        try:
            for line in p.stdout:
                seen.append(line)
                m = re.match(r"progress (\d+)/\d+$", line.strip())
                if m and int(m.group(1)) >= at:
                    moved = int(m.group(1))
                    break
            self.assertTrue(moved, "no progress to %d: %s" % (at, "".join(seen)))
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait(10)
        return moved

    def test_large_file_survives_kills_and_a_lost_link(self):
        src = os.path.join(self.env.dir, "camera.bin")
        data = os.urandom(SIZE)
        with open(src, "wb") as f:
            f.write(data)
        want = hashlib.sha256(data).hexdigest()
        # upload, killed once the gateway holds 1 MB
        moved = self.kill_at(self.env.mqim_cmd("alice", "cam", "send-file", "bob", src, "application/octet-stream"),
                             1 << 20)
        r = self.env.mqim("alice", "cam", "send-file", "bob", src, "application/octet-stream", timeout_ms=60000)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        m = re.search(r"(?m)^resuming upload at (\d+) bytes$", r.stdout)
        self.assertTrue(m, r.stdout)
        self.assertTrue(moved <= int(m.group(1)) < SIZE, "%d then %s" % (moved, m.group(1)))
        self.assertRegex(r.stdout, r"(?m)^uploaded camera\.bin \(%d bytes\) file=\S+$" % SIZE)
        self.assertRegex(r.stdout, r"(?m)^sent \S+ seq=\d+")

        # bob's device gets the announcement, with the sender's device
        r = self.env.mqim("bob", "tab", "listen", 1)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        m = re.search(r"(?m)^\[\d+\] alice/cam -> bob: file camera\.bin \(%d bytes, application/octet-stream\) "
                      r"id=(\S+)$" % SIZE, r.stdout)
        self.assertTrue(m, r.stdout)
        file_id = m.group(1)

        # carol got no message naming it: not found for her
        r = self.env.mqim("carol", "pc", "get-file", file_id, os.path.join(self.env.dir, "carol.bin"))
        self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
        self.assertIn("not_found", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.env.dir, "carol.bin.part")))  # nothing left behind

        # download, killed once about 1 MB is written, resumed from the partial file
        out = os.path.join(self.env.dir, "bob-camera.bin")
        part = out + ".part"
        moved = self.kill_at(self.env.mqim_cmd("bob", "tab", "get-file", file_id, out), 1 << 20)
        held = os.path.getsize(part)
        self.assertGreaterEqual(held, moved)
        proxy = LinkProxy(self.env.port)
        self.addCleanup(proxy.close)
        p = subprocess.Popen(self.env.mqim_cmd("bob", "tab", "get-file", file_id, out, timeout_ms=60000,
                                               port=proxy.port),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # the link drops mid-download: the broker restarts
        lines = []
        for line in p.stdout:  # the link is cut once 2 MB are here
            lines.append(line)
            if re.match(r"progress (\d+)/", line) and int(line.split()[1].split("/")[0]) >= 2 << 20:
                break
        self.assertIsNone(p.poll(), "download finished before the cut: %s" % "".join(lines))
        proxy.cut()
        text = "".join(lines) + p.communicate(timeout=90)[0]
        self.assertEqual(p.returncode, 0, text)
        m = re.search(r"(?m)^resuming at (\d+) bytes$", text)
        self.assertTrue(m and int(m.group(1)) == held >= 1 << 20, "held %d: %s" % (held, text))
        self.assertIn("saved %s (%d bytes, sha256 %s ok)" % (out, SIZE, want), text)
        with open(out, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), want)
        self.assertFalse(os.path.exists(part))
        self.assertGreaterEqual(proxy.connections, 2)  # it reconnected after the cut

    def test_limits_and_refusals(self):
        big = os.path.join(self.env.dir, "big.bin")
        with open(big, "wb") as f:
            f.write(b"\0" * (5 * 1024 * 1024 + 1))
        r = self.env.mqim("alice", "cam", "send-file", "bob", big)
        self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
        self.assertIn("file_too_large", r.stderr)
        # a file message naming no upload of the sender's is rejected with a reason
        a = self.env.client("alice")
        a.dm("bob", '{"id":"f1","type":"file","file":{"id":"01NOSUCHFILE"}}')
        rej = a.expect("in/ack", lambda p: p.get("status") == "rejected" and p.get("id") == "f1")[0]
        self.assertEqual(rej["code"], "not_found")
        self.assertIn("01NOSUCHFILE", rej["reason"])
        # a small file to a group: every member may fetch it
        a.pub("im/u/alice/out/ctl", '{"op":"group_create","group":"crew","members":["bob","carol"]}')
        a.expect("in/res", lambda p: p.get("op") == "group_create" and p.get("ok"))
        small = os.path.join(self.env.dir, "note.txt")
        with open(small, "w") as f:
            f.write("meeting at 10\n" * 200)
        r = self.env.mqim("alice", "cam", "send-file", "--group", "crew", small, "text/plain")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = self.env.mqim("carol", "pc", "listen", 2)  # the group's creation, then the file
        m = re.search(r"(?m)^\[\d+\] alice/cam -> #crew: file note\.txt \(2800 bytes, text/plain\) id=(\S+)$",
                      r.stdout)
        self.assertTrue(m, r.stdout)
        out = os.path.join(self.env.dir, "carol-note.txt")
        r = self.env.mqim("carol", "pc", "get-file", m.group(1), out)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(out) as f:
            self.assertEqual(f.read(), "meeting at 10\n" * 200)


if __name__ == "__main__":
    unittest.main()
