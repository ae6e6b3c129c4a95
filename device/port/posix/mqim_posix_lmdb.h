/**
 * @file mqim_posix_lmdb.h
 * @brief Durable outbox and device state for Linux hosts, in one LMDB
 *        environment: outbox entries under big-endian u32 keys appended in
 *        order (so a restart replays them in order), removed only when the
 *        application says so (at the gateway's `sent` ack, not at PUBACK),
 *        and the device state next to them. A full map is MQIM_OUTBOX_FULL.
 */
#ifndef MQIM_POSIX_LMDB_H
#define MQIM_POSIX_LMDB_H

#include <stddef.h>

#include "mqim/outbox.h"
#include "mqim/state.h"

typedef struct mqim_lmdb_store mqim_lmdb_store_t;

/** Open or create the environment in dir (created 0700). @return MQIM_OK, MQIM_STORE_ERROR. */
mqim_status_t mqim_lmdb_store_open(const char *dir, size_t map_size, mqim_lmdb_store_t **out);
void mqim_lmdb_store_close(mqim_lmdb_store_t *s);

/** Outbox and state ops; pass the mqim_lmdb_store_t as their context. */
extern const mqim_outbox_ops_t mqim_lmdb_outbox_ops;
extern const mqim_state_ops_t mqim_lmdb_state_ops;

/** Entries in the outbox now. */
size_t mqim_lmdb_outbox_count(mqim_lmdb_store_t *s);

#endif /* MQIM_POSIX_LMDB_H */
