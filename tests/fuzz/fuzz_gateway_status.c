/* Fuzz target: the gateway status document's reader (common/gateway_status.h).
 * Whatever the input, decoding stays inside it and its arena; a document it
 * accepts, written again by the writer and read back, gives the same
 * fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mqim/gateway_status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same(mqim_str_t a, mqim_str_t b)
{
    return a.len == b.len && (a.len == 0u || memcmp(a.ptr, b.ptr, a.len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char arena[1 << 16], arena2[1 << 16], doc[3 << 16];
    mqim_gateway_status_t s, t;
    size_t n = 0;
    if (size > sizeof(arena)) {
        return 0;
    }
    if (mqim_gateway_status_decode((mqim_str_t){ (const char *)data, size }, &s, arena, size) != MQIM_OK) {
        return 0;
    }
    if (s.state.len == 0u || s.state.ptr < arena || s.state.ptr + s.state.len > arena + size) {
        abort();
    }
    if (mqim_gateway_status_encode(&s, doc, sizeof(doc), &n) != MQIM_OK ||
        mqim_gateway_status_decode((mqim_str_t){ doc, n }, &t, arena2, sizeof(arena2)) != MQIM_OK) {
        abort();
    }
    /* the writer leaves out an empty store, and store_epoch with it */
    if (!same(s.state, t.state) || !same(s.store, t.store) || !same(s.instance, t.instance) ||
        !same(s.host, t.host) || !same(s.boot, t.boot) || s.has_ts != t.has_ts ||
        (s.has_ts && s.ts != t.ts) || s.has_pid != t.has_pid || (s.has_pid && s.pid != t.pid) ||
        (s.store.len > 0u && s.store_epoch != t.store_epoch)) {
        abort();
    }
    return 0;
}
