/* The IM layer (client.h). */
#include "mqim/client.h"
#include "client_internal.h"

#include <stddef.h>
#include <string.h>

#include "mqim/json_read.h"
#include "mqim/json_write.h"
#include "mqim/limits.h"
#include "mqim/name.h"
#include "mqim/topic.h"
#include "mqim/utf8.h"

/* Outbox record: u8 id_len, id, u8 topic_len, topic, payload. */
static bool record_parse(const uint8_t *rec, size_t len, mqim_str_t *id, mqim_str_t *topic,
                         mqim_str_t *payload)
{
    size_t il, tl;
    if (len < 2u || (il = rec[0]) + 2u > len || (tl = rec[1 + il]) + il + 2u > len) {
        return false;
    }
    *id = (mqim_str_t){ (const char *)rec + 1, il };
    *topic = (mqim_str_t){ (const char *)rec + 2 + il, tl };
    *payload = (mqim_str_t){ (const char *)rec + 2 + il + tl, len - 2u - il - tl };
    return true;
}

static mqim_status_t user_topic(mqim_client_t *c, mqim_topic_kind_t kind, mqim_str_t name,
                                char *buf, size_t cap, mqim_str_t *out)
{
    size_t len = 0;
    mqim_status_t st = mqim_topic_build(c->cfg.root, kind, c->cfg.user, name, buf, cap, &len);
    *out = (mqim_str_t){ buf, len };
    return st;
}

/* A small JSON control payload (receipt, sync) published at QoS 1 outside
 * the outbox: losing one only delays a receipt or a sync, both repeatable. */
mqim_status_t mqim_client_publish_json(mqim_client_t *c, mqim_topic_kind_t kind, mqim_json_writer_t *w)
{
    char topic[MQIM_TOPIC_MAX + 1];
    mqim_str_t t;
    size_t len = 0;
    mqim_status_t st = mqim_json_finish(w, &len);
    if (st == MQIM_OK) {
        st = user_topic(c, kind, (mqim_str_t){ 0, 0 }, topic, sizeof(topic), &t);
    }
    if (st == MQIM_OK) {
        st = mqim_session_publish(&c->session, t, (const uint8_t *)c->work.scratch, len, 1, false, 0);
    }
    return st;
}

static mqim_status_t request_sync(mqim_client_t *c)
{
    mqim_json_writer_t w;
    mqim_json_init(&w, c->work.scratch, sizeof(c->work.scratch));
    mqim_json_object_begin(&w);
    mqim_json_key_str(&w, "op", MQIM_STR("sync"));
    mqim_json_key_u64(&w, "after", c->st.last_seq);
    if (c->st.store_epoch != 0u) {
        /* the history last_seq belongs to (docs/protocol.md, "Store epochs") */
        mqim_json_key_u64(&w, "store_epoch", c->st.store_epoch);
    }
    mqim_json_object_end(&w);
    c->sync_pending = true;
    return mqim_client_publish_json(c, MQIM_TOPIC_OUT_CTL, &w);
}

/* {"status":S,"seqs":[...],"code":C,"device":D}: delivered (no code) or
 * refused (the message reached this device but was not shown). */
mqim_status_t mqim_client_publish_receipt(mqim_client_t *c, mqim_str_t status, const uint64_t *seqs, unsigned n,
                                          mqim_str_t code)
{
    mqim_json_writer_t w;
    mqim_json_init(&w, c->work.scratch, sizeof(c->work.scratch));
    mqim_json_object_begin(&w);
    mqim_json_key_str(&w, "status", status);
    mqim_json_array_begin(&w, "seqs");
    for (unsigned i = 0; i < n; i++) {
        mqim_json_value_u64(&w, seqs[i]);
    }
    mqim_json_array_end(&w);
    if (code.len > 0u) {
        mqim_json_key_str(&w, "code", code);
    }
    mqim_json_key_str(&w, "device", c->cfg.device);
    mqim_json_object_end(&w);
    return mqim_client_publish_json(c, MQIM_TOPIC_OUT_RECEIPT, &w);
}

static void flush_receipts(mqim_client_t *c)
{
    if (c->nreceipts > 0u && c->connected &&
        mqim_client_publish_receipt(c, MQIM_STR("delivered"), c->receipts, c->nreceipts, (mqim_str_t){ 0, 0 }) == MQIM_OK) {
        c->nreceipts = 0;
    }
}

/* ---- inbound ---- */

static bool outbox_forget(mqim_client_t *c, mqim_str_t id);

/* The echo of a message of mine is its confirmation: the gateway publishes
 * it only after the durable commit, with the id and my inbox seq (the
 * `sent` ack carried the same; it comes only to a sender that asked for it,
 * docs/protocol.md). The device whose outbox held the message drops it and
 * hears on_ack(MQIM_ACK_SENT), as it did for the `sent` ack; my other
 * devices just see the echo. `id` is a copy: env's strings live in the
 * arena, which a callback may reuse. */
static void confirm_echo(mqim_client_t *c, const mqim_envelope_t *env, const char *id, size_t id_len)
{
    mqim_ack_t ack;
    if (id_len == 0u || !env->has_seq || !mqim_str_eq(env->from, c->cfg.user) ||
        !outbox_forget(c, (mqim_str_t){ id, id_len })) {
        return;
    }
    memset(&ack, 0, sizeof(ack));
    ack.status = MQIM_ACK_SENT;
    ack.id = (mqim_str_t){ id, id_len };
    ack.seq = env->seq;
    if (c->cfg.cb.on_ack != 0) {
        c->cfg.cb.on_ack(c->cfg.cb.ctx, &ack);
    }
}

/* A tombstone: the gateway's retention removed the message at this seq and
 * keeps the seq so the stream has no hole ({"seq":N,"group":"team",
 * "ts":...,"type":"pruned"}). A message someone sent always has an id and a
 * sender, so a sender's own type "pruned" is never mistaken for one. */
static bool is_tombstone(const mqim_envelope_t *env)
{
    return env->has_seq && env->id.len == 0u && env->from.len == 0u && env->body.len == 0u &&
           mqim_str_eq_cstr(env->type, "pruned");
}

/* An inbound message, or the head of one too large for the receive buffer
 * (its seq is consumed like any other, so the stream moves on; the
 * application hears of it through on_oversized, and no delivered receipt
 * goes back, since the recipient never saw the text). A tombstone consumes
 * its seq in order too, and nothing else: no callback, no receipt. */
static void on_msg(mqim_client_t *c, const mqim_mqtt_publish_t *pub)
{
    mqim_envelope_t env;
    bool complete = true;
    bool tombstone;
    char id[MQIM_ID_MAX + 1];
    size_t id_len;
    mqim_status_t st;
    if (pub->truncated) {
        st = mqim_envelope_decode_head((const char *)pub->payload, pub->payload_len, &env, c->arena,
                                       sizeof(c->arena), NULL, &complete);
    } else {
        st = mqim_envelope_decode((const char *)pub->payload, pub->payload_len, &env, c->arena,
                                  sizeof(c->arena), NULL);
    }
    if (st != MQIM_OK || (pub->truncated && !env.has_seq)) {
        return; /* the gateway sent it; nothing a device can answer */
    }
    tombstone = !pub->truncated && is_tombstone(&env);
    if (env.has_seq && c->epoch_check) {
        /* Which history is this seq from? Not known until the gateway's
         * status or a sync answer says; the sync brings it again. */
        c->epoch_dropped = true;
        return;
    }
    id_len = env.id.len <= MQIM_ID_MAX ? env.id.len : 0u;
    if (id_len > 0u) {
        memcpy(id, env.id.ptr, id_len);
    }
    if (env.has_seq) {
        if (env.seq <= c->st.last_seq) {
            /* seen: a redelivery or a replay; still the confirmation of a
             * retried message of mine (the gateway echoes it again) */
            confirm_echo(c, &env, id, id_len);
            return;
        }
        if (env.seq != c->st.last_seq + 1u) {
            if (!c->sync_pending) {
                (void)request_sync(c); /* a gap: the sync brings it in order */
            }
            confirm_echo(c, &env, id, id_len); /* stored all the same */
            return;
        }
        c->st.last_seq = env.seq;
        (void)c->cfg.state->save(c->cfg.state_ctx, &c->st);
        if (!pub->truncated && !tombstone && !mqim_str_eq(env.from, c->cfg.user) &&
            c->nreceipts < MQIM_CLIENT_RECEIPT_BATCH) {
            c->receipts[c->nreceipts++] = env.seq;
        }
    }
    if (tombstone) {
        /* nothing to show: the seq is consumed, that is all */
    } else if (pub->truncated) {
        if (c->cfg.cb.on_oversized != 0) {
            c->cfg.cb.on_oversized(c->cfg.cb.ctx, &env, pub->payload_full_len);
        }
        if (env.has_seq && !mqim_str_eq(env.from, c->cfg.user)) {
            /* the text never reached the user */
            (void)mqim_client_publish_receipt(c, MQIM_STR("refused"), &env.seq, 1u, MQIM_STR("payload_too_large"));
        }
    } else if (!env.has_seq && env.has_upto && mqim_str_eq_cstr(env.type, "read")) {
        if (c->cfg.cb.on_read != 0) {
            c->cfg.cb.on_read(c->cfg.cb.ctx, &env); /* read on some device of mine */
        }
    } else if (c->cfg.cb.on_message != 0) {
        c->cfg.cb.on_message(c->cfg.cb.ctx, &env);
    }
    if (!tombstone) {
        confirm_echo(c, &env, id, id_len); /* after the echo itself, as the `sent` ack came */
    }
    if (c->nreceipts == MQIM_CLIENT_RECEIPT_BATCH) {
        flush_receipts(c);
    }
}

/* A string member unescaped into the arena; empty when absent, not a
 * string, or out of room (acks are small; the arena holds a whole payload). */
static mqim_str_t jstr(const mqim_json_value_t *o, const char *key, char *arena, size_t cap,
                       size_t *used)
{
    mqim_json_value_t v;
    mqim_str_t s = { 0, 0 };
    if (mqim_json_find(o, key, &v) == MQIM_OK && v.type == MQIM_JSON_STRING &&
        mqim_json_string(&v, arena + *used, cap - *used, &s) == MQIM_OK) {
        *used += s.len;
    }
    return s;
}

/* A seq-like number; anything not a whole number in 0..2^53 reads as 0. */
static uint64_t jnum(const mqim_json_value_t *o, const char *key)
{
    mqim_json_value_t v;
    int64_t n = 0;
    if (mqim_json_find(o, key, &v) != MQIM_OK || mqim_json_int(&v, &n) != MQIM_OK || n < 0) {
        n = 0;
    }
    return (uint64_t)n;
}

static bool jtrue(const mqim_json_value_t *o, const char *key)
{
    mqim_json_value_t v;
    return mqim_json_find(o, key, &v) == MQIM_OK && v.type == MQIM_JSON_TRUE;
}

/* A payload from the gateway as a JSON object, or false. */
static bool parse_payload(const mqim_mqtt_publish_t *pub, mqim_json_value_t *root)
{
    return mqim_json_parse((mqim_str_t){ (const char *)pub->payload, pub->payload_len },
                           MQIM_JSON_DEPTH_MAX, root) == MQIM_OK &&
           root->type == MQIM_JSON_OBJECT;
}

/* Remove the outbox entry of a message id (its echo or its `sent` ack
 * arrived); false when the outbox does not hold it. */
static bool outbox_forget(mqim_client_t *c, mqim_str_t id)
{
    uint32_t key = 0;
    size_t len = 0;
    mqim_status_t peeked;
    while ((peeked = c->cfg.outbox->peek(c->cfg.outbox_ctx, key, &key, c->work.record, sizeof(c->work.record),
                                         &len)) == MQIM_OK ||
           peeked == MQIM_BUFFER_TOO_SMALL) {
        mqim_str_t rid, topic, payload;
        if (peeked == MQIM_OK && record_parse(c->work.record, len, &rid, &topic, &payload) &&
            mqim_str_eq(rid, id)) {
            (void)c->cfg.outbox->remove(c->cfg.outbox_ctx, key);
            if (c->outbox_out > 0u) {
                /* the window moves on (an ack of a publish from before a
                 * replay restarted may open it one early: a soft bound) */
                c->outbox_out--;
            }
            return true;
        }
    }
    return false;
}

/* The ack statuses in mqim_ack_status_t order, one after the other ("" for
 * MQIM_ACK_OTHER, which is also what any other status reads as), and the
 * string members of an ack with where they go: tables, not a branch each. */
static const char ack_statuses[] = "sent\0delivered\0read\0rejected\0\0refused";
static const char ack_keys[] = "id\0by\0code\0reason\0re";
static const uint8_t ack_fields[] = { offsetof(mqim_ack_t, id), offsetof(mqim_ack_t, by), offsetof(mqim_ack_t, code),
                                      offsetof(mqim_ack_t, reason), offsetof(mqim_ack_t, re) };

static void on_ack(mqim_client_t *c, const mqim_mqtt_publish_t *pub)
{
    mqim_json_value_t o, ack_status_value;
    mqim_ack_t ack;
    size_t used = 0;
    unsigned i;
    const char *name;
    if (!parse_payload(pub, &o)) {
        return;
    }
    memset(&ack, 0, sizeof(ack));
    ack.status = MQIM_ACK_OTHER;
    if (mqim_json_find(&o, "status", &ack_status_value) == MQIM_OK) {
        for (i = 0, name = ack_statuses; i <= (unsigned)MQIM_ACK_REFUSED; i++, name += strlen(name) + 1u) {
            if (mqim_json_string_eq(&ack_status_value, name)) {
                ack.status = (mqim_ack_status_t)i;
                break;
            }
        }
    }
    for (i = 0, name = ack_keys; i < sizeof(ack_fields); i++, name += strlen(name) + 1u) {
        /* through void *: ack_fields holds offsetof() of mqim_str_t members, so
         * aligned (clang's -Wcast-align cannot know) */
        *(mqim_str_t *)(void *)((char *)&ack + ack_fields[i]) = jstr(&o, name, c->arena, sizeof(c->arena), &used);
    }
    ack.seq = jnum(&o, "seq");
    /* Sent or rejected: the gateway decided; the outbox entry has done its job. */
    if ((ack.status == MQIM_ACK_SENT || ack.status == MQIM_ACK_REJECTED) && ack.id.len > 0u) {
        (void)outbox_forget(c, ack.id);
    }
    if (c->cfg.cb.on_ack != 0) {
        c->cfg.cb.on_ack(c->cfg.cb.ctx, &ack);
    }
}

/* A store_epoch from the gateway (its status or a sync answer). Adopts the
 * first one seen; on a different one, takes last_seq back to where the two
 * histories part (a sync answer's epoch_seq), tells the application and
 * syncs again: true then. The same one confirms this connection's epoch. */
static bool store_epoch_seen(mqim_client_t *c, const mqim_json_value_t *o)
{
    mqim_json_value_t v;
    uint64_t epoch = jnum(o, "store_epoch");
    if (epoch == 0u) {
        c->epoch_check = false; /* a gateway from before store epochs */
        return false;
    }
    if (c->st.store_epoch != 0u && epoch != c->st.store_epoch) {
        if (mqim_json_find(o, "epoch_seq", &v) != MQIM_OK || v.type == MQIM_JSON_ABSENT) {
            /* the status: ask (the sync names the old epoch) */
            c->epoch_check = true;
            if (!c->sync_pending) {
                (void)request_sync(c);
            }
            return false;
        }
        if (jnum(o, "epoch_seq") < c->st.last_seq) {
            c->st.last_seq = jnum(o, "epoch_seq");
        }
        c->st.store_epoch = epoch;
        (void)c->cfg.state->save(c->cfg.state_ctx, &c->st);
        c->epoch_check = false;
        c->epoch_dropped = false;
        if (c->cfg.cb.on_store_epoch != 0) {
            c->cfg.cb.on_store_epoch(c->cfg.cb.ctx, epoch, c->st.last_seq);
        }
        (void)request_sync(c);
        return true;
    }
    if (c->st.store_epoch == 0u) {
        c->st.store_epoch = epoch; /* the first gateway this device hears of */
        (void)c->cfg.state->save(c->cfg.state_ctx, &c->st);
    }
    c->epoch_check = false;
    if (c->epoch_dropped) {
        c->epoch_dropped = false;
        if (!c->sync_pending) {
            (void)request_sync(c);
        }
    }
    return false;
}

static void on_res(mqim_client_t *c, const mqim_mqtt_publish_t *pub)
{
    mqim_json_value_t o, v;
    if (!parse_payload(pub, &o)) {
        return;
    }
    if (mqim_json_find(&o, "req", &v) == MQIM_OK && v.type != MQIM_JSON_ABSENT) {
        /* the application's own request */
        if (c->cfg.cb.on_response != 0) {
            c->cfg.cb.on_response(c->cfg.cb.ctx, (mqim_str_t){ (const char *)pub->payload, pub->payload_len });
        }
    } else if (mqim_json_find(&o, "op", &v) == MQIM_OK && mqim_json_string_eq(&v, "sync")) {
        uint64_t first = jnum(&o, "first_seq");
        c->sync_pending = false;
        if (store_epoch_seen(c, &o)) {
            return; /* a new epoch: sync again from where the histories part */
        }
        if (jtrue(&o, "pruned") && first > c->st.last_seq + 1u) {
            /* Retention removed what this device never saw: skip the hole. */
            c->st.last_seq = first - 1u;
            (void)c->cfg.state->save(c->cfg.state_ctx, &c->st);
            (void)request_sync(c);
        } else if (!jtrue(&o, "complete")) {
            (void)request_sync(c); /* next page */
        }
    }
}

static const char gw_status[] = "/gateway/status"; /* after the root */

static void s_on_message(void *ctx, const mqim_mqtt_publish_t *pub)
{
    mqim_client_t *c = ctx;
    size_t base = strlen(c->in_filter) - 1u; /* "{root}/u/{user}/in/" */
    size_t pbase = strlen(c->presence_filter) - 1u; /* "{root}/presence/" */
    mqim_str_t rest;
    if (pub->topic.len == c->cfg.root.len + sizeof(gw_status) - 1u &&
        memcmp(pub->topic.ptr + c->cfg.root.len, gw_status, sizeof(gw_status) - 1u) == 0) {
        /* The outbox goes out only while the gateway is online, from its
         * start each time it says so: after a restart it may have lost
         * publishes the broker already counted as delivered, and a broker
         * that restarted without persistence drops what arrives before the
         * gateway subscribed again; replaying in key order before anything
         * newer keeps each sender's order (the gateway dedupes by id). */
        mqim_json_value_t o, state;
        bool parsed = !pub->truncated && parse_payload(pub, &o);
        /* The status document (common/include/mqim/gateway_status.h) read
         * as JSON: "state" may stand anywhere in it. */
        c->gw_online = parsed && mqim_json_find(&o, "state", &state) == MQIM_OK &&
                       mqim_json_string_eq(&state, "online");
        c->replay_after = 0;
        c->outbox_out = 0;
        if (parsed) {
            (void)store_epoch_seen(c, &o);
        }
        return;
    }
    if (c->cfg.cb.on_presence != 0 && !pub->truncated && pub->topic.len > pbase &&
        memcmp(pub->topic.ptr, c->presence_filter, pbase) == 0) {
        c->cfg.cb.on_presence(c->cfg.cb.ctx, (mqim_str_t){ pub->topic.ptr + pbase, pub->topic.len - pbase },
                              (mqim_str_t){ (const char *)pub->payload, pub->payload_len });
        return;
    }
    if (pub->topic.len <= base || memcmp(pub->topic.ptr, c->in_filter, base) != 0) {
        return;
    }
    rest = (mqim_str_t){ pub->topic.ptr + base, pub->topic.len - base };
    if (mqim_str_eq_cstr(rest, "msg")) {
        on_msg(c, pub);
    } else if (pub->truncated) {
        /* an ack or a response cut short says nothing reliable */
    } else if (mqim_str_eq_cstr(rest, "ack")) {
        on_ack(c, pub);
    } else if (mqim_str_eq_cstr(rest, "res")) {
        on_res(c, pub);
    }
}

static void s_on_published(void *ctx, uint32_t key)
{
    (void)ctx;
    (void)key; /* the broker has it; the entry stays until the gateway's echo (or `sent` ack) */
}

/* {"state":"...","epoch":N} into buf; the length, or 0 when it does not fit. */
static size_t status_payload(char *buf, size_t cap, const char *state, uint32_t epoch)
{
    mqim_json_writer_t w;
    size_t len = 0;
    mqim_json_init(&w, buf, cap);
    mqim_json_object_begin(&w);
    mqim_json_key_str(&w, "state", mqim_str_from_cstr(state));
    mqim_json_key_u64(&w, "epoch", epoch);
    mqim_json_object_end(&w);
    return mqim_json_finish(&w, &len) == MQIM_OK ? len : 0u;
}

static void s_on_connected(void *ctx, bool session_present)
{
    mqim_client_t *c = ctx;
    char online[64];
    size_t n = status_payload(online, sizeof(online), "online", c->st.epoch);
    (void)session_present;
    c->connected = true;
    c->gw_online = false; /* until {root}/gateway/status says online (retained or live) */
    c->replay_after = 0; /* replay the whole outbox: the gateway dedupes by id */
    c->outbox_out = 0;
    /* Deliveries wait for the gateway's status (retained: it comes with the
     * subscription, before the broker takes the sync below) or the sync's
     * answer to say which store epoch this connection talks to. */
    c->epoch_check = c->st.store_epoch != 0u;
    c->epoch_dropped = false;
    (void)mqim_session_subscribe(&c->session, mqim_str_from_cstr(c->in_filter), 1);
    memcpy(c->work.scratch, c->cfg.root.ptr, c->cfg.root.len);
    memcpy(c->work.scratch + c->cfg.root.len, gw_status, sizeof(gw_status) - 1u);
    (void)mqim_session_subscribe(&c->session,
                                 (mqim_str_t){ c->work.scratch, c->cfg.root.len + sizeof(gw_status) - 1u }, 1);
    if (c->cfg.cb.on_presence != 0) {
        (void)mqim_session_subscribe(&c->session, mqim_str_from_cstr(c->presence_filter), 1);
    }
    (void)mqim_session_publish(&c->session, mqim_str_from_cstr(c->status_topic), (const uint8_t *)online,
                               n, 1, true, 0);
    (void)request_sync(c);
}

static void s_on_disconnected(void *ctx, mqim_status_t reason)
{
    (void)reason;
    ((mqim_client_t *)ctx)->connected = false;
}

static mqim_status_t s_get_publish(void *ctx, uint32_t key, mqim_mqtt_publish_t *pub)
{
    mqim_client_t *c = ctx;
    uint32_t found = 0;
    size_t len = 0;
    mqim_str_t id, topic, payload;
    if (key == 0u ||
        c->cfg.outbox->peek(c->cfg.outbox_ctx, key - 1u, &found, c->work.record, sizeof(c->work.record), &len) !=
            MQIM_OK ||
        found != key || !record_parse(c->work.record, len, &id, &topic, &payload)) {
        return MQIM_NOT_FOUND;
    }
    pub->topic = topic;
    pub->payload = (const uint8_t *)payload.ptr;
    pub->payload_len = payload.len;
    return MQIM_OK;
}

/* ---- API ---- */

mqim_status_t mqim_client_init(mqim_client_t *c, const mqim_client_config_t *cfg)
{
    mqim_session_config_t sc;
    mqim_status_t st;
    mqim_str_t t;
    size_t n;
    if (c == 0 || cfg == 0 || cfg->outbox == 0 || cfg->state == 0 ||
        mqim_name_check(MQIM_NAME_USER, cfg->user) != MQIM_OK ||
        mqim_name_check(MQIM_NAME_DEVICE, cfg->device) != MQIM_OK) {
        return MQIM_BAD_PARAMETER;
    }
    memset(c, 0, sizeof(*c));
    c->cfg = *cfg;
    st = cfg->state->load(cfg->state_ctx, &c->st);
    if (st != MQIM_OK) {
        return st;
    }
    /* A new epoch for this run, saved before it is used in a will. */
    c->st.epoch++;
    st = cfg->state->save(cfg->state_ctx, &c->st);
    if (st != MQIM_OK) {
        return st;
    }
    /* client id {user}.{device}: the names are checked, so it fits */
    memcpy(c->client_id, cfg->user.ptr, cfg->user.len);
    c->client_id[cfg->user.len] = '.';
    memcpy(c->client_id + cfg->user.len + 1u, cfg->device.ptr, cfg->device.len);
    n = cfg->user.len + 1u + cfg->device.len;
    st = user_topic(c, MQIM_TOPIC_OUT_STATUS, cfg->device, c->status_topic, sizeof(c->status_topic), &t);
    if (st != MQIM_OK) {
        return st;
    }
    st = user_topic(c, MQIM_TOPIC_IN_MSG, (mqim_str_t){ 0, 0 }, c->in_filter, sizeof(c->in_filter), &t);
    if (st != MQIM_OK) {
        return st;
    }
    memcpy(c->in_filter + t.len - 3u, "#", 2); /* ".../in/msg" -> ".../in/#" */
    if (cfg->root.len + 11u > sizeof(c->presence_filter)) {
        return MQIM_BAD_PARAMETER;
    }
    memcpy(c->presence_filter, cfg->root.ptr, cfg->root.len);
    memcpy(c->presence_filter + cfg->root.len, "/presence/#", 12); /* with the NUL */
    if (status_payload(c->will, sizeof(c->will), "offline", c->st.epoch) == 0u) {
        return MQIM_INTERNAL;
    }
    memset(&sc, 0, sizeof(sc));
    sc.connect.client_id = (mqim_str_t){ c->client_id, n };
    sc.connect.username = cfg->user;
    sc.connect.has_username = true;
    sc.connect.password = cfg->password;
    sc.connect.has_password = cfg->password.len > 0u;
    sc.connect.keep_alive_s = MQIM_CFG_KEEPALIVE_S;
    sc.connect.clean_session = true; /* the outbox and sync recover everything */
    sc.connect.has_will = true;
    sc.connect.will_topic = mqim_str_from_cstr(c->status_topic);
    sc.connect.will_payload = mqim_str_from_cstr(c->will);
    sc.connect.will_qos = 1;
    sc.connect.will_retain = true;
    sc.transport = cfg->transport;
    sc.transport_ctx = cfg->transport_ctx;
    sc.clock = cfg->clock;
    sc.clock_ctx = cfg->clock_ctx;
    sc.entropy = cfg->entropy;
    sc.entropy_ctx = cfg->entropy_ctx;
    sc.cb = (mqim_session_callbacks_t){ s_on_message, s_on_published, s_on_connected,
                                        s_on_disconnected, s_get_publish, c };
    sc.sleep = cfg->sleep;
    sc.sleep_ctx = cfg->sleep_ctx;
    return mqim_session_init(&c->session, &sc);
}

mqim_status_t mqim_client_start(mqim_client_t *c)
{
    return mqim_session_start(&c->session);
}

void mqim_client_stop(mqim_client_t *c)
{
    flush_receipts(c);
    if (c->connected) {
        /* A clean DISCONNECT discards the will: say offline ourselves (the
         * broker handles it before the DISCONNECT that follows). */
        char offline[64];
        size_t n = status_payload(offline, sizeof(offline), "offline", c->st.epoch);
        (void)mqim_session_publish(&c->session, mqim_str_from_cstr(c->status_topic),
                                   (const uint8_t *)offline, n, 1, true, 0);
    }
    mqim_session_stop(&c->session);
    c->connected = false;
}

uint32_t mqim_client_now(const mqim_client_t *c)
{
    return c->cfg.clock(c->cfg.clock_ctx);
}

bool mqim_client_connected(const mqim_client_t *c)
{
    return c->connected;
}

uint64_t mqim_client_last_seq(const mqim_client_t *c)
{
    return c->st.last_seq;
}

mqim_link_state_t mqim_client_link(const mqim_client_t *c, mqim_status_t *reason)
{
    if (reason != 0) {
        *reason = c->session.last_error;
    }
    /* the session's states in the same order: stopped, backing off
     * (disconnected), connecting, connected */
    return (mqim_link_state_t)mqim_session_state(&c->session);
}

uint32_t mqim_client_next_deadline(const mqim_client_t *c)
{
    return mqim_session_next_deadline(&c->session);
}

/* on_link for a new state, or another failed attempt in the same state. */
static void report_link(mqim_client_t *c)
{
    mqim_status_t why = MQIM_OK;
    mqim_link_state_t now_state = mqim_client_link(c, &why);
    if ((uint8_t)now_state == c->link_said && c->session.failures == c->failures_said) {
        return;
    }
    c->link_said = (uint8_t)now_state;
    c->failures_said = c->session.failures;
    if (c->cfg.cb.on_link != 0) {
        c->cfg.cb.on_link(c->cfg.cb.ctx, now_state,
                          now_state == MQIM_LINK_DISCONNECTED ? why : MQIM_OK);
    }
}

/* Publish outbox entries not yet sent on this connection, in key order. */
static void replay_outbox(mqim_client_t *c)
{
    uint32_t key = 0;
    size_t len = 0;
    mqim_status_t peeked;
    while (c->connected && c->gw_online && c->outbox_out < MQIM_CFG_OUTBOX_WINDOW &&
           ((peeked = c->cfg.outbox->peek(c->cfg.outbox_ctx, c->replay_after, &key, c->work.record,
                                          sizeof(c->work.record), &len)) == MQIM_OK ||
            peeked == MQIM_BUFFER_TOO_SMALL)) {
        mqim_str_t id, topic, payload;
        mqim_status_t st = MQIM_OK;
        if (peeked == MQIM_BUFFER_TOO_SMALL) {
            /* Written by a build with larger buffers (the outbox outlived a
             * firmware update): this build cannot send it, a larger one
             * can, so it stays; the entries after it go on. */
        } else if (record_parse(c->work.record, len, &id, &topic, &payload)) {
            st = mqim_session_publish(&c->session, topic, (const uint8_t *)payload.ptr, payload.len, 1,
                                      false, key);
            c->outbox_out += st == MQIM_OK;
        } else {
            /* A record this code never wrote (storage corruption): it can
             * never be sent, and keeping it would hold its space forever. */
            (void)c->cfg.outbox->remove(c->cfg.outbox_ctx, key);
        }
        if (st == MQIM_INFLIGHT_FULL) {
            return; /* back-pressure: the rest goes on a later poll */
        }
        c->replay_after = key;
    }
}

mqim_status_t mqim_client_poll(mqim_client_t *c, uint32_t timeout_ms)
{
    mqim_status_t st;
    if (c->connected) {
        replay_outbox(c); /* what was queued since the last poll leaves before the wait */
    }
    st = mqim_session_poll(&c->session, timeout_ms);
    if (c->connected) {
        replay_outbox(c);
        flush_receipts(c);
    }
    report_link(c);
    return st;
}

static const char hex[] = "0123456789abcdef";

mqim_status_t mqim_client_send(mqim_client_t *c, mqim_str_t peer, mqim_str_t text, uint32_t *key)
{
    return mqim_client_send_to(c, MQIM_TOPIC_OUT_DM, peer, text, NULL, key);
}

mqim_status_t mqim_client_send_group(mqim_client_t *c, mqim_str_t group, mqim_str_t text,
                                     uint32_t *key)
{
    return mqim_client_send_to(c, MQIM_TOPIC_OUT_GROUP, group, text, NULL, key);
}

/* Encode env and queue it for {root}/u/{me}/out/{dm|group}/{peer}. */
mqim_status_t mqim_client_queue_envelope(mqim_client_t *c, mqim_topic_kind_t kind, mqim_str_t peer,
                                         const mqim_envelope_t *env, uint32_t *key)
{
    char topic[MQIM_TOPIC_MAX + 1];
    mqim_str_t t = { 0, 0 };
    uint8_t *rec = c->work.record;
    size_t len = 0, head;
    /* The envelope is encoded in place, after the entry's head (record
     * layout above), so it needs no buffer of its own; the topic comes
     * first for the head's size, its error second as before. */
    mqim_status_t topic_st = user_topic(c, kind, peer, topic, sizeof(topic), &t);
    mqim_status_t st;
    if (topic_st != MQIM_OK || t.len > 255u) {
        t.len = 0; /* refused below; the encoding still says its own error first */
    }
    head = 2u + (env->id.len <= 255u ? env->id.len : 0u) + t.len;
    st = mqim_envelope_encode(env, (char *)rec + head, sizeof(c->work.record) - head, &len);
    if (st == MQIM_BUFFER_TOO_SMALL) {
        return MQIM_PAYLOAD_TOO_LARGE;
    }
    if (st == MQIM_OK) {
        st = topic_st;
    }
    if (st == MQIM_OK) {
        /* Refuse now what could never be sent: an outbox entry larger than
         * the transmit buffer would block the outbox forever. */
        mqim_mqtt_publish_t probe;
        size_t need = 0;
        memset(&probe, 0, sizeof(probe));
        probe.topic = t;
        probe.payload = rec + head;
        probe.payload_len = len;
        probe.qos = 1;
        probe.packet_id = 1;
        if (mqim_mqtt_encode_publish(&probe, NULL, 0, &need) != MQIM_BUFFER_TOO_SMALL ||
            need > MQIM_CFG_TX_BUFFER_SIZE || t.len == 0u || env->id.len > 255u) {
            st = MQIM_PAYLOAD_TOO_LARGE;
        }
    }
    if (st != MQIM_OK) {
        return st;
    }
    rec[0] = (uint8_t)env->id.len;
    memcpy(rec + 1, env->id.ptr, env->id.len);
    rec[1 + env->id.len] = (uint8_t)t.len;
    memcpy(rec + 2 + env->id.len, t.ptr, t.len);
    return c->cfg.outbox->put(c->cfg.outbox_ctx, rec, head + len, key);
}

/* file_id: NULL for a text message; a checked, non-empty id for a file message. */
mqim_status_t mqim_client_send_to(mqim_client_t *c, mqim_topic_kind_t kind, mqim_str_t peer, mqim_str_t text,
                                  const mqim_str_t *file_id, uint32_t *key)
{
    uint8_t rnd[16];
    char id[32];
    mqim_envelope_t env;
    mqim_status_t st = mqim_name_check(kind == MQIM_TOPIC_OUT_GROUP ? MQIM_NAME_GROUP : MQIM_NAME_USER, peer);
    if (st != MQIM_OK) {
        return st;
    }
    if (text.len == 0u && file_id == NULL) {
        return MQIM_BODY_EMPTY;
    }
    if (text.len > MQIM_BODY_MAX) {
        return MQIM_BODY_TOO_LARGE;
    }
    if (!mqim_utf8_valid(text.ptr, text.len)) {
        return MQIM_UTF8_INVALID;
    }
    if (c->cfg.entropy(c->cfg.entropy_ctx, rnd, sizeof(rnd)) != 0) {
        return MQIM_INTERNAL;
    }
    for (unsigned i = 0; i < 16u; i++) {
        id[2u * i] = hex[rnd[i] >> 4];
        id[2u * i + 1u] = hex[rnd[i] & 15u];
    }
    memset(&env, 0, sizeof(env));
    env.id = (mqim_str_t){ id, sizeof(id) };
    if (kind == MQIM_TOPIC_OUT_GROUP) {
        env.group = peer;
    } else {
        env.to = peer;
    }
    env.type = MQIM_STR("text");
    env.body = text;
    env.device = c->cfg.device; /* so the user's other devices can say where it came from */
    if (file_id != NULL) {
        env.type = MQIM_STR("file");
        env.has_file = true;
        env.file.id = *file_id; /* the gateway fills in the rest */
        if (text.len == 0u) {
            env.body = (mqim_str_t){ 0, 0 };
        }
    }
    return mqim_client_queue_envelope(c, kind, peer, &env, key);
}
