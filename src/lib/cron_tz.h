/* cron_tz.h - time zones for the cron engine: UTC offsets and their changes,
 * read from the system's TZif files, and the civil calendar arithmetic the
 * engine shares with them.
 *
 * A zone is named as in the IANA database ("Europe/Berlin"); its file is
 * $TZDIR/NAME or /usr/share/zoneinfo/NAME.  "UTC" and "Etc/UTC" are built in.
 * TZif versions 1 to 4 are read; after the last transition of the table the
 * POSIX TZ string of the footer ("EST5EDT,M3.2.0,M11.1.0") decides.  Zones
 * with leap seconds (the right/ tree) are refused.
 *
 * Parsed zones are cached by file name and reloaded when the file changes.
 * Nothing here touches TZ, tzset() or other process-wide state; the cache
 * itself is not thread-safe.
 */
#ifndef MAB_CRON_TZ_H
#define MAB_CRON_TZ_H

#include <stddef.h>
#include <stdint.h>

struct cron_tz;

/* What a local wall-clock time means in a zone. */
struct cron_tz_local {
	int count;		/* instants showing this local time: 0 (gap), 1 or 2 */
	int64_t when[2];	/* the instants, earlier first */
	long offset[2];		/* their UTC offsets, seconds east */
	int64_t transition;	/* gap: the instant the clock jumped over it;
				 * two instants: the change between them */
};

/* The zone, from the cache or its file; NULL with the reason in err.  The
 * pointer stays valid until the next call. */
const struct cron_tz *cron_tz_get(const char *name, char *err, size_t errlen);
/* UTC offset in seconds east of Greenwich at instant t (UTC seconds). */
long cron_tz_offset(const struct cron_tz *z, int64_t t);
/* The first change of UTC offset strictly after t: 0 with *when, *before
 * and *after set, or 1 when the offset never changes again. */
int cron_tz_next_change(const struct cron_tz *z, int64_t t, int64_t *when,
			long *before, long *after);
/* Resolves local time `local` (seconds since 1970-01-01 00:00 on the
 * zone's wall clock). */
void cron_tz_local(const struct cron_tz *z, int64_t local, struct cron_tz_local *out);

/* Proleptic Gregorian calendar; days are counted from 1970-01-01. */
int64_t cron_days_from_civil(int64_t year, int month, int day);
void cron_civil_from_days(int64_t days, int64_t *year, int *month, int *day);
int cron_days_in_month(int64_t year, int month);
/* 0 = Sunday ... 6 = Saturday. */
int cron_weekday(int64_t days);

#endif
