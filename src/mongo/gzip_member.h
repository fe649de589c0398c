/* gzip_member.h - one whole buffer compressed into one gzip member, by
 * any engine built in.  Each member is a complete gzip stream (header,
 * deflate data, CRC-32 and length), so members compressed apart, even in
 * parallel, concatenate into valid gzip (RFC 1952, 2.2).
 */
#ifndef MAB_GZIP_MEMBER_H
#define MAB_GZIP_MEMBER_H

#include <stddef.h>

#include "gzip_engine.h"

/* One per thread: the engine's working state, reused from member to
 * member. */
struct gzip_member_compressor {
	enum gzip_engine engine;
	int level;
	void *state;
	unsigned char *level_buf;   /* ISA-L's working memory for levels > 0 */
	size_t level_buf_size;
};

/* 0, or -1 with errno (ENOMEM, or EINVAL: engine not built in, bad level). */
int gzip_member_init(struct gzip_member_compressor *mc, enum gzip_engine engine, int level);
/* The most a member of len input bytes can take, header and trailer
 * included. */
size_t gzip_member_bound(const struct gzip_member_compressor *mc, size_t len);
/* Compresses in[0..len) into out (room for gzip_member_bound bytes).
 * 0 with *out_len set, or -1 with errno EIO. */
int gzip_member_compress(struct gzip_member_compressor *mc, const void *in, size_t len,
			 void *out, size_t cap, size_t *out_len);
void gzip_member_free(struct gzip_member_compressor *mc);

#endif
