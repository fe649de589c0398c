/* bson_stream.c - inflate, frame, validate and hash a gzip'd BSON stream.
 *
 * Inflated bytes land directly in the document buffer, so a document is
 * copied at most once (when it straddles two inflate calls and the
 * remainder is moved to the front).  gzip members may follow one another:
 * gzip(1) accepts that, so do we.
 */
#include "config.h"

#include <bson/bson.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bson_stream.h"

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
	/* 15+16: a gzip wrapper and nothing else (a raw zlib stream is not
	 * what the exporter writes, so it counts as corruption). */
	if (inflateInit2(&s->z, 15 + 16) != Z_OK)
		goto fail;
	s->z_ready = true;
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
	if (s->z_ready)
		inflateEnd(&s->z);
	s->z_ready = false;
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
	uint64_t start = s->gzip_bytes;
	bool out_full = false;

	/* zlib counts in uInt. */
	while (len > (1u << 30)) {
		if (bson_stream_feed(s, data, 1u << 30) != 0)
			return -1;
		data = (const uint8_t *)data + (1u << 30);
		len -= 1u << 30;
		start = s->gzip_bytes;
	}
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

	s->z.next_in = (Bytef *)data;
	s->z.avail_in = (uInt)len;
	for (;;) {
		if (s->z.avail_in == 0 && !out_full)
			break;
		if (s->member_end) {
			if (s->z.avail_in == 0)
				break;
			/* Another gzip member follows the one that ended. */
			if (inflateReset(&s->z) != Z_OK) {
				data_error(s, "cannot restart inflate");
				break;
			}
			s->member_end = false;
		}
		if (make_room(s, INFLATE_CHUNK) != 0) {
			snprintf(s->error, sizeof(s->error), "out of memory");
			s->stopped = true;
			return -1;
		}
		s->z.next_out = s->buf + s->len;
		s->z.avail_out = (uInt)(s->cap - s->len);
		uInt before = s->z.avail_out;
		int rc = inflate(&s->z, Z_NO_FLUSH);
		s->len += before - s->z.avail_out;
		out_full = s->z.avail_out == 0;
		if (rc == Z_STREAM_END) {
			s->member_end = true;
		} else if (rc == Z_BUF_ERROR) {
			break;      /* nothing more to do until more input comes */
		} else if (rc != Z_OK) {
			data_error(s, "gzip data error at compressed byte %llu: %s",
				   (unsigned long long)(start + len - s->z.avail_in),
				   s->z.msg ? s->z.msg : zError(rc));
			break;
		}
		if (frame(s) != 0)
			return -1;
		if (s->data_error)
			break;
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
	} else if (!s->member_end) {
		if (s->len >= 4)
			data_error(s, "truncated: the gzip stream stops after %llu compressed "
				   "bytes, inside document %llu (%zu of its %u bytes)",
				   (unsigned long long)s->gzip_bytes,
				   (unsigned long long)s->documents + 1, s->len, le32(s->buf));
		else
			data_error(s, "truncated: the gzip stream stops after %llu compressed "
				   "bytes, before its end marker and checksum",
				   (unsigned long long)s->gzip_bytes);
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
	z_stream z;
	char *buf = NULL;
	size_t cap = 0, len = 0;
	int rc, r = -1;
	bool ended = false;

	*out = NULL;
	*out_len = 0;
	if (in_len == 0) {
		snprintf(err, errlen, "empty (not even a gzip header)");
		return -1;
	}
	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, 15 + 16) != Z_OK) {
		snprintf(err, errlen, "cannot start inflate");
		return -1;
	}
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)in_len;
	for (;;) {
		if (ended) {
			if (z.avail_in == 0)
				break;
			if (inflateReset(&z) != Z_OK) {
				snprintf(err, errlen, "cannot restart inflate");
				goto out;
			}
			ended = false;
		}
		if (cap - len < 4096) {
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
		z.next_out = (Bytef *)buf + len;
		z.avail_out = (uInt)(cap - len);
		uInt before = z.avail_out;
		rc = inflate(&z, Z_NO_FLUSH);
		len += before - z.avail_out;
		if (rc == Z_STREAM_END) {
			ended = true;
		} else if (rc == Z_BUF_ERROR && z.avail_in == 0) {
			snprintf(err, errlen, "truncated gzip data (%zu compressed bytes)", in_len);
			goto out;
		} else if (rc != Z_OK && rc != Z_BUF_ERROR) {
			snprintf(err, errlen, "gzip data error at compressed byte %zu: %s",
				 in_len - z.avail_in, z.msg ? z.msg : zError(rc));
			goto out;
		}
		if (len > max) {
			snprintf(err, errlen, "more than %zu bytes once uncompressed", max);
			goto out;
		}
	}
	if (buf == NULL && (buf = malloc(1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	buf[len] = '\0';
	*out = buf;
	*out_len = len;
	buf = NULL;
	r = 0;
out:
	free(buf);
	inflateEnd(&z);
	return r;
}
