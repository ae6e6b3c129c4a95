/**
 * @file mqtt5.h
 * @brief The MQTT v5 packets the gateway's two connections speak (conn.c):
 *        CONNECT (session expiry, will, maximum packet size), PUBLISH
 *        (QoS 0/1, correlation data), SUBSCRIBE, PUBACK, PINGREQ and
 *        DISCONNECT out; CONNACK, PUBLISH (QoS 0/1, response topic,
 *        correlation data), PUBACK, SUBACK, PINGRESP and DISCONNECT in.
 *
 * Pure codec over caller buffers, no I/O: conn.c drives it over a socket,
 * tests/unit/test_mqtt5.c checks it byte for byte, and fuzz_mqtt5 feeds
 * the decoder arbitrary bytes. Every encoder reports the size it needs in
 * *needed, also when the buffer is too small (then it writes nothing and
 * returns MQIM_BUFFER_TOO_SMALL).
 *
 * Why the gateway's own client and not a library: docs/architecture.md,
 * "MQTT client stack" (Paho costs ~41 µs per publish and reads each packet
 * in ~5 recv calls; libmosquitto acknowledges a publish before the
 * application has it, which breaks the inbound journal's guarantee).
 */
#ifndef MQIM_GW_MQTT5_H
#define MQIM_GW_MQTT5_H

#include <stddef.h>
#include <stdint.h>

#include "mqim/mqtt_wire.h"
#include "mqim/status.h"
#include "mqim/str.h"

/* Packet types (the fixed header's high nibble): the shared vocabulary's
 * (common/include/mqim/mqtt_wire.h), under the names this codec uses. */
enum {
    MQIM_V5_CONNECT = MQIM_MQTT_CONNECT,
    MQIM_V5_CONNACK = MQIM_MQTT_CONNACK,
    MQIM_V5_PUBLISH = MQIM_MQTT_PUBLISH,
    MQIM_V5_PUBACK = MQIM_MQTT_PUBACK,
    MQIM_V5_PINGREQ = MQIM_MQTT_PINGREQ,
    MQIM_V5_PINGRESP = MQIM_MQTT_PINGRESP,
    MQIM_V5_DISCONNECT = MQIM_MQTT_DISCONNECT,
    MQIM_V5_SUBSCRIBE = MQIM_MQTT_SUBSCRIBE,
    MQIM_V5_SUBACK = MQIM_MQTT_SUBACK,
};

/** Largest packet mqim_v5_decode accepts from the broker (CONNACKs with long
 *  reason strings or user properties included); larger is MQIM_MQTT_TOO_LARGE.
 *  The inbound connection, which receives devices' publishes, sets its own
 *  limit with mqim_v5_decode_limit and announces it in CONNECT. */
#define MQIM_V5_MAX_IN_PACKET 65536u

/* Reason codes: the shared vocabulary's MQIM_V5_RC_* (common/include/mqim/
 * mqtt_wire.h); mqim_v5_reason_str names them all. Below
 * MQIM_V5_RC_UNSPECIFIED_ERROR is success (SUBACK: the granted QoS). */
#define MQIM_V5_RC_GRANTED_QOS1 0x01u

/* SUBSCRIBE options (MQTT v5, 3.8.3.1): Retain Handling in bits 4-5. */
#define MQIM_V5_RETAIN_IF_NEW_SUB 1u /* retained messages only for a new subscription */

typedef struct mqim_v5_connect {
    mqim_str_t client_id;
    mqim_str_t username;    /* len 0: none */
    mqim_str_t password;    /* len 0: none */
    uint16_t keepalive_s;
    int clean_start;        /* nonzero: a new session (the outbox publisher always asks for one) */
    uint32_t session_expiry_s; /* Session Expiry Interval; 0: none (ends with the connection) */
    uint32_t max_packet;    /* Maximum Packet Size we accept; 0: no property (no limit) */
    mqim_str_t will_topic;  /* len 0: no will */
    mqim_str_t will_payload;
    int will_qos;           /* 0 or 1 */
    int will_retain;
} mqim_v5_connect_t;

typedef struct mqim_v5_subscribe {
    mqim_str_t filter;      /* one topic filter */
    int qos;                /* maximum QoS: 0 or 1 */
    unsigned retain_handling; /* 0..2, MQIM_V5_RETAIN_IF_NEW_SUB */
    uint16_t packet_id;     /* 1..65535 */
} mqim_v5_subscribe_t;

typedef struct mqim_v5_publish {
    mqim_str_t topic;
    mqim_str_t payload;
    mqim_str_t correlation; /* len 0: no Correlation Data property */
    int qos;                /* 0 or 1 */
    int retain;
    uint16_t packet_id;     /* QoS 1: 1..65535 */
} mqim_v5_publish_t;

/** A decoded packet from the broker. Strings point into the input. */
typedef struct mqim_v5_packet {
    int type;                 /* MQIM_V5_CONNACK, _PUBLISH, _PUBACK, _SUBACK, _PINGRESP or _DISCONNECT */
    uint8_t reason;           /* CONNACK, PUBACK, DISCONNECT reason code (0: success) */
    int session_present;      /* CONNACK */
    uint16_t packet_id;       /* PUBACK, SUBACK, PUBLISH at QoS 1 (0 at QoS 0) */
    /* PUBLISH: QoS 0 or 1 (the gateway subscribes at QoS 1 at most; QoS 2
     * is a protocol error), never a topic alias (none is agreed) */
    mqim_str_t topic;
    mqim_str_t payload;
    mqim_str_t response_topic; /* len 0: absent */
    mqim_str_t correlation;    /* len 0: absent */
    int qos, retain, dup;
    /* SUBACK: one reason code per filter (the granted QoS, or >= 0x80) */
    const uint8_t *sub_reasons;
    size_t sub_count;
    uint16_t receive_max;     /* CONNACK Receive Maximum; 65535 when absent */
    uint32_t max_packet;      /* CONNACK Maximum Packet Size; 0 when absent (no limit) */
    uint16_t server_keepalive; /* CONNACK Server Keep Alive; 0 when absent */
    int has_server_keepalive;
    mqim_str_t reason_string; /* any packet's Reason String property; len 0 when absent */
} mqim_v5_packet_t;

mqim_status_t mqim_v5_connect_encode(const mqim_v5_connect_t *c, uint8_t *buf, size_t cap,
                                     size_t *needed);
mqim_status_t mqim_v5_publish_encode(const mqim_v5_publish_t *p, uint8_t *buf, size_t cap,
                                     size_t *needed);
mqim_status_t mqim_v5_subscribe_encode(const mqim_v5_subscribe_t *s, uint8_t *buf, size_t cap,
                                       size_t *needed);
/** PUBACK with reason 0 (success) in its short form: four bytes. */
mqim_status_t mqim_v5_puback_encode(uint16_t packet_id, uint8_t *buf, size_t cap, size_t *needed);
/** PINGREQ, or DISCONNECT with reason 0 (normal disconnection): two bytes. */
mqim_status_t mqim_v5_pingreq_encode(uint8_t *buf, size_t cap, size_t *needed);
mqim_status_t mqim_v5_disconnect_encode(uint8_t *buf, size_t cap, size_t *needed);

/**
 * Decode the first packet in buf[0..len). MQIM_OK: *out is filled and
 * *consumed says how many bytes it took. MQIM_MQTT_NEED_MORE: the packet is
 * not complete yet (nothing consumed). Any other status: the stream is
 * broken (bad length, a type a client never receives, reserved flags,
 * malformed properties, QoS 2 or 3, an empty topic, larger than
 * MQIM_V5_MAX_IN_PACKET) and the connection must be closed.
 */
mqim_status_t mqim_v5_decode(const uint8_t *buf, size_t len, mqim_v5_packet_t *out,
                             size_t *consumed);
/** The same for a connection that subscribes: PUBLISH and SUBACK decode
 *  too (mqim_v5_decode, the outbox publisher's, refuses them as
 *  MQIM_MQTT_BAD_TYPE), and max_packet (the whole packet, fixed header
 *  included) is the limit: larger is MQIM_MQTT_TOO_LARGE as soon as the
 *  length is read, before the packet is buffered. */
mqim_status_t mqim_v5_decode_limit(const uint8_t *buf, size_t len, size_t max_packet,
                                   mqim_v5_packet_t *out, size_t *consumed);

/** A readable name for a v5 reason code (logs). */
const char *mqim_v5_reason_str(uint8_t reason);

#endif /* MQIM_GW_MQTT5_H */
