/* mbedTLS 2.28 or 3.6 for the firmware (every board): a TLS 1.2 client
 * and nothing more, the same options on both lines.
 * ECDHE (X25519, P-256) with ECDSA certificates, or a pre-shared key;
 * AES-GCM and ChaCha20-Poly1305; SHA-256; HKDF for end-to-end encryption
 * later. No sockets, no file system, no clock (certificate dates are not
 * checked: the board has no RTC), no platform entropy (the DRBG is seeded
 * from the board's entropy port), and a static memory pool instead of the
 * C heap. Selected with -DMBEDTLS_CONFIG_FILE. */
#ifndef MQIM_MBEDTLS_CONFIG_FW_H
#define MQIM_MBEDTLS_CONFIG_FW_H

/* platform */
#define MBEDTLS_PLATFORM_C
#define MBEDTLS_PLATFORM_MEMORY
#define MBEDTLS_MEMORY_BUFFER_ALLOC_C
#define MBEDTLS_MEMORY_DEBUG /* the pool's high-water mark, for docs/footprint.md */
#define MBEDTLS_NO_PLATFORM_ENTROPY
#define MBEDTLS_HAVE_ASM

/* symmetric crypto and hashes */
#define MBEDTLS_AES_C
#define MBEDTLS_AES_ROM_TABLES
#define MBEDTLS_AES_FEWER_TABLES
#define MBEDTLS_GCM_C
#define MBEDTLS_CHACHA20_C
#define MBEDTLS_POLY1305_C
#define MBEDTLS_CHACHAPOLY_C
#define MBEDTLS_CIPHER_C
#define MBEDTLS_MD_C
#define MBEDTLS_SHA256_C
#define MBEDTLS_SHA256_SMALLER
#define MBEDTLS_HKDF_C
#define MBEDTLS_CTR_DRBG_C

/* public key */
#define MBEDTLS_BIGNUM_C
#define MBEDTLS_ECP_C
#define MBEDTLS_ECP_DP_SECP256R1_ENABLED
#define MBEDTLS_ECP_DP_CURVE25519_ENABLED
#define MBEDTLS_ECP_NIST_OPTIM
#define MBEDTLS_ECP_WINDOW_SIZE 2
#define MBEDTLS_ECP_FIXED_POINT_OPTIM 0
#define MBEDTLS_ECDH_C
#define MBEDTLS_ECDSA_C
#define MBEDTLS_MPI_MAX_SIZE 48
#define MBEDTLS_MPI_WINDOW_SIZE 2
#define MBEDTLS_ASN1_PARSE_C
#define MBEDTLS_ASN1_WRITE_C
#define MBEDTLS_OID_C
#define MBEDTLS_PK_C
#define MBEDTLS_PK_PARSE_C
#define MBEDTLS_BASE64_C
#define MBEDTLS_PEM_PARSE_C
#define MBEDTLS_X509_USE_C
#define MBEDTLS_X509_CRT_PARSE_C

/* TLS 1.2 client */
#define MBEDTLS_SSL_TLS_C
#define MBEDTLS_SSL_CLI_C
#define MBEDTLS_SSL_PROTO_TLS1_2
#define MBEDTLS_SSL_SERVER_NAME_INDICATION
#define MBEDTLS_SSL_MAX_FRAGMENT_LENGTH
#define MBEDTLS_SSL_EXTENDED_MASTER_SECRET
#define MBEDTLS_SSL_ENCRYPT_THEN_MAC
#define MBEDTLS_KEY_EXCHANGE_ECDHE_ECDSA_ENABLED
#define MBEDTLS_KEY_EXCHANGE_PSK_ENABLED
/* MQTT packets of a small device are small: 4 KiB records each way. */
#define MBEDTLS_SSL_IN_CONTENT_LEN 4096
#define MBEDTLS_SSL_OUT_CONTENT_LEN 4096
#define MBEDTLS_SSL_CIPHERSUITES                                                                   \
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,                                         \
        MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, MBEDTLS_TLS_PSK_WITH_AES_128_GCM_SHA256,  \
        MBEDTLS_TLS_PSK_WITH_CHACHA20_POLY1305_SHA256

/* 3.x defines its version before reading this file and checks the
 * configuration itself (TLS 1.2 here runs on the legacy crypto, without
 * PSA); 2.28 wants the check included by its configuration. */
#if !defined(MBEDTLS_VERSION_NUMBER)
#include "mbedtls/check_config.h"
#endif

#endif /* MQIM_MBEDTLS_CONFIG_FW_H */
