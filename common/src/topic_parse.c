/* Topic parsing (topic.h), for the gateway: it walks the levels after the
 * root once and matches them against the shapes topic.c builds from. */
#include "mqim/limits.h"
#include "mqim/name.h"
#include "mqim/topic.h"
#include "topic_shapes.h"

static bool level_eq(mqim_str_t level, const char *lit)
{
    return mqim_str_eq_cstr(level, lit);
}

mqim_status_t mqim_topic_parse(mqim_str_t root, mqim_str_t topic, mqim_topic_t *out)
{
    mqim_str_t levels[MQIM_TOPIC_LEVELS_MAX + 1u];
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
    /* Split the rest into levels; more than MQIM_TOPIC_LEVELS_MAX cannot match a shape. */
    start = root.len + 1u;
    for (size_t i = start; i <= topic.len; i++) {
        if (i == topic.len || topic.ptr[i] == '/') {
            if (nlevels == MQIM_TOPIC_LEVELS_MAX + 1u) {
                return MQIM_TOPIC_UNKNOWN;
            }
            levels[nlevels++] = (mqim_str_t){ topic.ptr + start, i - start };
            start = i + 1u;
        }
    }
    st = MQIM_TOPIC_UNKNOWN;
    for (size_t s = 0; s < MQIM_TOPIC_SHAPE_COUNT && st == MQIM_TOPIC_UNKNOWN; s++) {
        const mqim_topic_shape_t *sh = &mqim_topic_shapes[s];
        mqim_topic_t t = { (mqim_topic_kind_t)sh->kind, { 0, 0 }, { 0, 0 } };
        size_t n = 0;
        bool match = true, has_user = false, has_name = false;
        while (n < MQIM_TOPIC_LEVELS_MAX && sh->levels[n] != 0) {
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
