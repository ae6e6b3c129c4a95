/* Paho glue and outbox pump (see mqtt.h). */
#include "mqtt.h"

#include <MQTTAsync.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <signal.h>
#include <sys/random.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "inbound.h"
#include "log.h"
#include "mqim/json_write.h"
#include "mqim/limits.h"
#include "mqim/topic.h"
#include "notify.h"
#include "publisher.h"
#include "router.h"
#include "store.h"

#define LOG_MOD "mqtt"
#define SWEEP_INTERVAL_MS 60000
#define SHUTDOWN_DRAIN_MS 5000
#define INBOUND_BATCH_MAX 256u /* publishes per group commit at most */
#define DONE_INITIAL 4096u     /* room for acknowledged outbox keys per pump round (grows) */
#define DIRECT_MAX_BYTES (64u << 20) /* QoS 0 direct publishes waiting, at most */
#define DIRECT_KEY UINT64_MAX  /* the publisher's key of a direct publish: no outbox entry */

/* A publish that is not an outbox entry (publish_now), waiting for the pump. */
typedef struct direct {
    struct direct *next;
    size_t size; /* of this allocation */
    int qos;
    bool retain;
    size_t topic_len, payload_len, corr_len;
    char data[]; /* topic, payload, correlation data */
} direct_t;

typedef struct gw {
    const mqim_gw_config_t *cfg;
    const mqim_gateway_reload_t *reload; /* NULL: SIGHUP is not handled */
    mqim_store_t *store;
    mqim_router_t *router;
    mqim_inbound_q_t *inq; /* journal + group-commit worker: owns the router */
    mqim_router_config_t rcfg;
    MQTTAsync client;
    char uri[300];
    char status_topic[MQIM_TOPIC_MAX + 1];
    char stats_topic[MQIM_TOPIC_MAX + 1];
    char sub_filter[MQIM_TOPIC_MAX + 1];
    /* This run's identity in the status (docs/protocol.md, "Store epochs"):
     * the store's id and epoch, a random instance nonce, where it runs. */
    char instance[33];
    char host[65];
    char boot_id[40];
    char offline[384]; /* the will */

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;
    bool connected;
    bool connecting;    /* a connect attempt is under way */
    /* Paho 1.3.12 can free memory its send thread still reads when the link
     * drops under heavy publishing (like eclipse-paho/paho.mqtt.c#1483):
     * nothing is handed to Paho from the connection-lost callback until the
     * next successful connect (link_up), every call into the client counts
     * itself (calls), and the pump then destroys the client and makes a new
     * one (lost), so no command, retry or in-flight state of the old
     * connection survives into the new one. */
    bool link_up;       /* sends allowed: connected and not lost since */
    bool lost;          /* the connection was lost: the pump recreates the client */
    unsigned calls;     /* calls into the Paho client under way outside the pump */
    uint64_t reconnects;
    int connect_failures;
    bool ssl_error_seen; /* OpenSSL explained the last failed attempt */
    uint64_t handled, rejected;

    /* The outbox goes out on a second connection of the gateway's own
     * (publisher.h), owned by the pump thread alone: no lock. */
    mqim_pub_t *pub;
    char pub_client_id[sizeof(((mqim_gw_config_t *)0)->client_id) + 8];
    int wake_fd;        /* eventfd: other threads wake the pump's poll() */

    /* publish_now's queue (under mu): any thread adds, the pump sends */
    direct_t *direct_head, *direct_tail;
    size_t direct_bytes;
    uint64_t direct_dropped;
    int64_t direct_drop_logged;
} gw_t;

/* The pump's own state (its thread only). */
typedef struct pump_state {
    gw_t *g;
    uint64_t *done;     /* outbox keys the broker took, to delete in bulk */
    size_t ndone, done_cap;
    uint64_t resend_from; /* UINT64_MAX: nothing to send again */
    int64_t resend_at;
} pump_state_t;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Enter a call into the Paho client from any thread: false when the link is
 * down (the pump may be replacing the client). Pair with client_leave. */
static bool client_enter(gw_t *g)
{
    bool ok;
    pthread_mutex_lock(&g->mu);
    ok = g->link_up;
    if (ok) {
        g->calls++;
    }
    pthread_mutex_unlock(&g->mu);
    return ok;
}

static void client_leave(gw_t *g)
{
    pthread_mutex_lock(&g->mu);
    g->calls--;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

/* Wake the pump out of its poll(): from Paho's threads and the inbound
 * worker. An eventfd write never blocks short of 2^64 - 2 pending wakes. */
static void wake(gw_t *g)
{
    uint64_t one = 1;
    ssize_t n = write(g->wake_fd, &one, sizeof(one));
    (void)n;
}

/* ---- inbound ---- */

static mqim_str_t prop_data(MQTTProperties *props, enum MQTTPropertyCodes code)
{
    MQTTProperty *p = MQTTProperties_getProperty(props, code);
    if (p == NULL) {
        return (mqim_str_t){ NULL, 0 };
    }
    return (mqim_str_t){ p->value.data.data, (size_t)p->value.data.len };
}

/* After each group commit (the inbound worker's thread). */
static void on_batch_done(void *ctx, size_t n, size_t not_ok)
{
    gw_t *g = ctx;
    pthread_mutex_lock(&g->mu);
    g->handled += n;
    g->rejected += not_ok;
    pthread_mutex_unlock(&g->mu);
    wake(g); /* new outbox entries were committed */
}

static int on_message(void *context, char *topic, int topic_len, MQTTAsync_message *m)
{
    gw_t *g = context;
    mqim_inbound_t in;
    in.topic = (mqim_str_t){ topic, topic_len > 0 ? (size_t)topic_len : strlen(topic) };
    in.payload = (mqim_str_t){ m->payload, m->payloadlen > 0 ? (size_t)m->payloadlen : 0u };
    in.qos = m->qos;
    in.retained = m->retained != 0;
    in.response_topic = prop_data(&m->properties, MQTTPROPERTY_CODE_RESPONSE_TOPIC);
    in.correlation = prop_data(&m->properties, MQTTPROPERTY_CODE_CORRELATION_DATA);
    /* Paho sends the PUBACK when this returns. The publish is in the inbound
     * journal by then (survives a kill); the worker routes it with others in
     * one synced commit, and every ack it causes is published after that
     * commit (inbound.h, docs/architecture.md "Group commit"). */
    if (!mqim_inbound_put(g->inq, &in, now_ms())) {
        /* not queued: returning 0 keeps the PUBACK back and makes Paho call
         * again with the same message, which must then still be ours */
        return 0;
    }
    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    return 1;
}

/* Ephemeral publishes, last-resort rejections, file reads, the gateway's
 * status and stats: not outbox entries. Any thread queues them (copied) for
 * the pump, which sends them on the publisher ahead of the outbox. (Paho
 * carried them before: its queue holds at most maxBufferedMessages, and a
 * flood of QoS 0 requests, whose answers all go this way, overflowed it
 * and lost answers.) Bounded in bytes: past DIRECT_MAX_BYTES a QoS 0
 * publish is dropped (counted, and logged once a second at most); QoS 1
 * ones are always queued (few, and each answers something). */
static void publish_now(void *ctx, const mqim_outbound_t *o)
{
    gw_t *g = ctx;
    direct_t *d;
    size_t size = sizeof(*d) + o->topic.len + o->payload.len + o->correlation.len;
    bool drop;
    if (o->topic.len == 0u || o->topic.len > MQIM_TOPIC_MAX) {
        return;
    }
    pthread_mutex_lock(&g->mu);
    drop = o->qos == 0 && g->direct_bytes + size > DIRECT_MAX_BYTES;
    if (drop) {
        int64_t t = now_ms();
        g->direct_dropped++;
        if (t - g->direct_drop_logged >= 1000) {
            g->direct_drop_logged = t;
            MQIM_LOGW(LOG_MOD, "%" PRIu64 " QoS 0 publishes dropped so far: more than %u bytes wait "
                      "for the broker", g->direct_dropped, (unsigned)DIRECT_MAX_BYTES);
        }
    }
    pthread_mutex_unlock(&g->mu);
    if (drop) {
        return;
    }
    d = malloc(size);
    if (d == NULL) {
        MQIM_LOGW(LOG_MOD, "out of memory: direct publish to %.*s dropped", (int)o->topic.len,
                  o->topic.ptr);
        return;
    }
    d->next = NULL;
    d->size = size;
    d->qos = o->qos;
    d->retain = o->retain;
    d->topic_len = o->topic.len;
    d->payload_len = o->payload.len;
    d->corr_len = o->correlation.len;
    memcpy(d->data, o->topic.ptr, o->topic.len);
    if (o->payload.len > 0u) {
        memcpy(d->data + o->topic.len, o->payload.ptr, o->payload.len);
    }
    if (o->correlation.len > 0u) {
        memcpy(d->data + o->topic.len + o->payload.len, o->correlation.ptr, o->correlation.len);
    }
    pthread_mutex_lock(&g->mu);
    if (g->direct_tail != NULL) {
        g->direct_tail->next = d;
    } else {
        g->direct_head = d;
    }
    g->direct_tail = d;
    g->direct_bytes += size;
    pthread_mutex_unlock(&g->mu);
    wake(g);
}

/* ---- connection ---- */

/* {"state":S,"ts":T,"store":ID,"store_epoch":E,"instance":N,"host":H,"boot":B,"pid":P}:
 * "state" first (devices match the prefix {"state":"online"). */
static int status_payload(const gw_t *g, const char *state, bool with_ts, char *buf, size_t cap)
{
    const mqim_store_identity_t *id = mqim_store_identity(g->store);
    char ts[40] = "";
    int n;
    if (with_ts) {
        snprintf(ts, sizeof(ts), ",\"ts\":%" PRId64, now_ms());
    }
    n = snprintf(buf, cap,
                 "{\"state\":\"%s\"%s,\"store\":\"%s\",\"store_epoch\":%" PRIu64
                 ",\"instance\":\"%s\",\"host\":\"%s\",\"boot\":\"%s\",\"pid\":%ld}",
                 state, ts, id->id, id->epoch, g->instance, g->host, g->boot_id, (long)getpid());
    return n > 0 && (size_t)n < cap ? n : 0;
}

static void publish_gateway_status(gw_t *g, const char *state)
{
    char buf[512];
    int n = status_payload(g, state, true, buf, sizeof(buf));
    mqim_outbound_t o = { mqim_str_from_cstr(g->status_topic), { buf, (size_t)n }, 1, true,
                          { NULL, 0 } };
    publish_now(g, &o);
}

static void on_subscribed(void *context, MQTTAsync_successData5 *response)
{
    gw_t *g = context;
    if (response != NULL && response->reasonCode >= MQTTREASONCODE_UNSPECIFIED_ERROR) {
        MQIM_LOGE(LOG_MOD, "subscription to %s refused (reason %d): check the ACL file",
                  g->sub_filter, response->reasonCode);
        return;
    }
    MQIM_LOGI(LOG_MOD, "subscribed to %s", g->sub_filter);
    /* Routing from here on: systemd may start what comes After= us. Again
     * after a reconnect, which systemd takes as a no-op. */
    mqim_notify("READY=1\nSTATUS=connected and routing");
}

static void on_subscribe_failed(void *context, MQTTAsync_failureData5 *response)
{
    gw_t *g = context;
    MQIM_LOGE(LOG_MOD, "subscribe to %s failed (%d)", g->sub_filter,
              response != NULL ? response->code : 0);
}

/* Paho sets no TCP_NODELAY, and Nagle's algorithm then holds each small
 * publish (acks, deliveries) until the broker's delayed ACK: tens of ms per
 * round on loopback (docs/benchmarks.md). Paho does not expose its socket,
 * so set the option on this process's TCP sockets connected to the broker's
 * port (the gateway has one MQTT connection). */
static void nodelay_to_broker(const gw_t *g)
{
    for (int fd = 3; fd < 4096; fd++) {
        struct sockaddr_storage a;
        socklen_t len = sizeof(a);
        int one = 1;
        in_port_t p = 0;
        if (getpeername(fd, (struct sockaddr *)&a, &len) != 0) {
            continue;
        }
        if (a.ss_family == AF_INET) {
            p = ((struct sockaddr_in *)&a)->sin_port;
        } else if (a.ss_family == AF_INET6) {
            p = ((struct sockaddr_in6 *)&a)->sin6_port;
        }
        if (p != 0 && ntohs(p) == g->cfg->broker_port) {
            (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
    }
}

/* Called on the first connect and on every automatic reconnect. */
static void on_connected(void *context, char *cause)
{
    gw_t *g = context;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    int rc;
    (void)cause;
    nodelay_to_broker(g);
    pthread_mutex_lock(&g->mu);
    g->connected = true;
    g->connecting = false;
    g->connect_failures = 0;
    g->link_up = !g->lost;
    pthread_mutex_unlock(&g->mu);
    wake(g);
    MQIM_LOGI(LOG_MOD, "connected to %s as %s", g->uri, g->cfg->client_id);
    if (!client_enter(g)) {
        return; /* lost again already */
    }

    /* QoS 1, not 2: with no client-side persistence, Paho would lose a QoS 2
     * message taken between PUBREC and PUBREL by a crash. QoS 1 plus (from,
     * id) dedupe gives exactly-once storage for enveloped messages.
     * retainHandling 1: retained statuses only when the subscription is new,
     * not again on every reconnect of the persistent session. */
    ro.onSuccess5 = on_subscribed;
    ro.onFailure5 = on_subscribe_failed;
    ro.context = g;
    ro.subscribeOptions.retainHandling = 1;
    rc = MQTTAsync_subscribe(g->client, g->sub_filter, 1, &ro);
    client_leave(g);
    if (rc != MQTTASYNC_SUCCESS) {
        MQIM_LOGE(LOG_MOD, "subscribe call failed (%d)", rc);
    }
    /* Devices replay what they have not seen confirmed when they see this
     * (docs/reliability.md): a publish Paho acknowledged before the router
     * committed it is sent again. */
    publish_gateway_status(g, "online");
}

static void on_connection_lost(void *context, char *cause)
{
    gw_t *g = context;
    pthread_mutex_lock(&g->mu);
    g->connected = false;
    g->link_up = false; /* from here on nothing more is handed to this client */
    g->lost = true;     /* the pump replaces it and reconnects */
    pthread_mutex_unlock(&g->mu);
    wake(g);
    MQIM_LOGW(LOG_MOD, "connection to %s lost (%s); reconnecting", g->uri,
              cause != NULL ? cause : "no reason given");
}

static void on_connect_failed(void *context, MQTTAsync_failureData5 *response)
{
    gw_t *g = context;
    bool explained;
    pthread_mutex_lock(&g->mu);
    g->connecting = false;
    g->connect_failures++;
    explained = g->ssl_error_seen;
    g->ssl_error_seen = false;
    pthread_mutex_unlock(&g->mu);
    wake(g);
    if (g->cfg->broker_tls && !explained &&
        (response == NULL || response->reasonCode == MQTTREASONCODE_SUCCESS)) {
        /* Paho checks the host name after the handshake and says nothing
         * about it, and OpenSSL had no complaint: name the two causes. */
        MQIM_LOGE(LOG_MOD, "cannot connect to broker %s: %s (nothing listens there, or the broker's "
                  "certificate does not name '%s': broker_host must be a name or address the "
                  "certificate lists)", g->uri,
                  response != NULL && response->message != NULL ? response->message : "unreachable",
                  g->cfg->broker_host);
        return;
    }
    if (response != NULL && response->reasonCode != MQTTREASONCODE_SUCCESS) {
        MQIM_LOGE(LOG_MOD, "broker %s refused the connection: %s", g->uri,
                  MQTTReasonCode_toString(response->reasonCode));
    } else {
        MQIM_LOGE(LOG_MOD, "cannot connect to broker %s: %s", g->uri,
                  response != NULL && response->message != NULL ? response->message
                                                                : "unreachable");
    }
}

/* The reason of an OpenSSL error line, "PID:error:CODE:LIB:FUNC:REASON:FILE:LINE:"
 * (OpenSSL 3); the whole line when it has another form. */
static void ssl_reason(const char *str, size_t len, const char **out, size_t *out_len)
{
    const char *p = str, *end = str + len;
    unsigned field = 0;
    *out = str;
    *out_len = len;
    while (p < end && field < 5u) {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        if (colon == NULL) {
            return;
        }
        p = colon + 1;
        field++;
    }
    if (field == 5u) {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        *out = p;
        *out_len = colon != NULL ? (size_t)(colon - p) : (size_t)(end - p);
    }
}

/* OpenSSL's reasons (certificate verify failed, unknown ca, ...) arrive
 * here during the handshake; Paho's own failure message says only "TCP/TLS
 * connect failure". Logged as errors: a TLS failure is a configuration
 * problem far more often than a network one. */
static int on_ssl_error(const char *str, size_t len, void *u)
{
    gw_t *g = u;
    const char *reason;
    size_t reason_len;
    while (len > 0u && (str[len - 1u] == '\n' || str[len - 1u] == '\r')) {
        len--;
    }
    ssl_reason(str, len, &reason, &reason_len);
    pthread_mutex_lock(&g->mu);
    g->ssl_error_seen = true;
    pthread_mutex_unlock(&g->mu);
    MQIM_LOGE(LOG_MOD, "TLS with %s: %.*s (broker_cafile %s)", g->uri, (int)reason_len, reason,
              g->cfg->broker_cafile[0] != '\0' ? g->cfg->broker_cafile : "(system CAs)");
    return 0;
}

/* TLS settings: the broker must present a certificate that chains to
 * broker_cafile (or a system CA) and names broker_host; Paho checks both
 * (enableServerCertAuth, verify). TLS 1.2 or newer: older versions are
 * broken, and Mosquitto 2.0 offers 1.2 and 1.3. */
static void fill_ssl_options(gw_t *g, MQTTAsync_SSLOptions *ssl)
{
    const mqim_gw_config_t *cfg = g->cfg;
    ssl->enableServerCertAuth = 1;
    ssl->verify = 1;
    ssl->sslVersion = MQTT_SSL_VERSION_TLS_1_2;
    ssl->trustStore = cfg->broker_cafile[0] != '\0' ? cfg->broker_cafile : NULL;
    ssl->keyStore = cfg->broker_certfile[0] != '\0' ? cfg->broker_certfile : NULL;
    ssl->privateKey = cfg->broker_keyfile[0] != '\0' ? cfg->broker_keyfile : NULL;
    ssl->ssl_error_cb = on_ssl_error;
    ssl->ssl_error_context = g;
}

static int start_connect(gw_t *g)
{
    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer5;
    MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
    MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
    MQTTProperties props = MQTTProperties_initializer;
    MQTTProperty p;
    int rc;

    /* A persistent session that never expires: publishes made while the
     * gateway is down wait in the broker until it is back. */
    p.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL;
    p.value.integer4 = 0xFFFFFFFFu;
    MQTTProperties_add(&props, &p);
    co.cleanstart = 0;
    co.connectProperties = &props;
    co.keepAliveInterval = (int)g->cfg->keepalive_s;
    co.username = g->cfg->username;
    co.password = g->cfg->password[0] != '\0' ? g->cfg->password : NULL;
    co.automaticReconnect = 0; /* the pump reconnects, on a new client (see gw_t.lost) */
    co.onSuccess5 = NULL;
    co.onFailure5 = on_connect_failed;
    co.context = g;
    will.topicName = g->status_topic;
    will.message = g->offline;
    will.retained = 1;
    will.qos = 1;
    co.will = &will;
    if (g->cfg->broker_tls) {
        fill_ssl_options(g, &ssl);
        co.ssl = &ssl; /* Paho copies the options (and the strings) in MQTTAsync_connect */
    }
    pthread_mutex_lock(&g->mu);
    g->connecting = true;
    pthread_mutex_unlock(&g->mu);
    rc = MQTTAsync_connect(g->client, &co);
    MQTTProperties_free(&props);
    if (rc != MQTTASYNC_SUCCESS) {
        pthread_mutex_lock(&g->mu);
        g->connecting = false;
        g->connect_failures++;
        pthread_mutex_unlock(&g->mu);
        MQIM_LOGE(LOG_MOD, "connect call failed (%d)", rc);
    }
    return rc;
}

/* A Paho client for g->uri with the gateway's callbacks. */
static int make_client(gw_t *g)
{
    MQTTAsync_createOptions cro = MQTTAsync_createOptions_initializer5;
    int rc;
    /* Paho publishes only the offline status at shutdown now (the outbox
     * and direct publishes go out on the publisher); the default room. */
    cro.maxBufferedMessages = (int)g->cfg->max_inflight + 1000;
    rc = MQTTAsync_createWithOptions(&g->client, g->uri, g->cfg->client_id,
                                     MQTTCLIENT_PERSISTENCE_NONE, NULL, &cro);
    if (rc != MQTTASYNC_SUCCESS) {
        MQIM_LOGE(LOG_MOD, "cannot create the MQTT client for %s (%d)", g->uri, rc);
        return rc;
    }
    MQTTAsync_setCallbacks(g->client, g, on_connection_lost, on_message, NULL);
    MQTTAsync_setConnected(g->client, g, on_connected);
    return MQTTASYNC_SUCCESS;
}

/* After a lost connection: wait until no thread is inside a call into the
 * old client (none can start one: link_up is false), destroy it with
 * whatever it still held (queued direct publishes: ephemeral ones and
 * answers that are asked for again), and make a new one. */
static int replace_client(gw_t *g)
{
    int rc;
    pthread_mutex_lock(&g->mu);
    while (g->calls > 0u) {
        pthread_cond_wait(&g->cv, &g->mu);
    }
    pthread_mutex_unlock(&g->mu);
    MQTTAsync_destroy(&g->client);
    rc = make_client(g);
    pthread_mutex_lock(&g->mu);
    g->lost = false;
    g->connecting = false;
    g->reconnects++;
    pthread_mutex_unlock(&g->mu);
    return rc;
}

/* ---- pump ---- */

/* Hand what the broker took to the inbound worker, which deletes it inside
 * its next group commit (inbound.h: one LMDB writer on the hot path). */
static void delete_done(pump_state_t *ps)
{
    mqim_inbound_outbox_done(ps->g->inq, ps->done, ps->ndone);
    ps->ndone = 0;
}

/* The broker took outbox entry key (the publisher's PUBACK, or a QoS 0
 * write). Deleted in bulk later: a delete commit per ack took the LMDB
 * writer (and a data fsync) three times per routed message, away from the
 * inbound group commits; now the keys join those commits. */
static void on_pub_done(void *ctx, uint64_t key, uint8_t reason)
{
    pump_state_t *ps = ctx;
    if (key == DIRECT_KEY) {
        if (reason >= 0x80u) {
            MQIM_LOGW(LOG_MOD, "the broker refused a direct publish (%s)", mqim_v5_reason_str(reason));
        }
        return; /* not an outbox entry */
    }
    if (reason >= 0x80u) {
        if (reason == 0x97u || reason == 0x89u || reason == 0x80u) {
            /* quota exceeded, server busy, unspecified: try again shortly */
            if (key < ps->resend_from) {
                ps->resend_from = key;
                ps->resend_at = now_ms() + 1000;
            }
            return;
        }
        /* not authorized, topic invalid, too large...: sending it again
         * cannot succeed and would block nothing but repeat for ever */
        MQIM_LOGE(LOG_MOD, "the broker refused outbox entry %" PRIu64 " (%s): dropped; check the "
                  "gateway user's ACL", key, mqim_v5_reason_str(reason));
    }
    if (ps->ndone == ps->done_cap) {
        size_t cap = ps->done_cap * 2u;
        uint64_t *d = realloc(ps->done, cap * sizeof(uint64_t));
        if (d == NULL) {
            return; /* not deleted now: sent again after the next reconnect; harmless */
        }
        ps->done = d;
        ps->done_cap = cap;
    }
    ps->done[ps->ndone++] = key;
}

/* Queue outbox entries from *next while the window and the output buffer
 * have room; the pump writes them with one send. True when every entry
 * has been queued (the outbox has nothing past *next). */
static bool fill_window(pump_state_t *ps, uint64_t *next)
{
    gw_t *g = ps->g;
    mqim_txn_t txn;
    bool at_end = false;
    if (mqim_txn_begin(g->store, MQIM_TXN_READ, &txn) != MQIM_OK) {
        return false;
    }
    for (;;) {
        mqim_outbox_rec_t rec;
        mqim_v5_publish_t m;
        mqim_status_t st;
        if (mqim_store_outbox_next(&txn, *next, &rec) != MQIM_OK) {
            at_end = true;
            break;
        }
        if (mqim_pub_room(g->pub) == 0u) {
            break;
        }
        m.topic = rec.topic;
        m.payload = rec.payload;
        m.correlation = rec.corr;
        m.qos = rec.qos;
        m.retain = rec.retain;
        m.packet_id = 0;
        st = mqim_pub_publish(g->pub, rec.key, &m, on_pub_done, ps);
        if (st == MQIM_INFLIGHT_FULL || st == MQIM_BUFFER_TOO_SMALL) {
            break; /* again after PUBACKs or a write */
        }
        if (st != MQIM_OK) {
            /* never sendable (empty topic, larger than the broker takes):
             * say so and drop it instead of blocking the outbox behind it */
            MQIM_LOGE(LOG_MOD, "outbox entry %" PRIu64 " to %.*s cannot be published (%s): dropped",
                      rec.key, (int)rec.topic.len, rec.topic.ptr, mqim_status_str(st));
            on_pub_done(ps, rec.key, 0u);
        }
        *next = rec.key + 1u;
    }
    mqim_txn_abort(&txn);
    return at_end;
}

/* Send what publish_now queued, in order, while the publisher takes it. */
static void send_direct(gw_t *g, pump_state_t *ps)
{
    direct_t *d, *rest;
    pthread_mutex_lock(&g->mu);
    d = g->direct_head;
    g->direct_head = g->direct_tail = NULL;
    pthread_mutex_unlock(&g->mu);
    while (d != NULL) {
        mqim_v5_publish_t m;
        mqim_status_t st;
        m.topic = (mqim_str_t){ d->data, d->topic_len };
        m.payload = (mqim_str_t){ d->data + d->topic_len, d->payload_len };
        m.correlation = (mqim_str_t){ d->data + d->topic_len + d->payload_len, d->corr_len };
        m.qos = d->qos;
        m.retain = d->retain;
        m.packet_id = 0;
        st = mqim_pub_publish(g->pub, DIRECT_KEY, &m, on_pub_done, ps);
        if (st == MQIM_INFLIGHT_FULL || st == MQIM_BUFFER_TOO_SMALL) {
            break; /* the rest waits for PUBACKs or a write */
        }
        if (st != MQIM_OK) {
            MQIM_LOGW(LOG_MOD, "direct publish to %.*s cannot be sent (%s)", (int)d->topic_len, d->data,
                      mqim_status_str(st));
        }
        rest = d->next;
        pthread_mutex_lock(&g->mu);
        g->direct_bytes -= d->size;
        pthread_mutex_unlock(&g->mu);
        free(d);
        d = rest;
    }
    if (d != NULL) { /* put the unsent back in front of what came meanwhile */
        direct_t *last = d;
        while (last->next != NULL) {
            last = last->next;
        }
        pthread_mutex_lock(&g->mu);
        last->next = g->direct_head;
        if (g->direct_head == NULL) {
            g->direct_tail = last;
        }
        g->direct_head = d;
        pthread_mutex_unlock(&g->mu);
    }
}

static void free_direct(gw_t *g)
{
    direct_t *d = g->direct_head;
    while (d != NULL) {
        direct_t *next = d->next;
        free(d);
        d = next;
    }
    g->direct_head = g->direct_tail = NULL;
    g->direct_bytes = 0;
}

/* Connect the publisher; false (logged) when it failed. */
static bool pub_connect(gw_t *g, int64_t t)
{
    char err[512];
    mqim_status_t st = mqim_pub_connect(g->pub, 5000, t, err, sizeof(err));
    if (st != MQIM_OK) {
        MQIM_LOGE(LOG_MOD, "outbox publisher: %s", err);
        return false;
    }
    MQIM_LOGI(LOG_MOD, "outbox publisher connected to %s as %s", g->uri, g->pub_client_id);
    return true;
}

static void publish_stats(gw_t *g)
{
    mqim_txn_t txn;
    mqim_store_stats_t s;
    char buf[512];
    mqim_json_writer_t w;
    size_t len = 0;
    uint64_t handled, rejected, commits, batched;
    if (mqim_txn_begin(g->store, MQIM_TXN_READ, &txn) != MQIM_OK) {
        return;
    }
    (void)mqim_store_stats(&txn, &s);
    commits = mqim_store_counter_get(&txn, "commits"); /* group commits of inbound publishes */
    batched = mqim_store_counter_get(&txn, "batched");
    mqim_txn_abort(&txn);
    pthread_mutex_lock(&g->mu);
    handled = g->handled;
    rejected = g->rejected;
    pthread_mutex_unlock(&g->mu);
    mqim_json_init(&w, buf, sizeof(buf));
    mqim_json_object_begin(&w);
    mqim_json_key_u64(&w, "users", s.users);
    mqim_json_key_u64(&w, "messages", s.messages);
    mqim_json_key_u64(&w, "outbox", s.outbox);
    mqim_json_key_u64(&w, "handled", handled);
    mqim_json_key_u64(&w, "not_ok", rejected);
    mqim_json_key_u64(&w, "commits", commits);
    mqim_json_key_u64(&w, "batched", batched);
    mqim_json_key_u64(&w, "map_used", s.map_used_bytes);
    mqim_json_key_u64(&w, "map_size", s.map_size_bytes);
    mqim_json_key_i64(&w, "ts", now_ms());
    mqim_json_object_end(&w);
    if (mqim_json_finish(&w, &len) == MQIM_OK) {
        mqim_outbound_t o = { mqim_str_from_cstr(g->stats_topic), { buf, len }, 0, true,
                              { NULL, 0 } };
        publish_now(g, &o);
    }
}

/* SIGHUP: what main's apply() reloaded into the config, then the router's
 * rate limits (read by the inbound thread: atomics, see ratelimit.h). */
static void reload_config(gw_t *g)
{
    mqim_notify_reloading();
    if (g->reload->apply(g->reload->ctx) == 0) {
        mqim_router_set_rate_limits(g->router, g->cfg->rate_per_sec, g->cfg->rate_burst,
                                    g->cfg->file_rate_per_sec, g->cfg->file_rate_burst);
    }
    mqim_notify("READY=1");
}

static void pump(gw_t *g, volatile sig_atomic_t *stop)
{
    pump_state_t ps;
    uint64_t next = 0;
    int64_t last_sweep = now_ms(), last_stats = 0, retry_at = 0, drain_until = 0, pub_retry_at = 0;
    unsigned backoff_s = 1, pub_backoff_s = 1;
    /* A pump loop that stops turning (a deadlock, a stuck commit the
     * publisher waits on) stops the pings, and systemd restarts us. */
    const int64_t watchdog_ms = mqim_notify_watchdog_interval_ms();
    int64_t last_ping = 0;

    memset(&ps, 0, sizeof(ps));
    ps.g = g;
    ps.resend_from = UINT64_MAX;
    ps.done_cap = DONE_INITIAL;
    ps.done = calloc(ps.done_cap, sizeof(uint64_t));
    if (ps.done == NULL) {
        MQIM_LOGE(LOG_MOD, "out of memory starting the outbox pump");
    }
    while (ps.done != NULL) {
        struct pollfd fds[2];
        nfds_t nfds = 1;
        bool connected, connecting, lost, all_sent = false;
        int64_t t;

        fds[0].fd = g->wake_fd;
        fds[0].events = POLLIN;
        fds[0].revents = 0;
        if (mqim_pub_connected(g->pub)) {
            fds[1].fd = mqim_pub_fd(g->pub);
            fds[1].events = mqim_pub_poll_events(g->pub);
            fds[1].revents = 0;
            nfds = 2;
        }
        if (!*stop) {
            (void)poll(fds, nfds, 200);
        }
        mqim_notify_watchdog(watchdog_ms, &last_ping);
        if (g->reload != NULL && *g->reload->requested && !*stop) {
            *g->reload->requested = 0;
            reload_config(g);
        }
        if (fds[0].revents & POLLIN) {
            uint64_t n;
            ssize_t r = read(g->wake_fd, &n, sizeof(n));
            (void)r;
        }
        pthread_mutex_lock(&g->mu);
        connected = g->connected;
        connecting = g->connecting;
        lost = g->lost;
        pthread_mutex_unlock(&g->mu);

        t = now_ms();
        if (mqim_pub_connected(g->pub)) {
            char err[512];
            if (mqim_pub_service(g->pub, t, on_pub_done, &ps, err, sizeof(err)) != MQIM_OK) {
                MQIM_LOGW(LOG_MOD, "outbox publisher: %s; reconnecting", err);
                mqim_pub_close(g->pub, false);
            }
        }
        delete_done(&ps); /* the worker batches them (inbound.h) */
        if (lost) {
            if (replace_client(g) != MQTTASYNC_SUCCESS) {
                break; /* out of memory in Paho: stop, the outbox waits for the next start */
            }
            connected = false;
            connecting = false;
        }
        if (!connected && !connecting && !*stop && t >= retry_at) {
            /* The inbound connection (Paho): the first connect, and every
             * reconnect after a loss, on a new client (replace_client). */
            if (g->connect_failures > 0) {
                MQIM_LOGW(LOG_MOD, "broker %s unreachable; retrying in %u s", g->uri, backoff_s);
                retry_at = t + (int64_t)backoff_s * 1000;
                backoff_s = backoff_s < 30u ? backoff_s * 2u : 30u;
                pthread_mutex_lock(&g->mu);
                g->connect_failures = 0;
                pthread_mutex_unlock(&g->mu);
            } else if (!MQTTAsync_isConnected(g->client)) {
                (void)start_connect(g);
            }
        }
        if (connected) {
            backoff_s = 1;
        }
        if (!mqim_pub_connected(g->pub) && !*stop && t >= pub_retry_at) {
            if (pub_connect(g, t)) {
                /* whatever the old connection had in flight is sent again:
                 * the outbox is the truth, devices drop repeats by seq */
                next = 0;
                ps.resend_from = UINT64_MAX;
                pub_backoff_s = 1;
            } else {
                pub_retry_at = now_ms() + (int64_t)pub_backoff_s * 1000;
                pub_backoff_s = pub_backoff_s < 30u ? pub_backoff_s * 2u : 30u;
            }
        }
        if (ps.resend_from != UINT64_MAX && t >= ps.resend_at) {
            if (ps.resend_from < next) {
                next = ps.resend_from;
            }
            ps.resend_from = UINT64_MAX;
        }
        if (mqim_pub_connected(g->pub)) {
            char err[512];
            send_direct(g, &ps);
            all_sent = fill_window(&ps, &next);
            /* write what fill_window queued now, not after the next poll */
            if (mqim_pub_service(g->pub, t, on_pub_done, &ps, err, sizeof(err)) != MQIM_OK) {
                MQIM_LOGW(LOG_MOD, "outbox publisher: %s; reconnecting", err);
                mqim_pub_close(g->pub, false);
            }
        }
        if (t - last_sweep >= SWEEP_INTERVAL_MS) {
            uint64_t pruned = 0;
            last_sweep = t;
            if (mqim_router_sweep(g->store, &g->rcfg, t, &pruned) == MQIM_OK && pruned > 0u) {
                MQIM_LOGI(LOG_MOD, "retention removed %" PRIu64 " inbox entries", pruned);
            }
        }
        if (connected && g->cfg->stats_interval_s > 0u &&
            t - last_stats >= (int64_t)g->cfg->stats_interval_s * 1000) {
            last_stats = t;
            publish_stats(g);
        }
        if (*stop) {
            if (drain_until == 0) {
                drain_until = t + SHUTDOWN_DRAIN_MS;
                mqim_notify("STOPPING=1");
                MQIM_LOGI(LOG_MOD, "stopping: sending what is left in the outbox");
            }
            /* drained: every entry sent, written and acknowledged (the
             * worker deletes the last ones when it stops) */
            if (all_sent && mqim_pub_inflight(g->pub) == 0u &&
                (mqim_pub_poll_events(g->pub) & POLLOUT) == 0) {
                break;
            }
            if (!mqim_pub_connected(g->pub) || t >= drain_until) {
                mqim_txn_t txn;
                if (mqim_txn_begin(g->store, MQIM_TXN_READ, &txn) == MQIM_OK) {
                    MQIM_LOGW(LOG_MOD, "%" PRIu64 " outbox entries left; they are sent at the next start",
                              mqim_store_outbox_count(&txn));
                    mqim_txn_abort(&txn);
                }
                break;
            }
            /* wait for PUBACKs without spinning */
            if (mqim_pub_connected(g->pub)) {
                fds[1].fd = mqim_pub_fd(g->pub);
                fds[1].events = mqim_pub_poll_events(g->pub);
                (void)poll(&fds[1], 1, 50);
            }
        }
    }
    if (ps.done != NULL) {
        delete_done(&ps);
    }
    free(ps.done);
    mqim_pub_close(g->pub, true);
}

/* A TLS file that cannot be read is a configuration error, not a broker
 * that is down: say which file and stop, instead of retrying forever with
 * Paho's vague "TLS connect error". */
static int check_tls_files(const mqim_gw_config_t *cfg)
{
    static const struct { size_t offset; const char *key; } files[] = {
        { offsetof(mqim_gw_config_t, broker_cafile), "broker_cafile" },
        { offsetof(mqim_gw_config_t, broker_certfile), "broker_certfile" },
        { offsetof(mqim_gw_config_t, broker_keyfile), "broker_keyfile" },
    };
    if (!cfg->broker_tls) {
        return 0;
    }
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        const char *path = (const char *)cfg + files[i].offset;
        FILE *f;
        if (path[0] == '\0') {
            continue;
        }
        f = fopen(path, "r");
        if (f == NULL) {
            MQIM_LOGE(LOG_MOD, "%s %s: %s", files[i].key, path, strerror(errno));
            return -1;
        }
        fclose(f);
    }
    return 0;
}

static void free_io(gw_t *g)
{
    free_direct(g);
    mqim_pub_free(g->pub);
    g->pub = NULL;
    if (g->wake_fd >= 0) {
        close(g->wake_fd);
        g->wake_fd = -1;
    }
}

/* ---- one gateway per identity on the broker ---- */

#define PROBE_RECHECK_S 5

/* What the probe connection saw on the status topic. */
typedef struct probe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;   /* subscribed (a retained status comes before the SUBACK is handled), or failed */
    bool failed;
    char payload[1024];
    size_t len;
} probe_t;

static void probe_signal(probe_t *p, bool failed)
{
    pthread_mutex_lock(&p->mu);
    p->done = true;
    p->failed = failed;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static int probe_msg(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
    probe_t *p = ctx;
    (void)topic_len;
    pthread_mutex_lock(&p->mu);
    p->len = m->payloadlen > 0 && (size_t)m->payloadlen < sizeof(p->payload) ? (size_t)m->payloadlen : 0u;
    memcpy(p->payload, m->payload, p->len);
    p->payload[p->len] = '\0';
    pthread_mutex_unlock(&p->mu);
    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    return 1;
}

static void probe_subscribed(void *ctx, MQTTAsync_successData5 *r)
{
    probe_signal(ctx, r != NULL && r->reasonCode >= MQTTREASONCODE_UNSPECIFIED_ERROR);
}

static void probe_failed(void *ctx, MQTTAsync_failureData5 *r)
{
    (void)r;
    probe_signal(ctx, true);
}

/* A process of this host and boot with that pid that is an mqim-gateway. */
static bool local_gateway_alive(long pid)
{
    char path[64], comm[64] = "";
    FILE *f;
    if (pid <= 0 || pid == (long)getpid() || (kill((pid_t)pid, 0) != 0 && errno != EPERM)) {
        return false;
    }
    snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
    f = fopen(path, "r");
    if (f != NULL) {
        if (fgets(comm, sizeof(comm), f) == NULL) {
            comm[0] = '\0';
        }
        fclose(f);
    }
    return strncmp(comm, "mqim-gateway", 12) == 0;
}

/* The retained status says another instance is online: true with the
 * reason in why. A status of this host's current boot whose process is gone
 * is stale (a crash that took the broker's will with it), and so is one of
 * an earlier boot of this host (a power loss that took the broker down
 * before the will: its autosave kept the retained "online"); one from
 * another host cannot be checked from here and counts as live. */
static bool status_says_other(const gw_t *g, const char *payload, char *why, size_t cap)
{
    cJSON *o = cJSON_Parse(payload);
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(o, "state");
    const cJSON *inst = cJSON_GetObjectItemCaseSensitive(o, "instance");
    const cJSON *host = cJSON_GetObjectItemCaseSensitive(o, "host");
    const cJSON *boot = cJSON_GetObjectItemCaseSensitive(o, "boot");
    const cJSON *pid = cJSON_GetObjectItemCaseSensitive(o, "pid");
    const cJSON *store = cJSON_GetObjectItemCaseSensitive(o, "store");
    bool other = false;
    if (cJSON_IsString(state) && strcmp(state->valuestring, "online") == 0 && cJSON_IsString(inst) &&
        strcmp(inst->valuestring, g->instance) != 0 && cJSON_IsString(host) && cJSON_IsString(boot) &&
        cJSON_IsNumber(pid)) {
        bool this_host = strcmp(host->valuestring, g->host) == 0;
        bool this_boot = this_host && strcmp(boot->valuestring, g->boot_id) == 0;
        other = this_boot ? local_gateway_alive((long)pid->valuedouble) : !this_host;
        if (other) {
            const char *sid = cJSON_IsString(store) ? store->valuestring : "?";
            snprintf(why, cap, "another mqim-gateway is online on this broker under %s: pid %ld on host "
                     "%s, store %s%s", g->status_topic, (long)pid->valuedouble, host->valuestring, sid,
                     strcmp(sid, mqim_store_identity(g->store)->id) == 0
                         ? " (this store: a copy of its data directory)" : " (another store)");
        }
    }
    cJSON_Delete(o);
    return other;
}

/* Read the retained gateway status on a connection of its own. 1: another
 * instance is online (why says which), 0: none, -1: the broker could not be
 * asked (the gateway goes on: its own connection retries). */
static int probe_other_instance(gw_t *g, char *why, size_t cap)
{
    MQTTAsync c = NULL;
    MQTTAsync_createOptions cro = MQTTAsync_createOptions_initializer5;
    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer5;
    MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    char id[sizeof(g->cfg->client_id) + 8];
    probe_t p;
    struct timespec until;
    int result = -1;
    memset(&p, 0, sizeof(p));
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    snprintf(id, sizeof(id), "%s.probe", g->cfg->client_id);
    if (MQTTAsync_createWithOptions(&c, g->uri, id, MQTTCLIENT_PERSISTENCE_NONE, NULL, &cro) !=
        MQTTASYNC_SUCCESS) {
        goto out;
    }
    MQTTAsync_setCallbacks(c, &p, NULL, probe_msg, NULL);
    co.cleanstart = 1;
    co.keepAliveInterval = 20;
    co.username = g->cfg->username;
    co.password = g->cfg->password[0] != '\0' ? g->cfg->password : NULL;
    co.onFailure5 = probe_failed;
    co.context = &p;
    if (g->cfg->broker_tls) {
        fill_ssl_options(g, &ssl);
        co.ssl = &ssl;
    }
    if (MQTTAsync_connect(c, &co) != MQTTASYNC_SUCCESS) {
        goto out;
    }
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    while (!MQTTAsync_isConnected(c) && !p.done) {
        struct timespec ts = { 0, 20000000L };
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        if (now.tv_sec > until.tv_sec) {
            goto out;
        }
        nanosleep(&ts, NULL);
    }
    if (p.done) {
        goto out; /* the connect failed */
    }
    ro.onSuccess5 = probe_subscribed;
    ro.onFailure5 = probe_failed;
    ro.context = &p;
    if (MQTTAsync_subscribe(c, g->status_topic, 1, &ro) != MQTTASYNC_SUCCESS) {
        goto out;
    }
    pthread_mutex_lock(&p.mu);
    while (!p.done && pthread_cond_timedwait(&p.cv, &p.mu, &until) == 0) {
    }
    pthread_mutex_unlock(&p.mu);
    if (p.done && !p.failed) {
        /* the retained status is sent right after the SUBACK: a moment for it */
        struct timespec ts = { 0, 300000000L };
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&p.mu);
        result = p.len > 0u && status_says_other(g, p.payload, why, cap) ? 1 : 0;
        pthread_mutex_unlock(&p.mu);
    }
out:
    if (c != NULL) {
        MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer5;
        d.timeout = 1000;
        if (MQTTAsync_isConnected(c)) {
            (void)MQTTAsync_disconnect(c, &d);
            for (int i = 0; i < 20 && MQTTAsync_isConnected(c); i++) {
                struct timespec ts = { 0, 50000000L };
                nanosleep(&ts, NULL);
            }
        }
        MQTTAsync_destroy(&c);
    }
    pthread_cond_destroy(&p.cv);
    pthread_mutex_destroy(&p.mu);
    return result;
}

/* Where this run is, for the status: host name, boot id, a random instance. */
static void identity_init(gw_t *g)
{
    unsigned char r[16];
    FILE *f;
    static const char hex[] = "0123456789abcdef";
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        uint64_t t = (uint64_t)now_ms() ^ ((uint64_t)getpid() << 32);
        memcpy(r, &t, sizeof(t));
        memcpy(r + 8, &t, sizeof(t));
    }
    for (size_t i = 0; i < sizeof(r); i++) {
        g->instance[2u * i] = hex[r[i] >> 4];
        g->instance[2u * i + 1u] = hex[r[i] & 15u];
    }
    if (gethostname(g->host, sizeof(g->host) - 1u) != 0) {
        snprintf(g->host, sizeof(g->host), "unknown");
    }
    for (char *q = g->host; *q != '\0'; q++) {
        if (*q == '"' || *q == '\\' || (unsigned char)*q < 0x20u) {
            *q = '_'; /* it goes into JSON as is */
        }
    }
    f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f == NULL || fgets(g->boot_id, sizeof(g->boot_id), f) == NULL) {
        g->boot_id[0] = '\0';
    }
    if (f != NULL) {
        fclose(f);
    }
    g->boot_id[strcspn(g->boot_id, "\r\n\"\\")] = '\0';
    (void)status_payload(g, "offline", false, g->offline, sizeof(g->offline));
}

int mqim_gateway_run(const mqim_gw_config_t *cfg, volatile sig_atomic_t *stop,
                     const mqim_gateway_reload_t *reload)
{
    gw_t g;
    size_t len = 0;
    int rc;
    mqim_str_t root = mqim_str_from_cstr(cfg->root);

    memset(&g, 0, sizeof(g));
    g.cfg = cfg;
    g.reload = reload;
    g.wake_fd = -1;
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    snprintf(g.uri, sizeof(g.uri), "%s://%s:%d", cfg->broker_tls ? "ssl" : "tcp", cfg->broker_host,
             cfg->broker_port);
    if (check_tls_files(cfg) != 0) {
        return 1;
    }
    (void)mqim_topic_build(root, MQIM_TOPIC_GATEWAY_STATUS, (mqim_str_t){ NULL, 0 },
                           (mqim_str_t){ NULL, 0 }, g.status_topic, sizeof(g.status_topic), &len);
    (void)mqim_topic_build(root, MQIM_TOPIC_GATEWAY_STATS, (mqim_str_t){ NULL, 0 },
                           (mqim_str_t){ NULL, 0 }, g.stats_topic, sizeof(g.stats_topic), &len);
    if (cfg->sub_filter[0] != '\0') {
        snprintf(g.sub_filter, sizeof(g.sub_filter), "%s", cfg->sub_filter); /* e.g. $share/mqim/... */
    } else {
        snprintf(g.sub_filter, sizeof(g.sub_filter), "%s/u/+/out/#", cfg->root);
    }
    /* The publisher's client id: the gateway's (secret: see docs/security.md)
     * plus ".out", so neither connection takes over the other's session. */
    snprintf(g.pub_client_id, sizeof(g.pub_client_id), "%s.out", cfg->client_id);
    {
        mqim_pub_config_t pc = {
            .host = cfg->broker_host,
            .port = cfg->broker_port,
            .client_id = g.pub_client_id,
            .username = cfg->username,
            .password = cfg->password,
            .tls = cfg->broker_tls,
            .cafile = cfg->broker_cafile,
            .certfile = cfg->broker_certfile,
            .keyfile = cfg->broker_keyfile,
            .keepalive_s = cfg->keepalive_s,
            .max_inflight = cfg->max_inflight,
        };
        g.pub = mqim_pub_new(&pc);
    }
    g.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (g.pub == NULL || g.wake_fd < 0) {
        MQIM_LOGE(LOG_MOD, "out of memory or file descriptors");
        free_io(&g);
        return 1;
    }
    if (mqim_store_open_config(&(mqim_store_config_t){
            .engine = strcmp(cfg->store_engine, "postgresql") == 0 ? MQIM_STORE_POSTGRESQL : MQIM_STORE_LMDB,
            .dir = cfg->data_dir, .map_size = (size_t)cfg->map_size_mb << 20, .dsn = cfg->store_dsn },
            false, &g.store) != MQIM_OK) {
        free_io(&g);
        return 1;
    }
    g.rcfg = (mqim_router_config_t){
        .root = cfg->root,
        .accept_any_user = cfg->accept_any_user,
        .inbox_quota = cfg->inbox_quota,
        .retain_count = cfg->retain_count,
        .retain_age_ms = (int64_t)cfg->retain_days * 86400000,
        .group_retain_count = cfg->group_retain_count,
        .group_retain_age_ms = (int64_t)cfg->group_retain_days * 86400000,
        .rate_per_sec = cfg->rate_per_sec,
        .rate_burst = cfg->rate_burst,
        .file_max_bytes = cfg->file_max_mb << 20,
        .file_chunk_bytes = cfg->file_chunk_bytes,
        .file_chunk_max = cfg->file_chunk_max,
        .file_rate_per_sec = cfg->file_rate_per_sec,
        .file_rate_burst = cfg->file_rate_burst,
        .sync_page = cfg->sync_page,
        .group_max_members = cfg->group_max_members,
        .groups_per_user = cfg->groups_per_user,
        .publish_now = publish_now,
        .publish_ctx = &g,
    };
    g.router = mqim_router_new(g.store, &g.rcfg);
    if (g.router == NULL) {
        MQIM_LOGE(LOG_MOD, "cannot create the router");
        mqim_store_close(g.store);
        free_io(&g);
        return 1;
    }
    {
        char journal[sizeof(cfg->data_dir) + 32];
        snprintf(journal, sizeof(journal), "%s/inbound.journal", cfg->data_dir);
        g.inq = mqim_inbound_start(g.store, g.router, journal, INBOUND_BATCH_MAX, on_batch_done, &g);
    }
    if (g.inq == NULL) {
        mqim_router_free(g.router);
        mqim_store_close(g.store);
        free_io(&g);
        return 1;
    }
    identity_init(&g);
    for (;;) {
        /* Two gateways with one identity take the client id from each
         * other, and a copy of the store hands out seqs twice: wait. */
        char why[MQIM_GW_PATH_MAX + 256];
        if (*stop || probe_other_instance(&g, why, sizeof(why)) != 1) {
            break;
        }
        MQIM_LOGE(LOG_MOD, "%s; not routing until it says offline (checking every %d s). Stop one "
                  "of them; if that one is not running any more, clear its status with "
                  "mosquitto_pub -r -n -t %s", why, PROBE_RECHECK_S, g.status_topic);
        for (int i = 0; i < PROBE_RECHECK_S * 10 && !*stop; i++) {
            struct timespec ts = { 0, 100000000L };
            nanosleep(&ts, NULL);
        }
    }
    if (*stop) {
        mqim_inbound_stop(g.inq);
        mqim_router_free(g.router);
        mqim_store_close(g.store);
        free_io(&g);
        return 1;
    }
    /* Before any delivery of this run (direct publishes go out ahead of the
     * outbox on the publisher): devices learn a new store epoch first. */
    publish_gateway_status(&g, "starting");
    rc = make_client(&g);
    if (rc != MQTTASYNC_SUCCESS) {
        mqim_inbound_stop(g.inq);
        mqim_router_free(g.router);
        mqim_store_close(g.store);
        free_io(&g);
        return 1;
    }
    MQIM_LOGI(LOG_MOD, "mqim-gateway starting: broker %s, data %s, root %s, store %s epoch %" PRIu64
              ", instance %s", g.uri, cfg->data_dir, cfg->root, mqim_store_identity(g.store)->id,
              mqim_store_identity(g.store)->epoch, g.instance);
    (void)start_connect(&g);

    pump(&g, stop);

    if (g.client != NULL && MQTTAsync_isConnected(g.client)) {
        MQTTAsync_disconnectOptions dopts = MQTTAsync_disconnectOptions_initializer5;
        MQTTAsync_message msg = MQTTAsync_message_initializer;
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
        char buf[512];
        int n = status_payload(&g, "offline", true, buf, sizeof(buf));
        msg.payload = buf;
        msg.payloadlen = n;
        msg.qos = 1;
        msg.retained = 1;
        if (MQTTAsync_sendMessage(g.client, g.status_topic, &msg, &ro) == MQTTASYNC_SUCCESS) {
            (void)MQTTAsync_waitForCompletion(g.client, ro.token, 2000);
        }
        dopts.timeout = 2000;
        (void)MQTTAsync_disconnect(g.client, &dopts);
        for (int i = 0; i < 40 && MQTTAsync_isConnected(g.client); i++) {
            struct timespec ts = { 0, 50000000L };
            nanosleep(&ts, NULL);
        }
    }
    pthread_mutex_lock(&g.mu);
    g.link_up = false;
    while (g.calls > 0u) {
        pthread_cond_wait(&g.cv, &g.mu);
    }
    pthread_mutex_unlock(&g.mu);
    if (g.client != NULL) {
        MQTTAsync_destroy(&g.client);
    }
    mqim_inbound_stop(g.inq); /* routes what was queued */
    mqim_router_free(g.router);
    mqim_store_close(g.store);
    free_io(&g);
    pthread_cond_destroy(&g.cv);
    pthread_mutex_destroy(&g.mu);
    MQIM_LOGI(LOG_MOD, "mqim-gateway stopped");
    return 0;
}
