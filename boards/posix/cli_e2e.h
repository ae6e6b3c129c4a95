/* cli_e2e: the `mqim` command's end-to-end encryption (e2e.h on the LMDB
 * state and the mbedTLS crypto port): the device key, trust on first use
 * with loud warnings, fetching keys, sealing and opening, `mqim keys`. */
#ifndef MQIM_CLI_E2E_H
#define MQIM_CLI_E2E_H

#include <stdbool.h>

#include "mqim/client.h"
#include "mqim/e2e.h"
#include "mqim_posix_lmdb.h"

/** Load or make this device's key pair. 0, or -1 (printed). */
int cli_e2e_setup(mqim_lmdb_store_t *store, const char *user, const char *device, bool refuse_changed);

/** Publish this device's key, once per connection (call after each poll). */
void cli_e2e_on_poll(mqim_client_t *c);

/** Ask the gateway for the keys of user (or group); the answer goes to
 *  cli_e2e_on_response. MQIM_OK or the client's error. */
mqim_status_t cli_e2e_request_keys(mqim_client_t *c, const char *name, bool group);

/** A control response: true when it was the answer to cli_e2e_request_keys
 *  (then cli_e2e_keys_ready() says whether keys came). */
bool cli_e2e_on_response(mqim_str_t json);
bool cli_e2e_keys_ready(void);
bool cli_e2e_keys_failed(void);

/** Seal text with the fetched keys and queue it. */
mqim_status_t cli_e2e_send(mqim_client_t *c, const char *name, bool group, mqim_str_t text, uint32_t *key);

/** Open an encrypted envelope (replay checked for live messages, not for
 *  history); on MQIM_OK *plain holds the text. */
mqim_status_t cli_e2e_open(const mqim_envelope_t *env, bool live, mqim_envelope_t *plain);

/** `mqim keys`: this device's fingerprint and the keys it trusts (json: one object per key). */
void cli_e2e_print_trusted(mqim_lmdb_store_t *store, bool json);

/** `mqim keys USER`: the fetched keys, each with its trust state; with
 *  trust_device set, trust that device's current key instead. 0, or 4
 *  when trust_device had no key. */
int cli_e2e_print_fetched(const char *user, const char *trust_device, bool json);

#endif /* MQIM_CLI_E2E_H */
