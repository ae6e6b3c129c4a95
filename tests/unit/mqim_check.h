/* A tiny test harness: CHECK macros count failures and print where they
 * happened; main() returns CHECK_REPORT() (nonzero when anything failed). */
#ifndef MQIM_CHECK_H
#define MQIM_CHECK_H

#include <stdio.h>
#include <string.h>

static int mqim_check_failures;
static int mqim_check_count;

#define CHECK(cond)                                                               \
    do {                                                                          \
        mqim_check_count++;                                                       \
        if (!(cond)) {                                                            \
            mqim_check_failures++;                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                         \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                        \
    do {                                                                          \
        long long a_ = (long long)(a), b_ = (long long)(b);                       \
        mqim_check_count++;                                                       \
        if (a_ != b_) {                                                           \
            mqim_check_failures++;                                                \
            fprintf(stderr, "%s:%d: CHECK_EQ_INT failed: %s == %lld, expected %s == %lld\n", \
                    __FILE__, __LINE__, #a, a_, #b, b_);                          \
        }                                                                         \
    } while (0)

/* Compare a pointer + length against a C string. */
#define CHECK_EQ_STR(mem, len, cstr)                                              \
    do {                                                                          \
        size_t l_ = (size_t)(len);                                                \
        const char *e_ = (cstr);                                                  \
        mqim_check_count++;                                                       \
        if (l_ != strlen(e_) || memcmp((mem), e_, l_) != 0) {                     \
            mqim_check_failures++;                                                \
            fprintf(stderr, "%s:%d: CHECK_EQ_STR failed: got \"%.*s\", expected \"%s\"\n", \
                    __FILE__, __LINE__, (int)l_, (const char *)(mem), e_);        \
        }                                                                         \
    } while (0)

#define CHECK_REPORT()                                                            \
    (fprintf(stderr, "%d checks, %d failed\n", mqim_check_count, mqim_check_failures), \
     mqim_check_failures != 0)

#endif /* MQIM_CHECK_H */
