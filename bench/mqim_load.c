/* mqim_load: the load generator of the benchmarks (bench/README.md).
 *
 * One thread, one epoll loop over every client connection: non-blocking
 * sockets with TCP_NODELAY, packets encoded straight into a per-connection
 * transmit buffer and written once per loop turn (batched writes), received
 * bytes framed and decoded in place, ids found with memmem. Every buffer is
 * allocated before the run starts: nothing is allocated per message.
 *
 * Why the project's own MQTT 3.1.1 codec (device/include/mqim/mqtt_codec.h)
 * and not libmosquitto: the codec is pure functions over caller buffers, so
 * the loop owns every byte and every syscall (one read and at most one write
 * per connection per turn), and a raw run costs the broker's CPU, not the
 * generator's. libmosquitto would do as well per packet, but its
 * mosquitto_loop_read/write allocate every received message and write each
 * packet with its own syscall. A bench that measures the broker must not
 * measure itself (issue 13: the Paho generator spent 84-100 us of CPU per
 * raw message, more than the broker).
 *
 * Modes (P sender/recipient pairs, users PREFIXs<i> and PREFIXr<i>):
 * routed: sender publishes im/u/S/out/dm/R (QoS 1); a message is confirmed
 *         when the sender sees its echo on im/u/S/in/msg (the same id, "from"
 *         the sender) or a `sent` ack for its id on im/u/S/in/ack, whichever
 *         comes first (before and after the echo became the confirmation,
 *         docs/protocol.md); the recipient reads im/u/R/in/msg.
 * raw:    the same clients and payloads straight to bench/x/R through the
 *         broker (the baseline: one broker crossing, nothing else).
 * group:  one sender publishes to im/u/S/out/group/G; every recipient (the
 *         group's members) counts deliveries.
 * pub:    one connection publishes --count messages to --topic, the window
 *         counting PUBACKs (the feeder of bench/stacks.py).
 * The window: a sender keeps at most W messages unconfirmed (raw: not yet
 * delivered). Every message is counted by id (one byte per id and pair):
 * the run fails (exit 1) unless every message was delivered exactly once
 * and, routed, confirmed exactly once per path (two echoes or two `sent`
 * acks for one id are duplicates).
 * Prints one JSON object: rates, latency percentiles (us, publish to delivery
 * and publish to confirmation), and CPU seconds of this process and of the
 * processes named with --pids over the send phase.
 *
 * --devices N: N idle devices (the scale run), each with a retained offline
 * will, subscribed to its inbox and online; held until stdin closes, then
 * the process exits without DISCONNECT (the broker publishes the wills).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mqim/mqtt_codec.h"

#define BODY_LEN 100
#define KEEPALIVE_S 60u
/* Per-connection buffers. A pair's clients carry the load; an idle device
 * only its connect, subscribe and a few presence messages. */
#define PAIR_RX_CAP (256u * 1024u)
#define PAIR_TX_CAP (256u * 1024u)
#define DEV_RX_CAP (8u * 1024u)
#define DEV_TX_CAP (2u * 1024u)
#define MAX_PACKET (1024u * 1024u)
/* Read only while this much transmit room is left: a read takes at most
 * twice the room, and answers each PUBLISH in it with a 4-byte PUBACK. */
#define MIN_TX_ROOM 64u
#define MAX_PIDS 4

typedef enum { MODE_ROUTED, MODE_RAW, MODE_GROUP, MODE_PUB, MODE_DEVICES } load_mode_t;
typedef enum { ROLE_SENDER, ROLE_RECIPIENT, ROLE_DEVICE } role_t;
typedef enum { ST_CLOSED, ST_CONNECTING, ST_SUBSCRIBING, ST_ONLINE_PENDING, ST_READY, ST_FAILED } conn_state_t;

struct pair;

typedef struct conn {
    int fd;
    role_t role;
    conn_state_t state;
    struct pair *pair;   /* senders and recipients */
    char user[64];
    const char *password;
    uint8_t *rx, *tx;
    size_t rx_len, rx_cap, tx_len, tx_cap;
    uint32_t events;     /* what epoll watches now */
    bool dirty;          /* on the flush list */
    uint16_t next_pid;
    int subs_pending;
    uint16_t online_pid; /* devices: the retained online publish */
    int64_t last_tx_ns;
} conn_t;

typedef struct pair {
    int idx;
    conn_t s, r;
    char pub_topic[192];
    char echo_from[96];  /* "from":"<sender>" */
    int64_t *send_ns;    /* [count] */
    uint8_t *delivered, *echoed, *sent_acked;
    uint32_t *lat_d, *lat_c; /* us, in arrival order */
    long next;           /* next message index to publish */
    long ndelivered, nconfirmed, nlat_d, nlat_c;
    long dup_d, dup_echo, dup_ack, by_echo, by_ack;
    long pubacked, rejected;
} pair_t;

static load_mode_t mode = MODE_ROUTED;
static int port = 1883, npairs = 4, window = 200, timeout_s = 120, idle_s = 0;
static long count = 10000;
static double rate = 0; /* total msgs/s; 0 = as fast as the window allows */
static const char *group = "benchg", *pub_topic_arg = "bench/stack";
static pair_t *pairs;
static conn_t *devs;
static long ndevs;
static int ep = -1;
static conn_t **flush_list;
static size_t flush_n, flush_cap;
static int64_t last_delivery_ns, max_gap_ns, t_start_ns;
static long conn_lost;
static char run_id[24];

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

/* utime + stime of another process, from /proc/PID/stat; -1 when gone. */
static double proc_cpu_s(int pid)
{
    char path[64], buf[1024];
    unsigned long ut = 0, st = 0;
    FILE *f;
    size_t n;
    const char *p;
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if ((f = fopen(path, "r")) == NULL) {
        return -1.0;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) {
        return -1.0;
    }
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* "id":"<run>kN" -> N; -1 when absent or of another run. Each run has its
 * own hex prefix: the gateway dedupes by (from, id), so ids must not repeat
 * across runs. */
static long parse_id(const uint8_t *p, size_t len)
{
    static const char key[] = "\"id\":\"";
    const uint8_t *end = p + len;
    const uint8_t *q = memmem(p, len, key, sizeof(key) - 1u);
    size_t rl = strlen(run_id);
    long v = 0;
    if (q == NULL) {
        return -1;
    }
    q += sizeof(key) - 1u;
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

/* ---- connections ---- */

static void watch(conn_t *c, uint32_t events)
{
    struct epoll_event ev;
    if (c->fd < 0 || c->events == events) {
        return;
    }
    ev.events = events;
    ev.data.ptr = c;
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
        perror("mqim_load: epoll_ctl");
        exit(2);
    }
    c->events = events;
}

static void mark_dirty(conn_t *c)
{
    if (!c->dirty) {
        c->dirty = true;
        flush_list[flush_n++] = c;
    }
}

static void conn_fail(conn_t *c, const char *why)
{
    if (c->fd >= 0) {
        (void)epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    if (c->role != ROLE_DEVICE) {
        fprintf(stderr, "mqim_load: %s: connection lost (%s)\n", c->user, why);
        conn_lost++;
    }
    c->state = ST_FAILED;
    c->tx_len = 0;
    c->rx_len = 0;
}

/* Queue the *n bytes the codec wrote at c->tx + c->tx_len (a pointer: the
 * encoder sets it while the call's arguments are evaluated). */
static bool queued(conn_t *c, mqim_status_t st, const size_t *n)
{
    if (st != MQIM_OK) {
        return false;
    }
    c->tx_len += *n;
    mark_dirty(c);
    return true;
}

static uint16_t next_pid(conn_t *c)
{
    c->next_pid = (uint16_t)(c->next_pid == 65535u ? 1u : c->next_pid + 1u);
    return c->next_pid;
}

static void queue_subscribe(conn_t *c, const char *filter)
{
    mqim_str_t f = mqim_str_from_cstr(filter);
    uint8_t qos = 1;
    size_t n = 0;
    if (!queued(c, mqim_mqtt_encode_subscribe(next_pid(c), &f, &qos, 1, c->tx + c->tx_len, c->tx_cap - c->tx_len, &n),
                &n)) {
        fprintf(stderr, "mqim_load: subscribe %s does not fit\n", filter);
        exit(2);
    }
    c->subs_pending++;
}

static void conn_open(conn_t *c, int keepalive_s, const char *will_topic, const char *will_payload)
{
    struct sockaddr_in a;
    struct epoll_event ev;
    mqim_mqtt_connect_t cc;
    char cid[96];
    int one = 1;
    size_t n = 0;
    memset(&cc, 0, sizeof(cc));
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        perror("mqim_load: socket");
        exit(2);
    }
    if (getenv("MQIM_LOAD_NAGLE") == NULL) {
        (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0 && errno != EINPROGRESS) {
        conn_fail(c, strerror(errno));
        return;
    }
    c->events = EPOLLIN | EPOLLOUT;
    ev.events = c->events;
    ev.data.ptr = c;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        perror("mqim_load: epoll_ctl add");
        exit(2);
    }
    snprintf(cid, sizeof(cid), "%s.%s", c->user,
             c->role == ROLE_SENDER ? "bs" : c->role == ROLE_RECIPIENT ? "br" : "d");
    cc.client_id = mqim_str_from_cstr(cid);
    cc.keep_alive_s = (uint16_t)keepalive_s;
    cc.clean_session = true;
    if (c->password != NULL && c->password[0] != '\0') { /* raw mode too, through the gateway's broker */
        cc.has_username = cc.has_password = true;
        cc.username = mqim_str_from_cstr(c->user);
        cc.password = mqim_str_from_cstr(c->password);
    }
    if (will_topic != NULL) {
        cc.has_will = true;
        cc.will_topic = mqim_str_from_cstr(will_topic);
        cc.will_payload = mqim_str_from_cstr(will_payload);
        cc.will_qos = 1;
        cc.will_retain = true;
    }
    c->rx_len = c->tx_len = 0;
    c->subs_pending = 0;
    c->state = ST_CONNECTING;
    if (!queued(c, mqim_mqtt_encode_connect(&cc, c->tx, c->tx_cap, &n), &n)) {
        fprintf(stderr, "mqim_load: CONNECT does not fit\n");
        exit(2);
    }
}

/* Write what is queued: one write per connection per loop turn. */
static void flush_conn(conn_t *c, int64_t now)
{
    size_t off = 0;
    while (off < c->tx_len) {
        ssize_t w = write(c->fd, c->tx + off, c->tx_len - off);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOTCONN)) {
            break;
        }
        conn_fail(c, w < 0 ? strerror(errno) : "write returned 0");
        return;
    }
    if (off > 0) {
        memmove(c->tx, c->tx + off, c->tx_len - off);
        c->tx_len -= off;
        c->last_tx_ns = now;
    }
    /* Watch for room only while something waits; read only while the
     * acknowledgements a read can produce still fit. */
    watch(c, (c->tx_len > 0 ? EPOLLOUT : 0u) | (c->tx_cap - c->tx_len >= MIN_TX_ROOM ? EPOLLIN : 0u));
}

static void flush_all(int64_t now)
{
    for (size_t i = 0; i < flush_n; i++) {
        conn_t *c = flush_list[i];
        c->dirty = false;
        if (c->fd >= 0) {
            flush_conn(c, now);
        }
    }
    flush_n = 0;
}

/* ---- the messages ---- */

static void note_delivery(int64_t now)
{
    if (last_delivery_ns != 0 && now - last_delivery_ns > max_gap_ns) {
        max_gap_ns = now - last_delivery_ns;
    }
    last_delivery_ns = now;
}

static void on_recipient_publish(conn_t *c, const mqim_mqtt_publish_t *m, int64_t now)
{
    pair_t *p = c->pair;
    /* group mode: every recipient reads the messages of pair 0's sender */
    const pair_t *src = mode == MODE_GROUP ? &pairs[0] : p;
    long id = parse_id(m->payload, m->payload_len);
    if (id < 0 || id >= count) {
        return;
    }
    if (p->delivered[id]) {
        p->dup_d++;
        return;
    }
    p->delivered[id] = 1;
    p->ndelivered++;
    p->lat_d[p->nlat_d++] = (uint32_t)((now - src->send_ns[id]) / 1000);
    note_delivery(now);
}

static void confirm(pair_t *p, long id, int64_t now)
{
    if (p->echoed[id] + p->sent_acked[id] == 1) { /* the first of the two */
        p->nconfirmed++;
        p->lat_c[p->nlat_c++] = (uint32_t)((now - p->send_ns[id]) / 1000);
    }
}

static void on_sender_publish(conn_t *c, const mqim_mqtt_publish_t *m, int64_t now)
{
    pair_t *p = c->pair;
    const mqim_str_t t = m->topic;
    bool is_ack = t.len >= 7u && memcmp(t.ptr + t.len - 7u, "/in/ack", 7u) == 0;
    long id;
    if (mode == MODE_GROUP) {
        return;
    }
    if (is_ack) {
        if (memmem(m->payload, m->payload_len, "\"status\":\"sent\"", 15) == NULL) {
            if (memmem(m->payload, m->payload_len, "rejected", 8) != NULL && p->rejected++ < 5) {
                fprintf(stderr, "mqim_load: rejected: %.*s\n", (int)m->payload_len, (const char *)m->payload);
            }
            return;
        }
        id = parse_id(m->payload, m->payload_len);
        if (id < 0 || id >= count) {
            return;
        }
        if (p->sent_acked[id]) {
            p->dup_ack++;
            return;
        }
        p->sent_acked[id] = 1;
        p->by_ack += !p->echoed[id];
        confirm(p, id, now);
        return;
    }
    /* an envelope on in/msg: an echo of mine when it is from me */
    if (memmem(m->payload, m->payload_len, p->echo_from, strlen(p->echo_from)) == NULL) {
        return;
    }
    id = parse_id(m->payload, m->payload_len);
    if (id < 0 || id >= count) {
        return;
    }
    if (p->echoed[id]) {
        p->dup_echo++;
        return;
    }
    p->echoed[id] = 1;
    p->by_echo += !p->sent_acked[id];
    confirm(p, id, now);
}

static long done_of(const pair_t *p)
{
    /* the end-to-end window: routed waits for the confirmation, raw for delivery */
    if (mode == MODE_ROUTED) {
        return p->nconfirmed;
    }
    if (mode == MODE_PUB) {
        return p->pubacked;
    }
    if (mode == MODE_GROUP) {
        long min = count;
        for (int i = 0; i < npairs; i++) {
            min = pairs[i].ndelivered < min ? pairs[i].ndelivered : min;
        }
        return min;
    }
    return p->ndelivered;
}

static void on_connected(conn_t *c)
{
    char t[160];
    if (c->role == ROLE_DEVICE) {
        snprintf(t, sizeof(t), "im/u/%s/in/#", c->user);
        queue_subscribe(c, t);
    } else if (c->role == ROLE_RECIPIENT) {
        snprintf(t, sizeof(t), mode == MODE_RAW ? "bench/x/%s" : "im/u/%s/in/msg", c->user);
        queue_subscribe(c, t);
    } else if (mode == MODE_ROUTED || mode == MODE_GROUP) {
        snprintf(t, sizeof(t), "im/u/%s/in/ack", c->user);
        queue_subscribe(c, t);
        snprintf(t, sizeof(t), "im/u/%s/in/msg", c->user);
        queue_subscribe(c, t);
    }
    c->state = c->subs_pending > 0 ? ST_SUBSCRIBING : ST_READY;
}

static void on_subscribed(conn_t *c)
{
    static const char online[] = "{\"state\":\"online\",\"epoch\":1}";
    char t[160];
    mqim_mqtt_publish_t m;
    size_t n = 0;
    if (c->role != ROLE_DEVICE) {
        c->state = ST_READY;
        return;
    }
    memset(&m, 0, sizeof(m));
    snprintf(t, sizeof(t), "im/u/%s/out/status/d", c->user);
    m.topic = mqim_str_from_cstr(t);
    m.payload = (const uint8_t *)online;
    m.payload_len = sizeof(online) - 1u;
    m.qos = 1;
    m.retain = true;
    m.packet_id = c->online_pid = next_pid(c);
    if (!queued(c, mqim_mqtt_encode_publish(&m, c->tx + c->tx_len, c->tx_cap - c->tx_len, &n), &n)) {
        conn_fail(c, "online publish does not fit");
        return;
    }
    c->state = ST_ONLINE_PENDING;
}

static void handle_packet(conn_t *c, const mqim_mqtt_packet_t *k, int64_t now)
{
    size_t n = 0;
    switch (k->type) {
    case MQIM_MQTT_CONNACK:
        if (k->return_code != 0) {
            char why[48];
            snprintf(why, sizeof(why), "CONNACK refused (%u)", k->return_code);
            conn_fail(c, why);
            return;
        }
        on_connected(c);
        break;
    case MQIM_MQTT_SUBACK:
        if (k->suback_count > 0 && k->suback_codes[0] == 0x80) {
            conn_fail(c, "subscription refused");
            return;
        }
        if (--c->subs_pending == 0) {
            on_subscribed(c);
        }
        break;
    case MQIM_MQTT_PUBACK:
        if (c->role == ROLE_SENDER) {
            c->pair->pubacked++;
        } else if (c->role == ROLE_DEVICE && c->state == ST_ONLINE_PENDING && k->packet_id == c->online_pid) {
            c->state = ST_READY;
        }
        break;
    case MQIM_MQTT_PUBLISH:
        if (c->role == ROLE_RECIPIENT) {
            on_recipient_publish(c, &k->publish, now);
        } else if (c->role == ROLE_SENDER) {
            on_sender_publish(c, &k->publish, now);
        }
        if (k->publish.qos == 1) {
            (void)queued(c, mqim_mqtt_encode_ack(MQIM_MQTT_PUBACK, k->packet_id, c->tx + c->tx_len,
                                                 c->tx_cap - c->tx_len, &n), &n);
        } else if (k->publish.qos == 2) {
            conn_fail(c, "QoS 2 publish (not used by mqim)");
        }
        break;
    default:
        break; /* PINGRESP, UNSUBACK */
    }
}

/* Read what the socket has (as much as the buffers allow) and handle every
 * whole packet in it. */
static void read_conn(conn_t *c, int64_t now)
{
    size_t off = 0;
    ssize_t r;
    /* every PUBLISH read may queue a 4-byte PUBACK: read no more than fits */
    size_t room = c->rx_cap - c->rx_len;
    size_t tx_room = (c->tx_cap - c->tx_len) * 2u;
    if (tx_room < room) {
        room = tx_room;
    }
    if (room == 0) {
        return;
    }
    r = read(c->fd, c->rx + c->rx_len, room);
    if (r == 0) {
        conn_fail(c, "closed by the broker");
        return;
    }
    if (r < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            conn_fail(c, strerror(errno));
        }
        return;
    }
    c->rx_len += (size_t)r;
    for (;;) {
        mqim_mqtt_packet_t k;
        size_t total = 0;
        mqim_status_t st = mqim_mqtt_frame(c->rx + off, c->rx_len - off, MAX_PACKET, &total);
        if (st == MQIM_MQTT_NEED_MORE) {
            if (total > c->rx_cap) {
                conn_fail(c, "a packet larger than the receive buffer");
                return;
            }
            break;
        }
        if (st != MQIM_OK || (st = mqim_mqtt_decode(c->rx + off, total, &k)) != MQIM_OK) {
            char why[64];
            snprintf(why, sizeof(why), "bad packet from the broker (status %d)", (int)st);
            conn_fail(c, why);
            return;
        }
        handle_packet(c, &k, now);
        if (c->fd < 0) {
            return;
        }
        off += total;
    }
    if (off > 0) {
        memmove(c->rx, c->rx + off, c->rx_len - off);
        c->rx_len -= off;
    }
}

static void on_event(conn_t *c, uint32_t ev, int64_t now)
{
    if (c->fd < 0) {
        return;
    }
    if (ev & (EPOLLERR | EPOLLHUP)) {
        int err = 0;
        socklen_t len = sizeof(err);
        (void)getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (!(ev & EPOLLIN)) {
            conn_fail(c, err != 0 ? strerror(err) : "hang-up");
            return;
        }
    }
    if (ev & EPOLLOUT) {
        mark_dirty(c);
    }
    if (ev & EPOLLIN) {
        read_conn(c, now);
    }
}

/* Keep-alive: a PINGREQ when nothing was sent for half the interval. */
static void keepalive(conn_t *c, int64_t now)
{
    size_t n = 0;
    if (c->fd >= 0 && c->state != ST_CONNECTING && now - c->last_tx_ns > (int64_t)KEEPALIVE_S * 500000000) {
        c->last_tx_ns = now;
        (void)queued(c, mqim_mqtt_encode_empty(MQIM_MQTT_PINGREQ, c->tx + c->tx_len, c->tx_cap - c->tx_len, &n), &n);
    }
}

static void poll_once(int timeout_ms)
{
    struct epoll_event evs[256];
    int n = epoll_wait(ep, evs, 256, timeout_ms);
    int64_t now = mono_ns();
    for (int i = 0; i < n; i++) {
        on_event(evs[i].data.ptr, evs[i].events, now);
    }
    flush_all(now);
}

/* ---- the senders ---- */

/* Queue as many publishes as the window, the pacing and the buffer allow.
 * Returns the time of the next paced publish (0: not paced). */
static int64_t send_some(pair_t *p, int64_t now)
{
    conn_t *c = &p->s;
    int senders = mode == MODE_GROUP ? 1 : npairs;
    double interval_ns = rate > 0 ? 1e9 * senders / rate : 0;
    int64_t t0 = t_start_ns + (int64_t)(interval_ns * p->idx / senders);
    char payload[256];
    mqim_mqtt_publish_t m;
    memset(&m, 0, sizeof(m));
    m.topic = mqim_str_from_cstr(p->pub_topic);
    m.qos = 1;
    while (p->next < count && c->fd >= 0) {
        long i = p->next;
        size_t n = 0;
        int len;
        /* the window; and never more than 60,000 publishes without PUBACK
         * (packet ids are 16 bits) */
        if (i - done_of(p) >= window || i - p->pubacked >= 60000) {
            return 0;
        }
        if (interval_ns > 0) {
            int64_t due = t0 + (int64_t)(interval_ns * (double)i);
            if (due > now) {
                return due;
            }
        }
        len = snprintf(payload, sizeof(payload), "{\"id\":\"%sk%ld\",\"body\":\"%-*s\"}", run_id, i, BODY_LEN,
                       "benchmark message body");
        m.payload = (const uint8_t *)payload;
        m.payload_len = (size_t)len;
        m.packet_id = next_pid(c);
        if (mqim_mqtt_encode_publish(&m, c->tx + c->tx_len, c->tx_cap - c->tx_len, &n) != MQIM_OK) {
            c->next_pid--; /* unused; the buffer is full: next turn */
            if (c->next_pid == 0) {
                c->next_pid = 65535;
            }
            return 0;
        }
        c->tx_len += n;
        mark_dirty(c);
        p->send_ns[i] = now;
        p->next++;
    }
    return 0;
}

/* ---- setup helpers ---- */

static void *alloc_or_die(size_t n)
{
    void *p = calloc(1, n);
    if (p == NULL) {
        fprintf(stderr, "mqim_load: out of memory\n");
        exit(2);
    }
    return p;
}

static void conn_init(conn_t *c, role_t role, pair_t *p, const char *user, const char *pw, size_t rx_cap,
                      size_t tx_cap)
{
    c->fd = -1;
    c->role = role;
    c->pair = p;
    snprintf(c->user, sizeof(c->user), "%s", user);
    c->password = pw;
    c->rx_cap = rx_cap;
    c->tx_cap = tx_cap;
    c->rx = alloc_or_die(rx_cap);
    c->tx = alloc_or_die(tx_cap);
}

/* Everything main allocated for the pairs (the sanitizer build checks for
 * leaks at exit). */
static void free_pairs(void)
{
    for (int i = 0; i < npairs; i++) {
        pair_t *p = &pairs[i];
        free(p->s.rx);
        free(p->s.tx);
        free(p->r.rx);
        free(p->r.tx);
        free(p->send_ns);
        free(p->delivered);
        free(p->echoed);
        free(p->sent_acked);
        free(p->lat_d);
        free(p->lat_c);
    }
    free(pairs);
    pairs = NULL;
}

static void flush_list_alloc(size_t n)
{
    flush_cap = n;
    flush_list = alloc_or_die(n * sizeof(conn_t *));
}

/* Wait until every connection in [cs, cs+n) is READY (or failed). */
static bool wait_ready(conn_t *const *cs, size_t n, int secs)
{
    int64_t end = mono_ns() + (int64_t)secs * 1000000000;
    for (;;) {
        size_t ready = 0;
        for (size_t i = 0; i < n; i++) {
            if (cs[i]->state == ST_FAILED) {
                return false;
            }
            ready += cs[i]->state == ST_READY;
        }
        if (ready == n) {
            return true;
        }
        if (mono_ns() > end) {
            return false;
        }
        poll_once(100);
    }
}

/* ---- idle devices (the scale run) ---- */

static int run_devices(const char *prefix, long first, long n, const char *password)
{
    static const char offline[] = "{\"state\":\"offline\",\"epoch\":1}";
    int64_t t0 = mono_ns(), t_conn = 0, t_sub = 0, t_online = 0, next_retry = 0, last_change;
    long retries = 0, n_conn = 0, n_sub = 0, n_online = 0, prev = -1;
    struct epoll_event ev;
    char wt[96];
    ndevs = n;
    devs = alloc_or_die((size_t)n * sizeof(conn_t));
    flush_list_alloc((size_t)n + 1u);
    for (long i = 0; i < n; i++) {
        char user[32];
        snprintf(user, sizeof(user), "%s%ld", prefix, first + i);
        conn_init(&devs[i], ROLE_DEVICE, NULL, user, password, DEV_RX_CAP, DEV_TX_CAP);
        snprintf(wt, sizeof(wt), "im/u/%s/out/status/d", user);
        conn_open(&devs[i], 300, wt, offline);
        if ((i & 63) == 63) {
            poll_once(0); /* let the broker accept as we go */
        }
    }
    last_change = mono_ns();
    for (;;) {
        int64_t now = mono_ns();
        long c = 0, s = 0, o = 0, failed = 0;
        for (long i = 0; i < n; i++) {
            conn_state_t st = devs[i].state;
            c += st >= ST_SUBSCRIBING && st != ST_FAILED;
            s += st >= ST_ONLINE_PENDING && st != ST_FAILED;
            o += st == ST_READY;
            failed += st == ST_FAILED;
        }
        n_conn = c > n_conn ? c : n_conn;
        n_sub = s > n_sub ? s : n_sub;
        n_online = o;
        if (c == n && t_conn == 0) {
            t_conn = now;
        }
        if (s == n && t_sub == 0) {
            t_sub = now;
        }
        if (o == n) {
            t_online = now;
            break;
        }
        if (c + s + o != prev) {
            prev = c + s + o;
            last_change = now;
        } else if (now - last_change > (int64_t)timeout_s * 1000000000) {
            break;
        }
        if (failed > 0 && retries < 20 && now >= next_retry) {
            /* refused under the storm (e.g. a full accept queue): again */
            for (long i = 0; i < n; i++) {
                if (devs[i].state == ST_FAILED) {
                    snprintf(wt, sizeof(wt), "im/u/%s/out/status/d", devs[i].user);
                    conn_open(&devs[i], 300, wt, offline);
                }
            }
            retries++;
            next_retry = now + 1000000000;
        }
        poll_once(20);
    }
    printf("{\"mode\":\"idle\",\"devices\":%ld,\"connected\":%ld,\"subscribed\":%ld,\"online\":%ld,"
           "\"connect_s\":%.3f,\"subscribe_s\":%.3f,\"online_s\":%.3f,\"retries\":%ld}\n",
           n, n_conn, n_sub, n_online, t_conn ? (double)(t_conn - t0) / 1e9 : -1.0,
           t_sub ? (double)(t_sub - t0) / 1e9 : -1.0, t_online ? (double)(t_online - t0) / 1e9 : -1.0,
           retries);
    fflush(stdout);
    /* hold the connections (answering publishes and keeping alive) until
     * stdin closes */
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = NULL;
    (void)epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);
    for (;;) {
        struct epoll_event evs[256];
        int k = epoll_wait(ep, evs, 256, 1000);
        int64_t now = mono_ns();
        for (int i = 0; i < k; i++) {
            if (evs[i].data.ptr == NULL) {
                char buf[256];
                if (read(0, buf, sizeof(buf)) <= 0) {
                    /* exit without DISCONNECT: the broker publishes the wills */
                    _exit(n_online == n ? 0 : 1);
                }
                continue;
            }
            on_event(evs[i].data.ptr, evs[i].events, now);
        }
        for (long i = 0; i < n; i++) {
            keepalive(&devs[i], now);
        }
        flush_all(now);
    }
}

/* ---- the report ---- */

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
                    "       [--window W] [--passwords FILE] [--prefix X] [--group G] [--timeout S]\n"
                    "       [--idle S] [--pids name:PID,name:PID]\n"
                    "       mqim_load --mode pub --topic T --port P --count M [--window W]\n"
                    "       mqim_load --devices N [--first K] [--prefix X] --password P --port P\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *pwfile = NULL, *prefix = "b", *password = "", *pidspec = NULL;
    char pid_names[MAX_PIDS][16];
    int pid_of[MAX_PIDS], npids = 0;
    double pid_cpu0[MAX_PIDS], cpu0, cpu1;
    long first = 0, devices = 0, want_d, want_c, got_d = 0, got_c = 0, dup_d = 0, dup_e = 0, dup_a = 0;
    long by_echo = 0, by_ack = 0, last_total = -1;
    int64_t t_end, last_progress;
    char (*pw)[128];
    FILE *f;
    conn_t **all_conns;
    size_t nconns = 0;
    bool ok;
    for (int i = 1; i < argc; i += 2) { /* --flag value pairs */
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            usage();
        }
        if (!strcmp(a, "--mode")) {
            mode = !strcmp(v, "raw")     ? MODE_RAW
                   : !strcmp(v, "group") ? MODE_GROUP
                   : !strcmp(v, "pub")   ? MODE_PUB
                                         : MODE_ROUTED;
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
        } else if (!strcmp(a, "--idle")) {
            idle_s = atoi(v);
        } else if (!strcmp(a, "--topic")) {
            pub_topic_arg = v;
        } else if (!strcmp(a, "--pids")) {
            pidspec = v;
        } else {
            usage();
        }
    }
    if (npairs < 1 || count < 1 || window < 1) {
        usage();
    }
    if (mode == MODE_PUB) {
        npairs = 1;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        perror("mqim_load: epoll_create1");
        return 2;
    }
    if (devices > 0) {
        mode = MODE_DEVICES;
        return run_devices(prefix, first, devices, password);
    }
    while (pidspec != NULL && *pidspec != '\0' && npids < MAX_PIDS) { /* name:pid,name:pid */
        int used = 0;
        if (sscanf(pidspec, "%15[^:]:%d%n", pid_names[npids], &pid_of[npids], &used) != 2) {
            usage();
        }
        npids++;
        pidspec += used;
        pidspec += *pidspec == ',';
    }
    snprintf(run_id, sizeof(run_id), "%llx", (unsigned long long)(time(NULL) * 100000 + getpid() % 100000));

    pairs = alloc_or_die((size_t)npairs * sizeof(pair_t));
    pw = alloc_or_die((size_t)npairs * 2u * sizeof(*pw));
    all_conns = alloc_or_die((size_t)npairs * 2u * sizeof(conn_t *));
    flush_list_alloc((size_t)npairs * 2u);
    if (pwfile != NULL && (f = fopen(pwfile, "r")) != NULL) {
        char u[128], p[128];
        while (fscanf(f, "%127s %127s", u, p) == 2) {
            for (int i = 0; i < npairs; i++) {
                char s[64], r[64];
                snprintf(s, sizeof(s), "%ss%d", prefix, mode == MODE_GROUP ? 0 : i);
                snprintf(r, sizeof(r), "%sr%d", prefix, i);
                if (!strcmp(u, s)) {
                    snprintf(pw[2 * i], sizeof(pw[0]), "%s", p);
                }
                if (!strcmp(u, r)) {
                    snprintf(pw[2 * i + 1], sizeof(pw[0]), "%s", p);
                }
            }
        }
        fclose(f);
    }
    for (int i = 0; i < npairs; i++) {
        pair_t *p = &pairs[i];
        char s[64], r[64];
        p->idx = i;
        snprintf(s, sizeof(s), "%ss%d", prefix, mode == MODE_GROUP ? 0 : i);
        snprintf(r, sizeof(r), "%sr%d", prefix, i);
        conn_init(&p->r, ROLE_RECIPIENT, p, r, pw[2 * i + 1], PAIR_RX_CAP, PAIR_TX_CAP);
        conn_init(&p->s, ROLE_SENDER, p, s, pw[2 * i], PAIR_RX_CAP, PAIR_TX_CAP);
        if (mode == MODE_ROUTED) {
            snprintf(p->pub_topic, sizeof(p->pub_topic), "im/u/%s/out/dm/%s", s, r);
        } else if (mode == MODE_GROUP) {
            snprintf(p->pub_topic, sizeof(p->pub_topic), "im/u/%s/out/group/%s", s, group);
        } else if (mode == MODE_PUB) {
            snprintf(p->pub_topic, sizeof(p->pub_topic), "%s", pub_topic_arg);
        } else {
            snprintf(p->pub_topic, sizeof(p->pub_topic), "bench/x/%s", r);
        }
        snprintf(p->echo_from, sizeof(p->echo_from), "\"from\":\"%s\"", s);
        p->send_ns = alloc_or_die((size_t)count * sizeof(int64_t));
        p->delivered = alloc_or_die((size_t)count);
        p->echoed = alloc_or_die((size_t)count);
        p->sent_acked = alloc_or_die((size_t)count);
        p->lat_d = alloc_or_die((size_t)count * sizeof(uint32_t));
        p->lat_c = alloc_or_die((size_t)count * sizeof(uint32_t));
        if (mode != MODE_PUB) {
            conn_open(&p->r, KEEPALIVE_S, NULL, NULL);
            all_conns[nconns++] = &p->r;
        }
        if (mode != MODE_GROUP || i == 0) { /* group: one sender */
            conn_open(&p->s, KEEPALIVE_S, NULL, NULL);
            all_conns[nconns++] = &p->s;
        }
    }
    flush_all(mono_ns());
    if (!wait_ready(all_conns, nconns, 30)) {
        fprintf(stderr, "mqim_load: the clients did not connect and subscribe within 30 s\n");
        return 2;
    }
    if (idle_s > 0) { /* connected and quiet: only keep-alives */
        int64_t end = mono_ns() + (int64_t)idle_s * 1000000000;
        while (mono_ns() < end) {
            int64_t now = mono_ns();
            for (size_t i = 0; i < nconns; i++) {
                keepalive(all_conns[i], now);
            }
            flush_all(now);
            poll_once(1000);
            if (conn_lost > 0) {
                break;
            }
        }
    }

    want_d = (long)npairs * count;
    want_c = mode == MODE_ROUTED ? (long)npairs * count : 0;
    for (int i = 0; i < npids; i++) {
        pid_cpu0[i] = proc_cpu_s(pid_of[i]);
    }
    cpu0 = self_cpu_s();
    t_start_ns = mono_ns();
    last_progress = t_start_ns;
    for (;;) {
        int64_t now = mono_ns(), next_due = 0;
        long total = 0;
        int wait_ms;
        for (int i = 0; i < npairs; i++) {
            pair_t *p = &pairs[i];
            if (mode != MODE_GROUP || i == 0) {
                int64_t due = send_some(p, now);
                if (due != 0 && (next_due == 0 || due < next_due)) {
                    next_due = due;
                }
            }
            total += (mode == MODE_PUB ? p->pubacked : p->ndelivered) + p->nconfirmed;
        }
        if (total >= want_d + want_c) {
            break;
        }
        if (total != last_total) {
            last_total = total;
            last_progress = now;
        } else if (now - last_progress > (int64_t)timeout_s * 1000000000) {
            fprintf(stderr, "mqim_load: no progress for %d s (%ld of %ld events)\n", timeout_s, total,
                    want_d + want_c);
            break;
        }
        for (size_t i = 0; i < nconns; i++) {
            keepalive(all_conns[i], now);
        }
        flush_all(now);
        wait_ms = 100;
        if (next_due != 0) {
            int64_t d = (next_due - mono_ns()) / 1000000;
            wait_ms = d < 0 ? 0 : d < 100 ? (int)d : 100;
        }
        poll_once(wait_ms);
    }
    t_end = mono_ns();
    cpu1 = self_cpu_s();
    {
        long nd = 0, nc = 0, k = 0;
        uint32_t *lat;
        double secs = (double)(t_end - t_start_ns) / 1e9;
        long msgs = mode == MODE_GROUP ? count : (long)npairs * count;
        for (int i = 0; i < npairs; i++) {
            got_d += mode == MODE_PUB ? pairs[i].pubacked : pairs[i].ndelivered;
            got_c += pairs[i].nconfirmed;
            nd += pairs[i].nlat_d;
            nc += pairs[i].nlat_c;
            dup_d += pairs[i].dup_d;
            dup_e += pairs[i].dup_echo;
            dup_a += pairs[i].dup_ack;
            by_echo += pairs[i].by_echo;
            by_ack += pairs[i].by_ack;
        }
        printf("{\"mode\":\"%s\",\"pairs\":%d,\"count\":%ld,\"rate\":%.0f,\"window\":%d,"
               "\"seconds\":%.3f,\"sent\":%ld,\"delivered\":%ld,\"acked\":%ld,\"dup_deliveries\":%ld,"
               "\"confirmed_by_echo\":%ld,\"confirmed_by_sent_ack\":%ld,\"dup_echoes\":%ld,\"dup_sent_acks\":%ld,"
               "\"connections_lost\":%ld,\"msgs_per_s\":%.0f,\"deliveries_per_s\":%.0f,\"max_gap_ms\":%.1f,",
               mode == MODE_RAW ? "raw" : mode == MODE_GROUP ? "group" : mode == MODE_PUB ? "pub" : "routed", npairs, count, rate, window,
               secs, msgs, got_d, got_c, dup_d, by_echo, by_ack, dup_e, dup_a, conn_lost, (double)msgs / secs,
               (double)got_d / secs, (double)max_gap_ns / 1e6);
        /* CPU over the send phase: this process and the watched ones */
        printf("\"cpu_s\":{\"loadgen\":%.4f", cpu1 - cpu0);
        for (int i = 0; i < npids; i++) {
            double c = proc_cpu_s(pid_of[i]);
            printf(",\"%s\":%.4f", pid_names[i], c >= 0 && pid_cpu0[i] >= 0 ? c - pid_cpu0[i] : -1.0);
        }
        printf("},");
        lat = alloc_or_die(sizeof(uint32_t) * (size_t)(nd > nc ? nd : nc) + 4u);
        for (int i = 0; i < npairs; i++) {
            memcpy(lat + k, pairs[i].lat_d, sizeof(uint32_t) * (size_t)pairs[i].nlat_d);
            k += pairs[i].nlat_d;
        }
        percentiles("lat_delivery_us", lat, nd, true);
        k = 0;
        for (int i = 0; i < npairs; i++) {
            memcpy(lat + k, pairs[i].lat_c, sizeof(uint32_t) * (size_t)pairs[i].nlat_c);
            k += pairs[i].nlat_c;
        }
        /* "lat_sent_us": publish to confirmation (echo or `sent`, the first) */
        percentiles("lat_sent_us", lat, nc, false);
        printf("}\n");
        fflush(stdout);
        free(lat);
        ok = got_d == want_d && dup_d == 0 && conn_lost == 0 &&
             (mode != MODE_ROUTED || (got_c == msgs && dup_e == 0 && dup_a == 0));
    }
    /* a clean goodbye: DISCONNECT on every connection */
    for (size_t i = 0; i < nconns; i++) {
        conn_t *c = all_conns[i];
        size_t n = 0;
        if (c->fd >= 0 && queued(c, mqim_mqtt_encode_empty(MQIM_MQTT_DISCONNECT, c->tx + c->tx_len,
                                                           c->tx_cap - c->tx_len, &n), &n)) {
            flush_conn(c, mono_ns());
        }
        if (c->fd >= 0) {
            close(c->fd);
        }
    }
    free_pairs();
    free(all_conns);
    free(pw);
    free(flush_list);
    close(ep);
    return ok ? 0 : 1;
}
