/* POSIX TCP transport, clock and entropy (mqim_posix_tcp.h). */
#define _GNU_SOURCE
#include "mqim_posix_tcp.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mqim/status.h"

void mqim_posix_tcp_init(mqim_posix_tcp_t *t, const char *host, uint16_t port)
{
    t->host = host;
    t->port = port;
    t->fd = -1;
    t->open_errno = 0;
    t->open_gai = 0;
}

static int wait_fd(int fd, short events, uint32_t timeout_ms)
{
    struct pollfd p = { fd, events, 0 };
    int rc;
    do {
        rc = poll(&p, 1, (int)timeout_ms);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) {
        return -1;
    }
    if (rc > 0 && (p.revents & (POLLERR | POLLNVAL)) != 0) {
        return -1;
    }
    return rc; /* 0: timeout; 1: ready (POLLHUP lets recv report the close) */
}

static int32_t tcp_open(void *ctx, uint32_t timeout_ms)
{
    mqim_posix_tcp_t *t = ctx;
    struct addrinfo hints, *res = NULL, *ai;
    char port[8];
    int fd = -1, gai;
    snprintf(port, sizeof(port), "%u", (unsigned)t->port);
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    t->open_errno = 0;
    t->open_gai = 0;
    if ((gai = getaddrinfo(t->host, port, &hints, &res)) != 0) {
        t->open_gai = gai;
        t->open_errno = gai == EAI_SYSTEM ? errno : 0;
        return -(int32_t)MQIM_BROKER_UNREACHABLE;
    }
    for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        int one = 1, err = 0;
        socklen_t len = sizeof(err);
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            t->open_errno = errno;
            continue;
        }
        /* MQTT packets are small and latency matters more than batching. */
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            err = errno;
            if (err == EINPROGRESS) {
                /* the socket's own error says why (ECONNREFUSED, ...) */
                err = wait_fd(fd, POLLOUT, timeout_ms) == 0 ? ETIMEDOUT
                      : getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 ? errno
                                                                               : err;
            }
        }
        if (err != 0) {
            t->open_errno = err; /* for mqim_posix_tcp_describe */
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    t->fd = fd;
    if (fd >= 0) {
        t->open_errno = 0;
        return 0;
    }
    return -(int32_t)MQIM_BROKER_UNREACHABLE;
}

static int32_t tcp_send(void *ctx, const uint8_t *buf, size_t len, uint32_t timeout_ms)
{
    mqim_posix_tcp_t *t = ctx;
    ssize_t n;
    int w;
    if (t->fd < 0) {
        return -1;
    }
    w = wait_fd(t->fd, POLLOUT, timeout_ms);
    if (w <= 0) {
        return w; /* 0: not writable in time; -1: broken */
    }
    n = send(t->fd, buf, len > INT32_MAX ? INT32_MAX : len, MSG_NOSIGNAL);
    if (n < 0) {
        return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
    }
    return (int32_t)n;
}

static int32_t tcp_recv(void *ctx, uint8_t *buf, size_t cap, uint32_t timeout_ms)
{
    mqim_posix_tcp_t *t = ctx;
    ssize_t n;
    int w;
    if (t->fd < 0 || cap == 0u) {
        return t->fd < 0 ? -1 : 0;
    }
    w = wait_fd(t->fd, POLLIN, timeout_ms);
    if (w <= 0) {
        return w;
    }
    n = recv(t->fd, buf, cap > INT32_MAX ? INT32_MAX : cap, 0);
    if (n == 0) {
        return -1; /* the broker closed the connection */
    }
    if (n < 0) {
        return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
    }
    return (int32_t)n;
}

static void tcp_close(void *ctx)
{
    mqim_posix_tcp_t *t = ctx;
    if (t->fd >= 0) {
        close(t->fd);
        t->fd = -1;
    }
}

const mqim_transport_ops_t mqim_posix_tcp_ops = { tcp_send, tcp_recv, tcp_open, tcp_close };

void mqim_posix_tcp_describe(const mqim_posix_tcp_t *t, char *buf, size_t len)
{
    if (buf == NULL || len == 0u) {
        return;
    }
    if (t->open_gai != 0 && t->open_gai != EAI_SYSTEM) {
        snprintf(buf, len, "lookup error: %s", gai_strerror(t->open_gai));
    } else {
        snprintf(buf, len, "%s", t->open_errno != 0 ? strerror(t->open_errno) : "no connection");
    }
}

void mqim_posix_sleep_ms(void *ctx, uint32_t ms)
{
    struct timespec ts = { (time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L };
    (void)ctx;
    (void)nanosleep(&ts, NULL); /* EINTR: return early, the caller polls again */
}

uint32_t mqim_posix_clock_ms(void *ctx)
{
    struct timespec ts;
    (void)ctx;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

int32_t mqim_posix_entropy(void *ctx, uint8_t *buf, size_t len)
{
    size_t got = 0;
    (void)ctx;
    while (got < len) {
        ssize_t n = getrandom(buf + got, len - got, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        got += (size_t)n;
    }
    return 0;
}
