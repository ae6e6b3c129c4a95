/**
 * @file broker_auth.h
 * @brief The broker's side of `mqim-gateway init` and `user add|del|revoke`
 *        in plugin mode (cfg->broker_auth_db set): the auth database the
 *        mqim_auth plugin reads (authdb.h). The plugin sees a change at
 *        once: nothing to reload, nothing to chown. In files mode
 *        (users.h) the password and ACL files take this role.
 */
#ifndef MQIM_GW_BROKER_AUTH_H
#define MQIM_GW_BROKER_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/** Plugin mode: cfg->broker_auth_db is set. */
bool mqim_broker_auth_plugin(const mqim_gw_config_t *cfg);

/** `init`: the settings the plugin needs (the gateway's user and client id,
 * the root, the publish budget) and the gateway's own user with
 * cfg->password. 0 or -1 with err. */
int mqim_broker_auth_init(const mqim_gw_config_t *cfg, char *err, size_t err_len);

/** What `user add` asks of the two-factor flag. */
typedef enum {
    MQIM_BROKER_2FA_KEEP, /**< as the user had it (off for a new user) */
    MQIM_BROKER_2FA_ON,   /**< a client certificate and the password (--require-cert) */
    MQIM_BROKER_2FA_OFF,  /**< --no-require-cert */
} mqim_broker_2fa_t;

/** `user add`: password NULL keeps the user's (a new user without one is
 * certificate-only). 0 or -1 with err. */
int mqim_broker_auth_user_set(const mqim_gw_config_t *cfg, const char *user, const char *password,
                              mqim_broker_2fa_t two_factor, char *err, size_t err_len);

/** `user del`: the user is gone, its clients are kicked. 0 or -1 with err. */
int mqim_broker_auth_user_del(const mqim_gw_config_t *cfg, const char *user, char *err,
                              size_t err_len);

/** After a revocation in pki_dir: every revoked certificate of user goes
 * into the database, and its clients are kicked. 0 or -1 with err. */
int mqim_broker_auth_sync_revoked(const mqim_gw_config_t *cfg, const char *user, char *err,
                                  size_t err_len);

#endif /* MQIM_GW_BROKER_AUTH_H */
