/* common/ unit tests: table-driven, with exact-size and one-byte-short
 * buffers for every encoder. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mqim/base64.h"
#include "mqim/envelope.h"
#include "mqim/gateway_status.h"
#include "mqim/file_meta.h"
#include "mqim/id.h"
#include "mqim/json_read.h"
#include "mqim/json_write.h"
#include "mqim/limits.h"
#include "mqim/name.h"
#include "mqim/utf8.h"
#include "mqim/sha256.h"
#include "mqim/status.h"
#include "mqim/topic.h"
#include "mqim_check.h"

#define CANARY 0x5a

static void test_status_table(void)
{
    static const struct { mqim_status_t st; int num; } rows[] = {
#define ROW_(suffix, num, name, str) { MQIM_##suffix, num },
        MQIM_STATUS_TABLE(ROW_)
#undef ROW_
    };
    size_t n = sizeof(rows) / sizeof(rows[0]);
    for (size_t i = 0; i < n; i++) {
        CHECK_EQ_INT(rows[i].st, rows[i].num);
        CHECK(strlen(mqim_status_name(rows[i].st)) > 1u);
        CHECK(strlen(mqim_status_str(rows[i].st)) > 1u);
        CHECK(strcmp(mqim_status_name(rows[i].st), "unknown_status") != 0);
        for (size_t k = i + 1u; k < n; k++) {
            CHECK(rows[i].num != rows[k].num);
            CHECK(strcmp(mqim_status_name(rows[i].st), mqim_status_name(rows[k].st)) != 0);
        }
    }
    /* Wire-visible numbers never change. */
    CHECK_EQ_INT(MQIM_OK, 0);
    CHECK_EQ_INT(MQIM_UNKNOWN_PEER, 60);
    CHECK_EQ_INT(MQIM_STORE_FULL, 70);
    CHECK(strcmp(mqim_status_name(MQIM_BODY_TOO_LARGE), "body_too_large") == 0);
    CHECK(strcmp(mqim_status_name((mqim_status_t)9999), "unknown_status") == 0);
    CHECK(strcmp(mqim_status_str((mqim_status_t)-1), "unknown status") == 0);
}

static void test_names(void)
{
    static const struct { mqim_name_kind_t kind; const char *name; size_t repeat; mqim_status_t want; } rows[] = {
        { MQIM_NAME_USER, "alice", 0, MQIM_OK },
        { MQIM_NAME_USER, "A-b_c.9", 0, MQIM_OK },
        { MQIM_NAME_USER, "", 0, MQIM_NAME_EMPTY },
        { MQIM_NAME_USER, "x", 64, MQIM_OK },
        { MQIM_NAME_USER, "x", 65, MQIM_NAME_TOO_LONG },
        { MQIM_NAME_GROUP, "g", 64, MQIM_OK },
        { MQIM_NAME_GROUP, "g", 65, MQIM_NAME_TOO_LONG },
        { MQIM_NAME_DEVICE, "d", 32, MQIM_OK },
        { MQIM_NAME_DEVICE, "d", 33, MQIM_NAME_TOO_LONG },
        { MQIM_NAME_USER, "a/b", 0, MQIM_NAME_BAD_CHAR },
        { MQIM_NAME_USER, "a+", 0, MQIM_NAME_BAD_CHAR },
        { MQIM_NAME_USER, "#", 0, MQIM_NAME_BAD_CHAR },
        { MQIM_NAME_USER, "a b", 0, MQIM_NAME_BAD_CHAR },
        { MQIM_NAME_USER, "caf\xc3\xa9", 0, MQIM_NAME_BAD_CHAR },
        { MQIM_NAME_USER, "a:b", 0, MQIM_NAME_BAD_CHAR },
        { (mqim_name_kind_t)7, "a", 0, MQIM_BAD_PARAMETER },
    };
    char buf[80];
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        mqim_str_t s = mqim_str_from_cstr(rows[i].name);
        if (rows[i].repeat > 0u) {
            memset(buf, rows[i].name[0], rows[i].repeat);
            s = (mqim_str_t){ buf, rows[i].repeat };
        }
        CHECK_EQ_INT(mqim_name_check(rows[i].kind, s), rows[i].want);
    }
    /* an embedded NUL is not a valid character */
    CHECK_EQ_INT(mqim_name_check(MQIM_NAME_USER, (mqim_str_t){ "a\0b", 3 }), MQIM_NAME_BAD_CHAR);
}

static void test_ids(void)
{
    char buf[80];
    CHECK_EQ_INT(mqim_id_check(MQIM_STR("m-0001_x")), MQIM_OK);
    CHECK_EQ_INT(mqim_id_check(MQIM_STR("")), MQIM_ID_EMPTY);
    CHECK_EQ_INT(mqim_id_check(MQIM_STR("a.b")), MQIM_ID_BAD_CHAR);
    CHECK_EQ_INT(mqim_id_check(MQIM_STR("a b")), MQIM_ID_BAD_CHAR);
    memset(buf, 'i', sizeof(buf));
    CHECK_EQ_INT(mqim_id_check((mqim_str_t){ buf, 64 }), MQIM_OK);
    CHECK_EQ_INT(mqim_id_check((mqim_str_t){ buf, 65 }), MQIM_ID_TOO_LONG);
}

static void test_utf8(void)
{
    static const struct { const char *s; size_t len; bool ok; } rows[] = {
        { "plain ascii", 11, true },
        { "", 0, true },
        { "caf\xc3\xa9", 5, true },
        { "\xe2\x82\xac", 3, true },          /* U+20AC */
        { "\xf0\x9f\x98\x80", 4, true },      /* U+1F600 */
        { "\xf4\x8f\xbf\xbf", 4, true },      /* U+10FFFF */
        { "\xf4\x90\x80\x80", 4, false },     /* > U+10FFFF */
        { "\xc0\xaf", 2, false },             /* overlong '/' */
        { "\xe0\x80\xaf", 3, false },         /* overlong */
        { "\xed\xa0\x80", 3, false },         /* surrogate */
        { "\xc3", 1, false },                 /* truncated */
        { "\xe2\x82", 2, false },             /* truncated */
        { "\x80", 1, false },                 /* lone continuation */
        { "\xff", 1, false },
        { "a\xc3\x28", 3, false },            /* bad continuation */
        { "nul\0inside", 10, true },          /* NUL is valid UTF-8 */
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        CHECK(mqim_utf8_valid(rows[i].s, rows[i].len) == rows[i].ok);
    }
}

static void test_topics_roundtrip(void)
{
    static const struct { mqim_topic_kind_t kind; const char *user; const char *name; const char *want; } rows[] = {
        { MQIM_TOPIC_OUT_DM, "alice", "bob", "u/alice/out/dm/bob" },
        { MQIM_TOPIC_OUT_GROUP, "alice", "team", "u/alice/out/group/team" },
        { MQIM_TOPIC_OUT_RECEIPT, "alice", "", "u/alice/out/receipt" },
        { MQIM_TOPIC_OUT_CTL, "alice", "", "u/alice/out/ctl" },
        { MQIM_TOPIC_OUT_STATUS, "alice", "phone", "u/alice/out/status/phone" },
        { MQIM_TOPIC_OUT_KEY, "alice", "", "u/alice/out/key" },
        { MQIM_TOPIC_IN_MSG, "bob", "", "u/bob/in/msg" },
        { MQIM_TOPIC_IN_ACK, "bob", "", "u/bob/in/ack" },
        { MQIM_TOPIC_IN_RES, "bob", "", "u/bob/in/res" },
        { MQIM_TOPIC_PRESENCE, "bob", "", "presence/bob" },
        { MQIM_TOPIC_KEYS, "bob", "", "keys/bob" },
        { MQIM_TOPIC_GATEWAY_STATUS, "", "", "gateway/status" },
        { MQIM_TOPIC_GATEWAY_STATS, "", "", "gateway/stats" },
        { MQIM_TOPIC_OUT_FILE, "alice", "", "u/alice/out/file" },
    };
    static const char *const roots[] = { "im", "acme/im" };
    CHECK_EQ_INT(sizeof(rows) / sizeof(rows[0]), MQIM_TOPIC_KIND_COUNT_);
    for (size_t r = 0; r < 2u; r++) {
        mqim_str_t root = mqim_str_from_cstr(roots[r]);
        for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
            char want[128], buf[128];
            size_t len = 0, need = 0;
            mqim_topic_t t;
            int n = snprintf(want, sizeof(want), "%s/%s", roots[r], rows[i].want);
            mqim_str_t user = mqim_str_from_cstr(rows[i].user), name = mqim_str_from_cstr(rows[i].name);
            /* size query, exact size, one byte short (NUL included in the need) */
            CHECK_EQ_INT(mqim_topic_build(root, rows[i].kind, user, name, NULL, 0, &need), MQIM_BUFFER_TOO_SMALL);
            CHECK_EQ_INT(need, n);
            memset(buf, CANARY, sizeof(buf));
            CHECK_EQ_INT(mqim_topic_build(root, rows[i].kind, user, name, buf, need, &len), MQIM_BUFFER_TOO_SMALL);
            CHECK((unsigned char)buf[need] == CANARY);
            CHECK_EQ_INT(mqim_topic_build(root, rows[i].kind, user, name, buf, need + 1u, &len), MQIM_OK);
            CHECK_EQ_STR(buf, len, want);
            CHECK(buf[len] == '\0' && (unsigned char)buf[len + 1u] == CANARY);
            CHECK_EQ_INT(mqim_topic_parse(root, (mqim_str_t){ buf, len }, &t), MQIM_OK);
            CHECK_EQ_INT(t.kind, rows[i].kind);
            CHECK(mqim_str_eq(t.user, user));
            CHECK(mqim_str_eq(t.name, name));
        }
    }
}

static void test_topic_parse_errors(void)
{
    static const struct { const char *topic; mqim_status_t want; } rows[] = {
        { "im/u/alice/out/dm/bob", MQIM_OK },
        { "other/u/alice/out/dm/bob", MQIM_TOPIC_BAD_ROOT },
        { "im", MQIM_TOPIC_BAD_ROOT },
        { "imx/u/a/in/msg", MQIM_TOPIC_BAD_ROOT },
        { "im/u/alice/out/dm/bob/extra", MQIM_TOPIC_UNKNOWN },
        { "im/u/alice/out/bogus", MQIM_TOPIC_UNKNOWN },
        { "im/u/alice/out/dm", MQIM_TOPIC_UNKNOWN },
        { "im/u/alice/out/dm/", MQIM_NAME_EMPTY },
        { "im/u//out/ctl", MQIM_NAME_EMPTY },
        { "im/u/+/out/ctl", MQIM_NAME_BAD_CHAR },
        { "im/u/alice/out/dm/#", MQIM_NAME_BAD_CHAR },
        { "im/u/alice/out/status/0123456789012345678901234567890123", MQIM_NAME_TOO_LONG },
        { "im/a/b/c/d/e/f/g/h", MQIM_TOPIC_UNKNOWN },
        { "im/gateway/status", MQIM_OK },
        { "im/gateway/other", MQIM_TOPIC_UNKNOWN },
    };
    char longt[300];
    mqim_topic_t t;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        mqim_status_t st = mqim_topic_parse(MQIM_STR("im"), mqim_str_from_cstr(rows[i].topic), &t);
        CHECK_EQ_INT(st, rows[i].want);
        if (st != rows[i].want) {
            fprintf(stderr, "  topic %s\n", rows[i].topic);
        }
    }
    memset(longt, 'a', sizeof(longt));
    memcpy(longt, "im/", 3);
    CHECK_EQ_INT(mqim_topic_parse(MQIM_STR("im"), (mqim_str_t){ longt, MQIM_TOPIC_MAX + 1u }, &t),
                 MQIM_TOPIC_TOO_LONG);
    CHECK_EQ_INT(mqim_topic_root_check(MQIM_STR("im")), MQIM_OK);
    CHECK_EQ_INT(mqim_topic_root_check(MQIM_STR("a/b")), MQIM_OK);
    CHECK_EQ_INT(mqim_topic_root_check(MQIM_STR("")), MQIM_BAD_PARAMETER);
    CHECK_EQ_INT(mqim_topic_root_check(MQIM_STR("a//b")), MQIM_BAD_PARAMETER);
    CHECK_EQ_INT(mqim_topic_root_check(MQIM_STR("/im")), MQIM_BAD_PARAMETER);
    CHECK_EQ_INT(mqim_topic_root_check(MQIM_STR("im/")), MQIM_BAD_PARAMETER);
    CHECK_EQ_INT(mqim_topic_root_check(MQIM_STR("i+m")), MQIM_BAD_PARAMETER);
    CHECK_EQ_INT(mqim_topic_parse(MQIM_STR("im"), MQIM_STR("im/u/a/in/msg"), NULL), MQIM_BAD_PARAMETER);
    /* a name that is invalid for the build */
    {
        size_t len = 0;
        char buf[64];
        CHECK_EQ_INT(mqim_topic_build(MQIM_STR("im"), MQIM_TOPIC_OUT_DM, MQIM_STR("a"), MQIM_STR("b/c"),
                                      buf, sizeof(buf), &len), MQIM_NAME_BAD_CHAR);
        CHECK_EQ_INT(mqim_topic_build(MQIM_STR("im"), MQIM_TOPIC_KIND_COUNT_, MQIM_STR("a"), MQIM_STR("b"),
                                      buf, sizeof(buf), &len), MQIM_BAD_PARAMETER);
    }
}

static void test_json_writer(void)
{
    char buf[128];
    mqim_json_writer_t w;
    size_t len = 0;
    const char *want = "{\"s\":\"a\\\"b\\\\c\\n\\u0001\",\"n\":18446744073709551615,\"i\":-9223372036854775808,"
                       "\"t\":true,\"o\":{\"x\":[1,2]},\"r\":[{\"k\":0},{\"k\":1}]}";
    for (int pass = 0; pass < 3; pass++) {
        size_t cap = pass == 0 ? 0u : (pass == 1 ? strlen(want) : strlen(want) + 1u);
        memset(buf, CANARY, sizeof(buf));
        mqim_json_init(&w, pass == 0 ? NULL : buf, cap);
        mqim_json_object_begin(&w);
        mqim_json_key_str(&w, "s", (mqim_str_t){ "a\"b\\c\n\x01", 7 });
        mqim_json_key_u64(&w, "n", UINT64_MAX);
        mqim_json_key_i64(&w, "i", INT64_MIN);
        mqim_json_key_bool(&w, "t", true);
        mqim_json_object_begin_key(&w, "o");
        mqim_json_array_begin(&w, "x");
        mqim_json_value_u64(&w, 1);
        mqim_json_value_u64(&w, 2);
        mqim_json_array_end(&w);
        mqim_json_object_end(&w);
        mqim_json_array_begin(&w, "r");
        for (uint64_t k = 0; k < 2u; k++) {
            mqim_json_object_begin(&w);
            mqim_json_key_u64(&w, "k", k);
            mqim_json_object_end(&w);
        }
        mqim_json_array_end(&w);
        mqim_json_object_end(&w);
        CHECK_EQ_INT(mqim_json_finish(&w, &len), pass == 2 ? MQIM_OK : MQIM_BUFFER_TOO_SMALL);
        CHECK_EQ_INT(len, strlen(want));
        CHECK((unsigned char)buf[cap] == CANARY);
        if (pass == 2) {
            CHECK_EQ_STR(buf, len, want);
        }
    }
}

static void test_json_reader_table(void)
{
    static const struct { const char *json; mqim_status_t want; mqim_json_type_t type; } rows[] = {
        { "{}", MQIM_OK, MQIM_JSON_OBJECT },
        { " [ ] ", MQIM_OK, MQIM_JSON_ARRAY },
        { "\"a\\/b\"", MQIM_OK, MQIM_JSON_STRING },
        { "-0", MQIM_OK, MQIM_JSON_NUMBER },
        { "-12.5e+3", MQIM_OK, MQIM_JSON_NUMBER },
        { "1E-2", MQIM_OK, MQIM_JSON_NUMBER },
        { "true", MQIM_OK, MQIM_JSON_TRUE },
        { "false", MQIM_OK, MQIM_JSON_FALSE },
        { "null", MQIM_OK, MQIM_JSON_NULL },
        { "{\"a\":{\"b\":[1,\"x\",{}]},\"c\":null}", MQIM_OK, MQIM_JSON_OBJECT },
        { "", MQIM_JSON_MALFORMED, MQIM_JSON_ABSENT },
        { "   ", MQIM_JSON_MALFORMED, MQIM_JSON_ABSENT },
        { "{", MQIM_JSON_MALFORMED, MQIM_JSON_ABSENT },
        { "{\"a\":1,}", MQIM_JSON_MALFORMED, MQIM_JSON_ABSENT },
        { "[1,]", MQIM_JSON_MALFORMED, MQIM_JSON_ABSENT },
        { "[1 2]", MQIM_JSON_MALFORMED, MQIM_JSON_ABSENT },
        { "{\"a\" 1}", MQIM_JSON_MALFORMED, MQIM_JSON_ABSENT },
        { "{a:1}", MQIM_JSON_MALFORMED, MQIM_JSON_ABSENT },
        { "{\"a\":1}}", MQIM_JSON_MALFORMED, MQIM_JSON_ABSENT },
        { "{\"a\":1]", MQIM_JSON_MALFORMED, MQIM_JSON_ABSENT },
        { "01", MQIM_JSON_MALFORMED, MQIM_JSON_ABSENT },
        { "+1", MQIM_JSON_MALFORMED, MQIM_JSON_ABSENT },
        { "1.", MQIM_JSON_MALFORMED, MQIM_JSON_ABSENT },
        { ".5", MQIM_JSON_MALFORMED, MQIM_JSON_ABSENT },
        { "1e", MQIM_JSON_MALFORMED, MQIM_JSON_ABSENT },
        { "-", MQIM_JSON_MALFORMED, MQIM_JSON_ABSENT },
        { "tru", MQIM_JSON_MALFORMED, MQIM_JSON_ABSENT },
        { "nul1", MQIM_JSON_MALFORMED, MQIM_JSON_ABSENT },
        { "\"a\tb\"", MQIM_JSON_MALFORMED, MQIM_JSON_ABSENT },      /* raw control char */
        { "\"\\x\"", MQIM_JSON_MALFORMED, MQIM_JSON_ABSENT },       /* unknown escape */
        { "\"\\u12G4\"", MQIM_JSON_MALFORMED, MQIM_JSON_ABSENT },
        { "\"\\udc00\"", MQIM_JSON_MALFORMED, MQIM_JSON_ABSENT },   /* low surrogate alone */
        { "\"\\ud800x\"", MQIM_JSON_MALFORMED, MQIM_JSON_ABSENT },  /* high surrogate alone */
        { "\"\\ud800\\u0041\"", MQIM_JSON_MALFORMED, MQIM_JSON_ABSENT },
        { "\"\xc3\"", MQIM_UTF8_INVALID, MQIM_JSON_ABSENT },        /* cut UTF-8 sequence */
        { "\"\xed\xa0\x80\"", MQIM_UTF8_INVALID, MQIM_JSON_ABSENT }, /* raw surrogate */
        { "/* c */ 1", MQIM_JSON_MALFORMED, MQIM_JSON_ABSENT },
        { "1 2", MQIM_JSON_MALFORMED, MQIM_JSON_ABSENT },
        { "[[[[[[[[1]]]]]]]]", MQIM_OK, MQIM_JSON_ARRAY },          /* depth 8 */
        { "[[[[[[[[[1]]]]]]]]]", MQIM_JSON_TOO_DEEP, MQIM_JSON_ABSENT },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        mqim_json_value_t root;
        mqim_status_t st = mqim_json_parse(mqim_str_from_cstr(rows[i].json), MQIM_JSON_DEPTH_MAX, &root);
        CHECK_EQ_INT(st, rows[i].want);
        if (st == MQIM_OK) {
            CHECK_EQ_INT(root.type, rows[i].type);
        }
        if (st != rows[i].want) {
            fprintf(stderr, "  json %s\n", rows[i].json);
        }
    }
    /* text need not be NUL-terminated: the length is the end */
    {
        mqim_json_value_t root;
        CHECK_EQ_INT(mqim_json_parse((mqim_str_t){ "{}garbage", 2 }, 8, &root), MQIM_OK);
        CHECK_EQ_INT(mqim_json_parse((mqim_str_t){ "{}", 2 }, 0, &root), MQIM_BAD_PARAMETER);
        CHECK_EQ_INT(mqim_json_parse((mqim_str_t){ "{}", 2 }, MQIM_JSON_READ_DEPTH_MAX + 1, &root),
                     MQIM_BAD_PARAMETER);
    }
}

static void test_json_reader_access(void)
{
    const char *doc = "{\"s\":\"a\\n\\u00e9\\ud83d\\ude00\\\"\",\"n\":-9007199254740992,\"big\":9007199254740993,"
                      "\"f\":1.0,\"e\":1e3,\"b\":true,\"arr\":[1,{\"x\":2},\"y\"],\"s\":\"second\",\"k\\u0065y\":7}";
    mqim_json_value_t root, v, key, val;
    mqim_json_iter_t it;
    mqim_str_t out;
    char buf[16];
    int64_t n = 0;
    unsigned count = 0;
    CHECK_EQ_INT(mqim_json_parse(mqim_str_from_cstr(doc), MQIM_JSON_DEPTH_MAX, &root), MQIM_OK);
    /* strings: the first of a repeated key wins; unescaping into exact and short buffers */
    CHECK_EQ_INT(mqim_json_find(&root, "s", &v), MQIM_OK);
    CHECK_EQ_INT(v.type, MQIM_JSON_STRING);
    CHECK_EQ_INT(mqim_json_string(&v, buf, 9, &out), MQIM_OK);
    CHECK_EQ_STR(out.ptr, out.len, "a\n\xc3\xa9\xf0\x9f\x98\x80\"");
    CHECK_EQ_INT(mqim_json_string(&v, buf, 8, &out), MQIM_BUFFER_TOO_SMALL);
    CHECK(mqim_json_string_eq(&v, "a\n\xc3\xa9\xf0\x9f\x98\x80\""));
    CHECK(!mqim_json_string_eq(&v, "a\n\xc3\xa9\xf0\x9f\x98\x80"));
    CHECK(!mqim_json_string_eq(&v, "a\n\xc3\xa9\xf0\x9f\x98\x80\"!"));
    /* keys compare after unescaping */
    CHECK_EQ_INT(mqim_json_find(&root, "key", &v), MQIM_OK);
    CHECK_EQ_INT(mqim_json_int(&v, &n), MQIM_OK);
    CHECK_EQ_INT(n, 7);
    /* integers: the edges of 2^53, fractions and exponents are out of range */
    CHECK_EQ_INT(mqim_json_find(&root, "n", &v), MQIM_OK);
    CHECK_EQ_INT(mqim_json_int(&v, &n), MQIM_OK);
    CHECK(n == -9007199254740992LL);
    CHECK_EQ_INT(mqim_json_find(&root, "big", &v), MQIM_OK);
    CHECK_EQ_INT(mqim_json_int(&v, &n), MQIM_FIELD_RANGE);
    CHECK_EQ_INT(mqim_json_find(&root, "f", &v), MQIM_OK);
    CHECK_EQ_INT(mqim_json_int(&v, &n), MQIM_FIELD_RANGE);
    CHECK_EQ_INT(mqim_json_find(&root, "e", &v), MQIM_OK);
    CHECK_EQ_INT(mqim_json_int(&v, &n), MQIM_FIELD_RANGE);
    CHECK_EQ_INT(mqim_json_find(&root, "b", &v), MQIM_OK);
    CHECK_EQ_INT(v.type, MQIM_JSON_TRUE);
    CHECK_EQ_INT(mqim_json_int(&v, &n), MQIM_FIELD_TYPE);
    CHECK_EQ_INT(mqim_json_string(&v, buf, sizeof(buf), &out), MQIM_FIELD_TYPE);
    CHECK_EQ_INT(mqim_json_find(&root, "missing", &v), MQIM_OK);
    CHECK_EQ_INT(v.type, MQIM_JSON_ABSENT);
    /* arrays: elements in order, nested containers as one value */
    CHECK_EQ_INT(mqim_json_find(&root, "arr", &v), MQIM_OK);
    CHECK_EQ_INT(mqim_json_find(&v, "x", &val), MQIM_FIELD_TYPE);
    CHECK_EQ_INT(mqim_json_iter_begin(&it, &v), MQIM_OK);
    while (mqim_json_iter_next(&it, &key, &val) == MQIM_OK) {
        CHECK_EQ_INT(key.type, MQIM_JSON_ABSENT);
        count++;
        if (count == 2u) {
            CHECK_EQ_INT(val.type, MQIM_JSON_OBJECT);
            CHECK_EQ_STR(val.text.ptr, val.text.len, "{\"x\":2}");
        }
    }
    CHECK_EQ_INT(count, 3);
    CHECK_EQ_INT(mqim_json_iter_next(&it, &key, &val), MQIM_NOT_FOUND);
    CHECK_EQ_INT(mqim_json_iter_begin(&it, &key), MQIM_FIELD_TYPE);
}

/* An object cut short: the iterator hands out the complete members, then
 * says the text ended; a number that touches the cut is not complete. */
static void test_json_reader_truncated(void)
{
    const char *doc = "{\"id\":\"m1\",\"seq\":42,\"body\":\"long\"}";
    size_t len = strlen(doc);
    for (size_t cut = 1; cut < len; cut++) {
        mqim_json_value_t obj = { MQIM_JSON_OBJECT, { doc, cut }, 8 };
        mqim_json_value_t key, val;
        mqim_json_iter_t it;
        mqim_status_t st;
        unsigned members = 0;
        CHECK_EQ_INT(mqim_json_iter_begin(&it, &obj), MQIM_OK);
        while ((st = mqim_json_iter_next(&it, &key, &val)) == MQIM_OK) {
            members++;
        }
        CHECK_EQ_INT(st, MQIM_JSON_TRUNCATED);
        /* "id" is complete once the comma after it is in; "seq" likewise */
        CHECK_EQ_INT(members, cut >= 11u ? (cut >= 20u ? 2u : 1u) : 0u);
        CHECK_EQ_INT(mqim_json_parse((mqim_str_t){ doc, cut }, 8, &val), MQIM_JSON_MALFORMED);
    }
}

static void test_envelope_decode_table(void)
{
    static char body_max[MQIM_BODY_MAX + 32], body_over[MQIM_BODY_MAX + 32];
    static const struct { const char *json; mqim_status_t want; } rows[] = {
        { "{\"id\":\"m1\",\"to\":\"bob\",\"type\":\"text\",\"body\":\"hi\",\"seq\":3,\"ts\":-5}", MQIM_OK },
        { "{\"body\":\"x\",\"unknown\":{\"deep\":[1,2,3]}}", MQIM_OK },
        { "{\"body\":\"x\",\"from\":\"mallory\"}", MQIM_OK },
        { "{\"body\":\"x\",\"from\":5}", MQIM_FIELD_TYPE },
        { "{\"id\":5,\"body\":\"x\"}", MQIM_FIELD_TYPE },
        { "{\"id\":\"\",\"body\":\"x\"}", MQIM_ID_EMPTY },
        { "{\"id\":\"a/b\",\"body\":\"x\"}", MQIM_ID_BAD_CHAR },
        { "{\"to\":\"a b\",\"body\":\"x\"}", MQIM_NAME_BAD_CHAR },
        { "{\"group\":\"\",\"body\":\"x\"}", MQIM_NAME_EMPTY },
        { "{\"type\":\"Text\",\"body\":\"x\"}", MQIM_TYPE_BAD },
        { "{\"type\":\"\",\"body\":\"x\"}", MQIM_TYPE_BAD },
        { "{\"body\":[1]}", MQIM_FIELD_TYPE },
        { "{\"body\":\"x\",\"seq\":-1}", MQIM_FIELD_RANGE },
        { "{\"body\":\"x\",\"seq\":1.5}", MQIM_FIELD_RANGE },
        { "{\"body\":\"x\",\"seq\":1e300}", MQIM_FIELD_RANGE },
        { "{\"body\":\"x\",\"seq\":\"1\"}", MQIM_FIELD_TYPE },
        { "{\"body\":\"x\",\"seq\":1.0}", MQIM_FIELD_RANGE },
        { "{\"body\":\"x\",\"body\":\"y\"}", MQIM_FIELD_DUPLICATE },
        { "{\"b\\u006fdy\":\"x\",\"body\":\"y\"}", MQIM_FIELD_DUPLICATE }, /* same name, escaped */
        { "{\"x\":1,\"x\":2,\"body\":\"y\"}", MQIM_OK }, /* unknown fields are not ours to judge */
        { "{\"body\":\"x\",\"ts\":true}", MQIM_FIELD_TYPE },
        { "{\"body\":\"\\ud800\"}", MQIM_JSON_MALFORMED }, /* cJSON refuses lone surrogates */
        { "{\"body\":\"\xff\"}", MQIM_UTF8_INVALID },
        { "[1,2]", MQIM_JSON_NOT_OBJECT },
        { "\"s\"", MQIM_JSON_NOT_OBJECT },
        { "{\"body\":", MQIM_JSON_MALFORMED },
        { "", MQIM_JSON_MALFORMED },
        { "{\"a\":[[[[[[[1]]]]]]]}", MQIM_OK },        /* depth 8 */
        { "{\"a\":[[[[[[[[1]]]]]]]]}", MQIM_JSON_TOO_DEEP }, /* depth 9 */
        { "{\"body\":\"x\",\"device\":\"phone-1\"}", MQIM_OK },
        { "{\"body\":\"x\",\"device\":\"a/b\"}", MQIM_NAME_BAD_CHAR },
        { "{\"body\":\"x\",\"device\":\"\"}", MQIM_NAME_EMPTY },
        { "{\"body\":\"x\",\"device\":7}", MQIM_FIELD_TYPE },
        { "{\"type\":\"file\",\"body\":\"c\",\"file\":{\"id\":\"F1\"}}", MQIM_OK },
        { "{\"body\":\"c\",\"file\":{\"id\":\"F1\",\"name\":\"cam.jpg\",\"mime\":\"image/jpeg\","
          "\"size\":10,\"sha256\":\"" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" "\",\"x\":[1]}}",
          MQIM_OK },
        { "{\"body\":\"c\",\"file\":{\"name\":\"a\"}}", MQIM_FIELD_MISSING },
        { "{\"body\":\"c\",\"file\":\"F1\"}", MQIM_FIELD_TYPE },
        { "{\"body\":\"c\",\"file\":{\"id\":\"F 1\"}}", MQIM_ID_BAD_CHAR },
        { "{\"body\":\"c\",\"file\":{\"id\":\"F1\",\"id\":\"F2\"}}", MQIM_FIELD_DUPLICATE },
        { "{\"body\":\"c\",\"file\":{\"id\":\"F1\",\"name\":7}}", MQIM_FIELD_TYPE },
        { "{\"body\":\"c\",\"file\":{\"id\":\"F1\",\"mime\":[]}}", MQIM_FIELD_TYPE },
        { "{\"body\":\"c\",\"file\":{\"id\":\"F1\",\"size\":-1}}", MQIM_FIELD_RANGE },
        { "{\"body\":\"c\",\"file\":{\"id\":\"F1\",\"size\":\"1\"}}", MQIM_FIELD_TYPE },
        { "{\"body\":\"c\",\"file\":{\"id\":\"F1\",\"sha256\":true}}", MQIM_FIELD_TYPE },
        { "{\"body\":\"x\",\"ack\":\"sent\"}", MQIM_OK },
        { "{\"body\":\"x\",\"ack\":\"read\"}", MQIM_FIELD_RANGE },
        { "{\"body\":\"x\",\"ack\":true}", MQIM_FIELD_TYPE },
        { "{\"body\":\"x\",\"ack\":\"sent\",\"ack\":\"sent\"}", MQIM_FIELD_DUPLICATE },
    };
    char arena[MQIM_PAYLOAD_MAX];
    mqim_envelope_t env;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        mqim_status_t st = mqim_envelope_decode(rows[i].json, strlen(rows[i].json), &env, arena,
                                                sizeof(arena), NULL);
        CHECK_EQ_INT(st, rows[i].want);
        if (st != rows[i].want) {
            fprintf(stderr, "  json %s\n", rows[i].json);
        }
    }
    CHECK_EQ_INT(mqim_envelope_decode(rows[0].json, strlen(rows[0].json), &env, arena, sizeof(arena), NULL),
                 MQIM_OK);
    CHECK_EQ_STR(env.id.ptr, env.id.len, "m1");
    CHECK_EQ_STR(env.to.ptr, env.to.len, "bob");
    CHECK_EQ_STR(env.body.ptr, env.body.len, "hi");
    CHECK(env.has_seq && env.seq == 3u && env.has_ts && env.ts == -5);
    CHECK(!env.ack_sent);
    /* "ack":"sent": a request to the gateway, decoded, never encoded */
    {
        const char *j = "{\"id\":\"m1\",\"ack\":\"sent\",\"body\":\"hi\"}";
        char out[128];
        size_t len = 0;
        CHECK_EQ_INT(mqim_envelope_decode(j, strlen(j), &env, arena, sizeof(arena), NULL), MQIM_OK);
        CHECK(env.ack_sent);
        CHECK_EQ_INT(mqim_envelope_encode(&env, out, sizeof(out), &len), MQIM_OK);
        CHECK_EQ_STR(out, len, "{\"id\":\"m1\",\"type\":\"text\",\"body\":\"hi\"}");
    }
    /* escapes and surrogate pairs decode to UTF-8 */
    {
        const char *j = "{\"body\":\"a\\n\\u00e9\\ud83d\\ude00\\\"\"}";
        CHECK_EQ_INT(mqim_envelope_decode(j, strlen(j), &env, arena, sizeof(arena), NULL), MQIM_OK);
        CHECK_EQ_STR(env.body.ptr, env.body.len, "a\n\xc3\xa9\xf0\x9f\x98\x80\"");
    }
    /* body size limit, exactly and one over */
    memcpy(body_max, "{\"body\":\"", 9);
    memset(body_max + 9, 'b', MQIM_BODY_MAX);
    memcpy(body_max + 9 + MQIM_BODY_MAX, "\"}", 3);
    CHECK_EQ_INT(mqim_envelope_decode(body_max, strlen(body_max), &env, arena, sizeof(arena), NULL), MQIM_OK);
    CHECK_EQ_INT(env.body.len, MQIM_BODY_MAX);
    memcpy(body_over, "{\"body\":\"", 9);
    memset(body_over + 9, 'b', MQIM_BODY_MAX + 1u);
    memcpy(body_over + 10 + MQIM_BODY_MAX, "\"}", 3);
    CHECK_EQ_INT(mqim_envelope_decode(body_over, strlen(body_over), &env, arena, sizeof(arena), NULL),
                 MQIM_BODY_TOO_LARGE);
    /* arena: exactly enough, one byte short */
    {
        const char *j = "{\"id\":\"abc\",\"body\":\"hello\"}";
        size_t used = 0;
        CHECK_EQ_INT(mqim_envelope_decode(j, strlen(j), &env, arena, 8, &used), MQIM_OK);
        CHECK_EQ_INT(used, 8);
        CHECK_EQ_INT(mqim_envelope_decode(j, strlen(j), &env, arena, 7, &used), MQIM_BUFFER_TOO_SMALL);
    }
    CHECK_EQ_INT(mqim_envelope_decode(body_max, MQIM_PAYLOAD_MAX + 1u, &env, arena, sizeof(arena), NULL),
                 MQIM_PAYLOAD_TOO_LARGE);
    CHECK_EQ_INT(mqim_envelope_decode("{}", 2, NULL, arena, sizeof(arena), NULL), MQIM_BAD_PARAMETER);
}

/* The head of an encoded envelope names the message: metadata comes before
 * the body, so a device that keeps only the first bytes learns id and seq. */
static void test_envelope_decode_head(void)
{
    mqim_envelope_t in = { .id = MQIM_STR("m1"), .from = MQIM_STR("alice"), .to = MQIM_STR("bob"),
                           .type = MQIM_STR("text"), .body = MQIM_STR("a long body that did not fit"),
                           .seq = 42, .ts = 1764000000123, .has_seq = true, .has_ts = true };
    mqim_envelope_t out;
    char json[256], arena[256];
    size_t len = 0;
    bool complete = false;
    CHECK_EQ_INT(mqim_envelope_encode(&in, json, sizeof(json), &len), MQIM_OK);
    CHECK_EQ_INT(mqim_envelope_decode_head(json, len, &out, arena, sizeof(arena), NULL, &complete), MQIM_OK);
    CHECK(complete);
    CHECK_EQ_STR(out.body.ptr, out.body.len, "a long body that did not fit");
    CHECK_EQ_INT(mqim_envelope_decode_head(json, len - 10u, &out, arena, sizeof(arena), NULL, &complete),
                 MQIM_OK);
    CHECK(!complete);
    CHECK_EQ_STR(out.id.ptr, out.id.len, "m1");
    CHECK_EQ_STR(out.from.ptr, out.from.len, "alice");
    CHECK(out.has_seq && out.seq == 42u && out.has_ts);
    CHECK_EQ_STR(out.type.ptr, out.type.len, "text");
    CHECK(out.body.ptr == NULL);
    CHECK_EQ_INT(mqim_envelope_decode_head("[1", 2, &out, arena, sizeof(arena), NULL, &complete),
                 MQIM_JSON_NOT_OBJECT);
    CHECK_EQ_INT(mqim_envelope_decode_head("{\"seq\":-1,", 10, &out, arena, sizeof(arena), NULL, &complete),
                 MQIM_FIELD_RANGE);
    CHECK_EQ_INT(mqim_envelope_decode_head("{}", 2, &out, arena, sizeof(arena), NULL, NULL),
                 MQIM_BAD_PARAMETER);
}

/* A file announcement and the sender's device survive a round trip, in the
 * documented order (metadata, then file, then body). */
static void test_envelope_file_roundtrip(void)
{
    mqim_envelope_t in = { .id = MQIM_STR("m2"), .from = MQIM_STR("cam"), .device = MQIM_STR("front"),
                           .group = MQIM_STR("home"), .type = MQIM_STR("file"), .body = MQIM_STR("door.jpg"),
                           .has_file = true,
                           .file = { .id = MQIM_STR("01JF"), .name = MQIM_STR("door \"1\".jpg"),
                                     .mime = MQIM_STR("image/jpeg"), .size = 48213, .has_size = true,
                                     .sha256 = MQIM_STR("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08") } };
    const char *want = "{\"id\":\"m2\",\"from\":\"cam\",\"device\":\"front\",\"group\":\"home\","
                       "\"type\":\"file\",\"file\":{\"id\":\"01JF\",\"name\":\"door \\\"1\\\".jpg\","
                       "\"mime\":\"image/jpeg\",\"size\":48213,\"sha256\":"
                       "\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"},\"body\":\"door.jpg\"}";
    mqim_envelope_t out;
    char buf[512], arena[512];
    size_t need = 0, len = 0;
    CHECK_EQ_INT(mqim_envelope_encode(&in, NULL, 0, &need), MQIM_BUFFER_TOO_SMALL);
    CHECK_EQ_INT(need, strlen(want));
    CHECK_EQ_INT(mqim_envelope_encode(&in, buf, sizeof(buf), &len), MQIM_OK);
    CHECK_EQ_STR(buf, len, want);
    CHECK_EQ_INT(mqim_envelope_decode(buf, len, &out, arena, sizeof(arena), NULL), MQIM_OK);
    CHECK(out.has_file && out.file.has_size && out.file.size == 48213u);
    CHECK_EQ_STR(out.device.ptr, out.device.len, "front");
    CHECK_EQ_STR(out.file.id.ptr, out.file.id.len, "01JF");
    CHECK_EQ_STR(out.file.name.ptr, out.file.name.len, "door \"1\".jpg");
    CHECK_EQ_STR(out.file.mime.ptr, out.file.mime.len, "image/jpeg");
    CHECK(mqim_str_eq(out.file.sha256, in.file.sha256));
    CHECK_EQ_STR(out.body.ptr, out.body.len, "door.jpg");
    /* a plain envelope has neither */
    CHECK_EQ_INT(mqim_envelope_decode("{\"body\":\"x\"}", 12, &out, arena, sizeof(arena), NULL), MQIM_OK);
    CHECK(!out.has_file && out.device.len == 0u);
}

/* An encrypted body travels verbatim as "enc", instead of "body". */
static void test_envelope_enc(void)
{
    const char *enc = "{\"v\":1,\"r\":[{\"u\":\"bob\"}],\"ct\":\"AA==\"}";
    mqim_envelope_t in = { .id = MQIM_STR("m3"), .to = MQIM_STR("bob"), .type = MQIM_STR("text"),
                           .body = MQIM_STR("ignored when enc is set") };
    mqim_envelope_t out;
    char buf[256], arena[256], want[256];
    size_t len = 0, used = 0;
    in.enc = mqim_str_from_cstr(enc);
    snprintf(want, sizeof(want), "{\"id\":\"m3\",\"to\":\"bob\",\"type\":\"text\",\"enc\":%s}", enc);
    CHECK_EQ_INT(mqim_envelope_encode(&in, buf, sizeof(buf), &len), MQIM_OK);
    CHECK_EQ_STR(buf, len, want);
    CHECK_EQ_INT(mqim_envelope_decode(buf, len, &out, arena, sizeof(arena), &used), MQIM_OK);
    CHECK_EQ_STR(out.enc.ptr, out.enc.len, enc);
    CHECK(out.body.ptr == NULL && out.body.len == 0u);
    CHECK(out.enc.ptr >= arena && out.enc.ptr + out.enc.len <= arena + used); /* outlives the payload */
    /* the arena must hold the object; one byte short is refused */
    CHECK_EQ_INT(mqim_envelope_decode(buf, len, &out, arena, used - 1u, NULL), MQIM_BUFFER_TOO_SMALL);
    /* an "enc" that is not an object, or comes with a body, is refused */
    CHECK_EQ_INT(mqim_envelope_decode("{\"enc\":\"x\"}", 11, &out, arena, sizeof(arena), NULL),
                 MQIM_FIELD_TYPE);
    CHECK_EQ_INT(mqim_envelope_decode("{\"enc\":[1]}", 11, &out, arena, sizeof(arena), NULL),
                 MQIM_FIELD_TYPE);
    {
        const char *both = "{\"body\":\"hi\",\"enc\":{}}";
        CHECK_EQ_INT(mqim_envelope_decode(both, strlen(both), &out, arena, sizeof(arena), NULL),
                     MQIM_FIELD_RANGE);
        both = "{\"enc\":{},\"enc\":{}}";
        CHECK_EQ_INT(mqim_envelope_decode(both, strlen(both), &out, arena, sizeof(arena), NULL),
                     MQIM_FIELD_DUPLICATE);
    }
}

/* A file's description: the rules the gateway enforces at upload. */
static void test_file_meta_rules(void)
{
    static const struct { const char *s; mqim_status_t name, mime; } rows[] = {
        { "cam.jpg", MQIM_OK, MQIM_FIELD_RANGE },
        { "image/jpeg", MQIM_FIELD_RANGE, MQIM_OK },
        { "application/vnd.ms-excel+xml", MQIM_FIELD_RANGE, MQIM_OK },
        { "..", MQIM_FIELD_RANGE, MQIM_FIELD_RANGE },
        { ".", MQIM_FIELD_RANGE, MQIM_FIELD_RANGE },
        { "", MQIM_FIELD_RANGE, MQIM_FIELD_RANGE },
        { "a\\b", MQIM_FIELD_RANGE, MQIM_FIELD_RANGE },
        { "a\x01", MQIM_FIELD_RANGE, MQIM_FIELD_RANGE },
        { "a\x7f", MQIM_FIELD_RANGE, MQIM_FIELD_RANGE },
        { "a b/c", MQIM_FIELD_RANGE, MQIM_FIELD_RANGE },
        { "a/b/c", MQIM_FIELD_RANGE, MQIM_FIELD_RANGE },
        { "/b", MQIM_FIELD_RANGE, MQIM_FIELD_RANGE },
        { "b/", MQIM_FIELD_RANGE, MQIM_FIELD_RANGE },
        { "caf\xc3\xa9 notes.txt", MQIM_OK, MQIM_FIELD_RANGE },
    };
    static char longname[MQIM_FILE_NAME_MAX + 2];
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        CHECK_EQ_INT(mqim_file_name_check(mqim_str_from_cstr(rows[i].s)), rows[i].name);
        CHECK_EQ_INT(mqim_file_mime_check(mqim_str_from_cstr(rows[i].s)), rows[i].mime);
    }
    memset(longname, 'n', MQIM_FILE_NAME_MAX);
    CHECK_EQ_INT(mqim_file_name_check((mqim_str_t){ longname, MQIM_FILE_NAME_MAX }), MQIM_OK);
    CHECK_EQ_INT(mqim_file_name_check((mqim_str_t){ longname, MQIM_FILE_NAME_MAX + 1u }), MQIM_FIELD_RANGE);
    CHECK_EQ_INT(mqim_file_sha256_check(MQIM_STR("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")),
                 MQIM_OK);
    CHECK_EQ_INT(mqim_file_sha256_check(MQIM_STR("9F86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")),
                 MQIM_FIELD_RANGE);
    CHECK_EQ_INT(mqim_file_sha256_check(MQIM_STR("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0")),
                 MQIM_FIELD_RANGE);
    CHECK_EQ_INT(mqim_file_sha256_check(MQIM_STR("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0g")),
                 MQIM_FIELD_RANGE);
}

static void test_envelope_encode_roundtrip(void)
{
    mqim_envelope_t in = { .id = MQIM_STR("01JD"), .from = MQIM_STR("alice"), .to = MQIM_STR("bob"),
                           .type = MQIM_STR("text"), .body = { "q\"\\\n\t\x01 \xc3\xa9", 9 },
                           .seq = 42, .ts = 1764000000123, .has_seq = true, .has_ts = true,
                           .upto = 7u, .has_upto = true };
    mqim_envelope_t out;
    const char *want = "{\"id\":\"01JD\",\"seq\":42,\"from\":\"alice\",\"to\":\"bob\",\"ts\":1764000000123,"
                       "\"upto\":7,\"type\":\"text\",\"body\":\"q\\\"\\\\\\n\\t\\u0001 \xc3\xa9\"}";
    char buf[256], arena[256];
    size_t need = 0, len = 0;
    CHECK_EQ_INT(mqim_envelope_encode(&in, NULL, 0, &need), MQIM_BUFFER_TOO_SMALL);
    CHECK_EQ_INT(need, strlen(want));
    memset(buf, CANARY, sizeof(buf));
    CHECK_EQ_INT(mqim_envelope_encode(&in, buf, need, &len), MQIM_BUFFER_TOO_SMALL);
    CHECK((unsigned char)buf[need] == CANARY);
    CHECK_EQ_INT(mqim_envelope_encode(&in, buf, need + 1u, &len), MQIM_OK);
    CHECK_EQ_STR(buf, len, want);
    CHECK_EQ_INT(mqim_envelope_decode(buf, len, &out, arena, sizeof(arena), NULL), MQIM_OK);
    CHECK(mqim_str_eq(out.id, in.id) && mqim_str_eq(out.to, in.to) && mqim_str_eq(out.body, in.body));
    CHECK(out.seq == 42u && out.ts == in.ts);
    CHECK(out.has_upto && out.upto == 7u);
    CHECK(mqim_str_eq(out.from, in.from)); /* devices read the gateway's "from" */
}

/* FIPS 180-2 examples, streamed in pieces of every size. */
static void test_sha256(void)
{
    static const struct { const char *in; size_t repeat; const char *hex; } rows[] = {
        { "", 1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
        { "abc", 1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
        { "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
        { "a", 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0" },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        mqim_sha256_t s;
        uint8_t d[MQIM_SHA256_LEN];
        char hex[MQIM_SHA256_HEX_LEN];
        size_t n = strlen(rows[i].in);
        mqim_sha256_init(&s);
        for (size_t r = 0; r < rows[i].repeat; r++) {
            for (size_t k = 0; k < n; k += 1u + k % 7u) { /* uneven pieces */
                size_t m = 1u + k % 7u;
                mqim_sha256_update(&s, rows[i].in + k, m < n - k ? m : n - k);
            }
        }
        mqim_sha256_final(&s, d);
        mqim_sha256_hex(d, hex);
        CHECK_EQ_STR(hex, sizeof(hex), rows[i].hex);
    }
}

/* RFC 4648 section 10, both ways, with exact and short buffers. */
static void test_base64(void)
{
    static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
    static const char *const coded[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
    char enc[16];
    uint8_t dec[16];
    size_t len = 0;
    for (size_t i = 0; i < 7u; i++) {
        size_t n = strlen(plain[i]);
        CHECK_EQ_INT(mqim_base64_encode((const uint8_t *)plain[i], n, enc, strlen(coded[i]), &len), MQIM_OK);
        CHECK_EQ_STR(enc, len, coded[i]);
        if (n > 0u) {
            CHECK_EQ_INT(mqim_base64_encode((const uint8_t *)plain[i], n, enc, strlen(coded[i]) - 1u, &len),
                         MQIM_BUFFER_TOO_SMALL);
            CHECK_EQ_INT(mqim_base64_decode(coded[i], strlen(coded[i]), dec, n - 1u, &len), MQIM_BUFFER_TOO_SMALL);
        }
        CHECK_EQ_INT(mqim_base64_decode(coded[i], strlen(coded[i]), dec, n, &len), MQIM_OK);
        CHECK_EQ_STR((const char *)dec, len, plain[i]);
    }
    CHECK_EQ_INT(mqim_base64_decode("Zm9", 3, dec, sizeof(dec), &len), MQIM_FIELD_TYPE);
    CHECK_EQ_INT(mqim_base64_decode("Zm=v", 4, dec, sizeof(dec), &len), MQIM_FIELD_TYPE);
    CHECK_EQ_INT(mqim_base64_decode("Zm9v!A==", 8, dec, sizeof(dec), &len), MQIM_FIELD_TYPE);
}

/* The gateway status document (gateway_status.h): what the writer writes
 * the reader reads back, in any member order. */
static void test_gateway_status(void)
{
    mqim_gateway_status_t in = { MQIM_STR("online"), true, 1764000000000, MQIM_STR("0123abcd"), 7u,
                                 MQIM_STR("feed"), MQIM_STR("host \"a\""), MQIM_STR("b00t"), true, 4242 };
    mqim_gateway_status_t out;
    char buf[256], arena[256];
    size_t n = 0, need = 0;
    CHECK_EQ_INT(mqim_gateway_status_encode(&in, NULL, 0, &need), MQIM_BUFFER_TOO_SMALL);
    CHECK_EQ_INT(mqim_gateway_status_encode(&in, buf, sizeof(buf), &n), MQIM_OK);
    CHECK_EQ_INT(n, need);
    CHECK(strcmp(buf, "{\"state\":\"online\",\"ts\":1764000000000,\"store\":\"0123abcd\",\"store_epoch\":7,"
                      "\"instance\":\"feed\",\"host\":\"host \\\"a\\\"\",\"boot\":\"b00t\",\"pid\":4242}") == 0);
    CHECK_EQ_INT(mqim_gateway_status_decode((mqim_str_t){ buf, n }, &out, arena, sizeof(arena)), MQIM_OK);
    CHECK(mqim_str_eq(out.state, in.state) && out.has_ts && out.ts == in.ts);
    CHECK(mqim_str_eq(out.store, in.store) && out.store_epoch == 7u);
    CHECK(mqim_str_eq(out.instance, in.instance) && mqim_str_eq(out.host, in.host));
    CHECK(mqim_str_eq(out.boot, in.boot) && out.has_pid && out.pid == 4242);
    /* reordered, with a member this reader does not know */
    {
        static const char re[] = "{\"pid\":9,\"new\":[1,{}],\"boot\":\"x\",\"state\":\"offline\"}";
        CHECK_EQ_INT(mqim_gateway_status_decode(MQIM_STR(re), &out, arena, sizeof(arena)), MQIM_OK);
        CHECK(mqim_str_eq_cstr(out.state, "offline") && out.pid == 9 && !out.has_ts);
        CHECK(mqim_str_eq_cstr(out.boot, "x") && out.store.len == 0u);
    }
    CHECK_EQ_INT(mqim_gateway_status_decode(MQIM_STR("{\"ts\":1}"), &out, arena, sizeof(arena)),
                 MQIM_FIELD_MISSING);
    CHECK_EQ_INT(mqim_gateway_status_decode(MQIM_STR("{\"state\":1}"), &out, arena, sizeof(arena)),
                 MQIM_FIELD_TYPE);
    CHECK_EQ_INT(mqim_gateway_status_decode(MQIM_STR("{\"state\":\"online\",\"pid\":\"7\"}"), &out, arena,
                                            sizeof(arena)), MQIM_FIELD_TYPE);
    CHECK_EQ_INT(mqim_gateway_status_decode(MQIM_STR("{\"state\":\"online\",\"store_epoch\":-1}"), &out,
                                            arena, sizeof(arena)), MQIM_FIELD_RANGE);
    CHECK_EQ_INT(mqim_gateway_status_decode(MQIM_STR("[\"online\"]"), &out, arena, sizeof(arena)),
                 MQIM_FIELD_TYPE);
    CHECK_EQ_INT(mqim_gateway_status_decode(MQIM_STR("{\"state\":\"online\""), &out, arena, sizeof(arena)),
                 MQIM_JSON_MALFORMED);
    CHECK_EQ_INT(mqim_gateway_status_decode((mqim_str_t){ buf, n }, &out, arena, 4), MQIM_BUFFER_TOO_SMALL);
}

static void test_ulid(void)
{
    mqim_idgen_t g;
    char a[MQIM_ULID_LEN + 1], b[MQIM_ULID_LEN + 1], c[MQIM_ULID_LEN + 1];
    const uint8_t r0[10] = { 0 }, rff[10] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    const uint8_t r1[10] = { 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
    mqim_idgen_init(&g);
    /* time 1 ms, random 0: 48-bit time 0x000000000001 then 80 zero bits.
     * 128 bits = 2 padding zeros + 126: the time ends at bit 50 of the 130-bit
     * base32 string, digit 9 (bits 45..49) holds "...00001" -> '1'. */
    CHECK_EQ_INT(mqim_id_make(&g, 1, r0, a), MQIM_OK);
    CHECK(strcmp(a, "00000000010000000000000000") == 0);
    /* all ones in time and random: the first digit carries only 3 bits: '7' */
    mqim_idgen_init(&g);
    CHECK_EQ_INT(mqim_id_make(&g, ((uint64_t)1 << 48) - 1u, rff, a), MQIM_OK);
    CHECK(strcmp(a, "7ZZZZZZZZZZZZZZZZZZZZZZZZZ") == 0);
    /* monotonic within a millisecond and when the clock steps back */
    mqim_idgen_init(&g);
    CHECK_EQ_INT(mqim_id_make(&g, 1764000000000u, r1, a), MQIM_OK);
    CHECK_EQ_INT(mqim_id_make(&g, 1764000000000u, r0, b), MQIM_OK);
    CHECK_EQ_INT(mqim_id_make(&g, 1763999999000u, r0, c), MQIM_OK);
    CHECK(strcmp(a, b) < 0 && strcmp(b, c) < 0);
    CHECK(strncmp(a, b, 10) == 0); /* same time part */
    CHECK_EQ_INT(mqim_id_make(&g, 1764000000001u, r0, a), MQIM_OK);
    CHECK(strcmp(c, a) < 0);
    /* the random part overflowing within one ms is an error, not a repeat */
    mqim_idgen_init(&g);
    CHECK_EQ_INT(mqim_id_make(&g, 5, rff, a), MQIM_OK);
    CHECK_EQ_INT(mqim_id_make(&g, 5, rff, b), MQIM_INTERNAL);
    CHECK_EQ_INT(mqim_id_make(&g, 0, r0, a), MQIM_BAD_PARAMETER);
    CHECK_EQ_INT(mqim_id_make(&g, (uint64_t)1 << 48, r0, a), MQIM_BAD_PARAMETER);
}

int main(void)
{
    test_status_table();
    test_names();
    test_ids();
    test_utf8();
    test_gateway_status();
    test_topics_roundtrip();
    test_topic_parse_errors();
    test_json_writer();
    test_json_reader_table();
    test_json_reader_access();
    test_json_reader_truncated();
    test_envelope_decode_table();
    test_envelope_file_roundtrip();
    test_envelope_enc();
    test_file_meta_rules();
    test_envelope_decode_head();
    test_envelope_encode_roundtrip();
    test_ulid();
    test_sha256();
    test_base64();
    return CHECK_REPORT();
}
