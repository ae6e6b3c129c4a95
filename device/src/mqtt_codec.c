/* MQTT 3.1.1 codec (mqtt_codec.h). Every encoder counts what it writes
 * through one writer that never passes cap, so the size query and the real
 * encode are the same code path. */
#include "mqim/mqtt_codec.h"

#include "mqim/utf8.h"

typedef struct writer {
    uint8_t *buf;
    size_t cap;
    size_t len;
} writer_t;

static void put_u8(writer_t *w, uint8_t b)
{
    if (w->len < w->cap) {
        w->buf[w->len] = b;
    }
    w->len++;
}

static void put_u16(writer_t *w, uint16_t v)
{
    put_u8(w, (uint8_t)(v >> 8));
    put_u8(w, (uint8_t)(v & 0xffu));
}

static void put_bytes(writer_t *w, const void *data, size_t n)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        put_u8(w, p[i]);
    }
}

/* A length-prefixed string (MQTT "UTF-8 encoded string" or binary data). */
static void put_str(writer_t *w, mqim_str_t s)
{
    put_u16(w, (uint16_t)s.len);
    put_bytes(w, s.ptr, s.len);
}

/* The variable byte integer of mqtt_wire.h, byte by byte through the
 * bounded writer (so a size query writes nothing): the same bytes as
 * mqim_wire_put_varint, which test_mqtt_codec checks. */
static void put_remaining_length(writer_t *w, size_t rl)
{
    do {
        uint8_t b = (uint8_t)(rl % 128u);
        rl /= 128u;
        if (rl > 0u) {
            b = (uint8_t)(b | 0x80u);
        }
        put_u8(w, b);
    } while (rl > 0u);
}

/* Start a packet whose variable header + payload is `rl` bytes. */
static mqim_status_t begin(writer_t *w, uint8_t *buf, size_t cap, uint8_t first, size_t rl)
{
    if (rl > MQIM_MQTT_REMAINING_MAX) {
        return MQIM_MQTT_TOO_LARGE;
    }
    w->buf = buf;
    w->cap = buf != 0 ? cap : 0u;
    w->len = 0;
    put_u8(w, first);
    put_remaining_length(w, rl);
    return MQIM_OK;
}

static mqim_status_t finish(const writer_t *w, size_t *out_len)
{
    *out_len = w->len;
    return w->len <= w->cap ? MQIM_OK : MQIM_BUFFER_TOO_SMALL;
}

static bool str_ok(mqim_str_t s)
{
    return s.len <= 65535u && (s.len == 0u || s.ptr != 0);
}

/* A topic name for PUBLISH or a will: non-empty UTF-8, no wildcard, no NUL. */
static bool topic_name_ok(mqim_str_t t)
{
    if (t.len == 0u || t.len > 65535u || t.ptr == 0 || !mqim_utf8_valid(t.ptr, t.len)) {
        return false;
    }
    for (size_t i = 0; i < t.len; i++) {
        if (t.ptr[i] == '+' || t.ptr[i] == '#' || t.ptr[i] == '\0') {
            return false;
        }
    }
    return true;
}

mqim_status_t mqim_mqtt_encode_connect(const mqim_mqtt_connect_t *c, uint8_t *buf, size_t cap,
                                       size_t *out_len)
{
    writer_t w;
    size_t rl;
    uint8_t flags = 0;
    mqim_status_t st;
    if (c == 0 || out_len == 0 || (buf == 0 && cap > 0u) || c->will_qos > 2u ||
        (c->has_password && !c->has_username) || !str_ok(c->client_id) ||
        (c->client_id.len == 0u && !c->clean_session) ||
        (c->has_username && !str_ok(c->username)) || (c->has_password && !str_ok(c->password)) ||
        (c->has_will && !str_ok(c->will_payload))) {
        return MQIM_BAD_PARAMETER;
    }
    if (c->has_will && !topic_name_ok(c->will_topic)) {
        return MQIM_MQTT_TOPIC;
    }
    /* Variable header: "MQTT", level 4, flags, keep alive = 10 bytes. */
    rl = 10u + 2u + c->client_id.len;
    if (c->has_will) {
        rl += 4u + c->will_topic.len + c->will_payload.len;
        flags = (uint8_t)(flags | 0x04u | (uint8_t)(c->will_qos << 3) | (c->will_retain ? 0x20u : 0u));
    }
    if (c->has_username) {
        rl += 2u + c->username.len;
        flags = (uint8_t)(flags | 0x80u);
    }
    if (c->has_password) {
        rl += 2u + c->password.len;
        flags = (uint8_t)(flags | 0x40u);
    }
    if (c->clean_session) {
        flags = (uint8_t)(flags | 0x02u);
    }
    st = begin(&w, buf, cap, (uint8_t)(MQIM_MQTT_CONNECT << 4), rl);
    if (st != MQIM_OK) {
        return st;
    }
    put_str(&w, MQIM_STR("MQTT"));
    put_u8(&w, 4u);
    put_u8(&w, flags);
    put_u16(&w, c->keep_alive_s);
    put_str(&w, c->client_id);
    if (c->has_will) {
        put_str(&w, c->will_topic);
        put_str(&w, c->will_payload);
    }
    if (c->has_username) {
        put_str(&w, c->username);
    }
    if (c->has_password) {
        put_str(&w, c->password);
    }
    return finish(&w, out_len);
}

/* The whole packet, or its head only (everything before the payload; the
 * remaining length still counts the payload): a sender that has the
 * payload in memory sends it from there, after the head. */
static mqim_status_t encode_publish(const mqim_mqtt_publish_t *p, uint8_t *buf, size_t cap,
                                    size_t *out_len, bool head_only)
{
    writer_t w;
    size_t rl;
    uint8_t first;
    mqim_status_t st;
    if (p == 0 || out_len == 0 || (buf == 0 && cap > 0u) || p->qos > 2u ||
        (p->qos > 0u && p->packet_id == 0u) || (p->payload_len > 0u && p->payload == 0)) {
        return MQIM_BAD_PARAMETER;
    }
    if (!topic_name_ok(p->topic)) {
        return MQIM_MQTT_TOPIC;
    }
    rl = 2u + p->topic.len + (p->qos > 0u ? 2u : 0u) + p->payload_len;
    first = (uint8_t)((MQIM_MQTT_PUBLISH << 4) | (p->dup ? 0x08u : 0u) | (uint8_t)(p->qos << 1) |
                      (p->retain ? 0x01u : 0u));
    st = begin(&w, buf, cap, first, rl);
    if (st != MQIM_OK) {
        return st;
    }
    put_str(&w, p->topic);
    if (p->qos > 0u) {
        put_u16(&w, p->packet_id);
    }
    if (!head_only) {
        put_bytes(&w, p->payload, p->payload_len);
    }
    return finish(&w, out_len);
}

mqim_status_t mqim_mqtt_encode_publish(const mqim_mqtt_publish_t *p, uint8_t *buf, size_t cap,
                                       size_t *out_len)
{
    return encode_publish(p, buf, cap, out_len, false);
}

mqim_status_t mqim_mqtt_encode_publish_head(const mqim_mqtt_publish_t *p, uint8_t *buf, size_t cap,
                                            size_t *out_len)
{
    return encode_publish(p, buf, cap, out_len, true);
}

mqim_status_t mqim_mqtt_encode_ack(mqim_mqtt_type_t type, uint16_t packet_id, uint8_t *buf,
                                   size_t cap, size_t *out_len)
{
    writer_t w;
    uint8_t first;
    if (out_len == 0 || (buf == 0 && cap > 0u) || packet_id == 0u ||
        (type != MQIM_MQTT_PUBACK && type != MQIM_MQTT_PUBREC && type != MQIM_MQTT_PUBREL &&
         type != MQIM_MQTT_PUBCOMP)) {
        return MQIM_BAD_PARAMETER;
    }
    /* PUBREL's fixed-header flags are 0b0010 [MQTT-3.6.1-1]. */
    first = (uint8_t)(((unsigned)type << 4) | (type == MQIM_MQTT_PUBREL ? 0x02u : 0u));
    (void)begin(&w, buf, cap, first, 2u);
    put_u16(&w, packet_id);
    return finish(&w, out_len);
}

static mqim_status_t encode_filters(mqim_mqtt_type_t type, uint16_t packet_id,
                                    const mqim_str_t *filters, const uint8_t *qos, size_t count,
                                    uint8_t *buf, size_t cap, size_t *out_len)
{
    writer_t w;
    size_t rl = 2u;
    mqim_status_t st;
    if (out_len == 0 || (buf == 0 && cap > 0u) || filters == 0 || count == 0u || packet_id == 0u) {
        return MQIM_BAD_PARAMETER;
    }
    for (size_t i = 0; i < count; i++) {
        if (filters[i].len == 0u || !str_ok(filters[i]) || (qos != 0 && qos[i] > 2u)) {
            return MQIM_BAD_PARAMETER;
        }
        rl += 2u + filters[i].len + (qos != 0 ? 1u : 0u);
        if (rl > MQIM_MQTT_REMAINING_MAX) {
            return MQIM_MQTT_TOO_LARGE;
        }
    }
    /* SUBSCRIBE and UNSUBSCRIBE carry flags 0b0010 [MQTT-3.8.1-1, 3.10.1-1]. */
    st = begin(&w, buf, cap, (uint8_t)(((unsigned)type << 4) | 0x02u), rl);
    if (st != MQIM_OK) {
        return st;
    }
    put_u16(&w, packet_id);
    for (size_t i = 0; i < count; i++) {
        put_str(&w, filters[i]);
        if (qos != 0) {
            put_u8(&w, qos[i]);
        }
    }
    return finish(&w, out_len);
}

mqim_status_t mqim_mqtt_encode_subscribe(uint16_t packet_id, const mqim_str_t *filters,
                                         const uint8_t *qos, size_t count, uint8_t *buf,
                                         size_t cap, size_t *out_len)
{
    if (qos == 0) {
        return MQIM_BAD_PARAMETER;
    }
    return encode_filters(MQIM_MQTT_SUBSCRIBE, packet_id, filters, qos, count, buf, cap, out_len);
}

mqim_status_t mqim_mqtt_encode_unsubscribe(uint16_t packet_id, const mqim_str_t *filters,
                                           size_t count, uint8_t *buf, size_t cap,
                                           size_t *out_len)
{
    return encode_filters(MQIM_MQTT_UNSUBSCRIBE, packet_id, filters, 0, count, buf, cap, out_len);
}

mqim_status_t mqim_mqtt_encode_empty(mqim_mqtt_type_t type, uint8_t *buf, size_t cap,
                                     size_t *out_len)
{
    writer_t w;
    if (out_len == 0 || (buf == 0 && cap > 0u) ||
        (type != MQIM_MQTT_PINGREQ && type != MQIM_MQTT_DISCONNECT)) {
        return MQIM_BAD_PARAMETER;
    }
    (void)begin(&w, buf, cap, (uint8_t)((unsigned)type << 4), 0u);
    return finish(&w, out_len);
}

/* ---- decoding ---- */

/* Parse the remaining length at buf[1..]; *hdr gets the fixed header size.
 * An overlong or five-byte length is MQIM_MQTT_BAD_LENGTH (mqtt_wire.h). */
static mqim_status_t read_remaining_length(const uint8_t *buf, size_t len, size_t *rl, size_t *hdr)
{
    size_t pos = 1;
    uint32_t value = 0;
    mqim_status_t st = mqim_wire_get_varint(buf, len, &pos, &value);
    if (st == MQIM_OK) {
        *rl = value;
        *hdr = pos;
    }
    return st;
}

mqim_status_t mqim_mqtt_frame(const uint8_t *buf, size_t len, size_t max_packet, size_t *total)
{
    size_t rl = 0, hdr = 0;
    mqim_status_t st;
    if (total == 0 || (buf == 0 && len > 0u)) {
        return MQIM_BAD_PARAMETER;
    }
    *total = 0;
    st = read_remaining_length(buf, len, &rl, &hdr); /* also: fewer than 2 bytes */
    if (st != MQIM_OK) {
        return st;
    }
    *total = hdr + rl;
    if (rl > max_packet || hdr + rl > max_packet) {
        return MQIM_MQTT_TOO_LARGE;
    }
    return len >= *total ? MQIM_OK : MQIM_MQTT_NEED_MORE;
}

/* A PUBLISH of remaining length rl, of which `avail` bytes after the fixed
 * header are in buf (avail == rl unless the packet is being cut). */
static mqim_status_t decode_publish(const uint8_t *buf, uint8_t flags, size_t hdr, size_t rl,
                                    size_t avail, mqim_mqtt_packet_t *pkt)
{
    const uint8_t *p = buf + hdr;
    size_t tlen, used;
    mqim_mqtt_publish_t *pub = &pkt->publish;
    pub->qos = (uint8_t)((flags >> 1) & 3u);
    pub->dup = (flags & 0x08u) != 0u;
    pub->retain = (flags & 0x01u) != 0u;
    if (pub->qos == 3u) {
        return MQIM_MQTT_PROTOCOL; /* [MQTT-3.3.1-4] */
    }
    if (pub->qos == 0u && pub->dup) {
        return MQIM_MQTT_BAD_FLAGS; /* DUP must be 0 for QoS 0 [MQTT-3.3.1-2] */
    }
    if (rl < 2u) {
        return MQIM_MQTT_BAD_LENGTH;
    }
    if (avail < 2u) {
        return MQIM_MQTT_NEED_MORE;
    }
    tlen = mqim_wire_get_u16(p);
    used = 2u + tlen + (pub->qos > 0u ? 2u : 0u);
    if (used > rl) {
        return MQIM_MQTT_BAD_LENGTH;
    }
    if (used > avail) {
        return MQIM_MQTT_NEED_MORE;
    }
    pub->topic = (mqim_str_t){ (const char *)p + 2, tlen };
    if (!topic_name_ok(pub->topic)) {
        return MQIM_MQTT_TOPIC; /* wildcards are not allowed in PUBLISH [MQTT-3.3.2-2] */
    }
    if (pub->qos > 0u) {
        pub->packet_id = mqim_wire_get_u16(p + 2 + tlen);
        if (pub->packet_id == 0u) {
            return MQIM_MQTT_PROTOCOL;
        }
        pkt->packet_id = pub->packet_id;
    }
    pub->payload = p + used;
    pub->payload_len = avail - used;
    pub->payload_full_len = rl - used;
    pub->truncated = avail < rl;
    return MQIM_OK;
}

mqim_status_t mqim_mqtt_decode(const uint8_t *buf, size_t len, mqim_mqtt_packet_t *pkt)
{
    size_t rl = 0, hdr = 0;
    uint8_t type, flags;
    mqim_status_t st;
    if (pkt == 0 || (buf == 0 && len > 0u)) {
        return MQIM_BAD_PARAMETER;
    }
    *pkt = (mqim_mqtt_packet_t){ 0 };
    st = read_remaining_length(buf, len, &rl, &hdr);
    if (st != MQIM_OK) {
        return st;
    }
    if (len - hdr < rl) {
        return MQIM_MQTT_NEED_MORE;
    }
    type = (uint8_t)(buf[0] >> 4);
    flags = (uint8_t)(buf[0] & 0x0fu);
    pkt->type = (mqim_mqtt_type_t)type;
    pkt->length = hdr + rl;
    switch (type) {
    case MQIM_MQTT_CONNACK:
        if (flags != 0u) {
            st = MQIM_MQTT_BAD_FLAGS;
        } else if (rl != 2u) {
            st = MQIM_MQTT_BAD_LENGTH;
        } else if ((buf[hdr] & 0xfeu) != 0u || buf[hdr + 1u] > MQIM_MQTT_CONNACK_NOT_AUTHORIZED ||
                   (buf[hdr + 1u] != 0u && (buf[hdr] & 1u) != 0u)) {
            /* reserved bits; known return codes; session present only when accepted */
            st = MQIM_MQTT_PROTOCOL;
        } else {
            pkt->session_present = (buf[hdr] & 1u) != 0u;
            pkt->return_code = buf[hdr + 1u];
        }
        break;
    case MQIM_MQTT_PUBLISH:
        st = decode_publish(buf, flags, hdr, rl, rl, pkt);
        break;
    case MQIM_MQTT_PUBACK:
    case MQIM_MQTT_PUBREC:
    case MQIM_MQTT_PUBREL:
    case MQIM_MQTT_PUBCOMP:
    case MQIM_MQTT_UNSUBACK:
        if (flags != (type == MQIM_MQTT_PUBREL ? 0x02u : 0u)) {
            st = MQIM_MQTT_BAD_FLAGS;
        } else if (rl != 2u) {
            st = MQIM_MQTT_BAD_LENGTH;
        } else {
            pkt->packet_id = mqim_wire_get_u16(buf + hdr);
            st = pkt->packet_id == 0u ? MQIM_MQTT_PROTOCOL : MQIM_OK;
        }
        break;
    case MQIM_MQTT_SUBACK:
        if (flags != 0u) {
            st = MQIM_MQTT_BAD_FLAGS;
        } else if (rl < 3u) {
            st = MQIM_MQTT_BAD_LENGTH;
        } else {
            pkt->packet_id = mqim_wire_get_u16(buf + hdr);
            pkt->suback_codes = buf + hdr + 2u;
            pkt->suback_count = rl - 2u;
            st = pkt->packet_id == 0u ? MQIM_MQTT_PROTOCOL : MQIM_OK;
            for (size_t i = 0; st == MQIM_OK && i < pkt->suback_count; i++) {
                uint8_t c = pkt->suback_codes[i];
                if (c > 2u && c != MQIM_MQTT_SUBACK_FAILURE) {
                    st = MQIM_MQTT_PROTOCOL;
                }
            }
        }
        break;
    case MQIM_MQTT_PINGRESP:
        st = flags != 0u ? MQIM_MQTT_BAD_FLAGS : (rl != 0u ? MQIM_MQTT_BAD_LENGTH : MQIM_OK);
        break;
    default:
        st = MQIM_MQTT_BAD_TYPE; /* CONNECT, SUBSCRIBE, ... go client to server only; 0 and 15 are reserved */
        break;
    }
    return st;
}

mqim_status_t mqim_mqtt_decode_publish_head(const uint8_t *buf, size_t len, mqim_mqtt_packet_t *pkt)
{
    size_t rl = 0, hdr = 0;
    mqim_status_t st;
    if (pkt == 0 || (buf == 0 && len > 0u)) {
        return MQIM_BAD_PARAMETER;
    }
    *pkt = (mqim_mqtt_packet_t){ 0 };
    st = read_remaining_length(buf, len, &rl, &hdr);
    if (st != MQIM_OK) {
        return st;
    }
    if ((buf[0] >> 4) != MQIM_MQTT_PUBLISH) {
        return MQIM_MQTT_BAD_TYPE;
    }
    pkt->type = MQIM_MQTT_PUBLISH;
    pkt->length = hdr + rl;
    return decode_publish(buf, (uint8_t)(buf[0] & 0x0fu), hdr, rl, len - hdr < rl ? len - hdr : rl, pkt);
}
