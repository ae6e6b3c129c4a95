"""Groups against the real broker and gateway, as a shell user would use
them (JSON over MQTT): create, messages stored once per member inbox with
each member's seq, the echo confirming to the sender (a `sent` ack only
when asked for), non-members rejected,
per-member delivered/read acks and msg_status, roles (only owner/admins
change membership, only the owner makes admins), membership changes as
messages of the group, a member added later seeing only what came after,
a removed member getting nothing after removal, rename, leave with
ownership passing on, limits on group size and groups per user; retention
per group (group_set, tombstones in sync, history saying pruned)."""
import json
import os
import re
import subprocess
import time
import unittest

from harness import EnvTest


def is_group_msg(group, type_=None):
    return lambda p: isinstance(p, dict) and p.get("group") == group and (type_ is None or p.get("type") == type_)


class Groups(EnvTest):
    GATEWAY_ARGS = ("--group-max-members", "4", "--groups-per-user", "2")

    def setUp(self):
        super().setUp()
        for u in ("dave", "erin"):
            self.env.passwords[u] = self.env.cli("user", "add", u, "--random").stdout.strip()
        self.c = {u: self.env.client(u) for u in ("alice", "bob", "carol", "dave", "erin")}
        self.req = 0

    def ctl(self, user, op, **fields):
        """A control request; waits for its response and returns it."""
        self.req += 1
        rid = "r%d" % self.req
        body = dict(fields, op=op, req=rid)
        self.c[user].pub("im/u/%s/out/ctl" % user, json.dumps(body))
        return self.c[user].expect("in/res", lambda p: isinstance(p, dict) and p.get("req") == rid)[0]

    def send(self, user, group, mid, body):
        self.c[user].pub("im/u/%s/out/group/%s" % (user, group), json.dumps({"id": mid, "body": body}))

    def test_sent_ack_on_request(self):
        """"ack":"sent" in a group message: the `sent` ack too, with the
        group and the sender's seq; the members' copies do not carry it."""
        a = self.c["alice"]
        self.assertTrue(self.ctl("alice", "group_create", group="crew", members=["bob"])["ok"])
        a.pub("im/u/alice/out/group/crew", {"id": "g1-ack", "ack": "sent", "body": "acked"})
        ack = a.expect("in/ack", lambda p: p.get("id") == "g1-ack")[0]
        echo = a.expect("in/msg", lambda p: isinstance(p, dict) and p.get("id") == "g1-ack")[0]
        self.assertEqual((ack["status"], ack["group"], ack["seq"]), ("sent", "crew", echo["seq"]))
        got = self.c["bob"].expect("in/msg", lambda p: isinstance(p, dict) and p.get("id") == "g1-ack")[0]
        self.assertNotIn("ack", got)

    def test_group_lifecycle(self):
        a, b, c, d = (self.c[u] for u in ("alice", "bob", "carol", "dave"))
        r = self.ctl("alice", "group_create", group="team", title="The Team", members=["bob", "carol"])
        self.assertTrue(r["ok"], r)
        self.assertEqual({m["user"]: m["role"] for m in r["members"]},
                         {"alice": "owner", "bob": "member", "carol": "member"})
        for cl in (a, b, c):  # the creation is the group's first message, for everyone
            ev = cl.expect("in/msg", is_group_msg("team", "group.create"))[0]
            self.assertEqual(ev["from"], "alice")
            self.assertEqual(ev["body"], "bob,carol")

        # a message: once per member inbox, each with its own seq; the echo
        # is the sender's confirmation (no `sent` ack unless asked for)
        self.send("alice", "team", "g1", "hello team")
        got = {u: self.c[u].expect("in/msg", lambda p: isinstance(p, dict) and p.get("id") == "g1")[0]
               for u in ("alice", "bob", "carol")}
        for u, env in got.items():
            self.assertEqual((env["from"], env["group"], env["body"]), ("alice", "team", "hello team"), u)
            self.assertNotIn("to", env)
        sent = a.expect_sent(lambda p: p.get("id") == "g1")[0]
        self.assertEqual((sent["group"], sent["seq"]), ("team", got["alice"]["seq"]))
        self.assertEqual(a.matching("in/ack", lambda p: p.get("id") == "g1"), [])
        self.assertEqual(d.matching("in/msg", lambda p: isinstance(p, dict) and p.get("id") == "g1"), [])

        # not a member: rejected with a reason; a group that does not exist too
        self.send("dave", "team", "x1", "let me in")
        rej = d.expect("in/ack", lambda p: p.get("status") == "rejected")[0]
        self.assertEqual((rej["code"], rej["id"]), ("not_member", "x1"))
        self.send("dave", "nogroup", "x2", "anyone?")
        d.expect("in/ack", lambda p: p.get("status") == "rejected" and p.get("id") == "x2"
                 and "no such group" in p["reason"])

        # receipts: who delivered and who read, per member
        b.pub("im/u/bob/out/receipt", json.dumps({"status": "delivered", "seqs": [got["bob"]["seq"]]}))
        ack = a.expect("in/ack", lambda p: p.get("status") == "delivered")[0]
        self.assertEqual((ack["by"], ack["group"], ack["id"]), ("bob", "team", "g1"))
        c.pub("im/u/carol/out/receipt", json.dumps({"status": "read", "group": "team", "upto": got["carol"]["seq"]}))
        ack = a.expect("in/ack", lambda p: p.get("status") == "read")[0]
        self.assertEqual((ack["by"], ack["id"]), ("carol", "g1"))
        st = self.ctl("alice", "msg_status", seq=got["alice"]["seq"])
        self.assertEqual({m["user"]: m["status"] for m in st["members"]},
                         {"alice": "sent", "bob": "delivered", "carol": "read"})

        # roles: a member may not add; the owner adds dave, who sees only what follows
        r = self.ctl("bob", "group_add", group="team", users=["dave"])
        self.assertEqual((r["ok"], r["code"]), (False, "forbidden"))
        r = self.ctl("alice", "group_add", group="team", users=["dave"])
        self.assertTrue(r["ok"], r)
        for cl in (a, b, c, d):
            ev = cl.expect("in/msg", is_group_msg("team", "group.add"))[0]
            self.assertEqual((ev["from"], ev["body"]), ("alice", "dave"))
        h = self.ctl("dave", "history", group="team")
        self.assertEqual([m["type"] for m in h["messages"]], ["group.add"])  # nothing from before he joined
        h = self.ctl("bob", "history", group="team")
        self.assertEqual([m["type"] for m in h["messages"]], ["group.create", "text", "group.add"])

        # removal: carol is told, and gets nothing after it
        r = self.ctl("alice", "group_remove", group="team", users=["carol"])
        self.assertTrue(r["ok"], r)
        self.assertNotIn("carol", [m["user"] for m in r["members"]])
        ev = c.expect("in/msg", is_group_msg("team", "group.remove"))[0]
        self.assertEqual(ev["body"], "carol")
        c.clear()
        self.send("bob", "team", "g2", "after carol left")
        for cl in (a, b, d):
            cl.expect("in/msg", lambda p: isinstance(p, dict) and p.get("id") == "g2")
        self.send("carol", "team", "g3", "still here?")
        c.expect("in/ack", lambda p: p.get("status") == "rejected" and p.get("code") == "not_member")
        time.sleep(0.5)
        self.assertEqual(c.matching("in/msg", is_group_msg("team")), [])

        # rename, info, my groups
        r = self.ctl("alice", "group_rename", group="team", title="Renamed")
        self.assertEqual(r["title"], "Renamed")
        b.expect("in/msg", is_group_msg("team", "group.rename"))
        self.assertEqual(self.ctl("bob", "groups")["groups"],
                         [{"group": "team", "title": "Renamed", "role": "member", "members": 3}])
        self.assertEqual(self.ctl("carol", "group_info", group="team")["code"], "not_member")

        # the owner leaves: ownership passes to the longest member (bob)
        r = self.ctl("alice", "group_leave", group="team")
        self.assertTrue(r["ok"], r)
        info = self.ctl("bob", "group_info", group="team")
        self.assertEqual({m["user"]: m["role"] for m in info["members"]}, {"bob": "owner", "dave": "member"})
        # only the owner makes admins
        r = self.ctl("bob", "group_add", group="team", users=["erin"], role="admin")
        self.assertTrue(r["ok"], r)
        r = self.ctl("erin", "group_add", group="team", users=["alice"], role="admin")
        self.assertEqual(r["code"], "forbidden")
        r = self.ctl("erin", "group_remove", group="team", users=["bob"])
        self.assertEqual(r["code"], "forbidden")  # nobody removes the owner

    def test_limits(self):
        r = self.ctl("alice", "group_create", group="big", members=["bob", "carol", "dave"])
        self.assertTrue(r["ok"], r)  # 4 members: the maximum here
        r = self.ctl("alice", "group_add", group="big", users=["erin"])
        self.assertEqual(r["code"], "group_full")
        r = self.ctl("alice", "group_create", group="big", members=[])
        self.assertEqual(r["code"], "group_exists")
        self.assertTrue(self.ctl("bob", "group_create", group="two")["ok"])
        r = self.ctl("bob", "group_create", group="three")  # bob would be in 3 groups
        self.assertEqual(r["code"], "too_many_groups")
        r = self.ctl("alice", "group_create", group="x", members=["nobody"])
        self.assertEqual(r["code"], "unknown_peer")
        r = self.ctl("alice", "group_create", group="bad name")
        self.assertEqual(r["code"], "field_type")


    def test_retention(self):
        """group_set retain_count 3, six messages: history says pruned, a
        member's sync is contiguous with tombstones where messages were."""
        a, b = self.c["alice"], self.c["bob"]
        self.assertTrue(self.ctl("alice", "group_create", group="team", members=["bob"])["ok"])
        r = self.ctl("bob", "group_set", group="team", retain_count=3)
        self.assertEqual((r["ok"], r["code"]), (False, "forbidden"))
        r = self.ctl("alice", "group_set", group="team", retain_count=3)
        self.assertTrue(r["ok"], r)
        self.assertEqual((r["retain_count"], r["retain_days"]), (3, None))
        for i in range(6):
            self.send("alice", "team", "k%d" % i, "message %d" % i)
        last = b.expect("in/msg", lambda p: isinstance(p, dict) and p.get("id") == "k5")[0]

        h = self.ctl("bob", "history", group="team")
        self.assertEqual([m["id"] for m in h["messages"]], ["k3", "k4", "k5"])
        self.assertTrue(h["complete"], h)
        self.assertEqual((h["pruned"], h["first_seq"]), (True, h["messages"][0]["seq"]))

        # bob's device syncs from the start: every seq, in order, no hole
        b.clear()
        s = self.ctl("bob", "sync", after=0)
        self.assertTrue(s["ok"] and s["complete"], s)
        self.assertEqual(s["last"], last["seq"])
        self.assertNotIn("pruned", s)  # no seq was removed: tombstones keep them
        envs = b.expect("in/msg", lambda p: isinstance(p, dict) and "seq" in p, count=s["count"])
        self.assertEqual([e["seq"] for e in envs], list(range(1, s["last"] + 1)))
        tombs = [e for e in envs if e.get("type") == "pruned"]
        self.assertEqual(len(tombs), 4)  # group.create, k0, k1, k2
        for t in tombs:
            self.assertEqual(t["group"], "team")
            self.assertNotIn("id", t)
            self.assertNotIn("body", t)
            self.assertNotIn("from", t)
        self.assertEqual([e["id"] for e in envs if e.get("type") != "pruned"], ["k3", "k4", "k5"])

        # unread ignores tombstones; a receipt on one is not_found
        chats = self.ctl("bob", "chats")["chats"]
        self.assertEqual((chats[0]["group"], chats[0]["unread"]), ("team", 3))
        b.pub("im/u/bob/out/receipt", json.dumps({"status": "delivered", "seqs": [tombs[0]["seq"]]}))
        rej = b.expect("in/ack", lambda p: p.get("status") == "rejected")[0]
        self.assertEqual((rej["code"], rej["seqs"]), ("not_found", [tombs[0]["seq"]]))

        # the operator's command sets the same policy
        self.env.cli("group", "set", "team", "retain_days", "none")
        info = self.ctl("alice", "group_info", group="team")
        self.assertEqual((info["retain_count"], info["retain_days"]), (3, 0))
        r = self.env.cli("group", "set", "team", "retain_weeks", "1", check=False)
        self.assertEqual(r.returncode, 2)
        r = self.env.cli("group", "set", "nogroup", "retain_days", "1", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no such group", r.stderr)


    def mqim(self, user, *args):
        state = os.path.join(self.env.dir, "dev-%s" % user)
        return subprocess.run([os.environ["MQIM_CLI"], "--port", str(self.env.port), "--user", user,
                               "--password", self.env.passwords[user], "--device", "cli",
                               "--state-dir", state, "--timeout", "10000"] + list(args),
                              capture_output=True, text=True, timeout=60)

    def test_cli(self):
        """The same from the `mqim` command."""
        r = self.mqim("alice", "group", "create", "crew", "bob")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("member alice owner", r.stdout)
        self.assertIn("member bob member", r.stdout)
        self.assertIn("] alice -> #crew: (group.create) bob", r.stdout)  # the event came in too
        r = self.mqim("bob", "send", "--group", "crew", "hi crew")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"(?m)^sent \S+ seq=\d+")
        r = self.mqim("alice", "listen", "1")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        lines = re.findall(r"(?m)^\[\d+\] .*$", r.stdout)
        self.assertEqual([l.split("] ", 1)[1] for l in lines], ["bob/cli -> #crew: hi crew"])  # and from which device
        r = self.mqim("bob", "groups")
        self.assertIn('group crew "crew" member 2 members', r.stdout)
        r = self.mqim("bob", "history", "--group", "crew")
        self.assertIn("bob -> #crew: hi crew", r.stdout)
        r = self.mqim("carol", "send", "--group", "crew", "me too")
        self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
        self.assertIn("not_member", r.stdout)
        r = self.mqim("bob", "group", "add", "crew", "carol")
        self.assertEqual(r.returncode, 4, r.stdout + r.stderr)  # a member may not
        self.assertIn("forbidden", r.stdout)
        # bob's conversations: the group with his unread count and the last message
        r = self.mqim("bob", "chats")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"(?m)^chat #crew unread=\d+ last=\[\d+\] hi crew$")
        # the owner keeps two messages; the history says what retention removed
        r = self.mqim("alice", "group", "set", "crew", "retain_count", "2")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for i in range(3):
            self.assertEqual(self.mqim("alice", "send", "--group", "crew", "m%d" % i).returncode, 0)
        r = self.mqim("bob", "history", "--group", "crew")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(re.findall(r"(?m)^\[\d+\] alice -> #crew: (m\d)$", r.stdout), ["m1", "m2"])
        self.assertRegex(r.stdout, r"(?m)^\(older messages were removed by retention; the oldest kept is seq \d+\)$")
        r = self.mqim("bob", "group", "set", "crew", "retain_count", "default")
        self.assertEqual(r.returncode, 4, r.stdout + r.stderr)  # members may not


if __name__ == "__main__":
    unittest.main()
