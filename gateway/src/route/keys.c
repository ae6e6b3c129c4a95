/* End-to-end encryption keys (docs/e2e.md): devices publish their X25519
 * public keys on {root}/u/{me}/out/key, the gateway keeps them (database
 * `keys`) and republishes each user's whole set, retained, on
 * {root}/keys/{user}; the `keys` control request answers a sender with the
 * keys it must encrypt for. The gateway only checks and stores public
 * keys: it never holds a private key, so it cannot read what they protect. */
#include "router_internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqim/base64.h"
#include "mqim/name.h"

#define KEYS_PER_USER 16u
#define KEY_B64_LEN MQIM_BASE64_LEN(MQIM_KEY_LEN)

typedef struct kx_work {
    req_t *q;
    /* keys of a user: the requester and the peer, in byte order, once each */
    char users[2][MQIM_USER_NAME_MAX];
    size_t user_lens[2];
    size_t nusers;
    mqim_str_t group; /* keys of a group: every member's instead (points into the request) */
} kx_work_t;

static void key_b64(const mqim_key_rec_t *rec, char out[KEY_B64_LEN])
{
    size_t len = 0;
    (void)mqim_base64_encode(rec->x25519, MQIM_KEY_LEN, out, KEY_B64_LEN, &len);
}

/* ---- the retained set: {root}/keys/{user} ---- */

typedef struct set_doc {
    req_t *q;
    mqim_str_t user;
} set_doc_t;

static int set_entry(void *vctx, mqim_str_t device, const mqim_key_rec_t *rec)
{
    mqim_json_writer_t *w = vctx;
    char b64[KEY_B64_LEN];
    key_b64(rec, b64);
    mqim_json_object_begin(w);
    mqim_json_key_str(w, "device", device);
    mqim_json_key_str(w, "x25519", (mqim_str_t){ b64, sizeof(b64) });
    mqim_json_key_i64(w, "ts", rec->ts_ms);
    mqim_json_object_end(w);
    return 0;
}

static void build_set(mqim_json_writer_t *w, const void *vctx)
{
    const set_doc_t *d = vctx;
    mqim_json_object_begin(w);
    mqim_json_key_str(w, "user", d->user);
    mqim_json_array_begin(w, "keys");
    rt_body_status(d->q, mqim_store_key_each(&d->q->txn, d->user, set_entry, w)); /* sorted by device */
    mqim_json_array_end(w);
    mqim_json_object_end(w);
}

/* Republish the sender's set (inside q->txn, after the change). An empty set
 * stays a document ({"keys":[]}), not a retained clear, so a reader can tell
 * "no keys" from "no gateway". */
static mqim_status_t publish_set(req_t *q)
{
    set_doc_t d = { q, q->t.user };
    mqim_str_t payload;
    mqim_status_t st = rt_build_doc(q, build_set, &d, &payload);
    if (st == MQIM_OK) {
        st = rt_emit(q, MQIM_TOPIC_KEYS, q->t.user, 1, true, payload);
    }
    return st;
}

/* ---- out/key ---- */

typedef struct key_req {
    mqim_str_t device; /* points into devbuf: outlives the parsed request */
    bool remove;
    mqim_key_rec_t rec;
    char devbuf[MQIM_DEVICE_NAME_MAX];
} key_req_t;

static int count_key(void *vctx, mqim_str_t device, const mqim_key_rec_t *rec)
{
    (void)device;
    (void)rec;
    (*(size_t *)vctx)++;
    return 0;
}

/* Check a key payload; on failure *why says what is wrong. */
static mqim_status_t key_parse(const cJSON *root, key_req_t *k, const char **why)
{
    const cJSON *remove = cJSON_GetObjectItemCaseSensitive(root, "remove");
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(root, "x25519");
    mqim_str_t b64;
    uint8_t raw[MQIM_KEY_LEN + 3u]; /* room to tell a longer key from a 32-byte one */
    size_t len = 0;
    mqim_status_t st;
    memset(k, 0, sizeof(*k));
    k->device = rt_json_str(cJSON_GetObjectItemCaseSensitive(root, "device"));
    if (cJSON_GetObjectItemCaseSensitive(root, "device") == NULL) {
        *why = "\"device\" is required";
        return MQIM_FIELD_MISSING;
    }
    st = mqim_name_check(MQIM_NAME_DEVICE, k->device);
    if (st != MQIM_OK) {
        *why = "\"device\" must be a device name: 1..32 of [A-Za-z0-9_.-]";
        return st == MQIM_NAME_EMPTY ? MQIM_FIELD_TYPE : st;
    }
    memcpy(k->devbuf, k->device.ptr, k->device.len);
    k->device.ptr = k->devbuf;
    if (remove != NULL) {
        if (!cJSON_IsTrue(remove)) {
            *why = "\"remove\" can only be true";
            return MQIM_FIELD_TYPE;
        }
        if (x != NULL) {
            *why = "give \"x25519\" or \"remove\":true, not both";
            return MQIM_FIELD_RANGE;
        }
        k->remove = true;
        return MQIM_OK;
    }
    if (x == NULL) {
        *why = "\"x25519\" (or \"remove\":true) is required";
        return MQIM_FIELD_MISSING;
    }
    if (!cJSON_IsString(x)) {
        *why = "\"x25519\" must be a string: the base64 of a 32-byte public key";
        return MQIM_FIELD_TYPE;
    }
    b64 = rt_json_str(x);
    st = mqim_base64_decode(b64.ptr, b64.len, raw, sizeof(raw), &len);
    if (st == MQIM_FIELD_TYPE) {
        *why = "\"x25519\" is not base64 (standard alphabet, padded)";
        return st;
    }
    if (st != MQIM_OK || len != MQIM_KEY_LEN) {
        *why = "\"x25519\" must decode to exactly 32 bytes";
        return MQIM_FIELD_RANGE;
    }
    memcpy(k->rec.x25519, raw, MQIM_KEY_LEN);
    return MQIM_OK;
}

/* Apply k to the sender's set inside q->txn; *changed says whether it did. */
static mqim_status_t key_apply(req_t *q, const key_req_t *k, bool *changed, const char **why)
{
    mqim_key_rec_t old;
    size_t n = 0;
    mqim_status_t st = mqim_store_key_get(&q->txn, q->t.user, k->device, &old);
    *changed = false;
    if (st != MQIM_OK && st != MQIM_NOT_FOUND) {
        return st;
    }
    if (k->remove) {
        if (st == MQIM_NOT_FOUND) {
            return MQIM_OK; /* already gone: a replayed retained removal */
        }
        *changed = true;
        return mqim_store_key_del(&q->txn, q->t.user, k->device);
    }
    if (st == MQIM_OK) {
        if (memcmp(old.x25519, k->rec.x25519, MQIM_KEY_LEN) == 0) {
            return MQIM_OK; /* the same key again (a retained replay): no news */
        }
    } else {
        /* A new device: the limit counts devices, a replaced key is not one more. */
        st = mqim_store_key_each(&q->txn, q->t.user, count_key, &n);
        if (st != MQIM_OK) {
            return st;
        }
        if (n >= KEYS_PER_USER) {
            *why = "you have 16 device keys already: remove one ({\"device\":D,\"remove\":true}) first";
            return MQIM_E2E_TOO_MANY_KEYS;
        }
    }
    /* A new key of a known device (a reinstalled phone) is a new key: its
     * ts is now, so readers can see when it changed. */
    {
        mqim_key_rec_t rec = k->rec;
        rec.ts_ms = q->now;
        *changed = true;
        st = mqim_store_user_ensure(&q->txn, q->t.user, q->now);
        return st == MQIM_OK ? mqim_store_key_put(&q->txn, q->t.user, k->device, &rec) : st;
    }
}

mqim_status_t kx_handle_key(req_t *q)
{
    const mqim_str_t none = { NULL, 0 };
    const char *why = NULL;
    key_req_t k;
    bool changed = false;
    mqim_status_t st;
    cJSON *root;

    if (q->in->payload.len == 0u) {
        return MQIM_OK; /* a device clearing its retained key publish: nothing to do */
    }
    root = rt_parse_object(q->in->payload, &st);
    if (root == NULL) {
        return rt_reject(q, "key", none, none, st, "%s", mqim_status_str(st));
    }
    st = key_parse(root, &k, &why);
    cJSON_Delete(root);
    if (st != MQIM_OK) {
        return rt_reject(q, "key", none, none, st, "%s", why);
    }
    st = mqim_txn_begin(q->r->store, MQIM_TXN_WRITE, &q->txn);
    if (st != MQIM_OK) {
        return rt_reject(q, "key", none, none, st, "%s", mqim_status_str(st));
    }
    st = key_apply(q, &k, &changed, &why);
    if (st == MQIM_OK && changed) {
        st = publish_set(q);
    }
    if (st == MQIM_OK && changed) {
        st = mqim_txn_commit(&q->txn);
    } else {
        mqim_txn_abort(&q->txn); /* nothing changed, or an error: nothing to keep */
    }
    if (st != MQIM_OK) {
        return rt_reject(q, "key", none, none, st, "%s", why != NULL ? why : mqim_status_str(st));
    }
    return MQIM_OK;
}

/* ---- ctl "keys" ---- */

typedef struct entry_ctx {
    mqim_json_writer_t *w;
    mqim_str_t user;
} entry_ctx_t;

static int write_entry(void *vctx, mqim_str_t device, const mqim_key_rec_t *rec)
{
    entry_ctx_t *e = vctx;
    char b64[KEY_B64_LEN];
    key_b64(rec, b64);
    mqim_json_object_begin(e->w);
    mqim_json_key_str(e->w, "user", e->user);
    mqim_json_key_str(e->w, "device", device);
    mqim_json_key_str(e->w, "x25519", (mqim_str_t){ b64, sizeof(b64) });
    mqim_json_object_end(e->w);
    return 0;
}

typedef struct member_ctx {
    req_t *q;
    mqim_json_writer_t *w;
} member_ctx_t;

static int write_member(void *vctx, mqim_str_t user, const mqim_member_rec_t *rec)
{
    member_ctx_t *m = vctx;
    entry_ctx_t e = { m->w, user };
    (void)rec;
    rt_body_status(m->q, mqim_store_key_each(&m->q->txn, user, write_entry, &e));
    return 0;
}

/* Members and devices both come in key order, which is byte order of the
 * names: the list is sorted by user, then device, each pair once. */
static void keys_body(mqim_json_writer_t *w, const ctl_doc_t *d)
{
    const kx_work_t *kw = d->ctx;
    mqim_json_array_begin(w, "keys");
    if (kw->group.len > 0u) {
        member_ctx_t m = { kw->q, w };
        rt_body_status(kw->q, mqim_store_member_each(&kw->q->txn, kw->group, write_member, &m));
    } else {
        for (size_t i = 0; i < kw->nusers; i++) {
            entry_ctx_t e = { w, { kw->users[i], kw->user_lens[i] } };
            rt_body_status(kw->q, mqim_store_key_each(&kw->q->txn, e.user, write_entry, &e));
        }
    }
    mqim_json_array_end(w);
}

static int name_cmp(mqim_str_t a, mqim_str_t b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = memcmp(a.ptr, b.ptr, n);
    return c != 0 ? c : (a.len > b.len) - (a.len < b.len);
}

static void add_user(kx_work_t *kw, mqim_str_t u)
{
    memcpy(kw->users[kw->nusers], u.ptr, u.len);
    kw->user_lens[kw->nusers++] = u.len;
}

static mqim_status_t keys_request(req_t *q, const cJSON *root, ctl_doc_t *d, kx_work_t *kw)
{
    const cJSON *ju = cJSON_GetObjectItemCaseSensitive(root, "user");
    const cJSON *jg = cJSON_GetObjectItemCaseSensitive(root, "group");
    mqim_str_t me = q->t.user;
    memset(kw, 0, sizeof(*kw));
    kw->q = q;
    if ((ju == NULL) == (jg == NULL)) {
        d->reason = ju == NULL ? "\"user\" or \"group\" is required"
                               : "give \"user\" or \"group\", not both";
        return MQIM_BAD_REQUEST;
    }
    if (jg != NULL) {
        mqim_group_rec_t g;
        mqim_member_rec_t mr;
        mqim_status_t st;
        kw->group = rt_json_str(jg);
        if (mqim_name_check(MQIM_NAME_GROUP, kw->group) != MQIM_OK) {
            d->reason = "\"group\" must be a valid group name";
            return MQIM_FIELD_TYPE;
        }
        st = mqim_store_group_get(&q->txn, kw->group, &g);
        if (st == MQIM_OK) {
            st = mqim_store_member_get(&q->txn, kw->group, me, &mr);
        }
        if (st == MQIM_NOT_FOUND) {
            /* the same answer for both: a non-member learns nothing of the group */
            d->reason = "no such group, or you are not a member of it";
        }
        return st;
    }
    {
        mqim_str_t peer = rt_json_str(ju);
        int c;
        if (mqim_name_check(MQIM_NAME_USER, peer) != MQIM_OK) {
            d->reason = "\"user\" must be a valid user name";
            return MQIM_FIELD_TYPE;
        }
        if (!rt_user_known(q, peer) && !q->r->cfg.accept_any_user) {
            d->reason = "no such user";
            return MQIM_UNKNOWN_PEER;
        }
        c = name_cmp(me, peer);
        add_user(kw, c <= 0 ? me : peer);
        if (c != 0) {
            add_user(kw, c < 0 ? peer : me);
        }
    }
    return MQIM_OK;
}

static mqim_status_t ctl_keys(req_t *q, const cJSON *root, ctl_doc_t *d, void *work)
{
    mqim_status_t st;
    /* A read: answered at once, never stored (a lost answer is asked again). */
    d->direct_response = true;
    st = keys_request(q, root, d, work);
    if (st == MQIM_OK) {
        d->body = keys_body;
        d->ctx = work;
    }
    return st;
}

static const rt_ctl_op_t kx_ops[] = {
    { "keys", ctl_keys, sizeof(kx_work_t) },
};

const rt_feature_t kx_feature = { RT_FEATURE_KEYS, kx_ops, sizeof(kx_ops) / sizeof(kx_ops[0]), 0, false };
