/**
 * @file name.h
 * @brief Validation of user, group and device names and message ids.
 */
#ifndef MQIM_NAME_H
#define MQIM_NAME_H

#include "mqim/status.h"
#include "mqim/str.h"

typedef enum mqim_name_kind {
    MQIM_NAME_USER,
    MQIM_NAME_GROUP,
    MQIM_NAME_DEVICE
} mqim_name_kind_t;

/**
 * Check a name: 1..64 (users, groups) or 1..32 (devices) characters of
 * [A-Za-z0-9_.-]. The character set excludes MQTT wildcards and '/', so a
 * valid name is always exactly one topic level.
 * @return MQIM_OK, MQIM_NAME_EMPTY, MQIM_NAME_TOO_LONG, MQIM_NAME_BAD_CHAR,
 *         MQIM_BAD_PARAMETER (unknown kind).
 */
mqim_status_t mqim_name_check(mqim_name_kind_t kind, mqim_str_t name);

/**
 * Check a sender-chosen message id: 1..64 characters of [A-Za-z0-9_-].
 * @return MQIM_OK, MQIM_ID_EMPTY, MQIM_ID_TOO_LONG, MQIM_ID_BAD_CHAR.
 */
mqim_status_t mqim_id_check(mqim_str_t id);

#endif /* MQIM_NAME_H */
