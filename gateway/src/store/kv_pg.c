/**
 * @file kv_pg.c
 * @brief The PostgreSQL store engine (kv.h), through libpq.
 *
 * One table holds every database of the store:
 *
 *     mqim_kv(db smallint, k bytea, v bytea, primary key (db, k))
 *
 * bytea compares like memcmp (shorter first on a common prefix), the order
 * LMDB keeps, so store.c's keys, seeks and scans mean the same on both
 * engines. Keys and values travel in binary (no escaping).
 *
 * Transactions: a root transaction holds one connection from a small pool
 * (a thread per transaction, as with LMDB); a nested transaction is a
 * SAVEPOINT on its parent's connection, made only before its first write,
 * so the many read-only requests of a batch cost no round trip for it.
 * Every write transaction takes one transaction-scoped advisory lock first:
 * writers are serial across every gateway on the database, as LMDB's single
 * writer is within one process, which is what store.c's read-modify-write
 * of counters and user records (seq assignment) relies on (docs/scale.md
 * names the finer locking that would let writers run in parallel). Read
 * transactions are REPEATABLE READ, READ ONLY: one snapshot, as LMDB's.
 *
 * Values stay valid until the root transaction ends: every result handed
 * to the caller is kept (PGresult) and cleared only then. A cursor fetches
 * rows in batches and fetches again after any write of its transaction.
 */
#include "kv.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define LOG_MOD "store"
#define PG_POOL_MAX 4
/* pg_advisory_xact_lock's key of the store's single writer: "mqim". */
#define PG_WRITER_LOCK "1836148077"
#define PG_FIRST_BATCH 16
#define PG_BATCH 128

typedef struct kv_pg {
    mqim_kv_t base;
    char *dsn;
    bool read_only;
    pthread_mutex_t lock;
    PGconn *idle[PG_POOL_MAX];
    int nidle;
} kv_pg_t;

struct mqim_kv_txn {
    kv_pg_t *kv;
    PGconn *conn;
    struct mqim_kv_txn *parent;
    struct mqim_kv_txn *root;
    unsigned depth;
    bool write;
    bool savepoint; /* nested: its SAVEPOINT was made */
    bool failed;    /* a statement failed: commit undoes and reports it */
    /* root only */
    uint64_t writes; /* every write of the tree: cursors fetch again after one */
    PGresult **kept;
    size_t nkept, capkept;
    /* a reserved value the caller is filling: sent before the next call */
    bool pending;
    int pending_db;
    void *pending_key;
    size_t pending_key_len;
    void *pending_buf;
    size_t pending_len;
    struct mqim_kv_txn *pending_owner;
};

struct mqim_kv_cursor {
    mqim_kv_txn_t *txn;
    int db;
    PGresult *res;  /* the current batch (kept by the root) */
    int row, nrows;
    bool asc;       /* the batch's direction */
    bool short_batch; /* fewer rows than asked: nothing beyond it */
    bool positioned;
    uint64_t writes_at;
    mqim_kv_val_t key; /* the current position (points into a kept result) */
};

/* ---- connections ---- */

static const char *const stmts[][2] = {
    { "get", "SELECT v FROM mqim_kv WHERE db = $1 AND k = $2" },
    { "put", "INSERT INTO mqim_kv (db, k, v) VALUES ($1, $2, $3) "
             "ON CONFLICT (db, k) DO UPDATE SET v = EXCLUDED.v" },
    { "del", "DELETE FROM mqim_kv WHERE db = $1 AND k = $2" },
    { "ge", "SELECT k, v FROM mqim_kv WHERE db = $1 AND k >= $2 ORDER BY k LIMIT $3" },
    { "gt", "SELECT k, v FROM mqim_kv WHERE db = $1 AND k > $2 ORDER BY k LIMIT $3" },
    { "lt", "SELECT k, v FROM mqim_kv WHERE db = $1 AND k < $2 ORDER BY k DESC LIMIT $3" },
    { "first", "SELECT k, v FROM mqim_kv WHERE db = $1 ORDER BY k LIMIT $2" },
    { "last", "SELECT k, v FROM mqim_kv WHERE db = $1 ORDER BY k DESC LIMIT $2" },
    { "count", "SELECT count(*) FROM mqim_kv WHERE db = $1" },
};

static bool exec_ok(PGconn *conn, const char *sql, const char *what)
{
    PGresult *r = PQexec(conn, sql);
    ExecStatusType s = PQresultStatus(r);
    bool ok = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
    if (!ok) {
        MQIM_LOGE(LOG_MOD, "PostgreSQL: %s: %s", what, PQerrorMessage(conn));
    }
    PQclear(r);
    return ok;
}

static PGconn *pg_connect(kv_pg_t *kv)
{
    PGconn *conn = PQconnectdb(kv->dsn);
    if (PQstatus(conn) != CONNECTION_OK) {
        MQIM_LOGE(LOG_MOD, "cannot connect to PostgreSQL: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
        PGresult *r = PQprepare(conn, stmts[i][0], stmts[i][1], 0, NULL);
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (!ok) {
            MQIM_LOGE(LOG_MOD, "PostgreSQL: prepare %s: %s", stmts[i][0], PQerrorMessage(conn));
            PQfinish(conn);
            return NULL;
        }
    }
    return conn;
}

static PGconn *pool_take(kv_pg_t *kv)
{
    PGconn *conn = NULL;
    pthread_mutex_lock(&kv->lock);
    if (kv->nidle > 0) {
        conn = kv->idle[--kv->nidle];
    }
    pthread_mutex_unlock(&kv->lock);
    return conn != NULL ? conn : pg_connect(kv);
}

/* A connection that failed (a lost server, a failover) is closed, not kept:
 * the next transaction connects again, to whichever server the DSN finds. */
static void pool_give(kv_pg_t *kv, PGconn *conn)
{
    bool keep = PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) == PQTRANS_IDLE;
    pthread_mutex_lock(&kv->lock);
    if (keep && kv->nidle < PG_POOL_MAX) {
        kv->idle[kv->nidle++] = conn;
        conn = NULL;
    }
    pthread_mutex_unlock(&kv->lock);
    if (conn != NULL) {
        PQfinish(conn);
    }
}

static mqim_status_t pg_open(const mqim_kv_open_args_t *a, mqim_kv_t **out)
{
    kv_pg_t *kv;
    PGconn *conn;
    if (a->dsn == NULL) {
        MQIM_LOGE(LOG_MOD, "store_engine postgresql needs store_dsn");
        return MQIM_BAD_PARAMETER;
    }
    kv = calloc(1, sizeof(*kv));
    if (kv == NULL || (kv->dsn = strdup(a->dsn)) == NULL) {
        free(kv);
        return MQIM_INTERNAL;
    }
    kv->base.engine = mqim_kv_postgresql;
    kv->read_only = a->read_only;
    pthread_mutex_init(&kv->lock, NULL);
    conn = PQconnectdb(kv->dsn);
    if (PQstatus(conn) != CONNECTION_OK) {
        MQIM_LOGE(LOG_MOD, "cannot connect to PostgreSQL: %s", PQerrorMessage(conn));
        PQfinish(conn);
        conn = NULL;
    }
    /* Made once; the session lock keeps two gateways starting together
     * from racing on the catalog. */
    if (conn != NULL && !a->read_only &&
        !exec_ok(conn, "SET client_min_messages TO warning; "
                       "SELECT pg_advisory_lock(" PG_WRITER_LOCK "); "
                       "CREATE TABLE IF NOT EXISTS mqim_kv (db smallint NOT NULL, "
                       "k bytea NOT NULL, v bytea NOT NULL, PRIMARY KEY (db, k)); "
                       "SELECT pg_advisory_unlock(" PG_WRITER_LOCK ")",
                 "create table")) {
        PQfinish(conn);
        conn = NULL;
    }
    if (conn == NULL) {
        pthread_mutex_destroy(&kv->lock);
        free(kv->dsn);
        free(kv);
        return MQIM_STORE_ERROR;
    }
    PQfinish(conn);
    *out = &kv->base;
    return MQIM_OK;
}

static void pg_close(mqim_kv_t *base)
{
    kv_pg_t *kv = (kv_pg_t *)(void *)base;
    if (kv == NULL) {
        return;
    }
    for (int i = 0; i < kv->nidle; i++) {
        PQfinish(kv->idle[i]);
    }
    pthread_mutex_destroy(&kv->lock);
    free(kv->dsn);
    free(kv);
}

/* ---- statements ---- */

static mqim_status_t result_status(PGconn *conn, const PGresult *r, const char *what)
{
    ExecStatusType s = PQresultStatus(r);
    const char *state;
    if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
        return MQIM_OK;
    }
    state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    MQIM_LOGE(LOG_MOD, "PostgreSQL: %s: %s", what,
              r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(conn));
    /* 53100 disk_full, 53200 out_of_memory, 54000 program_limit_exceeded */
    if (state != NULL && strcmp(state, "53100") == 0) {
        return MQIM_DISK_FULL;
    }
    return MQIM_STORE_ERROR;
}

/* A failed statement poisons the innermost savepoint (its abort undoes
 * it), or the root transaction when there is none. */
static void mark_failed(mqim_kv_txn_t *t)
{
    while (t->parent != NULL && !t->savepoint) {
        t = t->parent;
    }
    t->failed = true;
}

static void keep_result(mqim_kv_txn_t *t, PGresult *r)
{
    mqim_kv_txn_t *root = t->root;
    if (root->nkept == root->capkept) {
        size_t cap = root->capkept == 0u ? 16u : root->capkept * 2u;
        PGresult **k = realloc(root->kept, cap * sizeof(*k));
        if (k == NULL) {
            /* cannot keep it: the values would dangle; the caller sees an error */
            PQclear(r);
            return;
        }
        root->kept = k;
        root->capkept = cap;
    }
    root->kept[root->nkept++] = r;
}

/* Run a prepared statement with (db, key[, value or limit]). The result is
 * returned (binary) or NULL on failure (logged, the transaction marked). */
static PGresult *run(mqim_kv_txn_t *t, const char *stmt, int db, const mqim_kv_val_t *key,
                     const mqim_kv_val_t *val, long limit, mqim_status_t *st)
{
    char dbtext[8], limtext[24];
    const char *values[3];
    int lengths[3] = { 0, 0, 0 };
    int formats[3] = { 0, 0, 0 };
    int n = 0;
    PGresult *r;
    snprintf(dbtext, sizeof(dbtext), "%d", db);
    values[n++] = dbtext;
    if (key != NULL) {
        values[n] = key->size > 0u ? key->data : "";
        lengths[n] = (int)key->size;
        formats[n++] = 1;
    }
    if (val != NULL) {
        values[n] = val->size > 0u ? val->data : "";
        lengths[n] = (int)val->size;
        formats[n++] = 1;
    } else if (limit > 0) {
        snprintf(limtext, sizeof(limtext), "%ld", limit);
        values[n++] = limtext;
    }
    r = PQexecPrepared(t->conn, stmt, n, values, lengths, formats, 1);
    *st = result_status(t->conn, r, stmt);
    if (*st != MQIM_OK) {
        PQclear(r);
        mark_failed(t);
        return NULL;
    }
    return r;
}

static mqim_status_t savepoint_cmd(mqim_kv_txn_t *t, const char *verb)
{
    char sql[96];
    snprintf(sql, sizeof(sql), "%s s%u", verb, t->depth);
    return exec_ok(t->conn, sql, verb) ? MQIM_OK : MQIM_STORE_ERROR;
}

/* A nested transaction's savepoint, before its first write. */
static mqim_status_t ensure_savepoint(mqim_kv_txn_t *t)
{
    mqim_status_t st = MQIM_OK;
    if (t->parent != NULL && t->parent->parent != NULL) {
        st = ensure_savepoint(t->parent);
    }
    if (st == MQIM_OK && t->parent != NULL && !t->savepoint) {
        st = savepoint_cmd(t, "SAVEPOINT");
        t->savepoint = st == MQIM_OK;
    }
    return st;
}

static mqim_status_t raw_put(mqim_kv_txn_t *t, int db, const mqim_kv_val_t *key,
                             const mqim_kv_val_t *val)
{
    mqim_status_t st;
    PGresult *r = run(t, "put", db, key, val, 0, &st);
    PQclear(r);
    t->root->writes++;
    return st;
}

/* Send the value the caller reserved (it has written it by now). */
static mqim_status_t flush_pending(mqim_kv_txn_t *t)
{
    mqim_kv_txn_t *root = t->root;
    mqim_status_t st;
    mqim_kv_val_t key, val;
    if (!root->pending) {
        return MQIM_OK;
    }
    root->pending = false;
    key.size = root->pending_key_len;
    key.data = root->pending_key;
    val.size = root->pending_len;
    val.data = root->pending_buf;
    st = raw_put(root->pending_owner, root->pending_db, &key, &val);
    free(root->pending_key);
    free(root->pending_buf);
    root->pending_key = NULL;
    root->pending_buf = NULL;
    return st;
}

/* ---- transactions ---- */

static mqim_status_t pg_txn_begin(mqim_kv_t *base, mqim_kv_txn_t *parent, mqim_kv_txn_kind_t kind,
                                  mqim_kv_txn_t **out)
{
    kv_pg_t *kv = (kv_pg_t *)(void *)base;
    mqim_kv_txn_t *t = calloc(1, sizeof(*t));
    const char *begin;
    *out = NULL;
    if (t == NULL) {
        return MQIM_INTERNAL;
    }
    t->kv = kv;
    if (parent != NULL) {
        mqim_status_t st = flush_pending(parent);
        if (st != MQIM_OK) {
            free(t);
            return st;
        }
        t->parent = parent;
        t->root = parent->root;
        t->conn = parent->conn;
        t->depth = parent->depth + 1u;
        t->write = parent->write;
        *out = t;
        return MQIM_OK;
    }
    t->root = t;
    t->write = kind != MQIM_KV_READ && !kv->read_only;
    t->conn = pool_take(kv);
    if (t->conn == NULL) {
        free(t);
        return MQIM_STORE_ERROR;
    }
    if (!t->write) {
        begin = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";
    } else if (kind == MQIM_KV_WRITE_LAZY) {
        /* may be lost in a crash of the server, never half-applied */
        begin = "BEGIN; SET LOCAL synchronous_commit TO off; "
                "SELECT pg_advisory_xact_lock(" PG_WRITER_LOCK ")";
    } else {
        begin = "BEGIN; SELECT pg_advisory_xact_lock(" PG_WRITER_LOCK ")";
    }
    if (!exec_ok(t->conn, begin, "begin")) {
        pool_give(kv, t->conn);
        free(t);
        return MQIM_STORE_ERROR;
    }
    *out = t;
    return MQIM_OK;
}

static void root_end(mqim_kv_txn_t *t)
{
    for (size_t i = 0; i < t->nkept; i++) {
        PQclear(t->kept[i]);
    }
    free(t->kept);
    free(t->pending_key);
    free(t->pending_buf);
    pool_give(t->kv, t->conn);
    free(t);
}

static void pg_txn_abort(mqim_kv_txn_t *t)
{
    if (t->parent == NULL) {
        (void)exec_ok(t->conn, "ROLLBACK", "rollback");
        root_end(t);
        return;
    }
    if (t->root->pending && t->root->pending_owner == t) {
        t->root->pending = false;
    }
    if (t->savepoint) {
        /* undo this request's writes only; the batch goes on */
        if (savepoint_cmd(t, "ROLLBACK TO SAVEPOINT") != MQIM_OK ||
            savepoint_cmd(t, "RELEASE SAVEPOINT") != MQIM_OK) {
            t->root->failed = true;
        }
        t->root->writes++;
    }
    free(t);
}

static mqim_status_t pg_txn_commit(mqim_kv_txn_t *t)
{
    mqim_status_t st = flush_pending(t);
    if (st == MQIM_OK && t->failed) {
        st = MQIM_STORE_ERROR;
    }
    if (st != MQIM_OK) {
        pg_txn_abort(t);
        return st;
    }
    if (t->parent != NULL) {
        if (t->savepoint) {
            st = savepoint_cmd(t, "RELEASE SAVEPOINT");
            if (st != MQIM_OK) {
                t->root->failed = true;
            }
        }
        free(t);
        return st;
    }
    {
        PGresult *r = PQexec(t->conn, "COMMIT");
        st = result_status(t->conn, r, "commit");
        /* COMMIT of a transaction that failed answers ROLLBACK */
        if (st == MQIM_OK && strcmp(PQcmdStatus(r), "COMMIT") != 0) {
            MQIM_LOGE(LOG_MOD, "PostgreSQL: commit rolled back");
            st = MQIM_STORE_ERROR;
        }
        PQclear(r);
    }
    root_end(t);
    return st;
}

/* ---- data ---- */

static void value_of(const PGresult *r, int row, int col, mqim_kv_val_t *v)
{
    v->size = (size_t)PQgetlength(r, row, col);
    v->data = PQgetvalue(r, row, col);
}

static mqim_status_t pg_get(mqim_kv_txn_t *t, int db, const mqim_kv_val_t *key, mqim_kv_val_t *val)
{
    mqim_status_t st = flush_pending(t);
    PGresult *r;
    if (st != MQIM_OK) {
        return st;
    }
    r = run(t, "get", db, key, NULL, 0, &st);
    if (r == NULL) {
        return st;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        return MQIM_NOT_FOUND;
    }
    value_of(r, 0, 0, val);
    keep_result(t, r);
    return MQIM_OK;
}

static mqim_status_t pg_put(mqim_kv_txn_t *t, int db, const mqim_kv_val_t *key,
                            const mqim_kv_val_t *val, unsigned flags)
{
    mqim_status_t st = flush_pending(t);
    (void)flags;
    if (st == MQIM_OK) {
        st = ensure_savepoint(t);
    }
    return st == MQIM_OK ? raw_put(t, db, key, val) : st;
}

static mqim_status_t pg_reserve(mqim_kv_txn_t *t, int db, const mqim_kv_val_t *key, size_t len,
                                unsigned flags, void **buf)
{
    mqim_kv_txn_t *root = t->root;
    mqim_status_t st = flush_pending(t);
    (void)flags;
    *buf = NULL;
    if (st == MQIM_OK) {
        st = ensure_savepoint(t);
    }
    if (st != MQIM_OK) {
        return st;
    }
    root->pending_key = malloc(key->size > 0u ? key->size : 1u);
    root->pending_buf = malloc(len > 0u ? len : 1u);
    if (root->pending_key == NULL || root->pending_buf == NULL) {
        free(root->pending_key);
        free(root->pending_buf);
        root->pending_key = NULL;
        root->pending_buf = NULL;
        return MQIM_INTERNAL;
    }
    if (key->size > 0u) {
        memcpy(root->pending_key, key->data, key->size);
    }
    root->pending_key_len = key->size;
    root->pending_len = len;
    root->pending_db = db;
    root->pending_owner = t;
    root->pending = true;
    *buf = root->pending_buf;
    return MQIM_OK;
}

static mqim_status_t pg_del(mqim_kv_txn_t *t, int db, const mqim_kv_val_t *key)
{
    mqim_status_t st = flush_pending(t);
    PGresult *r;
    if (st == MQIM_OK) {
        st = ensure_savepoint(t);
    }
    if (st != MQIM_OK) {
        return st;
    }
    r = run(t, "del", db, key, NULL, 0, &st);
    if (r != NULL) {
        st = strcmp(PQcmdTuples(r), "0") == 0 ? MQIM_NOT_FOUND : MQIM_OK;
        PQclear(r);
    }
    t->root->writes++;
    return st;
}

static mqim_status_t pg_count(mqim_kv_txn_t *t, int db, uint64_t *entries)
{
    mqim_status_t st = flush_pending(t);
    PGresult *r;
    *entries = 0;
    if (st != MQIM_OK) {
        return st;
    }
    r = run(t, "count", db, NULL, NULL, 0, &st);
    if (r != NULL && PQntuples(r) == 1 && PQgetlength(r, 0, 0) == 8) {
        const unsigned char *p = (const unsigned char *)PQgetvalue(r, 0, 0);
        for (int i = 0; i < 8; i++) {
            *entries = (*entries << 8) | p[i];
        }
    }
    PQclear(r);
    return st;
}

/* ---- cursors ---- */

static mqim_status_t pg_cursor_open(mqim_kv_txn_t *t, int db, mqim_kv_cursor_t **out)
{
    mqim_kv_cursor_t *c = calloc(1, sizeof(*c));
    *out = c;
    if (c == NULL) {
        return MQIM_INTERNAL;
    }
    c->txn = t;
    c->db = db;
    return MQIM_OK;
}

static void pg_cursor_close(mqim_kv_cursor_t *c)
{
    free(c);
}

/* Fetch a batch and stand on its first row. */
static mqim_status_t fetch(mqim_kv_cursor_t *c, const char *stmt, const mqim_kv_val_t *from,
                           bool asc, long limit)
{
    mqim_status_t st = flush_pending(c->txn);
    PGresult *r;
    if (st != MQIM_OK) {
        return st;
    }
    r = run(c->txn, stmt, c->db, from, NULL, limit, &st);
    if (r == NULL) {
        return st;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        return MQIM_NOT_FOUND;
    }
    keep_result(c->txn, r);
    c->res = r;
    c->row = 0;
    c->nrows = PQntuples(r);
    c->asc = asc;
    c->short_batch = c->nrows < limit;
    c->writes_at = c->txn->root->writes;
    c->positioned = true;
    value_of(r, 0, 0, &c->key);
    return MQIM_OK;
}

/* The next row in the batch's direction, without a round trip when the
 * batch is still what the database holds. */
static mqim_status_t step(mqim_kv_cursor_t *c, bool asc)
{
    bool fresh = c->positioned && c->res != NULL && c->asc == asc &&
                 c->writes_at == c->txn->root->writes && !c->txn->root->pending;
    if (fresh && c->row + 1 < c->nrows) {
        c->row++;
        value_of(c->res, c->row, 0, &c->key);
        return MQIM_OK;
    }
    if (fresh && c->short_batch) {
        return MQIM_NOT_FOUND;
    }
    if (!c->positioned) {
        return fetch(c, asc ? "first" : "last", NULL, asc, PG_FIRST_BATCH);
    }
    return fetch(c, asc ? "gt" : "lt", &c->key, asc, PG_BATCH);
}

static mqim_status_t pg_cursor_get(mqim_kv_cursor_t *c, mqim_kv_val_t *key, mqim_kv_val_t *val,
                                   mqim_kv_op_t op)
{
    mqim_status_t st;
    switch (op) {
    case MQIM_KV_FIRST:
        st = fetch(c, "first", NULL, true, PG_FIRST_BATCH);
        break;
    case MQIM_KV_LAST:
        st = fetch(c, "last", NULL, false, PG_FIRST_BATCH);
        break;
    case MQIM_KV_SET_RANGE:
        st = fetch(c, "ge", key, true, PG_FIRST_BATCH);
        break;
    case MQIM_KV_NEXT:
        st = step(c, true);
        break;
    case MQIM_KV_PREV:
        st = step(c, false);
        break;
    default:
        st = MQIM_BAD_PARAMETER;
        break;
    }
    if (st == MQIM_OK) {
        *key = c->key;
        value_of(c->res, c->row, 1, val);
    }
    return st;
}

static mqim_status_t pg_space(mqim_kv_t *kv, uint64_t *used, uint64_t *limit)
{
    (void)kv;
    *used = 0;
    *limit = 0;
    return MQIM_OK;
}

static mqim_status_t pg_copy(mqim_kv_t *kv, const char *dir)
{
    (void)kv;
    (void)dir;
    return MQIM_UNSUPPORTED;
}

static const mqim_kv_engine_t kv_pg_engine = {
    .name = "postgresql",
    .open = pg_open,
    .close = pg_close,
    .txn_begin = pg_txn_begin,
    .txn_commit = pg_txn_commit,
    .txn_abort = pg_txn_abort,
    .get = pg_get,
    .put = pg_put,
    .reserve = pg_reserve,
    .del = pg_del,
    .cursor_open = pg_cursor_open,
    .cursor_get = pg_cursor_get,
    .cursor_close = pg_cursor_close,
    .count = pg_count,
    .space = pg_space,
    .copy = pg_copy,
};

const mqim_kv_engine_t *const mqim_kv_postgresql = &kv_pg_engine;
