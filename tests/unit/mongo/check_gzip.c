/* check_gzip.c - the export's gzip writer (src/mongo/gzip_*.c): every
 * engine built in, streamed and in members, with and without threads,
 * gunzips to exactly the bytes written; member counts are what the
 * layout promises; a reader that goes away is EPIPE, not a hang. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include "gzip_out.h"

/* Compressible but not trivial: numbered records with some noise, like
 * BSON documents of a real collection. */
static unsigned char *make_input(size_t len)
{
	unsigned char *buf = malloc(len ? len : 1);
	uint32_t x = 12345;
	size_t i = 0;

	ck_assert_ptr_nonnull(buf);
	while (i < len) {
		char rec[96];
		x = x * 1103515245u + 12345u;
		int n = snprintf(rec, sizeof(rec), "{_id:%zu,name:\"user%u\",v:%u}", i,
				 (x >> 16) % 5000, x);
		for (int k = 0; k < n && i < len; k++)
			buf[i++] = (unsigned char)rec[k];
	}
	return buf;
}

/* gunzips every member in data; returns the members counted, -1 on any
 * error (bad data, a truncated member, stray bytes). */
static long gunzip_all(const unsigned char *data, size_t len, unsigned char **out,
		       size_t *out_len)
{
	z_stream z;
	size_t cap = 1 << 20, n = 0;
	long members = 0;
	unsigned char *buf = malloc(cap);

	memset(&z, 0, sizeof(z));
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(inflateInit2(&z, 15 + 16), Z_OK);
	z.next_in = (Bytef *)data;
	z.avail_in = (uInt)len;
	while (z.avail_in > 0) {
		int rc;
		do {
			if (cap - n < 65536) {
				cap *= 2;
				buf = realloc(buf, cap);
				ck_assert_ptr_nonnull(buf);
			}
			z.next_out = buf + n;
			z.avail_out = (uInt)(cap - n);
			rc = inflate(&z, Z_NO_FLUSH);
			n = cap - z.avail_out;
		} while (rc == Z_OK);
		if (rc != Z_STREAM_END) {
			members = -1;
			break;
		}
		members++;
		inflateReset(&z);
	}
	inflateEnd(&z);
	*out = buf;
	*out_len = n;
	return members;
}

static void round_trip(enum gzip_engine engine, int level, int threads, size_t len)
{
	struct gzip_settings s = { .engine = engine, .level = level, .threads = threads };
	struct gzip_out g;
	unsigned char *in = make_input(len), *back = NULL, *packed;
	size_t back_len = 0;
	int fd = memfd_create("gz", 0);
	uint32_t x = 7;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(gzip_out_init(&g, fd, &s), 0);
	/* Writes of uneven sizes, as documents come. */
	for (size_t off = 0; off < len;) {
		x = x * 1103515245u + 12345u;
		size_t step = 1 + (x >> 8) % 70000;
		if (step > len - off)
			step = len - off;
		ck_assert_int_eq(gzip_out_write(&g, in + off, step), 0);
		off += step;
	}
	ck_assert_int_eq(gzip_out_finish(&g), 0);
	ck_assert_uint_eq(g.bytes_in, len);
	off_t size = lseek(fd, 0, SEEK_END);
	ck_assert_uint_eq((uint64_t)size, g.bytes_out);
	packed = malloc((size_t)size);
	ck_assert_ptr_nonnull(packed);
	ck_assert_int_eq(pread(fd, packed, (size_t)size, 0), size);
	long members = gunzip_all(packed, (size_t)size, &back, &back_len);
	ck_assert_msg(members > 0, "%s level %d threads %d len %zu: not valid gzip",
		      gzip_engine_name(engine), level, threads, len);
	ck_assert_uint_eq(back_len, len);
	ck_assert_msg(len == 0 || memcmp(back, in, len) == 0, "%s: the bytes differ",
		      gzip_engine_name(engine));
	ck_assert_uint_eq((uint64_t)members, g.members);
	long want = 1;
	if (threads > 1 || engine == GZIP_ENGINE_LIBDEFLATE)
		want = len == 0 ? 1 : (long)((len + GZIP_MEMBER_SIZE - 1) / GZIP_MEMBER_SIZE);
	ck_assert_int_eq(members, want);
	gzip_out_free(&g);
	close(fd);
	free(in);
	free(back);
	free(packed);
}

static const size_t sizes[] = {
	0, 1, GZIP_MEMBER_SIZE - 1, GZIP_MEMBER_SIZE, GZIP_MEMBER_SIZE + 1,
	5 * GZIP_MEMBER_SIZE + GZIP_MEMBER_SIZE / 2,
};

static void every_shape(enum gzip_engine engine)
{
	int min, max, dflt;

	if (!gzip_engine_built_in(engine))
		return;
	gzip_engine_levels(engine, &min, &max, &dflt);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		round_trip(engine, dflt, 1, sizes[i]);
		round_trip(engine, dflt, 2, sizes[i]);
		round_trip(engine, dflt, 5, sizes[i]);
	}
	round_trip(engine, min, 3, 3 * GZIP_MEMBER_SIZE + 17);
	round_trip(engine, max, 3, 3 * GZIP_MEMBER_SIZE + 17);
	round_trip(engine, min, 1, GZIP_MEMBER_SIZE + 17);
}

START_TEST(zlib_round_trips) { every_shape(GZIP_ENGINE_ZLIB); }
END_TEST

START_TEST(libdeflate_round_trips)
{
	if (!gzip_engine_built_in(GZIP_ENGINE_LIBDEFLATE))
		return;
	every_shape(GZIP_ENGINE_LIBDEFLATE);
}
END_TEST

START_TEST(isal_round_trips)
{
	if (!gzip_engine_built_in(GZIP_ENGINE_ISAL))
		return;
	every_shape(GZIP_ENGINE_ISAL);
}
END_TEST

START_TEST(bad_settings_refused)
{
	struct gzip_out g;
	struct gzip_settings zlib10 = { GZIP_ENGINE_ZLIB, 10, 1 };
	struct gzip_settings zlib0 = { GZIP_ENGINE_ZLIB, 0, 2 };
	struct gzip_settings isal4 = { GZIP_ENGINE_ISAL, 4, 1 };
	struct gzip_settings nothing = { GZIP_ENGINE_COUNT, 1, 1 };

	errno = 0;
	ck_assert_int_eq(gzip_out_init(&g, 1, &zlib10), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(gzip_out_init(&g, 1, &zlib0), -1);
	ck_assert_int_eq(gzip_out_init(&g, 1, &isal4), -1);
	ck_assert_int_eq(gzip_out_init(&g, 1, &nothing), -1);
	gzip_out_free(&g);
}
END_TEST

/* The reader (upload-blob) died: the writer must say EPIPE, in every mode,
 * and free without hanging on its threads. */
static void reader_gone(enum gzip_engine engine, int threads)
{
	struct gzip_settings s = { .engine = engine, .threads = threads };
	struct gzip_out g;
	int p[2], min, max, rc = 0;
	size_t len = 8 * GZIP_MEMBER_SIZE;
	unsigned char *in = make_input(len);

	if (!gzip_engine_built_in(engine))
		return;
	gzip_engine_levels(engine, &min, &max, &s.level);
	ck_assert_int_eq(pipe(p), 0);
	close(p[0]);
	ck_assert_int_eq(gzip_out_init(&g, p[1], &s), 0);
	for (size_t off = 0; off < len && rc == 0; off += 65536)
		rc = gzip_out_write(&g, in + off, 65536);
	if (rc == 0)
		rc = gzip_out_finish(&g);
	ck_assert_int_eq(rc, -1);
	ck_assert_int_eq(errno, EPIPE);
	gzip_out_free(&g);
	close(p[1]);
	free(in);
}

START_TEST(reader_gone_is_epipe)
{
	signal(SIGPIPE, SIG_IGN);
	for (int e = 0; e < GZIP_ENGINE_COUNT; e++) {
		reader_gone((enum gzip_engine)e, 1);
		reader_gone((enum gzip_engine)e, 4);
	}
}
END_TEST

START_TEST(engine_names_and_defaults)
{
	int min, max, dflt;

	ck_assert_int_eq(gzip_engine_from_name("zlib"), GZIP_ENGINE_ZLIB);
	ck_assert_int_eq(gzip_engine_from_name("LibDeflate"), GZIP_ENGINE_LIBDEFLATE);
	ck_assert_int_eq(gzip_engine_from_name("isal"), GZIP_ENGINE_ISAL);
	ck_assert_int_eq(gzip_engine_from_name("zstd"), -1);
	gzip_engine_levels(GZIP_ENGINE_LIBDEFLATE, &min, &max, &dflt);
	ck_assert(min == 1 && max == 12 && dflt == 6);
	gzip_engine_levels(GZIP_ENGINE_ISAL, &min, &max, &dflt);
	ck_assert(min == 0 && max == 3);
#ifdef HAVE_LIBDEFLATE
	ck_assert_int_eq(gzip_engine_default(), GZIP_ENGINE_LIBDEFLATE);
#else
	ck_assert_int_eq(gzip_engine_default(), GZIP_ENGINE_ZLIB);
#endif
	cpu_set_t set;
	ck_assert_int_eq(sched_getaffinity(0, sizeof(set), &set), 0);
	long cpus = CPU_COUNT(&set);
	int auto_threads = gzip_threads_resolve(0);
	ck_assert_int_ge(auto_threads, 1);
	ck_assert_int_le(auto_threads, GZIP_AUTO_THREADS_MAX);
	ck_assert_int_eq(auto_threads, cpus < GZIP_AUTO_THREADS_MAX ? (int)cpus
								      : GZIP_AUTO_THREADS_MAX);
	ck_assert_int_eq(gzip_threads_resolve(3), 3);
	ck_assert_int_eq(gzip_threads_resolve(1000), GZIP_THREADS_MAX);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("gzip");
	TCase *tc = tcase_create("gzip");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, engine_names_and_defaults);
	tcase_add_test(tc, zlib_round_trips);
	tcase_add_test(tc, libdeflate_round_trips);
	tcase_add_test(tc, isal_round_trips);
	tcase_add_test(tc, bad_settings_refused);
	tcase_add_test(tc, reader_gone_is_epipe);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
