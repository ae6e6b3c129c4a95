/* Fuzz target: control requests (out/ctl and out/file) against a gateway
 * store that has something to answer about: alice and bob have talked, the
 * group "team" (alice owner, bob member) has messages, alice uploaded a
 * small file and announced it to bob. fuzz_router spreads its inputs over
 * every topic; this one spends them all on the ctl parsers and ops (sync,
 * history, chats, presence, group_*, msg_status, file_*), several requests
 * per input so that one can build on another.
 *
 * Input: requests separated by NUL bytes (JSON text never holds a raw
 * NUL), each [selector][payload] (the seeds use selectors 0x40..0x5f). Selector bits 0-1: the topic (alice's
 * ctl, alice's file, bob's ctl, carol's ctl); bit 2: QoS 0 instead of 1;
 * bits 3-4: the v5 response topic (none, alice's in/res/f, another user's
 * inbox, a wildcard). Every request must be answered: a crash, a sanitizer
 * report or a request that leaves nothing in the outbox is a finding. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "router.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static mqim_store_t *store;
static mqim_router_t *router;
static int64_t clock_ms = 1764000000000;
static size_t direct; /* answers published directly (file reads, QoS 0 errors) */

static const char *const topics[] = { "im/u/alice/out/ctl", "im/u/alice/out/file", "im/u/bob/out/ctl",
                                      "im/u/carol/out/ctl" };
static const char *const resp[] = { "", "im/u/alice/in/res/f", "im/u/bob/in/res", "im/u/alice/in/#" };

static bool print_answers; /* FUZZ_CTL_PRINT=1: show every answer (to write seeds) */

static void count_direct(void *ctx, const mqim_outbound_t *o)
{
    (void)ctx;
    if (print_answers) {
        fprintf(stderr, "direct %.*s %.*s\n", (int)o->topic.len, o->topic.ptr, (int)o->payload.len,
                o->payload.ptr);
    }
    direct++;
}

static void fixed_random(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    memset(buf, 0x5a, len);
}

static char dir[] = "/dev/shm/mqim-fuzz-ctl-XXXXXX";

static void cleanup(void)
{
    char path[sizeof(dir) + 16];
    mqim_router_free(router);
    mqim_store_close(store);
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", dir);
    unlink(path);
    rmdir(dir);
}

/* Remove what the pump would have published; returns how many there were. */
static size_t drain(void)
{
    mqim_txn_t txn;
    mqim_outbox_rec_t rec;
    size_t n = 0;
    if (mqim_txn_begin(store, MQIM_TXN_WRITE_LAZY, &txn) != MQIM_OK) {
        abort();
    }
    while (mqim_store_outbox_next(&txn, 0, &rec) == MQIM_OK) {
        if (print_answers) { /* before the delete: rec points into the txn's pages */
            fprintf(stderr, "outbox %.*s %.*s\n", (int)rec.topic.len, rec.topic.ptr, (int)rec.payload.len,
                    rec.payload.ptr);
        }
        if (rec.topic.len == 0u || mqim_store_outbox_del(&txn, rec.key) != MQIM_OK) {
            abort();
        }
        n++;
    }
    if (mqim_txn_commit(&txn) != MQIM_OK) {
        abort();
    }
    return n;
}

static void route(const char *topic, int qos, const char *payload)
{
    mqim_inbound_t in;
    memset(&in, 0, sizeof(in));
    in.topic = mqim_str_from_cstr(topic);
    in.qos = qos;
    in.payload = mqim_str_from_cstr(payload);
    clock_ms += 7;
    (void)mqim_router_handle(router, &in, clock_ms);
}

static void setup(void)
{
    static mqim_router_config_t cfg;
    mqim_txn_t txn;
    print_answers = getenv("FUZZ_CTL_PRINT") != NULL;
    if (mkdtemp(dir) == NULL || mqim_store_open(dir, (size_t)256 << 20, false, &store) != MQIM_OK) {
        abort();
    }
    cfg = (mqim_router_config_t){ .root = "im", .sync_page = 20, .retain_count = 64,
                                  .publish_now = count_direct, .random = fixed_random,
                                  .file_max_bytes = 1u << 20 };
    router = mqim_router_new(store, &cfg);
    if (router == NULL || mqim_txn_begin(store, MQIM_TXN_WRITE, &txn) != MQIM_OK) {
        abort();
    }
    mqim_store_user_ensure(&txn, MQIM_STR("alice"), clock_ms);
    mqim_store_user_ensure(&txn, MQIM_STR("bob"), clock_ms);
    mqim_store_user_ensure(&txn, MQIM_STR("carol"), clock_ms);
    if (mqim_txn_commit(&txn) != MQIM_OK) {
        abort();
    }
    atexit(cleanup);
    route("im/u/alice/out/dm/bob", 1, "{\"id\":\"m1\",\"body\":\"hi bob\"}");
    route("im/u/bob/out/dm/alice", 1, "hello alice");
    route("im/u/alice/out/ctl", 1, "{\"op\":\"group_create\",\"group\":\"team\",\"members\":[\"bob\"]}");
    route("im/u/alice/out/group/team", 1, "{\"id\":\"g1\",\"body\":\"hi team\"}");
    route("im/u/bob/out/receipt", 1, "{\"status\":\"read\",\"chat\":\"alice\",\"upto\":1}");
    /* "hi" in one chunk: sha256("hi") */
    route("im/u/alice/out/file", 1,
          "{\"op\":\"file_begin\",\"upload\":\"u1\",\"name\":\"hi.txt\",\"size\":2,\"sha256\":"
          "\"8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4\"}");
    (void)drain();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    if (store == NULL) {
        setup();
    }
    while (p < end) {
        const uint8_t *nul = memchr(p, 0, (size_t)(end - p));
        const uint8_t *stop = nul != NULL ? nul : end;
        if (stop > p) {
            mqim_inbound_t in;
            uint8_t sel = p[0];
            size_t before = direct;
            memset(&in, 0, sizeof(in));
            in.topic = mqim_str_from_cstr(topics[sel & 3u]);
            in.qos = (sel & 4u) != 0u ? 0 : 1;
            in.payload = (mqim_str_t){ (const char *)p + 1, (size_t)(stop - p) - 1u };
            in.response_topic = mqim_str_from_cstr(resp[(sel >> 3) & 3u]);
            in.correlation = MQIM_STR("c");
            clock_ms += 7;
            (void)mqim_router_handle(router, &in, clock_ms);
            if (drain() == 0u && direct == before) {
                fprintf(stderr, "fuzz_ctl: a request got no answer\n");
                abort();
            }
        }
        p = stop + (nul != NULL ? 1 : 0);
    }
    return 0;
}
