/* Config parsing and broker user administration (real mosquitto_passwd). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "mqim_check.h"
#include "users.h"

static char dir[256];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
        perror(path);
        exit(2);
    }
}

static int file_contains(const char *path, const char *needle)
{
    static char buf[8192];
    FILE *f = fopen(path, "r");
    size_t n;
    if (f == NULL) {
        return 0;
    }
    n = fread(buf, 1, sizeof(buf) - 1u, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

static void test_set_table(void)
{
    static const struct { const char *key, *value; int ok; const char *err_part; } rows[] = {
        { "broker_port", "1884", 0, NULL },
        { "broker_port", "0", -1, "out of range 1..65535" },
        { "broker_port", "70000", -1, "out of range" },
        { "broker_port", "12x", -1, "not a non-negative integer" },
        { "broker_port", "-1", -1, "not a non-negative integer" },
        { "max_inflight", "65535", 0, NULL },
        { "max_inflight", "65536", -1, "out of range" },
        { "sync_page", "1001", -1, "out of range 1..1000" },
        { "accept_any_user", "yes", 0, NULL },
        { "accept_any_user", "maybe", -1, "not a boolean" },
        { "log_level", "debug", 0, NULL },
        { "log_level", "loud", -1, "error, warn, info, debug" },
        { "brokr_port", "1", -1, "unknown key 'brokr_port'" },
        { "root", "acme/im", 0, NULL },
        { "inbox_quota", "18446744073709551615", 0, NULL },
        { "inbox_quota", "18446744073709551616", -1, "not a non-negative integer" },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        mqim_gw_config_t cfg;
        char err[256] = "";
        int rc;
        mqim_gw_config_defaults(&cfg);
        rc = mqim_gw_config_set(&cfg, rows[i].key, rows[i].value, err, sizeof(err));
        CHECK_EQ_INT(rc, rows[i].ok);
        if (rows[i].err_part != NULL) {
            CHECK(strstr(err, rows[i].err_part) != NULL);
            if (strstr(err, rows[i].err_part) == NULL) {
                fprintf(stderr, "  %s=%s -> '%s'\n", rows[i].key, rows[i].value, err);
            }
        }
    }
}

static void test_defaults_file_validate(void)
{
    mqim_gw_config_t cfg;
    char err[512] = "", path[300], pwpath[300], text[600];
    mqim_gw_config_defaults(&cfg);
    CHECK(strcmp(cfg.root, "im") == 0 && cfg.broker_port == 1883 && cfg.max_inflight == 64u);
    CHECK(cfg.sync_page == 100u && cfg.inbox_quota == 100000u && !cfg.accept_any_user);
    CHECK_EQ_INT(mqim_gw_config_validate(&cfg, err, sizeof(err)), 0);
    snprintf(pwpath, sizeof(pwpath), "%s/pw", dir);
    write_file(pwpath, "s3cret\n");
    snprintf(path, sizeof(path), "%s/gw.conf", dir);
    snprintf(text, sizeof(text),
             "# comment\n\n  broker_port 1999  \nrate_per_sec\t7\npassword_file %s\nlog_level warn\n", pwpath);
    write_file(path, text);
    CHECK_EQ_INT(mqim_gw_config_load(&cfg, path, err, sizeof(err)), 0);
    CHECK(cfg.broker_port == 1999 && cfg.rate_per_sec == 7u && cfg.log_level == 1);
    CHECK(strcmp(cfg.password, "s3cret") == 0);
    write_file(path, "broker_port 1\nbogus 3\n");
    CHECK_EQ_INT(mqim_gw_config_load(&cfg, path, err, sizeof(err)), -1);
    CHECK(strstr(err, "gw.conf:2: unknown key 'bogus'") != NULL);
    CHECK_EQ_INT(mqim_gw_config_load(&cfg, "/nonexistent/x.conf", err, sizeof(err)), -1);
    CHECK(strstr(err, "cannot open config file") != NULL);
    write_file(pwpath, "\n");
    CHECK_EQ_INT(mqim_gw_config_set(&cfg, "password_file", pwpath, err, sizeof(err)), -1);
    CHECK(strstr(err, "empty") != NULL);
    snprintf(cfg.root, sizeof(cfg.root), "im/#");
    CHECK_EQ_INT(mqim_gw_config_validate(&cfg, err, sizeof(err)), -1);
    CHECK(strstr(err, "not a valid topic root") != NULL);
}

/* The documented example must stay loadable and list the defaults. */
static void test_example_file(void)
{
    mqim_gw_config_t cfg, def;
    char err[512] = "";
    mqim_gw_config_defaults(&cfg);
    mqim_gw_config_defaults(&def);
    CHECK_EQ_INT(mqim_gw_config_load(&cfg, MQIM_SOURCE_DIR "/config/gateway.conf.example", err, sizeof(err)), 0);
    if (err[0] != '\0') {
        fprintf(stderr, "  %s\n", err);
    }
    CHECK(memcmp(&cfg, &def, sizeof(cfg)) == 0);
}

static void test_users(void)
{
    mqim_gw_config_t cfg;
    char err[512] = "", pw[33];
    struct stat sb;
    mqim_gw_config_defaults(&cfg);
    snprintf(cfg.broker_password_file, sizeof(cfg.broker_password_file), "%s/passwd", dir);
    snprintf(cfg.broker_acl_file, sizeof(cfg.broker_acl_file), "%s/acl", dir);
    snprintf(cfg.broker_pid_file, sizeof(cfg.broker_pid_file), "%s/none.pid", dir);
    CHECK_EQ_INT(mqim_users_write_acl(&cfg, err, sizeof(err)), 0);
    CHECK(file_contains(cfg.broker_acl_file, "user mqim-gateway\ntopic readwrite im/#\n"));
    CHECK(file_contains(cfg.broker_acl_file, "pattern write im/u/%u/out/#\n"));
    CHECK(file_contains(cfg.broker_acl_file, "pattern read im/u/%u/in/#\n"));
    CHECK(file_contains(cfg.broker_acl_file, "pattern read im/presence/#\n"));
    CHECK(stat(cfg.broker_acl_file, &sb) == 0 && (sb.st_mode & 0777) == 0600);
    CHECK_EQ_INT(mqim_users_random_password(pw, 32), 0);
    CHECK(strlen(pw) == 32u && strspn(pw, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") == 32u);
    CHECK_EQ_INT(mqim_users_passwd_set(&cfg, "alice", pw, err, sizeof(err)), 0);
    if (err[0] != '\0') {
        fprintf(stderr, "  passwd_set: %s\n", err);
    }
    CHECK_EQ_INT(mqim_users_passwd_set(&cfg, "bob", "pw2", err, sizeof(err)), 0);
    CHECK(file_contains(cfg.broker_password_file, "alice:"));
    CHECK(file_contains(cfg.broker_password_file, "bob:"));
    CHECK(!file_contains(cfg.broker_password_file, pw)); /* hashed, never plain */
    CHECK(stat(cfg.broker_password_file, &sb) == 0 && (sb.st_mode & 0777) == 0600);
    CHECK_EQ_INT(mqim_users_passwd_del(&cfg, "alice", err, sizeof(err)), 0);
    CHECK(!file_contains(cfg.broker_password_file, "alice:"));
    CHECK(file_contains(cfg.broker_password_file, "bob:"));
    CHECK_EQ_INT(mqim_users_passwd_set(&cfg, "a/b", "x", err, sizeof(err)), -1);
    CHECK(strstr(err, "invalid user name") != NULL);
    CHECK_EQ_INT(mqim_users_reload_broker(&cfg, err, sizeof(err)), 1); /* no broker running */
}

int main(void)
{
    char cmd[300];
    snprintf(dir, sizeof(dir), "/tmp/mqim-config-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    test_set_table();
    test_defaults_file_validate();
    test_example_file();
    test_users();
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cleanup failed\n");
    }
    return CHECK_REPORT();
}
