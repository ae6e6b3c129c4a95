/* Broker user administration (users.h): Mosquitto's password file through
 * mosquitto_passwd, the ACL file, and SIGHUP to reload them. */
#include "users.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mqim/name.h"

static int fail(char *err, size_t err_len, const char *what, const char *path)
{
    snprintf(err, err_len, "%s %s: %s", what, path, strerror(errno));
    return -1;
}

int mqim_users_write_acl(const mqim_gw_config_t *cfg, char *err, size_t err_len)
{
    char tmp[MQIM_GW_PATH_MAX + 8];
    FILE *f;
    int fd;
    const char *r = cfg->root;
    snprintf(tmp, sizeof(tmp), "%s.tmp", cfg->broker_acl_file);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
        if (fd >= 0) {
            close(fd);
        }
        return fail(err, err_len, "cannot write", tmp);
    }
    /* Pattern lines apply to every user; the gateway's own user line comes
     * first so no `topic` line is mistaken for an anonymous-only rule. */
    fprintf(f,
            "# mqim ACL, written by `mqim-gateway init`; see docs/protocol.md.\n"
            "# The gateway may write every user's in/ topics and presence.\n"
            "user %s\n"
            "topic readwrite %s/#\n"
            "\n"
            "# Every user: write only under its own out/, read only its own in/.\n"
            "pattern write %s/u/%%u/out/#\n"
            "pattern read %s/u/%%u/in/#\n"
            "pattern read %s/presence/#\n"
            "pattern read %s/keys/#\n"
            "pattern read %s/gateway/#\n",
            cfg->username, r, r, r, r, r, r);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        fclose(f);
        return fail(err, err_len, "cannot write", tmp);
    }
    if (fclose(f) != 0) {
        return fail(err, err_len, "cannot write", tmp);
    }
    if (rename(tmp, cfg->broker_acl_file) != 0) {
        return fail(err, err_len, "cannot replace", cfg->broker_acl_file);
    }
    return 0;
}

/* Run mosquitto_passwd with argv (no shell), stdout/stderr to /dev/null. */
static int run_passwd(char *const argv[], char *err, size_t err_len)
{
    int status = 0;
    pid_t pid = fork();
    if (pid < 0) {
        return fail(err, err_len, "cannot fork for", "mosquitto_passwd");
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            dup2(null, STDOUT_FILENO);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return fail(err, err_len, "waiting for", "mosquitto_passwd");
        }
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
        snprintf(err, err_len, "mosquitto_passwd not found: run scripts/deps");
        return -1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        snprintf(err, err_len, "mosquitto_passwd failed (status %d)", WEXITSTATUS(status));
        return -1;
    }
    return 0;
}

static int check_user(const char *user, char *err, size_t err_len)
{
    mqim_status_t st = mqim_name_check(MQIM_NAME_USER, mqim_str_from_cstr(user));
    if (st != MQIM_OK) {
        snprintf(err, err_len, "invalid user name '%s': %s", user, mqim_status_str(st));
        return -1;
    }
    return 0;
}

int mqim_users_passwd_set(const mqim_gw_config_t *cfg, const char *user, const char *password,
                          char *err, size_t err_len)
{
    struct stat sb;
    bool exists = stat(cfg->broker_password_file, &sb) == 0;
    char *argv_new[] = { "mosquitto_passwd", "-c", "-b", (char *)cfg->broker_password_file,
                         (char *)user, (char *)password, NULL };
    char *argv_upd[] = { "mosquitto_passwd", "-b", (char *)cfg->broker_password_file,
                         (char *)user, (char *)password, NULL };
    if (check_user(user, err, err_len) != 0) {
        return -1;
    }
    if (strchr(password, '\n') != NULL || password[0] == '\0') {
        snprintf(err, err_len, "the password must be one non-empty line");
        return -1;
    }
    if (!exists) {
        /* Create it 0600 first: mosquitto_passwd keeps the mode of an existing file. */
        int fd = open(cfg->broker_password_file, O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (fd < 0) {
            return fail(err, err_len, "cannot create", cfg->broker_password_file);
        }
        close(fd);
    }
    /* -b puts the password in argv for the life of a short child process:
     * visible to local root only, and never logged. */
    if (run_passwd(exists ? argv_upd : argv_new, err, err_len) != 0) {
        return -1;
    }
    if (chmod(cfg->broker_password_file, 0600) != 0) {
        return fail(err, err_len, "cannot chmod", cfg->broker_password_file);
    }
    return 0;
}

int mqim_users_passwd_del(const mqim_gw_config_t *cfg, const char *user, char *err, size_t err_len)
{
    char *argv[] = { "mosquitto_passwd", "-D", (char *)cfg->broker_password_file, (char *)user, NULL };
    if (check_user(user, err, err_len) != 0) {
        return -1;
    }
    return run_passwd(argv, err, err_len);
}

int mqim_users_reload_broker(const mqim_gw_config_t *cfg, char *err, size_t err_len)
{
    FILE *f = fopen(cfg->broker_pid_file, "r");
    long pid = 0;
    if (f == NULL) {
        return 1; /* no broker running: it reads the files when it starts */
    }
    if (fscanf(f, "%ld", &pid) != 1 || pid <= 1) {
        fclose(f);
        snprintf(err, err_len, "%s does not hold a pid", cfg->broker_pid_file);
        return -1;
    }
    fclose(f);
    if (kill((pid_t)pid, SIGHUP) != 0) {
        if (errno == ESRCH) {
            return 1;
        }
        return fail(err, err_len, "cannot signal the broker from", cfg->broker_pid_file);
    }
    return 0;
}

int mqim_users_random_password(char *buf, size_t len)
{
    static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    size_t n = 0;
    while (n < len) {
        unsigned char r[64];
        ssize_t got = getrandom(r, sizeof(r), 0);
        if (got <= 0) {
            return -1;
        }
        for (ssize_t i = 0; i < got && n < len; i++) {
            if (r[i] < 248u) { /* 248 = 4 * 62: rejection sampling keeps it uniform */
                buf[n++] = set[r[i] % 62u];
            }
        }
    }
    buf[len] = '\0';
    return 0;
}
