/* Fuzz target: the flash outbox opening an arbitrary flash image (what a
 * power cut, a bit flip or a firmware of another version could leave).
 *
 * Input: byte 0: program unit (1, 2, 4, 8, 16: byte % 5), byte 1: pages
 * (2..9), byte 2: page size (128, 256, 512: byte % 3); the rest is the
 * image, from page 0 on, 0xFF past its end. Then: open, read every entry
 * (keys strictly increasing, lengths within the page, count not below
 * what peek finds), put three records, remove the first of them, open
 * again: the other two are there with their bytes, after every entry that
 * was there before, and no unit was programmed twice or outside the
 * region (flash_sim.h counts violations). Anything else aborts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/flash_sim.h"
#include "mqim/flash_outbox.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static flash_sim_t sim;
static mqim_flash_outbox_t ob;
static mqim_flash_page_t pages[16];

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_flash_outbox: %s\n", what);
        abort();
    }
}

/* Every entry in order; returns the count and the highest key. */
static uint32_t read_all(uint32_t *max_key)
{
    static uint8_t buf[1024];
    uint32_t key = 0, n = 0;
    size_t len = 0;
    mqim_status_t st;
    while ((st = mqim_flash_outbox_peek(&ob, key, &key, buf, sizeof(buf), &len)) == MQIM_OK) {
        check(key > *max_key, "keys out of order");
        check(len <= mqim_flash_outbox_max_record(&ob), "record longer than a page holds");
        *max_key = key;
        n++;
    }
    check(st == MQIM_NOT_FOUND, "peek failed");
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint32_t units[] = { 1, 2, 4, 8, 16 }, sizes[] = { 128, 256, 512 };
    mqim_flash_t region;
    uint32_t max_key = 0, n, keys[3], after;
    uint8_t rec[3][40];
    if (size < 3u) {
        return 0;
    }
    flash_sim_init(&sim, sizes[data[2] % 3u], 2u + data[1] % 8u, units[data[0] % 5u], 1);
    memcpy(sim.mem, data + 3, size - 3u < sim.page_size * sim.page_count ? size - 3u
                                                                         : sim.page_size * sim.page_count);
    region = flash_sim_region(&sim);
    check(mqim_flash_outbox_open(&ob, &region, pages) == MQIM_OK, "open failed");
    n = read_all(&max_key);
    /* An image never written by the outbox can hold one key twice (a page
     * copied under another page's header): peek returns it once, count
     * counts both, remove takes one at a time. */
    check(n <= ob.count, "count below the entries");
    after = max_key;
    for (int i = 0; i < 3; i++) {
        memset(rec[i], 'a' + i, sizeof(rec[i]));
        keys[i] = 0;
        if (mqim_flash_outbox_put(&ob, rec[i], sizeof(rec[i]), &keys[i]) != MQIM_OK) {
            keys[i] = 0; /* full: what the image holds leaves no room */
        } else {
            check(keys[i] > after, "a new key not above the old ones");
            after = keys[i];
        }
    }
    if (keys[0] != 0u) {
        check(mqim_flash_outbox_remove(&ob, keys[0]) == MQIM_OK, "remove failed");
    }
    check(mqim_flash_outbox_open(&ob, &region, pages) == MQIM_OK, "reopen failed");
    for (int i = 1; i < 3; i++) {
        uint8_t buf[64];
        uint32_t key = 0;
        size_t len = 0;
        if (keys[i] == 0u) {
            continue;
        }
        check(mqim_flash_outbox_peek(&ob, keys[i] - 1u, &key, buf, sizeof(buf), &len) == MQIM_OK &&
                  key == keys[i] && len == sizeof(rec[i]) && memcmp(buf, rec[i], len) == 0,
              "a record put is not there after a reopen");
    }
    if (keys[0] != 0u) {
        uint8_t buf[64];
        uint32_t key = 0;
        size_t len = 0;
        check(mqim_flash_outbox_peek(&ob, keys[0] - 1u, &key, buf, sizeof(buf), &len) != MQIM_OK ||
                  key != keys[0],
              "a removed record came back");
    }
    max_key = 0;
    (void)read_all(&max_key);
    check(sim.violations == 0u, "a unit programmed twice, or outside the region");
    return 0;
}
