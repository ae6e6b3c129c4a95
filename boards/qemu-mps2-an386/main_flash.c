/* The firmware of the flash outbox power-cut test (test_flash_firmware.py):
 * a real mqim device whose outbox is the flash outbox on the semihosted
 * flash file (board_flash.h). QEMU is killed at random moments while it
 * runs, many times; every boot picks up the outbox the last one left.
 *
 * Command line (QEMU's -append): "boot=N queue=M". It opens the outbox
 * and prints what it holds, connects (plain MQTT over UART1: the test is
 * about the flash, and a TLS handshake per boot would leave time for few
 * boots), queues M messages "flash bN mI" one FLASH_INTERVAL_MS apart,
 * printing "queued flash bN mI ok" once mqim_client_send returned MQIM_OK
 * (the application was told), delivers whatever the outbox holds ("sent"
 * for each `sent` ack: its entry is removed), and exits 0 ("drained") once
 * the outbox is empty. */
#include <stdbool.h>

#include "board.h"
#include "ram_state.h"
#include "board_flash.h"
#include "mqim/client.h"
#include "mqim/flash_outbox.h"
#include "mqim_fw_credentials.h"

enum exit_code {
    EXIT_OK = 0,
    EXIT_CLIENT_INIT = 3,
    EXIT_SEND = 4,
    EXIT_NOT_DRAINED = 11,
    EXIT_REJECTED = 13,
    EXIT_FLASH = 20,
    EXIT_OUTBOX_OPEN = 21
};

#define FLASH_INTERVAL_MS 40u
#define FLASH_DEADLINE_MS 60000u

static mqim_client_t client;
static mqim_flash_outbox_t outbox;
static mqim_flash_page_t pages[BOARD_FLASH_PAGES];
static uint32_t boot;
static unsigned rejected;

/* Message ids come from here: the board's (not random) entropy, with the
 * boot number mixed in so two boots never make the same ids. */
static int32_t entropy(void *ctx, uint8_t *buf, size_t len)
{
    int32_t r = board_entropy(ctx, buf, len);
    for (size_t i = 0; i < len; i++) {
        buf[i] ^= (uint8_t)(boot >> (8u * (i % 4u)));
    }
    return r;
}

static void on_ack(void *ctx, const mqim_ack_t *ack)
{
    (void)ctx;
    if (ack->status == MQIM_ACK_SENT) {
        board_puts("sent\n"); /* its outbox entry is removed */
    } else if (ack->status == MQIM_ACK_REJECTED) {
        rejected++;
    }
}

/* The number after "name=" in the command line, or def. */
static uint32_t arg(const char *cmdline, const char *name, uint32_t def)
{
    for (const char *p = cmdline; *p != '\0'; p++) {
        size_t n = 0;
        while (name[n] != '\0' && p[n] == name[n]) {
            n++;
        }
        if (name[n] == '\0' && p[n] == '=' && (p == cmdline || p[-1] == ' ')) {
            uint32_t v = 0;
            for (p += n + 1u; *p >= '0' && *p <= '9'; p++) {
                v = v * 10u + (uint32_t)(*p - '0');
            }
            return v;
        }
    }
    return def;
}

static void put_num(char *text, size_t *n, uint32_t v)
{
    char digits[10];
    size_t k = 0;
    do {
        digits[k++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0u && k < sizeof(digits));
    while (k > 0u) {
        text[(*n)++] = digits[--k];
    }
}

/* long because: the power-cut test's whole script in order (mount, replay,
 * send, cut), which tests/firmware reads top to bottom. */
int main(void)
{
    static char cmdline[128];
    mqim_flash_t flash;
    mqim_client_config_t cfg;
    uint32_t start, next_send, queue, queued = 0;
    bool was_connected = false;

    board_init();
    board_cmdline(cmdline, sizeof(cmdline));
    boot = arg(cmdline, "boot", 0);
    queue = arg(cmdline, "queue", 0);
    if (board_flash_open("mqim-flash.img", &flash) != MQIM_OK) {
        board_puts("flash: cannot open mqim-flash.img\n");
        board_exit(EXIT_FLASH);
    }
    if (mqim_flash_outbox_open(&outbox, &flash, pages) != MQIM_OK) {
        board_puts("flash outbox: open failed\n");
        board_exit(EXIT_OUTBOX_OPEN);
    }
    board_puts("boot ");
    board_put_u32(boot);
    board_puts(": outbox ");
    board_put_u32(outbox.count);
    board_puts(" entries, next key ");
    board_put_u32(outbox.next_key);
    board_puts(", pages started ");
    board_put_u32(outbox.next_seq - 1u); /* each page taken, collections included */
    board_puts("\n");

    for (size_t i = 0; i < sizeof(cfg); i++) {
        ((uint8_t *)&cfg)[i] = 0;
    }
    cfg.root = MQIM_STR("im");
    cfg.user = MQIM_STR(FW_USER);
    cfg.device = MQIM_STR(FW_DEVICE);
    cfg.password = MQIM_STR(FW_PASSWORD);
    cfg.transport = &board_uart_transport;
    cfg.clock = board_clock_ms;
    cfg.entropy = entropy;
    cfg.outbox = &mqim_flash_outbox_ops;
    cfg.outbox_ctx = &outbox;
    cfg.state = &fw_ram_state_ops; /* a real board keeps it in flash */
    cfg.cb.on_ack = on_ack;
    if (mqim_client_init(&client, &cfg) != MQIM_OK || mqim_client_start(&client) != MQIM_OK) {
        board_exit(EXIT_CLIENT_INIT);
    }
    start = board_clock_ms(NULL);
    next_send = start;
    for (;;) {
        uint32_t now = board_clock_ms(NULL);
        (void)mqim_client_poll(&client, 5);
        if (mqim_client_connected(&client) != was_connected) {
            was_connected = !was_connected;
            board_puts(was_connected ? "connected\n" : "link lost\n");
        }
        if (queued < queue && (int32_t)(now - next_send) >= 0) {
            char text[40];
            size_t n = 0;
            uint32_t key = 0;
            mqim_status_t st;
            const char *prefix = "flash b";
            while (prefix[n] != '\0') {
                text[n] = prefix[n];
                n++;
            }
            put_num(text, &n, boot);
            text[n++] = ' ';
            text[n++] = 'm';
            put_num(text, &n, queued + 1u);
            st = mqim_client_send(&client, MQIM_STR(FW_PEER), (mqim_str_t){ text, n }, &key);
            if (st == MQIM_OK) {
                text[n] = '\0';
                board_puts("queued ");
                board_puts(text);
                board_puts(" ok\n");
                queued++;
            } else if (st != MQIM_OUTBOX_FULL) {
                board_puts("send failed: ");
                board_put_u32((uint32_t)st);
                board_puts("\n");
                board_exit(EXIT_SEND);
            }
            next_send = now + FLASH_INTERVAL_MS;
        }
        if (rejected > 0u) {
            board_exit(EXIT_REJECTED);
        }
        if (queued == queue && outbox.count == 0u) {
            break;
        }
        if (now - start > FLASH_DEADLINE_MS) {
            board_puts("outbox not drained: ");
            board_put_u32(outbox.count);
            board_puts(" left\n");
            board_exit(EXIT_NOT_DRAINED);
        }
    }
    mqim_client_stop(&client);
    board_puts("drained\n");
    board_exit(EXIT_OK);
    return 0;
}
