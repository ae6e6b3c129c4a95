/* The `mqim` command's connection (cli.h): the state directory, TLS, the
 * client and its callbacks, and the poll loop every command runs in. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "cli_e2e.h"

bool cli_name_ok(mqim_name_kind_t kind, const char *name)
{
    if (mqim_name_check(kind, mqim_str_from_cstr(name)) == MQIM_OK) {
        return true;
    }
    fprintf(stderr, "mqim: invalid %s name '%s'\n", kind == MQIM_NAME_GROUP ? "group" : "user", name);
    return false;
}

int cli_link_exit_code(mqim_status_t why)
{
    switch (why) {
    case MQIM_CONNACK_NOT_AUTHORIZED:
        return MQIM_EXIT_NOT_AUTHORISED;
    case MQIM_CONNACK_BAD_CREDENTIALS:
        return MQIM_EXIT_BAD_CREDENTIALS;
    case MQIM_CONNACK_IDENTIFIER_REJECTED:
        return MQIM_EXIT_ID_REJECTED;
    case MQIM_CONNACK_SERVER_UNAVAILABLE:
        return MQIM_EXIT_BROKER_UNAVAILABLE;
    case MQIM_CONNACK_PROTOCOL_VERSION:
    case MQIM_CONNACK_REFUSED:
        return MQIM_EXIT_PROTOCOL_VERSION;
    case MQIM_TLS_VERIFY_FAILED:
        return MQIM_EXIT_TLS_VERIFY;
    case MQIM_TLS_HANDSHAKE_FAILED:
        return MQIM_EXIT_TLS_HANDSHAKE;
    default:
        return MQIM_EXIT_UNREACHABLE; /* unreachable, no CONNACK, the link broke before it */
    }
}

/* Failures that retrying cannot cure: the configuration is wrong. */
static bool link_fatal(mqim_status_t why)
{
    return why == MQIM_CONNACK_NOT_AUTHORIZED || why == MQIM_CONNACK_BAD_CREDENTIALS ||
           why == MQIM_CONNACK_IDENTIFIER_REJECTED || why == MQIM_CONNACK_PROTOCOL_VERSION ||
           why == MQIM_CONNACK_REFUSED || why == MQIM_TLS_VERIFY_FAILED;
}

/* What became of the queued messages when the run ends without a link. */
void cli_say_queued(const cli_t *c)
{
    size_t n = mqim_lmdb_outbox_count(c->store);
    const char *once = c->why == MQIM_TLS_VERIFY_FAILED || c->why == MQIM_TLS_HANDSHAKE_FAILED ? "TLS works"
                       : cli_link_exit_code(c->why) == MQIM_EXIT_UNREACHABLE                  ? "the broker is reachable"
                                                                                              : "the login works";
    if (n > 0u) {
        fprintf(stderr, "mqim: %zu message%s stay%s queued in the outbox (%s); `mqim flush` sends %s once %s\n", n,
                n == 1u ? "" : "s", n == 1u ? "s" : "", c->state_dir, n == 1u ? "it" : "them", once);
    }
}

static void on_message(void *ctx, const mqim_envelope_t *env)
{
    cli_t *c = ctx;
    mqim_envelope_t plain;
    bool e2e = env->enc.len > 0u;
    if (e2e) {
        /* Only a message that opens is shown as one (docs/e2e.md). */
        mqim_status_t st = cli_e2e_open(env, true, &plain);
        if (st != MQIM_OK) {
            c->e2e_refused++;
            cli_print_unshown(c, env, mqim_status_name(st), mqim_status_str(st), 0);
            if (env->has_seq && !mqim_str_eq(env->from, mqim_str_from_cstr(c->opt.user))) {
                /* not `delivered`: the sender learns why */
                (void)mqim_client_refuse(&c->client, env->seq, mqim_str_from_cstr(mqim_status_name(st)));
            }
            return;
        }
        env = &plain;
    }
    if (env->has_seq) {
        c->messages++;
    }
    if (c->hooks != NULL && c->hooks->message != NULL && c->hooks->message(c, env, e2e)) {
        return;
    }
    if (!c->quiet_messages) {
        cli_print_message(c, env, e2e);
    }
}

/* Only with a receive buffer smaller than the message (not with the CLI's
 * defaults for a normal body); said so instead of a silent skip. */
static void on_oversized(void *ctx, const mqim_envelope_t *env, size_t payload_size)
{
    cli_t *c = ctx;
    c->messages++;
    cli_print_unshown(c, env, "payload_too_large", "too large for this device", payload_size);
}

static void on_ack(void *ctx, const mqim_ack_t *ack)
{
    cli_t *c = ctx;
    if (ack->status == MQIM_ACK_REJECTED && mqim_str_eq_cstr(ack->re, "key")) {
        /* the key every run publishes, refused (too many devices, rate
         * limited): not what the command was about, so only a warning */
        fprintf(stderr, "mqim: this device's E2E key was not published: %.*s (%.*s)\n", (int)ack->code.len,
                ack->code.ptr, (int)ack->reason.len, ack->reason.ptr);
        return;
    }
    if (ack->status == MQIM_ACK_SENT) {
        c->sent++;
    } else if (ack->status == MQIM_ACK_REJECTED) {
        c->rejected++;
        fprintf(stderr, "mqim: the gateway rejected %.*s: %.*s (%.*s)\n", ack->re.len > 0u ? (int)ack->re.len : 7,
                ack->re.len > 0u ? ack->re.ptr : "message", (int)ack->code.len, ack->code.ptr, (int)ack->reason.len,
                ack->reason.ptr);
    }
    if (c->hooks != NULL && c->hooks->ack != NULL && c->hooks->ack(c, ack)) {
        return;
    }
    if (!c->quiet_messages || ack->status == MQIM_ACK_SENT || ack->status == MQIM_ACK_REJECTED) {
        cli_print_ack(c, ack);
    }
}

/* Each new reason once, at once, on stderr. */
static void on_link(void *ctx, mqim_link_state_t state, mqim_status_t why)
{
    cli_t *c = ctx;
    char detail[256];
    c->link = state;
    if (state == MQIM_LINK_CONNECTED) {
        c->ever_connected = true;
        c->said = MQIM_OK;
    }
    if (state != MQIM_LINK_DISCONNECTED) {
        return;
    }
    c->why = why;
    c->failed_now = true;
    if (why == c->said) {
        return;
    }
    c->said = why;
    if (why == MQIM_BROKER_UNREACHABLE) {
        mqim_posix_tcp_describe(&c->tcp, detail, sizeof(detail));
        fprintf(stderr, "mqim: cannot reach the broker at %s:%u: %s\n", c->tcp.host, (unsigned)c->tcp.port, detail);
    } else if (why == MQIM_TLS_VERIFY_FAILED || why == MQIM_TLS_HANDSHAKE_FAILED) {
        mqim_posix_tls_describe(c->tls, detail, sizeof(detail));
        fprintf(stderr, "mqim: %s: %s\n", mqim_status_str(why), detail);
    } else if (link_fatal(why) || why == MQIM_CONNACK_SERVER_UNAVAILABLE) {
        fprintf(stderr, "mqim: %s.\n", mqim_status_str(why)); /* mosquitto_pub's words */
    } else {
        fprintf(stderr, "mqim: connection to %s:%u lost: %s\n", c->tcp.host, (unsigned)c->tcp.port,
                mqim_status_str(why));
    }
}

static void on_read(void *ctx, const mqim_envelope_t *env)
{
    cli_t *c = ctx;
    if (!c->quiet_messages) {
        cli_print_read(c, env);
    }
}

/* The gateway's store began a new epoch (restored, or a copy): say so once. */
static void on_store_epoch(void *ctx, uint64_t epoch, uint64_t from_seq)
{
    (void)ctx;
    fprintf(stderr,
            "mqim: the gateway's store has a new epoch %llu (restored or a copy): re-syncing after seq %llu\n",
            (unsigned long long)epoch, (unsigned long long)from_seq);
}

static void on_presence(void *ctx, mqim_str_t user, mqim_str_t json)
{
    cli_print_presence(ctx, user, json);
}

/* Control responses: a transfer's, the E2E keys', a hook's, or printed. */
static void on_response(void *ctx, mqim_str_t json)
{
    cli_t *c = ctx;
    cJSON *o;
    if (c->xfer != NULL && (mqim_file_upload_on_response(c->xfer->uploading ? &c->xfer->upload : NULL, json) ||
                            mqim_file_download_on_response(c->xfer->downloading ? &c->xfer->download : NULL, json))) {
        return;
    }
    if (cli_e2e_on_response(json)) {
        if (cli_e2e_keys_failed()) {
            c->rejected++;
        }
        return; /* keys for sealing or `mqim keys`: the loop goes on */
    }
    o = cJSON_ParseWithLength(json.ptr, json.len);
    c->responses++;
    if (o == NULL) {
        return;
    }
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "ok"))) {
        c->rejected++;
        fprintf(stderr, "mqim: the gateway refused the request: %s (%s)\n",
                cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "code")),
                cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "reason")));
    }
    if (c->hooks == NULL || c->hooks->response == NULL || !c->hooks->response(c, o)) {
        cli_print_response(c, o);
    }
    cJSON_Delete(o);
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

static int open_transport(cli_t *c)
{
    bool tls = c->opt.tls_ca != NULL || c->opt.tls_psk != NULL;
    mqim_posix_tcp_init(&c->tcp, c->opt.host,
                        (uint16_t)(c->opt.port != NULL ? atoi(c->opt.port) : (tls ? 8883 : 1883)));
    if (tls) {
        char err[256];
        mqim_posix_tls_config_t cfg = { c->opt.tls_ca,  c->opt.tls_server_name, c->opt.tls_cert,
                                        c->opt.tls_key, c->opt.tls_psk,         c->opt.tls_psk_identity };
        c->tls = mqim_posix_tls_new(&c->tcp, &cfg, err, sizeof(err));
        if (c->tls == NULL) {
            fprintf(stderr, "mqim: TLS: %s\n", err);
            return MQIM_EXIT_FAILURE;
        }
    }
    return 0;
}

/* The state, the transport and the client, ready to start. 0 or an exit
 * code (printed). With c->quiet_first_sync, a device that never synced
 * shows no history while it catches up (send, flush, files). */
int cli_connect(cli_t *c)
{
    mqim_client_config_t cfg;
    int rc;
    if (mkdirs(c->state_dir) != 0 || mqim_lmdb_store_open(c->state_dir, (size_t)64 << 20, &c->store) != MQIM_OK) {
        fprintf(stderr, "mqim: cannot open the state in %s\n", c->state_dir);
        return MQIM_EXIT_FAILURE;
    }
    if ((rc = open_transport(c)) != 0) {
        return rc;
    }
    memset(&cfg, 0, sizeof(cfg));
    cfg.root = MQIM_STR("im");
    cfg.user = mqim_str_from_cstr(c->opt.user);
    cfg.password = mqim_str_from_cstr(c->opt.password != NULL ? c->opt.password : "");
    cfg.device = mqim_str_from_cstr(c->opt.device);
    cfg.transport = c->tls != NULL ? &mqim_posix_tls_ops : &mqim_posix_tcp_ops;
    cfg.transport_ctx = c->tls != NULL ? (void *)c->tls : (void *)&c->tcp;
    cfg.clock = mqim_posix_clock_ms;
    cfg.entropy = mqim_posix_entropy;
    cfg.outbox = &mqim_lmdb_outbox_ops;
    cfg.outbox_ctx = c->store;
    cfg.state = &mqim_lmdb_state_ops;
    cfg.state_ctx = c->store;
    cfg.cb = (mqim_client_callbacks_t){ on_message, on_ack, on_response, on_oversized,
                                        strcmp(c->cmd, "listen") == 0 ? on_presence : NULL,
                                        on_read, c, on_link, on_store_epoch };
    cfg.sleep = mqim_posix_sleep_ms; /* no busy loop while the broker is away */
    if (mqim_client_init(&c->client, &cfg) != MQIM_OK) {
        fprintf(stderr, "mqim: invalid user or device name\n");
        return MQIM_EXIT_USAGE;
    }
    c->quiet_messages = c->quiet_first_sync && mqim_client_last_seq(&c->client) == 0u;
    if (cli_e2e_setup(c->store, c->opt.user, c->opt.device, c->refuse_changed) != 0) {
        return MQIM_EXIT_FAILURE;
    }
    return 0;
}

/* After a step said it is done: let receipts and acks leave. */
static void drain(cli_t *c)
{
    uint32_t t = mqim_posix_clock_ms(NULL);
    while (mqim_posix_clock_ms(NULL) - t < 300u) {
        (void)mqim_client_poll(&c->client, 20);
    }
}

static int on_timeout(cli_t *c)
{
    if (!c->ever_connected && c->why != MQIM_OK) {
        /* never got in: the reason was printed when it happened */
        cli_say_queued(c);
        return cli_link_exit_code(c->why);
    }
    if (c->timeout_rc == MQIM_EXIT_PENDING) {
        fprintf(stderr, "mqim: not acknowledged yet; %zu message(s) stay queued in %s\n",
                mqim_lmdb_outbox_count(c->store), c->state_dir);
    } else {
        fprintf(stderr, "mqim: timed out after %u ms waiting for %s\n", (unsigned)c->timeout_ms,
                c->ever_connected ? "the gateway" : "the broker");
    }
    return c->timeout_rc;
}

/* Poll, call step after each poll, until it returns an exit code, a
 * fatal link failure or the timeout (c->timeout_rc) ends the run. */
int cli_loop(cli_t *c, cli_step_fn step, void *ctx)
{
    int rc;
    (void)mqim_client_start(&c->client);
    c->started = true;
    c->start = mqim_posix_clock_ms(NULL);
    for (;;) {
        /* A transfer keeps a window of requests going: wait little for
         * input. Without a link nothing happens but the library's retry
         * (the poll sleeps until then): wake less often. */
        (void)mqim_client_poll(&c->client, c->link != MQIM_LINK_CONNECTED ? 250
                                           : c->busy                         ? 0 /* the step waits */
                                           : c->xfer != NULL                 ? 1
                                                                             : 20);
        if (c->failed_now) {
            c->failed_now = false;
            if (link_fatal(c->why) && !c->keep_trying) {
                cli_say_queued(c);
                return cli_link_exit_code(c->why);
            }
        }
        cli_e2e_on_poll(&c->client);
        rc = step(c, ctx);
        if (rc != CLI_MORE) {
            drain(c);
            break;
        }
        if (c->timeout_rc != CLI_MORE && mqim_posix_clock_ms(NULL) - c->start > c->timeout_ms) {
            rc = on_timeout(c);
            break;
        }
    }
    if (rc == MQIM_EXIT_OK && c->rejected > 0) {
        rc = MQIM_EXIT_REJECTED;
    }
    return rc;
}

void cli_close(cli_t *c)
{
    if (c->started) {
        mqim_client_stop(&c->client);
        c->started = false;
    }
    if (c->store != NULL) {
        mqim_lmdb_store_close(c->store);
        c->store = NULL;
    }
    mqim_posix_tls_free(c->tls);
    c->tls = NULL;
}
