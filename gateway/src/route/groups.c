/* Groups (docs/protocol.md, "Groups"): membership kept by the gateway, not
 * tied to being connected; a group message stored once per member inbox
 * under the chat "#group"; membership changes are messages in the group's
 * history; per-member delivered/read status of a group message; retention
 * by count and age per group (older messages become tombstones in every
 * inbox that held them, so no member's seq stream gets a hole).
 *
 * Everything of one request happens in the caller's transaction (q->txn),
 * publishes included (through the store's outbox), like direct messages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mqim/name.h"
#include "mqim/utf8.h"
#include "router_internal.h"

#define LOG_MOD "groups"
#define GROUP_USERS_MAX 256 /* users named in one request */

/* "#group": the chat key of a group in inboxes, chat index and cursors. */
typedef struct chat_key {
    char b[MQIM_GROUP_NAME_MAX + 2];
    mqim_str_t s;
} chat_key_t;

static void group_chat(chat_key_t *k, mqim_str_t group)
{
    k->b[0] = '#';
    memcpy(k->b + 1, group.ptr, group.len);
    k->s = (mqim_str_t){ k->b, group.len + 1u };
}

static unsigned max_members(const req_t *q)
{
    return q->r->cfg.group_max_members != 0u ? q->r->cfg.group_max_members : 256u;
}

static unsigned max_groups(const req_t *q)
{
    return q->r->cfg.groups_per_user != 0u ? q->r->cfg.groups_per_user : 100u;
}

/* ---- members as a list (names copied out of the map) ---- */

typedef struct member_list {
    char names[GROUP_USERS_MAX + 1][MQIM_USER_NAME_MAX];
    size_t lens[GROUP_USERS_MAX + 1];
    uint8_t roles[GROUP_USERS_MAX + 1];
    int64_t joined[GROUP_USERS_MAX + 1];
    size_t n;
    bool overflow;
} member_list_t;

static int collect_member(void *vctx, mqim_str_t user, const mqim_member_rec_t *rec)
{
    member_list_t *l = vctx;
    if (l->n == GROUP_USERS_MAX + 1u || user.len > MQIM_USER_NAME_MAX) {
        l->overflow = true;
        return 1;
    }
    memcpy(l->names[l->n], user.ptr, user.len);
    l->lens[l->n] = user.len;
    l->roles[l->n] = rec->role;
    l->joined[l->n] = rec->joined_ms;
    l->n++;
    return 0;
}

/* Response bodies. */
typedef struct gr_resp {
    const char *kind; /* "group" / "groups" / "info" / "status" */
    mqim_str_t group, title, id;
    const member_list_t *l;
    const char *const *status; /* per member (msg_status) */
    int64_t created;
    uint64_t retain_count, retain_days; /* the group's own policy (store encoding) */
} gr_resp_t;

/* groups: the requester's groups with title, role and size. */
typedef struct list_ctx {
    req_t *q;
    member_list_t *l; /* names = groups, roles = my role, joined = member count */
    char titles[GROUP_USERS_MAX + 1][MQIM_GROUP_TITLE_MAX];
    size_t title_lens[GROUP_USERS_MAX + 1];
} list_ctx_t;

/* The feature's work area (gr_feature: one per router, too big for the
 * stack; a ctl response body is written after its handler returns). */
typedef struct gr_work {
    member_list_t members; /* the group's members, reloaded by each step */
    member_list_t users;   /* users named by the request */
    list_ctx_t list;
    const char *status[GROUP_USERS_MAX + 1];
    char id[MQIM_ID_MAX];
    gr_resp_t resp;
    char why[REASON_MAX];
} gr_work_t;

static gr_work_t *gr_w(const mqim_router_t *r)
{
    return rt_work(r, RT_FEATURE_GROUPS);
}

static mqim_str_t member_name(const member_list_t *l, size_t i)
{
    return (mqim_str_t){ l->names[i], l->lens[i] };
}

static mqim_status_t load_members(req_t *q, mqim_str_t group, member_list_t *l)
{
    mqim_status_t st;
    l->n = 0;
    l->overflow = false;
    st = mqim_store_member_each(&q->txn, group, collect_member, l);
    return st == MQIM_OK && l->overflow ? MQIM_STORE_ERROR : st;
}

static int count_one(void *vctx, mqim_str_t group)
{
    (void)group;
    (*(unsigned *)vctx)++;
    return 0;
}

/* How many groups user is in; a store failure is the caller's answer. */
static mqim_status_t groups_of(req_t *q, mqim_str_t user, unsigned *n)
{
    *n = 0;
    return mqim_store_membership_each(&q->txn, user, count_one, n);
}

/* ---- retention ---- */

/* The group's own value, else the gateway's default; 0 = no limit. */
static uint64_t group_keep(const mqim_router_config_t *cfg, const mqim_group_rec_t *g)
{
    if (g->retain_count == MQIM_POLICY_UNLIMITED) {
        return 0u;
    }
    return g->retain_count != 0u ? g->retain_count : cfg->group_retain_count;
}

int64_t rt_group_age_ms(const mqim_router_config_t *cfg, const mqim_group_rec_t *g)
{
    if (g == NULL) {
        return cfg->group_retain_age_ms; /* an ended group: the default */
    }
    if (g->retain_days == MQIM_POLICY_UNLIMITED) {
        return 0;
    }
    return g->retain_days != 0u ? (int64_t)g->retain_days * 86400000 : cfg->group_retain_age_ms;
}

uint64_t rt_group_keep(const mqim_router_config_t *cfg, const mqim_group_rec_t *g)
{
    return g == NULL ? 0u : group_keep(cfg, g);
}

/* Prune the group to its policy: by count, and with age also by age at q->now. */
static mqim_status_t group_prune(req_t *q, mqim_str_t group, bool age)
{
    mqim_group_rec_t g;
    uint64_t keep;
    int64_t age_ms;
    mqim_status_t st = mqim_store_group_get(&q->txn, group, &g);
    if (st != MQIM_OK) {
        return st == MQIM_NOT_FOUND ? MQIM_OK : st; /* ended: the sweep's business */
    }
    keep = group_keep(&q->r->cfg, &g);
    age_ms = age ? rt_group_age_ms(&q->r->cfg, &g) : 0;
    if (keep == 0u && age_ms <= 0) {
        return MQIM_OK;
    }
    return mqim_store_group_prune(&q->txn, group, keep, age_ms > 0 ? q->now - age_ms : 0, NULL, NULL);
}

/* A message of the group was just stored: count it, then keep the count. */
static mqim_status_t group_count_and_prune(req_t *q, mqim_str_t group)
{
    mqim_group_rec_t g;
    mqim_status_t st = mqim_store_group_get(&q->txn, group, &g);
    if (st == MQIM_NOT_FOUND) {
        return MQIM_OK; /* the last one left: the group ended with this event */
    }
    if (st == MQIM_OK) {
        g.msgs++;
        st = mqim_store_group_put(&q->txn, group, &g);
    }
    return st == MQIM_OK ? group_prune(q, group, false) : st;
}

/* ---- fan-out: one stored message to every member ---- */

/*
 * Store m (from, group, type, body, id filled in) once, append it to the
 * inbox of every member in l and of `extra` (a member just removed or
 * leaving, who should see the event), publish each copy with that member's
 * seq; the sender's copy is the echo (dir SENT), and *sender_seq gets its seq.
 */
static mqim_status_t fanout(req_t *q, mqim_msg_rec_t *m, const member_list_t *l, mqim_str_t extra,
                            int qos, uint64_t *sender_seq)
{
    chat_key_t chat;
    mqim_envelope_t env;
    mqim_status_t st;
    size_t total = l->n + (extra.len > 0u ? 1u : 0u);
    group_chat(&chat, m->group);
    m->ts = q->now;
    m->qos = (uint8_t)qos;
    m->refs = (uint32_t)total;
    m->to = (mqim_str_t){ NULL, 0 };
    st = mqim_store_msg_put(&q->txn, m);
    rt_envelope_from_rec(m, 0, &env); /* the seq is each member's, below */
    *sender_seq = 0;
    for (size_t i = 0; st == MQIM_OK && i < total; i++) {
        mqim_str_t user = i < l->n ? member_name(l, i) : extra;
        bool is_sender = mqim_str_eq(user, m->from);
        uint64_t seq = 0;
        mqim_str_t payload;
        st = mqim_store_user_ensure(&q->txn, user, q->now);
        if (st == MQIM_OK) {
            st = fl_grant(q, &env, user);
        }
        if (st == MQIM_OK) {
            st = mqim_store_inbox_append(&q->txn, user, chat.s, m->mid,
                                         is_sender ? MQIM_INBOX_SENT : MQIM_INBOX_RECEIVED, &seq);
        }
        env.seq = seq;
        env.has_seq = true;
        if (st == MQIM_OK) {
            st = rt_encode_envelope(&q->r->env, &env, &payload);
        }
        if (st == MQIM_OK) {
            st = rt_emit(q, MQIM_TOPIC_IN_MSG, user, qos, false, payload);
        }
        if (st == MQIM_OK && is_sender) {
            *sender_seq = seq;
        }
        if (st == MQIM_OK) {
            /* where this copy sits, for group retention */
            st = mqim_store_gindex_put(&q->txn, m->group, m->mid, user, seq);
        }
        if (st == MQIM_OK) {
            st = rt_prune_count(q, user);
        }
    }
    if (st == MQIM_OK && *sender_seq != 0u) {
        m->sender_seq = *sender_seq;
        st = mqim_store_msg_update(&q->txn, m);
    }
    if (st == MQIM_OK) {
        st = group_count_and_prune(q, m->group);
    }
    return st;
}

/* A membership change as a message of the group (type group.*, from the
 * actor, body the user concerned or the new title). */
static mqim_status_t event(req_t *q, mqim_str_t group, const char *type, mqim_str_t body,
                           mqim_str_t extra)
{
    member_list_t *l = &gr_w(q->r)->members;
    mqim_msg_rec_t m;
    uint8_t rnd[10];
    char id[MQIM_ULID_LEN + 1];
    uint64_t seq = 0;
    mqim_status_t st = load_members(q, group, l);
    if (st != MQIM_OK) {
        return st;
    }
    rt_random_bytes(q->r, rnd, sizeof(rnd));
    st = mqim_id_make(&q->r->idgen, (uint64_t)q->now, rnd, id);
    memset(&m, 0, sizeof(m));
    m.id = (mqim_str_t){ id, MQIM_ULID_LEN };
    m.from = q->t.user;
    m.group = group;
    m.type = mqim_str_from_cstr(type);
    m.body = body;
    if (st == MQIM_OK) {
        st = fanout(q, &m, l, extra, 1, &seq);
    }
    return st;
}

/* ---- group messages ---- */

/* Checks shared by messages and ops: the group exists and user is in it. */
static mqim_status_t membership(req_t *q, mqim_str_t group, mqim_str_t user, mqim_member_rec_t *mr,
                                char *why, size_t why_len)
{
    mqim_group_rec_t g;
    mqim_status_t st = mqim_store_group_get(&q->txn, group, &g);
    if (st == MQIM_NOT_FOUND) {
        /* the same answer as for a group I am not in: a non-member cannot
         * tell which groups exist (docs/protocol.md, "Groups") */
        snprintf(why, why_len, "%.*s is not a member of %.*s (or there is no such group)", (int)user.len,
                 user.ptr, (int)group.len, group.ptr);
        return MQIM_NOT_MEMBER;
    }
    if (st == MQIM_OK) {
        st = mqim_store_member_get(&q->txn, group, user, mr);
        if (st == MQIM_NOT_FOUND) {
            snprintf(why, why_len, "%.*s is not a member of %.*s", (int)user.len, user.ptr,
                     (int)group.len, group.ptr);
            return MQIM_NOT_MEMBER;
        }
    }
    return st;
}

static mqim_status_t group_ephemeral(req_t *q, dm_parse_t *p)
{
    member_list_t *l = &gr_w(q->r)->members;
    mqim_member_rec_t mr;
    char why[REASON_MAX];
    mqim_str_t payload;
    mqim_status_t st = mqim_txn_begin(q->r->store, MQIM_TXN_READ, &q->txn);
    if (st == MQIM_OK) {
        st = membership(q, q->t.name, q->t.user, &mr, why, sizeof(why));
        if (st == MQIM_OK) {
            st = load_members(q, q->t.name, l);
        }
        mqim_txn_abort(&q->txn);
    }
    if (st == MQIM_NOT_MEMBER) {
        return rt_reject(q, "group", p->env.id, (mqim_str_t){ NULL, 0 }, st, "%s", why);
    }
    if (st == MQIM_OK) {
        st = rt_encode_envelope(&q->r->env, &p->env, &payload);
    }
    for (size_t i = 0; st == MQIM_OK && i < l->n; i++) {
        mqim_str_t topic;
        if (mqim_str_eq(member_name(l, i), q->t.user)) {
            continue;
        }
        st = rt_user_topic(q->r, MQIM_TOPIC_IN_MSG, member_name(l, i), &topic);
        if (st == MQIM_OK) {
            rt_publish_now(q->r, topic, payload, 0, (mqim_str_t){ NULL, 0 });
        }
    }
    return st;
}

mqim_status_t gr_handle_message(req_t *q)
{
    mqim_router_t *r = q->r;
    dm_parse_t *p = r->dm;
    member_list_t *l = &gr_w(r)->members;
    const char *reason = NULL;
    char why[REASON_MAX] = ""; /* set by whichever step refuses */
    mqim_member_rec_t mr;
    mqim_msg_rec_t m;
    mqim_str_t dup, payload;
    uint64_t seq = 0;
    bool chose_id;
    mqim_status_t st = rt_dm_parse(q, p, &reason);

    if (st != MQIM_OK) {
        return rt_reject(q, "group", p->env.id, (mqim_str_t){ NULL, 0 }, st, "%s",
                         reason != NULL ? reason : mqim_status_str(st));
    }
    chose_id = p->env.id.len > 0u;
    if (!chose_id && rt_make_id(q, p) != MQIM_OK) {
        return rt_reject(q, "group", p->env.id, (mqim_str_t){ NULL, 0 }, MQIM_INTERNAL, "cannot make an id");
    }
    if (q->in->qos == 0 && (p->env.has_file || mqim_str_eq_cstr(p->env.type, "file"))) {
        return rt_reject(q, "group", p->env.id, (mqim_str_t){ NULL, 0 }, MQIM_QOS_ZERO_RECEIPT,
                         "a file message is stored: publish it with QoS 1 or 2");
    }
    if (q->in->qos == 0) {
        return group_ephemeral(q, p);
    }
    st = mqim_txn_begin(r->store, MQIM_TXN_WRITE, &q->txn);
    if (st != MQIM_OK) {
        return rt_reject(q, "group", p->env.id, (mqim_str_t){ NULL, 0 }, st, "%s", mqim_status_str(st));
    }
    if (chose_id && mqim_store_dedupe_get(&q->txn, q->t.user, p->env.id, &dup) == MQIM_OK) {
        st = rt_confirm_again(q, dup, p->env.ack_sent);
        st = st == MQIM_OK ? mqim_txn_commit(&q->txn) : (mqim_txn_abort(&q->txn), st);
        return st;
    }
    st = membership(q, q->t.name, q->t.user, &mr, why, sizeof(why));
    if (st == MQIM_OK) {
        st = load_members(q, q->t.name, l);
    }
    for (size_t i = 0; st == MQIM_OK && i < l->n; i++) {
        uint64_t quota = 0;
        st = rt_check_quota(q, member_name(l, i), &quota);
        if (st == MQIM_QUOTA_FULL) {
            snprintf(why, sizeof(why), "inbox of %.*s is full (%llu messages)", (int)l->lens[i],
                     l->names[i], (unsigned long long)quota);
        } else if (st == MQIM_NOT_FOUND) {
            st = MQIM_OK; /* no record yet: fanout creates it */
        }
    }
    if (st == MQIM_OK) {
        const char *freason = NULL;
        st = fl_attach(q, p, &freason);
        if (st != MQIM_OK && st != MQIM_STORE_ERROR && st != MQIM_STORE_FULL && st != MQIM_DISK_FULL) {
            snprintf(why, sizeof(why), "%s", freason != NULL ? freason : mqim_status_str(st));
        }
    }
    if (st == MQIM_OK) {
        memset(&m, 0, sizeof(m));
        m.id = p->env.id;
        m.from = q->t.user;
        m.group = q->t.name;
        m.type = p->env.type;
        m.body = p->env.body;
        rt_msg_set_extras(&m, &p->env);
        st = fanout(q, &m, l, (mqim_str_t){ NULL, 0 }, q->in->qos > 1 ? 1 : q->in->qos, &seq);
    }
    if (st == MQIM_OK && (p->env.ack_sent || chose_id)) {
        sent_doc_t sent = { p->env.id, q->t.name, seq, q->now, true };
        st = rt_build_json(&r->doc, rt_build_sent, &sent, &payload);
        /* The echo (fanout) confirms the message to the sender's devices;
         * a separate `sent` ack only when the sender asked for one. */
        if (st == MQIM_OK && p->env.ack_sent) {
            st = rt_emit(q, MQIM_TOPIC_IN_ACK, q->t.user, 1, false, payload);
        }
        if (st == MQIM_OK && chose_id) {
            st = mqim_store_dedupe_put(&q->txn, q->t.user, p->env.id, payload);
        }
        if (st == MQIM_OK) {
            st = mqim_store_counter_add(&q->txn, "group_messages", 1u);
        }
    }
    if (st == MQIM_OK) {
        st = mqim_txn_commit(&q->txn);
    } else {
        mqim_txn_abort(&q->txn);
    }
    if (st == MQIM_NOT_MEMBER || st == MQIM_QUOTA_FULL || st == MQIM_FIELD_MISSING ||
        st == MQIM_FIELD_RANGE || st == MQIM_NOT_FOUND || st == MQIM_FILE_INCOMPLETE) {
        return rt_reject(q, "group", p->env.id, (mqim_str_t){ NULL, 0 }, st, "%s",
                         why[0] != '\0' ? why : mqim_status_str(st));
    }
    if (st != MQIM_OK) {
        return rt_reject(q, "group", p->env.id, (mqim_str_t){ NULL, 0 }, st, "%s", mqim_status_str(st));
    }
    return MQIM_OK;
}

/* ---- control ops ---- */

/* The request's group name, checked. */
static bool req_group(const cJSON *root, ctl_doc_t *d, mqim_str_t *group)
{
    *group = rt_json_str(cJSON_GetObjectItemCaseSensitive(root, "group"));
    if (mqim_name_check(MQIM_NAME_GROUP, *group) != MQIM_OK) {
        d->code = MQIM_FIELD_TYPE;
        d->reason = "\"group\" must be a valid group name";
        return false;
    }
    return true;
}

/* "users": an array of 1..GROUP_USERS_MAX registered user names (or, with
 * allow_empty, absent). */
static bool req_users(req_t *q, const cJSON *root, const char *key, bool allow_empty, ctl_doc_t *d,
                      member_list_t *out, char *why, size_t why_len)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, key), *it;
    out->n = 0;
    if (arr == NULL && allow_empty) {
        return true;
    }
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) < (allow_empty ? 0 : 1) ||
        cJSON_GetArraySize(arr) > GROUP_USERS_MAX) {
        d->code = MQIM_FIELD_TYPE;
        snprintf(why, why_len, "\"%s\" must be an array of 1..%d user names", key, GROUP_USERS_MAX);
        d->reason = why;
        return false;
    }
    cJSON_ArrayForEach(it, arr)
    {
        mqim_str_t u = rt_json_str(it);
        if (mqim_name_check(MQIM_NAME_USER, u) != MQIM_OK) {
            d->code = MQIM_FIELD_TYPE;
            snprintf(why, why_len, "\"%s\" must hold user names", key);
            d->reason = why;
            return false;
        }
        if (!rt_user_known(q, u) && !q->r->cfg.accept_any_user) {
            d->code = MQIM_UNKNOWN_PEER;
            snprintf(why, why_len, "no such user: %.*s", (int)u.len, u.ptr);
            d->reason = why;
            return false;
        }
        memcpy(out->names[out->n], u.ptr, u.len);
        out->lens[out->n++] = u.len;
    }
    return true;
}

static bool list_has(const member_list_t *l, mqim_str_t u)
{
    for (size_t i = 0; i < l->n; i++) {
        if (mqim_str_eq(member_name(l, i), u)) {
            return true;
        }
    }
    return false;
}


static const char *const role_names[] = { "member", "admin", "owner" };

static void policy_write(mqim_json_writer_t *w, const char *key, uint64_t v)
{
    if (v == 0u) {
        mqim_json_key_raw(w, key, MQIM_STR("null"));
    } else {
        mqim_json_key_u64(w, key, v == MQIM_POLICY_UNLIMITED ? 0u : v);
    }
}

static void body_group(mqim_json_writer_t *w, const ctl_doc_t *d)
{
    const gr_resp_t *g = d->ctx;
    mqim_json_key_str(w, "group", g->group);
    if (strcmp(g->kind, "info") == 0 || strcmp(g->kind, "group") == 0) {
        mqim_json_key_str(w, "title", g->title);
        mqim_json_key_i64(w, "created", g->created);
        /* the group's own policy as group_set takes it: null = the default */
        policy_write(w, "retain_count", g->retain_count);
        policy_write(w, "retain_days", g->retain_days);
        mqim_json_array_begin(w, "members");
        for (size_t i = 0; i < g->l->n; i++) {
            mqim_json_object_begin(w);
            mqim_json_key_str(w, "user", member_name(g->l, i));
            mqim_json_key_str(w, "role", mqim_str_from_cstr(role_names[g->l->roles[i] <= 2u ? g->l->roles[i] : 0u]));
            mqim_json_key_i64(w, "joined", g->l->joined[i]);
            mqim_json_object_end(w);
        }
        mqim_json_array_end(w);
    } else if (strcmp(g->kind, "status") == 0) {
        mqim_json_key_str(w, "id", g->id);
        mqim_json_array_begin(w, "members");
        for (size_t i = 0; i < g->l->n; i++) {
            mqim_json_object_begin(w);
            mqim_json_key_str(w, "user", member_name(g->l, i));
            mqim_json_key_str(w, "status", mqim_str_from_cstr(g->status[i]));
            mqim_json_object_end(w);
        }
        mqim_json_array_end(w);
    }
}

static mqim_status_t load_info(req_t *q, mqim_str_t group, gr_resp_t *g, member_list_t *l)
{
    mqim_group_rec_t rec;
    mqim_status_t st = mqim_store_group_get(&q->txn, group, &rec);
    if (st == MQIM_OK) {
        g->title = rec.title;
        g->created = rec.created_ms;
        g->retain_count = rec.retain_count;
        g->retain_days = rec.retain_days;
        st = load_members(q, group, l);
    }
    g->group = group;
    g->l = l;
    return st;
}

static mqim_status_t op_create(req_t *q, const cJSON *root, ctl_doc_t *d, gr_resp_t *g, char *why)
{
    member_list_t *add = &gr_w(q->r)->users;
    mqim_str_t group, title;
    mqim_group_rec_t rec;
    mqim_member_rec_t mr;
    mqim_status_t st;
    unsigned in_groups = 0;
    char body[MQIM_USER_NAME_MAX * 8 + 16];
    size_t blen = 0;
    if (!req_group(root, d, &group) || !req_users(q, root, "members", true, d, add, why, REASON_MAX)) {
        return d->code;
    }
    title = rt_json_str(cJSON_GetObjectItemCaseSensitive(root, "title"));
    if (title.len > MQIM_GROUP_TITLE_MAX || !mqim_utf8_valid(title.ptr, title.len)) {
        d->reason = "\"title\" must be UTF-8 of at most 128 bytes";
        return MQIM_FIELD_RANGE;
    }
    if (mqim_store_group_get(&q->txn, group, &rec) == MQIM_OK) {
        snprintf(why, REASON_MAX, "group %.*s already exists", (int)group.len, group.ptr);
        d->reason = why;
        return MQIM_GROUP_EXISTS;
    }
    if (!list_has(add, q->t.user)) {
        memcpy(add->names[add->n], q->t.user.ptr, q->t.user.len);
        add->lens[add->n++] = q->t.user.len;
    }
    if (add->n > max_members(q)) {
        snprintf(why, REASON_MAX, "a group has at most %u members", max_members(q));
        d->reason = why;
        return MQIM_GROUP_FULL;
    }
    rec = (mqim_group_rec_t){ q->now, 0, title.len > 0u ? title : group, 0, 0, 0 };
    /* A group made again under an old name: what the old one left in
     * inboxes is under the same chat, and counts for this one's retention. */
    st = mqim_store_gindex_count(&q->txn, group, &rec.msgs);
    if (st == MQIM_OK) {
        st = mqim_store_user_ensure(&q->txn, q->t.user, q->now);
    }
    for (size_t i = 0; st == MQIM_OK && i < add->n; i++) {
        mqim_str_t u = member_name(add, i);
        if (list_has(add, u) && i > 0u) {
            bool seen = false;
            for (size_t k = 0; k < i; k++) {
                seen = seen || mqim_str_eq(member_name(add, k), u);
            }
            if (seen) {
                continue; /* named twice */
            }
        }
        st = groups_of(q, u, &in_groups);
        if (st != MQIM_OK) {
            return st;
        }
        if (in_groups >= max_groups(q)) {
            snprintf(why, REASON_MAX, "%.*s is in %u groups already", (int)u.len, u.ptr, max_groups(q));
            d->reason = why;
            return MQIM_TOO_MANY_GROUPS;
        }
        mr.role = mqim_str_eq(u, q->t.user) ? MQIM_ROLE_OWNER : MQIM_ROLE_MEMBER;
        mr.joined_ms = q->now;
        st = mqim_store_member_put(&q->txn, group, u, &mr);
        rec.members++;
        if (st == MQIM_OK && !mqim_str_eq(u, q->t.user) && blen + u.len + 2u < sizeof(body)) {
            if (blen > 0u) {
                body[blen++] = ',';
            }
            memcpy(body + blen, u.ptr, u.len);
            blen += u.len;
        }
    }
    if (st == MQIM_OK) {
        st = mqim_store_group_put(&q->txn, group, &rec);
    }
    if (st == MQIM_OK) {
        /* one event: who created it, with whom ("bob,carol"; empty: alone) */
        st = event(q, group, "group.create", (mqim_str_t){ body, blen }, (mqim_str_t){ NULL, 0 });
    }
    if (st == MQIM_OK) {
        g->kind = "group";
        st = load_info(q, group, g, &gr_w(q->r)->members);
    }
    return st;
}

/* The requester's membership of group in *me when it is the owner or an
 * admin. NOT_MEMBER and FORBIDDEN come with d->reason set (FORBIDDEN's is
 * refusal); any other failure is the store's, for the caller to handle. */
static mqim_status_t require_admin(req_t *q, mqim_str_t group, mqim_member_rec_t *me, ctl_doc_t *d,
                                   char *why, const char *refusal)
{
    mqim_status_t st = membership(q, group, q->t.user, me, why, REASON_MAX);
    if (st == MQIM_NOT_MEMBER) {
        d->reason = why;
        return st;
    }
    if (st == MQIM_OK && me->role == MQIM_ROLE_MEMBER) {
        d->reason = refusal;
        return MQIM_FORBIDDEN;
    }
    return st;
}

/* Who may change membership: owner and admins; only the owner makes or
 * removes admins; nobody removes the owner (the owner leaves instead). */
static mqim_status_t op_add_remove(req_t *q, const cJSON *root, ctl_doc_t *d, gr_resp_t *g,
                                   char *why, bool add)
{
    member_list_t *users = &gr_w(q->r)->users;
    mqim_str_t group;
    mqim_member_rec_t me, mr;
    mqim_group_rec_t rec;
    const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "role"));
    mqim_status_t st;
    unsigned in_groups = 0;
    if (!req_group(root, d, &group) || !req_users(q, root, "users", false, d, users, why, REASON_MAX)) {
        return d->code;
    }
    st = require_admin(q, group, &me, d, why, "only the owner and admins change membership");
    if (st == MQIM_NOT_MEMBER || st == MQIM_FORBIDDEN) {
        return st;
    }
    if (st == MQIM_OK && add && role != NULL && strcmp(role, "admin") != 0 && strcmp(role, "member") != 0) {
        d->reason = "\"role\" must be \"member\" or \"admin\"";
        return MQIM_FIELD_RANGE;
    }
    if (st == MQIM_OK && add && role != NULL && strcmp(role, "admin") == 0 && me.role != MQIM_ROLE_OWNER) {
        d->reason = "only the owner makes admins";
        return MQIM_FORBIDDEN;
    }
    if (st == MQIM_OK) {
        st = mqim_store_group_get(&q->txn, group, &rec);
    }
    for (size_t i = 0; st == MQIM_OK && i < users->n; i++) {
        mqim_str_t u = member_name(users, i);
        bool is_member = mqim_store_member_get(&q->txn, group, u, &mr) == MQIM_OK;
        if (add) {
            if (is_member) {
                continue; /* already in: nothing to say */
            }
            if (rec.members >= max_members(q)) {
                snprintf(why, REASON_MAX, "%.*s has %u members, the maximum", (int)group.len, group.ptr,
                         max_members(q));
                d->reason = why;
                return MQIM_GROUP_FULL;
            }
            st = groups_of(q, u, &in_groups);
            if (st != MQIM_OK) {
                return st;
            }
            if (in_groups >= max_groups(q)) {
                snprintf(why, REASON_MAX, "%.*s is in %u groups already", (int)u.len, u.ptr, max_groups(q));
                d->reason = why;
                return MQIM_TOO_MANY_GROUPS;
            }
            mr.role = role != NULL && strcmp(role, "admin") == 0 ? MQIM_ROLE_ADMIN : MQIM_ROLE_MEMBER;
            mr.joined_ms = q->now;
            st = mqim_store_member_put(&q->txn, group, u, &mr);
            rec.members++;
            if (st == MQIM_OK) {
                st = mqim_store_group_put(&q->txn, group, &rec);
            }
            if (st == MQIM_OK) {
                /* the new member sees it too: their history starts here */
                st = event(q, group, "group.add", u, (mqim_str_t){ NULL, 0 });
            }
        } else {
            if (!is_member) {
                continue;
            }
            if (mr.role == MQIM_ROLE_OWNER || (mr.role == MQIM_ROLE_ADMIN && me.role != MQIM_ROLE_OWNER)) {
                snprintf(why, REASON_MAX, "%.*s is the %s: %s", (int)u.len, u.ptr, role_names[mr.role],
                         mr.role == MQIM_ROLE_OWNER ? "the owner leaves instead" : "only the owner removes admins");
                d->reason = why;
                return MQIM_FORBIDDEN;
            }
            st = mqim_store_member_del(&q->txn, group, u);
            rec.members--;
            if (st == MQIM_OK) {
                st = mqim_store_group_put(&q->txn, group, &rec);
            }
            if (st == MQIM_OK) {
                /* the removed member is told, and gets nothing after it */
                st = event(q, group, "group.remove", u, u);
            }
        }
    }
    if (st == MQIM_OK) {
        g->kind = "group";
        st = load_info(q, group, g, &gr_w(q->r)->members);
    }
    return st;
}

static mqim_status_t op_leave(req_t *q, const cJSON *root, ctl_doc_t *d, gr_resp_t *g, char *why)
{
    member_list_t *l = &gr_w(q->r)->users;
    mqim_str_t group;
    mqim_member_rec_t me;
    mqim_group_rec_t rec;
    mqim_status_t st;
    if (!req_group(root, d, &group)) {
        return d->code;
    }
    st = membership(q, group, q->t.user, &me, why, REASON_MAX);
    if (st == MQIM_NOT_MEMBER) {
        d->reason = why;
        return st;
    }
    if (st == MQIM_OK) {
        st = mqim_store_group_get(&q->txn, group, &rec);
    }
    if (st == MQIM_OK) {
        st = mqim_store_member_del(&q->txn, group, q->t.user);
        rec.members--;
    }
    if (st == MQIM_OK) {
        st = load_members(q, group, l);
    }
    if (st == MQIM_OK && l->n == 0u) {
        /* the last one out: the group goes; its history stays in inboxes */
        st = mqim_store_group_del(&q->txn, group);
    } else if (st == MQIM_OK) {
        if (me.role == MQIM_ROLE_OWNER) {
            /* ownership passes to an admin, else to the longest member */
            size_t best = 0;
            mqim_member_rec_t mr;
            for (size_t i = 1; i < l->n; i++) {
                if (l->roles[i] > l->roles[best] ||
                    (l->roles[i] == l->roles[best] && l->joined[i] < l->joined[best])) {
                    best = i;
                }
            }
            mr.role = MQIM_ROLE_OWNER;
            mr.joined_ms = l->joined[best];
            st = mqim_store_member_put(&q->txn, group, member_name(l, best), &mr);
        }
        if (st == MQIM_OK) {
            st = mqim_store_group_put(&q->txn, group, &rec);
        }
    }
    if (st == MQIM_OK) {
        st = event(q, group, "group.leave", q->t.user, q->t.user);
    }
    g->kind = "left";
    g->group = group;
    return st;
}

static mqim_status_t op_rename(req_t *q, const cJSON *root, ctl_doc_t *d, gr_resp_t *g, char *why)
{
    mqim_str_t group, title = rt_json_str(cJSON_GetObjectItemCaseSensitive(root, "title"));
    mqim_member_rec_t me;
    mqim_group_rec_t rec;
    mqim_status_t st;
    if (!req_group(root, d, &group)) {
        return d->code;
    }
    if (title.len == 0u || title.len > MQIM_GROUP_TITLE_MAX || !mqim_utf8_valid(title.ptr, title.len)) {
        d->reason = "\"title\" must be UTF-8 of 1..128 bytes";
        return MQIM_FIELD_RANGE;
    }
    st = require_admin(q, group, &me, d, why, "only the owner and admins rename a group");
    if (st == MQIM_NOT_MEMBER || st == MQIM_FORBIDDEN) {
        return st;
    }
    if (st == MQIM_OK) {
        st = mqim_store_group_get(&q->txn, group, &rec);
    }
    if (st == MQIM_OK) {
        rec.title = title;
        st = mqim_store_group_put(&q->txn, group, &rec);
    }
    if (st == MQIM_OK) {
        st = event(q, group, "group.rename", title, (mqim_str_t){ NULL, 0 });
    }
    if (st == MQIM_OK) {
        g->kind = "group";
        st = load_info(q, group, g, &gr_w(q->r)->members);
    }
    return st;
}

/* One policy field of group_set: absent (unchanged), null (the default: 0
 * in the record), 0 (no limit) or a positive limit up to max. */
static bool policy_field(const cJSON *root, const char *key, uint64_t max, uint64_t *field,
                         bool *given, ctl_doc_t *d, char *why)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    uint64_t v = 0;
    if (it == NULL) {
        return true;
    }
    *given = true;
    if (cJSON_IsNull(it)) {
        *field = 0u;
        return true;
    }
    if (!rt_json_u64(it, &v)) {
        snprintf(why, REASON_MAX, "\"%s\" must be an integer >= 0 (0: no limit) or null (the default)", key);
        d->code = MQIM_FIELD_TYPE;
        d->reason = why;
        return false;
    }
    if (v > max) {
        snprintf(why, REASON_MAX, "\"%s\" must be at most %llu", key, (unsigned long long)max);
        d->code = MQIM_FIELD_RANGE;
        d->reason = why;
        return false;
    }
    *field = v == 0u ? MQIM_POLICY_UNLIMITED : v;
    return true;
}

/* group_set: the group's own retention (owner and admins). Takes effect at
 * once: messages beyond the new limits are pruned in this transaction. */
static mqim_status_t op_set(req_t *q, const cJSON *root, ctl_doc_t *d, gr_resp_t *g, char *why)
{
    mqim_str_t group;
    mqim_member_rec_t me;
    mqim_group_rec_t rec;
    uint64_t count = 0, days = 0;
    bool has_count = false, has_days = false;
    mqim_status_t st;
    if (!req_group(root, d, &group) ||
        !policy_field(root, "retain_count", UINT64_C(1) << 53, &count, &has_count, d, why) ||
        !policy_field(root, "retain_days", 1000000u, &days, &has_days, d, why)) {
        return d->code;
    }
    if (!has_count && !has_days) {
        d->reason = "give \"retain_count\" and/or \"retain_days\"";
        return MQIM_FIELD_MISSING;
    }
    st = require_admin(q, group, &me, d, why, "only the owner and admins set a group's retention");
    if (st == MQIM_NOT_MEMBER || st == MQIM_FORBIDDEN) {
        return st;
    }
    if (st == MQIM_OK) {
        st = mqim_store_group_get(&q->txn, group, &rec);
    }
    if (st == MQIM_OK) {
        rec.retain_count = has_count ? count : rec.retain_count;
        rec.retain_days = has_days ? days : rec.retain_days;
        st = mqim_store_group_put(&q->txn, group, &rec);
    }
    if (st == MQIM_OK) {
        st = group_prune(q, group, true);
    }
    if (st == MQIM_OK) {
        g->kind = "group";
        st = load_info(q, group, g, &gr_w(q->r)->members);
    }
    return st;
}

static mqim_status_t op_info(req_t *q, const cJSON *root, ctl_doc_t *d, gr_resp_t *g, char *why)
{
    mqim_str_t group;
    mqim_member_rec_t me;
    mqim_status_t st;
    if (!req_group(root, d, &group)) {
        return d->code;
    }
    st = membership(q, group, q->t.user, &me, why, REASON_MAX);
    if (st == MQIM_NOT_MEMBER) {
        d->reason = why;
        return st;
    }
    g->kind = "info";
    return st == MQIM_OK ? load_info(q, group, g, &gr_w(q->r)->members) : st;
}



static int list_visit(void *vctx, mqim_str_t group)
{
    list_ctx_t *c = vctx;
    mqim_group_rec_t rec;
    mqim_member_rec_t mr;
    member_list_t *l = c->l;
    if (l->n == GROUP_USERS_MAX + 1u || group.len > MQIM_USER_NAME_MAX) {
        return 1;
    }
    if (mqim_store_group_get(&c->q->txn, group, &rec) != MQIM_OK ||
        mqim_store_member_get(&c->q->txn, group, c->q->t.user, &mr) != MQIM_OK) {
        return 0;
    }
    memcpy(l->names[l->n], group.ptr, group.len);
    l->lens[l->n] = group.len;
    l->roles[l->n] = mr.role;
    l->joined[l->n] = (int64_t)rec.members;
    c->title_lens[l->n] = rec.title.len < MQIM_GROUP_TITLE_MAX ? rec.title.len : MQIM_GROUP_TITLE_MAX;
    memcpy(c->titles[l->n], rec.title.ptr, c->title_lens[l->n]);
    l->n++;
    return 0;
}

static void body_groups(mqim_json_writer_t *w, const ctl_doc_t *d)
{
    const list_ctx_t *c = d->ctx;
    mqim_json_array_begin(w, "groups");
    for (size_t i = 0; i < c->l->n; i++) {
        mqim_json_object_begin(w);
        mqim_json_key_str(w, "group", member_name(c->l, i));
        mqim_json_key_str(w, "title", (mqim_str_t){ c->titles[i], c->title_lens[i] });
        mqim_json_key_str(w, "role", mqim_str_from_cstr(role_names[c->l->roles[i] <= 2u ? c->l->roles[i] : 0u]));
        mqim_json_key_u64(w, "members", (uint64_t)c->l->joined[i]);
        mqim_json_object_end(w);
    }
    mqim_json_array_end(w);
}

/* msg_status: per-member delivered/read of one of my group messages,
 * named by its seq in my inbox. */
typedef struct status_ctx {
    const member_list_t *l;
    const char **status;
} status_ctx_t;

static int status_visit(void *vctx, mqim_str_t member, uint8_t status, int64_t ts)
{
    status_ctx_t *c = vctx;
    (void)ts;
    for (size_t i = 0; i < c->l->n; i++) {
        if (mqim_str_eq(member_name(c->l, i), member)) {
            c->status[i] = status >= MQIM_RECEIPT_READ ? "read" : "delivered";
        }
    }
    return 0;
}


static mqim_status_t op_msg_status(req_t *q, const cJSON *root, ctl_doc_t *d, gr_resp_t *g, char *why)
{
    member_list_t *l = &gr_w(q->r)->members;
    uint64_t seq = 0;
    mqim_inbox_entry_t e;
    mqim_msg_rec_t m;
    mqim_status_t st;
    status_ctx_t c = { l, gr_w(q->r)->status };
    (void)why;
    if (!rt_json_u64(cJSON_GetObjectItemCaseSensitive(root, "seq"), &seq)) {
        d->reason = "\"seq\" (your inbox seq of the message) is required";
        return MQIM_FIELD_MISSING;
    }
    st = mqim_store_inbox_get(&q->txn, q->t.user, seq, &e);
    if (st == MQIM_OK && e.pruned) {
        d->reason = "the message at that seq was removed by the group's retention";
        return MQIM_NOT_FOUND;
    }
    if (st == MQIM_OK && e.dir != MQIM_INBOX_SENT) {
        st = MQIM_NOT_FOUND;
    }
    if (st == MQIM_OK) {
        st = mqim_store_msg_get(&q->txn, e.mid, &m);
    }
    if (st == MQIM_OK && m.group.len == 0u) {
        st = MQIM_NOT_FOUND;
    }
    if (st == MQIM_NOT_FOUND) {
        d->reason = "no group message of yours at that seq";
        return MQIM_NOT_FOUND;
    }
    if (st == MQIM_OK) {
        size_t n = m.id.len < MQIM_ID_MAX ? m.id.len : MQIM_ID_MAX;
        memcpy(gr_w(q->r)->id, m.id.ptr, n);
        g->id = (mqim_str_t){ gr_w(q->r)->id, n };
        g->group = m.group;
        st = load_members(q, m.group, l);
    }
    for (size_t i = 0; st == MQIM_OK && i < l->n; i++) {
        gr_w(q->r)->status[i] = mqim_str_eq(member_name(l, i), q->t.user) ? "sent" : "pending";
    }
    if (st == MQIM_OK) {
        st = mqim_store_receipt_each(&q->txn, e.mid, status_visit, &c);
    }
    g->kind = "status";
    g->l = l;
    g->status = gr_w(q->r)->status;
    return st;
}


typedef mqim_status_t (*gr_op_fn)(req_t *q, const cJSON *root, ctl_doc_t *d, gr_resp_t *g, char *why);

/* What every group op but "groups" shares: a clean response and reason,
 * the group document as the body on success, a debug line. */
static mqim_status_t gr_ctl(req_t *q, const cJSON *root, ctl_doc_t *d, gr_work_t *w, gr_op_fn op)
{
    mqim_status_t st;
    memset(&w->resp, 0, sizeof(w->resp));
    w->why[0] = '\0';
    st = op(q, root, d, &w->resp, w->why);
    if (st == MQIM_OK) {
        d->body = body_group;
        d->ctx = &w->resp;
    }
    MQIM_LOGD(LOG_MOD, "%s by %.*s: %s", d->op, (int)q->t.user.len, q->t.user.ptr, mqim_status_name(st));
    return st;
}

static mqim_status_t op_add(req_t *q, const cJSON *root, ctl_doc_t *d, gr_resp_t *g, char *why)
{
    return op_add_remove(q, root, d, g, why, true);
}

static mqim_status_t op_remove(req_t *q, const cJSON *root, ctl_doc_t *d, gr_resp_t *g, char *why)
{
    return op_add_remove(q, root, d, g, why, false);
}

#define GR_CTL(name, fn)                                                                     \
    static mqim_status_t name(req_t *q, const cJSON *root, ctl_doc_t *d, void *work)         \
    {                                                                                        \
        return gr_ctl(q, root, d, work, fn);                                                 \
    }
GR_CTL(ctl_create, op_create)
GR_CTL(ctl_add, op_add)
GR_CTL(ctl_remove, op_remove)
GR_CTL(ctl_leave, op_leave)
GR_CTL(ctl_rename, op_rename)
GR_CTL(ctl_set, op_set)
GR_CTL(ctl_info, op_info)
GR_CTL(ctl_msg_status, op_msg_status)

static mqim_status_t ctl_groups(req_t *q, const cJSON *root, ctl_doc_t *d, void *work)
{
    gr_work_t *w = work;
    list_ctx_t *lc = &w->list;
    (void)root;
    lc->q = q;
    lc->l = &w->members;
    lc->l->n = 0;
    d->body = body_groups;
    d->ctx = lc;
    return mqim_store_membership_each(&q->txn, q->t.user, list_visit, lc);
}

static const rt_ctl_op_t gr_ops[] = {
    { "group_create", ctl_create, sizeof(gr_work_t) },
    { "group_add", ctl_add, sizeof(gr_work_t) },
    { "group_remove", ctl_remove, sizeof(gr_work_t) },
    { "group_leave", ctl_leave, sizeof(gr_work_t) },
    { "group_rename", ctl_rename, sizeof(gr_work_t) },
    { "group_set", ctl_set, sizeof(gr_work_t) },
    { "group_info", ctl_info, sizeof(gr_work_t) },
    { "groups", ctl_groups, sizeof(gr_work_t) },
    { "msg_status", ctl_msg_status, sizeof(gr_work_t) },
};

const rt_feature_t gr_feature = { RT_FEATURE_GROUPS, gr_ops, sizeof(gr_ops) / sizeof(gr_ops[0]),
                                  sizeof(gr_work_t), false };
