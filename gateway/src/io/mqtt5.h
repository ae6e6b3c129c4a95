/**
 * @file mqtt5.h
 * @brief The few MQTT v5 packets the gateway's outbox publisher speaks:
 *        CONNECT, PUBLISH (QoS 0/1, correlation data), PINGREQ and
 *        DISCONNECT out; CONNACK, PUBACK, PINGRESP and DISCONNECT in.
 *
 * Pure codec over caller buffers, no I/O: publisher.c drives it over a
 * socket, tests/unit/test_mqtt5.c checks it byte for byte, and fuzz_mqtt5
 * feeds the decoder arbitrary bytes. Every encoder reports the size it
 * needs in *needed, also when the buffer is too small (then it writes
 * nothing and returns MQIM_BUFFER_TOO_SMALL).
 *
 * Why not Paho for this: Paho 1.3.12 spends about 40 syscalls, several
 * mutexes and mallocs per routed message (docs/benchmarks.md); the outbox
 * is a plain stream of QoS 1 publishes and PUBACKs that a single thread can
 * write and read in large batches.
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
};

/** Largest packet the decoder accepts from the broker (CONNACKs with long
 *  reason strings or user properties included); larger is MQIM_MQTT_TOO_LARGE. */
#define MQIM_V5_MAX_IN_PACKET 65536u

typedef struct mqim_v5_connect {
    mqim_str_t client_id;
    mqim_str_t username;    /* len 0: none */
    mqim_str_t password;    /* len 0: none */
    uint16_t keepalive_s;
    int clean_start;        /* nonzero: a new session (the outbox publisher always asks for one) */
} mqim_v5_connect_t;

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
    int type;                 /* MQIM_V5_CONNACK, _PUBACK, _PINGRESP or _DISCONNECT */
    uint8_t reason;           /* CONNACK, PUBACK, DISCONNECT reason code (0: success) */
    int session_present;      /* CONNACK */
    uint16_t packet_id;       /* PUBACK */
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
/** PINGREQ, or DISCONNECT with reason 0 (normal disconnection): two bytes. */
mqim_status_t mqim_v5_pingreq_encode(uint8_t *buf, size_t cap, size_t *needed);
mqim_status_t mqim_v5_disconnect_encode(uint8_t *buf, size_t cap, size_t *needed);

/**
 * Decode the first packet in buf[0..len). MQIM_OK: *out is filled and
 * *consumed says how many bytes it took. MQIM_MQTT_NEED_MORE: the packet is
 * not complete yet (nothing consumed). Any other status: the stream is
 * broken (bad length, a type a publisher never receives, reserved flags,
 * malformed properties, larger than MQIM_V5_MAX_IN_PACKET) and the
 * connection must be closed.
 */
mqim_status_t mqim_v5_decode(const uint8_t *buf, size_t len, mqim_v5_packet_t *out,
                             size_t *consumed);

/** A readable name for a v5 reason code (logs). */
const char *mqim_v5_reason_str(uint8_t reason);

#endif /* MQIM_GW_MQTT5_H */
