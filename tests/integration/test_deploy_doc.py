"""docs/deploy.md, "The recommended deployment: the mqim_auth plugin, step
by step", followed literally: every `sh` block of that section runs in
order (bash, set -e), with the test's own values in the first block (a free
port, a temporary directory, the build's binaries). In place of the steps
the section leaves to the system, the test starts Mosquitto as root with
`user mosquitto` (the broker then runs as `mosquitto`, as Debian's service
does) and `include_dir` of the section's conf.d, and runs the gateway as
root. Then it checks what issue 18's first bug was: the broker, as
`mosquitto`, reads the users `init` and every later `user add` wrote."""
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import GATEWAY, MOSQUITTO, SRC, free_port, wait_until  # noqa: E402

SECTION = "## The recommended deployment: the mqim_auth plugin, step by step"


def doc_blocks():
    text = open(os.path.join(SRC, "docs", "deploy.md")).read()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return re.findall(r"^```sh\n(.*?)^```$", text[start:end], re.S | re.M)


def have_mosquitto_user():
    try:
        pwd.getpwnam("mosquitto")
        return True
    except KeyError:
        return False


@unittest.skipUnless(os.geteuid() == 0 and have_mosquitto_user() and os.environ.get("MQIM_AUTH_PLUGIN"),
                     "needs root, the mosquitto user and the plugin (MQIM_AUTH_PLUGIN)")
class DeployByTheDoc(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mqim-deploy-")
        os.chmod(self.dir, 0o755)  # the broker, as mosquitto, walks to the auth database
        self.procs = []

    def tearDown(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
        if not getattr(self._outcome, "success", True):
            for name in ("broker.log", "gateway.log"):
                try:
                    print("---- %s ----\n%s" % (name, open(os.path.join(self.dir, name)).read()[-4000:]))
                except OSError:
                    pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def bash(self, script):
        env = dict(os.environ, PATH="%s:%s:%s" % (os.path.dirname(GATEWAY),
                                                 os.path.dirname(os.environ.get("MQIM_CLI", "/nonexistent")),
                                                 os.environ["PATH"]))
        r = subprocess.run(["bash", "-c", "set -euo pipefail\n" + script], capture_output=True, text=True,
                           timeout=120, env=env)
        self.assertEqual(r.returncode, 0, "a step of docs/deploy.md failed:\n%s\n%s%s" % (script, r.stdout, r.stderr))
        return r.stdout

    def test_the_documented_steps(self):
        blocks = doc_blocks()
        self.assertGreaterEqual(len(blocks), 6, "the section's sh blocks")
        d, port = self.dir, free_port()
        names = re.findall(r"^(\w+)=", blocks[0], re.M)
        self.assertEqual(names, ["MQIM_PORT", "MQIM_ETC", "MQIM_VAR", "MQIM_AUTH", "MQIM_PLUGIN", "MOSQUITTO_CONF_D"])
        ours = ("MQIM_PORT=%d\nMQIM_ETC=%s/etc\nMQIM_VAR=%s/var\nMQIM_AUTH=%s/auth\nMQIM_PLUGIN=%s\n"
                "MOSQUITTO_CONF_D=%s/conf.d\n" % (port, d, d, d, os.environ["MQIM_AUTH_PLUGIN"], d))
        os.makedirs(os.path.join(d, "conf.d"))
        saved = os.path.join(d, "passwords.sh")
        # every block but the last (the chat), as one script
        self.bash(ours + "\n".join(blocks[1:-1]) + "\ndeclare -p ALICE_PW BOB_PW > %s\n" % saved)

        # What `systemctl restart mosquitto` does on Debian: the broker as root,
        # dropping to the mosquitto user, with the section's conf.d.
        with open(os.path.join(d, "mosquitto.conf"), "w") as f:
            f.write("user mosquitto\npersistence false\nlog_dest stderr\nlog_type all\n"
                    "include_dir %s/conf.d\n" % d)
        log = open(os.path.join(d, "broker.log"), "w")
        self.procs.append(subprocess.Popen([MOSQUITTO, "-c", os.path.join(d, "mosquitto.conf")],
                                           stdout=log, stderr=log))
        wait_until(lambda: "running" in open(os.path.join(d, "broker.log")).read(), 10, "the broker")
        broker_pid = self.procs[-1].pid
        wait_until(lambda: open("/proc/%d/status" % broker_pid).read().count("\nUid:\t%d\t" %
                                                                         pwd.getpwnam("mosquitto").pw_uid), 5,
                   "the broker to run as mosquitto")
        glog = open(os.path.join(d, "gateway.log"), "w")
        self.procs.append(subprocess.Popen([GATEWAY, "-c", os.path.join(d, "etc", "gateway.conf"), "run"],
                                           stdout=glog, stderr=glog))
        wait_until(lambda: "subscribed" in open(os.path.join(d, "gateway.log")).read(), 20, "the gateway")

        # the chat block: alice sends, bob's device gets it
        out = self.bash(ours + "source %s\n" % saved + blocks[-1])
        self.assertIn("alice/phone -> bob: hello through the plugin", out)

        # the files as the broker's user sees them, and a user added now
        mos = ["runuser", "-u", "mosquitto", "--"]
        for path, test in (("auth/data.mdb", "-r"), ("auth/lock.mdb", "-w")):
            r = subprocess.run(mos + ["test", test, os.path.join(d, path)])
            self.assertEqual(r.returncode, 0, "mosquitto cannot %s %s" % (test, path))
        t0 = time.time()
        carol = self.bash(ours + 'mqim-gateway -c "$MQIM_ETC/gateway.conf" user add carol --random').strip()
        for path, test in (("auth/data.mdb", "-r"), ("auth/lock.mdb", "-w")):
            r = subprocess.run(mos + ["test", test, os.path.join(d, path)])
            self.assertEqual(r.returncode, 0, "after user add, mosquitto cannot %s %s" % (test, path))
        r = subprocess.run(["mosquitto_pub", "-p", str(port), "-u", "carol", "-P", carol, "-i", "carol.shell",
                            "-q", "1", "-t", "im/u/carol/out/dm/alice", "-m", "hi"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertLess(time.time() - t0, 10)
        self.assertNotIn("Unable to open", open(os.path.join(d, "broker.log")).read())


if __name__ == "__main__":
    unittest.main()
