/* block_upload.h - stream a file descriptor into a block blob.
 *
 * Reads the input into block buffers and keeps several Put Block requests
 * in flight (one curl multi handle), so the producer upstream only waits
 * when every slot is busy.  Each block is kept until Azure acknowledges it,
 * so a retry resends the same bytes.  Blocks start at block_size and double
 * every 5000 blocks (up to 4000 MiB), so no stream below 4 TiB reaches the
 * 50,000-block limit; fewer blocks are then kept in flight so memory stays
 * near concurrency x block_size.  MD5 and SHA-256 of the whole stream are
 * computed on the way.  Staging and committing are separate steps: nothing
 * becomes visible until block_upload_commit().
 */
#ifndef MAB_BLOCK_UPLOAD_H
#define MAB_BLOCK_UPLOAD_H

#include <stdint.h>

#include "azure_blob.h"

#define BLOCK_UPLOAD_GROWTH_BLOCKS 5000
#define BLOCK_UPLOAD_ABORTED 1

struct block_upload_stats {
	uint64_t bytes_read;          /* taken from the input so far */
	uint64_t bytes_staged;        /* acknowledged by Azure */
	uint64_t blocks_staged;
	uint64_t blocks;              /* blocks cut so far */
	uint64_t retries;             /* Put Block attempts beyond the first */
	double seconds;               /* staging wall time */
	char md5_b64[AZURE_MD5_B64_SIZE];   /* whole stream, once staged */
	char sha256_hex[65];
};

struct block_upload_opts {
	uint64_t block_size;          /* first block size, bytes */
	int concurrency;              /* Put Blocks in flight at first (>= 1) */
	/* Called at most every progress_ms while staging (0 = 250 ms). */
	void (*progress)(void *ctx, const struct block_upload_stats *stats);
	void *progress_ctx;
	long progress_ms;
	/* When watch_fd (>= 0) becomes readable, watch() is called; a
	 * non-zero answer abandons the upload (BLOCK_UPLOAD_ABORTED). */
	int watch_fd;
	int (*watch)(void *ctx);
	void *watch_ctx;
};

struct block_upload;

/* NULL on ENOMEM.  The client must outlive the upload. */
struct block_upload *block_upload_new(struct azure_client *client, const char *blob,
				      const struct block_upload_opts *opts);
/* Streams in_fd to EOF as staged blocks.  0 when every block is staged,
 * BLOCK_UPLOAD_ABORTED when watch() said so, -1 with err on failure. */
int block_upload_stage(struct block_upload *up, int in_fd, struct azure_error *err);
/* Put Block List of every staged block, in order (an empty list for an
 * empty stream).  opts->content_md5 NULL means the stream's MD5. */
int block_upload_commit(struct block_upload *up, const struct azure_put_opts *opts,
			struct azure_error *err);
const struct block_upload_stats *block_upload_stats(const struct block_upload *up);
void block_upload_free(struct block_upload *up);

/* Size of block number index for a given first block size. */
uint64_t block_upload_block_size(uint64_t initial, uint64_t index);
/* Blocks allowed in flight once blocks have grown to current. */
int block_upload_max_inflight(int concurrency, uint64_t initial, uint64_t current);

#endif
