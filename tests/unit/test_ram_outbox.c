/* RAM ring outbox: order, out-of-order removal, wrap-around, full, and a
 * randomized run against a simple model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqim/outbox.h"
#include "mqim_check.h"

static void test_basic_order_and_remove(void)
{
    static uint8_t mem[256];
    mqim_ram_outbox_t ob;
    uint8_t buf[64];
    uint32_t k1 = 0, k2 = 0, k3 = 0, key = 0;
    size_t len = 0;
    const mqim_outbox_ops_t *ops = &mqim_ram_outbox_ops;
    CHECK_EQ_INT(mqim_ram_outbox_init(&ob, mem, sizeof(mem)), MQIM_OK);
    CHECK_EQ_INT(ops->peek(&ob, 0, &key, buf, sizeof(buf), &len), MQIM_NOT_FOUND);
    CHECK_EQ_INT(ops->put(&ob, (const uint8_t *)"one", 3, &k1), MQIM_OK);
    CHECK_EQ_INT(ops->put(&ob, (const uint8_t *)"two!", 4, &k2), MQIM_OK);
    CHECK_EQ_INT(ops->put(&ob, (const uint8_t *)"", 0, &k3), MQIM_OK);
    CHECK(k1 == 1u && k2 == 2u && k3 == 3u);
    CHECK_EQ_INT(ops->peek(&ob, 0, &key, buf, sizeof(buf), &len), MQIM_OK);
    CHECK(key == k1 && len == 3u && memcmp(buf, "one", 3) == 0);
    CHECK_EQ_INT(ops->peek(&ob, k1, &key, buf, 3, &len), MQIM_BUFFER_TOO_SMALL);
    CHECK(key == k2 && len == 4u);
    CHECK_EQ_INT(ops->peek(&ob, k1, &key, buf, 4, &len), MQIM_OK);
    CHECK(memcmp(buf, "two!", 4) == 0);
    /* acks out of order: the middle one first */
    CHECK_EQ_INT(ops->remove(&ob, k2), MQIM_OK);
    CHECK_EQ_INT(ops->remove(&ob, k2), MQIM_NOT_FOUND);
    CHECK_EQ_INT(ops->peek(&ob, k1, &key, buf, sizeof(buf), &len), MQIM_OK);
    CHECK(key == k3 && len == 0u);
    CHECK_EQ_INT(ops->remove(&ob, k1), MQIM_OK);
    CHECK_EQ_INT(ops->remove(&ob, k3), MQIM_OK);
    CHECK(ob.count == 0u && ob.used == 0u);
    CHECK_EQ_INT(ops->remove(&ob, 0), MQIM_BAD_PARAMETER);
    CHECK_EQ_INT(mqim_ram_outbox_init(&ob, mem, 8), MQIM_BAD_PARAMETER);
}

static void test_full_and_wrap(void)
{
    static uint8_t mem[64]; /* room for 4 entries of 8 + 8 bytes */
    mqim_ram_outbox_t ob;
    uint8_t rec[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, buf[16];
    uint32_t keys[8], key = 0;
    size_t len = 0;
    mqim_ram_outbox_init(&ob, mem, sizeof(mem));
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_INT(mqim_ram_outbox_put(&ob, rec, 8, &keys[i]), MQIM_OK);
    }
    CHECK_EQ_INT(mqim_ram_outbox_put(&ob, rec, 1, &key), MQIM_OUTBOX_FULL);
    CHECK_EQ_INT(mqim_ram_outbox_put(&ob, rec, 100, &key), MQIM_OUTBOX_FULL);
    /* removing a middle entry frees nothing yet: the head is still live */
    CHECK_EQ_INT(mqim_ram_outbox_remove(&ob, keys[1]), MQIM_OK);
    CHECK_EQ_INT(mqim_ram_outbox_put(&ob, rec, 8, &key), MQIM_OUTBOX_FULL);
    /* removing the head reclaims it and the hole behind it: two slots */
    CHECK_EQ_INT(mqim_ram_outbox_remove(&ob, keys[0]), MQIM_OK);
    CHECK_EQ_INT(mqim_ram_outbox_put(&ob, rec, 8, &keys[4]), MQIM_OK);
    CHECK_EQ_INT(mqim_ram_outbox_put(&ob, rec, 3, &keys[5]), MQIM_OK);
    CHECK_EQ_INT(mqim_ram_outbox_put(&ob, rec, 1, &key), MQIM_OUTBOX_FULL);
    /* order survives the wrap: 3, 4, 5, 6 */
    key = 0;
    for (int want = 2; want < 6; want++) {
        CHECK_EQ_INT(mqim_ram_outbox_peek(&ob, key, &key, buf, sizeof(buf), &len), MQIM_OK);
        CHECK(key == keys[want]);
    }
    CHECK_EQ_INT(mqim_ram_outbox_peek(&ob, key, &key, buf, sizeof(buf), &len), MQIM_NOT_FOUND);
}

/* Random puts/removes against a model list; checks order and contents. */
static void test_random_against_model(void)
{
    static uint8_t mem[1000];
    mqim_ram_outbox_t ob;
    struct { uint32_t key; size_t len; uint8_t fill; } model[200];
    size_t n = 0;
    unsigned seed = 12345;
    mqim_ram_outbox_init(&ob, mem, sizeof(mem));
    for (int step = 0; step < 20000; step++) {
        seed = seed * 1103515245u + 12345u;
        if ((seed >> 16) % 3u != 0u && n < 200u) {
            uint8_t rec[100];
            size_t len = (seed >> 8) % 100u;
            uint8_t fill = (uint8_t)(seed >> 24);
            uint32_t key = 0;
            mqim_status_t st;
            memset(rec, fill, len);
            st = mqim_ram_outbox_put(&ob, rec, len, &key);
            if (st == MQIM_OK) {
                model[n].key = key;
                model[n].len = len;
                model[n].fill = fill;
                n++;
            } else {
                CHECK_EQ_INT(st, MQIM_OUTBOX_FULL);
                CHECK(n > 0u); /* an empty outbox always has room for 100 bytes */
            }
        } else if (n > 0u) {
            size_t i = (seed >> 4) % n;
            CHECK_EQ_INT(mqim_ram_outbox_remove(&ob, model[i].key), MQIM_OK);
            memmove(&model[i], &model[i + 1], (n - i - 1u) * sizeof(model[0]));
            n--;
        }
        if (step % 97 == 0) {
            uint32_t key = 0;
            for (size_t i = 0; i < n; i++) {
                uint8_t buf[100];
                size_t len = 0;
                CHECK_EQ_INT(mqim_ram_outbox_peek(&ob, key, &key, buf, sizeof(buf), &len), MQIM_OK);
                CHECK(key == model[i].key && len == model[i].len);
                CHECK(len == 0u || (buf[0] == model[i].fill && buf[len - 1u] == model[i].fill));
            }
            CHECK(ob.count == n);
        }
    }
}

int main(void)
{
    test_basic_order_and_remove();
    test_full_and_wrap();
    test_random_against_model();
    return CHECK_REPORT();
}
