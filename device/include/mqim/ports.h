/**
 * @file ports.h
 * @brief What a board supplies to libmqim-device: transport, clock and
 *        entropy (the outbox port is in outbox.h). Each is a table of
 *        functions plus a context pointer the library passes back; the
 *        library never allocates, blocks only inside these calls, and calls
 *        them from the thread that calls its poll function.
 */
#ifndef MQIM_PORTS_H
#define MQIM_PORTS_H

#include <stddef.h>
#include <stdint.h>

/** A byte stream to the broker: TCP, TLS, or a UART bridged to TCP. */
typedef struct mqim_transport_ops {
    /**
     * Send up to len bytes, waiting at most timeout_ms.
     * @return > 0: bytes sent (may be fewer than len; the library sends the
     *         rest later); 0: nothing could be sent before the timeout (not
     *         an error); < 0: the connection is broken or closed (the library
     *         closes it and reconnects).
     */
    int32_t (*send)(void *ctx, const uint8_t *buf, size_t len, uint32_t timeout_ms);
    /**
     * Receive up to cap bytes, waiting at most timeout_ms for the first.
     * @return > 0: bytes received; 0: nothing arrived before the timeout
     *         (not an error); < 0: closed by the peer or broken.
     */
    int32_t (*recv)(void *ctx, uint8_t *buf, size_t cap, uint32_t timeout_ms);
    /**
     * Open the connection (TCP connect, TLS handshake).
     * @return 0 on success; < 0 on failure, preferably the negated status
     *         that says why, so the application can act on it:
     *         -MQIM_BROKER_UNREACHABLE (refused, timed out, the name does
     *         not resolve), -MQIM_TLS_VERIFY_FAILED (the broker's
     *         certificate does not verify), -MQIM_TLS_HANDSHAKE_FAILED (any
     *         other TLS failure). Any other negative value counts as
     *         MQIM_BROKER_UNREACHABLE.
     */
    int32_t (*open)(void *ctx, uint32_t timeout_ms);
    /** Close it; safe to call when already closed. */
    void (*close)(void *ctx);
} mqim_transport_ops_t;

/** Milliseconds from any origin, monotonic, wrapping at 2^32 (the library
 *  compares times by unsigned difference, so the wrap is harmless). */
typedef uint32_t (*mqim_clock_fn)(void *ctx);

/** Fill buf with len random bytes (message ids, backoff jitter). Return 0, or
 *  < 0 when no entropy is available (the library then reports an error
 *  instead of using predictable ids). */
typedef int32_t (*mqim_entropy_fn)(void *ctx, uint8_t *buf, size_t len);

/**
 * Wait up to ms: the library has nothing to do before then unless the
 * broker sends something (which only matters while a connection is open,
 * and then the library waits inside the transport's recv instead). May
 * return early (an interrupt, a signal). On a host: nanosleep or poll; on
 * a microcontroller: WFI until the tick passes, so the core sleeps.
 */
typedef void (*mqim_sleep_fn)(void *ctx, uint32_t ms);

#endif /* MQIM_PORTS_H */
