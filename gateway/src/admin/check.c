/* mqim-gateway check (check.h). Each check prints its own line; the run
 * counts failures and warnings. */
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"

typedef struct report {
    unsigned failed, warned;
} report_t;

typedef enum { FIND_OK, FIND_WARN, FIND_FAIL } result_t;

__attribute__((format(printf, 3, 4))) static void say(report_t *r, result_t res, const char *fmt, ...)
{
    static const char *const tag[] = { "ok   ", "warn ", "FAIL " };
    va_list ap;
    r->failed += res == FIND_FAIL ? 1u : 0u;
    r->warned += res == FIND_WARN ? 1u : 0u;
    fputs(tag[res], stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

/* ---- who the broker runs as ---- */

#define GROUPS_MAX 64

typedef struct broker_user {
    bool known;
    uid_t uid;
    gid_t gids[GROUPS_MAX];
    int ngids;
    char how[MQIM_GW_PATH_MAX + 64]; /* how we know: "pid 123" or "user mosquitto" */
} broker_user_t;

/* From the running broker (its pid file: /proc/PID/status), else the
 * `mosquitto` user Debian's package makes. */
static void find_broker_user(const mqim_gw_config_t *cfg, broker_user_t *b)
{
    char path[64], line[512];
    FILE *f = fopen(cfg->broker_pid_file, "r");
    long pid = 0;
    struct passwd *pw;
    memset(b, 0, sizeof(*b));
    if (f != NULL) {
        if (fscanf(f, "%ld", &pid) != 1) {
            pid = 0;
        }
        fclose(f);
    }
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    f = pid > 0 ? fopen(path, "r") : NULL;
    if (f != NULL) {
        while (fgets(line, sizeof(line), f) != NULL) {
            unsigned long id;
            if (sscanf(line, "Uid: %*u %lu", &id) == 1) {
                b->uid = (uid_t)id;
                b->known = true;
            } else if (strncmp(line, "Groups:", 7) == 0 || strncmp(line, "Gid:", 4) == 0) {
                char *p = strchr(line, ':') + 1, *end;
                bool gid_line = line[0] == 'G' && line[1] == 'i';
                while (b->ngids < GROUPS_MAX && (id = strtoul(p, &end, 10), end != p)) {
                    b->gids[b->ngids++] = (gid_t)id;
                    p = end;
                    if (gid_line) {
                        break; /* the real gid; the effective one follows */
                    }
                }
            }
        }
        fclose(f);
        snprintf(b->how, sizeof(b->how), "the running broker (pid %ld)", pid);
        return;
    }
    pw = getpwnam("mosquitto");
    if (pw != NULL) {
        int n = GROUPS_MAX;
        b->known = true;
        b->uid = pw->pw_uid;
        if (getgrouplist(pw->pw_name, pw->pw_gid, b->gids, &n) < 0) {
            n = 1;
            b->gids[0] = pw->pw_gid;
        }
        b->ngids = n;
        snprintf(b->how, sizeof(b->how), "user mosquitto (no running broker behind %s)",
                 cfg->broker_pid_file);
    }
}

/* Permission bits `want` (r=4, x=1) of st for the broker's user. */
static bool broker_may(const broker_user_t *b, const struct stat *st, unsigned want)
{
    if (b->uid == 0) {
        return true;
    }
    if (st->st_uid == b->uid) {
        return ((st->st_mode >> 6) & want) == want;
    }
    for (int i = 0; i < b->ngids; i++) {
        if (st->st_gid == b->gids[i]) {
            return ((st->st_mode >> 3) & want) == want;
        }
    }
    return (st->st_mode & want) == want;
}

/* A file the broker reads: every directory above it (the first one closed
 * to the broker is the one to fix), then the file. */
static void check_broker_reads(report_t *r, const broker_user_t *b, const char *what, const char *path)
{
    struct stat st;
    char dir[PATH_MAX];
    if (stat(path, &st) != 0) {
        say(r, FIND_FAIL, "%s %s: %s", what, path, strerror(errno));
        return;
    }
    if (!b->known) {
        say(r, FIND_WARN, "%s %s exists; cannot tell the broker's user (no pid file, no user mosquitto) to "
            "check it may read it", what, path);
        return;
    }
    if (realpath(path, dir) != NULL) {
        for (char *slash = strrchr(dir, '/'); slash != NULL && slash != dir; slash = strrchr(dir, '/')) {
            *slash = '\0';
            if (stat(dir, &st) == 0 && !broker_may(b, &st, 1u)) {
                say(r, FIND_FAIL, "%s %s: the broker (%s) cannot enter the directory %s (mode %03o)", what,
                    path, b->how, dir, (unsigned)(st.st_mode & 0777u));
                return;
            }
        }
    }
    if (stat(path, &st) == 0 && !broker_may(b, &st, 4u)) {
        say(r, FIND_FAIL, "%s %s: the broker (%s, uid %lu) cannot read it (mode %03o, owner %lu:%lu)", what,
            path, b->how, (unsigned long)b->uid, (unsigned)(st.st_mode & 0777u), (unsigned long)st.st_uid,
            (unsigned long)st.st_gid);
        return;
    }
    if (stat(path, &st) == 0 && (st.st_mode & 004u) != 0u) {
        say(r, FIND_WARN, "%s %s is readable by every user (mode %03o): chmod o-r (Mosquitto 2.0.16+ warns "
            "about it too)", what, path, (unsigned)(st.st_mode & 0777u));
        return;
    }
    say(r, FIND_OK, "%s %s: readable by the broker (%s)", what, path, b->how);
}

/* A secret of the gateway's: present and not readable by others. */
static void check_secret(report_t *r, const char *what, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        say(r, FIND_FAIL, "%s %s: %s", what, path, strerror(errno));
    } else if ((st.st_mode & 077u) != 0u) {
        say(r, FIND_FAIL, "%s %s: readable or writable by others (mode %03o): chmod 600", what, path,
            (unsigned)(st.st_mode & 0777u));
    } else if (access(path, R_OK) != 0) {
        say(r, FIND_FAIL, "%s %s: this user cannot read it (%s)", what, path, strerror(errno));
    } else {
        say(r, FIND_OK, "%s %s (mode %03o)", what, path, (unsigned)(st.st_mode & 0777u));
    }
}

/* ---- certificates ---- */

static void check_cert(report_t *r, const char *what, X509 *x)
{
    char name[256] = "?";
    int days = 0, secs = 0;
    X509_NAME_oneline(X509_get_subject_name(x), name, sizeof(name));
    if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0) {
        say(r, FIND_FAIL, "%s %s: not valid yet (check the clock)", what, name);
    } else if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)) != 1) {
        say(r, FIND_FAIL, "%s %s: unreadable expiry date", what, name);
    } else if (days < 0 || secs < 0 || (days == 0 && secs == 0)) {
        say(r, FIND_FAIL, "%s %s: EXPIRED %d days ago", what, name, -days);
    } else if (days < MQIM_CHECK_CERT_WARN_DAYS) {
        say(r, FIND_WARN, "%s %s: expires in %d days (renew it)", what, name, days);
    } else {
        say(r, FIND_OK, "%s %s: valid for %d more days", what, name, days);
    }
}

/* Every certificate of a PEM file (a CA file may hold several).
 * gateway_reads: the running gateway reads it (broker_cafile, broker_certfile),
 * so not being able to read it is a failure; else (the device CA, which
 * `user add --cert` reads as root) only a warning. */
static void check_cert_file(report_t *r, const char *what, const char *path, bool gateway_reads)
{
    FILE *f = fopen(path, "r");
    X509 *x;
    unsigned n = 0;
    if (f == NULL && errno == EACCES && !gateway_reads) {
        /* The CA's directory is root's: not a fault of the installation. */
        say(r, FIND_WARN, "%s %s: this user (uid %lu) cannot read it: run check as root to check it",
            what, path, (unsigned long)geteuid());
        return;
    }
    if (f == NULL) {
        say(r, FIND_FAIL, "%s %s: %s", what, path, strerror(errno));
        return;
    }
    while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
        char label[PATH_MAX + 64];
        snprintf(label, sizeof(label), "%s %s:", what, path);
        check_cert(r, label, x);
        X509_free(x);
        n++;
    }
    ERR_clear_error(); /* the end of the file reads as an error */
    fclose(f);
    if (n == 0u) {
        say(r, FIND_FAIL, "%s %s: no PEM certificate in it", what, path);
    }
}

/* The broker's server certificate: a handshake that only looks (the
 * connect check below verifies it as the gateway does). */
static void check_server_cert(report_t *r, const mqim_gw_config_t *cfg)
{
    struct addrinfo hints, *ai = NULL;
    char port[8];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    X509 *x = NULL;
    int fd = -1;
    struct timeval tv = { 5, 0 };
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%d", cfg->broker_port);
    if (ctx != NULL && getaddrinfo(cfg->broker_host, port, &hints, &ai) == 0 &&
        (fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0 &&
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0 &&
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0 &&
        connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 && (ssl = SSL_new(ctx)) != NULL &&
        SSL_set_fd(ssl, fd) == 1 && SSL_set_tlsext_host_name(ssl, cfg->broker_host) == 1 &&
        SSL_connect(ssl) == 1) {
        x = SSL_get1_peer_certificate(ssl);
    }
    if (x != NULL) {
        check_cert(r, "broker's server certificate", x);
        X509_free(x);
    } else {
        say(r, FIND_FAIL, "broker's server certificate: no TLS handshake with %s:%d", cfg->broker_host,
            cfg->broker_port);
    }
    if (ssl != NULL) {
        SSL_free(ssl);
    }
    if (fd >= 0) {
        close(fd);
    }
    if (ai != NULL) {
        freeaddrinfo(ai);
    }
    SSL_CTX_free(ctx);
    ERR_clear_error();
}

/* ---- the rest ---- */

static void check_broker(report_t *r, const mqim_gw_config_t *cfg)
{
    char client_id[sizeof(cfg->client_id) + 16], err[512];
    mqim_conn_config_t pc;
    mqim_conn_t *p;
    struct timespec ts;
    mqim_status_t st;
    /* Its own client id: the gateway's would take over the running
     * gateway's session (and ".out" its publisher's). */
    snprintf(client_id, sizeof(client_id), "%s.check", cfg->client_id);
    memset(&pc, 0, sizeof(pc));
    pc.host = cfg->broker_host;
    pc.port = cfg->broker_port;
    pc.client_id = client_id;
    pc.username = cfg->username;
    pc.password = cfg->password;
    pc.tls = cfg->broker_tls;
    pc.cafile = cfg->broker_cafile;
    pc.certfile = cfg->broker_certfile;
    pc.keyfile = cfg->broker_keyfile;
    pc.keepalive_s = 10;
    pc.max_inflight = 1;
    p = mqim_conn_new(&pc);
    if (p == NULL) {
        say(r, FIND_FAIL, "broker: out of memory");
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    st = mqim_conn_connect(p, 5000, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, err, sizeof(err));
    if (st == MQIM_OK) {
        say(r, FIND_OK, "broker %s:%d%s: MQTT CONNECT as %s accepted", cfg->broker_host, cfg->broker_port,
            cfg->broker_tls ? " (TLS, verified)" : "", cfg->username);
        mqim_conn_close(p, true);
    } else {
        say(r, FIND_FAIL, "broker %s:%d unreachable or refused the gateway: %s", cfg->broker_host,
            cfg->broker_port, err);
    }
    mqim_conn_free(p);
}

/* The year the binary was built ("Dec  3 2026"): a clock before it is wrong
 * (a board without RTC that lost its time), and certificates, retention
 * and ULIDs all depend on it. */
static void check_clock(report_t *r)
{
    static const char built[] = __DATE__;
    int build_year = atoi(built + 7);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    if (tm.tm_year + 1900 < build_year) {
        say(r, FIND_FAIL, "clock: the year is %d, before this build (%d): set the clock (NTP)",
            tm.tm_year + 1900, build_year);
    } else {
        say(r, FIND_OK, "clock: %04d-%02d-%02d UTC (built %s)", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
            built);
    }
}

static void check_data_dir(report_t *r, const mqim_gw_config_t *cfg)
{
    char probe[MQIM_GW_PATH_MAX + 32];
    struct statvfs vs;
    int fd;
    snprintf(probe, sizeof(probe), "%s/.mqim-check-%ld", cfg->data_dir, (long)getpid());
    fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        say(r, FIND_FAIL, "data_dir %s: not writable by this user (%s)", cfg->data_dir, strerror(errno));
        return;
    }
    close(fd);
    (void)unlink(probe);
    say(r, FIND_OK, "data_dir %s: writable", cfg->data_dir);
    if (statvfs(cfg->data_dir, &vs) == 0) {
        uint64_t free_mb = (uint64_t)vs.f_bavail * vs.f_frsize >> 20;
        if (free_mb < 64u) {
            say(r, FIND_FAIL, "disk of %s: %" PRIu64 " MiB free: the store cannot grow (store_full/"
                "disk_full rejections)", cfg->data_dir, free_mb);
        } else if (free_mb < cfg->map_size_mb) {
            say(r, FIND_WARN, "disk of %s: %" PRIu64 " MiB free, less than map_size_mb %" PRIu64
                ": the disk fills before the store does", cfg->data_dir, free_mb, cfg->map_size_mb);
        } else {
            say(r, FIND_OK, "disk of %s: %" PRIu64 " MiB free", cfg->data_dir, free_mb);
        }
    }
}

int mqim_check_run(const mqim_gw_config_t *cfg, const char *conf_path)
{
    report_t r = { 0, 0 };
    broker_user_t b;
    char crl[MQIM_GW_PATH_MAX + 16], ca[MQIM_GW_PATH_MAX + 16];
    say(&r, FIND_OK, "config %s parses", conf_path != NULL ? conf_path : "(defaults and flags)");
    if (mqim_gw_config_client_id_guessable(cfg)) {
        say(&r, FIND_FAIL, "client_id '%s' is missing, the default or guessable: run `mqim-gateway -c CONFIG "
            "init` to write a random one", cfg->client_id);
    } else {
        say(&r, FIND_OK, "client_id is set and not guessable");
    }
    if (cfg->password_file[0] != '\0') {
        check_secret(&r, "password_file", cfg->password_file);
    }
    if (cfg->broker_keyfile[0] != '\0') {
        check_secret(&r, "broker_keyfile", cfg->broker_keyfile);
    }
    find_broker_user(cfg, &b);
    if (cfg->broker_auth_db[0] != '\0') {
        /* plugin mode (docs/security.md): the broker reads the auth
         * database, not password and ACL files */
        char db[MQIM_GW_PATH_MAX + 16];
        snprintf(db, sizeof(db), "%s/data.mdb", cfg->broker_auth_db);
        check_broker_reads(&r, &b, "broker_auth_db", db);
        snprintf(db, sizeof(db), "%s/lock.mdb", cfg->broker_auth_db);
        check_broker_reads(&r, &b, "broker_auth_db", db);
    } else {
        check_broker_reads(&r, &b, "broker_password_file", cfg->broker_password_file);
        check_broker_reads(&r, &b, "broker_acl_file", cfg->broker_acl_file);
    }
    if (cfg->pki_dir[0] != '\0') {
        snprintf(crl, sizeof(crl), "%s/crl.pem", cfg->pki_dir);
        snprintf(ca, sizeof(ca), "%s/ca.crt", cfg->pki_dir);
        check_broker_reads(&r, &b, "CRL", crl);
        check_cert_file(&r, "device CA", ca, false);
    }
    if (cfg->broker_cafile[0] != '\0') {
        check_cert_file(&r, "broker_cafile", cfg->broker_cafile, true);
    }
    if (cfg->broker_certfile[0] != '\0') {
        check_cert_file(&r, "broker_certfile (the gateway's client certificate)", cfg->broker_certfile, true);
    }
    check_clock(&r);
    check_data_dir(&r, cfg);
    if (cfg->broker_tls) {
        check_server_cert(&r, cfg);
    }
    check_broker(&r, cfg);
    printf("%u failed, %u warnings\n", r.failed, r.warned);
    return r.failed > 0u ? 1 : 0;
}
