/* Ephemeral signals (client.h): typing and the like, QoS 0 and never
 * queued. Apart from client.c so that a firmware that sends none links
 * none of it (docs/footprint.md). */
#include "mqim/client.h"
#include "client_internal.h"

#include <string.h>

#include "mqim/limits.h"
#include "mqim/name.h"

mqim_status_t mqim_client_signal(mqim_client_t *c, mqim_str_t name, bool group, mqim_str_t type)
{
    char topic[MQIM_TOPIC_MAX + 1];
    mqim_envelope_t env;
    size_t len = 0, tlen = 0;
    mqim_status_t st;
    if (c == 0 || !c->connected || type.len == 0u || type.len > MQIM_TYPE_MAX ||
        mqim_name_check(group ? MQIM_NAME_GROUP : MQIM_NAME_USER, name) != MQIM_OK) {
        return MQIM_BAD_PARAMETER;
    }
    memset(&env, 0, sizeof(env));
    env.type = type;
    st = mqim_envelope_encode(&env, c->work.scratch, sizeof(c->work.scratch), &len);
    if (st == MQIM_OK) {
        st = mqim_topic_build(c->cfg.root, group ? MQIM_TOPIC_OUT_GROUP : MQIM_TOPIC_OUT_DM, c->cfg.user, name,
                              topic, sizeof(topic), &tlen);
    }
    if (st == MQIM_OK) {
        st = mqim_session_publish(&c->session, (mqim_str_t){ topic, tlen }, (const uint8_t *)c->work.scratch, len, 0, false, 0);
    }
    return st;
}
