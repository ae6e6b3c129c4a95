"""Every rejection class reaches the sender as a `rejected` ack with a stable
code and a reason; nothing is dropped silently."""
import time
import unittest

from harness import EnvTest, wait_until


def rejected(code):
    return lambda p: isinstance(p, dict) and p.get("status") == "rejected" and p.get("code") == code


class Rejections(EnvTest):
    CASES = [
        ("dm/bob", "{not json", "json_malformed"),
        ("dm/bob", '{"body": 5}', "field_type"),
        ("dm/bob", '{"body": ""}', "body_empty"),
        ("dm/bob", '{"to": "carol", "body": "x"}', "field_range"),
        ("dm/bob", '{"id": "a b", "body": "x"}', "id_bad_char"),
        ("dm/bob", '{"id": "%s", "body": "x"}' % ("i" * 65), "id_too_long"),
        ("dm/bob", '{"a": [[[[[[[[[1]]]]]]]]], "body": "x"}', "json_too_deep"),
        ("dm/bob", b"bad \xff utf8", "utf8_invalid"),
        ("dm/bob", "b" * 4097, "body_too_large"),
        ("dm/bob", '{"body": "%s"}' % ("p" * 16400), "payload_too_large"),
        ("dm/nobody", "hello?", "unknown_peer"),
        ("group/team", "hi team", "not_member"),  # no such group
        ("bogus", "x", "topic_unknown"),
        ("receipt", "[1]", "json_not_object"),
        ("status/phone", '{"state": "dancing"}', "field_type"),
    ]

    def test_each_class(self):
        a, b = self.env.client("alice"), self.env.client("bob")
        for sub, payload, code in self.CASES:
            a.clear()
            a.pub("im/u/alice/out/" + sub, payload)
            ack = a.expect("in/ack", rejected(code))[0]
            self.assertTrue(len(ack["reason"]) > 5, ack)
            self.assertIn("code_num", ack)
            time.sleep(0.05)
            self.assertEqual(len(a.matching("in/ack")), 1, "exactly one ack for %s: %s" % (code, a.matching("in/ack")))
        time.sleep(0.3)
        self.assertEqual(b.matching("in/msg"), [], "nothing rejected reached bob")


class RateLimit(EnvTest):
    GATEWAY_ARGS = ("--rate-per-sec", "5", "--rate-burst", "5")

    def test_rate_limited_and_accounted(self):
        a, b = self.env.client("alice"), self.env.client("bob")
        for i in range(20):
            a.dm("bob", {"id": "r%02d" % i, "body": "spam %d" % i})
        # each publish either confirmed (its echo) or rejected rate_limited
        outcome = lambda: a.confirmations() + a.matching("in/ack", lambda p: p.get("code") == "rate_limited")
        wait_until(lambda: len(outcome()) >= 20, 15, "20 outcomes")
        sent = a.confirmations()
        limited = a.matching("in/ack", lambda p: p.get("code") == "rate_limited")
        self.assertEqual(len(sent) + len(limited), 20, outcome())
        self.assertGreaterEqual(len(limited), 10)
        self.assertGreaterEqual(len(sent), 5)
        self.assertEqual(sorted(p["id"] for p in outcome()), ["r%02d" % i for i in range(20)])
        # bob is not limited by alice's bucket
        b.dm("alice", "fine")
        b.expect_sent()


class Quota(EnvTest):
    GATEWAY_ARGS = ("--inbox-quota", "3")

    def test_inbox_quota(self):
        a = self.env.client("alice")
        carol = self.env.client("carol")
        a.dm("bob", "1")
        carol.dm("bob", "2")
        carol.dm("bob", "3")
        a.dm("bob", {"id": "over", "body": "4"})
        ack = a.expect("in/ack", rejected("quota_full"))[0]
        self.assertEqual(ack["id"], "over")
        self.assertIn("bob", ack["reason"])
        # a per-user policy, set while the gateway runs, takes effect at once
        self.env.cli("user", "set", "bob", "inbox_quota", "none")
        a.dm("bob", {"id": "fits-now", "body": "5"})
        a.expect_sent(lambda p: p.get("id") == "fits-now")
        self.env.cli("user", "set", "bob", "retain_count", "2")
        a.dm("bob", {"id": "pruning", "body": "6"})
        a.expect_sent(lambda p: p.get("id") == "pruning")
        listing = self.env.cli("user", "list").stdout
        self.assertIn("bob\tmessages=2\tnext_seq=6\tretain_count=2\tinbox_quota=none", listing)
        r = self.env.cli("user", "set", "bob", "colour", "7", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("unknown key", r.stderr)


if __name__ == "__main__":
    unittest.main()
