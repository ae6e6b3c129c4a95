/* What the `mqim` command prints (cli.h). Three forms:
 *   --json       one JSON object per line, an "event" field first (mqim(1)
 *                lists the fields);
 *   a terminal   for people: local times ("14:25", a date when not today),
 *                "last seen";
 *   a pipe       the same lines without the time, stable for grep and for
 *                the scripts written against them (--json is the better
 *                choice for new ones).
 * The gateway's times are ms since the epoch. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cli_e2e.h"

#define STR(o, k) cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive((o), (k)))
#define NUM(o, k) cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive((o), (k)))

void cli_time(int64_t ms, char *buf, size_t cap)
{
    time_t t = (time_t)(ms / 1000), now = time(NULL);
    struct tm tm, today;
    localtime_r(&t, &tm);
    localtime_r(&now, &today);
    if (tm.tm_year == today.tm_year && tm.tm_yday == today.tm_yday) {
        strftime(buf, cap, "%H:%M", &tm);
    } else if (tm.tm_year == today.tm_year) {
        strftime(buf, cap, "%b %d %H:%M", &tm);
    } else {
        strftime(buf, cap, "%Y-%m-%d %H:%M", &tm);
    }
}

void cli_json_line(cJSON *o)
{
    char *text = cJSON_PrintUnformatted(o);
    if (text != NULL) {
        printf("%s\n", text);
        cJSON_free(text);
    }
    fflush(stdout);
    cJSON_Delete(o);
}

/* A transfer goes on where an earlier run stopped. */
void cli_say_resuming(const cli_t *c, const char *human_fmt, uint64_t bytes)
{
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "event", "resuming");
        cJSON_AddNumberToObject(o, "bytes", (double)bytes);
        cli_json_line(o);
    } else {
        printf(human_fmt, (unsigned long long)bytes);
    }
}

/* An encrypted message that does not open (refused to its sender), or one
 * too large for this device's buffers: said instead of a silent skip. */
void cli_print_unshown(const cli_t *c, const mqim_envelope_t *env, const char *code, const char *reason,
                       size_t payload_size)
{
    char who[80];
    cli_sender(env, who, sizeof(who));
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "event", "unshown");
        cJSON_AddNumberToObject(o, "seq", (double)env->seq);
        cJSON_AddStringToObject(o, "from", who);
        cJSON_AddStringToObject(o, "code", code);
        cJSON_AddStringToObject(o, "reason", reason);
        cli_json_line(o);
    } else if (payload_size > 0u) {
        printf("[%llu] %.*s -> %.*s: (a %zu-byte message, too large for this device)\n",
               (unsigned long long)env->seq, (int)env->from.len, env->from.ptr, (int)env->to.len, env->to.ptr,
               payload_size);
    } else {
        printf("[%llu] e2e refused from %s: %s (%s)\n", (unsigned long long)env->seq, who, code, reason);
    }
    fflush(stdout);
}

/* "alice" or "alice/phone": which of the sender's devices it came from. */
const char *cli_sender(const mqim_envelope_t *env, char *buf, size_t cap)
{
    snprintf(buf, cap, "%.*s%s%.*s", (int)env->from.len, env->from.ptr, env->device.len > 0u ? "/" : "",
             (int)env->device.len, env->device.ptr);
    return buf;
}

static void add_str(cJSON *o, const char *key, mqim_str_t s)
{
    if (s.len > 0u) {
        char *tmp = malloc(s.len + 1u);
        if (tmp != NULL) {
            memcpy(tmp, s.ptr, s.len);
            tmp[s.len] = '\0';
            cJSON_AddStringToObject(o, key, tmp);
            free(tmp);
        }
    }
}

static void message_json(const mqim_envelope_t *env, bool e2e)
{
    cJSON *o = cJSON_CreateObject();
    bool signal = !env->has_seq;
    cJSON_AddStringToObject(o, "event", signal && mqim_str_eq_cstr(env->type, "typing") ? "typing"
                                        : signal                                     ? "signal"
                                                                                     : "message");
    if (env->has_seq) {
        cJSON_AddNumberToObject(o, "seq", (double)env->seq);
    }
    add_str(o, "id", env->id);
    add_str(o, "from", env->from);
    add_str(o, "device", env->device);
    add_str(o, "to", env->to);
    add_str(o, "group", env->group);
    add_str(o, "type", env->type);
    if (env->has_ts) {
        cJSON_AddNumberToObject(o, "ts", (double)env->ts);
    }
    if (e2e) {
        cJSON_AddTrueToObject(o, "e2e");
    }
    if (env->has_file) {
        cJSON *f = cJSON_AddObjectToObject(o, "file");
        add_str(f, "id", env->file.id);
        add_str(f, "name", env->file.name);
        add_str(f, "mime", env->file.mime);
        cJSON_AddNumberToObject(f, "size", (double)env->file.size);
    }
    add_str(o, "body", env->body);
    cli_json_line(o);
}

/* The human line's start: the local time on a terminal, "(e2e) ". */
static void line_start(const cli_t *c, bool has_ts, int64_t ts, bool e2e)
{
    if (c->tty && has_ts) {
        char t[32];
        cli_time(ts, t, sizeof(t));
        printf("%s ", t);
    }
    if (e2e) {
        printf("(e2e) ");
    }
}

void cli_print_message(cli_t *c, const mqim_envelope_t *env, bool e2e)
{
    char who[80];
    mqim_str_t target = env->group.len > 0u ? env->group : env->to;
    const char *hash = env->group.len > 0u ? "#" : "";
    if (c->json) {
        message_json(env, e2e);
        return;
    }
    line_start(c, env->has_ts && env->has_seq, env->ts, e2e);
    cli_sender(env, who, sizeof(who));
    if (env->has_seq && env->has_file) {
        bool caption = !mqim_str_eq(env->body, env->file.name);
        printf("[%llu] %s -> %s%.*s: file %.*s (%llu bytes, %.*s) id=%.*s%s%.*s\n", (unsigned long long)env->seq,
               who, hash, (int)target.len, target.ptr, (int)env->file.name.len, env->file.name.ptr,
               (unsigned long long)env->file.size, (int)env->file.mime.len, env->file.mime.ptr,
               (int)env->file.id.len, env->file.id.ptr, caption ? " " : "", caption ? (int)env->body.len : 0,
               env->body.ptr);
    } else if (env->has_seq) {
        /* membership events show their type */
        bool event = env->group.len > 0u && env->type.len > 6u && memcmp(env->type.ptr, "group.", 6) == 0;
        printf("[%llu] %s -> %s%.*s: %s%.*s%s%.*s\n", (unsigned long long)env->seq, who, hash, (int)target.len,
               target.ptr, event ? "(" : "", event ? (int)env->type.len : 0, env->type.ptr, event ? ") " : "",
               (int)env->body.len, env->body.ptr);
    } else if (mqim_str_eq_cstr(env->type, "typing")) {
        printf("%.*s is typing...\n", (int)env->from.len, env->from.ptr);
    } else {
        printf("(%.*s) %.*s: %.*s\n", (int)env->type.len, env->type.ptr, (int)env->from.len, env->from.ptr,
               (int)env->body.len, env->body.ptr);
    }
    fflush(stdout);
}

static const char *ack_name(mqim_ack_status_t s)
{
    static const char *const names[] = { "sent", "delivered", "read", "rejected", "ack", "refused" };
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "ack";
}

void cli_print_ack(cli_t *c, const mqim_ack_t *ack)
{
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "event", ack_name(ack->status));
        add_str(o, "id", ack->id);
        if (ack->seq != 0u) {
            cJSON_AddNumberToObject(o, "seq", (double)ack->seq);
        }
        add_str(o, "by", ack->by);
        add_str(o, "re", ack->re);
        add_str(o, "code", ack->code);
        add_str(o, "reason", ack->reason);
        cli_json_line(o);
        return;
    }
    if (ack->status == MQIM_ACK_REFUSED) {
        /* a device of the recipient got it but could not show it */
        printf("refused %.*s seq=%llu by=%.*s: %.*s\n", (int)ack->id.len, ack->id.ptr, (unsigned long long)ack->seq,
               (int)ack->by.len, ack->by.ptr, (int)ack->code.len, ack->code.ptr);
    } else if (ack->status == MQIM_ACK_REJECTED) {
        printf("rejected %.*s: %.*s (%.*s)\n", (int)ack->id.len, ack->id.ptr, (int)ack->code.len, ack->code.ptr,
               (int)ack->reason.len, ack->reason.ptr);
    } else {
        printf("%s %.*s seq=%llu%s%.*s\n", ack_name(ack->status), (int)ack->id.len, ack->id.ptr,
               (unsigned long long)ack->seq, ack->by.len > 0u ? " by=" : "", (int)ack->by.len, ack->by.ptr);
    }
    fflush(stdout);
}

/* listen: a user's presence, printed when its state changed since the
 * last line about that user (the retained document also changes for a
 * device that comes and goes while the user stays online). */
void cli_print_presence(cli_t *c, mqim_str_t user, mqim_str_t json)
{
    cJSON *o = cJSON_ParseWithLength(json.ptr, json.len);
    const char *state = STR(o, "state");
    unsigned k = 0;
    if (o == NULL || state == NULL || user.len >= sizeof(c->presence_user[0])) {
        cJSON_Delete(o);
        return;
    }
    while (k < c->presence_n && !mqim_str_eq_cstr(user, c->presence_user[k])) {
        k++;
    }
    if (k < c->presence_n && strcmp(c->presence_state[k], state) == 0) {
        cJSON_Delete(o);
        return; /* said already */
    }
    if (k == c->presence_n && c->presence_n < CLI_PRESENCE_MAX) {
        snprintf(c->presence_user[k], sizeof(c->presence_user[k]), "%.*s", (int)user.len, user.ptr);
        c->presence_n++;
    }
    if (k < CLI_PRESENCE_MAX) {
        snprintf(c->presence_state[k], sizeof(c->presence_state[k]), "%s", state);
    }
    if (c->json) {
        cJSON_AddStringToObject(o, "event", "presence");
        cli_json_line(cJSON_Duplicate(o, true));
    } else {
        line_start(c, cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "ts")), (int64_t)NUM(o, "ts"), false);
        printf("presence %.*s %s\n", (int)user.len, user.ptr, state);
        fflush(stdout);
    }
    cJSON_Delete(o);
}

/* Read on one of my devices: the chat's unread is cleared everywhere. */
void cli_print_read(cli_t *c, const mqim_envelope_t *env)
{
    mqim_str_t chat = env->group.len > 0u ? env->group : env->to;
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "event", "read_sync");
        add_str(o, env->group.len > 0u ? "group" : "chat", chat);
        cJSON_AddNumberToObject(o, "upto", (double)env->upto);
        cli_json_line(o);
        return;
    }
    printf("read %s%.*s upto=%llu\n", env->group.len > 0u ? "#" : "", (int)chat.len, chat.ptr,
           (unsigned long long)env->upto);
    fflush(stdout);
}

/* An encrypted history entry, opened (no replay check: history repeats
 * old messages by design), or why not; a plain one's body. */
const char *cli_history_body(const cJSON *it, char *out, size_t cap)
{
    mqim_envelope_t env, plain;
    char *enc;
    const char *type = STR(it, "type");
    mqim_status_t st;
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(it, "enc"))) {
        return STR(it, "body") != NULL ? STR(it, "body") : "";
    }
    enc = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(it, "enc"));
    memset(&env, 0, sizeof(env));
    env.id = mqim_str_from_cstr(STR(it, "id"));
    env.from = mqim_str_from_cstr(STR(it, "from"));
    env.to = mqim_str_from_cstr(STR(it, "to"));
    env.group = mqim_str_from_cstr(STR(it, "group"));
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

static void history_line(const cli_t *c, const cJSON *it)
{
    const char *group = STR(it, "group");
    char opened[MQIM_BODY_MAX + 64];
    line_start(c, cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(it, "ts")), (int64_t)NUM(it, "ts"), false);
    printf("[%.0f] %s -> %s%s: %s\n", NUM(it, "seq"), STR(it, "from"), group != NULL ? "#" : "",
           group != NULL ? group : STR(it, "to"), cli_history_body(it, opened, sizeof(opened)));
}

/* presence USER...: "bob online", "bob offline, last seen 14:25", "zed unknown" */
static void user_line(const cJSON *it)
{
    const cJSON *seen = cJSON_GetObjectItemCaseSensitive(it, "last_seen");
    const char *state = STR(it, "state");
    printf("%s %s", STR(it, "user"), state != NULL ? state : "unknown");
    if (cJSON_IsNumber(seen) && (state == NULL || strcmp(state, "online") != 0)) {
        char t[32];
        cli_time((int64_t)seen->valuedouble, t, sizeof(t));
        printf(", last seen %s", t);
    }
    printf("\n");
}

/* chats: one line per conversation, most recent first, with the time of
 * its last message on a terminal. */
static void chat_line(const cli_t *c, const cJSON *it)
{
    const char *group = STR(it, "group"), *presence = STR(it, "presence");
    const cJSON *last = cJSON_GetObjectItemCaseSensitive(it, "last");
    const char *body = cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(last, "enc")) ? "(e2e)" : STR(last, "body");
    char t[32] = "";
    if (c->tty && cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(last, "ts"))) {
        cli_time((int64_t)NUM(last, "ts"), t, sizeof(t));
    }
    printf("chat %s%s unread=%.0f%s%s last=[%.0f] %s%s%s%s%s\n", group != NULL ? "#" : "",
           group != NULL ? group : STR(it, "chat"), NUM(it, "unread"), presence != NULL ? " " : "",
           presence != NULL ? presence : "", NUM(it, "last_seq"), t, t[0] != '\0' ? " " : "",
           t[0] != '\0' && STR(last, "from") != NULL ? STR(last, "from") : "",
           t[0] != '\0' && STR(last, "from") != NULL ? ": " : "", body != NULL ? body : "");
}

/* --json: each element of the response's list as a line of its own. */
static bool response_json(const cJSON *o)
{
    static const struct { const char *list, *event; } lists[] = {
        { "messages", "message" }, { "users", "presence" }, { "chats", "chat" }, { "groups", "group" },
    };
    const cJSON *it;
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "ok"))) {
        cJSON *e = cJSON_Duplicate(o, true);
        cJSON_DeleteItemFromObjectCaseSensitive(e, "ok");
        cJSON_AddStringToObject(e, "event", "error");
        cli_json_line(e);
        return true;
    }
    for (size_t k = 0; k < sizeof(lists) / sizeof(lists[0]); k++) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, lists[k].list);
        if (!cJSON_IsArray(arr)) {
            continue;
        }
        cJSON_ArrayForEach(it, arr)
        {
            cJSON *line = cJSON_CreateObject();
            const cJSON *f;
            cJSON_AddStringToObject(line, "event", lists[k].event);
            cJSON_ArrayForEach(f, it)
            {
                cJSON_AddItemToObject(line, f->string, cJSON_Duplicate(f, true));
            }
            cli_json_line(line);
        }
        return true;
    }
    /* group info, group changes, msg_status: the answer itself */
    {
        cJSON *e = cJSON_Duplicate(o, true);
        cJSON_DeleteItemFromObjectCaseSensitive(e, "ok");
        cJSON_AddStringToObject(e, "event", STR(o, "op") != NULL ? STR(o, "op") : "response");
        cli_json_line(e);
    }
    return true;
}

/* Responses to requests (history, presence, groups, chats), for people. */
void cli_print_response(cli_t *c, const cJSON *o)
{
    const cJSON *it;
    if (c->json && response_json(o)) {
        return;
    }
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "ok"))) {
        printf("error: %s (%s)\n", STR(o, "code"), STR(o, "reason"));
    }
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(o, "messages"))
    {
        history_line(c, it);
    }
    /* group_info and group changes: the members; msg_status: their status */
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(o, "members"))
    {
        const char *role = STR(it, "role"), *status = STR(it, "status");
        printf("member %s %s\n", STR(it, "user"), role != NULL ? role : status != NULL ? status : "");
    }
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(o, "groups"))
    {
        printf("group %s \"%s\" %s %.0f members\n", STR(it, "group"), STR(it, "title"), STR(it, "role"),
               NUM(it, "members"));
    }
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(o, "chats"))
    {
        chat_line(c, it);
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "pruned"))) {
        printf("(older messages were removed by retention; the oldest kept is seq %.0f)\n", NUM(o, "first_seq"));
    }
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(o, "users"))
    {
        user_line(it);
    }
    fflush(stdout);
}
