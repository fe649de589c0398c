/* gzip_out.c - streaming gzip to an fd with zlib. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gzip_out.h"
#include "xio.h"

#define GZIP_IN_BUFFER  (256 * 1024)
#define GZIP_OUT_BUFFER (256 * 1024)

int gzip_out_init(struct gzip_out *g, int fd, int level)
{
	memset(g, 0, sizeof(*g));
	g->fd = fd;
	g->in_cap = GZIP_IN_BUFFER;
	g->out_cap = GZIP_OUT_BUFFER;
	g->in = malloc(g->in_cap);
	g->out = malloc(g->out_cap);
	if (g->in == NULL || g->out == NULL) {
		gzip_out_free(g);
		errno = ENOMEM;
		return -1;
	}
	/* windowBits 15 + 16 asks zlib for a gzip header and trailer. */
	if (deflateInit2(&g->z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
		gzip_out_free(g);
		errno = EINVAL;
		return -1;
	}
	g->initialised = 1;
	return 0;
}

static int deflate_buffer(struct gzip_out *g, int flush)
{
	int zr;

	g->z.next_in = g->in;
	g->z.avail_in = (uInt)g->in_len;
	do {
		g->z.next_out = g->out;
		g->z.avail_out = (uInt)g->out_cap;
		zr = deflate(&g->z, flush);
		if (zr == Z_STREAM_ERROR) {
			errno = EIO;
			return -1;
		}
		size_t produced = g->out_cap - g->z.avail_out;
		if (produced > 0) {
			if (xwrite_all(g->fd, g->out, produced) != 0)
				return -1;
			g->bytes_out += produced;
		}
	} while (g->z.avail_out == 0 || (flush == Z_FINISH && zr != Z_STREAM_END));
	g->in_len = 0;
	return 0;
}

int gzip_out_write(struct gzip_out *g, const void *data, size_t len)
{
	const unsigned char *p = data;

	g->bytes_in += len;
	while (len > 0) {
		size_t room = g->in_cap - g->in_len;
		size_t take = len < room ? len : room;
		memcpy(g->in + g->in_len, p, take);
		g->in_len += take;
		p += take;
		len -= take;
		if (g->in_len == g->in_cap && deflate_buffer(g, Z_NO_FLUSH) != 0)
			return -1;
	}
	return 0;
}

int gzip_out_finish(struct gzip_out *g)
{
	return deflate_buffer(g, Z_FINISH);
}

void gzip_out_free(struct gzip_out *g)
{
	if (g->initialised)
		deflateEnd(&g->z);
	free(g->in);
	free(g->out);
	g->in = g->out = NULL;
	g->initialised = 0;
}
