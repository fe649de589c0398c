/* check_inflate.c - the gzip side of the stream decoder: inflate_stream.h
 * on every engine built in, and bson_stream.h and gunzip_buffer() over it.
 *
 * Fifty gzip members back to back, documents crossing member boundaries,
 * members of every deflate block type and with every optional header
 * field, in every input chunking and output room, inflate to exactly the
 * bytes that went in; a bad CRC-32, a bad ISIZE, a cut inside the second
 * member and garbage after the last one are data errors (or an incomplete
 * stream) naming the compressed byte; ISA-L and zlib agree on every
 * flipped byte and every cut of a small stream.
 */
#include "config.h"

#include <bson/bson.h>
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#ifdef HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif

#include "bson_stream.h"
#include "inflate_stream.h"

/* ---- fixtures ----------------------------------------------------------- */

/* For the hot loops: check's ck_assert records every passing assertion
 * (a write to its pipe), which made byte-at-a-time tests crawl. */
#define REQUIRE(cond, ...)                                                      \
	do {                                                                    \
		if (!(cond))                                                    \
			ck_abort_msg(__VA_ARGS__);                              \
	} while (0)

struct buf {
	uint8_t *data;
	size_t len, cap;
};

static void buf_add(struct buf *b, const void *data, size_t len)
{
	if (b->cap - b->len < len) {
		/* Doubling: outputs arrive a byte at a time in some tests. */
		size_t cap = b->cap ? b->cap : 4096;
		while (cap - b->len < len)
			cap *= 2;
		b->data = realloc(b->data, cap);
		REQUIRE(b->data != NULL, "out of memory");
		b->cap = cap;
	}
	if (len > 0)
		memcpy(b->data + b->len, data, len);
	b->len += len;
}

static uint32_t next_rand(uint32_t *x)
{
	*x = *x * 1103515245u + 12345u;
	return *x >> 8;
}

/* n BSON documents from a few bytes to ~40 KB, back to back: compressible
 * like a real collection, with some noise. */
static struct buf make_docs(int n)
{
	struct buf out = { 0 };
	uint32_t x = 7;

	for (int i = 0; i < n; i++) {
		bson_t *doc = bson_new();
		char text[4096];
		size_t len = (i % 17 == 5) ? 40000 : next_rand(&x) % 1500;

		BSON_APPEND_INT32(doc, "_id", i);
		BSON_APPEND_UTF8(doc, "name", "user");
		for (size_t off = 0; off < len; off += sizeof(text) - 1) {
			size_t k = len - off < sizeof(text) - 1 ? len - off : sizeof(text) - 1;
			for (size_t j = 0; j < k; j++) {
				uint32_t r = next_rand(&x);
				text[j] = (char)('a' + (r % 7 == 0 ? r / 7 % 26 : j % 26));
			}
			text[k] = '\0';
			BSON_APPEND_UTF8(doc, "t", text);
		}
		buf_add(&out, bson_get_data(doc), doc->len);
		bson_destroy(doc);
	}
	return out;
}

/* One gzip member made by zlib; with_header adds every optional field
 * (FTEXT, FEXTRA, FNAME, FCOMMENT, FHCRC). */
static void zlib_member(struct buf *out, const uint8_t *data, size_t len, int level,
			int strategy, bool with_header)
{
	static char extra[300];
	gz_header h;
	z_stream z;
	uLong bound;
	uint8_t *tmp;

	memset(&z, 0, sizeof(z));
	ck_assert_int_eq(deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, strategy), Z_OK);
	if (with_header) {
		memset(&h, 0, sizeof(h));
		memset(extra, 'x', sizeof(extra));
		h.text = 1;
		h.time = 1764547200;
		h.os = 3;
		h.extra = (Bytef *)extra;
		h.extra_len = sizeof(extra);
		h.name = (Bytef *)"tralivali_users.bson";
		h.comment = (Bytef *)"a comment that is not short, to cross chunk boundaries";
		h.hcrc = 1;
		ck_assert_int_eq(deflateSetHeader(&z, &h), Z_OK);
	}
	bound = deflateBound(&z, len) + 1024;
	tmp = malloc(bound);
	ck_assert_ptr_nonnull(tmp);
	z.next_in = (Bytef *)data;
	z.avail_in = (uInt)len;
	z.next_out = tmp;
	z.avail_out = (uInt)bound;
	ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
	buf_add(out, tmp, z.total_out);
	deflateEnd(&z);
	free(tmp);
}

#define MEMBERS 50

/* raw cut into MEMBERS uneven pieces (never on a document boundary by
 * design, so documents cross members), each gzip'd by a different level
 * and strategy: stored, fixed and dynamic Huffman blocks all occur. */
struct stream {
	struct buf raw, gz;
	size_t start[MEMBERS + 1];    /* start[k]: member k's first byte; start[MEMBERS]: the end */
};

static void make_stream(struct stream *st, int docs)
{
	static const int levels[] = { 6, 1, 9, 0, 6, 3 };
	static const int strategies[] = { Z_DEFAULT_STRATEGY, Z_FILTERED, Z_HUFFMAN_ONLY, Z_RLE,
					  Z_FIXED };
	size_t off = 0;
	uint32_t x = 99;

	memset(st, 0, sizeof(*st));
	st->raw = make_docs(docs);
	for (int k = 0; k < MEMBERS; k++) {
		size_t left = st->raw.len - off, share = left / (size_t)(MEMBERS - k), n;

		if (k == MEMBERS - 1)
			n = left;
		else if (k == 10)
			n = 0;                        /* an empty member mid-stream */
		else
			n = share / 2 + next_rand(&x) % (share + 1);
		if (n > left)
			n = left;
		st->start[k] = st->gz.len;
		zlib_member(&st->gz, st->raw.data + off, n, levels[k % 6], strategies[k % 5],
			    k % 7 == 3);
		off += n;
	}
	st->start[MEMBERS] = st->gz.len;
	ck_assert_uint_eq(off, st->raw.len);
}

static void free_stream(struct stream *st)
{
	free(st->raw.data);
	free(st->gz.data);
}

static const enum inflate_engine engines[] = { INFLATE_ENGINE_BEST, INFLATE_ENGINE_ZLIB };

/* The outcome of inflating a whole input. */
enum outcome { WHOLE, INCOMPLETE, DATA_ERROR };

/* Inflates gz fed in chunks of in_chunk bytes into room-byte pieces of
 * output, collected in out; error (if not NULL) gets the message. */
static enum outcome inflate_all(enum inflate_engine engine, const uint8_t *gz, size_t len,
				size_t in_chunk, size_t room, struct buf *out, char *error,
				size_t errlen)
{
	struct inflate_stream *is = inflate_stream_new(engine);
	uint8_t *piece = malloc(room);
	enum outcome r = INCOMPLETE;

	ck_assert_ptr_nonnull(is);
	ck_assert_ptr_nonnull(piece);
	for (size_t off = 0; off < len; off += in_chunk) {
		const uint8_t *in = gz + off;
		size_t left = len - off < in_chunk ? len - off : in_chunk;

		for (;;) {
			size_t made;
			int rc = inflate_stream_run(is, &in, &left, piece, room, &made);

			REQUIRE(made <= room, "made %zu bytes in %zu of room", made, room);
			if (out != NULL)
				buf_add(out, piece, made);
			if (rc != 0) {
				REQUIRE(inflate_stream_error(is)[0] != '\0', "no message");
				if (error != NULL)
					snprintf(error, errlen, "%s", inflate_stream_error(is));
				r = DATA_ERROR;
				goto out;
			}
			if (made < room) {
				REQUIRE(left == 0, "stopped with %zu bytes left", left);
				break;
			}
		}
	}
	r = inflate_stream_complete(is) ? WHOLE : INCOMPLETE;
out:
	inflate_stream_free(is);
	free(piece);
	return r;
}

/* The "compressed byte N" an error message names. */
static unsigned long long error_offset(const char *error)
{
	const char *p = strstr(error, "compressed byte ");
	unsigned long long at = 0;

	ck_assert_msg(p != NULL, "no offset in: %s", error);
	ck_assert_int_eq(sscanf(p + 16, "%llu", &at), 1);
	return at;
}

struct seen {
	struct buf docs;
	uint64_t calls;
};

static int collect(void *ctx, const uint8_t *doc, uint32_t len)
{
	struct seen *s = ctx;

	buf_add(&s->docs, doc, len);
	s->calls++;
	return 0;
}

/* bson_stream over gz in chunks; the result of finish. */
static int decode(const uint8_t *gz, size_t len, size_t chunk, struct bson_stream *bs,
		  struct seen *seen)
{
	ck_assert_int_eq(bson_stream_init(bs, true, seen ? collect : NULL, seen), 0);
	for (size_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;
		REQUIRE(bson_stream_feed(bs, gz + off, n) == 0, "feed: %s", bs->error);
	}
	return bson_stream_finish(bs, NULL, NULL);
}

/* ---- many members ------------------------------------------------------- */

START_TEST(many_members_every_chunking)
{
	static const size_t chunks[] = { 1, 2, 3, 7, 8, 9, 13, 61, 1000, 4093, 65536, SIZE_MAX };
	static const size_t rooms[] = { 65536, 4096 };
	enum inflate_engine engine = engines[_i];
	struct stream st;

	make_stream(&st, 300);
	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		for (size_t r = 0; r < sizeof(rooms) / sizeof(rooms[0]); r++) {
			struct buf out = { 0 };
			char error[512] = "";
			enum outcome o = inflate_all(engine, st.gz.data, st.gz.len, chunks[c],
						     rooms[r], &out, error, sizeof(error));

			ck_assert_msg(o == WHOLE, "chunk %zu room %zu: %d %s", chunks[c], rooms[r],
				      o, error);
			ck_assert_uint_eq(out.len, st.raw.len);
			ck_assert_msg(memcmp(out.data, st.raw.data, st.raw.len) == 0,
				      "chunk %zu room %zu: not the bytes that went in", chunks[c],
				      rooms[r]);
			free(out.data);
		}
	}
	free_stream(&st);
}
END_TEST

/* Output rooms down to one byte: every way ISA-L can stop with inflated
 * bytes still in its own buffer, at a member's end too. */
START_TEST(many_members_tiny_output_room)
{
	static const size_t rooms[] = { 1, 7, 300, 32768, 32769 };
	static const size_t chunks[] = { 5, 155, 4805, SIZE_MAX };
	enum inflate_engine engine = engines[_i];
	struct stream st;

	make_stream(&st, 60);
	for (size_t r = 0; r < sizeof(rooms) / sizeof(rooms[0]); r++) {
		for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
			struct buf out = { 0 };
			char error[512] = "";
			enum outcome o = inflate_all(engine, st.gz.data, st.gz.len, chunks[c],
						     rooms[r], &out, error, sizeof(error));

			ck_assert_msg(o == WHOLE, "room %zu chunk %zu: %s", rooms[r], chunks[c],
				      error);
			ck_assert_uint_eq(out.len, st.raw.len);
			ck_assert(memcmp(out.data, st.raw.data, st.raw.len) == 0);
			free(out.data);
		}
	}
	free_stream(&st);
}
END_TEST

START_TEST(many_members_through_bson_stream)
{
	static const size_t chunks[] = { 1, 3, 7, 61, 4096, 1 << 20 };
	const uint64_t docs = 300;
	struct stream st;

	make_stream(&st, (int)docs);
	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		struct bson_stream bs;
		struct seen seen = { { 0 }, 0 };

		ck_assert_msg(decode(st.gz.data, st.gz.len, chunks[c], &bs, &seen) == 0,
			      "chunk %zu: %s", chunks[c], bs.error);
		ck_assert_uint_eq(bs.documents, docs);
		ck_assert_uint_eq(seen.calls, docs);
		ck_assert_uint_eq(bs.bson_bytes, st.raw.len);
		ck_assert_uint_eq(bs.gzip_bytes, st.gz.len);
		ck_assert_uint_eq(seen.docs.len, st.raw.len);
		ck_assert(memcmp(seen.docs.data, st.raw.data, st.raw.len) == 0);
		bson_stream_free(&bs);
		free(seen.docs.data);
	}

	{
		char *out, err[256];
		size_t len;

		ck_assert_msg(gunzip_buffer(st.gz.data, st.gz.len, st.raw.len, &out, &len, err,
					    sizeof(err)) == 0, "%s", err);
		ck_assert_uint_eq(len, st.raw.len);
		ck_assert(memcmp(out, st.raw.data, len) == 0);
		free(out);
		ck_assert_int_eq(gunzip_buffer(st.gz.data, st.gz.len, st.raw.len - 1, &out, &len,
					       err, sizeof(err)), -1);
		ck_assert_ptr_nonnull(strstr(err, "more than"));
	}
	free_stream(&st);
}
END_TEST

/* A member with every optional header field, split at every byte of its
 * header (ISA-L 2.30 gets a split header wrong by itself: the parsing
 * here must not). */
START_TEST(header_fields_split_anywhere)
{
	enum inflate_engine engine = engines[_i];
	struct buf raw = make_docs(5), gz = { 0 };
	size_t first;

	zlib_member(&gz, raw.data, raw.len / 2, 6, Z_DEFAULT_STRATEGY, true);
	first = gz.len;
	zlib_member(&gz, raw.data + raw.len / 2, raw.len - raw.len / 2, 6, Z_DEFAULT_STRATEGY,
		    true);
	/* The header is some 400 bytes: split the stream at each of them,
	 * and at each byte of the second member's header too. */
	for (size_t cut = 1; cut < gz.len; cut++) {
		struct inflate_stream *is;
		struct buf out = { 0 };
		uint8_t piece[8192];
		size_t pieces[2][2] = { { 0, cut }, { cut, gz.len - cut } };

		if (cut > 500 && (cut < first || cut > first + 500))
			continue;
		is = inflate_stream_new(engine);
		ck_assert_ptr_nonnull(is);
		for (int p = 0; p < 2; p++) {
			const uint8_t *in = gz.data + pieces[p][0];
			size_t left = pieces[p][1], made;
			do {
				int rc = inflate_stream_run(is, &in, &left, piece, sizeof(piece),
							    &made);
				REQUIRE(rc == 0, "cut %zu: %s", cut, inflate_stream_error(is));
				buf_add(&out, piece, made);
			} while (made == sizeof(piece));
		}
		ck_assert_msg(inflate_stream_complete(is), "cut %zu", cut);
		ck_assert_uint_eq(inflate_stream_members(is), 2);
		ck_assert_uint_eq(out.len, raw.len);
		ck_assert(memcmp(out.data, raw.data, raw.len) == 0);
		inflate_stream_free(is);
		free(out.data);
	}
	/* One byte at a time, the whole way. */
	{
		struct buf out = { 0 };
		ck_assert_int_eq(inflate_all(engine, gz.data, gz.len, 1, 4096, &out, NULL, 0),
				 WHOLE);
		ck_assert_uint_eq(out.len, raw.len);
		free(out.data);
	}
	free(raw.data);
	free(gz.data);
}
END_TEST

START_TEST(bad_headers)
{
	enum inflate_engine engine = engines[_i];
	struct buf raw = make_docs(3), gz = { 0 }, bad = { 0 };
	char error[512];

	zlib_member(&gz, raw.data, raw.len, 6, Z_DEFAULT_STRATEGY, true);

	/* The header's CRC-16 is the two bytes before the deflate data; flip
	 * one bit in the name instead, which the CRC-16 covers. */
	buf_add(&bad, gz.data, gz.len);
	bad.data[10 + 2 + 300] ^= 0x01;
	ck_assert_int_eq(inflate_all(engine, bad.data, bad.len, 3, 4096, NULL, error,
				     sizeof(error)), DATA_ERROR);
	ck_assert_uint_le(error_offset(error), 10 + 2 + 300 + 100);

	/* A method other than deflate, and a reserved flag. */
	memcpy(bad.data, gz.data, gz.len);
	bad.data[2] = 7;
	ck_assert_int_eq(inflate_all(engine, bad.data, bad.len, 1, 4096, NULL, error,
				     sizeof(error)), DATA_ERROR);
	memcpy(bad.data, gz.data, gz.len);
	bad.data[3] |= 0x20;
	ck_assert_int_eq(inflate_all(engine, bad.data, bad.len, 4096, 4096, NULL, error,
				     sizeof(error)), DATA_ERROR);

	/* Not gzip at all. */
	ck_assert_int_eq(inflate_all(engine, (const uint8_t *)"hello, world", 12, 5, 4096, NULL,
				     error, sizeof(error)), DATA_ERROR);
	ck_assert_msg(strstr(error, "not gzip") != NULL, "%s", error);
	free(raw.data);
	free(gz.data);
	free(bad.data);
}
END_TEST

/* ---- a bad trailer ------------------------------------------------------ */

/* Member k's trailer byte at `back` bytes from its end xor'd: the stream
 * is a data error naming a byte inside member k, on every engine, in
 * every chunking, and through bson_stream and gunzip_buffer too. */
static void expect_bad_trailer(enum inflate_engine engine, int k, size_t back,
			       const char *isal_says, const char *zlib_says)
{
	static const size_t chunks[] = { 1, 7, 4096, SIZE_MAX };
	struct stream st;
	size_t pos;

	make_stream(&st, 200);
	pos = st.start[k + 1] - back;
	st.gz.data[pos] ^= 0x01;
	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		char error[512] = "";
		struct inflate_stream *probe = inflate_stream_new(engine);
		const char *says = strcmp(inflate_stream_engine_name(probe), "zlib") == 0 ?
				   zlib_says : isal_says;
		unsigned long long at;

		inflate_stream_free(probe);
		ck_assert_int_eq(inflate_all(engine, st.gz.data, st.gz.len, chunks[c], 4096, NULL,
					     error, sizeof(error)), DATA_ERROR);
		ck_assert_msg(strstr(error, says) != NULL, "member %d: %s", k, error);
		at = error_offset(error);
		ck_assert_msg(at >= st.start[k] && at <= st.start[k + 1],
			      "member %d is bytes %zu..%zu, the error says %llu", k, st.start[k],
			      st.start[k + 1], at);
	}
	if (engine == INFLATE_ENGINE_BEST) {
		struct bson_stream bs;
		char *out, err[512];
		size_t len;

		ck_assert_int_eq(decode(st.gz.data, st.gz.len, 4096, &bs, NULL), -1);
		ck_assert(bs.data_error);
		ck_assert_msg(strstr(bs.error, "compressed byte") != NULL, "%s", bs.error);
		bson_stream_free(&bs);
		ck_assert_int_eq(gunzip_buffer(st.gz.data, st.gz.len, 1 << 24, &out, &len, err,
					       sizeof(err)), -1);
		ck_assert_ptr_null(out);
		ck_assert_msg(strstr(err, "compressed byte") != NULL, "%s", err);
	}
	free_stream(&st);
}

START_TEST(bad_crc)
{
	for (int k = 0; k < MEMBERS; k += 7)
		expect_bad_trailer(engines[_i], k, 8, "CRC-32 mismatch", "incorrect data check");
	expect_bad_trailer(engines[_i], MEMBERS - 1, 5, "CRC-32 mismatch", "incorrect data check");
}
END_TEST

START_TEST(bad_isize)
{
	for (int k = 0; k < MEMBERS; k += 7)
		expect_bad_trailer(engines[_i], k, 4, "length mismatch", "incorrect length check");
	expect_bad_trailer(engines[_i], MEMBERS - 1, 1, "length mismatch",
			   "incorrect length check");
}
END_TEST

/* ---- cuts and garbage --------------------------------------------------- */

START_TEST(truncated_inside_second_member)
{
	enum inflate_engine engine = engines[_i];
	struct stream st;

	make_stream(&st, 200);
	for (size_t cut = st.start[1]; cut <= st.start[2]; cut++) {
		enum outcome o = inflate_all(engine, st.gz.data, cut, cut % 2 ? 7 : 4096, 4096,
					     NULL, NULL, 0);
		/* At a member boundary the stream is whole gzip (the BSON is
		 * cut, which bson_stream finds). */
		enum outcome want = cut == st.start[1] || cut == st.start[2] ? WHOLE : INCOMPLETE;

		ck_assert_msg(o == want, "cut at %zu (member 2 is %zu..%zu): %d", cut, st.start[1],
			      st.start[2], o);
		if (engine == INFLATE_ENGINE_BEST && cut < st.start[2] && cut % 5 == 0) {
			struct bson_stream bs;
			char *out, err[256];
			size_t len;

			ck_assert_int_eq(decode(st.gz.data, cut, 7, &bs, NULL), -1);
			if (cut > st.start[1])
				ck_assert_msg(strstr(bs.error, "truncated") != NULL &&
					      strstr(bs.error, "gzip member 2") != NULL, "%s",
					      bs.error);
			bson_stream_free(&bs);
			ck_assert_int_eq(gunzip_buffer(st.gz.data, cut, 1 << 24, &out, &len, err,
						       sizeof(err)), cut == st.start[1] ? 0 : -1);
			if (cut > st.start[1])
				ck_assert_msg(strstr(err, "truncated") != NULL, "%s", err);
			else
				free(out);
		}
	}
	free_stream(&st);
}
END_TEST

START_TEST(garbage_after_the_last_member)
{
	static const struct {
		const char *bytes;
		size_t len;
		enum outcome want;
	} tails[] = {
		{ "junk", 4, DATA_ERROR },
		{ "\0\0\0\0\0\0\0\0", 8, DATA_ERROR },
		{ "\x1f\x8c", 2, DATA_ERROR },
		{ "\x8b", 1, DATA_ERROR },
		{ "\x1f\x8b\x07\0\0\0\0\0\0\3", 10, DATA_ERROR },   /* not deflate */
		{ "\x1f", 1, INCOMPLETE },                           /* could be a member yet */
		{ "\x1f\x8b\x08\0\0\0\0\0\0\3", 10, INCOMPLETE },
	};
	enum inflate_engine engine = engines[_i];
	struct stream st;
	size_t whole;

	make_stream(&st, 100);
	whole = st.gz.len;
	for (size_t t = 0; t < sizeof(tails) / sizeof(tails[0]); t++) {
		st.gz.len = whole;
		buf_add(&st.gz, tails[t].bytes, tails[t].len);
		for (size_t chunk = 1; chunk <= 8192; chunk *= 8) {
			char error[512] = "";
			struct buf out = { 0 };
			enum outcome o = inflate_all(engine, st.gz.data, st.gz.len, chunk, 4096,
						     &out, error, sizeof(error));

			ck_assert_msg(o == tails[t].want, "tail %zu, chunk %zu: %d %s", t, chunk, o,
				      error);
			/* Everything before the garbage came out. */
			ck_assert_uint_eq(out.len, st.raw.len);
			if (o == DATA_ERROR && t < 4) {
				ck_assert_msg(strstr(error, "garbage after") != NULL, "%s", error);
				ck_assert_uint_eq(error_offset(error), whole + (t == 2 ? 1 : 0));
			}
			free(out.data);
		}
		if (engine == INFLATE_ENGINE_BEST) {
			struct bson_stream bs;
			char *out, err[512];
			size_t len;

			ck_assert_int_eq(decode(st.gz.data, st.gz.len, 1000, &bs, NULL), -1);
			ck_assert(bs.data_error);
			ck_assert_uint_eq(bs.documents, 100);
			bson_stream_free(&bs);
			ck_assert_int_eq(gunzip_buffer(st.gz.data, st.gz.len, 1 << 24, &out, &len,
						       err, sizeof(err)), -1);
		}
	}
	st.gz.len = whole;
	free_stream(&st);
}
END_TEST

/* ---- ISA-L and zlib agree ----------------------------------------------- */

static struct buf small_stream(void)
{
	struct buf raw = make_docs(5), gz = { 0 };

	zlib_member(&gz, raw.data, 300, 6, Z_DEFAULT_STRATEGY, false);
	zlib_member(&gz, raw.data + 300, 200, 0, Z_DEFAULT_STRATEGY, true);
	zlib_member(&gz, raw.data + 500, raw.len - 500, 9, Z_FIXED, false);
	free(raw.data);
	return gz;
}

START_TEST(engines_agree_on_every_flip_and_cut)
{
	struct buf gz = small_stream();

	for (size_t pos = 0; pos < gz.len; pos++) {
		for (int bit = 0; bit < 8; bit += 7) {
			struct buf a = { 0 }, b = { 0 };
			enum outcome oa, ob;

			gz.data[pos] ^= (uint8_t)(1u << bit);
			oa = inflate_all(engines[0], gz.data, gz.len, 5, 4096, &a, NULL, 0);
			ob = inflate_all(engines[1], gz.data, gz.len, 5, 4096, &b, NULL, 0);
			gz.data[pos] ^= (uint8_t)(1u << bit);
			ck_assert_msg(oa == ob, "flip of bit %d at %zu: %d vs zlib's %d", bit, pos,
				      oa, ob);
			if (oa == WHOLE)
				ck_assert(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
			free(a.data);
			free(b.data);
		}
	}
	for (size_t cut = 0; cut <= gz.len; cut++) {
		enum outcome oa = inflate_all(INFLATE_ENGINE_BEST, gz.data, cut, 3, 4096, NULL,
					      NULL, 0);
		enum outcome ob = inflate_all(INFLATE_ENGINE_ZLIB, gz.data, cut, 3, 4096, NULL,
					      NULL, 0);
		ck_assert_msg(oa == ob, "cut at %zu: %d vs zlib's %d", cut, oa, ob);
	}
	free(gz.data);
}
END_TEST

#ifdef HAVE_ISAL
/* Members compressed by ISA-L itself, as export-collection may write
 * them: every level. */
START_TEST(isal_compressed_members)
{
	static const uint32_t level_buf[] = { 0, ISAL_DEF_LVL1_DEFAULT, ISAL_DEF_LVL2_DEFAULT,
					      ISAL_DEF_LVL3_DEFAULT };
	struct buf raw = make_docs(200), gz = { 0 }, out = { 0 };
	size_t piece = raw.len / 8 + 1;

	for (size_t off = 0, k = 0; off < raw.len; off += piece, k++) {
		struct isal_zstream z;
		size_t n = raw.len - off < piece ? raw.len - off : piece;
		size_t cap = n + n / 2 + 4096;
		uint8_t *tmp = malloc(cap), *lb = NULL;

		ck_assert_ptr_nonnull(tmp);
		isal_deflate_init(&z);
		z.level = (uint32_t)(k % 4);
		if (level_buf[z.level] > 0) {
			lb = malloc(level_buf[z.level]);
			ck_assert_ptr_nonnull(lb);
			z.level_buf = lb;
			z.level_buf_size = level_buf[z.level];
		}
		z.gzip_flag = IGZIP_GZIP;
		z.end_of_stream = 1;
		z.flush = NO_FLUSH;
		z.next_in = raw.data + off;
		z.avail_in = (uint32_t)n;
		z.next_out = tmp;
		z.avail_out = (uint32_t)cap;
		ck_assert_int_eq(isal_deflate(&z), COMP_OK);
		ck_assert_int_eq(z.internal_state.state, ZSTATE_END);
		buf_add(&gz, tmp, z.total_out);
		free(tmp);
		free(lb);
	}
	for (size_t e = 0; e < 2; e++) {
		for (size_t chunk = 1; chunk <= 1 << 20; chunk *= 32) {
			out.len = 0;
			enum outcome o = inflate_all(engines[e], gz.data, gz.len, chunk, 65536,
						     &out, NULL, 0);
			ck_assert_int_eq(o, WHOLE);
			ck_assert_uint_eq(out.len, raw.len);
			ck_assert(memcmp(out.data, raw.data, raw.len) == 0);
		}
	}
	free(out.data);
	free(raw.data);
	free(gz.data);
}
END_TEST
#endif

static Suite *inflate_suite(void)
{
	Suite *s = suite_create("inflate");
	TCase *tc = tcase_create("members");
	int n = (int)(sizeof(engines) / sizeof(engines[0]));

	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, many_members_every_chunking, 0, n);
	tcase_add_loop_test(tc, many_members_tiny_output_room, 0, n);
	tcase_add_test(tc, many_members_through_bson_stream);
	tcase_add_loop_test(tc, header_fields_split_anywhere, 0, n);
	tcase_add_loop_test(tc, bad_headers, 0, n);
	tcase_add_loop_test(tc, bad_crc, 0, n);
	tcase_add_loop_test(tc, bad_isize, 0, n);
	tcase_add_loop_test(tc, truncated_inside_second_member, 0, n);
	tcase_add_loop_test(tc, garbage_after_the_last_member, 0, n);
	tcase_add_test(tc, engines_agree_on_every_flip_and_cut);
#ifdef HAVE_ISAL
	tcase_add_test(tc, isal_compressed_members);
#endif
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(inflate_suite());
	int failed;
	struct inflate_stream *is = inflate_stream_new(INFLATE_ENGINE_BEST);

	if (is == NULL)
		return EXIT_FAILURE;
	printf("inflate engine: %s\n", inflate_stream_engine_name(is));
	inflate_stream_free(is);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
