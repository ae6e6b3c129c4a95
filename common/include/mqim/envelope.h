/**
 * @file envelope.h
 * @brief The message envelope: a JSON object readable in mosquitto_sub.
 *
 *   {"id":"01JD...","seq":42,"from":"alice","device":"phone","to":"bob",
 *    "group":"team","ts":1764000000123,"upto":40,"type":"text",
 *    "file":{...},"body":"hi"}
 *
 * ("upto" only in read-sync events: {"type":"read","to":"bob","upto":40};
 * "file" only in messages of type "file":
 *   "file":{"id":"01JF...","name":"cam.jpg","mime":"image/jpeg",
 *           "size":48213,"sha256":"9f86d0..."}
 * a sender gives only the id of a file it uploaded, the gateway fills in
 * the rest from what it stored.)
 *
 * Decoding reads the JSON in place (json_read.h, no allocation) and
 * unescapes the strings into a caller-owned arena, so the result outlives
 * the payload buffer. Encoding writes into a caller buffer and reports the
 * size it needs. Encoding puts the metadata first and "body" last, so the
 * head of a payload too large for a small device still names the message
 * (mqim_envelope_decode_head).
 */
#ifndef MQIM_ENVELOPE_H
#define MQIM_ENVELOPE_H

#include <stdbool.h>
#include <stdint.h>

#include "mqim/status.h"
#include "mqim/str.h"

/** A file a message of type "file" announces (docs/protocol.md, Files). */
typedef struct mqim_envelope_file {
    mqim_str_t id;     /**< the gateway's file id (message-id rules) */
    mqim_str_t name;   /**< 1..MQIM_FILE_NAME_MAX bytes, no '/', '\\' or control characters */
    mqim_str_t mime;   /**< media type, e.g. "image/jpeg" */
    mqim_str_t sha256; /**< MQIM_SHA256_HEX_LEN lowercase hex digits */
    uint64_t size;     /**< bytes; valid when has_size */
    bool has_size;
} mqim_envelope_file_t;

typedef struct mqim_envelope {
    mqim_str_t id;    /**< sender-chosen or gateway-made; empty = absent */
    mqim_str_t from;  /**< the sender: the gateway sets it from the topic and
                           never trusts a payload's "from" */
    mqim_str_t to;    /**< peer user (direct messages) */
    mqim_str_t group; /**< group name (group messages) */
    mqim_str_t type;  /**< "text" when absent */
    mqim_str_t body;  /**< UTF-8 text */
    uint64_t seq;     /**< inbox seq; valid when has_seq */
    int64_t ts;       /**< ms since the epoch; valid when has_ts */
    bool has_seq;
    bool has_ts;
    uint64_t upto;    /**< type "read" (a read-sync event): read up to this seq; valid when has_upto */
    bool has_upto;
    mqim_str_t device; /**< the sender's device (device-name rules); empty = not said */
    mqim_envelope_file_t file; /**< valid when has_file */
    bool has_file;
    /** An end-to-end encrypted body instead of "body": the JSON text of the
     *  "enc" object (docs/e2e.md), kept verbatim; empty = not encrypted. */
    mqim_str_t enc;
    /** The sender asks for a `sent` ack on in/ack besides its echo
     *  ("ack":"sent", docs/protocol.md). A request to the gateway, not part
     *  of the message: decoded, never encoded. */
    bool ack_sent;
} mqim_envelope_t;

/**
 * Decode a JSON envelope. Unknown fields are ignored (forward compatibility);
 * "from" is decoded as any string (the gateway replaces it with the topic's
 * user, so its content is never trusted on the way in).
 * Every present field is checked: id with mqim_id_check(), to with the user
 * rules, group with the group rules, type 1..MQIM_TYPE_MAX of [a-z0-9_.-],
 * body a string of valid UTF-8 up to MQIM_BODY_MAX bytes, seq a non-negative
 * integer, ts an integer, upto a non-negative integer, device with the
 * device rules, file an object whose "id" is required (message-id rules)
 * and whose other members are optional strings and a "size" integer, enc
 * an object (kept as its JSON text; with "body" too it is MQIM_FIELD_RANGE),
 * ack the string "sent" (anything else: MQIM_FIELD_TYPE or MQIM_FIELD_RANGE)
 * (their content rules, file_meta.h, are enforced by the gateway at upload;
 * unknown members of "file" are ignored, a member given twice is refused). Strings are copied into `arena`; an arena of
 * `len` bytes is always enough (decoded strings never outgrow their JSON).
 * @param[out] arena_used bytes of the arena used; may be NULL.
 * @return MQIM_OK, MQIM_BAD_PARAMETER, MQIM_PAYLOAD_TOO_LARGE (len >
 *         MQIM_PAYLOAD_MAX), MQIM_JSON_MALFORMED, MQIM_JSON_NOT_OBJECT,
 *         MQIM_JSON_TOO_DEEP, MQIM_FIELD_TYPE, MQIM_FIELD_RANGE (also a seq
 *         or ts with a fraction or exponent), MQIM_FIELD_DUPLICATE (an
 *         envelope field given twice), MQIM_ID_EMPTY, MQIM_ID_TOO_LONG,
 *         MQIM_ID_BAD_CHAR, MQIM_NAME_*, MQIM_TYPE_BAD, MQIM_BODY_TOO_LARGE,
 *         MQIM_UTF8_INVALID, MQIM_BUFFER_TOO_SMALL (arena), MQIM_FIELD_MISSING
 *         (a file without id).
 */
mqim_status_t mqim_envelope_decode(const char *json, size_t len, mqim_envelope_t *env,
                                   char *arena, size_t arena_cap, size_t *arena_used);

/**
 * Decode what the first `len` bytes of an envelope hold: the fields whose
 * member is complete before the text ends (a device that could keep only
 * the head of an oversized payload still learns id, seq, from and type;
 * "body" comes last and is then absent). The fields present are checked as
 * in mqim_envelope_decode; nothing after the cut is looked at.
 * @param[out] complete true when the text was the whole object.
 * @return as mqim_envelope_decode, without MQIM_PAYLOAD_TOO_LARGE.
 */
mqim_status_t mqim_envelope_decode_head(const char *json, size_t len, mqim_envelope_t *env,
                                        char *arena, size_t arena_cap, size_t *arena_used,
                                        bool *complete);

/**
 * Encode an envelope as compact JSON in the field order above; absent
 * (empty) strings and invalid seq/ts are left out. Strings are escaped per
 * RFC 8259. The output is NUL-terminated and needs *out_len + 1 bytes;
 * *out_len is set also on MQIM_BUFFER_TOO_SMALL (buf = NULL, cap = 0 is a
 * size query).
 * @return MQIM_OK, MQIM_BUFFER_TOO_SMALL, MQIM_BAD_PARAMETER.
 */
mqim_status_t mqim_envelope_encode(const mqim_envelope_t *env, char *buf, size_t cap,
                                   size_t *out_len);

#endif /* MQIM_ENVELOPE_H */
