/**
 * @file outbox.h
 * @brief The device outbox port and the RAM ring outbox that ships with the
 *        library.
 *
 * The outbox keeps every message the application sent until the gateway
 * confirms it, with its echo or a `sent` ack (not the broker's PUBACK: a broker restarted without
 * persistence forgets what it acknowledged). Entries are replayed in key
 * order after a reconnect; acks may remove them in any order. A board with
 * flash supplies its own store behind the same three operations; Linux hosts
 * use the LMDB outbox of the POSIX port.
 */
#ifndef MQIM_OUTBOX_H
#define MQIM_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "mqim/status.h"

/** The outbox port. Keys are assigned by put, increase, and are never 0. */
typedef struct mqim_outbox_ops {
    /** Store a record. @return MQIM_OK, MQIM_OUTBOX_FULL, MQIM_BAD_PARAMETER. */
    mqim_status_t (*put)(void *ctx, const uint8_t *rec, size_t len, uint32_t *key);
    /**
     * The first entry with key > after: its key, and its bytes into buf.
     * *len gets the record's size also on MQIM_BUFFER_TOO_SMALL.
     * @return MQIM_OK, MQIM_NOT_FOUND (none), MQIM_BUFFER_TOO_SMALL.
     */
    mqim_status_t (*peek)(void *ctx, uint32_t after, uint32_t *key, uint8_t *buf, size_t cap,
                          size_t *len);
    /** Remove one entry. @return MQIM_OK, MQIM_NOT_FOUND. */
    mqim_status_t (*remove)(void *ctx, uint32_t key);
} mqim_outbox_ops_t;

/**
 * RAM ring outbox over a caller buffer. Entries are laid out back to back
 * (8-byte header + record, rounded up to 8 bytes); a removed entry in the middle
 * becomes a hole that is reclaimed once everything before it is gone.
 * Contents are lost at reset: for durability across reboots use a flash or
 * file store behind mqim_outbox_ops_t.
 */
typedef struct mqim_ram_outbox {
    uint8_t *buf;
    size_t cap;
    size_t head;  /**< offset of the oldest entry */
    size_t tail;  /**< offset where the next entry goes */
    size_t used;  /**< bytes between head and tail, padding included */
    uint32_t next_key;
    uint32_t count; /**< live entries */
} mqim_ram_outbox_t;

/**
 * @param buf caller memory, at least 16 bytes (used in multiples of 8); it must
 *        outlive the outbox.
 * @return MQIM_OK, MQIM_BAD_PARAMETER.
 */
mqim_status_t mqim_ram_outbox_init(mqim_ram_outbox_t *ob, uint8_t *buf, size_t cap);

mqim_status_t mqim_ram_outbox_put(void *ctx, const uint8_t *rec, size_t len, uint32_t *key);
mqim_status_t mqim_ram_outbox_peek(void *ctx, uint32_t after, uint32_t *key, uint8_t *buf,
                                   size_t cap, size_t *len);
mqim_status_t mqim_ram_outbox_remove(void *ctx, uint32_t key);

/** The ops table for a mqim_ram_outbox_t context. */
extern const mqim_outbox_ops_t mqim_ram_outbox_ops;

#endif /* MQIM_OUTBOX_H */
