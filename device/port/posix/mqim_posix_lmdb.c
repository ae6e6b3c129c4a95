/* LMDB outbox and device state (mqim_posix_lmdb.h). Every write is its own
 * synced transaction: a device sends a handful of messages, and each must
 * survive a power cut once put() returned. */
#include "mqim_posix_lmdb.h"

#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct mqim_lmdb_store {
    MDB_env *env;
    MDB_dbi outbox;
    MDB_dbi meta;
    MDB_dbi e2e; /* this device's private key and the keys it trusts (e2e.h) */
};

static const char next_key_name[] = "next_key";
static const char state_name[] = "state";

static void be32_put(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t be32_get(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static mqim_status_t map_rc(int rc)
{
    return rc == 0                ? MQIM_OK
           : rc == MDB_NOTFOUND   ? MQIM_NOT_FOUND
           : rc == MDB_MAP_FULL   ? MQIM_OUTBOX_FULL
           : rc == MDB_TXN_FULL   ? MQIM_OUTBOX_FULL
                                  : MQIM_STORE_ERROR;
}

mqim_status_t mqim_lmdb_store_open(const char *dir, size_t map_size, mqim_lmdb_store_t **out)
{
    mqim_lmdb_store_t *s = calloc(1, sizeof(*s)); /* once per process, not in a core path */
    MDB_txn *txn = NULL;
    int rc;
    if (s == NULL) {
        return MQIM_STORE_ERROR;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        free(s);
        return MQIM_STORE_ERROR;
    }
    rc = mdb_env_create(&s->env);
    if (rc == 0) {
        rc = mdb_env_set_maxdbs(s->env, 3);
    }
    if (rc == 0 && map_size > 0u) {
        rc = mdb_env_set_mapsize(s->env, map_size);
    }
    if (rc == 0) {
        rc = mdb_env_open(s->env, dir, 0, 0600);
    }
    if (rc == 0) {
        rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    }
    if (rc == 0) {
        rc = mdb_dbi_open(txn, "outbox", MDB_CREATE, &s->outbox);
    }
    if (rc == 0) {
        rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta);
    }
    if (rc == 0) {
        rc = mdb_dbi_open(txn, "e2e", MDB_CREATE, &s->e2e);
    }
    if (rc == 0) {
        rc = mdb_txn_commit(txn);
        txn = NULL;
    }
    if (rc != 0) {
        if (txn != NULL) {
            mdb_txn_abort(txn);
        }
        if (s->env != NULL) {
            mdb_env_close(s->env);
        }
        free(s);
        return MQIM_STORE_ERROR;
    }
    *out = s;
    return MQIM_OK;
}

void mqim_lmdb_store_close(mqim_lmdb_store_t *s)
{
    if (s != NULL) {
        mdb_env_close(s->env);
        free(s);
    }
}

static mqim_status_t lmdb_put(void *ctx, const uint8_t *rec, size_t len, uint32_t *key)
{
    mqim_lmdb_store_t *s = ctx;
    MDB_txn *txn = NULL;
    MDB_val k = { sizeof(next_key_name) - 1u, (void *)(uintptr_t)next_key_name }, v;
    uint8_t kb[4];
    uint32_t next = 1;
    int rc;
    if (s == NULL || key == NULL || (rec == NULL && len > 0u)) {
        return MQIM_BAD_PARAMETER;
    }
    rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0) {
        return map_rc(rc);
    }
    /* A persistent counter, so keys are never reused even after the outbox
     * was emptied (an old ack can never remove a new entry). */
    rc = mdb_get(txn, s->meta, &k, &v);
    if (rc == 0 && v.mv_size == 4u) {
        next = be32_get(v.mv_data);
    } else if (rc == MDB_NOTFOUND) {
        rc = 0;
    }
    if (rc == 0 && next == 0u) {
        rc = MDB_MAP_FULL; /* 2^32 - 1 messages: treat the key space as full */
    }
    if (rc == 0) {
        MDB_val ok = { 4, kb }, ov = { len, (void *)(uintptr_t)rec };
        be32_put(kb, next);
        rc = mdb_put(txn, s->outbox, &ok, &ov, MDB_APPEND);
    }
    if (rc == 0) {
        uint8_t nb[4];
        MDB_val nv = { 4, nb };
        be32_put(nb, next + 1u);
        rc = mdb_put(txn, s->meta, &k, &nv, 0);
    }
    if (rc == 0) {
        rc = mdb_txn_commit(txn);
    } else {
        mdb_txn_abort(txn);
    }
    if (rc == 0) {
        *key = next;
    }
    return map_rc(rc);
}

static mqim_status_t lmdb_peek(void *ctx, uint32_t after, uint32_t *key, uint8_t *buf, size_t cap,
                               size_t *len)
{
    mqim_lmdb_store_t *s = ctx;
    MDB_txn *txn = NULL;
    MDB_cursor *c = NULL;
    uint8_t kb[4];
    MDB_val k = { 4, kb }, v;
    mqim_status_t st;
    int rc;
    if (s == NULL || key == NULL || len == NULL || (buf == NULL && cap > 0u)) {
        return MQIM_BAD_PARAMETER;
    }
    if (after == UINT32_MAX) {
        return MQIM_NOT_FOUND;
    }
    be32_put(kb, after + 1u);
    rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0) {
        rc = mdb_cursor_open(txn, s->outbox, &c);
    }
    if (rc == 0) {
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    }
    st = map_rc(rc);
    if (st == MQIM_OK && k.mv_size != 4u) {
        st = MQIM_STORE_ERROR;
    }
    if (st == MQIM_OK) {
        *key = be32_get(k.mv_data);
        *len = v.mv_size;
        if (v.mv_size > cap) {
            st = MQIM_BUFFER_TOO_SMALL;
        } else if (v.mv_size > 0u) {
            memcpy(buf, v.mv_data, v.mv_size);
        }
    }
    if (c != NULL) {
        mdb_cursor_close(c);
    }
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    return st == MQIM_OUTBOX_FULL ? MQIM_STORE_ERROR : st;
}

static mqim_status_t lmdb_remove(void *ctx, uint32_t key)
{
    mqim_lmdb_store_t *s = ctx;
    MDB_txn *txn = NULL;
    uint8_t kb[4];
    MDB_val k = { 4, kb };
    int rc;
    if (s == NULL || key == 0u) {
        return MQIM_BAD_PARAMETER;
    }
    be32_put(kb, key);
    rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc == 0) {
        rc = mdb_del(txn, s->outbox, &k, NULL);
        if (rc == 0) {
            rc = mdb_txn_commit(txn);
        } else {
            mdb_txn_abort(txn);
        }
    }
    return map_rc(rc);
}

size_t mqim_lmdb_outbox_count(mqim_lmdb_store_t *s)
{
    MDB_txn *txn = NULL;
    MDB_stat st;
    size_t n = 0;
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) == 0) {
        if (mdb_stat(txn, s->outbox, &st) == 0) {
            n = st.ms_entries;
        }
        mdb_txn_abort(txn);
    }
    return n;
}

/* State record: u32 epoch, u64 last_seq, then u64 store_epoch, big-endian
 * (20 bytes; a 12-byte record from before store epochs reads store_epoch 0). */
static mqim_status_t lmdb_state_load(void *ctx, mqim_device_state_t *state)
{
    mqim_lmdb_store_t *s = ctx;
    MDB_txn *txn = NULL;
    MDB_val k = { sizeof(state_name) - 1u, (void *)(uintptr_t)state_name }, v;
    int rc;
    if (s == NULL || state == NULL) {
        return MQIM_BAD_PARAMETER;
    }
    memset(state, 0, sizeof(*state));
    rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0) {
        return MQIM_STORE_ERROR;
    }
    rc = mdb_get(txn, s->meta, &k, &v);
    if (rc == 0 && (v.mv_size == 12u || v.mv_size == 20u)) {
        const uint8_t *p = v.mv_data;
        state->epoch = be32_get(p);
        state->last_seq = ((uint64_t)be32_get(p + 4) << 32) | be32_get(p + 8);
        if (v.mv_size == 20u) {
            state->store_epoch = ((uint64_t)be32_get(p + 12) << 32) | be32_get(p + 16);
        }
    } else if (rc == 0) {
        rc = MDB_CORRUPTED;
    }
    mdb_txn_abort(txn);
    return rc == 0 || rc == MDB_NOTFOUND ? MQIM_OK : MQIM_STORE_ERROR;
}

static mqim_status_t lmdb_state_save(void *ctx, const mqim_device_state_t *state)
{
    mqim_lmdb_store_t *s = ctx;
    MDB_txn *txn = NULL;
    uint8_t b[20];
    MDB_val k = { sizeof(state_name) - 1u, (void *)(uintptr_t)state_name }, v = { 20, b };
    int rc;
    if (s == NULL || state == NULL) {
        return MQIM_BAD_PARAMETER;
    }
    be32_put(b, state->epoch);
    be32_put(b + 4, (uint32_t)(state->last_seq >> 32));
    be32_put(b + 8, (uint32_t)state->last_seq);
    be32_put(b + 12, (uint32_t)(state->store_epoch >> 32));
    be32_put(b + 16, (uint32_t)state->store_epoch);
    rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc == 0) {
        rc = mdb_put(txn, s->meta, &k, &v, 0);
        rc = rc == 0 ? mdb_txn_commit(txn) : (mdb_txn_abort(txn), rc);
    }
    return rc == MDB_MAP_FULL ? MQIM_STORE_FULL : (rc == 0 ? MQIM_OK : MQIM_STORE_ERROR);
}

const mqim_outbox_ops_t mqim_lmdb_outbox_ops = { lmdb_put, lmdb_peek, lmdb_remove };
const mqim_state_ops_t mqim_lmdb_state_ops = { lmdb_state_load, lmdb_state_save };

/* ---- E2E store (mqim/e2e.h) ----------------------------------------------
 * In the "e2e" database: "identity" -> the 32-byte private key; "t" user
 * NUL device -> a trusted 32-byte public key. One synced write each, like
 * everything here: a key pair once published must survive a power cut. */
static const char identity_name[] = "identity";

static mqim_status_t e2e_get(mqim_lmdb_store_t *s, MDB_val *k, uint8_t out[MQIM_E2E_KEY_LEN])
{
    MDB_txn *txn = NULL;
    MDB_val v;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0) {
        return MQIM_STORE_ERROR;
    }
    rc = mdb_get(txn, s->e2e, k, &v);
    if (rc == 0 && v.mv_size == MQIM_E2E_KEY_LEN) {
        memcpy(out, v.mv_data, MQIM_E2E_KEY_LEN);
    } else if (rc == 0) {
        rc = MDB_CORRUPTED;
    }
    mdb_txn_abort(txn);
    return rc == 0 ? MQIM_OK : rc == MDB_NOTFOUND ? MQIM_NOT_FOUND : MQIM_STORE_ERROR;
}

static mqim_status_t e2e_put(mqim_lmdb_store_t *s, MDB_val *k, const uint8_t in[MQIM_E2E_KEY_LEN])
{
    MDB_txn *txn = NULL;
    MDB_val v = { MQIM_E2E_KEY_LEN, (void *)(uintptr_t)in };
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc == 0) {
        rc = mdb_put(txn, s->e2e, k, &v, 0);
        rc = rc == 0 ? mdb_txn_commit(txn) : (mdb_txn_abort(txn), rc);
    }
    return rc == MDB_MAP_FULL ? MQIM_STORE_FULL : (rc == 0 ? MQIM_OK : MQIM_STORE_ERROR);
}

/* "t" user NUL device: names never hold a NUL, so the key is unambiguous. */
static size_t trust_key(char *buf, mqim_str_t user, mqim_str_t device)
{
    buf[0] = 't';
    memcpy(buf + 1, user.ptr, user.len);
    buf[1 + user.len] = '\0';
    memcpy(buf + 2 + user.len, device.ptr, device.len);
    return 2u + user.len + device.len;
}

static mqim_status_t lmdb_identity_load(void *ctx, uint8_t sk[MQIM_E2E_KEY_LEN])
{
    MDB_val k = { sizeof(identity_name) - 1u, (void *)(uintptr_t)identity_name };
    return ctx == NULL ? MQIM_BAD_PARAMETER : e2e_get(ctx, &k, sk);
}

static mqim_status_t lmdb_identity_save(void *ctx, const uint8_t sk[MQIM_E2E_KEY_LEN])
{
    MDB_val k = { sizeof(identity_name) - 1u, (void *)(uintptr_t)identity_name };
    return ctx == NULL ? MQIM_BAD_PARAMETER : e2e_put(ctx, &k, sk);
}

/* The key of a trust record, or MQIM_BAD_PARAMETER for names that cannot be one. */
static mqim_status_t trust_lookup(void *ctx, mqim_str_t user, mqim_str_t device, char *kb, MDB_val *k)
{
    if (ctx == NULL || user.len > MQIM_USER_NAME_MAX || device.len > MQIM_DEVICE_NAME_MAX) {
        return MQIM_BAD_PARAMETER;
    }
    k->mv_size = trust_key(kb, user, device);
    k->mv_data = kb;
    return MQIM_OK;
}

static mqim_status_t lmdb_trust_get(void *ctx, mqim_str_t user, mqim_str_t device,
                                    uint8_t pk[MQIM_E2E_KEY_LEN])
{
    char kb[2u + MQIM_USER_NAME_MAX + MQIM_DEVICE_NAME_MAX];
    MDB_val k;
    mqim_status_t st = trust_lookup(ctx, user, device, kb, &k);
    return st != MQIM_OK ? st : e2e_get(ctx, &k, pk);
}

static mqim_status_t lmdb_trust_put(void *ctx, mqim_str_t user, mqim_str_t device,
                                    const uint8_t pk[MQIM_E2E_KEY_LEN])
{
    char kb[2u + MQIM_USER_NAME_MAX + MQIM_DEVICE_NAME_MAX];
    MDB_val k;
    mqim_status_t st = trust_lookup(ctx, user, device, kb, &k);
    return st != MQIM_OK ? st : e2e_put(ctx, &k, pk);
}

const mqim_e2e_store_ops_t mqim_lmdb_e2e_ops = { lmdb_identity_load, lmdb_identity_save, lmdb_trust_get,
                                                 lmdb_trust_put };

mqim_status_t mqim_lmdb_e2e_list(mqim_lmdb_store_t *s,
                                 void (*fn)(void *ctx, mqim_str_t user, mqim_str_t device,
                                            const uint8_t pk[MQIM_E2E_KEY_LEN]),
                                 void *ctx)
{
    MDB_txn *txn = NULL;
    MDB_cursor *c = NULL;
    MDB_val k, v;
    int rc;
    if (s == NULL || fn == NULL) {
        return MQIM_BAD_PARAMETER;
    }
    rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0) {
        rc = mdb_cursor_open(txn, s->e2e, &c);
    }
    for (int op = MDB_FIRST; rc == 0; op = MDB_NEXT) {
        const char *p, *nul;
        rc = mdb_cursor_get(c, &k, &v, (MDB_cursor_op)op);
        if (rc != 0) {
            break;
        }
        p = k.mv_data;
        nul = k.mv_size > 1u ? memchr(p + 1, '\0', k.mv_size - 1u) : NULL;
        if (p[0] != 't' || nul == NULL || v.mv_size != MQIM_E2E_KEY_LEN) {
            continue; /* the identity, or not a trust record */
        }
        fn(ctx, (mqim_str_t){ p + 1, (size_t)(nul - (p + 1)) },
           (mqim_str_t){ nul + 1, k.mv_size - (size_t)(nul + 1 - p) }, v.mv_data);
    }
    if (c != NULL) {
        mdb_cursor_close(c);
    }
    if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    return rc == MDB_NOTFOUND ? MQIM_OK : MQIM_STORE_ERROR;
}
