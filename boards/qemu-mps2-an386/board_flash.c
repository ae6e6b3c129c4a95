/* The semihosted flash of board_flash.h. Semihosting: r0 = operation, r1 =
 * its argument block, BKPT 0xAB; the result comes back in r0. */
#include "board_flash.h"

#define SYS_OPEN 0x01u
#define SYS_WRITE 0x05u
#define SYS_READ 0x06u
#define SYS_SEEK 0x0au
#define SYS_FLEN 0x0cu
#define SYS_GET_CMDLINE 0x15u
#define MODE_RB_PLUS 3u  /* "r+b" */
#define MODE_WB_PLUS 7u  /* "w+b" */
#define ERASE_PIECE 64u

static int32_t semihost(uint32_t op, volatile uint32_t *args)
{
    register uint32_t r0 __asm__("r0") = op;
    register volatile uint32_t *r1 __asm__("r1") = args;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return (int32_t)r0;
}

static int32_t flash_fd = -1;

static mqim_status_t file_at(uint32_t addr)
{
    volatile uint32_t a[2] = { (uint32_t)flash_fd, addr };
    return semihost(SYS_SEEK, a) == 0 ? MQIM_OK : MQIM_FLASH_ERROR;
}

static mqim_status_t file_read(uint32_t addr, uint8_t *buf, size_t len)
{
    volatile uint32_t a[3] = { (uint32_t)flash_fd, (uint32_t)(uintptr_t)buf, (uint32_t)len };
    if (file_at(addr) != MQIM_OK) {
        return MQIM_FLASH_ERROR;
    }
    return semihost(SYS_READ, a) == 0 ? MQIM_OK : MQIM_FLASH_ERROR; /* r0: bytes NOT read */
}

static mqim_status_t file_write(uint32_t addr, const uint8_t *buf, size_t len)
{
    volatile uint32_t a[3] = { (uint32_t)flash_fd, (uint32_t)(uintptr_t)buf, (uint32_t)len };
    if (file_at(addr) != MQIM_OK) {
        return MQIM_FLASH_ERROR;
    }
    return semihost(SYS_WRITE, a) == 0 ? MQIM_OK : MQIM_FLASH_ERROR;
}

static mqim_status_t flash_read(void *ctx, uint32_t addr, uint8_t *buf, size_t len)
{
    (void)ctx;
    return file_read(addr, buf, len);
}

/* One unit per write: a kill lands between units. */
static mqim_status_t flash_program(void *ctx, uint32_t addr, const uint8_t *data, size_t len)
{
    (void)ctx;
    if (addr % BOARD_FLASH_UNIT != 0u || len % BOARD_FLASH_UNIT != 0u) {
        return MQIM_FLASH_ERROR;
    }
    for (size_t off = 0; off < len; off += BOARD_FLASH_UNIT) {
        uint8_t u[BOARD_FLASH_UNIT];
        mqim_status_t st = file_read(addr + (uint32_t)off, u, sizeof(u));
        for (size_t i = 0; st == MQIM_OK && i < sizeof(u); i++) {
            u[i] &= data[off + i]; /* NOR: bits only go from 1 to 0 */
        }
        if (st == MQIM_OK) {
            st = file_write(addr + (uint32_t)off, u, sizeof(u));
        }
        if (st != MQIM_OK) {
            return st;
        }
    }
    return MQIM_OK;
}

static mqim_status_t flash_erase(void *ctx, uint32_t page)
{
    static const uint8_t ff[ERASE_PIECE] = {
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    };
    (void)ctx;
    if (page >= BOARD_FLASH_PAGES) {
        return MQIM_FLASH_ERROR;
    }
    for (uint32_t off = 0; off < BOARD_FLASH_PAGE_SIZE; off += ERASE_PIECE) {
        mqim_status_t st = file_write(page * BOARD_FLASH_PAGE_SIZE + off, ff, ERASE_PIECE);
        if (st != MQIM_OK) {
            return st;
        }
    }
    return MQIM_OK;
}

static const mqim_flash_ops_t board_flash_ops = { flash_read, flash_program, flash_erase };

mqim_status_t board_flash_open(const char *path, mqim_flash_t *flash)
{
    uint32_t n = 0;
    volatile uint32_t a[3];
    while (path[n] != '\0') {
        n++;
    }
    a[0] = (uint32_t)(uintptr_t)path;
    a[1] = MODE_RB_PLUS;
    a[2] = n;
    flash_fd = semihost(SYS_OPEN, a);
    if (flash_fd < 0) { /* no file yet: a new, blank flash */
        a[0] = (uint32_t)(uintptr_t)path;
        a[1] = MODE_WB_PLUS;
        a[2] = n;
        flash_fd = semihost(SYS_OPEN, a);
        if (flash_fd < 0) {
            return MQIM_FLASH_ERROR;
        }
    }
    {
        volatile uint32_t l[1] = { (uint32_t)flash_fd };
        if (semihost(SYS_FLEN, l) < (int32_t)(BOARD_FLASH_PAGE_SIZE * BOARD_FLASH_PAGES)) {
            for (uint32_t p = 0; p < BOARD_FLASH_PAGES; p++) {
                if (flash_erase(0, p) != MQIM_OK) {
                    return MQIM_FLASH_ERROR;
                }
            }
        }
    }
    flash->ops = &board_flash_ops;
    flash->ctx = 0;
    flash->page_size = BOARD_FLASH_PAGE_SIZE;
    flash->page_count = BOARD_FLASH_PAGES;
    flash->program_unit = BOARD_FLASH_UNIT;
    return MQIM_OK;
}

void board_cmdline(char *buf, size_t cap)
{
    volatile uint32_t a[2] = { (uint32_t)(uintptr_t)buf, (uint32_t)cap };
    if (cap == 0u) {
        return;
    }
    if (semihost(SYS_GET_CMDLINE, a) != 0) {
        buf[0] = '\0';
    }
    buf[cap - 1u] = '\0';
}
