/**
 * @file file_meta.h
 * @brief The rules of a file's description (docs/protocol.md, "Files"):
 *        checked by the gateway when an upload begins and by the device's
 *        file transfer, not by the envelope decoder (the gateway writes
 *        every description devices receive).
 */
#ifndef MQIM_FILE_META_H
#define MQIM_FILE_META_H

#include "mqim/status.h"
#include "mqim/str.h"

/** 1..MQIM_FILE_NAME_MAX bytes, no control characters, '/' or '\\', not
 *  "." or "..": safe to show and to use as a file name on a host.
 *  @return MQIM_OK or MQIM_FIELD_RANGE. */
mqim_status_t mqim_file_name_check(mqim_str_t name);

/** A media type: type/subtype of [A-Za-z0-9!#$&^_.+-], 1..MQIM_MIME_MAX.
 *  @return MQIM_OK or MQIM_FIELD_RANGE. */
mqim_status_t mqim_file_mime_check(mqim_str_t mime);

/** MQIM_SHA256_HEX_LEN lowercase hex digits. @return MQIM_OK or MQIM_FIELD_RANGE. */
mqim_status_t mqim_file_sha256_check(mqim_str_t hex);

#endif /* MQIM_FILE_META_H */
