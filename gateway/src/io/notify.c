/* systemd notifications through libsystemd's sd_notify (notify.h). */
#include "notify.h"

#include <stdio.h>
#include <time.h>

#ifdef MQIM_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

void mqim_notify(const char *state)
{
#ifdef MQIM_HAVE_SYSTEMD
    /* unset_environment 0: the watchdog and later notifications still need
     * NOTIFY_SOCKET; a failure (no systemd) has no one to report to. */
    (void)sd_notify(0, state);
#else
    (void)state;
#endif
}

void mqim_notify_reloading(void)
{
    char buf[64];
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(buf, sizeof(buf), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000ull);
    mqim_notify(buf);
}

int64_t mqim_notify_watchdog_interval_ms(void)
{
#ifdef MQIM_HAVE_SYSTEMD
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0u) {
        /* half the interval, as sd_watchdog_enabled(3) recommends */
        int64_t ms = (int64_t)(usec / 2000u);
        return ms > 0 ? ms : 1;
    }
#endif
    return 0;
}

void mqim_notify_watchdog(int64_t interval_ms, int64_t *last_ms)
{
    struct timespec ts;
    int64_t now_ms;
    if (interval_ms <= 0) {
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &ts);
    now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (*last_ms == 0 || now_ms - *last_ms >= interval_ms) {
        *last_ms = now_ms;
        mqim_notify("WATCHDOG=1");
    }
}
