/* Routing rules of the gateway (see router.h and docs/protocol.md). */
#include "router.h"
#include "router_internal.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "log.h"
#include "metrics.h"
#include "mqim/envelope.h"
#include "mqim/id.h"
#include "mqim/json_read.h"
#include "mqim/json_write.h"
#include "mqim/limits.h"
#include "mqim/name.h"
#include "mqim/topic.h"
#include "mqim/utf8.h"
#include "ratelimit.h"

#define LOG_MOD "router"
#define RECEIPT_SEQS_MAX 256
#define PRESENCE_USERS_MAX 100
/* Devices a user may have. Without a bound, one user publishing statuses for
 * ever new device names grows its device table, and with it every presence
 * document the gateway builds and retains for that user (each status
 * rebuilds it: quadratic work, and megabytes retained on im/presence/{user}
 * for every subscriber). */
#define DEVICES_PER_USER_MAX 64u


static bool scratch_reserve(scratch_t *s, size_t need)
{
    char *nb;
    size_t cap;
    if (need <= s->cap) {
        return true;
    }
    cap = s->cap > 0u ? s->cap : 1024u;
    while (cap < need) {
        cap *= 2u;
    }
    nb = realloc(s->buf, cap);
    if (nb == NULL) {
        return false;
    }
    s->buf = nb;
    s->cap = cap;
    return true;
}

/* Run a builder into a scratch buffer; a second pass only when the first
 * one found the buffer too small. */
mqim_status_t rt_build_json(scratch_t *s, build_fn fn, const void *ctx, mqim_str_t *out)
{
    for (int pass = 0; pass < 2; pass++) {
        mqim_json_writer_t w;
        size_t len = 0;
        mqim_json_init(&w, s->buf, s->cap);
        fn(&w, ctx);
        if (mqim_json_finish(&w, &len) == MQIM_OK) {
            *out = (mqim_str_t){ s->buf, len };
            return MQIM_OK;
        }
        if (!scratch_reserve(s, len + 1u)) {
            return MQIM_INTERNAL;
        }
    }
    return MQIM_INTERNAL;
}

mqim_status_t rt_build_doc(req_t *q, build_fn fn, const void *ctx, mqim_str_t *out)
{
    mqim_status_t st;
    q->body_st = MQIM_OK;
    st = rt_build_json(&q->r->doc, fn, ctx, out);
    return st == MQIM_OK ? q->body_st : st;
}

mqim_status_t rt_encode_envelope(scratch_t *s, const mqim_envelope_t *env, mqim_str_t *out)
{
    size_t len = 0;
    mqim_status_t st = mqim_envelope_encode(env, s->buf, s->cap, &len);
    if (st == MQIM_BUFFER_TOO_SMALL) {
        if (!scratch_reserve(s, len + 1u)) {
            return MQIM_INTERNAL;
        }
        st = mqim_envelope_encode(env, s->buf, s->cap, &len);
    }
    if (st == MQIM_OK) {
        *out = (mqim_str_t){ s->buf, len };
    }
    return st;
}

void rt_msg_set_extras(mqim_msg_rec_t *m, const mqim_envelope_t *env)
{
    m->device = env->device;
    if (env->enc.len > 0u) {
        /* An encrypted body rides in the body slot, flagged: the gateway
         * cannot read it and hands it on verbatim. */
        m->body = env->enc;
        m->enc = true;
    }
    if (env->has_file) {
        m->file_id = env->file.id;
        m->file_name = env->file.name;
        m->file_mime = env->file.mime;
        m->file_sha256 = env->file.sha256;
        m->file_size = env->file.size;
    }
}

void rt_envelope_from_rec(const mqim_msg_rec_t *m, uint64_t seq, mqim_envelope_t *env)
{
    memset(env, 0, sizeof(*env));
    env->id = m->id;
    env->from = m->from;
    env->to = m->to;
    env->group = m->group;
    env->type = m->type;
    if (m->enc) {
        env->enc = m->body;
    } else {
        env->body = m->body;
    }
    env->device = m->device;
    if (m->file_id.len > 0u) {
        env->has_file = true;
        env->file.id = m->file_id;
        env->file.name = m->file_name;
        env->file.mime = m->file_mime;
        env->file.sha256 = m->file_sha256;
        env->file.size = m->file_size;
        env->file.has_size = true;
    }
    env->seq = seq;
    env->has_seq = true;
    env->ts = m->ts;
    env->has_ts = true;
}

/* ---- outputs ---- */

mqim_status_t rt_user_topic(mqim_router_t *r, mqim_topic_kind_t kind, mqim_str_t user,
                                mqim_str_t *out)
{
    size_t len = 0;
    mqim_status_t st = mqim_topic_build(r->root, kind, user, (mqim_str_t){ NULL, 0 }, r->topic,
                                        sizeof(r->topic), &len);
    *out = (mqim_str_t){ r->topic, len };
    return st;
}

/* Queue a publish to a user's in/ topic (or presence) in the current txn. */
mqim_status_t rt_emit(req_t *q, mqim_topic_kind_t kind, mqim_str_t user, int qos, bool retain,
                          mqim_str_t payload)
{
    mqim_str_t topic;
    mqim_status_t st = rt_user_topic(q->r, kind, user, &topic);
    if (st == MQIM_OK) {
        st = mqim_store_outbox_put(&q->txn, topic, qos, retain, (mqim_str_t){ NULL, 0 }, payload,
                                   NULL);
    }
    return st;
}

void rt_publish_now(mqim_router_t *r, mqim_str_t topic, mqim_str_t payload, int qos,
                        mqim_str_t corr)
{
    if (r->cfg.publish_now != NULL) {
        mqim_outbound_t o = { topic, payload, qos, false, corr };
        r->cfg.publish_now(r->cfg.publish_ctx, &o);
    }
}

/* ---- rejected acks ---- */

typedef struct reject_doc {
    const char *re;      /* what was rejected: "dm", "receipt", "status", "ctl" */
    mqim_str_t id;       /* message id when known */
    mqim_str_t to;       /* peer when known */
    mqim_status_t code;
    const char *reason;
    const uint64_t *seqs;
    size_t nseqs;
    int64_t ts;
} reject_doc_t;

static void build_reject(mqim_json_writer_t *w, const void *vctx)
{
    const reject_doc_t *d = vctx;
    mqim_json_object_begin(w);
    mqim_json_key_str(w, "status", MQIM_STR("rejected"));
    mqim_json_key_str(w, "re", mqim_str_from_cstr(d->re));
    if (d->id.len > 0u) {
        mqim_json_key_str(w, "id", d->id);
    }
    if (d->to.len > 0u) {
        mqim_json_key_str(w, "to", d->to);
    }
    mqim_json_key_str(w, "code", mqim_str_from_cstr(mqim_status_name(d->code)));
    mqim_json_key_u64(w, "code_num", (uint64_t)d->code);
    mqim_json_key_str(w, "reason", mqim_str_from_cstr(d->reason));
    if (d->nseqs > 0u) {
        mqim_json_array_begin(w, "seqs");
        for (size_t i = 0; i < d->nseqs; i++) {
            mqim_json_value_u64(w, d->seqs[i]);
        }
        mqim_json_array_end(w);
    }
    mqim_json_key_i64(w, "ts", d->ts);
    mqim_json_object_end(w);
}

/*
 * Tell the sender why its publish was rejected. The ack goes through the
 * outbox in a fresh transaction (the failed one is aborted by the caller);
 * when even that cannot be stored (store full) it is published directly,
 * so a rejection is never silent.
 */

#define STORE_LOG_INTERVAL_MS 10000

static bool store_failure(mqim_status_t st)
{
    return st == MQIM_STORE_FULL || st == MQIM_DISK_FULL || st == MQIM_STORE_ERROR;
}

/* One line per refused publish of a flood would fill the journal: at most
 * one per user per REJECT_LOG_INTERVAL_MS, saying how many were left out
 * (the metrics count each: mqim_rejections_total). */
#define REJECT_LOG_INTERVAL_MS 10000

static void log_rejection(req_t *q, const char *re, mqim_status_t code, const char *reason)
{
    uint64_t more = 0;
    char tail[96] = "";
    if (mqim_log_get_level() < MQIM_LOG_INFO) {
        return; /* not printed: not counted against the user's next line either */
    }
    if (!mqim_log_limit_admit(&q->r->reject_log, q->t.user, q->now, &more)) {
        return;
    }
    if (more > 0u) {
        snprintf(tail, sizeof(tail), "; %" PRIu64 " more rejections of this user since its last line",
                 more);
    }
    MQIM_LOGI(LOG_MOD, "rejected %s from %.*s: %s (%s)%s", re, (int)q->t.user.len, q->t.user.ptr,
              mqim_status_name(code), reason, tail);
}

mqim_status_t rt_reject(req_t *q, const char *re, mqim_str_t id, mqim_str_t to,
                            mqim_status_t code, const char *reason_fmt, ...)
{
    mqim_router_t *r = q->r;
    char reason[REASON_MAX];
    reject_doc_t d = { re, id, to, code, reason, NULL, 0, q->now };
    mqim_str_t payload, topic;
    mqim_status_t st;
    va_list ap;
    va_start(ap, reason_fmt);
    vsnprintf(reason, sizeof(reason), reason_fmt, ap);
    va_end(ap);

    mqim_metrics_rejected(code);
    if (store_failure(code)) {
        /* A full disk refuses every publish until it is fixed: one line
         * per interval, with how many were refused since the last one. */
        if (q->now - r->store_log_at >= STORE_LOG_INTERVAL_MS || r->store_log_at == 0) {
            MQIM_LOGE(LOG_MOD, "storage: %s (%s); refusing publishes (%" PRIu64 " more refused "
                      "since the last line)", mqim_status_name(code), mqim_status_str(code),
                      r->store_log_skipped);
            r->store_log_at = q->now;
            r->store_log_skipped = 0;
        } else {
            r->store_log_skipped++;
        }
    } else {
        log_rejection(q, re, code, reason);
    }
    if (rt_build_json(&r->doc, build_reject, &d, &payload) != MQIM_OK ||
        rt_user_topic(r, MQIM_TOPIC_IN_ACK, q->t.user, &topic) != MQIM_OK) {
        return MQIM_INTERNAL;
    }
    if (q->in->qos == 0) {
        rt_publish_now(r, topic, payload, 0, (mqim_str_t){ NULL, 0 });
        return code;
    }
    st = mqim_txn_begin(r->store, q->reject_lazy ? MQIM_TXN_WRITE_LAZY : MQIM_TXN_WRITE, &q->txn);
    if (st == MQIM_OK) {
        st = mqim_store_outbox_put(&q->txn, topic, 1, false, (mqim_str_t){ NULL, 0 }, payload, NULL);
        if (st == MQIM_OK) {
            (void)mqim_store_counter_add(&q->txn, "rejected", 1u);
            st = mqim_txn_commit(&q->txn);
        } else {
            mqim_txn_abort(&q->txn);
        }
    }
    if (st != MQIM_OK) {
        if (!store_failure(code)) { /* else counted above */
            MQIM_LOGW(LOG_MOD, "cannot store rejection (%s): publishing it directly",
                      mqim_status_name(st));
        }
        rt_publish_now(r, topic, payload, 1, (mqim_str_t){ NULL, 0 });
        return st;
    }
    return code;
}

/* ---- JSON input helpers ---- */

/* Parse a request object; on failure *st says why. The strict reader
 * judges the text first (the same grammar, depth and UTF-8 rules as
 * envelopes and devices), then cJSON builds the tree the handlers walk. */
/* A payload that must be one JSON object, by the strict reader: where its
 * values are all a handler needs, this is the payload's only parse. */
static mqim_status_t parse_object(mqim_str_t payload, mqim_json_value_t *root)
{
    mqim_status_t st;
    if (payload.len > MQIM_PAYLOAD_MAX) {
        return MQIM_PAYLOAD_TOO_LARGE;
    }
    st = mqim_json_parse(payload, MQIM_JSON_DEPTH_MAX, root);
    return st == MQIM_OK && root->type != MQIM_JSON_OBJECT ? MQIM_JSON_NOT_OBJECT : st;
}

cJSON *rt_parse_object(mqim_str_t payload, mqim_status_t *st)
{
    mqim_json_value_t root_value;
    cJSON *root;
    *st = parse_object(payload, &root_value);
    if (*st != MQIM_OK) {
        return NULL;
    }
    root = cJSON_ParseWithLength(payload.ptr, payload.len);
    if (root == NULL) {
        *st = MQIM_INTERNAL; /* valid JSON: only memory can fail here */
    }
    return root;
}

/* A JSON number that is a whole u64 we can trust (<= 2^53). */
bool rt_json_u64(const cJSON *item, uint64_t *out)
{
    double v;
    if (!cJSON_IsNumber(item)) {
        return false;
    }
    v = item->valuedouble;
    if (v < 0.0 || v > 9007199254740992.0 || v != (double)(uint64_t)v) {
        return false;
    }
    *out = (uint64_t)v;
    return true;
}

mqim_str_t rt_json_str(const cJSON *item)
{
    if (cJSON_IsString(item) && item->valuestring != NULL) {
        return mqim_str_from_cstr(item->valuestring);
    }
    return (mqim_str_t){ NULL, 0 };
}

/* ---- direct messages ---- */


void rt_build_sent(mqim_json_writer_t *w, const void *vctx)
{
    const sent_doc_t *d = vctx;
    mqim_json_object_begin(w);
    mqim_json_key_str(w, "status", MQIM_STR("sent"));
    mqim_json_key_str(w, "id", d->id);
    mqim_json_key_str(w, d->group ? "group" : "to", d->to);
    mqim_json_key_u64(w, "seq", d->seq);
    mqim_json_key_i64(w, "ts", d->ts);
    mqim_json_object_end(w);
}

/* The echo of the sender's own stored message at `seq` of its inbox,
 * again (the confirmation of a retried publish). MQIM_NOT_FOUND when its
 * inbox no longer holds the message (retention removed it). */
static mqim_status_t echo_again(req_t *q, uint64_t seq)
{
    mqim_inbox_entry_t e;
    mqim_msg_rec_t m;
    mqim_envelope_t env;
    mqim_str_t payload;
    mqim_status_t st = mqim_store_inbox_get(&q->txn, q->t.user, seq, &e);
    if (st == MQIM_OK && (e.pruned || e.dir != MQIM_INBOX_SENT)) {
        st = MQIM_NOT_FOUND;
    }
    if (st == MQIM_OK) {
        st = mqim_store_msg_get(&q->txn, e.mid, &m);
    }
    if (st == MQIM_OK) {
        rt_envelope_from_rec(&m, seq, &env);
        st = rt_encode_envelope(&q->r->env, &env, &payload);
    }
    if (st == MQIM_OK) {
        st = rt_emit(q, MQIM_TOPIC_IN_MSG, q->t.user, 1, false, payload);
    }
    return st;
}

/* A retried publish the gateway already stored (its dedupe record `sent`,
 * the `sent` ack payload of the first time): confirm it again the way this
 * publish asks, with the echo, or with the `sent` ack when asked for or
 * when the echo is gone (retention removed the message). */
mqim_status_t rt_confirm_again(req_t *q, mqim_str_t sent, bool ack_sent)
{
    char copy[1024];
    size_t n = sent.len < sizeof(copy) ? sent.len : sizeof(copy);
    mqim_status_t st = MQIM_NOT_FOUND;
    memcpy(copy, sent.ptr, n); /* sent points into the map; copy before writing */
    if (!ack_sent) {
        mqim_status_t pst;
        cJSON *root = rt_parse_object((mqim_str_t){ copy, n }, &pst);
        uint64_t seq = 0;
        if (root != NULL && rt_json_u64(cJSON_GetObjectItemCaseSensitive(root, "seq"), &seq)) {
            st = echo_again(q, seq);
        }
        cJSON_Delete(root);
    }
    if (st == MQIM_NOT_FOUND) {
        st = rt_emit(q, MQIM_TOPIC_IN_ACK, q->t.user, 1, false, (mqim_str_t){ copy, n });
    }
    return st;
}

bool rt_payload_is_json(mqim_str_t p)
{
    for (size_t i = 0; i < p.len; i++) {
        char c = p.ptr[i];
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
            return c == '{';
        }
    }
    return false;
}

void rt_random_bytes(mqim_router_t *r, uint8_t *buf, size_t len)
{
    if (r->cfg.random != NULL) {
        r->cfg.random(r->cfg.random_ctx, buf, len);
    } else {
        size_t got = 0;
        while (got < len) {
            ssize_t n = getrandom(buf + got, len - got, 0);
            if (n <= 0) {
                break;
            }
            got += (size_t)n;
        }
    }
}


mqim_status_t rt_dm_parse(req_t *q, dm_parse_t *p, const char **reason)
{
    mqim_str_t payload = q->in->payload;
    mqim_status_t st = MQIM_OK;
    *reason = NULL;
    memset(&p->env, 0, sizeof(p->env));
    if (payload.len > MQIM_PAYLOAD_MAX) {
        *reason = "payload is larger than 16384 bytes";
        return MQIM_PAYLOAD_TOO_LARGE;
    }
    if (rt_payload_is_json(payload)) {
        st = mqim_envelope_decode(payload.ptr, payload.len, &p->env, p->arena, sizeof(p->arena),
                                  NULL);
        if (st != MQIM_OK) {
            return st;
        }
        if (q->t.kind == MQIM_TOPIC_OUT_GROUP) {
            if (p->env.group.len > 0u && !mqim_str_eq(p->env.group, q->t.name)) {
                *reason = "\"group\" does not match the topic's group";
                return MQIM_FIELD_RANGE;
            }
            if (p->env.to.len > 0u) {
                *reason = "a group message has no \"to\"";
                return MQIM_FIELD_RANGE;
            }
        } else if (p->env.to.len > 0u && !mqim_str_eq(p->env.to, q->t.name)) {
            *reason = "\"to\" does not match the topic's peer";
            return MQIM_FIELD_RANGE;
        }
    } else {
        /* Plain text from the shell: the whole payload is the body. */
        if (payload.len > MQIM_BODY_MAX) {
            return MQIM_BODY_TOO_LARGE;
        }
        if (!mqim_utf8_valid(payload.ptr, payload.len)) {
            return MQIM_UTF8_INVALID;
        }
        p->env.body = payload;
    }
    if (p->env.type.len == 0u) {
        p->env.type = MQIM_STR("text");
    }
    if (p->env.enc.len > 0u && (p->env.has_file || mqim_str_eq_cstr(p->env.type, "file"))) {
        *reason = "files are not end-to-end encrypted yet: send a file message without \"enc\"";
        return MQIM_UNSUPPORTED;
    }
    /* A stored message says something (its text, or its encrypted text); an
     * ephemeral signal (QoS 0, e.g. {"type":"typing"}) may be only its type. */
    if (p->env.body.len == 0u && p->env.enc.len == 0u && !p->env.has_file &&
        (q->in->qos > 0 || mqim_str_eq_cstr(p->env.type, "text"))) {
        return MQIM_BODY_EMPTY;
    }
    p->env.from = q->t.user; /* never from the payload */
    if (q->t.kind == MQIM_TOPIC_OUT_GROUP) {
        p->env.group = q->t.name;
        p->env.to = (mqim_str_t){ NULL, 0 };
    } else {
        p->env.to = q->t.name;
        p->env.group = (mqim_str_t){ NULL, 0 };
    }
    p->env.has_ts = true;
    p->env.ts = q->now;
    return MQIM_OK;
}

mqim_status_t rt_make_id(req_t *q, dm_parse_t *p)
{
    uint8_t rnd[10];
    mqim_status_t st;
    rt_random_bytes(q->r, rnd, sizeof(rnd));
    st = mqim_id_make(&q->r->idgen, (uint64_t)q->now, rnd, p->idbuf);
    if (st == MQIM_OK) {
        p->env.id = (mqim_str_t){ p->idbuf, MQIM_ULID_LEN };
    }
    return st;
}

/* A user's policy value: its own override, else the gateway's default;
 * 0 in the result means "no limit". */
static uint64_t policy(uint64_t user_value, uint64_t default_value)
{
    if (user_value == MQIM_POLICY_UNLIMITED) {
        return 0u;
    }
    return user_value != 0u ? user_value : default_value;
}

static int64_t policy_age_ms(const mqim_user_rec_t *u, const mqim_router_config_t *cfg)
{
    if (u->retain_days == MQIM_POLICY_UNLIMITED) {
        return 0;
    }
    return u->retain_days != 0u ? (int64_t)u->retain_days * 86400000 : cfg->retain_age_ms;
}

/* Full only when nothing may be pruned to make room: with count retention
 * the oldest message goes instead. *quota receives the limit for the reason. */
static mqim_status_t quota_of(const req_t *q, const mqim_user_rec_t *u, uint64_t *quota)
{
    *quota = policy(u->inbox_quota, q->r->cfg.inbox_quota);
    if (*quota != 0u && u->count >= *quota && policy(u->retain_count, q->r->cfg.retain_count) == 0u) {
        return MQIM_QUOTA_FULL;
    }
    return MQIM_OK;
}

mqim_status_t rt_check_quota(req_t *q, mqim_str_t user, uint64_t *quota)
{
    mqim_user_rec_t u;
    mqim_status_t st = mqim_store_user_get(&q->txn, user, &u);
    *quota = 0;
    return st == MQIM_OK ? quota_of(q, &u, quota) : st;
}

/* Count retention by u's policy (read before the message's appends: the
 * policy fields do not change with them). */
static mqim_status_t prune_count_of(req_t *q, mqim_str_t user, const mqim_user_rec_t *u)
{
    uint64_t pruned = 0, keep = policy(u->retain_count, q->r->cfg.retain_count);
    return keep == 0u ? MQIM_OK : mqim_store_inbox_prune(&q->txn, user, keep, 0, &pruned);
}

mqim_status_t rt_prune_count(req_t *q, mqim_str_t user)
{
    mqim_user_rec_t u;
    mqim_status_t st = mqim_store_user_get(&q->txn, user, &u);
    return st == MQIM_OK ? prune_count_of(q, user, &u) : st;
}

/* Everything a stored direct message does, inside q->txn. */
static mqim_status_t dm_store(req_t *q, dm_parse_t *p, bool sender_chose_id, const mqim_user_rec_t *su,
                              const mqim_user_rec_t *ru)
{
    mqim_router_t *r = q->r;
    mqim_str_t from = q->t.user, to = q->t.name;
    bool self = mqim_str_eq(from, to);
    mqim_msg_rec_t m;
    mqim_envelope_t env = p->env;
    mqim_str_t payload;
    sent_doc_t sent;
    mqim_status_t st;
    int qos = q->in->qos > 1 ? 1 : q->in->qos;

    memset(&m, 0, sizeof(m));
    m.ts = q->now;
    m.qos = (uint8_t)qos;
    m.id = env.id;
    m.from = from;
    m.to = to;
    m.type = env.type;
    m.body = env.body;
    rt_msg_set_extras(&m, &env);
    m.sender_seq = su->next_seq;
    m.recipient_seq = self ? su->next_seq : ru->next_seq;
    m.refs = self ? 1u : 2u;
    st = mqim_store_msg_put(&q->txn, &m);
    if (st == MQIM_OK && !self) {
        uint64_t seq = 0;
        st = mqim_store_inbox_append(&q->txn, to, from, m.mid, MQIM_INBOX_RECEIVED, &seq);
        env.seq = seq;
        env.has_seq = true;
        if (st == MQIM_OK) {
            st = rt_encode_envelope(&r->env, &env, &payload);
        }
        if (st == MQIM_OK) {
            st = rt_emit(q, MQIM_TOPIC_IN_MSG, to, qos, false, payload);
        }
    }
    if (st == MQIM_OK) {
        uint64_t seq = 0;
        st = mqim_store_inbox_append(&q->txn, from, to, m.mid, MQIM_INBOX_SENT, &seq);
        env.seq = seq;
        env.has_seq = true;
        if (st == MQIM_OK) {
            st = rt_encode_envelope(&r->env, &env, &payload);
        }
        if (st == MQIM_OK) {
            st = rt_emit(q, MQIM_TOPIC_IN_MSG, from, qos, false, payload); /* the echo */
        }
    }
    if (st == MQIM_OK) {
        st = fl_grant(q, &env, to);
    }
    if (st == MQIM_OK && (p->env.ack_sent || sender_chose_id)) {
        sent = (sent_doc_t){ env.id, to, m.sender_seq, q->now, false };
        st = rt_build_json(&r->doc, rt_build_sent, &sent, &payload);
    }
    /* The echo confirms the message to the sender's devices; a separate
     * `sent` ack only when the sender asked for one. */
    if (st == MQIM_OK && p->env.ack_sent) {
        st = rt_emit(q, MQIM_TOPIC_IN_ACK, from, 1, false, payload);
    }
    if (st == MQIM_OK && sender_chose_id) {
        st = mqim_store_dedupe_put(&q->txn, from, env.id, payload);
    }
    if (st == MQIM_OK) {
        st = prune_count_of(q, to, ru);
    }
    if (st == MQIM_OK && !self) {
        st = prune_count_of(q, from, su);
    }
    if (st == MQIM_OK) {
        st = mqim_store_counter_add(&q->txn, "messages", 1u);
    }
    return st;
}

/* QoS 0: an ephemeral signal (typing, ping): validated, forwarded, never stored or acked. */
static mqim_status_t dm_ephemeral(req_t *q, dm_parse_t *p)
{
    mqim_str_t payload, topic;
    mqim_status_t st = rt_encode_envelope(&q->r->env, &p->env, &payload);
    if (st == MQIM_OK) {
        st = rt_user_topic(q->r, MQIM_TOPIC_IN_MSG, q->t.name, &topic);
    }
    if (st == MQIM_OK) {
        rt_publish_now(q->r, topic, payload, 0, (mqim_str_t){ NULL, 0 });
    }
    return st;
}

bool rt_user_known(req_t *q, mqim_str_t user)
{
    mqim_user_rec_t u;
    return mqim_store_user_get(&q->txn, user, &u) == MQIM_OK;
}

/* The sender's and the recipient's user records, read once for the whole
 * DM (before, a DM read each about five times: issue 16), and the checks
 * on them. true: the DM was rejected (txn aborted, *out the answer);
 * false: *out is MQIM_OK or a store failure. */
static bool dm_users(req_t *q, dm_parse_t *p, mqim_user_rec_t *su, mqim_user_rec_t *ru, mqim_status_t *out)
{
    mqim_status_t st = mqim_store_user_ensure(&q->txn, q->t.user, q->now);
    if (st == MQIM_OK) {
        st = mqim_store_user_get(&q->txn, q->t.name, ru);
        if (st == MQIM_NOT_FOUND && q->r->cfg.accept_any_user) {
            st = mqim_store_user_ensure(&q->txn, q->t.name, q->now);
            st = st == MQIM_OK ? mqim_store_user_get(&q->txn, q->t.name, ru) : st;
        } else if (st == MQIM_NOT_FOUND) {
            mqim_txn_abort(&q->txn);
            *out = rt_reject(q, "dm", p->env.id, q->t.name, MQIM_UNKNOWN_PEER, "no such user: %.*s",
                          (int)q->t.name.len, q->t.name.ptr);
            return true;
        }
    }
    if (st == MQIM_OK) {
        st = mqim_store_user_get(&q->txn, q->t.user, su);
    }
    if (st == MQIM_OK) {
        uint64_t quota = 0;
        st = quota_of(q, ru, &quota);
        if (st == MQIM_QUOTA_FULL) {
            mqim_txn_abort(&q->txn);
            *out = rt_reject(q, "dm", p->env.id, q->t.name, st, "inbox of %.*s is full (%llu messages)",
                          (int)q->t.name.len, q->t.name.ptr, (unsigned long long)quota);
            return true;
        }
    }
    if (st == MQIM_OK) {
        uint64_t quota = 0;
        st = quota_of(q, su, &quota);
        if (st == MQIM_QUOTA_FULL) {
            mqim_txn_abort(&q->txn);
            *out = rt_reject(q, "dm", p->env.id, q->t.name, st, "your own inbox is full (%llu messages)",
                          (unsigned long long)quota);
            return true;
        }
    }
    *out = st;
    return false;
}

static mqim_status_t handle_dm(req_t *q)
{
    dm_parse_t *p = q->r->dm;
    mqim_router_t *r = q->r;
    const char *reason = NULL;
    mqim_status_t st = rt_dm_parse(q, p, &reason);
    bool chose_id;
    mqim_str_t dup;
    mqim_user_rec_t su, ru;

    if (st != MQIM_OK) {
        return rt_reject(q, "dm", p->env.id, q->t.name, st, "%s",
                      reason != NULL ? reason : mqim_status_str(st));
    }
    chose_id = p->env.id.len > 0u;
    if (!chose_id && rt_make_id(q, p) != MQIM_OK) {
        return rt_reject(q, "dm", p->env.id, q->t.name, MQIM_INTERNAL, "cannot make an id");
    }
    if (q->in->qos == 0 && (p->env.has_file || mqim_str_eq_cstr(p->env.type, "file"))) {
        return rt_reject(q, "dm", p->env.id, q->t.name, MQIM_QOS_ZERO_RECEIPT,
                         "a file message is stored: publish it with QoS 1 or 2");
    }
    if (q->in->qos == 0) {
        bool known = r->cfg.accept_any_user;
        if (!known && mqim_txn_begin(r->store, MQIM_TXN_READ, &q->txn) == MQIM_OK) {
            known = rt_user_known(q, q->t.name);
            mqim_txn_abort(&q->txn);
        }
        if (!known) {
            return rt_reject(q, "dm", p->env.id, q->t.name, MQIM_UNKNOWN_PEER, "no such user: %.*s",
                          (int)q->t.name.len, q->t.name.ptr);
        }
        return dm_ephemeral(q, p);
    }
    st = mqim_txn_begin(r->store, MQIM_TXN_WRITE, &q->txn);
    if (st != MQIM_OK) {
        return rt_reject(q, "dm", p->env.id, q->t.name, st, "%s", mqim_status_str(st));
    }
    /* A retried publish (same sender and id) gets its confirmation again. */
    if (chose_id && mqim_store_dedupe_get(&q->txn, q->t.user, p->env.id, &dup) == MQIM_OK) {
        st = rt_confirm_again(q, dup, p->env.ack_sent);
        if (st == MQIM_OK) {
            st = mqim_store_counter_add(&q->txn, "duplicates", 1u);
        }
        st = st == MQIM_OK ? mqim_txn_commit(&q->txn) : (mqim_txn_abort(&q->txn), st);
        return st == MQIM_OK ? MQIM_OK
                             : rt_reject(q, "dm", p->env.id, q->t.name, st, "%s", mqim_status_str(st));
    }
    if (st == MQIM_OK && dm_users(q, p, &su, &ru, &st)) {
        return st; /* rejected (its own transaction) */
    }
    if (st == MQIM_OK) {
        const char *why = NULL;
        st = fl_attach(q, p, &why);
        if (st != MQIM_OK && !store_failure(st)) {
            mqim_txn_abort(&q->txn);
            return rt_reject(q, "dm", p->env.id, q->t.name, st, "%s",
                             why != NULL ? why : mqim_status_str(st));
        }
    }
    if (st == MQIM_OK) {
        st = dm_store(q, p, chose_id, &su, &ru);
    }
    if (st == MQIM_OK) {
        st = mqim_txn_commit(&q->txn);
    } else {
        mqim_txn_abort(&q->txn);
    }
    if (st != MQIM_OK) {
        return rt_reject(q, "dm", p->env.id, q->t.name, st, "%s", mqim_status_str(st));
    }
    return MQIM_OK;
}

/* ---- receipts ---- */

typedef struct receipt_doc {
    const char *status;
    mqim_str_t id, by, device, chat, group;
    mqim_str_t code; /* refused: why the recipient's device did not show it */
    uint64_t seq;
    int64_t ts;
} receipt_doc_t;

static void build_receipt_ack(mqim_json_writer_t *w, const void *vctx)
{
    const receipt_doc_t *d = vctx;
    mqim_json_object_begin(w);
    mqim_json_key_str(w, "status", mqim_str_from_cstr(d->status));
    mqim_json_key_str(w, "id", d->id);
    mqim_json_key_u64(w, "seq", d->seq);
    mqim_json_key_str(w, "by", d->by);
    if (d->group.len > 0u) {
        mqim_json_key_str(w, "group", d->group);
    }
    if (d->device.len > 0u) {
        mqim_json_key_str(w, "device", d->device);
    }
    if (d->code.len > 0u) {
        mqim_json_key_str(w, "code", d->code);
    }
    mqim_json_key_i64(w, "ts", d->ts);
    mqim_json_object_end(w);
}

/* Forward one receipt for an inbox entry of the receipting user to the
 * sender; code only for "refused". */
static mqim_status_t receipt_forward(req_t *q, const char *status, mqim_str_t code, const mqim_inbox_entry_t *e,
                                     mqim_str_t device)
{
    mqim_msg_rec_t m;
    mqim_str_t payload;
    char from[MQIM_USER_NAME_MAX];
    size_t from_len;
    receipt_doc_t d;
    mqim_status_t st = mqim_store_msg_get(&q->txn, e->mid, &m);
    if (st != MQIM_OK) {
        return st;
    }
    if (m.type.len > 6u && memcmp(m.type.ptr, "group.", 6) == 0) {
        return MQIM_OK; /* membership events are read, not acknowledged to anyone */
    }
    d = (receipt_doc_t){ status, m.id, q->t.user, device, e->chat, m.group, code, m.sender_seq, q->now };
    st = rt_build_json(&q->r->doc, build_receipt_ack, &d, &payload);
    /* m's strings live in the map: copy the sender before writing to the txn. */
    from_len = m.from.len < sizeof(from) ? m.from.len : sizeof(from);
    memcpy(from, m.from.ptr, from_len);
    if (st == MQIM_OK) {
        st = rt_emit(q, MQIM_TOPIC_IN_ACK, (mqim_str_t){ from, from_len }, 1, false, payload);
    }
    if (st == MQIM_OK && e->chat.len > 0u && e->chat.ptr[0] == '#' && code.len == 0u) {
        /* a group message: remember who got and read it (msg_status); a
         * refusal is neither */
        st = mqim_store_receipt_put(&q->txn, e->mid, q->t.user,
                                    strcmp(status, "read") == 0 ? MQIM_RECEIPT_READ : MQIM_RECEIPT_DELIVERED,
                                    q->now);
    }
    return st;
}

mqim_status_t rt_receipt_forward(req_t *q, const char *status, const mqim_inbox_entry_t *e,
                                     mqim_str_t device)
{
    return receipt_forward(q, status, (mqim_str_t){ NULL, 0 }, e, device);
}

/* A refusal's code: a status name as the device library writes it
 * (mqim_status_name), [a-z0-9_], 1..32 characters. */
static bool refusal_code_ok(mqim_str_t code)
{
    if (code.len == 0u || code.len > 32u) {
        return false;
    }
    for (size_t i = 0; i < code.len; i++) {
        char ch = code.ptr[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_')) {
            return false;
        }
    }
    return true;
}

typedef struct read_upto_ctx {
    req_t *q;
    uint64_t upto;
    mqim_str_t device;
    mqim_status_t st;
    uint64_t count;
} read_upto_ctx_t;

static int read_upto_visit(void *vctx, const mqim_inbox_entry_t *e)
{
    read_upto_ctx_t *c = vctx;
    if (e->seq > c->upto) {
        return 1;
    }
    if (e->dir == MQIM_INBOX_RECEIVED) {
        c->st = rt_receipt_forward(c->q, "read", e, c->device);
        c->count++;
    }
    return c->st != MQIM_OK;
}

static mqim_status_t receipt_read_upto(req_t *q, const cJSON *root, mqim_str_t device,
                                       const char **why)
{
    mqim_str_t chat = rt_json_str(cJSON_GetObjectItemCaseSensitive(root, "chat"));
    mqim_str_t group = rt_json_str(cJSON_GetObjectItemCaseSensitive(root, "group"));
    char gchat[MQIM_GROUP_NAME_MAX + 2];
    uint64_t upto = 0, old;
    mqim_user_rec_t u;
    read_upto_ctx_t c;
    mqim_status_t st;
    if (group.len > 0u) {
        /* a group chat: its key is "#group" */
        if (mqim_name_check(MQIM_NAME_GROUP, group) != MQIM_OK) {
            *why = "\"group\" must be a valid group name";
            return MQIM_FIELD_TYPE;
        }
        gchat[0] = '#';
        memcpy(gchat + 1, group.ptr, group.len);
        chat = (mqim_str_t){ gchat, group.len + 1u };
    } else if (mqim_name_check(MQIM_NAME_USER, chat) != MQIM_OK) {
        *why = "\"chat\" (a user) or \"group\" is required";
        return MQIM_FIELD_TYPE;
    }
    if (!rt_json_u64(cJSON_GetObjectItemCaseSensitive(root, "upto"), &upto)) {
        *why = "\"upto\" must be a non-negative integer";
        return MQIM_FIELD_TYPE;
    }
    st = mqim_store_user_get(&q->txn, q->t.user, &u);
    if (st != MQIM_OK || upto >= u.next_seq) {
        *why = "\"upto\" is beyond the last seq of your inbox";
        return MQIM_NOT_YOUR_MESSAGE;
    }
    old = mqim_store_cursor_get(&q->txn, q->t.user, chat);
    if (upto <= old) {
        return MQIM_OK; /* forward-only: an older cursor changes nothing */
    }
    c = (read_upto_ctx_t){ q, upto, device, MQIM_OK, 0 };
    st = mqim_store_chat_scan(&q->txn, q->t.user, chat, old, 0, read_upto_visit, &c);
    if (st == MQIM_OK) {
        st = c.st;
    }
    if (st == MQIM_OK) {
        st = mqim_store_cursor_put(&q->txn, q->t.user, chat, upto);
    }
    if (st == MQIM_OK) {
        /* Read state is the user's, not the device's: tell every device of
         * the user (the one that read too), so all clear their unread. */
        mqim_envelope_t env;
        mqim_str_t payload;
        memset(&env, 0, sizeof(env));
        env.from = q->t.user;
        if (group.len > 0u) {
            env.group = group;
        } else {
            env.to = chat;
        }
        env.type = MQIM_STR("read");
        env.upto = upto;
        env.has_upto = true;
        env.ts = q->now;
        env.has_ts = true;
        st = rt_encode_envelope(&q->r->env, &env, &payload);
        if (st == MQIM_OK) {
            st = rt_emit(q, MQIM_TOPIC_IN_MSG, q->t.user, 1, false, payload);
        }
    }
    return st;
}

/* Name the seqs of a receipt that were not forwarded, in one rejected ack
 * (its own transaction: the valid part is committed already). Returns code
 * once the ack is stored. */
static mqim_status_t receipt_reject_seqs(req_t *q, mqim_status_t code, const uint64_t *seqs, size_t n,
                                         const char *what)
{
    mqim_router_t *r = q->r;
    char reason[REASON_MAX];
    reject_doc_t d = { "receipt", { NULL, 0 }, { NULL, 0 }, code, reason, seqs, n, q->now };
    mqim_str_t payload;
    mqim_status_t st;
    snprintf(reason, sizeof(reason), "%zu seq(s) %s", n, what);
    st = rt_build_json(&r->doc, build_reject, &d, &payload);
    if (st == MQIM_OK) {
        st = mqim_txn_begin(r->store, MQIM_TXN_WRITE, &q->txn);
    }
    if (st == MQIM_OK) {
        st = rt_emit(q, MQIM_TOPIC_IN_ACK, q->t.user, 1, false, payload);
        st = st == MQIM_OK ? mqim_txn_commit(&q->txn) : (mqim_txn_abort(&q->txn), st);
    }
    MQIM_LOGI(LOG_MOD, "receipt from %.*s: %s", (int)q->t.user.len, q->t.user.ptr, reason);
    return st == MQIM_OK ? code : st;
}

/* The receipt's fields, before any store access: MQIM_OK or the status
 * and *why of the rejection. */
static mqim_status_t receipt_check(const char *status, mqim_str_t code, mqim_str_t device,
                                   const cJSON *seqs, const char **why)
{
    mqim_status_t st = MQIM_OK;
    if (status == NULL ||
        (strcmp(status, "delivered") != 0 && strcmp(status, "read") != 0 && strcmp(status, "refused") != 0)) {
        st = MQIM_FIELD_TYPE;
        *why = "\"status\" must be \"delivered\", \"read\" or \"refused\"";
    } else if (strcmp(status, "refused") == 0 && !refusal_code_ok(code)) {
        st = MQIM_FIELD_TYPE;
        *why = "a refusal's \"code\" must be a status name ([a-z0-9_], 1..32 characters)";
    } else if (device.len > 0u && mqim_name_check(MQIM_NAME_DEVICE, device) != MQIM_OK) {
        st = MQIM_FIELD_TYPE;
        *why = "\"device\" must be a valid device name";
    } else if (seqs == NULL && strcmp(status, "read") != 0) {
        st = MQIM_FIELD_MISSING;
        *why = "\"seqs\" is required";
    } else if (seqs != NULL && (!cJSON_IsArray(seqs) || cJSON_GetArraySize(seqs) == 0 ||
                                cJSON_GetArraySize(seqs) > RECEIPT_SEQS_MAX)) {
        st = MQIM_FIELD_RANGE;
        *why = "\"seqs\" must be an array of 1..256 seqs";
    }
    return st;
}

static mqim_status_t handle_receipt(req_t *q)
{
    mqim_status_t st;
    const char *why = NULL;
    cJSON *root = rt_parse_object(q->in->payload, &st);
    const char *status;
    mqim_str_t device, code;
    const cJSON *seqs;
    uint64_t bad[RECEIPT_SEQS_MAX], gone[RECEIPT_SEQS_MAX], seen[RECEIPT_SEQS_MAX];
    size_t nbad = 0, ngone = 0, nseen = 0;

    if (root == NULL) {
        return rt_reject(q, "receipt", (mqim_str_t){ NULL, 0 }, (mqim_str_t){ NULL, 0 }, st, "%s",
                      mqim_status_str(st));
    }
    status = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "status"));
    device = rt_json_str(cJSON_GetObjectItemCaseSensitive(root, "device"));
    code = rt_json_str(cJSON_GetObjectItemCaseSensitive(root, "code"));
    seqs = cJSON_GetObjectItemCaseSensitive(root, "seqs");
    st = receipt_check(status, code, device, seqs, &why);
    if (st == MQIM_OK) {
        st = mqim_txn_begin(q->r->store, MQIM_TXN_WRITE, &q->txn);
    }
    if (st == MQIM_OK && seqs != NULL) {
        const cJSON *it;
        cJSON_ArrayForEach(it, seqs)
        {
            uint64_t seq;
            mqim_inbox_entry_t e;
            bool dup = false;
            if (!rt_json_u64(it, &seq)) {
                st = MQIM_FIELD_TYPE;
                why = "\"seqs\" must hold non-negative integers";
                break;
            }
            /* A seq named twice in one receipt is handled once: otherwise
             * [7,7,...] would make 256 acks to the sender out of one publish. */
            for (size_t k = 0; k < nseen && !dup; k++) {
                dup = seen[k] == seq;
            }
            if (dup) {
                continue;
            }
            seen[nseen++] = seq;
            /* Only messages others sent to this user can be receipted. */
            if (mqim_store_inbox_get(&q->txn, q->t.user, seq, &e) != MQIM_OK ||
                e.dir != MQIM_INBOX_RECEIVED) {
                bad[nbad++] = seq;
                continue;
            }
            if (e.pruned) {
                gone[ngone++] = seq; /* a tombstone: the message is no more */
                continue;
            }
            st = receipt_forward(q, status, strcmp(status, "refused") == 0 ? code : (mqim_str_t){ NULL, 0 }, &e,
                                 device);
            if (st != MQIM_OK) {
                break;
            }
        }
    } else if (st == MQIM_OK) {
        st = receipt_read_upto(q, root, device, &why);
    }
    cJSON_Delete(root);
    if (st == MQIM_OK) {
        st = mqim_txn_commit(&q->txn);
    } else if (q->txn.impl != NULL) {
        mqim_txn_abort(&q->txn);
    }
    if (st != MQIM_OK) {
        return rt_reject(q, "receipt", (mqim_str_t){ NULL, 0 }, (mqim_str_t){ NULL, 0 }, st, "%s",
                      why != NULL ? why : mqim_status_str(st));
    }
    /* The valid part is committed; the rest is named in one rejection per cause. */
    st = MQIM_OK;
    if (nbad > 0u) {
        st = receipt_reject_seqs(q, MQIM_NOT_YOUR_MESSAGE, bad, nbad, "are not messages sent to you");
    }
    if (ngone > 0u && (st == MQIM_OK || st == MQIM_NOT_YOUR_MESSAGE)) {
        mqim_status_t st2 = receipt_reject_seqs(q, MQIM_NOT_FOUND, gone, ngone,
                                                "were removed by the group's retention");
        st = st == MQIM_OK ? st2 : st;
    }
    return st;
}

/* ---- presence ---- */

static const char *const state_names[] = { "offline", "sleeping", "away", "online" };

typedef struct agg {
    int state;
    int64_t since, last_seen;
} agg_t;

static int agg_visit(void *vctx, mqim_str_t device, const mqim_device_rec_t *d)
{
    agg_t *a = vctx;
    (void)device;
    if (d->state > a->state) {
        a->state = d->state;
        a->since = d->since_ms;
    } else if (d->state == a->state) {
        /* online since the earliest device came online; offline since the last left */
        if (d->state == MQIM_PRESENCE_OFFLINE ? d->since_ms > a->since : d->since_ms < a->since) {
            a->since = d->since_ms;
        }
    }
    if (d->last_seen_ms > a->last_seen) {
        a->last_seen = d->last_seen_ms;
    }
    return 0;
}

typedef struct presence_doc {
    req_t *q;
    mqim_str_t user;
    bool known;
} presence_doc_t;

static int devices_write(void *vctx, mqim_str_t device, const mqim_device_rec_t *d)
{
    mqim_json_writer_t *w = vctx;
    char key[MQIM_DEVICE_NAME_MAX + 1];
    size_t n = device.len < MQIM_DEVICE_NAME_MAX ? device.len : MQIM_DEVICE_NAME_MAX;
    memcpy(key, device.ptr, n);
    key[n] = '\0';
    mqim_json_object_begin_key(w, key);
    mqim_json_key_str(w, "state", mqim_str_from_cstr(state_names[d->state & 3u]));
    mqim_json_key_i64(w, "since", d->since_ms);
    if (d->last_seen_ms != 0) {
        mqim_json_key_i64(w, "last_seen", d->last_seen_ms);
    }
    mqim_json_object_end(w);
    return 0;
}

/* The aggregate presence document of one user (also used by the ctl op). */
static void build_presence(mqim_json_writer_t *w, const void *vctx)
{
    const presence_doc_t *d = vctx;
    agg_t a = { MQIM_PRESENCE_OFFLINE, 0, 0 };
    mqim_json_object_begin(w);
    mqim_json_key_str(w, "user", d->user);
    if (!d->known) {
        mqim_json_key_str(w, "state", MQIM_STR("unknown"));
        mqim_json_object_end(w);
        return;
    }
    rt_body_status(d->q, mqim_store_device_each(&d->q->txn, d->user, agg_visit, &a));
    mqim_json_key_str(w, "state", mqim_str_from_cstr(state_names[a.state]));
    if (a.since != 0) {
        mqim_json_key_i64(w, "since", a.since);
    }
    if (a.last_seen != 0) {
        mqim_json_key_i64(w, "last_seen", a.last_seen);
    }
    mqim_json_object_begin_key(w, "devices");
    rt_body_status(d->q, mqim_store_device_each(&d->q->txn, d->user, devices_write, w));
    mqim_json_object_end(w);
    mqim_json_key_i64(w, "ts", d->q->now);
    mqim_json_object_end(w);
}

static int count_device(void *vctx, mqim_str_t device, const mqim_device_rec_t *d)
{
    unsigned *n = vctx;
    (void)device;
    (void)d;
    return ++*n >= DEVICES_PER_USER_MAX; /* enough to know the table is full */
}

/* A device status, parsed once by the strict reader ("state" and "epoch"
 * are all it needs). *why: the reason of a field error, else NULL. */
static mqim_status_t status_read(mqim_str_t payload, int *state, bool *has_epoch, uint64_t *epoch,
                                 const char **why)
{
    mqim_json_value_t root, v;
    int64_t epoch_in = 0;
    mqim_status_t st = parse_object(payload, &root);
    *why = NULL;
    if (st != MQIM_OK) {
        return st;
    }
    *state = -1;
    if (mqim_json_find(&root, "state", &v) == MQIM_OK) {
        for (int i = 0; *state < 0 && i < 4; i++) {
            *state = mqim_json_string_eq(&v, state_names[i]) ? i : -1;
        }
    }
    *has_epoch = mqim_json_find(&root, "epoch", &v) == MQIM_OK && v.type != MQIM_JSON_ABSENT;
    if (*state < 0) {
        *why = "\"state\" must be online, away, sleeping or offline";
        return MQIM_FIELD_TYPE;
    }
    if (*has_epoch && (mqim_json_int(&v, &epoch_in) != MQIM_OK || epoch_in < 0)) {
        *why = "\"epoch\" must be a non-negative integer";
        return MQIM_FIELD_TYPE;
    }
    *epoch = *has_epoch ? (uint64_t)epoch_in : 0u;
    return MQIM_OK;
}

static mqim_status_t handle_status(req_t *q)
{
    mqim_status_t st;
    const char *why = NULL;
    int state = -1;
    uint64_t epoch = 0;
    bool has_epoch = false;
    mqim_device_rec_t old, now;
    bool have_old;

    if (q->in->payload.len == 0u) {
        /* A device clearing its retained status: nothing to record. */
        return MQIM_OK;
    }
    st = status_read(q->in->payload, &state, &has_epoch, &epoch, &why);
    if (st != MQIM_OK) {
        return rt_reject(q, "status", (mqim_str_t){ NULL, 0 }, (mqim_str_t){ NULL, 0 }, st, "%s",
                         why != NULL ? why : mqim_status_str(st));
    }
    st = mqim_txn_begin(q->r->store, MQIM_TXN_WRITE, &q->txn);
    if (st != MQIM_OK) {
        return rt_reject(q, "status", (mqim_str_t){ NULL, 0 }, (mqim_str_t){ NULL, 0 }, st, "%s",
                      mqim_status_str(st));
    }
    have_old = mqim_store_device_get(&q->txn, q->t.user, q->t.name, &old) == MQIM_OK;
    if (!have_old) {
        unsigned ndev = 0;
        st = mqim_store_device_each(&q->txn, q->t.user, count_device, &ndev);
        if (st == MQIM_OK && ndev >= DEVICES_PER_USER_MAX) {
            mqim_txn_abort(&q->txn);
            return rt_reject(q, "status", (mqim_str_t){ NULL, 0 }, (mqim_str_t){ NULL, 0 }, MQIM_QUOTA_FULL,
                             "%.*s has %u devices already, the most a user may have", (int)q->t.user.len,
                             q->t.user.ptr, DEVICES_PER_USER_MAX);
        }
        if (st != MQIM_OK) {
            mqim_txn_abort(&q->txn);
            return rt_reject(q, "status", (mqim_str_t){ NULL, 0 }, (mqim_str_t){ NULL, 0 }, st, "%s",
                             mqim_status_str(st));
        }
    }
    if (have_old && has_epoch && old.has_epoch && epoch < old.epoch) {
        /* The stale-will race: an older connection's will (or late status)
         * must not override the newer connection's state. */
        mqim_txn_abort(&q->txn);
        MQIM_LOGD(LOG_MOD, "stale status of %.*s/%.*s ignored (epoch %llu < %llu)",
                  (int)q->t.user.len, q->t.user.ptr, (int)q->t.name.len, q->t.name.ptr,
                  (unsigned long long)epoch, (unsigned long long)old.epoch);
        return MQIM_OK;
    }
    memset(&now, 0, sizeof(now));
    now.state = (uint8_t)state;
    now.has_epoch = (uint8_t)(has_epoch || (have_old && old.has_epoch));
    now.epoch = has_epoch ? epoch : (have_old ? old.epoch : 0u);
    now.since_ms = (have_old && old.state == now.state) ? old.since_ms : q->now;
    now.last_seen_ms = have_old ? old.last_seen_ms : 0;
    if (state != MQIM_PRESENCE_OFFLINE || (have_old && old.state != MQIM_PRESENCE_OFFLINE)) {
        now.last_seen_ms = q->now; /* seen now, or seen until now */
    }
    if (have_old && old.state == now.state && old.epoch == now.epoch &&
        old.has_epoch == now.has_epoch) {
        mqim_txn_abort(&q->txn); /* a repeat (e.g. retained status replayed): no news */
        return MQIM_OK;
    }
    st = mqim_store_user_ensure(&q->txn, q->t.user, q->now);
    if (st == MQIM_OK) {
        st = mqim_store_device_put(&q->txn, q->t.user, q->t.name, &now);
    }
    if (st == MQIM_OK) {
        presence_doc_t d = { q, q->t.user, true };
        mqim_str_t payload;
        st = rt_build_doc(q, build_presence, &d, &payload);
        if (st == MQIM_OK) {
            st = rt_emit(q, MQIM_TOPIC_PRESENCE, q->t.user, 1, true, payload);
        }
    }
    if (st == MQIM_OK) {
        st = mqim_txn_commit(&q->txn);
    } else {
        mqim_txn_abort(&q->txn);
    }
    if (st != MQIM_OK) {
        return rt_reject(q, "status", (mqim_str_t){ NULL, 0 }, (mqim_str_t){ NULL, 0 }, st, "%s",
                      mqim_status_str(st));
    }
    return MQIM_OK;
}

/* ---- control requests ---- */


static void build_ctl(mqim_json_writer_t *w, const void *vctx)
{
    const ctl_doc_t *d = vctx;
    uint64_t reqnum;
    mqim_json_object_begin(w);
    mqim_json_key_str(w, "op", mqim_str_from_cstr(d->op != NULL ? d->op : ""));
    if (cJSON_IsString(d->reqid)) {
        mqim_json_key_str(w, "req", mqim_str_from_cstr(d->reqid->valuestring));
    } else if (rt_json_u64(d->reqid, &reqnum)) {
        mqim_json_key_u64(w, "req", reqnum);
    }
    mqim_json_key_bool(w, "ok", d->code == MQIM_OK);
    if (d->code != MQIM_OK) {
        mqim_json_key_str(w, "code", mqim_str_from_cstr(mqim_status_name(d->code)));
        mqim_json_key_u64(w, "code_num", (uint64_t)d->code);
        mqim_json_key_str(w, "reason", mqim_str_from_cstr(d->reason != NULL ? d->reason
                                                          : mqim_status_str(d->code)));
    } else if (d->body != NULL) {
        d->body(w, d);
    }
    mqim_json_object_end(w);
}

/*
 * Where a response goes: the MQTT v5 response topic when the requester gave
 * one under its own in/ topics (so mosquitto_rr works, and the gateway can
 * never be made to publish elsewhere), otherwise {root}/u/{user}/in/res.
 */
static mqim_status_t response_topic(req_t *q, char *buf, size_t cap, mqim_str_t *out)
{
    mqim_str_t rt = q->in->response_topic;
    size_t len = 0;
    mqim_status_t st = mqim_topic_build(q->r->root, MQIM_TOPIC_IN_RES, q->t.user,
                                        (mqim_str_t){ NULL, 0 }, buf, cap, &len);
    *out = (mqim_str_t){ buf, len };
    if (st != MQIM_OK || rt.len == 0u) {
        return st;
    }
    /* in/res minus "res" is the allowed prefix "{root}/u/{user}/in/" */
    if (rt.len > MQIM_TOPIC_MAX || rt.len <= len - 3u || memcmp(rt.ptr, buf, len - 3u) != 0 ||
        memchr(rt.ptr, '+', rt.len) != NULL || memchr(rt.ptr, '#', rt.len) != NULL ||
        memchr(rt.ptr, '\0', rt.len) != NULL) {
        return MQIM_RESPONSE_TOPIC;
    }
    memcpy(buf, rt.ptr, rt.len);
    buf[rt.len] = '\0';
    *out = (mqim_str_t){ buf, rt.len };
    return MQIM_OK;
}

static mqim_status_t ctl_respond(req_t *q, ctl_doc_t *d)
{
    char tbuf[MQIM_TOPIC_MAX + 1];
    mqim_str_t topic, payload;
    mqim_status_t st = response_topic(q, tbuf, sizeof(tbuf), &topic);
    if (st == MQIM_RESPONSE_TOPIC && d->code == MQIM_OK) {
        d->code = st;
        d->reason = "response topic must be under your own in/ topics";
        d->body = NULL;
    } else if (st != MQIM_OK && st != MQIM_RESPONSE_TOPIC) {
        return st;
    }
    q->body_st = MQIM_OK;
    st = rt_build_json(&q->r->doc, build_ctl, d, &payload);
    if (st == MQIM_OK && q->body_st != MQIM_OK && d->code == MQIM_OK) {
        /* The body met a store failure part-way: a failed answer, not a
         * partial list that says "ok":true. */
        d->code = q->body_st;
        d->reason = mqim_status_str(q->body_st);
        d->body = NULL;
        st = rt_build_json(&q->r->doc, build_ctl, d, &payload);
    }
    if (st == MQIM_OK && d->direct_response) {
        rt_publish_now(q->r, topic, payload, 1, q->in->correlation);
    } else if (st == MQIM_OK) {
        st = mqim_store_outbox_put(&q->txn, topic, 1, false, q->in->correlation, payload, NULL);
    }
    return st;
}

/* sync: replay inbox entries after a seq to in/msg, then answer. */
typedef struct sync_ctx {
    req_t *q;
    uint64_t after, last, count, limit, first_seq;
    bool complete;
    mqim_status_t st;
    uint64_t store_epoch; /* the store's epoch, in every answer */
    uint64_t epoch_seq;   /* the request named an older epoch: the seq its history and this one share */
    bool other_epoch;
} sync_ctx_t;

static int sync_visit(void *vctx, const mqim_inbox_entry_t *e)
{
    sync_ctx_t *c = vctx;
    mqim_msg_rec_t m;
    mqim_envelope_t env;
    mqim_str_t payload;
    char user[MQIM_USER_NAME_MAX];
    mqim_str_t u = c->q->t.user;
    if (c->count == c->limit) {
        c->complete = false; /* one more exists beyond the page */
        return 1;
    }
    if (e->pruned) {
        /* A tombstone: retention removed the message, the seq stays, so the
         * device's stream has no hole: {"seq":N,"group":"team","ts":...,"type":"pruned"} */
        memset(&env, 0, sizeof(env));
        env.seq = e->seq;
        env.has_seq = true;
        env.ts = e->ts;
        env.has_ts = true;
        env.type = MQIM_STR("pruned");
        if (e->chat.len > 1u && e->chat.ptr[0] == '#') {
            env.group = (mqim_str_t){ e->chat.ptr + 1, e->chat.len - 1u };
        }
        c->st = rt_encode_envelope(&c->q->r->env, &env, &payload);
    } else {
        c->st = mqim_store_msg_get(&c->q->txn, e->mid, &m);
        if (c->st == MQIM_OK) {
            rt_envelope_from_rec(&m, e->seq, &env);
            c->st = rt_encode_envelope(&c->q->r->env, &env, &payload);
        }
    }
    if (c->st == MQIM_OK) {
        memcpy(user, u.ptr, u.len);
        c->st = rt_emit(c->q, MQIM_TOPIC_IN_MSG, (mqim_str_t){ user, u.len }, 1, false, payload);
    }
    c->last = e->seq;
    c->count++;
    return c->st != MQIM_OK;
}

static void sync_body(mqim_json_writer_t *w, const ctl_doc_t *d)
{
    const sync_ctx_t *c = d->ctx;
    mqim_json_key_u64(w, "after", c->after);
    mqim_json_key_u64(w, "count", c->count);
    mqim_json_key_u64(w, "last", c->last);
    mqim_json_key_bool(w, "complete", c->complete);
    mqim_json_key_u64(w, "store_epoch", c->store_epoch);
    if (c->other_epoch) {
        /* docs/protocol.md, "Store epochs": nothing replayed; ask again
         * with after = min(after, epoch_seq) and this epoch. */
        mqim_json_key_u64(w, "epoch_seq", c->epoch_seq);
        return;
    }
    if (c->after + 1u < c->first_seq) {
        /* Retention removed messages this device never saw: say so. */
        mqim_json_key_bool(w, "pruned", true);
        mqim_json_key_u64(w, "first_seq", c->first_seq);
    }
}

static unsigned page_limit(req_t *q, const cJSON *root)
{
    uint64_t limit = q->r->cfg.sync_page;
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(root, "limit");
    if (l != NULL && rt_json_u64(l, &limit) && limit > 0u && limit < q->r->cfg.sync_page) {
        return (unsigned)limit;
    }
    return q->r->cfg.sync_page;
}

static mqim_status_t ctl_sync(req_t *q, const cJSON *root, ctl_doc_t *d, void *work)
{
    sync_ctx_t *cp = work;
    mqim_user_rec_t u;
    const cJSON *after = cJSON_GetObjectItemCaseSensitive(root, "after");
    const cJSON *epoch = cJSON_GetObjectItemCaseSensitive(root, "store_epoch");
    uint64_t their_epoch = 0;
    mqim_status_t st;
    *cp = (sync_ctx_t){ q, 0, 0, 0, page_limit(q, root), 1, true, MQIM_OK, 0, 0, false };
    if (after != NULL && !rt_json_u64(after, &cp->after)) {
        d->reason = "\"after\" must be a non-negative integer";
        return MQIM_FIELD_TYPE;
    }
    if (epoch != NULL && !rt_json_u64(epoch, &their_epoch)) {
        d->reason = "\"store_epoch\" must be a non-negative integer";
        return MQIM_FIELD_TYPE;
    }
    cp->last = cp->after;
    cp->store_epoch = mqim_store_identity(q->r->store)->epoch;
    if (their_epoch != 0u && their_epoch != cp->store_epoch) {
        /* The device's seqs may belong to a history this store does not
         * continue (a restore): replaying after them could skip messages. */
        cp->other_epoch = true;
        cp->complete = false;
        st = mqim_store_epoch_seq(&q->txn, q->t.user, their_epoch, &cp->epoch_seq);
        if (st == MQIM_OK) {
            d->body = sync_body;
            d->ctx = cp;
        }
        return st;
    }
    if (mqim_store_user_get(&q->txn, q->t.user, &u) == MQIM_OK) {
        cp->first_seq = u.first_seq;
        st = mqim_store_inbox_scan(&q->txn, q->t.user, cp->after, sync_visit, cp);
        if (st == MQIM_OK) {
            st = cp->st;
        }
        if (st != MQIM_OK) {
            return st;
        }
    }
    d->body = sync_body;
    d->ctx = cp;
    return MQIM_OK;
}

/* history: a page of one chat, as envelopes inside the response. */
typedef struct hist_ctx {
    req_t *q;
    mqim_str_t with;
    mqim_str_t group;                     /* a group's history instead */
    char chat[MQIM_GROUP_NAME_MAX + 2];   /* "#group" */
    uint64_t after, before;
    unsigned limit, count;
    uint64_t seqs[1000];
    uint64_t mids[1000];
    bool complete;
    bool pruned;        /* retention removed messages of this chat */
    uint64_t first_seq; /* then: the oldest seq of it still held; 0 = none */
    char why[MQIM_USER_NAME_MAX + 24]; /* the reason of unknown_peer */
} hist_ctx_t;

static int hist_visit(void *vctx, const mqim_inbox_entry_t *e)
{
    hist_ctx_t *h = vctx;
    if (e->pruned) {
        return 0; /* not in the chat index; never a message of a page */
    }
    if (h->count == h->limit) {
        h->complete = false;
        return 1;
    }
    h->seqs[h->count] = e->seq;
    h->mids[h->count] = e->mid;
    h->count++;
    return 0;
}

static void hist_body(mqim_json_writer_t *w, const ctl_doc_t *d)
{
    const hist_ctx_t *h = d->ctx;
    bool desc = h->before != 0u;
    if (h->group.len > 0u) {
        mqim_json_key_str(w, "group", h->group);
    } else {
        mqim_json_key_str(w, "with", h->with);
    }
    mqim_json_array_begin(w, "messages");
    for (unsigned i = 0; i < h->count; i++) {
        /* Visited newest-first when paging backwards: rt_emit oldest-first. */
        unsigned k = desc ? h->count - 1u - i : i;
        mqim_msg_rec_t m;
        mqim_envelope_t env;
        mqim_str_t json;
        if (mqim_store_msg_get(&h->q->txn, h->mids[k], &m) != MQIM_OK) {
            continue;
        }
        rt_envelope_from_rec(&m, h->seqs[k], &env);
        if (rt_encode_envelope(&h->q->r->env, &env, &json) == MQIM_OK) {
            mqim_json_key_raw(w, NULL, json);
        }
    }
    mqim_json_array_end(w);
    mqim_json_key_bool(w, "complete", h->complete);
    if (h->pruned) {
        /* on every page: the client knows where what is held begins */
        mqim_json_key_bool(w, "pruned", true);
        if (h->first_seq != 0u) {
            mqim_json_key_u64(w, "first_seq", h->first_seq);
        }
    }
}

static int first_held(void *vctx, const mqim_inbox_entry_t *e)
{
    if (e->pruned) {
        return 0;
    }
    *(uint64_t *)vctx = e->seq;
    return 1;
}

static mqim_status_t ctl_history(req_t *q, const cJSON *root, ctl_doc_t *d, void *work)
{
    hist_ctx_t *hp = work;
    const cJSON *after = cJSON_GetObjectItemCaseSensitive(root, "after");
    const cJSON *before = cJSON_GetObjectItemCaseSensitive(root, "before");
    mqim_status_t st;
    memset(hp, 0, sizeof(*hp));
    hp->q = q;
    hp->with = rt_json_str(cJSON_GetObjectItemCaseSensitive(root, "with"));
    hp->limit = page_limit(q, root);
    hp->complete = true;
    if (hp->limit > 1000u) {
        hp->limit = 1000u;
    }
    hp->group = rt_json_str(cJSON_GetObjectItemCaseSensitive(root, "group"));
    if (hp->group.len > 0u) {
        /* a group's messages in my inbox: from when I joined, nothing before */
        if (mqim_name_check(MQIM_NAME_GROUP, hp->group) != MQIM_OK) {
            d->reason = "\"group\" must be a valid group name";
            return MQIM_FIELD_TYPE;
        }
        hp->chat[0] = '#';
        memcpy(hp->chat + 1, hp->group.ptr, hp->group.len);
        hp->with = (mqim_str_t){ hp->chat, hp->group.len + 1u };
    } else if (mqim_name_check(MQIM_NAME_USER, hp->with) != MQIM_OK) {
        d->reason = "\"with\" (a user) or \"group\" is required";
        return MQIM_FIELD_TYPE;
    }
    if ((after != NULL && !rt_json_u64(after, &hp->after)) ||
        (before != NULL && (!rt_json_u64(before, &hp->before) || hp->before == 0u))) {
        d->reason = "\"after\"/\"before\" must be positive integers";
        return MQIM_FIELD_TYPE;
    }
    if (after != NULL && before != NULL) {
        d->reason = "give \"after\" or \"before\", not both";
        return MQIM_BAD_REQUEST;
    }
    if (after == NULL && before == NULL) {
        hp->before = UINT64_MAX; /* the latest page */
    }
    st = mqim_store_chat_scan(&q->txn, q->t.user, hp->with, hp->after, hp->before, hist_visit, hp);
    if (st == MQIM_OK && hp->count == 0u && hp->group.len == 0u) {
        /* no chat with a name that is no user: the answer a message to it
         * gets (a deleted user's history is still there, and shown) */
        mqim_user_rec_t u;
        if (mqim_store_user_get(&q->txn, hp->with, &u) == MQIM_NOT_FOUND) {
            snprintf(hp->why, sizeof(hp->why), "no such user: %.*s", (int)hp->with.len, hp->with.ptr);
            d->reason = hp->why;
            return MQIM_UNKNOWN_PEER;
        }
    }
    if (st == MQIM_OK && mqim_store_chat_pruned(&q->txn, q->t.user, hp->with) != 0u) {
        hp->pruned = true;
        st = mqim_store_chat_scan(&q->txn, q->t.user, hp->with, 0, 0, first_held, &hp->first_seq);
    }
    if (st == MQIM_OK) {
        d->body = hist_body;
        d->ctx = hp;
    }
    return st;
}

/* presence: the aggregate of each requested user. */
typedef struct pres_ctx {
    req_t *q;
    const cJSON *users;
} pres_ctx_t;

static void pres_body(mqim_json_writer_t *w, const ctl_doc_t *d)
{
    const pres_ctx_t *p = d->ctx;
    const cJSON *it;
    mqim_json_array_begin(w, "users");
    cJSON_ArrayForEach(it, p->users)
    {
        mqim_user_rec_t u;
        presence_doc_t pd = { p->q, rt_json_str(it), false };
        mqim_status_t st = mqim_store_user_get(&p->q->txn, pd.user, &u);
        pd.known = st == MQIM_OK;
        rt_body_status(p->q, st == MQIM_NOT_FOUND ? MQIM_OK : st);
        build_presence(w, &pd);
    }
    mqim_json_array_end(w);
}

static mqim_status_t ctl_presence(req_t *q, const cJSON *root, ctl_doc_t *d, void *work)
{
    pres_ctx_t *pc = work;
    const cJSON *users = cJSON_GetObjectItemCaseSensitive(root, "users");
    const cJSON *it;
    if (!cJSON_IsArray(users) || cJSON_GetArraySize(users) < 1 ||
        cJSON_GetArraySize(users) > PRESENCE_USERS_MAX) {
        d->reason = "\"users\" must be an array of 1..100 user names";
        return MQIM_FIELD_TYPE;
    }
    cJSON_ArrayForEach(it, users)
    {
        if (mqim_name_check(MQIM_NAME_USER, rt_json_str(it)) != MQIM_OK) {
            d->reason = "\"users\" holds an invalid user name";
            return MQIM_FIELD_TYPE;
        }
    }
    *pc = (pres_ctx_t){ q, users };
    d->body = pres_body;
    d->ctx = pc;
    return MQIM_OK;
}

static const rt_ctl_op_t router_ops[] = {
    { "sync", ctl_sync, sizeof(sync_ctx_t) },
    { "history", ctl_history, sizeof(hist_ctx_t) },
    { "presence", ctl_presence, sizeof(pres_ctx_t) },
};

const rt_feature_t rt_router_feature = { RT_FEATURE_ROUTER, router_ops,
                                         sizeof(router_ops) / sizeof(router_ops[0]), 0, false };

/* Every feature, in the order of rt_feature_id_t: the dispatcher's tables. */
static const rt_feature_t *const rt_features[RT_FEATURES] = {
    &rt_router_feature, &gr_feature, &ch_feature, &fl_feature, &kx_feature,
};

/* The op's entry among the tables (on out/file: only the file ops), or
 * NULL; *id receives its feature. */
static const rt_ctl_op_t *ctl_find(const char *op, bool file_topic, rt_feature_id_t *id)
{
    for (size_t f = 0; f < RT_FEATURES; f++) {
        const rt_feature_t *ft = rt_features[f];
        for (size_t i = 0; i < ft->n_ops && (ft->file_topic || !file_topic); i++) {
            if (strcmp(ft->ops[i].op, op) == 0) {
                *id = ft->id;
                return &ft->ops[i];
            }
        }
    }
    return NULL;
}

/* "unknown \"op\" (known: sync, history, ...)" or, for out/file, "out/file
 * takes file_begin, ...": written from the tables once, at router_new. */
static void ctl_known_ops(char *buf, size_t cap, bool file_topic)
{
    size_t len = (size_t)snprintf(buf, cap, "%s", file_topic ? "out/file takes " : "unknown \"op\" (known: ");
    const char *sep = "";
    for (size_t f = 0; f < RT_FEATURES; f++) {
        const rt_feature_t *ft = rt_features[f];
        for (size_t i = 0; i < ft->n_ops && (ft->file_topic || !file_topic) && len < cap; i++) {
            len += (size_t)snprintf(buf + len, cap - len, "%s%s", sep, ft->ops[i].op);
            sep = ", ";
        }
    }
    if (!file_topic && len < cap) {
        (void)snprintf(buf + len, cap - len, ")");
    }
}

static mqim_status_t handle_ctl(req_t *q)
{
    mqim_status_t parsed;
    mqim_status_t st;
    cJSON *root = rt_parse_object(q->in->payload, &parsed);
    ctl_doc_t d = { q, NULL, NULL, MQIM_OK, NULL, NULL, NULL, false, false };
    if (root != NULL) {
        d.op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "op"));
        d.reqid = cJSON_GetObjectItemCaseSensitive(root, "req");
    }
    st = mqim_txn_begin(q->r->store, MQIM_TXN_WRITE, &q->txn);
    if (st != MQIM_OK) {
        cJSON_Delete(root);
        return rt_reject(q, "ctl", (mqim_str_t){ NULL, 0 }, (mqim_str_t){ NULL, 0 }, st, "%s",
                      mqim_status_str(st));
    }
    if (root == NULL) {
        d.code = parsed;
    } else if (d.op == NULL) {
        d.code = MQIM_FIELD_MISSING;
        d.reason = "\"op\" is required";
    } else {
        bool file_topic = q->t.kind == MQIM_TOPIC_OUT_FILE;
        rt_feature_id_t id = RT_FEATURE_ROUTER;
        const rt_ctl_op_t *op = ctl_find(d.op, file_topic, &id);
        if (op != NULL) {
            d.code = op->handle(q, root, &d, rt_work(q->r, id));
        } else {
            d.code = MQIM_UNKNOWN_OP;
            d.reason = file_topic ? q->r->known_file_ops : q->r->known_ops;
        }
    }
    if (store_failure(d.code)) {
        cJSON_Delete(root);
        mqim_txn_abort(&q->txn);
        return rt_reject(q, "ctl", (mqim_str_t){ NULL, 0 }, (mqim_str_t){ NULL, 0 }, d.code, "%s",
                      mqim_status_str(d.code));
    }
    if (d.code != MQIM_OK && !d.keep_effects) {
        /* A bad request gets no partial effects, only the error response. */
        mqim_txn_abort(&q->txn);
        st = mqim_txn_begin(q->r->store, MQIM_TXN_WRITE, &q->txn);
    }
    if (st == MQIM_OK) {
        st = ctl_respond(q, &d);
    }
    cJSON_Delete(root);
    if (st == MQIM_OK) {
        st = mqim_txn_commit(&q->txn);
    } else if (q->txn.impl != NULL) {
        mqim_txn_abort(&q->txn);
    }
    if (st != MQIM_OK) {
        return rt_reject(q, "ctl", (mqim_str_t){ NULL, 0 }, (mqim_str_t){ NULL, 0 }, st, "%s",
                      mqim_status_str(st));
    }
    return d.code;
}

/* ---- dispatch ---- */

/* The sender's message id, when a rejected message has one, so its device
 * knows which message the rejection is about (and can drop it from its
 * outbox). Best effort: anything undecodable has no id. */
static mqim_str_t payload_id(mqim_router_t *r, const req_t *q)
{
    mqim_str_t id = { NULL, 0 };
    if ((q->t.kind == MQIM_TOPIC_OUT_DM || q->t.kind == MQIM_TOPIC_OUT_GROUP) &&
        rt_payload_is_json(q->in->payload) &&
        mqim_envelope_decode(q->in->payload.ptr, q->in->payload.len, &r->dm->env, r->dm->arena,
                             sizeof(r->dm->arena), NULL) == MQIM_OK) {
        id = r->dm->env.id;
    }
    return id;
}

/* For a topic outside the scheme but under {root}/u/{user}/out/, find the
 * user so the rejection can reach them. */
static bool out_topic_user(mqim_router_t *r, mqim_str_t topic, mqim_str_t *user)
{
    const char *p = topic.ptr, *end = topic.ptr + topic.len, *slash;
    if (topic.len < r->root.len + 3u || memcmp(p, r->root.ptr, r->root.len) != 0 ||
        memcmp(p + r->root.len, "/u/", 3) != 0) {
        return false;
    }
    p += r->root.len + 3u;
    slash = memchr(p, '/', (size_t)(end - p));
    if (slash == NULL || (size_t)(end - slash) < 5u || memcmp(slash, "/out/", 5) != 0) {
        return false;
    }
    *user = (mqim_str_t){ p, (size_t)(slash - p) };
    return mqim_name_check(MQIM_NAME_USER, *user) == MQIM_OK;
}

mqim_status_t mqim_router_handle(mqim_router_t *r, const mqim_inbound_t *in, int64_t now_ms)
{
    req_t q;
    mqim_status_t st;
    memset(&q, 0, sizeof(q));
    q.r = r;
    q.in = in;
    q.now = now_ms;
    st = mqim_topic_parse(r->root, in->topic, &q.t);
    if (st != MQIM_OK) {
        if (out_topic_user(r, in->topic, &q.t.user)) {
            return rt_reject(&q, "topic", (mqim_str_t){ NULL, 0 }, (mqim_str_t){ NULL, 0 }, st,
                          "topic %.*s: %s", (int)(in->topic.len > 120u ? 120u : in->topic.len),
                          in->topic.ptr, mqim_status_str(st));
        }
        MQIM_LOGW(LOG_MOD, "ignoring publish on a topic outside the scheme (%s)",
                  mqim_status_name(st));
        return st;
    }
    if (q.t.kind == MQIM_TOPIC_OUT_FILE && !mqim_ratelimit_take(r->rl_file, q.t.user, now_ms)) {
        unsigned rate, burst;
        mqim_ratelimit_get(r->rl_file, &rate, &burst); /* a reload may have changed them */
        q.reject_lazy = true;
        return rt_reject(&q, "rate", (mqim_str_t){ NULL, 0 }, (mqim_str_t){ NULL, 0 }, MQIM_RATE_LIMITED,
                         "more than %u file requests per second (burst %u)", rate, burst);
    }
    /* Statuses share the budget: each one that changes something is a
     * synced commit and a retained presence publish. */
    if (q.t.kind == MQIM_TOPIC_OUT_DM || q.t.kind == MQIM_TOPIC_OUT_GROUP ||
        q.t.kind == MQIM_TOPIC_OUT_RECEIPT || q.t.kind == MQIM_TOPIC_OUT_CTL ||
        q.t.kind == MQIM_TOPIC_OUT_KEY || q.t.kind == MQIM_TOPIC_OUT_STATUS) {
        if (!mqim_ratelimit_take(r->rl, q.t.user, now_ms)) {
            unsigned rate, burst;
            mqim_ratelimit_get(r->rl, &rate, &burst); /* a reload may have changed them */
            q.reject_lazy = true;
            return rt_reject(&q, "rate", payload_id(r, &q),
                             q.t.kind == MQIM_TOPIC_OUT_STATUS ? (mqim_str_t){ NULL, 0 } : q.t.name,
                             MQIM_RATE_LIMITED, "more than %u publishes per second (burst %u)", rate,
                             burst);
        }
    }
    switch (q.t.kind) {
    case MQIM_TOPIC_OUT_DM:
        st = handle_dm(&q);
        break;
    case MQIM_TOPIC_OUT_GROUP:
        st = gr_handle_message(&q);
        break;
    case MQIM_TOPIC_OUT_RECEIPT:
        st = handle_receipt(&q);
        break;
    case MQIM_TOPIC_OUT_CTL:
    case MQIM_TOPIC_OUT_FILE:
        st = handle_ctl(&q);
        break;
    case MQIM_TOPIC_OUT_STATUS:
        st = handle_status(&q);
        break;
    case MQIM_TOPIC_OUT_KEY:
        st = kx_handle_key(&q);
        break;
    default:
        st = MQIM_OK; /* in/, presence, gateway topics: written by the gateway itself */
        break;
    }
    if (st == MQIM_OK) {
        mqim_metrics_routed(q.t.kind);
    }
    return st;
}

mqim_status_t mqim_router_handle_batch(mqim_router_t *r, const mqim_inbound_t *in,
                                       const int64_t *now_ms, size_t n, mqim_status_t *st,
                                       mqim_batch_hook_fn hook, void *hook_ctx)
{
    mqim_txn_t batch;
    mqim_status_t rc;
    if (n == 0u) {
        return MQIM_OK;
    }
    rc = mqim_store_batch_begin(r->store, &batch);
    if (rc == MQIM_OK) {
        for (size_t i = 0; i < n; i++) {
            st[i] = mqim_router_handle(r, &in[i], now_ms[i]);
        }
        rc = mqim_store_counter_add(&batch, "commits", 1u);
        if (rc == MQIM_OK) {
            rc = mqim_store_counter_add(&batch, "batched", n);
        }
        if (rc == MQIM_OK && hook != NULL) {
            rc = hook(hook_ctx, &batch);
        }
        if (rc == MQIM_OK) {
            rc = mqim_store_batch_commit(&batch);
        } else {
            mqim_store_batch_abort(&batch);
        }
        if (rc == MQIM_OK) {
            return MQIM_OK;
        }
    }
    /* The batch is lost as a whole: handle each publish on its own. (While
     * the store is full, each one's rejection is counted in rt_reject's
     * line: this one would repeat with every batch.) */
    if (!store_failure(rc)) {
        MQIM_LOGW(LOG_MOD, "batch of %zu publishes could not commit (%s); handling them one by one", n,
                  mqim_status_name(rc));
    } else {
        MQIM_LOGD(LOG_MOD, "batch of %zu publishes could not commit (%s); handling them one by one", n,
                  mqim_status_name(rc));
    }
    for (size_t i = 0; i < n; i++) {
        st[i] = mqim_router_handle(r, &in[i], now_ms[i]);
    }
    if (hook != NULL) {
        mqim_txn_t txn;
        if (mqim_txn_begin(r->store, MQIM_TXN_WRITE, &txn) == MQIM_OK) {
            if (hook(hook_ctx, &txn) == MQIM_OK) {
                (void)mqim_txn_commit(&txn);
            } else {
                mqim_txn_abort(&txn);
            }
        }
    }
    return rc;
}

mqim_router_t *mqim_router_new(mqim_store_t *store, const mqim_router_config_t *cfg)
{
    mqim_router_t *r;
    bool ok = true;
    mqim_str_t root = mqim_str_from_cstr(cfg->root);
    if (mqim_topic_root_check(root) != MQIM_OK) {
        return NULL;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return NULL;
    }
    r->store = store;
    r->cfg = *cfg;
    r->root = root;
    if (r->cfg.sync_page == 0u || r->cfg.sync_page > 1000u) {
        r->cfg.sync_page = 100u;
    }
    r->rl = mqim_ratelimit_new(cfg->rate_per_sec, cfg->rate_burst, 4096u);
    mqim_log_limit_init(&r->reject_log, REJECT_LOG_INTERVAL_MS);
    r->rl_file = mqim_ratelimit_new(cfg->file_rate_per_sec,
                                    cfg->file_rate_burst != 0u ? cfg->file_rate_burst : 1u, 4096u);
    mqim_idgen_init(&r->idgen);
    r->dm = malloc(sizeof(*r->dm));
    for (size_t f = 0; f < RT_FEATURES; f++) {
        const rt_feature_t *ft = rt_features[f];
        size_t size = ft->work_size;
        for (size_t i = 0; i < ft->n_ops; i++) {
            size = ft->ops[i].work_size > size ? ft->ops[i].work_size : size;
        }
        r->work[ft->id] = calloc(1, size != 0u ? size : 1u);
        ok = ok && r->work[ft->id] != NULL;
    }
    ctl_known_ops(r->known_ops, sizeof(r->known_ops), false);
    ctl_known_ops(r->known_file_ops, sizeof(r->known_file_ops), true);
    if (!ok || r->rl_file == NULL || r->dm == NULL || r->rl == NULL || !scratch_reserve(&r->doc, 4096u) ||
        !scratch_reserve(&r->env, 4096u)) {
        mqim_router_free(r);
        return NULL;
    }
    return r;
}

void mqim_router_set_rate_limits(mqim_router_t *r, unsigned rate_per_sec, unsigned rate_burst,
                                 unsigned file_rate_per_sec, unsigned file_rate_burst)
{
    /* Only the buckets: r->cfg keeps the start values, and the router reads
     * the live ones from the buckets. */
    mqim_ratelimit_set(r->rl, rate_per_sec, rate_burst);
    mqim_ratelimit_set(r->rl_file, file_rate_per_sec, file_rate_burst);
}

void mqim_router_free(mqim_router_t *r)
{
    if (r != NULL) {
        mqim_ratelimit_free(r->rl);
        mqim_ratelimit_free(r->rl_file);
        for (size_t f = 0; f < RT_FEATURES; f++) {
            free(r->work[f]);
        }
        free(r->dm);
        free(r->doc.buf);
        free(r->env.buf);
        free(r);
    }
}

/* ---- age retention ---- */

typedef struct names {
    char (*v)[MQIM_USER_NAME_MAX + 1];
    size_t n, cap;
} names_t;

static int collect_user(void *vctx, mqim_str_t user, const mqim_user_rec_t *rec)
{
    names_t *ns = vctx;
    (void)rec;
    if (ns->n == ns->cap) {
        size_t cap = ns->cap ? ns->cap * 2u : 64u;
        void *nv = realloc(ns->v, cap * sizeof(*ns->v));
        if (nv == NULL) {
            return 1;
        }
        ns->v = nv;
        ns->cap = cap;
    }
    if (user.len <= MQIM_USER_NAME_MAX) {
        memcpy(ns->v[ns->n], user.ptr, user.len);
        ns->v[ns->n][user.len] = '\0';
        ns->n++;
    }
    return 0;
}

static int collect_group(void *vctx, mqim_str_t group)
{
    return collect_user(vctx, group, NULL); /* group names obey the user name rules */
}

/* Group retention in the sweep: one short write txn per group. */
static mqim_status_t sweep_groups(mqim_store_t *store, const mqim_router_config_t *cfg, int64_t now_ms,
                                  uint64_t *pruned)
{
    names_t ns = { NULL, 0, 0 };
    mqim_txn_t txn;
    mqim_status_t st = mqim_txn_begin(store, MQIM_TXN_READ, &txn);
    if (st != MQIM_OK) {
        return st;
    }
    st = mqim_store_gindex_each(&txn, collect_group, &ns);
    mqim_txn_abort(&txn);
    for (size_t i = 0; st == MQIM_OK && i < ns.n; i++) {
        mqim_str_t group = mqim_str_from_cstr(ns.v[i]);
        mqim_group_rec_t g;
        uint64_t keep, msgs = 0, entries = 0;
        int64_t age;
        bool exists;
        st = mqim_txn_begin(store, MQIM_TXN_WRITE, &txn);
        if (st != MQIM_OK) {
            break;
        }
        st = mqim_store_group_get(&txn, group, &g);
        exists = st == MQIM_OK;
        st = st == MQIM_NOT_FOUND ? MQIM_OK : st;
        keep = rt_group_keep(cfg, exists ? &g : NULL);
        age = rt_group_age_ms(cfg, exists ? &g : NULL);
        if (st == MQIM_OK && (keep != 0u || age > 0)) {
            st = mqim_store_group_prune(&txn, group, keep, age > 0 ? now_ms - age : 0, &msgs, &entries);
        }
        if (st == MQIM_OK && msgs > 0u) {
            st = mqim_txn_commit(&txn);
            *pruned += entries;
        } else {
            mqim_txn_abort(&txn);
        }
    }
    free(ns.v);
    return st;
}

mqim_status_t mqim_router_sweep(mqim_store_t *store, const mqim_router_config_t *cfg,
                                int64_t now_ms, uint64_t *pruned)
{
    names_t ns = { NULL, 0, 0 };
    mqim_txn_t txn;
    mqim_status_t st;
    *pruned = 0;
    /* Groups first: the tombstones they leave at the head of an inbox are
     * then removed by that user's own retention in the same sweep. */
    st = sweep_groups(store, cfg, now_ms, pruned);
    if (st != MQIM_OK) {
        return st;
    }
    /* Names first (read txn), then one short write txn per user, so the
     * sweep never holds the writer lock for long. */
    st = mqim_txn_begin(store, MQIM_TXN_READ, &txn);
    if (st != MQIM_OK) {
        return st;
    }
    st = mqim_store_user_each(&txn, collect_user, &ns);
    mqim_txn_abort(&txn);
    for (size_t i = 0; st == MQIM_OK && i < ns.n; i++) {
        uint64_t n = 0;
        st = mqim_txn_begin(store, MQIM_TXN_WRITE, &txn);
        if (st != MQIM_OK) {
            break;
        }
        mqim_user_rec_t u;
        mqim_str_t user = mqim_str_from_cstr(ns.v[i]);
        int64_t age = 0;
        if (mqim_store_user_get(&txn, user, &u) == MQIM_OK) {
            age = policy_age_ms(&u, cfg); /* the user's own, else the default */
        }
        if (age > 0) {
            st = mqim_store_inbox_prune(&txn, user, 0, now_ms - age, &n);
        }
        if (st == MQIM_OK && n > 0u) {
            st = mqim_txn_commit(&txn);
            *pruned += n;
        } else {
            mqim_txn_abort(&txn);
        }
    }
    free(ns.v);
    return st;
}
