/* The daemon (see daemon.h): setup, the wait for another instance, the
 * pump, and the orderly stop. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "daemon_internal.h"
#include "log.h"
#include "mqim/topic.h"

#define LOG_MOD "daemon"
#define INBOUND_BATCH_MAX 256u   /* publishes per group commit at most */
#define SWEEP_INTERVAL_MS 60000u /* the retention sweep, on the inbound worker */
#define PROBE_RECHECK_S 5
#define OFFLINE_WAIT_MS 2000     /* for the offline status's PUBACK at the stop */
#define INBOUND_INFLIGHT 16u     /* the inbound connection publishes only the offline status */
/* The largest inbound packet: anything a device may send and get a clear
 * rejection for (the router rejects a payload over MQIM_PAYLOAD_MAX and a
 * topic over MQIM_TOPIC_MAX by name). Announced as the Maximum Packet
 * Size: the broker drops a larger publish for the gateway (the sender's
 * PUBACK still arrives, docs/protocol.md "Limits"). */
#define INBOUND_MAX_PACKET (4u << 20)
/* The inbound session outlives the gateway: publishes made while it is
 * down wait in the broker (bounded by the broker's queue limits). */
#define SESSION_EXPIRY_NEVER 0xFFFFFFFFu

int64_t gw_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void gw_wake(gw_t *g)
{
    uint64_t one = 1;
    ssize_t n = write(g->wake_fd, &one, sizeof(one));
    (void)n; /* an eventfd write never blocks short of 2^64 - 2 pending wakes */
}

/* After each group commit (the inbound worker's thread). */
static void on_batch_done(void *ctx, size_t n, size_t not_ok)
{
    gw_t *g = ctx;
    pthread_mutex_lock(&g->mu);
    g->handled += n;
    g->rejected += not_ok;
    pthread_mutex_unlock(&g->mu);
    gw_wake(g); /* new outbox entries were committed, and the queue has room */
}

/* A TLS file that cannot be read is a configuration error, not a broker
 * that is down: say which file and stop instead of retrying forever. */
static int check_tls_files(const mqim_gw_config_t *cfg)
{
    static const struct { size_t offset; const char *key; } files[] = {
        { offsetof(mqim_gw_config_t, broker_cafile), "broker_cafile" },
        { offsetof(mqim_gw_config_t, broker_certfile), "broker_certfile" },
        { offsetof(mqim_gw_config_t, broker_keyfile), "broker_keyfile" },
    };
    if (!cfg->broker_tls) {
        return 0;
    }
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        const char *path = (const char *)cfg + files[i].offset;
        FILE *f;
        if (path[0] == '\0') {
            continue;
        }
        f = fopen(path, "r");
        if (f == NULL) {
            MQIM_LOGE(LOG_MOD, "%s %s: %s", files[i].key, path, strerror(errno));
            return -1;
        }
        fclose(f);
    }
    return 0;
}

/* The two connections' settings: the same broker, credentials and TLS. */
static mqim_conn_config_t conn_config(const gw_t *g, const char *client_id)
{
    const mqim_gw_config_t *cfg = g->cfg;
    mqim_conn_config_t c = {
        .host = cfg->broker_host,
        .port = cfg->broker_port,
        .client_id = client_id,
        .username = cfg->username,
        .password = cfg->password,
        .tls = cfg->broker_tls,
        .cafile = cfg->broker_cafile,
        .certfile = cfg->broker_certfile,
        .keyfile = cfg->broker_keyfile,
        .keepalive_s = cfg->keepalive_s,
        .max_inflight = cfg->max_inflight,
    };
    return c;
}

/* Topics, connections and the wake-up eventfd; 0, or -1 (logged). */
static int io_init(gw_t *g)
{
    const mqim_gw_config_t *cfg = g->cfg;
    mqim_str_t root = mqim_str_from_cstr(cfg->root);
    mqim_conn_config_t in, pub;
    size_t len = 0;
    snprintf(g->uri, sizeof(g->uri), "%s://%s:%d", cfg->broker_tls ? "ssl" : "tcp", cfg->broker_host,
             cfg->broker_port);
    (void)mqim_topic_build(root, MQIM_TOPIC_GATEWAY_STATUS, (mqim_str_t){ NULL, 0 },
                           (mqim_str_t){ NULL, 0 }, g->status_topic, sizeof(g->status_topic), &len);
    (void)mqim_topic_build(root, MQIM_TOPIC_GATEWAY_STATS, (mqim_str_t){ NULL, 0 },
                           (mqim_str_t){ NULL, 0 }, g->stats_topic, sizeof(g->stats_topic), &len);
    /* share_group: a shared subscription ("$share/GROUP/..."): the broker
     * hands each publish to one of the gateways of the group. */
    snprintf(g->sub_filter, sizeof(g->sub_filter), "%s%s%s%s/u/+/out/#",
             cfg->share_group[0] != '\0' ? "$share/" : "", cfg->share_group,
             cfg->share_group[0] != '\0' ? "/" : "", cfg->root);
    /* The publisher's client id: the gateway's (secret: see docs/security.md)
     * plus ".out", so neither connection takes over the other's session. */
    snprintf(g->pub_client_id, sizeof(g->pub_client_id), "%s.out", cfg->client_id);
    pub = conn_config(g, g->pub_client_id);
    in = conn_config(g, cfg->client_id);
    in.max_inflight = INBOUND_INFLIGHT;
    in.resume_session = true;
    in.session_expiry_s = SESSION_EXPIRY_NEVER;
    in.will_topic = g->status_topic;
    in.will_payload = g->offline; /* filled by gw_identity_init before the first connect */
    in.sub_filter = g->sub_filter;
    in.max_in_packet = INBOUND_MAX_PACKET;
    in.on_publish = NULL; /* set once the inbound queue runs (gw_inbound_ready) */
    g->pub = mqim_conn_new(&pub);
    g->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (g->pub == NULL || g->wake_fd < 0) {
        MQIM_LOGE(LOG_MOD, "out of memory or file descriptors");
        return -1;
    }
    g->in_cfg = in;
    return 0;
}

static void io_free(gw_t *g)
{
    gw_free_direct(g);
    mqim_conn_free(g->in);
    mqim_conn_free(g->pub);
    g->in = g->pub = NULL;
    if (g->wake_fd >= 0) {
        close(g->wake_fd);
        g->wake_fd = -1;
    }
}

static void router_config(gw_t *g)
{
    const mqim_gw_config_t *cfg = g->cfg;
    g->rcfg = (mqim_router_config_t){
        .root = cfg->root,
        .accept_any_user = cfg->accept_any_user,
        .inbox_quota = cfg->inbox_quota,
        .retain_count = cfg->retain_count,
        .retain_age_ms = (int64_t)cfg->retain_days * 86400000,
        .group_retain_count = cfg->group_retain_count,
        .group_retain_age_ms = (int64_t)cfg->group_retain_days * 86400000,
        .rate_per_sec = cfg->rate_per_sec,
        .rate_burst = cfg->rate_burst,
        .file_max_bytes = cfg->file_max_mb << 20,
        .file_chunk_bytes = cfg->file_chunk_bytes,
        .file_chunk_max = cfg->file_chunk_max,
        .file_rate_per_sec = cfg->file_rate_per_sec,
        .file_rate_burst = cfg->file_rate_burst,
        .sync_page = cfg->sync_page,
        .group_max_members = cfg->group_max_members,
        .groups_per_user = cfg->groups_per_user,
        .publish_now = gw_publish_now,
        .publish_ctx = g,
    };
}

mqim_store_config_t mqim_gateway_store_config(const mqim_gw_config_t *cfg)
{
    mqim_store_config_t sc = {
        .engine = strcmp(cfg->store_engine, "postgresql") == 0 ? MQIM_STORE_POSTGRESQL : MQIM_STORE_LMDB,
        .dir = cfg->data_dir, .map_size = (size_t)cfg->map_size_mb << 20, .dsn = cfg->store_dsn
    };
    return sc;
}

/* Store, router, journal replay and the worker; 0, or -1 (logged). */
static int core_init(gw_t *g)
{
    const mqim_gw_config_t *cfg = g->cfg;
    char journal[sizeof(cfg->data_dir) + 32];
    mqim_store_config_t sc = mqim_gateway_store_config(cfg);
    if (mqim_store_open_config(&sc, false, &g->store) != MQIM_OK) {
        return -1;
    }
    router_config(g);
    g->router = mqim_router_new(g->store, &g->rcfg);
    if (g->router == NULL) {
        MQIM_LOGE(LOG_MOD, "cannot create the router");
        return -1;
    }
    snprintf(journal, sizeof(journal), "%s/inbound.journal", cfg->data_dir);
    g->inq = mqim_inbound_start(g->store, g->router, journal, INBOUND_BATCH_MAX, on_batch_done, g);
    if (g->inq == NULL) {
        return -1;
    }
    mqim_inbound_sweep_every(g->inq, &g->rcfg, SWEEP_INTERVAL_MS);
    return 0;
}

static void core_free(gw_t *g)
{
    if (g->inq != NULL) {
        mqim_inbound_stop(g->inq); /* routes what was queued */
        g->inq = NULL;
    }
    mqim_router_free(g->router);
    g->router = NULL;
    if (g->store != NULL) {
        mqim_store_close(g->store);
        g->store = NULL;
    }
}

/* Two gateways with one identity take the client id from each other, and
 * a copy of the store hands out seqs twice: wait while another is online.
 * False when stopped meanwhile. */
static bool wait_alone(gw_t *g, volatile sig_atomic_t *stop)
{
    for (;;) {
        char why[MQIM_GW_PATH_MAX + 256];
        if (*stop) {
            return false;
        }
        if (gw_probe_other_instance(g, why, sizeof(why)) != 1) {
            return true;
        }
        MQIM_LOGE(LOG_MOD, "%s; not routing until it says offline (checking every %d s). Stop one "
                  "of them; if that one is not running any more, clear its status with "
                  "mosquitto_pub -r -n -t %s", why, PROBE_RECHECK_S, g->status_topic);
        for (int i = 0; i < PROBE_RECHECK_S * 10 && !*stop; i++) {
            struct timespec ts = { 0, 100000000L };
            nanosleep(&ts, NULL);
        }
    }
}

/* The orderly end of the inbound connection: the offline status (retained,
 * QoS 1, acknowledged or OFFLINE_WAIT_MS), then DISCONNECT with reason 0,
 * so the broker drops the will. */
static void say_offline(gw_t *g)
{
    char buf[512], err[256];
    int n = gw_status_payload(g, "offline", true, buf, sizeof(buf));
    mqim_v5_publish_t m = { mqim_str_from_cstr(g->status_topic), { buf, (size_t)n }, { NULL, 0 },
                            1, 1, 0 };
    int64_t until = gw_now_ms() + OFFLINE_WAIT_MS;
    if (!mqim_conn_connected(g->in) || n == 0 ||
        mqim_conn_publish(g->in, GW_DIRECT_KEY, &m, NULL, NULL) != MQIM_OK) {
        mqim_conn_close(g->in, true);
        return;
    }
    while (gw_now_ms() < until) {
        struct pollfd pfd = { mqim_conn_fd(g->in), 0, 0 };
        if (mqim_conn_service(g->in, gw_now_ms(), NULL, NULL, err, sizeof(err)) != MQIM_OK ||
            mqim_conn_inflight(g->in) == 0u) {
            break;
        }
        pfd.events = mqim_conn_poll_events(g->in);
        (void)poll(&pfd, 1, 50);
    }
    mqim_conn_close(g->in, true);
}

int mqim_gateway_run(const mqim_gw_config_t *cfg, volatile sig_atomic_t *stop,
                     const mqim_gateway_reload_t *reload)
{
    gw_t g;
    int rc = 1;
    memset(&g, 0, sizeof(g));
    g.cfg = cfg;
    g.reload = reload;
    g.wake_fd = -1;
    pthread_mutex_init(&g.mu, NULL);
    if (check_tls_files(cfg) != 0 || io_init(&g) != 0 || core_init(&g) != 0) {
        goto out;
    }
    gw_identity_init(&g);
    g.in_cfg.on_publish = NULL;
    if (!wait_alone(&g, stop)) {
        goto out;
    }
    g.in_cfg.on_publish = gw_on_inbound;
    g.in_cfg.on_publish_ctx = &g;
    g.in = mqim_conn_new(&g.in_cfg);
    if (g.in == NULL) {
        MQIM_LOGE(LOG_MOD, "out of memory");
        goto out;
    }
    /* Before any delivery of this run (direct publishes go out ahead of the
     * outbox on the publisher): devices learn a new store epoch first. */
    g.metrics = mqim_metrics_server_start(cfg, g.store); /* NULL: logged why */
    if (g.metrics == NULL) {
        goto out;
    }
    gw_publish_status(&g, "starting");
    MQIM_LOGI(LOG_MOD, "mqim-gateway starting: broker %s, data %s, root %s, store %s epoch %" PRIu64
              ", instance %s", g.uri, cfg->data_dir, cfg->root, mqim_store_identity(g.store)->id,
              mqim_store_identity(g.store)->epoch, g.instance);
    gw_pump(&g, stop);
    say_offline(&g);
    MQIM_LOGI(LOG_MOD, "mqim-gateway stopped");
    rc = 0;
out:
    mqim_metrics_server_stop(g.metrics);
    core_free(&g);
    io_free(&g);
    pthread_mutex_destroy(&g.mu);
    return rc;
}
