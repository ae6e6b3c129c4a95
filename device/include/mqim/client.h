/**
 * @file client.h
 * @brief The IM layer: direct messages, acks, receipts, presence, sync, on
 *        top of the MQTT session. Messages wait in the outbox until the
 *        gateway confirms them (their echo on in/msg, or a `sent` ack; not
 *        the broker's PUBACK), go out while
 *        {root}/gateway/status says online, and are replayed from the
 *        oldest after every reconnect and every online (the gateway
 *        dedupes by id), and inbound messages
 *        reach the application once, in seq order: a gap triggers a sync
 *        instead of a delivery, a repeated seq is dropped.
 *
 * Threading: as the session, single-threaded; everything happens in
 * mqim_client_poll() and the calls made from the same thread.
 */
#ifndef MQIM_CLIENT_H
#define MQIM_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "mqim/envelope.h"
#include "mqim/limits.h"
#include "mqim/outbox.h"
#include "mqim/session.h"
#include "mqim/state.h"

#define MQIM_CLIENT_RECEIPT_BATCH 16 /**< delivered receipts sent together */

typedef enum mqim_ack_status {
    MQIM_ACK_SENT,
    MQIM_ACK_DELIVERED,
    MQIM_ACK_READ,
    MQIM_ACK_REJECTED,
    MQIM_ACK_OTHER,
    MQIM_ACK_REFUSED /**< a recipient's device could not open the message: code says why (docs/protocol.md) */
} mqim_ack_status_t;

/** An ack from the gateway (strings valid during the callback). */
typedef struct mqim_ack {
    mqim_ack_status_t status;
    mqim_str_t id;     /**< the message it is about; may be empty for some rejections */
    mqim_str_t by;     /**< delivered/read: who */
    mqim_str_t code;   /**< rejected, refused: stable code name ("e2e_auth_failed", ...) */
    mqim_str_t reason; /**< rejected: readable reason */
    mqim_str_t re;     /**< rejected: what it is about ("dm", "group", "ctl", "key", ...) */
    uint64_t seq;
} mqim_ack_t;

/** Where the connection to the broker stands (mqim_client_link). */
typedef enum mqim_link_state {
    MQIM_LINK_STOPPED = 0,  /**< not started, or stopped */
    MQIM_LINK_DISCONNECTED, /**< no connection: waiting to retry; the reason says why the last attempt or link failed */
    MQIM_LINK_CONNECTING,   /**< transport open, CONNECT sent, waiting for the CONNACK */
    MQIM_LINK_CONNECTED     /**< the broker accepted the connection */
} mqim_link_state_t;

typedef struct mqim_client_callbacks {
    /** Once per seq, in order. A tombstone (type "pruned", no id: the
     *  gateway's group retention removed that message) is not passed on:
     *  it only moves the seq stream forward. */
    void (*on_message)(void *ctx, const mqim_envelope_t *env);
    /** Acks of what I sent. MQIM_ACK_SENT: the gateway stored a message
     *  this device sent (its echo arrived, after on_message for the echo,
     *  or a `sent` ack on in/ack); id and seq (in my inbox) are set. My
     *  other devices see the echo through on_message only. */
    void (*on_ack)(void *ctx, const mqim_ack_t *ack);
    /** A control response to a request made with mqim_client_ctl (raw JSON). May be NULL. */
    void (*on_response)(void *ctx, mqim_str_t json);
    /**
     * A message larger than MQIM_CFG_RX_BUFFER_SIZE arrived: only its head
     * was read, so env has id, seq, from, to/group, ts and type but no body,
     * and payload_size says how large it was. Its seq counts as received
     * (the stream does not stall on it); instead of a delivered receipt the
     * sender gets a `refused` one with code payload_too_large. May be NULL (the message is then skipped silently on the device
     * side, but the gateway keeps it in history).
     */
    void (*on_oversized)(void *ctx, const mqim_envelope_t *env, size_t payload_size);
    /** A user's aggregate presence changed (raw JSON from {root}/presence/{user}); NULL = not subscribed. */
    void (*on_presence)(void *ctx, mqim_str_t user, mqim_str_t json);
    /**
     * Read state changed on one of this user's devices (this one included):
     * everything in the chat with env->to (or the group env->group) up to
     * env->upto is read; clear its unread. May be NULL.
     */
    void (*on_read)(void *ctx, const mqim_envelope_t *env);
    void *ctx;
    /**
     * The connection changed state, or another attempt failed (reason as
     * mqim_client_link; MQIM_OK when connecting or connected). Called from
     * mqim_client_poll. May be NULL. (This and the next are after ctx, so
     * initialisers written before them stay valid.)
     */
    void (*on_link)(void *ctx, mqim_link_state_t state, mqim_status_t reason);
    /**
     * The gateway's store began a new epoch (a restore, a copy: seqs after
     * from_seq may have been handed out again): the library takes the new
     * history from from_seq on instead of dropping those seqs as seen
     * (docs/protocol.md, "Store epochs"). Informational; may be NULL.
     */
    void (*on_store_epoch)(void *ctx, uint64_t epoch, uint64_t from_seq);
} mqim_client_callbacks_t;

typedef struct mqim_client_config {
    mqim_str_t root;   /**< "im" */
    mqim_str_t user;
    mqim_str_t device;
    mqim_str_t password;
    const mqim_transport_ops_t *transport;
    void *transport_ctx;
    mqim_clock_fn clock;
    void *clock_ctx;
    mqim_entropy_fn entropy;
    void *entropy_ctx;
    const mqim_outbox_ops_t *outbox;
    void *outbox_ctx;
    const mqim_state_ops_t *state;
    void *state_ctx;
    mqim_client_callbacks_t cb;
    /** Optional but wanted: how mqim_client_poll waits while there is no
     *  connection (ports.h). Without it, sleep for
     *  mqim_client_next_deadline() between polls yourself. */
    mqim_sleep_fn sleep;
    void *sleep_ctx;
} mqim_client_config_t;

typedef struct mqim_client {
    mqim_client_config_t cfg;
    mqim_session_t session;
    mqim_device_state_t st;
    char client_id[MQIM_USER_NAME_MAX + MQIM_DEVICE_NAME_MAX + 2];
    char status_topic[MQIM_TOPIC_MAX + 1];
    char in_filter[MQIM_TOPIC_MAX + 1];
    char presence_filter[MQIM_ROOT_MAX + 16];
    char will[64];
    uint32_t replay_after;   /**< outbox key last (re)published since the connection */
    unsigned outbox_out;     /**< of those, still in the outbox (no ack yet): at most MQIM_CFG_OUTBOX_WINDOW */
    bool connected;
    bool gw_online;          /**< {root}/gateway/status said online on this connection */
    bool sync_pending;       /**< a sync request is out; deliveries wait for it */
    bool epoch_check;        /**< the store epoch of this connection is not confirmed yet:
                                  deliveries are dropped (a sync brings them again) */
    bool epoch_dropped;      /**< ... and some were: sync once it is confirmed */
    uint8_t link_said;       /**< the mqim_link_state_t last passed to on_link */
    uint32_t failures_said;  /**< the session's failure count at that time */
    uint64_t receipts[MQIM_CLIENT_RECEIPT_BATCH];
    unsigned nreceipts;
    /* Sized from the MQTT buffers, not the wire's payload limit: a device
     * can send no more than its transmit buffer holds, and a decoded string
     * never outgrows the payload that carried it. The outbox entry and the
     * scratch of small control payloads share their memory: never needed
     * at the same time (each is built, or read, and handed to the session
     * within one call; an envelope is encoded in place in its entry). */
    union {
        char scratch[MQIM_CFG_TX_BUFFER_SIZE];                     /**< encoding control payloads, signals */
        uint8_t record[MQIM_CFG_TX_BUFFER_SIZE + MQIM_ID_MAX + 2]; /**< one outbox entry */
    } work;
    char arena[MQIM_CFG_RX_BUFFER_SIZE]; /**< strings of the inbound payload */
} mqim_client_t;

/**
 * Load the state, take the next presence epoch (saved before connecting, so
 * an older connection's will can never look newer), prepare the session.
 * @return MQIM_OK, MQIM_BAD_PARAMETER (names, missing ports), the state
 *         port's errors.
 */
mqim_status_t mqim_client_init(mqim_client_t *c, const mqim_client_config_t *cfg);
/** Start connecting (on the next poll). @return MQIM_OK, MQIM_BAD_PARAMETER (already started). */
mqim_status_t mqim_client_start(mqim_client_t *c);

/** Flush receipts, publish "offline" (a clean DISCONNECT discards the
 *  will), disconnect. The outbox keeps what was not yet confirmed. */
void mqim_client_stop(mqim_client_t *c);

/**
 * Drive everything: connect and reconnect, read, deliver callbacks, replay
 * the outbox, send receipts. Blocks until input arrives or a timer of the
 * library is due (reconnect, keep-alive), at most timeout_ms; it never
 * spins, also not while disconnected, provided the config has a sleep
 * port (otherwise it returns at once while backing off: sleep for
 * mqim_client_next_deadline() yourself).
 * @return MQIM_OK, or why the attempt or the link just failed (as
 *         mqim_session_poll: the CONNACK refusals one to one,
 *         MQIM_BROKER_UNREACHABLE, MQIM_TLS_*, MQIM_KEEPALIVE_LOST, ...):
 *         informational, the client reconnects by itself.
 */
mqim_status_t mqim_client_poll(mqim_client_t *c, uint32_t timeout_ms);

/**
 * Milliseconds until the library next needs mqim_client_poll on its own
 * (reconnect after backoff, keep-alive ping, a timeout); 0: now;
 * MQIM_NO_DEADLINE: nothing timed. While connected, input from the broker
 * needs a poll too: a board sleeps until this or its transport's receive
 * interrupt, whichever comes first.
 */
uint32_t mqim_client_next_deadline(const mqim_client_t *c);

/**
 * The connection's state, and in *reason (may be NULL) why the last
 * attempt or link failed (MQIM_OK when none did since the start): one of
 * the CONNACK refusals (MQIM_CONNACK_NOT_AUTHORIZED, _BAD_CREDENTIALS,
 * _IDENTIFIER_REJECTED, _SERVER_UNAVAILABLE, _PROTOCOL_VERSION),
 * MQIM_BROKER_UNREACHABLE, MQIM_TLS_VERIFY_FAILED (the transport keeps
 * the verification's details), MQIM_TLS_HANDSHAKE_FAILED, MQIM_TIMEOUT
 * (no CONNACK), MQIM_KEEPALIVE_LOST, MQIM_TRANSPORT_ERROR, MQIM_MQTT_*.
 */
mqim_link_state_t mqim_client_link(const mqim_client_t *c, mqim_status_t *reason);

/**
 * Queue a text message to peer (stored in the outbox first, so it survives
 * a reboot; sent when connected). *key identifies it until the gateway
 * confirms it: its echo, reported as on_ack(MQIM_ACK_SENT) with the id and
 * my inbox seq (docs/protocol.md).
 * @return MQIM_OK, MQIM_OUTBOX_FULL, MQIM_NAME_*, MQIM_BODY_EMPTY,
 *         MQIM_BODY_TOO_LARGE (over MQIM_BODY_MAX), MQIM_PAYLOAD_TOO_LARGE
 *         (the publish would not fit MQIM_CFG_TX_BUFFER_SIZE),
 *         MQIM_UTF8_INVALID, MQIM_INTERNAL (no entropy for the id).
 */
mqim_status_t mqim_client_send(mqim_client_t *c, mqim_str_t peer, mqim_str_t text, uint32_t *key);

/** As mqim_client_send, to a group ({root}/u/{me}/out/group/{group}). */
mqim_status_t mqim_client_send_group(mqim_client_t *c, mqim_str_t group, mqim_str_t text,
                                     uint32_t *key);

/**
 * Queue a message announcing a file this user uploaded completely
 * (file_transfer.h) to a peer or, with group true, to a group; caption may
 * be empty (the gateway then uses the file's name). Queued and replayed like
 * mqim_client_send; the gateway fills in name, type, size and SHA-256.
 * @return as mqim_client_send, and MQIM_ID_* for a bad file id.
 */
mqim_status_t mqim_client_send_file(mqim_client_t *c, mqim_str_t name, bool group, mqim_str_t file_id,
                                    mqim_str_t caption, uint32_t *key);

/**
 * Queue an envelope made elsewhere, for an end-to-end encrypted message
 * (e2e.h: mqim_e2e_seal_message fills it): env has an id, exactly one of to
 * and group, and enc. Queued and replayed like mqim_client_send.
 * @return as mqim_client_send; MQIM_BAD_PARAMETER without enc or with
 *         both or neither of to and group.
 */
mqim_status_t mqim_client_send_envelope(mqim_client_t *c, const mqim_envelope_t *env, uint32_t *key);

/**
 * Publish this device's public key (e2e.h: mqim_e2e_key_payload) retained
 * at QoS 1 on {root}/u/{me}/out/key. Not queued: only while connected.
 * @return MQIM_OK, MQIM_BAD_PARAMETER (not connected, too large), a
 *         session error.
 */
mqim_status_t mqim_client_publish_key(mqim_client_t *c, mqim_str_t key_json);

/**
 * Publish a file-transfer request to {root}/u/{me}/out/file (QoS 1; the
 * gateway gives that topic its own rate budget). Used by file_transfer.h;
 * responses arrive through on_response.
 * @return MQIM_OK, MQIM_BAD_PARAMETER (not connected, too large),
 *         MQIM_INFLIGHT_FULL, a session error.
 */
mqim_status_t mqim_client_file_request(mqim_client_t *c, mqim_str_t request_json);

/**
 * Send a control request (a JSON object, docs/protocol.md: history,
 * presence, ...). Give it a "req" so its response, which arrives through
 * on_response, can be matched. @return MQIM_OK, MQIM_BAD_PARAMETER (not
 * connected, too large), a session error.
 */
mqim_status_t mqim_client_ctl(mqim_client_t *c, mqim_str_t request_json);

/**
 * An ephemeral signal to a peer (or, with group true, to a group's members):
 * {"type":type} at QoS 0, never stored, never acknowledged, lost when the
 * peer is offline. For "typing": receivers treat it as valid for 5 s, so
 * repeat it while the user types. Not queued: only while connected.
 * @return MQIM_OK, MQIM_BAD_PARAMETER (not connected, bad name or type),
 *         a session error.
 */
mqim_status_t mqim_client_signal(mqim_client_t *c, mqim_str_t name, bool group, mqim_str_t type);

/**
 * The message at inbox seq `seq`, just handed to on_message, could not be
 * shown (an end-to-end message that does not open, content the
 * application cannot handle): instead of the `delivered` receipt, the
 * sender gets a `refused` one with code, a status name such as
 * mqim_status_name(MQIM_E2E_AUTH_FAILED) ([a-z0-9_], 1..32 characters;
 * docs/protocol.md, "Receipts"). Call it from on_message, or later in the
 * same poll; the seq stays consumed (no redelivery). Lives in
 * client_e2e.c with the other calls only E2E needs (oversized messages are
 * refused by client.c itself).
 * @return MQIM_OK, MQIM_BAD_PARAMETER (empty code; not connected), a
 *         session error.
 */
mqim_status_t mqim_client_refuse(mqim_client_t *c, uint64_t seq, mqim_str_t code);

/** Tell peer everything it sent up to inbox seq `upto` was read.
 *  @return MQIM_OK, MQIM_BAD_PARAMETER (peer name, not connected),
 *          MQIM_INFLIGHT_FULL (try again after a poll), MQIM_TRANSPORT_ERROR. */
mqim_status_t mqim_client_mark_read(mqim_client_t *c, mqim_str_t peer, uint64_t upto);

bool mqim_client_connected(const mqim_client_t *c);

/** The board clock (the clock port), ms. */
uint32_t mqim_client_now(const mqim_client_t *c);

/** The highest inbox seq handed to the application (on_message or
 *  on_oversized) or skipped as a tombstone, also across restarts: what
 *  "read everything shown" means. */
uint64_t mqim_client_last_seq(const mqim_client_t *c);

#endif /* MQIM_CLIENT_H */
