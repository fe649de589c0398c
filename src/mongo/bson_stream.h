/* bson_stream.h - reading a backup blob: gzip'd BSON documents back to back.
 *
 * One decoder shared by verify, restore --to-dir and import-collection:
 * compressed bytes go in as they arrive (any chunking), complete documents
 * come out through a callback, checked with bson_validate first.  It hashes
 * the compressed bytes (SHA-256 and MD5, the manifest's integrity data) and
 * counts documents and BSON bytes.  Memory is bounded by the largest
 * document plus one inflate window: a stream is never held whole.  The
 * inflating, gzip member by member, is inflate_stream.h's (ISA-L when the
 * build has it, else zlib).
 *
 * A data error (bad gzip, bad framing, invalid BSON) stops the decoding but
 * not the hashing, so a verifier can still compare the blob's hashes and
 * report both findings.
 *
 * Limits (bson_stream_limit) are what the manifest recorded for the blob:
 * a stream that goes past them is not the backup it claims to be, and may
 * be a decompression bomb (a few KB of gzip that inflate to gigabytes).
 * The decoder stops the moment it sees that: when a document's length
 * field would take it past the recorded BSON bytes or documents (before
 * the document is buffered or handed out), or the compressed bytes pass
 * the recorded blob size.  That ends the stream for good (feed returns -1
 * with over_limit set), hashing included: nothing after it is worth
 * downloading.
 */
#ifndef MAB_BSON_STREAM_H
#define MAB_BSON_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

struct inflate_stream;

/* mongod's own ceiling for a stored document (16 MiB user documents plus
 * its internal slack); anything longer is a corrupt length field. */
#define BSON_STREAM_MAX_DOC (16 * 1024 * 1024 + 16 * 1024)
#define BSON_STREAM_SHA256_HEX 65
#define BSON_STREAM_MD5_B64 25

/* Gets each document (valid only during the call).  0 to go on; -1 stops
 * the stream (the callback's own error, e.g. a failed write). */
typedef int (*bson_stream_doc_fn)(void *ctx, const uint8_t *doc, uint32_t len);

struct bson_stream {
	struct inflate_stream *inflate;   /* gzip members, by ISA-L or zlib */
	bool started;             /* some input arrived */
	EVP_MD_CTX *sha256;
	EVP_MD_CTX *md5;
	uint8_t *buf;             /* inflated bytes not yet handed out */
	size_t len, cap;
	bson_stream_doc_fn on_doc;
	void *ctx;

	uint64_t gzip_bytes;      /* compressed bytes fed */
	uint64_t bson_bytes;      /* bytes of documents handed out */
	uint64_t documents;

	/* From the manifest; -1: no limit. */
	int64_t max_documents;
	int64_t max_bson_bytes;
	int64_t max_gzip_bytes;

	bool data_error;          /* the stream itself is bad: see error */
	bool over_limit;          /* ... because it went past a limit (data_error too) */
	bool stopped;             /* the callback said stop */
	char error[512];
};

/* hash: compute SHA-256/MD5 of the compressed bytes.  on_doc may be NULL
 * (count and check only).  0, or -1 when out of memory. */
int bson_stream_init(struct bson_stream *s, bool hash, bson_stream_doc_fn on_doc, void *ctx);
/* The manifest's counts for the blob (each < 0: not recorded, no limit). */
void bson_stream_limit(struct bson_stream *s, int64_t documents, int64_t bson_bytes,
		       int64_t gzip_bytes);
/* 0 to go on (check s->data_error), -1 when the callback stopped the
 * stream, memory ran out, or the stream went past a limit (over_limit);
 * s->error says which. */
int bson_stream_feed(struct bson_stream *s, const void *data, size_t len);
/* End of input.  0 when the stream was whole: every gzip member complete
 * with a good CRC, no partial document left.  -1 with s->error otherwise.
 * The hash outputs (may be NULL) are filled either way when hashing. */
int bson_stream_finish(struct bson_stream *s, char sha256_hex[BSON_STREAM_SHA256_HEX],
		       char md5_b64[BSON_STREAM_MD5_B64]);
void bson_stream_free(struct bson_stream *s);

/* Whole-buffer helper for small blobs (metadata): gunzips in into a
 * malloc'd NUL-terminated buffer of at most max bytes.  0, or -1 with a
 * reason in err. */
int gunzip_buffer(const void *in, size_t in_len, size_t max, char **out, size_t *out_len,
		  char *err, size_t errlen);

#endif
