/**
 * @file session.h
 * @brief The MQTT session: one connection to the broker driven by
 *        mqim_session_poll() from one thread. CONNECT with a will, keepalive
 *        and dead-link detection, QoS 0/1/2 in both directions over the
 *        in-flight table, resend with DUP after reconnecting to a persistent
 *        session, reconnect with exponential backoff and jitter.
 *
 * States and events are an explicit table (mqim_session_next_state); every
 * state change goes through it.
 *
 * Threading: not thread-safe. Call every function from the thread that
 * calls mqim_session_poll(); callbacks run inside those calls.
 */
#ifndef MQIM_SESSION_H
#define MQIM_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "mqim/device_config.h"
#include "mqim/inflight.h"
#include "mqim/mqtt_codec.h"
#include "mqim/ports.h"
#include "mqim/status.h"

typedef enum mqim_session_state {
    MQIM_SESSION_STOPPED = 0, /**< not started, or stopped */
    MQIM_SESSION_BACKOFF,     /**< waiting to (re)connect */
    MQIM_SESSION_CONNECTING,  /**< transport open, CONNECT sent, waiting for CONNACK */
    MQIM_SESSION_CONNECTED,
    MQIM_SESSION_STATE_COUNT
} mqim_session_state_t;

typedef enum mqim_session_event {
    MQIM_SESSION_EV_START = 0,
    MQIM_SESSION_EV_RETRY_DUE,      /**< backoff elapsed, transport opened, CONNECT sent */
    MQIM_SESSION_EV_OPEN_FAILED,    /**< transport could not open */
    MQIM_SESSION_EV_CONNACK_OK,
    MQIM_SESSION_EV_CONNACK_REFUSED,
    MQIM_SESSION_EV_LINK_LOST,      /**< transport error, protocol error, timeouts */
    MQIM_SESSION_EV_STOP,
    MQIM_SESSION_EVENT_COUNT
} mqim_session_event_t;

/**
 * The transition table.
 * @return MQIM_OK with *next, or MQIM_BAD_PARAMETER when the event cannot
 *         happen in that state (a bug in the caller).
 */
mqim_status_t mqim_session_next_state(mqim_session_state_t state, mqim_session_event_t event,
                                      mqim_session_state_t *next);

typedef struct mqim_session_callbacks {
    /** A message for the application (QoS 2: exactly once per packet id until PUBREL). */
    void (*on_message)(void *ctx, const mqim_mqtt_publish_t *pub);
    /** The broker acknowledged the QoS 1/2 publish stored under outbox_key. */
    void (*on_published)(void *ctx, uint32_t outbox_key);
    /** CONNACK accepted; subscribe here when !session_present. */
    void (*on_connected)(void *ctx, bool session_present);
    /** The link went down (or CONNACK refused): why. */
    void (*on_disconnected)(void *ctx, mqim_status_t reason);
    /**
     * Topic and payload of an in-flight publish to resend after reconnecting
     * to a persistent session (they live in the application's outbox).
     * Pointers must stay valid until the call returns to the session.
     * @return MQIM_OK, or anything else to drop that entry from the table.
     */
    mqim_status_t (*get_publish)(void *ctx, uint32_t outbox_key, mqim_mqtt_publish_t *pub);
    void *ctx;
} mqim_session_callbacks_t;

typedef struct mqim_session_config {
    mqim_mqtt_connect_t connect; /**< client id, credentials, will, clean session */
    const mqim_transport_ops_t *transport;
    void *transport_ctx;
    mqim_clock_fn clock;
    void *clock_ctx;
    mqim_entropy_fn entropy; /**< for backoff jitter */
    void *entropy_ctx;
    mqim_session_callbacks_t cb;
    /** Optional: how poll waits while no connection is open (backing off).
     *  Without it poll returns at once then, and the caller must sleep for
     *  mqim_session_next_deadline() itself, or it spins. */
    mqim_sleep_fn sleep;
    void *sleep_ctx;
} mqim_session_config_t;

/** One session; caller-owned (static or on a task's stack). */
typedef struct mqim_session {
    mqim_session_config_t cfg;
    mqim_session_state_t state;
    mqim_inflight_t inflight;
    mqim_out_entry_t out[MQIM_CFG_INFLIGHT_MAX];
    uint16_t in_qos2[MQIM_CFG_INBOUND_QOS2_MAX];
    uint8_t rx[MQIM_CFG_RX_BUFFER_SIZE];
    size_t rx_len;
    size_t rx_discard;  /**< bytes of an oversized PUBLISH still to skip */
    uint8_t tx[MQIM_SESSION_TX_SIZE]; /**< control packets and publish heads (payloads go out from where they lie) */
    uint32_t retry_at;
    uint32_t backoff_ms;
    uint32_t last_tx;
    uint32_t connect_sent_at;
    uint32_t ping_sent_at;
    bool ping_outstanding;
    uint16_t next_sub_id;
    mqim_status_t last_error; /**< why the last attempt or link failed (MQIM_OK: none yet) */
    uint32_t failures;        /**< attempts and links that failed since init (wraps) */
} mqim_session_t;

/** mqim_session_next_deadline when nothing is timed (stopped, or
 *  connected without keep-alive). */
#define MQIM_NO_DEADLINE UINT32_MAX

/** @return MQIM_OK, MQIM_BAD_PARAMETER (missing transport, clock or entropy). */
mqim_status_t mqim_session_init(mqim_session_t *s, const mqim_session_config_t *cfg);

/** Start connecting at the next poll. @return MQIM_OK, MQIM_BAD_PARAMETER (already started). */
mqim_status_t mqim_session_start(mqim_session_t *s);

/** Send DISCONNECT when connected (a clean stop: no will), close, stop. */
void mqim_session_stop(mqim_session_t *s);

/**
 * Do what is due: connect when the backoff elapsed, keepalive, timeouts,
 * and read and handle packets. Blocks until something happens, never
 * longer than timeout_ms: with a connection open, in the transport's recv
 * until input arrives or the next timer (keep-alive, ping or CONNACK
 * timeout) is due; while backing off, in the sleep port until the retry is
 * due (without a sleep port it returns at once: see
 * mqim_session_next_deadline).
 * @return MQIM_OK, or the reason the attempt or the link just failed (the
 *         session is then in BACKOFF and reconnects by itself):
 *         MQIM_CONNACK_NOT_AUTHORIZED, _BAD_CREDENTIALS,
 *         _IDENTIFIER_REJECTED, _SERVER_UNAVAILABLE, _PROTOCOL_VERSION (the
 *         five MQTT 3.1.1 refusals, one to one; MQIM_CONNACK_REFUSED for a
 *         code 3.1.1 does not define), MQIM_BROKER_UNREACHABLE,
 *         MQIM_TLS_VERIFY_FAILED, MQIM_TLS_HANDSHAKE_FAILED (from the
 *         transport's open), MQIM_TIMEOUT (no CONNACK in time),
 *         MQIM_KEEPALIVE_LOST, MQIM_TRANSPORT_ERROR (the link broke or the
 *         broker closed it), MQIM_MQTT_* (the broker broke the protocol).
 */
mqim_status_t mqim_session_poll(mqim_session_t *s, uint32_t timeout_ms);

/**
 * Milliseconds from now until the session next has work of its own: the
 * reconnect after backoff, a keep-alive ping, a ping or CONNACK timeout.
 * 0: due now; MQIM_NO_DEADLINE: nothing timed. Input from the broker can
 * need a poll earlier: while a connection is open, wake on the transport's
 * receive event too. A board sleeps until min(this, its own timers).
 */
uint32_t mqim_session_next_deadline(const mqim_session_t *s);

/**
 * Publish. QoS 1/2 publishes take an in-flight entry (outbox_key says where
 * the application keeps the message for a resend). The payload is sent
 * from the caller's memory after the head (never copied): it must stay
 * valid only during the call.
 * @return MQIM_OK, MQIM_INFLIGHT_FULL (back-pressure: poll, then retry),
 *         MQIM_BAD_PARAMETER (not connected, bad qos), the encoder's
 *         statuses (MQIM_MQTT_TOPIC, MQIM_BUFFER_TOO_SMALL for a packet
 *         larger than MQIM_CFG_TX_BUFFER_SIZE or a topic whose head does
 *         not fit MQIM_CFG_TX_CONTROL_SIZE), or a link error.
 */
mqim_status_t mqim_session_publish(mqim_session_t *s, mqim_str_t topic, const uint8_t *payload,
                                   size_t len, uint8_t qos, bool retain, uint32_t outbox_key);

/** Subscribe to one filter. @return MQIM_OK, MQIM_BAD_PARAMETER (not connected), encoder statuses, a link error. */
mqim_status_t mqim_session_subscribe(mqim_session_t *s, mqim_str_t filter, uint8_t qos);

mqim_session_state_t mqim_session_state(const mqim_session_t *s);

#endif /* MQIM_SESSION_H */
