/**
 * @file kv.h
 * @brief The store engine interface: an ordered key-value store with
 *        transactions, nested transactions and range cursors.
 *
 * store.c keeps every record format and rule of the gateway's state (seq
 * assignment, dedupe, outbox, groups, files, keys, retention, epochs) and
 * reaches its data only through one engine of this interface, so the router
 * runs unchanged over either:
 *   - kv_lmdb.c: LMDB, embedded, the default (one writer, readers in
 *     parallel, values pointing into the map);
 *   - kv_pg.c: PostgreSQL through libpq (one table, the same keys and
 *     values; docs/scale.md).
 *
 * The contract both engines keep (store.c depends on each point):
 *   - databases are numbered 0..ndbs-1 (the names given at open), keys are
 *     byte strings in memcmp order (shorter first on a common prefix);
 *   - a value returned by get or a cursor stays valid and unchanged until
 *     the root transaction it was read in ends, whatever is written after;
 *   - a nested transaction (begin with a parent) sees its parent's writes;
 *     its commit merges into the parent, its abort undoes only its own
 *     writes; a parent is not used while its child is open;
 *   - a write transaction sees every transaction committed before it
 *     began, and no other write transaction commits in between (writers
 *     are serial: LMDB's single writer, PostgreSQL's advisory lock);
 *   - MQIM_NOT_FOUND when a key or a cursor position does not exist,
 *     MQIM_STORE_FULL, MQIM_DISK_FULL, MQIM_STORE_ERROR (logged) otherwise.
 */
#ifndef MQIM_GW_KV_H
#define MQIM_GW_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqim/status.h"

typedef struct mqim_kv_val {
    size_t size;
    void *data;
} mqim_kv_val_t;

typedef enum mqim_kv_op {
    MQIM_KV_FIRST,
    MQIM_KV_LAST,
    MQIM_KV_NEXT,
    MQIM_KV_PREV,
    MQIM_KV_SET_RANGE /**< the first key >= the given one */
} mqim_kv_op_t;

typedef enum mqim_kv_txn_kind {
    MQIM_KV_READ,
    MQIM_KV_WRITE,     /**< durable commit */
    MQIM_KV_WRITE_LAZY /**< the commit may be lost in a power cut, never half-applied */
} mqim_kv_txn_kind_t;

/** put flag: the key is greater than every key of the database (a hint). */
#define MQIM_KV_APPEND 1u
/** del flag: the caller ignores MQIM_NOT_FOUND (an engine may then delete
 *  without first finding out whether the key exists). */
#define MQIM_KV_BLIND 2u

typedef struct mqim_kv mqim_kv_t;
typedef struct mqim_kv_txn mqim_kv_txn_t;
typedef struct mqim_kv_cursor mqim_kv_cursor_t;

typedef struct mqim_kv_open_args {
    const char *dir;      /**< LMDB: the environment's directory */
    size_t map_size;      /**< LMDB: map size in bytes; 0 = LMDB's default */
    const char *dsn;      /**< PostgreSQL: the libpq connection string */
    const char *const *dbs; /**< the database names, ndbs of them */
    int ndbs;
    int first_optional;   /**< dbs from this index on may be missing in a read-only open */
    bool read_only;
} mqim_kv_open_args_t;

typedef struct mqim_kv_engine {
    const char *name;
    /** MQIM_UNSUPPORTED when read-only and a database below first_optional.. is
     *  missing (an older store format: logged by the caller). */
    mqim_status_t (*open)(const mqim_kv_open_args_t *args, mqim_kv_t **out);
    void (*close)(mqim_kv_t *kv);
    mqim_status_t (*txn_begin)(mqim_kv_t *kv, mqim_kv_txn_t *parent, mqim_kv_txn_kind_t kind,
                               mqim_kv_txn_t **out);
    mqim_status_t (*txn_commit)(mqim_kv_txn_t *txn);
    void (*txn_abort)(mqim_kv_txn_t *txn);
    mqim_status_t (*get)(mqim_kv_txn_t *txn, int db, const mqim_kv_val_t *key, mqim_kv_val_t *val);
    mqim_status_t (*put)(mqim_kv_txn_t *txn, int db, const mqim_kv_val_t *key,
                         const mqim_kv_val_t *val, unsigned flags);
    /** Put a value of len bytes that the caller writes into *buf before its
     *  next call on this transaction (LMDB writes it in place in the map). */
    mqim_status_t (*reserve)(mqim_kv_txn_t *txn, int db, const mqim_kv_val_t *key, size_t len,
                             unsigned flags, void **buf);
    mqim_status_t (*del)(mqim_kv_txn_t *txn, int db, const mqim_kv_val_t *key, unsigned flags);
    mqim_status_t (*cursor_open)(mqim_kv_txn_t *txn, int db, mqim_kv_cursor_t **out);
    /** SET_RANGE reads *key; every op returns the position in *key, *val. */
    mqim_status_t (*cursor_get)(mqim_kv_cursor_t *c, mqim_kv_val_t *key, mqim_kv_val_t *val,
                                mqim_kv_op_t op);
    void (*cursor_close)(mqim_kv_cursor_t *c);
    mqim_status_t (*count)(mqim_kv_txn_t *txn, int db, uint64_t *entries);
    /** Bytes used and the limit (LMDB's map); 0, 0 when the engine has no limit. */
    mqim_status_t (*space)(mqim_kv_t *kv, uint64_t *used, uint64_t *limit);
    /** A consistent compacted copy into dir (LMDB); MQIM_UNSUPPORTED elsewhere. */
    mqim_status_t (*copy)(mqim_kv_t *kv, const char *dir);
} mqim_kv_engine_t;

/** Every open engine starts with its vtable, so store.c can call through it. */
struct mqim_kv {
    const mqim_kv_engine_t *engine;
};

extern const mqim_kv_engine_t mqim_kv_lmdb;
/** NULL when the gateway was built without libpq. */
extern const mqim_kv_engine_t *const mqim_kv_postgresql;

#endif /* MQIM_GW_KV_H */
