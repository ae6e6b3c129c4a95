/* End-to-end encryption (e2e.h, docs/e2e.md). The format functions first
 * (seal, open: stateless and deterministic), then one device's state
 * (identity, trust on first use, replay window). Crypto is the port's;
 * this file only arranges bytes. */
#include "mqim/e2e.h"

#include <string.h>

#include "mqim/base64.h"
#include "mqim/json_read.h"
#include "mqim/json_write.h"
#include "mqim/name.h"
#include "mqim/sha256.h"
#include "mqim/utf8.h"

static const uint8_t zero_nonce[MQIM_AEAD_NONCE_LEN] = { 0 };
static const uint8_t base_point[MQIM_X25519_LEN] = { 9 };
static const char ad_label[] = "mqim-e2e-v1"; /* hashed with its NUL */
static const char wrap_label[] = "mqim-e2e-v1 wrap";

/* Wipe secrets; volatile so the compiler cannot drop it as a dead store. */
static void wipe(void *p, size_t n)
{
    volatile uint8_t *b = p;
    while (n-- > 0u) {
        *b++ = 0;
    }
}

static void hash_lp(mqim_sha256_t *h, mqim_str_t s)
{
    uint8_t n = (uint8_t)s.len; /* every field hashed is at most 64 bytes, checked before */
    mqim_sha256_update(h, &n, 1u);
    mqim_sha256_update(h, s.ptr, s.len);
}

/* H up to and including the recipient count; the entries follow. */
static void ad_begin(mqim_sha256_t *h, mqim_str_t from, mqim_str_t sd, const uint8_t *spk,
                     const uint8_t *epk, const mqim_envelope_t *env, size_t count)
{
    uint8_t n = (uint8_t)count;
    mqim_sha256_init(h);
    mqim_sha256_update(h, ad_label, sizeof(ad_label)); /* with the 0x00 */
    hash_lp(h, from);
    hash_lp(h, sd);
    mqim_sha256_update(h, spk, MQIM_E2E_KEY_LEN);
    mqim_sha256_update(h, epk, MQIM_E2E_KEY_LEN);
    hash_lp(h, env->to);
    hash_lp(h, env->group);
    hash_lp(h, env->id);
    hash_lp(h, env->type);
    mqim_sha256_update(h, &n, 1u);
}

/* KEK = HKDF-SHA256(salt H, ES || SS, "mqim-e2e-v1 wrap" || P). */
static mqim_status_t derive_kek(const mqim_crypto_ops_t *c, void *cctx, const uint8_t *sk_a,
                                const uint8_t *pk_a, const uint8_t *sk_b, const uint8_t *pk_b,
                                const uint8_t *recipient_pk, const uint8_t h[MQIM_SHA256_LEN],
                                uint8_t kek[MQIM_AEAD_KEY_LEN])
{
    uint8_t ikm[2u * MQIM_X25519_LEN];
    uint8_t info[sizeof(wrap_label) - 1u + MQIM_E2E_KEY_LEN];
    mqim_status_t st = MQIM_OK;
    if (c->x25519(cctx, sk_a, pk_a, ikm) != 0 || c->x25519(cctx, sk_b, pk_b, ikm + MQIM_X25519_LEN) != 0) {
        st = MQIM_CRYPTO_ERROR;
    }
    memcpy(info, wrap_label, sizeof(wrap_label) - 1u);
    memcpy(info + sizeof(wrap_label) - 1u, recipient_pk, MQIM_E2E_KEY_LEN);
    if (st == MQIM_OK && c->hkdf_sha256(cctx, h, MQIM_SHA256_LEN, ikm, sizeof(ikm), info, sizeof(info), kek,
                                        MQIM_AEAD_KEY_LEN) != 0) {
        st = MQIM_CRYPTO_ERROR;
    }
    wipe(ikm, sizeof(ikm));
    return st;
}

/* ---- writing: base64 strings straight into the JSON writer -------------- */

static void append(mqim_json_writer_t *w, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++, w->len++) {
        if (w->len < w->cap) {
            w->buf[w->len] = s[i];
        }
    }
}

static void key_b64(mqim_json_writer_t *w, const char *key, const uint8_t *bytes, size_t n)
{
    char tmp[MQIM_BASE64_LEN(48u)];
    size_t done = 0, len = 0;
    mqim_json_key_raw(w, key, MQIM_STR("\""));
    while (done < n) {
        size_t chunk = n - done > 48u ? 48u : n - done; /* a multiple of 3 until the last */
        (void)mqim_base64_encode(bytes + done, chunk, tmp, sizeof(tmp), &len);
        append(w, tmp, len);
        done += chunk;
    }
    append(w, "\"", 1u);
}

static mqim_status_t type_check(mqim_str_t t)
{
    if (t.len == 0u || t.len > MQIM_TYPE_MAX) {
        return MQIM_TYPE_BAD;
    }
    for (size_t i = 0; i < t.len; i++) {
        char c = t.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-')) {
            return MQIM_TYPE_BAD;
        }
    }
    return MQIM_OK;
}

static mqim_status_t seal_check(const mqim_e2e_seal_in_t *in)
{
    mqim_status_t st = mqim_name_check(MQIM_NAME_USER, in->from);
    if (st == MQIM_OK) {
        st = mqim_name_check(MQIM_NAME_DEVICE, in->sender_device);
    }
    if (st == MQIM_OK && (in->to.len > 0u) == (in->group.len > 0u)) {
        st = MQIM_BAD_PARAMETER; /* exactly one of to and group */
    }
    if (st == MQIM_OK) {
        st = in->to.len > 0u ? mqim_name_check(MQIM_NAME_USER, in->to)
                             : mqim_name_check(MQIM_NAME_GROUP, in->group);
    }
    if (st == MQIM_OK) {
        st = mqim_id_check(in->id);
    }
    if (st == MQIM_OK) {
        st = type_check(in->type);
    }
    if (st == MQIM_OK && in->recipient_count == 0u) {
        st = MQIM_E2E_NO_KEYS;
    }
    if (st == MQIM_OK && in->recipient_count > MQIM_E2E_RECIPIENTS_LIMIT) {
        st = MQIM_E2E_TOO_MANY_RECIPIENTS;
    }
    for (size_t i = 0; st == MQIM_OK && i < in->recipient_count; i++) {
        st = mqim_name_check(MQIM_NAME_USER, in->recipients[i].user);
        if (st == MQIM_OK) {
            st = mqim_name_check(MQIM_NAME_DEVICE, in->recipients[i].device);
        }
    }
    if (st == MQIM_OK && in->text.len > MQIM_BODY_MAX) {
        st = MQIM_BODY_TOO_LARGE;
    }
    if (st == MQIM_OK && !mqim_utf8_valid(in->text.ptr, in->text.len)) {
        st = MQIM_UTF8_INVALID;
    }
    if (st == MQIM_OK && (in->work == 0 || in->work_cap < in->text.len + MQIM_AEAD_TAG_LEN)) {
        st = MQIM_BUFFER_TOO_SMALL;
    }
    return st;
}

mqim_status_t mqim_e2e_seal(const mqim_crypto_ops_t *crypto, void *crypto_ctx,
                            const mqim_e2e_seal_in_t *in, char *out, size_t cap, size_t *out_len)
{
    mqim_envelope_t meta;
    mqim_sha256_t hs;
    mqim_json_writer_t w;
    uint8_t h[MQIM_SHA256_LEN], epk[MQIM_E2E_KEY_LEN], kek[MQIM_AEAD_KEY_LEN], wrap[MQIM_E2E_WRAP_LEN];
    mqim_status_t st;
    if (crypto == 0 || in == 0 || out_len == 0 || (out == 0 && cap > 0u) || in->sender_sk == 0 ||
        in->sender_pk == 0 || in->ephemeral_sk == 0 || in->content_key == 0 ||
        (in->recipients == 0 && in->recipient_count > 0u) || (in->text.ptr == 0 && in->text.len > 0u)) {
        return MQIM_BAD_PARAMETER;
    }
    *out_len = 0;
    st = seal_check(in);
    if (st != MQIM_OK) {
        return st;
    }
    if (crypto->x25519(crypto_ctx, in->ephemeral_sk, base_point, epk) != 0) {
        return MQIM_CRYPTO_ERROR;
    }
    memset(&meta, 0, sizeof(meta));
    meta.to = in->to;
    meta.group = in->group;
    meta.id = in->id;
    meta.type = in->type;
    ad_begin(&hs, in->from, in->sender_device, in->sender_pk, epk, &meta, in->recipient_count);
    for (size_t i = 0; i < in->recipient_count; i++) {
        hash_lp(&hs, in->recipients[i].user);
        hash_lp(&hs, in->recipients[i].device);
    }
    mqim_sha256_final(&hs, h);
    if (crypto->aead_seal(crypto_ctx, in->content_key, zero_nonce, h, sizeof(h),
                          (const uint8_t *)in->text.ptr, in->text.len, in->work) != 0) {
        return MQIM_CRYPTO_ERROR;
    }
    mqim_json_init(&w, out, cap);
    mqim_json_object_begin(&w);
    mqim_json_key_u64(&w, "v", 1u);
    mqim_json_key_str(&w, "sd", in->sender_device);
    key_b64(&w, "spk", in->sender_pk, MQIM_E2E_KEY_LEN);
    key_b64(&w, "epk", epk, MQIM_E2E_KEY_LEN);
    mqim_json_array_begin(&w, "r");
    for (size_t i = 0; st == MQIM_OK && i < in->recipient_count; i++) {
        const mqim_e2e_key_t *r = &in->recipients[i];
        st = derive_kek(crypto, crypto_ctx, in->ephemeral_sk, r->pk, in->sender_sk, r->pk, r->pk, h, kek);
        if (st == MQIM_OK && crypto->aead_seal(crypto_ctx, kek, zero_nonce, h, sizeof(h), in->content_key,
                                               MQIM_AEAD_KEY_LEN, wrap) != 0) {
            st = MQIM_CRYPTO_ERROR;
        }
        mqim_json_object_begin(&w);
        mqim_json_key_str(&w, "u", r->user);
        mqim_json_key_str(&w, "d", r->device);
        key_b64(&w, "k", wrap, sizeof(wrap));
        mqim_json_object_end(&w);
    }
    mqim_json_array_end(&w);
    key_b64(&w, "ct", in->work, in->text.len + MQIM_AEAD_TAG_LEN);
    mqim_json_object_end(&w);
    wipe(kek, sizeof(kek));
    wipe(in->work, in->text.len + MQIM_AEAD_TAG_LEN);
    if (st != MQIM_OK) {
        return st;
    }
    return mqim_json_finish(&w, out_len);
}

/* ---- reading ------------------------------------------------------------- */

enum { E_V, E_SD, E_SPK, E_EPK, E_R, E_CT, E_COUNT };
static const char *const enc_members[E_COUNT] = { "v", "sd", "spk", "epk", "r", "ct" };
enum { R_U, R_D, R_K, R_COUNT };
static const char *const r_members[R_COUNT] = { "u", "d", "k" };

/* An object's members, each of names exactly once, nothing else. */
static mqim_status_t members(const mqim_json_value_t *obj, const char *const *names, unsigned count,
                             mqim_json_value_t *vals)
{
    mqim_json_iter_t it;
    mqim_json_value_t key, val;
    unsigned seen = 0;
    mqim_status_t st = obj->type == MQIM_JSON_OBJECT ? mqim_json_iter_begin(&it, obj) : MQIM_E2E_MALFORMED;
    while (st == MQIM_OK) {
        unsigned f = 0;
        st = mqim_json_iter_next(&it, &key, &val);
        if (st != MQIM_OK) {
            break;
        }
        while (f < count && !mqim_json_string_eq(&key, names[f])) {
            f++;
        }
        if (f == count || (seen & (1u << f)) != 0u) {
            st = MQIM_E2E_MALFORMED; /* unknown or repeated */
        } else {
            seen |= 1u << f;
            vals[f] = val;
        }
    }
    if (st == MQIM_NOT_FOUND) {
        st = seen == (1u << count) - 1u ? MQIM_OK : MQIM_E2E_MALFORMED;
    }
    return st == MQIM_OK ? MQIM_OK : MQIM_E2E_MALFORMED;
}

static bool has_escape(mqim_str_t t)
{
    for (size_t i = 0; i < t.len; i++) {
        if (t.ptr[i] == '\\') {
            return true;
        }
    }
    return false;
}

/* A base64 string of exactly n bytes (writers never escape base64, so an
 * escape is malformed rather than something to decode). */
static mqim_status_t b64_exact(const mqim_json_value_t *v, uint8_t *out, size_t n)
{
    size_t len = 0;
    if (v->type != MQIM_JSON_STRING || has_escape(v->text) ||
        v->text.len != MQIM_BASE64_LEN(n) ||
        mqim_base64_decode(v->text.ptr, v->text.len, out, n, &len) != MQIM_OK || len != n) {
        return MQIM_E2E_MALFORMED;
    }
    return MQIM_OK;
}

/* A name member: unescaped into buf, then the naming rules. */
static mqim_status_t name_of(const mqim_json_value_t *v, mqim_name_kind_t kind, char *buf, size_t cap,
                             mqim_str_t *out)
{
    if (v->type != MQIM_JSON_STRING || mqim_json_string(v, buf, cap, out) != MQIM_OK ||
        mqim_name_check(kind, *out) != MQIM_OK) {
        return MQIM_E2E_MALFORMED;
    }
    return MQIM_OK;
}

typedef struct opened {
    mqim_json_value_t m[E_COUNT];
    uint8_t spk[MQIM_E2E_KEY_LEN], epk[MQIM_E2E_KEY_LEN], wrap[MQIM_E2E_WRAP_LEN];
    size_t count;
    bool mine;
} opened_t;

/* Walk "r" once to count and check it, once more to hash the entries and
 * find this device's. */
static mqim_status_t walk_recipients(opened_t *o, mqim_sha256_t *hs, bool hash, mqim_str_t me,
                                     mqim_str_t my_device)
{
    mqim_json_iter_t it;
    mqim_json_value_t key, entry;
    mqim_status_t st;
    size_t n = 0;
    if (o->m[E_R].type != MQIM_JSON_ARRAY) {
        return MQIM_E2E_MALFORMED;
    }
    st = mqim_json_iter_begin(&it, &o->m[E_R]);
    while (st == MQIM_OK && (st = mqim_json_iter_next(&it, &key, &entry)) == MQIM_OK) {
        mqim_json_value_t r[R_COUNT];
        char ub[MQIM_USER_NAME_MAX + 1], db[MQIM_DEVICE_NAME_MAX + 1];
        mqim_str_t u, d;
        uint8_t k[MQIM_E2E_WRAP_LEN];
        st = members(&entry, r_members, R_COUNT, r);
        if (st == MQIM_OK) {
            st = name_of(&r[R_U], MQIM_NAME_USER, ub, sizeof(ub), &u);
        }
        if (st == MQIM_OK) {
            st = name_of(&r[R_D], MQIM_NAME_DEVICE, db, sizeof(db), &d);
        }
        if (st == MQIM_OK) {
            st = b64_exact(&r[R_K], k, sizeof(k));
        }
        if (st == MQIM_OK && ++n > MQIM_E2E_RECIPIENTS_LIMIT) {
            st = MQIM_E2E_MALFORMED;
        }
        if (st == MQIM_OK && hash) {
            hash_lp(hs, u);
            hash_lp(hs, d);
            if (mqim_str_eq(u, me) && mqim_str_eq(d, my_device)) {
                if (o->mine) {
                    st = MQIM_E2E_MALFORMED; /* listed twice: which wrap counts? */
                }
                o->mine = true;
                memcpy(o->wrap, k, sizeof(k));
            }
        }
    }
    if (st == MQIM_NOT_FOUND) {
        st = n > 0u ? MQIM_OK : MQIM_E2E_MALFORMED;
    }
    o->count = n;
    return st;
}

mqim_status_t mqim_e2e_open(const mqim_crypto_ops_t *crypto, void *crypto_ctx, mqim_str_t me,
                            mqim_str_t my_device, const uint8_t sk[MQIM_E2E_KEY_LEN],
                            const uint8_t pk[MQIM_E2E_KEY_LEN], const mqim_envelope_t *env,
                            uint8_t *out, size_t cap, size_t *out_len, mqim_e2e_sender_t *sender)
{
    opened_t o;
    mqim_json_value_t root;
    mqim_sha256_t hs;
    uint8_t h[MQIM_SHA256_LEN], kek[MQIM_AEAD_KEY_LEN], ck[MQIM_AEAD_KEY_LEN];
    mqim_str_t sd = { 0, 0 };
    int64_t v = 0;
    size_t n = 0;
    mqim_status_t st;
    if (crypto == 0 || sk == 0 || pk == 0 || env == 0 || out_len == 0 || sender == 0 ||
        (out == 0 && cap > 0u)) {
        return MQIM_BAD_PARAMETER;
    }
    *out_len = 0;
    memset(&o, 0, sizeof(o));
    memset(sender, 0, sizeof(*sender));
    /* step 1: the shape */
    st = mqim_json_parse(env->enc, 4, &root) == MQIM_OK ? members(&root, enc_members, E_COUNT, o.m)
                                                          : MQIM_E2E_MALFORMED;
    if (st == MQIM_OK && (mqim_json_int(&o.m[E_V], &v) != MQIM_OK || v != 1)) {
        st = MQIM_E2E_MALFORMED;
    }
    if (st == MQIM_OK) {
        st = name_of(&o.m[E_SD], MQIM_NAME_DEVICE, sender->device, sizeof(sender->device), &sd);
        sender->device_len = sd.len;
    }
    if (st == MQIM_OK) {
        st = b64_exact(&o.m[E_SPK], o.spk, sizeof(o.spk));
    }
    if (st == MQIM_OK) {
        st = b64_exact(&o.m[E_EPK], o.epk, sizeof(o.epk));
    }
    if (st == MQIM_OK && (o.m[E_CT].type != MQIM_JSON_STRING || has_escape(o.m[E_CT].text) ||
                          o.m[E_CT].text.len < MQIM_BASE64_LEN(MQIM_AEAD_TAG_LEN))) {
        st = MQIM_E2E_MALFORMED;
    }
    if (st == MQIM_OK) {
        st = walk_recipients(&o, &hs, false, me, my_device);
    }
    if (st == MQIM_OK && (env->from.len > MQIM_USER_NAME_MAX || env->id.len > MQIM_ID_MAX ||
                          env->type.len > MQIM_TYPE_MAX || env->to.len > MQIM_USER_NAME_MAX ||
                          env->group.len > MQIM_GROUP_NAME_MAX)) {
        st = MQIM_E2E_MALFORMED; /* cannot be hashed as lp(); a decoded envelope never has these */
    }
    /* steps 2-3: this device's entry, while hashing the additional data */
    if (st == MQIM_OK) {
        ad_begin(&hs, env->from, sd, o.spk, o.epk, env, o.count);
        st = walk_recipients(&o, &hs, true, me, my_device);
        mqim_sha256_final(&hs, h);
    }
    if (st == MQIM_OK && !o.mine) {
        st = MQIM_E2E_NOT_FOR_DEVICE;
    }
    /* steps 4-5 */
    if (st == MQIM_OK) {
        st = derive_kek(crypto, crypto_ctx, sk, o.epk, sk, o.spk, pk, h, kek) == MQIM_OK ? MQIM_OK
                                                                                         : MQIM_E2E_AUTH_FAILED;
    }
    if (st == MQIM_OK &&
        crypto->aead_open(crypto_ctx, kek, zero_nonce, h, sizeof(h), o.wrap, sizeof(o.wrap), ck) != 0) {
        st = MQIM_E2E_AUTH_FAILED;
    }
    if (st == MQIM_OK) {
        st = mqim_base64_decode(o.m[E_CT].text.ptr, o.m[E_CT].text.len, out, cap, &n);
        st = st == MQIM_BUFFER_TOO_SMALL ? st : st != MQIM_OK || n < MQIM_AEAD_TAG_LEN ? MQIM_E2E_MALFORMED : st;
    }
    if (st == MQIM_OK && crypto->aead_open(crypto_ctx, ck, zero_nonce, h, sizeof(h), out, n, out) != 0) {
        st = MQIM_E2E_AUTH_FAILED;
    }
    /* step 6 */
    if (st == MQIM_OK && !mqim_utf8_valid((const char *)out, n - MQIM_AEAD_TAG_LEN)) {
        st = MQIM_UTF8_INVALID;
    }
    wipe(kek, sizeof(kek));
    wipe(ck, sizeof(ck));
    if (st == MQIM_OK) {
        *out_len = n - MQIM_AEAD_TAG_LEN;
        memcpy(sender->pk, o.spk, sizeof(o.spk));
    } else if (out != 0) {
        wipe(out, n < cap ? n : cap);
    }
    return st;
}

mqim_status_t mqim_e2e_public_key(const mqim_crypto_ops_t *crypto, void *crypto_ctx,
                                  const uint8_t sk[MQIM_E2E_KEY_LEN], uint8_t pk[MQIM_E2E_KEY_LEN])
{
    if (crypto == 0 || sk == 0 || pk == 0) {
        return MQIM_BAD_PARAMETER;
    }
    return crypto->x25519(crypto_ctx, sk, base_point, pk) == 0 ? MQIM_OK : MQIM_CRYPTO_ERROR;
}

void mqim_e2e_fingerprint(const uint8_t pk[MQIM_E2E_KEY_LEN], char out[MQIM_E2E_FINGERPRINT_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    mqim_sha256_t s;
    uint8_t d[MQIM_SHA256_LEN];
    size_t o = 0;
    mqim_sha256_init(&s);
    mqim_sha256_update(&s, pk, MQIM_E2E_KEY_LEN);
    mqim_sha256_final(&s, d);
    for (unsigned i = 0; i < 16u; i++) {
        if (i > 0u && i % 2u == 0u) {
            out[o++] = ' ';
        }
        out[o++] = hex[d[i] >> 4];
        out[o++] = hex[d[i] & 15u];
    }
    out[o] = '\0';
}

mqim_status_t mqim_e2e_keys_parse(const char *json, size_t len, mqim_e2e_key_t *keys, size_t max,
                                  size_t *count, size_t *total, char *arena, size_t arena_cap)
{
    mqim_json_value_t root, arr, top_user, entry, key;
    mqim_json_iter_t it;
    size_t used = 0, n = 0, all = 0;
    mqim_str_t def = { 0, 0 };
    mqim_status_t st;
    if ((json == 0 && len > 0u) || count == 0 || total == 0 || (keys == 0 && max > 0u) ||
        (arena == 0 && arena_cap > 0u)) {
        return MQIM_BAD_PARAMETER;
    }
    *count = *total = 0;
    st = mqim_json_parse((mqim_str_t){ json, len }, MQIM_JSON_DEPTH_MAX, &root);
    if (st == MQIM_OK && root.type != MQIM_JSON_OBJECT) {
        st = MQIM_JSON_NOT_OBJECT;
    }
    if (st == MQIM_OK && mqim_json_find(&root, "user", &top_user) == MQIM_OK &&
        top_user.type != MQIM_JSON_ABSENT) {
        st = top_user.type == MQIM_JSON_STRING ? mqim_json_string(&top_user, arena, arena_cap, &def)
                                               : MQIM_FIELD_TYPE;
        used = def.len;
    }
    if (st == MQIM_OK) {
        st = mqim_json_find(&root, "keys", &arr);
        st = st != MQIM_OK                     ? st
             : arr.type == MQIM_JSON_ABSENT    ? MQIM_FIELD_MISSING
             : arr.type != MQIM_JSON_ARRAY     ? MQIM_FIELD_TYPE
                                               : MQIM_OK;
    }
    if (st == MQIM_OK) {
        st = mqim_json_iter_begin(&it, &arr);
    }
    while (st == MQIM_OK && (st = mqim_json_iter_next(&it, &key, &entry)) == MQIM_OK) {
        mqim_e2e_key_t k;
        mqim_json_value_t u, d, x;
        memset(&k, 0, sizeof(k));
        k.user = def;
        st = entry.type == MQIM_JSON_OBJECT ? MQIM_OK : MQIM_FIELD_TYPE;
        if (st == MQIM_OK && mqim_json_find(&entry, "user", &u) == MQIM_OK && u.type != MQIM_JSON_ABSENT) {
            st = u.type == MQIM_JSON_STRING ? mqim_json_string(&u, arena + used, arena_cap - used, &k.user)
                                            : MQIM_FIELD_TYPE;
            used += k.user.len;
        }
        if (st == MQIM_OK) {
            st = mqim_json_find(&entry, "device", &d) == MQIM_OK && d.type == MQIM_JSON_STRING
                     ? mqim_json_string(&d, arena + used, arena_cap - used, &k.device)
                     : MQIM_FIELD_MISSING;
            used += k.device.len;
        }
        if (st == MQIM_OK) {
            st = mqim_name_check(MQIM_NAME_USER, k.user);
        }
        if (st == MQIM_OK) {
            st = mqim_name_check(MQIM_NAME_DEVICE, k.device);
        }
        if (st == MQIM_OK) {
            st = mqim_json_find(&entry, "x25519", &x) != MQIM_OK || x.type == MQIM_JSON_ABSENT
                     ? MQIM_FIELD_MISSING
                     : (b64_exact(&x, k.pk, sizeof(k.pk)) == MQIM_OK ? MQIM_OK : MQIM_FIELD_TYPE);
        }
        if (st == MQIM_OK) {
            if (n < max) {
                keys[n++] = k;
            }
            all++;
        }
    }
    if (st == MQIM_NOT_FOUND) {
        st = MQIM_OK;
    }
    *count = n;
    *total = all;
    return st;
}

mqim_status_t mqim_e2e_keys_request(mqim_str_t req, mqim_str_t name, bool group, char *out,
                                    size_t cap, size_t *out_len)
{
    mqim_json_writer_t w;
    if (out_len == 0 || (out == 0 && cap > 0u)) {
        return MQIM_BAD_PARAMETER;
    }
    mqim_json_init(&w, out, cap);
    mqim_json_object_begin(&w);
    mqim_json_key_str(&w, "op", MQIM_STR("keys"));
    if (req.len > 0u) {
        mqim_json_key_str(&w, "req", req);
    }
    mqim_json_key_str(&w, group ? "group" : "user", name);
    mqim_json_object_end(&w);
    return mqim_json_finish(&w, out_len);
}

/* ---- one device's state --------------------------------------------------- */

mqim_status_t mqim_e2e_init(mqim_e2e_t *e, const mqim_e2e_config_t *cfg)
{
    mqim_status_t st;
    if (e == 0 || cfg == 0 || cfg->crypto == 0 || cfg->entropy == 0 || cfg->store == 0 ||
        mqim_name_check(MQIM_NAME_USER, cfg->user) != MQIM_OK ||
        mqim_name_check(MQIM_NAME_DEVICE, cfg->device) != MQIM_OK) {
        return MQIM_BAD_PARAMETER;
    }
    memset(e, 0, sizeof(*e));
    e->cfg = *cfg;
    st = cfg->store->identity_load(cfg->store_ctx, e->sk);
    if (st == MQIM_NOT_FOUND) {
        st = cfg->entropy(cfg->entropy_ctx, e->sk, sizeof(e->sk)) == 0 ? MQIM_OK : MQIM_CRYPTO_ERROR;
        if (st == MQIM_OK) {
            st = cfg->store->identity_save(cfg->store_ctx, e->sk);
        }
    }
    if (st == MQIM_OK) {
        st = mqim_e2e_public_key(cfg->crypto, cfg->crypto_ctx, e->sk, e->pk);
    }
    if (st != MQIM_OK) {
        wipe(e->sk, sizeof(e->sk));
    }
    return st;
}

mqim_status_t mqim_e2e_key_payload(const mqim_e2e_t *e, char *out, size_t cap, size_t *out_len)
{
    mqim_json_writer_t w;
    if (e == 0 || out_len == 0 || (out == 0 && cap > 0u)) {
        return MQIM_BAD_PARAMETER;
    }
    mqim_json_init(&w, out, cap);
    mqim_json_object_begin(&w);
    mqim_json_key_str(&w, "device", e->cfg.device);
    key_b64(&w, "x25519", e->pk, sizeof(e->pk));
    mqim_json_object_end(&w);
    return mqim_json_finish(&w, out_len);
}

mqim_status_t mqim_e2e_trust(mqim_e2e_t *e, mqim_str_t user, mqim_str_t device,
                             const uint8_t pk[MQIM_E2E_KEY_LEN])
{
    uint8_t known[MQIM_E2E_KEY_LEN];
    char old_fp[MQIM_E2E_FINGERPRINT_LEN + 1], new_fp[MQIM_E2E_FINGERPRINT_LEN + 1];
    bool accept;
    mqim_status_t st = e->cfg.store->trust_get(e->cfg.store_ctx, user, device, known);
    if (st == MQIM_NOT_FOUND) {
        return e->cfg.store->trust_put(e->cfg.store_ctx, user, device, pk); /* first use */
    }
    if (st != MQIM_OK || memcmp(known, pk, sizeof(known)) == 0) {
        return st;
    }
    accept = !e->cfg.refuse_changed_keys;
    if (e->cfg.on_key_changed != 0) {
        mqim_e2e_fingerprint(known, old_fp);
        mqim_e2e_fingerprint(pk, new_fp);
        e->cfg.on_key_changed(e->cfg.cb_ctx, user, device, old_fp, new_fp, accept);
    }
    return accept ? e->cfg.store->trust_put(e->cfg.store_ctx, user, device, pk) : MQIM_E2E_KEY_CHANGED;
}

mqim_status_t mqim_e2e_accept(mqim_e2e_t *e, mqim_str_t user, mqim_str_t device,
                              const uint8_t pk[MQIM_E2E_KEY_LEN])
{
    if (e == 0 || pk == 0 || mqim_name_check(MQIM_NAME_USER, user) != MQIM_OK ||
        mqim_name_check(MQIM_NAME_DEVICE, device) != MQIM_OK) {
        return MQIM_BAD_PARAMETER;
    }
    return e->cfg.store->trust_put(e->cfg.store_ctx, user, device, pk);
}

static bool is_me(const mqim_e2e_t *e, mqim_str_t user, mqim_str_t device)
{
    return mqim_str_eq(user, e->cfg.user) && mqim_str_eq(device, e->cfg.device);
}

mqim_status_t mqim_e2e_seal_message(mqim_e2e_t *e, mqim_str_t name, bool group, mqim_str_t type,
                                    mqim_str_t text, const mqim_e2e_key_t *keys, size_t count,
                                    mqim_envelope_t *env)
{
    static const char hex[] = "0123456789abcdef";
    mqim_e2e_key_t rcpt[MQIM_CFG_E2E_RECIPIENTS_MAX];
    uint8_t rnd[16u + 2u * MQIM_E2E_KEY_LEN];
    mqim_e2e_seal_in_t in;
    size_t n = 0, len = 0;
    bool peer_key = false;
    mqim_status_t st;
    if (e == 0 || env == 0 || (keys == 0 && count > 0u)) {
        return MQIM_BAD_PARAMETER;
    }
    st = mqim_name_check(group ? MQIM_NAME_GROUP : MQIM_NAME_USER, name);
    if (st != MQIM_OK) {
        return st;
    }
    if (text.len == 0u) {
        return MQIM_BODY_EMPTY;
    }
    if (text.len > MQIM_CFG_E2E_TEXT_MAX) {
        return MQIM_BODY_TOO_LARGE;
    }
    /* This device always, with its real key (whatever the gateway says it
     * is), so the echo opens here; everyone else after trust on first use. */
    rcpt[n].user = e->cfg.user;
    rcpt[n].device = e->cfg.device;
    memcpy(rcpt[n++].pk, e->pk, sizeof(e->pk));
    for (size_t i = 0, others = 0; i < count; i++) {
        others += is_me(e, keys[i].user, keys[i].device) ? 0u : 1u;
        if (others >= MQIM_CFG_E2E_RECIPIENTS_MAX) {
            return MQIM_E2E_TOO_MANY_RECIPIENTS; /* before trusting any of them */
        }
    }
    for (size_t i = 0; st == MQIM_OK && i < count; i++) {
        if (is_me(e, keys[i].user, keys[i].device)) {
            continue;
        }
        st = mqim_e2e_trust(e, keys[i].user, keys[i].device, keys[i].pk);
        rcpt[n++] = keys[i];
        peer_key = peer_key || (group ? !mqim_str_eq(keys[i].user, e->cfg.user)
                                      : mqim_str_eq(keys[i].user, name));
    }
    if (st == MQIM_OK && !peer_key && !(!group && mqim_str_eq(name, e->cfg.user))) {
        st = MQIM_E2E_NO_KEYS; /* nobody else could read it */
    }
    if (st == MQIM_OK && e->cfg.entropy(e->cfg.entropy_ctx, rnd, sizeof(rnd)) != 0) {
        st = MQIM_CRYPTO_ERROR;
    }
    if (st != MQIM_OK) {
        return st;
    }
    for (unsigned i = 0; i < 16u; i++) {
        e->id[2u * i] = hex[rnd[i] >> 4];
        e->id[2u * i + 1u] = hex[rnd[i] & 15u];
    }
    memset(&in, 0, sizeof(in));
    in.from = e->cfg.user;
    in.sender_device = e->cfg.device;
    in.sender_sk = e->sk;
    in.sender_pk = e->pk;
    in.ephemeral_sk = rnd + 16;
    in.content_key = rnd + 16 + MQIM_E2E_KEY_LEN;
    if (group) {
        in.group = name;
    } else {
        in.to = name;
    }
    in.id = (mqim_str_t){ e->id, 32u };
    in.type = type.len > 0u ? type : MQIM_STR("text");
    in.recipients = rcpt;
    in.recipient_count = n;
    in.text = text;
    in.work = e->work;
    in.work_cap = sizeof(e->work);
    st = mqim_e2e_seal(e->cfg.crypto, e->cfg.crypto_ctx, &in, e->enc, sizeof(e->enc), &len);
    wipe(rnd, sizeof(rnd));
    if (st == MQIM_BUFFER_TOO_SMALL) {
        st = MQIM_PAYLOAD_TOO_LARGE;
    }
    if (st == MQIM_OK) {
        memset(env, 0, sizeof(*env));
        env->id = in.id;
        env->to = in.to;
        env->group = in.group;
        env->type = in.type;
        env->device = e->cfg.device;
        env->enc = (mqim_str_t){ e->enc, len };
    }
    return st;
}

static void replay_digest(mqim_str_t from, mqim_str_t sd, mqim_str_t id, uint8_t out[8])
{
    mqim_sha256_t s;
    uint8_t d[MQIM_SHA256_LEN];
    mqim_sha256_init(&s);
    hash_lp(&s, from);
    hash_lp(&s, sd);
    hash_lp(&s, id);
    mqim_sha256_final(&s, d);
    memcpy(out, d, 8u);
}

mqim_status_t mqim_e2e_open_message(mqim_e2e_t *e, const mqim_envelope_t *env, bool check_replay,
                                    mqim_envelope_t *plain, mqim_e2e_sender_t *sender)
{
    uint8_t digest[8];
    size_t len = 0;
    mqim_str_t sd;
    mqim_status_t st;
    if (e == 0 || env == 0 || plain == 0 || sender == 0) {
        return MQIM_BAD_PARAMETER;
    }
    st = mqim_e2e_open(e->cfg.crypto, e->cfg.crypto_ctx, e->cfg.user, e->cfg.device, e->sk, e->pk, env,
                       e->text, sizeof(e->text), &len, sender);
    if (st == MQIM_BUFFER_TOO_SMALL) {
        st = MQIM_BODY_TOO_LARGE; /* longer than this device opens */
    }
    sd = (mqim_str_t){ sender->device, sender->device_len };
    if (st == MQIM_OK) {
        /* step 7: who sent it. This device's own echo must carry its own key. */
        if (is_me(e, env->from, sd)) {
            st = memcmp(sender->pk, e->pk, sizeof(e->pk)) == 0 ? MQIM_OK : MQIM_E2E_KEY_CHANGED;
        } else {
            st = mqim_e2e_trust(e, env->from, sd, sender->pk);
        }
    }
    if (st == MQIM_OK && check_replay) {
        /* step 8, after authentication, so forgeries cannot fill the window */
        replay_digest(env->from, sd, env->id, digest);
        for (unsigned i = 0; i < e->replay_count; i++) {
            if (memcmp(e->replay[i], digest, sizeof(digest)) == 0) {
                st = MQIM_E2E_REPLAY;
                break;
            }
        }
        if (st == MQIM_OK) {
            memcpy(e->replay[e->replay_next], digest, sizeof(digest));
            e->replay_next = (e->replay_next + 1u) % MQIM_CFG_E2E_REPLAY_WINDOW;
            if (e->replay_count < MQIM_CFG_E2E_REPLAY_WINDOW) {
                e->replay_count++;
            }
        }
    }
    if (st != MQIM_OK) {
        wipe(e->text, len);
        return st;
    }
    *plain = *env;
    plain->enc = (mqim_str_t){ 0, 0 };
    plain->body = (mqim_str_t){ (const char *)e->text, len };
    plain->device = sd;
    return MQIM_OK;
}
