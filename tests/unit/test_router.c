/* Router unit tests: the routing rules over a real LMDB store in a temp
 * directory, no broker. Outputs are read back from the store's outbox (what
 * the pump would publish) and from publish_now (ephemeral traffic). */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdint.h>
#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mqim/base64.h"
#include "mqim/sha256.h"
#include "mqim_check.h"
#include "inbound.h"
#include "router.h"
#include "store.h"
#include "store_engine.h"

#define MAX_OUT 512

typedef struct out {
    char topic[300];
    char payload[20000];
    int qos;
    bool retain;
    char corr[64];
} out_t;

static out_t outs[MAX_OUT];
static int nouts;
static out_t direct[64];
static int ndirect;

static char dir[256];
static mqim_store_t *store;
static mqim_router_t *router;
static mqim_router_config_t rcfg;
static int64_t clock_ms = 1764000000000;

static void capture_now(void *ctx, const mqim_outbound_t *o)
{
    (void)ctx;
    if (ndirect < 64) {
        out_t *d = &direct[ndirect++];
        snprintf(d->topic, sizeof(d->topic), "%.*s", (int)o->topic.len, o->topic.ptr);
        snprintf(d->payload, sizeof(d->payload), "%.*s", (int)o->payload.len, o->payload.ptr);
        d->qos = o->qos;
        d->retain = o->retain;
    }
}

static void fixed_random(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    for (size_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)(0x40 + i);
    }
}

static void setup(const mqim_router_config_t *over, size_t map_size)
{
    snprintf(dir, sizeof(dir), "/tmp/mqim-router-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        exit(2);
    }
    if (test_store_open(dir, map_size, false, &store) != MQIM_OK) {
        fprintf(stderr, "store open failed\n");
        exit(2);
    }
    rcfg = (mqim_router_config_t){ .root = "im", .sync_page = 100 };
    if (over != NULL) {
        rcfg = *over;
    }
    rcfg.publish_now = capture_now;
    rcfg.random = fixed_random;
    router = mqim_router_new(store, &rcfg);
    if (router == NULL) {
        fprintf(stderr, "router_new failed\n");
        exit(2);
    }
    nouts = 0;
    ndirect = 0;
    /* registered users */
    {
        mqim_txn_t txn;
        const char *users[] = { "alice", "bob", "carol" };
        mqim_txn_begin(store, MQIM_TXN_WRITE, &txn);
        for (int i = 0; i < 3; i++) {
            mqim_store_user_ensure(&txn, mqim_str_from_cstr(users[i]), clock_ms);
        }
        mqim_txn_commit(&txn);
    }
}

static void teardown(void)
{
    char cmd[300];
    mqim_router_free(router);
    mqim_store_close(store);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cleanup of %s failed\n", dir);
    }
}

/* Move every outbox entry into outs[] (as the pump would publish and delete them). */
static void drain(void)
{
    mqim_txn_t txn;
    mqim_outbox_rec_t rec;
    nouts = 0;
    mqim_txn_begin(store, MQIM_TXN_WRITE, &txn);
    while (nouts < MAX_OUT && mqim_store_outbox_next(&txn, 0, &rec) == MQIM_OK) {
        out_t *o = &outs[nouts++];
        uint64_t key = rec.key;
        snprintf(o->topic, sizeof(o->topic), "%.*s", (int)rec.topic.len, rec.topic.ptr);
        snprintf(o->payload, sizeof(o->payload), "%.*s", (int)rec.payload.len, rec.payload.ptr);
        snprintf(o->corr, sizeof(o->corr), "%.*s", (int)rec.corr.len, rec.corr.ptr);
        o->qos = rec.qos;
        o->retain = rec.retain;
        mqim_store_outbox_del(&txn, key);
    }
    mqim_txn_commit(&txn);
}

static mqim_status_t pub5(const char *topic, const char *payload, int qos, const char *resp,
                          const char *corr)
{
    mqim_inbound_t in;
    memset(&in, 0, sizeof(in));
    in.topic = mqim_str_from_cstr(topic);
    in.payload = mqim_str_from_cstr(payload);
    in.qos = qos;
    in.response_topic = mqim_str_from_cstr(resp);
    in.correlation = mqim_str_from_cstr(corr);
    clock_ms += 10;
    return mqim_router_handle(router, &in, clock_ms);
}

static mqim_status_t pub(const char *topic, const char *payload, int qos)
{
    return pub5(topic, payload, qos, NULL, NULL);
}

static cJSON *json_of(const out_t *o)
{
    return cJSON_Parse(o->payload);
}

static const char *jstr(cJSON *j, const char *key)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, key));
}

static double jnum(cJSON *j, const char *key)
{
    cJSON *n = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsNumber(n) ? n->valuedouble : -1.0;
}

static bool jbool(cJSON *j, const char *key)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, key));
}

/* Assert out i is on topic and has a given string field value. */
#define CHECK_OUT(i, t, key, val)                                                         \
    do {                                                                                  \
        CHECK((i) < nouts);                                                               \
        if ((i) < nouts) {                                                                \
            cJSON *j_ = json_of(&outs[i]);                                                \
            CHECK(strcmp(outs[i].topic, (t)) == 0);                                       \
            CHECK(j_ != NULL && jstr(j_, key) != NULL && strcmp(jstr(j_, key), (val)) == 0); \
            if (j_ == NULL || strcmp(outs[i].topic, (t)) != 0) {                          \
                fprintf(stderr, "  out[%d] = %s %s\n", (i), outs[i].topic, outs[i].payload); \
            }                                                                             \
            cJSON_Delete(j_);                                                             \
        }                                                                                 \
    } while (0)

static void test_dm_plain_text(void)
{
    cJSON *j;
    setup(NULL, 0);
    CHECK_EQ_INT(pub("im/u/alice/out/dm/bob", "hello bob", 1), MQIM_OK);
    drain();
    /* the delivery and the echo, which is alice's confirmation: no `sent` ack */
    CHECK_EQ_INT(nouts, 2);
    CHECK_OUT(0, "im/u/bob/in/msg", "body", "hello bob");
    CHECK_OUT(0, "im/u/bob/in/msg", "from", "alice");
    CHECK_OUT(1, "im/u/alice/in/msg", "to", "bob");
    CHECK_OUT(1, "im/u/alice/in/msg", "from", "alice");
    j = json_of(&outs[0]);
    CHECK(jnum(j, "seq") == 1.0);
    CHECK(strlen(jstr(j, "id")) == 26u); /* a ULID */
    CHECK(strcmp(jstr(j, "type"), "text") == 0);
    CHECK(jnum(j, "ts") == (double)clock_ms);
    cJSON_Delete(j);
    j = json_of(&outs[1]);
    CHECK(jnum(j, "seq") == 1.0); /* alice's echo seq */
    CHECK(jnum(j, "ts") == (double)clock_ms);
    CHECK(strlen(jstr(j, "id")) == 26u); /* the same id as bob's copy */
    CHECK(outs[1].qos == 1);
    cJSON_Delete(j);
    /* a second message: seqs advance per inbox */
    CHECK_EQ_INT(pub("im/u/bob/out/dm/alice", "hi alice", 1), MQIM_OK);
    drain();
    j = json_of(&outs[0]);
    CHECK(strcmp(outs[0].topic, "im/u/alice/in/msg") == 0 && jnum(j, "seq") == 2.0);
    cJSON_Delete(j);
    j = json_of(&outs[1]);
    CHECK(strcmp(outs[1].topic, "im/u/bob/in/msg") == 0 && jnum(j, "seq") == 2.0);
    cJSON_Delete(j);
    teardown();
}

static void test_dm_envelope_from_ignored(void)
{
    cJSON *j;
    setup(NULL, 0);
    CHECK_EQ_INT(pub("im/u/alice/out/dm/bob",
                     "{\"id\":\"m1\",\"from\":\"mallory\",\"type\":\"note\",\"body\":\"x\\n\\u00e9\"}", 1),
                 MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 2);
    CHECK_OUT(0, "im/u/bob/in/msg", "from", "alice");
    CHECK_OUT(0, "im/u/bob/in/msg", "id", "m1");
    CHECK_OUT(0, "im/u/bob/in/msg", "type", "note");
    CHECK_OUT(0, "im/u/bob/in/msg", "body", "x\n\xc3\xa9");
    CHECK_OUT(1, "im/u/alice/in/msg", "id", "m1");
    CHECK_OUT(1, "im/u/alice/in/msg", "from", "alice");
    j = json_of(&outs[1]);
    CHECK(strcmp(jstr(j, "to"), "bob") == 0);
    cJSON_Delete(j);
    teardown();
}

static void test_dedupe(void)
{
    static char first_echo[20000];
    setup(NULL, 0);
    CHECK_EQ_INT(pub("im/u/alice/out/dm/bob", "{\"id\":\"dup-1\",\"body\":\"once\"}", 1), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 2);
    snprintf(first_echo, sizeof(first_echo), "%s", outs[1].payload);
    CHECK_EQ_INT(pub("im/u/alice/out/dm/bob", "{\"id\":\"dup-1\",\"body\":\"once\"}", 1), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 1); /* only the confirmation, no second delivery */
    CHECK(strcmp(outs[0].topic, "im/u/alice/in/msg") == 0); /* the echo again, byte for byte */
    CHECK(strcmp(outs[0].payload, first_echo) == 0);
    {
        mqim_txn_t txn;
        mqim_user_rec_t u;
        mqim_txn_begin(store, MQIM_TXN_READ, &txn);
        CHECK_EQ_INT(mqim_store_user_get(&txn, MQIM_STR("bob"), &u), MQIM_OK);
        CHECK(u.count == 1u);
        mqim_txn_abort(&txn);
    }
    /* same id from another sender is a different message */
    CHECK_EQ_INT(pub("im/u/carol/out/dm/bob", "{\"id\":\"dup-1\",\"body\":\"mine\"}", 1), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 2);
    teardown();
}

typedef struct reject_case {
    const char *topic;
    const char *payload;
    mqim_status_t code;
} reject_case_t;

static void test_rejections(void)
{
    static char big_body[4200];
    static char big_payload[17000];
    static char deep[64];
    const reject_case_t cases[] = {
        { "im/u/alice/out/dm/bob", "{not json", MQIM_JSON_MALFORMED },
        { "im/u/alice/out/dm/bob", "{\"body\":5}", MQIM_FIELD_TYPE },
        { "im/u/alice/out/dm/bob", "{\"body\":\"\"}", MQIM_BODY_EMPTY },
        { "im/u/alice/out/dm/bob", "{\"to\":\"carol\",\"body\":\"x\"}", MQIM_FIELD_RANGE },
        { "im/u/alice/out/dm/bob", "{\"id\":\"a b\",\"body\":\"x\"}", MQIM_ID_BAD_CHAR },
        { "im/u/alice/out/dm/bob", "{\"ack\":true,\"body\":\"x\"}", MQIM_FIELD_TYPE },
        { "im/u/alice/out/dm/bob", "{\"ack\":\"delivered\",\"body\":\"x\"}", MQIM_FIELD_RANGE },
        { "im/u/alice/out/dm/bob", "bad \xff utf8", MQIM_UTF8_INVALID },
        { "im/u/alice/out/dm/nobody", "hi", MQIM_UNKNOWN_PEER },
        { "im/u/alice/out/dm/bob", big_body, MQIM_BODY_TOO_LARGE },
        { "im/u/alice/out/dm/bob", big_payload, MQIM_PAYLOAD_TOO_LARGE },
        { "im/u/alice/out/dm/bob", deep, MQIM_JSON_TOO_DEEP },
        { "im/u/alice/out/group/team", "hi", MQIM_NOT_MEMBER }, /* no such group */
        { "im/u/alice/out/bogus", "hi", MQIM_TOPIC_UNKNOWN },
        { "im/u/alice/out/receipt", "[1,2]", MQIM_JSON_NOT_OBJECT },
        { "im/u/alice/out/receipt", "{\"status\":\"seen\",\"seqs\":[1]}", MQIM_FIELD_TYPE },
        { "im/u/alice/out/status/phone", "{\"state\":\"dancing\"}", MQIM_FIELD_TYPE },
        /* read by the strict reader alone (issue 16): the same answers */
        { "im/u/alice/out/status/phone", "{\"state\":1}", MQIM_FIELD_TYPE },
        { "im/u/alice/out/status/phone", "{\"state\":\"online\",\"epoch\":\"3\"}", MQIM_FIELD_TYPE },
        { "im/u/alice/out/status/phone", "{\"state\":\"online\",\"epoch\":-1}", MQIM_FIELD_TYPE },
        { "im/u/alice/out/status/phone", "[\"online\"]", MQIM_JSON_NOT_OBJECT },
        { "im/u/alice/out/status/phone", "{\"state\":\"onl", MQIM_JSON_MALFORMED },
    };
    memset(big_body, 'a', 4097);
    big_body[4097] = '\0';
    memset(big_payload, 'b', 16385);
    big_payload[16385] = '\0';
    snprintf(deep, sizeof(deep), "{\"a\":[[[[[[[[[1]]]]]]]]],\"body\":\"x\"}");
    setup(NULL, 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        mqim_status_t st = pub(cases[i].topic, cases[i].payload, 1);
        cJSON *j;
        CHECK_EQ_INT(st, cases[i].code);
        drain();
        CHECK_EQ_INT(nouts, 1);
        if (nouts != 1) {
            fprintf(stderr, "  case %zu\n", i);
            continue;
        }
        j = json_of(&outs[0]);
        CHECK(strcmp(outs[0].topic, "im/u/alice/in/ack") == 0);
        CHECK(j != NULL && strcmp(jstr(j, "status"), "rejected") == 0);
        CHECK(j != NULL && strcmp(jstr(j, "code"), mqim_status_name(cases[i].code)) == 0);
        CHECK(j != NULL && jnum(j, "code_num") == (double)cases[i].code);
        CHECK(j != NULL && jstr(j, "reason") != NULL && strlen(jstr(j, "reason")) > 5u);
        if (j == NULL || strcmp(jstr(j, "code"), mqim_status_name(cases[i].code)) != 0) {
            fprintf(stderr, "  case %zu: %s\n", i, outs[0].payload);
        }
        cJSON_Delete(j);
    }
    /* a topic outside the scheme with no user to tell is ignored, loudly */
    CHECK_EQ_INT(pub("other/thing", "x", 1), MQIM_TOPIC_BAD_ROOT);
    drain();
    CHECK_EQ_INT(nouts, 0);
    /* QoS 0 rejection goes out directly at QoS 0 */
    ndirect = 0;
    CHECK_EQ_INT(pub("im/u/alice/out/dm/bob", "{oops", 0), MQIM_JSON_MALFORMED);
    CHECK_EQ_INT(ndirect, 1);
    CHECK(strcmp(direct[0].topic, "im/u/alice/in/ack") == 0 && direct[0].qos == 0);
    teardown();
}

static void test_ephemeral_qos0(void)
{
    cJSON *j;
    setup(NULL, 0);
    CHECK_EQ_INT(pub("im/u/alice/out/dm/bob", "{\"type\":\"typing\",\"body\":\"1\"}", 0), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 0); /* nothing stored, nothing acked */
    CHECK_EQ_INT(ndirect, 1);
    CHECK(strcmp(direct[0].topic, "im/u/bob/in/msg") == 0 && direct[0].qos == 0);
    j = cJSON_Parse(direct[0].payload);
    CHECK(j != NULL && strcmp(jstr(j, "type"), "typing") == 0 && jnum(j, "seq") < 0.0);
    cJSON_Delete(j);
    /* to an unknown user: rejected at QoS 0, nothing forwarded */
    ndirect = 0;
    CHECK_EQ_INT(pub("im/u/alice/out/dm/nobody", "typing", 0), MQIM_UNKNOWN_PEER);
    CHECK_EQ_INT(ndirect, 1);
    CHECK(strcmp(direct[0].topic, "im/u/alice/in/ack") == 0 && strstr(direct[0].payload, "unknown_peer") != NULL);
    teardown();
}

static void test_accept_any_and_quota(void)
{
    mqim_router_config_t c = { .root = "im", .sync_page = 100, .accept_any_user = true,
                               .inbox_quota = 2 };
    setup(&c, 0);
    CHECK_EQ_INT(pub("im/u/alice/out/dm/dave", "one", 1), MQIM_OK);
    CHECK_EQ_INT(pub("im/u/carol/out/dm/dave", "two", 1), MQIM_OK);
    CHECK_EQ_INT(pub("im/u/bob/out/dm/dave", "three", 1), MQIM_QUOTA_FULL);
    drain();
    CHECK_OUT(nouts - 1, "im/u/bob/in/ack", "code", "quota_full");
    teardown();
}

static void test_rate_limit(void)
{
    mqim_router_config_t c = { .root = "im", .sync_page = 100, .rate_per_sec = 1, .rate_burst = 3 };
    int ok = 0, limited = 0;
    setup(&c, 0);
    for (int i = 0; i < 10; i++) {
        mqim_status_t st = pub("im/u/alice/out/dm/bob", "spam", 1);
        ok += st == MQIM_OK;
        limited += st == MQIM_RATE_LIMITED;
    }
    CHECK_EQ_INT(ok, 3);
    CHECK_EQ_INT(limited, 7);
    drain();
    CHECK_EQ_INT(nouts, 3 * 2 + 7); /* every publish accounted for */
    /* others are not affected */
    CHECK_EQ_INT(pub("im/u/bob/out/dm/alice", "fine", 1), MQIM_OK);
    teardown();
}

static void test_receipts(void)
{
    cJSON *j;
    setup(NULL, 0);
    pub("im/u/alice/out/dm/bob", "{\"id\":\"r1\",\"body\":\"one\"}", 1);  /* bob 1, alice 1 */
    pub("im/u/alice/out/dm/bob", "{\"id\":\"r2\",\"body\":\"two\"}", 1);  /* bob 2, alice 2 */
    pub("im/u/bob/out/dm/alice", "{\"id\":\"r3\",\"body\":\"back\"}", 1); /* bob 3 (echo), alice 3 */
    pub("im/u/alice/out/dm/bob", "{\"id\":\"r4\",\"body\":\"four\"}", 1); /* bob 4, alice 4 */
    drain();
    CHECK_EQ_INT(pub("im/u/bob/out/receipt", "{\"status\":\"delivered\",\"seqs\":[1,2],\"device\":\"phone\"}", 1),
                 MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 2);
    CHECK_OUT(0, "im/u/alice/in/ack", "status", "delivered");
    CHECK_OUT(0, "im/u/alice/in/ack", "id", "r1");
    CHECK_OUT(0, "im/u/alice/in/ack", "by", "bob");
    CHECK_OUT(0, "im/u/alice/in/ack", "device", "phone");
    CHECK_OUT(1, "im/u/alice/in/ack", "id", "r2");
    j = json_of(&outs[1]);
    CHECK(jnum(j, "seq") == 2.0);
    cJSON_Delete(j);
    /* bob's own echo (3) and a missing seq (99) are not his to receipt */
    CHECK_EQ_INT(pub("im/u/bob/out/receipt", "{\"status\":\"read\",\"seqs\":[3,4,99]}", 1),
                 MQIM_NOT_YOUR_MESSAGE);
    drain();
    CHECK_EQ_INT(nouts, 2);
    CHECK_OUT(0, "im/u/alice/in/ack", "id", "r4");
    CHECK_OUT(1, "im/u/bob/in/ack", "code", "not_your_message");
    j = json_of(&outs[1]);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "seqs")) == 2);
    cJSON_Delete(j);
    /* a seq named many times is receipted once (no amplification), and a
     * bad one repeated is named once */
    CHECK_EQ_INT(pub("im/u/bob/out/receipt", "{\"status\":\"delivered\",\"seqs\":[4,4,4,4,4,99,99,4]}", 1),
                 MQIM_NOT_YOUR_MESSAGE);
    drain();
    CHECK_EQ_INT(nouts, 2);
    CHECK_OUT(0, "im/u/alice/in/ack", "id", "r4");
    CHECK_OUT(1, "im/u/bob/in/ack", "code", "not_your_message");
    j = json_of(&outs[1]);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "seqs")) == 1);
    cJSON_Delete(j);
    /* carol has no such messages */
    CHECK_EQ_INT(pub("im/u/carol/out/receipt", "{\"status\":\"delivered\",\"seqs\":[1]}", 1),
                 MQIM_NOT_YOUR_MESSAGE);
    drain();
    CHECK_EQ_INT(nouts, 1);
    CHECK_OUT(0, "im/u/carol/in/ack", "status", "rejected");
    /* a device that could not open a message refuses it instead of
     * `delivered`: the sender gets a distinct ack with the code (issue 14) */
    CHECK_EQ_INT(pub("im/u/bob/out/receipt",
                     "{\"status\":\"refused\",\"seqs\":[2],\"code\":\"e2e_auth_failed\",\"device\":\"tab\"}", 1),
                 MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 1);
    CHECK_OUT(0, "im/u/alice/in/ack", "status", "refused");
    CHECK_OUT(0, "im/u/alice/in/ack", "id", "r2");
    CHECK_OUT(0, "im/u/alice/in/ack", "by", "bob");
    CHECK_OUT(0, "im/u/alice/in/ack", "device", "tab");
    CHECK_OUT(0, "im/u/alice/in/ack", "code", "e2e_auth_failed");
    j = json_of(&outs[0]);
    CHECK(jnum(j, "seq") == 2.0);
    cJSON_Delete(j);
    /* a refusal needs a code that is a status name, and seqs */
    CHECK_EQ_INT(pub("im/u/bob/out/receipt", "{\"status\":\"refused\",\"seqs\":[2]}", 1), MQIM_FIELD_TYPE);
    CHECK_EQ_INT(pub("im/u/bob/out/receipt", "{\"status\":\"refused\",\"seqs\":[2],\"code\":\"Bad Code\"}", 1),
                 MQIM_FIELD_TYPE);
    CHECK_EQ_INT(pub("im/u/bob/out/receipt", "{\"status\":\"refused\",\"code\":\"e2e_replay\"}", 1),
                 MQIM_FIELD_MISSING);
    drain();
    CHECK_EQ_INT(nouts, 3);
    CHECK_OUT(0, "im/u/bob/in/ack", "status", "rejected");
    CHECK_OUT(2, "im/u/bob/in/ack", "code", "field_missing");
    /* read up to 2 in the chat with alice: r1, r2 */
    CHECK_EQ_INT(pub("im/u/bob/out/receipt", "{\"status\":\"read\",\"chat\":\"alice\",\"upto\":2}", 1),
                 MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 3);
    CHECK_OUT(0, "im/u/alice/in/ack", "status", "read");
    CHECK_OUT(0, "im/u/alice/in/ack", "id", "r1");
    CHECK_OUT(1, "im/u/alice/in/ack", "id", "r2");
    /* and every device of bob hears that the chat is read up to 2 */
    CHECK_OUT(2, "im/u/bob/in/msg", "type", "read");
    CHECK_OUT(2, "im/u/bob/in/msg", "to", "alice");
    /* forward-only: a lower cursor does nothing */
    CHECK_EQ_INT(pub("im/u/bob/out/receipt", "{\"status\":\"read\",\"chat\":\"alice\",\"upto\":1}", 1),
                 MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 0);
    /* up to 4: only r4 is new (3 is bob's own) */
    CHECK_EQ_INT(pub("im/u/bob/out/receipt", "{\"status\":\"read\",\"chat\":\"alice\",\"upto\":4}", 1),
                 MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 2);
    CHECK_OUT(0, "im/u/alice/in/ack", "id", "r4");
    CHECK_OUT(1, "im/u/bob/in/msg", "type", "read");
    /* beyond the inbox */
    CHECK_EQ_INT(pub("im/u/bob/out/receipt", "{\"status\":\"read\",\"chat\":\"alice\",\"upto\":50}", 1),
                 MQIM_NOT_YOUR_MESSAGE);
    teardown();
}

static void test_presence_epochs(void)
{
    cJSON *j, *devs;
    setup(NULL, 0);
    CHECK_EQ_INT(pub("im/u/alice/out/status/phone", "{\"state\":\"online\",\"epoch\":5}", 1), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 1);
    CHECK_OUT(0, "im/presence/alice", "state", "online");
    CHECK(outs[0].retain);
    /* reconnect with epoch 6, then the old connection's will (epoch 5) arrives late */
    CHECK_EQ_INT(pub("im/u/alice/out/status/phone", "{\"state\":\"online\",\"epoch\":6}", 1), MQIM_OK);
    drain();
    CHECK_EQ_INT(pub("im/u/alice/out/status/phone", "{\"state\":\"offline\",\"epoch\":5}", 1), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 0); /* stale: ignored */
    /* a second device */
    CHECK_EQ_INT(pub("im/u/alice/out/status/laptop", "{\"state\":\"away\"}", 1), MQIM_OK);
    drain();
    CHECK_OUT(0, "im/presence/alice", "state", "online");
    j = json_of(&outs[0]);
    devs = cJSON_GetObjectItemCaseSensitive(j, "devices");
    CHECK(strcmp(jstr(cJSON_GetObjectItemCaseSensitive(devs, "laptop"), "state"), "away") == 0);
    CHECK(strcmp(jstr(cJSON_GetObjectItemCaseSensitive(devs, "phone"), "state"), "online") == 0);
    cJSON_Delete(j);
    /* the real will of epoch 6, and the laptop leaves: offline with last_seen */
    pub("im/u/alice/out/status/phone", "{\"state\":\"offline\",\"epoch\":6}", 1);
    pub("im/u/alice/out/status/laptop", "{\"state\":\"offline\"}", 1);
    drain();
    CHECK_OUT(nouts - 1, "im/presence/alice", "state", "offline");
    j = json_of(&outs[nouts - 1]);
    CHECK(jnum(j, "last_seen") == (double)clock_ms);
    cJSON_Delete(j);
    /* a repeat changes nothing, and an empty retained payload is ignored */
    CHECK_EQ_INT(pub("im/u/alice/out/status/laptop", "{\"state\":\"offline\"}", 1), MQIM_OK);
    CHECK_EQ_INT(pub("im/u/alice/out/status/laptop", "", 1), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 0);
    teardown();
}

static void test_sync_and_history(void)
{
    cJSON *j, *msgs;
    setup(NULL, 0);
    for (int i = 0; i < 5; i++) {
        char p[64];
        snprintf(p, sizeof(p), "{\"id\":\"h%d\",\"body\":\"m%d\"}", i, i);
        pub(i % 2 ? "im/u/bob/out/dm/alice" : "im/u/alice/out/dm/bob", p, 1);
    }
    pub("im/u/carol/out/dm/bob", "from carol", 1); /* bob 6 */
    drain();
    /* sync after 1, limit 2: replays 2,3 then a response, not complete */
    CHECK_EQ_INT(pub("im/u/bob/out/ctl", "{\"op\":\"sync\",\"after\":1,\"limit\":2,\"req\":\"s1\"}", 1),
                 MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 3);
    CHECK_OUT(0, "im/u/bob/in/msg", "id", "h1");
    CHECK_OUT(1, "im/u/bob/in/msg", "id", "h2");
    CHECK_OUT(2, "im/u/bob/in/res", "req", "s1");
    j = json_of(&outs[2]);
    CHECK(jbool(j, "ok") && !jbool(j, "complete") && jnum(j, "last") == 3.0 && jnum(j, "count") == 2.0);
    cJSON_Delete(j);
    CHECK_EQ_INT(pub("im/u/bob/out/ctl", "{\"op\":\"sync\",\"after\":3,\"req\":7}", 1), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 4);
    j = json_of(&outs[3]);
    CHECK(jbool(j, "complete") && jnum(j, "last") == 6.0 && jnum(j, "req") == 7.0);
    cJSON_Delete(j);
    /* history with alice: latest 2 of 5, oldest first */
    CHECK_EQ_INT(pub("im/u/bob/out/ctl", "{\"op\":\"history\",\"with\":\"alice\",\"limit\":2}", 1), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 1);
    j = json_of(&outs[0]);
    msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
    CHECK(cJSON_GetArraySize(msgs) == 2);
    CHECK(strcmp(jstr(cJSON_GetArrayItem(msgs, 0), "id"), "h3") == 0);
    CHECK(strcmp(jstr(cJSON_GetArrayItem(msgs, 1), "id"), "h4") == 0);
    CHECK(!jbool(j, "complete"));
    cJSON_Delete(j);
    /* before 4: h0..h2, complete */
    pub("im/u/bob/out/ctl", "{\"op\":\"history\",\"with\":\"alice\",\"before\":4,\"limit\":10}", 1);
    drain();
    j = json_of(&outs[0]);
    msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
    CHECK(cJSON_GetArraySize(msgs) == 3 && jbool(j, "complete"));
    CHECK(strcmp(jstr(cJSON_GetArrayItem(msgs, 0), "id"), "h0") == 0);
    cJSON_Delete(j);
    /* after 2: h2.. wait, seq 3..5 = h2, h3, h4 */
    pub("im/u/bob/out/ctl", "{\"op\":\"history\",\"with\":\"alice\",\"after\":2,\"limit\":2}", 1);
    drain();
    j = json_of(&outs[0]);
    msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
    CHECK(cJSON_GetArraySize(msgs) == 2 && !jbool(j, "complete"));
    CHECK(strcmp(jstr(cJSON_GetArrayItem(msgs, 0), "id"), "h2") == 0);
    cJSON_Delete(j);
    /* errors */
    CHECK_EQ_INT(pub("im/u/bob/out/ctl", "{\"op\":\"dance\"}", 1), MQIM_UNKNOWN_OP);
    drain();
    CHECK_OUT(0, "im/u/bob/in/res", "code", "unknown_op");
    /* the reason lists every op of the features' tables (issue 16) */
    j = json_of(&outs[0]);
    CHECK(strcmp(jstr(j, "reason"), "unknown \"op\" (known: sync, history, presence, group_create, "
                 "group_add, group_remove, group_leave, group_rename, group_set, group_info, groups, "
                 "msg_status, chats, file_begin, file_put, file_get, file_info, keys)") == 0);
    cJSON_Delete(j);
    CHECK_EQ_INT(pub("im/u/bob/out/ctl", "{\"op\":\"history\",\"with\":\"a/b\"}", 1), MQIM_FIELD_TYPE);
    drain();
    CHECK_EQ_INT(nouts, 1);
    /* a user that does not exist: what a message to it gets, not an empty page */
    CHECK_EQ_INT(pub("im/u/bob/out/ctl", "{\"op\":\"history\",\"with\":\"nobody\"}", 1), MQIM_UNKNOWN_PEER);
    drain();
    CHECK_OUT(0, "im/u/bob/in/res", "code", "unknown_peer");
    teardown();
}

/* A device status read by the strict reader alone (issue 16): members in
 * any order, "epoch" honoured wherever it stands. */
static void test_status_reordered(void)
{
    setup(NULL, 0);
    CHECK_EQ_INT(pub("im/u/alice/out/status/phone", "{\"epoch\":3, \"state\":\"online\"}", 1), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 1);
    CHECK_OUT(0, "im/presence/alice", "state", "online");
    /* an older connection's will: stale, ignored */
    CHECK_EQ_INT(pub("im/u/alice/out/status/phone", "{\"epoch\":2,\"state\":\"offline\"}", 1), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 0);
    teardown();
}

static void test_response_topic_and_presence_op(void)
{
    cJSON *j, *users;
    setup(NULL, 0);
    pub("im/u/carol/out/status/sh", "{\"state\":\"online\"}", 1);
    drain();
    CHECK_EQ_INT(pub5("im/u/alice/out/ctl", "{\"op\":\"presence\",\"users\":[\"carol\",\"zed\"]}", 1,
                      "im/u/alice/in/res/rr", "corr-1"),
                 MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 1);
    CHECK(strcmp(outs[0].topic, "im/u/alice/in/res/rr") == 0);
    CHECK(strcmp(outs[0].corr, "corr-1") == 0);
    j = json_of(&outs[0]);
    users = cJSON_GetObjectItemCaseSensitive(j, "users");
    CHECK(cJSON_GetArraySize(users) == 2);
    CHECK(strcmp(jstr(cJSON_GetArrayItem(users, 0), "state"), "online") == 0);
    CHECK(strcmp(jstr(cJSON_GetArrayItem(users, 1), "state"), "unknown") == 0);
    cJSON_Delete(j);
    /* a response topic outside alice's in/ is refused, answered on in/res */
    CHECK_EQ_INT(pub5("im/u/alice/out/ctl", "{\"op\":\"presence\",\"users\":[\"bob\"]}", 1,
                      "im/u/bob/in/msg", "x"),
                 MQIM_RESPONSE_TOPIC);
    drain();
    CHECK_EQ_INT(nouts, 1);
    CHECK_OUT(0, "im/u/alice/in/res", "code", "response_topic");
    teardown();
}

static void test_retention_and_pruned_sync(void)
{
    mqim_router_config_t c = { .root = "im", .sync_page = 100, .retain_count = 3 };
    cJSON *j;
    uint64_t pruned = 0;
    setup(&c, 0);
    for (int i = 0; i < 5; i++) {
        pub("im/u/alice/out/dm/bob", "msg", 1);
    }
    drain();
    pub("im/u/bob/out/ctl", "{\"op\":\"sync\",\"after\":0}", 1);
    drain();
    CHECK_EQ_INT(nouts, 4); /* 3 kept + response */
    j = json_of(&outs[3]);
    CHECK(jbool(j, "pruned") && jnum(j, "first_seq") == 3.0 && jnum(j, "count") == 3.0);
    cJSON_Delete(j);
    /* age retention */
    c.retain_count = 0;
    c.retain_age_ms = 1000;
    CHECK_EQ_INT(mqim_router_sweep(store, &c, clock_ms + 5000, &pruned), MQIM_OK);
    CHECK(pruned == 6u); /* bob's 3 and alice's 3 */
    {
        mqim_txn_t txn;
        mqim_store_stats_t s;
        mqim_txn_begin(store, MQIM_TXN_READ, &txn);
        mqim_store_stats(&txn, &s);
        CHECK(s.messages == 0u && s.inbox_entries == 0u);
        mqim_txn_abort(&txn);
    }
    teardown();
}

static void set_policy(const char *user, uint64_t retain_count, uint64_t retain_days, uint64_t quota)
{
    mqim_txn_t txn;
    mqim_user_rec_t u;
    mqim_txn_begin(store, MQIM_TXN_WRITE, &txn);
    CHECK_EQ_INT(mqim_store_user_get(&txn, mqim_str_from_cstr(user), &u), MQIM_OK);
    u.retain_count = retain_count;
    u.retain_days = retain_days;
    u.inbox_quota = quota;
    mqim_store_user_put(&txn, mqim_str_from_cstr(user), &u);
    mqim_txn_commit(&txn);
}

static uint64_t inbox_count(const char *user)
{
    mqim_txn_t txn;
    mqim_user_rec_t u;
    u.count = 0;
    mqim_txn_begin(store, MQIM_TXN_READ, &txn);
    mqim_store_user_get(&txn, mqim_str_from_cstr(user), &u);
    mqim_txn_abort(&txn);
    return u.count;
}

/* Per-user retention and quota override the configured defaults. */
static void test_per_user_policy(void)
{
    mqim_router_config_t c = { .root = "im", .sync_page = 100, .inbox_quota = 3,
                               .retain_age_ms = 1000 };
    uint64_t pruned = 0;
    setup(&c, 0);
    set_policy("bob", 2, 0, 0);                        /* bob: keep 2, so never full */
    set_policy("carol", 0, MQIM_POLICY_UNLIMITED, 1);  /* carol: quota 1, kept forever */
    set_policy("alice", 0, 0, MQIM_POLICY_UNLIMITED);  /* alice: no quota, default age */
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_INT(pub("im/u/alice/out/dm/bob", "to bob", 1), MQIM_OK);
    }
    CHECK(inbox_count("bob") == 2u);
    CHECK_EQ_INT(pub("im/u/alice/out/dm/carol", "to carol", 1), MQIM_OK);
    CHECK_EQ_INT(pub("im/u/alice/out/dm/carol", "again", 1), MQIM_QUOTA_FULL);
    drain();
    CHECK(strstr(outs[nouts - 1].payload, "is full (1 messages)") != NULL);
    CHECK(inbox_count("alice") == 5u); /* beyond the default quota of 3: hers is none */
    /* without her override, alice's own inbox is full */
    set_policy("alice", 0, 0, 0);
    CHECK_EQ_INT(pub("im/u/alice/out/dm/bob", "one more", 1), MQIM_QUOTA_FULL);
    drain();
    CHECK(strstr(outs[nouts - 1].payload, "your own inbox is full (3 messages)") != NULL);
    /* age: default 1 s for alice and bob, none for carol */
    CHECK_EQ_INT(mqim_router_sweep(store, &rcfg, clock_ms + 5000, &pruned), MQIM_OK);
    CHECK(inbox_count("alice") == 0u && inbox_count("bob") == 0u);
    CHECK(inbox_count("carol") == 1u);
    teardown();
}

static void test_store_full(void)
{
    TEST_LMDB_ONLY();
    int full = 0;
    static char body[4000];
    memset(body, 'z', sizeof(body) - 1);
    setup(NULL, 256 * 1024);
    for (int i = 0; i < 400 && !full; i++) {
        mqim_status_t st = pub("im/u/alice/out/dm/bob", body, 1);
        if (st == MQIM_STORE_FULL) {
            full = 1;
        } else {
            CHECK_EQ_INT(st, MQIM_OK);
        }
        drain(); /* the pump keeps up; the store still fills with history */
    }
    CHECK(full);
    /* the rejection reached alice: stored if possible, else published directly */
    CHECK((nouts >= 1 && strstr(outs[nouts - 1].payload, "store_full") != NULL) ||
          (ndirect >= 1 && strstr(direct[ndirect - 1].payload, "store_full") != NULL));
    teardown();
}

/* A full disk (here: RLIMIT_FSIZE, the same refusal to grow the file) is
 * told apart from a full map: the sender's rejection says disk_full, and
 * once there is room again the next message is stored. */
static void test_disk_full(void)
{
    static char body[4000];
    struct rlimit old, lim;
    struct stat sb;
    char path[300];
    int full = 0;
    memset(body, 'd', sizeof(body) - 1);
    TEST_LMDB_ONLY();
    setup(NULL, 0);
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    CHECK(stat(path, &sb) == 0);
    CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
    lim = old;
    lim.rlim_cur = (rlim_t)sb.st_size + 256u * 1024u;
    signal(SIGXFSZ, SIG_IGN);
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    for (int i = 0; i < 400 && !full; i++) {
        mqim_status_t st = pub("im/u/alice/out/dm/bob", body, 1);
        if (st == MQIM_DISK_FULL) {
            full = 1;
        } else {
            CHECK_EQ_INT(st, MQIM_OK);
        }
        drain();
    }
    CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
    CHECK(full);
    CHECK((nouts >= 1 && strstr(outs[nouts - 1].payload, "\"code\":\"disk_full\"") != NULL) ||
          (ndirect >= 1 && strstr(direct[ndirect - 1].payload, "\"code\":\"disk_full\"") != NULL));
    CHECK((nouts >= 1 && strstr(outs[nouts - 1].payload, "no space left") != NULL) ||
          (ndirect >= 1 && strstr(direct[ndirect - 1].payload, "no space left") != NULL));
    /* room again: stored as usual */
    CHECK_EQ_INT(pub("im/u/alice/out/dm/bob", "after the disk was freed", 1), MQIM_OK);
    teardown();
}

/* ---- group retention ---- */

/* A control request; returns its parsed response (the last in/res or
 * response-topic publish), caller frees. */
static cJSON *ctl(const char *user, const char *json, mqim_status_t expect)
{
    char topic[64];
    snprintf(topic, sizeof(topic), "im/u/%s/out/ctl", user);
    CHECK_EQ_INT(pub(topic, json, 1), expect);
    drain();
    for (int i = nouts - 1; i >= 0; i--) {
        if (strstr(outs[i].topic, "/in/res") != NULL) {
            return json_of(&outs[i]);
        }
    }
    CHECK(!"no response");
    return NULL;
}

static void gsend(const char *user, const char *group, const char *id)
{
    char topic[64], payload[96];
    snprintf(topic, sizeof(topic), "im/u/%s/out/group/%s", user, group);
    snprintf(payload, sizeof(payload), "{\"id\":\"%s\",\"body\":\"text of %s\"}", id, id);
    CHECK_EQ_INT(pub(topic, payload, 1), MQIM_OK);
}

static mqim_store_stats_t stats(void)
{
    mqim_txn_t txn;
    mqim_store_stats_t st;
    mqim_txn_begin(store, MQIM_TXN_READ, &txn);
    mqim_store_stats(&txn, &st);
    mqim_txn_abort(&txn);
    return st;
}

static mqim_user_rec_t user_rec(const char *user)
{
    mqim_txn_t txn;
    mqim_user_rec_t u;
    memset(&u, 0, sizeof(u));
    mqim_txn_begin(store, MQIM_TXN_READ, &txn);
    mqim_store_user_get(&txn, mqim_str_from_cstr(user), &u);
    mqim_txn_abort(&txn);
    return u;
}

static uint64_t group_msgs(const char *group)
{
    mqim_txn_t txn;
    mqim_group_rec_t g;
    memset(&g, 0, sizeof(g));
    mqim_txn_begin(store, MQIM_TXN_READ, &txn);
    mqim_store_group_get(&txn, mqim_str_from_cstr(group), &g);
    mqim_txn_abort(&txn);
    return g.msgs;
}

/* The sync of user after `after`: checks the replay is every seq from
 * after+1 to the response's last, in order, each a message or a tombstone.
 * Returns the number of tombstones; *resp gets the response. */
static int sync_contiguous(const char *user, uint64_t after, cJSON **resp)
{
    char req[80], msg_topic[64];
    uint64_t expect = after + 1u;
    int tombs = 0;
    snprintf(req, sizeof(req), "{\"op\":\"sync\",\"after\":%llu}", (unsigned long long)after);
    snprintf(msg_topic, sizeof(msg_topic), "im/u/%s/in/msg", user);
    *resp = ctl(user, req, MQIM_OK);
    for (int i = 0; i < nouts; i++) {
        cJSON *j;
        if (strcmp(outs[i].topic, msg_topic) != 0) {
            continue;
        }
        j = json_of(&outs[i]);
        CHECK(j != NULL && jnum(j, "seq") == (double)expect);
        if (j != NULL && jstr(j, "type") != NULL && strcmp(jstr(j, "type"), "pruned") == 0) {
            /* a tombstone: the seq, the chat, the ts; no id, no sender, no body */
            CHECK(jstr(j, "id") == NULL && jstr(j, "from") == NULL && jstr(j, "body") == NULL);
            CHECK(jstr(j, "group") != NULL && jnum(j, "ts") > 0.0);
            tombs++;
        } else {
            CHECK(j != NULL && jstr(j, "id") != NULL && jstr(j, "body") != NULL);
        }
        expect++;
        cJSON_Delete(j);
    }
    CHECK(*resp != NULL && jnum(*resp, "last") == (double)(expect - 1u));
    return tombs;
}

/* Count retention of a group: the oldest copies become tombstones in every
 * member inbox; sync stays contiguous; history skips them and says pruned;
 * unread ignores them; receipts and msg_status on them say not_found. */
static void test_group_count_retention(void)
{
    cJSON *j, *msgs, *chats;
    int tombs;
    setup(NULL, 0);
    pub("im/u/carol/out/dm/bob", "before the group", 1);             /* bob 1, carol 1 */
    j = ctl("alice", "{\"op\":\"group_create\",\"group\":\"team\",\"members\":[\"bob\"]}", MQIM_OK);
    cJSON_Delete(j);                                                  /* bob 2, alice 1 */
    j = ctl("alice", "{\"op\":\"group_set\",\"group\":\"team\",\"retain_count\":3}", MQIM_OK);
    CHECK(j != NULL && jbool(j, "ok") && jnum(j, "retain_count") == 3.0);
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "retain_days")));
    cJSON_Delete(j);
    for (int i = 0; i < 5; i++) {                                     /* bob 3..7, alice 2..6 */
        char id[8];
        snprintf(id, sizeof(id), "g%d", i);
        gsend("alice", "team", id);
    }
    drain();
    /* 6 group messages (the create event and g0..g4), 3 kept: g2..g4 */
    CHECK(group_msgs("team") == 3u);
    CHECK(user_rec("bob").count == 4u);   /* carol's DM + 3 */
    CHECK(user_rec("alice").count == 3u);
    CHECK(user_rec("bob").first_seq == 1u); /* no seq removed: tombstones */
    CHECK(stats().messages == 4u);          /* the DM + 3 group messages, once each */
    CHECK(stats().inbox_entries == 1u + 7u + 6u); /* carol's echo, bob's, alice's */

    /* sync from the start: every seq, tombstones included, nothing pruned */
    tombs = sync_contiguous("bob", 0, &j);
    CHECK_EQ_INT(tombs, 3);
    CHECK(jnum(j, "count") == 7.0 && jbool(j, "complete") && !jbool(j, "pruned"));
    cJSON_Delete(j);
    tombs = sync_contiguous("bob", 3, &j); /* a device that saw up to 3 */
    CHECK_EQ_INT(tombs, 1);
    cJSON_Delete(j);
    {   /* a sync page boundary inside the tombstones */
        j = ctl("bob", "{\"op\":\"sync\",\"after\":1,\"limit\":2}", MQIM_OK);
        CHECK(jnum(j, "count") == 2.0 && !jbool(j, "complete") && jnum(j, "last") == 3.0);
        cJSON_Delete(j);
    }

    /* history: only what is held, and it says older messages are gone */
    j = ctl("bob", "{\"op\":\"history\",\"group\":\"team\"}", MQIM_OK);
    msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
    CHECK(cJSON_GetArraySize(msgs) == 3);
    CHECK(strcmp(jstr(cJSON_GetArrayItem(msgs, 0), "id"), "g2") == 0);
    CHECK(jbool(j, "complete") && jbool(j, "pruned") && jnum(j, "first_seq") == 5.0);
    cJSON_Delete(j);
    j = ctl("bob", "{\"op\":\"history\",\"group\":\"team\",\"limit\":2}", MQIM_OK);
    msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
    CHECK(cJSON_GetArraySize(msgs) == 2 && !jbool(j, "complete") && jbool(j, "pruned"));
    CHECK(strcmp(jstr(cJSON_GetArrayItem(msgs, 0), "id"), "g3") == 0);
    cJSON_Delete(j);
    j = ctl("bob", "{\"op\":\"history\",\"group\":\"team\",\"before\":6,\"limit\":2}", MQIM_OK);
    msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
    CHECK(cJSON_GetArraySize(msgs) == 1 && jbool(j, "complete")); /* g2; tombstones are no page */
    cJSON_Delete(j);
    j = ctl("bob", "{\"op\":\"history\",\"group\":\"team\",\"after\":1,\"limit\":3}", MQIM_OK);
    msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
    CHECK(cJSON_GetArraySize(msgs) == 3 && jbool(j, "complete"));
    cJSON_Delete(j);
    /* a chat without retention says nothing of it */
    j = ctl("bob", "{\"op\":\"history\",\"with\":\"carol\"}", MQIM_OK);
    CHECK(cJSON_GetObjectItemCaseSensitive(j, "pruned") == NULL);
    cJSON_Delete(j);

    /* chats: unread counts messages, not tombstones */
    j = ctl("bob", "{\"op\":\"chats\"}", MQIM_OK);
    chats = cJSON_GetObjectItemCaseSensitive(j, "chats");
    CHECK(cJSON_GetArraySize(chats) == 2);
    CHECK(strcmp(jstr(cJSON_GetArrayItem(chats, 0), "group"), "team") == 0);
    CHECK(jnum(cJSON_GetArrayItem(chats, 0), "unread") == 3.0);
    CHECK(jnum(cJSON_GetArrayItem(chats, 0), "last_seq") == 7.0);
    CHECK(jnum(cJSON_GetArrayItem(chats, 1), "unread") == 1.0);
    cJSON_Delete(j);

    /* receipts: the held one is forwarded, the tombstone is named not_found */
    CHECK_EQ_INT(pub("im/u/bob/out/receipt", "{\"status\":\"delivered\",\"seqs\":[3,5]}", 1), MQIM_NOT_FOUND);
    drain();
    CHECK_EQ_INT(nouts, 2);
    CHECK_OUT(0, "im/u/alice/in/ack", "id", "g2");
    CHECK_OUT(1, "im/u/bob/in/ack", "code", "not_found");
    j = json_of(&outs[1]);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "seqs")) == 1);
    cJSON_Delete(j);
    /* read up to the last: only held messages are acked */
    CHECK_EQ_INT(pub("im/u/bob/out/receipt", "{\"status\":\"read\",\"group\":\"team\",\"upto\":7}", 1), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 4); /* read acks of g2, g3, g4 and bob's read event */
    /* msg_status of a pruned message of mine */
    j = ctl("alice", "{\"op\":\"msg_status\",\"seq\":2}", MQIM_NOT_FOUND);
    CHECK(j != NULL && strcmp(jstr(j, "code"), "not_found") == 0 && strstr(jstr(j, "reason"), "retention") != NULL);
    cJSON_Delete(j);
    j = ctl("alice", "{\"op\":\"msg_status\",\"seq\":6}", MQIM_OK);
    CHECK(j != NULL && strcmp(jstr(j, "id"), "g4") == 0);
    cJSON_Delete(j);
    /* the group ends; made again under its name, it inherits what is left
     * in inboxes (same chat), not the old policy */
    cJSON_Delete(ctl("bob", "{\"op\":\"group_leave\",\"group\":\"team\"}", MQIM_OK));
    CHECK(group_msgs("team") == 3u);
    cJSON_Delete(ctl("alice", "{\"op\":\"group_leave\",\"group\":\"team\"}", MQIM_OK));
    cJSON_Delete(ctl("bob", "{\"op\":\"group_create\",\"group\":\"team\"}", MQIM_OK));
    CHECK(group_msgs("team") == 5u); /* 3 held, alice's leave event, the new create */
    j = ctl("bob", "{\"op\":\"group_set\",\"group\":\"team\",\"retain_count\":2}", MQIM_OK);
    cJSON_Delete(j);
    CHECK(group_msgs("team") == 2u);
    tombs = sync_contiguous("alice", 0, &j);
    CHECK_EQ_INT(tombs, 7); /* all of hers but her leave event */
    cJSON_Delete(j);
    teardown();
}

/* User count retention removes tombstones like any entry, and a copy it
 * removes is no longer counted or tombstoned by the group. */
static void test_group_retention_and_user_retention(void)
{
    cJSON *j;
    int tombs;
    setup(NULL, 0);
    pub("im/u/carol/out/dm/bob", "first", 1);                         /* bob 1 */
    cJSON_Delete(ctl("alice", "{\"op\":\"group_create\",\"group\":\"team\",\"members\":[\"bob\"]}", MQIM_OK));
    cJSON_Delete(ctl("alice", "{\"op\":\"group_set\",\"group\":\"team\",\"retain_count\":3}", MQIM_OK));
    for (int i = 0; i < 5; i++) {
        char id[8];
        snprintf(id, sizeof(id), "g%d", i);
        gsend("alice", "team", id);                                   /* bob 3..7 */
    }
    /* bob: [1 DM] [2..4 tombstones] [5..7 g2..g4]; now he keeps 2 messages */
    set_policy("bob", 2, 0, 0);
    pub("im/u/carol/out/dm/bob", "second", 1);                        /* bob 8 */
    drain();
    CHECK(user_rec("bob").count == 2u);
    CHECK(user_rec("bob").first_seq == 7u); /* the DM, the tombstones, g2, g3 are gone */
    /* sync from before: pruned is said, what follows is contiguous */
    tombs = sync_contiguous("bob", 6, &j);
    CHECK_EQ_INT(tombs, 0);
    cJSON_Delete(j);
    j = ctl("bob", "{\"op\":\"sync\",\"after\":0}", MQIM_OK);
    CHECK(jbool(j, "pruned") && jnum(j, "first_seq") == 7.0 && jnum(j, "count") == 2.0);
    cJSON_Delete(j);
    /* the group still holds g2..g4 (alice has them) */
    CHECK(group_msgs("team") == 3u);
    gsend("alice", "team", "g5");   /* g2 goes: alice's copy is tombstoned, bob's was gone */
    drain();
    CHECK(group_msgs("team") == 3u);
    tombs = sync_contiguous("alice", 0, &j);
    CHECK_EQ_INT(tombs, 4); /* create, g0, g1, g2 */
    cJSON_Delete(j);
    /* bob's own limit of 2 took g4 when g5 came (he holds the DM and g5) */
    j = ctl("bob", "{\"op\":\"history\",\"group\":\"team\"}", MQIM_OK);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "messages")) == 1);
    CHECK(jbool(j, "pruned") && jnum(j, "first_seq") == 9.0);
    cJSON_Delete(j);
    teardown();
}

/* group_set: owner and admins only; values checked; shown in group_info;
 * a lowered limit prunes at once; null goes back to the default. */
static void test_group_set(void)
{
    mqim_router_config_t c = { .root = "im", .sync_page = 100, .group_retain_count = 4 };
    cJSON *j;
    setup(&c, 0);
    cJSON_Delete(ctl("alice", "{\"op\":\"group_create\",\"group\":\"team\",\"members\":[\"bob\"]}", MQIM_OK));
    j = ctl("alice", "{\"op\":\"group_info\",\"group\":\"team\"}", MQIM_OK);
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "retain_count")));
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "retain_days")));
    cJSON_Delete(j);
    j = ctl("bob", "{\"op\":\"group_set\",\"group\":\"team\",\"retain_count\":1}", MQIM_FORBIDDEN);
    CHECK(j != NULL && strcmp(jstr(j, "code"), "forbidden") == 0);
    cJSON_Delete(j);
    j = ctl("carol", "{\"op\":\"group_set\",\"group\":\"team\",\"retain_count\":1}", MQIM_NOT_MEMBER);
    CHECK(j != NULL && strcmp(jstr(j, "code"), "not_member") == 0);
    cJSON_Delete(j);
    cJSON_Delete(ctl("alice", "{\"op\":\"group_set\",\"group\":\"team\",\"retain_count\":-1}", MQIM_FIELD_TYPE));
    cJSON_Delete(ctl("alice", "{\"op\":\"group_set\",\"group\":\"team\",\"retain_days\":\"7\"}", MQIM_FIELD_TYPE));
    cJSON_Delete(ctl("alice", "{\"op\":\"group_set\",\"group\":\"team\",\"retain_days\":1.5}", MQIM_FIELD_TYPE));
    cJSON_Delete(ctl("alice", "{\"op\":\"group_set\",\"group\":\"team\",\"retain_days\":1000001}", MQIM_FIELD_RANGE));
    cJSON_Delete(ctl("alice", "{\"op\":\"group_set\",\"group\":\"team\"}", MQIM_FIELD_MISSING));
    /* the default (4) applies: the create event and g0..g4 are 6 */
    for (int i = 0; i < 5; i++) {
        char id[8];
        snprintf(id, sizeof(id), "g%d", i);
        gsend("bob", "team", id);
    }
    CHECK(group_msgs("team") == 4u);
    /* an admin may: the owner makes bob one */
    cJSON_Delete(ctl("alice", "{\"op\":\"group_add\",\"group\":\"team\",\"users\":[\"carol\"],\"role\":\"admin\"}", MQIM_OK));
    CHECK(group_msgs("team") == 4u); /* the group.add event pushed one out */
    j = ctl("carol", "{\"op\":\"group_set\",\"group\":\"team\",\"retain_count\":2,\"retain_days\":0}", MQIM_OK);
    CHECK(jnum(j, "retain_count") == 2.0 && jnum(j, "retain_days") == 0.0); /* 0: no limit */
    cJSON_Delete(j);
    CHECK(group_msgs("team") == 2u); /* pruned at once */
    CHECK(user_rec("bob").count == 2u);
    j = ctl("alice", "{\"op\":\"group_set\",\"group\":\"team\",\"retain_count\":0}", MQIM_OK);
    CHECK(jnum(j, "retain_count") == 0.0);
    cJSON_Delete(j);
    gsend("bob", "team", "g5");
    gsend("bob", "team", "g6");
    gsend("bob", "team", "g7");
    CHECK(group_msgs("team") == 5u); /* no limit now */
    j = ctl("alice", "{\"op\":\"group_set\",\"group\":\"team\",\"retain_count\":null}", MQIM_OK);
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "retain_count")));
    CHECK(jnum(j, "retain_days") == 0.0); /* untouched */
    cJSON_Delete(j);
    CHECK(group_msgs("team") == 4u); /* back to the default of 4 */
    j = ctl("bob", "{\"op\":\"group_info\",\"group\":\"team\"}", MQIM_OK);
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "retain_count")));
    cJSON_Delete(j);
    teardown();
}

/* Age retention of groups in the sweep, with a fake now: the group default,
 * a group's own retain_days, and a group that keeps everything. */
static void test_group_age_sweep(void)
{
    mqim_router_config_t c = { .root = "im", .sync_page = 100, .group_retain_age_ms = 60000 };
    uint64_t pruned = 0;
    int64_t t0;
    cJSON *j;
    int tombs;
    setup(&c, 0);
    cJSON_Delete(ctl("alice", "{\"op\":\"group_create\",\"group\":\"team\",\"members\":[\"bob\"]}", MQIM_OK));
    cJSON_Delete(ctl("alice", "{\"op\":\"group_create\",\"group\":\"days\",\"members\":[\"bob\"]}", MQIM_OK));
    cJSON_Delete(ctl("alice", "{\"op\":\"group_create\",\"group\":\"keep\",\"members\":[\"bob\"]}", MQIM_OK));
    cJSON_Delete(ctl("alice", "{\"op\":\"group_set\",\"group\":\"days\",\"retain_days\":2}", MQIM_OK));
    cJSON_Delete(ctl("alice", "{\"op\":\"group_set\",\"group\":\"keep\",\"retain_days\":0}", MQIM_OK));
    t0 = clock_ms;
    gsend("alice", "team", "old1");
    gsend("alice", "days", "old2");
    gsend("alice", "keep", "old3");
    pub("im/u/carol/out/dm/bob", "a direct message", 1);
    /* nothing is old yet */
    CHECK_EQ_INT(mqim_router_sweep(store, &rcfg, clock_ms + 1000, &pruned), MQIM_OK);
    CHECK(pruned == 0u);
    clock_ms = t0 + 30000;
    gsend("alice", "team", "new1");
    /* a minute later: team's create event and old1 go (2 copies each) */
    CHECK_EQ_INT(mqim_router_sweep(store, &rcfg, t0 + 61000, &pruned), MQIM_OK);
    CHECK(pruned == 4u);
    CHECK(group_msgs("team") == 1u && group_msgs("days") == 2u && group_msgs("keep") == 2u);
    /* three days later: days goes too; keep keeps all; team keeps nothing */
    CHECK_EQ_INT(mqim_router_sweep(store, &rcfg, t0 + 3 * 86400000LL, &pruned), MQIM_OK);
    CHECK(pruned == 2u + 4u);
    CHECK(group_msgs("team") == 0u && group_msgs("days") == 0u && group_msgs("keep") == 2u);
    CHECK(stats().messages == 3u); /* keep's two, the DM */
    /* bob's stream is whole: 3 creates, 3 olds, the DM, new1 */
    drain();
    tombs = sync_contiguous("bob", 0, &j);
    CHECK_EQ_INT(tombs, 5);
    CHECK(jnum(j, "count") == 8.0);
    cJSON_Delete(j);
    /* his chats: keep and the DM; team and days hold no message any more */
    j = ctl("bob", "{\"op\":\"chats\"}", MQIM_OK);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "chats")) == 2);
    cJSON_Delete(j);
    j = ctl("bob", "{\"op\":\"history\",\"group\":\"team\"}", MQIM_OK);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "messages")) == 0);
    CHECK(jbool(j, "complete") && jbool(j, "pruned") && cJSON_GetObjectItemCaseSensitive(j, "first_seq") == NULL);
    cJSON_Delete(j);
    /* an ended group's leftovers are pruned by the default age */
    cJSON_Delete(ctl("bob", "{\"op\":\"group_leave\",\"group\":\"keep\"}", MQIM_OK));
    cJSON_Delete(ctl("alice", "{\"op\":\"group_leave\",\"group\":\"keep\"}", MQIM_OK));
    CHECK_EQ_INT(mqim_router_sweep(store, &rcfg, clock_ms + 61000, &pruned), MQIM_OK);
    CHECK(stats().messages == 1u); /* only the DM */
    /* user age retention then removes head tombstones like any entry */
    set_policy("bob", 0, 1, 0);
    CHECK_EQ_INT(mqim_router_sweep(store, &rcfg, clock_ms + 2 * 86400000LL, &pruned), MQIM_OK);
    CHECK(user_rec("bob").count == 0u);
    {
        mqim_user_rec_t u = user_rec("bob");
        CHECK(u.first_seq == u.next_seq); /* nothing left, no hole either */
    }
    teardown();
}

/* ---- files ---- */

static void sha_hex(const uint8_t *data, size_t len, char hex[MQIM_SHA256_HEX_LEN + 1])
{
    mqim_sha256_t s;
    uint8_t d[MQIM_SHA256_LEN];
    mqim_sha256_init(&s);
    mqim_sha256_update(&s, data, len);
    mqim_sha256_final(&s, d);
    mqim_sha256_hex(d, hex);
    hex[MQIM_SHA256_HEX_LEN] = '\0';
}

/* A request on out/file; returns its response (caller frees), NULL when
 * there is none. */
static cJSON *req_on(const char *user, const char *out, const char *json)
{
    char topic[128], want[128];
    cJSON *res = NULL;
    snprintf(topic, sizeof(topic), "im/u/%s/out/%s", user, out);
    snprintf(want, sizeof(want), "im/u/%s/in/res", user);
    ndirect = 0;
    (void)pub(topic, json, 1);
    drain();
    /* stored responses come through the outbox; reads (file_get, file_info) directly */
    for (int i = 0; i < nouts && res == NULL; i++) {
        if (strcmp(outs[i].topic, want) == 0) {
            res = json_of(&outs[i]);
        }
    }
    for (int i = 0; i < ndirect && res == NULL; i++) {
        if (strcmp(direct[i].topic, want) == 0) {
            res = json_of(&direct[i]);
        }
    }
    CHECK(res != NULL);
    return res;
}

static cJSON *file_req(const char *user, const char *json)
{
    return req_on(user, "file", json);
}

static cJSON *file_put(const char *user, const char *file, size_t offset, const uint8_t *data, size_t len)
{
    static char json[16000];
    char b64[12000];
    size_t n = 0;
    CHECK_EQ_INT(mqim_base64_encode(data, len, b64, sizeof(b64), &n), MQIM_OK);
    b64[n] = '\0';
    snprintf(json, sizeof(json), "{\"op\":\"file_put\",\"file\":\"%s\",\"offset\":%zu,\"data\":\"%s\"}", file,
             offset, b64);
    return file_req(user, json);
}

static bool res_code(cJSON *j, const char *code)
{
    bool ok = j != NULL && jstr(j, "code") != NULL && strcmp(jstr(j, "code"), code) == 0;
    if (!ok) {
        char *t = j != NULL ? cJSON_PrintUnformatted(j) : NULL;
        fprintf(stderr, "  wanted code %s, got %s\n", code, t != NULL ? t : "(none)");
        free(t);
    }
    return ok;
}

static void test_files(void)
{
    static uint8_t content[2500], bad[300];
    char sha[MQIM_SHA256_HEX_LEN + 1], json[1024], file[64];
    uint8_t got[4000];
    size_t n = 0;
    cJSON *j, *f;
    mqim_router_config_t c = { .root = "im", .sync_page = 100, .file_max_bytes = 1u << 20,
                               .file_chunk_bytes = 1024 };
    for (size_t i = 0; i < sizeof(content); i++) {
        content[i] = (uint8_t)(i * 7u + (i >> 8));
    }
    sha_hex(content, sizeof(content), sha);
    setup(&c, 0);

    snprintf(json, sizeof(json), "{\"op\":\"file_begin\",\"req\":1,\"upload\":\"u1\",\"name\":\"log.txt\","
             "\"mime\":\"text/plain\",\"size\":2500,\"sha256\":\"%s\"}", sha);
    j = file_req("alice", json);
    CHECK(jbool(j, "ok") && jnum(j, "have") == 0.0 && jnum(j, "chunk") == 1024.0 && jnum(j, "req") == 1.0);
    CHECK(!jbool(j, "complete"));
    snprintf(file, sizeof(file), "%s", jstr(j, "file") != NULL ? jstr(j, "file") : "");
    CHECK(strlen(file) == 26u);
    cJSON_Delete(j);

    /* chunks only in order; a chunk stored already is acked again */
    j = file_put("alice", file, 1024, content + 1024, 1024);
    CHECK(res_code(j, "file_offset"));
    cJSON_Delete(j);
    j = file_put("alice", file, 0, content, 1024);
    CHECK(jbool(j, "ok") && jnum(j, "have") == 1024.0);
    cJSON_Delete(j);
    j = file_put("alice", file, 1024, content + 1024, 1024);
    CHECK(jbool(j, "ok") && jnum(j, "have") == 2048.0);
    cJSON_Delete(j);
    j = file_put("alice", file, 0, content, 1024);
    CHECK(jbool(j, "ok") && jnum(j, "have") == 2048.0);
    cJSON_Delete(j);
    j = file_put("alice", file, 100, content, 1024);
    CHECK(res_code(j, "field_range")); /* not on a chunk boundary */
    cJSON_Delete(j);
    j = file_put("alice", file, 2048, content + 2048, 400); /* the last chunk is 452 bytes */
    CHECK(res_code(j, "field_range"));
    cJSON_Delete(j);
    j = file_put("bob", file, 2048, content + 2048, 452); /* not bob's upload */
    CHECK(res_code(j, "not_found"));
    cJSON_Delete(j);

    /* the same upload id resumes; another size for it is refused */
    j = file_req("alice", json);
    CHECK(jbool(j, "ok") && jnum(j, "have") == 2048.0 && jstr(j, "file") != NULL &&
          strcmp(jstr(j, "file"), file) == 0);
    cJSON_Delete(j);
    snprintf(json, sizeof(json), "{\"op\":\"file_begin\",\"upload\":\"u1\",\"name\":\"log.txt\",\"size\":2501,"
             "\"sha256\":\"%s\"}", sha);
    j = file_req("alice", json);
    CHECK(res_code(j, "field_range"));
    cJSON_Delete(j);

    /* a message naming an incomplete file is rejected */
    snprintf(json, sizeof(json), "{\"id\":\"m1\",\"type\":\"file\",\"file\":{\"id\":\"%s\"}}", file);
    CHECK_EQ_INT(pub("im/u/alice/out/dm/bob", json, 1), MQIM_FILE_INCOMPLETE);
    drain();
    CHECK_OUT(0, "im/u/alice/in/ack", "code", "file_incomplete");

    j = file_put("alice", file, 2048, content + 2048, 452);
    CHECK(jbool(j, "ok") && jnum(j, "have") == 2500.0 && jbool(j, "complete"));
    cJSON_Delete(j);

    /* nobody else reads it before a message announces it */
    snprintf(json, sizeof(json), "{\"op\":\"file_get\",\"file\":\"%s\",\"offset\":0}", file);
    j = file_req("bob", json);
    CHECK(res_code(j, "not_found"));
    cJSON_Delete(j);

    /* the announcement: the gateway fills in the description */
    snprintf(json, sizeof(json), "{\"id\":\"m1\",\"device\":\"cam\",\"type\":\"file\",\"file\":{\"id\":\"%s\","
             "\"name\":\"fake.exe\",\"size\":1}}", file);
    CHECK_EQ_INT(pub("im/u/alice/out/dm/bob", json, 1), MQIM_OK);
    drain();
    CHECK_OUT(0, "im/u/bob/in/msg", "type", "file");
    CHECK_OUT(0, "im/u/bob/in/msg", "device", "cam");
    CHECK_OUT(0, "im/u/bob/in/msg", "body", "log.txt");
    CHECK_EQ_INT(nouts, 2); /* the echo confirms it: no `sent` ack */
    CHECK_OUT(1, "im/u/alice/in/msg", "type", "file");
    j = json_of(&outs[0]);
    f = cJSON_GetObjectItemCaseSensitive(j, "file");
    CHECK(f != NULL && jstr(f, "name") != NULL && strcmp(jstr(f, "name"), "log.txt") == 0);
    CHECK(f != NULL && jnum(f, "size") == 2500.0 && jstr(f, "sha256") != NULL &&
          strcmp(jstr(f, "sha256"), sha) == 0 && strcmp(jstr(f, "mime"), "text/plain") == 0);
    cJSON_Delete(j);

    /* bob fetches by offset, across the stored chunks */
    snprintf(json, sizeof(json), "{\"op\":\"file_get\",\"file\":\"%s\",\"offset\":0,\"len\":1000}", file);
    j = file_req("bob", json);
    CHECK(jbool(j, "ok") && !jbool(j, "eof") && jstr(j, "data") != NULL);
    CHECK_EQ_INT(nouts, 0); /* a read: answered directly, nothing written to the outbox */
    CHECK_EQ_INT(mqim_base64_decode(jstr(j, "data"), strlen(jstr(j, "data")), got, sizeof(got), &n), MQIM_OK);
    CHECK(n == 1000u && memcmp(got, content, 1000) == 0);
    cJSON_Delete(j);
    snprintf(json, sizeof(json), "{\"op\":\"file_get\",\"file\":\"%s\",\"offset\":1000,\"len\":9000}", file);
    j = file_req("bob", json);
    CHECK(res_code(j, "field_range")); /* more than a chunk may hold */
    cJSON_Delete(j);
    snprintf(json, sizeof(json), "{\"op\":\"file_get\",\"file\":\"%s\",\"offset\":1000,\"len\":2000}", file);
    j = file_req("bob", json);
    CHECK(jbool(j, "ok") && jbool(j, "eof") && jnum(j, "offset") == 1000.0);
    n = 0;
    CHECK(jstr(j, "data") != NULL &&
          mqim_base64_decode(jstr(j, "data"), strlen(jstr(j, "data")), got, sizeof(got), &n) == MQIM_OK);
    CHECK(n == 1500u && memcmp(got, content + 1000, 1500) == 0);
    cJSON_Delete(j);
    snprintf(json, sizeof(json), "{\"op\":\"file_info\",\"file\":\"%s\"}", file);
    j = file_req("bob", json);
    CHECK(jbool(j, "ok") && jbool(j, "complete") && strcmp(jstr(j, "owner"), "alice") == 0 &&
          strcmp(jstr(j, "sha256"), sha) == 0);
    cJSON_Delete(j);
    j = file_req("carol", json);
    CHECK(res_code(j, "not_found"));
    cJSON_Delete(j);

    /* bob cannot announce alice's file as his */
    snprintf(json, sizeof(json), "{\"id\":\"b1\",\"type\":\"file\",\"file\":{\"id\":\"%s\"}}", file);
    CHECK_EQ_INT(pub("im/u/bob/out/dm/carol", json, 1), MQIM_NOT_FOUND);
    drain();
    CHECK_OUT(0, "im/u/bob/in/ack", "code", "not_found");
    CHECK_EQ_INT(pub("im/u/bob/out/dm/carol", "{\"id\":\"b2\",\"type\":\"file\",\"body\":\"x\"}", 1),
                 MQIM_FIELD_MISSING);
    drain();

    /* history keeps the description */
    j = req_on("bob", "ctl", "{\"op\":\"history\",\"with\":\"alice\"}");
    {
        cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
        cJSON *m0 = cJSON_GetArrayItem(msgs, 0);
        f = cJSON_GetObjectItemCaseSensitive(m0, "file");
        CHECK(f != NULL && jnum(f, "size") == 2500.0 && strcmp(jstr(m0, "device"), "cam") == 0);
    }
    cJSON_Delete(j);

    /* content that does not match its sha256 is refused and starts over */
    memset(bad, 'x', sizeof(bad));
    snprintf(json, sizeof(json), "{\"op\":\"file_begin\",\"upload\":\"u2\",\"name\":\"b.bin\",\"size\":300,"
             "\"sha256\":\"%s\"}", sha);
    j = file_req("alice", json);
    snprintf(file, sizeof(file), "%s", jstr(j, "file") != NULL ? jstr(j, "file") : "");
    cJSON_Delete(j);
    j = file_put("alice", file, 0, bad, sizeof(bad));
    CHECK(res_code(j, "file_corrupt"));
    cJSON_Delete(j);
    snprintf(json, sizeof(json), "{\"op\":\"file_info\",\"file\":\"%s\"}", file);
    j = file_req("alice", json);
    CHECK(jbool(j, "ok") && jnum(j, "have") == 0.0 && !jbool(j, "complete"));
    cJSON_Delete(j);

    /* size limit, bad names, unknown ops on out/file */
    snprintf(json, sizeof(json), "{\"op\":\"file_begin\",\"upload\":\"u3\",\"name\":\"big\",\"size\":%u,"
             "\"sha256\":\"%s\"}", (1u << 20) + 1u, sha);
    j = file_req("alice", json);
    CHECK(res_code(j, "file_too_large"));
    cJSON_Delete(j);
    snprintf(json, sizeof(json), "{\"op\":\"file_begin\",\"upload\":\"u4\",\"name\":\"../etc/passwd\",\"size\":5,"
             "\"sha256\":\"%s\"}", sha);
    j = file_req("alice", json);
    CHECK(res_code(j, "field_range"));
    cJSON_Delete(j);
    j = file_req("alice", "{\"op\":\"history\",\"with\":\"bob\"}");
    CHECK(res_code(j, "unknown_op"));
    CHECK(strcmp(jstr(j, "reason"), "out/file takes file_begin, file_put, file_get, file_info") == 0);
    cJSON_Delete(j);
    teardown();
}

/* The out/file budget is separate from the one for messages and ctl. */
static void test_file_rate_limit(void)
{
    mqim_router_config_t c = { .root = "im", .sync_page = 100, .rate_per_sec = 1, .rate_burst = 1,
                               .file_rate_per_sec = 1, .file_rate_burst = 3 };
    setup(&c, 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(pub("im/u/alice/out/file", "{\"op\":\"file_info\",\"file\":\"nope\"}", 1), MQIM_NOT_FOUND);
    }
    CHECK_EQ_INT(pub("im/u/alice/out/file", "{\"op\":\"file_info\",\"file\":\"nope\"}", 1), MQIM_RATE_LIMITED);
    CHECK_EQ_INT(pub("im/u/alice/out/dm/bob", "still allowed", 1), MQIM_OK);
    drain();
    teardown();
}

/* ---- E2E: device keys, the keys op, encrypted messages (docs/e2e.md) ---- */

/* The base64 of a 32-byte key whose bytes are all `fill`. */
static const char *key_b64(uint8_t fill)
{
    static char out[8][48];
    static int next;
    uint8_t raw[32];
    size_t len = 0;
    char *o = out[next++ % 8];
    memset(raw, fill, sizeof(raw));
    mqim_base64_encode(raw, sizeof(raw), o, 47, &len);
    o[len] = '\0';
    return o;
}

static mqim_status_t pub_key(const char *user, const char *device, uint8_t fill)
{
    char topic[64], payload[160];
    snprintf(topic, sizeof(topic), "im/u/%s/out/key", user);
    snprintf(payload, sizeof(payload), "{\"device\":\"%s\",\"x25519\":\"%s\"}", device, key_b64(fill));
    return pub(topic, payload, 1);
}

/* Publish a bad key payload: rejected with code on alice's in/ack, nothing else. */
static void key_rejected(const char *payload, mqim_status_t code)
{
    cJSON *j;
    CHECK_EQ_INT(pub("im/u/alice/out/key", payload, 1), code);
    drain();
    CHECK_EQ_INT(nouts, 1);
    CHECK_OUT(0, "im/u/alice/in/ack", "status", "rejected");
    CHECK_OUT(0, "im/u/alice/in/ack", "re", "key");
    CHECK_OUT(0, "im/u/alice/in/ack", "code", mqim_status_name(code));
    j = json_of(&outs[0]);
    CHECK(j != NULL && jstr(j, "reason") != NULL && strlen(jstr(j, "reason")) > 10u);
    cJSON_Delete(j);
}

static void test_keys_publish(void)
{
    char want[1024];
    int64_t t_phone, t_laptop, t_phone2;
    mqim_txn_t txn;
    mqim_key_rec_t k;
    setup(NULL, 0);
    CHECK_EQ_INT(pub_key("alice", "phone", 0x11), MQIM_OK);
    t_phone = clock_ms;
    drain();
    CHECK_EQ_INT(nouts, 1);
    CHECK(strcmp(outs[0].topic, "im/keys/alice") == 0 && outs[0].retain && outs[0].qos == 1);
    snprintf(want, sizeof(want), "{\"user\":\"alice\",\"keys\":[{\"device\":\"phone\",\"x25519\":\"%s\",\"ts\":%lld}]}",
             key_b64(0x11), (long long)t_phone);
    CHECK(strcmp(outs[0].payload, want) == 0);
    /* a second device: the whole set, sorted by device */
    CHECK_EQ_INT(pub_key("alice", "laptop", 0x22), MQIM_OK);
    t_laptop = clock_ms;
    drain();
    CHECK_EQ_INT(nouts, 1);
    snprintf(want, sizeof(want),
             "{\"user\":\"alice\",\"keys\":[{\"device\":\"laptop\",\"x25519\":\"%s\",\"ts\":%lld},"
             "{\"device\":\"phone\",\"x25519\":\"%s\",\"ts\":%lld}]}",
             key_b64(0x22), (long long)t_laptop, key_b64(0x11), (long long)t_phone);
    CHECK(strcmp(outs[0].topic, "im/keys/alice") == 0 && strcmp(outs[0].payload, want) == 0);
    /* the same key again (a retained replay): nothing changes, nothing published */
    CHECK_EQ_INT(pub_key("alice", "phone", 0x11), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 0);
    /* a retained clear is ignored without an error */
    CHECK_EQ_INT(pub("im/u/alice/out/key", "", 1), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 0);
    /* a new key of a known device replaces the old one, with a new ts */
    CHECK_EQ_INT(pub_key("alice", "phone", 0x33), MQIM_OK);
    t_phone2 = clock_ms;
    drain();
    CHECK_EQ_INT(nouts, 1);
    snprintf(want, sizeof(want),
             "{\"user\":\"alice\",\"keys\":[{\"device\":\"laptop\",\"x25519\":\"%s\",\"ts\":%lld},"
             "{\"device\":\"phone\",\"x25519\":\"%s\",\"ts\":%lld}]}",
             key_b64(0x22), (long long)t_laptop, key_b64(0x33), (long long)t_phone2);
    CHECK(strcmp(outs[0].payload, want) == 0);
    mqim_txn_begin(store, MQIM_TXN_READ, &txn);
    CHECK_EQ_INT(mqim_store_key_get(&txn, MQIM_STR("alice"), MQIM_STR("phone"), &k), MQIM_OK);
    CHECK(k.x25519[0] == 0x33 && k.x25519[31] == 0x33 && k.ts_ms == t_phone2);
    mqim_txn_abort(&txn);

    /* rejections: each on in/ack with a code and a reason, nothing stored */
    key_rejected("{\"device\":\"phone\",\"x25519\":\"!!!!\"}", MQIM_FIELD_TYPE);
    key_rejected("{\"device\":\"phone\",\"x25519\":\"EREREREREREREREREREREREREREREREREREREREREQ==\"}",
                 MQIM_FIELD_RANGE); /* 31 bytes */
    key_rejected("{\"device\":\"phone\",\"x25519\":\"ERERERERERERERERERERERERERERERERERERERERERER\"}",
                 MQIM_FIELD_RANGE); /* 33 bytes */
    key_rejected("{\"device\":\"phone\",\"x25519\":\"AAAA\"}", MQIM_FIELD_RANGE);
    key_rejected("{\"device\":\"phone\",\"x25519\":32}", MQIM_FIELD_TYPE);
    key_rejected("{\"device\":\"ph/one\",\"x25519\":\"ERERERERERERERERERERERERERERERERERERERERERE=\"}",
                 MQIM_NAME_BAD_CHAR);
    key_rejected("{\"device\":\"a234567890123456789012345678901234\",\"remove\":true}", MQIM_NAME_TOO_LONG);
    key_rejected("{\"device\":\"\",\"remove\":true}", MQIM_FIELD_TYPE);
    key_rejected("{\"x25519\":\"ERERERERERERERERERERERERERERERERERERERERERE=\"}", MQIM_FIELD_MISSING);
    key_rejected("{\"device\":\"phone\"}", MQIM_FIELD_MISSING);
    key_rejected("{\"device\":\"phone\",\"remove\":false}", MQIM_FIELD_TYPE);
    key_rejected("{\"device\":\"phone\",\"remove\":true,\"x25519\":\"ERERERERERERERERERERERERERERERERERERERERERE=\"}",
                 MQIM_FIELD_RANGE);
    key_rejected("[1]", MQIM_JSON_NOT_OBJECT);
    mqim_txn_begin(store, MQIM_TXN_READ, &txn);
    CHECK_EQ_INT(mqim_store_key_get(&txn, MQIM_STR("alice"), MQIM_STR("phone"), &k), MQIM_OK);
    CHECK(k.x25519[0] == 0x33); /* unchanged by the rejected ones */
    mqim_txn_abort(&txn);

    /* remove: republished without it; removing it again changes nothing */
    CHECK_EQ_INT(pub("im/u/alice/out/key", "{\"device\":\"laptop\",\"remove\":true}", 1), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 1);
    snprintf(want, sizeof(want), "{\"user\":\"alice\",\"keys\":[{\"device\":\"phone\",\"x25519\":\"%s\",\"ts\":%lld}]}",
             key_b64(0x33), (long long)t_phone2);
    CHECK(strcmp(outs[0].topic, "im/keys/alice") == 0 && outs[0].retain && strcmp(outs[0].payload, want) == 0);
    CHECK_EQ_INT(pub("im/u/alice/out/key", "{\"device\":\"laptop\",\"remove\":true}", 1), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 0);
    /* the last one removed: an empty set, still a document */
    CHECK_EQ_INT(pub("im/u/alice/out/key", "{\"device\":\"phone\",\"remove\":true}", 1), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 1);
    CHECK(strcmp(outs[0].payload, "{\"user\":\"alice\",\"keys\":[]}") == 0);

    /* at most 16 devices: the 17th is refused, a 16th device's new key is not */
    for (int i = 0; i < 16; i++) {
        char dev[16];
        snprintf(dev, sizeof(dev), "d%02d", i);
        CHECK_EQ_INT(pub_key("alice", dev, (uint8_t)(0x40 + i)), MQIM_OK);
    }
    drain();
    CHECK_EQ_INT(nouts, 16);
    CHECK_EQ_INT(pub_key("alice", "d16", 0x70), MQIM_E2E_TOO_MANY_KEYS);
    drain();
    CHECK_EQ_INT(nouts, 1);
    CHECK_OUT(0, "im/u/alice/in/ack", "code", "e2e_too_many_keys");
    CHECK_EQ_INT(pub_key("alice", "d15", 0x71), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 1);
    CHECK(strcmp(outs[0].topic, "im/keys/alice") == 0 && strstr(outs[0].payload, "\"d16\"") == NULL &&
          strstr(outs[0].payload, key_b64(0x71)) != NULL);
    mqim_txn_begin(store, MQIM_TXN_READ, &txn);
    CHECK_EQ_INT(mqim_store_key_get(&txn, MQIM_STR("alice"), MQIM_STR("d16"), &k), MQIM_NOT_FOUND);
    mqim_txn_abort(&txn);
    teardown();
}

/* A keys request: answered directly (publish_now), nothing in the outbox. */
static cJSON *keys_ctl(const char *user, const char *json, mqim_status_t expect)
{
    char topic[64];
    snprintf(topic, sizeof(topic), "im/u/%s/out/ctl", user);
    ndirect = 0;
    CHECK_EQ_INT(pub(topic, json, 1), expect);
    drain();
    CHECK_EQ_INT(nouts, 0);
    CHECK_EQ_INT(ndirect, 1);
    if (ndirect != 1) {
        return NULL;
    }
    snprintf(topic, sizeof(topic), "im/u/%s/in/res", user);
    CHECK(strcmp(direct[0].topic, topic) == 0 && direct[0].qos == 1);
    return cJSON_Parse(direct[0].payload);
}

static void test_keys_ctl(void)
{
    char want[2048];
    cJSON *j;
    setup(NULL, 0);
    pub_key("alice", "phone", 0x01);
    pub_key("alice", "laptop", 0x02);
    pub_key("bob", "watch", 0x03);
    pub_key("carol", "pc", 0x04);
    cJSON_Delete(ctl("alice", "{\"op\":\"group_create\",\"group\":\"team\",\"members\":[\"bob\"]}", MQIM_OK));
    drain();
    /* bob asks for alice: alice's keys, then his own */
    j = keys_ctl("bob", "{\"op\":\"keys\",\"req\":\"k1\",\"user\":\"alice\"}", MQIM_OK);
    snprintf(want, sizeof(want),
             "{\"op\":\"keys\",\"req\":\"k1\",\"ok\":true,\"keys\":["
             "{\"user\":\"alice\",\"device\":\"laptop\",\"x25519\":\"%s\"},"
             "{\"user\":\"alice\",\"device\":\"phone\",\"x25519\":\"%s\"},"
             "{\"user\":\"bob\",\"device\":\"watch\",\"x25519\":\"%s\"}]}",
             key_b64(0x02), key_b64(0x01), key_b64(0x03));
    CHECK(strcmp(direct[0].payload, want) == 0);
    cJSON_Delete(j);
    /* alice asks for bob: the same list (sorted by user, not requester first) */
    j = keys_ctl("alice", "{\"op\":\"keys\",\"req\":\"k1\",\"user\":\"bob\"}", MQIM_OK);
    CHECK(strcmp(direct[0].payload, want) == 0);
    cJSON_Delete(j);
    /* her own: each device once */
    j = keys_ctl("alice", "{\"op\":\"keys\",\"req\":2,\"user\":\"alice\"}", MQIM_OK);
    CHECK(jbool(j, "ok") && jnum(j, "req") == 2.0);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "keys")) == 2);
    cJSON_Delete(j);
    /* a group, for a member: every member's keys (carol is not one) */
    j = keys_ctl("bob", "{\"op\":\"keys\",\"req\":\"k2\",\"group\":\"team\"}", MQIM_OK);
    snprintf(want, sizeof(want),
             "{\"op\":\"keys\",\"req\":\"k2\",\"ok\":true,\"keys\":["
             "{\"user\":\"alice\",\"device\":\"laptop\",\"x25519\":\"%s\"},"
             "{\"user\":\"alice\",\"device\":\"phone\",\"x25519\":\"%s\"},"
             "{\"user\":\"bob\",\"device\":\"watch\",\"x25519\":\"%s\"}]}",
             key_b64(0x02), key_b64(0x01), key_b64(0x03));
    CHECK(strcmp(direct[0].payload, want) == 0);
    cJSON_Delete(j);
    /* a user without keys simply has none: dave is registered later, keyless */
    {
        mqim_txn_t txn;
        mqim_txn_begin(store, MQIM_TXN_WRITE, &txn);
        mqim_store_user_ensure(&txn, MQIM_STR("dave"), clock_ms);
        mqim_txn_commit(&txn);
    }
    j = keys_ctl("carol", "{\"op\":\"keys\",\"user\":\"dave\"}", MQIM_OK);
    snprintf(want, sizeof(want), "{\"op\":\"keys\",\"ok\":true,\"keys\":[{\"user\":\"carol\",\"device\":\"pc\",\"x25519\":\"%s\"}]}",
             key_b64(0x04));
    CHECK(strcmp(direct[0].payload, want) == 0);
    cJSON_Delete(j);
    /* errors */
    j = keys_ctl("carol", "{\"op\":\"keys\",\"req\":\"k3\",\"group\":\"team\"}", MQIM_NOT_FOUND);
    CHECK(!jbool(j, "ok") && strcmp(jstr(j, "code"), "not_found") == 0 && strcmp(jstr(j, "req"), "k3") == 0);
    cJSON_Delete(j);
    j = keys_ctl("carol", "{\"op\":\"keys\",\"group\":\"nosuch\"}", MQIM_NOT_FOUND);
    CHECK(strcmp(jstr(j, "code"), "not_found") == 0);
    cJSON_Delete(j);
    j = keys_ctl("carol", "{\"op\":\"keys\",\"user\":\"zed\"}", MQIM_UNKNOWN_PEER);
    CHECK(strcmp(jstr(j, "code"), "unknown_peer") == 0 && jstr(j, "reason") != NULL);
    cJSON_Delete(j);
    j = keys_ctl("carol", "{\"op\":\"keys\",\"user\":\"bob\",\"group\":\"team\"}", MQIM_BAD_REQUEST);
    CHECK(strcmp(jstr(j, "code"), "bad_request") == 0 && strstr(jstr(j, "reason"), "not both") != NULL);
    cJSON_Delete(j);
    j = keys_ctl("carol", "{\"op\":\"keys\"}", MQIM_BAD_REQUEST);
    CHECK(strcmp(jstr(j, "code"), "bad_request") == 0 && strstr(jstr(j, "reason"), "required") != NULL);
    cJSON_Delete(j);
    j = keys_ctl("carol", "{\"op\":\"keys\",\"user\":\"a/b\"}", MQIM_FIELD_TYPE);
    CHECK(strcmp(jstr(j, "code"), "field_type") == 0);
    cJSON_Delete(j);
    teardown();
}

#define ENC_JSON "{\"v\":1, \"sd\":\"phone\",\"spk\":\"AAAA\",\"epk\":\"BBBB\"," \
                 "\"r\":[{\"u\":\"bob\",\"d\":\"watch\",\"k\":\"CCCC\"}],\"ct\":\"DD\\/D\"}"

/* A copy of an encrypted message: enc exactly as sent, no body. */
static void check_enc_copy(const char *payload, const char *id)
{
    cJSON *j = cJSON_Parse(payload);
    CHECK(strstr(payload, "\"enc\":" ENC_JSON) != NULL);
    CHECK(j != NULL && cJSON_GetObjectItemCaseSensitive(j, "body") == NULL);
    CHECK(j != NULL && jstr(j, "id") != NULL && strcmp(jstr(j, "id"), id) == 0);
    if (strstr(payload, "\"enc\":" ENC_JSON) == NULL) {
        fprintf(stderr, "  payload = %s\n", payload);
    }
    cJSON_Delete(j);
}

static void test_enc_messages(void)
{
    cJSON *j, *msgs;
    mqim_txn_t txn;
    mqim_inbox_entry_t e;
    mqim_msg_rec_t m;
    setup(NULL, 0);
    /* a direct message: the recipient's copy and the echo carry enc verbatim */
    CHECK_EQ_INT(pub("im/u/alice/out/dm/bob", "{\"id\":\"e1\",\"device\":\"phone\",\"enc\":" ENC_JSON "}", 1),
                 MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 2);
    CHECK(strcmp(outs[0].topic, "im/u/bob/in/msg") == 0 && strcmp(outs[1].topic, "im/u/alice/in/msg") == 0);
    check_enc_copy(outs[0].payload, "e1");
    check_enc_copy(outs[1].payload, "e1");
    CHECK_OUT(0, "im/u/bob/in/msg", "from", "alice");
    /* stored flagged, the enc text in the body slot */
    mqim_txn_begin(store, MQIM_TXN_READ, &txn);
    CHECK_EQ_INT(mqim_store_inbox_get(&txn, MQIM_STR("bob"), 1, &e), MQIM_OK);
    CHECK_EQ_INT(mqim_store_msg_get(&txn, e.mid, &m), MQIM_OK);
    CHECK(m.enc && m.qos == 1u && mqim_str_eq_cstr(m.body, ENC_JSON));
    mqim_txn_abort(&txn);
    /* a plain message after it is not flagged */
    CHECK_EQ_INT(pub("im/u/alice/out/dm/bob", "{\"id\":\"p1\",\"body\":\"plain\"}", 1), MQIM_OK);
    drain();
    mqim_txn_begin(store, MQIM_TXN_READ, &txn);
    CHECK_EQ_INT(mqim_store_inbox_get(&txn, MQIM_STR("bob"), 2, &e), MQIM_OK);
    CHECK_EQ_INT(mqim_store_msg_get(&txn, e.mid, &m), MQIM_OK);
    CHECK(!m.enc && mqim_str_eq_cstr(m.body, "plain"));
    mqim_txn_abort(&txn);
    /* sync replays it with enc */
    CHECK_EQ_INT(pub("im/u/bob/out/ctl", "{\"op\":\"sync\",\"after\":0}", 1), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 3);
    check_enc_copy(outs[0].payload, "e1");
    CHECK_OUT(1, "im/u/bob/in/msg", "body", "plain");
    /* history too */
    j = ctl("bob", "{\"op\":\"history\",\"with\":\"alice\"}", MQIM_OK);
    msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
    CHECK(cJSON_GetArraySize(msgs) == 2);
    CHECK(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(msgs, 0), "body") == NULL);
    CHECK(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(msgs, 0), "enc")));
    CHECK(strstr(outs[0].payload, "\"enc\":" ENC_JSON) != NULL);
    cJSON_Delete(j);
    /* chats: the last message of alice's chat is the plain one; send another enc */
    CHECK_EQ_INT(pub("im/u/alice/out/dm/bob", "{\"id\":\"e2\",\"enc\":" ENC_JSON "}", 1), MQIM_OK);
    drain();
    j = ctl("bob", "{\"op\":\"chats\"}", MQIM_OK);
    CHECK(strstr(outs[0].payload, "\"enc\":" ENC_JSON) != NULL && strstr(outs[0].payload, "\"body\"") == NULL);
    cJSON_Delete(j);
    /* a group message: every member's copy carries it */
    cJSON_Delete(ctl("alice", "{\"op\":\"group_create\",\"group\":\"team\",\"members\":[\"bob\",\"carol\"]}", MQIM_OK));
    drain();
    CHECK_EQ_INT(pub("im/u/alice/out/group/team", "{\"id\":\"g1\",\"enc\":" ENC_JSON "}", 1), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 3); /* alice (the echo, her confirmation), bob, carol */
    for (int i = 0; i < 3; i++) {
        CHECK(strstr(outs[i].topic, "/in/msg") != NULL);
        check_enc_copy(outs[i].payload, "g1");
    }
    /* refused: a file message with enc (files are not E2E yet), enc with body */
    CHECK_EQ_INT(pub("im/u/alice/out/dm/bob", "{\"id\":\"f1\",\"type\":\"file\",\"enc\":" ENC_JSON "}", 1),
                 MQIM_UNSUPPORTED);
    drain();
    CHECK_EQ_INT(nouts, 1);
    CHECK_OUT(0, "im/u/alice/in/ack", "code", "unsupported");
    CHECK_OUT(0, "im/u/alice/in/ack", "id", "f1");
    CHECK_EQ_INT(pub("im/u/alice/out/group/team", "{\"id\":\"f2\",\"file\":{\"id\":\"x\"},\"enc\":" ENC_JSON "}", 1),
                 MQIM_UNSUPPORTED);
    drain();
    CHECK_EQ_INT(nouts, 1);
    CHECK_EQ_INT(pub("im/u/alice/out/dm/bob", "{\"id\":\"b1\",\"body\":\"x\",\"enc\":" ENC_JSON "}", 1),
                 MQIM_FIELD_RANGE);
    drain();
    CHECK_EQ_INT(nouts, 1);
    CHECK_OUT(0, "im/u/alice/in/ack", "status", "rejected");
    teardown();
}

/* Hostile input: one user cannot grow its device table (and so every
 * presence document of it) without bound, nor flood statuses past the rate
 * limit. */
static void test_device_cap_and_status_rate(void)
{
    mqim_router_config_t c = { .root = "im", .sync_page = 100, .rate_per_sec = 1, .rate_burst = 3 };
    char topic[64];
    cJSON *j;
    setup(NULL, 0);
    for (int i = 0; i < 64; i++) {
        snprintf(topic, sizeof(topic), "im/u/alice/out/status/d%d", i);
        CHECK_EQ_INT(pub(topic, "{\"state\":\"online\"}", 1), MQIM_OK);
    }
    drain();
    CHECK_EQ_INT(pub("im/u/alice/out/status/d64", "{\"state\":\"online\"}", 1), MQIM_QUOTA_FULL);
    drain();
    CHECK_EQ_INT(nouts, 1);
    CHECK_OUT(0, "im/u/alice/in/ack", "code", "quota_full");
    CHECK_OUT(0, "im/u/alice/in/ack", "re", "status");
    j = json_of(&outs[0]);
    CHECK(j != NULL && strstr(jstr(j, "reason"), "64 devices") != NULL);
    cJSON_Delete(j);
    /* a known device still changes state, and other users are not affected */
    CHECK_EQ_INT(pub("im/u/alice/out/status/d3", "{\"state\":\"away\"}", 1), MQIM_OK);
    CHECK_EQ_INT(pub("im/u/bob/out/status/d64", "{\"state\":\"online\"}", 1), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 2);
    CHECK_OUT(0, "im/presence/alice", "state", "online");
    CHECK_OUT(1, "im/presence/bob", "state", "online");
    teardown();

    setup(&c, 0);
    for (int i = 0; i < 3; i++) {
        snprintf(topic, sizeof(topic), "{\"state\":\"online\",\"epoch\":%d}", i + 1);
        CHECK_EQ_INT(pub("im/u/alice/out/status/p", topic, 1), MQIM_OK);
    }
    CHECK_EQ_INT(pub("im/u/alice/out/status/p", "{\"state\":\"away\",\"epoch\":9}", 1), MQIM_RATE_LIMITED);
    drain();
    CHECK_EQ_INT(nouts, 4);
    CHECK_OUT(3, "im/u/alice/in/ack", "code", "rate_limited");
    j = json_of(&outs[3]);
    CHECK(j != NULL && jstr(j, "to") == NULL); /* a device is not a peer */
    cJSON_Delete(j);
    teardown();
}


/* ---- group commit (mqim_router_handle_batch) ---- */

static mqim_inbound_t inb(const char *topic, const char *payload)
{
    mqim_inbound_t in;
    memset(&in, 0, sizeof(in));
    in.topic = mqim_str_from_cstr(topic);
    in.payload = mqim_str_from_cstr(payload);
    in.qos = 1;
    return in;
}

static uint64_t counter(const char *name)
{
    mqim_txn_t txn;
    uint64_t v;
    mqim_txn_begin(store, MQIM_TXN_READ, &txn);
    v = mqim_store_counter_get(&txn, name);
    mqim_txn_abort(&txn);
    return v;
}

static uint64_t outbox_count(void)
{
    mqim_txn_t txn;
    uint64_t v;
    mqim_txn_begin(store, MQIM_TXN_READ, &txn);
    v = mqim_store_outbox_count(&txn);
    mqim_txn_abort(&txn);
    return v;
}

static int hook_calls;
static uint64_t hook_outbox_seen;
static mqim_status_t batch_hook(void *ctx, mqim_txn_t *batch)
{
    (void)ctx;
    hook_calls++;
    /* Before the commit: the batch sees its own outbox entries... */
    hook_outbox_seen = mqim_store_outbox_count(batch);
    return mqim_store_counter_add(batch, "hooked", 1u);
}

/* The inbound journal (inbound.c). A kill after the journal write and
 * before the commit is simulated by moving "journal_applied" back: the next
 * start routes exactly the records past it, in order, and the mark ends at
 * the last record's journal seq (a high-water mark, not a count). */
static int bob_bodies(char bodies[][32], int max)
{
    int n = 0;
    drain();
    for (int i = 0; i < nouts; i++) {
        cJSON *j;
        if (strcmp(outs[i].topic, "im/u/bob/in/msg") != 0) {
            continue;
        }
        j = json_of(&outs[i]);
        if (j != NULL && n < max && jstr(j, "body") != NULL) {
            snprintf(bodies[n++], 32, "%s", jstr(j, "body"));
        }
        cJSON_Delete(j);
    }
    return n;
}

static void test_journal_replay(void)
{
    char journal[300], bodies[16][32];
    mqim_inbound_q_t *q;
    mqim_txn_t txn;
    setup(NULL, 0);
    snprintf(journal, sizeof(journal), "%s/inbound.journal", dir);
    q = mqim_inbound_start(store, router, journal, 2, NULL, NULL);
    CHECK(q != NULL);
    for (int i = 0; i < 5; i++) {
        char body[16];
        mqim_inbound_t in;
        snprintf(body, sizeof(body), "plain %d", i);
        in = inb("im/u/alice/out/dm/bob", body);
        CHECK(mqim_inbound_put(q, &in, clock_ms));
    }
    mqim_inbound_stop(q);
    CHECK_EQ_INT(counter("journal_applied"), 5);
    CHECK_EQ_INT(bob_bodies(bodies, 16), 5);

    /* as if the commit of records 4 and 5 had not happened */
    CHECK_EQ_INT(mqim_txn_begin(store, MQIM_TXN_WRITE, &txn), MQIM_OK);
    CHECK_EQ_INT(mqim_store_counter_add(&txn, "journal_applied", UINT64_MAX - 1u), MQIM_OK); /* 5 - 2 */
    CHECK_EQ_INT(mqim_txn_commit(&txn), MQIM_OK);
    CHECK_EQ_INT(counter("journal_applied"), 3);
    q = mqim_inbound_start(store, router, journal, 2, NULL, NULL);
    CHECK(q != NULL);
    mqim_inbound_stop(q);
    CHECK_EQ_INT(counter("journal_applied"), 5);
    CHECK_EQ_INT(bob_bodies(bodies, 16), 2); /* plain text has no id: routed again, as designed */
    CHECK_EQ_STR(bodies[0], strlen(bodies[0]), "plain 3");
    CHECK_EQ_STR(bodies[1], strlen(bodies[1]), "plain 4");

    /* the start truncated the journal; new records go on from seq 6 */
    q = mqim_inbound_start(store, router, journal, 2, NULL, NULL);
    CHECK(q != NULL);
    {
        mqim_inbound_t in = inb("im/u/alice/out/dm/bob", "plain 5");
        CHECK(mqim_inbound_put(q, &in, clock_ms));
    }
    mqim_inbound_stop(q);
    CHECK_EQ_INT(counter("journal_applied"), 6);
    CHECK_EQ_INT(bob_bodies(bodies, 16), 1);
    CHECK_EQ_STR(bodies[0], strlen(bodies[0]), "plain 5");
    teardown();
}

/* A store failure while a reply is written (injected: every prefix scan
 * fails) is a failed answer, never "ok":true with a partial list: the keys
 * op, and the group limit check of group_add (groups_of). */
static void test_reply_store_failure(void)
{
    cJSON *j;
    setup(NULL, 0);
    pub_key("alice", "phone", 0x01);
    cJSON_Delete(ctl("alice", "{\"op\":\"group_create\",\"group\":\"team\",\"members\":[\"bob\"]}", MQIM_OK));
    drain();
    mqim_store_fail_scans(store, MQIM_STORE_ERROR);
    j = keys_ctl("bob", "{\"op\":\"keys\",\"req\":\"k\",\"user\":\"alice\"}", MQIM_STORE_ERROR);
    CHECK(j != NULL && !jbool(j, "ok"));
    CHECK(j != NULL && cJSON_GetObjectItemCaseSensitive(j, "keys") == NULL);
    CHECK(j != NULL && strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "code")), "store_error") == 0);
    cJSON_Delete(j);
    nouts = 0;
    ndirect = 0;
    (void)pub("im/u/alice/out/ctl", "{\"op\":\"group_add\",\"group\":\"team\",\"users\":[\"carol\"]}", 1);
    drain();
    mqim_store_fail_scans(store, MQIM_OK);
    {
        mqim_txn_t txn;
        mqim_member_rec_t mr;
        CHECK_EQ_INT(mqim_txn_begin(store, MQIM_TXN_READ, &txn), MQIM_OK);
        /* not added on a count it could not make */
        CHECK_EQ_INT(mqim_store_member_get(&txn, MQIM_STR("team"), MQIM_STR("carol"), &mr), MQIM_NOT_FOUND);
        mqim_txn_abort(&txn);
    }
    /* the requester heard why */
    {
        int told = 0;
        for (int i = 0; i < nouts; i++) {
            told += strstr(outs[i].payload, "store_error") != NULL;
        }
        for (int i = 0; i < ndirect; i++) {
            told += strstr(direct[i].payload, "store_error") != NULL;
        }
        CHECK(told >= 1);
    }
    j = keys_ctl("bob", "{\"op\":\"keys\",\"req\":\"k\",\"user\":\"alice\"}", MQIM_OK);
    CHECK(j != NULL && jbool(j, "ok"));
    cJSON_Delete(j);
    teardown();
}

/* The retention sweep runs on the inbound worker (LMDB's only writer), not
 * on the pump: with the sweep set, age retention removes the messages the
 * worker routed earlier; without it (the first run), nothing removes them. */
static void test_sweep_on_worker(void)
{
    char journal[300];
    mqim_router_config_t c = { .root = "im", .sync_page = 100, .retain_age_ms = 1000 };
    mqim_inbound_q_t *q;
    mqim_txn_t txn;
    mqim_store_stats_t s;
    setup(&c, 0);
    snprintf(journal, sizeof(journal), "%s/inbound.journal", dir);
    q = mqim_inbound_start(store, router, journal, 4, NULL, NULL);
    CHECK(q != NULL);
    for (int i = 0; i < 3; i++) {
        mqim_inbound_t in = inb("im/u/alice/out/dm/bob", "old enough to go");
        CHECK(mqim_inbound_put(q, &in, clock_ms)); /* clock_ms is long past: older than 1 s */
    }
    mqim_inbound_stop(q);
    CHECK_EQ_INT(mqim_txn_begin(store, MQIM_TXN_READ, &txn), MQIM_OK);
    CHECK_EQ_INT(mqim_store_stats(&txn, &s), MQIM_OK);
    mqim_txn_abort(&txn);
    CHECK_EQ_INT(s.messages, 3); /* routing itself prunes by count, not by age */
    q = mqim_inbound_start(store, router, journal, 4, NULL, NULL);
    CHECK(q != NULL);
    mqim_inbound_sweep_every(q, &c, 20);
    for (int i = 0; i < 100; i++) {
        struct timespec ts = { 0, 20000000L };
        nanosleep(&ts, NULL);
        CHECK_EQ_INT(mqim_txn_begin(store, MQIM_TXN_READ, &txn), MQIM_OK);
        CHECK_EQ_INT(mqim_store_stats(&txn, &s), MQIM_OK);
        mqim_txn_abort(&txn);
        if (s.messages == 0u) {
            break;
        }
    }
    mqim_inbound_stop(q);
    CHECK_EQ_INT(s.messages, 0);
    CHECK_EQ_INT(s.inbox_entries, 0);
    teardown();
}

/* A journal write that fails part-way (a full disk) is cut off the file:
 * the records after it are still replayed after a crash. */
static int torn_calls;

static ssize_t torn_write(int fd, const void *buf, size_t len)
{
    torn_calls++;
    if (torn_calls == 2) {
        return write(fd, buf, len / 2u); /* the second record: half of it ... */
    }
    if (torn_calls == 3) {
        errno = ENOSPC; /* ... then the disk is full */
        return -1;
    }
    return write(fd, buf, len);
}

static void test_journal_torn_write(void)
{
    char journal[300], bodies[16][32];
    mqim_inbound_q_t *q;
    mqim_txn_t txn;
    setup(NULL, 0);
    snprintf(journal, sizeof(journal), "%s/inbound.journal", dir);
    q = mqim_inbound_start(store, router, journal, 2, NULL, NULL);
    CHECK(q != NULL);
    torn_calls = 0;
    mqim_inbound_set_journal_write(torn_write);
    for (int i = 0; i < 3; i++) {
        char body[16];
        mqim_inbound_t in;
        snprintf(body, sizeof(body), "torn %d", i);
        in = inb("im/u/alice/out/dm/bob", body);
        CHECK(mqim_inbound_put(q, &in, clock_ms)); /* queued all the same */
    }
    mqim_inbound_set_journal_write(NULL);
    mqim_inbound_stop(q);
    CHECK_EQ_INT(bob_bodies(bodies, 16), 3);
    /* a crash before any commit: everything journaled is routed again */
    CHECK_EQ_INT(mqim_txn_begin(store, MQIM_TXN_WRITE, &txn), MQIM_OK);
    CHECK_EQ_INT(mqim_store_counter_add(&txn, "journal_applied", UINT64_MAX - 2u), MQIM_OK); /* 3 - 3 */
    CHECK_EQ_INT(mqim_txn_commit(&txn), MQIM_OK);
    q = mqim_inbound_start(store, router, journal, 2, NULL, NULL);
    CHECK(q != NULL);
    mqim_inbound_stop(q);
    CHECK_EQ_INT(bob_bodies(bodies, 16), 2); /* the first and the third: the torn one was cut */
    CHECK_EQ_STR(bodies[0], strlen(bodies[0]), "torn 0");
    CHECK_EQ_STR(bodies[1], strlen(bodies[1]), "torn 2");
    teardown();
}

/* Outbox entries the pump hands over are deleted by the worker even when no
 * inbound publish follows (it once waited for the next one): within
 * DELETE_DELAY_MS of an idle worker, and inside a batch otherwise. */
static void test_outbox_deletes_when_idle(void)
{
    char journal[300];
    mqim_inbound_q_t *q;
    mqim_txn_t txn;
    uint64_t keys[3];
    setup(NULL, 0);
    snprintf(journal, sizeof(journal), "%s/inbound.journal", dir);
    CHECK_EQ_INT(mqim_txn_begin(store, MQIM_TXN_WRITE, &txn), MQIM_OK);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(mqim_store_outbox_put(&txn, MQIM_STR("im/u/bob/in/msg"), 1, false, (mqim_str_t){ NULL, 0 },
                                           MQIM_STR("x"), &keys[i]),
                     MQIM_OK);
    }
    CHECK_EQ_INT(mqim_txn_commit(&txn), MQIM_OK);
    CHECK_EQ_INT(outbox_count(), 3);
    q = mqim_inbound_start(store, router, journal, 4, NULL, NULL);
    CHECK(q != NULL);
    usleep(50000); /* the worker is waiting, idle */
    mqim_inbound_outbox_done(q, keys, 2);
    for (int i = 0; i < 100 && outbox_count() > 1u; i++) {
        usleep(10000);
    }
    CHECK_EQ_INT(outbox_count(), 1); /* no inbound publish came, no stop either */
    mqim_inbound_outbox_done(q, &keys[2], 1);
    mqim_inbound_stop(q); /* stopping deletes what is pending */
    CHECK_EQ_INT(outbox_count(), 0);
    teardown();
}

/* Order, a rejection in the middle, a duplicate inside the batch, one commit. */
static void test_batch_order_reject_dedupe(void)
{
    mqim_inbound_t in[6];
    int64_t now[6];
    mqim_status_t st[6];
    int bob_msgs = 0, m1_sent = 0, rejected = 0;
    uint64_t seqs[4];
    setup(NULL, 0);
    in[0] = inb("im/u/alice/out/dm/bob", "{\"id\":\"m1\",\"body\":\"one\"}");
    in[1] = inb("im/u/alice/out/dm/nobody", "{\"id\":\"x1\",\"body\":\"lost?\"}");
    in[2] = inb("im/u/alice/out/dm/bob", "{\"id\":\"m2\",\"body\":\"two\"}");
    in[3] = inb("im/u/alice/out/dm/bob", "{\"id\":\"m1\",\"body\":\"one\"}"); /* a retry */
    in[4] = inb("im/u/bob/out/dm/alice", "{\"id\":\"b1\",\"body\":\"back\"}");
    in[5] = inb("im/u/alice/out/dm/bob", "{\"id\":\"m3\",\"body\":\"three\"}");
    for (int i = 0; i < 6; i++) {
        now[i] = clock_ms + i;
    }
    hook_calls = 0;
    CHECK_EQ_INT(mqim_router_handle_batch(router, in, now, 6, st, batch_hook, NULL), MQIM_OK);
    CHECK_EQ_INT(st[0], MQIM_OK);
    CHECK_EQ_INT(st[1], MQIM_UNKNOWN_PEER);
    CHECK_EQ_INT(st[2], MQIM_OK);
    CHECK_EQ_INT(st[3], MQIM_OK);
    CHECK_EQ_INT(st[4], MQIM_OK);
    CHECK_EQ_INT(st[5], MQIM_OK);
    CHECK(hook_calls == 1);
    CHECK(hook_outbox_seen > 0u);
    CHECK(counter("commits") == 1u);
    CHECK(counter("batched") == 6u);
    CHECK(counter("hooked") == 1u);
    CHECK(counter("duplicates") == 1u);
    drain();
    for (int i = 0; i < nouts; i++) {
        cJSON *j = json_of(&outs[i]);
        const cJSON *id = cJSON_GetObjectItem(j, "id");
        const cJSON *status = cJSON_GetObjectItem(j, "status");
        if (strcmp(outs[i].topic, "im/u/bob/in/msg") == 0 && cJSON_IsString(id) &&
            strcmp(cJSON_GetObjectItem(j, "from")->valuestring, "alice") == 0) {
            if (bob_msgs < 4) {
                seqs[bob_msgs] = (uint64_t)cJSON_GetObjectItem(j, "seq")->valuedouble;
            }
            /* alice's messages reach bob in the order sent, m1 once */
            CHECK(strcmp(id->valuestring, bob_msgs == 0 ? "m1" : bob_msgs == 1 ? "m2" : "m3") == 0);
            bob_msgs++;
        }
        if (strcmp(outs[i].topic, "im/u/alice/in/msg") == 0 && cJSON_IsString(id) &&
            strcmp(cJSON_GetObjectItem(j, "from")->valuestring, "alice") == 0 &&
            strcmp(id->valuestring, "m1") == 0) {
            m1_sent++; /* the echo: alice's confirmation */
        }
        if (strcmp(outs[i].topic, "im/u/alice/in/ack") == 0 && cJSON_IsString(status) &&
            strcmp(status->valuestring, "rejected") == 0) {
            CHECK(strcmp(id->valuestring, "x1") == 0);
            rejected++;
        }
        cJSON_Delete(j);
    }
    CHECK(bob_msgs == 3);
    CHECK(seqs[0] < seqs[1] && seqs[1] < seqs[2]);
    CHECK(m1_sent == 2); /* the retry is confirmed again, with the same echo */
    CHECK(rejected == 1);
    CHECK(inbox_count("bob") == 4u); /* m1, m2, b1 (echo), m3 */
    teardown();
}

/* Nothing of a batch is visible (to the pump's thread) before it commits. */
static void *count_outbox_thread(void *arg)
{
    *(uint64_t *)arg = outbox_count();
    return NULL;
}

static mqim_status_t peek_hook(void *ctx, mqim_txn_t *batch)
{
    pthread_t t;
    (void)batch;
    pthread_create(&t, NULL, count_outbox_thread, ctx);
    pthread_join(t, NULL);
    return MQIM_OK;
}

static void test_batch_invisible_before_commit(void)
{
    mqim_inbound_t in[2];
    int64_t now[2] = { clock_ms, clock_ms + 1 };
    mqim_status_t st[2];
    uint64_t seen = 99;
    setup(NULL, 0);
    in[0] = inb("im/u/alice/out/dm/bob", "{\"id\":\"v1\",\"body\":\"a\"}");
    in[1] = inb("im/u/alice/out/dm/bob", "{\"id\":\"v2\",\"body\":\"b\"}");
    CHECK_EQ_INT(mqim_router_handle_batch(router, in, now, 2, st, peek_hook, &seen), MQIM_OK);
    CHECK(seen == 0u);
    CHECK(outbox_count() == 4u); /* delivery and echo (the confirmation) for each */
    teardown();
}

/* The store fills in the middle of a batch: what fitted is stored and acked,
 * the rest is rejected with store_full; nothing is dropped silently. */
static void test_batch_store_full(void)
{
    TEST_LMDB_ONLY();
    enum { N = 48 };
    static mqim_inbound_t in[N];
    static char payloads[N][4100];
    int64_t now[N];
    mqim_status_t st[N];
    int ok = 0, full = 0, sent = 0, full_acks = 0;
    setup(NULL, 256 * 1024);
    for (int i = 0; i < N; i++) {
        char body[4001];
        memset(body, 'a' + (i % 26), 4000);
        body[4000] = '\0';
        snprintf(payloads[i], sizeof(payloads[i]), "{\"id\":\"f%02d\",\"body\":\"%s\"}", i, body);
        in[i] = inb("im/u/alice/out/dm/bob", payloads[i]);
        now[i] = clock_ms + i;
    }
    ndirect = 0;
    (void)mqim_router_handle_batch(router, in, now, N, st, NULL, NULL);
    for (int i = 0; i < N; i++) {
        if (st[i] == MQIM_OK) {
            CHECK(full == 0); /* in order: once full, the rest does not fit either */
            ok++;
        } else {
            CHECK(st[i] == MQIM_STORE_FULL || st[i] == MQIM_STORE_ERROR);
            full++;
        }
    }
    CHECK(ok > 0 && full > 0);
    CHECK(inbox_count("bob") == (uint64_t)ok);
    {
        /* read, not drain: deleting needs room a full map lacks */
        mqim_txn_t txn;
        mqim_outbox_rec_t rec;
        uint64_t from = 0;
        mqim_txn_begin(store, MQIM_TXN_READ, &txn);
        while (mqim_store_outbox_next(&txn, from, &rec) == MQIM_OK) {
            if (mqim_str_eq_cstr(rec.topic, "im/u/alice/in/msg")) {
                sent++; /* the echo: alice's confirmation */
            }
            if (mqim_str_eq_cstr(rec.topic, "im/u/alice/in/ack")) {
                full_acks += memmem(rec.payload.ptr, rec.payload.len, "store_full", 10) != NULL;
            }
            from = rec.key + 1u;
        }
        mqim_txn_abort(&txn);
    }
    for (int i = 0; i < ndirect; i++) {
        full_acks += strstr(direct[i].payload, "store_full") != NULL;
    }
    CHECK(sent == ok);
    CHECK(full_acks == full);
    teardown();
}

/* The echo is the sender's confirmation; "ack":"sent" asks for the `sent`
 * ack as well (a shell user's opt-in), for direct and group messages. */
static void test_sent_ack_opt_in(void)
{
    cJSON *j;
    setup(NULL, 0);
    CHECK_EQ_INT(pub("im/u/alice/out/dm/bob", "{\"id\":\"o1\",\"ack\":\"sent\",\"body\":\"hi\"}", 1), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 3);
    CHECK_OUT(0, "im/u/bob/in/msg", "id", "o1");
    CHECK_OUT(1, "im/u/alice/in/msg", "id", "o1");
    CHECK_OUT(2, "im/u/alice/in/ack", "status", "sent");
    CHECK_OUT(2, "im/u/alice/in/ack", "id", "o1");
    CHECK_OUT(2, "im/u/alice/in/ack", "to", "bob");
    j = json_of(&outs[2]);
    CHECK(jnum(j, "seq") == 1.0 && jnum(j, "ts") == (double)clock_ms && outs[2].qos == 1);
    cJSON_Delete(j);
    /* the request is not part of the message: nobody's copy carries it */
    CHECK(strstr(outs[0].payload, "\"ack\"") == NULL && strstr(outs[1].payload, "\"ack\"") == NULL);
    /* without an id: the gateway's id in the ack */
    CHECK_EQ_INT(pub("im/u/alice/out/dm/bob", "{\"ack\":\"sent\",\"body\":\"no id\"}", 1), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 3);
    CHECK_OUT(2, "im/u/alice/in/ack", "status", "sent");
    j = json_of(&outs[2]);
    CHECK(strlen(jstr(j, "id")) == 26u && jnum(j, "seq") == 2.0);
    cJSON_Delete(j);
    /* a group: one copy per member (the echo is alice's), plus the ack when asked */
    cJSON_Delete(ctl("alice", "{\"op\":\"group_create\",\"group\":\"team\",\"members\":[\"bob\",\"carol\"]}", MQIM_OK));
    drain();
    CHECK_EQ_INT(pub("im/u/alice/out/group/team", "{\"id\":\"g1\",\"body\":\"all\"}", 1), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 3);
    for (int i = 0; i < nouts; i++) {
        CHECK(strstr(outs[i].topic, "/in/msg") != NULL);
    }
    CHECK_EQ_INT(pub("im/u/alice/out/group/team", "{\"id\":\"g2\",\"ack\":\"sent\",\"body\":\"all\"}", 1), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 4);
    CHECK_OUT(3, "im/u/alice/in/ack", "status", "sent");
    CHECK_OUT(3, "im/u/alice/in/ack", "group", "team");
    CHECK_OUT(3, "im/u/alice/in/ack", "id", "g2");
    teardown();
}

/* A retried publish the gateway already stored gets its confirmation again:
 * the echo (byte for byte), or the `sent` ack when the retry asks for it, or
 * the ack when retention removed the message the echo would repeat. */
static void test_retry_confirmation(void)
{
    static char echo[20000], ack[20000];
    cJSON *j;
    setup(NULL, 0);
    CHECK_EQ_INT(pub("im/u/alice/out/dm/bob", "{\"id\":\"r1\",\"ack\":\"sent\",\"body\":\"once\"}", 1), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 3);
    snprintf(echo, sizeof(echo), "%s", outs[1].payload);
    snprintf(ack, sizeof(ack), "%s", outs[2].payload);
    /* the same retry asks for the ack again: the first ack */
    CHECK_EQ_INT(pub("im/u/alice/out/dm/bob", "{\"id\":\"r1\",\"ack\":\"sent\",\"body\":\"once\"}", 1), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 1);
    CHECK(strcmp(outs[0].topic, "im/u/alice/in/ack") == 0 && strcmp(outs[0].payload, ack) == 0);
    /* a retry without the request: the echo */
    CHECK_EQ_INT(pub("im/u/alice/out/dm/bob", "{\"id\":\"r1\",\"body\":\"once\"}", 1), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 1);
    CHECK(strcmp(outs[0].topic, "im/u/alice/in/msg") == 0 && strcmp(outs[0].payload, echo) == 0);
    CHECK(outs[0].qos == 1);
    CHECK(inbox_count("bob") == 1u && inbox_count("alice") == 1u);
    /* a group message retried: the echo of the group message */
    cJSON_Delete(ctl("alice", "{\"op\":\"group_create\",\"group\":\"team\",\"members\":[\"bob\"]}", MQIM_OK));
    drain();
    CHECK_EQ_INT(pub("im/u/alice/out/group/team", "{\"id\":\"g1\",\"body\":\"all\"}", 1), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 2);
    snprintf(echo, sizeof(echo), "%s", strcmp(outs[0].topic, "im/u/alice/in/msg") == 0 ? outs[0].payload
                                                                                        : outs[1].payload);
    CHECK_EQ_INT(pub("im/u/alice/out/group/team", "{\"id\":\"g1\",\"body\":\"all\"}", 1), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 1);
    CHECK(strcmp(outs[0].topic, "im/u/alice/in/msg") == 0 && strcmp(outs[0].payload, echo) == 0);
    CHECK_OUT(0, "im/u/alice/in/msg", "group", "team");
    CHECK_EQ_INT(pub("im/u/alice/out/group/team", "{\"id\":\"g1\",\"ack\":\"sent\",\"body\":\"all\"}", 1), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 1);
    CHECK_OUT(0, "im/u/alice/in/ack", "status", "sent");
    CHECK_OUT(0, "im/u/alice/in/ack", "group", "team");
    /* retention removed r1 from alice's inbox: the retry gets the `sent` ack */
    set_policy("alice", 1, 0, 0);
    CHECK_EQ_INT(pub("im/u/alice/out/dm/bob", "{\"id\":\"r2\",\"body\":\"pushes r1 out\"}", 1), MQIM_OK);
    drain();
    CHECK_EQ_INT(pub("im/u/alice/out/dm/bob", "{\"id\":\"r1\",\"body\":\"once\"}", 1), MQIM_OK);
    drain();
    CHECK_EQ_INT(nouts, 1);
    CHECK_OUT(0, "im/u/alice/in/ack", "status", "sent");
    CHECK_OUT(0, "im/u/alice/in/ack", "id", "r1");
    j = json_of(&outs[0]);
    CHECK(jnum(j, "seq") == 1.0);
    cJSON_Delete(j);
    teardown();
}

int main(void)
{
    test_dm_plain_text();
    test_dm_envelope_from_ignored();
    test_dedupe();
    test_rejections();
    test_ephemeral_qos0();
    test_accept_any_and_quota();
    test_rate_limit();
    test_receipts();
    test_presence_epochs();
    test_sync_and_history();
    test_response_topic_and_presence_op();
    test_status_reordered();
    test_retention_and_pruned_sync();
    test_per_user_policy();
    test_store_full();
    test_disk_full();
    test_group_count_retention();
    test_group_retention_and_user_retention();
    test_group_set();
    test_group_age_sweep();
    test_files();
    test_file_rate_limit();
    test_keys_publish();
    test_keys_ctl();
    test_enc_messages();
    test_device_cap_and_status_rate();
    test_batch_order_reject_dedupe();
    test_journal_replay();
    test_journal_torn_write();
    test_sweep_on_worker();
    test_reply_store_failure();
    test_outbox_deletes_when_idle();
    test_batch_invisible_before_commit();
    test_batch_store_full();
    test_sent_ack_opt_in();
    test_retry_confirmation();
    return CHECK_REPORT();
}
