/* Fuzz target: the E2E decoder (docs/e2e.md). An inbound envelope with an
 * "enc" is opened as bob/watch (the test vector's keys) through the real
 * crypto port: whatever the input, opening either fails with an E2E status
 * or yields valid UTF-8 that fits the buffer; a key-list reader runs on the
 * same bytes. Seeds: the docs/e2e.md vector and variants. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mqim/e2e.h"
#include "mqim/envelope.h"
#include "mqim/limits.h"
#include "mqim/name.h"
#include "mqim/utf8.h"
#include "mqim_crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char arena[MQIM_PAYLOAD_MAX];
    static uint8_t out[MQIM_PAYLOAD_MAX];
    static mqim_e2e_key_t keys[8];
    static uint8_t sk[32], pk[32];
    static int ready;
    mqim_envelope_t env;
    mqim_e2e_sender_t sender;
    size_t len = 0, n = 0, total = 0;
    mqim_status_t st;
    if (!ready) {
        for (unsigned i = 0; i < 32u; i++) {
            sk[i] = (uint8_t)(0x21u + i); /* bob/watch of the vector */
        }
        if (mqim_e2e_public_key(&mqim_crypto_mbedtls_ops, NULL, sk, pk) != MQIM_OK) {
            abort();
        }
        ready = 1;
    }
    st = mqim_e2e_keys_parse((const char *)data, size, keys, 8, &n, &total, arena, sizeof(arena));
    if (st == MQIM_OK && (n > 8u || n > total)) {
        abort();
    }
    for (size_t i = 0; st == MQIM_OK && i < n; i++) {
        if (mqim_name_check(MQIM_NAME_USER, keys[i].user) != MQIM_OK ||
            mqim_name_check(MQIM_NAME_DEVICE, keys[i].device) != MQIM_OK) {
            abort(); /* the reader let a bad name through */
        }
    }
    if (mqim_envelope_decode((const char *)data, size, &env, arena, sizeof(arena), NULL) != MQIM_OK ||
        env.enc.len == 0u) {
        return 0;
    }
    st = mqim_e2e_open(&mqim_crypto_mbedtls_ops, NULL, MQIM_STR("bob"), MQIM_STR("watch"), sk, pk, &env, out,
                       sizeof(out), &len, &sender);
    if (st == MQIM_OK) {
        if (len > sizeof(out) || !mqim_utf8_valid((const char *)out, len) ||
            mqim_name_check(MQIM_NAME_DEVICE, (mqim_str_t){ sender.device, sender.device_len }) != MQIM_OK) {
            abort();
        }
    } else if (st != MQIM_E2E_MALFORMED && st != MQIM_E2E_NOT_FOR_DEVICE && st != MQIM_E2E_AUTH_FAILED &&
               st != MQIM_UTF8_INVALID && st != MQIM_BUFFER_TOO_SMALL) {
        abort(); /* a status the decoder does not promise */
    }
    return 0;
}
