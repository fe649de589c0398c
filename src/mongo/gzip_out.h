/* gzip_out.h - a gzip member written to a file descriptor as data arrives.
 *
 * Small writes (one BSON document each) are gathered into a large input
 * buffer first: deflate() per kilobyte document costs far more than the
 * compression itself.
 */
#ifndef MAB_GZIP_OUT_H
#define MAB_GZIP_OUT_H

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

struct gzip_out {
	z_stream z;
	int fd;
	int initialised;
	unsigned char *in;
	size_t in_len, in_cap;
	unsigned char *out;
	size_t out_cap;
	uint64_t bytes_in;
	uint64_t bytes_out;
};

/* 0 or -1 (errno ENOMEM / EINVAL). */
int gzip_out_init(struct gzip_out *g, int fd, int level);
/* 0, or -1 with errno: EPIPE when the reader is gone, EIO for zlib. */
int gzip_out_write(struct gzip_out *g, const void *data, size_t len);
/* Flushes and writes the gzip trailer. */
int gzip_out_finish(struct gzip_out *g);
void gzip_out_free(struct gzip_out *g);

#endif
