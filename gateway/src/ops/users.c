/* Broker user administration (users.h): Mosquitto's password file through
 * mosquitto_passwd, the ACL file, and SIGHUP to reload them.
 *
 * The broker never sees a half-written password file: mosquitto_passwd
 * rewrites the file it is given in place (truncate, then write), so it is
 * given a private copy, which is fsynced and renamed over the real file
 * when the tool is done. A reload that comes at any moment (another
 * `user add` of a bulk run, an operator's SIGHUP) reads the old file or the
 * new one, whole. Concurrent edits (several `user add` at once) are
 * serialised by an exclusive lock on "<password file>.lock": each copies the
 * file the previous one renamed into place, so none is lost.
 *
 * mosquitto_passwd runs through fork + execvp (never a shell). The password
 * goes to its stdin, twice, as its interactive prompt expects, and not on
 * the command line with -b: /proc/PID/cmdline is readable by every local
 * user, not only root, for as long as the child lives. */
#include "users.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mqim/name.h"
#include "mqim/topic.h"

#define PASSWD_TOOL "mosquitto_passwd"
#define PASSWORD_LEN_MAX 1024u

static int fail_errno(char *err, size_t err_len, const char *what, const char *path, int e)
{
    snprintf(err, err_len, "%s %s: %s", what, path, strerror(e));
    return -1;
}

/* ---- ACL file ---------------------------------------------------------- */

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0u) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* fsync the directory holding path, so a rename survives a crash. */
static void sync_parent_dir(const char *path)
{
    char dir[MQIM_GW_PATH_MAX];
    char *slash;
    int fd;
    snprintf(dir, sizeof(dir), "%s", path);
    slash = strrchr(dir, '/');
    if (slash == NULL) {
        snprintf(dir, sizeof(dir), ".");
    } else if (slash == dir) {
        dir[1] = '\0';
    } else {
        *slash = '\0';
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd); /* best effort */
        close(fd);
    }
}

int mqim_users_write_acl(const mqim_gw_config_t *cfg, char *err, size_t err_len)
{
    char tmp[MQIM_GW_PATH_MAX + 16];
    char text[2048];
    const char *r = cfg->root;
    int n, fd;

    if (mqim_topic_root_check(mqim_str_from_cstr(r)) != MQIM_OK || strpbrk(r, "\r\n") != NULL) {
        snprintf(err, err_len, "root '%s' is not a valid topic root", r);
        return -1;
    }
    if (mqim_name_check(MQIM_NAME_USER, mqim_str_from_cstr(cfg->username)) != MQIM_OK) {
        snprintf(err, err_len, "username '%s' is not a valid broker user name", cfg->username);
        return -1;
    }
    if (cfg->broker_acl_file[0] == '\0') {
        snprintf(err, err_len, "broker_acl_file is not set");
        return -1;
    }
    /* In Mosquitto's acl_file, `topic` lines before the first `user` line
     * apply only to anonymous clients, and `pattern` lines apply to every
     * user wherever they stand (%u is the client's user name). */
    n = snprintf(text, sizeof(text),
                 "# Mosquitto ACL for mqim (topic root '%s'), written by mqim-gateway.\n"
                 "# `mqim-gateway init` rewrites this file: edits are lost.\n"
                 "\n"
                 "# The gateway reads what devices publish and writes every inbox.\n"
                 "user %s\n"
                 "topic readwrite %s/#\n"
                 "\n"
                 "# Every user (pattern lines apply to all users): write only its own\n"
                 "# out/ topics, read only its own in/ topics, presence, keys and the\n"
                 "# gateway's status.\n"
                 "# (Mosquitto warns that the last three hold no %%u: they are meant\n"
                 "# for every user.)\n"
                 "pattern write %s/u/%%u/out/#\n"
                 "pattern read %s/u/%%u/in/#\n"
                 "pattern read %s/presence/#\n"
                 "pattern read %s/keys/#\n"
                 "pattern read %s/gateway/#\n",
                 r, cfg->username, r, r, r, r, r, r);
    if (n < 0 || (size_t)n >= sizeof(text)) {
        snprintf(err, err_len, "ACL text too long");
        return -1;
    }
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.XXXXXX", cfg->broker_acl_file) >= sizeof(tmp)) {
        snprintf(err, err_len, "broker_acl_file path is too long");
        return -1;
    }
    fd = mkstemp(tmp); /* 0600, unique: concurrent writers do not clash */
    if (fd < 0) {
        return fail_errno(err, err_len, "cannot create a temporary file for", cfg->broker_acl_file,
                          errno);
    }
    if (fchmod(fd, 0600) != 0 || write_all(fd, text, (size_t)n) != 0 || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return fail_errno(err, err_len, "cannot write", tmp, e);
    }
    if (close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return fail_errno(err, err_len, "cannot write", tmp, e);
    }
    if (rename(tmp, cfg->broker_acl_file) != 0) {
        int e = errno;
        unlink(tmp);
        return fail_errno(err, err_len, "cannot replace", cfg->broker_acl_file, e);
    }
    sync_parent_dir(cfg->broker_acl_file);
    return 0;
}

/* ---- mosquitto_passwd -------------------------------------------------- */

static void set_cloexec(int fd)
{
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0) {
        (void)fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    }
}

static int make_pipe(int fds[2])
{
    if (pipe(fds) != 0) {
        return -1;
    }
    set_cloexec(fds[0]);
    set_cloexec(fds[1]);
    return 0;
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static void close_pipes(int a[2], int b[2], int c[2])
{
    close_fd(&a[0]);
    close_fd(&a[1]);
    close_fd(&b[0]);
    close_fd(&b[1]);
    close_fd(&c[0]);
    close_fd(&c[1]);
}

/* dup2 for the child; when fd already is `to` (the parent ran with that
 * standard fd closed), only clear close-on-exec. Async-signal-safe. */
static int move_fd(int fd, int to)
{
    if (fd == to) {
        return fcntl(to, F_SETFD, 0);
    }
    return dup2(fd, to);
}

/* Read what remains of fd into buf (NUL-terminated, cut at cap - 1). */
static void read_text(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        char chunk[256];
        ssize_t got = read(fd, chunk, sizeof(chunk));
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            break;
        }
        for (ssize_t i = 0; i < got && n + 1u < cap; i++) {
            buf[n++] = chunk[i];
        }
    }
    buf[n] = '\0';
}

/* The first non-empty line of mosquitto_passwd's stderr, without "Error: ". */
static const char *first_line(char *text)
{
    char *p = text + strspn(text, "\r\n");
    p[strcspn(p, "\r\n")] = '\0';
    if (strncmp(p, "Error: ", 7) == 0) {
        p += 7;
    }
    return p;
}

/* mqim_users_run (users.h). `input` is written into the pipe before the
 * fork (it is small), so a child that dies early cannot raise SIGPIPE here. */
int mqim_users_run(char *const argv[], const char *cwd, const char *input, char *out_msg,
                   size_t out_cap, char *err, size_t err_len)
{
    int in_pipe[2] = { -1, -1 }, err_pipe[2] = { -1, -1 }, exec_pipe[2] = { -1, -1 };
    int status = 0, exec_errno = 0, devnull;
    const char *tool = argv[0];
    ssize_t got;
    pid_t pid;

    out_msg[0] = '\0';
    if (make_pipe(in_pipe) != 0 || make_pipe(err_pipe) != 0 || make_pipe(exec_pipe) != 0) {
        int e = errno;
        close_pipes(in_pipe, err_pipe, exec_pipe);
        return fail_errno(err, err_len, "cannot make a pipe for", tool, e);
    }
    if (input != NULL && write_all(in_pipe[1], input, strlen(input)) != 0) {
        int e = errno;
        close_pipes(in_pipe, err_pipe, exec_pipe);
        return fail_errno(err, err_len, "cannot write to a pipe for", tool, e);
    }
    close_fd(&in_pipe[1]); /* EOF after the input */
    devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);

    pid = fork();
    if (pid == 0) {
        /* Child: only async-signal-safe calls until exec. umask 077: what
         * the tool creates (temp files, keys, the CA database) is private
         * whatever the caller's umask. */
        int e;
        (void)umask(077);
        if (move_fd(in_pipe[0], STDIN_FILENO) < 0 || move_fd(err_pipe[1], STDERR_FILENO) < 0 ||
            (devnull >= 0 && move_fd(devnull, STDOUT_FILENO) < 0)) {
            _exit(126);
        }
        if (cwd != NULL && chdir(cwd) != 0) {
            e = errno;
            (void)!write(exec_pipe[1], &e, sizeof(e));
            _exit(126);
        }
        execvp(argv[0], argv);
        e = errno;
        (void)!write(exec_pipe[1], &e, sizeof(e));
        _exit(127);
    }
    close_fd(&in_pipe[0]);
    close_fd(&err_pipe[1]);
    close_fd(&exec_pipe[1]);
    if (devnull >= 0) {
        close(devnull);
    }
    if (pid < 0) {
        int e = errno;
        close_fd(&err_pipe[0]);
        close_fd(&exec_pipe[0]);
        return fail_errno(err, err_len, "cannot fork for", tool, e);
    }
    /* EOF when exec succeeded (close-on-exec), else the child's errno. */
    do {
        got = read(exec_pipe[0], &exec_errno, sizeof(exec_errno));
    } while (got < 0 && errno == EINTR);
    close_fd(&exec_pipe[0]);
    read_text(err_pipe[0], out_msg, out_cap);
    close_fd(&err_pipe[0]);
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return fail_errno(err, err_len, "cannot wait for", tool, errno);
        }
    }
    if (got == (ssize_t)sizeof(exec_errno)) {
        if (WIFEXITED(status) && WEXITSTATUS(status) == 126 && cwd != NULL) {
            snprintf(err, err_len, "cannot run %s in %s: %s", tool, cwd, strerror(exec_errno));
            return -1;
        }
        if (exec_errno == ENOENT) {
            snprintf(err, err_len, "%s not found: run scripts/deps", tool);
        } else {
            snprintf(err, err_len, "cannot run %s: %s", tool, strerror(exec_errno));
        }
        return -1;
    }
    if (WIFSIGNALED(status)) {
        snprintf(err, err_len, "%s was killed by signal %d", tool, WTERMSIG(status));
        return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int run_passwd(char *const argv[], const char *input, char *out_msg, size_t out_cap,
                      char *err, size_t err_len)
{
    return mqim_users_run(argv, NULL, input, out_msg, out_cap, err, err_len);
}

static int check_user(const char *user, char *err, size_t err_len)
{
    mqim_status_t st = mqim_name_check(MQIM_NAME_USER, mqim_str_from_cstr(user));
    if (st != MQIM_OK) {
        snprintf(err, err_len, "invalid user name '%s': %s", user != NULL ? user : "",
                 mqim_status_str(st));
        return -1;
    }
    return 0;
}

static int check_passwd_path(const mqim_gw_config_t *cfg, char *err, size_t err_len)
{
    if (cfg->broker_password_file[0] == '\0') {
        snprintf(err, err_len, "broker_password_file is not set");
        return -1;
    }
    if (cfg->broker_password_file[0] == '-') {
        /* mosquitto_passwd would read it as an option */
        snprintf(err, err_len, "broker_password_file must not start with '-': %s",
                 cfg->broker_password_file);
        return -1;
    }
    return 0;
}

/* The lock of the password file's edits (see the top of this file): an fd
 * holding flock(LOCK_EX) on "<file>.lock", or -1 with err. */
static int lock_passwd(const char *file, char *err, size_t err_len)
{
    char path[MQIM_GW_PATH_MAX + 8];
    int fd;
    if ((size_t)snprintf(path, sizeof(path), "%s.lock", file) >= sizeof(path)) {
        snprintf(err, err_len, "broker_password_file path is too long");
        return -1;
    }
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        return fail_errno(err, err_len, "cannot open", path, errno);
    }
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            int e = errno;
            close(fd);
            return fail_errno(err, err_len, "cannot lock", path, e);
        }
    }
    return fd;
}

/* A private copy of file (empty when there is none) next to it, 0600, for
 * mosquitto_passwd to edit: its name in tmp. 0 or -1 with err. */
static int copy_passwd(const char *file, char *tmp, size_t tmp_cap, char *err, size_t err_len)
{
    int out, in;
    if ((size_t)snprintf(tmp, tmp_cap, "%s.XXXXXX", file) >= tmp_cap) {
        snprintf(err, err_len, "broker_password_file path is too long");
        return -1;
    }
    out = mkstemp(tmp); /* 0600 */
    if (out < 0) {
        return fail_errno(err, err_len, "cannot create a temporary file for", file, errno);
    }
    in = open(file, O_RDONLY | O_CLOEXEC);
    if (in < 0 && errno != ENOENT) {
        int e = errno;
        close(out);
        unlink(tmp);
        return fail_errno(err, err_len, "cannot read", file, e);
    }
    while (in >= 0) {
        char buf[8192];
        ssize_t n = read(in, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n == 0) {
            break;
        }
        if (n < 0 || write_all(out, buf, (size_t)n) != 0) {
            int e = errno;
            close(in);
            close(out);
            unlink(tmp);
            return fail_errno(err, err_len, "cannot copy", file, e);
        }
    }
    if (in >= 0) {
        close(in);
    }
    if (close(out) != 0) {
        int e = errno;
        unlink(tmp);
        return fail_errno(err, err_len, "cannot write", tmp, e);
    }
    return 0;
}

/* The edited copy becomes the password file: fsync, 0600, the owner and
 * group of the file it replaces (the broker may read it as another user
 * than the one running `user add`: an edit in place kept them too), rename,
 * and the directory synced. On failure the copy is removed. */
static int replace_passwd(const char *tmp, const char *file, char *err, size_t err_len)
{
    struct stat old;
    int fd = open(tmp, O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && stat(file, &old) == 0 && fchown(fd, old.st_uid, old.st_gid) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return fail_errno(err, err_len, "cannot chown", tmp, e);
    }
    if (fd < 0 || fsync(fd) != 0 || fchmod(fd, 0600) != 0) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
        }
        unlink(tmp);
        return fail_errno(err, err_len, "cannot write", tmp, e);
    }
    close(fd);
    if (rename(tmp, file) != 0) {
        int e = errno;
        unlink(tmp);
        return fail_errno(err, err_len, "cannot replace", file, e);
    }
    sync_parent_dir(file);
    return 0;
}

/* Run mosquitto_passwd (argv) on a copy of the password file, whose name
 * goes to argv[file_arg], and put the copy in place when the tool
 * succeeds; all under the lock. Returns the tool's exit status (the file
 * untouched unless 0), or -1 with err; msg: the tool's stderr. */
static int edit_passwd_at(const char *file, char *argv[], size_t file_arg, const char *input,
                          char *msg, size_t msg_cap, char *err, size_t err_len)
{
    char tmp[MQIM_GW_PATH_MAX + 16];
    int lock, rc;
    lock = lock_passwd(file, err, err_len);
    if (lock < 0) {
        return -1;
    }
    if (copy_passwd(file, tmp, sizeof(tmp), err, err_len) != 0) {
        close(lock);
        return -1;
    }
    argv[file_arg] = tmp;
    rc = run_passwd(argv, input, msg, msg_cap, err, err_len);
    if (rc == 0) {
        if (replace_passwd(tmp, file, err, err_len) != 0) {
            rc = -1;
        }
    } else {
        unlink(tmp);
    }
    close(lock); /* releases the lock */
    return rc;
}

int mqim_users_passwd_set(const mqim_gw_config_t *cfg, const char *user, const char *password,
                          char *err, size_t err_len)
{
    char input[2u * PASSWORD_LEN_MAX + 3u];
    char msg[512];
    const char *file = cfg->broker_password_file;
    size_t pw_len;
    int rc;

    if (check_user(user, err, err_len) != 0 || check_passwd_path(cfg, err, err_len) != 0) {
        return -1;
    }
    pw_len = password != NULL ? strlen(password) : 0u;
    if (pw_len == 0u || strpbrk(password, "\r\n") != NULL) {
        snprintf(err, err_len, "the password must be one non-empty line");
        return -1;
    }
    if (pw_len > PASSWORD_LEN_MAX) {
        snprintf(err, err_len, "the password is longer than %u characters", PASSWORD_LEN_MAX);
        return -1;
    }
    {
        /* The copy always exists (empty for a new file): no -c, which
         * would only truncate it. The prompt asks twice: "Password:" and
         * "Reenter password:". */
        char *argv[] = { PASSWD_TOOL, NULL, (char *)user, NULL };
        snprintf(input, sizeof(input), "%s\n%s\n", password, password);
        rc = edit_passwd_at(file, argv, 1, input, msg, sizeof(msg), err, err_len);
        memset(input, 0, sizeof(input));
    }
    if (rc < 0) {
        return -1;
    }
    if (rc != 0) {
        snprintf(err, err_len, PASSWD_TOOL " %s (exit status %d): %s", file, rc, first_line(msg));
        return -1;
    }
    return 0;
}

int mqim_users_passwd_del(const mqim_gw_config_t *cfg, const char *user, char *err, size_t err_len)
{
    char msg[512];
    char *argv[] = { PASSWD_TOOL, "-D", NULL, (char *)user, NULL };
    struct stat sb;
    int rc;
    if (check_user(user, err, err_len) != 0 || check_passwd_path(cfg, err, err_len) != 0) {
        return -1;
    }
    if (stat(cfg->broker_password_file, &sb) != 0) {
        if (errno == ENOENT) {
            return 0; /* no file, no user: already removed */
        }
        return fail_errno(err, err_len, "cannot read", cfg->broker_password_file, errno);
    }
    rc = edit_passwd_at(cfg->broker_password_file, argv, 2, NULL, msg, sizeof(msg), err, err_len);
    if (rc < 0) {
        return -1;
    }
    if (rc != 0) {
        if (strstr(msg, "not found") != NULL) {
            return 0; /* "Warning: User x not found in password file." */
        }
        snprintf(err, err_len, PASSWD_TOOL " -D %s (exit status %d): %s",
                 cfg->broker_password_file, rc, first_line(msg));
        return -1;
    }
    return 0;
}

/* ---- reload ------------------------------------------------------------ */

/* True unless /proc says pid is some other program than mosquitto (a stale
 * pid file whose pid was reused: SIGHUP would kill that program). */
static bool is_mosquitto(long pid)
{
    char path[64], comm[64];
    FILE *f;
    snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return true; /* no /proc: let kill() decide */
    }
    if (fgets(comm, sizeof(comm), f) == NULL) {
        comm[0] = '\0';
    }
    fclose(f);
    comm[strcspn(comm, "\n")] = '\0';
    return strncmp(comm, "mosquitto", 9) == 0;
}

int mqim_users_reload_broker(const mqim_gw_config_t *cfg, char *err, size_t err_len)
{
    char buf[64];
    char *end = NULL;
    long pid;
    size_t n;
    FILE *f = fopen(cfg->broker_pid_file, "r");
    if (f == NULL) {
        if (errno == ENOENT) {
            return 1; /* no broker running: it reads the files when it starts */
        }
        return fail_errno(err, err_len, "cannot read", cfg->broker_pid_file, errno);
    }
    n = fread(buf, 1, sizeof(buf) - 1u, f);
    fclose(f);
    buf[n] = '\0';
    if (buf[strspn(buf, " \t\r\n")] == '\0') {
        return 1; /* empty: a broker that is starting reads the files anyway */
    }
    errno = 0;
    pid = strtol(buf, &end, 10);
    if (errno != 0 || end == buf || end[strspn(end, " \t\r\n")] != '\0' || pid <= 1 ||
        pid > INT_MAX) {
        snprintf(err, err_len, "%s does not hold a process id", cfg->broker_pid_file);
        return -1;
    }
    if (!is_mosquitto(pid)) {
        return 1; /* stale pid file */
    }
    if (kill((pid_t)pid, SIGHUP) != 0) {
        if (errno == ESRCH) {
            return 1; /* stale pid file */
        }
        snprintf(err, err_len, "cannot signal the broker (pid %ld from %s): %s", pid,
                 cfg->broker_pid_file, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- random passwords -------------------------------------------------- */

int mqim_users_random_password(char *buf, size_t len)
{
    static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char r[64];
    size_t n = 0;
    if (buf == NULL) {
        return -1;
    }
    while (n < len) {
        ssize_t got = getrandom(r, sizeof(r), 0);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            memset(buf, 0, n);
            return -1;
        }
        for (ssize_t i = 0; i < got && n < len; i++) {
            /* 248 = 4 * 62: bytes >= 248 are rejected, so each of the 62
             * characters is equally likely. */
            if (r[i] < 248u) {
                buf[n++] = set[r[i] % 62u];
            }
        }
    }
    memset(r, 0, sizeof(r));
    buf[len] = '\0';
    return 0;
}
