/* E2E unit tests (e2e.h, docs/e2e.md): the crypto port against the RFC
 * vectors, the format against the test vector of docs/e2e.md, and every
 * way a message must fail to open. `test_e2e --vector` prints the vector
 * (docs/e2e.md shows it; e2e_reference.py checks it independently). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mqim/base64.h"
#include "mqim/e2e.h"
#include "mqim_check.h"
#include "mqim_crypto.h"

static const mqim_crypto_ops_t *C = &mqim_crypto_mbedtls_ops;

static void unhex(const char *h, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        sscanf(h + 2u * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
}

static void test_port_rfc_vectors(void)
{
    uint8_t k[32], u[32], out[32], want[32];
    /* RFC 7748 5.2 (the second u has its top bit set: ignored) */
    static const char *const x[][3] = {
        { "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
          "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
          "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552" },
        { "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
          "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
          "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957" },
        /* RFC 7748 6.1: Alice's public key, and the shared secret with Bob */
        { "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
          "0900000000000000000000000000000000000000000000000000000000000000",
          "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a" },
        { "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
          "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
          "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742" },
    };
    for (size_t i = 0; i < sizeof(x) / sizeof(x[0]); i++) {
        unhex(x[i][0], k, 32);
        unhex(x[i][1], u, 32);
        unhex(x[i][2], want, 32);
        CHECK_EQ_INT(C->x25519(NULL, k, u, out), 0);
        CHECK(memcmp(out, want, 32) == 0);
    }
    /* a small-order point gives no shared secret: refused */
    memset(u, 0, sizeof(u));
    CHECK(C->x25519(NULL, k, u, out) < 0);
    u[0] = 1;
    CHECK(C->x25519(NULL, k, u, out) < 0);

    /* RFC 8439 2.8.2 */
    {
        static const char pt[] = "Ladies and Gentlemen of the class of '99: If I could offer you only one "
                                 "tip for the future, sunscreen would be it.";
        static const char ct_hex[] =
            "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b"
            "1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
            "3ff4def08e4b7a9de576d26586cec64b6116"
            "1ae10b594f09e26a7e902ecbd0600691";
        uint8_t key[32], nonce[12], aad[12], ct[sizeof(pt) - 1 + 16], back[sizeof(pt)], exp[sizeof(ct)];
        for (unsigned i = 0; i < 32u; i++) {
            key[i] = (uint8_t)(0x80u + i);
        }
        unhex("070000004041424344454647", nonce, 12);
        unhex("50515253c0c1c2c3c4c5c6c7", aad, 12);
        unhex(ct_hex, exp, sizeof(exp));
        CHECK_EQ_INT(C->aead_seal(NULL, key, nonce, aad, 12, (const uint8_t *)pt, sizeof(pt) - 1, ct), 0);
        CHECK(memcmp(ct, exp, sizeof(ct)) == 0);
        CHECK_EQ_INT(C->aead_open(NULL, key, nonce, aad, 12, ct, sizeof(ct), back), 0);
        CHECK(memcmp(back, pt, sizeof(pt) - 1) == 0);
        /* in place, as mqim_e2e_open uses it */
        memcpy(back, ct, sizeof(pt) - 1);
        CHECK_EQ_INT(C->aead_open(NULL, key, nonce, aad, 12, ct, sizeof(ct), ct), 0);
        CHECK(memcmp(ct, pt, sizeof(pt) - 1) == 0);
        memcpy(ct, exp, sizeof(ct));
        ct[5] ^= 1u;
        CHECK(C->aead_open(NULL, key, nonce, aad, 12, ct, sizeof(ct), back) < 0);
        ct[5] ^= 1u;
        aad[0] ^= 1u;
        CHECK(C->aead_open(NULL, key, nonce, aad, 12, ct, sizeof(ct), back) < 0);
        CHECK(C->aead_open(NULL, key, nonce, aad, 12, ct, 15, back) < 0); /* shorter than a tag */
    }
    /* RFC 5869 A.1 */
    {
        uint8_t ikm[22], salt[13], info[10], okm[42], exp[42];
        memset(ikm, 0x0b, sizeof(ikm));
        for (unsigned i = 0; i < 13u; i++) {
            salt[i] = (uint8_t)i;
        }
        for (unsigned i = 0; i < 10u; i++) {
            info[i] = (uint8_t)(0xf0u + i);
        }
        unhex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865", exp, 42);
        CHECK_EQ_INT(C->hkdf_sha256(NULL, salt, sizeof(salt), ikm, sizeof(ikm), info, sizeof(info), okm, 42), 0);
        CHECK(memcmp(okm, exp, 42) == 0);
    }
}

/* ---- the test vector of docs/e2e.md ---- */

typedef struct device {
    const char *user, *name;
    uint8_t sk[32], pk[32];
} device_t;

static device_t alice_phone = { "alice", "phone", { 0 }, { 0 } };
static device_t alice_laptop = { "alice", "laptop", { 0 }, { 0 } };
static device_t bob_watch = { "bob", "watch", { 0 }, { 0 } };
static uint8_t esk[32], ck[32];

static void fill(uint8_t *b, uint8_t first)
{
    for (unsigned i = 0; i < 32u; i++) {
        b[i] = (uint8_t)(first + i);
    }
}

static void setup_devices(void)
{
    fill(alice_phone.sk, 0x01);
    fill(alice_laptop.sk, 0x41);
    fill(bob_watch.sk, 0x21);
    fill(esk, 0x61);
    fill(ck, 0x81);
    CHECK_EQ_INT(mqim_e2e_public_key(C, NULL, alice_phone.sk, alice_phone.pk), MQIM_OK);
    CHECK_EQ_INT(mqim_e2e_public_key(C, NULL, alice_laptop.sk, alice_laptop.pk), MQIM_OK);
    CHECK_EQ_INT(mqim_e2e_public_key(C, NULL, bob_watch.sk, bob_watch.pk), MQIM_OK);
}

static mqim_e2e_key_t key_of(const device_t *d)
{
    mqim_e2e_key_t k;
    k.user = mqim_str_from_cstr(d->user);
    k.device = mqim_str_from_cstr(d->name);
    memcpy(k.pk, d->pk, 32);
    return k;
}

static const char vector_text[] = "Hello, Bob! \xc3\xa9\xe2\x9c\x93";

/* alice/phone to bob, for alice/laptop, alice/phone and bob/watch */
static mqim_status_t seal_vector(char *out, size_t cap, size_t *len)
{
    static uint8_t work[128];
    mqim_e2e_key_t r[3];
    mqim_e2e_seal_in_t in;
    r[0] = key_of(&alice_laptop);
    r[1] = key_of(&alice_phone);
    r[2] = key_of(&bob_watch);
    memset(&in, 0, sizeof(in));
    in.from = MQIM_STR("alice");
    in.sender_device = MQIM_STR("phone");
    in.sender_sk = alice_phone.sk;
    in.sender_pk = alice_phone.pk;
    in.ephemeral_sk = esk;
    in.content_key = ck;
    in.to = MQIM_STR("bob");
    in.id = MQIM_STR("01JE2EVECTOR000000000000001");
    in.type = MQIM_STR("text");
    in.recipients = r;
    in.recipient_count = 3;
    in.text = mqim_str_from_cstr(vector_text);
    in.work = work;
    in.work_cap = sizeof(work);
    return mqim_e2e_seal(C, NULL, &in, out, cap, len);
}

/* The vector's "enc", as docs/e2e.md prints it. */
static const char vector_enc[] =
#include "e2e_vector.inc"
    ;

static mqim_envelope_t vector_env(const char *enc)
{
    mqim_envelope_t env;
    memset(&env, 0, sizeof(env));
    env.id = MQIM_STR("01JE2EVECTOR000000000000001");
    env.from = MQIM_STR("alice");
    env.to = MQIM_STR("bob");
    env.type = MQIM_STR("text");
    env.enc = mqim_str_from_cstr(enc);
    return env;
}

static mqim_status_t open_as(const device_t *d, const mqim_envelope_t *env, char *text, size_t *len)
{
    mqim_e2e_sender_t s;
    uint8_t out[4096];
    mqim_status_t st = mqim_e2e_open(C, NULL, mqim_str_from_cstr(d->user), mqim_str_from_cstr(d->name), d->sk,
                                     d->pk, env, out, sizeof(out), len, &s);
    if (st == MQIM_OK) {
        memcpy(text, out, *len);
        text[*len] = '\0';
        CHECK_EQ_STR(s.device, s.device_len, "phone");
        CHECK(memcmp(s.pk, alice_phone.pk, 32) == 0);
    }
    return st;
}

static void test_vector(void)
{
    char out[4096], text[4096];
    size_t len = 0, need = 0;
    mqim_envelope_t env;
    CHECK_EQ_INT(seal_vector(NULL, 0, &need), MQIM_BUFFER_TOO_SMALL);
    CHECK_EQ_INT(seal_vector(out, need, &len), MQIM_BUFFER_TOO_SMALL); /* one short: no room for the NUL */
    CHECK_EQ_INT(seal_vector(out, sizeof(out), &len), MQIM_OK);
    CHECK_EQ_INT(len, need);
    CHECK_EQ_STR(out, len, vector_enc);
    /* the derived values docs/e2e.md lists */
    {
        uint8_t want[32];
        char fp[MQIM_E2E_FINGERPRINT_LEN + 1];
        unhex("07a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b86d1c7c", want, 32);
        CHECK(memcmp(alice_phone.pk, want, 32) == 0);
        unhex("5869aff450549732cbaaed5e5df9b30a6da31cb0e5742bad5ad4a1a768f1a67b", want, 32);
        CHECK(memcmp(bob_watch.pk, want, 32) == 0);
        mqim_e2e_fingerprint(bob_watch.pk, fp);
        CHECK(strcmp(fp, "4457 1347 9455 9182 2267 54e9 dd2f 1083") == 0);
    }
    /* every recipient opens it; the text is the same */
    env = vector_env(vector_enc);
    CHECK_EQ_INT(open_as(&bob_watch, &env, text, &len), MQIM_OK);
    CHECK_EQ_STR(text, len, vector_text);
    CHECK_EQ_INT(open_as(&alice_laptop, &env, text, &len), MQIM_OK);
    CHECK_EQ_STR(text, len, vector_text);
    CHECK_EQ_INT(open_as(&alice_phone, &env, text, &len), MQIM_OK);
    /* the open buffer must hold the ciphertext */
    {
        mqim_e2e_sender_t s;
        uint8_t small[8];
        CHECK_EQ_INT(mqim_e2e_open(C, NULL, MQIM_STR("bob"), MQIM_STR("watch"), bob_watch.sk, bob_watch.pk,
                                   &env, small, sizeof(small), &len, &s),
                     MQIM_BUFFER_TOO_SMALL);
    }
}

/* Whatever is changed after sealing, the message does not open. */
static void test_tamper(void)
{
    char enc[4096], text[4096];
    size_t len = 0, n = strlen(vector_enc);
    mqim_envelope_t env;
    device_t carol = { "carol", "phone", { 0 }, { 0 } };
    fill(carol.sk, 0xa1);
    CHECK_EQ_INT(mqim_e2e_public_key(C, NULL, carol.sk, carol.pk), MQIM_OK);

    /* the envelope fields bound in H */
    env = vector_env(vector_enc);
    env.id = MQIM_STR("01JE2EVECTOR000000000000002");
    CHECK_EQ_INT(open_as(&bob_watch, &env, text, &len), MQIM_E2E_AUTH_FAILED);
    env = vector_env(vector_enc);
    env.type = MQIM_STR("note");
    CHECK_EQ_INT(open_as(&bob_watch, &env, text, &len), MQIM_E2E_AUTH_FAILED);
    env = vector_env(vector_enc);
    env.from = MQIM_STR("mallory"); /* a forged sender */
    CHECK_EQ_INT(open_as(&bob_watch, &env, text, &len), MQIM_E2E_AUTH_FAILED);
    env = vector_env(vector_enc);
    env.to = (mqim_str_t){ 0, 0 };
    env.group = MQIM_STR("bob"); /* moved into a group of that name */
    CHECK_EQ_INT(open_as(&bob_watch, &env, text, &len), MQIM_E2E_AUTH_FAILED);
    /* misdirected: carol is not a recipient */
    env = vector_env(vector_enc);
    CHECK_EQ_INT(open_as(&carol, &env, text, &len), MQIM_E2E_NOT_FOR_DEVICE);

    /* every base64 character of the enc text, changed: never opens. Each
     * wrap is authenticated by its own recipient's key, so a changed wrap
     * fails for that recipient (the others open theirs). */
    {
        const char *wraps[3];
        const device_t *owner[3] = { &alice_laptop, &alice_phone, &bob_watch };
        unsigned tried = 0, failed = 0;
        wraps[0] = strstr(vector_enc, "\"k\":\"");
        wraps[1] = wraps[0] != NULL ? strstr(wraps[0] + 1, "\"k\":\"") : NULL;
        wraps[2] = wraps[1] != NULL ? strstr(wraps[1] + 1, "\"k\":\"") : NULL;
        CHECK(wraps[2] != NULL);
        for (size_t i = 30; wraps[2] != NULL && i < n; i++) {
            char c = vector_enc[i];
            const device_t *who = &bob_watch;
            bool b64 = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
                       c == '/';
            if (!b64) {
                continue;
            }
            for (unsigned w = 0; w < 3u; w++) {
                if (vector_enc + i >= wraps[w] + 5 && vector_enc + i < wraps[w] + 5 + 64) {
                    who = owner[w];
                }
            }
            memcpy(enc, vector_enc, n + 1);
            enc[i] = c == 'A' ? 'B' : 'A';
            env = vector_env(enc);
            tried++;
            if (open_as(who, &env, text, &len) != MQIM_OK) {
                failed++;
            }
        }
        CHECK(tried > 300u);
        CHECK_EQ_INT(failed, tried);
    }
    /* a recipient entry renamed to carol: carol finds "her" entry but the
     * wrap was made for bob's key, and H changed for everyone */
    {
        char *p;
        memcpy(enc, vector_enc, n + 1);
        p = strstr(enc, "\"u\":\"bob\",\"d\":\"watch\"");
        CHECK(p != NULL);
        if (p != NULL) {
            memcpy(p, "\"u\":\"bob\",\"d\":\"phone\"", 21);
            device_t bob_phone = bob_watch;
            bob_phone.name = "phone";
            env = vector_env(enc);
            CHECK_EQ_INT(open_as(&bob_phone, &env, text, &len), MQIM_E2E_AUTH_FAILED);
            CHECK_EQ_INT(open_as(&alice_laptop, &env, text, &len), MQIM_E2E_AUTH_FAILED);
        }
    }
}

static void test_malformed(void)
{
    static const char *const bad[] = {
        "{}",
        "[]",
        "{\"v\":2,\"sd\":\"phone\",\"spk\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\","
        "\"epk\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\",\"r\":[],\"ct\":\"AAAAAAAAAAAAAAAAAAAAAA==\"}",
        "{\"v\":1,\"sd\":\"phone\",\"spk\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\","
        "\"epk\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\",\"r\":[],\"ct\":\"AAAAAAAAAAAAAAAAAAAAAA==\"}",
        "{\"v\":1,\"sd\":\"phone\",\"spk\":\"AAAA\",\"epk\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\","
        "\"r\":[{\"u\":\"bob\",\"d\":\"watch\",\"k\":\"AAAA\"}],\"ct\":\"AAAAAAAAAAAAAAAAAAAAAA==\"}",
    };
    char text[4096], enc[4096];
    size_t len = 0, n = strlen(vector_enc);
    mqim_envelope_t env;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        env = vector_env(bad[i]);
        CHECK_EQ_INT(open_as(&bob_watch, &env, text, &len), MQIM_E2E_MALFORMED);
    }
    /* an unknown member, a repeated one, an escape inside base64, a bad name */
    {
        static const char *const edits[][2] = {
            { "{\"v\":1,", "{\"v\":1,\"x\":0," },
            { "{\"v\":1,", "{\"v\":1,\"v\":1," },
            { "\"sd\":\"phone\"", "\"sd\":\"ph one\"" },
            { "\"u\":\"bob\"", "\"u\":\"b\\u006fb\",\"u\":\"bob\"" },
            { "\"ct\":\"", "\"ct\":\"\\u0041" },
            { "\"v\":1", "\"v\":1.0" },
        };
        for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
            const char *p = strstr(vector_enc, edits[i][0]);
            size_t a = strlen(edits[i][0]), b = strlen(edits[i][1]);
            CHECK(p != NULL);
            if (p == NULL) {
                continue;
            }
            memcpy(enc, vector_enc, (size_t)(p - vector_enc));
            memcpy(enc + (p - vector_enc), edits[i][1], b);
            memcpy(enc + (p - vector_enc) + b, p + a, n - (size_t)(p - vector_enc) - a + 1);
            env = vector_env(enc);
            CHECK_EQ_INT(open_as(&bob_watch, &env, text, &len), MQIM_E2E_MALFORMED);
        }
    }
}

/* ---- one device's state: trust on first use, replay, sealing ---- */

typedef struct ram_store {
    uint8_t sk[32];
    bool has_sk;
    struct { char user[65], device[33]; uint8_t pk[32]; } t[16];
    unsigned n;
} ram_store_t;

static mqim_status_t rs_id_load(void *ctx, uint8_t sk[32])
{
    ram_store_t *s = ctx;
    if (!s->has_sk) {
        return MQIM_NOT_FOUND;
    }
    memcpy(sk, s->sk, 32);
    return MQIM_OK;
}

static mqim_status_t rs_id_save(void *ctx, const uint8_t sk[32])
{
    ram_store_t *s = ctx;
    memcpy(s->sk, sk, 32);
    s->has_sk = true;
    return MQIM_OK;
}

static int rs_find(ram_store_t *s, mqim_str_t u, mqim_str_t d)
{
    for (unsigned i = 0; i < s->n; i++) {
        if (mqim_str_eq_cstr(u, s->t[i].user) && mqim_str_eq_cstr(d, s->t[i].device)) {
            return (int)i;
        }
    }
    return -1;
}

static mqim_status_t rs_get(void *ctx, mqim_str_t u, mqim_str_t d, uint8_t pk[32])
{
    int i = rs_find(ctx, u, d);
    if (i < 0) {
        return MQIM_NOT_FOUND;
    }
    memcpy(pk, ((ram_store_t *)ctx)->t[i].pk, 32);
    return MQIM_OK;
}

static mqim_status_t rs_put(void *ctx, mqim_str_t u, mqim_str_t d, const uint8_t pk[32])
{
    ram_store_t *s = ctx;
    int i = rs_find(s, u, d);
    if (i < 0) {
        if (s->n == 16u) {
            return MQIM_STORE_FULL;
        }
        i = (int)s->n++;
        snprintf(s->t[i].user, sizeof(s->t[i].user), "%.*s", (int)u.len, u.ptr);
        snprintf(s->t[i].device, sizeof(s->t[i].device), "%.*s", (int)d.len, d.ptr);
    }
    memcpy(s->t[i].pk, pk, 32);
    return MQIM_OK;
}

static const mqim_e2e_store_ops_t ram_store_ops = { rs_id_load, rs_id_save, rs_get, rs_put };

static uint8_t counter;
static int32_t test_entropy(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    for (size_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)(counter * 31u + i * 7u + 3u);
    }
    counter++;
    return 0;
}

static unsigned changes;
static bool last_accepted;
static void on_changed(void *ctx, mqim_str_t user, mqim_str_t device, const char *old_fp, const char *new_fp,
                       bool accepted)
{
    (void)ctx;
    (void)user;
    (void)device;
    CHECK(strlen(old_fp) == MQIM_E2E_FINGERPRINT_LEN && strcmp(old_fp, new_fp) != 0);
    changes++;
    last_accepted = accepted;
}

static void e2e_setup(mqim_e2e_t *e, ram_store_t *s, const char *user, const char *dev, bool refuse)
{
    mqim_e2e_config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.user = mqim_str_from_cstr(user);
    cfg.device = mqim_str_from_cstr(dev);
    cfg.crypto = C;
    cfg.entropy = test_entropy;
    cfg.store = &ram_store_ops;
    cfg.store_ctx = s;
    cfg.refuse_changed_keys = refuse;
    cfg.on_key_changed = on_changed;
    CHECK_EQ_INT(mqim_e2e_init(e, &cfg), MQIM_OK);
}

static mqim_e2e_key_t key_from(const mqim_e2e_t *e)
{
    mqim_e2e_key_t k;
    k.user = e->cfg.user;
    k.device = e->cfg.device;
    memcpy(k.pk, e->pk, 32);
    return k;
}

static mqim_e2e_t ea, eb, eb2;   /* alice/phone, bob/watch, bob/watch reinstalled */
static ram_store_t sa, sb, sb2;

static void test_device_state(void)
{
    mqim_envelope_t env, plain;
    mqim_e2e_sender_t from;
    mqim_e2e_key_t keys[3];
    char copy[8192];
    uint8_t sk_before[32];
    e2e_setup(&ea, &sa, "alice", "phone", false);
    e2e_setup(&eb, &sb, "bob", "watch", false);
    CHECK(sa.has_sk && sb.has_sk);
    /* the key survives a restart: init again loads it */
    memcpy(sk_before, ea.sk, 32);
    e2e_setup(&ea, &sa, "alice", "phone", false);
    CHECK(memcmp(sk_before, ea.sk, 32) == 0);

    keys[0] = key_from(&eb);
    /* no key of bob: nothing to seal for */
    CHECK_EQ_INT(mqim_e2e_seal_message(&ea, MQIM_STR("bob"), false, MQIM_STR("text"), MQIM_STR("hi"), NULL, 0, &env),
                 MQIM_E2E_NO_KEYS);
    CHECK_EQ_INT(mqim_e2e_seal_message(&ea, MQIM_STR("bob"), false, MQIM_STR("text"), MQIM_STR(""), keys, 1, &env),
                 MQIM_BODY_EMPTY);
    CHECK_EQ_INT(mqim_e2e_seal_message(&ea, MQIM_STR("bob"), false, MQIM_STR("text"), MQIM_STR("hi bob"), keys, 1,
                                       &env),
                 MQIM_OK);
    CHECK(env.enc.len > 0u && env.body.len == 0u && env.id.len == 32u);
    CHECK_EQ_STR(env.device.ptr, env.device.len, "phone");
    CHECK(sa.n == 1u); /* bob/watch trusted on first use */
    env.from = MQIM_STR("alice"); /* as the gateway stamps it */
    memcpy(copy, env.enc.ptr, env.enc.len);
    env.enc.ptr = copy;
    CHECK_EQ_INT(mqim_e2e_open_message(&eb, &env, true, &plain, &from), MQIM_OK);
    CHECK_EQ_STR(plain.body.ptr, plain.body.len, "hi bob");
    CHECK(plain.enc.len == 0u);
    CHECK_EQ_STR(plain.device.ptr, plain.device.len, "phone");
    CHECK(sb.n == 1u); /* alice/phone trusted on first use */
    /* the echo opens on the sending device */
    CHECK_EQ_INT(mqim_e2e_open_message(&ea, &env, true, &plain, &from), MQIM_OK);
    /* a replay (same sender, device, id under a new seq) is refused... */
    CHECK_EQ_INT(mqim_e2e_open_message(&eb, &env, true, &plain, &from), MQIM_E2E_REPLAY);
    /* ...but history pages may show it again */
    CHECK_EQ_INT(mqim_e2e_open_message(&eb, &env, false, &plain, &from), MQIM_OK);
    /* a message that fails to open does not enter the window */
    {
        mqim_envelope_t bad = env;
        bad.id = MQIM_STR("other");
        CHECK_EQ_INT(mqim_e2e_open_message(&eb, &bad, true, &plain, &from), MQIM_E2E_AUTH_FAILED);
        CHECK_EQ_INT(eb.replay_count, 1);
    }

    /* bob reinstalls his watch: a new key for bob/watch */
    memset(&sb2, 0, sizeof(sb2));
    counter = 100;
    e2e_setup(&eb2, &sb2, "bob", "watch", false);
    CHECK(memcmp(eb2.pk, eb.pk, 32) != 0);
    keys[0] = key_from(&eb2);
    changes = 0;
    CHECK_EQ_INT(mqim_e2e_seal_message(&ea, MQIM_STR("bob"), false, MQIM_STR("text"), MQIM_STR("new watch?"), keys, 1,
                                       &env),
                 MQIM_OK);
    CHECK(changes == 1u && last_accepted); /* warned, then trusted (the default) */
    /* alice refuses changed keys: a third key for bob/watch is refused */
    ea.cfg.refuse_changed_keys = true;
    keys[0] = key_from(&eb);
    CHECK_EQ_INT(mqim_e2e_seal_message(&ea, MQIM_STR("bob"), false, MQIM_STR("text"), MQIM_STR("x"), keys, 1, &env),
                 MQIM_E2E_KEY_CHANGED);
    CHECK(changes == 2u && !last_accepted);
    /* the user accepts it after comparing fingerprints */
    CHECK_EQ_INT(mqim_e2e_accept(&ea, keys[0].user, keys[0].device, keys[0].pk), MQIM_OK);
    CHECK_EQ_INT(mqim_e2e_seal_message(&ea, MQIM_STR("bob"), false, MQIM_STR("text"), MQIM_STR("x"), keys, 1, &env),
                 MQIM_OK);
    /* incoming from a changed key, refused */
    {
        mqim_e2e_t ea2;
        ram_store_t sa2;
        memset(&sa2, 0, sizeof(sa2));
        counter = 200;
        e2e_setup(&ea2, &sa2, "alice", "phone", false); /* alice/phone with another key */
        keys[0] = key_from(&eb);
        CHECK_EQ_INT(mqim_e2e_seal_message(&ea2, MQIM_STR("bob"), false, MQIM_STR("text"), MQIM_STR("it's me"), keys,
                                           1, &env),
                     MQIM_OK);
        env.from = MQIM_STR("alice");
        eb.cfg.refuse_changed_keys = true;
        changes = 0;
        CHECK_EQ_INT(mqim_e2e_open_message(&eb, &env, true, &plain, &from), MQIM_E2E_KEY_CHANGED);
        CHECK(changes == 1u);
        eb.cfg.refuse_changed_keys = false;
    }
    /* too many recipients for this build */
    {
        static mqim_e2e_key_t many[MQIM_CFG_E2E_RECIPIENTS_MAX + 1];
        static char names[MQIM_CFG_E2E_RECIPIENTS_MAX + 1][8];
        for (unsigned i = 0; i <= MQIM_CFG_E2E_RECIPIENTS_MAX; i++) {
            snprintf(names[i], sizeof(names[i]), "d%u", i);
            many[i] = key_from(&eb);
            many[i].device = mqim_str_from_cstr(names[i]);
        }
        CHECK_EQ_INT(mqim_e2e_seal_message(&ea, MQIM_STR("bob"), false, MQIM_STR("text"), MQIM_STR("x"), many,
                                           MQIM_CFG_E2E_RECIPIENTS_MAX + 1u, &env),
                     MQIM_E2E_TOO_MANY_RECIPIENTS);
    }
    /* the published key */
    {
        char buf[128];
        size_t len = 0, need = 0;
        CHECK_EQ_INT(mqim_e2e_key_payload(&ea, NULL, 0, &need), MQIM_BUFFER_TOO_SMALL);
        CHECK_EQ_INT(mqim_e2e_key_payload(&ea, buf, sizeof(buf), &len), MQIM_OK);
        CHECK_EQ_INT(len, need);
        CHECK(strncmp(buf, "{\"device\":\"phone\",\"x25519\":\"", 28) == 0 && len == 28u + 44u + 2u);
    }
}

static void test_keys_parse(void)
{
    char arena[512];
    mqim_e2e_key_t k[2];
    size_t n = 0, total = 0, len = 0;
    const char *res = "{\"op\":\"keys\",\"req\":\"k1\",\"ok\":true,\"keys\":["
                      "{\"user\":\"alice\",\"device\":\"phone\",\"x25519\":\"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=\"},"
                      "{\"user\":\"bob\",\"device\":\"watch\",\"x25519\":\"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=\"},"
                      "{\"user\":\"bob\",\"device\":\"tv\",\"x25519\":\"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=\"}]}";
    const char *retained = "{\"user\":\"bob\",\"keys\":[{\"device\":\"watch\",\"x25519\":"
                           "\"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=\",\"ts\":1}]}";
    char req[64];
    CHECK_EQ_INT(mqim_e2e_keys_parse(res, strlen(res), k, 2, &n, &total, arena, sizeof(arena)), MQIM_OK);
    CHECK(n == 2u && total == 3u);
    CHECK_EQ_STR(k[1].user.ptr, k[1].user.len, "bob");
    CHECK_EQ_STR(k[1].device.ptr, k[1].device.len, "watch");
    CHECK(k[0].pk[0] == 1u && k[0].pk[31] == 32u);
    CHECK_EQ_INT(mqim_e2e_keys_parse(retained, strlen(retained), k, 2, &n, &total, arena, sizeof(arena)), MQIM_OK);
    CHECK(n == 1u);
    CHECK_EQ_STR(k[0].user.ptr, k[0].user.len, "bob");
    /* a short key, a bad device name, no keys member */
    CHECK_EQ_INT(mqim_e2e_keys_parse("{\"keys\":[{\"user\":\"a\",\"device\":\"d\",\"x25519\":\"AAAA\"}]}", 52, k, 2, &n,
                                     &total, arena, sizeof(arena)),
                 MQIM_FIELD_TYPE);
    CHECK_EQ_INT(mqim_e2e_keys_parse("{\"keys\":[{\"user\":\"a\",\"device\":\"d d\",\"x25519\":\"AAAA\"}]}", 54, k, 2, &n,
                                     &total, arena, sizeof(arena)),
                 MQIM_NAME_BAD_CHAR);
    CHECK_EQ_INT(mqim_e2e_keys_parse("{\"op\":\"keys\"}", 13, k, 2, &n, &total, arena, sizeof(arena)),
                 MQIM_FIELD_MISSING);
    CHECK_EQ_INT(mqim_e2e_keys_request(MQIM_STR("k1"), MQIM_STR("team"), true, req, sizeof(req), &len), MQIM_OK);
    CHECK_EQ_STR(req, len, "{\"op\":\"keys\",\"req\":\"k1\",\"group\":\"team\"}");
}

static void test_fingerprint(void)
{
    uint8_t pk[32] = { 0 };
    char fp[MQIM_E2E_FINGERPRINT_LEN + 1];
    /* SHA-256 of 32 zero bytes: 66687aadf862bd776c8fc18b8e9f8e20... */
    mqim_e2e_fingerprint(pk, fp);
    CHECK(strcmp(fp, "6668 7aad f862 bd77 6c8f c18b 8e9f 8e20") == 0);
}

int main(int argc, char **argv)
{
    setup_devices();
    if (argc > 1 && strcmp(argv[1], "--vector") == 0) {
        char out[4096];
        size_t len = 0;
        if (seal_vector(out, sizeof(out), &len) != MQIM_OK) {
            return 1;
        }
        printf("%s\n", out);
        return 0;
    }
    test_port_rfc_vectors();
    test_vector();
    test_tamper();
    test_malformed();
    test_device_state();
    test_keys_parse();
    test_fingerprint();
    return CHECK_REPORT();
}
