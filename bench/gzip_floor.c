/* gzip_floor.c - the in-process floor of one gzip engine, for bench/engines.py.
 *
 * Not part of the autotools build: bench/engines.py compiles it at run time
 * (cc -O2 ... -lz, plus -DHAVE_LIBDEFLATE -ldeflate and -DHAVE_ISAL -lisal
 * when their headers exist) into a temporary directory.
 *
 *     gzip_floor [-o OUT] FILE ENGINE LEVEL MODE TRIES
 *
 * reads FILE (BSON) into memory and gzips it TRIES times in this one
 * thread, the way export-collection does with one thread:
 *
 *   MODE stream   one gzip member, input fed in 256 KiB pieces, output
 *                 taken 256 KiB at a time (zlib: deflateInit2 windowBits
 *                 15 + 16, memLevel 8, default strategy; isal: isal_deflate
 *                 with the level's default level buffer);
 *   MODE members  the input cut into 1 MiB pieces, each compressed whole
 *                 into an independent gzip member (libdeflate always works
 *                 this way; zlib and isal do with threads > 1).
 *
 * Only the compression is timed: CPU time of this process
 * (CLOCK_PROCESS_CPUTIME_ID) and wall time (CLOCK_MONOTONIC).  The output
 * is counted, not written; with -o OUT the first try also keeps it in
 * memory and writes it to OUT afterwards, for the caller to gunzip and
 * compare.  One JSON object per try on stdout:
 *
 *   {"try": 1, "cpu_seconds": ..., "wall_seconds": ..., "in_bytes": ...,
 *    "out_bytes": ..., "members": ...}
 *
 * Exit status 0, or 1 with a message on stderr.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#ifdef HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif
#ifdef HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif

#define STREAM_PIECE (256 * 1024)
#define MEMBER_PIECE (1024 * 1024)

enum engine { ZLIB, LIBDEFLATE, ISAL };

struct sink {
	unsigned char *keep;    /* NULL: count only */
	size_t kept, cap;
	uint64_t bytes;
	uint64_t members;
};

static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("gzip_floor: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void sink_put(struct sink *s, const unsigned char *p, size_t n)
{
	s->bytes += n;
	if (s->keep == NULL || n == 0)
		return;
	if (s->kept + n > s->cap) {
		size_t cap = s->cap ? s->cap : (size_t)64 << 20;
		while (cap < s->kept + n)
			cap *= 2;
		unsigned char *k = realloc(s->keep, cap);
		if (k == NULL)
			die("out of memory keeping %zu bytes of output", cap);
		s->keep = k;
		s->cap = cap;
	}
	memcpy(s->keep + s->kept, p, n);
	s->kept += n;
}

static double now(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned char *read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	struct stat st;

	if (fd < 0 || fstat(fd, &st) != 0)
		die("%s: %s", path, strerror(errno));
	unsigned char *buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
	if (buf == NULL)
		die("%s: out of memory for %lld bytes", path, (long long)st.st_size);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			die("%s: read: %s", path, r < 0 ? strerror(errno) : "short file");
		got += (size_t)r;
	}
	close(fd);
	*len = got;
	return buf;
}

#ifdef HAVE_ISAL
static size_t isal_level_buf_size(int level)
{
	static const size_t sizes[] = {
		ISAL_DEF_LVL0_DEFAULT, ISAL_DEF_LVL1_DEFAULT, ISAL_DEF_LVL2_DEFAULT,
		ISAL_DEF_LVL3_DEFAULT,
	};
	return sizes[level];
}
#endif

/* One streamed member: zlib or ISA-L, 256 KiB in, 256 KiB out. */
static void run_stream(enum engine e, int level, const unsigned char *in, size_t len,
		       struct sink *s)
{
	static unsigned char out[STREAM_PIECE];
	size_t off = 0;

	if (e == ZLIB) {
		z_stream z;
		memset(&z, 0, sizeof(z));
		if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
			die("deflateInit2 failed at level %d", level);
		for (;;) {
			size_t piece = len - off < STREAM_PIECE ? len - off : STREAM_PIECE;
			int last = off + piece == len, zr;
			z.next_in = (Bytef *)(in + off);
			z.avail_in = (uInt)piece;
			do {
				z.next_out = out;
				z.avail_out = sizeof(out);
				zr = deflate(&z, last ? Z_FINISH : Z_NO_FLUSH);
				if (zr == Z_STREAM_ERROR)
					die("deflate failed");
				sink_put(s, out, sizeof(out) - z.avail_out);
			} while (z.avail_out == 0 || (last && zr != Z_STREAM_END));
			off += piece;
			if (last)
				break;
		}
		deflateEnd(&z);
		s->members++;
		return;
	}
#ifdef HAVE_ISAL
	if (e == ISAL) {
		struct isal_zstream z;
		size_t lb = isal_level_buf_size(level);
		unsigned char *level_buf = lb ? malloc(lb) : NULL;
		if (lb && level_buf == NULL)
			die("out of memory");
		isal_deflate_init(&z);
		z.level = (uint32_t)level;
		z.level_buf = level_buf;
		z.level_buf_size = (uint32_t)lb;
		z.gzip_flag = IGZIP_GZIP;
		z.flush = NO_FLUSH;
		for (;;) {
			size_t piece = len - off < STREAM_PIECE ? len - off : STREAM_PIECE;
			int last = off + piece == len;
			z.next_in = (uint8_t *)(in + off);
			z.avail_in = (uint32_t)piece;
			z.end_of_stream = last ? 1 : 0;
			do {
				z.next_out = out;
				z.avail_out = sizeof(out);
				if (isal_deflate(&z) != COMP_OK)
					die("isal_deflate failed");
				sink_put(s, out, sizeof(out) - z.avail_out);
			} while (z.avail_in > 0 || z.avail_out == 0 ||
				 (last && z.internal_state.state != ZSTATE_END));
			off += piece;
			if (last)
				break;
		}
		free(level_buf);
		s->members++;
		return;
	}
#endif
	die("engine not built into this floor program");
}

/* Independent members of MEMBER_PIECE input bytes each. */
static void run_members(enum engine e, int level, const unsigned char *in, size_t len,
			struct sink *s)
{
	size_t cap = compressBound(MEMBER_PIECE) + 1024;
	z_stream z;
	unsigned char *out, *level_buf = NULL;
#ifdef HAVE_LIBDEFLATE
	struct libdeflate_compressor *ld = NULL;
#endif
#ifdef HAVE_ISAL
	struct isal_zstream iz;
	size_t lb = 0;
#endif

	memset(&z, 0, sizeof(z));
	switch (e) {
	case ZLIB:
		if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
			die("deflateInit2 failed at level %d", level);
		break;
	case LIBDEFLATE:
#ifdef HAVE_LIBDEFLATE
		ld = libdeflate_alloc_compressor(level);
		if (ld == NULL)
			die("libdeflate_alloc_compressor(%d) failed", level);
		cap = libdeflate_gzip_compress_bound(ld, MEMBER_PIECE);
		break;
#else
		die("libdeflate is not built into this floor program");
#endif
	case ISAL:
#ifdef HAVE_ISAL
		lb = isal_level_buf_size(level);
		level_buf = lb ? malloc(lb) : NULL;
		if (lb && level_buf == NULL)
			die("out of memory");
		break;
#else
		die("isal is not built into this floor program");
#endif
	}
	out = malloc(cap);
	if (out == NULL)
		die("out of memory");
	for (size_t off = 0; off < len;) {
		size_t piece = len - off < MEMBER_PIECE ? len - off : MEMBER_PIECE;
		size_t n = 0;
		switch (e) {
		case ZLIB:
			if (deflateReset(&z) != Z_OK)
				die("deflateReset failed");
			z.next_in = (Bytef *)(in + off);
			z.avail_in = (uInt)piece;
			z.next_out = out;
			z.avail_out = (uInt)cap;
			if (deflate(&z, Z_FINISH) != Z_STREAM_END)
				die("deflate of a member failed");
			n = cap - z.avail_out;
			break;
#ifdef HAVE_LIBDEFLATE
		case LIBDEFLATE:
			n = libdeflate_gzip_compress(ld, in + off, piece, out, cap);
			if (n == 0)
				die("libdeflate_gzip_compress failed");
			break;
#endif
#ifdef HAVE_ISAL
		case ISAL:
			isal_deflate_stateless_init(&iz);
			iz.level = (uint32_t)level;
			iz.level_buf = level_buf;
			iz.level_buf_size = (uint32_t)lb;
			iz.gzip_flag = IGZIP_GZIP;
			iz.end_of_stream = 1;
			iz.flush = NO_FLUSH;
			iz.next_in = (uint8_t *)(in + off);
			iz.avail_in = (uint32_t)piece;
			iz.next_out = out;
			iz.avail_out = (uint32_t)cap;
			if (isal_deflate_stateless(&iz) != COMP_OK)
				die("isal_deflate_stateless failed");
			n = iz.total_out;
			break;
#endif
		default:
			die("engine not built into this floor program");
		}
		sink_put(s, out, n);
		s->members++;
		off += piece;
	}
	if (e == ZLIB)
		deflateEnd(&z);
#ifdef HAVE_LIBDEFLATE
	if (ld != NULL)
		libdeflate_free_compressor(ld);
#endif
	free(level_buf);
	free(out);
}

int main(int argc, char **argv)
{
	const char *keep_path = NULL;
	int opt;

	while ((opt = getopt(argc, argv, "o:")) != -1) {
		if (opt != 'o')
			die("usage: gzip_floor [-o OUT] FILE zlib|libdeflate|isal LEVEL "
			    "stream|members TRIES");
		keep_path = optarg;
	}
	if (argc - optind != 5)
		die("usage: gzip_floor [-o OUT] FILE zlib|libdeflate|isal LEVEL stream|members TRIES");
	const char *path = argv[optind], *ename = argv[optind + 1], *mode = argv[optind + 3];
	int level = atoi(argv[optind + 2]), tries = atoi(argv[optind + 4]);
	enum engine e;
	int lo, hi;

	if (strcmp(ename, "zlib") == 0) {
		e = ZLIB, lo = 1, hi = 9;
	} else if (strcmp(ename, "libdeflate") == 0) {
		e = LIBDEFLATE, lo = 1, hi = 12;
	} else if (strcmp(ename, "isal") == 0) {
		e = ISAL, lo = 0, hi = 3;
	} else {
		die("unknown engine %s", ename);
	}
	if (level < lo || level > hi)
		die("%s level %d is outside %d..%d", ename, level, lo, hi);
	int members = strcmp(mode, "members") == 0;
	if (!members && strcmp(mode, "stream") != 0)
		die("mode must be stream or members, not %s", mode);
	if (!members && e == LIBDEFLATE)
		die("libdeflate has no streaming interface: use members");
	if (tries < 1)
		die("TRIES must be at least 1");

	size_t len;
	unsigned char *in = read_file(path, &len);

	for (int t = 1; t <= tries; t++) {
		struct sink s = { 0 };
		if (t == 1 && keep_path != NULL) {
			s.cap = len / 2 + ((size_t)1 << 20);
			s.keep = malloc(s.cap);
			if (s.keep == NULL)
				die("out of memory");
		}
		double c0 = now(CLOCK_PROCESS_CPUTIME_ID), w0 = now(CLOCK_MONOTONIC);
		if (members)
			run_members(e, level, in, len, &s);
		else
			run_stream(e, level, in, len, &s);
		double cpu = now(CLOCK_PROCESS_CPUTIME_ID) - c0, wall = now(CLOCK_MONOTONIC) - w0;
		printf("{\"try\": %d, \"cpu_seconds\": %.6f, \"wall_seconds\": %.6f, "
		       "\"in_bytes\": %zu, \"out_bytes\": %llu, \"members\": %llu}\n",
		       t, cpu, wall, len, (unsigned long long)s.bytes,
		       (unsigned long long)s.members);
		fflush(stdout);
		if (s.keep != NULL) {
			FILE *f = fopen(keep_path, "wb");
			if (f == NULL || fwrite(s.keep, 1, s.kept, f) != s.kept || fclose(f) != 0)
				die("%s: %s", keep_path, strerror(errno));
			free(s.keep);
		}
	}
	free(in);
	return 0;
}
