/* MQTT v5 codec for the gateway's connections (see mqtt5.h). */
#include "mqtt5.h"

#include <stdbool.h>
#include <string.h>

/* Property identifiers the decoder reads; every other valid one is skipped
 * by its width (MQTT v5, section 2.2.2.2). */
#define PROP_RECEIVE_MAX MQIM_V5_PROP_RECEIVE_MAXIMUM
#define PROP_MAX_PACKET MQIM_V5_PROP_MAXIMUM_PACKET_SIZE
#define PROP_SERVER_KEEPALIVE MQIM_V5_PROP_SERVER_KEEP_ALIVE
#define PROP_REASON_STRING MQIM_V5_PROP_REASON_STRING
#define PROP_CORRELATION MQIM_V5_PROP_CORRELATION_DATA
#define PROP_RESPONSE_TOPIC 0x08u
#define PROP_TOPIC_ALIAS 0x23u
#define PROP_SESSION_EXPIRY 0x11u

enum width { W_BAD, W_BYTE, W_TWO, W_FOUR, W_VARINT, W_STRING, W_PAIR };

static enum width prop_width(uint32_t id)
{
    switch (id) {
    case 0x01: case 0x17: case 0x19: case 0x24: case 0x25: case 0x28: case 0x29: case 0x2A:
        return W_BYTE;
    case 0x13: case 0x21: case 0x22: case 0x23:
        return W_TWO;
    case 0x02: case 0x11: case 0x18: case 0x27:
        return W_FOUR;
    case 0x0B:
        return W_VARINT;
    case 0x03: case 0x08: case 0x09: case 0x12: case 0x15: case 0x16: case 0x1A: case 0x1C:
    case 0x1F:
        return W_STRING; /* UTF-8 strings and binary data: both two-byte length + bytes */
    case 0x26:
        return W_PAIR;
    default:
        return W_BAD;
    }
}

/* The byte-level primitives are the shared ones (mqtt_wire.h): one
 * strictness with the device's codec (overlong varints are malformed). */
#define varint_len mqim_wire_varint_len
#define put_varint mqim_wire_put_varint
#define get_varint mqim_wire_get_varint
#define put_str mqim_wire_put_str

static uint8_t *put_u16(uint8_t *p, size_t v)
{
    return mqim_wire_put_u16(p, (uint16_t)v);
}

static uint8_t *put_u32(uint8_t *p, uint32_t v)
{
    *p++ = (uint8_t)(v >> 24);
    *p++ = (uint8_t)(v >> 16);
    *p++ = (uint8_t)(v >> 8);
    *p++ = (uint8_t)v;
    return p;
}

static bool connect_valid(const mqim_v5_connect_t *c)
{
    return c->client_id.len <= 65535u && c->username.len <= 65535u && c->password.len <= 65535u &&
           (c->password.len == 0u || c->username.len > 0u) && c->will_topic.len <= 65535u &&
           c->will_payload.len <= 65535u && c->will_qos >= 0 && c->will_qos <= 1 &&
           (c->will_topic.len > 0u || c->will_payload.len == 0u);
}

mqim_status_t mqim_v5_connect_encode(const mqim_v5_connect_t *c, uint8_t *buf, size_t cap,
                                     size_t *needed)
{
    size_t rem, total, props;
    uint8_t flags = 0, *p = buf;
    if (c == NULL || needed == NULL || !connect_valid(c)) {
        return MQIM_BAD_PARAMETER;
    }
    props = (c->session_expiry_s > 0u ? 5u : 0u) + (c->max_packet > 0u ? 5u : 0u);
    /* protocol name "MQTT", level 5, flags, keep alive, properties */
    rem = 6u + 1u + 1u + 2u + 1u + props + 2u + c->client_id.len;
    if (c->will_topic.len > 0u) {
        rem += 1u + 2u + c->will_topic.len + 2u + c->will_payload.len; /* no will properties */
        flags |= (uint8_t)(0x04u | ((unsigned)c->will_qos << 3) | (c->will_retain ? 0x20u : 0u));
    }
    if (c->username.len > 0u) {
        rem += 2u + c->username.len;
        flags |= 0x80u;
    }
    if (c->password.len > 0u) {
        rem += 2u + c->password.len;
        flags |= 0x40u;
    }
    if (c->clean_start) {
        flags |= 0x02u;
    }
    total = 1u + varint_len(rem) + rem;
    *needed = total;
    if (buf == NULL || cap < total) {
        return MQIM_BUFFER_TOO_SMALL;
    }
    *p++ = (uint8_t)(MQIM_V5_CONNECT << 4);
    p = put_varint(p, rem);
    p = put_str(p, (mqim_str_t){ "MQTT", 4 });
    *p++ = 5u;
    *p++ = flags;
    p = put_u16(p, c->keepalive_s);
    *p++ = (uint8_t)props; /* under 128: one byte */
    if (c->session_expiry_s > 0u) {
        *p++ = PROP_SESSION_EXPIRY;
        p = put_u32(p, c->session_expiry_s);
    }
    if (c->max_packet > 0u) {
        *p++ = PROP_MAX_PACKET;
        p = put_u32(p, c->max_packet);
    }
    p = put_str(p, c->client_id);
    if (c->will_topic.len > 0u) {
        *p++ = 0u; /* will properties: none */
        p = put_str(p, c->will_topic);
        p = put_str(p, c->will_payload);
    }
    if (c->username.len > 0u) {
        p = put_str(p, c->username);
    }
    if (c->password.len > 0u) {
        p = put_str(p, c->password);
    }
    return MQIM_OK;
}

mqim_status_t mqim_v5_subscribe_encode(const mqim_v5_subscribe_t *s, uint8_t *buf, size_t cap,
                                       size_t *needed)
{
    size_t rem, total;
    uint8_t *p = buf;
    if (s == NULL || needed == NULL || s->filter.len == 0u || s->filter.len > 65535u ||
        s->qos < 0 || s->qos > 1 || s->retain_handling > 2u || s->packet_id == 0u) {
        return MQIM_BAD_PARAMETER;
    }
    rem = 2u + 1u + 2u + s->filter.len + 1u; /* packet id, no properties, filter, options */
    total = 1u + varint_len(rem) + rem;
    *needed = total;
    if (buf == NULL || cap < total) {
        return MQIM_BUFFER_TOO_SMALL;
    }
    *p++ = (uint8_t)((MQIM_V5_SUBSCRIBE << 4) | 0x02u); /* reserved flags 0010 (3.8.1) */
    p = put_varint(p, rem);
    p = put_u16(p, s->packet_id);
    *p++ = 0u;
    p = put_str(p, s->filter);
    *p = (uint8_t)((unsigned)s->qos | (s->retain_handling << 4));
    return MQIM_OK;
}

mqim_status_t mqim_v5_puback_encode(uint16_t packet_id, uint8_t *buf, size_t cap, size_t *needed)
{
    if (needed == NULL || packet_id == 0u) {
        return MQIM_BAD_PARAMETER;
    }
    *needed = 4u;
    if (buf == NULL || cap < 4u) {
        return MQIM_BUFFER_TOO_SMALL;
    }
    buf[0] = (uint8_t)(MQIM_V5_PUBACK << 4);
    buf[1] = 2u; /* reason 0 and no properties: omitted (3.4.2.1) */
    (void)put_u16(buf + 2, packet_id);
    return MQIM_OK;
}

mqim_status_t mqim_v5_publish_encode(const mqim_v5_publish_t *m, uint8_t *buf, size_t cap,
                                     size_t *needed)
{
    size_t props, rem, total;
    uint8_t *p = buf;
    if (m == NULL || needed == NULL || m->topic.len == 0u || m->topic.len > 65535u ||
        m->correlation.len > 65535u || m->qos < 0 || m->qos > 1 ||
        (m->qos == 1 && m->packet_id == 0u)) {
        return MQIM_BAD_PARAMETER;
    }
    props = m->correlation.len > 0u ? 1u + 2u + m->correlation.len : 0u;
    rem = 2u + m->topic.len + (m->qos > 0 ? 2u : 0u) + varint_len(props) + props + m->payload.len;
    if (rem > MQIM_MQTT_REMAINING_MAX) {
        return MQIM_MQTT_TOO_LARGE;
    }
    total = 1u + varint_len(rem) + rem;
    *needed = total;
    if (buf == NULL || cap < total) {
        return MQIM_BUFFER_TOO_SMALL;
    }
    *p++ = (uint8_t)((MQIM_V5_PUBLISH << 4) | ((unsigned)m->qos << 1) | (m->retain ? 1u : 0u));
    p = put_varint(p, rem);
    p = put_str(p, m->topic);
    if (m->qos > 0) {
        p = put_u16(p, m->packet_id);
    }
    p = put_varint(p, props);
    if (props > 0u) {
        *p++ = PROP_CORRELATION;
        p = put_str(p, m->correlation);
    }
    if (m->payload.len > 0u) {
        memcpy(p, m->payload.ptr, m->payload.len);
    }
    return MQIM_OK;
}

static mqim_status_t encode_two(uint8_t first, uint8_t *buf, size_t cap, size_t *needed)
{
    if (needed == NULL) {
        return MQIM_BAD_PARAMETER;
    }
    *needed = 2u;
    if (buf == NULL || cap < 2u) {
        return MQIM_BUFFER_TOO_SMALL;
    }
    buf[0] = first;
    buf[1] = 0u;
    return MQIM_OK;
}

mqim_status_t mqim_v5_pingreq_encode(uint8_t *buf, size_t cap, size_t *needed)
{
    return encode_two((uint8_t)(MQIM_V5_PINGREQ << 4), buf, cap, needed);
}

mqim_status_t mqim_v5_disconnect_encode(uint8_t *buf, size_t cap, size_t *needed)
{
    return encode_two((uint8_t)(MQIM_V5_DISCONNECT << 4), buf, cap, needed);
}

/* Walk a property block buf[pos..end): every property must be one a valid
 * packet may carry and fit inside the block. */
static mqim_status_t read_props(const uint8_t *buf, size_t pos, size_t end, mqim_v5_packet_t *out,
                                size_t *after)
{
    uint32_t plen;
    size_t stop;
    mqim_status_t st = get_varint(buf, end, &pos, &plen);
    if (st != MQIM_OK) {
        return MQIM_MQTT_BAD_LENGTH; /* the packet is complete: a short varint is malformed */
    }
    if (plen > end - pos) {
        return MQIM_MQTT_BAD_LENGTH;
    }
    stop = pos + plen;
    while (pos < stop) {
        uint32_t id, v;
        size_t n;
        if (get_varint(buf, stop, &pos, &id) != MQIM_OK) {
            return MQIM_MQTT_BAD_LENGTH;
        }
        switch (prop_width(id)) {
        case W_BYTE:
            n = 1u;
            break;
        case W_TWO:
            n = 2u;
            break;
        case W_FOUR:
            n = 4u;
            break;
        case W_VARINT:
            if (get_varint(buf, stop, &pos, &v) != MQIM_OK) {
                return MQIM_MQTT_BAD_LENGTH;
            }
            n = 0u;
            break;
        case W_STRING:
        case W_PAIR:
            if (stop - pos < 2u) {
                return MQIM_MQTT_BAD_LENGTH;
            }
            n = 2u + (((size_t)buf[pos] << 8) | buf[pos + 1u]);
            if (prop_width(id) == W_PAIR && n <= stop - pos) {
                size_t second = pos + n;
                if (stop - second < 2u) {
                    return MQIM_MQTT_BAD_LENGTH;
                }
                n += 2u + (((size_t)buf[second] << 8) | buf[second + 1u]);
            }
            break;
        default:
            return MQIM_MQTT_PROTOCOL;
        }
        if (n > stop - pos) {
            return MQIM_MQTT_BAD_LENGTH;
        }
        if (id == PROP_RECEIVE_MAX) {
            out->receive_max = mqim_wire_get_u16(buf + pos);
            if (out->receive_max == 0u) {
                return MQIM_MQTT_PROTOCOL; /* "It is a Protocol Error to include the value 0" */
            }
        } else if (id == PROP_MAX_PACKET) {
            out->max_packet = ((uint32_t)buf[pos] << 24) | ((uint32_t)buf[pos + 1u] << 16) |
                              ((uint32_t)buf[pos + 2u] << 8) | buf[pos + 3u];
        } else if (id == PROP_SERVER_KEEPALIVE) {
            out->server_keepalive = mqim_wire_get_u16(buf + pos);
            out->has_server_keepalive = 1;
        } else if (id == PROP_REASON_STRING) {
            out->reason_string = (mqim_str_t){ (const char *)buf + pos + 2u, n - 2u };
        } else if (id == PROP_RESPONSE_TOPIC) {
            out->response_topic = (mqim_str_t){ (const char *)buf + pos + 2u, n - 2u };
        } else if (id == PROP_CORRELATION) {
            out->correlation = (mqim_str_t){ (const char *)buf + pos + 2u, n - 2u };
        } else if (id == PROP_TOPIC_ALIAS) {
            return MQIM_MQTT_PROTOCOL; /* the gateway agrees no topic aliases (Topic Alias Maximum 0) */
        }
        pos += n;
    }
    if (after != NULL) {
        *after = stop;
    }
    return MQIM_OK;
}

/* PUBLISH from the broker: buf[pos..end) is its variable header and payload. */
static mqim_status_t decode_publish(const uint8_t *buf, uint8_t first, size_t pos, size_t end,
                                    mqim_v5_packet_t *out)
{
    size_t tlen, after = 0;
    mqim_status_t st;
    out->dup = (first >> 3) & 1u;
    out->qos = (first >> 1) & 3u;
    out->retain = first & 1u;
    if (out->qos > 1) {
        return MQIM_MQTT_PROTOCOL; /* QoS 3 is malformed; QoS 2 was never subscribed to */
    }
    if (end - pos < 2u) {
        return MQIM_MQTT_BAD_LENGTH;
    }
    tlen = ((size_t)buf[pos] << 8) | buf[pos + 1u];
    pos += 2u;
    if (tlen > end - pos) {
        return MQIM_MQTT_BAD_LENGTH;
    }
    if (tlen == 0u) {
        return MQIM_MQTT_TOPIC; /* an empty topic needs a topic alias, and none is agreed */
    }
    out->topic = (mqim_str_t){ (const char *)buf + pos, tlen };
    pos += tlen;
    if (out->qos > 0) {
        if (end - pos < 2u) {
            return MQIM_MQTT_BAD_LENGTH;
        }
        out->packet_id = mqim_wire_get_u16(buf + pos);
        if (out->packet_id == 0u) {
            return MQIM_MQTT_PROTOCOL;
        }
        pos += 2u;
    }
    st = read_props(buf, pos, end, out, &after);
    if (st != MQIM_OK) {
        return st;
    }
    out->payload = (mqim_str_t){ (const char *)buf + after, end - after };
    return MQIM_OK;
}

/* SUBACK: packet id, properties, one reason code per filter (at least one). */
static mqim_status_t decode_suback(const uint8_t *buf, size_t pos, size_t end, mqim_v5_packet_t *out)
{
    size_t after = 0;
    mqim_status_t st;
    if (end - pos < 3u) {
        return MQIM_MQTT_BAD_LENGTH;
    }
    out->packet_id = mqim_wire_get_u16(buf + pos);
    if (out->packet_id == 0u) {
        return MQIM_MQTT_PROTOCOL;
    }
    st = read_props(buf, pos + 2u, end, out, &after);
    if (st != MQIM_OK) {
        return st;
    }
    if (after == end) {
        return MQIM_MQTT_BAD_LENGTH;
    }
    out->sub_reasons = buf + after;
    out->sub_count = end - after;
    return MQIM_OK;
}

/* The packet types without a payload of their own. */
static mqim_status_t decode_control(const uint8_t *buf, size_t pos, size_t end, size_t rem,
                                    mqim_v5_packet_t *out)
{
    switch (out->type) {
    case MQIM_V5_CONNACK:
        if (rem < 2u || (buf[pos] & 0xFEu) != 0u) {
            return rem < 2u ? MQIM_MQTT_BAD_LENGTH : MQIM_MQTT_PROTOCOL;
        }
        out->session_present = buf[pos] & 1u;
        out->reason = buf[pos + 1u];
        /* A v3 broker answers a v5 CONNECT with a 2-byte CONNACK (return
         * code 1, unacceptable protocol version): no property block. */
        return rem == 2u ? MQIM_OK : read_props(buf, pos + 2u, end, out, NULL);
    case MQIM_V5_PUBACK:
        if (rem < 2u) {
            return MQIM_MQTT_BAD_LENGTH;
        }
        out->packet_id = mqim_wire_get_u16(buf + pos);
        if (out->packet_id == 0u) {
            return MQIM_MQTT_PROTOCOL;
        }
        if (rem > 2u) {
            out->reason = buf[pos + 2u];
        }
        return rem > 3u ? read_props(buf, pos + 3u, end, out, NULL) : MQIM_OK;
    case MQIM_V5_PINGRESP:
        return rem == 0u ? MQIM_OK : MQIM_MQTT_BAD_LENGTH;
    case MQIM_V5_DISCONNECT:
        if (rem > 0u) {
            out->reason = buf[pos];
        }
        return rem > 1u ? read_props(buf, pos + 1u, end, out, NULL) : MQIM_OK;
    case MQIM_V5_SUBACK:
        return decode_suback(buf, pos, end, out);
    default:
        return MQIM_MQTT_BAD_TYPE; /* a broker sends a client nothing else */
    }
}

/* max_rem: the largest remaining length (mqim_v5_decode); max_total: the
 * largest whole packet (mqim_v5_decode_limit); 0: not that check.
 * subscriber: PUBLISH and SUBACK are packets this client receives. */
static mqim_status_t decode(const uint8_t *buf, size_t len, size_t max_rem, size_t max_total,
                            bool subscriber, mqim_v5_packet_t *out, size_t *consumed)
{
    size_t pos = 1u, end;
    uint32_t rem;
    uint8_t first;
    mqim_status_t st;
    if (buf == NULL || out == NULL || consumed == NULL) {
        return MQIM_BAD_PARAMETER;
    }
    if (len < 2u) {
        return MQIM_MQTT_NEED_MORE;
    }
    first = buf[0];
    st = get_varint(buf, len, &pos, &rem);
    if (st != MQIM_OK) {
        return st;
    }
    if ((max_rem > 0u && rem > max_rem) || (max_total > 0u && (max_total < pos || (size_t)rem > max_total - pos))) {
        return MQIM_MQTT_TOO_LARGE;
    }
    if (len - pos < rem) {
        return MQIM_MQTT_NEED_MORE;
    }
    end = pos + rem;
    memset(out, 0, sizeof(*out));
    out->type = first >> 4;
    out->receive_max = 65535u;
    if (!subscriber && (out->type == MQIM_V5_PUBLISH || out->type == MQIM_V5_SUBACK)) {
        return MQIM_MQTT_BAD_TYPE; /* the outbox publisher subscribes to nothing */
    }
    if (out->type == MQIM_V5_PUBLISH) {
        st = decode_publish(buf, first, pos, end, out);
    } else if ((first & 0x0Fu) != 0u) {
        return MQIM_MQTT_BAD_FLAGS; /* no other type a broker sends has flags */
    } else {
        st = decode_control(buf, pos, end, rem, out);
    }
    if (st == MQIM_OK) {
        *consumed = end;
    }
    return st;
}

mqim_status_t mqim_v5_decode(const uint8_t *buf, size_t len, mqim_v5_packet_t *out,
                             size_t *consumed)
{
    return decode(buf, len, MQIM_V5_MAX_IN_PACKET, 0u, false, out, consumed);
}

mqim_status_t mqim_v5_decode_limit(const uint8_t *buf, size_t len, size_t max_packet,
                                   mqim_v5_packet_t *out, size_t *consumed)
{
    if (max_packet < 2u) {
        return MQIM_BAD_PARAMETER;
    }
    return decode(buf, len, 0u, max_packet, true, out, consumed);
}

const char *mqim_v5_reason_str(uint8_t reason)
{
    switch (reason) {
    case MQIM_V5_RC_SUCCESS: return "success";
    case MQIM_V5_RC_DISCONNECT_WITH_WILL: return "disconnect with will";
    case MQIM_V5_RC_NO_MATCHING_SUBSCRIBERS: return "no matching subscribers";
    case MQIM_V5_RC_UNSPECIFIED_ERROR: return "unspecified error";
    case MQIM_V5_RC_MALFORMED_PACKET: return "malformed packet";
    case MQIM_V5_RC_PROTOCOL_ERROR: return "protocol error";
    case MQIM_V5_RC_IMPLEMENTATION_SPECIFIC: return "implementation specific error";
    case MQIM_V5_RC_UNSUPPORTED_PROTOCOL: return "unsupported protocol version";
    case MQIM_V5_RC_CLIENT_ID_NOT_VALID: return "client identifier not valid";
    case MQIM_V5_RC_BAD_USER_OR_PASSWORD: return "bad user name or password";
    case MQIM_V5_RC_NOT_AUTHORIZED: return "not authorized";
    case MQIM_V5_RC_SERVER_UNAVAILABLE: return "server unavailable";
    case MQIM_V5_RC_SERVER_BUSY: return "server busy";
    case MQIM_V5_RC_BANNED: return "banned";
    case MQIM_V5_RC_SERVER_SHUTTING_DOWN: return "server shutting down";
    case MQIM_V5_RC_KEEP_ALIVE_TIMEOUT: return "keep alive timeout";
    case MQIM_V5_RC_SESSION_TAKEN_OVER: return "session taken over";
    case MQIM_V5_RC_TOPIC_NAME_INVALID: return "topic name invalid";
    case MQIM_V5_RC_RECEIVE_MAX_EXCEEDED: return "receive maximum exceeded";
    case MQIM_V5_RC_PACKET_TOO_LARGE: return "packet too large";
    case MQIM_V5_RC_QUOTA_EXCEEDED: return "quota exceeded";
    case MQIM_V5_RC_PAYLOAD_FORMAT_INVALID: return "payload format invalid";
    case MQIM_V5_RC_CONNECTION_RATE_EXCEEDED: return "connection rate exceeded";
    default: return "other reason";
    }
}
