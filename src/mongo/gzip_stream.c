/* gzip_stream.c - one streamed gzip member with zlib or ISA-L. */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#ifdef HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif

#include "gzip_stream.h"
#include "xio.h"

#define STREAM_IN_BUFFER  (256 * 1024)
#define STREAM_OUT_BUFFER (256 * 1024)

struct gzip_stream {
	int fd;
	enum gzip_engine engine;
	bool ready;
	z_stream z;
#ifdef HAVE_ISAL
	struct isal_zstream iz;
#endif
	unsigned char *level_buf;
	unsigned char *in, *out;
	size_t in_len;
	uint64_t bytes_out;
};

struct gzip_stream *gzip_stream_new(int fd, enum gzip_engine engine, int level)
{
	struct gzip_stream *g = calloc(1, sizeof(*g));
	int err = ENOMEM;

	if (g == NULL)
		goto fail;
	g->fd = fd;
	g->engine = engine;
	g->in = malloc(STREAM_IN_BUFFER);
	g->out = malloc(STREAM_OUT_BUFFER);
	if (g->in == NULL || g->out == NULL)
		goto fail;
	switch (engine) {
	case GZIP_ENGINE_ZLIB:
		/* windowBits 15 + 16 asks zlib for a gzip header and trailer. */
		if (level < 1 || level > 9 ||
		    deflateInit2(&g->z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
			err = EINVAL;
			goto fail;
		}
		g->ready = true;
		return g;
#ifdef HAVE_ISAL
	case GZIP_ENGINE_ISAL: {
		static const size_t level_bufs[] = {
			ISAL_DEF_LVL0_DEFAULT, ISAL_DEF_LVL1_DEFAULT, ISAL_DEF_LVL2_DEFAULT,
			ISAL_DEF_LVL3_DEFAULT,
		};
		if (level < 0 || level > 3) {
			err = EINVAL;
			goto fail;
		}
		isal_deflate_init(&g->iz);
		if (level_bufs[level] > 0) {
			g->level_buf = malloc(level_bufs[level]);
			if (g->level_buf == NULL)
				goto fail;
		}
		g->iz.level = (uint32_t)level;
		g->iz.level_buf = g->level_buf;
		g->iz.level_buf_size = (uint32_t)level_bufs[level];
		g->iz.gzip_flag = IGZIP_GZIP;
		g->iz.flush = NO_FLUSH;
		g->ready = true;
		return g;
	}
#endif
	default:
		err = EINVAL;
		goto fail;
	}
fail:
	gzip_stream_free(g);
	errno = err;
	return NULL;
}

static int put_out(struct gzip_stream *g, size_t produced)
{
	if (produced == 0)
		return 0;
	if (xwrite_all(g->fd, g->out, produced) != 0)
		return -1;
	g->bytes_out += produced;
	return 0;
}

static int deflate_zlib(struct gzip_stream *g, bool last)
{
	int flush = last ? Z_FINISH : Z_NO_FLUSH, zr;

	g->z.next_in = g->in;
	g->z.avail_in = (uInt)g->in_len;
	do {
		g->z.next_out = g->out;
		g->z.avail_out = STREAM_OUT_BUFFER;
		zr = deflate(&g->z, flush);
		if (zr == Z_STREAM_ERROR) {
			errno = EIO;
			return -1;
		}
		if (put_out(g, STREAM_OUT_BUFFER - g->z.avail_out) != 0)
			return -1;
	} while (g->z.avail_out == 0 || (last && zr != Z_STREAM_END));
	return 0;
}

#ifdef HAVE_ISAL
static int deflate_isal(struct gzip_stream *g, bool last)
{
	g->iz.next_in = g->in;
	g->iz.avail_in = (uint32_t)g->in_len;
	g->iz.end_of_stream = last ? 1 : 0;
	do {
		g->iz.next_out = g->out;
		g->iz.avail_out = STREAM_OUT_BUFFER;
		if (isal_deflate(&g->iz) != COMP_OK) {
			errno = EIO;
			return -1;
		}
		if (put_out(g, STREAM_OUT_BUFFER - g->iz.avail_out) != 0)
			return -1;
	} while (g->iz.avail_in > 0 || g->iz.avail_out == 0 ||
		 (last && g->iz.internal_state.state != ZSTATE_END));
	return 0;
}
#endif

static int deflate_buffer(struct gzip_stream *g, bool last)
{
	int rc;

#ifdef HAVE_ISAL
	if (g->engine == GZIP_ENGINE_ISAL)
		rc = deflate_isal(g, last);
	else
#endif
		rc = deflate_zlib(g, last);
	g->in_len = 0;
	return rc;
}

int gzip_stream_write(struct gzip_stream *g, const void *data, size_t len)
{
	const unsigned char *p = data;

	while (len > 0) {
		size_t take = STREAM_IN_BUFFER - g->in_len;
		if (take > len)
			take = len;
		memcpy(g->in + g->in_len, p, take);
		g->in_len += take;
		p += take;
		len -= take;
		if (g->in_len == STREAM_IN_BUFFER && deflate_buffer(g, false) != 0)
			return -1;
	}
	return 0;
}

int gzip_stream_finish(struct gzip_stream *g)
{
	return deflate_buffer(g, true);
}

uint64_t gzip_stream_bytes_out(const struct gzip_stream *g)
{
	return g->bytes_out;
}

void gzip_stream_free(struct gzip_stream *g)
{
	if (g == NULL)
		return;
	if (g->ready && g->engine == GZIP_ENGINE_ZLIB)
		deflateEnd(&g->z);
	free(g->level_buf);
	free(g->in);
	free(g->out);
	free(g);
}
