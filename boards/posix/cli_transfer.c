/* File transfers of the `mqim` command (cli.h): send-file and get-file,
 * also used by the chat's /file and /get. Both resume: the upload id comes
 * from the content, a download keeps its .part file. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static size_t file_read(void *ctx, uint64_t offset, uint8_t *buf, size_t len)
{
    ssize_t n = pread(*(int *)ctx, buf, len, (off_t)offset);
    return n < 0 ? 0u : (size_t)n;
}

static int file_write(void *ctx, uint64_t offset, const uint8_t *data, size_t len)
{
    ssize_t n = pwrite(*(int *)ctx, data, len, (off_t)offset);
    return n == (ssize_t)len ? 0 : -1;
}

void cli_transfer_close(cli_transfer_t *t)
{
    if (t->fd >= 0) {
        close(t->fd);
    }
    t->fd = -1;
    t->uploading = t->downloading = false;
}

/* Start an upload of path for peer (or the group); its file message is
 * queued when it completes. 0 or an exit code (printed). */
int cli_transfer_upload(cli_t *c, cli_transfer_t *t, const char *peer, bool group, const char *path,
                        const char *mime)
{
    struct stat sb;
    const char *base = strrchr(path, '/') != NULL ? strrchr(path, '/') + 1 : path;
    mqim_status_t st = MQIM_BAD_PARAMETER;
    memset(t, 0, sizeof(*t));
    t->fd = open(path, O_RDONLY);
    /* no upload id: the library derives it from the content, so sending
     * the same file again resumes the same upload */
    if (t->fd >= 0 && fstat(t->fd, &sb) == 0) {
        st = mqim_file_upload_start(&t->upload, &c->client, (mqim_str_t){ NULL, 0 }, mqim_str_from_cstr(base),
                                    mqim_str_from_cstr(mime != NULL ? mime : ""), (uint64_t)sb.st_size, file_read,
                                    &t->fd);
    }
    if (st != MQIM_OK) {
        fprintf(stderr, "mqim: cannot send %s: %s\n", path, t->fd < 0 ? strerror(errno) : mqim_status_str(st));
        cli_transfer_close(t);
        return MQIM_EXIT_FAILURE;
    }
    t->peer = peer;
    t->group = group;
    t->uploading = true;
    t->began_ms = mqim_posix_clock_ms(NULL);
    c->xfer = t;
    return 0;
}

/* Start fetching file_id into out (through out.part). 0 or an exit code. */
int cli_transfer_download(cli_t *c, cli_transfer_t *t, const char *file_id, const char *out)
{
    struct stat sb;
    uint8_t buf[16384];
    mqim_status_t st;
    memset(t, 0, sizeof(*t));
    snprintf(t->out, sizeof(t->out), "%s", out);
    snprintf(t->part, sizeof(t->part), "%s.part", out);
    t->fd = open(t->part, O_RDWR | O_CREAT, 0600);
    st = t->fd < 0 ? MQIM_BAD_PARAMETER
                   : mqim_file_download_start(&t->download, &c->client, mqim_str_from_cstr(file_id), file_write,
                                              &t->fd);
    if (st != MQIM_OK) {
        fprintf(stderr, "mqim: cannot get %s into %s: %s\n", file_id, t->part,
                t->fd < 0 ? strerror(errno) : mqim_status_str(st));
        cli_transfer_close(t);
        return MQIM_EXIT_FAILURE;
    }
    if (fstat(t->fd, &sb) == 0 && sb.st_size > 0) {
        /* an earlier run stopped here: hash what it wrote and go on */
        for (off_t off = 0; off < sb.st_size;) {
            ssize_t n = pread(t->fd, buf, sizeof(buf), off);
            if (n <= 0) {
                break;
            }
            mqim_file_download_hash_prefix(&t->download, buf, (size_t)n);
            off += n;
        }
        cli_say_resuming(c, "resuming at %llu bytes\n", t->download.received);
    }
    t->downloading = true;
    t->had = t->download.received;
    t->began_ms = mqim_posix_clock_ms(NULL);
    c->xfer = t;
    return 0;
}

static void human_size(double bytes, char *buf, size_t cap)
{
    if (bytes >= 1048576.0) {
        snprintf(buf, cap, "%.1f MB", bytes / 1048576.0);
    } else {
        snprintf(buf, cap, "%.0f KB", bytes / 1024.0);
    }
}

/* Progress: on a terminal one line redrawn in place (percent, rate, time
 * left) at most 10 times a second; on a pipe a line per 256 KiB, so a
 * script (or a test) sees a transfer advance. */
static void progress(const cli_t *c, cli_transfer_t *t, uint64_t now, uint64_t size)
{
    uint32_t ms = mqim_posix_clock_ms(NULL);
    if (c->json) {
        if (now / (256u * 1024u) != t->had / (256u * 1024u) && now < size) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "event", "progress");
            cJSON_AddNumberToObject(o, "bytes", (double)now);
            cJSON_AddNumberToObject(o, "size", (double)size);
            cli_json_line(o);
        }
    } else if (c->tty) {
        double secs = (double)(ms - t->began_ms) / 1000.0, rate = secs > 0.0 ? (double)now / secs : 0.0;
        char done[32], total[32], speed[32];
        if (ms - t->drawn_ms < 100u && now < size) {
            return;
        }
        t->drawn_ms = ms;
        human_size((double)now, done, sizeof(done));
        human_size((double)size, total, sizeof(total));
        human_size(rate, speed, sizeof(speed));
        printf("\r\033[K%3.0f%%  %s of %s  %s/s  %.0f s left%s", size > 0u ? 100.0 * (double)now / (double)size : 100.0,
               done, total, speed, rate > 0.0 ? (double)(size - now) / rate : 0.0, now >= size ? "\n" : "");
    } else if (now / (256u * 1024u) != t->had / (256u * 1024u) && now < size) {
        printf("progress %llu/%llu\n", (unsigned long long)now, (unsigned long long)size);
    }
    fflush(stdout);
}

static int upload_step(cli_t *c, cli_transfer_t *t)
{
    mqim_file_upload_t *u = &t->upload;
    mqim_file_upload_step(u, mqim_posix_clock_ms(NULL));
    if (u->begun && !t->said_resume) {
        t->said_resume = true;
        if (u->have > 0u) {
            cli_say_resuming(c, "resuming upload at %llu bytes\n", u->have);
        }
    }
    if (u->have != t->had) {
        c->start = mqim_posix_clock_ms(NULL); /* the timeout bounds a stall, not the transfer */
        progress(c, t, u->have, u->size);
        t->had = u->have;
    }
    if (u->state == MQIM_XFER_FAILED) {
        fprintf(stderr, "mqim: upload failed: %s (%s)\n", mqim_status_name(u->error), u->reason);
        return MQIM_EXIT_REJECTED;
    }
    if (u->state == MQIM_XFER_DONE && !t->queued) {
        uint32_t key;
        mqim_status_t st = mqim_client_send_file(&c->client, mqim_str_from_cstr(t->peer), t->group,
                                                 mqim_str_from_cstr(u->file_id), (mqim_str_t){ NULL, 0 }, &key);
        if (st != MQIM_OK) {
            fprintf(stderr, "mqim: cannot queue the file message: %s\n", mqim_status_str(st));
            return MQIM_EXIT_FAILURE;
        }
        if (c->json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "event", "uploaded");
            cJSON_AddStringToObject(o, "name", u->name);
            cJSON_AddNumberToObject(o, "size", (double)u->size);
            cJSON_AddStringToObject(o, "file", u->file_id);
            cli_json_line(o);
        } else {
            printf("uploaded %s (%llu bytes) file=%s\n", u->name, (unsigned long long)u->size, u->file_id);
        }
        fflush(stdout);
        t->queued = true;
    }
    return t->queued ? MQIM_EXIT_OK : CLI_MORE;
}

static int download_step(cli_t *c, cli_transfer_t *t)
{
    mqim_file_download_t *d = &t->download;
    mqim_file_download_step(d, mqim_posix_clock_ms(NULL));
    if (d->received != t->had) {
        c->start = mqim_posix_clock_ms(NULL);
        progress(c, t, d->received, d->size);
        t->had = d->received;
    }
    if (d->state == MQIM_XFER_FAILED) {
        fprintf(stderr, "mqim: download failed: %s%s%s\n", mqim_status_name(d->error), d->reason[0] != '\0' ? " " : "",
                d->reason);
        if (d->error == MQIM_FILE_CORRUPT || d->received == 0u) {
            (void)unlink(t->part); /* start over next time; leave no empty file */
        }
        return MQIM_EXIT_REJECTED;
    }
    if (d->state != MQIM_XFER_DONE) {
        return CLI_MORE;
    }
    if (rename(t->part, t->out) != 0) {
        fprintf(stderr, "mqim: cannot rename %s: %s\n", t->part, strerror(errno));
        return MQIM_EXIT_FAILURE;
    }
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "event", "saved");
        cJSON_AddStringToObject(o, "path", t->out);
        cJSON_AddNumberToObject(o, "size", (double)d->size);
        cJSON_AddStringToObject(o, "sha256", d->sha256);
        cli_json_line(o);
    } else {
        printf("saved %s (%llu bytes, sha256 %s ok)\n", t->out, (unsigned long long)d->size, d->sha256);
    }
    fflush(stdout);
    return MQIM_EXIT_OK;
}

/* One step of the transfer: CLI_MORE, MQIM_EXIT_OK when the upload's
 * message is queued or the download saved, or the failure's exit code. */
int cli_transfer_step(cli_t *c, cli_transfer_t *t)
{
    return t->uploading ? upload_step(c, t) : t->downloading ? download_step(c, t) : MQIM_EXIT_OK;
}

/* send-file: done when the file message is acked (outbox empty). */
static int send_file_step(cli_t *c, void *vctx)
{
    cli_transfer_t *t = vctx;
    int rc = cli_transfer_step(c, t);
    if (rc != MQIM_EXIT_OK) {
        return rc;
    }
    c->timeout_rc = MQIM_EXIT_PENDING; /* uploaded: now only the message waits */
    return mqim_client_connected(&c->client) && mqim_lmdb_outbox_count(c->store) == 0u ? MQIM_EXIT_OK : CLI_MORE;
}

static int get_file_step(cli_t *c, void *vctx)
{
    return cli_transfer_step(c, vctx);
}

static int run_transfer(cli_t *c, cli_transfer_t *t, cli_step_fn step)
{
    int rc;
    c->timeout_rc = MQIM_EXIT_TIMEOUT;
    rc = cli_loop(c, step, t);
    if (rc == MQIM_EXIT_TIMEOUT && (t->downloading || !t->queued)) {
        fprintf(stderr, "mqim: transfer stalled at %llu bytes; run the same command again to resume\n",
                (unsigned long long)(t->uploading ? t->upload.have : t->download.received));
    }
    cli_transfer_close(t);
    c->xfer = NULL;
    return rc;
}

int cli_cmd_send_file(cli_t *c, int argc, char **argv)
{
    cli_transfer_t *t;
    bool group = argc >= 1 && strcmp(argv[0], "--group") == 0;
    int first = group ? 1 : 0, rc;
    if (argc - first < 2 || argc - first > 3) {
        return CLI_BAD_ARGS;
    }
    if (!cli_name_ok(group ? MQIM_NAME_GROUP : MQIM_NAME_USER, argv[first])) {
        return MQIM_EXIT_USAGE;
    }
    if ((rc = cli_connect(c)) != 0) {
        return rc;
    }
    t = calloc(1, sizeof(*t)); /* the transfer's buffers are large */
    if (t == NULL) {
        return MQIM_EXIT_FAILURE;
    }
    rc = cli_transfer_upload(c, t, argv[first], group, argv[first + 1], argc - first == 3 ? argv[first + 2] : "");
    if (rc == 0) {
        rc = run_transfer(c, t, send_file_step);
    }
    free(t);
    return rc;
}

int cli_cmd_get_file(cli_t *c, int argc, char **argv)
{
    cli_transfer_t *t;
    int rc;
    if (argc != 2) {
        return CLI_BAD_ARGS;
    }
    if ((rc = cli_connect(c)) != 0) {
        return rc;
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return MQIM_EXIT_FAILURE;
    }
    rc = cli_transfer_download(c, t, argv[0], argv[1]);
    if (rc == 0) {
        rc = run_transfer(c, t, get_file_step);
    }
    free(t);
    return rc;
}
