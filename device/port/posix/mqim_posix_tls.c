/* TLS transport on mbedTLS 2.28 (mqim_posix_tls.h). mbedTLS reads and writes
 * through the TCP transport via BIO callbacks, so timeouts and close
 * detection stay in one place. */
#include "mqim_posix_tls.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mqim_posix_tls {
    mqim_posix_tcp_t *tcp;
    char server_name[256];
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt ca;
    mbedtls_x509_crt cert;
    mbedtls_pk_context key;
    mbedtls_ssl_config conf;
    mbedtls_ssl_context ssl;
    bool open;
    uint32_t io_timeout_ms; /* the timeout of the current send/recv call */
    unsigned char psk[64];
    size_t psk_len;
};

static int hex_value(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* BIO: TCP send/recv results -> mbedTLS codes. 0 from the transport is a
 * timeout, which mbedTLS must see as "try again", not as a closed stream. */
static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    mqim_posix_tls_t *t = ctx;
    int32_t n = mqim_posix_tcp_ops.send(t->tcp, buf, len, t->io_timeout_ms);
    return n > 0 ? (int)n : n == 0 ? MBEDTLS_ERR_SSL_WANT_WRITE : MBEDTLS_ERR_NET_CONN_RESET;
}

static int bio_recv_timeout(void *ctx, unsigned char *buf, size_t len, uint32_t timeout_ms)
{
    mqim_posix_tls_t *t = ctx;
    int32_t n = mqim_posix_tcp_ops.recv(t->tcp, buf, len, timeout_ms != 0u ? timeout_ms : t->io_timeout_ms);
    return n > 0 ? (int)n : n == 0 ? MBEDTLS_ERR_SSL_TIMEOUT : MBEDTLS_ERR_NET_CONN_RESET;
}

static void describe(int rc, const char *what, char *err, size_t err_len)
{
    char msg[160];
    mbedtls_strerror(rc, msg, sizeof(msg));
    snprintf(err, err_len, "%s: %s (-0x%04x)", what, msg, (unsigned)-rc);
}

mqim_posix_tls_t *mqim_posix_tls_new(mqim_posix_tcp_t *tcp, const mqim_posix_tls_config_t *cfg,
                                     char *err, size_t err_len)
{
    static const char pers[] = "mqim-device";
    mqim_posix_tls_t *t = calloc(1, sizeof(*t)); /* once per process, at setup */
    int rc;
    if (t == NULL || cfg == NULL || (cfg->ca_file == NULL && cfg->psk_hex == NULL)) {
        snprintf(err, err_len, "TLS needs a CA file or a pre-shared key");
        free(t);
        return NULL;
    }
    if (cfg->psk_hex != NULL) {
        size_t n = strlen(cfg->psk_hex);
        if (n == 0u || n % 2u != 0u || n / 2u > sizeof(t->psk) || cfg->psk_identity == NULL) {
            snprintf(err, err_len, "the PSK must be 1..64 bytes of hex, with an identity");
            free(t);
            return NULL;
        }
        for (size_t k = 0; k < n; k += 2u) {
            int hi = hex_value(cfg->psk_hex[k]), lo = hex_value(cfg->psk_hex[k + 1u]);
            if (hi < 0 || lo < 0) {
                snprintf(err, err_len, "the PSK is not hex");
                free(t);
                return NULL;
            }
            t->psk[k / 2u] = (unsigned char)(hi * 16 + lo);
        }
        t->psk_len = n / 2u;
    }
    t->tcp = tcp;
    snprintf(t->server_name, sizeof(t->server_name), "%s", cfg->server_name != NULL ? cfg->server_name : tcp->host);
    mbedtls_entropy_init(&t->entropy);
    mbedtls_ctr_drbg_init(&t->drbg);
    mbedtls_x509_crt_init(&t->ca);
    mbedtls_x509_crt_init(&t->cert);
    mbedtls_pk_init(&t->key);
    mbedtls_ssl_config_init(&t->conf);
    mbedtls_ssl_init(&t->ssl);
    rc = mbedtls_ctr_drbg_seed(&t->drbg, mbedtls_entropy_func, &t->entropy, (const unsigned char *)pers,
                               sizeof(pers) - 1u);
    if (rc != 0) {
        describe(rc, "random generator", err, err_len);
    } else if (cfg->ca_file != NULL && (rc = mbedtls_x509_crt_parse_file(&t->ca, cfg->ca_file)) != 0) {
        describe(rc, cfg->ca_file, err, err_len);
    } else if (cfg->cert_file != NULL && (rc = mbedtls_x509_crt_parse_file(&t->cert, cfg->cert_file)) != 0) {
        describe(rc, cfg->cert_file, err, err_len);
    } else if (cfg->cert_file != NULL &&
               (rc = mbedtls_pk_parse_keyfile(&t->key, cfg->key_file != NULL ? cfg->key_file : "", NULL)) != 0) {
        describe(rc, cfg->key_file != NULL ? cfg->key_file : "(no key file)", err, err_len);
    } else if ((rc = mbedtls_ssl_config_defaults(&t->conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                                 MBEDTLS_SSL_PRESET_DEFAULT)) != 0) {
        describe(rc, "TLS config", err, err_len);
    } else {
        if (cfg->ca_file != NULL) {
            /* The broker's certificate must chain to the CA and name the host. */
            mbedtls_ssl_conf_authmode(&t->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
            mbedtls_ssl_conf_ca_chain(&t->conf, &t->ca, NULL);
        } else {
            /* PSK only: the shared key authenticates both ends; there is no
             * certificate to verify. */
            mbedtls_ssl_conf_authmode(&t->conf, MBEDTLS_SSL_VERIFY_NONE);
        }
        mbedtls_ssl_conf_rng(&t->conf, mbedtls_ctr_drbg_random, &t->drbg);
        mbedtls_ssl_conf_min_version(&t->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
        if (cfg->cert_file != NULL) {
            rc = mbedtls_ssl_conf_own_cert(&t->conf, &t->cert, &t->key);
            if (rc != 0) {
                describe(rc, "client certificate", err, err_len);
            }
        }
        if (rc == 0 && t->psk_len > 0u) {
            rc = mbedtls_ssl_conf_psk(&t->conf, t->psk, t->psk_len, (const unsigned char *)cfg->psk_identity,
                                      strlen(cfg->psk_identity));
            if (rc != 0) {
                describe(rc, "pre-shared key", err, err_len);
            }
        }
    }
    if (rc != 0) {
        mqim_posix_tls_free(t);
        return NULL;
    }
    return t;
}

void mqim_posix_tls_free(mqim_posix_tls_t *t)
{
    if (t == NULL) {
        return;
    }
    mbedtls_ssl_free(&t->ssl);
    mbedtls_ssl_config_free(&t->conf);
    mbedtls_pk_free(&t->key);
    mbedtls_x509_crt_free(&t->cert);
    mbedtls_x509_crt_free(&t->ca);
    mbedtls_ctr_drbg_free(&t->drbg);
    mbedtls_entropy_free(&t->entropy);
    free(t);
}

static void tls_close(void *ctx)
{
    mqim_posix_tls_t *t = ctx;
    if (t->open) {
        t->io_timeout_ms = 100;
        (void)mbedtls_ssl_close_notify(&t->ssl); /* best effort */
        mbedtls_ssl_free(&t->ssl);
        mbedtls_ssl_init(&t->ssl);
        t->open = false;
    }
    mqim_posix_tcp_ops.close(t->tcp);
}

static int32_t tls_open(void *ctx, uint32_t timeout_ms)
{
    mqim_posix_tls_t *t = ctx;
    uint32_t start = mqim_posix_clock_ms(NULL);
    int rc;
    tls_close(t);
    if (mqim_posix_tcp_ops.open(t->tcp, timeout_ms) != 0) {
        return -1;
    }
    if (mbedtls_ssl_setup(&t->ssl, &t->conf) != 0 ||
        mbedtls_ssl_set_hostname(&t->ssl, t->server_name) != 0) {
        mqim_posix_tcp_ops.close(t->tcp);
        return -1;
    }
    mbedtls_ssl_set_bio(&t->ssl, t, bio_send, NULL, bio_recv_timeout);
    mbedtls_ssl_conf_read_timeout(&t->conf, 200);
    t->io_timeout_ms = 200;
    t->open = true;
    do {
        rc = mbedtls_ssl_handshake(&t->ssl);
    } while ((rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE ||
              rc == MBEDTLS_ERR_SSL_TIMEOUT) &&
             mqim_posix_clock_ms(NULL) - start < timeout_ms);
    if (rc != 0) {
        /* A certificate that does not verify ends here: never talk to an
         * unauthenticated broker. */
        tls_close(t);
        return -1;
    }
    return 0;
}

static int32_t tls_send(void *ctx, const uint8_t *buf, size_t len, uint32_t timeout_ms)
{
    mqim_posix_tls_t *t = ctx;
    int rc;
    if (!t->open) {
        return -1;
    }
    t->io_timeout_ms = timeout_ms;
    rc = mbedtls_ssl_write(&t->ssl, buf, len);
    if (rc >= 0) {
        return rc;
    }
    return (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE) ? 0 : -1;
}

static int32_t tls_recv(void *ctx, uint8_t *buf, size_t cap, uint32_t timeout_ms)
{
    mqim_posix_tls_t *t = ctx;
    int rc;
    if (!t->open) {
        return -1;
    }
    t->io_timeout_ms = timeout_ms;
    mbedtls_ssl_conf_read_timeout(&t->conf, timeout_ms != 0u ? timeout_ms : 1u);
    rc = mbedtls_ssl_read(&t->ssl, buf, cap);
    if (rc > 0) {
        return rc;
    }
    if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE || rc == MBEDTLS_ERR_SSL_TIMEOUT) {
        return 0; /* nothing yet */
    }
    return -1; /* 0 (EOF), close_notify, or an error: the link is gone */
}

const mqim_transport_ops_t mqim_posix_tls_ops = { tls_send, tls_recv, tls_open, tls_close };
