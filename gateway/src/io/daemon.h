/**
 * @file daemon.h
 * @brief The daemon: mqim_gateway_run wires the store, the router, the
 *        inbound journal and worker, and the gateway's two MQTT v5
 *        connections (conn.h), then runs the pump until stopped.
 *
 * Threads (docs/architecture.md, "Threads"): the pump thread (the caller
 * of mqim_gateway_run, pump.c) owns both connections: it reads the
 * inbound connection, appends each publish to the inbound journal and
 * queues it for the worker, and only then writes its PUBACK; it sends the
 * outbox and the direct publishes on the publisher. The inbound worker
 * (inbound.c) routes in group commits, deletes sent outbox entries and
 * runs the retention sweep: the only LMDB writer.
 */
#ifndef MQIM_GW_DAEMON_H
#define MQIM_GW_DAEMON_H

#include <signal.h>

#include "config.h"
#include "store.h"

/**
 * A reload (SIGHUP): when *requested becomes nonzero the pump thread clears
 * it and calls apply(ctx), which re-reads the configuration, updates the
 * live keys of the running config (log_level, rate_per_sec, rate_burst,
 * file_rate_per_sec, file_rate_burst) and logs what it reloaded and what
 * needs a restart; returns 0, or -1 when the file could not be read (then
 * nothing changed). The pump then hands the rate limits to the router.
 */
typedef struct mqim_gateway_reload {
    volatile sig_atomic_t *requested;
    int (*apply)(void *ctx);
    void *ctx;
} mqim_gateway_reload_t;

/**
 * Run the gateway until *stop becomes nonzero (set it from a signal
 * handler), then shut down cleanly: finish the outbox for up to 5 s, publish
 * the offline status, disconnect. reload: NULL, or what SIGHUP does. Under
 * systemd (notify.h) it sends READY=1 once subscribed (routing), WATCHDOG=1
 * from the pump loop, RELOADING=1 / READY=1 around a reload and STOPPING=1
 * at the stop. Returns 0, or 1 on a startup error (which is logged).
 */
/** The store settings of cfg (store_engine, store_dsn, data_dir, map size)
 *  for mqim_store_open_config: the daemon and the command line open the
 *  same store. */
mqim_store_config_t mqim_gateway_store_config(const mqim_gw_config_t *cfg);

int mqim_gateway_run(const mqim_gw_config_t *cfg, volatile sig_atomic_t *stop,
                     const mqim_gateway_reload_t *reload);

#endif /* MQIM_GW_DAEMON_H */
