/* Fuzz target: what a device decodes from its own storage after a reboot,
 * i.e. outbox records and the state record, as a corrupted flash or a file
 * edited by hand could leave them. The input is written raw into the POSIX
 * port's LMDB environment (on tmpfs: any key size, any value) or into a RAM
 * outbox; then the three readers run over it: mqim-outbox-dump's loop
 * (peek every entry, load the state), the IM layer's replay after a CONNACK
 * (record_parse, corrupt records dropped, oversized ones kept) and its
 * outbox_forget when a `sent` ack for the first record's id arrives.
 *
 * Input: byte 0 bit 0: LMDB (1) or RAM outbox (0); byte 1: length of the
 * raw state record (0..15, 0 = none), then its bytes; then records, each
 * [key size (LMDB; 0 = the right 4 bytes)] [length, 2 bytes big-endian]
 * [bytes]. Any crash or sanitizer report is a finding. */
#define _DEFAULT_SOURCE 1 /* mkdtemp */
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mqim/client.h"
#include "mqim_posix_lmdb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_WIRE_SIZE 4096
#include "fuzz_wire.h"

static char dir[] = "/dev/shm/mqim-fuzz-outbox-XXXXXX";

static mqim_device_state_t ram_state;

static mqim_status_t st_load(void *ctx, mqim_device_state_t *s)
{
    (void)ctx;
    *s = ram_state;
    return MQIM_OK;
}

static mqim_status_t st_save(void *ctx, const mqim_device_state_t *s)
{
    (void)ctx;
    ram_state = *s;
    return MQIM_OK;
}

static const mqim_state_ops_t ram_state_ops = { st_load, st_save };
static mqim_client_t client;
static mqim_ram_outbox_t ram;
static uint8_t ram_mem[4096];

static void cleanup(void)
{
    char path[sizeof(dir) + 16];
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", dir);
    unlink(path);
    rmdir(dir);
}

/* Empty the environment and write the input's records and state raw. */
static void write_raw(const uint8_t *state, size_t state_len, const uint8_t *p, const uint8_t *end)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi outbox, meta;
    uint32_t next = 1;
    if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 2) != 0 ||
        mdb_env_set_mapsize(env, (size_t)8 << 20) != 0 || mdb_env_open(env, dir, MDB_NOSYNC, 0600) != 0 ||
        mdb_txn_begin(env, NULL, 0, &txn) != 0 || mdb_dbi_open(txn, "outbox", MDB_CREATE, &outbox) != 0 ||
        mdb_dbi_open(txn, "meta", MDB_CREATE, &meta) != 0 || mdb_drop(txn, outbox, 0) != 0 ||
        mdb_drop(txn, meta, 0) != 0) {
        abort();
    }
    if (state_len > 0u) {
        MDB_val k = { 5, (void *)(uintptr_t)"state" }, v = { state_len, (void *)(uintptr_t)state };
        (void)mdb_put(txn, meta, &k, &v, 0);
    }
    while (end - p >= 3) {
        uint8_t kb[8];
        size_t ks = p[0] % 8u, len = ((size_t)p[1] << 8) | p[2];
        MDB_val k, v;
        p += 3;
        len = len < (size_t)(end - p) ? len : (size_t)(end - p);
        kb[0] = (uint8_t)(next >> 24);
        kb[1] = (uint8_t)(next >> 16);
        kb[2] = (uint8_t)(next >> 8);
        kb[3] = (uint8_t)next;
        memset(kb + 4, 0xA5, 4);
        k = (MDB_val){ ks == 0u ? 4u : ks, kb };
        v = (MDB_val){ len, (void *)(uintptr_t)p };
        (void)mdb_put(txn, outbox, &k, &v, 0);
        p += len;
        next++;
    }
    if (mdb_txn_commit(txn) != 0) {
        abort();
    }
    mdb_env_close(env);
}

static void put_ram(const uint8_t *p, const uint8_t *end)
{
    mqim_ram_outbox_init(&ram, ram_mem, sizeof(ram_mem));
    while (end - p >= 3) {
        size_t len = ((size_t)p[1] << 8) | p[2];
        uint32_t key;
        p += 3;
        len = len < (size_t)(end - p) ? len : (size_t)(end - p);
        (void)mqim_ram_outbox_put(&ram, p, len, &key);
        p += len;
    }
}

/* mqim-outbox-dump's loop, without the printing. */
static void dump(mqim_lmdb_store_t *s)
{
    static uint8_t buf[1 << 16];
    mqim_device_state_t st;
    uint32_t key = 0;
    size_t len = 0, n = 0;
    (void)mqim_lmdb_state_ops.load(s, &st);
    (void)mqim_lmdb_outbox_count(s);
    while (mqim_lmdb_outbox_ops.peek(s, key, &key, buf, sizeof(buf), &len) == MQIM_OK && n < 10000u) {
        n++;
    }
}

/* The id of the first record when it could be one (for the `sent` ack). */
static size_t first_id(const uint8_t *p, const uint8_t *end, char *id, size_t cap)
{
    size_t len, il;
    if (end - p < 4) {
        return 0;
    }
    len = ((size_t)p[1] << 8) | p[2];
    p += 3;
    len = len < (size_t)(end - p) ? len : (size_t)(end - p);
    il = p[0];
    if (il + 1u > len || il >= cap) {
        return 0;
    }
    for (size_t i = 0; i < il; i++) {
        char ch = (char)p[1 + i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_')) {
            return 0;
        }
        id[i] = ch;
    }
    return il;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mqim_client_config_t cfg;
    mqim_lmdb_store_t *store = NULL;
    const uint8_t *p, *end = data + size;
    size_t state_len;
    bool lmdb;
    char id[80], ack[200];
    size_t il;
    if (size < 2u || size > 20000u) {
        return 0;
    }
    if (dir[sizeof(dir) - 2] == 'X') {
        if (mkdtemp(dir) == NULL) {
            abort();
        }
        atexit(cleanup);
    }
    lmdb = (data[0] & 1u) != 0u;
    state_len = data[1] % 16u;
    state_len = state_len < size - 2u ? state_len : size - 2u;
    p = data + 2 + state_len;
    memset(&cfg, 0, sizeof(cfg));
    cfg.root = MQIM_STR("im");
    cfg.user = MQIM_STR("bob");
    cfg.device = MQIM_STR("fz");
    cfg.transport = &transport;
    cfg.clock = t_clock;
    cfg.entropy = t_entropy;
    if (lmdb) {
        write_raw(data + 2, state_len, p, end);
        if (mqim_lmdb_store_open(dir, (size_t)8 << 20, &store) != MQIM_OK) {
            abort();
        }
        dump(store);
        cfg.outbox = &mqim_lmdb_outbox_ops;
        cfg.outbox_ctx = store;
        cfg.state = &mqim_lmdb_state_ops;
        cfg.state_ctx = store;
    } else {
        put_ram(p, end);
        cfg.outbox = &mqim_ram_outbox_ops;
        cfg.outbox_ctx = &ram;
        cfg.state = &ram_state_ops;
        memset(&ram_state, 0, sizeof(ram_state));
        if (state_len >= 4u) {
            memcpy(&ram_state.last_seq, data + 2, state_len < 8u ? state_len : 8u);
        }
    }
    /* CONNACK, then a `sent` ack for the first record's id when it has one */
    wire[0] = 0x20;
    wire[1] = 2;
    wire[2] = 0;
    wire[3] = 0;
    wire_len = 4;
    il = first_id(p, end, id, sizeof(id));
    if (il > 0u) {
        mqim_mqtt_publish_t pub;
        size_t len = 0;
        int n = snprintf(ack, sizeof(ack), "{\"status\":\"sent\",\"id\":\"%.*s\",\"to\":\"alice\",\"seq\":3,\"ts\":5}",
                         (int)il, id);
        memset(&pub, 0, sizeof(pub));
        pub.topic = MQIM_STR("im/u/bob/in/ack");
        pub.payload = (const uint8_t *)ack;
        pub.payload_len = (size_t)n;
        pub.qos = 1;
        pub.packet_id = 9;
        if (mqim_mqtt_encode_publish(&pub, wire + 4, sizeof(wire) - 4u, &len) != MQIM_OK) {
            abort();
        }
        wire_len += len;
    }
    wire_off = 0;
    if (mqim_client_init(&client, &cfg) == MQIM_OK && mqim_client_start(&client) == MQIM_OK) {
        for (int i = 0; i < 4; i++) {
            (void)mqim_client_poll(&client, 0); /* connect, CONNACK, replay, the ack */
        }
        mqim_client_stop(&client);
    }
    if (store != NULL) {
        dump(store); /* what the replay left behind */
        mqim_lmdb_store_close(store);
    }
    return 0;
}
