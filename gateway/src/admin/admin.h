/**
 * @file admin.h
 * @brief The operator commands of mqim-gateway that look at a running
 *        gateway or at the installation: `status`, `online`, `log-level`
 *        (through the running gateway's control socket, metrics_server.h)
 *        and `check` (check.h).
 *
 * Exit statuses: 0 healthy / done, 1 a problem found or the command failed
 * (the gateway is not running, not connected, `check` found a failure),
 * 2 usage. docs/operations.md lists them.
 */
#ifndef MQIM_GW_ADMIN_H
#define MQIM_GW_ADMIN_H

#include <stdbool.h>

#include "config.h"

/** True for the commands mqim_admin_run handles. */
bool mqim_admin_is_command(const char *cmd);

/** Run one (argv: the arguments after the command); returns the exit status. */
int mqim_admin_run(const mqim_gw_config_t *cfg, const char *conf_path, const char *cmd, int argc,
                   char **argv);

#endif /* MQIM_GW_ADMIN_H */
