/**
 * @file sha256.h
 * @brief SHA-256 (FIPS 180-4), streaming, no allocation: file transfers are
 *        verified end to end by the gateway and by devices, without a
 *        crypto library in common/.
 */
#ifndef MQIM_SHA256_H
#define MQIM_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define MQIM_SHA256_LEN 32u
#define MQIM_SHA256_HEX_LEN 64u

typedef struct mqim_sha256 {
    uint32_t h[8];
    uint64_t bytes;
    uint8_t block[64];
    size_t used;
} mqim_sha256_t;

void mqim_sha256_init(mqim_sha256_t *s);
void mqim_sha256_update(mqim_sha256_t *s, const void *data, size_t len);
void mqim_sha256_final(mqim_sha256_t *s, uint8_t out[MQIM_SHA256_LEN]);
/** Lower-case hex of a digest into out (MQIM_SHA256_HEX_LEN chars, no NUL). */
void mqim_sha256_hex(const uint8_t digest[MQIM_SHA256_LEN], char out[MQIM_SHA256_HEX_LEN]);

#endif /* MQIM_SHA256_H */
