/**
 * @file mqtt.h
 * @brief The daemon: Paho MQTT C (async, MQTT v5) glue around the router and
 *        the outbox pump.
 *
 * Threads: Paho's receive thread calls messageArrived, which runs the router
 * and commits before returning, so Paho's PUBACK to the broker follows the
 * durable commit (a gateway killed mid-message gets it again from its
 * persistent session). The calling thread runs the pump: it sends outbox
 * entries in order while fewer than max_inflight are unacknowledged (never
 * more: Paho 1.3.12 stalls for a second when its queue exceeds the window)
 * and deletes entries once the broker acknowledged them.
 */
#ifndef MQIM_GW_MQTT_H
#define MQIM_GW_MQTT_H

#include <signal.h>

#include "config.h"

/**
 * Run the gateway until *stop becomes nonzero (set it from a signal
 * handler), then shut down cleanly: finish the outbox for up to 5 s, publish
 * the offline status, disconnect. Returns 0, or 1 on a startup error (which
 * is logged).
 */
int mqim_gateway_run(const mqim_gw_config_t *cfg, volatile sig_atomic_t *stop);

#endif /* MQIM_GW_MQTT_H */
