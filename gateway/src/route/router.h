/**
 * @file router.h
 * @brief The gateway's routing logic, over the store interface only (no
 *        Paho here), so every rule is unit-testable with a real LMDB file
 *        and no broker.
 *
 * One inbound publish is handled in one durable LMDB transaction (in the
 * daemon a nested transaction of a group commit: mqim_router_handle_batch,
 * inbound.h): the message, its inbox entries, the dedupe record and every publish it causes
 * (delivery, echo, acks, presence, responses) are committed together into
 * the store's outbox. Publishing happens later, from the outbox, so no `sent`
 * ack can precede the commit and a crash after the commit loses nothing.
 * Ephemeral traffic (QoS 0) bypasses the store through `publish_now`.
 */
#ifndef MQIM_GW_ROUTER_H
#define MQIM_GW_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqim/status.h"
#include "mqim/str.h"
#include "store.h"

/** An MQTT publish received by the gateway. */
typedef struct mqim_inbound {
    mqim_str_t topic;
    mqim_str_t payload;
    int qos;
    bool retained;
    mqim_str_t response_topic; /**< MQTT v5 response topic; empty when none */
    mqim_str_t correlation;    /**< MQTT v5 correlation data; empty when none */
} mqim_inbound_t;

/** A publish to make right away (QoS 0 ephemeral traffic, last-resort rejections). */
typedef struct mqim_outbound {
    mqim_str_t topic;
    mqim_str_t payload;
    int qos;
    bool retain;
    mqim_str_t correlation;
} mqim_outbound_t;

typedef void (*mqim_publish_now_fn)(void *ctx, const mqim_outbound_t *msg);
typedef void (*mqim_random_fn)(void *ctx, uint8_t *buf, size_t len);

typedef struct mqim_router_config {
    const char *root;          /**< topic root, e.g. "im" */
    bool accept_any_user;      /**< route to any valid name, not only registered users */
    /* Defaults for users without their own policy (mqim_user_rec_t). */
    uint64_t inbox_quota;      /**< 0 = unlimited */
    uint64_t retain_count;     /**< 0 = no count limit */
    int64_t retain_age_ms;     /**< 0 = keep forever */
    /* Defaults for groups without their own policy (mqim_group_rec_t). */
    uint64_t group_retain_count; /**< messages a group keeps; 0 = no count limit */
    int64_t group_retain_age_ms; /**< 0 = keep forever */
    unsigned rate_per_sec;     /**< 0 = no rate limit */
    unsigned rate_burst;
    uint64_t file_max_bytes;   /**< largest file; 0 = 64 MiB */
    unsigned file_chunk_bytes; /**< chunk size when an upload names none; 0 = 1024 */
    unsigned file_chunk_max;   /**< largest chunk; 0 = MQIM_FILE_CHUNK_LIMIT */
    unsigned file_rate_per_sec; /**< requests on out/file per user and second; 0 = no limit */
    unsigned file_rate_burst;
    unsigned sync_page;        /**< max messages per sync/history page */
    unsigned group_max_members; /**< members of one group; 0 = 256 */
    unsigned groups_per_user;  /**< groups one user may be in; 0 = 100 */
    mqim_publish_now_fn publish_now;
    void *publish_ctx;
    mqim_random_fn random;     /**< NULL = getrandom() */
    void *random_ctx;
} mqim_router_config_t;

typedef struct mqim_router mqim_router_t;

/** @return NULL on allocation failure or an invalid root. The config's strings must outlive the router. */
mqim_router_t *mqim_router_new(mqim_store_t *store, const mqim_router_config_t *cfg);
void mqim_router_free(mqim_router_t *r);

/** New per-user rate limits (rate_per_sec/rate_burst and the file_ pair of
 *  the config), from any thread: a SIGHUP reload applies them live. */
void mqim_router_set_rate_limits(mqim_router_t *r, unsigned rate_per_sec, unsigned rate_burst,
                                 unsigned file_rate_per_sec, unsigned file_rate_burst);

/**
 * Handle one inbound publish at time now_ms. Never fails silently: every
 * rejection is written as a `rejected` ack (or an error response for ctl)
 * to the sender. Not thread-safe: call from one thread.
 * @return MQIM_OK when handled as intended; otherwise the status the sender
 *         was told (e.g. MQIM_UNKNOWN_PEER), or MQIM_STORE_FULL /
 *         MQIM_STORE_ERROR when even the rejection could not be stored (then
 *         it went out through publish_now).
 */
mqim_status_t mqim_router_handle(mqim_router_t *r, const mqim_inbound_t *in, int64_t now_ms);

/** Called inside a batch just before its commit, with the batch's transaction
 *  (e.g. to record how far an inbound journal has been applied). */
typedef mqim_status_t (*mqim_batch_hook_fn)(void *ctx, mqim_txn_t *batch);

/**
 * Group commit: handle n inbound publishes, in order, in one durable LMDB
 * transaction (mqim_store_batch_begin). Each publish is handled exactly as by
 * mqim_router_handle (its own nested transaction: a rejected or failed one
 * leaves the others), and every publish they cause is an outbox entry of the
 * batch, so nothing of the batch is visible, acked or delivered before the
 * one commit. st[i] receives the result of in[i], now_ms[i] its time. The
 * batch transaction also counts "commits" and "batched" (publishes handled in
 * batches) in the store's counters. If the batch itself cannot commit (e.g.
 * the store filled up writing it), every publish is handled again one by one
 * (one commit each) so none is lost or silently dropped.
 * @return MQIM_OK when the batch committed, else the commit error.
 */
mqim_status_t mqim_router_handle_batch(mqim_router_t *r, const mqim_inbound_t *in,
                                       const int64_t *now_ms, size_t n, mqim_status_t *st,
                                       mqim_batch_hook_fn hook, void *hook_ctx);

/**
 * Periodic retention. Groups first: each group that has messages is pruned
 * by its own retain_count / retain_days or the configured group defaults
 * (count too, so a lowered limit or an ended group is caught up); pruned
 * messages become tombstones in the inboxes that held them. Then age-based
 * retention over every user, by each user's own retain_days or the
 * configured default (user count retention happens on each append). Safe to
 * call from another thread than mqim_router_handle: it uses only the store.
 * *pruned receives the number of inbox entries removed or turned into
 * tombstones.
 */
mqim_status_t mqim_router_sweep(mqim_store_t *store, const mqim_router_config_t *cfg,
                                int64_t now_ms, uint64_t *pruned);

#endif /* MQIM_GW_ROUTER_H */
