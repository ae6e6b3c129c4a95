/* Per-user token buckets (ratelimit.c), and new limits at a reload. */
#include <string.h>

#include "mqim_check.h"
#include "ratelimit.h"

static unsigned take_n(mqim_ratelimit_t *rl, const char *user, unsigned n, int64_t now_ms)
{
    unsigned ok = 0;
    for (unsigned i = 0; i < n; i++) {
        ok += mqim_ratelimit_take(rl, mqim_str_from_cstr(user), now_ms) ? 1u : 0u;
    }
    return ok;
}

static void test_burst_then_rate(void)
{
    mqim_ratelimit_t *rl = mqim_ratelimit_new(10, 5, 64);
    CHECK(rl != NULL);
    CHECK_EQ_INT(take_n(rl, "alice", 8, 1000), 5);   /* the burst */
    CHECK_EQ_INT(take_n(rl, "bob", 5, 1000), 5);     /* a bucket per user */
    CHECK_EQ_INT(take_n(rl, "alice", 3, 1200), 2);   /* 10/s: 2 tokens in 200 ms */
    mqim_ratelimit_free(rl);
}

static void test_set_applies_to_existing_buckets(void)
{
    unsigned rate = 0, burst = 0;
    mqim_ratelimit_t *rl = mqim_ratelimit_new(1, 1, 64);
    CHECK_EQ_INT(take_n(rl, "alice", 3, 1000), 1);
    mqim_ratelimit_set(rl, 1000, 100);
    mqim_ratelimit_get(rl, &rate, &burst);
    CHECK_EQ_INT(rate, 1000);
    CHECK_EQ_INT(burst, 100);
    /* the empty bucket refills at the new rate, up to the new burst */
    CHECK_EQ_INT(take_n(rl, "alice", 150, 1200), 100);
    /* a lower burst caps what a full bucket holds at its next refill */
    mqim_ratelimit_set(rl, 1000, 3);
    CHECK_EQ_INT(take_n(rl, "alice", 10, 5000), 3);
    /* a new user starts with the new burst */
    CHECK_EQ_INT(take_n(rl, "carol", 10, 5000), 3);
    /* rate 0: no limit; burst 0 counts as 1 */
    mqim_ratelimit_set(rl, 0, 0);
    CHECK_EQ_INT(take_n(rl, "alice", 50, 5000), 50);
    mqim_ratelimit_get(rl, &rate, &burst);
    CHECK_EQ_INT(burst, 1);
    mqim_ratelimit_free(rl);
    mqim_ratelimit_get(NULL, &rate, &burst);
    CHECK_EQ_INT(rate, 0);
}

int main(void)
{
    test_burst_then_rate();
    test_set_applies_to_existing_buckets();
    return CHECK_REPORT();
}
