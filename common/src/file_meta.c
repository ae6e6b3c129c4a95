/* The rules of a file's description (file_meta.h). */
#include "mqim/file_meta.h"

#include "mqim/limits.h"
#include "mqim/sha256.h"

/* A file name is shown and may become a file name on a host: no path
 * separators, no control characters, not "." or "..". */
mqim_status_t mqim_file_name_check(mqim_str_t name)
{
    mqim_status_t st = MQIM_OK;
    if (name.len == 0u || name.len > MQIM_FILE_NAME_MAX || mqim_str_eq_cstr(name, ".") ||
        mqim_str_eq_cstr(name, "..")) {
        st = MQIM_FIELD_RANGE;
    } else {
        for (size_t i = 0; i < name.len; i++) {
            unsigned char c = (unsigned char)name.ptr[i];
            if (c < 0x20u || c == 0x7fu || c == '/' || c == '\\') {
                st = MQIM_FIELD_RANGE;
                break;
            }
        }
    }
    return st;
}

mqim_status_t mqim_file_mime_check(mqim_str_t mime)
{
    mqim_status_t st = MQIM_OK;
    size_t slashes = 0;
    if (mime.len == 0u || mime.len > MQIM_MIME_MAX || mime.ptr[0] == '/' ||
        mime.ptr[mime.len - 1u] == '/') {
        st = MQIM_FIELD_RANGE;
    } else {
        for (size_t i = 0; i < mime.len; i++) {
            char c = mime.ptr[i];
            bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '!' || c == '#' || c == '$' || c == '&' || c == '^' || c == '_' ||
                      c == '.' || c == '+' || c == '-' || c == '/';
            slashes += c == '/' ? 1u : 0u;
            if (!ok) {
                st = MQIM_FIELD_RANGE;
                break;
            }
        }
        if (st == MQIM_OK && slashes != 1u) {
            st = MQIM_FIELD_RANGE;
        }
    }
    return st;
}

mqim_status_t mqim_file_sha256_check(mqim_str_t hex)
{
    mqim_status_t st = hex.len == MQIM_SHA256_HEX_LEN ? MQIM_OK : MQIM_FIELD_RANGE;
    for (size_t i = 0; st == MQIM_OK && i < hex.len; i++) {
        char c = hex.ptr[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            st = MQIM_FIELD_RANGE;
        }
    }
    return st;
}
