/* mqim: the command-line device for Linux, built on libmqim-device (its own
 * MQTT client, not Paho), with a durable LMDB outbox and state.
 *
 * This file is the command table and main; the modules are listed in
 * cli.h. `mqim --help` and mqim(1) (docs/man/mqim.1) describe every
 * command, option and exit status (common/include/mqim/exit_code.h). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mqim/version.h"

static const cli_command_t commands[] = {
    { "send", cli_cmd_send, "PEER TEXT | send --group GROUP TEXT",
      "Queue TEXT for PEER (or the group) and wait until the gateway stored it (its echo):\n"
      "prints `sent ID seq=N`. Exit 3 when not acknowledged within --timeout: the message\n"
      "stays in the outbox and goes out with the next run. With --e2e it is encrypted.",
      true },
    { "flush", cli_cmd_flush, "", "Send what the outbox holds and wait until it is acknowledged.", true },
    { "listen", cli_cmd_listen, "[N]",
      "Print messages, acks and presence as they come (delivered receipts go out by\n"
      "themselves); with N, stop after N messages (exit 6 if they do not come in time).",
      false },
    { "read", cli_cmd_read, "PEER [SEQ]",
      "Mark everything from PEER up to SEQ read (without SEQ: everything this device showed).", false },
    { "chat", cli_cmd_chat, "PEER | chat --group GROUP",
      "Chat: each line typed is a message; messages arrive as they come, with their\n"
      "time; your lines get a mark: \u2713 sent, \u2713\u2713 delivered, read. Typing is shown both\n"
      "ways; direct messages shown are marked read. Commands: /file PATH, /get ID [OUT],\n"
      "/history [N], /dm USER, /group NAME, /help, /quit. On a pipe: one line per\n"
      "message in, status lines appended; EOF ends after what was typed is acknowledged.",
      false },
    { "history", cli_cmd_history, "PEER [N] | history --group GROUP [N]",
      "The last N (20) messages with PEER or in the group, with their local times.", false },
    { "presence", cli_cmd_presence, "USER...", "Who is online, or when they were last seen.", false },
    { "chats", cli_cmd_chats, "", "My conversations, most recent first: unread count, last message and its time.",
      false },
    { "groups", cli_cmd_groups, "", "The groups I am in.", false },
    { "group", cli_cmd_group,
      "create G [USER...] | add G USER... | remove G USER... | leave G | info G |\n"
      "        rename G TITLE | status SEQ | set G retain_count|retain_days N|none|default",
      "Manage a group (docs/protocol.md, \"Groups\"); status SEQ: who got and read my\n"
      "group message SEQ.",
      false },
    { "send-file", cli_cmd_send_file, "PEER PATH [MIME] | send-file --group GROUP PATH [MIME]",
      "Upload a file in chunks and announce it; run again after an interruption to\n"
      "resume. Progress: percent, rate and time left on a terminal, `progress N/SIZE`\n"
      "lines on a pipe.",
      true },
    { "get-file", cli_cmd_get_file, "FILE_ID OUT",
      "Fetch a file (its id is in the message `listen` prints) into OUT, through OUT.part;\n"
      "resumes; the SHA-256 is checked.",
      true },
    { "keys", cli_cmd_keys, "| keys USER | keys trust USER DEVICE",
      "This device's key fingerprint and the keys it trusts; USER's device keys (trusted,\n"
      "new or CHANGED); trust a changed key after comparing fingerprints (docs/e2e.md).",
      false },
    { "bot", cli_cmd_bot, "[--allow USER...] [--jobs N] [--run-timeout MS] [--max-output BYTES] --exec CMD [ARG...]",
      "Answer each incoming message (direct or in a group) with the output of CMD, run\n"
      "without a shell (execvp): the text on its stdin; MQIM_FROM, MQIM_DEVICE_FROM,\n"
      "MQIM_CHAT, MQIM_GROUP, MQIM_ID, MQIM_SEQ, MQIM_TS and MQIM_USER in its\n"
      "environment. --jobs: at most N commands at once (4); --run-timeout: a command\n"
      "still running after MS (10000) is killed with its process group; --max-output:\n"
      "the reply is cut at BYTES (4000); --allow: answer only these users. Runs until\n"
      "interrupted.",
      false },
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const cli_command_t *find_command(const char *name)
{
    for (size_t k = 0; k < N_COMMANDS; k++) {
        if (strcmp(commands[k].name, name) == 0) {
            return &commands[k];
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    cli_t *c = calloc(1, sizeof(*c)); /* the client's buffers are large */
    const cli_command_t *cmd;
    int next = 0, rc;
    if (c == NULL) {
        return MQIM_EXIT_FAILURE;
    }
    rc = cli_options_parse(&c->opt, argc, argv, &next);
    if (rc == 0 && next >= argc) {
        cli_usage(stderr, commands, N_COMMANDS);
        rc = MQIM_EXIT_USAGE;
    } else if (rc == CLI_OPT_HELP || rc == CLI_OPT_VERSION) {
        if (rc == CLI_OPT_HELP) {
            cli_usage(stdout, commands, N_COMMANDS);
        } else {
            printf("mqim %s\n", MQIM_VERSION_STRING);
        }
        rc = MQIM_EXIT_OK;
    } else if (rc == 0 && (cmd = find_command(argv[next])) == NULL) {
        fprintf(stderr, "mqim: unknown command '%s' (mqim --help lists them)\n", argv[next]);
        rc = MQIM_EXIT_USAGE;
    } else if (rc == 0 && next + 1 < argc && strcmp(argv[next + 1], "--help") == 0) {
        cli_command_help(stdout, cmd);
    } else if (rc == 0 && (rc = cli_options_finish(c)) == 0) {
        c->cmd = cmd->name;
        c->quiet_first_sync = cmd->quiet_first_sync;
        rc = cmd->run(c, argc - next - 1, argv + next + 1);
        if (rc == CLI_BAD_ARGS) {
            fprintf(stderr, "mqim: wrong arguments for %s; usage: mqim [OPTIONS] %s %s\n", cmd->name, cmd->name,
                    cmd->usage);
            rc = MQIM_EXIT_USAGE;
        }
        cli_close(c);
    }
    free(c);
    return rc;
}
