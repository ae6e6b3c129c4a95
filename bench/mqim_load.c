/* mqim_load: load generator for the benchmarks (bench/README.md).
 *
 * P sender/recipient pairs, each client its own Paho MQTTAsync connection.
 * routed: sender USER publishes im/u/USER/out/dm/PEER (QoS 1) and waits for
 *         `sent` acks on im/u/USER/in/ack; the recipient reads im/u/PEER/in/msg.
 * raw:    the same clients and payloads straight to bench/x/PEER through a
 *         broker (the baseline: one broker crossing, no gateway).
 * group:  one sender publishes to im/u/USER/out/group/GROUP; every recipient
 *         (the group's members) counts deliveries.
 * Every message is counted by id (a bitmap per pair): the run fails (exit 1)
 * unless every message was delivered and, when routed, acked `sent`.
 * Prints one JSON object with rates and latency percentiles (microseconds,
 * from publish to delivery and from publish to the `sent` ack).
 */
#include <MQTTAsync.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BODY_LEN 100

typedef enum { MODE_ROUTED, MODE_RAW, MODE_GROUP } mode_t_;

typedef struct pair {
    int idx;
    char sender[64], recipient[64];
    char spw[128], rpw[128];
    MQTTAsync sc, rc;
    int64_t *send_ns;      /* [count] */
    uint8_t *delivered, *acked;
    uint32_t *lat_d, *lat_a; /* microseconds, in arrival order */
    pthread_mutex_t mu;
    long ndelivered, nacked, nlat_d, nlat_a, dup_d, dup_a;
    long pubacked;
    volatile int sc_ok, rc_ok, subs_ok;
} pair_t;

static mode_t_ mode = MODE_ROUTED;
static int port = 1883, npairs = 4, window = 200, paho_inflight = 100, timeout_s = 120;
static long count = 10000;
static double rate = 0; /* total msgs/s; 0 = as fast as the window allows */
static const char *group = "benchg";
static pair_t *pairs;
static int64_t last_delivery_ns, max_gap_ns, t_start_ns;
static pthread_mutex_t gap_mu = PTHREAD_MUTEX_INITIALIZER;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_until(int64_t t)
{
    int64_t d = t - mono_ns();
    if (d > 0) {
        struct timespec ts = { (time_t)(d / 1000000000), (long)(d % 1000000000) };
        nanosleep(&ts, NULL);
    }
}

/* "id":"<run>kN" -> N; -1 when absent. Each run has its own hex prefix:
 * the gateway dedupes by (from, id), so ids must not repeat across runs. */
static char run_id[24];

static long parse_id(const char *p, size_t len)
{
    const char *key = "\"id\":\"";
    const char *end = p + len;
    const char *q = memmem(p, len, key, strlen(key));
    size_t rl = strlen(run_id);
    long v = 0;
    if (q == NULL) {
        return -1;
    }
    q += strlen(key);
    if ((size_t)(end - q) < rl + 2u || memcmp(q, run_id, rl) != 0 || q[rl] != 'k') {
        return -1;
    }
    q += rl + 1u;
    if (q >= end || *q < '0' || *q > '9') {
        return -1;
    }
    while (q < end && *q >= '0' && *q <= '9') {
        v = v * 10 + (*q - '0');
        q++;
    }
    return v;
}

static void note_delivery(int64_t now)
{
    pthread_mutex_lock(&gap_mu);
    if (last_delivery_ns != 0 && now - last_delivery_ns > max_gap_ns) {
        max_gap_ns = now - last_delivery_ns;
    }
    last_delivery_ns = now;
    pthread_mutex_unlock(&gap_mu);
}

static int on_recipient_msg(void *ctx, char *topic, int tlen, MQTTAsync_message *m)
{
    pair_t *p = ctx;
    int64_t now = mono_ns();
    long id = parse_id(m->payload, (size_t)m->payloadlen);
    (void)tlen;
    /* group mode: every recipient reads the messages of pair 0's sender */
    pair_t *src = mode == MODE_GROUP ? &pairs[0] : p;
    if (id >= 0 && id < count) {
        pthread_mutex_lock(&p->mu);
        if (p->delivered[id]) {
            p->dup_d++;
        } else {
            p->delivered[id] = 1;
            p->ndelivered++;
            p->lat_d[p->nlat_d++] = (uint32_t)((now - src->send_ns[id]) / 1000);
        }
        pthread_mutex_unlock(&p->mu);
        note_delivery(now);
    }
    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    return 1;
}

static int on_sender_msg(void *ctx, char *topic, int tlen, MQTTAsync_message *m)
{
    pair_t *p = ctx;
    int64_t now = mono_ns();
    (void)tlen;
    if (memmem(m->payload, (size_t)m->payloadlen, "\"status\":\"sent\"", 15) != NULL) {
        long id = parse_id(m->payload, (size_t)m->payloadlen);
        if (id >= 0 && id < count) {
            pthread_mutex_lock(&p->mu);
            if (p->acked[id]) {
                p->dup_a++;
            } else {
                p->acked[id] = 1;
                p->nacked++;
                p->lat_a[p->nlat_a++] = (uint32_t)((now - p->send_ns[id]) / 1000);
            }
            pthread_mutex_unlock(&p->mu);
        }
    } else if (memmem(m->payload, (size_t)m->payloadlen, "rejected", 8) != NULL) {
        fprintf(stderr, "mqim_load: rejected: %.*s\n", m->payloadlen, (char *)m->payload);
    }
    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    return 1;
}

static void on_puback(void *ctx, MQTTAsync_successData *r)
{
    pair_t *p = ctx;
    (void)r;
    pthread_mutex_lock(&p->mu);
    p->pubacked++;
    pthread_mutex_unlock(&p->mu);
}

static void on_pubfail(void *ctx, MQTTAsync_failureData *r)
{
    pair_t *p = ctx;
    fprintf(stderr, "mqim_load: publish failed (%d)\n", r != NULL ? r->code : 0);
    pthread_mutex_lock(&p->mu);
    p->pubacked++;
    pthread_mutex_unlock(&p->mu);
}

static void on_sub(void *ctx, MQTTAsync_successData *r)
{
    (void)r;
    __atomic_add_fetch(&((pair_t *)ctx)->subs_ok, 1, __ATOMIC_SEQ_CST);
}

static void on_conn_ok_s(void *ctx, MQTTAsync_successData *r)
{
    (void)r;
    ((pair_t *)ctx)->sc_ok = 1;
}

static void on_conn_ok_r(void *ctx, MQTTAsync_successData *r)
{
    (void)r;
    ((pair_t *)ctx)->rc_ok = 1;
}

static void on_conn_fail(void *ctx, MQTTAsync_failureData *r)
{
    (void)ctx;
    fprintf(stderr, "mqim_load: connect failed (%d %s)\n", r != NULL ? r->code : 0,
            r != NULL && r->message != NULL ? r->message : "");
    exit(2);
}

static void on_lost(void *ctx, char *cause)
{
    (void)ctx;
    fprintf(stderr, "mqim_load: connection lost (%s)\n", cause != NULL ? cause : "?");
}

static void connect_client(MQTTAsync *c, const char *user, const char *pw, const char *suffix,
                           MQTTAsync_messageArrived *cb, void *ctx, MQTTAsync_onSuccess *ok)
{
    char uri[64], cid[128];
    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
    snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", port);
    snprintf(cid, sizeof(cid), "%s.%s", user, suffix);
    if (MQTTAsync_create(c, uri, cid, MQTTCLIENT_PERSISTENCE_NONE, NULL) != MQTTASYNC_SUCCESS) {
        fprintf(stderr, "mqim_load: create failed\n");
        exit(2);
    }
    MQTTAsync_setCallbacks(*c, ctx, on_lost, cb, NULL);
    co.keepAliveInterval = 60;
    co.cleansession = 1;
    co.maxInflight = paho_inflight;
    if (pw != NULL && pw[0] != '\0') { /* raw mode too, when run through the gateway's broker */
        co.username = user;
        co.password = pw;
    }
    co.onSuccess = ok;
    co.onFailure = on_conn_fail;
    co.context = ctx;
    if (MQTTAsync_connect(*c, &co) != MQTTASYNC_SUCCESS) {
        fprintf(stderr, "mqim_load: connect call failed\n");
        exit(2);
    }
}

static void subscribe(MQTTAsync c, const char *topic, pair_t *p)
{
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.onSuccess = on_sub;
    ro.context = p;
    if (MQTTAsync_subscribe(c, topic, 1, &ro) != MQTTASYNC_SUCCESS) {
        fprintf(stderr, "mqim_load: subscribe to %s failed\n", topic);
        exit(2);
    }
}

/* Paho sets no TCP_NODELAY: small publishes then wait for the peer's
 * delayed ACK (Nagle), tens of ms on loopback. Set it on every TCP socket
 * of this process connected to the broker's port. */
static void nodelay_all(void)
{
    for (int fd = 3; fd < 65536; fd++) {
        struct sockaddr_in a;
        socklen_t len = sizeof(a);
        int one = 1;
        if (getpeername(fd, (struct sockaddr *)&a, &len) != 0) {
            if (errno == EBADF && fd > 4096) {
                break;
            }
            continue;
        }
        if (a.sin_family == AF_INET && ntohs(a.sin_port) == port) {
            (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
    }
}

static long done_of(pair_t *p)
{
    /* the end-to-end window: routed waits for `sent`, raw for delivery */
    if (mode == MODE_ROUTED) {
        return p->nacked;
    }
    if (mode == MODE_GROUP) {
        long min = count;
        for (int i = 0; i < npairs; i++) {
            long d = __atomic_load_n(&pairs[i].ndelivered, __ATOMIC_RELAXED);
            min = d < min ? d : min;
        }
        return min;
    }
    return p->ndelivered;
}

static void *sender(void *arg)
{
    pair_t *p = arg;
    char topic[200], payload[256];
    int senders = mode == MODE_GROUP ? 1 : npairs;
    double interval_ns = rate > 0 ? 1e9 * senders / rate : 0;
    int64_t t0 = t_start_ns + (int64_t)(interval_ns * p->idx / senders);
    if (mode == MODE_ROUTED) {
        snprintf(topic, sizeof(topic), "im/u/%s/out/dm/%s", p->sender, p->recipient);
    } else if (mode == MODE_GROUP) {
        snprintf(topic, sizeof(topic), "im/u/%s/out/group/%s", p->sender, group);
    } else {
        snprintf(topic, sizeof(topic), "bench/x/%s", p->recipient);
    }
    for (long i = 0; i < count; i++) {
        MQTTAsync_message msg = MQTTAsync_message_initializer;
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
        int n, rc;
        for (;;) {
            long done, inflight;
            pthread_mutex_lock(&p->mu);
            done = done_of(p);
            inflight = i - p->pubacked;
            pthread_mutex_unlock(&p->mu);
            if (i - done < window && inflight < paho_inflight) {
                break;
            }
            usleep(100);
        }
        if (interval_ns > 0) {
            sleep_until(t0 + (int64_t)(interval_ns * (double)i));
        }
        /* a 100-byte body */
        n = snprintf(payload, sizeof(payload), "{\"id\":\"%sk%ld\",\"body\":\"%-*s\"}", run_id, i, BODY_LEN,
                     "benchmark message body");
        p->send_ns[i] = mono_ns();
        msg.payload = payload;
        msg.payloadlen = n;
        msg.qos = 1;
        ro.onSuccess = on_puback;
        ro.onFailure = on_pubfail;
        ro.context = p;
        while ((rc = MQTTAsync_sendMessage(p->sc, topic, &msg, &ro)) != MQTTASYNC_SUCCESS) {
            usleep(1000);
        }
    }
    return NULL;
}


/* ---- idle devices (the scale run) ---- */

typedef struct dev {
    MQTTAsync c;
    char user[32];
    int state; /* 0 connecting, 1 connected, 2 subscribed, 3 online published */
} idev_t;

static volatile long n_connected, n_subscribed, n_online;

static void dev_on_online(void *ctx, MQTTAsync_successData *r)
{
    (void)r;
    ((idev_t *)ctx)->state = 3;
    __atomic_add_fetch(&n_online, 1, __ATOMIC_SEQ_CST);
}

static void dev_on_sub(void *ctx, MQTTAsync_successData *r)
{
    idev_t *d = ctx;
    MQTTAsync_message msg = MQTTAsync_message_initializer;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    char topic[96];
    static const char online[] = "{\"state\":\"online\",\"epoch\":1}";
    (void)r;
    d->state = 2;
    __atomic_add_fetch(&n_subscribed, 1, __ATOMIC_SEQ_CST);
    snprintf(topic, sizeof(topic), "im/u/%s/out/status/d", d->user);
    msg.payload = (void *)online;
    msg.payloadlen = (int)strlen(online);
    msg.qos = 1;
    msg.retained = 1;
    ro.onSuccess = dev_on_online;
    ro.context = d;
    (void)MQTTAsync_sendMessage(d->c, topic, &msg, &ro);
}

static void dev_on_conn(void *ctx, MQTTAsync_successData *r)
{
    idev_t *d = ctx;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    char topic[96];
    (void)r;
    d->state = 1;
    __atomic_add_fetch(&n_connected, 1, __ATOMIC_SEQ_CST);
    snprintf(topic, sizeof(topic), "im/u/%s/in/#", d->user);
    ro.onSuccess = dev_on_sub;
    ro.context = d;
    (void)MQTTAsync_subscribe(d->c, topic, 1, &ro);
}

static void dev_on_conn_fail(void *ctx, MQTTAsync_failureData *r)
{
    idev_t *d = ctx;
    (void)r;
    d->state = -1;
}

static int dev_on_msg(void *ctx, char *topic, int tlen, MQTTAsync_message *m)
{
    (void)ctx;
    (void)tlen;
    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    return 1;
}

/* Connect devices first..first+n-1 (users PREFIX<i>, one password), each
 * subscribed to its inbox with a retained offline will, then online; print
 * the times; then hold the connections until stdin closes. */
static int run_idle(const char *prefix, long first, long n, const char *password)
{
    idev_t *devs = calloc((size_t)n, sizeof(idev_t));
    char uri[64];
    int64_t t0 = mono_ns(), t_conn = 0, t_sub = 0, t_online = 0, last = t0;
    long failed = 0, retries = 0;
    static const char offline[] = "{\"state\":\"offline\",\"epoch\":1}";
    snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", port);
    for (long i = 0; i < n; i++) {
        idev_t *d = &devs[i];
        MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
        MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
        MQTTAsync_createOptions cro = MQTTAsync_createOptions_initializer;
        char cid[64], wt[96];
        snprintf(d->user, sizeof(d->user), "%s%ld", prefix, first + i);
        snprintf(cid, sizeof(cid), "%s.d", d->user);
        snprintf(wt, sizeof(wt), "im/u/%s/out/status/d", d->user);
        cro.sendWhileDisconnected = 0;
        if (MQTTAsync_createWithOptions(&d->c, uri, cid, MQTTCLIENT_PERSISTENCE_NONE, NULL, &cro) !=
            MQTTASYNC_SUCCESS) {
            fprintf(stderr, "mqim_load: create %s failed\n", cid);
            return 2;
        }
        MQTTAsync_setCallbacks(d->c, d, NULL, dev_on_msg, NULL);
        will.topicName = wt;
        will.message = offline;
        will.retained = 1;
        will.qos = 1;
        co.will = &will;
        co.keepAliveInterval = 300;
        co.cleansession = 1;
        co.username = d->user;
        co.password = password;
        co.connectTimeout = 60;
        co.onSuccess = dev_on_conn;
        co.onFailure = dev_on_conn_fail;
        co.context = d;
        if (MQTTAsync_connect(d->c, &co) != MQTTASYNC_SUCCESS) {
            d->state = -1;
        }
    }
    for (;;) {
        long c = __atomic_load_n(&n_connected, __ATOMIC_SEQ_CST);
        long sb = __atomic_load_n(&n_subscribed, __ATOMIC_SEQ_CST);
        long on = __atomic_load_n(&n_online, __ATOMIC_SEQ_CST);
        int64_t now = mono_ns();
        failed = 0;
        for (long i = 0; i < n; i++) {
            failed += devs[i].state < 0;
        }
        if (c == n && t_conn == 0) {
            t_conn = now;
        }
        if (sb == n && t_sub == 0) {
            t_sub = now;
        }
        if (on == n) {
            t_online = now;
            break;
        }
        if (failed > 0 && retries < 20) {
            /* refused under the storm (e.g. connect timeout): try again */
            for (long i = 0; i < n; i++) {
                if (devs[i].state < 0) {
                    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
                    co.keepAliveInterval = 300;
                    co.username = devs[i].user;
                    co.password = password;
                    co.onSuccess = dev_on_conn;
                    co.onFailure = dev_on_conn_fail;
                    co.context = &devs[i];
                    devs[i].state = 0;
                    (void)MQTTAsync_connect(devs[i].c, &co);
                }
            }
            retries++;
        }
        if (c + sb + on != 0 && now - last > (int64_t)timeout_s * 1000000000) {
            break;
        }
        if (c + sb + on == 0) {
            last = now;
        }
        usleep(20000);
    }
    printf("{\"mode\":\"idle\",\"devices\":%ld,\"connected\":%ld,\"subscribed\":%ld,\"online\":%ld,"
           "\"connect_s\":%.3f,\"subscribe_s\":%.3f,\"online_s\":%.3f,\"retries\":%ld}\n",
           n, n_connected, n_subscribed, n_online, t_conn ? (double)(t_conn - t0) / 1e9 : -1.0,
           t_sub ? (double)(t_sub - t0) / 1e9 : -1.0, t_online ? (double)(t_online - t0) / 1e9 : -1.0,
           retries);
    fflush(stdout);
    {
        char buf[64];
        while (fgets(buf, sizeof(buf), stdin) != NULL) {
        }
    }
    /* exit without disconnecting: the broker publishes the wills (offline) */
    _exit(n_online == n ? 0 : 1);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void percentiles(const char *name, uint32_t *all, long n, bool comma)
{
    qsort(all, (size_t)n, sizeof(uint32_t), cmp_u32);
#define PCT(q) (n > 0 ? all[(long)((double)(n - 1) * (q))] : 0u)
    printf("\"%s\":{\"n\":%ld,\"p50\":%u,\"p99\":%u,\"p999\":%u,\"max\":%u}%s", name, n, PCT(0.50),
           PCT(0.99), PCT(0.999), n > 0 ? all[n - 1] : 0u, comma ? "," : "");
#undef PCT
}

static void usage(void)
{
    fprintf(stderr, "usage: mqim_load --mode routed|raw|group --port P --pairs N --count M [--rate R]\n"
                    "       mqim_load --devices N [--first K] [--prefix X] --password P --port P\n"
                    "       [--window W] [--passwords FILE] [--prefix X] [--group G] [--timeout S]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *pwfile = NULL, *prefix = "b", *password = "";
    long first = 0, devices = 0;
    FILE *f;
    pthread_t *th;
    int64_t t_end, last_progress;
    long last_total = -1, want, got_d = 0, got_a = 0, dups = 0;
    bool ok;
    for (int i = 1; i < argc; i += 2) { /* --flag value pairs */
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            usage();
        }
        if (!strcmp(a, "--mode")) {
            mode = !strcmp(v, "raw") ? MODE_RAW : !strcmp(v, "group") ? MODE_GROUP : MODE_ROUTED;
        } else if (!strcmp(a, "--port")) {
            port = atoi(v);
        } else if (!strcmp(a, "--pairs")) {
            npairs = atoi(v);
        } else if (!strcmp(a, "--count")) {
            count = atol(v);
        } else if (!strcmp(a, "--rate")) {
            rate = atof(v);
        } else if (!strcmp(a, "--window")) {
            window = atoi(v);
        } else if (!strcmp(a, "--passwords")) {
            pwfile = v;
        } else if (!strcmp(a, "--prefix")) {
            prefix = v;
        } else if (!strcmp(a, "--group")) {
            group = v;
        } else if (!strcmp(a, "--devices")) {
            devices = atol(v);
        } else if (!strcmp(a, "--first")) {
            first = atol(v);
        } else if (!strcmp(a, "--password")) {
            password = v;
        } else if (!strcmp(a, "--timeout")) {
            timeout_s = atoi(v);
        } else {
            usage();
        }
    }
    if (devices > 0) {
        return run_idle(prefix, first, devices, password);
    }
    snprintf(run_id, sizeof(run_id), "%llx", (unsigned long long)(time(NULL) * 100000 + getpid() % 100000));
    if (paho_inflight > window) {
        paho_inflight = window;
    }
    pairs = calloc((size_t)npairs, sizeof(pair_t));
    for (int i = 0; i < npairs; i++) {
        pair_t *p = &pairs[i];
        p->idx = i;
        snprintf(p->sender, sizeof(p->sender), "%ss%d", prefix, mode == MODE_GROUP ? 0 : i);
        snprintf(p->recipient, sizeof(p->recipient), "%sr%d", prefix, i);
        p->send_ns = calloc((size_t)count, sizeof(int64_t));
        p->delivered = calloc((size_t)count, 1);
        p->acked = calloc((size_t)count, 1);
        p->lat_d = calloc((size_t)count, sizeof(uint32_t));
        p->lat_a = calloc((size_t)count, sizeof(uint32_t));
        pthread_mutex_init(&p->mu, NULL);
    }
    if (pwfile != NULL && (f = fopen(pwfile, "r")) != NULL) {
        char u[128], pw[128];
        while (fscanf(f, "%127s %127s", u, pw) == 2) {
            for (int i = 0; i < npairs; i++) {
                if (!strcmp(u, pairs[i].sender)) {
                    snprintf(pairs[i].spw, sizeof(pairs[i].spw), "%s", pw);
                }
                if (!strcmp(u, pairs[i].recipient)) {
                    snprintf(pairs[i].rpw, sizeof(pairs[i].rpw), "%s", pw);
                }
            }
        }
        fclose(f);
    }
    for (int i = 0; i < npairs; i++) {
        pair_t *p = &pairs[i];
        char t[200];
        connect_client(&p->rc, p->recipient, p->rpw, "br", on_recipient_msg, p, on_conn_ok_r);
        if (mode != MODE_GROUP || i == 0) {
            connect_client(&p->sc, p->sender, p->spw, "bs", on_sender_msg, p, on_conn_ok_s);
        } else {
            p->sc_ok = 1;
        }
        while (!p->rc_ok || !p->sc_ok) {
            usleep(1000);
        }
        snprintf(t, sizeof(t), mode == MODE_RAW ? "bench/x/%s" : "im/u/%s/in/msg", p->recipient);
        subscribe(p->rc, t, p);
        if (mode != MODE_RAW && (mode != MODE_GROUP || i == 0)) {
            snprintf(t, sizeof(t), "im/u/%s/in/ack", p->sender);
            subscribe(p->sc, t, p);
        }
    }
    for (int i = 0; i < npairs; i++) {
        int want_subs = mode == MODE_RAW || (mode == MODE_GROUP && i > 0) ? 1 : 2;
        while (__atomic_load_n(&pairs[i].subs_ok, __ATOMIC_SEQ_CST) < want_subs) {
            usleep(1000);
        }
    }
    if (getenv("MQIM_LOAD_NAGLE") == NULL) {
        nodelay_all();
    }
    t_start_ns = mono_ns() + 10000000;
    th = calloc((size_t)npairs, sizeof(pthread_t));
    for (int i = 0; i < npairs; i++) {
        if (mode != MODE_GROUP || i == 0) {
            pthread_create(&th[i], NULL, sender, &pairs[i]);
        }
    }
    want = (long)npairs * count * (mode == MODE_ROUTED ? 2 : 1);
    last_progress = mono_ns();
    for (;;) {
        long total = 0;
        for (int i = 0; i < npairs; i++) {
            pthread_mutex_lock(&pairs[i].mu);
            total += pairs[i].ndelivered + (mode == MODE_ROUTED ? pairs[i].nacked : 0);
            pthread_mutex_unlock(&pairs[i].mu);
        }
        if (total >= want) {
            break;
        }
        if (total != last_total) {
            last_total = total;
            last_progress = mono_ns();
        } else if (mono_ns() - last_progress > (int64_t)timeout_s * 1000000000) {
            fprintf(stderr, "mqim_load: no progress for %d s (%ld of %ld events)\n", timeout_s, total,
                    want);
            break;
        }
        usleep(2000);
    }
    t_end = mono_ns();
    {
        long nd = 0, na = 0, k = 0;
        uint32_t *all;
        double secs = (double)(t_end - t_start_ns) / 1e9;
        long msgs = mode == MODE_GROUP ? count : (long)npairs * count;
        for (int i = 0; i < npairs; i++) {
            got_d += pairs[i].ndelivered;
            got_a += pairs[i].nacked;
            nd += pairs[i].nlat_d;
            na += pairs[i].nlat_a;
            dups += pairs[i].dup_d;
        }
        printf("{\"mode\":\"%s\",\"pairs\":%d,\"count\":%ld,\"rate\":%.0f,\"window\":%d,"
               "\"seconds\":%.3f,\"sent\":%ld,\"delivered\":%ld,\"acked\":%ld,\"dup_deliveries\":%ld,"
               "\"msgs_per_s\":%.0f,\"deliveries_per_s\":%.0f,\"max_gap_ms\":%.1f,",
               mode == MODE_RAW ? "raw" : mode == MODE_GROUP ? "group" : "routed", npairs, count,
               rate, window, secs, msgs, got_d, got_a, dups, (double)msgs / secs,
               (double)got_d / secs, (double)max_gap_ns / 1e6);
        all = malloc(sizeof(uint32_t) * (size_t)(nd > na ? nd : na) + 4);
        for (int i = 0; i < npairs; i++) {
            memcpy(all + k, pairs[i].lat_d, sizeof(uint32_t) * (size_t)pairs[i].nlat_d);
            k += pairs[i].nlat_d;
        }
        percentiles("lat_delivery_us", all, nd, true);
        k = 0;
        for (int i = 0; i < npairs; i++) {
            memcpy(all + k, pairs[i].lat_a, sizeof(uint32_t) * (size_t)pairs[i].nlat_a);
            k += pairs[i].nlat_a;
        }
        percentiles("lat_sent_us", all, na, false);
        printf("}\n");
        fflush(stdout);
        free(all);
        ok = got_d == (mode == MODE_GROUP ? (long)npairs * count : msgs) &&
             (mode != MODE_ROUTED || got_a == msgs);
    }
    for (int i = 0; i < npairs; i++) {
        MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
        d.timeout = 500;
        MQTTAsync_disconnect(pairs[i].rc, &d);
        if (pairs[i].sc != NULL) {
            MQTTAsync_disconnect(pairs[i].sc, &d);
        }
    }
    usleep(200000);
    return ok ? 0 : 1;
}
