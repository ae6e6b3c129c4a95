/* Gateway configuration (config.h): one table of keys drives the file
 * reader and the command-line flags alike. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>

#include "log.h"
#include "mqim/limits.h"
#include "mqim/name.h"
#include "mqim/topic.h"

typedef enum { K_STR, K_INT, K_UINT, K_U64, K_BOOL, K_LEVEL } key_type_t;

typedef struct key_def {
    const char *name;
    key_type_t type;
    size_t offset;
    size_t size; /* of the field; for K_STR the buffer, NUL included */
    uint64_t min, max;
} key_def_t;

#define F(field) offsetof(mqim_gw_config_t, field), sizeof(((mqim_gw_config_t *)0)->field)
#define U64_MAX_ UINT64_C(18446744073709551615)

/* Ranges: what the code using the field can handle. Cross-field rules are in
 * mqim_gw_config_validate(), which also re-checks these (a caller may fill
 * the struct directly). */
static const key_def_t keys[] = {
    { "root", K_STR, F(root), 0, 0 },
    { "broker_host", K_STR, F(broker_host), 0, 0 },
    { "broker_port", K_INT, F(broker_port), 1, 65535 },
    { "username", K_STR, F(username), 0, 0 },
    { "password_file", K_STR, F(password_file), 0, 0 },
    { "client_id", K_STR, F(client_id), 0, 0 },
    { "share_group", K_STR, F(share_group), 0, 0 },
    { "data_dir", K_STR, F(data_dir), 0, 0 },
    { "map_size_mb", K_U64, F(map_size_mb), 1, UINT64_C(1) << 24 }, /* 16 TiB */
    { "store_engine", K_STR, F(store_engine), 0, 0 },
    { "store_dsn", K_STR, F(store_dsn), 0, 0 },
    { "accept_any_user", K_BOOL, F(accept_any_user), 0, 1 },
    { "max_inflight", K_UINT, F(max_inflight), 1, 65535 },
    { "keepalive_s", K_UINT, F(keepalive_s), 2, 65535 },
    { "file_max_mb", K_U64, F(file_max_mb), 1, 4096 },
    { "file_chunk_bytes", K_UINT, F(file_chunk_bytes), 64, MQIM_FILE_CHUNK_LIMIT },
    { "file_chunk_max", K_UINT, F(file_chunk_max), 64, MQIM_FILE_CHUNK_LIMIT },
    { "file_rate_per_sec", K_UINT, F(file_rate_per_sec), 0, 1000000 },
    { "file_rate_burst", K_UINT, F(file_rate_burst), 1, 10000000 },
    { "rate_per_sec", K_UINT, F(rate_per_sec), 0, 1000000 },
    { "rate_burst", K_UINT, F(rate_burst), 1, 10000000 },
    { "inbox_quota", K_U64, F(inbox_quota), 0, U64_MAX_ },
    { "retain_count", K_U64, F(retain_count), 0, U64_MAX_ },
    { "retain_days", K_U64, F(retain_days), 0, 1000000 },
    { "group_retain_count", K_U64, F(group_retain_count), 0, U64_MAX_ },
    { "group_retain_days", K_U64, F(group_retain_days), 0, 1000000 },
    { "sync_page", K_UINT, F(sync_page), 1, 1000 },
    { "group_max_members", K_UINT, F(group_max_members), 2, 256 },
    { "groups_per_user", K_UINT, F(groups_per_user), 1, 100000 },
    { "stats_interval_s", K_UINT, F(stats_interval_s), 0, 86400 },
    { "log_level", K_LEVEL, F(log_level), 0, 3 },
    { "broker_password_file", K_STR, F(broker_password_file), 0, 0 },
    { "broker_acl_file", K_STR, F(broker_acl_file), 0, 0 },
    { "broker_pid_file", K_STR, F(broker_pid_file), 0, 0 },
    { "broker_auth_db", K_STR, F(broker_auth_db), 0, 0 },
    { "broker_rate_per_sec", K_UINT, F(broker_rate_per_sec), 0, 1000000 },
    { "broker_rate_burst", K_UINT, F(broker_rate_burst), 0, 10000000 },
    { "broker_tls", K_BOOL, F(broker_tls), 0, 1 },
    { "broker_cafile", K_STR, F(broker_cafile), 0, 0 },
    { "broker_certfile", K_STR, F(broker_certfile), 0, 0 },
    { "broker_keyfile", K_STR, F(broker_keyfile), 0, 0 },
    { "pki_dir", K_STR, F(pki_dir), 0, 0 },
    { "cert_days", K_UINT, F(cert_days), 1, 3650 },
    { "metrics_listen", K_STR, F(metrics_listen), 0, 0 },
    { "metrics_allow_remote", K_BOOL, F(metrics_allow_remote), 0, 1 },
};
#define KEY_COUNT (sizeof(keys) / sizeof(keys[0]))

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src);
}

void mqim_gw_config_defaults(mqim_gw_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    copy_str(cfg->root, sizeof(cfg->root), "im");
    copy_str(cfg->broker_host, sizeof(cfg->broker_host), "127.0.0.1");
    cfg->broker_port = 1883;
    copy_str(cfg->username, sizeof(cfg->username), "mqim-gateway");
    copy_str(cfg->client_id, sizeof(cfg->client_id), "mqim-gateway");
    copy_str(cfg->data_dir, sizeof(cfg->data_dir), "var/gateway");
    cfg->map_size_mb = 1024;
    copy_str(cfg->store_engine, sizeof(cfg->store_engine), "lmdb");
    cfg->accept_any_user = false;
    cfg->max_inflight = 64;
    cfg->keepalive_s = 20;
    cfg->file_max_mb = 64;
    cfg->file_chunk_bytes = 1024;
    cfg->file_chunk_max = MQIM_FILE_CHUNK_LIMIT;
    cfg->file_rate_per_sec = 2000;
    cfg->file_rate_burst = 1000;
    cfg->rate_per_sec = 100;
    cfg->rate_burst = 500;
    cfg->inbox_quota = 100000;
    cfg->retain_count = 0;
    cfg->retain_days = 0;
    cfg->group_retain_count = 0;
    cfg->group_retain_days = 0;
    cfg->sync_page = 100;
    cfg->group_max_members = 256;
    cfg->groups_per_user = 100;
    cfg->stats_interval_s = 10;
    cfg->log_level = MQIM_LOG_INFO;
    copy_str(cfg->broker_password_file, sizeof(cfg->broker_password_file), "var/mosquitto/passwd");
    copy_str(cfg->broker_acl_file, sizeof(cfg->broker_acl_file), "var/mosquitto/acl");
    copy_str(cfg->broker_pid_file, sizeof(cfg->broker_pid_file), "var/mosquitto/mosquitto.pid");
    cfg->broker_tls = false;
    cfg->cert_days = 825; /* what browsers accepted for years; a device is re-issued well before */
}

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;
    if (err != NULL && err_len > 0u) {
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Levenshtein distance of short strings, capped: for "did you mean". */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[64];
    if (la >= 63u || lb >= 63u) {
        return 99u;
    }
    for (size_t j = 0; j <= lb; j++) {
        row[j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1u] == b[j - 1u] ? 0u : 1u);
            if (up + 1u < best) {
                best = up + 1u;
            }
            if (row[j - 1u] + 1u < best) {
                best = row[j - 1u] + 1u;
            }
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static int unknown_key(const char *key, char *err, size_t err_len)
{
    const char *best = NULL;
    size_t best_d = 3u; /* suggest only close matches */
    for (size_t i = 0; i < KEY_COUNT; i++) {
        size_t d = edit_distance(key, keys[i].name);
        if (d < best_d) {
            best_d = d;
            best = keys[i].name;
        }
    }
    if (best != NULL) {
        return fail(err, err_len, "unknown key '%s' (did you mean '%s'?)", key, best);
    }
    return fail(err, err_len, "unknown key '%s'", key);
}

/* Strict unsigned decimal: digits only (no sign, space, 0x), fully consumed.
 * Returns 0, -1 (not a number) or -2 (beyond 2^64 - 1). */
static int parse_u64(const char *text, uint64_t *out)
{
    char *end = NULL;
    unsigned long long v;
    if (!isdigit((unsigned char)text[0])) {
        return -1;
    }
    errno = 0;
    v = strtoull(text, &end, 10);
    if (end == text || *end != '\0') {
        return -1;
    }
    if (errno == ERANGE) {
        return -2;
    }
    *out = (uint64_t)v;
    return 0;
}

static int parse_bool(const char *text, bool *out)
{
    static const char *const yes[] = { "true", "yes", "on", "1" };
    static const char *const no[] = { "false", "no", "off", "0" };
    for (size_t i = 0; i < 4u; i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/* password_file: the first line of the file is the password. A missing file
 * is not an error here: `mqim-gateway init` creates it on the first start
 * (the password then stays empty until it exists). */
static int read_password(mqim_gw_config_t *cfg, char *err, size_t err_len)
{
    char buf[sizeof(cfg->password) + 2u];
    FILE *f;
    size_t n;
    cfg->password[0] = '\0';
    if (cfg->password_file[0] == '\0') {
        return 0; /* no password */
    }
    f = fopen(cfg->password_file, "r");
    if (f == NULL) {
        if (errno == ENOENT) {
            return 0;
        }
        return fail(err, err_len, "password_file %s: cannot read: %s", cfg->password_file,
                    strerror(errno));
    }
    if (fgets(buf, (int)sizeof(buf), f) == NULL) {
        int e = ferror(f) ? errno : 0;
        fclose(f);
        if (e != 0) {
            return fail(err, err_len, "password_file %s: cannot read: %s", cfg->password_file,
                        strerror(e));
        }
        return fail(err, err_len, "password_file %s: the file is empty", cfg->password_file);
    }
    fclose(f);
    n = strcspn(buf, "\r\n");
    if (n >= sizeof(cfg->password)) {
        return fail(err, err_len, "password_file %s: the password is longer than %zu characters",
                    cfg->password_file, sizeof(cfg->password) - 1u);
    }
    if (n == 0u) {
        return fail(err, err_len, "password_file %s: the first line is empty", cfg->password_file);
    }
    memcpy(cfg->password, buf, n);
    cfg->password[n] = '\0';
    memset(buf, 0, sizeof(buf));
    return 0;
}

static const key_def_t *find_key(const char *key)
{
    for (size_t i = 0; i < KEY_COUNT; i++) {
        if (strcmp(keys[i].name, key) == 0) {
            return &keys[i];
        }
    }
    return NULL;
}

int mqim_gw_config_set(mqim_gw_config_t *cfg, const char *key, const char *value, char *err,
                       size_t err_len)
{
    const key_def_t *k;
    char *field;
    uint64_t v = 0;
    int rc;

    if (key == NULL || (k = find_key(key)) == NULL) {
        return unknown_key(key != NULL ? key : "", err, err_len);
    }
    if (value == NULL) {
        value = "";
    }
    field = (char *)cfg + k->offset;
    if (k->type == K_STR) {
        size_t len = strlen(value);
        if (len >= k->size) {
            return fail(err, err_len, "%s: the value is too long (%zu characters, at most %zu)", key,
                        len, k->size - 1u);
        }
        memcpy(field, value, len + 1u);
        if (k->offset == offsetof(mqim_gw_config_t, password_file)) {
            return read_password(cfg, err, err_len);
        }
        return 0;
    }
    if (value[0] == '\0') {
        return fail(err, err_len, "%s: missing value", key);
    }
    if (k->type == K_BOOL) {
        if (parse_bool(value, (bool *)(void *)field) != 0) {
            return fail(err, err_len, "%s: '%s' is not a boolean (true/false, yes/no, on/off, 1/0)",
                        key, value);
        }
        return 0;
    }
    if (k->type == K_LEVEL) {
        char lower[16];
        size_t i = 0;
        for (; value[i] != '\0' && i + 1u < sizeof(lower); i++) {
            lower[i] = (char)tolower((unsigned char)value[i]);
        }
        lower[i] = '\0';
        rc = value[i] == '\0' ? mqim_log_level_parse(lower) : -1;
        if (rc < 0) {
            return fail(err, err_len, "%s: '%s' is not one of error, warn, info, debug", key, value);
        }
        *(int *)(void *)field = rc;
        return 0;
    }
    rc = parse_u64(value, &v);
    if (rc == -1) {
        return fail(err, err_len, "%s: '%s' is not a number (expected an integer %llu..%llu)", key,
                    value, (unsigned long long)k->min, (unsigned long long)k->max);
    }
    if (rc == -2 || v < k->min || v > k->max) {
        return fail(err, err_len, "%s: %s is out of range %llu..%llu", key, value,
                    (unsigned long long)k->min, (unsigned long long)k->max);
    }
    switch (k->type) {
    case K_INT:
        *(int *)(void *)field = (int)v;
        break;
    case K_UINT:
        *(unsigned *)(void *)field = (unsigned)v;
        break;
    default:
        *(uint64_t *)(void *)field = v;
        break;
    }
    return 0;
}

int mqim_gw_config_load(mqim_gw_config_t *cfg, const char *path, char *err, size_t err_len)
{
    char line[MQIM_GW_PATH_MAX + 256];
    char msg[MQIM_GW_PATH_MAX + 256];
    unsigned lineno = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return fail(err, err_len, "cannot open config file %s: %s", path, strerror(errno));
    }
    while (fgets(line, (int)sizeof(line), f) != NULL) {
        char *p = line, *key, *value, *end;
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            fclose(f);
            return fail(err, err_len, "%s:%u: the line is too long (at most %zu characters)", path,
                        lineno, sizeof(line) - 2u);
        }
        if (lineno == 1u && memcmp(p, "\xEF\xBB\xBF", 3) == 0) {
            p += 3; /* UTF-8 byte order mark */
        }
        p += strspn(p, " \t");
        if (*p == '#' || *p == '\n' || *p == '\r' || *p == '\0') {
            continue; /* comment or blank line */
        }
        key = p;
        p += strcspn(p, " \t\r\n");
        if (*p != '\0') {
            *p++ = '\0';
        }
        p += strspn(p, " \t");
        value = p; /* the rest of the line: paths may hold spaces */
        end = value + strlen(value);
        while (end > value && strchr("\r\n \t", end[-1]) != NULL) {
            *--end = '\0';
        }
        if (find_key(key) == NULL) {
            (void)unknown_key(key, msg, sizeof(msg));
        } else if (value[0] == '\0') {
            snprintf(msg, sizeof(msg), "%s: missing value", key);
        } else if (mqim_gw_config_set(cfg, key, value, msg, sizeof(msg)) == 0) {
            continue;
        }
        fclose(f);
        return fail(err, err_len, "%s:%u: %s", path, lineno, msg);
    }
    if (ferror(f)) {
        int e = errno;
        fclose(f);
        return fail(err, err_len, "cannot read config file %s: %s", path, strerror(e));
    }
    fclose(f);
    return 0;
}

/* Printable ASCII without spaces: values that go into other files' lines. */
static bool is_token(const char *s)
{
    if (s[0] == '\0') {
        return false;
    }
    for (; *s != '\0'; s++) {
        if (*s <= ' ' || *s == 0x7f) {
            return false;
        }
    }
    return true;
}

static bool has_control(const char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s < 0x20u || *s == 0x7f) {
            return true;
        }
    }
    return false;
}

int mqim_gw_metrics_listen_parse(const char *text, char *addr, size_t addr_cap, int *port,
                                 bool *loopback, char *err, size_t err_len)
{
    const char *colon = strrchr(text, ':');
    const char *host = text;
    size_t host_len;
    unsigned char bin[16];
    char *end = NULL;
    long p;
    if (colon == NULL) {
        return fail(err, err_len, "metrics_listen: '%s' is not ADDRESS:PORT (e.g. 127.0.0.1:9464)", text);
    }
    host_len = (size_t)(colon - text);
    if (host_len >= 2u && text[0] == '[' && text[host_len - 1u] == ']') {
        host++;
        host_len -= 2u;
    }
    if (host_len == 0u || host_len >= addr_cap) {
        return fail(err, err_len, "metrics_listen: '%s' has no address (e.g. 127.0.0.1:9464)", text);
    }
    memcpy(addr, host, host_len);
    addr[host_len] = '\0';
    if (strcmp(addr, "localhost") == 0) {
        snprintf(addr, addr_cap, "127.0.0.1");
    }
    errno = 0;
    p = strtol(colon + 1, &end, 10);
    if (errno != 0 || end == colon + 1 || *end != '\0' || p < 1 || p > 65535) {
        return fail(err, err_len, "metrics_listen: '%s': the port must be 1..65535", text);
    }
    *port = (int)p;
    if (inet_pton(AF_INET, addr, bin) == 1) {
        *loopback = bin[0] == 127u;
    } else if (inet_pton(AF_INET6, addr, bin) == 1) {
        static const unsigned char v6_loopback[16] = { [15] = 1 };
        *loopback = memcmp(bin, v6_loopback, 16) == 0;
    } else {
        return fail(err, err_len, "metrics_listen: '%s' is not an IP address (give 127.0.0.1 or [::1])",
                    addr);
    }
    return 0;
}

/* The metrics tell who is online and how busy the gateway is: loopback
 * only unless the operator says otherwise (behind a proxy with TLS and
 * authentication, or a firewalled monitoring network). */
static int validate_metrics(const mqim_gw_config_t *cfg, char *err, size_t err_len)
{
    char addr[64];
    int port;
    bool loopback;
    if (cfg->metrics_listen[0] == '\0') {
        return 0;
    }
    if (mqim_gw_metrics_listen_parse(cfg->metrics_listen, addr, sizeof(addr), &port, &loopback, err,
                                     err_len) != 0) {
        return -1;
    }
    if (!loopback && !cfg->metrics_allow_remote) {
        return fail(err, err_len, "metrics_listen: %s is not a loopback address: the endpoint has no "
                    "authentication and shows who is online. Listen on 127.0.0.1 (and let Prometheus "
                    "scrape through a proxy), or set metrics_allow_remote true to serve it on %s",
                    cfg->metrics_listen, addr);
    }
    return 0;
}

int mqim_gw_config_validate(const mqim_gw_config_t *cfg, char *err, size_t err_len)
{
    static const struct { size_t offset; const char *name; } required[] = {
        { offsetof(mqim_gw_config_t, data_dir), "data_dir" },
        { offsetof(mqim_gw_config_t, broker_password_file), "broker_password_file" },
        { offsetof(mqim_gw_config_t, broker_acl_file), "broker_acl_file" },
        { offsetof(mqim_gw_config_t, broker_pid_file), "broker_pid_file" },
        { offsetof(mqim_gw_config_t, password_file), "password_file" },
        { offsetof(mqim_gw_config_t, broker_cafile), "broker_cafile" },
        { offsetof(mqim_gw_config_t, broker_certfile), "broker_certfile" },
        { offsetof(mqim_gw_config_t, broker_keyfile), "broker_keyfile" },
        { offsetof(mqim_gw_config_t, pki_dir), "pki_dir" },
        { offsetof(mqim_gw_config_t, broker_auth_db), "broker_auth_db" },
    };
    if (mqim_topic_root_check(mqim_str_from_cstr(cfg->root)) != MQIM_OK || has_control(cfg->root)) {
        return fail(err, err_len,
                    "root: '%s' is not a valid topic root (1..%u characters, no wildcards, no "
                    "empty level)",
                    cfg->root, (unsigned)MQIM_ROOT_MAX);
    }
    if (!is_token(cfg->broker_host)) {
        return fail(err, err_len, "broker_host: '%s' is not a host name or address", cfg->broker_host);
    }
    if (cfg->broker_port < 1 || cfg->broker_port > 65535) {
        return fail(err, err_len, "broker_port: %d is out of range 1..65535", cfg->broker_port);
    }
    if (mqim_name_check(MQIM_NAME_USER, mqim_str_from_cstr(cfg->username)) != MQIM_OK) {
        return fail(err, err_len,
                    "username: '%s' is not a valid broker user name (1..%u characters of "
                    "[A-Za-z0-9_.-])",
                    cfg->username, (unsigned)MQIM_USER_NAME_MAX);
    }
    if (cfg->client_id[0] == '\0' || has_control(cfg->client_id)) {
        return fail(err, err_len, "client_id: must be non-empty printable text");
    }
    if (cfg->share_group[0] != '\0' &&
        mqim_name_check(MQIM_NAME_USER, mqim_str_from_cstr(cfg->share_group)) != MQIM_OK) {
        return fail(err, err_len, "share_group: '%s' is not a valid group name (1..%u characters of "
                    "[A-Za-z0-9_.-])", cfg->share_group, (unsigned)MQIM_USER_NAME_MAX);
    }
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        const char *v = (const char *)cfg + required[i].offset;
        if (i < 4u && v[0] == '\0') {
            return fail(err, err_len, "%s: must not be empty", required[i].name);
        }
        if (has_control(v)) {
            return fail(err, err_len, "%s: the path holds control characters", required[i].name);
        }
    }
    if ((cfg->broker_certfile[0] == '\0') != (cfg->broker_keyfile[0] == '\0')) {
        return fail(err, err_len, "broker_certfile, broker_keyfile: give both (a client "
                    "certificate and its key) or neither");
    }
    if (!cfg->broker_tls && (cfg->broker_cafile[0] != '\0' || cfg->broker_certfile[0] != '\0')) {
        /* Silently connecting in the clear with TLS files configured would
         * send the password unprotected to whoever listens on the port. */
        return fail(err, err_len, "broker_cafile/broker_certfile are set but broker_tls is "
                    "false: set broker_tls true (or remove them)");
    }
    if (cfg->cert_days < 1u || cfg->cert_days > 3650u) {
        return fail(err, err_len, "cert_days: %u is out of range 1..3650", cfg->cert_days);
    }
    if (strcmp(cfg->store_engine, "lmdb") != 0 && strcmp(cfg->store_engine, "postgresql") != 0) {
        return fail(err, err_len, "store_engine: '%s' is not lmdb or postgresql", cfg->store_engine);
    }
    if (strcmp(cfg->store_engine, "postgresql") == 0 && cfg->store_dsn[0] == '\0') {
        return fail(err, err_len, "store_engine postgresql needs store_dsn (a libpq connection "
                    "string, e.g. \"host=db1,db2 dbname=mqim target_session_attrs=read-write\")");
    }
    if (cfg->map_size_mb < 1u || cfg->map_size_mb > (UINT64_C(1) << 24)) {
        return fail(err, err_len, "map_size_mb: %llu is out of range 1..%llu",
                    (unsigned long long)cfg->map_size_mb, (unsigned long long)(UINT64_C(1) << 24));
    }
    if (cfg->max_inflight < 1u || cfg->max_inflight > 65535u) {
        return fail(err, err_len, "max_inflight: %u is out of range 1..65535", cfg->max_inflight);
    }
    if (cfg->keepalive_s < 2u || cfg->keepalive_s > 65535u) {
        return fail(err, err_len, "keepalive_s: %u is out of range 2..65535", cfg->keepalive_s);
    }
    if (cfg->file_chunk_max < 64u || cfg->file_chunk_max > MQIM_FILE_CHUNK_LIMIT ||
        cfg->file_chunk_bytes < 64u || cfg->file_chunk_bytes > cfg->file_chunk_max) {
        return fail(err, err_len, "file_chunk_bytes, file_chunk_max: need 64 <= file_chunk_bytes <= "
                    "file_chunk_max <= %u", (unsigned)MQIM_FILE_CHUNK_LIMIT);
    }
    if (cfg->file_max_mb < 1u || cfg->file_max_mb > 4096u) {
        return fail(err, err_len, "file_max_mb: %llu is out of range 1..4096",
                    (unsigned long long)cfg->file_max_mb);
    }
    if (cfg->sync_page < 1u || cfg->sync_page > 1000u) {
        return fail(err, err_len, "sync_page: %u is out of range 1..1000", cfg->sync_page);
    }
    if (cfg->rate_per_sec > 0u && cfg->rate_burst < 1u) {
        return fail(err, err_len, "rate_burst: must be at least 1 when rate_per_sec is set");
    }
    if (cfg->log_level < (int)MQIM_LOG_ERROR || cfg->log_level > (int)MQIM_LOG_DEBUG) {
        return fail(err, err_len, "log_level: %d is not a level (0..3)", cfg->log_level);
    }
    return validate_metrics(cfg, err, err_len);
}

bool mqim_gw_config_client_id_guessable(const mqim_gw_config_t *cfg)
{
    return strcmp(cfg->client_id, "mqim-gateway") == 0 || strcmp(cfg->client_id, cfg->username) == 0 ||
           strlen(cfg->client_id) < MQIM_GW_CLIENT_ID_MIN;
}

/* Keys a reload applies without a restart: the log level (an atomic in
 * log.c) and the rate limits (atomics in the router's buckets). */
static bool key_is_live(const char *name)
{
    static const char *const live[] = { "log_level", "rate_per_sec", "rate_burst", "file_rate_per_sec",
                                        "file_rate_burst" };
    for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++) {
        if (strcmp(name, live[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* A numeric key's value as text (the level as its word). */
static void key_value_text(const key_def_t *k, const mqim_gw_config_t *cfg, char *buf, size_t cap)
{
    static const char *const levels[] = { "error", "warn", "info", "debug" };
    const char *field = (const char *)cfg + k->offset;
    int level;
    switch (k->type) {
    case K_LEVEL:
        level = *(const int *)(const void *)field;
        snprintf(buf, cap, "%s", level >= 0 && level <= 3 ? levels[level] : "?");
        break;
    case K_INT:
        snprintf(buf, cap, "%d", *(const int *)(const void *)field);
        break;
    case K_UINT:
        snprintf(buf, cap, "%u", *(const unsigned *)(const void *)field);
        break;
    case K_U64:
        snprintf(buf, cap, "%llu", (unsigned long long)*(const uint64_t *)(const void *)field);
        break;
    default:
        buf[0] = '\0';
        break;
    }
}

static void list_add(char *list, size_t cap, const char *item)
{
    size_t n = strlen(list);
    if (n < cap) {
        snprintf(list + n, cap - n, "%s%s", n > 0u ? ", " : "", item);
    }
}

void mqim_gw_config_reload(mqim_gw_config_t *running, const mqim_gw_config_t *next, char *applied,
                           size_t applied_cap, char *restart, size_t restart_cap)
{
    applied[0] = '\0';
    restart[0] = '\0';
    for (size_t i = 0; i < KEY_COUNT; i++) {
        const key_def_t *k = &keys[i];
        char *field = (char *)running + k->offset;
        const char *nfield = (const char *)next + k->offset;
        bool differs = k->type == K_STR ? strcmp(field, nfield) != 0 : memcmp(field, nfield, k->size) != 0;
        if (!differs) {
            continue;
        }
        if (key_is_live(k->name)) {
            char from[32], to[32], item[128];
            key_value_text(k, running, from, sizeof(from));
            key_value_text(k, next, to, sizeof(to));
            snprintf(item, sizeof(item), "%s %s->%s", k->name, from, to);
            list_add(applied, applied_cap, item);
            memcpy(field, nfield, k->size);
        } else {
            list_add(restart, restart_cap, k->name); /* names only: values may be secret */
        }
    }
    if (strcmp(running->password, next->password) != 0) {
        list_add(restart, restart_cap, "password");
    }
}
