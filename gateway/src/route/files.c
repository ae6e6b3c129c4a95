/* Files (docs/protocol.md, "Files"): a device uploads a file in chunks
 * (file_begin, file_put), then sends a message of type "file" that names
 * it; the gateway fills in the file's name, type, size and SHA-256 from what
 * it stored and lets the message's recipients fetch it by offset
 * (file_info, file_get).
 *
 * Why this shape: a small device never holds the whole file (chunks of
 * 1 KiB by default, read from a board callback), an upload resumes where the
 * gateway's stored prefix ends (chunks are accepted only in order, so the
 * prefix is always contiguous), and a file is checked end to end: the
 * gateway hashes what it stored before it calls the upload complete, the
 * recipient hashes what it fetched. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqim/base64.h"
#include "mqim/file_meta.h"
#include "mqim/name.h"
#include "mqim/sha256.h"
#include "router_internal.h"

#define DEFAULT_MIME "application/octet-stream"

/* The stored description of a file (store.h "files"): this header, then
 * the owner, the name and the media type. */
typedef struct file_hdr {
    uint64_t size;     /* declared bytes */
    uint64_t have;     /* bytes stored, a contiguous prefix */
    int64_t created;   /* ms */
    uint32_t chunk;    /* bytes per stored chunk; the last may be shorter */
    uint8_t complete;  /* have == size and the SHA-256 matched */
    uint8_t owner_len;
    uint8_t mime_len;
    uint8_t pad_;
    uint16_t name_len;
    uint16_t pad2_;
    char sha256[MQIM_SHA256_HEX_LEN];
} file_hdr_t;

/* A description copied out of the map: LMDB's pointers do not survive the
 * writes that follow in the same transaction. */
typedef struct file_meta {
    file_hdr_t h;
    char id[MQIM_ID_MAX + 1];
    char owner[MQIM_USER_NAME_MAX + 1];
    char name[MQIM_FILE_NAME_MAX + 1];
    char mime[MQIM_MIME_MAX + 1];
} file_meta_t;

/* The feature's work area (fl_feature: one per router): the ctl ops' and
 * fl_attach's. */
typedef struct fl_work {
    file_meta_t meta;
    uint8_t chunk[MQIM_FILE_CHUNK_LIMIT];
    char b64[MQIM_BASE64_LEN(MQIM_FILE_CHUNK_LIMIT) + 1];
    size_t b64_len;
    uint64_t offset; /* file_get: where the data starts */
    bool eof;
    char reason[REASON_MAX];
} fl_work_t;

static fl_work_t *fl_w(const mqim_router_t *r)
{
    return rt_work(r, RT_FEATURE_FILES);
}

static uint64_t max_bytes(const mqim_router_t *r)
{
    return r->cfg.file_max_bytes != 0u ? r->cfg.file_max_bytes : (UINT64_C(64) << 20);
}

static unsigned chunk_max(const mqim_router_t *r)
{
    return r->cfg.file_chunk_max != 0u ? r->cfg.file_chunk_max : MQIM_FILE_CHUNK_LIMIT;
}

static unsigned chunk_default(const mqim_router_t *r)
{
    unsigned c = r->cfg.file_chunk_bytes != 0u ? r->cfg.file_chunk_bytes : 1024u;
    return c > chunk_max(r) ? chunk_max(r) : c;
}

static mqim_str_t meta_str(const char *s)
{
    return mqim_str_from_cstr(s);
}

static mqim_status_t meta_load(req_t *q, mqim_str_t id, file_meta_t *m)
{
    mqim_str_t raw;
    const char *p;
    mqim_status_t st;
    if (id.len == 0u || id.len > MQIM_ID_MAX) {
        return MQIM_NOT_FOUND;
    }
    st = mqim_store_file_get(&q->txn, id, &raw);
    if (st != MQIM_OK) {
        return st;
    }
    if (raw.len < sizeof(file_hdr_t)) {
        return MQIM_STORE_ERROR;
    }
    memcpy(&m->h, raw.ptr, sizeof(file_hdr_t));
    if (raw.len != sizeof(file_hdr_t) + m->h.owner_len + m->h.name_len + m->h.mime_len ||
        m->h.owner_len > MQIM_USER_NAME_MAX || m->h.name_len > MQIM_FILE_NAME_MAX ||
        m->h.mime_len > MQIM_MIME_MAX || m->h.chunk == 0u || m->h.chunk > MQIM_FILE_CHUNK_LIMIT ||
        m->h.have > m->h.size) {
        return MQIM_STORE_ERROR; /* offsets divide by chunk: never trust a bad record */
    }
    p = raw.ptr + sizeof(file_hdr_t);
    memcpy(m->owner, p, m->h.owner_len);
    m->owner[m->h.owner_len] = '\0';
    p += m->h.owner_len;
    memcpy(m->name, p, m->h.name_len);
    m->name[m->h.name_len] = '\0';
    p += m->h.name_len;
    memcpy(m->mime, p, m->h.mime_len);
    m->mime[m->h.mime_len] = '\0';
    memcpy(m->id, id.ptr, id.len);
    m->id[id.len] = '\0';
    return MQIM_OK;
}

static mqim_status_t meta_save(req_t *q, const file_meta_t *m)
{
    char buf[sizeof(file_hdr_t) + MQIM_USER_NAME_MAX + MQIM_FILE_NAME_MAX + MQIM_MIME_MAX];
    size_t n = sizeof(file_hdr_t);
    memcpy(buf, &m->h, sizeof(file_hdr_t));
    memcpy(buf + n, m->owner, m->h.owner_len);
    n += m->h.owner_len;
    memcpy(buf + n, m->name, m->h.name_len);
    n += m->h.name_len;
    memcpy(buf + n, m->mime, m->h.mime_len);
    n += m->h.mime_len;
    return mqim_store_file_put(&q->txn, meta_str(m->id), (mqim_str_t){ buf, n });
}

static uint32_t chunk_count(const file_hdr_t *h, uint64_t bytes)
{
    return (uint32_t)((bytes + h->chunk - 1u) / h->chunk);
}

/* Hash the stored chunks: the upload is complete only if they are the file
 * the uploader described. */
static mqim_status_t verify(req_t *q, const file_meta_t *m)
{
    mqim_sha256_t sha;
    uint8_t digest[MQIM_SHA256_LEN];
    char hex[MQIM_SHA256_HEX_LEN];
    uint64_t total = 0;
    mqim_status_t st = MQIM_OK;
    uint32_t n = chunk_count(&m->h, m->h.size);
    mqim_sha256_init(&sha);
    for (uint32_t i = 0; st == MQIM_OK && i < n; i++) {
        mqim_str_t data;
        st = mqim_store_chunk_get(&q->txn, meta_str(m->id), i, &data);
        if (st == MQIM_OK) {
            mqim_sha256_update(&sha, data.ptr, data.len);
            total += data.len;
        }
    }
    if (st == MQIM_NOT_FOUND) {
        return MQIM_FILE_CORRUPT;
    }
    if (st != MQIM_OK) {
        return st;
    }
    mqim_sha256_final(&sha, digest);
    mqim_sha256_hex(digest, hex);
    return total == m->h.size && memcmp(hex, m->h.sha256, sizeof(hex)) == 0 ? MQIM_OK
                                                                           : MQIM_FILE_CORRUPT;
}

/* The owner, or someone a file message reached. */
static mqim_status_t may_read(req_t *q, const file_meta_t *m)
{
    if (mqim_str_eq(q->t.user, meta_str(m->owner))) {
        return MQIM_OK;
    }
    return mqim_store_file_granted(&q->txn, meta_str(m->id), q->t.user);
}

static void body_state(mqim_json_writer_t *w, const ctl_doc_t *d)
{
    const file_meta_t *m = d->ctx;
    mqim_json_key_str(w, "file", meta_str(m->id));
    mqim_json_key_u64(w, "size", m->h.size);
    mqim_json_key_u64(w, "chunk", m->h.chunk);
    mqim_json_key_u64(w, "have", m->h.have);
    mqim_json_key_bool(w, "complete", m->h.complete != 0u);
}

static void body_info(mqim_json_writer_t *w, const ctl_doc_t *d)
{
    const file_meta_t *m = d->ctx;
    body_state(w, d);
    mqim_json_key_str(w, "owner", meta_str(m->owner));
    mqim_json_key_str(w, "name", meta_str(m->name));
    mqim_json_key_str(w, "mime", meta_str(m->mime));
    mqim_json_key_str(w, "sha256", (mqim_str_t){ m->h.sha256, MQIM_SHA256_HEX_LEN });
    mqim_json_key_i64(w, "created", m->h.created);
}

static void body_data(mqim_json_writer_t *w, const ctl_doc_t *d)
{
    const fl_work_t *fw = fl_w(d->q->r);
    mqim_json_key_str(w, "file", meta_str(fw->meta.id));
    mqim_json_key_u64(w, "offset", fw->offset);
    mqim_json_key_u64(w, "size", fw->meta.h.size);
    mqim_json_key_bool(w, "eof", fw->eof);
    mqim_json_key_str(w, "data", (mqim_str_t){ fw->b64, fw->b64_len });
}

static bool fail(ctl_doc_t *d, mqim_status_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool fail(ctl_doc_t *d, mqim_status_t code, const char *fmt, ...)
{
    fl_work_t *fw = fl_w(d->q->r);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fw->reason, sizeof(fw->reason), fmt, ap);
    va_end(ap);
    d->code = code;
    d->reason = fw->reason;
    return true;
}

/* The file a request names, loaded; a file the requester may not read is
 * "not found", so ids cannot be probed. */
static bool req_file(req_t *q, const cJSON *root, ctl_doc_t *d, bool owner_only, file_meta_t *m)
{
    mqim_str_t id = rt_json_str(cJSON_GetObjectItemCaseSensitive(root, "file"));
    mqim_status_t st;
    if (mqim_id_check(id) != MQIM_OK) {
        return !fail(d, MQIM_FIELD_TYPE, "\"file\" must be a file id");
    }
    st = meta_load(q, id, m);
    if (st == MQIM_OK) {
        st = owner_only ? (mqim_str_eq(q->t.user, meta_str(m->owner)) ? MQIM_OK : MQIM_NOT_FOUND)
                        : may_read(q, m);
    }
    if (st == MQIM_NOT_FOUND) {
        return !fail(d, st, "no file %.*s for you", (int)id.len, id.ptr);
    }
    if (st != MQIM_OK) {
        d->code = st;
        return false;
    }
    return true;
}

/* file_begin: describe an upload, or find the one begun with the same
 * "upload" id (resuming after a disconnect or a reboot). */
static void op_begin(req_t *q, const cJSON *root, ctl_doc_t *d)
{
    mqim_router_t *r = q->r;
    file_meta_t *m = &fl_w(r)->meta;
    mqim_str_t upload = rt_json_str(cJSON_GetObjectItemCaseSensitive(root, "upload"));
    mqim_str_t name = rt_json_str(cJSON_GetObjectItemCaseSensitive(root, "name"));
    mqim_str_t mime = rt_json_str(cJSON_GetObjectItemCaseSensitive(root, "mime"));
    mqim_str_t sha = rt_json_str(cJSON_GetObjectItemCaseSensitive(root, "sha256"));
    const cJSON *jchunk = cJSON_GetObjectItemCaseSensitive(root, "chunk");
    uint64_t size = 0, chunk = chunk_default(r);
    mqim_str_t existing;
    mqim_status_t st;

    if (mqim_id_check(upload) != MQIM_OK) {
        (void)fail(d, MQIM_FIELD_TYPE, "\"upload\" must be an id of yours for this upload (1..64 of [A-Za-z0-9_-])");
        return;
    }
    if (mqim_file_name_check(name) != MQIM_OK) {
        (void)fail(d, MQIM_FIELD_RANGE, "\"name\" must be 1..%u bytes without '/', '\\' or control characters",
                   (unsigned)MQIM_FILE_NAME_MAX);
        return;
    }
    if (mime.len == 0u) {
        mime = MQIM_STR(DEFAULT_MIME);
    } else if (mqim_file_mime_check(mime) != MQIM_OK) {
        (void)fail(d, MQIM_FIELD_RANGE, "\"mime\" must be a media type such as image/jpeg");
        return;
    }
    if (mqim_file_sha256_check(sha) != MQIM_OK) {
        (void)fail(d, MQIM_FIELD_RANGE, "\"sha256\" must be 64 lowercase hex digits");
        return;
    }
    if (!rt_json_u64(cJSON_GetObjectItemCaseSensitive(root, "size"), &size) || size == 0u) {
        (void)fail(d, MQIM_FIELD_RANGE, "\"size\" must be a byte count of at least 1");
        return;
    }
    if (size > max_bytes(r)) {
        (void)fail(d, MQIM_FILE_TOO_LARGE, "%llu bytes is more than the %llu this gateway accepts",
                   (unsigned long long)size, (unsigned long long)max_bytes(r));
        return;
    }
    if (jchunk != NULL && (!rt_json_u64(jchunk, &chunk) || chunk < 64u || chunk > chunk_max(r))) {
        (void)fail(d, MQIM_FIELD_RANGE, "\"chunk\" must be 64..%u bytes", chunk_max(r));
        return;
    }
    st = mqim_store_upload_get(&q->txn, q->t.user, upload, &existing);
    if (st == MQIM_OK) {
        char id[MQIM_ID_MAX + 1];
        size_t n = existing.len < MQIM_ID_MAX ? existing.len : MQIM_ID_MAX;
        memcpy(id, existing.ptr, n);
        st = meta_load(q, (mqim_str_t){ id, n }, m);
        if (st == MQIM_OK && (m->h.size != size || memcmp(m->h.sha256, sha.ptr, sha.len) != 0)) {
            (void)fail(d, MQIM_FIELD_RANGE, "upload %.*s was begun for another size or sha256",
                       (int)upload.len, upload.ptr);
            return;
        }
    } else if (st == MQIM_NOT_FOUND) {
        uint8_t rnd[10];
        memset(m, 0, sizeof(*m));
        rt_random_bytes(r, rnd, sizeof(rnd));
        st = mqim_id_make(&r->idgen, (uint64_t)q->now, rnd, m->id);
        m->id[MQIM_ULID_LEN] = '\0';
        m->h.size = size;
        m->h.chunk = (uint32_t)chunk;
        m->h.created = q->now;
        m->h.owner_len = (uint8_t)q->t.user.len;
        m->h.name_len = (uint16_t)name.len;
        m->h.mime_len = (uint8_t)mime.len;
        memcpy(m->h.sha256, sha.ptr, sha.len);
        memcpy(m->owner, q->t.user.ptr, q->t.user.len);
        memcpy(m->name, name.ptr, name.len);
        memcpy(m->mime, mime.ptr, mime.len);
        if (st == MQIM_OK) {
            st = meta_save(q, m);
        }
        if (st == MQIM_OK) {
            st = mqim_store_upload_put(&q->txn, q->t.user, upload, meta_str(m->id));
        }
        if (st == MQIM_OK) {
            st = mqim_store_counter_add(&q->txn, "files", 1u);
        }
    }
    d->code = st;
    d->body = body_state;
    d->ctx = m;
}

/* file_put: the chunk at "offset". Chunks arrive in order; one the gateway
 * already has is acknowledged again (a resend after a reconnect). */
static void op_put(req_t *q, const cJSON *root, ctl_doc_t *d)
{
    fl_work_t *fw = fl_w(q->r);
    file_meta_t *m = &fw->meta;
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
    uint64_t offset = 0, expect;
    size_t got = 0;
    mqim_status_t st;

    if (!req_file(q, root, d, true, m)) {
        return;
    }
    d->body = body_state;
    d->ctx = m;
    if (!rt_json_u64(cJSON_GetObjectItemCaseSensitive(root, "offset"), &offset) ||
        offset % m->h.chunk != 0u || offset >= m->h.size) {
        (void)fail(d, MQIM_FIELD_RANGE, "\"offset\" must be a multiple of the chunk size (%u) below the size",
                   (unsigned)m->h.chunk);
        return;
    }
    if (!cJSON_IsString(data) || data->valuestring == NULL) {
        (void)fail(d, MQIM_FIELD_TYPE, "\"data\" must be the chunk in base64");
        return;
    }
    if (offset < m->h.have || m->h.complete) {
        d->code = MQIM_OK; /* stored already */
        return;
    }
    if (offset > m->h.have) {
        (void)fail(d, MQIM_FILE_OFFSET, "expected the chunk at offset %llu", (unsigned long long)m->h.have);
        return;
    }
    expect = m->h.size - offset < m->h.chunk ? m->h.size - offset : m->h.chunk;
    st = mqim_base64_decode(data->valuestring, strlen(data->valuestring), fw->chunk, sizeof(fw->chunk), &got);
    if (st != MQIM_OK || got != expect) {
        (void)fail(d, MQIM_FIELD_RANGE, "\"data\" must be %llu bytes in base64 here",
                   (unsigned long long)expect);
        return;
    }
    st = mqim_store_chunk_put(&q->txn, meta_str(m->id), (uint32_t)(offset / m->h.chunk), fw->chunk, got);
    if (st == MQIM_OK) {
        m->h.have += got;
        if (m->h.have == m->h.size) {
            st = verify(q, m);
            if (st == MQIM_FILE_CORRUPT) {
                /* Start over, and keep that: an upload that cannot complete
                 * must not stay stuck at its full size. */
                st = mqim_store_file_del(&q->txn, meta_str(m->id), chunk_count(&m->h, m->h.size));
                m->h.have = 0;
                if (st == MQIM_OK) {
                    st = meta_save(q, m);
                }
                if (st == MQIM_OK) {
                    d->keep_effects = true;
                    (void)fail(d, MQIM_FILE_CORRUPT,
                               "the %llu bytes do not match the sha256 given in file_begin; the upload "
                               "starts again at offset 0", (unsigned long long)m->h.size);
                    return;
                }
            } else if (st == MQIM_OK) {
                m->h.complete = 1u;
            }
        }
    }
    if (st == MQIM_OK) {
        st = meta_save(q, m);
    }
    d->code = st;
}

/* file_get: "len" bytes (default one chunk) from "offset" of a complete file. */
static void op_get(req_t *q, const cJSON *root, ctl_doc_t *d)
{
    fl_work_t *fw = fl_w(q->r);
    file_meta_t *m = &fw->meta;
    const cJSON *jlen = cJSON_GetObjectItemCaseSensitive(root, "len");
    uint64_t offset = 0, len = 0, end, pos;
    size_t n = 0;
    mqim_status_t st = MQIM_OK;

    d->direct_response = true; /* a pure read, the hot path of a download */
    if (!req_file(q, root, d, false, m)) {
        return;
    }
    if (!m->h.complete) {
        (void)fail(d, MQIM_FILE_INCOMPLETE, "file %s is still being uploaded", m->id);
        return;
    }
    len = m->h.chunk;
    if (!rt_json_u64(cJSON_GetObjectItemCaseSensitive(root, "offset"), &offset) || offset > m->h.size) {
        (void)fail(d, MQIM_FIELD_RANGE, "\"offset\" must be 0..%llu", (unsigned long long)m->h.size);
        return;
    }
    if (jlen != NULL && (!rt_json_u64(jlen, &len) || len < 1u || len > chunk_max(q->r))) {
        (void)fail(d, MQIM_FIELD_RANGE, "\"len\" must be 1..%u", chunk_max(q->r));
        return;
    }
    end = offset + len < m->h.size ? offset + len : m->h.size;
    /* The range may span stored chunks: copy piece by piece. */
    for (pos = offset; st == MQIM_OK && pos < end;) {
        mqim_str_t data;
        uint64_t in_chunk = pos % m->h.chunk, take;
        st = mqim_store_chunk_get(&q->txn, meta_str(m->id), (uint32_t)(pos / m->h.chunk), &data);
        if (st == MQIM_OK && data.len <= in_chunk) {
            st = MQIM_STORE_ERROR;
        }
        if (st == MQIM_OK) {
            take = data.len - in_chunk;
            if (take > end - pos) {
                take = end - pos;
            }
            memcpy(fw->chunk + n, data.ptr + in_chunk, take);
            n += take;
            pos += take;
        }
    }
    if (st == MQIM_OK) {
        st = mqim_base64_encode(fw->chunk, n, fw->b64, sizeof(fw->b64), &fw->b64_len);
    }
    fw->offset = offset;
    fw->eof = end == m->h.size;
    d->code = st == MQIM_NOT_FOUND ? MQIM_STORE_ERROR : st;
    d->body = body_data;
}

static void op_info(req_t *q, const cJSON *root, ctl_doc_t *d)
{
    file_meta_t *m = &fl_w(q->r)->meta;
    d->direct_response = true;
    if (req_file(q, root, d, false, m)) {
        d->code = MQIM_OK;
        d->body = body_info;
        d->ctx = m;
    }
}

/* The ops answer in d (code, reason, body) themselves; work is fl_w's. */
#define FL_CTL(name, fn)                                                                     \
    static mqim_status_t name(req_t *q, const cJSON *root, ctl_doc_t *d, void *work)         \
    {                                                                                        \
        (void)work;                                                                          \
        fn(q, root, d);                                                                      \
        return d->code;                                                                      \
    }
FL_CTL(ctl_begin, op_begin)
FL_CTL(ctl_put, op_put)
FL_CTL(ctl_get, op_get)
FL_CTL(ctl_info, op_info)

static const rt_ctl_op_t fl_ops[] = {
    { "file_begin", ctl_begin, sizeof(fl_work_t) },
    { "file_put", ctl_put, sizeof(fl_work_t) },
    { "file_get", ctl_get, sizeof(fl_work_t) },
    { "file_info", ctl_info, sizeof(fl_work_t) },
};

const rt_feature_t fl_feature = { RT_FEATURE_FILES, fl_ops, sizeof(fl_ops) / sizeof(fl_ops[0]),
                                  sizeof(fl_work_t), true };

mqim_status_t fl_attach(req_t *q, dm_parse_t *p, const char **reason)
{
    file_meta_t *m = &fl_w(q->r)->meta;
    fl_work_t *fw = fl_w(q->r);
    mqim_envelope_t *env = &p->env;
    mqim_status_t st;
    *reason = NULL;
    if (!env->has_file) {
        if (mqim_str_eq_cstr(env->type, "file")) {
            *reason = "a message of type file needs \"file\":{\"id\":...} naming a file you uploaded";
            return MQIM_FIELD_MISSING;
        }
        return MQIM_OK;
    }
    if (!mqim_str_eq_cstr(env->type, "file") && !mqim_str_eq_cstr(env->type, "text")) {
        *reason = "\"file\" belongs in messages of type file";
        return MQIM_FIELD_RANGE;
    }
    st = meta_load(q, env->file.id, m);
    if (st == MQIM_OK && !mqim_str_eq(q->t.user, meta_str(m->owner))) {
        st = MQIM_NOT_FOUND;
    }
    if (st == MQIM_NOT_FOUND) {
        snprintf(fw->reason, sizeof(fw->reason), "no file %.*s of yours", (int)env->file.id.len,
                 env->file.id.ptr);
        *reason = fw->reason;
        return st;
    }
    if (st == MQIM_OK && !m->h.complete) {
        snprintf(fw->reason, sizeof(fw->reason), "file %s is not completely uploaded (%llu of %llu bytes)",
                 m->id, (unsigned long long)m->h.have, (unsigned long long)m->h.size);
        *reason = fw->reason;
        return MQIM_FILE_INCOMPLETE;
    }
    if (st != MQIM_OK) {
        return st;
    }
    /* The gateway's description wins over the sender's. */
    memcpy(p->filebuf.id, m->id, sizeof(m->id));
    memcpy(p->filebuf.name, m->name, sizeof(m->name));
    memcpy(p->filebuf.mime, m->mime, sizeof(m->mime));
    memcpy(p->filebuf.sha256, m->h.sha256, MQIM_SHA256_HEX_LEN);
    env->type = MQIM_STR("file");
    env->file.id = meta_str(p->filebuf.id);
    env->file.name = meta_str(p->filebuf.name);
    env->file.mime = meta_str(p->filebuf.mime);
    env->file.sha256 = (mqim_str_t){ p->filebuf.sha256, MQIM_SHA256_HEX_LEN };
    env->file.size = m->h.size;
    env->file.has_size = true;
    if (env->body.len == 0u) {
        env->body = env->file.name;
    }
    return MQIM_OK;
}

mqim_status_t fl_grant(req_t *q, const mqim_envelope_t *env, mqim_str_t user)
{
    if (!env->has_file || mqim_str_eq(user, q->t.user)) {
        return MQIM_OK;
    }
    return mqim_store_file_grant(&q->txn, env->file.id, user);
}
