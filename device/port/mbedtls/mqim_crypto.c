/* The crypto port on mbedTLS 2.28 or 3.6 (mqim_crypto.h). Every mbedTLS
 * call of end-to-end encryption is in this file. ChaCha20-Poly1305 and HKDF
 * are the same public calls on both lines; X25519 is not: 2.28 has no other
 * way than its ECP module's point fields, which 3.x made private, and 3.x
 * offers X25519 through PSA's key agreement. */
#include "mqim_crypto.h"

#include <string.h>

#include <mbedtls/chachapoly.h>
#include <mbedtls/hkdf.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/version.h>

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#include <psa/crypto.h>
#else
#include <mbedtls/bignum.h>
#include <mbedtls/ecp.h>
#endif

/* RFC 7748's clamping of the scalar and masking of the u-coordinate's top
 * bit (which the RFC says to ignore), on copies. */
static void x25519_prepare(const uint8_t scalar[MQIM_X25519_LEN], const uint8_t point[MQIM_X25519_LEN],
                           uint8_t k[MQIM_X25519_LEN], uint8_t u[MQIM_X25519_LEN])
{
    memcpy(k, scalar, MQIM_X25519_LEN);
    k[0] &= 248u;
    k[31] &= 127u;
    k[31] |= 64u;
    memcpy(u, point, MQIM_X25519_LEN);
    u[31] &= 127u;
}

/* An all-zero shared secret (a small-order peer point) is refused. */
static int x25519_nonzero(const uint8_t out[MQIM_X25519_LEN])
{
    uint8_t acc = 0;
    for (size_t i = 0; i < MQIM_X25519_LEN; i++) {
        acc |= out[i];
    }
    return acc != 0u ? 0 : -1;
}

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
/* X25519 on PSA: the clamped scalar imported as a volatile Montgomery key
 * pair, a raw ECDH agreement with the u-coordinate, the key destroyed.
 * PSA takes both little-endian, as RFC 7748 writes them, and refuses the
 * known small-order points itself. */
static int32_t x25519(void *ctx, const uint8_t scalar[MQIM_X25519_LEN],
                      const uint8_t point[MQIM_X25519_LEN], uint8_t out[MQIM_X25519_LEN])
{
    psa_key_attributes_t attr = PSA_KEY_ATTRIBUTES_INIT;
    mbedtls_svc_key_id_t key = MBEDTLS_SVC_KEY_ID_INIT;
    uint8_t k[MQIM_X25519_LEN], u[MQIM_X25519_LEN];
    size_t len = 0;
    int rc = -1;
    (void)ctx;
    x25519_prepare(scalar, point, k, u);
    if (psa_crypto_init() == PSA_SUCCESS) { /* idempotent */
        psa_set_key_type(&attr, PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_MONTGOMERY));
        psa_set_key_bits(&attr, 255);
        psa_set_key_usage_flags(&attr, PSA_KEY_USAGE_DERIVE);
        psa_set_key_algorithm(&attr, PSA_ALG_ECDH);
        if (psa_import_key(&attr, k, sizeof(k), &key) == PSA_SUCCESS) {
            if (psa_raw_key_agreement(PSA_ALG_ECDH, key, u, sizeof(u), out, MQIM_X25519_LEN, &len) ==
                    PSA_SUCCESS &&
                len == MQIM_X25519_LEN) {
                rc = x25519_nonzero(out);
            }
            (void)psa_destroy_key(key);
        }
    }
    psa_reset_key_attributes(&attr);
    if (rc != 0) {
        memset(out, 0, MQIM_X25519_LEN);
    }
    mbedtls_platform_zeroize(k, sizeof(k));
    return rc == 0 ? 0 : -1;
}
#else

/* X25519 as RFC 7748 defines it, on mbedTLS's Montgomery arithmetic. mbedTLS
 * reads Curve25519 scalars and u-coordinates little-endian and insists on a
 * clamped scalar. mbedTLS 2.28 refuses the known small-order points itself;
 * an all-zero result is refused too. */
static int32_t x25519(void *ctx, const uint8_t scalar[MQIM_X25519_LEN],
                      const uint8_t point[MQIM_X25519_LEN], uint8_t out[MQIM_X25519_LEN])
{
    mbedtls_ecp_group grp;
    mbedtls_ecp_point p, r;
    mbedtls_mpi d;
    uint8_t k[MQIM_X25519_LEN], u[MQIM_X25519_LEN];
    int rc;
    (void)ctx;
    x25519_prepare(scalar, point, k, u);
    mbedtls_ecp_group_init(&grp);
    mbedtls_ecp_point_init(&p);
    mbedtls_ecp_point_init(&r);
    mbedtls_mpi_init(&d);
    rc = mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_CURVE25519);
    if (rc == 0) {
        rc = mbedtls_mpi_read_binary_le(&d, k, sizeof(k));
    }
    if (rc == 0) {
        rc = mbedtls_mpi_read_binary_le(&p.X, u, sizeof(u));
    }
    if (rc == 0) {
        /* u >= p (non-canonical) is reduced, as the RFC's decodeUCoordinate allows */
        rc = mbedtls_mpi_mod_mpi(&p.X, &p.X, &grp.P);
    }
    if (rc == 0) {
        rc = mbedtls_mpi_lset(&p.Z, 1);
    }
    if (rc == 0) {
        /* NULL RNG: mbedTLS 2.28 then blinds the ladder with its internal DRBG */
        rc = mbedtls_ecp_mul(&grp, &r, &d, &p, NULL, NULL);
    }
    if (rc == 0) {
        rc = mbedtls_mpi_write_binary_le(&r.X, out, MQIM_X25519_LEN);
    }
    if (rc == 0) {
        rc = x25519_nonzero(out);
    }
    if (rc != 0) {
        memset(out, 0, MQIM_X25519_LEN);
    }
    mbedtls_platform_zeroize(k, sizeof(k));
    mbedtls_mpi_free(&d);
    mbedtls_ecp_point_free(&r);
    mbedtls_ecp_point_free(&p);
    mbedtls_ecp_group_free(&grp);
    return rc == 0 ? 0 : -1;
}
#endif

static int32_t aead_seal(void *ctx, const uint8_t key[MQIM_AEAD_KEY_LEN],
                         const uint8_t nonce[MQIM_AEAD_NONCE_LEN], const uint8_t *aad, size_t aad_len,
                         const uint8_t *in, size_t len, uint8_t *out)
{
    mbedtls_chachapoly_context c;
    int rc;
    (void)ctx;
    mbedtls_chachapoly_init(&c);
    rc = mbedtls_chachapoly_setkey(&c, key);
    if (rc == 0) {
        rc = mbedtls_chachapoly_encrypt_and_tag(&c, len, nonce, aad, aad_len, in, out, out + len);
    }
    mbedtls_chachapoly_free(&c);
    return rc == 0 ? 0 : -1;
}

static int32_t aead_open(void *ctx, const uint8_t key[MQIM_AEAD_KEY_LEN],
                         const uint8_t nonce[MQIM_AEAD_NONCE_LEN], const uint8_t *aad, size_t aad_len,
                         const uint8_t *in, size_t len, uint8_t *out)
{
    mbedtls_chachapoly_context c;
    int rc;
    (void)ctx;
    if (len < MQIM_AEAD_TAG_LEN) {
        return -1;
    }
    mbedtls_chachapoly_init(&c);
    rc = mbedtls_chachapoly_setkey(&c, key);
    if (rc == 0) {
        rc = mbedtls_chachapoly_auth_decrypt(&c, len - MQIM_AEAD_TAG_LEN, nonce, aad, aad_len,
                                             in + len - MQIM_AEAD_TAG_LEN, in, out);
    }
    mbedtls_chachapoly_free(&c);
    if (rc != 0) {
        memset(out, 0, len - MQIM_AEAD_TAG_LEN);
    }
    return rc == 0 ? 0 : -1;
}

static int32_t hkdf_sha256(void *ctx, const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
                           size_t ikm_len, const uint8_t *info, size_t info_len, uint8_t *out,
                           size_t out_len)
{
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    (void)ctx;
    if (md == NULL) {
        return -1;
    }
    return mbedtls_hkdf(md, salt, salt_len, ikm, ikm_len, info, info_len, out, out_len) == 0 ? 0 : -1;
}

const mqim_crypto_ops_t mqim_crypto_mbedtls_ops = { x25519, aead_seal, aead_open, hkdf_sha256 };
