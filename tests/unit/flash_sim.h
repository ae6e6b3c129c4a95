/* A simulated NOR flash for tests (flash.h), with power cuts.
 *
 * NOR rules, enforced: erase sets a page to 0xFF; program only clears bits,
 * at unit-aligned addresses and lengths, and only into units that are
 * still erased (each unit programmed once, as flash with ECC demands): a
 * violation is counted in `violations`, which a test checks is 0.
 *
 * Power cut: the cut_at-th program or erase (counting from 1) is
 * interrupted: a program leaves a prefix of its units programmed, the next
 * unit partly programmed (each of its bytes fully, partly or not at all),
 * the rest untouched; an erase leaves each byte of the page erased, partly
 * erased (some bits back to 1) or as it was. From then on the flash is
 * "off": every call fails with MQIM_FLASH_ERROR until flash_sim_reboot. */
#ifndef MQIM_FLASH_SIM_H
#define MQIM_FLASH_SIM_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "mqim/flash.h"

#define FLASH_SIM_MAX (64u * 1024u)

typedef struct flash_sim {
    uint8_t mem[FLASH_SIM_MAX];
    uint32_t erases[64]; /* per page */
    uint32_t page_size, page_count, unit;
    unsigned long ops;    /* programs and erases since the last reboot */
    unsigned long cut_at; /* 0: never */
    unsigned long violations;
    uint32_t rng;
    bool off;
} flash_sim_t;

static inline uint32_t flash_sim_rand(flash_sim_t *f)
{
    f->rng ^= f->rng << 13;
    f->rng ^= f->rng >> 17;
    f->rng ^= f->rng << 5;
    return f->rng;
}

static inline mqim_status_t flash_sim_read(void *ctx, uint32_t addr, uint8_t *buf, size_t len)
{
    flash_sim_t *f = ctx;
    if (f->off || addr > f->page_size * f->page_count || len > f->page_size * f->page_count - addr) {
        if (!f->off) {
            f->violations++;
        }
        return MQIM_FLASH_ERROR;
    }
    memcpy(buf, f->mem + addr, len);
    return MQIM_OK;
}

static inline bool flash_sim_cut_now(flash_sim_t *f)
{
    f->ops++;
    if (f->cut_at != 0u && f->ops == f->cut_at) {
        f->off = true;
        return true;
    }
    return false;
}

static inline mqim_status_t flash_sim_program(void *ctx, uint32_t addr, const uint8_t *data, size_t len)
{
    flash_sim_t *f = ctx;
    size_t units, done;
    if (f->off) {
        return MQIM_FLASH_ERROR;
    }
    if (addr % f->unit != 0u || len % f->unit != 0u || addr > f->page_size * f->page_count ||
        len > f->page_size * f->page_count - addr) {
        f->violations++;
        return MQIM_FLASH_ERROR;
    }
    for (size_t i = 0; i < len; i++) {
        if (f->mem[addr + i] != 0xffu) {
            f->violations++; /* a unit programmed twice */
            break;
        }
    }
    units = len / f->unit;
    done = units;
    if (flash_sim_cut_now(f)) {
        done = units > 0u ? flash_sim_rand(f) % (units + 1u) : 0u;
    }
    for (size_t i = 0; i < done * f->unit; i++) {
        f->mem[addr + i] &= data[i];
    }
    if (f->off) {
        if (done < units) { /* the unit being programmed when power went */
            for (size_t i = done * f->unit; i < (done + 1u) * f->unit; i++) {
                uint32_t r = flash_sim_rand(f);
                uint8_t mask = (r & 3u) == 0u ? 0xffu : (r & 3u) == 1u ? 0x00u : (uint8_t)(r >> 8);
                f->mem[addr + i] &= (uint8_t)(data[i] | mask); /* clear some of the bits to clear */
            }
        }
        return MQIM_FLASH_ERROR;
    }
    return MQIM_OK;
}

static inline mqim_status_t flash_sim_erase(void *ctx, uint32_t page)
{
    flash_sim_t *f = ctx;
    uint8_t *p;
    if (f->off) {
        return MQIM_FLASH_ERROR;
    }
    if (page >= f->page_count) {
        f->violations++;
        return MQIM_FLASH_ERROR;
    }
    p = f->mem + page * f->page_size;
    if (flash_sim_cut_now(f)) {
        for (uint32_t i = 0; i < f->page_size; i++) {
            uint32_t r = flash_sim_rand(f);
            p[i] |= (r & 3u) == 0u ? 0xffu : (r & 3u) == 1u ? 0x00u : (uint8_t)(r >> 8);
        }
        return MQIM_FLASH_ERROR;
    }
    memset(p, 0xff, f->page_size);
    f->erases[page % 64u]++;
    return MQIM_OK;
}

static const mqim_flash_ops_t flash_sim_ops = { flash_sim_read, flash_sim_program, flash_sim_erase };

/* A blank flash (or, with keep, the same contents after a power cycle). */
static inline void flash_sim_init(flash_sim_t *f, uint32_t page_size, uint32_t page_count, uint32_t unit, uint32_t seed)
{
    memset(f->mem, 0xff, sizeof(f->mem));
    memset(f->erases, 0, sizeof(f->erases));
    f->page_size = page_size;
    f->page_count = page_count;
    f->unit = unit;
    f->ops = 0;
    f->cut_at = 0;
    f->violations = 0;
    f->rng = seed | 1u;
    f->off = false;
}

static inline void flash_sim_reboot(flash_sim_t *f)
{
    f->off = false;
    f->cut_at = 0;
    f->ops = 0;
}

static inline mqim_flash_t flash_sim_region(flash_sim_t *f)
{
    mqim_flash_t r;
    r.ops = &flash_sim_ops;
    r.ctx = f;
    r.page_size = f->page_size;
    r.page_count = f->page_count;
    r.program_unit = f->unit;
    return r;
}

#endif /* MQIM_FLASH_SIM_H */
