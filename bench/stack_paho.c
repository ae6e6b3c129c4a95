/* The client-stack benchmark (stack_common.h) on Paho MQTT C's async API,
 * the one the gateway's inbound connection uses (MQTTAsync, MQTT v5, no
 * persistence, TCP_NODELAY set as the gateway sets it). Built against
 * Debian's 1.3.12 (stack_paho) and against 1.3.14 from trixie's source
 * package (stack_paho_1314, bench/paho-src). */
#include <MQTTAsync.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "stack_common.h"

#ifndef STACK_NAME
#define STACK_NAME "paho"
#endif

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static long received, acked, failed;
static int connected, subscribed;
static stack_args_t args;

static void wake(void)
{
    pthread_cond_broadcast(&cv);
}

static int on_msg(void *ctx, char *topic, int tlen, MQTTAsync_message *m)
{
    (void)ctx;
    (void)tlen;
    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    pthread_mutex_lock(&mu);
    if (++received == args.count) {
        wake();
    }
    pthread_mutex_unlock(&mu);
    return 1; /* Paho sends the PUBACK */
}

static void on_puback(void *ctx, MQTTAsync_successData5 *r)
{
    (void)ctx;
    (void)r;
    pthread_mutex_lock(&mu);
    acked++;
    wake();
    pthread_mutex_unlock(&mu);
}

static void on_pubfail(void *ctx, MQTTAsync_failureData5 *r)
{
    (void)ctx;
    (void)r;
    pthread_mutex_lock(&mu);
    acked++;
    failed++;
    wake();
    pthread_mutex_unlock(&mu);
}

static void on_connected(void *ctx, MQTTAsync_successData5 *r)
{
    (void)ctx;
    (void)r;
    pthread_mutex_lock(&mu);
    connected = 1;
    wake();
    pthread_mutex_unlock(&mu);
}

static void on_subscribed(void *ctx, MQTTAsync_successData5 *r)
{
    (void)ctx;
    (void)r;
    pthread_mutex_lock(&mu);
    subscribed = 1;
    wake();
    pthread_mutex_unlock(&mu);
}

static void on_fail(void *ctx, MQTTAsync_failureData5 *r)
{
    (void)ctx;
    fprintf(stderr, STACK_NAME ": connect or subscribe failed (%d)\n", r != NULL ? r->code : 0);
    exit(2);
}

/* Paho sets no TCP_NODELAY: set it on this process's sockets to the broker,
 * as the gateway does (gateway/src/io/mqtt.c, nodelay_to_broker). */
static void nodelay_all(int port)
{
    for (int fd = 3; fd < 1024; fd++) {
        struct sockaddr_in a;
        socklen_t len = sizeof(a);
        int one = 1;
        if (getpeername(fd, (struct sockaddr *)&a, &len) == 0 && a.sin_family == AF_INET &&
            ntohs(a.sin_port) == port) {
            (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
    }
}

/* Wait (up to 60 s without a change) until *v >= want. */
static int wait_for(const long *v, long want)
{
    long last = -1;
    pthread_mutex_lock(&mu);
    while (*v < want) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 60;
        last = *v;
        if (pthread_cond_timedwait(&cv, &mu, &ts) == ETIMEDOUT && *v == last) {
            break;
        }
    }
    pthread_mutex_unlock(&mu);
    return *v >= want;
}

int main(int argc, char **argv)
{
    MQTTAsync c;
    MQTTAsync_createOptions cro = MQTTAsync_createOptions_initializer5;
    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer5;
    char uri[64], cid[64], payload[256];
    long long t0;
    double cpu0;
    stack_parse(argc, argv, &args);
    snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", args.port);
    snprintf(cid, sizeof(cid), "stack-%s-%d", args.pub ? "pub" : "sub", (int)getpid());
    cro.MQTTVersion = MQTTVERSION_5;
    if (MQTTAsync_createWithOptions(&c, uri, cid, MQTTCLIENT_PERSISTENCE_NONE, NULL, &cro) != MQTTASYNC_SUCCESS) {
        return 2;
    }
    MQTTAsync_setCallbacks(c, NULL, NULL, on_msg, NULL);
    co.keepAliveInterval = 60;
    co.cleanstart = 1;
    co.maxInflight = args.window;
    co.onSuccess5 = on_connected;
    co.onFailure5 = on_fail;
    if (MQTTAsync_connect(c, &co) != MQTTASYNC_SUCCESS) {
        return 2;
    }
    pthread_mutex_lock(&mu);
    while (!connected) {
        pthread_cond_wait(&cv, &mu);
    }
    pthread_mutex_unlock(&mu);
    nodelay_all(args.port);
    if (!args.pub) {
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
        ro.onSuccess5 = on_subscribed;
        ro.onFailure5 = on_fail;
        if (MQTTAsync_subscribe(c, args.topic, 1, &ro) != MQTTASYNC_SUCCESS) {
            return 2;
        }
        pthread_mutex_lock(&mu);
        while (!subscribed) {
            pthread_cond_wait(&cv, &mu);
        }
        pthread_mutex_unlock(&mu);
        cpu0 = stack_cpu_s();
        t0 = stack_mono_ns();
        stack_ready();
        (void)wait_for(&received, args.count);
        return stack_report(STACK_NAME, &args, received, t0, cpu0);
    }
    cpu0 = stack_cpu_s();
    t0 = stack_mono_ns();
    for (long i = 0; i < args.count; i++) {
        MQTTAsync_message m = MQTTAsync_message_initializer;
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
        if (!wait_for(&acked, i - args.window + 1)) {
            break;
        }
        m.payload = payload;
        m.payloadlen = stack_payload(payload, sizeof(payload), i);
        m.qos = 1;
        ro.onSuccess5 = on_puback;
        ro.onFailure5 = on_pubfail;
        while (MQTTAsync_sendMessage(c, args.topic, &m, &ro) != MQTTASYNC_SUCCESS) {
            usleep(1000);
        }
    }
    (void)wait_for(&acked, args.count);
    return stack_report(STACK_NAME, &args, acked - failed, t0, cpu0);
}
