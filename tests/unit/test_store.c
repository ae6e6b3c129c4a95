/* Store unit tests over a real LMDB environment in a temp directory, or a
 * real PostgreSQL server (store_engine.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lmdb.h>

#include "mqim_check.h"
#include "store.h"
#include "store_engine.h"

static char dir[256];

static mqim_store_t *open_fresh(void)
{
    mqim_store_t *s = NULL;
    snprintf(dir, sizeof(dir), "/tmp/mqim-store-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        exit(2);
    }
    CHECK_EQ_INT(test_store_open(dir, 0, false, &s), MQIM_OK);
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

static int count_receipt(void *ctx, mqim_str_t member, uint8_t status, int64_t ts)
{
    (void)member;
    (void)status;
    (void)ts;
    (*(int *)ctx)++;
    return 0;
}

static int count_visit(void *ctx, const mqim_inbox_entry_t *e)
{
    uint64_t *seqs = ctx;
    seqs[++seqs[0]] = e->seq;
    return 0;
}

/* Group commit: a request (nested transaction) that aborts leaves nothing,
 * whether its writes were still queued or already sent to the engine (on
 * PostgreSQL a read the cache cannot answer sends them), and the requests
 * around it keep theirs. */
static void test_batch_nested_abort(void)
{
    mqim_store_t *s = open_fresh();
    mqim_txn_t batch, txn;
    mqim_user_rec_t rec;
    uint64_t key = 0;
    for (int sent = 0; sent < 2; sent++) {
        const mqim_str_t kept = sent ? MQIM_STR("carol") : MQIM_STR("alice");
        const mqim_str_t undone = sent ? MQIM_STR("dave") : MQIM_STR("bob");
        CHECK_EQ_INT(mqim_store_batch_begin(s, &batch), MQIM_OK);
        CHECK_EQ_INT(mqim_txn_begin(s, MQIM_TXN_WRITE, &txn), MQIM_OK);
        CHECK_EQ_INT(mqim_store_user_ensure(&txn, kept, 1), MQIM_OK);
        CHECK_EQ_INT(mqim_txn_commit(&txn), MQIM_OK);
        CHECK_EQ_INT(mqim_txn_begin(s, MQIM_TXN_WRITE, &txn), MQIM_OK);
        memset(&rec, 0, sizeof(rec));
        rec.next_seq = 1;
        CHECK_EQ_INT(mqim_store_user_put(&txn, undone, &rec), MQIM_OK); /* a write, no read first */
        if (sent) {
            CHECK_EQ_INT(mqim_store_outbox_put(&txn, MQIM_STR("t"), 1, false, MQIM_STR(""), MQIM_STR("x"),
                                               &key), MQIM_OK);
            /* a key nobody wrote: the engine must be asked */
            CHECK_EQ_INT(mqim_store_user_get(&txn, MQIM_STR("nobody"), &rec), MQIM_NOT_FOUND);
        }
        mqim_txn_abort(&txn);
        CHECK_EQ_INT(mqim_txn_begin(s, MQIM_TXN_READ, &txn), MQIM_OK);
        CHECK_EQ_INT(mqim_store_user_get(&txn, undone, &rec), MQIM_NOT_FOUND);
        CHECK_EQ_INT(mqim_store_user_get(&txn, kept, &rec), MQIM_OK);
        mqim_txn_abort(&txn);
        CHECK_EQ_INT(mqim_store_batch_commit(&batch), MQIM_OK);
        CHECK_EQ_INT(mqim_txn_begin(s, MQIM_TXN_READ, &txn), MQIM_OK);
        CHECK_EQ_INT(mqim_store_user_get(&txn, undone, &rec), MQIM_NOT_FOUND);
        CHECK_EQ_INT(mqim_store_user_get(&txn, kept, &rec), MQIM_OK);
        CHECK(mqim_store_outbox_count(&txn) == 0u);
        mqim_txn_abort(&txn);
    }
    mqim_store_close(s);
    remove_dir();
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
    CHECK_EQ_INT(test_store_open(dir, 0, false, &s), MQIM_OK);
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
    TEST_LMDB_ONLY();
    mqim_store_t *s = NULL;
    mqim_txn_t txn;
    static char big[8192];
    mqim_status_t st = MQIM_OK;
    snprintf(dir, sizeof(dir), "/tmp/mqim-store-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    CHECK_EQ_INT(test_store_open(dir, 128 * 1024, false, &s), MQIM_OK);
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


/* A message written by the first release (no device or file fields) still
 * reads, and a refcount update keeps its strings. */
static void test_msg_record_v1(void)
{
    TEST_LMDB_ONLY();
    struct v1_hdr {
        int64_t ts;
        uint64_t sender_seq, recipient_seq;
        uint32_t refs, body_len;
        uint16_t id_len, from_len, to_len, group_len, type_len;
        uint8_t qos, pad;
    } h = { 77, 5, 6, 2, 2, 2, 5, 3, 0, 4, 1, 0 };
    unsigned char rec[sizeof(h) + 16], key[8] = { 0, 0, 0, 0, 0, 0, 0, 9 };
    mqim_store_t *s = open_fresh();
    mqim_txn_t txn;
    mqim_msg_rec_t m;
    MDB_env *env = NULL;
    MDB_txn *t = NULL;
    MDB_dbi dbi = 0;
    MDB_val k = { 8, key }, v = { sizeof(rec), rec };
    CHECK(sizeof(h) == 48u); /* the first release's header */
    memcpy(rec, &h, sizeof(h));
    memcpy(rec + sizeof(h), "m1alicebobtexthi", 16);
    mqim_store_close(s);
    CHECK(mdb_env_create(&env) == 0 && mdb_env_set_maxdbs(env, 32) == 0 && mdb_env_open(env, dir, 0, 0600) == 0);
    CHECK(mdb_txn_begin(env, NULL, 0, &t) == 0 && mdb_dbi_open(t, "msgs", 0, &dbi) == 0);
    CHECK(mdb_put(t, dbi, &k, &v, 0) == 0 && mdb_txn_commit(t) == 0);
    mdb_env_close(env);
    CHECK_EQ_INT(test_store_open(dir, 0, false, &s), MQIM_OK);
    mqim_txn_begin(s, MQIM_TXN_WRITE, &txn);
    CHECK_EQ_INT(mqim_store_msg_get(&txn, 9, &m), MQIM_OK);
    CHECK(m.ts == 77 && m.sender_seq == 5u && m.recipient_seq == 6u && m.refs == 2u && m.qos == 1u);
    CHECK(mqim_str_eq_cstr(m.id, "m1") && mqim_str_eq_cstr(m.from, "alice") && mqim_str_eq_cstr(m.to, "bob"));
    CHECK(mqim_str_eq_cstr(m.type, "text") && mqim_str_eq_cstr(m.body, "hi"));
    CHECK(m.device.len == 0u && m.file_id.len == 0u && m.file_size == 0u);
    CHECK(!m.enc); /* written before E2E: never flagged */
    m.refs = 1;
    CHECK_EQ_INT(mqim_store_msg_update(&txn, &m), MQIM_OK);
    memset(&m, 0, sizeof(m));
    CHECK_EQ_INT(mqim_store_msg_get(&txn, 9, &m), MQIM_OK);
    CHECK(m.refs == 1u && mqim_str_eq_cstr(m.body, "hi") && mqim_str_eq_cstr(m.from, "alice"));
    mqim_txn_commit(&txn);
    mqim_store_close(s);
    remove_dir();
}

/* A group record written before retention existed (no policy, no count)
 * still reads, and is rewritten in the new layout. */
static void test_group_record_upgrade(void)
{
    TEST_LMDB_ONLY();
    mqim_store_t *s = open_fresh();
    mqim_txn_t txn;
    mqim_group_rec_t g;
    MDB_env *env = NULL;
    MDB_txn *t = NULL;
    MDB_dbi dbi = 0;
    unsigned char old[18 + 4] = { 0 };
    MDB_val k = { 3, "old" }, v = { sizeof(old), old };
    mqim_store_close(s); /* one environment per process at a time */
    old[7] = 42;   /* created_ms 42 */
    old[15] = 2;   /* 2 members */
    old[17] = 4;   /* title_len 4 */
    memcpy(old + 18, "Old!", 4);
    CHECK(mdb_env_create(&env) == 0 && mdb_env_set_maxdbs(env, 32) == 0 && mdb_env_open(env, dir, 0, 0600) == 0);
    CHECK(mdb_txn_begin(env, NULL, 0, &t) == 0 && mdb_dbi_open(t, "groups", 0, &dbi) == 0);
    CHECK(mdb_put(t, dbi, &k, &v, 0) == 0 && mdb_txn_commit(t) == 0);
    mdb_env_close(env);
    CHECK_EQ_INT(test_store_open(dir, 0, false, &s), MQIM_OK);
    mqim_txn_begin(s, MQIM_TXN_WRITE, &txn);
    CHECK_EQ_INT(mqim_store_group_get(&txn, MQIM_STR("old"), &g), MQIM_OK);
    CHECK(g.created_ms == 42 && g.members == 2u && mqim_str_eq_cstr(g.title, "Old!"));
    CHECK(g.retain_count == 0u && g.retain_days == 0u && g.msgs == 0u);
    g.retain_days = 7;
    g.msgs = 3;
    CHECK_EQ_INT(mqim_store_group_put(&txn, MQIM_STR("old"), &g), MQIM_OK);
    memset(&g, 0, sizeof(g));
    CHECK_EQ_INT(mqim_store_group_get(&txn, MQIM_STR("old"), &g), MQIM_OK);
    CHECK(g.created_ms == 42 && mqim_str_eq_cstr(g.title, "Old!") && g.retain_days == 7u && g.msgs == 3u);
    mqim_txn_commit(&txn);
    mqim_store_close(s);
    remove_dir();
}

static int take_seq(void *ctx, const mqim_inbox_entry_t *e)
{
    uint64_t *seqs = ctx;
    seqs[++seqs[0]] = e->seq;
    return 0;
}

/* Group retention in the store: copies become tombstones (seq kept, chat
 * index left, marker set, count down), the message and its receipts go,
 * the index forgets it; user retention later removes head tombstones. */
static void test_group_prune_tombstones(void)
{
    mqim_store_t *s = open_fresh();
    mqim_txn_t txn;
    mqim_group_rec_t g = { 1, 2, { "t", 1 }, 0, 0, 0 };
    mqim_inbox_entry_t e;
    mqim_user_rec_t u;
    mqim_msg_rec_t m;
    uint64_t mids[3], seqs[8], n = 0, msgs = 0, entries = 0;
    const char *users[] = { "alice", "bob" };
    mqim_txn_begin(s, MQIM_TXN_WRITE, &txn);
    for (int i = 0; i < 2; i++) {
        mqim_store_user_ensure(&txn, mqim_str_from_cstr(users[i]), 1);
    }
    CHECK_EQ_INT(mqim_store_group_put(&txn, MQIM_STR("team"), &g), MQIM_OK);
    for (int i = 0; i < 3; i++) {
        memset(&m, 0, sizeof(m));
        m.ts = 1000 + i;
        m.refs = 2;
        m.id = MQIM_STR("x");
        m.from = MQIM_STR("alice");
        m.group = MQIM_STR("team");
        m.type = MQIM_STR("text");
        m.body = MQIM_STR("b");
        CHECK_EQ_INT(mqim_store_msg_put(&txn, &m), MQIM_OK);
        mids[i] = m.mid;
        for (int k = 0; k < 2; k++) {
            uint64_t seq = 0;
            CHECK_EQ_INT(mqim_store_inbox_append(&txn, mqim_str_from_cstr(users[k]), MQIM_STR("#team"), m.mid,
                                                 k == 0 ? MQIM_INBOX_SENT : MQIM_INBOX_RECEIVED, &seq), MQIM_OK);
            CHECK_EQ_INT(mqim_store_gindex_put(&txn, MQIM_STR("team"), m.mid, mqim_str_from_cstr(users[k]), seq),
                         MQIM_OK);
        }
    }
    mqim_store_receipt_put(&txn, mids[0], MQIM_STR("bob"), MQIM_RECEIPT_READ, 5);
    g.msgs = 3;
    mqim_store_group_put(&txn, MQIM_STR("team"), &g);
    CHECK_EQ_INT(mqim_store_gindex_count(&txn, MQIM_STR("team"), &n), MQIM_OK);
    CHECK(n == 3u);
    /* keep 1: the two oldest go, 2 copies each */
    CHECK_EQ_INT(mqim_store_group_prune(&txn, MQIM_STR("team"), 1, 0, &msgs, &entries), MQIM_OK);
    CHECK(msgs == 2u && entries == 4u);
    CHECK_EQ_INT(mqim_store_group_get(&txn, MQIM_STR("team"), &g), MQIM_OK);
    CHECK(g.msgs == 1u && mqim_str_eq_cstr(g.title, "t"));
    CHECK_EQ_INT(mqim_store_gindex_count(&txn, MQIM_STR("team"), &n), MQIM_OK);
    CHECK(n == 1u);
    CHECK_EQ_INT(mqim_store_msg_get(&txn, mids[0], &m), MQIM_NOT_FOUND);
    CHECK_EQ_INT(mqim_store_msg_get(&txn, mids[2], &m), MQIM_OK);
    CHECK_EQ_INT(mqim_store_inbox_get(&txn, MQIM_STR("bob"), 1, &e), MQIM_OK);
    CHECK(e.pruned && e.mid == 0u && e.ts == 1000 && e.dir == MQIM_INBOX_RECEIVED &&
          mqim_str_eq_cstr(e.chat, "#team"));
    CHECK_EQ_INT(mqim_store_inbox_get(&txn, MQIM_STR("alice"), 2, &e), MQIM_OK);
    CHECK(e.pruned && e.dir == MQIM_INBOX_SENT && e.ts == 1001);
    memset(seqs, 0, sizeof(seqs));
    mqim_store_inbox_scan(&txn, MQIM_STR("bob"), 0, take_seq, seqs);
    CHECK(seqs[0] == 3u); /* every seq is still there */
    memset(seqs, 0, sizeof(seqs));
    mqim_store_chat_scan(&txn, MQIM_STR("bob"), MQIM_STR("#team"), 0, 0, take_seq, seqs);
    CHECK(seqs[0] == 1u && seqs[1] == 3u); /* the chat index holds the message only */
    CHECK(mqim_store_chat_pruned(&txn, MQIM_STR("bob"), MQIM_STR("#team")) == 2u);
    CHECK(mqim_store_chat_pruned(&txn, MQIM_STR("bob"), MQIM_STR("alice")) == 0u);
    CHECK_EQ_INT(mqim_store_user_get(&txn, MQIM_STR("bob"), &u), MQIM_OK);
    CHECK(u.count == 1u && u.first_seq == 1u && u.next_seq == 4u);
    {
        int receipts = 0;
        CHECK_EQ_INT(mqim_store_receipt_each(&txn, mids[0], count_receipt, &receipts), MQIM_OK);
        CHECK_EQ_INT(receipts, 0);
    }
    /* age: nothing younger is touched; an unknown group is nothing to do */
    CHECK_EQ_INT(mqim_store_group_prune(&txn, MQIM_STR("team"), 0, 1002, &msgs, &entries), MQIM_OK);
    CHECK(msgs == 0u);
    CHECK_EQ_INT(mqim_store_group_prune(&txn, MQIM_STR("nope"), 1, 1, &msgs, &entries), MQIM_OK);
    /* bob's own retention (keep 5): head tombstones go, the message stays */
    CHECK_EQ_INT(mqim_store_inbox_prune(&txn, MQIM_STR("bob"), 5, 0, &n), MQIM_OK);
    CHECK(n == 2u);
    CHECK_EQ_INT(mqim_store_user_get(&txn, MQIM_STR("bob"), &u), MQIM_OK);
    CHECK(u.count == 1u && u.first_seq == 3u);
    /* bob's copy of the last message goes by his retention: the group still
     * counts it (alice has it); alice's copy going too ends it */
    CHECK_EQ_INT(mqim_store_inbox_prune(&txn, MQIM_STR("bob"), 0, 5000, &n), MQIM_OK);
    CHECK_EQ_INT(mqim_store_group_get(&txn, MQIM_STR("team"), &g), MQIM_OK);
    CHECK(g.msgs == 1u);
    CHECK_EQ_INT(mqim_store_inbox_prune(&txn, MQIM_STR("alice"), 0, 5000, &n), MQIM_OK);
    CHECK(n == 3u);
    CHECK_EQ_INT(mqim_store_group_get(&txn, MQIM_STR("team"), &g), MQIM_OK);
    CHECK(g.msgs == 0u);
    CHECK_EQ_INT(mqim_store_gindex_count(&txn, MQIM_STR("team"), &n), MQIM_OK);
    CHECK(n == 0u);
    CHECK_EQ_INT(mqim_store_msg_get(&txn, mids[2], &m), MQIM_NOT_FOUND);
    mqim_txn_commit(&txn);
    mqim_store_close(s);
    remove_dir();
}

/* An encrypted message's flag (the high bit of the qos byte) reads back,
 * survives a refcount update, and leaves qos itself and other records alone. */
static void test_msg_enc_flag(void)
{
    mqim_store_t *s = open_fresh();
    mqim_txn_t txn;
    mqim_msg_rec_t m, got;
    uint64_t enc_mid, plain_mid;
    mqim_txn_begin(s, MQIM_TXN_WRITE, &txn);
    memset(&m, 0, sizeof(m));
    m.ts = 5;
    m.qos = 1;
    m.refs = 2;
    m.id = MQIM_STR("e1");
    m.from = MQIM_STR("alice");
    m.to = MQIM_STR("bob");
    m.type = MQIM_STR("text");
    m.body = MQIM_STR("{\"v\":1,\"ct\":\"AAAA\"}");
    m.enc = true;
    CHECK_EQ_INT(mqim_store_msg_put(&txn, &m), MQIM_OK);
    enc_mid = m.mid;
    m.qos = 0;
    m.enc = false;
    m.body = MQIM_STR("plain");
    CHECK_EQ_INT(mqim_store_msg_put(&txn, &m), MQIM_OK);
    plain_mid = m.mid;
    CHECK_EQ_INT(mqim_store_msg_get(&txn, enc_mid, &got), MQIM_OK);
    CHECK(got.enc && got.qos == 1u && mqim_str_eq_cstr(got.body, "{\"v\":1,\"ct\":\"AAAA\"}"));
    got.refs = 1;
    CHECK_EQ_INT(mqim_store_msg_update(&txn, &got), MQIM_OK);
    memset(&got, 0, sizeof(got));
    CHECK_EQ_INT(mqim_store_msg_get(&txn, enc_mid, &got), MQIM_OK);
    CHECK(got.enc && got.qos == 1u && got.refs == 1u);
    CHECK_EQ_INT(mqim_store_msg_get(&txn, plain_mid, &got), MQIM_OK);
    CHECK(!got.enc && got.qos == 0u && mqim_str_eq_cstr(got.body, "plain"));
    mqim_txn_commit(&txn);
    mqim_store_close(s);
    remove_dir();
}

static int collect_key(void *ctx, mqim_str_t device, const mqim_key_rec_t *rec)
{
    char *names = ctx;
    size_t n = strlen(names);
    snprintf(names + n, 128 - n, "%.*s:%02x:%lld,", (int)device.len, device.ptr, rec->x25519[0],
             (long long)rec->ts_ms);
    return 0;
}

/* The keys database: per user and device, listed in device order, and
 * nothing of another user (even one whose name extends this one's). */
static void test_keys_db(void)
{
    mqim_store_t *s = open_fresh();
    mqim_txn_t txn;
    mqim_key_rec_t k;
    char names[128] = "";
    mqim_txn_begin(s, MQIM_TXN_WRITE, &txn);
    memset(&k, 0xaa, sizeof(k.x25519));
    k.ts_ms = 1764000000123;
    CHECK_EQ_INT(mqim_store_key_put(&txn, MQIM_STR("alice"), MQIM_STR("phone"), &k), MQIM_OK);
    memset(&k, 0xbb, sizeof(k.x25519));
    k.ts_ms = 7;
    CHECK_EQ_INT(mqim_store_key_put(&txn, MQIM_STR("alice"), MQIM_STR("laptop"), &k), MQIM_OK);
    CHECK_EQ_INT(mqim_store_key_put(&txn, MQIM_STR("alice2"), MQIM_STR("x"), &k), MQIM_OK);
    CHECK_EQ_INT(mqim_store_key_put(&txn, MQIM_STR("al"), MQIM_STR("y"), &k), MQIM_OK);
    mqim_txn_commit(&txn);
    /* durable: read back after a reopen */
    mqim_store_close(s);
    CHECK_EQ_INT(test_store_open(dir, 0, false, &s), MQIM_OK);
    mqim_txn_begin(s, MQIM_TXN_WRITE, &txn);
    memset(&k, 0, sizeof(k));
    CHECK_EQ_INT(mqim_store_key_get(&txn, MQIM_STR("alice"), MQIM_STR("phone"), &k), MQIM_OK);
    CHECK(k.x25519[0] == 0xaa && k.x25519[31] == 0xaa && k.ts_ms == 1764000000123);
    CHECK_EQ_INT(mqim_store_key_get(&txn, MQIM_STR("alice"), MQIM_STR("watch"), &k), MQIM_NOT_FOUND);
    CHECK_EQ_INT(mqim_store_key_each(&txn, MQIM_STR("alice"), collect_key, names), MQIM_OK);
    CHECK(strcmp(names, "laptop:bb:7,phone:aa:1764000000123,") == 0);
    CHECK_EQ_INT(mqim_store_key_del(&txn, MQIM_STR("alice"), MQIM_STR("laptop")), MQIM_OK);
    CHECK_EQ_INT(mqim_store_key_del(&txn, MQIM_STR("alice"), MQIM_STR("laptop")), MQIM_NOT_FOUND);
    names[0] = '\0';
    CHECK_EQ_INT(mqim_store_key_each(&txn, MQIM_STR("alice"), collect_key, names), MQIM_OK);
    CHECK(strcmp(names, "phone:aa:1764000000123,") == 0);
    names[0] = '\0';
    CHECK_EQ_INT(mqim_store_key_each(&txn, MQIM_STR("bob"), collect_key, names), MQIM_OK);
    CHECK(names[0] == '\0');
    mqim_txn_commit(&txn);
    mqim_store_close(s);
    remove_dir();
}

static void put_users(mqim_store_t *s, uint64_t bob_next)
{
    mqim_txn_t txn;
    mqim_user_rec_t u;
    CHECK_EQ_INT(mqim_txn_begin(s, MQIM_TXN_WRITE, &txn), MQIM_OK);
    CHECK_EQ_INT(mqim_store_user_ensure(&txn, MQIM_STR("bob"), 1), MQIM_OK);
    CHECK_EQ_INT(mqim_store_user_get(&txn, MQIM_STR("bob"), &u), MQIM_OK);
    u.next_seq = bob_next;
    CHECK_EQ_INT(mqim_store_user_put(&txn, MQIM_STR("bob"), &u), MQIM_OK);
    CHECK_EQ_INT(mqim_txn_commit(&txn), MQIM_OK);
}

static uint64_t epoch_seq(mqim_store_t *s, const char *user, uint64_t since)
{
    mqim_txn_t txn;
    uint64_t seq = 12345;
    CHECK_EQ_INT(mqim_txn_begin(s, MQIM_TXN_READ, &txn), MQIM_OK);
    CHECK_EQ_INT(mqim_store_epoch_seq(&txn, mqim_str_from_cstr(user), since, &seq), MQIM_OK);
    mqim_txn_abort(&txn);
    return seq;
}

/* A store gets an id and an epoch; each new epoch records where every
 * user's history forks, and a device of any older epoch is told the lowest
 * fork since its own (an unknown epoch: all of them). */
static void test_identity_epochs(void)
{
    mqim_store_t *s = open_fresh();
    mqim_store_identity_t first = *mqim_store_identity(s);
    uint64_t e2, e3;
    CHECK(strlen(first.id) == 32u && first.epoch != 0u && first.epoch < (1ULL << 53));
    CHECK(first.schema == MQIM_STORE_SCHEMA && !first.copied);
    CHECK(epoch_seq(s, "bob", first.epoch) == UINT64_MAX); /* the current one */
    put_users(s, 11); /* bob saw up to 10 */
    CHECK_EQ_INT(mqim_store_new_epoch(s, "test"), MQIM_OK);
    e2 = mqim_store_identity(s)->epoch;
    CHECK(e2 != first.epoch && strcmp(mqim_store_identity(s)->id, first.id) == 0);
    CHECK(epoch_seq(s, "bob", first.epoch) == 10u);
    put_users(s, 7); /* (a restore took it back) */
    CHECK_EQ_INT(mqim_store_new_epoch(s, "test"), MQIM_OK);
    e3 = mqim_store_identity(s)->epoch;
    CHECK(epoch_seq(s, "bob", first.epoch) == 6u); /* the lowest fork since */
    CHECK(epoch_seq(s, "bob", e2) == 6u);
    CHECK(epoch_seq(s, "bob", 99u) == 0u);  /* unknown: every fork, and bob began after the first */
    CHECK(epoch_seq(s, "carol", first.epoch) == 0u); /* no history of carol: from the start */
    CHECK(epoch_seq(s, "bob", 0u) == 6u);   /* none named: the current epoch's fork */
    /* reopened: the same identity (the same file) */
    mqim_store_close(s);
    CHECK_EQ_INT(test_store_open(dir, 0, false, &s), MQIM_OK);
    CHECK(mqim_store_identity(s)->epoch == e3 && !mqim_store_identity(s)->copied);
    mqim_store_close(s);
    remove_dir();
}

/* A copy of the store file (a file-level restore, a second instance) begins
 * a new epoch when opened; a store of a newer format is refused. */
static void test_copy_and_newer_format(void)
{
    TEST_LMDB_ONLY();
    mqim_store_t *s = open_fresh();
    char cmd[1200], copy[300];
    uint64_t e1 = mqim_store_identity(s)->epoch;
    mqim_txn_t txn;
    MDB_env *env;
    MDB_txn *t;
    MDB_dbi dbi = 0; /* set only when mdb_txn_begin succeeded (clang -Wsometimes-uninitialized) */
    uint64_t three = 3;
    MDB_val k = { 6, (void *)"schema" }, v = { 8, &three };
    put_users(s, 5);
    mqim_store_close(s);
    snprintf(copy, sizeof(copy), "%s-copy", dir);
    snprintf(cmd, sizeof(cmd), "mkdir %s && cp %s/data.mdb %s/", copy, dir, copy);
    CHECK(system(cmd) == 0);
    CHECK_EQ_INT(test_store_open(copy, 0, false, &s), MQIM_OK);
    CHECK(mqim_store_identity(s)->copied && mqim_store_identity(s)->epoch != e1);
    CHECK(epoch_seq(s, "bob", e1) == 4u);
    CHECK_EQ_INT(mqim_txn_begin(s, MQIM_TXN_READ, &txn), MQIM_OK);
    mqim_txn_abort(&txn);
    mqim_store_close(s);
    /* format 3 written by a future gateway */
    CHECK(mdb_env_create(&env) == 0 && mdb_env_set_maxdbs(env, 32) == 0);
    CHECK(mdb_env_open(env, copy, 0, 0600) == 0);
    CHECK(mdb_txn_begin(env, NULL, 0, &t) == 0 && mdb_dbi_open(t, "meta", 0, &dbi) == 0);
    CHECK(mdb_put(t, dbi, &k, &v, 0) == 0 && mdb_txn_commit(t) == 0);
    mdb_env_close(env);
    CHECK_EQ_INT(test_store_open(copy, 0, false, &s), MQIM_UNSUPPORTED);
    CHECK_EQ_INT(test_store_open(copy, 0, true, &s), MQIM_UNSUPPORTED);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", copy);
    CHECK(system(cmd) == 0);
    remove_dir();
}

/* tests/fixtures/store-v1: a store written by the release before formats
 * were recorded (alice sent bob three messages). Read-only it is refused
 * with a clear error; opened for writing it is upgraded to format 2 and
 * keeps everything. */
static void test_upgrade_from_v1_fixture(void)
{
    TEST_LMDB_ONLY();
    mqim_store_t *s = NULL;
    mqim_txn_t txn;
    mqim_user_rec_t u;
    mqim_msg_rec_t m;
    mqim_inbox_entry_t e;
    char cmd[700];
    snprintf(dir, sizeof(dir), "/tmp/mqim-store-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    snprintf(cmd, sizeof(cmd), "cp %s/tests/fixtures/store-v1/data.mdb %s/", MQIM_SOURCE_DIR, dir);
    CHECK(system(cmd) == 0);
    CHECK_EQ_INT(test_store_open(dir, 0, true, &s), MQIM_UNSUPPORTED);
    CHECK_EQ_INT(test_store_open(dir, 0, false, &s), MQIM_OK);
    CHECK(mqim_store_identity(s)->schema == MQIM_STORE_SCHEMA);
    CHECK(mqim_store_identity(s)->epoch != 0u && strlen(mqim_store_identity(s)->id) == 32u);
    CHECK_EQ_INT(mqim_txn_begin(s, MQIM_TXN_READ, &txn), MQIM_OK);
    CHECK_EQ_INT(mqim_store_user_get(&txn, MQIM_STR("bob"), &u), MQIM_OK);
    CHECK(u.next_seq == 4u && u.count == 3u);
    CHECK_EQ_INT(mqim_store_inbox_get(&txn, MQIM_STR("bob"), 3, &e), MQIM_OK);
    CHECK_EQ_INT(mqim_store_msg_get(&txn, e.mid, &m), MQIM_OK);
    CHECK(mqim_str_eq_cstr(m.body, "fixture 2") && mqim_str_eq_cstr(m.id, "fx-2"));
    mqim_txn_abort(&txn);
    mqim_store_close(s);
    /* upgraded: now it opens read-only too */
    CHECK_EQ_INT(test_store_open(dir, 0, true, &s), MQIM_OK);
    CHECK(mqim_store_identity(s)->schema == MQIM_STORE_SCHEMA);
    mqim_store_close(s);
    remove_dir();
}

int main(void)
{
    test_identity_epochs();
    test_copy_and_newer_format();
    test_upgrade_from_v1_fixture();
    test_outbox_durable_order();
    test_batch_nested_abort();
    test_inbox_chat_prune();
    test_dedupe_cursor_device();
    test_map_full();
    test_group_record_upgrade();
    test_msg_record_v1();
    test_group_prune_tombstones();
    test_msg_enc_flag();
    test_keys_db();
    return CHECK_REPORT();
}
