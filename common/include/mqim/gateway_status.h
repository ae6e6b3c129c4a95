/**
 * @file gateway_status.h
 * @brief The gateway's status document, retained on {root}/gateway/status
 *        (docs/protocol.md): written by the gateway with the JSON writer,
 *        read with the strict reader, so members may come in any order and
 *        new ones may be added. Devices read only its "state" (and
 *        "store_epoch") with the same reader, from the document they
 *        already parse (device/src/client.c), not by a byte prefix.
 *
 *   {"state":"online","ts":T,"store":ID,"store_epoch":E,"instance":N,
 *    "host":H,"boot":B,"pid":P}
 */
#ifndef MQIM_GATEWAY_STATUS_H
#define MQIM_GATEWAY_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqim/status.h"
#include "mqim/str.h"

typedef struct mqim_gateway_status {
    mqim_str_t state;     /**< "starting", "online" or "offline" (required) */
    bool has_ts;
    int64_t ts;           /**< ms since the epoch, when has_ts */
    mqim_str_t store;     /**< the store's id; empty: absent */
    uint64_t store_epoch;
    mqim_str_t instance;  /**< this run's random id; empty: absent */
    mqim_str_t host;
    mqim_str_t boot;      /**< the host's boot id */
    bool has_pid;
    int64_t pid;
} mqim_gateway_status_t;

/**
 * Write s as JSON into buf (NUL-terminated); members in the order above,
 * absent ones left out. *out_len: the document's length without the NUL,
 * also when buf is too small (cap 0, buf NULL: a size query).
 * @return MQIM_OK, MQIM_BAD_PARAMETER, MQIM_BUFFER_TOO_SMALL.
 */
mqim_status_t mqim_gateway_status_encode(const mqim_gateway_status_t *s, char *buf, size_t cap,
                                         size_t *out_len);

/**
 * Read a status document. Strings are unescaped into arena (payload.len
 * bytes always suffice) and point into it; members not named above are
 * ignored (a newer gateway may add some).
 * @return MQIM_OK; MQIM_JSON_MALFORMED and the reader's other errors;
 *         MQIM_FIELD_TYPE (not an object, or a member of the wrong type);
 *         MQIM_FIELD_MISSING (no "state"); MQIM_FIELD_RANGE (a number out
 *         of range); MQIM_BUFFER_TOO_SMALL (arena).
 */
mqim_status_t mqim_gateway_status_decode(mqim_str_t payload, mqim_gateway_status_t *s, char *arena,
                                         size_t cap);

#endif /* MQIM_GATEWAY_STATUS_H */
