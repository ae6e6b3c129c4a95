/**
 * @file device_config_check.h
 * @brief Rejects impossible libmqim-device configurations at compile time.
 *        Included by device_config.h after the defaults.
 */
#ifndef MQIM_DEVICE_CONFIG_CHECK_H
#define MQIM_DEVICE_CONFIG_CHECK_H

#if MQIM_CFG_RX_BUFFER_SIZE < 128
#error "MQIM_CFG_RX_BUFFER_SIZE must be at least 128 bytes (a CONNACK, acks and small publishes)"
#endif
#if MQIM_CFG_TX_CONTROL_SIZE < 128
#error "MQIM_CFG_TX_CONTROL_SIZE must be at least 128 bytes (CONNECT with a will)"
#endif
#if MQIM_CFG_TX_BUFFER_SIZE < 128
#error "MQIM_CFG_TX_BUFFER_SIZE must be at least 128 bytes (CONNECT with a will)"
#endif
#if MQIM_CFG_INFLIGHT_MAX < 1 || MQIM_CFG_INFLIGHT_MAX > 65535
#error "MQIM_CFG_INFLIGHT_MAX must be 1..65535 (MQTT packet ids are 16 bits, 0 excluded)"
#endif
#if MQIM_CFG_INBOUND_QOS2_MAX < 1
#error "MQIM_CFG_INBOUND_QOS2_MAX must be at least 1"
#endif
#if MQIM_CFG_KEEPALIVE_S < 0 || MQIM_CFG_KEEPALIVE_S > 65535
#error "MQIM_CFG_KEEPALIVE_S must be 0..65535 (a 16-bit field in CONNECT)"
#endif
#if MQIM_CFG_KEEPALIVE_S > 0 && MQIM_CFG_PINGRESP_TIMEOUT_MS >= MQIM_CFG_KEEPALIVE_S * 1000
#error "MQIM_CFG_PINGRESP_TIMEOUT_MS must be shorter than the keep alive"
#endif
#if MQIM_CFG_OPEN_TIMEOUT_MS < 1
#error "MQIM_CFG_OPEN_TIMEOUT_MS must be at least 1 ms"
#endif
#if MQIM_CFG_BACKOFF_MIN_MS < 1 || MQIM_CFG_BACKOFF_MIN_MS > MQIM_CFG_BACKOFF_MAX_MS
#error "MQIM_CFG_BACKOFF_MIN_MS must be 1..MQIM_CFG_BACKOFF_MAX_MS"
#endif
#if MQIM_CFG_FILE_CHUNK_SIZE < 64 || MQIM_CFG_FILE_CHUNK_SIZE > 8192
#error "MQIM_CFG_FILE_CHUNK_SIZE must be 64..8192 (the gateway's chunk limit)"
#endif
#if (MQIM_CFG_FILE_CHUNK_SIZE + 2) / 3 * 4 + 200 > MQIM_CFG_TX_BUFFER_SIZE
#error "MQIM_CFG_FILE_CHUNK_SIZE: a chunk in base64 plus 200 bytes must fit MQIM_CFG_TX_BUFFER_SIZE"
#endif
#if (MQIM_CFG_FILE_CHUNK_SIZE + 2) / 3 * 4 + 200 > MQIM_CFG_RX_BUFFER_SIZE
#error "MQIM_CFG_FILE_CHUNK_SIZE: a chunk in base64 plus 200 bytes must fit MQIM_CFG_RX_BUFFER_SIZE"
#endif
#if MQIM_CFG_FILE_WINDOW < 1 || MQIM_CFG_FILE_WINDOW > MQIM_CFG_INFLIGHT_MAX
#error "MQIM_CFG_FILE_WINDOW must be 1..MQIM_CFG_INFLIGHT_MAX"
#endif
#if MQIM_CFG_E2E_RECIPIENTS_MAX < 1 || MQIM_CFG_E2E_RECIPIENTS_MAX > 64
#error "MQIM_CFG_E2E_RECIPIENTS_MAX must be 1..64 (the E2E format's limit, docs/e2e.md)"
#endif
#if MQIM_CFG_E2E_TEXT_MAX < 1 || MQIM_CFG_E2E_TEXT_MAX > 4096
#error "MQIM_CFG_E2E_TEXT_MAX must be 1..4096 (MQIM_BODY_MAX)"
#endif
#if (MQIM_CFG_E2E_TEXT_MAX + 18) / 3 * 4 + MQIM_CFG_E2E_RECIPIENTS_MAX * 110 + 400 > MQIM_CFG_TX_BUFFER_SIZE
#error "MQIM_CFG_E2E_TEXT_MAX and MQIM_CFG_E2E_RECIPIENTS_MAX: an encrypted message of that size must fit MQIM_CFG_TX_BUFFER_SIZE"
#endif
#if MQIM_CFG_OUTBOX_WINDOW < 1 || MQIM_CFG_OUTBOX_WINDOW > 65535
#error "MQIM_CFG_OUTBOX_WINDOW must be 1..65535"
#endif
#if MQIM_CFG_E2E_REPLAY_WINDOW < 1 || MQIM_CFG_E2E_REPLAY_WINDOW > 1024
#error "MQIM_CFG_E2E_REPLAY_WINDOW must be 1..1024"
#endif

#endif /* MQIM_DEVICE_CONFIG_CHECK_H */
