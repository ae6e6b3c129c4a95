/* A device on the full libmqim-device stack (IM layer, session, POSIX TCP,
 * LMDB outbox and state), driven by test_device_im.py.
 *   im_probe HOST PORT USER PASSWORD DEVICE STATE_DIR send PEER TEXT [TIMEOUT_MS]
 *       queue TEXT for PEER, wait for its `sent` ack; exit 0 when acked,
 *       10 when it is only queued (no broker): it stays in the outbox
 *   im_probe ... flush [TIMEOUT_MS]   connect, wait until the outbox is empty
 *   im_probe ... listen N [TIMEOUT_MS] print messages until N arrived (each
 *       is receipted "delivered" automatically); exit 0, or 11 on timeout
 * Other exit codes: 2 usage, 3 init. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqim/client.h"
#include "mqim_posix_lmdb.h"
#include "mqim_posix_tcp.h"

typedef struct app {
    int sent_acks, messages;
} app_t;

static void on_message(void *ctx, const mqim_envelope_t *env)
{
    app_t *a = ctx;
    a->messages++;
    printf("msg seq=%llu from=%.*s id=%.*s body=%.*s\n", (unsigned long long)env->seq,
           (int)env->from.len, env->from.ptr, (int)env->id.len, env->id.ptr, (int)env->body.len,
           env->body.ptr);
    fflush(stdout);
}

static void on_ack(void *ctx, const mqim_ack_t *ack)
{
    app_t *a = ctx;
    static const char *const names[] = { "sent", "delivered", "read", "rejected", "other" };
    printf("ack %s id=%.*s seq=%llu by=%.*s code=%.*s\n", names[ack->status], (int)ack->id.len,
           ack->id.ptr, (unsigned long long)ack->seq, (int)ack->by.len, ack->by.ptr,
           (int)ack->code.len, ack->code.ptr);
    fflush(stdout);
    if (ack->status == MQIM_ACK_SENT) {
        a->sent_acks++;
    }
}

static mqim_client_t client; /* static, as on a device */

int main(int argc, char **argv)
{
    app_t app = { 0, 0 };
    mqim_posix_tcp_t tcp;
    mqim_lmdb_store_t *store = NULL;
    mqim_client_config_t cfg;
    const char *mode;
    uint32_t timeout = 10000, start, key = 0;
    int rc = 0, want = 0;
    if (argc < 8) {
        fprintf(stderr, "usage: see the comment at the top of im_probe.c\n");
        return 2;
    }
    mode = argv[7];
    if (mqim_lmdb_store_open(argv[6], (size_t)16 << 20, &store) != MQIM_OK) {
        return 3;
    }
    mqim_posix_tcp_init(&tcp, argv[1], (uint16_t)atoi(argv[2]));
    memset(&cfg, 0, sizeof(cfg));
    cfg.root = MQIM_STR("im");
    cfg.user = mqim_str_from_cstr(argv[3]);
    cfg.password = mqim_str_from_cstr(argv[4]);
    cfg.device = mqim_str_from_cstr(argv[5]);
    cfg.transport = &mqim_posix_tcp_ops;
    cfg.transport_ctx = &tcp;
    cfg.clock = mqim_posix_clock_ms;
    cfg.entropy = mqim_posix_entropy;
    cfg.outbox = &mqim_lmdb_outbox_ops;
    cfg.outbox_ctx = store;
    cfg.state = &mqim_lmdb_state_ops;
    cfg.state_ctx = store;
    cfg.cb = (mqim_client_callbacks_t){ on_message, on_ack, &app };
    if (mqim_client_init(&client, &cfg) != MQIM_OK || mqim_client_start(&client) != MQIM_OK) {
        return 3;
    }
    if (strcmp(mode, "send") == 0 && argc >= 10) {
        if (mqim_client_send(&client, mqim_str_from_cstr(argv[8]), mqim_str_from_cstr(argv[9]), &key) != MQIM_OK) {
            return 4;
        }
        timeout = argc > 10 ? (uint32_t)atoi(argv[10]) : timeout;
    } else if (strcmp(mode, "flush") == 0) {
        timeout = argc > 8 ? (uint32_t)atoi(argv[8]) : timeout;
    } else if (strcmp(mode, "listen") == 0 && argc >= 9) {
        want = atoi(argv[8]);
        timeout = argc > 9 ? (uint32_t)atoi(argv[9]) : timeout;
    } else {
        return 2;
    }
    start = mqim_posix_clock_ms(NULL);
    for (;;) {
        bool done;
        (void)mqim_client_poll(&client, 20);
        if (strcmp(mode, "listen") == 0) {
            done = app.messages >= want;
        } else {
            done = mqim_client_connected(&client) && mqim_lmdb_outbox_count(store) == 0u;
        }
        if (done) {
            /* a moment for the receipts and acks to leave */
            uint32_t t = mqim_posix_clock_ms(NULL);
            while (mqim_posix_clock_ms(NULL) - t < 300u) {
                (void)mqim_client_poll(&client, 20);
            }
            break;
        }
        if (mqim_posix_clock_ms(NULL) - start > timeout) {
            rc = strcmp(mode, "listen") == 0 ? 11 : 10;
            break;
        }
    }
    printf("outbox=%zu messages=%d sent_acks=%d\n", mqim_lmdb_outbox_count(store), app.messages,
           app.sent_acks);
    mqim_client_stop(&client);
    mqim_lmdb_store_close(store);
    return rc;
}
