/**
 * @file metrics.h
 * @brief The gateway's process-wide counters for the OpenMetrics endpoint
 *        (metrics_server.h) and `mqim-gateway status`.
 *
 * Every counter is a lock-free atomic (GCC/clang builtins: the project is
 * C99), so the places that count (router, inbound worker, MQTT glue) call
 * one function from any thread and never wait. Readers take a snapshot
 * (relaxed loads: each value is exact, the set is not one instant) and
 * render it with the gauges read from the store at scrape time.
 *
 * The counters live for the process, like Mosquitto's $SYS totals: they
 * restart at 0 when the gateway does (Prometheus's rate() handles resets);
 * the store's own totals (`mqim-gateway stats`) survive restarts.
 */
#ifndef MQIM_GW_METRICS_H
#define MQIM_GW_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqim/status.h"
#include "mqim/topic.h"

/** Statuses are numbered below this (status.h). */
#define MQIM_METRICS_CODES 160u
/** Upper bounds of the commit-latency histogram, in microseconds (+Inf after). */
#define MQIM_METRICS_COMMIT_BUCKETS 12u

/** Events counted by mqim_metrics_count(). */
typedef enum mqim_metric_event {
    MQIM_METRIC_BROKER_CONNECTS,    /**< the inbound (subscribing) connection came up */
    MQIM_METRIC_PUBLISHER_CONNECTS, /**< the outbox publisher connected (first time and reconnects) */
    MQIM_METRIC_OUTBOX_SENT,        /**< outbox entries the broker acknowledged */
    MQIM_METRIC_EVENT_COUNT_
} mqim_metric_event_t;

/** Routed publishes by topic kind (router: a publish handled with MQIM_OK). */
void mqim_metrics_routed(mqim_topic_kind_t kind);
/** One rejection sent to a sender, by its code (rate_limited included). */
void mqim_metrics_rejected(mqim_status_t code);
/** Monotonic microseconds, for timing a commit. */
uint64_t mqim_metrics_now_us(void);
/** One batch commit of n publishes that took `us` microseconds (routing + fsync). */
void mqim_metrics_commit(uint64_t us, size_t n);
/** The last inbound journal seq written / whose batch committed. */
void mqim_metrics_journal_written(uint64_t seq);
void mqim_metrics_journal_applied(uint64_t seq);
void mqim_metrics_count(mqim_metric_event_t event);
/** The inbound connection to the broker is up (subscribed) or not. */
void mqim_metrics_set_connected(bool connected);

typedef struct mqim_metrics_snapshot {
    uint64_t routed[MQIM_TOPIC_KIND_COUNT_];
    uint64_t rejected[MQIM_METRICS_CODES];
    uint64_t commits, commit_publishes, commit_us_sum;
    uint64_t commit_bucket[MQIM_METRICS_COMMIT_BUCKETS + 1u]; /**< not cumulative; last: above all */
    uint64_t journal_written, journal_applied;
    uint64_t events[MQIM_METRIC_EVENT_COUNT_];
    bool connected;
    int64_t start_ms; /**< when mqim_metrics_start was called (wall clock) */
} mqim_metrics_snapshot_t;

/** Record the process start (wall-clock ms) for uptime and process_start_time. */
void mqim_metrics_start(int64_t now_ms);
void mqim_metrics_snapshot(mqim_metrics_snapshot_t *out);
/** The upper bound of histogram bucket i in microseconds (i < MQIM_METRICS_COMMIT_BUCKETS). */
uint64_t mqim_metrics_commit_bound_us(unsigned i);
/** The label of a topic kind ("dm", "group", ...); NULL for kinds the router never routes. */
const char *mqim_metrics_kind_label(mqim_topic_kind_t kind);

/** What the scrape reads from the store and the process (filled by the server). */
typedef struct mqim_metrics_gauges {
    uint64_t devices_online, users_online, devices_known;
    uint64_t outbox_depth;
    double outbox_oldest_age_s;  /**< 0 when the outbox is empty */
    uint64_t store_map_used_bytes, store_map_size_bytes, store_file_bytes;
    uint64_t store_users, store_messages;
    uint64_t store_epoch;
    char store_id[33];
    double process_cpu_s;
    uint64_t process_rss_bytes, process_open_fds;
    bool store_ok; /**< false: the store read failed; its gauges are left out */
} mqim_metrics_gauges_t;

typedef enum mqim_metrics_format {
    MQIM_METRICS_OPENMETRICS, /**< application/openmetrics-text; version=1.0.0, ends in "# EOF" */
    MQIM_METRICS_PROMETHEUS   /**< text/plain; version=0.0.4 */
} mqim_metrics_format_t;

/**
 * Render the exposition text into buf. Returns the length the whole text
 * needs (without a NUL); the text is complete only when that is < cap (it
 * is then NUL-terminated), like snprintf.
 */
size_t mqim_metrics_render(const mqim_metrics_snapshot_t *s, const mqim_metrics_gauges_t *g,
                           mqim_metrics_format_t fmt, char *buf, size_t cap);

#endif /* MQIM_GW_METRICS_H */
