/* File transfer over the gateway's out/file requests (file_transfer.h).
 * Both directions keep the gateway's view as the truth: an upload resumes
 * from the "have" of a file_begin, a download from the bytes it wrote, so a
 * lost link or a lost response costs a re-request, never a hole. */
#include "mqim/file_transfer.h"

#include <string.h>

#include "mqim/base64.h"
#include "mqim/file_meta.h"
#include "mqim/envelope.h"
#include "mqim/json_read.h"
#include "mqim/json_write.h"
#include "mqim/name.h"

#define REQ_UP "mqim-up"
#define REQ_DOWN "mqim-down"

/* Two NUL-terminated strings are equal (freestanding: no strcmp). */
static bool str_same(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    return la == lb && memcmp(a, b, la) == 0;
}

static void copy_str(char *dst, size_t cap, mqim_str_t s)
{
    size_t n = s.len < cap - 1u ? s.len : cap - 1u;
    if (n > 0u) {
        memcpy(dst, s.ptr, n);
    }
    dst[n] = '\0';
}

static uint64_t num(const mqim_json_value_t *o, const char *key)
{
    mqim_json_value_t v;
    int64_t n = 0;
    if (mqim_json_find(o, key, &v) != MQIM_OK || mqim_json_int(&v, &n) != MQIM_OK || n < 0) {
        return 0u;
    }
    return (uint64_t)n;
}

static bool flag(const mqim_json_value_t *o, const char *key)
{
    mqim_json_value_t v;
    return mqim_json_find(o, key, &v) == MQIM_OK && v.type == MQIM_JSON_TRUE;
}

/* A string member into buf (NUL-terminated); empty when absent or too long. */
static mqim_str_t text(const mqim_json_value_t *o, const char *key, char *buf, size_t cap)
{
    mqim_json_value_t v;
    mqim_str_t out = { 0, 0 };
    buf[0] = '\0';
    if (mqim_json_find(o, key, &v) == MQIM_OK && v.type == MQIM_JSON_STRING &&
        mqim_json_string(&v, buf, cap - 1u, &out) == MQIM_OK) {
        buf[out.len] = '\0';
        return out;
    }
    /* A value too long for buf fails after writing a part of it: without
     * this the caller's strlen ran past buf (found by fuzz_file_transfer). */
    buf[0] = '\0';
    return (mqim_str_t){ buf, 0 };
}

/* Parse a response; true when it is ours (its "req" is `req`). */
static bool ours(mqim_str_t json, const char *req, mqim_json_value_t *root)
{
    mqim_json_value_t v;
    return mqim_json_parse(json, MQIM_JSON_DEPTH_MAX, root) == MQIM_OK && root->type == MQIM_JSON_OBJECT &&
           mqim_json_find(root, "req", &v) == MQIM_OK && mqim_json_string_eq(&v, req);
}

/* The status a failed response names (its code_num), and its reason. */
static mqim_status_t response_error(const mqim_json_value_t *root, char *reason, size_t cap)
{
    uint64_t code = num(root, "code_num");
    (void)text(root, "reason", reason, cap);
    return code != 0u ? (mqim_status_t)code : MQIM_INTERNAL;
}

static mqim_status_t send_request(mqim_client_t *c, char *req, mqim_json_writer_t *w)
{
    size_t len = 0;
    mqim_status_t st = mqim_json_finish(w, &len);
    if (st == MQIM_OK) {
        st = mqim_client_file_request(c, (mqim_str_t){ req, len });
    }
    return st;
}

/* ---- upload ---- */

mqim_status_t mqim_file_upload_start(mqim_file_upload_t *u, mqim_client_t *c, mqim_str_t upload_id,
                                     mqim_str_t name, mqim_str_t mime, uint64_t size,
                                     mqim_file_read_fn read, void *read_ctx)
{
    mqim_sha256_t sha;
    uint8_t digest[MQIM_SHA256_LEN];
    mqim_status_t st;
    if (u == 0 || c == 0 || read == 0 || size == 0u) {
        return MQIM_BAD_PARAMETER;
    }
    st = upload_id.len == 0u ? MQIM_OK : mqim_id_check(upload_id);
    if (st == MQIM_OK) {
        st = mqim_file_name_check(name);
    }
    if (st == MQIM_OK && mime.len > 0u) {
        st = mqim_file_mime_check(mime);
    }
    if (st != MQIM_OK) {
        return st;
    }
    memset(u, 0, sizeof(*u));
    u->client = c;
    u->read = read;
    u->read_ctx = read_ctx;
    u->size = size;
    copy_str(u->upload_id, sizeof(u->upload_id), upload_id);
    copy_str(u->name, sizeof(u->name), name);
    copy_str(u->mime, sizeof(u->mime), mime);
    mqim_sha256_init(&sha);
    for (uint64_t off = 0; off < size;) {
        size_t want = size - off < sizeof(u->buf) ? (size_t)(size - off) : sizeof(u->buf);
        size_t got = read(read_ctx, off, u->buf, want);
        if (got != want) {
            return MQIM_TRANSPORT_ERROR;
        }
        mqim_sha256_update(&sha, u->buf, got);
        off += got;
    }
    mqim_sha256_final(&sha, digest);
    mqim_sha256_hex(digest, u->sha256);
    u->sha256[MQIM_SHA256_HEX_LEN] = '\0';
    if (u->upload_id[0] == '\0') {
        /* From the content: the same file resumes the same upload. */
        u->upload_id[0] = 'f';
        memcpy(u->upload_id + 1, u->sha256, 40u);
        u->upload_id[41] = '\0';
    }
    u->state = MQIM_XFER_RUNNING;
    return MQIM_OK;
}

static void upload_fail(mqim_file_upload_t *u, mqim_status_t st)
{
    u->state = MQIM_XFER_FAILED;
    u->error = st;
}

static mqim_status_t upload_begin(mqim_file_upload_t *u)
{
    mqim_json_writer_t w;
    mqim_json_init(&w, u->req, sizeof(u->req));
    mqim_json_object_begin(&w);
    mqim_json_key_str(&w, "op", MQIM_STR("file_begin"));
    mqim_json_key_str(&w, "req", MQIM_STR(REQ_UP));
    mqim_json_key_str(&w, "upload", mqim_str_from_cstr(u->upload_id));
    mqim_json_key_str(&w, "name", mqim_str_from_cstr(u->name));
    if (u->mime[0] != '\0') {
        mqim_json_key_str(&w, "mime", mqim_str_from_cstr(u->mime));
    }
    mqim_json_key_u64(&w, "size", u->size);
    mqim_json_key_str(&w, "sha256", mqim_str_from_cstr(u->sha256));
    mqim_json_key_u64(&w, "chunk", MQIM_CFG_FILE_CHUNK_SIZE);
    mqim_json_object_end(&w);
    return send_request(u->client, u->req, &w);
}

static mqim_status_t upload_chunk(mqim_file_upload_t *u)
{
    mqim_json_writer_t w;
    char *b64;
    size_t want = u->size - u->next < u->chunk ? (size_t)(u->size - u->next) : u->chunk;
    size_t got, b64_len = 0, head;
    mqim_status_t st;
    if (want > sizeof(u->buf)) {
        return MQIM_BUFFER_TOO_SMALL;
    }
    got = u->read(u->read_ctx, u->next, u->buf, want);
    if (got != want) {
        return MQIM_TRANSPORT_ERROR;
    }
    /* The base64 goes straight into the request, after its head. */
    mqim_json_init(&w, u->req, sizeof(u->req));
    mqim_json_object_begin(&w);
    mqim_json_key_str(&w, "op", MQIM_STR("file_put"));
    mqim_json_key_str(&w, "req", MQIM_STR(REQ_UP));
    mqim_json_key_str(&w, "file", mqim_str_from_cstr(u->file_id));
    mqim_json_key_u64(&w, "offset", u->next);
    mqim_json_object_end(&w);
    st = mqim_json_finish(&w, &head);
    if (st != MQIM_OK) {
        return st;
    }
    head -= 1u; /* drop the closing brace */
    b64 = u->req + head + 9u; /* ,"data":" */
    if (head + 9u + MQIM_BASE64_LEN(got) + 3u > sizeof(u->req)) {
        return MQIM_BUFFER_TOO_SMALL;
    }
    memcpy(u->req + head, ",\"data\":\"", 9u);
    st = mqim_base64_encode(u->buf, got, b64, sizeof(u->req) - head - 9u, &b64_len);
    if (st != MQIM_OK) {
        return st;
    }
    memcpy(b64 + b64_len, "\"}", 2u);
    st = mqim_client_file_request(u->client, (mqim_str_t){ u->req, head + 9u + b64_len + 2u });
    if (st == MQIM_OK) {
        u->next += got;
    }
    return st;
}

void mqim_file_upload_step(mqim_file_upload_t *u, uint32_t now_ms)
{
    bool connected;
    if (u == 0 || u->state != MQIM_XFER_RUNNING) {
        return;
    }
    connected = mqim_client_connected(u->client);
    if (!connected) {
        u->was_connected = false;
        return;
    }
    if (!u->was_connected || now_ms - u->last_activity_ms > MQIM_CFG_FILE_STALL_MS ||
        (u->begun && u->outstanding == 0u && u->next >= u->size)) {
        /* New link, no progress for a while, or everything sent and not
         * complete: ask where the gateway stands. */
        u->was_connected = true;
        u->begun = false;
        u->outstanding = 0;
        if (upload_begin(u) == MQIM_OK) {
            u->outstanding = 1;
            u->last_activity_ms = now_ms;
        }
        return;
    }
    if (!u->begun) {
        if (u->outstanding == 0u && upload_begin(u) == MQIM_OK) {
            u->outstanding = 1;
            u->last_activity_ms = now_ms;
        }
        return;
    }
    while (u->outstanding < MQIM_CFG_FILE_WINDOW && u->next < u->size) {
        mqim_status_t st = upload_chunk(u);
        if (st == MQIM_INFLIGHT_FULL) {
            break; /* back-pressure: the next step goes on */
        }
        if (st == MQIM_TRANSPORT_ERROR || st == MQIM_BUFFER_TOO_SMALL) {
            upload_fail(u, st);
            return;
        }
        if (st != MQIM_OK) {
            break;
        }
        u->outstanding++;
    }
}

bool mqim_file_upload_on_response(mqim_file_upload_t *u, mqim_str_t json)
{
    mqim_json_value_t root, v;
    char op[16], id[MQIM_ID_MAX + 2];
    if (u == 0 || u->state != MQIM_XFER_RUNNING || !ours(json, REQ_UP, &root)) {
        return false;
    }
    u->outstanding = u->outstanding > 0u ? u->outstanding - 1u : 0u;
    (void)text(&root, "op", op, sizeof(op));
    if (mqim_json_find(&root, "ok", &v) != MQIM_OK || v.type != MQIM_JSON_TRUE) {
        mqim_status_t code = response_error(&root, u->reason, sizeof(u->reason));
        if (code == MQIM_FILE_OFFSET && str_same(op, "file_put")) {
            u->begun = false; /* a chunk was lost on the way: resynchronise with file_begin */
            u->outstanding = 0;
        } else {
            upload_fail(u, code);
        }
        return true;
    }
    (void)text(&root, "file", id, sizeof(id));
    if (str_same(op, "file_begin")) {
        uint64_t chunk = num(&root, "chunk");
        uint64_t have = num(&root, "have");
        if (mqim_id_check(mqim_str_from_cstr(id)) != MQIM_OK || chunk == 0u || chunk > sizeof(u->buf) ||
            have > u->size) {
            upload_fail(u, MQIM_BAD_REQUEST);
            return true;
        }
        copy_str(u->file_id, sizeof(u->file_id), mqim_str_from_cstr(id));
        u->chunk = (uint32_t)chunk;
        u->have = have;
        u->next = u->have;
        u->begun = true;
        u->outstanding = 0;
        u->last_activity_ms = mqim_client_now(u->client);
    } else if (!u->begun || !str_same(id, u->file_id)) {
        /* Not about the file this upload is sending (or before its
         * file_begin was answered): neither progress nor completion. A
         * response without "file" matched the empty id of an upload not
         * begun yet, and its "have" went past the size (fuzz_file_transfer). */
        return true;
    } else {
        uint64_t have = num(&root, "have");
        if (have > u->size) {
            upload_fail(u, MQIM_BAD_REQUEST);
            return true;
        }
        if (have > u->have) {
            u->have = have;
            u->last_activity_ms = mqim_client_now(u->client); /* progress */
        }
    }
    if (flag(&root, "complete")) {
        u->have = u->size;
        u->state = MQIM_XFER_DONE;
    }
    return true;
}

/* ---- download ---- */

mqim_status_t mqim_file_download_start(mqim_file_download_t *d, mqim_client_t *c, mqim_str_t file_id,
                                       mqim_file_write_fn write, void *write_ctx)
{
    mqim_status_t st;
    if (d == 0 || c == 0 || write == 0) {
        return MQIM_BAD_PARAMETER;
    }
    st = mqim_id_check(file_id);
    if (st != MQIM_OK) {
        return st;
    }
    memset(d, 0, sizeof(*d));
    d->client = c;
    d->write = write;
    d->write_ctx = write_ctx;
    copy_str(d->file_id, sizeof(d->file_id), file_id);
    mqim_sha256_init(&d->hash);
    d->state = MQIM_XFER_RUNNING;
    return MQIM_OK;
}

void mqim_file_download_hash_prefix(mqim_file_download_t *d, const uint8_t *data, size_t len)
{
    if (d != 0 && d->state == MQIM_XFER_RUNNING && data != 0) {
        mqim_sha256_update(&d->hash, data, len);
        d->received += len;
        d->next = d->received;
    }
}

static mqim_status_t download_request(mqim_file_download_t *d, const char *op)
{
    mqim_json_writer_t w;
    mqim_json_init(&w, d->req, sizeof(d->req));
    mqim_json_object_begin(&w);
    mqim_json_key_str(&w, "op", mqim_str_from_cstr(op));
    mqim_json_key_str(&w, "req", MQIM_STR(REQ_DOWN));
    mqim_json_key_str(&w, "file", mqim_str_from_cstr(d->file_id));
    if (str_same(op, "file_get")) {
        mqim_json_key_u64(&w, "offset", d->next);
        mqim_json_key_u64(&w, "len", MQIM_CFG_FILE_CHUNK_SIZE);
    }
    mqim_json_object_end(&w);
    return send_request(d->client, d->req, &w);
}

static void download_finish(mqim_file_download_t *d)
{
    uint8_t digest[MQIM_SHA256_LEN];
    char hex[MQIM_SHA256_HEX_LEN + 1];
    mqim_sha256_final(&d->hash, digest);
    mqim_sha256_hex(digest, hex);
    hex[MQIM_SHA256_HEX_LEN] = '\0';
    d->outstanding = 0;
    if (str_same(hex, d->sha256)) {
        d->state = MQIM_XFER_DONE;
    } else {
        d->state = MQIM_XFER_FAILED;
        d->error = MQIM_FILE_CORRUPT;
    }
}

void mqim_file_download_step(mqim_file_download_t *d, uint32_t now_ms)
{
    if (d == 0 || d->state != MQIM_XFER_RUNNING) {
        return;
    }
    if (!mqim_client_connected(d->client)) {
        d->was_connected = false;
        return;
    }
    if (!d->was_connected || now_ms - d->last_activity_ms > MQIM_CFG_FILE_STALL_MS ||
        (d->outstanding == 0u && d->next >= d->size && d->info && d->received < d->size)) {
        /* New link, no progress for a while (answers lost, or only answers
         * to earlier requests came), or everything asked and something
         * missing: ask again from the first byte not written. */
        d->was_connected = true;
        d->outstanding = 0;
        d->next = d->received;
        d->asked_info = d->info;
        d->last_activity_ms = now_ms;
    }
    if (!d->info) {
        if (!d->asked_info && download_request(d, "file_info") == MQIM_OK) {
            d->asked_info = true;
            d->outstanding = 1;
            d->last_activity_ms = now_ms;
        }
        return;
    }
    if (d->received == d->size) {
        download_finish(d);
        return;
    }
    while (d->outstanding < MQIM_CFG_FILE_WINDOW && d->next < d->size) {
        if (download_request(d, "file_get") != MQIM_OK) {
            break; /* in-flight table full or link gone: the next step goes on */
        }
        d->outstanding++;
        d->next += MQIM_CFG_FILE_CHUNK_SIZE;
    }
}

bool mqim_file_download_on_response(mqim_file_download_t *d, mqim_str_t json)
{
    mqim_json_value_t root, v;
    char op[16];
    if (d == 0 || d->state != MQIM_XFER_RUNNING || !ours(json, REQ_DOWN, &root)) {
        return false;
    }
    d->outstanding = d->outstanding > 0u ? d->outstanding - 1u : 0u;
    (void)text(&root, "op", op, sizeof(op));
    if (mqim_json_find(&root, "ok", &v) != MQIM_OK || v.type != MQIM_JSON_TRUE) {
        mqim_status_t code = response_error(&root, d->reason, sizeof(d->reason));
        if (code == MQIM_RATE_LIMITED) {
            d->next = d->received; /* ask again */
            d->outstanding = 0;
        } else {
            d->state = MQIM_XFER_FAILED;
            d->error = code;
        }
        return true;
    }
    if (str_same(op, "file_info")) {
        mqim_str_t sha = text(&root, "sha256", d->sha256, sizeof(d->sha256));
        d->size = num(&root, "size");
        if (mqim_file_sha256_check(sha) != MQIM_OK || !flag(&root, "complete") || d->received > d->size) {
            d->state = MQIM_XFER_FAILED;
            d->error = !flag(&root, "complete") ? MQIM_FILE_INCOMPLETE : MQIM_FILE_CORRUPT;
            return true;
        }
        d->info = true;
        d->outstanding = 0;
        d->last_activity_ms = mqim_client_now(d->client);
        return true;
    }
    if (str_same(op, "file_get") && num(&root, "offset") == d->received) {
        /* In order (the gateway answers in order); anything else is a
         * repeat from before a resend and is dropped. */
        mqim_json_value_t data;
        mqim_str_t b64;
        size_t n = 0;
        if (mqim_json_find(&root, "data", &data) != MQIM_OK || data.type != MQIM_JSON_STRING ||
            mqim_json_string(&data, d->req, sizeof(d->req), &b64) != MQIM_OK ||
            mqim_base64_decode(b64.ptr, b64.len, d->buf, sizeof(d->buf), &n) != MQIM_OK ||
            d->received + n > d->size || (n == 0u && d->received < d->size)) {
            d->state = MQIM_XFER_FAILED;
            d->error = MQIM_BAD_REQUEST;
            return true;
        }
        if (d->write(d->write_ctx, d->received, d->buf, n) != 0) {
            d->state = MQIM_XFER_FAILED;
            d->error = MQIM_TRANSPORT_ERROR;
            return true;
        }
        mqim_sha256_update(&d->hash, d->buf, n);
        d->received += n;
        d->last_activity_ms = mqim_client_now(d->client); /* progress */
        if (d->received == d->size) {
            download_finish(d);
        }
    }
    return true;
}
