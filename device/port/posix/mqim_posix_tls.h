/**
 * @file mqim_posix_tls.h
 * @brief TLS transport on mbedTLS (2.28 or 3.6) over the POSIX TCP
 *        transport: server verification against a CA file with the host
 *        name (SNI + name check), optional client certificate, or a
 *        pre-shared key (PSK) instead of certificates. It reads the files;
 *        the TLS transport's mbedTLS calls are in the portable port
 *        (device/port/mbedtls/mqim_tls.c).
 */
#ifndef MQIM_POSIX_TLS_H
#define MQIM_POSIX_TLS_H

#include "mqim_posix_tcp.h"

typedef struct mqim_posix_tls mqim_posix_tls_t;

typedef struct mqim_posix_tls_config {
    const char *ca_file;     /**< PEM CA bundle that signs the broker's certificate (required) */
    const char *server_name; /**< name to verify and send as SNI; NULL = the TCP host */
    const char *cert_file;   /**< client certificate (PEM), or NULL */
    const char *key_file;    /**< its private key (PEM), or NULL */
    const char *psk_hex;     /**< pre-shared key in hex, instead of certificates; or NULL */
    const char *psk_identity; /**< its identity (Mosquitto's user with use_identity_as_username) */
} mqim_posix_tls_config_t;

/**
 * Create a TLS transport over tcp (which must outlive it). Loads the files
 * once. @return NULL with a message in err on failure.
 */
mqim_posix_tls_t *mqim_posix_tls_new(mqim_posix_tcp_t *tcp, const mqim_posix_tls_config_t *cfg,
                                     char *err, size_t err_len);
void mqim_posix_tls_free(mqim_posix_tls_t *t);

/** Why the last open's TLS part failed: the certificate verification's
 *  reasons when it did not verify, else mbedTLS's error in words. */
void mqim_posix_tls_describe(const mqim_posix_tls_t *t, char *buf, size_t len);

/** The transport table; pass the mqim_posix_tls_t as its context. */
extern const mqim_transport_ops_t mqim_posix_tls_ops;

#endif /* MQIM_POSIX_TLS_H */
