/* gzip_out.c - chooses between one streamed member and parallel members. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "gzip_out.h"
#include "gzip_pool.h"
#include "gzip_stream.h"

int gzip_out_init(struct gzip_out *g, int fd, const struct gzip_settings *s)
{
	int min, max, dflt;

	memset(g, 0, sizeof(*g));
	g->fd = fd;
	g->settings = *s;
	g->settings.threads = gzip_threads_resolve(s->threads);
	gzip_engine_levels(s->engine, &min, &max, &dflt);
	if (!gzip_engine_built_in(s->engine) || s->level < min || s->level > max) {
		errno = EINVAL;
		return -1;
	}
	/* libdeflate has no streaming interface: it always makes members. */
	if (g->settings.threads == 1 && s->engine != GZIP_ENGINE_LIBDEFLATE) {
		g->stream = gzip_stream_new(fd, s->engine, s->level);
		return g->stream == NULL ? -1 : 0;
	}
	g->pool = gzip_pool_new(fd, s->engine, s->level, g->settings.threads,
				GZIP_MEMBER_SIZE);
	return g->pool == NULL ? -1 : 0;
}

int gzip_out_write(struct gzip_out *g, const void *data, size_t len)
{
	int rc;

	g->bytes_in += len;
	if (g->stream != NULL) {
		rc = gzip_stream_write(g->stream, data, len);
		g->bytes_out = gzip_stream_bytes_out(g->stream);
	} else {
		rc = gzip_pool_write(g->pool, data, len);
		g->bytes_out = gzip_pool_bytes_out(g->pool);
	}
	return rc;
}

int gzip_out_finish(struct gzip_out *g)
{
	int rc;

	if (g->stream != NULL) {
		rc = gzip_stream_finish(g->stream);
		g->bytes_out = gzip_stream_bytes_out(g->stream);
		g->members = 1;
	} else {
		rc = gzip_pool_finish(g->pool);
		g->bytes_out = gzip_pool_bytes_out(g->pool);
		g->members = gzip_pool_members(g->pool);
	}
	return rc;
}

void gzip_out_free(struct gzip_out *g)
{
	gzip_stream_free(g->stream);
	gzip_pool_free(g->pool);
	g->stream = NULL;
	g->pool = NULL;
}
