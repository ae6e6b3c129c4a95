/* Fuzz target: the strict JSON reader (common/json_read.h). Whatever the
 * input, parsing must stay inside it; an accepted document must walk to the
 * end with every string unescaping and every member visited, and a cut copy
 * of it must never be accepted as a whole document. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mqim/json_read.h"
#include "mqim/limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Visit every value under v (depth-first, bounded by the reader's depth). */
static void walk(const mqim_json_value_t *v, int level)
{
    static char buf[1 << 16];
    mqim_json_iter_t it;
    mqim_json_value_t key, val;
    mqim_status_t st;
    mqim_str_t out;
    int64_t n;
    if (level > MQIM_JSON_READ_DEPTH_MAX) {
        abort();
    }
    switch (v->type) {
    case MQIM_JSON_STRING:
        if (v->text.len <= sizeof(buf)) {
            if (mqim_json_string(v, buf, sizeof(buf), &out) != MQIM_OK || out.len > v->text.len) {
                abort(); /* a validated string always unescapes, never grows */
            }
            if (out.len < 64u && memchr(out.ptr, 0, out.len) == NULL) {
                char z[64];
                memcpy(z, out.ptr, out.len);
                z[out.len] = '\0';
                if (!mqim_json_string_eq(v, z)) {
                    abort();
                }
            }
        }
        break;
    case MQIM_JSON_NUMBER:
        st = mqim_json_int(v, &n);
        if (st != MQIM_OK && st != MQIM_FIELD_RANGE) {
            abort();
        }
        break;
    case MQIM_JSON_OBJECT:
    case MQIM_JSON_ARRAY:
        if (mqim_json_iter_begin(&it, v) != MQIM_OK) {
            abort();
        }
        while ((st = mqim_json_iter_next(&it, &key, &val)) == MQIM_OK) {
            if (v->type == MQIM_JSON_OBJECT) {
                walk(&key, level + 1);
            }
            walk(&val, level + 1);
        }
        if (st != MQIM_NOT_FOUND) {
            abort(); /* the document was valid: members must walk cleanly */
        }
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mqim_json_value_t root, cut, v;
    mqim_str_t text = { (const char *)data, size };
    if (mqim_json_parse(text, MQIM_JSON_DEPTH_MAX, &root) != MQIM_OK) {
        return 0;
    }
    walk(&root, 0);
    if (root.type == MQIM_JSON_OBJECT || root.type == MQIM_JSON_ARRAY) {
        /* a container cut anywhere inside is never a whole document */
        size_t end = (size_t)(root.text.ptr - text.ptr) + root.text.len;
        text.len = end - 1u;
        if (mqim_json_parse(text, MQIM_JSON_DEPTH_MAX, &cut) == MQIM_OK) {
            abort();
        }
        if (root.type == MQIM_JSON_OBJECT) {
            (void)mqim_json_find(&root, "id", &v);
        }
    }
    return 0;
}
