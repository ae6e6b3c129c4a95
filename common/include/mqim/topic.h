/**
 * @file topic.h
 * @brief The mqim topic scheme (docs/protocol.md): build and parse every topic.
 *
 * Device writes: {root}/u/{me}/out/dm/{peer}, out/group/{group}, out/receipt,
 *                out/ctl, out/file, out/status/{device}, out/key
 * Gateway writes: {root}/u/{user}/in/msg, in/ack, in/res,
 *                 {root}/presence/{user}, {root}/keys/{user},
 *                 {root}/gateway/status, {root}/gateway/stats
 *
 * The root is configurable ("im" by default): 1..32 characters, one or more
 * topic levels, no wildcards, no empty level.
 */
#ifndef MQIM_TOPIC_H
#define MQIM_TOPIC_H

#include "mqim/status.h"
#include "mqim/str.h"

typedef enum mqim_topic_kind {
    MQIM_TOPIC_OUT_DM,         /**< user = sender, name = peer */
    MQIM_TOPIC_OUT_GROUP,      /**< user = sender, name = group */
    MQIM_TOPIC_OUT_RECEIPT,    /**< user */
    MQIM_TOPIC_OUT_CTL,        /**< user */
    MQIM_TOPIC_OUT_STATUS,     /**< user, name = device */
    MQIM_TOPIC_OUT_KEY,        /**< user */
    MQIM_TOPIC_IN_MSG,         /**< user */
    MQIM_TOPIC_IN_ACK,         /**< user */
    MQIM_TOPIC_IN_RES,         /**< user */
    MQIM_TOPIC_PRESENCE,       /**< user */
    MQIM_TOPIC_KEYS,           /**< user */
    MQIM_TOPIC_GATEWAY_STATUS, /**< no names */
    MQIM_TOPIC_GATEWAY_STATS,  /**< no names */
    MQIM_TOPIC_OUT_FILE,       /**< user: file transfer requests (own rate budget) */
    MQIM_TOPIC_KIND_COUNT_
} mqim_topic_kind_t;

/** A parsed topic. Strings point into the parsed topic text. */
typedef struct mqim_topic {
    mqim_topic_kind_t kind;
    mqim_str_t user; /**< empty for gateway topics */
    mqim_str_t name; /**< peer, group or device; empty when the kind has none */
} mqim_topic_t;

/**
 * Check a topic root.
 * @return MQIM_OK, MQIM_BAD_PARAMETER (empty, too long, wildcard, empty level).
 */
mqim_status_t mqim_topic_root_check(mqim_str_t root);

/**
 * Parse a topic of the scheme. Names are validated with mqim_name_check().
 * @return MQIM_OK, MQIM_BAD_PARAMETER (NULL out or bad root),
 *         MQIM_TOPIC_TOO_LONG, MQIM_TOPIC_BAD_ROOT, MQIM_TOPIC_UNKNOWN,
 *         MQIM_NAME_EMPTY, MQIM_NAME_TOO_LONG, MQIM_NAME_BAD_CHAR.
 */
mqim_status_t mqim_topic_parse(mqim_str_t root, mqim_str_t topic, mqim_topic_t *out);

/**
 * Build a topic. `user` and `name` are used as the kind requires (ignored
 * otherwise) and validated. The output is NUL-terminated: the call needs
 * len + 1 bytes of `buf`. `*out_len` always receives len (the size the topic
 * needs without the NUL), also when the buffer is too small, so
 * buf = NULL, cap = 0 is a size query.
 * @return MQIM_OK, MQIM_BUFFER_TOO_SMALL, MQIM_BAD_PARAMETER (bad kind, bad
 *         root, NULL out_len), MQIM_NAME_EMPTY, MQIM_NAME_TOO_LONG,
 *         MQIM_NAME_BAD_CHAR.
 */
mqim_status_t mqim_topic_build(mqim_str_t root, mqim_topic_kind_t kind,
                               mqim_str_t user, mqim_str_t name,
                               char *buf, size_t cap, size_t *out_len);

#endif /* MQIM_TOPIC_H */
