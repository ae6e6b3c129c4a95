/* The flash outbox (flash_outbox.h): a log of entries over NOR pages.
 *
 * Page:  magic u32 | seq u32 | gc_of u32 | next_key u32 | crc32 u32, padded
 *        to a unit (PHDR); the done unit (FIRST - U .. FIRST); entries.
 * Entry: key u32 | len u16 | 0 u16 | crc32 u32 | record, padded to a unit
 *        (the body); the commit unit; the delete unit.
 * All integers little-endian. Every write goes to erased units only, and
 * each unit is programmed once: the commit, done and delete markers are
 * units of their own, set when any bit is 0.
 *
 * What a power cut can leave, and what open does with it:
 *  - a torn entry (CRC wrong or no commit): the page's scan stops there;
 *    the page takes no more entries (its end is not blank);
 *  - a torn page header: the page is garbage (free; erased before reuse);
 *  - a collection without its done unit: the new page is garbage, the old
 *    page still holds everything;
 *  - a half-erased page: it was collected (erased only after the done unit
 *    of its successor), so its seq is <= a done page's gc_of and it is
 *    ignored; or it was garbage already.
 * Entries are found by scanning; nothing but the page table is kept in
 * RAM. Between open and the next power cut, RAM and flash agree: entries
 * in [FIRST, end) of a live page are all valid (checked at open or written
 * by this code), so peek and remove read only headers. */
#include <stdbool.h>

#include "mqim/flash_outbox.h"

#define PAGE_MAGIC 0x4f46514du /* "MQFO" */
#define GC_NONE 0xffffffffu
#define PHDR_BYTES 20u
#define EHDR_BYTES 12u
#define CHUNK 64u /* staging buffer on the stack: a multiple of every unit */

/* ---- small helpers ---- */

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* CRC-32 (IEEE, reflected), a nibble at a time: a 64-byte table. */
static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t len)
{
    static const uint32_t t[16] = {
        0x00000000u, 0x1db71064u, 0x3b6e20c8u, 0x26d930acu, 0x76dc4190u, 0x6b6b51f4u,
        0x4db26158u, 0x5005713cu, 0xedb88320u, 0xf00f9344u, 0xd6d6a3e8u, 0xcb61b38cu,
        0x9b64c2b0u, 0x86d3d2d4u, 0xa00ae278u, 0xbdbdf21cu,
    };
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ t[crc & 15u];
        crc = (crc >> 4) ^ t[crc & 15u];
    }
    return ~crc;
}

static bool blank(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] != 0xffu) {
            return false;
        }
    }
    return true;
}

static uint32_t unit(const mqim_flash_outbox_t *ob)
{
    return ob->flash.program_unit;
}

static uint32_t round_unit(const mqim_flash_outbox_t *ob, uint32_t n)
{
    return (n + unit(ob) - 1u) & ~(unit(ob) - 1u);
}

/* Offset of the first entry of a page (after the header and the done unit). */
static uint32_t first_off(const mqim_flash_outbox_t *ob)
{
    return round_unit(ob, PHDR_BYTES) + unit(ob);
}

static uint32_t body_size(const mqim_flash_outbox_t *ob, uint32_t len)
{
    return round_unit(ob, EHDR_BYTES + len);
}

/* Body, commit unit, delete unit. */
static uint32_t entry_size(const mqim_flash_outbox_t *ob, uint32_t len)
{
    return body_size(ob, len) + 2u * unit(ob);
}

static mqim_status_t rd(const mqim_flash_outbox_t *ob, uint32_t page, uint32_t off, uint8_t *buf, size_t len)
{
    return ob->flash.ops->read(ob->flash.ctx, page * ob->flash.page_size + off, buf, len);
}

static mqim_status_t prog(const mqim_flash_outbox_t *ob, uint32_t page, uint32_t off, const uint8_t *buf,
                          size_t len)
{
    return ob->flash.ops->program(ob->flash.ctx, page * ob->flash.page_size + off, buf, len);
}

/* Is [off, off + len) of a page all 0xFF? */
static mqim_status_t region_blank(const mqim_flash_outbox_t *ob, uint32_t page, uint32_t off, uint32_t len,
                                  bool *is_blank)
{
    uint8_t buf[CHUNK];
    *is_blank = true;
    while (len > 0u) {
        uint32_t n = len < CHUNK ? len : CHUNK;
        mqim_status_t st = rd(ob, page, off, buf, n);
        if (st != MQIM_OK) {
            return st;
        }
        if (!blank(buf, n)) {
            *is_blank = false;
            return MQIM_OK;
        }
        off += n;
        len -= n;
    }
    return MQIM_OK;
}

/* A marker unit is set when any of its bits was programmed. */
static mqim_status_t marker_set(const mqim_flash_outbox_t *ob, uint32_t page, uint32_t off, bool *set)
{
    bool b = true;
    mqim_status_t st = region_blank(ob, page, off, unit(ob), &b);
    *set = !b;
    return st;
}

static mqim_status_t marker_program(const mqim_flash_outbox_t *ob, uint32_t page, uint32_t off)
{
    static const uint8_t zeros[16] = { 0 };
    return prog(ob, page, off, zeros, unit(ob));
}

/* ---- entries ---- */

typedef struct entry {
    uint32_t key;
    uint32_t len;
    uint32_t size; /* bytes it occupies */
    bool removed;
} entry_t;

typedef enum scan_result { ENTRY_OK, ENTRY_END, ENTRY_TORN } scan_result_t;

/* Read the entry at off. With verify (at open) the CRC and the commit unit
 * are checked; without, the entry is known valid. ENTRY_END: blank header. */
static mqim_status_t entry_read(const mqim_flash_outbox_t *ob, uint32_t page, uint32_t off, bool verify,
                                entry_t *e, scan_result_t *res)
{
    uint8_t h[EHDR_BYTES];
    uint32_t body;
    bool set = false;
    mqim_status_t st;
    *res = ENTRY_TORN;
    if (off + entry_size(ob, 0) > ob->flash.page_size) {
        *res = ENTRY_END; /* no room for even an empty entry: the page is full */
        return MQIM_OK;
    }
    st = rd(ob, page, off, h, sizeof(h));
    if (st != MQIM_OK) {
        return st;
    }
    if (verify && blank(h, sizeof(h))) {
        *res = ENTRY_END;
        return MQIM_OK;
    }
    e->key = get_u32(h);
    e->len = (uint32_t)h[4] | ((uint32_t)h[5] << 8);
    e->size = entry_size(ob, e->len);
    body = body_size(ob, e->len);
    if (verify) {
        uint8_t buf[CHUNK];
        uint32_t crc = crc32_update(0, h, 8), done = 0;
        if (e->key == 0u || h[6] != 0u || h[7] != 0u || e->size > ob->flash.page_size - off) {
            return MQIM_OK; /* torn */
        }
        while (done < e->len) {
            uint32_t n = e->len - done < CHUNK ? e->len - done : CHUNK;
            st = rd(ob, page, off + EHDR_BYTES + done, buf, n);
            if (st != MQIM_OK) {
                return st;
            }
            crc = crc32_update(crc, buf, n);
            done += n;
        }
        if (crc != get_u32(h + 8)) {
            return MQIM_OK;
        }
        st = marker_set(ob, page, off + body, &set);
        if (st != MQIM_OK || !set) {
            return st; /* not committed: torn */
        }
    }
    st = marker_set(ob, page, off + body + unit(ob), &e->removed);
    if (st == MQIM_OK) {
        *res = ENTRY_OK;
    }
    return st;
}

/* The top bit of a page's end marks the page closed: a write was cut
 * after its last valid entry, so it takes no more entries. */
#define END_CLOSED 0x80000000u

static uint32_t page_end(const mqim_flash_outbox_t *ob, uint32_t p)
{
    return ob->pages[p].end & ~END_CLOSED;
}

/* Visit every entry of the live pages; fn returns true to stop. */
typedef bool (*visit_fn)(mqim_flash_outbox_t *ob, uint32_t page, uint32_t off, const entry_t *e, void *arg);

static mqim_status_t walk(mqim_flash_outbox_t *ob, visit_fn fn, void *arg, bool *stopped)
{
    *stopped = false;
    for (uint32_t p = 0; p < ob->flash.page_count; p++) {
        uint32_t off = first_off(ob);
        if (ob->pages[p].seq == 0u) {
            continue;
        }
        while (off < page_end(ob, p)) {
            entry_t e;
            scan_result_t res;
            mqim_status_t st = entry_read(ob, p, off, false, &e, &res);
            if (st != MQIM_OK) {
                return st;
            }
            if (res != ENTRY_OK) {
                break;
            }
            if (fn(ob, p, off, &e, arg)) {
                *stopped = true;
                return MQIM_OK;
            }
            off += e.size;
        }
    }
    return MQIM_OK;
}

/* ---- open ---- */

typedef struct page_hdr {
    uint32_t seq;
    uint32_t gc_of;
    uint32_t next_key;
} page_hdr_t;

static mqim_status_t page_hdr_read(const mqim_flash_outbox_t *ob, uint32_t page, page_hdr_t *ph, bool *valid)
{
    uint8_t h[PHDR_BYTES];
    mqim_status_t st = rd(ob, page, 0, h, sizeof(h));
    *valid = false;
    if (st != MQIM_OK) {
        return st;
    }
    ph->seq = get_u32(h + 4);
    ph->gc_of = get_u32(h + 8);
    ph->next_key = get_u32(h + 12);
    *valid = get_u32(h) == PAGE_MAGIC && crc32_update(0, h, 16) == get_u32(h + 16) && ph->seq != 0u &&
             ph->seq != 0xffffffffu && (ph->gc_of == GC_NONE || ph->gc_of < ph->seq);
    return MQIM_OK;
}

/* Scan a live page's entries at open: its end, live count, highest key. */
static mqim_status_t page_scan(mqim_flash_outbox_t *ob, uint32_t p, uint32_t *max_key, bool *clean_end)
{
    uint32_t off = first_off(ob);
    for (;;) {
        entry_t e;
        scan_result_t res;
        mqim_status_t st = entry_read(ob, p, off, true, &e, &res);
        if (st != MQIM_OK) {
            return st;
        }
        if (res != ENTRY_OK) {
            *clean_end = res == ENTRY_END;
            break;
        }
        if (e.key > *max_key) {
            *max_key = e.key;
        }
        ob->count += e.removed ? 0u : 1u;
        off += e.size;
    }
    ob->pages[p].end = off;
    return MQIM_OK;
}

mqim_status_t mqim_flash_outbox_open(mqim_flash_outbox_t *ob, const mqim_flash_t *flash,
                                     mqim_flash_page_t *pages)
{
    uint32_t horizon = 0, max_seq = 0, max_key = 0, key_floor = 1, tail_seq = 0;
    bool tail_clean = false;
    mqim_status_t st;
    if (ob == 0 || flash == 0 || pages == 0 || flash->ops == 0 || flash->ops->read == 0 ||
        flash->ops->program == 0 || flash->ops->erase == 0 || flash->page_count < 2u ||
        flash->page_count > 0xffffu || flash->program_unit == 0u || flash->program_unit > 16u ||
        (flash->program_unit & (flash->program_unit - 1u)) != 0u || flash->page_size < 128u ||
        flash->page_size > 65536u || flash->page_size % flash->program_unit != 0u) {
        return MQIM_BAD_PARAMETER;
    }
    ob->flash = *flash;
    ob->pages = pages;
    ob->tail = flash->page_count;
    ob->count = 0;
    ob->free_pages = 0;
    /* Headers: which pages are live, the collection horizon, the highest seq and key. */
    for (uint32_t p = 0; p < flash->page_count; p++) {
        page_hdr_t ph;
        bool valid = false, done = true;
        pages[p].seq = 0;
        pages[p].end = 0;
        st = page_hdr_read(ob, p, &ph, &valid);
        if (st != MQIM_OK) {
            return st;
        }
        if (!valid) {
            continue;
        }
        max_seq = ph.seq > max_seq ? ph.seq : max_seq;
        if (ph.gc_of != GC_NONE) {
            st = marker_set(ob, p, first_off(ob) - unit(ob), &done);
            if (st != MQIM_OK) {
                return st;
            }
            if (!done) {
                continue; /* a collection cut short: its source is intact */
            }
            horizon = ph.gc_of > horizon ? ph.gc_of : horizon;
        }
        key_floor = ph.next_key > key_floor ? ph.next_key : key_floor;
        pages[p].seq = ph.seq;
    }
    for (uint32_t p = 0; p < flash->page_count; p++) {
        bool clean = false;
        if (pages[p].seq != 0u && pages[p].seq <= horizon) {
            pages[p].seq = 0; /* collected; maybe half erased */
        }
        for (uint32_t q = 0; q < p && pages[p].seq != 0u; q++) {
            if (pages[q].seq == pages[p].seq) {
                pages[p].seq = 0; /* a copy of a page (never written so): one counts */
            }
        }
        if (pages[p].seq == 0u) {
            ob->free_pages++;
            continue;
        }
        st = page_scan(ob, p, &max_key, &clean);
        if (st != MQIM_OK) {
            return st;
        }
        if (pages[p].seq > tail_seq) {
            tail_seq = pages[p].seq;
            ob->tail = p;
            tail_clean = clean;
        }
    }
    /* The newest page takes more entries only when the rest of it is blank. */
    if (ob->tail < flash->page_count) {
        bool b = false;
        uint32_t end = ob->pages[ob->tail].end;
        if (tail_clean) {
            st = region_blank(ob, ob->tail, end, flash->page_size - end, &b);
            if (st != MQIM_OK) {
                return st;
            }
        }
        if (!b) {
            ob->pages[ob->tail].end |= END_CLOSED; /* closed: see tail_room */
        }
    }
    ob->next_seq = max_seq + 1u;
    ob->next_key = max_key >= key_floor ? max_key + 1u : key_floor;
    if (ob->next_key == 0u) {
        ob->next_key = 1u;
    }
    return MQIM_OK;
}

size_t mqim_flash_outbox_max_record(const mqim_flash_outbox_t *ob)
{
    uint32_t room = ob->flash.page_size - first_off(ob) - 2u * unit(ob);
    uint32_t max = (room & ~(unit(ob) - 1u)) - EHDR_BYTES;
    return max > 0xffffu ? 0xffffu : max;
}

/* ---- writing ---- */

/* Programs a stream of bytes in CHUNK pieces at a unit-aligned offset. */
typedef struct stager {
    uint8_t buf[CHUNK];
    uint32_t n;
    uint32_t page, off;
} stager_t;

static mqim_status_t stage(const mqim_flash_outbox_t *ob, stager_t *s, const uint8_t *p, size_t len)
{
    while (len > 0u) {
        uint32_t n = CHUNK - s->n;
        n = len < n ? (uint32_t)len : n;
        for (uint32_t i = 0; i < n; i++) {
            s->buf[s->n + i] = p[i];
        }
        s->n += n;
        p += n;
        len -= n;
        if (s->n == CHUNK) {
            mqim_status_t st = prog(ob, s->page, s->off, s->buf, CHUNK);
            if (st != MQIM_OK) {
                return st;
            }
            s->off += CHUNK;
            s->n = 0;
        }
    }
    return MQIM_OK;
}

static mqim_status_t stage_flush(const mqim_flash_outbox_t *ob, stager_t *s)
{
    uint32_t n = round_unit(ob, s->n);
    for (uint32_t i = s->n; i < n; i++) {
        s->buf[i] = 0xffu;
    }
    s->n = 0;
    return n > 0u ? prog(ob, s->page, s->off, s->buf, n) : MQIM_OK;
}

/* Take a free page, round-robin after the tail: erase it unless blank,
 * write its header. gc_of: the page it collects, or GC_NONE. */
static mqim_status_t page_start(mqim_flash_outbox_t *ob, uint32_t gc_of, uint32_t *out)
{
    uint32_t n = ob->flash.page_count, p = ob->tail < n ? (ob->tail + 1u) % n : 0u;
    uint8_t h[PHDR_BYTES];
    stager_t s;
    bool b = false;
    mqim_status_t st;
    for (uint32_t i = 0; i < n && ob->pages[p].seq != 0u; i++) {
        p = (p + 1u) % n;
    }
    if (ob->pages[p].seq != 0u) {
        return MQIM_OUTBOX_FULL;
    }
    st = region_blank(ob, p, 0, ob->flash.page_size, &b);
    if (st == MQIM_OK && !b) {
        st = ob->flash.ops->erase(ob->flash.ctx, p);
    }
    if (st != MQIM_OK) {
        return st;
    }
    put_u32(h, PAGE_MAGIC);
    put_u32(h + 4, ob->next_seq);
    put_u32(h + 8, gc_of);
    put_u32(h + 12, ob->next_key);
    put_u32(h + 16, crc32_update(0, h, 16));
    s.n = 0;
    s.page = p;
    s.off = 0;
    ob->next_seq++; /* used even when the header fails: never reuse a seq */
    st = stage(ob, &s, h, sizeof(h));
    if (st == MQIM_OK) {
        st = stage_flush(ob, &s);
    }
    if (st != MQIM_OK) {
        return st;
    }
    ob->pages[p].seq = ob->next_seq - 1u;
    ob->pages[p].end = first_off(ob);
    ob->free_pages--;
    *out = p;
    return MQIM_OK;
}

static bool tail_room(const mqim_flash_outbox_t *ob, uint32_t need)
{
    uint32_t t = ob->tail;
    return t < ob->flash.page_count && (ob->pages[t].end & END_CLOSED) == 0u &&
           need <= ob->flash.page_size - ob->pages[t].end;
}

static mqim_status_t append(mqim_flash_outbox_t *ob, const uint8_t *rec, uint32_t len, uint32_t *key)
{
    uint8_t h[EHDR_BYTES];
    uint32_t t = ob->tail, off = ob->pages[t].end;
    stager_t s;
    mqim_status_t st;
    put_u32(h, ob->next_key);
    h[4] = (uint8_t)len;
    h[5] = (uint8_t)(len >> 8);
    h[6] = 0u;
    h[7] = 0u;
    put_u32(h + 8, crc32_update(crc32_update(0, h, 8), rec, len));
    s.n = 0;
    s.page = t;
    s.off = off;
    /* Whatever happens now, this space is spent, and the key too. */
    ob->pages[t].end |= END_CLOSED;
    st = stage(ob, &s, h, sizeof(h));
    if (st == MQIM_OK) {
        st = stage(ob, &s, rec, len);
    }
    if (st == MQIM_OK) {
        st = stage_flush(ob, &s);
    }
    if (st == MQIM_OK) {
        st = marker_program(ob, t, off + body_size(ob, len));
    }
    *key = ob->next_key;
    ob->next_key = ob->next_key == 0xffffffffu ? 1u : ob->next_key + 1u;
    if (st != MQIM_OK) {
        return st;
    }
    ob->pages[t].end = off + entry_size(ob, len);
    ob->count++;
    return MQIM_OK;
}

/* The live page with the lowest seq. */
static uint32_t oldest_page(const mqim_flash_outbox_t *ob)
{
    uint32_t best = ob->flash.page_count;
    for (uint32_t p = 0; p < ob->flash.page_count; p++) {
        if (ob->pages[p].seq != 0u && (best == ob->flash.page_count || ob->pages[p].seq < ob->pages[best].seq)) {
            best = p;
        }
    }
    return best;
}

/* Bytes the live (not removed) entries of a page take. */
static mqim_status_t live_bytes(const mqim_flash_outbox_t *ob, uint32_t p, uint32_t *bytes)
{
    uint32_t off = first_off(ob), end = page_end(ob, p);
    *bytes = 0;
    while (off < end) {
        entry_t e;
        scan_result_t res;
        mqim_status_t st = entry_read(ob, p, off, false, &e, &res);
        if (st != MQIM_OK) {
            return st;
        }
        if (res != ENTRY_OK) {
            break;
        }
        *bytes += e.removed ? 0u : e.size;
        off += e.size;
    }
    return MQIM_OK;
}

/* Copy a page's live entries to a new page, mark it done, erase the old one. */
static mqim_status_t collect(mqim_flash_outbox_t *ob, uint32_t old)
{
    uint32_t dst = 0, off = first_off(ob), end = page_end(ob, old), woff = first_off(ob);
    mqim_status_t st = page_start(ob, ob->pages[old].seq, &dst);
    if (st != MQIM_OK) {
        return st;
    }
    while (st == MQIM_OK && off < end) {
        entry_t e;
        scan_result_t res;
        st = entry_read(ob, old, off, false, &e, &res);
        if (st != MQIM_OK || res != ENTRY_OK) {
            break;
        }
        if (!e.removed) {
            uint32_t body = body_size(ob, e.len);
            for (uint32_t done = 0; st == MQIM_OK && done < body; done += CHUNK) {
                uint8_t buf[CHUNK];
                uint32_t n = body - done < CHUNK ? body - done : CHUNK;
                st = rd(ob, old, off + done, buf, n);
                if (st == MQIM_OK) {
                    st = prog(ob, dst, woff + done, buf, n);
                }
            }
            if (st == MQIM_OK) {
                st = marker_program(ob, dst, woff + body);
            }
            woff += e.size;
        }
        off += e.size;
    }
    if (st == MQIM_OK) {
        st = marker_program(ob, dst, first_off(ob) - unit(ob));
    }
    if (st != MQIM_OK) {
        /* Without its done unit the new page is garbage; the old one stays. */
        ob->pages[dst].seq = 0;
        ob->free_pages++;
        return st;
    }
    /* The old page is dead from here on (its seq is below the done page's
     * gc_of), erased or not: a failed erase is retried when the page is
     * taken again. */
    ob->pages[old].seq = 0;
    ob->free_pages++;
    (void)ob->flash.ops->erase(ob->flash.ctx, old);
    ob->pages[dst].end = woff;
    ob->tail = dst;
    return MQIM_OK;
}

mqim_status_t mqim_flash_outbox_put(void *ctx, const uint8_t *rec, size_t len, uint32_t *key)
{
    mqim_flash_outbox_t *ob = ctx;
    uint32_t need;
    if (ob == 0 || key == 0 || (rec == 0 && len > 0u) || len > 0xffffu) {
        return MQIM_BAD_PARAMETER;
    }
    if (len > mqim_flash_outbox_max_record(ob)) {
        return MQIM_OUTBOX_FULL;
    }
    need = entry_size(ob, (uint32_t)len);
    /* Each round either appends, opens a page or collects one; a collection
     * frees at least `need` bytes, so a few rounds always settle it. */
    for (uint32_t round = 0; round < 4u; round++) {
        mqim_status_t st;
        uint32_t old, live = 0, p = 0;
        if (tail_room(ob, need)) {
            return append(ob, rec, (uint32_t)len, key);
        }
        if (ob->free_pages >= 2u) { /* one stays free for collections */
            st = page_start(ob, GC_NONE, &p);
            if (st != MQIM_OK) {
                return st;
            }
            ob->tail = p;
            continue;
        }
        old = oldest_page(ob);
        if (ob->free_pages == 0u || old == ob->flash.page_count) {
            return MQIM_OUTBOX_FULL;
        }
        st = live_bytes(ob, old, &live);
        if (st != MQIM_OK) {
            return st;
        }
        if (live + need > ob->flash.page_size - first_off(ob)) {
            return MQIM_OUTBOX_FULL; /* collecting would not make room: wait for acks */
        }
        st = collect(ob, old);
        if (st != MQIM_OK) {
            return st;
        }
    }
    return MQIM_OUTBOX_FULL;
}

/* ---- reading and removing ---- */

typedef struct find_arg {
    uint32_t after, key; /* key: the search's target (remove) or best so far (peek) */
    uint32_t page, off, len;
    bool found;
} find_arg_t;

static bool lowest_after(mqim_flash_outbox_t *ob, uint32_t page, uint32_t off, const entry_t *e, void *arg)
{
    find_arg_t *a = arg;
    (void)ob;
    if (!e->removed && e->key > a->after && (!a->found || e->key < a->key)) {
        a->found = true;
        a->key = e->key;
        a->page = page;
        a->off = off;
        a->len = e->len;
    }
    return false;
}

static bool key_match(mqim_flash_outbox_t *ob, uint32_t page, uint32_t off, const entry_t *e, void *arg)
{
    find_arg_t *a = arg;
    if (!e->removed && e->key == a->key) {
        a->found = true;
        a->page = page;
        a->off = off + body_size(ob, e->len) + unit(ob); /* its delete unit */
        return true;
    }
    return false;
}

mqim_status_t mqim_flash_outbox_peek(void *ctx, uint32_t after, uint32_t *key, uint8_t *buf, size_t cap,
                                     size_t *len)
{
    mqim_flash_outbox_t *ob = ctx;
    find_arg_t a = { after, 0, 0, 0, 0, false };
    bool stopped = false;
    mqim_status_t st;
    if (ob == 0 || key == 0 || len == 0 || (buf == 0 && cap > 0u)) {
        return MQIM_BAD_PARAMETER;
    }
    st = walk(ob, lowest_after, &a, &stopped);
    if (st != MQIM_OK) {
        return st;
    }
    if (!a.found) {
        return MQIM_NOT_FOUND;
    }
    *key = a.key;
    *len = a.len;
    if (a.len > cap) {
        return MQIM_BUFFER_TOO_SMALL;
    }
    return a.len > 0u ? rd(ob, a.page, a.off + EHDR_BYTES, buf, a.len) : MQIM_OK;
}

mqim_status_t mqim_flash_outbox_remove(void *ctx, uint32_t key)
{
    mqim_flash_outbox_t *ob = ctx;
    find_arg_t a = { 0, key, 0, 0, 0, false };
    bool stopped = false;
    mqim_status_t st;
    if (ob == 0 || key == 0u) {
        return MQIM_BAD_PARAMETER;
    }
    st = walk(ob, key_match, &a, &stopped);
    if (st != MQIM_OK) {
        return st;
    }
    if (!a.found) {
        return MQIM_NOT_FOUND;
    }
    st = marker_program(ob, a.page, a.off);
    if (st == MQIM_OK) {
        ob->count--;
    }
    return st;
}

const mqim_outbox_ops_t mqim_flash_outbox_ops = {
    mqim_flash_outbox_put,
    mqim_flash_outbox_peek,
    mqim_flash_outbox_remove,
};
