/* inflate_stream.c - gzip members back to back, inflated by ISA-L or zlib.
 *
 * zlib reads each member whole (header, deflate data, trailer) and is
 * reset for the next one.  ISA-L is given the deflate data and trailer
 * only (ISAL_GZIP_NO_HDR_VER) and the header is parsed here: ISA-L 2.30
 * gets a header with optional fields wrong when it is split across two
 * calls (it takes the flags from an uninitialised local, and the header
 * CRC from the last piece only), and blobs arrive in network-sized chunks
 * that may split a header anywhere.  With a trailer to verify, ISA-L
 * stops reading at the trailer's last byte (its 64-bit read-ahead never
 * holds more than the trailer), so the next member's bytes are still in
 * the caller's input.  This file checks that it did, and checks the
 * trailer (CRC-32 and ISIZE) itself as well, so a surprise there is an
 * error, never a lost byte.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#ifdef HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif

#include "inflate_stream.h"

/* Both engines (and zlib's crc32) count in 32 bits: a call never gets more
 * than this. */
#define CALL_MAX (1u << 30)

/* RFC 1952 2.3.1 */
#define GZ_FHCRC 0x02
#define GZ_FEXTRA 0x04
#define GZ_FNAME 0x08
#define GZ_FCOMMENT 0x10
#define GZ_FRESERVED 0xe0
#define GZ_FIXED_LEN 10

enum hdr_step { HDR_FIXED, HDR_XLEN, HDR_EXTRA, HDR_NAME, HDR_COMMENT, HDR_HCRC, HDR_DONE };

struct inflate_stream {
	enum inflate_engine engine;    /* INFLATE_ENGINE_ZLIB, or BEST meaning ISA-L */
	bool failed;
	char error[320];

	uint64_t in_pos;               /* compressed bytes taken */
	uint64_t members;              /* members begun */
	uint64_t member_start;         /* in_pos where the current one began */
	bool in_member;                /* the current member has not ended */
	unsigned magic_seen;           /* of its two magic bytes */

	z_stream z;
	bool z_ready;

#ifdef HAVE_ISAL
	struct inflate_state *isal;
	enum hdr_step step;
	uint8_t fixed[GZ_FIXED_LEN];
	unsigned got;                  /* bytes of the current header field */
	uint32_t extra_left;
	uint32_t hcrc;                 /* CRC-32 of the header so far (FHCRC) */
	uint8_t hcrc_bytes[2];
	uint64_t member_out;           /* bytes the member inflated to */
	uint8_t tail[8];               /* the last 8 bytes ISA-L took */
#endif
};

static int vfail(struct inflate_stream *is, uint64_t at, bool in_member, const char *fmt,
		 va_list ap) __attribute__((format(printf, 4, 0)));
static int fail(struct inflate_stream *is, uint64_t at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail_between(struct inflate_stream *is, uint64_t at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Every message names the compressed byte, and the member when the error
 * is inside one, so a corrupt blob can be looked at with a hex editor. */
static int vfail(struct inflate_stream *is, uint64_t at, bool in_member, const char *fmt,
		 va_list ap)
{
	int n;

	if (in_member)
		n = snprintf(is->error, sizeof(is->error), "gzip data error at compressed byte "
			     "%llu (gzip member %llu, from byte %llu): ", (unsigned long long)at,
			     (unsigned long long)is->members, (unsigned long long)is->member_start);
	else
		n = snprintf(is->error, sizeof(is->error), "gzip data error at compressed byte "
			     "%llu: ", (unsigned long long)at);
	if (n > 0 && (size_t)n < sizeof(is->error))
		vsnprintf(is->error + n, sizeof(is->error) - (size_t)n, fmt, ap);
	is->failed = true;
	return -1;
}

static int fail(struct inflate_stream *is, uint64_t at, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(is, at, true, fmt, ap);
	va_end(ap);
	return -1;
}

/* Where a member should start and none does. */
static int fail_between(struct inflate_stream *is, uint64_t at, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(is, at, false, fmt, ap);
	va_end(ap);
	return -1;
}

static void take(struct inflate_stream *is, const uint8_t **in, size_t *in_len, size_t n)
{
	*in += n;
	*in_len -= n;
	is->in_pos += n;
}

static void begin_member(struct inflate_stream *is)
{
	is->members++;
	is->member_start = is->in_pos;
	is->in_member = true;
	is->magic_seen = 0;
}

/* The first two bytes of a member.  Checked here for both engines so that
 * garbage after the last member reads the same whichever runs. */
static int check_magic(struct inflate_stream *is, const uint8_t *in, size_t len)
{
	static const uint8_t magic[2] = { 0x1f, 0x8b };

	for (size_t i = 0; is->magic_seen < 2 && i < len; i++, is->magic_seen++) {
		if (in[i] == magic[is->magic_seen])
			continue;
		if (is->members == 1)
			return fail_between(is, is->in_pos + i, "not gzip (no gzip header)");
		return fail_between(is, is->in_pos + i, "garbage after gzip member %llu (not "
				    "the start of another member)",
				    (unsigned long long)is->members - 1);
	}
	return 0;
}

static uInt clamp32(size_t n)
{
	return n > CALL_MAX ? CALL_MAX : (uInt)n;
}

/* ---- zlib: gzip members whole ------------------------------------------- */

static int zlib_start(struct inflate_stream *is)
{
	/* 15+16: a gzip wrapper and nothing else (a raw zlib stream is not
	 * what the exporter writes, so it counts as corruption). */
	if (inflateInit2(&is->z, 15 + 16) != Z_OK)
		return -1;
	is->z_ready = true;
	return 0;
}

static int zlib_run(struct inflate_stream *is, const uint8_t **in, size_t *in_len, uint8_t *out,
		    size_t room, size_t *made)
{
	for (;;) {
		if (!is->in_member) {
			if (*in_len == 0)
				return 0;
			if (is->members > 0 && inflateReset(&is->z) != Z_OK)
				return fail(is, is->in_pos, "cannot restart inflate");
			begin_member(is);
		}
		if (check_magic(is, *in, *in_len) != 0)
			return -1;
		if (*made == room)
			return 0;

		uInt give = clamp32(*in_len), space = clamp32(room - *made);
		is->z.next_in = (Bytef *)*in;
		is->z.avail_in = give;
		is->z.next_out = out + *made;
		is->z.avail_out = space;
		int rc = inflate(&is->z, Z_NO_FLUSH);
		size_t took = give - is->z.avail_in, wrote = space - is->z.avail_out;
		take(is, in, in_len, took);
		*made += wrote;

		if (rc == Z_STREAM_END) {
			is->in_member = false;
			continue;
		}
		if (rc != Z_OK && rc != Z_BUF_ERROR)
			return fail(is, is->in_pos, "%s", is->z.msg ? is->z.msg : zError(rc));
		/* zlib takes all the input it is given unless the output fills:
		 * with input left and room to write, no progress is a bug. */
		if (took == 0 && wrote == 0) {
			if (*in_len == 0 || *made == room)
				return 0;
			return fail(is, is->in_pos, "inflate made no progress");
		}
		if (*in_len == 0 && *made < room)
			return 0;
	}
}

/* ---- ISA-L: the header here, the rest by isal_inflate -------------------- */

#ifdef HAVE_ISAL
static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int isal_start(struct inflate_stream *is)
{
	is->isal = malloc(sizeof(*is->isal));
	if (is->isal == NULL)
		return -1;
	isal_inflate_init(is->isal);
	return 0;
}

/* The optional header field that comes after `after`, per the flags. */
static enum hdr_step next_step(uint8_t flags, enum hdr_step after)
{
	static const struct {
		enum hdr_step step;
		uint8_t flag;
	} order[] = {
		{ HDR_XLEN, GZ_FEXTRA }, { HDR_NAME, GZ_FNAME }, { HDR_COMMENT, GZ_FCOMMENT },
		{ HDR_HCRC, GZ_FHCRC },
	};

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (order[i].step > after && (flags & order[i].flag))
			return order[i].step;
	return HDR_DONE;
}

/* The header's bytes so far go into the header CRC when the member has
 * one; the fixed part is added once it is whole. */
static void header_crc(struct inflate_stream *is, const uint8_t *p, size_t n)
{
	if (is->fixed[3] & GZ_FHCRC)
		is->hcrc = (uint32_t)crc32(is->hcrc, p, (uInt)n);
}

/* Takes header bytes until the header is whole (is->step == HDR_DONE) or
 * the input runs out; 0, or -1 on a bad header. */
static int isal_header(struct inflate_stream *is, const uint8_t **in, size_t *in_len)
{
	while (*in_len > 0 && is->step != HDR_DONE) {
		const uint8_t *p = *in;
		size_t avail = *in_len < CALL_MAX ? *in_len : CALL_MAX, n = 1;

		switch (is->step) {
		case HDR_FIXED:
			n = GZ_FIXED_LEN - is->got < avail ? GZ_FIXED_LEN - is->got : avail;
			memcpy(is->fixed + is->got, p, n);
			is->got += (unsigned)n;
			take(is, in, in_len, n);
			if (is->got < GZ_FIXED_LEN)
				continue;
			if (is->fixed[2] != 8)
				return fail(is, is->member_start + 2,
					    "compression method %u is not deflate", is->fixed[2]);
			if (is->fixed[3] & GZ_FRESERVED)
				return fail(is, is->member_start + 3, "reserved header flags set "
					    "(0x%02x)", is->fixed[3]);
			is->hcrc = (uint32_t)crc32(0, Z_NULL, 0);
			header_crc(is, is->fixed, GZ_FIXED_LEN);
			is->step = next_step(is->fixed[3], HDR_FIXED);
			is->got = 0;
			continue;
		case HDR_XLEN:
			is->extra_left |= (uint32_t)p[0] << (8 * is->got);
			if (++is->got < 2)
				break;
			is->got = 0;
			is->step = is->extra_left > 0 ? HDR_EXTRA :
				   next_step(is->fixed[3], HDR_EXTRA);
			break;
		case HDR_EXTRA:
			n = is->extra_left < avail ? is->extra_left : avail;
			is->extra_left -= (uint32_t)n;
			if (is->extra_left == 0)
				is->step = next_step(is->fixed[3], HDR_EXTRA);
			break;
		case HDR_NAME:
		case HDR_COMMENT: {
			/* Zero-terminated, any length: skipped, never held. */
			const uint8_t *nul = memchr(p, 0, avail);
			n = nul != NULL ? (size_t)(nul - p) + 1 : avail;
			if (nul != NULL)
				is->step = next_step(is->fixed[3], is->step);
			break;
		}
		case HDR_HCRC:
			is->hcrc_bytes[is->got] = p[0];
			if (++is->got < 2) {
				take(is, in, in_len, 1);
				continue;
			}
			if ((is->hcrc & 0xffff) != ((uint32_t)is->hcrc_bytes[0] |
						    (uint32_t)is->hcrc_bytes[1] << 8))
				return fail(is, is->in_pos, "the header's CRC-16 does not match");
			is->step = HDR_DONE;
			take(is, in, in_len, 1);
			continue;
		case HDR_DONE:
			return 0;
		}
		header_crc(is, p, n);
		take(is, in, in_len, n);
	}
	return 0;
}

static void keep_tail(struct inflate_stream *is, const uint8_t *p, size_t n)
{
	if (n >= sizeof(is->tail)) {
		memcpy(is->tail, p + n - sizeof(is->tail), sizeof(is->tail));
	} else if (n > 0) {
		memmove(is->tail, is->tail + n, sizeof(is->tail) - n);
		memcpy(is->tail + sizeof(is->tail) - n, p, n);
	}
}

static const char *isal_reason(int rc)
{
	switch (rc) {
	case ISAL_INVALID_BLOCK:
		return "invalid deflate block";
	case ISAL_INVALID_SYMBOL:
		return "invalid deflate code";
	case ISAL_INVALID_LOOKBACK:
		return "a back-reference before the start of the data";
	case ISAL_NEED_DICT:
		return "the deflate data needs a preset dictionary";
	default:
		return "inflate failed";
	}
}

/* At the end of a member's deflate data and trailer: the trailer is the
 * last 8 bytes ISA-L took, as long as it took none past it. */
static int isal_member_end(struct inflate_stream *is, int rc)
{
	const struct inflate_state *st = is->isal;
	uint32_t want_crc = le32(is->tail), want_len = le32(is->tail + 4);

	/* Fewer than 8 bits left are the last deflate byte's padding; a
	 * whole byte would belong to the next member. */
	if (st->read_in_length >= 8 || st->tmp_in_size != 0)
		return fail(is, is->in_pos, "ISA-L read %d bytes past the end of the member",
			    st->read_in_length / 8 + st->tmp_in_size);
	if (want_crc != st->crc)
		return fail(is, is->in_pos, "CRC-32 mismatch: the trailer says %08x, the data "
			    "inflates to %08x", want_crc, st->crc);
	if (want_len != (uint32_t)is->member_out)
		return fail(is, is->in_pos, "length mismatch: the trailer says %u bytes "
			    "(mod 2^32), the data inflates to %llu", want_len,
			    (unsigned long long)is->member_out);
	if (rc != ISAL_DECOMP_OK)
		return fail(is, is->in_pos, "ISA-L rejects the trailer");
	is->in_member = false;
	return 0;
}

static int isal_run(struct inflate_stream *is, const uint8_t **in, size_t *in_len, uint8_t *out,
		    size_t room, size_t *made)
{
	struct inflate_state *st = is->isal;

	for (;;) {
		if (!is->in_member) {
			if (*in_len == 0)
				return 0;
			begin_member(is);
			is->step = HDR_FIXED;
			is->got = 0;
			is->extra_left = 0;
		}
		if (is->step != HDR_DONE) {
			if (check_magic(is, *in, *in_len) != 0 || isal_header(is, in, in_len) != 0)
				return -1;
			if (is->step != HDR_DONE)
				return 0;
			isal_inflate_reset(st);
			st->crc_flag = ISAL_GZIP_NO_HDR_VER;
			is->member_out = 0;
		}
		if (*made == room)
			return 0;

		uint32_t give = clamp32(*in_len), space = clamp32(room - *made);
		st->next_in = (uint8_t *)*in;
		st->avail_in = give;
		st->next_out = out + *made;
		st->avail_out = space;
		int rc = isal_inflate(st);

		/* After a data error ISA-L's counts are not to be trusted
		 * (2.30 can leave avail_in wrapped below zero): the position
		 * comes from next_in, bounded by what it was given. */
		if (rc != ISAL_DECOMP_OK && rc != ISAL_INCORRECT_CHECKSUM) {
			size_t moved = st->next_in > *in ? (size_t)(st->next_in - *in) : 0;
			return fail(is, is->in_pos + (moved < give ? moved : give), "%s",
				    isal_reason(rc));
		}
		if (st->avail_in > give || st->avail_out > space ||
		    st->next_in != *in + (give - st->avail_in))
			return fail(is, is->in_pos, "ISA-L lost count of its input");
		size_t took = give - st->avail_in, wrote = space - st->avail_out;
		keep_tail(is, *in, took);
		take(is, in, in_len, took);
		*made += wrote;
		is->member_out += wrote;

		if (st->block_state == ISAL_BLOCK_FINISH) {
			if (isal_member_end(is, rc) != 0)
				return -1;
			continue;
		}
		if (rc != ISAL_DECOMP_OK)
			return fail(is, is->in_pos, "ISA-L reports a bad trailer before the end");
		/* Input all taken: the next call makes no progress and ends
		 * it, so nothing ISA-L still holds is left unwritten. */
		if (took == 0 && wrote == 0) {
			if (*in_len == 0 || *made == room)
				return 0;
			return fail(is, is->in_pos, "inflate made no progress");
		}
	}
}
#endif

/* ---- the interface ------------------------------------------------------ */

struct inflate_stream *inflate_stream_new(enum inflate_engine engine)
{
	struct inflate_stream *is = calloc(1, sizeof(*is));

	if (is == NULL)
		goto fail;
#ifndef HAVE_ISAL
	engine = INFLATE_ENGINE_ZLIB;
#endif
	is->engine = engine;
	if (engine == INFLATE_ENGINE_ZLIB) {
		if (zlib_start(is) != 0)
			goto fail;
	} else {
#ifdef HAVE_ISAL
		if (isal_start(is) != 0)
			goto fail;
#endif
	}
	return is;
fail:
	inflate_stream_free(is);
	errno = ENOMEM;
	return NULL;
}

void inflate_stream_free(struct inflate_stream *is)
{
	if (is == NULL)
		return;
	if (is->z_ready)
		inflateEnd(&is->z);
#ifdef HAVE_ISAL
	free(is->isal);
#endif
	free(is);
}

const char *inflate_stream_engine_name(const struct inflate_stream *is)
{
	return is->engine == INFLATE_ENGINE_ZLIB ? "zlib" : "isa-l";
}

int inflate_stream_run(struct inflate_stream *is, const uint8_t **in, size_t *in_len,
		       uint8_t *out, size_t room, size_t *made)
{
	*made = 0;
	if (is->failed)
		return -1;
	if (room == 0) {
		snprintf(is->error, sizeof(is->error), "inflate given no room to write");
		is->failed = true;
		return -1;
	}
#ifdef HAVE_ISAL
	if (is->engine != INFLATE_ENGINE_ZLIB)
		return isal_run(is, in, in_len, out, room, made);
#endif
	return zlib_run(is, in, in_len, out, room, made);
}

const char *inflate_stream_error(const struct inflate_stream *is)
{
	return is->error;
}

bool inflate_stream_complete(const struct inflate_stream *is)
{
	return is->members > 0 && !is->in_member;
}

uint64_t inflate_stream_members(const struct inflate_stream *is)
{
	return is->members;
}
