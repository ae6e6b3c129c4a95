/* Fuzz target: the gateway's MQTT v5 decoders (gateway/src/io/mqtt5.c), the
 * outbox publisher's (mqim_v5_decode) and the inbound connection's
 * (mqim_v5_decode_limit: PUBLISH and SUBACK too), each run over the byte
 * stream as conn.c runs it: packet after packet until one is incomplete or
 * the stream is broken. A decoded packet must lie inside the input, its
 * strings too, and decoding the same bytes again must give the same
 * packet. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt5.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void inside(const uint8_t *data, size_t size, mqim_str_t s)
{
    if (s.len > 0u && ((const uint8_t *)s.ptr < data || (const uint8_t *)s.ptr + s.len > data + size)) {
        abort();
    }
}

#define LIMIT 4096u /* the inbound decoder's limit here: small, so it is hit */

static mqim_status_t decode(bool subscriber, const uint8_t *buf, size_t len, mqim_v5_packet_t *out,
                            size_t *used)
{
    return subscriber ? mqim_v5_decode_limit(buf, len, LIMIT, out, used)
                      : mqim_v5_decode(buf, len, out, used);
}

static void check_subscriber(const uint8_t *data, size_t used, const mqim_v5_packet_t *a)
{
    inside(data, used, a->topic);
    inside(data, used, a->payload);
    inside(data, used, a->response_topic);
    inside(data, used, a->correlation);
    if (used > LIMIT) {
        abort();
    }
    if (a->type == MQIM_V5_PUBLISH &&
        (a->topic.len == 0u || a->qos > 1 || (a->qos == 1 && a->packet_id == 0u) ||
         (a->qos == 0 && a->packet_id != 0u))) {
        abort();
    }
    if (a->type == MQIM_V5_SUBACK &&
        (a->sub_count == 0u || a->sub_reasons < data || a->sub_reasons + a->sub_count > data + used)) {
        abort();
    }
}

static void run(bool subscriber, const uint8_t *data, size_t size)
{
    size_t pos = 0;
    while (pos < size) {
        mqim_v5_packet_t a, b;
        size_t used = 0, used2 = 0;
        mqim_status_t st = decode(subscriber, data + pos, size - pos, &a, &used);
        if (st != MQIM_OK) {
            break;
        }
        if (used == 0u || used > size - pos) {
            abort();
        }
        inside(data + pos, used, a.reason_string);
        if (a.type != MQIM_V5_CONNACK && a.type != MQIM_V5_PUBACK && a.type != MQIM_V5_PINGRESP &&
            a.type != MQIM_V5_DISCONNECT &&
            (!subscriber || (a.type != MQIM_V5_PUBLISH && a.type != MQIM_V5_SUBACK))) {
            abort();
        }
        if (subscriber) {
            check_subscriber(data + pos, used, &a);
        }
        if ((a.type == MQIM_V5_PUBACK && a.packet_id == 0u) || a.receive_max == 0u) {
            abort();
        }
        /* exactly the packet's bytes decode to the same packet */
        if (decode(subscriber, data + pos, used, &b, &used2) != MQIM_OK || used2 != used ||
            b.type != a.type || b.reason != a.reason || b.packet_id != a.packet_id ||
            b.receive_max != a.receive_max || b.max_packet != a.max_packet) {
            abort();
        }
        /* one byte short is incomplete, never an error or another packet */
        if (decode(subscriber, data + pos, used - 1u, &b, &used2) != MQIM_MQTT_NEED_MORE) {
            abort();
        }
        pos += used;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(false, data, size);
    run(true, data, size);
    return 0;
}
