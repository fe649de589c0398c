/* inflate_stream.h - one gzip stream of one or more members, inflated
 * chunk by chunk, by ISA-L (igzip) when the build has it, else by zlib.
 *
 * Members follow one another as RFC 1952 2.2 allows (the exporter writes
 * one per MiB of BSON, so a blob holds many).  Each member's CRC-32 and
 * length (ISIZE) are checked when it ends.  Bytes after a member that do
 * not start another one are a data error, and so is a stream that stops
 * inside a member: inflate_stream_complete() says whether the input so
 * far ends where a member does.
 *
 * Memory: the engine's state (a 32 KiB window and its tables, about
 * 90 KB for ISA-L, 45 KB for zlib), whatever the stream holds; inflated
 * bytes go straight into the caller's buffer.
 */
#ifndef MAB_INFLATE_STREAM_H
#define MAB_INFLATE_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum inflate_engine {
	INFLATE_ENGINE_BEST,    /* ISA-L when built in (2-3x faster), else zlib */
	INFLATE_ENGINE_ZLIB,    /* zlib even when ISA-L is built in (tests compare the two) */
};

struct inflate_stream;

/* NULL with errno ENOMEM. */
struct inflate_stream *inflate_stream_new(enum inflate_engine engine);
void inflate_stream_free(struct inflate_stream *is);
/* "isa-l" or "zlib": the engine this stream runs on. */
const char *inflate_stream_engine_name(const struct inflate_stream *is);

/* Inflates from *in (*in_len bytes) into out (room bytes, room > 0):
 * advances *in and *in_len past the bytes it took and sets *made to the
 * bytes it wrote.  It returns when it has taken all the input and written
 * all it can make of it, or when out is full (*made == room; call again
 * with more room, the rest of the input may still be there).  0, or -1 on
 * a data error (inflate_stream_error() says what, naming the compressed
 * byte); after -1 every call fails again. */
int inflate_stream_run(struct inflate_stream *is, const uint8_t **in, size_t *in_len,
		       uint8_t *out, size_t room, size_t *made);
const char *inflate_stream_error(const struct inflate_stream *is);

/* True when some member has been read and every member begun is whole
 * and checked: the stream may end here. */
bool inflate_stream_complete(const struct inflate_stream *is);
/* Members begun so far. */
uint64_t inflate_stream_members(const struct inflate_stream *is);

#endif
