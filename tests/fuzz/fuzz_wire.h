/* A scripted byte stream under the device library for fuzz targets: the
 * broker's bytes are whatever the target put in `wire` (wire_len), sends
 * vanish, the clock is `clock_ms`, entropy is constant. Include once per
 * target, after defining FUZZ_WIRE_SIZE. */
#ifndef MQIM_FUZZ_WIRE_H
#define MQIM_FUZZ_WIRE_H

#include <stdint.h>
#include <string.h>

#include "mqim/ports.h"

static uint8_t wire[FUZZ_WIRE_SIZE];
static size_t wire_len, wire_off;
static uint32_t clock_ms = 1000;

static int32_t t_send(void *ctx, const uint8_t *buf, size_t len, uint32_t timeout_ms)
{
    (void)ctx;
    (void)buf;
    (void)timeout_ms;
    return (int32_t)len;
}

static int32_t t_recv(void *ctx, uint8_t *buf, size_t cap, uint32_t timeout_ms)
{
    size_t n = wire_len - wire_off;
    (void)ctx;
    (void)timeout_ms;
    n = n < cap ? n : cap;
    memcpy(buf, wire + wire_off, n);
    wire_off += n;
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
    (void)ctx;
    memset(buf, 7, len);
    return 0;
}

static const mqim_transport_ops_t transport = { t_send, t_recv, t_open, t_close };

#endif /* MQIM_FUZZ_WIRE_H */
