/* Strict UTF-8 validation (RFC 3629): no overlongs, no surrogates, nothing
 * above U+10FFFF. JSON we emit must be valid UTF-8, and so must anything we
 * store and hand to other devices. */
#include "mqim/utf8.h"

bool mqim_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    if (len > 0u && s == 0) {
        return false;
    }
    while (i < len) {
        unsigned c = p[i];
        size_t need;
        unsigned cp, min;
        if (c < 0x80u) {
            i++;
            continue;
        }
        if (c >= 0xC2u && c <= 0xDFu) {
            need = 1u;
            cp = c & 0x1Fu;
            min = 0x80u;
        } else if (c >= 0xE0u && c <= 0xEFu) {
            need = 2u;
            cp = c & 0x0Fu;
            min = 0x800u;
        } else if (c >= 0xF0u && c <= 0xF4u) {
            need = 3u;
            cp = c & 0x07u;
            min = 0x10000u;
        } else {
            return false; /* continuation byte first, or 0xC0/0xC1/0xF5.. */
        }
        if (len - i <= need) {
            return false; /* truncated */
        }
        for (size_t k = 1; k <= need; k++) {
            unsigned cc = p[i + k];
            if ((cc & 0xC0u) != 0x80u) {
                return false;
            }
            cp = (cp << 6) | (cc & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFFu || (cp >= 0xD800u && cp <= 0xDFFFu)) {
            return false;
        }
        i += need + 1u;
    }
    return true;
}
