/* What client.c lends its optional companions (client_e2e.c,
 * client_file.c, client_read.c, client_request.c, client_signal.c): not part of
 * the API, so a firmware that links only client.c carries none of them. */
#ifndef MQIM_CLIENT_INTERNAL_H
#define MQIM_CLIENT_INTERNAL_H

#include "mqim/client.h"
#include "mqim/json_write.h"
#include "mqim/topic.h"

/** Encode env and queue it for {root}/u/{me}/out/{dm|group}/{peer}. */
mqim_status_t mqim_client_queue_envelope(mqim_client_t *c, mqim_topic_kind_t kind, mqim_str_t peer,
                                         const mqim_envelope_t *env, uint32_t *key);

/** Queue a text message (file_id NULL) or a file message (file_id a
 *  checked, non-empty id) to a peer or a group. */
mqim_status_t mqim_client_send_to(mqim_client_t *c, mqim_topic_kind_t kind, mqim_str_t peer, mqim_str_t text,
                                  const mqim_str_t *file_id, uint32_t *key);

/** Finish w (in c->scratch) and publish it at QoS 1 to one of this user's
 *  out/ topics, outside the outbox: a lost one only delays a receipt or a
 *  sync, both repeatable. */
mqim_status_t mqim_client_publish_json(mqim_client_t *c, mqim_topic_kind_t kind, mqim_json_writer_t *w);

/** Publish straight to one of this user's out/ topics (QoS 1, not queued). */
mqim_status_t mqim_client_request_on(mqim_client_t *c, mqim_topic_kind_t kind, mqim_str_t request_json,
                                     bool retain);

/** Publish a receipt {"status":S,"seqs":[...],"code":C,"device":D} (code
 *  omitted when empty): delivered, or refused. */
mqim_status_t mqim_client_publish_receipt(mqim_client_t *c, mqim_str_t status, const uint64_t *seqs, unsigned n,
                                          mqim_str_t code);

#endif /* MQIM_CLIENT_INTERNAL_H */
