/* A device built on libmqim-device's session layer and the POSIX TCP port,
 * driven by test_device_session.py against the real Mosquitto and gateway:
 * connect with a will, subscribe to its inbox, say online, send a direct
 * message that asks for the `sent` ack ("ack":"sent": the session layer
 * alone has no outbox that the echo would confirm), and wait for the
 * broker's PUBACK, the gateway's `sent` ack and the echo. Exit codes: 0 ok, 2 usage, 3 no connection, 4 subscribe/publish
 * refused, 5 no PUBACK, 6 no `sent` ack, 7 no echo. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqim/session.h"
#include "mqim_posix_tcp.h"

typedef struct probe {
    char ack_topic[128], msg_topic[128];
    int connected, puback, sent_ack, echo;
} probe_t;

static void on_message(void *ctx, const mqim_mqtt_publish_t *pub)
{
    probe_t *p = ctx;
    const char *payload = (const char *)pub->payload;
    int has_id = pub->payload_len > 0u && memmem(payload, pub->payload_len, "\"probe-1\"", 9) != NULL;
    printf("got %.*s %.*s\n", (int)pub->topic.len, pub->topic.ptr, (int)pub->payload_len, payload);
    if (mqim_str_eq_cstr(pub->topic, p->ack_topic) && has_id &&
        memmem(payload, pub->payload_len, "\"status\":\"sent\"", 15) != NULL) {
        p->sent_ack = 1;
    }
    if (mqim_str_eq_cstr(pub->topic, p->msg_topic) && has_id) {
        p->echo = 1;
    }
}

static void on_published(void *ctx, uint32_t key)
{
    probe_t *p = ctx;
    if (key == 1u) {
        p->puback = 1;
    }
}

static void on_connected(void *ctx, bool session_present)
{
    ((probe_t *)ctx)->connected = 1;
    printf("connected (session present: %d)\n", (int)session_present);
}

static void on_disconnected(void *ctx, mqim_status_t reason)
{
    (void)ctx;
    printf("disconnected: %s\n", mqim_status_str(reason));
}

static mqim_status_t get_publish(void *ctx, uint32_t key, mqim_mqtt_publish_t *pub)
{
    (void)ctx;
    (void)key;
    (void)pub;
    return MQIM_NOT_FOUND; /* this probe keeps no outbox */
}

static mqim_session_t session; /* ~4 KiB of buffers: static, as on a device */

int main(int argc, char **argv)
{
    probe_t p;
    mqim_posix_tcp_t tcp;
    mqim_session_config_t cfg;
    char client_id[80], will_topic[128], dm_topic[128];
    const char *body = "{\"id\":\"probe-1\",\"ack\":\"sent\",\"body\":\"hello from the device library\"}";
    uint32_t start;
    if (argc != 6) {
        fprintf(stderr, "usage: %s HOST PORT USER PASSWORD PEER\n", argv[0]);
        return 2;
    }
    memset(&p, 0, sizeof(p));
    snprintf(p.ack_topic, sizeof(p.ack_topic), "im/u/%s/in/ack", argv[3]);
    snprintf(p.msg_topic, sizeof(p.msg_topic), "im/u/%s/in/msg", argv[3]);
    snprintf(client_id, sizeof(client_id), "%s.probe", argv[3]);
    snprintf(will_topic, sizeof(will_topic), "im/u/%s/out/status/probe", argv[3]);
    snprintf(dm_topic, sizeof(dm_topic), "im/u/%s/out/dm/%s", argv[3], argv[5]);
    mqim_posix_tcp_init(&tcp, argv[1], (uint16_t)atoi(argv[2]));
    memset(&cfg, 0, sizeof(cfg));
    cfg.connect.client_id = mqim_str_from_cstr(client_id);
    cfg.connect.username = mqim_str_from_cstr(argv[3]);
    cfg.connect.password = mqim_str_from_cstr(argv[4]);
    cfg.connect.has_username = true;
    cfg.connect.has_password = true;
    cfg.connect.clean_session = true;
    cfg.connect.keep_alive_s = 30;
    cfg.connect.has_will = true;
    cfg.connect.will_topic = mqim_str_from_cstr(will_topic);
    cfg.connect.will_payload = MQIM_STR("{\"state\":\"offline\",\"epoch\":1}");
    cfg.connect.will_qos = 1;
    cfg.connect.will_retain = true;
    cfg.transport = &mqim_posix_tcp_ops;
    cfg.transport_ctx = &tcp;
    cfg.clock = mqim_posix_clock_ms;
    cfg.entropy = mqim_posix_entropy;
    cfg.cb = (mqim_session_callbacks_t){ on_message, on_published, on_connected, on_disconnected,
                                         get_publish, &p };
    if (mqim_session_init(&session, &cfg) != MQIM_OK || mqim_session_start(&session) != MQIM_OK) {
        return 3;
    }
    start = mqim_posix_clock_ms(NULL);
    while (!p.connected && mqim_posix_clock_ms(NULL) - start < 5000u) {
        (void)mqim_session_poll(&session, 50);
    }
    if (!p.connected) {
        return 3;
    }
    if (mqim_session_subscribe(&session, mqim_str_from_cstr(p.msg_topic), 1) != MQIM_OK ||
        mqim_session_subscribe(&session, mqim_str_from_cstr(p.ack_topic), 1) != MQIM_OK ||
        mqim_session_publish(&session, mqim_str_from_cstr(will_topic),
                             (const uint8_t *)"{\"state\":\"online\",\"epoch\":1}", 28, 1, true, 2) != MQIM_OK) {
        return 4;
    }
    /* Let the SUBACKs arrive before the message, so the ack cannot be missed. */
    start = mqim_posix_clock_ms(NULL);
    while (mqim_posix_clock_ms(NULL) - start < 300u) {
        (void)mqim_session_poll(&session, 20);
    }
    if (mqim_session_publish(&session, mqim_str_from_cstr(dm_topic), (const uint8_t *)body,
                             strlen(body), 1, false, 1) != MQIM_OK) {
        return 4;
    }
    start = mqim_posix_clock_ms(NULL);
    while (!(p.puback && p.sent_ack && p.echo) && mqim_posix_clock_ms(NULL) - start < 10000u) {
        (void)mqim_session_poll(&session, 50);
    }
    mqim_session_stop(&session);
    printf("puback=%d sent=%d echo=%d\n", p.puback, p.sent_ack, p.echo);
    return !p.puback ? 5 : !p.sent_ack ? 6 : !p.echo ? 7 : 0;
}
