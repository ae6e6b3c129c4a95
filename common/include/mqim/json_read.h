/**
 * @file json_read.h
 * @brief A strict JSON reader that allocates nothing: values are spans of
 *        the caller's text, strings are unescaped into caller buffers only
 *        when asked. Input is pointer + length and need not be NUL-terminated.
 *
 * Strict means RFC 8259: no trailing commas, no comments, no leading zeros
 * or '+' in numbers, no control characters in strings, escapes \" \\ \/ \b
 * \f \n \r \t \uXXXX with surrogates in pairs, and the raw bytes of every
 * string valid UTF-8. Nesting is counted in containers ({"a":[1]} has depth
 * 2) and limited to a caller's maximum of at most MQIM_JSON_READ_DEPTH_MAX;
 * scanning uses a bit stack, not recursion, so stack use is constant.
 *
 * Typical use:
 *   mqim_json_value_t root, v;
 *   st = mqim_json_parse(text, MQIM_JSON_DEPTH_MAX, &root);   // validates all
 *   st = mqim_json_find(&root, "seq", &v);                     // v.type ABSENT if missing
 *   st = mqim_json_int(&v, &seq);
 */
#ifndef MQIM_JSON_READ_H
#define MQIM_JSON_READ_H

#include <stdbool.h>
#include <stdint.h>

#include "mqim/status.h"
#include "mqim/str.h"

/** The deepest nesting the reader can track (bits in its container stack). */
#define MQIM_JSON_READ_DEPTH_MAX 32

typedef enum mqim_json_type {
    MQIM_JSON_ABSENT = 0, /**< mqim_json_find found no such member */
    MQIM_JSON_STRING,
    MQIM_JSON_NUMBER,
    MQIM_JSON_TRUE,
    MQIM_JSON_FALSE,
    MQIM_JSON_NULL,
    MQIM_JSON_OBJECT,
    MQIM_JSON_ARRAY
} mqim_json_type_t;

/** A value: its type and its text. For strings, the text between the
 *  quotes with escapes still in; for containers, from '{' or '[' to the
 *  matching bracket; for numbers and literals, the token. */
typedef struct mqim_json_value {
    mqim_json_type_t type;
    mqim_str_t text;
    int depth_left; /**< nesting still allowed inside (set by the reader) */
} mqim_json_value_t;

/** Walks the members of an object or the elements of an array. */
typedef struct mqim_json_iter {
    const char *p;   /**< the container's text */
    size_t len;
    size_t pos;      /**< next byte to read */
    int depth_left;  /**< nesting allowed below the members */
    bool object;
    bool done;
} mqim_json_iter_t;

/**
 * Validate a whole document (one value, whitespace around it) and return its
 * root value.
 * @return MQIM_OK, MQIM_BAD_PARAMETER (NULL text with len > 0, NULL out,
 *         max_depth outside 1..MQIM_JSON_READ_DEPTH_MAX), MQIM_JSON_MALFORMED
 *         (syntax, including text that ends early), MQIM_JSON_TOO_DEEP,
 *         MQIM_UTF8_INVALID (raw string bytes).
 */
mqim_status_t mqim_json_parse(mqim_str_t text, int max_depth, mqim_json_value_t *root);

/**
 * Start walking an object or an array (a value from the reader, or any
 * object text: members are validated one by one as the walk reaches them,
 * so the text may be unvalidated or cut short).
 * @return MQIM_OK, MQIM_BAD_PARAMETER, MQIM_FIELD_TYPE (not a container).
 */
mqim_status_t mqim_json_iter_begin(mqim_json_iter_t *it, const mqim_json_value_t *container);

/**
 * The next member. For arrays, *key gets type MQIM_JSON_ABSENT; key may be
 * NULL. @return MQIM_OK (a member), MQIM_NOT_FOUND (no more members),
 * MQIM_JSON_TRUNCATED (the text ends inside the container: every member
 * returned before it was complete), MQIM_JSON_MALFORMED, MQIM_JSON_TOO_DEEP,
 * MQIM_UTF8_INVALID.
 */
mqim_status_t mqim_json_iter_next(mqim_json_iter_t *it, mqim_json_value_t *key, mqim_json_value_t *val);

/**
 * The first member of an object named `key` (compared after unescaping).
 * *val has type MQIM_JSON_ABSENT when there is none.
 * @return MQIM_OK (found or absent), MQIM_FIELD_TYPE (obj is not an object),
 *         the iterator's errors.
 */
mqim_status_t mqim_json_find(const mqim_json_value_t *obj, const char *key, mqim_json_value_t *val);

/**
 * Unescape a string value into buf as UTF-8 (not NUL-terminated; \u0000
 * becomes a zero byte). An output never outgrows the value's text, so
 * v->text.len bytes are always enough. *out points into buf.
 * @return MQIM_OK, MQIM_FIELD_TYPE (not a string), MQIM_BUFFER_TOO_SMALL,
 *         MQIM_BAD_PARAMETER.
 */
mqim_status_t mqim_json_string(const mqim_json_value_t *v, char *buf, size_t cap, mqim_str_t *out);

/** true when v is a string equal, after unescaping, to the C string s. */
bool mqim_json_string_eq(const mqim_json_value_t *v, const char *s);

/**
 * An integer in -2^53..2^53 written without fraction or exponent ("12",
 * "-3"; "1.0" and "1e3" are out of range: mqim's integers are counters).
 * @return MQIM_OK, MQIM_FIELD_TYPE (not a number), MQIM_FIELD_RANGE.
 */
mqim_status_t mqim_json_int(const mqim_json_value_t *v, int64_t *out);

#endif /* MQIM_JSON_READ_H */
