/* The gateway's status document (gateway_status.h): one writer, one reader. */
#include "mqim/gateway_status.h"

#include "mqim/json_read.h"
#include "mqim/json_write.h"

/* The document is flat; a little room for members a newer gateway nests. */
#define STATUS_DEPTH 4

mqim_status_t mqim_gateway_status_encode(const mqim_gateway_status_t *s, char *buf, size_t cap,
                                         size_t *out_len)
{
    mqim_json_writer_t w;
    if (s == 0 || out_len == 0 || s->state.len == 0u || (buf == 0 && cap > 0u)) {
        return MQIM_BAD_PARAMETER;
    }
    mqim_json_init(&w, buf, cap);
    mqim_json_object_begin(&w);
    /* "state" first: devices before issue 16 matched the prefix {"state":"online" */
    mqim_json_key_str(&w, "state", s->state);
    if (s->has_ts) {
        mqim_json_key_i64(&w, "ts", s->ts);
    }
    if (s->store.len > 0u) {
        mqim_json_key_str(&w, "store", s->store);
        mqim_json_key_u64(&w, "store_epoch", s->store_epoch);
    }
    if (s->instance.len > 0u) {
        mqim_json_key_str(&w, "instance", s->instance);
    }
    if (s->host.len > 0u) {
        mqim_json_key_str(&w, "host", s->host);
    }
    if (s->boot.len > 0u) {
        mqim_json_key_str(&w, "boot", s->boot);
    }
    if (s->has_pid) {
        mqim_json_key_i64(&w, "pid", s->pid);
    }
    mqim_json_object_end(&w);
    return mqim_json_finish(&w, out_len);
}

/* A string member into the arena; absent leaves *out empty. */
static mqim_status_t take_str(const mqim_json_value_t *v, char *arena, size_t cap, size_t *used,
                              mqim_str_t *out)
{
    mqim_status_t st;
    if (v->type == MQIM_JSON_ABSENT) {
        return MQIM_OK;
    }
    st = mqim_json_string(v, arena + *used, cap - *used, out);
    if (st == MQIM_OK) {
        *used += out->len;
    }
    return st;
}

static mqim_status_t take_int(const mqim_json_value_t *v, bool *has, int64_t *out)
{
    if (v->type == MQIM_JSON_ABSENT) {
        return MQIM_OK;
    }
    if (has != 0) {
        *has = true;
    }
    return mqim_json_int(v, out);
}

mqim_status_t mqim_gateway_status_decode(mqim_str_t payload, mqim_gateway_status_t *s, char *arena,
                                         size_t cap)
{
    static const char *const keys[] = { "state", "store", "instance", "host", "boot" };
    mqim_json_value_t root, v;
    mqim_str_t *strs[5];
    size_t used = 0;
    int64_t epoch = 0;
    mqim_status_t st;
    if (s == 0 || (arena == 0 && cap > 0u)) {
        return MQIM_BAD_PARAMETER;
    }
    *s = (mqim_gateway_status_t){ { 0, 0 }, false, 0, { 0, 0 }, 0, { 0, 0 }, { 0, 0 }, { 0, 0 }, false, 0 };
    strs[0] = &s->state;
    strs[1] = &s->store;
    strs[2] = &s->instance;
    strs[3] = &s->host;
    strs[4] = &s->boot;
    st = mqim_json_parse(payload, STATUS_DEPTH, &root);
    if (st == MQIM_OK && root.type != MQIM_JSON_OBJECT) {
        st = MQIM_FIELD_TYPE;
    }
    for (size_t i = 0; st == MQIM_OK && i < sizeof(keys) / sizeof(keys[0]); i++) {
        st = mqim_json_find(&root, keys[i], &v);
        if (st == MQIM_OK) {
            st = take_str(&v, arena, cap, &used, strs[i]);
        }
    }
    if (st == MQIM_OK && s->state.len == 0u) {
        st = MQIM_FIELD_MISSING;
    }
    if (st == MQIM_OK && (st = mqim_json_find(&root, "ts", &v)) == MQIM_OK) {
        st = take_int(&v, &s->has_ts, &s->ts);
    }
    if (st == MQIM_OK && (st = mqim_json_find(&root, "pid", &v)) == MQIM_OK) {
        st = take_int(&v, &s->has_pid, &s->pid);
    }
    if (st == MQIM_OK && (st = mqim_json_find(&root, "store_epoch", &v)) == MQIM_OK) {
        st = take_int(&v, 0, &epoch);
        if (st == MQIM_OK && epoch < 0) {
            st = MQIM_FIELD_RANGE;
        }
        s->store_epoch = (uint64_t)epoch;
    }
    return st;
}
