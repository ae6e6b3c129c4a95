/**
 * @file str.h
 * @brief Pointer + length strings. mqim never relies on NUL termination of
 *        input: topics and payloads arrive as byte ranges.
 */
#ifndef MQIM_STR_H
#define MQIM_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

typedef struct mqim_str {
    const char *ptr; /**< not NUL-terminated in general; NULL only when len == 0 */
    size_t len;
} mqim_str_t;

/** A string literal as an mqim_str_t: MQIM_STR("im"). */
#define MQIM_STR(lit) ((mqim_str_t){ (lit), sizeof(lit) - 1u })

static inline mqim_str_t mqim_str_from_cstr(const char *s)
{
    mqim_str_t r = { s, s != NULL ? strlen(s) : 0u };
    return r;
}

static inline bool mqim_str_eq(mqim_str_t a, mqim_str_t b)
{
    return a.len == b.len && (a.len == 0u || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static inline bool mqim_str_eq_cstr(mqim_str_t a, const char *b)
{
    return mqim_str_eq(a, mqim_str_from_cstr(b));
}

#endif /* MQIM_STR_H */
