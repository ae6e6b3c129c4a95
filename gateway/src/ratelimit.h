/**
 * @file ratelimit.h
 * @brief Per-user token buckets: `rate` tokens per second up to `burst`.
 *        An open-addressing table keyed by user name; the least recently
 *        used bucket is recycled when the table is full, so memory stays
 *        bounded however many users publish. Not thread-safe: the router
 *        calls it from the one thread that handles inbound messages.
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

/** Take one token for `user` at time now_ms; false when the bucket is empty. */
bool mqim_ratelimit_take(mqim_ratelimit_t *rl, mqim_str_t user, int64_t now_ms);

#endif /* MQIM_GW_RATELIMIT_H */
