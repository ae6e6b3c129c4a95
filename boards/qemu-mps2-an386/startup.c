/* Reset, vector table and fault handler for the Cortex-M4F of mps2-an386. */
#include <stdint.h>

#include "board.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _sstack, _estack;
int main(void);
void mqim_reset_handler(void);
void mqim_systick_handler(void);
void mqim_uart1_rx_handler(void);

#define STACK_PAINT 0xdeadbeefu

/* A fault is a bug: say where, and leave with its own exit code. */
static void fault_handler(void)
{
    volatile uint32_t *cfsr = (volatile uint32_t *)0xe000ed28u;
    volatile uint32_t *bfar = (volatile uint32_t *)0xe000ed38u;
    board_puts("\r\nFAULT: CFSR=");
    board_put_u32(*cfsr);
    board_puts(" BFAR=");
    board_put_u32(*bfar);
    board_puts("\r\n");
    board_exit(99);
}

static void default_handler(void)
{
    board_puts("\r\nunexpected interrupt\r\n");
    board_exit(98);
}

typedef void (*vector_t)(void);

/* The 16 exceptions, then external interrupts up to UART1's receive
 * (IRQ 2 on mps2-an386): a byte on the broker link wakes the core. */
__attribute__((section(".isr_vector"), used)) static const vector_t vectors[16 + 3] = {
    (vector_t)(uintptr_t)&_estack, /* initial stack pointer */
    mqim_reset_handler,
    default_handler, /* NMI */
    fault_handler,   /* HardFault */
    fault_handler,   /* MemManage */
    fault_handler,   /* BusFault */
    fault_handler,   /* UsageFault */
    0, 0, 0, 0,
    default_handler, /* SVCall */
    default_handler, /* DebugMonitor */
    0,
    default_handler, /* PendSV */
    mqim_systick_handler,
    default_handler, /* IRQ 0: UART0 receive (not enabled) */
    default_handler, /* IRQ 1: UART0 transmit (not enabled) */
    mqim_uart1_rx_handler,
};

uint32_t board_stack_high_water(void)
{
    const uint32_t *p = &_sstack;
    while (p < &_estack && *p == STACK_PAINT) {
        p++;
    }
    return (uint32_t)((uintptr_t)&_estack - (uintptr_t)p);
}

void mqim_reset_handler(void)
{
    uint32_t *src = &_sidata, *dst = &_sdata;
    volatile uint32_t *cpacr = (volatile uint32_t *)0xe000ed88u;
    volatile uint32_t *ccr = (volatile uint32_t *)0xe000ed14u;
    uint32_t sp;
    /* FPU on before any code may use it (hard-float ABI). */
    *cpacr |= 0xfu << 20;
    __asm volatile("dsb\n isb");
    *ccr |= 1u << 4; /* trap division by zero */
    while (dst < &_edata) {
        *dst++ = *src++;
    }
    for (dst = &_sbss; dst < &_ebss; dst++) {
        *dst = 0;
    }
    /* Paint the unused stack for the high-water mark. */
    __asm volatile("mov %0, sp" : "=r"(sp));
    for (dst = &_sstack; (uintptr_t)dst < sp - 64u; dst++) {
        *dst = STACK_PAINT;
    }
    board_exit(main());
}
