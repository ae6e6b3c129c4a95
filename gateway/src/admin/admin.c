/* status, online, log-level: questions to the running gateway over its
 * control socket (admin.h). A socket, not a read of the store: only the
 * running gateway knows whether it is connected to the broker and how far
 * its journal is behind, and only it can change its own log level. The
 * socket is abstract (no file in the data directory); the gateway answers
 * only its own user and root (SO_PEERCRED). */
#include "admin.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "log.h"
#include "metrics_server.h"

#define REPLY_MAX (1u << 24)

/* Send one request line; the whole reply in a heap buffer (NUL-terminated)
 * or NULL with the reason on stderr. */
static char *ask(const mqim_gw_config_t *cfg, const char *request)
{
    struct sockaddr_un a;
    struct timeval tv = { 10, 0 };
    char *buf = NULL;
    size_t len = 0, cap = 0;
    socklen_t alen = mqim_control_socket_addr(cfg->data_dir, &a);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), rc = -1;
    if (fd >= 0) {
        rc = connect(fd, (struct sockaddr *)&a, alen);
    }
    if (rc != 0) {
        fprintf(stderr, "mqim-gateway: not running: no gateway answers for the data directory %s "
                "(control socket @%s: %s)\n", cfg->data_dir, a.sun_path + 1, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return NULL;
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (send(fd, request, strlen(request), MSG_NOSIGNAL) != (ssize_t)strlen(request) ||
        send(fd, "\n", 1, MSG_NOSIGNAL) != 1) {
        fprintf(stderr, "mqim-gateway: control socket: %s\n", strerror(errno));
        close(fd);
        return NULL;
    }
    for (;;) {
        ssize_t n;
        if (cap - len < 4096u) {
            char *nb = cap < REPLY_MAX ? realloc(buf, cap + 65536u) : NULL;
            if (nb == NULL) {
                fprintf(stderr, "mqim-gateway: the reply is too large\n");
                free(buf);
                close(fd);
                return NULL;
            }
            buf = nb;
            cap += 65536u;
        }
        n = recv(fd, buf + len, cap - len - 1u, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            fprintf(stderr, "mqim-gateway: control socket: %s\n", strerror(errno));
            free(buf);
            close(fd);
            return NULL;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    if (strncmp(buf, "error\t", 6) == 0) {
        fprintf(stderr, "mqim-gateway: %s", buf + 6);
        free(buf);
        return NULL;
    }
    return buf;
}

/* The value of "key\tvalue" in a status reply ("" when absent). */
static const char *field(const char *reply, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    out[0] = '\0';
    const char *l = reply;
    while (l != NULL && *l != '\0') {
        if (strncmp(l, key, kl) == 0 && l[kl] == '\t') {
            snprintf(out, cap, "%.*s", (int)strcspn(l + kl + 1, "\n"), l + kl + 1);
            break;
        }
        l = strchr(l, '\n');
        l = l != NULL ? l + 1 : NULL;
    }
    return out;
}

static int cmd_status(const mqim_gw_config_t *cfg)
{
    char v[64];
    char *r = ask(cfg, "status");
    int rc;
    if (r == NULL) {
        return 1;
    }
    fputs(r, stdout);
    /* Healthy: running and routing (connected to the broker). */
    rc = strcmp(field(r, "broker_connected", v, sizeof(v)), "yes") == 0 ? 0 : 1;
    if (rc != 0) {
        fprintf(stderr, "mqim-gateway: running but not connected to the broker %s:%d\n",
                cfg->broker_host, cfg->broker_port);
    }
    free(r);
    return rc;
}

static void local_time(int64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0 || localtime_r(&t, &tm) == NULL || strftime(out, cap, "%Y-%m-%d %H:%M:%S %Z", &tm) == 0) {
        snprintf(out, cap, "never");
    }
}

/* Lines "user\tdevice\tstate\tlast_seen_ms\tsince_ms" printed as a table in
 * the operator's local time (TZ). */
static int cmd_online(const mqim_gw_config_t *cfg, int argc, char **argv)
{
    bool all = argc == 1 && strcmp(argv[0], "--all") == 0;
    char *r, *line, *save = NULL;
    unsigned devices = 0, users = 0;
    char last_user[80] = "";
    if (argc > 1 || (argc == 1 && !all)) {
        fprintf(stderr, "usage: mqim-gateway online [--all]\n");
        return 2;
    }
    r = ask(cfg, all ? "online all" : "online");
    if (r == NULL) {
        return 1;
    }
    printf("%-24s %-24s %-9s %-25s %s\n", "USER", "DEVICE", "STATE", "LAST SEEN", "SINCE");
    for (line = strtok_r(r, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        char user[80], device[80], state[16], seen[64], since[64];
        long long seen_ms, since_ms;
        if (sscanf(line, "%79[^\t]\t%79[^\t]\t%15[^\t]\t%lld\t%lld", user, device, state, &seen_ms,
                   &since_ms) != 5) {
            continue;
        }
        local_time(seen_ms, seen, sizeof(seen));
        local_time(since_ms, since, sizeof(since));
        printf("%-24s %-24s %-9s %-25s %s\n", user, device, state, seen, since);
        if (strcmp(state, "online") == 0 || strcmp(state, "away") == 0) {
            devices++;
            users += strcmp(user, last_user) != 0 ? 1u : 0u;
            snprintf(last_user, sizeof(last_user), "%s", user);
        }
    }
    printf("%u users, %u devices online\n", users, devices);
    free(r);
    return 0;
}

static int cmd_log_level(const mqim_gw_config_t *cfg, int argc, char **argv)
{
    char req[32];
    char *r;
    if (argc != 1 || mqim_log_level_parse(argv[0]) < 0) {
        fprintf(stderr, "usage: mqim-gateway log-level error|warn|info|debug\n");
        return 2;
    }
    snprintf(req, sizeof(req), "log-level %s", argv[0]);
    r = ask(cfg, req);
    if (r == NULL) {
        return 1;
    }
    printf("log level of the running gateway: %s (until the next SIGHUP or restart, which apply "
           "log_level of the config)\n", argv[0]);
    free(r);
    return 0;
}

bool mqim_admin_is_command(const char *cmd)
{
    return strcmp(cmd, "status") == 0 || strcmp(cmd, "online") == 0 || strcmp(cmd, "check") == 0 ||
           strcmp(cmd, "log-level") == 0;
}

int mqim_admin_run(const mqim_gw_config_t *cfg, const char *conf_path, const char *cmd, int argc,
                   char **argv)
{
    if (strcmp(cmd, "check") == 0) {
        if (argc != 0) {
            fprintf(stderr, "usage: mqim-gateway [-c FILE] check\n");
            return 2;
        }
        return mqim_check_run(cfg, conf_path);
    }
    if (strcmp(cmd, "online") == 0) {
        return cmd_online(cfg, argc, argv);
    }
    if (strcmp(cmd, "log-level") == 0) {
        return cmd_log_level(cfg, argc, argv);
    }
    if (argc != 0) {
        fprintf(stderr, "usage: mqim-gateway [-c FILE] status\n");
        return 2;
    }
    return cmd_status(cfg);
}
