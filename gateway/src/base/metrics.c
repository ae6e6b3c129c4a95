/* The gateway's counters (metrics.h) and their exposition text:
 * OpenMetrics 1.0 (https://prometheus.io/docs/specs/om/open_metrics_spec/)
 * or the Prometheus text format 0.0.4. The two differ in three places: a
 * counter's TYPE/HELP line names the family without "_total" in
 * OpenMetrics and the sample name in Prometheus text, and only OpenMetrics
 * ends with "# EOF". */
#include "metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define ADD(var, n) ((void)__atomic_add_fetch(&(var), (uint64_t)(n), __ATOMIC_RELAXED))
#define LOAD(var) __atomic_load_n(&(var), __ATOMIC_RELAXED)

static uint64_t routed[MQIM_TOPIC_KIND_COUNT_];
static uint64_t rejected[MQIM_METRICS_CODES];
static uint64_t commits, commit_publishes, commit_us_sum;
static uint64_t commit_bucket[MQIM_METRICS_COMMIT_BUCKETS + 1u];
static uint64_t journal_written, journal_applied;
static uint64_t events[MQIM_METRIC_EVENT_COUNT_];
static int connected;
static int64_t start_ms;

/* 100 us (a batch on tmpfs) to 2.5 s (a stalled disk); benchmarks.md
 * measures a few ms per synced commit on this project's machines. */
static const uint64_t bounds_us[MQIM_METRICS_COMMIT_BUCKETS] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 2500000
};

void mqim_metrics_routed(mqim_topic_kind_t kind)
{
    if ((unsigned)kind < (unsigned)MQIM_TOPIC_KIND_COUNT_) {
        ADD(routed[kind], 1u);
    }
}

void mqim_metrics_rejected(mqim_status_t code)
{
    if ((unsigned)code < MQIM_METRICS_CODES) {
        ADD(rejected[code], 1u);
    }
}

uint64_t mqim_metrics_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void mqim_metrics_commit(uint64_t us, size_t n)
{
    unsigned i = 0;
    while (i < MQIM_METRICS_COMMIT_BUCKETS && us > bounds_us[i]) {
        i++;
    }
    ADD(commit_bucket[i], 1u);
    ADD(commits, 1u);
    ADD(commit_publishes, n);
    ADD(commit_us_sum, us);
}

void mqim_metrics_journal_written(uint64_t seq)
{
    __atomic_store_n(&journal_written, seq, __ATOMIC_RELAXED);
}

void mqim_metrics_journal_applied(uint64_t seq)
{
    __atomic_store_n(&journal_applied, seq, __ATOMIC_RELAXED);
}

void mqim_metrics_count(mqim_metric_event_t event)
{
    if ((unsigned)event < (unsigned)MQIM_METRIC_EVENT_COUNT_) {
        ADD(events[event], 1u);
    }
}

void mqim_metrics_set_connected(bool up)
{
    __atomic_store_n(&connected, up ? 1 : 0, __ATOMIC_RELAXED);
}

void mqim_metrics_start(int64_t now_ms)
{
    __atomic_store_n(&start_ms, now_ms, __ATOMIC_RELAXED);
}

void mqim_metrics_snapshot(mqim_metrics_snapshot_t *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; i < (unsigned)MQIM_TOPIC_KIND_COUNT_; i++) {
        out->routed[i] = LOAD(routed[i]);
    }
    for (unsigned i = 0; i < MQIM_METRICS_CODES; i++) {
        out->rejected[i] = LOAD(rejected[i]);
    }
    for (unsigned i = 0; i <= MQIM_METRICS_COMMIT_BUCKETS; i++) {
        out->commit_bucket[i] = LOAD(commit_bucket[i]);
    }
    for (unsigned i = 0; i < (unsigned)MQIM_METRIC_EVENT_COUNT_; i++) {
        out->events[i] = LOAD(events[i]);
    }
    out->commits = LOAD(commits);
    out->commit_publishes = LOAD(commit_publishes);
    out->commit_us_sum = LOAD(commit_us_sum);
    /* applied before written: a lag read this way is never negative. */
    out->journal_applied = LOAD(journal_applied);
    out->journal_written = LOAD(journal_written);
    out->connected = LOAD(connected) != 0;
    out->start_ms = LOAD(start_ms);
}

uint64_t mqim_metrics_commit_bound_us(unsigned i)
{
    return i < MQIM_METRICS_COMMIT_BUCKETS ? bounds_us[i] : UINT64_MAX;
}

const char *mqim_metrics_kind_label(mqim_topic_kind_t kind)
{
    switch (kind) {
    case MQIM_TOPIC_OUT_DM: return "dm";
    case MQIM_TOPIC_OUT_GROUP: return "group";
    case MQIM_TOPIC_OUT_RECEIPT: return "receipt";
    case MQIM_TOPIC_OUT_CTL: return "ctl";
    case MQIM_TOPIC_OUT_STATUS: return "status";
    case MQIM_TOPIC_OUT_KEY: return "key";
    case MQIM_TOPIC_OUT_FILE: return "file";
    default: return NULL;
    }
}

/* ---- exposition ---- */

typedef struct out {
    char *buf;
    size_t cap, len; /* len counts what did not fit too */
    mqim_metrics_format_t fmt;
} out_t;

__attribute__((format(printf, 2, 3))) static void put(out_t *o, const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(o->len < o->cap ? o->buf + o->len : NULL, o->len < o->cap ? o->cap - o->len : 0u,
                  fmt, ap);
    va_end(ap);
    if (n > 0) {
        o->len += (size_t)n;
    }
}

/* TYPE and HELP. name: the family without "_total" for counters. */
static void family(out_t *o, const char *name, const char *type, const char *help)
{
    bool counter = strcmp(type, "counter") == 0;
    const char *suffix = counter && o->fmt == MQIM_METRICS_PROMETHEUS ? "_total" : "";
    put(o, "# HELP %s%s %s\n# TYPE %s%s %s\n", name, suffix, help, name, suffix, type);
}

static void counter(out_t *o, const char *name, const char *help, uint64_t value)
{
    family(o, name, "counter", help);
    put(o, "%s_total %" PRIu64 "\n", name, value);
}

static void gauge(out_t *o, const char *name, const char *help, uint64_t value)
{
    family(o, name, "gauge", help);
    put(o, "%s %" PRIu64 "\n", name, value);
}

static void render_routing(out_t *o, const mqim_metrics_snapshot_t *s)
{
    family(o, "mqim_routed_messages", "counter",
           "Publishes of devices the gateway routed (handled without a rejection), by topic kind.");
    for (unsigned k = 0; k < (unsigned)MQIM_TOPIC_KIND_COUNT_; k++) {
        const char *label = mqim_metrics_kind_label((mqim_topic_kind_t)k);
        if (label != NULL) {
            put(o, "mqim_routed_messages_total{kind=\"%s\"} %" PRIu64 "\n", label, s->routed[k]);
        }
    }
    family(o, "mqim_rejections", "counter",
           "Rejections sent to senders, by code (docs/protocol.md); rate_limited is always listed.");
    for (unsigned c = 0; c < MQIM_METRICS_CODES; c++) {
        if (s->rejected[c] != 0u || c == (unsigned)MQIM_RATE_LIMITED) {
            put(o, "mqim_rejections_total{code=\"%s\"} %" PRIu64 "\n",
                mqim_status_name((mqim_status_t)c), s->rejected[c]);
        }
    }
    counter(o, "mqim_rate_limit_hits", "Publishes refused by a per-user rate limit.",
            s->rejected[MQIM_RATE_LIMITED]);
    gauge(o, "mqim_broker_connected", "1 while the gateway's subscribing connection to the broker is up.",
          s->connected ? 1u : 0u);
    counter(o, "mqim_broker_connects", "Times the subscribing connection came up.",
            s->events[MQIM_METRIC_BROKER_CONNECTS]);
    counter(o, "mqim_publisher_connects",
            "Times the outbox publisher connected; more than one means reconnects.",
            s->events[MQIM_METRIC_PUBLISHER_CONNECTS]);
    counter(o, "mqim_outbox_sent", "Outbox entries the broker acknowledged.",
            s->events[MQIM_METRIC_OUTBOX_SENT]);
}

static void render_commits(out_t *o, const mqim_metrics_snapshot_t *s)
{
    uint64_t cum = 0;
    counter(o, "mqim_commits", "Group commits of the inbound worker (one synced LMDB transaction each).",
            s->commits);
    counter(o, "mqim_committed_publishes", "Publishes routed in group commits.", s->commit_publishes);
    family(o, "mqim_commit_latency_seconds", "histogram",
           "Time of one group commit: routing its publishes and the synced LMDB commit.");
    for (unsigned i = 0; i < MQIM_METRICS_COMMIT_BUCKETS; i++) {
        cum += s->commit_bucket[i];
        put(o, "mqim_commit_latency_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
            (double)bounds_us[i] / 1e6, cum);
    }
    cum += s->commit_bucket[MQIM_METRICS_COMMIT_BUCKETS];
    put(o, "mqim_commit_latency_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
    put(o, "mqim_commit_latency_seconds_sum %.6f\nmqim_commit_latency_seconds_count %" PRIu64 "\n",
        (double)s->commit_us_sum / 1e6, cum);
    gauge(o, "mqim_journal_lag_records",
          "Inbound publishes journaled (acknowledged to the broker) but not committed to the store yet.",
          s->journal_written > s->journal_applied ? s->journal_written - s->journal_applied : 0u);
}

static void render_store(out_t *o, const mqim_metrics_gauges_t *g)
{
    gauge(o, "mqim_devices_online", "Devices whose last status was online or away (sleeping and offline ones are not).",
          g->devices_online);
    gauge(o, "mqim_users_online", "Users with at least one device online.", g->users_online);
    gauge(o, "mqim_devices_known", "Devices the store has a presence record of.", g->devices_known);
    gauge(o, "mqim_outbox_depth", "Publishes stored in the outbox, not yet acknowledged by the broker.",
          g->outbox_depth);
    family(o, "mqim_outbox_oldest_age_seconds", "gauge",
           "Age of the oldest outbox entry (1 s resolution; 0 when the outbox is empty).");
    put(o, "mqim_outbox_oldest_age_seconds %.0f\n", g->outbox_oldest_age_s);
    gauge(o, "mqim_store_map_used_bytes", "Bytes of the LMDB map in use (last page).",
          g->store_map_used_bytes);
    gauge(o, "mqim_store_map_size_bytes", "The LMDB map size (map_size_mb): the store's ceiling.",
          g->store_map_size_bytes);
    gauge(o, "mqim_store_file_bytes", "Size of data.mdb on disk.", g->store_file_bytes);
    gauge(o, "mqim_store_users", "Registered users.", g->store_users);
    gauge(o, "mqim_store_messages", "Stored messages.", g->store_messages);
    family(o, "mqim_store_info", "gauge", "The store's identity (docs/reliability.md); always 1.");
    put(o, "mqim_store_info{store_id=\"%s\",epoch=\"%" PRIu64 "\"} 1\n", g->store_id, g->store_epoch);
}

size_t mqim_metrics_render(const mqim_metrics_snapshot_t *s, const mqim_metrics_gauges_t *g,
                           mqim_metrics_format_t fmt, char *buf, size_t cap)
{
    out_t o = { buf, cap, 0, fmt };
    if (cap > 0u) {
        buf[0] = '\0';
    }
    render_routing(&o, s);
    render_commits(&o, s);
    if (g->store_ok) {
        render_store(&o, g);
    }
    family(&o, "process_cpu_seconds", "counter", "User and system CPU time of the gateway.");
    put(&o, "process_cpu_seconds_total %.2f\n", g->process_cpu_s);
    gauge(&o, "process_resident_memory_bytes", "Resident memory.", g->process_rss_bytes);
    gauge(&o, "process_open_fds", "Open file descriptors.", g->process_open_fds);
    family(&o, "process_start_time_seconds", "gauge", "Start of the gateway, Unix time.");
    put(&o, "process_start_time_seconds %.3f\n", (double)s->start_ms / 1000.0);
    if (fmt == MQIM_METRICS_OPENMETRICS) {
        put(&o, "# EOF\n");
    }
    return o.len;
}
