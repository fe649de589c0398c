/* gzip_pool.h - gzip members compressed by worker threads and written in
 * their input order.
 *
 * The caller fills one member's input at a time; full members queue for
 * the workers, and finished ones are written to the fd oldest first.  At
 * most two members per thread are in flight, each holding its input and
 * its output, which bounds the memory whatever the stream's length.  The
 * writing happens in the caller's thread: a slow reader (the upload) holds
 * the caller back, and the workers stop when every slot waits to be
 * written.
 */
#ifndef MAB_GZIP_POOL_H
#define MAB_GZIP_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "gzip_engine.h"

struct gzip_pool;

/* threads >= 1.  NULL with errno (ENOMEM, EINVAL, or pthread's error). */
struct gzip_pool *gzip_pool_new(int fd, enum gzip_engine engine, int level, int threads,
				size_t member_size);
/* Feeds input; 0, or -1 with errno (EPIPE: the reader is gone; EIO: an
 * engine failed). */
int gzip_pool_write(struct gzip_pool *p, const void *data, size_t len);
/* Compresses what is left (an empty stream still gets one empty member,
 * so the output is always gzip) and writes everything out.  0 or -1. */
int gzip_pool_finish(struct gzip_pool *p);
uint64_t gzip_pool_bytes_out(const struct gzip_pool *p);
uint64_t gzip_pool_members(const struct gzip_pool *p);
/* Stops the workers (after a failure too) and frees everything. */
void gzip_pool_free(struct gzip_pool *p);

#endif
