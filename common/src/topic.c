/* The topic scheme (topic.h). Parsing walks the levels after the root once;
 * building writes levels into the caller's buffer and counts what it needs. */
#include "mqim/limits.h"
#include "mqim/name.h"
#include "mqim/topic.h"

#include <stdint.h>

/* One row per kind: the levels after the root, with "*" for the user level
 * and "$" for the trailing name level. */
typedef struct topic_shape {
    const char *levels[5];
    uint8_t kind;      /* mqim_topic_kind_t; bytes keep the table small on a device */
    uint8_t name_kind; /* mqim_name_kind_t */
} topic_shape_t;

static const topic_shape_t shapes[] = {
    { { "u", "*", "out", "dm", "$" }, MQIM_TOPIC_OUT_DM, MQIM_NAME_USER },
    { { "u", "*", "out", "group", "$" }, MQIM_TOPIC_OUT_GROUP, MQIM_NAME_GROUP },
    { { "u", "*", "out", "receipt", 0 }, MQIM_TOPIC_OUT_RECEIPT, MQIM_NAME_USER },
    { { "u", "*", "out", "ctl", 0 }, MQIM_TOPIC_OUT_CTL, MQIM_NAME_USER },
    { { "u", "*", "out", "status", "$" }, MQIM_TOPIC_OUT_STATUS, MQIM_NAME_DEVICE },
    { { "u", "*", "out", "key", 0 }, MQIM_TOPIC_OUT_KEY, MQIM_NAME_USER },
    { { "u", "*", "in", "msg", 0 }, MQIM_TOPIC_IN_MSG, MQIM_NAME_USER },
    { { "u", "*", "in", "ack", 0 }, MQIM_TOPIC_IN_ACK, MQIM_NAME_USER },
    { { "u", "*", "in", "res", 0 }, MQIM_TOPIC_IN_RES, MQIM_NAME_USER },
    { { "presence", "*", 0, 0, 0 }, MQIM_TOPIC_PRESENCE, MQIM_NAME_USER },
    { { "keys", "*", 0, 0, 0 }, MQIM_TOPIC_KEYS, MQIM_NAME_USER },
    { { "gateway", "status", 0, 0, 0 }, MQIM_TOPIC_GATEWAY_STATUS, MQIM_NAME_USER },
    { { "gateway", "stats", 0, 0, 0 }, MQIM_TOPIC_GATEWAY_STATS, MQIM_NAME_USER },
    { { "u", "*", "out", "file", 0 }, MQIM_TOPIC_OUT_FILE, MQIM_NAME_USER },
};

#define SHAPE_COUNT (sizeof(shapes) / sizeof(shapes[0]))
#define LEVELS_MAX 5u

mqim_status_t mqim_topic_root_check(mqim_str_t root)
{
    mqim_status_t st = MQIM_OK;
    if (root.len == 0u || root.ptr == 0 || root.len > MQIM_ROOT_MAX) {
        st = MQIM_BAD_PARAMETER;
    } else if (root.ptr[0] == '/' || root.ptr[root.len - 1u] == '/') {
        st = MQIM_BAD_PARAMETER;
    } else {
        for (size_t i = 0; i < root.len; i++) {
            char c = root.ptr[i];
            if (c == '+' || c == '#' || c == '\0' || (c == '/' && root.ptr[i + 1u] == '/')) {
                st = MQIM_BAD_PARAMETER;
                break;
            }
        }
    }
    return st;
}

static bool level_eq(mqim_str_t level, const char *lit)
{
    return mqim_str_eq_cstr(level, lit);
}

mqim_status_t mqim_topic_parse(mqim_str_t root, mqim_str_t topic, mqim_topic_t *out)
{
    mqim_str_t levels[LEVELS_MAX + 1u];
    size_t nlevels = 0;
    size_t start;
    mqim_status_t st = MQIM_OK;

    if (out == 0 || mqim_topic_root_check(root) != MQIM_OK || (topic.len > 0u && topic.ptr == 0)) {
        return MQIM_BAD_PARAMETER;
    }
    if (topic.len > MQIM_TOPIC_MAX) {
        return MQIM_TOPIC_TOO_LONG;
    }
    if (topic.len <= root.len || topic.ptr[root.len] != '/' ||
        !mqim_str_eq((mqim_str_t){ topic.ptr, root.len }, root)) {
        return MQIM_TOPIC_BAD_ROOT;
    }
    /* Split the rest into levels; more than LEVELS_MAX cannot match a shape. */
    start = root.len + 1u;
    for (size_t i = start; i <= topic.len; i++) {
        if (i == topic.len || topic.ptr[i] == '/') {
            if (nlevels == LEVELS_MAX + 1u) {
                return MQIM_TOPIC_UNKNOWN;
            }
            levels[nlevels++] = (mqim_str_t){ topic.ptr + start, i - start };
            start = i + 1u;
        }
    }
    st = MQIM_TOPIC_UNKNOWN;
    for (size_t s = 0; s < SHAPE_COUNT && st == MQIM_TOPIC_UNKNOWN; s++) {
        const topic_shape_t *sh = &shapes[s];
        mqim_topic_t t = { (mqim_topic_kind_t)sh->kind, { 0, 0 }, { 0, 0 } };
        size_t n = 0;
        bool match = true, has_user = false, has_name = false;
        while (n < LEVELS_MAX && sh->levels[n] != 0) {
            n++;
        }
        if (n != nlevels) {
            continue;
        }
        for (size_t l = 0; l < n && match; l++) {
            const char *want = sh->levels[l];
            if (want[0] == '*' && want[1] == '\0') {
                t.user = levels[l];
                has_user = true;
            } else if (want[0] == '$' && want[1] == '\0') {
                t.name = levels[l];
                has_name = true;
            } else {
                match = level_eq(levels[l], want);
            }
        }
        if (!match) {
            continue;
        }
        /* The shape matches: now the names decide. */
        st = has_user ? mqim_name_check(MQIM_NAME_USER, t.user) : MQIM_OK;
        if (st == MQIM_OK && has_name) {
            st = mqim_name_check((mqim_name_kind_t)sh->name_kind, t.name);
        }
        if (st == MQIM_OK) {
            *out = t;
        }
    }
    return st;
}

/* Append bytes to the buffer if they fit; always count them. */
static void put(char *buf, size_t cap, size_t *len, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (*len + i < cap) {
            buf[*len + i] = s[i];
        }
    }
    *len += n;
}

mqim_status_t mqim_topic_build(mqim_str_t root, mqim_topic_kind_t kind, mqim_str_t user,
                               mqim_str_t name, char *buf, size_t cap, size_t *out_len)
{
    const topic_shape_t *sh = 0;
    size_t len = 0;
    mqim_status_t st = MQIM_OK;

    if (out_len == 0 || (cap > 0u && buf == 0) || mqim_topic_root_check(root) != MQIM_OK) {
        return MQIM_BAD_PARAMETER;
    }
    *out_len = 0;
    for (size_t s = 0; s < SHAPE_COUNT; s++) {
        if (shapes[s].kind == (uint8_t)kind) {
            sh = &shapes[s];
        }
    }
    if (sh == 0) {
        return MQIM_BAD_PARAMETER;
    }
    put(buf, cap, &len, root.ptr, root.len);
    for (size_t l = 0; l < LEVELS_MAX && sh->levels[l] != 0 && st == MQIM_OK; l++) {
        const char *lv = sh->levels[l];
        put(buf, cap, &len, "/", 1u);
        if (lv[0] == '*' && lv[1] == '\0') {
            st = mqim_name_check(MQIM_NAME_USER, user);
            put(buf, cap, &len, user.ptr, user.len);
        } else if (lv[0] == '$' && lv[1] == '\0') {
            st = mqim_name_check((mqim_name_kind_t)sh->name_kind, name);
            put(buf, cap, &len, name.ptr, name.len);
        } else {
            size_t n = 0;
            while (lv[n] != '\0') {
                n++;
            }
            put(buf, cap, &len, lv, n);
        }
    }
    if (st != MQIM_OK) {
        return st;
    }
    *out_len = len;
    if (len + 1u > cap) {
        return MQIM_BUFFER_TOO_SMALL;
    }
    buf[len] = '\0';
    return MQIM_OK;
}
