/* The pure rules of the mqim_auth plugin (auth_rules.h). */
#include "auth_rules.h"

#include <string.h>

/* If `s` starts with `prefix` (len bytes), the rest; else NULL. */
static const char *skip(const char *s, const char *prefix, size_t len)
{
    return strncmp(s, prefix, len) == 0 ? s + len : NULL;
}

/* `rest` is `level` or `level/...` (the topic filter `level/#`). */
static bool under(const char *rest, const char *level)
{
    size_t n = strlen(level);
    return rest != NULL && strncmp(rest, level, n) == 0 && (rest[n] == '\0' || rest[n] == '/');
}

/* After "{root}/": NULL when the topic is outside the root. */
static const char *after_root(const char *root, const char *topic)
{
    const char *rest = skip(topic, root, strlen(root));
    return rest != NULL && rest[0] == '/' ? rest + 1 : NULL;
}

/* After "u/{user}/": the user's own subtree, or NULL. */
static const char *own_subtree(const char *rest, const char *user)
{
    size_t n = strlen(user);
    rest = rest != NULL ? skip(rest, "u/", 2u) : NULL;
    if (rest == NULL || n == 0u || strncmp(rest, user, n) != 0 || rest[n] != '/') {
        return NULL;
    }
    return rest + n + 1;
}

bool mqim_auth_topic_allowed(const char *root, const char *user, bool is_gateway,
                             const char *topic, mqim_auth_access_t access)
{
    const char *rest;
    if (root == NULL || topic == NULL || user == NULL) {
        return false;
    }
    rest = after_root(root, topic);
    if (rest == NULL) {
        return false; /* nothing outside the root, not even for the gateway ($SYS, ...) */
    }
    if (is_gateway) {
        return true;
    }
    if (access == MQIM_AUTH_WRITE) {
        return under(own_subtree(rest, user), "out");
    }
    if (under(own_subtree(rest, user), "in") || under(rest, "presence") || under(rest, "keys")) {
        return true;
    }
    /* The gateway's status is for everyone; its stats are the operator's. */
    return under(rest, "gateway") && !under(rest, "gateway/stats");
}

/* Is client_id (len bytes) `name` or `name.*`? */
static bool in_namespace(const char *cid, size_t len, const char *name, size_t n)
{
    return n > 0u && n <= len && memcmp(cid, name, n) == 0 && (len == n || cid[n] == '.');
}

mqim_auth_cid_t mqim_auth_client_id_check(const char *user, bool is_gateway,
                                          const char *client_id, const char *gateway_id,
                                          mqim_auth_user_exists_fn exists, void *ctx)
{
    size_t len = client_id != NULL ? strlen(client_id) : 0u;
    size_t glen = gateway_id != NULL ? strlen(gateway_id) : 0u;
    if (len == 0u || len > MQIM_AUTH_CID_MAX || user == NULL) {
        return MQIM_AUTH_CID_BAD;
    }
    if (is_gateway) {
        return MQIM_AUTH_CID_OK;
    }
    if (glen > 0u && len >= glen && memcmp(client_id, gateway_id, glen) == 0 &&
        (len == glen || strcmp(client_id + glen, ".out") == 0)) {
        return MQIM_AUTH_CID_GATEWAY;
    }
    /* The owner is the longest existing name among the whole id and each
     * prefix ending before a '.': look from the longest down. */
    for (size_t n = len; n > 0u; n--) {
        if (n < len && client_id[n] != '.') {
            continue;
        }
        if (in_namespace(client_id, len, user, strlen(user)) && strlen(user) == n) {
            return MQIM_AUTH_CID_OK; /* the user's own, and no longer name owns it */
        }
        if (exists != NULL && exists(ctx, client_id, n)) {
            return MQIM_AUTH_CID_OTHER_USER;
        }
    }
    return MQIM_AUTH_CID_OK; /* nobody's namespace */
}

bool mqim_auth_bucket_take(mqim_auth_bucket_t *b, unsigned rate, unsigned burst, int64_t now_ms)
{
    double cap = burst > 0u ? (double)burst : 1.0;
    if (rate == 0u) {
        return true;
    }
    if (b->last_ms == 0) {
        b->tokens = cap;
    } else if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * (double)rate / 1000.0;
    }
    if (b->tokens > cap) {
        b->tokens = cap;
    }
    if (now_ms > b->last_ms || b->last_ms == 0) {
        b->last_ms = now_ms > 0 ? now_ms : 1;
    }
    if (b->tokens < 1.0) {
        return false;
    }
    b->tokens -= 1.0;
    return true;
}

bool mqim_auth_lograte_refusal(mqim_auth_lograte_t *l, int64_t interval_ms, int64_t now_ms)
{
    if (l->window_start_ms == 0 || now_ms - l->window_start_ms >= interval_ms) {
        if (l->suppressed == 0u) {
            l->window_start_ms = now_ms > 0 ? now_ms : 1;
            return true;
        }
    }
    l->suppressed++;
    return false;
}

uint64_t mqim_auth_lograte_flush(mqim_auth_lograte_t *l, int64_t interval_ms, int64_t now_ms)
{
    uint64_t n = l->suppressed;
    if (l->window_start_ms == 0 || now_ms - l->window_start_ms < interval_ms || n == 0u) {
        return 0u;
    }
    l->suppressed = 0u;
    l->window_start_ms = now_ms > 0 ? now_ms : 1;
    return n;
}
