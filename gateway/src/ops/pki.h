/**
 * @file pki.h
 * @brief Device certificates for `mqim-gateway user add NAME --cert` and
 *        their revocation by `user del NAME`, through the openssl command
 *        (fork + exec, never a shell) and an `openssl ca` database.
 *
 * Layout of cfg->pki_dir (ca.crt and ca.key come from scripts/pki or the
 * operator's own CA; the rest is made here):
 *
 *     ca.crt, ca.key        the CA that signs device certificates
 *     crl.pem               revoked certificates: Mosquitto's crlfile (0644)
 *     ca/openssl.cnf        the `openssl ca` config, rewritten on every use
 *     ca/index.txt          every certificate issued: serial, CN, V/R
 *     ca/serial, crlnumber  openssl's counters (the first serial is random)
 *     ca/certs/SERIAL.pem   a copy of each certificate issued (for -revoke)
 *     ca/lock               flock(): one operator command at a time
 *
 * The certificate's CN is the user name: a listener with
 * require_certificate and use_identity_as_username makes it the MQTT user
 * (the ACL patterns then apply as for a password user).
 */
#ifndef MQIM_GW_PKI_H
#define MQIM_GW_PKI_H

#include <stddef.h>

#include "config.h"

/**
 * Make the CA database in cfg->pki_dir when missing (needs ca.crt and
 * ca.key there) and crl.pem when missing (an empty CRL: Mosquitto refuses
 * to start without its crlfile). Idempotent. 0, or -1 with err.
 */
int mqim_pki_init(const mqim_gw_config_t *cfg, char *err, size_t err_len);

/**
 * Issue a client certificate for user (CN=user, clientAuth, cert_days days)
 * with a new P-256 key: out_dir/USER.key (0600) and out_dir/USER.crt.
 * out_dir is created (0700) when missing; existing files of that name are
 * replaced (atomically: a failed run leaves the old ones). The full paths
 * are written into crt_path and key_path (path_cap bytes each).
 * 0, or -1 with err.
 */
int mqim_pki_issue(const mqim_gw_config_t *cfg, const char *user, const char *out_dir,
                   char *crt_path, char *key_path, size_t path_cap, char *err, size_t err_len);

/** One certificate of the database, as index.txt has it. */
typedef struct mqim_pki_cert {
    const char *serial; /**< hex, as openssl prints it */
    char status;        /**< 'V' valid, 'R' revoked, 'E' expired (openssl ca -updatedb) */
    const char *expiry; /**< YYMMDDHHMMSSZ (UTC) */
} mqim_pki_cert_t;

/** Call fn for each certificate issued to user, oldest first (fn returns
 * nonzero to stop). 0, or -1 with err. */
int mqim_pki_list(const mqim_gw_config_t *cfg, const char *user,
                  int (*fn)(void *ctx, const mqim_pki_cert_t *c), void *ctx, char *err,
                  size_t err_len);

/**
 * Revoke the valid certificates issued to user: all of them (serial NULL)
 * or the one with that serial (rotation: the new one stays valid); then
 * rewrite crl.pem when any was revoked. *revoked gets the count (0: nothing
 * changed). A serial that was never issued to user is an error; one already
 * revoked is not. 0, or -1 with err.
 * The broker reads the new CRL after SIGHUP (mqim_users_reload_broker).
 */
int mqim_pki_revoke(const mqim_gw_config_t *cfg, const char *user, const char *serial,
                    unsigned *revoked, char *err, size_t err_len);

#endif /* MQIM_GW_PKI_H */
