/**
 * @file inflight.h
 * @brief The MQTT session's in-flight table: packet ids and the QoS 1/2
 *        state of every publish the client sent and every QoS 2 publish it
 *        received, in caller-owned arrays.
 *
 * Outgoing: QoS 1 waits for PUBACK; QoS 2 waits for PUBREC, then (after
 * PUBREL is sent) for PUBCOMP. When the table is full the caller must wait
 * (MQIM_INFLIGHT_FULL is back-pressure, not an error). After a reconnect of
 * a persistent session every entry is resent in its order: a publish again
 * with DUP set, a PUBREL again for entries past PUBREC [MQTT-4.4.0-1].
 *
 * Incoming QoS 2: the packet id is remembered from PUBLISH (delivered to the
 * application once) until PUBREL, so a redelivered PUBLISH with the same id
 * is acknowledged again but not delivered twice [MQTT-4.3.3-2].
 */
#ifndef MQIM_INFLIGHT_H
#define MQIM_INFLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqim/mqtt_codec.h"
#include "mqim/status.h"

typedef enum mqim_out_state {
    MQIM_OUT_FREE = 0,
    MQIM_OUT_WAIT_PUBACK,  /**< QoS 1 publish sent */
    MQIM_OUT_WAIT_PUBREC,  /**< QoS 2 publish sent */
    MQIM_OUT_WAIT_PUBCOMP  /**< QoS 2: PUBREC received, PUBREL sent */
} mqim_out_state_t;

typedef struct mqim_out_entry {
    uint16_t packet_id;
    uint8_t state;      /**< mqim_out_state_t */
    uint32_t outbox_key; /**< where the publish's bytes live, for a resend */
    uint32_t seq;        /**< send order, for resending in order */
} mqim_out_entry_t;

typedef struct mqim_inflight {
    mqim_out_entry_t *out;
    size_t out_cap;
    uint16_t *in_qos2;   /**< packet ids of received QoS 2 publishes awaiting PUBREL */
    size_t in_cap;
    size_t in_count;
    uint16_t last_id;
    uint32_t next_seq;
} mqim_inflight_t;

/** @return MQIM_OK, MQIM_BAD_PARAMETER (NULL arrays or zero capacities). */
mqim_status_t mqim_inflight_init(mqim_inflight_t *t, mqim_out_entry_t *out, size_t out_cap,
                                 uint16_t *in_qos2, size_t in_cap);

/**
 * Reserve an entry for a QoS 1/2 publish and pick its packet id (never 0,
 * never one in use, cycling so ids are not reused soon).
 * @return MQIM_OK, MQIM_INFLIGHT_FULL, MQIM_BAD_PARAMETER (qos not 1 or 2).
 */
mqim_status_t mqim_inflight_add(mqim_inflight_t *t, uint8_t qos, uint32_t outbox_key,
                                uint16_t *packet_id);

/**
 * Apply an ack the broker sent. PUBACK ends a QoS 1 entry; PUBREC moves a
 * QoS 2 entry to WAIT_PUBCOMP (the caller then sends PUBREL); PUBCOMP ends
 * it. *outbox_key tells which publish it was; *done is true when the entry
 * is finished.
 * @return MQIM_OK, MQIM_UNEXPECTED_ACK (no such id, or the wrong ack for its
 *         state: a protocol error by the peer), MQIM_BAD_PARAMETER.
 */
mqim_status_t mqim_inflight_ack(mqim_inflight_t *t, mqim_mqtt_type_t ack, uint16_t packet_id,
                                uint32_t *outbox_key, bool *done);

/** true when an outgoing publish in flight uses this packet id (SUBSCRIBE
 *  and UNSUBSCRIBE must pick another). */
bool mqim_inflight_id_in_use(const mqim_inflight_t *t, uint16_t packet_id);

/** Entries in flight now. */
size_t mqim_inflight_count(const mqim_inflight_t *t);

/**
 * The entry to resend after a reconnect that comes after `after_seq` in
 * send order (start with 0). @return true and the entry, or false when done.
 */
bool mqim_inflight_next_resend(const mqim_inflight_t *t, uint32_t after_seq,
                               mqim_out_entry_t *entry);

/** Forget all outgoing entries (a clean session, or the server had no session). */
void mqim_inflight_clear_out(mqim_inflight_t *t);

/**
 * A QoS 2 PUBLISH arrived with this id. *deliver is true the first time
 * (give it to the application), false for a redelivery; answer PUBREC in
 * both cases. @return MQIM_OK, MQIM_INFLIGHT_FULL (too many unreleased; do
 * not answer, the broker will resend), MQIM_BAD_PARAMETER.
 */
mqim_status_t mqim_inflight_qos2_received(mqim_inflight_t *t, uint16_t packet_id, bool *deliver);

/** PUBREL arrived: forget the id (answer PUBCOMP whether or not it was known). */
void mqim_inflight_qos2_released(mqim_inflight_t *t, uint16_t packet_id);

#endif /* MQIM_INFLIGHT_H */
