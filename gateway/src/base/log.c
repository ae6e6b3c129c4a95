/* Levelled logs to stderr (log.h):
 *   2026-11-24T20:12:35.123Z WARN  router: text
 * Each line is formatted into a stack buffer and handed to one write(2), so
 * lines of different threads never interleave. Lines longer than the buffer
 * are cut and end in "...". */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* At most PIPE_BUF (4096 on Linux): one write of a line to a pipe (systemd,
 * a supervisor, `2>&1 | tee`) is then atomic too. */
#define LOG_LINE_MAX 2048

/* Read on every call from any thread, written rarely: an atomic int (GCC and
 * clang builtins; the project is C99, so no <stdatomic.h>). */
static int log_level = MQIM_LOG_INFO;

static const char *const level_names[] = { "ERROR", "WARN ", "INFO ", "DEBUG" };
static const char *const level_words[] = { "error", "warn", "info", "debug" };

void mqim_log_set_level(mqim_log_level_t level)
{
    int l = (int)level;
    if (l < (int)MQIM_LOG_ERROR) {
        l = (int)MQIM_LOG_ERROR;
    } else if (l > (int)MQIM_LOG_DEBUG) {
        l = (int)MQIM_LOG_DEBUG;
    }
    __atomic_store_n(&log_level, l, __ATOMIC_RELAXED);
}

mqim_log_level_t mqim_log_get_level(void)
{
    return (mqim_log_level_t)__atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

int mqim_log_level_parse(const char *text)
{
    for (int i = 0; text != NULL && i < 4; i++) {
        if (strcmp(text, level_words[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* Account for what snprintf wrote at *n; keeps *n <= cap - 1 (room for the
 * NUL). Returns true when the output was cut. */
static bool advance(size_t cap, size_t *n, int wrote)
{
    if (wrote < 0) {
        return false;
    }
    if ((size_t)wrote >= cap - *n) {
        *n = cap - 1u;
        return true;
    }
    *n += (size_t)wrote;
    return false;
}

void mqim_log(mqim_log_level_t level, const char *module, const char *fmt, ...)
{
    char line[LOG_LINE_MAX];
    const size_t cap = sizeof(line) - 1u; /* keep one byte for the '\n' */
    struct timespec ts;
    struct tm tm;
    size_t n = 0;
    bool cut;
    va_list ap;
    int saved_errno = errno; /* callers may log and then look at errno */

    if ((int)level < (int)MQIM_LOG_ERROR || (int)level > (int)MQIM_LOG_DEBUG ||
        (int)level > __atomic_load_n(&log_level, __ATOMIC_RELAXED)) {
        return;
    }
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
        ts.tv_sec = 0;
        ts.tv_nsec = 0;
    }
    if (gmtime_r(&ts.tv_sec, &tm) != NULL) {
        n = strftime(line, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    }
    cut = advance(cap, &n,
                  snprintf(line + n, cap - n, ".%03ldZ %s %s: ", (long)(ts.tv_nsec / 1000000L),
                           level_names[level], module != NULL ? module : "-"));
    va_start(ap, fmt);
    if (!cut) {
        cut = advance(cap, &n, vsnprintf(line + n, cap - n, fmt, ap));
    }
    va_end(ap);
    if (cut && n >= 3u) {
        memcpy(line + n - 3u, "...", 3u); /* show that the line was cut */
    }
    while (n > 0u && line[n - 1u] == '\n') {
        n--; /* one newline, ours */
    }
    line[n++] = '\n';
    for (size_t off = 0; off < n;) {
        ssize_t w = write(STDERR_FILENO, line + off, n - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            break; /* nowhere left to report it */
        }
        off += (size_t)w;
    }
    errno = saved_errno;
}
