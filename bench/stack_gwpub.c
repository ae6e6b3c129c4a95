/* The client-stack benchmark (stack_common.h) on the gateway's own MQTT v5
 * client (gateway/src/io/conn.c over mqtt5.c), driven as the pump drives
 * it. pub: as the outbox publisher (publish while the window has room,
 * poll, mqim_conn_service). sub: as the inbound connection (subscribe,
 * then every publish handed to on_publish and acknowledged after it; the
 * gateway's journal write is not part of it, as no other stack has one). */
#include <poll.h>
#include <stdbool.h>
#include <unistd.h>

#include "conn.h"
#include "stack_common.h"

static long acked, failed, received;

static mqim_status_t on_publish(void *ctx, const mqim_v5_packet_t *pk)
{
    (void)ctx;
    (void)pk;
    received++;
    return MQIM_OK;
}

/* sub: subscribe to args->topic, say ready, receive count publishes. */
static int run_sub(const stack_args_t *args)
{
    mqim_conn_config_t cfg;
    mqim_conn_t *p;
    char cid[64], err[256];
    long long t0 = 0, last_change;
    double cpu0 = 0;
    long last = -1;
    bool ready = false;
    snprintf(cid, sizeof(cid), "stack-sub-%d", (int)getpid());
    memset(&cfg, 0, sizeof(cfg));
    cfg.host = "127.0.0.1";
    cfg.port = args->port;
    cfg.client_id = cid;
    cfg.keepalive_s = 60;
    cfg.max_inflight = 1;
    cfg.sub_filter = args->topic;
    cfg.on_publish = on_publish;
    p = mqim_conn_new(&cfg);
    if (p == NULL || mqim_conn_connect(p, 5000, stack_mono_ns() / 1000000, err, sizeof(err)) != MQIM_OK) {
        fprintf(stderr, "gwsub: connect: %s\n", p != NULL ? err : "out of memory");
        return 2;
    }
    last_change = stack_mono_ns();
    while (received < args->count) {
        struct pollfd pf = { mqim_conn_fd(p), mqim_conn_poll_events(p), 0 };
        (void)poll(&pf, 1, 100);
        if (mqim_conn_service(p, stack_mono_ns() / 1000000, NULL, NULL, err, sizeof(err)) != MQIM_OK) {
            fprintf(stderr, "gwsub: %s\n", err);
            break;
        }
        if (!ready && mqim_conn_subscribed(p)) {
            ready = true;
            stack_ready();
            cpu0 = stack_cpu_s();
            t0 = stack_mono_ns();
        }
        if (received != last) {
            last = received;
            last_change = stack_mono_ns();
        } else if (stack_mono_ns() - last_change > 60000000000LL) {
            break;
        }
    }
    {
        int rc = stack_report("gateway-v5", args, received, t0, cpu0);
        mqim_conn_close(p, true);
        mqim_conn_free(p);
        return rc;
    }
}

static void on_done(void *ctx, uint64_t key, uint8_t reason)
{
    (void)ctx;
    (void)key;
    acked++;
    failed += reason >= 0x80;
}

int main(int argc, char **argv)
{
    stack_args_t args;
    mqim_conn_config_t cfg;
    mqim_conn_t *p;
    char cid[64], payload[256], err[256];
    long long t0, last_change;
    double cpu0;
    long sent = 0, last = -1;
    stack_parse(argc, argv, &args);
    if (!args.pub) {
        return run_sub(&args);
    }
    snprintf(cid, sizeof(cid), "stack-pub-%d", (int)getpid());
    memset(&cfg, 0, sizeof(cfg));
    cfg.host = "127.0.0.1";
    cfg.port = args.port;
    cfg.client_id = cid;
    cfg.keepalive_s = 60;
    cfg.max_inflight = (unsigned)args.window;
    p = mqim_conn_new(&cfg);
    if (p == NULL || mqim_conn_connect(p, 5000, stack_mono_ns() / 1000000, err, sizeof(err)) != MQIM_OK) {
        fprintf(stderr, "gwpub: connect: %s\n", p != NULL ? err : "out of memory");
        return 2;
    }
    cpu0 = stack_cpu_s();
    t0 = stack_mono_ns();
    last_change = t0;
    while (acked < args.count) {
        struct pollfd pf;
        while (sent < args.count && mqim_conn_room(p) > 0) {
            mqim_v5_publish_t m;
            int len = stack_payload(payload, sizeof(payload), sent);
            memset(&m, 0, sizeof(m));
            m.topic = mqim_str_from_cstr(args.topic);
            m.payload.ptr = payload;
            m.payload.len = (size_t)len;
            m.qos = 1;
            if (mqim_conn_publish(p, (uint64_t)sent, &m, on_done, NULL) != MQIM_OK) {
                break; /* the output buffer is full: service first */
            }
            sent++;
        }
        pf.fd = mqim_conn_fd(p);
        pf.events = mqim_conn_poll_events(p);
        pf.revents = 0;
        (void)poll(&pf, 1, 100);
        if (mqim_conn_service(p, stack_mono_ns() / 1000000, on_done, NULL, err, sizeof(err)) != MQIM_OK) {
            fprintf(stderr, "gwpub: %s\n", err);
            break;
        }
        if (acked != last) {
            last = acked;
            last_change = stack_mono_ns();
        } else if (stack_mono_ns() - last_change > 60000000000LL) {
            break;
        }
    }
    {
        int rc = stack_report("gateway-v5", &args, acked - failed, t0, cpu0);
        mqim_conn_close(p, true);
        mqim_conn_free(p);
        return rc;
    }
}
