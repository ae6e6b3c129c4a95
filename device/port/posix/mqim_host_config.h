/**
 * @file mqim_host_config.h
 * @brief libmqim-device options for Linux hosts (the `mqim` CLI), used
 *        through -DMQIM_DEVICE_CONFIG_FILE, the way a board overrides the
 *        defaults of device_config.h.
 *
 * A host has memory to spare, so its buffers take anything the gateway can
 * send: an envelope with the largest body (MQIM_BODY_MAX bytes, up to six
 * times that once escaped) and history pages of many such messages. The
 * defaults stay sized for microcontrollers.
 */
#ifndef MQIM_HOST_CONFIG_H
#define MQIM_HOST_CONFIG_H

#define MQIM_CFG_RX_BUFFER_SIZE (256u * 1024u)
#define MQIM_CFG_TX_BUFFER_SIZE (32u * 1024u)
/* CONNECT with a long password (a token) fits; publishes never go through it. */
#define MQIM_CFG_TX_CONTROL_SIZE 4096u
#define MQIM_CFG_INFLIGHT_MAX 32
/* file transfers on a host: more requests in flight hide the round trips */
#define MQIM_CFG_FILE_WINDOW 16
/* end-to-end encryption: the largest body, groups of many devices */
#define MQIM_CFG_E2E_RECIPIENTS_MAX 64
#define MQIM_CFG_E2E_TEXT_MAX 4096
#define MQIM_CFG_E2E_REPLAY_WINDOW 64

#endif /* MQIM_HOST_CONFIG_H */
