/* iso8601.c - reading and writing the one date-time form the admin tool
 * uses, with the calendar arithmetic of the cron engine (cron_tz.h), so the
 * tool and the scheduler agree on every date and zone.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cron_tz.h"
#include "iso8601.h"

#define FORM "YYYY-MM-DDTHH:MM:SS with optional Z or +HH:MM"

/* n digits at p, or -1. */
static int digits(const char *p, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

int iso8601_parse(const char *text, struct iso8601 *out, char *err, size_t errlen)
{
	const char *p = text;
	const char *why = NULL;
	size_t len = strlen(text);

	memset(out, 0, sizeof(*out));
	if (len < 19 || p[4] != '-' || p[7] != '-' || p[10] != 'T' || p[13] != ':' ||
	    p[16] != ':')
		goto bad;
	out->year = digits(p, 4);
	out->month = digits(p + 5, 2);
	out->day = digits(p + 8, 2);
	out->hour = digits(p + 11, 2);
	out->minute = digits(p + 14, 2);
	out->second = digits(p + 17, 2);
	if (out->year < 0 || out->month < 0 || out->day < 0 || out->hour < 0 ||
	    out->minute < 0 || out->second < 0)
		goto bad;
	p += 19;
	if (strcmp(p, "Z") == 0) {
		out->has_offset = true;
	} else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
		int h = digits(p + 1, 2), m = digits(p + 4, 2);
		if (h < 0 || m < 0)
			goto bad;
		if (h > 23 || m > 59) {
			why = "UTC offset out of range";
			goto bad;
		}
		out->has_offset = true;
		out->offset = (*p == '-' ? -1 : 1) * (long)(h * 3600 + m * 60);
	} else if (*p != '\0') {
		goto bad;
	}
	if (out->year < 1)
		why = "year must be 0001 to 9999";
	else if (out->month < 1 || out->month > 12)
		why = "month must be 01 to 12";
	else if (out->day < 1 || out->day > cron_days_in_month(out->year, out->month))
		why = "no such day in that month";
	else if (out->hour > 23)
		why = "hour must be 00 to 23";
	else if (out->minute > 59)
		why = "minute must be 00 to 59";
	else if (out->second > 59)
		why = "second must be 00 to 59";
	if (why != NULL)
		goto bad;
	return 0;
bad:
	snprintf(err, errlen, "'%s': %s", text, why != NULL ? why : "expected " FORM);
	return -1;
}

static int64_t wall_seconds(const struct iso8601 *t)
{
	return cron_days_from_civil(t->year, t->month, t->day) * 86400 +
	       t->hour * 3600 + t->minute * 60 + t->second;
}

int iso8601_instant(const struct iso8601 *t, const char *tz, int64_t *out,
		    char *err, size_t errlen)
{
	int64_t wall = wall_seconds(t);
	const struct cron_tz *z;
	struct cron_tz_local local;

	if (t->has_offset) {
		*out = wall - t->offset;
		return 0;
	}
	z = cron_tz_get(tz, err, errlen);
	if (z == NULL)
		return -1;
	cron_tz_local(z, wall, &local);
	if (local.count > 0)
		*out = local.when[0];
	else
		*out = wall - cron_tz_offset(z, local.transition - 1);
	return 0;
}

/* Floor division: instants before 1970 still land on the right day. */
static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

void iso8601_format(int64_t t, long offset, char *buf, size_t len)
{
	int64_t wall = t + offset, days = floor_div(wall, 86400), year;
	long secs = (long)(wall - days * 86400), off = offset < 0 ? -offset : offset;
	int month, day;

	cron_civil_from_days(days, &year, &month, &day);
	if (off % 60 != 0)	/* local mean time of old zone data */
		snprintf(buf, len, "%04lld-%02d-%02dT%02ld:%02ld:%02ld%c%02ld:%02ld:%02ld",
			 (long long)year, month, day, secs / 3600, secs / 60 % 60, secs % 60,
			 offset < 0 ? '-' : '+', off / 3600, off / 60 % 60, off % 60);
	else
		snprintf(buf, len, "%04lld-%02d-%02dT%02ld:%02ld:%02ld%c%02ld:%02ld",
			 (long long)year, month, day, secs / 3600, secs / 60 % 60, secs % 60,
			 offset < 0 ? '-' : '+', off / 3600, off / 60 % 60);
}
