/**
 * @file notify.h
 * @brief systemd service notifications (sd_notify): readiness, reload,
 *        stop and watchdog pings for a Type=notify unit. Without libsystemd
 *        at build time (MQIM_HAVE_SYSTEMD unset), or outside systemd (no
 *        NOTIFY_SOCKET), every call does nothing.
 */
#ifndef MQIM_GW_NOTIFY_H
#define MQIM_GW_NOTIFY_H

#include <stdint.h>

/** Send one notification ("READY=1", "STOPPING=1", "STATUS=..."); thread-safe. */
void mqim_notify(const char *state);

/** "RELOADING=1" with the MONOTONIC_USEC systemd wants next to it. */
void mqim_notify_reloading(void);

/** Half the watchdog interval systemd asked for (WATCHDOG_USEC), in ms; 0
 *  when there is no watchdog. */
int64_t mqim_notify_watchdog_interval_ms(void);

/** Send "WATCHDOG=1" when interval_ms has passed since the last ping
 *  (*last_ms, on the monotonic clock: a wall-clock step must not starve
 *  the watchdog; start it at 0). Call from the loop whose turning shows
 *  the gateway is healthy. */
void mqim_notify_watchdog(int64_t interval_ms, int64_t *last_ms);

#endif /* MQIM_GW_NOTIFY_H */
