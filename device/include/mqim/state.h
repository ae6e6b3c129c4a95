/**
 * @file state.h
 * @brief The device state port: what a device must remember across reboots
 *        to keep its promises (presence epochs that only grow, sync from the
 *        last seq it saw).
 */
#ifndef MQIM_STATE_H
#define MQIM_STATE_H

#include <stdint.h>

#include "mqim/status.h"

typedef struct mqim_device_state {
    uint32_t epoch;    /**< presence epoch of the last connection (birth and will) */
    uint64_t last_seq; /**< highest inbox seq delivered to the application */
    uint64_t store_epoch; /**< the gateway store's epoch last_seq belongs to; 0 unknown
                               (docs/protocol.md, "Store epochs") */
} mqim_device_state_t;

typedef struct mqim_state_ops {
    /** Load; a device that never saved gets zeros and MQIM_OK. @return MQIM_OK, MQIM_STORE_ERROR. */
    mqim_status_t (*load)(void *ctx, mqim_device_state_t *state);
    /** Save durably before returning. @return MQIM_OK, MQIM_STORE_FULL, MQIM_STORE_ERROR. */
    mqim_status_t (*save)(void *ctx, const mqim_device_state_t *state);
} mqim_state_ops_t;

#endif /* MQIM_STATE_H */
