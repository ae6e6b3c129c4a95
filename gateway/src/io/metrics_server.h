/**
 * @file metrics_server.h
 * @brief One thread of the running gateway that answers operators:
 *   - the OpenMetrics endpoint (metrics_listen; HTTP/1.1, GET /metrics, one
 *     request per connection, requests of at most 4 KiB);
 *   - the control socket (an abstract Unix socket named after the data
 *     directory, mqim_control_socket_addr; only the gateway's user and root
 *     may use it: SO_PEERCRED), where `mqim-gateway status`, `online` and
 *     `log-level` (admin/admin.c) ask their questions: one line in, text out,
 *     then the server closes.
 *
 * It reads the store in read-only LMDB transactions (readers never wait for
 * the writer and never block it), so a scrape or an admin command never
 * holds up routing; it also samples the outbox each second to tell the age
 * of its oldest entry.
 */
#ifndef MQIM_GW_METRICS_SERVER_H
#define MQIM_GW_METRICS_SERVER_H

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "config.h"
#include "store.h"

typedef struct mqim_metrics_server mqim_metrics_server_t;

/** What an HTTP request head asks for (mqim_metrics_http_route). */
typedef enum mqim_http_route {
    MQIM_HTTP_METRICS,    /**< GET or HEAD /metrics (a query string is ignored) */
    MQIM_HTTP_NOT_FOUND,  /**< another path: 404 */
    MQIM_HTTP_BAD_METHOD  /**< not GET or HEAD: 405 */
} mqim_http_route_t;

/**
 * Classify a request head (NUL-terminated, up to and including the blank
 * line; any bytes). *head_only: a HEAD request (no body in the answer);
 * *prometheus_text: the Accept header asks for text/plain and not for
 * OpenMetrics (what Prometheus itself lists first).
 */
mqim_http_route_t mqim_metrics_http_route(const char *req, bool *head_only, bool *prometheus_text);

/**
 * The control socket's address for data_dir: an abstract Unix socket (no
 * file: nothing in the data directory to trip a copy of it, nothing left
 * behind by a kill), "mqim-gateway." and a hash of the directory's real
 * path. Returns the address length for bind/connect.
 */
socklen_t mqim_control_socket_addr(const char *data_dir, struct sockaddr_un *a);

/**
 * Bind the metrics endpoint (when cfg->metrics_listen is set) and the
 * control socket, and start the thread. NULL with the reason logged when
 * either cannot be bound (a port in use, a data directory path too long for
 * a Unix socket). cfg and store must outlive the server.
 */
mqim_metrics_server_t *mqim_metrics_server_start(const mqim_gw_config_t *cfg, mqim_store_t *store);

/** Stop the thread, close both sockets. NULL is a no-op. */
void mqim_metrics_server_stop(mqim_metrics_server_t *m);

#endif /* MQIM_GW_METRICS_SERVER_H */
