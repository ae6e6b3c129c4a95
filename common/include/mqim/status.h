/**
 * @file status.h
 * @brief One status code for every failure in mqim, shared by common/, the
 *        gateway and the device library.
 *
 * The table is an X-macro so the enum, the short names and the readable
 * strings cannot drift apart. Numbers are stable: they appear on the wire
 * ("code_num" in rejected acks) and in logs. Never renumber; append.
 */
#ifndef MQIM_STATUS_H
#define MQIM_STATUS_H

/* X(ENUM_SUFFIX, number, short_name, readable_string) */
#define MQIM_STATUS_TABLE(X)                                                          \
    X(OK,               0, "ok",               "success")                              \
    X(BAD_PARAMETER,    1, "bad_parameter",    "invalid argument")                     \
    X(BUFFER_TOO_SMALL, 2, "buffer_too_small", "output buffer too small")              \
    X(NAME_EMPTY,      10, "name_empty",       "name is empty")                        \
    X(NAME_TOO_LONG,   11, "name_too_long",    "name is too long")                     \
    X(NAME_BAD_CHAR,   12, "name_bad_char",    "name has a character outside [A-Za-z0-9_.-]") \
    X(TOPIC_BAD_ROOT,  20, "topic_bad_root",   "topic is outside the mqim root")       \
    X(TOPIC_UNKNOWN,   21, "topic_unknown",    "topic is not part of the mqim scheme") \
    X(TOPIC_TOO_LONG,  22, "topic_too_long",   "topic is too long")                    \
    X(JSON_MALFORMED,  30, "json_malformed",   "payload is not valid JSON")            \
    X(JSON_NOT_OBJECT, 31, "json_not_object",  "JSON payload is not an object")        \
    X(JSON_TOO_DEEP,   32, "json_too_deep",    "JSON nesting is too deep")             \
    X(FIELD_TYPE,      33, "field_type",       "a field has the wrong type")           \
    X(FIELD_MISSING,   34, "field_missing",    "a required field is missing")          \
    X(FIELD_RANGE,     35, "field_range",      "a field is out of range")              \
    X(JSON_TRUNCATED,  36, "json_truncated",   "JSON text ends inside a value")        \
    X(FIELD_DUPLICATE, 37, "field_duplicate",  "a field appears more than once")       \
    X(ID_EMPTY,        40, "id_empty",         "message id is empty")                  \
    X(ID_TOO_LONG,     41, "id_too_long",      "message id is longer than 64 characters") \
    X(ID_BAD_CHAR,     42, "id_bad_char",      "message id has a character outside [A-Za-z0-9_-]") \
    X(BODY_TOO_LARGE,  50, "body_too_large",   "message body is too large")            \
    X(BODY_EMPTY,      51, "body_empty",       "message body is empty")                \
    X(TYPE_BAD,        52, "type_bad",         "message type is invalid")              \
    X(PAYLOAD_TOO_LARGE, 53, "payload_too_large", "payload is too large")              \
    X(UTF8_INVALID,    54, "utf8_invalid",     "text is not valid UTF-8")              \
    X(UNKNOWN_PEER,    60, "unknown_peer",     "no such user")                         \
    X(NOT_MEMBER,      61, "not_member",       "not a member of the group")            \
    X(RATE_LIMITED,    62, "rate_limited",     "too many requests; slow down")         \
    X(QUOTA_FULL,      63, "quota_full",       "recipient inbox is full")              \
    X(UNSUPPORTED,     64, "unsupported",      "not supported")                        \
    X(NOT_YOUR_MESSAGE, 65, "not_your_message", "receipt for a message not in your inbox") \
    X(QOS_ZERO_RECEIPT, 66, "qos_mismatch",    "request must be published with QoS 1 or 2") \
    X(GROUP_EXISTS,    67, "group_exists",     "a group of that name already exists")  \
    X(GROUP_FULL,      68, "group_full",       "the group has its maximum number of members") \
    X(TOO_MANY_GROUPS, 69, "too_many_groups",  "a user is in the maximum number of groups") \
    X(FORBIDDEN,       84, "forbidden",        "not allowed for your role in the group") \
    X(FILE_TOO_LARGE,  85, "file_too_large",   "file is larger than the gateway accepts") \
    X(FILE_CORRUPT,    86, "file_corrupt",     "file content does not match its size or SHA-256") \
    X(FILE_INCOMPLETE, 87, "file_incomplete",  "file upload is not complete") \
    X(FILE_OFFSET,     88, "file_offset",      "chunk offset is not the next one the gateway expects") \
    X(STORE_FULL,      70, "store_full",       "gateway storage is full: the store reached its map size") \
    X(DISK_FULL,       73, "disk_full",        "gateway storage is full: its disk has no space left") \
    X(STORE_ERROR,     71, "store_error",      "gateway storage error")                \
    X(INTERNAL,        72, "internal",         "internal error")                       \
    X(BAD_REQUEST,     80, "bad_request",      "malformed control request")            \
    X(UNKNOWN_OP,      81, "unknown_op",       "unknown control operation")            \
    X(NOT_FOUND,       82, "not_found",        "not found")                            \
    X(RESPONSE_TOPIC,  83, "response_topic",   "response topic must be under the requester's in/ topics") \
    X(MQTT_NEED_MORE,  100, "mqtt_need_more",  "MQTT packet is incomplete: more bytes needed") \
    X(MQTT_BAD_LENGTH, 101, "mqtt_bad_length", "MQTT remaining length is malformed or wrong for the packet") \
    X(MQTT_BAD_FLAGS,  102, "mqtt_bad_flags",  "MQTT fixed-header flags are reserved values") \
    X(MQTT_BAD_TYPE,   103, "mqtt_bad_type",   "MQTT packet type is not one a client receives") \
    X(MQTT_PROTOCOL,   104, "mqtt_protocol",   "MQTT packet violates the protocol (QoS 3, packet id 0, bad return code)") \
    X(MQTT_TOPIC,      105, "mqtt_topic",      "MQTT topic is empty, has wildcards or a NUL, or is not UTF-8") \
    X(MQTT_TOO_LARGE,  106, "mqtt_too_large",  "MQTT packet is larger than the allowed maximum") \
    X(OUTBOX_FULL,     110, "outbox_full",     "the device outbox is full") \
    X(INFLIGHT_FULL,   111, "inflight_full",   "too many QoS 1/2 publishes in flight; wait for acks") \
    X(UNEXPECTED_ACK,  112, "unexpected_ack",  "an MQTT ack for no publish in flight, or in the wrong state") \
    X(TRANSPORT_ERROR, 113, "transport_error", "the connection to the broker failed or was closed") \
    X(TIMEOUT,         114, "timeout",         "the broker did not answer in time") \
    X(CONNACK_REFUSED, 115, "connack_refused", "the broker refused the connection") \
    X(E2E_MALFORMED,   120, "e2e_malformed",   "the end-to-end encrypted body is malformed (docs/e2e.md)") \
    X(E2E_NOT_FOR_DEVICE, 121, "e2e_not_for_device", "the message is not encrypted for this device") \
    X(E2E_AUTH_FAILED, 122, "e2e_auth_failed", "the encrypted message failed authentication: tampered, misdirected or the wrong key") \
    X(E2E_REPLAY,      123, "e2e_replay",      "this encrypted message was already received (a replay)") \
    X(E2E_KEY_CHANGED, 124, "e2e_key_changed", "a device's key changed since it was first seen, and changed keys are refused") \
    X(E2E_NO_KEYS,     125, "e2e_no_keys",     "the recipient has no device key: it cannot receive encrypted messages") \
    X(E2E_TOO_MANY_RECIPIENTS, 126, "e2e_too_many_recipients", "more recipient devices than an encrypted message can carry") \
    X(E2E_TOO_MANY_KEYS, 128, "e2e_too_many_keys", "the user has the maximum number of device keys (16): remove one first") \
    X(CRYPTO_ERROR,    127, "crypto_error",    "the crypto port failed (no entropy, or an invalid key)") \
    X(CONNACK_PROTOCOL_VERSION, 130, "connack_protocol_version", "Connection Refused: unacceptable protocol version") \
    X(CONNACK_IDENTIFIER_REJECTED, 131, "connack_identifier_rejected", "Connection Refused: identifier rejected") \
    X(CONNACK_SERVER_UNAVAILABLE, 132, "connack_server_unavailable", "Connection Refused: broker unavailable") \
    X(CONNACK_BAD_CREDENTIALS, 133, "connack_bad_credentials", "Connection Refused: bad user name or password") \
    X(CONNACK_NOT_AUTHORIZED, 134, "connack_not_authorized", "Connection Refused: not authorised") \
    X(BROKER_UNREACHABLE, 135, "broker_unreachable", "the broker cannot be reached (connection refused or timed out, or its name does not resolve)") \
    X(TLS_VERIFY_FAILED, 136, "tls_verify_failed", "TLS: the broker's certificate failed verification") \
    X(TLS_HANDSHAKE_FAILED, 137, "tls_handshake_failed", "TLS: the handshake with the broker failed") \
    X(KEEPALIVE_LOST,  138, "keepalive_lost",  "the broker did not answer a keep-alive ping: the link is dead") \
    X(FLASH_ERROR,     139, "flash_error",     "the flash port failed to read, program or erase")

typedef enum mqim_status {
#define MQIM_STATUS_ENUM_(suffix, num, name, str) MQIM_##suffix = (num),
    MQIM_STATUS_TABLE(MQIM_STATUS_ENUM_)
#undef MQIM_STATUS_ENUM_
    MQIM_STATUS_END_ /* not a status; keeps the trailing comma legal in C99 */
} mqim_status_t;

/** Short stable snake_case name ("body_too_large"); "unknown_status" for a bad value. */
const char *mqim_status_name(mqim_status_t status);

/** Readable sentence for logs and the "reason" of a rejection. */
const char *mqim_status_str(mqim_status_t status);

#endif /* MQIM_STATUS_H */
