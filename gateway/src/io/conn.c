/* One MQTT v5 connection of the gateway: the outbox publisher or the
 * inbound connection (see conn.h). */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define OUT_INITIAL (256u * 1024u) /* grows only for a single larger publish */
#define IN_BYTES (MQIM_V5_MAX_IN_PACKET + 8u) /* grows to max_in for a larger publish */
/* The SUBSCRIBE's packet id: the publish window stops below it. */
#define SUB_PACKET_ID 65535u

struct mqim_conn {
    mqim_conn_config_t cfg;
    int fd;
    SSL_CTX *ssl_ctx;
    SSL *ssl;
    bool connected;
    uint8_t *out;
    size_t out_cap, out_start, out_end;
    uint8_t *in;
    size_t in_len, in_cap;
    size_t max_in;        /* the largest packet taken from the broker */
    bool paused;          /* on_publish said not now: buffered input waits */
    bool subscribed;      /* SUBACK granted */
    bool session_present;
    /* window: packet id i+1 <-> slot i; free slots on a stack */
    uint64_t *slot_key;
    bool *slot_used;
    uint16_t *free_ids;
    unsigned nfree, window, inflight;
    uint32_t max_packet; /* the broker's Maximum Packet Size; 0: none */
    unsigned keepalive_s;
    int64_t last_out_ms;  /* the last byte written */
    int64_t last_in_ms;   /* the last byte read */
    int64_t ping_sent_ms; /* 0: no PINGREQ outstanding */
    /* The stall clock: since when the oldest unacknowledged publish has been
     * waiting for its PUBACK without any PUBACK arriving (0: nothing waits).
     * Not the last packet received: after an idle period that is old, and
     * the first publish would look stalled at once (issue 13). */
    int64_t ack_wait_since_ms;
};

static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || err_len == 0u) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

static bool has(const char *s)
{
    return s != NULL && s[0] != '\0';
}

mqim_conn_t *mqim_conn_new(const mqim_conn_config_t *cfg)
{
    mqim_conn_t *p;
    unsigned n;
    if (cfg == NULL || cfg->host == NULL || cfg->client_id == NULL || cfg->max_inflight == 0u) {
        return NULL;
    }
    n = cfg->max_inflight > SUB_PACKET_ID - 1u ? SUB_PACKET_ID - 1u : cfg->max_inflight;
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return NULL;
    }
    p->cfg = *cfg;
    p->cfg.max_inflight = n;
    p->fd = -1;
    p->out_cap = OUT_INITIAL;
    p->out = malloc(p->out_cap);
    p->in_cap = IN_BYTES;
    p->in = malloc(p->in_cap);
    p->max_in = cfg->sub_filter != NULL && cfg->max_in_packet > MQIM_V5_MAX_IN_PACKET
                    ? cfg->max_in_packet : MQIM_V5_MAX_IN_PACKET;
    p->slot_key = calloc(n, sizeof(uint64_t));
    p->slot_used = calloc(n, sizeof(bool));
    p->free_ids = calloc(n, sizeof(uint16_t));
    if (p->out == NULL || p->in == NULL || p->slot_key == NULL || p->slot_used == NULL ||
        p->free_ids == NULL) {
        mqim_conn_free(p);
        return NULL;
    }
    return p;
}

void mqim_conn_free(mqim_conn_t *p)
{
    if (p == NULL) {
        return;
    }
    mqim_conn_close(p, false);
    free(p->out);
    free(p->in);
    free(p->slot_key);
    free(p->slot_used);
    free(p->free_ids);
    free(p);
}

void mqim_conn_close(mqim_conn_t *p, bool graceful)
{
    if (p == NULL) {
        return;
    }
    if (graceful && p->connected) {
        uint8_t d[2];
        size_t n;
        (void)mqim_v5_disconnect_encode(d, sizeof(d), &n);
        /* best effort: whatever is still buffered goes first, then the DISCONNECT */
        if (p->ssl != NULL) {
            (void)SSL_write(p->ssl, d, (int)n);
            (void)SSL_shutdown(p->ssl);
        } else if (p->fd >= 0) {
            (void)send(p->fd, d, n, MSG_NOSIGNAL);
        }
    }
    if (p->ssl != NULL) {
        SSL_free(p->ssl);
        p->ssl = NULL;
    }
    if (p->ssl_ctx != NULL) {
        SSL_CTX_free(p->ssl_ctx);
        p->ssl_ctx = NULL;
    }
    if (p->fd >= 0) {
        close(p->fd);
        p->fd = -1;
    }
    p->connected = false;
    p->out_start = p->out_end = 0;
    p->in_len = 0;
    p->inflight = 0;
    p->window = 0;
    p->ping_sent_ms = 0;
    p->ack_wait_since_ms = 0;
    p->paused = false;
    p->subscribed = false;
}

bool mqim_conn_connected(const mqim_conn_t *p)
{
    return p != NULL && p->connected;
}

bool mqim_conn_subscribed(const mqim_conn_t *p)
{
    return p != NULL && p->connected && p->subscribed;
}

bool mqim_conn_session_present(const mqim_conn_t *p)
{
    return p != NULL && p->connected && p->session_present;
}

int mqim_conn_fd(const mqim_conn_t *p)
{
    return p != NULL && p->connected ? p->fd : -1;
}

short mqim_conn_poll_events(const mqim_conn_t *p)
{
    if (p == NULL || !p->connected) {
        return 0;
    }
    return (short)((p->paused ? 0 : POLLIN) | (p->out_end > p->out_start ? POLLOUT : 0));
}

unsigned mqim_conn_inflight(const mqim_conn_t *p)
{
    return p != NULL ? p->inflight : 0u;
}

unsigned mqim_conn_room(const mqim_conn_t *p)
{
    return p != NULL && p->connected ? p->window - p->inflight : 0u;
}

/* ---- the socket ---- */

static int set_blocking(int fd, bool blocking)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) {
        return -1;
    }
    fl = blocking ? (fl & ~O_NONBLOCK) : (fl | O_NONBLOCK);
    return fcntl(fd, F_SETFL, fl);
}

static void set_timeouts(int fd, int ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int tcp_connect(const mqim_conn_config_t *cfg, int timeout_ms, char *err, size_t err_len)
{
    struct addrinfo hints, *res = NULL, *ai;
    char port[16];
    int fd = -1, rc, last_errno = 0;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%d", cfg->port);
    rc = getaddrinfo(cfg->host, port, &hints, &res);
    if (rc != 0) {
        set_err(err, err_len, "cannot resolve %s: %s", cfg->host, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        struct pollfd pfd;
        int soerr = 0, one = 1;
        socklen_t len = sizeof(soerr);
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
            last_errno = errno;
            close(fd);
            fd = -1;
            continue;
        }
        pfd.fd = fd;
        pfd.events = POLLOUT;
        rc = poll(&pfd, 1, timeout_ms);
        if (rc <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr != 0) {
            last_errno = rc == 0 ? ETIMEDOUT : soerr != 0 ? soerr : errno;
            close(fd);
            fd = -1;
            continue;
        }
        /* Each publish is small and must not wait for the previous one's
         * TCP ack (Nagle): tens of ms per round otherwise. */
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        break;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        set_err(err, err_len, "cannot connect to %s:%d: %s", cfg->host, cfg->port,
                strerror(last_errno));
    }
    return fd;
}

/* OpenSSL's reason for the last failure, with the certificate check's when
 * that was it: a name the certificate does not list, or a chain that does
 * not lead to broker_cafile (the two usual configuration mistakes). */
static void tls_reason(mqim_conn_t *p, const char *what, char *err, size_t err_len)
{
    unsigned long e = ERR_get_error();
    char buf[256];
    long v = p->ssl != NULL ? SSL_get_verify_result(p->ssl) : X509_V_OK;
    const char *ca = has(p->cfg.cafile) ? p->cfg.cafile : "(system CAs)";
    if (e != 0u) {
        ERR_error_string_n(e, buf, sizeof(buf));
    } else {
        snprintf(buf, sizeof(buf), "%s", strerror(errno));
    }
    ERR_clear_error();
    if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH) {
        set_err(err, err_len, "TLS %s with %s:%d: the broker's certificate does not name '%s': "
                "broker_host must be a name or address the certificate lists (broker_cafile %s)",
                what, p->cfg.host, p->cfg.port, p->cfg.host, ca);
    } else if (v != X509_V_OK) {
        set_err(err, err_len, "TLS %s with %s:%d: certificate verify failed (broker_cafile %s: %s)",
                what, p->cfg.host, p->cfg.port, ca, X509_verify_cert_error_string(v));
    } else {
        set_err(err, err_len, "TLS %s with %s:%d: %s", what, p->cfg.host, p->cfg.port, buf);
    }
}

/* TLS 1.2 or newer; the broker's certificate must chain to cafile (or a
 * system CA) and name cfg.host (a DNS name or an IP address). */
static mqim_status_t tls_start(mqim_conn_t *p, char *err, size_t err_len)
{
    struct in6_addr a6;
    struct in_addr a4;
    bool is_ip = inet_pton(AF_INET, p->cfg.host, &a4) == 1 || inet_pton(AF_INET6, p->cfg.host, &a6) == 1;
    p->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (p->ssl_ctx == NULL) {
        tls_reason(p, "setup", err, err_len);
        return MQIM_TRANSPORT_ERROR;
    }
    (void)SSL_CTX_set_min_proto_version(p->ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(p->ssl_ctx, SSL_VERIFY_PEER, NULL);
    if ((has(p->cfg.cafile) ? SSL_CTX_load_verify_locations(p->ssl_ctx, p->cfg.cafile, NULL)
                            : SSL_CTX_set_default_verify_paths(p->ssl_ctx)) != 1) {
        tls_reason(p, "CA file", err, err_len);
        return MQIM_TRANSPORT_ERROR;
    }
    if (has(p->cfg.certfile) &&
        (SSL_CTX_use_certificate_chain_file(p->ssl_ctx, p->cfg.certfile) != 1 ||
         SSL_CTX_use_PrivateKey_file(p->ssl_ctx, has(p->cfg.keyfile) ? p->cfg.keyfile : p->cfg.certfile,
                                     SSL_FILETYPE_PEM) != 1)) {
        tls_reason(p, "client certificate", err, err_len);
        return MQIM_TRANSPORT_ERROR;
    }
    p->ssl = SSL_new(p->ssl_ctx);
    if (p->ssl == NULL || SSL_set_fd(p->ssl, p->fd) != 1) {
        tls_reason(p, "setup", err, err_len);
        return MQIM_TRANSPORT_ERROR;
    }
    SSL_set_mode(p->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (is_ip) {
        (void)X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(p->ssl), p->cfg.host);
    } else {
        (void)SSL_set_tlsext_host_name(p->ssl, p->cfg.host);
        (void)SSL_set1_host(p->ssl, p->cfg.host);
    }
    if (SSL_connect(p->ssl) != 1) {
        tls_reason(p, "handshake", err, err_len);
        return MQIM_TRANSPORT_ERROR;
    }
    return MQIM_OK;
}

/* Blocking (socket timeouts set) write of all of buf, for the handshake. */
static bool write_all_blocking(mqim_conn_t *p, const uint8_t *buf, size_t len)
{
    while (len > 0u) {
        ssize_t n = p->ssl != NULL ? (ssize_t)SSL_write(p->ssl, buf, (int)len)
                                   : send(p->fd, buf, len, MSG_NOSIGNAL);
        if (n <= 0) {
            if (n < 0 && p->ssl == NULL && errno == EINTR) {
                continue;
            }
            return false;
        }
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

/* Read into the input buffer: >0 bytes read, 0 nothing now (would block),
 * -1 closed or failed. */
static ssize_t read_some(mqim_conn_t *p)
{
    size_t room = p->in_cap - p->in_len;
    if (room == 0u) {
        return 0;
    }
    if (p->ssl != NULL) {
        int n = SSL_read(p->ssl, p->in + p->in_len, (int)room);
        if (n > 0) {
            p->in_len += (size_t)n;
            return n;
        }
        switch (SSL_get_error(p->ssl, n)) {
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
            return 0;
        default:
            return -1;
        }
    }
    for (;;) {
        ssize_t n = recv(p->fd, p->in + p->in_len, room, 0);
        if (n > 0) {
            p->in_len += (size_t)n;
            return n;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        }
        return -1;
    }
}

/* The first packet of buf: the subscriber's decoder takes PUBLISH and
 * SUBACK up to max_in, the publisher's refuses them. */
static mqim_status_t decode_one(const mqim_conn_t *p, const uint8_t *buf, size_t len,
                                mqim_v5_packet_t *pk, size_t *used)
{
    if (p->cfg.sub_filter == NULL) {
        return mqim_v5_decode(buf, len, pk, used);
    }
    return mqim_v5_decode_limit(buf, len, p->max_in, pk, used);
}

/* CONNECT as configured; false when it does not fit buf. */
static bool encode_connect(const mqim_conn_t *p, uint8_t *buf, size_t cap, size_t *n)
{
    mqim_v5_connect_t c;
    memset(&c, 0, sizeof(c));
    c.client_id = mqim_str_from_cstr(p->cfg.client_id);
    c.username = mqim_str_from_cstr(has(p->cfg.username) ? p->cfg.username : NULL);
    c.password = mqim_str_from_cstr(has(p->cfg.password) ? p->cfg.password : NULL);
    c.keepalive_s = (uint16_t)(p->cfg.keepalive_s > 65535u ? 65535u : p->cfg.keepalive_s);
    c.clean_start = p->cfg.resume_session ? 0 : 1;
    c.session_expiry_s = p->cfg.resume_session ? p->cfg.session_expiry_s : 0u;
    if (p->cfg.sub_filter != NULL) {
        c.max_packet = (uint32_t)p->max_in; /* the broker drops larger publishes for us */
    }
    if (p->cfg.will_topic != NULL) {
        c.will_topic = mqim_str_from_cstr(p->cfg.will_topic);
        c.will_payload = mqim_str_from_cstr(p->cfg.will_payload);
        c.will_qos = 1;
        c.will_retain = 1;
    }
    return mqim_v5_connect_encode(&c, buf, cap, n) == MQIM_OK;
}

/* SUBSCRIBE to the configured filter (QoS 1; retained publishes only for a
 * new subscription, not again on every reconnect of the session). */
static bool encode_subscribe(const mqim_conn_t *p, uint8_t *buf, size_t cap, size_t *n)
{
    mqim_v5_subscribe_t sub = { mqim_str_from_cstr(p->cfg.sub_filter), 1,
                                MQIM_V5_RETAIN_IF_NEW_SUB, (uint16_t)SUB_PACKET_ID };
    return mqim_v5_subscribe_encode(&sub, buf, cap, n) == MQIM_OK;
}

mqim_status_t mqim_conn_connect(mqim_conn_t *p, int timeout_ms, int64_t now_ms, char *err,
                               size_t err_len)
{
    mqim_v5_packet_t pk;
    size_t n = 0, used = 0;
    mqim_status_t st;
    uint8_t buf[1024];
    if (p == NULL) {
        return MQIM_BAD_PARAMETER;
    }
    mqim_conn_close(p, false);
    p->fd = tcp_connect(&p->cfg, timeout_ms, err, err_len);
    if (p->fd < 0) {
        return MQIM_TRANSPORT_ERROR;
    }
    /* The handshake blocks (with timeouts); the stream after it does not. */
    if (set_blocking(p->fd, true) != 0) {
        set_err(err, err_len, "fcntl: %s", strerror(errno));
        mqim_conn_close(p, false);
        return MQIM_TRANSPORT_ERROR;
    }
    set_timeouts(p->fd, timeout_ms);
    if (p->cfg.tls) {
        st = tls_start(p, err, err_len);
        if (st != MQIM_OK) {
            mqim_conn_close(p, false);
            return st;
        }
    }
    if (!encode_connect(p, buf, sizeof(buf), &n) || !write_all_blocking(p, buf, n)) {
        set_err(err, err_len, "cannot send CONNECT to %s:%d: %s", p->cfg.host, p->cfg.port,
                n > sizeof(buf) ? "credentials too long" : strerror(errno));
        mqim_conn_close(p, false);
        return MQIM_TRANSPORT_ERROR;
    }
    for (;;) {
        ssize_t r;
        st = decode_one(p, p->in, p->in_len, &pk, &used);
        if (st != MQIM_MQTT_NEED_MORE) {
            break;
        }
        r = read_some(p); /* blocking socket: 0 means the timeout ran out */
        if (r <= 0) {
            set_err(err, err_len, "no CONNACK from %s:%d: %s", p->cfg.host, p->cfg.port,
                    r == 0 ? "timed out" : "connection closed");
            mqim_conn_close(p, false);
            return r == 0 ? MQIM_TIMEOUT : MQIM_TRANSPORT_ERROR;
        }
    }
    if (st != MQIM_OK || pk.type != MQIM_V5_CONNACK) {
        set_err(err, err_len, "bad answer to CONNECT from %s:%d (%s)", p->cfg.host, p->cfg.port,
                st != MQIM_OK ? mqim_status_str(st) : "not a CONNACK");
        mqim_conn_close(p, false);
        return MQIM_TRANSPORT_ERROR;
    }
    if (pk.reason != 0u) {
        set_err(err, err_len, "broker %s:%d refused the connection: %s%s%.*s", p->cfg.host,
                p->cfg.port, mqim_v5_reason_str(pk.reason), pk.reason_string.len > 0u ? ": " : "",
                (int)pk.reason_string.len, pk.reason_string.ptr != NULL ? pk.reason_string.ptr : "");
        mqim_conn_close(p, false);
        return MQIM_CONNACK_REFUSED;
    }
    memmove(p->in, p->in + used, p->in_len - used); /* a resumed session's publishes may follow */
    p->in_len -= used;
    p->session_present = pk.session_present != 0;
    if (p->cfg.sub_filter != NULL &&
        (!encode_subscribe(p, buf, sizeof(buf), &n) || !write_all_blocking(p, buf, n))) {
        set_err(err, err_len, "cannot send SUBSCRIBE to %s:%d: %s", p->cfg.host, p->cfg.port,
                n > sizeof(buf) ? "filter too long" : strerror(errno));
        mqim_conn_close(p, false);
        return MQIM_TRANSPORT_ERROR;
    }
    if (set_blocking(p->fd, false) != 0) {
        set_err(err, err_len, "fcntl: %s", strerror(errno));
        mqim_conn_close(p, false);
        return MQIM_TRANSPORT_ERROR;
    }
    set_timeouts(p->fd, 0);
    p->window = p->cfg.max_inflight < pk.receive_max ? p->cfg.max_inflight : pk.receive_max;
    p->max_packet = pk.max_packet;
    p->keepalive_s = pk.has_server_keepalive ? pk.server_keepalive : p->cfg.keepalive_s;
    p->nfree = 0;
    for (unsigned i = p->window; i > 0u; i--) {
        p->free_ids[p->nfree++] = (uint16_t)i;
        p->slot_used[i - 1u] = false;
    }
    p->inflight = 0;
    p->connected = true;
    p->last_out_ms = p->last_in_ms = now_ms;
    p->ping_sent_ms = 0;
    p->ack_wait_since_ms = 0;
    return MQIM_OK;
}

/* ---- the stream ---- */

/* Room for n more bytes at the end of the output buffer. */
static bool out_room(mqim_conn_t *p, size_t n)
{
    if (p->out_start == p->out_end) {
        p->out_start = p->out_end = 0;
    }
    if (p->out_cap - p->out_end >= n) {
        return true;
    }
    if (p->out_start > 0u) {
        memmove(p->out, p->out + p->out_start, p->out_end - p->out_start);
        p->out_end -= p->out_start;
        p->out_start = 0;
        if (p->out_cap - p->out_end >= n) {
            return true;
        }
    }
    if (p->out_end == 0u) { /* one publish larger than the buffer: grow once for it */
        uint8_t *b = realloc(p->out, n);
        if (b == NULL) {
            return false;
        }
        p->out = b;
        p->out_cap = n;
        return true;
    }
    return false;
}

mqim_status_t mqim_conn_publish(mqim_conn_t *p, uint64_t key, const mqim_v5_publish_t *m,
                               mqim_conn_done_fn done, void *ctx)
{
    mqim_v5_publish_t msg;
    size_t need = 0;
    mqim_status_t st;
    uint16_t id = 0;
    if (p == NULL || m == NULL || !p->connected) {
        return MQIM_BAD_PARAMETER;
    }
    msg = *m;
    msg.qos = msg.qos > 0 ? 1 : 0;
    if (msg.qos == 1) {
        if (p->nfree == 0u) {
            return MQIM_INFLIGHT_FULL;
        }
        id = p->free_ids[p->nfree - 1u];
    }
    msg.packet_id = id;
    st = mqim_v5_publish_encode(&msg, NULL, 0, &need);
    if (st != MQIM_BUFFER_TOO_SMALL) {
        return st; /* bad topic, too large for MQTT */
    }
    if (p->max_packet != 0u && need > p->max_packet) {
        return MQIM_MQTT_TOO_LARGE;
    }
    if (!out_room(p, need)) {
        return MQIM_BUFFER_TOO_SMALL;
    }
    st = mqim_v5_publish_encode(&msg, p->out + p->out_end, p->out_cap - p->out_end, &need);
    if (st != MQIM_OK) {
        return st;
    }
    p->out_end += need;
    if (msg.qos == 1) {
        p->nfree--;
        p->slot_key[id - 1u] = key;
        p->slot_used[id - 1u] = true;
        p->inflight++;
    } else if (done != NULL) {
        done(ctx, key, 0u);
    }
    return MQIM_OK;
}

static mqim_status_t flush_out(mqim_conn_t *p, int64_t now_ms, char *err, size_t err_len)
{
    while (p->out_end > p->out_start) {
        size_t len = p->out_end - p->out_start;
        if (p->ssl != NULL) {
            int n = SSL_write(p->ssl, p->out + p->out_start, (int)(len > 1048576u ? 1048576u : len));
            if (n <= 0) {
                int e = SSL_get_error(p->ssl, n);
                if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
                    return MQIM_OK;
                }
                tls_reason(p, "write", err, err_len);
                return MQIM_TRANSPORT_ERROR;
            }
            p->out_start += (size_t)n;
        } else {
            ssize_t n = send(p->fd, p->out + p->out_start, len, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    return MQIM_OK;
                }
                set_err(err, err_len, "write to %s:%d: %s", p->cfg.host, p->cfg.port, strerror(errno));
                return MQIM_TRANSPORT_ERROR;
            }
            p->out_start += (size_t)n;
        }
        p->last_out_ms = now_ms;
    }
    return MQIM_OK;
}

/* A PUBACK for one of our publishes. */
static mqim_status_t handle_puback(mqim_conn_t *p, const mqim_v5_packet_t *pk, int64_t now_ms,
                                   mqim_conn_done_fn done, void *ctx, char *err, size_t err_len)
{
    unsigned i = pk->packet_id - 1u;
    uint64_t key;
    if (pk->packet_id > p->window || !p->slot_used[i]) {
        set_err(err, err_len, "PUBACK for packet id %u, which is not in flight", pk->packet_id);
        return MQIM_UNEXPECTED_ACK;
    }
    key = p->slot_key[i];
    p->slot_used[i] = false;
    p->free_ids[p->nfree++] = pk->packet_id;
    p->inflight--;
    /* The broker acknowledges in order (MQTT 5, 4.6): the publishes
     * still waiting were sent before now, so the clock restarts here
     * (a little lenient, never early). */
    p->ack_wait_since_ms = p->inflight > 0u ? now_ms : 0;
    if (done != NULL) {
        done(ctx, key, pk->reason);
    }
    return MQIM_OK;
}

/* Every filter granted at the QoS asked (1): a lower QoS would deliver
 * without PUBACK, and a gateway crash would lose what the journal had not
 * written yet; a refusal means the gateway would never route. */
static mqim_status_t handle_suback(mqim_conn_t *p, const mqim_v5_packet_t *pk, char *err,
                                   size_t err_len)
{
    if (pk->packet_id != SUB_PACKET_ID || p->cfg.sub_filter == NULL) {
        set_err(err, err_len, "SUBACK for packet id %u, which was never sent", pk->packet_id);
        return MQIM_UNEXPECTED_ACK;
    }
    for (size_t i = 0; i < pk->sub_count; i++) {
        uint8_t rc = pk->sub_reasons[i];
        if (rc != MQIM_V5_RC_GRANTED_QOS1) {
            set_err(err, err_len, "the broker refused the subscription to %s: %s (check the gateway "
                    "user's ACL)", p->cfg.sub_filter,
                    rc < MQIM_V5_RC_UNSPECIFIED_ERROR ? "granted QoS 0, QoS 1 is needed" : mqim_v5_reason_str(rc));
            return MQIM_CONNACK_REFUSED;
        }
    }
    if (pk->sub_count != 1u) {
        set_err(err, err_len, "SUBACK with %zu reason codes for one filter", pk->sub_count);
        return MQIM_MQTT_PROTOCOL;
    }
    p->subscribed = true;
    return MQIM_OK;
}

/* An inbound PUBLISH: on_publish first, the PUBACK only once it took it. */
static mqim_status_t handle_publish(mqim_conn_t *p, const mqim_v5_packet_t *pk, char *err,
                                    size_t err_len)
{
    mqim_status_t st;
    size_t n = 0;
    if (p->cfg.on_publish == NULL) {
        set_err(err, err_len, "PUBLISH on a connection that subscribes to nothing");
        return MQIM_MQTT_PROTOCOL;
    }
    if (pk->qos > 0 && !out_room(p, 4u)) {
        return MQIM_INFLIGHT_FULL; /* no room for its PUBACK yet: again after a write */
    }
    st = p->cfg.on_publish(p->cfg.on_publish_ctx, pk);
    if (st == MQIM_INFLIGHT_FULL) {
        return st;
    }
    if (st != MQIM_OK) {
        set_err(err, err_len, "inbound publish to %.*s not taken (%s): not acknowledged; the broker "
                "sends it again on the resumed session", (int)(pk->topic.len > 200u ? 200u : pk->topic.len),
                pk->topic.ptr, mqim_status_str(st));
        return st;
    }
    if (pk->qos > 0) {
        (void)mqim_v5_puback_encode(pk->packet_id, p->out + p->out_end, p->out_cap - p->out_end, &n);
        p->out_end += n;
    }
    return MQIM_OK;
}

static mqim_status_t handle_packet(mqim_conn_t *p, const mqim_v5_packet_t *pk, int64_t now_ms,
                                   mqim_conn_done_fn done, void *ctx, char *err, size_t err_len)
{
    switch (pk->type) {
    case MQIM_V5_PUBACK:
        return handle_puback(p, pk, now_ms, done, ctx, err, err_len);
    case MQIM_V5_PUBLISH:
        return handle_publish(p, pk, err, err_len);
    case MQIM_V5_SUBACK:
        return handle_suback(p, pk, err, err_len);
    case MQIM_V5_PINGRESP:
        p->ping_sent_ms = 0;
        return MQIM_OK;
    case MQIM_V5_DISCONNECT:
        set_err(err, err_len, "the broker disconnected %s: %s%s%.*s", p->cfg.client_id,
                mqim_v5_reason_str(pk->reason), pk->reason_string.len > 0u ? ": " : "",
                (int)pk->reason_string.len, pk->reason_string.ptr != NULL ? pk->reason_string.ptr : "");
        return MQIM_TRANSPORT_ERROR;
    default: /* a second CONNACK */
        set_err(err, err_len, "unexpected packet type %d from the broker", pk->type);
        return MQIM_MQTT_PROTOCOL;
    }
}

/* Handle every complete packet in the input buffer (until on_publish says
 * not now), then drop what was handled. */
static mqim_status_t handle_input(mqim_conn_t *p, int64_t now_ms, mqim_conn_done_fn done, void *ctx,
                                  char *err, size_t err_len)
{
    size_t pos = 0;
    mqim_status_t st = MQIM_OK;
    p->paused = false;
    while (st == MQIM_OK) {
        mqim_v5_packet_t pk;
        size_t used = 0;
        st = decode_one(p, p->in + pos, p->in_len - pos, &pk, &used);
        if (st == MQIM_MQTT_NEED_MORE) {
            st = MQIM_OK;
            break;
        }
        if (st != MQIM_OK) {
            set_err(err, err_len, "malformed packet from the broker: %s (%s)", mqim_status_name(st),
                    mqim_status_str(st));
            break;
        }
        st = handle_packet(p, &pk, now_ms, done, ctx, err, err_len);
        if (st == MQIM_INFLIGHT_FULL) {
            p->paused = true; /* this packet stays: offered again at the next service */
            st = MQIM_OK;
            break;
        }
        pos += used;
    }
    if (pos > 0u) {
        memmove(p->in, p->in + pos, p->in_len - pos);
        p->in_len -= pos;
    }
    return st;
}

/* Room for a packet larger than the input buffer (up to max_in): the
 * decoder has already refused anything larger. */
static bool grow_input(mqim_conn_t *p)
{
    size_t cap = p->in_cap * 2u;
    uint8_t *b;
    if (p->in_len < p->in_cap || p->in_cap >= p->max_in + 8u) {
        return true;
    }
    if (cap > p->max_in + 8u) {
        cap = p->max_in + 8u;
    }
    b = realloc(p->in, cap);
    if (b == NULL) {
        return false;
    }
    p->in = b;
    p->in_cap = cap;
    return true;
}

/* Read and handle until the socket has nothing more (or on_publish says
 * not now). */
static mqim_status_t read_input(mqim_conn_t *p, int64_t now_ms, mqim_conn_done_fn done, void *ctx,
                                char *err, size_t err_len)
{
    mqim_status_t st = handle_input(p, now_ms, done, ctx, err, err_len); /* what waited */
    while (st == MQIM_OK && !p->paused) {
        ssize_t r;
        if (!grow_input(p)) {
            set_err(err, err_len, "out of memory for a packet from the broker");
            return MQIM_TRANSPORT_ERROR;
        }
        r = read_some(p);
        if (r < 0) {
            set_err(err, err_len, "connection to %s:%d closed", p->cfg.host, p->cfg.port);
            return MQIM_TRANSPORT_ERROR;
        }
        if (r == 0) {
            break;
        }
        p->last_in_ms = now_ms;
        st = handle_input(p, now_ms, done, ctx, err, err_len);
    }
    return st;
}

/* PINGREQ when due; a dead peer is MQIM_TIMEOUT. */
static mqim_status_t keep_alive(mqim_conn_t *p, int64_t now_ms, char *err, size_t err_len)
{
    int64_t ka = (int64_t)p->keepalive_s * 1000;
    if (p->keepalive_s == 0u) {
        return MQIM_OK;
    }
    if (p->ping_sent_ms != 0 && now_ms - p->ping_sent_ms >= ka) {
        set_err(err, err_len, "no PINGRESP from %s:%d within %u s", p->cfg.host, p->cfg.port,
                p->keepalive_s);
        return MQIM_TIMEOUT;
    }
    /* A dead peer under load: PUBACKs stop and the socket fills, so no
     * PINGREQ gets out either. */
    if (p->ack_wait_since_ms != 0 && now_ms - p->ack_wait_since_ms >= ka + ka / 2) {
        set_err(err, err_len, "no PUBACK from %s:%d for %u s with %u publishes in flight",
                p->cfg.host, p->cfg.port, (unsigned)((now_ms - p->ack_wait_since_ms) / 1000),
                p->inflight);
        return MQIM_TIMEOUT;
    }
    /* The broker drops a client that sends nothing for 1.5 keep-alive
     * intervals; a PINGREQ after half of one leaves a whole interval of
     * margin for a busy pump or a slow link. And when only QoS 0
     * publishes go out (the stats), which nothing answers, a PINGREQ
     * once per interval without a packet received: a dead peer is
     * found while idle too. */
    if (p->ping_sent_ms == 0 && (now_ms - p->last_out_ms >= ka / 2 || now_ms - p->last_in_ms >= ka) &&
        out_room(p, 2u)) {
        size_t n = 0;
        (void)mqim_v5_pingreq_encode(p->out + p->out_end, p->out_cap - p->out_end, &n);
        p->out_end += n;
        p->ping_sent_ms = now_ms;
    }
    return MQIM_OK;
}

mqim_status_t mqim_conn_service(mqim_conn_t *p, int64_t now_ms, mqim_conn_done_fn done, void *ctx,
                               char *err, size_t err_len)
{
    mqim_status_t st;
    if (p == NULL || !p->connected) {
        set_err(err, err_len, "not connected");
        return MQIM_TRANSPORT_ERROR;
    }
    st = read_input(p, now_ms, done, ctx, err, err_len);
    if (st != MQIM_OK) {
        /* what on_publish took before the failure is acknowledged all the
         * same (best effort), so the broker does not send it again */
        char ignored[8];
        (void)flush_out(p, now_ms, ignored, sizeof(ignored));
        return st;
    }
    /* the PUBACKs of what on_publish took leave here, after it returned */
    st = flush_out(p, now_ms, err, err_len);
    if (st != MQIM_OK) {
        return st;
    }
    if (p->inflight > 0u && p->ack_wait_since_ms == 0) {
        p->ack_wait_since_ms = now_ms; /* the first publish after nothing was waiting */
    }
    st = keep_alive(p, now_ms, err, err_len);
    if (st != MQIM_OK) {
        return st;
    }
    return flush_out(p, now_ms, err, err_len);
}
