/**
 * @file metrics_server.h
 * @brief One thread of the running gateway that answers operators:
 *   - the OpenMetrics endpoint (metrics_listen; HTTP/1.1, GET /metrics, one
 *     request per connection, requests of at most 4 KiB);
 *   - the control socket, `control.sock` in the data directory (mode 0600:
 *     only the gateway's user and root), where `mqim-gateway status`,
 *     `online` and `log-level` (ops/admin.c) ask their questions: one line
 *     in, text out, then the server closes.
 *
 * It reads the store in read-only LMDB transactions (readers never wait for
 * the writer and never block it), so a scrape or an admin command never
 * holds up routing; it also samples the outbox each second to tell the age
 * of its oldest entry.
 */
#ifndef MQIM_GW_METRICS_SERVER_H
#define MQIM_GW_METRICS_SERVER_H

#include "config.h"
#include "store.h"

typedef struct mqim_metrics_server mqim_metrics_server_t;

/** The control socket's file name in the data directory. */
#define MQIM_CONTROL_SOCKET "control.sock"

/**
 * Bind the metrics endpoint (when cfg->metrics_listen is set) and the
 * control socket, and start the thread. NULL with the reason logged when
 * either cannot be bound (a port in use, a data directory path too long for
 * a Unix socket). cfg and store must outlive the server.
 */
mqim_metrics_server_t *mqim_metrics_server_start(const mqim_gw_config_t *cfg, mqim_store_t *store);

/** Stop the thread, close both sockets, remove control.sock. NULL is a no-op. */
void mqim_metrics_server_stop(mqim_metrics_server_t *m);

#endif /* MQIM_GW_METRICS_SERVER_H */
