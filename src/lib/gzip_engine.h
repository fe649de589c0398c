/* gzip_engine.h - the gzip engines this build has: their names, level
 * ranges and defaults, and the default engine.  Only facts live here (the
 * configuration and -t read them); the compressing is in
 * src/mongo/gzip_out.c.
 */
#ifndef MAB_GZIP_ENGINE_H
#define MAB_GZIP_ENGINE_H

#include <stdbool.h>

enum gzip_engine {
	GZIP_ENGINE_ZLIB,
	GZIP_ENGINE_LIBDEFLATE,
	GZIP_ENGINE_ISAL,
	GZIP_ENGINE_COUNT
};

/* Bytes of input in each independent gzip member when members are
 * compressed apart (threads, or an engine without streaming). */
#define GZIP_MEMBER_SIZE (1024 * 1024)
/* threads = auto takes the online CPUs, at most this many: each thread
 * holds two members in flight (in and out), so this bounds the memory. */
#define GZIP_AUTO_THREADS_MAX 8
#define GZIP_THREADS_MAX 16

const char *gzip_engine_name(enum gzip_engine e);
/* -1 when name is not an engine's name (built in or not). */
int gzip_engine_from_name(const char *name);
bool gzip_engine_built_in(enum gzip_engine e);
void gzip_engine_levels(enum gzip_engine e, int *min, int *max, int *dflt);
/* The engine used when the configuration names none. */
enum gzip_engine gzip_engine_default(void);
/* "zlib, libdeflate, isal": the engines built in, for messages and -V. */
const char *gzip_engines_built_in(void);
/* threads = 0 (auto): the CPUs this process may use, 1..GZIP_AUTO_THREADS_MAX;
 * more than GZIP_THREADS_MAX: that many. */
int gzip_threads_resolve(int threads);

#endif
