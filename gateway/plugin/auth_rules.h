/**
 * @file auth_rules.h
 * @brief The pure rules of the mqim_auth broker plugin (mqim_auth.c): which
 *        topics a user may read and write, which client ids a user may
 *        take, the per-user publish budget (a token bucket) and the
 *        rate limit of refusal log lines. No broker, no LMDB, no I/O: the
 *        plugin passes in what it knows, the unit tests do the same.
 *
 * The topic rules are those of the ACL file `mqim-gateway init` writes in
 * files mode (users.c), plus the operator-only topics:
 *
 *   gateway account   read and write {root}/#
 *   every other user  write {root}/u/{me}/out/#
 *                     read  {root}/u/{me}/in/#, {root}/presence/#,
 *                           {root}/keys/#, {root}/gateway/# except
 *                           {root}/gateway/stats (the gateway's own)
 *
 * Subscriptions are granted (like acl_file, reads are checked when the
 * broker delivers), so a filter like `#` is allowed and delivers only what
 * the read rule allows.
 */
#ifndef MQIM_AUTH_RULES_H
#define MQIM_AUTH_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** What the broker asks about a topic. */
typedef enum {
    MQIM_AUTH_READ,  /**< the broker is about to deliver a message to the client */
    MQIM_AUTH_WRITE, /**< the client publishes */
} mqim_auth_access_t;

/** May `user` (is_gateway: the gateway's account) read or write `topic`
 * under `root`? Names are NUL-terminated (the broker's strings). */
bool mqim_auth_topic_allowed(const char *root, const char *user, bool is_gateway,
                             const char *topic, mqim_auth_access_t access);

/** The verdict on a client id (see mqim_auth_client_id_check). */
typedef enum {
    MQIM_AUTH_CID_OK,         /**< the user's own id, or an id nobody owns */
    MQIM_AUTH_CID_OTHER_USER, /**< `{other}` or `{other}.*` of an existing user */
    MQIM_AUTH_CID_GATEWAY,    /**< one of the gateway's client ids */
    MQIM_AUTH_CID_BAD,        /**< empty, or longer than MQIM_AUTH_CID_MAX */
} mqim_auth_cid_t;

#define MQIM_AUTH_CID_MAX 256u

/** Does a user of this name exist? (the plugin asks LMDB) */
typedef bool (*mqim_auth_user_exists_fn)(void *ctx, const char *name, size_t len);

/**
 * Client id binding. A client id `U` or `U.anything` belongs to user U:
 * the longest existing user name U it starts with (so `bob.smith.phone`
 * belongs to `bob.smith`, not to `bob`). Only U may connect with it. The
 * gateway's ids (`gateway_id` and `gateway_id.out`) belong to the gateway's
 * account. An id that belongs to nobody (mosquitto_pub's random
 * `mosq-...`) is open to every authenticated user. The gateway's account
 * may use any id.
 */
mqim_auth_cid_t mqim_auth_client_id_check(const char *user, bool is_gateway,
                                          const char *client_id, const char *gateway_id,
                                          mqim_auth_user_exists_fn exists, void *ctx);

/** A token bucket: `rate` publishes per second, up to `burst` at once. */
typedef struct {
    double tokens;
    int64_t last_ms; /**< 0: never used (starts full) */
} mqim_auth_bucket_t;

/** Take one token at now_ms: true when the publish is within the budget.
 * rate 0 = no budget (always true). */
bool mqim_auth_bucket_take(mqim_auth_bucket_t *b, unsigned rate, unsigned burst, int64_t now_ms);

/** The refusal log of one user: the first refusal of an interval is
 * logged at once, the others are counted and summed up in one line when
 * the interval is over. */
typedef struct {
    int64_t window_start_ms; /**< 0: nothing logged yet */
    uint64_t suppressed;     /**< refusals not logged in this window */
} mqim_auth_lograte_t;

/** A refusal at now_ms: true when it is to be logged in full now. */
bool mqim_auth_lograte_refusal(mqim_auth_lograte_t *l, int64_t interval_ms, int64_t now_ms);

/** At a tick: the number of refusals to sum up now (the interval ended
 * with some suppressed), 0 otherwise; the window starts again. */
uint64_t mqim_auth_lograte_flush(mqim_auth_lograte_t *l, int64_t interval_ms, int64_t now_ms);

#endif /* MQIM_AUTH_RULES_H */
