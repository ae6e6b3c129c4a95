/* Shared by the client-stack benchmarks (stack_*.c, bench/stacks.py): the
 * command line, the clock, the CPU of this process, the report.
 *
 *   stack_X pub --port P --count N --window W --topic T
 *       connect, then publish N QoS 1 messages (100-byte bodies) keeping at
 *       most W without PUBACK; the gateway's outbound direction.
 *   stack_X sub --port P --count N --topic T
 *       connect, subscribe to T at QoS 1, print "ready", then receive N
 *       publishes and PUBACK each; the gateway's inbound direction (the
 *       driver starts a feeder after "ready").
 * Prints one JSON line: the stack, the direction, seconds and CPU seconds
 * (user + system, every thread) from the first publish (pub) or from
 * "ready" (sub) until the last PUBACK / message. Exit 0 when all N were
 * acknowledged / received, 1 otherwise (timeout: 60 s without progress).
 */
#ifndef MQIM_BENCH_STACK_COMMON_H
#define MQIM_BENCH_STACK_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define STACK_BODY_LEN 100

typedef struct stack_args {
    int pub;              /* 1: pub, 0: sub */
    int port;
    long count;
    int window;
    const char *topic;
} stack_args_t;

static inline long long stack_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline double stack_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

static inline void stack_parse(int argc, char **argv, stack_args_t *a)
{
    a->port = 1883;
    a->count = 20000;
    a->window = 100;
    a->topic = "bench/stack";
    if (argc < 2 || (strcmp(argv[1], "pub") != 0 && strcmp(argv[1], "sub") != 0)) {
        fprintf(stderr, "usage: %s pub|sub --port P --count N --window W --topic T\n", argv[0]);
        exit(2);
    }
    a->pub = strcmp(argv[1], "pub") == 0;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port")) {
            a->port = atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--count")) {
            a->count = atol(argv[i + 1]);
        } else if (!strcmp(argv[i], "--window")) {
            a->window = atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--topic")) {
            a->topic = argv[i + 1];
        } else {
            fprintf(stderr, "%s: unknown option %s\n", argv[0], argv[i]);
            exit(2);
        }
    }
}

/* The payload of message i: the same 100-byte body as mqim_load's. */
static inline int stack_payload(char *buf, size_t cap, long i)
{
    return snprintf(buf, cap, "{\"id\":\"s%ld\",\"body\":\"%-*s\"}", i, STACK_BODY_LEN, "benchmark message body");
}

static inline void stack_ready(void)
{
    printf("ready\n");
    fflush(stdout);
}

static inline int stack_report(const char *stack, const stack_args_t *a, long done, long long t0, double cpu0)
{
    printf("{\"stack\":\"%s\",\"dir\":\"%s\",\"count\":%ld,\"done\":%ld,\"window\":%d,\"seconds\":%.3f,"
           "\"cpu_s\":%.4f}\n",
           stack, a->pub ? "pub" : "sub", a->count, done, a->window, (double)(stack_mono_ns() - t0) / 1e9,
           stack_cpu_s() - cpu0);
    fflush(stdout);
    return done == a->count ? 0 : 1;
}

#endif
