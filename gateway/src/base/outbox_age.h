/**
 * @file outbox_age.h
 * @brief The age of the oldest outbox entry, without a timestamp in the
 *        entries: samples of the store's last outbox key ("next_outbox",
 *        the key of the newest entry) taken once a second say when each
 *        key existed. The oldest entry, key K, was there at the earliest
 *        sample whose last key was K or more: its age is at least now
 *        minus that sample's time (1 s resolution). An entry older than
 *        the whole ring shows the ring's age.
 *
 * Caller-owned, no allocation; one thread (the metrics thread).
 */
#ifndef MQIM_GW_OUTBOX_AGE_H
#define MQIM_GW_OUTBOX_AGE_H

#include <stddef.h>
#include <stdint.h>

/** 68 minutes of one sample per second. */
#define MQIM_OUTBOX_AGE_SAMPLES 4096u

typedef struct mqim_outbox_age_sample {
    uint64_t last_key; /**< the newest outbox key then (0: none yet) */
    int64_t ms;        /**< when */
} mqim_outbox_age_sample_t;

typedef struct mqim_outbox_age {
    mqim_outbox_age_sample_t ring[MQIM_OUTBOX_AGE_SAMPLES];
    size_t count, head; /**< samples held; where the next one goes */
    int64_t interval_ms; /**< a sample sooner than this after the last is skipped */
} mqim_outbox_age_t;

void mqim_outbox_age_init(mqim_outbox_age_t *a, int64_t interval_ms);

/** Record the newest outbox key at now_ms (skipped within interval_ms of the last sample). */
void mqim_outbox_age_sample(mqim_outbox_age_t *a, uint64_t last_key, int64_t now_ms);

/** Seconds the entry with key first_key has been in the outbox at least; 0
 *  when no sample saw it yet (younger than a sample interval). */
double mqim_outbox_age_of(const mqim_outbox_age_t *a, uint64_t first_key, int64_t now_ms);

#endif /* MQIM_GW_OUTBOX_AGE_H */
