/* Fuzz target: the device's file-transfer response parser. The input is a
 * control response as the gateway would send it (any bytes); it is fed to a
 * running upload and a running download, each several times so state built
 * by one response (a file id, a size) meets the next. Whatever arrives, the
 * transfers must stay within their buffers and end in a defined state. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mqim/file_transfer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static mqim_client_t client; /* only its clock is used by the response path */
static mqim_file_upload_t up;
static mqim_file_download_t down;
static const uint8_t content[3000] = { 1, 2, 3 };

static uint32_t fake_clock(void *ctx)
{
    (void)ctx;
    return 1000u;
}

static size_t read_content(void *ctx, uint64_t offset, uint8_t *buf, size_t len)
{
    (void)ctx;
    if (offset > sizeof(content) || len > sizeof(content) - offset) {
        return 0u;
    }
    memcpy(buf, content + offset, len);
    return len;
}

static int write_nowhere(void *ctx, uint64_t offset, const uint8_t *buf, size_t len)
{
    (void)ctx;
    (void)buf;
    return offset + len > (1u << 30) ? -1 : 0;
}

/* Fill the stack below us with non-zero bytes, so a parser that leaves a
 * local buffer unterminated reads past it under ASan whatever compiler laid
 * out the frame (the replay with gcc missed the seed long_op_crash, where a
 * too-long "op" left op[] without its NUL, until this). */
static void __attribute__((noinline)) paint_stack(void)
{
    volatile char junk[16384];
    for (size_t i = 0; i < sizeof(junk); i++) {
        junk[i] = 'x';
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mqim_str_t json = { (const char *)data, size };
    paint_stack();
    client.cfg.clock = fake_clock;
    if (mqim_file_upload_start(&up, &client, MQIM_STR("u1"), MQIM_STR("f.bin"), MQIM_STR(""),
                               sizeof(content), read_content, NULL) != MQIM_OK ||
        mqim_file_download_start(&down, &client, MQIM_STR("01JF"), write_nowhere, NULL) != MQIM_OK) {
        abort();
    }
    for (int i = 0; i < 3; i++) {
        (void)mqim_file_upload_on_response(&up, json);
        (void)mqim_file_download_on_response(&down, json);
    }
    if (up.have > up.size || (down.info && down.received > down.size) || up.chunk > sizeof(up.buf)) {
        abort();
    }
    return 0;
}
