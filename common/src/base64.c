/* Base64 (base64.h). */
#include <stdbool.h>

#include "mqim/base64.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

mqim_status_t mqim_base64_encode(const uint8_t *in, size_t len, char *out, size_t cap, size_t *out_len)
{
    size_t need = MQIM_BASE64_LEN(len), o = 0;
    if (out_len == 0 || (in == 0 && len > 0u) || (out == 0 && cap > 0u)) {
        return MQIM_BAD_PARAMETER;
    }
    *out_len = need;
    if (need > cap) {
        return MQIM_BUFFER_TOO_SMALL;
    }
    for (size_t i = 0; i < len; i += 3u) {
        uint32_t v = (uint32_t)in[i] << 16;
        size_t n = len - i < 3u ? len - i : 3u;
        if (n > 1u) {
            v |= (uint32_t)in[i + 1u] << 8;
        }
        if (n > 2u) {
            v |= in[i + 2u];
        }
        out[o++] = alphabet[(v >> 18) & 63u];
        out[o++] = alphabet[(v >> 12) & 63u];
        out[o++] = n > 1u ? alphabet[(v >> 6) & 63u] : '=';
        out[o++] = n > 2u ? alphabet[v & 63u] : '=';
    }
    return MQIM_OK;
}

static int value_of(char c)
{
    int v = -1;
    if (c >= 'A' && c <= 'Z') {
        v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
        v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
        v = c - '0' + 52;
    } else if (c == '+') {
        v = 62;
    } else if (c == '/') {
        v = 63;
    }
    return v;
}

mqim_status_t mqim_base64_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    size_t pad = 0, need, o = 0;
    if (out_len == 0 || (in == 0 && len > 0u) || (out == 0 && cap > 0u)) {
        return MQIM_BAD_PARAMETER;
    }
    *out_len = 0;
    if (len % 4u != 0u) {
        return MQIM_FIELD_TYPE;
    }
    if (len > 0u && in[len - 1u] == '=') {
        pad = (len > 1u && in[len - 2u] == '=') ? 2u : 1u;
    }
    need = len / 4u * 3u - pad;
    *out_len = need;
    if (need > cap) {
        return MQIM_BUFFER_TOO_SMALL;
    }
    for (size_t i = 0; i < len; i += 4u) {
        int v[4];
        bool last = i + 4u == len;
        for (unsigned k = 0; k < 4u; k++) {
            v[k] = value_of(in[i + k]);
            if (v[k] < 0 && !(last && in[i + k] == '=' && k >= 4u - pad)) {
                return MQIM_FIELD_TYPE;
            }
            if (v[k] < 0) {
                v[k] = 0;
            }
        }
        {
            uint32_t x = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12) | ((uint32_t)v[2] << 6) | (uint32_t)v[3];
            uint8_t b[3] = { (uint8_t)(x >> 16), (uint8_t)(x >> 8), (uint8_t)x };
            for (unsigned k = 0; k < 3u && o < need; k++) {
                out[o++] = b[k];
            }
        }
    }
    return MQIM_OK;
}
