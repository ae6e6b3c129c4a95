/* Envelope encode/decode (envelope.h). Decoding reads the JSON in place
 * (json_read.h) and unescapes each field into the caller's arena: no
 * allocation, so the same code runs in the gateway and on a device. */
#include "mqim/envelope.h"
#include "mqim/json_read.h"
#include "mqim/json_write.h"
#include "mqim/limits.h"
#include "mqim/name.h"

#include <string.h>

typedef struct arena {
    char *buf;
    size_t cap;
    size_t used;
} arena_t;

/* The fields an envelope has, in the order they are checked. */
enum { F_ID, F_FROM, F_TO, F_GROUP, F_TYPE, F_BODY, F_SEQ, F_TS, F_UPTO, F_DEVICE, F_FILE,
       F_ENC, F_ACK, F_COUNT };
static const char *const field_names[F_COUNT] = { "id", "from", "to", "group", "type", "body",
                                                  "seq", "ts", "upto", "device", "file", "enc",
                                                  "ack" };

/* The members of "file". */
enum { FF_ID, FF_NAME, FF_MIME, FF_SHA256, FF_SIZE, FF_COUNT };
static const char *const file_field_names[FF_COUNT] = { "id", "name", "mime", "sha256", "size" };

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
static mqim_status_t collect(const mqim_json_value_t *root, const char *const *names,
                             unsigned count, mqim_json_value_t *fields, bool allow_cut, bool *cut)
{
    mqim_json_iter_t it;
    mqim_json_value_t key, val;
    mqim_status_t st = mqim_json_iter_begin(&it, root);
    for (unsigned f = 0; f < count; f++) {
        fields[f].type = MQIM_JSON_ABSENT;
        fields[f].text = (mqim_str_t){ 0, 0 };
        fields[f].depth_left = 0;
    }
    *cut = false;
    while (st == MQIM_OK) {
        st = mqim_json_iter_next(&it, &key, &val);
        for (unsigned f = 0; st == MQIM_OK && f < count; f++) {
            if (mqim_json_string_eq(&key, names[f])) {
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

static mqim_status_t decode_file(const mqim_json_value_t *obj, mqim_envelope_file_t *f, arena_t *a)
{
    mqim_json_value_t fields[FF_COUNT];
    bool cut = false, present = false;
    int64_t v = 0;
    mqim_status_t st;
    if (obj->type != MQIM_JSON_OBJECT) {
        return MQIM_FIELD_TYPE;
    }
    st = collect(obj, file_field_names, FF_COUNT, fields, false, &cut);
    if (st == MQIM_OK) {
        st = fields[FF_ID].type == MQIM_JSON_ABSENT ? MQIM_FIELD_MISSING
                                                     : get_string(&fields[FF_ID], a, &f->id);
    }
    if (st == MQIM_OK) {
        st = mqim_id_check(f->id);
    }
    /* name, mime, sha256: their rules (file_meta.h) are the gateway's to
     * enforce when a file is uploaded; it overwrites them in every
     * announcement, so a decoder only checks their types. */
    for (unsigned k = FF_NAME; st == MQIM_OK && k <= FF_SHA256; k++) {
        mqim_str_t *out = k == FF_NAME ? &f->name : k == FF_MIME ? &f->mime : &f->sha256;
        st = get_string(&fields[k], a, out);
    }
    if (st == MQIM_OK) {
        st = get_integer(&fields[FF_SIZE], true, &present, &v);
        f->has_size = present;
        f->size = present ? (uint64_t)v : 0u;
    }
    return st;
}

/* The rule a present string field follows ("from": any string; the
 * gateway overwrites it with the topic's user, devices read it from the
 * gateway's envelopes). */
static mqim_status_t string_rule(unsigned field, mqim_str_t s)
{
    switch (field) {
    case F_ID:
        return mqim_id_check(s);
    case F_TO:
        return mqim_name_check(MQIM_NAME_USER, s);
    case F_GROUP:
        return mqim_name_check(MQIM_NAME_GROUP, s);
    case F_DEVICE:
        return mqim_name_check(MQIM_NAME_DEVICE, s);
    case F_TYPE:
        return type_check(s);
    case F_BODY:
        /* UTF-8: the reader checked the raw bytes, and escapes decode to
         * valid sequences (surrogates only in pairs). */
        return s.len > MQIM_BODY_MAX ? MQIM_BODY_TOO_LARGE : MQIM_OK;
    default:
        return MQIM_OK;
    }
}

static mqim_status_t decode_fields(const mqim_json_value_t fields[F_COUNT], mqim_envelope_t *env,
                                   arena_t *a)
{
    static const unsigned char string_fields[] = { F_ID, F_FROM, F_TO, F_GROUP, F_TYPE, F_BODY, F_DEVICE };
    mqim_str_t *const strings[] = { &env->id, &env->from, &env->to, &env->group, &env->type, &env->body,
                                    &env->device };
    mqim_status_t st = MQIM_OK;
    bool present = false;
    int64_t v = 0;

    for (unsigned i = 0; st == MQIM_OK && i < sizeof(string_fields); i++) {
        const mqim_json_value_t *f = &fields[string_fields[i]];
        st = get_string(f, a, strings[i]);
        if (st == MQIM_OK && f->type != MQIM_JSON_ABSENT) {
            st = string_rule(string_fields[i], *strings[i]);
        }
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
    if (st == MQIM_OK && fields[F_FILE].type != MQIM_JSON_ABSENT) {
        st = decode_file(&fields[F_FILE], &env->file, a);
        env->has_file = st == MQIM_OK;
    }
    if (st == MQIM_OK && fields[F_ENC].type != MQIM_JSON_ABSENT) {
        /* An encrypted body (docs/e2e.md) travels as its JSON text: only
         * the e2e layer reads inside it. It replaces "body". */
        mqim_str_t raw = fields[F_ENC].text;
        st = fields[F_ENC].type != MQIM_JSON_OBJECT ? MQIM_FIELD_TYPE
             : env->body.ptr != 0                   ? MQIM_FIELD_RANGE
             : raw.len > a->cap - a->used           ? MQIM_BUFFER_TOO_SMALL
                                                    : MQIM_OK;
        if (st == MQIM_OK) {
            memcpy(a->buf + a->used, raw.ptr, raw.len);
            env->enc = (mqim_str_t){ a->buf + a->used, raw.len };
            a->used += raw.len;
        }
    }
    if (st == MQIM_OK && fields[F_ACK].type != MQIM_JSON_ABSENT) {
        /* A request to the gateway, not part of the message: "sent" is the
         * only confirmation a sender can ask for besides its echo. */
        st = fields[F_ACK].type != MQIM_JSON_STRING           ? MQIM_FIELD_TYPE
             : !mqim_json_string_eq(&fields[F_ACK], "sent") ? MQIM_FIELD_RANGE
                                                              : MQIM_OK;
        env->ack_sent = st == MQIM_OK;
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
    *env = (mqim_envelope_t){ .seq = 0u };
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
        st = collect(&root, field_names, F_COUNT, fields, allow_cut, cut);
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
    if (env->device.len > 0u) {
        mqim_json_key_str(&w, "device", env->device);
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
    if (env->has_file) {
        mqim_json_object_begin_key(&w, "file");
        mqim_json_key_str(&w, "id", env->file.id);
        if (env->file.name.len > 0u) {
            mqim_json_key_str(&w, "name", env->file.name);
        }
        if (env->file.mime.len > 0u) {
            mqim_json_key_str(&w, "mime", env->file.mime);
        }
        if (env->file.has_size) {
            mqim_json_key_u64(&w, "size", env->file.size);
        }
        if (env->file.sha256.len > 0u) {
            mqim_json_key_str(&w, "sha256", env->file.sha256);
        }
        mqim_json_object_end(&w);
    }
    if (env->enc.len > 0u) {
        mqim_json_key_raw(&w, "enc", env->enc); /* the e2e layer wrote valid JSON */
    } else if (env->body.len > 0u || env->body.ptr != 0) {
        mqim_json_key_str(&w, "body", env->body);
    }
    mqim_json_object_end(&w);
    return mqim_json_finish(&w, out_len);
}
