#define _GNU_SOURCE
/* The POSIX port's LMDB outbox and device state: order, survival across a
 * reopen (a reboot), keys never reused, map full as outbox full. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mqim_check.h"
#include "mqim_posix_lmdb.h"

static char dir[64];

static void test_order_and_reboot(void)
{
    mqim_lmdb_store_t *s = NULL;
    const mqim_outbox_ops_t *ops = &mqim_lmdb_outbox_ops;
    uint32_t k[4] = { 0 }, key = 0;
    uint8_t buf[64];
    size_t len = 0;
    char rec[16];
    CHECK_EQ_INT(mqim_lmdb_store_open(dir, 0, &s), MQIM_OK);
    for (int i = 0; i < 4; i++) {
        int n = snprintf(rec, sizeof(rec), "msg-%d", i);
        CHECK_EQ_INT(ops->put(s, (const uint8_t *)rec, (size_t)n, &k[i]), MQIM_OK);
        CHECK_EQ_INT(k[i], i + 1);
    }
    CHECK_EQ_INT(ops->remove(s, k[1]), MQIM_OK); /* an ack out of order */
    CHECK_EQ_INT(ops->remove(s, k[1]), MQIM_NOT_FOUND);
    mqim_lmdb_store_close(s);
    /* after the "reboot" the rest is replayed in order */
    CHECK_EQ_INT(mqim_lmdb_store_open(dir, 0, &s), MQIM_OK);
    CHECK_EQ_INT(mqim_lmdb_outbox_count(s), 3);
    {
        const char *want[] = { "msg-0", "msg-2", "msg-3" };
        key = 0;
        for (int i = 0; i < 3; i++) {
            CHECK_EQ_INT(ops->peek(s, key, &key, buf, sizeof(buf), &len), MQIM_OK);
            CHECK_EQ_STR((const char *)buf, len, want[i]);
        }
        CHECK_EQ_INT(ops->peek(s, key, &key, buf, sizeof(buf), &len), MQIM_NOT_FOUND);
    }
    CHECK_EQ_INT(ops->peek(s, 0, &key, buf, 2, &len), MQIM_BUFFER_TOO_SMALL);
    CHECK_EQ_INT(len, 5);
    /* emptied, then a new entry: its key is new (an old ack cannot remove it) */
    ops->remove(s, k[0]);
    ops->remove(s, k[2]);
    ops->remove(s, k[3]);
    mqim_lmdb_store_close(s);
    CHECK_EQ_INT(mqim_lmdb_store_open(dir, 0, &s), MQIM_OK);
    CHECK_EQ_INT(ops->put(s, (const uint8_t *)"x", 1, &key), MQIM_OK);
    CHECK_EQ_INT(key, 5);
    mqim_lmdb_store_close(s);
}

static void test_state(void)
{
    mqim_lmdb_store_t *s = NULL;
    mqim_device_state_t st = { 0, 0, 0 }, got;
    CHECK_EQ_INT(mqim_lmdb_store_open(dir, 0, &s), MQIM_OK);
    CHECK_EQ_INT(mqim_lmdb_state_ops.load(s, &got), MQIM_OK);
    CHECK(got.epoch == 0u && got.last_seq == 0u); /* never saved: zeros */
    st.epoch = 7;
    st.last_seq = 0x123456789aULL;
    st.store_epoch = (1ULL << 53) - 5u; /* the gateway's store epoch survives too */
    CHECK_EQ_INT(mqim_lmdb_state_ops.save(s, &st), MQIM_OK);
    mqim_lmdb_store_close(s);
    CHECK_EQ_INT(mqim_lmdb_store_open(dir, 0, &s), MQIM_OK);
    CHECK_EQ_INT(mqim_lmdb_state_ops.load(s, &got), MQIM_OK);
    CHECK(got.epoch == 7u && got.last_seq == 0x123456789aULL);
    CHECK(got.store_epoch == (1ULL << 53) - 5u);
    mqim_lmdb_store_close(s);
}

static void test_full(void)
{
    mqim_lmdb_store_t *s = NULL;
    static uint8_t big[16384];
    char small[96];
    uint32_t key = 0;
    mqim_status_t st = MQIM_OK;
    int n = 0;
    snprintf(small, sizeof(small), "%s/small", dir);
    CHECK_EQ_INT(mqim_lmdb_store_open(small, 256 * 1024, &s), MQIM_OK);
    while (st == MQIM_OK && n < 1000) {
        st = mqim_lmdb_outbox_ops.put(s, big, sizeof(big), &key);
        n++;
    }
    CHECK_EQ_INT(st, MQIM_OUTBOX_FULL);
    CHECK(n > 3);
    /* what was stored is intact */
    CHECK_EQ_INT(mqim_lmdb_outbox_count(s), n - 1);
    mqim_lmdb_store_close(s);
}

int main(void)
{
    char cmd[128];
    snprintf(dir, sizeof(dir), "/tmp/mqim-devstore-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        return 2;
    }
    test_order_and_reboot();
    test_state();
    test_full();
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cleanup failed\n");
    }
    return CHECK_REPORT();
}
