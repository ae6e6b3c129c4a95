/* The client-stack benchmark (stack_common.h) on libmosquitto (Mosquitto's
 * own client library), MQTT v5, in the single-threaded way the gateway's
 * pump would use it: one poll loop calling mosquitto_loop_read/_write/_misc
 * (no loop thread), TCP_NODELAY, receive and send maximum = the window. */
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <poll.h>
#include <unistd.h>

#include "stack_common.h"

static stack_args_t args;
static long received, acked, failed;
static int connected, subscribed;

static void on_connect(struct mosquitto *m, void *ctx, int rc, int flags, const mosquitto_property *p)
{
    (void)m;
    (void)ctx;
    (void)flags;
    (void)p;
    if (rc != 0) {
        fprintf(stderr, "mosq: CONNACK %d\n", rc);
        exit(2);
    }
    connected = 1;
}

static void on_subscribe(struct mosquitto *m, void *ctx, int mid, int n, const int *qos, const mosquitto_property *p)
{
    (void)m;
    (void)ctx;
    (void)mid;
    (void)n;
    (void)qos;
    (void)p;
    subscribed = 1;
}

static void on_message(struct mosquitto *m, void *ctx, const struct mosquitto_message *msg,
                       const mosquitto_property *p)
{
    (void)m;
    (void)ctx;
    (void)msg;
    (void)p;
    received++; /* libmosquitto sends the PUBACK */
}

static void on_publish(struct mosquitto *m, void *ctx, int mid, int reason, const mosquitto_property *p)
{
    (void)m;
    (void)ctx;
    (void)mid;
    (void)p;
    acked++;
    failed += reason >= 0x80;
}

/* One turn of the loop: wait for the socket, read, write, keep alive. */
static int turn(struct mosquitto *m, int timeout_ms)
{
    struct pollfd pf;
    int rc = MOSQ_ERR_SUCCESS;
    pf.fd = mosquitto_socket(m);
    pf.events = (short)(POLLIN | (mosquitto_want_write(m) ? POLLOUT : 0));
    pf.revents = 0;
    if (poll(&pf, 1, timeout_ms) > 0) {
        if (pf.revents & (POLLIN | POLLHUP | POLLERR)) {
            rc = mosquitto_loop_read(m, 1);
        }
        if (rc == MOSQ_ERR_SUCCESS && (pf.revents & POLLOUT)) {
            rc = mosquitto_loop_write(m, 1);
        }
    }
    if (rc == MOSQ_ERR_SUCCESS) {
        rc = mosquitto_loop_misc(m);
    }
    return rc;
}

int main(int argc, char **argv)
{
    struct mosquitto *m;
    char cid[64], payload[256];
    long long t0, last_change;
    long last = -1;
    double cpu0;
    long sent = 0;
    stack_parse(argc, argv, &args);
    mosquitto_lib_init();
    snprintf(cid, sizeof(cid), "stack-%s-%d", args.pub ? "pub" : "sub", (int)getpid());
    m = mosquitto_new(cid, true, NULL);
    if (m == NULL) {
        return 2;
    }
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_int_option(m, MOSQ_OPT_RECEIVE_MAXIMUM, args.window);
    mosquitto_int_option(m, MOSQ_OPT_SEND_MAXIMUM, args.window);
    mosquitto_connect_v5_callback_set(m, on_connect);
    mosquitto_subscribe_v5_callback_set(m, on_subscribe);
    mosquitto_message_v5_callback_set(m, on_message);
    mosquitto_publish_v5_callback_set(m, on_publish);
    if (mosquitto_connect_bind_v5(m, "127.0.0.1", args.port, 60, NULL, NULL) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "mosq: connect failed\n");
        return 2;
    }
    while (!connected) {
        if (turn(m, 100) != MOSQ_ERR_SUCCESS) {
            return 2;
        }
    }
    if (!args.pub) {
        if (mosquitto_subscribe_v5(m, NULL, args.topic, 1, 0, NULL) != MOSQ_ERR_SUCCESS) {
            return 2;
        }
        while (!subscribed) {
            if (turn(m, 100) != MOSQ_ERR_SUCCESS) {
                return 2;
            }
        }
        cpu0 = stack_cpu_s();
        t0 = stack_mono_ns();
        stack_ready();
    } else {
        cpu0 = stack_cpu_s();
        t0 = stack_mono_ns();
    }
    last_change = stack_mono_ns();
    for (;;) {
        long done = args.pub ? acked : received;
        if (done >= args.count) {
            break;
        }
        while (args.pub && sent < args.count && sent - acked < args.window) {
            int len = stack_payload(payload, sizeof(payload), sent);
            if (mosquitto_publish_v5(m, NULL, args.topic, len, payload, 1, false, NULL) != MOSQ_ERR_SUCCESS) {
                break;
            }
            sent++;
        }
        if (turn(m, 100) != MOSQ_ERR_SUCCESS) {
            fprintf(stderr, "mosq: connection lost\n");
            break;
        }
        if (done != last) {
            last = done;
            last_change = stack_mono_ns();
        } else if (stack_mono_ns() - last_change > 60000000000LL) {
            break;
        }
    }
    return stack_report("libmosquitto", &args, args.pub ? acked - failed : received, t0, cpu0);
}
