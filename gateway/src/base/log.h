/**
 * @file log.h
 * @brief Levelled logs to stderr: "2026-11-24T20:12:35.123Z WARN  router: text".
 *        Thread-safe (one fprintf per line). Never log passwords or bodies
 *        at INFO or above.
 */
#ifndef MQIM_GW_LOG_H
#define MQIM_GW_LOG_H

typedef enum mqim_log_level {
    MQIM_LOG_ERROR = 0,
    MQIM_LOG_WARN = 1,
    MQIM_LOG_INFO = 2,
    MQIM_LOG_DEBUG = 3
} mqim_log_level_t;

void mqim_log_set_level(mqim_log_level_t level);
mqim_log_level_t mqim_log_get_level(void);

/** Parse "error|warn|info|debug"; returns -1 when unknown. */
int mqim_log_level_parse(const char *text);

void mqim_log(mqim_log_level_t level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define MQIM_LOGE(mod, ...) mqim_log(MQIM_LOG_ERROR, (mod), __VA_ARGS__)
#define MQIM_LOGW(mod, ...) mqim_log(MQIM_LOG_WARN, (mod), __VA_ARGS__)
#define MQIM_LOGI(mod, ...) mqim_log(MQIM_LOG_INFO, (mod), __VA_ARGS__)
#define MQIM_LOGD(mod, ...)                                                          \
    do {                                                                             \
        if (mqim_log_get_level() >= MQIM_LOG_DEBUG) mqim_log(MQIM_LOG_DEBUG, (mod), __VA_ARGS__); \
    } while (0)

#endif /* MQIM_GW_LOG_H */
