/**
 * @file mqtt_wire.h
 * @brief The MQTT wire vocabulary both codecs share: packet types, the
 *        v3.1.1 return codes and v5 reason codes by name, and the byte-level
 *        primitives (variable byte integer, two-byte integer, length-prefixed
 *        string), so that the device's 3.1.1 codec (device/src/mqtt_codec.c)
 *        and the gateway's v5 codec (gateway/src/io/mqtt5.c) read and write
 *        the same bytes with the same strictness.
 *
 * Like Mosquitto's mqtt_protocol.h: names only, plus inline primitives; no
 * state, no allocation, no I/O. One strictness: a variable byte integer
 * longer than needed (a last byte of zero after a continuation) or longer
 * than four bytes is malformed everywhere (MQTT 3.1.1 section 2.2.3 and v5
 * section 1.5.5: "the minimum number of bytes").
 */
#ifndef MQIM_MQTT_WIRE_H
#define MQIM_MQTT_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "mqim/status.h"
#include "mqim/str.h"

/** Packet types (the fixed header's high nibble), 3.1.1 and v5. */
typedef enum mqim_mqtt_type {
    MQIM_MQTT_CONNECT = 1,
    MQIM_MQTT_CONNACK = 2,
    MQIM_MQTT_PUBLISH = 3,
    MQIM_MQTT_PUBACK = 4,
    MQIM_MQTT_PUBREC = 5,
    MQIM_MQTT_PUBREL = 6,
    MQIM_MQTT_PUBCOMP = 7,
    MQIM_MQTT_SUBSCRIBE = 8,
    MQIM_MQTT_SUBACK = 9,
    MQIM_MQTT_UNSUBSCRIBE = 10,
    MQIM_MQTT_UNSUBACK = 11,
    MQIM_MQTT_PINGREQ = 12,
    MQIM_MQTT_PINGRESP = 13,
    MQIM_MQTT_DISCONNECT = 14,
    MQIM_MQTT_AUTH = 15 /**< v5 only */
} mqim_mqtt_type_t;

#define MQIM_MQTT_REMAINING_MAX 268435455u /**< the largest remaining length (4 bytes) */

/** MQTT 3.1.1 CONNACK return codes (section 3.2.2.3). */
enum {
    MQIM_MQTT_CONNACK_ACCEPTED = 0x00,
    MQIM_MQTT_CONNACK_BAD_PROTOCOL = 0x01,
    MQIM_MQTT_CONNACK_ID_REJECTED = 0x02,
    MQIM_MQTT_CONNACK_UNAVAILABLE = 0x03,
    MQIM_MQTT_CONNACK_BAD_CREDENTIALS = 0x04,
    MQIM_MQTT_CONNACK_NOT_AUTHORIZED = 0x05
};

/** MQTT 3.1.1 SUBACK return code of a refused filter (section 3.9.3). */
#define MQIM_MQTT_SUBACK_FAILURE 0x80u

/** MQTT v5 reason codes (section 2.4): the ones the gateway sends, reads
 *  or names in its logs. 0x80 and above are failures. */
enum {
    MQIM_V5_RC_SUCCESS = 0x00,
    MQIM_V5_RC_DISCONNECT_WITH_WILL = 0x04,
    MQIM_V5_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
    MQIM_V5_RC_UNSPECIFIED_ERROR = 0x80,
    MQIM_V5_RC_MALFORMED_PACKET = 0x81,
    MQIM_V5_RC_PROTOCOL_ERROR = 0x82,
    MQIM_V5_RC_IMPLEMENTATION_SPECIFIC = 0x83,
    MQIM_V5_RC_UNSUPPORTED_PROTOCOL = 0x84,
    MQIM_V5_RC_CLIENT_ID_NOT_VALID = 0x85,
    MQIM_V5_RC_BAD_USER_OR_PASSWORD = 0x86,
    MQIM_V5_RC_NOT_AUTHORIZED = 0x87,
    MQIM_V5_RC_SERVER_UNAVAILABLE = 0x88,
    MQIM_V5_RC_SERVER_BUSY = 0x89,
    MQIM_V5_RC_BANNED = 0x8A,
    MQIM_V5_RC_SERVER_SHUTTING_DOWN = 0x8B,
    MQIM_V5_RC_KEEP_ALIVE_TIMEOUT = 0x8D,
    MQIM_V5_RC_SESSION_TAKEN_OVER = 0x8E,
    MQIM_V5_RC_TOPIC_NAME_INVALID = 0x90,
    MQIM_V5_RC_RECEIVE_MAX_EXCEEDED = 0x93,
    MQIM_V5_RC_PACKET_TOO_LARGE = 0x95,
    MQIM_V5_RC_QUOTA_EXCEEDED = 0x97,
    MQIM_V5_RC_PAYLOAD_FORMAT_INVALID = 0x99,
    MQIM_V5_RC_CONNECTION_RATE_EXCEEDED = 0x9F
};

/** MQTT v5 property identifiers (section 2.2.2.2) the gateway reads or writes. */
enum {
    MQIM_V5_PROP_CORRELATION_DATA = 0x09,
    MQIM_V5_PROP_SERVER_KEEP_ALIVE = 0x13,
    MQIM_V5_PROP_REASON_STRING = 0x1F,
    MQIM_V5_PROP_RECEIVE_MAXIMUM = 0x21,
    MQIM_V5_PROP_MAXIMUM_PACKET_SIZE = 0x27
};

/** Bytes of the variable byte integer for v (v <= MQIM_MQTT_REMAINING_MAX). */
static inline size_t mqim_wire_varint_len(size_t v)
{
    return v < 128u ? 1u : v < 16384u ? 2u : v < 2097152u ? 3u : 4u;
}

/** Write v (<= MQIM_MQTT_REMAINING_MAX) as a variable byte integer at p,
 *  in the fewest bytes; returns the byte after it. p has room for
 *  mqim_wire_varint_len(v) bytes. */
static inline uint8_t *mqim_wire_put_varint(uint8_t *p, size_t v)
{
    do {
        uint8_t b = (uint8_t)(v % 128u);
        v /= 128u;
        if (v > 0u) {
            b = (uint8_t)(b | 0x80u);
        }
        *p++ = b;
    } while (v > 0u);
    return p;
}

/** Read a variable byte integer at buf[*pos..len) and advance *pos past it.
 *  @return MQIM_OK; MQIM_MQTT_NEED_MORE when it may continue past len;
 *          MQIM_MQTT_BAD_LENGTH when longer than four bytes or than needed. */
static inline mqim_status_t mqim_wire_get_varint(const uint8_t *buf, size_t len, size_t *pos,
                                                 uint32_t *out)
{
    uint32_t v = 0, mult = 1;
    for (size_t p = *pos; p < *pos + 4u; p++) {
        uint8_t b;
        if (p >= len) {
            return MQIM_MQTT_NEED_MORE;
        }
        b = buf[p];
        v += (uint32_t)(b & 0x7Fu) * mult;
        mult *= 128u;
        if ((b & 0x80u) == 0u) {
            /* A last byte of zero after a continuation: one value, one encoding. */
            if (p > *pos && b == 0u) {
                return MQIM_MQTT_BAD_LENGTH;
            }
            *pos = p + 1u;
            *out = v;
            return MQIM_OK;
        }
    }
    return MQIM_MQTT_BAD_LENGTH;
}

/** Write a two-byte integer (big-endian) at p; returns the byte after it. */
static inline uint8_t *mqim_wire_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)(v & 0xFFu);
    return p + 2;
}

/** The two-byte integer (big-endian) at p. */
static inline uint16_t mqim_wire_get_u16(const uint8_t *p)
{
    return (uint16_t)(((unsigned)p[0] << 8) | p[1]);
}

/** Write s (s.len <= 65535) as a length-prefixed string or binary data at
 *  p; returns the byte after it. p has room for 2 + s.len bytes. */
static inline uint8_t *mqim_wire_put_str(uint8_t *p, mqim_str_t s)
{
    p = mqim_wire_put_u16(p, (uint16_t)s.len);
    for (size_t i = 0; i < s.len; i++) {
        p[i] = (uint8_t)s.ptr[i];
    }
    return p + s.len;
}

#endif /* MQIM_MQTT_WIRE_H */
