/* The broker's view of the mqim users (authdb.h): written by the gateway's
 * operator commands, read by the mqim_auth plugin inside Mosquitto.
 *
 * LMDB lets the broker read while `user add` writes, without locks of its
 * own and without a half-written file ever being visible; a reader sees
 * the last committed transaction. The plugin keeps the environment open
 * and begins one short read transaction per lookup. */
#include "authdb.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define MAP_SIZE ((size_t)64 << 20) /* some 300,000 users */
#define KICKS_KEPT 1000u
#define PBKDF2_ITERATIONS 1000 /* 10x mosquitto_passwd's 101; the broker hashes on every login, on its one thread */
#define SALT_LEN 12
#define DK_LEN 64

struct mqim_authdb {
    MDB_env *env;
    MDB_dbi users, revoked, kicks, settings;
    bool writable;
    char dir[4096];
};

static int fail(char *err, size_t err_len, const char *what, int rc)
{
    if (err != NULL && err_len > 0u) {
        snprintf(err, err_len, "auth database: %s: %s", what, mdb_strerror(rc));
    }
    return -1;
}

/* The files get the group of the directory and the modes of authdb.h, so
 * the broker's group can read whatever umask and user the writer has. */
static void fix_modes(const char *dir)
{
    static const struct { const char *name; mode_t mode; } files[] = {
        { "data.mdb", 0640 }, { "lock.mdb", 0660 },
    };
    struct stat d;
    if (stat(dir, &d) != 0) {
        return;
    }
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[4200];
        snprintf(path, sizeof(path), "%s/%s", dir, files[i].name);
        if (chown(path, (uid_t)-1, d.st_gid) != 0 && errno != ENOENT) {
            /* not the owner: the file keeps its group (said by the caller's test) */
        }
        (void)chmod(path, files[i].mode);
    }
}

static int open_dbis(mqim_authdb_t *db, char *err, size_t err_len)
{
    MDB_txn *txn = NULL;
    unsigned flags = db->writable ? MDB_CREATE : 0u;
    int rc = mdb_txn_begin(db->env, NULL, db->writable ? 0u : MDB_RDONLY, &txn);
    if (rc == 0) {
        rc = mdb_dbi_open(txn, "users", flags, &db->users);
    }
    if (rc == 0) {
        rc = mdb_dbi_open(txn, "revoked", flags, &db->revoked);
    }
    if (rc == 0) {
        rc = mdb_dbi_open(txn, "kicks", flags, &db->kicks);
    }
    if (rc == 0) {
        rc = mdb_dbi_open(txn, "settings", flags, &db->settings);
    }
    if (rc != 0) {
        if (txn != NULL) {
            mdb_txn_abort(txn);
        }
        return fail(err, err_len, "open", rc);
    }
    /* Commit even a read-only one: an aborted transaction closes the
     * handles it opened. */
    rc = mdb_txn_commit(txn);
    return rc == 0 ? 0 : fail(err, err_len, "open", rc);
}

int mqim_authdb_open(const char *dir, bool writable, mqim_authdb_t **out, char *err, size_t err_len)
{
    mqim_authdb_t *db;
    int rc;
    *out = NULL;
    if (dir == NULL || dir[0] == '\0') {
        snprintf(err, err_len, "auth database: no directory given");
        return -1;
    }
    if (writable && mkdir(dir, 0750) != 0 && errno != EEXIST) {
        snprintf(err, err_len, "auth database: cannot make %s: %s", dir, strerror(errno));
        return -1;
    }
    db = calloc(1, sizeof(*db));
    if (db == NULL) {
        snprintf(err, err_len, "auth database: out of memory");
        return -1;
    }
    db->writable = writable;
    snprintf(db->dir, sizeof(db->dir), "%s", dir);
    rc = mdb_env_create(&db->env);
    if (rc == 0) {
        rc = mdb_env_set_maxdbs(db->env, 8);
    }
    if (rc == 0 && writable) {
        rc = mdb_env_set_mapsize(db->env, MAP_SIZE);
    }
    if (rc == 0) {
        /* NOTLS: the broker's thread and a reader slot per transaction. */
        rc = mdb_env_open(db->env, dir, MDB_NOTLS | (writable ? 0u : MDB_RDONLY), 0640);
    }
    if (rc != 0) {
        char what[4200];
        snprintf(what, sizeof(what), "cannot open %s", dir);
        mqim_authdb_close(db);
        return fail(err, err_len, what, rc);
    }
    if (writable) {
        fix_modes(dir);
    }
    if (open_dbis(db, err, err_len) != 0) {
        mqim_authdb_close(db);
        return -1;
    }
    *out = db;
    return 0;
}

void mqim_authdb_close(mqim_authdb_t *db)
{
    if (db == NULL) {
        return;
    }
    if (db->env != NULL) {
        mdb_env_close(db->env);
    }
    free(db);
}

/* ---- passwords ------------------------------------------------------- */

int mqim_authdb_hash_password(const char *password, char *out, size_t cap)
{
    unsigned char salt[SALT_LEN], dk[DK_LEN];
    unsigned char salt64[4 * ((SALT_LEN + 2) / 3) + 1], dk64[4 * ((DK_LEN + 2) / 3) + 1];
    int n;
    if (password == NULL || RAND_bytes(salt, (int)sizeof(salt)) != 1 ||
        PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)sizeof(salt),
                          PBKDF2_ITERATIONS, EVP_sha512(), (int)sizeof(dk), dk) != 1) {
        return -1;
    }
    EVP_EncodeBlock(salt64, salt, (int)sizeof(salt));
    EVP_EncodeBlock(dk64, dk, (int)sizeof(dk));
    OPENSSL_cleanse(dk, sizeof(dk));
    n = snprintf(out, cap, "$7$%d$%s$%s", PBKDF2_ITERATIONS, (const char *)salt64,
                 (const char *)dk64);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* Base64 of exactly `want` bytes (EVP_DecodeBlock counts the padding in). */
static bool decode64(const char *in, size_t len, unsigned char *out, size_t want)
{
    unsigned char buf[128];
    int n;
    if (len == 0u || len % 4u != 0u || len / 4u * 3u > sizeof(buf)) {
        return false;
    }
    n = EVP_DecodeBlock(buf, (const unsigned char *)in, (int)len);
    if (n < 0) {
        return false;
    }
    n -= (in[len - 1] == '=') + (in[len - 2] == '=');
    if ((size_t)n != want) {
        return false;
    }
    memcpy(out, buf, want);
    return true;
}

bool mqim_authdb_check_password(const char *hash, const char *password)
{
    unsigned char salt[SALT_LEN], want[DK_LEN], got[DK_LEN];
    const char *s, *d;
    char *end = NULL;
    long iter;
    bool ok;
    if (hash == NULL || password == NULL || strncmp(hash, "$7$", 3) != 0) {
        return false;
    }
    iter = strtol(hash + 3, &end, 10);
    if (end == NULL || *end != '$' || iter < 1 || iter > 10000000) {
        return false;
    }
    s = end + 1;
    d = strchr(s, '$');
    if (d == NULL || !decode64(s, (size_t)(d - s), salt, sizeof(salt)) ||
        !decode64(d + 1, strlen(d + 1), want, sizeof(want))) {
        return false;
    }
    if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)sizeof(salt), (int)iter,
                          EVP_sha512(), (int)sizeof(got), got) != 1) {
        return false;
    }
    ok = CRYPTO_memcmp(want, got, sizeof(got)) == 0;
    OPENSSL_cleanse(got, sizeof(got));
    return ok;
}

void mqim_authdb_serial_normalize(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    while (*in == '0' && in[1] != '\0') {
        in++;
    }
    for (; *in != '\0' && n + 1u < cap; in++) {
        out[n++] = (char)toupper((unsigned char)*in);
    }
    if (cap > 0u) {
        out[n] = '\0';
    }
}

/* "1 FLAGS HASH" ("-": no password) into rec. 0 or -1. */
int mqim_authdb_parse_user(const void *data, size_t size, mqim_authdb_user_t *rec)
{
    char text[MQIM_AUTHDB_HASH_MAX + 32];
    unsigned version = 0;
    int used = 0, rc = 0;
    size_t n = size < sizeof(text) ? size : sizeof(text) - 1u;
    memcpy(text, data, n);
    text[n] = '\0';
    if (sscanf(text, "%u %u %n", &version, &rec->flags, &used) != 2 || version != 1u || used <= 0 ||
        strlen(text + used) >= sizeof(rec->hash)) {
        rc = -1;
    } else {
        snprintf(rec->hash, sizeof(rec->hash), "%s", strcmp(text + used, "-") == 0 ? "" : text + used);
    }
    memset(text, 0, sizeof(text));
    return rc;
}

/* ---- writes ---------------------------------------------------------- */

static MDB_val val_of(const char *s)
{
    MDB_val v = { strlen(s), (void *)(uintptr_t)s };
    return v;
}

/* Append user to the kick log and drop what is older than KICKS_KEPT. */
static int log_kick(mqim_authdb_t *db, MDB_txn *txn, const char *user)
{
    MDB_cursor *c;
    MDB_val k, v;
    uint64_t seq = 0;
    unsigned char key[8];
    int rc = mdb_cursor_open(txn, db->kicks, &c);
    if (rc != 0) {
        return rc;
    }
    if (mdb_cursor_get(c, &k, &v, MDB_LAST) == 0 && k.mv_size == 8u) {
        for (int i = 0; i < 8; i++) {
            seq = seq << 8 | ((const unsigned char *)k.mv_data)[i];
        }
    }
    seq++;
    for (int i = 7; i >= 0; i--) {
        key[i] = (unsigned char)(seq >> (8 * (7 - i)));
    }
    k.mv_size = sizeof(key);
    k.mv_data = key;
    v = val_of(user);
    rc = mdb_put(txn, db->kicks, &k, &v, MDB_APPEND);
    /* Trim from the front: the plugin reads within a second of a write. */
    while (rc == 0 && mdb_cursor_get(c, &k, &v, MDB_FIRST) == 0 && k.mv_size == 8u) {
        uint64_t first = 0;
        for (int i = 0; i < 8; i++) {
            first = first << 8 | ((const unsigned char *)k.mv_data)[i];
        }
        if (seq - first < KICKS_KEPT) {
            break;
        }
        rc = mdb_cursor_del(c, 0);
    }
    mdb_cursor_close(c);
    return rc;
}

/* Begin a write transaction, run fn, commit, fix the files' group. */
static int write_txn(mqim_authdb_t *db, int (*fn)(mqim_authdb_t *, MDB_txn *, const void *),
                     const void *arg, const char *what, char *err, size_t err_len)
{
    MDB_txn *txn;
    int rc;
    if (!db->writable) {
        return fail(err, err_len, what, EACCES);
    }
    rc = mdb_txn_begin(db->env, NULL, 0, &txn);
    if (rc != 0) {
        return fail(err, err_len, what, rc);
    }
    rc = fn(db, txn, arg);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return fail(err, err_len, what, rc);
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0) {
        return fail(err, err_len, what, rc);
    }
    fix_modes(db->dir);
    return 0;
}

typedef struct {
    const char *user;
    const char *password;
    unsigned flags;
} user_set_t;

static int do_user_set(mqim_authdb_t *db, MDB_txn *txn, const void *arg)
{
    const user_set_t *a = arg;
    char rec[MQIM_AUTHDB_HASH_MAX + 32];
    char hash[MQIM_AUTHDB_HASH_MAX] = "-";
    MDB_val k = val_of(a->user), v;
    bool existed = mdb_get(txn, db->users, &k, &v) == 0;
    bool changed = a->password != NULL;
    if (existed && a->password != NULL) {
        /* The same password and flags again (a second `init`): no kick. */
        mqim_authdb_user_t old;
        if (mqim_authdb_parse_user(v.mv_data, v.mv_size, &old) == 0 && old.flags == a->flags &&
            (a->password[0] == '\0' ? old.hash[0] == '\0'
                                    : mqim_authdb_check_password(old.hash, a->password))) {
            changed = false;
        }
        memset(&old, 0, sizeof(old));
    }
    if (a->password != NULL && a->password[0] != '\0' &&
        mqim_authdb_hash_password(a->password, hash, sizeof(hash)) != 0) {
        return EIO;
    }
    if (a->password == NULL && existed) {
        mqim_authdb_user_t old; /* keep the stored hash */
        if (mqim_authdb_parse_user(v.mv_data, v.mv_size, &old) != 0) {
            return MDB_CORRUPTED;
        }
        changed = old.flags != a->flags;
        snprintf(hash, sizeof(hash), "%s", old.hash[0] != '\0' ? old.hash : "-");
        memset(&old, 0, sizeof(old));
    }
    snprintf(rec, sizeof(rec), "1 %u %s", a->flags, hash);
    v = val_of(rec);
    int rc = mdb_put(txn, db->users, &k, &v, 0);
    memset(rec, 0, sizeof(rec));
    if (rc == 0 && existed && changed) {
        rc = log_kick(db, txn, a->user);
    }
    return rc;
}

int mqim_authdb_user_set(mqim_authdb_t *db, const char *user, const char *password, unsigned flags,
                         char *err, size_t err_len)
{
    user_set_t a = { user, password, flags };
    return write_txn(db, do_user_set, &a, "user add", err, err_len);
}

static int do_user_del(mqim_authdb_t *db, MDB_txn *txn, const void *arg)
{
    const char *user = arg;
    MDB_val k = val_of(user);
    int rc = mdb_del(txn, db->users, &k, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        return rc;
    }
    return log_kick(db, txn, user); /* even when absent: a kick costs nothing */
}

int mqim_authdb_user_del(mqim_authdb_t *db, const char *user, char *err, size_t err_len)
{
    return write_txn(db, do_user_del, user, "user del", err, err_len);
}

typedef struct {
    const char *user;
    const char *const *serials;
    size_t n;
} revoke_t;

static int do_revoke(mqim_authdb_t *db, MDB_txn *txn, const void *arg)
{
    const revoke_t *a = arg;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < a->n; i++) {
        char serial[MQIM_AUTHDB_SERIAL_MAX];
        MDB_val k, v = val_of(a->user);
        mqim_authdb_serial_normalize(a->serials[i], serial, sizeof(serial));
        k = val_of(serial);
        rc = mdb_put(txn, db->revoked, &k, &v, 0);
    }
    return rc == 0 && a->n > 0u ? log_kick(db, txn, a->user) : rc;
}

int mqim_authdb_revoke(mqim_authdb_t *db, const char *user, const char *const *serials, size_t n,
                       char *err, size_t err_len)
{
    revoke_t a = { user, serials, n };
    return write_txn(db, do_revoke, &a, "revoke", err, err_len);
}

static int do_settings(mqim_authdb_t *db, MDB_txn *txn, const void *arg)
{
    const mqim_authdb_settings_t *s = arg;
    char budget[48];
    const char *keys[] = { "gateway", "client_id", "root", "budget" };
    const char *vals[] = { s->gateway, s->client_id, s->root, budget };
    int rc = 0;
    snprintf(budget, sizeof(budget), "%u %u", s->rate, s->burst);
    for (size_t i = 0; rc == 0 && i < 4u; i++) {
        MDB_val k = val_of(keys[i]), v = val_of(vals[i]);
        rc = mdb_put(txn, db->settings, &k, &v, 0);
    }
    return rc;
}

int mqim_authdb_settings_put(mqim_authdb_t *db, const mqim_authdb_settings_t *s, char *err,
                             size_t err_len)
{
    return write_txn(db, do_settings, s, "settings", err, err_len);
}

/* ---- reads ----------------------------------------------------------- */

uint64_t mqim_authdb_txn_id(mqim_authdb_t *db)
{
    MDB_envinfo info;
    if (db == NULL || mdb_env_info(db->env, &info) != 0) {
        return 0u;
    }
    return (uint64_t)info.me_last_txnid;
}

/* A read transaction; the map grew under us: adopt the new size once. */
static int read_begin(mqim_authdb_t *db, MDB_txn **txn)
{
    int rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, txn);
    if (rc == MDB_MAP_RESIZED && mdb_env_set_mapsize(db->env, 0) == 0) {
        rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, txn);
    }
    return rc;
}

int mqim_authdb_user_get(mqim_authdb_t *db, const char *user, size_t len, mqim_authdb_user_t *rec)
{
    MDB_txn *txn;
    MDB_val k = { len, (void *)(uintptr_t)user }, v;
    int rc;
    if (len == 0u || read_begin(db, &txn) != 0) {
        return len == 0u ? 1 : -1;
    }
    rc = mdb_get(txn, db->users, &k, &v);
    if (rc == 0 && rec != NULL && mqim_authdb_parse_user(v.mv_data, v.mv_size, rec) != 0) {
        rc = MDB_CORRUPTED;
    }
    mdb_txn_abort(txn);
    return rc == 0 ? 0 : rc == MDB_NOTFOUND ? 1 : -1;
}

int mqim_authdb_serial_revoked(mqim_authdb_t *db, const char *serial)
{
    char norm[MQIM_AUTHDB_SERIAL_MAX];
    MDB_txn *txn;
    MDB_val k, v;
    int rc;
    mqim_authdb_serial_normalize(serial, norm, sizeof(norm));
    k = val_of(norm);
    if (read_begin(db, &txn) != 0) {
        return -1;
    }
    rc = mdb_get(txn, db->revoked, &k, &v);
    mdb_txn_abort(txn);
    return rc == 0 ? 1 : rc == MDB_NOTFOUND ? 0 : -1;
}

static void copy_val(char *dst, size_t cap, const MDB_val *v)
{
    size_t n = v->mv_size < cap ? v->mv_size : cap - 1u;
    memcpy(dst, v->mv_data, n);
    dst[n] = '\0';
}

int mqim_authdb_settings_get(mqim_authdb_t *db, mqim_authdb_settings_t *s)
{
    MDB_txn *txn;
    MDB_val k, v;
    char budget[48] = "";
    struct { const char *key; char *dst; size_t cap; } f[] = {
        { "gateway", s->gateway, sizeof(s->gateway) },
        { "client_id", s->client_id, sizeof(s->client_id) },
        { "root", s->root, sizeof(s->root) },
        { "budget", budget, sizeof(budget) },
    };
    memset(s, 0, sizeof(*s));
    if (read_begin(db, &txn) != 0) {
        return -1;
    }
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        k = val_of(f[i].key);
        if (mdb_get(txn, db->settings, &k, &v) == 0) {
            copy_val(f[i].dst, f[i].cap, &v);
        }
    }
    mdb_txn_abort(txn);
    if (sscanf(budget, "%u %u", &s->rate, &s->burst) != 2) {
        s->rate = s->burst = 0u;
    }
    return s->gateway[0] != '\0' && s->root[0] != '\0' ? 0 : -1;
}

int mqim_authdb_kicks(mqim_authdb_t *db, uint64_t *seq, void (*fn)(void *ctx, const char *user),
                      void *ctx)
{
    MDB_txn *txn;
    MDB_cursor *c;
    MDB_val k, v;
    unsigned char key[8];
    int rc;
    if (read_begin(db, &txn) != 0) {
        return -1;
    }
    rc = mdb_cursor_open(txn, db->kicks, &c);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return -1;
    }
    for (int i = 7; i >= 0; i--) {
        key[i] = (unsigned char)((*seq + 1u) >> (8 * (7 - i)));
    }
    k.mv_size = sizeof(key);
    k.mv_data = key;
    for (rc = mdb_cursor_get(c, &k, &v, fn != NULL ? MDB_SET_RANGE : MDB_LAST); rc == 0;
         rc = fn != NULL ? mdb_cursor_get(c, &k, &v, MDB_NEXT) : MDB_NOTFOUND) {
        char user[128];
        uint64_t s = 0;
        if (k.mv_size != 8u) {
            continue;
        }
        for (int i = 0; i < 8; i++) {
            s = s << 8 | ((const unsigned char *)k.mv_data)[i];
        }
        if (s <= *seq && fn != NULL) {
            continue;
        }
        *seq = s;
        copy_val(user, sizeof(user), &v);
        if (fn != NULL) {
            fn(ctx, user);
        }
    }
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    return rc == MDB_NOTFOUND ? 0 : -1;
}
