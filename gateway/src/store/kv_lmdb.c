/**
 * @file kv_lmdb.c
 * @brief The LMDB store engine (kv.h): the default, embedded.
 *
 * Transactions and cursors are LMDB's own handles cast to the interface's
 * opaque types (no allocation per transaction); the environment's user
 * context leads from a transaction back to the database handles.
 */
#include "kv.h"

#include <errno.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

#define LOG_MOD "store"
#define KV_LMDB_DBS_MAX 32

typedef struct kv_lmdb {
    mqim_kv_t base;
    MDB_env *env;
    int ndbs;
    MDB_dbi dbi[KV_LMDB_DBS_MAX];
} kv_lmdb_t;

static MDB_txn *T(mqim_kv_txn_t *txn)
{
    return (MDB_txn *)(void *)txn;
}

static MDB_dbi D(mqim_kv_txn_t *txn, int db)
{
    const kv_lmdb_t *kv = mdb_env_get_userctx(mdb_txn_env(T(txn)));
    return kv->dbi[db];
}

static mqim_status_t map_rc(int rc, const char *what)
{
    mqim_status_t st = MQIM_OK;
    if (rc == MDB_SUCCESS) {
        st = MQIM_OK;
    } else if (rc == MDB_NOTFOUND) {
        st = MQIM_NOT_FOUND;
    } else if (rc == MDB_MAP_FULL || rc == MDB_TXN_FULL) {
        st = MQIM_STORE_FULL;
    } else if (rc == ENOSPC || rc == EDQUOT || rc == EFBIG) {
        /* The disk (or a quota, or a file size limit), not the map: the
         * operator frees disk space, not map_size_mb. */
        st = MQIM_DISK_FULL;
    } else {
        MQIM_LOGE(LOG_MOD, "%s: %s", what, mdb_strerror(rc));
        st = MQIM_STORE_ERROR;
    }
    return st;
}

static MDB_val mval(const mqim_kv_val_t *v)
{
    MDB_val m = { v->size, v->data };
    return m;
}

static void kval(const MDB_val *m, mqim_kv_val_t *v)
{
    v->size = m->mv_size;
    v->data = m->mv_data;
}

static mqim_status_t lmdb_open(const mqim_kv_open_args_t *a, mqim_kv_t **out)
{
    kv_lmdb_t *kv;
    mqim_status_t st = MQIM_STORE_ERROR;
    int rc;
    if (a->ndbs > KV_LMDB_DBS_MAX || a->dir == NULL) {
        return MQIM_BAD_PARAMETER;
    }
    kv = calloc(1, sizeof(*kv));
    if (kv == NULL) {
        return MQIM_INTERNAL;
    }
    kv->base.engine = &mqim_kv_lmdb;
    kv->ndbs = a->ndbs;
    if (!a->read_only && mkdir(a->dir, 0700) != 0 && errno != EEXIST) {
        MQIM_LOGE(LOG_MOD, "cannot create %s: %s", a->dir, strerror(errno));
        free(kv);
        return MQIM_STORE_ERROR;
    }
    rc = mdb_env_create(&kv->env);
    if (rc == 0) {
        rc = mdb_env_set_maxdbs(kv->env, (MDB_dbi)a->ndbs);
    }
    if (rc == 0 && a->map_size > 0u) {
        rc = mdb_env_set_mapsize(kv->env, a->map_size);
    }
    if (rc == 0) {
        rc = mdb_env_set_userctx(kv->env, kv);
    }
    if (rc == 0) {
        /* NOTLS: read transactions may be used from the pump thread while the
         * inbound thread writes; each transaction stays on one thread anyway. */
        rc = mdb_env_open(kv->env, a->dir, MDB_NOTLS | (a->read_only ? MDB_RDONLY : 0u), 0600);
    }
    if (rc == 0) {
        MDB_txn *t = NULL;
        rc = mdb_txn_begin(kv->env, NULL, a->read_only ? MDB_RDONLY : 0u, &t);
        for (int i = 0; rc == 0 && i < a->ndbs; i++) {
            rc = mdb_dbi_open(t, a->dbs[i], a->read_only ? 0u : MDB_CREATE, &kv->dbi[i]);
            if (rc == MDB_NOTFOUND && a->read_only && i >= a->first_optional) {
                st = MQIM_UNSUPPORTED;
            }
        }
        if (rc == 0) {
            rc = mdb_txn_commit(t);
        } else if (t != NULL) {
            mdb_txn_abort(t);
        }
    }
    if (rc != 0) {
        if (st != MQIM_UNSUPPORTED) {
            MQIM_LOGE(LOG_MOD, "cannot open LMDB environment %s: %s", a->dir, mdb_strerror(rc));
        }
        if (kv->env != NULL) {
            mdb_env_close(kv->env);
        }
        free(kv);
        return st;
    }
    *out = &kv->base;
    return MQIM_OK;
}

static void lmdb_close(mqim_kv_t *base)
{
    kv_lmdb_t *kv = (kv_lmdb_t *)(void *)base;
    if (kv != NULL) {
        mdb_env_close(kv->env);
        free(kv);
    }
}

static mqim_status_t lmdb_txn_begin(mqim_kv_t *base, mqim_kv_txn_t *parent, mqim_kv_txn_kind_t kind,
                                    mqim_kv_txn_t **out)
{
    kv_lmdb_t *kv = (kv_lmdb_t *)(void *)base;
    unsigned flags = 0;
    MDB_txn *t = NULL;
    int rc;
    if (parent == NULL && kind == MQIM_KV_READ) {
        flags = MDB_RDONLY;
    } else if (parent == NULL && kind == MQIM_KV_WRITE_LAZY) {
        /* NOMETASYNC, not NOSYNC: data pages are still flushed before the
         * meta page is written, so a power loss can lose this commit but
         * never leave a meta page pointing at unwritten pages. */
        flags = MDB_NOMETASYNC;
    }
    rc = mdb_txn_begin(kv->env, parent != NULL ? T(parent) : NULL, flags, &t);
    *out = (mqim_kv_txn_t *)(void *)t;
    return map_rc(rc, parent != NULL ? "nested txn begin" : "txn begin");
}

static mqim_status_t lmdb_txn_commit(mqim_kv_txn_t *txn)
{
    return map_rc(mdb_txn_commit(T(txn)), "commit");
}

static void lmdb_txn_abort(mqim_kv_txn_t *txn)
{
    mdb_txn_abort(T(txn));
}

static mqim_status_t lmdb_get(mqim_kv_txn_t *txn, int db, const mqim_kv_val_t *key, mqim_kv_val_t *val)
{
    MDB_val k = mval(key);
    MDB_val v;
    int rc = mdb_get(T(txn), D(txn, db), &k, &v);
    if (rc == 0) {
        kval(&v, val);
    }
    return map_rc(rc, "get");
}

static unsigned put_flags(unsigned flags)
{
    return (flags & MQIM_KV_APPEND) != 0u ? MDB_APPEND : 0u;
}

static mqim_status_t lmdb_put(mqim_kv_txn_t *txn, int db, const mqim_kv_val_t *key,
                              const mqim_kv_val_t *val, unsigned flags)
{
    MDB_val k = mval(key);
    MDB_val v = mval(val);
    return map_rc(mdb_put(T(txn), D(txn, db), &k, &v, put_flags(flags)), "put");
}

static mqim_status_t lmdb_reserve(mqim_kv_txn_t *txn, int db, const mqim_kv_val_t *key, size_t len,
                                  unsigned flags, void **buf)
{
    /* Reserve in the map and let the caller write in place: one copy, no
     * temporary buffer. */
    MDB_val k = mval(key);
    MDB_val v = { len, NULL };
    int rc = mdb_put(T(txn), D(txn, db), &k, &v, MDB_RESERVE | put_flags(flags));
    *buf = v.mv_data;
    return map_rc(rc, "put");
}

static mqim_status_t lmdb_del(mqim_kv_txn_t *txn, int db, const mqim_kv_val_t *key, unsigned flags)
{
    MDB_val k = mval(key);
    mqim_status_t st = map_rc(mdb_del(T(txn), D(txn, db), &k, NULL), "del");
    return (st == MQIM_NOT_FOUND && (flags & MQIM_KV_BLIND) != 0u) ? MQIM_OK : st;
}

static mqim_status_t lmdb_cursor_open(mqim_kv_txn_t *txn, int db, mqim_kv_cursor_t **out)
{
    MDB_cursor *c = NULL;
    int rc = mdb_cursor_open(T(txn), D(txn, db), &c);
    *out = (mqim_kv_cursor_t *)(void *)c;
    return map_rc(rc, "cursor");
}

static mqim_status_t lmdb_cursor_get(mqim_kv_cursor_t *c, mqim_kv_val_t *key, mqim_kv_val_t *val,
                                     mqim_kv_op_t op)
{
    static const MDB_cursor_op ops[] = { MDB_FIRST, MDB_LAST, MDB_NEXT, MDB_PREV, MDB_SET_RANGE };
    MDB_val k = { 0, NULL };
    MDB_val v = { 0, NULL };
    int rc;
    if (op == MQIM_KV_SET_RANGE) {
        k = mval(key);
    }
    rc = mdb_cursor_get((MDB_cursor *)(void *)c, &k, &v, ops[op]);
    if (rc == 0) {
        kval(&k, key);
        kval(&v, val);
    }
    return map_rc(rc, "cursor get");
}

static void lmdb_cursor_close(mqim_kv_cursor_t *c)
{
    mdb_cursor_close((MDB_cursor *)(void *)c);
}

static mqim_status_t lmdb_count(mqim_kv_txn_t *txn, int db, uint64_t *entries)
{
    MDB_stat st;
    int rc = mdb_stat(T(txn), D(txn, db), &st);
    *entries = rc == 0 ? st.ms_entries : 0u;
    return map_rc(rc, "stat");
}

static mqim_status_t lmdb_space(mqim_kv_t *base, uint64_t *used, uint64_t *limit)
{
    kv_lmdb_t *kv = (kv_lmdb_t *)(void *)base;
    MDB_envinfo info;
    MDB_stat est;
    *used = 0;
    *limit = 0;
    if (mdb_env_info(kv->env, &info) == 0 && mdb_env_stat(kv->env, &est) == 0) {
        *used = (uint64_t)(info.me_last_pgno + 1u) * est.ms_psize;
        *limit = info.me_mapsize;
    }
    return MQIM_OK;
}

static mqim_status_t lmdb_copy(mqim_kv_t *base, const char *dir)
{
    kv_lmdb_t *kv = (kv_lmdb_t *)(void *)base;
    int rc = mdb_env_copy2(kv->env, dir, MDB_CP_COMPACT);
    if (rc != 0) {
        MQIM_LOGE(LOG_MOD, "cannot copy the store to %s: %s", dir, mdb_strerror(rc));
        return rc == ENOSPC ? MQIM_DISK_FULL : MQIM_STORE_ERROR;
    }
    return MQIM_OK;
}

const mqim_kv_engine_t mqim_kv_lmdb = {
    .name = "lmdb",
    .open = lmdb_open,
    .close = lmdb_close,
    .txn_begin = lmdb_txn_begin,
    .txn_commit = lmdb_txn_commit,
    .txn_abort = lmdb_txn_abort,
    .get = lmdb_get,
    .put = lmdb_put,
    .reserve = lmdb_reserve,
    .del = lmdb_del,
    .cursor_open = lmdb_cursor_open,
    .cursor_get = lmdb_cursor_get,
    .cursor_close = lmdb_cursor_close,
    .count = lmdb_count,
    .space = lmdb_space,
    .copy = lmdb_copy,
};
