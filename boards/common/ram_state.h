/**
 * @file ram_state.h
 * @brief The device state port (mqim/state.h) in RAM, for the QEMU
 *        firmware: lost at reset, which the firmware tests accept (a real
 *        board keeps the state in flash). One instance; ctx is unused.
 */
#ifndef MQIM_FW_RAM_STATE_H
#define MQIM_FW_RAM_STATE_H

#include "mqim/state.h"

extern const mqim_state_ops_t fw_ram_state_ops;

#endif
