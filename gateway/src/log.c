/* Levelled logs to stderr (log.h): one write per line so threads do not
 * interleave. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile int log_level = MQIM_LOG_INFO;

static const char *const level_names[] = { "ERROR", "WARN ", "INFO ", "DEBUG" };

void mqim_log_set_level(mqim_log_level_t level)
{
    log_level = (int)level;
}

mqim_log_level_t mqim_log_get_level(void)
{
    return (mqim_log_level_t)log_level;
}

int mqim_log_level_parse(const char *text)
{
    static const char *const names[] = { "error", "warn", "info", "debug" };
    for (int i = 0; text != NULL && i < 4; i++) {
        if (strcmp(text, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

void mqim_log(mqim_log_level_t level, const char *module, const char *fmt, ...)
{
    char line[1024];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int m;
    va_list ap;
    if ((int)level > log_level || (int)level < 0 || (int)level > 3) {
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    m = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s %s: ", ts.tv_nsec / 1000000L,
                 level_names[level], module);
    n += m > 0 ? (size_t)m : 0u;
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    n = m > 0 && (size_t)m < sizeof(line) - n ? n + (size_t)m : sizeof(line) - 2u;
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, n) < 0) {
        /* nowhere left to report it */
    }
}
