/* The topic scheme (topic.h): building writes levels into the caller's
 * buffer and counts what it needs. Parsing is in topic_parse.c. */
#include "mqim/limits.h"
#include "mqim/name.h"
#include "mqim/topic.h"
#include "topic_shapes.h"

#include <stdint.h>

/* The shapes (topic_shapes.h): one row per kind. */
const mqim_topic_shape_t mqim_topic_shapes[MQIM_TOPIC_SHAPE_COUNT] = {
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
    const mqim_topic_shape_t *sh = 0;
    size_t len = 0;
    mqim_status_t st = MQIM_OK;

    if (out_len == 0 || (cap > 0u && buf == 0) || mqim_topic_root_check(root) != MQIM_OK) {
        return MQIM_BAD_PARAMETER;
    }
    *out_len = 0;
    for (size_t s = 0; s < MQIM_TOPIC_SHAPE_COUNT; s++) {
        if (mqim_topic_shapes[s].kind == (uint8_t)kind) {
            sh = &mqim_topic_shapes[s];
        }
    }
    if (sh == 0) {
        return MQIM_BAD_PARAMETER;
    }
    put(buf, cap, &len, root.ptr, root.len);
    for (size_t l = 0; l < MQIM_TOPIC_LEVELS_MAX && sh->levels[l] != 0 && st == MQIM_OK; l++) {
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
