/* gzip_stream.h - one gzip member streamed from one thread, for the
 * engines that can (zlib, ISA-L): constant memory, no member boundaries.
 */
#ifndef MAB_GZIP_STREAM_H
#define MAB_GZIP_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "gzip_engine.h"

struct gzip_stream;

/* NULL with errno: EINVAL (engine cannot stream, or bad level), ENOMEM. */
struct gzip_stream *gzip_stream_new(int fd, enum gzip_engine engine, int level);
int gzip_stream_write(struct gzip_stream *g, const void *data, size_t len);
int gzip_stream_finish(struct gzip_stream *g);
uint64_t gzip_stream_bytes_out(const struct gzip_stream *g);
void gzip_stream_free(struct gzip_stream *g);

#endif
