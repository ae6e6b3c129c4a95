/* The client calls only end-to-end encryption needs (client.h:
 * mqim_client_send_envelope, mqim_client_publish_key, and
 * mqim_client_refuse, for messages that do not open), apart from client.c
 * so a firmware without E2E links none of them (docs/footprint.md). */
#include "client_internal.h"

#include "mqim/name.h"

mqim_status_t mqim_client_send_envelope(mqim_client_t *c, const mqim_envelope_t *env, uint32_t *key)
{
    bool group;
    if (c == 0 || env == 0 || env->enc.len == 0u || (env->to.len > 0u) == (env->group.len > 0u)) {
        return MQIM_BAD_PARAMETER;
    }
    group = env->group.len > 0u;
    /* the name is checked where the topic is built; the id here */
    return mqim_id_check(env->id) != MQIM_OK
               ? mqim_id_check(env->id)
               : mqim_client_queue_envelope(c, group ? MQIM_TOPIC_OUT_GROUP : MQIM_TOPIC_OUT_DM,
                                            group ? env->group : env->to, env, key);
}

mqim_status_t mqim_client_publish_key(mqim_client_t *c, mqim_str_t key_json)
{
    return mqim_client_request_on(c, MQIM_TOPIC_OUT_KEY, key_json, true);
}

/* No `delivered` for what the user never saw: a `refused` receipt instead. */
mqim_status_t mqim_client_refuse(mqim_client_t *c, uint64_t seq, mqim_str_t code)
{
    unsigned k = 0;
    if (c == 0 || code.len == 0u || !c->connected) {
        return MQIM_BAD_PARAMETER;
    }
    /* no `delivered` for it: take it out of the pending batch */
    for (unsigned i = 0; i < c->nreceipts; i++) {
        if (c->receipts[i] != seq) {
            c->receipts[k++] = c->receipts[i];
        }
    }
    c->nreceipts = k;
    return mqim_client_publish_receipt(c, MQIM_STR("refused"), &seq, 1u, code);
}
