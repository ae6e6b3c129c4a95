/**
 * @file mqim_tls.h
 * @brief TLS client transport on mbedTLS 2.28 (TLS 1.2) or 3.6 (TLS 1.2,
 *        and 1.3 when its configuration has it), layered on any byte
 *        transport (a TCP socket on a host, a UART or a modem on a board).
 *
 * Every mbedTLS call of the TLS transport lives in mqim_tls.c; the calls
 * that differ between the two lines are switched on MBEDTLS_VERSION_NUMBER
 * there. Credentials come from memory
 * (PEM text or raw PSK bytes): a host loads them from files
 * (mqim_posix_tls.c), firmware links them in. The server is verified
 * against the CA and the server name (also sent as SNI); a server name
 * that is an IPv4 or IPv6 address literal is matched against the
 * certificate's iPAddress subject alternative names instead (and not sent
 * as SNI, which RFC 6066 keeps for host names); a client
 * certificate or a pre-shared key is optional. Randomness comes from the
 * board's entropy port through CTR_DRBG.
 *
 * The context is caller-owned (static on a device). mbedTLS itself
 * allocates through its platform calloc: on a board, point it at a static
 * pool (mbedtls_memory_buffer_alloc_init) and nothing uses the C heap.
 */
#ifndef MQIM_TLS_H
#define MQIM_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "mqim/ports.h"
#include "mqim/status.h"

#define MQIM_TLS_SERVER_NAME_MAX 255
#define MQIM_TLS_PSK_MAX 64

typedef struct mqim_tls_config {
    const mqim_transport_ops_t *lower; /**< the byte stream TLS runs over */
    void *lower_ctx;
    mqim_clock_fn clock;               /**< bounds the handshake */
    void *clock_ctx;
    mqim_entropy_fn entropy;           /**< seeds the DRBG */
    void *entropy_ctx;
    const char *server_name;           /**< verified in the certificate, sent as SNI */
    /** PEM text including its terminating NUL (len counts it), or NULL. */
    const unsigned char *ca_pem;
    size_t ca_pem_len;
    const unsigned char *cert_pem;     /**< client certificate, or NULL */
    size_t cert_pem_len;
    const unsigned char *key_pem;      /**< its private key */
    size_t key_pem_len;
    const unsigned char *psk;          /**< pre-shared key bytes instead of certificates, or NULL */
    size_t psk_len;
    const char *psk_identity;
} mqim_tls_config_t;

typedef struct mqim_tls {
    mqim_tls_config_t cfg;
    char server_name[MQIM_TLS_SERVER_NAME_MAX + 1];
    unsigned char psk[MQIM_TLS_PSK_MAX];
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt ca;
    mbedtls_x509_crt cert;
    mbedtls_pk_context key;
    mbedtls_ssl_config conf;
    mbedtls_ssl_context ssl;
    bool open;
    uint32_t io_timeout_ms; /**< the timeout of the current send/recv call */
    int last_error;         /**< the last mbedTLS error code (negative), for diagnostics */
    uint32_t verify_flags;  /**< MBEDTLS_X509_BADCERT_* of the last failed verification */
    unsigned char ip[16];   /**< the server name as an address (network order) ... */
    uint8_t ip_len;         /**< ... 4 or 16 bytes; 0: a host name */
} mqim_tls_t;

/**
 * Parse the credentials and prepare the configuration; no I/O.
 * On failure *what (may be NULL) names the step that failed and
 * mqim_tls_last_error() gives mbedTLS's code.
 * @return MQIM_OK, MQIM_BAD_PARAMETER (missing lower transport, clock or
 *         entropy; neither a CA nor a PSK; a PSK too long or without an
 *         identity; a server name too long), MQIM_INTERNAL (mbedTLS refused
 *         a credential or ran out of memory).
 */
mqim_status_t mqim_tls_init(mqim_tls_t *t, const mqim_tls_config_t *cfg, const char **what);

/** Release everything mbedTLS holds for t. */
void mqim_tls_free(mqim_tls_t *t);

/** mbedTLS's code of the last failure (0 if none). */
int mqim_tls_last_error(const mqim_tls_t *t);

/** The last failure in words ("X509 - Certificate verification failed
 *  (-0x2700)"), NUL-terminated in buf. */
void mqim_tls_describe(const mqim_tls_t *t, char *buf, size_t len);

/** Why the broker's certificate failed verification ("The certificate is
 *  not correctly signed by the trusted CA; ..."), NUL-terminated in buf;
 *  empty when the last open did not fail verification. */
void mqim_tls_verify_reason(const mqim_tls_t *t, char *buf, size_t len);

/**
 * Parse an IPv4 (dotted quad) or IPv6 (RFC 4291 text, "::" and a trailing
 * dotted quad allowed) address literal into out (network order).
 * @return 4 or 16, or 0 when text is not an address literal.
 */
size_t mqim_tls_parse_ip(const char *text, unsigned char out[16]);

/**
 * The transport table; pass the mqim_tls_t as its context. open() opens
 * the lower transport and runs the handshake within its timeout (a broker
 * that fails verification is never talked to) and on failure returns
 * -MQIM_TLS_VERIFY_FAILED (mqim_tls_verify_reason says why),
 * -MQIM_TLS_HANDSHAKE_FAILED, or the lower transport's failure; send/recv map mbedTLS's
 * WANT_READ / WANT_WRITE / TIMEOUT to 0 ("nothing yet") and close_notify,
 * EOF and errors to -1 ("closed").
 */
extern const mqim_transport_ops_t mqim_tls_ops;

#endif /* MQIM_TLS_H */
