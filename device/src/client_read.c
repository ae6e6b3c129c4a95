/* Read receipts (client.h): mqim_client_mark_read. Apart from client.c so
 * that a firmware whose user never reads on the device (a sensor, a
 * sender only) links none of it (docs/footprint.md). */
#include "mqim/client.h"
#include "client_internal.h"

#include "mqim/json_write.h"
#include "mqim/name.h"

mqim_status_t mqim_client_mark_read(mqim_client_t *c, mqim_str_t peer, uint64_t upto)
{
    mqim_json_writer_t w;
    if (mqim_name_check(MQIM_NAME_USER, peer) != MQIM_OK) {
        return MQIM_BAD_PARAMETER;
    }
    mqim_json_init(&w, c->work.scratch, sizeof(c->work.scratch));
    mqim_json_object_begin(&w);
    mqim_json_key_str(&w, "status", MQIM_STR("read"));
    mqim_json_key_str(&w, "chat", peer);
    mqim_json_key_u64(&w, "upto", upto);
    mqim_json_object_end(&w);
    return mqim_client_publish_json(c, MQIM_TOPIC_OUT_RECEIPT, &w);
}
