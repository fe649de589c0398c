/* gzip_out.h - the export's gzip writer: BSON in, gzip out to an fd, by the
 * engine, level and thread count the configuration chose.
 *
 * One thread with zlib or ISA-L streams a single gzip member.  Otherwise
 * the input is cut into GZIP_MEMBER_SIZE pieces compressed as independent
 * members (in parallel with threads > 1) and written in order: valid gzip
 * that gunzip, mongorestore --gzip and every SDK read whole.
 *
 * Small writes (one BSON document each) are gathered into a large input
 * buffer first: compressing per kilobyte document costs far more than the
 * compression itself.
 */
#ifndef MAB_GZIP_OUT_H
#define MAB_GZIP_OUT_H

#include <stddef.h>
#include <stdint.h>

#include "gzip_engine.h"

struct gzip_settings {
	enum gzip_engine engine;
	int level;                 /* within the engine's range */
	int threads;               /* 0 = auto */
};

struct gzip_stream;
struct gzip_pool;

struct gzip_out {
	int fd;
	struct gzip_settings settings;  /* threads resolved */
	struct gzip_stream *stream;     /* one streamed member, or */
	struct gzip_pool *pool;         /* independent members */
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t members;               /* after finish */
};

/* 0 or -1 (errno ENOMEM / EINVAL: engine not built in or level out of
 * its range). */
int gzip_out_init(struct gzip_out *g, int fd, const struct gzip_settings *s);
/* 0, or -1 with errno: EPIPE when the reader is gone, EIO for the engine. */
int gzip_out_write(struct gzip_out *g, const void *data, size_t len);
/* Flushes and writes the gzip trailer(s). */
int gzip_out_finish(struct gzip_out *g);
void gzip_out_free(struct gzip_out *g);

#endif
