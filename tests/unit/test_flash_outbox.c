/* The flash outbox over a simulated NOR flash (flash_sim.h).
 *
 * 1. The outbox behaviours the RAM and LMDB outboxes have: order, removal
 *    out of order, the size on MQIM_BUFFER_TOO_SMALL, full, a random run
 *    against a model; plus survival across a reopen (a reboot), keys never
 *    reused, and wear spread over the pages.
 * 2. Power cuts: a fixed workload is run once to count its flash
 *    operations, then again for every one of them with the power cut in
 *    that operation (a program leaves a torn unit, an erase a half-erased
 *    page), for program units of 1, 4 and 8 bytes. After each cut the
 *    outbox is reopened and checked against what the application was told:
 *    every entry whose put returned MQIM_OK and whose remove did not is
 *    there exactly once with its bytes, in order; nothing else is (the
 *    put or remove that was cut may or may not have happened); then the
 *    workload goes on from there and is checked again at its end.
 * 3. Random workloads with many cuts each, the cuts landing anywhere,
 *    including in the recovery work after a previous cut. */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flash_sim.h"
#include "mqim/flash_outbox.h"
#include "mqim_check.h"

static flash_sim_t sim;
static mqim_flash_outbox_t ob;
static mqim_flash_page_t pages[64];

static mqim_status_t reopen(void)
{
    mqim_flash_t region = flash_sim_region(&sim);
    return mqim_flash_outbox_open(&ob, &region, pages);
}

/* ---- 1. the outbox behaviours ---- */

static void test_basic_order_and_remove(uint32_t unit)
{
    const mqim_outbox_ops_t *ops = &mqim_flash_outbox_ops;
    uint8_t buf[64];
    uint32_t k1 = 0, k2 = 0, k3 = 0, key = 0;
    size_t len = 0;
    flash_sim_init(&sim, 256, 4, unit, 1);
    CHECK_EQ_INT(reopen(), MQIM_OK);
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
    CHECK_EQ_INT(ops->remove(&ob, k2), MQIM_OK);
    CHECK_EQ_INT(ops->remove(&ob, k2), MQIM_NOT_FOUND);
    CHECK_EQ_INT(ops->peek(&ob, k1, &key, buf, sizeof(buf), &len), MQIM_OK);
    CHECK(key == k3 && len == 0u);
    /* a reboot: the same two entries, the removed one stays removed */
    CHECK_EQ_INT(reopen(), MQIM_OK);
    CHECK_EQ_INT(ob.count, 2);
    CHECK_EQ_INT(ops->peek(&ob, 0, &key, buf, sizeof(buf), &len), MQIM_OK);
    CHECK(key == k1 && len == 3u && memcmp(buf, "one", 3) == 0);
    CHECK_EQ_INT(ops->peek(&ob, k1, &key, buf, sizeof(buf), &len), MQIM_OK);
    CHECK(key == k3 && len == 0u);
    CHECK_EQ_INT(ops->remove(&ob, k1), MQIM_OK);
    CHECK_EQ_INT(ops->remove(&ob, k3), MQIM_OK);
    CHECK_EQ_INT(ops->peek(&ob, 0, &key, buf, sizeof(buf), &len), MQIM_NOT_FOUND);
    CHECK_EQ_INT(ops->remove(&ob, 0), MQIM_BAD_PARAMETER);
    CHECK_EQ_INT(ops->put(&ob, NULL, 1, &key), MQIM_BAD_PARAMETER);
    CHECK_EQ_INT(sim.violations, 0);
    /* geometry the outbox refuses */
    {
        mqim_flash_t bad = flash_sim_region(&sim);
        bad.page_count = 1;
        CHECK_EQ_INT(mqim_flash_outbox_open(&ob, &bad, pages), MQIM_BAD_PARAMETER);
        bad = flash_sim_region(&sim);
        bad.program_unit = 3;
        CHECK_EQ_INT(mqim_flash_outbox_open(&ob, &bad, pages), MQIM_BAD_PARAMETER);
        bad = flash_sim_region(&sim);
        bad.page_size = 100;
        CHECK_EQ_INT(mqim_flash_outbox_open(&ob, &bad, pages), MQIM_BAD_PARAMETER);
    }
}

/* A committed entry whose bytes changed afterwards (a bit flipped on the
 * flash) fails its CRC: it is skipped, never returned as garbage, and the
 * page takes no more entries. */
static void test_corrupt_entry_skipped(void)
{
    uint8_t buf[64];
    uint32_t k1 = 0, k2 = 0, key = 0;
    size_t len = 0;
    uint8_t *p;
    flash_sim_init(&sim, 256, 4, 4, 5);
    CHECK_EQ_INT(reopen(), MQIM_OK);
    CHECK_EQ_INT(mqim_flash_outbox_put(&ob, (const uint8_t *)"first", 5, &k1), MQIM_OK);
    CHECK_EQ_INT(mqim_flash_outbox_put(&ob, (const uint8_t *)"second", 6, &k2), MQIM_OK);
    p = memmem(sim.mem, sizeof(sim.mem), "second", 6);
    CHECK(p != NULL);
    if (p != NULL) {
        p[0] &= 0xfe; /* "s" becomes "r": one bit programmed */
    }
    CHECK_EQ_INT(reopen(), MQIM_OK);
    CHECK_EQ_INT(ob.count, 1);
    CHECK_EQ_INT(mqim_flash_outbox_peek(&ob, 0, &key, buf, sizeof(buf), &len), MQIM_OK);
    CHECK(key == k1 && len == 5u && memcmp(buf, "first", 5) == 0);
    CHECK_EQ_INT(mqim_flash_outbox_peek(&ob, k1, &key, buf, sizeof(buf), &len), MQIM_NOT_FOUND);
    CHECK_EQ_INT(mqim_flash_outbox_put(&ob, (const uint8_t *)"third", 5, &key), MQIM_OK);
    CHECK(key > k1);
    CHECK_EQ_INT(reopen(), MQIM_OK);
    CHECK_EQ_INT(ob.count, 2);
    CHECK_EQ_INT(sim.violations, 0);
}

/* Full: what the oldest page still holds limits what fits; acks free it. */
static void test_full_and_keys(void)
{
    static uint8_t rec[300];
    uint32_t keys[64], key = 0, n = 0, last = 0;
    size_t len = 0;
    uint8_t buf[300];
    flash_sim_init(&sim, 256, 3, 4, 2);
    CHECK_EQ_INT(reopen(), MQIM_OK);
    CHECK_EQ_INT(mqim_flash_outbox_put(&ob, rec, mqim_flash_outbox_max_record(&ob) + 1u, &key), MQIM_OUTBOX_FULL);
    CHECK_EQ_INT(mqim_flash_outbox_put(&ob, rec, mqim_flash_outbox_max_record(&ob), &key), MQIM_OK);
    CHECK_EQ_INT(mqim_flash_outbox_remove(&ob, key), MQIM_OK);
    /* 60-byte records take 80 bytes (12 header, 60, 4 commit, 4 delete): two
     * per 256-byte page (24 bytes of page header); 2 pages of the 3 hold
     * entries, one stays free for collections */
    for (;;) {
        memset(rec, (int)n, 60);
        mqim_status_t st = mqim_flash_outbox_put(&ob, rec, 60, &keys[n]);
        if (st != MQIM_OK) {
            CHECK_EQ_INT(st, MQIM_OUTBOX_FULL);
            break;
        }
        n++;
    }
    CHECK_EQ_INT(n, 4);
    CHECK_EQ_INT(ob.count, n);
    /* still full after a reboot; everything intact */
    CHECK_EQ_INT(reopen(), MQIM_OK);
    CHECK_EQ_INT(mqim_flash_outbox_put(&ob, rec, 60, &key), MQIM_OUTBOX_FULL);
    key = 0;
    for (uint32_t i = 0; i < n; i++) {
        CHECK_EQ_INT(mqim_flash_outbox_peek(&ob, key, &key, buf, sizeof(buf), &len), MQIM_OK);
        CHECK(key == keys[i] && len == 60u && buf[0] == (uint8_t)i && buf[59] == (uint8_t)i);
    }
    /* an ack of a middle entry does not free the oldest page */
    CHECK_EQ_INT(mqim_flash_outbox_remove(&ob, keys[n - 1u]), MQIM_OK);
    CHECK_EQ_INT(mqim_flash_outbox_remove(&ob, keys[0]), MQIM_OK);
    CHECK_EQ_INT(mqim_flash_outbox_remove(&ob, keys[1]), MQIM_OK);
    /* the oldest page now has room after a collection */
    CHECK_EQ_INT(mqim_flash_outbox_put(&ob, rec, 60, &key), MQIM_OK);
    CHECK(key > keys[n - 1u]);
    /* empty it all, reboot: keys go on, never reused */
    last = key;
    for (uint32_t k = 1; k <= last; k++) {
        (void)mqim_flash_outbox_remove(&ob, k);
    }
    CHECK_EQ_INT(ob.count, 0);
    for (int i = 0; i < 20; i++) { /* collections erase the pages that held the old keys */
        CHECK_EQ_INT(mqim_flash_outbox_put(&ob, rec, 60, &key), MQIM_OK);
        CHECK_EQ_INT(mqim_flash_outbox_remove(&ob, key), MQIM_OK);
    }
    last = key;
    CHECK_EQ_INT(reopen(), MQIM_OK);
    CHECK_EQ_INT(mqim_flash_outbox_put(&ob, rec, 1, &key), MQIM_OK);
    CHECK_EQ_INT(key, last + 1u);
    CHECK_EQ_INT(sim.violations, 0);
}

/* Content of the record with id `id`: its length and bytes follow from it. */
static size_t rec_make(uint32_t id, uint8_t *out, size_t max)
{
    size_t len = 4u + (id * 37u) % (max - 3u);
    out[0] = (uint8_t)id;
    out[1] = (uint8_t)(id >> 8);
    out[2] = (uint8_t)(id >> 16);
    out[3] = (uint8_t)(id >> 24);
    for (size_t i = 4; i < len; i++) {
        out[i] = (uint8_t)(id * 31u + i);
    }
    return len;
}

/* ---- the model: what the application was told ---- */

typedef struct model_entry {
    uint32_t key, id;
} model_entry_t;

typedef struct model {
    model_entry_t e[512];
    size_t n;
    uint32_t next_id, max_key;
    uint32_t put_pending;    /* id of a put that was cut, 0: none */
    uint32_t remove_pending; /* key of a remove that was cut, 0: none */
    size_t max_rec;
} model_t;

static int model_find(const model_t *m, uint32_t key)
{
    for (size_t i = 0; i < m->n; i++) {
        if (m->e[i].key == key) {
            return (int)i;
        }
    }
    return -1;
}

static void model_drop(model_t *m, size_t i)
{
    memmove(&m->e[i], &m->e[i + 1u], (m->n - i - 1u) * sizeof(m->e[0]));
    m->n--;
}

/* Read the whole outbox and hold it against the model. Resolves a pending
 * put or remove by what the flash says. Returns the number of failures. */
static int verify(model_t *m, const char *where)
{
    static uint8_t seen[512];
    uint8_t buf[1024], want[1024];
    uint32_t key = 0, prev = 0;
    size_t len = 0;
    int fails = 0, guard = 0;
    mqim_status_t st;
    memset(seen, 0, sizeof(seen));
    while ((st = mqim_flash_outbox_peek(&ob, key, &key, buf, sizeof(buf), &len)) == MQIM_OK && guard++ < 1000) {
        uint32_t id = len >= 4u ? (uint32_t)buf[0] | ((uint32_t)buf[1] << 8) | ((uint32_t)buf[2] << 16) |
                                      ((uint32_t)buf[3] << 24)
                                : 0u;
        int i = model_find(m, key);
        size_t wl = id != 0u ? rec_make(id, want, m->max_rec) : 0u;
        if (key <= prev || len != wl || len < 4u || memcmp(buf, want, len) != 0) {
            fprintf(stderr, "%s: key %u (after %u) len %zu: not an entry the application put\n", where, key, prev,
                    len);
            fails++;
        } else if (i >= 0) {
            if (m->e[i].id != id || seen[i]) {
                fprintf(stderr, "%s: key %u holds id %u, expected %u (seen %d)\n", where, key, id, m->e[i].id,
                        seen[i]);
                fails++;
            }
            seen[i] = 1;
        } else if (m->put_pending != 0u && id == m->put_pending && key > m->max_key) {
            /* the cut put happened after all: it is queued now */
            m->e[m->n].key = key;
            m->e[m->n].id = id;
            seen[m->n] = 1;
            m->n++;
            m->max_key = key;
            m->put_pending = 0;
        } else {
            fprintf(stderr, "%s: key %u id %u: unexpected (removed or never put)\n", where, key, id);
            fails++;
        }
        prev = key;
    }
    if (st != MQIM_NOT_FOUND) {
        fprintf(stderr, "%s: peek ended with %s\n", where, mqim_status_name(st));
        fails++;
    }
    for (size_t i = m->n; i-- > 0;) {
        if (!seen[i]) {
            if (m->e[i].key == m->remove_pending) {
                model_drop(m, i); /* the cut remove happened */
            } else {
                fprintf(stderr, "%s: key %u id %u lost\n", where, m->e[i].key, m->e[i].id);
                fails++;
            }
        }
    }
    if (ob.count != m->n) {
        fprintf(stderr, "%s: count %u, model %zu\n", where, ob.count, m->n);
        fails++;
    }
    m->put_pending = 0;
    m->remove_pending = 0;
    return fails;
}

/* One step of a workload: a put (while fewer than cap entries) or a remove,
 * mostly of the oldest entry (acks come roughly in order), sometimes of any.
 * Returns the status of the flash call. */
static mqim_status_t step(model_t *m, uint32_t *rng, size_t cap)
{
    uint32_t r;
    *rng = *rng * 1103515245u + 12345u;
    r = *rng >> 8;
    if (m->n == 0u || (m->n < cap && r % 5u < 3u)) {
        uint8_t rec[1024];
        uint32_t id = m->next_id++, key = 0;
        size_t len = rec_make(id, rec, m->max_rec);
        mqim_status_t st;
        m->put_pending = id;
        st = mqim_flash_outbox_put(&ob, rec, len, &key);
        if (st == MQIM_OK) {
            m->put_pending = 0;
            if (key <= m->max_key) {
                fprintf(stderr, "put: key %u not above %u\n", key, m->max_key);
                mqim_check_failures++;
            }
            m->e[m->n].key = key;
            m->e[m->n].id = id;
            m->n++;
            m->max_key = key;
        } else if (st == MQIM_OUTBOX_FULL) {
            m->put_pending = 0;
        }
        return st;
    } else {
        size_t i = (r >> 4) % 4u == 0u ? (r >> 8) % m->n : 0u;
        mqim_status_t st;
        m->remove_pending = m->e[i].key;
        st = mqim_flash_outbox_remove(&ob, m->e[i].key);
        if (st == MQIM_OK) {
            m->remove_pending = 0;
            model_drop(m, i);
        }
        return st;
    }
}

static void model_init(model_t *m, size_t max_rec)
{
    memset(m, 0, sizeof(*m));
    m->next_id = 1;
    m->max_rec = max_rec;
}

/* Random workload against the model, with reboots, no cuts. */
static void test_random_against_model(uint32_t unit)
{
    static model_t m;
    uint32_t rng = 99u + unit;
    char where[64];
    flash_sim_init(&sim, 512, 6, unit, 3);
    CHECK_EQ_INT(reopen(), MQIM_OK);
    model_init(&m, 120);
    for (int i = 0; i < 6000; i++) {
        mqim_status_t st = step(&m, &rng, 40);
        CHECK(st == MQIM_OK || st == MQIM_OUTBOX_FULL);
        if (i % 250 == 0) {
            snprintf(where, sizeof(where), "random unit %u step %d", unit, i);
            CHECK_EQ_INT(verify(&m, where), 0);
            CHECK_EQ_INT(reopen(), MQIM_OK);
            CHECK_EQ_INT(verify(&m, where), 0);
        }
    }
    CHECK_EQ_INT(sim.violations, 0);
    /* wear: round-robin keeps the pages within a few erases of each other */
    {
        uint32_t lo = sim.erases[0], hi = sim.erases[0];
        for (uint32_t p = 1; p < sim.page_count; p++) {
            lo = sim.erases[p] < lo ? sim.erases[p] : lo;
            hi = sim.erases[p] > hi ? sim.erases[p] : hi;
        }
        printf("unit %u: erases per page %u..%u over 6000 steps\n", unit, lo, hi);
        CHECK(lo > 10u && hi - lo <= 2u);
    }
}

/* ---- 2. a power cut in every flash operation of a workload ---- */

#define CUT_STEPS 120

static int run_workload(model_t *m, unsigned long cut_at, uint32_t unit, uint32_t seed, unsigned long *ops_out)
{
    uint32_t rng = 7u;
    int fails = 0, i = 0;
    char where[96];
    flash_sim_init(&sim, 256, 4, unit, seed);
    if (reopen() != MQIM_OK) {
        return 1;
    }
    model_init(m, 90);
    sim.cut_at = cut_at;
    for (; i < CUT_STEPS; i++) {
        mqim_status_t st = step(m, &rng, 12);
        if (st == MQIM_FLASH_ERROR && sim.off) {
            break;
        }
        if (st != MQIM_OK && st != MQIM_OUTBOX_FULL) {
            fprintf(stderr, "step %d: %s\n", i, mqim_status_name(st));
            return 1;
        }
    }
    if (cut_at == 0u) {
        *ops_out = sim.ops;
        return verify(m, "no cut");
    }
    if (i == CUT_STEPS) {
        return 0; /* past the end: nothing cut */
    }
    flash_sim_reboot(&sim);
    if (reopen() != MQIM_OK) {
        return 1;
    }
    snprintf(where, sizeof(where), "unit %u cut at op %lu (step %d)", unit, cut_at, i);
    fails += verify(m, where);
    for (i++; i < CUT_STEPS; i++) {
        mqim_status_t st = step(m, &rng, 12);
        if (st != MQIM_OK && st != MQIM_OUTBOX_FULL) {
            fprintf(stderr, "%s: after reboot, step %d: %s\n", where, i, mqim_status_name(st));
            return fails + 1;
        }
    }
    snprintf(where, sizeof(where), "unit %u cut at op %lu, end", unit, cut_at);
    fails += verify(m, where);
    CHECK(reopen() == MQIM_OK);
    fails += verify(m, where);
    if (sim.violations != 0u) {
        fprintf(stderr, "%s: %lu NOR violations\n", where, sim.violations);
        fails++;
    }
    return fails;
}

static void test_cut_every_operation(uint32_t unit)
{
    static model_t m;
    unsigned long total = 0, cuts = 0;
    int fails = 0;
    CHECK_EQ_INT(run_workload(&m, 0, unit, 1, &total), 0);
    CHECK(total > 100u);
    for (unsigned long k = 1; k <= total && fails < 5; k++) {
        for (uint32_t seed = 1; seed <= 3u; seed++) { /* three ways to tear the same operation */
            fails += run_workload(&m, k, unit, seed * 7919u + (uint32_t)k, &total);
            cuts++;
        }
    }
    printf("unit %u: %lu flash operations, %lu power cuts, %d failures\n", unit, total, cuts, fails);
    CHECK_EQ_INT(fails, 0);
}

/* ---- 3. random workloads, many cuts each ---- */

static void test_random_cuts(uint32_t unit, uint32_t seed)
{
    static model_t m;
    uint32_t rng = seed;
    int fails = 0, cuts = 0;
    char where[96];
    flash_sim_init(&sim, 256, 3 + seed % 4u, unit, seed);
    CHECK_EQ_INT(reopen(), MQIM_OK);
    model_init(&m, 60 + seed % 100u);
    for (int i = 0; i < 3000 && fails == 0; i++) {
        mqim_status_t st;
        if (sim.cut_at == 0u) {
            sim.cut_at = sim.ops + 1u + flash_sim_rand(&sim) % 40u;
        }
        st = step(&m, &rng, 10 + seed % 20u);
        if (sim.off) {
            flash_sim_reboot(&sim);
            cuts++;
            /* the next cut may hit the recovery work of this one */
            sim.cut_at = 1u + flash_sim_rand(&sim) % 8u;
            snprintf(where, sizeof(where), "random cuts unit %u seed %u step %d", unit, seed, i);
            st = reopen();
            if (st != MQIM_OK) {
                fprintf(stderr, "%s: open %s\n", where, mqim_status_name(st));
                fails++;
            }
            fails += verify(&m, where);
        } else if (st != MQIM_OK && st != MQIM_OUTBOX_FULL) {
            fprintf(stderr, "seed %u step %d: %s\n", seed, i, mqim_status_name(st));
            fails++;
        }
    }
    sim.cut_at = 0;
    fails += verify(&m, "random cuts, end");
    CHECK_EQ_INT(fails, 0);
    CHECK(cuts > 50);
    CHECK_EQ_INT(sim.violations, 0);
}

int main(void)
{
    static const uint32_t units[] = { 1, 4, 8 };
    int random_cuts = 0;
    for (size_t u = 0; u < 3; u++) {
        test_basic_order_and_remove(units[u]);
        test_random_against_model(units[u]);
        test_cut_every_operation(units[u]);
        for (uint32_t seed = 1; seed <= 20u; seed++) {
            test_random_cuts(units[u], seed * 2654435761u);
            random_cuts++;
        }
    }
    test_full_and_keys();
    test_corrupt_entry_skipped();
    printf("%d random workloads with power cuts\n", random_cuts);
    return CHECK_REPORT();
}
