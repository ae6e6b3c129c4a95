/* MQTT 3.1.1 codec: vectors from the specification, every malformed class,
 * exact-size and one-byte-short buffers for every encoder. */
#include <stdio.h>
#include <string.h>

#include "mqim/mqtt_codec.h"
#include "mqim_check.h"

#define CANARY 0xa5

/* Encode with a size query, a one-short buffer and an exact buffer; compare. */
#define CHECK_ENCODING(call_with_buf_cap, want, want_len)                              \
    do {                                                                              \
        uint8_t b_[600];                                                              \
        size_t n_ = 0, need_ = 0;                                                     \
        uint8_t *buf = NULL;                                                          \
        size_t cap = 0;                                                               \
        size_t *out = &need_;                                                         \
        CHECK_EQ_INT((call_with_buf_cap), MQIM_BUFFER_TOO_SMALL);                     \
        CHECK_EQ_INT(need_, (want_len));                                              \
        memset(b_, CANARY, sizeof(b_));                                               \
        buf = b_;                                                                     \
        cap = need_ - 1u;                                                             \
        out = &n_;                                                                    \
        CHECK_EQ_INT((call_with_buf_cap), MQIM_BUFFER_TOO_SMALL);                     \
        CHECK(b_[need_ - 1u] == CANARY);                                              \
        cap = need_;                                                                  \
        CHECK_EQ_INT((call_with_buf_cap), MQIM_OK);                                   \
        CHECK_EQ_INT(n_, (want_len));                                                 \
        CHECK(memcmp(b_, (want), (want_len)) == 0);                                   \
        CHECK(b_[need_] == CANARY);                                                   \
    } while (0)

static void test_remaining_length_vectors(void)
{
    /* MQTT 3.1.1 section 2.2.3, table 2.4: the boundaries of each size */
    static const struct { size_t value; uint8_t bytes[4]; size_t n; } rows[] = {
        { 0, { 0x00 }, 1 },
        { 127, { 0x7f }, 1 },
        { 128, { 0x80, 0x01 }, 2 },
        { 16383, { 0xff, 0x7f }, 2 },
        { 16384, { 0x80, 0x80, 0x01 }, 3 },
        { 2097151, { 0xff, 0xff, 0x7f }, 3 },
        { 2097152, { 0x80, 0x80, 0x80, 0x01 }, 4 },
        { 268435455, { 0xff, 0xff, 0xff, 0x7f }, 4 },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint8_t pkt[8] = { 0x30 };
        size_t total = 0;
        memcpy(pkt + 1, rows[i].bytes, rows[i].n);
        /* frame reads the length back; a large one is only "need more" */
        CHECK_EQ_INT(mqim_mqtt_frame(pkt, 1u + rows[i].n, MQIM_MQTT_REMAINING_MAX + 5u, &total),
                     rows[i].value == 0u ? MQIM_OK : MQIM_MQTT_NEED_MORE);
        CHECK_EQ_INT(total, 1u + rows[i].n + rows[i].value);
    }
    {
        /* the encoder's side: a publish whose remaining length is 128 */
        static uint8_t payload[200];
        mqim_mqtt_publish_t p = { MQIM_STR("a"), payload, 125, 0, 0, false, false, false, 0 };
        size_t need = 0;
        uint8_t head[3];
        CHECK_EQ_INT(mqim_mqtt_encode_publish(&p, NULL, 0, &need), MQIM_BUFFER_TOO_SMALL);
        CHECK_EQ_INT(need, 1 + 2 + 128);
        CHECK_EQ_INT(mqim_mqtt_encode_publish(&p, head, 0, &need), MQIM_BUFFER_TOO_SMALL);
        p.payload_len = 124; /* 127: one length byte */
        CHECK_EQ_INT(mqim_mqtt_encode_publish(&p, NULL, 0, &need), MQIM_BUFFER_TOO_SMALL);
        CHECK_EQ_INT(need, 1 + 1 + 127);
    }
}

static void test_encoders(void)
{
    /* CONNECT, clean session, keep alive 60, client id "c", user "u", password "p",
     * will "w" -> "x" at QoS 1 retained: flags 1110 1110 = 0xee */
    static const uint8_t connect_full[] = {
        0x10, 27, 0, 4, 'M', 'Q', 'T', 'T', 4, 0xee, 0, 60, 0, 1, 'c',
        0, 1, 'w', 0, 1, 'x', 0, 1, 'u', 0, 1, 'p', 0, 0
    };
    static const uint8_t connect_min[] = { 0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 0, 0, 0 };
    static const uint8_t publish_q1[] = { 0x3b, 9, 0, 3, 'a', '/', 'b', 0x12, 0x34, 'h', 'i' };
    static const uint8_t publish_q0[] = { 0x30, 5, 0, 1, 't', 'o', 'k' };
    static const uint8_t puback[] = { 0x40, 2, 0x00, 0x01 };
    static const uint8_t pubrel[] = { 0x62, 2, 0xff, 0xfe };
    static const uint8_t subscribe[] = { 0x82, 12, 0, 7, 0, 3, 'a', '/', '#', 1, 0, 1, '+', 2 };
    static const uint8_t unsubscribe[] = { 0xa2, 7, 0, 8, 0, 3, 'a', '/', '#' };
    static const uint8_t pingreq[] = { 0xc0, 0 };
    static const uint8_t disconnect[] = { 0xe0, 0 };
    mqim_mqtt_connect_t c = { MQIM_STR("c"), MQIM_STR("u"), MQIM_STR("p"), MQIM_STR("w"),
                              MQIM_STR("x"), 60, 1, true, true, true, true, true };
    mqim_mqtt_connect_t cmin = { { NULL, 0 }, { NULL, 0 }, { NULL, 0 }, { NULL, 0 }, { NULL, 0 },
                                 0, 0, false, false, false, false, true };
    mqim_mqtt_publish_t p1 = { MQIM_STR("a/b"), (const uint8_t *)"hi", 2, 0x1234, 1, true, true, false, 0 };
    mqim_mqtt_publish_t p0 = { MQIM_STR("t"), (const uint8_t *)"ok", 2, 0, 0, false, false, false, 0 };
    const mqim_str_t filters[] = { MQIM_STR("a/#"), MQIM_STR("+") };
    const uint8_t qos[] = { 1, 2 };
    /* connect_full's remaining length: 10 + 3 + 3+3 + 3 + 3 = 25 */
    uint8_t fixed[sizeof(connect_full)];
    memcpy(fixed, connect_full, sizeof(fixed));
    fixed[1] = 25;
    CHECK_ENCODING(mqim_mqtt_encode_connect(&c, buf, cap, out), fixed, 27u);
    CHECK_ENCODING(mqim_mqtt_encode_connect(&cmin, buf, cap, out), connect_min, sizeof(connect_min));
    CHECK_ENCODING(mqim_mqtt_encode_publish(&p1, buf, cap, out), publish_q1, sizeof(publish_q1));
    CHECK_ENCODING(mqim_mqtt_encode_publish(&p0, buf, cap, out), publish_q0, sizeof(publish_q0));
    CHECK_ENCODING(mqim_mqtt_encode_ack(MQIM_MQTT_PUBACK, 1, buf, cap, out), puback, sizeof(puback));
    CHECK_ENCODING(mqim_mqtt_encode_ack(MQIM_MQTT_PUBREL, 0xfffe, buf, cap, out), pubrel, sizeof(pubrel));
    CHECK_ENCODING(mqim_mqtt_encode_subscribe(7, filters, qos, 2, buf, cap, out), subscribe, sizeof(subscribe));
    CHECK_ENCODING(mqim_mqtt_encode_unsubscribe(8, filters, 1, buf, cap, out), unsubscribe, sizeof(unsubscribe));
    CHECK_ENCODING(mqim_mqtt_encode_empty(MQIM_MQTT_PINGREQ, buf, cap, out), pingreq, sizeof(pingreq));
    CHECK_ENCODING(mqim_mqtt_encode_empty(MQIM_MQTT_DISCONNECT, buf, cap, out), disconnect, sizeof(disconnect));
}

static void test_encoder_errors(void)
{
    uint8_t b[64];
    size_t n = 0;
    mqim_mqtt_publish_t p = { MQIM_STR("a/+"), NULL, 0, 1, 1, false, false, false, 0 };
    mqim_mqtt_connect_t c = { MQIM_STR(""), { NULL, 0 }, MQIM_STR("pw"), { NULL, 0 }, { NULL, 0 },
                              0, 0, false, false, false, true, false };
    const mqim_str_t f[] = { MQIM_STR("") };
    const uint8_t q3[] = { 3 };
    CHECK_EQ_INT(mqim_mqtt_encode_publish(&p, b, sizeof(b), &n), MQIM_MQTT_TOPIC);
    p.topic = MQIM_STR("");
    CHECK_EQ_INT(mqim_mqtt_encode_publish(&p, b, sizeof(b), &n), MQIM_MQTT_TOPIC);
    p.topic = MQIM_STR("ok");
    p.packet_id = 0;
    CHECK_EQ_INT(mqim_mqtt_encode_publish(&p, b, sizeof(b), &n), MQIM_BAD_PARAMETER);
    p.qos = 3;
    CHECK_EQ_INT(mqim_mqtt_encode_publish(&p, b, sizeof(b), &n), MQIM_BAD_PARAMETER);
    CHECK_EQ_INT(mqim_mqtt_encode_connect(&c, b, sizeof(b), &n), MQIM_BAD_PARAMETER); /* password w/o user */
    c.has_password = false;
    CHECK_EQ_INT(mqim_mqtt_encode_connect(&c, b, sizeof(b), &n), MQIM_BAD_PARAMETER); /* empty id, persistent */
    c.clean_session = true;
    c.has_will = true;
    c.will_topic = MQIM_STR("w/#");
    CHECK_EQ_INT(mqim_mqtt_encode_connect(&c, b, sizeof(b), &n), MQIM_MQTT_TOPIC);
    CHECK_EQ_INT(mqim_mqtt_encode_subscribe(1, f, q3, 1, b, sizeof(b), &n), MQIM_BAD_PARAMETER);
    CHECK_EQ_INT(mqim_mqtt_encode_subscribe(0, f, q3, 1, b, sizeof(b), &n), MQIM_BAD_PARAMETER);
    CHECK_EQ_INT(mqim_mqtt_encode_unsubscribe(1, f, 0, b, sizeof(b), &n), MQIM_BAD_PARAMETER);
    CHECK_EQ_INT(mqim_mqtt_encode_ack(MQIM_MQTT_PUBACK, 0, b, sizeof(b), &n), MQIM_BAD_PARAMETER);
    CHECK_EQ_INT(mqim_mqtt_encode_ack(MQIM_MQTT_CONNECT, 1, b, sizeof(b), &n), MQIM_BAD_PARAMETER);
    CHECK_EQ_INT(mqim_mqtt_encode_empty(MQIM_MQTT_PUBACK, b, sizeof(b), &n), MQIM_BAD_PARAMETER);
}

static void test_decode_table(void)
{
    static const struct { uint8_t bytes[16]; size_t n; mqim_status_t want; } rows[] = {
        { { 0x20, 2, 0, 0 }, 4, MQIM_OK },                  /* CONNACK accepted */
        { { 0x20, 2, 1, 0 }, 4, MQIM_OK },                  /* session present */
        { { 0x20, 2, 0, 5 }, 4, MQIM_OK },                  /* not authorised */
        { { 0x20, 2, 0, 6 }, 4, MQIM_MQTT_PROTOCOL },       /* unknown return code */
        { { 0x20, 2, 1, 5 }, 4, MQIM_MQTT_PROTOCOL },       /* session present on refusal */
        { { 0x20, 2, 2, 0 }, 4, MQIM_MQTT_PROTOCOL },       /* reserved ack flag bit */
        { { 0x21, 2, 0, 0 }, 4, MQIM_MQTT_BAD_FLAGS },
        { { 0x20, 3, 0, 0, 0 }, 5, MQIM_MQTT_BAD_LENGTH },
        { { 0x20, 2, 0 }, 3, MQIM_MQTT_NEED_MORE },         /* truncated */
        { { 0x40, 2, 0, 7 }, 4, MQIM_OK },                  /* PUBACK */
        { { 0x40, 2, 0, 0 }, 4, MQIM_MQTT_PROTOCOL },       /* packet id 0 */
        { { 0x42, 2, 0, 7 }, 4, MQIM_MQTT_BAD_FLAGS },
        { { 0x62, 2, 0, 7 }, 4, MQIM_OK },                  /* PUBREL needs 0010 */
        { { 0x60, 2, 0, 7 }, 4, MQIM_MQTT_BAD_FLAGS },
        { { 0x50, 2, 0, 7 }, 4, MQIM_OK },                  /* PUBREC */
        { { 0x70, 2, 0, 7 }, 4, MQIM_OK },                  /* PUBCOMP */
        { { 0xb0, 2, 0, 7 }, 4, MQIM_OK },                  /* UNSUBACK */
        { { 0x90, 5, 0, 9, 0, 1, 0x80 }, 7, MQIM_OK },     /* SUBACK */
        { { 0x90, 3, 0, 9, 3 }, 5, MQIM_MQTT_PROTOCOL },    /* bad SUBACK code */
        { { 0x90, 2, 0, 9 }, 4, MQIM_MQTT_BAD_LENGTH },     /* no codes */
        { { 0xd0, 0 }, 2, MQIM_OK },                        /* PINGRESP */
        { { 0xd0, 1, 0 }, 3, MQIM_MQTT_BAD_LENGTH },
        { { 0x30, 4, 0, 2, 'a', 'b' }, 6, MQIM_OK },        /* PUBLISH QoS 0, empty payload */
        { { 0x32, 6, 0, 2, 'a', 'b', 0, 0 }, 8, MQIM_MQTT_PROTOCOL },  /* QoS 1 id 0 */
        { { 0x36, 4, 0, 2, 'a', 'b' }, 6, MQIM_MQTT_PROTOCOL },        /* QoS 3 */
        { { 0x38, 4, 0, 2, 'a', 'b' }, 6, MQIM_MQTT_BAD_FLAGS },       /* DUP at QoS 0 */
        { { 0x30, 4, 0, 2, 'a', '+' }, 6, MQIM_MQTT_TOPIC },           /* wildcard */
        { { 0x30, 4, 0, 2, 'a', 0 }, 6, MQIM_MQTT_TOPIC },             /* NUL */
        { { 0x30, 3, 0, 1, 0xff }, 5, MQIM_MQTT_TOPIC },               /* not UTF-8 */
        { { 0x30, 2, 0, 0 }, 4, MQIM_MQTT_TOPIC },                     /* empty topic */
        { { 0x30, 3, 0, 5, 'a' }, 5, MQIM_MQTT_BAD_LENGTH },           /* topic past the end */
        { { 0x30, 0x80, 0x00 }, 3, MQIM_MQTT_BAD_LENGTH },             /* non-minimal length */
        { { 0x30, 0xff, 0xff, 0xff, 0xff, 0x01 }, 6, MQIM_MQTT_BAD_LENGTH }, /* 5 length bytes */
        { { 0x10, 0 }, 2, MQIM_MQTT_BAD_TYPE },                        /* CONNECT: server-bound */
        { { 0x80, 0 }, 2, MQIM_MQTT_BAD_TYPE },
        { { 0x00, 0 }, 2, MQIM_MQTT_BAD_TYPE },                        /* reserved */
        { { 0xf0, 0 }, 2, MQIM_MQTT_BAD_TYPE },
        { { 0x40 }, 1, MQIM_MQTT_NEED_MORE },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        mqim_mqtt_packet_t pkt;
        mqim_status_t st = mqim_mqtt_decode(rows[i].bytes, rows[i].n, &pkt);
        CHECK_EQ_INT(st, rows[i].want);
        if (st != rows[i].want) {
            fprintf(stderr, "  row %zu\n", i);
        }
    }
}

static void test_decode_fields(void)
{
    static const uint8_t pub[] = { 0x3d, 9, 0, 3, 'a', '/', 'b', 0x12, 0x34, 'h', 'i', 0x40, 2, 0, 1 };
    static const uint8_t suback[] = { 0x90, 4, 0x01, 0x02, 0x01, 0x80 };
    mqim_mqtt_packet_t pkt;
    size_t total = 0;
    /* two packets back to back: frame finds the first, decode reads it */
    CHECK_EQ_INT(mqim_mqtt_frame(pub, sizeof(pub), 1024, &total), MQIM_OK);
    CHECK_EQ_INT(total, 11);
    CHECK_EQ_INT(mqim_mqtt_decode(pub, sizeof(pub), &pkt), MQIM_OK);
    CHECK_EQ_INT(pkt.type, MQIM_MQTT_PUBLISH);
    CHECK_EQ_INT(pkt.length, 11);
    CHECK_EQ_STR(pkt.publish.topic.ptr, pkt.publish.topic.len, "a/b");
    CHECK(pkt.publish.qos == 2 && pkt.publish.dup && pkt.publish.retain);
    CHECK_EQ_INT(pkt.publish.packet_id, 0x1234);
    CHECK(pkt.publish.payload_len == 2u && memcmp(pkt.publish.payload, "hi", 2) == 0);
    CHECK_EQ_INT(mqim_mqtt_decode(pub + total, sizeof(pub) - total, &pkt), MQIM_OK);
    CHECK(pkt.type == MQIM_MQTT_PUBACK && pkt.packet_id == 1u);
    CHECK_EQ_INT(mqim_mqtt_decode(suback, sizeof(suback), &pkt), MQIM_OK);
    CHECK(pkt.packet_id == 0x0102u && pkt.suback_count == 2u && pkt.suback_codes[1] == 0x80u);
    /* frame: limits and partial headers */
    CHECK_EQ_INT(mqim_mqtt_frame(pub, 1, 1024, &total), MQIM_MQTT_NEED_MORE);
    CHECK_EQ_INT(total, 0);
    CHECK_EQ_INT(mqim_mqtt_frame(pub, 5, 1024, &total), MQIM_MQTT_NEED_MORE);
    CHECK_EQ_INT(total, 11);
    CHECK_EQ_INT(mqim_mqtt_frame(pub, sizeof(pub), 10, &total), MQIM_MQTT_TOO_LARGE);
    CHECK_EQ_INT(mqim_mqtt_frame(NULL, 0, 10, NULL), MQIM_BAD_PARAMETER);
}

/* The head of a PUBLISH too large to hold. */
static void test_publish_head(void)
{
    /* QoS 1, topic "a/b", packet id 5, payload 300 bytes: remaining length 307 */
    static uint8_t pkt[3 + 307];
    mqim_mqtt_packet_t p;
    size_t total = 0;
    pkt[0] = 0x32;
    pkt[1] = (uint8_t)(0x80u | (307u % 128u));
    pkt[2] = (uint8_t)(307u / 128u);
    memcpy(pkt + 3, "\x00\x03" "a/b" "\x00\x05", 7);
    memset(pkt + 10, 'x', 300);
    CHECK_EQ_INT(mqim_mqtt_frame(pkt, 64, 128, &total), MQIM_MQTT_TOO_LARGE);
    CHECK_EQ_INT(total, sizeof(pkt)); /* known even when too large: the bytes to skip */
    CHECK_EQ_INT(mqim_mqtt_decode_publish_head(pkt, 64, &p), MQIM_OK);
    CHECK(p.type == MQIM_MQTT_PUBLISH && p.length == sizeof(pkt) && p.publish.truncated);
    CHECK_EQ_STR(p.publish.topic.ptr, p.publish.topic.len, "a/b");
    CHECK_EQ_INT(p.publish.packet_id, 5);
    CHECK_EQ_INT(p.publish.payload_len, 64 - 10);
    CHECK_EQ_INT(p.publish.payload_full_len, 300);
    /* the whole packet is not cut */
    CHECK_EQ_INT(mqim_mqtt_decode_publish_head(pkt, sizeof(pkt), &p), MQIM_OK);
    CHECK(!p.publish.truncated && p.publish.payload_len == 300u);
    /* the topic or the packet id not all there yet */
    CHECK_EQ_INT(mqim_mqtt_decode_publish_head(pkt, 7, &p), MQIM_MQTT_NEED_MORE);
    CHECK_EQ_INT(mqim_mqtt_decode_publish_head(pkt, 9, &p), MQIM_MQTT_NEED_MORE);
    CHECK_EQ_INT(mqim_mqtt_decode_publish_head(pkt, 2, &p), MQIM_MQTT_NEED_MORE);
    /* the same checks as a whole publish */
    pkt[0] = 0x36;
    CHECK_EQ_INT(mqim_mqtt_decode_publish_head(pkt, 64, &p), MQIM_MQTT_PROTOCOL);
    pkt[0] = 0x90;
    CHECK_EQ_INT(mqim_mqtt_decode_publish_head(pkt, 64, &p), MQIM_MQTT_BAD_TYPE);
    pkt[0] = 0x32;
    pkt[5] = '+';
    CHECK_EQ_INT(mqim_mqtt_decode_publish_head(pkt, 64, &p), MQIM_MQTT_TOPIC);
    CHECK_EQ_INT(mqim_mqtt_decode_publish_head(NULL, 0, &p), MQIM_MQTT_NEED_MORE);
    CHECK_EQ_INT(mqim_mqtt_decode_publish_head(pkt, 64, NULL), MQIM_BAD_PARAMETER);
}

/* The head of a PUBLISH and then its payload are the whole packet, byte
 * for byte, for a remaining length of one to three bytes (the session
 * sends a publish that way, without copying the payload). */
static void test_encode_publish_head(void)
{
    static uint8_t payload[20000], whole[20100], gathered[20100];
    static const size_t lens[] = { 0, 3, 120, 200, 16380, 20000 };
    for (size_t i = 0; i < sizeof(payload); i++) {
        payload[i] = (uint8_t)(i * 7u);
    }
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        mqim_mqtt_publish_t p;
        size_t n_whole = 0, n_head = 0;
        memset(&p, 0, sizeof(p));
        p.topic = MQIM_STR("im/u/a/out/dm/b");
        p.payload = payload;
        p.payload_len = lens[k];
        p.qos = (uint8_t)(k % 2u);
        p.packet_id = 513;
        p.retain = k == 2u;
        CHECK_EQ_INT(mqim_mqtt_encode_publish(&p, whole, sizeof(whole), &n_whole), MQIM_OK);
        CHECK_EQ_INT(mqim_mqtt_encode_publish_head(&p, gathered, 64, &n_head), MQIM_OK);
        CHECK_EQ_INT(n_head + lens[k], n_whole);
        memcpy(gathered + n_head, payload, lens[k]);
        CHECK(memcmp(whole, gathered, n_whole) == 0);
        /* a head that does not fit says what it needs */
        CHECK_EQ_INT(mqim_mqtt_encode_publish_head(&p, gathered, 4, &n_head), MQIM_BUFFER_TOO_SMALL);
        CHECK_EQ_INT(n_head + lens[k], n_whole);
    }
}

int main(void)
{
    test_remaining_length_vectors();
    test_encoders();
    test_encoder_errors();
    test_decode_table();
    test_decode_fields();
    test_publish_head();
    test_encode_publish_head();
    return CHECK_REPORT();
}
