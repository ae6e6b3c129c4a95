/* The `mqim` command's end-to-end encryption (cli_e2e.h). */
#include "cli_e2e.h"

#include <stdio.h>
#include <string.h>

#include "mqim/exit_code.h"
#include "mqim/json_read.h"
#include "mqim/limits.h"
#include "mqim_crypto.h"
#include "mqim_posix_tcp.h"

static mqim_e2e_t e2e; /* large buffers: static */
static bool ready, key_published, keys_ready, keys_failed;
static mqim_e2e_key_t keys[MQIM_CFG_E2E_RECIPIENTS_MAX];
static size_t nkeys, keys_total;
static char keys_json[65536];  /* the answer the keys point into */
static char keys_arena[65536];
static mqim_lmdb_store_t *trust_store;

static void on_key_changed(void *ctx, mqim_str_t user, mqim_str_t device, const char *old_fp, const char *new_fp,
                           bool accepted)
{
    (void)ctx;
    fprintf(stderr,
            "mqim: WARNING: THE KEY OF %.*s/%.*s HAS CHANGED.\n"
            "mqim:   trusted until now: %s\n"
            "mqim:   new key:           %s\n",
            (int)user.len, user.ptr, (int)device.len, device.ptr, old_fp, new_fp);
    if (accepted) {
        fprintf(stderr, "mqim:   The new key is trusted from now on. If %.*s did not reinstall that device,\n"
                        "mqim:   someone may be reading along: compare fingerprints (mqim keys %.*s).\n"
                        "mqim:   --refuse-changed-keys refuses changed keys instead.\n",
                (int)user.len, user.ptr, (int)user.len, user.ptr);
    } else {
        fprintf(stderr, "mqim:   REFUSED (--refuse-changed-keys). After comparing fingerprints with %.*s:\n"
                        "mqim:   mqim keys trust %.*s %.*s\n",
                (int)user.len, user.ptr, (int)user.len, user.ptr, (int)device.len, device.ptr);
    }
}

int cli_e2e_setup(mqim_lmdb_store_t *store, const char *user, const char *device, bool refuse_changed)
{
    mqim_e2e_config_t cfg;
    mqim_status_t st;
    memset(&cfg, 0, sizeof(cfg));
    cfg.user = mqim_str_from_cstr(user);
    cfg.device = mqim_str_from_cstr(device);
    cfg.crypto = &mqim_crypto_mbedtls_ops;
    cfg.entropy = mqim_posix_entropy;
    cfg.store = &mqim_lmdb_e2e_ops;
    cfg.store_ctx = store;
    cfg.refuse_changed_keys = refuse_changed;
    cfg.on_key_changed = on_key_changed;
    st = mqim_e2e_init(&e2e, &cfg);
    if (st != MQIM_OK) {
        fprintf(stderr, "mqim: cannot load or make this device's E2E key: %s\n", mqim_status_str(st));
        return -1;
    }
    trust_store = store;
    ready = true;
    return 0;
}

void cli_e2e_on_poll(mqim_client_t *c)
{
    char payload[128];
    size_t len = 0;
    if (!mqim_client_connected(c)) {
        key_published = false; /* again after a reconnect: cheap, and the gateway ignores a repeat */
        return;
    }
    if (ready && !key_published && mqim_e2e_key_payload(&e2e, payload, sizeof(payload), &len) == MQIM_OK) {
        key_published = mqim_client_publish_key(c, (mqim_str_t){ payload, len }) == MQIM_OK;
    }
}

mqim_status_t cli_e2e_request_keys(mqim_client_t *c, const char *name, bool group)
{
    char req[160];
    size_t len = 0;
    mqim_status_t st = mqim_e2e_keys_request(MQIM_STR("cli-keys"), mqim_str_from_cstr(name), group, req,
                                             sizeof(req), &len);
    keys_ready = keys_failed = false;
    return st == MQIM_OK ? mqim_client_ctl(c, (mqim_str_t){ req, len }) : st;
}

bool cli_e2e_on_response(mqim_str_t json)
{
    mqim_json_value_t root, op, req, ok;
    mqim_status_t st;
    /* ours: the top-level "op" is "keys" and "req" the one we sent */
    if (mqim_json_parse(json, MQIM_JSON_DEPTH_MAX, &root) != MQIM_OK || root.type != MQIM_JSON_OBJECT ||
        mqim_json_find(&root, "op", &op) != MQIM_OK || !mqim_json_string_eq(&op, "keys") ||
        mqim_json_find(&root, "req", &req) != MQIM_OK || !mqim_json_string_eq(&req, "cli-keys")) {
        return false;
    }
    keys_failed = true;
    if (mqim_json_find(&root, "ok", &ok) != MQIM_OK || ok.type != MQIM_JSON_TRUE) {
        fprintf(stderr, "mqim: the gateway did not give the keys: %.*s\n", (int)json.len, json.ptr);
        return true;
    }
    if (json.len >= sizeof(keys_json)) {
        fprintf(stderr, "mqim: the gateway's keys answer is larger than %zu bytes\n", sizeof(keys_json));
        return true;
    }
    memcpy(keys_json, json.ptr, json.len);
    st = mqim_e2e_keys_parse(keys_json, json.len, keys, MQIM_CFG_E2E_RECIPIENTS_MAX, &nkeys, &keys_total,
                             keys_arena, sizeof(keys_arena));
    if (st != MQIM_OK) {
        fprintf(stderr, "mqim: the gateway's keys answer is malformed: %s\n", mqim_status_str(st));
        return true;
    }
    keys_failed = false;
    keys_ready = true;
    return true;
}

bool cli_e2e_keys_ready(void)
{
    return keys_ready;
}

bool cli_e2e_keys_failed(void)
{
    return keys_failed;
}

mqim_status_t cli_e2e_send(mqim_client_t *c, const char *name, bool group, mqim_str_t text, uint32_t *key)
{
    mqim_envelope_t env;
    mqim_status_t st;
    if (keys_total > nkeys) {
        return MQIM_E2E_TOO_MANY_RECIPIENTS;
    }
    st = mqim_e2e_seal_message(&e2e, mqim_str_from_cstr(name), group, MQIM_STR("text"), text, keys, nkeys, &env);
    return st == MQIM_OK ? mqim_client_send_envelope(c, &env, key) : st;
}

mqim_status_t cli_e2e_open(const mqim_envelope_t *env, bool live, mqim_envelope_t *plain)
{
    static mqim_e2e_sender_t sender; /* plain->device points into it */
    if (!ready) {
        return MQIM_INTERNAL;
    }
    return mqim_e2e_open_message(&e2e, env, live, plain, &sender);
}

/* One key: "STATE USER/DEVICE FP" for people (states first as before:
 * "this device", "trusted"), or {"event":"key",...} with --json. */
static void key_line(bool json, const char *state, mqim_str_t user, mqim_str_t device, const char *fp,
                     bool state_last)
{
    if (json) {
        printf("{\"event\":\"key\",\"user\":\"%.*s\",\"device\":\"%.*s\",\"fingerprint\":\"%s\","
               "\"state\":\"%s\"}\n", /* names and fingerprints need no JSON escapes */
               (int)user.len, user.ptr, (int)device.len, device.ptr, fp, state);
    } else if (state_last) {
        printf("%.*s/%.*s %s %s\n", (int)user.len, user.ptr, (int)device.len, device.ptr, fp, state);
    } else {
        printf("%s %.*s/%.*s %s\n", state, (int)user.len, user.ptr, (int)device.len, device.ptr, fp);
    }
}

static void print_one(void *ctx, mqim_str_t user, mqim_str_t device, const uint8_t pk[MQIM_E2E_KEY_LEN])
{
    char fp[MQIM_E2E_FINGERPRINT_LEN + 1];
    mqim_e2e_fingerprint(pk, fp);
    key_line(*(const bool *)ctx, "trusted", user, device, fp, false);
}

void cli_e2e_print_trusted(mqim_lmdb_store_t *store, bool json)
{
    char fp[MQIM_E2E_FINGERPRINT_LEN + 1];
    mqim_e2e_fingerprint(e2e.pk, fp);
    key_line(json, "this device", e2e.cfg.user, e2e.cfg.device, fp, false);
    (void)mqim_lmdb_e2e_list(store, print_one, &json);
}

int cli_e2e_print_fetched(const char *user, const char *trust_device, bool json)
{
    int found = 0;
    for (size_t i = 0; i < nkeys; i++) {
        char fp[MQIM_E2E_FINGERPRINT_LEN + 1];
        uint8_t known[MQIM_E2E_KEY_LEN];
        const char *state;
        mqim_status_t st;
        if (!mqim_str_eq_cstr(keys[i].user, user)) {
            continue; /* the answer also holds this user's own keys */
        }
        mqim_e2e_fingerprint(keys[i].pk, fp);
        if (trust_device != NULL) {
            if (mqim_str_eq_cstr(keys[i].device, trust_device) &&
                mqim_e2e_accept(&e2e, keys[i].user, keys[i].device, keys[i].pk) == MQIM_OK) {
                key_line(json, "trusted", keys[i].user, keys[i].device, fp, false);
                found = 1;
            }
            continue;
        }
        st = mqim_lmdb_e2e_ops.trust_get(trust_store, keys[i].user, keys[i].device, known);
        state = st == MQIM_NOT_FOUND                                      ? "new"
                : st == MQIM_OK && memcmp(known, keys[i].pk, 32) == 0 ? "trusted"
                : st == MQIM_OK                                           ? "CHANGED"
                                                                          : "unknown";
        key_line(json, state, keys[i].user, keys[i].device, fp, true);
        found = 1;
    }
    if (!found && trust_device != NULL) {
        fprintf(stderr, "mqim: %s has no key for a device named %s\n", user, trust_device);
        return MQIM_EXIT_REJECTED;
    }
    if (!found && !json) {
        printf("%s has no device keys (no device of %s has published one)\n", user, user);
    }
    return 0;
}
