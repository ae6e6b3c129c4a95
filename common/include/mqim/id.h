/**
 * @file id.h
 * @brief Gateway-made message ids: ULIDs (48-bit ms time + 80 random bits,
 *        Crockford base32, 26 characters), unique and sortable by time.
 *
 * The generator is caller-owned state; time and randomness are passed in,
 * so the module does no I/O and is deterministic under test.
 */
#ifndef MQIM_ID_H
#define MQIM_ID_H

#include <stdint.h>

#include "mqim/limits.h"
#include "mqim/status.h"

typedef struct mqim_idgen {
    uint64_t last_ms;
    uint8_t last_rand[10];
} mqim_idgen_t;

void mqim_idgen_init(mqim_idgen_t *gen);

/**
 * Make the next id. Ids are strictly increasing (as strings) for one
 * generator: within the same millisecond, or if the clock steps back, the
 * previous random part is incremented instead of using `rand`.
 * @param out MQIM_ULID_LEN + 1 bytes; NUL-terminated on success.
 * @return MQIM_OK, MQIM_BAD_PARAMETER (NULL, time 0 or beyond 48 bits),
 *         MQIM_INTERNAL (80-bit random part overflowed within one ms).
 */
mqim_status_t mqim_id_make(mqim_idgen_t *gen, uint64_t now_ms, const uint8_t rand[10],
                           char out[MQIM_ULID_LEN + 1]);

#endif /* MQIM_ID_H */
