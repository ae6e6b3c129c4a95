/* The "chats" control op (docs/protocol.md): a user's conversations, most
 * recent first, each with its last message, its read cursor, the number of
 * messages received after it (unread), and the peer's presence. */
#include <stdlib.h>
#include <string.h>

#include "router_internal.h"

#define CHATS_MAX 200

typedef struct chat_item {
    char name[MQIM_GROUP_NAME_MAX + 2]; /* peer, or "#group" */
    size_t len;
    uint64_t last_seq, read_upto, unread;
    uint8_t presence; /* the peer's most present device; groups: none */
} chat_item_t;

typedef struct ch_work {
    req_t *q;
    chat_item_t items[CHATS_MAX];
    size_t n;
} ch_work_t;

/* Keep the CHATS_MAX most recent: replace the oldest when full. */
static int chat_visit(void *vctx, mqim_str_t chat, uint64_t last_seq)
{
    ch_work_t *w = vctx;
    size_t slot = w->n;
    if (chat.len > sizeof(w->items[0].name)) {
        return 0;
    }
    if (w->n == CHATS_MAX) {
        slot = 0;
        for (size_t i = 1; i < w->n; i++) {
            if (w->items[i].last_seq < w->items[slot].last_seq) {
                slot = i;
            }
        }
        if (w->items[slot].last_seq >= last_seq) {
            return 0;
        }
    } else {
        w->n++;
    }
    memcpy(w->items[slot].name, chat.ptr, chat.len);
    w->items[slot].len = chat.len;
    w->items[slot].last_seq = last_seq;
    return 0;
}

typedef struct unread_ctx {
    uint64_t count;
} unread_ctx_t;

static int unread_visit(void *vctx, const mqim_inbox_entry_t *e)
{
    /* A tombstone (retention removed the message) is nothing to read; the
     * chat index never holds one, this only keeps it so. */
    if (e->dir == MQIM_INBOX_RECEIVED && !e->pruned) {
        ((unread_ctx_t *)vctx)->count++;
    }
    return 0;
}

static int presence_visit(void *vctx, mqim_str_t device, const mqim_device_rec_t *d)
{
    uint8_t *best = vctx;
    (void)device;
    if (d->state > *best) {
        *best = d->state;
    }
    return 0;
}

static int by_recency(const void *a, const void *b)
{
    const chat_item_t *x = a, *y = b;
    return x->last_seq < y->last_seq ? 1 : x->last_seq > y->last_seq ? -1 : 0;
}

static void body_chats(mqim_json_writer_t *w, const ctl_doc_t *d)
{
    static const char *const states[] = { "offline", "sleeping", "away", "online" };
    const ch_work_t *cw = d->ctx;
    req_t *q = cw->q;
    mqim_json_array_begin(w, "chats");
    for (size_t i = 0; i < cw->n; i++) {
        const chat_item_t *c = &cw->items[i];
        bool group = c->name[0] == '#';
        mqim_inbox_entry_t e;
        mqim_msg_rec_t m;
        mqim_json_object_begin(w);
        if (group) {
            mqim_json_key_str(w, "group", (mqim_str_t){ c->name + 1, c->len - 1u });
        } else {
            mqim_json_key_str(w, "chat", (mqim_str_t){ c->name, c->len });
            mqim_json_key_str(w, "presence", mqim_str_from_cstr(states[c->presence <= 3u ? c->presence : 0u]));
        }
        mqim_json_key_u64(w, "unread", c->unread);
        mqim_json_key_u64(w, "read_upto", c->read_upto);
        mqim_json_key_u64(w, "last_seq", c->last_seq);
        if (mqim_store_inbox_get(&q->txn, q->t.user, c->last_seq, &e) == MQIM_OK &&
            mqim_store_msg_get(&q->txn, e.mid, &m) == MQIM_OK) {
            mqim_envelope_t env;
            mqim_str_t json;
            rt_envelope_from_rec(&m, c->last_seq, &env);
            if (rt_encode_envelope(&q->r->env, &env, &json) == MQIM_OK) {
                mqim_json_key_raw(w, "last", json);
            }
        }
        mqim_json_object_end(w);
    }
    mqim_json_array_end(w);
}

static mqim_status_t ctl_chats(req_t *q, const cJSON *root, ctl_doc_t *d, void *work)
{
    ch_work_t *w = work;
    mqim_status_t st;
    (void)root;
    w->q = q;
    w->n = 0;
    st = mqim_store_chat_each(&q->txn, q->t.user, chat_visit, w);
    for (size_t i = 0; st == MQIM_OK && i < w->n; i++) {
        chat_item_t *c = &w->items[i];
        mqim_str_t chat = { c->name, c->len };
        unread_ctx_t u = { 0 };
        c->read_upto = mqim_store_cursor_get(&q->txn, q->t.user, chat);
        st = mqim_store_chat_scan(&q->txn, q->t.user, chat, c->read_upto, 0, unread_visit, &u);
        c->unread = u.count;
        c->presence = 0;
        if (st == MQIM_OK && c->name[0] != '#') {
            st = mqim_store_device_each(&q->txn, chat, presence_visit, &c->presence);
        }
    }
    qsort(w->items, w->n, sizeof(w->items[0]), by_recency);
    if (st == MQIM_OK) {
        d->body = body_chats;
        d->ctx = w;
    }
    return st;
}

static const rt_ctl_op_t ch_ops[] = {
    { "chats", ctl_chats, sizeof(ch_work_t) },
};

const rt_feature_t ch_feature = { RT_FEATURE_CHATS, ch_ops, sizeof(ch_ops) / sizeof(ch_ops[0]), 0, false };
