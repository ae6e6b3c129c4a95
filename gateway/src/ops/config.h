/**
 * @file config.h
 * @brief mqim-gateway configuration: defaults, then the config file, then
 *        command-line flags (later wins). File format: Mosquitto style, one
 *        "key value" per line, '#' starts a comment, blank lines ignored.
 *        Keys are the field names below (e.g. "broker_port 1883").
 */
#ifndef MQIM_GW_CONFIG_H
#define MQIM_GW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MQIM_GW_PATH_MAX 1024

typedef struct mqim_gw_config {
    char root[33];                     /**< topic root; "im" */
    char broker_host[256];             /**< "127.0.0.1" */
    int broker_port;                   /**< 1883 */
    char username[65];                 /**< gateway's broker user; "mqim-gateway" */
    char password[256];                /**< from password_file when set; never logged */
    char password_file[MQIM_GW_PATH_MAX]; /**< file holding the gateway's password (first line) */
    char client_id[128];               /**< MQTT client id; "mqim-gateway" (persistent session) */
    char share_group[65];              /**< "" or a shared subscription group: the inbound filter is then $share/GROUP/{root}/u/+/out/#; "" */
    char data_dir[MQIM_GW_PATH_MAX];   /**< LMDB environment, lock, inbound journal; "var/gateway" */
    uint64_t map_size_mb;              /**< LMDB map size in MiB; 1024 */
    /* The store engine (docs/scale.md): "lmdb" (embedded, in data_dir) or
     * "postgresql" (store_dsn; data_dir still holds the lock and the
     * inbound journal, one per gateway instance). */
    char store_engine[16];             /**< "lmdb" */
    char store_dsn[MQIM_GW_PATH_MAX];  /**< libpq connection string; "" (may hold a password: never logged) */
    bool accept_any_user;              /**< route to any valid name, not only registered users */
    unsigned max_inflight;             /**< outstanding QoS>0 publishes to the broker; 64 */
    unsigned keepalive_s;              /**< MQTT keep-alive of both broker connections; 20 */
    uint64_t file_max_mb;              /**< largest file accepted, MiB; 64 */
    unsigned file_chunk_bytes;         /**< chunk size when an upload names none; 1024 */
    unsigned file_chunk_max;           /**< largest chunk up or down; MQIM_FILE_CHUNK_LIMIT */
    unsigned file_rate_per_sec;        /**< per-user requests on out/file per second; 2000 (0 = no limit) */
    unsigned file_rate_burst;          /**< per-user burst on out/file; 1000 */
    unsigned rate_per_sec;             /**< per-user publishes per second; 100 (0 = no limit) */
    unsigned rate_burst;               /**< per-user burst; 500 */
    uint64_t inbox_quota;              /**< max stored messages per inbox; 100000 (0 = none) */
    uint64_t retain_count;             /**< keep at most this many per inbox; 0 = no count limit */
    uint64_t retain_days;              /**< drop messages older than this; 0 = keep forever */
    uint64_t group_retain_count;       /**< messages a group keeps; 0 = no count limit */
    uint64_t group_retain_days;        /**< drop group messages older than this; 0 = keep forever */
    unsigned sync_page;                /**< max messages per sync/history page; 100 */
    unsigned group_max_members;        /**< members of one group, 2..256; 256 */
    unsigned groups_per_user;          /**< groups a user may be in; 100 */
    unsigned stats_interval_s;         /**< publish {root}/gateway/stats every N s; 10 (0 = off) */
    int log_level;                     /**< mqim_log_level_t; INFO */
    /* Broker files managed by `mqim-gateway user ...` */
    char broker_password_file[MQIM_GW_PATH_MAX]; /**< mosquitto password_file; "var/mosquitto/passwd" */
    char broker_acl_file[MQIM_GW_PATH_MAX];      /**< mosquitto acl_file; "var/mosquitto/acl" */
    char broker_pid_file[MQIM_GW_PATH_MAX];      /**< mosquitto pid_file, SIGHUP to reload; "var/mosquitto/mosquitto.pid" */
    /* The mqim_auth broker plugin instead of those files (docs/security.md) */
    char broker_auth_db[MQIM_GW_PATH_MAX]; /**< the plugin's auth database (authdb.h); "" = files mode */
    unsigned broker_rate_per_sec;      /**< per-user publish budget at the broker; 0 = rate_per_sec + file_rate_per_sec */
    unsigned broker_rate_burst;        /**< its burst; 0 = rate_burst + file_rate_burst */
    /* TLS to the broker (docs/deploy.md, "TLS and provisioning") */
    bool broker_tls;                   /**< connect with TLS (ssl://); false */
    char broker_cafile[MQIM_GW_PATH_MAX];   /**< CA the broker's certificate must chain to; "" = system CAs */
    char broker_certfile[MQIM_GW_PATH_MAX]; /**< the gateway's client certificate (with broker_keyfile); "" */
    char broker_keyfile[MQIM_GW_PATH_MAX];  /**< its private key; "" */
    /* Device certificates issued by `user add NAME --cert` */
    char pki_dir[MQIM_GW_PATH_MAX];    /**< holds ca.crt, ca.key (scripts/pki), the CA database and crl.pem; "" = no certificates */
    unsigned cert_days;                /**< validity of an issued device certificate; 825 */
    /* Monitoring (docs/operations.md) */
    char metrics_listen[64];           /**< "ADDR:PORT" of the OpenMetrics endpoint ("127.0.0.1:9464",
                                            "[::1]:9464"); "" = off (the default) */
    bool metrics_allow_remote;         /**< allow a non-loopback metrics_listen; false */
} mqim_gw_config_t;

/** Fill the defaults listed above. */
void mqim_gw_config_defaults(mqim_gw_config_t *cfg);

/**
 * Read a config file over the current values. On error writes a readable
 * message ("FILE:LINE: unknown key 'x'") into err and returns -1.
 * If password_file is set (here or before), the password is read from it.
 */
int mqim_gw_config_load(mqim_gw_config_t *cfg, const char *path, char *err, size_t err_len);

/**
 * Apply one "key value" setting (used by the file reader and by flags:
 * --broker-port 1884 is key "broker_port"). Returns -1 with a message in err
 * for an unknown key or a bad value (out of range, not a number, too long).
 */
int mqim_gw_config_set(mqim_gw_config_t *cfg, const char *key, const char *value, char *err,
                       size_t err_len);

/**
 * A reload (SIGHUP): compare the running config with `next` (read again:
 * defaults, file, flags). The keys that apply live (log_level, rate_per_sec,
 * rate_burst, file_rate_per_sec, file_rate_burst) are copied from next into
 * running and listed in `applied` as "key old->new, ..."; the names of the
 * other keys that differ (and "password" when password_file now holds
 * another one) go to `restart`: they keep their running values until the
 * gateway restarts. Each list is "" when empty and cut to its capacity.
 */
void mqim_gw_config_reload(mqim_gw_config_t *running, const mqim_gw_config_t *next, char *applied,
                           size_t applied_cap, char *restart, size_t restart_cap);

/** Shortest client_id the gateway accepts at `run` (see below). */
#define MQIM_GW_CLIENT_ID_MIN 16u

/**
 * True when client_id is one another broker user could guess: the default
 * "mqim-gateway", the gateway's user name, or shorter than
 * MQIM_GW_CLIENT_ID_MIN. Mosquitto lets any authenticated user connect with
 * any client id, and one who used the gateway's would take its persistent
 * session over (docs/security.md), so `run` refuses such an id.
 */
bool mqim_gw_config_client_id_guessable(const mqim_gw_config_t *cfg);

/**
 * Parse metrics_listen: an IPv4 address or a bracketed IPv6 address, ':',
 * a port 1..65535 ("localhost" is 127.0.0.1). Fills addr (the bare
 * address), *port and *loopback. -1 with a message in err when malformed.
 */
int mqim_gw_metrics_listen_parse(const char *text, char *addr, size_t addr_cap, int *port,
                                 bool *loopback, char *err, size_t err_len);

/** Check cross-field rules (root valid, port range, sizes > 0). -1 + err on failure. */
int mqim_gw_config_validate(const mqim_gw_config_t *cfg, char *err, size_t err_len);

#endif /* MQIM_GW_CONFIG_H */
