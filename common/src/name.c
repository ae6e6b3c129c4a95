/* Name and id validation (name.h). */
#include "mqim/limits.h"
#include "mqim/name.h"

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

mqim_status_t mqim_name_check(mqim_name_kind_t kind, mqim_str_t name)
{
    size_t max = 0;
    mqim_status_t st = MQIM_OK;
    if (kind == MQIM_NAME_USER) {
        max = MQIM_USER_NAME_MAX;
    } else if (kind == MQIM_NAME_GROUP) {
        max = MQIM_GROUP_NAME_MAX;
    } else if (kind == MQIM_NAME_DEVICE) {
        max = MQIM_DEVICE_NAME_MAX;
    } else {
        st = MQIM_BAD_PARAMETER;
    }
    if (st != MQIM_OK) {
        /* keep the kind error */
    } else if (name.len == 0u || name.ptr == 0) {
        st = MQIM_NAME_EMPTY;
    } else if (name.len > max) {
        st = MQIM_NAME_TOO_LONG;
    } else {
        /* The set excludes '/', '+', '#' and NUL, so a valid name is exactly
         * one topic level and can never act as a wildcard. */
        for (size_t i = 0; i < name.len; i++) {
            char c = name.ptr[i];
            if (!is_alnum(c) && c != '_' && c != '.' && c != '-') {
                st = MQIM_NAME_BAD_CHAR;
                break;
            }
        }
    }
    return st;
}

mqim_status_t mqim_id_check(mqim_str_t id)
{
    mqim_status_t st = MQIM_OK;
    if (id.len == 0u || id.ptr == 0) {
        st = MQIM_ID_EMPTY;
    } else if (id.len > MQIM_ID_MAX) {
        st = MQIM_ID_TOO_LONG;
    } else {
        for (size_t i = 0; i < id.len; i++) {
            char c = id.ptr[i];
            if (!is_alnum(c) && c != '_' && c != '-') {
                st = MQIM_ID_BAD_CHAR;
                break;
            }
        }
    }
    return st;
}
