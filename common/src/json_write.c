/* Bounded JSON writer (json_write.h). Every write goes through put(), which
 * stores what fits and counts everything, so the final length is the size
 * the document needs whatever the buffer was. */
#include "mqim/json_write.h"

static void put(mqim_json_writer_t *w, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (w->len + i < w->cap) {
            w->buf[w->len + i] = s[i];
        }
    }
    w->len += n;
}

static void put_c(mqim_json_writer_t *w, char c)
{
    put(w, &c, 1u);
}

static void put_u64(mqim_json_writer_t *w, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + (v % 10u));
        v /= 10u;
    } while (v != 0u);
    while (n > 0u) {
        put_c(w, tmp[--n]);
    }
}

/* RFC 8259 string escaping: quote, backslash and control characters. */
static void put_string(mqim_json_writer_t *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    put_c(w, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            put_c(w, '\\');
            put_c(w, (char)c);
        } else if (c == '\n') {
            put(w, "\\n", 2u);
        } else if (c == '\r') {
            put(w, "\\r", 2u);
        } else if (c == '\t') {
            put(w, "\\t", 2u);
        } else if (c < 0x20u || c == 0x7fu) {
            char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 0x0fu] };
            put(w, esc, sizeof(esc));
        } else {
            put_c(w, (char)c);
        }
    }
    put_c(w, '"');
}

static void put_key(mqim_json_writer_t *w, const char *key)
{
    if (w->need_comma) {
        put_c(w, ',');
    }
    if (key != 0) {
        size_t n = 0;
        while (key[n] != '\0') {
            n++;
        }
        put_string(w, key, n);
        put_c(w, ':');
    }
    w->need_comma = true;
}

void mqim_json_init(mqim_json_writer_t *w, char *buf, size_t cap)
{
    w->buf = buf;
    w->cap = buf != 0 ? cap : 0u;
    w->len = 0;
    w->need_comma = false;
}

void mqim_json_object_begin(mqim_json_writer_t *w)
{
    if (w->need_comma) {
        put_c(w, ','); /* an object as an array element */
    }
    put_c(w, '{');
    w->need_comma = false;
}

void mqim_json_object_begin_key(mqim_json_writer_t *w, const char *key)
{
    put_key(w, key);
    put_c(w, '{');
    w->need_comma = false;
}

void mqim_json_object_end(mqim_json_writer_t *w)
{
    put_c(w, '}');
    w->need_comma = true;
}

void mqim_json_array_begin(mqim_json_writer_t *w, const char *key)
{
    put_key(w, key);
    put_c(w, '[');
    w->need_comma = false;
}

void mqim_json_array_end(mqim_json_writer_t *w)
{
    put_c(w, ']');
    w->need_comma = true;
}

void mqim_json_key_str(mqim_json_writer_t *w, const char *key, mqim_str_t value)
{
    put_key(w, key);
    put_string(w, value.ptr, value.len);
}

void mqim_json_key_u64(mqim_json_writer_t *w, const char *key, uint64_t value)
{
    put_key(w, key);
    put_u64(w, value);
}

void mqim_json_key_i64(mqim_json_writer_t *w, const char *key, int64_t value)
{
    put_key(w, key);
    if (value < 0) {
        put_c(w, '-');
        /* -(value+1)+1 avoids overflow at INT64_MIN */
        put_u64(w, (uint64_t)(-(value + 1)) + 1u);
    } else {
        put_u64(w, (uint64_t)value);
    }
}

void mqim_json_key_bool(mqim_json_writer_t *w, const char *key, bool value)
{
    put_key(w, key);
    if (value) {
        put(w, "true", 4u);
    } else {
        put(w, "false", 5u);
    }
}

void mqim_json_key_raw(mqim_json_writer_t *w, const char *key, mqim_str_t json)
{
    put_key(w, key);
    put(w, json.ptr, json.len);
}

void mqim_json_value_u64(mqim_json_writer_t *w, uint64_t value)
{
    put_key(w, 0);
    put_u64(w, value);
}

mqim_status_t mqim_json_finish(mqim_json_writer_t *w, size_t *out_len)
{
    mqim_status_t st = MQIM_OK;
    if (out_len != 0) {
        *out_len = w->len;
    }
    if (w->len + 1u > w->cap) {
        st = MQIM_BUFFER_TOO_SMALL;
    } else {
        w->buf[w->len] = '\0';
    }
    return st;
}
