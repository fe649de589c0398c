/* gzip_member.c - whole-buffer gzip members with zlib, libdeflate or ISA-L. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#ifdef HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif
#ifdef HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif

#include "gzip_member.h"

/* gzip's header (10) and trailer (8) around the deflate data. */
#define GZIP_WRAPPER 18

int gzip_member_init(struct gzip_member_compressor *mc, enum gzip_engine engine, int level)
{
	int min, max, dflt;

	memset(mc, 0, sizeof(*mc));
	mc->engine = engine;
	mc->level = level;
	gzip_engine_levels(engine, &min, &max, &dflt);
	if (!gzip_engine_built_in(engine) || level < min || level > max) {
		errno = EINVAL;
		return -1;
	}
	switch (engine) {
	case GZIP_ENGINE_ZLIB: {
		z_stream *z = calloc(1, sizeof(*z));
		if (z == NULL)
			goto nomem;
		/* windowBits 15 + 16: a gzip wrapper. */
		if (deflateInit2(z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
			free(z);
			goto nomem;
		}
		mc->state = z;
		return 0;
	}
	case GZIP_ENGINE_LIBDEFLATE:
#ifdef HAVE_LIBDEFLATE
		mc->state = libdeflate_alloc_compressor(level);
		if (mc->state == NULL)
			goto nomem;
		return 0;
#else
		break;
#endif
	case GZIP_ENGINE_ISAL:
#ifdef HAVE_ISAL
		mc->state = calloc(1, sizeof(struct isal_zstream));
		if (mc->state == NULL)
			goto nomem;
		static const size_t level_bufs[] = {
			ISAL_DEF_LVL0_DEFAULT, ISAL_DEF_LVL1_DEFAULT, ISAL_DEF_LVL2_DEFAULT,
			ISAL_DEF_LVL3_DEFAULT,
		};
		mc->level_buf_size = level_bufs[level];
		if (mc->level_buf_size > 0) {
			mc->level_buf = malloc(mc->level_buf_size);
			if (mc->level_buf == NULL)
				goto nomem;
		}
		return 0;
#else
		break;
#endif
	default:
		break;
	}
	errno = EINVAL;
	return -1;
nomem:
	gzip_member_free(mc);
	errno = ENOMEM;
	return -1;
}

size_t gzip_member_bound(const struct gzip_member_compressor *mc, size_t len)
{
#ifdef HAVE_LIBDEFLATE
	if (mc->engine == GZIP_ENGINE_LIBDEFLATE)
		return libdeflate_gzip_compress_bound(mc->state, len);
#endif
	(void)mc;
	/* zlib's bound for stored blocks holds for ISA-L's too (5 bytes a
	 * 64 KiB stored block); a little slack on top costs nothing. */
	return compressBound((uLong)len) + GZIP_WRAPPER + 64;
}

int gzip_member_compress(struct gzip_member_compressor *mc, const void *in, size_t len,
			 void *out, size_t cap, size_t *out_len)
{
	*out_len = 0;
	switch (mc->engine) {
	case GZIP_ENGINE_ZLIB: {
		z_stream *z = mc->state;
		if (deflateReset(z) != Z_OK)
			break;
		z->next_in = (Bytef *)in;
		z->avail_in = (uInt)len;
		z->next_out = out;
		z->avail_out = (uInt)cap;
		if (deflate(z, Z_FINISH) != Z_STREAM_END)
			break;
		*out_len = cap - z->avail_out;
		return 0;
	}
#ifdef HAVE_LIBDEFLATE
	case GZIP_ENGINE_LIBDEFLATE: {
		size_t n = libdeflate_gzip_compress(mc->state, in, len, out, cap);
		if (n == 0)
			break;
		*out_len = n;
		return 0;
	}
#endif
#ifdef HAVE_ISAL
	case GZIP_ENGINE_ISAL: {
		struct isal_zstream *z = mc->state;
		isal_deflate_stateless_init(z);
		z->level = (uint32_t)mc->level;
		z->level_buf = mc->level_buf;
		z->level_buf_size = (uint32_t)mc->level_buf_size;
		z->gzip_flag = IGZIP_GZIP;
		z->end_of_stream = 1;
		z->flush = NO_FLUSH;
		z->next_in = (uint8_t *)in;
		z->avail_in = (uint32_t)len;
		z->next_out = out;
		z->avail_out = (uint32_t)cap;
		if (isal_deflate_stateless(z) != COMP_OK)
			break;
		*out_len = z->total_out;
		return 0;
	}
#endif
	default:
		break;
	}
	errno = EIO;
	return -1;
}

void gzip_member_free(struct gzip_member_compressor *mc)
{
	if (mc->state != NULL) {
		switch (mc->engine) {
		case GZIP_ENGINE_ZLIB:
			deflateEnd(mc->state);
			free(mc->state);
			break;
#ifdef HAVE_LIBDEFLATE
		case GZIP_ENGINE_LIBDEFLATE:
			libdeflate_free_compressor(mc->state);
			break;
#endif
		default:
			free(mc->state);
			break;
		}
	}
	free(mc->level_buf);
	mc->state = NULL;
	mc->level_buf = NULL;
}
