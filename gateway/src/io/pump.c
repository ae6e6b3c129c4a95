/* The pump (see daemon.h and daemon_internal.h): one thread that owns both
 * MQTT connections. It reads the inbound connection and hands each publish
 * to the inbound journal and queue before its PUBACK goes out, sends the
 * direct publishes and the outbox on the publisher in key order while the
 * window has room, hands what the broker took to the worker for deletion,
 * reconnects either connection with backoff, publishes the stats and
 * handles a reload and the stop. It sleeps in poll() on both sockets and an
 * eventfd that the worker (after a commit) and the router (a direct
 * publish) write to. */
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon_internal.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"

#define LOG_MOD "pump"
#define SHUTDOWN_DRAIN_MS 5000
#define CONNECT_TIMEOUT_MS 5000
#define DONE_INITIAL 4096u /* room for acknowledged outbox keys per round (grows) */
#define BACKOFF_MAX_S 30u

/* Reconnect state of one connection. */
typedef struct link {
    const char *name; /* in logs: "inbound connection", "outbox publisher" */
    int64_t retry_at;
    unsigned backoff_s;
} link_t;

typedef struct pump {
    gw_t *g;
    uint64_t *done; /* outbox keys the broker took, to delete in bulk */
    size_t ndone, done_cap;
    uint64_t next;        /* the next outbox key to send */
    uint64_t resend_from; /* UINT64_MAX: nothing to send again */
    int64_t resend_at;
    link_t in_link, pub_link;
    bool routing; /* the subscription is granted (READY sent) */
    int64_t last_stats, drain_until;
} pump_t;

/* ---- the inbound connection ---- */

/* An inbound PUBLISH: journal and queue it; the connection sends its
 * PUBACK only when this returns MQIM_OK (conn.h). */
mqim_status_t gw_on_inbound(void *ctx, const mqim_v5_packet_t *pk)
{
    gw_t *g = ctx;
    mqim_inbound_t in;
    mqim_status_t st;
    in.topic = pk->topic;
    in.payload = pk->payload;
    in.qos = pk->qos;
    in.retained = pk->retain != 0;
    in.response_topic = pk->response_topic;
    in.correlation = pk->correlation;
    st = mqim_inbound_offer(g->inq, &in, gw_now_ms());
    if (st != MQIM_OK && st != MQIM_INFLIGHT_FULL && pk->qos == 0) {
        /* QoS 0: the broker never sends it again, so closing the
         * connection would not bring it back (the failure is logged) */
        return MQIM_OK;
    }
    return st;
}

/* ---- the outbox ---- */

/* Hand what the broker took to the inbound worker, which deletes it inside
 * its next group commit (inbound.h: one LMDB writer). */
static void delete_done(pump_t *ps)
{
    mqim_inbound_outbox_done(ps->g->inq, ps->done, ps->ndone);
    ps->ndone = 0;
}

/* The broker took outbox entry key (a PUBACK, or a QoS 0 write). Deleted in
 * bulk later: a delete commit per ack took the LMDB writer (and a data
 * fsync) three times per routed message, away from the inbound group
 * commits; now the keys join those commits. */
static void on_pub_done(void *ctx, uint64_t key, uint8_t reason)
{
    pump_t *ps = ctx;
    if (key == GW_DIRECT_KEY) {
        if (reason >= MQIM_V5_RC_UNSPECIFIED_ERROR) {
            MQIM_LOGW(LOG_MOD, "the broker refused a direct publish (%s)", mqim_v5_reason_str(reason));
        }
        return; /* not an outbox entry */
    }
    if (reason >= MQIM_V5_RC_UNSPECIFIED_ERROR) {
        if (reason == MQIM_V5_RC_QUOTA_EXCEEDED || reason == MQIM_V5_RC_SERVER_BUSY ||
            reason == MQIM_V5_RC_UNSPECIFIED_ERROR) {
            /* try again shortly */
            if (key < ps->resend_from) {
                ps->resend_from = key;
                ps->resend_at = gw_now_ms() + 1000;
            }
            return;
        }
        /* not authorized, topic invalid, too large...: sending it again
         * cannot succeed and would block nothing but repeat for ever */
        MQIM_LOGE(LOG_MOD, "the broker refused outbox entry %" PRIu64 " (%s): dropped; check the "
                  "gateway user's ACL", key, mqim_v5_reason_str(reason));
    }
    mqim_metrics_count(MQIM_METRIC_OUTBOX_SENT);
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

/* Queue outbox entries from ps->next while the window and the output
 * buffer have room. True when every entry has been queued. */
static bool fill_window(pump_t *ps)
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
        if (mqim_store_outbox_next(&txn, ps->next, &rec) != MQIM_OK) {
            at_end = true;
            break;
        }
        if (mqim_conn_room(g->pub) == 0u) {
            break;
        }
        m.topic = rec.topic;
        m.payload = rec.payload;
        m.correlation = rec.corr;
        m.qos = rec.qos;
        m.retain = rec.retain;
        m.packet_id = 0;
        st = mqim_conn_publish(g->pub, rec.key, &m, on_pub_done, ps);
        if (st == MQIM_INFLIGHT_FULL || st == MQIM_BUFFER_TOO_SMALL) {
            break; /* again after PUBACKs or a write */
        }
        if (st != MQIM_OK) {
            /* never sendable (empty topic, larger than the broker takes):
             * say so and drop it instead of blocking the outbox behind it */
            MQIM_LOGE(LOG_MOD, "outbox entry %" PRIu64 " to %.*s cannot be published (%s): dropped",
                      rec.key, (int)rec.topic.len, rec.topic.ptr, mqim_status_str(st));
            on_pub_done(ps, rec.key, MQIM_V5_RC_SUCCESS);
        }
        ps->next = rec.key + 1u;
    }
    mqim_txn_abort(&txn);
    return at_end;
}

/* ---- connections ---- */

static void link_failed(link_t *l, int64_t t)
{
    l->retry_at = t + (int64_t)l->backoff_s * 1000;
    l->backoff_s = l->backoff_s < BACKOFF_MAX_S ? l->backoff_s * 2u : BACKOFF_MAX_S;
}

/* Connect c when it is down and its backoff has passed; true when it just
 * connected. Both connections block here for CONNECT_TIMEOUT_MS at most. */
static bool link_up(pump_t *ps, mqim_conn_t *c, link_t *l, int64_t t)
{
    char err[512];
    mqim_status_t st;
    if (mqim_conn_connected(c) || t < l->retry_at) {
        return false;
    }
    st = mqim_conn_connect(c, CONNECT_TIMEOUT_MS, t, err, sizeof(err));
    if (st != MQIM_OK) {
        MQIM_LOGE(LOG_MOD, "%s: %s; retrying in %u s", l->name, err, l->backoff_s);
        link_failed(l, gw_now_ms());
        return false;
    }
    l->backoff_s = 1;
    MQIM_LOGI(LOG_MOD, "%s connected to %s as %s", l->name, ps->g->uri,
              c == ps->g->in ? ps->g->cfg->client_id : ps->g->pub_client_id);
    return true;
}

/* Service c; on a broken connection log why and close it (reconnected by
 * link_up after the backoff: at once the first time). */
static void link_service(pump_t *ps, mqim_conn_t *c, link_t *l, int64_t t)
{
    char err[512];
    mqim_status_t st;
    if (!mqim_conn_connected(c)) {
        return;
    }
    st = mqim_conn_service(c, t, on_pub_done, ps, err, sizeof(err));
    if (st == MQIM_OK) {
        return;
    }
    if (st == MQIM_CONNACK_REFUSED) {
        MQIM_LOGE(LOG_MOD, "%s: %s; reconnecting in %u s", l->name, err, l->backoff_s);
        link_failed(l, t);
    } else {
        MQIM_LOGW(LOG_MOD, "%s: connection to %s lost (%s); reconnecting", l->name, ps->g->uri, err);
    }
    mqim_conn_close(c, false);
    if (c == ps->g->in) {
        ps->routing = false;
        mqim_metrics_set_connected(false);
    }
}

/* Both connections up (after their backoff), and what a new one needs. */
static void supervise(pump_t *ps, int64_t t)
{
    gw_t *g = ps->g;
    if (link_up(ps, g->pub, &ps->pub_link, t)) {
        mqim_metrics_count(MQIM_METRIC_PUBLISHER_CONNECTS);
        /* whatever the old connection had in flight is sent again: the
         * outbox is the truth, devices drop repeats by seq */
        ps->next = 0;
        ps->resend_from = UINT64_MAX;
    }
    if (link_up(ps, g->in, &ps->in_link, t)) {
        /* Devices replay what they have not seen confirmed when they see
         * this (docs/reliability.md). */
        gw_publish_status(g, "online");
    }
    if (!ps->routing && mqim_conn_subscribed(g->in)) {
        ps->routing = true;
        MQIM_LOGI(LOG_MOD, "subscribed to %s", g->sub_filter);
        mqim_metrics_set_connected(true);
        mqim_metrics_count(MQIM_METRIC_BROKER_CONNECTS);
        /* Routing from here on: systemd may start what comes After= us.
         * Again after a reconnect, which systemd takes as a no-op. */
        mqim_notify("READY=1\nSTATUS=connected and routing");
    }
}

/* ---- the loop ---- */

/* Sleep until a socket or the eventfd has something (200 ms at most). */
static void wait_events(pump_t *ps, volatile sig_atomic_t *stop)
{
    gw_t *g = ps->g;
    struct pollfd fds[3];
    nfds_t n = 1;
    mqim_conn_t *conns[2] = { g->in, g->pub };
    fds[0] = (struct pollfd){ g->wake_fd, POLLIN, 0 };
    for (int i = 0; i < 2; i++) {
        if (mqim_conn_connected(conns[i])) {
            fds[n++] = (struct pollfd){ mqim_conn_fd(conns[i]), mqim_conn_poll_events(conns[i]), 0 };
        }
    }
    (void)poll(fds, n, *stop ? 50 : 200);
    if (fds[0].revents & POLLIN) {
        uint64_t v;
        ssize_t r = read(g->wake_fd, &v, sizeof(v));
        (void)r;
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

/* Stopping: true once the outbox is drained (every entry sent, written and
 * acknowledged) or the drain time is over (what is left is counted). */
static bool drained(pump_t *ps, bool all_sent, int64_t t)
{
    gw_t *g = ps->g;
    mqim_txn_t txn;
    if (ps->drain_until == 0) {
        ps->drain_until = t + SHUTDOWN_DRAIN_MS;
        mqim_notify("STOPPING=1");
        MQIM_LOGI(LOG_MOD, "stopping: sending what is left in the outbox");
    }
    if (all_sent && mqim_conn_inflight(g->pub) == 0u && (mqim_conn_poll_events(g->pub) & POLLOUT) == 0) {
        return true;
    }
    if (mqim_conn_connected(g->pub) && t < ps->drain_until) {
        return false;
    }
    if (mqim_txn_begin(g->store, MQIM_TXN_READ, &txn) == MQIM_OK) {
        MQIM_LOGW(LOG_MOD, "%" PRIu64 " outbox entries left; they are sent at the next start",
                  mqim_store_outbox_count(&txn));
        mqim_txn_abort(&txn);
    }
    return true;
}

/* One round: read both connections, reconnect, send. True: stop now. */
static bool round_once(pump_t *ps, volatile sig_atomic_t *stop)
{
    gw_t *g = ps->g;
    int64_t t = gw_now_ms();
    bool all_sent = false;
    link_service(ps, g->in, &ps->in_link, t);
    link_service(ps, g->pub, &ps->pub_link, t);
    delete_done(ps); /* the worker batches them (inbound.h) */
    if (!*stop) {
        supervise(ps, t);
    }
    if (ps->resend_from != UINT64_MAX && t >= ps->resend_at) {
        if (ps->resend_from < ps->next) {
            ps->next = ps->resend_from;
        }
        ps->resend_from = UINT64_MAX;
    }
    if (mqim_conn_connected(g->pub)) {
        gw_send_direct(g, on_pub_done, ps);
        all_sent = fill_window(ps);
        link_service(ps, g->pub, &ps->pub_link, t); /* write it now, not after the next poll */
    }
    if (ps->routing && g->cfg->stats_interval_s > 0u &&
        t - ps->last_stats >= (int64_t)g->cfg->stats_interval_s * 1000) {
        ps->last_stats = t;
        gw_publish_stats(g);
    }
    return *stop && drained(ps, all_sent, t);
}

void gw_pump(gw_t *g, volatile sig_atomic_t *stop)
{
    pump_t ps;
    /* A pump loop that stops turning (a deadlock, a stuck commit the
     * publisher waits on) stops the pings, and systemd restarts us. */
    const int64_t watchdog_ms = mqim_notify_watchdog_interval_ms();
    int64_t last_ping = 0;

    memset(&ps, 0, sizeof(ps));
    ps.g = g;
    ps.resend_from = UINT64_MAX;
    ps.in_link = (link_t){ "inbound connection", 0, 1 };
    ps.pub_link = (link_t){ "outbox publisher", 0, 1 };
    ps.done_cap = DONE_INITIAL;
    ps.done = calloc(ps.done_cap, sizeof(uint64_t));
    if (ps.done == NULL) {
        MQIM_LOGE(LOG_MOD, "out of memory starting the outbox pump");
        return;
    }
    for (;;) {
        wait_events(&ps, stop);
        mqim_notify_watchdog(watchdog_ms, &last_ping);
        if (g->reload != NULL && *g->reload->requested && !*stop) {
            *g->reload->requested = 0;
            reload_config(g);
        }
        if (round_once(&ps, stop)) {
            break;
        }
    }
    delete_done(&ps);
    free(ps.done);
    mqim_conn_close(g->pub, true);
}
