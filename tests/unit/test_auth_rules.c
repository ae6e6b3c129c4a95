/* The mqim_auth plugin's pure rules (gateway/plugin/auth_rules.c) and the
 * auth database it reads (gateway/src/ops/authdb.c) over real LMDB files:
 * topic rules, client id binding, the publish budget, the refusal log's
 * rate limit, password hashes, kicks. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth_rules.h"
#include "authdb.h"
#include "mqim_check.h"

static void test_topics(void)
{
    const char *r = "im";
    /* users: their own out/ (write), their own in/, presence, keys, status (read) */
    CHECK(mqim_auth_topic_allowed(r, "alice", false, "im/u/alice/out/dm/bob", MQIM_AUTH_WRITE));
    CHECK(mqim_auth_topic_allowed(r, "alice", false, "im/u/alice/out", MQIM_AUTH_WRITE));
    CHECK(!mqim_auth_topic_allowed(r, "alice", false, "im/u/alice/outx", MQIM_AUTH_WRITE));
    CHECK(!mqim_auth_topic_allowed(r, "alice", false, "im/u/bob/out/dm/alice", MQIM_AUTH_WRITE));
    CHECK(!mqim_auth_topic_allowed(r, "alice", false, "im/u/alic/out/dm/bob", MQIM_AUTH_WRITE));
    CHECK(!mqim_auth_topic_allowed(r, "alice", false, "im/u/alice/in/msg", MQIM_AUTH_WRITE));
    CHECK(!mqim_auth_topic_allowed(r, "alice", false, "im/presence/alice", MQIM_AUTH_WRITE));
    CHECK(!mqim_auth_topic_allowed(r, "alice", false, "im/keys/alice", MQIM_AUTH_WRITE));
    CHECK(!mqim_auth_topic_allowed(r, "alice", false, "im/gateway/status", MQIM_AUTH_WRITE));
    CHECK(mqim_auth_topic_allowed(r, "alice", false, "im/u/alice/in/msg", MQIM_AUTH_READ));
    CHECK(!mqim_auth_topic_allowed(r, "alice", false, "im/u/bob/in/msg", MQIM_AUTH_READ));
    CHECK(!mqim_auth_topic_allowed(r, "alice", false, "im/u/alice/out/dm/bob", MQIM_AUTH_READ));
    CHECK(mqim_auth_topic_allowed(r, "alice", false, "im/presence/bob", MQIM_AUTH_READ));
    CHECK(mqim_auth_topic_allowed(r, "alice", false, "im/keys/bob", MQIM_AUTH_READ));
    CHECK(mqim_auth_topic_allowed(r, "alice", false, "im/gateway/status", MQIM_AUTH_READ));
    /* operator-only: the stats */
    CHECK(!mqim_auth_topic_allowed(r, "alice", false, "im/gateway/stats", MQIM_AUTH_READ));
    CHECK(!mqim_auth_topic_allowed(r, "alice", false, "im/gateway/stats/x", MQIM_AUTH_READ));
    CHECK(mqim_auth_topic_allowed(r, "alice", false, "im/gateway/statsx", MQIM_AUTH_READ));
    /* outside the root: nobody, not even the gateway */
    CHECK(!mqim_auth_topic_allowed(r, "alice", false, "imx/u/alice/out/dm/bob", MQIM_AUTH_WRITE));
    CHECK(!mqim_auth_topic_allowed(r, "gw", true, "$SYS/broker/uptime", MQIM_AUTH_READ));
    CHECK(!mqim_auth_topic_allowed(r, "gw", true, "other/x", MQIM_AUTH_WRITE));
    /* the gateway: everything under the root */
    CHECK(mqim_auth_topic_allowed(r, "gw", true, "im/u/alice/in/msg", MQIM_AUTH_WRITE));
    CHECK(mqim_auth_topic_allowed(r, "gw", true, "im/gateway/stats", MQIM_AUTH_READ));
    CHECK(mqim_auth_topic_allowed(r, "gw", true, "im/u/alice/out/dm/bob", MQIM_AUTH_READ));
    /* a root with levels */
    CHECK(mqim_auth_topic_allowed("a/b", "alice", false, "a/b/u/alice/out/dm/x", MQIM_AUTH_WRITE));
    CHECK(!mqim_auth_topic_allowed("a/b", "alice", false, "a/u/alice/out/dm/x", MQIM_AUTH_WRITE));
}

/* The users of the client id tests. */
static bool fake_exists(void *ctx, const char *name, size_t len)
{
    static const char *const users[] = { "alice", "bob", "bob.smith", "gw" };
    (void)ctx;
    for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
        if (strlen(users[i]) == len && memcmp(users[i], name, len) == 0) {
            return true;
        }
    }
    return false;
}

static void test_client_ids(void)
{
    const char *g = "mqim-gateway-SECRET";
#define CID(user, gw, id) mqim_auth_client_id_check(user, gw, id, g, fake_exists, NULL)
    CHECK_EQ_INT(CID("alice", false, "alice"), MQIM_AUTH_CID_OK);
    CHECK_EQ_INT(CID("alice", false, "alice.phone"), MQIM_AUTH_CID_OK);
    CHECK_EQ_INT(CID("alice", false, "alice.t123"), MQIM_AUTH_CID_OK);
    /* the takeover of the issue: alice as bob's device */
    CHECK_EQ_INT(CID("alice", false, "bob.phone"), MQIM_AUTH_CID_OTHER_USER);
    CHECK_EQ_INT(CID("alice", false, "bob"), MQIM_AUTH_CID_OTHER_USER);
    CHECK_EQ_INT(CID("bob", false, "bob.phone"), MQIM_AUTH_CID_OK);
    /* the longest name owns: bob cannot take bob.smith's devices */
    CHECK_EQ_INT(CID("bob", false, "bob.smith.phone"), MQIM_AUTH_CID_OTHER_USER);
    CHECK_EQ_INT(CID("bob.smith", false, "bob.smith.phone"), MQIM_AUTH_CID_OK);
    CHECK_EQ_INT(CID("bob.smith", false, "bob.phone"), MQIM_AUTH_CID_OTHER_USER);
    /* nobody's: the shell's random ids */
    CHECK_EQ_INT(CID("alice", false, "mosq-Xy12"), MQIM_AUTH_CID_OK);
    CHECK_EQ_INT(CID("alice", false, "alicex"), MQIM_AUTH_CID_OK);
    CHECK_EQ_INT(CID("alice", false, "bobby.phone"), MQIM_AUTH_CID_OK);
    /* the gateway's ids are the gateway's */
    CHECK_EQ_INT(CID("alice", false, "mqim-gateway-SECRET"), MQIM_AUTH_CID_GATEWAY);
    CHECK_EQ_INT(CID("alice", false, "mqim-gateway-SECRET.out"), MQIM_AUTH_CID_GATEWAY);
    CHECK_EQ_INT(CID("alice", false, "mqim-gateway-SECRETX"), MQIM_AUTH_CID_OK);
    CHECK_EQ_INT(CID("alice", false, "gw"), MQIM_AUTH_CID_OTHER_USER);
    CHECK_EQ_INT(CID("gw", true, "mqim-gateway-SECRET"), MQIM_AUTH_CID_OK);
    CHECK_EQ_INT(CID("gw", true, "bob.phone"), MQIM_AUTH_CID_OK);
    /* empty and over-long */
    CHECK_EQ_INT(CID("alice", false, ""), MQIM_AUTH_CID_BAD);
    {
        char big[MQIM_AUTH_CID_MAX + 2];
        memset(big, 'a', sizeof(big) - 1u);
        big[sizeof(big) - 1u] = '\0';
        CHECK_EQ_INT(CID("alice", false, big), MQIM_AUTH_CID_BAD);
    }
#undef CID
}

static void test_budget(void)
{
    mqim_auth_bucket_t b = { 0, 0 };
    int ok = 0;
    /* burst 5 at once, then 10/s */
    for (int i = 0; i < 20; i++) {
        ok += mqim_auth_bucket_take(&b, 10u, 5u, 1000) ? 1 : 0;
    }
    CHECK_EQ_INT(ok, 5);
    CHECK(!mqim_auth_bucket_take(&b, 10u, 5u, 1050));
    CHECK(mqim_auth_bucket_take(&b, 10u, 5u, 1100)); /* 100 ms: one token */
    CHECK(!mqim_auth_bucket_take(&b, 10u, 5u, 1100));
    /* a long pause refills to the burst, no more */
    ok = 0;
    for (int i = 0; i < 20; i++) {
        ok += mqim_auth_bucket_take(&b, 10u, 5u, 100000) ? 1 : 0;
    }
    CHECK_EQ_INT(ok, 5);
    /* a clock that goes back takes nothing away and adds nothing */
    CHECK(!mqim_auth_bucket_take(&b, 10u, 5u, 50000));
    /* rate 0: no budget */
    for (int i = 0; i < 1000; i++) {
        CHECK(mqim_auth_bucket_take(&b, 0u, 0u, 1));
    }
    /* 20,000 publishes in 2 s at 100/s burst 200: 200 + 2 s * 100 */
    {
        mqim_auth_bucket_t f = { 0, 0 };
        int passed = 0;
        for (int i = 0; i < 20000; i++) {
            passed += mqim_auth_bucket_take(&f, 100u, 200u, 1 + i / 10) ? 1 : 0;
        }
        CHECK(passed >= 399 && passed <= 401);
    }
}

static void test_lograte(void)
{
    mqim_auth_lograte_t l = { 0, 0 };
    CHECK(mqim_auth_lograte_refusal(&l, 10000, 1000));  /* the first: in full */
    CHECK(!mqim_auth_lograte_refusal(&l, 10000, 1001)); /* then counted */
    CHECK(!mqim_auth_lograte_refusal(&l, 10000, 5000));
    CHECK_EQ_INT(mqim_auth_lograte_flush(&l, 10000, 9000), 0); /* not yet */
    CHECK(!mqim_auth_lograte_refusal(&l, 10000, 10500)); /* suppressed ones wait for their summary */
    CHECK_EQ_INT(mqim_auth_lograte_flush(&l, 10000, 11000), 3);
    CHECK_EQ_INT(mqim_auth_lograte_flush(&l, 10000, 30000), 0); /* nothing more */
    CHECK(mqim_auth_lograte_refusal(&l, 10000, 30001)); /* a new window: in full again */
}

static void test_authdb(void)
{
    char dir[] = "/tmp/mqim-test-authdb-XXXXXX";
    char err[256] = "";
    char hash[MQIM_AUTHDB_HASH_MAX];
    mqim_authdb_t *w = NULL, *r = NULL;
    mqim_authdb_user_t u;
    mqim_authdb_settings_t s = { "gw", "mqim-gateway-X", "im", 100u, 500u }, got;
    uint64_t seq = 0, id;
    const char *serials[] = { "00AB12", "ff" };
    CHECK(mkdtemp(dir) != NULL);
    /* a reader before anything was written: it cannot open */
    CHECK_EQ_INT(mqim_authdb_open(dir, false, &r, err, sizeof(err)), -1);
    CHECK_EQ_INT(mqim_authdb_open(dir, true, &w, err, sizeof(err)), 0);
    CHECK_EQ_INT(mqim_authdb_settings_put(w, &s, err, sizeof(err)), 0);
    CHECK_EQ_INT(mqim_authdb_user_set(w, "alice", "pw1", 0u, err, sizeof(err)), 0);
    CHECK_EQ_INT(mqim_authdb_open(dir, false, &r, err, sizeof(err)), 0);
    CHECK_EQ_INT(mqim_authdb_settings_get(r, &got), 0);
    CHECK(strcmp(got.gateway, "gw") == 0 && strcmp(got.client_id, "mqim-gateway-X") == 0 &&
          strcmp(got.root, "im") == 0 && got.rate == 100u && got.burst == 500u);
    CHECK_EQ_INT(mqim_authdb_user_get(r, "alice", 5, &u), 0);
    CHECK(mqim_authdb_check_password(u.hash, "pw1"));
    CHECK(!mqim_authdb_check_password(u.hash, "pw2"));
    CHECK(!mqim_authdb_check_password(u.hash, ""));
    CHECK_EQ_INT(mqim_authdb_user_get(r, "bob", 3, &u), 1);
    CHECK_EQ_INT(mqim_authdb_user_get(r, "alic", 4, NULL), 1);
    CHECK_EQ_INT(mqim_authdb_kicks(r, &seq, NULL, NULL), 0);
    CHECK_EQ_INT(seq, 0); /* a new user kicks nobody */
    /* a certificate-only user (no password), then two-factor */
    CHECK_EQ_INT(mqim_authdb_user_set(w, "carol", NULL, 0u, err, sizeof(err)), 0);
    CHECK_EQ_INT(mqim_authdb_user_get(r, "carol", 5, &u), 0);
    CHECK(u.hash[0] == '\0' && u.flags == 0u);
    id = mqim_authdb_txn_id(r);
    CHECK_EQ_INT(mqim_authdb_user_set(w, "carol", NULL, MQIM_AUTHDB_REQUIRE_CERT, err, sizeof(err)), 0);
    CHECK(mqim_authdb_txn_id(r) > id); /* what the plugin's tick looks at */
    CHECK_EQ_INT(mqim_authdb_user_get(r, "carol", 5, &u), 0);
    CHECK(u.flags == MQIM_AUTHDB_REQUIRE_CERT);
    CHECK_EQ_INT(mqim_authdb_kicks(r, &seq, NULL, NULL), 0);
    CHECK_EQ_INT(seq, 1); /* changed flags: a kick */
    /* the same password again: no kick; a new one: a kick */
    CHECK_EQ_INT(mqim_authdb_user_set(w, "alice", "pw1", 0u, err, sizeof(err)), 0);
    CHECK_EQ_INT(mqim_authdb_kicks(r, &seq, NULL, NULL), 0);
    CHECK_EQ_INT(seq, 1);
    CHECK_EQ_INT(mqim_authdb_user_set(w, "alice", "pw2", 0u, err, sizeof(err)), 0);
    CHECK_EQ_INT(mqim_authdb_user_del(w, "carol", err, sizeof(err)), 0);
    CHECK_EQ_INT(mqim_authdb_revoke(w, "bob", serials, 2u, err, sizeof(err)), 0);
    CHECK_EQ_INT(mqim_authdb_user_get(r, "carol", 5, &u), 1);
    CHECK_EQ_INT(mqim_authdb_serial_revoked(r, "AB12"), 1);
    CHECK_EQ_INT(mqim_authdb_serial_revoked(r, "ab12"), 1);
    CHECK_EQ_INT(mqim_authdb_serial_revoked(r, "0FF"), 1);
    CHECK_EQ_INT(mqim_authdb_serial_revoked(r, "AB13"), 0);
    CHECK_EQ_INT(mqim_authdb_kicks(r, &seq, NULL, NULL), 0);
    CHECK_EQ_INT(seq, 4); /* alice's password, carol gone, bob's certificates */
    /* hashes: salted, and a malformed one matches nothing */
    CHECK_EQ_INT(mqim_authdb_hash_password("x", hash, sizeof(hash)), 0);
    CHECK(strncmp(hash, "$7$", 3) == 0 && mqim_authdb_check_password(hash, "x"));
    CHECK(!mqim_authdb_check_password("$7$0$AAAA$AAAA", "x"));
    CHECK(!mqim_authdb_check_password("$6$x", "x"));
    CHECK(!mqim_authdb_check_password("", ""));
    mqim_authdb_close(r);
    mqim_authdb_close(w);
    {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        CHECK_EQ_INT(system(cmd), 0);
    }
}

/* The kicks arrive in order, each once. */
static char kicked[8][16];
static int kick_count;
static void on_kick(void *ctx, const char *user)
{
    (void)ctx;
    if (kick_count < 8) {
        snprintf(kicked[kick_count], sizeof(kicked[0]), "%s", user);
    }
    kick_count++;
}

static void test_kick_order(void)
{
    char dir[] = "/tmp/mqim-test-authdb-XXXXXX";
    char err[256];
    mqim_authdb_t *w = NULL;
    uint64_t seq = 0;
    CHECK(mkdtemp(dir) != NULL);
    CHECK_EQ_INT(mqim_authdb_open(dir, true, &w, err, sizeof(err)), 0);
    CHECK_EQ_INT(mqim_authdb_user_del(w, "a", err, sizeof(err)), 0);
    CHECK_EQ_INT(mqim_authdb_kicks(w, &seq, NULL, NULL), 0); /* where the plugin starts */
    CHECK_EQ_INT(mqim_authdb_user_del(w, "b", err, sizeof(err)), 0);
    CHECK_EQ_INT(mqim_authdb_user_del(w, "c", err, sizeof(err)), 0);
    CHECK_EQ_INT(mqim_authdb_kicks(w, &seq, on_kick, NULL), 0);
    CHECK_EQ_INT(kick_count, 2);
    CHECK(strcmp(kicked[0], "b") == 0 && strcmp(kicked[1], "c") == 0);
    CHECK_EQ_INT(mqim_authdb_kicks(w, &seq, on_kick, NULL), 0);
    CHECK_EQ_INT(kick_count, 2);
    mqim_authdb_close(w);
    {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        CHECK_EQ_INT(system(cmd), 0);
    }
}

int main(void)
{
    test_topics();
    test_client_ids();
    test_budget();
    test_lograte();
    test_authdb();
    test_kick_order();
    return CHECK_REPORT();
}
