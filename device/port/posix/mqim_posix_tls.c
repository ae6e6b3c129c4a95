/* TLS for the `mqim` CLI (mqim_posix_tls.h): reads the credential files
 * and hands them to the portable TLS port (device/port/mbedtls/mqim_tls.c),
 * which makes every mbedTLS call of the TLS transport, over the POSIX TCP
 * transport. */
#include "mqim_posix_tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqim_tls.h"

struct mqim_posix_tls {
    mqim_tls_t tls;
    unsigned char *ca, *cert, *key; /* PEM text, NUL-terminated */
    size_t ca_len, cert_len, key_len;
    unsigned char psk[MQIM_TLS_PSK_MAX];
};

/* A whole file plus a NUL (mbedTLS wants PEM NUL-terminated). */
static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    long size;
    if (f == NULL) {
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)size + 1u)) != NULL) {
        if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
            free(buf);
            buf = NULL;
        } else {
            buf[size] = '\0';
            *len = (size_t)size + 1u;
        }
    }
    fclose(f);
    return buf;
}

static int hex_value(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

mqim_posix_tls_t *mqim_posix_tls_new(mqim_posix_tcp_t *tcp, const mqim_posix_tls_config_t *cfg,
                                     char *err, size_t err_len)
{
    mqim_posix_tls_t *t = calloc(1, sizeof(*t)); /* once per process, at setup */
    mqim_tls_config_t tc;
    const char *what = "TLS";
    size_t psk_len = 0;
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
        psk_len = n / 2u;
    }
    if (cfg->ca_file != NULL && (t->ca = read_file(cfg->ca_file, &t->ca_len)) == NULL) {
        snprintf(err, err_len, "%s: cannot read", cfg->ca_file);
    } else if (cfg->cert_file != NULL && (t->cert = read_file(cfg->cert_file, &t->cert_len)) == NULL) {
        snprintf(err, err_len, "%s: cannot read", cfg->cert_file);
    } else if (cfg->cert_file != NULL &&
               (cfg->key_file == NULL || (t->key = read_file(cfg->key_file, &t->key_len)) == NULL)) {
        snprintf(err, err_len, "%s: cannot read", cfg->key_file != NULL ? cfg->key_file : "(no key file)");
    } else {
        memset(&tc, 0, sizeof(tc));
        tc.lower = &mqim_posix_tcp_ops;
        tc.lower_ctx = tcp;
        tc.clock = mqim_posix_clock_ms;
        tc.entropy = mqim_posix_entropy;
        tc.server_name = cfg->server_name != NULL ? cfg->server_name : tcp->host;
        tc.ca_pem = t->ca;
        tc.ca_pem_len = t->ca_len;
        tc.cert_pem = t->cert;
        tc.cert_pem_len = t->cert_len;
        tc.key_pem = t->key;
        tc.key_pem_len = t->key_len;
        tc.psk = psk_len > 0u ? t->psk : NULL;
        tc.psk_len = psk_len;
        tc.psk_identity = cfg->psk_identity;
        if (mqim_tls_init(&t->tls, &tc, &what) == MQIM_OK) {
            return t;
        }
        {
            char why[160];
            mqim_tls_describe(&t->tls, why, sizeof(why));
            snprintf(err, err_len, "%s: %s", what, why[0] != '\0' ? why : "invalid");
        }
    }
    mqim_posix_tls_free(t);
    return NULL;
}

void mqim_posix_tls_free(mqim_posix_tls_t *t)
{
    if (t == NULL) {
        return;
    }
    mqim_tls_free(&t->tls);
    free(t->ca);
    free(t->cert);
    free(t->key);
    free(t);
}

void mqim_posix_tls_describe(const mqim_posix_tls_t *t, char *buf, size_t len)
{
    mqim_tls_verify_reason(&t->tls, buf, len);
    if (buf[0] == '\0') {
        mqim_tls_describe(&t->tls, buf, len);
    }
}

/* The portable port's transport, on the embedded context. */
static int32_t p_send(void *ctx, const uint8_t *buf, size_t len, uint32_t timeout_ms)
{
    return mqim_tls_ops.send(&((mqim_posix_tls_t *)ctx)->tls, buf, len, timeout_ms);
}

static int32_t p_recv(void *ctx, uint8_t *buf, size_t cap, uint32_t timeout_ms)
{
    return mqim_tls_ops.recv(&((mqim_posix_tls_t *)ctx)->tls, buf, cap, timeout_ms);
}

static int32_t p_open(void *ctx, uint32_t timeout_ms)
{
    return mqim_tls_ops.open(&((mqim_posix_tls_t *)ctx)->tls, timeout_ms);
}

static void p_close(void *ctx)
{
    mqim_tls_ops.close(&((mqim_posix_tls_t *)ctx)->tls);
}

const mqim_transport_ops_t mqim_posix_tls_ops = { p_send, p_recv, p_open, p_close };
