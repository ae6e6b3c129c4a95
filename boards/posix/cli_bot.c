/* `mqim bot --exec CMD [ARG...]` (cli.h): every device a bot.
 *
 * Each incoming text message (direct, or in a group I am in) runs CMD with
 * execvp, never through a shell: the message text is only ever CMD's
 * stdin, and what it says about the message is in the environment
 * (MQIM_FROM, MQIM_DEVICE_FROM, MQIM_CHAT, MQIM_GROUP, MQIM_ID, MQIM_SEQ,
 * MQIM_TS, MQIM_USER). CMD's stdout, up to --max-output bytes, trailing
 * newlines removed, is the reply, to the sender or into the group.
 * At most --jobs commands run at once (more messages wait, in order); a
 * command still running after --run-timeout is killed with its process
 * group (it runs in one of its own) and gives no reply. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

#define BOT_JOBS_MAX 32
#define BOT_QUEUE_MAX 64

/* A message waiting for (or given to) a command. */
typedef struct bot_msg {
    char from[40], device[40], group[40], id[40];
    uint64_t seq;
    int64_t ts;
    char text[MQIM_BODY_MAX + 1];
    size_t len;
} bot_msg_t;

typedef struct bot_job {
    bool used, exited, timed_out;
    pid_t pid;
    int out_fd;     /* the command's stdout; -1 at EOF */
    int status;
    uint32_t started;
    bot_msg_t msg;  /* what it answers */
    char out[MQIM_BODY_MAX + 1];
    size_t out_len;
    bool truncated;
} bot_job_t;

typedef struct bot {
    cli_t *c;
    char **exec_argv;
    char **allow;
    int nallow;
    unsigned jobs_max;
    uint32_t run_timeout;
    size_t max_output;
    bot_job_t jobs[BOT_JOBS_MAX];
    bot_msg_t queue[BOT_QUEUE_MAX];
    unsigned q_head, q_len;
} bot_t;

/* SIGINT/SIGTERM: stop and kill what runs (a handler reaches only a flag). */
static volatile sig_atomic_t bot_stop;

static void on_stop(int sig)
{
    (void)sig;
    bot_stop = 1;
}

static void copy_str(char *dst, size_t cap, mqim_str_t s)
{
    snprintf(dst, cap, "%.*s", (int)(s.len < cap ? s.len : cap - 1u), s.ptr);
}

static bool allowed(const bot_t *b, mqim_str_t from)
{
    if (b->nallow == 0) {
        return true;
    }
    for (int k = 0; k < b->nallow; k++) {
        if (mqim_str_eq_cstr(from, b->allow[k])) {
            return true;
        }
    }
    return false;
}

static void set_env_u64(const char *name, unsigned long long v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%llu", v);
    setenv(name, buf, 1);
}

/* In the child: its own process group (so a timeout kills what it
 * started too), the text as stdin, the message in the environment, no
 * other descriptor. */
static void child(const bot_t *b, const bot_msg_t *m, int in_fd, int out_fd)
{
    char chat[48];
    setpgid(0, 0);
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0) {
        _exit(127);
    }
    /* nothing of mqim's own: not its broker socket, not its LMDB files;
     * one system call (a close per possible descriptor costs ~10 ms at
     * 20,000), a loop only where close_range is missing (Linux < 5.9) */
    if (close_range(3, ~0u, 0) != 0) {
        for (int fd = 3; fd < 1024; fd++) {
            (void)close(fd);
        }
    }
    snprintf(chat, sizeof(chat), "%s%s", m->group[0] != '\0' ? "#" : "", m->group[0] != '\0' ? m->group : m->from);
    setenv("MQIM_FROM", m->from, 1);
    setenv("MQIM_DEVICE_FROM", m->device, 1);
    setenv("MQIM_CHAT", chat, 1);
    setenv("MQIM_GROUP", m->group, 1);
    setenv("MQIM_ID", m->id, 1);
    set_env_u64("MQIM_SEQ", (unsigned long long)m->seq);
    set_env_u64("MQIM_TS", (unsigned long long)m->ts);
    setenv("MQIM_USER", b->c->opt.user, 1);
    execvp(b->exec_argv[0], b->exec_argv);
    fprintf(stderr, "mqim: bot: cannot run %s: %s\n", b->exec_argv[0], strerror(errno));
    _exit(127);
}

static bool job_start(bot_t *b, bot_job_t *j, const bot_msg_t *m)
{
    int in[2], out[2];
    if (pipe(in) != 0) {
        return false;
    }
    if (pipe(out) != 0) {
        close(in[0]);
        close(in[1]);
        return false;
    }
    /* the text fits the pipe's buffer (4 KiB at most): written before the fork */
    if (write(in[1], m->text, m->len) != (ssize_t)m->len) {
        fprintf(stderr, "mqim: bot: cannot pass the message: %s\n", strerror(errno));
    }
    close(in[1]);
    fflush(stdout);
    j->pid = fork();
    if (j->pid == 0) {
        close(out[0]);
        child(b, m, in[0], out[1]);
    }
    close(in[0]);
    close(out[1]);
    if (j->pid < 0) {
        close(out[0]);
        return false;
    }
    setpgid(j->pid, j->pid); /* also here: no race with the kill of a timeout */
    (void)fcntl(out[0], F_SETFL, O_NONBLOCK);
    (void)fcntl(out[0], F_SETFD, FD_CLOEXEC);
    j->used = true;
    j->exited = j->timed_out = j->truncated = false;
    j->out_fd = out[0];
    j->out_len = 0;
    j->started = mqim_posix_clock_ms(NULL);
    j->msg = *m;
    return true;
}

static void reply(bot_t *b, bot_job_t *j)
{
    cli_t *c = b->c;
    uint32_t key;
    mqim_status_t st;
    while (j->out_len > 0u && (j->out[j->out_len - 1u] == '\n' || j->out[j->out_len - 1u] == '\r')) {
        j->out_len--;
    }
    if (WIFEXITED(j->status) && WEXITSTATUS(j->status) != 0) {
        fprintf(stderr, "mqim: bot: %s exited with %d for message %s\n", b->exec_argv[0], WEXITSTATUS(j->status),
                j->msg.id);
    }
    if (j->out_len == 0u) {
        return; /* nothing to say */
    }
    if (j->truncated) {
        fprintf(stderr, "mqim: bot: the reply to %s was cut at %zu bytes (--max-output)\n", j->msg.id, b->max_output);
    }
    st = j->msg.group[0] != '\0' ? mqim_client_send_group(&c->client, mqim_str_from_cstr(j->msg.group),
                                                          (mqim_str_t){ j->out, j->out_len }, &key)
                                 : mqim_client_send(&c->client, mqim_str_from_cstr(j->msg.from),
                                                    (mqim_str_t){ j->out, j->out_len }, &key);
    if (st != MQIM_OK) {
        fprintf(stderr, "mqim: bot: cannot send the reply to %s: %s\n", j->msg.id, mqim_status_str(st));
    }
}

/* Read what the command wrote; reap it; reply once both are done. */
static void job_step(bot_t *b, bot_job_t *j)
{
    char sink[4096];
    while (j->out_fd >= 0) {
        size_t room = b->max_output - j->out_len;
        ssize_t n = read(j->out_fd, room > 0u ? j->out + j->out_len : sink, room > 0u ? room : sizeof(sink));
        if (n > 0) {
            j->out_len += room > 0u ? (size_t)n : 0u;
            j->truncated = j->truncated || room == 0u;
        } else {
            if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                close(j->out_fd);
                j->out_fd = -1;
            }
            break;
        }
    }
    if (!j->exited && waitpid(j->pid, &j->status, WNOHANG) == j->pid) {
        j->exited = true;
    }
    if (!j->timed_out && mqim_posix_clock_ms(NULL) - j->started > b->run_timeout) {
        fprintf(stderr, "mqim: bot: %s did not finish within %u ms for message %s: killed\n", b->exec_argv[0],
                (unsigned)b->run_timeout, j->msg.id);
        (void)kill(-j->pid, SIGKILL); /* the group: whatever it started, too */
        j->timed_out = true;
    }
    if (j->timed_out && j->out_fd >= 0) {
        close(j->out_fd);
        j->out_fd = -1;
    }
    if (j->exited && j->out_fd < 0) {
        if (!j->timed_out) {
            reply(b, j);
        }
        j->used = false;
    }
}

static bool on_bot_message(cli_t *c, const mqim_envelope_t *env, bool e2e)
{
    bot_t *b = c->hook_ctx;
    bot_msg_t *m;
    cli_print_message(c, env, e2e); /* the log of what came */
    if (!env->has_seq || env->has_file || mqim_str_eq_cstr(env->from, c->opt.user) ||
        (env->type.len > 0u && !mqim_str_eq_cstr(env->type, "text"))) {
        return true; /* signals, files, my own messages, group events: nothing to answer */
    }
    if (!allowed(b, env->from)) {
        fprintf(stderr, "mqim: bot: not answering %.*s (not in --allow)\n", (int)env->from.len, env->from.ptr);
        return true;
    }
    if (b->q_len == BOT_QUEUE_MAX) {
        fprintf(stderr, "mqim: bot: %u messages wait already; %.*s's is not answered\n", BOT_QUEUE_MAX,
                (int)env->id.len, env->id.ptr);
        return true;
    }
    m = &b->queue[(b->q_head + b->q_len++) % BOT_QUEUE_MAX];
    copy_str(m->from, sizeof(m->from), env->from);
    copy_str(m->device, sizeof(m->device), env->device);
    copy_str(m->group, sizeof(m->group), env->group);
    copy_str(m->id, sizeof(m->id), env->id);
    m->seq = env->seq;
    m->ts = env->has_ts ? env->ts : 0;
    m->len = env->body.len < MQIM_BODY_MAX ? env->body.len : MQIM_BODY_MAX;
    memcpy(m->text, env->body.ptr, m->len);
    m->text[m->len] = '\0';
    return true;
}

static const cli_hooks_t bot_hooks = { on_bot_message, NULL, NULL };

/* While commands run: sleep until one writes or ends, the broker sends,
 * or 20 ms pass (a timeout is due): no busy loop. (With TLS, a record
 * already decrypted waits at most those 20 ms.) */
static void bot_wait(const bot_t *b)
{
    struct pollfd fds[BOT_JOBS_MAX + 1];
    nfds_t n = 0;
    if (b->c->tcp.fd >= 0) {
        fds[n++] = (struct pollfd){ b->c->tcp.fd, POLLIN, 0 };
    }
    for (unsigned k = 0; k < b->jobs_max; k++) {
        if (b->jobs[k].used && b->jobs[k].out_fd >= 0) {
            fds[n++] = (struct pollfd){ b->jobs[k].out_fd, POLLIN, 0 };
        }
    }
    (void)poll(fds, n, 20);
}

static int bot_step(cli_t *c, void *vctx)
{
    bot_t *b = vctx;
    unsigned running = 0;
    for (unsigned k = 0; k < b->jobs_max; k++) {
        if (b->jobs[k].used) {
            job_step(b, &b->jobs[k]);
        }
        running += b->jobs[k].used;
    }
    for (unsigned k = 0; k < b->jobs_max && b->q_len > 0u; k++) {
        if (!b->jobs[k].used) {
            if (job_start(b, &b->jobs[k], &b->queue[b->q_head])) {
                running++;
            }
            b->q_head = (b->q_head + 1u) % BOT_QUEUE_MAX;
            b->q_len--;
        }
    }
    c->busy = running > 0u;
    if (c->busy) {
        bot_wait(b);
    }
    return bot_stop ? MQIM_EXIT_OK : CLI_MORE;
}

/* [--allow USER...] [--jobs N] [--run-timeout MS] [--max-output BYTES] --exec CMD [ARG...] */
static bool bot_args(bot_t *b, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        bool value = i + 1 < argc;
        if (strcmp(argv[i], "--exec") == 0 && value) {
            b->exec_argv = argv + i + 1; /* main's argv: NULL-terminated */
            return true;
        } else if (strcmp(argv[i], "--allow") == 0 && value) {
            b->allow = argv + i + 1;
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
                b->nallow++;
                i++;
            }
        } else if (strcmp(argv[i], "--jobs") == 0 && value) {
            b->jobs_max = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--run-timeout") == 0 && value) {
            b->run_timeout = (uint32_t)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--max-output") == 0 && value) {
            b->max_output = strtoul(argv[++i], NULL, 10);
        } else {
            return false;
        }
    }
    return false;
}

int cli_cmd_bot(cli_t *c, int argc, char **argv)
{
    bot_t *b = calloc(1, sizeof(*b));
    struct sigaction sa;
    int rc;
    if (b == NULL) {
        return MQIM_EXIT_FAILURE;
    }
    b->c = c;
    b->jobs_max = 4;
    b->run_timeout = 10000;
    b->max_output = 4000;
    if (!bot_args(b, argc, argv) || b->jobs_max == 0u || b->jobs_max > BOT_JOBS_MAX || b->max_output == 0u ||
        b->max_output > MQIM_BODY_MAX || b->run_timeout == 0u) {
        free(b);
        return CLI_BAD_ARGS;
    }
    for (int k = 0; k < b->nallow; k++) {
        if (!cli_name_ok(MQIM_NAME_USER, b->allow[k])) {
            free(b);
            return MQIM_EXIT_USAGE;
        }
    }
    if ((rc = cli_connect(c)) == 0) {
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_stop;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        c->hooks = &bot_hooks;
        c->hook_ctx = b;
        c->timeout_rc = CLI_MORE; /* until interrupted */
        rc = cli_loop(c, bot_step, b);
        for (unsigned k = 0; k < b->jobs_max; k++) {
            if (b->jobs[k].used) {
                (void)kill(-b->jobs[k].pid, SIGKILL);
                (void)waitpid(b->jobs[k].pid, NULL, 0);
                if (b->jobs[k].out_fd >= 0) {
                    close(b->jobs[k].out_fd);
                }
            }
        }
        c->hooks = NULL;
    }
    free(b);
    return rc;
}
