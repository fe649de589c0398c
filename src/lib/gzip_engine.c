/* gzip_engine.c - which gzip engines exist in this build, and their levels.
 *
 * The default engine is the fastest one built in whose output at its own
 * default level stays within 3 % of zlib 6's size (docs/PERFORMANCE.md has
 * the measurements): libdeflate 6 does (0.5 % larger from 1 MiB
 * members, at twice zlib's speed); ISA-L's best level is some 13 % larger,
 * so it is chosen only by name.
 */
#include "config.h"

#include <sched.h>
#include <strings.h>
#include <unistd.h>

#include "gzip_engine.h"

static const struct {
	const char *name;
	int min, max, dflt;
} engines[GZIP_ENGINE_COUNT] = {
	[GZIP_ENGINE_ZLIB] = { "zlib", 1, 9, 6 },
	[GZIP_ENGINE_LIBDEFLATE] = { "libdeflate", 1, 12, 6 },
	[GZIP_ENGINE_ISAL] = { "isal", 0, 3, 1 },
};

const char *gzip_engine_name(enum gzip_engine e)
{
	return (unsigned)e < GZIP_ENGINE_COUNT ? engines[e].name : "?";
}

int gzip_engine_from_name(const char *name)
{
	for (int e = 0; e < GZIP_ENGINE_COUNT; e++)
		if (strcasecmp(name, engines[e].name) == 0)
			return e;
	return -1;
}

bool gzip_engine_built_in(enum gzip_engine e)
{
	switch (e) {
	case GZIP_ENGINE_ZLIB:
		return true;
	case GZIP_ENGINE_LIBDEFLATE:
#ifdef HAVE_LIBDEFLATE
		return true;
#else
		return false;
#endif
	case GZIP_ENGINE_ISAL:
#ifdef HAVE_ISAL
		return true;
#else
		return false;
#endif
	default:
		return false;
	}
}

void gzip_engine_levels(enum gzip_engine e, int *min, int *max, int *dflt)
{
	if ((unsigned)e >= GZIP_ENGINE_COUNT)
		e = GZIP_ENGINE_ZLIB;
	*min = engines[e].min;
	*max = engines[e].max;
	*dflt = engines[e].dflt;
}

enum gzip_engine gzip_engine_default(void)
{
	return gzip_engine_built_in(GZIP_ENGINE_LIBDEFLATE) ? GZIP_ENGINE_LIBDEFLATE
							     : GZIP_ENGINE_ZLIB;
}

const char *gzip_engines_built_in(void)
{
#if defined(HAVE_LIBDEFLATE) && defined(HAVE_ISAL)
	return "zlib, libdeflate, isal";
#elif defined(HAVE_LIBDEFLATE)
	return "zlib, libdeflate";
#elif defined(HAVE_ISAL)
	return "zlib, isal";
#else
	return "zlib";
#endif
}

int gzip_threads_resolve(int threads)
{
	if (threads > 0)
		return threads > GZIP_THREADS_MAX ? GZIP_THREADS_MAX : threads;
	/* The CPUs this process may run on (taskset, cpusets), not all the
	 * machine has. */
	cpu_set_t set;
	long cpus = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set)
								 : sysconf(_SC_NPROCESSORS_ONLN);
	if (cpus < 1)
		return 1;
	return cpus > GZIP_AUTO_THREADS_MAX ? GZIP_AUTO_THREADS_MAX : (int)cpus;
}
