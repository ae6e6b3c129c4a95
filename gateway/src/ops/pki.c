/* Device certificates and their revocation (pki.h) through `openssl`.
 *
 * Every openssl run goes through mqim_users_run: fork + execvp, no shell,
 * umask 077, working directory pki_dir. The generated openssl.cnf names
 * only relative paths, so pki_dir may hold any character (no quoting in the
 * config file) and may move. Paths outside pki_dir (the output directory)
 * are made absolute before they go on openssl's command line. */
#include "pki.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mqim/limits.h"
#include "mqim/name.h"
#include "users.h"

#define OPENSSL_TOOL "openssl"
#define SERIAL_MAX 64u /* hex digits of a serial in index.txt */

/* Why 3650 days: Mosquitto checks the CRL's nextUpdate at every handshake,
 * and an expired CRL refuses every client certificate. The CRL is a local
 * file the broker reads, not something published for others to cache, and
 * it is rewritten by every `user del` and `init`, so a long validity costs
 * nothing and a forgotten renewal cannot lock every device out. */
static const char ca_config[] =
    "# openssl ca config of mqim-gateway (gateway/src/pki.c), rewritten on every\n"
    "# use: edits are lost. openssl runs in pki_dir: the paths are relative.\n"
    "[ ca ]\n"
    "default_ca = mqim_ca\n"
    "\n"
    "[ mqim_ca ]\n"
    "database = ca/index.txt\n"
    "new_certs_dir = ca/certs\n"
    "serial = ca/serial\n"
    "crlnumber = ca/crlnumber\n"
    "certificate = ca.crt\n"
    "private_key = ca.key\n"
    "default_md = sha256\n"
    "default_days = 825\n"
    "default_crl_days = 3650\n"
    "policy = mqim_policy\n"
    "# a user's certificate is re-issued (rotated) under the same CN\n"
    "unique_subject = no\n"
    "copy_extensions = none\n"
    "email_in_dn = no\n"
    "\n"
    "[ mqim_policy ]\n"
    "commonName = supplied\n"
    "\n"
    "[ mqim_client ]\n"
    "basicConstraints = critical, CA:FALSE\n"
    "keyUsage = critical, digitalSignature\n"
    "extendedKeyUsage = clientAuth\n"
    "subjectKeyIdentifier = hash\n"
    "authorityKeyIdentifier = keyid\n";

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return -1;
}

/* pki_dir/name into buf; -1 with err when it does not fit. */
static int pki_path(const mqim_gw_config_t *cfg, const char *name, char *buf, size_t cap,
                    char *err, size_t err_len)
{
    if ((size_t)snprintf(buf, cap, "%s/%s", cfg->pki_dir, name) >= cap) {
        return fail(err, err_len, "pki_dir: the path %s/%s is too long", cfg->pki_dir, name);
    }
    return 0;
}

static int write_file(const char *path, const char *text, mode_t mode, bool exclusive, char *err,
                      size_t err_len)
{
    size_t n = strlen(text);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (exclusive ? O_EXCL : O_TRUNC), mode);
    if (fd < 0) {
        if (exclusive && errno == EEXIST) {
            return 0; /* kept: it is the database's state */
        }
        return fail(err, err_len, "cannot create %s: %s", path, strerror(errno));
    }
    if (fchmod(fd, mode) != 0 || write(fd, text, n) != (ssize_t)n) {
        int e = errno;
        close(fd);
        return fail(err, err_len, "cannot write %s: %s", path, strerror(e));
    }
    if (close(fd) != 0) {
        return fail(err, err_len, "cannot write %s: %s", path, strerror(errno));
    }
    return 0;
}

static int make_dir(const char *path, char *err, size_t err_len)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        return fail(err, err_len, "cannot create the directory %s: %s", path, strerror(errno));
    }
    return 0;
}

/* openssl's stderr on one line ("Using configuration from ..." dropped),
 * for an error message. */
static const char *one_line(char *text)
{
    char *p = text;
    if (strncmp(p, "Using configuration from", 24) == 0) {
        p += strcspn(p, "\n");
    }
    p += strspn(p, "\r\n");
    for (char *q = p; *q != '\0'; q++) {
        if (*q == '\n' || *q == '\r') {
            *q = q[1] != '\0' ? ' ' : '\0';
        }
    }
    return p[0] != '\0' ? p : "no message";
}

/* Run openssl in pki_dir. 0, or -1 with err naming the operation. */
static int run_openssl(const mqim_gw_config_t *cfg, char *const argv[], const char *what,
                       char *err, size_t err_len)
{
    char msg[1024];
    int rc = mqim_users_run(argv, cfg->pki_dir, NULL, msg, sizeof(msg), err, err_len);
    if (rc < 0) {
        return -1;
    }
    if (rc != 0) {
        return fail(err, err_len, "openssl %s failed (exit status %d): %s", what, rc, one_line(msg));
    }
    return 0;
}

static int check_ca_files(const mqim_gw_config_t *cfg, char *err, size_t err_len)
{
    static const char *const names[] = { "ca.crt", "ca.key" };
    char path[MQIM_GW_PATH_MAX + 16];
    if (cfg->pki_dir[0] == '\0') {
        return fail(err, err_len, "pki_dir is not set: certificates need a CA (scripts/pki DIR, "
                    "then pki_dir DIR in the gateway config)");
    }
    for (size_t i = 0; i < 2u; i++) {
        if (pki_path(cfg, names[i], path, sizeof(path), err, err_len) != 0) {
            return -1;
        }
        if (access(path, R_OK) != 0) {
            return fail(err, err_len, "the CA file %s: %s (make the CA with scripts/pki %s)", path,
                        strerror(errno), cfg->pki_dir);
        }
    }
    return 0;
}

/* The first serial: 63 random bits, so a CA database made again from
 * scratch does not issue serials that an older CRL already lists. */
static int first_serial(char *buf, size_t cap)
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        return -1;
    }
    r = (r & UINT64_C(0x7fffffffffffffff)) | UINT64_C(0x1000000000000000);
    snprintf(buf, cap, "%016" PRIX64 "\n", r);
    return 0;
}

/* The database files, the config, and the lock (held until *lock_fd is
 * closed). */
static int open_db(const mqim_gw_config_t *cfg, int *lock_fd, char *err, size_t err_len)
{
    char path[MQIM_GW_PATH_MAX + 32];
    char serial[32];
    *lock_fd = -1;
    if (check_ca_files(cfg, err, err_len) != 0 ||
        pki_path(cfg, "ca", path, sizeof(path), err, err_len) != 0 ||
        make_dir(path, err, err_len) != 0 ||
        pki_path(cfg, "ca/certs", path, sizeof(path), err, err_len) != 0 ||
        make_dir(path, err, err_len) != 0 ||
        pki_path(cfg, "ca/lock", path, sizeof(path), err, err_len) != 0) {
        return -1;
    }
    *lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (*lock_fd < 0) {
        return fail(err, err_len, "cannot open %s: %s", path, strerror(errno));
    }
    while (flock(*lock_fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            int e = errno;
            close(*lock_fd);
            *lock_fd = -1;
            return fail(err, err_len, "cannot lock %s: %s", path, strerror(e));
        }
    }
    if (first_serial(serial, sizeof(serial)) != 0) {
        return fail(err, err_len, "cannot make a random serial number");
    }
    if (pki_path(cfg, "ca/index.txt", path, sizeof(path), err, err_len) != 0 ||
        write_file(path, "", 0600, true, err, err_len) != 0 ||
        pki_path(cfg, "ca/serial", path, sizeof(path), err, err_len) != 0 ||
        write_file(path, serial, 0600, true, err, err_len) != 0 ||
        pki_path(cfg, "ca/crlnumber", path, sizeof(path), err, err_len) != 0 ||
        write_file(path, "1000\n", 0600, true, err, err_len) != 0 ||
        pki_path(cfg, "ca/openssl.cnf", path, sizeof(path), err, err_len) != 0 ||
        write_file(path, ca_config, 0600, false, err, err_len) != 0) {
        return -1;
    }
    return 0;
}

static void close_db(int lock_fd)
{
    if (lock_fd >= 0) {
        close(lock_fd); /* releases the flock */
    }
}

/* crl.pem from the database, replaced atomically: the broker may read it at
 * any moment (SIGHUP from another command). 0644: Mosquitto runs as its own
 * user, and a CRL holds nothing secret. */
static int gen_crl(const mqim_gw_config_t *cfg, char *err, size_t err_len)
{
    char tmp[MQIM_GW_PATH_MAX + 16], dst[MQIM_GW_PATH_MAX + 16];
    char *argv[] = { OPENSSL_TOOL, "ca", "-config", "ca/openssl.cnf", "-gencrl", "-out",
                     "crl.pem.new", NULL };
    if (pki_path(cfg, "crl.pem.new", tmp, sizeof(tmp), err, err_len) != 0 ||
        pki_path(cfg, "crl.pem", dst, sizeof(dst), err, err_len) != 0 ||
        run_openssl(cfg, argv, "ca -gencrl", err, err_len) != 0) {
        return -1;
    }
    if (chmod(tmp, 0644) != 0 || rename(tmp, dst) != 0) {
        int e = errno;
        unlink(tmp);
        return fail(err, err_len, "cannot replace %s: %s", dst, strerror(e));
    }
    return 0;
}

int mqim_pki_init(const mqim_gw_config_t *cfg, char *err, size_t err_len)
{
    int lock_fd, rc;
    if (open_db(cfg, &lock_fd, err, err_len) != 0) {
        close_db(lock_fd);
        return -1;
    }
    /* Always rewritten: it moves nextUpdate forward as well. */
    rc = gen_crl(cfg, err, err_len);
    close_db(lock_fd);
    return rc;
}

static int check_user(const char *user, char *err, size_t err_len)
{
    mqim_status_t st = mqim_name_check(MQIM_NAME_USER, mqim_str_from_cstr(user));
    if (st != MQIM_OK) {
        return fail(err, err_len, "invalid user name '%s': %s", user != NULL ? user : "",
                    mqim_status_str(st));
    }
    return 0;
}

/* dir as an absolute path (openssl runs elsewhere). */
static int absolute_dir(const char *dir, char *buf, size_t cap, char *err, size_t err_len)
{
    char cwd[MQIM_GW_PATH_MAX];
    if (dir[0] == '/') {
        if ((size_t)snprintf(buf, cap, "%s", dir) >= cap) {
            return fail(err, err_len, "the path %s is too long", dir);
        }
        return 0;
    }
    if (getcwd(cwd, sizeof(cwd)) == NULL) {
        return fail(err, err_len, "cannot find the current directory: %s", strerror(errno));
    }
    if ((size_t)snprintf(buf, cap, "%s/%s", cwd, dir) >= cap) {
        return fail(err, err_len, "the path %s/%s is too long", cwd, dir);
    }
    return 0;
}

/* The three openssl steps of mqim_pki_issue, into key_tmp and crt_tmp. */
static int issue_files(const mqim_gw_config_t *cfg, const char *user, const char *key_tmp,
                       const char *crt_tmp, const char *csr, char *err, size_t err_len)
{
    char subj[8 + MQIM_USER_NAME_MAX + 1];
    char days[16];
    char *genkey[] = { OPENSSL_TOOL, "genpkey", "-algorithm", "EC", "-pkeyopt",
                       "ec_paramgen_curve:P-256", "-out", (char *)key_tmp, NULL };
    char *req[] = { OPENSSL_TOOL, "req", "-new", "-key", (char *)key_tmp, "-subj", subj,
                    "-out", (char *)csr, NULL };
    char *sign[] = { OPENSSL_TOOL, "ca", "-batch", "-config", "ca/openssl.cnf", "-extensions",
                     "mqim_client", "-days", days, "-notext", "-in", (char *)csr, "-out",
                     (char *)crt_tmp, NULL };
    snprintf(subj, sizeof(subj), "/CN=%s", user);
    snprintf(days, sizeof(days), "%u", cfg->cert_days);
    /* The key file exists 0600 before openssl writes the key into it. */
    if (write_file(key_tmp, "", 0600, false, err, err_len) != 0 ||
        run_openssl(cfg, genkey, "genpkey", err, err_len) != 0 ||
        run_openssl(cfg, req, "req", err, err_len) != 0 ||
        run_openssl(cfg, sign, "ca (signing)", err, err_len) != 0) {
        return -1;
    }
    return 0;
}

int mqim_pki_issue(const mqim_gw_config_t *cfg, const char *user, const char *out_dir,
                   char *crt_path, char *key_path, size_t path_cap, char *err, size_t err_len)
{
    char out[MQIM_GW_PATH_MAX];
    char key_tmp[MQIM_GW_PATH_MAX + 96], crt_tmp[MQIM_GW_PATH_MAX + 96];
    char csr_rel[MQIM_USER_NAME_MAX + 16], csr[MQIM_GW_PATH_MAX + 96];
    int lock_fd, rc;

    if (check_user(user, err, err_len) != 0 ||
        absolute_dir(out_dir != NULL ? out_dir : ".", out, sizeof(out), err, err_len) != 0 ||
        make_dir(out, err, err_len) != 0) {
        return -1;
    }
    if ((size_t)snprintf(crt_path, path_cap, "%s/%s.crt", out, user) >= path_cap ||
        (size_t)snprintf(key_path, path_cap, "%s/%s.key", out, user) >= path_cap ||
        (size_t)snprintf(key_tmp, sizeof(key_tmp), "%s.new", key_path) >= sizeof(key_tmp) ||
        (size_t)snprintf(crt_tmp, sizeof(crt_tmp), "%s.new", crt_path) >= sizeof(crt_tmp)) {
        return fail(err, err_len, "the output path %s is too long", out);
    }
    snprintf(csr_rel, sizeof(csr_rel), "ca/%s.csr", user);
    if (pki_path(cfg, csr_rel, csr, sizeof(csr), err, err_len) != 0) {
        return -1;
    }
    if (open_db(cfg, &lock_fd, err, err_len) != 0) {
        close_db(lock_fd);
        return -1;
    }
    rc = issue_files(cfg, user, key_tmp, crt_tmp, csr_rel, err, err_len);
    if (rc == 0 && (chmod(crt_tmp, 0644) != 0 || rename(crt_tmp, crt_path) != 0 ||
                    rename(key_tmp, key_path) != 0)) {
        rc = fail(err, err_len, "cannot write %s and %s: %s", crt_path, key_path, strerror(errno));
    }
    (void)unlink(csr);
    if (rc != 0) {
        (void)unlink(key_tmp);
        (void)unlink(crt_tmp);
    }
    close_db(lock_fd);
    return rc;
}

/* One line of index.txt, split in place: "V\tEXPIRY\t[REVOKED]\tSERIAL\t
 * unknown\t/CN=user". Returns the user (after "/CN=") or NULL when the line
 * is not a certificate of this CA's form. */
static const char *split_index_line(char *line, char *f[6])
{
    unsigned nf = 0;
    char *p = line;
    while (nf < 6u) {
        f[nf++] = p;
        p = strchr(p, '\t');
        if (p == NULL) {
            break;
        }
        *p++ = '\0';
    }
    if (nf != 6u || f[0][1] != '\0' || strchr("VRE", f[0][0]) == NULL ||
        strncmp(f[5], "/CN=", 4) != 0 || f[3][0] == '\0' || strlen(f[3]) > SERIAL_MAX ||
        strspn(f[3], "0123456789ABCDEFabcdef") != strlen(f[3])) {
        return NULL;
    }
    return f[5] + 4;
}

/* Walk index.txt (text, modified in place) calling fn for each certificate
 * of user; fn returns nonzero to stop. */
static void each_cert(char *text, const char *user,
                      int (*fn)(void *ctx, const mqim_pki_cert_t *c), void *ctx)
{
    char *line = text;
    while (line != NULL && *line != '\0') {
        char *next = strchr(line, '\n');
        char *f[6];
        const char *cn;
        if (next != NULL) {
            *next++ = '\0';
        }
        cn = split_index_line(line, f);
        if (cn != NULL && strcmp(cn, user) == 0) {
            mqim_pki_cert_t c = { f[3], f[0][0], f[1] };
            if (fn(ctx, &c) != 0) {
                return;
            }
        }
        line = next;
    }
}

typedef struct pick {
    const char *serial; /* NULL: every valid one */
    const char **serials;
    unsigned n, cap;
    bool found; /* the serial asked for exists (in any state) */
} pick_t;

static int pick_cert(void *ctx, const mqim_pki_cert_t *c)
{
    pick_t *p = ctx;
    bool match = p->serial == NULL || strcasecmp(p->serial, c->serial) == 0;
    if (match && p->serial != NULL) {
        p->found = true;
    }
    if (match && c->status == 'V' && p->n < p->cap) {
        p->serials[p->n++] = c->serial;
    }
    return 0;
}

static int read_index(const mqim_gw_config_t *cfg, char **text, char *err, size_t err_len)
{
    char path[MQIM_GW_PATH_MAX + 16];
    FILE *f;
    long size;
    *text = NULL;
    if (pki_path(cfg, "ca/index.txt", path, sizeof(path), err, err_len) != 0) {
        return -1;
    }
    f = fopen(path, "r");
    if (f == NULL) {
        return fail(err, err_len, "cannot read %s: %s", path, strerror(errno));
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
        (*text = malloc((size_t)size + 1u)) == NULL ||
        fread(*text, 1, (size_t)size, f) != (size_t)size) {
        fclose(f);
        free(*text);
        *text = NULL;
        return fail(err, err_len, "cannot read %s", path);
    }
    fclose(f);
    (*text)[size] = '\0';
    return 0;
}

int mqim_pki_list(const mqim_gw_config_t *cfg, const char *user,
                  int (*fn)(void *ctx, const mqim_pki_cert_t *c), void *ctx, char *err,
                  size_t err_len)
{
    char *text = NULL;
    int lock_fd;
    if (check_user(user, err, err_len) != 0) {
        return -1;
    }
    if (open_db(cfg, &lock_fd, err, err_len) != 0 || read_index(cfg, &text, err, err_len) != 0) {
        close_db(lock_fd);
        return -1;
    }
    each_cert(text, user, fn, ctx);
    free(text);
    close_db(lock_fd);
    return 0;
}

int mqim_pki_revoke(const mqim_gw_config_t *cfg, const char *user, const char *serial,
                    unsigned *revoked, char *err, size_t err_len)
{
    char *text = NULL;
    pick_t pick = { serial, NULL, 0, 0, false };
    int lock_fd, rc = 0;

    *revoked = 0;
    if (check_user(user, err, err_len) != 0) {
        return -1;
    }
    if (open_db(cfg, &lock_fd, err, err_len) != 0 || read_index(cfg, &text, err, err_len) != 0) {
        close_db(lock_fd);
        return -1;
    }
    pick.cap = 1u;
    for (const char *p = text; *p != '\0'; p++) {
        pick.cap += *p == '\n' ? 1u : 0u;
    }
    pick.serials = calloc(pick.cap, sizeof(*pick.serials));
    if (pick.serials == NULL) {
        free(text);
        close_db(lock_fd);
        return fail(err, err_len, "out of memory");
    }
    each_cert(text, user, pick_cert, &pick);
    if (serial != NULL && !pick.found) {
        rc = fail(err, err_len, "no certificate with serial %s was issued to %s", serial, user);
    }
    for (unsigned i = 0; i < pick.n && rc == 0; i++) {
        char cert[SERIAL_MAX + 16];
        char *argv[] = { OPENSSL_TOOL, "ca", "-config", "ca/openssl.cnf", "-revoke", cert,
                         "-crl_reason", "cessationOfOperation", NULL };
        snprintf(cert, sizeof(cert), "ca/certs/%s.pem", pick.serials[i]);
        rc = run_openssl(cfg, argv, "ca -revoke", err, err_len);
        if (rc == 0) {
            (*revoked)++;
        }
    }
    /* Also after a partial failure: what was revoked goes into the CRL. */
    if (*revoked > 0u) {
        char crl_err[512];
        if (gen_crl(cfg, crl_err, sizeof(crl_err)) != 0 && rc == 0) {
            snprintf(err, err_len, "%s", crl_err);
            rc = -1;
        }
    }
    free(pick.serials);
    free(text);
    close_db(lock_fd);
    return rc;
}
