/* cron.h - the schedule: cron expressions as the Cronos library (the .NET
 * worker's scheduler) understood them, and their next occurrence in a time
 * zone.
 *
 * Five fields (minute hour day-of-month month day-of-week; second 0) or six
 * (second first), told apart by their count, or a macro: @every_second,
 * @every_minute, @hourly, @daily, @midnight, @weekly, @monthly, @yearly,
 * @annually.  Lists, ranges, steps, names (JAN, SUN: three letters), '?' as
 * '*', reversed ranges that wrap (22-1), L, L-n, nW, LW, L-nW in day of
 * month, nL and n#k in day of week; case-insensitive.  Day of month and day
 * of week must BOTH match (Cronos), unlike Vixie cron's either-or.
 *
 * Daylight saving time: a local time the clock skips fires once, at the
 * jump.  In a repeated hour an "interval" expression (its second, minute or
 * hour field holds *, ?, a range or a step) fires in both passes; any other
 * fires in the first pass only.
 */
#ifndef MAB_CRON_H
#define MAB_CRON_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define CRON_DOM_LAST	0x01	/* L or L-n: day = last day - dom_offset */
#define CRON_DOM_NEAREST 0x02	/* W: the weekday nearest the day */
#define CRON_DOW_LAST	0x04	/* nL: the last such weekday of the month */
#define CRON_DOW_NTH	0x08	/* n#k: the k-th such weekday (dow_nth) */
#define CRON_INTERVAL	0x10	/* fires in both passes of a repeated hour */

/* Filled by cron_parse; bit v set means value v matches. */
struct cron_expr {
	uint64_t second;	/* bits 0-59 */
	uint64_t minute;	/* bits 0-59 */
	uint32_t hour;		/* bits 0-23 */
	uint32_t dom;		/* bits 1-31 */
	uint16_t month;		/* bits 1-12 */
	uint8_t dow;		/* bits 0-6, 0 = Sunday */
	uint8_t flags;		/* CRON_* */
	uint8_t dom_offset;	/* n of L-n */
	uint8_t dow_nth;	/* k of n#k */
};

/* 0, or -1 with a message that names the field and quotes the offending
 * text, e.g. "hour field: '7-25': value must be 0 to 23". */
int cron_parse(const char *text, struct cron_expr *out, char *err, size_t errlen);
/* The next occurrence strictly after `after` in time zone tz (an IANA name;
 * "UTC" works without zone files): 0 with *next set, 1 when there is none up
 * to the end of year 9999 (local), -1 with a message when the zone is
 * unknown or unreadable. */
int cron_next(const struct cron_expr *e, const char *tz, time_t after, time_t *next,
	      char *err, size_t errlen);
/* 0 if tz names a usable time zone, else -1 with the reason. */
int cron_zone_check(const char *tz, char *err, size_t errlen);

#endif
