/**
 * @file publisher.h
 * @brief The outbox publisher: the gateway's second MQTT connection, which
 *        carries every outbox entry (deliveries, echoes, acks, presence,
 *        responses) to the broker and reads their PUBACKs.
 *
 * One thread (the pump in mqtt.c) owns it: no locks, no callbacks from
 * other threads. Publishes are encoded back to back into one output buffer
 * and written with one send() (or SSL_write) per pump round; PUBACKs are
 * read many per recv(). The connection is MQTT v5 (responses carry
 * Correlation Data), clean start, no will and no subscriptions: the durable
 * state is the LMDB outbox, so after a reconnect the pump sends it again
 * from its start and nothing is lost with the old connection.
 *
 * Paho stays the gateway's inbound connection (the subscription, whose
 * PUBACK timing the group commit depends on, the will and the status).
 */
#ifndef MQIM_GW_PUBLISHER_H
#define MQIM_GW_PUBLISHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqtt5.h"

typedef struct mqim_pub_config {
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
} mqim_pub_config_t;

typedef struct mqim_pub mqim_pub_t;

/** Called for each outbox key the broker took: PUBACK (reason < 0x80 is
 *  success; the caller decides what a refusal means), or written at QoS 0. */
typedef void (*mqim_pub_done_fn)(void *ctx, uint64_t key, uint8_t reason);

/** The strings in cfg must outlive the publisher. NULL when out of memory. */
mqim_pub_t *mqim_pub_new(const mqim_pub_config_t *cfg);
void mqim_pub_free(mqim_pub_t *p);

/**
 * Connect: TCP (TCP_NODELAY), TLS when configured, CONNECT, CONNACK, all
 * within timeout_ms; blocks the caller that long at most. On failure err
 * says why (refused, unreachable, TLS reason, CONNACK reason) and the
 * status is MQIM_TRANSPORT_ERROR, MQIM_TIMEOUT or MQIM_CONNACK_REFUSED.
 */
mqim_status_t mqim_pub_connect(mqim_pub_t *p, int timeout_ms, int64_t now_ms, char *err,
                               size_t err_len);

/** Close the connection (a DISCONNECT first when graceful and possible).
 *  Publishes without PUBACK are forgotten: they are still in the outbox. */
void mqim_pub_close(mqim_pub_t *p, bool graceful);

bool mqim_pub_connected(const mqim_pub_t *p);
/** The socket to poll (-1 when closed) and the events to poll for. */
int mqim_pub_fd(const mqim_pub_t *p);
short mqim_pub_poll_events(const mqim_pub_t *p);
/** Publishes without PUBACK, and room for more in the window. */
unsigned mqim_pub_inflight(const mqim_pub_t *p);
unsigned mqim_pub_room(const mqim_pub_t *p);

/**
 * Queue a publish of outbox entry key (m->packet_id is chosen here).
 * QoS 0 counts as done at once (done is called before this returns).
 * MQIM_INFLIGHT_FULL: no room in the window; MQIM_BUFFER_TOO_SMALL: the
 * output buffer holds enough, flush first; MQIM_MQTT_TOO_LARGE: larger than
 * the broker's Maximum Packet Size (never sendable: the caller drops it).
 */
mqim_status_t mqim_pub_publish(mqim_pub_t *p, uint64_t key, const mqim_v5_publish_t *m,
                               mqim_pub_done_fn done, void *ctx);

/**
 * Write what the socket takes now, read and handle what the broker sent
 * (PUBACKs call done), keep the connection alive. Never blocks. Anything
 * but MQIM_OK means the connection is broken (err says why): close it.
 */
mqim_status_t mqim_pub_service(mqim_pub_t *p, int64_t now_ms, mqim_pub_done_fn done, void *ctx,
                               char *err, size_t err_len);

#endif /* MQIM_GW_PUBLISHER_H */
