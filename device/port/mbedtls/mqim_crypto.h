/**
 * @file mqim_crypto.h
 * @brief The crypto port (mqim/crypto.h) on mbedTLS 2.28 or 3.6: X25519
 *        through its ECP module (Curve25519; on 3.x through PSA's ECDH,
 *        which then needs MBEDTLS_PSA_CRYPTO_C), ChaCha20-Poly1305,
 *        HKDF-SHA256.
 *        Stateless: pass NULL as the ops' context. A firmware links it only
 *        when it uses end-to-end encryption; its mbedTLS config then needs
 *        MBEDTLS_ECP_C, MBEDTLS_ECP_DP_CURVE25519_ENABLED, MBEDTLS_BIGNUM_C,
 *        MBEDTLS_CHACHAPOLY_C (with CHACHA20_C, POLY1305_C), MBEDTLS_HKDF_C,
 *        MBEDTLS_MD_C and MBEDTLS_SHA256_C.
 */
#ifndef MQIM_CRYPTO_MBEDTLS_H
#define MQIM_CRYPTO_MBEDTLS_H

#include "mqim/crypto.h"

extern const mqim_crypto_ops_t mqim_crypto_mbedtls_ops;

#endif /* MQIM_CRYPTO_MBEDTLS_H */
