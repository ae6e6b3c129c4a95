/**
 * @file exit_code.h
 * @brief The exit statuses of both programs, `mqim` and `mqim-gateway`:
 *        one table, so a script reads the same number the same way
 *        whichever program it ran (README.md, mqim(1), mqim-gateway(8)).
 *
 * 5 and 7-13 follow mosquitto_pub where it has a code (5: not authorised).
 * SPDX-License-Identifier: MIT
 */
#ifndef MQIM_EXIT_CODE_H
#define MQIM_EXIT_CODE_H

typedef enum mqim_exit_code {
    MQIM_EXIT_OK = 0,                 /**< done */
    MQIM_EXIT_FAILURE = 1,            /**< a local failure: a file, the state, the store */
    MQIM_EXIT_USAGE = 2,              /**< usage or configuration error: nothing was done */
    MQIM_EXIT_PENDING = 3,            /**< saved, not confirmed yet: a message stays queued in the
                                           outbox (mqim); a user change is saved but the broker
                                           was not told (mqim-gateway); it goes out later */
    MQIM_EXIT_REJECTED = 4,           /**< the gateway rejected the message, or a request failed */
    MQIM_EXIT_NOT_AUTHORISED = 5,     /**< CONNACK 5 (as mosquitto_pub) */
    MQIM_EXIT_TIMEOUT = 6,            /**< listen N, a request or a transfer timed out */
    MQIM_EXIT_BAD_CREDENTIALS = 7,    /**< CONNACK 4 */
    MQIM_EXIT_ID_REJECTED = 8,        /**< CONNACK 2 */
    MQIM_EXIT_BROKER_UNAVAILABLE = 9, /**< CONNACK 3 */
    MQIM_EXIT_PROTOCOL_VERSION = 10,  /**< CONNACK 1, or a code MQTT 3.1.1 does not define */
    MQIM_EXIT_UNREACHABLE = 11,       /**< no connection the whole run */
    MQIM_EXIT_TLS_VERIFY = 12,        /**< the broker's certificate failed verification */
    MQIM_EXIT_TLS_HANDSHAKE = 13      /**< the TLS handshake failed otherwise */
} mqim_exit_code_t;

#endif /* MQIM_EXIT_CODE_H */
