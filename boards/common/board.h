/**
 * @file board.h
 * @brief What a board gives the common firmware (firmware_main.c): a
 *        console, an exit code for QEMU, the stack's high-water mark, and
 *        the mqim ports (clock, entropy, the broker link as a transport).
 *        mps2-an386: CMSDK UARTs (UART0 console, UART1 the broker link),
 *        SysTick, semihosting exit. virt-rv32: its 16550 UART (the broker
 *        link), the CLINT's mtime, the Zkr seed CSR, semihosting console,
 *        the SiFive test device's exit.
 */
#ifndef MQIM_BOARD_H
#define MQIM_BOARD_H

#include <stddef.h>
#include <stdint.h>

#include "mqim/ports.h"

void board_init(void);

/* console */
void board_puts(const char *s);
void board_put_u32(uint32_t v);

/* Exit QEMU with a status. */
void board_exit(int code) __attribute__((noreturn));

/* Stack bytes ever used since reset (the stack is painted at reset). */
uint32_t board_stack_high_water(void);

/* mqim ports */
uint32_t board_clock_ms(void *ctx);
/* The sleep port: the core sleeps (WFI) until ms passed (mqim_sleep_fn). */
void board_sleep_ms(void *ctx, uint32_t ms);
/* Milliseconds the core spent asleep (in WFI) since reset. */
uint32_t board_ms_asleep(void);
int32_t board_entropy(void *ctx, uint8_t *buf, size_t len);
extern const mqim_transport_ops_t board_uart_transport; /* the broker link, ctx NULL */

#endif /* MQIM_BOARD_H */
