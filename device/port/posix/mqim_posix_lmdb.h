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

#include "mqim/e2e.h"
#include "mqim/outbox.h"
#include "mqim/state.h"

typedef struct mqim_lmdb_store mqim_lmdb_store_t;

/** Open or create the environment in dir (created 0700). @return MQIM_OK, MQIM_STORE_ERROR. */
mqim_status_t mqim_lmdb_store_open(const char *dir, size_t map_size, mqim_lmdb_store_t **out);
void mqim_lmdb_store_close(mqim_lmdb_store_t *s);

/** Outbox and state ops; pass the mqim_lmdb_store_t as their context. */
extern const mqim_outbox_ops_t mqim_lmdb_outbox_ops;
extern const mqim_state_ops_t mqim_lmdb_state_ops;

/** The E2E store (this device's private key, the keys it trusts), in the
 *  same environment; pass the mqim_lmdb_store_t as its context. */
extern const mqim_e2e_store_ops_t mqim_lmdb_e2e_ops;

/** Every trusted (user, device) key, in key order (for `mqim keys`). */
mqim_status_t mqim_lmdb_e2e_list(mqim_lmdb_store_t *s,
                                 void (*fn)(void *ctx, mqim_str_t user, mqim_str_t device,
                                            const uint8_t pk[MQIM_E2E_KEY_LEN]),
                                 void *ctx);

/** Entries in the outbox now. */
size_t mqim_lmdb_outbox_count(mqim_lmdb_store_t *s);

#endif /* MQIM_POSIX_LMDB_H */
