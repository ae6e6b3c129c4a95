/* mqim-outbox-dump DIR: print a device's LMDB state and outbox, for humans
 * debugging a device ("what is still unsent, and what does it remember"). */
#include <ctype.h>
#include <stdio.h>

#include "mqim_posix_lmdb.h"

int main(int argc, char **argv)
{
    mqim_lmdb_store_t *s = NULL;
    mqim_device_state_t st;
    static uint8_t buf[1 << 20];
    uint32_t key = 0;
    size_t len = 0, n = 0;
    if (argc != 2) {
        fprintf(stderr, "usage: %s STATE_DIR\n", argv[0]);
        return 2;
    }
    if (mqim_lmdb_store_open(argv[1], 0, &s) != MQIM_OK) {
        fprintf(stderr, "mqim-outbox-dump: cannot open %s\n", argv[1]);
        return 1;
    }
    if (mqim_lmdb_state_ops.load(s, &st) == MQIM_OK) {
        printf("epoch\t%u\nlast_seq\t%llu\n", st.epoch, (unsigned long long)st.last_seq);
    }
    printf("outbox\t%zu entries\n", mqim_lmdb_outbox_count(s));
    while (mqim_lmdb_outbox_ops.peek(s, key, &key, buf, sizeof(buf), &len) == MQIM_OK) {
        printf("%u\t%zu bytes\t", key, len);
        for (size_t i = 0; i < len && i < 120u; i++) {
            putchar(isprint(buf[i]) ? buf[i] : '.');
        }
        putchar('\n');
        n++;
    }
    mqim_lmdb_store_close(s);
    return 0;
}
