/* The broker's side of user changes in plugin mode (broker_auth.h). */
#include "broker_auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authdb.h"
#include "pki.h"

bool mqim_broker_auth_plugin(const mqim_gw_config_t *cfg)
{
    return cfg->broker_auth_db[0] != '\0';
}

static int open_db(const mqim_gw_config_t *cfg, mqim_authdb_t **db, char *err, size_t err_len)
{
    return mqim_authdb_open(cfg->broker_auth_db, true, db, err, err_len);
}

int mqim_broker_auth_init(const mqim_gw_config_t *cfg, char *err, size_t err_len)
{
    mqim_authdb_settings_t s;
    mqim_authdb_t *db;
    int rc;
    memset(&s, 0, sizeof(s));
    snprintf(s.gateway, sizeof(s.gateway), "%s", cfg->username);
    snprintf(s.client_id, sizeof(s.client_id), "%s", cfg->client_id);
    snprintf(s.root, sizeof(s.root), "%s", cfg->root);
    /* The broker's budget covers everything the gateway's limiters allow. */
    s.rate = cfg->broker_rate_per_sec != 0u ? cfg->broker_rate_per_sec
                                            : cfg->rate_per_sec + cfg->file_rate_per_sec;
    s.burst = cfg->broker_rate_burst != 0u ? cfg->broker_rate_burst
                                           : cfg->rate_burst + cfg->file_rate_burst;
    if (cfg->rate_per_sec == 0u && cfg->broker_rate_per_sec == 0u) {
        s.rate = s.burst = 0u; /* the gateway has no limit: neither has the broker */
    }
    if (open_db(cfg, &db, err, err_len) != 0) {
        return -1;
    }
    rc = mqim_authdb_settings_put(db, &s, err, err_len);
    if (rc == 0 && cfg->password[0] != '\0') {
        rc = mqim_authdb_user_set(db, cfg->username, cfg->password, 0u, err, err_len);
    }
    mqim_authdb_close(db);
    return rc;
}

int mqim_broker_auth_user_set(const mqim_gw_config_t *cfg, const char *user, const char *password,
                              mqim_broker_2fa_t two_factor, char *err, size_t err_len)
{
    mqim_authdb_t *db;
    mqim_authdb_user_t old;
    unsigned flags = 0u;
    int rc;
    if (open_db(cfg, &db, err, err_len) != 0) {
        return -1;
    }
    if (mqim_authdb_user_get(db, user, strlen(user), &old) == 0) {
        flags = old.flags;
    }
    if (two_factor == MQIM_BROKER_2FA_ON) {
        flags |= MQIM_AUTHDB_REQUIRE_CERT;
    } else if (two_factor == MQIM_BROKER_2FA_OFF) {
        flags &= ~(unsigned)MQIM_AUTHDB_REQUIRE_CERT;
    }
    rc = mqim_authdb_user_set(db, user, password, flags, err, err_len);
    memset(&old, 0, sizeof(old));
    mqim_authdb_close(db);
    return rc;
}

int mqim_broker_auth_user_del(const mqim_gw_config_t *cfg, const char *user, char *err,
                              size_t err_len)
{
    mqim_authdb_t *db;
    int rc;
    if (open_db(cfg, &db, err, err_len) != 0) {
        return -1;
    }
    rc = mqim_authdb_user_del(db, user, err, err_len);
    mqim_authdb_close(db);
    return rc;
}

typedef struct {
    char (*serials)[MQIM_AUTHDB_SERIAL_MAX];
    size_t n, cap;
} revoked_t;

static int collect_revoked(void *ctx, const mqim_pki_cert_t *c)
{
    revoked_t *r = ctx;
    if (c->status != 'R') {
        return 0;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap != 0u ? r->cap * 2u : 16u;
        void *p = realloc(r->serials, cap * sizeof(*r->serials));
        if (p == NULL) {
            return 1;
        }
        r->serials = p;
        r->cap = cap;
    }
    snprintf(r->serials[r->n++], MQIM_AUTHDB_SERIAL_MAX, "%s", c->serial);
    return 0;
}

int mqim_broker_auth_sync_revoked(const mqim_gw_config_t *cfg, const char *user, char *err,
                                  size_t err_len)
{
    revoked_t r = { NULL, 0, 0 };
    const char **list = NULL;
    mqim_authdb_t *db;
    int rc = -1;
    if (cfg->pki_dir[0] == '\0') {
        return 0;
    }
    if (mqim_pki_list(cfg, user, collect_revoked, &r, err, err_len) != 0) {
        free(r.serials);
        return -1;
    }
    list = calloc(r.n + 1u, sizeof(*list));
    if (list != NULL && open_db(cfg, &db, err, err_len) == 0) {
        for (size_t i = 0; i < r.n; i++) {
            list[i] = r.serials[i];
        }
        rc = mqim_authdb_revoke(db, user, list, r.n, err, err_len);
        mqim_authdb_close(db);
    } else if (list == NULL) {
        snprintf(err, err_len, "out of memory");
    }
    free(list);
    free(r.serials);
    return rc;
}
