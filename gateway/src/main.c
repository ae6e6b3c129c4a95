/* mqim-gateway: the daemon and its operator commands. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "broker_auth.h"
#include "admin.h"
#include "config.h"
#include "log.h"
#include "mqim/exit_code.h"
#include "mqim/name.h"
#include "daemon.h"
#include "mqim/version.h"
#include "pki.h"
#include "store.h"
#include "users.h"

static volatile sig_atomic_t stop_flag;
static volatile sig_atomic_t reload_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void on_hangup(int sig)
{
    (void)sig;
    reload_flag = 1;
}

static void usage(FILE *f)
{
    fputs("usage: mqim-gateway [-c FILE] [--KEY VALUE ...] [COMMAND]\n"
          "\n"
          "commands:\n"
          "  run                      run the gateway (default)\n"
          "  init                     write the broker ACL file and the gateway's broker user,\n"
          "                           and a random secret client_id into the config file\n"
          "                           when it has none (run refuses a guessable one)\n"
          "  user add NAME [--password P | --password-file F | --random] [--cert [--out DIR]]\n"
          "           [--require-cert | --no-require-cert]\n"
          "                           add or update a user (--random prints the password);\n"
          "                           --cert issues a client certificate CN=NAME from the CA\n"
          "                           in pki_dir: DIR/NAME.crt, DIR/NAME.key (default DIR .),\n"
          "                           printed after the password; with --cert alone the user\n"
          "                           gets no password; --require-cert (mqim_auth plugin):\n"
          "                           two-factor, a certificate CN=NAME and the password\n"
          "                           (--no-require-cert: off again)\n"
          "  user del NAME            remove a user from the broker: the password, and every\n"
          "                           certificate issued to NAME revoked in pki_dir/crl.pem\n"
          "                           (history is kept)\n"
          "  user certs NAME          list the certificates issued to NAME (serial, state,\n"
          "                           expiry)\n"
          "  user revoke NAME SERIAL|--all\n"
          "                           revoke certificates of NAME (rotation: the old one),\n"
          "                           the user stays\n"
          "  user list                list registered users\n"
          "  user set NAME KEY VALUE  per-user policy: KEY retain_count | retain_days |\n"
          "                           inbox_quota, VALUE a number, none (no limit) or\n"
          "                           default (the gateway's configured value)\n"
          "  group set GROUP KEY VALUE\n"
          "                           per-group retention: KEY retain_count | retain_days,\n"
          "                           VALUE a number, none or default (group_retain_*)\n"
          "  history USER [--with PEER] [--after SEQ] [--limit N]\n"
          "                           print a user's stored inbox\n"
          "  stats                    print store statistics and identity\n"
          "  backup DIR               a consistent copy of the store (compacted) and of the\n"
          "                           inbound journal into DIR (new or empty); the gateway\n"
          "                           may keep running\n"
          "  restore DIR              replace the store with the backup in DIR (the gateway\n"
          "                           must be stopped) and begin a new store epoch: devices\n"
          "                           re-sync instead of dropping seqs handed out again\n"
          "  new-epoch                begin a new store epoch (after any recovery that may\n"
          "                           have lost history; the gateway must be stopped)\n"
          "  status                   ask the running gateway: connected, store id and epoch,\n"
          "                           outbox depth and oldest age, journal lag (exit 1 when\n"
          "                           not running or not connected to the broker)\n"
          "  online [--all]           users and devices online, last seen (local time);\n"
          "                           --all: every device the store knows\n"
          "  log-level LEVEL          set the running gateway's log level (error, warn, info,\n"
          "                           debug) until the next SIGHUP or restart\n"
          "  check                    check the installation: client_id, files and their\n"
          "                           permissions, certificates and expiry, clock, data dir,\n"
          "                           disk, the broker (exit 1 when a check failed)\n"
          "\n"
          "options: -c/--config FILE, then any config key as a flag: --broker-port 1884,\n"
          "--data-dir DIR, --log-level debug, ... (see config/gateway.conf.example).\n"
          "\n"
          "signals (run): SIGTERM/SIGINT stop cleanly; SIGHUP reads the options again and\n"
          "applies log_level and the rate limits at once (the log names keys that need a\n"
          "restart).\n"
          "--help this text; --version the version.\n"
          "exit status (the same table as mqim's, man mqim-gateway): 0 ok, 1 failure,\n"
          "2 usage or configuration error, 3 a user change saved but the broker could not\n"
          "be told (it applies it when it starts).\n",
          f);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int open_store(const mqim_gw_config_t *cfg, bool ro, mqim_store_t **s)
{
    mqim_store_config_t sc = mqim_gateway_store_config(cfg);
    if (mqim_store_open_config(&sc, ro, s) != MQIM_OK) {
        fprintf(stderr, "mqim-gateway: cannot open the store in %s\n", cfg->data_dir);
        return -1;
    }
    return 0;
}

static int register_user(const mqim_gw_config_t *cfg, const char *name, bool add)
{
    mqim_store_t *s;
    mqim_txn_t txn;
    mqim_status_t st;
    if (open_store(cfg, false, &s) != 0) {
        return -1;
    }
    st = mqim_txn_begin(s, MQIM_TXN_WRITE, &txn);
    if (st == MQIM_OK) {
        st = add ? mqim_store_user_ensure(&txn, mqim_str_from_cstr(name), now_ms())
                 : mqim_store_user_del(&txn, mqim_str_from_cstr(name));
        if (st == MQIM_NOT_FOUND) {
            st = MQIM_OK;
        }
        st = st == MQIM_OK ? mqim_txn_commit(&txn) : (mqim_txn_abort(&txn), st);
    }
    mqim_store_close(s);
    if (st != MQIM_OK) {
        fprintf(stderr, "mqim-gateway: store: %s\n", mqim_status_str(st));
        return -1;
    }
    return 0;
}

/* Exit status of `user add|del|revoke` when the change is saved but the
 * broker could not be told (no running broker behind broker_pid_file, or
 * SIGHUP failed): it applies the change when it starts or next reloads. */
#define EXIT_BROKER_NOT_TOLD 3

/* SIGHUP to the broker. 0: told; 1: no running broker (said on stderr when
 * `quiet` is false); -1: the signal failed (said on stderr). */
static int reload(const mqim_gw_config_t *cfg, bool quiet)
{
    char err[256];
    int rc;
    if (mqim_broker_auth_plugin(cfg)) {
        return 0; /* the plugin reads the auth database at once: nothing to tell */
    }
    rc = mqim_users_reload_broker(cfg, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "mqim-gateway: the change is saved, but the broker was not told: %s\n", err);
    } else if (rc > 0 && !quiet) {
        fprintf(stderr,
                "mqim-gateway: the change is saved, but the broker was not told: no running "
                "broker behind %s; it applies the change when it starts (or run `systemctl reload "
                "mosquitto`)\n",
                cfg->broker_pid_file);
    }
    return rc;
}

/* The exit status for what reload() returned after a saved change. */
static int reload_status(int rc)
{
    return rc == 0 ? 0 : EXIT_BROKER_NOT_TOLD;
}

static int read_first_line(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL || fgets(buf, (int)cap, f) == NULL) {
        if (f != NULL) {
            fclose(f);
        }
        return -1;
    }
    fclose(f);
    buf[strcspn(buf, "\r\n")] = '\0';
    return buf[0] != '\0' ? 0 : -1;
}

/* A guessable client_id (the default of a config without one): append a
 * random secret one to the config file, as scripts/broker-conf writes it.
 * The last "client_id" line of a file wins. */
static int init_client_id(mqim_gw_config_t *cfg, const char *conf_path)
{
    char secret[25];
    FILE *f;
    if (!mqim_gw_config_client_id_guessable(cfg)) {
        return 0;
    }
    if (conf_path == NULL) {
        fprintf(stderr, "mqim-gateway: client_id '%s' is guessable and there is no config file to "
                "write a secret one into: give -c FILE (see config/gateway.conf.example)\n",
                cfg->client_id);
        return -1;
    }
    if (mqim_users_random_password(secret, sizeof(secret) - 1u) != 0) {
        fprintf(stderr, "mqim-gateway: cannot make a random client id\n");
        return -1;
    }
    secret[sizeof(secret) - 1u] = '\0';
    snprintf(cfg->client_id, sizeof(cfg->client_id), "mqim-gateway-%s", secret);
    f = fopen(conf_path, "a");
    if (f == NULL ||
        fprintf(f, "\n# Written by `mqim-gateway init`: secret and fixed (the broker session is tied\n"
                   "# to it; a user who knew it could take the gateway's session over).\n"
                   "client_id %s\n", cfg->client_id) < 0 ||
        fclose(f) != 0) {
        fprintf(stderr, "mqim-gateway: cannot write the client id to %s: %s\n", conf_path,
                strerror(errno));
        return -1;
    }
    fprintf(stderr, "mqim-gateway: wrote a random secret client_id to %s\n", conf_path);
    return 0;
}

static int cmd_init(mqim_gw_config_t *cfg, const char *conf_path)
{
    char err[512];
    mqim_store_t *s;
    bool plugin = mqim_broker_auth_plugin(cfg);
    if (!plugin && mqim_users_write_acl(cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "mqim-gateway: %s\n", err);
        return 1;
    }
    if (cfg->password_file[0] != '\0' && cfg->password[0] == '\0') {
        /* First start: a strong random password for the gateway's own broker user. */
        FILE *f;
        int fd;
        if (mqim_users_random_password(cfg->password, 32) != 0) {
            fprintf(stderr, "mqim-gateway: cannot make a random password\n");
            return 1;
        }
        fd = open(cfg->password_file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        f = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (f == NULL || fprintf(f, "%s\n", cfg->password) < 0 || fclose(f) != 0) {
            fprintf(stderr, "mqim-gateway: cannot write %s: %s\n", cfg->password_file,
                    strerror(errno));
            return 1;
        }
    }
    if (init_client_id(cfg, conf_path) != 0) {
        return 1; /* first: the plugin's settings name the gateway's client id */
    }
    if (plugin ? mqim_broker_auth_init(cfg, err, sizeof(err)) != 0
               : (cfg->password[0] != '\0' &&
                  mqim_users_passwd_set(cfg, cfg->username, cfg->password, err, sizeof(err)) != 0)) {
        fprintf(stderr, "mqim-gateway: %s\n", err);
        return 1;
    }
    if (cfg->pki_dir[0] != '\0' && mqim_pki_init(cfg, err, sizeof(err)) != 0) {
        /* The CA database and crl.pem: the broker's crlfile must exist. */
        fprintf(stderr, "mqim-gateway: %s\n", err);
        return 1;
    }
    if (open_store(cfg, false, &s) != 0) {
        return 1;
    }
    mqim_store_close(s);
    /* No broker yet is the normal case at init: it reads the files when it starts. */
    return reload(cfg, true) < 0 ? 1 : 0;
}

static int print_user(void *ctx, mqim_str_t user, const mqim_user_rec_t *rec);

/* A policy value of `user set` / `group set`: a positive number, none (no
 * limit) or default (0 in the record: the configured value). -1 when bad. */
static int parse_policy(const char *text, uint64_t *value)
{
    char *end = NULL;
    if (strcmp(text, "default") == 0) {
        *value = 0;
        return 0;
    }
    if (strcmp(text, "none") == 0) {
        *value = MQIM_POLICY_UNLIMITED;
        return 0;
    }
    errno = 0;
    *value = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || *value == 0u ||
        *value == MQIM_POLICY_UNLIMITED) {
        fprintf(stderr, "mqim-gateway: '%s' is not a positive number, none or default\n", text);
        return -1;
    }
    return 0;
}

/* user set NAME KEY VALUE: a per-user retention or quota policy. */
static int cmd_user_set(mqim_gw_config_t *cfg, int argc, char **argv)
{
    mqim_store_t *s;
    mqim_txn_t txn;
    mqim_user_rec_t u;
    uint64_t value = 0, *field = NULL;
    mqim_status_t st;
    if (argc != 3) {
        usage(stderr);
        return 2;
    }
    if (parse_policy(argv[2], &value) != 0) {
        return 2;
    }
    if (open_store(cfg, false, &s) != 0) {
        return 1;
    }
    st = mqim_txn_begin(s, MQIM_TXN_WRITE, &txn);
    if (st == MQIM_OK) {
        st = mqim_store_user_get(&txn, mqim_str_from_cstr(argv[0]), &u);
    }
    if (st == MQIM_OK) {
        field = strcmp(argv[1], "retain_count") == 0  ? &u.retain_count
                : strcmp(argv[1], "retain_days") == 0 ? &u.retain_days
                : strcmp(argv[1], "inbox_quota") == 0 ? &u.inbox_quota
                                                      : NULL;
        if (field == NULL) {
            st = MQIM_BAD_PARAMETER;
        } else {
            *field = value;
            st = mqim_store_user_put(&txn, mqim_str_from_cstr(argv[0]), &u);
        }
    }
    st = st == MQIM_OK ? mqim_txn_commit(&txn) : (txn.impl != NULL ? (mqim_txn_abort(&txn), st) : st);
    mqim_store_close(s);
    if (st == MQIM_NOT_FOUND) {
        fprintf(stderr, "mqim-gateway: no such user '%s'\n", argv[0]);
    } else if (st == MQIM_BAD_PARAMETER) {
        fprintf(stderr, "mqim-gateway: unknown key '%s' (retain_count, retain_days, inbox_quota)\n", argv[1]);
    } else if (st != MQIM_OK) {
        fprintf(stderr, "mqim-gateway: store: %s\n", mqim_status_str(st));
    }
    return st == MQIM_OK ? 0 : 1;
}

/* group set GROUP KEY VALUE: a group's own retention (what the group_set
 * op sets). It applies from the group's next message or the next sweep. */
static int cmd_group(mqim_gw_config_t *cfg, int argc, char **argv)
{
    mqim_store_t *s;
    mqim_txn_t txn;
    mqim_group_rec_t g;
    uint64_t value = 0, *field = NULL;
    mqim_status_t st;
    mqim_str_t group;
    if (argc != 4 || strcmp(argv[0], "set") != 0) {
        usage(stderr);
        return 2;
    }
    group = mqim_str_from_cstr(argv[1]);
    if (mqim_name_check(MQIM_NAME_GROUP, group) != MQIM_OK) {
        fprintf(stderr, "mqim-gateway: invalid group name '%s': %s\n", argv[1],
                mqim_status_str(mqim_name_check(MQIM_NAME_GROUP, group)));
        return 2;
    }
    if (strcmp(argv[2], "retain_count") != 0 && strcmp(argv[2], "retain_days") != 0) {
        fprintf(stderr, "mqim-gateway: unknown key '%s' (retain_count, retain_days)\n", argv[2]);
        return 2;
    }
    if (parse_policy(argv[3], &value) != 0) {
        return 2;
    }
    if (strcmp(argv[2], "retain_days") == 0 && value != 0u && value != MQIM_POLICY_UNLIMITED &&
        value > 1000000u) {
        fprintf(stderr, "mqim-gateway: retain_days: %s is out of range 1..1000000\n", argv[3]);
        return 2;
    }
    if (open_store(cfg, false, &s) != 0) {
        return 1;
    }
    st = mqim_txn_begin(s, MQIM_TXN_WRITE, &txn);
    if (st == MQIM_OK) {
        st = mqim_store_group_get(&txn, group, &g);
    }
    if (st == MQIM_OK) {
        field = strcmp(argv[2], "retain_count") == 0 ? &g.retain_count : &g.retain_days;
        *field = value;
        st = mqim_store_group_put(&txn, group, &g);
    }
    st = st == MQIM_OK ? mqim_txn_commit(&txn) : (txn.impl != NULL ? (mqim_txn_abort(&txn), st) : st);
    mqim_store_close(s);
    if (st == MQIM_NOT_FOUND) {
        fprintf(stderr, "mqim-gateway: no such group '%s'\n", argv[1]);
    } else if (st != MQIM_OK) {
        fprintf(stderr, "mqim-gateway: store: %s\n", mqim_status_str(st));
    }
    return st == MQIM_OK ? 0 : 1;
}

/* Plugin mode: the certificates revoked in pki_dir go into the auth
 * database (the plugin refuses them and kicks their clients at once). */
static int sync_revoked(const mqim_gw_config_t *cfg, const char *name)
{
    char err[512];
    if (mqim_broker_auth_plugin(cfg) && mqim_broker_auth_sync_revoked(cfg, name, err, sizeof(err)) != 0) {
        fprintf(stderr, "mqim-gateway: %s\n", err);
        return -1;
    }
    return 0;
}

/* user del NAME: the password, then the certificates (a user removed
 * from the password file can still connect with a valid certificate), then
 * the registry; one SIGHUP makes the broker read both files. */
static int cmd_user_del(const mqim_gw_config_t *cfg, const char *name)
{
    char err[512];
    unsigned revoked = 0;
    int rc;
    if ((mqim_broker_auth_plugin(cfg) ? mqim_broker_auth_user_del(cfg, name, err, sizeof(err))
                                      : mqim_users_passwd_del(cfg, name, err, sizeof(err))) != 0) {
        fprintf(stderr, "mqim-gateway: %s\n", err);
        return 1;
    }
    if (cfg->pki_dir[0] != '\0' && mqim_pki_revoke(cfg, name, NULL, &revoked, err, sizeof(err)) != 0) {
        fprintf(stderr, "mqim-gateway: %s\n", err);
        (void)reload(cfg, false); /* what was revoked before the failure is in the CRL */
        return 1;
    }
    if (revoked > 0u && sync_revoked(cfg, name) != 0) {
        return 1;
    }
    if (register_user(cfg, name, false) != 0) {
        return 1;
    }
    rc = reload(cfg, false);
    if (revoked > 0u) {
        printf("%s: %u certificate%s revoked (%s/crl.pem)\n", name, revoked,
               revoked == 1u ? "" : "s", cfg->pki_dir);
    }
    return reload_status(rc);
}

static int print_cert(void *ctx, const mqim_pki_cert_t *c)
{
    static const char *const states[] = { "valid", "revoked", "expired" };
    (void)ctx;
    /* expiry YYMMDDHHMMSSZ as 20YY-MM-DD (openssl ca writes 2-digit years until 2050) */
    printf("%s\t%s\t20%.2s-%.2s-%.2s\n", c->serial,
           states[c->status == 'V' ? 0 : c->status == 'R' ? 1 : 2], c->expiry, c->expiry + 2,
           c->expiry + 4);
    return 0;
}

/* user certs NAME | user revoke NAME SERIAL|--all */
static int cmd_user_certs(const mqim_gw_config_t *cfg, bool revoke, int argc, char **argv)
{
    char err[512];
    unsigned revoked = 0;
    int rc;
    if (argc != (revoke ? 2 : 1)) {
        usage(stderr);
        return 2;
    }
    if (cfg->pki_dir[0] == '\0') {
        fprintf(stderr, "mqim-gateway: pki_dir is not set: no certificates\n");
        return 2;
    }
    if (!revoke) {
        if (mqim_pki_list(cfg, argv[0], print_cert, NULL, err, sizeof(err)) != 0) {
            fprintf(stderr, "mqim-gateway: %s\n", err);
            return 1;
        }
        return 0;
    }
    if (mqim_pki_revoke(cfg, argv[0], strcmp(argv[1], "--all") == 0 ? NULL : argv[1], &revoked, err,
                        sizeof(err)) != 0) {
        fprintf(stderr, "mqim-gateway: %s\n", err);
        (void)reload(cfg, false);
        (void)sync_revoked(cfg, argv[0]);
        return 1;
    }
    if (revoked > 0u && sync_revoked(cfg, argv[0]) != 0) {
        return 1;
    }
    rc = revoked > 0u ? reload(cfg, false) : 0;
    printf("%s: %u certificate%s revoked\n", argv[0], revoked, revoked == 1u ? "" : "s");
    return reload_status(rc);
}

static int cmd_user_list(const mqim_gw_config_t *cfg)
{
    mqim_store_t *s;
    mqim_txn_t txn;
    if (open_store(cfg, true, &s) != 0) {
        return 1;
    }
    if (mqim_txn_begin(s, MQIM_TXN_READ, &txn) == MQIM_OK) {
        (void)mqim_store_user_each(&txn, print_user, NULL);
        mqim_txn_abort(&txn);
    }
    mqim_store_close(s);
    return 0;
}

/* user add|del|list|set|certs|revoke. long because: `user add` parses its
 * options and then makes its changes in order (certificate, password,
 * registry, broker) in one place, so the order of the side effects and
 * what each failure leaves behind can be read top to bottom. */
static int cmd_user(mqim_gw_config_t *cfg, int argc, char **argv)
{
    char err[512];
    char password[256] = "";
    char crt_path[MQIM_GW_PATH_MAX + 96], key_path[MQIM_GW_PATH_MAX + 96];
    const char *sub = argc > 0 ? argv[0] : "";
    const char *name = argc > 1 ? argv[1] : NULL;
    const char *out_dir = NULL;
    bool random_pw = false, cert = false;
    mqim_broker_2fa_t two_factor = MQIM_BROKER_2FA_KEEP;
    int told;

    if (strcmp(sub, "list") == 0) {
        return cmd_user_list(cfg);
    }
    if (strcmp(sub, "set") == 0) {
        return cmd_user_set(cfg, argc - 1, argv + 1);
    }
    if (strcmp(sub, "certs") == 0 || strcmp(sub, "revoke") == 0) {
        return cmd_user_certs(cfg, strcmp(sub, "revoke") == 0, argc - 1, argv + 1);
    }
    if (name == NULL || (strcmp(sub, "add") != 0 && strcmp(sub, "del") != 0)) {
        usage(stderr);
        return 2;
    }
    if (mqim_name_check(MQIM_NAME_USER, mqim_str_from_cstr(name)) != MQIM_OK) {
        fprintf(stderr, "mqim-gateway: invalid user name '%s': %s\n", name,
                mqim_status_str(mqim_name_check(MQIM_NAME_USER, mqim_str_from_cstr(name))));
        return 2;
    }
    if (strcmp(name, cfg->username) == 0) {
        /* That user may read and write the whole tree: `init` manages it. */
        fprintf(stderr, "mqim-gateway: '%s' is the gateway's own broker user; see `init`\n", name);
        return 2;
    }
    if (strcmp(sub, "del") == 0) {
        return cmd_user_del(cfg, name);
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--cert") == 0) {
            cert = true;
        } else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
            out_dir = argv[++i];
        } else if (strcmp(argv[i], "--require-cert") == 0 || strcmp(argv[i], "--no-require-cert") == 0) {
            two_factor = argv[i][2] == 'r' ? MQIM_BROKER_2FA_ON : MQIM_BROKER_2FA_OFF;
        } else if (strcmp(argv[i], "--random") == 0) {
            random_pw = true;
        } else if (strcmp(argv[i], "--password") == 0 && i + 1 < argc) {
            snprintf(password, sizeof(password), "%s", argv[++i]);
        } else if (strcmp(argv[i], "--password-file") == 0 && i + 1 < argc) {
            if (read_first_line(argv[++i], password, sizeof(password)) != 0) {
                fprintf(stderr, "mqim-gateway: cannot read a password from %s\n", argv[i]);
                return 1;
            }
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (out_dir != NULL && !cert) {
        usage(stderr);
        return 2;
    }
    if (two_factor != MQIM_BROKER_2FA_KEEP && !mqim_broker_auth_plugin(cfg)) {
        fprintf(stderr, "mqim-gateway: --require-cert needs the mqim_auth broker plugin "
                        "(broker_auth_db; docs/security.md)\n");
        return 2;
    }
    /* --cert alone: a certificate user has no password at all, so there is
     * none to leak or guess. Otherwise a random one unless one was given. */
    if (random_pw || (password[0] == '\0' && (!cert || two_factor == MQIM_BROKER_2FA_ON))) {
        if (mqim_users_random_password(password, 20) != 0) {
            fprintf(stderr, "mqim-gateway: cannot make a random password\n");
            return 1;
        }
        random_pw = true;
    }
    if (cert && mqim_pki_issue(cfg, name, out_dir, crt_path, key_path, sizeof(crt_path), err,
                               sizeof(err)) != 0) {
        fprintf(stderr, "mqim-gateway: %s\n", err);
        memset(password, 0, sizeof(password));
        return 1;
    }
    if (mqim_broker_auth_plugin(cfg)
            ? mqim_broker_auth_user_set(cfg, name, password[0] != '\0' ? password : NULL, two_factor,
                                        err, sizeof(err)) != 0
            : (password[0] != '\0' && mqim_users_passwd_set(cfg, name, password, err, sizeof(err)) != 0)) {
        fprintf(stderr, "mqim-gateway: %s\n", err);
        memset(password, 0, sizeof(password));
        return 1;
    }
    if (register_user(cfg, name, true) != 0) {
        memset(password, 0, sizeof(password));
        return 1;
    }
    told = reload(cfg, false);
    /* stdout is for scripts: the password first (when made here), then
     * the certificate and its key. */
    if (random_pw) {
        printf("%s\n", password);
    }
    if (cert) {
        printf("%s\n%s\n", crt_path, key_path);
    }
    memset(password, 0, sizeof(password));
    return reload_status(told);
}

static int print_user(void *ctx, mqim_str_t user, const mqim_user_rec_t *rec)
{
    (void)ctx;
    static const char *const keys[] = { "retain_count", "retain_days", "inbox_quota" };
    const uint64_t values[] = { rec->retain_count, rec->retain_days, rec->inbox_quota };
    printf("%.*s\tmessages=%" PRIu64 "\tnext_seq=%" PRIu64, (int)user.len, user.ptr, rec->count,
           rec->next_seq);
    for (int i = 0; i < 3; i++) {
        if (values[i] == MQIM_POLICY_UNLIMITED) {
            printf("\t%s=none", keys[i]);
        } else if (values[i] != 0u) {
            printf("\t%s=%" PRIu64, keys[i], values[i]);
        }
    }
    printf("\n");
    return 0;
}

typedef struct hist_print {
    mqim_txn_t *txn;
    const char *with;
    uint64_t limit, n;
} hist_print_t;

static int print_entry(void *ctx, const mqim_inbox_entry_t *e)
{
    hist_print_t *h = ctx;
    mqim_msg_rec_t m;
    if (h->n++ >= h->limit) {
        return 1;
    }
    if (e->pruned) {
        /* a tombstone: group retention removed the message, the seq stays */
        printf("%" PRIu64 "\t%" PRId64 "\t%s %.*s\t-\t(pruned)\n", e->seq, e->ts,
               e->dir == MQIM_INBOX_SENT ? "to  " : "from", (int)e->chat.len, e->chat.ptr);
        return 0;
    }
    if (mqim_store_msg_get(h->txn, e->mid, &m) != MQIM_OK) {
        return 0;
    }
    if (m.enc) {
        /* The body slot holds ciphertext (the "enc" JSON), never text: say
         * so instead of printing it as if it were the body. */
        m.body = MQIM_STR("(end-to-end encrypted)");
    }
    printf("%" PRIu64 "\t%" PRId64 "\t%s %.*s\t%.*s\t%.*s\n", e->seq, m.ts,
           e->dir == MQIM_INBOX_SENT ? "to  " : "from", (int)e->chat.len, e->chat.ptr,
           (int)m.id.len, m.id.ptr, (int)m.body.len, m.body.ptr);
    return 0;
}

static int cmd_history(mqim_gw_config_t *cfg, int argc, char **argv)
{
    mqim_store_t *s;
    mqim_txn_t txn;
    hist_print_t h = { &txn, NULL, 100, 0 };
    uint64_t after = 0;
    const char *user = argc > 0 ? argv[0] : NULL;
    if (user == NULL || mqim_name_check(MQIM_NAME_USER, mqim_str_from_cstr(user)) != MQIM_OK) {
        usage(stderr);
        return 2;
    }
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--with") == 0) {
            h.with = argv[i + 1];
        } else if (strcmp(argv[i], "--after") == 0) {
            after = strtoull(argv[i + 1], NULL, 10);
        } else if (strcmp(argv[i], "--limit") == 0) {
            h.limit = strtoull(argv[i + 1], NULL, 10);
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (open_store(cfg, true, &s) != 0) {
        return 1;
    }
    if (mqim_txn_begin(s, MQIM_TXN_READ, &txn) == MQIM_OK) {
        printf("seq\tts\tchat\tid\tbody\n");
        if (h.with != NULL) {
            (void)mqim_store_chat_scan(&txn, mqim_str_from_cstr(user), mqim_str_from_cstr(h.with),
                                       after, 0, print_entry, &h);
        } else {
            (void)mqim_store_inbox_scan(&txn, mqim_str_from_cstr(user), after, print_entry, &h);
        }
        mqim_txn_abort(&txn);
    }
    mqim_store_close(s);
    return 0;
}

/* Copy a file durably (written to to.tmp, fsynced, renamed). 1 when from
 * does not exist, 0 when copied, -1 with a message on stderr. */
static int copy_file(const char *from, const char *to)
{
    char tmp[MQIM_GW_PATH_MAX + 64], buf[65536];
    int in = open(from, O_RDONLY | O_CLOEXEC), out;
    ssize_t n = 0;
    if (in < 0) {
        if (errno == ENOENT) {
            return 1;
        }
        fprintf(stderr, "mqim-gateway: cannot read %s: %s\n", from, strerror(errno));
        return -1;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", to);
    out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) {
        fprintf(stderr, "mqim-gateway: cannot write %s: %s\n", tmp, strerror(errno));
        close(in);
        return -1;
    }
    while ((n = read(in, buf, sizeof(buf))) > 0) {
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w <= 0) {
                n = -1;
                break;
            }
            off += w;
        }
        if (n < 0) {
            break;
        }
    }
    if (n < 0 || fsync(out) != 0 || close(out) != 0 || rename(tmp, to) != 0) {
        fprintf(stderr, "mqim-gateway: cannot copy %s to %s: %s\n", from, to, strerror(errno));
        close(in);
        (void)unlink(tmp);
        return -1;
    }
    close(in);
    return 0;
}

/* backup DIR: the journal first, then the store. Records the store already
 * holds are skipped at replay (journal_applied); records it does not hold
 * yet are in the journal copy, unless the gateway journaled them after it
 * was taken (then they are after the backup's point in time anyway). */
static int cmd_backup(mqim_gw_config_t *cfg, int argc, char **argv)
{
    char from[MQIM_GW_PATH_MAX + 32], to[MQIM_GW_PATH_MAX + 32];
    mqim_store_t *s;
    const mqim_store_identity_t *id;
    struct stat sb;
    if (argc != 1) {
        usage(stderr);
        return 2;
    }
    snprintf(to, sizeof(to), "%s/data.mdb", argv[0]);
    if (stat(to, &sb) == 0) {
        fprintf(stderr, "mqim-gateway: %s already holds a store: back up into a new directory\n",
                argv[0]);
        return 1;
    }
    if (mkdir(argv[0], 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "mqim-gateway: cannot create %s: %s\n", argv[0], strerror(errno));
        return 1;
    }
    snprintf(from, sizeof(from), "%s/inbound.journal", cfg->data_dir);
    snprintf(to, sizeof(to), "%s/inbound.journal", argv[0]);
    if (copy_file(from, to) < 0 || open_store(cfg, true, &s) != 0) {
        return 1;
    }
    if (mqim_store_copy(s, argv[0]) != MQIM_OK) {
        fprintf(stderr, "mqim-gateway: cannot copy the store to %s\n", argv[0]);
        mqim_store_close(s);
        return 1;
    }
    id = mqim_store_identity(s);
    printf("backup of store %s (epoch %" PRIu64 ") in %s\n", id->id, id->epoch, argv[0]);
    mqim_store_close(s);
    return 0;
}

/* Hold the data directory's lock for an offline command (restore, new-epoch). */
static int lock_offline(const mqim_gw_config_t *cfg, const char *what)
{
    char err[MQIM_GW_PATH_MAX * 2 + 256];
    int fd = mqim_store_lock_dir(cfg->data_dir, err, sizeof(err));
    if (fd < 0) {
        fprintf(stderr, "mqim-gateway: %s: %s; stop it first\n", what, err);
    }
    return fd;
}

static int cmd_restore(mqim_gw_config_t *cfg, int argc, char **argv)
{
    char from[MQIM_GW_PATH_MAX + 32], to[MQIM_GW_PATH_MAX + 32];
    mqim_store_t *s;
    const mqim_store_identity_t *id;
    int lock, rc;
    if (argc != 1) {
        usage(stderr);
        return 2;
    }
    lock = lock_offline(cfg, "restore");
    if (lock < 0) {
        return 1;
    }
    snprintf(from, sizeof(from), "%s/data.mdb", argv[0]);
    snprintf(to, sizeof(to), "%s/data.mdb", cfg->data_dir);
    rc = copy_file(from, to);
    if (rc != 0) {
        if (rc > 0) {
            fprintf(stderr, "mqim-gateway: %s holds no backup (no data.mdb)\n", argv[0]);
        }
        close(lock);
        return 1;
    }
    /* The old reader table describes the old file. */
    snprintf(to, sizeof(to), "%s/lock.mdb", cfg->data_dir);
    (void)unlink(to);
    snprintf(from, sizeof(from), "%s/inbound.journal", argv[0]);
    snprintf(to, sizeof(to), "%s/inbound.journal", cfg->data_dir);
    rc = copy_file(from, to);
    if (rc > 0) {
        (void)unlink(to); /* the live journal belongs to the replaced store */
    } else if (rc < 0) {
        close(lock);
        return 1;
    }
    /* Opening it records the new file and, since it is a copy, begins an
     * epoch; begin one here if that did not happen for any reason. */
    if (open_store(cfg, false, &s) != 0) {
        close(lock);
        return 1;
    }
    if (!mqim_store_identity(s)->copied && mqim_store_new_epoch(s, "restored") != MQIM_OK) {
        fprintf(stderr, "mqim-gateway: cannot begin a new store epoch\n");
        mqim_store_close(s);
        close(lock);
        return 1;
    }
    id = mqim_store_identity(s);
    printf("restored %s into %s: store %s, new epoch %" PRIu64 "\n", argv[0], cfg->data_dir, id->id,
           id->epoch);
    mqim_store_close(s);
    close(lock);
    return 0;
}

static int cmd_new_epoch(mqim_gw_config_t *cfg)
{
    mqim_store_t *s;
    int lock = lock_offline(cfg, "new-epoch");
    mqim_status_t st;
    if (lock < 0) {
        return 1;
    }
    if (open_store(cfg, false, &s) != 0) {
        close(lock);
        return 1;
    }
    st = mqim_store_new_epoch(s, "mqim-gateway new-epoch");
    if (st == MQIM_OK) {
        printf("store %s: new epoch %" PRIu64 "\n", mqim_store_identity(s)->id,
               mqim_store_identity(s)->epoch);
    } else {
        fprintf(stderr, "mqim-gateway: store: %s\n", mqim_status_str(st));
    }
    mqim_store_close(s);
    close(lock);
    return st == MQIM_OK ? 0 : 1;
}

static int cmd_stats(mqim_gw_config_t *cfg)
{
    mqim_store_t *s;
    mqim_txn_t txn;
    mqim_store_stats_t st;
    if (open_store(cfg, true, &s) != 0) {
        return 1;
    }
    if (mqim_txn_begin(s, MQIM_TXN_READ, &txn) == MQIM_OK) {
        (void)mqim_store_stats(&txn, &st);
        printf("users\t%" PRIu64 "\nmessages\t%" PRIu64 "\ninbox_entries\t%" PRIu64
               "\noutbox\t%" PRIu64 "\nmessages_total\t%" PRIu64 "\nrejected_total\t%" PRIu64
               "\nduplicates_total\t%" PRIu64 "\ncommits_total\t%" PRIu64 "\nbatched_total\t%" PRIu64
               "\nmap_used_bytes\t%" PRIu64 "\nmap_size_bytes\t%" PRIu64 "\n",
               st.users, st.messages, st.inbox_entries, st.outbox,
               mqim_store_counter_get(&txn, "messages"), mqim_store_counter_get(&txn, "rejected"),
               mqim_store_counter_get(&txn, "duplicates"), mqim_store_counter_get(&txn, "commits"),
               mqim_store_counter_get(&txn, "batched"), st.map_used_bytes, st.map_size_bytes);
        printf("store_id\t%s\nstore_epoch\t%" PRIu64 "\nstore_format\t%" PRIu64 "\n",
               mqim_store_identity(s)->id, mqim_store_identity(s)->epoch,
               mqim_store_identity(s)->schema);
        mqim_txn_abort(&txn);
    }
    mqim_store_close(s);
    return 0;
}

/* The global options: defaults, then each -c FILE and --key value in order
 * (later wins). *next: the first argument after them. 0; 1 for --help; 2
 * for --version; -1 with a message in err. */
static int read_options(mqim_gw_config_t *cfg, int argc, char **argv, int *next,
                        const char **conf_path, char *err, size_t err_len)
{
    int i = 1;
    mqim_gw_config_defaults(cfg);
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            return 1;
        }
        if (strcmp(argv[i], "--version") == 0) {
            return 2;
        }
        if (i + 1 >= argc) {
            snprintf(err, err_len, "%s needs a value", argv[i]);
            return -1;
        }
        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) {
            *conf_path = argv[++i];
            if (mqim_gw_config_load(cfg, *conf_path, err, err_len) != 0) {
                return -1;
            }
        } else if (strncmp(argv[i], "--", 2) == 0) {
            char key[64];
            snprintf(key, sizeof(key), "%s", argv[i] + 2);
            for (char *p = key; *p; p++) {
                if (*p == '-') {
                    *p = '_';
                }
            }
            if (mqim_gw_config_set(cfg, key, argv[++i], err, err_len) != 0) {
                return -1;
            }
        } else {
            snprintf(err, err_len, "unknown option %s", argv[i]);
            return -1;
        }
    }
    *next = i;
    return mqim_gw_config_validate(cfg, err, err_len) != 0 ? -1 : 0;
}

/* SIGHUP: the options read again, as at the start (flags still override
 * the file), and the live keys applied (daemon.h, mqim_gateway_reload_t). */
typedef struct reload_ctx {
    mqim_gw_config_t *running;
    int argc;
    char **argv;
} reload_ctx_t;

static int reload_apply(void *ctx)
{
    reload_ctx_t *rc = ctx;
    static mqim_gw_config_t next; /* ~9 KiB of paths; the pump thread only */
    char err[512], applied[512], restart[512];
    const char *conf_path = NULL;
    int i = 0;
    if (read_options(&next, rc->argc, rc->argv, &i, &conf_path, err, sizeof(err)) != 0) {
        MQIM_LOGE("main", "reload (SIGHUP): %s; nothing changed", err);
        return -1;
    }
    mqim_gw_config_reload(rc->running, &next, applied, sizeof(applied), restart, sizeof(restart));
    memset(next.password, 0, sizeof(next.password));
    mqim_log_set_level((mqim_log_level_t)rc->running->log_level);
    MQIM_LOGI("main", "reloaded %s (SIGHUP): %s; %s%s", conf_path != NULL ? conf_path : "the options",
              applied[0] != '\0' ? applied : "no live key changed",
              restart[0] != '\0' ? "changed but needs a restart: " : "nothing needs a restart",
              restart);
    return 0;
}

int main(int argc, char **argv)
{
    mqim_gw_config_t cfg;
    char err[512];
    int i = 1, rc;
    const char *cmd = "run";
    const char *conf_path = NULL;

    /* Global options first: the config file, then flags that override it. */
    rc = read_options(&cfg, argc, argv, &i, &conf_path, err, sizeof(err));
    if (rc > 0) {
        if (rc == 2) {
            printf("mqim-gateway %s\n", MQIM_VERSION_STRING);
        } else {
            usage(stdout);
        }
        return MQIM_EXIT_OK;
    }
    if (rc < 0) {
        fprintf(stderr, "mqim-gateway: %s\n", err);
        if (strncmp(err, "unknown option", 14) == 0) {
            usage(stderr);
        }
        return MQIM_EXIT_USAGE;
    }
    mqim_log_set_level((mqim_log_level_t)cfg.log_level);
    if (i < argc) {
        cmd = argv[i++];
    }
    if (strcmp(cmd, "run") == 0) {
        struct sigaction sa;
        if (cfg.password_file[0] != '\0' && cfg.password[0] == '\0') {
            fprintf(stderr, "mqim-gateway: %s does not exist: run `mqim-gateway -c CONFIG init` first\n",
                    cfg.password_file);
            return 2;
        }
        if (mqim_gw_config_client_id_guessable(&cfg)) {
            /* Refused, not warned about: any broker user could connect with
             * it and take over the gateway's session, receiving what devices
             * publish while the gateway is away. */
            fprintf(stderr, "mqim-gateway: client_id '%s' is guessable (the default, the user name, or "
                    "shorter than %u characters): any broker user could take the gateway's session "
                    "over. Run `mqim-gateway -c CONFIG init` to write a random one into CONFIG, or "
                    "set a secret client_id yourself\n",
                    cfg.client_id, (unsigned)MQIM_GW_CLIENT_ID_MIN);
            return 2;
        }
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        /* SIGHUP reloads; without a handler it would end the gateway with a
         * status systemd counts as clean, so Restart=on-failure would not
         * bring it back. */
        sa.sa_handler = on_hangup;
        sigaction(SIGHUP, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
        /* One gateway per store: held until exit (the descriptor stays open). */
        if (mqim_store_lock_dir(cfg.data_dir, err, sizeof(err)) < 0) {
            fprintf(stderr, "mqim-gateway: %s\n", err);
            return 1;
        }
        {
            reload_ctx_t ctx = { &cfg, argc, argv };
            mqim_gateway_reload_t reload_hook = { &reload_flag, reload_apply, &ctx };
            return mqim_gateway_run(&cfg, &stop_flag, &reload_hook);
        }
    }
    if (strcmp(cmd, "init") == 0) {
        return cmd_init(&cfg, conf_path);
    }
    if (strcmp(cmd, "user") == 0) {
        return cmd_user(&cfg, argc - i, argv + i);
    }
    if (strcmp(cmd, "group") == 0) {
        return cmd_group(&cfg, argc - i, argv + i);
    }
    if (strcmp(cmd, "history") == 0) {
        return cmd_history(&cfg, argc - i, argv + i);
    }
    if (strcmp(cmd, "stats") == 0) {
        return cmd_stats(&cfg);
    }
    if (strcmp(cmd, "backup") == 0) {
        return cmd_backup(&cfg, argc - i, argv + i);
    }
    if (strcmp(cmd, "restore") == 0) {
        return cmd_restore(&cfg, argc - i, argv + i);
    }
    if (strcmp(cmd, "new-epoch") == 0) {
        return cmd_new_epoch(&cfg);
    }
    if (mqim_admin_is_command(cmd)) { /* status, online, check, log-level: admin/admin.c */
        return mqim_admin_run(&cfg, conf_path, cmd, argc - i, argv + i);
    }
    fprintf(stderr, "mqim-gateway: unknown command '%s'\n", cmd);
    usage(stderr);
    return MQIM_EXIT_USAGE;
}
