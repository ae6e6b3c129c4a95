/**
 * @file store.h
 * @brief The gateway's durable state: on LMDB (one environment, the
 *        default) or PostgreSQL, through the engine interface of kv.h.
 *
 * Databases (keys use '\0' between names, which valid names never contain,
 * and big-endian u64 seqs so byte order is numeric order):
 *   meta     "next_mid", "next_outbox", counters       -> u64
 *   users    user                                      -> mqim_user_rec_t
 *   msgs     be64(mid)                                 -> message record
 *   inbox    user \0 be64(seq)                         -> inbox entry (mid, dir, chat), or a
 *                                                         tombstone (no message, ts, chat)
 *   chats    user \0 chat \0 be64(seq)                 -> be64(mid) (entries with a message only)
 *   dedupe   from \0 id                                -> the `sent` ack payload
 *   cursors  user \0 chat                              -> be64(read upto seq)
 *   devices  user \0 device                            -> mqim_device_rec_t
 *   outbox   be64(key)                                 -> publish to make (topic, qos, payload)
 *   groups   group                                     -> created, member count, title,
 *                                                         retention policy, messages held
 *   members  group \0 user                             -> role, joined
 *   memberships user \0 group                          -> role (a user's groups)
 *   receipts be64(mid) \0 member                       -> delivered/read, ts (group messages)
 *   files    file id                                   -> its description (files.c's record)
 *   chunks   file id \0 be32(index)                    -> the chunk's bytes
 *   uploads  from \0 upload id                         -> file id (a resumed upload finds its file)
 *   file_access file id \0 user                        -> "" (a message announced the file to user)
 *   gindex   group \0 be64(mid) \0 member              -> be64(member's inbox seq): every inbox
 *                                                         entry of a group message, oldest first
 *   pruned   user \0 chat                              -> be64(highest seq retention removed
 *                                                         from that chat; group chats only)
 *   keys     user \0 device                            -> 32-byte X25519 public key, be64(ts first
 *                                                         stored) (E2E device keys, keys.c)
 *   epochs   be64(epoch)                               -> be64(its ordinal: 1, 2, ... in the
 *                                                         order this history began them)
 *   forks    user \0 be64(ordinal)                     -> be64(the user's highest seq when that
 *                                                         epoch began)
 *
 * Store identity (format 2; meta "schema", "store_id", "store_epoch",
 * "epoch_ordinal", "home_dev"/"home_ino"): a random store id made when the
 * store is created, and a random epoch that changes whenever history may
 * have diverged: `restore`, a store file that is a copy (its device and
 * inode differ from the ones recorded: a file-level restore, a move, a
 * second instance), `mqim-gateway new-epoch`. Seqs of one epoch are never
 * reused; across epochs they may be (a restored store hands out again the
 * seqs issued after its backup). The forks record, per user, the highest
 * seq an epoch shares with the ones before it, so a device that saw seqs of
 * an older epoch knows from which seq to take the new history
 * (mqim_store_epoch_seq; docs/protocol.md, "Store epochs").
 *
 * A group's messages sit in each member's inbox under the chat "#group"
 * ('#' is not a name character, so a group never collides with a peer).
 * Group retention (mqim_store_group_prune) must not leave holes in a
 * member's seq stream, so it turns each copy into a tombstone: the inbox
 * entry keeps its seq, direction and chat but no message; it leaves the
 * chat index (history, unread and `chats` see only messages) and the
 * `pruned` marker of that chat records that something is missing. User
 * retention (mqim_store_inbox_prune) removes tombstones at the head of an
 * inbox like any entry.
 *
 * Every publish the gateway makes because of stored state goes through the
 * outbox in the same transaction as the state change. The pump (io/pump.c)
 * sends outbox entries in key order on the outbox connection; the inbound
 * worker (io/inbound.c) deletes the ones the broker acknowledged, inside its
 * next group commit, so a crash after a commit loses no delivery and no ack
 * (docs/architecture.md, "Data flow of a direct message", step 5).
 *
 * The store layer sees only base/ (log) and common/ (gateway/CMakeLists.txt):
 * it knows nothing of routing, MQTT or threads.
 *
 * Strings returned by getters point into LMDB's map and are valid until the
 * transaction ends.
 */
#ifndef MQIM_GW_STORE_H
#define MQIM_GW_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqim/status.h"
#include "mqim/str.h"

typedef struct mqim_store mqim_store_t;

/** A transaction; lives on the caller's stack. */
typedef struct mqim_txn {
    mqim_store_t *store;
    void *impl; /* the engine's transaction (mqim_kv_txn_t *) */
    bool write;
} mqim_txn_t;

typedef enum mqim_txn_mode {
    MQIM_TXN_READ,
    MQIM_TXN_WRITE,       /**< durable: the commit returns after fsync */
    MQIM_TXN_WRITE_LAZY   /**< no meta-page fsync: may be lost in a power cut, never
                               corrupts (for deleting sent outbox entries: a lost
                               delete only causes a harmless re-send) */
} mqim_txn_mode_t;

typedef struct mqim_user_rec {
    uint64_t next_seq;  /**< next inbox seq to assign (first is 1) */
    uint64_t first_seq; /**< lowest seq still stored (pruned below); 1 when nothing pruned */
    uint64_t count;     /**< inbox entries holding a message (tombstones not counted:
                             quotas and retain_count are about messages) */
    int64_t created_ms;
    /* Per-user policy; 0 = the gateway's configured default,
     * MQIM_POLICY_UNLIMITED = no limit for this user. */
    uint64_t retain_count;
    uint64_t retain_days;
    uint64_t inbox_quota;
} mqim_user_rec_t;

#define MQIM_POLICY_UNLIMITED UINT64_MAX

/** A stored message (strings point into the map). */
typedef struct mqim_msg_rec {
    uint64_t mid;
    int64_t ts;
    uint64_t sender_seq;    /**< seq of the echo in the sender's inbox */
    uint64_t recipient_seq; /**< seq in the recipient's inbox (direct messages) */
    uint32_t refs;          /**< inbox entries referring to it */
    uint8_t qos;            /**< 0 or 1 */
    /** body holds the JSON text of an end-to-end encrypted body ("enc",
     *  docs/e2e.md) that the gateway cannot read, not the message's text. */
    bool enc;
    mqim_str_t id, from, to, group, type, body;
    mqim_str_t device;   /**< the sender's device, when it said */
    /* type "file": the announced file (files.c); file_id empty otherwise */
    mqim_str_t file_id, file_name, file_mime, file_sha256;
    uint64_t file_size;
} mqim_msg_rec_t;

typedef enum mqim_inbox_dir {
    MQIM_INBOX_RECEIVED = 0, /**< someone sent it to this user */
    MQIM_INBOX_SENT = 1      /**< this user sent it (the echo) */
} mqim_inbox_dir_t;

typedef struct mqim_inbox_entry {
    uint64_t seq;
    uint64_t mid;    /**< 0 for a tombstone */
    mqim_inbox_dir_t dir;
    mqim_str_t chat; /**< the peer (direct) or "#group" */
    bool pruned;     /**< a tombstone: group retention removed the message, the seq stays */
    int64_t ts;      /**< a tombstone's: the removed message's ts */
} mqim_inbox_entry_t;

typedef enum mqim_presence_state {
    MQIM_PRESENCE_OFFLINE = 0,
    MQIM_PRESENCE_SLEEPING = 1,
    MQIM_PRESENCE_AWAY = 2,
    MQIM_PRESENCE_ONLINE = 3
} mqim_presence_state_t;

typedef struct mqim_device_rec {
    uint64_t epoch;
    int64_t since_ms;     /**< when the state last changed */
    int64_t last_seen_ms; /**< last time the device was known online */
    uint8_t state;        /**< mqim_presence_state_t */
    uint8_t has_epoch;
} mqim_device_rec_t;

typedef struct mqim_outbox_rec {
    uint64_t key;
    uint8_t qos;
    bool retain;
    mqim_str_t topic;
    mqim_str_t corr;    /**< MQTT v5 correlation data; empty when none */
    mqim_str_t payload;
} mqim_outbox_rec_t;

/** The store format this gateway writes: 2 added the store identity. */
#define MQIM_STORE_SCHEMA 2u
#define MQIM_STORE_ID_BYTES 16u

typedef struct mqim_store_identity {
    char id[MQIM_STORE_ID_BYTES * 2u + 1u]; /**< hex; "" in a format-1 store opened read-only */
    uint64_t epoch;  /**< 1..2^53-1; 0 in a format-1 store opened read-only */
    uint64_t schema; /**< the store's format */
    bool copied;     /**< this open found a copy of the recorded store file and began an epoch */
} mqim_store_identity_t;

/** The engine under the store (kv.h; docs/scale.md): LMDB, embedded, the
 *  default; or PostgreSQL through libpq (gateway.conf `store_engine`). */
typedef enum mqim_store_engine {
    MQIM_STORE_LMDB = 0,
    MQIM_STORE_POSTGRESQL = 1
} mqim_store_engine_t;

typedef struct mqim_store_config {
    mqim_store_engine_t engine;
    const char *dir;  /**< LMDB: the environment's directory */
    size_t map_size;  /**< LMDB: the map size in bytes (0: LMDB's default) */
    const char *dsn;  /**< PostgreSQL: the libpq connection string (`store_dsn`) */
} mqim_store_config_t;

/**
 * Open the store on the configured engine; as mqim_store_open otherwise.
 * With PostgreSQL the store's table is made when missing; a copy of the
 * store is not detected by file identity (that is LMDB's), and
 * mqim_store_copy answers MQIM_UNSUPPORTED (PostgreSQL's own backups).
 * MQIM_UNSUPPORTED also when the engine was not built in.
 */
mqim_status_t mqim_store_open_config(const mqim_store_config_t *cfg, bool read_only,
                                     mqim_store_t **out);
mqim_store_engine_t mqim_store_engine(const mqim_store_t *store);

/**
 * Open (creating) the environment in directory `dir` (created 0700 if
 * missing) with a map of map_size bytes. Opened for writing, a new store
 * gets its identity, an older format is upgraded, and a store file that is a
 * copy of the one recorded starts a new epoch (all logged).
 * @return MQIM_OK, MQIM_UNSUPPORTED (a newer format than MQIM_STORE_SCHEMA,
 *         or format 1 opened read-only), MQIM_STORE_ERROR (with a log line
 *         naming the cause).
 */
mqim_status_t mqim_store_open(const char *dir, size_t map_size, bool read_only,
                              mqim_store_t **out);
void mqim_store_close(mqim_store_t *store);

/** Fault injection for tests: every prefix scan (members, memberships,
 *  keys, receipts, forks) fails with st until called with MQIM_OK. */
void mqim_store_fail_scans(mqim_store_t *store, mqim_status_t st);

/** The identity read at open (and after mqim_store_new_epoch). */
const mqim_store_identity_t *mqim_store_identity(const mqim_store_t *store);
/**
 * A consistent copy of the store, compacted (mdb_env_copy2 in one read
 * transaction: the gateway may keep running), into dir/data.mdb; dir is
 * made 0700 when missing. @return MQIM_OK, MQIM_STORE_ERROR (logged).
 */
mqim_status_t mqim_store_copy(mqim_store_t *store, const char *dir);
/** Begin a new epoch (restore, forced recovery): records every user's fork
 *  seq, logs `why`. Not inside a batch. */
mqim_status_t mqim_store_new_epoch(mqim_store_t *store, const char *why);
/**
 * The highest seq of user's inbox that the current history shares with
 * epoch since_epoch: UINT64_MAX when since_epoch is the current one; the
 * lowest fork seq of the epochs begun after it (all of them when this
 * history does not know it); since_epoch 0: the fork of the current epoch.
 */
mqim_status_t mqim_store_epoch_seq(mqim_txn_t *txn, mqim_str_t user, uint64_t since_epoch,
                                   uint64_t *seq);
/**
 * One gateway per data directory: an exclusive flock on DIR/gateway.lock
 * (made with DIR when missing), which holds the owner's pid. Returns the
 * descriptor (kept open for the lock's lifetime; closed at exit), or -1 with
 * the reason in err ("another mqim-gateway (pid N) is using ...").
 */
int mqim_store_lock_dir(const char *dir, char *err, size_t cap);

mqim_status_t mqim_txn_begin(mqim_store_t *store, mqim_txn_mode_t mode, mqim_txn_t *txn);
/** @return MQIM_OK, MQIM_STORE_FULL (map full: the txn is gone), MQIM_DISK_FULL
 *  (the file system said ENOSPC or EDQUOT), MQIM_STORE_ERROR. */
mqim_status_t mqim_txn_commit(mqim_txn_t *txn);
void mqim_txn_abort(mqim_txn_t *txn);

/**
 * Group commit. Opens one durable write transaction (the batch) and binds it
 * to the calling thread: until mqim_store_batch_commit/abort, every
 * mqim_txn_begin on this thread (any mode) returns a nested transaction of
 * the batch, whose commit only merges into the batch. So code written for
 * "one transaction per request" runs unchanged, each request still atomic
 * on its own (an aborted request leaves the others), and the batch costs one
 * fsync pair for all of them. Other threads' transactions are unaffected
 * (their writes wait for the batch: LMDB has one writer). One batch per store.
 */
mqim_status_t mqim_store_batch_begin(mqim_store_t *store, mqim_txn_t *batch);
mqim_status_t mqim_store_batch_commit(mqim_txn_t *batch);
void mqim_store_batch_abort(mqim_txn_t *batch);

/* Counters in meta ("messages", "rejected", ...). */
mqim_status_t mqim_store_counter_add(mqim_txn_t *txn, const char *name, uint64_t delta);
/** Set a counter to value when that is higher (a high-water mark: the
 *  inbound journal's last applied record). */
mqim_status_t mqim_store_counter_raise(mqim_txn_t *txn, const char *name, uint64_t value);
uint64_t mqim_store_counter_get(mqim_txn_t *txn, const char *name);

/* Users. */
mqim_status_t mqim_store_user_get(mqim_txn_t *txn, mqim_str_t user, mqim_user_rec_t *rec);
mqim_status_t mqim_store_user_put(mqim_txn_t *txn, mqim_str_t user, const mqim_user_rec_t *rec);
/** Create when missing (fresh record); MQIM_OK either way. */
mqim_status_t mqim_store_user_ensure(mqim_txn_t *txn, mqim_str_t user, int64_t now_ms);
/** Remove the user record (stored messages stay until retention). MQIM_NOT_FOUND when absent. */
mqim_status_t mqim_store_user_del(mqim_txn_t *txn, mqim_str_t user);
typedef int (*mqim_user_visit_fn)(void *ctx, mqim_str_t user, const mqim_user_rec_t *rec);
mqim_status_t mqim_store_user_each(mqim_txn_t *txn, mqim_user_visit_fn fn, void *ctx);

/* Messages. The message's mid is assigned here. */
mqim_status_t mqim_store_msg_put(mqim_txn_t *txn, mqim_msg_rec_t *rec);
mqim_status_t mqim_store_msg_get(mqim_txn_t *txn, uint64_t mid, mqim_msg_rec_t *rec);
/** Rewrite the fixed fields (seqs, refs) of a stored message. */
mqim_status_t mqim_store_msg_update(mqim_txn_t *txn, const mqim_msg_rec_t *rec);

/**
 * Append to a user's inbox: assigns the next seq (returned in *seq), adds the
 * chat index entry, bumps the user's count. The user record must exist.
 */
mqim_status_t mqim_store_inbox_append(mqim_txn_t *txn, mqim_str_t user, mqim_str_t chat,
                                      uint64_t mid, mqim_inbox_dir_t dir, uint64_t *seq);
mqim_status_t mqim_store_inbox_get(mqim_txn_t *txn, mqim_str_t user, uint64_t seq,
                                   mqim_inbox_entry_t *entry);
/** Visit a user's inbox entries with seq > after in order; fn returns nonzero to stop. */
typedef int (*mqim_inbox_visit_fn)(void *ctx, const mqim_inbox_entry_t *entry);
mqim_status_t mqim_store_inbox_scan(mqim_txn_t *txn, mqim_str_t user, uint64_t after,
                                    mqim_inbox_visit_fn fn, void *ctx);
/**
 * Visit one chat of a user: ascending from seq > after, or descending from
 * seq < before (when before != 0). fn returns nonzero to stop.
 */
mqim_status_t mqim_store_chat_scan(mqim_txn_t *txn, mqim_str_t user, mqim_str_t chat,
                                   uint64_t after, uint64_t before, mqim_inbox_visit_fn fn,
                                   void *ctx);
/** Visit each chat of a user (peer name, or "#group") with its last seq,
 *  in chat-name order; fn returns nonzero to stop. */
typedef int (*mqim_chat_visit_fn)(void *ctx, mqim_str_t chat, uint64_t last_seq);
mqim_status_t mqim_store_chat_each(mqim_txn_t *txn, mqim_str_t user, mqim_chat_visit_fn fn, void *ctx);

/**
 * Remove the oldest inbox entries of a user while (count > keep_count, when
 * keep_count != 0) or (ts < min_ts, when min_ts != 0); dereference messages
 * and delete them at zero refs; advance first_seq. Tombstones at the head
 * go too (they hold nothing, and removing the head leaves no hole: sync
 * reports first_seq). *pruned gets the number of entries removed.
 */
mqim_status_t mqim_store_inbox_prune(mqim_txn_t *txn, mqim_str_t user, uint64_t keep_count,
                                     int64_t min_ts, uint64_t *pruned);

/* Dedupe: (from, id) -> the `sent` ack payload given the first time. */
mqim_status_t mqim_store_dedupe_get(mqim_txn_t *txn, mqim_str_t from, mqim_str_t id,
                                    mqim_str_t *ack_payload);
mqim_status_t mqim_store_dedupe_put(mqim_txn_t *txn, mqim_str_t from, mqim_str_t id,
                                    mqim_str_t ack_payload);

/* Read cursors: forward-only is the router's rule; the store just keeps the value. */
uint64_t mqim_store_cursor_get(mqim_txn_t *txn, mqim_str_t user, mqim_str_t chat);
mqim_status_t mqim_store_cursor_put(mqim_txn_t *txn, mqim_str_t user, mqim_str_t chat,
                                    uint64_t upto);

/* Device presence. */
mqim_status_t mqim_store_device_get(mqim_txn_t *txn, mqim_str_t user, mqim_str_t device,
                                    mqim_device_rec_t *rec);
mqim_status_t mqim_store_device_put(mqim_txn_t *txn, mqim_str_t user, mqim_str_t device,
                                    const mqim_device_rec_t *rec);
typedef int (*mqim_device_visit_fn)(void *ctx, mqim_str_t device, const mqim_device_rec_t *rec);
mqim_status_t mqim_store_device_each(mqim_txn_t *txn, mqim_str_t user, mqim_device_visit_fn fn,
                                     void *ctx);

/* Outbox. */
mqim_status_t mqim_store_outbox_put(mqim_txn_t *txn, mqim_str_t topic, int qos, bool retain,
                                    mqim_str_t corr, mqim_str_t payload, uint64_t *key);
/** First entry with key >= from; MQIM_NOT_FOUND when none. */
mqim_status_t mqim_store_outbox_next(mqim_txn_t *txn, uint64_t from, mqim_outbox_rec_t *rec);
/** MQIM_OK also when the entry was gone already. */
mqim_status_t mqim_store_outbox_del(mqim_txn_t *txn, uint64_t key);
uint64_t mqim_store_outbox_count(mqim_txn_t *txn);

/* Groups. */
#define MQIM_GROUP_TITLE_MAX 128u

typedef enum mqim_group_role {
    MQIM_ROLE_MEMBER = 0,
    MQIM_ROLE_ADMIN = 1,
    MQIM_ROLE_OWNER = 2
} mqim_group_role_t;

typedef struct mqim_group_rec {
    int64_t created_ms;
    uint64_t members;
    mqim_str_t title; /**< display name; may point into the map */
    /* Retention policy of the group; 0 = the gateway's default
     * (group_retain_count / group_retain_days), MQIM_POLICY_UNLIMITED = none. */
    uint64_t retain_count;
    uint64_t retain_days;
    uint64_t msgs; /**< messages of the group in gindex (what count retention counts) */
} mqim_group_rec_t;

typedef struct mqim_member_rec {
    uint8_t role; /**< mqim_group_role_t */
    int64_t joined_ms;
} mqim_member_rec_t;

mqim_status_t mqim_store_group_get(mqim_txn_t *txn, mqim_str_t group, mqim_group_rec_t *rec);
mqim_status_t mqim_store_group_put(mqim_txn_t *txn, mqim_str_t group, const mqim_group_rec_t *rec);
mqim_status_t mqim_store_group_del(mqim_txn_t *txn, mqim_str_t group);
mqim_status_t mqim_store_member_get(mqim_txn_t *txn, mqim_str_t group, mqim_str_t user,
                                    mqim_member_rec_t *rec);
/** Add or update a member (and the user's membership index). */
mqim_status_t mqim_store_member_put(mqim_txn_t *txn, mqim_str_t group, mqim_str_t user,
                                    const mqim_member_rec_t *rec);
mqim_status_t mqim_store_member_del(mqim_txn_t *txn, mqim_str_t group, mqim_str_t user);
typedef int (*mqim_member_visit_fn)(void *ctx, mqim_str_t user, const mqim_member_rec_t *rec);
mqim_status_t mqim_store_member_each(mqim_txn_t *txn, mqim_str_t group, mqim_member_visit_fn fn,
                                     void *ctx);
typedef int (*mqim_membership_visit_fn)(void *ctx, mqim_str_t group);
mqim_status_t mqim_store_membership_each(mqim_txn_t *txn, mqim_str_t user,
                                         mqim_membership_visit_fn fn, void *ctx);

/* Group retention. */

/** Record that member's inbox entry seq holds group message mid (at fan-out). */
mqim_status_t mqim_store_gindex_put(mqim_txn_t *txn, mqim_str_t group, uint64_t mid,
                                    mqim_str_t member, uint64_t seq);
/** The number of messages of a group in gindex (a group made again under an
 *  old name inherits what the old one left in inboxes). */
mqim_status_t mqim_store_gindex_count(mqim_txn_t *txn, mqim_str_t group, uint64_t *msgs);
/** Visit each group that has messages in gindex (ended groups included). */
mqim_status_t mqim_store_gindex_each(mqim_txn_t *txn, mqim_membership_visit_fn fn, void *ctx);
/**
 * Prune a group's oldest messages while (its record's msgs > keep_count,
 * when keep_count != 0 and the group exists) or (the message's ts < min_ts,
 * when min_ts != 0): every inbox entry of the message becomes a tombstone,
 * the message and its receipts go. *msgs gets the number of messages pruned,
 * *entries the number of inbox entries turned into tombstones (either may be NULL).
 */
mqim_status_t mqim_store_group_prune(mqim_txn_t *txn, mqim_str_t group, uint64_t keep_count,
                                     int64_t min_ts, uint64_t *msgs, uint64_t *entries);
/** The highest seq retention removed from a user's chat; 0 when none. */
uint64_t mqim_store_chat_pruned(mqim_txn_t *txn, mqim_str_t user, mqim_str_t chat);

/* Per-member receipts of group messages: status 1 delivered, 2 read; forward-only. */
#define MQIM_RECEIPT_DELIVERED 1u
#define MQIM_RECEIPT_READ 2u
mqim_status_t mqim_store_receipt_put(mqim_txn_t *txn, uint64_t mid, mqim_str_t member,
                                     uint8_t status, int64_t ts);
typedef int (*mqim_receipt_visit_fn)(void *ctx, mqim_str_t member, uint8_t status, int64_t ts);
mqim_status_t mqim_store_receipt_each(mqim_txn_t *txn, uint64_t mid, mqim_receipt_visit_fn fn,
                                      void *ctx);

/* Files (files.c): descriptions are opaque here. */
mqim_status_t mqim_store_file_get(mqim_txn_t *txn, mqim_str_t file, mqim_str_t *meta);
mqim_status_t mqim_store_file_put(mqim_txn_t *txn, mqim_str_t file, mqim_str_t meta);
/** Delete a file's description and its first `chunks` chunks. */
mqim_status_t mqim_store_file_del(mqim_txn_t *txn, mqim_str_t file, uint32_t chunks);
mqim_status_t mqim_store_chunk_get(mqim_txn_t *txn, mqim_str_t file, uint32_t index, mqim_str_t *data);
mqim_status_t mqim_store_chunk_put(mqim_txn_t *txn, mqim_str_t file, uint32_t index, const uint8_t *data,
                                   size_t len);
mqim_status_t mqim_store_upload_get(mqim_txn_t *txn, mqim_str_t from, mqim_str_t id, mqim_str_t *file);
mqim_status_t mqim_store_upload_put(mqim_txn_t *txn, mqim_str_t from, mqim_str_t id, mqim_str_t file);
/** Let `user` fetch `file` (a message announcing it reached their inbox). */
mqim_status_t mqim_store_file_grant(mqim_txn_t *txn, mqim_str_t file, mqim_str_t user);
/** @return MQIM_OK when granted, MQIM_NOT_FOUND when not, a store error. */
mqim_status_t mqim_store_file_granted(mqim_txn_t *txn, mqim_str_t file, mqim_str_t user);

/* End-to-end encryption device keys (keys.c, docs/e2e.md). */
#define MQIM_KEY_LEN 32u

typedef struct mqim_key_rec {
    uint8_t x25519[MQIM_KEY_LEN]; /**< the device's X25519 public key */
    int64_t ts_ms;                /**< when the gateway first stored this key */
} mqim_key_rec_t;

/** @return MQIM_OK, MQIM_NOT_FOUND, MQIM_STORE_ERROR (a corrupt record). */
mqim_status_t mqim_store_key_get(mqim_txn_t *txn, mqim_str_t user, mqim_str_t device,
                                 mqim_key_rec_t *rec);
mqim_status_t mqim_store_key_put(mqim_txn_t *txn, mqim_str_t user, mqim_str_t device,
                                 const mqim_key_rec_t *rec);
/** MQIM_NOT_FOUND when the device has no key. */
mqim_status_t mqim_store_key_del(mqim_txn_t *txn, mqim_str_t user, mqim_str_t device);
typedef int (*mqim_key_visit_fn)(void *ctx, mqim_str_t device, const mqim_key_rec_t *rec);
/** Visit a user's device keys in device-name (byte) order; fn returns nonzero to stop. */
mqim_status_t mqim_store_key_each(mqim_txn_t *txn, mqim_str_t user, mqim_key_visit_fn fn, void *ctx);

typedef struct mqim_store_stats {
    uint64_t users, messages, inbox_entries, outbox, map_used_bytes, map_size_bytes;
} mqim_store_stats_t;
mqim_status_t mqim_store_stats(mqim_txn_t *txn, mqim_store_stats_t *stats);

#endif /* MQIM_GW_STORE_H */
