/* The operators' thread (metrics_server.h): the OpenMetrics endpoint and
 * the control socket, served one connection at a time from one poll loop.
 * A slow client holds this thread for at most IO_TIMEOUT_MS per request,
 * never the router or the pump. */
#include "metrics_server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "outbox_age.h"

#define LOG_MOD "metrics"
#define REQUEST_MAX 4096u
#define IO_TIMEOUT_MS 2000
struct mqim_metrics_server {
    const mqim_gw_config_t *cfg;
    mqim_store_t *store;
    int http_fd, ctl_fd, wake[2];
    pthread_t thread;
    mqim_outbox_age_t outbox_age;
};

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Uptime and start time: the wall clock. The outbox samples: the
 * monotonic one (a clock step must not age or rejuvenate an entry). */
static int64_t wall_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

static int64_t mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

/* ---- what a scrape reads ---- */

typedef struct online_count {
    mqim_txn_t *txn;
    mqim_metrics_gauges_t *g;
    bool user_online;
} online_count_t;

static bool device_is_online(const mqim_device_rec_t *d)
{
    return d->state == MQIM_PRESENCE_ONLINE || d->state == MQIM_PRESENCE_AWAY;
}

static int count_device(void *ctx, mqim_str_t device, const mqim_device_rec_t *d)
{
    online_count_t *c = ctx;
    (void)device;
    c->g->devices_known++;
    if (device_is_online(d)) {
        c->g->devices_online++;
        c->user_online = true;
    }
    return 0;
}

static int count_user(void *ctx, mqim_str_t user, const mqim_user_rec_t *rec)
{
    online_count_t *c = ctx;
    (void)rec;
    c->user_online = false;
    (void)mqim_store_device_each(c->txn, user, count_device, c);
    c->g->users_online += c->user_online ? 1u : 0u;
    return 0;
}

static void take_sample(mqim_metrics_server_t *m, mqim_txn_t *txn, int64_t now)
{
    mqim_outbox_age_sample(&m->outbox_age, mqim_store_counter_get(txn, "next_outbox"), now);
}

static void read_process(mqim_metrics_gauges_t *g)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    DIR *d;
    if (f != NULL) {
        size_t n = fread(buf, 1, sizeof(buf) - 1u, f);
        char *p;
        unsigned long utime = 0, stime = 0;
        long rss = 0;
        buf[n] = '\0';
        fclose(f);
        p = strrchr(buf, ')'); /* the command name may hold spaces */
        if (p != NULL &&
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d "
                          "%*u %*u %ld", &utime, &stime, &rss) == 3) {
            long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
            g->process_cpu_s = hz > 0 ? (double)(utime + stime) / (double)hz : 0.0;
            g->process_rss_bytes = rss > 0 && page > 0 ? (uint64_t)rss * (uint64_t)page : 0u;
        }
    }
    d = opendir("/proc/self/fd");
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            g->process_open_fds += e->d_name[0] != '.' ? 1u : 0u;
        }
        closedir(d);
        g->process_open_fds--; /* the directory's own descriptor */
    }
}

static void collect(mqim_metrics_server_t *m, mqim_metrics_gauges_t *g)
{
    mqim_txn_t txn;
    mqim_store_stats_t st;
    mqim_outbox_rec_t first;
    char path[MQIM_GW_PATH_MAX + 16];
    struct stat sb;
    int64_t now = mono_ms();
    memset(g, 0, sizeof(*g));
    read_process(g);
    if (mqim_txn_begin(m->store, MQIM_TXN_READ, &txn) != MQIM_OK) {
        return;
    }
    g->store_ok = true;
    (void)mqim_store_stats(&txn, &st);
    g->outbox_depth = st.outbox;
    g->store_map_used_bytes = st.map_used_bytes;
    g->store_map_size_bytes = st.map_size_bytes;
    g->store_users = st.users;
    g->store_messages = st.messages;
    take_sample(m, &txn, now);
    if (st.outbox > 0u && mqim_store_outbox_next(&txn, 0, &first) == MQIM_OK) {
        g->outbox_oldest_age_s = mqim_outbox_age_of(&m->outbox_age, first.key, now);
    }
    {
        online_count_t c = { &txn, g, false };
        (void)mqim_store_user_each(&txn, count_user, &c);
    }
    mqim_txn_abort(&txn);
    g->store_epoch = mqim_store_identity(m->store)->epoch;
    snprintf(g->store_id, sizeof(g->store_id), "%s", mqim_store_identity(m->store)->id);
    snprintf(path, sizeof(path), "%s/data.mdb", m->cfg->data_dir);
    g->store_file_bytes = stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0u;
}

/* ---- connections ---- */

static bool send_all(int fd, const char *p, size_t len)
{
    while (len > 0u) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* Read until `end` appears or REQUEST_MAX bytes or the deadline. Returns
 * the length (buf NUL-terminated), or -1 (closed early, timed out, too long). */
static ssize_t read_request(int fd, char *buf, const char *end)
{
    size_t len = 0;
    struct timeval tv = { IO_TIMEOUT_MS / 1000, 0 };
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    while (len < REQUEST_MAX - 1u) {
        ssize_t n = recv(fd, buf + len, REQUEST_MAX - 1u - len, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        len += (size_t)n;
        buf[len] = '\0';
        if (strstr(buf, end) != NULL) {
            return (ssize_t)len;
        }
    }
    return -1;
}

/* Render into a heap buffer of the size the text needs. */
static char *render(mqim_metrics_server_t *m, mqim_metrics_format_t fmt, size_t *len)
{
    mqim_metrics_snapshot_t s;
    mqim_metrics_gauges_t g;
    char *buf;
    size_t need;
    mqim_metrics_snapshot(&s);
    collect(m, &g);
    need = mqim_metrics_render(&s, &g, fmt, NULL, 0);
    buf = malloc(need + 1u);
    if (buf != NULL) {
        *len = mqim_metrics_render(&s, &g, fmt, buf, need + 1u);
    }
    return buf;
}

/* The value of the Accept header asks for text/plain, not OpenMetrics. */
static bool wants_prometheus_text(const char *req)
{
    for (const char *line = strstr(req, "\r\n"); line != NULL; line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "accept:", 7) == 0) {
            const char *value = line + 9, *eol = strstr(value, "\r\n");
            size_t n = eol != NULL ? (size_t)(eol - value) : strlen(value);
            bool om = false, text = false;
            for (size_t i = 0; i < n; i++) {
                om = om || (n - i >= 16u && strncasecmp(value + i, "openmetrics-text", 16) == 0);
                text = text || (n - i >= 10u && strncasecmp(value + i, "text/plain", 10) == 0);
            }
            return text && !om;
        }
    }
    return false;
}

mqim_http_route_t mqim_metrics_http_route(const char *req, bool *head_only, bool *prometheus_text)
{
    const char *path;
    *head_only = strncmp(req, "HEAD ", 5) == 0;
    *prometheus_text = false;
    if (strncmp(req, "GET ", 4) != 0 && !*head_only) {
        return MQIM_HTTP_BAD_METHOD;
    }
    path = req + (*head_only ? 5 : 4);
    if (strncmp(path, "/metrics ", 9) != 0 && strncmp(path, "/metrics?", 9) != 0) {
        return MQIM_HTTP_NOT_FOUND;
    }
    *prometheus_text = wants_prometheus_text(req);
    return MQIM_HTTP_METRICS;
}

static void http_reply(int fd, const char *status, const char *type, const char *body, size_t len,
                       bool send_body)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, type, len);
    if (send_all(fd, head, (size_t)n) && send_body) {
        (void)send_all(fd, body, len);
    }
}

static void serve_http(mqim_metrics_server_t *m, int fd)
{
    char req[REQUEST_MAX];
    size_t len = 0;
    char *body;
    bool text, head_only;
    mqim_http_route_t route;
    if (read_request(fd, req, "\r\n\r\n") < 0) {
        static const char msg[] = "request too large, incomplete or too slow\n";
        http_reply(fd, "400 Bad Request", "text/plain; charset=utf-8", msg, sizeof(msg) - 1u, true);
        return;
    }
    route = mqim_metrics_http_route(req, &head_only, &text);
    if (route == MQIM_HTTP_BAD_METHOD) {
        static const char msg[] = "only GET /metrics\n";
        http_reply(fd, "405 Method Not Allowed", "text/plain; charset=utf-8", msg, sizeof(msg) - 1u, true);
        return;
    }
    if (route == MQIM_HTTP_NOT_FOUND) {
        static const char msg[] = "not found: the metrics are at /metrics\n";
        http_reply(fd, "404 Not Found", "text/plain; charset=utf-8", msg, sizeof(msg) - 1u, true);
        return;
    }
    body = render(m, text ? MQIM_METRICS_PROMETHEUS : MQIM_METRICS_OPENMETRICS, &len);
    if (body == NULL) {
        static const char msg[] = "out of memory\n";
        http_reply(fd, "500 Internal Server Error", "text/plain; charset=utf-8", msg, sizeof(msg) - 1u, true);
        return;
    }
    http_reply(fd, "200 OK",
               text ? "text/plain; version=0.0.4; charset=utf-8"
                    : "application/openmetrics-text; version=1.0.0; charset=utf-8",
               body, len, !head_only);
    free(body);
}

/* ---- the control socket ---- */

typedef struct ctl_out {
    char buf[65536];
    size_t len;
    int fd;
    bool failed;
} ctl_out_t;

__attribute__((format(printf, 2, 3))) static void ctl_put(ctl_out_t *o, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (o->failed) {
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(o->buf + o->len, sizeof(o->buf) - o->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((size_t)n >= sizeof(o->buf) - o->len) {
        /* Flush what fits and write the rest again from an empty buffer. */
        if (!send_all(o->fd, o->buf, o->len)) {
            o->failed = true;
            return;
        }
        o->len = 0;
        va_start(ap, fmt);
        n = vsnprintf(o->buf, sizeof(o->buf), fmt, ap);
        va_end(ap);
        n = n < 0 ? 0 : (n >= (int)sizeof(o->buf) ? (int)sizeof(o->buf) - 1 : n);
    }
    o->len += (size_t)n;
}

static void ctl_status(mqim_metrics_server_t *m, ctl_out_t *o)
{
    mqim_metrics_snapshot_t s;
    mqim_metrics_gauges_t g;
    static const char *const levels[] = { "error", "warn", "info", "debug" };
    mqim_metrics_snapshot(&s);
    collect(m, &g);
    ctl_put(o, "state\trunning\npid\t%ld\nuptime_s\t%" PRId64 "\nbroker_connected\t%s\n",
            (long)getpid(), (wall_ms() - s.start_ms) / 1000, s.connected ? "yes" : "no");
    ctl_put(o, "store_id\t%s\nstore_epoch\t%" PRIu64 "\noutbox_depth\t%" PRIu64
               "\noutbox_oldest_age_s\t%.0f\njournal_lag\t%" PRIu64 "\n",
            g.store_id, g.store_epoch, g.outbox_depth, g.outbox_oldest_age_s,
            s.journal_written > s.journal_applied ? s.journal_written - s.journal_applied : 0u);
    ctl_put(o, "users_online\t%" PRIu64 "\ndevices_online\t%" PRIu64 "\nlog_level\t%s\n",
            g.users_online, g.devices_online, levels[mqim_log_get_level()]);
}

typedef struct online_list {
    mqim_txn_t *txn;
    ctl_out_t *o;
    bool all;
    mqim_str_t user;
} online_list_t;

static int list_device(void *ctx, mqim_str_t device, const mqim_device_rec_t *d)
{
    online_list_t *l = ctx;
    static const char *const states[] = { "offline", "sleeping", "away", "online" };
    if (l->all || device_is_online(d)) {
        ctl_put(l->o, "%.*s\t%.*s\t%s\t%" PRId64 "\t%" PRId64 "\n", (int)l->user.len, l->user.ptr,
                (int)device.len, device.ptr, d->state < 4u ? states[d->state] : "unknown",
                d->last_seen_ms, d->since_ms);
    }
    return 0;
}

static int list_user(void *ctx, mqim_str_t user, const mqim_user_rec_t *rec)
{
    online_list_t *l = ctx;
    (void)rec;
    l->user = user;
    (void)mqim_store_device_each(l->txn, user, list_device, l);
    return 0;
}

/* user, device, state, last seen (ms), state since (ms): the command
 * prints the times in the operator's local time. */
static void ctl_online(mqim_metrics_server_t *m, ctl_out_t *o, bool all)
{
    mqim_txn_t txn;
    online_list_t l = { &txn, o, all, { NULL, 0 } };
    if (mqim_txn_begin(m->store, MQIM_TXN_READ, &txn) != MQIM_OK) {
        ctl_put(o, "error\tcannot read the store\n");
        return;
    }
    (void)mqim_store_user_each(&txn, list_user, &l);
    mqim_txn_abort(&txn);
}

static void serve_control(mqim_metrics_server_t *m, int fd)
{
    char req[REQUEST_MAX];
    static ctl_out_t o; /* 64 KiB; this thread only */
    int level;
    o.len = 0;
    o.fd = fd;
    o.failed = false;
    if (read_request(fd, req, "\n") < 0) {
        ctl_put(&o, "error\trequest too long, incomplete or too slow\n");
    } else {
        req[strcspn(req, "\r\n")] = '\0';
        if (strcmp(req, "status") == 0) {
            ctl_status(m, &o);
        } else if (strcmp(req, "online") == 0 || strcmp(req, "online all") == 0) {
            ctl_online(m, &o, strcmp(req, "online all") == 0);
        } else if (strncmp(req, "log-level ", 10) == 0 &&
                   (level = mqim_log_level_parse(req + 10)) >= 0) {
            static const char *const levels[] = { "error", "warn", "info", "debug" };
            mqim_log_level_t old = mqim_log_get_level();
            mqim_log_set_level((mqim_log_level_t)level);
            /* The operator's change at the level it leaves, so it shows even
             * when the new level hides INFO. */
            mqim_log((mqim_log_level_t)(level < (int)MQIM_LOG_WARN ? level : (int)MQIM_LOG_INFO),
                     LOG_MOD, "log level %s -> %s (control socket; the config's log_level applies "
                     "again at the next SIGHUP or restart)", levels[old], levels[level]);
            ctl_put(&o, "log_level\t%s\n", levels[level]);
        } else {
            ctl_put(&o, "error\tunknown request '%.64s' (status, online [all], log-level LEVEL)\n", req);
        }
    }
    if (!o.failed) {
        (void)send_all(fd, o.buf, o.len);
    }
}

/* ---- the thread ---- */

/* Close after the reply was read: a close with unread request bytes (a
 * request refused as too large) sends a reset that may destroy the reply
 * in the client's buffers. Bounded by the receive timeout and 64 KiB. */
static void linger_close(int fd)
{
    char sink[4096];
    size_t drained = 0;
    ssize_t n;
    (void)shutdown(fd, SHUT_WR);
    while (drained < 65536u && (n = recv(fd, sink, sizeof(sink), 0)) > 0) {
        drained += (size_t)n;
    }
    close(fd);
}

/* Only the gateway's own user and root may ask (an abstract socket has no
 * file whose mode could say so). */
static bool peer_allowed(int fd)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
           (cred.uid == 0 || cred.uid == geteuid());
}

static void *run(void *arg)
{
    mqim_metrics_server_t *m = arg;
    int64_t last_sample = 0;
    for (;;) {
        struct pollfd p[3] = { { m->wake[0], POLLIN, 0 }, { m->ctl_fd, POLLIN, 0 },
                               { m->http_fd, POLLIN, 0 } };
        int n = poll(p, m->http_fd >= 0 ? 3u : 2u, 1000);
        int64_t now = mono_ms();
        if (n < 0 && errno != EINTR) {
            MQIM_LOGE(LOG_MOD, "poll: %s; metrics and control socket stop", strerror(errno));
            return NULL;
        }
        if (p[0].revents != 0) {
            return NULL;
        }
        if (now - last_sample >= 1000) {
            mqim_txn_t txn;
            if (mqim_txn_begin(m->store, MQIM_TXN_READ, &txn) == MQIM_OK) {
                take_sample(m, &txn, now);
                mqim_txn_abort(&txn);
            }
            last_sample = now;
        }
        for (int i = 1; i < 3; i++) {
            int fd;
            if (i == 2 && m->http_fd < 0) {
                break;
            }
            if ((p[i].revents & POLLIN) == 0 || (fd = accept4(p[i].fd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
                continue;
            }
            if (i == 1 && !peer_allowed(fd)) {
                static const char msg[] = "error\tonly the gateway's user and root may use the control socket\n";
                (void)send_all(fd, msg, sizeof(msg) - 1u);
            } else if (i == 1) {
                serve_control(m, fd);
            } else {
                serve_http(m, fd);
            }
            linger_close(fd);
        }
    }
}

static int bind_http(const mqim_gw_config_t *cfg)
{
    char addr[64], err[256];
    int port, fd, one = 1;
    bool loopback;
    struct sockaddr_storage ss;
    socklen_t sl;
    if (mqim_gw_metrics_listen_parse(cfg->metrics_listen, addr, sizeof(addr), &port, &loopback, err,
                                     sizeof(err)) != 0) {
        MQIM_LOGE(LOG_MOD, "%s", err);
        return -1;
    }
    memset(&ss, 0, sizeof(ss));
    if (strchr(addr, ':') == NULL) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        (void)inet_pton(AF_INET, addr, &a->sin_addr);
        sl = sizeof(*a);
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        (void)inet_pton(AF_INET6, addr, &a->sin6_addr);
        sl = sizeof(*a);
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 16) != 0) {
        MQIM_LOGE(LOG_MOD, "metrics_listen %s: %s", cfg->metrics_listen, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    if (!loopback) {
        MQIM_LOGW(LOG_MOD, "metrics on %s, not loopback (metrics_allow_remote): anyone who can reach "
                  "it sees who is online", cfg->metrics_listen);
    }
    MQIM_LOGI(LOG_MOD, "OpenMetrics endpoint on http://%s/metrics", cfg->metrics_listen);
    return fd;
}

socklen_t mqim_control_socket_addr(const char *data_dir, struct sockaddr_un *a)
{
    char real[PATH_MAX];
    const char *path = realpath(data_dir, real) != NULL ? real : data_dir;
    uint64_t h = UINT64_C(14695981039346656037); /* FNV-1a 64 */
    int n;
    for (const char *p = path; *p != '\0'; p++) {
        h = (h ^ (uint8_t)*p) * UINT64_C(1099511628211);
    }
    memset(a, 0, sizeof(*a));
    a->sun_family = AF_UNIX;
    /* sun_path[0] = '\0': an abstract name, no file */
    n = snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1u, "mqim-gateway.%016" PRIx64, h);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1u + (size_t)n);
}

static int bind_control(const mqim_gw_config_t *cfg)
{
    struct sockaddr_un a;
    socklen_t len = mqim_control_socket_addr(cfg->data_dir, &a);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, len) != 0 || listen(fd, 8) != 0) {
        MQIM_LOGE(LOG_MOD, "control socket @%s (for %s): %s", a.sun_path + 1, cfg->data_dir,
                  strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

mqim_metrics_server_t *mqim_metrics_server_start(const mqim_gw_config_t *cfg, mqim_store_t *store)
{
    mqim_metrics_server_t *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        MQIM_LOGE(LOG_MOD, "out of memory");
        return NULL;
    }
    m->cfg = cfg;
    m->store = store;
    m->http_fd = -1;
    m->ctl_fd = -1;
    m->wake[0] = m->wake[1] = -1;
    mqim_outbox_age_init(&m->outbox_age, 1000);
    mqim_metrics_start(wall_ms());
    if (pipe2(m->wake, O_CLOEXEC) != 0 || (m->ctl_fd = bind_control(cfg)) < 0 ||
        (cfg->metrics_listen[0] != '\0' && (m->http_fd = bind_http(cfg)) < 0) ||
        pthread_create(&m->thread, NULL, run, m) != 0) {
        if (m->ctl_fd >= 0) {
            close(m->ctl_fd);
        }
        if (m->http_fd >= 0) {
            close(m->http_fd);
        }
        if (m->wake[0] >= 0) {
            close(m->wake[0]);
            close(m->wake[1]);
        }
        free(m);
        return NULL;
    }
    return m;
}

void mqim_metrics_server_stop(mqim_metrics_server_t *m)
{
    if (m == NULL) {
        return;
    }
    if (write(m->wake[1], "x", 1) != 1) {
        MQIM_LOGW(LOG_MOD, "cannot wake the metrics thread: %s", strerror(errno));
    }
    pthread_join(m->thread, NULL);
    close(m->ctl_fd);
    if (m->http_fd >= 0) {
        close(m->http_fd);
    }
    close(m->wake[0]);
    close(m->wake[1]);
    free(m);
}
