/**
 * @file e2e.h
 * @brief End-to-end encryption of message bodies (docs/e2e.md): device key
 *        pairs, sealing a body for a set of devices, opening one, trust on
 *        first use, replay refusal. Optional: a firmware that does not
 *        encrypt links none of it.
 *
 * Two levels:
 * - mqim_e2e_seal() / mqim_e2e_open(): the format alone, deterministic
 *   (the caller supplies the random bytes), no state: what the test vectors
 *   check and what an independent implementation must match.
 * - mqim_e2e_t: one device's E2E state on top (its key pair, the trust
 *   store, the replay window, the buffers), used with mqim_client_t:
 *
 *       fetch keys:  mqim_e2e_keys_request() -> mqim_client_ctl(); the answer
 *                    in on_response -> mqim_e2e_keys_parse()
 *       send:        mqim_e2e_seal_message() -> mqim_client_send_envelope()
 *       receive:     in on_message, when env->enc.len > 0:
 *                    mqim_e2e_open_message(); show the result only on MQIM_OK
 *       publish key: mqim_e2e_key_payload() -> mqim_client_publish_key()
 *
 * Crypto goes through the crypto port (crypto.h), randomness through the
 * entropy port, keys through the store port below. No allocation; strings
 * are pointer + length.
 */
#ifndef MQIM_E2E_H
#define MQIM_E2E_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqim/crypto.h"
#include "mqim/device_config.h"
#include "mqim/envelope.h"
#include "mqim/limits.h"
#include "mqim/ports.h"
#include "mqim/status.h"
#include "mqim/str.h"

#define MQIM_E2E_KEY_LEN 32u
#define MQIM_E2E_WRAP_LEN 48u             /**< a wrapped content key: 32 + tag */
#define MQIM_E2E_RECIPIENTS_LIMIT 64u     /**< the format's limit on "r" */
#define MQIM_E2E_FINGERPRINT_LEN 39u      /**< "xxxx xxxx ... xxxx": 8 x 4 + 7 */

/** A device's public key: whose, which device. */
typedef struct mqim_e2e_key {
    mqim_str_t user;
    mqim_str_t device;
    uint8_t pk[MQIM_E2E_KEY_LEN];
} mqim_e2e_key_t;

/** What sealing needs. The random inputs make it deterministic. */
typedef struct mqim_e2e_seal_in {
    mqim_str_t from, sender_device;
    const uint8_t *sender_sk, *sender_pk;  /**< 32 bytes each */
    const uint8_t *ephemeral_sk;           /**< 32 random bytes, fresh per message */
    const uint8_t *content_key;            /**< 32 random bytes, fresh per message */
    mqim_str_t to, group;                  /**< exactly one non-empty */
    mqim_str_t id, type;
    const mqim_e2e_key_t *recipients;      /**< 1..MQIM_E2E_RECIPIENTS_LIMIT, in this order */
    size_t recipient_count;
    mqim_str_t text;                       /**< the body: UTF-8, up to MQIM_BODY_MAX */
    uint8_t *work;                         /**< text.len + 16 bytes of scratch */
    size_t work_cap;
} mqim_e2e_seal_in_t;

/**
 * Write the "enc" object for in (docs/e2e.md, Sealing) into out. Reports
 * the size it needs: *out_len is set also on MQIM_BUFFER_TOO_SMALL, and
 * out = NULL, cap = 0 is a size query (the crypto still runs).
 * @return MQIM_OK, MQIM_BAD_PARAMETER, MQIM_BUFFER_TOO_SMALL (out or work),
 *         MQIM_E2E_NO_KEYS (no recipients), MQIM_E2E_TOO_MANY_RECIPIENTS,
 *         MQIM_NAME_* / MQIM_ID_* / MQIM_TYPE_BAD, MQIM_BODY_TOO_LARGE,
 *         MQIM_UTF8_INVALID, MQIM_CRYPTO_ERROR (the port failed, e.g. a
 *         small-order recipient key).
 */
mqim_status_t mqim_e2e_seal(const mqim_crypto_ops_t *crypto, void *crypto_ctx,
                            const mqim_e2e_seal_in_t *in, char *out, size_t cap, size_t *out_len);

/** Who sent an opened message: its device as "sd" says, and that
 *  device's public key, which the opening proved. */
typedef struct mqim_e2e_sender {
    char device[MQIM_DEVICE_NAME_MAX + 1];
    size_t device_len;
    uint8_t pk[MQIM_E2E_KEY_LEN];
} mqim_e2e_sender_t;

/**
 * Open env's "enc" for the device (me, my_device) whose keys are sk/pk
 * (docs/e2e.md, Opening, steps 1-6): the text goes to out (cap >= the
 * ciphertext's length; not NUL-terminated), the sender to *sender.
 * Trust and replay (steps 7-8) are mqim_e2e_t's.
 * @return MQIM_OK, MQIM_BAD_PARAMETER, MQIM_E2E_MALFORMED,
 *         MQIM_E2E_NOT_FOR_DEVICE, MQIM_E2E_AUTH_FAILED,
 *         MQIM_BUFFER_TOO_SMALL, MQIM_UTF8_INVALID.
 */
mqim_status_t mqim_e2e_open(const mqim_crypto_ops_t *crypto, void *crypto_ctx, mqim_str_t me,
                            mqim_str_t my_device, const uint8_t sk[MQIM_E2E_KEY_LEN],
                            const uint8_t pk[MQIM_E2E_KEY_LEN], const mqim_envelope_t *env,
                            uint8_t *out, size_t cap, size_t *out_len, mqim_e2e_sender_t *sender);

/** The public key of a private one (X25519 with the base point 9). */
mqim_status_t mqim_e2e_public_key(const mqim_crypto_ops_t *crypto, void *crypto_ctx,
                                  const uint8_t sk[MQIM_E2E_KEY_LEN], uint8_t pk[MQIM_E2E_KEY_LEN]);

/** The fingerprint of pk, NUL-terminated (docs/e2e.md, Device keys). */
void mqim_e2e_fingerprint(const uint8_t pk[MQIM_E2E_KEY_LEN], char out[MQIM_E2E_FINGERPRINT_LEN + 1]);

/**
 * Read the keys of a "keys" control response or of a {root}/keys/{user}
 * payload (entries without "user" take the top-level "user"). Names are
 * unescaped into arena (the payload's length is always enough). Entries
 * past max are counted in *total but not stored.
 * @return MQIM_OK, MQIM_JSON_*, MQIM_FIELD_* (a malformed entry),
 *         MQIM_NAME_*, MQIM_BUFFER_TOO_SMALL (arena).
 */
mqim_status_t mqim_e2e_keys_parse(const char *json, size_t len, mqim_e2e_key_t *keys, size_t max,
                                  size_t *count, size_t *total, char *arena, size_t arena_cap);

/** {"op":"keys","req":REQ,"user":NAME} or with group true "group":NAME;
 *  reports the size it needs like every encoder. */
mqim_status_t mqim_e2e_keys_request(mqim_str_t req, mqim_str_t name, bool group, char *out,
                                    size_t cap, size_t *out_len);

/* ---- one device's E2E state ------------------------------------------ */

/** Where a device keeps its private key and the keys it trusts. */
typedef struct mqim_e2e_store_ops {
    /** @return MQIM_OK, MQIM_NOT_FOUND (none yet), MQIM_STORE_ERROR. */
    mqim_status_t (*identity_load)(void *ctx, uint8_t sk[MQIM_E2E_KEY_LEN]);
    /** Durably. @return MQIM_OK, MQIM_STORE_FULL, MQIM_STORE_ERROR. */
    mqim_status_t (*identity_save)(void *ctx, const uint8_t sk[MQIM_E2E_KEY_LEN]);
    /** @return MQIM_OK, MQIM_NOT_FOUND (never seen), MQIM_STORE_ERROR. */
    mqim_status_t (*trust_get)(void *ctx, mqim_str_t user, mqim_str_t device, uint8_t pk[MQIM_E2E_KEY_LEN]);
    /** @return MQIM_OK, MQIM_STORE_FULL, MQIM_STORE_ERROR. */
    mqim_status_t (*trust_put)(void *ctx, mqim_str_t user, mqim_str_t device,
                               const uint8_t pk[MQIM_E2E_KEY_LEN]);
} mqim_e2e_store_ops_t;

typedef struct mqim_e2e_config {
    mqim_str_t user, device;               /**< this device (as the client's) */
    const mqim_crypto_ops_t *crypto;
    void *crypto_ctx;
    mqim_entropy_fn entropy;               /**< keys, content keys, ids */
    void *entropy_ctx;
    const mqim_e2e_store_ops_t *store;
    void *store_ctx;
    /** A device's key is not the one first seen: refuse it (messages from it
     *  are MQIM_E2E_KEY_CHANGED, none is sealed for it) instead of trusting
     *  the new one. */
    bool refuse_changed_keys;
    /**
     * A known device showed a different key (fingerprints, NUL-terminated);
     * accepted says whether the new key is now trusted. Tell the user
     * loudly. May be NULL.
     */
    void (*on_key_changed)(void *ctx, mqim_str_t user, mqim_str_t device, const char *old_fp,
                           const char *new_fp, bool accepted);
    void *cb_ctx;
} mqim_e2e_config_t;

typedef struct mqim_e2e {
    mqim_e2e_config_t cfg;
    uint8_t sk[MQIM_E2E_KEY_LEN];
    uint8_t pk[MQIM_E2E_KEY_LEN];
    uint8_t replay[MQIM_CFG_E2E_REPLAY_WINDOW][8]; /**< digests of (from, sd, id) opened */
    unsigned replay_next, replay_count;
    char id[33];                                   /**< the id of the message last sealed */
    char enc[MQIM_CFG_TX_BUFFER_SIZE];             /**< the "enc" object last sealed */
    uint8_t work[MQIM_CFG_E2E_TEXT_MAX + MQIM_AEAD_TAG_LEN];
    uint8_t text[MQIM_CFG_E2E_TEXT_MAX + MQIM_AEAD_TAG_LEN]; /**< the text last opened */
} mqim_e2e_t;

/**
 * Load this device's key pair, or make one (32 bytes of entropy) and save
 * it before returning, so a key once published is never lost to a reboot.
 * @return MQIM_OK, MQIM_BAD_PARAMETER, MQIM_CRYPTO_ERROR (no entropy), the
 *         store's errors.
 */
mqim_status_t mqim_e2e_init(mqim_e2e_t *e, const mqim_e2e_config_t *cfg);

/** This device's key for {root}/u/{me}/out/key: {"device":..,"x25519":..}. */
mqim_status_t mqim_e2e_key_payload(const mqim_e2e_t *e, char *out, size_t cap, size_t *out_len);

/**
 * Trust on first use for one device key: unknown -> stored, MQIM_OK; same
 * as stored -> MQIM_OK; different -> on_key_changed, then MQIM_OK (stored)
 * or, with refuse_changed_keys, MQIM_E2E_KEY_CHANGED (not stored).
 * @return as above, and the store's errors.
 */
mqim_status_t mqim_e2e_trust(mqim_e2e_t *e, mqim_str_t user, mqim_str_t device,
                             const uint8_t pk[MQIM_E2E_KEY_LEN]);

/** Trust pk for (user, device) from now on, whatever was trusted before
 *  (the user compared fingerprints and accepts a changed key). */
mqim_status_t mqim_e2e_accept(mqim_e2e_t *e, mqim_str_t user, mqim_str_t device,
                              const uint8_t pk[MQIM_E2E_KEY_LEN]);

/**
 * Seal text for keys (the answer to a keys request: the peer's or group's
 * devices and this user's own) and fill *env with everything
 * mqim_client_send_envelope() needs: a fresh id, to or group, type, this
 * device, and enc (pointing into e until the next seal). Every key goes
 * through mqim_e2e_trust() first; a refused one fails the whole message
 * (MQIM_E2E_KEY_CHANGED): a user who refuses changed keys does not want a
 * message readable by the new one.
 * @return MQIM_OK, MQIM_E2E_NO_KEYS (no key of the peer, or none at all),
 *         MQIM_E2E_TOO_MANY_RECIPIENTS (over MQIM_CFG_E2E_RECIPIENTS_MAX),
 *         MQIM_E2E_KEY_CHANGED, MQIM_BODY_EMPTY, MQIM_BODY_TOO_LARGE
 *         (over MQIM_CFG_E2E_TEXT_MAX), MQIM_PAYLOAD_TOO_LARGE (the enc does
 *         not fit MQIM_CFG_TX_BUFFER_SIZE), mqim_e2e_seal()'s errors.
 */
mqim_status_t mqim_e2e_seal_message(mqim_e2e_t *e, mqim_str_t name, bool group, mqim_str_t type,
                                    mqim_str_t text, const mqim_e2e_key_t *keys, size_t count,
                                    mqim_envelope_t *env);

/**
 * Open an inbound env (env->enc non-empty): steps 1-8 of docs/e2e.md. On
 * MQIM_OK *plain is env with body = the text (in e, until the next open),
 * enc empty and device = the proven sending device; show only that. With
 * check_replay false (history pages, which repeat old messages by design)
 * step 8 is skipped and nothing is remembered.
 * @return MQIM_OK, mqim_e2e_open()'s errors, MQIM_E2E_KEY_CHANGED,
 *         MQIM_E2E_REPLAY, the store's errors.
 */
mqim_status_t mqim_e2e_open_message(mqim_e2e_t *e, const mqim_envelope_t *env, bool check_replay,
                                    mqim_envelope_t *plain, mqim_e2e_sender_t *sender);

#endif /* MQIM_E2E_H */
