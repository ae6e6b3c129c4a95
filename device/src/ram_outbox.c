/* RAM ring outbox (outbox.h). Layout of an entry at an 8-byte aligned offset:
 *   u32 key (0 = padding to the end of the buffer), u16 len, u8 live, u8 pad,
 *   then len bytes of record, rounded up to 8 (so the space left at the end
 *   of the buffer is always 0 or room for a padding marker).
 * Entries never wrap: when the end has no room, a padding marker sends the
 * next entry to offset 0. */
#include <stdbool.h>

#include "mqim/outbox.h"

#define HDR 8u

typedef struct entry_hdr {
    uint32_t key;
    uint16_t len;
    uint8_t live;
    uint8_t pad;
} entry_hdr_t;

static size_t round8(size_t n)
{
    return (n + 7u) & ~(size_t)7u;
}

static void hdr_read(const mqim_ram_outbox_t *ob, size_t off, entry_hdr_t *h)
{
    const uint8_t *p = ob->buf + off;
    h->key = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
    h->len = (uint16_t)(p[4] | (p[5] << 8));
    h->live = p[6];
    h->pad = p[7];
}

static void hdr_write(mqim_ram_outbox_t *ob, size_t off, const entry_hdr_t *h)
{
    uint8_t *p = ob->buf + off;
    p[0] = (uint8_t)h->key;
    p[1] = (uint8_t)(h->key >> 8);
    p[2] = (uint8_t)(h->key >> 16);
    p[3] = (uint8_t)(h->key >> 24);
    p[4] = (uint8_t)h->len;
    p[5] = (uint8_t)(h->len >> 8);
    p[6] = h->live;
    p[7] = 0u;
}

/* Size an entry occupies at off: a padding marker takes the rest of the buffer. */
static size_t entry_size(const mqim_ram_outbox_t *ob, size_t off, const entry_hdr_t *h)
{
    return h->key == 0u ? ob->cap - off : HDR + round8(h->len);
}

mqim_status_t mqim_ram_outbox_init(mqim_ram_outbox_t *ob, uint8_t *buf, size_t cap)
{
    if (ob == 0 || buf == 0 || cap < 16u) {
        return MQIM_BAD_PARAMETER;
    }
    ob->buf = buf;
    ob->cap = cap & ~(size_t)7u;
    ob->head = 0;
    ob->tail = 0;
    ob->used = 0;
    ob->next_key = 1;
    ob->count = 0;
    return MQIM_OK;
}

/* Drop removed entries and padding from the head. */
static void reclaim(mqim_ram_outbox_t *ob)
{
    while (ob->used > 0u) {
        entry_hdr_t h;
        size_t size;
        hdr_read(ob, ob->head, &h);
        if (h.key != 0u && h.live != 0u) {
            break;
        }
        size = entry_size(ob, ob->head, &h);
        ob->used -= size;
        ob->head = (ob->head + size) % ob->cap;
    }
    if (ob->used == 0u) {
        ob->head = 0; /* empty: start over, no padding needed */
        ob->tail = 0;
    }
}

mqim_status_t mqim_ram_outbox_put(void *ctx, const uint8_t *rec, size_t len, uint32_t *key)
{
    mqim_ram_outbox_t *ob = ctx;
    size_t need, free_end;
    entry_hdr_t h;
    if (ob == 0 || key == 0 || (rec == 0 && len > 0u) || len > 0xffffu) {
        return MQIM_BAD_PARAMETER;
    }
    need = HDR + round8(len);
    if (need > ob->cap) {
        return MQIM_OUTBOX_FULL;
    }
    /* Free space after the tail: to the end of the buffer, or to the head
     * when the used region already wraps. */
    if (ob->used > 0u && ob->tail <= ob->head) {
        free_end = ob->head - ob->tail;
    } else {
        free_end = ob->cap - ob->tail;
    }
    if (need > free_end) {
        size_t pad = ob->cap - ob->tail;
        /* Wrap: only possible when the region does not wrap yet and the
         * head leaves room at the start. */
        if (ob->used > 0u && ob->tail <= ob->head) {
            return MQIM_OUTBOX_FULL;
        }
        if (ob->used > 0u && need > ob->head) {
            return MQIM_OUTBOX_FULL;
        }
        if (pad > 0u) {
            entry_hdr_t p = { 0u, 0u, 0u, 0u };
            hdr_write(ob, ob->tail, &p); /* pad is a multiple of 8: room for the marker */
        }
        ob->used += pad;
        ob->tail = 0;
    }
    h.key = ob->next_key;
    h.len = (uint16_t)len;
    h.live = 1u;
    h.pad = 0u;
    hdr_write(ob, ob->tail, &h);
    for (size_t i = 0; i < len; i++) {
        ob->buf[ob->tail + HDR + i] = rec[i];
    }
    ob->tail = (ob->tail + need) % ob->cap;
    ob->used += need;
    ob->count++;
    *key = ob->next_key;
    ob->next_key = ob->next_key == UINT32_MAX ? 1u : ob->next_key + 1u;
    return MQIM_OK;
}

/* Walk live entries from the head in order; calls visit until it returns true. */
typedef bool (*visit_fn)(mqim_ram_outbox_t *ob, size_t off, const entry_hdr_t *h, void *arg);

static bool walk(mqim_ram_outbox_t *ob, visit_fn fn, void *arg)
{
    size_t off = ob->head, seen = 0;
    while (seen < ob->used) {
        entry_hdr_t h;
        size_t size;
        hdr_read(ob, off, &h);
        size = entry_size(ob, off, &h);
        if (h.key != 0u && h.live != 0u && fn(ob, off, &h, arg)) {
            return true;
        }
        seen += size;
        off = (off + size) % ob->cap;
    }
    return false;
}

typedef struct peek_arg {
    uint32_t after;
    size_t off;
    entry_hdr_t h;
} peek_arg_t;

/* Keys increase from head to tail (wrap-around of the u32 counter aside),
 * so the first live key above `after` is the next in order. */
static bool find_after(mqim_ram_outbox_t *ob, size_t off, const entry_hdr_t *h, void *arg)
{
    peek_arg_t *a = arg;
    (void)ob;
    if (h->key > a->after) {
        a->off = off;
        a->h = *h;
        return true;
    }
    return false;
}

mqim_status_t mqim_ram_outbox_peek(void *ctx, uint32_t after, uint32_t *key, uint8_t *buf,
                                   size_t cap, size_t *len)
{
    mqim_ram_outbox_t *ob = ctx;
    peek_arg_t a = { after, 0, { 0u, 0u, 0u, 0u } };
    if (ob == 0 || key == 0 || len == 0 || (buf == 0 && cap > 0u)) {
        return MQIM_BAD_PARAMETER;
    }
    if (!walk(ob, find_after, &a)) {
        return MQIM_NOT_FOUND;
    }
    *key = a.h.key;
    *len = a.h.len;
    if (a.h.len > cap) {
        return MQIM_BUFFER_TOO_SMALL;
    }
    for (size_t i = 0; i < a.h.len; i++) {
        buf[i] = ob->buf[a.off + HDR + i];
    }
    return MQIM_OK;
}

typedef struct remove_arg {
    uint32_t key;
    size_t off;
} remove_arg_t;

static bool match_key(mqim_ram_outbox_t *ob, size_t off, const entry_hdr_t *h, void *arg)
{
    remove_arg_t *a = arg;
    (void)ob;
    if (h->key == a->key) {
        a->off = off;
        return true;
    }
    return false;
}

mqim_status_t mqim_ram_outbox_remove(void *ctx, uint32_t key)
{
    mqim_ram_outbox_t *ob = ctx;
    remove_arg_t a = { key, 0 };
    entry_hdr_t h;
    if (ob == 0 || key == 0u) {
        return MQIM_BAD_PARAMETER;
    }
    if (!walk(ob, match_key, &a)) {
        return MQIM_NOT_FOUND;
    }
    hdr_read(ob, a.off, &h);
    h.live = 0u;
    hdr_write(ob, a.off, &h);
    ob->count--;
    reclaim(ob);
    return MQIM_OK;
}

const mqim_outbox_ops_t mqim_ram_outbox_ops = {
    mqim_ram_outbox_put,
    mqim_ram_outbox_peek,
    mqim_ram_outbox_remove,
};
