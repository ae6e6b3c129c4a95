/* The smallest complete IM device on libmqim-device: the library's default
 * (microcontroller) options, the RAM outbox that ships with it, a state
 * store in RAM, and the POSIX TCP transport standing in for a board's.
 * docs/device.md walks through it; CI builds it and runs it against the
 * real Mosquitto and gateway (tests/integration/test_device_im.py).
 *
 *   minimal_im HOST PORT USER PASSWORD PEER TEXT
 *
 * Sends TEXT to PEER, waits for the gateway's confirmation (its echo,
 * reported as on_ack MQIM_ACK_SENT), then prints what
 * arrives for three seconds. Exit 0 when the message was sent. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqim/client.h"
#include "mqim_posix_tcp.h" /* a board supplies its own transport, clock and entropy */

/* Device state: a board keeps it in flash, so a reboot continues the
 * presence epochs and the seq stream. RAM is enough for an example. */
static mqim_device_state_t saved_state;

static mqim_status_t state_load(void *ctx, mqim_device_state_t *st)
{
    (void)ctx;
    *st = saved_state;
    return MQIM_OK;
}

static mqim_status_t state_save(void *ctx, const mqim_device_state_t *st)
{
    (void)ctx;
    saved_state = *st;
    return MQIM_OK;
}

static const mqim_state_ops_t ram_state_ops = { state_load, state_save };

typedef struct app {
    uint32_t key;   /* our message's outbox key */
    int sent;       /* 1 sent, -1 rejected */
} app_t;

static void on_message(void *ctx, const mqim_envelope_t *env)
{
    (void)ctx;
    printf("[%llu] %.*s: %.*s\n", (unsigned long long)env->seq, (int)env->from.len, env->from.ptr,
           (int)env->body.len, env->body.ptr);
}

static void on_ack(void *ctx, const mqim_ack_t *ack)
{
    app_t *app = ctx;
    if (ack->status == MQIM_ACK_SENT) {
        app->sent = 1;
        printf("sent seq=%llu\n", (unsigned long long)ack->seq);
    } else if (ack->status == MQIM_ACK_REJECTED) {
        app->sent = -1;
        printf("rejected: %.*s\n", (int)ack->reason.len, ack->reason.ptr);
    } else if (ack->status == MQIM_ACK_DELIVERED) {
        printf("delivered\n");
    }
}

/* Everything a device holds, static: no heap anywhere. */
static mqim_client_t client;
static uint8_t outbox_ram[4096];
static mqim_ram_outbox_t outbox;

int main(int argc, char **argv)
{
    mqim_posix_tcp_t tcp;
    mqim_client_config_t cfg;
    app_t app = { 0, 0 };
    uint32_t start;
    mqim_status_t st;
    if (argc != 7) {
        fprintf(stderr, "usage: %s HOST PORT USER PASSWORD PEER TEXT\n", argv[0]);
        return 2;
    }
    mqim_posix_tcp_init(&tcp, argv[1], (uint16_t)atoi(argv[2]));
    if (mqim_ram_outbox_init(&outbox, outbox_ram, sizeof(outbox_ram)) != MQIM_OK) {
        return 2;
    }
    memset(&cfg, 0, sizeof(cfg));
    cfg.root = MQIM_STR("im");
    cfg.user = mqim_str_from_cstr(argv[3]);
    cfg.device = MQIM_STR("minimal");
    cfg.password = mqim_str_from_cstr(argv[4]);
    cfg.transport = &mqim_posix_tcp_ops;
    cfg.transport_ctx = &tcp;
    cfg.clock = mqim_posix_clock_ms;
    cfg.entropy = mqim_posix_entropy;
    cfg.sleep = mqim_posix_sleep_ms; /* no busy loop while the broker is away */
    cfg.outbox = &mqim_ram_outbox_ops;
    cfg.outbox_ctx = &outbox;
    cfg.state = &ram_state_ops;
    cfg.cb.on_message = on_message;
    cfg.cb.on_ack = on_ack;
    cfg.cb.ctx = &app;
    st = mqim_client_init(&client, &cfg);
    if (st == MQIM_OK) {
        /* Queued first: the outbox keeps it until the gateway confirms it,
         * across reconnects (and reboots, with a persistent outbox). */
        st = mqim_client_send(&client, mqim_str_from_cstr(argv[5]), mqim_str_from_cstr(argv[6]), &app.key);
    }
    if (st == MQIM_OK) {
        st = mqim_client_start(&client);
    }
    if (st != MQIM_OK) {
        fprintf(stderr, "minimal_im: %s\n", mqim_status_str(st));
        return 1;
    }
    /* The device's main loop: all work happens inside poll. */
    start = mqim_posix_clock_ms(NULL);
    while (app.sent == 0 && mqim_posix_clock_ms(NULL) - start < 10000u) {
        (void)mqim_client_poll(&client, 50);
    }
    start = mqim_posix_clock_ms(NULL);
    while (app.sent == 1 && mqim_posix_clock_ms(NULL) - start < 3000u) {
        (void)mqim_client_poll(&client, 50);
    }
    mqim_client_stop(&client); /* says offline, then DISCONNECT */
    return app.sent == 1 ? 0 : 1;
}
