/**
 * @file device_config.h
 * @brief Compile-time options of libmqim-device, each with its default.
 *
 * Override any of them with -D on the compiler line, or put them in a header
 * of your own and build with -DMQIM_DEVICE_CONFIG_FILE='"my_config.h"'.
 * device_config_check.h then rejects impossible combinations at compile time.
 */
#ifndef MQIM_DEVICE_CONFIG_H
#define MQIM_DEVICE_CONFIG_H

#ifdef MQIM_DEVICE_CONFIG_FILE
#include MQIM_DEVICE_CONFIG_FILE
#endif

/** Receive buffer, bytes: the largest MQTT packet the device accepts. A
 *  larger packet is refused with MQIM_MQTT_TOO_LARGE. Min 128. */
#ifndef MQIM_CFG_RX_BUFFER_SIZE
#define MQIM_CFG_RX_BUFFER_SIZE 2048
#endif

/** Transmit buffer, bytes: the largest packet the device sends. Min 128. */
#ifndef MQIM_CFG_TX_BUFFER_SIZE
#define MQIM_CFG_TX_BUFFER_SIZE 2048
#endif

/** The session's own transmit buffer, bytes: the packets it encodes whole
 *  (CONNECT with its will, user name and password; SUBSCRIBE; acks) and
 *  the head of a PUBLISH, whose payload goes out from where it lies (the
 *  outbox entry, the caller's memory), so no publish is copied. The
 *  default fits a CONNECT of the longest root, user and device names with
 *  a password of up to 275 bytes; a larger CONNECT fails with MQIM_BUFFER_TOO_SMALL
 *  (as the link's reason). At most MQIM_CFG_TX_BUFFER_SIZE is used. */
#ifndef MQIM_CFG_TX_CONTROL_SIZE
#define MQIM_CFG_TX_CONTROL_SIZE 640
#endif
#define MQIM_SESSION_TX_SIZE \
    (MQIM_CFG_TX_CONTROL_SIZE < MQIM_CFG_TX_BUFFER_SIZE ? MQIM_CFG_TX_CONTROL_SIZE : MQIM_CFG_TX_BUFFER_SIZE)

/** QoS 1/2 publishes in flight at once; beyond it, sends wait
 *  (MQIM_INFLIGHT_FULL is back-pressure). 1..65535. */
#ifndef MQIM_CFG_INFLIGHT_MAX
#define MQIM_CFG_INFLIGHT_MAX 8
#endif

/** Received QoS 2 publishes awaiting PUBREL at once. >= 1. */
#ifndef MQIM_CFG_INBOUND_QOS2_MAX
#define MQIM_CFG_INBOUND_QOS2_MAX 8
#endif

/** MQTT keep alive, seconds (0 disables it). 0..65535. */
#ifndef MQIM_CFG_KEEPALIVE_S
#define MQIM_CFG_KEEPALIVE_S 60
#endif

/** How long to wait for PINGRESP before declaring the link dead, ms.
 *  Must be shorter than the keep alive. */
#ifndef MQIM_CFG_PINGRESP_TIMEOUT_MS
#define MQIM_CFG_PINGRESP_TIMEOUT_MS 5000
#endif

/** Time for the transport to open, ms: the TCP connect and a TLS handshake
 *  (slow on a small CPU: two ECC operations). */
#ifndef MQIM_CFG_OPEN_TIMEOUT_MS
#define MQIM_CFG_OPEN_TIMEOUT_MS 10000
#endif

/** Reconnect backoff: first delay and cap, ms (exponential, with jitter). */
#ifndef MQIM_CFG_BACKOFF_MIN_MS
#define MQIM_CFG_BACKOFF_MIN_MS 1000
#endif
#ifndef MQIM_CFG_BACKOFF_MAX_MS
#define MQIM_CFG_BACKOFF_MAX_MS 60000
#endif

/** File transfer (file_transfer.h): bytes per chunk, up and down. Each
 *  request or response carries a chunk in base64 (4/3 larger) plus about
 *  200 bytes, which must fit MQIM_CFG_TX_BUFFER_SIZE (uploads) and
 *  MQIM_CFG_RX_BUFFER_SIZE (downloads). 64..8192. */
#ifndef MQIM_CFG_FILE_CHUNK_SIZE
#define MQIM_CFG_FILE_CHUNK_SIZE 1024
#endif

/** File transfer: chunk requests outstanding at once (a window, so a
 *  transfer is not one round trip per chunk). 1..MQIM_CFG_INFLIGHT_MAX. */
#ifndef MQIM_CFG_FILE_WINDOW
#define MQIM_CFG_FILE_WINDOW 4
#endif

/** File transfer: no progress for this long (answers lost, e.g. across a
 *  broker restart): ask the gateway where the transfer stands and go on
 *  from there. */
#ifndef MQIM_CFG_FILE_STALL_MS
#define MQIM_CFG_FILE_STALL_MS 10000
#endif

/** End-to-end encryption (e2e.h): recipient devices one encrypted message
 *  can carry (the recipient's and the sender's own devices; the format
 *  allows 64). Each costs about 110 bytes of the publish and 80 bytes of
 *  RAM while sealing. 1..64. */
#ifndef MQIM_CFG_E2E_RECIPIENTS_MAX
#define MQIM_CFG_E2E_RECIPIENTS_MAX 8
#endif

/** E2E: the largest text the e2e layer seals or opens (bytes of UTF-8).
 *  Its ciphertext in base64 plus the recipients must fit
 *  MQIM_CFG_TX_BUFFER_SIZE. 1..MQIM_BODY_MAX. */
#ifndef MQIM_CFG_E2E_TEXT_MAX
#define MQIM_CFG_E2E_TEXT_MAX 512
#endif

/** E2E: opened messages remembered to refuse a replay (docs/e2e.md, step 8);
 *  8 bytes of RAM each. 1..1024. */
#ifndef MQIM_CFG_E2E_REPLAY_WINDOW
#define MQIM_CFG_E2E_REPLAY_WINDOW 16
#endif

/** Outbox entries sent without their confirmation (the echo, a `sent` or a
 *  `rejected` ack) at most. A
 *  replay of a deep outbox after each reconnect or gateway restart goes out
 *  this many at a time, the rest as acks arrive: all at once, a backlog of
 *  duplicates reached the gateway faster than it acked them and fed itself
 *  (docs/reliability.md, "Replay storm"). 1..65535. */
#ifndef MQIM_CFG_OUTBOX_WINDOW
#define MQIM_CFG_OUTBOX_WINDOW 32
#endif

#include "mqim/device_config_check.h"

#endif /* MQIM_DEVICE_CONFIG_H */
