"""The `mqim` command as a shell user meets it (issue 20): conventions
(--help, --version, mosquitto's short options, one exit-code table shared
with mqim-gateway, the man pages), output for people and for scripts
(--json, local times, quiet first sync, consistent errors), the chat on a
pseudo-terminal (pexpect) and on a pipe, and bots (`mqim bot --exec`).
A real Mosquitto and the real gateway, as everywhere (harness.py)."""
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import pexpect

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Env, GATEWAY, SRC, wait_until  # noqa: E402

MQIM = os.environ.get("MQIM_CLI")
HHMM = r"\d\d:\d\d"


def read_text(*parts):
    with open(os.path.join(SRC, *parts), encoding="utf-8") as f:
        return f.read()


def run(argv, **kw):
    return subprocess.run([MQIM] + [str(a) for a in argv], capture_output=True, text=True, timeout=60, **kw)


class Conventions(unittest.TestCase):
    """No broker needed: help, version, usage errors, the documents."""

    def test_help_version_usage(self):
        r = run(["--help"])
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        commands = re.findall(r"(?m)^  ([a-z-]+) ", r.stdout.split("options")[0])
        for cmd in ("send", "flush", "listen", "read", "chat", "history", "presence", "chats", "groups",
                    "group", "send-file", "get-file", "keys", "bot"):
            self.assertIn(cmd, commands)
            h = run([cmd, "--help"])
            self.assertEqual(h.returncode, 0, cmd)
            self.assertTrue(h.stdout.startswith("usage: mqim [OPTIONS] %s" % cmd), h.stdout)
        for opt in ("--host HOST, -h", "--port PORT, -p", "--user USER, -u", "--password PASSWORD, -P",
                    "--device DEVICE, -i", "--config FILE, -c", "--password-file", "--tls-ca FILE, --cafile",
                    "--tls-cert FILE, --cert", "--tls-key FILE, --key", "--tls-psk HEX, --psk", "--tls-server-name",
                    "--tls-psk-identity", "--json", "--e2e", "--keep-trying", "--refuse-changed-keys",
                    "--timeout", "--wait SECONDS, -W", "--state-dir", "--version"):
            self.assertIn(opt, r.stdout)
        version = re.search(r"#define MQIM_VERSION_MAJOR (\d+)\n#define MQIM_VERSION_MINOR (\d+)\n"
                            r"#define MQIM_VERSION_PATCH (\d+)",
                            read_text("common/include/mqim/version.h")).groups()
        r = run(["--version"])
        self.assertEqual((r.returncode, r.stdout), (0, "mqim %s\n" % ".".join(version)))
        r = subprocess.run([GATEWAY, "--version"], capture_output=True, text=True)
        self.assertEqual((r.returncode, r.stdout), (0, "mqim-gateway %s\n" % ".".join(version)))
        # usage errors: 2 in both programs, the reason on stderr
        for argv, words in ((["--bogus"], "unknown option --bogus"), (["-u", "a", "frob"], "unknown command"),
                            (["-u", "a", "send", "bob"], "wrong arguments for send"), ([], "usage: mqim"),
                            (["-u", "a", "--port"], "--port needs a value"), (["-h"], "help is --help"), (["send", "b", "t"], "--user")):
            r = run(argv, env=dict(os.environ, HOME=tempfile.gettempdir(), XDG_CONFIG_HOME=""))
            self.assertEqual(r.returncode, 2, argv)
            self.assertIn(words, r.stderr)
            self.assertEqual(r.stdout, "")
        r = subprocess.run([GATEWAY, "--bogus", "x"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        r = subprocess.run([GATEWAY, "-c", "/nonexistent/x.conf", "frobnicate"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)

    def test_exit_codes_documented_once(self):
        """The header's table is the README's and both man pages'."""
        header = read_text("common/include/mqim/exit_code.h")
        codes = [int(n) for n in re.findall(r"MQIM_EXIT_\w+ = (\d+)", header)]
        self.assertEqual(codes, list(range(14)))
        readme = read_text("README.md")
        self.assertEqual([int(n) for n in re.findall(r"(?m)^\| (\d+) \| ", readme.split("## Exit status")[1])[:14]],
                         codes)
        for page in ("mqim.1", "mqim-gateway.8"):
            text = read_text("docs/man", page)
            section = text.split(".SH EXIT STATUS")[1].split(".SH ")[0]
            self.assertEqual([int(n) for n in re.findall(r"(?m)^\.IP (\d+)$", section)], codes, page)

    def test_man_pages_complete(self):
        """Every option and command of --help is in the man page."""
        page = read_text("docs/man/mqim.1").replace("\\-", "-")
        usage = run(["--help"]).stdout
        for opt in re.findall(r"(?m)^  (--[a-z-]+)", usage):
            self.assertIn(opt, page)
        for alias in re.findall(r", (-[A-Za-z]|--[a-z-]+) ", usage):
            self.assertIn(alias, page)
        for cmd in re.findall(r"(?m)^  ([a-z-]+) ", usage.split("options")[0]):
            self.assertIn(".B %s" % cmd, page)
        gw = read_text("docs/man/mqim-gateway.8").replace("\\-", "-")
        gusage = subprocess.run([GATEWAY, "--help"], capture_output=True, text=True).stdout
        for cmd in set(re.findall(r"(?m)^  ([a-z-]+)", gusage)) | {"status", "online", "check", "log-level"}:
            self.assertIn(".B %s" % cmd, gw)
        for opt in ("--config", "--help", "--version", "-c"):
            self.assertIn(opt, gw)


ENV = []  # one broker and gateway for every test of the module (each Env costs seconds)


def setUpModule():
    ENV.append(Env(users=("alice", "bob", "carol", "dave", "botty", "sensor")).__enter__())


def tearDownModule():
    ENV.pop().__exit__(None, None, None)


class CliTest(unittest.TestCase):
    """The tests that need the broker and the gateway (each its own devices)."""

    @property
    def env(self):
        return ENV[0]

    def mqim_json(self, user, device, *args):
        argv = self.env.mqim_cmd(user, device, *args)
        return subprocess.run(argv[:1] + ["--json"] + argv[1:], capture_output=True, text=True, timeout=60)

    def mqim(self, user, device, *args, timeout_ms=10000, **kw):
        return subprocess.run(self.env.mqim_cmd(user, device, *args, timeout_ms=timeout_ms), capture_output=True,
                              text=True, timeout=60, **kw)


class Output(CliTest):
    def test_short_options_and_errors(self):
        env = self.env
        r = run(["-h", "127.0.0.1", "-p", env.port, "-u", "alice", "-P", env.passwords["alice"], "-i", "short",
                 "--state-dir", os.path.join(env.dir, "short"), "send", "bob", "via short options"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^sent [0-9a-f]{32} seq=\d+\n$")
        # a wrong password: 5 as mosquitto_pub, said on stderr
        r = run(["-p", env.port, "-u", "alice", "-P", "wrong", "-i", "bad", "--state-dir",
                 os.path.join(env.dir, "bad"), "send", "bob", "x"])
        self.assertEqual(r.returncode, 5, r.stdout + r.stderr)
        self.assertIn("not authorised", r.stderr)
        # an unknown peer: the same answer for send and history; a group I am not in
        for args in (("send", "nobody", "hi"), ("history", "nobody")):
            r = self.mqim("alice", "phone", *args)
            self.assertEqual(r.returncode, 4, args)
            self.assertIn("unknown_peer", r.stdout)
            self.assertIn("no such user: nobody", r.stderr)
        r = self.mqim("alice", "phone", "group", "info", "nope")
        self.assertEqual(r.returncode, 4)
        self.assertIn("not_member (alice is not a member of nope (or there is no such group))", r.stdout)

    def test_quiet_first_sync_json_and_times(self):
        for i in range(3):
            self.assertEqual(self.mqim("bob", "tab", "send", "carol", "old %d" % i).returncode, 0)
        # carol's new device sends first: only "sent", no history dump
        r = self.mqim("carol", "newphone", "send", "bob", "hi bob")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^sent [0-9a-f]{32} seq=\d+\n$")
        self.assertEqual(self.mqim("carol", "newphone", "send", "bob", "as json").returncode, 0)
        # --json: one object per line, an event each (a device that synced: only the answer)
        self.assertEqual(self.mqim("carol", "js", "flush").returncode, 0)
        r = self.mqim_json("carol", "js", "history", "bob", 3)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = [json.loads(x) for x in r.stdout.splitlines()]
        self.assertEqual([(x["event"], x["body"]) for x in lines],
                         [("message", "old 2"), ("message", "hi bob"), ("message", "as json")])
        self.assertTrue(all(isinstance(x["ts"], (int, float)) and x["from"] for x in lines))
        self.assertEqual(self.mqim_json("carol", "js", "group", "create", "cg").returncode, 0)
        for user, cmd, event in (("carol", ["send", "bob", "j"], "sent"), ("carol", ["presence", "bob", "zed"],
                                 "presence"), ("carol", ["chats"], "chat"), ("bob", ["listen", "1"], "message"),
                                 ("carol", ["history", "nobody"], "error"), ("carol", ["keys"], "key"),
                                 ("carol", ["groups"], "group")):
            r = self.mqim_json(user, "js", *cmd)
            self.assertEqual(r.returncode, 4 if event == "error" else 0, (cmd, r.stderr))
            events = [json.loads(x)["event"] for x in r.stdout.splitlines()]
            self.assertIn(event, events, cmd)
        self.assertEqual(self.mqim("dave", "seen", "flush").returncode, 0)  # dave was online, now is not
        r = self.mqim("carol", "js", "presence", "dave", "zed")
        self.assertRegex(r.stdout, r"(?m)^dave offline, last seen (%s|\w{3} \d\d %s)$" % (HHMM, HHMM))
        self.assertIn("zed unknown", r.stdout)
        # on a terminal, local times
        child = pexpect.spawn(MQIM, self.env.mqim_cmd("carol", "js", "history", "bob", 2)[1:], encoding="utf-8",
                              timeout=20)
        child.expect(r"%s \[\d+\] carol -> bob: j" % HHMM)
        child.expect(pexpect.EOF)
        child = pexpect.spawn(MQIM, self.env.mqim_cmd("carol", "js", "chats")[1:], encoding="utf-8", timeout=20)
        child.expect(r"chat bob unread=\d+ \w+ last=\[\d+\] %s carol: j" % HHMM)
        child.expect(pexpect.EOF)

    def test_presence_said_once(self):
        """listen: a user's presence is printed when it changes, not again
        when another device of an online user comes and goes."""
        env = self.env
        watch = subprocess.Popen(env.mqim_cmd("carol", "watch", "listen"), stdout=subprocess.PIPE, text=True)
        online = subprocess.Popen(env.mqim_cmd("botty", "tab", "listen"), stdout=subprocess.DEVNULL)
        try:
            time.sleep(1.5)
            for _ in range(2):
                self.assertEqual(self.mqim("botty", "other", "flush").returncode, 0)
            time.sleep(1.0)
        finally:
            online.terminate()
            online.wait(10)
            time.sleep(1.0)
            watch.terminate()
            out = watch.communicate(timeout=10)[0]
        said = re.findall(r"(?m)^presence botty (\w+)$", out)
        self.assertEqual(said[-2:], ["online", "offline"], out)
        self.assertEqual(said.count("online"), 1, out)


class Chat(CliTest):
    def test_chat_on_a_terminal(self):
        """Prompt, marks updated in place, typing both ways, read receipts,
        /commands."""
        env = self.env
        bob = env.client("bob")
        chat = pexpect.spawn(MQIM, env.mqim_cmd("alice", "term", "chat", "bob")[1:], encoding="utf-8", timeout=20,
                             dimensions=(40, 160))
        chat.expect("/help for commands")
        chat.expect_exact("bob> ")
        time.sleep(1.0)  # connected
        chat.send("hel")
        bob.expect("in/msg", lambda p: isinstance(p, dict) and p.get("type") == "typing" and p.get("from") == "alice")
        chat.send("lo bob\r")
        chat.expect_exact("me: hello bob")
        msg = bob.expect("in/msg", lambda p: isinstance(p, dict) and p.get("body") == "hello bob")[0]
        # ✓ once stored: the line is rewritten in place (cursor up, the line, cursor down)
        chat.expect(r"\x1b\[\d+A\rme: hello bob \u2713\x1b\[K")
        bob.pub("im/u/bob/out/receipt", {"status": "delivered", "seqs": [msg["seq"]]})
        chat.expect(r"\x1b\[\d+A\rme: hello bob \u2713\u2713\x1b\[K")
        bob.pub("im/u/bob/out/receipt", {"status": "read", "seqs": [msg["seq"]]})
        chat.expect(r"\x1b\[\d+A\rme: hello bob \u2713\u2713 read\x1b\[K")
        # the peer types, then writes: shown, and marked read for the peer
        bob.pub("im/u/bob/out/dm/alice", {"type": "typing"}, qos=0)
        chat.expect_exact("(bob is typing)")
        bob.clear()
        bob.dm("alice", {"id": "b1", "body": "hi alice"})
        chat.expect(r"%s\x1b\[0m bob: hi alice" % HHMM)
        read = bob.expect("in/ack", lambda p: p.get("status") == "read" and p.get("by") == "alice")[0]
        self.assertEqual(read["id"], "b1")
        chat.send("/history 2\r")
        chat.expect(r"me: hello bob\r\n")
        chat.send("/help\r")
        chat.expect_exact("/group NAME")
        chat.send("/quit\r")
        chat.expect(pexpect.EOF)
        chat.close()
        self.assertEqual(chat.exitstatus, 0)

    def test_chat_on_a_pipe(self):
        """One line per message in; appended status lines out, no echo."""
        r = self.mqim("dave", "pipe", "chat", "carol", input="one\ntwo\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(re.findall(r"(?m)^(\w+) ", r.stdout), ["sent", "sent"], r.stdout)
        self.assertNotIn("dave/pipe -> carol", r.stdout)

    def test_send_file_progress_on_a_terminal(self):
        path = os.path.join(self.env.dir, "blob.bin")
        with open(path, "wb") as f:
            f.write(os.urandom(600 * 1024))
        child = pexpect.spawn(MQIM, self.env.mqim_cmd("alice", "files", "send-file", "bob", path)[1:],
                              encoding="utf-8", timeout=60)
        child.expect(r"\r\x1b\[K +\d+%  \d+ KB of 600 KB  [\d.]+ [KM]B/s  \d+ s left")
        child.expect(r"100%  600 KB of 600 KB")
        child.expect("uploaded blob.bin")
        child.expect(pexpect.EOF)
        child.close()
        self.assertEqual(child.exitstatus, 0)


# The bot's command: a shell script (it starts in a millisecond, so the
# timings hold on a loaded machine) that quotes the text it is given.
BOT = r'''text=$(cat)
case "$text" in
hang) sleep 60 & echo "$$ $!" > "$PIDS"; wait ;;
slow*) start=$(date +%s.%N); sleep 1.5; echo "$start $(date +%s.%N)" > "$RUNS/$MQIM_ID" ;;
esac
printf '%s from %s in %s (%s): %s\n' "$MQIM_USER" "$MQIM_FROM" "$MQIM_CHAT" "${MQIM_ID:+id}" "$text"
'''


class Bot(CliTest):
    def test_bot(self):
        env = self.env
        script = os.path.join(env.dir, "bot.py")
        pids = os.path.join(env.dir, "pids")
        with open(script, "w") as f:
            f.write(BOT)
        self.assertEqual(self.mqim("alice", "g", "group", "create", "ops", "botty").returncode, 0)
        argv = env.mqim_cmd("botty", "srv", "bot", "--allow", "alice", "bob", "carol", "--jobs", "4",
                            "--run-timeout", "4000", "--exec", "sh", script)
        bot = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, PIDS=pids, RUNS=env.dir))
        try:
            clients = {u: env.client(u) for u in ("alice", "bob", "carol", "dave")}
            time.sleep(1.5)  # the bot is connected
            # three users at once: each gets its answer, from commands that ran at the same time
            for u in ("alice", "bob", "carol"):
                clients[u].dm("botty", {"id": "s-" + u, "body": "slow " + u})
            for u in ("alice", "bob", "carol"):
                got = clients[u].expect("in/msg", lambda p: isinstance(p, dict) and p.get("from") == "botty",
                                        timeout=15)[0]
                self.assertEqual(got["body"], "botty from %s in %s (id): slow %s" % (u, u, u))
            runs = []
            for u in ("alice", "bob", "carol"):
                with open(os.path.join(env.dir, "s-" + u)) as f:
                    runs.append([float(x) for x in f.read().split()])
            self.assertLess(max(r[0] for r in runs), min(r[1] for r in runs), runs)  # all three overlapped
            # a hanging command is killed with its process group; the bot goes on
            clients["alice"].dm("botty", {"id": "h1", "body": "hang"})
            wait_until(lambda: os.path.exists(pids) and open(pids).read().endswith("\n"), 10, "the pid file")
            procs = [int(p) for p in open(pids).read().split()]
            wait_until(lambda: not any(os.path.exists("/proc/%d" % p) and
                                       open("/proc/%d/stat" % p).read().split()[2] != "Z" for p in procs),
                       10, "the hanging command and its child killed")
            # text is never shell: nothing created, the text answered as it is
            marker = os.path.join(env.dir, "pwned")
            for i, evil in enumerate(("$(touch %s)" % marker, "; touch %s" % marker, "`touch %s`" % marker)):
                clients["bob"].clear()
                clients["bob"].dm("botty", {"id": "e%d" % i, "body": evil})
                got = clients["bob"].expect("in/msg", lambda p: isinstance(p, dict) and p.get("from") == "botty")[0]
                self.assertTrue(got["body"].endswith(": " + evil), got)
            self.assertFalse(os.path.exists(marker))
            # dave is not in --allow: no command, no answer
            clients["dave"].dm("botty", {"id": "d1", "body": "hello?"})
            # a group: the answer goes to the group
            clients["alice"].clear()
            clients["alice"].pub("im/u/alice/out/group/ops", {"id": "g1", "body": "status?"})
            got = clients["alice"].expect("in/msg", lambda p: isinstance(p, dict) and p.get("from") == "botty"
                                          and p.get("group") == "ops")[0]
            self.assertEqual(got["body"], "botty from alice in #ops (id): status?")
            time.sleep(1.0)
            self.assertEqual(clients["dave"].matching("in/msg", lambda p: isinstance(p, dict)
                                                      and p.get("from") == "botty"), [])
        except BaseException:
            bot.terminate()
            out, err = bot.communicate(timeout=20)
            print("---- the bot's output ----\n%s\n%s" % (out, err))
            raise
        bot.terminate()
        out, err = bot.communicate(timeout=20)
        self.assertEqual(bot.returncode, 0, err)
        self.assertIn("not answering dave (not in --allow)", err)
        self.assertIn("sh did not finish within 4000 ms", err)

    def test_readme_bot_example(self):
        """README.md, "Bots": its two lines, as written (the broker options
        of this test added to $B)."""
        env = self.env
        lines = read_text("README.md").split("### Bots")[1].split("## Exit status")[0]
        make, serve = re.findall(r"(?m)^    \$ (.*)$", lines)
        subprocess.run(["sh", "-c", make], cwd=env.dir, check=True)
        with open(os.path.join(env.dir, "temperature"), "w") as f:
            f.write("21.5\n")
        b = " ".join(env.mqim_cmd("sensor", "pi")[:-2]).replace(" --user sensor", "")  # without --timeout
        bot = subprocess.Popen(["sh", "-c", serve], cwd=env.dir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, env=dict(os.environ, B=b, SENSOR_PW=env.passwords["sensor"]),
                               start_new_session=True)
        try:
            alice = env.client("alice")
            time.sleep(1.5)
            for i, (ask, answer) in enumerate((("temp?", "21.5 \u00b0C"), ("hello", "ask me: temp?"))):
                alice.dm("sensor", {"id": "t%d" % i, "body": ask})
                got = alice.expect("in/msg", lambda p: isinstance(p, dict) and p.get("from") == "sensor"
                                   and p.get("seq", 0) > 0, count=i + 1)
                self.assertEqual(got[i]["body"], answer)
        finally:
            os.killpg(bot.pid, 15)
            bot.communicate(timeout=20)


if __name__ == "__main__":
    unittest.main()
