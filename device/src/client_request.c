/* Requests to the gateway (client.h): mqim_client_ctl and the out/ topic
 * publish the file and e2e calls share. Apart from client.c so that a
 * firmware that only sends and receives messages links none of it
 * (docs/footprint.md). */
#include "mqim/client.h"
#include "client_internal.h"

#include "mqim/limits.h"

/* A request to out/ctl or out/file, straight to the session (not queued). */
mqim_status_t mqim_client_request_on(mqim_client_t *c, mqim_topic_kind_t kind, mqim_str_t request_json,
                                     bool retain)
{
    char topic[MQIM_TOPIC_MAX + 1];
    size_t tlen = 0;
    mqim_status_t st;
    if (c == 0 || !c->connected || request_json.len > MQIM_CFG_TX_BUFFER_SIZE) {
        return MQIM_BAD_PARAMETER;
    }
    st = mqim_topic_build(c->cfg.root, kind, c->cfg.user, (mqim_str_t){ 0, 0 }, topic, sizeof(topic), &tlen);
    if (st == MQIM_OK) {
        st = mqim_session_publish(&c->session, (mqim_str_t){ topic, tlen }, (const uint8_t *)request_json.ptr, request_json.len, 1,
                                  retain, 0);
    }
    return st;
}

mqim_status_t mqim_client_ctl(mqim_client_t *c, mqim_str_t request_json)
{
    return mqim_client_request_on(c, MQIM_TOPIC_OUT_CTL, request_json, false);
}
