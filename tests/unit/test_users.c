/* Broker user administration (users.c): the ACL file, the password file
 * through the real mosquitto_passwd, broker reload, random passwords. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

/* The whole file into a static buffer ("" when unreadable). */
static const char *slurp(const char *path)
{
    static char buf[16384];
    FILE *f = fopen(path, "r");
    size_t n = 0;
    if (f != NULL) {
        n = fread(buf, 1, sizeof(buf) - 1u, f);
        fclose(f);
    }
    buf[n] = '\0';
    return buf;
}

/* Lines of the password file that start with "user:". */
static int count_user_lines(const char *path, const char *user)
{
    char prefix[80];
    const char *p = slurp(path);
    int count = 0;
    snprintf(prefix, sizeof(prefix), "%s:", user);
    while (*p != '\0') {
        if (strncmp(p, prefix, strlen(prefix)) == 0) {
            count++;
        }
        p = strchr(p, '\n');
        if (p == NULL) {
            break;
        }
        p++;
    }
    return count;
}

static int file_mode(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (int)(sb.st_mode & 07777) : -1;
}

static int entries_in_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    int n = 0;
    if (d == NULL) {
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            n++;
        }
    }
    closedir(d);
    return n;
}

static void config_in(mqim_gw_config_t *cfg, const char *sub)
{
    char d[300];
    snprintf(d, sizeof(d), "%s/%s", dir, sub);
    if (mkdir(d, 0700) != 0 && errno != EEXIST) {
        perror(d);
        exit(2);
    }
    mqim_gw_config_defaults(cfg);
    snprintf(cfg->broker_password_file, sizeof(cfg->broker_password_file), "%s/passwd", d);
    snprintf(cfg->broker_acl_file, sizeof(cfg->broker_acl_file), "%s/acl", d);
    snprintf(cfg->broker_pid_file, sizeof(cfg->broker_pid_file), "%s/mosquitto.pid", d);
}

static const char acl_default[] =
    "# Mosquitto ACL for mqim (topic root 'im'), written by mqim-gateway.\n"
    "# `mqim-gateway init` rewrites this file: edits are lost.\n"
    "\n"
    "# The gateway reads what devices publish and writes every inbox.\n"
    "user mqim-gateway\n"
    "topic readwrite im/#\n"
    "\n"
    "# Every user (pattern lines apply to all users): write only its own\n"
    "# out/ topics, read only its own in/ topics, presence, keys and the\n"
    "# gateway's status.\n"
    "# (Mosquitto warns that the last three hold no %u: they are meant\n"
    "# for every user.)\n"
    "pattern write im/u/%u/out/#\n"
    "pattern read im/u/%u/in/#\n"
    "pattern read im/presence/#\n"
    "pattern read im/keys/#\n"
    "pattern read im/gateway/#\n";

static void test_acl(void)
{
    mqim_gw_config_t cfg;
    char err[512] = "", d[300];
    const char *text;
    struct stat before, after;
    int old_fd;

    config_in(&cfg, "acl");
    CHECK_EQ_INT(mqim_users_write_acl(&cfg, err, sizeof(err)), 0);
    text = slurp(cfg.broker_acl_file);
    CHECK_EQ_STR(text, strlen(text), acl_default);
    CHECK_EQ_INT(file_mode(cfg.broker_acl_file), 0600);

    /* Idempotent: the same bytes again. */
    CHECK_EQ_INT(mqim_users_write_acl(&cfg, err, sizeof(err)), 0);
    text = slurp(cfg.broker_acl_file);
    CHECK_EQ_STR(text, strlen(text), acl_default);

    /* Atomic replacement: an old 0644 file is replaced by a new inode (a
     * reader that opened the old one still reads it whole), the result is
     * 0600, and no temporary file is left behind. */
    write_file(cfg.broker_acl_file, "old content\n");
    chmod(cfg.broker_acl_file, 0644);
    old_fd = open(cfg.broker_acl_file, O_RDONLY);
    CHECK(old_fd >= 0 && fstat(old_fd, &before) == 0);
    CHECK_EQ_INT(mqim_users_write_acl(&cfg, err, sizeof(err)), 0);
    CHECK(stat(cfg.broker_acl_file, &after) == 0 && after.st_ino != before.st_ino);
    CHECK_EQ_INT(file_mode(cfg.broker_acl_file), 0600);
    {
        char old[64] = "";
        ssize_t n = old_fd >= 0 ? pread(old_fd, old, sizeof(old) - 1u, 0) : -1;
        CHECK_EQ_STR(old, n > 0 ? (size_t)n : 0u, "old content\n");
    }
    if (old_fd >= 0) {
        close(old_fd);
    }
    snprintf(d, sizeof(d), "%s/acl", dir);
    CHECK_EQ_INT(entries_in_dir(d), 1);

    /* Another root and gateway user. */
    snprintf(cfg.root, sizeof(cfg.root), "acme/im");
    snprintf(cfg.username, sizeof(cfg.username), "gw");
    CHECK_EQ_INT(mqim_users_write_acl(&cfg, err, sizeof(err)), 0);
    text = slurp(cfg.broker_acl_file);
    CHECK(strstr(text, "\nuser gw\ntopic readwrite acme/im/#\n") != NULL);
    CHECK(strstr(text, "\npattern write acme/im/u/%u/out/#\n"
                       "pattern read acme/im/u/%u/in/#\n"
                       "pattern read acme/im/presence/#\n"
                       "pattern read acme/im/keys/#\n"
                       "pattern read acme/im/gateway/#\n") != NULL);
    /* The only `topic` line comes after the first `user` line (a `topic`
     * line before it would apply to anonymous clients only). */
    CHECK(strstr(text, "\ntopic ") > strstr(text, "\nuser "));

    /* Nothing can inject ACL lines. */
    snprintf(cfg.username, sizeof(cfg.username), "gw\ntopic readwrite #");
    CHECK_EQ_INT(mqim_users_write_acl(&cfg, err, sizeof(err)), -1);
    CHECK(strstr(err, "username") != NULL);
    snprintf(cfg.username, sizeof(cfg.username), "gw");
    snprintf(cfg.root, sizeof(cfg.root), "im\ntopic readwrite x");
    CHECK_EQ_INT(mqim_users_write_acl(&cfg, err, sizeof(err)), -1);
    snprintf(cfg.root, sizeof(cfg.root), "im/#");
    CHECK_EQ_INT(mqim_users_write_acl(&cfg, err, sizeof(err)), -1);
    CHECK(strstr(err, "not a valid topic root") != NULL);

    /* A directory that does not exist: a readable error. */
    config_in(&cfg, "acl");
    snprintf(cfg.broker_acl_file, sizeof(cfg.broker_acl_file), "%s/no/such/dir/acl", dir);
    CHECK_EQ_INT(mqim_users_write_acl(&cfg, err, sizeof(err)), -1);
    CHECK(strstr(err, "No such file or directory") != NULL);
}

static void test_passwd(void)
{
    mqim_gw_config_t cfg;
    char err[512] = "", pw[33];
    config_in(&cfg, "passwd");

    CHECK_EQ_INT(mqim_users_random_password(pw, 32), 0);
    CHECK_EQ_INT(mqim_users_passwd_set(&cfg, "alice", pw, err, sizeof(err)), 0);
    if (err[0] != '\0') {
        fprintf(stderr, "  passwd_set: %s\n", err);
    }
    CHECK_EQ_INT(count_user_lines(cfg.broker_password_file, "alice"), 1);
    CHECK(strncmp(slurp(cfg.broker_password_file), "alice:$", 7) == 0); /* a hash */
    CHECK(strstr(slurp(cfg.broker_password_file), pw) == NULL);          /* never the password */
    CHECK_EQ_INT(file_mode(cfg.broker_password_file), 0600);

    /* Update: still one line for alice; another user next to it. */
    CHECK_EQ_INT(mqim_users_passwd_set(&cfg, "alice", "another password", err, sizeof(err)), 0);
    CHECK_EQ_INT(mqim_users_passwd_set(&cfg, "bob", "-b pw2 with spaces", err, sizeof(err)), 0);
    CHECK_EQ_INT(count_user_lines(cfg.broker_password_file, "alice"), 1);
    CHECK_EQ_INT(count_user_lines(cfg.broker_password_file, "bob"), 1);
    CHECK_EQ_INT(file_mode(cfg.broker_password_file), 0600);

    /* Delete: the line goes, the other stays; deleting again is fine. */
    CHECK_EQ_INT(mqim_users_passwd_del(&cfg, "alice", err, sizeof(err)), 0);
    CHECK_EQ_INT(count_user_lines(cfg.broker_password_file, "alice"), 0);
    CHECK_EQ_INT(count_user_lines(cfg.broker_password_file, "bob"), 1);
    CHECK_EQ_INT(mqim_users_passwd_del(&cfg, "alice", err, sizeof(err)), 0);
    CHECK_EQ_INT(file_mode(cfg.broker_password_file), 0600);

    /* An existing empty file (scripts/broker-conf makes one) is filled. */
    config_in(&cfg, "passwd-empty");
    write_file(cfg.broker_password_file, "");
    chmod(cfg.broker_password_file, 0640);
    CHECK_EQ_INT(mqim_users_passwd_set(&cfg, "carol", "pw3", err, sizeof(err)), 0);
    CHECK_EQ_INT(count_user_lines(cfg.broker_password_file, "carol"), 1);
    CHECK_EQ_INT(file_mode(cfg.broker_password_file), 0600);

    /* No password file: nothing to delete. */
    config_in(&cfg, "passwd-none");
    CHECK_EQ_INT(mqim_users_passwd_del(&cfg, "alice", err, sizeof(err)), 0);

    /* Bad input. */
    config_in(&cfg, "passwd");
    CHECK_EQ_INT(mqim_users_passwd_set(&cfg, "a/b", "x", err, sizeof(err)), -1);
    CHECK(strstr(err, "invalid user name 'a/b'") != NULL);
    CHECK_EQ_INT(mqim_users_passwd_set(&cfg, "a:b", "x", err, sizeof(err)), -1);
    CHECK_EQ_INT(mqim_users_passwd_set(&cfg, "", "x", err, sizeof(err)), -1);
    CHECK_EQ_INT(mqim_users_passwd_set(&cfg, "dave", "", err, sizeof(err)), -1);
    CHECK(strstr(err, "one non-empty line") != NULL);
    CHECK_EQ_INT(mqim_users_passwd_set(&cfg, "dave", "two\nlines", err, sizeof(err)), -1);
    CHECK(strstr(err, "one non-empty line") != NULL);
    CHECK_EQ_INT(mqim_users_passwd_del(&cfg, "a b", err, sizeof(err)), -1);
    CHECK_EQ_INT(count_user_lines(cfg.broker_password_file, "dave"), 0);
    snprintf(cfg.broker_password_file, sizeof(cfg.broker_password_file), "%s/no/such/dir/passwd", dir);
    CHECK_EQ_INT(mqim_users_passwd_set(&cfg, "dave", "x", err, sizeof(err)), -1);
    CHECK(strstr(err, "No such file or directory") != NULL);
}

static void test_passwd_tool_missing(void)
{
    mqim_gw_config_t cfg;
    char err[512] = "", empty[300];
    const char *old = getenv("PATH");
    char *saved = old != NULL ? strdup(old) : NULL;
    config_in(&cfg, "nopath");
    snprintf(empty, sizeof(empty), "%s/nopath/bin", dir);
    mkdir(empty, 0700);
    setenv("PATH", empty, 1);
    CHECK_EQ_INT(mqim_users_passwd_set(&cfg, "alice", "pw", err, sizeof(err)), -1);
    CHECK(strstr(err, "mosquitto_passwd not found: run scripts/deps") != NULL);
    if (strstr(err, "not found") == NULL) {
        fprintf(stderr, "  error was '%s'\n", err);
    }
    if (saved != NULL) {
        setenv("PATH", saved, 1);
        free(saved);
    }
}

static void test_reload(void)
{
    mqim_gw_config_t cfg;
    char err[512] = "", text[64];
    pid_t child, dead;
    int status = 0;
    config_in(&cfg, "reload");

    /* No pid file, an empty one: no broker running. */
    CHECK_EQ_INT(mqim_users_reload_broker(&cfg, err, sizeof(err)), 1);
    write_file(cfg.broker_pid_file, "");
    CHECK_EQ_INT(mqim_users_reload_broker(&cfg, err, sizeof(err)), 1);
    write_file(cfg.broker_pid_file, "not a pid\n");
    CHECK_EQ_INT(mqim_users_reload_broker(&cfg, err, sizeof(err)), -1);
    CHECK(strstr(err, "does not hold a process id") != NULL);
    write_file(cfg.broker_pid_file, "1\n");
    CHECK_EQ_INT(mqim_users_reload_broker(&cfg, err, sizeof(err)), -1);

    /* A pid that is gone. */
    dead = fork();
    if (dead == 0) {
        _exit(0);
    }
    waitpid(dead, &status, 0);
    snprintf(text, sizeof(text), "%ld\n", (long)dead);
    write_file(cfg.broker_pid_file, text);
    CHECK_EQ_INT(mqim_users_reload_broker(&cfg, err, sizeof(err)), 1);

    /* A stale pid file whose pid now belongs to another program: it must
     * not get a SIGHUP (which would end it). */
    child = fork();
    if (child == 0) {
        execlp("sleep", "sleep", "30", (char *)NULL);
        _exit(127);
    }
    usleep(100000); /* let it exec, so /proc/PID/comm says "sleep" */
    snprintf(text, sizeof(text), "%ld\n", (long)child);
    write_file(cfg.broker_pid_file, text);
    CHECK_EQ_INT(mqim_users_reload_broker(&cfg, err, sizeof(err)), 1);
    usleep(50000);
    CHECK_EQ_INT(waitpid(child, &status, WNOHANG), 0); /* still running */
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
}

static void test_random_password(void)
{
    static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    static const size_t lens[] = { 0, 1, 20, 32, 255 };
    static char big[62u * 200u + 1u];
    int seen[256] = { 0 };
    char a[256], b[256];
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        memset(a, 'X', sizeof(a));
        CHECK_EQ_INT(mqim_users_random_password(a, lens[i]), 0);
        CHECK_EQ_INT(strlen(a), lens[i]);
        CHECK_EQ_INT(strspn(a, set), lens[i]);
    }
    CHECK_EQ_INT(mqim_users_random_password(a, 32), 0);
    CHECK_EQ_INT(mqim_users_random_password(b, 32), 0);
    CHECK(strcmp(a, b) != 0);
    CHECK_EQ_INT(mqim_users_random_password(NULL, 8), -1);
    /* All 62 characters show up (about 200 times each), nothing else. */
    CHECK_EQ_INT(mqim_users_random_password(big, sizeof(big) - 1u), 0);
    for (size_t i = 0; i + 1u < sizeof(big); i++) {
        seen[(unsigned char)big[i]]++;
    }
    for (size_t i = 0; i < 62u; i++) {
        CHECK(seen[(unsigned char)set[i]] > 100);
    }
    CHECK_EQ_INT(strspn(big, set), sizeof(big) - 1u);
}

/* A reader of the password file while users are added (the broker at a
 * SIGHUP): it must always see the first user and only whole lines; never
 * an empty or half-written file. mosquitto_passwd rewrites its file in
 * place: on the real file that was seen here within a few adds. Returns
 * the number of bad reads; stops when stop_fd becomes readable. */
static int read_while_written(const char *path, int stop_fd)
{
    int bad = 0;
    struct pollfd pfd = { stop_fd, POLLIN, 0 };
    while (poll(&pfd, 1, 0) == 0) {
        char buf[65536];
        ssize_t n;
        int fd = open(path, O_RDONLY);
        if (fd < 0) {
            bad++;
            continue;
        }
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0 || strncmp(buf, "first:$7$", 9) != 0 || buf[n - 1] != '\n') {
            bad++;
        }
    }
    return bad;
}

static void test_passwd_atomic(void)
{
    mqim_gw_config_t cfg;
    char err[512] = "", user[32];
    int stop[2], status = 0;
    pid_t reader, writers[6];
    config_in(&cfg, "passwd-atomic");
    CHECK_EQ_INT(mqim_users_passwd_set(&cfg, "first", "pw", err, sizeof(err)), 0);
    CHECK(pipe(stop) == 0);
    reader = fork();
    if (reader == 0) {
        close(stop[1]);
        _exit(read_while_written(cfg.broker_password_file, stop[0]) > 0 ? 1 : 0);
    }
    close(stop[0]);
    /* back to back, then several processes at once (the lock serialises
     * them: no add is lost to another's copy) */
    for (int i = 0; i < 30; i++) {
        snprintf(user, sizeof(user), "seq%d", i);
        CHECK_EQ_INT(mqim_users_passwd_set(&cfg, user, "pw", err, sizeof(err)), 0);
    }
    for (int w = 0; w < 6; w++) {
        writers[w] = fork();
        if (writers[w] == 0) {
            int rc = 0;
            for (int i = 0; i < 5; i++) {
                snprintf(user, sizeof(user), "par%d_%d", w, i);
                rc |= mqim_users_passwd_set(&cfg, user, "pw", err, sizeof(err)) != 0;
            }
            _exit(rc);
        }
    }
    for (int w = 0; w < 6; w++) {
        CHECK(writers[w] > 0 && waitpid(writers[w], &status, 0) == writers[w] && WIFEXITED(status) &&
              WEXITSTATUS(status) == 0);
    }
    CHECK_EQ_INT(mqim_users_passwd_del(&cfg, "seq0", err, sizeof(err)), 0);
    close(stop[1]);
    CHECK(waitpid(reader, &status, 0) == reader && WIFEXITED(status));
    CHECK_EQ_INT(WEXITSTATUS(status), 0); /* the reader never saw a partial file */
    for (int w = 0; w < 6; w++) {
        for (int i = 0; i < 5; i++) {
            snprintf(user, sizeof(user), "par%d_%d", w, i);
            CHECK_EQ_INT(count_user_lines(cfg.broker_password_file, user), 1);
        }
    }
    CHECK_EQ_INT(count_user_lines(cfg.broker_password_file, "seq29"), 1);
    if (geteuid() == 0) {
        /* the owner and group of the replaced file are kept (the broker may
         * read it as another user) */
        struct stat sb;
        CHECK(chown(cfg.broker_password_file, 1, 1) == 0);
        CHECK_EQ_INT(mqim_users_passwd_set(&cfg, "owner", "pw", err, sizeof(err)), 0);
        CHECK(stat(cfg.broker_password_file, &sb) == 0 && sb.st_uid == 1 && sb.st_gid == 1);
    }
    CHECK_EQ_INT(count_user_lines(cfg.broker_password_file, "seq0"), 0);
    CHECK_EQ_INT(file_mode(cfg.broker_password_file), 0600);
    /* no copies left behind: passwd and its lock only */
    {
        char d[300];
        snprintf(d, sizeof(d), "%s/passwd-atomic", dir);
        CHECK_EQ_INT(entries_in_dir(d), 2);
    }
}

int main(void)
{
    char cmd[300];
    snprintf(dir, sizeof(dir), "/tmp/mqim-test-users-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    test_acl();
    test_passwd();
    test_passwd_atomic();
    test_passwd_tool_missing();
    test_reload();
    test_random_password();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cleanup of %s failed\n", dir);
    }
    return CHECK_REPORT();
}
