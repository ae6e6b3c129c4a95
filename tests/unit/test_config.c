/* Gateway configuration (config.c) and log levels (log.c). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "mqim_check.h"

static char dir[256];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
        perror(path);
        exit(2);
    }
}

static void path_in(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
}

/* CHECK that err holds part, and show err when it does not. */
#define CHECK_ERR_HAS(err, part)                                                   \
    do {                                                                           \
        CHECK(strstr((err), (part)) != NULL);                                      \
        if (strstr((err), (part)) == NULL) {                                       \
            fprintf(stderr, "  error was '%s', expected it to hold '%s'\n", (err), (part)); \
        }                                                                          \
    } while (0)

static void test_defaults(void)
{
    mqim_gw_config_t cfg;
    char err[256] = "";
    memset(&cfg, 0xAB, sizeof(cfg));
    mqim_gw_config_defaults(&cfg);
    CHECK(strcmp(cfg.root, "im") == 0);
    CHECK(strcmp(cfg.broker_host, "127.0.0.1") == 0);
    CHECK_EQ_INT(cfg.broker_port, 1883);
    CHECK(strcmp(cfg.username, "mqim-gateway") == 0);
    CHECK(strcmp(cfg.password, "") == 0);
    CHECK(strcmp(cfg.password_file, "") == 0);
    CHECK(strcmp(cfg.client_id, "mqim-gateway") == 0);
    CHECK(strcmp(cfg.data_dir, "var/gateway") == 0);
    CHECK_EQ_INT(cfg.map_size_mb, 1024);
    CHECK(!cfg.accept_any_user);
    CHECK_EQ_INT(cfg.max_inflight, 64);
    CHECK_EQ_INT(cfg.keepalive_s, 20);
    CHECK_EQ_INT(cfg.rate_per_sec, 100);
    CHECK_EQ_INT(cfg.rate_burst, 500);
    CHECK_EQ_INT(cfg.inbox_quota, 100000);
    CHECK_EQ_INT(cfg.retain_count, 0);
    CHECK_EQ_INT(cfg.retain_days, 0);
    CHECK_EQ_INT(cfg.sync_page, 100);
    CHECK_EQ_INT(cfg.stats_interval_s, 10);
    CHECK_EQ_INT(cfg.log_level, MQIM_LOG_INFO);
    CHECK(strcmp(cfg.broker_password_file, "var/mosquitto/passwd") == 0);
    CHECK(strcmp(cfg.broker_acl_file, "var/mosquitto/acl") == 0);
    CHECK(strcmp(cfg.broker_pid_file, "var/mosquitto/mosquitto.pid") == 0);
    CHECK(!cfg.broker_tls);
    CHECK(strcmp(cfg.broker_cafile, "") == 0);
    CHECK(strcmp(cfg.broker_certfile, "") == 0);
    CHECK(strcmp(cfg.broker_keyfile, "") == 0);
    CHECK(strcmp(cfg.pki_dir, "") == 0);
    CHECK_EQ_INT(cfg.cert_days, 825);
    CHECK_EQ_INT(mqim_gw_config_validate(&cfg, err, sizeof(err)), 0);
}

/* Every key parses, and lands in its field. */
static void test_every_key(void)
{
    static const struct { const char *key, *value; } rows[] = {
        { "root", "acme/im" },
        { "broker_host", "broker.example" },
        { "broker_port", "8883" },
        { "username", "gw-1" },
        { "password_file", "" },
        { "client_id", "gw-1.main" },
        { "share_group", "gw-pool" },
        { "data_dir", "/srv/mqim data" },
        { "map_size_mb", "4096" },
        { "accept_any_user", "yes" },
        { "max_inflight", "65535" },
        { "rate_per_sec", "0" },
        { "rate_burst", "1" },
        { "inbox_quota", "18446744073709551615" },
        { "retain_count", "500" },
        { "retain_days", "30" },
        { "sync_page", "1000" },
        { "stats_interval_s", "0" },
        { "log_level", "debug" },
        { "broker_password_file", "/etc/mosquitto/mqim/passwd" },
        { "broker_acl_file", "/etc/mosquitto/mqim/acl" },
        { "broker_pid_file", "/run/mosquitto/mosquitto.pid" },
        { "broker_tls", "on" },
        { "broker_cafile", "/etc/mqim/pki/ca.crt" },
        { "broker_certfile", "/etc/mqim/gw.crt" },
        { "broker_keyfile", "/etc/mqim/gw.key" },
        { "pki_dir", "/etc/mqim/pki" },
        { "cert_days", "3650" },
    };
    mqim_gw_config_t cfg;
    char err[256];
    mqim_gw_config_defaults(&cfg);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        err[0] = '\0';
        CHECK_EQ_INT(mqim_gw_config_set(&cfg, rows[i].key, rows[i].value, err, sizeof(err)), 0);
        if (err[0] != '\0') {
            fprintf(stderr, "  %s %s: %s\n", rows[i].key, rows[i].value, err);
        }
    }
    CHECK(strcmp(cfg.root, "acme/im") == 0);
    CHECK(strcmp(cfg.broker_host, "broker.example") == 0);
    CHECK_EQ_INT(cfg.broker_port, 8883);
    CHECK(strcmp(cfg.username, "gw-1") == 0);
    CHECK(strcmp(cfg.client_id, "gw-1.main") == 0);
    CHECK(strcmp(cfg.share_group, "gw-pool") == 0);
    CHECK(strcmp(cfg.data_dir, "/srv/mqim data") == 0);
    CHECK_EQ_INT(cfg.map_size_mb, 4096);
    CHECK(cfg.accept_any_user);
    CHECK_EQ_INT(cfg.max_inflight, 65535);
    CHECK_EQ_INT(cfg.rate_per_sec, 0);
    CHECK_EQ_INT(cfg.rate_burst, 1);
    CHECK(cfg.inbox_quota == UINT64_MAX);
    CHECK_EQ_INT(cfg.retain_count, 500);
    CHECK_EQ_INT(cfg.retain_days, 30);
    CHECK_EQ_INT(cfg.sync_page, 1000);
    CHECK_EQ_INT(cfg.stats_interval_s, 0);
    CHECK_EQ_INT(cfg.log_level, MQIM_LOG_DEBUG);
    CHECK(strcmp(cfg.broker_password_file, "/etc/mosquitto/mqim/passwd") == 0);
    CHECK(strcmp(cfg.broker_acl_file, "/etc/mosquitto/mqim/acl") == 0);
    CHECK(strcmp(cfg.broker_pid_file, "/run/mosquitto/mosquitto.pid") == 0);
    CHECK(cfg.broker_tls);
    CHECK(strcmp(cfg.broker_cafile, "/etc/mqim/pki/ca.crt") == 0);
    CHECK(strcmp(cfg.broker_certfile, "/etc/mqim/gw.crt") == 0);
    CHECK(strcmp(cfg.broker_keyfile, "/etc/mqim/gw.key") == 0);
    CHECK(strcmp(cfg.pki_dir, "/etc/mqim/pki") == 0);
    CHECK_EQ_INT(cfg.cert_days, 3650);
    CHECK_EQ_INT(mqim_gw_config_validate(&cfg, err, sizeof(err)), 0);
}

static void test_values_table(void)
{
    static const struct {
        const char *key, *value;
        int rc;
        const char *err_part; /* NULL: no error expected */
    } rows[] = {
        { "broker_port", "1", 0, NULL },
        { "broker_port", "65535", 0, NULL },
        { "broker_port", "0", -1, "broker_port: 0 is out of range 1..65535" },
        { "broker_port", "70000", -1, "broker_port: 70000 is out of range 1..65535" },
        { "broker_port", "99999999999999999999999", -1, "is out of range 1..65535" },
        { "broker_port", "12x", -1, "broker_port: '12x' is not a number" },
        { "broker_port", "-1", -1, "'-1' is not a number" },
        { "broker_port", "+1", -1, "not a number" },
        { "broker_port", " 1", -1, "not a number" },
        { "broker_port", "0x10", -1, "not a number" },
        { "broker_port", "1.5", -1, "not a number" },
        { "broker_port", "", -1, "broker_port: missing value" },
        { "map_size_mb", "0", -1, "map_size_mb: 0 is out of range 1.." },
        { "max_inflight", "0", -1, "out of range 1..65535" },
        { "max_inflight", "65536", -1, "max_inflight: 65536 is out of range 1..65535" },
        { "keepalive_s", "1", -1, "keepalive_s: 1 is out of range 2..65535" },
        { "sync_page", "0", -1, "out of range 1..1000" },
        { "sync_page", "1001", -1, "sync_page: 1001 is out of range 1..1000" },
        { "rate_burst", "0", -1, "out of range" },
        { "stats_interval_s", "86401", -1, "out of range 0..86400" },
        { "inbox_quota", "18446744073709551616", -1,
          "inbox_quota: 18446744073709551616 is out of range 0..18446744073709551615" },
        { "accept_any_user", "true", 0, NULL },
        { "accept_any_user", "FALSE", 0, NULL },
        { "accept_any_user", "on", 0, NULL },
        { "accept_any_user", "off", 0, NULL },
        { "accept_any_user", "1", 0, NULL },
        { "accept_any_user", "0", 0, NULL },
        { "accept_any_user", "no", 0, NULL },
        { "accept_any_user", "maybe", -1, "accept_any_user: 'maybe' is not a boolean" },
        { "accept_any_user", "2", -1, "not a boolean" },
        { "accept_any_user", "", -1, "missing value" },
        { "broker_tls", "yes", 0, NULL },
        { "broker_tls", "tls", -1, "broker_tls: 'tls' is not a boolean" },
        { "cert_days", "1", 0, NULL },
        { "cert_days", "0", -1, "cert_days: 0 is out of range 1..3650" },
        { "cert_days", "3651", -1, "cert_days: 3651 is out of range 1..3650" },
        { "broker_ca_file", "x", -1, "unknown key 'broker_ca_file' (did you mean 'broker_cafile'?)" },
        { "log_level", "error", 0, NULL },
        { "log_level", "warn", 0, NULL },
        { "log_level", "info", 0, NULL },
        { "log_level", "DEBUG", 0, NULL },
        { "log_level", "warning", -1, "'warning' is not one of error, warn, info, debug" },
        { "log_level", "loud", -1, "log_level: 'loud' is not one of error, warn, info, debug" },
        { "brokr_port", "1", -1, "unknown key 'brokr_port' (did you mean 'broker_port'?)" },
        { "colour", "1", -1, "unknown key 'colour'" },
        { "password", "x", -1, "unknown key 'password'" }, /* only through password_file */
        { "", "1", -1, "unknown key ''" },
        { "root", "0123456789abcdef0123456789abcdef", 0, NULL },
        { "root", "0123456789abcdef0123456789abcdef0", -1, "root: the value is too long" },
        { "username", "0123456789012345678901234567890123456789012345678901234567890123", 0, NULL },
        { "username", "01234567890123456789012345678901234567890123456789012345678901234", -1,
          "at most 64" },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        mqim_gw_config_t cfg;
        char err[256] = "";
        int rc;
        mqim_gw_config_defaults(&cfg);
        rc = mqim_gw_config_set(&cfg, rows[i].key, rows[i].value, err, sizeof(err));
        CHECK_EQ_INT(rc, rows[i].rc);
        if (rc != rows[i].rc) {
            fprintf(stderr, "  row %zu: %s '%s' -> '%s'\n", i, rows[i].key, rows[i].value, err);
        }
        if (rows[i].err_part != NULL) {
            CHECK_ERR_HAS(err, rows[i].err_part);
        }
    }
}

static void test_bad_value_keeps_old(void)
{
    mqim_gw_config_t cfg;
    char err[256];
    mqim_gw_config_defaults(&cfg);
    CHECK_EQ_INT(mqim_gw_config_set(&cfg, "broker_port", "70000", err, sizeof(err)), -1);
    CHECK_EQ_INT(cfg.broker_port, 1883);
    CHECK_EQ_INT(mqim_gw_config_set(&cfg, "accept_any_user", "maybe", err, sizeof(err)), -1);
    CHECK(!cfg.accept_any_user);
    CHECK_EQ_INT(mqim_gw_config_set(&cfg, "root", "0123456789abcdef0123456789abcdef0", err,
                                    sizeof(err)),
                 -1);
    CHECK(strcmp(cfg.root, "im") == 0);
}

static void test_file(void)
{
    mqim_gw_config_t cfg;
    char err[1200] = "", path[300], pwpath[300], text[1200];
    path_in(path, sizeof(path), "gw.conf");
    path_in(pwpath, sizeof(pwpath), "gw password");
    write_file(pwpath, "s3cret pass\r\nsecond line ignored\n");
    snprintf(text, sizeof(text),
             "\xEF\xBB\xBF# mqim-gateway test config\n"
             "\n"
             "   # an indented comment\n"
             "\t\n"
             "  broker_port 1999  \n"
             "rate_per_sec\t7\n"
             "data_dir   /tmp/a dir/with spaces \r\n"
             "password_file %s\n"
             "log_level warn\n"
             "broker_port 2000\n" /* later wins */
             "accept_any_user on",   /* no final newline */
             pwpath);
    write_file(path, text);
    mqim_gw_config_defaults(&cfg);
    CHECK_EQ_INT(mqim_gw_config_load(&cfg, path, err, sizeof(err)), 0);
    if (err[0] != '\0') {
        fprintf(stderr, "  load: %s\n", err);
    }
    CHECK_EQ_INT(cfg.broker_port, 2000);
    CHECK_EQ_INT(cfg.rate_per_sec, 7);
    CHECK(strcmp(cfg.data_dir, "/tmp/a dir/with spaces") == 0);
    CHECK(strcmp(cfg.password_file, pwpath) == 0);
    CHECK(strcmp(cfg.password, "s3cret pass") == 0);
    CHECK_EQ_INT(cfg.log_level, MQIM_LOG_WARN);
    CHECK(cfg.accept_any_user);
    CHECK_EQ_INT(cfg.max_inflight, 64); /* untouched keys keep their values */

    /* Errors name the file and the line. */
    write_file(path, "# comment\nbroker_port 1\n\nbrokr_port 3\n");
    CHECK_EQ_INT(mqim_gw_config_load(&cfg, path, err, sizeof(err)), -1);
    CHECK_ERR_HAS(err, "gw.conf:4: unknown key 'brokr_port'");
    write_file(path, "broker_port 70000\n");
    CHECK_EQ_INT(mqim_gw_config_load(&cfg, path, err, sizeof(err)), -1);
    CHECK_ERR_HAS(err, "gw.conf:1: broker_port: 70000 is out of range 1..65535");
    write_file(path, "\n\nroot\n");
    CHECK_EQ_INT(mqim_gw_config_load(&cfg, path, err, sizeof(err)), -1);
    CHECK_ERR_HAS(err, "gw.conf:3: root: missing value");
    write_file(path, "broker_port 1883 # trailing comments are not supported\n");
    CHECK_EQ_INT(mqim_gw_config_load(&cfg, path, err, sizeof(err)), -1);
    CHECK_ERR_HAS(err, "gw.conf:1: broker_port: '1883 # trailing comments are not supported' is not a number");
    {
        static char big[5000];
        memset(big, 'x', sizeof(big) - 2u);
        memcpy(big, "data_dir ", 9);
        big[sizeof(big) - 2u] = '\n';
        write_file(path, big);
        CHECK_EQ_INT(mqim_gw_config_load(&cfg, path, err, sizeof(err)), -1);
        CHECK_ERR_HAS(err, "gw.conf:1: the line is too long");
    }
    path_in(path, sizeof(path), "missing.conf");
    CHECK_EQ_INT(mqim_gw_config_load(&cfg, path, err, sizeof(err)), -1);
    CHECK_ERR_HAS(err, "cannot open config file");
    CHECK_ERR_HAS(err, "missing.conf: No such file or directory");
}

static void test_password_file(void)
{
    mqim_gw_config_t cfg;
    char err[1200] = "", pwpath[300], longpw[400];
    path_in(pwpath, sizeof(pwpath), "pw");
    mqim_gw_config_defaults(&cfg);

    write_file(pwpath, "only-line");
    CHECK_EQ_INT(mqim_gw_config_set(&cfg, "password_file", pwpath, err, sizeof(err)), 0);
    CHECK(strcmp(cfg.password, "only-line") == 0);

    write_file(pwpath, "\nsecond\n");
    CHECK_EQ_INT(mqim_gw_config_set(&cfg, "password_file", pwpath, err, sizeof(err)), -1);
    CHECK_ERR_HAS(err, "the first line is empty");
    CHECK(strcmp(cfg.password, "") == 0); /* no stale password */

    write_file(pwpath, "");
    CHECK_EQ_INT(mqim_gw_config_set(&cfg, "password_file", pwpath, err, sizeof(err)), -1);
    CHECK_ERR_HAS(err, "the file is empty");

    memset(longpw, 'p', 300);
    longpw[300] = '\n';
    longpw[301] = '\0';
    write_file(pwpath, longpw);
    CHECK_EQ_INT(mqim_gw_config_set(&cfg, "password_file", pwpath, err, sizeof(err)), -1);
    CHECK_ERR_HAS(err, "longer than 255 characters");

    /* A directory cannot be read as a password file. */
    CHECK_EQ_INT(mqim_gw_config_set(&cfg, "password_file", dir, err, sizeof(err)), -1);
    CHECK_ERR_HAS(err, "cannot read");

    /* Not yet there: `mqim-gateway init` creates it; the password stays empty. */
    path_in(pwpath, sizeof(pwpath), "not-yet");
    CHECK_EQ_INT(mqim_gw_config_set(&cfg, "password_file", pwpath, err, sizeof(err)), 0);
    CHECK(strcmp(cfg.password, "") == 0);

    /* Unreadable (mode 000): only meaningful when not root. */
    if (geteuid() != 0) {
        path_in(pwpath, sizeof(pwpath), "locked");
        write_file(pwpath, "x\n");
        chmod(pwpath, 0);
        CHECK_EQ_INT(mqim_gw_config_set(&cfg, "password_file", pwpath, err, sizeof(err)), -1);
        CHECK_ERR_HAS(err, "Permission denied");
    }
}

static void test_validate(void)
{
    static const char *const bad_roots[] = { "", "im/#", "#", "im/+/x", "a//b", "/im", "im/",
                                             "im\nx" };
    mqim_gw_config_t cfg;
    char err[512];
    for (size_t i = 0; i < sizeof(bad_roots) / sizeof(bad_roots[0]); i++) {
        mqim_gw_config_defaults(&cfg);
        snprintf(cfg.root, sizeof(cfg.root), "%s", bad_roots[i]);
        err[0] = '\0';
        CHECK_EQ_INT(mqim_gw_config_validate(&cfg, err, sizeof(err)), -1);
        CHECK_ERR_HAS(err, "is not a valid topic root");
    }
    mqim_gw_config_defaults(&cfg);
    snprintf(cfg.root, sizeof(cfg.root), "acme/im");
    CHECK_EQ_INT(mqim_gw_config_validate(&cfg, err, sizeof(err)), 0);

#define BAD(stmt, part)                                                  \
    do {                                                                 \
        mqim_gw_config_defaults(&cfg);                                   \
        stmt;                                                            \
        err[0] = '\0';                                                   \
        CHECK_EQ_INT(mqim_gw_config_validate(&cfg, err, sizeof(err)), -1); \
        CHECK_ERR_HAS(err, part);                                        \
    } while (0)
    BAD(cfg.broker_port = 0, "broker_port: 0 is out of range 1..65535");
    BAD(cfg.broker_port = 70000, "broker_port: 70000 is out of range 1..65535");
    BAD(cfg.map_size_mb = 0, "map_size_mb: 0 is out of range");
    BAD(cfg.max_inflight = 0, "max_inflight: 0 is out of range 1..65535");
    BAD(cfg.max_inflight = 65536, "max_inflight: 65536 is out of range 1..65535");
    BAD(cfg.keepalive_s = 0, "keepalive_s: 0 is out of range 2..65535");
    BAD(cfg.sync_page = 0, "sync_page: 0 is out of range 1..1000");
    BAD(cfg.sync_page = 1001, "sync_page: 1001 is out of range 1..1000");
    BAD(cfg.rate_burst = 0, "rate_burst");
    BAD(cfg.log_level = 4, "log_level");
    BAD(cfg.broker_host[0] = '\0', "broker_host");
    BAD(snprintf(cfg.broker_host, sizeof(cfg.broker_host), "a b"), "broker_host");
    BAD(snprintf(cfg.username, sizeof(cfg.username), "gw#1"), "username: 'gw#1' is not a valid");
    BAD(cfg.username[0] = '\0', "username");
    BAD(cfg.client_id[0] = '\0', "client_id");
    BAD(snprintf(cfg.share_group, sizeof(cfg.share_group), "a/b"), "share_group: 'a/b' is not a valid");
    BAD(snprintf(cfg.share_group, sizeof(cfg.share_group), "#"), "share_group");
    BAD(cfg.data_dir[0] = '\0', "data_dir: must not be empty");
    BAD(cfg.broker_acl_file[0] = '\0', "broker_acl_file: must not be empty");
    BAD(snprintf(cfg.broker_pid_file, sizeof(cfg.broker_pid_file), "a\nb"), "broker_pid_file");
    /* TLS: a certificate needs its key (and the reverse); TLS files with
     * TLS off would send the password in the clear. */
    BAD((cfg.broker_tls = true, snprintf(cfg.broker_certfile, sizeof(cfg.broker_certfile), "gw.crt")),
        "broker_certfile, broker_keyfile: give both");
    BAD((cfg.broker_tls = true, snprintf(cfg.broker_keyfile, sizeof(cfg.broker_keyfile), "gw.key")),
        "broker_certfile, broker_keyfile: give both");
    BAD(snprintf(cfg.broker_cafile, sizeof(cfg.broker_cafile), "ca.crt"),
        "broker_tls is false");
    BAD((cfg.broker_tls = true, snprintf(cfg.broker_cafile, sizeof(cfg.broker_cafile), "a\tb")),
        "broker_cafile: the path holds control characters");
    BAD(snprintf(cfg.pki_dir, sizeof(cfg.pki_dir), "p\nki"), "pki_dir: the path holds control");
    BAD(cfg.cert_days = 0, "cert_days: 0 is out of range 1..3650");
#undef BAD
    /* TLS with the system's CAs (no broker_cafile), and with a client certificate. */
    mqim_gw_config_defaults(&cfg);
    cfg.broker_tls = true;
    CHECK_EQ_INT(mqim_gw_config_validate(&cfg, err, sizeof(err)), 0);
    snprintf(cfg.broker_certfile, sizeof(cfg.broker_certfile), "gw.crt");
    snprintf(cfg.broker_keyfile, sizeof(cfg.broker_keyfile), "gw.key");
    CHECK_EQ_INT(mqim_gw_config_validate(&cfg, err, sizeof(err)), 0);
    /* No rate limit: the burst does not matter. */
    mqim_gw_config_defaults(&cfg);
    cfg.rate_per_sec = 0;
    cfg.rate_burst = 0;
    CHECK_EQ_INT(mqim_gw_config_validate(&cfg, err, sizeof(err)), 0);
}

/* The documented example must stay loadable and list the defaults. */
static void test_example_file(void)
{
#ifdef MQIM_SOURCE_DIR
    mqim_gw_config_t cfg, def;
    char err[512] = "";
    mqim_gw_config_defaults(&cfg);
    mqim_gw_config_defaults(&def);
    CHECK_EQ_INT(mqim_gw_config_load(&cfg, MQIM_SOURCE_DIR "/config/gateway.conf.example", err,
                                     sizeof(err)),
                 0);
    if (err[0] != '\0') {
        fprintf(stderr, "  %s\n", err);
    }
    CHECK(memcmp(&cfg, &def, sizeof(cfg)) == 0);
#endif
}

/* Log levels, and the line format on stderr. */
static void test_log(void)
{
    char path[300], buf[8192];
    int saved, fd;
    ssize_t n;
    const char *line2;
    CHECK_EQ_INT(mqim_log_level_parse("error"), MQIM_LOG_ERROR);
    CHECK_EQ_INT(mqim_log_level_parse("warn"), MQIM_LOG_WARN);
    CHECK_EQ_INT(mqim_log_level_parse("info"), MQIM_LOG_INFO);
    CHECK_EQ_INT(mqim_log_level_parse("debug"), MQIM_LOG_DEBUG);
    CHECK_EQ_INT(mqim_log_level_parse("trace"), -1);
    CHECK_EQ_INT(mqim_log_level_parse(NULL), -1);
    CHECK_EQ_INT(mqim_log_get_level(), MQIM_LOG_INFO);

    path_in(path, sizeof(path), "log.txt");
    fflush(stderr);
    saved = dup(STDERR_FILENO);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (saved < 0 || fd < 0 || dup2(fd, STDERR_FILENO) < 0) {
        perror("redirect stderr");
        exit(2);
    }
    close(fd);
    mqim_log_set_level(MQIM_LOG_WARN);
    MQIM_LOGI("test", "not shown %d", 1);
    MQIM_LOGD("test", "not shown %d", 2);
    MQIM_LOGW("router", "shown %d", 3);
    mqim_log_set_level(MQIM_LOG_DEBUG);
    MQIM_LOGD("store", "debug %s\n", "line"); /* a trailing newline is not doubled */
    {
        static char big[5000];
        memset(big, 'z', sizeof(big) - 1u);
        MQIM_LOGE("big", "%s", big);
    }
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    mqim_log_set_level(MQIM_LOG_INFO);

    fd = open(path, O_RDONLY);
    n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1u) : -1;
    if (fd >= 0) {
        close(fd);
    }
    CHECK(n > 0);
    buf[n > 0 ? n : 0] = '\0';
    /* 2026-11-24T20:12:35.123Z WARN  router: shown 3 */
    CHECK(n > 24 && buf[4] == '-' && buf[7] == '-' && buf[10] == 'T' && buf[13] == ':' &&
          buf[16] == ':' && buf[19] == '.' && buf[23] == 'Z' && buf[24] == ' ');
    CHECK(strncmp(buf + 25, "WARN  router: shown 3\n", 22) == 0);
    CHECK(strstr(buf, "not shown") == NULL);
    line2 = strchr(buf, '\n');
    CHECK(line2 != NULL && strncmp(line2 + 26, "DEBUG store: debug line\n", 24) == 0);
    CHECK(strstr(buf, "ERROR big: zzz") != NULL);
    CHECK(strstr(buf, "zzz...\n") != NULL); /* cut, and says so */
    CHECK(strlen(buf) < 2048u + 200u);
}

/* SIGHUP: the live keys are copied and listed with old->new, the others
 * only named (values may be secret) and left as they run. */
static void test_reload(void)
{
    mqim_gw_config_t run, next;
    char applied[512], restart[512];
    char small_a[24], small_r[8];
    mqim_gw_config_defaults(&run);
    mqim_gw_config_defaults(&next);
    mqim_gw_config_reload(&run, &next, applied, sizeof(applied), restart, sizeof(restart));
    CHECK(strcmp(applied, "") == 0);
    CHECK(strcmp(restart, "") == 0);

    next.log_level = 3;
    next.rate_per_sec = 250;
    next.file_rate_burst = 7;
    next.sync_page = 50;
    snprintf(next.client_id, sizeof(next.client_id), "%s", "a-new-secret-client-id");
    snprintf(next.password, sizeof(next.password), "%s", "new-password");
    mqim_gw_config_reload(&run, &next, applied, sizeof(applied), restart, sizeof(restart));
    CHECK(strcmp(applied, "file_rate_burst 1000->7, rate_per_sec 100->250, log_level info->debug") == 0);
    CHECK(strcmp(restart, "client_id, sync_page, password") == 0);
    CHECK_EQ_INT(run.log_level, 3);
    CHECK_EQ_INT(run.rate_per_sec, 250);
    CHECK_EQ_INT(run.file_rate_burst, 7);
    CHECK_EQ_INT(run.sync_page, 100); /* needs a restart: unchanged */
    CHECK(strcmp(run.client_id, "mqim-gateway") == 0);
    CHECK(strcmp(run.password, "") == 0);
    CHECK(strstr(restart, "secret") == NULL);

    /* applied now: only the restart keys differ a second time */
    mqim_gw_config_reload(&run, &next, applied, sizeof(applied), restart, sizeof(restart));
    CHECK(strcmp(applied, "") == 0);
    CHECK(strcmp(restart, "client_id, sync_page, password") == 0);

    /* lists cut to their capacity, still terminated */
    mqim_gw_config_defaults(&run);
    mqim_gw_config_reload(&run, &next, small_a, sizeof(small_a), small_r, sizeof(small_r));
    CHECK(strlen(small_a) < sizeof(small_a));
    CHECK(strlen(small_r) < sizeof(small_r));
}

static void test_client_id_guessable(void)
{
    mqim_gw_config_t cfg;
    mqim_gw_config_defaults(&cfg);
    CHECK(mqim_gw_config_client_id_guessable(&cfg)); /* the default */
    snprintf(cfg.client_id, sizeof(cfg.client_id), "%s", "mqim-gateway-3f9a2c71d0e4b8a6c5f1e2d3");
    CHECK(!mqim_gw_config_client_id_guessable(&cfg));
    snprintf(cfg.client_id, sizeof(cfg.client_id), "%s", "fifteen-chars-x"); /* 15 < 16 */
    CHECK(mqim_gw_config_client_id_guessable(&cfg));
    snprintf(cfg.client_id, sizeof(cfg.client_id), "%s", "sixteen-chars-xx");
    CHECK(!mqim_gw_config_client_id_guessable(&cfg));
    snprintf(cfg.username, sizeof(cfg.username), "%s", "sixteen-chars-xx"); /* the user name */
    CHECK(mqim_gw_config_client_id_guessable(&cfg));
}

int main(void)
{
    char cmd[300];
    snprintf(dir, sizeof(dir), "/tmp/mqim-test-config-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    test_defaults();
    test_every_key();
    test_values_table();
    test_bad_value_keeps_old();
    test_file();
    test_password_file();
    test_validate();
    test_example_file();
    test_reload();
    test_client_id_guessable();
    test_log();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cleanup of %s failed\n", dir);
    }
    return CHECK_REPORT();
}
