/* The oldest outbox entry's age from key samples (outbox_age.h). */
#include "outbox_age.h"

#include <string.h>

void mqim_outbox_age_init(mqim_outbox_age_t *a, int64_t interval_ms)
{
    memset(a, 0, sizeof(*a));
    a->interval_ms = interval_ms;
}

void mqim_outbox_age_sample(mqim_outbox_age_t *a, uint64_t last_key, int64_t now_ms)
{
    if (a->count > 0u) {
        const mqim_outbox_age_sample_t *prev =
            &a->ring[(a->head + MQIM_OUTBOX_AGE_SAMPLES - 1u) % MQIM_OUTBOX_AGE_SAMPLES];
        if (now_ms - prev->ms < a->interval_ms) {
            return;
        }
    }
    a->ring[a->head] = (mqim_outbox_age_sample_t){ last_key, now_ms };
    a->head = (a->head + 1u) % MQIM_OUTBOX_AGE_SAMPLES;
    if (a->count < MQIM_OUTBOX_AGE_SAMPLES) {
        a->count++;
    }
}

double mqim_outbox_age_of(const mqim_outbox_age_t *a, uint64_t first_key, int64_t now_ms)
{
    size_t start = (a->head + MQIM_OUTBOX_AGE_SAMPLES - a->count) % MQIM_OUTBOX_AGE_SAMPLES;
    /* Keys only grow: the first sample at or past first_key is the earliest
     * that saw the entry. */
    for (size_t i = 0; i < a->count; i++) {
        const mqim_outbox_age_sample_t *s = &a->ring[(start + i) % MQIM_OUTBOX_AGE_SAMPLES];
        if (s->last_key >= first_key) {
            return now_ms > s->ms ? (double)(now_ms - s->ms) / 1000.0 : 0.0;
        }
    }
    return 0.0;
}
