/**
 * @file flash_outbox.h
 * @brief A durable outbox on NOR flash (flash.h): the outbox port of
 *        outbox.h, log-structured, safe against power loss at any instant.
 *
 * Layout. Each page starts with a header (magic, page sequence number, the
 * page it garbage-collected if any, the next key, CRC-32) and a "done"
 * unit; entries follow back to back at program-unit boundaries:
 *
 *     key u32 | len u16 | 0 u16 | crc32 u32 (of the 8 bytes before and the
 *     record) | record | padding to a unit | commit unit | delete unit
 *
 * put programs header and record, then the commit unit; an entry counts
 * only when its CRC matches and its commit unit is programmed, so a write
 * cut by a power loss is skipped at the next open, never replayed (that
 * page takes no more entries; the next put starts a new page). remove
 * programs the entry's delete unit: a removed entry stays removed. A
 * marker unit counts as set once any of its bits is 0, so no unit is ever
 * programmed twice.
 *
 * Pages are used round-robin. When the log needs a page and only one is
 * free (the reserve), the oldest page is garbage-collected: its live
 * entries are copied to the reserve page, whose header names the collected
 * page; the done unit is programmed after the last copy, and only then is
 * the old page erased. At open, a page whose collection has no done unit
 * is ignored (the collection is redone from the intact old page), and any
 * page as old as or older than a collected one is ignored (a half-erased
 * page never comes back). Keys never repeat: every page header carries the
 * next key.
 *
 * Guarantees, across a power loss at any point: every entry whose put
 * returned MQIM_OK is there exactly once, with its bytes, until a remove of
 * it returned MQIM_OK; then it is gone for good. A put or remove that was
 * cut either happened completely or not at all. Entries are returned in
 * key order (the order of put). Capacity: page_count - 1 pages of entries
 * (one page stays free for garbage collection); a record of up to
 * about page_size - 60 bytes (mqim_flash_outbox_max_record).
 *
 * No allocation: the caller owns the outbox (44 bytes on Cortex-M4) and a
 * table of one mqim_flash_page_t (8 bytes) per flash page; stack: at most
 * about 450 bytes at -Os, plus the port's.
 */
#ifndef MQIM_FLASH_OUTBOX_H
#define MQIM_FLASH_OUTBOX_H

#include <stdint.h>

#include "mqim/flash.h"
#include "mqim/outbox.h"

/** What the outbox knows of one page (caller memory, filled by open). */
typedef struct mqim_flash_page {
    uint32_t seq; /**< the page's sequence number; 0: free (erased or garbage) */
    uint32_t end; /**< offset after its last valid entry */
} mqim_flash_page_t;

typedef struct mqim_flash_outbox {
    mqim_flash_t flash;
    mqim_flash_page_t *pages; /**< flash.page_count entries */
    uint32_t tail;            /**< the page entries are appended to; page_count: none */
    uint32_t next_seq;
    uint32_t next_key;
    uint32_t count;      /**< live entries */
    uint32_t free_pages; /**< pages with seq 0 */
} mqim_flash_outbox_t;

/**
 * Open the outbox over a flash region: read every page, recover from an
 * interrupted write, collection or erase (nothing is written here; the
 * repairs happen on the next put). A blank region is an empty outbox.
 * @param pages caller memory, flash->page_count entries, outliving ob.
 * @return MQIM_OK, MQIM_BAD_PARAMETER (geometry), MQIM_FLASH_ERROR (a read failed).
 */
mqim_status_t mqim_flash_outbox_open(mqim_flash_outbox_t *ob, const mqim_flash_t *flash,
                                     mqim_flash_page_t *pages);

/** The largest record put accepts on this geometry. */
size_t mqim_flash_outbox_max_record(const mqim_flash_outbox_t *ob);

/** The outbox.h operations. put may garbage-collect a page (one erase and
 *  a page of copies); @return adds MQIM_FLASH_ERROR to outbox.h's codes.
 *  put returns MQIM_OUTBOX_FULL when the record is larger than
 *  mqim_flash_outbox_max_record or the oldest page holds too many entries
 *  not yet removed to make room. */
mqim_status_t mqim_flash_outbox_put(void *ctx, const uint8_t *rec, size_t len, uint32_t *key);
mqim_status_t mqim_flash_outbox_peek(void *ctx, uint32_t after, uint32_t *key, uint8_t *buf,
                                     size_t cap, size_t *len);
mqim_status_t mqim_flash_outbox_remove(void *ctx, uint32_t key);

/** The ops table for a mqim_flash_outbox_t context. */
extern const mqim_outbox_ops_t mqim_flash_outbox_ops;

#endif /* MQIM_FLASH_OUTBOX_H */
