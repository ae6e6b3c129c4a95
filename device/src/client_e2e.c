/* The client calls only end-to-end encryption needs (client.h:
 * mqim_client_send_envelope, mqim_client_publish_key), apart from client.c
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
