/* Internal to the gateway's route layer: the state and helpers that
 * router.c (direct messages, receipts, presence, the ctl dispatcher) shares
 * with its features, groups.c, chats.c, files.c and keys.c, and the tables
 * by which each feature registers its ctl ops (rt_feature_t). Not an API:
 * gateway/CMakeLists.txt keeps this folder out of the other layers' reach. */
#ifndef MQIM_GW_ROUTER_INTERNAL_H
#define MQIM_GW_ROUTER_INTERNAL_H

#include <cjson/cJSON.h>

#include "mqim/envelope.h"
#include "mqim/id.h"
#include "mqim/json_write.h"
#include "mqim/limits.h"
#include "mqim/sha256.h"
#include "mqim/topic.h"
#include "log_limit.h"
#include "ratelimit.h"
#include "router.h"

#define REASON_MAX 160

/* A growable buffer reused for every JSON document the router writes, so the
 * hot path allocates only when a document outgrows every earlier one. */
typedef struct scratch {
    char *buf;
    size_t cap;
} scratch_t;

/* The features of the route layer, in the order their ctl ops are listed
 * in the "unknown op" answer; index of mqim_router.work. */
typedef enum rt_feature_id {
    RT_FEATURE_ROUTER, /* sync, history, presence (router.c) */
    RT_FEATURE_GROUPS,
    RT_FEATURE_CHATS,
    RT_FEATURE_FILES,
    RT_FEATURE_KEYS,
    RT_FEATURES
} rt_feature_id_t;

struct mqim_router {
    mqim_store_t *store;
    mqim_router_config_t cfg;
    mqim_str_t root;
    mqim_ratelimit_t *rl;
    mqim_ratelimit_t *rl_file; /* out/file has its own budget: a file is many requests */
    mqim_idgen_t idgen;
    scratch_t doc;   /* the payload being written */
    scratch_t env;   /* an envelope embedded in a document */
    char topic[MQIM_TOPIC_MAX + 1];
    /* The DM path's decoded envelope (too big for the stack). */
    struct dm_parse *dm;
    /* Each feature's work area (rt_features[i]), allocated once at the
     * largest size its table asks for: too big for the stack, and a ctl
     * op's must outlive the handler that fills it (the response body is
     * written after it returns). */
    void *work[RT_FEATURES];
    /* The "unknown op" reasons, written from the tables at router_new. */
    char known_ops[512];
    char known_file_ops[128];
    /* Storage failures (full map, full disk, errors) refuse every publish
     * while they last: one log line per STORE_LOG_INTERVAL_MS with a count. */
    int64_t store_log_at;
    uint64_t store_log_skipped;
    mqim_log_limit_t reject_log; /* rejection lines: one per user per interval under a flood */
};

/* What is being handled: shared by the handlers of one inbound publish. */
typedef struct req {
    mqim_router_t *r;
    const mqim_inbound_t *in;
    mqim_topic_t t;
    mqim_txn_t txn;
    int64_t now;
    /* rt_reject commits without the meta-page fsync: set for rate-limited
     * publishes, so a flood from one user costs the disk (and everyone
     * else's latency) as little as possible; such an ack changes no state. */
    bool reject_lazy;
    /* A store failure met while writing a document (the builders cannot
     * return one): rt_build_doc turns it into a failed answer. */
    mqim_status_t body_st;
} req_t;

/** Record a store failure of a document builder (the first one counts). */
static inline void rt_body_status(req_t *q, mqim_status_t st)
{
    if (st != MQIM_OK && q->body_st == MQIM_OK) {
        q->body_st = st;
    }
}

typedef void (*build_fn)(mqim_json_writer_t *w, const void *ctx);

/* A `sent` ack: {"status":"sent","id":..,"to" or "group":..,"seq":..,"ts":..}. */
typedef struct sent_doc {
    mqim_str_t id, to; /* to: the peer, or the group when group */
    uint64_t seq;
    int64_t ts;
    bool group;
} sent_doc_t;

/* Room for an envelope decoded from a payload of at most MQIM_PAYLOAD_MAX. */
typedef struct dm_parse {
    mqim_envelope_t env;
    char idbuf[MQIM_ULID_LEN + 1];
    char arena[MQIM_PAYLOAD_MAX];
    struct {
        char id[MQIM_ID_MAX + 1];
        char name[MQIM_FILE_NAME_MAX + 1];
        char mime[MQIM_MIME_MAX + 1];
        char sha256[MQIM_SHA256_HEX_LEN];
    } filebuf; /* a file message's description, from the store (files.c) */
} dm_parse_t;

typedef struct ctl_doc ctl_doc_t;
typedef void (*ctl_body_fn)(mqim_json_writer_t *w, const ctl_doc_t *d);

struct ctl_doc {
    req_t *q;
    const char *op;
    const cJSON *reqid; /* the request's "req", echoed when a string or integer */
    mqim_status_t code; /* MQIM_OK: "ok":true */
    const char *reason;
    ctl_body_fn body;
    const void *ctx;
    bool keep_effects; /* commit the request's writes even though code is an error */
    /* A read whose answer is not worth a durable write (a file chunk):
     * published at once, not through the outbox; a lost one is asked again. */
    bool direct_response;
};

/* ---- ctl ops as tables ---- */

/** A ctl op's handler: reads the request (root), fills d (code, reason,
 *  body, ctx) and may use the feature's work area (at least work_size
 *  bytes, zeroed once at start; d->ctx may point into it). */
typedef mqim_status_t (*rt_ctl_fn)(req_t *q, const cJSON *root, ctl_doc_t *d, void *work);

typedef struct rt_ctl_op {
    const char *op;
    rt_ctl_fn handle;
    size_t work_size;
} rt_ctl_op_t;

/** What a feature registers: its ops (adding an op is one line of its
 *  table) and the work its other paths need (messages, file attachments). */
typedef struct rt_feature {
    rt_feature_id_t id;
    const rt_ctl_op_t *ops;
    size_t n_ops;
    size_t work_size;
    bool file_topic; /* its ops are the ones out/file takes (besides out/ctl) */
} rt_feature_t;

extern const rt_feature_t rt_router_feature; /* router.c */
extern const rt_feature_t gr_feature;        /* groups.c */
extern const rt_feature_t ch_feature;        /* chats.c */
extern const rt_feature_t fl_feature;        /* files.c */
extern const rt_feature_t kx_feature;        /* keys.c */

/** A feature's work area. */
static inline void *rt_work(const mqim_router_t *r, rt_feature_id_t id)
{
    return r->work[id];
}

/* ---- helpers (router.c) ---- */

mqim_status_t rt_build_json(scratch_t *s, build_fn fn, const void *ctx, mqim_str_t *out);
/** rt_build_json into q->r->doc, failing with the store failure a builder
 *  met (rt_body_status): no document built over a failed read goes out. */
mqim_status_t rt_build_doc(req_t *q, build_fn fn, const void *ctx, mqim_str_t *out);
mqim_status_t rt_encode_envelope(scratch_t *s, const mqim_envelope_t *env, mqim_str_t *out);
/** Copy an envelope's device and file description into a message record. */
void rt_msg_set_extras(mqim_msg_rec_t *m, const mqim_envelope_t *env);
void rt_envelope_from_rec(const mqim_msg_rec_t *m, uint64_t seq, mqim_envelope_t *env);
mqim_status_t rt_user_topic(mqim_router_t *r, mqim_topic_kind_t kind, mqim_str_t user, mqim_str_t *out);
/** Queue a publish to a user's in/ topic (or presence) in the current txn. */
mqim_status_t rt_emit(req_t *q, mqim_topic_kind_t kind, mqim_str_t user, int qos, bool retain,
                      mqim_str_t payload);
void rt_publish_now(mqim_router_t *r, mqim_str_t topic, mqim_str_t payload, int qos, mqim_str_t corr);
/** A `rejected` ack to the sender (its own transaction); returns code. */
mqim_status_t rt_reject(req_t *q, const char *re, mqim_str_t id, mqim_str_t to, mqim_status_t code,
                        const char *reason_fmt, ...) __attribute__((format(printf, 6, 7)));
cJSON *rt_parse_object(mqim_str_t payload, mqim_status_t *st);
bool rt_json_u64(const cJSON *item, uint64_t *out);
mqim_str_t rt_json_str(const cJSON *item);
void rt_build_sent(mqim_json_writer_t *w, const void *vctx);
/** Confirm a retried publish already stored, from its dedupe record (the
 *  `sent` ack payload): the echo again, or that ack when ack_sent. */
mqim_status_t rt_confirm_again(req_t *q, mqim_str_t sent, bool ack_sent);
bool rt_payload_is_json(mqim_str_t p);
void rt_random_bytes(mqim_router_t *r, uint8_t *buf, size_t len);
mqim_status_t rt_dm_parse(req_t *q, dm_parse_t *p, const char **reason);
mqim_status_t rt_make_id(req_t *q, dm_parse_t *p);
mqim_status_t rt_check_quota(req_t *q, mqim_str_t user, uint64_t *quota);
mqim_status_t rt_prune_count(req_t *q, mqim_str_t user);
bool rt_user_known(req_t *q, mqim_str_t user);
mqim_status_t rt_receipt_forward(req_t *q, const char *status, const mqim_inbox_entry_t *e,
                                 mqim_str_t device);

/* ---- groups.c ---- */

/** A group's retention: its own policy, else the configured default; 0 =
 *  no limit. g NULL is an ended group (age: the default; count: none). */
uint64_t rt_group_keep(const mqim_router_config_t *cfg, const mqim_group_rec_t *g);
int64_t rt_group_age_ms(const mqim_router_config_t *cfg, const mqim_group_rec_t *g);

/** A message published to {root}/u/{me}/out/group/{group}. */
mqim_status_t gr_handle_message(req_t *q);

/* ---- files.c ---- */

/**
 * A message naming a file (or of type "file"): check the sender uploaded
 * it completely and fill in its description (inside q->txn).
 * @return MQIM_OK (also for messages without a file), MQIM_FIELD_MISSING,
 *         MQIM_FIELD_RANGE, MQIM_NOT_FOUND, MQIM_FILE_INCOMPLETE, store errors.
 */
mqim_status_t fl_attach(req_t *q, dm_parse_t *p, const char **reason);
/** Let user (a recipient of env) fetch env's file; nothing for other messages. */
mqim_status_t fl_grant(req_t *q, const mqim_envelope_t *env, mqim_str_t user);

/* ---- keys.c ---- */

/** A device's public key (or its removal) published to {root}/u/{me}/out/key. */
mqim_status_t kx_handle_key(req_t *q);

#endif /* MQIM_GW_ROUTER_INTERNAL_H */
