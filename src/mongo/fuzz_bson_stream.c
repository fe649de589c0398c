/* fuzz_bson_stream.c - the backup stream decoder (bson_stream.h) on
 * arbitrary blobs, fed in arbitrary chunks, with the manifest's counts as
 * limits.
 *
 * Input: 8 bytes, then the blob.  Bytes 0-1: the recorded documents
 * (little-endian; 0xffff: none); 2-5: the recorded BSON bytes (0xffffffff:
 * none); 6-7: the chunk size (0 means 1).
 *
 * Checks: no document is handed out past a limit, and what is handed out
 * adds up to the counters; a stream past a limit stays stopped; memory
 * stays within one document and one inflate window whatever the blob
 * inflates to; a stream that finished whole has no error.  When ISA-L is
 * built in, ISA-L and zlib (inflate_stream.h) are run on the same chunks:
 * what zlib inflates whole, ISA-L must too, to the same bytes, as a
 * restore must not fail on a blob a zlib build reads.  (On bad data ISA-L
 * may fail sooner: it checks a dynamic block's header whole, zlib as the
 * code lengths arrive.)
 */
#include "config.h"

#include <stdbool.h>
#include <zlib.h>

#include "bson_stream.h"
#include "fuzz.h"
#include "inflate_stream.h"

struct count {
	uint64_t documents, bytes;
};

static int on_doc(void *ctx, const uint8_t *doc, uint32_t len)
{
	struct count *n = ctx;
	uint32_t claimed = (uint32_t)doc[0] | (uint32_t)doc[1] << 8 | (uint32_t)doc[2] << 16 |
			   (uint32_t)doc[3] << 24;

	FUZZ_CHECK(claimed == len && len >= 5 && doc[len - 1] == 0, "a malformed document");
	n->documents++;
	n->bytes += len;
	return 0;
}

#ifdef HAVE_ISAL
/* Past this many inflated bytes the engines are not compared (a bomb
 * would take seconds per input). */
#define AGREE_MAX (16u << 20)

enum ending { WHOLE, INCOMPLETE, FAILED, TOO_BIG };

struct inflated {
	enum ending end;
	uint64_t len;
	uint32_t crc;
};

static struct inflated inflate_with(enum inflate_engine engine, const uint8_t *data, size_t size,
				    size_t chunk)
{
	static uint8_t out[64 * 1024];
	struct inflated r = { INCOMPLETE, 0, 0 };
	struct inflate_stream *is = inflate_stream_new(engine);

	FUZZ_CHECK(is != NULL, "inflate_stream_new");
	for (size_t off = 0; off < size && r.end == INCOMPLETE; off += chunk) {
		const uint8_t *in = data + off;
		size_t left = size - off < chunk ? size - off : chunk, made;

		do {
			if (inflate_stream_run(is, &in, &left, out, sizeof(out), &made) != 0) {
				r.end = FAILED;
				break;
			}
			r.len += made;
			r.crc = (uint32_t)crc32(r.crc, out, (uInt)made);
			if (r.len > AGREE_MAX)
				r.end = TOO_BIG;
		} while (made == sizeof(out) && r.end == INCOMPLETE);
	}
	if (r.end == INCOMPLETE && inflate_stream_complete(is))
		r.end = WHOLE;
	inflate_stream_free(is);
	return r;
}

static void engines_agree(const uint8_t *data, size_t size, size_t chunk)
{
	struct inflated z = inflate_with(INFLATE_ENGINE_ZLIB, data, size, chunk);
	struct inflated i = inflate_with(INFLATE_ENGINE_BEST, data, size, chunk);

	if (z.end != WHOLE || i.end == TOO_BIG)
		return;
	FUZZ_CHECK(i.end == WHOLE, "zlib inflates it whole, ISA-L ends %d", i.end);
	FUZZ_CHECK(i.len == z.len && i.crc == z.crc, "zlib inflates to %llu bytes, ISA-L to %llu, "
		   "or other bytes", (unsigned long long)z.len, (unsigned long long)i.len);
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bson_stream bs;
	struct count n = { 0, 0 };
	int64_t docs, bson;
	size_t chunk;
	bool stopped = false;

	if (size < 8 || size > 1024 * 1024)
		return 0;
	docs = data[0] | data[1] << 8;
	bson = (int64_t)((uint32_t)data[2] | (uint32_t)data[3] << 8 | (uint32_t)data[4] << 16 |
			 (uint32_t)data[5] << 24);
	chunk = (size_t)(data[6] | data[7] << 8);
	if (docs == 0xffff)
		docs = -1;
	if (bson == 0xffffffffLL)
		bson = -1;
	if (chunk == 0)
		chunk = 1;
	data += 8;
	size -= 8;

	FUZZ_CHECK(bson_stream_init(&bs, true, on_doc, &n) == 0, "init");
	bson_stream_limit(&bs, docs, bson, -1);
	for (size_t off = 0; off < size; off += chunk) {
		size_t len = size - off < chunk ? size - off : chunk;
		int rc = bson_stream_feed(&bs, data + off, len);

		FUZZ_CHECK(!stopped || rc == -1, "a stopped stream went on");
		if (rc != 0) {
			FUZZ_CHECK(bs.over_limit, "stopped without a limit: %s", bs.error);
			stopped = true;
		}
		FUZZ_CHECK(bs.cap <= 2 * (size_t)BSON_STREAM_MAX_DOC + 2 * 256 * 1024,
			   "holds %zu bytes", bs.cap);
	}
	FUZZ_CHECK(n.documents == bs.documents && n.bytes == bs.bson_bytes,
		   "handed out %llu/%llu, counted %llu/%llu", (unsigned long long)n.documents,
		   (unsigned long long)n.bytes, (unsigned long long)bs.documents,
		   (unsigned long long)bs.bson_bytes);
	FUZZ_CHECK(docs < 0 || bs.documents <= (uint64_t)docs, "past the documents");
	FUZZ_CHECK(bson < 0 || bs.bson_bytes <= (uint64_t)bson, "past the BSON bytes");
	if (bson_stream_finish(&bs, NULL, NULL) == 0)
		FUZZ_CHECK(!bs.data_error && !bs.over_limit && !stopped, "whole, yet an error");
	else
		FUZZ_CHECK(bs.error[0] != '\0', "failed without a message");
	bson_stream_free(&bs);
#ifdef HAVE_ISAL
	engines_agree(data, size, chunk);
#endif
	return 0;
}
