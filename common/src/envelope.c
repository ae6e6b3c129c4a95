/* Envelope encode/decode (envelope.h). Decoding uses cJSON and copies every
 * string into the caller's arena, so cJSON's tree is freed before return. */
#include <cjson/cJSON.h>

#include "mqim/envelope.h"
#include "mqim/json_depth.h"
#include "mqim/json_write.h"
#include "mqim/limits.h"
#include "mqim/name.h"

typedef struct arena {
    char *buf;
    size_t cap;
    size_t used;
} arena_t;

static mqim_status_t arena_copy(arena_t *a, const char *s, mqim_str_t *out)
{
    size_t n = 0;
    while (s[n] != '\0') {
        n++;
    }
    if (n > a->cap - a->used) {
        return MQIM_BUFFER_TOO_SMALL;
    }
    for (size_t i = 0; i < n; i++) {
        a->buf[a->used + i] = s[i];
    }
    out->ptr = n > 0u ? a->buf + a->used : a->buf;
    out->len = n;
    a->used += n;
    return MQIM_OK;
}

/* A string field: absent is fine, anything but a string is not. */
static mqim_status_t get_string(const cJSON *root, const char *key, arena_t *a, mqim_str_t *out)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    mqim_status_t st = MQIM_OK;
    out->ptr = 0;
    out->len = 0;
    if (item == 0) {
        st = MQIM_OK;
    } else if (!cJSON_IsString(item) || item->valuestring == 0) {
        st = MQIM_FIELD_TYPE;
    } else {
        st = arena_copy(a, item->valuestring, out);
    }
    return st;
}

/* An integer field within +-2^53 (exactly representable in a double). */
static mqim_status_t get_integer(const cJSON *root, const char *key, bool non_negative,
                                 bool *present, double *value)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    mqim_status_t st = MQIM_OK;
    *present = false;
    if (item == 0) {
        st = MQIM_OK;
    } else if (!cJSON_IsNumber(item)) {
        st = MQIM_FIELD_TYPE;
    } else {
        double v = item->valuedouble;
        if (v != v || v > 9007199254740992.0 || v < -9007199254740992.0 ||
            v != (double)(int64_t)v || (non_negative && v < 0.0)) {
            st = MQIM_FIELD_RANGE;
        } else {
            *present = true;
            *value = v;
        }
    }
    return st;
}

static mqim_status_t type_check(mqim_str_t type)
{
    mqim_status_t st = MQIM_OK;
    if (type.len == 0u || type.len > MQIM_TYPE_MAX) {
        st = MQIM_TYPE_BAD;
    } else {
        for (size_t i = 0; i < type.len; i++) {
            char c = type.ptr[i];
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
                  c == '-')) {
                st = MQIM_TYPE_BAD;
                break;
            }
        }
    }
    return st;
}

static mqim_status_t decode_fields(const cJSON *root, mqim_envelope_t *env, arena_t *a)
{
    mqim_status_t st;
    bool present = false;
    double v = 0.0;

    st = get_string(root, "id", a, &env->id);
    if (st == MQIM_OK && cJSON_GetObjectItemCaseSensitive(root, "id") != 0) {
        st = mqim_id_check(env->id);
    }
    if (st == MQIM_OK) {
        /* "from" is a string; the gateway overwrites it with the topic's
         * user, devices read it from the gateway's envelopes. */
        st = get_string(root, "from", a, &env->from);
    }
    if (st == MQIM_OK) {
        st = get_string(root, "to", a, &env->to);
        if (st == MQIM_OK && env->to.ptr != 0) {
            st = mqim_name_check(MQIM_NAME_USER, env->to);
        }
    }
    if (st == MQIM_OK) {
        st = get_string(root, "group", a, &env->group);
        if (st == MQIM_OK && env->group.ptr != 0) {
            st = mqim_name_check(MQIM_NAME_GROUP, env->group);
        }
    }
    if (st == MQIM_OK) {
        st = get_string(root, "type", a, &env->type);
        if (st == MQIM_OK && env->type.ptr != 0) {
            st = type_check(env->type);
        }
    }
    if (st == MQIM_OK) {
        st = get_string(root, "body", a, &env->body);
        if (st == MQIM_OK && env->body.len > MQIM_BODY_MAX) {
            st = MQIM_BODY_TOO_LARGE;
        } else if (st == MQIM_OK && !mqim_utf8_valid(env->body.ptr, env->body.len)) {
            st = MQIM_UTF8_INVALID;
        }
    }
    if (st == MQIM_OK) {
        st = get_integer(root, "seq", true, &present, &v);
        env->has_seq = present;
        env->seq = present ? (uint64_t)v : 0u;
    }
    if (st == MQIM_OK) {
        st = get_integer(root, "ts", false, &present, &v);
        env->has_ts = present;
        env->ts = present ? (int64_t)v : 0;
    }
    return st;
}

mqim_status_t mqim_envelope_decode(const char *json, size_t len, mqim_envelope_t *env,
                                   char *arena, size_t arena_cap, size_t *arena_used)
{
    arena_t a = { arena, arena != 0 ? arena_cap : 0u, 0 };
    cJSON *root = 0;
    mqim_status_t st = MQIM_OK;

    if (env == 0 || (json == 0 && len > 0u)) {
        return MQIM_BAD_PARAMETER;
    }
    *env = (mqim_envelope_t){ { 0, 0 }, { 0, 0 }, { 0, 0 }, { 0, 0 }, { 0, 0 }, { 0, 0 },
                              0u, 0, false, false };
    if (len > MQIM_PAYLOAD_MAX) {
        st = MQIM_PAYLOAD_TOO_LARGE;
    } else {
        root = cJSON_ParseWithLength(json, len);
        if (root == 0) {
            st = MQIM_JSON_MALFORMED;
        } else if (!cJSON_IsObject(root)) {
            st = MQIM_JSON_NOT_OBJECT;
        } else if (!mqim_json_depth_ok(root, MQIM_JSON_DEPTH_MAX)) {
            st = MQIM_JSON_TOO_DEEP;
        } else {
            st = decode_fields(root, env, &a);
        }
    }
    cJSON_Delete(root);
    if (arena_used != 0) {
        *arena_used = a.used;
    }
    return st;
}

mqim_status_t mqim_envelope_encode(const mqim_envelope_t *env, char *buf, size_t cap,
                                   size_t *out_len)
{
    mqim_json_writer_t w;
    if (env == 0 || out_len == 0 || (buf == 0 && cap > 0u)) {
        return MQIM_BAD_PARAMETER;
    }
    mqim_json_init(&w, buf, cap);
    mqim_json_object_begin(&w);
    if (env->id.len > 0u) {
        mqim_json_key_str(&w, "id", env->id);
    }
    if (env->has_seq) {
        mqim_json_key_u64(&w, "seq", env->seq);
    }
    if (env->from.len > 0u) {
        mqim_json_key_str(&w, "from", env->from);
    }
    if (env->to.len > 0u) {
        mqim_json_key_str(&w, "to", env->to);
    }
    if (env->group.len > 0u) {
        mqim_json_key_str(&w, "group", env->group);
    }
    if (env->has_ts) {
        mqim_json_key_i64(&w, "ts", env->ts);
    }
    mqim_json_key_str(&w, "type", env->type.len > 0u ? env->type : MQIM_STR("text"));
    if (env->body.len > 0u || env->body.ptr != 0) {
        mqim_json_key_str(&w, "body", env->body);
    }
    mqim_json_object_end(&w);
    return mqim_json_finish(&w, out_len);
}
