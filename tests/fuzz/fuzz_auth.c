/* Fuzz target: the mqim_auth plugin's parsers and rules. The input is up
 * to four NUL-separated strings: a user, a topic, a client id, and a users
 * record of the auth database. Checked: a user (not the gateway) may write
 * only under {root}/u/{user}/out and read no other user's subtree and not
 * the stats; the record parser yields a NUL-terminated hash; the serial
 * normalizer stays within its buffer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth_rules.h"
#include "authdb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool some_users(void *ctx, const char *name, size_t len)
{
    (void)ctx;
    return (len == 3u && memcmp(name, "bob", 3) == 0) || (len == 5u && memcmp(name, "alice", 5) == 0);
}

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char buf[4096], *part[4] = { NULL, NULL, NULL, NULL };
    char own[600];
    size_t n = size < sizeof(buf) - 1u ? size : sizeof(buf) - 1u;
    mqim_authdb_user_t rec;
    char serial[MQIM_AUTHDB_SERIAL_MAX];
    memcpy(buf, data, n);
    buf[n] = '\0';
    part[0] = buf;
    for (int i = 1; i < 4; i++) {
        char *end = part[i - 1] + strlen(part[i - 1]);
        part[i] = end < buf + n ? end + 1 : end;
    }
    const char *user = part[0], *topic = part[1], *cid = part[2], *record = part[3];
    if (strlen(user) < 200u && user[0] != '\0') {
        snprintf(own, sizeof(own), "im/u/%s/", user);
        if (mqim_auth_topic_allowed("im", user, false, topic, MQIM_AUTH_WRITE)) {
            size_t o = strlen(own);
            if (strncmp(topic, own, o) != 0 || strncmp(topic + o, "out", 3) != 0) {
                abort();
            }
        }
        if (mqim_auth_topic_allowed("im", user, false, topic, MQIM_AUTH_READ)) {
            if ((starts(topic, "im/u/") && !starts(topic, own)) || starts(topic, "im/gateway/stats/") ||
                strcmp(topic, "im/gateway/stats") == 0 || !starts(topic, "im/")) {
                abort();
            }
        }
        if (mqim_auth_client_id_check(user, false, cid, "gw-secret", some_users, NULL) ==
                MQIM_AUTH_CID_OK &&
            (strcmp(cid, "gw-secret") == 0 || strcmp(cid, "gw-secret.out") == 0)) {
            abort(); /* the gateway's ids are never a user's */
        }
    }
    if (mqim_authdb_parse_user(record, strlen(record), &rec) == 0 &&
        memchr(rec.hash, '\0', sizeof(rec.hash)) == NULL) {
        abort();
    }
    mqim_authdb_serial_normalize(record, serial, sizeof(serial));
    if (memchr(serial, '\0', sizeof(serial)) == NULL) {
        abort();
    }
    return 0;
}
