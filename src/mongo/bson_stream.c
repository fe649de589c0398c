/* bson_stream.c - frame, validate and hash a gzip'd BSON stream, and
 * gunzip a small blob whole.
 *
 * Inflated bytes land directly in the document buffer, so a document is
 * copied at most once (when it straddles two inflate calls and the
 * remainder is moved to the front).  The gzip side (members back to back,
 * their checks, which engine) is inflate_stream.c's; this file sees
 * compressed bytes in and inflated bytes out.
 */
#include "config.h"

#include <bson/bson.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bson_stream.h"
#include "inflate_stream.h"

/* Room made for each inflate call: large enough that the per-call cost
 * vanishes, small enough to stay cheap for many small blobs. */
#define INFLATE_CHUNK (256 * 1024)

static void data_error(struct bson_stream *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void data_error(struct bson_stream *s, const char *fmt, ...)
{
	va_list ap;

	if (s->data_error || s->stopped)
		return;
	va_start(ap, fmt);
	vsnprintf(s->error, sizeof(s->error), fmt, ap);
	va_end(ap);
	s->data_error = true;
}

/* Past what the manifest recorded: a data error that also ends the
 * stream (see bson_stream.h). */
static void limit_error(struct bson_stream *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void limit_error(struct bson_stream *s, const char *fmt, ...)
{
	va_list ap;

	if (s->data_error || s->stopped)
		return;
	va_start(ap, fmt);
	vsnprintf(s->error, sizeof(s->error), fmt, ap);
	va_end(ap);
	s->data_error = true;
	s->over_limit = true;
}

int bson_stream_init(struct bson_stream *s, bool hash, bson_stream_doc_fn on_doc, void *ctx)
{
	memset(s, 0, sizeof(*s));
	s->on_doc = on_doc;
	s->ctx = ctx;
	s->max_documents = s->max_bson_bytes = s->max_gzip_bytes = -1;
	s->inflate = inflate_stream_new(INFLATE_ENGINE_BEST);
	if (s->inflate == NULL)
		goto fail;
	if (hash) {
		s->sha256 = EVP_MD_CTX_new();
		s->md5 = EVP_MD_CTX_new();
		if (s->sha256 == NULL || s->md5 == NULL ||
		    EVP_DigestInit_ex(s->sha256, EVP_sha256(), NULL) != 1 ||
		    EVP_DigestInit_ex(s->md5, EVP_md5(), NULL) != 1)
			goto fail;
	}
	return 0;
fail:
	bson_stream_free(s);
	errno = ENOMEM;
	return -1;
}

void bson_stream_limit(struct bson_stream *s, int64_t documents, int64_t bson_bytes,
		       int64_t gzip_bytes)
{
	s->max_documents = documents < 0 ? -1 : documents;
	s->max_bson_bytes = bson_bytes < 0 ? -1 : bson_bytes;
	s->max_gzip_bytes = gzip_bytes < 0 ? -1 : gzip_bytes;
}

void bson_stream_free(struct bson_stream *s)
{
	inflate_stream_free(s->inflate);
	s->inflate = NULL;
	EVP_MD_CTX_free(s->sha256);
	EVP_MD_CTX_free(s->md5);
	s->sha256 = s->md5 = NULL;
	free(s->buf);
	s->buf = NULL;
	s->len = s->cap = 0;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Hands out every whole document at the front of buf. */
static int frame(struct bson_stream *s)
{
	size_t off = 0;
	int rc = 0;

	while (s->len - off >= 4) {
		uint32_t n = le32(s->buf + off);
		bson_t doc;
		bson_error_t e;

		if (n < 5 || n > BSON_STREAM_MAX_DOC) {
			data_error(s, "document %llu (at BSON byte %llu) claims a length of %u bytes",
				   (unsigned long long)s->documents + 1,
				   (unsigned long long)s->bson_bytes, n);
			break;
		}
		/* Judged on the length field alone, before the document is
		 * waited for: a bomb never gets one document further. */
		if (s->max_documents >= 0 && s->documents >= (uint64_t)s->max_documents) {
			limit_error(s, "the blob holds more than the %lld document%s its manifest "
				    "entry records: document %llu starts at BSON byte %llu",
				    (long long)s->max_documents, s->max_documents == 1 ? "" : "s",
				    (unsigned long long)s->documents + 1,
				    (unsigned long long)s->bson_bytes);
			break;
		}
		if (s->max_bson_bytes >= 0 &&
		    s->bson_bytes + n > (uint64_t)s->max_bson_bytes) {
			limit_error(s, "the blob holds more than the %lld BSON bytes its manifest "
				    "entry records: document %llu, at BSON byte %llu, is %u bytes long",
				    (long long)s->max_bson_bytes,
				    (unsigned long long)s->documents + 1,
				    (unsigned long long)s->bson_bytes, n);
			break;
		}
		if (s->len - off < n)
			break;
		if (!bson_init_static(&doc, s->buf + off, n)) {
			data_error(s, "document %llu (at BSON byte %llu) does not end in a NUL byte",
				   (unsigned long long)s->documents + 1,
				   (unsigned long long)s->bson_bytes);
			break;
		}
		/* Structure only: mongod stores keys with '.', '$' or nothing, and
		 * strings it never checked for UTF-8, and a backup must take them
		 * as they are. */
		if (!bson_validate_with_error(&doc, BSON_VALIDATE_NONE, &e)) {
			data_error(s, "document %llu (at BSON byte %llu) is not valid BSON: %s",
				   (unsigned long long)s->documents + 1,
				   (unsigned long long)s->bson_bytes, e.message);
			break;
		}
		s->documents++;
		s->bson_bytes += n;
		off += n;
		if (s->on_doc != NULL && s->on_doc(s->ctx, s->buf + off - n, n) != 0) {
			s->stopped = true;
			rc = -1;
			break;
		}
	}
	if (off > 0) {
		memmove(s->buf, s->buf + off, s->len - off);
		s->len -= off;
	}
	return rc;
}

static int make_room(struct bson_stream *s, size_t room)
{
	size_t cap = s->cap ? s->cap : INFLATE_CHUNK;
	uint8_t *p;

	if (s->cap - s->len >= room)
		return 0;
	while (cap - s->len < room)
		cap *= 2;
	p = realloc(s->buf, cap);
	if (p == NULL)
		return -1;
	s->buf = p;
	s->cap = cap;
	return 0;
}

int bson_stream_feed(struct bson_stream *s, const void *data, size_t len)
{
	const uint8_t *in = data;
	size_t left = len;

	if (len == 0)
		return s->stopped || s->over_limit ? -1 : 0;
	if (s->over_limit)
		return -1;
	s->started = true;
	s->gzip_bytes += len;
	if (s->max_gzip_bytes >= 0 && s->gzip_bytes > (uint64_t)s->max_gzip_bytes) {
		limit_error(s, "the blob goes on past the %lld bytes its manifest entry records "
			    "(%llu bytes read)", (long long)s->max_gzip_bytes,
			    (unsigned long long)s->gzip_bytes);
		return -1;
	}
	if (s->sha256 != NULL && (EVP_DigestUpdate(s->sha256, data, len) != 1 ||
				  EVP_DigestUpdate(s->md5, data, len) != 1)) {
		snprintf(s->error, sizeof(s->error), "hashing failed");
		s->stopped = true;
		return -1;
	}
	if (s->stopped)
		return -1;
	if (s->data_error)
		return 0;

	for (;;) {
		size_t room, made;
		int rc;

		if (make_room(s, INFLATE_CHUNK) != 0) {
			snprintf(s->error, sizeof(s->error), "out of memory");
			s->stopped = true;
			return -1;
		}
		room = s->cap - s->len;
		rc = inflate_stream_run(s->inflate, &in, &left, s->buf + s->len, room, &made);
		/* What was inflated before a gzip error is handed out first:
		 * the documents of the members before it are good. */
		s->len += made;
		if (frame(s) != 0)
			return -1;
		if (rc != 0)
			data_error(s, "%s", inflate_stream_error(s->inflate));
		if (s->data_error)
			break;
		/* Room to spare means the input is all inflated. */
		if (made < room) {
			if (left != 0)
				data_error(s, "inflate stopped with %zu bytes of this chunk left",
					   left);
			break;
		}
	}
	return s->over_limit ? -1 : 0;
}

static void finish_hashes(struct bson_stream *s, char *sha256_hex, char *md5_b64)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (sha256_hex != NULL) {
		sha256_hex[0] = '\0';
		if (s->sha256 != NULL && EVP_DigestFinal_ex(s->sha256, md, &n) == 1) {
			for (unsigned int i = 0; i < n && i < 32; i++)
				snprintf(sha256_hex + 2 * i, 3, "%02x", md[i]);
		}
	}
	if (md5_b64 != NULL) {
		md5_b64[0] = '\0';
		if (s->md5 != NULL && EVP_DigestFinal_ex(s->md5, md, &n) == 1 && n == 16)
			EVP_EncodeBlock((unsigned char *)md5_b64, md, (int)n);
	}
}

int bson_stream_finish(struct bson_stream *s, char sha256_hex[BSON_STREAM_SHA256_HEX],
		       char md5_b64[BSON_STREAM_MD5_B64])
{
	finish_hashes(s, sha256_hex, md5_b64);
	if (s->stopped || s->data_error)
		return -1;
	if (!s->started) {
		data_error(s, "the stream is empty (not even a gzip header)");
	} else if (!inflate_stream_complete(s->inflate)) {
		unsigned long long member = inflate_stream_members(s->inflate);

		if (s->len >= 4)
			data_error(s, "truncated: the gzip stream stops after %llu compressed "
				   "bytes, in gzip member %llu, inside document %llu (%zu of its "
				   "%u bytes)", (unsigned long long)s->gzip_bytes, member,
				   (unsigned long long)s->documents + 1, s->len, le32(s->buf));
		else
			data_error(s, "truncated: the gzip stream stops after %llu compressed "
				   "bytes, in gzip member %llu, before its end marker and checksum",
				   (unsigned long long)s->gzip_bytes, member);
	} else if (s->len > 0) {
		/* Whole gzip, cut BSON: the exporter never writes that. */
		if (s->len >= 4)
			data_error(s, "the data ends inside document %llu: %zu of its %u bytes",
				   (unsigned long long)s->documents + 1, s->len, le32(s->buf));
		else
			data_error(s, "the data ends with %zu stray bytes after document %llu",
				   s->len, (unsigned long long)s->documents);
	}
	return s->data_error ? -1 : 0;
}

int gunzip_buffer(const void *in, size_t in_len, size_t max, char **out, size_t *out_len,
		  char *err, size_t errlen)
{
	struct inflate_stream *is = NULL;
	const uint8_t *next = in;
	size_t left = in_len, cap = 0, len = 0;
	char *buf = NULL;
	int r = -1;

	*out = NULL;
	*out_len = 0;
	if (in_len == 0) {
		snprintf(err, errlen, "empty (not even a gzip header)");
		return -1;
	}
	is = inflate_stream_new(INFLATE_ENGINE_BEST);
	if (is == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (;;) {
		size_t room, made;

		if (cap - len < 4096) {
			/* Grows to max + 1 at most: one byte past the cap is
			 * enough to know the blob is too big. */
			size_t ncap = cap ? cap * 2 : 16384;
			if (ncap > max + 1)
				ncap = max + 1;
			if (ncap <= len) {
				snprintf(err, errlen, "more than %zu bytes once uncompressed", max);
				goto out;
			}
			char *p = realloc(buf, ncap + 1);
			if (p == NULL) {
				snprintf(err, errlen, "out of memory");
				goto out;
			}
			buf = p;
			cap = ncap;
		}
		room = cap - len;
		if (inflate_stream_run(is, &next, &left, (uint8_t *)buf + len, room, &made) != 0) {
			snprintf(err, errlen, "%s", inflate_stream_error(is));
			goto out;
		}
		len += made;
		if (len > max) {
			snprintf(err, errlen, "more than %zu bytes once uncompressed", max);
			goto out;
		}
		if (made < room) {
			if (left != 0) {
				snprintf(err, errlen, "inflate stopped with %zu bytes left", left);
				goto out;
			}
			break;
		}
	}
	if (!inflate_stream_complete(is)) {
		snprintf(err, errlen, "truncated gzip data (%zu compressed bytes)", in_len);
		goto out;
	}
	buf[len] = '\0';       /* the loop made room for it (ncap + 1) */
	*out = buf;
	*out_len = len;
	buf = NULL;
	r = 0;
out:
	free(buf);
	inflate_stream_free(is);
	return r;
}
