/* The firmware of the QEMU tests: a real mqim device on a microcontroller,
 * the same on every board (a Cortex-M4F, an RV32; board.h is what a board
 * provides, FW_BOARD_NAME its name).
 *
 * Over TLS through the board's UART it connects to the broker (presence goes online),
 * sends FW_MESSAGES messages to FW_PEER one FW_INTERVAL_MS apart (queued in
 * the RAM outbox, so a link lost in between loses nothing), waits for the
 * gateway's confirmation of each (on_ack SENT: its echo arrived) and for a reply from the peer (its delivered
 * receipt goes back by itself), then stops cleanly (presence offline) and
 * exits through semihosting. Each failure has its own exit code. */
#include <stdbool.h>
#include <string.h>

#include <mbedtls/memory_buffer_alloc.h>

#include "board.h"
#include "ram_state.h"
#include "mqim/client.h"
#include "mqim_fw_credentials.h"
#include "mqim_tls.h"

enum exit_code {
    EXIT_OK = 0,
    EXIT_TLS_INIT = 2,
    EXIT_CLIENT_INIT = 3,
    EXIT_SEND = 4,
    EXIT_NO_CONNECT = 10,
    EXIT_NOT_SENT = 11,
    EXIT_NO_REPLY = 12,
    EXIT_REJECTED = 13
};

#define FW_MESSAGES 5u
#define FW_INTERVAL_MS 1000u
#define FW_DEADLINE_MS 90000u

/* Everything static: the link map shows the RAM, nothing is allocated
 * outside mbedTLS's pool. */
static unsigned char tls_pool[20 * 1024]; /* the test measures ~12.5 KiB at the high-water mark */
static mqim_tls_t tls;
static mqim_client_t client;
static uint8_t outbox_ram[4096];
static mqim_ram_outbox_t outbox;

static struct progress {
    unsigned queued, sent, replies, rejected, connects;
} progress;

static void on_message(void *ctx, const mqim_envelope_t *env)
{
    (void)ctx;
    if (mqim_str_eq_cstr(env->from, FW_PEER)) {
        progress.replies++;
        board_puts("reply: ");
        for (size_t i = 0; i < env->body.len; i++) {
            char c[2] = { env->body.ptr[i], '\0' };
            board_puts(c);
        }
        board_puts("\n");
    }
}

static void on_ack(void *ctx, const mqim_ack_t *ack)
{
    (void)ctx;
    if (ack->status == MQIM_ACK_SENT) {
        progress.sent++;
        board_puts("sent seq=");
        board_put_u32((uint32_t)ack->seq);
        board_puts("\n");
    } else if (ack->status == MQIM_ACK_REJECTED) {
        progress.rejected++;
        board_puts("rejected\n");
    }
}

static bool outbox_empty(void)
{
    uint32_t key = 0;
    size_t len = 0;
    uint8_t probe[1];
    return mqim_ram_outbox_peek(&outbox, 0, &key, probe, sizeof(probe), &len) == MQIM_NOT_FOUND;
}

static void report_and_exit(int code)
{
    size_t pool_used = 0, pool_blocks = 0;
    mbedtls_memory_buffer_alloc_max_get(&pool_used, &pool_blocks);
    board_puts("TLS pool high-water: ");
    board_put_u32((uint32_t)pool_used);
    board_puts(" bytes\nasleep: ");
    board_put_u32(board_ms_asleep());
    board_puts(" of ");
    board_put_u32(board_clock_ms(NULL));
    board_puts(" ms\nstack high-water: ");
    board_put_u32(board_stack_high_water());
    board_puts(" bytes\nexit ");
    board_put_u32((uint32_t)code);
    board_puts("\n");
    board_exit(code);
}

/* long because: the firmware's whole test script in order (board, TLS, client,
 * the scripted exchange, the report), which the QEMU test reads top to bottom. */
int main(void)
{
    mqim_tls_config_t tc;
    mqim_client_config_t cfg;
    const char *what = "";
    uint32_t start, next_send;
    bool was_connected = false;
    char text[32];

    board_init();
    board_puts("mqim firmware on " FW_BOARD_NAME ": client ");
    board_put_u32((uint32_t)sizeof(mqim_client_t));
    board_puts(" bytes, TLS context ");
    board_put_u32((uint32_t)sizeof(mqim_tls_t));
    board_puts(" bytes, TLS pool ");
    board_put_u32((uint32_t)sizeof(tls_pool));
    board_puts(" bytes\n");
    mbedtls_memory_buffer_alloc_init(tls_pool, sizeof(tls_pool));

    memset(&tc, 0, sizeof(tc));
    tc.lower = &board_uart_transport;
    tc.clock = board_clock_ms;
    tc.entropy = board_entropy;
    tc.server_name = FW_SERVER_NAME;
    tc.ca_pem = fw_ca_pem;
    tc.ca_pem_len = sizeof(fw_ca_pem);
    if (mqim_tls_init(&tls, &tc, &what) != MQIM_OK) {
        board_puts("TLS init failed: ");
        board_puts(what);
        board_puts("\n");
        report_and_exit(EXIT_TLS_INIT);
    }

    (void)mqim_ram_outbox_init(&outbox, outbox_ram, sizeof(outbox_ram));
    memset(&cfg, 0, sizeof(cfg));
    cfg.root = MQIM_STR("im");
    cfg.user = MQIM_STR(FW_USER);
    cfg.device = MQIM_STR(FW_DEVICE);
    cfg.password = MQIM_STR(FW_PASSWORD);
    cfg.transport = &mqim_tls_ops;
    cfg.transport_ctx = &tls;
    cfg.clock = board_clock_ms;
    cfg.entropy = board_entropy;
    cfg.outbox = &mqim_ram_outbox_ops;
    cfg.outbox_ctx = &outbox;
    cfg.state = &fw_ram_state_ops; /* a real board keeps it in flash */
    cfg.cb.on_message = on_message;
    cfg.cb.on_ack = on_ack;
    cfg.sleep = board_sleep_ms; /* no connection: WFI until the retry */
    if (mqim_client_init(&client, &cfg) != MQIM_OK || mqim_client_start(&client) != MQIM_OK) {
        report_and_exit(EXIT_CLIENT_INIT);
    }

    start = board_clock_ms(NULL);
    next_send = start;
    for (;;) {
        uint32_t now = board_clock_ms(NULL);
        /* Block (the core in WFI) until a byte arrives, a timer of the
         * library is due, or the next message is: no busy loop. */
        uint32_t wait = progress.queued == FW_MESSAGES || progress.connects == 0u ? 1000u
                        : (int32_t)(next_send - now) > 0                         ? next_send - now
                                                                                 : 0u;
        (void)mqim_client_poll(&client, wait);
        if (mqim_client_connected(&client) != was_connected) {
            was_connected = !was_connected;
            progress.connects += was_connected ? 1u : 0u;
            board_puts(was_connected ? "connected\n" : "link lost\n");
        }
        /* Queue the next message on schedule, connected or not: the
         * outbox holds it until the gateway confirms it (its echo). */
        if (progress.queued < FW_MESSAGES && (int32_t)(now - next_send) >= 0 && progress.connects > 0u) {
            uint32_t key = 0;
            size_t n = 0;
            const char *prefix = "hello from qemu #";
            while (prefix[n] != '\0') {
                text[n] = prefix[n];
                n++;
            }
            text[n++] = (char)('1' + progress.queued);
            if (mqim_client_send(&client, MQIM_STR(FW_PEER), (mqim_str_t){ text, n }, &key) != MQIM_OK) {
                report_and_exit(EXIT_SEND);
            }
            progress.queued++;
            next_send = now + FW_INTERVAL_MS;
        }
        if (progress.rejected > 0u) {
            report_and_exit(EXIT_REJECTED);
        }
        if (progress.queued == FW_MESSAGES && outbox_empty() && progress.replies > 0u) {
            break; /* every message acknowledged by the gateway (a resend may be acked twice) */
        }
        if (now - start > FW_DEADLINE_MS) {
            report_and_exit(progress.connects == 0u      ? EXIT_NO_CONNECT
                            : !outbox_empty()             ? EXIT_NOT_SENT
                                                          : EXIT_NO_REPLY);
        }
    }
    /* Let the delivered receipt for the reply leave, then go offline. */
    start = board_clock_ms(NULL);
    while (board_clock_ms(NULL) - start < 300u) {
        (void)mqim_client_poll(&client, 10);
    }
    mqim_client_stop(&client);
    board_puts("done: ");
    board_put_u32(progress.sent);
    board_puts(" sent, ");
    board_put_u32(progress.connects);
    board_puts(" connection(s)\n");
    report_and_exit(EXIT_OK);
    return 0;
}
