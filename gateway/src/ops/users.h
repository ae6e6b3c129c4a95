/**
 * @file users.h
 * @brief Broker-side user administration for `mqim-gateway user add|del|list`:
 *        the Mosquitto password file (via mosquitto_passwd) and the ACL file
 *        with the mqim patterns, then SIGHUP to the broker so it reloads.
 *        The gateway's own user registry (LMDB) is updated by the caller.
 */
#ifndef MQIM_GW_USERS_H
#define MQIM_GW_USERS_H

#include <stddef.h>

#include "config.h"

/**
 * Write the ACL file with the mqim patterns for root cfg->root (idempotent;
 * rewritten atomically via a temp file + rename, mode 0600). The gateway user
 * (cfg->username) gets readwrite on {root}/#.
 * @return 0 or -1 with err.
 */
int mqim_users_write_acl(const mqim_gw_config_t *cfg, char *err, size_t err_len);

/**
 * Add or update a user in the broker password file (created 0600 when
 * missing) with mosquitto_passwd; the password goes to its stdin, never to
 * argv (readable by every local user in /proc) or to logs.
 * The name must pass mqim_name_check(MQIM_NAME_USER). @return 0 or -1 with err.
 */
int mqim_users_passwd_set(const mqim_gw_config_t *cfg, const char *user, const char *password,
                          char *err, size_t err_len);

/**
 * Remove a user from the password file (mosquitto_passwd -D). A user or file
 * that is not there counts as removed. 0 or -1 with err.
 */
int mqim_users_passwd_del(const mqim_gw_config_t *cfg, const char *user, char *err,
                          size_t err_len);

/**
 * Ask the broker to reload its password and ACL files: SIGHUP to the pid in
 * cfg->broker_pid_file. Returns 0, or 1 when no broker is running (not an
 * error: the files are read at broker start), or -1 with err.
 */
int mqim_users_reload_broker(const mqim_gw_config_t *cfg, char *err, size_t err_len);

/**
 * Run a tool (argv[0], looked up in PATH) through fork + execvp, never a
 * shell, so no argument is ever parsed twice. `input` (may be NULL) is its
 * stdin, stdout goes to /dev/null, stderr is captured into out_msg. `cwd`
 * (may be NULL) is the child's working directory. The child runs with umask
 * 077. Returns the exit status (0..255), or -1 with err when it could not
 * run at all (not found, killed).
 */
int mqim_users_run(char *const argv[], const char *cwd, const char *input, char *out_msg,
                   size_t out_cap, char *err, size_t err_len);

/** Fill buf (len + 1 bytes) with a NUL-terminated random password of len characters [A-Za-z0-9] from getrandom(). 0 or -1. */
int mqim_users_random_password(char *buf, size_t len);

#endif /* MQIM_GW_USERS_H */
