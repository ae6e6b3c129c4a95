/* Fuzz target: the device IM layer's inbound path. A fake transport gives
 * the client a CONNACK, then one PUBLISH built from the input (byte 0 picks
 * in/msg, in/ack, in/res or the gateway's status, byte 1 the QoS, the seq
 * and store epoch the device remembers, the rest is the payload), and the
 * client handles it with a RAM outbox and RAM state. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mqim/client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_WIRE_SIZE 40000
#include "fuzz_wire.h"

static mqim_device_state_t saved;

static mqim_status_t st_load(void *ctx, mqim_device_state_t *s)
{
    (void)ctx;
    *s = saved;
    return MQIM_OK;
}

static mqim_status_t st_save(void *ctx, const mqim_device_state_t *s)
{
    (void)ctx;
    saved = *s;
    return MQIM_OK;
}

static const mqim_state_ops_t state_ops = { st_load, st_save };
static mqim_client_t client;
static mqim_ram_outbox_t outbox;
static uint8_t outbox_mem[4096];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const topics[] = { "im/u/bob/in/msg", "im/u/bob/in/ack", "im/u/bob/in/res",
                                          "im/gateway/status" };
    mqim_client_config_t cfg;
    mqim_mqtt_publish_t pub;
    size_t len = 0;
    uint32_t key = 0;
    if (size < 2u || size > 20000u) {
        return 0;
    }
    memset(&cfg, 0, sizeof(cfg));
    cfg.root = MQIM_STR("im");
    cfg.user = MQIM_STR("bob");
    cfg.device = MQIM_STR("fz");
    cfg.transport = &transport;
    cfg.clock = t_clock;
    cfg.entropy = t_entropy;
    cfg.outbox = &mqim_ram_outbox_ops;
    cfg.outbox_ctx = &outbox;
    cfg.state = &state_ops;
    saved.last_seq = data[1] % 4u; /* exercise dups, gaps and in-order seqs */
    saved.store_epoch = (data[1] & 0x20u) != 0u ? 111u : 0u; /* an epoch known, or none yet */
    mqim_ram_outbox_init(&outbox, outbox_mem, sizeof(outbox_mem));
    if (mqim_client_init(&client, &cfg) != MQIM_OK || mqim_client_start(&client) != MQIM_OK) {
        abort();
    }
    /* one queued message, so an ack can match something */
    (void)mqim_client_send(&client, MQIM_STR("alice"), MQIM_STR("hi"), &key);
    wire[0] = 0x20;
    wire[1] = 2;
    wire[2] = 0;
    wire[3] = 0;
    memset(&pub, 0, sizeof(pub));
    pub.topic = mqim_str_from_cstr(topics[data[0] % 4u]);
    pub.payload = data + 2;
    pub.payload_len = size - 2u;
    pub.qos = (uint8_t)(data[1] >> 6) % 3u;
    pub.packet_id = 9;
    if (mqim_mqtt_encode_publish(&pub, wire + 4, sizeof(wire) - 4u, &len) != MQIM_OK) {
        abort();
    }
    wire_len = 4u + len;
    wire_off = 0;
    for (int i = 0; i < 4; i++) {
        (void)mqim_client_poll(&client, 0); /* connect, CONNACK, the publish */
    }
    mqim_client_stop(&client);
    return 0;
}
