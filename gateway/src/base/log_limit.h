/**
 * @file log_limit.h
 * @brief At most one log line per key (a user) per interval: a flood of
 *        refused publishes becomes one line per user every interval with
 *        how many were left out since the last line, instead of a line per
 *        publish (the metrics count every one: metrics.h).
 *
 * A fixed table of MQIM_LOG_LIMIT_SLOTS keys, caller-owned, no allocation;
 * one thread (the router's). Two users that hash to one slot share it: the
 * newcomer takes it over and the old user's count of left-out lines is
 * dropped (its next line comes at once); the table is sized so that takes
 * a flood of many users at once.
 */
#ifndef MQIM_GW_LOG_LIMIT_H
#define MQIM_GW_LOG_LIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "mqim/limits.h"
#include "mqim/str.h"

#define MQIM_LOG_LIMIT_SLOTS 64u

typedef struct mqim_log_limit_slot {
    char key[MQIM_USER_NAME_MAX + 1u];
    int64_t last_ms;     /**< when its last line was logged */
    uint64_t suppressed; /**< lines left out since */
} mqim_log_limit_slot_t;

typedef struct mqim_log_limit {
    int64_t interval_ms;
    mqim_log_limit_slot_t slots[MQIM_LOG_LIMIT_SLOTS];
} mqim_log_limit_t;

void mqim_log_limit_init(mqim_log_limit_t *l, int64_t interval_ms);

/**
 * True when a line for key may be logged now; *suppressed then says how
 * many were left out since its last line (and the count restarts). False:
 * leave the line out (counted).
 */
bool mqim_log_limit_admit(mqim_log_limit_t *l, mqim_str_t key, int64_t now_ms, uint64_t *suppressed);

#endif /* MQIM_GW_LOG_LIMIT_H */
