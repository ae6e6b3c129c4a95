/* Gateway configuration (config.h): one table of keys drives defaults
 * documentation, the file reader and the flags alike. */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "mqim/topic.h"

typedef enum { K_STR, K_INT, K_U64, K_UINT, K_BOOL, K_LEVEL } key_type_t;

typedef struct key_def {
    const char *name;
    key_type_t type;
    size_t offset;
    size_t size;    /* K_STR: buffer size */
    uint64_t min, max;
} key_def_t;

#define F(field) offsetof(mqim_gw_config_t, field), sizeof(((mqim_gw_config_t *)0)->field)

static const key_def_t keys[] = {
    { "root", K_STR, F(root), 0, 0 },
    { "broker_host", K_STR, F(broker_host), 0, 0 },
    { "broker_port", K_INT, F(broker_port), 1, 65535 },
    { "username", K_STR, F(username), 0, 0 },
    { "password_file", K_STR, F(password_file), 0, 0 },
    { "client_id", K_STR, F(client_id), 0, 0 },
    { "data_dir", K_STR, F(data_dir), 0, 0 },
    { "map_size_mb", K_U64, F(map_size_mb), 1, 1u << 24 },
    { "accept_any_user", K_BOOL, F(accept_any_user), 0, 1 },
    { "max_inflight", K_UINT, F(max_inflight), 1, 65535 },
    { "rate_per_sec", K_UINT, F(rate_per_sec), 0, 1000000 },
    { "rate_burst", K_UINT, F(rate_burst), 1, 10000000 },
    { "inbox_quota", K_U64, F(inbox_quota), 0, UINT64_MAX },
    { "retain_count", K_U64, F(retain_count), 0, UINT64_MAX },
    { "retain_days", K_U64, F(retain_days), 0, 100000 },
    { "sync_page", K_UINT, F(sync_page), 1, 1000 },
    { "stats_interval_s", K_UINT, F(stats_interval_s), 0, 86400 },
    { "log_level", K_LEVEL, F(log_level), 0, 3 },
    { "broker_password_file", K_STR, F(broker_password_file), 0, 0 },
    { "broker_acl_file", K_STR, F(broker_acl_file), 0, 0 },
    { "broker_pid_file", K_STR, F(broker_pid_file), 0, 0 },
};

void mqim_gw_config_defaults(mqim_gw_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->root, sizeof(cfg->root), "im");
    snprintf(cfg->broker_host, sizeof(cfg->broker_host), "127.0.0.1");
    cfg->broker_port = 1883;
    snprintf(cfg->username, sizeof(cfg->username), "mqim-gateway");
    snprintf(cfg->client_id, sizeof(cfg->client_id), "mqim-gateway");
    snprintf(cfg->data_dir, sizeof(cfg->data_dir), "var/gateway");
    cfg->map_size_mb = 1024;
    cfg->max_inflight = 64;
    cfg->rate_per_sec = 100;
    cfg->rate_burst = 500;
    cfg->inbox_quota = 100000;
    cfg->sync_page = 100;
    cfg->stats_interval_s = 10;
    cfg->log_level = MQIM_LOG_INFO;
    snprintf(cfg->broker_password_file, sizeof(cfg->broker_password_file), "var/mosquitto/passwd");
    snprintf(cfg->broker_acl_file, sizeof(cfg->broker_acl_file), "var/mosquitto/acl");
    snprintf(cfg->broker_pid_file, sizeof(cfg->broker_pid_file), "var/mosquitto/mosquitto.pid");
}

static int fail(char *err, size_t err_len, const char *fmt, const char *a, const char *b)
{
    snprintf(err, err_len, fmt, a, b);
    return -1;
}

static int parse_u64(const char *text, uint64_t *out)
{
    char *end = NULL;
    unsigned long long v;
    if (text[0] == '\0' || text[0] == '-' || text[0] == '+') {
        return -1;
    }
    errno = 0;
    v = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0') {
        return -1;
    }
    *out = v;
    return 0;
}

static int read_password(mqim_gw_config_t *cfg, char *err, size_t err_len)
{
    FILE *f = fopen(cfg->password_file, "r");
    if (f == NULL) {
        /* `init` creates it; running without it is reported by validate */
        cfg->password[0] = '\0';
        return errno == ENOENT ? 0 : fail(err, err_len, "password_file %s: %s", cfg->password_file,
                                          strerror(errno));
    }
    if (fgets(cfg->password, sizeof(cfg->password), f) == NULL) {
        cfg->password[0] = '\0';
    }
    fclose(f);
    cfg->password[strcspn(cfg->password, "\r\n")] = '\0';
    if (cfg->password[0] == '\0') {
        return fail(err, err_len, "password_file %s: the first line is empty%s", cfg->password_file, "");
    }
    return 0;
}

int mqim_gw_config_set(mqim_gw_config_t *cfg, const char *key, const char *value, char *err,
                       size_t err_len)
{
    const key_def_t *k = NULL;
    char *field;
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (strcmp(keys[i].name, key) == 0) {
            k = &keys[i];
        }
    }
    if (k == NULL) {
        return fail(err, err_len, "unknown key '%s'%s", key, "");
    }
    field = (char *)cfg + k->offset;
    switch (k->type) {
    case K_STR:
        if (strlen(value) >= k->size) {
            return fail(err, err_len, "%s: value is too long ('%s')", key, value);
        }
        memcpy(field, value, strlen(value) + 1u);
        if (strcmp(key, "password_file") == 0 && value[0] != '\0') {
            return read_password(cfg, err, err_len);
        }
        return 0;
    case K_BOOL:
        if (!strcasecmp(value, "true") || !strcasecmp(value, "yes") || !strcmp(value, "1") ||
            !strcasecmp(value, "on")) {
            *(bool *)field = true;
        } else if (!strcasecmp(value, "false") || !strcasecmp(value, "no") || !strcmp(value, "0") ||
                   !strcasecmp(value, "off")) {
            *(bool *)field = false;
        } else {
            return fail(err, err_len, "%s: '%s' is not a boolean (true/false)", key, value);
        }
        return 0;
    case K_LEVEL: {
        int level = mqim_log_level_parse(value);
        if (level < 0) {
            return fail(err, err_len, "%s: '%s' is not one of error, warn, info, debug", key, value);
        }
        *(int *)field = level;
        return 0;
    }
    default:
        break;
    }
    if (parse_u64(value, &v) != 0) {
        return fail(err, err_len, "%s: '%s' is not a non-negative integer", key, value);
    }
    if (v < k->min || v > k->max) {
        char range[64];
        snprintf(range, sizeof(range), "%llu..%llu", (unsigned long long)k->min,
                 (unsigned long long)k->max);
        snprintf(err, err_len, "%s: %s is out of range %s", key, value, range);
        return -1;
    }
    if (k->type == K_INT) {
        *(int *)field = (int)v;
    } else if (k->type == K_UINT) {
        *(unsigned *)field = (unsigned)v;
    } else {
        *(uint64_t *)field = v;
    }
    return 0;
}

int mqim_gw_config_load(mqim_gw_config_t *cfg, const char *path, char *err, size_t err_len)
{
    char line[2048];
    char msg[1024];
    unsigned lineno = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return fail(err, err_len, "cannot open config file %s: %s", path, strerror(errno));
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        char *p = line, *key, *value, *end;
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            snprintf(err, err_len, "%s:%u: line is too long", path, lineno);
            fclose(f);
            return -1;
        }
        p += strspn(p, " \t");
        if (*p == '#' || *p == '\n' || *p == '\r' || *p == '\0') {
            continue;
        }
        key = p;
        p += strcspn(p, " \t\r\n");
        if (*p != '\0') {
            *p++ = '\0';
        }
        p += strspn(p, " \t");
        value = p;
        end = value + strlen(value);
        while (end > value && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t')) {
            *--end = '\0';
        }
        if (mqim_gw_config_set(cfg, key, value, msg, sizeof(msg)) != 0) {
            snprintf(err, err_len, "%s:%u: %s", path, lineno, msg);
            fclose(f);
            return -1;
        }
    }
    fclose(f);
    return 0;
}

int mqim_gw_config_validate(const mqim_gw_config_t *cfg, char *err, size_t err_len)
{
    if (mqim_topic_root_check(mqim_str_from_cstr(cfg->root)) != MQIM_OK) {
        return fail(err, err_len, "root '%s' is not a valid topic root (1..32 characters, no wildcards or empty levels)%s",
                    cfg->root, "");
    }
    if (cfg->broker_host[0] == '\0' || cfg->data_dir[0] == '\0' || cfg->client_id[0] == '\0' ||
        cfg->username[0] == '\0') {
        return fail(err, err_len, "broker_host, data_dir, client_id and username must not be empty%s%s", "", "");
    }
    return 0;
}
