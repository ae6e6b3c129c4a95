/* Token buckets in a fixed open-addressing table (see ratelimit.h). */
#include "ratelimit.h"

#include <stdlib.h>
#include <string.h>

#include "mqim/limits.h"

typedef struct bucket {
    char user[MQIM_USER_NAME_MAX];
    uint8_t len;     /* 0 = free slot */
    double tokens;
    int64_t last_ms; /* last refill; also the LRU clock */
} bucket_t;

/* rate and burst: atomic (GCC/clang builtins, the project is C99), since a
 * reload sets them from the main thread while the router thread reads them. */
struct mqim_ratelimit {
    unsigned rate, burst, slots;
    bucket_t *b;
};

mqim_ratelimit_t *mqim_ratelimit_new(unsigned rate_per_sec, unsigned burst, unsigned slots)
{
    mqim_ratelimit_t *rl = calloc(1, sizeof(*rl));
    if (rl == NULL) {
        return NULL;
    }
    rl->rate = rate_per_sec;
    rl->burst = burst > 0u ? burst : 1u;
    rl->slots = slots > 0u ? slots : 1024u;
    rl->b = calloc(rl->slots, sizeof(bucket_t));
    if (rl->b == NULL) {
        free(rl);
        return NULL;
    }
    return rl;
}

void mqim_ratelimit_set(mqim_ratelimit_t *rl, unsigned rate_per_sec, unsigned burst)
{
    if (rl != NULL) {
        __atomic_store_n(&rl->burst, burst > 0u ? burst : 1u, __ATOMIC_RELAXED);
        __atomic_store_n(&rl->rate, rate_per_sec, __ATOMIC_RELAXED);
    }
}

void mqim_ratelimit_get(const mqim_ratelimit_t *rl, unsigned *rate_per_sec, unsigned *burst)
{
    *rate_per_sec = rl != NULL ? __atomic_load_n(&rl->rate, __ATOMIC_RELAXED) : 0u;
    *burst = rl != NULL ? __atomic_load_n(&rl->burst, __ATOMIC_RELAXED) : 0u;
}

void mqim_ratelimit_free(mqim_ratelimit_t *rl)
{
    if (rl != NULL) {
        free(rl->b);
        free(rl);
    }
}

static uint32_t hash_name(mqim_str_t s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < s.len; i++) {
        h = (h ^ (unsigned char)s.ptr[i]) * 16777619u;
    }
    return h;
}

/* Probe at most 8 slots: the bucket for this user, else a free one, else the
 * stalest one in the probe window (its user simply starts with a full bucket). */
static bucket_t *find_bucket(mqim_ratelimit_t *rl, mqim_str_t user, int64_t now_ms)
{
    uint32_t h = hash_name(user);
    bucket_t *victim = NULL;
    for (unsigned i = 0; i < 8u; i++) {
        bucket_t *b = &rl->b[(h + i) % rl->slots];
        if (b->len == user.len && memcmp(b->user, user.ptr, user.len) == 0) {
            return b;
        }
        if (b->len == 0u) {
            victim = b;
            break;
        }
        if (victim == NULL || b->last_ms < victim->last_ms) {
            victim = b;
        }
    }
    memcpy(victim->user, user.ptr, user.len);
    victim->len = (uint8_t)user.len;
    victim->tokens = (double)__atomic_load_n(&rl->burst, __ATOMIC_RELAXED);
    victim->last_ms = now_ms;
    return victim;
}

bool mqim_ratelimit_take(mqim_ratelimit_t *rl, mqim_str_t user, int64_t now_ms)
{
    bucket_t *b;
    unsigned rate, burst;
    mqim_ratelimit_get(rl, &rate, &burst);
    if (rl == NULL || rate == 0u || user.len == 0u || user.len > MQIM_USER_NAME_MAX) {
        return true;
    }
    b = find_bucket(rl, user, now_ms);
    if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * rate / 1000.0;
        if (b->tokens > burst) {
            b->tokens = burst;
        }
        b->last_ms = now_ms;
    }
    if (b->tokens < 1.0) {
        return false;
    }
    b->tokens -= 1.0;
    return true;
}
