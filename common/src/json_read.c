/* The non-allocating JSON reader (json_read.h). One scanner validates and
 * skips values; everything else (parse, iterate, find) is built on it, so
 * there is one grammar to fuzz. Running out of input is MQIM_JSON_TRUNCATED
 * internally, which lets an iterator read the complete members of a payload
 * that a small device could only keep the head of. */
#include "mqim/json_read.h"

#include "mqim/name.h"
#include "mqim/utf8.h"

#if MQIM_JSON_READ_DEPTH_MAX > 32
#error "the container stack is a uint32_t bit set"
#endif

static size_t skip_ws(const char *p, size_t len, size_t i)
{
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r')) {
        i++;
    }
    return i;
}

static int hex_digit(char c)
{
    int lower = c | 0x20; /* 'A'..'F' to 'a'..'f'; nothing else lands there */
    int v = -1;
    if (c >= '0' && c <= '9') {
        v = c - '0';
    } else if (lower >= 'a' && lower <= 'f') {
        v = lower - 'a' + 10;
    }
    return v;
}

/* Four hex digits at p[i..i+3] into *cp. */
static mqim_status_t hex4(const char *p, size_t len, size_t i, unsigned *cp)
{
    unsigned v = 0;
    for (size_t k = 0; k < 4u; k++) {
        int d;
        if (i + k >= len) {
            return MQIM_JSON_TRUNCATED;
        }
        d = hex_digit(p[i + k]);
        if (d < 0) {
            return MQIM_JSON_MALFORMED;
        }
        v = v * 16u + (unsigned)d;
    }
    *cp = v;
    return MQIM_OK;
}

/* One escape at p[i] (just after the backslash). On success *i is past it
 * and *cp holds the code point (surrogate pairs combined). */
static mqim_status_t escape(const char *p, size_t len, size_t *i, unsigned *cp)
{
    /* The one-character escapes: a table, not a case each (a device counts
     * its bytes). The NUL that ends `from` is not searched: p[k] == '\0'
     * is malformed like any other unknown escape. */
    static const char from[] = "\"\\/bfnrt";
    static const char to[] = "\"\\/\b\f\n\r\t";
    mqim_status_t st = MQIM_OK;
    size_t k = *i;
    if (k >= len) {
        return MQIM_JSON_TRUNCATED;
    }
    for (size_t e = 0; e < sizeof(from) - 1u; e++) {
        if (p[k] == from[e]) {
            *cp = (unsigned char)to[e];
            *i = k + 1u;
            return MQIM_OK;
        }
    }
    switch (p[k]) {
    case 'u':
        st = hex4(p, len, k + 1u, cp);
        k += 4u;
        if (st == MQIM_OK && *cp >= 0xdc00u && *cp <= 0xdfffu) {
            st = MQIM_JSON_MALFORMED; /* a low surrogate alone */
        } else if (st == MQIM_OK && *cp >= 0xd800u && *cp <= 0xdbffu) {
            unsigned lo = 0;
            if (k + 2u >= len) {
                st = MQIM_JSON_TRUNCATED;
            } else if (p[k + 1u] != '\\' || p[k + 2u] != 'u') {
                st = MQIM_JSON_MALFORMED; /* a high surrogate alone */
            } else {
                st = hex4(p, len, k + 3u, &lo);
                if (st == MQIM_OK && (lo < 0xdc00u || lo > 0xdfffu)) {
                    st = MQIM_JSON_MALFORMED;
                }
                *cp = 0x10000u + ((*cp - 0xd800u) << 10) + (lo - 0xdc00u);
                k += 6u;
            }
        }
        break;
    default:
        st = MQIM_JSON_MALFORMED;
        break;
    }
    *i = k + 1u;
    return st;
}

/* A string starting at the quote p[*i]; *i ends past the closing quote. */
static mqim_status_t scan_string(const char *p, size_t len, size_t *i)
{
    size_t k = *i + 1u;
    size_t start = k;
    for (;;) {
        unsigned char c;
        if (k >= len) {
            return MQIM_JSON_TRUNCATED;
        }
        c = (unsigned char)p[k];
        if (c == '"') {
            break;
        }
        if (c < 0x20u) {
            return MQIM_JSON_MALFORMED;
        }
        if (c == '\\') {
            unsigned cp = 0;
            mqim_status_t st;
            k++;
            st = escape(p, len, &k, &cp);
            if (st != MQIM_OK) {
                return st;
            }
        } else {
            k++;
        }
    }
    /* escapes are ASCII, so checking the raw bytes checks the literal text */
    if (!mqim_utf8_valid(p + start, k - start)) {
        return MQIM_UTF8_INVALID;
    }
    *i = k + 1u;
    return MQIM_OK;
}

static mqim_status_t scan_digits(const char *p, size_t len, size_t *i)
{
    size_t k = *i;
    if (k >= len) {
        return MQIM_JSON_TRUNCATED;
    }
    if (p[k] < '0' || p[k] > '9') {
        return MQIM_JSON_MALFORMED;
    }
    while (k < len && p[k] >= '0' && p[k] <= '9') {
        k++;
    }
    *i = k;
    return MQIM_OK;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static mqim_status_t scan_number(const char *p, size_t len, size_t *i)
{
    size_t k = *i;
    mqim_status_t st = MQIM_OK;
    if (p[k] == '-') {
        k++;
    }
    if (k >= len) {
        return MQIM_JSON_TRUNCATED;
    }
    if (p[k] == '0') {
        k++;
    } else {
        st = scan_digits(p, len, &k);
    }
    if (st == MQIM_OK && k < len && p[k] == '.') {
        k++;
        st = scan_digits(p, len, &k);
    }
    if (st == MQIM_OK && k < len && (p[k] == 'e' || p[k] == 'E')) {
        k++;
        if (k < len && (p[k] == '+' || p[k] == '-')) {
            k++;
        }
        st = scan_digits(p, len, &k);
    }
    *i = k;
    return st;
}

static mqim_status_t scan_literal(const char *p, size_t len, size_t *i, const char *word)
{
    size_t k = *i;
    for (size_t w = 0; word[w] != '\0'; w++, k++) {
        if (k >= len) {
            return MQIM_JSON_TRUNCATED;
        }
        if (p[k] != word[w]) {
            return MQIM_JSON_MALFORMED;
        }
    }
    *i = k;
    return MQIM_OK;
}

/* A member name and its colon: whitespace, "name", whitespace, ':'. */
static mqim_status_t scan_key(const char *p, size_t len, size_t *i, mqim_json_value_t *key)
{
    size_t k = skip_ws(p, len, *i);
    size_t start;
    mqim_status_t st;
    if (k >= len) {
        return MQIM_JSON_TRUNCATED;
    }
    if (p[k] != '"') {
        return MQIM_JSON_MALFORMED;
    }
    start = k;
    st = scan_string(p, len, &k);
    if (st != MQIM_OK) {
        return st;
    }
    if (key != 0) {
        key->type = MQIM_JSON_STRING;
        key->text = (mqim_str_t){ p + start + 1u, k - start - 2u };
        key->depth_left = 0;
    }
    k = skip_ws(p, len, k);
    if (k >= len) {
        return MQIM_JSON_TRUNCATED;
    }
    if (p[k] != ':') {
        return MQIM_JSON_MALFORMED;
    }
    *i = k + 1u;
    return MQIM_OK;
}

static mqim_status_t scan_scalar(const char *p, size_t len, size_t *i)
{
    char c = p[*i];
    mqim_status_t st;
    if (c == '"') {
        st = scan_string(p, len, i);
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        st = scan_number(p, len, i);
    } else if (c == 't') {
        st = scan_literal(p, len, i, "true");
    } else if (c == 'f') {
        st = scan_literal(p, len, i, "false");
    } else if (c == 'n') {
        st = scan_literal(p, len, i, "null");
    } else {
        st = MQIM_JSON_MALFORMED;
    }
    return st;
}

/* One complete value at p[*i] (after optional whitespace), nesting at most
 * depth_left containers. Iterative: bit d of `objects` says whether the
 * container at level d is an object. */
static mqim_status_t scan_value(const char *p, size_t len, size_t *i, int depth_left,
                                mqim_json_value_t *out)
{
    uint32_t objects = 0;
    int depth = 0;
    bool want_value = true;
    size_t k = skip_ws(p, len, *i);
    size_t start = k;
    mqim_status_t st = MQIM_OK;

    while (st == MQIM_OK) {
        if (want_value) {
            char c;
            k = skip_ws(p, len, k);
            if (k >= len) {
                return MQIM_JSON_TRUNCATED;
            }
            c = p[k];
            if (c == '{' || c == '[') {
                if (depth >= depth_left) {
                    return MQIM_JSON_TOO_DEEP;
                }
                objects = c == '{' ? (objects | (1u << depth)) : (objects & ~(1u << depth));
                depth++;
                k = skip_ws(p, len, k + 1u);
                if (k >= len) {
                    return MQIM_JSON_TRUNCATED;
                }
                if (p[k] == (c == '{' ? '}' : ']')) {
                    depth--;
                    k++;
                    want_value = false;
                } else if (c == '{') {
                    st = scan_key(p, len, &k, 0);
                }
            } else {
                st = scan_scalar(p, len, &k);
                want_value = false;
            }
        } else {
            bool in_object;
            char c;
            if (depth == 0) {
                break;
            }
            k = skip_ws(p, len, k);
            if (k >= len) {
                return MQIM_JSON_TRUNCATED;
            }
            in_object = (objects & (1u << (depth - 1))) != 0u;
            c = p[k++];
            if (c == ',') {
                want_value = true;
                if (in_object) {
                    st = scan_key(p, len, &k, 0);
                }
            } else if (c == (in_object ? '}' : ']')) {
                depth--;
            } else {
                st = MQIM_JSON_MALFORMED;
            }
        }
    }
    if (st != MQIM_OK) {
        return st;
    }
    if (out != 0) {
        char c = p[start];
        out->depth_left = depth_left;
        out->text = (mqim_str_t){ p + start, k - start };
        if (c == '"') {
            out->type = MQIM_JSON_STRING;
            out->text = (mqim_str_t){ p + start + 1u, k - start - 2u };
        } else if (c == '{') {
            out->type = MQIM_JSON_OBJECT;
        } else if (c == '[') {
            out->type = MQIM_JSON_ARRAY;
        } else if (c == 't') {
            out->type = MQIM_JSON_TRUE;
        } else if (c == 'f') {
            out->type = MQIM_JSON_FALSE;
        } else if (c == 'n') {
            out->type = MQIM_JSON_NULL;
        } else {
            out->type = MQIM_JSON_NUMBER;
        }
    }
    *i = k;
    return MQIM_OK;
}

mqim_status_t mqim_json_parse(mqim_str_t text, int max_depth, mqim_json_value_t *root)
{
    size_t i = 0;
    mqim_status_t st;
    if (root == 0 || (text.ptr == 0 && text.len > 0u) || max_depth < 1 ||
        max_depth > MQIM_JSON_READ_DEPTH_MAX) {
        return MQIM_BAD_PARAMETER;
    }
    st = scan_value(text.ptr, text.len, &i, max_depth, root);
    if (st == MQIM_OK && skip_ws(text.ptr, text.len, i) != text.len) {
        st = MQIM_JSON_MALFORMED; /* something after the value */
    }
    return st == MQIM_JSON_TRUNCATED ? MQIM_JSON_MALFORMED : st;
}

mqim_status_t mqim_json_iter_begin(mqim_json_iter_t *it, const mqim_json_value_t *container)
{
    char open;
    if (it == 0 || container == 0) {
        return MQIM_BAD_PARAMETER;
    }
    if (container->type != MQIM_JSON_OBJECT && container->type != MQIM_JSON_ARRAY) {
        return MQIM_FIELD_TYPE;
    }
    open = container->type == MQIM_JSON_OBJECT ? '{' : '[';
    if (container->text.len == 0u || container->text.ptr[0] != open || container->depth_left < 1) {
        return MQIM_BAD_PARAMETER;
    }
    it->p = container->text.ptr;
    it->len = container->text.len;
    it->pos = 1;
    it->depth_left = container->depth_left - 1;
    it->object = container->type == MQIM_JSON_OBJECT;
    it->done = false;
    return MQIM_OK;
}

mqim_status_t mqim_json_iter_next(mqim_json_iter_t *it, mqim_json_value_t *key, mqim_json_value_t *val)
{
    mqim_json_value_t k_local, v_local;
    size_t i;
    mqim_status_t st = MQIM_OK;
    char close;
    if (it == 0) {
        return MQIM_BAD_PARAMETER;
    }
    if (it->done) {
        return MQIM_NOT_FOUND;
    }
    close = it->object ? '}' : ']';
    i = skip_ws(it->p, it->len, it->pos);
    if (i >= it->len) {
        return MQIM_JSON_TRUNCATED;
    }
    if (it->p[i] == close) {
        it->done = true;
        return MQIM_NOT_FOUND;
    }
    if (it->pos > 1u) { /* not the first member: a comma first */
        if (it->p[i] != ',') {
            return MQIM_JSON_MALFORMED;
        }
        i++;
    }
    k_local.type = MQIM_JSON_ABSENT;
    k_local.text = (mqim_str_t){ 0, 0 };
    k_local.depth_left = 0;
    if (it->object) {
        st = scan_key(it->p, it->len, &i, &k_local);
    }
    if (st == MQIM_OK) {
        st = scan_value(it->p, it->len, &i, it->depth_left, &v_local);
    }
    if (st == MQIM_OK && i >= it->len) {
        st = MQIM_JSON_TRUNCATED; /* the container never closes */
    }
    if (st != MQIM_OK) {
        return st;
    }
    it->pos = i;
    if (key != 0) {
        *key = k_local;
    }
    if (val != 0) {
        *val = v_local;
    }
    return MQIM_OK;
}

/* The next character of a string value's text at *i as a code point;
 * false at the end or on a bad escape. */
static bool next_code_point(mqim_str_t t, size_t *i, unsigned *cp, bool *escaped)
{
    unsigned char c;
    if (*i >= t.len) {
        return false;
    }
    c = (unsigned char)t.ptr[*i];
    *escaped = c == '\\';
    if (*escaped) {
        (*i)++;
        return escape(t.ptr, t.len, i, cp) == MQIM_OK;
    }
    *cp = c; /* a raw byte: copied as is (already valid UTF-8) */
    (*i)++;
    return true;
}

/* UTF-8 of a code point from an escape; returns the byte count. */
static size_t utf8_put(unsigned cp, char out[4])
{
    size_t n;
    if (cp < 0x80u) {
        out[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800u) {
        out[0] = (char)(0xc0u | (cp >> 6));
        out[1] = (char)(0x80u | (cp & 0x3fu));
        n = 2;
    } else if (cp < 0x10000u) {
        out[0] = (char)(0xe0u | (cp >> 12));
        out[1] = (char)(0x80u | ((cp >> 6) & 0x3fu));
        out[2] = (char)(0x80u | (cp & 0x3fu));
        n = 3;
    } else {
        out[0] = (char)(0xf0u | (cp >> 18));
        out[1] = (char)(0x80u | ((cp >> 12) & 0x3fu));
        out[2] = (char)(0x80u | ((cp >> 6) & 0x3fu));
        out[3] = (char)(0x80u | (cp & 0x3fu));
        n = 4;
    }
    return n;
}

/* The unescaped bytes of the next character of a string value's text at
 * *i into enc: their count, or 0 on a bad escape. One decoder for both
 * mqim_json_string and mqim_json_string_eq. */
static size_t next_bytes(mqim_str_t t, size_t *i, char enc[4])
{
    unsigned cp = 0;
    bool escaped = false;
    if (!next_code_point(t, i, &cp, &escaped)) {
        return 0;
    }
    if (escaped) {
        return utf8_put(cp, enc);
    }
    enc[0] = (char)cp;
    return 1;
}

mqim_status_t mqim_json_string(const mqim_json_value_t *v, char *buf, size_t cap, mqim_str_t *out)
{
    size_t i = 0, n = 0;
    if (v == 0 || out == 0 || (buf == 0 && cap > 0u)) {
        return MQIM_BAD_PARAMETER;
    }
    if (v->type != MQIM_JSON_STRING) {
        return MQIM_FIELD_TYPE;
    }
    while (i < v->text.len) {
        char enc[4];
        size_t m = next_bytes(v->text, &i, enc);
        if (m == 0u) {
            return MQIM_JSON_MALFORMED; /* only for text the reader did not make */
        }
        if (m > cap - n) {
            return MQIM_BUFFER_TOO_SMALL;
        }
        for (size_t k = 0; k < m; k++) {
            buf[n + k] = enc[k];
        }
        n += m;
    }
    *out = (mqim_str_t){ buf, n }; /* buf, not NULL, even when empty: the string is there */
    return MQIM_OK;
}

bool mqim_json_string_eq(const mqim_json_value_t *v, const char *s)
{
    size_t i = 0, j = 0;
    if (v == 0 || s == 0 || v->type != MQIM_JSON_STRING) {
        return false;
    }
    while (i < v->text.len) {
        char enc[4];
        size_t m = next_bytes(v->text, &i, enc);
        if (m == 0u) {
            return false;
        }
        for (size_t k = 0; k < m; k++, j++) {
            if (s[j] == '\0' || s[j] != enc[k]) {
                return false;
            }
        }
    }
    return s[j] == '\0';
}

mqim_status_t mqim_json_find(const mqim_json_value_t *obj, const char *key, mqim_json_value_t *val)
{
    mqim_json_iter_t it;
    mqim_json_value_t k, v;
    mqim_status_t st;
    if (obj == 0 || key == 0 || val == 0) {
        return MQIM_BAD_PARAMETER;
    }
    val->type = MQIM_JSON_ABSENT;
    val->text = (mqim_str_t){ 0, 0 };
    val->depth_left = 0;
    if (obj->type != MQIM_JSON_OBJECT) {
        return MQIM_FIELD_TYPE;
    }
    st = mqim_json_iter_begin(&it, obj);
    while (st == MQIM_OK) {
        st = mqim_json_iter_next(&it, &k, &v);
        if (st == MQIM_OK && mqim_json_string_eq(&k, key)) {
            *val = v;
            return MQIM_OK;
        }
    }
    return st == MQIM_NOT_FOUND ? MQIM_OK : st;
}

mqim_status_t mqim_json_int(const mqim_json_value_t *v, int64_t *out)
{
    const uint64_t limit = (uint64_t)1 << 53;
    uint64_t mag = 0;
    size_t i = 0;
    bool neg;
    if (v == 0 || out == 0) {
        return MQIM_BAD_PARAMETER;
    }
    if (v->type != MQIM_JSON_NUMBER) {
        return MQIM_FIELD_TYPE;
    }
    neg = v->text.len > 0u && v->text.ptr[0] == '-';
    i = neg ? 1u : 0u;
    if (i >= v->text.len) {
        return MQIM_FIELD_RANGE;
    }
    for (; i < v->text.len; i++) {
        char c = v->text.ptr[i];
        if (c < '0' || c > '9') {
            return MQIM_FIELD_RANGE; /* a fraction or an exponent */
        }
        mag = mag * 10u + (uint64_t)(c - '0');
        if (mag > limit) {
            return MQIM_FIELD_RANGE;
        }
    }
    *out = neg ? -(int64_t)mag : (int64_t)mag;
    return MQIM_OK;
}
