/* Unit tests: the gateway's MQTT v5 codec (mqtt5.c) byte for byte, and the
 * outbox publisher (publisher.c) against a scripted broker on a loopback
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

#include "mqim_check.h"
#include "mqtt5.h"
#include "publisher.h"

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
    mqim_v5_connect_t c = { S("gw1"), S("gw"), S("pass"), 20, 1 };
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

    /* a stream of packets, as publisher.c reads them */
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

static mqim_pub_config_t pub_config(int port, unsigned max_inflight, unsigned keepalive)
{
    mqim_pub_config_t c;
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
    mqim_pub_t *p;
    mqim_pub_config_t cfg;
    done_log_t d;
    char err[256] = "";
    int64_t end;
    memset(&b, 0, sizeof(b));
    memset(&d, 0, sizeof(d));
    b.expect_publishes = 3;
    b.refuse_reason = 0x87;
    broker_start(&b, connack, sizeof(connack), &th);
    cfg = pub_config(b.port, 10, 20);
    p = mqim_pub_new(&cfg);
    CHECK(p != NULL);
    CHECK_EQ_INT(mqim_pub_connect(p, 2000, ms(), err, sizeof(err)), MQIM_OK);
    CHECK(mqim_pub_connected(p));
    CHECK_EQ_INT(mqim_pub_room(p), 3);
    for (unsigned i = 0; i < 4; i++) {
        char topic[8];
        mqim_v5_publish_t m = { { topic, 0 }, S("body"), S(""), 1, 0, 0 };
        m.topic.len = (size_t)snprintf(topic, sizeof(topic), "t/%u", i);
        CHECK_EQ_INT(mqim_pub_publish(p, 100u + i, &m, on_done, &d), i < 3 ? MQIM_OK : MQIM_INFLIGHT_FULL);
    }
    {
        mqim_v5_publish_t m = { S("t/q0"), S("x"), S(""), 0, 0, 0 };
        CHECK_EQ_INT(mqim_pub_publish(p, 200u, &m, on_done, &d), MQIM_OK); /* QoS 0: no slot needed */
        CHECK(d.n == 1 && d.keys[0] == 200u);
    }
    CHECK_EQ_INT(mqim_pub_inflight(p), 3);
    end = ms() + 3000;
    while (d.n < 4u && ms() < end) {
        CHECK_EQ_INT(mqim_pub_service(p, ms(), on_done, &d, err, sizeof(err)), MQIM_OK);
        usleep(1000);
    }
    CHECK_EQ_INT(d.n, 4);
    CHECK(d.keys[1] == 102u && d.reasons[1] == 0); /* reverse order: 102, 101 (refused), 100 */
    CHECK(d.keys[2] == 101u && d.reasons[2] == 0x87);
    CHECK(d.keys[3] == 100u && d.reasons[3] == 0);
    CHECK_EQ_INT(mqim_pub_inflight(p), 0);
    CHECK_EQ_INT(mqim_pub_room(p), 3);
    CHECK_EQ_STR(b.topics[0], strlen(b.topics[0]), "t/0");
    CHECK_EQ_INT(b.max_seen_unacked, 3); /* all three were out before the first PUBACK */
    mqim_pub_close(p, true);
    broker_stop(&b, th);
    mqim_pub_free(p);
}

/* A CONNACK that refuses: the reason reaches the caller. */
static void test_publisher_refused(void)
{
    static const uint8_t connack[] = { 0x20, 0x03, 0x00, 0x86, 0x00 };
    broker_t b;
    pthread_t th;
    mqim_pub_t *p;
    mqim_pub_config_t cfg;
    char err[256] = "";
    memset(&b, 0, sizeof(b));
    broker_start(&b, connack, sizeof(connack), &th);
    cfg = pub_config(b.port, 4, 20);
    p = mqim_pub_new(&cfg);
    CHECK_EQ_INT(mqim_pub_connect(p, 2000, ms(), err, sizeof(err)), MQIM_CONNACK_REFUSED);
    CHECK(strstr(err, "bad user name or password") != NULL);
    CHECK(!mqim_pub_connected(p));
    broker_stop(&b, th);
    mqim_pub_free(p);
    /* nothing listens there any more: refused at once, and said so */
    p = mqim_pub_new(&cfg);
    CHECK_EQ_INT(mqim_pub_connect(p, 2000, ms(), err, sizeof(err)), MQIM_TRANSPORT_ERROR);
    CHECK(strstr(err, "cannot connect") != NULL);
    mqim_pub_free(p);
}

/* A peer that takes the publishes and never answers: the publisher gives
 * up after 1.5 keep-alive intervals with publishes in flight. */
static void test_publisher_dead_peer(void)
{
    static const uint8_t connack[] = { 0x20, 0x03, 0x00, 0x00, 0x00 };
    broker_t b;
    pthread_t th;
    mqim_pub_t *p;
    mqim_pub_config_t cfg;
    done_log_t d;
    char err[256] = "";
    mqim_v5_publish_t m = { S("t/x"), S("body"), S(""), 1, 0, 0 };
    int64_t t0;
    memset(&b, 0, sizeof(b));
    memset(&d, 0, sizeof(d));
    b.go_silent = true;
    broker_start(&b, connack, sizeof(connack), &th);
    cfg = pub_config(b.port, 4, 1);
    p = mqim_pub_new(&cfg);
    t0 = ms();
    CHECK_EQ_INT(mqim_pub_connect(p, 2000, t0, err, sizeof(err)), MQIM_OK);
    CHECK_EQ_INT(mqim_pub_publish(p, 1, &m, on_done, &d), MQIM_OK);
    CHECK_EQ_INT(mqim_pub_service(p, t0, on_done, &d, err, sizeof(err)), MQIM_OK);
    /* the clock is the caller's: 1 s later a PINGREQ goes out, 1.5 s later it is over */
    CHECK_EQ_INT(mqim_pub_service(p, t0 + 1000, on_done, &d, err, sizeof(err)), MQIM_OK);
    CHECK_EQ_INT(mqim_pub_service(p, t0 + 1500, on_done, &d, err, sizeof(err)), MQIM_TIMEOUT);
    CHECK(strstr(err, "no PUBACK") != NULL);
    CHECK_EQ_INT(d.n, 0);
    mqim_pub_close(p, false);
    broker_stop(&b, th);
    mqim_pub_free(p);
}

/* Wait (real time, 5 s at most) until *counter reaches want, then let the
 * publisher read the answer, all at the caller's clock t. */
static bool settle(mqim_pub_t *p, volatile unsigned *counter, unsigned want, int64_t t, done_log_t *d)
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
        struct pollfd pfd = { mqim_pub_fd(p), POLLIN, 0 };
        (void)poll(&pfd, 1, 10);
        CHECK_EQ_INT(mqim_pub_service(p, t, on_done, d, err, sizeof(err)), MQIM_OK);
    } while (mqim_pub_inflight(p) > 0u && ms() < end);
    {
        struct pollfd pfd = { mqim_pub_fd(p), POLLIN, 0 };
        if (poll(&pfd, 1, 10) > 0) {
            CHECK_EQ_INT(mqim_pub_service(p, t, on_done, d, err, sizeof(err)), MQIM_OK);
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
    mqim_pub_t *p;
    mqim_pub_config_t cfg;
    done_log_t d;
    char err[256] = "";
    int64_t t0, t;
    unsigned pings = 0;
    memset(&b, 0, sizeof(b));
    memset(&d, 0, sizeof(d));
    b.answer_all = true;
    broker_start(&b, connack, sizeof(connack), &th);
    cfg = pub_config(b.port, 8, 4);
    p = mqim_pub_new(&cfg);
    t0 = ms();
    CHECK_EQ_INT(mqim_pub_connect(p, 2000, t0, err, sizeof(err)), MQIM_OK);
    for (t = t0; t <= t0 + 600000; t += 250) {
        CHECK_EQ_INT(mqim_pub_service(p, t, on_done, &d, err, sizeof(err)), MQIM_OK);
        if ((t - t0) % 2000 == 0 && t > t0) { /* a PINGREQ is due every 2 s: wait for its answer */
            pings++;
            if (!settle(p, &b.pings, pings, t, &d)) {
                break; /* said so */
            }
        }
    }
    CHECK_EQ_INT(b.pings, 300); /* one per half keep-alive: 600 s / 2 s */
    CHECK(mqim_pub_connected(p));
    /* the burst, 1.9 s after the last PINGRESP was read, to a slow broker
     * whose PUBACKs come 4.5 s later: 6.4 s after the last packet received
     * (more than 1.5 keep-alives: the old clock gave up here), 4.5 s after
     * the publishes went out (the clock that counts): no stall */
    t = t0 + 600000 + 1900;
    b.puback_delay_ms = 200; /* real time: the call at t + 4500 comes before the PUBACKs */
    for (unsigned i = 0; i < 3; i++) {
        mqim_v5_publish_t m = { S("t/burst"), S("body"), S(""), 1, 0, 0 };
        CHECK_EQ_INT(mqim_pub_publish(p, 10u + i, &m, on_done, &d), MQIM_OK);
    }
    CHECK_EQ_INT(mqim_pub_service(p, t, on_done, &d, err, sizeof(err)), MQIM_OK);
    CHECK_EQ_INT(mqim_pub_service(p, t + 4500, on_done, &d, err, sizeof(err)), MQIM_OK);
    (void)settle(p, &b.publishes, 3, t + 4500, &d);
    CHECK_EQ_INT(d.n, 3);
    CHECK_EQ_INT(mqim_pub_inflight(p), 0);
    mqim_pub_close(p, true);
    broker_stop(&b, th);
    mqim_pub_free(p);
}

/* After a long idle period a publish whose PUBACK never comes is still
 * caught: 1.5 keep-alives after it went out, not earlier and not never. */
static void test_publisher_idle_then_dead(void)
{
    static const uint8_t connack[] = { 0x20, 0x03, 0x00, 0x00, 0x00 };
    broker_t b;
    pthread_t th;
    mqim_pub_t *p;
    mqim_pub_config_t cfg;
    done_log_t d;
    char err[256] = "";
    mqim_v5_publish_t m = { S("t/x"), S("body"), S(""), 1, 0, 0 };
    int64_t t0, t;
    memset(&b, 0, sizeof(b));
    memset(&d, 0, sizeof(d));
    b.go_silent = true; /* reads everything, answers nothing */
    broker_start(&b, connack, sizeof(connack), &th);
    cfg = pub_config(b.port, 4, 10);
    p = mqim_pub_new(&cfg);
    t0 = ms();
    CHECK_EQ_INT(mqim_pub_connect(p, 2000, t0, err, sizeof(err)), MQIM_OK);
    /* 4 s idle: no PINGREQ yet (due after 5 s), nothing waits */
    CHECK_EQ_INT(mqim_pub_service(p, t0 + 4000, on_done, &d, err, sizeof(err)), MQIM_OK);
    t = t0 + 4000;
    CHECK_EQ_INT(mqim_pub_publish(p, 1, &m, on_done, &d), MQIM_OK);
    CHECK_EQ_INT(mqim_pub_service(p, t, on_done, &d, err, sizeof(err)), MQIM_OK);
    /* the old clock (last packet received: the CONNACK at t0) would give
     * up at t0 + 15 s; the publish went out at t0 + 4 s */
    CHECK_EQ_INT(mqim_pub_service(p, t0 + 15000, on_done, &d, err, sizeof(err)), MQIM_OK);
    CHECK_EQ_INT(mqim_pub_service(p, t + 14999, on_done, &d, err, sizeof(err)), MQIM_OK);
    CHECK_EQ_INT(mqim_pub_service(p, t + 15000, on_done, &d, err, sizeof(err)), MQIM_TIMEOUT);
    CHECK(strstr(err, "no PUBACK") != NULL && strstr(err, "for 15 s with 1 publishes") != NULL);
    mqim_pub_close(p, false);
    broker_stop(&b, th);
    mqim_pub_free(p);
}

/* Idle, and the peer stops answering PINGREQs: given up one keep-alive
 * after the unanswered PINGREQ. */
static void test_publisher_idle_no_pingresp(void)
{
    static const uint8_t connack[] = { 0x20, 0x03, 0x00, 0x00, 0x00 };
    broker_t b;
    pthread_t th;
    mqim_pub_t *p;
    mqim_pub_config_t cfg;
    done_log_t d;
    char err[256] = "";
    int64_t t0;
    memset(&b, 0, sizeof(b));
    memset(&d, 0, sizeof(d));
    b.go_silent = true;
    broker_start(&b, connack, sizeof(connack), &th);
    cfg = pub_config(b.port, 4, 2);
    p = mqim_pub_new(&cfg);
    t0 = ms();
    CHECK_EQ_INT(mqim_pub_connect(p, 2000, t0, err, sizeof(err)), MQIM_OK);
    CHECK_EQ_INT(mqim_pub_service(p, t0 + 999, on_done, &d, err, sizeof(err)), MQIM_OK);
    CHECK_EQ_INT(mqim_pub_service(p, t0 + 1000, on_done, &d, err, sizeof(err)), MQIM_OK); /* PINGREQ */
    CHECK_EQ_INT(mqim_pub_service(p, t0 + 2999, on_done, &d, err, sizeof(err)), MQIM_OK);
    CHECK_EQ_INT(mqim_pub_service(p, t0 + 3000, on_done, &d, err, sizeof(err)), MQIM_TIMEOUT);
    CHECK(strstr(err, "no PINGRESP") != NULL);
    mqim_pub_close(p, false);
    broker_stop(&b, th);
    mqim_pub_free(p);
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
    mqim_pub_t *p;
    mqim_pub_config_t cfg;
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
    p = mqim_pub_new(&cfg);
    t0 = ms();
    CHECK_EQ_INT(mqim_pub_connect(p, 2000, t0, err, sizeof(err)), MQIM_OK);
    for (t = t0 + 500; t <= t0 + 10000 && st == MQIM_OK; t += 500) {
        CHECK_EQ_INT(mqim_pub_publish(p, 1, &m, on_done, &d), MQIM_OK);
        st = mqim_pub_service(p, t, on_done, &d, err, sizeof(err));
    }
    /* PINGREQ at t0 + 2 s (nothing received for a keep-alive), no answer
     * by t0 + 4 s */
    CHECK_EQ_INT(st, MQIM_TIMEOUT);
    CHECK_EQ_INT(t - 500, t0 + 4000);
    CHECK(strstr(err, "no PINGRESP") != NULL);
    mqim_pub_close(p, false);
    broker_stop(&b, th);
    mqim_pub_free(p);
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
    return CHECK_REPORT();
}
