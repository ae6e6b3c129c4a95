/* Fuzz target: the gateway publisher's MQTT v5 decoder (gateway/src/io/mqtt5.c),
 * run over a byte stream as publisher.c runs it: packet after packet until
 * one is incomplete or the stream is broken. A decoded packet must lie
 * inside the input, its strings too, and decoding the same bytes again
 * must give the same packet. */
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    while (pos < size) {
        mqim_v5_packet_t a, b;
        size_t used = 0, used2 = 0;
        mqim_status_t st = mqim_v5_decode(data + pos, size - pos, &a, &used);
        if (st != MQIM_OK) {
            break;
        }
        if (used == 0u || used > size - pos) {
            abort();
        }
        inside(data + pos, used, a.reason_string);
        if (a.type != MQIM_V5_CONNACK && a.type != MQIM_V5_PUBACK && a.type != MQIM_V5_PINGRESP &&
            a.type != MQIM_V5_DISCONNECT) {
            abort();
        }
        if ((a.type == MQIM_V5_PUBACK && a.packet_id == 0u) || a.receive_max == 0u) {
            abort();
        }
        /* exactly the packet's bytes decode to the same packet */
        if (mqim_v5_decode(data + pos, used, &b, &used2) != MQIM_OK || used2 != used ||
            b.type != a.type || b.reason != a.reason || b.packet_id != a.packet_id ||
            b.receive_max != a.receive_max || b.max_packet != a.max_packet) {
            abort();
        }
        /* one byte short is incomplete, never an error or another packet */
        if (mqim_v5_decode(data + pos, used - 1u, &b, &used2) != MQIM_MQTT_NEED_MORE) {
            abort();
        }
        pos += used;
    }
    return 0;
}
