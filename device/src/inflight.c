/* In-flight table (inflight.h). Linear scans over small caller arrays: the
 * table holds tens of entries on a device, where a scan beats any index. */
#include "mqim/inflight.h"

mqim_status_t mqim_inflight_init(mqim_inflight_t *t, mqim_out_entry_t *out, size_t out_cap,
                                 uint16_t *in_qos2, size_t in_cap)
{
    if (t == 0 || out == 0 || out_cap == 0u || in_qos2 == 0 || in_cap == 0u || out_cap > 65535u) {
        return MQIM_BAD_PARAMETER;
    }
    t->out = out;
    t->out_cap = out_cap;
    t->in_qos2 = in_qos2;
    t->in_cap = in_cap;
    t->in_count = 0;
    t->last_id = 0;
    t->next_seq = 1;
    for (size_t i = 0; i < out_cap; i++) {
        out[i].state = MQIM_OUT_FREE;
        out[i].packet_id = 0;
    }
    return MQIM_OK;
}

static mqim_out_entry_t *find_out(const mqim_inflight_t *t, uint16_t packet_id)
{
    for (size_t i = 0; i < t->out_cap; i++) {
        if (t->out[i].state != MQIM_OUT_FREE && t->out[i].packet_id == packet_id) {
            return &t->out[i];
        }
    }
    return 0;
}

mqim_status_t mqim_inflight_add(mqim_inflight_t *t, uint8_t qos, uint32_t outbox_key,
                                uint16_t *packet_id)
{
    mqim_out_entry_t *slot = 0;
    uint16_t id;
    if (t == 0 || packet_id == 0 || (qos != 1u && qos != 2u)) {
        return MQIM_BAD_PARAMETER;
    }
    for (size_t i = 0; i < t->out_cap && slot == 0; i++) {
        if (t->out[i].state == MQIM_OUT_FREE) {
            slot = &t->out[i];
        }
    }
    if (slot == 0) {
        return MQIM_INFLIGHT_FULL;
    }
    /* The next id after the last one that is not in use (0 is not an id).
     * At most out_cap ids are in use, so this ends within out_cap + 1 steps. */
    id = t->last_id;
    do {
        id = (uint16_t)(id == 65535u ? 1u : id + 1u);
    } while (find_out(t, id) != 0);
    t->last_id = id;
    slot->packet_id = id;
    slot->state = qos == 1u ? MQIM_OUT_WAIT_PUBACK : MQIM_OUT_WAIT_PUBREC;
    slot->outbox_key = outbox_key;
    slot->seq = t->next_seq++;
    *packet_id = id;
    return MQIM_OK;
}

mqim_status_t mqim_inflight_ack(mqim_inflight_t *t, mqim_mqtt_type_t ack, uint16_t packet_id,
                                uint32_t *outbox_key, bool *done)
{
    mqim_out_entry_t *e;
    mqim_status_t st = MQIM_OK;
    if (t == 0 || outbox_key == 0 || done == 0) {
        return MQIM_BAD_PARAMETER;
    }
    *done = false;
    e = find_out(t, packet_id);
    if (e == 0) {
        return MQIM_UNEXPECTED_ACK;
    }
    *outbox_key = e->outbox_key;
    if (ack == MQIM_MQTT_PUBACK && e->state == MQIM_OUT_WAIT_PUBACK) {
        e->state = MQIM_OUT_FREE;
        *done = true;
    } else if (ack == MQIM_MQTT_PUBREC && e->state == MQIM_OUT_WAIT_PUBREC) {
        e->state = MQIM_OUT_WAIT_PUBCOMP;
    } else if (ack == MQIM_MQTT_PUBREC && e->state == MQIM_OUT_WAIT_PUBCOMP) {
        /* a repeated PUBREC (our PUBREL crossed it): answer PUBREL again */
    } else if (ack == MQIM_MQTT_PUBCOMP && e->state == MQIM_OUT_WAIT_PUBCOMP) {
        e->state = MQIM_OUT_FREE;
        *done = true;
    } else {
        st = MQIM_UNEXPECTED_ACK;
    }
    return st;
}

bool mqim_inflight_id_in_use(const mqim_inflight_t *t, uint16_t packet_id)
{
    return t != 0 && find_out(t, packet_id) != 0;
}

size_t mqim_inflight_count(const mqim_inflight_t *t)
{
    size_t n = 0;
    for (size_t i = 0; t != 0 && i < t->out_cap; i++) {
        n += t->out[i].state != MQIM_OUT_FREE ? 1u : 0u;
    }
    return n;
}

bool mqim_inflight_next_resend(const mqim_inflight_t *t, uint32_t after_seq,
                               mqim_out_entry_t *entry)
{
    const mqim_out_entry_t *best = 0;
    for (size_t i = 0; t != 0 && i < t->out_cap; i++) {
        const mqim_out_entry_t *e = &t->out[i];
        if (e->state != MQIM_OUT_FREE && e->seq > after_seq && (best == 0 || e->seq < best->seq)) {
            best = e;
        }
    }
    if (best != 0 && entry != 0) {
        *entry = *best;
    }
    return best != 0;
}

void mqim_inflight_clear_out(mqim_inflight_t *t)
{
    for (size_t i = 0; t != 0 && i < t->out_cap; i++) {
        t->out[i].state = MQIM_OUT_FREE;
    }
}

mqim_status_t mqim_inflight_qos2_received(mqim_inflight_t *t, uint16_t packet_id, bool *deliver)
{
    if (t == 0 || deliver == 0 || packet_id == 0u) {
        return MQIM_BAD_PARAMETER;
    }
    for (size_t i = 0; i < t->in_count; i++) {
        if (t->in_qos2[i] == packet_id) {
            *deliver = false; /* a redelivery before PUBREL: PUBREC again, no delivery */
            return MQIM_OK;
        }
    }
    if (t->in_count == t->in_cap) {
        *deliver = false;
        return MQIM_INFLIGHT_FULL;
    }
    t->in_qos2[t->in_count++] = packet_id;
    *deliver = true;
    return MQIM_OK;
}

void mqim_inflight_qos2_released(mqim_inflight_t *t, uint16_t packet_id)
{
    for (size_t i = 0; t != 0 && i < t->in_count; i++) {
        if (t->in_qos2[i] == packet_id) {
            t->in_qos2[i] = t->in_qos2[--t->in_count];
            return;
        }
    }
}
