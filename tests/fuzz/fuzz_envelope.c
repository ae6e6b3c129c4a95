/* Fuzz target: envelope decode. A decoded envelope must encode, and the
 * encoding must decode to the same fields (round trip). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mqim/envelope.h"
#include "mqim/limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same(mqim_str_t a, mqim_str_t b)
{
    return mqim_str_eq(a, b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char arena[MQIM_PAYLOAD_MAX], arena2[MQIM_PAYLOAD_MAX * 2];
    static char enc[MQIM_PAYLOAD_MAX * 7];
    mqim_envelope_t env, back;
    size_t len = 0;
    if (mqim_envelope_decode((const char *)data, size, &env, arena, sizeof(arena), NULL) != MQIM_OK) {
        return 0;
    }
    {
        /* the head of an envelope holds the same fields, as far as they go */
        mqim_envelope_t head;
        bool complete = true;
        mqim_status_t st = mqim_envelope_decode_head((const char *)data, size / 2u, &head, arena2,
                                                     sizeof(arena2), NULL, &complete);
        if (st == MQIM_OK &&
            ((head.id.ptr != NULL && !same(head.id, env.id)) ||
             (head.from.ptr != NULL && !same(head.from, env.from)) ||
             (head.body.ptr != NULL && !same(head.body, env.body)) ||
             (head.has_seq && head.seq != env.seq))) {
            abort();
        }
    }
    if (mqim_envelope_encode(&env, enc, sizeof(enc), &len) != MQIM_OK) {
        abort();
    }
    if (mqim_envelope_decode(enc, len, &back, arena2, sizeof(arena2), NULL) != MQIM_OK) {
        /* an encoding longer than the payload limit is the only excuse */
        if (len <= MQIM_PAYLOAD_MAX) {
            abort();
        }
        return 0;
    }
    if (!same(env.id, back.id) || !same(env.from, back.from) || !same(env.to, back.to) || !same(env.group, back.group) ||
        !same(env.body, back.body) || env.has_seq != back.has_seq || env.seq != back.seq ||
        env.has_ts != back.has_ts || env.ts != back.ts || env.has_upto != back.has_upto || env.upto != back.upto ||
        !(same(env.type, back.type) || (env.type.len == 0u && mqim_str_eq_cstr(back.type, "text")))) {
        abort();
    }
    return 0;
}
