/**
 * @file check.h
 * @brief `mqim-gateway check`: the installation checked the way
 *        `prosodyctl check` does, one line per finding (ok, warn, FAIL):
 *        the client id, the files and their permissions (the broker's user
 *        must be able to read its password, ACL and CRL files; secrets must
 *        not be readable by others), the certificates and their expiry
 *        (FAIL when expired or not yet valid, warn under 30 days), the
 *        clock, the data directory (writable, free space) and the broker
 *        (TCP, TLS and an MQTT CONNECT with the gateway's credentials).
 */
#ifndef MQIM_GW_CHECK_H
#define MQIM_GW_CHECK_H

#include "config.h"

/** Days before expiry from which a certificate is warned about. */
#define MQIM_CHECK_CERT_WARN_DAYS 30

/** Run every check; 0 when nothing failed (warnings allowed), 1 otherwise. */
int mqim_check_run(const mqim_gw_config_t *cfg, const char *conf_path);

#endif /* MQIM_GW_CHECK_H */
