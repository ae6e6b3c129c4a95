/* mqim: the command-line device for Linux, built on libmqim-device (its own
 * MQTT client, not Paho), with a durable LMDB outbox and state.
 *
 *   mqim [options] send PEER TEXT     queue TEXT for PEER and wait until it is stored (its echo; prints `sent`)
 *   mqim [options] listen [N]         print messages, acks and presence (N: stop after N messages)
 *   mqim [options] read PEER SEQ      mark everything from PEER up to SEQ read
 *   mqim [options] flush              send what the outbox holds, wait until acked
 *   mqim [options] send --group G TEXT   the same to a group
 *   mqim [options] history PEER [N]   the last N (20) messages with PEER
 *   mqim [options] presence USER...   who is online, and since when
 *   mqim [options] chat PEER          interactive: each line typed goes to PEER;
 *                                     messages and acks print as they come; EOF ends
 *                                     (after what was typed is acked, or --timeout)
 *   mqim [options] keys               this device's key fingerprint and the keys it trusts
 *   mqim [options] keys USER          USER's device keys from the gateway: trusted, new or CHANGED
 *   mqim [options] keys trust USER DEVICE   trust that device's current key (after comparing)
 *
 * End-to-end encryption (docs/e2e.md): --e2e (MQIM_E2E=1, config "e2e yes")
 * encrypts what send and chat send; encrypted messages that arrive are
 * opened whatever the flag; --refuse-changed-keys (config
 * "refuse-changed-keys yes") refuses a device key that changed instead of
 * warning and trusting it. Every run publishes this device's key.
 *
 * Settings come from flags, then the environment, then a config file
 * (--config FILE, default $XDG_CONFIG_HOME/mqim/config or ~/.config/mqim/config):
 * one "key value" per line, '#' comments, keys as the flags without "--"
 * (host, port, user, password-file, device, tls-ca, ...).
 * Options (or environment): --host H (MQIM_HOST, 127.0.0.1), --port P
 * (MQIM_PORT, 1883), --user U (MQIM_USER), --password P (MQIM_PASSWORD),
 * --password-file F (MQIM_PASSWORD_FILE), --device D (MQIM_DEVICE, "cli"),
 * --state-dir DIR (default $XDG_STATE_HOME/mqim/USER.DEVICE or
 * ~/.local/state/mqim/USER.DEVICE), --timeout MS (10000); TLS: --tls-ca FILE
 * (MQIM_TLS_CA) verifies the broker against that CA and its host name
 * (--tls-server-name to verify another name), --tls-cert/--tls-key for a
 * client certificate; --tls-psk HEX [--tls-psk-identity ID] (MQIM_TLS_PSK) for
 * a pre-shared key instead of certificates (the identity defaults to the user).
 *
 * --keep-trying (MQIM_KEEP_TRYING=1, config "keep-trying yes") keeps
 * retrying after a refused login or a certificate that does not verify
 * (until --timeout) instead of giving up at once.
 *
 * Exit codes (README.md, docs/device.md): 0 done; 1 usage or setup error;
 * 3 the message is queued but not acked yet (it stays in the outbox and
 * goes out with the next run); 4 the gateway rejected it (or a request
 * failed); 5 the broker refused the login: not authorised (CONNACK 5, as
 * mosquitto_pub); 6 listen, a request or a transfer timed out; 7 bad user
 * name or password (CONNACK 4); 8 identifier rejected (CONNACK 2); 9 broker
 * unavailable (CONNACK 3); 10 unacceptable protocol version (CONNACK 1, or a
 * code MQTT 3.1.1 does not define); 11 the broker was unreachable (refused,
 * timed out, the name does not resolve, no CONNACK) for the whole run;
 * 12 TLS: the broker's certificate failed verification; 13 TLS: the
 * handshake failed. The reason is printed on stderr as soon as it is known.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <unistd.h>

#include "cli_e2e.h"
#include "mqim/client.h"
#include "mqim/file_transfer.h"
#include "mqim/name.h"
#include "mqim_posix_lmdb.h"
#include "mqim_posix_tcp.h"
#include "mqim_posix_tls.h"

static const char *cli_user; /* the --user: our own echoes are not receipted */

typedef struct app {
    int messages, sent, rejected, responses, e2e_refused;
    mqim_client_t *client;
    /* the connection (on_link) */
    const mqim_posix_tcp_t *tcp;
    const mqim_posix_tls_t *tls;
    mqim_link_state_t link;
    mqim_status_t why, said; /* the last failure; the last one printed */
    bool ever_connected, failed_now;
    mqim_file_upload_t *upload;     /* send-file */
    mqim_file_download_t *download; /* get-file */
    const char *waiting_id; /* send: the id of our message */
    char id[40];
} app_t;

/* "alice" or "alice/phone": which of the sender's devices it came from. */
static const char *sender(const mqim_envelope_t *env)
{
    static char buf[MQIM_USER_NAME_MAX + MQIM_DEVICE_NAME_MAX + 2];
    snprintf(buf, sizeof(buf), "%.*s%s%.*s", (int)env->from.len, env->from.ptr, env->device.len > 0u ? "/" : "",
             (int)env->device.len, env->device.ptr);
    return buf;
}

static void on_message(void *ctx, const mqim_envelope_t *env)
{
    app_t *a = ctx;
    mqim_envelope_t plain;
    if (env->enc.len > 0u) {
        /* Only a message that opens is shown as one (docs/e2e.md). */
        mqim_status_t st = cli_e2e_open(env, true, &plain);
        if (st != MQIM_OK) {
            a->e2e_refused++;
            printf("[%llu] e2e refused from %s: %s (%s)\n", (unsigned long long)env->seq, sender(env),
                   mqim_status_name(st), mqim_status_str(st));
            fflush(stdout);
            if (env->has_seq && !mqim_str_eq(env->from, mqim_str_from_cstr(cli_user))) {
                (void)mqim_client_refuse(a->client, env->seq, mqim_str_from_cstr(mqim_status_name(st))); /* not `delivered`: the sender learns why */
            }
            return;
        }
        printf("(e2e) ");
        env = &plain;
    }
    a->messages++;
    if (env->has_seq && env->has_file) {
        printf("[%llu] %s -> %s%.*s: file %.*s (%llu bytes, %.*s) id=%.*s%s%.*s\n", (unsigned long long)env->seq,
               sender(env), env->group.len > 0u ? "#" : "",
               env->group.len > 0u ? (int)env->group.len : (int)env->to.len,
               env->group.len > 0u ? env->group.ptr : env->to.ptr, (int)env->file.name.len, env->file.name.ptr,
               (unsigned long long)env->file.size, (int)env->file.mime.len, env->file.mime.ptr,
               (int)env->file.id.len, env->file.id.ptr,
               mqim_str_eq(env->body, env->file.name) ? "" : " ",
               mqim_str_eq(env->body, env->file.name) ? 0 : (int)env->body.len, env->body.ptr);
    } else if (env->has_seq && env->group.len > 0u) {
        /* group messages: "#group" as the target; membership events show their type */
        bool event = env->type.len > 6u && memcmp(env->type.ptr, "group.", 6) == 0;
        printf("[%llu] %s -> #%.*s: %s%.*s%s%.*s\n", (unsigned long long)env->seq, sender(env), (int)env->group.len, env->group.ptr, event ? "(" : "",
               event ? (int)env->type.len : 0, env->type.ptr, event ? ") " : "", (int)env->body.len,
               env->body.ptr);
    } else if (env->has_seq) {
        printf("[%llu] %s -> %.*s: %.*s\n", (unsigned long long)env->seq, sender(env), (int)env->to.len,
               env->to.ptr, (int)env->body.len, env->body.ptr);
    } else if (mqim_str_eq_cstr(env->type, "typing")) {
        a->messages--; /* a signal, not a message */
        printf("%.*s is typing...\n", (int)env->from.len, env->from.ptr);
    } else {
        printf("(%.*s) %.*s: %.*s\n", (int)env->type.len, env->type.ptr, (int)env->from.len,
               env->from.ptr, (int)env->body.len, env->body.ptr);
    }
    fflush(stdout);
}

/* Only with a receive buffer smaller than the message (not with the CLI's
 * defaults for a normal body); said so instead of a silent skip. */
static void on_oversized(void *ctx, const mqim_envelope_t *env, size_t payload_size)
{
    app_t *a = ctx;
    a->messages++;
    printf("[%llu] %.*s -> %.*s: (a %zu-byte message, too large for this device)\n",
           (unsigned long long)env->seq, (int)env->from.len, env->from.ptr, (int)env->to.len,
           env->to.ptr, payload_size);
    fflush(stdout);
}

static void on_ack(void *ctx, const mqim_ack_t *ack)
{
    app_t *a = ctx;
    static const char *const names[] = { "sent", "delivered", "read", "rejected", "ack", "refused" };
    if (ack->status == MQIM_ACK_REJECTED && mqim_str_eq_cstr(ack->re, "key")) {
        /* the key every run publishes, refused (too many devices, rate
         * limited): not what the command was about, so only a warning */
        fprintf(stderr, "mqim: this device's E2E key was not published: %.*s (%.*s)\n", (int)ack->code.len,
                ack->code.ptr, (int)ack->reason.len, ack->reason.ptr);
        return;
    }
    if (ack->status == MQIM_ACK_REFUSED) {
        /* a device of the recipient got it but could not show it */
        printf("refused %.*s seq=%llu by=%.*s: %.*s\n", (int)ack->id.len, ack->id.ptr, (unsigned long long)ack->seq,
               (int)ack->by.len, ack->by.ptr, (int)ack->code.len, ack->code.ptr);
    } else if (ack->status == MQIM_ACK_REJECTED) {
        printf("%s %.*s: %.*s (%.*s)\n", names[ack->status], (int)ack->id.len, ack->id.ptr,
               (int)ack->code.len, ack->code.ptr, (int)ack->reason.len, ack->reason.ptr);
    } else {
        printf("%s %.*s seq=%llu%s%.*s\n", names[ack->status], (int)ack->id.len, ack->id.ptr,
               (unsigned long long)ack->seq, ack->by.len > 0u ? " by=" : "", (int)ack->by.len,
               ack->by.ptr);
    }
    fflush(stdout);
    if (ack->status == MQIM_ACK_SENT) {
        a->sent++;
    } else if (ack->status == MQIM_ACK_REJECTED) {
        a->rejected++;
    }
}

/* The exit code of a connection failure (the table in the header). */
static int link_exit_code(mqim_status_t why)
{
    switch (why) {
    case MQIM_CONNACK_NOT_AUTHORIZED:
        return 5;
    case MQIM_CONNACK_BAD_CREDENTIALS:
        return 7;
    case MQIM_CONNACK_IDENTIFIER_REJECTED:
        return 8;
    case MQIM_CONNACK_SERVER_UNAVAILABLE:
        return 9;
    case MQIM_CONNACK_PROTOCOL_VERSION:
    case MQIM_CONNACK_REFUSED:
        return 10;
    case MQIM_TLS_VERIFY_FAILED:
        return 12;
    case MQIM_TLS_HANDSHAKE_FAILED:
        return 13;
    default:
        return 11; /* unreachable, no CONNACK, the link broke before it */
    }
}

/* Failures that retrying cannot cure: the configuration is wrong. */
static bool link_fatal(mqim_status_t why)
{
    return why == MQIM_CONNACK_NOT_AUTHORIZED || why == MQIM_CONNACK_BAD_CREDENTIALS ||
           why == MQIM_CONNACK_IDENTIFIER_REJECTED || why == MQIM_CONNACK_PROTOCOL_VERSION ||
           why == MQIM_CONNACK_REFUSED || why == MQIM_TLS_VERIFY_FAILED;
}

/* Each new reason once, at once, on stderr. */
static void on_link(void *ctx, mqim_link_state_t state, mqim_status_t why)
{
    app_t *a = ctx;
    char detail[256];
    a->link = state;
    if (state == MQIM_LINK_CONNECTED) {
        a->ever_connected = true;
        a->said = MQIM_OK;
    }
    if (state != MQIM_LINK_DISCONNECTED) {
        return;
    }
    a->why = why;
    a->failed_now = true;
    if (why == a->said) {
        return;
    }
    a->said = why;
    if (why == MQIM_BROKER_UNREACHABLE) {
        mqim_posix_tcp_describe(a->tcp, detail, sizeof(detail));
        fprintf(stderr, "mqim: cannot reach the broker at %s:%u: %s\n", a->tcp->host, (unsigned)a->tcp->port,
                detail);
    } else if (why == MQIM_TLS_VERIFY_FAILED || why == MQIM_TLS_HANDSHAKE_FAILED) {
        mqim_posix_tls_describe(a->tls, detail, sizeof(detail));
        fprintf(stderr, "mqim: %s: %s\n", mqim_status_str(why), detail);
    } else if (link_fatal(why) || why == MQIM_CONNACK_SERVER_UNAVAILABLE) {
        fprintf(stderr, "mqim: %s.\n", mqim_status_str(why)); /* mosquitto_pub's words */
    } else {
        fprintf(stderr, "mqim: connection to %s:%u lost: %s\n", a->tcp->host, (unsigned)a->tcp->port,
                mqim_status_str(why));
    }
}

/* What became of the queued messages when the run ends without a link. */
static void say_queued(size_t n, const char *dir, mqim_status_t why)
{
    const char *once = why == MQIM_TLS_VERIFY_FAILED || why == MQIM_TLS_HANDSHAKE_FAILED ? "TLS works"
                       : link_exit_code(why) == 11                                     ? "the broker is reachable"
                                                                                       : "the login works";
    if (n > 0u) {
        fprintf(stderr, "mqim: %zu message%s stay%s queued in the outbox (%s); `mqim flush` sends %s once %s\n", n,
                n == 1u ? "" : "s", n == 1u ? "s" : "", dir, n == 1u ? "it" : "them", once);
    }
}

/* Read on one of my devices: the chat's unread is cleared everywhere. */
static void on_read(void *ctx, const mqim_envelope_t *env)
{
    (void)ctx;
    printf("read %s%.*s upto=%llu\n", env->group.len > 0u ? "#" : "",
           env->group.len > 0u ? (int)env->group.len : (int)env->to.len,
           env->group.len > 0u ? env->group.ptr : env->to.ptr, (unsigned long long)env->upto);
    fflush(stdout);
}

/* The gateway's store began a new epoch (restored, or a copy): say so once. */
static void on_store_epoch(void *ctx, uint64_t epoch, uint64_t from_seq)
{
    (void)ctx;
    fprintf(stderr, "mqim: the gateway's store has a new epoch %llu (restored or a copy): "
            "re-syncing after seq %llu\n", (unsigned long long)epoch, (unsigned long long)from_seq);
}

/* listen: presence changes, one line each. */
static void on_presence(void *ctx, mqim_str_t user, mqim_str_t json)
{
    cJSON *o = cJSON_ParseWithLength(json.ptr, json.len);
    (void)ctx;
    if (o != NULL) {
        printf("presence %.*s %s\n", (int)user.len, user.ptr,
               cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "state")));
        fflush(stdout);
        cJSON_Delete(o);
    }
}

/* An encrypted history entry, opened (no replay check: history repeats
 * old messages by design), or why not. */
static const char *history_open(const cJSON *it, char *out, size_t cap)
{
    mqim_envelope_t env, plain;
    char *enc = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(it, "enc"));
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "type"));
    mqim_status_t st;
    memset(&env, 0, sizeof(env));
    env.id = mqim_str_from_cstr(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "id")));
    env.from = mqim_str_from_cstr(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "from")));
    env.to = mqim_str_from_cstr(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "to")));
    env.group = mqim_str_from_cstr(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "group")));
    env.type = mqim_str_from_cstr(type != NULL ? type : "text");
    env.enc = mqim_str_from_cstr(enc);
    st = enc != NULL ? cli_e2e_open(&env, false, &plain) : MQIM_E2E_MALFORMED;
    if (st == MQIM_OK) {
        snprintf(out, cap, "(e2e) %.*s", (int)plain.body.len, plain.body.ptr);
    } else {
        snprintf(out, cap, "(e2e, cannot open: %s)", mqim_status_name(st));
    }
    cJSON_free(enc);
    return out;
}

/* Responses to history/presence requests, printed for people. */
static void on_response(void *ctx, mqim_str_t json)
{
    app_t *a = ctx;
    cJSON *o;
    const cJSON *it;
    if (mqim_file_upload_on_response(a->upload, json) || mqim_file_download_on_response(a->download, json)) {
        return; /* a transfer's own */
    }
    if (cli_e2e_on_response(json)) {
        if (cli_e2e_keys_failed()) {
            a->rejected++;
        }
        return; /* keys for sealing or `mqim keys`: the main loop goes on */
    }
    o = cJSON_ParseWithLength(json.ptr, json.len);
    a->responses++;
    if (o == NULL) {
        return;
    }
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "ok"))) {
        printf("error: %s (%s)\n", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "code")),
               cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "reason")));
        a->rejected++;
    }
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(o, "messages"))
    {
        const char *group = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "group"));
        const char *body = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "body"));
        char opened[MQIM_BODY_MAX + 64];
        if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(it, "enc"))) {
            body = history_open(it, opened, sizeof(opened));
        }
        printf("[%.0f] %s -> %s%s: %s\n", cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(it, "seq")),
               cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "from")), group != NULL ? "#" : "",
               group != NULL ? group : cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "to")),
               body != NULL ? body : "");
    }
    /* group_info and group changes: the members; msg_status: their status */
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(o, "members"))
    {
        const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "role"));
        const char *status = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "status"));
        printf("member %s %s\n", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "user")),
               role != NULL ? role : status != NULL ? status : "");
    }
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(o, "groups"))
    {
        printf("group %s \"%s\" %s %.0f members\n",
               cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "group")),
               cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "title")),
               cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "role")),
               cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(it, "members")));
    }
    /* chats: one line per conversation, most recent first */
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(o, "chats"))
    {
        const char *group = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "group"));
        const char *presence = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "presence"));
        const cJSON *last = cJSON_GetObjectItemCaseSensitive(it, "last");
        const char *body = cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(last, "enc"))
                               ? "(e2e)"
                               : cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(last, "body"));
        printf("chat %s%s unread=%.0f%s%s last=[%.0f] %s\n", group != NULL ? "#" : "",
               group != NULL ? group : cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "chat")),
               cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(it, "unread")), presence != NULL ? " " : "",
               presence != NULL ? presence : "", cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(it, "last_seq")),
               body != NULL ? body : "");
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "pruned"))) {
        printf("(older messages were removed by retention; the oldest kept is seq %.0f)\n",
               cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "first_seq")));
    }
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(o, "users"))
    {
        const cJSON *seen = cJSON_GetObjectItemCaseSensitive(it, "last_seen");
        printf("%s %s", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "user")),
               cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "state")));
        if (cJSON_IsNumber(seen)) {
            printf(" last_seen=%.0f", seen->valuedouble);
        }
        printf("\n");
    }
    fflush(stdout);
    cJSON_Delete(o);
}

/* The config file: key/value pairs kept for the process's life. */
static char conf_text[8192];
static const char *conf_keys[64], *conf_vals[64];
static int conf_n;

static int load_config(const char *path, bool required)
{
    FILE *f = fopen(path, "r");
    size_t n;
    char *line, *save = NULL;
    if (f == NULL) {
        if (required) {
            fprintf(stderr, "mqim: cannot read %s: %s\n", path, strerror(errno));
        }
        return required ? -1 : 0;
    }
    n = fread(conf_text, 1, sizeof(conf_text) - 1u, f);
    fclose(f);
    conf_text[n] = '\0';
    for (line = strtok_r(conf_text, "\n", &save); line != NULL && conf_n < 64; line = strtok_r(NULL, "\n", &save)) {
        char *key = line + strspn(line, " \t"), *val;
        if (*key == '#' || *key == '\0') {
            continue;
        }
        val = key + strcspn(key, " \t");
        if (*val != '\0') {
            *val++ = '\0';
        }
        val += strspn(val, " \t");
        val[strcspn(val, "\r")] = '\0';
        conf_keys[conf_n] = key;
        conf_vals[conf_n++] = val;
    }
    return 0;
}

/* Fill a setting the flags and the environment left unset. */
static const char *from_config(const char *current, const char *key)
{
    for (int k = 0; current == NULL && k < conf_n; k++) {
        if (strcmp(conf_keys[k], key) == 0) {
            return conf_vals[k];
        }
    }
    return current;
}

static const char *opt(int *i, int argc, char **argv, const char *name, const char *current)
{
    if (strcmp(argv[*i], name) == 0 && *i + 1 < argc) {
        *i += 1;
        return argv[*i];
    }
    return current;
}

static int mkdirs(const char *path)
{
    char tmp[1024];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
                return -1;
            }
            *p = '/';
        }
    }
    return mkdir(tmp, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

/* `mqim group SUB ...` as a control request (docs/protocol.md, "Groups");
 * NULL when the arguments do not fit. The caller frees the text. */
static char *group_request(const char *sub, int n, char **args)
{
    static const struct { const char *sub, *op; int min, max; const char *list; } ops[] = {
        { "create", "group_create", 1, 257, "members" }, { "add", "group_add", 2, 257, "users" },
        { "remove", "group_remove", 2, 257, "users" },   { "leave", "group_leave", 1, 1, NULL },
        { "rename", "group_rename", 2, 2, NULL },        { "info", "group_info", 1, 1, NULL },
        { "status", "msg_status", 1, 1, NULL },          { "list", "groups", 0, 0, NULL },
        { "set", "group_set", 3, 3, NULL },              { "chats", "chats", 0, 0, NULL },
    };
    for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
        cJSON *req;
        char *text;
        if (strcmp(sub, ops[k].sub) != 0 || n < ops[k].min || n > ops[k].max) {
            continue;
        }
        req = cJSON_CreateObject();
        cJSON_AddStringToObject(req, "op", ops[k].op);
        if (strcmp(sub, "status") == 0) {
            cJSON_AddNumberToObject(req, "seq", strtod(args[0], NULL));
        } else if (n > 0) {
            cJSON_AddStringToObject(req, "group", args[0]);
        }
        if (strcmp(sub, "rename") == 0) {
            cJSON_AddStringToObject(req, "title", args[1]);
        }
        if (strcmp(sub, "set") == 0) { /* group set G retain_count|retain_days N|default */
            if (strcmp(args[1], "retain_count") != 0 && strcmp(args[1], "retain_days") != 0) {
                cJSON_Delete(req);
                return NULL;
            }
            if (strcmp(args[2], "default") == 0) {
                cJSON_AddNullToObject(req, args[1]);
            } else if (strcmp(args[2], "none") == 0) {
                cJSON_AddNumberToObject(req, args[1], 0); /* no limit */
            } else {
                cJSON_AddNumberToObject(req, args[1], strtod(args[2], NULL));
            }
        }
        if (ops[k].list != NULL) {
            cJSON *arr = cJSON_AddArrayToObject(req, ops[k].list);
            for (int a = 1; a < n; a++) {
                cJSON_AddItemToArray(arr, cJSON_CreateString(args[a]));
            }
        }
        cJSON_AddStringToObject(req, "req", "cli");
        text = cJSON_PrintUnformatted(req);
        cJSON_Delete(req);
        return text;
    }
    return NULL;
}

static mqim_client_t client; /* large buffers: static */
static mqim_file_upload_t upload;
static mqim_file_download_t download;

/* Files for send-file and get-file: read and write at an offset. */
static size_t file_read(void *ctx, uint64_t offset, uint8_t *buf, size_t len)
{
    ssize_t n = pread(*(int *)ctx, buf, len, (off_t)offset);
    return n < 0 ? 0u : (size_t)n;
}

static int file_write(void *ctx, uint64_t offset, const uint8_t *data, size_t len)
{
    ssize_t n = pwrite(*(int *)ctx, data, len, (off_t)offset);
    return n == (ssize_t)len ? 0 : -1;
}

/* A line per 256 KiB moved, so a person (or a test) sees a transfer advance. */
static void progress(uint64_t before, uint64_t now, uint64_t size)
{
    if (now / (256u * 1024u) != before / (256u * 1024u) && now < size) {
        printf("progress %llu/%llu\n", (unsigned long long)now, (unsigned long long)size);
        fflush(stdout);
    }
}

int main(int argc, char **argv)
{
    const char *host = getenv("MQIM_HOST"), *port = getenv("MQIM_PORT"), *user = getenv("MQIM_USER");
    const char *password = getenv("MQIM_PASSWORD"), *pwfile = getenv("MQIM_PASSWORD_FILE");
    const char *device = getenv("MQIM_DEVICE"), *state_dir = NULL, *timeout_s = NULL;
    const char *config = NULL;
    const char *e2e_opt = getenv("MQIM_E2E"), *refuse_opt = NULL, *keep_opt = getenv("MQIM_KEEP_TRYING");
    bool keep_trying;
    bool e2e_on, refuse_changed, e2e_requested = false, e2e_sent = false;
    const char *e2e_peer = NULL; /* send/chat --e2e, keys USER: whose keys */
    bool e2e_group = false;
    char confbuf[1024];
    mqim_posix_tls_config_t tlscfg = { getenv("MQIM_TLS_CA"), NULL, NULL, NULL, getenv("MQIM_TLS_PSK"), NULL };
    mqim_posix_tls_t *tls = NULL;
    char pwbuf[256], statebuf[1024];
    app_t app;
    mqim_posix_tcp_t tcp;
    mqim_lmdb_store_t *store = NULL;
    mqim_client_config_t cfg;
    uint32_t timeout = 10000, start, key = 0;
    int i = 1, rc = 0, want = -1;
    char *request = NULL; /* history/presence: the control request to send */
    bool requested = false;
    const char *cmd;
    /* send-file / get-file */
    static int file_fd = -1;
    static char part_path[1100];
    const char *file_peer = NULL, *file_out = NULL;
    bool file_group = false, file_queued = false;
    memset(&app, 0, sizeof(app));
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--e2e") == 0) {
            e2e_opt = "yes";
            continue;
        }
        if (strcmp(argv[i], "--refuse-changed-keys") == 0) {
            refuse_opt = "yes";
            continue;
        }
        if (strcmp(argv[i], "--keep-trying") == 0) {
            keep_opt = "yes";
            continue;
        }
        const char *before[15] = { host, port, user, password, pwfile, device, state_dir, timeout_s,
                                   tlscfg.ca_file, tlscfg.server_name, tlscfg.cert_file, tlscfg.key_file,
                                   tlscfg.psk_hex, tlscfg.psk_identity, config };
        host = opt(&i, argc, argv, "--host", host);
        port = opt(&i, argc, argv, "--port", port);
        user = opt(&i, argc, argv, "--user", user);
        password = opt(&i, argc, argv, "--password", password);
        pwfile = opt(&i, argc, argv, "--password-file", pwfile);
        device = opt(&i, argc, argv, "--device", device);
        state_dir = opt(&i, argc, argv, "--state-dir", state_dir);
        timeout_s = opt(&i, argc, argv, "--timeout", timeout_s);
        tlscfg.ca_file = opt(&i, argc, argv, "--tls-ca", tlscfg.ca_file);
        tlscfg.server_name = opt(&i, argc, argv, "--tls-server-name", tlscfg.server_name);
        tlscfg.cert_file = opt(&i, argc, argv, "--tls-cert", tlscfg.cert_file);
        tlscfg.key_file = opt(&i, argc, argv, "--tls-key", tlscfg.key_file);
        tlscfg.psk_hex = opt(&i, argc, argv, "--tls-psk", tlscfg.psk_hex);
        tlscfg.psk_identity = opt(&i, argc, argv, "--tls-psk-identity", tlscfg.psk_identity);
        config = opt(&i, argc, argv, "--config", config);
        if (before[0] == host && before[1] == port && before[2] == user && before[3] == password &&
            before[4] == pwfile && before[5] == device && before[6] == state_dir && before[7] == timeout_s &&
            before[8] == tlscfg.ca_file && before[9] == tlscfg.server_name && before[10] == tlscfg.cert_file &&
            before[11] == tlscfg.key_file && before[12] == tlscfg.psk_hex && before[13] == tlscfg.psk_identity &&
            before[14] == config) {
            fprintf(stderr, "mqim: unknown option %s\n", argv[i]);
            return 1;
        }
    }
    if (config == NULL) {
        const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
        snprintf(confbuf, sizeof(confbuf), "%s%s/mqim/config", xdg != NULL && xdg[0] != '\0' ? xdg : (home != NULL ? home : "."),
                 xdg != NULL && xdg[0] != '\0' ? "" : "/.config");
        if (load_config(confbuf, false) != 0) {
            return 1;
        }
    } else if (load_config(config, true) != 0) {
        return 1;
    }
    host = from_config(host, "host");
    port = from_config(port, "port");
    user = from_config(user, "user");
    password = from_config(password, "password");
    pwfile = from_config(pwfile, "password-file");
    device = from_config(device, "device");
    state_dir = from_config(state_dir, "state-dir");
    timeout_s = from_config(timeout_s, "timeout");
    tlscfg.ca_file = from_config(tlscfg.ca_file, "tls-ca");
    tlscfg.server_name = from_config(tlscfg.server_name, "tls-server-name");
    tlscfg.cert_file = from_config(tlscfg.cert_file, "tls-cert");
    tlscfg.key_file = from_config(tlscfg.key_file, "tls-key");
    tlscfg.psk_hex = from_config(tlscfg.psk_hex, "tls-psk");
    tlscfg.psk_identity = from_config(tlscfg.psk_identity, "tls-psk-identity");
    e2e_opt = from_config(e2e_opt, "e2e");
    refuse_opt = from_config(refuse_opt, "refuse-changed-keys");
    keep_opt = from_config(keep_opt, "keep-trying");
    keep_trying = keep_opt != NULL && (strcmp(keep_opt, "yes") == 0 || strcmp(keep_opt, "1") == 0);
    e2e_on = e2e_opt != NULL && (strcmp(e2e_opt, "yes") == 0 || strcmp(e2e_opt, "1") == 0);
    refuse_changed = refuse_opt != NULL && (strcmp(refuse_opt, "yes") == 0 || strcmp(refuse_opt, "1") == 0);
    if (i >= argc || user == NULL) {
        fprintf(stderr, "usage: mqim --user U [--password P | --password-file F] [--host H] [--port P]\n"
                        "            [--device D] [--state-dir DIR] [--timeout MS] [--e2e] [--refuse-changed-keys]\n"
                        "            [--keep-trying]\n"
                        "            send PEER TEXT | send --group G TEXT | listen [N] | read PEER [SEQ] |\n"
                        "            history PEER [N] | history --group G [N] | presence USER... |\n"
                        "            chat PEER | flush | groups | group create G [USER...] |\n"
                        "            group add|remove G USER... | group leave|info G | group rename G TITLE |\n"
                        "            group status SEQ | group set G retain_count|retain_days N|none|default |\n"
                        "            chats | send-file PEER PATH [MIME] |\n"
                        "            send-file --group G PATH [MIME] | get-file FILE_ID OUT |\n"
                        "            keys | keys USER | keys trust USER DEVICE\n");
        return 1;
    }
    cmd = argv[i++];
    host = host != NULL ? host : "127.0.0.1";
    device = device != NULL ? device : "cli";
    timeout = timeout_s != NULL ? (uint32_t)strtoul(timeout_s, NULL, 10) : timeout;
    if (password == NULL && pwfile != NULL) {
        FILE *f = fopen(pwfile, "r");
        if (f == NULL || fgets(pwbuf, sizeof(pwbuf), f) == NULL) {
            fprintf(stderr, "mqim: cannot read a password from %s\n", pwfile);
            return 1;
        }
        fclose(f);
        pwbuf[strcspn(pwbuf, "\r\n")] = '\0';
        password = pwbuf;
    }
    if (state_dir == NULL) {
        const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
        if (xdg != NULL && xdg[0] != '\0') {
            snprintf(statebuf, sizeof(statebuf), "%s/mqim/%s.%s", xdg, user, device);
        } else {
            snprintf(statebuf, sizeof(statebuf), "%s/.local/state/mqim/%s.%s", home != NULL ? home : ".", user, device);
        }
        state_dir = statebuf;
    }
    if (mkdirs(state_dir) != 0 || mqim_lmdb_store_open(state_dir, (size_t)64 << 20, &store) != MQIM_OK) {
        fprintf(stderr, "mqim: cannot open the state in %s\n", state_dir);
        return 1;
    }
    if (tlscfg.psk_hex != NULL && tlscfg.psk_identity == NULL) {
        tlscfg.psk_identity = user; /* the usual choice with use_identity_as_username */
    }
    mqim_posix_tcp_init(&tcp, host,
                        (uint16_t)(port != NULL ? atoi(port) : (tlscfg.ca_file != NULL || tlscfg.psk_hex != NULL ? 8883 : 1883)));
    if (tlscfg.ca_file != NULL || tlscfg.psk_hex != NULL) {
        char err[256];
        tls = mqim_posix_tls_new(&tcp, &tlscfg, err, sizeof(err));
        if (tls == NULL) {
            fprintf(stderr, "mqim: TLS: %s\n", err);
            mqim_lmdb_store_close(store);
            return 1;
        }
    }
    memset(&cfg, 0, sizeof(cfg));
    cfg.root = MQIM_STR("im");
    cfg.user = mqim_str_from_cstr(user);
    cfg.password = mqim_str_from_cstr(password != NULL ? password : "");
    cfg.device = mqim_str_from_cstr(device);
    cfg.transport = tls != NULL ? &mqim_posix_tls_ops : &mqim_posix_tcp_ops;
    cfg.transport_ctx = tls != NULL ? (void *)tls : (void *)&tcp;
    cfg.clock = mqim_posix_clock_ms;
    cfg.entropy = mqim_posix_entropy;
    cfg.outbox = &mqim_lmdb_outbox_ops;
    cfg.outbox_ctx = store;
    cfg.state = &mqim_lmdb_state_ops;
    cfg.state_ctx = store;
    cfg.cb = (mqim_client_callbacks_t){ on_message, on_ack, on_response, on_oversized,
                                        strcmp(cmd, "listen") == 0 ? on_presence : NULL, on_read, &app, on_link,
                                        on_store_epoch };
    cfg.sleep = mqim_posix_sleep_ms; /* no busy loop while the broker is away */
    app.tcp = &tcp;
    app.client = &client;
    cli_user = user;
    app.tls = tls;
    if (mqim_client_init(&client, &cfg) != MQIM_OK) {
        fprintf(stderr, "mqim: invalid user or device name\n");
        mqim_lmdb_store_close(store);
        return 1;
    }
    if (cli_e2e_setup(store, user, device, refuse_changed) != 0) {
        mqim_lmdb_store_close(store);
        return 1;
    }
    if (strcmp(cmd, "keys") == 0 && i == argc) {
        cli_e2e_print_trusted(store); /* local: no connection needed */
        mqim_lmdb_store_close(store);
        mqim_posix_tls_free(tls);
        return 0;
    }
    if (strcmp(cmd, "keys") == 0 && (i + 1 == argc || (i + 3 == argc && strcmp(argv[i], "trust") == 0))) {
        e2e_peer = argv[i + 1 == argc ? i : i + 1];
        if (mqim_name_check(MQIM_NAME_USER, mqim_str_from_cstr(e2e_peer)) != MQIM_OK) {
            fprintf(stderr, "mqim: invalid user name '%s'\n", e2e_peer);
            mqim_lmdb_store_close(store);
            return 1;
        }
    } else if (e2e_on && strcmp(cmd, "send") == 0 && (i + 2 == argc || (i + 3 == argc && strcmp(argv[i], "--group") == 0))) {
        /* sealed once the keys arrive (the main loop) */
        e2e_group = i + 3 == argc;
        e2e_peer = argv[e2e_group ? i + 1 : i];
        if (mqim_name_check(e2e_group ? MQIM_NAME_GROUP : MQIM_NAME_USER, mqim_str_from_cstr(e2e_peer)) != MQIM_OK) {
            fprintf(stderr, "mqim: invalid name '%s'\n", e2e_peer);
            mqim_lmdb_store_close(store);
            return 1;
        }
    } else if (strcmp(cmd, "send") == 0 && (i + 2 == argc || (i + 3 == argc && strcmp(argv[i], "--group") == 0))) {
        mqim_status_t st = i + 3 == argc
                               ? mqim_client_send_group(&client, mqim_str_from_cstr(argv[i + 1]),
                                                        mqim_str_from_cstr(argv[i + 2]), &key)
                               : mqim_client_send(&client, mqim_str_from_cstr(argv[i]),
                                                  mqim_str_from_cstr(argv[i + 1]), &key);
        if (st != MQIM_OK) {
            fprintf(stderr, "mqim: cannot send: %s\n", mqim_status_str(st));
            mqim_lmdb_store_close(store);
            return 1;
        }
    } else if (strcmp(cmd, "send-file") == 0 && i + 2 <= argc && i + 4 >= argc) {
        bool group = strcmp(argv[i], "--group") == 0;
        const char *path = argv[i + (group ? 2 : 1)], *base, *mime;
        struct stat sb;
        mqim_status_t st = MQIM_BAD_PARAMETER;
        if ((group && i + 3 > argc) || (!group && i + 3 < argc)) {
            fprintf(stderr, "mqim: send-file PEER PATH [MIME] | send-file --group G PATH [MIME]\n");
            mqim_lmdb_store_close(store);
            return 1;
        }
        file_fd = open(path, O_RDONLY);
        base = strrchr(path, '/') != NULL ? strrchr(path, '/') + 1 : path;
        mime = i + (group ? 3 : 2) < argc ? argv[i + (group ? 3 : 2)] : "";
        /* no upload id: the library derives it from the content, so running
         * send-file again resumes the same upload */
        if (file_fd >= 0 && fstat(file_fd, &sb) == 0) {
            st = mqim_file_upload_start(&upload, &client, (mqim_str_t){ NULL, 0 }, mqim_str_from_cstr(base),
                                        mqim_str_from_cstr(mime), (uint64_t)sb.st_size, file_read, &file_fd);
        }
        if (st != MQIM_OK) {
            fprintf(stderr, "mqim: cannot send %s: %s\n", path, file_fd < 0 ? strerror(errno) : mqim_status_str(st));
            mqim_lmdb_store_close(store);
            return 1;
        }
        file_peer = argv[i + (group ? 1 : 0)];
        file_group = group;
        app.upload = &upload;
    } else if (strcmp(cmd, "get-file") == 0 && i + 2 == argc) {
        struct stat sb;
        mqim_status_t st;
        snprintf(part_path, sizeof(part_path), "%s.part", argv[i + 1]);
        file_out = argv[i + 1];
        file_fd = open(part_path, O_RDWR | O_CREAT, 0600);
        st = file_fd < 0 ? MQIM_BAD_PARAMETER
                         : mqim_file_download_start(&download, &client, mqim_str_from_cstr(argv[i]), file_write, &file_fd);
        if (st == MQIM_OK && fstat(file_fd, &sb) == 0 && sb.st_size > 0) {
            /* an earlier run stopped here: hash what it wrote and go on */
            static uint8_t buf[65536];
            for (off_t off = 0; off < sb.st_size;) {
                ssize_t n = pread(file_fd, buf, sizeof(buf), off);
                if (n <= 0) {
                    break;
                }
                mqim_file_download_hash_prefix(&download, buf, (size_t)n);
                off += n;
            }
            printf("resuming at %llu bytes\n", (unsigned long long)download.received);
        }
        if (st != MQIM_OK) {
            fprintf(stderr, "mqim: cannot get %s into %s: %s\n", argv[i], part_path,
                    file_fd < 0 ? strerror(errno) : mqim_status_str(st));
            mqim_lmdb_store_close(store);
            return 1;
        }
        app.download = &download;
    } else if (strcmp(cmd, "listen") == 0 && i + 1 >= argc) {
        want = i < argc ? atoi(argv[i]) : -1;
    } else if (strcmp(cmd, "history") == 0 && i < argc && strcmp(argv[i], "--group") == 0 &&
               (i + 2 == argc || i + 3 == argc)) {
        cJSON *req = cJSON_CreateObject();
        cJSON_AddStringToObject(req, "op", "history");
        cJSON_AddStringToObject(req, "group", argv[i + 1]);
        cJSON_AddNumberToObject(req, "limit", i + 3 == argc ? atoi(argv[i + 2]) : 20);
        cJSON_AddStringToObject(req, "req", "cli");
        request = cJSON_PrintUnformatted(req);
        cJSON_Delete(req);
    } else if ((strcmp(cmd, "group") == 0 && i < argc) || (strcmp(cmd, "groups") == 0 && i == argc) ||
               (strcmp(cmd, "chats") == 0 && i == argc)) {
        request = strcmp(cmd, "groups") == 0  ? group_request("list", 0, argv + i)
                  : strcmp(cmd, "chats") == 0 ? group_request("chats", 0, argv + i)
                                              : group_request(argv[i], argc - i - 1, argv + i + 1);
        if (request == NULL) {
            fprintf(stderr, "mqim: group create G [USER...] | add G USER... | remove G USER... | "
                            "leave G | rename G TITLE | info G | status SEQ | set G retain_count|retain_days "
                            "N|none|default; groups; chats\n");
            mqim_lmdb_store_close(store);
            return 1;
        }
    } else if (strcmp(cmd, "history") == 0 && (i + 1 == argc || i + 2 == argc)) {
        cJSON *req = cJSON_CreateObject();
        cJSON_AddStringToObject(req, "op", "history");
        cJSON_AddStringToObject(req, "with", argv[i]);
        cJSON_AddNumberToObject(req, "limit", i + 2 == argc ? atoi(argv[i + 1]) : 20);
        cJSON_AddStringToObject(req, "req", "cli");
        request = cJSON_PrintUnformatted(req);
        cJSON_Delete(req);
    } else if (strcmp(cmd, "presence") == 0 && i < argc) {
        cJSON *req = cJSON_CreateObject(), *users = cJSON_AddArrayToObject(req, "users");
        cJSON_AddStringToObject(req, "op", "presence");
        for (int k = i; k < argc; k++) {
            cJSON_AddItemToArray(users, cJSON_CreateString(argv[k]));
        }
        cJSON_AddStringToObject(req, "req", "cli");
        request = cJSON_PrintUnformatted(req);
        cJSON_Delete(req);
    } else if (strcmp(cmd, "chat") == 0 && i + 1 == argc) {
        if (mqim_name_check(MQIM_NAME_USER, mqim_str_from_cstr(argv[i])) != MQIM_OK) {
            fprintf(stderr, "mqim: invalid user name '%s'\n", argv[i]);
            mqim_lmdb_store_close(store);
            return 1;
        }
        e2e_peer = e2e_on ? argv[i] : NULL; /* lines are read once the keys are here */
    } else if (!(strcmp(cmd, "flush") == 0 && i == argc) && !(strcmp(cmd, "read") == 0 && (i + 1 == argc || i + 2 == argc))) {
        fprintf(stderr, "mqim: unknown command or arguments: %s\n", cmd);
        mqim_lmdb_store_close(store);
        return 1;
    }
    (void)mqim_client_start(&client);
    start = mqim_posix_clock_ms(NULL);
    for (;;) {
        bool done = false;
        /* A transfer keeps a window of requests going: wait little for
         * input. Without a link nothing happens but the library's retry
         * (the poll sleeps until then): wake less often. */
        (void)mqim_client_poll(&client, app.link != MQIM_LINK_CONNECTED       ? 250
                                        : app.upload != NULL || app.download != NULL ? 1
                                                                                     : 20);
        if (app.failed_now) {
            app.failed_now = false;
            if (link_fatal(app.why) && !keep_trying) {
                rc = link_exit_code(app.why);
                say_queued(mqim_lmdb_outbox_count(store), state_dir, app.why);
                break;
            }
        }
        cli_e2e_on_poll(&client);
        if (e2e_peer != NULL && !e2e_requested && mqim_client_connected(&client)) {
            e2e_requested = cli_e2e_request_keys(&client, e2e_peer, e2e_group) == MQIM_OK;
        }
        if (e2e_peer != NULL && cli_e2e_keys_failed()) {
            rc = 4;
            break;
        }
        if (strcmp(cmd, "keys") == 0) {
            if (cli_e2e_keys_ready()) {
                rc = cli_e2e_print_fetched(e2e_peer, i + 3 == argc ? argv[i + 2] : NULL);
                break;
            }
        } else if (strcmp(cmd, "send") == 0 && e2e_peer != NULL && !e2e_sent) {
            if (cli_e2e_keys_ready()) {
                mqim_status_t st = cli_e2e_send(&client, e2e_peer, e2e_group,
                                                mqim_str_from_cstr(argv[e2e_group ? i + 2 : i + 1]), &key);
                if (st != MQIM_OK) {
                    fprintf(stderr, "mqim: cannot send encrypted: %s (%s)\n", mqim_status_name(st),
                            mqim_status_str(st));
                    rc = 4;
                    break;
                }
                e2e_sent = true;
            }
        } else if (strcmp(cmd, "chat") == 0) {
            /* Lines typed so far become messages; the outbox keeps them
             * until acked, so typing while offline is fine. */
            static char line[4200];
            static size_t line_len;
            static bool eof, typing;
            static uint32_t typing_sent_at;
            struct pollfd pfd = { 0, POLLIN, 0 };
            while (!eof && (e2e_peer == NULL || cli_e2e_keys_ready()) && poll(&pfd, 1, 0) > 0) {
                char ch;
                ssize_t n = read(0, &ch, 1);
                if (n <= 0) {
                    eof = true;
                    start = mqim_posix_clock_ms(NULL); /* the timeout now bounds the drain */
                    break;
                }
                if (ch == '\n' || line_len == sizeof(line) - 1u) {
                    mqim_status_t st = MQIM_OK;
                    if (line_len > 0u) {
                        st = e2e_peer != NULL
                                 ? cli_e2e_send(&client, argv[i], false, (mqim_str_t){ line, line_len }, &key)
                                 : mqim_client_send(&client, mqim_str_from_cstr(argv[i]), (mqim_str_t){ line, line_len },
                                                    &key);
                    }
                    if (st != MQIM_OK) {
                        fprintf(stderr, "mqim: cannot send that line: %s\n", mqim_status_str(st));
                    }
                    line_len = 0;
                } else {
                    if (line_len == 0u) {
                        typing = true; /* the start of a line */
                    }
                    line[line_len++] = ch;
                }
            }
            /* The peer sees "typing" for 5 s; at most one signal per 3 s, sent
             * once connected (a signal is not queued). */
            if (typing && mqim_client_connected(&client)) {
                uint32_t now = mqim_posix_clock_ms(NULL);
                if (typing_sent_at == 0u || now - typing_sent_at > 3000u) {
                    (void)mqim_client_signal(&client, mqim_str_from_cstr(argv[i]), false, MQIM_STR("typing"));
                    typing_sent_at = now;
                }
                typing = false;
            }
            done = eof && mqim_client_connected(&client) && mqim_lmdb_outbox_count(store) == 0u;
            if (!eof) {
                continue; /* until EOF, no timeout */
            }
        } else if (app.upload != NULL) {
            static bool said;
            static uint64_t had; /* as of the last loop: responses arrive in the poll */
            mqim_file_upload_step(&upload, mqim_posix_clock_ms(NULL));
            if (upload.begun && !said) {
                said = true;
                if (upload.have > 0u) {
                    printf("resuming upload at %llu bytes\n", (unsigned long long)upload.have);
                }
            }
            if (upload.have != had) {
                start = mqim_posix_clock_ms(NULL); /* the timeout bounds a stall, not the transfer */
                progress(had, upload.have, upload.size);
                had = upload.have;
            }
            if (upload.state == MQIM_XFER_FAILED) {
                fprintf(stderr, "mqim: upload failed: %s (%s)\n", mqim_status_name(upload.error), upload.reason);
                rc = 4;
                break;
            }
            if (upload.state == MQIM_XFER_DONE && !file_queued) {
                mqim_status_t st = mqim_client_send_file(&client, mqim_str_from_cstr(file_peer), file_group,
                                                         mqim_str_from_cstr(upload.file_id), (mqim_str_t){ NULL, 0 },
                                                         &key);
                if (st != MQIM_OK) {
                    fprintf(stderr, "mqim: cannot queue the file message: %s\n", mqim_status_str(st));
                    rc = 1;
                    break;
                }
                printf("uploaded %s (%llu bytes) file=%s\n", upload.name, (unsigned long long)upload.size,
                       upload.file_id);
                file_queued = true;
            }
            done = file_queued && mqim_client_connected(&client) && mqim_lmdb_outbox_count(store) == 0u;
        } else if (app.download != NULL) {
            static uint64_t had;
            mqim_file_download_step(&download, mqim_posix_clock_ms(NULL));
            if (download.received != had) {
                start = mqim_posix_clock_ms(NULL);
                progress(had, download.received, download.size);
                had = download.received;
            }
            if (download.state == MQIM_XFER_FAILED) {
                fprintf(stderr, "mqim: download failed: %s%s%s\n", mqim_status_name(download.error),
                        download.reason[0] != '\0' ? " " : "", download.reason);
                if (download.error == MQIM_FILE_CORRUPT || download.received == 0u) {
                    (void)unlink(part_path); /* start over next time; leave no empty file */
                }
                rc = 4;
                break;
            }
            if (download.state == MQIM_XFER_DONE) {
                if (rename(part_path, file_out) != 0) {
                    fprintf(stderr, "mqim: cannot rename %s: %s\n", part_path, strerror(errno));
                    rc = 1;
                    break;
                }
                printf("saved %s (%llu bytes, sha256 %s ok)\n", file_out, (unsigned long long)download.size,
                       download.sha256);
                done = true;
            }
        } else if (request != NULL) {
            if (!requested && mqim_client_connected(&client)) {
                requested = mqim_client_ctl(&client, mqim_str_from_cstr(request)) == MQIM_OK;
            }
            done = app.responses > 0;
        } else if (strcmp(cmd, "listen") == 0) {
            done = want >= 0 && app.messages + app.e2e_refused >= want;
        } else if (strcmp(cmd, "read") == 0) {
            /* without SEQ: everything this device has shown so far */
            uint64_t upto = i + 1 < argc ? strtoull(argv[i + 1], NULL, 10) : mqim_client_last_seq(&client);
            done = mqim_client_connected(&client) &&
                   mqim_client_mark_read(&client, mqim_str_from_cstr(argv[i]), upto) == MQIM_OK;
        } else {
            done = mqim_client_connected(&client) && mqim_lmdb_outbox_count(store) == 0u;
        }
        if (done) {
            uint32_t t = mqim_posix_clock_ms(NULL);
            while (mqim_posix_clock_ms(NULL) - t < 300u) { /* let receipts and acks leave */
                (void)mqim_client_poll(&client, 20);
            }
            break;
        }
        if (want < 0 && strcmp(cmd, "listen") == 0) {
            continue; /* listen without N: until interrupted */
        }
        if (mqim_posix_clock_ms(NULL) - start > timeout) {
            if (!app.ever_connected && app.why != MQIM_OK) {
                /* never got in: the reason was printed when it happened */
                rc = link_exit_code(app.why);
                say_queued(mqim_lmdb_outbox_count(store), state_dir, app.why);
            } else if (strcmp(cmd, "listen") == 0 || request != NULL || app.download != NULL ||
                (app.upload != NULL && !file_queued)) {
                if (app.upload != NULL || app.download != NULL) {
                    fprintf(stderr, "mqim: transfer stalled at %llu bytes; run the same command again to resume\n",
                            (unsigned long long)(app.upload != NULL ? upload.have : download.received));
                }
                rc = 6;
            } else {
                fprintf(stderr, "mqim: not acknowledged yet; %zu message(s) stay queued in %s\n",
                        mqim_lmdb_outbox_count(store), state_dir);
                rc = 3;
            }
            break;
        }
    }
    if (rc == 0 && app.rejected > 0) {
        rc = 4;
    }
    mqim_client_stop(&client);
    mqim_lmdb_store_close(store);
    mqim_posix_tls_free(tls);
    cJSON_free(request);
    if (file_fd >= 0) {
        close(file_fd);
    }
    return rc;
}
