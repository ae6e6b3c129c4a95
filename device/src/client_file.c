/* The client's file calls (client.h): a file message and a request to
 * out/file. Apart from client.c so that a firmware that sends no files
 * links none of it (docs/footprint.md). */
#include "mqim/client.h"
#include "client_internal.h"

#include "mqim/name.h"

mqim_status_t mqim_client_send_file(mqim_client_t *c, mqim_str_t name, bool group, mqim_str_t file_id,
                                    mqim_str_t caption, uint32_t *key)
{
    mqim_status_t st = mqim_id_check(file_id);
    if (st == MQIM_OK) {
        st = mqim_client_send_to(c, group ? MQIM_TOPIC_OUT_GROUP : MQIM_TOPIC_OUT_DM, name, caption, &file_id, key);
    }
    return st;
}

mqim_status_t mqim_client_file_request(mqim_client_t *c, mqim_str_t request_json)
{
    return mqim_client_request_on(c, MQIM_TOPIC_OUT_FILE, request_json, false);
}
