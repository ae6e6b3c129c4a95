/* The crypto port on mbedTLS 2.28 (mqim_crypto.h). Every mbedTLS call of
 * end-to-end encryption is in this file. */
#include "mqim_crypto.h"

#include <string.h>

#include <mbedtls/bignum.h>
#include <mbedtls/chachapoly.h>
#include <mbedtls/ecp.h>
#include <mbedtls/hkdf.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>

/* X25519 as RFC 7748 defines it, on mbedTLS's Montgomery arithmetic. mbedTLS
 * reads Curve25519 scalars and u-coordinates little-endian and insists on a
 * clamped scalar, so the clamping (and the masking of the u-coordinate's top
 * bit, which the RFC says to ignore) happens here. mbedTLS 2.28 refuses the
 * known small-order points itself; an all-zero result is refused here too. */
static int32_t x25519(void *ctx, const uint8_t scalar[MQIM_X25519_LEN],
                      const uint8_t point[MQIM_X25519_LEN], uint8_t out[MQIM_X25519_LEN])
{
    mbedtls_ecp_group grp;
    mbedtls_ecp_point p, r;
    mbedtls_mpi d;
    uint8_t k[MQIM_X25519_LEN], u[MQIM_X25519_LEN], acc = 0;
    int rc;
    (void)ctx;
    memcpy(k, scalar, sizeof(k));
    k[0] &= 248u;
    k[31] &= 127u;
    k[31] |= 64u;
    memcpy(u, point, sizeof(u));
    u[31] &= 127u;
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
        for (size_t i = 0; i < MQIM_X25519_LEN; i++) {
            acc |= out[i];
        }
        rc = acc == 0u ? -1 : 0;
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
