/* Device certificates (pki.c) through the real openssl, over a CA that
 * scripts/pki makes: the database, issue, list, revoke by serial and by
 * user, the CRL, file modes, and the errors an operator sees. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "mqim_check.h"
#include "pki.h"

static char dir[256];

#define CHECK_ERR_HAS(err, part)                                                   \
    do {                                                                           \
        CHECK(strstr((err), (part)) != NULL);                                      \
        if (strstr((err), (part)) == NULL) {                                       \
            fprintf(stderr, "  error was '%s', expected it to hold '%s'\n", (err), (part)); \
        }                                                                          \
    } while (0)

static int file_mode(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (int)(sb.st_mode & 07777) : -1;
}

static int run(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0) {
        fprintf(stderr, "  `%s` failed (%d)\n", cmd, rc);
    }
    return rc;
}

typedef struct listing {
    char serial[4][80];
    char status[4];
    unsigned n;
} listing_t;

static int collect(void *ctx, const mqim_pki_cert_t *c)
{
    listing_t *l = ctx;
    if (l->n < 4u) {
        snprintf(l->serial[l->n], sizeof(l->serial[0]), "%s", c->serial);
        l->status[l->n] = c->status;
        CHECK_EQ_INT(strlen(c->expiry), 13); /* YYMMDDHHMMSSZ */
    }
    l->n++;
    return 0;
}

static listing_t list(const mqim_gw_config_t *cfg, const char *user)
{
    listing_t l;
    char err[512] = "";
    memset(&l, 0, sizeof(l));
    CHECK_EQ_INT(mqim_pki_list(cfg, user, collect, &l, err, sizeof(err)), 0);
    return l;
}

/* A handshake-free check: does openssl verify crt against the CA and CRL? */
static int verifies(const mqim_gw_config_t *cfg, const char *crt)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "openssl verify -crl_check -CAfile '%s/ca.crt' -CRLfile '%s/crl.pem' '%s' >/dev/null 2>&1",
             cfg->pki_dir, cfg->pki_dir, crt);
    return system(cmd) == 0;
}

static void test_pki(void)
{
    mqim_gw_config_t cfg;
    char err[512] = "", cmd[4096], path[2048];
    char crt[1200], key[1200], crt2[1200], key2[1200], out[400];
    unsigned revoked = 99;
    listing_t l;

    mqim_gw_config_defaults(&cfg);
    /* no pki_dir: a message that says what to do */
    CHECK_EQ_INT(mqim_pki_init(&cfg, err, sizeof(err)), -1);
    CHECK_ERR_HAS(err, "pki_dir is not set");
    /* a pki_dir without a CA */
    snprintf(cfg.pki_dir, sizeof(cfg.pki_dir), "%s/pki", dir);
    CHECK_EQ_INT(mqim_pki_init(&cfg, err, sizeof(err)), -1);
    CHECK_ERR_HAS(err, "ca.crt");
    CHECK_ERR_HAS(err, "scripts/pki");

    snprintf(cmd, sizeof(cmd), "'%s/scripts/pki' '%s'", MQIM_SOURCE_DIR, cfg.pki_dir);
    CHECK_EQ_INT(run(cmd), 0);
    CHECK_EQ_INT(mqim_pki_init(&cfg, err, sizeof(err)), 0);
    CHECK_EQ_INT(mqim_pki_init(&cfg, err, sizeof(err)), 0); /* idempotent */
    snprintf(path, sizeof(path), "%s/crl.pem", cfg.pki_dir);
    CHECK_EQ_INT(file_mode(path), 0644);
    snprintf(path, sizeof(path), "%s/ca/index.txt", cfg.pki_dir);
    CHECK_EQ_INT(file_mode(path), 0600);
    snprintf(path, sizeof(path), "%s/ca", cfg.pki_dir);
    CHECK_EQ_INT(file_mode(path), 0700);

    /* issue: a relative output directory, made 0700; key 0600 */
    snprintf(out, sizeof(out), "%s/out", dir);
    CHECK_EQ_INT(chdir(dir), 0);
    CHECK_EQ_INT(mqim_pki_issue(&cfg, "dave", "out", crt, key, sizeof(crt), err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s/dave.crt", out);
    CHECK(strcmp(crt, path) == 0);
    snprintf(path, sizeof(path), "%s/dave.key", out);
    CHECK(strcmp(key, path) == 0);
    CHECK_EQ_INT(file_mode(key), 0600);
    CHECK_EQ_INT(file_mode(crt), 0644);
    CHECK_EQ_INT(file_mode(out), 0700);
    snprintf(cmd, sizeof(cmd), "openssl x509 -in '%s' -noout -subject | grep -q 'CN = dave$'", crt);
    CHECK_EQ_INT(run(cmd), 0);
    CHECK(verifies(&cfg, crt));
    /* a second one for dave (rotation), one for erin */
    CHECK_EQ_INT(mqim_pki_issue(&cfg, "dave", out, crt2, key2, sizeof(crt2), err, sizeof(err)), 0);
    CHECK(strcmp(crt, crt2) == 0); /* same names: the files were replaced */
    snprintf(crt2, sizeof(crt2), "%s/dave-2.crt", dir);
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", crt, crt2);
    CHECK_EQ_INT(run(cmd), 0);
    CHECK_EQ_INT(mqim_pki_issue(&cfg, "erin", out, crt, key, sizeof(crt), err, sizeof(err)), 0);
    l = list(&cfg, "dave");
    CHECK_EQ_INT(l.n, 2);
    CHECK(l.status[0] == 'V' && l.status[1] == 'V');
    CHECK(strcmp(l.serial[0], l.serial[1]) != 0);
    CHECK_EQ_INT(list(&cfg, "erin").n, 1);
    CHECK_EQ_INT(list(&cfg, "nobody").n, 0);
    CHECK_EQ_INT(list(&cfg, "dav").n, 0); /* the CN matches exactly, not as a prefix */

    /* revoke dave's first by serial: the second (dave-2.crt) still verifies */
    CHECK_EQ_INT(mqim_pki_revoke(&cfg, "dave", l.serial[0], &revoked, err, sizeof(err)), 0);
    CHECK_EQ_INT(revoked, 1);
    CHECK(verifies(&cfg, crt2));
    l = list(&cfg, "dave");
    CHECK(l.status[0] == 'R' && l.status[1] == 'V');
    /* the same serial again: nothing to do; a serial of someone else: an error */
    CHECK_EQ_INT(mqim_pki_revoke(&cfg, "dave", l.serial[0], &revoked, err, sizeof(err)), 0);
    CHECK_EQ_INT(revoked, 0);
    CHECK_EQ_INT(mqim_pki_revoke(&cfg, "erin", l.serial[1], &revoked, err, sizeof(err)), -1);
    CHECK_ERR_HAS(err, "was issued to erin");
    /* every one of dave's: dave-2.crt no longer verifies, erin's does */
    CHECK_EQ_INT(mqim_pki_revoke(&cfg, "dave", NULL, &revoked, err, sizeof(err)), 0);
    CHECK_EQ_INT(revoked, 1);
    CHECK(!verifies(&cfg, crt2));
    CHECK(verifies(&cfg, crt));
    snprintf(path, sizeof(path), "%s/crl.pem", cfg.pki_dir);
    CHECK_EQ_INT(file_mode(path), 0644);
    CHECK_EQ_INT(mqim_pki_revoke(&cfg, "dave", NULL, &revoked, err, sizeof(err)), 0);
    CHECK_EQ_INT(revoked, 0);
    /* init keeps the revocations (it rewrites crl.pem from the database) */
    CHECK_EQ_INT(mqim_pki_init(&cfg, err, sizeof(err)), 0);
    CHECK(!verifies(&cfg, crt2));

    /* names that are not user names never reach openssl */
    CHECK_EQ_INT(mqim_pki_issue(&cfg, "a/b", out, crt, key, sizeof(crt), err, sizeof(err)), -1);
    CHECK_ERR_HAS(err, "invalid user name 'a/b'");
    CHECK_EQ_INT(mqim_pki_revoke(&cfg, "", NULL, &revoked, err, sizeof(err)), -1);
    CHECK_ERR_HAS(err, "invalid user name");
    /* an output directory that cannot be made */
    CHECK_EQ_INT(mqim_pki_issue(&cfg, "erin", "/proc/mqim-no", crt, key, sizeof(crt), err,
                                sizeof(err)), -1);
    CHECK_ERR_HAS(err, "cannot create the directory /proc/mqim-no");
}

int main(void)
{
    char cmd[300];
    snprintf(dir, sizeof(dir), "/tmp/mqim-test-pki-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    test_pki();
    if (chdir("/") != 0) {
        perror("chdir");
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cleanup of %s failed\n", dir);
    }
    return CHECK_REPORT();
}
