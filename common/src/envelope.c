/* Envelope encode/decode (envelope.h). Decoding reads the JSON in place
 * (json_read.h) and unescapes each field into the caller's arena: no
 * allocation, so the same code runs in the gateway and on a device. */
#include "mqim/envelope.h"
#include "mqim/json_read.h"
#include "mqim/json_write.h"
#include "mqim/limits.h"
#include "mqim/name.h"

typedef struct arena {
    char *buf;
    size_t cap;
    size_t used;
} arena_t;

/* The fields an envelope has, in the order they are checked. */
enum { F_ID, F_FROM, F_TO, F_GROUP, F_TYPE, F_BODY, F_SEQ, F_TS, F_UPTO, F_COUNT };
static const char *const field_names[F_COUNT] = { "id", "from", "to", "group",
                                                  "type", "body", "seq", "ts", "upto" };

/* A string field: absent is fine (ptr stays NULL), anything but a string is not. */
static mqim_status_t get_string(const mqim_json_value_t *v, arena_t *a, mqim_str_t *out)
{
    mqim_status_t st = MQIM_OK;
    out->ptr = 0;
    out->len = 0;
    if (v->type == MQIM_JSON_ABSENT) {
        st = MQIM_OK;
    } else if (v->type != MQIM_JSON_STRING) {
        st = MQIM_FIELD_TYPE;
    } else if (a->buf == 0) {
        st = MQIM_BUFFER_TOO_SMALL;
    } else {
        st = mqim_json_string(v, a->buf + a->used, a->cap - a->used, out);
        a->used += out->len;
    }
    return st;
}

/* An integer field; "seq" must not be negative. */
static mqim_status_t get_integer(const mqim_json_value_t *v, bool non_negative, bool *present,
                                 int64_t *value)
{
    mqim_status_t st = MQIM_OK;
    *present = false;
    *value = 0;
    if (v->type != MQIM_JSON_ABSENT) {
        st = mqim_json_int(v, value);
        if (st == MQIM_OK && non_negative && *value < 0) {
            st = MQIM_FIELD_RANGE;
        }
        *present = st == MQIM_OK;
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

/* Walk the members once, keeping the envelope's fields. A field given twice
 * is refused: two readers could otherwise disagree on which one counts.
 * With allow_cut, text that ends early keeps the members completed before
 * the cut (*cut is set); otherwise it is malformed. */
static mqim_status_t collect(const mqim_json_value_t *root, mqim_json_value_t fields[F_COUNT],
                             bool allow_cut, bool *cut)
{
    mqim_json_iter_t it;
    mqim_json_value_t key, val;
    mqim_status_t st = mqim_json_iter_begin(&it, root);
    for (unsigned f = 0; f < F_COUNT; f++) {
        fields[f].type = MQIM_JSON_ABSENT;
        fields[f].text = (mqim_str_t){ 0, 0 };
        fields[f].depth_left = 0;
    }
    *cut = false;
    while (st == MQIM_OK) {
        st = mqim_json_iter_next(&it, &key, &val);
        for (unsigned f = 0; st == MQIM_OK && f < F_COUNT; f++) {
            if (mqim_json_string_eq(&key, field_names[f])) {
                if (fields[f].type != MQIM_JSON_ABSENT) {
                    st = MQIM_FIELD_DUPLICATE;
                }
                fields[f] = val;
                break;
            }
        }
    }
    if (st == MQIM_JSON_TRUNCATED && allow_cut) {
        *cut = true;
        st = MQIM_NOT_FOUND;
    }
    return st == MQIM_NOT_FOUND ? MQIM_OK : st;
}

static mqim_status_t decode_fields(const mqim_json_value_t fields[F_COUNT], mqim_envelope_t *env,
                                   arena_t *a)
{
    mqim_status_t st;
    bool present = false;
    int64_t v = 0;

    st = get_string(&fields[F_ID], a, &env->id);
    if (st == MQIM_OK && fields[F_ID].type != MQIM_JSON_ABSENT) {
        st = mqim_id_check(env->id);
    }
    if (st == MQIM_OK) {
        /* "from" is a string; the gateway overwrites it with the topic's
         * user, devices read it from the gateway's envelopes. */
        st = get_string(&fields[F_FROM], a, &env->from);
    }
    if (st == MQIM_OK) {
        st = get_string(&fields[F_TO], a, &env->to);
        if (st == MQIM_OK && fields[F_TO].type != MQIM_JSON_ABSENT) {
            st = mqim_name_check(MQIM_NAME_USER, env->to);
        }
    }
    if (st == MQIM_OK) {
        st = get_string(&fields[F_GROUP], a, &env->group);
        if (st == MQIM_OK && fields[F_GROUP].type != MQIM_JSON_ABSENT) {
            st = mqim_name_check(MQIM_NAME_GROUP, env->group);
        }
    }
    if (st == MQIM_OK) {
        st = get_string(&fields[F_TYPE], a, &env->type);
        if (st == MQIM_OK && fields[F_TYPE].type != MQIM_JSON_ABSENT) {
            st = type_check(env->type);
        }
    }
    if (st == MQIM_OK) {
        st = get_string(&fields[F_BODY], a, &env->body);
        if (st == MQIM_OK && env->body.len > MQIM_BODY_MAX) {
            st = MQIM_BODY_TOO_LARGE;
        }
        /* UTF-8: the reader checked the raw bytes, and escapes decode to
         * valid sequences (surrogates only in pairs). */
    }
    if (st == MQIM_OK) {
        st = get_integer(&fields[F_SEQ], true, &present, &v);
        env->has_seq = present;
        env->seq = present ? (uint64_t)v : 0u;
    }
    if (st == MQIM_OK) {
        st = get_integer(&fields[F_TS], false, &present, &v);
        env->has_ts = present;
        env->ts = present ? v : 0;
    }
    if (st == MQIM_OK) {
        st = get_integer(&fields[F_UPTO], true, &present, &v);
        env->has_upto = present;
        env->upto = present ? (uint64_t)v : 0u;
    }
    return st;
}

static mqim_status_t decode(const char *json, size_t len, bool allow_cut, mqim_envelope_t *env,
                            char *arena, size_t arena_cap, size_t *arena_used, bool *cut)
{
    arena_t a = { arena, arena != 0 ? arena_cap : 0u, 0 };
    mqim_json_value_t root;
    mqim_json_value_t fields[F_COUNT];
    mqim_status_t st = MQIM_OK;

    if (env == 0 || (json == 0 && len > 0u)) {
        return MQIM_BAD_PARAMETER;
    }
    *env = (mqim_envelope_t){ { 0, 0 }, { 0, 0 }, { 0, 0 }, { 0, 0 }, { 0, 0 }, { 0, 0 },
                              0u, 0, false, false, 0u, false };
    *cut = false;
    if (!allow_cut && len > MQIM_PAYLOAD_MAX) {
        st = MQIM_PAYLOAD_TOO_LARGE;
    } else if (allow_cut) {
        /* a head: only its start is known to be an object */
        size_t i = 0;
        while (i < len && (json[i] == ' ' || json[i] == '\t' || json[i] == '\n' || json[i] == '\r')) {
            i++;
        }
        root = (mqim_json_value_t){ MQIM_JSON_OBJECT, { json + i, len - i }, MQIM_JSON_DEPTH_MAX };
        st = i < len && json[i] == '{' ? MQIM_OK : MQIM_JSON_NOT_OBJECT;
    } else {
        st = mqim_json_parse((mqim_str_t){ json, len }, MQIM_JSON_DEPTH_MAX, &root);
        if (st == MQIM_OK && root.type != MQIM_JSON_OBJECT) {
            st = MQIM_JSON_NOT_OBJECT;
        }
    }
    if (st == MQIM_OK) {
        st = collect(&root, fields, allow_cut, cut);
    }
    if (st == MQIM_OK) {
        st = decode_fields(fields, env, &a);
    }
    if (arena_used != 0) {
        *arena_used = a.used;
    }
    return st;
}

mqim_status_t mqim_envelope_decode(const char *json, size_t len, mqim_envelope_t *env,
                                   char *arena, size_t arena_cap, size_t *arena_used)
{
    bool cut = false;
    return decode(json, len, false, env, arena, arena_cap, arena_used, &cut);
}

mqim_status_t mqim_envelope_decode_head(const char *json, size_t len, mqim_envelope_t *env,
                                        char *arena, size_t arena_cap, size_t *arena_used,
                                        bool *complete)
{
    bool cut = false;
    mqim_status_t st;
    if (complete == 0) {
        return MQIM_BAD_PARAMETER;
    }
    st = decode(json, len, true, env, arena, arena_cap, arena_used, &cut);
    *complete = !cut;
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
    if (env->has_upto) {
        mqim_json_key_u64(&w, "upto", env->upto);
    }
    mqim_json_key_str(&w, "type", env->type.len > 0u ? env->type : MQIM_STR("text"));
    if (env->body.len > 0u || env->body.ptr != 0) {
        mqim_json_key_str(&w, "body", env->body);
    }
    mqim_json_object_end(&w);
    return mqim_json_finish(&w, out_len);
}
