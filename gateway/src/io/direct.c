/* Direct publishes (see daemon_internal.h): ephemeral publishes,
 * last-resort rejections, file reads, the gateway's status and stats, which
 * are not outbox entries. Any thread queues them (copied) for the pump,
 * which sends them on the publisher ahead of the outbox. Bounded in bytes:
 * past DIRECT_MAX_BYTES a QoS 0 publish is dropped (counted, and logged
 * once a second at most); QoS 1 ones are always queued (few, and each
 * answers something). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "daemon_internal.h"
#include "log.h"

#define LOG_MOD "direct"
#define DIRECT_MAX_BYTES (64u << 20) /* QoS 0 direct publishes waiting, at most */

struct gw_direct {
    gw_direct_t *next;
    size_t size; /* of this allocation */
    int qos;
    bool retain;
    size_t topic_len, payload_len, corr_len;
    char data[]; /* topic, payload, correlation data */
};

/* Past the byte bound a QoS 0 publish is dropped: true then (logged). */
static bool drop_qos0(gw_t *g, const mqim_outbound_t *o, size_t size)
{
    bool drop;
    pthread_mutex_lock(&g->mu);
    drop = o->qos == 0 && g->direct_bytes + size > DIRECT_MAX_BYTES;
    if (drop) {
        int64_t t = gw_now_ms();
        g->direct_dropped++;
        if (t - g->direct_drop_logged >= 1000) {
            g->direct_drop_logged = t;
            MQIM_LOGW(LOG_MOD, "%" PRIu64 " QoS 0 publishes dropped so far: more than %u bytes wait "
                      "for the broker", g->direct_dropped, (unsigned)DIRECT_MAX_BYTES);
        }
    }
    pthread_mutex_unlock(&g->mu);
    return drop;
}

void gw_publish_now(void *ctx, const mqim_outbound_t *o)
{
    gw_t *g = ctx;
    gw_direct_t *d;
    size_t size = sizeof(*d) + o->topic.len + o->payload.len + o->correlation.len;
    if (o->topic.len == 0u || o->topic.len > MQIM_TOPIC_MAX || drop_qos0(g, o, size)) {
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
    gw_wake(g);
}

/* Put the unsent back in front of what came meanwhile. */
static void requeue(gw_t *g, gw_direct_t *d)
{
    gw_direct_t *last = d;
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

void gw_send_direct(gw_t *g, mqim_conn_done_fn done, void *done_ctx)
{
    gw_direct_t *d, *rest;
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
        st = mqim_conn_publish(g->pub, GW_DIRECT_KEY, &m, done, done_ctx);
        if (st == MQIM_INFLIGHT_FULL || st == MQIM_BUFFER_TOO_SMALL) {
            requeue(g, d); /* the rest waits for PUBACKs or a write */
            return;
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
}

void gw_free_direct(gw_t *g)
{
    gw_direct_t *d = g->direct_head;
    while (d != NULL) {
        gw_direct_t *next = d->next;
        free(d);
        d = next;
    }
    g->direct_head = g->direct_tail = NULL;
    g->direct_bytes = 0;
}
