/**
 * @file limits.h
 * @brief Hard limits of the wire contract (docs/protocol.md). The gateway and
 *        the device library reject anything beyond them with a status.
 */
#ifndef MQIM_LIMITS_H
#define MQIM_LIMITS_H

#define MQIM_USER_NAME_MAX   64u   /**< users and groups: 1..64 of [A-Za-z0-9_.-] */
#define MQIM_GROUP_NAME_MAX  64u
#define MQIM_DEVICE_NAME_MAX 32u   /**< devices: 1..32 of [A-Za-z0-9_.-] */
#define MQIM_ID_MAX          64u   /**< message ids: 1..64 of [A-Za-z0-9_-] */
#define MQIM_TYPE_MAX        32u   /**< envelope "type": 1..32 of [a-z0-9_.-] */
#define MQIM_BODY_MAX        4096u /**< bytes of UTF-8 in "body" */
#define MQIM_PAYLOAD_MAX     16384u /**< bytes of a whole publish payload to out/ */
#define MQIM_ROOT_MAX        32u   /**< topic root ("im") */
#define MQIM_TOPIC_MAX       256u  /**< any topic of the scheme fits in this */
#define MQIM_JSON_DEPTH_MAX  8     /**< nesting accepted in requests and envelopes */
#define MQIM_FILE_NAME_MAX   255u  /**< file names: 1..255 bytes of UTF-8, no '/', '\\' or control characters */
#define MQIM_MIME_MAX        127u  /**< media types: 1..127 of [A-Za-z0-9!#$&^_.+/-] */
#define MQIM_FILE_CHUNK_LIMIT 8192u /**< largest file chunk: its base64 in a request fits MQIM_PAYLOAD_MAX */
#define MQIM_ULID_LEN        26u   /**< gateway-made ids: ULID text, Crockford base32 */

#endif /* MQIM_LIMITS_H */
