/* Unit tests: the gateway's MQTT v5 codec (mqtt5.c) byte for byte, and the
 * outbox publisher and the inbound connection (conn.c) against a scripted broker on a loopback
 * socket in this process: the window, out-of-order PUBACKs, refusals, the
 * broker's Receive Maximum, a CONNACK refusal, and a dead link. The real
 * broker is in the integration tests (every one of them goes through it). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <errno.h>
#include <stdio.h>

#include "inbound.h"
#include "mqim_check.h"
#include "mqtt5.h"
#include "conn.h"

static mqim_str_t S(const char *s)
{
    return mqim_str_from_cstr(s);
}

static void test_connect_encode(void)
{
    static const uint8_t want[] = {
        0x10, 0x1a, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0xC2, 0x00, 0x14, 0x00,
        0x00, 0x03, 'g', 'w', '1', 0x00, 0x02, 'g', 'w', 0x00, 0x04, 'p', 'a', 's', 's'
    };
    mqim_v5_connect_t c = { .client_id = S("gw1"), .username = S("gw"), .password = S("pass"), .keepalive_s = 20, .clean_start = 1 };
    uint8_t buf[64];
    size_t n = 0;
    CHECK_EQ_INT(mqim_v5_connect_encode(&c, NULL, 0, &n), MQIM_BUFFER_TOO_SMALL);
    CHECK_EQ_INT(n, 2u + 10u + 1u + 5u + 4u + 6u);
    CHECK_EQ_INT(mqim_v5_connect_encode(&c, buf, n - 1u, &n), MQIM_BUFFER_TOO_SMALL);
    CHECK_EQ_INT(mqim_v5_connect_encode(&c, buf, sizeof(buf), &n), MQIM_OK);
    CHECK_EQ_INT(n, sizeof(want));
    CHECK(memcmp(buf, want, n) == 0);
    c.username = S("");
    CHECK_EQ_INT(mqim_v5_connect_encode(&c, buf, sizeof(buf), &n), MQIM_BAD_PARAMETER); /* password without user */
}

static void test_publish_encode(void)
{
    static const uint8_t want1[] = { 0x33, 0x0e, 0x00, 0x03, 'a', '/', 'b', 0x12, 0x34,
                                     0x04, 0x09, 0x00, 0x01, 'c', 'h', 'i' };
    static const uint8_t want0[] = { 0x30, 0x07, 0x00, 0x01, 't', 0x00, 'x', 'y', 'z' };
    mqim_v5_publish_t m = { S("a/b"), S("hi"), S("c"), 1, 1, 0x1234 };
    uint8_t buf[300];
    size_t n = 0;
    CHECK_EQ_INT(mqim_v5_publish_encode(&m, buf, sizeof(buf), &n), MQIM_OK);
    CHECK_EQ_INT(n, sizeof(want1));
    CHECK(memcmp(buf, want1, sizeof(want1)) == 0);
    m = (mqim_v5_publish_t){ S("t"), S("xyz"), S(""), 0, 0, 0 };
    CHECK_EQ_INT(mqim_v5_publish_encode(&m, buf, sizeof(buf), &n), MQIM_OK);
    CHECK_EQ_INT(n, sizeof(want0));
    CHECK(memcmp(buf, want0, sizeof(want0)) == 0);
    /* a two-byte remaining length: 200-byte payload */
    {
        char payload[200];
        memset(payload, 'p', sizeof(payload));
        m.payload = (mqim_str_t){ payload, sizeof(payload) };
        CHECK_EQ_INT(mqim_v5_publish_encode(&m, buf, sizeof(buf), &n), MQIM_OK);
        CHECK_EQ_INT(n, 1u + 2u + 3u + 1u + 200u);
        CHECK_EQ_INT(buf[1], (4u + 200u) % 128u + 128u);
        CHECK_EQ_INT(buf[2], (4u + 200u) / 128u);
    }
    m.qos = 1;
    m.packet_id = 0;
    CHECK_EQ_INT(mqim_v5_publish_encode(&m, buf, sizeof(buf), &n), MQIM_BAD_PARAMETER);
    m.topic = S("");
    m.packet_id = 1;
    CHECK_EQ_INT(mqim_v5_publish_encode(&m, buf, sizeof(buf), &n), MQIM_BAD_PARAMETER);
    CHECK_EQ_INT(mqim_v5_pingreq_encode(buf, 2, &n), MQIM_OK);
    CHECK(n == 2u && buf[0] == 0xC0 && buf[1] == 0);
    CHECK_EQ_INT(mqim_v5_disconnect_encode(buf, 1, &n), MQIM_BUFFER_TOO_SMALL);
    CHECK_EQ_INT(n, 2u);
}

static void test_decode(void)
{
    static const uint8_t connack[] = { 0x20, 0x15, 0x01, 0x00, 0x12, 0x21, 0x00, 0x64, 0x27, 0x00, 0x10,
                                       0x00, 0x00, 0x13, 0x00, 0x1e, 0x1f, 0x00, 0x02, 'o', 'k', 0x25, 0x01 };
    static const uint8_t v3[] = { 0x20, 0x02, 0x00, 0x01 };
    static const uint8_t stream[] = { 0x40, 0x02, 0x00, 0x07, 0x40, 0x03, 0x00, 0x08, 0x87,
                                      0xD0, 0x00, 0xE0, 0x01, 0x8E };
    mqim_v5_packet_t pk;
    size_t used = 0, pos = 0;
    CHECK_EQ_INT(mqim_v5_decode(connack, sizeof(connack), &pk, &used), MQIM_OK);
    CHECK_EQ_INT(used, sizeof(connack));
    CHECK_EQ_INT(pk.type, MQIM_V5_CONNACK);
    CHECK_EQ_INT(pk.session_present, 1);
    CHECK_EQ_INT(pk.reason, 0);
    CHECK_EQ_INT(pk.receive_max, 100);
    CHECK_EQ_INT(pk.max_packet, 0x100000);
    CHECK(pk.has_server_keepalive && pk.server_keepalive == 30);
    CHECK_EQ_STR(pk.reason_string.ptr, pk.reason_string.len, "ok");
    for (size_t k = 0; k < sizeof(connack); k++) { /* every prefix is incomplete */
        CHECK_EQ_INT(mqim_v5_decode(connack, k, &pk, &used), MQIM_MQTT_NEED_MORE);
    }
    CHECK_EQ_INT(mqim_v5_decode(v3, sizeof(v3), &pk, &used), MQIM_OK);
    CHECK(pk.type == MQIM_V5_CONNACK && pk.reason == 1 && pk.receive_max == 65535);

    /* a stream of packets, as conn.c reads them */
    CHECK_EQ_INT(mqim_v5_decode(stream, sizeof(stream), &pk, &used), MQIM_OK);
    CHECK(pk.type == MQIM_V5_PUBACK && pk.packet_id == 7 && pk.reason == 0 && used == 4);
    pos += used;
    CHECK_EQ_INT(mqim_v5_decode(stream + pos, sizeof(stream) - pos, &pk, &used), MQIM_OK);
    CHECK(pk.type == MQIM_V5_PUBACK && pk.packet_id == 8 && pk.reason == 0x87 && used == 5);
    pos += used;
    CHECK_EQ_INT(mqim_v5_decode(stream + pos, sizeof(stream) - pos, &pk, &used), MQIM_OK);
    CHECK(pk.type == MQIM_V5_PINGRESP && used == 2);
    pos += used;
    CHECK_EQ_INT(mqim_v5_decode(stream + pos, sizeof(stream) - pos, &pk, &used), MQIM_OK);
    CHECK(pk.type == MQIM_V5_DISCONNECT && pk.reason == 0x8E);
    pos += used;
    CHECK_EQ_INT(pos, sizeof(stream));

    /* broken streams */
    {
        static const uint8_t publish[] = { 0x30, 0x03, 0x00, 0x01, 't' };
        static const uint8_t flags[] = { 0x42, 0x02, 0x00, 0x01 };
        static const uint8_t id0[] = { 0x40, 0x02, 0x00, 0x00 };
        static const uint8_t varint5[] = { 0x40, 0xFF, 0xFF, 0xFF, 0xFF, 0x01 };
        static const uint8_t huge[] = { 0x40, 0xFF, 0xFF, 0x7F };
        static const uint8_t recv0[] = { 0x20, 0x06, 0x00, 0x00, 0x03, 0x21, 0x00, 0x00 };
        static const uint8_t badprop[] = { 0x20, 0x05, 0x00, 0x00, 0x02, 0x7F, 0x00 };
        static const uint8_t proplong[] = { 0x40, 0x06, 0x00, 0x01, 0x00, 0x09, 0x1F, 0x00 };
        static const uint8_t strlong[] = { 0x40, 0x08, 0x00, 0x01, 0x00, 0x04, 0x1F, 0x00, 0x09, 'x' };
        static const uint8_t pingbad[] = { 0xD0, 0x01, 0x00 };
        CHECK_EQ_INT(mqim_v5_decode(publish, sizeof(publish), &pk, &used), MQIM_MQTT_BAD_TYPE);
        CHECK_EQ_INT(mqim_v5_decode(flags, sizeof(flags), &pk, &used), MQIM_MQTT_BAD_FLAGS);
        CHECK_EQ_INT(mqim_v5_decode(id0, sizeof(id0), &pk, &used), MQIM_MQTT_PROTOCOL);
        CHECK_EQ_INT(mqim_v5_decode(varint5, sizeof(varint5), &pk, &used), MQIM_MQTT_BAD_LENGTH);
        CHECK_EQ_INT(mqim_v5_decode(huge, sizeof(huge), &pk, &used), MQIM_MQTT_TOO_LARGE);
        CHECK_EQ_INT(mqim_v5_decode(recv0, sizeof(recv0), &pk, &used), MQIM_MQTT_PROTOCOL);
        CHECK_EQ_INT(mqim_v5_decode(badprop, sizeof(badprop), &pk, &used), MQIM_MQTT_PROTOCOL);
        CHECK_EQ_INT(mqim_v5_decode(proplong, sizeof(proplong), &pk, &used), MQIM_MQTT_BAD_LENGTH);
        CHECK_EQ_INT(mqim_v5_decode(strlong, sizeof(strlong), &pk, &used), MQIM_MQTT_BAD_LENGTH);
        CHECK_EQ_INT(mqim_v5_decode(pingbad, sizeof(pingbad), &pk, &used), MQIM_MQTT_BAD_LENGTH);
    }
    /* An overlong variable byte integer is malformed, as in the device's
     * codec (mqtt_wire.h, issue 16): remaining length 2 as 0x82 0x00, and a
     * property length 0 as 0x80 0x00. */
    {
        static const uint8_t overlong_rl[] = { 0x40, 0x82, 0x00, 0x00, 0x01 };
        static const uint8_t overlong_props[] = { 0x40, 0x05, 0x00, 0x01, 0x00, 0x80, 0x00 };
        CHECK_EQ_INT(mqim_v5_decode(overlong_rl, sizeof(overlong_rl), &pk, &used), MQIM_MQTT_BAD_LENGTH);
        CHECK_EQ_INT(mqim_v5_decode(overlong_props, sizeof(overlong_props), &pk, &used),
                     MQIM_MQTT_BAD_LENGTH);
    }
    /* The shared primitives round-trip every length class at its edges. */
    {
        static const uint32_t values[] = { 0u, 127u, 128u, 16383u, 16384u, 2097151u, 2097152u,
                                           MQIM_MQTT_REMAINING_MAX };
        for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
            uint8_t b[4];
            size_t n = (size_t)(mqim_wire_put_varint(b, values[i]) - b), pos = 0;
            uint32_t back = 0;
            CHECK_EQ_INT(n, mqim_wire_varint_len(values[i]));
            CHECK_EQ_INT(mqim_wire_get_varint(b, n, &pos, &back), MQIM_OK);
            CHECK(back == values[i] && pos == n);
            pos = 0;
            CHECK_EQ_INT(mqim_wire_get_varint(b, n - 1u, &pos, &back),
                         MQIM_MQTT_NEED_MORE);
        }
    }
}

/* ---- the publisher against a scripted broker ---- */

typedef struct broker {
    int listen_fd, port;
    uint8_t connack[64];
    size_t connack_len;
    unsigned expect_publishes; /* read this many publishes, then PUBACK them in reverse order */
    uint8_t refuse_reason;     /* for the second publish's PUBACK */
    bool go_silent;            /* after the CONNACK: read, never answer (a dead peer) */
    bool answer_all;           /* after the CONNACK: PUBACK every publish, PINGRESP every PINGREQ */
    unsigned puback_delay_ms;  /* answer_all: a slow broker */
    volatile unsigned pings, publishes; /* answered so far (answer_all) */
    unsigned max_seen_unacked; /* most publishes read before any PUBACK was sent */
    uint16_t ids[64];
    char topics[64][16];
    int conn_fd;
} broker_t;

static bool recv_all(int fd, uint8_t *buf, size_t len)
{
    while (len > 0u) {
        ssize_t n = recv(fd, buf, len, 0);
        if (n <= 0) {
            return false;
        }
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

/* One whole packet into buf; its size, or 0 when the peer closed. */
static size_t read_packet(int fd, uint8_t *buf, size_t cap)
{
    size_t have = 1, rem = 0, mult = 1;
    if (!recv_all(fd, buf, 1)) {
        return 0;
    }
    do {
        if (have >= 5u || !recv_all(fd, buf + have, 1)) {
            return 0;
        }
        rem += (buf[have] & 0x7Fu) * mult;
        mult *= 128u;
    } while (buf[have++] & 0x80u);
    if (have + rem > cap || !recv_all(fd, buf + have, rem)) {
        return 0;
    }
    return have + rem;
}

static void *broker_main(void *arg)
{
    broker_t *b = arg;
    uint8_t buf[4096];
    size_t n;
    b->conn_fd = accept(b->listen_fd, NULL, NULL);
    if (b->conn_fd < 0) {
        return NULL;
    }
    n = read_packet(b->conn_fd, buf, sizeof(buf));
    if (n == 0 || buf[0] != 0x10) {
        return NULL;
    }
    (void)send(b->conn_fd, b->connack, b->connack_len, MSG_NOSIGNAL);
    if (b->go_silent) {
        while (read_packet(b->conn_fd, buf, sizeof(buf)) > 0) {
        }
        return NULL;
    }
    if (b->answer_all) {
        while ((n = read_packet(b->conn_fd, buf, sizeof(buf))) > 0) {
            if (buf[0] == 0xC0u) {
                static const uint8_t pingresp[] = { 0xD0, 0x00 };
                (void)send(b->conn_fd, pingresp, sizeof(pingresp), MSG_NOSIGNAL);
                __atomic_add_fetch(&b->pings, 1u, __ATOMIC_SEQ_CST);
            } else if ((buf[0] & 0xF6u) == 0x32u) { /* PUBLISH, QoS 1 */
                size_t tl = ((size_t)buf[2] << 8) | buf[3];
                uint8_t ack[4] = { 0x40, 0x02, buf[4 + tl], buf[5 + tl] };
                if (b->puback_delay_ms > 0u) {
                    usleep(b->puback_delay_ms * 1000u);
                }
                (void)send(b->conn_fd, ack, sizeof(ack), MSG_NOSIGNAL);
                __atomic_add_fetch(&b->publishes, 1u, __ATOMIC_SEQ_CST);
            } else if (buf[0] == 0xE0u) {
                break;
            }
        }
        return NULL;
    }
    for (unsigned i = 0; i < b->expect_publishes; i++) {
        size_t tl;
        n = read_packet(b->conn_fd, buf, sizeof(buf));
        if (n == 0 || (buf[0] & 0xF0u) != 0x30u) {
            return NULL;
        }
        /* fixed header of these small publishes: 2 bytes */
        tl = ((size_t)buf[2] << 8) | buf[3];
        memcpy(b->topics[i], buf + 4, tl < 15 ? tl : 15);
        b->ids[i] = (uint16_t)((buf[4 + tl] << 8) | buf[5 + tl]);
        b->max_seen_unacked = i + 1;
    }
    for (unsigned i = b->expect_publishes; i-- > 0;) {
        uint8_t ack[4] = { 0x40, 0x02, (uint8_t)(b->ids[i] >> 8), (uint8_t)b->ids[i] };
        uint8_t refused[5] = { 0x40, 0x03, (uint8_t)(b->ids[i] >> 8), (uint8_t)b->ids[i], b->refuse_reason };
        if (i == 1 && b->refuse_reason != 0) {
            (void)send(b->conn_fd, refused, sizeof(refused), MSG_NOSIGNAL);
        } else {
            (void)send(b->conn_fd, ack, sizeof(ack), MSG_NOSIGNAL);
        }
    }
    /* then wait for the DISCONNECT or the close */
    while (read_packet(b->conn_fd, buf, sizeof(buf)) > 0) {
    }
    return NULL;
}

static void broker_listen(broker_t *b)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int one = 1;
    b->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    (void)setsockopt(b->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(b->listen_fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    CHECK(listen(b->listen_fd, 1) == 0);
    CHECK(getsockname(b->listen_fd, (struct sockaddr *)&a, &len) == 0);
    b->port = ntohs(a.sin_port);
}

/* A scripted broker thread that answers CONNECT with connack (set the
 * script's other fields in *b before). */
static void broker_start(broker_t *b, const uint8_t *connack, size_t len, pthread_t *th)
{
    memcpy(b->connack, connack, len);
    b->connack_len = len;
    broker_listen(b);
    CHECK(pthread_create(th, NULL, broker_main, b) == 0);
}

static void broker_stop(broker_t *b, pthread_t th)
{
    pthread_join(th, NULL);
    close(b->conn_fd);
    close(b->listen_fd);
}

typedef struct done_log {
    uint64_t keys[64];
    uint8_t reasons[64];
    unsigned n;
} done_log_t;

static void on_done(void *ctx, uint64_t key, uint8_t reason)
{
    done_log_t *d = ctx;
    if (d->n < 64u) {
        d->keys[d->n] = key;
        d->reasons[d->n++] = reason;
    }
}

static int64_t ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static mqim_conn_config_t pub_config(int port, unsigned max_inflight, unsigned keepalive)
{
    mqim_conn_config_t c;
    memset(&c, 0, sizeof(c));
    c.host = "127.0.0.1";
    c.port = port;
    c.client_id = "gw.out";
    c.username = "gw";
    c.password = "secret";
    c.keepalive_s = keepalive;
    c.max_inflight = max_inflight;
    return c;
}

/* The broker's Receive Maximum (3) caps a window of 10; PUBACKs in reverse
 * order and a refusal reach done with the right keys; QoS 0 is done on queueing. */
static void test_publisher_window(void)
{
    static const uint8_t connack[] = { 0x20, 0x06, 0x00, 0x00, 0x03, 0x21, 0x00, 0x03 };
    broker_t b;
    pthread_t th;
    mqim_conn_t *p;
    mqim_conn_config_t cfg;
    done_log_t d;
    char err[256] = "";
    int64_t end;
    memset(&b, 0, sizeof(b));
    memset(&d, 0, sizeof(d));
    b.expect_publishes = 3;
    b.refuse_reason = 0x87;
    broker_start(&b, connack, sizeof(connack), &th);
    cfg = pub_config(b.port, 10, 20);
    p = mqim_conn_new(&cfg);
    CHECK(p != NULL);
    CHECK_EQ_INT(mqim_conn_connect(p, 2000, ms(), err, sizeof(err)), MQIM_OK);
    CHECK(mqim_conn_connected(p));
    CHECK_EQ_INT(mqim_conn_room(p), 3);
    for (unsigned i = 0; i < 4; i++) {
        char topic[8];
        mqim_v5_publish_t m = { { topic, 0 }, S("body"), S(""), 1, 0, 0 };
        m.topic.len = (size_t)snprintf(topic, sizeof(topic), "t/%u", i);
        CHECK_EQ_INT(mqim_conn_publish(p, 100u + i, &m, on_done, &d), i < 3 ? MQIM_OK : MQIM_INFLIGHT_FULL);
    }
    {
        mqim_v5_publish_t m = { S("t/q0"), S("x"), S(""), 0, 0, 0 };
        CHECK_EQ_INT(mqim_conn_publish(p, 200u, &m, on_done, &d), MQIM_OK); /* QoS 0: no slot needed */
        CHECK(d.n == 1 && d.keys[0] == 200u);
    }
    CHECK_EQ_INT(mqim_conn_inflight(p), 3);
    end = ms() + 3000;
    while (d.n < 4u && ms() < end) {
        CHECK_EQ_INT(mqim_conn_service(p, ms(), on_done, &d, err, sizeof(err)), MQIM_OK);
        usleep(1000);
    }
    CHECK_EQ_INT(d.n, 4);
    CHECK(d.keys[1] == 102u && d.reasons[1] == 0); /* reverse order: 102, 101 (refused), 100 */
    CHECK(d.keys[2] == 101u && d.reasons[2] == 0x87);
    CHECK(d.keys[3] == 100u && d.reasons[3] == 0);
    CHECK_EQ_INT(mqim_conn_inflight(p), 0);
    CHECK_EQ_INT(mqim_conn_room(p), 3);
    CHECK_EQ_STR(b.topics[0], strlen(b.topics[0]), "t/0");
    CHECK_EQ_INT(b.max_seen_unacked, 3); /* all three were out before the first PUBACK */
    mqim_conn_close(p, true);
    broker_stop(&b, th);
    mqim_conn_free(p);
}

/* A CONNACK that refuses: the reason reaches the caller. */
static void test_publisher_refused(void)
{
    static const uint8_t connack[] = { 0x20, 0x03, 0x00, 0x86, 0x00 };
    broker_t b;
    pthread_t th;
    mqim_conn_t *p;
    mqim_conn_config_t cfg;
    char err[256] = "";
    memset(&b, 0, sizeof(b));
    broker_start(&b, connack, sizeof(connack), &th);
    cfg = pub_config(b.port, 4, 20);
    p = mqim_conn_new(&cfg);
    CHECK_EQ_INT(mqim_conn_connect(p, 2000, ms(), err, sizeof(err)), MQIM_CONNACK_REFUSED);
    CHECK(strstr(err, "bad user name or password") != NULL);
    CHECK(!mqim_conn_connected(p));
    broker_stop(&b, th);
    mqim_conn_free(p);
    /* nothing listens there any more: refused at once, and said so */
    p = mqim_conn_new(&cfg);
    CHECK_EQ_INT(mqim_conn_connect(p, 2000, ms(), err, sizeof(err)), MQIM_TRANSPORT_ERROR);
    CHECK(strstr(err, "cannot connect") != NULL);
    mqim_conn_free(p);
}

/* A peer that takes the publishes and never answers: the publisher gives
 * up after 1.5 keep-alive intervals with publishes in flight. */
static void test_publisher_dead_peer(void)
{
    static const uint8_t connack[] = { 0x20, 0x03, 0x00, 0x00, 0x00 };
    broker_t b;
    pthread_t th;
    mqim_conn_t *p;
    mqim_conn_config_t cfg;
    done_log_t d;
    char err[256] = "";
    mqim_v5_publish_t m = { S("t/x"), S("body"), S(""), 1, 0, 0 };
    int64_t t0;
    memset(&b, 0, sizeof(b));
    memset(&d, 0, sizeof(d));
    b.go_silent = true;
    broker_start(&b, connack, sizeof(connack), &th);
    cfg = pub_config(b.port, 4, 1);
    p = mqim_conn_new(&cfg);
    t0 = ms();
    CHECK_EQ_INT(mqim_conn_connect(p, 2000, t0, err, sizeof(err)), MQIM_OK);
    CHECK_EQ_INT(mqim_conn_publish(p, 1, &m, on_done, &d), MQIM_OK);
    CHECK_EQ_INT(mqim_conn_service(p, t0, on_done, &d, err, sizeof(err)), MQIM_OK);
    /* the clock is the caller's: 1 s later a PINGREQ goes out, 1.5 s later it is over */
    CHECK_EQ_INT(mqim_conn_service(p, t0 + 1000, on_done, &d, err, sizeof(err)), MQIM_OK);
    CHECK_EQ_INT(mqim_conn_service(p, t0 + 1500, on_done, &d, err, sizeof(err)), MQIM_TIMEOUT);
    CHECK(strstr(err, "no PUBACK") != NULL);
    CHECK_EQ_INT(d.n, 0);
    mqim_conn_close(p, false);
    broker_stop(&b, th);
    mqim_conn_free(p);
}

/* Wait (real time, 5 s at most) until *counter reaches want, then let the
 * publisher read the answer, all at the caller's clock t. */
static bool settle(mqim_conn_t *p, volatile unsigned *counter, unsigned want, int64_t t, done_log_t *d)
{
    char err[256] = "";
    int64_t end = ms() + 5000;
    while (__atomic_load_n(counter, __ATOMIC_SEQ_CST) < want && ms() < end) {
        usleep(200);
    }
    CHECK(__atomic_load_n(counter, __ATOMIC_SEQ_CST) >= want);
    if (__atomic_load_n(counter, __ATOMIC_SEQ_CST) < want) {
        return false;
    }
    /* the answer is on its way over loopback: read until it is in */
    end = ms() + 5000;
    do {
        struct pollfd pfd = { mqim_conn_fd(p), POLLIN, 0 };
        (void)poll(&pfd, 1, 10);
        CHECK_EQ_INT(mqim_conn_service(p, t, on_done, d, err, sizeof(err)), MQIM_OK);
    } while (mqim_conn_inflight(p) > 0u && ms() < end);
    {
        struct pollfd pfd = { mqim_conn_fd(p), POLLIN, 0 };
        if (poll(&pfd, 1, 10) > 0) {
            CHECK_EQ_INT(mqim_conn_service(p, t, on_done, d, err, sizeof(err)), MQIM_OK);
        }
    }
    return true;
}

/* Ten minutes idle (the caller's clock, keep-alive 4 s): a PINGREQ every
 * half keep-alive, each answered, no reconnect; the broker never sees more
 * than half a keep-alive (plus one service step) without a packet, far from
 * the 1.5 intervals after which Mosquitto drops a client. Then a burst: the
 * first publishes after the idle period are not taken for a stall (the
 * stall clock starts when they go out, not at the last packet received). */
static void test_publisher_idle_then_burst(void)
{
    static const uint8_t connack[] = { 0x20, 0x03, 0x00, 0x00, 0x00 };
    broker_t b;
    pthread_t th;
    mqim_conn_t *p;
    mqim_conn_config_t cfg;
    done_log_t d;
    char err[256] = "";
    int64_t t0, t;
    unsigned pings = 0;
    memset(&b, 0, sizeof(b));
    memset(&d, 0, sizeof(d));
    b.answer_all = true;
    broker_start(&b, connack, sizeof(connack), &th);
    cfg = pub_config(b.port, 8, 4);
    p = mqim_conn_new(&cfg);
    t0 = ms();
    CHECK_EQ_INT(mqim_conn_connect(p, 2000, t0, err, sizeof(err)), MQIM_OK);
    for (t = t0; t <= t0 + 600000; t += 250) {
        CHECK_EQ_INT(mqim_conn_service(p, t, on_done, &d, err, sizeof(err)), MQIM_OK);
        if ((t - t0) % 2000 == 0 && t > t0) { /* a PINGREQ is due every 2 s: wait for its answer */
            pings++;
            if (!settle(p, &b.pings, pings, t, &d)) {
                break; /* said so */
            }
        }
    }
    CHECK_EQ_INT(b.pings, 300); /* one per half keep-alive: 600 s / 2 s */
    CHECK(mqim_conn_connected(p));
    /* the burst, 1.9 s after the last PINGRESP was read, to a slow broker
     * whose PUBACKs come 4.5 s later: 6.4 s after the last packet received
     * (more than 1.5 keep-alives: the old clock gave up here), 4.5 s after
     * the publishes went out (the clock that counts): no stall */
    t = t0 + 600000 + 1900;
    b.puback_delay_ms = 200; /* real time: the call at t + 4500 comes before the PUBACKs */
    for (unsigned i = 0; i < 3; i++) {
        mqim_v5_publish_t m = { S("t/burst"), S("body"), S(""), 1, 0, 0 };
        CHECK_EQ_INT(mqim_conn_publish(p, 10u + i, &m, on_done, &d), MQIM_OK);
    }
    CHECK_EQ_INT(mqim_conn_service(p, t, on_done, &d, err, sizeof(err)), MQIM_OK);
    CHECK_EQ_INT(mqim_conn_service(p, t + 4500, on_done, &d, err, sizeof(err)), MQIM_OK);
    (void)settle(p, &b.publishes, 3, t + 4500, &d);
    CHECK_EQ_INT(d.n, 3);
    CHECK_EQ_INT(mqim_conn_inflight(p), 0);
    mqim_conn_close(p, true);
    broker_stop(&b, th);
    mqim_conn_free(p);
}

/* After a long idle period a publish whose PUBACK never comes is still
 * caught: 1.5 keep-alives after it went out, not earlier and not never. */
static void test_publisher_idle_then_dead(void)
{
    static const uint8_t connack[] = { 0x20, 0x03, 0x00, 0x00, 0x00 };
    broker_t b;
    pthread_t th;
    mqim_conn_t *p;
    mqim_conn_config_t cfg;
    done_log_t d;
    char err[256] = "";
    mqim_v5_publish_t m = { S("t/x"), S("body"), S(""), 1, 0, 0 };
    int64_t t0, t;
    memset(&b, 0, sizeof(b));
    memset(&d, 0, sizeof(d));
    b.go_silent = true; /* reads everything, answers nothing */
    broker_start(&b, connack, sizeof(connack), &th);
    cfg = pub_config(b.port, 4, 10);
    p = mqim_conn_new(&cfg);
    t0 = ms();
    CHECK_EQ_INT(mqim_conn_connect(p, 2000, t0, err, sizeof(err)), MQIM_OK);
    /* 4 s idle: no PINGREQ yet (due after 5 s), nothing waits */
    CHECK_EQ_INT(mqim_conn_service(p, t0 + 4000, on_done, &d, err, sizeof(err)), MQIM_OK);
    t = t0 + 4000;
    CHECK_EQ_INT(mqim_conn_publish(p, 1, &m, on_done, &d), MQIM_OK);
    CHECK_EQ_INT(mqim_conn_service(p, t, on_done, &d, err, sizeof(err)), MQIM_OK);
    /* the old clock (last packet received: the CONNACK at t0) would give
     * up at t0 + 15 s; the publish went out at t0 + 4 s */
    CHECK_EQ_INT(mqim_conn_service(p, t0 + 15000, on_done, &d, err, sizeof(err)), MQIM_OK);
    CHECK_EQ_INT(mqim_conn_service(p, t + 14999, on_done, &d, err, sizeof(err)), MQIM_OK);
    CHECK_EQ_INT(mqim_conn_service(p, t + 15000, on_done, &d, err, sizeof(err)), MQIM_TIMEOUT);
    CHECK(strstr(err, "no PUBACK") != NULL && strstr(err, "for 15 s with 1 publishes") != NULL);
    mqim_conn_close(p, false);
    broker_stop(&b, th);
    mqim_conn_free(p);
}

/* Idle, and the peer stops answering PINGREQs: given up one keep-alive
 * after the unanswered PINGREQ. */
static void test_publisher_idle_no_pingresp(void)
{
    static const uint8_t connack[] = { 0x20, 0x03, 0x00, 0x00, 0x00 };
    broker_t b;
    pthread_t th;
    mqim_conn_t *p;
    mqim_conn_config_t cfg;
    done_log_t d;
    char err[256] = "";
    int64_t t0;
    memset(&b, 0, sizeof(b));
    memset(&d, 0, sizeof(d));
    b.go_silent = true;
    broker_start(&b, connack, sizeof(connack), &th);
    cfg = pub_config(b.port, 4, 2);
    p = mqim_conn_new(&cfg);
    t0 = ms();
    CHECK_EQ_INT(mqim_conn_connect(p, 2000, t0, err, sizeof(err)), MQIM_OK);
    CHECK_EQ_INT(mqim_conn_service(p, t0 + 999, on_done, &d, err, sizeof(err)), MQIM_OK);
    CHECK_EQ_INT(mqim_conn_service(p, t0 + 1000, on_done, &d, err, sizeof(err)), MQIM_OK); /* PINGREQ */
    CHECK_EQ_INT(mqim_conn_service(p, t0 + 2999, on_done, &d, err, sizeof(err)), MQIM_OK);
    CHECK_EQ_INT(mqim_conn_service(p, t0 + 3000, on_done, &d, err, sizeof(err)), MQIM_TIMEOUT);
    CHECK(strstr(err, "no PINGRESP") != NULL);
    mqim_conn_close(p, false);
    broker_stop(&b, th);
    mqim_conn_free(p);
}

/* Only QoS 0 publishes go out (the gateway's stats every few seconds):
 * the connection is never idle on the way out, nothing comes back. A
 * PINGREQ still goes out once per keep-alive without a packet received, and
 * a peer that does not answer it is given up. */
static void test_publisher_qos0_only_dead_peer(void)
{
    static const uint8_t connack[] = { 0x20, 0x03, 0x00, 0x00, 0x00 };
    broker_t b;
    pthread_t th;
    mqim_conn_t *p;
    mqim_conn_config_t cfg;
    done_log_t d;
    char err[256] = "";
    mqim_v5_publish_t m = { S("t/stats"), S("{}"), S(""), 0, 0, 0 };
    int64_t t0, t;
    mqim_status_t st = MQIM_OK;
    memset(&b, 0, sizeof(b));
    memset(&d, 0, sizeof(d));
    b.go_silent = true;
    broker_start(&b, connack, sizeof(connack), &th);
    cfg = pub_config(b.port, 4, 2);
    p = mqim_conn_new(&cfg);
    t0 = ms();
    CHECK_EQ_INT(mqim_conn_connect(p, 2000, t0, err, sizeof(err)), MQIM_OK);
    for (t = t0 + 500; t <= t0 + 10000 && st == MQIM_OK; t += 500) {
        CHECK_EQ_INT(mqim_conn_publish(p, 1, &m, on_done, &d), MQIM_OK);
        st = mqim_conn_service(p, t, on_done, &d, err, sizeof(err));
    }
    /* PINGREQ at t0 + 2 s (nothing received for a keep-alive), no answer
     * by t0 + 4 s */
    CHECK_EQ_INT(st, MQIM_TIMEOUT);
    CHECK_EQ_INT(t - 500, t0 + 4000);
    CHECK(strstr(err, "no PINGRESP") != NULL);
    mqim_conn_close(p, false);
    broker_stop(&b, th);
    mqim_conn_free(p);
}

/* ---- the subscriber side: codec ---- */

static void test_subscriber_codec(void)
{
    /* CONNECT with a persistent session, Maximum Packet Size and a retained QoS 1 will */
    static const uint8_t want_connect[] = {
        0x10, 0x29, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0xEC, 0x00, 0x0A,
        0x0A, 0x11, 0xFF, 0xFF, 0xFF, 0xFF, 0x27, 0x00, 0x40, 0x00, 0x00,
        0x00, 0x02, 'g', 'w', 0x00, 0x00, 0x02, 's', '/', 0x00, 0x03, 'o', 'f', 'f',
        0x00, 0x01, 'u', 0x00, 0x01, 'p'
    };
    static const uint8_t want_sub[] = { 0x82, 0x0C, 0xFF, 0xFF, 0x00, 0x00, 0x06,
                                        'i', 'm', '/', 'u', '/', '#', 0x11 };
    static const uint8_t want_puback[] = { 0x40, 0x02, 0x12, 0x34 };
    mqim_v5_connect_t c = { .client_id = S("gw"), .username = S("u"), .password = S("p"),
                            .keepalive_s = 10, .session_expiry_s = 0xFFFFFFFFu,
                            .max_packet = 4u << 20, .will_topic = S("s/"), .will_payload = S("off"),
                            .will_qos = 1, .will_retain = 1 };
    mqim_v5_subscribe_t sub = { S("im/u/#"), 1, MQIM_V5_RETAIN_IF_NEW_SUB, 0xFFFF };
    uint8_t buf[128];
    size_t n = 0;
    CHECK_EQ_INT(mqim_v5_connect_encode(&c, buf, sizeof(buf), &n), MQIM_OK);
    CHECK_EQ_INT(n, sizeof(want_connect));
    CHECK(memcmp(buf, want_connect, n) == 0);
    c.will_qos = 2;
    CHECK_EQ_INT(mqim_v5_connect_encode(&c, buf, sizeof(buf), &n), MQIM_BAD_PARAMETER);
    CHECK_EQ_INT(mqim_v5_subscribe_encode(&sub, NULL, 0, &n), MQIM_BUFFER_TOO_SMALL);
    CHECK_EQ_INT(n, sizeof(want_sub));
    CHECK_EQ_INT(mqim_v5_subscribe_encode(&sub, buf, sizeof(buf), &n), MQIM_OK);
    CHECK(n == sizeof(want_sub) && memcmp(buf, want_sub, n) == 0);
    sub.packet_id = 0;
    CHECK_EQ_INT(mqim_v5_subscribe_encode(&sub, buf, sizeof(buf), &n), MQIM_BAD_PARAMETER);
    CHECK_EQ_INT(mqim_v5_puback_encode(0x1234, buf, 3, &n), MQIM_BUFFER_TOO_SMALL);
    CHECK_EQ_INT(mqim_v5_puback_encode(0x1234, buf, sizeof(buf), &n), MQIM_OK);
    CHECK(n == 4u && memcmp(buf, want_puback, 4) == 0);
    CHECK_EQ_INT(mqim_v5_puback_encode(0, buf, sizeof(buf), &n), MQIM_BAD_PARAMETER);
}

static void test_subscriber_decode(void)
{
    /* QoS 1, DUP, retained; response topic "r" and correlation "c"; payload "hi" */
    static const uint8_t pub1[] = { 0x3B, 0x12, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x07,
                                    0x08, 0x08, 0x00, 0x01, 'r', 0x09, 0x00, 0x01, 'c', 'h', 'i' };
    static const uint8_t pub0[] = { 0x30, 0x05, 0x00, 0x01, 't', 0x00, 'x' };
    static const uint8_t suback[] = { 0x90, 0x04, 0xFF, 0xFF, 0x00, 0x01 };
    mqim_v5_packet_t pk;
    size_t used = 0;
    CHECK_EQ_INT(mqim_v5_decode_limit(pub1, sizeof(pub1), 1024, &pk, &used), MQIM_OK);
    CHECK_EQ_INT(used, sizeof(pub1));
    CHECK(pk.type == MQIM_V5_PUBLISH && pk.qos == 1 && pk.dup == 1 && pk.retain == 1 && pk.packet_id == 7);
    CHECK_EQ_STR(pk.topic.ptr, pk.topic.len, "a/b");
    CHECK_EQ_STR(pk.payload.ptr, pk.payload.len, "hi");
    CHECK_EQ_STR(pk.response_topic.ptr, pk.response_topic.len, "r");
    CHECK_EQ_STR(pk.correlation.ptr, pk.correlation.len, "c");
    for (size_t k = 0; k < sizeof(pub1); k++) {
        CHECK_EQ_INT(mqim_v5_decode_limit(pub1, k, 1024, &pk, &used), MQIM_MQTT_NEED_MORE);
    }
    CHECK_EQ_INT(mqim_v5_decode_limit(pub0, sizeof(pub0), 1024, &pk, &used), MQIM_OK);
    CHECK(pk.qos == 0 && pk.packet_id == 0 && pk.payload.len == 1u);
    CHECK_EQ_INT(mqim_v5_decode_limit(suback, sizeof(suback), 1024, &pk, &used), MQIM_OK);
    CHECK(pk.type == MQIM_V5_SUBACK && pk.packet_id == 0xFFFF && pk.sub_count == 1u &&
          pk.sub_reasons[0] == MQIM_V5_RC_GRANTED_QOS1);
    /* the publisher's decoder still refuses both */
    CHECK_EQ_INT(mqim_v5_decode(pub1, sizeof(pub1), &pk, &used), MQIM_MQTT_BAD_TYPE);
    CHECK_EQ_INT(mqim_v5_decode(suback, sizeof(suback), &pk, &used), MQIM_MQTT_BAD_TYPE);
    /* larger than the limit: refused from the header alone, before it is buffered */
    CHECK_EQ_INT(mqim_v5_decode_limit(pub1, 3, sizeof(pub1) - 1u, &pk, &used), MQIM_MQTT_TOO_LARGE);
    CHECK_EQ_INT(mqim_v5_decode_limit(pub1, sizeof(pub1), sizeof(pub1), &pk, &used), MQIM_OK);
    {
        static const uint8_t qos2[] = { 0x34, 0x06, 0x00, 0x01, 't', 0x00, 0x01, 0x00 };
        static const uint8_t qos3[] = { 0x36, 0x06, 0x00, 0x01, 't', 0x00, 0x01, 0x00 };
        static const uint8_t empty_topic[] = { 0x30, 0x03, 0x00, 0x00, 0x00 };
        static const uint8_t alias[] = { 0x30, 0x07, 0x00, 0x01, 't', 0x03, 0x23, 0x00, 0x01 };
        static const uint8_t id0[] = { 0x32, 0x06, 0x00, 0x01, 't', 0x00, 0x00, 0x00 };
        static const uint8_t topic_long[] = { 0x30, 0x03, 0x00, 0x05, 't' };
        static const uint8_t no_props[] = { 0x30, 0x03, 0x00, 0x01, 't' };
        static const uint8_t suback_empty[] = { 0x90, 0x03, 0x00, 0x01, 0x00 };
        static const uint8_t suback_flags[] = { 0x92, 0x04, 0x00, 0x01, 0x00, 0x01 };
        CHECK_EQ_INT(mqim_v5_decode_limit(qos2, sizeof(qos2), 1024, &pk, &used), MQIM_MQTT_PROTOCOL);
        CHECK_EQ_INT(mqim_v5_decode_limit(qos3, sizeof(qos3), 1024, &pk, &used), MQIM_MQTT_PROTOCOL);
        CHECK_EQ_INT(mqim_v5_decode_limit(empty_topic, sizeof(empty_topic), 1024, &pk, &used), MQIM_MQTT_TOPIC);
        CHECK_EQ_INT(mqim_v5_decode_limit(alias, sizeof(alias), 1024, &pk, &used), MQIM_MQTT_PROTOCOL);
        CHECK_EQ_INT(mqim_v5_decode_limit(id0, sizeof(id0), 1024, &pk, &used), MQIM_MQTT_PROTOCOL);
        CHECK_EQ_INT(mqim_v5_decode_limit(topic_long, sizeof(topic_long), 1024, &pk, &used), MQIM_MQTT_BAD_LENGTH);
        CHECK_EQ_INT(mqim_v5_decode_limit(no_props, sizeof(no_props), 1024, &pk, &used), MQIM_MQTT_BAD_LENGTH);
        CHECK_EQ_INT(mqim_v5_decode_limit(suback_empty, sizeof(suback_empty), 1024, &pk, &used), MQIM_MQTT_BAD_LENGTH);
        CHECK_EQ_INT(mqim_v5_decode_limit(suback_flags, sizeof(suback_flags), 1024, &pk, &used), MQIM_MQTT_BAD_FLAGS);
    }
}

/* ---- the inbound connection against a scripted broker ---- */

typedef struct sub_broker {
    int listen_fd, port, conn_fd;
    uint8_t connect[512];   /* the CONNECT as received */
    size_t connect_len;
    bool session_present;
    unsigned queued;        /* QoS 1 publishes sent right after the CONNACK (a resumed session) */
    uint8_t suback_reason;  /* the SUBACK's reason code */
    unsigned after_suback;  /* QoS 1 publishes after the SUBACK, in one send */
    uint8_t subscribe[256];
    size_t subscribe_len;
    uint16_t pubacks[64];   /* PUBACK packet ids received, in order */
    volatile unsigned npubacks;
} sub_broker_t;

/* QoS 1 publishes with ids first..first+n-1 on in/x, payload "m<id>", one send. */
static void send_publishes(int fd, uint16_t first, unsigned n)
{
    uint8_t buf[64 * 16];
    size_t len = 0;
    for (unsigned i = 0; i < n; i++) {
        uint16_t id = (uint16_t)(first + i);
        uint8_t p[] = { 0x32, 0x0B, 0x00, 0x04, 'i', 'n', '/', 'x', (uint8_t)(id >> 8), (uint8_t)id,
                        0x00, 'm', (uint8_t)('0' + id % 10) };
        memcpy(buf + len, p, sizeof(p));
        len += sizeof(p);
    }
    (void)send(fd, buf, len, MSG_NOSIGNAL);
}

static void *sub_broker_main(void *arg)
{
    sub_broker_t *b = arg;
    uint8_t buf[4096];
    size_t n;
    uint8_t connack[] = { 0x20, 0x03, b->session_present ? 0x01 : 0x00, 0x00, 0x00 };
    uint8_t suback[] = { 0x90, 0x04, 0xFF, 0xFF, 0x00, b->suback_reason };
    b->conn_fd = accept(b->listen_fd, NULL, NULL);
    if (b->conn_fd < 0) {
        return NULL;
    }
    b->connect_len = read_packet(b->conn_fd, b->connect, sizeof(b->connect));
    if (b->connect_len == 0) {
        return NULL;
    }
    (void)send(b->conn_fd, connack, sizeof(connack), MSG_NOSIGNAL);
    if (b->queued > 0u) {
        send_publishes(b->conn_fd, 1, b->queued); /* before the SUBACK, as Mosquitto does */
    }
    b->subscribe_len = read_packet(b->conn_fd, b->subscribe, sizeof(b->subscribe));
    (void)send(b->conn_fd, suback, sizeof(suback), MSG_NOSIGNAL);
    if (b->after_suback > 0u) {
        send_publishes(b->conn_fd, (uint16_t)(b->queued + 1u), b->after_suback);
    }
    while ((n = read_packet(b->conn_fd, buf, sizeof(buf))) > 0) {
        if (buf[0] == 0x40u && b->npubacks < 64u) {
            b->pubacks[b->npubacks] = (uint16_t)((buf[2] << 8) | buf[3]);
            __atomic_add_fetch(&b->npubacks, 1u, __ATOMIC_SEQ_CST);
        } else if (buf[0] == 0xE0u) {
            break;
        }
    }
    return NULL;
}

typedef struct taken {
    char payloads[64][8];
    unsigned n;
    unsigned refuse_at;        /* 1-based: that publish is refused with refuse_status */
    mqim_status_t refuse_status;
    unsigned busy_once_at;     /* 1-based: that publish is "not now" once */
} taken_t;

static mqim_status_t take(void *ctx, const mqim_v5_packet_t *pk)
{
    taken_t *t = ctx;
    unsigned nth = t->n + 1u;
    if (nth == t->busy_once_at) {
        t->busy_once_at = 0;
        return MQIM_INFLIGHT_FULL;
    }
    if (nth == t->refuse_at) {
        return t->refuse_status;
    }
    snprintf(t->payloads[t->n % 64u], sizeof(t->payloads[0]), "%.*s", (int)pk->payload.len, pk->payload.ptr);
    t->n++;
    return MQIM_OK;
}

static mqim_conn_config_t sub_config(int port, taken_t *t)
{
    mqim_conn_config_t c = pub_config(port, 4, 10);
    c.client_id = "gw";
    c.resume_session = true;
    c.session_expiry_s = 0xFFFFFFFFu;
    c.will_topic = "im/gateway/status";
    c.will_payload = "{\"state\":\"offline\"}";
    c.sub_filter = "im/u/+/out/#";
    c.max_in_packet = 1u << 20;
    c.on_publish = take;
    c.on_publish_ctx = t;
    return c;
}

static void sub_broker_start(sub_broker_t *b, pthread_t *th)
{
    broker_t lb;
    memset(&lb, 0, sizeof(lb));
    broker_listen(&lb);
    b->listen_fd = lb.listen_fd;
    b->port = lb.port;
    CHECK(pthread_create(th, NULL, sub_broker_main, b) == 0);
}

static void sub_broker_stop(sub_broker_t *b, pthread_t th)
{
    pthread_join(th, NULL);
    close(b->conn_fd);
    close(b->listen_fd);
}

/* Service until want PUBACKs reached the broker (or 3 s). */
static mqim_status_t serve_until(mqim_conn_t *c, sub_broker_t *b, unsigned want, char *err, size_t cap)
{
    int64_t end = ms() + 3000;
    mqim_status_t st = MQIM_OK;
    while (st == MQIM_OK && ms() < end &&
           (__atomic_load_n(&b->npubacks, __ATOMIC_SEQ_CST) < want || !mqim_conn_subscribed(c))) {
        struct pollfd pfd = { mqim_conn_fd(c), POLLIN, 0 };
        (void)poll(&pfd, 1, 20);
        st = mqim_conn_service(c, ms(), NULL, NULL, err, cap);
    }
    return st;
}

/* A resumed session: the broker sends what it queued while the gateway
 * was away before the SUBACK; every one reaches on_publish and is
 * acknowledged in order, the CONNECT asked for the session and carried the
 * will, and a "not now" from on_publish holds the PUBACK back until the
 * publish is taken. */
static void test_inbound_session_resumption(void)
{
    sub_broker_t b;
    taken_t t;
    pthread_t th;
    mqim_conn_t *c;
    mqim_conn_config_t cfg;
    char err[256] = "";
    memset(&b, 0, sizeof(b));
    memset(&t, 0, sizeof(t));
    b.session_present = true;
    b.queued = 3;
    b.suback_reason = MQIM_V5_RC_GRANTED_QOS1;
    b.after_suback = 2;
    t.busy_once_at = 2;
    sub_broker_start(&b, &th);
    cfg = sub_config(b.port, &t);
    c = mqim_conn_new(&cfg);
    CHECK(c != NULL);
    CHECK_EQ_INT(mqim_conn_connect(c, 2000, ms(), err, sizeof(err)), MQIM_OK);
    CHECK(mqim_conn_session_present(c));
    /* CONNECT flags: user, password, will retain, will QoS 1, will, clean start 0 */
    CHECK_EQ_INT(b.connect[9], 0xEC);
    CHECK(b.connect[12] == 0x0A && b.connect[13] == 0x11 && b.connect[14] == 0xFF && b.connect[17] == 0xFF);
    CHECK_EQ_INT(serve_until(c, &b, 5, err, sizeof(err)), MQIM_OK);
    CHECK(mqim_conn_subscribed(c));
    CHECK_EQ_INT(t.n, 5);
    CHECK_EQ_INT(b.npubacks, 5);
    for (unsigned i = 0; i < 5u && i < b.npubacks; i++) {
        char want[8];
        CHECK_EQ_INT(b.pubacks[i], i + 1u);
        snprintf(want, sizeof(want), "m%u", (i + 1u) % 10u);
        CHECK_EQ_STR(t.payloads[i], strlen(t.payloads[i]), want);
    }
    /* SUBSCRIBE: id 0xFFFF, the filter, QoS 1 with retain handling 1 */
    CHECK(b.subscribe[0] == 0x82 && b.subscribe[2] == 0xFF && b.subscribe[3] == 0xFF);
    CHECK_EQ_INT(b.subscribe[b.subscribe_len - 1u], 0x11);
    mqim_conn_close(c, true);
    sub_broker_stop(&b, th);
    mqim_conn_free(c);
}

/* A SUBACK that refuses the filter (not authorized), or grants only
 * QoS 0: the connection reports it and is closed, never left up without
 * routing. */
static void test_inbound_suback_refused(void)
{
    static const uint8_t reasons[] = { 0x87, 0x00 };
    for (size_t i = 0; i < sizeof(reasons); i++) {
        sub_broker_t b;
        taken_t t;
        pthread_t th;
        mqim_conn_t *c;
        mqim_conn_config_t cfg;
        char err[256] = "";
        memset(&b, 0, sizeof(b));
        memset(&t, 0, sizeof(t));
        b.suback_reason = reasons[i];
        sub_broker_start(&b, &th);
        cfg = sub_config(b.port, &t);
        c = mqim_conn_new(&cfg);
        CHECK_EQ_INT(mqim_conn_connect(c, 2000, ms(), err, sizeof(err)), MQIM_OK);
        CHECK_EQ_INT(serve_until(c, &b, 0, err, sizeof(err)), MQIM_CONNACK_REFUSED);
        CHECK(strstr(err, "refused the subscription to im/u/+/out/#") != NULL);
        CHECK(strstr(err, i == 0 ? "not authorized" : "granted QoS 0") != NULL);
        CHECK(!mqim_conn_subscribed(c));
        mqim_conn_close(c, false);
        sub_broker_stop(&b, th);
        mqim_conn_free(c);
    }
}

/* A dead peer on the inbound connection: no SUBACK, no PINGRESP. The
 * ping goes out after half a keep-alive, and a keep-alive later the link
 * is declared dead. */
static void test_inbound_dead_peer(void)
{
    broker_t b;
    static const uint8_t connack[] = { 0x20, 0x03, 0x00, 0x00, 0x00 };
    pthread_t th;
    mqim_conn_t *c;
    taken_t t;
    mqim_conn_config_t cfg;
    char err[256] = "";
    int64_t t0;
    memset(&b, 0, sizeof(b));
    memset(&t, 0, sizeof(t));
    b.go_silent = true;
    broker_start(&b, connack, sizeof(connack), &th);
    cfg = sub_config(b.port, &t);
    c = mqim_conn_new(&cfg);
    t0 = ms();
    CHECK_EQ_INT(mqim_conn_connect(c, 2000, t0, err, sizeof(err)), MQIM_OK);
    CHECK_EQ_INT(mqim_conn_service(c, t0 + 5000, NULL, NULL, err, sizeof(err)), MQIM_OK); /* PINGREQ */
    CHECK_EQ_INT(mqim_conn_service(c, t0 + 14000, NULL, NULL, err, sizeof(err)), MQIM_OK);
    CHECK_EQ_INT(mqim_conn_service(c, t0 + 15000, NULL, NULL, err, sizeof(err)), MQIM_TIMEOUT);
    CHECK(strstr(err, "no PINGRESP") != NULL);
    CHECK(!mqim_conn_subscribed(c));
    mqim_conn_close(c, false);
    broker_stop(&b, th);
    mqim_conn_free(c);
}

/* The journal write fails (a full disk) for the second publish: it is
 * neither acknowledged nor queued; the first one is. The real inbound
 * queue and journal (inbound.c) over a real LMDB store. */
static int journal_calls;

static ssize_t failing_write(int fd, const void *buf, size_t len)
{
    if (++journal_calls == 2) {
        errno = ENOSPC;
        return -1;
    }
    return write(fd, buf, len);
}

static mqim_status_t offer(void *ctx, const mqim_v5_packet_t *pk)
{
    mqim_inbound_t in = { pk->topic, pk->payload, pk->qos, pk->retain != 0, pk->response_topic,
                          pk->correlation };
    return mqim_inbound_offer(ctx, &in, ms());
}

static void test_inbound_no_puback_without_journal(void)
{
    char dir[] = "/tmp/mqim-mqtt5-XXXXXX", journal[64], cmd[96], err[256] = "";
    mqim_store_t *store = NULL;
    mqim_router_t *router;
    mqim_router_config_t rcfg = { .root = "im", .sync_page = 100 };
    mqim_inbound_q_t *q;
    sub_broker_t b;
    pthread_t th;
    mqim_conn_t *c;
    mqim_conn_config_t cfg;
    taken_t t;
    CHECK(mkdtemp(dir) != NULL);
    CHECK_EQ_INT(mqim_store_open(dir, 8u << 20, false, &store), MQIM_OK);
    router = mqim_router_new(store, &rcfg);
    snprintf(journal, sizeof(journal), "%s/inbound.journal", dir);
    q = mqim_inbound_start(store, router, journal, 4, NULL, NULL);
    CHECK(q != NULL);
    memset(&b, 0, sizeof(b));
    b.suback_reason = MQIM_V5_RC_GRANTED_QOS1;
    b.after_suback = 3;
    sub_broker_start(&b, &th);
    cfg = sub_config(b.port, &t);
    cfg.on_publish = offer;
    cfg.on_publish_ctx = q;
    c = mqim_conn_new(&cfg);
    journal_calls = 0;
    mqim_inbound_set_journal_write(failing_write);
    CHECK_EQ_INT(mqim_conn_connect(c, 2000, ms(), err, sizeof(err)), MQIM_OK);
    CHECK_EQ_INT(serve_until(c, &b, 3, err, sizeof(err)), MQIM_DISK_FULL);
    mqim_inbound_set_journal_write(NULL);
    CHECK(strstr(err, "not acknowledged") != NULL);
    mqim_conn_close(c, false); /* the pump closes it: the broker sends id 2 again */
    sub_broker_stop(&b, th);
    CHECK_EQ_INT(b.npubacks, 1);
    CHECK_EQ_INT(b.pubacks[0], 1);
    CHECK_EQ_INT(journal_calls, 2); /* the third was never offered */
    mqim_conn_free(c);
    mqim_inbound_stop(q);
    mqim_router_free(router);
    mqim_store_close(store);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

int main(void)
{
    test_connect_encode();
    test_publish_encode();
    test_decode();
    test_publisher_window();
    test_publisher_refused();
    test_publisher_dead_peer();
    test_publisher_idle_then_burst();
    test_publisher_idle_then_dead();
    test_publisher_idle_no_pingresp();
    test_publisher_qos0_only_dead_peer();
    test_subscriber_codec();
    test_subscriber_decode();
    test_inbound_session_resumption();
    test_inbound_suback_refused();
    test_inbound_dead_peer();
    test_inbound_no_puback_without_journal();
    return CHECK_REPORT();
}
