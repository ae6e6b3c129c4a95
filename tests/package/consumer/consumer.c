/* A program outside the mqim tree, built by tests/package/test_package.py
 * three ways: against the installed CMake package (find_package), against
 * the installed pkg-config files, and from device/sources.cmake. It uses
 * what an application on Linux uses: the library with its default options,
 * the POSIX port's TLS transport (mbedTLS) and LMDB outbox and state.
 *
 *   mqim_consumer HOST PORT CA_FILE STATE_DIR USER PASSWORD PEER TEXT
 *
 * Prints "mqim VERSION", sends TEXT to PEER over TLS and exits 0 once the
 * gateway acknowledged it `sent` (1 otherwise). Built with
 * -DMQIM_EXPECTED_VERSION="x.y.z" (the version the build system saw), it
 * checks that the header says the same. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqim/client.h"
#include "mqim/version.h"
#include "mqim_posix_lmdb.h"
#include "mqim_posix_tls.h"

static mqim_client_t client; /* static: the library allocates nothing */

static void on_ack(void *ctx, const mqim_ack_t *ack)
{
    int *sent = ctx;
    if (ack->status == MQIM_ACK_SENT) {
        *sent = 1;
        printf("sent seq=%llu\n", (unsigned long long)ack->seq);
    } else if (ack->status == MQIM_ACK_REJECTED) {
        *sent = -1;
        printf("rejected: %.*s\n", (int)ack->reason.len, ack->reason.ptr);
    }
}

int main(int argc, char **argv)
{
    mqim_posix_tcp_t tcp;
    mqim_posix_tls_config_t tls_cfg;
    mqim_posix_tls_t *tls;
    mqim_lmdb_store_t *store = NULL;
    mqim_client_config_t cfg;
    char err[256];
    uint32_t key, start;
    int sent = 0;
    mqim_status_t st;

    printf("mqim %s\n", MQIM_VERSION_STRING);
#ifdef MQIM_EXPECTED_VERSION
    if (strcmp(MQIM_VERSION_STRING, MQIM_EXPECTED_VERSION) != 0) {
        fprintf(stderr, "version.h says %s, the build system %s\n", MQIM_VERSION_STRING, MQIM_EXPECTED_VERSION);
        return 3;
    }
#endif
    if (argc != 9) {
        fprintf(stderr, "usage: %s HOST PORT CA_FILE STATE_DIR USER PASSWORD PEER TEXT\n", argv[0]);
        return 2;
    }
    mqim_posix_tcp_init(&tcp, argv[1], (uint16_t)atoi(argv[2]));
    memset(&tls_cfg, 0, sizeof(tls_cfg));
    tls_cfg.ca_file = argv[3];
    tls_cfg.server_name = "localhost";
    tls = mqim_posix_tls_new(&tcp, &tls_cfg, err, sizeof(err));
    if (tls == NULL) {
        fprintf(stderr, "tls: %s\n", err);
        return 1;
    }
    st = mqim_lmdb_store_open(argv[4], (size_t)1 << 20, &store);
    if (st != MQIM_OK) {
        fprintf(stderr, "state: %s\n", mqim_status_str(st));
        mqim_posix_tls_free(tls);
        return 1;
    }
    memset(&cfg, 0, sizeof(cfg));
    cfg.root = MQIM_STR("im");
    cfg.user = mqim_str_from_cstr(argv[5]);
    cfg.device = MQIM_STR("consumer");
    cfg.password = mqim_str_from_cstr(argv[6]);
    cfg.transport = &mqim_posix_tls_ops;
    cfg.transport_ctx = tls;
    cfg.clock = mqim_posix_clock_ms;
    cfg.entropy = mqim_posix_entropy;
    cfg.outbox = &mqim_lmdb_outbox_ops;
    cfg.outbox_ctx = store;
    cfg.state = &mqim_lmdb_state_ops;
    cfg.state_ctx = store;
    cfg.cb.on_ack = on_ack;
    cfg.cb.ctx = &sent;
    st = mqim_client_init(&client, &cfg);
    if (st == MQIM_OK) {
        st = mqim_client_send(&client, mqim_str_from_cstr(argv[7]), mqim_str_from_cstr(argv[8]), &key);
    }
    if (st == MQIM_OK) {
        st = mqim_client_start(&client);
    }
    if (st == MQIM_OK) {
        start = mqim_posix_clock_ms(NULL);
        while (sent == 0 && mqim_posix_clock_ms(NULL) - start < 20000u) {
            (void)mqim_client_poll(&client, 50);
        }
        mqim_client_stop(&client);
    } else {
        fprintf(stderr, "client: %s\n", mqim_status_str(st));
    }
    mqim_lmdb_store_close(store);
    mqim_posix_tls_free(tls);
    return sent == 1 ? 0 : 1;
}
