/* The MQTT session against a transport fake: the broker's bytes are
 * scripted, the client's bytes are captured and decoded. Also every
 * (state, event) pair of the transition table. */
#include <stdio.h>
#include <string.h>

#include "mqim/limits.h"
#include "mqim/session.h"
#include "mqim_check.h"

/* ---- the fake ---- */
typedef struct fake {
    uint8_t in[8192];   /* bytes the "broker" will deliver */
    size_t in_len, in_off;
    uint8_t out[8192];  /* bytes the client sent */
    size_t out_len, out_off; /* out_off: decoded so far by the test */
    int open_result;
    int broken;         /* recv/send return -1 */
    int opens, closes;
    uint32_t clock;
    uint32_t recv_timeout; /* the last recv's timeout_ms */
    uint32_t slept;        /* ms slept through the sleep port, in all */
    int sleeps;
} fake_t;

static fake_t F;

static int32_t f_send(void *ctx, const uint8_t *buf, size_t len, uint32_t timeout_ms)
{
    fake_t *f = ctx;
    (void)timeout_ms;
    if (f->broken) {
        return -1;
    }
    if (len > 7u) {
        len = 7u; /* partial writes: the session must finish them */
    }
    memcpy(f->out + f->out_len, buf, len);
    f->out_len += len;
    return (int32_t)len;
}

static int32_t f_recv(void *ctx, uint8_t *buf, size_t cap, uint32_t timeout_ms)
{
    fake_t *f = ctx;
    size_t n = f->in_len - f->in_off;
    f->recv_timeout = timeout_ms;
    if (f->broken) {
        return -1;
    }
    if (n > cap) {
        n = cap;
    }
    if (n > 5u) {
        n = 5u; /* packets arrive in pieces */
    }
    memcpy(buf, f->in + f->in_off, n);
    f->in_off += n;
    return (int32_t)n;
}

static int32_t f_open(void *ctx, uint32_t timeout_ms)
{
    fake_t *f = ctx;
    (void)timeout_ms;
    f->opens++;
    if (f->open_result == 0) {
        f->broken = 0;
    }
    return f->open_result;
}

static void f_close(void *ctx)
{
    ((fake_t *)ctx)->closes++;
}

static uint32_t f_clock(void *ctx)
{
    return ((fake_t *)ctx)->clock;
}

static int32_t f_entropy(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    memset(buf, 0x5a, len);
    return 0;
}

/* The sleep port: time passes (the fake clock), nothing else happens. */
static void f_sleep(void *ctx, uint32_t ms)
{
    fake_t *f = ctx;
    f->sleeps++;
    f->slept += ms;
    f->clock += ms;
}

static const mqim_transport_ops_t fake_ops = { f_send, f_recv, f_open, f_close };

static void inject(const uint8_t *b, size_t n)
{
    memcpy(F.in + F.in_len, b, n);
    F.in_len += n;
}

/* Next packet the client sent, decoded; type 0 when none. */
static mqim_mqtt_packet_t sent(void)
{
    mqim_mqtt_packet_t p;
    memset(&p, 0, sizeof(p));
    if (F.out_off < F.out_len) {
        /* CONNECT/SUBSCRIBE are client-to-server: decode only the header */
        uint8_t type = (uint8_t)(F.out[F.out_off] >> 4);
        size_t total = 0;
        if (mqim_mqtt_frame(F.out + F.out_off, F.out_len - F.out_off, 4096, &total) == MQIM_OK) {
            if (mqim_mqtt_decode(F.out + F.out_off, total, &p) != MQIM_OK) {
                p.type = (mqim_mqtt_type_t)type;
                p.packet_id = (type == MQIM_MQTT_SUBSCRIBE)
                                  ? (uint16_t)((F.out[F.out_off + 2] << 8) | F.out[F.out_off + 3])
                                  : 0u;
            }
            p.length = total;
            F.out_off += total;
        }
    }
    return p;
}

/* ---- callbacks ---- */
static int messages, published, connected, disconnected;
static uint32_t last_key;
static mqim_status_t last_reason;
static bool last_session_present;

static mqim_mqtt_publish_t last_pub;
static uint8_t last_payload[MQIM_CFG_RX_BUFFER_SIZE];

static void cb_message(void *ctx, const mqim_mqtt_publish_t *pub)
{
    (void)ctx;
    messages++;
    last_pub = *pub;
    memcpy(last_payload, pub->payload, pub->payload_len); /* valid only during the call */
}
static void cb_published(void *ctx, uint32_t key)
{
    (void)ctx;
    published++;
    last_key = key;
}
static void cb_connected(void *ctx, bool sp)
{
    (void)ctx;
    connected++;
    last_session_present = sp;
}
static void cb_disconnected(void *ctx, mqim_status_t reason)
{
    (void)ctx;
    disconnected++;
    last_reason = reason;
}
static mqim_status_t cb_get(void *ctx, uint32_t key, mqim_mqtt_publish_t *pub)
{
    (void)ctx;
    pub->topic = MQIM_STR("im/u/a/out/dm/b");
    pub->payload = (const uint8_t *)"again";
    pub->payload_len = 5;
    return key == 404u ? MQIM_NOT_FOUND : MQIM_OK;
}

static mqim_session_t S;

static void fresh(uint16_t keepalive)
{
    mqim_session_config_t cfg;
    memset(&F, 0, sizeof(F));
    F.clock = 1000;
    messages = published = connected = disconnected = 0;
    memset(&cfg, 0, sizeof(cfg));
    cfg.connect.client_id = MQIM_STR("alice.phone");
    cfg.connect.keep_alive_s = keepalive;
    cfg.transport = &fake_ops;
    cfg.transport_ctx = &F;
    cfg.clock = f_clock;
    cfg.clock_ctx = &F;
    cfg.entropy = f_entropy;
    cfg.cb = (mqim_session_callbacks_t){ cb_message, cb_published, cb_connected, cb_disconnected,
                                         cb_get, NULL };
    CHECK_EQ_INT(mqim_session_init(&S, &cfg), MQIM_OK);
}

static void connect_ok(bool session_present)
{
    static const uint8_t connack[] = { 0x20, 2, 0, 0 };
    uint8_t c[4];
    memcpy(c, connack, 4);
    c[2] = session_present ? 1u : 0u;
    CHECK_EQ_INT(mqim_session_start(&S), MQIM_OK);
    CHECK_EQ_INT(mqim_session_poll(&S, 0), MQIM_OK); /* opens, sends CONNECT */
    CHECK_EQ_INT(mqim_session_state(&S), MQIM_SESSION_CONNECTING);
    CHECK_EQ_INT(sent().type, MQIM_MQTT_CONNECT);
    inject(c, 4);
    CHECK_EQ_INT(mqim_session_poll(&S, 0), MQIM_OK); /* 4 bytes arrive in one piece */
    CHECK_EQ_INT(mqim_session_state(&S), MQIM_SESSION_CONNECTED);
}

static void test_transition_table(void)
{
    /* expected next state, or -1 for impossible */
    static const int want[MQIM_SESSION_STATE_COUNT][MQIM_SESSION_EVENT_COUNT] = {
        /* START RETRY OPENFAIL CONNACK_OK REFUSED LOST STOP */
        { 1, -1, -1, -1, -1, -1, 0 }, /* STOPPED */
        { -1, 2, 1, -1, -1, -1, 0 },  /* BACKOFF */
        { -1, -1, -1, 3, 1, 1, 0 },   /* CONNECTING */
        { -1, -1, -1, -1, -1, 1, 0 }, /* CONNECTED */
    };
    for (int st = 0; st < MQIM_SESSION_STATE_COUNT; st++) {
        for (int ev = 0; ev < MQIM_SESSION_EVENT_COUNT; ev++) {
            mqim_session_state_t next = MQIM_SESSION_STATE_COUNT;
            mqim_status_t r = mqim_session_next_state((mqim_session_state_t)st,
                                                      (mqim_session_event_t)ev, &next);
            if (want[st][ev] < 0) {
                CHECK_EQ_INT(r, MQIM_BAD_PARAMETER);
            } else {
                CHECK_EQ_INT(r, MQIM_OK);
                CHECK_EQ_INT(next, want[st][ev]);
            }
        }
    }
    CHECK_EQ_INT(mqim_session_next_state(MQIM_SESSION_STATE_COUNT, MQIM_SESSION_EV_STOP, NULL),
                 MQIM_BAD_PARAMETER);
}

static void test_connect_and_qos1(void)
{
    static const uint8_t puback[] = { 0x40, 2, 0, 1 };
    static const uint8_t inbound_q1[] = { 0x32, 8, 0, 1, 't', 0, 9, 'h', 'e', 'y' };
    mqim_mqtt_packet_t p;
    fresh(60);
    connect_ok(false);
    CHECK_EQ_INT(connected, 1);
    CHECK(!last_session_present);
    CHECK_EQ_INT(mqim_session_publish(&S, MQIM_STR("im/u/a/out/dm/b"), (const uint8_t *)"hi", 2, 1, false, 77),
                 MQIM_OK);
    p = sent();
    CHECK(p.type == MQIM_MQTT_PUBLISH && p.publish.qos == 1u && p.publish.packet_id == 1u &&
          !p.publish.dup);
    inject(puback, sizeof(puback));
    inject(inbound_q1, sizeof(inbound_q1));
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_INT(mqim_session_poll(&S, 0), MQIM_OK);
    }
    CHECK_EQ_INT(published, 1);
    CHECK_EQ_INT(last_key, 77);
    CHECK_EQ_INT(messages, 1);
    p = sent();
    CHECK(p.type == MQIM_MQTT_PUBACK && p.packet_id == 9u);
    /* subscribe picks an id not used by a publish in flight */
    CHECK_EQ_INT(mqim_session_publish(&S, MQIM_STR("x"), NULL, 0, 1, false, 78), MQIM_OK);
    (void)sent();
    S.next_sub_id = 2; /* the publish above took id 2 */
    CHECK_EQ_INT(mqim_session_subscribe(&S, MQIM_STR("im/u/a/in/#"), 1), MQIM_OK);
    p = sent();
    CHECK(p.type == MQIM_MQTT_SUBSCRIBE && p.packet_id == 3u);
    /* a clean stop sends DISCONNECT */
    mqim_session_stop(&S);
    CHECK_EQ_INT(sent().type, MQIM_MQTT_DISCONNECT);
    CHECK_EQ_INT(mqim_session_state(&S), MQIM_SESSION_STOPPED);
}

static void test_qos2_both_ways(void)
{
    static const uint8_t pubrec[] = { 0x50, 2, 0, 1 };
    static const uint8_t pubcomp[] = { 0x70, 2, 0, 1 };
    static const uint8_t in_q2[] = { 0x34, 6, 0, 1, 't', 0, 5, 'x' };
    static const uint8_t pubrel[] = { 0x62, 2, 0, 5 };
    mqim_mqtt_packet_t p;
    fresh(60);
    connect_ok(false);
    CHECK_EQ_INT(mqim_session_publish(&S, MQIM_STR("t"), (const uint8_t *)"q2", 2, 2, false, 5), MQIM_OK);
    CHECK_EQ_INT(sent().type, MQIM_MQTT_PUBLISH);
    inject(pubrec, 4);
    CHECK_EQ_INT(mqim_session_poll(&S, 0), MQIM_OK);
    p = sent();
    CHECK(p.type == MQIM_MQTT_PUBREL && p.packet_id == 1u);
    CHECK_EQ_INT(published, 0);
    inject(pubcomp, 4);
    CHECK_EQ_INT(mqim_session_poll(&S, 0), MQIM_OK);
    CHECK_EQ_INT(published, 1);
    /* incoming QoS 2, redelivered before PUBREL: delivered once, PUBREC twice */
    inject(in_q2, sizeof(in_q2));
    inject(in_q2, sizeof(in_q2));
    inject(pubrel, 4);
    for (int i = 0; i < 6; i++) {
        CHECK_EQ_INT(mqim_session_poll(&S, 0), MQIM_OK);
    }
    CHECK_EQ_INT(messages, 1);
    CHECK_EQ_INT(sent().type, MQIM_MQTT_PUBREC);
    CHECK_EQ_INT(sent().type, MQIM_MQTT_PUBREC);
    p = sent();
    CHECK(p.type == MQIM_MQTT_PUBCOMP && p.packet_id == 5u);
}

static void test_backpressure_and_resend(void)
{
    mqim_mqtt_packet_t p;
    uint16_t first_id = 0;
    fresh(60);
    connect_ok(false);
    for (uint32_t i = 0; i < MQIM_CFG_INFLIGHT_MAX; i++) {
        CHECK_EQ_INT(mqim_session_publish(&S, MQIM_STR("t"), (const uint8_t *)"m", 1, 1, false, 100u + i),
                     MQIM_OK);
        p = sent();
        if (i == 0u) {
            first_id = p.publish.packet_id;
        }
    }
    CHECK_EQ_INT(mqim_session_publish(&S, MQIM_STR("t"), (const uint8_t *)"m", 1, 1, false, 999),
                 MQIM_INFLIGHT_FULL);
    /* the link breaks; reconnect to a persistent session: resend in order, DUP, same ids */
    F.broken = 1;
    CHECK_EQ_INT(mqim_session_poll(&S, 0), MQIM_TRANSPORT_ERROR);
    CHECK_EQ_INT(mqim_session_state(&S), MQIM_SESSION_BACKOFF);
    CHECK_EQ_INT(disconnected, 1);
    CHECK_EQ_INT(mqim_session_poll(&S, 0), MQIM_OK); /* backoff not elapsed: nothing */
    CHECK_EQ_INT(F.opens, 1);
    F.clock += MQIM_CFG_BACKOFF_MIN_MS; /* jitter keeps it within [min/2, min] */
    F.out_off = F.out_len;
    CHECK_EQ_INT(mqim_session_poll(&S, 0), MQIM_OK);
    CHECK_EQ_INT(F.opens, 2);
    CHECK_EQ_INT(sent().type, MQIM_MQTT_CONNECT);
    {
        static const uint8_t connack_sp[] = { 0x20, 2, 1, 0 };
        inject(connack_sp, 4);
    }
    CHECK_EQ_INT(mqim_session_poll(&S, 0), MQIM_OK);
    CHECK(last_session_present);
    for (uint32_t i = 0; i < MQIM_CFG_INFLIGHT_MAX; i++) {
        p = sent();
        CHECK(p.type == MQIM_MQTT_PUBLISH && p.publish.dup && p.publish.packet_id == first_id + i);
        CHECK(p.publish.payload_len == 5u); /* the bytes came from get_publish */
    }
}

static void test_keepalive_and_dead_link(void)
{
    static const uint8_t pingresp[] = { 0xd0, 0 };
    fresh(10);
    connect_ok(false);
    F.clock += 9999;
    CHECK_EQ_INT(mqim_session_poll(&S, 0), MQIM_OK);
    CHECK_EQ_INT(sent().type, 0); /* not yet */
    F.clock += 1;
    CHECK_EQ_INT(mqim_session_poll(&S, 0), MQIM_OK);
    CHECK_EQ_INT(sent().type, MQIM_MQTT_PINGREQ);
    inject(pingresp, 2);
    CHECK_EQ_INT(mqim_session_poll(&S, 0), MQIM_OK);
    CHECK(!S.ping_outstanding);
    /* next ping gets no answer: the link is declared dead */
    F.clock += 10000;
    CHECK_EQ_INT(mqim_session_poll(&S, 0), MQIM_OK);
    CHECK_EQ_INT(sent().type, MQIM_MQTT_PINGREQ);
    F.clock += MQIM_CFG_PINGRESP_TIMEOUT_MS + 1u;
    /* (MQIM_TIMEOUT before issue 14: a dead link has its own reason now) */
    CHECK_EQ_INT(mqim_session_poll(&S, 0), MQIM_KEEPALIVE_LOST);
    CHECK_EQ_INT(mqim_session_state(&S), MQIM_SESSION_BACKOFF);
    CHECK_EQ_INT(last_reason, MQIM_KEEPALIVE_LOST);
    CHECK(F.closes >= 1);
}

static void test_refusals_and_garbage(void)
{
    static const uint8_t refused[] = { 0x20, 2, 0, 5 };
    static const uint8_t garbage[] = { 0x36, 2, 0, 0 }; /* PUBLISH QoS 3 */
    uint32_t delays[3];
    fresh(60);
    CHECK_EQ_INT(mqim_session_start(&S), MQIM_OK);
    CHECK_EQ_INT(mqim_session_start(&S), MQIM_BAD_PARAMETER);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(mqim_session_poll(&S, 0), MQIM_OK);
        inject(refused, 4);
        /* CONNACK 5 (MQIM_CONNACK_REFUSED for every code before issue 14) */
        CHECK_EQ_INT(mqim_session_poll(&S, 0), MQIM_CONNACK_NOT_AUTHORIZED);
        CHECK_EQ_INT(mqim_session_state(&S), MQIM_SESSION_BACKOFF);
        delays[i] = S.retry_at - F.clock;
        F.clock = S.retry_at;
    }
    /* exponential, each within [backoff/2, backoff] */
    CHECK(delays[0] >= MQIM_CFG_BACKOFF_MIN_MS / 2u && delays[0] <= MQIM_CFG_BACKOFF_MIN_MS);
    CHECK(delays[1] >= MQIM_CFG_BACKOFF_MIN_MS && delays[1] <= 2u * MQIM_CFG_BACKOFF_MIN_MS);
    CHECK(delays[2] >= 2u * MQIM_CFG_BACKOFF_MIN_MS && delays[2] <= 4u * MQIM_CFG_BACKOFF_MIN_MS);
    CHECK_EQ_INT(last_reason, MQIM_CONNACK_NOT_AUTHORIZED);
    /* open failing keeps backing off (a plain -1: an unreachable broker;
     * MQIM_TRANSPORT_ERROR before issue 14) */
    F.open_result = -1;
    CHECK_EQ_INT(mqim_session_poll(&S, 0), MQIM_BROKER_UNREACHABLE);
    CHECK_EQ_INT(mqim_session_state(&S), MQIM_SESSION_BACKOFF);
    /* a malformed packet from the broker takes the link down */
    fresh(60);
    connect_ok(false);
    inject(garbage, 4);
    CHECK_EQ_INT(mqim_session_poll(&S, 0), MQIM_MQTT_PROTOCOL);
    CHECK_EQ_INT(mqim_session_state(&S), MQIM_SESSION_BACKOFF);
    /* no CONNACK in time */
    fresh(60);
    CHECK_EQ_INT(mqim_session_start(&S), MQIM_OK);
    CHECK_EQ_INT(mqim_session_poll(&S, 0), MQIM_OK);
    F.clock += MQIM_CFG_PINGRESP_TIMEOUT_MS + 1u;
    CHECK_EQ_INT(mqim_session_poll(&S, 0), MQIM_TIMEOUT);
    /* publishing when not connected is refused */
    CHECK_EQ_INT(mqim_session_publish(&S, MQIM_STR("t"), NULL, 0, 0, false, 0), MQIM_BAD_PARAMETER);
}

/* A PUBLISH larger than the receive buffer: its head reaches the
 * application marked truncated, it is acknowledged, the rest is skipped,
 * and the link and the next packet are unharmed. Any other oversized
 * packet takes the link down. */
static void test_oversized_publish(void)
{
    enum { PAYLOAD = 2900, RL = 2 + 1 + 2 + PAYLOAD };
    static uint8_t big[3 + RL];
    static const uint8_t small_q1[] = { 0x32, 8, 0, 1, 't', 0, 10, 'o', 'k', '!' };
    static const uint8_t big_suback[] = { 0x90, 0xd9, 0x16 }; /* remaining length 2905 */
    mqim_mqtt_packet_t p;
    size_t head = MQIM_CFG_RX_BUFFER_SIZE - 3u - 5u;
    bool same = true;
    fresh(60);
    connect_ok(false);
    big[0] = 0x32; /* PUBLISH QoS 1 */
    big[1] = (uint8_t)(0x80u | (RL % 128));
    big[2] = (uint8_t)(RL / 128);
    big[3] = 0;
    big[4] = 1;
    big[5] = 't';
    big[6] = 0;
    big[7] = 7;
    for (size_t i = 0; i < PAYLOAD; i++) {
        big[8 + i] = (uint8_t)(i % 251u);
    }
    inject(big, sizeof(big));
    inject(small_q1, sizeof(small_q1));
    for (int i = 0; i < 2000 && messages < 2; i++) {
        CHECK_EQ_INT(mqim_session_poll(&S, 0), MQIM_OK);
        if (messages == 1 && last_pub.truncated && i < 1000) {
            CHECK_EQ_INT(last_pub.payload_len, head);
            CHECK_EQ_INT(last_pub.payload_full_len, PAYLOAD);
            CHECK_EQ_INT(last_pub.packet_id, 7);
            for (size_t k = 0; k < head; k++) {
                same = same && last_payload[k] == (uint8_t)(k % 251u);
            }
            i = 1000; /* checked once */
        }
    }
    CHECK(same);
    CHECK_EQ_INT(messages, 2);
    CHECK(!last_pub.truncated && last_pub.payload_len == 3u && memcmp(last_payload, "ok!", 3) == 0);
    CHECK_EQ_INT(mqim_session_state(&S), MQIM_SESSION_CONNECTED);
    CHECK_EQ_INT(disconnected, 0);
    p = sent();
    CHECK(p.type == MQIM_MQTT_PUBACK && p.packet_id == 7u);
    p = sent();
    CHECK(p.type == MQIM_MQTT_PUBACK && p.packet_id == 10u);
    /* an oversized SUBACK has no head worth reading: the stream is lost */
    inject(big_suback, sizeof(big_suback));
    inject(big + 3, MQIM_CFG_RX_BUFFER_SIZE);
    for (int i = 0; i < 1000 && mqim_session_state(&S) == MQIM_SESSION_CONNECTED; i++) {
        (void)mqim_session_poll(&S, 0);
    }
    CHECK_EQ_INT(mqim_session_state(&S), MQIM_SESSION_BACKOFF);
    CHECK_EQ_INT(last_reason, MQIM_MQTT_TOO_LARGE);
}

/* A publish goes out as its head from the session's small buffer and its
 * payload from the caller's memory: a packet several times larger than
 * that buffer arrives whole and in order; one above the transmit size is
 * refused before it takes a packet id. */
static void test_publish_gather(void)
{
    enum { PAYLOAD = MQIM_CFG_TX_BUFFER_SIZE - 32 };
    static uint8_t payload[MQIM_CFG_TX_BUFFER_SIZE];
    mqim_mqtt_packet_t p;
    bool same = true;
    CHECK(sizeof(S.tx) < PAYLOAD); /* it cannot have been copied there */
    for (size_t i = 0; i < sizeof(payload); i++) {
        payload[i] = (uint8_t)(i % 249u);
    }
    fresh(60);
    connect_ok(false);
    CHECK_EQ_INT(mqim_session_publish(&S, MQIM_STR("im/u/a/out/dm/b"), payload, PAYLOAD, 1, false, 5), MQIM_OK);
    p = sent();
    CHECK(p.type == MQIM_MQTT_PUBLISH && p.publish.qos == 1u && p.publish.packet_id == 1u);
    CHECK_EQ_INT(p.publish.payload_len, PAYLOAD);
    CHECK(mqim_str_eq(p.publish.topic, MQIM_STR("im/u/a/out/dm/b")));
    for (size_t i = 0; i < PAYLOAD && p.publish.payload != NULL; i++) {
        same = same && p.publish.payload[i] == payload[i];
    }
    CHECK(same && p.publish.payload != NULL);
    CHECK_EQ_INT(mqim_inflight_count(&S.inflight), 1);
    /* the whole packet over MQIM_CFG_TX_BUFFER_SIZE: refused, no id taken, nothing sent */
    CHECK_EQ_INT(mqim_session_publish(&S, MQIM_STR("t"), payload, MQIM_CFG_TX_BUFFER_SIZE, 1, false, 6),
                 MQIM_BUFFER_TOO_SMALL);
    CHECK_EQ_INT(mqim_inflight_count(&S.inflight), 1);
    CHECK_EQ_INT(sent().type, 0);
}

/* What device_config.h promises for MQIM_CFG_TX_CONTROL_SIZE: the
 * client's CONNECT with the longest root, user and device names (client id
 * {user}.{device}, will on {root}/u/{user}/out/status/{device} saying
 * offline with the largest epoch) fits with a 275-byte password, not 276. */
static void test_connect_fits_the_control_buffer(void)
{
    static char text[512];
    static const char will[] = "{\"state\":\"offline\",\"epoch\":4294967295}";
    mqim_mqtt_connect_t c;
    size_t need = 0;
    memset(text, 'a', sizeof(text));
    memset(&c, 0, sizeof(c));
    c.client_id = (mqim_str_t){ text, MQIM_USER_NAME_MAX + 1u + MQIM_DEVICE_NAME_MAX };
    c.username = (mqim_str_t){ text, MQIM_USER_NAME_MAX };
    c.has_username = true;
    c.will_topic = (mqim_str_t){ text, MQIM_ROOT_MAX + 3u + MQIM_USER_NAME_MAX + 12u + MQIM_DEVICE_NAME_MAX };
    c.will_payload = (mqim_str_t){ will, sizeof(will) - 1u };
    c.has_will = true;
    c.will_qos = 1;
    c.will_retain = true;
    c.keep_alive_s = 60;
    c.clean_session = true;
    c.has_password = true;
    c.password = (mqim_str_t){ text, 275 };
    CHECK_EQ_INT(mqim_mqtt_encode_connect(&c, NULL, 0, &need), MQIM_BUFFER_TOO_SMALL);
    CHECK(need <= MQIM_SESSION_TX_SIZE);
    c.password.len = 276;
    CHECK_EQ_INT(mqim_mqtt_encode_connect(&c, NULL, 0, &need), MQIM_BUFFER_TOO_SMALL);
    CHECK(need > MQIM_SESSION_TX_SIZE);
}

/* The five MQTT 3.1.1 refusals map one to one to five statuses; a code
 * 3.1.1 does not define is a protocol error (the decoder refuses it). */
static void test_connack_codes_one_to_one(void)
{
    static const mqim_status_t want[7] = { MQIM_OK,
                                           MQIM_CONNACK_PROTOCOL_VERSION,
                                           MQIM_CONNACK_IDENTIFIER_REJECTED,
                                           MQIM_CONNACK_SERVER_UNAVAILABLE,
                                           MQIM_CONNACK_BAD_CREDENTIALS,
                                           MQIM_CONNACK_NOT_AUTHORIZED,
                                           MQIM_MQTT_PROTOCOL };
    for (uint8_t code = 1; code <= 6u; code++) {
        uint8_t connack[4] = { 0x20, 2, 0, 0 };
        connack[3] = code;
        fresh(60);
        CHECK_EQ_INT(mqim_session_start(&S), MQIM_OK);
        CHECK_EQ_INT(mqim_session_poll(&S, 0), MQIM_OK);
        inject(connack, 4);
        CHECK_EQ_INT(mqim_session_poll(&S, 0), want[code]);
        CHECK_EQ_INT(last_reason, want[code]);
        CHECK_EQ_INT(S.last_error, want[code]);
        CHECK_EQ_INT(S.failures, 1);
        CHECK_EQ_INT(mqim_session_state(&S), MQIM_SESSION_BACKOFF);
        for (uint8_t other = 1; other < code; other++) {
            CHECK(want[other] != want[code]);
        }
    }
}

/* The transport's open says why it failed; the session passes it on. */
static void test_open_failure_reasons(void)
{
    static const struct {
        int32_t open_result;
        mqim_status_t want;
    } cases[] = { { -(int32_t)MQIM_BROKER_UNREACHABLE, MQIM_BROKER_UNREACHABLE },
                  { -(int32_t)MQIM_TLS_VERIFY_FAILED, MQIM_TLS_VERIFY_FAILED },
                  { -(int32_t)MQIM_TLS_HANDSHAKE_FAILED, MQIM_TLS_HANDSHAKE_FAILED },
                  { -(int32_t)MQIM_TIMEOUT, MQIM_BROKER_UNREACHABLE }, /* not a reason a transport gives */
                  { INT32_MIN, MQIM_BROKER_UNREACHABLE } };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fresh(60);
        F.open_result = cases[i].open_result;
        CHECK_EQ_INT(mqim_session_start(&S), MQIM_OK);
        CHECK_EQ_INT(mqim_session_poll(&S, 0), cases[i].want);
        CHECK_EQ_INT(last_reason, cases[i].want);
        CHECK_EQ_INT(disconnected, 1);
        CHECK_EQ_INT(mqim_session_state(&S), MQIM_SESSION_BACKOFF);
    }
}

/* poll blocks until something is due, never spins: while backing off it
 * sleeps through the sleep port until the retry; with a connection open it
 * waits in recv no longer than the next timer. next_deadline says when. */
static void test_sleeps_until_the_next_deadline(void)
{
    static const uint8_t connack[] = { 0x20, 2, 0, 0 };
    uint32_t due;
    fresh(10);
    S.cfg.sleep = f_sleep;
    S.cfg.sleep_ctx = &F;
    CHECK_EQ_INT(mqim_session_next_deadline(&S), MQIM_NO_DEADLINE); /* stopped */
    F.open_result = -(int32_t)MQIM_BROKER_UNREACHABLE;
    CHECK_EQ_INT(mqim_session_start(&S), MQIM_OK);
    CHECK_EQ_INT(mqim_session_next_deadline(&S), 0);
    CHECK_EQ_INT(mqim_session_poll(&S, 0), MQIM_BROKER_UNREACHABLE);
    due = mqim_session_next_deadline(&S);
    CHECK(due >= MQIM_CFG_BACKOFF_MIN_MS / 2u && due <= MQIM_CFG_BACKOFF_MIN_MS);
    /* a short timeout: sleeps all of it, no attempt yet */
    CHECK_EQ_INT(mqim_session_poll(&S, 10), MQIM_OK);
    CHECK_EQ_INT(F.slept, 10);
    CHECK_EQ_INT(F.opens, 1);
    CHECK_EQ_INT(mqim_session_next_deadline(&S), due - 10u);
    /* a long one: sleeps exactly until the retry, then tries (one call) */
    F.open_result = 0;
    CHECK_EQ_INT(mqim_session_poll(&S, 600000), MQIM_OK);
    CHECK_EQ_INT(F.slept, due);
    CHECK_EQ_INT(F.sleeps, 2);
    CHECK_EQ_INT(F.opens, 2);
    CHECK_EQ_INT(mqim_session_state(&S), MQIM_SESSION_CONNECTING);
    /* waiting for the CONNACK: recv waits no longer than its timeout */
    CHECK_EQ_INT(mqim_session_next_deadline(&S), MQIM_CFG_PINGRESP_TIMEOUT_MS + 1u);
    CHECK_EQ_INT(mqim_session_poll(&S, 600000), MQIM_OK);
    CHECK_EQ_INT(F.recv_timeout, MQIM_CFG_PINGRESP_TIMEOUT_MS + 1u);
    inject(connack, 4);
    CHECK_EQ_INT(mqim_session_poll(&S, 600000), MQIM_OK);
    CHECK_EQ_INT(mqim_session_state(&S), MQIM_SESSION_CONNECTED);
    /* connected: until the keep-alive ping (10 s after the last send) */
    CHECK_EQ_INT(mqim_session_next_deadline(&S), 10000);
    F.clock += 4000;
    CHECK_EQ_INT(mqim_session_poll(&S, 600000), MQIM_OK);
    CHECK_EQ_INT(F.recv_timeout, 6000);
    CHECK_EQ_INT(mqim_session_poll(&S, 50), MQIM_OK);
    CHECK_EQ_INT(F.recv_timeout, 50); /* the caller's timeout when sooner */
    /* ping out: until its answer is overdue */
    F.clock += 6000;
    CHECK_EQ_INT(mqim_session_poll(&S, 600000), MQIM_OK);
    CHECK(S.ping_outstanding);
    CHECK_EQ_INT(F.recv_timeout, MQIM_CFG_PINGRESP_TIMEOUT_MS + 1u);
    CHECK_EQ_INT(F.sleeps, 2); /* never slept with a connection open */
    /* without a sleep port, a poll while backing off returns at once */
    fresh(10);
    F.open_result = -1;
    CHECK_EQ_INT(mqim_session_start(&S), MQIM_OK);
    CHECK_EQ_INT(mqim_session_poll(&S, 0), MQIM_BROKER_UNREACHABLE);
    CHECK_EQ_INT(mqim_session_poll(&S, 600000), MQIM_OK);
    CHECK_EQ_INT(F.opens, 1);
    CHECK_EQ_INT(F.clock, 1000);
}

int main(void)
{
    test_transition_table();
    test_connect_and_qos1();
    test_qos2_both_ways();
    test_backpressure_and_resend();
    test_keepalive_and_dead_link();
    test_refusals_and_garbage();
    test_oversized_publish();
    test_publish_gather();
    test_connect_fits_the_control_buffer();
    test_connack_codes_one_to_one();
    test_open_failure_reasons();
    test_sleeps_until_the_next_deadline();
    return CHECK_REPORT();
}
