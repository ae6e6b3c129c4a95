/* LMDB implementation of store.h. One environment, one named database per
 * kind of record. Fixed-size records are stored in host byte order (the
 * environment is local to one machine); keys that must sort numerically use
 * big-endian u64. */
#include "store.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "kv.h"
#include "log.h"
#include "mqim/limits.h"
#include "mqim/sha256.h"

#define LOG_MOD "store"

enum { DB_META, DB_USERS, DB_MSGS, DB_INBOX, DB_CHATS, DB_DEDUPE, DB_CURSORS, DB_DEVICES,
       DB_OUTBOX, DB_GROUPS, DB_MEMBERS, DB_MEMBERSHIPS, DB_RECEIPTS, DB_FILES, DB_CHUNKS,
       DB_UPLOADS, DB_FILE_ACCESS, DB_GINDEX, DB_PRUNED, DB_KEYS, DB_EPOCHS, DB_FORKS, DB_COUNT_ };

static const char *const db_names[DB_COUNT_] = {
    "meta", "users", "msgs", "inbox", "chats", "dedupe", "cursors", "devices", "outbox",
    "groups", "members", "memberships", "receipts", "files", "chunks", "uploads", "file_access",
    "gindex", "pruned", "keys", "epochs", "forks"
};

/* Databases a store of format 1 lacks (a read-only open cannot create them). */
#define DB_FIRST_OF_V2 DB_EPOCHS

struct mqim_store {
    mqim_kv_t *kv; /* the engine (kv.h): LMDB or PostgreSQL */
    mqim_store_engine_t engine;
    /* Group commit: while a batch is open, every transaction the batch's
     * thread begins is a nested transaction of it (see mqim_store_batch_begin). */
    mqim_kv_txn_t *batch;
    pthread_t batch_thread;
    mqim_store_identity_t identity; /* read (and made, upgraded) at open */
    mqim_status_t scan_failure;     /* test seam: every prefix scan fails with it (mqim_store_fail_scans) */
};

/* Keys are built in a stack buffer: two names, separators and a seq. */
#define KEY_MAX (MQIM_USER_NAME_MAX * 2u + MQIM_ID_MAX + 32u)

typedef struct keybuf {
    unsigned char b[KEY_MAX];
    size_t len;
} keybuf_t;

static void key_str(keybuf_t *k, mqim_str_t s)
{
    size_t n = s.len;
    if (n > KEY_MAX - k->len) {
        n = KEY_MAX - k->len; /* callers validate names first; truncation cannot happen */
    }
    if (n > 0u) {
        memcpy(k->b + k->len, s.ptr, n);
    }
    k->len += n;
}

static void key_sep(keybuf_t *k)
{
    if (k->len < KEY_MAX) {
        k->b[k->len++] = 0u;
    }
}

static void be64_put(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xffu);
        v >>= 8;
    }
}

static uint64_t be64_get(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

static void key_u64(keybuf_t *k, uint64_t v)
{
    if (k->len + 8u <= KEY_MAX) {
        be64_put(k->b + k->len, v);
        k->len += 8u;
    }
}

static mqim_kv_txn_t *T(mqim_txn_t *txn)
{
    return (mqim_kv_txn_t *)txn->impl;
}

static const mqim_kv_engine_t *E(const mqim_txn_t *txn)
{
    return txn->store->kv->engine;
}

static mqim_status_t kv_cursor_open(mqim_txn_t *txn, int db, mqim_kv_cursor_t **c)
{
    return E(txn)->cursor_open(T(txn), db, c);
}

static mqim_status_t kv_cursor_get(mqim_txn_t *txn, mqim_kv_cursor_t *c, mqim_kv_val_t *key,
                                   mqim_kv_val_t *val, mqim_kv_op_t op)
{
    return E(txn)->cursor_get(c, key, val, op);
}

static void kv_cursor_close(mqim_txn_t *txn, mqim_kv_cursor_t *c)
{
    E(txn)->cursor_close(c);
}

/* The engines report statuses already (and log store errors). */
static mqim_status_t map_rc(mqim_status_t rc, const char *what)
{
    (void)what;
    return rc;
}

static void identity_read(mqim_txn_t *txn, mqim_store_identity_t *id);
static mqim_status_t identity_setup(mqim_store_t *s, const char *dir);

static const mqim_kv_engine_t *engine_of(mqim_store_engine_t e)
{
    return e == MQIM_STORE_POSTGRESQL ? mqim_kv_postgresql : &mqim_kv_lmdb;
}

mqim_status_t mqim_store_open_config(const mqim_store_config_t *cfg, bool read_only,
                                     mqim_store_t **out)
{
    const mqim_kv_engine_t *engine = engine_of(cfg->engine);
    const char *where = cfg->engine == MQIM_STORE_POSTGRESQL ? "the PostgreSQL store" : cfg->dir;
    mqim_kv_open_args_t args = {
        .dir = cfg->dir, .map_size = cfg->map_size, .dsn = cfg->dsn, .dbs = db_names,
        .ndbs = DB_COUNT_, .first_optional = DB_FIRST_OF_V2, .read_only = read_only
    };
    mqim_store_t *s;
    mqim_status_t st;
    if (engine == NULL) {
        MQIM_LOGE(LOG_MOD, "this mqim-gateway was built without PostgreSQL (libpq-dev)");
        return MQIM_UNSUPPORTED;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return MQIM_INTERNAL;
    }
    s->engine = cfg->engine;
    st = engine->open(&args, &s->kv);
    if (st == MQIM_UNSUPPORTED) {
        MQIM_LOGE(LOG_MOD, "the store in %s has format 1: start the gateway (or run any "
                  "command that writes) once to upgrade it", where);
    }
    if (st == MQIM_OK && read_only) {
        mqim_txn_t txn;
        st = mqim_txn_begin(s, MQIM_TXN_READ, &txn);
        if (st == MQIM_OK) {
            identity_read(&txn, &s->identity);
            mqim_txn_abort(&txn);
            if (s->identity.schema > MQIM_STORE_SCHEMA) {
                MQIM_LOGE(LOG_MOD, "the store in %s has format %" PRIu64 ", newer than this "
                          "mqim-gateway's (%u)", where, s->identity.schema, MQIM_STORE_SCHEMA);
                st = MQIM_UNSUPPORTED;
            }
        }
    } else if (st == MQIM_OK) {
        st = identity_setup(s, where);
    }
    if (st != MQIM_OK) {
        if (s->kv != NULL) {
            s->kv->engine->close(s->kv);
        }
        free(s);
        return st;
    }
    *out = s;
    return MQIM_OK;
}

mqim_status_t mqim_store_open(const char *dir, size_t map_size, bool read_only, mqim_store_t **out)
{
    mqim_store_config_t cfg = { .engine = MQIM_STORE_LMDB, .dir = dir, .map_size = map_size };
    return mqim_store_open_config(&cfg, read_only, out);
}

void mqim_store_close(mqim_store_t *store)
{
    if (store != NULL) {
        store->kv->engine->close(store->kv);
        free(store);
    }
}

mqim_store_engine_t mqim_store_engine(const mqim_store_t *store)
{
    return store->engine;
}

mqim_status_t mqim_txn_begin(mqim_store_t *store, mqim_txn_mode_t mode, mqim_txn_t *txn)
{
    const mqim_kv_engine_t *e = store->kv->engine;
    mqim_kv_txn_t *t = NULL;
    mqim_status_t st;
    txn->store = store;
    if (store->batch != NULL && pthread_equal(store->batch_thread, pthread_self())) {
        /* Inside a batch: a child of the batch's transaction. Its commit
         * merges into the batch (no fsync); its abort undoes only its own
         * writes. A read becomes a child too (aborted by the caller), so it
         * sees what the batch wrote so far. */
        st = e->txn_begin(store->kv, store->batch, MQIM_KV_WRITE, &t);
        txn->impl = st == MQIM_OK ? t : NULL;
        txn->write = true;
        return st;
    }
    st = e->txn_begin(store->kv, NULL,
                      mode == MQIM_TXN_READ ? MQIM_KV_READ
                      : mode == MQIM_TXN_WRITE_LAZY ? MQIM_KV_WRITE_LAZY : MQIM_KV_WRITE, &t);
    txn->impl = st == MQIM_OK ? t : NULL;
    txn->write = mode != MQIM_TXN_READ;
    return st;
}

mqim_status_t mqim_txn_commit(mqim_txn_t *txn)
{
    mqim_status_t st = E(txn)->txn_commit(T(txn));
    txn->impl = NULL;
    return st;
}

mqim_status_t mqim_store_batch_begin(mqim_store_t *store, mqim_txn_t *batch)
{
    mqim_kv_txn_t *t = NULL;
    mqim_status_t st;
    if (store->batch != NULL) {
        return MQIM_INTERNAL;
    }
    st = store->kv->engine->txn_begin(store->kv, NULL, MQIM_KV_WRITE, &t);
    batch->store = store;
    batch->impl = st == MQIM_OK ? t : NULL;
    batch->write = true;
    if (st == MQIM_OK) {
        store->batch_thread = pthread_self();
        store->batch = t;
    }
    return st;
}

mqim_status_t mqim_store_batch_commit(mqim_txn_t *batch)
{
    batch->store->batch = NULL;
    return mqim_txn_commit(batch);
}

void mqim_store_batch_abort(mqim_txn_t *batch)
{
    batch->store->batch = NULL;
    mqim_txn_abort(batch);
}

void mqim_txn_abort(mqim_txn_t *txn)
{
    if (txn->impl != NULL) {
        E(txn)->txn_abort(T(txn));
        txn->impl = NULL;
    }
}

static mqim_kv_val_t kval(const keybuf_t *k)
{
    mqim_kv_val_t v = { k->len, (void *)(uintptr_t)k->b };
    return v;
}

static mqim_status_t db_get(mqim_txn_t *txn, int db, keybuf_t *k, mqim_kv_val_t *val)
{
    mqim_kv_val_t key = kval(k);
    return E(txn)->get(T(txn), db, &key, val);
}

static mqim_status_t db_put(mqim_txn_t *txn, int db, keybuf_t *k, const void *data, size_t len)
{
    mqim_kv_val_t key = kval(k);
    mqim_kv_val_t val = { len, (void *)(uintptr_t)data };
    return E(txn)->put(T(txn), db, &key, &val, 0u);
}

static mqim_status_t db_reserve(mqim_txn_t *txn, int db, keybuf_t *k, size_t len, unsigned flags,
                                unsigned char **buf)
{
    mqim_kv_val_t key = kval(k);
    void *p = NULL;
    mqim_status_t st = E(txn)->reserve(T(txn), db, &key, len, flags, &p);
    *buf = p;
    return st;
}

static mqim_status_t db_del_flags(mqim_txn_t *txn, int db, keybuf_t *k, unsigned flags)
{
    mqim_kv_val_t key = kval(k);
    return E(txn)->del(T(txn), db, &key, flags);
}

static mqim_status_t db_del(mqim_txn_t *txn, int db, keybuf_t *k)
{
    return db_del_flags(txn, db, k, 0u);
}

/* ---- meta counters ---- */

static uint64_t meta_get(mqim_txn_t *txn, const char *name)
{
    keybuf_t k = { .len = 0 };
    mqim_kv_val_t v;
    uint64_t value = 0;
    key_str(&k, mqim_str_from_cstr(name));
    if (db_get(txn, DB_META, &k, &v) == MQIM_OK && v.size == sizeof(value)) {
        memcpy(&value, v.data, sizeof(value));
    }
    return value;
}

static mqim_status_t meta_put(mqim_txn_t *txn, const char *name, uint64_t value)
{
    keybuf_t k = { .len = 0 };
    key_str(&k, mqim_str_from_cstr(name));
    return db_put(txn, DB_META, &k, &value, sizeof(value));
}

/* Next value of a persistent sequence (first value 1, never reused). */
static mqim_status_t meta_next(mqim_txn_t *txn, const char *name, uint64_t *value)
{
    uint64_t v = meta_get(txn, name) + 1u;
    *value = v;
    return meta_put(txn, name, v);
}

mqim_status_t mqim_store_counter_add(mqim_txn_t *txn, const char *name, uint64_t delta)
{
    return meta_put(txn, name, meta_get(txn, name) + delta);
}

mqim_status_t mqim_store_counter_raise(mqim_txn_t *txn, const char *name, uint64_t value)
{
    return value > meta_get(txn, name) ? meta_put(txn, name, value) : MQIM_OK;
}

uint64_t mqim_store_counter_get(mqim_txn_t *txn, const char *name)
{
    return meta_get(txn, name);
}

/* ---- users ---- */

mqim_status_t mqim_store_user_get(mqim_txn_t *txn, mqim_str_t user, mqim_user_rec_t *rec)
{
    keybuf_t k = { .len = 0 };
    mqim_kv_val_t v;
    mqim_status_t st;
    key_str(&k, user);
    st = db_get(txn, DB_USERS, &k, &v);
    if (st == MQIM_OK) {
        if (v.size != sizeof(*rec)) {
            MQIM_LOGE(LOG_MOD, "user record of %.*s has size %zu", (int)user.len, user.ptr,
                      v.size);
            return MQIM_STORE_ERROR;
        }
        memcpy(rec, v.data, sizeof(*rec));
    }
    return st;
}

mqim_status_t mqim_store_user_put(mqim_txn_t *txn, mqim_str_t user, const mqim_user_rec_t *rec)
{
    keybuf_t k = { .len = 0 };
    key_str(&k, user);
    return db_put(txn, DB_USERS, &k, rec, sizeof(*rec));
}

mqim_status_t mqim_store_user_ensure(mqim_txn_t *txn, mqim_str_t user, int64_t now_ms)
{
    mqim_user_rec_t rec;
    mqim_status_t st = mqim_store_user_get(txn, user, &rec);
    if (st == MQIM_NOT_FOUND) {
        memset(&rec, 0, sizeof(rec));
        rec.next_seq = 1;
        rec.first_seq = 1;
        rec.created_ms = now_ms;
        st = mqim_store_user_put(txn, user, &rec);
    }
    return st;
}

mqim_status_t mqim_store_user_del(mqim_txn_t *txn, mqim_str_t user)
{
    keybuf_t k = { .len = 0 };
    key_str(&k, user);
    return db_del(txn, DB_USERS, &k);
}

mqim_status_t mqim_store_user_each(mqim_txn_t *txn, mqim_user_visit_fn fn, void *ctx)
{
    mqim_kv_cursor_t *c = NULL;
    mqim_kv_val_t k, v;
    int rc = kv_cursor_open(txn, DB_USERS, &c);
    if (rc != 0) {
        return map_rc(rc, "cursor");
    }
    for (rc = kv_cursor_get(txn, c, &k, &v, MQIM_KV_FIRST); rc == 0; rc = kv_cursor_get(txn, c, &k, &v, MQIM_KV_NEXT)) {
        mqim_user_rec_t rec;
        mqim_str_t name = { (const char *)k.data, k.size };
        if (v.size != sizeof(rec)) {
            continue;
        }
        memcpy(&rec, v.data, sizeof(rec));
        if (fn(ctx, name, &rec) != 0) {
            break;
        }
    }
    kv_cursor_close(txn, c);
    return (rc == 0 || rc == MQIM_NOT_FOUND) ? MQIM_OK : map_rc(rc, "user scan");
}

/* ---- messages ---- */

/* Message record layout: fixed header, then the strings back to back. */
typedef struct msg_hdr {
    int64_t ts;
    uint64_t sender_seq;
    uint64_t recipient_seq;
    uint32_t refs;
    uint32_t body_len;
    uint16_t id_len, from_len, to_len, group_len, type_len;
    uint8_t qos;
    uint8_t device_len;
    uint64_t file_size;
    uint16_t file_id_len, file_name_len, file_mime_len, file_sha256_len;
} msg_hdr_t;

/* Records written before the device and file fields (the first release)
 * have the header up to file_size (device_len was their zero padding) and
 * no file strings; they are read as they are and never rewritten whole. */
#define MSG_HDR_V1_SIZE offsetof(msg_hdr_t, file_size)

/* The high bit of the header's qos byte (qos itself is 0 or 1) marks a body
 * that is the text of an encrypted "enc" object; records written before
 * E2E never have it set, so they read as they are. */
#define MSG_QOS_ENC 0x80u
#define MSG_QOS_MASK 0x7fu

#define MSG_PARTS 9u
/* The strings after the header, in order; the body comes last. */
static void msg_parts(const mqim_msg_rec_t *rec, const mqim_str_t *parts[MSG_PARTS])
{
    parts[0] = &rec->id;
    parts[1] = &rec->from;
    parts[2] = &rec->to;
    parts[3] = &rec->group;
    parts[4] = &rec->type;
    parts[5] = &rec->device;
    parts[6] = &rec->file_id;
    parts[7] = &rec->file_name;
    parts[8] = &rec->file_mime;
}

static mqim_status_t msg_write(mqim_txn_t *txn, const mqim_msg_rec_t *rec)
{
    msg_hdr_t h;
    size_t len;
    unsigned char *buf, *p;
    keybuf_t k = { .len = 0 };
    mqim_status_t st;
    const mqim_str_t *parts[MSG_PARTS];

    msg_parts(rec, parts);
    if (rec->device.len > MQIM_DEVICE_NAME_MAX || rec->file_id.len > MQIM_ID_MAX ||
        rec->file_name.len > MQIM_FILE_NAME_MAX || rec->file_mime.len > MQIM_MIME_MAX ||
        rec->file_sha256.len > MQIM_SHA256_HEX_LEN) {
        return MQIM_BAD_PARAMETER;
    }
    memset(&h, 0, sizeof(h));
    h.ts = rec->ts;
    h.sender_seq = rec->sender_seq;
    h.recipient_seq = rec->recipient_seq;
    h.refs = rec->refs;
    h.qos = (uint8_t)((rec->qos & MSG_QOS_MASK) | (rec->enc ? MSG_QOS_ENC : 0u));
    h.id_len = (uint16_t)rec->id.len;
    h.from_len = (uint16_t)rec->from.len;
    h.to_len = (uint16_t)rec->to.len;
    h.group_len = (uint16_t)rec->group.len;
    h.type_len = (uint16_t)rec->type.len;
    h.body_len = (uint32_t)rec->body.len;
    h.device_len = (uint8_t)rec->device.len;
    h.file_size = rec->file_size;
    h.file_id_len = (uint16_t)rec->file_id.len;
    h.file_name_len = (uint16_t)rec->file_name.len;
    h.file_mime_len = (uint16_t)rec->file_mime.len;
    h.file_sha256_len = (uint16_t)rec->file_sha256.len;
    len = sizeof(h) + rec->body.len + rec->file_sha256.len;
    for (size_t i = 0; i < MSG_PARTS; i++) {
        len += parts[i]->len;
    }

    /* Reserve in the map and write in place: one copy, no temporary buffer. */
    key_u64(&k, rec->mid);
    st = db_reserve(txn, DB_MSGS, &k, len, 0u, &buf);
    if (st != MQIM_OK) {
        return st;
    }
    memcpy(buf, &h, sizeof(h));
    p = buf + sizeof(h);
    for (size_t i = 0; i < MSG_PARTS; i++) {
        if (parts[i]->len > 0u) {
            memcpy(p, parts[i]->ptr, parts[i]->len);
            p += parts[i]->len;
        }
    }
    if (rec->file_sha256.len > 0u) {
        memcpy(p, rec->file_sha256.ptr, rec->file_sha256.len);
        p += rec->file_sha256.len;
    }
    if (rec->body.len > 0u) {
        memcpy(p, rec->body.ptr, rec->body.len);
    }
    return MQIM_OK;
}

mqim_status_t mqim_store_msg_put(mqim_txn_t *txn, mqim_msg_rec_t *rec)
{
    mqim_status_t st = meta_next(txn, "next_mid", &rec->mid);
    if (st == MQIM_OK) {
        st = msg_write(txn, rec);
    }
    return st;
}

mqim_status_t mqim_store_msg_get(mqim_txn_t *txn, uint64_t mid, mqim_msg_rec_t *rec)
{
    keybuf_t k = { .len = 0 };
    mqim_kv_val_t v;
    msg_hdr_t h;
    const char *p;
    size_t need, hdr_size;
    mqim_status_t st;
    key_u64(&k, mid);
    st = db_get(txn, DB_MSGS, &k, &v);
    if (st != MQIM_OK) {
        return st;
    }
    if (v.size < MSG_HDR_V1_SIZE) {
        return MQIM_STORE_ERROR;
    }
    memset(&h, 0, sizeof(h));
    memcpy(&h, v.data, v.size < sizeof(h) ? v.size : sizeof(h));
    need = (size_t)h.id_len + h.from_len + h.to_len + h.group_len + h.type_len + h.body_len;
    if (h.device_len == 0u && v.size == MSG_HDR_V1_SIZE + need) {
        hdr_size = MSG_HDR_V1_SIZE; /* a first-release record */
        h.file_size = 0;
        h.file_id_len = h.file_name_len = h.file_mime_len = h.file_sha256_len = 0;
    } else {
        hdr_size = sizeof(h);
        need += (size_t)h.device_len + h.file_id_len + h.file_name_len + h.file_mime_len +
                h.file_sha256_len;
        if (v.size != hdr_size + need) {
            MQIM_LOGE(LOG_MOD, "message %llu: corrupt record", (unsigned long long)mid);
            return MQIM_STORE_ERROR;
        }
    }
    rec->mid = mid;
    rec->ts = h.ts;
    rec->sender_seq = h.sender_seq;
    rec->recipient_seq = h.recipient_seq;
    rec->refs = h.refs;
    rec->qos = (uint8_t)(h.qos & MSG_QOS_MASK);
    rec->enc = (h.qos & MSG_QOS_ENC) != 0u;
    p = (const char *)v.data + hdr_size;
    rec->id = (mqim_str_t){ p, h.id_len };
    p += h.id_len;
    rec->from = (mqim_str_t){ p, h.from_len };
    p += h.from_len;
    rec->to = (mqim_str_t){ p, h.to_len };
    p += h.to_len;
    rec->group = (mqim_str_t){ p, h.group_len };
    p += h.group_len;
    rec->type = (mqim_str_t){ p, h.type_len };
    p += h.type_len;
    rec->device = (mqim_str_t){ p, h.device_len };
    p += h.device_len;
    rec->file_id = (mqim_str_t){ p, h.file_id_len };
    p += h.file_id_len;
    rec->file_name = (mqim_str_t){ p, h.file_name_len };
    p += h.file_name_len;
    rec->file_mime = (mqim_str_t){ p, h.file_mime_len };
    p += h.file_mime_len;
    rec->file_sha256 = (mqim_str_t){ p, h.file_sha256_len };
    p += h.file_sha256_len;
    rec->file_size = h.file_size;
    rec->body = (mqim_str_t){ p, h.body_len };
    return MQIM_OK;
}

mqim_status_t mqim_store_msg_update(mqim_txn_t *txn, const mqim_msg_rec_t *rec)
{
    keybuf_t k = { .len = 0 };
    mqim_kv_val_t v;
    msg_hdr_t h;
    mqim_status_t st;
    key_u64(&k, rec->mid);
    st = db_get(txn, DB_MSGS, &k, &v);
    if (st != MQIM_OK) {
        return st;
    }
    if (v.size < MSG_HDR_V1_SIZE) {
        return MQIM_STORE_ERROR;
    }
    /* Copy out the whole value, patch the counters (at the same offsets in
     * both record layouts), write back: values the engines return are
     * read-only (LMDB's map). */
    {
        unsigned char *copy = malloc(v.size);
        if (copy == NULL) {
            return MQIM_INTERNAL;
        }
        memcpy(copy, v.data, v.size);
        memcpy(copy + offsetof(msg_hdr_t, sender_seq), &rec->sender_seq, sizeof(h.sender_seq));
        memcpy(copy + offsetof(msg_hdr_t, recipient_seq), &rec->recipient_seq, sizeof(h.recipient_seq));
        memcpy(copy + offsetof(msg_hdr_t, refs), &rec->refs, sizeof(h.refs));
        st = db_put(txn, DB_MSGS, &k, copy, v.size);
        free(copy);
    }
    return st;
}

static mqim_status_t receipts_del(mqim_txn_t *txn, uint64_t mid);

/* Drop n inbox references to a message; at zero the record goes, and with
 * it the per-member receipts that only msg_status of it could read. */
static mqim_status_t msg_unref_n(mqim_txn_t *txn, uint64_t mid, uint32_t n)
{
    mqim_msg_rec_t rec;
    mqim_status_t st = mqim_store_msg_get(txn, mid, &rec);
    if (st == MQIM_NOT_FOUND || n == 0u) {
        return MQIM_OK;
    }
    if (st != MQIM_OK) {
        return st;
    }
    if (rec.refs <= n) {
        keybuf_t k = { .len = 0 };
        key_u64(&k, mid);
        st = db_del(txn, DB_MSGS, &k);
        if (st == MQIM_OK) {
            st = receipts_del(txn, mid);
        }
    } else {
        rec.refs -= n;
        st = mqim_store_msg_update(txn, &rec);
    }
    return st;
}

/* ---- inbox ---- */

/* Inbox value: mid (8), dir (1), chat bytes. A tombstone: mid 0 (mids
 * start at 1), dir | TOMBSTONE_FLAG (1), the removed message's ts (8), chat. */
#define TOMBSTONE_FLAG 0x80u

static void cursor_key(keybuf_t *k, mqim_str_t user, mqim_str_t chat);

static void inbox_key(keybuf_t *k, mqim_str_t user, uint64_t seq)
{
    k->len = 0;
    key_str(k, user);
    key_sep(k);
    key_u64(k, seq);
}

static void chat_key(keybuf_t *k, mqim_str_t user, mqim_str_t chat, uint64_t seq)
{
    k->len = 0;
    key_str(k, user);
    key_sep(k);
    key_str(k, chat);
    key_sep(k);
    key_u64(k, seq);
}

static bool inbox_decode(const mqim_kv_val_t *k, const mqim_kv_val_t *v, mqim_inbox_entry_t *e)
{
    const unsigned char *val = v->data;
    if (v->size < 9u || k->size < 8u) {
        return false;
    }
    e->seq = be64_get((const unsigned char *)k->data + k->size - 8u);
    e->mid = be64_get(val);
    e->dir = (val[8] & 1u) == 1u ? MQIM_INBOX_SENT : MQIM_INBOX_RECEIVED;
    e->pruned = (val[8] & TOMBSTONE_FLAG) != 0u;
    e->ts = 0;
    if (e->pruned) {
        if (v->size < 17u || e->mid != 0u) {
            return false;
        }
        e->ts = (int64_t)be64_get(val + 9);
        e->chat = (mqim_str_t){ (const char *)val + 17, v->size - 17u };
    } else {
        e->chat = (mqim_str_t){ (const char *)val + 9, v->size - 9u };
    }
    return true;
}

mqim_status_t mqim_store_inbox_append(mqim_txn_t *txn, mqim_str_t user, mqim_str_t chat,
                                      uint64_t mid, mqim_inbox_dir_t dir, uint64_t *seq)
{
    mqim_user_rec_t u;
    keybuf_t k;
    unsigned char val[9 + MQIM_GROUP_NAME_MAX + 2];
    unsigned char midbuf[8];
    mqim_status_t st = mqim_store_user_get(txn, user, &u);
    if (st != MQIM_OK) {
        return st;
    }
    if (chat.len > MQIM_GROUP_NAME_MAX + 2u) {
        return MQIM_BAD_PARAMETER;
    }
    *seq = u.next_seq;
    be64_put(val, mid);
    val[8] = (unsigned char)dir;
    if (chat.len > 0u) {
        memcpy(val + 9, chat.ptr, chat.len);
    }
    inbox_key(&k, user, u.next_seq);
    st = db_put(txn, DB_INBOX, &k, val, 9u + chat.len);
    if (st == MQIM_OK) {
        chat_key(&k, user, chat, u.next_seq);
        be64_put(midbuf, mid);
        st = db_put(txn, DB_CHATS, &k, midbuf, sizeof(midbuf));
    }
    if (st == MQIM_OK) {
        u.next_seq++;
        u.count++;
        st = mqim_store_user_put(txn, user, &u);
    }
    return st;
}

mqim_status_t mqim_store_inbox_get(mqim_txn_t *txn, mqim_str_t user, uint64_t seq,
                                   mqim_inbox_entry_t *entry)
{
    keybuf_t k;
    mqim_kv_val_t v, key;
    mqim_status_t st;
    inbox_key(&k, user, seq);
    st = db_get(txn, DB_INBOX, &k, &v);
    if (st == MQIM_OK) {
        key = kval(&k);
        if (!inbox_decode(&key, &v, entry)) {
            st = MQIM_STORE_ERROR;
        }
    }
    return st;
}

mqim_status_t mqim_store_inbox_scan(mqim_txn_t *txn, mqim_str_t user, uint64_t after,
                                    mqim_inbox_visit_fn fn, void *ctx)
{
    mqim_kv_cursor_t *c = NULL;
    keybuf_t k;
    mqim_kv_val_t key, val;
    size_t prefix = user.len + 1u;
    int rc;
    if (after == UINT64_MAX) {
        return MQIM_OK;
    }
    inbox_key(&k, user, after + 1u);
    key = kval(&k);
    rc = kv_cursor_open(txn, DB_INBOX, &c);
    if (rc != 0) {
        return map_rc(rc, "cursor");
    }
    for (rc = kv_cursor_get(txn, c, &key, &val, MQIM_KV_SET_RANGE); rc == 0;
         rc = kv_cursor_get(txn, c, &key, &val, MQIM_KV_NEXT)) {
        mqim_inbox_entry_t e;
        if (key.size != prefix + 8u || memcmp(key.data, k.b, prefix) != 0) {
            break; /* past this user's entries */
        }
        if (!inbox_decode(&key, &val, &e)) {
            continue;
        }
        if (fn(ctx, &e) != 0) {
            break;
        }
    }
    kv_cursor_close(txn, c);
    return (rc == 0 || rc == MQIM_NOT_FOUND) ? MQIM_OK : map_rc(rc, "inbox scan");
}

mqim_status_t mqim_store_chat_scan(mqim_txn_t *txn, mqim_str_t user, mqim_str_t chat,
                                   uint64_t after, uint64_t before, mqim_inbox_visit_fn fn,
                                   void *ctx)
{
    mqim_kv_cursor_t *c = NULL;
    keybuf_t k;
    mqim_kv_val_t key, val;
    size_t prefix = user.len + 1u + chat.len + 1u;
    bool descending = before != 0u;
    int rc;
    chat_key(&k, user, chat, descending ? before : after + 1u);
    key = kval(&k);
    rc = kv_cursor_open(txn, DB_CHATS, &c);
    if (rc != 0) {
        return map_rc(rc, "cursor");
    }
    rc = kv_cursor_get(txn, c, &key, &val, MQIM_KV_SET_RANGE);
    if (descending) {
        /* SET_RANGE lands on the first key >= before (or nothing): step back once. */
        rc = (rc == 0) ? kv_cursor_get(txn, c, &key, &val, MQIM_KV_PREV)
                       : kv_cursor_get(txn, c, &key, &val, MQIM_KV_LAST);
    }
    while (rc == 0) {
        mqim_inbox_entry_t e;
        mqim_inbox_entry_t full;
        if (key.size != prefix + 8u || memcmp(key.data, k.b, prefix) != 0 ||
            val.size != 8u) {
            break;
        }
        e.seq = be64_get((const unsigned char *)key.data + prefix);
        /* The chat index holds the mid; the inbox entry has the direction. */
        if (mqim_store_inbox_get(txn, user, e.seq, &full) == MQIM_OK) {
            if (fn(ctx, &full) != 0) {
                break;
            }
        }
        rc = kv_cursor_get(txn, c, &key, &val, descending ? MQIM_KV_PREV : MQIM_KV_NEXT);
    }
    kv_cursor_close(txn, c);
    return (rc == 0 || rc == MQIM_NOT_FOUND) ? MQIM_OK : map_rc(rc, "chat scan");
}

mqim_status_t mqim_store_chat_each(mqim_txn_t *txn, mqim_str_t user, mqim_chat_visit_fn fn, void *ctx)
{
    mqim_kv_cursor_t *c = NULL;
    keybuf_t k = { .len = 0 };
    mqim_kv_val_t key, val;
    size_t ulen = user.len + 1u;
    int rc;
    key_str(&k, user);
    key_sep(&k);
    key = kval(&k);
    rc = kv_cursor_open(txn, DB_CHATS, &c);
    if (rc != 0) {
        return map_rc(rc, "cursor");
    }
    /* One seek per chat: to its first key, then past its last one. */
    rc = kv_cursor_get(txn, c, &key, &val, MQIM_KV_SET_RANGE);
    while (rc == 0) {
        unsigned char chat[MQIM_GROUP_NAME_MAX + 2];
        size_t clen;
        keybuf_t next;
        if (key.size < ulen + 1u + 8u || memcmp(key.data, k.b, ulen) != 0) {
            break;
        }
        clen = key.size - ulen - 1u - 8u;
        if (clen > sizeof(chat)) {
            break;
        }
        memcpy(chat, (const unsigned char *)key.data + ulen, clen);
        /* user \0 chat \1 sorts after every user \0 chat \0 seq */
        next = k;
        key_str(&next, (mqim_str_t){ (const char *)chat, clen });
        next.b[next.len++] = 1u;
        key = kval(&next);
        rc = kv_cursor_get(txn, c, &key, &val, MQIM_KV_SET_RANGE);
        rc = rc == 0 ? kv_cursor_get(txn, c, &key, &val, MQIM_KV_PREV) : kv_cursor_get(txn, c, &key, &val, MQIM_KV_LAST);
        if (rc != 0 || key.size != ulen + clen + 1u + 8u) {
            break;
        }
        if (fn(ctx, (mqim_str_t){ (const char *)chat, clen },
               be64_get((const unsigned char *)key.data + ulen + clen + 1u)) != 0) {
            rc = MQIM_NOT_FOUND;
            break;
        }
        key = kval(&next);
        rc = kv_cursor_get(txn, c, &key, &val, MQIM_KV_SET_RANGE);
    }
    kv_cursor_close(txn, c);
    return (rc == 0 || rc == MQIM_NOT_FOUND) ? MQIM_OK : map_rc(rc, "chat list");
}

static int take_first(void *ctx, const mqim_inbox_entry_t *e)
{
    *(mqim_inbox_entry_t *)ctx = *e;
    return 1;
}

/* ---- pruned markers (group chats) ---- */

/* Remember that retention removed seq from a user's chat (forward-only), so
 * history can say older messages are gone. */
static mqim_status_t pruned_mark(mqim_txn_t *txn, mqim_str_t user, mqim_str_t chat, uint64_t seq)
{
    keybuf_t k;
    unsigned char b[8];
    if (chat.len == 0u || chat.ptr[0] != '#' || seq <= mqim_store_chat_pruned(txn, user, chat)) {
        return MQIM_OK;
    }
    cursor_key(&k, user, chat);
    be64_put(b, seq);
    return db_put(txn, DB_PRUNED, &k, b, sizeof(b));
}

uint64_t mqim_store_chat_pruned(mqim_txn_t *txn, mqim_str_t user, mqim_str_t chat)
{
    keybuf_t k;
    mqim_kv_val_t v;
    cursor_key(&k, user, chat);
    if (db_get(txn, DB_PRUNED, &k, &v) == MQIM_OK && v.size == 8u) {
        return be64_get(v.data);
    }
    return 0;
}

/* ---- group index ---- */

/* gindex key: group \0 be64(mid) \0 member; with member empty, the prefix
 * of one message's entries. */
static void gindex_key(keybuf_t *k, mqim_str_t group, uint64_t mid, mqim_str_t member)
{
    k->len = 0;
    key_str(k, group);
    key_sep(k);
    key_u64(k, mid);
    key_sep(k);
    key_str(k, member);
}

/* The first key of db starting with the prefix in p (key/val point into
 * the map until the next write). */
static mqim_status_t first_with_prefix(mqim_txn_t *txn, int db, const keybuf_t *p, mqim_kv_val_t *key,
                                       mqim_kv_val_t *val)
{
    mqim_kv_cursor_t *c = NULL;
    int rc = kv_cursor_open(txn, db, &c);
    mqim_status_t st;
    if (rc != 0) {
        return map_rc(rc, "cursor");
    }
    key->size = p->len;
    key->data = (void *)(uintptr_t)p->b;
    rc = kv_cursor_get(txn, c, key, val, MQIM_KV_SET_RANGE);
    st = map_rc(rc, "prefix seek");
    if (st == MQIM_OK && (key->size < p->len || memcmp(key->data, p->b, p->len) != 0)) {
        st = MQIM_NOT_FOUND;
    }
    kv_cursor_close(txn, c);
    return st;
}

mqim_status_t mqim_store_gindex_put(mqim_txn_t *txn, mqim_str_t group, uint64_t mid,
                                    mqim_str_t member, uint64_t seq)
{
    keybuf_t k;
    unsigned char b[8];
    gindex_key(&k, group, mid, member);
    be64_put(b, seq);
    return db_put(txn, DB_GINDEX, &k, b, sizeof(b));
}

/* One fewer message in a group's count (when the group still exists). */
static mqim_status_t group_msgs_dec(mqim_txn_t *txn, mqim_str_t group)
{
    mqim_group_rec_t g;
    mqim_status_t st = mqim_store_group_get(txn, group, &g);
    if (st == MQIM_NOT_FOUND) {
        return MQIM_OK; /* an ended group: nothing counts it */
    }
    if (st == MQIM_OK && g.msgs > 0u) {
        g.msgs--;
        st = mqim_store_group_put(txn, group, &g);
    }
    return st;
}

/* A member's copy of a group message left their inbox (user retention):
 * forget it in gindex, and when it was the last copy the group holds one
 * message fewer. */
static mqim_status_t gindex_drop(mqim_txn_t *txn, mqim_str_t group, uint64_t mid, mqim_str_t member)
{
    keybuf_t k;
    mqim_kv_val_t key, val;
    mqim_status_t st;
    gindex_key(&k, group, mid, member);
    st = db_del(txn, DB_GINDEX, &k);
    if (st == MQIM_NOT_FOUND) {
        return MQIM_OK; /* stored before gindex existed: never counted */
    }
    if (st == MQIM_OK) {
        gindex_key(&k, group, mid, (mqim_str_t){ NULL, 0 });
        st = first_with_prefix(txn, DB_GINDEX, &k, &key, &val);
        st = st == MQIM_NOT_FOUND ? group_msgs_dec(txn, group) : st;
    }
    return st;
}

mqim_status_t mqim_store_gindex_count(mqim_txn_t *txn, mqim_str_t group, uint64_t *msgs)
{
    mqim_kv_cursor_t *c = NULL;
    keybuf_t k = { .len = 0 };
    mqim_kv_val_t key, val;
    size_t plen = group.len + 1u;
    uint64_t last = 0;
    int rc;
    *msgs = 0;
    key_str(&k, group);
    key_sep(&k);
    key = kval(&k);
    rc = kv_cursor_open(txn, DB_GINDEX, &c);
    if (rc != 0) {
        return map_rc(rc, "cursor");
    }
    for (rc = kv_cursor_get(txn, c, &key, &val, MQIM_KV_SET_RANGE); rc == 0;
         rc = kv_cursor_get(txn, c, &key, &val, MQIM_KV_NEXT)) {
        uint64_t mid;
        if (key.size < plen + 9u || memcmp(key.data, k.b, plen) != 0) {
            break;
        }
        mid = be64_get((const unsigned char *)key.data + plen);
        if (mid != last) { /* keys of one message are adjacent */
            (*msgs)++;
            last = mid;
        }
    }
    kv_cursor_close(txn, c);
    return (rc == 0 || rc == MQIM_NOT_FOUND) ? MQIM_OK : map_rc(rc, "gindex count");
}

mqim_status_t mqim_store_gindex_each(mqim_txn_t *txn, mqim_membership_visit_fn fn, void *ctx)
{
    mqim_kv_cursor_t *c = NULL;
    mqim_kv_val_t key, val;
    int rc = kv_cursor_open(txn, DB_GINDEX, &c);
    if (rc != 0) {
        return map_rc(rc, "cursor");
    }
    /* One seek per group: its first key, then past its last one. */
    rc = kv_cursor_get(txn, c, &key, &val, MQIM_KV_FIRST);
    while (rc == 0) {
        const unsigned char *sep = memchr(key.data, 0, key.size);
        char group[MQIM_GROUP_NAME_MAX];
        keybuf_t next = { .len = 0 };
        size_t glen;
        if (sep == NULL) {
            rc = kv_cursor_get(txn, c, &key, &val, MQIM_KV_NEXT); /* not a gindex key: skip */
            continue;
        }
        glen = (size_t)(sep - (const unsigned char *)key.data);
        if (glen == 0u || glen > sizeof(group)) {
            rc = kv_cursor_get(txn, c, &key, &val, MQIM_KV_NEXT);
            continue;
        }
        memcpy(group, key.data, glen);
        if (fn(ctx, (mqim_str_t){ group, glen }) != 0) {
            rc = MQIM_NOT_FOUND;
            break;
        }
        /* group \1 sorts after every group \0 ... */
        key_str(&next, (mqim_str_t){ group, glen });
        next.b[next.len++] = 1u;
        key = kval(&next);
        rc = kv_cursor_get(txn, c, &key, &val, MQIM_KV_SET_RANGE);
    }
    kv_cursor_close(txn, c);
    return (rc == 0 || rc == MQIM_NOT_FOUND) ? MQIM_OK : map_rc(rc, "gindex scan");
}

/* Turn a member's inbox entry seq (holding mid) into a tombstone: the seq
 * stays so the member's stream has no hole; the chat index entry goes (so
 * history, unread and chats see only messages) and the chat is marked
 * pruned. The message's ref is the caller's to drop.
 * MQIM_NOT_FOUND when the entry is gone or holds something else. */
static mqim_status_t inbox_tombstone(mqim_txn_t *txn, mqim_str_t user, uint64_t seq, uint64_t mid,
                                     int64_t ts)
{
    mqim_inbox_entry_t e;
    mqim_user_rec_t u;
    keybuf_t k;
    unsigned char val[17 + MQIM_GROUP_NAME_MAX + 2];
    char chat[MQIM_GROUP_NAME_MAX + 2];
    size_t clen;
    mqim_status_t st = mqim_store_inbox_get(txn, user, seq, &e);
    if (st != MQIM_OK) {
        return st;
    }
    if (e.pruned || e.mid != mid || e.chat.len > sizeof(chat)) {
        return MQIM_NOT_FOUND;
    }
    /* e.chat points into the map: copy it before writing. */
    clen = e.chat.len;
    memcpy(chat, e.chat.ptr, clen);
    be64_put(val, 0u);
    val[8] = (unsigned char)((unsigned)e.dir | TOMBSTONE_FLAG);
    be64_put(val + 9, (uint64_t)ts);
    memcpy(val + 17, chat, clen);
    inbox_key(&k, user, seq);
    st = db_put(txn, DB_INBOX, &k, val, 17u + clen);
    if (st == MQIM_OK) {
        chat_key(&k, user, (mqim_str_t){ chat, clen }, seq);
        st = db_del(txn, DB_CHATS, &k);
        st = st == MQIM_NOT_FOUND ? MQIM_OK : st;
    }
    if (st == MQIM_OK) {
        st = pruned_mark(txn, user, (mqim_str_t){ chat, clen }, seq);
    }
    if (st == MQIM_OK) {
        st = mqim_store_user_get(txn, user, &u);
        if (st == MQIM_OK && u.count > 0u) {
            u.count--; /* a message left this inbox; its seq did not */
            st = mqim_store_user_put(txn, user, &u);
        }
        st = st == MQIM_NOT_FOUND ? MQIM_OK : st;
    }
    return st;
}

/* long because: one pass over the group's index that prunes by count and
 * by age, turns each member's copy into a tombstone and keeps the counters
 * right; its steps share the pass's cursor and counts. */
mqim_status_t mqim_store_group_prune(mqim_txn_t *txn, mqim_str_t group, uint64_t keep_count,
                                     int64_t min_ts, uint64_t *msgs, uint64_t *entries)
{
    mqim_group_rec_t g;
    bool has_rec;
    uint64_t held = 0, n_msgs = 0, n_entries = 0;
    mqim_status_t st = mqim_store_group_get(txn, group, &g);
    has_rec = st == MQIM_OK;
    if (st == MQIM_NOT_FOUND) {
        st = MQIM_OK; /* an ended group: its leftovers are pruned by age only */
    }
    held = has_rec ? g.msgs : 0u;
    /* Oldest message first (mids grow with time), one message at a time with
     * fresh seeks, so no cursor walks over pages this loop modifies. */
    while (st == MQIM_OK) {
        keybuf_t p;
        mqim_kv_val_t key, val;
        mqim_msg_rec_t m;
        uint64_t mid;
        int64_t ts = 0;
        bool remove, have_msg;
        uint32_t tombstoned = 0;
        p.len = 0;
        key_str(&p, group);
        key_sep(&p);
        st = first_with_prefix(txn, DB_GINDEX, &p, &key, &val);
        if (st == MQIM_NOT_FOUND) {
            st = MQIM_OK;
            break;
        }
        if (st != MQIM_OK || key.size < p.len + 9u) {
            st = st == MQIM_OK ? MQIM_STORE_ERROR : st;
            break;
        }
        mid = be64_get((const unsigned char *)key.data + p.len);
        have_msg = mqim_store_msg_get(txn, mid, &m) == MQIM_OK;
        if (have_msg) {
            ts = m.ts;
        }
        /* An index entry whose message is gone is stale: always cleaned. */
        remove = !have_msg || (keep_count != 0u && has_rec && held > keep_count) ||
                 (min_ts != 0 && ts < min_ts);
        if (!remove) {
            break;
        }
        /* Every copy of it: tombstone, then forget the index key. */
        while (st == MQIM_OK) {
            char member[MQIM_USER_NAME_MAX];
            size_t mlen;
            uint64_t seq;
            keybuf_t mk;
            gindex_key(&mk, group, mid, (mqim_str_t){ NULL, 0 });
            st = first_with_prefix(txn, DB_GINDEX, &mk, &key, &val);
            if (st == MQIM_NOT_FOUND) {
                st = MQIM_OK;
                break;
            }
            if (st != MQIM_OK) {
                break;
            }
            mlen = key.size - mk.len;
            if (mlen > sizeof(member) || val.size != 8u) {
                st = MQIM_STORE_ERROR;
                break;
            }
            memcpy(member, (const unsigned char *)key.data + mk.len, mlen);
            seq = be64_get(val.data);
            st = inbox_tombstone(txn, (mqim_str_t){ member, mlen }, seq, mid, ts);
            if (st == MQIM_OK) {
                tombstoned++;
                n_entries++;
            } else if (st == MQIM_NOT_FOUND) {
                st = MQIM_OK; /* that copy is gone already */
            }
            if (st == MQIM_OK) {
                gindex_key(&mk, group, mid, (mqim_str_t){ member, mlen });
                st = db_del(txn, DB_GINDEX, &mk);
            }
        }
        if (st == MQIM_OK && have_msg) {
            st = msg_unref_n(txn, mid, tombstoned);
            n_msgs++;
        }
        if (held > 0u) {
            held--;
        }
    }
    if (st == MQIM_OK && has_rec && held != g.msgs) {
        /* re-read: tombstoning wrote to the map, g.title may have moved */
        st = mqim_store_group_get(txn, group, &g);
        if (st == MQIM_OK) {
            g.msgs = held;
            st = mqim_store_group_put(txn, group, &g);
        }
    }
    if (msgs != NULL) {
        *msgs = n_msgs;
    }
    if (entries != NULL) {
        *entries = n_entries;
    }
    return st;
}

/* Delete one inbox entry and its chat index entry, and drop its message ref
 * (a tombstone has neither any more). */
static mqim_status_t inbox_remove(mqim_txn_t *txn, mqim_str_t user, const mqim_inbox_entry_t *e)
{
    keybuf_t k;
    /* e->chat points into the map: copy it before the delete moves pages. */
    char chat[MQIM_GROUP_NAME_MAX + 2];
    mqim_str_t chat_copy = { chat, e->chat.len < sizeof(chat) ? e->chat.len : sizeof(chat) };
    uint64_t seq = e->seq, mid = e->mid;
    bool tomb = e->pruned;
    mqim_status_t st;
    memcpy(chat, e->chat.ptr, chat_copy.len);
    inbox_key(&k, user, seq);
    st = db_del(txn, DB_INBOX, &k);
    if (st == MQIM_OK && !tomb) {
        chat_key(&k, user, chat_copy, seq);
        st = db_del(txn, DB_CHATS, &k);
        if (st == MQIM_NOT_FOUND) {
            st = MQIM_OK;
        }
        if (st == MQIM_OK && chat_copy.len > 1u && chat[0] == '#') {
            /* a group message: group retention must not count this copy,
             * and the member's history of the group is no longer whole */
            st = gindex_drop(txn, (mqim_str_t){ chat + 1, chat_copy.len - 1u }, mid, user);
            if (st == MQIM_OK) {
                st = pruned_mark(txn, user, chat_copy, seq);
            }
        }
        if (st == MQIM_OK) {
            st = msg_unref_n(txn, mid, 1u);
        }
    }
    return st;
}

mqim_status_t mqim_store_inbox_prune(mqim_txn_t *txn, mqim_str_t user, uint64_t keep_count,
                                     int64_t min_ts, uint64_t *pruned)
{
    mqim_user_rec_t u;
    mqim_status_t st = mqim_store_user_get(txn, user, &u);
    *pruned = 0;
    if (keep_count == 0u && min_ts == 0) {
        return st; /* no policy: nothing to do */
    }
    /* Oldest first, one entry at a time with a fresh seek, so no cursor ever
     * walks over a page this loop modifies. The first entry to keep ends it. */
    while (st == MQIM_OK) {
        mqim_inbox_entry_t e;
        bool remove;
        e.seq = 0;
        st = mqim_store_inbox_scan(txn, user, u.first_seq - 1u, take_first, &e);
        if (st != MQIM_OK || e.seq == 0u) {
            break;
        }
        /* A tombstone at the head holds nothing and hides no hole. */
        remove = e.pruned || (keep_count != 0u && u.count > keep_count);
        if (!remove && min_ts != 0) {
            mqim_msg_rec_t m;
            remove = mqim_store_msg_get(txn, e.mid, &m) == MQIM_OK && m.ts < min_ts;
        }
        if (!remove) {
            break;
        }
        st = inbox_remove(txn, user, &e);
        if (st == MQIM_OK) {
            if (!e.pruned && u.count > 0u) {
                u.count--;
            }
            u.first_seq = e.seq + 1u;
            (*pruned)++;
        }
    }
    if (st == MQIM_OK && *pruned > 0u) {
        st = mqim_store_user_put(txn, user, &u);
    }
    return st;
}

/* ---- dedupe ---- */

static void dedupe_key(keybuf_t *k, mqim_str_t from, mqim_str_t id)
{
    k->len = 0;
    key_str(k, from);
    key_sep(k);
    key_str(k, id);
}

mqim_status_t mqim_store_dedupe_get(mqim_txn_t *txn, mqim_str_t from, mqim_str_t id,
                                    mqim_str_t *ack_payload)
{
    keybuf_t k;
    mqim_kv_val_t v;
    mqim_status_t st;
    dedupe_key(&k, from, id);
    st = db_get(txn, DB_DEDUPE, &k, &v);
    if (st == MQIM_OK) {
        *ack_payload = (mqim_str_t){ (const char *)v.data, v.size };
    }
    return st;
}

mqim_status_t mqim_store_dedupe_put(mqim_txn_t *txn, mqim_str_t from, mqim_str_t id,
                                    mqim_str_t ack_payload)
{
    keybuf_t k;
    dedupe_key(&k, from, id);
    return db_put(txn, DB_DEDUPE, &k, ack_payload.ptr, ack_payload.len);
}

/* ---- cursors ---- */

static void cursor_key(keybuf_t *k, mqim_str_t user, mqim_str_t chat)
{
    k->len = 0;
    key_str(k, user);
    key_sep(k);
    key_str(k, chat);
}

uint64_t mqim_store_cursor_get(mqim_txn_t *txn, mqim_str_t user, mqim_str_t chat)
{
    keybuf_t k;
    mqim_kv_val_t v;
    cursor_key(&k, user, chat);
    if (db_get(txn, DB_CURSORS, &k, &v) == MQIM_OK && v.size == 8u) {
        return be64_get(v.data);
    }
    return 0;
}

mqim_status_t mqim_store_cursor_put(mqim_txn_t *txn, mqim_str_t user, mqim_str_t chat,
                                    uint64_t upto)
{
    keybuf_t k;
    unsigned char b[8];
    cursor_key(&k, user, chat);
    be64_put(b, upto);
    return db_put(txn, DB_CURSORS, &k, b, sizeof(b));
}

/* ---- devices ---- */

mqim_status_t mqim_store_device_get(mqim_txn_t *txn, mqim_str_t user, mqim_str_t device,
                                    mqim_device_rec_t *rec)
{
    keybuf_t k;
    mqim_kv_val_t v;
    mqim_status_t st;
    cursor_key(&k, user, device);
    st = db_get(txn, DB_DEVICES, &k, &v);
    if (st == MQIM_OK) {
        if (v.size != sizeof(*rec)) {
            return MQIM_STORE_ERROR;
        }
        memcpy(rec, v.data, sizeof(*rec));
    }
    return st;
}

mqim_status_t mqim_store_device_put(mqim_txn_t *txn, mqim_str_t user, mqim_str_t device,
                                    const mqim_device_rec_t *rec)
{
    keybuf_t k;
    mqim_device_rec_t clean;
    /* Copy field by field into zeroed memory: the struct's padding must not
     * carry uninitialised bytes to disk. */
    memset(&clean, 0, sizeof(clean));
    clean.epoch = rec->epoch;
    clean.since_ms = rec->since_ms;
    clean.last_seen_ms = rec->last_seen_ms;
    clean.state = rec->state;
    clean.has_epoch = rec->has_epoch;
    cursor_key(&k, user, device);
    return db_put(txn, DB_DEVICES, &k, &clean, sizeof(clean));
}

mqim_status_t mqim_store_device_each(mqim_txn_t *txn, mqim_str_t user, mqim_device_visit_fn fn,
                                     void *ctx)
{
    mqim_kv_cursor_t *c = NULL;
    keybuf_t k = { .len = 0 };
    mqim_kv_val_t key, val;
    size_t prefix = user.len + 1u;
    int rc;
    key_str(&k, user);
    key_sep(&k);
    key = kval(&k);
    rc = kv_cursor_open(txn, DB_DEVICES, &c);
    if (rc != 0) {
        return map_rc(rc, "cursor");
    }
    for (rc = kv_cursor_get(txn, c, &key, &val, MQIM_KV_SET_RANGE); rc == 0;
         rc = kv_cursor_get(txn, c, &key, &val, MQIM_KV_NEXT)) {
        mqim_device_rec_t rec;
        if (key.size <= prefix || memcmp(key.data, k.b, prefix) != 0) {
            break;
        }
        if (val.size != sizeof(rec)) {
            continue;
        }
        memcpy(&rec, val.data, sizeof(rec));
        if (fn(ctx, (mqim_str_t){ (const char *)key.data + prefix, key.size - prefix },
               &rec) != 0) {
            break;
        }
    }
    kv_cursor_close(txn, c);
    return (rc == 0 || rc == MQIM_NOT_FOUND) ? MQIM_OK : map_rc(rc, "device scan");
}

/* ---- outbox ---- */

/* Outbox value: qos (1), retain (1), topic_len (2), corr_len (2), topic, corr, payload. */
mqim_status_t mqim_store_outbox_put(mqim_txn_t *txn, mqim_str_t topic, int qos, bool retain,
                                    mqim_str_t corr, mqim_str_t payload, uint64_t *key)
{
    keybuf_t k = { .len = 0 };
    uint64_t n;
    size_t len = 6u + topic.len + corr.len + payload.len;
    unsigned char *p;
    mqim_status_t st;
    if (topic.len > 0xffffu || corr.len > 0xffffu) {
        return MQIM_BAD_PARAMETER;
    }
    st = meta_next(txn, "next_outbox", &n);
    if (st != MQIM_OK) {
        return st;
    }
    key_u64(&k, n);
    /* Keys only grow: appending keeps LMDB's outbox pages dense. */
    st = db_reserve(txn, DB_OUTBOX, &k, len, MQIM_KV_APPEND, &p);
    if (st != MQIM_OK) {
        return st;
    }
    p[0] = (unsigned char)qos;
    p[1] = retain ? 1u : 0u;
    p[2] = (unsigned char)(topic.len >> 8);
    p[3] = (unsigned char)(topic.len & 0xffu);
    p[4] = (unsigned char)(corr.len >> 8);
    p[5] = (unsigned char)(corr.len & 0xffu);
    p += 6;
    if (topic.len > 0u) {
        memcpy(p, topic.ptr, topic.len);
    }
    p += topic.len;
    if (corr.len > 0u) {
        memcpy(p, corr.ptr, corr.len);
    }
    p += corr.len;
    if (payload.len > 0u) {
        memcpy(p, payload.ptr, payload.len);
    }
    if (key != NULL) {
        *key = n;
    }
    return MQIM_OK;
}

mqim_status_t mqim_store_outbox_next(mqim_txn_t *txn, uint64_t from, mqim_outbox_rec_t *rec)
{
    mqim_kv_cursor_t *c = NULL;
    keybuf_t k = { .len = 0 };
    mqim_kv_val_t key, val;
    int rc;
    mqim_status_t st = MQIM_OK;
    key_u64(&k, from);
    key = kval(&k);
    rc = kv_cursor_open(txn, DB_OUTBOX, &c);
    if (rc != 0) {
        return map_rc(rc, "cursor");
    }
    rc = kv_cursor_get(txn, c, &key, &val, MQIM_KV_SET_RANGE);
    if (rc != 0) {
        st = map_rc(rc, "outbox next");
    } else {
        const unsigned char *p = val.data;
        size_t tl, cl;
        if (key.size != 8u || val.size < 6u) {
            st = MQIM_STORE_ERROR;
        } else {
            tl = ((size_t)p[2] << 8) | p[3];
            cl = ((size_t)p[4] << 8) | p[5];
            if (6u + tl + cl > val.size) {
                st = MQIM_STORE_ERROR;
            } else {
                rec->key = be64_get(key.data);
                rec->qos = p[0];
                rec->retain = p[1] != 0u;
                rec->topic = (mqim_str_t){ (const char *)p + 6, tl };
                rec->corr = (mqim_str_t){ (const char *)p + 6 + tl, cl };
                rec->payload = (mqim_str_t){ (const char *)p + 6 + tl + cl, val.size - 6u - tl - cl };
            }
        }
    }
    kv_cursor_close(txn, c);
    return st;
}

mqim_status_t mqim_store_outbox_del(mqim_txn_t *txn, uint64_t key)
{
    keybuf_t k = { .len = 0 };
    key_u64(&k, key);
    /* MQIM_OK when it was gone already (store.h): the engine need not look first */
    return db_del_flags(txn, DB_OUTBOX, &k, MQIM_KV_BLIND);
}

static uint64_t db_entries(mqim_txn_t *txn, int db)
{
    uint64_t n = 0;
    return E(txn)->count(T(txn), db, &n) == MQIM_OK ? n : 0u;
}

uint64_t mqim_store_outbox_count(mqim_txn_t *txn)
{
    return db_entries(txn, DB_OUTBOX);
}

mqim_status_t mqim_store_stats(mqim_txn_t *txn, mqim_store_stats_t *stats)
{
    memset(stats, 0, sizeof(*stats));
    stats->users = db_entries(txn, DB_USERS);
    stats->messages = db_entries(txn, DB_MSGS);
    stats->inbox_entries = db_entries(txn, DB_INBOX);
    stats->outbox = db_entries(txn, DB_OUTBOX);
    return txn->store->kv->engine->space(txn->store->kv, &stats->map_used_bytes,
                                         &stats->map_size_bytes);
}

/* ---- groups ---- */

/* groups value: created_ms (8), members (8), title_len (2), title, then
 * retain_count (8), retain_days (8), msgs (8). A record written before
 * retention existed ends after the title: no policy, nothing counted. */
#define GROUP_EXT 24u

mqim_status_t mqim_store_group_get(mqim_txn_t *txn, mqim_str_t group, mqim_group_rec_t *rec)
{
    keybuf_t k = { .len = 0 };
    mqim_kv_val_t v;
    mqim_status_t st;
    const unsigned char *b;
    size_t tl;
    key_str(&k, group);
    st = db_get(txn, DB_GROUPS, &k, &v);
    if (st != MQIM_OK) {
        return st;
    }
    b = v.data;
    tl = v.size >= 18u ? (((size_t)b[16] << 8) | b[17]) : 0u;
    if (v.size < 18u || (v.size != 18u + tl && v.size != 18u + tl + GROUP_EXT)) {
        return MQIM_STORE_ERROR;
    }
    rec->created_ms = (int64_t)be64_get(b);
    rec->members = be64_get(b + 8);
    rec->title = (mqim_str_t){ (const char *)b + 18, tl };
    rec->retain_count = 0;
    rec->retain_days = 0;
    rec->msgs = 0;
    if (v.size == 18u + tl + GROUP_EXT) {
        rec->retain_count = be64_get(b + 18 + tl);
        rec->retain_days = be64_get(b + 26 + tl);
        rec->msgs = be64_get(b + 34 + tl);
    }
    return MQIM_OK;
}

mqim_status_t mqim_store_group_put(mqim_txn_t *txn, mqim_str_t group, const mqim_group_rec_t *rec)
{
    keybuf_t k = { .len = 0 };
    unsigned char b[18 + MQIM_GROUP_TITLE_MAX + GROUP_EXT];
    size_t tl = rec->title.len > MQIM_GROUP_TITLE_MAX ? MQIM_GROUP_TITLE_MAX : rec->title.len;
    key_str(&k, group);
    be64_put(b, (uint64_t)rec->created_ms);
    be64_put(b + 8, rec->members);
    b[16] = (unsigned char)(tl >> 8);
    b[17] = (unsigned char)(tl & 0xffu);
    if (tl > 0u) {
        memmove(b + 18, rec->title.ptr, tl); /* the title may point into the map */
    }
    be64_put(b + 18 + tl, rec->retain_count);
    be64_put(b + 26 + tl, rec->retain_days);
    be64_put(b + 34 + tl, rec->msgs);
    return db_put(txn, DB_GROUPS, &k, b, 18u + tl + GROUP_EXT);
}

mqim_status_t mqim_store_group_del(mqim_txn_t *txn, mqim_str_t group)
{
    keybuf_t k = { .len = 0 };
    key_str(&k, group);
    return db_del(txn, DB_GROUPS, &k);
}

/* members value: role (1), joined_ms (8). memberships: user \0 group -> role (1). */
mqim_status_t mqim_store_member_get(mqim_txn_t *txn, mqim_str_t group, mqim_str_t user,
                                    mqim_member_rec_t *rec)
{
    keybuf_t k;
    mqim_kv_val_t v;
    mqim_status_t st;
    cursor_key(&k, group, user);
    st = db_get(txn, DB_MEMBERS, &k, &v);
    if (st == MQIM_OK) {
        if (v.size != 9u) {
            return MQIM_STORE_ERROR;
        }
        rec->role = ((const unsigned char *)v.data)[0];
        rec->joined_ms = (int64_t)be64_get((const unsigned char *)v.data + 1);
    }
    return st;
}

mqim_status_t mqim_store_member_put(mqim_txn_t *txn, mqim_str_t group, mqim_str_t user,
                                    const mqim_member_rec_t *rec)
{
    keybuf_t k;
    unsigned char b[9];
    mqim_status_t st;
    b[0] = rec->role;
    be64_put(b + 1, (uint64_t)rec->joined_ms);
    cursor_key(&k, group, user);
    st = db_put(txn, DB_MEMBERS, &k, b, sizeof(b));
    if (st == MQIM_OK) {
        cursor_key(&k, user, group);
        st = db_put(txn, DB_MEMBERSHIPS, &k, b, 1u);
    }
    return st;
}

mqim_status_t mqim_store_member_del(mqim_txn_t *txn, mqim_str_t group, mqim_str_t user)
{
    keybuf_t k;
    mqim_status_t st;
    cursor_key(&k, group, user);
    st = db_del(txn, DB_MEMBERS, &k);
    if (st == MQIM_OK) {
        cursor_key(&k, user, group);
        st = db_del(txn, DB_MEMBERSHIPS, &k);
        st = st == MQIM_NOT_FOUND ? MQIM_OK : st;
    }
    return st;
}

/* Visit every key of db starting with prefix \0, handing the rest of the
 * key and the value to fn. */
typedef int (*prefix_visit_fn)(void *ctx, mqim_str_t rest, const mqim_kv_val_t *val);

static mqim_status_t prefix_each(mqim_txn_t *txn, int db, mqim_str_t prefix, prefix_visit_fn fn,
                                 void *ctx)
{
    mqim_kv_cursor_t *c = NULL;
    keybuf_t k = { .len = 0 };
    mqim_kv_val_t key, val;
    size_t plen = prefix.len + 1u;
    int rc;
    if (txn->store->scan_failure != MQIM_OK) {
        return txn->store->scan_failure;
    }
    key_str(&k, prefix);
    key_sep(&k);
    key = kval(&k);
    rc = kv_cursor_open(txn, db, &c);
    if (rc != 0) {
        return map_rc(rc, "cursor");
    }
    for (rc = kv_cursor_get(txn, c, &key, &val, MQIM_KV_SET_RANGE); rc == 0;
         rc = kv_cursor_get(txn, c, &key, &val, MQIM_KV_NEXT)) {
        if (key.size <= plen || memcmp(key.data, k.b, plen) != 0) {
            break;
        }
        if (fn(ctx, (mqim_str_t){ (const char *)key.data + plen, key.size - plen }, &val) != 0) {
            break;
        }
    }
    kv_cursor_close(txn, c);
    return (rc == 0 || rc == MQIM_NOT_FOUND) ? MQIM_OK : map_rc(rc, "prefix scan");
}

typedef struct member_visit {
    mqim_member_visit_fn fn;
    void *ctx;
} member_visit_t;

static int member_visit(void *vctx, mqim_str_t user, const mqim_kv_val_t *val)
{
    member_visit_t *m = vctx;
    mqim_member_rec_t rec;
    if (val->size != 9u) {
        return 0;
    }
    rec.role = ((const unsigned char *)val->data)[0];
    rec.joined_ms = (int64_t)be64_get((const unsigned char *)val->data + 1);
    return m->fn(m->ctx, user, &rec);
}

mqim_status_t mqim_store_member_each(mqim_txn_t *txn, mqim_str_t group, mqim_member_visit_fn fn,
                                     void *ctx)
{
    member_visit_t m = { fn, ctx };
    return prefix_each(txn, DB_MEMBERS, group, member_visit, &m);
}

typedef struct membership_visit {
    mqim_membership_visit_fn fn;
    void *ctx;
} membership_visit_t;

static int membership_visit(void *vctx, mqim_str_t group, const mqim_kv_val_t *val)
{
    membership_visit_t *m = vctx;
    (void)val;
    return m->fn(m->ctx, group);
}

mqim_status_t mqim_store_membership_each(mqim_txn_t *txn, mqim_str_t user,
                                         mqim_membership_visit_fn fn, void *ctx)
{
    membership_visit_t m = { fn, ctx };
    return prefix_each(txn, DB_MEMBERSHIPS, user, membership_visit, &m);
}

/* receipts: be64(mid) \0 member -> status (1), ts (8). Forward-only. */
static void receipt_key(keybuf_t *k, uint64_t mid, mqim_str_t member)
{
    k->len = 0;
    key_u64(k, mid);
    key_sep(k);
    key_str(k, member);
}

mqim_status_t mqim_store_receipt_put(mqim_txn_t *txn, uint64_t mid, mqim_str_t member,
                                     uint8_t status, int64_t ts)
{
    keybuf_t k;
    mqim_kv_val_t v;
    unsigned char b[9];
    receipt_key(&k, mid, member);
    if (db_get(txn, DB_RECEIPTS, &k, &v) == MQIM_OK && v.size == 9u &&
        ((const unsigned char *)v.data)[0] >= status) {
        return MQIM_OK; /* already at least that far */
    }
    b[0] = status;
    be64_put(b + 1, (uint64_t)ts);
    return db_put(txn, DB_RECEIPTS, &k, b, sizeof(b));
}

/* Delete every receipt of a message (its record is gone), one key at a
 * time with a fresh seek. */
static mqim_status_t receipts_del(mqim_txn_t *txn, uint64_t mid)
{
    keybuf_t p;
    mqim_kv_val_t key, val;
    mqim_status_t st;
    p.len = 0;
    key_u64(&p, mid);
    key_sep(&p);
    while ((st = first_with_prefix(txn, DB_RECEIPTS, &p, &key, &val)) == MQIM_OK) {
        keybuf_t k;
        if (key.size > KEY_MAX) {
            return MQIM_STORE_ERROR;
        }
        memcpy(k.b, key.data, key.size);
        k.len = key.size;
        st = db_del(txn, DB_RECEIPTS, &k);
        if (st != MQIM_OK) {
            return st;
        }
    }
    return st == MQIM_NOT_FOUND ? MQIM_OK : st;
}

typedef struct receipt_visit {
    mqim_receipt_visit_fn fn;
    void *ctx;
} receipt_visit_t;

static int receipt_visit(void *vctx, mqim_str_t member, const mqim_kv_val_t *val)
{
    receipt_visit_t *r = vctx;
    if (val->size != 9u) {
        return 0;
    }
    return r->fn(r->ctx, member, ((const unsigned char *)val->data)[0],
                 (int64_t)be64_get((const unsigned char *)val->data + 1));
}

mqim_status_t mqim_store_receipt_each(mqim_txn_t *txn, uint64_t mid, mqim_receipt_visit_fn fn,
                                      void *ctx)
{
    unsigned char prefix[8];
    receipt_visit_t r = { fn, ctx };
    be64_put(prefix, mid);
    return prefix_each(txn, DB_RECEIPTS, (mqim_str_t){ (const char *)prefix, 8u }, receipt_visit, &r);
}

/* ---- files ---- */

mqim_status_t mqim_store_file_get(mqim_txn_t *txn, mqim_str_t file, mqim_str_t *meta)
{
    keybuf_t k = { .len = 0 };
    mqim_kv_val_t v;
    mqim_status_t st;
    key_str(&k, file);
    st = db_get(txn, DB_FILES, &k, &v);
    if (st == MQIM_OK) {
        *meta = (mqim_str_t){ v.data, v.size };
    }
    return st;
}

mqim_status_t mqim_store_file_put(mqim_txn_t *txn, mqim_str_t file, mqim_str_t meta)
{
    keybuf_t k = { .len = 0 };
    key_str(&k, file);
    return db_put(txn, DB_FILES, &k, meta.ptr, meta.len);
}

static void chunk_key(keybuf_t *k, mqim_str_t file, uint32_t index)
{
    k->len = 0;
    key_str(k, file);
    key_sep(k);
    if (k->len + 4u <= KEY_MAX) {
        k->b[k->len++] = (unsigned char)(index >> 24);
        k->b[k->len++] = (unsigned char)(index >> 16);
        k->b[k->len++] = (unsigned char)(index >> 8);
        k->b[k->len++] = (unsigned char)index;
    }
}

mqim_status_t mqim_store_chunk_get(mqim_txn_t *txn, mqim_str_t file, uint32_t index, mqim_str_t *data)
{
    keybuf_t k;
    mqim_kv_val_t v;
    mqim_status_t st;
    chunk_key(&k, file, index);
    st = db_get(txn, DB_CHUNKS, &k, &v);
    if (st == MQIM_OK) {
        *data = (mqim_str_t){ v.data, v.size };
    }
    return st;
}

mqim_status_t mqim_store_chunk_put(mqim_txn_t *txn, mqim_str_t file, uint32_t index, const uint8_t *data,
                                   size_t len)
{
    keybuf_t k;
    chunk_key(&k, file, index);
    return db_put(txn, DB_CHUNKS, &k, data, len);
}

mqim_status_t mqim_store_file_del(mqim_txn_t *txn, mqim_str_t file, uint32_t chunks)
{
    keybuf_t k = { .len = 0 };
    mqim_status_t st;
    for (uint32_t i = 0; i < chunks; i++) {
        chunk_key(&k, file, i);
        st = db_del(txn, DB_CHUNKS, &k);
        if (st != MQIM_OK && st != MQIM_NOT_FOUND) {
            return st;
        }
    }
    k.len = 0;
    key_str(&k, file);
    st = db_del(txn, DB_FILES, &k);
    return st == MQIM_NOT_FOUND ? MQIM_OK : st;
}

mqim_status_t mqim_store_upload_get(mqim_txn_t *txn, mqim_str_t from, mqim_str_t id, mqim_str_t *file)
{
    keybuf_t k;
    mqim_kv_val_t v;
    mqim_status_t st;
    dedupe_key(&k, from, id);
    st = db_get(txn, DB_UPLOADS, &k, &v);
    if (st == MQIM_OK) {
        *file = (mqim_str_t){ v.data, v.size };
    }
    return st;
}

mqim_status_t mqim_store_upload_put(mqim_txn_t *txn, mqim_str_t from, mqim_str_t id, mqim_str_t file)
{
    keybuf_t k;
    dedupe_key(&k, from, id);
    return db_put(txn, DB_UPLOADS, &k, file.ptr, file.len);
}

static void access_key(keybuf_t *k, mqim_str_t file, mqim_str_t user)
{
    k->len = 0;
    key_str(k, file);
    key_sep(k);
    key_str(k, user);
}

mqim_status_t mqim_store_file_grant(mqim_txn_t *txn, mqim_str_t file, mqim_str_t user)
{
    keybuf_t k;
    access_key(&k, file, user);
    return db_put(txn, DB_FILE_ACCESS, &k, "", 0);
}

mqim_status_t mqim_store_file_granted(mqim_txn_t *txn, mqim_str_t file, mqim_str_t user)
{
    keybuf_t k;
    mqim_kv_val_t v;
    access_key(&k, file, user);
    return db_get(txn, DB_FILE_ACCESS, &k, &v);
}

/* ---- E2E device keys: user \0 device -> key (32), be64(ts) ---- */

#define KEY_REC_LEN (MQIM_KEY_LEN + 8u)

static bool key_rec_decode(const mqim_kv_val_t *v, mqim_key_rec_t *rec)
{
    if (v->size != KEY_REC_LEN) {
        return false;
    }
    memcpy(rec->x25519, v->data, MQIM_KEY_LEN);
    rec->ts_ms = (int64_t)be64_get((const unsigned char *)v->data + MQIM_KEY_LEN);
    return true;
}

mqim_status_t mqim_store_key_get(mqim_txn_t *txn, mqim_str_t user, mqim_str_t device,
                                 mqim_key_rec_t *rec)
{
    keybuf_t k;
    mqim_kv_val_t v;
    mqim_status_t st;
    cursor_key(&k, user, device);
    st = db_get(txn, DB_KEYS, &k, &v);
    if (st == MQIM_OK && !key_rec_decode(&v, rec)) {
        return MQIM_STORE_ERROR;
    }
    return st;
}

mqim_status_t mqim_store_key_put(mqim_txn_t *txn, mqim_str_t user, mqim_str_t device,
                                 const mqim_key_rec_t *rec)
{
    keybuf_t k;
    unsigned char b[KEY_REC_LEN];
    memcpy(b, rec->x25519, MQIM_KEY_LEN);
    be64_put(b + MQIM_KEY_LEN, (uint64_t)rec->ts_ms);
    cursor_key(&k, user, device);
    return db_put(txn, DB_KEYS, &k, b, sizeof(b));
}

mqim_status_t mqim_store_key_del(mqim_txn_t *txn, mqim_str_t user, mqim_str_t device)
{
    keybuf_t k;
    cursor_key(&k, user, device);
    return db_del(txn, DB_KEYS, &k);
}

typedef struct key_visit {
    mqim_key_visit_fn fn;
    void *ctx;
} key_visit_t;

static int key_visit(void *vctx, mqim_str_t device, const mqim_kv_val_t *val)
{
    key_visit_t *kv = vctx;
    mqim_key_rec_t rec;
    if (!key_rec_decode(val, &rec)) {
        return 0; /* not a key record: skip, as the other scans do */
    }
    return kv->fn(kv->ctx, device, &rec);
}

mqim_status_t mqim_store_key_each(mqim_txn_t *txn, mqim_str_t user, mqim_key_visit_fn fn, void *ctx)
{
    key_visit_t kv = { fn, ctx };
    return prefix_each(txn, DB_KEYS, user, key_visit, &kv);
}

/* ---- identity (store.h, "Store identity") ---- */

#define META_SCHEMA "schema"
#define META_STORE_ID "store_id"
#define META_EPOCH "store_epoch"
#define META_EPOCH_ORDINAL "epoch_ordinal"
#define META_HOME_DEV "home_dev"
#define META_HOME_INO "home_ino"

static uint64_t meta_get(mqim_txn_t *txn, const char *name);
static mqim_status_t meta_put(mqim_txn_t *txn, const char *name, uint64_t value);

static int random_bytes(void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len > 0u) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* A random epoch in 1..2^53-1: a JSON number every reader takes exactly. */
static int random_epoch(uint64_t *epoch)
{
    uint64_t v = 0;
    do {
        if (random_bytes(&v, sizeof(v)) != 0) {
            return -1;
        }
        v &= (UINT64_C(1) << 53) - 1u;
    } while (v == 0u);
    *epoch = v;
    return 0;
}

/* The identity as stored: the id (16 random bytes) in hex, the epoch. */
static void identity_read(mqim_txn_t *txn, mqim_store_identity_t *id)
{
    keybuf_t k = { .len = 0 };
    mqim_kv_val_t v;
    static const char hex[] = "0123456789abcdef";
    memset(id, 0, sizeof(*id));
    key_str(&k, mqim_str_from_cstr(META_STORE_ID));
    if (db_get(txn, DB_META, &k, &v) == MQIM_OK && v.size == MQIM_STORE_ID_BYTES) {
        const unsigned char *b = v.data;
        for (size_t i = 0; i < MQIM_STORE_ID_BYTES; i++) {
            id->id[2u * i] = hex[b[i] >> 4];
            id->id[2u * i + 1u] = hex[b[i] & 15u];
        }
    }
    id->epoch = meta_get(txn, META_EPOCH);
    id->schema = meta_get(txn, META_SCHEMA);
}

/* Record the top of every user's inbox under the new epoch's ordinal (what
 * the history shared with every earlier epoch may be at most), then switch. */
static int fork_visit(void *ctx, mqim_str_t user, const mqim_user_rec_t *rec);

typedef struct fork_ctx {
    mqim_txn_t *txn;
    uint64_t ordinal;
    mqim_status_t st;
} fork_ctx_t;

static mqim_status_t epoch_switch(mqim_txn_t *txn, const char *why)
{
    uint64_t epoch = 0, ordinal = meta_get(txn, META_EPOCH_ORDINAL) + 1u;
    keybuf_t k = { .len = 0 };
    unsigned char ord[8];
    fork_ctx_t f = { txn, ordinal, MQIM_OK };
    mqim_status_t st;
    if (random_epoch(&epoch) != 0) {
        MQIM_LOGE(LOG_MOD, "no random bytes for a new store epoch: %s", strerror(errno));
        return MQIM_INTERNAL;
    }
    st = mqim_store_user_each(txn, fork_visit, &f);
    if (st == MQIM_OK) {
        st = f.st;
    }
    key_u64(&k, epoch);
    be64_put(ord, ordinal);
    if (st == MQIM_OK) {
        st = db_put(txn, DB_EPOCHS, &k, ord, sizeof(ord));
    }
    if (st == MQIM_OK) {
        st = meta_put(txn, META_EPOCH_ORDINAL, ordinal);
    }
    if (st == MQIM_OK) {
        st = meta_put(txn, META_EPOCH, epoch);
    }
    if (st == MQIM_OK && why != NULL) {
        MQIM_LOGW(LOG_MOD, "new store epoch %" PRIu64 " (%s): devices re-sync from the gateway",
                  epoch, why);
    }
    return st;
}

static int fork_visit(void *ctx, mqim_str_t user, const mqim_user_rec_t *rec)
{
    fork_ctx_t *f = ctx;
    keybuf_t k = { .len = 0 };
    unsigned char top[8];
    key_str(&k, user);
    key_sep(&k);
    key_u64(&k, f->ordinal);
    be64_put(top, rec->next_seq > 0u ? rec->next_seq - 1u : 0u);
    f->st = db_put(f->txn, DB_FORKS, &k, top, sizeof(top));
    return f->st != MQIM_OK;
}

/* Make, upgrade or check the identity of a store opened for writing. */
static mqim_status_t identity_setup(mqim_store_t *s, const char *dir)
{
    mqim_txn_t txn = { s, NULL, true };
    mqim_status_t st;
    uint64_t schema;
    char path[4096];
    struct stat sb;
    bool fresh, copied = false;
    keybuf_t k = { .len = 0 };
    mqim_kv_val_t v;
    st = mqim_txn_begin(s, MQIM_TXN_WRITE, &txn);
    if (st != MQIM_OK) {
        return st;
    }
    schema = meta_get(&txn, META_SCHEMA);
    /* A store without a format version: empty (new) or format 1 (written
     * before versions were recorded; it has a next_mid or users). */
    fresh = schema == 0u && meta_get(&txn, "next_mid") == 0u && db_entries(&txn, DB_USERS) == 0u &&
            db_entries(&txn, DB_OUTBOX) == 0u;
    if (schema > MQIM_STORE_SCHEMA) {
        MQIM_LOGE(LOG_MOD, "the store in %s has format %" PRIu64 ", newer than this mqim-gateway's "
                  "(%u): run the newer mqim-gateway that wrote it, or restore a backup", dir, schema,
                  MQIM_STORE_SCHEMA);
        mqim_txn_abort(&txn);
        return MQIM_UNSUPPORTED;
    }
    key_str(&k, mqim_str_from_cstr(META_STORE_ID));
    st = db_get(&txn, DB_META, &k, &v);
    if (st == MQIM_NOT_FOUND) {
        unsigned char id[MQIM_STORE_ID_BYTES];
        st = random_bytes(id, sizeof(id)) == 0 ? db_put(&txn, DB_META, &k, id, sizeof(id))
                                              : MQIM_INTERNAL;
    }
    if (st == MQIM_OK && meta_get(&txn, META_EPOCH) == 0u) {
        st = epoch_switch(&txn, NULL);
    }
    if (st == MQIM_OK && schema < MQIM_STORE_SCHEMA) {
        /* 1 -> 2: the identity (made above) and the epochs and forks
         * databases (created at open). Nothing else changed shape. */
        if (!fresh) {
            MQIM_LOGI(LOG_MOD, "store in %s upgraded from format %" PRIu64 " to %u", dir,
                      schema == 0u ? UINT64_C(1) : schema, MQIM_STORE_SCHEMA);
        }
        st = meta_put(&txn, META_SCHEMA, MQIM_STORE_SCHEMA);
    }
    /* The same store file, or a copy of it (restored from a file backup,
     * copied to a second machine, moved): a copy's history may go on apart
     * from the original's, so it starts a new epoch. */
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    if (st == MQIM_OK && s->engine == MQIM_STORE_LMDB && stat(path, &sb) == 0) {
        uint64_t dev = meta_get(&txn, META_HOME_DEV), ino = meta_get(&txn, META_HOME_INO);
        if (ino != 0u && (dev != (uint64_t)sb.st_dev || ino != (uint64_t)sb.st_ino)) {
            st = epoch_switch(&txn, "the store file is a copy: restored, moved or a second instance");
            copied = true;
        }
        if (st == MQIM_OK && (dev != (uint64_t)sb.st_dev || ino != (uint64_t)sb.st_ino)) {
            st = meta_put(&txn, META_HOME_DEV, (uint64_t)sb.st_dev);
            if (st == MQIM_OK) {
                st = meta_put(&txn, META_HOME_INO, (uint64_t)sb.st_ino);
            }
        }
    }
    if (st == MQIM_OK) {
        identity_read(&txn, &s->identity);
        s->identity.copied = copied;
        st = mqim_txn_commit(&txn);
    } else {
        mqim_txn_abort(&txn);
    }
    return st;
}

void mqim_store_fail_scans(mqim_store_t *store, mqim_status_t st)
{
    store->scan_failure = st;
}

const mqim_store_identity_t *mqim_store_identity(const mqim_store_t *store)
{
    return &store->identity;
}

mqim_status_t mqim_store_copy(mqim_store_t *store, const char *dir)
{
    if (store->engine != MQIM_STORE_LMDB) {
        MQIM_LOGE(LOG_MOD, "backup copies the LMDB store only: back up PostgreSQL with its own "
                  "tools (pg_basebackup, pg_dump; docs/scale.md)");
        return MQIM_UNSUPPORTED;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        MQIM_LOGE(LOG_MOD, "cannot create %s: %s", dir, strerror(errno));
        return MQIM_STORE_ERROR;
    }
    return store->kv->engine->copy(store->kv, dir);
}

mqim_status_t mqim_store_new_epoch(mqim_store_t *store, const char *why)
{
    mqim_txn_t txn;
    mqim_status_t st = mqim_txn_begin(store, MQIM_TXN_WRITE, &txn);
    if (st != MQIM_OK) {
        return st;
    }
    st = epoch_switch(&txn, why);
    if (st == MQIM_OK) {
        identity_read(&txn, &store->identity);
        return mqim_txn_commit(&txn);
    }
    mqim_txn_abort(&txn);
    return st;
}

typedef struct fork_min {
    uint64_t after_ordinal, seq, found;
    bool any;
} fork_min_t;

static int fork_min_visit(void *ctx, mqim_str_t rest, const mqim_kv_val_t *val)
{
    fork_min_t *m = ctx;
    uint64_t ordinal, seq;
    if (rest.len != 8u || val->size != 8u) {
        return 0;
    }
    ordinal = be64_get((const unsigned char *)rest.ptr);
    seq = be64_get(val->data);
    if (ordinal > m->after_ordinal) {
        m->found++;
        if (!m->any || seq < m->seq) {
            m->seq = seq;
            m->any = true;
        }
    }
    return 0;
}

mqim_status_t mqim_store_epoch_seq(mqim_txn_t *txn, mqim_str_t user, uint64_t since_epoch,
                                   uint64_t *seq)
{
    keybuf_t k = { .len = 0 };
    mqim_kv_val_t v;
    fork_min_t m = { 0, 0, 0, false };
    uint64_t current = meta_get(txn, META_EPOCH_ORDINAL);
    mqim_status_t st;
    if (since_epoch == txn->store->identity.epoch) {
        *seq = UINT64_MAX;
        return MQIM_OK;
    }
    if (since_epoch != 0u) {
        key_u64(&k, since_epoch);
        st = db_get(txn, DB_EPOCHS, &k, &v);
        if (st == MQIM_OK && v.size == 8u) {
            m.after_ordinal = be64_get(v.data);
        } else if (st != MQIM_OK && st != MQIM_NOT_FOUND) {
            return st;
        }
    }
    if (since_epoch == 0u) {
        /* no epoch named: the fork of the current epoch */
        m.after_ordinal = current - 1u;
    }
    st = prefix_each(txn, DB_FORKS, user, fork_min_visit, &m);
    /* An epoch begun before the user existed has no fork of theirs: 0. */
    *seq = m.any && m.found >= current - m.after_ordinal ? m.seq : 0u;
    return st;
}

/* ---- one gateway per data directory ---- */

int mqim_store_lock_dir(const char *dir, char *err, size_t cap)
{
    char path[4096], pid[32];
    int fd;
    ssize_t n;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, cap, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof(path), "%s/gateway.lock", dir);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, cap, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        n = pread(fd, pid, sizeof(pid) - 1u, 0);
        pid[n > 0 ? (size_t)n : 0u] = '\0';
        pid[strcspn(pid, "\r\n")] = '\0';
        if (e == EWOULDBLOCK) {
            snprintf(err, cap, "another mqim-gateway (pid %s) is using the data directory %s "
                     "(%s is locked): one gateway per store", pid[0] != '\0' ? pid : "unknown",
                     dir, path);
        } else {
            snprintf(err, cap, "cannot lock %s: %s", path, strerror(e));
        }
        close(fd);
        return -1;
    }
    n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        /* the lock holds without the pid; the message then says "unknown" */
    }
    return fd;
}
