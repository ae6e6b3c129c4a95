/* QEMU's virt machine with an RV32 hart (board.h): the NS16550A UART at
 * 0x10000000 is the broker link (-serial tcp:...), the console is
 * semihosting (the machine has one UART), the clock is the CLINT's mtime
 * (10 MHz), entropy is the Zkr `seed` CSR (QEMU fills it from the host's
 * random source: -cpu rv32,zkr=true), and the SiFive test device at
 * 0x100000 ends QEMU with an exit code.
 *
 * 16550 facts: byte registers RBR/THR +0, IER +1, FCR +2, LCR +3, LSR +5
 * (bit0 data ready, bit5 THR empty); a 16-byte receive FIFO. Polled, no
 * interrupts. Waiting for a byte, or for time to pass, the hart sleeps
 * (WFI) a millisecond at a time: the machine timer interrupt is enabled in
 * mie but not globally (mstatus.MIE stays 0), so its pending bit ends the
 * WFI without a trap (RISC-V privileged spec, WFI); QEMU holds the bytes
 * back while the FIFO is full, so a byte waits at most that millisecond. */
#include "board.h"

#include <stdio.h>

#define UART 0x10000000u
#define UART_REG(off) (*(volatile uint8_t *)(uintptr_t)(UART + (off)))
#define UART_RBR_THR 0u
#define UART_IER 1u
#define UART_FCR 2u
#define UART_LCR 3u
#define UART_LSR 5u
#define LSR_DATA_READY 0x01u
#define LSR_THR_EMPTY 0x20u

#define MTIME_LO (*(volatile uint32_t *)0x0200bff8u)
#define MTIME_HI (*(volatile uint32_t *)0x0200bffcu)
#define MTIME_HZ 10000000u
#define MTIMECMP_LO (*(volatile uint32_t *)0x02004000u)
#define MTIMECMP_HI (*(volatile uint32_t *)0x02004004u)
#define MIE_MTIE (1u << 7)

#define SIFIVE_TEST (*(volatile uint32_t *)0x00100000u)
#define TEST_PASS 0x5555u
#define TEST_FAIL 0x3333u

#define CSR_SEED 0x015 /* Zkr: read-write access only */
#define SEED_OPST_MASK 0xc0000000u
#define SEED_OPST_ES16 0x80000000u
#define SEED_OPST_DEAD 0xc0000000u

void board_init(void)
{
    UART_REG(UART_IER) = 0u;    /* polled */
    UART_REG(UART_LCR) = 0x03u; /* 8N1 */
    UART_REG(UART_FCR) = 0xc7u; /* FIFOs on and cleared, receive trigger at 14 */
}

static uint64_t mtime(void)
{
    uint32_t hi, lo;
    do {
        hi = MTIME_HI;
        lo = MTIME_LO;
    } while (hi != MTIME_HI);
    return ((uint64_t)hi << 32) | lo;
}

uint32_t board_clock_ms(void *ctx)
{
    (void)ctx;
    return (uint32_t)(mtime() / (MTIME_HZ / 1000u));
}

static uint64_t mtime_asleep; /* mtime ticks spent in WFI */

/* WFI until mtime reaches `until` (or at once if it has). */
static void sleep_until(uint64_t until)
{
    uint64_t before = mtime();
    if (before >= until) {
        return;
    }
    MTIMECMP_HI = 0xffffffffu; /* no spurious match while the halves change */
    MTIMECMP_LO = (uint32_t)until;
    MTIMECMP_HI = (uint32_t)(until >> 32);
    __asm__ volatile("csrs mie, %0" ::"r"(MIE_MTIE) : "memory");
    while (mtime() < until) {
        __asm__ volatile("wfi" ::: "memory");
    }
    __asm__ volatile("csrc mie, %0" ::"r"(MIE_MTIE) : "memory");
    mtime_asleep += mtime() - before;
}

void board_sleep_ms(void *ctx, uint32_t ms)
{
    (void)ctx;
    sleep_until(mtime() + (uint64_t)ms * (MTIME_HZ / 1000u));
}

uint32_t board_ms_asleep(void)
{
    return (uint32_t)(mtime_asleep / (MTIME_HZ / 1000u));
}

/* Semihosting call: the RISC-V sequence (uncompressed, so the debugger
 * side recognises it) around ebreak. */
static uint32_t semihost(uint32_t op, const void *arg)
{
    register uint32_t a0 __asm__("a0") = op;
    register const void *a1 __asm__("a1") = arg;
    __asm__ volatile(".option push\n"
                     ".option norvc\n"
                     ".balign 4\n"
                     "slli zero, zero, 0x1f\n"
                     "ebreak\n"
                     "srai zero, zero, 7\n"
                     ".option pop\n"
                     : "+r"(a0)
                     : "r"(a1)
                     : "memory");
    return a0;
}

void board_puts(const char *s)
{
    (void)semihost(0x04u, s); /* SYS_WRITE0 */
}

/* picolibc leaves stdin/stdout/stderr to the application; mbedTLS's
 * memory debugging writes to stderr. All three are the console. */
static int console_putc(char c, FILE *f)
{
    char s[2] = { c, '\0' };
    (void)f;
    board_puts(s);
    return (unsigned char)c;
}

static FILE console = FDEV_SETUP_STREAM(console_putc, NULL, NULL, _FDEV_SETUP_WRITE);
FILE *const stdin = &console;
FILE *const stdout = &console;
FILE *const stderr = &console;

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
    SIFIVE_TEST = code == 0 ? TEST_PASS : ((uint32_t)code << 16) | TEST_FAIL;
    for (;;) {
    }
}

/* 16 bits of entropy per ES16 read of `seed`; BIST and WAIT mean "again". */
int32_t board_entropy(void *ctx, uint8_t *buf, size_t len)
{
    size_t i = 0;
    (void)ctx;
    while (i < len) {
        uint32_t s;
        __asm__ volatile("csrrw %0, %1, zero" : "=r"(s) : "i"(CSR_SEED));
        if ((s & SEED_OPST_MASK) == SEED_OPST_DEAD) {
            return -1;
        }
        if ((s & SEED_OPST_MASK) == SEED_OPST_ES16) {
            buf[i++] = (uint8_t)s;
            if (i < len) {
                buf[i++] = (uint8_t)(s >> 8);
            }
        }
    }
    return 0;
}

/* ---- the transport on the UART (0: nothing before the timeout) ---- */

static int32_t uart_send(void *ctx, const uint8_t *buf, size_t len, uint32_t timeout_ms)
{
    uint32_t start = board_clock_ms(NULL);
    size_t n = 0;
    (void)ctx;
    while (n < len) {
        if ((UART_REG(UART_LSR) & LSR_THR_EMPTY) != 0u) {
            UART_REG(UART_RBR_THR) = buf[n++];
        } else if (board_clock_ms(NULL) - start >= timeout_ms) {
            break;
        }
    }
    return (int32_t)n;
}

static int32_t uart_recv(void *ctx, uint8_t *buf, size_t cap, uint32_t timeout_ms)
{
    uint32_t start = board_clock_ms(NULL);
    size_t n = 0;
    (void)ctx;
    while (n < cap) {
        if ((UART_REG(UART_LSR) & LSR_DATA_READY) != 0u) {
            buf[n++] = UART_REG(UART_RBR_THR);
            start = board_clock_ms(NULL); /* keep reading while bytes flow */
            timeout_ms = 2u;
        } else if (board_clock_ms(NULL) - start >= timeout_ms) {
            break;
        } else {
            board_sleep_ms(NULL, 1u); /* the next byte, or the timeout, a tick at a time */
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
