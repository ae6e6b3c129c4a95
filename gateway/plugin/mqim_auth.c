/* mqim_auth: the mqim broker plugin for Mosquitto 2.0 (plugin API v5).
 *
 *   plugin /usr/local/lib/mqim/mqim_auth.so
 *   plugin_opt_auth_db /var/lib/mqim/auth     the gateway's auth database
 *   (an option name needs 3 characters or more: Mosquitto 2.0 refuses
 *   plugin_opt_db)
 *   plugin_opt_log_interval 10                seconds between refusal summaries
 *
 * Authenticates users from the auth database the gateway writes
 * (gateway/src/ops/authdb.h, opened MDB_RDONLY), applies the topic rules
 * and the client id binding of auth_rules.h, refuses publishes beyond each
 * user's budget before they reach the gateway, and kicks a user's clients
 * within a tick (at most 100 ms in Mosquitto 2.0) of `user del`, a new
 * password or a revoked certificate. Every refusal is logged with the
 * user, the client id and the reason; past the first in an interval they
 * are summed up in one line per user.
 *
 * Mosquitto calls everything here from its one main thread: no locks. */
#include <openssl/bn.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "auth_rules.h"
#include "authdb.h"

#define USER_BUCKETS 4096u
#define CHECK_EVERY_MS 100
#define REOPEN_EVERY_MS 1000

/* What the plugin keeps per user: the publish budget and the refusal log. */
typedef struct user_state {
    struct user_state *next;
    mqim_auth_bucket_t bucket;
    mqim_auth_lograte_t log;
    char last_reason[96];
    char name[66];
} user_state_t;

typedef struct {
    mosquitto_plugin_id_t *id;
    char db_path[4096];
    mqim_authdb_t *db;
    mqim_authdb_settings_t settings;
    uint64_t txn_id, kick_seq;
    int64_t last_check_ms, last_open_ms;
    int64_t log_interval_ms;
    user_state_t *users[USER_BUCKETS];
    user_state_t other; /* refusals of names that are not users share one entry */
} plugin_t;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static unsigned hash_name(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * 16777619u;
    }
    return h % USER_BUCKETS;
}

/* The state of a user (made when missing; NULL for an over-long name or
 * no memory: the caller then uses p->other). */
static user_state_t *user_state(plugin_t *p, const char *name, bool make)
{
    unsigned h = hash_name(name);
    user_state_t *u;
    for (u = p->users[h]; u != NULL; u = u->next) {
        if (strcmp(u->name, name) == 0) {
            return u;
        }
    }
    if (!make || strlen(name) >= sizeof(u->name) || (u = calloc(1, sizeof(*u))) == NULL) {
        return NULL;
    }
    snprintf(u->name, sizeof(u->name), "%s", name);
    u->next = p->users[h];
    p->users[h] = u;
    return u;
}

static void user_forget(plugin_t *p, const char *name)
{
    user_state_t **pp = &p->users[hash_name(name)];
    while (*pp != NULL) {
        if (strcmp((*pp)->name, name) == 0) {
            user_state_t *gone = *pp;
            *pp = gone->next;
            free(gone);
            return;
        }
        pp = &(*pp)->next;
    }
}

/* Log a refusal: in full when the user's interval allows, else counted. */
static void refuse(plugin_t *p, const char *user, bool known, const char *client_id,
                   const char *reason)
{
    user_state_t *u = known && user != NULL ? user_state(p, user, true) : NULL;
    if (u == NULL) {
        u = &p->other;
    }
    snprintf(u->last_reason, sizeof(u->last_reason), "%s", reason);
    if (mqim_auth_lograte_refusal(&u->log, p->log_interval_ms, now_ms())) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE, "mqim_auth: refused user %s (client %s): %s",
                             user != NULL ? user : "(none)", client_id != NULL ? client_id : "(none)",
                             reason);
    }
}

static bool db_ready(plugin_t *p)
{
    char err[256];
    int64_t t = now_ms();
    if (p->db != NULL) {
        return true;
    }
    if (p->last_open_ms != 0 && t - p->last_open_ms < REOPEN_EVERY_MS) {
        return false;
    }
    p->last_open_ms = t;
    if (mqim_authdb_open(p->db_path, false, &p->db, err, sizeof(err)) != 0) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "mqim_auth: %s (every login is refused until it opens)", err);
        return false;
    }
    if (mqim_authdb_settings_get(p->db, &p->settings) != 0) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "mqim_auth: %s has no settings: run `mqim-gateway init`",
                             p->db_path);
    }
    p->txn_id = mqim_authdb_txn_id(p->db);
    (void)mqim_authdb_kicks(p->db, &p->kick_seq, NULL, NULL); /* older kicks are history */
    mosquitto_log_printf(MOSQ_LOG_INFO, "mqim_auth: reading users from %s (root %s, budget %u/s burst %u)",
                         p->db_path, p->settings.root, p->settings.rate, p->settings.burst);
    return true;
}

static bool is_gateway(const plugin_t *p, const char *user)
{
    return user != NULL && p->settings.gateway[0] != '\0' && strcmp(user, p->settings.gateway) == 0;
}

static bool user_exists(void *ctx, const char *name, size_t len)
{
    plugin_t *p = ctx;
    return mqim_authdb_user_get(p->db, name, len, NULL) == 0;
}

/* The client certificate's CN and serial (hex), when it has one. */
static bool cert_identity(struct mosquitto *client, char *cn, size_t cn_cap, char *serial,
                          size_t serial_cap)
{
    X509 *cert = mosquitto_client_certificate(client);
    X509_NAME *name;
    BIGNUM *bn;
    char *hex;
    int len;
    if (cert == NULL) {
        return false;
    }
    name = X509_get_subject_name(cert);
    len = name != NULL ? X509_NAME_get_text_by_NID(name, NID_commonName, cn, (int)cn_cap) : -1;
    bn = ASN1_INTEGER_to_BN(X509_get_serialNumber(cert), NULL);
    hex = bn != NULL ? BN_bn2hex(bn) : NULL;
    snprintf(serial, serial_cap, "%s", hex != NULL ? hex : "");
    OPENSSL_free(hex);
    BN_free(bn);
    X509_free(cert);
    if (len < 0 || (size_t)len != strlen(cn)) {
        cn[0] = '\0'; /* none, or an embedded NUL */
    }
    return true;
}

/* The connection's checks (basic auth): NULL when it may connect, else
 * the reason. Sets the user name from the certificate when none was given. */
static const char *check_login(plugin_t *p, struct mosquitto *client, const char *username,
                               const char *password, char *cn, size_t cn_cap, const char **user_out)
{
    char serial[MQIM_AUTHDB_SERIAL_MAX] = "";
    mqim_authdb_user_t rec;
    bool has_cert = cert_identity(client, cn, cn_cap, serial, sizeof(serial));
    const char *user = username;
    int found;
    if (has_cert && cn[0] == '\0') {
        return "client certificate without a usable CN";
    }
    if (user == NULL) {
        if (!has_cert) {
            return "no user name";
        }
        user = cn; /* a certificate user: its CN names it */
    }
    *user_out = user;
    found = mqim_authdb_user_get(p->db, user, strlen(user), &rec);
    if (found != 0) {
        return found < 0 ? "auth database error" : "unknown user";
    }
    if (has_cert) {
        if (strcmp(cn, user) != 0) {
            return "client certificate is another user's";
        }
        if (mqim_authdb_serial_revoked(p->db, serial) != 0) {
            return "client certificate revoked";
        }
    } else if ((rec.flags & MQIM_AUTHDB_REQUIRE_CERT) != 0u) {
        return "two-factor user without a client certificate";
    }
    if (rec.hash[0] == '\0') {
        if (!has_cert) {
            return "certificate-only user without a certificate";
        }
    } else if (password != NULL || !has_cert || (rec.flags & MQIM_AUTHDB_REQUIRE_CERT) != 0u) {
        if (password == NULL || !mqim_authdb_check_password(rec.hash, password)) {
            return password == NULL ? "no password" : "wrong password";
        }
    }
    switch (mqim_auth_client_id_check(user, is_gateway(p, user), mosquitto_client_id(client),
                                      p->settings.client_id, user_exists, p)) {
    case MQIM_AUTH_CID_OK:
        break;
    case MQIM_AUTH_CID_OTHER_USER:
        return "client id belongs to another user";
    case MQIM_AUTH_CID_GATEWAY:
        return "client id is the gateway's";
    default:
        return "client id empty or too long";
    }
    if (username == NULL && mosquitto_set_username(client, user) != MOSQ_ERR_SUCCESS) {
        return "cannot set the user name";
    }
    return NULL;
}

static int on_basic_auth(int event, void *data, void *userdata)
{
    struct mosquitto_evt_basic_auth *ev = data;
    plugin_t *p = userdata;
    const char *user = ev->username, *why;
    char cn[128] = ""; /* a certificate user's name, when the client gave none */
    (void)event;
    if (!db_ready(p)) {
        refuse(p, user, false, mosquitto_client_id(ev->client), "auth database not readable");
        return MOSQ_ERR_AUTH;
    }
    why = check_login(p, ev->client, ev->username, ev->password, cn, sizeof(cn), &user);
    if (why != NULL) {
        refuse(p, user, user != NULL && mqim_authdb_user_get(p->db, user, strlen(user), NULL) == 0,
               mosquitto_client_id(ev->client), why);
        return MOSQ_ERR_AUTH;
    }
    return MOSQ_ERR_SUCCESS;
}

static int on_acl_check(int event, void *data, void *userdata)
{
    struct mosquitto_evt_acl_check *ev = data;
    plugin_t *p = userdata;
    const char *user = mosquitto_client_username(ev->client);
    (void)event;
    if (ev->access == MOSQ_ACL_SUBSCRIBE || ev->access == MOSQ_ACL_UNSUBSCRIBE) {
        return MOSQ_ERR_SUCCESS; /* reads are checked at delivery, as with acl_file */
    }
    if (user == NULL || p->settings.root[0] == '\0') {
        return MOSQ_ERR_ACL_DENIED;
    }
    if (mqim_auth_topic_allowed(p->settings.root, user, is_gateway(p, user), ev->topic,
                                ev->access == MOSQ_ACL_WRITE ? MQIM_AUTH_WRITE : MQIM_AUTH_READ)) {
        return MOSQ_ERR_SUCCESS;
    }
    if (ev->access == MOSQ_ACL_WRITE) {
        /* Deliveries a wide subscription filters out are not refusals. */
        char reason[300];
        snprintf(reason, sizeof(reason), "publish to %.256s not allowed", ev->topic);
        refuse(p, user, true, mosquitto_client_id(ev->client), reason);
    }
    return MOSQ_ERR_ACL_DENIED;
}

/* A publish the topic rules allowed: within the user's budget? */
static int on_message(int event, void *data, void *userdata)
{
    struct mosquitto_evt_message *ev = data;
    plugin_t *p = userdata;
    const char *user = mosquitto_client_username(ev->client);
    user_state_t *u;
    (void)event;
    if (user == NULL || is_gateway(p, user) || p->settings.rate == 0u) {
        return MOSQ_ERR_SUCCESS;
    }
    u = user_state(p, user, true);
    if (u == NULL || mqim_auth_bucket_take(&u->bucket, p->settings.rate, p->settings.burst, now_ms())) {
        return MOSQ_ERR_SUCCESS;
    }
    refuse(p, user, true, mosquitto_client_id(ev->client), "publish budget exceeded");
    return MOSQ_ERR_ACL_DENIED; /* v5: PUBACK 0x87; v3.1.1: acknowledged and dropped */
}

static void kick(void *ctx, const char *user)
{
    plugin_t *p = ctx;
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "mqim_auth: user %s changed (removed, new password or "
                         "certificate revoked): disconnecting its clients", user);
    mosquitto_kick_client_by_username(user, false);
    user_forget(p, user);
}

static void flush_one(plugin_t *p, user_state_t *u, int64_t t)
{
    uint64_t n = mqim_auth_lograte_flush(&u->log, p->log_interval_ms, t);
    if (n > 0u) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE,
                             "mqim_auth: refused user %s %llu more times in the last %lld s "
                             "(last reason: %s)",
                             u == &p->other ? "(unknown users)" : u->name, (unsigned long long)n,
                             (long long)(p->log_interval_ms / 1000), u->last_reason);
    }
}

static void flush_summaries(plugin_t *p, int64_t t)
{
    for (unsigned h = 0; h < USER_BUCKETS; h++) {
        for (user_state_t *u = p->users[h]; u != NULL; u = u->next) {
            flush_one(p, u, t);
        }
    }
    flush_one(p, &p->other, t);
}

static int on_tick(int event, void *data, void *userdata)
{
    plugin_t *p = userdata;
    int64_t t = now_ms();
    uint64_t id;
    (void)event;
    (void)data;
    if (t - p->last_check_ms < CHECK_EVERY_MS || !db_ready(p)) {
        return MOSQ_ERR_SUCCESS;
    }
    p->last_check_ms = t;
    id = mqim_authdb_txn_id(p->db);
    if (id != 0u && id != p->txn_id) {
        p->txn_id = id;
        (void)mqim_authdb_settings_get(p->db, &p->settings);
        (void)mqim_authdb_kicks(p->db, &p->kick_seq, kick, p);
    }
    flush_summaries(p, t);
    return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
    for (int i = 0; i < supported_version_count; i++) {
        if (supported_versions[i] == 5) {
            return 5;
        }
    }
    return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
                          struct mosquitto_opt *options, int option_count)
{
    plugin_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return MOSQ_ERR_NOMEM;
    }
    p->id = identifier;
    p->log_interval_ms = 10000;
    for (int i = 0; i < option_count; i++) {
        if (strcmp(options[i].key, "auth_db") == 0) {
            snprintf(p->db_path, sizeof(p->db_path), "%s", options[i].value);
        } else if (strcmp(options[i].key, "log_interval") == 0) {
            long s = strtol(options[i].value, NULL, 10);
            p->log_interval_ms = (s >= 1 && s <= 3600) ? s * 1000 : 10000;
        } else {
            mosquitto_log_printf(MOSQ_LOG_ERR, "mqim_auth: unknown option plugin_opt_%s", options[i].key);
            free(p);
            return MOSQ_ERR_INVAL;
        }
    }
    if (p->db_path[0] == '\0') {
        mosquitto_log_printf(MOSQ_LOG_ERR, "mqim_auth: plugin_opt_auth_db (the gateway's broker_auth_db) is not set");
        free(p);
        return MOSQ_ERR_INVAL;
    }
    (void)db_ready(p); /* a database made later is opened at a later tick */
    *userdata = p;
    if (mosquitto_callback_register(identifier, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL, p) != 0 ||
        mosquitto_callback_register(identifier, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL, p) != 0 ||
        mosquitto_callback_register(identifier, MOSQ_EVT_MESSAGE, on_message, NULL, p) != 0 ||
        mosquitto_callback_register(identifier, MOSQ_EVT_TICK, on_tick, NULL, p) != 0) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "mqim_auth: cannot register its callbacks");
        return MOSQ_ERR_UNKNOWN;
    }
    return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
    plugin_t *p = userdata;
    (void)options;
    (void)option_count;
    if (p == NULL) {
        return MOSQ_ERR_SUCCESS;
    }
    mosquitto_callback_unregister(p->id, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL);
    mosquitto_callback_unregister(p->id, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL);
    mosquitto_callback_unregister(p->id, MOSQ_EVT_MESSAGE, on_message, NULL);
    mosquitto_callback_unregister(p->id, MOSQ_EVT_TICK, on_tick, NULL);
    for (unsigned h = 0; h < USER_BUCKETS; h++) {
        while (p->users[h] != NULL) {
            user_state_t *u = p->users[h];
            p->users[h] = u->next;
            free(u);
        }
    }
    mqim_authdb_close(p->db);
    free(p);
    return MOSQ_ERR_SUCCESS;
}
