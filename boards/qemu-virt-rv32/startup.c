/* Reset and trap entry for the RV32 hart of QEMU's virt machine, in
 * machine mode (-bios none: QEMU's reset vector jumps to the ELF entry). */
#include <stdint.h>

#include "board.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _sstack, _estack;
int main(void);
void mqim_reset_handler(void) __attribute__((noreturn, used));
void mqim_trap_handler(void) __attribute__((noreturn, used));

#define STACK_PAINT 0xdeadbeefu

/* gp for linker relaxation, sp at the top of the stack section, traps to
 * mqim_trap_entry (direct mode: 4-byte aligned), then C. A trap gets a
 * fresh stack: it may come from a stack overflow. */
__asm__(".section .text.entry, \"ax\"\n"
        ".global mqim_reset_entry\n"
        "mqim_reset_entry:\n"
        ".option push\n"
        ".option norelax\n"
        "  la gp, __global_pointer$\n"
        ".option pop\n"
        "  la sp, _estack\n"
        "  la t0, mqim_trap_entry\n"
        "  csrw mtvec, t0\n"
        "  j mqim_reset_handler\n"
        ".balign 4\n"
        "mqim_trap_entry:\n"
        "  la sp, _estack\n"
        "  j mqim_trap_handler\n"
        ".text\n");

static uint32_t csr_mcause(void)
{
    uint32_t v;
    __asm__ volatile("csrr %0, mcause" : "=r"(v));
    return v;
}

static uint32_t csr_mepc(void)
{
    uint32_t v;
    __asm__ volatile("csrr %0, mepc" : "=r"(v));
    return v;
}

static uint32_t csr_mtval(void)
{
    uint32_t v;
    __asm__ volatile("csrr %0, mtval" : "=r"(v));
    return v;
}

/* No interrupt is enabled: any trap is a bug (an illegal instruction, a
 * misaligned or faulting access). Say where, and leave with code 99. */
void mqim_trap_handler(void)
{
    board_puts("\nFAULT: mcause=");
    board_put_u32(csr_mcause());
    board_puts(" mepc=");
    board_put_u32(csr_mepc());
    board_puts(" mtval=");
    board_put_u32(csr_mtval());
    board_puts("\n");
    board_exit(99);
}

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
    uintptr_t sp;
    while (dst < &_edata) {
        *dst++ = *src++;
    }
    for (dst = &_sbss; dst < &_ebss; dst++) {
        *dst = 0;
    }
    /* Paint the unused stack for the high-water mark. */
    __asm__ volatile("mv %0, sp" : "=r"(sp));
    for (dst = &_sstack; (uintptr_t)dst < sp - 64u; dst++) {
        *dst = STACK_PAINT;
    }
    board_exit(main());
}

/* picolibc's exit() ends here (mbedTLS's platform layer names it). */
void _exit(int code) __attribute__((noreturn));
void _exit(int code)
{
    board_exit(code);
}
