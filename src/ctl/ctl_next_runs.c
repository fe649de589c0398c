/* ctl_next_runs.c - `mongo-azure-backupctl next-runs`: the next times of
 * the configured schedule (or of an expression given), in a time zone.
 */
#include "config.h"

#include <bson/bson.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "control_client.h"
#include "cron.h"
#include "cron_tz.h"
#include "ctl_commands.h"
#include "iso8601.h"
#include "mab_config.h"
#include "no_core.h"
#include "ctl_tool.h"

/* ---- next-runs --------------------------------------------------------- */

int tool_cmd_next_runs(struct ctl *c, struct next_args *a)
{
	struct cron_expr e;
	struct iso8601 from;
	char err[512], buf[64];
	const char *expr = a->expr, *tz = a->tz;
	int64_t after;
	long count = 5;
	int r;

	if (a->count != NULL) {
		char *end;
		errno = 0;
		count = strtol(a->count, &end, 10);
		if (errno != 0 || end == a->count || *end != '\0' || count < 1 || count > 1000)
			return usage_error("--count: '%s' is not a whole number from 1 to 1000",
					   a->count);
	}
	if (expr == NULL || tz == NULL) {
		r = load_config(c);
		if (r != EXIT_OK)
			return r;
		if (c->cfg_problems > 0) {
			fprintf(stderr, PROG ": %s: %d configuration problem%s\n", c->conf_path,
				c->cfg_problems, c->cfg_problems == 1 ? "" : "s");
			return EXIT_USAGE;
		}
		if (expr == NULL)
			expr = c->cfg.cron;
		if (tz == NULL)
			tz = c->cfg.timezone;
	}
	if (cron_zone_check(tz, err, sizeof(err)) != 0) {
		fprintf(stderr, PROG ": --tz: %s\n", err);
		return EXIT_USAGE;
	}
	if (cron_parse(expr, &e, err, sizeof(err)) != 0) {
		fprintf(stderr, PROG ": %s\n", err);
		return EXIT_USAGE;
	}
	if (a->from != NULL) {
		if (iso8601_parse(a->from, &from, err, sizeof(err)) != 0 ||
		    iso8601_instant(&from, tz, &after, err, sizeof(err)) != 0) {
			fprintf(stderr, PROG ": --from: %s\n", err);
			return EXIT_USAGE;
		}
	} else {
		after = (int64_t)time(NULL);
	}
	for (long i = 0; i < count; i++) {
		time_t next;
		const struct cron_tz *z;

		r = cron_next(&e, tz, (time_t)after, &next, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, PROG ": %s\n", err);
			return EXIT_USAGE;
		}
		if (r > 0) {
			fprintf(stderr, i == 0 ? "no occurrence\n" : "no further occurrence\n");
			return i == 0 ? EXIT_FAILED : EXIT_OK;
		}
		z = cron_tz_get(tz, err, sizeof(err));
		if (z == NULL) {
			fprintf(stderr, PROG ": %s\n", err);
			return EXIT_USAGE;
		}
		iso8601_format(next, cron_tz_offset(z, next), buf, sizeof(buf));
		puts(buf);
		after = next;
	}
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
}
