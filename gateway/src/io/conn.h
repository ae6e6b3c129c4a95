/**
 * @file conn.h
 * @brief One MQTT v5 connection of the gateway's own client (mqtt5.c is
 *        its codec). The gateway runs two, both owned by the pump thread
 *        (pump.c): no locks, no callbacks from other threads.
 *
 * - The **outbox publisher** (client id + ".out"): clean start, no will, no
 *   subscription; carries every outbox entry (deliveries, echoes, acks,
 *   presence, responses) and the direct publishes. The durable state is the
 *   LMDB outbox, so after a reconnect the pump sends it again from its
 *   start and nothing is lost with the old connection.
 * - The **inbound connection** (the gateway's client id): a persistent
 *   session (clean start false, a session expiry), the will (the retained
 *   offline status) and the subscription to every user's out/ topics. Each
 *   inbound PUBLISH is handed to on_publish; its PUBACK is queued only when
 *   on_publish returns MQIM_OK, i.e. after the inbound journal has it
 *   (docs/architecture.md, "Data flow"). A publish whose journal write
 *   failed is never acknowledged: the connection is closed and the broker
 *   sends it again on the resumed session.
 *
 * Output is encoded back to back into one buffer and written with one
 * send() (or SSL_write) per service round; input is read many packets per
 * recv().
 */
#ifndef MQIM_GW_CONN_H
#define MQIM_GW_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqtt5.h"

/**
 * An inbound PUBLISH (strings point into the connection's input buffer,
 * valid during the call). MQIM_OK: taken (journaled): a QoS 1 publish is
 * acknowledged. MQIM_INFLIGHT_FULL: not now (the inbound queue is full):
 * the publish stays buffered, the connection stops reading, and the next
 * mqim_conn_service offers it again. Anything else: not taken; the
 * service returns that status (close the connection: the broker sends the
 * publish again on the resumed session).
 */
typedef mqim_status_t (*mqim_conn_publish_fn)(void *ctx, const mqim_v5_packet_t *publish);

typedef struct mqim_conn_config {
    const char *host;
    int port;
    const char *client_id;
    const char *username;  /* "" or NULL: none */
    const char *password;  /* "" or NULL: none */
    bool tls;              /* verify the broker against cafile (or the system CAs) and host */
    const char *cafile;    /* "" or NULL: the system's CAs */
    const char *certfile;  /* client certificate; "" or NULL: none */
    const char *keyfile;
    unsigned keepalive_s;  /* PINGREQ after this long without sending; 0: none */
    unsigned max_inflight; /* QoS 1 publishes without PUBACK at most (the broker's Receive Maximum may lower it) */
    /* The inbound connection's extras; all zero for the outbox publisher. */
    bool resume_session;   /* clean start false: publishes queued while away are delivered */
    uint32_t session_expiry_s;
    const char *will_topic; /* NULL: no will; else retained, QoS 1 */
    const char *will_payload;
    const char *sub_filter; /* NULL: no subscription; else subscribed at QoS 1 after each CONNACK */
    size_t max_in_packet;  /* subscriber: largest packet taken (announced in CONNECT); 0: 64 KiB */
    mqim_conn_publish_fn on_publish;
    void *on_publish_ctx;
} mqim_conn_config_t;

typedef struct mqim_conn mqim_conn_t;

/** Called for each outbox key the broker took: PUBACK (reason < 0x80 is
 *  success; the caller decides what a refusal means), or written at QoS 0. */
typedef void (*mqim_conn_done_fn)(void *ctx, uint64_t key, uint8_t reason);

/** The strings in cfg must outlive the publisher. NULL when out of memory. */
mqim_conn_t *mqim_conn_new(const mqim_conn_config_t *cfg);
void mqim_conn_free(mqim_conn_t *p);

/**
 * Connect: TCP (TCP_NODELAY), TLS when configured, CONNECT, CONNACK, all
 * within timeout_ms; blocks the caller that long at most. On failure err
 * says why (refused, unreachable, TLS reason, CONNACK reason) and the
 * status is MQIM_TRANSPORT_ERROR, MQIM_TIMEOUT or MQIM_CONNACK_REFUSED.
 */
mqim_status_t mqim_conn_connect(mqim_conn_t *p, int timeout_ms, int64_t now_ms, char *err,
                               size_t err_len);

/** Close the connection (a DISCONNECT with reason 0 first when graceful and
 *  possible: the broker then drops the will). Publishes without PUBACK are
 *  forgotten: they are still in the outbox. */
void mqim_conn_close(mqim_conn_t *p, bool graceful);

bool mqim_conn_connected(const mqim_conn_t *p);
/** The subscription was granted (SUBACK) on this connection. */
bool mqim_conn_subscribed(const mqim_conn_t *p);
/** The session the broker resumed at CONNECT (CONNACK session present). */
bool mqim_conn_session_present(const mqim_conn_t *p);
/** The socket to poll (-1 when closed) and the events to poll for (no
 *  POLLIN while on_publish said MQIM_INFLIGHT_FULL). */
int mqim_conn_fd(const mqim_conn_t *p);
short mqim_conn_poll_events(const mqim_conn_t *p);
/** Publishes without PUBACK, and room for more in the window. */
unsigned mqim_conn_inflight(const mqim_conn_t *p);
unsigned mqim_conn_room(const mqim_conn_t *p);

/**
 * Queue a publish of outbox entry key (m->packet_id is chosen here).
 * QoS 0 counts as done at once (done is called before this returns).
 * MQIM_INFLIGHT_FULL: no room in the window; MQIM_BUFFER_TOO_SMALL: the
 * output buffer holds enough, flush first; MQIM_MQTT_TOO_LARGE: larger than
 * the broker's Maximum Packet Size (never sendable: the caller drops it).
 */
mqim_status_t mqim_conn_publish(mqim_conn_t *p, uint64_t key, const mqim_v5_publish_t *m,
                               mqim_conn_done_fn done, void *ctx);

/**
 * Write what the socket takes now, read and handle what the broker sent
 * (PUBACKs call done, PUBLISHes on_publish, SUBACK is checked: a refused
 * filter or a lower QoS than asked is MQIM_CONNACK_REFUSED), keep the
 * connection alive. Never blocks. Anything but MQIM_OK means the
 * connection is broken (err says why): close it.
 */
mqim_status_t mqim_conn_service(mqim_conn_t *p, int64_t now_ms, mqim_conn_done_fn done, void *ctx,
                               char *err, size_t err_len);

#endif /* MQIM_GW_CONN_H */
