/* fuzz_tzif.c - the cron engine's TZif reader (cron_tz_get) on arbitrary
 * zone files, and cron_next() in what it accepts.
 *
 * TZDIR points at a private directory; each input replaces its file
 * Fuzz/Zone (a new inode, so the zone cache reloads it).  Checks: offsets
 * stay within +-26 hours; a local time maps to 0, 1 or 2 instants that show
 * that local time (or, in a gap, the jump is reported); the next occurrence
 * of a few schedules is after the start and stable when asked again.
 *
 * The reader refuses zones whose offset changes come closer together than
 * the steps they make (tests/fuzz/regressions/tzif/), so every zone it
 * accepts gets the schedule checks.
 */
#include "config.h"

#include <fcntl.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cron.h"
#include "cron_tz.h"
#include "fuzz.h"

static char dir[64], zone_dir[96], zone_path[128], tmp_path[128];

static void cleanup(void)
{
	unlink(zone_path);
	unlink(tmp_path);
	rmdir(zone_dir);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	snprintf(dir, sizeof(dir), "/tmp/mab-fuzz-tzif-XXXXXX");
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(zone_dir, sizeof(zone_dir), "%s/Fuzz", dir);
	snprintf(zone_path, sizeof(zone_path), "%s/Zone", zone_dir);
	snprintf(tmp_path, sizeof(tmp_path), "%s/Zone.tmp", zone_dir);
	if (mkdir(zone_dir, 0700) != 0 || setenv("TZDIR", dir, 1) != 0)
		abort();
	atexit(cleanup);
	return 0;
}

static const char *const exprs[] = { "0 3 * * *", "*/17 * * * *", "30 2 * * 0", "0 0 L * *" };
static const int64_t starts[] = { 0, 1700000000, 4102444800LL, -2208988800LL };

static void check_zone(const struct cron_tz *z)
{
	for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++) {
		int64_t t = starts[i], when;
		long off = cron_tz_offset(z, t), before, after;
		struct cron_tz_local loc;

		FUZZ_CHECK(off > -26 * 3600 && off < 26 * 3600, "offset %ld", off);
		cron_tz_local(z, t + off, &loc);
		FUZZ_CHECK(loc.count >= 0 && loc.count <= 2, "count %d", loc.count);
		for (int k = 0; k < loc.count; k++)
			FUZZ_CHECK(loc.when[k] + loc.offset[k] == t + off,
				   "instant %lld + %ld does not show local %lld",
				   (long long)loc.when[k], loc.offset[k], (long long)(t + off));
		if (cron_tz_next_change(z, t, &when, &before, &after) == 0)
			FUZZ_CHECK(when > t && before != after,
				   "change at %lld after %lld: %ld -> %ld", (long long)when,
				   (long long)t, before, after);
	}
}

static void check_schedules(void)
{
	for (size_t i = 0; i < sizeof(exprs) / sizeof(exprs[0]); i++) {
		struct cron_expr e;
		char err[256];

		if (cron_parse(exprs[i], &e, err, sizeof(err)) != 0)
			abort();
		for (size_t j = 0; j < sizeof(starts) / sizeof(starts[0]); j++) {
			time_t next, again;
			int rc = cron_next(&e, "Fuzz/Zone", (time_t)starts[j], &next, err,
					   sizeof(err));
			FUZZ_CHECK(rc == 0 || rc == 1, "cron_next: %d: %s", rc, err);
			if (rc != 0)
				continue;
			FUZZ_CHECK((int64_t)next > starts[j], "'%s': next %lld not after %lld",
				   exprs[i], (long long)next, (long long)starts[j]);
			rc = cron_next(&e, "Fuzz/Zone", next - 1, &again, err, sizeof(err));
			FUZZ_CHECK(rc == 0 && again == next,
				   "'%s' from %lld: %lld, but from one second before: %d %lld",
				   exprs[i], (long long)starts[j], (long long)next, rc,
				   (long long)again);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct cron_tz *z;
	char err[512];
	int fd;

	if (size > 64 * 1024)
		return 0;
	if (dir[0] == '\0')
		LLVMFuzzerInitialize(NULL, NULL);
	fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		abort();
	for (size_t done = 0; done < size;) {
		ssize_t n = write(fd, data + done, size - done);
		if (n <= 0)
			abort();
		done += (size_t)n;
	}
	close(fd);
	if (rename(tmp_path, zone_path) != 0)
		abort();
	z = cron_tz_get("Fuzz/Zone", err, sizeof(err));
	if (z == NULL) {
		FUZZ_CHECK(err[0] != '\0', "refused without a reason");
		return 0;
	}
	check_zone(z);
	check_schedules();
	return 0;
}
