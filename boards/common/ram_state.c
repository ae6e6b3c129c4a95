/* The device state in RAM (ram_state.h): the firmware's stand-in for a
 * state kept in flash. */
#include "ram_state.h"

static mqim_device_state_t ram_state;

static mqim_status_t ram_state_load(void *ctx, mqim_device_state_t *s)
{
    (void)ctx;
    *s = ram_state;
    return MQIM_OK;
}

static mqim_status_t ram_state_save(void *ctx, const mqim_device_state_t *s)
{
    (void)ctx;
    ram_state = *s;
    return MQIM_OK;
}

const mqim_state_ops_t fw_ram_state_ops = { ram_state_load, ram_state_save };
