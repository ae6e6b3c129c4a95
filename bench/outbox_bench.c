/* outbox_bench [N] [DIR]: the device outbox, synced LMDB (POSIX port) and
 * the RAM ring: N enqueues of a 160-byte record (a DM envelope), then N
 * removes in key order (the `sent` acks), each a separate operation as the
 * library does them. Prints one JSON object of operations per second. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mqim/outbox.h"
#include "mqim_posix_lmdb.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run(const mqim_outbox_ops_t *ops, void *ctx, long n, double *put_s, double *rm_s)
{
    uint8_t rec[160];
    uint32_t first = 0, key = 0;
    double t0;
    memset(rec, 'x', sizeof(rec));
    t0 = now_s();
    for (long i = 0; i < n; i++) {
        if (ops->put(ctx, rec, sizeof(rec), &key) != MQIM_OK) {
            fprintf(stderr, "put %ld failed\n", i);
            return -1;
        }
        if (i == 0) {
            first = key;
        }
    }
    *put_s = now_s() - t0;
    t0 = now_s();
    for (long i = 0; i < n; i++) {
        if (ops->remove(ctx, first + (uint32_t)i) != MQIM_OK) {
            fprintf(stderr, "remove %ld failed\n", i);
            return -1;
        }
    }
    *rm_s = now_s() - t0;
    return 0;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 2000;
    char dir[256];
    mqim_lmdb_store_t *s;
    mqim_ram_outbox_t ram;
    static uint8_t ring[1 << 20];
    double lp, lr, rp, rr;
    long ram_n = 4000; /* the ring holds ~5000 records of 168 bytes */
    snprintf(dir, sizeof(dir), "%s", argc > 2 ? argv[2] : "/tmp/mqim-outbox-bench-XXXXXX");
    if (argc <= 2 && mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    if (mqim_lmdb_store_open(dir, 64u << 20, &s) != MQIM_OK) {
        fprintf(stderr, "cannot open %s\n", dir);
        return 2;
    }
    if (run(&mqim_lmdb_outbox_ops, s, n, &lp, &lr) != 0) {
        return 1;
    }
    mqim_lmdb_store_close(s);
    mqim_ram_outbox_init(&ram, ring, sizeof(ring));
    double rps = 0, rrs = 0;
    for (int rep = 0; rep < 100; rep++) {
        if (run(&mqim_ram_outbox_ops, &ram, ram_n, &rp, &rr) != 0) {
            return 1;
        }
        rps += rp;
        rrs += rr;
    }
    printf("{\"lmdb_n\":%ld,\"lmdb_put_per_s\":%.0f,\"lmdb_remove_per_s\":%.0f,"
           "\"ram_n\":%ld,\"ram_put_per_s\":%.0f,\"ram_remove_per_s\":%.0f}\n",
           n, (double)n / lp, (double)n / lr, ram_n * 100, (double)ram_n * 100 / rps,
           (double)ram_n * 100 / rrs);
    if (argc <= 2) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        if (system(cmd) != 0) {
            return 1;
        }
    }
    return 0;
}
