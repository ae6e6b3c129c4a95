/**
 * @file daemon_internal.h
 * @brief What the daemon's modules share (daemon.c, pump.c, direct.c,
 *        status.c); not for anything outside gateway/src/io.
 */
#ifndef MQIM_GW_DAEMON_INTERNAL_H
#define MQIM_GW_DAEMON_INTERNAL_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "conn.h"
#include "daemon.h"
#include "inbound.h"
#include "metrics_server.h"
#include "mqim/limits.h"
#include "router.h"
#include "store.h"

#define GW_DIRECT_KEY UINT64_MAX /* the publisher's key of a direct publish: no outbox entry */

typedef struct gw_direct gw_direct_t; /* direct.c */

typedef struct gw {
    const mqim_gw_config_t *cfg;
    const mqim_gateway_reload_t *reload; /* NULL: SIGHUP is not handled */
    mqim_store_t *store;
    mqim_router_t *router;
    mqim_inbound_q_t *inq; /* journal + group-commit worker: owns the router */
    mqim_router_config_t rcfg;
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

    /* The two connections (conn.h), the pump thread's alone: no lock. */
    mqim_conn_t *in;  /* the inbound connection: session, will, subscription */
    mqim_conn_t *pub; /* the outbox publisher */
    mqim_conn_config_t in_cfg; /* the inbound connection's settings (daemon.c) */
    char pub_client_id[sizeof(((mqim_gw_config_t *)0)->client_id) + 8];
    int wake_fd;      /* eventfd: the worker and the router wake the pump's poll() */

    pthread_mutex_t mu; /* guards the counters and the direct queue */
    uint64_t handled, rejected;
    gw_direct_t *direct_head, *direct_tail; /* publish_now's queue */
    size_t direct_bytes;
    uint64_t direct_dropped;
    int64_t direct_drop_logged;
    mqim_metrics_server_t *metrics; /* the OpenMetrics endpoint and the control socket */
} gw_t;

int64_t gw_now_ms(void);
/** Wake the pump out of its poll() (any thread). */
void gw_wake(gw_t *g);

/* direct.c: publishes that are not outbox entries */
/** The router's publish_now (any thread): queue a copy for the pump. */
void gw_publish_now(void *ctx, const mqim_outbound_t *o);
/** Send what is queued on the publisher while it takes it (the pump). */
void gw_send_direct(gw_t *g, mqim_conn_done_fn done, void *done_ctx);
void gw_free_direct(gw_t *g);

/* status.c: the gateway's status and stats documents */
/** The status document for state ("online", "offline", "starting") into
 *  buf; its length, 0 when it does not fit. The one place it is written. */
int gw_status_payload(const gw_t *g, const char *state, bool with_ts, char *buf, size_t cap);
void gw_publish_status(gw_t *g, const char *state);
void gw_publish_stats(gw_t *g);
/** Where this run is (host, boot id, a random instance) and the will. */
void gw_identity_init(gw_t *g);
/** Read the retained status on a connection of its own: 1 another
 *  instance is online (why says which), 0 none, -1 the broker could not be
 *  asked. */
int gw_probe_other_instance(gw_t *g, char *why, size_t cap);

/* pump.c */
/** The inbound connection's on_publish (conn.h): journal and queue. */
mqim_status_t gw_on_inbound(void *ctx, const mqim_v5_packet_t *pk);
/** Run both connections and the outbox until *stop, then drain. */
void gw_pump(gw_t *g, volatile sig_atomic_t *stop);

#endif /* MQIM_GW_DAEMON_INTERNAL_H */
