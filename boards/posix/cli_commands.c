/* The `mqim` commands that send, read and ask (cli.h): each checks its
 * arguments (CLI_BAD_ARGS when they do not fit), connects, and runs the
 * poll loop with a step of its own. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_e2e.h"

/* send and flush: done once connected with an empty outbox. */
typedef struct send_ctx {
    const char *name, *text; /* an E2E send: sealed once the keys are here */
    bool group, requested, sealed;
    uint32_t key;
} send_ctx_t;

static int outbox_empty_step(cli_t *c, void *vctx)
{
    send_ctx_t *s = vctx;
    if (s != NULL && s->text != NULL && !s->sealed) {
        if (!s->requested && mqim_client_connected(&c->client)) {
            s->requested = cli_e2e_request_keys(&c->client, s->name, s->group) == MQIM_OK;
        }
        if (cli_e2e_keys_failed()) {
            return MQIM_EXIT_REJECTED;
        }
        if (cli_e2e_keys_ready()) {
            mqim_status_t st = cli_e2e_send(&c->client, s->name, s->group, mqim_str_from_cstr(s->text), &s->key);
            if (st != MQIM_OK) {
                fprintf(stderr, "mqim: cannot send encrypted: %s (%s)\n", mqim_status_name(st), mqim_status_str(st));
                return MQIM_EXIT_REJECTED;
            }
            s->sealed = true;
        }
        return CLI_MORE;
    }
    return mqim_client_connected(&c->client) && mqim_lmdb_outbox_count(c->store) == 0u ? MQIM_EXIT_OK : CLI_MORE;
}

int cli_cmd_send(cli_t *c, int argc, char **argv)
{
    send_ctx_t s;
    int rc;
    memset(&s, 0, sizeof(s));
    s.group = argc == 3 && strcmp(argv[0], "--group") == 0;
    if (argc != 2 && !s.group) {
        return CLI_BAD_ARGS;
    }
    s.name = argv[s.group ? 1 : 0];
    if (!cli_name_ok(s.group ? MQIM_NAME_GROUP : MQIM_NAME_USER, s.name)) {
        return MQIM_EXIT_USAGE;
    }
    if ((rc = cli_connect(c)) != 0) {
        return rc;
    }
    if (c->e2e) {
        s.text = argv[s.group ? 2 : 1];
    } else {
        mqim_status_t st = s.group ? mqim_client_send_group(&c->client, mqim_str_from_cstr(s.name),
                                                            mqim_str_from_cstr(argv[2]), &s.key)
                                   : mqim_client_send(&c->client, mqim_str_from_cstr(s.name),
                                                      mqim_str_from_cstr(argv[1]), &s.key);
        if (st != MQIM_OK) {
            fprintf(stderr, "mqim: cannot send: %s\n", mqim_status_str(st));
            return MQIM_EXIT_FAILURE;
        }
    }
    c->timeout_rc = MQIM_EXIT_PENDING;
    return cli_loop(c, outbox_empty_step, &s);
}

int cli_cmd_flush(cli_t *c, int argc, char **argv)
{
    int rc;
    (void)argv;
    if (argc != 0) {
        return CLI_BAD_ARGS;
    }
    if ((rc = cli_connect(c)) != 0) {
        return rc;
    }
    c->timeout_rc = MQIM_EXIT_PENDING;
    return cli_loop(c, outbox_empty_step, NULL);
}

typedef struct read_ctx {
    const char *peer;
    uint64_t upto; /* 0: everything this device has shown */
} read_ctx_t;

static int read_step(cli_t *c, void *vctx)
{
    const read_ctx_t *r = vctx;
    uint64_t upto = r->upto != 0u ? r->upto : mqim_client_last_seq(&c->client);
    return mqim_client_connected(&c->client) &&
                   mqim_client_mark_read(&c->client, mqim_str_from_cstr(r->peer), upto) == MQIM_OK
               ? MQIM_EXIT_OK
               : CLI_MORE;
}

int cli_cmd_read(cli_t *c, int argc, char **argv)
{
    read_ctx_t r = { NULL, 0 };
    int rc;
    if (argc != 1 && argc != 2) {
        return CLI_BAD_ARGS;
    }
    r.peer = argv[0];
    if (!cli_name_ok(MQIM_NAME_USER, r.peer)) {
        return MQIM_EXIT_USAGE;
    }
    if (argc == 2 && (r.upto = strtoull(argv[1], NULL, 10)) == 0u) {
        return CLI_BAD_ARGS;
    }
    if ((rc = cli_connect(c)) != 0) {
        return rc;
    }
    c->timeout_rc = MQIM_EXIT_TIMEOUT;
    return cli_loop(c, read_step, &r);
}

static int listen_step(cli_t *c, void *vctx)
{
    int want = *(int *)vctx;
    return want >= 0 && c->messages + c->e2e_refused >= want ? MQIM_EXIT_OK : CLI_MORE;
}

int cli_cmd_listen(cli_t *c, int argc, char **argv)
{
    int want = -1, rc;
    if (argc > 1 || (argc == 1 && (want = atoi(argv[0])) <= 0)) {
        return CLI_BAD_ARGS;
    }
    if ((rc = cli_connect(c)) != 0) {
        return rc;
    }
    c->timeout_rc = want >= 0 ? MQIM_EXIT_TIMEOUT : CLI_MORE; /* without N: until interrupted */
    return cli_loop(c, listen_step, &want);
}

/* A control request: sent once connected, done at its answer. */
typedef struct request_ctx {
    const char *text;
    bool requested;
} request_ctx_t;

static int request_step(cli_t *c, void *vctx)
{
    request_ctx_t *r = vctx;
    if (!r->requested && mqim_client_connected(&c->client)) {
        r->requested = mqim_client_ctl(&c->client, mqim_str_from_cstr(r->text)) == MQIM_OK;
    }
    return c->responses > 0 ? MQIM_EXIT_OK : CLI_MORE;
}

/* Connects, sends request (the caller's, freed here), waits for the answer. */
int cli_request(cli_t *c, char *request)
{
    request_ctx_t r = { request, false };
    int rc = request == NULL ? CLI_BAD_ARGS : cli_connect(c);
    if (rc == 0) {
        c->timeout_rc = MQIM_EXIT_TIMEOUT;
        rc = cli_loop(c, request_step, &r);
    }
    cJSON_free(request);
    return rc;
}

static char *finish_request(cJSON *req)
{
    char *text;
    cJSON_AddStringToObject(req, "req", "cli");
    text = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    return text;
}

char *cli_history_request(const char *with, bool group, int limit)
{
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "op", "history");
    cJSON_AddStringToObject(req, group ? "group" : "with", with);
    cJSON_AddNumberToObject(req, "limit", limit > 0 ? limit : 20);
    return finish_request(req);
}

int cli_cmd_history(cli_t *c, int argc, char **argv)
{
    bool group = argc >= 1 && strcmp(argv[0], "--group") == 0;
    int first = group ? 1 : 0;
    if (argc - first < 1 || argc - first > 2) {
        return CLI_BAD_ARGS;
    }
    if (!cli_name_ok(group ? MQIM_NAME_GROUP : MQIM_NAME_USER, argv[first])) {
        return MQIM_EXIT_USAGE;
    }
    return cli_request(c, cli_history_request(argv[first], group, argc - first == 2 ? atoi(argv[first + 1]) : 20));
}

int cli_cmd_presence(cli_t *c, int argc, char **argv)
{
    cJSON *req, *users;
    if (argc < 1) {
        return CLI_BAD_ARGS;
    }
    req = cJSON_CreateObject();
    users = cJSON_AddArrayToObject(req, "users");
    cJSON_AddStringToObject(req, "op", "presence");
    for (int k = 0; k < argc; k++) {
        cJSON_AddItemToArray(users, cJSON_CreateString(argv[k]));
    }
    return cli_request(c, finish_request(req));
}

/* `mqim group SUB ...` as a control request (docs/protocol.md, "Groups");
 * NULL when the arguments do not fit. The caller frees the text. */
char *cli_group_request(const char *sub, int n, char **args)
{
    static const struct {
        const char *sub, *op;
        int min, max;
        const char *list;
    } ops[] = {
        { "create", "group_create", 1, 257, "members" }, { "add", "group_add", 2, 257, "users" },
        { "remove", "group_remove", 2, 257, "users" },   { "leave", "group_leave", 1, 1, NULL },
        { "rename", "group_rename", 2, 2, NULL },        { "info", "group_info", 1, 1, NULL },
        { "status", "msg_status", 1, 1, NULL },          { "set", "group_set", 3, 3, NULL },
    };
    for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
        cJSON *req;
        if (strcmp(sub, ops[k].sub) != 0 || n < ops[k].min || n > ops[k].max) {
            continue;
        }
        if (strcmp(sub, "set") == 0 && strcmp(args[1], "retain_count") != 0 && strcmp(args[1], "retain_days") != 0) {
            return NULL;
        }
        req = cJSON_CreateObject();
        cJSON_AddStringToObject(req, "op", ops[k].op);
        if (strcmp(sub, "status") == 0) {
            cJSON_AddNumberToObject(req, "seq", strtod(args[0], NULL));
        } else {
            cJSON_AddStringToObject(req, "group", args[0]);
        }
        if (strcmp(sub, "rename") == 0) {
            cJSON_AddStringToObject(req, "title", args[1]);
        } else if (strcmp(sub, "set") == 0) { /* group set G retain_count|retain_days N|none|default */
            if (strcmp(args[2], "default") == 0) {
                cJSON_AddNullToObject(req, args[1]);
            } else {
                cJSON_AddNumberToObject(req, args[1], strcmp(args[2], "none") == 0 ? 0 : strtod(args[2], NULL));
            }
        }
        if (ops[k].list != NULL) {
            cJSON *arr = cJSON_AddArrayToObject(req, ops[k].list);
            for (int a = 1; a < n; a++) {
                cJSON_AddItemToArray(arr, cJSON_CreateString(args[a]));
            }
        }
        return finish_request(req);
    }
    return NULL;
}

int cli_cmd_group(cli_t *c, int argc, char **argv)
{
    return argc < 1 ? CLI_BAD_ARGS : cli_request(c, cli_group_request(argv[0], argc - 1, argv + 1));
}

static char *op_request(const char *op)
{
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "op", op);
    return finish_request(req);
}

int cli_cmd_groups(cli_t *c, int argc, char **argv)
{
    (void)argv;
    return argc != 0 ? CLI_BAD_ARGS : cli_request(c, op_request("groups"));
}

int cli_cmd_chats(cli_t *c, int argc, char **argv)
{
    (void)argv;
    return argc != 0 ? CLI_BAD_ARGS : cli_request(c, op_request("chats"));
}

/* keys USER [trust DEVICE]: once the gateway answered. */
typedef struct keys_ctx {
    const char *user, *trust_device;
    bool requested;
} keys_ctx_t;

static int keys_step(cli_t *c, void *vctx)
{
    keys_ctx_t *k = vctx;
    if (!k->requested && mqim_client_connected(&c->client)) {
        k->requested = cli_e2e_request_keys(&c->client, k->user, false) == MQIM_OK;
    }
    if (cli_e2e_keys_failed()) {
        return MQIM_EXIT_REJECTED;
    }
    return cli_e2e_keys_ready() ? cli_e2e_print_fetched(k->user, k->trust_device, c->json) : CLI_MORE;
}

int cli_cmd_keys(cli_t *c, int argc, char **argv)
{
    keys_ctx_t k = { NULL, NULL, false };
    int rc;
    if (argc == 1) {
        k.user = argv[0];
    } else if (argc == 3 && strcmp(argv[0], "trust") == 0) {
        k.user = argv[1];
        k.trust_device = argv[2];
    } else if (argc != 0) {
        return CLI_BAD_ARGS;
    }
    if (k.user != NULL && !cli_name_ok(MQIM_NAME_USER, k.user)) {
        return MQIM_EXIT_USAGE;
    }
    if ((rc = cli_connect(c)) != 0) {
        return rc;
    }
    if (k.user == NULL) {
        cli_e2e_print_trusted(c->store, c->json); /* local: no connection needed */
        return MQIM_EXIT_OK;
    }
    c->timeout_rc = MQIM_EXIT_TIMEOUT;
    return cli_loop(c, keys_step, &k);
}
