/* Inbound journal, queue and group-commit worker (see inbound.h). */
#include "inbound.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"

#define LOG_MOD "inbound"
#define REC_MAGIC 0x4d51494au /* "MQIJ" */
#define JOURNAL_TRUNCATE_BYTES (4u << 20) /* truncate once idle and this large */
#define APPLIED_COUNTER "journal_applied"
#define DELETE_DELAY_MS 100 /* outbox deletes wait this long for a group commit to join */
#define DELETE_ALONE 4096u  /* ... or until this many are pending */

/* A journal record, as written (host byte order: the file never leaves the
 * machine), followed by topic, payload, response topic, correlation data. */
typedef struct rec_hdr {
    uint32_t magic;
    uint32_t len; /* whole record, header included */
    uint64_t seq; /* consecutive; never reused */
    int64_t now_ms;
    uint32_t topic_len, payload_len, rt_len, corr_len;
    uint8_t qos, retained, pad_[6];
} rec_hdr_t;

typedef struct slot {
    char *buf; /* the record; grows, never shrinks */
    size_t cap;
} slot_t;

struct mqim_inbound_q {
    mqim_store_t *store;
    mqim_router_t *router;
    mqim_inbound_done_fn done;
    void *done_ctx;
    int fd;
    uint64_t journal_bytes;
    unsigned max_batch, nslots;
    slot_t *slots;
    mqim_inbound_t *in; /* max_batch, the worker's */
    int64_t *now;
    mqim_status_t *st;
    uint64_t applying; /* the last journal seq of the batch being committed (for the hook) */
    uint64_t *wdel;    /* the worker's outbox deletes for the commit under way */
    size_t nwdel, wdel_cap;

    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    unsigned head, count; /* ring of queued records; the worker owns [head, head+taken) */
    uint64_t next_seq;
    uint64_t *del;      /* outbox deletes handed over by the pump */
    size_t ndel, del_cap;
    struct timespec del_due; /* when the first of them must be deleted */
    bool stopping;
    pthread_t thread;
    /* the retention sweep (mqim_inbound_sweep_every), under mu */
    const mqim_router_config_t *sweep_cfg;
    int64_t sweep_every_ms, next_sweep_ms;
};

/* The journal's write(2): a seam for tests that inject short and failed writes. */
static mqim_journal_write_fn journal_write = write;

void mqim_inbound_set_journal_write(mqim_journal_write_fn fn)
{
    journal_write = fn != NULL ? fn : write;
}

static size_t rec_size(const mqim_inbound_t *in)
{
    return sizeof(rec_hdr_t) + in->topic.len + in->payload.len + in->response_topic.len +
           in->correlation.len;
}

/* The record in buf as a publish; returns its journal seq. */
static uint64_t view(const char *buf, mqim_inbound_t *in, int64_t *now)
{
    rec_hdr_t h;
    const char *p = buf + sizeof(h);
    memcpy(&h, buf, sizeof(h));
    *now = h.now_ms;
    in->qos = h.qos;
    in->retained = h.retained != 0u;
    in->topic = (mqim_str_t){ p, h.topic_len };
    p += h.topic_len;
    in->payload = (mqim_str_t){ h.payload_len > 0u ? p : NULL, h.payload_len };
    p += h.payload_len;
    in->response_topic = (mqim_str_t){ h.rt_len > 0u ? p : NULL, h.rt_len };
    p += h.rt_len;
    in->correlation = (mqim_str_t){ h.corr_len > 0u ? p : NULL, h.corr_len };
    return h.seq;
}

static void delete_outbox(mqim_inbound_q_t *q, mqim_txn_t *txn)
{
    for (size_t i = 0; i < q->nwdel; i++) {
        (void)mqim_store_outbox_del(txn, q->wdel[i]); /* already gone: fine */
    }
}

/* "journal_applied" is the seq of the last record whose batch committed: a
 * high-water mark, not a count. (It was a count of records, compared with
 * seqs: a batch that failed to commit as a whole, whose records were then
 * handled one by one, left it behind the seqs for good, and every later
 * start routed committed records again. A count and the last seq are equal
 * while nothing failed, so older stores read the same.) */
static mqim_status_t applied_hook(void *ctx, mqim_txn_t *batch)
{
    mqim_inbound_q_t *q = ctx;
    delete_outbox(q, batch);
    return mqim_store_counter_raise(batch, APPLIED_COUNTER, q->applying);
}

/* Outbox deletes with no inbound batch to join. */
static void delete_alone(mqim_inbound_q_t *q)
{
    mqim_txn_t txn;
    if (q->nwdel == 0u) {
        return;
    }
    if (mqim_txn_begin(q->store, MQIM_TXN_WRITE_LAZY, &txn) == MQIM_OK) {
        delete_outbox(q, &txn);
        if (mqim_txn_commit(&txn) != MQIM_OK) {
            MQIM_LOGW(LOG_MOD, "could not delete %zu sent outbox entries; they will be sent again",
                      q->nwdel);
        }
    }
    q->nwdel = 0;
}

/* Take the pump's pending deletes into the worker's array (under q->mu). */
static void take_deletes(mqim_inbound_q_t *q)
{
    uint64_t *t = q->wdel;
    size_t cap = q->wdel_cap;
    q->wdel = q->del;
    q->wdel_cap = q->del_cap;
    q->nwdel = q->ndel;
    q->del = t;
    q->del_cap = cap;
    q->ndel = 0;
}

void mqim_inbound_outbox_done(mqim_inbound_q_t *q, const uint64_t *keys, size_t n)
{
    if (q == NULL || n == 0u) {
        return;
    }
    pthread_mutex_lock(&q->mu);
    if (q->ndel + n > q->del_cap) {
        size_t cap = q->del_cap > 0u ? q->del_cap : 1024u;
        uint64_t *d;
        while (cap < q->ndel + n) {
            cap *= 2u;
        }
        d = realloc(q->del, cap * sizeof(uint64_t));
        if (d == NULL) {
            /* not deleted now: sent again after a reconnect or restart; harmless */
            pthread_mutex_unlock(&q->mu);
            return;
        }
        q->del = d;
        q->del_cap = cap;
    }
    if (q->ndel == 0u) {
        clock_gettime(CLOCK_REALTIME, &q->del_due);
        q->del_due.tv_nsec += DELETE_DELAY_MS * 1000000L;
        if (q->del_due.tv_nsec >= 1000000000L) {
            q->del_due.tv_sec++;
            q->del_due.tv_nsec -= 1000000000L;
        }
    }
    memcpy(q->del + q->ndel, keys, n * sizeof(uint64_t));
    /* Wake the worker on the first pending delete (an idle worker waits
     * without a timeout until then, and would otherwise leave them until
     * the next inbound publish) and when enough are pending. */
    if (q->ndel == 0u || q->ndel + n >= DELETE_ALONE) {
        pthread_cond_signal(&q->not_empty);
    }
    q->ndel += n;
    pthread_mutex_unlock(&q->mu);
}

/* Route and commit n publishes; the number that were not MQIM_OK. */
static size_t run_batch(mqim_inbound_q_t *q, size_t n, uint64_t last_seq)
{
    size_t not_ok = 0;
    uint64_t t0 = mqim_metrics_now_us();
    q->applying = last_seq;
    (void)mqim_router_handle_batch(q->router, q->in, q->now, n, q->st, applied_hook, q);
    mqim_metrics_commit(mqim_metrics_now_us() - t0, n);
    mqim_metrics_journal_applied(last_seq);
    for (size_t i = 0; i < n; i++) {
        not_ok += q->st[i] != MQIM_OK;
    }
    return not_ok;
}

static void batch_done(mqim_inbound_q_t *q, size_t n, size_t not_ok)
{
    if (q->done != NULL) {
        q->done(q->done_ctx, n, not_ok);
    }
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run the retention sweep when it is due (the worker, q->mu held on entry
 * and on return; released while sweeping). The sweep writes (one
 * transaction per user and per group), so it runs here, between group
 * commits: the worker stays LMDB's only writer and the pump never waits
 * for the writer lock. */
static void sweep_if_due(mqim_inbound_q_t *q)
{
    const mqim_router_config_t *cfg = q->sweep_cfg;
    int64_t t;
    uint64_t pruned = 0;
    if (cfg == NULL || q->stopping) {
        return;
    }
    t = wall_ms();
    if (t < q->next_sweep_ms) {
        return;
    }
    q->next_sweep_ms = t + q->sweep_every_ms;
    pthread_mutex_unlock(&q->mu);
    if (mqim_router_sweep(q->store, cfg, t, &pruned) == MQIM_OK && pruned > 0u) {
        MQIM_LOGI(LOG_MOD, "retention removed %" PRIu64 " inbox entries", pruned);
    }
    pthread_mutex_lock(&q->mu);
}

/* Wait while nothing is queued (q->mu held): until a publish, a pending
 * delete's due time, the next sweep or the stop. False: stop waiting
 * (something to do or due). */
static bool idle_wait(mqim_inbound_q_t *q)
{
    struct timespec due;
    bool timed = false;
    if (q->ndel >= DELETE_ALONE) {
        return false;
    }
    if (q->ndel > 0u) {
        due = q->del_due;
        timed = true;
    }
    if (q->sweep_cfg != NULL) {
        struct timespec sw = { (time_t)(q->next_sweep_ms / 1000), (long)(q->next_sweep_ms % 1000) * 1000000L };
        if (!timed || sw.tv_sec < due.tv_sec || (sw.tv_sec == due.tv_sec && sw.tv_nsec < due.tv_nsec)) {
            due = sw;
        }
        timed = true;
    }
    if (!timed) {
        pthread_cond_wait(&q->not_empty, &q->mu);
        return true;
    }
    if (pthread_cond_timedwait(&q->not_empty, &q->mu, &due) != ETIMEDOUT) {
        return true;
    }
    return q->ndel == 0u && (q->sweep_cfg == NULL || wall_ms() < q->next_sweep_ms);
}

static void *worker(void *arg)
{
    mqim_inbound_q_t *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        unsigned n;
        uint64_t last_seq = 0;
        size_t not_ok;
        sweep_if_due(q); /* between batches, and when idle */
        while (q->count == 0u && !q->stopping && idle_wait(q)) {
            if (q->sweep_cfg != NULL && wall_ms() >= q->next_sweep_ms) {
                break;
            }
        }
        if (q->count == 0u) {
            /* idle: the pending outbox deletes in a commit of their own */
            take_deletes(q);
            pthread_mutex_unlock(&q->mu);
            delete_alone(q);
            pthread_mutex_lock(&q->mu);
            if (q->stopping && q->ndel == 0u) {
                break; /* stopping and drained */
            }
            continue;
        }
        n = q->count < q->max_batch ? q->count : q->max_batch;
        take_deletes(q); /* they join this batch's commit */
        pthread_mutex_unlock(&q->mu);
        /* The producer writes only free slots: [head, head+n) stay ours. */
        for (unsigned i = 0; i < n; i++) {
            last_seq = view(q->slots[(q->head + i) % q->nslots].buf, &q->in[i], &q->now[i]);
        }
        not_ok = run_batch(q, n, last_seq);
        q->nwdel = 0;
        pthread_mutex_lock(&q->mu);
        q->head = (q->head + n) % q->nslots;
        q->count -= n;
        if (q->count == 0u && q->journal_bytes >= JOURNAL_TRUNCATE_BYTES) {
            /* Everything journaled is committed (and the producer waits for
             * this mutex to journal more): start the file afresh. */
            if (ftruncate(q->fd, 0) == 0) {
                q->journal_bytes = 0;
            }
        }
        pthread_cond_broadcast(&q->not_full);
        /* After the slots are free: the pump, told by done that the queue
         * has room again, may offer at once what it held back. */
        pthread_mutex_unlock(&q->mu);
        batch_done(q, n, not_ok);
        pthread_mutex_lock(&q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

/* Append the record in slot s to the journal (q->mu held): MQIM_OK, or
 * the write's failure (MQIM_DISK_FULL for ENOSPC) with the torn part cut
 * off and logged. */
static mqim_status_t journal_append(mqim_inbound_q_t *q, const slot_t *s, size_t need)
{
    for (size_t off = 0; off < need;) {
        ssize_t w = journal_write(q->fd, s->buf + off, need - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            int e = w < 0 ? errno : ENOSPC;
            /* Cut a torn record off: replay stops at the first record that
             * does not parse, and would lose every later one. */
            bool cut = off == 0u || ftruncate(q->fd, (off_t)q->journal_bytes) == 0;
            MQIM_LOGE(LOG_MOD, "inbound journal write failed (%s)%s", strerror(e),
                      cut ? "" : "; the torn record could not be cut off, later records are "
                                 "not replayed after a crash");
            if (!cut) {
                q->journal_bytes += need; /* the file holds it, broken */
            }
            return e == ENOSPC ? MQIM_DISK_FULL : MQIM_STORE_ERROR;
        }
        off += (size_t)w;
    }
    q->journal_bytes += need;
    return MQIM_OK;
}

/* Journal and queue one publish. wait: block while the queue is full
 * (else MQIM_INFLIGHT_FULL). must_journal: a failed journal write leaves
 * the publish out of the queue (else it is queued all the same). */
static mqim_status_t put(mqim_inbound_q_t *q, const mqim_inbound_t *in, int64_t now_ms, bool wait,
                         bool must_journal)
{
    size_t need = rec_size(in);
    rec_hdr_t h;
    slot_t *s;
    char *p;
    mqim_status_t st;
    pthread_mutex_lock(&q->mu);
    while (q->count == q->nslots) {
        if (!wait) {
            pthread_mutex_unlock(&q->mu);
            return MQIM_INFLIGHT_FULL;
        }
        pthread_cond_wait(&q->not_full, &q->mu);
    }
    s = &q->slots[(q->head + q->count) % q->nslots];
    if (s->cap < need) {
        char *nb = realloc(s->buf, need);
        if (nb == NULL) {
            pthread_mutex_unlock(&q->mu);
            MQIM_LOGE(LOG_MOD, "out of memory queueing a publish of %zu bytes; not acknowledged, "
                      "the broker delivers it again", need);
            return MQIM_INTERNAL;
        }
        s->buf = nb;
        s->cap = need;
    }
    memset(&h, 0, sizeof(h));
    h.magic = REC_MAGIC;
    h.len = (uint32_t)need;
    h.seq = q->next_seq++;
    mqim_metrics_journal_written(h.seq);
    h.now_ms = now_ms;
    h.topic_len = (uint32_t)in->topic.len;
    h.payload_len = (uint32_t)in->payload.len;
    h.rt_len = (uint32_t)in->response_topic.len;
    h.corr_len = (uint32_t)in->correlation.len;
    h.qos = (uint8_t)in->qos;
    h.retained = in->retained ? 1u : 0u;
    memcpy(s->buf, &h, sizeof(h));
    p = s->buf + sizeof(h);
    if (in->topic.len > 0u) {
        memcpy(p, in->topic.ptr, in->topic.len);
        p += in->topic.len;
    }
    if (in->payload.len > 0u) {
        memcpy(p, in->payload.ptr, in->payload.len);
        p += in->payload.len;
    }
    if (in->response_topic.len > 0u) {
        memcpy(p, in->response_topic.ptr, in->response_topic.len);
        p += in->response_topic.len;
    }
    if (in->correlation.len > 0u) {
        memcpy(p, in->correlation.ptr, in->correlation.len);
    }
    /* Before the PUBACK (the caller sends it only on MQIM_OK). */
    st = journal_append(q, s, need);
    if (st != MQIM_OK && must_journal) {
        q->next_seq--; /* never written: the seq is free again */
        pthread_mutex_unlock(&q->mu);
        return st;
    }
    q->count++;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
    return st;
}

bool mqim_inbound_put(mqim_inbound_q_t *q, const mqim_inbound_t *in, int64_t now_ms)
{
    return put(q, in, now_ms, true, false) != MQIM_INTERNAL;
}

mqim_status_t mqim_inbound_offer(mqim_inbound_q_t *q, const mqim_inbound_t *in, int64_t now_ms)
{
    return put(q, in, now_ms, false, true);
}

void mqim_inbound_sweep_every(mqim_inbound_q_t *q, const mqim_router_config_t *cfg,
                              unsigned interval_ms)
{
    if (q == NULL) {
        return;
    }
    pthread_mutex_lock(&q->mu);
    q->sweep_cfg = interval_ms > 0u ? cfg : NULL;
    q->sweep_every_ms = interval_ms;
    q->next_sweep_ms = wall_ms() + interval_ms;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
}

/* Route the records past the applied point, in batches; the file is then
 * truncated (everything in it is committed). */
static int replay(mqim_inbound_q_t *q, const char *path)
{
    mqim_txn_t txn;
    uint64_t applied = 0, last = 0, replayed = 0;
    struct stat sb;
    char *data = NULL;
    size_t size = 0, off = 0, n = 0;
    int fd;
    if (mqim_txn_begin(q->store, MQIM_TXN_READ, &txn) == MQIM_OK) {
        applied = mqim_store_counter_get(&txn, APPLIED_COUNTER);
        mqim_txn_abort(&txn);
    }
    last = applied;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && fstat(fd, &sb) == 0 && sb.st_size > 0) {
        size = (size_t)sb.st_size;
        data = malloc(size);
        if (data == NULL) {
            close(fd);
            return -1;
        }
        for (size_t got = 0; got < size;) {
            ssize_t r = read(fd, data + got, size - got);
            if (r <= 0) {
                size = got;
                break;
            }
            got += (size_t)r;
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    while (off + sizeof(rec_hdr_t) <= size) {
        rec_hdr_t h;
        memcpy(&h, data + off, sizeof(h));
        if (h.magic != REC_MAGIC || h.len < sizeof(h) || h.len > size - off ||
            (uint64_t)h.topic_len + h.payload_len + h.rt_len + h.corr_len != h.len - sizeof(h)) {
            MQIM_LOGW(LOG_MOD, "inbound journal: incomplete record at byte %zu ignored", off);
            break;
        }
        if (h.seq > last) {
            last = h.seq;
        }
        if (h.seq > applied) {
            (void)view(data + off, &q->in[n], &q->now[n]);
            n++;
            if (n == q->max_batch) {
                batch_done(q, n, run_batch(q, n, h.seq));
                replayed += n;
                n = 0;
            }
        }
        off += h.len;
    }
    if (n > 0u) {
        batch_done(q, n, run_batch(q, n, last));
        replayed += n;
    }
    free(data);
    if (replayed > 0u) {
        MQIM_LOGI(LOG_MOD, "replayed %" PRIu64 " journaled publishes that were not committed",
                  replayed);
    }
    q->next_seq = last + 1u;
    return 0;
}

/* Everything mqim_inbound_start made (the slots' buffers too: a failed
 * start may have filled some while replaying). */
static void queue_free(mqim_inbound_q_t *q)
{
    if (q->fd >= 0) {
        close(q->fd);
    }
    for (unsigned i = 0; q->slots != NULL && i < q->nslots; i++) {
        free(q->slots[i].buf);
    }
    free(q->slots);
    free(q->del);
    free(q->wdel);
    free(q->in);
    free(q->now);
    free(q->st);
    pthread_cond_destroy(&q->not_full);
    pthread_cond_destroy(&q->not_empty);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

mqim_inbound_q_t *mqim_inbound_start(mqim_store_t *store, mqim_router_t *router,
                                     const char *journal_path, unsigned max_batch,
                                     mqim_inbound_done_fn done, void *done_ctx)
{
    mqim_inbound_q_t *q = calloc(1, sizeof(*q));
    if (q == NULL) {
        return NULL;
    }
    q->store = store;
    q->router = router;
    q->done = done;
    q->done_ctx = done_ctx;
    q->max_batch = max_batch > 0u ? max_batch : 1u;
    q->nslots = q->max_batch * 2u;
    q->fd = -1;
    q->slots = calloc(q->nslots, sizeof(slot_t));
    q->in = calloc(q->max_batch, sizeof(mqim_inbound_t));
    q->now = calloc(q->max_batch, sizeof(int64_t));
    q->st = calloc(q->max_batch, sizeof(mqim_status_t));
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    pthread_cond_init(&q->not_full, NULL);
    if (q->slots == NULL || q->in == NULL || q->now == NULL || q->st == NULL ||
        replay(q, journal_path) != 0) {
        MQIM_LOGE(LOG_MOD, "cannot replay the inbound journal %s", journal_path);
        goto fail;
    }
    q->fd = open(journal_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (q->fd < 0) {
        MQIM_LOGE(LOG_MOD, "cannot open the inbound journal %s: %s", journal_path, strerror(errno));
        goto fail;
    }
    if (pthread_create(&q->thread, NULL, worker, q) != 0) {
        MQIM_LOGE(LOG_MOD, "cannot start the inbound worker");
        goto fail;
    }
    return q;
fail:
    queue_free(q);
    return NULL;
}

void mqim_inbound_stop(mqim_inbound_q_t *q)
{
    if (q == NULL) {
        return;
    }
    pthread_mutex_lock(&q->mu);
    q->stopping = true;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->thread, NULL);
    queue_free(q);
}
