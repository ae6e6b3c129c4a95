/**
 * @file inbound.h
 * @brief Group commit of inbound publishes: an inbound journal, a bounded
 *        queue and the worker thread that routes in batches.
 *
 * The pump thread reads the inbound connection (conn.h) and must not wait
 * for a group commit before it acknowledges a publish; instead
 * mqim_inbound_offer() appends the publish to an append-only journal file
 * (one write(), no fsync: it survives a kill of the process, as the page
 * cache does) and queues it, and the PUBACK goes out only after that
 * (docs/architecture.md, "Group commit"). The worker takes every
 * queued publish (up to a batch limit) and routes them in one durable LMDB
 * transaction (mqim_router_handle_batch) that also records how far the
 * journal has been applied. At start, journal records past that point are
 * routed again, so a publish acknowledged to the broker is never lost by a
 * crash of the gateway, and no `sent` ack, delivery or rejection leaves
 * before the synced commit that holds it. The worker also runs the
 * retention sweep between batches (mqim_inbound_sweep_every): it is LMDB's
 * only writer.
 */
#ifndef MQIM_GW_INBOUND_H
#define MQIM_GW_INBOUND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "router.h"
#include "store.h"

typedef struct mqim_inbound_q mqim_inbound_q_t;

/** After each committed batch, once its queue slots are free again (the
 *  worker thread): n publishes, of which not_ok were not MQIM_OK. */
typedef void (*mqim_inbound_done_fn)(void *ctx, size_t n, size_t not_ok);

/**
 * Replay the journal at journal_path (publishes past the applied point), then
 * start the worker. max_batch: publishes per commit at most (the queue holds
 * twice that; mqim_inbound_put blocks while it is full). The router is then
 * used only by the worker until mqim_inbound_stop.
 * @return NULL when the journal cannot be opened or replayed.
 */
mqim_inbound_q_t *mqim_inbound_start(mqim_store_t *store, mqim_router_t *router,
                                     const char *journal_path, unsigned max_batch,
                                     mqim_inbound_done_fn done, void *done_ctx);

/** Journal and queue one publish (copied); blocks while the queue is full;
 *  a failed journal write is logged and the publish queued all the same.
 *  @return false when it could not be queued (out of memory). */
bool mqim_inbound_put(mqim_inbound_q_t *q, const mqim_inbound_t *in, int64_t now_ms);

/**
 * The inbound connection's put: never blocks, and a publish the journal
 * does not hold is not queued either. MQIM_OK: journaled and queued (now
 * acknowledge it). MQIM_INFLIGHT_FULL: the queue is full (offer it again
 * after the worker's next commit). MQIM_DISK_FULL, MQIM_STORE_ERROR (the
 * journal write failed, logged), MQIM_INTERNAL (out of memory): not taken;
 * do not acknowledge it.
 */
mqim_status_t mqim_inbound_offer(mqim_inbound_q_t *q, const mqim_inbound_t *in, int64_t now_ms);

/** Run the retention sweep (mqim_router_sweep with cfg, which must outlive
 *  the queue) on the worker every interval_ms, the first after one
 *  interval; 0 stops it. */
void mqim_inbound_sweep_every(mqim_inbound_q_t *q, const mqim_router_config_t *cfg,
                              unsigned interval_ms);

/**
 * Outbox entries the broker has taken (the pump's PUBACKs), to delete. The
 * worker, LMDB's only writer, deletes them inside its next
 * group commit, or after DELETE_DELAY_MS without inbound publishes in a
 * commit of their own (no meta sync: a delete lost to a power cut only
 * sends that entry again, and devices drop repeats by seq). A second writer
 * with its own fsync held the LMDB writer lock in the middle of the
 * inbound commits and added its fsync to their latency. Copies the keys.
 */
void mqim_inbound_outbox_done(mqim_inbound_q_t *q, const uint64_t *keys, size_t n);

/** The journal's write(2), replaceable by tests (fault injection: short and
 *  failed writes); NULL puts write back. A write that fails part-way is cut
 *  off the file (ftruncate to the record's start), so the records after it
 *  stay readable at replay. */
typedef ssize_t (*mqim_journal_write_fn)(int fd, const void *buf, size_t len);
void mqim_inbound_set_journal_write(mqim_journal_write_fn fn);

/** Route what is queued, delete what is done, stop the worker, close the journal. */
void mqim_inbound_stop(mqim_inbound_q_t *q);

#endif /* MQIM_GW_INBOUND_H */
