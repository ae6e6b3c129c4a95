/* libmqim-device options for this board (via MQIM_DEVICE_CONFIG_FILE):
 * the defaults, except a short keep alive so a dropped link is noticed in
 * seconds, and a quick backoff for the tests. */
#ifndef MQIM_BOARD_CONFIG_H
#define MQIM_BOARD_CONFIG_H

#define MQIM_CFG_KEEPALIVE_S 5
#define MQIM_CFG_PINGRESP_TIMEOUT_MS 3000
#define MQIM_CFG_BACKOFF_MIN_MS 500
#define MQIM_CFG_BACKOFF_MAX_MS 4000

#endif /* MQIM_BOARD_CONFIG_H */
