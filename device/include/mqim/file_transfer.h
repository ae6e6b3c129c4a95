/**
 * @file file_transfer.h
 * @brief Sending and fetching files through the gateway in chunks
 *        (docs/protocol.md, "Files"), on top of the IM client.
 *
 * A device never needs a whole file in RAM: an upload reads each chunk from
 * a board callback at the offset it needs, a download hands each chunk to a
 * board callback. Both survive a lost link: after a reconnect the upload asks
 * the gateway how much it holds (file_begin with the same upload id) and the
 * download asks again from the first byte it did not get. Integrity is end
 * to end: the uploader declares the SHA-256, the gateway checks it before the
 * file can be announced, the downloader checks it over what it wrote.
 *
 * Use: call the _step function after every mqim_client_poll(), and hand every
 * on_response to the _on_response function of each transfer in progress
 * (it ignores responses that are not its own). One upload and one download
 * may run at a time per client (their responses are told apart by "req").
 * Memory: both structs are caller-owned, about 3 x MQIM_CFG_FILE_CHUNK_SIZE.
 *
 * Threading: as the client, single-threaded.
 */
#ifndef MQIM_FILE_TRANSFER_H
#define MQIM_FILE_TRANSFER_H

#include <stdbool.h>
#include <stdint.h>

#include "mqim/client.h"
#include "mqim/sha256.h"

/** Read len bytes at offset into buf; return the bytes read (len, except at
 *  the end of the file); 0 on error. */
typedef size_t (*mqim_file_read_fn)(void *ctx, uint64_t offset, uint8_t *buf, size_t len);
/** Write len bytes at offset; return 0 on success, non-zero on error. */
typedef int (*mqim_file_write_fn)(void *ctx, uint64_t offset, const uint8_t *data, size_t len);

typedef enum mqim_xfer_state {
    MQIM_XFER_IDLE,    /**< not started */
    MQIM_XFER_RUNNING, /**< chunks are moving (or waiting for the link) */
    MQIM_XFER_DONE,    /**< upload: the gateway holds and verified the whole file; download: written and verified */
    MQIM_XFER_FAILED   /**< see error / code */
} mqim_xfer_state_t;

/** A transfer's base64 request or response, with room for the JSON around it. */
#define MQIM_FILE_REQ_MAX (((MQIM_CFG_FILE_CHUNK_SIZE + 2) / 3) * 4 + 256)

typedef struct mqim_file_upload {
    mqim_client_t *client;
    mqim_file_read_fn read;
    void *read_ctx;
    char upload_id[MQIM_ID_MAX + 1];
    char file_id[MQIM_ID_MAX + 1]; /**< the gateway's id, once file_begin answered */
    char name[MQIM_FILE_NAME_MAX + 1];
    char mime[MQIM_MIME_MAX + 1];
    char sha256[MQIM_SHA256_HEX_LEN + 1];
    uint64_t size;
    uint32_t chunk;       /**< the gateway's chunk size for this file */
    uint64_t next;        /**< next offset to send */
    uint64_t have;        /**< bytes the gateway acknowledged holding */
    unsigned outstanding; /**< requests without a response yet */
    bool begun;           /**< file_begin answered since the last (re)connect */
    bool was_connected;
    uint32_t last_activity_ms; /**< last progress */
    mqim_xfer_state_t state;
    mqim_status_t error;  /**< why it failed: the gateway's code, or a local status */
    char reason[128];     /**< the gateway's reason, when it gave one */
    char req[MQIM_FILE_REQ_MAX];
    uint8_t buf[MQIM_CFG_FILE_CHUNK_SIZE];
} mqim_file_upload_t;

typedef struct mqim_file_download {
    mqim_client_t *client;
    mqim_file_write_fn write;
    void *write_ctx;
    char file_id[MQIM_ID_MAX + 1];
    char sha256[MQIM_SHA256_HEX_LEN + 1]; /**< from file_info */
    uint64_t size;          /**< from file_info; valid when info */
    bool info;
    uint64_t received;      /**< bytes written, a contiguous prefix */
    uint64_t next;          /**< next offset to ask for */
    unsigned outstanding;
    bool asked_info;
    bool was_connected;
    uint32_t last_activity_ms; /**< last progress */
    mqim_sha256_t hash;
    mqim_xfer_state_t state;
    mqim_status_t error;
    char reason[128];
    char req[MQIM_FILE_REQ_MAX];
    uint8_t buf[MQIM_CFG_FILE_CHUNK_SIZE];
} mqim_file_download_t;

/**
 * Prepare an upload: hash the file through `read` (one pass, chunk by chunk)
 * so the gateway can verify it. upload_id names this upload for resuming: use
 * the same id after a reboot and the gateway continues where it stopped;
 * empty = derived from the content ("f" + 40 hex digits of its SHA-256), so
 * starting the same file again resumes it. mime may be empty
 * (application/octet-stream).
 * @return MQIM_OK, MQIM_BAD_PARAMETER (NULLs, size 0), MQIM_ID_* (upload id),
 *         MQIM_FIELD_RANGE (name or mime), MQIM_TRANSPORT_ERROR (read failed).
 */
mqim_status_t mqim_file_upload_start(mqim_file_upload_t *u, mqim_client_t *c, mqim_str_t upload_id,
                                     mqim_str_t name, mqim_str_t mime, uint64_t size,
                                     mqim_file_read_fn read, void *read_ctx);

/** Send what the window allows (after mqim_client_poll). now_ms: the board clock. */
void mqim_file_upload_step(mqim_file_upload_t *u, uint32_t now_ms);

/** Feed a control response; true when it was this upload's. */
bool mqim_file_upload_on_response(mqim_file_upload_t *u, mqim_str_t json);

/**
 * Prepare a download of a file announced to this user (a message of type
 * "file"). It first asks file_info (size, SHA-256), then fetches from
 * `already`: bytes the caller holds from an earlier run, which it must pass
 * to mqim_file_download_hash_prefix() before the first step.
 * @return MQIM_OK, MQIM_BAD_PARAMETER, MQIM_ID_* (file id).
 */
mqim_status_t mqim_file_download_start(mqim_file_download_t *d, mqim_client_t *c, mqim_str_t file_id,
                                       mqim_file_write_fn write, void *write_ctx);

/** Account for bytes already held from an earlier, interrupted download
 *  (in order, from offset 0): they are hashed and not fetched again. */
void mqim_file_download_hash_prefix(mqim_file_download_t *d, const uint8_t *data, size_t len);

void mqim_file_download_step(mqim_file_download_t *d, uint32_t now_ms);
bool mqim_file_download_on_response(mqim_file_download_t *d, mqim_str_t json);

#endif /* MQIM_FILE_TRANSFER_H */
