/* TLS transport on mbedTLS 2.28 or 3.6 over any mqim transport
 * (mqim_tls.h). The two lines differ in a few calls, switched on
 * MBEDTLS_VERSION_NUMBER here and nowhere else. */
#include "mqim_tls.h"

#include <string.h>

#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h> /* MBEDTLS_ERR_NET_CONN_RESET: just a code, no sockets */
#include <mbedtls/platform_util.h>
#include <mbedtls/version.h>

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define MQIM_MBEDTLS_3 1
#if defined(MBEDTLS_PSA_CRYPTO_C)
#include <psa/crypto.h>
#endif
#else
#define MQIM_MBEDTLS_3 0
#endif

/* BIO: lower transport results -> mbedTLS codes. 0 from the transport is a
 * timeout, which mbedTLS must see as "try again", not as a closed stream. */
static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    mqim_tls_t *t = ctx;
    int32_t n = t->cfg.lower->send(t->cfg.lower_ctx, buf, len, t->io_timeout_ms);
    return n > 0 ? (int)n : n == 0 ? MBEDTLS_ERR_SSL_WANT_WRITE : MBEDTLS_ERR_NET_CONN_RESET;
}

static int bio_recv_timeout(void *ctx, unsigned char *buf, size_t len, uint32_t timeout_ms)
{
    mqim_tls_t *t = ctx;
    int32_t n = t->cfg.lower->recv(t->cfg.lower_ctx, buf, len, timeout_ms != 0u ? timeout_ms : t->io_timeout_ms);
    return n > 0 ? (int)n : n == 0 ? MBEDTLS_ERR_SSL_TIMEOUT : MBEDTLS_ERR_NET_CONN_RESET;
}

/* One decimal or hex group of an address literal: its value, or -1. */
static long ip_group(const char **p, unsigned base, unsigned max_digits)
{
    long v = 0;
    unsigned n = 0;
    for (;; n++) {
        char c = (*p)[0];
        int d = c >= '0' && c <= '9' ? c - '0' : base == 16u && c >= 'a' && c <= 'f' ? c - 'a' + 10
                : base == 16u && c >= 'A' && c <= 'F'                            ? c - 'A' + 10
                                                                                 : -1;
        if (d < 0) {
            break;
        }
        if (n == max_digits) {
            return -1;
        }
        v = v * (long)base + d;
        (*p)++;
    }
    return n > 0u ? v : -1;
}

static size_t parse_ipv4(const char *p, unsigned char *out, const char **end)
{
    for (unsigned i = 0; i < 4u; i++) {
        long v = ip_group(&p, 10u, 3u);
        if (v < 0 || v > 255 || (i < 3u && *p++ != '.')) {
            return 0;
        }
        out[i] = (unsigned char)v;
    }
    *end = p;
    return 4;
}

size_t mqim_tls_parse_ip(const char *text, unsigned char out[16])
{
    unsigned char a[16];
    const char *p = text, *end = NULL;
    unsigned n = 0, gap = 16u; /* gap: where "::" stands, in bytes; 16 = none */
    if (text == NULL) {
        return 0;
    }
    if (parse_ipv4(p, a, &end) == 4u && *end == '\0') {
        memcpy(out, a, 4);
        return 4;
    }
    if (p[0] == ':' && p[1] == ':') {
        gap = 0;
        p += 2;
    }
    while (*p != '\0' && n < 16u) {
        const char *mark = p;
        long v;
        if (n <= 12u && parse_ipv4(p, a + n, &end) == 4u && *end == '\0') {
            n += 4u; /* ::ffff:192.0.2.1 */
            p = end;
            break;
        }
        p = mark;
        if ((v = ip_group(&p, 16u, 4u)) < 0) {
            return 0;
        }
        a[n++] = (unsigned char)(v >> 8);
        a[n++] = (unsigned char)v;
        if (*p == ':' && p[1] == ':' && gap == 16u) {
            gap = n;
            p += 2;
        } else if (*p == ':' && p[1] != '\0') {
            p++;
        } else if (*p != '\0') {
            return 0;
        }
    }
    if (*p != '\0' || (gap == 16u && n != 16u) || (gap != 16u && n >= 16u)) {
        return 0;
    }
    /* open the gap: the groups after "::" move to the end, zeros between */
    memset(out, 0, 16);
    memcpy(out, a, gap < n ? gap : n);
    if (gap < n) {
        memcpy(out + 16u - (n - gap), a + gap, n - gap);
    }
    return 16;
}

/* The server is an address: the leaf certificate must carry it as an
 * iPAddress subject alternative name (RFC 6125, 6.2.1). The SAN list holds
 * every entry raw, tag and bytes, in 2.28 and 3.x alike. */
static int verify_ip(void *ctx, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    const mqim_tls_t *t = ctx;
    const mbedtls_x509_sequence *san;
    if (depth != 0) {
        return 0;
    }
    for (san = &crt->subject_alt_names; san != NULL && san->buf.p != NULL; san = san->next) {
        if (san->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_IP_ADDRESS) &&
            san->buf.len == t->ip_len && memcmp(san->buf.p, t->ip, t->ip_len) == 0) {
            return 0;
        }
    }
    *flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
    return 0;
}

/* The DRBG's entropy source is the board's entropy port. */
static int drbg_entropy(void *ctx, unsigned char *buf, size_t len)
{
    mqim_tls_t *t = ctx;
    return t->cfg.entropy(t->cfg.entropy_ctx, buf, len) == 0 ? 0 : MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED;
}

static mqim_status_t fail(mqim_tls_t *t, int rc, const char *step, const char **what)
{
    t->last_error = rc;
    if (what != NULL) {
        *what = step;
    }
    return rc == 0 ? MQIM_BAD_PARAMETER : MQIM_INTERNAL;
}

/* long because: mbedTLS's setup is a fixed sequence of calls (DRBG, CA,
 * own certificate, config, SSL context, BIO), each failing with its own step
 * name; kept in order in one place like mbedTLS's own ssl_client2.c. */
mqim_status_t mqim_tls_init(mqim_tls_t *t, const mqim_tls_config_t *cfg, const char **what)
{
    static const unsigned char pers[] = "mqim-device";
    size_t name_len;
    int rc;
    if (t == NULL || cfg == NULL) {
        return MQIM_BAD_PARAMETER;
    }
    memset(t, 0, sizeof(*t));
    mbedtls_ctr_drbg_init(&t->drbg);
    mbedtls_x509_crt_init(&t->ca);
    mbedtls_x509_crt_init(&t->cert);
    mbedtls_pk_init(&t->key);
    mbedtls_ssl_config_init(&t->conf);
    mbedtls_ssl_init(&t->ssl);
    t->cfg = *cfg;
    if (cfg->lower == NULL || cfg->clock == NULL || cfg->entropy == NULL) {
        return fail(t, 0, "ports (lower transport, clock, entropy)", what);
    }
    if (cfg->ca_pem == NULL && cfg->psk == NULL) {
        return fail(t, 0, "TLS needs a CA or a pre-shared key", what);
    }
    if (cfg->psk != NULL && (cfg->psk_len == 0u || cfg->psk_len > sizeof(t->psk) || cfg->psk_identity == NULL)) {
        return fail(t, 0, "the PSK must be 1..64 bytes, with an identity", what);
    }
    name_len = cfg->server_name != NULL ? strlen(cfg->server_name) : 0u;
    if (name_len > MQIM_TLS_SERVER_NAME_MAX) {
        return fail(t, 0, "server name too long", what);
    }
    memcpy(t->server_name, cfg->server_name != NULL ? cfg->server_name : "", name_len + 1u);
    t->ip_len = (uint8_t)mqim_tls_parse_ip(t->server_name, t->ip);
    if (cfg->psk != NULL) {
        memcpy(t->psk, cfg->psk, cfg->psk_len);
    }
#if MQIM_MBEDTLS_3 && defined(MBEDTLS_PSA_CRYPTO_C)
    /* 3.x runs TLS 1.3 (and, with MBEDTLS_USE_PSA_CRYPTO, all of TLS) on
     * PSA; with MBEDTLS_USE_PSA_CRYPTO it must be initialised before
     * mbedtls_ssl_setup (ssl.h). Idempotent. */
    rc = (int)psa_crypto_init();
    if (rc != PSA_SUCCESS) {
        return fail(t, rc, "PSA crypto", what);
    }
#endif
    rc = mbedtls_ctr_drbg_seed(&t->drbg, drbg_entropy, t, pers, sizeof(pers) - 1u);
    if (rc != 0) {
        return fail(t, rc, "random generator", what);
    }
    if (cfg->ca_pem != NULL && (rc = mbedtls_x509_crt_parse(&t->ca, cfg->ca_pem, cfg->ca_pem_len)) != 0) {
        return fail(t, rc, "CA certificate", what);
    }
    if (cfg->cert_pem != NULL) {
        rc = mbedtls_x509_crt_parse(&t->cert, cfg->cert_pem, cfg->cert_pem_len);
        if (rc != 0) {
            return fail(t, rc, "client certificate", what);
        }
#if MQIM_MBEDTLS_3
        /* 3.x takes an RNG to blind the private-key checks */
        rc = cfg->key_pem != NULL ? mbedtls_pk_parse_key(&t->key, cfg->key_pem, cfg->key_pem_len, NULL, 0,
                                                         mbedtls_ctr_drbg_random, &t->drbg)
                                  : MBEDTLS_ERR_PK_KEY_INVALID_FORMAT;
#else
        rc = cfg->key_pem != NULL ? mbedtls_pk_parse_key(&t->key, cfg->key_pem, cfg->key_pem_len, NULL, 0)
                                  : MBEDTLS_ERR_PK_KEY_INVALID_FORMAT;
#endif
        if (rc != 0) {
            return fail(t, rc, "client key", what);
        }
    }
    rc = mbedtls_ssl_config_defaults(&t->conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                     MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc != 0) {
        return fail(t, rc, "TLS configuration", what);
    }
    if (cfg->ca_pem != NULL) {
        /* The broker's certificate must chain to the CA and name the host. */
        mbedtls_ssl_conf_authmode(&t->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
        mbedtls_ssl_conf_ca_chain(&t->conf, &t->ca, NULL);
        if (t->ip_len > 0u) {
            mbedtls_ssl_conf_verify(&t->conf, verify_ip, t);
        }
    } else {
        /* PSK only: the shared key authenticates both ends. */
        mbedtls_ssl_conf_authmode(&t->conf, MBEDTLS_SSL_VERIFY_NONE);
    }
    mbedtls_ssl_conf_rng(&t->conf, mbedtls_ctr_drbg_random, &t->drbg);
#if MQIM_MBEDTLS_3
    mbedtls_ssl_conf_min_tls_version(&t->conf, MBEDTLS_SSL_VERSION_TLS1_2);
    if (cfg->psk != NULL) {
        /* PSK stays on TLS 1.2, what the 2.28 line and the firmware speak
         * (TLS 1.3 PSK is not tested here). */
        mbedtls_ssl_conf_max_tls_version(&t->conf, MBEDTLS_SSL_VERSION_TLS1_2);
    }
#else
    mbedtls_ssl_conf_min_version(&t->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
#endif
    if (cfg->cert_pem != NULL && (rc = mbedtls_ssl_conf_own_cert(&t->conf, &t->cert, &t->key)) != 0) {
        return fail(t, rc, "client certificate", what);
    }
    if (cfg->psk != NULL &&
        (rc = mbedtls_ssl_conf_psk(&t->conf, t->psk, cfg->psk_len, (const unsigned char *)cfg->psk_identity,
                                   strlen(cfg->psk_identity))) != 0) {
        return fail(t, rc, "pre-shared key", what);
    }
    return MQIM_OK;
}

void mqim_tls_free(mqim_tls_t *t)
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
    mbedtls_platform_zeroize(t->psk, sizeof(t->psk));
}

int mqim_tls_last_error(const mqim_tls_t *t)
{
    return t != NULL ? t->last_error : 0;
}

void mqim_tls_describe(const mqim_tls_t *t, char *buf, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    unsigned code = t != NULL && t->last_error < 0 ? (unsigned)-t->last_error : 0u;
    size_t n;
    if (buf == NULL || len == 0u) {
        return;
    }
    buf[0] = '\0';
#if defined(MBEDTLS_ERROR_C)
    mbedtls_strerror(-(int)code, buf, len);
#endif
    n = strlen(buf);
    if (len - n > 11u) { /* " (-0x1234)" and the NUL */
        const char tail[] = { ' ', '(', '-', '0', 'x', hex[(code >> 12) & 15u], hex[(code >> 8) & 15u],
                              hex[(code >> 4) & 15u], hex[code & 15u], ')', '\0' };
        memcpy(buf + n, n > 0u ? tail : tail + 1, n > 0u ? sizeof(tail) : sizeof(tail) - 1u);
    }
}

void mqim_tls_verify_reason(const mqim_tls_t *t, char *buf, size_t len)
{
    if (buf == NULL || len == 0u) {
        return;
    }
    buf[0] = '\0';
#if !defined(MBEDTLS_X509_REMOVE_INFO)
    if (t != NULL && t->verify_flags != 0u && mbedtls_x509_crt_verify_info(buf, len, "", t->verify_flags) > 0) {
        /* one line per flag: join them into one */
        size_t n = strlen(buf);
        while (n > 0u && buf[n - 1u] == '\n') {
            buf[--n] = '\0';
        }
        for (size_t i = 0; i < n; i++) {
            buf[i] = buf[i] == '\n' ? ';' : buf[i];
        }
    }
#endif
}

static void tls_close(void *ctx)
{
    mqim_tls_t *t = ctx;
    if (t->open) {
        t->io_timeout_ms = 100;
        (void)mbedtls_ssl_close_notify(&t->ssl); /* best effort */
        mbedtls_ssl_free(&t->ssl);
        mbedtls_ssl_init(&t->ssl);
        t->open = false;
    }
    t->cfg.lower->close(t->cfg.lower_ctx);
}

static int32_t tls_open(void *ctx, uint32_t timeout_ms)
{
    mqim_tls_t *t = ctx;
    uint32_t start = t->cfg.clock(t->cfg.clock_ctx);
    int rc;
    tls_close(t);
    rc = (int)t->cfg.lower->open(t->cfg.lower_ctx, timeout_ms);
    if (rc != 0) {
        return rc < 0 ? (int32_t)rc : -(int32_t)MQIM_BROKER_UNREACHABLE;
    }
    t->verify_flags = 0;
    rc = mbedtls_ssl_setup(&t->ssl, &t->conf);
    if (rc == 0 && t->server_name[0] != '\0') {
        /* An address is checked by verify_ip; NULL says "no host name
         * check here" explicitly (3.6 refuses to verify without a call). */
        rc = mbedtls_ssl_set_hostname(&t->ssl, t->ip_len > 0u ? NULL : t->server_name);
    }
    if (rc != 0) {
        t->last_error = rc;
        mbedtls_ssl_free(&t->ssl);
        mbedtls_ssl_init(&t->ssl);
        t->cfg.lower->close(t->cfg.lower_ctx);
        return -(int32_t)MQIM_TLS_HANDSHAKE_FAILED;
    }
    mbedtls_ssl_set_bio(&t->ssl, t, bio_send, NULL, bio_recv_timeout);
    mbedtls_ssl_conf_read_timeout(&t->conf, 200);
    t->io_timeout_ms = 200;
    t->open = true;
    do {
        rc = mbedtls_ssl_handshake(&t->ssl);
    } while ((rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE ||
              rc == MBEDTLS_ERR_SSL_TIMEOUT) &&
             t->cfg.clock(t->cfg.clock_ctx) - start < timeout_ms);
    if (rc != 0) {
        /* A certificate that does not verify ends here: never talk to an
         * unauthenticated broker. */
        t->last_error = rc;
        if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
            t->verify_flags = mbedtls_ssl_get_verify_result(&t->ssl);
        }
        tls_close(t);
        return rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED ? -(int32_t)MQIM_TLS_VERIFY_FAILED
                                                          : -(int32_t)MQIM_TLS_HANDSHAKE_FAILED;
    }
    return 0;
}

static int32_t tls_send(void *ctx, const uint8_t *buf, size_t len, uint32_t timeout_ms)
{
    mqim_tls_t *t = ctx;
    int rc;
    if (!t->open) {
        return -1;
    }
    t->io_timeout_ms = timeout_ms;
    rc = mbedtls_ssl_write(&t->ssl, buf, len);
    if (rc >= 0) {
        return rc;
    }
    t->last_error = rc;
    return (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE) ? 0 : -1;
}

static int32_t tls_recv(void *ctx, uint8_t *buf, size_t cap, uint32_t timeout_ms)
{
    mqim_tls_t *t = ctx;
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
#if defined(MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
    if (rc == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) {
        return 0; /* a TLS 1.3 ticket (only when signalled): not application data */
    }
#endif
    t->last_error = rc;
    return -1; /* 0 (EOF), close_notify, or an error: the link is gone */
}

const mqim_transport_ops_t mqim_tls_ops = { tls_send, tls_recv, tls_open, tls_close };
