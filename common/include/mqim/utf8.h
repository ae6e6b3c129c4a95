/**
 * @file utf8.h
 * @brief Strict UTF-8 validation (RFC 3629), defined in common/src/utf8.c.
 */
#ifndef MQIM_UTF8_H
#define MQIM_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/** true when the bytes are well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool mqim_utf8_valid(const char *s, size_t len);

#endif /* MQIM_UTF8_H */
