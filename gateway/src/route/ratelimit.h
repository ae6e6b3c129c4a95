/**
 * @file ratelimit.h
 * @brief Per-user token buckets: `rate` tokens per second up to `burst`.
 *        An open-addressing table keyed by user name; the least recently
 *        used bucket is recycled when the table is full, so memory stays
 *        bounded however many users publish. Not thread-safe: the router
 *        calls it from the one thread that handles inbound messages; only
 *        the rate and burst may be changed from another thread
 *        (mqim_ratelimit_set, a SIGHUP reload).
 */
#ifndef MQIM_GW_RATELIMIT_H
#define MQIM_GW_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "mqim/str.h"

typedef struct mqim_ratelimit mqim_ratelimit_t;

/** rate 0 disables limiting (every call allowed). NULL on allocation failure. */
mqim_ratelimit_t *mqim_ratelimit_new(unsigned rate_per_sec, unsigned burst, unsigned slots);
void mqim_ratelimit_free(mqim_ratelimit_t *rl);

/** New rate and burst (burst 0 counts as 1), from any thread; buckets keep
 *  their tokens, capped at the new burst at their next refill. */
void mqim_ratelimit_set(mqim_ratelimit_t *rl, unsigned rate_per_sec, unsigned burst);

/** The current rate and burst (for messages). */
void mqim_ratelimit_get(const mqim_ratelimit_t *rl, unsigned *rate_per_sec, unsigned *burst);

/** Take one token for `user` at time now_ms; false when the bucket is empty. */
bool mqim_ratelimit_take(mqim_ratelimit_t *rl, mqim_str_t user, int64_t now_ms);

#endif /* MQIM_GW_RATELIMIT_H */
