/* Fuzz target: the gateway's router, i.e. every parser of device input that
 * lives there (receipts, control requests, statuses, direct messages,
 * device keys), over
 * a real LMDB store on tmpfs. Input: byte 0 picks the topic, byte 1 the QoS,
 * the rest is the payload. Any crash, sanitizer report or a publish that
 * gets no answer is a finding. */
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

static const char *const topics[] = {
    "im/u/alice/out/dm/bob",   "im/u/bob/out/receipt",        "im/u/alice/out/ctl",
    "im/u/alice/out/status/p", "im/u/alice/out/group/team",   "im/u/alice/out/dm/nobody",
    "im/u/bob/out/ctl",        "im/u/alice/out/bogus/x",    "im/u/alice/out/key",
};

static void ignore(void *ctx, const mqim_outbound_t *o)
{
    (void)ctx;
    (void)o;
}

static void fixed_random(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    memset(buf, 0x33, len);
}

static char dir[] = "/dev/shm/mqim-fuzz-router-XXXXXX";

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

static void setup(void)
{
    static mqim_router_config_t cfg;
    mqim_txn_t txn;
    if (mkdtemp(dir) == NULL || mqim_store_open(dir, (size_t)256 << 20, false, &store) != MQIM_OK) {
        abort();
    }
    cfg = (mqim_router_config_t){ .root = "im", .sync_page = 20, .retain_count = 64,
                                  .publish_now = ignore, .random = fixed_random };
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
}

/* What the pump would do: publish and delete; keeps the store small. */
static void drain(void)
{
    mqim_txn_t txn;
    mqim_outbox_rec_t rec;
    if (mqim_txn_begin(store, MQIM_TXN_WRITE_LAZY, &txn) != MQIM_OK) {
        abort();
    }
    while (mqim_store_outbox_next(&txn, 0, &rec) == MQIM_OK) {
        if (rec.topic.len == 0u || mqim_store_outbox_del(&txn, rec.key) != MQIM_OK) {
            abort();
        }
    }
    if (mqim_txn_commit(&txn) != MQIM_OK) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mqim_inbound_t in;
    if (store == NULL) {
        setup();
    }
    if (size < 2u) {
        return 0;
    }
    memset(&in, 0, sizeof(in));
    in.topic = mqim_str_from_cstr(topics[data[0] % (sizeof(topics) / sizeof(topics[0]))]);
    in.qos = data[1] % 3;
    in.payload = (mqim_str_t){ (const char *)data + 2, size - 2u };
    if (data[1] & 0x80u) {
        in.response_topic = MQIM_STR("im/u/alice/in/res/f");
        in.correlation = MQIM_STR("c");
    }
    clock_ms += 7;
    (void)mqim_router_handle(router, &in, clock_ms);
    drain();
    return 0;
}
