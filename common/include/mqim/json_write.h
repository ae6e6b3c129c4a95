/**
 * @file json_write.h
 * @brief A bounded JSON writer over a caller buffer: no allocation, counts
 *        the bytes it would need when the buffer runs out, so one pass with
 *        a NULL buffer is the size query.
 */
#ifndef MQIM_JSON_WRITE_H
#define MQIM_JSON_WRITE_H

#include <stdbool.h>
#include <stdint.h>

#include "mqim/status.h"
#include "mqim/str.h"

typedef struct mqim_json_writer {
    char *buf;     /**< may be NULL when cap == 0 */
    size_t cap;
    size_t len;    /**< bytes needed so far (may exceed cap) */
    bool need_comma;
} mqim_json_writer_t;

void mqim_json_init(mqim_json_writer_t *w, char *buf, size_t cap);
void mqim_json_object_begin(mqim_json_writer_t *w);
void mqim_json_object_end(mqim_json_writer_t *w);
/** Begin a nested object as the value of `key` inside an object. */
void mqim_json_object_begin_key(mqim_json_writer_t *w, const char *key);
void mqim_json_array_begin(mqim_json_writer_t *w, const char *key); /**< key NULL inside arrays */
void mqim_json_array_end(mqim_json_writer_t *w);
void mqim_json_key_str(mqim_json_writer_t *w, const char *key, mqim_str_t value);
void mqim_json_key_u64(mqim_json_writer_t *w, const char *key, uint64_t value);
void mqim_json_key_i64(mqim_json_writer_t *w, const char *key, int64_t value);
void mqim_json_key_bool(mqim_json_writer_t *w, const char *key, bool value);
/** Insert already-encoded JSON (e.g. an envelope) as a value; key NULL inside arrays. */
void mqim_json_key_raw(mqim_json_writer_t *w, const char *key, mqim_str_t json);
void mqim_json_value_u64(mqim_json_writer_t *w, uint64_t value); /**< array element */

/**
 * Finish: NUL-terminate. *out_len = bytes without the NUL (also when too small).
 * @return MQIM_OK or MQIM_BUFFER_TOO_SMALL (needs *out_len + 1 bytes).
 */
mqim_status_t mqim_json_finish(mqim_json_writer_t *w, size_t *out_len);

#endif /* MQIM_JSON_WRITE_H */
