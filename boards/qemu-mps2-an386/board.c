/* mps2-an386 under QEMU: CMSDK APB UARTs, SysTick, semihosting (board.h).
 *
 * UART facts on QEMU 7.2: DATA +0x00, STATE +0x04 (bit0 TX full, bit1 RX
 * full), CTRL +0x08 (bit0 TX enable, bit1 RX enable), BAUDDIV +0x10 (>= 16).
 * There is no FIFO: one received byte at a time, the next arrives once DATA
 * is read. Waiting for a byte, or for time to pass, the core sleeps (WFI)
 * until an interrupt: the SysTick each millisecond or UART1's receive
 * interrupt (INTSTATUS/INTCLEAR +0x0C, bit 1; IRQ 2). */
#include "board.h"

#include <stdbool.h>

#define UART0 0x40004000u /* console: -serial stdio */
#define UART1 0x40005000u /* the broker link: -serial tcp:127.0.0.1:PORT */
#define REG(base, off) (*(volatile uint32_t *)((base) + (off)))
#define UART_DATA 0x00u
#define UART_STATE 0x04u
#define UART_CTRL 0x08u
#define UART_BAUDDIV 0x10u
#define STATE_TX_FULL 1u
#define STATE_RX_FULL 2u
#define UART_INTCLEAR 0x0cu
#define CTRL_RX_INT 8u
#define UART1_RX_IRQ 2u
#define NVIC_ISER0 (*(volatile uint32_t *)0xe000e100u)

#define SYST_CSR (*(volatile uint32_t *)0xe000e010u)
#define SYST_RVR (*(volatile uint32_t *)0xe000e014u)
#define SYST_CVR (*(volatile uint32_t *)0xe000e018u)
#define CORE_HZ 25000000u /* mps2-an386 SYSCLK */

static volatile uint32_t ms_ticks;
static uint32_t ms_asleep; /* SysTicks that woke the core from WFI */

void mqim_systick_handler(void);
void mqim_systick_handler(void)
{
    ms_ticks++;
}

/* Only wakes the core: the byte stays in DATA for uart_recv. */
void mqim_uart1_rx_handler(void);
void mqim_uart1_rx_handler(void)
{
    REG(UART1, UART_INTCLEAR) = STATE_RX_FULL;
}

/* Sleep until the next interrupt unless a byte is already waiting. With
 * interrupts masked between the check and the WFI, a byte that arrives in
 * between still ends the WFI (a pending interrupt does, masked or not). */
static void sleep_until_event(void)
{
    uint32_t before = ms_ticks;
    __asm volatile("cpsid i" ::: "memory");
    if ((REG(UART1, UART_STATE) & STATE_RX_FULL) == 0u) {
        __asm volatile("wfi" ::: "memory");
    }
    __asm volatile("cpsie i" ::: "memory"); /* the waking SysTick runs here */
    ms_asleep += ms_ticks - before;
}

void board_sleep_ms(void *ctx, uint32_t ms)
{
    uint32_t start = ms_ticks;
    (void)ctx;
    while (ms_ticks - start < ms) {
        sleep_until_event();
    }
}

uint32_t board_ms_asleep(void)
{
    return ms_asleep;
}

static void uart_init(uint32_t base)
{
    REG(base, UART_BAUDDIV) = 16u;
    REG(base, UART_CTRL) = 3u; /* TX and RX */
    /* Read DATA once after enabling RX, or QEMU delivers the first byte
     * about a second late. */
    (void)REG(base, UART_DATA);
}

void board_init(void)
{
    uart_init(UART0);
    uart_init(UART1);
    REG(UART1, UART_CTRL) = 3u | CTRL_RX_INT;
    NVIC_ISER0 = 1u << UART1_RX_IRQ;
    SYST_RVR = CORE_HZ / 1000u - 1u;
    SYST_CVR = 0;
    SYST_CSR = 7u; /* processor clock, interrupt, enable */
}

uint32_t board_clock_ms(void *ctx)
{
    (void)ctx;
    return ms_ticks;
}

static void console_putc(char c)
{
    while ((REG(UART0, UART_STATE) & STATE_TX_FULL) != 0u) {
    }
    REG(UART0, UART_DATA) = (uint8_t)c;
}

void board_puts(const char *s)
{
    while (*s != '\0') {
        if (*s == '\n') {
            console_putc('\r');
        }
        console_putc(*s++);
    }
}

void board_put_u32(uint32_t v)
{
    char buf[11];
    int i = 10;
    buf[i] = '\0';
    do {
        buf[--i] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0u && i > 0);
    board_puts(buf + i);
}

void board_exit(int code)
{
    /* SYS_EXIT_EXTENDED: ADP_Stopped_ApplicationExit with the status. */
    static volatile uint32_t block[2];
    block[0] = 0x20026u;
    block[1] = (uint32_t)code;
    __asm volatile("mov r0, #0x20\n mov r1, %0\n bkpt 0xab" : : "r"(block) : "r0", "r1", "memory");
    for (;;) {
    }
}

/* QEMU's mps2 has no TRNG. This mixes the free-running SysTick counter and
 * the millisecond clock through xorshift: good enough to exercise TLS
 * under emulation, NOT random. A real board reads its TRNG here. */
int32_t board_entropy(void *ctx, uint8_t *buf, size_t len)
{
    static uint32_t x = 0x9e3779b9u;
    static bool warned;
    (void)ctx;
    if (!warned) {
        board_puts("WARNING: entropy is NOT random (QEMU mps2 has no TRNG): for emulation only\n");
        warned = true;
    }
    for (size_t i = 0; i < len; i++) {
        x ^= SYST_CVR + ms_ticks;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (uint8_t)(x >> 24);
    }
    return 0;
}

/* ---- the transport on UART1 (0: nothing before the timeout) ---- */

static int32_t uart_send(void *ctx, const uint8_t *buf, size_t len, uint32_t timeout_ms)
{
    uint32_t start = ms_ticks;
    size_t n = 0;
    (void)ctx;
    while (n < len) {
        if ((REG(UART1, UART_STATE) & STATE_TX_FULL) == 0u) {
            REG(UART1, UART_DATA) = buf[n++];
        } else if (ms_ticks - start >= timeout_ms) {
            break;
        }
    }
    return (int32_t)n;
}

static int32_t uart_recv(void *ctx, uint8_t *buf, size_t cap, uint32_t timeout_ms)
{
    uint32_t start = ms_ticks;
    size_t n = 0;
    (void)ctx;
    while (n < cap) {
        if ((REG(UART1, UART_STATE) & STATE_RX_FULL) != 0u) {
            buf[n++] = (uint8_t)REG(UART1, UART_DATA);
            start = ms_ticks; /* keep reading while bytes flow */
            timeout_ms = 2u;
        } else if (ms_ticks - start >= timeout_ms) {
            break;
        } else {
            sleep_until_event();
        }
    }
    return (int32_t)n;
}

/* A UART has no connection: "open" drops whatever is left of a previous
 * session's bytes, so the new TLS handshake starts clean. */
static int32_t uart_open(void *ctx, uint32_t timeout_ms)
{
    uint8_t junk[64];
    (void)timeout_ms;
    while (uart_recv(ctx, junk, sizeof(junk), 50u) > 0) {
    }
    return 0;
}

static void uart_close(void *ctx)
{
    (void)ctx;
}

const mqim_transport_ops_t board_uart_transport = { uart_send, uart_recv, uart_open, uart_close };
