/* cli: what the modules of the `mqim` command share. One cli_t per run,
 * owned by main (heap: the client's buffers are large); every module takes
 * it by pointer, none keeps state of its own (cli_e2e.c aside).
 *
 *   mqim.c          the command table and main
 *   cli_options.c   options: flags, environment, config file; usage and help
 *   cli_run.c       the connection: state, TLS, client, callbacks, the poll loop
 *   cli_output.c    what is printed: for people (local times) or --json
 *   cli_commands.c  send, flush, read, listen, history, presence, groups, chats, keys
 *   cli_transfer.c  send-file, get-file (also /file and /get in a chat)
 *   cli_chat.c      the interactive chat
 *   cli_bot.c       bot: a command run for each message, its output the reply
 */
#ifndef MQIM_CLI_H
#define MQIM_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "mqim/client.h"
#include "mqim/exit_code.h"
#include "mqim/file_transfer.h"
#include "mqim/name.h"
#include "mqim_posix_lmdb.h"
#include "mqim_posix_tcp.h"
#include "mqim_posix_tls.h"

/* Every setting as text, NULL = unset: flags win over the environment,
 * the environment over the config file (cli_options.c). */
typedef struct cli_options {
    const char *host, *port, *user, *password, *password_file, *device, *state_dir, *timeout, *wait_s;
    const char *config, *tls_ca, *tls_server_name, *tls_cert, *tls_key, *tls_psk, *tls_psk_identity;
    const char *e2e, *refuse_changed_keys, *keep_trying, *json;
} cli_options_t;

typedef struct cli cli_t;

/* What chat and bot take over from the default printing: each returns
 * true when it handled the event. Any may be NULL. */
typedef struct cli_hooks {
    bool (*message)(cli_t *c, const mqim_envelope_t *env, bool e2e);
    bool (*ack)(cli_t *c, const mqim_ack_t *ack);
    bool (*response)(cli_t *c, const cJSON *response);
} cli_hooks_t;

/* A file transfer (send-file, get-file, /file, /get). */
typedef struct cli_transfer {
    mqim_file_upload_t upload;
    mqim_file_download_t download;
    bool uploading, downloading, queued, said_resume;
    int fd;
    uint64_t had;                  /* bytes moved as of the last step */
    uint32_t began_ms, drawn_ms;   /* for the rate; the last progress drawn */
    const char *peer;              /* send-file: to whom */
    bool group;
    char out[1024], part[1100];    /* get-file: the file and its .part */
} cli_transfer_t;

/* A step's "not done yet" (otherwise an exit code); a handler's "these
 * arguments do not fit" (main prints the command's usage, exit 2). */
enum { CLI_MORE = -1, CLI_BAD_ARGS = -2 };

/* A command's loop body: called after each poll; CLI_MORE or the exit code. */
typedef int (*cli_step_fn)(cli_t *c, void *ctx);

#define CLI_PRESENCE_MAX 64 /* users whose last state listen remembers */

struct cli {
    cli_options_t opt;
    const char *cmd;
    uint32_t timeout_ms;
    bool json, tty, e2e, refuse_changed, keep_trying;
    bool quiet_first_sync; /* the command's: no history dump on a new device */
    bool quiet_messages;   /* ... and this is one: messages are not printed */
    char password[256], state_dir[1024];
    char conf_text[8192]; /* the config file: options point into it */

    mqim_client_t client;
    mqim_lmdb_store_t *store;
    mqim_posix_tcp_t tcp;
    mqim_posix_tls_t *tls;
    bool started; /* the loop started the client: stop it at the end */

    /* the link (on_link) */
    mqim_link_state_t link;
    mqim_status_t why, said; /* the last failure; the last one printed */
    bool ever_connected, failed_now;

    /* what happened in this run */
    int messages, rejected, responses, e2e_refused, sent;
    uint32_t start;       /* the timeout counts from here (steps may move it) */
    int timeout_rc;       /* MQIM_EXIT_PENDING, MQIM_EXIT_TIMEOUT, or CLI_MORE: no timeout */

    const cli_hooks_t *hooks;
    void *hook_ctx;
    cli_transfer_t *xfer; /* the transfer whose responses on_response routes */
    bool busy;            /* a bot's commands run: its step waits (on them and the socket), not the poll */

    /* listen: the last state printed per user, so a repeat is not shown */
    char presence_user[CLI_PRESENCE_MAX][33];
    char presence_state[CLI_PRESENCE_MAX][12];
    unsigned presence_n;
};

/* A row of the command table (mqim.c). */
typedef struct cli_command {
    const char *name;
    int (*run)(cli_t *c, int argc, char **argv); /* argv: after the name */
    const char *usage;                           /* the arguments */
    const char *help;                            /* what it does */
    bool quiet_first_sync;                       /* send, flush, files: no history dump on a new device */
} cli_command_t;

/* cli_options.c */
int cli_options_parse(cli_options_t *o, int argc, char **argv, int *next);
int cli_options_finish(cli_t *c);
void cli_usage(FILE *f, const cli_command_t *cmds, size_t n);
void cli_command_help(FILE *f, const cli_command_t *cmd);
enum { CLI_OPT_HELP = 100, CLI_OPT_VERSION = 101 };

/* cli_run.c */
int cli_connect(cli_t *c);
int cli_loop(cli_t *c, cli_step_fn step, void *ctx);
void cli_close(cli_t *c);
int cli_link_exit_code(mqim_status_t why);
void cli_say_queued(const cli_t *c);
bool cli_name_ok(mqim_name_kind_t kind, const char *name);

/* cli_output.c */
void cli_time(int64_t ms, char *buf, size_t cap);
void cli_print_message(cli_t *c, const mqim_envelope_t *env, bool e2e);
void cli_print_ack(cli_t *c, const mqim_ack_t *ack);
void cli_print_presence(cli_t *c, mqim_str_t user, mqim_str_t json);
void cli_print_read(cli_t *c, const mqim_envelope_t *env);
void cli_print_response(cli_t *c, const cJSON *o);
void cli_json_line(cJSON *o);
void cli_say_resuming(const cli_t *c, const char *human_fmt, uint64_t bytes);
void cli_print_unshown(const cli_t *c, const mqim_envelope_t *env, const char *code, const char *reason,
                       size_t payload_size);
const char *cli_sender(const mqim_envelope_t *env, char *buf, size_t cap);
const char *cli_history_body(const cJSON *it, char *out, size_t cap);

/* cli_commands.c */
int cli_cmd_send(cli_t *c, int argc, char **argv);
int cli_cmd_flush(cli_t *c, int argc, char **argv);
int cli_cmd_read(cli_t *c, int argc, char **argv);
int cli_cmd_listen(cli_t *c, int argc, char **argv);
int cli_cmd_history(cli_t *c, int argc, char **argv);
int cli_cmd_presence(cli_t *c, int argc, char **argv);
int cli_cmd_group(cli_t *c, int argc, char **argv);
int cli_cmd_groups(cli_t *c, int argc, char **argv);
int cli_cmd_chats(cli_t *c, int argc, char **argv);
int cli_cmd_keys(cli_t *c, int argc, char **argv);
char *cli_history_request(const char *with, bool group, int limit);
char *cli_group_request(const char *sub, int n, char **args);
int cli_request(cli_t *c, char *request);

/* cli_transfer.c */
int cli_cmd_send_file(cli_t *c, int argc, char **argv);
int cli_cmd_get_file(cli_t *c, int argc, char **argv);
int cli_transfer_upload(cli_t *c, cli_transfer_t *t, const char *peer, bool group, const char *path,
                        const char *mime);
int cli_transfer_download(cli_t *c, cli_transfer_t *t, const char *file_id, const char *out);
int cli_transfer_step(cli_t *c, cli_transfer_t *t);
void cli_transfer_close(cli_transfer_t *t);

/* cli_chat.c, cli_bot.c */
int cli_cmd_chat(cli_t *c, int argc, char **argv);
int cli_cmd_bot(cli_t *c, int argc, char **argv);

#endif /* MQIM_CLI_H */
