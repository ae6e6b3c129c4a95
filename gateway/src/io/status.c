/* The gateway's status and stats documents, and the check for another
 * instance on the broker (see daemon_internal.h). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "daemon_internal.h"
#include "log.h"
#include "mqim/gateway_status.h"
#include "mqim/json_write.h"

#define LOG_MOD "status"
#define PROBE_TIMEOUT_MS 5000
#define PROBE_RETAINED_WAIT_MS 300 /* the retained status follows the SUBACK */

/* The status document: common/include/mqim/gateway_status.h. */
int gw_status_payload(const gw_t *g, const char *state, bool with_ts, char *buf, size_t cap)
{
    const mqim_store_identity_t *id = mqim_store_identity(g->store);
    mqim_gateway_status_t s = { mqim_str_from_cstr(state), with_ts, with_ts ? gw_now_ms() : 0,
                                mqim_str_from_cstr(id->id), id->epoch, mqim_str_from_cstr(g->instance),
                                mqim_str_from_cstr(g->host), mqim_str_from_cstr(g->boot_id), true,
                                (int64_t)getpid() };
    size_t n = 0;
    return mqim_gateway_status_encode(&s, buf, cap, &n) == MQIM_OK ? (int)n : 0;
}

void gw_publish_status(gw_t *g, const char *state)
{
    char buf[512];
    int n = gw_status_payload(g, state, true, buf, sizeof(buf));
    mqim_outbound_t o = { mqim_str_from_cstr(g->status_topic), { buf, (size_t)n }, 1, true,
                          { NULL, 0 } };
    gw_publish_now(g, &o);
}

void gw_publish_stats(gw_t *g)
{
    mqim_txn_t txn;
    mqim_store_stats_t s;
    char buf[512];
    mqim_json_writer_t w;
    size_t len = 0;
    uint64_t handled, rejected, commits, batched;
    if (mqim_txn_begin(g->store, MQIM_TXN_READ, &txn) != MQIM_OK) {
        return;
    }
    (void)mqim_store_stats(&txn, &s);
    commits = mqim_store_counter_get(&txn, "commits"); /* group commits of inbound publishes */
    batched = mqim_store_counter_get(&txn, "batched");
    mqim_txn_abort(&txn);
    pthread_mutex_lock(&g->mu);
    handled = g->handled;
    rejected = g->rejected;
    pthread_mutex_unlock(&g->mu);
    mqim_json_init(&w, buf, sizeof(buf));
    mqim_json_object_begin(&w);
    mqim_json_key_u64(&w, "users", s.users);
    mqim_json_key_u64(&w, "messages", s.messages);
    mqim_json_key_u64(&w, "outbox", s.outbox);
    mqim_json_key_u64(&w, "handled", handled);
    mqim_json_key_u64(&w, "not_ok", rejected);
    mqim_json_key_u64(&w, "commits", commits);
    mqim_json_key_u64(&w, "batched", batched);
    mqim_json_key_u64(&w, "map_used", s.map_used_bytes);
    mqim_json_key_u64(&w, "map_size", s.map_size_bytes);
    mqim_json_key_i64(&w, "ts", gw_now_ms());
    mqim_json_object_end(&w);
    if (mqim_json_finish(&w, &len) == MQIM_OK) {
        mqim_outbound_t o = { mqim_str_from_cstr(g->stats_topic), { buf, len }, 0, true,
                              { NULL, 0 } };
        gw_publish_now(g, &o);
    }
}

void gw_identity_init(gw_t *g)
{
    unsigned char r[16];
    FILE *f;
    static const char hex[] = "0123456789abcdef";
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        uint64_t t = (uint64_t)gw_now_ms() ^ ((uint64_t)getpid() << 32);
        memcpy(r, &t, sizeof(t));
        memcpy(r + 8, &t, sizeof(t));
    }
    for (size_t i = 0; i < sizeof(r); i++) {
        g->instance[2u * i] = hex[r[i] >> 4];
        g->instance[2u * i + 1u] = hex[r[i] & 15u];
    }
    if (gethostname(g->host, sizeof(g->host) - 1u) != 0) {
        snprintf(g->host, sizeof(g->host), "unknown");
    }
    for (char *q = g->host; *q != '\0'; q++) {
        if (*q == '"' || *q == '\\' || (unsigned char)*q < 0x20u) {
            *q = '_'; /* it goes into JSON as is */
        }
    }
    f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f == NULL || fgets(g->boot_id, sizeof(g->boot_id), f) == NULL) {
        g->boot_id[0] = '\0';
    }
    if (f != NULL) {
        fclose(f);
    }
    g->boot_id[strcspn(g->boot_id, "\r\n\"\\")] = '\0';
    (void)gw_status_payload(g, "offline", false, g->offline, sizeof(g->offline));
}

/* ---- one gateway per identity on the broker ---- */

/* A process of this host and boot with that pid that is an mqim-gateway. */
static bool local_gateway_alive(long pid)
{
    char path[64], comm[64] = "";
    FILE *f;
    if (pid <= 0 || pid == (long)getpid() || (kill((pid_t)pid, 0) != 0 && errno != EPERM)) {
        return false;
    }
    snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
    f = fopen(path, "r");
    if (f != NULL) {
        if (fgets(comm, sizeof(comm), f) == NULL) {
            comm[0] = '\0';
        }
        fclose(f);
    }
    return strncmp(comm, "mqim-gateway", 12) == 0;
}

/* The retained status says another instance is online: true with the
 * reason in why. A status of this host's current boot whose process is gone
 * is stale (a crash that took the broker's will with it), and so is one of
 * an earlier boot of this host (a power loss that took the broker down
 * before the will: its autosave kept the retained "online"); one from
 * another host cannot be checked from here and counts as live. */
static bool status_says_other(const gw_t *g, const char *payload, char *why, size_t cap)
{
    cJSON *o = cJSON_Parse(payload);
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(o, "state");
    const cJSON *inst = cJSON_GetObjectItemCaseSensitive(o, "instance");
    const cJSON *host = cJSON_GetObjectItemCaseSensitive(o, "host");
    const cJSON *boot = cJSON_GetObjectItemCaseSensitive(o, "boot");
    const cJSON *pid = cJSON_GetObjectItemCaseSensitive(o, "pid");
    const cJSON *store = cJSON_GetObjectItemCaseSensitive(o, "store");
    bool other = false;
    if (cJSON_IsString(state) && strcmp(state->valuestring, "online") == 0 && cJSON_IsString(inst) &&
        strcmp(inst->valuestring, g->instance) != 0 && cJSON_IsString(host) && cJSON_IsString(boot) &&
        cJSON_IsNumber(pid)) {
        bool this_host = strcmp(host->valuestring, g->host) == 0;
        bool this_boot = this_host && strcmp(boot->valuestring, g->boot_id) == 0;
        other = this_boot ? local_gateway_alive((long)pid->valuedouble) : !this_host;
        if (other) {
            const char *sid = cJSON_IsString(store) ? store->valuestring : "?";
            snprintf(why, cap, "another mqim-gateway is online on this broker under %s: pid %ld on host "
                     "%s, store %s%s", g->status_topic, (long)pid->valuedouble, host->valuestring, sid,
                     strcmp(sid, mqim_store_identity(g->store)->id) == 0
                         ? " (this store: a copy of its data directory)" : " (another store)");
        }
    }
    cJSON_Delete(o);
    return other;
}

/* What the probe connection saw on the status topic (the pump thread's). */
typedef struct probe {
    char payload[1024];
    size_t len;
} probe_t;

static mqim_status_t probe_publish(void *ctx, const mqim_v5_packet_t *pk)
{
    probe_t *p = ctx;
    p->len = pk->payload.len < sizeof(p->payload) ? pk->payload.len : 0u;
    memcpy(p->payload, pk->payload.ptr, p->len);
    p->payload[p->len] = '\0';
    return MQIM_OK;
}

/* Serve the probe connection until it is subscribed and a moment has
 * passed for the retained status; false when it failed or timed out. */
static bool probe_wait(mqim_conn_t *c, int64_t until)
{
    int64_t subscribed_at = 0;
    char err[256];
    for (;;) {
        int64_t t = gw_now_ms();
        struct pollfd pfd = { mqim_conn_fd(c), mqim_conn_poll_events(c), 0 };
        if (mqim_conn_service(c, t, NULL, NULL, err, sizeof(err)) != MQIM_OK) {
            MQIM_LOGW(LOG_MOD, "reading the gateway status: %s", err);
            return false;
        }
        if (subscribed_at == 0 && mqim_conn_subscribed(c)) {
            subscribed_at = t;
        }
        if (subscribed_at != 0 && t - subscribed_at >= PROBE_RETAINED_WAIT_MS) {
            return true;
        }
        if (t >= until) {
            return false;
        }
        (void)poll(&pfd, 1, 50);
    }
}

int gw_probe_other_instance(gw_t *g, char *why, size_t cap)
{
    const mqim_gw_config_t *cfg = g->cfg;
    char id[sizeof(cfg->client_id) + 8], err[512];
    probe_t p;
    mqim_conn_t *c;
    mqim_conn_config_t cc = {
        .host = cfg->broker_host, .port = cfg->broker_port, .client_id = id,
        .username = cfg->username, .password = cfg->password, .tls = cfg->broker_tls,
        .cafile = cfg->broker_cafile, .certfile = cfg->broker_certfile, .keyfile = cfg->broker_keyfile,
        .keepalive_s = 20, .max_inflight = 1, .sub_filter = g->status_topic,
        .on_publish = probe_publish, .on_publish_ctx = &p,
    };
    int result = -1;
    memset(&p, 0, sizeof(p));
    snprintf(id, sizeof(id), "%s.probe", cfg->client_id);
    c = mqim_conn_new(&cc);
    if (c == NULL) {
        return -1;
    }
    if (mqim_conn_connect(c, PROBE_TIMEOUT_MS, gw_now_ms(), err, sizeof(err)) == MQIM_OK &&
        probe_wait(c, gw_now_ms() + PROBE_TIMEOUT_MS)) {
        result = p.len > 0u && status_says_other(g, p.payload, why, cap) ? 1 : 0;
    }
    mqim_conn_close(c, true);
    mqim_conn_free(c);
    return result;
}
