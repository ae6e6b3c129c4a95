/* The in-flight table: id allocation, every ack in every state, resend
 * order, back-pressure, and incoming QoS 2 dedupe. */
#include <stdio.h>
#include <string.h>

#include "mqim/inflight.h"
#include "mqim_check.h"

static mqim_out_entry_t out[4];
static uint16_t in[2];
static mqim_inflight_t t;

static void test_ids_and_full(void)
{
    uint16_t id = 0, ids[4];
    CHECK_EQ_INT(mqim_inflight_init(&t, out, 4, in, 2), MQIM_OK);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_INT(mqim_inflight_add(&t, (uint8_t)(1 + i % 2), 100u + (uint32_t)i, &ids[i]), MQIM_OK);
        CHECK_EQ_INT(ids[i], i + 1);
    }
    CHECK_EQ_INT(mqim_inflight_add(&t, 1, 9, &id), MQIM_INFLIGHT_FULL); /* back-pressure */
    CHECK_EQ_INT(mqim_inflight_count(&t), 4);
    CHECK_EQ_INT(mqim_inflight_add(&t, 0, 9, &id), MQIM_BAD_PARAMETER);
    CHECK_EQ_INT(mqim_inflight_add(&t, 3, 9, &id), MQIM_BAD_PARAMETER);
    /* ids wrap past 65535 to 1 and skip ids still in use */
    mqim_inflight_init(&t, out, 4, in, 2);
    t.last_id = 65534;
    CHECK_EQ_INT(mqim_inflight_add(&t, 1, 1, &ids[0]), MQIM_OK);
    CHECK_EQ_INT(mqim_inflight_add(&t, 1, 2, &ids[1]), MQIM_OK);
    CHECK_EQ_INT(mqim_inflight_add(&t, 1, 3, &ids[2]), MQIM_OK);
    CHECK(ids[0] == 65535u && ids[1] == 1u && ids[2] == 2u);
    t.last_id = 65534;
    CHECK_EQ_INT(mqim_inflight_add(&t, 1, 4, &ids[3]), MQIM_OK);
    CHECK_EQ_INT(ids[3], 3); /* 65535, 1, 2 are in flight */
}

/* Every (state, ack) pair: what it does and what it refuses. */
static void test_ack_table(void)
{
    static const struct {
        uint8_t qos;
        int pre_pubrec;        /* move a QoS 2 entry to WAIT_PUBCOMP first */
        mqim_mqtt_type_t ack;
        mqim_status_t want;
        bool done;
        uint8_t state_after;   /* mqim_out_state_t */
    } rows[] = {
        { 1, 0, MQIM_MQTT_PUBACK, MQIM_OK, true, MQIM_OUT_FREE },
        { 1, 0, MQIM_MQTT_PUBREC, MQIM_UNEXPECTED_ACK, false, MQIM_OUT_WAIT_PUBACK },
        { 1, 0, MQIM_MQTT_PUBCOMP, MQIM_UNEXPECTED_ACK, false, MQIM_OUT_WAIT_PUBACK },
        { 2, 0, MQIM_MQTT_PUBACK, MQIM_UNEXPECTED_ACK, false, MQIM_OUT_WAIT_PUBREC },
        { 2, 0, MQIM_MQTT_PUBREC, MQIM_OK, false, MQIM_OUT_WAIT_PUBCOMP },
        { 2, 0, MQIM_MQTT_PUBCOMP, MQIM_UNEXPECTED_ACK, false, MQIM_OUT_WAIT_PUBREC },
        { 2, 1, MQIM_MQTT_PUBACK, MQIM_UNEXPECTED_ACK, false, MQIM_OUT_WAIT_PUBCOMP },
        { 2, 1, MQIM_MQTT_PUBREC, MQIM_OK, false, MQIM_OUT_WAIT_PUBCOMP },
        { 2, 1, MQIM_MQTT_PUBCOMP, MQIM_OK, true, MQIM_OUT_FREE },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint16_t id = 0;
        uint32_t key = 0;
        bool done = false;
        mqim_inflight_init(&t, out, 4, in, 2);
        CHECK_EQ_INT(mqim_inflight_add(&t, rows[i].qos, 77, &id), MQIM_OK);
        if (rows[i].pre_pubrec) {
            CHECK_EQ_INT(mqim_inflight_ack(&t, MQIM_MQTT_PUBREC, id, &key, &done), MQIM_OK);
        }
        CHECK_EQ_INT(mqim_inflight_ack(&t, rows[i].ack, id, &key, &done), rows[i].want);
        CHECK(done == rows[i].done);
        CHECK_EQ_INT(key, 77);
        CHECK_EQ_INT(out[0].state, rows[i].state_after);
        /* an id nobody sent */
        CHECK_EQ_INT(mqim_inflight_ack(&t, rows[i].ack, (uint16_t)(id + 100u), &key, &done),
                     MQIM_UNEXPECTED_ACK);
    }
}

static void test_resend_order(void)
{
    uint16_t ids[4];
    uint32_t key = 0, seq = 0;
    bool done = false;
    mqim_out_entry_t e;
    int n = 0;
    mqim_inflight_init(&t, out, 4, in, 2);
    for (int i = 0; i < 4; i++) {
        mqim_inflight_add(&t, 2, 10u + (uint32_t)i, &ids[i]);
    }
    mqim_inflight_ack(&t, MQIM_MQTT_PUBREC, ids[1], &key, &done);
    mqim_inflight_ack(&t, MQIM_MQTT_PUBREC, ids[0], &key, &done);
    mqim_inflight_ack(&t, MQIM_MQTT_PUBCOMP, ids[0], &key, &done);
    /* a freed slot is reused by a later publish, which must resend last */
    mqim_inflight_add(&t, 1, 99, &ids[0]);
    {
        const uint32_t want_keys[] = { 11, 12, 13, 99 };
        const uint8_t want_states[] = { MQIM_OUT_WAIT_PUBCOMP, MQIM_OUT_WAIT_PUBREC,
                                        MQIM_OUT_WAIT_PUBREC, MQIM_OUT_WAIT_PUBACK };
        while (mqim_inflight_next_resend(&t, seq, &e)) {
            CHECK(n < 4);
            if (n < 4) {
                CHECK_EQ_INT(e.outbox_key, want_keys[n]);
                CHECK_EQ_INT(e.state, want_states[n]);
            }
            seq = e.seq;
            n++;
        }
    }
    CHECK_EQ_INT(n, 4);
    mqim_inflight_clear_out(&t);
    CHECK_EQ_INT(mqim_inflight_count(&t), 0);
    CHECK(!mqim_inflight_next_resend(&t, 0, &e));
}

static void test_incoming_qos2(void)
{
    bool deliver = false;
    mqim_inflight_init(&t, out, 4, in, 2);
    CHECK_EQ_INT(mqim_inflight_qos2_received(&t, 5, &deliver), MQIM_OK);
    CHECK(deliver);
    CHECK_EQ_INT(mqim_inflight_qos2_received(&t, 5, &deliver), MQIM_OK);
    CHECK(!deliver); /* redelivered before PUBREL: not to the application again */
    CHECK_EQ_INT(mqim_inflight_qos2_received(&t, 6, &deliver), MQIM_OK);
    CHECK(deliver);
    CHECK_EQ_INT(mqim_inflight_qos2_received(&t, 7, &deliver), MQIM_INFLIGHT_FULL);
    CHECK(!deliver);
    mqim_inflight_qos2_released(&t, 5);
    mqim_inflight_qos2_released(&t, 42); /* unknown: harmless */
    CHECK_EQ_INT(mqim_inflight_qos2_received(&t, 7, &deliver), MQIM_OK);
    CHECK(deliver);
    /* after its PUBREL an id is free: the same id again is a new message */
    mqim_inflight_qos2_released(&t, 6);
    CHECK_EQ_INT(mqim_inflight_qos2_received(&t, 5, &deliver), MQIM_OK);
    CHECK(deliver);
    CHECK_EQ_INT(mqim_inflight_qos2_received(&t, 0, &deliver), MQIM_BAD_PARAMETER);
}

int main(void)
{
    test_ids_and_full();
    test_ack_table();
    test_resend_order();
    test_incoming_qos2();
    return CHECK_REPORT();
}
