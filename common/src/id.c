/* ULID generation (id.h): 48-bit ms timestamp + 80 random bits, Crockford
 * base32, monotonic per generator so ids sort in creation order. */
#include <stdbool.h>

#include "mqim/id.h"

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

void mqim_idgen_init(mqim_idgen_t *gen)
{
    gen->last_ms = 0;
    for (unsigned i = 0; i < sizeof(gen->last_rand); i++) {
        gen->last_rand[i] = 0;
    }
}

/* Increment the 80-bit big-endian random part; false on overflow. */
static bool increment(uint8_t r[10])
{
    for (int i = 9; i >= 0; i--) {
        r[i] = (uint8_t)(r[i] + 1u);
        if (r[i] != 0u) {
            return true;
        }
    }
    return false;
}

mqim_status_t mqim_id_make(mqim_idgen_t *gen, uint64_t now_ms, const uint8_t rand[10],
                           char out[MQIM_ULID_LEN + 1])
{
    uint8_t bytes[16];
    if (gen == 0 || rand == 0 || out == 0 || now_ms == 0u || now_ms >= ((uint64_t)1 << 48)) {
        return MQIM_BAD_PARAMETER;
    }
    if (now_ms <= gen->last_ms) {
        /* Same millisecond, or the clock stepped back: stay on the last
         * timestamp and count up, so ids keep increasing. */
        if (!increment(gen->last_rand)) {
            return MQIM_INTERNAL;
        }
        now_ms = gen->last_ms;
    } else {
        gen->last_ms = now_ms;
        for (unsigned i = 0; i < 10u; i++) {
            gen->last_rand[i] = rand[i];
        }
    }
    for (unsigned i = 0; i < 6u; i++) {
        bytes[i] = (uint8_t)(now_ms >> (40u - 8u * i));
    }
    for (unsigned i = 0; i < 10u; i++) {
        bytes[6u + i] = gen->last_rand[i];
    }
    /* 128 bits as 26 base32 digits: the first digit carries the top 3 bits
     * (2 leading zero bits of padding), then 5 bits per digit. */
    for (unsigned d = 0; d < MQIM_ULID_LEN; d++) {
        unsigned bit = d == 0u ? 0u : 3u + 5u * (d - 1u); /* first bit of this digit */
        unsigned width = d == 0u ? 3u : 5u;
        unsigned v = 0;
        for (unsigned b = 0; b < width; b++) {
            unsigned pos = bit + b;
            v = (v << 1) | (((unsigned)bytes[pos / 8u] >> (7u - pos % 8u)) & 1u);
        }
        out[d] = crockford[v];
    }
    out[MQIM_ULID_LEN] = '\0';
    return MQIM_OK;
}
