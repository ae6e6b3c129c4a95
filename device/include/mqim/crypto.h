/**
 * @file crypto.h
 * @brief The crypto port: the primitives end-to-end encryption (e2e.h,
 *        docs/e2e.md) needs, supplied by the board. The portable library
 *        never implements cryptography itself; device/port/mbedtls/mqim_crypto.c
 *        supplies these on mbedTLS 2.28 (the only file that calls mbedTLS
 *        for them, so a move to mbedTLS 3.x or a hardware engine is a change
 *        of one file).
 *
 * Every function returns 0 on success and < 0 on failure; none allocates
 * from the library's point of view, and all run in the caller's thread.
 */
#ifndef MQIM_CRYPTO_H
#define MQIM_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define MQIM_X25519_LEN 32u  /**< X25519 keys and shared secrets */
#define MQIM_AEAD_KEY_LEN 32u
#define MQIM_AEAD_NONCE_LEN 12u
#define MQIM_AEAD_TAG_LEN 16u

typedef struct mqim_crypto_ops {
    /**
     * X25519 (RFC 7748): out = scalar * point. The scalar is clamped as the
     * RFC says; the top bit of point is ignored. Fails (< 0) when the result
     * is all zeros (a small-order point: no shared secret).
     */
    int32_t (*x25519)(void *ctx, const uint8_t scalar[MQIM_X25519_LEN],
                      const uint8_t point[MQIM_X25519_LEN], uint8_t out[MQIM_X25519_LEN]);
    /** ChaCha20-Poly1305 (RFC 8439): out = ciphertext (len bytes) || tag (16). */
    int32_t (*aead_seal)(void *ctx, const uint8_t key[MQIM_AEAD_KEY_LEN],
                         const uint8_t nonce[MQIM_AEAD_NONCE_LEN], const uint8_t *aad, size_t aad_len,
                         const uint8_t *in, size_t len, uint8_t *out);
    /** Verify and decrypt: in = ciphertext || tag (len >= 16), out gets len - 16
     *  bytes. < 0 when the tag does not verify (out is then zeroed). */
    int32_t (*aead_open)(void *ctx, const uint8_t key[MQIM_AEAD_KEY_LEN],
                         const uint8_t nonce[MQIM_AEAD_NONCE_LEN], const uint8_t *aad, size_t aad_len,
                         const uint8_t *in, size_t len, uint8_t *out);
    /** HKDF-SHA256 (RFC 5869), extract then expand to out_len (<= 255 * 32) bytes. */
    int32_t (*hkdf_sha256)(void *ctx, const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
                           size_t ikm_len, const uint8_t *info, size_t info_len, uint8_t *out,
                           size_t out_len);
} mqim_crypto_ops_t;

#endif /* MQIM_CRYPTO_H */
