/* Store unit tests over a real LMDB environment in a temp directory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mqim_check.h"
#include "store.h"

static char dir[256];

static mqim_store_t *open_fresh(void)
{
    mqim_store_t *s = NULL;
    snprintf(dir, sizeof(dir), "/tmp/mqim-store-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        exit(2);
    }
    CHECK_EQ_INT(mqim_store_open(dir, 0, false, &s), MQIM_OK);
    return s;
}

static void remove_dir(void)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cleanup failed\n");
    }
}

static int count_visit(void *ctx, const mqim_inbox_entry_t *e)
{
    uint64_t *seqs = ctx;
    seqs[++seqs[0]] = e->seq;
    return 0;
}

/* The outbox survives a close/reopen (a crash after commit) and keeps order;
 * keys are never reused even after the outbox was emptied. */
static void test_outbox_durable_order(void)
{
    mqim_store_t *s = open_fresh();
    mqim_txn_t txn;
    mqim_outbox_rec_t rec;
    uint64_t k1 = 0, k2 = 0, k3 = 0;
    CHECK_EQ_INT(mqim_txn_begin(s, MQIM_TXN_WRITE, &txn), MQIM_OK);
    CHECK_EQ_INT(mqim_store_outbox_put(&txn, MQIM_STR("im/u/a/in/msg"), 1, false, MQIM_STR(""),
                                       MQIM_STR("one"), &k1), MQIM_OK);
    CHECK_EQ_INT(mqim_store_outbox_put(&txn, MQIM_STR("im/presence/a"), 1, true, MQIM_STR("c0rr"),
                                       MQIM_STR("two"), &k2), MQIM_OK);
    CHECK_EQ_INT(mqim_txn_commit(&txn), MQIM_OK);
    CHECK(k1 == 1u && k2 == 2u);
    mqim_store_close(s);
    CHECK_EQ_INT(mqim_store_open(dir, 0, false, &s), MQIM_OK);
    CHECK_EQ_INT(mqim_txn_begin(s, MQIM_TXN_WRITE, &txn), MQIM_OK);
    CHECK(mqim_store_outbox_count(&txn) == 2u);
    CHECK_EQ_INT(mqim_store_outbox_next(&txn, 0, &rec), MQIM_OK);
    CHECK(rec.key == 1u && rec.qos == 1 && !rec.retain && mqim_str_eq_cstr(rec.payload, "one"));
    CHECK_EQ_INT(mqim_store_outbox_next(&txn, 2, &rec), MQIM_OK);
    CHECK(rec.retain && mqim_str_eq_cstr(rec.corr, "c0rr") &&
          mqim_str_eq_cstr(rec.topic, "im/presence/a") && mqim_str_eq_cstr(rec.payload, "two"));
    CHECK_EQ_INT(mqim_store_outbox_next(&txn, 3, &rec), MQIM_NOT_FOUND);
    CHECK_EQ_INT(mqim_store_outbox_del(&txn, 1), MQIM_OK);
    CHECK_EQ_INT(mqim_store_outbox_del(&txn, 2), MQIM_OK);
    CHECK_EQ_INT(mqim_store_outbox_put(&txn, MQIM_STR("t"), 0, false, MQIM_STR(""), MQIM_STR(""), &k3),
                 MQIM_OK);
    CHECK(k3 == 3u);
    CHECK_EQ_INT(mqim_txn_commit(&txn), MQIM_OK);
    mqim_store_close(s);
    remove_dir();
}

static void test_inbox_chat_prune(void)
{
    mqim_store_t *s = open_fresh();
    mqim_txn_t txn;
    mqim_msg_rec_t m, got;
    mqim_user_rec_t u;
    uint64_t seqs[16];
    uint64_t seq = 0, pruned = 0;
    CHECK_EQ_INT(mqim_txn_begin(s, MQIM_TXN_WRITE, &txn), MQIM_OK);
    CHECK_EQ_INT(mqim_store_user_ensure(&txn, MQIM_STR("bob"), 1), MQIM_OK);
    CHECK_EQ_INT(mqim_store_user_ensure(&txn, MQIM_STR("bo"), 1), MQIM_OK); /* prefix of bob */
    for (int i = 0; i < 6; i++) {
        memset(&m, 0, sizeof(m));
        m.ts = 1000 + i;
        m.id = MQIM_STR("id");
        m.from = MQIM_STR("alice");
        m.to = MQIM_STR("bob");
        m.type = MQIM_STR("text");
        m.body = MQIM_STR("body");
        m.refs = 1;
        CHECK_EQ_INT(mqim_store_msg_put(&txn, &m), MQIM_OK);
        CHECK_EQ_INT(mqim_store_inbox_append(&txn, MQIM_STR("bob"), i % 2 ? MQIM_STR("carol") : MQIM_STR("alice"),
                                             m.mid, MQIM_INBOX_RECEIVED, &seq),
                     MQIM_OK);
        CHECK(seq == (uint64_t)i + 1u);
    }
    CHECK_EQ_INT(mqim_store_inbox_append(&txn, MQIM_STR("bo"), MQIM_STR("x"), 1, MQIM_INBOX_SENT, &seq),
                 MQIM_OK);
    /* the scan of "bob" does not run into "bo" and vice versa */
    seqs[0] = 0;
    CHECK_EQ_INT(mqim_store_inbox_scan(&txn, MQIM_STR("bob"), 2, count_visit, seqs), MQIM_OK);
    CHECK(seqs[0] == 4u && seqs[1] == 3u && seqs[4] == 6u);
    seqs[0] = 0;
    CHECK_EQ_INT(mqim_store_inbox_scan(&txn, MQIM_STR("bo"), 0, count_visit, seqs), MQIM_OK);
    CHECK(seqs[0] == 1u);
    /* chat index: alice's are 1,3,5; descending from before 5 gives 3,1 */
    seqs[0] = 0;
    CHECK_EQ_INT(mqim_store_chat_scan(&txn, MQIM_STR("bob"), MQIM_STR("alice"), 0, 5, count_visit, seqs),
                 MQIM_OK);
    CHECK(seqs[0] == 2u && seqs[1] == 3u && seqs[2] == 1u);
    seqs[0] = 0;
    CHECK_EQ_INT(mqim_store_chat_scan(&txn, MQIM_STR("bob"), MQIM_STR("carol"), 2, 0, count_visit, seqs),
                 MQIM_OK);
    CHECK(seqs[0] == 2u && seqs[1] == 4u && seqs[2] == 6u);
    seqs[0] = 0;
    CHECK_EQ_INT(mqim_store_chat_scan(&txn, MQIM_STR("bob"), MQIM_STR("alice"), 0, UINT64_MAX,
                                      count_visit, seqs),
                 MQIM_OK);
    CHECK(seqs[0] == 3u && seqs[1] == 5u);
    /* prune to 4 entries, then by age below ts 1004 */
    CHECK_EQ_INT(mqim_store_inbox_prune(&txn, MQIM_STR("bob"), 4, 0, &pruned), MQIM_OK);
    CHECK(pruned == 2u);
    CHECK_EQ_INT(mqim_store_user_get(&txn, MQIM_STR("bob"), &u), MQIM_OK);
    CHECK(u.count == 4u && u.first_seq == 3u && u.next_seq == 7u);
    CHECK_EQ_INT(mqim_store_msg_get(&txn, 1, &got), MQIM_NOT_FOUND); /* refs dropped to zero */
    CHECK_EQ_INT(mqim_store_inbox_prune(&txn, MQIM_STR("bob"), 0, 1004, &pruned), MQIM_OK);
    CHECK(pruned == 2u); /* ts 1002 and 1003 */
    CHECK_EQ_INT(mqim_store_msg_get(&txn, 5, &got), MQIM_OK);
    CHECK(got.ts == 1004 && mqim_str_eq_cstr(got.from, "alice") && mqim_str_eq_cstr(got.body, "body"));
    seqs[0] = 0;
    CHECK_EQ_INT(mqim_store_chat_scan(&txn, MQIM_STR("bob"), MQIM_STR("alice"), 0, 0, count_visit, seqs),
                 MQIM_OK);
    CHECK(seqs[0] == 1u && seqs[1] == 5u); /* the chat index was pruned too */
    CHECK_EQ_INT(mqim_txn_commit(&txn), MQIM_OK);
    mqim_store_close(s);
    remove_dir();
}

static void test_dedupe_cursor_device(void)
{
    mqim_store_t *s = open_fresh();
    mqim_txn_t txn;
    mqim_str_t ack;
    mqim_device_rec_t d = { 7, 100, 200, 3, 1 }, got;
    CHECK_EQ_INT(mqim_txn_begin(s, MQIM_TXN_WRITE, &txn), MQIM_OK);
    CHECK_EQ_INT(mqim_store_dedupe_get(&txn, MQIM_STR("a"), MQIM_STR("x"), &ack), MQIM_NOT_FOUND);
    CHECK_EQ_INT(mqim_store_dedupe_put(&txn, MQIM_STR("a"), MQIM_STR("x"), MQIM_STR("{\"status\":\"sent\"}")),
                 MQIM_OK);
    CHECK_EQ_INT(mqim_store_dedupe_get(&txn, MQIM_STR("a"), MQIM_STR("x"), &ack), MQIM_OK);
    CHECK(mqim_str_eq_cstr(ack, "{\"status\":\"sent\"}"));
    /* "a"+"bx" and "ab"+"x" are different keys */
    CHECK_EQ_INT(mqim_store_dedupe_get(&txn, MQIM_STR("ab"), MQIM_STR("x"), &ack), MQIM_NOT_FOUND);
    CHECK(mqim_store_cursor_get(&txn, MQIM_STR("bob"), MQIM_STR("alice")) == 0u);
    CHECK_EQ_INT(mqim_store_cursor_put(&txn, MQIM_STR("bob"), MQIM_STR("alice"), 42), MQIM_OK);
    CHECK(mqim_store_cursor_get(&txn, MQIM_STR("bob"), MQIM_STR("alice")) == 42u);
    CHECK_EQ_INT(mqim_store_device_put(&txn, MQIM_STR("bob"), MQIM_STR("phone"), &d), MQIM_OK);
    CHECK_EQ_INT(mqim_store_device_get(&txn, MQIM_STR("bob"), MQIM_STR("phone"), &got), MQIM_OK);
    CHECK(got.epoch == 7u && got.state == 3u && got.last_seen_ms == 200);
    CHECK_EQ_INT(mqim_store_device_get(&txn, MQIM_STR("bo"), MQIM_STR("phone"), &got), MQIM_NOT_FOUND);
    CHECK_EQ_INT(mqim_txn_commit(&txn), MQIM_OK);
    mqim_store_close(s);
    remove_dir();
}

static void test_map_full(void)
{
    mqim_store_t *s = NULL;
    mqim_txn_t txn;
    static char big[8192];
    mqim_status_t st = MQIM_OK;
    snprintf(dir, sizeof(dir), "/tmp/mqim-store-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    CHECK_EQ_INT(mqim_store_open(dir, 128 * 1024, false, &s), MQIM_OK);
    memset(big, 'q', sizeof(big));
    for (int i = 0; i < 100 && st == MQIM_OK; i++) {
        st = mqim_txn_begin(s, MQIM_TXN_WRITE, &txn);
        if (st == MQIM_OK) {
            st = mqim_store_outbox_put(&txn, MQIM_STR("t"), 1, false, MQIM_STR(""),
                                       (mqim_str_t){ big, sizeof(big) }, NULL);
            st = st == MQIM_OK ? mqim_txn_commit(&txn) : (mqim_txn_abort(&txn), st);
        }
    }
    CHECK_EQ_INT(st, MQIM_STORE_FULL);
    mqim_store_close(s);
    remove_dir();
}

int main(void)
{
    test_outbox_durable_order();
    test_inbox_chat_prune();
    test_dedupe_cursor_device();
    test_map_full();
    return CHECK_REPORT();
}
