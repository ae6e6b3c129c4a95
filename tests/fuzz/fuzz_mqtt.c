/* Fuzz target: the MQTT packet decoder. Whatever decodes must frame to the
 * same length, and the packets the client could also send (PUBLISH, acks)
 * must encode back to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mqim/mqtt_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t out[1 << 17];
    mqim_mqtt_packet_t pkt;
    size_t total = 0, len = 0;
    mqim_status_t st = mqim_mqtt_decode(data, size, &pkt);
    mqim_status_t fr = mqim_mqtt_frame(data, size, MQIM_MQTT_REMAINING_MAX + 5u, &total);
    if (st != MQIM_OK) {
        return 0;
    }
    if (fr != MQIM_OK || total != pkt.length || pkt.length > size) {
        abort();
    }
    if (pkt.type == MQIM_MQTT_PUBLISH) {
        if (mqim_mqtt_encode_publish(&pkt.publish, out, sizeof(out), &len) == MQIM_OK &&
            (len != pkt.length || memcmp(out, data, len) != 0)) {
            abort();
        }
    } else if (pkt.type == MQIM_MQTT_PUBACK || pkt.type == MQIM_MQTT_PUBREC ||
               pkt.type == MQIM_MQTT_PUBREL || pkt.type == MQIM_MQTT_PUBCOMP) {
        if (mqim_mqtt_encode_ack(pkt.type, pkt.packet_id, out, sizeof(out), &len) != MQIM_OK ||
            len != pkt.length || memcmp(out, data, len) != 0) {
            abort();
        }
    }
    return 0;
}
