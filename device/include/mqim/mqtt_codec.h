/**
 * @file mqtt_codec.h
 * @brief MQTT 3.1.1 packet codec: pure functions over caller buffers, no
 *        allocation, no I/O. The session layer (next) owns sockets and state.
 *
 * Encoders write exactly the packet's bytes (binary: no NUL) and report the
 * size they need in *out_len, also on MQIM_BUFFER_TOO_SMALL, so
 * buf = NULL, cap = 0 is a size query. Decoders are strict: reserved flags,
 * remaining-length form and limits, exact lengths of fixed-size packets,
 * QoS 3, packet id 0, wildcards in PUBLISH topics are all rejected with their
 * own status. Decoded strings and payloads point into the input buffer.
 */
#ifndef MQIM_MQTT_CODEC_H
#define MQIM_MQTT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqim/mqtt_wire.h"
#include "mqim/status.h"
#include "mqim/str.h"

/* Packet types, return codes and the byte-level primitives: mqtt_wire.h,
 * shared with the gateway's v5 codec. */

typedef struct mqim_mqtt_connect {
    mqim_str_t client_id;
    mqim_str_t username;     /**< sent when has_username */
    mqim_str_t password;     /**< sent when has_password (needs has_username) */
    mqim_str_t will_topic;   /**< sent when has_will */
    mqim_str_t will_payload;
    uint16_t keep_alive_s;
    uint8_t will_qos;
    bool will_retain;
    bool has_will;
    bool has_username;
    bool has_password;
    bool clean_session;
} mqim_mqtt_connect_t;

typedef struct mqim_mqtt_publish {
    mqim_str_t topic;
    const uint8_t *payload;
    size_t payload_len;
    uint16_t packet_id; /**< 1..65535 when qos > 0, ignored for qos 0 */
    uint8_t qos;
    bool retain;
    bool dup;
    /** Decoding only: true when the packet was larger than the receive
     *  buffer and payload holds only its first payload_len bytes. */
    bool truncated;
    size_t payload_full_len; /**< decoding only: the whole payload's length */
} mqim_mqtt_publish_t;

/** One decoded packet a client receives. */
typedef struct mqim_mqtt_packet {
    mqim_mqtt_type_t type;
    size_t length;           /**< bytes of the whole packet in the input */
    uint16_t packet_id;      /**< PUBACK/PUBREC/PUBREL/PUBCOMP/SUBACK/UNSUBACK, PUBLISH qos > 0 */
    bool session_present;    /**< CONNACK */
    uint8_t return_code;     /**< CONNACK: 0 accepted, 1..5 refused */
    const uint8_t *suback_codes; /**< SUBACK: one per filter: 0, 1, 2 or 0x80 */
    size_t suback_count;
    mqim_mqtt_publish_t publish; /**< PUBLISH */
} mqim_mqtt_packet_t;

/* ---- encoders ---- */

/**
 * CONNECT, protocol level 4. Strings must be at most 65535 bytes; the
 * client id may be empty only with clean_session.
 * @return MQIM_OK, MQIM_BUFFER_TOO_SMALL, MQIM_BAD_PARAMETER (NULL, will QoS
 *         > 2, password without username, empty client id without clean
 *         session, a string over 65535 bytes), MQIM_MQTT_TOPIC (will topic),
 *         MQIM_MQTT_TOO_LARGE.
 */
mqim_status_t mqim_mqtt_encode_connect(const mqim_mqtt_connect_t *c, uint8_t *buf, size_t cap,
                                       size_t *out_len);

/**
 * PUBLISH. @return MQIM_OK, MQIM_BUFFER_TOO_SMALL, MQIM_BAD_PARAMETER (qos > 2,
 *         packet id 0 with qos > 0, NULL), MQIM_MQTT_TOPIC, MQIM_MQTT_TOO_LARGE.
 */
mqim_status_t mqim_mqtt_encode_publish(const mqim_mqtt_publish_t *p, uint8_t *buf, size_t cap,
                                       size_t *out_len);

/**
 * The head of a PUBLISH: fixed header (its remaining length counts the
 * payload), topic and packet id; the payload follows it on the wire from
 * wherever the caller keeps it (a gather send). *out_len is the head's
 * length. @return as mqim_mqtt_encode_publish.
 */
mqim_status_t mqim_mqtt_encode_publish_head(const mqim_mqtt_publish_t *p, uint8_t *buf, size_t cap,
                                            size_t *out_len);

/**
 * PUBACK, PUBREC, PUBREL (flags 0b0010) or PUBCOMP.
 * @return MQIM_OK, MQIM_BUFFER_TOO_SMALL, MQIM_BAD_PARAMETER (other type, id 0).
 */
mqim_status_t mqim_mqtt_encode_ack(mqim_mqtt_type_t type, uint16_t packet_id, uint8_t *buf,
                                   size_t cap, size_t *out_len);

/**
 * SUBSCRIBE with `count` filters (1..) and their requested QoS.
 * @return MQIM_OK, MQIM_BUFFER_TOO_SMALL, MQIM_BAD_PARAMETER (count 0, id 0,
 *         qos > 2, empty filter or over 65535 bytes), MQIM_MQTT_TOO_LARGE.
 */
mqim_status_t mqim_mqtt_encode_subscribe(uint16_t packet_id, const mqim_str_t *filters,
                                         const uint8_t *qos, size_t count, uint8_t *buf,
                                         size_t cap, size_t *out_len);

/** UNSUBSCRIBE; statuses as for subscribe. */
mqim_status_t mqim_mqtt_encode_unsubscribe(uint16_t packet_id, const mqim_str_t *filters,
                                           size_t count, uint8_t *buf, size_t cap,
                                           size_t *out_len);

/** PINGREQ or DISCONNECT (two bytes). @return MQIM_OK, MQIM_BUFFER_TOO_SMALL, MQIM_BAD_PARAMETER. */
mqim_status_t mqim_mqtt_encode_empty(mqim_mqtt_type_t type, uint8_t *buf, size_t cap,
                                     size_t *out_len);

/* ---- decoding ---- */

/**
 * Find the length of the packet at the start of buf without decoding it.
 * @param max_packet the largest packet accepted (whole packet, bytes).
 * @param[out] total the packet's full length when known.
 * @return MQIM_OK (a whole packet is there), MQIM_MQTT_NEED_MORE (*total is
 *         the full length when the header is complete, else 0),
 *         MQIM_MQTT_BAD_LENGTH (more than 4 length bytes, or a non-minimal
 *         encoding), MQIM_MQTT_TOO_LARGE (*total is the full length),
 *         MQIM_BAD_PARAMETER.
 */
mqim_status_t mqim_mqtt_frame(const uint8_t *buf, size_t len, size_t max_packet, size_t *total);

/**
 * Decode the head of a PUBLISH too large to hold: buf has its first len
 * bytes (fixed header, topic, packet id and the start of the payload).
 * The publish is checked as in mqim_mqtt_decode; publish.truncated is set,
 * publish.payload_len counts the payload bytes present and
 * publish.payload_full_len the whole payload; pkt->length is the whole
 * packet's length, so the caller knows how many bytes to skip.
 * @return MQIM_OK, MQIM_MQTT_NEED_MORE (the topic or packet id is not all
 *         there), MQIM_MQTT_BAD_TYPE (not a PUBLISH), the PUBLISH errors of
 *         mqim_mqtt_decode, MQIM_BAD_PARAMETER.
 */
mqim_status_t mqim_mqtt_decode_publish_head(const uint8_t *buf, size_t len, mqim_mqtt_packet_t *pkt);

/**
 * Decode the one whole packet at the start of buf (use mqim_mqtt_frame
 * first on a stream). Only packets a client receives are accepted.
 * @return MQIM_OK, MQIM_MQTT_NEED_MORE, MQIM_MQTT_BAD_LENGTH,
 *         MQIM_MQTT_BAD_FLAGS, MQIM_MQTT_BAD_TYPE, MQIM_MQTT_PROTOCOL,
 *         MQIM_MQTT_TOPIC, MQIM_MQTT_TOO_LARGE, MQIM_BAD_PARAMETER.
 */
mqim_status_t mqim_mqtt_decode(const uint8_t *buf, size_t len, mqim_mqtt_packet_t *pkt);

#endif /* MQIM_MQTT_CODEC_H */
