/**
 * @file base64.h
 * @brief Base64 (RFC 4648, standard alphabet, padded) over caller buffers:
 *        file chunks travel inside JSON control messages.
 */
#ifndef MQIM_BASE64_H
#define MQIM_BASE64_H

#include <stddef.h>
#include <stdint.h>

#include "mqim/status.h"

/** Characters needed to encode len bytes. */
#define MQIM_BASE64_LEN(len) ((((len) + 2u) / 3u) * 4u)

/** Encode; *out_len = MQIM_BASE64_LEN(len), also on MQIM_BUFFER_TOO_SMALL. No NUL. */
mqim_status_t mqim_base64_encode(const uint8_t *in, size_t len, char *out, size_t cap, size_t *out_len);

/**
 * Decode padded base64 (length a multiple of 4, '=' only at the end).
 * @return MQIM_OK, MQIM_FIELD_TYPE (not base64), MQIM_BUFFER_TOO_SMALL
 *         (*out_len says the size), MQIM_BAD_PARAMETER.
 */
mqim_status_t mqim_base64_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len);

#endif /* MQIM_BASE64_H */
