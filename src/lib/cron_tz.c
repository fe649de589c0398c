/* cron_tz.c - TZif files, POSIX TZ rules and the zone cache of the cron
 * engine.
 *
 * A zone is kept as its list of offset changes (transitions that change
 * nothing but the abbreviation or the DST flag are dropped) plus the footer
 * rule, which governs every instant after the last transition of the file.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cron_tz.h"

#define TZ_DEFAULT_DIR "/usr/share/zoneinfo"
#define TZ_NAME_MAX 255
#define TZ_FILE_MAX (1024 * 1024)
#define TZ_COUNT_MAX 100000
#define TZ_CACHE_SLOTS 8
/* RFC 8536: offsets lie within -25:59:59 .. +25:59:59. */
#define TZ_OFFSET_MIN (-93599L)
#define TZ_OFFSET_MAX 93599L
/* Transition times beyond 2^59 s (18 billion years) either way are
 * refused: zic writes none (its earliest, the Big Bang, is -2^59), and the
 * footer's calendar arithmetic, which starts right after the last one,
 * would overflow near 2^63. */
#define TZ_TIME_LIMIT (INT64_C(1) << 59)
#define DAY 86400

/* One date of a POSIX rule (Jn, n or Mm.w.d) and its local time of day. */
struct rule_date {
	char kind;		/* 'J': 1..365 without Feb 29, 'D': 0..365, 'M' */
	int day;		/* for J and D */
	int month, week, wday;	/* for M; week 5 means the last */
	long time;		/* seconds after midnight, may be < 0 or > 24 h */
};

struct tz_rule {
	bool present;
	bool has_dst;
	long std_off, dst_off;	/* seconds east of Greenwich */
	struct rule_date start, end;
};

struct cron_tz {
	size_t count;		/* offset changes */
	int64_t *at;		/* their instants, ascending */
	long *off;		/* the offset from at[i] on */
	long first_off;		/* before at[0] */
	bool has_table;		/* the file listed transitions */
	int64_t table_end;	/* its last transition; the rule governs after it */
	struct tz_rule rule;
};

struct tz_slot {
	char *path;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	struct cron_tz *zone;
};

static const struct cron_tz utc_zone;	/* no changes, offset 0 */
static struct tz_slot cache[TZ_CACHE_SLOTS];
static unsigned cache_victim;

/* Calendar */

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static bool is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Counts in 400-year eras of a calendar whose year starts on March 1, so
 * that the leap day is the last day of its year. */
int64_t cron_days_from_civil(int64_t year, int month, int day)
{
	int64_t y = month <= 2 ? year - 1 : year;
	int64_t era = floor_div(y, 400);
	int64_t yoe = y - era * 400;				/* 0..399 */
	int64_t mp = month > 2 ? month - 3 : month + 9;		/* March = 0 */
	int64_t doy = (153 * mp + 2) / 5 + day - 1;		/* 0..365 */
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;	/* 0..146096 */

	return era * 146097 + doe - 719468;	/* 719468: 0000-03-01 to 1970-01-01 */
}

void cron_civil_from_days(int64_t days, int64_t *year, int *month, int *day)
{
	int64_t z = days + 719468;
	int64_t era = floor_div(z, 146097);
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	int m = (int)(mp < 10 ? mp + 3 : mp - 9);

	*day = (int)(doy - (153 * mp + 2) / 5 + 1);
	*month = m;
	*year = yoe + era * 400 + (m <= 2 ? 1 : 0);
}

int cron_days_in_month(int64_t year, int month)
{
	static const int len[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return month == 2 && is_leap(year) ? 29 : len[month - 1];
}

int cron_weekday(int64_t days)
{
	return (int)(((days % 7) + 7 + 4) % 7);	/* 1970-01-01 was a Thursday */
}

/* POSIX TZ rules */

static const char *rule_name(const char *s)
{
	const char *b;

	if (*s == '<') {
		for (b = ++s; *s != '>'; s++)
			if (!isalnum((unsigned char)*s) && *s != '+' && *s != '-')
				return NULL;
		return s > b ? s + 1 : NULL;
	}
	for (b = s; isalpha((unsigned char)*s); s++)
		;
	return s - b >= 3 ? s : NULL;
}

/* [+-]h[h[h]][:mm[:ss]] with at most max_hours hours. */
static const char *rule_hms(const char *s, int max_hours, long *out)
{
	long sign = 1, h = 0, m = 0, sec = 0;
	int n = 0;

	if (*s == '+' || *s == '-')
		sign = *s++ == '-' ? -1 : 1;
	for (; isdigit((unsigned char)*s) && n < 3; s++, n++)
		h = h * 10 + (*s - '0');
	if (n == 0 || isdigit((unsigned char)*s) || h > max_hours)
		return NULL;
	for (int part = 0; part < 2 && *s == ':'; part++) {
		long v;

		if (!isdigit((unsigned char)s[1]) || !isdigit((unsigned char)s[2]))
			return NULL;
		v = (s[1] - '0') * 10 + (s[2] - '0');
		if (v > 59)
			return NULL;
		if (part == 0)
			m = v;
		else
			sec = v;
		s += 3;
	}
	*out = sign * (h * 3600 + m * 60 + sec);
	return s;
}

static const char *rule_num(const char *s, int lo, int hi, int *out)
{
	int v = 0, n = 0;

	for (; isdigit((unsigned char)*s) && n < 4; s++, n++)
		v = v * 10 + (*s - '0');
	if (n == 0 || v < lo || v > hi)
		return NULL;
	*out = v;
	return s;
}

static const char *rule_date(const char *s, struct rule_date *d)
{
	d->time = 2 * 3600;
	if (*s == 'J') {
		d->kind = 'J';
		s = rule_num(s + 1, 1, 365, &d->day);
	} else if (*s == 'M') {
		d->kind = 'M';
		if ((s = rule_num(s + 1, 1, 12, &d->month)) == NULL || *s != '.' ||
		    (s = rule_num(s + 1, 1, 5, &d->week)) == NULL || *s != '.')
			return NULL;
		s = rule_num(s + 1, 0, 6, &d->wday);
	} else {
		d->kind = 'D';
		s = rule_num(s, 0, 365, &d->day);
	}
	if (s != NULL && *s == '/')
		s = rule_hms(s + 1, 167, &d->time);	/* RFC 8536 allows -167..167 h */
	return s;
}

/* std offset [dst [offset] [,start[/time],end[/time]]]; POSIX offsets count
 * hours west, ours seconds east. */
static int rule_parse(const char *s, struct tz_rule *r)
{
	long west;

	memset(r, 0, sizeof(*r));
	if ((s = rule_name(s)) == NULL || (s = rule_hms(s, 24, &west)) == NULL)
		return -1;
	r->present = true;
	r->std_off = r->dst_off = -west;
	if (*s != '\0') {
		if ((s = rule_name(s)) == NULL)
			return -1;
		r->has_dst = true;
		r->dst_off = r->std_off + 3600;
		if (*s != ',' && *s != '\0') {
			if ((s = rule_hms(s, 24, &west)) == NULL)
				return -1;
			r->dst_off = -west;
		}
	}
	if (r->has_dst && *s == '\0') {
		/* No dates: the traditional US rule, as tzcode assumes. */
		r->start = (struct rule_date){ 'M', 0, 3, 2, 0, 7200 };
		r->end = (struct rule_date){ 'M', 0, 11, 1, 0, 7200 };
	} else if (r->has_dst) {
		if (*s != ',' || (s = rule_date(s + 1, &r->start)) == NULL || *s != ',' ||
		    (s = rule_date(s + 1, &r->end)) == NULL || *s != '\0')
			return -1;
	}
	if (r->std_off < TZ_OFFSET_MIN || r->std_off > TZ_OFFSET_MAX ||
	    r->dst_off < TZ_OFFSET_MIN || r->dst_off > TZ_OFFSET_MAX)
		return -1;
	return 0;
}

/* Local day (days since 1970-01-01) on which date d falls in year y. */
static int64_t rule_day(const struct rule_date *d, int64_t y)
{
	int64_t jan1 = cron_days_from_civil(y, 1, 1);
	int64_t first;
	int delta;

	switch (d->kind) {
	case 'J':
		return jan1 + d->day - 1 + (is_leap(y) && d->day >= 60 ? 1 : 0);
	case 'D':
		return jan1 + d->day;
	default:
		first = cron_days_from_civil(y, d->month, 1);
		delta = (d->wday - cron_weekday(first) + 7) % 7 + 7 * (d->week - 1);
		if (delta >= cron_days_in_month(y, d->month))
			delta -= 7;
		return first + delta;
	}
}

/* The instants DST starts and ends in year y; each date's time of day is on
 * the clock in force before it. */
static void rule_year(const struct tz_rule *r, int64_t y, int64_t *start, int64_t *end)
{
	*start = rule_day(&r->start, y) * DAY + r->start.time - r->std_off;
	*end = rule_day(&r->end, y) * DAY + r->end.time - r->dst_off;
}

static long rule_offset(const struct tz_rule *r, int64_t t)
{
	int64_t y, start, end;
	int m, d;
	bool dst;

	if (!r->has_dst)
		return r->std_off;
	cron_civil_from_days(floor_div(t + r->std_off, DAY), &y, &m, &d);
	rule_year(r, y, &start, &end);
	if (start < end)
		dst = t >= start && t < end;
	else	/* southern hemisphere: DST spans the new year */
		dst = !(t >= end && t < start);
	return dst ? r->dst_off : r->std_off;
}

static int rule_next_change(const struct tz_rule *r, int64_t t, long cur, int64_t *when,
			    long *before, long *after)
{
	int64_t ev[8], y;
	int m, d, n = 0;

	if (!r->has_dst)
		return 1;
	/* The rule repeats every year: four years of events hold the next
	 * change unless there is none (DST all year round). */
	cron_civil_from_days(floor_div(t + r->std_off, DAY), &y, &m, &d);
	for (int64_t yy = y - 1; yy <= y + 2; yy++, n += 2)
		rule_year(r, yy, &ev[n], &ev[n + 1]);
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && ev[j - 1] > ev[j]; j--) {
			int64_t tmp = ev[j];

			ev[j] = ev[j - 1];
			ev[j - 1] = tmp;
		}
	for (int i = 0; i < n; i++) {
		long o;

		if (ev[i] <= t || (o = rule_offset(r, ev[i])) == cur)
			continue;
		*when = ev[i];
		*before = cur;
		*after = o;
		return 0;
	}
	return 1;
}

/* Offsets of a zone */

static bool rule_governs(const struct cron_tz *z, int64_t t)
{
	return z->rule.present && (!z->has_table || t > z->table_end);
}

/* Index of the last change at or before t, or -1. */
static long change_index(const struct cron_tz *z, int64_t t)
{
	size_t lo = 0, hi = z->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (z->at[mid] <= t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (long)lo - 1;
}

long cron_tz_offset(const struct cron_tz *z, int64_t t)
{
	long i;

	if (rule_governs(z, t))
		return rule_offset(&z->rule, t);
	i = change_index(z, t);
	return i < 0 ? z->first_off : z->off[i];
}

int cron_tz_next_change(const struct cron_tz *z, int64_t t, int64_t *when, long *before,
			long *after)
{
	long cur = cron_tz_offset(z, t);

	if (!rule_governs(z, t)) {
		size_t i = (size_t)(change_index(z, t) + 1);

		if (i < z->count) {
			*when = z->at[i];
			*before = cur;
			*after = z->off[i];
			return 0;
		}
		if (!z->rule.present)
			return 1;
		/* A footer that disagrees with the table's last offset takes
		 * over right after the last transition. */
		t = z->table_end;
		if (rule_offset(&z->rule, t + 1) != cur) {
			*when = t + 1;
			*before = cur;
			*after = rule_offset(&z->rule, t + 1);
			return 0;
		}
	}
	return rule_next_change(&z->rule, t, cur, when, before, after);
}

void cron_tz_local(const struct cron_tz *z, int64_t local, struct cron_tz_local *out)
{
	/* Offsets stay within 26 hours, so every instant showing `local`
	 * lies in this window. */
	const int64_t win = 2 * DAY;
	int64_t seg = local - win, gap = 0, between = 0;
	long off = cron_tz_offset(z, seg);
	bool have_between = false;

	memset(out, 0, sizeof(*out));
	for (;;) {
		int64_t when, cand = local - off;
		long before, after;
		bool more = cron_tz_next_change(z, seg, &when, &before, &after) == 0 &&
			    when <= local + win;

		if (cand >= seg && (!more || cand < when) && out->count < 2) {
			out->when[out->count] = cand;
			out->offset[out->count] = off;
			out->count++;
		}
		if (!more)
			break;
		if (out->count == 1 && !have_between) {
			between = when;
			have_between = true;
		}
		if (when + before <= local && local < when + after)
			gap = when;
		seg = when;
		off = after;
	}
	out->transition = out->count == 0 ? gap : between;
}

/* How close two offset changes may come.
 *
 * The schedule (cron.c: next_from, local_to_utc) reads a zone's history as
 * clean steps: a step back shows a span of local time twice, once just
 * before the change and once just after it, and the clock gets through the
 * whole repeat before the offset changes again; a step forward skips a span
 * that no later change brings back.  Both hold when the time between two
 * changes is at least the sum of the two steps (absolute values): then
 * every local time is shown at most twice, by neighbouring spans.  A file
 * that breaks this would be scheduled wrongly (the second pass of a repeat
 * taken to last when the offset has moved on: "every 17 minutes" fired at
 * 05:14:36 by tests/fuzz/regressions/tzif/transitions-minutes-apart, whose
 * offset goes to +64 s, +4:58:40 and +64 s within 43 minutes), so it is
 * refused as "offset changes too close together".  No real zone comes
 * near the limit: over every zone of tzdata 2025b the tightest pair of
 * changes has almost four days to spare (Africa/Freetown).
 *
 * Only what the engine can reach is walked (years 1 to 9999, with a margin
 * for the widest offset).  The footer rule repeats every 400 years, so one
 * cycle of it after the table ends covers all of its changes. */
#define TZ_WALK_FROM (-62135596800LL - 4 * DAY)		/* 0001-01-01, less 4 days */
#define TZ_WALK_TO (253402300800LL + 4 * DAY)		/* 10000-01-01, and 4 days */
#define TZ_RULE_CYCLE (146097LL * DAY)			/* 400 Gregorian years */

static bool steps_settle(const struct cron_tz *z)
{
	int64_t t = TZ_WALK_FROM, stop = TZ_WALK_TO, prev_when = 0, when;
	long prev_step = 0, before, after;
	bool have_prev = false;

	if (z->rule.present) {
		int64_t from = z->has_table && z->table_end > TZ_WALK_FROM ? z->table_end
									  : TZ_WALK_FROM;

		if (from < TZ_WALK_TO - TZ_RULE_CYCLE - 800 * DAY)
			stop = from + TZ_RULE_CYCLE + 800 * DAY;
	}
	while (cron_tz_next_change(z, t, &when, &before, &after) == 0 && when <= stop) {
		long step = labs(after - before);

		if (have_prev && when - prev_when < (int64_t)prev_step + step)
			return false;
		have_prev = true;
		prev_when = when;
		prev_step = step;
		t = when;
	}
	return true;
}

/* TZif files (RFC 8536) */

struct tzif_counts {
	uint32_t isut, isstd, leap, time, type, chars;
};

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static int tzif_header(const unsigned char *p, size_t avail, struct tzif_counts *c)
{
	if (avail < 44 || memcmp(p, "TZif", 4) != 0)
		return -1;
	c->isut = be32(p + 20);
	c->isstd = be32(p + 24);
	c->leap = be32(p + 28);
	c->time = be32(p + 32);
	c->type = be32(p + 36);
	c->chars = be32(p + 40);
	if (c->isut > TZ_COUNT_MAX || c->isstd > TZ_COUNT_MAX || c->leap > TZ_COUNT_MAX ||
	    c->time > TZ_COUNT_MAX || c->type > 256 || c->chars > TZ_COUNT_MAX)
		return -1;
	return 0;
}

static size_t tzif_block(const struct tzif_counts *c, size_t tsize)
{
	return (size_t)c->time * (tsize + 1) + (size_t)c->type * 6 + c->chars +
	       (size_t)c->leap * (tsize + 4) + c->isstd + c->isut;
}

static int tzif_parse(const unsigned char *buf, size_t len, struct cron_tz *z, const char **why)
{
	struct tzif_counts c;
	const unsigned char *p = buf, *times, *idx, *types;
	size_t tsize = 4, avail = len;
	long offs[256];
	char footer[256];

	*why = "not a TZif file";
	if (tzif_header(p, avail, &c) != 0)
		return -1;
	if (buf[4] >= '2') {
		/* Skip the 32-bit block: the 64-bit one follows it. */
		size_t skip = 44 + tzif_block(&c, 4);

		if (skip > avail || tzif_header(p + skip, avail - skip, &c) != 0)
			return -1;
		p += skip;
		avail -= skip;
		tsize = 8;
	}
	p += 44;
	avail -= 44;
	*why = "truncated TZif file";
	if (tzif_block(&c, tsize) > avail)
		return -1;
	*why = "damaged TZif file";
	if (c.type == 0 || (c.isut != 0 && c.isut != c.type) || (c.isstd != 0 && c.isstd != c.type))
		return -1;
	*why = "zone counts leap seconds (a right/ zone); use the plain one";
	if (c.leap != 0)
		return -1;
	*why = "damaged TZif file";
	times = p;
	idx = times + (size_t)c.time * tsize;
	types = idx + c.time;
	for (uint32_t i = 0; i < c.type; i++) {
		offs[i] = (long)(int32_t)be32(types + 6 * i);
		if (offs[i] < TZ_OFFSET_MIN || offs[i] > TZ_OFFSET_MAX)
			return -1;
	}
	z->first_off = offs[0];
	z->at = malloc(sizeof(*z->at) * (c.time + 1));
	z->off = malloc(sizeof(*z->off) * (c.time + 1));
	*why = "out of memory";
	if (z->at == NULL || z->off == NULL)
		return -1;
	*why = "damaged TZif file";
	z->count = 0;
	for (uint32_t i = 0; i < c.time; i++) {
		int64_t t = tsize == 8 ? be64(times + 8 * i) : (int64_t)(int32_t)be32(times + 4 * i);
		long prev = z->count > 0 ? z->off[z->count - 1] : z->first_off;

		if (idx[i] >= c.type || t < -TZ_TIME_LIMIT || t > TZ_TIME_LIMIT ||
		    (i > 0 && t <= z->table_end))
			return -1;
		z->table_end = t;
		if (offs[idx[i]] != prev) {
			z->at[z->count] = t;
			z->off[z->count] = offs[idx[i]];
			z->count++;
		}
	}
	z->has_table = c.time > 0;
	memset(&z->rule, 0, sizeof(z->rule));
	if (tsize == 8) {
		const unsigned char *f = p + tzif_block(&c, 8);
		const unsigned char *end = buf + len;
		size_t n = 0;

		if (f < end) {
			if (*f++ != '\n')
				return -1;
			while (f < end && *f != '\n' && n < sizeof(footer) - 1)
				footer[n++] = (char)*f++;
			if (f >= end || *f != '\n')
				return -1;
		}
		footer[n] = '\0';
		*why = "unsupported TZ rule in the zone file";
		if (n > 0 && rule_parse(footer, &z->rule) != 0)
			return -1;
	}
	*why = "offset changes too close together (one before the clock is through the "
	       "last step)";
	if (!steps_settle(z))
		return -1;
	return 0;
}

static void zone_free(struct cron_tz *z)
{
	if (z != NULL) {
		free(z->at);
		free(z->off);
		free(z);
	}
}

static int read_file(int fd, size_t size, unsigned char *buf)
{
	size_t got = 0;

	while (got < size) {
		ssize_t n = read(fd, buf + got, size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

static bool name_ok(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > TZ_NAME_MAX || name[0] == '/' || strstr(name, "..") != NULL)
		return false;
	for (const char *p = name; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && strchr("/_-+.", *p) == NULL)
			return false;
	return true;
}

static bool same_file(const struct tz_slot *s, const char *path, const struct stat *st)
{
	return s->path != NULL && strcmp(s->path, path) == 0 && s->dev == st->st_dev &&
	       s->ino == st->st_ino && s->size == st->st_size &&
	       s->mtime.tv_sec == st->st_mtim.tv_sec && s->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

const struct cron_tz *cron_tz_get(const char *name, char *err, size_t errlen)
{
	const char *dir = getenv("TZDIR"), *why = NULL;
	char path[PATH_MAX];
	struct stat st;
	struct tz_slot *slot;
	struct cron_tz *z = NULL;
	unsigned char *buf = NULL;
	int fd = -1;

	if (name == NULL || !name_ok(name)) {
		snprintf(err, errlen, "invalid time zone name '%s'", name != NULL ? name : "");
		return NULL;
	}
	if (strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0)
		return &utc_zone;
	if (dir == NULL || dir[0] == '\0')
		dir = TZ_DEFAULT_DIR;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path)) {
		snprintf(err, errlen, "time zone name '%s' is too long", name);
		return NULL;
	}
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "unknown time zone '%s' (no file %s)", name, path);
		return NULL;
	}
	for (unsigned i = 0; i < TZ_CACHE_SLOTS; i++)
		if (same_file(&cache[i], path, &st))
			return cache[i].zone;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) != 0) {
		snprintf(err, errlen, "time zone '%s': cannot read %s: %s", name, path,
			 strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode) || st.st_size < 44 || st.st_size > TZ_FILE_MAX) {
		snprintf(err, errlen, "time zone '%s': %s is not a TZif file", name, path);
		goto fail;
	}
	if ((buf = malloc((size_t)st.st_size)) == NULL || (z = calloc(1, sizeof(*z))) == NULL) {
		snprintf(err, errlen, "time zone '%s': out of memory", name);
		goto fail;
	}
	if (read_file(fd, (size_t)st.st_size, buf) != 0) {
		snprintf(err, errlen, "time zone '%s': cannot read %s", name, path);
		goto fail;
	}
	if (tzif_parse(buf, (size_t)st.st_size, z, &why) != 0) {
		snprintf(err, errlen, "time zone '%s': %s: %s", name, path, why);
		goto fail;
	}
	close(fd);
	free(buf);

	slot = &cache[cache_victim];
	cache_victim = (cache_victim + 1) % TZ_CACHE_SLOTS;
	for (unsigned i = 0; i < TZ_CACHE_SLOTS; i++)
		if (cache[i].path != NULL && strcmp(cache[i].path, path) == 0)
			slot = &cache[i];	/* the file changed: replace it */
	free(slot->path);
	zone_free(slot->zone);
	slot->zone = z;
	slot->path = strdup(path);
	slot->dev = st.st_dev;
	slot->ino = st.st_ino;
	slot->size = st.st_size;
	slot->mtime = st.st_mtim;
	return z;

fail:
	if (fd >= 0)
		close(fd);
	free(buf);
	zone_free(z);
	return NULL;
}
