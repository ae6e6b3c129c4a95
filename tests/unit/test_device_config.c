/* The configuration headers: defaults are consistent and overridable. The
 * compile-time rejections are checked by the config_check.* ctest entries,
 * which compile this header with impossible values and must fail. */
#include "mqim/device_config.h"
#include "mqim/ports.h"
#include "mqim_check.h"

int main(void)
{
    CHECK(MQIM_CFG_RX_BUFFER_SIZE >= 128);
    CHECK(MQIM_CFG_INFLIGHT_MAX >= 1);
    CHECK(MQIM_CFG_PINGRESP_TIMEOUT_MS < MQIM_CFG_KEEPALIVE_S * 1000);
    CHECK(MQIM_CFG_BACKOFF_MIN_MS <= MQIM_CFG_BACKOFF_MAX_MS);
    CHECK_EQ_INT(MQIM_CFG_TX_BUFFER_SIZE, OVERRIDDEN_TX); /* -D on the command line wins */
    return CHECK_REPORT();
}
