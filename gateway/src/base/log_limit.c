/* Per-key log line limits (log_limit.h). */
#include "log_limit.h"

#include <string.h>

void mqim_log_limit_init(mqim_log_limit_t *l, int64_t interval_ms)
{
    memset(l, 0, sizeof(*l));
    l->interval_ms = interval_ms;
}

/* FNV-1a: keys are user names, chosen by users; a collision only costs a
 * line more, never a line less. */
static unsigned slot_of(mqim_str_t key)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < key.len; i++) {
        h = (h ^ (uint8_t)key.ptr[i]) * 16777619u;
    }
    return h % MQIM_LOG_LIMIT_SLOTS;
}

bool mqim_log_limit_admit(mqim_log_limit_t *l, mqim_str_t key, int64_t now_ms, uint64_t *suppressed)
{
    mqim_log_limit_slot_t *s = &l->slots[slot_of(key)];
    size_t len = key.len < MQIM_USER_NAME_MAX ? key.len : MQIM_USER_NAME_MAX;
    bool same = strlen(s->key) == len && memcmp(s->key, key.ptr, len) == 0;
    if (same && s->last_ms != 0 && now_ms - s->last_ms < l->interval_ms) {
        s->suppressed++;
        return false;
    }
    *suppressed = same ? s->suppressed : 0u;
    memcpy(s->key, key.ptr, len);
    s->key[len] = '\0';
    s->last_ms = now_ms != 0 ? now_ms : 1;
    s->suppressed = 0;
    return true;
}
