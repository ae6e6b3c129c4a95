/* `mqim chat` (cli.h): a chat on a terminal, or over a pipe.
 *
 * On a terminal (stdin and stdout), the terminal is put in non-canonical
 * mode so that typing can be seen before Enter (the typing signal) and a
 * message arriving meanwhile is printed above the prompt, which is then
 * drawn again with what was typed. Each of my lines gets its mark updated
 * in place as acks come (cursor up, line rewritten): ✓ sent (the gateway
 * stored it), ✓✓ delivered, ✓✓ read. Messages shown are marked read.
 *
 * On a pipe, each input line is a message; output is appended: incoming
 * messages, `sent|delivered|read ID seq=N` status lines, typing notes. */
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "cli_e2e.h"

#define CHAT_PENDING_MAX 64
#define CHAT_TEXT_MAX 4096

enum { MARK_NONE, MARK_SENT, MARK_DELIVERED, MARK_READ, MARK_REJECTED };

/* One of my lines, until it is read (or scrolls out of the table). */
typedef struct chat_own {
    char id[40];
    char target[40];
    uint64_t seq;
    int mark;
    unsigned row; /* rows printed before it */
    char text[256];
} chat_own_t;

typedef struct chat {
    cli_t *c;
    char target[40]; /* the peer, or "#group" */
    bool interactive, raw, eof, esc;
    struct termios saved;
    char line[CHAT_TEXT_MAX + 8];
    size_t len;
    bool line_started;               /* pipe: a typing signal at a line's start */
    uint32_t typing_sent_at;
    char peer_typing[40];            /* who, until peer_typing_until */
    uint32_t peer_typing_until;
    bool prompt_drawn;
    unsigned rows;                   /* rows printed above the prompt */
    chat_own_t own[CHAT_PENDING_MAX];
    unsigned nown;
    uint64_t shown_upto, read_sent;  /* read receipts for what was shown */
    char read_peer[40];
    cli_transfer_t *xfer;            /* /file, /get */
    bool e2e_requested;
} chat_t;

/* SIGINT/SIGTERM on a terminal: leave the loop so the terminal is restored.
 * A signal handler can only reach a flag at file scope. */
static volatile sig_atomic_t chat_interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    chat_interrupted = 1;
}

static bool is_group(const chat_t *ch)
{
    return ch->target[0] == '#';
}

static const char *target_name(const chat_t *ch)
{
    return is_group(ch) ? ch->target + 1 : ch->target;
}

/* Terminal rows a line of text takes (UTF-8 characters / columns). */
static unsigned rows_of(const char *s)
{
    struct winsize ws;
    unsigned cols = ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80u, chars = 0;
    for (; *s != '\0'; s++) {
        chars += ((unsigned char)*s & 0xC0u) != 0x80u;
    }
    return chars == 0u ? 1u : (chars + cols - 1u) / cols;
}

static void prompt_clear(chat_t *ch)
{
    if (ch->interactive && ch->prompt_drawn) {
        fputs("\r\033[K", stdout);
        ch->prompt_drawn = false;
    }
}

static void prompt_draw(chat_t *ch)
{
    uint32_t now = mqim_posix_clock_ms(NULL);
    if (!ch->interactive) {
        return;
    }
    fputs("\r\033[K", stdout);
    if (ch->peer_typing[0] != '\0' && (int32_t)(ch->peer_typing_until - now) > 0) {
        printf("\033[2m(%s is typing)\033[0m ", ch->peer_typing);
    }
    printf("%s> %.*s", ch->target, (int)ch->len, ch->line);
    fflush(stdout);
    ch->prompt_drawn = true;
}

/* A line above the prompt (counted, for the marks' cursor moves). */
static void chat_say(chat_t *ch, const char *text)
{
    prompt_clear(ch);
    printf("%s\n", text);
    ch->rows += rows_of(text);
    prompt_draw(ch);
    fflush(stdout);
}

static const char *mark_text(int mark)
{
    static const char *const marks[] = { "", " \u2713", " \u2713\u2713", " \u2713\u2713 read", " \u2717" };
    return marks[mark];
}

static void own_render(const chat_own_t *o, char *buf, size_t cap)
{
    snprintf(buf, cap, "me: %s%s", o->text, mark_text(o->mark));
}

/* A mark changed: rewrite that line where it is (a terminal), or append
 * a status line (a pipe: the ack line as `listen` prints it). */
static void own_mark(chat_t *ch, chat_own_t *o, int mark, const mqim_ack_t *ack)
{
    char buf[400];
    struct winsize ws;
    unsigned up = ch->rows - o->row, height = ioctl(1, TIOCGWINSZ, &ws) == 0 ? ws.ws_row : 24u;
    if (mark <= o->mark && mark != MARK_REJECTED) {
        return;
    }
    o->mark = mark;
    if (!ch->interactive) {
        if (ack != NULL) {
            cli_print_ack(ch->c, ack);
        }
        return;
    }
    if (up == 0u || up >= height) {
        return; /* scrolled away */
    }
    own_render(o, buf, sizeof(buf));
    prompt_clear(ch);
    printf("\033[%uA\r%s\033[K\r\033[%uB", up, buf, up);
    prompt_draw(ch);
}

static chat_own_t *own_by_id(chat_t *ch, mqim_str_t id)
{
    for (unsigned k = 0; k < ch->nown; k++) {
        if (mqim_str_eq_cstr(id, ch->own[k].id)) {
            return &ch->own[k];
        }
    }
    return NULL;
}

static void own_add(chat_t *ch, const char *text)
{
    chat_own_t *o;
    char buf[400];
    if (ch->nown == CHAT_PENDING_MAX) { /* the oldest goes: its marks are no longer shown */
        memmove(&ch->own[0], &ch->own[1], sizeof(ch->own[0]) * (CHAT_PENDING_MAX - 1u));
        ch->nown--;
    }
    o = &ch->own[ch->nown++];
    memset(o, 0, sizeof(*o));
    snprintf(o->text, sizeof(o->text), "%s", text);
    snprintf(o->target, sizeof(o->target), "%s", ch->target);
    o->row = ch->rows;
    if (ch->interactive) {
        own_render(o, buf, sizeof(buf));
        chat_say(ch, buf);
    }
}

/* The echo of my message from this device: it tells my line's id. */
static bool own_echo(chat_t *ch, const mqim_envelope_t *env)
{
    for (unsigned k = 0; k < ch->nown; k++) {
        chat_own_t *o = &ch->own[k];
        if (o->id[0] == '\0' && mqim_str_eq_cstr(env->body, o->text)) {
            snprintf(o->id, sizeof(o->id), "%.*s", (int)env->id.len, env->id.ptr);
            o->seq = env->seq;
            return true;
        }
    }
    return false;
}

static bool in_this_chat(const chat_t *ch, const mqim_envelope_t *env)
{
    mqim_str_t me = mqim_str_from_cstr(ch->c->opt.user);
    if (is_group(ch)) {
        return mqim_str_eq_cstr(env->group, target_name(ch));
    }
    return env->group.len == 0u && (mqim_str_eq_cstr(env->from, ch->target) ||
                                    (mqim_str_eq(env->from, me) && mqim_str_eq_cstr(env->to, ch->target)));
}

static bool on_chat_message(cli_t *c, const mqim_envelope_t *env, bool e2e)
{
    chat_t *ch = c->hook_ctx;
    char t[32] = "", buf[CHAT_TEXT_MAX + 200], who[80];
    bool mine = mqim_str_eq_cstr(env->from, c->opt.user);
    if (!env->has_seq) {
        if (mqim_str_eq_cstr(env->type, "typing") && env->from.len < sizeof(ch->peer_typing)) {
            if (!ch->interactive) {
                return false; /* printed as `listen` does */
            }
            snprintf(ch->peer_typing, sizeof(ch->peer_typing), "%.*s", (int)env->from.len, env->from.ptr);
            ch->peer_typing_until = mqim_posix_clock_ms(NULL) + 5000u; /* docs/protocol.md: valid 5 s */
            prompt_draw(ch);
        }
        return true;
    }
    if (mine && mqim_str_eq_cstr(env->device, c->opt.device) && own_echo(ch, env)) {
        return true; /* my line is on the screen already */
    }
    if (!ch->interactive) {
        cli_print_message(c, env, e2e);
    } else {
        if (env->has_ts) {
            cli_time(env->ts, t, sizeof(t));
        }
        cli_sender(env, who, sizeof(who));
        if (env->has_file) {
            snprintf(buf, sizeof(buf), "\033[2m%s\033[0m %s: file %.*s (%llu bytes): /get %.*s", t, mine ? "me" : who,
                     (int)env->file.name.len, env->file.name.ptr, (unsigned long long)env->file.size,
                     (int)env->file.id.len, env->file.id.ptr);
        } else if (in_this_chat(ch, env)) {
            snprintf(buf, sizeof(buf), "\033[2m%s\033[0m %s%s: %.*s", t, e2e ? "(e2e) " : "", mine ? "me" : who,
                     (int)env->body.len, env->body.ptr);
        } else {
            snprintf(buf, sizeof(buf), "\033[2m%s\033[0m %s%s -> %s%.*s: %.*s", t, e2e ? "(e2e) " : "", who,
                     env->group.len > 0u ? "#" : "", env->group.len > 0u ? (int)env->group.len : (int)env->to.len,
                     env->group.len > 0u ? env->group.ptr : env->to.ptr, (int)env->body.len, env->body.ptr);
        }
        chat_say(ch, buf);
    }
    if (!mine && env->group.len == 0u && env->from.len < sizeof(ch->read_peer)) {
        if (!mqim_str_eq_cstr(env->from, ch->read_peer)) {
            ch->read_sent = 0; /* another peer's chat: its own receipt */
        }
        snprintf(ch->read_peer, sizeof(ch->read_peer), "%.*s", (int)env->from.len, env->from.ptr);
        ch->shown_upto = env->seq;
    }
    if (mqim_str_eq_cstr(env->from, ch->peer_typing)) {
        ch->peer_typing[0] = '\0'; /* the message came: no longer typing */
        prompt_draw(ch);
    }
    return true;
}

static bool on_chat_ack(cli_t *c, const mqim_ack_t *ack)
{
    chat_t *ch = c->hook_ctx;
    chat_own_t *o = own_by_id(ch, ack->id);
    static const int marks[] = { MARK_SENT, MARK_DELIVERED, MARK_READ, MARK_REJECTED, MARK_NONE, MARK_NONE };
    char buf[400];
    if (ack->status == MQIM_ACK_REJECTED || ack->status == MQIM_ACK_REFUSED) {
        snprintf(buf, sizeof(buf), "\u2717 %s: %.*s (%.*s)", ack->status == MQIM_ACK_REJECTED ? "rejected" : "refused",
                 (int)ack->code.len, ack->code.ptr, (int)ack->reason.len, ack->reason.ptr);
        if (o != NULL) {
            own_mark(ch, o, MARK_REJECTED, NULL);
        }
        if (ch->interactive) {
            chat_say(ch, buf);
        } else {
            cli_print_ack(c, ack);
        }
        return true;
    }
    if (o == NULL) {
        if (!ch->interactive) {
            cli_print_ack(c, ack); /* a message of an earlier run */
        }
        return true;
    }
    own_mark(ch, o, marks[ack->status], ack);
    if (ack->status == MQIM_ACK_READ) { /* read up to there: the earlier ones too */
        for (chat_own_t *p = ch->own; p < o; p++) {
            if (strcmp(p->target, o->target) == 0 && p->mark >= MARK_SENT) {
                own_mark(ch, p, MARK_READ, NULL);
            }
        }
    }
    return true;
}

/* /history: the answer, as chat lines. */
static bool on_chat_response(cli_t *c, const cJSON *o)
{
    chat_t *ch = c->hook_ctx;
    const cJSON *it;
    char opened[MQIM_BODY_MAX + 64], buf[MQIM_BODY_MAX + 200], t[32];
    if (!ch->interactive) {
        return false;
    }
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "ok"))) {
        snprintf(buf, sizeof(buf), "\u2717 %s (%s)", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "code")),
                 cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "reason")));
        chat_say(ch, buf);
        c->rejected--; /* said here; not the chat's failure */
        return true;
    }
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(o, "messages"))
    {
        const char *from = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "from"));
        cli_time((int64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(it, "ts")), t, sizeof(t));
        snprintf(buf, sizeof(buf), "\033[2m%s\033[0m %s: %s", t,
                 from != NULL && strcmp(from, c->opt.user) == 0 ? "me" : from != NULL ? from : "?",
                 cli_history_body(it, opened, sizeof(opened)));
        chat_say(ch, buf);
    }
    return true;
}

static const cli_hooks_t chat_hooks = { on_chat_message, on_chat_ack, on_chat_response };

static void chat_help(chat_t *ch)
{
    chat_say(ch, "/file PATH      send a file          /get ID [OUT]   fetch a file (OUT: ID)");
    chat_say(ch, "/history [N]    the last N messages  /dm USER        chat with USER");
    chat_say(ch, "/group NAME     chat in a group      /help /quit     this text; end (also Ctrl-D)");
}

static void chat_switch(chat_t *ch, bool group, const char *name)
{
    char buf[120];
    if (ch->c->e2e) {
        chat_say(ch, "\u2717 an --e2e chat stays with its peer: start another mqim chat");
    } else if (cli_name_ok(group ? MQIM_NAME_GROUP : MQIM_NAME_USER, name)) {
        snprintf(ch->target, sizeof(ch->target), "%s%s", group ? "#" : "", name);
        snprintf(buf, sizeof(buf), "now chatting with %s", ch->target);
        chat_say(ch, buf);
    }
}

static void chat_transfer(chat_t *ch, bool upload, const char *arg, const char *out)
{
    cli_t *c = ch->c;
    int rc;
    if (ch->xfer != NULL || arg == NULL) {
        chat_say(ch, ch->xfer != NULL ? "\u2717 one transfer at a time" : "\u2717 /file PATH or /get ID [OUT]");
        return;
    }
    ch->xfer = calloc(1, sizeof(*ch->xfer));
    if (ch->xfer == NULL) {
        return;
    }
    prompt_clear(ch);
    rc = upload ? cli_transfer_upload(c, ch->xfer, target_name(ch), is_group(ch), arg, "")
                : cli_transfer_download(c, ch->xfer, arg, out != NULL ? out : arg);
    prompt_draw(ch);
    if (rc != 0) {
        free(ch->xfer);
        ch->xfer = NULL;
        c->xfer = NULL;
    }
}

/* A typed line starting with '/'. */
static void chat_command(chat_t *ch, char *line)
{
    char *save = NULL, *cmd = strtok_r(line, " ", &save), *arg = strtok_r(NULL, " ", &save);
    char *arg2 = strtok_r(NULL, " ", &save);
    if (strcmp(cmd, "/quit") == 0) {
        ch->eof = true;
    } else if (strcmp(cmd, "/help") == 0) {
        chat_help(ch);
    } else if (strcmp(cmd, "/dm") == 0 || strcmp(cmd, "/group") == 0) {
        if (arg != NULL) {
            chat_switch(ch, cmd[1] == 'g', arg);
        }
    } else if (strcmp(cmd, "/history") == 0) {
        char *req = cli_history_request(target_name(ch), is_group(ch), arg != NULL ? atoi(arg) : 10);
        if (mqim_client_ctl(&ch->c->client, mqim_str_from_cstr(req)) != MQIM_OK) {
            chat_say(ch, "\u2717 not connected: try again");
        }
        cJSON_free(req);
    } else if (strcmp(cmd, "/file") == 0 || strcmp(cmd, "/get") == 0) {
        chat_transfer(ch, cmd[1] == 'f', arg, arg2);
    } else {
        chat_say(ch, "\u2717 unknown command (/help lists them)");
    }
}

static void chat_submit(chat_t *ch)
{
    cli_t *c = ch->c;
    mqim_str_t text = { ch->line, ch->len };
    mqim_status_t st;
    uint32_t key;
    ch->line[ch->len] = '\0';
    if (ch->interactive) {
        ch->line_started = false; /* a pipe's line still gets its signal (chat_typing) */
    }
    if (ch->len == 0u) {
        prompt_draw(ch);
        return;
    }
    if (ch->line[0] == '/') {
        char cmd[CHAT_TEXT_MAX + 8];
        memcpy(cmd, ch->line, ch->len + 1u);
        ch->len = 0;
        chat_command(ch, cmd);
        prompt_draw(ch);
        return;
    }
    st = c->e2e      ? cli_e2e_send(&c->client, target_name(ch), is_group(ch), text, &key)
         : is_group(ch) ? mqim_client_send_group(&c->client, mqim_str_from_cstr(target_name(ch)), text, &key)
                        : mqim_client_send(&c->client, mqim_str_from_cstr(ch->target), text, &key);
    if (st != MQIM_OK) {
        fprintf(stderr, "mqim: cannot send that line: %s\n", mqim_status_str(st));
    } else {
        own_add(ch, ch->line);
    }
    ch->len = 0;
    prompt_draw(ch);
}

/* One byte typed on a terminal: a small line editor (backspace, Ctrl-U,
 * Ctrl-D on an empty line, escape sequences ignored). */
static void chat_key(chat_t *ch, unsigned char k)
{
    if (ch->esc) {
        ch->esc = !((k >= 'A' && k <= 'Z') || (k >= 'a' && k <= 'z') || k == '~');
        return;
    }
    if (k == '\r' || k == '\n') {
        prompt_clear(ch);
        chat_submit(ch);
    } else if (k == 0x7fu || k == 0x08u) {
        while (ch->len > 0u && ((unsigned char)ch->line[--ch->len] & 0xC0u) == 0x80u) {
        }
    } else if (k == 0x15u) {
        ch->len = 0;
    } else if (k == 0x04u && ch->len == 0u) {
        ch->eof = true;
    } else if (k == 0x1bu) {
        ch->esc = true;
    } else if ((k >= 0x20u || k == '\t') && ch->len < CHAT_TEXT_MAX) {
        ch->line[ch->len++] = (char)k;
        ch->line_started = true;
    }
    prompt_draw(ch);
}

/* What was typed so far; on a pipe, whole lines. */
static void chat_input(chat_t *ch)
{
    struct pollfd pfd = { 0, POLLIN, 0 };
    unsigned char buf[512];
    while (!ch->eof && (!ch->c->e2e || cli_e2e_keys_ready()) && poll(&pfd, 1, 0) > 0) {
        ssize_t n = read(0, buf, sizeof(buf));
        if (n <= 0) {
            ch->eof = true;
            break;
        }
        for (ssize_t k = 0; k < n && !ch->eof; k++) {
            if (ch->interactive) {
                chat_key(ch, buf[k]);
            } else if (buf[k] == '\n' || ch->len == CHAT_TEXT_MAX) {
                chat_submit(ch);
            } else {
                ch->line_started = ch->line_started || ch->len == 0u;
                ch->line[ch->len++] = (char)buf[k];
            }
        }
        if (!ch->interactive) {
            pfd.revents = 0;
        }
    }
}

/* The peer sees "typing" for 5 s; at most one signal per 3 s, sent once
 * connected (a signal is not queued). */
static void chat_typing(chat_t *ch)
{
    uint32_t now = mqim_posix_clock_ms(NULL);
    if (ch->line_started && mqim_client_connected(&ch->c->client) &&
        (ch->typing_sent_at == 0u || now - ch->typing_sent_at > 3000u)) {
        (void)mqim_client_signal(&ch->c->client, mqim_str_from_cstr(target_name(ch)), is_group(ch),
                                 MQIM_STR("typing"));
        ch->typing_sent_at = now;
        if (!ch->interactive) {
            ch->line_started = false; /* a pipe: once per line */
        }
    }
    if (ch->peer_typing[0] != '\0' && (int32_t)(ch->peer_typing_until - now) <= 0) {
        ch->peer_typing[0] = '\0';
        prompt_draw(ch);
    }
}

static int chat_step(cli_t *c, void *vctx)
{
    chat_t *ch = vctx;
    if (c->e2e && !ch->e2e_requested && mqim_client_connected(&c->client)) {
        ch->e2e_requested = cli_e2e_request_keys(&c->client, target_name(ch), is_group(ch)) == MQIM_OK;
    }
    if (c->e2e && cli_e2e_keys_failed()) {
        return MQIM_EXIT_REJECTED;
    }
    chat_input(ch);
    chat_typing(ch);
    if (ch->shown_upto > ch->read_sent && mqim_client_connected(&c->client) &&
        mqim_client_mark_read(&c->client, mqim_str_from_cstr(ch->read_peer), ch->shown_upto) == MQIM_OK) {
        ch->read_sent = ch->shown_upto;
    }
    if (ch->xfer != NULL) {
        int rc = cli_transfer_step(c, ch->xfer);
        if (rc != CLI_MORE) {
            if (rc == MQIM_EXIT_OK && ch->xfer->uploading) {
                own_add(ch, ch->xfer->upload.name); /* its message: the file's name as the body */
            }
            cli_transfer_close(ch->xfer);
            free(ch->xfer);
            ch->xfer = NULL;
            c->xfer = NULL;
            prompt_draw(ch);
        }
    }
    if (chat_interrupted) {
        ch->eof = true;
    }
    if (!ch->eof || ch->xfer != NULL) {
        c->start = mqim_posix_clock_ms(NULL); /* until the end of input, no timeout */
        return CLI_MORE;
    }
    /* the end of input: the timeout now bounds the drain */
    return mqim_client_connected(&c->client) && mqim_lmdb_outbox_count(c->store) == 0u ? MQIM_EXIT_OK : CLI_MORE;
}

static void terminal_raw(chat_t *ch)
{
    struct termios t;
    struct sigaction sa;
    if (tcgetattr(0, &ch->saved) != 0) {
        return;
    }
    t = ch->saved;
    t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    ch->raw = tcsetattr(0, TCSANOW, &t) == 0;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_interrupt;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int cli_cmd_chat(cli_t *c, int argc, char **argv)
{
    chat_t *ch;
    bool group = argc == 2 && strcmp(argv[0], "--group") == 0;
    int rc;
    if (argc != 1 && !group) {
        return CLI_BAD_ARGS;
    }
    if (!cli_name_ok(group ? MQIM_NAME_GROUP : MQIM_NAME_USER, argv[group ? 1 : 0])) {
        return MQIM_EXIT_USAGE;
    }
    if ((rc = cli_connect(c)) != 0) {
        return rc;
    }
    ch = calloc(1, sizeof(*ch));
    if (ch == NULL) {
        return MQIM_EXIT_FAILURE;
    }
    ch->c = c;
    snprintf(ch->target, sizeof(ch->target), "%s%s", group ? "#" : "", argv[group ? 1 : 0]);
    ch->interactive = isatty(0) && isatty(1) && !c->json;
    c->hooks = &chat_hooks;
    c->hook_ctx = ch;
    c->timeout_rc = MQIM_EXIT_PENDING;
    if (ch->interactive) {
        terminal_raw(ch);
        chat_say(ch, "type a message and Enter; /help for commands; Ctrl-D or /quit to end");
    }
    rc = cli_loop(c, chat_step, ch);
    prompt_clear(ch);
    if (ch->raw) {
        tcsetattr(0, TCSANOW, &ch->saved);
    }
    if (ch->xfer != NULL) {
        cli_transfer_close(ch->xfer);
        free(ch->xfer);
        c->xfer = NULL;
    }
    c->hooks = NULL;
    free(ch);
    return rc;
}
