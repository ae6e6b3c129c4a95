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
 * (a thread per transaction, as with LMDB). Every write transaction takes
 * one transaction-scoped advisory lock first: writers are serial across
 * every gateway on the database, as LMDB's single writer is within one
 * process, which is what store.c's read-modify-write of counters and user
 * records (seq assignment) relies on (docs/scale.md names the finer locking
 * that would let writers run in parallel). Read transactions are
 * REPEATABLE READ, READ ONLY: one snapshot, as LMDB's.
 *
 * Round trips are what this engine costs (a routed message reads and
 * writes about 30 keys), so:
 *   - every key a transaction read or wrote is cached for its lifetime
 *     (valid: no other writer runs meanwhile, and a reader has its
 *     snapshot); a read of a cached key costs nothing;
 *   - writes are queued and sent in one pipeline (libpq pipeline mode) with
 *     the next statement that needs the server: a read the cache cannot
 *     answer, a cursor, the COMMIT;
 *   - a nested transaction is a SAVEPOINT, queued before its first write;
 *     its abort undoes its cache entries (an undo log) and, when its
 *     savepoint was not sent yet, simply drops its queued commands.
 *
 * Values stay valid until the root transaction ends: results handed out
 * are kept (PGresult) and written values are copied into blocks freed only
 * then. A cursor fetches rows in batches (after sending the queue) and
 * fetches again after any write of its transaction.
 */
#include "kv.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdint.h>
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
/* Commands per pipeline round: their results stay far below what the
 * sockets buffer, so a blocking connection cannot deadlock on them. */
#define PG_PIPELINE_MAX 256

typedef struct kv_pg {
    mqim_kv_t base;
    char *dsn;
    bool read_only;
    pthread_mutex_t lock;
    PGconn *idle[PG_POOL_MAX];
    int nidle;
} kv_pg_t;

/* A queued command: a prepared put or del, or plain SQL (savepoints). */
typedef struct pg_cmd {
    const char *stmt; /* "put", "del", or NULL for sql */
    const char *sql;
    int db;
    mqim_kv_val_t key, val;
    bool noop;        /* a savepoint merged into its parent before it was sent */
} pg_cmd_t;

enum { ENT_UNKNOWN, ENT_PRESENT, ENT_ABSENT };

typedef struct cache_ent {
    int db;
    uint32_t hash;
    uint8_t state;
    mqim_kv_val_t key, val;
} cache_ent_t;

typedef struct undo_rec {
    uint32_t ent;
    uint8_t state;
    mqim_kv_val_t val;
} undo_rec_t;

struct mqim_kv_txn {
    kv_pg_t *kv;
    PGconn *conn;
    struct mqim_kv_txn *parent;
    struct mqim_kv_txn *root;
    unsigned depth;
    bool write;
    /* nested: its savepoint (0 none, 1 queued or sent), where it was
     * queued and in which flush generation */
    int sp_state;
    size_t sp_pos;
    uint64_t sp_gen;
    size_t undo_mark;
    /* root only */
    bool failed;     /* a statement failed: commit rolls back and says so */
    uint64_t writes; /* cursors fetch again after one */
    uint64_t gen;    /* flush generation: the queue was sent this many times */
    pg_cmd_t *queue;
    size_t nqueue, capqueue;
    cache_ent_t *ents;
    size_t nents, capents;
    uint32_t *slots; /* open addressing: ent index + 1, 0 = empty */
    size_t capslots;
    undo_rec_t *undo;
    size_t nundo, capundo;
    PGresult **kept;
    size_t nkept, capkept;
    void **blocks;   /* written keys and values */
    size_t nblocks, capblocks;
    /* the last ascending batch a cursor fetched: a later seek inside it
     * (the outbox pump seeks entry after entry) needs no round trip */
    PGresult *ra;
    int ra_db;
    bool ra_short;
    uint64_t ra_writes;
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

/* ---- memory held until the root transaction ends ---- */

static bool grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    size_t n = *cap == 0u ? 16u : *cap;
    void *p;
    if (need <= *cap) {
        return true;
    }
    while (n < need) {
        n *= 2u;
    }
    p = realloc(*arr, n * elem);
    if (p == NULL) {
        return false;
    }
    *arr = p;
    *cap = n;
    return true;
}

static void *hold(mqim_kv_txn_t *root, const void *src, size_t len)
{
    void *p;
    if (!grow((void **)&root->blocks, &root->capblocks, root->nblocks + 1u, sizeof(void *))) {
        return NULL;
    }
    p = malloc(len > 0u ? len : 1u);
    if (p != NULL) {
        if (src != NULL && len > 0u) {
            memcpy(p, src, len);
        }
        root->blocks[root->nblocks++] = p;
    }
    return p;
}

static bool keep_result(mqim_kv_txn_t *root, PGresult *r)
{
    if (!grow((void **)&root->kept, &root->capkept, root->nkept + 1u, sizeof(PGresult *))) {
        PQclear(r);
        return false;
    }
    root->kept[root->nkept++] = r;
    return true;
}

/* ---- the cache: what this transaction knows of each key ---- */

static uint32_t key_hash(int db, const mqim_kv_val_t *k)
{
    uint32_t h = 2166136261u ^ (uint32_t)db;
    const unsigned char *p = k->data;
    for (size_t i = 0; i < k->size; i++) {
        h = (h ^ p[i]) * 16777619u;
    }
    return h;
}

static cache_ent_t *cache_find(mqim_kv_txn_t *root, int db, const mqim_kv_val_t *k, uint32_t h)
{
    if (root->capslots == 0u) {
        return NULL;
    }
    for (size_t i = h & (root->capslots - 1u);; i = (i + 1u) & (root->capslots - 1u)) {
        uint32_t e = root->slots[i];
        cache_ent_t *ent;
        if (e == 0u) {
            return NULL;
        }
        ent = &root->ents[e - 1u];
        if (ent->hash == h && ent->db == db && ent->key.size == k->size &&
            (k->size == 0u || memcmp(ent->key.data, k->data, k->size) == 0)) {
            return ent;
        }
    }
}

static bool cache_rehash(mqim_kv_txn_t *root)
{
    size_t cap = root->capslots == 0u ? 64u : root->capslots * 2u;
    uint32_t *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL) {
        return false;
    }
    for (size_t e = 0; e < root->nents; e++) {
        size_t i = root->ents[e].hash & (cap - 1u);
        while (slots[i] != 0u) {
            i = (i + 1u) & (cap - 1u);
        }
        slots[i] = (uint32_t)e + 1u;
    }
    free(root->slots);
    root->slots = slots;
    root->capslots = cap;
    return true;
}

/* The entry of a key, made (state unknown) when missing; NULL when out of memory. */
static cache_ent_t *cache_ent(mqim_kv_txn_t *root, int db, const mqim_kv_val_t *k)
{
    uint32_t h = key_hash(db, k);
    cache_ent_t *ent = cache_find(root, db, k, h);
    size_t i;
    void *kcopy;
    if (ent != NULL) {
        return ent;
    }
    if ((root->nents + 1u) * 10u > root->capslots * 7u && !cache_rehash(root)) {
        return NULL;
    }
    if (!grow((void **)&root->ents, &root->capents, root->nents + 1u, sizeof(cache_ent_t)) ||
        (kcopy = hold(root, k->data, k->size)) == NULL) {
        return NULL;
    }
    ent = &root->ents[root->nents];
    ent->db = db;
    ent->hash = h;
    ent->state = ENT_UNKNOWN;
    ent->key.size = k->size;
    ent->key.data = kcopy;
    ent->val.size = 0;
    ent->val.data = NULL;
    for (i = h & (root->capslots - 1u); root->slots[i] != 0u; i = (i + 1u) & (root->capslots - 1u)) {
    }
    root->slots[i] = (uint32_t)root->nents + 1u;
    root->nents++;
    return ent;
}

/* Change an entry, recording its old state when a nested transaction could undo it. */
static bool cache_set(mqim_kv_txn_t *t, cache_ent_t *ent, uint8_t state, const mqim_kv_val_t *val)
{
    mqim_kv_txn_t *root = t->root;
    if (t->parent != NULL) {
        undo_rec_t *u;
        if (!grow((void **)&root->undo, &root->capundo, root->nundo + 1u, sizeof(undo_rec_t))) {
            return false;
        }
        u = &root->undo[root->nundo++];
        u->ent = (uint32_t)(ent - root->ents);
        u->state = ent->state;
        u->val = ent->val;
    }
    ent->state = state;
    if (val != NULL) {
        ent->val = *val;
    } else {
        ent->val.size = 0;
        ent->val.data = NULL;
    }
    return true;
}

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
    bool keep = PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) == PQTRANS_IDLE &&
                PQpipelineStatus(conn) == PQ_PIPELINE_OFF;
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
              r != NULL && PQresultErrorMessage(r)[0] != '\0' ? PQresultErrorMessage(r)
                                                              : PQerrorMessage(conn));
    /* 53100: disk_full */
    return (state != NULL && strcmp(state, "53100") == 0) ? MQIM_DISK_FULL : MQIM_STORE_ERROR;
}

/* The parameters of a prepared statement: db, then key, then a value or a limit. */
typedef struct pg_params {
    char dbtext[8], limtext[24];
    const char *values[3];
    int lengths[3], formats[3];
    int n;
} pg_params_t;

static void params(pg_params_t *p, int db, const mqim_kv_val_t *key, const mqim_kv_val_t *val, long limit)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->dbtext, sizeof(p->dbtext), "%d", db);
    p->values[p->n++] = p->dbtext;
    if (key != NULL) {
        p->values[p->n] = key->size > 0u ? key->data : "";
        p->lengths[p->n] = (int)key->size;
        p->formats[p->n++] = 1;
    }
    if (val != NULL) {
        p->values[p->n] = val->size > 0u ? val->data : "";
        p->lengths[p->n] = (int)val->size;
        p->formats[p->n++] = 1;
    } else if (limit > 0) {
        snprintf(p->limtext, sizeof(p->limtext), "%ld", limit);
        p->values[p->n++] = p->limtext;
    }
}

static int send_cmd(PGconn *conn, const pg_cmd_t *c)
{
    pg_params_t p;
    if (c->stmt == NULL) {
        return PQsendQueryParams(conn, c->sql, 0, NULL, NULL, NULL, NULL, 0);
    }
    params(&p, c->db, &c->key, c->stmt[0] == 'p' ? &c->val : NULL, 0);
    return PQsendQueryPrepared(conn, c->stmt, p.n, p.values, p.lengths, p.formats, 1);
}

/* One pipeline round: cmds (some may be no-ops), then the read when given;
 * the read's result in *out. */
static mqim_status_t pipeline_round(mqim_kv_txn_t *root, const pg_cmd_t *cmds, size_t n,
                                    const pg_cmd_t *read, PGresult **out)
{
    PGconn *conn = root->conn;
    mqim_status_t st = MQIM_OK;
    size_t sent = 0, qi = 0, nulls = 0;
    bool got = false;
    if (PQenterPipelineMode(conn) != 1) {
        return result_status(conn, NULL, "pipeline");
    }
    for (size_t i = 0; i < n; i++) {
        if (!cmds[i].noop) {
            if (send_cmd(conn, &cmds[i]) != 1) {
                st = MQIM_STORE_ERROR;
                break;
            }
            sent++;
        }
    }
    if (st == MQIM_OK && read != NULL) {
        pg_params_t p;
        params(&p, read->db, read->key.data != NULL || read->key.size > 0u ? &read->key : NULL, NULL,
               (long)read->val.size);
        if (PQsendQueryPrepared(conn, read->stmt, p.n, p.values, p.lengths, p.formats, 1) != 1) {
            st = MQIM_STORE_ERROR;
        } else {
            sent++;
        }
    }
    if (PQpipelineSync(conn) != 1) {
        st = MQIM_STORE_ERROR;
    }
    /* Each statement's result is followed by a NULL; the sync ends the round. */
    while (PQstatus(conn) == CONNECTION_OK && nulls <= 2u * sent + 2u) {
        PGresult *r = PQgetResult(conn);
        ExecStatusType s;
        if (r == NULL) {
            if (got) {
                qi++;
                got = false;
            } else {
                nulls++;
            }
            continue;
        }
        got = true;
        s = PQresultStatus(r);
        if (s == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            break;
        }
        if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
            if (st == MQIM_OK) {
                st = s == PGRES_PIPELINE_ABORTED ? MQIM_STORE_ERROR : result_status(conn, r, "pipeline");
            }
            PQclear(r);
        } else if (read != NULL && qi + 1u == sent && out != NULL) {
            *out = r;
        } else {
            PQclear(r);
        }
    }
    if (PQexitPipelineMode(conn) != 1 && st == MQIM_OK) {
        st = result_status(conn, NULL, "pipeline end");
    }
    if (st != MQIM_OK && out != NULL && *out != NULL) {
        PQclear(*out);
        *out = NULL;
    }
    return st;
}

/* Send the queue (and a read, whose result lands in *out). */
static mqim_status_t flush(mqim_kv_txn_t *t, const pg_cmd_t *read, PGresult **out)
{
    mqim_kv_txn_t *root = t->root;
    mqim_status_t st = MQIM_OK;
    size_t i = 0;
    if (out != NULL) {
        *out = NULL;
    }
    if (root->failed) {
        return MQIM_STORE_ERROR;
    }
    if (root->nqueue == 0u && read != NULL) {
        pg_params_t p;
        PGresult *r;
        params(&p, read->db, read->key.data != NULL || read->key.size > 0u ? &read->key : NULL, NULL,
               (long)read->val.size);
        r = PQexecPrepared(root->conn, read->stmt, p.n, p.values, p.lengths, p.formats, 1);
        st = result_status(root->conn, r, read->stmt);
        if (st == MQIM_OK) {
            *out = r;
        } else {
            PQclear(r);
            root->failed = true;
        }
        return st;
    }
    while (st == MQIM_OK && (i < root->nqueue || (read != NULL && out != NULL && *out == NULL))) {
        size_t n = root->nqueue - i > PG_PIPELINE_MAX ? PG_PIPELINE_MAX : root->nqueue - i;
        bool last = i + n == root->nqueue;
        st = pipeline_round(root, root->queue + i, n, last ? read : NULL, last ? out : NULL);
        i += n;
        if (last) {
            break;
        }
    }
    root->nqueue = 0;
    root->gen++;
    if (st != MQIM_OK) {
        root->failed = true;
    }
    return st;
}

static mqim_status_t enqueue(mqim_kv_txn_t *t, const pg_cmd_t *c)
{
    mqim_kv_txn_t *root = t->root;
    if (!grow((void **)&root->queue, &root->capqueue, root->nqueue + 1u, sizeof(pg_cmd_t))) {
        return MQIM_INTERNAL;
    }
    root->queue[root->nqueue++] = *c;
    return MQIM_OK;
}

static mqim_status_t enqueue_sql(mqim_kv_txn_t *t, const char *fmt, unsigned depth)
{
    char buf[64];
    pg_cmd_t c;
    memset(&c, 0, sizeof(c));
    snprintf(buf, sizeof(buf), fmt, depth);
    c.sql = hold(t->root, buf, strlen(buf) + 1u);
    return c.sql == NULL ? MQIM_INTERNAL : enqueue(t, &c);
}

/* A nested transaction's savepoint (and its parents'), before its first write. */
static mqim_status_t ensure_savepoint(mqim_kv_txn_t *t)
{
    mqim_status_t st = MQIM_OK;
    if (t->parent == NULL || t->sp_state != 0) {
        return MQIM_OK;
    }
    st = ensure_savepoint(t->parent);
    if (st == MQIM_OK) {
        t->sp_pos = t->root->nqueue;
        t->sp_gen = t->root->gen;
        st = enqueue_sql(t, "SAVEPOINT s%u", t->depth);
        t->sp_state = st == MQIM_OK ? 1 : 0;
    }
    return st;
}

/* ---- transactions ---- */

static mqim_status_t pg_txn_begin(mqim_kv_t *base, mqim_kv_txn_t *parent, mqim_kv_txn_kind_t kind,
                                  mqim_kv_txn_t **out)
{
    kv_pg_t *kv = (kv_pg_t *)(void *)base;
    mqim_kv_txn_t *t = calloc(1, sizeof(*t));
    mqim_status_t st = MQIM_OK;
    *out = NULL;
    if (t == NULL) {
        return MQIM_INTERNAL;
    }
    t->kv = kv;
    if (parent != NULL) {
        t->parent = parent;
        t->root = parent->root;
        t->conn = parent->conn;
        t->depth = parent->depth + 1u;
        t->write = parent->write;
        t->undo_mark = t->root->nundo;
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
    /* queued: sent with the first statement that needs the server */
    if (!t->write) {
        st = enqueue_sql(t, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", 0);
    } else {
        st = enqueue_sql(t, "BEGIN", 0);
        if (st == MQIM_OK && kind == MQIM_KV_WRITE_LAZY) {
            /* may be lost in a crash of the server, never half-applied */
            st = enqueue_sql(t, "SET LOCAL synchronous_commit TO off", 0);
        }
        if (st == MQIM_OK) {
            st = enqueue_sql(t, "SELECT pg_advisory_xact_lock(" PG_WRITER_LOCK ")", 0);
        }
    }
    if (st != MQIM_OK) {
        pool_give(kv, t->conn);
        free(t);
        return st;
    }
    *out = t;
    return MQIM_OK;
}

static void root_end(mqim_kv_txn_t *t)
{
    for (size_t i = 0; i < t->nkept; i++) {
        PQclear(t->kept[i]);
    }
    for (size_t i = 0; i < t->nblocks; i++) {
        free(t->blocks[i]);
    }
    free(t->kept);
    free(t->blocks);
    free(t->queue);
    free(t->ents);
    free(t->slots);
    free(t->undo);
    pool_give(t->kv, t->conn);
    free(t);
}

static void pg_txn_abort(mqim_kv_txn_t *t)
{
    mqim_kv_txn_t *root = t->root;
    if (t->parent == NULL) {
        /* nothing sent yet: the server never saw this transaction */
        if (root->gen > 0u) {
            (void)exec_ok(t->conn, "ROLLBACK", "rollback");
        }
        root_end(t);
        return;
    }
    while (root->nundo > t->undo_mark) {
        undo_rec_t *u = &root->undo[--root->nundo];
        root->ents[u->ent].state = u->state;
        root->ents[u->ent].val = u->val;
    }
    if (t->sp_state != 0) {
        if (t->sp_gen == root->gen) {
            root->nqueue = t->sp_pos; /* never sent: forget its commands */
        } else if (enqueue_sql(t, "ROLLBACK TO SAVEPOINT s%u", t->depth) != MQIM_OK ||
                   enqueue_sql(t, "RELEASE SAVEPOINT s%u", t->depth) != MQIM_OK) {
            root->failed = true;
        }
        root->writes++;
    }
    free(t);
}

static mqim_status_t pg_txn_commit(mqim_kv_txn_t *t)
{
    mqim_kv_txn_t *root = t->root;
    mqim_status_t st = MQIM_OK;
    if (t->parent != NULL) {
        if (root->failed) {
            pg_txn_abort(t);
            return MQIM_STORE_ERROR;
        }
        if (t->sp_state != 0 && t->sp_gen == root->gen) {
            root->queue[t->sp_pos].noop = true; /* merged before it was sent */
        } else if (t->sp_state != 0) {
            st = enqueue_sql(t, "RELEASE SAVEPOINT s%u", t->depth);
        }
        free(t);
        return st;
    }
    if (root->gen == 0u && root->writes == 0u) {
        root_end(t); /* nothing read from the server, nothing written: nothing to send */
        return MQIM_OK;
    }
    if (!root->failed) {
        pg_cmd_t commit;
        memset(&commit, 0, sizeof(commit));
        commit.sql = "COMMIT";
        st = enqueue(t, &commit);
        if (st == MQIM_OK) {
            st = flush(t, NULL, NULL);
        }
        /* COMMIT of a transaction that failed answers ROLLBACK: flush saw
         * no error then, but the transaction is still open or gone; the
         * status of the connection tells */
        if (st == MQIM_OK && PQtransactionStatus(t->conn) != PQTRANS_IDLE) {
            st = MQIM_STORE_ERROR;
        }
    } else {
        st = MQIM_STORE_ERROR;
    }
    if (st != MQIM_OK) {
        MQIM_LOGE(LOG_MOD, "PostgreSQL: the transaction was rolled back");
        if (PQtransactionStatus(t->conn) != PQTRANS_IDLE) {
            (void)exec_ok(t->conn, "ROLLBACK", "rollback");
        }
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

/* A read the server answers: the queue goes first, in the same round trip. */
static mqim_status_t server_read(mqim_kv_txn_t *t, const char *stmt, int db, const mqim_kv_val_t *key,
                                 long limit, PGresult **out)
{
    pg_cmd_t read;
    mqim_status_t st;
    memset(&read, 0, sizeof(read));
    read.stmt = stmt;
    read.db = db;
    if (key != NULL) {
        read.key = *key;
        if (read.key.data == NULL) {
            read.key.data = (void *)(uintptr_t)"";
        }
    }
    read.val.size = (size_t)limit; /* the limit travels here (no value) */
    st = flush(t, &read, out);
    if (st == MQIM_OK && *out == NULL) {
        st = MQIM_STORE_ERROR;
    }
    if (st == MQIM_OK && !keep_result(t->root, *out)) {
        *out = NULL;
        st = MQIM_INTERNAL;
    }
    return st;
}

static mqim_status_t lookup(mqim_kv_txn_t *t, int db, const mqim_kv_val_t *key, cache_ent_t **out)
{
    mqim_kv_txn_t *root = t->root;
    cache_ent_t *ent = cache_ent(root, db, key);
    PGresult *r = NULL;
    mqim_status_t st;
    size_t idx;
    *out = NULL;
    if (ent == NULL) {
        return MQIM_INTERNAL;
    }
    if (ent->state != ENT_UNKNOWN) {
        *out = ent;
        return MQIM_OK;
    }
    idx = (size_t)(ent - root->ents);
    st = server_read(t, "get", db, key, 0, &r);
    if (st != MQIM_OK) {
        return st;
    }
    ent = &root->ents[idx]; /* (the array does not move during a read; kept for clarity) */
    if (PQntuples(r) == 0) {
        ent->state = ENT_ABSENT;
    } else {
        ent->state = ENT_PRESENT;
        value_of(r, 0, 0, &ent->val);
    }
    *out = ent;
    return MQIM_OK;
}

static mqim_status_t pg_get(mqim_kv_txn_t *t, int db, const mqim_kv_val_t *key, mqim_kv_val_t *val)
{
    cache_ent_t *ent;
    mqim_status_t st = lookup(t, db, key, &ent);
    if (st != MQIM_OK) {
        return st;
    }
    if (ent->state != ENT_PRESENT) {
        return MQIM_NOT_FOUND;
    }
    *val = ent->val;
    return MQIM_OK;
}

static mqim_status_t queue_write(mqim_kv_txn_t *t, const char *stmt, int db, cache_ent_t *ent,
                                 const mqim_kv_val_t *val)
{
    pg_cmd_t c;
    mqim_status_t st = ensure_savepoint(t);
    if (st != MQIM_OK) {
        return st;
    }
    memset(&c, 0, sizeof(c));
    c.stmt = stmt;
    c.db = db;
    c.key = ent->key;
    if (val != NULL) {
        c.val = *val;
    }
    if (!cache_set(t, ent, val != NULL ? ENT_PRESENT : ENT_ABSENT, val)) {
        return MQIM_INTERNAL;
    }
    t->root->writes++;
    return enqueue(t, &c);
}

static mqim_status_t pg_reserve(mqim_kv_txn_t *t, int db, const mqim_kv_val_t *key, size_t len,
                                unsigned flags, void **buf)
{
    /* the caller fills the buffer before its next call; the queue sends it later */
    mqim_kv_txn_t *root = t->root;
    cache_ent_t *ent = cache_ent(root, db, key);
    mqim_kv_val_t val;
    (void)flags;
    *buf = NULL;
    val.size = len;
    val.data = hold(root, NULL, len);
    if (ent == NULL || val.data == NULL) {
        return MQIM_INTERNAL;
    }
    *buf = val.data;
    return queue_write(t, "put", db, ent, &val);
}

static mqim_status_t pg_put(mqim_kv_txn_t *t, int db, const mqim_kv_val_t *key,
                            const mqim_kv_val_t *val, unsigned flags)
{
    void *buf = NULL;
    mqim_status_t st = pg_reserve(t, db, key, val->size, flags, &buf);
    if (st == MQIM_OK && val->size > 0u) {
        memcpy(buf, val->data, val->size);
    }
    return st;
}

static mqim_status_t pg_del(mqim_kv_txn_t *t, int db, const mqim_kv_val_t *key, unsigned flags)
{
    cache_ent_t *ent;
    mqim_status_t st;
    if ((flags & MQIM_KV_BLIND) != 0u) {
        ent = cache_ent(t->root, db, key);
        st = ent != NULL ? MQIM_OK : MQIM_INTERNAL;
    } else {
        st = lookup(t, db, key, &ent);
        if (st == MQIM_OK && ent->state == ENT_ABSENT) {
            return MQIM_NOT_FOUND;
        }
    }
    return st == MQIM_OK ? queue_write(t, "del", db, ent, NULL) : st;
}

static mqim_status_t pg_count(mqim_kv_txn_t *t, int db, uint64_t *entries)
{
    PGresult *r = NULL;
    mqim_status_t st = server_read(t, "count", db, NULL, 0, &r);
    *entries = 0;
    if (st == MQIM_OK && PQntuples(r) == 1 && PQgetlength(r, 0, 0) == 8) {
        const unsigned char *p = (const unsigned char *)PQgetvalue(r, 0, 0);
        for (int i = 0; i < 8; i++) {
            *entries = (*entries << 8) | p[i];
        }
    }
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
    PGresult *r = NULL;
    mqim_status_t st = server_read(c->txn, stmt, c->db, from, limit, &r);
    if (st != MQIM_OK) {
        return st;
    }
    if (PQntuples(r) == 0) {
        return MQIM_NOT_FOUND;
    }
    c->res = r;
    c->row = 0;
    c->nrows = PQntuples(r);
    c->asc = asc;
    c->short_batch = c->nrows < limit;
    c->writes_at = c->txn->root->writes;
    c->positioned = true;
    value_of(r, 0, 0, &c->key);
    if (asc) {
        mqim_kv_txn_t *root = c->txn->root;
        root->ra = r;
        root->ra_db = c->db;
        root->ra_short = c->short_batch;
        root->ra_writes = root->writes;
    }
    return MQIM_OK;
}

static int key_cmp(const mqim_kv_val_t *a, const mqim_kv_val_t *b)
{
    size_t n = a->size < b->size ? a->size : b->size;
    int c = n > 0u ? memcmp(a->data, b->data, n) : 0;
    return c != 0 ? c : (a->size < b->size ? -1 : (a->size > b->size ? 1 : 0));
}

/* A seek the last ascending batch answers (true): *st MQIM_OK (positioned)
 * or MQIM_NOT_FOUND (past a batch that held everything to the end); false
 * when the server must be asked. */
static bool seek_cached(mqim_kv_cursor_t *c, const mqim_kv_val_t *key, mqim_status_t *st)
{
    mqim_kv_txn_t *root = c->txn->root;
    mqim_kv_val_t first, k;
    int lo = 0, hi, n;
    if (root->ra == NULL || root->ra_db != c->db || root->ra_writes != root->writes) {
        return false;
    }
    n = PQntuples(root->ra);
    value_of(root->ra, 0, 0, &first);
    if (key_cmp(key, &first) < 0) {
        return false; /* before the batch: rows may lie between */
    }
    hi = n;
    while (lo < hi) { /* the first row >= key */
        int mid = lo + (hi - lo) / 2;
        value_of(root->ra, mid, 0, &k);
        if (key_cmp(&k, key) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == n) {
        *st = MQIM_NOT_FOUND;
        return root->ra_short;
    }
    c->res = root->ra;
    c->row = lo;
    c->nrows = n;
    c->asc = true;
    c->short_batch = root->ra_short;
    c->writes_at = root->writes;
    c->positioned = true;
    value_of(c->res, lo, 0, &c->key);
    *st = MQIM_OK;
    return true;
}

/* The next row in the batch's direction, without a round trip when the
 * batch is still what the database holds. */
static mqim_status_t step(mqim_kv_cursor_t *c, bool asc)
{
    bool fresh = c->positioned && c->res != NULL && c->asc == asc &&
                 c->writes_at == c->txn->root->writes;
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
        if (!seek_cached(c, key, &st)) {
            /* a reader (the outbox pump) reads on: a larger batch */
            st = fetch(c, "ge", key, true, c->txn->write ? PG_FIRST_BATCH : PG_BATCH);
        }
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
