/* The IM layer (client.h) against a transport fake: the broker's side is
 * scripted packet by packet, what the device sends is captured and decoded.
 * Default (microcontroller) options, RAM outbox, RAM state. */
#include <stdio.h>
#include <string.h>

#include "mqim/client.h"
#include "mqim_check.h"

/* ---- the fake broker link ---- */
static uint8_t in_buf[16384];
static size_t in_len, in_off;
static uint8_t out_buf[65536];
static size_t out_len, out_off;
static uint32_t clock_ms = 1000;
static size_t recv_chunk = 100; /* bytes per recv: packets arrive in pieces */

static int32_t t_send(void *ctx, const uint8_t *buf, size_t len, uint32_t timeout_ms)
{
    (void)ctx;
    (void)timeout_ms;
    if (out_len + len > sizeof(out_buf)) {
        return -1;
    }
    memcpy(out_buf + out_len, buf, len);
    out_len += len;
    return (int32_t)len;
}

static int32_t t_recv(void *ctx, uint8_t *buf, size_t cap, uint32_t timeout_ms)
{
    size_t n = in_len - in_off;
    (void)ctx;
    (void)timeout_ms;
    n = n < cap ? n : cap;
    n = n < recv_chunk ? n : recv_chunk;
    memcpy(buf, in_buf + in_off, n);
    in_off += n;
    return (int32_t)n;
}

static int32_t t_open(void *ctx, uint32_t timeout_ms)
{
    (void)ctx;
    (void)timeout_ms;
    return 0;
}

static void t_close(void *ctx)
{
    (void)ctx;
}

static uint32_t t_clock(void *ctx)
{
    (void)ctx;
    return clock_ms;
}

static int32_t t_entropy(void *ctx, uint8_t *buf, size_t len)
{
    static uint8_t n;
    (void)ctx;
    for (size_t i = 0; i < len; i++) {
        buf[i] = n++;
    }
    return 0;
}

static mqim_device_state_t saved;
static int saves;

static mqim_status_t st_load(void *ctx, mqim_device_state_t *s)
{
    (void)ctx;
    *s = saved;
    return MQIM_OK;
}

static mqim_status_t st_save(void *ctx, const mqim_device_state_t *s)
{
    (void)ctx;
    saved = *s;
    saves++;
    return MQIM_OK;
}

static const mqim_transport_ops_t transport = { t_send, t_recv, t_open, t_close };
static const mqim_state_ops_t state_ops = { st_load, st_save };

/* ---- what the application saw ---- */
static char seen[16][64];
static unsigned nseen;
static mqim_ack_t last_ack;
static char last_ack_id[64]; /* ack->id lives only during the callback */
static char last_reason[128];
static unsigned acks, oversized;
static size_t oversized_size;
static uint64_t oversized_seq;

static void on_message(void *ctx, const mqim_envelope_t *env)
{
    (void)ctx;
    if (nseen < 16u) {
        snprintf(seen[nseen++], sizeof(seen[0]), "%llu %.*s: %.*s", (unsigned long long)env->seq,
                 (int)env->from.len, env->from.ptr, (int)env->body.len, env->body.ptr);
    }
}

static void on_ack(void *ctx, const mqim_ack_t *ack)
{
    (void)ctx;
    acks++;
    last_ack = *ack;
    snprintf(last_ack_id, sizeof(last_ack_id), "%.*s", (int)ack->id.len, ack->id.ptr);
    last_ack.id = mqim_str_from_cstr(last_ack_id);
    snprintf(last_reason, sizeof(last_reason), "%.*s", (int)ack->reason.len, ack->reason.ptr);
}

static void on_oversized(void *ctx, const mqim_envelope_t *env, size_t size)
{
    (void)ctx;
    oversized++;
    oversized_size = size;
    oversized_seq = env->seq;
}

static mqim_client_t client;
static mqim_ram_outbox_t outbox;
static uint8_t outbox_mem[8192];

static void fresh(void)
{
    mqim_client_config_t cfg;
    in_len = in_off = out_len = out_off = 0;
    memset(&saved, 0, sizeof(saved));
    nseen = acks = oversized = 0;
    CHECK_EQ_INT(mqim_ram_outbox_init(&outbox, outbox_mem, sizeof(outbox_mem)), MQIM_OK);
    memset(&cfg, 0, sizeof(cfg));
    cfg.root = MQIM_STR("im");
    cfg.user = MQIM_STR("bob");
    cfg.device = MQIM_STR("mcu");
    cfg.password = MQIM_STR("pw");
    cfg.transport = &transport;
    cfg.clock = t_clock;
    cfg.entropy = t_entropy;
    cfg.outbox = &mqim_ram_outbox_ops;
    cfg.outbox_ctx = &outbox;
    cfg.state = &state_ops;
    cfg.cb.on_message = on_message;
    cfg.cb.on_ack = on_ack;
    cfg.cb.on_oversized = on_oversized;
    CHECK_EQ_INT(mqim_client_init(&client, &cfg), MQIM_OK);
}

/* The broker sends a PUBLISH (QoS 1, packet id pid) to the device. */
static void inject_publish(const char *topic, const char *payload, size_t len, uint16_t pid)
{
    mqim_mqtt_publish_t p;
    size_t n = 0;
    memset(&p, 0, sizeof(p));
    p.topic = mqim_str_from_cstr(topic);
    p.payload = (const uint8_t *)payload;
    p.payload_len = len;
    p.qos = 1;
    p.packet_id = pid;
    CHECK_EQ_INT(mqim_mqtt_encode_publish(&p, in_buf + in_len, sizeof(in_buf) - in_len, &n), MQIM_OK);
    in_len += n;
}

static void inject_raw(const uint8_t *b, size_t n)
{
    memcpy(in_buf + in_len, b, n);
    in_len += n;
}

static void pump(int polls)
{
    for (int i = 0; i < polls; i++) {
        (void)mqim_client_poll(&client, 0);
    }
}

/* The next packet the device sent: type, and for PUBLISH topic + payload. */
typedef struct sent_pkt {
    int type;
    char topic[128];
    char payload[512];
    uint16_t packet_id;
    uint8_t flags;
} sent_pkt_t;

static bool next_sent(sent_pkt_t *s)
{
    size_t total = 0;
    mqim_mqtt_packet_t p;
    memset(s, 0, sizeof(*s));
    if (out_off >= out_len || mqim_mqtt_frame(out_buf + out_off, out_len - out_off, sizeof(out_buf), &total) != MQIM_OK) {
        return false;
    }
    s->type = out_buf[out_off] >> 4;
    s->flags = (uint8_t)(out_buf[out_off] & 15u);
    if (s->type == MQIM_MQTT_PUBLISH && mqim_mqtt_decode(out_buf + out_off, total, &p) == MQIM_OK) {
        snprintf(s->topic, sizeof(s->topic), "%.*s", (int)p.publish.topic.len, p.publish.topic.ptr);
        snprintf(s->payload, sizeof(s->payload), "%.*s", (int)p.publish.payload_len,
                 (const char *)p.publish.payload);
        s->packet_id = p.publish.packet_id;
    }
    out_off += total;
    return true;
}

/* Skip to the next PUBLISH on topic; false when there is none. */
static bool next_publish_on(const char *topic, sent_pkt_t *s)
{
    while (next_sent(s)) {
        if (s->type == MQIM_MQTT_PUBLISH && strcmp(s->topic, topic) == 0) {
            return true;
        }
    }
    return false;
}

static unsigned outbox_count(void)
{
    uint32_t key = 0;
    size_t len = 0;
    unsigned n = 0;
    uint8_t buf[8];
    mqim_status_t st;
    while ((st = mqim_ram_outbox_peek(&outbox, key, &key, buf, sizeof(buf), &len)) == MQIM_OK ||
           st == MQIM_BUFFER_TOO_SMALL) {
        n++;
    }
    return n;
}

/* {root}/gateway/status from the broker: retained (a new subscription's
 * copy) or live (the gateway published it just now). */
static void gateway_status(const char *payload, bool retain, uint16_t pid)
{
    mqim_mqtt_publish_t p;
    size_t n = 0;
    memset(&p, 0, sizeof(p));
    p.topic = MQIM_STR("im/gateway/status");
    p.payload = (const uint8_t *)payload;
    p.payload_len = strlen(payload);
    p.qos = 1;
    p.packet_id = pid;
    p.retain = retain;
    CHECK_EQ_INT(mqim_mqtt_encode_publish(&p, in_buf + in_len, sizeof(in_buf) - in_len, &n), MQIM_OK);
    in_len += n;
    pump(2);
}

static void connect(void)
{
    static const uint8_t connack[] = { 0x20, 2, 0, 0 };
    sent_pkt_t s;
    CHECK_EQ_INT(mqim_client_start(&client), MQIM_OK);
    pump(1);
    CHECK(next_sent(&s) && s.type == MQIM_MQTT_CONNECT);
    inject_raw(connack, sizeof(connack));
    pump(2);
    CHECK(mqim_client_connected(&client));
    gateway_status("{\"state\":\"online\",\"ts\":1}", true, 60000); /* the retained copy */
}

/* Birth, will and the first sync: what a device says when it connects. */
static void test_connect_birth_and_sync(void)
{
    sent_pkt_t s;
    mqim_client_config_t cfg;
    fresh();
    cfg = client.cfg;
    saved.epoch = 6; /* as if it ran before */
    CHECK_EQ_INT(mqim_client_init(&client, &cfg), MQIM_OK);
    CHECK_EQ_INT(saved.epoch, 7); /* saved before use */
    connect();
    CHECK(next_sent(&s) && s.type == MQIM_MQTT_SUBSCRIBE);
    CHECK(next_publish_on("im/u/bob/out/status/mcu", &s));
    CHECK_EQ_STR(s.payload, strlen(s.payload), "{\"state\":\"online\",\"epoch\":7}");
    CHECK((s.flags & 1u) == 1u); /* retained */
    CHECK(next_publish_on("im/u/bob/out/ctl", &s));
    CHECK_EQ_STR(s.payload, strlen(s.payload), "{\"op\":\"sync\",\"after\":0}");
    /* a clean stop says offline itself (the will is discarded) */
    mqim_client_stop(&client);
    CHECK(next_publish_on("im/u/bob/out/status/mcu", &s));
    CHECK_EQ_STR(s.payload, strlen(s.payload), "{\"state\":\"offline\",\"epoch\":7}");
    CHECK(next_sent(&s) && s.type == MQIM_MQTT_DISCONNECT);
}

/* The outbox entry lives until the gateway confirms it, not the broker's
 * PUBACK: by default with the echo on in/msg (from me, my id, my seq), or a
 * `sent` ack on in/ack (a sender that asked for one). */
static void test_send_until_confirmed(void)
{
    static const uint8_t puback[] = { 0x40, 2, 0, 1 };
    sent_pkt_t s;
    uint32_t key = 0;
    char ack[160], echo[200], first_id[40];
    fresh();
    CHECK_EQ_INT(mqim_client_send(&client, MQIM_STR("alice"), MQIM_STR("hi \"there\""), &key), MQIM_OK);
    CHECK_EQ_INT(outbox_count(), 1);
    connect();
    CHECK(next_publish_on("im/u/bob/out/dm/alice", &s));
    CHECK(strstr(s.payload, "\"to\":\"alice\"") != NULL);
    CHECK(strstr(s.payload, "\"body\":\"hi \\\"there\\\"\"") != NULL);
    inject_raw(puback, sizeof(puback));
    pump(2);
    CHECK_EQ_INT(outbox_count(), 1); /* the broker has it; the gateway may not */
    snprintf(first_id, sizeof(first_id), "%.32s", strstr(s.payload, "\"id\":\"") + 6);
    /* an echo of my other device's message: shown, confirms nothing here */
    snprintf(echo, sizeof(echo),
             "{\"id\":\"other-device-1\",\"seq\":1,\"from\":\"bob\",\"device\":\"tab\",\"to\":\"alice\",\"ts\":1,\"body\":\"x\"}");
    inject_publish("im/u/bob/in/msg", echo, strlen(echo), 1);
    pump(3);
    CHECK_EQ_INT(nseen, 1);
    CHECK_EQ_INT(acks, 0);
    CHECK_EQ_INT(outbox_count(), 1);
    /* the echo of this message is its confirmation: the entry goes, on_ack(SENT) */
    snprintf(echo, sizeof(echo),
             "{\"id\":\"%.32s\",\"seq\":2,\"from\":\"bob\",\"device\":\"mcu\",\"to\":\"alice\",\"ts\":1,\"body\":\"hi\"}",
             first_id);
    inject_publish("im/u/bob/in/msg", echo, strlen(echo), 2);
    pump(3);
    CHECK_EQ_INT(outbox_count(), 0);
    CHECK_EQ_INT(nseen, 2); /* the echo is still a message of the conversation */
    CHECK_EQ_INT(acks, 1);
    CHECK(last_ack.status == MQIM_ACK_SENT && last_ack.seq == 2u);
    CHECK_EQ_STR(last_ack.id.ptr, last_ack.id.len, first_id);
    CHECK(!next_publish_on("im/u/bob/out/receipt", &s)); /* no receipt for my own echoes */
    /* the same echo again (a retry confirmed twice): nothing more */
    inject_publish("im/u/bob/in/msg", echo, strlen(echo), 3);
    pump(3);
    CHECK_EQ_INT(nseen, 2);
    CHECK_EQ_INT(acks, 1);
    /* a `sent` ack (a sender that asked for one) confirms as before */
    CHECK_EQ_INT(mqim_client_send(&client, MQIM_STR("alice"), MQIM_STR("acked"), &key), MQIM_OK);
    pump(2);
    CHECK(next_publish_on("im/u/bob/out/dm/alice", &s));
    {
        const char *id = strstr(s.payload, "\"id\":\"") + 6;
        snprintf(ack, sizeof(ack), "{\"status\":\"sent\",\"id\":\"%.32s\",\"seq\":5,\"ts\":1}", id);
    }
    inject_publish("im/u/bob/in/ack", ack, strlen(ack), 4);
    pump(3);
    CHECK_EQ_INT(outbox_count(), 0);
    CHECK_EQ_INT(acks, 2);
    CHECK(last_ack.status == MQIM_ACK_SENT && last_ack.seq == 5u);
    /* a retried message's echo again, with a seq this device has seen
     * (it lost the first one): still its confirmation */
    CHECK_EQ_INT(mqim_client_send(&client, MQIM_STR("alice"), MQIM_STR("retried"), &key), MQIM_OK);
    pump(2);
    CHECK(next_publish_on("im/u/bob/out/dm/alice", &s));
    snprintf(echo, sizeof(echo),
             "{\"id\":\"%.32s\",\"seq\":1,\"from\":\"bob\",\"to\":\"alice\",\"ts\":1,\"body\":\"retried\"}",
             strstr(s.payload, "\"id\":\"") + 6);
    inject_publish("im/u/bob/in/msg", echo, strlen(echo), 5);
    pump(3);
    CHECK_EQ_INT(outbox_count(), 0);
    CHECK_EQ_INT(acks, 3);
    CHECK(last_ack.status == MQIM_ACK_SENT && last_ack.seq == 1u);
    CHECK_EQ_INT(nseen, 2); /* seen before: not shown again */
    /* a rejection: reason unescaped, the entry is gone too */
    CHECK_EQ_INT(mqim_client_send(&client, MQIM_STR("nobody"), MQIM_STR("x"), &key), MQIM_OK);
    pump(2);
    CHECK(next_publish_on("im/u/bob/out/dm/nobody", &s));
    {
        const char *id = strstr(s.payload, "\"id\":\"") + 6;
        snprintf(ack, sizeof(ack),
                 "{\"status\":\"rejected\",\"id\":\"%.32s\",\"code\":\"unknown_peer\",\"reason\":\"no such user \\u00e9\"}",
                 id);
    }
    inject_publish("im/u/bob/in/ack", ack, strlen(ack), 2);
    pump(3);
    CHECK(last_ack.status == MQIM_ACK_REJECTED);
    CHECK_EQ_STR(last_reason, strlen(last_reason), "no such user \xc3\xa9");
    CHECK_EQ_INT(outbox_count(), 0);
    /* sizes: a message that could never leave the transmit buffer is refused now */
    {
        static char big[MQIM_CFG_TX_BUFFER_SIZE];
        memset(big, 'y', sizeof(big));
        CHECK_EQ_INT(mqim_client_send(&client, MQIM_STR("alice"), (mqim_str_t){ big, 2000 }, &key),
                     MQIM_PAYLOAD_TOO_LARGE);
        CHECK_EQ_INT(mqim_client_send(&client, MQIM_STR("alice"), (mqim_str_t){ big, 1800 }, &key), MQIM_OK);
        CHECK_EQ_INT(mqim_client_send(&client, MQIM_STR("alice"), MQIM_STR(""), &key), MQIM_BODY_EMPTY);
        CHECK_EQ_INT(mqim_client_send(&client, MQIM_STR("a b"), MQIM_STR("x"), &key), MQIM_NAME_BAD_CHAR);
        CHECK_EQ_INT(mqim_client_send(&client, MQIM_STR("alice"), (mqim_str_t){ "\xff", 1 }, &key),
                     MQIM_UTF8_INVALID);
    }
}

/* Inbound: once each, in seq order; a gap asks for a sync instead. */
static void test_inbound_order_and_receipts(void)
{
    static const char *const m1 = "{\"id\":\"a1\",\"seq\":1,\"from\":\"alice\",\"to\":\"bob\",\"type\":\"text\",\"body\":\"one\"}";
    static const char *const m2 = "{\"id\":\"a2\",\"seq\":2,\"from\":\"alice\",\"to\":\"bob\",\"type\":\"text\",\"body\":\"two\"}";
    static const char *const m4 = "{\"id\":\"a4\",\"seq\":4,\"from\":\"alice\",\"to\":\"bob\",\"type\":\"text\",\"body\":\"four\"}";
    sent_pkt_t s;
    fresh();
    connect();
    inject_publish("im/u/bob/in/msg", m1, strlen(m1), 1);
    inject_publish("im/u/bob/in/msg", m1, strlen(m1), 2); /* a redelivery */
    inject_publish("im/u/bob/in/msg", m2, strlen(m2), 3);
    inject_publish("im/u/bob/in/msg", m4, strlen(m4), 4); /* 3 is missing */
    recv_chunk = sizeof(in_buf); /* a burst in one read: one receipt for both */
    pump(10);
    recv_chunk = 100;
    CHECK_EQ_INT(nseen, 2);
    CHECK_EQ_STR(seen[0], strlen(seen[0]), "1 alice: one");
    CHECK_EQ_STR(seen[1], strlen(seen[1]), "2 alice: two");
    CHECK(saved.last_seq == 2u);
    CHECK(next_publish_on("im/u/bob/out/ctl", &s)); /* the first sync, at connect */
    CHECK(next_publish_on("im/u/bob/out/receipt", &s));
    CHECK_EQ_STR(s.payload, strlen(s.payload), "{\"status\":\"delivered\",\"seqs\":[1,2],\"device\":\"mcu\"}");
    /* the gap's sync waits for the pending one; its answer asks again */
    {
        const char *res = "{\"op\":\"sync\",\"complete\":true,\"first_seq\":1}";
        inject_publish("im/u/bob/in/res", res, strlen(res), 5);
        inject_publish("im/u/bob/in/msg", m4, strlen(m4), 6);
        pump(10);
        CHECK(next_publish_on("im/u/bob/out/ctl", &s));
        CHECK_EQ_STR(s.payload, strlen(s.payload), "{\"op\":\"sync\",\"after\":2}");
        CHECK_EQ_INT(nseen, 2);
    }
    CHECK_EQ_INT(mqim_client_last_seq(&client), 2);
}

/* A message larger than the receive buffer: on_oversized with the head's
 * fields, the seq consumed, no delivered receipt; the next one is normal. */
static void test_oversized_message(void)
{
    static char big[3000];
    static const char *const m2 = "{\"id\":\"b2\",\"seq\":2,\"from\":\"alice\",\"type\":\"text\",\"body\":\"after\"}";
    int n;
    sent_pkt_t s;
    fresh();
    connect();
    n = snprintf(big, sizeof(big), "{\"id\":\"b1\",\"seq\":1,\"from\":\"alice\",\"to\":\"bob\",\"type\":\"text\",\"body\":\"");
    memset(big + n, 'z', sizeof(big) - (size_t)n - 2u);
    memcpy(big + sizeof(big) - 2u, "\"}", 2);
    inject_publish("im/u/bob/in/msg", big, sizeof(big), 1);
    inject_publish("im/u/bob/in/msg", m2, strlen(m2), 2);
    pump(60);
    CHECK_EQ_INT(oversized, 1);
    CHECK_EQ_INT(oversized_size, sizeof(big));
    CHECK(oversized_seq == 1u);
    CHECK_EQ_INT(nseen, 1);
    CHECK_EQ_STR(seen[0], strlen(seen[0]), "2 alice: after");
    CHECK(mqim_client_connected(&client));
    /* issue 14: the sender hears the text never reached the user */
    CHECK(next_publish_on("im/u/bob/out/receipt", &s));
    CHECK_EQ_STR(s.payload, strlen(s.payload),
                 "{\"status\":\"refused\",\"seqs\":[1],\"code\":\"payload_too_large\",\"device\":\"mcu\"}");
    CHECK(next_publish_on("im/u/bob/out/receipt", &s));
    CHECK_EQ_STR(s.payload, strlen(s.payload), "{\"status\":\"delivered\",\"seqs\":[2],\"device\":\"mcu\"}");
}

/* A message the application could not show (an E2E message that does not
 * open): mqim_client_refuse from on_message replaces its `delivered`. */
static int refuse_seq;
static void on_message_refusing(void *ctx, const mqim_envelope_t *env)
{
    (void)ctx;
    if ((int)env->seq == refuse_seq) {
        CHECK_EQ_INT(mqim_client_refuse(&client, env->seq, MQIM_STR("e2e_auth_failed")), MQIM_OK);
    }
}

static void test_refused_message(void)
{
    static const char *const m1 = "{\"id\":\"c1\",\"seq\":1,\"from\":\"alice\",\"type\":\"text\",\"body\":\"tampered\"}";
    static const char *const m2 = "{\"id\":\"c2\",\"seq\":2,\"from\":\"alice\",\"type\":\"text\",\"body\":\"fine\"}";
    sent_pkt_t s;
    fresh();
    client.cfg.cb.on_message = on_message_refusing;
    refuse_seq = 1;
    CHECK_EQ_INT(mqim_client_refuse(&client, 1, MQIM_STR("e2e_auth_failed")), MQIM_BAD_PARAMETER); /* not connected */
    connect();
    CHECK_EQ_INT(mqim_client_refuse(&client, 1, (mqim_str_t){ 0, 0 }), MQIM_BAD_PARAMETER);
    inject_publish("im/u/bob/in/msg", m1, strlen(m1), 1);
    inject_publish("im/u/bob/in/msg", m2, strlen(m2), 2);
    pump(60);
    CHECK(mqim_client_last_seq(&client) == 2u); /* consumed all the same */
    CHECK(next_publish_on("im/u/bob/out/receipt", &s));
    CHECK_EQ_STR(s.payload, strlen(s.payload),
                 "{\"status\":\"refused\",\"seqs\":[1],\"code\":\"e2e_auth_failed\",\"device\":\"mcu\"}");
    CHECK(next_publish_on("im/u/bob/out/receipt", &s));
    CHECK_EQ_STR(s.payload, strlen(s.payload), "{\"status\":\"delivered\",\"seqs\":[2],\"device\":\"mcu\"}");
    CHECK(!next_publish_on("im/u/bob/out/receipt", &s)); /* no `delivered` for 1 */
}

/* Outbox records the client cannot use: a corrupt one is removed, one
 * larger than this build's buffers is kept and skipped; the rest flow. */
static void test_outbox_bad_records(void)
{
    static uint8_t large[MQIM_CFG_TX_BUFFER_SIZE + 200];
    static const uint8_t corrupt[] = { 200, 'x' };
    uint32_t k1 = 0, k2 = 0, k3 = 0;
    sent_pkt_t s;
    fresh();
    CHECK_EQ_INT(mqim_ram_outbox_put(&outbox, corrupt, sizeof(corrupt), &k1), MQIM_OK);
    memset(large, 1, sizeof(large));
    CHECK_EQ_INT(mqim_ram_outbox_put(&outbox, large, sizeof(large), &k2), MQIM_OK);
    CHECK_EQ_INT(mqim_client_send(&client, MQIM_STR("alice"), MQIM_STR("still goes"), &k3), MQIM_OK);
    connect();
    pump(2);
    CHECK(next_publish_on("im/u/bob/out/dm/alice", &s));
    CHECK(strstr(s.payload, "still goes") != NULL);
    CHECK_EQ_INT(outbox_count(), 2); /* the large one and the message */
}


/* Tombstones (the gateway's group retention removed the message, the seq
 * stays): they move last_seq on in order, reach no callback and get no
 * receipt; a gap before one still asks for a sync; a message whose sender
 * chose the type "pruned" is still a message. */
static void test_tombstones_advance_seq(void)
{
    static const char *const m1 = "{\"id\":\"a1\",\"seq\":1,\"from\":\"alice\",\"group\":\"team\",\"type\":\"text\",\"body\":\"one\"}";
    static const char *const t2 = "{\"seq\":2,\"group\":\"team\",\"ts\":1764000000123,\"type\":\"pruned\"}";
    static const char *const t3 = "{\"seq\":3,\"group\":\"team\",\"ts\":1764000000124,\"type\":\"pruned\"}";
    static const char *const m4 = "{\"id\":\"a4\",\"seq\":4,\"from\":\"alice\",\"group\":\"team\",\"type\":\"pruned\",\"body\":\"four\"}";
    static const char *const t6 = "{\"seq\":6,\"group\":\"team\",\"ts\":1764000000126,\"type\":\"pruned\"}";
    static const char *const m5 = "{\"id\":\"a5\",\"seq\":5,\"from\":\"alice\",\"group\":\"team\",\"type\":\"text\",\"body\":\"five\"}";
    sent_pkt_t s;
    fresh();
    connect();
    CHECK(next_publish_on("im/u/bob/out/ctl", &s)); /* the sync at connect */
    recv_chunk = sizeof(in_buf);
    inject_publish("im/u/bob/in/msg", m1, strlen(m1), 1);
    inject_publish("im/u/bob/in/msg", t2, strlen(t2), 2);
    inject_publish("im/u/bob/in/msg", t2, strlen(t2), 3); /* a redelivery */
    inject_publish("im/u/bob/in/msg", t3, strlen(t3), 4);
    inject_publish("im/u/bob/in/msg", m4, strlen(m4), 5);
    pump(10);
    CHECK_EQ_INT(nseen, 2);
    CHECK_EQ_STR(seen[0], strlen(seen[0]), "1 alice: one");
    CHECK_EQ_STR(seen[1], strlen(seen[1]), "4 alice: four"); /* has an id and a sender: a message */
    CHECK(saved.last_seq == 4u && mqim_client_last_seq(&client) == 4u);
    CHECK(next_publish_on("im/u/bob/out/receipt", &s));
    CHECK_EQ_STR(s.payload, strlen(s.payload), "{\"status\":\"delivered\",\"seqs\":[1,4],\"device\":\"mcu\"}");
    /* a tombstone after a gap is not taken: the sync brings 5 first */
    {
        const char *res = "{\"op\":\"sync\",\"complete\":true,\"first_seq\":1}";
        inject_publish("im/u/bob/in/res", res, strlen(res), 6); /* the connect sync is answered */
    }
    inject_publish("im/u/bob/in/msg", t6, strlen(t6), 7);
    pump(10);
    CHECK(mqim_client_last_seq(&client) == 4u);
    CHECK(next_publish_on("im/u/bob/out/ctl", &s));
    CHECK_EQ_STR(s.payload, strlen(s.payload), "{\"op\":\"sync\",\"after\":4}");
    inject_publish("im/u/bob/in/msg", m5, strlen(m5), 8);
    inject_publish("im/u/bob/in/msg", t6, strlen(t6), 9);
    pump(10);
    recv_chunk = 100;
    CHECK_EQ_INT(nseen, 3);
    CHECK_EQ_STR(seen[2], strlen(seen[2]), "5 alice: five");
    CHECK(saved.last_seq == 6u && mqim_client_last_seq(&client) == 6u);
    CHECK(next_publish_on("im/u/bob/out/receipt", &s));
    CHECK_EQ_STR(s.payload, strlen(s.payload), "{\"status\":\"delivered\",\"seqs\":[5],\"device\":\"mcu\"}");
    CHECK(!next_publish_on("im/u/bob/out/receipt", &s)); /* nothing for 6 */
}

/* Store epochs (docs/protocol.md): the first epoch heard is adopted; a
 * device that saw seqs 1-5 of epoch 111 reconnects to a restored store
 * (epoch 222, history shared up to seq 3): the new 4 and 5 are not dropped
 * as seen. Deliveries before the epoch is confirmed wait for the sync. */
static unsigned epoch_calls;
static uint64_t epoch_from;

static void on_store_epoch(void *ctx, uint64_t epoch, uint64_t from_seq)
{
    (void)ctx;
    (void)epoch;
    epoch_calls++;
    epoch_from = from_seq;
}

static void test_store_epoch_resync(void)
{
    static const char *const m4 = "{\"id\":\"n4\",\"seq\":4,\"from\":\"alice\",\"type\":\"text\",\"body\":\"new four\"}";
    static const char *const m5 = "{\"id\":\"n5\",\"seq\":5,\"from\":\"alice\",\"type\":\"text\",\"body\":\"new five\"}";
    static const uint8_t connack[] = { 0x20, 2, 0, 0 };
    mqim_client_config_t cfg;
    sent_pkt_t s;
    fresh();
    /* a first run: the epoch of the status is adopted and saved */
    connect(); /* status without store_epoch: an older gateway, nothing changes */
    CHECK(saved.store_epoch == 0u);
    gateway_status("{\"state\":\"online\",\"ts\":2,\"store\":\"ab\",\"store_epoch\":111}", false, 60001);
    CHECK(saved.store_epoch == 111u);
    mqim_client_stop(&client);

    /* the next run: it had seen up to 5 in epoch 111 */
    cfg = client.cfg;
    cfg.cb.on_store_epoch = on_store_epoch;
    saved.last_seq = 5;
    epoch_calls = 0;
    in_len = in_off = out_len = out_off = 0;
    CHECK_EQ_INT(mqim_client_init(&client, &cfg), MQIM_OK);
    CHECK_EQ_INT(mqim_client_start(&client), MQIM_OK);
    pump(1);
    inject_raw(connack, sizeof(connack));
    pump(2);
    CHECK(next_publish_on("im/u/bob/out/ctl", &s));
    CHECK_EQ_STR(s.payload, strlen(s.payload), "{\"op\":\"sync\",\"after\":5,\"store_epoch\":111}");
    /* a live delivery before the status: held back (the sync brings it) */
    inject_publish("im/u/bob/in/msg", m4, strlen(m4), 1);
    pump(4);
    CHECK_EQ_INT(nseen, 0);
    gateway_status("{\"state\":\"online\",\"ts\":3,\"store\":\"ab\",\"store_epoch\":222}", true, 60002);
    CHECK_EQ_INT(nseen, 0);
    {
        const char *res = "{\"op\":\"sync\",\"ok\":true,\"after\":5,\"count\":0,\"last\":5,"
                          "\"complete\":false,\"store_epoch\":222,\"epoch_seq\":3}";
        inject_publish("im/u/bob/in/res", res, strlen(res), 2);
        pump(4);
    }
    CHECK(saved.last_seq == 3u && saved.store_epoch == 222u);
    CHECK_EQ_INT(epoch_calls, 1);
    CHECK(epoch_from == 3u);
    CHECK(next_publish_on("im/u/bob/out/ctl", &s));
    CHECK_EQ_STR(s.payload, strlen(s.payload), "{\"op\":\"sync\",\"after\":3,\"store_epoch\":222}");
    inject_publish("im/u/bob/in/msg", m4, strlen(m4), 3);
    inject_publish("im/u/bob/in/msg", m5, strlen(m5), 4);
    pump(6);
    CHECK_EQ_INT(nseen, 2);
    CHECK_EQ_STR(seen[0], strlen(seen[0]), "4 alice: new four");
    CHECK_EQ_STR(seen[1], strlen(seen[1]), "5 alice: new five");
    CHECK(saved.last_seq == 5u);
    mqim_client_stop(&client);
}

/* The outbox goes out only while the gateway says online, and from its
 * oldest entry each time it says so again (it restarted while the device
 * stayed connected): entries without a `sent` are published again, in key
 * order, before anything newer. */
static void test_gateway_online_replays_outbox(void)
{
    static const uint8_t connack[] = { 0x20, 2, 0, 0 };
    static const uint8_t puback1[] = { 0x40, 2, 0, 1 };
    static const char online[] = "{\"state\":\"online\",\"ts\":5}";
    static const char offline[] = "{\"state\":\"offline\"}";
    sent_pkt_t s;
    uint32_t key = 0;
    char id[40], ack[160];
    bool subscribed = false;
    fresh();
    CHECK_EQ_INT(mqim_client_send(&client, MQIM_STR("alice"), MQIM_STR("kept"), &key), MQIM_OK);
    /* connected, but no gateway status yet (a broker that lost its
     * retained messages): nothing is published */
    CHECK_EQ_INT(mqim_client_start(&client), MQIM_OK);
    pump(1);
    CHECK(next_sent(&s) && s.type == MQIM_MQTT_CONNECT);
    inject_raw(connack, sizeof(connack));
    pump(3);
    CHECK(mqim_client_connected(&client));
    for (size_t i = 0; i + 17 <= out_len; i++) {
        subscribed = subscribed || memcmp(out_buf + i, "im/gateway/status", 17) == 0;
    }
    CHECK(subscribed);
    CHECK(!next_publish_on("im/u/bob/out/dm/alice", &s));
    gateway_status(online, false, 7);
    CHECK(next_publish_on("im/u/bob/out/dm/alice", &s));
    snprintf(id, sizeof(id), "%.32s", strstr(s.payload, "\"id\":\"") + 6);
    inject_raw(puback1, sizeof(puback1));
    pump(3);
    CHECK(!next_publish_on("im/u/bob/out/dm/alice", &s)); /* once */
    /* the gateway's will: new messages wait in the outbox */
    gateway_status(offline, false, 8);
    CHECK_EQ_INT(mqim_client_send(&client, MQIM_STR("alice"), MQIM_STR("newer"), &key), MQIM_OK);
    pump(3);
    CHECK(!next_publish_on("im/u/bob/out/dm/alice", &s));
    /* online again: the old one first (same id), then the newer one */
    gateway_status(online, false, 9);
    CHECK(next_publish_on("im/u/bob/out/dm/alice", &s));
    CHECK(strstr(s.payload, id) != NULL && strstr(s.payload, "\"body\":\"kept\"") != NULL);
    CHECK(next_publish_on("im/u/bob/out/dm/alice", &s));
    CHECK(strstr(s.payload, "\"body\":\"newer\"") != NULL);
    CHECK(!next_publish_on("im/u/bob/out/dm/alice", &s));
    CHECK_EQ_INT(outbox_count(), 2);
    /* once `sent`, another online replays only what is left */
    snprintf(ack, sizeof(ack), "{\"status\":\"sent\",\"id\":\"%s\",\"seq\":3,\"ts\":1}", id);
    inject_publish("im/u/bob/in/ack", ack, strlen(ack), 10);
    pump(3);
    CHECK_EQ_INT(outbox_count(), 1);
    gateway_status(online, false, 11);
    CHECK(next_publish_on("im/u/bob/out/dm/alice", &s));
    CHECK(strstr(s.payload, "\"body\":\"newer\"") != NULL);
    CHECK(!next_publish_on("im/u/bob/out/dm/alice", &s));
    CHECK_EQ_INT(nseen, 0);
}

/* The gateway status is read as JSON (issue 16): "state" anywhere in the
 * document, whitespace allowed; a document whose "state" is not online, or
 * that only looks like it, keeps the outbox waiting. */
static void test_gateway_status_reordered(void)
{
    static const uint8_t connack[] = { 0x20, 2, 0, 0 };
    sent_pkt_t s;
    uint32_t key = 0;
    fresh();
    CHECK_EQ_INT(mqim_client_send(&client, MQIM_STR("alice"), MQIM_STR("kept"), &key), MQIM_OK);
    CHECK_EQ_INT(mqim_client_start(&client), MQIM_OK);
    pump(1);
    CHECK(next_sent(&s) && s.type == MQIM_MQTT_CONNECT);
    inject_raw(connack, sizeof(connack));
    pump(3);
    /* not online: another state first, a prefix that is not JSON, a nested "state" */
    gateway_status("{\"state\":\"starting\",\"ts\":1}", false, 20);
    gateway_status("{\"state\":\"online\"", false, 21);
    gateway_status("{\"ts\":1,\"x\":{\"state\":\"online\"}}", false, 22);
    CHECK(!next_publish_on("im/u/bob/out/dm/alice", &s));
    /* online with "state" last and spaces around it: the outbox goes */
    gateway_status("{ \"ts\": 5, \"store\": \"ab\", \"pid\": 7, \"state\" : \"online\" }", false, 23);
    CHECK(next_publish_on("im/u/bob/out/dm/alice", &s));
    CHECK(strstr(s.payload, "\"body\":\"kept\"") != NULL);
    CHECK_EQ_INT(nseen, 0);
}

/* Publish, PUBACK and collect every DM the device sends until it stops;
 * bodies[] gets their bodies (from index 0), ids[] their ids. */
static unsigned collect_dms(char bodies[][16], char ids[][40], unsigned cap)
{
    unsigned n = 0;
    for (int round = 0; round < 64; round++) {
        sent_pkt_t s;
        bool any = false;
        while (next_publish_on("im/u/bob/out/dm/alice", &s)) {
            uint8_t puback[4] = { 0x40, 2, (uint8_t)(s.packet_id >> 8), (uint8_t)s.packet_id };
            const char *b = strstr(s.payload, "\"body\":\"");
            if (n < cap) {
                snprintf(bodies[n], 16, "%.*s", b != NULL ? (int)strcspn(b + 8, "\"") : 0, b != NULL ? b + 8 : "");
                snprintf(ids[n], 40, "%.32s", strstr(s.payload, "\"id\":\"") + 6);
            }
            inject_raw(puback, sizeof(puback));
            n++;
            any = true;
        }
        pump(3);
        if (!any) {
            break;
        }
    }
    return n;
}

/* A deep outbox goes out MQIM_CFG_OUTBOX_WINDOW entries at a time: broker
 * PUBACKs do not open the window, the gateway's confirmations (echoes) do; a gateway
 * online replays the oldest window again (not the whole outbox). */
static void test_outbox_window(void)
{
    enum { W = MQIM_CFG_OUTBOX_WINDOW, N = MQIM_CFG_OUTBOX_WINDOW + 4 };
    static char bodies[N][16], ids[N][40];
    char echo[200], want[16];
    uint32_t key = 0;
    fresh();
    for (int i = 0; i < N; i++) {
        char body[16];
        snprintf(body, sizeof(body), "m%d", i);
        CHECK_EQ_INT(mqim_client_send(&client, MQIM_STR("alice"), mqim_str_from_cstr(body), &key), MQIM_OK);
    }
    CHECK_EQ_INT(outbox_count(), N);
    connect();
    CHECK_EQ_INT(collect_dms(bodies, ids, N), W);
    CHECK_EQ_STR(bodies[0], strlen(bodies[0]), "m0");
    snprintf(want, sizeof(want), "m%d", W - 1);
    CHECK_EQ_STR(bodies[W - 1], strlen(bodies[W - 1]), want);
    /* two echoes (the confirmations): exactly two more go out, the next in order */
    for (int i = 0; i < 2; i++) {
        snprintf(echo, sizeof(echo), "{\"id\":\"%.32s\",\"seq\":%d,\"from\":\"bob\",\"to\":\"alice\",\"ts\":1,\"body\":\"%.15s\"}",
                 ids[i], i + 1, bodies[i]);
        inject_publish("im/u/bob/in/msg", echo, strlen(echo), (uint16_t)(100 + i));
    }
    pump(3);
    CHECK_EQ_INT(outbox_count(), N - 2);
    CHECK_EQ_INT(collect_dms(bodies, ids, N), 2);
    snprintf(want, sizeof(want), "m%d", W);
    CHECK_EQ_STR(bodies[0], strlen(bodies[0]), want);
    /* the gateway restarted: the oldest window again, from m2 */
    gateway_status("{\"state\":\"online\",\"ts\":9}", false, 200);
    CHECK_EQ_INT(collect_dms(bodies, ids, N), W);
    CHECK_EQ_STR(bodies[0], strlen(bodies[0]), "m2");
    CHECK_EQ_INT(nseen, 2); /* the two echoes */
}

int main(void)
{
    test_connect_birth_and_sync();
    test_send_until_confirmed();
    test_inbound_order_and_receipts();
    test_oversized_message();
    test_refused_message();
    test_outbox_bad_records();
    test_tombstones_advance_seq();
    test_store_epoch_resync();
    test_gateway_online_replays_outbox();
    test_gateway_status_reordered();
    test_outbox_window();
    return CHECK_REPORT();
}
