/* The metrics module (metrics.c): counters, the histogram, both exposition
 * formats and their size reporting; the per-user log limit (log_limit.c);
 * metrics_listen parsing (config.c); the oldest outbox entry's age
 * (outbox_age.c). */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log_limit.h"
#include "metrics.h"
#include "mqim_check.h"
#include "outbox_age.h"

static char *render(mqim_metrics_format_t fmt, const mqim_metrics_gauges_t *g)
{
    mqim_metrics_snapshot_t s;
    size_t need, len;
    char *buf, small[16];
    mqim_metrics_snapshot(&s);
    need = mqim_metrics_render(&s, g, fmt, NULL, 0);
    /* A short buffer gets a NUL-terminated prefix and the same needed size. */
    CHECK_EQ_INT(mqim_metrics_render(&s, g, fmt, small, sizeof(small)), need);
    CHECK_EQ_INT(strlen(small), sizeof(small) - 1u);
    buf = malloc(need + 1u);
    len = mqim_metrics_render(&s, g, fmt, buf, need + 1u);
    CHECK_EQ_INT(len, need);
    CHECK_EQ_INT(strlen(buf), need);
    return buf;
}

static void test_counters_and_formats(void)
{
    mqim_metrics_gauges_t g;
    char *om, *text;
    memset(&g, 0, sizeof(g));
    g.store_ok = true;
    g.outbox_depth = 7;
    snprintf(g.store_id, sizeof(g.store_id), "abc");
    mqim_metrics_start(1000);
    for (int i = 0; i < 3; i++) {
        mqim_metrics_routed(MQIM_TOPIC_OUT_DM);
    }
    mqim_metrics_routed(MQIM_TOPIC_PRESENCE);        /* not routed from devices: no label */
    mqim_metrics_routed((mqim_topic_kind_t)999);     /* out of range: ignored */
    mqim_metrics_rejected(MQIM_UNKNOWN_PEER);
    mqim_metrics_rejected(MQIM_RATE_LIMITED);
    mqim_metrics_rejected(MQIM_RATE_LIMITED);
    mqim_metrics_rejected((mqim_status_t)100000);    /* out of range: ignored */
    mqim_metrics_commit(50, 2);      /* <= 100 us */
    mqim_metrics_commit(100, 1);     /* on a bound: in that bucket */
    mqim_metrics_commit(3000, 4);    /* <= 5 ms */
    mqim_metrics_commit(9000000, 1); /* above every bound: +Inf only */
    mqim_metrics_journal_written(10);
    mqim_metrics_journal_applied(6);
    mqim_metrics_set_connected(true);

    om = render(MQIM_METRICS_OPENMETRICS, &g);
    CHECK(strstr(om, "# TYPE mqim_routed_messages counter\n") != NULL);
    CHECK(strstr(om, "mqim_routed_messages_total{kind=\"dm\"} 3\n") != NULL);
    CHECK(strstr(om, "mqim_rejections_total{code=\"unknown_peer\"} 1\n") != NULL);
    CHECK(strstr(om, "mqim_rejections_total{code=\"rate_limited\"} 2\n") != NULL);
    CHECK(strstr(om, "mqim_rejections_total{code=\"ok\"}") == NULL); /* zero codes left out */
    CHECK(strstr(om, "mqim_rate_limit_hits_total 2\n") != NULL);
    CHECK(strstr(om, "mqim_commit_latency_seconds_bucket{le=\"0.0001\"} 2\n") != NULL);
    CHECK(strstr(om, "mqim_commit_latency_seconds_bucket{le=\"0.005\"} 3\n") != NULL);
    CHECK(strstr(om, "mqim_commit_latency_seconds_bucket{le=\"2.5\"} 3\n") != NULL);
    CHECK(strstr(om, "mqim_commit_latency_seconds_bucket{le=\"+Inf\"} 4\n") != NULL);
    CHECK(strstr(om, "mqim_commit_latency_seconds_count 4\n") != NULL);
    CHECK(strstr(om, "mqim_commit_latency_seconds_sum 9.003150\n") != NULL);
    CHECK(strstr(om, "mqim_committed_publishes_total 8\n") != NULL);
    CHECK(strstr(om, "mqim_journal_lag_records 4\n") != NULL);
    CHECK(strstr(om, "mqim_broker_connected 1\n") != NULL);
    CHECK(strstr(om, "mqim_outbox_depth 7\n") != NULL);
    CHECK(strstr(om, "mqim_store_info{store_id=\"abc\",epoch=\"0\"} 1\n") != NULL);
    CHECK(strstr(om, "process_start_time_seconds 1.000\n") != NULL);
    CHECK(strlen(om) > 6u && strcmp(om + strlen(om) - 6u, "# EOF\n") == 0);

    text = render(MQIM_METRICS_PROMETHEUS, &g);
    CHECK(strstr(text, "# TYPE mqim_routed_messages_total counter\n") != NULL);
    CHECK(strstr(text, "# HELP mqim_routed_messages_total ") != NULL);
    CHECK(strstr(text, "# TYPE mqim_commit_latency_seconds histogram\n") != NULL);
    CHECK(strstr(text, "# EOF") == NULL);
    free(om);
    free(text);

    /* A store that could not be read: its gauges are left out, not zeros. */
    g.store_ok = false;
    om = render(MQIM_METRICS_OPENMETRICS, &g);
    CHECK(strstr(om, "mqim_outbox_depth") == NULL);
    CHECK(strstr(om, "mqim_routed_messages_total") != NULL);
    free(om);

    /* The lag never goes negative when applied passes written (a replay). */
    mqim_metrics_journal_applied(12);
    g.store_ok = true;
    om = render(MQIM_METRICS_OPENMETRICS, &g);
    CHECK(strstr(om, "mqim_journal_lag_records 0\n") != NULL);
    free(om);
}

static void test_log_limit(void)
{
    mqim_log_limit_t l;
    uint64_t more = 99;
    mqim_log_limit_init(&l, 10000);
    CHECK(mqim_log_limit_admit(&l, mqim_str_from_cstr("carol"), 1000, &more));
    CHECK_EQ_INT(more, 0);
    for (int i = 0; i < 40; i++) {
        CHECK(!mqim_log_limit_admit(&l, mqim_str_from_cstr("carol"), 1000 + i * 100, &more));
    }
    /* another user has a line of its own */
    CHECK(mqim_log_limit_admit(&l, mqim_str_from_cstr("dave"), 2000, &more));
    CHECK_EQ_INT(more, 0);
    /* the interval over: one line, with the 40 left out */
    CHECK(mqim_log_limit_admit(&l, mqim_str_from_cstr("carol"), 11000, &more));
    CHECK_EQ_INT(more, 40);
    CHECK(!mqim_log_limit_admit(&l, mqim_str_from_cstr("carol"), 11001, &more));
    /* a name longer than a user name is cut, not overflowed */
    {
        char longname[200];
        memset(longname, 'x', sizeof(longname) - 1u);
        longname[sizeof(longname) - 1u] = '\0';
        CHECK(mqim_log_limit_admit(&l, mqim_str_from_cstr(longname), 5000, &more));
    }
}

static void test_outbox_age(void)
{
    static mqim_outbox_age_t a; /* 64 KiB */
    mqim_outbox_age_init(&a, 1000);
    CHECK(mqim_outbox_age_of(&a, 1, 5000) == 0.0); /* no sample yet */
    mqim_outbox_age_sample(&a, 0, 10000);           /* empty outbox, nothing made yet */
    mqim_outbox_age_sample(&a, 5, 11000);           /* keys 1..5 made in this second */
    mqim_outbox_age_sample(&a, 5, 11500);           /* within the interval: skipped */
    mqim_outbox_age_sample(&a, 5, 12000);
    mqim_outbox_age_sample(&a, 9, 13000);
    /* Key 5, the newest at 11000 and still the oldest entry: since 11000
     * (the sample that saw it last-keyed counts: the key is the last one). */
    CHECK(mqim_outbox_age_of(&a, 5, 20000) == 9.0);
    CHECK(mqim_outbox_age_of(&a, 3, 20000) == 9.0);
    CHECK(mqim_outbox_age_of(&a, 6, 20000) == 7.0); /* made after 12000, seen at 13000 */
    CHECK(mqim_outbox_age_of(&a, 10, 20000) == 0.0); /* younger than the last sample */
    /* One stuck entry and no traffic: its age keeps growing. */
    for (int64_t t = 14000; t <= 60000; t += 1000) {
        mqim_outbox_age_sample(&a, 9, t);
    }
    CHECK(mqim_outbox_age_of(&a, 9, 60000) == 47.0);
    /* Older than the ring: the ring's age (a lower bound). */
    for (int64_t t = 61000; t < 61000 + (int64_t)MQIM_OUTBOX_AGE_SAMPLES * 1000; t += 1000) {
        mqim_outbox_age_sample(&a, 9, t);
    }
    CHECK(mqim_outbox_age_of(&a, 9, 61000 + (int64_t)MQIM_OUTBOX_AGE_SAMPLES * 1000) ==
          (double)MQIM_OUTBOX_AGE_SAMPLES);
}

static void test_listen_parse(void)
{
    char addr[64], err[256];
    int port = 0;
    bool lo = false;
    CHECK_EQ_INT(mqim_gw_metrics_listen_parse("127.0.0.1:9464", addr, sizeof(addr), &port, &lo, err,
                                              sizeof(err)), 0);
    CHECK(strcmp(addr, "127.0.0.1") == 0 && port == 9464 && lo);
    CHECK_EQ_INT(mqim_gw_metrics_listen_parse("[::1]:9", addr, sizeof(addr), &port, &lo, err, sizeof(err)), 0);
    CHECK(strcmp(addr, "::1") == 0 && port == 9 && lo);
    CHECK_EQ_INT(mqim_gw_metrics_listen_parse("localhost:80", addr, sizeof(addr), &port, &lo, err,
                                              sizeof(err)), 0);
    CHECK(strcmp(addr, "127.0.0.1") == 0 && lo);
    CHECK_EQ_INT(mqim_gw_metrics_listen_parse("10.0.0.1:9464", addr, sizeof(addr), &port, &lo, err,
                                              sizeof(err)), 0);
    CHECK(!lo);
    CHECK_EQ_INT(mqim_gw_metrics_listen_parse("[::]:9464", addr, sizeof(addr), &port, &lo, err, sizeof(err)), 0);
    CHECK(!lo);
    CHECK_EQ_INT(mqim_gw_metrics_listen_parse("127.0.0.1", addr, sizeof(addr), &port, &lo, err, sizeof(err)), -1);
    CHECK_EQ_INT(mqim_gw_metrics_listen_parse("127.0.0.1:0", addr, sizeof(addr), &port, &lo, err, sizeof(err)), -1);
    CHECK_EQ_INT(mqim_gw_metrics_listen_parse("127.0.0.1:65536", addr, sizeof(addr), &port, &lo, err,
                                              sizeof(err)), -1);
    CHECK_EQ_INT(mqim_gw_metrics_listen_parse(":9464", addr, sizeof(addr), &port, &lo, err, sizeof(err)), -1);
    CHECK_EQ_INT(mqim_gw_metrics_listen_parse("example.org:9464", addr, sizeof(addr), &port, &lo, err,
                                              sizeof(err)), -1);
    CHECK(strstr(err, "not an IP address") != NULL);
    {
        mqim_gw_config_t cfg;
        mqim_gw_config_defaults(&cfg);
        CHECK_EQ_INT(mqim_gw_config_validate(&cfg, err, sizeof(err)), 0); /* off by default */
        CHECK_EQ_INT(mqim_gw_config_set(&cfg, "metrics_listen", "0.0.0.0:9464", err, sizeof(err)), 0);
        CHECK_EQ_INT(mqim_gw_config_validate(&cfg, err, sizeof(err)), -1);
        CHECK(strstr(err, "metrics_allow_remote") != NULL);
        CHECK_EQ_INT(mqim_gw_config_set(&cfg, "metrics_allow_remote", "true", err, sizeof(err)), 0);
        CHECK_EQ_INT(mqim_gw_config_validate(&cfg, err, sizeof(err)), 0);
    }
}

int main(void)
{
    test_counters_and_formats();
    test_log_limit();
    test_outbox_age();
    test_listen_parse();
    return CHECK_REPORT();
}
