/**
 * @file flash.h
 * @brief The flash port: what a board supplies so the flash outbox
 *        (flash_outbox.h) can keep messages across power loss.
 *
 * The port exposes a region of NOR flash made of equal erase pages, with
 * NOR semantics:
 *   - erase sets every byte of one page to 0xFF;
 *   - program only turns 1 bits into 0 (the library programs each unit at
 *     most once between two erases, so flash with ECC that forbids a second
 *     program of a word, like the STM32L4's 8-byte double words, works);
 *   - program addresses and lengths are multiples of the program unit
 *     (1, 2, 4, 8 or 16 bytes), which the port declares;
 *   - read returns what is there, any address and length.
 * Addresses are byte offsets from the start of the region (the port adds
 * its base). Power may fail inside any call: a program then leaves some
 * units programmed and at most one partly programmed, an erase leaves the
 * page partly erased. The flash outbox is built to survive exactly that.
 */
#ifndef MQIM_FLASH_H
#define MQIM_FLASH_H

#include <stddef.h>
#include <stdint.h>

#include "mqim/status.h"

typedef struct mqim_flash_ops {
    /** Read len bytes at addr. @return MQIM_OK, MQIM_FLASH_ERROR. */
    mqim_status_t (*read)(void *ctx, uint32_t addr, uint8_t *buf, size_t len);
    /**
     * Program len bytes at addr: both multiples of the program unit, the
     * units erased since they were last programmed. Returns when the bytes
     * are on the flash. @return MQIM_OK, MQIM_FLASH_ERROR.
     */
    mqim_status_t (*program)(void *ctx, uint32_t addr, const uint8_t *data, size_t len);
    /** Erase page number `page` (every byte 0xFF). @return MQIM_OK, MQIM_FLASH_ERROR. */
    mqim_status_t (*erase)(void *ctx, uint32_t page);
} mqim_flash_ops_t;

/** A flash region: the port's functions and its geometry. */
typedef struct mqim_flash {
    const mqim_flash_ops_t *ops;
    void *ctx;            /**< passed back to every op */
    uint32_t page_size;   /**< bytes per erase page: a multiple of program_unit, 128..65536 */
    uint32_t page_count;  /**< pages in the region, at least 2 */
    uint32_t program_unit;/**< 1, 2, 4, 8 or 16 */
} mqim_flash_t;

#endif /* MQIM_FLASH_H */
