/**
 * @file mqim_posix_tcp.h
 * @brief TCP transport for Linux hosts (mqim_transport_ops_t over a
 *        non-blocking socket with poll() timeouts).
 */
#ifndef MQIM_POSIX_TCP_H
#define MQIM_POSIX_TCP_H

#include "mqim/ports.h"

typedef struct mqim_posix_tcp {
    const char *host; /**< name or address; must outlive the transport */
    uint16_t port;
    int fd;           /**< -1 when closed */
    int open_errno;   /**< why the last open failed: an errno (ECONNREFUSED, ETIMEDOUT, ...), or 0 */
    int open_gai;     /**< or the getaddrinfo() error when the name did not resolve, or 0 */
} mqim_posix_tcp_t;

/** The transport table; pass a mqim_posix_tcp_t as its context. */
extern const mqim_transport_ops_t mqim_posix_tcp_ops;

void mqim_posix_tcp_init(mqim_posix_tcp_t *t, const char *host, uint16_t port);

/** Why the last open failed, in words ("Connection refused", "lookup
 *  error: Name or service not known"), NUL-terminated in buf. */
void mqim_posix_tcp_describe(const mqim_posix_tcp_t *t, char *buf, size_t len);

/** Sleep up to ms (mqim_sleep_fn); a signal may end it early. */
void mqim_posix_sleep_ms(void *ctx, uint32_t ms);

/** A monotonic millisecond clock (mqim_clock_fn). */
uint32_t mqim_posix_clock_ms(void *ctx);

/** getrandom() entropy (mqim_entropy_fn). */
int32_t mqim_posix_entropy(void *ctx, uint8_t *buf, size_t len);

#endif /* MQIM_POSIX_TCP_H */
