/**
 * @file authdb.h
 * @brief The broker's view of the mqim users: a small LMDB environment the
 *        gateway's operator commands write (`init`, `user add|del|revoke`)
 *        and the mqim_auth broker plugin reads (MDB_RDONLY, from the
 *        broker's process: docs/security.md, "The mqim_auth plugin").
 *
 * Databases (all values are short text, so `mdb_dump -p` shows them):
 *
 *     users     NAME -> "1 FLAGS HASH"   FLAGS: decimal mqim_authdb_flags;
 *                                        HASH: "$7$ITER$SALT$DK" (PBKDF2-
 *                                        SHA512, mosquitto_passwd's format)
 *                                        or "-" (no password: certificate only)
 *     revoked   SERIAL -> NAME           a revoked certificate (hex, upper
 *                                        case, no leading zeros)
 *     kicks     SEQ (8 bytes, big endian) -> NAME
 *                                        a user whose credentials changed
 *                                        (deleted, new password, revoked
 *                                        certificate): the plugin kicks the
 *                                        user's clients; the last 1000 kept
 *     settings  "gateway" -> the gateway's user name
 *               "client_id" -> the gateway's client id (".out" is its publisher's)
 *               "root" -> the topic root
 *               "budget" -> "RATE BURST" (publishes per second per user; 0 0 = none)
 *
 * Files and permissions: the directory (created 0750 when missing) and its
 * data.mdb (0640) and lock.mdb (0660: a reader records itself in the lock
 * file, so the broker must be able to write it) belong to the writer, and
 * get the group of the directory after every write: make the directory's
 * group the broker's (`mosquitto`) and the broker can read it whatever the
 * writer's umask.
 */
#ifndef MQIM_GW_AUTHDB_H
#define MQIM_GW_AUTHDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mqim_authdb mqim_authdb_t;

typedef enum {
    MQIM_AUTHDB_REQUIRE_CERT = 1u, /**< two-factor: a valid certificate (CN = user) and the password */
} mqim_authdb_flags_t;

#define MQIM_AUTHDB_HASH_MAX 200u
#define MQIM_AUTHDB_SERIAL_MAX 80u

typedef struct {
    unsigned flags;
    char hash[MQIM_AUTHDB_HASH_MAX]; /**< "" = no password */
} mqim_authdb_user_t;

typedef struct {
    char gateway[65];
    char client_id[128];
    char root[33];
    unsigned rate;  /**< 0 = no budget */
    unsigned burst;
} mqim_authdb_settings_t;

/** Open the environment in `dir`. Writable: the directory is made (0750)
 * when missing. Read-only: MDB_RDONLY, never creates anything.
 * 0, or -1 with err. */
int mqim_authdb_open(const char *dir, bool writable, mqim_authdb_t **out, char *err, size_t err_len);
void mqim_authdb_close(mqim_authdb_t *db);

/* ---- the writer (gateway operator commands) ---- */

/** Add or change a user. password NULL keeps the stored hash (an empty
 * string: no password); flags replace the stored ones. A changed password
 * or flags of an existing user is logged for a kick. 0 or -1 with err. */
int mqim_authdb_user_set(mqim_authdb_t *db, const char *user, const char *password, unsigned flags,
                         char *err, size_t err_len);
/** Remove a user (none: not an error) and log a kick. 0 or -1 with err. */
int mqim_authdb_user_del(mqim_authdb_t *db, const char *user, char *err, size_t err_len);
/** Record revoked certificate serials (hex) of user and log a kick. */
int mqim_authdb_revoke(mqim_authdb_t *db, const char *user, const char *const *serials, size_t n,
                       char *err, size_t err_len);
int mqim_authdb_settings_put(mqim_authdb_t *db, const mqim_authdb_settings_t *s, char *err,
                             size_t err_len);

/* ---- the reader (the plugin) ---- */

/** The id of the last committed write transaction: changes when anything
 * was written. 0 on error. */
uint64_t mqim_authdb_txn_id(mqim_authdb_t *db);
/** 0 found, 1 no such user, -1 error. */
int mqim_authdb_user_get(mqim_authdb_t *db, const char *user, size_t len, mqim_authdb_user_t *rec);
/** 1 revoked, 0 not, -1 error. serial: hex as the certificate has it. */
int mqim_authdb_serial_revoked(mqim_authdb_t *db, const char *serial);
int mqim_authdb_settings_get(mqim_authdb_t *db, mqim_authdb_settings_t *s);
/** Call fn for each kick after *seq, oldest first; *seq becomes the last
 * one's. With fn NULL only *seq moves to the last. 0 or -1. */
int mqim_authdb_kicks(mqim_authdb_t *db, uint64_t *seq, void (*fn)(void *ctx, const char *user),
                      void *ctx);

/* ---- passwords ---- */

/** PBKDF2-SHA512 with a random salt, mosquitto_passwd's "$7$" format. 0 or -1. */
int mqim_authdb_hash_password(const char *password, char *out, size_t cap);
/** Does password match hash (constant time in the hash's length)? */
bool mqim_authdb_check_password(const char *hash, const char *password);

/** A users record ("1 FLAGS HASH") into rec: 0, or -1 when malformed. */
int mqim_authdb_parse_user(const void *data, size_t size, mqim_authdb_user_t *rec);

/** A serial as the database keys it: upper case, no leading zeros. */
void mqim_authdb_serial_normalize(const char *in, char *out, size_t cap);

#endif /* MQIM_GW_AUTHDB_H */
